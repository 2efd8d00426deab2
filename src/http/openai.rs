//! OpenAI-compatible `GET /v1/models` and `POST /v1/chat/completions`, so the official
//! `openai` clients, Open WebUI and LangChain work unchanged. These calls are
//! stateless: the client sends the whole conversation each time.

use super::chat::params;
use super::reply::{sse_event, sse_response, Reply};
use super::{json, AppState, Caller};
use crate::engine::{ChatMessage, Event, ModelInfo, Prompt};
use crate::error::{ApiError, ErrorCode};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// Names accepted for the loaded model besides its own id.
const ALIASES: &[&str] = &["default", "hearth"];

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<RequestMessage>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    seed: Option<u32>,
    #[serde(default)]
    n: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct RequestMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
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
}

fn model_card(info: &ModelInfo) -> Value {
    json!({ "id": info.id, "object": "model", "created": info.loaded_at, "owned_by": "hearth" })
}

pub async fn models(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    let data: Vec<Value> = state.engine.model().iter().map(model_card).collect();
    json(&json!({ "object": "list", "data": data }))
}

/// Converts OpenAI messages, putting the configured system prompt first when the
/// client sent none.
fn chat_messages(state: &AppState, messages: Vec<RequestMessage>) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid("messages must contain at least one message"));
    }
    let mut out = Vec::with_capacity(messages.len() + 1);
    for (i, m) in messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            other => {
                return Err(ApiError::invalid(format!(
                    "messages[{i}].role '{other}' is not supported (use system, developer, user or assistant)"
                )))
            }
        };
        let content = match m.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for part in parts {
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
        out.push(ChatMessage::new(role, content));
    }
    if out[0].role != "system" {
        out.insert(0, ChatMessage::new("system", state.settings.model.system_prompt.clone()));
    }
    Ok(out)
}

pub async fn chat_completions(
    state: web::Data<AppState>,
    _caller: Caller,
    body: web::Json<CompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let info = state
        .engine
        .model()
        .ok_or_else(|| ApiError::from(crate::engine::EngineError::NotReady(not_ready_reason(&state))))?;
    if let Some(name) = &request.model {
        if name != &info.id && !ALIASES.contains(&name.as_str()) {
            return Err(ApiError::new(
                ErrorCode::ModelNotFound,
                format!("model '{name}' is not loaded; available: '{}'", info.id),
            ));
        }
    }
    if request.n.unwrap_or(1) != 1 {
        return Err(ApiError::invalid("only n = 1 is supported"));
    }
    let stop = match request.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    let max_tokens = request.max_completion_tokens.or(request.max_tokens);
    let params = params(&state, request.temperature, request.top_p, max_tokens, request.seed, stop)?;
    let messages = chat_messages(&state, request.messages)?;
    let reply = Reply::start(state.engine.submit(Prompt::Chat(messages), params)?).await?;

    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = crate::store::now();
    if request.stream {
        let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
        let chunks = Chunks { id, created, model: info.id, include_usage };
        return Ok(sse_response(chunks.stream(reply)));
    }
    let complete = reply.collect().await?;
    let finished = complete.finished;
    let mut body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": info.id,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": complete.text },
            "finish_reason": finished.finish_reason.as_str(),
        }],
        "usage": finished.usage,
        "timings": finished.timings,
    });
    if finished.dropped_messages > 0 {
        body["dropped_messages"] = finished.dropped_messages.into();
    }
    Ok(json(&body))
}

fn not_ready_reason(state: &AppState) -> String {
    match state.engine.state() {
        crate::engine::ModelState::Failed { error, .. } => error,
        _ => "the model is still loading".into(),
    }
}

/// Builds `chat.completion.chunk` events.
struct Chunks {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
}

impl Chunks {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> bytes::Bytes {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }],
        });
        sse_event(None, &chunk.to_string())
    }

    fn stream(
        self,
        reply: Reply,
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, actix_web::Error>> {
        let opening = self.chunk(json!({ "role": "assistant", "content": "" }), None);
        let state = (self, reply, Some(opening), false);
        futures_util::stream::unfold(state, |(chunks, mut reply, mut pending, done)| async move {
            if let Some(bytes) = pending.take() {
                return Some((Ok(bytes), (chunks, reply, None, done)));
            }
            if done {
                return None;
            }
            let mut out = Vec::new();
            match reply.next().await {
                Some(Event::Token(text)) => {
                    out.extend_from_slice(&chunks.chunk(json!({ "content": text }), None));
                    return Some((Ok(bytes::Bytes::from(out)), (chunks, reply, None, false)));
                }
                Some(Event::Done(finished)) => {
                    let reason = finished.finish_reason.as_str();
                    out.extend_from_slice(&chunks.chunk(json!({}), Some(reason)));
                    if chunks.include_usage {
                        let usage_chunk = json!({
                            "id": chunks.id,
                            "object": "chat.completion.chunk",
                            "created": chunks.created,
                            "model": chunks.model,
                            "choices": [],
                            "usage": finished.usage,
                            "timings": finished.timings,
                        });
                        out.extend_from_slice(&sse_event(None, &usage_chunk.to_string()));
                    }
                }
                Some(Event::Error(e)) => out.extend_from_slice(&error_event_plain(&e.into())),
                None => out.extend_from_slice(&error_event_plain(&ApiError::new(
                    ErrorCode::EngineError,
                    "the engine stopped before finishing",
                ))),
            }
            out.extend_from_slice(&sse_event(None, "[DONE]"));
            Some((Ok(bytes::Bytes::from(out)), (chunks, reply, None, true)))
        })
    }
}

/// OpenAI streams report errors as a plain `data:` line carrying the error body.
fn error_event_plain(e: &ApiError) -> bytes::Bytes {
    sse_event(None, &serde_json::to_string(&e.body()).unwrap_or_default())
}
