//! The engine's public vocabulary: prompts, sampling settings, streamed events,
//! errors and model state.

use super::tools::{Constraint, ToolCall, ToolFormat};
use serde::Serialize;
use std::path::PathBuf;

/// One message of a chat, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, or `tool` (a tool's result).
    pub role: String,
    pub content: String,
    /// The calls an assistant message made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a `tool` message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The function whose result a `tool` message carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// An assistant message that calls tools (with the text it wrote before, if any).
    pub fn tool_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        Self { tool_calls: calls, ..Self::new("assistant", content) }
    }

    /// A tool's result for the call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, name: Option<String>, content: impl Into<String>) -> Self {
        Self { tool_call_id: Some(call_id.into()), name, ..Self::new("tool", content) }
    }

    /// Whether only the model's own chat template can show this message (llama.cpp's
    /// built-in renderer knows neither tool calls nor tool results).
    pub fn needs_template(&self) -> bool {
        self.role == "tool" || !self.tool_calls.is_empty()
    }
}

/// Whose request this is. Cached keys and values are reused only between requests of the
/// same owner: a prefix cached for one user would otherwise speed up another's matching
/// prompt, and `timings.cache_n` would tell them how many tokens of it they guessed.
///
/// One number (not an enum of user id and the rest: 16 bytes), as it travels in every
/// queued request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner(i64);

impl Owner {
    /// Someone at the box itself (`hearth chat` without `--url`).
    pub const CONSOLE: Owner = Owner(i64::MIN);
    /// Voice satellites served over Wyoming, which speak for no user.
    pub const SATELLITES: Owner = Owner(i64::MIN + 1);

    /// A Hearth user, by id: a row id, positive, so never one of the owners above.
    pub const fn user(id: i64) -> Owner {
        Owner(id)
    }

    /// The user's id, for owners that are users.
    pub fn user_id(self) -> Option<i64> {
        (self.0 > 0).then_some(self.0)
    }

    /// The owner as one number, for the disk cache's file header.
    pub(crate) fn key(self) -> i64 {
        self.0
    }

    pub(crate) fn from_key(key: i64) -> Owner {
        Owner(key)
    }
}

/// Sampling and length settings for one request, already resolved against defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: u32,
    pub seed: Option<u32>,
    pub max_tokens: u32,
    pub stop: Vec<String>,
    /// Send the text as it is generated (`true`), or in one piece when the reply is done.
    /// A caller that only wants the whole reply says `false`: each piece sent wakes the
    /// receiving task, and on a box with as many compute threads as cores that wake-up
    /// preempts one of them in the middle of the next step, every step.
    pub stream: bool,
    /// What the reply may be: free text, calls of offered tools, or JSON.
    pub constraint: Constraint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn or a stop string was reached.
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
    /// The model ended its turn with tool calls ([`Finished::tool_calls`]).
    ToolCalls,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default, utoipa::ToSchema)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    /// Both together: the tokens of several rounds of one turn.
    pub fn plus(&self, other: &Usage) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens + other.prompt_tokens,
            completion_tokens: self.completion_tokens + other.completion_tokens,
            total_tokens: self.total_tokens + other.total_tokens,
        }
    }
}

/// Where the time went, in llama-server's field names (benchmarks compare the two).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default, utoipa::ToSchema)]
pub struct Timings {
    /// Prompt tokens evaluated for this request.
    pub prompt_n: u32,
    pub prompt_ms: f64,
    pub prompt_per_second: f64,
    /// Tokens generated.
    pub predicted_n: u32,
    pub predicted_ms: f64,
    pub predicted_per_second: f64,
    /// Prompt tokens reused from the cache instead of evaluated.
    pub cache_n: u32,
}

impl Timings {
    pub fn new(prompt_n: u32, prompt_ms: f64, predicted_n: u32, predicted_ms: f64, cache_n: u32) -> Self {
        let rate = |n: u32, ms: f64| if ms > 0.0 { n as f64 * 1000.0 / ms } else { 0.0 };
        Timings {
            prompt_n,
            prompt_ms,
            prompt_per_second: rate(prompt_n, prompt_ms),
            predicted_n,
            predicted_ms,
            predicted_per_second: rate(predicted_n, predicted_ms),
            cache_n,
        }
    }
}

