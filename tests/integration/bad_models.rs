//! Corrupt and hostile model files: a clear error, the process alive, health says why.

use crate::common::{cli, code, gguf_fixtures, small_model, Server, ServerOptions};
use serde_json::json;
use std::path::Path;

/// Starts a server on a bad model file and checks it reports, not crashes.
fn assert_refused(model: &Path, expected: &str) {
    let mut server = Server::start(ServerOptions::new(model.to_path_buf()));
    let health = server.wait_settled();
    let model_health = &health["components"]["model"];
    assert_eq!(model_health["state"], "failed", "{health}");
    let error = model_health["error"].as_str().unwrap();
    assert!(error.contains(expected), "expected '{expected}' in: {error}");
    assert_eq!(health["components"]["database"]["ready"], true);

    let token = server.user("alice");
    let (status, body) = server.call("POST", "/api/chat", Some(&token), Some(&json!({"message": "hi"})));
    assert_eq!((status, code(&body)), (503, "model_not_ready"), "{body}");
    let (status, body) = server.call(
        "POST",
        "/v1/chat/completions",
        Some(&token),
        Some(&json!({"messages": [{"role": "user", "content": "hi"}]})),
    );
    assert_eq!((status, code(&body)), (503, "model_not_ready"), "{body}");
    let (status, models) = server.call("GET", "/v1/models", Some(&token), None);
    assert_eq!(status, 200);
    let stem = model.file_stem().unwrap().to_str().unwrap();
    let listed = models["data"].as_array().unwrap().iter().any(|m| m["id"] == stem);
    assert!(!listed, "a model that failed to load is not offered: {models}");
    assert!(server.alive(), "the process died:\n{}", server.log());

    // `hearth models verify` reports the same problem with a failing exit code.
    let (exit, out, _) = cli(&server.data_dir, &["models", "verify", model.to_str().unwrap()]);
    assert_eq!(exit, 1, "{out}");
    assert!(out.contains("FAILED") && out.contains(expected), "{out}");
}

#[test]
fn a_truncated_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("truncated.gguf");
    gguf_fixtures::truncated_copy(&small_model(), &bad, 20 * 1024 * 1024).unwrap();
    assert_refused(&bad, "past end of file");
}

#[test]
fn random_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("random.gguf");
    gguf_fixtures::random_bytes(&bad, 4 * 1024 * 1024, 7).unwrap();
    assert_refused(&bad, "not a GGUF file");
}

#[test]
fn hostile_block_count_is_refused_before_llama_cpp_sees_it() {
    // Unguarded, llama.cpp aborts the whole process on this file (GGML_ASSERT).
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("hostile.gguf");
    gguf_fixtures::with_u32_kv(&small_model(), &bad, "llama.block_count", 1000).unwrap();
    assert_refused(&bad, "block_count");
}

#[test]
fn a_listed_model_with_wrong_bytes_fails_its_checksum() {
    // Same name and size as the manifest entry, one flipped byte deep in the weights:
    // the structure is valid, only the sha256 catches it.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::copy(small_model(), &bad).unwrap();
    let mut bytes = std::fs::read(&bad).unwrap();
    let at = bytes.len() - 1000;
    bytes[at] ^= 0xff;
    std::fs::write(&bad, bytes).unwrap();
    assert_refused(&bad, "sha256");
}

#[test]
fn a_missing_model_is_reported() {
    assert_refused(Path::new("/nonexistent/model.gguf"), "No such file");
}
