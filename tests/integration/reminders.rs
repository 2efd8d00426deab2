//! Timers and reminders (issue 23): set through the API or by voice, they ring on time on
//! the channels the user is connected by (`/api/events` for the web UI, the voice
//! WebSocket, spoken), are written into the conversation they were set in, and fire after a
//! `kill -9` and restart; bad input gets clear errors and users never touch each other's.

use crate::common::{default_model, small_model, Server, ServerOptions};
use crate::skills::spoken;
use crate::voice_pipeline::{ask_by_voice, connect};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

/// `GET /api/events`, open: the reminders it tells, as they come.
pub(crate) struct Events {
    lines: BufReader<Box<dyn std::io::Read + Send + Sync>>,
}

impl Events {
    /// Opens the stream; also what it told at once (the reminders missed while nobody listened).
    pub(crate) fn open(server: &Server, token: &str) -> (Events, Vec<Value>) {
        let response = server
            .agent()
            .get(&format!("{}/api/events", server.url))
            .set("Authorization", &format!("Bearer {token}"))
            .timeout(Duration::from_secs(120))
            .call()
            .unwrap_or_else(|e| panic!("GET /api/events: {e:?}"));
        assert!(response.content_type().starts_with("text/event-stream"), "{}", response.content_type());
        let mut events = Events { lines: BufReader::new(response.into_reader()) };
        // The stream says it is connected once the missed notices were sent.
        let mut missed = Vec::new();
        loop {
            match events.line().as_str() {
                ": connected" => return (events, missed),
                "event: reminder" => missed.push(events.data()),
                _ => {}
            }
        }
    }

    pub(crate) fn data(&mut self) -> Value {
        let line = self.line();
        serde_json::from_str(line.strip_prefix("data: ").expect("data after the event name")).unwrap()
    }

    pub(crate) fn line(&mut self) -> String {
        let mut line = String::new();
        assert!(self.lines.read_line(&mut line).expect("the event stream") > 0, "the event stream ended");
        line.trim_end().to_string()
    }

    /// The next reminder told (within the request's 120 s).
    pub(crate) fn next(&mut self) -> Value {
        while self.line() != "event: reminder" {}
        self.data()
    }
}

