//! Several models: loading on demand, unknown names, the memory budget, idle unloading.

use crate::common::{code, default_model, small_model, Server, ServerOptions};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn loaded_ids(server: &Server) -> Vec<String> {
    let health = server.health().unwrap();
    health["components"]["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "ready")
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_request_may_name_another_installed_model() {
    // The default model file must be where Hearth looks: the model cache.
    assert!(default_model().is_file());
    let options = ServerOptions::new(small_model()).env("HEARTH_IDLE_UNLOAD_SECS", "2");
    let server = Server::start(options);
    let token = server.user("alice");

    let (_, list) = server.call("GET", "/v1/models", Some(&token), None);
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids[0], "smollm2-135m-instruct", "the configured model comes first: {list}");
    assert!(ids.contains(&"qwen2.5-coder-0.5b-instruct"), "{list}");
    // Speech models in the same cache (whisper.cpp files) are not offered for chat.
    assert!(ids.iter().all(|id| !id.contains("whisper")), "{list}");
    assert_eq!(loaded_ids(&server), ["smollm2-135m-instruct"]);

    let body = json!({"message": "What is the capital of France? One word.", "temperature": 0,
                      "max_tokens": 8, "model": "qwen2.5-coder-0.5b-instruct"});
    let (status, reply) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["model"], "qwen2.5-coder-0.5b-instruct");
    assert!(reply["reply"].as_str().unwrap().contains("Paris"), "{reply}");
    // (Not asserting it is still loaded here: with a 2 s idle limit it may already be gone.)

    // Unused for longer than idle_unload_secs: unloaded; the configured model stays.
    let deadline = Instant::now() + Duration::from_secs(120);
    while loaded_ids(&server).len() > 1 {
        assert!(Instant::now() < deadline, "the idle model was never unloaded");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(loaded_ids(&server), ["smollm2-135m-instruct"]);

    // OpenAI clients name models the same way; unknown names are a clear 404.
    let (status, err) = server.call(
        "POST",
        "/v1/chat/completions",
        Some(&token),
        Some(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})),
    );
    assert_eq!((status, code(&err)), (404, "model_not_found"), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("smollm2-135m-instruct"), "lists what exists");
}

#[test]
fn a_model_larger_than_memory_is_refused_without_unloading_others() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    // A sparse 2 TiB "model": installed by name, far beyond any machine's RAM.
    let models = server.data_dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::File::create(models.join("enormous.gguf")).unwrap().set_len(2 << 40).unwrap();

    let body = json!({"message": "hi", "model": "enormous"});
    let (status, err): (u16, Value) = server.call("POST", "/api/chat", Some(&token), Some(&body));
    assert_eq!((status, code(&err)), (503, "insufficient_memory"), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("MiB"), "{err}");
    assert_eq!(loaded_ids(&server), ["smollm2-135m-instruct"]);
    let (status, _) =
        server.call("POST", "/api/chat", Some(&token), Some(&json!({"message": "hi", "max_tokens": 4})));
    assert_eq!(status, 200);
}

/// Issue 25: `/v1/embeddings` loaded whatever installed GGUF it was given, with no memory
/// check; it now gets the one chat loads get.
#[test]
fn an_embedding_model_larger_than_memory_is_refused() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let models = server.data_dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::File::create(models.join("enormous.gguf")).unwrap().set_len(2 << 40).unwrap();

    let body = json!({"model": "enormous", "input": "hello"});
    let (status, err): (u16, Value) = server.call("POST", "/v1/embeddings", Some(&token), Some(&body));
    assert_eq!((status, code(&err)), (503, "insufficient_memory"), "{err}");
    assert_eq!(loaded_ids(&server), ["smollm2-135m-instruct"]);
}
