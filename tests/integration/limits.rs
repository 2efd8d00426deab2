//! Per-user limits (`[limits]`, `rate/`): requests and generated tokens per minute,
//! generations at once (one user's burst leaves the engine's places to the others),
//! uploads per day; each refusal a 429 `rate_limited` with `Retry-After`, counted on
//! `/metrics`.

use crate::common::{code, small_model, Server, ServerOptions};
use serde_json::{json, Value};
use std::io::Read;
use std::time::{Duration, Instant};

fn chat(server: &Server, token: &str, text: &str, max_tokens: u32) -> (u16, Value, Option<String>) {
    let body =
        json!({"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens, "temperature": 0});
    let result = server
        .agent()
        .post(&format!("{}/v1/chat/completions", server.url))
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(body);
    match result {
        Ok(r) => (r.status(), r.into_json().unwrap(), None),
        Err(ureq::Error::Status(status, r)) => {
            let retry = r.header("Retry-After").map(str::to_string);
            (status, r.into_json().unwrap_or(Value::Null), retry)
        }
        Err(e) => panic!("{e}"),
    }
}

fn limited(server: &Server) -> String {
    let admin = server.user("metrics-reader");
    let text = server
        .agent()
        .get(&format!("{}/metrics", server.url))
        .set("Authorization", &format!("Bearer {admin}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    text.lines().filter(|l| l.starts_with("hearth_rate_limited_total")).collect::<Vec<_>>().join("\n")
}

#[test]
fn each_users_limits_refuse_with_429_and_retry_after_and_leave_others_alone() {
    let server = Server::start(
        ServerOptions::new(small_model())
            .env("HEARTH_REQUESTS_PER_MINUTE", "8")
            .env("HEARTH_TOKENS_PER_MINUTE", "20")
            .env("HEARTH_UPLOADS_PER_DAY", "2"),
    );

    // Requests: 8 a minute, then 429 saying how long to wait; another user is not counted.
    let rita = server.user("rita");
    for _ in 0..8 {
        let (status, body) = server.call("GET", "/api/me", Some(&rita), None);
        assert_eq!(status, 200, "{body}");
    }
    let refused = server
        .agent()
        .get(&format!("{}/api/me", server.url))
        .set("Authorization", &format!("Bearer {rita}"))
        .call();
    let Err(ureq::Error::Status(429, response)) = refused else { panic!("expected 429: {refused:?}") };
    let retry: u64 = response.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=8).contains(&retry), "one request's share of a minute: {retry}");
    let body: Value = response.into_json().unwrap();
    assert_eq!(code(&body), "rate_limited", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("8 a minute"), "{body}");
    let sam = server.user("sam");
    assert_eq!(server.call("GET", "/api/me", Some(&sam), None).0, 200);

    // Generated tokens: a reply past the minute's 20 is counted when it ends; the next
    // generation waits until the debt is paid, with its Retry-After; others still chat.
    let tom = server.user("tom");
    let (status, body, _) = chat(&server, &tom, "Write a long story about a dragon.", 60);
    assert_eq!(status, 200, "{body}");
    let generated = body["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(generated > 25, "the story needs more than the minute's tokens: {body}");
    let (status, body, retry) = chat(&server, &tom, "Hello", 5);
    assert_eq!(status, 429, "{body}");
    assert_eq!(code(&body), "rate_limited", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("20 tokens a minute"), "{body}");
    // (generated - 20) tokens owed at 20 a minute: 3 s per token.
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!(
        retry >= (generated - 20) * 3 - 6 && retry <= (generated - 20) * 3 + 1,
        "{retry} s for {generated} tokens"
    );
    let (status, body, _) = chat(&server, &sam, "Hello", 5);
    assert_eq!(status, 200, "{body}");

    // Uploads: 2 a day; a third, or two at once past the limit, are refused whole.
    let una = server.user("una");
    let (status, body) = server.upload(&una, &[("a.txt", b"alpha"), ("b.txt", b"beta")]);
    assert_eq!(status, 202, "{body}");
    let (status, body) = server.upload(&una, &[("c.txt", b"gamma")]);
    assert_eq!(status, 429, "{body}");
    assert_eq!(code(&body), "rate_limited", "{body}");
    let vera = server.user("vera");
    let (status, body) =
        server.upload(&vera, &[("a.txt", b"alpha"), ("b.txt", b"beta"), ("c.txt", b"gamma")]);
    assert_eq!(status, 429, "three at once: {body}");
    let (status, body) = server.call("GET", "/api/documents", Some(&vera), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["documents"].as_array().unwrap().len(), 0, "nothing of a refused upload is kept: {body}");

    // A token's own limit, below its user's: its 4th request in the minute is refused,
    // while the same user's other credential goes on; a limit out of range is a 400.
    let wren = server.user("wren");
    let made = |body: Value| server.call("POST", "/api/tokens", Some(&wren), Some(&body));
    let (status, body) = made(json!({"label": "x", "requests_per_minute": 0}));
    assert_eq!((status, code(&body)), (400, "invalid_request"), "{body}");
    let (status, body) = made(json!({"label": "integration", "requests_per_minute": 3}));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["requests_per_minute"], 3, "{body}");
    let integration = body["token"].as_str().unwrap().to_string();
    for _ in 0..3 {
        assert_eq!(server.call("GET", "/api/me", Some(&integration), None).0, 200);
    }
    let (status, body) = server.call("GET", "/api/me", Some(&integration), None);
    assert_eq!((status, code(&body)), (429, "rate_limited"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("this token's limit is 3"), "{body}");
    assert_eq!(server.call("GET", "/api/me", Some(&wren), None).0, 200, "the user's other token is not held");
    let (status, body) = server.call("GET", "/api/tokens", Some(&wren), None);
    assert_eq!(status, 200, "{body}");
    let listed = body["tokens"].as_array().unwrap().iter().find(|t| t["label"] == "integration").cloned();
    assert_eq!(listed.unwrap()["requests_per_minute"], 3, "{body}");

    let counted = limited(&server);
    for kind in ["requests", "token_requests", "tokens", "uploads"] {
        let line = counted.lines().find(|l| l.contains(&format!("limit=\"{kind}\""))).unwrap_or_default();
        let n: f64 = line.rsplit(' ').next().unwrap_or("0").parse().unwrap_or(0.0);
        assert!(n >= 1.0, "{kind} refusals counted: {counted}");
    }
}

/// One user's burst holds at most `generations_per_user` of the engine's places: their next
/// request is refused at once while another user's is answered; the place comes back when
/// the reply ends.
#[test]
fn a_users_burst_cannot_take_the_others_places() {
    let server = Server::start(ServerOptions::new(small_model()).env("HEARTH_GENERATIONS_PER_USER", "1"));
    let (alice, bob) = (server.user("alice"), server.user("bob"));
    // A reply that must be long: a JSON array of at least 400 numbers.
    let long = json!({
        "messages": [{"role": "user", "content": "List numbers."}], "max_tokens": 1500, "stream": true,
        "response_format": {"type": "json_schema", "json_schema": {"name": "numbers", "schema":
            {"type": "array", "items": {"type": "integer"}, "minItems": 400}}}
    });
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started, running) = std::sync::mpsc::channel::<()>();
    let holder = {
        let (url, agent, alice) = (server.url.clone(), server.agent(), alice.clone());
        std::thread::spawn(move || {
            let response = agent
                .post(&format!("{url}/v1/chat/completions"))
                .set("Authorization", &format!("Bearer {alice}"))
                .send_json(long)
                .unwrap();
            let mut reader = response.into_reader();
            let mut first = [0u8; 64];
            reader.read_exact(&mut first).unwrap();
            started.send(()).unwrap();
            // Hold the stream open until told; dropping it stops the generation.
            let _ = wait.recv_timeout(Duration::from_secs(120));
        })
    };
    running.recv_timeout(Duration::from_secs(120)).expect("alice's long reply started");
    let (status, body, retry) = chat(&server, &alice, "Hi", 3);
    assert_eq!(status, 429, "{body}");
    assert_eq!(code(&body), "rate_limited", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1 replies queued or being written"),
        "{body}"
    );
    assert_eq!(retry.as_deref(), Some("1"));
    // Bob is answered while alice's reply still runs.
    let (status, body, _) = chat(&server, &bob, "Hi", 3);
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = chat(&server, &alice, "Hi", 3);
    assert_eq!(status, 429, "alice's long reply is still running: {body}");

    release.send(()).unwrap();
    holder.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body, _) = chat(&server, &alice, "Hi", 3);
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(Instant::now() < deadline, "alice's place never came back after her reply was dropped");
        std::thread::sleep(Duration::from_millis(100));
    }
    let counted = limited(&server);
    assert!(counted.contains("limit=\"generations\""), "{counted}");
}
