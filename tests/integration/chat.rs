//! `POST /api/chat` and the conversation endpoints.

use crate::common::{default_model, small_model, sse_events, Server, ServerOptions};
use serde_json::{json, Value};

#[test]
fn the_default_model_answers_a_question() {
    let server = Server::start(ServerOptions::new(default_model()));
    let token = server.user("alice");
    let (status, body) = server.call(
        "POST",
        "/api/chat",
        Some(&token),
        Some(&json!({
            "message": "What is the capital of France? Answer with the city name only.",
            "temperature": 0,
            "max_tokens": 16
        })),
    );
    assert_eq!(status, 200, "{body}");
    let reply = body["reply"].as_str().unwrap();
    assert!(reply.contains("Paris"), "reply: {reply}");
    assert_eq!(body["model"], "qwen2.5-coder-0.5b-instruct");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 10);
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() >= 1);
    assert!(body["conversation_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[test]
fn a_conversation_continues_and_is_listed() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let ask = |message: &str, conversation: Option<&str>| {
        let body = json!({"message": message, "conversation_id": conversation, "max_tokens": 12});
        let (status, reply) = server.call("POST", "/api/chat", Some(&token), Some(&body));
        assert_eq!(status, 200, "{reply}");
        reply
    };
    let first = ask("Hello, my name is Ada.", None);
    let id = first["conversation_id"].as_str().unwrap().to_string();
    let second = ask("What is my name?", Some(&id));
    assert_eq!(second["conversation_id"], id.as_str());
    // The second turn's prompt carries the first turn, so it is longer.
    assert!(
        second["usage"]["prompt_tokens"].as_u64() > first["usage"]["prompt_tokens"].as_u64(),
        "{first} {second}"
    );

    let (status, conversation) = server.call("GET", &format!("/api/conversations/{id}"), Some(&token), None);
    assert_eq!(status, 200);
    let messages = conversation["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert_eq!(messages[0]["content"], "Hello, my name is Ada.");
    assert_eq!(messages[1]["content"], first["reply"]);
    assert_eq!(messages[3]["content"], second["reply"]);
    assert_eq!(conversation["title"], "Hello, my name is Ada.");

    let (status, list) = server.call("GET", "/api/conversations", Some(&token), None);
    assert_eq!(status, 200);
    let ids: Vec<&str> =
        list["conversations"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()]);
}

#[test]
fn chat_streams_tokens_then_a_stored_done_event() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let body = server.sse(
        "/api/chat",
        &token,
        &json!({"message": "Count from one to five.", "stream": true, "max_tokens": 24, "temperature": 0}),
    );
    let events = sse_events(&body);
    let (last_name, last_data) = events.last().unwrap();
    assert_eq!(last_name, "done", "{body}");
    let tokens: Vec<&(String, String)> = events.iter().filter(|(n, _)| n == "token").collect();
    assert!(tokens.len() >= 2, "expected several token events: {body}");
    assert_eq!(tokens.len() + 1, events.len(), "only token events before done: {body}");
    let streamed: String = tokens
        .iter()
        .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap()["text"].as_str().unwrap().to_string())
        .collect();
    let done: Value = serde_json::from_str(last_data).unwrap();
    assert_eq!(done["reply"].as_str().unwrap(), streamed);

    // The streamed turn was stored.
    let id = done["conversation_id"].as_str().unwrap();
    let (_, conversation) = server.call("GET", &format!("/api/conversations/{id}"), Some(&token), None);
    assert_eq!(conversation["messages"][1]["content"].as_str().unwrap(), streamed);
}

#[test]
fn metrics_count_requests_and_tokens() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let (status, _) =
        server.call("POST", "/api/chat", Some(&token), Some(&json!({"message": "Hi", "max_tokens": 5})));
    assert_eq!(status, 200);
    let (status, text) = server.call("GET", "/metrics", Some(&token), None);
    assert_eq!(status, 200);
    let text = text.as_str().unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert!(value("hearth_tokens_generated_total") >= 1.0);
    assert!(value("hearth_prompt_tokens_total") >= 1.0);
    assert_eq!(value("hearth_model_loaded"), 1.0);
    assert_eq!(value("hearth_engine_queue_depth"), 0.0);
    assert!(value("hearth_http_requests_total{method=\"POST\",route=\"/api/chat\",status=\"200\"}") >= 1.0);
    assert!(text.contains("hearth_http_request_duration_seconds_bucket{route=\"/api/chat\""));
}
