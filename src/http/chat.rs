//! `POST /api/chat`: Hearth's own chat API, with conversations kept in the store.
//!
//! A turn is persisted (user message and reply in one transaction) before the reply
//! is acknowledged: the JSON answer, or the final `done` event of a stream, is sent
//! only after COMMIT. A client that disconnects mid-reply stops generation and
//! nothing is stored.

use super::peer::unless_gone;
use super::reply::{sse_event, sse_response, Complete, Reply};
use super::{json, AppState, Caller};
use crate::engine::{ChatMessage, GenerateParams, Owner, Prompt, Timings, Usage};
use crate::error::{ApiError, ErrorCode};
use crate::knowledge::{Citation, Retrieved};
use crate::store::{NewTurn, StoreError};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
}

#[derive(Debug, Serialize)]
pub struct ChatResponse {
    pub conversation_id: String,
    pub message_id: i64,
    pub reply: String,
    pub model: String,
    pub finish_reason: &'static str,
    pub usage: Usage,
    pub timings: Timings,
    /// Oldest messages of the conversation left out of the prompt to fit the context
    /// window (they stay in the history).
    pub dropped_messages: u32,
    /// Whether the caller's documents were consulted.
    pub knowledge: bool,
    /// The document excerpts given to the model, numbered as the reply cites them.
    pub citations: Vec<Citation>,
}

/// Resolves per-request sampling options against the configured defaults.
pub(crate) fn params(
    state: &AppState,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<u32>,
    seed: Option<u32>,
    stop: Vec<String>,
) -> Result<GenerateParams, ApiError> {
    let defaults = &state.settings.model;
    let temperature = temperature.unwrap_or(defaults.temperature);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid("temperature must be between 0 and 2"));
    }
    let top_p = top_p.unwrap_or(defaults.top_p);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid("top_p must be greater than 0 and at most 1"));
    }
    if max_tokens == Some(0) {
        return Err(ApiError::invalid("max_tokens must be at least 1"));
    }
    if stop.len() > 4 || stop.iter().any(|s| s.len() > 256) {
        return Err(ApiError::invalid("stop takes at most 4 strings of at most 256 bytes"));
    }
    Ok(GenerateParams {
        temperature,
        top_p,
        top_k: defaults.top_k,
        seed,
        max_tokens: max_tokens.unwrap_or(defaults.max_tokens).min(defaults.max_tokens),
        stop,
        stream: true,
        constraint: Default::default(),
    })
}

pub async fn chat(
    http: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<ChatRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    if request.message.trim().is_empty() {
        return Err(ApiError::invalid("message must not be empty"));
    }
    let user_id = caller.user.id;
    let (history, remembered) = match request.conversation_id.clone() {
        None => (Vec::new(), None),
        Some(id) => state
            .store
            .run(move |store| {
                let remembered = store.conversation_knowledge(user_id, &id)?;
                Ok((store.messages(user_id, &id)?, remembered))
            })
            .await
            .map_err(conversation_error)?,
    };
    let mut params = params(&state, request.temperature, None, request.max_tokens, request.seed, Vec::new())?;
    params.stream = request.stream;
    let (engine, info) = super::ready_engine(&state, request.model.as_deref()).await?;
    let knowledge = request.knowledge.or(remembered).unwrap_or(state.settings.knowledge.chat_default);
    let retrieved = if knowledge { retrieve(&state, user_id, &request.message).await } else { None };
    let mut messages = vec![ChatMessage::new("system", state.settings.model.system_prompt.clone())];
    messages.extend(history.into_iter().map(|m| ChatMessage::new(&m.role, m.content)));
    let prompt = retrieved.as_ref().map_or_else(|| request.message.clone(), |r| r.prompt.clone());
    messages.push(ChatMessage::new("user", prompt));
    let citations = retrieved.map(|r| r.citations).unwrap_or_default();
    let model = info.id;
    let reply = unless_gone(
        &http,
        Reply::start(engine.submit(Owner::user(user_id), Prompt::Chat(messages), params)?),
    )
    .await??;
    let turn = Turn { state: state.clone(), user_id, request, model, knowledge, citations };
    if turn.request.stream {
        Ok(sse_response(stream(turn, reply)))
    } else {
        let complete = unless_gone(&http, reply.collect()).await??;
        Ok(json(&turn.persist(complete).await?))
    }
}

