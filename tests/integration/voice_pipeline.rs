//! The voice pipeline end to end on the real server: whisper tiny.en, the small LLM and
//! the Piper voice in one process, over the WebSocket (`/api/ws`) and over Wyoming with
//! the official Python client.

use crate::common::{small_model, Server, ServerOptions};
use hearth::audio::{decode_wav, AudioLimits};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
use tungstenite::{client::IntoClientRequest, stream::MaybeTlsStream, Message, WebSocket};

const SPEECH: &[u8] = include_bytes!("../data/speech_kitchen.wav");

fn words(text: &str) -> String {
    text.to_lowercase().chars().filter(|c| c.is_alphanumeric() || c.is_whitespace()).collect()
}

fn options() -> ServerOptions {
    ServerOptions::new(small_model())
        .env("HEARTH_STT_MODEL", "whisper-tiny-en")
        .env("HEARTH_TTS_VOICE", "piper-joe")
        .env("HEARTH_MAX_TOKENS", "40")
}

pub(crate) type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

pub(crate) fn connect(server: &Server, token: &str) -> Socket {
    let url = format!("{}/api/ws", server.url.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tungstenite::connect(request).expect("WebSocket handshake");
    if let MaybeTlsStream::Plain(stream) = socket.get_mut() {
        stream.set_read_timeout(Some(Duration::from_secs(180))).unwrap();
    }
    let ready = next_json(&mut socket);
    assert_eq!(ready["type"], "ready", "{ready}");
    socket
}

pub(crate) fn send(socket: &mut Socket, value: Value) {
    socket.send(Message::text(value.to_string())).unwrap();
}

fn next_json(socket: &mut Socket) -> Value {
    loop {
        match socket.read().expect("a message") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Binary(_) => panic!("audio before any JSON"),
            _ => continue,
        }
    }
}

/// What one turn sent back, up to `done` or `error`.
#[derive(Debug, Default)]
pub(crate) struct Turn {
    pub(crate) events: Vec<Value>,
    pub(crate) audio_bytes: usize,
}

impl Turn {
    pub(crate) fn of(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == kind).collect()
    }

    pub(crate) fn last(&self) -> &Value {
        self.events.last().unwrap()
    }
}

/// Speaks `pcm` (16 kHz s16le) into a new turn, push-to-talk, and reads the turn.
pub(crate) fn ask_by_voice(socket: &mut Socket, pcm: &[u8]) -> Turn {
    send(socket, json!({"type": "start", "vad_silence_ms": 600}));
    for frame in pcm.chunks(640) {
        socket.send(Message::binary(frame.to_vec())).unwrap();
    }
    send(socket, json!({"type": "stop"}));
    read_turn(socket)
}

pub(crate) fn read_turn(socket: &mut Socket) -> Turn {
    let mut turn = Turn::default();
    loop {
        match socket.read().expect("a message") {
            Message::Binary(bytes) => {
                assert!(!turn.of("audio_start").is_empty(), "audio before audio_start");
                turn.audio_bytes += bytes.len();
            }
            Message::Text(text) => {
                let event: Value = serde_json::from_str(&text).unwrap();
                let end = event["type"] == "done" || event["type"] == "error";
                turn.events.push(event);
                if end {
                    return turn;
                }
            }
            _ => {}
        }
    }
}

/// The fixture as 16 kHz s16le PCM.
fn pcm_16k() -> Vec<u8> {
    let audio = decode_wav(SPEECH, &AudioLimits::default()).unwrap();
    assert_eq!(audio.info.sample_rate, 16_000);
    audio.samples.iter().flat_map(|&v| ((v * 32767.0) as i16).to_le_bytes()).collect()
}

