//! Tool calling and structured output in OpenAI's chat shapes: `tools`, `tool_choice`,
//! `parallel_tool_calls` and `response_format` in requests, assistant messages with
//! `tool_calls` and `role: "tool"` results, and calls in replies (`message.tool_calls`,
//! streamed `delta.tool_calls`).
//!
//! Also the rule every OpenAI request here follows: a field Hearth does not act on is a
//! 400 `unsupported_parameter` naming it, never silently dropped ([`reject_unknown`]).

use crate::engine::{ChatMessage, Constraint, ToolCall, ToolChoice, ToolSpec, ToolUse};
use crate::error::{ApiError, ErrorCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Fields a request carried that no struct field took (a `#[serde(flatten)]` catch-all).
pub(super) type Unknown = Map<String, Value>;

fn unsupported(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::UnsupportedParameter, message)
}

/// Refuses fields Hearth does not act on. `null` counts as absent (clients echo back
/// assistant messages with `"refusal": null` and the like); `neutral` lists fields accepted
/// at the one value that asks for nothing (such as `presence_penalty: 0`), `labels` fields
/// that only describe the request (such as `user`) and are accepted as they are.
pub(super) fn reject_unknown(
    fields: &Unknown,
    at: &str,
    neutral: &[(&str, Value)],
    labels: &[&str],
) -> Result<(), ApiError> {
    for (key, value) in fields {
        let path = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
        if value.is_null() || labels.contains(&key.as_str()) {
            continue;
        }
        match neutral.iter().find(|(name, _)| name == key) {
            Some((_, accepted)) if same(value, accepted) => {}
            Some((_, accepted)) => {
                return Err(unsupported(format!("{path} is not supported; only {accepted} is accepted")))
            }
            None => return Err(unsupported(format!("{path} is not supported by Hearth"))),
        }
    }
    Ok(())
}

/// JSON equality that counts `0` and `0.0` as one.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The tool and format fields of a chat completion request.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ToolRequest {
    #[serde(default)]
    tools: Option<Vec<ToolDef>>,
    #[serde(default)]
    tool_choice: Option<ChoiceDef>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    response_format: Option<FormatDef>,
}

#[derive(Debug, Deserialize)]
struct ToolDef {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    function: Option<FunctionDef>,
    #[serde(flatten)]
    other: Unknown,
}

#[derive(Debug, Deserialize)]
struct FunctionDef {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    /// Calls always follow the schema here (a grammar enforces it), strict or not.
    #[serde(default)]
    #[allow(dead_code)]
    strict: Option<bool>,
    #[serde(flatten)]
    other: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ChoiceDef {
    Mode(String),
    Named {
        #[serde(rename = "type")]
        kind: String,
        function: NamedFunction,
        #[serde(flatten)]
        other: Unknown,
    },
}

#[derive(Debug, Deserialize)]
struct NamedFunction {
    name: String,
    #[serde(flatten)]
    other: Unknown,
}

#[derive(Debug, Deserialize)]
struct FormatDef {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    json_schema: Option<SchemaDef>,
    #[serde(flatten)]
    other: Unknown,
}

#[derive(Debug, Deserialize)]
struct SchemaDef {
    #[allow(dead_code)]
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    schema: Option<Value>,
    /// The reply always follows the schema here, strict or not.
    #[serde(default)]
    #[allow(dead_code)]
    strict: Option<bool>,
    #[serde(flatten)]
    other: Unknown,
}

/// OpenAI's rule for function names.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ToolRequest {
    /// What the reply may be.
    pub fn constraint(self) -> Result<Constraint, ApiError> {
        let tools = self.tools.unwrap_or_default();
        let mut specs: Vec<ToolSpec> = Vec::with_capacity(tools.len());
        for (i, tool) in tools.into_iter().enumerate() {
            reject_unknown(&tool.other, &format!("tools[{i}]"), &[], &[])?;
            if tool.kind != "function" {
                return Err(unsupported(format!(
                    "tools[{i}].type '{}' is not supported; Hearth's tools are functions",
                    tool.kind
                )));
            }
            let Some(f) = tool.function else {
                return Err(ApiError::invalid(format!("tools[{i}].function is missing")));
            };
            reject_unknown(&f.other, &format!("tools[{i}].function"), &[], &[])?;
            if !valid_name(&f.name) {
                return Err(ApiError::invalid(format!(
                    "tools[{i}].function.name must be 1 to 64 letters, digits, '_' or '-'"
                )));
            }
            if specs.iter().any(|s| s.name == f.name) {
                return Err(ApiError::invalid(format!(
                    "tools[{i}]: the function '{}' is listed twice",
                    f.name
                )));
            }
            let parameters = match f.parameters {
                None => ToolSpec::no_parameters(),
                Some(p) if p.is_object() => p,
                Some(_) => {
                    return Err(ApiError::invalid(format!(
                        "tools[{i}].function.parameters must be a JSON schema object"
                    )))
                }
            };
            specs.push(ToolSpec { name: f.name, description: f.description, parameters });
        }
        let choice = match self.tool_choice {
            None => ToolChoice::Auto,
            Some(ChoiceDef::Mode(mode)) => match mode.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => {
                    return Err(ApiError::invalid(format!(
                        "tool_choice '{other}' is not one of none, auto, required or a named function"
                    )))
                }
            },
            Some(ChoiceDef::Named { kind, function, other }) => {
                reject_unknown(&other, "tool_choice", &[], &[])?;
                reject_unknown(&function.other, "tool_choice.function", &[], &[])?;
                if kind != "function" {
                    return Err(unsupported(format!("tool_choice.type '{kind}' is not supported")));
                }
                if !specs.iter().any(|s| s.name == function.name) {
                    return Err(ApiError::invalid(format!(
                        "tool_choice names '{}', which is not among the tools",
                        function.name
                    )));
                }
                ToolChoice::Function(function.name)
            }
        };
        if specs.is_empty() && matches!(choice, ToolChoice::Required | ToolChoice::Function(_)) {
            return Err(ApiError::invalid("tool_choice requires tools"));
        }
        let format = self.response_format.map(format_constraint).transpose()?.flatten();
        if specs.is_empty() {
            return Ok(format.unwrap_or_default());
        }
        if choice == ToolChoice::None {
            // The engine leaves the tools out and keeps the model from writing a call; a
            // format, if any, applies.
            return Ok(format.unwrap_or(Constraint::Tools(ToolUse {
                tools: specs,
                choice,
                parallel: false,
            })));
        }
        if format.is_some() {
            return Err(unsupported(
                "response_format together with tools is not supported; send one of them \
                 (or tool_choice: none)",
            ));
        }
        let parallel = self.parallel_tool_calls.unwrap_or(true);
        Ok(Constraint::Tools(ToolUse { tools: specs, choice, parallel }))
    }
}

