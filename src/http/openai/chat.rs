//! `POST /v1/chat/completions`.

use super::stream::{Chunks, Kind};
use super::tools::{self, MessageTools, ToolRequest, Unknown};
use super::Sampling;
use crate::assistant::{Conversation, Turn, Who};
use crate::engine::ChatMessage;
use crate::error::ApiError;
use crate::http::peer::unless_gone;
use crate::http::sse::sse_response;
use crate::http::{json, AppState, Caller};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    messages: Vec<RequestMessage>,
    /// Hearth extension: answer from the caller's documents, with `citations`.
    #[serde(default)]
    knowledge: bool,
    #[serde(flatten)]
    sampling: Sampling,
    /// `tools`, `tool_choice`, `parallel_tool_calls`, `response_format`.
    #[serde(flatten)]
    tools: ToolRequest,
    /// Whatever no field above took: refused unless neutral (last, so it gets only that).
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Debug, Deserialize)]
struct RequestMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
    /// `tool_calls`, `tool_call_id`, `name`, and the fields no one took.
    #[serde(flatten)]
    tools: MessageTools,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// Converts OpenAI messages to Hearth's (the assistant puts the configured system prompt
/// first when the client sent none).
fn chat_messages(messages: Vec<RequestMessage>) -> Result<Vec<ChatMessage>, ApiError> {
    let mut out = Vec::with_capacity(messages.len() + 1);
    for (i, m) in messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            "tool" => "tool",
            other => {
                return Err(ApiError::invalid(format!(
                    "messages[{i}].role '{other}' is not supported (use system, developer, user, assistant or tool)"
                )))
            }
        };
        let content = match m.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for (j, part) in parts.into_iter().enumerate() {
                    tools::reject_unknown(&part.unknown, &format!("messages[{i}].content[{j}]"), &[], &[])?;
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        (kind, _) => {
                            return Err(ApiError::invalid(format!(
                                "messages[{i}] has a '{kind}' content part; only text is supported"
                            )))
                        }
                    }
                }
                text
            }
        };
        let message = tools::message(i, role, content, m.tools, &out)?;
        out.push(message);
    }
    Ok(out)
}

/// The request's fields, for the OpenAPI document (`ChatCompletionRequest` reads them).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"model": "default", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}))]
struct ChatCompletionBody {
    messages: Vec<ChatMessageBody>,
    /// Hearth extension: answer from the caller's documents, with `citations`.
    knowledge: Option<bool>,
    model: Option<String>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    stream: Option<bool>,
    /// `{"include_usage": bool}`.
    stream_options: Option<serde_json::Map<String, serde_json::Value>>,
    /// A text or texts.
    stop: Option<Vec<String>>,
    seed: Option<u32>,
    /// 1 only.
    #[schema(minimum = 1, maximum = 1)]
    n: Option<u32>,
    tools: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    /// `none`, `auto`, `required` or `{"type": "function", "function": {"name"}}`.
    tool_choice: Option<serde_json::Value>,
    parallel_tool_calls: Option<bool>,
    /// `{"type": "text" | "json_object" | "json_schema", ...}`.
    response_format: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum RoleBody {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ChatMessageBody {
    role: RoleBody,
    /// Text, or content parts (`{"type": "text", "text"}`).
    content: Option<String>,
    tool_calls: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    tool_call_id: Option<String>,
    name: Option<String>,
}

/// A stateless turn: the conversation is the request's, and nothing is stored.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai",
    description = "OpenAI's chat completions: `model`, `messages`, `stream`, `tools`, `tool_choice`, `response_format`, `max_tokens`, `temperature`, `top_p`, `seed`, `stop`... Unknown fields are 400 `unsupported_parameter`.",
    request_body = ChatCompletionBody,
    responses((status = 200, description = "A `chat.completion`, or with `stream` its chunks as server-sent events ending in `data: [DONE]`", content((crate::http::openapi::Object = "application/json"), (crate::http::openapi::SseEvent = "text/event-stream"))),
        (status = 400, description = "`invalid_request`, `unsupported_parameter`, `context_length_exceeded` or `tools_unsupported`"),
        (status = 404, description = "`model_not_found` / `unknown_model`"),
        (status = 429, description = "`overloaded` or `rate_limited`: `Retry-After` says when to retry"),
        (status = 503, description = "`model_not_ready`, `insufficient_memory`, `shedding_load` or `model_loads_paused`"),
        (status = 504, description = "`timeout`")))]
pub async fn chat_completions(
    http: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<ChatCompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    super::reject_unknown(&request.unknown, true)?;
    let constraint = request.tools.constraint()?;
    let options = request.sampling.options()?;
    let conversation = Conversation::Ephemeral { messages: chat_messages(request.messages)? };
    let turn = Turn {
        sampling: options.sampling,
        model: options.model,
        knowledge: Some(request.knowledge),
        stream: options.stream,
        constraint,
        ..Turn::new(Who::user(caller.user.id), conversation)
    };
    let prepared = state.assistant.prepare(turn).await?;
    let citations = prepared.knowledge().then(|| json!(prepared.citations()));
    let model = prepared.model().to_string();
    let running = unless_gone(&http, prepared.run()).await??;

    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = crate::store::now();
    if options.stream {
        let chunks =
            Chunks { kind: Kind::Chat, id, created, model, include_usage: options.include_usage, citations };
        return Ok(sse_response(chunks.stream(running)));
    }
    let outcome = unless_gone(&http, running.finish()).await??;
    let finished = outcome.finished;
    let mut body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": tools::reply_message(outcome.text, &finished.tool_calls),
            "finish_reason": finished.finish_reason.as_str(),
        }],
        "usage": finished.usage,
        "timings": finished.timings,
    });
    if finished.dropped_messages > 0 {
        body["dropped_messages"] = finished.dropped_messages.into();
    }
    if let Some(citations) = citations {
        body["citations"] = citations;
    }
    Ok(json(&body))
}
