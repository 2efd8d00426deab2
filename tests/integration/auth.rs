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

/// Issue 25: tokens had no scopes and never expired. A token made for one use is refused
/// everywhere else (403 `insufficient_scope`), and one past its expiry is refused (401).
#[test]
fn tokens_are_limited_to_their_scopes_and_their_lifetime() {
    let server = Server::start(ServerOptions::new(small_model()));
    let full = server.user("alice");
    let (status, out, err) = crate::common::cli(
        &server.data_dir,
        &["tokens", "create", "--user", "alice", "--label", "chat client", "--scope", "chat"],
    );
    assert_eq!(status, 0, "{err}");
    assert!(err.contains("scopes chat"), "{err}");
    let chat = out.lines().last().unwrap().trim().to_string();
    let (status, made) = server.call(
        "POST",
        "/api/tokens",
        Some(&full),
        Some(&json!({"label": "satellite", "scopes": ["voice"], "expires_in_days": 7})),
    );
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["scopes"], json!(["voice"]));
    let voice = made["token"].as_str().unwrap().to_string();

    let expect = |token: &str, method: &str, path: &str, want: u16| {
        let (status, body) = server.call(method, path, Some(token), None);
        assert_eq!(status, want, "{method} {path}: {body}");
        if want == 403 {
            assert_eq!(code(&body), "insufficient_scope", "{body}");
        }
    };
    expect(&chat, "GET", "/api/conversations", 200);
    expect(&chat, "GET", "/v1/models", 200);
    expect(&chat, "GET", "/api/me", 200);
    expect(&chat, "GET", "/api/documents", 403);
    expect(&chat, "GET", "/v1/audio/voices", 403);
    expect(&chat, "GET", "/api/tokens", 403);
    expect(&chat, "GET", "/metrics", 403);
    expect(&voice, "GET", "/v1/audio/voices", 200);
    expect(&voice, "GET", "/api/conversations", 403);
    expect(&full, "GET", "/api/documents", 200);
    let (status, _) = server.call(
        "POST",
        "/api/tokens",
        Some(&full),
        Some(&json!({"label": "bad", "scopes": ["everything"]})),
    );
    assert_eq!(status, 400);
    let (_, list) = server.call("GET", "/api/tokens", Some(&full), None);
    let satellite = list["tokens"].as_array().unwrap().iter().find(|t| t["label"] == "satellite").unwrap();
    assert!(satellite["expires_at"].as_i64().unwrap() > 0, "{satellite}");

    // Past its expiry (moved back in the database, as time would), the token is refused.
    let db = server.data_dir.join("hearth.db");
    let moved = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE api_tokens SET expires_at = 1 WHERE label = 'satellite'\"); c.commit()"])
        .arg(&db)
        .status()
        .unwrap();
    assert!(moved.success());
    let (status, body) = server.call("GET", "/v1/audio/voices", Some(&voice), None);
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
}

/// Issue 25: users could not be disabled or deleted. Disabling refuses an account's
/// credentials and keeps its data; deleting removes the account with its conversations
/// and their entries in the search index.
#[test]
fn accounts_can_be_disabled_and_deleted_with_their_data() {
    let server = Server::start(ServerOptions::new(small_model()));
    assert_eq!(crate::common::cli(&server.data_dir, &["users", "add", "root", "--admin"]).0, 0);
    let (_, out, _) = crate::common::cli(&server.data_dir, &["tokens", "create", "--user", "root"]);
    let root = out.lines().last().unwrap().trim().to_string();
    let alice = server.user("alice");
    let (_, me) = server.call("GET", "/api/me", Some(&alice), None);
    let id = me["user"]["id"].as_i64().unwrap();
    let items = || server.health().unwrap()["components"]["index"]["items"].as_u64().unwrap();
    let before = items();
    let (status, chat) = server.call(
        "POST",
        "/api/chat",
        Some(&alice),
        Some(&json!({"message": "Remember the blue door.", "max_tokens": 4})),
    );
    assert_eq!(status, 200, "{chat}");
    let wait_for = |want: &dyn Fn(u64) -> bool, what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !want(items()) {
            assert!(std::time::Instant::now() < deadline, "the index never {what}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    wait_for(&|n| n > before, "took alice's messages");

    let (status, _) = server.call("POST", &format!("/api/users/{id}/disable"), Some(&root), None);
    assert_eq!(status, 200);
    let (status, body) = server.call("GET", "/api/conversations", Some(&alice), None);
    assert_eq!((status, code(&body)), (401, "unauthorized"), "a disabled account's token is refused");
    let (_, users) = server.call("GET", "/api/users", Some(&root), None);
    let listed = users["users"].as_array().unwrap().iter().find(|u| u["name"] == "alice").unwrap().clone();
    assert_eq!(listed["disabled"], true, "{listed}");
    assert_eq!(server.call("POST", &format!("/api/users/{id}/enable"), Some(&root), None).0, 200);
    let (status, list) = server.call("GET", "/api/conversations", Some(&alice), None);
    assert_eq!((status, list["conversations"].as_array().unwrap().len()), (200, 1), "kept while disabled");

    let (_, root_me) = server.call("GET", "/api/me", Some(&root), None);
    let own = root_me["user"]["id"].as_i64().unwrap();
    assert_eq!(server.call("DELETE", &format!("/api/users/{own}"), Some(&root), None).0, 400, "not oneself");
    assert_eq!(server.call("DELETE", &format!("/api/users/{id}"), Some(&alice), None).0, 403, "admins only");
    assert_eq!(server.call("DELETE", &format!("/api/users/{id}"), Some(&root), None).0, 200);
    assert_eq!(server.call("GET", "/api/me", Some(&alice), None).0, 401);
    wait_for(&|n| n == before, "let go of alice's messages");
    assert_eq!(server.call("DELETE", &format!("/api/users/{id}"), Some(&root), None).0, 404);
}