#[test]
fn voice_websocket_turns_speech_into_a_spoken_stored_answer() {
    let server = Server::start(options());
    server.wait_voice();
    let token = server.user("alice");
    let mut socket = connect(&server, &token);

    // Push to talk: 20 ms frames, then release.
    send(&mut socket, json!({"type": "start", "vad_silence_ms": 600}));
    for frame in pcm_16k().chunks(640) {
        socket.send(Message::binary(frame.to_vec())).unwrap();
    }
    send(&mut socket, json!({"type": "stop"}));
    let turn = read_turn(&mut socket);
    let done = turn.last();
    assert_eq!(done["type"], "done", "{:?}\n{}", turn.events, server.log());
    let transcript = turn.of("transcript")[0]["text"].as_str().unwrap().to_string();
    assert!(words(&transcript).contains("kitchen"), "{transcript}");
    let deltas: String = turn.of("reply_delta").iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert_eq!(deltas, done["reply"].as_str().unwrap());
    assert_eq!(turn.of("audio_start")[0]["rate"], 22050);
    assert!(turn.audio_bytes > 22050, "at least half a second of speech: {} bytes", turn.audio_bytes);
    assert_eq!(turn.of("audio_end").len(), 1);
    eprintln!("voice turn stages: {}", done["metrics"]);
    for stage in
        ["speech_end_to_transcript_ms", "transcript_to_first_token_ms", "speech_end_to_first_audio_ms"]
    {
        assert!(done["metrics"][stage].as_f64().is_some_and(|v| v >= 0.0), "{stage}: {done}");
    }

    // The turn is stored like a typed one, with the transcript as the user's message.
    let id = done["conversation_id"].as_str().unwrap();
    let (status, conversation) = server.call("GET", &format!("/api/conversations/{id}"), Some(&token), None);
    assert_eq!(status, 200, "{conversation}");
    let messages = conversation["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{conversation}");
    assert_eq!(messages[0]["content"], transcript.as_str());

    // A typed turn continues the same conversation, and is spoken too.
    send(&mut socket, json!({"type": "text", "text": "Thank you."}));
    let turn = read_turn(&mut socket);
    assert_eq!(turn.last()["type"], "done", "{:?}", turn.events);
    assert_eq!(turn.last()["conversation_id"], id);
    assert!(turn.audio_bytes > 0);

    // Bad messages get error events with codes; the socket stays usable.
    socket.send(Message::text("{not json")).unwrap();
    assert_eq!(next_json(&mut socket)["code"], "invalid_json");
    send(&mut socket, json!({"type": "start", "vad_silence_ms": 5}));
    assert_eq!(next_json(&mut socket)["code"], "invalid_request");
    send(&mut socket, json!({"type": "stop"}));
    assert_eq!(next_json(&mut socket)["type"], "no_speech");

    // Cancel stops an answer and its speech: nothing of it arrives after `cancelled`
    // (read_turn fails on audio before the next turn's audio_start).
    send(&mut socket, json!({"type": "text", "text": "Tell me a long story about a kitchen."}));
    loop {
        match socket.read().unwrap() {
            Message::Text(t) if t.contains("\"audio_start\"") => break,
            Message::Text(t) if t.contains("\"done\"") => break,
            _ => {}
        }
    }
    send(&mut socket, json!({"type": "cancel"}));
    loop {
        if let Message::Text(t) = socket.read().unwrap() {
            if t.contains("\"cancelled\"") {
                break;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    send(&mut socket, json!({"type": "text", "text": "Hello."}));
    let turn = read_turn(&mut socket);
    assert_eq!(turn.last()["type"], "done", "{:?}", turn.events);

    // Hanging up mid-answer stops it; the server goes on serving.
    send(&mut socket, json!({"type": "text", "text": "Tell me a long story about a kitchen."}));
    let first = next_json(&mut socket);
    assert!(first["type"] == "reply_delta" || first["type"] == "error", "{first}");
    drop(socket);
    let mut socket = connect(&server, &token);
    send(&mut socket, json!({"type": "text", "text": "Hello."}));
    assert_eq!(read_turn(&mut socket).last()["type"], "done");

    let (_, metrics) = server.call("GET", "/metrics", Some(&token), None);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("hearth_voice_stage_seconds_count{stage=\"speech_end_to_first_audio\"}"),
        "{metrics}"
    );
}

#[test]
fn voice_websocket_needs_auth_and_the_same_origin() {
    let server = Server::start(options());
    let token = server.user("bob");
    let url = format!("{}/api/ws", server.url.replace("http://", "ws://"));
    match tungstenite::connect(url.as_str()) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
    request.headers_mut().insert("Origin", "http://evil.example".parse().unwrap());
    match tungstenite::connect(request) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    // A message over the 1 MiB limit is refused with a code, then the socket is closed.
    let mut socket = connect(&server, &token);
    socket.send(Message::binary(vec![0u8; 2 << 20])).unwrap();
    let error = next_json(&mut socket);
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("payload_too_large")),
        "{error}"
    );
}

