//! The text-to-speech engine against the real Piper voice and ONNX Runtime
//! (`python3 models/fetch.py piper-joe onnxruntime`).

use super::*;
use std::time::Instant;

const FETCH: &str = "python3 models/fetch.py piper-joe onnxruntime";

fn cached(file: &str) -> PathBuf {
    let path = crate::models::cache_dir().expect("a model cache").join(file);
    assert!(path.is_file(), "{} is missing: run `{FETCH}`", path.display());
    path
}

fn voice_file() -> PathBuf {
    cached("en_US-joe-medium.onnx")
}

fn onnxruntime() -> PathBuf {
    cached("libonnxruntime.so.1.31.1")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn ready(rt: &tokio::runtime::Runtime) -> Synthesizer {
    let tts = Synthesizer::start(Ok(voice_file()), Ok(onnxruntime()), 2);
    let state = rt.block_on(tts.ready(Duration::from_secs(120)));
    assert_eq!(state, TtsState::Ready { voice: "piper-joe".into(), rate: 22050 });
    tts
}

fn say(rt: &tokio::runtime::Runtime, tts: &Synthesizer, text: &str) -> Speech {
    rt.block_on(tts.synthesize(SpeakRequest { text: text.into(), ..Default::default() })).unwrap()
}

/// The longest run of quiet 10 ms frames between the first and last loud ones, in seconds.
fn longest_inner_pause(speech: &Speech) -> f64 {
    let frame = speech.rate as usize / 100;
    let loud: Vec<bool> = speech
        .samples
        .chunks(frame)
        .map(|f| (f.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / f.len() as f64).sqrt() > 500.0)
        .collect();
    let (Some(first), Some(last)) = (loud.iter().position(|&l| l), loud.iter().rposition(|&l| l)) else {
        return 0.0;
    };
    let (mut longest, mut run) = (0, 0);
    for &l in &loud[first..=last] {
        run = if l { 0 } else { run + 1 };
        longest = longest.max(run);
    }
    longest as f64 / 100.0
}

#[test]
fn a_sentence_becomes_speech_of_a_plausible_length() {
    let rt = runtime();
    let tts = ready(&rt);
    let text = "The weather today is sunny with a light breeze.";
    let speech = say(&rt, &tts, text);
    assert_eq!(speech.rate, 22050);
    let peak = speech.samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!(peak > 10_000, "peak {peak}: silent?");
    let per_char = speech.duration().as_secs_f64() / text.chars().count() as f64;
    assert!((0.04..=0.15).contains(&per_char), "{per_char:.3} s per character");
    assert!(speech.elapsed > Duration::ZERO);
    let voices = tts.voices();
    assert_eq!(
        voices,
        [VoiceInfo { name: "piper-joe".into(), language: "en_US".into(), rate: 22050, default: true }]
    );
    // Faster speech is shorter.
    let fast = rt
        .block_on(tts.synthesize(SpeakRequest { text: text.into(), speed: Some(2.0), ..Default::default() }))
        .unwrap();
    assert!(
        fast.samples.len() * 3 < speech.samples.len() * 2,
        "{} vs {}",
        fast.samples.len(),
        speech.samples.len()
    );
}

#[test]
fn punctuation_survives_phonemization() {
    let rt = runtime();
    let tts = ready(&rt);
    // The voice is stochastic (noise_w): compare the best of a few tries each way.
    let pause = |text: &str| (0..3).map(|_| longest_inner_pause(&say(&rt, &tts, text))).fold(0.0, f64::max);
    let with_comma = pause("Yes, I will turn off the lights in the kitchen.");
    let without = pause("Yes I will turn off the lights in the kitchen.");
    assert!(
        with_comma >= 0.1 && with_comma > without + 0.05,
        "pause {with_comma} s with a comma, {without} s without"
    );
}

#[test]
fn long_text_is_spoken_sentence_by_sentence_with_pauses() {
    let rt = runtime();
    let tts = ready(&rt);
    let one = say(&rt, &tts, "Good morning.");
    let three = say(&rt, &tts, "Good morning. Good morning. Good morning.");
    let ratio = three.samples.len() as f64 / one.samples.len() as f64;
    assert!((2.7..4.0).contains(&ratio), "three sentences are {ratio:.2} times one");
    assert!(longest_inner_pause(&three) >= 0.2, "no silence between sentences");
}

#[test]
fn requests_are_checked_before_the_engine_sees_them() {
    let rt = runtime();
    let tts = ready(&rt).with_max_chars(100);
    let request = |text: &str, voice: Option<&str>, speed: Option<f32>| {
        rt.block_on(tts.synthesize(SpeakRequest { text: text.into(), voice: voice.map(Into::into), speed }))
    };
    assert!(matches!(request(" \n ", None, None), Err(TtsError::InvalidRequest(_))));
    let long = request(&"a".repeat(101), None, None);
    assert!(matches!(&long, Err(TtsError::InvalidRequest(m)) if m.contains("at most 100")), "{long:?}");
    assert!(matches!(request("Hi.", None, Some(5.0)), Err(TtsError::InvalidRequest(_))));
    assert!(matches!(request("Hi.", None, Some(f32::NAN)), Err(TtsError::InvalidRequest(_))));
    assert_eq!(request("Hi.", Some("nobody"), None), Err(TtsError::VoiceNotFound("nobody".into())));
    for name in ["default", "piper-joe", "en_US-joe-medium"] {
        assert!(request("Hi.", Some(name), None).is_ok(), "{name}");
    }
    // Punctuation alone says nothing.
    assert!(matches!(request("...", None, None), Err(TtsError::InvalidRequest(_))));
}

#[test]
fn a_missing_or_bogus_runtime_fails_with_a_reason_not_a_hang() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let text_file = dir.path().join("libonnxruntime.so");
    std::fs::write(&text_file, b"bogus").unwrap();
    // This machine's own espeak-ng (a foreign architecture's, e.g. arm64 for a cross build,
    // fails earlier, with "wrong ELF class").
    let not_ort =
        Some(std::path::Path::new("/usr/lib").join(format!("{}-linux-gnu", std::env::consts::ARCH)))
            .map(|d| d.join("libespeak-ng.so.1"))
            .filter(|p| p.is_file());
    let mut cases = vec![
        (dir.path().join("nope.so"), "No such file"),
        (text_file, "no ELF header"),
        (dir.path().to_path_buf(), "not a file"),
    ];
    cases.extend(not_ort.map(|p| (p, "no OrtGetApiBase")));
    for (path, why) in cases {
        let tts = Synthesizer::start(Ok(voice_file()), Ok(path.clone()), 1);
        let state = rt.block_on(tts.ready(Duration::from_secs(10)));
        assert!(matches!(&state, TtsState::Failed { reason } if reason.contains(why)), "{path:?}: {state:?}");
        let err = rt.block_on(tts.synthesize(SpeakRequest { text: "Hi.".into(), ..Default::default() }));
        assert!(matches!(err, Err(TtsError::NotReady(_))), "{err:?}");
    }
    let none = Synthesizer::start(Ok(voice_file()), Err("no ONNX Runtime installed".into()), 1);
    assert_eq!(none.state(), TtsState::Failed { reason: "no ONNX Runtime installed".into() });
}

