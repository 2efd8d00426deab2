//! The pieces of the streamed voice pipeline that are not transport: capturing
//! utterances from a stream of 16 kHz PCM (push-to-talk, with voice activity detection
//! to end an utterance hands-free), and cutting a streamed reply into sentences that
//! can be spoken while the rest is still being generated.

use crate::audio::{level_dbfs, PcmFramer, Vad, VadConfig, VadEvent, SPEECH_RATE};
use std::collections::VecDeque;

/// Below this level a push-to-talk release that the detector did not hear as speech is
/// taken for silence.
const QUIET_DBFS: f32 = -60.0;

/// Audio kept from before speech starts, so the first syllable is not clipped.
const PRE_ROLL_SAMPLES: usize = SPEECH_RATE as usize / 4;

/// What a chunk of audio changed.
#[derive(Debug, Clone, PartialEq)]
pub enum CaptureEvent {
    SpeechStart,
    /// Speech ended (after the configured silence): the utterance, 16 kHz mono.
    Utterance(Vec<f32>),
    /// The utterance passed the length limit and was dropped.
    TooLong,
}

/// Collects utterances from one stream.
pub struct Capture {
    framer: PcmFramer,
    vad: Vad,
    /// The current utterance (pre-roll included) while speech is on, or everything
    /// since the last utterance for push-to-talk.
    heard: Vec<f32>,
    pre_roll: VecDeque<f32>,
    /// Everything since the last utterance (bounded), for a push-to-talk release that
    /// the detector did not hear as speech.
    since_last: Vec<f32>,
    in_speech: bool,
    too_long: bool,
    max_samples: usize,
}

impl Capture {
    /// `end_silence_ms`: quiet needed to end an utterance hands-free.
    pub fn new(end_silence_ms: u32, max_seconds: u32) -> Capture {
        let config = VadConfig { end_silence_ms, ..VadConfig::default() };
        Capture {
            framer: PcmFramer::new(config.frame_samples),
            vad: Vad::new(config),
            heard: Vec::new(),
            pre_roll: VecDeque::with_capacity(PRE_ROLL_SAMPLES),
            since_last: Vec::new(),
            in_speech: false,
            too_long: false,
            max_samples: max_seconds as usize * SPEECH_RATE as usize,
        }
    }

    /// Feeds s16le bytes (any split); returns what changed, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<CaptureEvent> {
        self.framer.push(bytes);
        let mut events = Vec::new();
        while let Some(frame) = self.framer.next_frame() {
            let samples: Vec<f32> = frame.iter().map(|&s| f32::from(s) / 32768.0).collect();
            self.add(&samples, &mut events);
        }
        events
    }

    fn add(&mut self, samples: &[f32], events: &mut Vec<CaptureEvent>) {
        if self.since_last.len() + samples.len() <= self.max_samples {
            self.since_last.extend_from_slice(samples);
        }
        let change = self.vad.push(samples);
        if matches!(change, Some(VadEvent::SpeechStart { .. })) {
            self.in_speech = true;
            self.too_long = false;
            self.heard.clear();
            self.heard.extend(self.pre_roll.drain(..));
            events.push(CaptureEvent::SpeechStart);
        }
        if self.in_speech {
            if self.heard.len() + samples.len() > self.max_samples {
                if !self.too_long {
                    events.push(CaptureEvent::TooLong);
                }
                self.too_long = true;
                self.heard.clear();
            } else if !self.too_long {
                self.heard.extend_from_slice(samples);
            }
        } else {
            for &s in samples {
                if self.pre_roll.len() == PRE_ROLL_SAMPLES {
                    self.pre_roll.pop_front();
                }
                self.pre_roll.push_back(s);
            }
        }
        if matches!(change, Some(VadEvent::SpeechEnd { .. })) {
            self.in_speech = false;
            let utterance = std::mem::take(&mut self.heard);
            self.since_last.clear();
            if !self.too_long {
                events.push(CaptureEvent::Utterance(utterance));
            }
            self.too_long = false;
        }
    }

    /// Push-to-talk release: the utterance so far, or, when the detector heard no
    /// speech, everything since the last utterance if it is more than silence (a quiet
    /// microphone still gets transcribed). `None` when there is nothing to transcribe.
    pub fn stop(&mut self) -> Option<Vec<f32>> {
        if let Some(rest) = self.framer.finish() {
            let samples: Vec<f32> = rest.iter().map(|&s| f32::from(s) / 32768.0).collect();
            if self.in_speech {
                self.heard.extend_from_slice(&samples);
            } else if self.since_last.len() + samples.len() <= self.max_samples {
                self.since_last.extend_from_slice(&samples);
            }
        }
        self.vad.finish();
        let was_speech = std::mem::replace(&mut self.in_speech, false);
        let too_long = std::mem::replace(&mut self.too_long, false);
        let since_last = std::mem::take(&mut self.since_last);
        let utterance = match was_speech {
            true => std::mem::take(&mut self.heard),
            false if level_dbfs(&since_last) > QUIET_DBFS => since_last,
            false => Vec::new(),
        };
        self.heard.clear();
        self.pre_roll.clear();
        (!too_long && !utterance.is_empty()).then_some(utterance)
    }

    /// Forgets everything heard (a turn is being answered; audio meanwhile is dropped).
    pub fn reset(&mut self) {
        self.framer = PcmFramer::new(self.framer.frame_samples());
        self.heard.clear();
        self.pre_roll.clear();
        self.since_last.clear();
        self.in_speech = false;
        self.too_long = false;
        self.vad.finish();
    }
}

