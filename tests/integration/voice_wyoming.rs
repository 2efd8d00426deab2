//! The Wyoming server against the official `wyoming` Python client.
//!
//! Needs python3 with the `wyoming` package (`pip install wyoming`); the
//! interpreter is `$HEARTH_TEST_PYTHON` or `python3`. Without the package the
//! test is skipped with a message. The speech services are a test
//! implementation: this checks the protocol, not the engines.

use hearth::voice::wyoming::events::{Handled, Synthesize, Transcribe, Transcript};
use hearth::voice::wyoming::info::{
    Artifact, AsrProgram, HandleProgram, Info, LanguageModel, TtsProgram, TtsVoice,
};
use hearth::voice::wyoming::{serve, ServerOptions, ServiceError, Synthesized, VoiceServices};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::Arc;

struct TestServices;

impl VoiceServices for TestServices {
    fn info(&self) -> Info {
        let by = ("Hearth tests", "https://example.invalid/hearth");
        let model = |name: &str| LanguageModel {
            artifact: Artifact::new(name, name, by, None),
            languages: vec!["en".into()],
        };
        Info {
            asr: vec![AsrProgram {
                artifact: Artifact::new("hearth-asr", "speech to text", by, Some("0.1.0")),
                models: vec![model("whisper-tiny-en")],
                supports_transcript_streaming: true,
            }],
            tts: vec![TtsProgram {
                artifact: Artifact::new("hearth-tts", "text to speech", by, None),
                voices: vec![TtsVoice {
                    artifact: Artifact::new("test-voice", "a tone", by, None),
                    languages: vec!["en_US".into()],
                    speakers: None,
                }],
                supports_synthesize_streaming: false,
            }],
            handle: vec![HandleProgram {
                artifact: Artifact::new("hearth-chat", "the assistant", by, None),
                models: vec![model("smollm2")],
                supports_handled_streaming: false,
            }],
            ..Default::default()
        }
    }

    async fn transcribe(&self, request: &Transcribe, audio: Vec<f32>) -> Result<Transcript, ServiceError> {
        let peak = audio.iter().fold(0f32, |m, v| m.max(v.abs()));
        let text = format!("{} samples at 16 kHz, peak {peak:.2}", audio.len());
        Ok(Transcript { text, language: request.language.clone(), context: None })
    }

    async fn synthesize(&self, request: &Synthesize) -> Result<Synthesized, ServiceError> {
        let n = request.text.len() * 1_000;
        let samples = (0..n).map(|i| ((i as f32 * 0.05).sin() * 8_000.0) as i16).collect();
        Ok(Synthesized { rate: 22_050, channels: 1, samples })
    }

    async fn handle(&self, transcript: &Transcript) -> Result<Option<Handled>, ServiceError> {
        Ok(Some(Handled { text: Some(format!("You said: {}", transcript.text)), context: None }))
    }
}

#[test]
fn voice_wyoming_official_python_client_gets_info_transcript_audio_and_answer() {
    let python = std::env::var("HEARTH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", "import wyoming"]).output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "{python} has no `wyoming` package: pip install 'wyoming>=1.5,<2', or set HEARTH_TEST_PYTHON \
         (scripts/test.sh makes .venv-test)"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(serve(listener, Arc::new(TestServices), ServerOptions::default(), async {
        let _ = stopped.await;
    }));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/wyoming_client.py");
    let out = Command::new(&python).args([script, "127.0.0.1", &port.to_string()]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "wyoming client failed:\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(report["asr"], json!(["hearth-asr"]), "{report}");
    assert_eq!(report["asr_models"], json!(["whisper-tiny-en"]));
    assert_eq!(report["tts_voices"], json!(["test-voice"]));
    assert_eq!(report["handle"], json!(["hearth-chat"]));
    // One second at 44.1 kHz stereo arrives as 16 kHz mono with its level kept.
    assert_eq!(report["transcript"], "16000 samples at 16 kHz, peak 0.37", "{report}");
    assert_eq!(report["transcript_stop"], true, "streaming ends with transcript-stop: {report}");
    let tts = &report["tts"];
    assert_eq!(
        (tts["rate"].as_u64(), tts["width"].as_u64(), tts["channels"].as_u64()),
        (Some(22_050), Some(2), Some(1))
    );
    assert_eq!(tts["bytes"], 2 * 18_000, "{report}");
    assert_eq!(tts["chunks"], 18, "1024-sample chunks: {report}");
    assert_eq!(report["handled"], "You said: turn on the lights");

    stop.send(()).unwrap();
    runtime.block_on(server).unwrap();
}
