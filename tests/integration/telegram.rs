//! The Telegram channel (issue 23) against a fake Bot API server in this process: an
//! allowlisted chat is answered with a real answer and others get nothing; a voice
//! message is transcribed, answered in text and in a voice message; long-poll offsets
//! survive `kill -9` (no update answered twice, none lost); the token never reaches the log.

use crate::common::{default_model, small_model, Server, ServerOptions};
use hearth::audio::{
    decode_ogg_opus_16k_mono, decode_wav_16k_mono, encode_ogg_opus, f32_to_i16, AudioLimits,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "TESTsecretTOKENvalue";
pub(crate) const TOKEN: &str = "123456:TESTsecretTOKENvalue";
pub(crate) const ALICE_CHAT: i64 = 111;
const STRANGER_CHAT: i64 = 999;

/// One call the fake received: the method and its body (JSON; for `sendVoice`,
/// `{"chat_id", "audio"}` with the uploaded file kept in `FakeBot::voices`).
#[derive(Debug, Clone)]
struct Call {
    method: String,
    body: Value,
}

#[derive(Default)]
struct State {
    /// Updates not yet confirmed by an `offset` above them (Telegram forgets those).
    updates: Vec<Value>,
    calls: Vec<Call>,
    files: HashMap<String, Vec<u8>>,
    voices: Vec<Vec<u8>>,
}

/// A Bot API that records every call, serves queued updates to long polls, and can
/// stall or fail `sendMessage` on demand.
#[derive(Clone, Default)]
pub(crate) struct FakeBot {
    state: Arc<(Mutex<State>, Condvar)>,
    url: String,
    /// While set, `sendMessage` hangs and then drops the connection, unanswered.
    stall_sends: Arc<AtomicBool>,
    /// The next this many `sendMessage` calls get a 502.
    fail_sends: Arc<AtomicU32>,
}

impl FakeBot {
    pub(crate) fn start() -> FakeBot {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeBot { url, ..FakeBot::default() };
        let server = fake.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let fake = server.clone();
                std::thread::spawn(move || fake.serve(stream));
            }
        });
        fake
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                if header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let Some((status, content)) = self.answer(&path, &body) else {
                return; // dropped, unanswered
            };
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                content.len()
            );
            if writer.write_all(head.as_bytes()).and_then(|_| writer.write_all(&content)).is_err() {
                return;
            }
        }
    }

    fn answer(&self, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
        let ok = |result: Value| Some((200, json!({"ok": true, "result": result}).to_string().into_bytes()));
        if let Some(file) = path.strip_prefix(&format!("/file/bot{TOKEN}/")) {
            let state = self.state.0.lock().unwrap();
            return Some(match state.files.get(file) {
                Some(bytes) => (200, bytes.clone()),
                None => (404, b"{}".to_vec()),
            });
        }
        let Some(method) = path.strip_prefix(&format!("/bot{TOKEN}/")) else {
            return Some((404, br#"{"ok":false,"error_code":404,"description":"Not Found"}"#.to_vec()));
        };
        let body: Value = if method == "sendVoice" {
            let (chat_id, audio) = multipart(body);
            self.state.0.lock().unwrap().voices.push(audio.clone());
            json!({"chat_id": chat_id, "audio": audio.len()})
        } else {
            serde_json::from_slice(body).unwrap_or(Value::Null)
        };
        if method == "sendMessage" {
            if self.stall_sends.load(Ordering::SeqCst) {
                self.record("sendMessage (stalled)", body);
                while self.stall_sends.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return None;
            }
            if self.fail_sends.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
            {
                self.record("sendMessage (failed)", body);
                return Some((502, b"<html>Bad Gateway</html>".to_vec()));
            }
        }
        self.record(method, body.clone());
        match method {
            "getUpdates" => {
                let offset = body["offset"].as_i64();
                let deadline = Instant::now() + Duration::from_secs(body["timeout"].as_u64().unwrap_or(0));
                let (lock, ready) = &*self.state;
                let mut state = lock.lock().unwrap();
                if let Some(offset) = offset {
                    state.updates.retain(|u| u["update_id"].as_i64().unwrap() >= offset);
                }
                while state.updates.is_empty() && Instant::now() < deadline {
                    state = ready.wait_timeout(state, Duration::from_millis(100)).unwrap().0;
                }
                ok(Value::Array(state.updates.clone()))
            }
            "getFile" => {
                let id = body["file_id"].as_str().unwrap_or("");
                ok(json!({"file_id": id, "file_unique_id": "u", "file_path": format!("voice/{id}.oga")}))
            }
            "sendChatAction" => ok(json!(true)),
            _ => ok(json!({"message_id": 1, "date": 0, "chat": {"id": body["chat_id"], "type": "private"}})),
        }
    }

    fn record(&self, method: &str, body: Value) {
        self.state.0.lock().unwrap().calls.push(Call { method: method.into(), body });
    }

    fn push(&self, update: Value) {
        let (lock, ready) = &*self.state;
        lock.lock().unwrap().updates.push(update);
        ready.notify_all();
    }

    fn push_text(&self, update_id: i64, chat_id: i64, text: &str) {
        self.push(json!({"update_id": update_id, "message": {
            "message_id": update_id, "date": 0, "chat": {"id": chat_id, "type": "private"}, "text": text}}));
    }

    fn push_voice(&self, update_id: i64, chat_id: i64, ogg: Vec<u8>) {
        let file_id = format!("voice{update_id}");
        let size = ogg.len();
        self.state.0.lock().unwrap().files.insert(format!("voice/{file_id}.oga"), ogg);
        self.push(json!({"update_id": update_id, "message": {
            "message_id": update_id, "date": 0, "chat": {"id": chat_id, "type": "private"},
            "voice": {"file_id": file_id, "file_unique_id": "u", "duration": 3, "mime_type": "audio/ogg",
                      "file_size": size}}}));
    }

    fn calls(&self) -> Vec<Call> {
        self.state.0.lock().unwrap().calls.clone()
    }

    /// The texts sent to a chat.
    pub(crate) fn messages(&self, chat_id: i64) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == "sendMessage" && c.body["chat_id"] == chat_id)
            .map(|c| c.body["text"].as_str().unwrap().to_string())
            .collect()
    }

    /// Waits until `done` holds for the calls so far (or fails with them and the log).
    fn wait(&self, server: &Server, what: &str, done: impl Fn(&[Call]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(240);
        while !done(&self.calls()) {
            assert!(
                Instant::now() < deadline,
                "{what}: not seen; calls {:?}\n{}",
                self.calls(),
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn wait_messages(&self, server: &Server, chat_id: i64, n: usize) -> Vec<String> {
        self.wait(server, &format!("{n} messages to chat {chat_id}"), |_| self.messages(chat_id).len() >= n);
        self.messages(chat_id)
    }
}

/// The chat id and the uploaded file of a `sendVoice` multipart body.
fn multipart(body: &[u8]) -> (i64, Vec<u8>) {
    let text = String::from_utf8_lossy(body);
    let chat = text.split("name=\"chat_id\"\r\n\r\n").nth(1).and_then(|r| r.split("\r\n").next());
    let chat_id = chat.and_then(|c| c.trim().parse().ok()).unwrap_or(0);
    let start = body.windows(4).enumerate().filter(|(_, w)| w == b"\r\n\r\n").map(|(i, _)| i + 4).nth(1);
    let boundary_line = body.split(|&b| b == b'\r').next().unwrap_or(b"").to_vec();
    let audio = start
        .map(|start| {
            let rest = &body[start..];
            let mut end = [b"\r\n".as_slice(), &boundary_line].concat();
            end.shrink_to_fit();
            let at = rest.windows(end.len()).position(|w| w == end.as_slice()).unwrap_or(rest.len());
            rest[..at].to_vec()
        })
        .unwrap_or_default();
    (chat_id, audio)
}

pub(crate) fn options(model: std::path::PathBuf, fake: &FakeBot) -> ServerOptions {
    ServerOptions::new(model)
        .env("HEARTH_TELEGRAM_ENABLED", "true")
        .env("HEARTH_TELEGRAM_TOKEN", TOKEN)
        .env("HEARTH_TELEGRAM_API_BASE", &fake.url)
        .env("HEARTH_TELEGRAM_CHATS", &format!("{ALICE_CHAT}=alice"))
        .env("HEARTH_TELEGRAM_POLL_TIMEOUT_SECS", "2")
}

/// Alice's conversations: (id, the user messages in order, how many messages).
fn conversations(server: &Server, token: &str) -> Vec<(String, Vec<String>, usize)> {
    let (status, list) = server.call("GET", "/api/conversations", Some(token), None);
    assert_eq!(status, 200, "{list}");
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let id = c["id"].as_str().unwrap().to_string();
            let (_, body) = server.call("GET", &format!("/api/conversations/{id}"), Some(token), None);
            let messages = body["messages"].as_array().unwrap();
            let asked = messages
                .iter()
                .filter(|m| m["role"] == "user")
                .map(|m| m["content"].as_str().unwrap().to_string())
                .collect();
            (id, asked, messages.len())
        })
        .collect()
}

fn assert_token_not_logged(server: &Server) {
    let log = server.log();
    assert!(!log.contains(SECRET), "the bot token is in the server's log:\n{log}");
}

#[test]
fn an_allowlisted_chat_is_answered_in_its_conversation_and_other_chats_get_nothing() {
    let fake = FakeBot::start();
    // Greedy: the answers' words are checked, and the default temperature (0.7, a random
    // seed) once made the model say Milan for Italy's capital.
    let server = Server::start(
        options(default_model(), &fake).env("HEARTH_MAX_TOKENS", "40").env("HEARTH_TEMPERATURE", "0"),
    );
    let alice = server.user("alice");

    fake.push_text(1, STRANGER_CHAT, "Hello? What is the capital of France?");
    fake.push_text(2, ALICE_CHAT, "What is the capital of France? Answer in one word.");
    let replies = fake.wait_messages(&server, ALICE_CHAT, 1);
    assert!(replies[0].contains("Paris"), "{replies:?}");
    fake.push_text(3, STRANGER_CHAT, "Hello again?");
    fake.push_text(4, ALICE_CHAT, "And the capital of Italy? Answer in one word.");
    let replies = fake.wait_messages(&server, ALICE_CHAT, 2);
    assert!(replies[1].contains("Rome"), "{replies:?}");

    // Everything after the last update was polled for: the stranger got nothing at all.
    fake.wait(&server, "a poll past update 4", |calls| {
        calls.iter().any(|c| c.method == "getUpdates" && c.body["offset"] == 5)
    });
    let calls = fake.calls();
    assert!(calls.iter().all(|c| c.body["chat_id"] != STRANGER_CHAT), "{calls:?}");
    assert!(calls.iter().any(|c| c.method == "sendChatAction" && c.body["action"] == "typing"));
    let log = server.log();
    let noted = log.lines().filter(|l| l.contains("not in telegram.chats")).collect::<Vec<_>>();
    assert_eq!(noted.len(), 1, "logged once per chat: {noted:?}");
    assert!(noted[0].contains("999") && !noted[0].contains("Hello"), "{noted:?}");

    // One conversation, continued, in Alice's history and search.
    let stored = conversations(&server, &alice);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let (id, asked, count) = &stored[0];
    assert_eq!(
        asked,
        &[
            "What is the capital of France? Answer in one word.",
            "And the capital of Italy? Answer in one word."
        ]
    );
    assert_eq!(*count, 4);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, found) = server.call("GET", "/api/search?q=Italy", Some(&alice), None);
        if found["results"].as_array().is_some_and(|r| r.iter().any(|h| h["conversation_id"] == id.as_str()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "not found in the history: {found}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_token_not_logged(&server);
}

#[test]
fn a_voice_message_is_transcribed_and_answered_in_text_and_voice() {
    let wav = include_bytes!("../data/speech_kitchen.wav");
    let speech = decode_wav_16k_mono(wav, &AudioLimits::default()).unwrap();
    let pcm: Vec<i16> = speech.iter().map(|&s| f32_to_i16(s)).collect();
    let ogg = encode_ogg_opus(&pcm, 16_000).unwrap();

    let fake = FakeBot::start();
    let server = Server::start(
        options(small_model(), &fake)
            .env("HEARTH_TELEGRAM_VOICE_REPLIES", "true")
            .env("HEARTH_MAX_TOKENS", "24"),
    );
    server.wait_voice();
    let alice = server.user("alice");
    fake.push_voice(1, ALICE_CHAT, ogg);

    let replies = fake.wait_messages(&server, ALICE_CHAT, 1);
    let words = replies[0].to_lowercase();
    assert!(words.starts_with("🎤") && words.contains("kitchen"), "the transcript is quoted: {replies:?}");
    fake.wait(&server, "a voice reply", |calls| calls.iter().any(|c| c.method == "sendVoice"));
    let calls = fake.calls();
    assert!(calls.iter().any(|c| c.method == "getFile" && c.body["file_id"] == "voice1"), "{calls:?}");
    let voice = fake.state.0.lock().unwrap().voices[0].clone();
    let heard =
        decode_ogg_opus_16k_mono(&voice, &AudioLimits::default()).expect("the voice reply is OGG/Opus");
    assert!(heard.len() > 16_000 / 2, "at least half a second of speech: {} samples", heard.len());

    let stored = conversations(&server, &alice);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].1[0].to_lowercase().contains("kitchen"), "the transcript is the question: {stored:?}");
    assert_token_not_logged(&server);
}

