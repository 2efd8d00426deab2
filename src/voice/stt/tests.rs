//! The speech-to-text engine against the real whisper tiny.en model
//! (`python3 models/fetch.py whisper-tiny-en --hearth target/debug/hearth`).

use super::*;
use std::io::Write;

const FIXTURE: &[u8] = include_bytes!("../../../tests/data/speech_kitchen.wav");

fn tiny_model() -> PathBuf {
    let path = crate::models::cache_dir().expect("a model cache").join("ggml-tiny.en.bin");
    assert!(
        path.is_file(),
        "{} is missing: run `python3 models/fetch.py whisper-tiny-en --hearth target/debug/hearth`",
        path.display()
    );
    path
}

fn speech() -> Vec<f32> {
    crate::audio::decode_wav_16k_mono(FIXTURE, &crate::audio::AudioLimits::default()).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn ready(rt: &tokio::runtime::Runtime) -> Transcriber {
    let stt = Transcriber::start(Ok(tiny_model()), 2);
    let state = rt.block_on(stt.ready(Duration::from_secs(120)));
    assert!(matches!(state, SttState::Ready { multilingual: false, .. }), "{state:?}");
    stt
}

fn words(text: &str) -> String {
    text.to_lowercase().chars().filter(|c| c.is_alphanumeric() || c.is_whitespace()).collect()
}

#[test]
fn a_file_without_the_ggml_magic_is_refused_before_whisper_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");
    std::fs::write(&path, b"GGUF\x03\x00\x00\x00 not whisper").unwrap();
    let err = check_model(&path).unwrap_err();
    assert!(err.contains("not a whisper.cpp ggml model"), "{err}");

    let rt = runtime();
    let stt = Transcriber::start(Ok(path), 1);
    let state = rt.block_on(stt.ready(Duration::from_secs(10)));
    assert!(matches!(&state, SttState::Failed { reason } if reason.contains("bad magic")), "{state:?}");
    let err = rt.block_on(stt.transcribe(TranscribeRequest { audio: speech(), ..Default::default() }));
    assert!(matches!(err, Err(SttError::NotReady(_))), "{err:?}");
}

#[test]
fn a_truncated_model_is_refused_before_whisper_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ggml-tiny.en.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&0x6767_6d6cu32.to_le_bytes()).unwrap();
    f.write_all(&[0u8; 1000]).unwrap();
    let err = check_model(&path).unwrap_err();
    assert!(err.contains("ggml-tiny.en.bin") && !err.contains("bad magic"), "{err}");
}

#[test]
fn without_a_model_requests_say_why() {
    let rt = runtime();
    let stt = Transcriber::start(Err("no speech model installed".into()), 1);
    let err =
        rt.block_on(stt.transcribe(TranscribeRequest { audio: vec![0.0; 16000], ..Default::default() }));
    assert_eq!(err, Err(SttError::NotReady("no speech model installed".into())));
}

#[test]
fn whisper_transcribes_a_spoken_sentence_with_timed_segments() {
    let rt = runtime();
    let stt = ready(&rt);
    let audio = speech();
    let t = rt
        .block_on(stt.transcribe(TranscribeRequest { audio: audio.clone(), ..Default::default() }))
        .unwrap();
    let text = words(&t.text);
    assert!(text.contains("kitchen light"), "{t:?}");
    assert_eq!(t.language, "en");
    assert!((t.duration - audio.len() as f64 / 16000.0).abs() < 1e-9);
    assert!(!t.segments.is_empty());
    for s in &t.segments {
        assert!(s.start >= 0.0 && s.start <= s.end && s.end <= t.duration + 1e-9, "{s:?}");
    }

    // The short-clip mode encodes less of the window and still hears the sentence.
    let fast =
        rt.block_on(stt.transcribe(TranscribeRequest { audio, fast: true, ..Default::default() })).unwrap();
    assert!(words(&fast.text).contains("kitchen"), "{fast:?}");
}

#[test]
fn bad_requests_are_refused_and_the_engine_keeps_working() {
    let rt = runtime();
    let stt = ready(&rt);
    let empty = rt.block_on(stt.transcribe(TranscribeRequest::default()));
    assert!(matches!(empty, Err(SttError::InvalidRequest(_))), "{empty:?}");
    let request = |language: &str| TranscribeRequest {
        audio: speech(),
        language: Some(language.into()),
        ..Default::default()
    };
    let german = rt.block_on(stt.transcribe(request("de")));
    assert!(matches!(&german, Err(SttError::InvalidRequest(m)) if m.contains("English only")), "{german:?}");
    let unknown = rt.block_on(stt.transcribe(request("xx")));
    assert!(
        matches!(&unknown, Err(SttError::InvalidRequest(m)) if m.contains("unknown language")),
        "{unknown:?}"
    );

    // A caller that gives up mid-transcription does not wedge the engine.
    let gave_up = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(20), stt.transcribe(request("en"))).await
    });
    assert!(gave_up.is_err(), "20 ms is too short for whisper: the call should have timed out");
    let after = rt.block_on(stt.transcribe(request("en"))).unwrap();
    assert!(words(&after.text).contains("kitchen"), "{after:?}");
}
