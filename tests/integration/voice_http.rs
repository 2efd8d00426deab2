//! `POST /v1/audio/transcriptions` against the real server with whisper tiny.en, in the
//! same process as the language model.

use crate::common::{code, small_model, Server, ServerOptions};
use hearth::audio::{decode_wav, encode_wav, resample, AudioLimits};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SPEECH: &[u8] = include_bytes!("../data/speech_kitchen.wav");
const BOUNDARY: &str = "hearth-audio-boundary-51c2";

/// A server with the small LLM and whisper tiny.en, both ready.
fn voice_server() -> (Server, String) {
    let server = Server::start(ServerOptions::new(small_model()).env("HEARTH_STT_MODEL", "whisper-tiny-en"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let health = server.health().unwrap();
        match health["components"]["speech_to_text"]["state"].as_str() {
            Some("ready") => break,
            Some("failed") => panic!("speech to text failed: {health}\n{}", server.log()),
            _ => {}
        }
        assert!(Instant::now() < deadline, "speech to text did not load:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let token = server.user("alice");
    (server, token)
}

/// multipart/form-data with the audio in `file` and the given text fields.
fn form(file: Option<&[u8]>, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    if let Some(bytes) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"speech.wav\"\r\n\
                 Content-Type: audio/wav\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn transcribe(server: &Server, token: &str, file: &[u8], fields: &[(&str, &str)]) -> (u16, Value) {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    server.raw("/v1/audio/transcriptions", token, &content_type, &form(Some(file), fields))
}

fn words(text: &str) -> String {
    text.to_lowercase().chars().filter(|c| c.is_alphanumeric() || c.is_whitespace()).collect()
}

/// The fixture as 44.1 kHz stereo 16-bit WAV (left and right slightly different).
fn stereo_44k1() -> Vec<u8> {
    let audio = decode_wav(SPEECH, &AudioLimits::default()).unwrap();
    let up = resample(&audio.samples, audio.info.sample_rate, 44_100);
    let interleaved: Vec<i16> =
        up.iter().flat_map(|&v| [(v * 32767.0) as i16, (v * 0.8 * 32767.0) as i16]).collect();
    encode_wav(&interleaved, 44_100, 2)
}

#[test]
fn voice_transcription_in_every_format_and_beside_the_llm() {
    let (server, token) = voice_server();

    // The LLM answers, then whisper in the same process, then the LLM again.
    let chat = json!({"message": "Say hello.", "max_tokens": 8, "temperature": 0});
    let (status, reply) = server.call("POST", "/api/chat", Some(&token), Some(&chat));
    assert_eq!(status, 200, "{reply}");

    let (status, body) = transcribe(&server, &token, SPEECH, &[("model", "whisper-1")]);
    assert_eq!(status, 200, "{body}");
    assert!(words(body["text"].as_str().unwrap()).contains("kitchen light"), "{body}");

    let (status, again) = server.call("POST", "/api/chat", Some(&token), Some(&chat));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["reply"], reply["reply"], "greedy replies are the same before and after whisper ran");

    let (status, verbose) = transcribe(&server, &token, SPEECH, &[("response_format", "verbose_json")]);
    assert_eq!(status, 200, "{verbose}");
    assert_eq!(verbose["language"], "en");
    assert!((verbose["duration"].as_f64().unwrap() - 3.2167).abs() < 0.01, "{verbose}");
    let segments = verbose["segments"].as_array().unwrap();
    assert!(!segments.is_empty() && segments[0]["start"].as_f64() == Some(0.0), "{verbose}");

    let (status, text) = transcribe(&server, &token, SPEECH, &[("response_format", "text"), ("language", "en")]);
    assert_eq!(status, 200);
    assert!(words(text.as_str().unwrap()).contains("kitchen"), "{text}");

    let (status, srt) = transcribe(&server, &token, SPEECH, &[("response_format", "srt")]);
    assert_eq!(status, 200);
    assert!(srt.as_str().unwrap().starts_with("1\n00:00:00,000 --> "), "{srt}");

    // 44.1 kHz stereo is resampled and mixed down.
    let (status, body) = transcribe(&server, &token, &stereo_44k1(), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(words(body["text"].as_str().unwrap()).contains("kitchen"), "{body}");

    let metrics = ureq::get(&format!("{}/metrics", server.url))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(metrics.contains("hearth_voice_stage_seconds_count{stage=\"transcribe\"} 5"), "{metrics}");
}

#[test]
fn voice_transcription_rejects_bad_audio_and_requests_with_codes() {
    let (server, token) = voice_server();
    let mut corrupt = SPEECH[..44].to_vec();
    corrupt[20] = 0x55; // format tag: nothing known
    corrupt.extend_from_slice(&SPEECH[44..2000]);
    let cases: Vec<(&str, Vec<u8>, Vec<(&str, &str)>, u16, &str)> = vec![
        ("not audio", b"hello, this is text".to_vec(), vec![], 415, "unsupported_media_type"),
        ("an MP3", b"ID3\x04\x00\x00\x00\x00\x00\x00 mp3 frames".to_vec(), vec![], 415, "unsupported_media_type"),
        ("a truncated WAV", SPEECH[..30].to_vec(), vec![], 400, "invalid_audio"),
        ("an unknown sample format", corrupt, vec![], 415, "unsupported_media_type"),
        ("an empty file", Vec::new(), vec![], 400, "invalid_audio"),
        ("a bad format", SPEECH.to_vec(), vec![("response_format", "mp3")], 400, "invalid_request"),
        ("a bad temperature", SPEECH.to_vec(), vec![("temperature", "hot")], 400, "invalid_request"),
        ("an unknown language", SPEECH.to_vec(), vec![("language", "xx")], 400, "invalid_request"),
    ];
    for (what, file, fields, status, expected) in cases {
        let (got, body) = transcribe(&server, &token, &file, &fields);
        assert_eq!((got, code(&body)), (status, expected), "{what}: {body}");
    }
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let (status, body) = server.raw("/v1/audio/transcriptions", &token, &content_type, &form(None, &[]));
    assert_eq!((status, code(&body)), (400, "invalid_request"), "{body}");
    let (status, body) = server.raw("/v1/audio/transcriptions", &token, "application/json", b"{}");
    assert_eq!((status, code(&body)), (415, "unsupported_media_type"), "{body}");
    let (status, body) = server.raw("/v1/audio/transcriptions", "hth_wrong", &content_type, &form(Some(SPEECH), &[]));
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    // Still serving.
    let (status, body) = transcribe(&server, &token, SPEECH, &[]);
    assert_eq!(status, 200, "{body}");
}