#[test]
fn offsets_survive_kill_9_no_update_is_answered_twice_or_lost() {
    let fake = FakeBot::start();
    let server = Server::start(options(small_model(), &fake).env("HEARTH_MAX_TOKENS", "16"));
    let alice = server.user("alice");
    let asked = ["Message one.", "Message two.", "Message three.", "Message four.", "Message five."];

    fake.push_text(1, ALICE_CHAT, asked[0]);
    fake.wait_messages(&server, ALICE_CHAT, 1);
    // The next reply is stored but never reaches Telegram: killed while sending it, with
    // update 3 received (or not yet) and unanswered.
    fake.stall_sends.store(true, Ordering::SeqCst);
    fake.push_text(2, ALICE_CHAT, asked[1]);
    fake.push_text(3, ALICE_CHAT, asked[2]);
    // Hanging once update 2's turn was stored.
    fake.wait(&server, "the reply to update 2", |calls| {
        calls.iter().any(|c| c.method == "sendMessage (stalled)")
    });
    let before = fake.calls().len();
    let server = server.kill_and_restart();
    fake.stall_sends.store(false, Ordering::SeqCst);

    // After the restart: the first reply failing once (502) is sent again from the store.
    fake.fail_sends.store(1, Ordering::SeqCst);
    fake.push_text(4, ALICE_CHAT, asked[3]);
    fake.push_text(5, ALICE_CHAT, asked[4]);
    fake.wait_messages(&server, ALICE_CHAT, 5);
    fake.wait(&server, "a poll past update 5", |calls| {
        calls.iter().any(|c| c.method == "getUpdates" && c.body["offset"] == 6)
    });
    std::thread::sleep(Duration::from_secs(3));

    let calls = fake.calls();
    let first_poll = calls[before..].iter().find(|c| c.method == "getUpdates").unwrap();
    assert_eq!(first_poll.body["offset"], 2, "the restart polls from the stored offset: {first_poll:?}");
    assert_eq!(fake.messages(ALICE_CHAT).len(), 5, "one reply per update: {:?}", fake.messages(ALICE_CHAT));
    assert!(calls.iter().any(|c| c.method == "sendMessage (failed)"), "{calls:?}");
    // One turn per update, in order, in one conversation that went on across the restart.
    let stored = conversations(&server, &alice);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].1, asked, "{stored:?}");
    assert_eq!(stored[0].2, 10, "{stored:?}");
    assert!(server.log().contains("sending a reply stored before a restart"), "{}", server.log());
    assert_token_not_logged(&server);
}

