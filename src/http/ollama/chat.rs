//! Ollama's `POST /api/chat` (the `messages` form): a stateless assistant turn.

use super::stream::{Frames, Kind};
use super::{format_constraint, model_id, refuse_thinking, OllamaError, Options};
use crate::assistant::{Conversation, Turn, Who};
use crate::engine::{ChatMessage, Constraint, ToolCall};
use crate::error::ApiError;
use crate::http::openai::tools::{reject_unknown, unsupported, ToolRequest, Unknown};
use crate::http::{AppState, Caller};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Deserialize)]
pub(super) struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    options: Option<Options>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    think: Option<Value>,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}

/// Fields that change nothing here, accepted as they are: `keep_alive` (how long Ollama
/// keeps the model loaded: Hearth keeps the configured model loaded for good and unloads
/// others after `model.idle_unload_secs`, for every client alike; Home Assistant sends it
/// with every request).
pub(super) const LABELS: &[&str] = &["keep_alive"];

/// Fields accepted at the one value that asks for nothing.
pub(super) fn neutral() -> Vec<(&'static str, Value)> {
    vec![("logprobs", json!(false)), ("top_logprobs", json!(0))]
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    images: Option<Vec<Value>>,
    #[serde(default)]
    tool_calls: Option<Vec<CallDef>>,
    #[serde(default)]
    tool_name: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(flatten)]
    other: Unknown,
}

#[derive(Debug, Deserialize)]
struct CallDef {
    function: CallFunction,
    #[serde(flatten)]
    other: Unknown,
}

#[derive(Debug, Deserialize)]
struct CallFunction {
    name: String,
    /// An object (Ollama), or one as JSON text.
    #[serde(default)]
    arguments: Value,
    /// The call's place among the reply's calls (newer Ollama replies carry it).
    #[serde(default)]
    #[allow(dead_code)]
    index: Option<u32>,
    #[serde(flatten)]
    other: Unknown,
}

/// Ollama's messages in Hearth's terms. Ollama's calls have no ids: each is given one,
/// and a tool's result answers the earliest unanswered call of its `tool_name` (or the
/// earliest unanswered call, without a name).
fn chat_messages(messages: Vec<Message>) -> Result<Vec<ChatMessage>, OllamaError> {
    let mut out = Vec::with_capacity(messages.len() + 1);
    let mut unanswered: VecDeque<ToolCall> = VecDeque::new();
    for (i, m) in messages.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        reject_unknown(&m.other, &at, &[], &[])?;
        if m.images.as_ref().is_some_and(|images| !images.is_empty()) {
            return Err(
                unsupported(format!("{at}.images is not supported: Hearth's models read text only")).into()
            );
        }
        if m.thinking.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(unsupported(format!(
                "{at}.thinking is not supported: Hearth's models do not take back earlier thinking"
            ))
            .into());
        }
        let content = m.content.unwrap_or_default();
        let calls = m.tool_calls.unwrap_or_default();
        if !calls.is_empty() && m.role != "assistant" {
            return Err(ApiError::invalid(format!("{at}.tool_calls is only for assistant messages")).into());
        }
        if m.tool_name.is_some() && m.role != "tool" {
            return Err(ApiError::invalid(format!("{at}.tool_name is only for tool messages")).into());
        }
        let message = match m.role.as_str() {
            "system" | "user" => ChatMessage::new(&m.role, content),
            "assistant" if calls.is_empty() => ChatMessage::new("assistant", content),
            "assistant" => {
                let mut parsed = Vec::with_capacity(calls.len());
                for (j, call) in calls.into_iter().enumerate() {
                    let at = format!("{at}.tool_calls[{j}]");
                    reject_unknown(&call.other, &at, &[], &[])?;
                    reject_unknown(&call.function.other, &format!("{at}.function"), &[], &[])?;
                    let arguments = match call.function.arguments {
                        Value::Null => json!({}),
                        object @ Value::Object(_) => object,
                        Value::String(text) => serde_json::from_str(&text).map_err(|e| {
                            ApiError::invalid(format!("{at}.function.arguments is not valid JSON ({e})"))
                        })?,
                        _ => {
                            return Err(ApiError::invalid(format!(
                                "{at}.function.arguments must be a JSON object"
                            ))
                            .into())
                        }
                    };
                    parsed.push(ToolCall::new(call.function.name, arguments));
                }
                unanswered = parsed.iter().cloned().collect();
                ChatMessage::tool_calls(content, parsed)
            }
            "tool" => {
                let position = match &m.tool_name {
                    Some(name) => unanswered.iter().position(|c| &c.name == name),
                    None => (!unanswered.is_empty()).then_some(0),
                };
                let call = position.and_then(|p| unanswered.remove(p));
                let id = call.as_ref().map_or_else(|| format!("call_{i}"), |c| c.id.clone());
                let name = m.tool_name.or_else(|| call.map(|c| c.name));
                ChatMessage::tool_result(id, name, content)
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "{at}.role '{other}' is not supported (use system, user, assistant or tool)"
                ))
                .into())
            }
        };
        out.push(message);
    }
    Ok(out)
}