/// `response_format`: `None` for plain text.
fn format_constraint(format: FormatDef) -> Result<Option<Constraint>, ApiError> {
    reject_unknown(&format.other, "response_format", &[], &[])?;
    match format.kind.as_str() {
        "text" => Ok(None),
        "json_object" => Ok(Some(Constraint::JsonObject)),
        "json_schema" => {
            let Some(def) = format.json_schema else {
                return Err(ApiError::invalid("response_format.json_schema is missing"));
            };
            reject_unknown(&def.other, "response_format.json_schema", &[], &[])?;
            match def.schema {
                None => Ok(Some(Constraint::JsonSchema(json!({})))),
                Some(schema) if schema.is_object() || schema.is_boolean() => {
                    Ok(Some(Constraint::JsonSchema(schema)))
                }
                Some(_) => Err(ApiError::invalid("response_format.json_schema.schema must be a JSON schema")),
            }
        }
        other => Err(unsupported(format!("response_format.type '{other}' is not supported"))),
    }
}

/// The tool fields of a request message.
#[derive(Debug, Default, Deserialize)]
pub(super) struct MessageTools {
    #[serde(default)]
    tool_calls: Option<Vec<CallDef>>,
    #[serde(default)]
    tool_call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(flatten)]
    other: Unknown,
}

#[derive(Debug, Deserialize)]
struct CallDef {
    id: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    function: CallFunction,
    #[serde(flatten)]
    other: Unknown,
}

#[derive(Debug, Deserialize)]
struct CallFunction {
    name: String,
    /// A JSON object as text (OpenAI), or the object itself.
    arguments: Value,
    #[serde(flatten)]
    other: Unknown,
}

