//! Tool calling and structured output through `/v1/chat/completions` (issue 22): calls in
//! the model's own format held to their schema, tool results fed back, `tool_choice`,
//! streamed `delta.tool_calls`, `response_format`, the official `openai` client, and a 400
//! naming whatever Hearth cannot do.

use crate::common::{code, default_model, python_client, small_model, sse_events, Server, ServerOptions};
use serde_json::{json, Value};

fn tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city.",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "description": "The city, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
            }, "required": ["city"]}
        }},
        {"type": "function", "function": {
            "name": "set_timer",
            "description": "Start a kitchen timer.",
            "parameters": {"type": "object", "properties": {
                "minutes": {"type": "integer", "minimum": 1, "maximum": 600}
            }, "required": ["minutes"]}
        }}
    ])
}

fn weather_question() -> Value {
    json!([{"role": "user", "content": "What is the weather like in Paris right now?"}])
}

fn complete(server: &Server, token: &str, body: &Value) -> Value {
    let (status, reply) = server.call("POST", "/v1/chat/completions", Some(token), Some(body));
    assert_eq!(status, 200, "{body}\n{reply}");
    reply
}

/// The calls of a reply, each checked for OpenAI's shape, as (name, parsed arguments).
fn calls_of(reply: &Value) -> Vec<(String, Value)> {
    let choice = &reply["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{reply}");
    let calls =
        choice["message"]["tool_calls"].as_array().unwrap_or_else(|| panic!("no tool_calls: {reply}"));
    assert!(!calls.is_empty(), "{reply}");
    calls
        .iter()
        .map(|c| {
            assert!(c["id"].as_str().unwrap().starts_with("call_"), "{c}");
            assert_eq!(c["type"], "function");
            let text = c["function"]["arguments"].as_str().expect("arguments are JSON text");
            let arguments: Value =
                serde_json::from_str(text).unwrap_or_else(|e| panic!("arguments are not JSON ({e}): {text}"));
            (c["function"]["name"].as_str().unwrap().to_string(), arguments)
        })
        .collect()
}

#[test]
fn a_weather_question_calls_the_tool_and_its_result_makes_the_answer() {
    let server = Server::start(ServerOptions::new(default_model()));
    let token = server.user("alice");
    let ask = json!({"messages": weather_question(), "tools": tools(), "tool_choice": "required", "temperature": 0});
    let reply = complete(&server, &token, &ask);
    let calls = calls_of(&reply);
    let (name, arguments) = &calls[0];
    assert_eq!(name, "get_weather", "{reply}");
    let city = arguments["city"].as_str().unwrap_or_else(|| panic!("no city: {arguments}"));
    assert!(city.contains("Paris"), "{arguments}");
    if let Some(unit) = arguments.get("unit") {
        assert!(unit == "celsius" || unit == "fahrenheit", "{arguments}");
    }
    let message = &reply["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");

    // The assistant's message as it came, then the tool's result: the answer uses it.
    // `tool_choice: none` asks for words: with `auto` this small model calls the tool again
    // (benches/RESULTS.md counts how often), and with none it is kept from writing a call.
    let call_id = message["tool_calls"][0]["id"].as_str().unwrap();
    let mut messages = weather_question();
    let messages = messages.as_array_mut().unwrap();
    messages.push(message.clone());
    messages.push(json!({"role": "tool", "tool_call_id": call_id,
                         "content": "{\"city\": \"Paris\", \"temperature_celsius\": 23, \"sky\": \"sunny\"}"}));
    // With the tools still shown, the turn's cached prompt is reused whole: the model's own
    // template renders the call as the model wrote it.
    let again = complete(
        &server,
        &token,
        &json!({"messages": messages, "tools": tools(), "temperature": 0,
                                                  "max_tokens": 40}),
    );
    let first_prompt = reply["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(again["timings"]["cache_n"].as_u64().unwrap() >= first_prompt, "{reply}\n{again}");
    let answer = complete(
        &server,
        &token,
        &json!({"messages": messages, "tools": tools(), "tool_choice": "none", "temperature": 0}),
    );
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "stop", "{answer}");
    assert!(choice["message"].get("tool_calls").is_none(), "{answer}");
    let text = choice["message"]["content"].as_str().unwrap();
    assert!(
        text.contains("23") || text.to_lowercase().contains("sunny"),
        "the answer ignores the result: {text}"
    );
}