/// Cuts streamed text into sentences as soon as each is complete.
#[derive(Debug, Default)]
pub struct Sentences {
    pending: String,
}

/// Sentence text shorter than this is held back and joined with the next one (a lone
/// "1." or "Hi!" spoken alone sounds choppy).
const MIN_SENTENCE_CHARS: usize = 12;
/// Past this length a clause boundary (`,;:`) is good enough, so a long sentence starts
/// being spoken sooner.
const LONG_CLAUSE_CHARS: usize = 120;

impl Sentences {
    /// Adds a piece of the reply; returns the sentences it completed.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.pending.push_str(delta);
        let mut out = Vec::new();
        while let Some(end) = self.boundary() {
            let sentence: String = self.pending.drain(..end).collect();
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                out.push(sentence.to_string());
            }
        }
        out
    }

    /// The rest, at the end of the reply.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }

    /// Byte index just past the first complete sentence in `pending`, if any: a `.!?`
    /// (or a newline) followed by whitespace, not inside a number ("3.5") or after a
    /// one-letter or common abbreviation ("e.g.", "Dr.").
    fn boundary(&self) -> Option<usize> {
        let text = &self.pending;
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        for (i, &(at, c)) in chars.iter().enumerate() {
            let next = chars.get(i + 1).map(|&(_, n)| n);
            let end = at + c.len_utf8();
            let long_enough = text[..end].trim().chars().count() >= MIN_SENTENCE_CHARS;
            match c {
                '\n' if text[..at].trim().chars().count() > 0 => return Some(end),
                '.' | '!' | '?' | '。' | '！' | '？' => {
                    let next = next?;
                    let cjk = matches!(c, '。' | '！' | '？');
                    if (cjk || next.is_whitespace())
                        && long_enough
                        && !(c == '.' && abbreviation(&text[..at]))
                    {
                        return Some(end);
                    }
                }
                ',' | ';' | ':' | '，' | '；'
                    if next.is_some_and(char::is_whitespace)
                        && text[..end].chars().count() >= LONG_CLAUSE_CHARS =>
                {
                    return Some(end);
                }
                _ => {}
            }
        }
        None
    }
}

/// Whether the word before a period is an abbreviation rather than a sentence end.
fn abbreviation(before: &str) -> bool {
    let word = before.rsplit(|c: char| c.is_whitespace() || c == '(').next().unwrap_or("");
    let lower = word.to_lowercase();
    word.chars().count() == 1 && word.chars().all(char::is_alphabetic)
        || lower.contains('.')
        || ["mr", "mrs", "ms", "dr", "st", "vs", "etc", "no", "approx"].contains(&lower.as_str())
}

#[cfg(test)]
mod tests;