/// Builds message `i` from its role (already checked), text and tool fields. A tool result
/// without a `name` takes the name of the call it answers.
pub(super) fn message(
    i: usize,
    role: &str,
    content: String,
    tools: MessageTools,
    earlier: &[ChatMessage],
) -> Result<ChatMessage, ApiError> {
    let at = format!("messages[{i}]");
    reject_unknown(&tools.other, &at, &[], &[])?;
    let calls = tools.tool_calls.unwrap_or_default();
    if !calls.is_empty() && role != "assistant" {
        return Err(ApiError::invalid(format!("{at}.tool_calls is only for assistant messages")));
    }
    if role != "tool" {
        if tools.tool_call_id.is_some() {
            return Err(ApiError::invalid(format!("{at}.tool_call_id is only for tool messages")));
        }
        if tools.name.is_some() {
            return Err(unsupported(format!(
                "{at}.name is not supported (participant names are not shown to the model)"
            )));
        }
    }
    if role == "tool" {
        let Some(id) = tools.tool_call_id else {
            return Err(ApiError::invalid(format!(
                "{at}.tool_call_id is missing: say which call this result answers"
            )));
        };
        let name = tools.name.or_else(|| {
            earlier.iter().rev().flat_map(|m| &m.tool_calls).find(|c| c.id == id).map(|c| c.name.clone())
        });
        return Ok(ChatMessage::tool_result(id, name, content));
    }
    if calls.is_empty() {
        return Ok(ChatMessage::new(role, content));
    }
    let mut parsed = Vec::with_capacity(calls.len());
    for (j, call) in calls.into_iter().enumerate() {
        let at = format!("{at}.tool_calls[{j}]");
        reject_unknown(&call.other, &at, &[], &[])?;
        reject_unknown(&call.function.other, &format!("{at}.function"), &[], &[])?;
        if call.kind.as_deref().is_some_and(|k| k != "function") {
            return Err(unsupported(format!("{at}.type must be function")));
        }
        let arguments = match call.function.arguments {
            Value::String(text) => serde_json::from_str(&text)
                .map_err(|e| ApiError::invalid(format!("{at}.function.arguments is not valid JSON ({e})")))?,
            object @ Value::Object(_) => object,
            _ => {
                return Err(ApiError::invalid(format!(
                    "{at}.function.arguments must be a JSON object as text"
                )))
            }
        };
        parsed.push(ToolCall { id: call.id, name: call.function.name, arguments });
    }
    Ok(ChatMessage::tool_calls(content, parsed))
}

/// A call in OpenAI's reply shape (arguments as JSON text).
pub(super) fn call_json(call: &ToolCall) -> Value {
    json!({
        "id": call.id,
        "type": "function",
        "function": { "name": call.name, "arguments": call.arguments.to_string() },
    })
}