#[test]
fn tool_choice_none_a_named_function_and_single_calls() {
    let server = Server::start(ServerOptions::new(default_model()));
    let token = server.user("alice");

    let none = json!({"messages": weather_question(), "tools": tools(), "tool_choice": "none", "temperature": 0,
                      "max_tokens": 40});
    let reply = complete(&server, &token, &none);
    let choice = &reply["choices"][0];
    assert_ne!(choice["finish_reason"], "tool_calls", "{reply}");
    assert!(choice["message"].get("tool_calls").is_none(), "{reply}");
    let text = choice["message"]["content"].as_str().unwrap();
    assert!(!text.is_empty() && !text.contains("<tool_call>"), "{reply}");

    // A named function is called even when the question is about something else.
    let named = json!({"messages": weather_question(), "tools": tools(), "temperature": 0,
                       "tool_choice": {"type": "function", "function": {"name": "set_timer"}}});
    let calls = calls_of(&complete(&server, &token, &named));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "set_timer");
    let minutes = calls[0].1["minutes"].as_i64().unwrap_or_else(|| panic!("{:?}", calls[0]));
    assert!((1..=600).contains(&minutes), "{minutes}");

    // Two cities, one call at most when parallel calls are off.
    let two = json!([{"role": "user", "content": "What's the weather in Paris and in Tokyo?"}]);
    let single = json!({"messages": two, "tools": tools(), "tool_choice": "required",
                        "parallel_tool_calls": false, "temperature": 0});
    assert_eq!(calls_of(&complete(&server, &token, &single)).len(), 1);
}

#[test]
fn streamed_tool_calls_reassemble_into_the_same_calls() {
    let server = Server::start(ServerOptions::new(default_model()));
    let token = server.user("alice");
    let body = json!({"messages": weather_question(), "tools": tools(), "tool_choice": "required", "temperature": 0});
    let whole = calls_of(&complete(&server, &token, &body));

    let mut streamed = body.clone();
    streamed["stream"] = true.into();
    let events = sse_events(&server.sse("/v1/chat/completions", &token, &streamed));
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    // Reassembled the way OpenAI's clients do it: by index, arguments joined.
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut content = String::new();
    let mut finish = None;
    for chunk in &chunks {
        let choice = &chunk["choices"][0];
        content += choice["delta"]["content"].as_str().unwrap_or("");
        finish = choice["finish_reason"].as_str().map(String::from).or(finish);
        for delta in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let index = delta["index"].as_u64().unwrap() as usize;
            if index == calls.len() {
                calls.push(Default::default());
            }
            let call = &mut calls[index];
            call.0 += delta["id"].as_str().unwrap_or("");
            call.1 += delta["function"]["name"].as_str().unwrap_or("");
            call.2 += delta["function"]["arguments"].as_str().unwrap_or("");
        }
    }
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(content, "", "no call text leaks into content");
    let reassembled: Vec<(String, Value)> = calls
        .iter()
        .map(|(id, name, arguments)| {
            assert!(id.starts_with("call_"));
            (name.clone(), serde_json::from_str(arguments).unwrap())
        })
        .collect();
    assert_eq!(reassembled, whole);
}

/// A schema with bounds everywhere, so that a reply at temperature 1 cannot run past
/// max_tokens: the grammar must bring every run to a valid end.
fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 24},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "city": {"type": "string", "enum": ["Paris", "Tokyo", "Lima"]},
            "pets": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
            "member": {"type": "boolean"}
        },
        "required": ["name", "age", "city", "pets", "member"],
        "additionalProperties": false
    })
}

