//! The OpenAI-compatible API: shapes the official clients rely on.

use crate::common::{python_client, small_model, sse_events, Server, ServerOptions};
use serde_json::{json, Value};

fn request(stream: bool) -> Value {
    json!({
        "model": "smollm2-135m-instruct",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": [{"type": "text", "text": "Name three colours."}]}
        ],
        "max_tokens": 20,
        "temperature": 0,
        "stream": stream,
        "stream_options": {"include_usage": true}
    })
}

#[test]
fn models_and_completions_have_openai_shapes() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let (status, models) = server.call("GET", "/v1/models", Some(&token), None);
    assert_eq!(status, 200);
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "smollm2-135m-instruct");
    assert_eq!(models["data"][0]["object"], "model");

    let (status, body) = server.call("POST", "/v1/chat/completions", Some(&token), Some(&request(false)));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(!choice["message"]["content"].as_str().unwrap().is_empty());
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    // Streaming with greedy sampling gives the same text as the plain call.
    let sse = server.sse("/v1/chat/completions", &token, &request(true));
    let events = sse_events(&sse);
    assert_eq!(events.last().unwrap().1, "[DONE]", "{sse}");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, choice["message"]["content"].as_str().unwrap());
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], choice["finish_reason"]);
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"].as_array().unwrap().len(), 0);
    assert_eq!(usage_chunk["usage"], body["usage"]);
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], chunks[0]["id"]);
    }
}

#[test]
fn stop_strings_and_max_tokens_are_honoured() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let ask = |extra: Value| {
        let mut body = json!({
            "messages": [{"role": "user", "content": "Count from 1 to 20, separated by commas."}],
            "temperature": 0, "max_tokens": 60
        });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (status, reply) = server.call("POST", "/v1/chat/completions", Some(&token), Some(&body));
        assert_eq!(status, 200, "{reply}");
        reply
    };
    let full = ask(json!({}));
    let full_text = full["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(full_text.contains('5'), "{full_text}");

    let stopped = ask(json!({"stop": ["5"]}));
    let text = stopped["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop");
    assert!(!text.contains('5'), "stop string leaked: {text}");
    assert!(full_text.starts_with(text), "'{text}' is not a prefix of '{full_text}'");

    let short = ask(json!({"max_tokens": 3}));
    assert_eq!(short["choices"][0]["finish_reason"], "length");
    assert_eq!(short["usage"]["completion_tokens"], 3);
}

/// The official `openai` Python client streams a reply. Needs python3 with the
/// `openai` package (scripts/test.sh provides it in .venv-test).
#[test]
fn the_official_python_client_streams_a_reply() {
    let options = ServerOptions::new(small_model()).env("HEARTH_EMBEDDING_MODEL", "all-minilm-l6-v2");
    let server = Server::start(options);
    let token = server.user("alice");
    let report = python_client(
        "openai_stream.py",
        &[("OPENAI_BASE_URL", &format!("{}/v1", server.url)), ("OPENAI_API_KEY", &token)],
        "openai>=1.30,<3",
    );
    assert!(report["chunks"].as_u64().unwrap() >= 2, "{report}");
    assert!(!report["text"].as_str().unwrap().is_empty(), "{report}");
    assert_eq!(report["model"], "smollm2-135m-instruct");
    assert!(["stop", "length"].contains(&report["finish_reason"].as_str().unwrap()), "{report}");
    assert_eq!(report["embedding_dims"], json!([384, 384]), "base64 embeddings decode: {report}");
}

