//! The codec and the typed events.

use super::events::*;
use super::info::*;
use super::*;
use serde_json::json;

async fn decode(bytes: &[u8], limits: &Limits) -> Result<Option<RawEvent>, WyomingError> {
    let mut reader = bytes;
    read_event(&mut reader, limits).await
}

fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().unwrap().clone()
}

fn sample_info() -> Info {
    let by = ("OpenAI", "https://github.com/openai/whisper");
    Info {
        asr: vec![AsrProgram {
            artifact: Artifact::new("hearth-asr", "Hearth speech to text", by, Some("0.1.0")),
            models: vec![LanguageModel {
                artifact: Artifact::new("whisper-tiny-en", "Whisper tiny.en", by, None),
                languages: vec!["en".into()],
            }],
            supports_transcript_streaming: true,
        }],
        tts: vec![TtsProgram {
            artifact: Artifact::new(
                "hearth-tts",
                "Hearth text to speech",
                ("rhasspy", "https://github.com/rhasspy/piper"),
                None,
            ),
            voices: vec![TtsVoice {
                artifact: Artifact::new(
                    "en_US-joe-medium",
                    "Joe",
                    ("rhasspy", "https://github.com/rhasspy/piper"),
                    None,
                ),
                languages: vec!["en_US".into()],
                speakers: None,
            }],
            supports_synthesize_streaming: false,
        }],
        ..Default::default()
    }
}

/// One of every typed event.
fn every_event() -> Vec<Event> {
    let format = AudioFormat { rate: 16_000, width: 2, channels: 1 };
    vec![
        Event::Describe,
        Event::Info(Box::new(sample_info())),
        Event::Transcribe(Transcribe {
            name: Some("whisper-tiny-en".into()),
            language: Some("en".into()),
            context: None,
        }),
        Event::Transcribe(Transcribe::default()),
        Event::AudioStart(AudioStart { format, timestamp: Some(0) }),
        Event::AudioChunk(AudioChunk { format, timestamp: Some(64), audio: vec![1, 2, 3, 4] }),
        Event::AudioChunk(AudioChunk { format, timestamp: None, audio: vec![] }),
        Event::AudioStop(AudioStop { timestamp: Some(1_000) }),
        Event::Transcript(Transcript {
            text: "Turn on the lights. ünïcode ✓".into(),
            language: Some("en".into()),
            context: Some(map(json!({"a": 1}))),
        }),
        Event::TranscriptStart(TranscriptStart { language: Some("en".into()), context: None }),
        Event::TranscriptChunk(TextChunk { text: "Turn on".into() }),
        Event::TranscriptStop,
        Event::Synthesize(Synthesize {
            text: "Hello there.".into(),
            voice: Some(SynthesizeVoice { name: Some("en_US-joe-medium".into()), ..Default::default() }),
        }),
        Event::Synthesize(Synthesize { text: "No voice.".into(), voice: None }),
        Event::Handled(Handled { text: Some("The lights are on.".into()), context: None }),
        Event::NotHandled(Handled::default()),
        Event::Error(ErrorEvent { text: "model not ready".into(), code: Some("model_not_ready".into()) }),
        Event::Ping(Ping { text: Some("x".into()) }),
        Event::Pong(Ping::default()),
        Event::Other(RawEvent {
            kind: "detect".into(),
            data: map(json!({"names": ["ok_nabu"]})),
            payload: None,
        }),
    ]
}

#[tokio::test]
async fn every_event_round_trips() {
    let mut stream = Vec::new();
    for event in every_event() {
        let bytes = encode_event(&event.to_raw());
        let back = Event::from_raw(decode(&bytes, &Limits::default()).await.unwrap().unwrap()).unwrap();
        assert_eq!(back, event, "{}", String::from_utf8_lossy(&bytes));
        stream.extend_from_slice(&bytes);
    }
    // And all of them back to back on one stream.
    let mut reader = &stream[..];
    for event in every_event() {
        let raw = read_event(&mut reader, &Limits::default()).await.unwrap().unwrap();
        assert_eq!(Event::from_raw(raw).unwrap(), event);
    }
    assert!(read_event(&mut reader, &Limits::default()).await.unwrap().is_none());
}

