//! Skills in Hearth's own channels (issue 22): a question that needs the clock is
//! answered from it, typed (`/api/chat`, JSON and SSE) and spoken (`/api/ws`), and the call
//! (name, arguments, result, time) is stored with the reply in the conversation.

use crate::common::{default_model, sse_events, Server, ServerOptions};
use crate::voice_pipeline::{ask_by_voice, connect};
use hearth::audio::{decode_wav_16k_mono, f32_to_s16le, AudioLimits};
use serde_json::{json, Value};
use std::time::Duration;

fn options() -> ServerOptions {
    ServerOptions::new(default_model()).env("HEARTH_MAX_TOKENS", "60")
}

/// The clock's reading from a stored or streamed call: "It is 14:05 on Sunday 6 December
/// 2026 (UTC+00:00)." as (time, weekday).
fn reading(call: &Value) -> (String, String) {
    assert_eq!(call["name"], "clock", "{call}");
    assert_eq!(call["ok"], true, "{call}");
    assert!(call["at"].as_i64().is_some_and(|t| t > 1_700_000_000), "{call}");
    let words: Vec<&str> = call["result"].as_str().unwrap().split_whitespace().collect();
    assert_eq!((words[0], words[1], words[3]), ("It", "is", "on"), "{call}");
    (words[2].to_string(), words[4].to_string())
}

/// Whether `reply` tells the time the clock read ("14:05", "2:05" or "2:05 PM": the model
/// may write the hour either way), in words: not an echo of the tool's wrapper or JSON.
fn tells(reply: &str, reading: &(String, String)) -> bool {
    assert!(!reply.contains("tool_response") && !reply.contains('{'), "an echo, not an answer: {reply}");
    let time = reading.0.as_str();
    let (hour, minute) = time.split_once(':').unwrap();
    let hour: u32 = hour.parse().unwrap();
    let twelve = format!("{}:{minute}", if hour.is_multiple_of(12) { 12 } else { hour % 12 });
    reply.contains(time) || reply.contains(&twelve)
}

fn stored_reply(server: &Server, token: &str, conversation: &str) -> Value {
    let (status, body) = server.call("GET", &format!("/api/conversations/{conversation}"), Some(token), None);
    assert_eq!(status, 200, "{body}");
    body["messages"][1].clone()
}

#[test]
fn a_question_that_needs_the_clock_is_answered_from_it_and_the_call_is_stored() {
    let server = Server::start(options());
    let token = server.user("alice");

    let body = json!({"message": "What time is it now?", "temperature": 0});
    let (status, answer) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!(status, 200, "{answer}\n{}", server.log());
    let calls = answer["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{answer}");
    let clock = reading(&calls[0]);
    let reply = answer["reply"].as_str().unwrap();
    assert!(tells(reply, &clock), "the reply should tell the clock's time {clock:?}: {reply}");
    let stored = stored_reply(&server, &token, answer["conversation_id"].as_str().unwrap());
    assert_eq!(stored["tool_calls"], answer["tool_calls"], "{stored}");
    assert_eq!(stored["content"], reply);

    // Streamed: the call and its result are events before the reply's tokens.
    let body = json!({"message": "Which day of the week is it today?", "temperature": 0, "stream": true});
    let events = sse_events(&server.sse("/api/chat", &token, &body));
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds[..2], ["tool_call", "tool_result"], "{events:?}");
    let call: Value = serde_json::from_str(&events[0].1).unwrap();
    let result: Value = serde_json::from_str(&events[1].1).unwrap();
    assert_eq!((&call["name"], &call["id"]), (&result["name"], &result["id"]));
    let weekday = reading(&result).1;
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "done", "{events:?}");
    let done: Value = serde_json::from_str(done).unwrap();
    assert!(done["reply"].as_str().unwrap().contains(&weekday), "{weekday}: {done}");
    assert_eq!(done["tool_calls"][0], result);

    // Turned off for a turn: a plain reply, nothing called.
    let body = json!({"message": "What time is it now?", "temperature": 0, "skills": false});
    let (status, plain) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["tool_calls"], json!([]));
}

/// "What time is it?" in the box's own voice, as 16 kHz s16le PCM.
fn spoken_question(server: &Server, token: &str) -> Vec<u8> {
    spoken(server, token, "What time is it?")
}

/// `text` in the box's own voice (Piper), as 16 kHz s16le PCM after half a second of quiet.
pub(crate) fn spoken(server: &Server, token: &str, text: &str) -> Vec<u8> {
    let response = ureq::post(&format!("{}/v1/audio/speech", server.url))
        .set("Authorization", &format!("Bearer {token}"))
        .timeout(Duration::from_secs(120))
        .send_json(json!({"input": text, "response_format": "wav"}))
        .expect("speech");
    let mut wav = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut wav).unwrap();
    let mut samples = vec![0.0; 8_000]; // half a second of quiet first
    samples.extend(decode_wav_16k_mono(&wav, &AudioLimits::default()).unwrap());
    f32_to_s16le(&samples)
}

#[test]
fn asked_by_voice_what_time_it_is_the_answer_comes_from_the_clock_spoken_and_stored() {
    let options = options().env("HEARTH_STT_MODEL", "whisper-tiny-en").env("HEARTH_TTS_VOICE", "piper-joe");
    let server = Server::start(options);
    server.wait_voice();
    let token = server.user("alice");
    let question = spoken_question(&server, &token);

    let mut socket = connect(&server, &token);
    let turn = ask_by_voice(&mut socket, &question);
    let done = turn.last();
    assert_eq!(done["type"], "done", "{:?}\n{}", turn.events, server.log());
    let transcript = turn.of("transcript")[0]["text"].as_str().unwrap().to_lowercase();
    assert!(transcript.contains("time"), "{transcript}");

    let kinds: Vec<&str> = turn.events.iter().filter_map(|e| e["type"].as_str()).collect();
    let call_at = kinds.iter().position(|k| *k == "tool_call").expect("a tool call");
    assert_eq!(kinds[call_at + 1], "tool_result", "{kinds:?}");
    assert_eq!(turn.of("tool_call")[0]["name"], "clock");
    let clock = reading(&done["tool_calls"][0]);
    let reply = done["reply"].as_str().unwrap();
    assert!(tells(reply, &clock), "the spoken reply should tell the clock's time {clock:?}: {reply}");
    assert!(turn.audio_bytes > 22_050, "spoken: {} bytes", turn.audio_bytes);
    let stored = stored_reply(&server, &token, done["conversation_id"].as_str().unwrap());
    assert_eq!(stored["tool_calls"], done["tool_calls"], "{stored}");
}
