//! Voice activity detection by frame energy against an adaptive noise floor.
//!
//! Each frame's level (dBFS) is compared with the background level plus a
//! margin. Speech starts after a run of loud frames (so a click does not start
//! it) and ends after a run of quiet ones (so pauses between words do not end
//! it). The background is the quietest frame of the last couple of seconds
//! ("minimum statistics"): speech always has quieter moments between syllables,
//! so the floor stays at the room's level while someone talks, and rises to a
//! steady noise (a fan) within the window. Until a window has been seen, the
//! room is assumed quiet, so speech from the very first frame is caught (and a
//! loud fan at the start of a stream reads as speech until the window passes).
//! Cheap enough to run on every 20 ms frame of every stream.

use super::SPEECH_RATE;

/// Tuning, in milliseconds and decibels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Samples per frame (at 16 kHz: 320 = 20 ms).
    pub frame_samples: usize,
    /// Loud audio needed to start speech.
    pub start_ms: u32,
    /// Quiet audio needed to end speech.
    pub end_silence_ms: u32,
    /// How far above the background speech must be.
    pub margin_db: f32,
    /// Speech is never quieter than this, however quiet the room.
    pub min_speech_dbfs: f32,
    /// How far back the background level is looked for.
    pub floor_window_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            frame_samples: super::FRAME_SAMPLES_20MS,
            start_ms: 60,
            end_silence_ms: 600,
            margin_db: 12.0,
            min_speech_dbfs: -50.0,
            floor_window_ms: 2_000,
        }
    }
}

/// A change of state, with the sample (from the start of the stream) where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began at this sample (the first loud frame of the run).
    SpeechStart { sample: u64 },
    /// Speech ended at this sample (the first quiet frame of the run); reported
    /// `end_silence_ms` later.
    SpeechEnd { sample: u64 },
}

/// The detector for one stream of 16 kHz mono audio.
#[derive(Debug, Clone)]
pub struct Vad {
    config: VadConfig,
    /// Levels of the last `floor_window_ms`.
    levels: std::collections::VecDeque<f32>,
    in_speech: bool,
    /// Consecutive loud (outside speech) or quiet (inside speech) frames, and where the run began.
    run: u32,
    run_start: u64,
    /// Samples seen so far.
    position: u64,
}

/// A frame's level in dBFS (a full-scale sine is about -3).
pub fn level_dbfs(frame: &[f32]) -> f32 {
    if frame.is_empty() {
        return -100.0;
    }
    let power = frame.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / frame.len() as f64;
    (10.0 * (power + 1e-10).log10()) as f32
}

impl Vad {
    pub fn new(config: VadConfig) -> Self {
        let mut vad =
            Vad { config, levels: Default::default(), in_speech: false, run: 0, run_start: 0, position: 0 };
        let window = vad.frames(config.floor_window_ms) as usize;
        let quiet_room = config.min_speech_dbfs - config.margin_db;
        vad.levels.extend(std::iter::repeat_n(quiet_room, window));
        vad
    }

    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// The background level: the quietest frame in the window.
    pub fn floor_dbfs(&self) -> f32 {
        self.levels.iter().copied().fold(f32::INFINITY, f32::min)
    }

    fn frames(&self, ms: u32) -> u32 {
        let frame_ms = self.config.frame_samples.max(1) as f32 * 1000.0 / SPEECH_RATE as f32;
        (ms as f32 / frame_ms).ceil().max(1.0) as u32
    }

    /// Feeds one frame (normally `frame_samples` long); returns a state change, if any.
    pub fn push(&mut self, frame: &[f32]) -> Option<VadEvent> {
        let start = self.position;
        self.position += frame.len() as u64;
        let level = level_dbfs(frame);
        self.levels.pop_front();
        self.levels.push_back(level);
        let loud = level > (self.floor_dbfs() + self.config.margin_db).max(self.config.min_speech_dbfs);
        let loud_for_state = loud != self.in_speech; // a frame that argues for a change
        if !loud_for_state {
            self.run = 0;
            return None;
        }
        if self.run == 0 {
            self.run_start = start;
        }
        self.run += 1;
        let needed = if self.in_speech {
            self.frames(self.config.end_silence_ms)
        } else {
            self.frames(self.config.start_ms)
        };
        if self.run < needed {
            return None;
        }
        self.run = 0;
        self.in_speech = !self.in_speech;
        Some(if self.in_speech {
            VadEvent::SpeechStart { sample: self.run_start }
        } else {
            VadEvent::SpeechEnd { sample: self.run_start }
        })
    }

    /// Ends the stream: speech still in progress ends here.
    pub fn finish(&mut self) -> Option<VadEvent> {
        let was = std::mem::replace(&mut self.in_speech, false);
        let sample = if self.run > 0 { self.run_start } else { self.position };
        self.run = 0;
        was.then_some(VadEvent::SpeechEnd { sample })
    }
}

#[cfg(test)]
#[path = "vad_tests.rs"]
mod tests;