#[tokio::test]
async fn the_wire_format_matches_the_python_library() {
    let chunk = Event::AudioChunk(AudioChunk {
        format: AudioFormat { rate: 16_000, width: 2, channels: 1 },
        timestamp: None,
        audio: vec![0, 1],
    });
    let bytes = encode_event(&chunk.to_raw());
    let text = String::from_utf8_lossy(&bytes);
    let (header, rest) = text.split_once('\n').unwrap();
    let header: serde_json::Value = serde_json::from_str(header).unwrap();
    assert_eq!(header["type"], "audio-chunk");
    assert_eq!(header["version"], PROTOCOL_VERSION);
    assert_eq!(header["payload_length"], 2);
    let data_length = header["data_length"].as_u64().unwrap() as usize;
    let data: serde_json::Value = serde_json::from_str(&rest[..data_length]).unwrap();
    assert_eq!(data, json!({"rate": 16000, "width": 2, "channels": 1}));
    assert_eq!(&bytes[bytes.len() - 2..], [0, 1]);
    // Events without data or payload are a bare header line.
    assert_eq!(
        encode_event(&Event::Describe.to_raw()),
        br#"{"type":"describe","version":"1.10.2"}"#.to_vec().into_iter().chain([b'\n']).collect::<Vec<u8>>()
    );

    // As wyoming 1.10 writes it: timestamp null, non-ASCII kept, data after the header.
    let data = r#"{"rate": 22050, "width": 2, "channels": 1, "timestamp": null}"#;
    let python = format!(
        "{{\"type\": \"audio-start\", \"version\": \"1.10.2\", \"data_length\": {}}}\n{data}",
        data.len()
    );
    let event =
        Event::from_raw(decode(python.as_bytes(), &Limits::default()).await.unwrap().unwrap()).unwrap();
    assert_eq!(
        event,
        Event::AudioStart(AudioStart {
            format: AudioFormat { rate: 22_050, width: 2, channels: 1 },
            timestamp: None
        })
    );
}

#[tokio::test]
async fn inline_data_and_data_length_are_merged() {
    let extra = r#"{"text": "from data", "language": "en"}"#;
    let bytes = format!(
        "{{\"type\": \"transcript\", \"data\": {{\"text\": \"inline\", \"context\": {{\"k\": 1}}}}, \"data_length\": {}}}\n{extra}",
        extra.len()
    );
    let raw = decode(bytes.as_bytes(), &Limits::default()).await.unwrap().unwrap();
    let Event::Transcript(t) = Event::from_raw(raw).unwrap() else { panic!() };
    assert_eq!(t.text, "from data");
    assert_eq!(t.language.as_deref(), Some("en"));
    assert_eq!(t.context, Some(map(json!({"k": 1}))));
    // The older inline-only form.
    let raw = decode(b"{\"type\": \"synthesize\", \"data\": {\"text\": \"hi\"}}\n", &Limits::default())
        .await
        .unwrap();
    assert_eq!(
        Event::from_raw(raw.unwrap()).unwrap(),
        Event::Synthesize(Synthesize { text: "hi".into(), voice: None })
    );
}

