//! Bad requests get a 4xx with a stable code; the server stays up and keeps working.

use crate::common::{code, small_model, Server, ServerOptions};
use serde_json::json;

#[test]
fn bad_requests_get_clear_client_errors() {
    let options = ServerOptions::new(small_model()).env("HEARTH_MAX_BODY_BYTES", "4096");
    let server = Server::start(ServerOptions { context_size: 256, ..options });
    let token = server.user("alice");

    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("malformed JSON", "application/json", b"{\"message\": ".to_vec(), 400, "invalid_json"),
        ("not JSON at all", "application/json", b"hello".to_vec(), 400, "invalid_json"),
        ("wrong type", "application/json", br#"{"message": 42}"#.to_vec(), 400, "invalid_request"),
        ("missing field", "application/json", br#"{"text": "hi"}"#.to_vec(), 400, "invalid_request"),
        (
            "unknown field",
            "application/json",
            br#"{"message": "hi", "mesage": 1}"#.to_vec(),
            400,
            "invalid_request",
        ),
        ("empty message", "application/json", br#"{"message": "   "}"#.to_vec(), 400, "invalid_request"),
        (
            "bad temperature",
            "application/json",
            br#"{"message": "hi", "temperature": 9}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "negative max_tokens",
            "application/json",
            br#"{"message": "hi", "max_tokens": -1}"#.to_vec(),
            400,
            "invalid_request",
        ),
        ("wrong content type", "text/plain", br#"{"message": "hi"}"#.to_vec(), 415, "unsupported_media_type"),
        (
            "body over the limit",
            "application/json",
            format!(r#"{{"message": "{}"}}"#, "a".repeat(8192)).into_bytes(),
            413,
            "payload_too_large",
        ),
        (
            "unknown conversation",
            "application/json",
            br#"{"message": "hi", "conversation_id": "nope"}"#.to_vec(),
            404,
            "conversation_not_found",
        ),
    ];
    for (what, content_type, body, status, expected) in cases {
        let (got, err) = server.raw("/api/chat", &token, content_type, &body);
        assert_eq!((got, code(&err)), (status, expected), "{what}: {err}");
        assert!(err["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {err}");
    }

    // A message longer than the 256-token context window (but under the body limit).
    let long = "word ".repeat(600);
    let (status, err) = server.call("POST", "/api/chat", Some(&token), Some(&json!({"message": long})));
    assert_eq!((status, code(&err)), (400, "context_length_exceeded"), "{err}");
    let (status, err) = server.call(
        "POST",
        "/v1/chat/completions",
        Some(&token),
        Some(&json!({"messages": [{"role": "user", "content": long}], "stream": true})),
    );
    assert_eq!(
        (status, code(&err)),
        (400, "context_length_exceeded"),
        "stream requests fail before streaming: {err}"
    );

    // Unknown routes and methods.
    let (status, err) = server.call("GET", "/api/nothing-here", Some(&token), None);
    assert_eq!((status, code(&err)), (404, "not_found"));
    let (status, err) = server.call("GET", "/api/chat", Some(&token), None);
    assert_eq!((status, code(&err)), (405, "method_not_allowed"));
    let (status, err) = server.call("GET", "/api/conversations?limit=abc", Some(&token), None);
    assert_eq!((status, code(&err)), (400, "invalid_request"), "{err}");

    // OpenAI endpoint validation.
    for (body, expected) in [
        (json!({"messages": []}), "invalid_request"),
        (json!({"messages": [{"role": "wizard", "content": "hi"}]}), "invalid_request"),
        (json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}), "invalid_request"),
        (json!({"messages": [{"role": "user", "content": "hi"}], "n": 3}), "invalid_request"),
        (json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}), "model_not_found"),
        (json!({"messages": "hi"}), "invalid_request"),
    ] {
        let (status, err) = server.call("POST", "/v1/chat/completions", Some(&token), Some(&body));
        assert!((400..500).contains(&status), "{body}: {status} {err}");
        assert_eq!(code(&err), expected, "{body}: {err}");
    }

    // After all that, the server is alive and still answers.
    let mut server = server;
    assert!(server.alive());
    let (status, reply) =
        server.call("POST", "/api/chat", Some(&token), Some(&json!({"message": "Hello", "max_tokens": 4})));
    assert_eq!(status, 200, "{reply}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// Issue 25: `/metrics` labels come from a fixed set, whatever unauthenticated clients send:
/// an unknown method counts as `other`, an unknown path as `unmatched`.
#[test]
fn metric_labels_do_not_grow_with_what_clients_send() {
    use std::io::{Read, Write};
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let addr = server.url.trim_start_matches("http://").to_string();
    for (method, path) in [("FOOBAR", "/api/health"), ("BREW", "/probe-4711"), ("get", "/api/chat")] {
        let mut socket = std::net::TcpStream::connect(&addr).unwrap();
        write!(socket, "{method} {path} HTTP/1.1\r\nHost: hearth\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = socket.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 "), "{method} {path}: {answer}");
    }
    let (status, text) = server.call("GET", "/metrics", Some(&token), None);
    assert_eq!(status, 200);
    let text = text.as_str().unwrap();
    let series: Vec<&str> = text.lines().filter(|l| l.starts_with("hearth_http_requests_total{")).collect();
    for sent in ["FOOBAR", "BREW", "method=\"get\"", "probe-4711"] {
        assert!(!text.contains(sent), "{sent} became a label: {series:#?}");
    }
    assert!(series.iter().any(|l| l.contains("method=\"other\"")), "{series:#?}");
    assert!(series.iter().any(|l| l.contains("route=\"unmatched\"")), "{series:#?}");
}
