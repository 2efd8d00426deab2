//! Authentication and per-user isolation.

use crate::common::{code, small_model, Server, ServerOptions};
use serde_json::json;

#[test]
fn every_route_but_health_needs_a_valid_token() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let (status, health) = server.call("GET", "/api/health", None, None);
    assert_eq!(status, 200);
    assert_eq!(health["components"]["model"]["state"], "ready");

    let routes = [
        ("POST", "/api/chat"),
        ("GET", "/api/conversations"),
        ("GET", "/api/conversations/x"),
        ("GET", "/metrics"),
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
    ];
    let body = json!({"message": "hi", "messages": [{"role": "user", "content": "hi"}]});
    for (method, path) in routes {
        for bad in [None, Some("hth_0000"), Some("")] {
            let (status, err) = server.call(method, path, bad, Some(&body).filter(|_| method == "POST"));
            assert_eq!(status, 401, "{method} {path} with {bad:?}: {err}");
            assert_eq!(code(&err), "unauthorized");
        }
    }
    // A token belonging to nobody is refused; the right one works.
    let (status, _) = server.call("GET", "/v1/models", Some(&token), None);
    assert_eq!(status, 200);
    assert!(!server.log().contains(&token), "the secret token appeared in the log");
}

#[test]
fn revoked_tokens_are_refused() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let (status, _) = server.call("GET", "/api/conversations", Some(&token), None);
    assert_eq!(status, 200);
    let (code_, out, err) = crate::common::cli(&server.data_dir, &["tokens", "revoke", &token]);
    assert_eq!(code_, 0, "{out}{err}");
    let (status, body) = server.call("GET", "/api/conversations", Some(&token), None);
    assert_eq!(status, 401, "{body}");
}

#[test]
fn users_never_see_each_others_conversations() {
    let server = Server::start(ServerOptions::new(small_model()));
    let alice = server.user("alice");
    let bob = server.user("bob");
    let (status, reply) = server.call(
        "POST",
        "/api/chat",
        Some(&alice),
        Some(&json!({"message": "My secret is 4417.", "max_tokens": 8})),
    );
    assert_eq!(status, 200, "{reply}");
    let id = reply["conversation_id"].as_str().unwrap();

    let (status, body) = server.call("GET", &format!("/api/conversations/{id}"), Some(&bob), None);
    assert_eq!((status, code(&body)), (404, "conversation_not_found"));
    let (_, list) = server.call("GET", "/api/conversations", Some(&bob), None);
    assert_eq!(list["conversations"].as_array().unwrap().len(), 0);
    let (status, body) = server.call(
        "POST",
        "/api/chat",
        Some(&bob),
        Some(&json!({"message": "What was the secret?", "conversation_id": id, "max_tokens": 8})),
    );
    assert_eq!((status, code(&body)), (404, "conversation_not_found"));

    // Alice still has exactly her one turn.
    let (_, convo) = server.call("GET", &format!("/api/conversations/{id}"), Some(&alice), None);
    assert_eq!(convo["messages"].as_array().unwrap().len(), 2);
}
