//! `POST /api/chat`: Hearth's own chat API, with conversations kept in the store. The
//! turn is [`crate::assistant`]'s; this is its HTTP shape.
//!
//! The JSON answer, or the final `done` event of a stream, is made of the stored turn
//! and so sent only after COMMIT. A client that disconnects mid-reply stops generation
//! and nothing is stored.

use super::peer::unless_gone;
use super::sse::{sse_event, sse_response};
use super::{json, AppState, Caller};
use crate::assistant::{Conversation, Event, Outcome, Running, Sampling, Turn, Who};
use crate::engine::{Timings, Usage};
use crate::error::ApiError;
use crate::knowledge::Citation;
use crate::skills::ToolRun;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"message": "Say hello.", "max_tokens": 8}))]
pub struct ChatRequest {
    pub message: String,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub seed: Option<u32>,
    /// An installed model to answer with; the configured model when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Answer from the caller's documents (with citations). When absent, the
    /// conversation's last choice, else `knowledge.chat_default`. Remembered for the
    /// conversation.
    #[serde(default)]
    pub knowledge: Option<bool>,
    /// Let the assistant use its skills (`[skills] enabled`: the clock, the documents...)
    /// as tools; default true. False: a plain reply.
    #[serde(default)]
    pub skills: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatResponse {
    pub conversation_id: String,
    pub message_id: i64,
    pub reply: String,
    pub model: String,
    #[schema(value_type = String)]
    pub finish_reason: &'static str,
    pub usage: Usage,
    pub timings: Timings,
    /// Oldest messages of the conversation left out of the prompt to fit the context
    /// window (they stay in the history).
    pub dropped_messages: u32,
    /// Whether the caller's documents were consulted.
    pub knowledge: bool,
    /// The document excerpts given to the model, numbered as the reply cites them.
    #[schema(value_type = Vec<Object>)]
    pub citations: Vec<Citation>,
    /// The skills the reply called, in order, with what they answered.
    #[schema(value_type = Vec<Object>)]
    pub tool_calls: Vec<ToolRun>,
}

impl ChatResponse {
    fn of(outcome: Outcome) -> Result<ChatResponse, ApiError> {
        let ids = outcome.stored.ok_or_else(|| ApiError::internal("the turn was not stored"))?;
        Ok(ChatResponse {
            conversation_id: ids.conversation_id,
            message_id: ids.reply_id,
            reply: outcome.text,
            model: outcome.model,
            finish_reason: outcome.finished.finish_reason.as_str(),
            usage: outcome.finished.usage,
            timings: outcome.finished.timings,
            dropped_messages: outcome.finished.dropped_messages,
            knowledge: outcome.knowledge,
            citations: outcome.citations,
            tool_calls: outcome.tools,
        })
    }
}

/// Answers a request already read from the body (`POST /api/chat` is shared with the
/// Ollama API, which tells the two apart by the body: `super::ollama::api_chat`).
pub async fn answer(
    http: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    request: ChatRequest,
) -> Result<HttpResponse, ApiError> {
    let conversation = Conversation::Stored { id: request.conversation_id, message: request.message };
    let turn = Turn {
        sampling: Sampling {
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            seed: request.seed,
            ..Sampling::default()
        },
        model: request.model,
        knowledge: request.knowledge,
        stream: request.stream,
        skills: request.skills.unwrap_or(true),
        ..Turn::new(Who::user(caller.user.id), conversation)
    };
    let prepared = state.assistant.prepare(turn).await?;
    let running = unless_gone(&http, prepared.run()).await??;
    if request.stream {
        return Ok(sse_response(stream(running)));
    }
    let complete = unless_gone(&http, running.complete()).await??;
    Ok(json(&ChatResponse::of(complete.persist().await?)?))
}

/// SSE: `token` events with `{"text"}` (and, when the assistant uses a skill,
/// `tool_call` with `{"id", "name", "arguments"}` then `tool_result` with the stored
/// call: `{"id", "name", "arguments", "result", "ok", "at", "ms"}`), then `done` with the
/// stored [`ChatResponse`] (sent after COMMIT), or `error` with the usual error body.
fn stream(running: Running) -> impl futures_util::Stream<Item = Result<bytes::Bytes, actix_web::Error>> {
    futures_util::stream::unfold(Some(running), |running| async move {
        let mut running = running?;
        let event = match running.next().await? {
            Event::Token(text) => sse_event(Some("token"), &serde_json::json!({ "text": text }).to_string()),
            Event::ToolCall(call) => {
                let call =
                    serde_json::json!({ "id": call.id, "name": call.name, "arguments": call.arguments });
                sse_event(Some("tool_call"), &call.to_string())
            }
            Event::ToolResult(run) => {
                sse_event(Some("tool_result"), &serde_json::to_string(&run).unwrap_or_default())
            }
            Event::Complete(complete) => {
                let last = match complete.persist().await.map_err(ApiError::from).and_then(ChatResponse::of) {
                    Ok(done) => sse_event(Some("done"), &serde_json::to_string(&done).unwrap_or_default()),
                    Err(e) => error_event(&e),
                };
                return Some((Ok(last), None));
            }
            Event::Error(e) => return Some((Ok(error_event(&e.into())), None)),
        };
        Some((Ok(event), Some(running)))
    })
}

fn error_event(e: &ApiError) -> bytes::Bytes {
    sse_event(Some("error"), &serde_json::to_string(&e.body()).unwrap_or_default())
}