#[test]
fn a_voice_without_its_config_fails_to_load() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let lonely = dir.path().join("lonely.onnx");
    std::fs::write(&lonely, b"not a model").unwrap();
    let tts = Synthesizer::start(Ok(lonely), Ok(onnxruntime()), 1);
    let state = rt.block_on(tts.ready(Duration::from_secs(10)));
    assert!(matches!(&state, TtsState::Failed { reason } if reason.contains(".onnx.json")), "{state:?}");
}

#[test]
fn dropping_the_future_cancels_the_rest_of_the_text() {
    let rt = runtime();
    let tts = ready(&rt);
    let long = "This is one of many sentences that keep the engine busy for a while. ".repeat(30);
    let gave_up = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_millis(100),
            tts.synthesize(SpeakRequest { text: long.clone(), ..Default::default() }),
        )
        .await
    });
    assert!(gave_up.is_err(), "30 sentences in 100 ms: the call should have timed out");
    // The engine drops the rest at the next sentence: the next request is answered after
    // at most one more long sentence, not thirty.
    let started = Instant::now();
    let next = say(&rt, &tts, "Hello.");
    let waited = started.elapsed();
    let sentence = say(&rt, &tts, "This is one of many sentences that keep the engine busy for a while.");
    assert!(!next.samples.is_empty());
    assert!(waited < sentence.elapsed * 5 + Duration::from_secs(1), "waited {waited:?}");
}

#[cfg(feature = "stt")]
#[test]
fn whisper_understands_what_piper_says() {
    use crate::voice::stt::{TranscribeRequest, Transcriber};
    let rt = runtime();
    let tts = ready(&rt);
    let speech = say(&rt, &tts, "Please turn on the kitchen light.");
    let audio: Vec<f32> = speech.samples.iter().map(|&s| s as f32 / 32768.0).collect();
    let audio = crate::audio::resample(&audio, speech.rate, crate::audio::SPEECH_RATE);
    let model = crate::models::cache_dir().expect("a model cache").join("ggml-tiny.en.bin");
    assert!(model.is_file(), "run `python3 models/fetch.py whisper-tiny-en --hearth target/debug/hearth`");
    let stt = Transcriber::start(Ok(model), 2);
    let text = rt.block_on(stt.transcribe(TranscribeRequest { audio, ..Default::default() })).unwrap().text;
    let words: String =
        text.to_lowercase().chars().filter(|c| c.is_alphanumeric() || c.is_whitespace()).collect();
    assert!(words.contains("kitchen light"), "{text}");
}