/// Retrieval from the caller's documents for a chat turn. A failure is logged and the
/// turn goes on without documents rather than failing the chat.
pub(crate) async fn retrieve(state: &AppState, user_id: i64, question: &str) -> Option<Retrieved> {
    match state.knowledge.retrieve(user_id, question).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "retrieval failed; answering without documents");
            None
        }
    }
}

pub(crate) fn conversation_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::new(ErrorCode::ConversationNotFound, "no such conversation"),
        other => other.into(),
    }
}

/// What is needed to store a turn once the reply is complete.
struct Turn {
    state: web::Data<AppState>,
    user_id: i64,
    request: ChatRequest,
    model: String,
    knowledge: bool,
    citations: Vec<Citation>,
}

impl Turn {
    async fn persist(&self, complete: Complete) -> Result<ChatResponse, ApiError> {
        let new_turn = NewTurn {
            conversation_id: self.request.conversation_id.clone(),
            user_id: self.user_id,
            user_message: self.request.message.clone(),
            reply: complete.text.clone(),
            model: self.model.clone(),
            prompt_tokens: complete.finished.usage.prompt_tokens,
            completion_tokens: complete.finished.usage.completion_tokens,
            finish_reason: complete.finished.finish_reason.as_str().to_string(),
            knowledge: self.request.knowledge,
            citations: (!self.citations.is_empty())
                .then(|| serde_json::to_string(&self.citations).unwrap_or_default()),
        };
        let ids = self
            .state
            .store
            .run(move |store| store.append_turn(&new_turn))
            .await
            .map_err(conversation_error)?;
        Ok(ChatResponse {
            conversation_id: ids.conversation_id,
            message_id: ids.reply_id,
            reply: complete.text,
            model: self.model.clone(),
            finish_reason: complete.finished.finish_reason.as_str(),
            usage: complete.finished.usage,
            timings: complete.finished.timings,
            dropped_messages: complete.finished.dropped_messages,
            knowledge: self.knowledge,
            citations: self.citations.clone(),
        })
    }
}

/// SSE: `token` events with `{"text"}`, then `done` with the stored [`ChatResponse`]
/// (sent after COMMIT), or `error` with the usual error body.
fn stream(
    turn: Turn,
    reply: Reply,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, actix_web::Error>> {
    use crate::engine::Event;
    struct State {
        turn: Turn,
        reply: Reply,
        text: String,
        finished: bool,
    }
    let initial = State { turn, reply, text: String::new(), finished: false };
    futures_util::stream::unfold(initial, |mut s| async move {
        if s.finished {
            return None;
        }
        let event = match s.reply.next().await {
            Some(Event::Token(t)) => {
                let data = serde_json::json!({ "text": t }).to_string();
                s.text.push_str(&t);
                sse_event(Some("token"), &data)
            }
            Some(Event::Done(finished)) => {
                s.finished = true;
                let complete = Complete { text: std::mem::take(&mut s.text), finished };
                match s.turn.persist(complete).await {
                    Ok(response) => {
                        sse_event(Some("done"), &serde_json::to_string(&response).unwrap_or_default())
                    }
                    Err(e) => error_event(&e),
                }
            }
            Some(Event::Error(e)) => {
                s.finished = true;
                error_event(&e.into())
            }
            None => {
                s.finished = true;
                error_event(&ApiError::new(ErrorCode::EngineError, "the engine stopped before finishing"))
            }
        };
        Some((Ok(event), s))
    })
}

pub(crate) fn error_event(e: &ApiError) -> bytes::Bytes {
    sse_event(Some("error"), &serde_json::to_string(&e.body()).unwrap_or_default())
}