#[test]
fn a_timer_set_from_a_chat_rings_in_that_chat() {
    let fake = FakeBot::start();
    // Greedy, so the small default model's reading of the words is the same every run.
    let options =
        options(default_model(), &fake).env("HEARTH_MAX_TOKENS", "60").env("HEARTH_TEMPERATURE", "0");
    let server = Server::start(options);
    let alice = server.user("alice");

    fake.push_text(1, ALICE_CHAT, "Set a timer for 5 seconds.");
    let replies = fake.wait_messages(&server, ALICE_CHAT, 1);
    let (_, pending) = server.call("GET", "/api/reminders?all=true", Some(&alice), None);
    let set_at = Instant::now()
        - Duration::from_secs(
            (hearth::store::now() - pending["reminders"][0]["created_at"].as_i64().unwrap()) as u64,
        );
    let timer = &pending["reminders"][0];
    assert_eq!(timer["channel"], format!("telegram:{ALICE_CHAT}"), "{pending}\n{replies:?}");
    assert_eq!(timer["due_at"].as_i64().unwrap() - timer["created_at"].as_i64().unwrap(), 5, "{pending}");

    // The reply and the timer, in either order (a reply slower than 5 s comes second).
    let told = fake.wait_messages(&server, ALICE_CHAT, 2);
    assert!(set_at.elapsed() >= Duration::from_secs(3), "not before its time: {:?}", set_at.elapsed());
    assert_eq!(told.iter().filter(|m| *m == "⏰ Your timer for 5 seconds is done.").count(), 1, "{told:?}");
    let (_, all) = server.call("GET", "/api/reminders?all=true", Some(&alice), None);
    assert!(all["reminders"][0]["delivered_at"].is_i64(), "{all}");
    assert_token_not_logged(&server);
}