/// `tools` and `format` as what the reply may be.
fn constraint(tools: Option<Vec<Value>>, format: Option<Value>) -> Result<Constraint, OllamaError> {
    let format = format_constraint(format)?;
    let tools: ToolRequest = serde_json::from_value(json!({ "tools": tools.unwrap_or_default() }))
        .map_err(|e| ApiError::invalid(format!("tools: {e}")))?;
    match (tools.constraint()?, format) {
        (Constraint::None, format) => Ok(format.unwrap_or_default()),
        (_, Some(_)) => {
            Err(unsupported("format together with tools is not supported; send one of them").into())
        }
        (tools, None) => Ok(tools),
    }
}

pub(super) async fn chat(
    http: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    request: ChatRequest,
) -> Result<HttpResponse, OllamaError> {
    let started = Instant::now();
    reject_unknown(&request.unknown, "", &neutral(), LABELS)?;
    refuse_thinking(&request.think)?;
    let constraint = constraint(request.tools, request.format)?;
    let sampling = request.options.unwrap_or_default().sampling()?;
    let stream = request.stream.unwrap_or(true);
    let conversation = Conversation::Ephemeral { messages: chat_messages(request.messages)? };
    let turn = Turn {
        sampling,
        model: model_id(request.model.as_deref()),
        knowledge: Some(false),
        stream,
        constraint,
        ..Turn::new(Who::user(caller.user.id), conversation)
    };
    Frames::answer(&http, &state, turn, Kind::Chat, started).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(v: Value) -> Result<Vec<ChatMessage>, OllamaError> {
        chat_messages(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn calls_get_ids_and_results_answer_them_by_name() {
        let got = messages(json!([
            {"role": "user", "content": "Weather in Paris and time?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_time", "arguments": {}}}]},
            {"role": "tool", "content": "12:00", "tool_name": "get_time"},
            {"role": "tool", "content": "sunny"},
        ]))
        .unwrap();
        let calls = &got[1].tool_calls;
        assert_eq!((calls[0].name.as_str(), &calls[0].arguments), ("get_weather", &json!({"city": "Paris"})));
        assert!(calls[0].id.starts_with("call_") && calls[0].id != calls[1].id);
        assert_eq!(got[2].tool_call_id.as_ref(), Some(&calls[1].id));
        assert_eq!(
            (got[3].tool_call_id.as_ref(), got[3].name.as_deref()),
            (Some(&calls[0].id), Some("get_weather"))
        );
    }

    #[test]
    fn what_hearth_cannot_take_is_refused_by_name() {
        for (body, mentions) in [
            (json!([{"role": "user", "content": "x", "images": ["aGk="]}]), "messages[0].images"),
            (json!([{"role": "user", "content": "x", "mood": "ok"}]), "messages[0].mood"),
            (json!([{"role": "narrator", "content": "x"}]), "messages[0].role"),
            (json!([{"role": "user", "content": "x", "tool_name": "f"}]), "messages[0].tool_name"),
            (
                json!([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": [1]}}]}]),
                "messages[0].tool_calls[0].function.arguments",
            ),
        ] {
            let OllamaError(e) = messages(body.clone()).unwrap_err();
            assert!(e.message.contains(mentions), "{body}: {e}");
        }
        // What clients echo back as null or empty is nothing.
        let echoed =
            json!([{"role": "assistant", "content": "hi", "images": null, "thinking": "", "tool_calls": []}]);
        assert_eq!(messages(echoed).unwrap(), vec![ChatMessage::new("assistant", "hi")]);
    }

    #[test]
    fn tools_and_format_make_the_constraint() {
        let weather = json!({"type": "function", "function": {"name": "get_weather",
                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}});
        assert!(matches!(constraint(Some(vec![weather.clone()]), None).unwrap(), Constraint::Tools(_)));
        assert_eq!(constraint(None, Some(json!("json"))).unwrap(), Constraint::JsonObject);
        assert_eq!(constraint(Some(vec![]), None).unwrap(), Constraint::None);
        let OllamaError(e) = constraint(Some(vec![weather]), Some(json!("json"))).unwrap_err();
        assert!(e.message.contains("format"), "{e}");
        let OllamaError(e) =
            constraint(Some(vec![json!({"type": "function", "function": {"name": "f", "x": 1}})]), None)
                .unwrap_err();
        assert!(e.message.contains("tools[0].function.x"), "{e}");
    }
}