#[tokio::test]
async fn limits_and_malformed_input_are_errors_not_panics() {
    let small = Limits { max_header: 64, max_data: 16, max_payload: 8 };
    let long = format!("{{\"type\": \"describe\", \"pad\": \"{}\"}}\n", "x".repeat(100));
    assert!(matches!(decode(long.as_bytes(), &small).await, Err(WyomingError::HeaderTooLong { limit: 64 })));
    let big_payload = b"{\"type\": \"audio-chunk\", \"payload_length\": 9}\n123456789";
    assert!(matches!(
        decode(big_payload, &small).await,
        Err(WyomingError::TooLong { what: "event payload", len: 9, .. })
    ));
    let absurd = b"{\"type\": \"audio-chunk\", \"payload_length\": 18446744073709551615}\n";
    assert!(matches!(decode(absurd, &Limits::default()).await, Err(WyomingError::TooLong { .. })));
    let big_data = b"{\"type\": \"x\", \"data_length\": 17}\n";
    assert!(matches!(decode(big_data, &small).await, Err(WyomingError::TooLong { what: "event data", .. })));

    let cases: [(&[u8], &str); 9] = [
        (b"{\"type\": \"audio-chunk\", \"payload_length\": 4}\n12", "closed in the middle"),
        (b"{\"type\": \"describe\"", "closed in the middle"),
        (b"not json\n", "invalid event header"),
        (b"[1, 2]\n", "not a JSON object"),
        (b"{\"data\": {}}\n", "no \"type\""),
        (b"{\"type\": \"x\", \"data\": 3}\n", "\"data\" is not an object"),
        (b"{\"type\": \"x\", \"payload_length\": -1}\n", "not a length"),
        (b"{\"type\": \"x\", \"data_length\": 3}\n[1]", "not a JSON object"),
        (b"{\"type\": \"x\", \"data_length\": 3}\n{{{", "invalid event data"),
    ];
    for (bytes, text) in cases {
        let err = decode(bytes, &Limits::default()).await.unwrap_err();
        assert!(err.to_string().contains(text), "{}: {err}", String::from_utf8_lossy(bytes));
        assert!(!err.is_recoverable());
    }
    // Known types with wrong fields are recoverable errors.
    let raw = decode(b"{\"type\": \"audio-start\", \"data\": {\"rate\": \"fast\"}}\n", &Limits::default())
        .await
        .unwrap()
        .unwrap();
    let err = Event::from_raw(raw).unwrap_err();
    assert!(err.is_recoverable() && err.to_string().contains("invalid 'audio-start' event"), "{err}");
    let raw = decode(b"{\"type\": \"synthesize\"}\n", &Limits::default()).await.unwrap().unwrap();
    assert!(Event::from_raw(raw).unwrap_err().to_string().contains("missing field `text`"));

    // Blank lines between events are skipped; end of input is a clean close.
    let raw = decode(b"\n\r\n{\"type\": \"describe\"}\n", &Limits::default()).await.unwrap().unwrap();
    assert_eq!(raw.kind, "describe");
    assert!(decode(b"", &Limits::default()).await.unwrap().is_none());
    assert!(decode(b"\n\n", &Limits::default()).await.unwrap().is_none());
}

#[tokio::test]
async fn random_bytes_never_panic() {
    use rand::{Rng, RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let valid = encode_event(&every_event()[5].to_raw());
    let limits = Limits { max_header: 256, max_data: 256, max_payload: 256 };
    for i in 0..2_000 {
        let bytes = if i % 2 == 0 {
            let mut b = vec![0u8; rng.gen_range(0..120)];
            rng.fill_bytes(&mut b);
            b
        } else {
            let mut b = valid.clone();
            let at = rng.gen_range(0..b.len());
            b[at] = rng.gen();
            b.truncate(rng.gen_range(0..=b.len()));
            b
        };
        let mut reader = &bytes[..];
        while let Ok(Some(raw)) = read_event(&mut reader, &limits).await {
            let _ = Event::from_raw(raw);
        }
    }
}

#[test]
fn info_serializes_like_the_python_library() {
    let value = serde_json::to_value(sample_info()).unwrap();
    let asr = &value["asr"][0];
    assert_eq!(asr["name"], "hearth-asr");
    assert_eq!(asr["attribution"]["url"], "https://github.com/openai/whisper");
    assert_eq!(asr["installed"], true);
    assert_eq!(asr["supports_transcript_streaming"], true);
    assert_eq!(asr["models"][0]["languages"], json!(["en"]));
    assert!(asr["models"][0]["version"].is_null() && asr["models"][0].get("version").is_some());
    assert_eq!(value["tts"][0]["voices"][0]["name"], "en_US-joe-medium");
    for key in ["handle", "intent", "wake", "mic", "snd"] {
        assert_eq!(value[key], json!([]), "{key}");
    }
    assert!(value.get("satellite").is_none());
}
