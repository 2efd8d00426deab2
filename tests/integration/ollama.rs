//! The Ollama API (issue 22): its routes' shapes, NDJSON streaming, tool calls, a 400
//! naming whatever Hearth does not do, Hearth's own `/api/chat` beside Ollama's, and the
//! official `ollama` Python client.

use crate::common::{default_model, python_client, small_model, Server, ServerOptions};
use serde_json::{json, Value};
use std::io::Read;
use std::time::Duration;

fn minilm_options(model: std::path::PathBuf) -> ServerOptions {
    assert!(
        crate::common::model_in_cache("all-minilm-l6-v2-f16.gguf", "HEARTH_TEST_EMBEDDING_MODEL").is_file()
    );
    ServerOptions::new(model).env("HEARTH_EMBEDDING_MODEL", "all-minilm-l6-v2")
}

/// POSTs JSON and returns the NDJSON reply's objects (status must be 200).
fn ndjson(server: &Server, path: &str, token: &str, body: &Value) -> Vec<Value> {
    let response = server
        .agent()
        .post(&format!("{}{}", server.url, path))
        .timeout(Duration::from_secs(600))
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(body.clone())
        .unwrap_or_else(|e| panic!("{path} {body}: {e:?}"));
    assert_eq!(response.content_type(), "application/x-ndjson");
    let mut text = String::new();
    response.into_reader().read_to_string(&mut text).unwrap();
    assert!(text.ends_with('\n'), "{text}");
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

fn post(server: &Server, path: &str, token: &str, body: Value) -> Value {
    let (status, reply) = server.call("POST", path, Some(token), Some(&body));
    assert_eq!(status, 200, "{path} {body}: {reply}");
    reply
}

/// The last object of a reply: done, why, and the timings in nanoseconds.
fn assert_last(last: &Value, model: &str) {
    assert_eq!(last["done"], true, "{last}");
    assert_eq!(last["model"], model, "{last}");
    assert!(["stop", "length"].contains(&last["done_reason"].as_str().unwrap()), "{last}");
    for field in [
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ] {
        assert!(last[field].is_u64(), "{field}: {last}");
    }
    assert!(
        last["eval_count"].as_u64().unwrap() > 0 && last["total_duration"].as_u64().unwrap() > 1000,
        "{last}"
    );
    assert!(last["created_at"].as_str().unwrap().ends_with('Z'), "{last}");
}

#[test]
fn the_routes_answer_in_ollamas_shapes() {
    let server = Server::start(minilm_options(small_model()));
    let token = server.user("alice");
    let small = "smollm2-135m-instruct:latest";

    let (status, version) = server.call("GET", "/api/version", Some(&token), None);
    assert_eq!(status, 200, "{version}");
    assert!(version["version"].as_str().unwrap().starts_with("0."), "{version}");

    let (_, tags) = server.call("GET", "/api/tags", Some(&token), None);
    let models = tags["models"].as_array().unwrap();
    let first = &models[0];
    assert_eq!((&first["name"], &first["model"]), (&json!(small), &json!(small)), "{tags}");
    assert!(first["size"].as_u64().unwrap() > 50_000_000, "{first}");
    assert_eq!(first["digest"].as_str().unwrap().len(), 64, "the manifest's sha256: {first}");
    let details = &first["details"];
    assert_eq!((&details["format"], &details["family"]), (&json!("gguf"), &json!("llama")), "{details}");
    assert_eq!(details["quantization_level"], "Q4_1", "{details}");
    assert!(details["parameter_size"].as_str().unwrap().ends_with('M'), "{details}");
    assert!(models.iter().any(|m| m["name"] == "all-minilm-l6-v2:latest"), "{tags}");

    let shown = post(&server, "/api/show", &token, json!({"model": small}));
    assert!(shown["template"].as_str().unwrap().contains("im_start"), "the GGUF's chat template: {shown}");
    assert_eq!(shown["capabilities"], json!(["completion"]), "SmolLM2's template shows no tools");
    assert_eq!(shown["model_info"]["general.architecture"], "llama");
    assert!(shown["model_info"]["llama.context_length"].as_u64().unwrap() >= 2048, "{shown}");
    assert_eq!(shown["details"], *details);
    let minilm = post(&server, "/api/show", &token, json!({"model": "all-minilm-l6-v2"}));
    assert_eq!(minilm["capabilities"], json!(["embedding"]), "{minilm}");

    let (_, ps) = server.call("GET", "/api/ps", Some(&token), None);
    assert_eq!(ps["models"][0]["name"], small, "{ps}");
    assert_eq!(ps["models"][0]["context_length"], 2048, "{ps}");

    assert_eq!(
        post(&server, "/api/pull", &token, json!({"model": small, "stream": false})),
        json!({"status": "success"})
    );
    assert_eq!(
        ndjson(&server, "/api/pull", &token, &json!({"model": small})),
        [json!({"status": "success"})]
    );

    // A chat, whole and streamed: greedy sampling gives the same text.
    let chat = json!({"model": small, "stream": false, "options": {"temperature": 0, "num_predict": 16},
                      "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                   {"role": "user", "content": "Name three colours."}]});
    let whole = post(&server, "/api/chat", &token, chat.clone());
    assert_last(&whole, small);
    assert_eq!(whole["message"]["role"], "assistant");
    let text = whole["message"]["content"].as_str().unwrap();
    assert!(!text.is_empty(), "{whole}");
    let mut streamed = chat.clone();
    streamed.as_object_mut().unwrap().remove("stream"); // streamed unless told otherwise
    let objects = ndjson(&server, "/api/chat", &token, &streamed);
    assert!(objects.len() >= 3, "{objects:?}");
    let (last, pieces) = objects.split_last().unwrap();
    assert_last(last, small);
    assert!(pieces.iter().all(|o| o["done"] == false && o["message"]["role"] == "assistant"), "{objects:?}");
    let joined: String = objects.iter().map(|o| o["message"]["content"].as_str().unwrap()).collect();
    assert_eq!(joined, text);
    assert_eq!(last["eval_count"], whole["eval_count"]);

    // Generate: through the chat template, raw, streamed, and an empty prompt that loads.
    let generate = json!({"model": small, "prompt": "Name three colours.", "system": "You are a helpful assistant.",
                          "stream": false, "options": {"temperature": 0, "num_predict": 16}});
    let reply = post(&server, "/api/generate", &token, generate.clone());
    assert_last(&reply, small);
    assert_eq!(reply["response"], whole["message"]["content"], "the same chat, asked as a prompt");
    let raw = post(
        &server,
        "/api/generate",
        &token,
        json!({"model": small, "prompt": "Once upon a time", "raw": true, "stream": false,
                          "options": {"num_predict": 5}}),
    );
    assert_eq!(raw["eval_count"], 5, "{raw}");
    assert!(raw["prompt_eval_count"].as_u64().unwrap() <= 6, "no chat template: {raw}");
    let mut streamed = generate.clone();
    streamed["stream"] = true.into();
    let objects = ndjson(&server, "/api/generate", &token, &streamed);
    let joined: String = objects.iter().map(|o| o["response"].as_str().unwrap()).collect();
    assert_eq!(joined, reply["response"].as_str().unwrap());
    let load = post(&server, "/api/generate", &token, json!({"model": small}));
    assert_eq!((&load["done"], &load["done_reason"]), (&json!(true), &json!("load")), "{load}");

    // A JSON reply with `format`.
    let json_reply = post(
        &server,
        "/api/chat",
        &token,
        json!({"model": small, "stream": false, "format": {"type": "object", "properties": {"colour": {"type": "string"}},
               "required": ["colour"]}, "options": {"temperature": 0, "num_predict": 40},
               "messages": [{"role": "user", "content": "What colour is the sky? Answer in JSON."}]}),
    );
    let parsed: Value = serde_json::from_str(json_reply["message"]["content"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {json_reply}"));
    assert!(parsed["colour"].is_string(), "{parsed}");

    // Embeddings: the configured embedding model, one string or several.
    let one = post(&server, "/api/embed", &token, json!({"input": "The cat sat on the mat."}));
    assert_eq!(one["model"], "all-minilm-l6-v2:latest");
    assert_eq!(one["embeddings"].as_array().unwrap().len(), 1);
    assert_eq!(one["embeddings"][0].as_array().unwrap().len(), 384);
    let two = post(
        &server,
        "/api/embed",
        &token,
        json!({"model": "all-minilm-l6-v2", "input": ["a", "b"], "truncate": false, "keep_alive": "5m"}),
    );
    assert_eq!(two["embeddings"].as_array().unwrap().len(), 2);
    let legacy = post(
        &server,
        "/api/embeddings",
        &token,
        json!({"model": "all-minilm-l6-v2", "prompt": "The cat sat on the mat."}),
    );
    assert_eq!(legacy["embedding"], one["embeddings"][0]);

    // Hearth's own chat keeps its path and shape.
    let own = post(&server, "/api/chat", &token, json!({"message": "Hello", "max_tokens": 4}));
    assert!(own["conversation_id"].is_string() && own["reply"].is_string(), "{own}");
}

#[test]
fn bad_requests_are_refused_in_ollamas_shape_and_every_route_needs_a_token() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let hi = json!([{"role": "user", "content": "hi"}]);
    for (path, body, status, code, mentions) in [
        (
            "/api/chat",
            json!({"messages": hi, "mirostat_eta": 1}),
            400,
            "unsupported_parameter",
            "mirostat_eta",
        ),
        (
            "/api/chat",
            json!({"messages": hi, "options": {"repeat_penalty": 1.3}}),
            400,
            "unsupported_parameter",
            "options.repeat_penalty",
        ),
        ("/api/chat", json!({"messages": hi, "think": true}), 400, "unsupported_parameter", "think"),
        (
            "/api/chat",
            json!({"messages": [{"role": "user", "content": "hi", "images": ["aGk="]}]}),
            400,
            "unsupported_parameter",
            "messages[0].images",
        ),
        (
            "/api/chat",
            json!({"messages": hi, "options": {"temperature": 7}}),
            400,
            "invalid_request",
            "temperature",
        ),
        ("/api/chat", json!({"messages": "hi"}), 400, "invalid_request", "invalid request"),
        (
            "/api/chat",
            json!({"messages": hi, "model": "llama3.2:latest"}),
            404,
            "model_not_found",
            "llama3.2",
        ),
        ("/api/generate", json!({"prompt": "a", "suffix": "b"}), 400, "unsupported_parameter", "suffix"),
        ("/api/generate", json!({"prompt": "a", "context": [1, 2]}), 400, "unsupported_parameter", "context"),
        ("/api/generate", json!({"prompt": "a", "images": ["aGk="]}), 400, "unsupported_parameter", "images"),
        (
            "/api/generate",
            json!({"prompt": "a", "template": "{{ .Prompt }}"}),
            400,
            "unsupported_parameter",
            "template",
        ),
        (
            "/api/generate",
            json!({"prompt": "a", "raw": true, "system": "s"}),
            400,
            "invalid_request",
            "system",
        ),
        ("/api/generate", json!({"prompt": "a", "cache": 1}), 400, "unsupported_parameter", "cache"),
        ("/api/embed", json!({"input": "a"}), 400, "no_embedding_model", "embedding_model"),
        ("/api/embed", json!({"input": "a", "truncate": true}), 400, "unsupported_parameter", "truncate"),
        ("/api/show", json!({"model": "nope"}), 404, "model_not_found", "nope"),
        ("/api/pull", json!({"model": "llama3.2"}), 404, "model_not_found", "does not download"),
    ] {
        let (got, err) = server.call("POST", path, Some(&token), Some(&body));
        assert_eq!((got, err["code"].as_str()), (status, Some(code)), "{path} {body}: {err}");
        let message = err["error"].as_str().unwrap_or_else(|| panic!("Ollama's error is a string: {err}"));
        assert!(message.contains(mentions), "{path} {body}: {err}");
    }

    // Malformed JSON: Ollama's shape where the route is Ollama's only, Hearth's on the
    // shared /api/chat (a body that is not JSON is neither's).
    let (status, err) = server.raw("/api/generate", &token, "application/json", b"{\"prompt\": ");
    assert_eq!((status, err["code"].as_str()), (400, Some("invalid_json")), "{err}");
    assert!(err["error"].is_string(), "{err}");
    let (status, err) = server.raw("/api/chat", &token, "application/json", b"{\"messages\": ");
    assert_eq!((status, crate::common::code(&err)), (400, "invalid_json"), "{err}");

    for (method, path) in [
        ("GET", "/api/version"),
        ("GET", "/api/tags"),
        ("GET", "/api/ps"),
        ("POST", "/api/show"),
        ("POST", "/api/pull"),
        ("POST", "/api/chat"),
        ("POST", "/api/generate"),
        ("POST", "/api/embed"),
        ("POST", "/api/embeddings"),
    ] {
        let body = (method == "POST").then(|| json!({"model": "smollm2-135m-instruct", "messages": hi}));
        let (status, err) = server.call(method, path, None, body.as_ref());
        // Ollama's shape but on the shared /api/chat.
        let code =
            if path == "/api/chat" { crate::common::code(&err) } else { err["code"].as_str().unwrap_or("") };
        assert_eq!((status, code), (401, "unauthorized"), "{method} {path}: {err}");
    }
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "The city, e.g. Paris"}}, "required": ["city"]}}})
}