/// The reply's `message`: text, and the calls when the model made some (then `content` is
/// null if it wrote nothing else, as OpenAI's replies have it).
pub(super) fn reply_message(text: String, calls: &[ToolCall]) -> Value {
    if calls.is_empty() {
        return json!({ "role": "assistant", "content": text });
    }
    let content = if text.is_empty() { Value::Null } else { Value::String(text) };
    json!({
        "role": "assistant",
        "content": content,
        "tool_calls": calls.iter().map(call_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> Result<Constraint, ApiError> {
        serde_json::from_value::<ToolRequest>(body).unwrap().constraint()
    }

    fn weather() -> Value {
        json!({"type": "function", "function": {"name": "get_weather", "description": "Weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})
    }

    #[test]
    fn tools_and_choices_become_a_constraint() {
        let Constraint::Tools(tools) = request(json!({"tools": [weather()]})).unwrap() else { panic!() };
        assert_eq!((tools.choice, tools.parallel), (ToolChoice::Auto, true));
        assert_eq!(tools.tools[0].name, "get_weather");
        assert_eq!(tools.tools[0].parameters["properties"]["city"]["type"], "string");
        let Constraint::Tools(tools) =
            request(json!({"tools": [weather()], "tool_choice": "required", "parallel_tool_calls": false}))
                .unwrap()
        else {
            panic!()
        };
        assert_eq!((tools.choice, tools.parallel), (ToolChoice::Required, false));
        let named = json!({"tools": [weather()], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}});
        let Constraint::Tools(tools) = request(named).unwrap() else { panic!() };
        assert_eq!(tools.choice, ToolChoice::Function("get_weather".into()));
        let Constraint::Tools(none) = request(json!({"tools": [weather()], "tool_choice": "none"})).unwrap()
        else {
            panic!()
        };
        assert!(none.choice == ToolChoice::None && !none.callable());
        assert_eq!(request(json!({})).unwrap(), Constraint::None);
        assert_eq!(request(json!({"tools": []})).unwrap(), Constraint::None);
    }

    #[test]
    fn response_formats_become_json_constraints() {
        assert_eq!(request(json!({"response_format": {"type": "text"}})).unwrap(), Constraint::None);
        assert_eq!(
            request(json!({"response_format": {"type": "json_object"}})).unwrap(),
            Constraint::JsonObject
        );
        let schema = json!({"type": "object", "properties": {"b": {}, "a": {}}});
        let format =
            json!({"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema": schema}});
        assert_eq!(request(json!({"response_format": format})).unwrap(), Constraint::JsonSchema(schema));
        // Tools that may not be called: the format applies.
        let both =
            json!({"tools": [weather()], "tool_choice": "none", "response_format": {"type": "json_object"}});
        assert_eq!(request(both).unwrap(), Constraint::JsonObject);
    }

    #[test]
    fn what_hearth_cannot_do_is_refused_by_name() {
        for (body, code, mentions) in [
            (json!({"tools": [{"type": "web_search"}]}), "unsupported_parameter", "tools[0].type"),
            (
                json!({"tools": [{"type": "function", "function": {"name": "f", "cache": 1}}]}),
                "unsupported_parameter",
                "tools[0].function.cache",
            ),
            (
                json!({"tools": [weather()], "response_format": {"type": "json_object"}}),
                "unsupported_parameter",
                "response_format",
            ),
            (
                json!({"response_format": {"type": "grammar"}}),
                "unsupported_parameter",
                "response_format.type",
            ),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "extra": 1}}}),
                "unsupported_parameter",
                "response_format.json_schema.extra",
            ),
            (
                json!({"tools": [weather()], "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
                "invalid_request",
                "nope",
            ),
            (json!({"tool_choice": "required"}), "invalid_request", "requires tools"),
            (json!({"tools": [weather()], "tool_choice": "sometimes"}), "invalid_request", "sometimes"),
            (
                json!({"tools": [{"type": "function", "function": {"name": "bad name"}}]}),
                "invalid_request",
                "name",
            ),
            (json!({"tools": [weather(), weather()]}), "invalid_request", "twice"),
            (
                json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]}),
                "invalid_request",
                "parameters",
            ),
        ] {
            let err = request(body.clone()).unwrap_err();
            assert_eq!(err.code.code(), code, "{body}: {err}");
            assert!(err.message.contains(mentions), "{body}: {err}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_unless_null_neutral_or_labels() {
        let fields = |v: Value| v.as_object().unwrap().clone();
        let neutral = [("presence_penalty", json!(0)), ("logprobs", json!(false))];
        let check = |v: Value| reject_unknown(&fields(v), "", &neutral, &["user"]);
        assert!(
            check(json!({"presence_penalty": 0.0, "logprobs": false, "user": "u1", "audio": null})).is_ok()
        );
        let err = check(json!({"presence_penalty": 0.5})).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedParameter);
        assert!(err.message.contains("presence_penalty") && err.message.contains("only 0"), "{err}");
        let err = check(json!({"logit_bias": {"1": 5}})).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (ErrorCode::UnsupportedParameter, "logit_bias is not supported by Hearth")
        );
    }

    fn parse(
        i: usize,
        role: &str,
        content: &str,
        tools: Value,
        earlier: &[ChatMessage],
    ) -> Result<ChatMessage, ApiError> {
        message(i, role, content.into(), serde_json::from_value(tools).unwrap(), earlier)
    }

    #[test]
    fn assistant_calls_and_tool_results_are_read() {
        let call = json!({"tool_calls": [{"id": "call_1", "type": "function",
                          "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]});
        let assistant = parse(2, "assistant", "", call, &[]).unwrap();
        assert_eq!(
            assistant.tool_calls,
            vec![ToolCall {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: json!({"city": "Paris"})
            }]
        );
        let result =
            parse(3, "tool", "18 °C", json!({"tool_call_id": "call_1"}), std::slice::from_ref(&assistant))
                .unwrap();
        assert_eq!(result, ChatMessage::tool_result("call_1", Some("get_weather".into()), "18 °C"));
        assert_eq!(
            parse(1, "user", "hi", json!({"name": null}), &[]).unwrap(),
            ChatMessage::new("user", "hi")
        );
    }

    #[test]
    fn bad_tool_messages_say_what_is_wrong() {
        let bad_args = json!({"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]});
        for (role, tools, mentions) in [
            ("assistant", bad_args, "messages[4].tool_calls[0].function.arguments"),
            ("tool", json!({}), "messages[4].tool_call_id"),
            ("user", json!({"tool_call_id": "c"}), "messages[4].tool_call_id"),
            ("user", json!({"name": "bob"}), "messages[4].name"),
            ("assistant", json!({"refusal": "no"}), "messages[4].refusal"),
            (
                "user",
                json!({"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]}),
                "messages[4].tool_calls",
            ),
        ] {
            let err = parse(4, role, "x", tools.clone(), &[]).unwrap_err();
            assert!(err.message.contains(mentions), "{tools}: {err}");
        }
    }

    #[test]
    fn replies_carry_calls_in_openai_shape() {
        let call =
            ToolCall { id: "call_9".into(), name: "f".into(), arguments: json!({"b": 1, "a": [true]}) };
        assert_eq!(
            reply_message(String::new(), std::slice::from_ref(&call)),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"b\":1,\"a\":[true]}"}}]})
        );
        assert_eq!(reply_message("hi".into(), &[]), json!({"role": "assistant", "content": "hi"}));
    }
}
