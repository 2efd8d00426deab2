//! The scheduler: batching without cross-talk, KV prefix reuse, cancellation,
//! admission control, context overflow and timeouts. No assertion depends on timing.

use crate::common::{code, default_model, small_model, Server, ServerOptions};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

/// Reads one metric's value from `/metrics`.
fn metric(server: &Server, token: &str, name: &str) -> f64 {
    let (_, text) = server.call("GET", "/metrics", Some(token), None);
    let text = text.as_str().unwrap().to_string();
    text.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

/// Waits until a metric reaches a value (the engine updates them between steps).
fn wait_metric(server: &Server, token: &str, name: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(server, token, name) != value {
        assert!(Instant::now() < deadline, "{name} never reached {value}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a streaming chat and returns the open reader once the first token arrived.
fn stream_until_first_token(server: &Server, token: &str, body: &Value) -> impl BufRead {
    let response = ureq::post(&format!("{}/api/chat", server.url))
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(body.clone())
        .expect("stream starts");
    let mut reader = BufReader::new(response.into_reader());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended before a token");
        if line.starts_with("event: token") {
            return reader;
        }
    }
}

fn ask(server: &Server, token: &str, body: Value) -> Value {
    let (status, reply) = server.call("POST", "/api/chat", Some(token), Some(&body));
    assert_eq!(status, 200, "{reply}");
    reply
}

#[test]
fn batched_conversations_match_their_solo_runs() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let prompts = ["List five fruits, one per line.", "Count from one to ten in words."];
    let body = |message: &str| json!({"message": message, "temperature": 0, "max_tokens": 48});
    let solo: Vec<String> = prompts
        .iter()
        .map(|p| ask(&server, &token, body(p))["reply"].as_str().unwrap().to_string())
        .collect();
    assert_ne!(solo[0], solo[1]);

    // Run both at once: the second is admitted while the first is generating.
    let (batched_a, batched_b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            let mut b = body(prompts[0]);
            b["stream"] = true.into();
            let body = server.sse("/api/chat", &token, &b);
            let done = body.split("event: done\ndata: ").nth(1).expect("done event").trim().to_string();
            serde_json::from_str::<Value>(&done).unwrap()["reply"].as_str().unwrap().to_string()
        });
        std::thread::sleep(Duration::from_millis(50));
        let b = ask(&server, &token, body(prompts[1]))["reply"].as_str().unwrap().to_string();
        (a.join().unwrap(), b)
    });

    // Greedy decoding: each batched reply follows its own solo reply (a rare near-tie
    // can flip late in a reply), and clearly not the other one.
    for (batched, own, other) in [(&batched_a, &solo[0], &solo[1]), (&batched_b, &solo[1], &solo[0])] {
        let with_own = common_prefix(batched, own);
        assert!(with_own >= own.chars().count().min(24), "'{batched}' diverges early from its solo '{own}'");
        assert!(with_own > common_prefix(batched, other), "'{batched}' looks like the other reply '{other}'");
    }
}

#[test]
fn the_next_turn_reuses_the_cached_conversation() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let first = ask(&server, &token, json!({"message": "Tell me about the sea.", "max_tokens": 40}));
    let id = first["conversation_id"].as_str().unwrap();
    let second =
        ask(&server, &token, json!({"message": "And the sky?", "conversation_id": id, "max_tokens": 20}));
    let (usage, timings) = (&second["usage"], &second["timings"]);
    let prompt = usage["prompt_tokens"].as_u64().unwrap();
    let reused = timings["cache_n"].as_u64().unwrap();
    let evaluated = timings["prompt_n"].as_u64().unwrap();
    assert_eq!(reused + evaluated, prompt, "{second}");
    assert!(
        reused >= first["usage"]["prompt_tokens"].as_u64().unwrap(),
        "the whole first prompt should come from the cache: {second}"
    );
    assert!(evaluated < prompt / 2, "only the new turn should be evaluated: {second}");

    // A new conversation shares the system prompt with the cached one.
    let other = ask(&server, &token, json!({"message": "Hello there.", "max_tokens": 8}));
    assert!(other["timings"]["cache_n"].as_u64().unwrap() >= 10, "{other}");
    // And the first conversation's cache survived it.
    let third = ask(&server, &token, json!({"message": "Thanks.", "conversation_id": id, "max_tokens": 8}));
    assert!(third["timings"]["cache_n"].as_u64().unwrap() >= prompt, "{third}");
    assert!(metric(&server, &token, "hearth_prompt_tokens_reused_total") >= (reused + prompt) as f64);
}