#[test]
fn a_tool_call_and_its_result_in_ollamas_shape() {
    let server = Server::start(ServerOptions::new(default_model()));
    let token = server.user("alice");
    let question = json!([{"role": "user", "content": "What is the weather like in Paris right now?"}]);
    let ask = json!({"messages": question, "tools": [weather_tool()], "stream": false, "options": {"temperature": 0}});
    let reply = post(&server, "/api/chat", &token, ask.clone());
    assert_eq!(reply["done_reason"], "stop", "{reply}");
    let call = &reply["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "get_weather", "{reply}");
    assert!(
        call["arguments"]["city"].as_str().unwrap().contains("Paris"),
        "arguments are an object: {reply}"
    );

    // Streamed: the calls come in an object of their own before the last.
    let mut streamed = ask.clone();
    streamed["stream"] = true.into();
    let objects = ndjson(&server, "/api/chat", &token, &streamed);
    let calls: Vec<&Value> = objects.iter().filter(|o| o["message"]["tool_calls"].is_array()).collect();
    assert_eq!(calls.len(), 1, "{objects:?}");
    assert_eq!(calls[0]["message"]["tool_calls"], reply["message"]["tool_calls"]);
    assert_eq!(objects.last().unwrap()["done"], true);

    // The result fed back (by tool_name, as Ollama's clients send it) makes the answer.
    let mut messages = question.as_array().unwrap().clone();
    messages.push(reply["message"].clone());
    messages.push(json!({"role": "tool", "tool_name": "get_weather",
                         "content": "{\"city\": \"Paris\", \"temperature_celsius\": 23, \"sky\": \"sunny\"}"}));
    let answer = post(
        &server,
        "/api/chat",
        &token,
        json!({"messages": messages, "stream": false,
                                                            "options": {"temperature": 0, "num_predict": 60}}),
    );
    let text = answer["message"]["content"].as_str().unwrap();
    assert!(answer["message"].get("tool_calls").is_none(), "{answer}");
    assert!(
        text.contains("23") || text.to_lowercase().contains("sunny"),
        "the answer ignores the result: {answer}"
    );
}

/// The official `ollama` Python client (scripts/test.sh installs it in .venv-test).
#[test]
fn the_ollama_python_client_drives_tools_and_streaming() {
    let server = Server::start(minilm_options(default_model()));
    let token = server.user("alice");
    let report = python_client(
        "ollama_client.py",
        &[("HEARTH_URL", &server.url), ("HEARTH_TOKEN", &token)],
        "ollama>=0.4,<1",
    );
    let model = "qwen2.5-coder-0.5b-instruct:latest";
    assert_eq!(report["models"][0], model, "{report}");
    assert_eq!(report["capabilities"], json!(["completion", "tools"]), "{report}");
    assert_eq!(report["details"]["quantization_level"], "Q4_K_M", "{report}");
    assert_eq!(report["running"][0], model, "{report}");
    assert_eq!(report["pull"], "success", "{report}");
    assert!(report["stream_chunks"].as_u64().unwrap() >= 2, "{report}");
    assert!(!report["streamed_text"].as_str().unwrap().is_empty(), "{report}");
    assert_eq!(report["stream_done_reason"], "stop", "{report}");
    assert_eq!(report["call"]["name"], "get_weather", "{report}");
    assert!(report["call"]["arguments"]["city"].as_str().unwrap().contains("Paris"), "{report}");
    assert_eq!(report["streamed_call"], report["call"], "{report}");
    assert!(report["answer_uses_result"].as_bool().unwrap(), "{report}");
    assert!(!report["generated"].as_str().unwrap().is_empty(), "{report}");
    assert_eq!(report["embedding_dims"], json!([384, 384]), "{report}");
    assert_eq!(report["missing_model_status"], 404, "{report}");
}