/// How a reply ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub timings: Timings,
    /// Oldest messages left out so the conversation fits the context window.
    pub dropped_messages: u32,
    /// The tools the model called, in order (the reply's text went out as tokens, without
    /// them). Empty unless the request offered tools.
    pub tool_calls: Vec<ToolCall>,
}

/// What the engine sends back for a request, in order: tokens, then `Done` or `Error`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Token(String),
    Done(Finished),
    Error(EngineError),
}

/// What to generate from.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// A chat, rendered with the model's chat template. Old turns may be dropped to fit.
    Chat(Vec<ChatMessage>),
    /// Raw text, continued as is (`/v1/completions`).
    Text(String),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("the model is not ready: {0}")]
    NotReady(String),
    #[error("the engine is busy ({0} requests waiting); retry shortly")]
    Overloaded(usize),
    /// The owner's share (`[limits]`) is used up.
    #[error("{0}")]
    Limited(crate::rate::Refusal),
    #[error(
        "the prompt is {prompt_tokens} tokens but the context window is {context_size} tokens; \
         shorten the message or start a new conversation"
    )]
    ContextLengthExceeded { prompt_tokens: usize, context_size: usize },
    #[error("{0}")]
    InvalidRequest(String),
    /// The model cannot take tools: its chat template shows none, or writes calls in a format
    /// Hearth does not read. The text says which.
    #[error("{0}")]
    ToolsUnsupported(String),
    #[error("the request did not finish within {0} seconds")]
    Timeout(u64),
    #[error("{0}")]
    ModelNotFound(String),
    #[error(
        "not enough memory to load this model: it needs about {} MiB, {} MiB can be freed",
        needed >> 20,
        available >> 20
    )]
    InsufficientMemory { needed: u64, available: u64 },
    #[error(
        "no embedding model is configured: set model.embedding_model (e.g. all-minilm-l6-v2, \
         fetched with `hearth models pull all-minilm-l6-v2`) or name one in the request"
    )]
    NoEmbeddingModel,
    /// The governor sheds new requests: the box is short of memory, hot or throttled.
    #[error("the box is under pressure (memory, heat or throttling) and sheds new requests; retry in {retry_after_secs} seconds")]
    Shedding { retry_after_secs: u32 },
    /// The governor refuses new model loads for now.
    #[error(
        "model loads are paused while the box is under pressure (memory, heat or throttling); retry later"
    )]
    LoadsPaused,
    #[error("inference failed: {0}")]
    Failed(String),
}

/// Facts about the loaded model, for `/v1/models` and `/api/health`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The name clients use (`model` in OpenAI requests).
    pub id: String,
    pub path: PathBuf,
    pub architecture: String,
    pub file_size: u64,
    pub context_size: u32,
    pub trained_context: u32,
    pub parameters: u64,
    pub threads: u32,
    /// Requests generating at once (continuous batching).
    pub parallel: u32,
    /// Token cells in the KV cache: a window per request when they suffice, else shared.
    pub kv_cache_tokens: u32,
    /// Most tokens of idle conversations parked in RAM outside the KV cache.
    pub idle_cache_tokens: u32,
    /// `Some(true)` when the file matched the manifest's sha256; `None` when unlisted.
    pub sha256_verified: Option<bool>,
    pub chat_template: String,
    /// The tool-call format the model's chat template speaks (`hermes`); `None`: no tools.
    pub tool_calls: Option<ToolFormat>,
    pub load_seconds: f64,
    pub loaded_at: i64,
}

/// The model's lifecycle, published by the engine thread.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ModelState {
    /// `progress` runs from 0 to 1 while llama.cpp reads the weights.
    Loading {
        path: PathBuf,
        progress: f32,
    },
    Ready(Box<ModelInfo>),
    Failed {
        path: PathBuf,
        error: String,
    },
}

impl ModelState {
    pub fn is_ready(&self) -> bool {
        matches!(self, ModelState::Ready(_))
    }
}
