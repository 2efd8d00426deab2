//! One turn core for every channel (issue 22): the same turn asked through `/api/chat`
//! and through the voice WebSocket is stored the same way and remembers its choice of
//! documents the same way, and each channel continues the other's conversations.

use crate::common::{small_model, Server, ServerOptions};
use crate::voice_pipeline::{connect, read_turn, send};
use serde_json::{json, Value};

const BOILER: &str = "# Boiler\n\nTo reset the boiler, hold the red button for ten seconds. \
                      The boiler's service code is 4417.";

fn conversation(server: &Server, token: &str, id: &str) -> Value {
    let (status, conversation) = server.call("GET", &format!("/api/conversations/{id}"), Some(token), None);
    assert_eq!(status, 200, "{conversation}");
    conversation
}

/// A stored message without what differs from one run to the next (ids, times, the
/// reply's words and its token counts, which the channel's style changes).
fn stored_shape(message: &Value) -> Value {
    let mut shape = message.clone();
    let object = shape.as_object_mut().unwrap();
    for varying in ["id", "created_at", "prompt_tokens", "completion_tokens"] {
        let value = object.remove(varying);
        if message["role"] == "assistant" {
            assert!(value.is_some_and(|v| v.as_u64().is_some()), "{varying} missing: {message}");
        }
    }
    if message["role"] == "assistant" {
        object.remove("content");
        let reason = object.remove("finish_reason").unwrap();
        assert!(reason == "stop" || reason == "length", "{message}");
    }
    shape
}

#[test]
fn a_turn_is_stored_the_same_way_through_chat_and_voice() {
    let options = ServerOptions::new(small_model())
        .env("HEARTH_STT_MODEL", "whisper-tiny-en")
        .env("HEARTH_TTS_VOICE", "piper-joe")
        .env("HEARTH_MAX_TOKENS", "24");
    let server = Server::start(options);
    server.wait_voice();
    let token = server.user("alice");
    let (status, body) = server.upload(&token, &[("boiler.md", BOILER.as_bytes())]);
    assert_eq!(status, 202, "{body}");
    let job = server.wait_job(&token, body["documents"][0]["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "done", "{job}");
    let question = "How do I reset the boiler?";

    // Typed, over HTTP.
    let body = json!({"message": question, "knowledge": true, "temperature": 0});
    let (status, typed) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!(status, 200, "{typed}");
    assert_eq!(typed["citations"][0]["document_name"], "boiler.md", "{typed}");

    // The same question over the voice socket (asked by text: the same turn without
    // speech recognition), answered aloud.
    let mut socket = connect(&server, &token);
    send(&mut socket, json!({"type": "start", "knowledge": true}));
    send(&mut socket, json!({"type": "text", "text": question}));
    let spoken = read_turn(&mut socket);
    let done = spoken.last().clone();
    assert_eq!(done["type"], "done", "{:?}\n{}", spoken.events, server.log());

    // Stored alike: the title, the user's own words, the model, the citations.
    let typed_id = typed["conversation_id"].as_str().unwrap();
    let spoken_id = done["conversation_id"].as_str().unwrap();
    assert_ne!(typed_id, spoken_id);
    let (typed_stored, spoken_stored) =
        (conversation(&server, &token, typed_id), conversation(&server, &token, spoken_id));
    assert_eq!(typed_stored["title"], spoken_stored["title"]);
    let (typed_messages, spoken_messages) =
        (typed_stored["messages"].as_array().unwrap(), spoken_stored["messages"].as_array().unwrap());
    assert_eq!(typed_messages.len(), 2, "{typed_stored}");
    assert_eq!(spoken_messages.len(), 2, "{spoken_stored}");
    for (t, s) in typed_messages.iter().zip(spoken_messages) {
        assert_eq!(stored_shape(t), stored_shape(s), "typed {t}\nspoken {s}");
    }
    assert_eq!(typed_messages[0]["content"], question);
    assert_eq!(typed_messages[1]["citations"], typed["citations"]);
    assert_eq!(typed_messages[1]["content"], typed["reply"]);
    assert_eq!(spoken_messages[1]["content"], done["reply"]);
    assert_eq!(
        (typed_messages[1]["id"].clone(), spoken_messages[1]["id"].clone()),
        (typed["message_id"].clone(), done["message_id"].clone())
    );
    // Only the style differs: the spoken turn's system prompt asks for a short answer.
    assert!(
        spoken_messages[1]["prompt_tokens"].as_u64() > typed_messages[1]["prompt_tokens"].as_u64(),
        "typed {typed_stored}\nspoken {spoken_stored}"
    );

    // Each channel continues the other's conversation, and both remember that it
    // answers from the documents without being told again.
    let follow_up = "And what is the boiler's service code?";
    send(&mut socket, json!({"type": "start", "conversation_id": typed_id}));
    send(&mut socket, json!({"type": "text", "text": follow_up}));
    let spoken = read_turn(&mut socket);
    assert_eq!(spoken.last()["conversation_id"], typed_id, "{:?}", spoken.events);
    let body = json!({"message": follow_up, "conversation_id": spoken_id});
    let (status, typed) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!(status, 200, "{typed}");
    assert_eq!(
        (typed["conversation_id"].as_str(), typed["knowledge"].as_bool()),
        (Some(spoken_id), Some(true))
    );
    for id in [typed_id, spoken_id] {
        let stored = conversation(&server, &token, id);
        let messages = stored["messages"].as_array().unwrap();
        let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant"], "{stored}");
        assert_eq!(messages[2]["content"], follow_up);
        assert_eq!(messages[3]["citations"][0]["document_name"], "boiler.md", "remembered: {stored}");
    }
}