#[test]
fn text_completions_continue_a_raw_prompt() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let body = json!({"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0});
    let (status, reply) = server.call("POST", "/v1/completions", Some(&token), Some(&body));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["object"], "text_completion");
    let text = reply["choices"][0]["text"].as_str().unwrap().to_string();
    assert!(!text.is_empty());
    assert_eq!(reply["usage"]["completion_tokens"], 12);
    // No chat template: the prompt is only the text (and a BOS token at most).
    assert!(reply["usage"]["prompt_tokens"].as_u64().unwrap() <= 6, "{reply}");

    let mut echo = body.clone();
    echo["echo"] = true.into();
    let (_, echoed) = server.call("POST", "/v1/completions", Some(&token), Some(&echo));
    assert_eq!(echoed["choices"][0]["text"].as_str().unwrap(), format!("Once upon a time{text}"));

    let mut streamed = body.clone();
    streamed["stream"] = true.into();
    let events = sse_events(&server.sse("/v1/completions", &token, &streamed));
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let joined: String = events[..events.len() - 1]
        .iter()
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(joined, text);

    for bad in [json!({"prompt": ""}), json!({"prompt": ["a", "b"]}), json!({"prompt": "a", "suffix": "b"})] {
        let (status, err) = server.call("POST", "/v1/completions", Some(&token), Some(&bad));
        assert_eq!((status, crate::common::code(&err)), (400, "invalid_request"), "{bad}");
    }
}

fn minilm() -> std::path::PathBuf {
    crate::common::model_in_cache("all-minilm-l6-v2-f16.gguf", "HEARTH_TEST_EMBEDDING_MODEL")
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn embeddings_come_from_the_configured_embedding_model() {
    assert!(minilm().is_file());
    let options = ServerOptions::new(small_model()).env("HEARTH_EMBEDDING_MODEL", "all-minilm-l6-v2");
    let server = Server::start(options);
    let token = server.user("alice");
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(40); // ~400 tokens
    let inputs = [
        "The cat sits on the mat.",
        "A cat is sitting on a mat.",
        "Stock markets fell sharply today.",
        long.as_str(),
    ];
    let (status, body) = server.call(
        "POST",
        "/v1/embeddings",
        Some(&token),
        Some(&json!({"input": inputs, "encoding_format": "float"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "all-minilm-l6-v2");
    let vectors: Vec<Vec<f64>> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["index"], i);
            d["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
        })
        .collect();
    assert_eq!(vectors.len(), 4, "a ~400-token input fits the 512-token window");
    assert_eq!(vectors[0].len(), 384);
    for v in &vectors {
        assert!((cosine(v, v) - 1.0).abs() < 1e-3, "vectors are unit length");
    }
    let (similar, unrelated) = (cosine(&vectors[0], &vectors[1]), cosine(&vectors[0], &vectors[2]));
    assert!(similar > unrelated + 0.3, "similar {similar:.3} vs unrelated {unrelated:.3}");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 10);

    // base64 (the official client's default) carries the same little-endian f32 values.
    let (_, b64) = server.call(
        "POST",
        "/v1/embeddings",
        Some(&token),
        Some(&json!({"input": inputs[0], "encoding_format": "base64", "model": "all-minilm-l6-v2"})),
    );
    let text = b64["data"][0]["embedding"].as_str().unwrap();
    assert_eq!(text.len(), (384 * 4usize).div_ceil(3) * 4);

    // Each batch ran on a short-lived thread, and its OpenMP workers ended with it: the
    // embedding thread has no workers of its own left to slow the language model down.
    server.wait_threads_named("hearth-embed-ru", 0);
    server.wait_threads_named("hearth-embed", 1);

    for (bad, expected) in [
        (json!({"input": []}), "invalid_request"),
        (json!({"input": [""]}), "invalid_request"),
        (json!({"input": [[1, 2, 3]]}), "invalid_request"),
        (json!({"input": "x", "encoding_format": "hex"}), "invalid_request"),
        (json!({"input": "x", "dimensions": 7}), "invalid_request"),
        (json!({"input": "x", "model": "nope"}), "model_not_found"),
        (json!({"input": "x", "truncate": true}), "unsupported_parameter"),
        (json!({"input": "word ".repeat(2000)}), "invalid_request"),
    ] {
        let (status, err) = server.call("POST", "/v1/embeddings", Some(&token), Some(&bad));
        assert_eq!(
            (status, crate::common::code(&err)),
            (if expected == "model_not_found" { 404 } else { 400 }, expected),
            "{bad}: {err}"
        );
    }
}

#[test]
fn embeddings_without_a_configured_model_explain_what_to_do() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let (status, err) = server.call("POST", "/v1/embeddings", Some(&token), Some(&json!({"input": "hello"})));
    assert_eq!((status, crate::common::code(&err)), (400, "no_embedding_model"), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("model.embedding_model"));
}