/// A Python with the official `wyoming` package; a missing one fails the test and says
/// how to get it (scripts/test.sh makes one).
pub(crate) fn python() -> String {
    let python = std::env::var("HEARTH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", "import wyoming"]).output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "{python} has no `wyoming` package: pip install 'wyoming>=1.5,<2', or set HEARTH_TEST_PYTHON \
         (scripts/test.sh makes .venv-test)"
    );
    python
}

fn wyoming_client(python: &str, port: u16, args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/wyoming_hearth.py");
    let out =
        Command::new(python).arg(script).args(["127.0.0.1", &port.to_string()]).args(args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "wyoming client failed:\n{stdout}\n{stderr}");
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn voice_wyoming_serves_home_assistant_with_the_real_engines() {
    let python = python();
    let port = free_port();
    let server = Server::start(options().env("HEARTH_WYOMING_LISTEN", &format!("127.0.0.1:{port}")));
    server.wait_voice();
    let wav = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/speech_kitchen.wav");
    let report = wyoming_client(&python, port, &[wav]);
    assert_eq!(report["asr"], json!(["hearth-whisper"]), "{report}");
    assert_eq!(report["handle"], json!(["hearth-assistant"]), "{report}");
    assert!(report["tts_voices"].as_array().is_some_and(|v| !v.is_empty()), "{report}");
    assert!(words(report["transcript"].as_str().unwrap()).contains("kitchen"), "{report}");
    let streaming = &report["streaming"];
    assert_eq!(
        (streaming["start"].as_bool(), streaming["stop"].as_bool()),
        (Some(true), Some(true)),
        "{report}"
    );
    assert_eq!(streaming["chunks"].as_str().map(str::trim), report["transcript"].as_str(), "{report}");
    assert_eq!((report["tts"]["rate"].as_u64(), report["tts"]["width"].as_u64()), (Some(22050), Some(2)));
    // Text → speech → text recovers the sentence.
    assert!(words(report["round_trip"].as_str().unwrap()).contains("kitchen light"), "{report}");
    assert!(report["handled"].as_str().is_some_and(|t| !t.trim().is_empty()), "{report}");
}

#[test]
fn voice_wyoming_wants_a_token_from_peers_off_the_allowlist() {
    let python = python();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.toml");
    std::fs::write(&config, format!("[voice]\nwyoming_listen = \"127.0.0.1:{port}\"\nwyoming_allow = []\n"))
        .unwrap();
    let server = Server::start(options().env("HEARTH_CONFIG", config.to_str().unwrap()));
    server.wait_voice();
    let refused = wyoming_client(&python, port, &["--expect-refusal"]);
    assert_eq!(refused, json!({"refused": "unauthorized", "closed": true}));
    let token = server.user("carol");
    let wav = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/speech_kitchen.wav");
    let report = wyoming_client(&python, port, &[wav, "--token", &token]);
    assert!(words(report["transcript"].as_str().unwrap()).contains("kitchen"), "{report}");
}

/// A live voice WebSocket ends when its credential does: a revoked token closes it at
/// once, while another user's revocation leaves it alone (issue 25: live connections
/// outlived a revoked credential).
#[test]
fn revoking_a_token_closes_its_live_websocket() {
    let server =
        Server::start(ServerOptions::new(small_model()).env("HEARTH_STT_MODEL", "/nowhere/none.bin"));
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut alices = connect(&server, &alice);
    let mut bobs = connect(&server, &bob);
    for socket in [&mut alices, &mut bobs] {
        if let MaybeTlsStream::Plain(stream) = socket.get_mut() {
            stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        }
    }
    let id_of = |token: &str| {
        let (_, list) = server.call("GET", "/api/tokens", Some(token), None);
        list["tokens"][0]["id"].as_i64().unwrap()
    };
    let (status, body) = server.call("DELETE", &format!("/api/tokens/{}", id_of(&bob)), Some(&bob), None);
    assert_eq!(status, 200, "{body}");
    // Bob's socket hears why and closes.
    let said = next_json(&mut bobs);
    assert_eq!(
        (said["type"].as_str(), said["code"].as_str()),
        (Some("error"), Some("unauthorized")),
        "{said}"
    );
    loop {
        match bobs.read() {
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(other) => assert!(!other.is_text(), "more after the revocation: {other:?}"),
        }
    }
    // Alice's socket, another credential, still answers.
    send(&mut alices, json!({"type": "cancel"}));
    assert_eq!(next_json(&mut alices)["type"], "cancelled");
}
