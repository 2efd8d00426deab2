//! `POST /v1/audio/transcriptions` against the real server with whisper tiny.en, in the
//! same process as the language model.

use crate::common::{code, small_model, Server, ServerOptions};
use hearth::audio::{decode_wav, encode_wav, resample, AudioLimits};
use serde_json::{json, Value};
use std::time::Duration;

const SPEECH: &[u8] = include_bytes!("../data/speech_kitchen.wav");
const BOUNDARY: &str = "hearth-audio-boundary-51c2";

/// A server with the small LLM, whisper tiny.en and the Piper voice, all ready.
fn voice_server() -> (Server, String) {
    let server = Server::start(ServerOptions::new(small_model()).env("HEARTH_STT_MODEL", "whisper-tiny-en"));
    server.wait_voice();
    let token = server.user("alice");
    (server, token)
}

/// multipart/form-data with the audio in `file` and the given text fields.
fn form(file: Option<&[u8]>, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
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

/// `POST /v1/audio/transcriptions` with `file` and form fields; (status, body).
pub(crate) fn transcribe(server: &Server, token: &str, file: &[u8], fields: &[(&str, &str)]) -> (u16, Value) {
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
    // Whisper's OpenMP workers ended with the transcription's thread (`engine::omp`).
    server.wait_threads_named("hearth-stt-run", 0);
    server.wait_threads_named("hearth-stt", 1);

    let (status, verbose) = transcribe(&server, &token, SPEECH, &[("response_format", "verbose_json")]);
    assert_eq!(status, 200, "{verbose}");
    assert_eq!(verbose["language"], "en");
    assert!((verbose["duration"].as_f64().unwrap() - 3.2167).abs() < 0.01, "{verbose}");
    let segments = verbose["segments"].as_array().unwrap();
    assert!(!segments.is_empty() && segments[0]["start"].as_f64() == Some(0.0), "{verbose}");

    let (status, text) =
        transcribe(&server, &token, SPEECH, &[("response_format", "text"), ("language", "en")]);
    assert_eq!(status, 200);
    assert!(words(text.as_str().unwrap()).contains("kitchen"), "{text}");

    let (status, srt) = transcribe(&server, &token, SPEECH, &[("response_format", "srt")]);
    assert_eq!(status, 200);
    assert!(srt.as_str().unwrap().starts_with("1\n00:00:00,000 --> "), "{srt}");

    // 44.1 kHz stereo is resampled and mixed down.
    let (status, body) = transcribe(&server, &token, &stereo_44k1(), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(words(body["text"].as_str().unwrap()).contains("kitchen"), "{body}");

    let (_, metrics) = server.call("GET", "/metrics", Some(&token), None);
    let metrics = metrics.as_str().unwrap();
    assert!(metrics.contains("hearth_voice_stage_seconds_count{stage=\"transcribe\"} 5"), "{metrics}");
}

#[test]
fn voice_transcription_rejects_bad_audio_and_requests_with_codes() {
    let (server, token) = voice_server();
    let mut corrupt = SPEECH[..44].to_vec();
    corrupt[20] = 0x55; // format tag: nothing known
    corrupt.extend_from_slice(&SPEECH[44..2000]);
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("not audio", b"hello, this is text".to_vec(), vec![], 415, "unsupported_media_type"),
        (
            "an MP3",
            b"ID3\x04\x00\x00\x00\x00\x00\x00 mp3 frames".to_vec(),
            vec![],
            415,
            "unsupported_media_type",
        ),
        ("a truncated WAV", SPEECH[..30].to_vec(), vec![], 400, "invalid_audio"),
        ("an unknown sample format", corrupt, vec![], 415, "unsupported_media_type"),
        ("an empty file", Vec::new(), vec![], 400, "invalid_audio"),
        // Past voice.max_audio_seconds (300 by default): 301 s of 8 kHz silence.
        ("too long", encode_wav(&vec![0i16; 8000 * 301], 8000, 1), vec![], 413, "audio_too_long"),
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
    let (status, body) =
        server.raw("/v1/audio/transcriptions", "hth_wrong", &content_type, &form(Some(SPEECH), &[]));
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    // Still serving.
    let (status, body) = transcribe(&server, &token, SPEECH, &[]);
    assert_eq!(status, 200, "{body}");
}

fn speak(server: &Server, token: &str, body: Value) -> (u16, Vec<u8>, Option<String>, Option<String>) {
    let result = ureq::post(&format!("{}/v1/audio/speech", server.url))
        .set("Authorization", &format!("Bearer {token}"))
        .timeout(Duration::from_secs(120))
        .send_json(body);
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = response.status();
    let content_type = response.header("Content-Type").map(String::from);
    let rate = response.header("X-Sample-Rate").map(String::from);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
    (status, bytes, content_type, rate)
}

#[test]
fn voice_speech_round_trips_through_whisper_and_streams_pcm() {
    let (server, token) = voice_server();
    let (status, voices) = server.call("GET", "/v1/audio/voices", Some(&token), None);
    assert_eq!(status, 200, "{voices}");
    let name = voices["voices"][0]["name"].as_str().expect("an installed voice").to_string();
    assert_eq!(voices["voices"][0]["default"], true, "{voices}");

    // Text → speech (WAV) → text recovers the sentence.
    let sentence = "Please turn on the kitchen light.";
    let (status, wav, content_type, _) =
        speak(&server, &token, json!({"input": sentence, "voice": "default"}));
    assert_eq!(
        (status, content_type.as_deref()),
        (200, Some("audio/wav")),
        "{}",
        String::from_utf8_lossy(&wav)
    );
    let audio = decode_wav(&wav, &AudioLimits::default()).unwrap();
    assert_eq!((audio.info.sample_rate, audio.info.channels), (22_050, 1));
    let (status, body) = transcribe(&server, &token, &wav, &[]);
    assert_eq!(status, 200, "{body}");
    assert!(words(body["text"].as_str().unwrap()).contains("kitchen light"), "{body}");

    // Raw PCM streams sentence by sentence at the voice's rate; the voice may be named.
    let two = "The kitchen light is on. The hall light is off.";
    let body = json!({"input": two, "voice": name, "response_format": "pcm", "speed": 1.5});
    let (status, pcm, content_type, rate) = speak(&server, &token, body);
    assert_eq!((status, content_type.as_deref(), rate.as_deref()), (200, Some("audio/pcm"), Some("22050")));
    let seconds = pcm.len() as f64 / 2.0 / 22_050.0;
    assert!((1.0..6.0).contains(&seconds), "{seconds} s for two short sentences at 1.5x");

    let long = "word ".repeat(1000);
    let cases = [
        (json!({"input": "   "}), 400, "invalid_request"),
        (json!({"input": long}), 400, "invalid_request"),
        (json!({"input": "hi", "voice": "alloy"}), 404, "voice_not_found"),
        (json!({"input": "hi", "response_format": "mp3"}), 400, "invalid_request"),
        (json!({"input": "hi", "speed": 9}), 400, "invalid_request"),
        (json!({"input": "hi", "colour": "blue"}), 400, "invalid_request"),
    ];
    for (body, status, expected) in cases {
        let (got, bytes, _, _) = speak(&server, &token, body.clone());
        let error: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!((got, code(&error)), (status, expected), "{body}: {error}");
    }
}

#[test]
fn voice_doctor_says_what_is_missing_and_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |envs: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(crate::common::BIN);
        cmd.args(["doctor", "--data-dir"]).arg(dir.path()).env("HEARTH_CONFIG", "/dev/null");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // With the test models installed in the cache, speech is ready.
    let (code, out) = run(&[("HEARTH_STT_MODEL", "whisper-tiny-en")]);
    assert!(out.contains("ok      speech to text") && out.contains("ok      text to speech"), "{out}");
    assert!(out.contains("ok      onnx runtime"), "{out}");
    assert!(code.is_some(), "{out}");
    // A missing voice and a file that is not ONNX Runtime are named, with fixes; exit 1.
    let bogus = dir.path().join("libonnxruntime.so");
    std::fs::write(&bogus, b"not a library").unwrap();
    let (code, out) = run(&[
        ("HEARTH_STT_MODEL", "/nowhere/ggml.bin"),
        ("HEARTH_TTS_VOICE", "/nowhere/voice.onnx"),
        ("HEARTH_ONNXRUNTIME", bogus.to_str().unwrap()),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("MISSING speech to text"), "{out}");
    assert!(
        out.contains("MISSING text to speech") && out.contains("fix: hearth models pull piper-joe"),
        "{out}"
    );
    assert!(out.contains("FAILED  onnx runtime") && out.contains("not a shared library"), "{out}");
}