/// Replies at temperature 1 from the small model (which, unconstrained, rarely writes JSON at
/// all): every one parses and matches the schema (checked with the `jsonschema` crate). The
/// suite asks for `HEARTH_TEST_SCHEMA_RUNS` replies (default 12: grammar-constrained sampling
/// makes each take seconds); `tests/schema_runs.sh` asks for 100.
#[test]
fn json_schema_replies_always_parse_and_match_the_schema() {
    let runs: u32 = std::env::var("HEARTH_TEST_SCHEMA_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let per_worker = runs.div_ceil(4).max(1);
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let schema = person_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let body = |seed: u32| {
        json!({
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Invent a person and describe them."}
            ],
            "temperature": 1, "seed": seed, "max_tokens": 200,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "person", "strict": true, "schema": schema}}
        })
    };
    let replies: Vec<Value> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4u32)
            .map(|w| {
                let (server, token, body) = (&server, &token, &body);
                scope.spawn(move || {
                    (0..per_worker)
                        .map(|i| complete(server, token, &body(w * per_worker + i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(replies.len() as u32, per_worker * 4);
    let mut distinct = std::collections::HashSet::new();
    for reply in &replies {
        assert_eq!(reply["choices"][0]["finish_reason"], "stop", "{reply}");
        let text = reply["choices"][0]["message"]["content"].as_str().unwrap();
        let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        if let Err(e) = validator.validate(&value) {
            panic!("{text} does not match the schema: {e}");
        }
        distinct.insert(text.to_string());
    }
    assert!(
        distinct.len() > replies.len() / 2,
        "temperature 1 gives varied replies: {} distinct",
        distinct.len()
    );
    eprintln!("json_schema: {} replies, all valid, {} distinct", replies.len(), distinct.len());

    // json_object: any object.
    let object = json!({"messages": [{"role": "user", "content": "Describe a cat."}], "temperature": 1,
                        "max_tokens": 300, "response_format": {"type": "json_object"}});
    for _ in 0..3 {
        let reply = complete(&server, &token, &object);
        let text = reply["choices"][0]["message"]["content"].as_str().unwrap();
        if reply["choices"][0]["finish_reason"] == "stop" {
            let value: Value =
                serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
            assert!(value.is_object(), "{text}");
        } else {
            assert!(text.trim_start().starts_with('{'), "{text}");
        }
    }
}

#[test]
fn a_model_without_tool_support_and_unsupported_fields_get_a_400_naming_them() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let refused = |body: Value, expected: &str, mentions: &str| {
        let (status, err) = server.call("POST", "/v1/chat/completions", Some(&token), Some(&body));
        assert_eq!((status, code(&err)), (400, expected), "{body}\n{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{message}");
    };
    // SmolLM2's template knows no tools: offering some, or sending tool results, is a 400.
    refused(
        json!({"messages": weather_question(), "tools": tools()}),
        "tools_unsupported",
        "no tool support",
    );
    refused(
        json!({"messages": weather_question(), "tools": tools(), "stream": true}),
        "tools_unsupported",
        "tool",
    );
    let history = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    ]);
    refused(json!({"messages": history}), "tools_unsupported", "tool");
    // Without tools shown (tool_choice none) a plain chat goes on.
    let plain =
        json!({"messages": weather_question(), "tools": tools(), "tool_choice": "none", "max_tokens": 5});
    complete(&server, &token, &plain);

    let ask = |extra: Value| {
        let mut body = json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    refused(ask(json!({"logit_bias": {"42": 10}})), "unsupported_parameter", "logit_bias");
    refused(ask(json!({"presence_penalty": 0.8})), "unsupported_parameter", "presence_penalty");
    refused(ask(json!({"logprobs": true})), "unsupported_parameter", "logprobs");
    refused(ask(json!({"functions": [{"name": "f"}]})), "unsupported_parameter", "functions");
    refused(ask(json!({"audio": {"voice": "alloy"}})), "unsupported_parameter", "audio");
    refused(
        ask(json!({"stream": true, "stream_options": {"include_obfuscation": true}})),
        "unsupported_parameter",
        "stream_options.include_obfuscation",
    );
    refused(
        ask(
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}}}}}),
        ),
        "invalid_request",
        "schema",
    );
    refused(
        json!({"messages": [{"role": "user", "content": "Hi", "name": "bob"}]}),
        "unsupported_parameter",
        "messages[0].name",
    );
    refused(
        json!({"messages": [{"role": "function", "content": "x"}]}),
        "invalid_request",
        "messages[0].role",
    );
    // Neutral values, labels and nulls are fine.
    complete(
        &server,
        &token,
        &ask(json!({"presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": false,
                                          "logit_bias": {}, "user": "u-1", "metadata": {"k": "v"}, "audio": null})),
    );
    // Text completions follow the same rule.
    let (status, err) = server.call(
        "POST",
        "/v1/completions",
        Some(&token),
        Some(&json!({"prompt": "Hi", "max_tokens": 2, "logprobs": 5})),
    );
    assert_eq!((status, code(&err)), (400, "unsupported_parameter"), "{err}");
}

/// The official `openai` Python client calls a tool, sends its result back, streams a call
/// (its own helper reassembles the deltas) and parses a reply into a Pydantic model
/// (`response_format` with a strict JSON schema). Needs python3 with the `openai` package
/// (scripts/test.sh provides it in .venv-test; set HEARTH_TEST_PYTHON).
#[test]
fn the_official_python_client_drives_tools_and_streaming() {
    let server = Server::start(ServerOptions::new(default_model()));
    let token = server.user("alice");
    let report = python_client(
        "openai_tools.py",
        &[("OPENAI_BASE_URL", &format!("{}/v1", server.url)), ("OPENAI_API_KEY", &token)],
        "openai>=1.30,<3",
    );
    assert_eq!(report["call"]["name"], "get_weather", "{report}");
    assert!(report["call"]["arguments"]["city"].as_str().unwrap().contains("Paris"), "{report}");
    assert_eq!(report["streamed_call"], report["call"], "{report}");
    assert!(report["stream_chunks"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(report["answer_finish_reason"], "stop", "{report}");
    assert!(report["answer_uses_result"].as_bool().unwrap(), "{report}");
    assert!(report["parsed"]["city"].is_string() && report["parsed"]["temperature"].is_number(), "{report}");
}
