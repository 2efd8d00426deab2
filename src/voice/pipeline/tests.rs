use super::*;

fn s16le(samples: impl IntoIterator<Item = f32>) -> Vec<u8> {
    samples.into_iter().flat_map(|v| ((v * 32767.0) as i16).to_le_bytes()).collect()
}

fn tone(seconds: f32) -> Vec<u8> {
    let n = (seconds * SPEECH_RATE as f32) as usize;
    s16le((0..n).map(|i| (i as f32 * 2.0 * std::f32::consts::PI * 220.0 / 16000.0).sin() * 0.3))
}

fn silence(seconds: f32) -> Vec<u8> {
    s16le(std::iter::repeat_n(0.0, (seconds * SPEECH_RATE as f32) as usize))
}

#[test]
fn an_utterance_ends_after_the_silence_with_pre_roll_and_speech() {
    let mut capture = Capture::new(300, 30);
    let mut events = capture.push(&silence(0.5));
    assert!(events.is_empty());
    // Fed in odd-sized pieces, as a socket delivers them.
    let speech = tone(1.0);
    for piece in speech.chunks(333) {
        events.extend(capture.push(piece));
    }
    assert_eq!(events, vec![CaptureEvent::SpeechStart]);
    let events = capture.push(&silence(0.5));
    let [CaptureEvent::Utterance(audio)] = events.as_slice() else { panic!("{events:?}") };
    let secs = audio.len() as f32 / SPEECH_RATE as f32;
    // A second of tone, a quarter second of pre-roll, and the silence run that ended it.
    assert!((1.2..=1.7).contains(&secs), "{secs}");
}

#[test]
fn push_to_talk_release_takes_what_was_heard_even_if_quiet() {
    let mut capture = Capture::new(600, 30);
    capture.push(&tone(0.8));
    let utterance = capture.stop().expect("speech");
    assert!(utterance.len() >= (0.8 * 16000.0) as usize - 320, "{}", utterance.len());
    // Nothing since: nothing to transcribe.
    assert_eq!(capture.stop(), None);
    // Quiet audio the detector ignores is still handed over on release.
    capture.push(&s16le(std::iter::repeat_n(0.003, 16000)));
    assert_eq!(capture.stop().map(|u| u.len()), Some(16000));
    // Silence is not.
    capture.push(&silence(0.5));
    assert_eq!(capture.stop(), None);
}

#[test]
fn an_overlong_utterance_is_dropped_once() {
    let mut capture = Capture::new(300, 1);
    let mut events = capture.push(&tone(1.5));
    events.extend(capture.push(&silence(0.5)));
    assert_eq!(events, vec![CaptureEvent::SpeechStart, CaptureEvent::TooLong]);
    assert_eq!(capture.stop(), None);
}

fn spoken(deltas: &[&str]) -> Vec<String> {
    let mut sentences = Sentences::default();
    let mut out: Vec<String> = deltas.iter().flat_map(|d| sentences.push(d)).collect();
    out.extend(sentences.finish());
    out
}

#[test]
fn sentences_come_out_as_soon_as_they_are_complete() {
    let mut sentences = Sentences::default();
    assert!(sentences.push("The kitchen light is").is_empty());
    assert!(sentences.push(" on now.").is_empty(), "the end is not known until the next character");
    assert_eq!(sentences.push(" Anything"), vec!["The kitchen light is on now."]);
    assert_eq!(sentences.push(" else?\n"), vec!["Anything else?"]);
    assert_eq!(sentences.finish(), None);
}

#[test]
fn numbers_abbreviations_and_short_bits_do_not_split() {
    assert_eq!(
        spoken(&["It costs 3.5 euros, e.g. at Dr. Smith's shop. ", "Ok. Then we go home."]),
        vec!["It costs 3.5 euros, e.g. at Dr. Smith's shop.", "Ok. Then we go home."]
    );
    assert_eq!(
        spoken(&["今天天气很好，我们去公园散步吧。第二句"]),
        vec!["今天天气很好，我们去公园散步吧。", "第二句"]
    );
}

#[test]
fn a_long_sentence_breaks_at_a_clause() {
    let long = format!("{}, and then it goes on", "word ".repeat(26).trim());
    let parts = spoken(&[&long]);
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(parts[0].ends_with(','));
}