/// One stateless turn over the OpenAI API: (reply, cache_n, prompt_n).
fn complete(server: &Server, token: &str, messages: &Value, max_tokens: u32) -> (String, u64, u64) {
    let body = json!({"messages": messages, "temperature": 0, "max_tokens": max_tokens});
    let (status, reply) = server.call("POST", "/v1/chat/completions", Some(token), Some(&body));
    assert_eq!(status, 200, "{reply}");
    let text = reply["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    let t = &reply["timings"];
    (text, t["cache_n"].as_u64().unwrap(), t["prompt_n"].as_u64().unwrap())
}

/// Two turns of a conversation about rivers over the OpenAI API: the chat as sent for the
/// second turn, and the second reply.
fn two_turns(server: &Server, token: &str, system: &str) -> (Value, String) {
    let mut chat = json!([{"role": "system", "content": system},
                          {"role": "user", "content": "Name three rivers in Europe."}]);
    let (first, _, _) = complete(server, token, &chat, 24);
    let turn =
        json!([{"role": "assistant", "content": first}, {"role": "user", "content": "Which is longest?"}]);
    chat.as_array_mut().unwrap().extend(turn.as_array().unwrap().iter().cloned());
    let (second, _, _) = complete(server, token, &chat, 32);
    (chat, second)
}

#[test]
fn a_parked_conversation_comes_back_intact() {
    // One sequence: another conversation takes it from the idle one.
    parked_and_back(ServerOptions::new(small_model()).env("HEARTH_PARALLEL", "1"));
}

#[test]
fn in_a_shared_kv_cache_idle_conversations_are_parked_while_others_run() {
    // Fewer cells than 4 sequences x 2048 tokens: one unified cache, 8 sequences.
    parked_and_back(ServerOptions::new(small_model()).env("HEARTH_KV_CACHE_TOKENS", "4096"));
}

fn parked_and_back(options: ServerOptions) {
    let server = Server::start(options);
    let token = server.user("alice");
    // The second turn is served from the conversation's cache while it stays in the KV cache.
    let (chat, resident) = two_turns(&server, &token, "You answer briefly.");

    // Another conversation runs: the idle one is parked in RAM...
    let other = json!([{"role": "user", "content": "Say something about owls."}]);
    complete(&server, &token, &other, 16);
    assert!(metric(&server, &token, "hearth_engine_kv_parks_total") >= 1.0);
    assert!(metric(&server, &token, "hearth_engine_kv_parked_tokens") > 0.0);

    // ...and the same turn again is read from the parked entries: all but the last prompt
    // token comes back from RAM, and the reply is the one computed before (greedy; a rare
    // near-tie may flip late, as batch shapes differ). Corrupt or misplaced entries would
    // derail it from the first tokens.
    let (restored, cache_n, prompt_n) = complete(&server, &token, &chat, 32);
    assert_eq!(prompt_n, 1, "only the last prompt token is evaluated (cache_n {cache_n})");
    assert!(metric(&server, &token, "hearth_engine_kv_restores_total") >= 1.0);
    let same = common_prefix(&restored, &resident);
    assert!(same >= resident.chars().count().min(24), "'{restored}' diverges early from '{resident}'");
}

/// Waits until a counter reaches at least `value` (the disk cache is written by a thread).
fn wait_at_least(server: &Server, token: &str, name: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(server, token, name) < value {
        assert!(Instant::now() < deadline, "{name} never reached {value}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server serving one request at a time over one sequence, with no RAM for idle
/// conversations: a conversation leaves the KV cache when another needs the sequence, and
/// then goes to the disk cache. Returns it and a user's token.
fn one_sequence_server() -> (Server, String) {
    let options =
        ServerOptions::new(small_model()).env("HEARTH_PARALLEL", "1").env("HEARTH_IDLE_CACHE_TOKENS", "1");
    let server = Server::start(options);
    let token = server.user("alice");
    (server, token)
}

#[test]
fn a_conversation_that_left_ram_comes_back_from_disk_even_after_a_restart() {
    let (server, token) = one_sequence_server();
    // Long enough (over 64 tokens before the last reply) to be worth a file.
    let system = "You answer briefly. You are a geography tutor who knows the rivers, mountains, \
                  lakes and deserts of Europe, Asia and Africa, and you like to mention their lengths.";
    let (chat, resident) = two_turns(&server, &token, system);

    // Other conversations take the sequence: this one is saved to disk.
    let others = |server: &Server, n: u32| {
        for topic in ["owls", "tides"] {
            let other = json!([{"role": "user", "content": format!("Say something about {topic} ({n}).")}]);
            complete(server, &token, &other, 8);
        }
    };
    others(&server, 1);
    wait_at_least(&server, &token, "hearth_engine_kv_saves_total", 1.0);
    assert!(metric(&server, &token, "hearth_engine_kv_saved_bytes") > 0.0);

    // The same turn again is read from the file: only the last prompt token is evaluated,
    // and the reply is the one computed before (greedy; a rare near-tie may flip late).
    // Entries read into the wrong place or damaged would derail it from the first tokens.
    let check = |server: &Server, token: &str| {
        let (restored, cache_n, prompt_n) = complete(server, token, &chat, 32);
        assert_eq!(prompt_n, 1, "only the last prompt token is evaluated (cache_n {cache_n})");
        assert_eq!(metric(server, token, "hearth_engine_kv_loads_total"), 1.0);
        let same = common_prefix(&restored, &resident);
        assert!(same >= resident.chars().count().min(24), "'{restored}' diverges early from '{resident}'");
    };
    check(&server, &token);

    // Saved again when it gives way again; the file survives kill -9, and the restarted
    // server continues the conversation from it.
    let saved = metric(&server, &token, "hearth_engine_kv_saves_total");
    others(&server, 2);
    wait_at_least(&server, &token, "hearth_engine_kv_saves_total", saved + 1.0);
    let server = server.kill_and_restart();
    assert!(metric(&server, &token, "hearth_engine_kv_saved_bytes") > 0.0, "indexed at startup");
    check(&server, &token);

    // Live again, it is saved when the server stops, and continues from there after.
    assert_eq!(metric(&server, &token, "hearth_engine_kv_saved_bytes"), 0.0, "taken off the disk");
    let server = server.stop_and_restart();
    check(&server, &token);
}

/// Files in the disk cache of conversations.
fn saved_files(server: &Server) -> usize {
    let root = server.data_dir.join("kv-cache");
    let dirs = std::fs::read_dir(&root).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or(vec![]);
    dirs.iter().filter_map(|d| std::fs::read_dir(d).ok()).flat_map(|d| d.flatten()).count()
}

#[test]
fn deleting_a_conversation_leaves_no_cached_copy() {
    let (server, token) = one_sequence_server();
    let message = "Tell me about the rivers, mountains, lakes and deserts of Europe, Asia and Africa, \
                   with their lengths and heights, at length.";
    let reply = ask(&server, &token, json!({"message": message, "max_tokens": 48}));
    let id = reply["conversation_id"].as_str().unwrap().to_string();
    for topic in ["owls", "tides"] {
        ask(&server, &token, json!({"message": format!("Say something about {topic}."), "max_tokens": 4}));
    }
    wait_at_least(&server, &token, "hearth_engine_kv_saves_total", 1.0);
    assert!(saved_files(&server) >= 1);

    let (status, body) = server.call("DELETE", &format!("/api/conversations/{id}"), Some(&token), None);
    assert_eq!(status, 200, "{body}");
    // Which cached entries were its is not recorded: every idle conversation's go.
    wait_metric(&server, &token, "hearth_engine_kv_saved_bytes", 0.0);
    assert_eq!(saved_files(&server), 0, "no file of it is left on disk");
    assert_eq!(metric(&server, &token, "hearth_engine_kv_parked_tokens"), 0.0);
}

#[test]
fn the_idle_cache_budget_bounds_what_is_parked() {
    let options =
        ServerOptions::new(small_model()).env("HEARTH_PARALLEL", "1").env("HEARTH_IDLE_CACHE_TOKENS", "75");
    let server = Server::start(options);
    let token = server.user("alice");
    let sea = "Tell me about the sea.";
    // Over 80 tokens before any reply.
    let long = "Tell me about mountains, rivers and forests, at length: their history, the animals \
                and plants that live there, the people who live near them, how they change with the \
                seasons, and which of them are the oldest, the longest and the highest on each continent.";
    let long_reply = ask(&server, &token, json!({"message": long, "max_tokens": 64}));
    let long_id = long_reply["conversation_id"].as_str().unwrap();
    let sea_reply = ask(&server, &token, json!({"message": sea, "max_tokens": 8}));
    let sea_id = sea_reply["conversation_id"].as_str().unwrap();
    let total = |r: &Value| r["usage"]["total_tokens"].as_u64().unwrap();
    assert!(total(&long_reply) > 80 && total(&sea_reply) < 70, "{long_reply} {sea_reply}");
    ask(&server, &token, json!({"message": "Hello there.", "max_tokens": 8}));
    // Each new conversation took the one sequence. The short one fitted the 75-token budget
    // and was parked in RAM; the long one did not, and went to the disk cache.
    let parked = metric(&server, &token, "hearth_engine_kv_parked_tokens");
    assert!(parked > 0.0 && parked <= 75.0, "{parked}");
    assert_eq!(metric(&server, &token, "hearth_engine_kv_parks_total"), 1.0);
    wait_at_least(&server, &token, "hearth_engine_kv_saves_total", 1.0);
    // Both continue from their cache.
    for (id, first) in [(sea_id, &sea_reply), (long_id, &long_reply)] {
        let prompt = first["usage"]["prompt_tokens"].as_u64().unwrap();
        let next =
            ask(&server, &token, json!({"message": "Thanks.", "conversation_id": id, "max_tokens": 4}));
        assert!(next["timings"]["cache_n"].as_u64().unwrap() >= prompt, "{next}");
    }
}

#[test]
fn a_client_that_disconnects_frees_its_slot() {
    let options = ServerOptions::new(small_model()).env("HEARTH_PARALLEL", "1");
    let server = Server::start(options);
    let token = server.user("alice");
    let long = json!({"message": "Write a very long story about a lighthouse keeper.", "stream": true,
                      "max_tokens": 1500});
    let reader = stream_until_first_token(&server, &token, &long);
    assert_eq!(metric(&server, &token, "hearth_engine_active_sequences"), 1.0);
    drop(reader);

    wait_metric(&server, &token, "hearth_requests_cancelled_total", 1.0);
    wait_metric(&server, &token, "hearth_engine_active_sequences", 0.0);

    // A reply that is not streamed sends nothing until it is done; its client leaving
    // mid-reply is noticed all the same.
    let mut body = long.clone();
    body["stream"] = false.into();
    let body = body.to_string();
    let mut socket = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    let request = format!(
        "POST /api/chat HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    std::io::Write::write_all(&mut socket, request.as_bytes()).unwrap();
    wait_metric(&server, &token, "hearth_engine_active_sequences", 1.0);
    drop(socket);
    wait_metric(&server, &token, "hearth_requests_cancelled_total", 2.0);
    wait_metric(&server, &token, "hearth_engine_active_sequences", 0.0);

    // The single slot serves the next request, and nothing was stored for the abandoned ones.
    ask(&server, &token, json!({"message": "Hi", "max_tokens": 4}));
    let (_, list) = server.call("GET", "/api/conversations", Some(&token), None);
    assert_eq!(list["conversations"].as_array().unwrap().len(), 1);
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let options = ServerOptions::new(small_model()).env("HEARTH_PARALLEL", "1").env("HEARTH_QUEUE_SIZE", "1");
    let server = Server::start(options);
    // Three users: one user's own share (`[limits] generations_per_user`) would refuse
    // them before the queue is full.
    let (alice, bob, carol) = (server.user("alice"), server.user("bob"), server.user("carol"));
    let long =
        json!({"message": "Write a very long story about a dragon.", "stream": true, "max_tokens": 1500});
    let running = stream_until_first_token(&server, &alice, &long);

    std::thread::scope(|scope| {
        let queued = scope.spawn(|| ask(&server, &bob, json!({"message": "Hi", "max_tokens": 4})));
        wait_metric(&server, &alice, "hearth_engine_queue_depth", 1.0);

        let refused = ureq::post(&format!("{}/api/chat", server.url))
            .set("Authorization", &format!("Bearer {carol}"))
            .send_json(json!({"message": "Hello?"}));
        let Err(ureq::Error::Status(429, response)) = refused else { panic!("expected 429") };
        assert_eq!(response.header("Retry-After"), Some("2"));
        let body: Value = response.into_json().unwrap();
        assert_eq!(code(&body), "overloaded");

        drop(running); // frees the slot; the queued request is served
        assert!(!queued.join().unwrap()["reply"].as_str().unwrap().is_empty());
    });
}

#[test]
fn an_overlong_conversation_drops_its_oldest_turns() {
    let server = Server::start(ServerOptions { context_size: 512, ..ServerOptions::new(small_model()) });
    let token = server.user("alice");
    let filler = "The quick brown fox jumps over the lazy dog. ".repeat(8);
    let mut conversation: Option<String> = None;
    let mut dropped = 0;
    for turn in 0..8 {
        let body = json!({"message": format!("Turn {turn}: {filler}"), "conversation_id": conversation,
                          "max_tokens": 16});
        let reply = ask(&server, &token, body);
        conversation = reply["conversation_id"].as_str().map(str::to_owned);
        assert!(reply["usage"]["prompt_tokens"].as_u64().unwrap() < 512);
        dropped = reply["dropped_messages"].as_u64().unwrap();
    }
    assert!(dropped >= 2 && dropped % 2 == 0, "whole exchanges are dropped: {dropped}");
    // The stored history keeps everything.
    let (_, stored) =
        server.call("GET", &format!("/api/conversations/{}", conversation.unwrap()), Some(&token), None);
    assert_eq!(stored["messages"].as_array().unwrap().len(), 16);
}

#[test]
fn a_request_past_its_timeout_is_stopped() {
    let options = ServerOptions::new(default_model()).env("HEARTH_REQUEST_TIMEOUT_SECS", "1");
    let server = Server::start(options);
    let token = server.user("alice");
    let (status, body) = server.call(
        "POST",
        "/v1/chat/completions",
        Some(&token),
        Some(&json!({"messages": [{"role": "user", "content": "Write a 3000-word essay on rivers."}],
                     "max_tokens": 3000})),
    );
    assert_eq!((status, code(&body)), (504, "timeout"), "{body}");
    assert_eq!(metric(&server, &token, "hearth_requests_timed_out_total"), 1.0);
    wait_metric(&server, &token, "hearth_engine_active_sequences", 0.0);
}

/// Issue 25: a prompt never starts from another user's cached keys and values, wherever
/// they wait (another sequence, RAM or the disk cache), so `cache_n` and the reuse metric
/// cannot tell a user how much of someone else's prompt they guessed. The owner's own
/// next request still reuses them.
fn no_cache_crosses_users(options: ServerOptions, disk: bool) {
    let server = Server::start(options);
    let (alice, bob) = (server.user("alice"), server.user("bob"));
    // Over 64 tokens, so that it is worth a file in the disk cache.
    let secret = json!([{"role": "system", "content": "You answer briefly. You are a geography tutor who \
        knows the rivers, mountains, lakes and deserts of Europe, Asia and Africa, their lengths and \
        heights, and the towns along their banks and slopes."},
        {"role": "user", "content": "My locker code is 4711. Which river is longest?"}]);
    let (_, cache_n, prompt_n) = complete(&server, &alice, &secret, 8);
    assert!(prompt_n > 64, "{prompt_n} tokens (cache_n {cache_n})");
    // Another conversation of Alice's moves this one out of the sequence (with one
    // sequence: into RAM, or onto disk when RAM holds nothing).
    // (Under 64 tokens: never saved to disk, which keeps the count of saves below exact.)
    let owls = json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Owls?"}]);
    complete(&server, &alice, &owls, 8);
    if disk {
        wait_at_least(&server, &alice, "hearth_engine_kv_saves_total", 1.0);
    }

    let reused = metric(&server, &bob, "hearth_prompt_tokens_reused_total");
    let (_, cache_n, evaluated) = complete(&server, &bob, &secret, 8);
    assert_eq!(cache_n, 0, "Bob's prompt reused Alice's cache ({evaluated} evaluated)");
    assert_eq!(metric(&server, &bob, "hearth_prompt_tokens_reused_total"), reused);
    assert_eq!(metric(&server, &bob, "hearth_engine_kv_loads_total"), 0.0);

    // Each still reuses their own.
    let (_, cache_n, evaluated) = complete(&server, &alice, &secret, 8);
    assert!(cache_n >= prompt_n - 1, "Alice's cache_n {cache_n}, {evaluated} evaluated");
    if disk {
        // Bob's conversation gave way to Alice's, onto disk: wait for the writer.
        wait_at_least(&server, &alice, "hearth_engine_kv_saves_total", 2.0);
    }
    let (_, cache_n, evaluated) = complete(&server, &bob, &secret, 8);
    assert!(cache_n >= prompt_n - 1, "Bob's cache_n {cache_n}, {evaluated} evaluated");
}

#[test]
fn another_users_prompt_never_reuses_a_cached_sequence() {
    no_cache_crosses_users(ServerOptions::new(small_model()), false);
}

#[test]
fn another_users_prompt_never_reuses_a_parked_conversation() {
    no_cache_crosses_users(ServerOptions::new(small_model()).env("HEARTH_PARALLEL", "1"), false);
}

#[test]
fn another_users_prompt_never_reuses_a_saved_conversation() {
    let options =
        ServerOptions::new(small_model()).env("HEARTH_PARALLEL", "1").env("HEARTH_IDLE_CACHE_TOKENS", "1");
    no_cache_crosses_users(options, true);
}