pub(crate) fn messages(server: &Server, token: &str, conversation: &str) -> Vec<String> {
    let (status, body) = server.call("GET", &format!("/api/conversations/{conversation}"), Some(token), None);
    assert_eq!(status, 200, "{body}");
    body["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_reminder_rings_on_time_on_the_event_stream_and_in_its_conversation() {
    let server = Server::start(ServerOptions::new(small_model()).env("HEARTH_MAX_TOKENS", "8"));
    let alice = server.user("alice");
    let bob = server.user("bob");
    let body = json!({"message": "Hello", "skills": false});
    let (status, chat) = server.call("POST", "/api/chat", Some(&alice), Some(&body));
    assert_eq!(status, 200, "{chat}");
    let conversation = chat["conversation_id"].as_str().unwrap();

    let (mut events, missed) = Events::open(&server, &alice);
    assert!(missed.is_empty(), "{missed:?}");
    let set_at = Instant::now();
    let body = json!({"text": "take the bread out", "in_seconds": 3, "conversation_id": conversation});
    let (status, reminder) = server.call("POST", "/api/reminders", Some(&alice), Some(&body));
    assert_eq!(status, 201, "{reminder}");
    assert_eq!((reminder["state"].as_str(), reminder["kind"].as_str()), (Some("pending"), Some("reminder")));
    let (_, listed) = server.call("GET", "/api/reminders", Some(&alice), None);
    assert_eq!(listed["reminders"][0]["id"], reminder["id"], "{listed}");
    let (_, theirs) = server.call("GET", "/api/reminders", Some(&bob), None);
    assert_eq!(theirs["reminders"], json!([]), "bob sees none of alice's");

    let rang = events.next();
    let waited = set_at.elapsed();
    assert!(waited >= Duration::from_secs(2), "not before its time: {waited:?}");
    assert!(
        waited < Duration::from_secs(8),
        "on time (the timer worker looks at least every second): {waited:?}"
    );
    assert_eq!(rang["text"], "Reminder: take the bread out.", "{rang}");
    assert_eq!(rang["reminder"]["id"], reminder["id"]);
    assert_eq!(rang["reminder"]["state"], "fired");
    assert_eq!(messages(&server, &alice, conversation).last().unwrap(), "Reminder: take the bread out.");
    let (_, all) = server.call("GET", "/api/reminders?all=true", Some(&alice), None);
    assert_eq!(all["reminders"][0]["state"], "fired", "{all}");
    assert!(all["reminders"][0]["delivered_at"].is_i64(), "told, so not told again: {all}");

    // Cancelled before its time: it never rings; bob cannot cancel alice's.
    let body = json!({"kind": "timer", "text": "eggs", "in_seconds": 2});
    let (_, timer) = server.call("POST", "/api/reminders", Some(&alice), Some(&body));
    let path = format!("/api/reminders/{}", timer["id"]);
    let (status, _) = server.call("DELETE", &path, Some(&bob), None);
    assert_eq!(status, 404);
    let (status, cancelled) = server.call("DELETE", &path, Some(&alice), None);
    assert_eq!((status, cancelled["state"].as_str()), (200, Some("cancelled")), "{cancelled}");
    let (status, again) = server.call("DELETE", &path, Some(&alice), None);
    assert_eq!(status, 400, "{again}");
    let body = json!({"kind": "timer", "text": "tea", "in_seconds": 4});
    let (_, tea) = server.call("POST", "/api/reminders", Some(&alice), Some(&body));
    let next = events.next();
    assert_eq!(next["reminder"]["id"], tea["id"], "the cancelled timer never rang: {next}");
    assert_eq!(next["text"], "Your timer for tea (4 seconds) is done.");

    // Bad input: clear 400s, nothing set.
    for (body, says) in [
        (json!({"text": "x"}), "'at'"),
        (json!({"text": "x", "at": "teatime"}), "not a time"),
        (json!({"text": "x", "at": "2020-01-01 10:00"}), "passed"),
        (json!({"text": "x", "in_seconds": 0}), "at least one second"),
        (json!({"text": "x", "in_seconds": 1e9}), "a year"),
        (json!({"text": "", "in_seconds": 5}), "needs a text"),
        (json!({"text": "x", "in_seconds": 5, "kind": "alarm"}), "kind"),
        (json!({"text": "x", "in_seconds": 5, "conversation_id": "nope"}), "not found"),
        (json!({"text": "x", "in_seconds": 5, "colour": "red"}), "colour"),
    ] {
        let (status, error) = server.call("POST", "/api/reminders", Some(&alice), Some(&body));
        assert!(status == 400 || status == 404, "{body} → {status} {error}");
        assert!(error["error"]["message"].as_str().unwrap_or_default().contains(says), "{body} → {error}");
    }
    let (_, pending) = server.call("GET", "/api/reminders", Some(&alice), None);
    assert_eq!(pending["reminders"], json!([]), "{pending}");
    let (status, _) = server.call("GET", "/api/reminders", None, None);
    assert_eq!(status, 401);
}

#[test]
fn a_reminder_set_before_a_kill_9_rings_after_the_restart() {
    let server = Server::start(ServerOptions::new(small_model()).env("HEARTH_MAX_TOKENS", "8"));
    let alice = server.user("alice");
    let body = json!({"message": "Hello", "skills": false});
    let (_, chat) = server.call("POST", "/api/chat", Some(&alice), Some(&body));
    let conversation = chat["conversation_id"].as_str().unwrap().to_string();
    let body = json!({"text": "call mum", "in_seconds": 3, "conversation_id": conversation});
    let (status, reminder) = server.call("POST", "/api/reminders", Some(&alice), Some(&body));
    assert_eq!(status, 201, "{reminder}");

    // Down while it was due: it rings when the box is back, saying so, and once.
    let server = server.kill_and_restart_after(Duration::from_secs(5));
    wait_fired(&server, &alice);
    let (_events, mut missed) = Events::open(&server, &alice);
    let rang = missed.pop().expect("the reminder missed while down");
    assert_eq!(rang["reminder"]["id"], reminder["id"], "{rang}");
    assert!(rang["text"].as_str().unwrap().starts_with("Reminder: call mum."), "{rang}");
    assert!(missed.is_empty(), "{missed:?}");
    let said: Vec<String> = messages(&server, &alice, &conversation);
    assert_eq!(said.iter().filter(|m| m.starts_with("Reminder: call mum.")).count(), 1, "{said:?}");
    // Told once: a second listener does not hear it again.
    let (_again, missed) = Events::open(&server, &alice);
    assert!(missed.is_empty(), "{missed:?}");
}

/// Waits until none of the user's reminders is pending (the timer worker fires a reminder
/// that fell due while the server was down shortly after the start).
fn wait_fired(server: &Server, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, all) = server.call("GET", "/api/reminders?all=true", Some(token), None);
        if all["reminders"].as_array().unwrap().iter().all(|r| r["state"] != "pending") {
            return;
        }
        assert!(Instant::now() < deadline, "still pending: {all}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_timer_set_by_voice_rings_and_is_spoken_on_the_same_socket() {
    // Greedy: the small default model read "ten seconds" as `{"duration": "10"}` (ten
    // minutes) in one of three sampled runs; what it does with the words is benches/'s
    // question, this test's is the timer's way from the voice back to the voice.
    let options = ServerOptions::new(default_model())
        .env("HEARTH_MAX_TOKENS", "60")
        .env("HEARTH_TEMPERATURE", "0")
        .env("HEARTH_STT_MODEL", "whisper-tiny-en")
        .env("HEARTH_TTS_VOICE", "piper-joe");
    let server = Server::start(options);
    server.wait_voice();
    let token = server.user("alice");
    let question = spoken(&server, &token, "Set a timer for ten seconds.");

    let mut socket = connect(&server, &token);
    let turn = ask_by_voice(&mut socket, &question);
    let done = turn.last();
    assert_eq!(done["type"], "done", "{:?}\n{}", turn.events, server.log());
    let set_at = Instant::now();
    let calls = done["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{done}");
    assert_eq!(calls[0]["name"], "set_timer", "{done}");
    assert!(calls[0]["result"].as_str().unwrap().starts_with("Timer set for 10 seconds"), "{done}");
    let conversation = done["conversation_id"].as_str().unwrap();

    // The timer rings on the same socket: a notice, then its words spoken.
    let rang = read_turn_until(&mut socket, "notice_end");
    let notice = rang.of("notice")[0];
    assert!(set_at.elapsed() < Duration::from_secs(20), "on time: {:?}", set_at.elapsed());
    let text = notice["text"].as_str().unwrap();
    assert!(text.starts_with("Your timer for ") && text.ends_with("is done."), "{notice}");
    assert!(text.contains("10 seconds"), "{notice}");
    let timer = &notice["reminder"];
    assert_eq!(timer["due_at"].as_i64().unwrap() - timer["created_at"].as_i64().unwrap(), 10, "{notice}");
    let kinds: Vec<&str> = rang.events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds, ["notice", "audio_start", "audio_end", "notice_end"], "{:?}", rang.events);
    assert!(rang.audio_bytes > 22_050, "spoken: {} bytes", rang.audio_bytes);
    // Written into the conversation it was set in, after the turn that set it.
    let said = messages(&server, &token, conversation);
    assert_eq!(said.last().unwrap(), text, "{said:?}");
    assert_eq!(said.len(), 3, "{said:?}");
}

/// Reads events and audio up to the event of type `end`.
pub(crate) fn read_turn_until(
    socket: &mut crate::voice_pipeline::Socket,
    end: &str,
) -> crate::voice_pipeline::Turn {
    let mut turn = crate::voice_pipeline::Turn::default();
    loop {
        match socket.read().expect("a message") {
            tungstenite::Message::Binary(bytes) => turn.audio_bytes += bytes.len(),
            tungstenite::Message::Text(text) => {
                let event: Value = serde_json::from_str(&text).unwrap();
                let ended = event["type"] == end || event["type"] == "error";
                turn.events.push(event);
                if ended {
                    return turn;
                }
            }
            _ => {}
        }
    }
}
