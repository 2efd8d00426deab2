//! OpenAI-compatible `/v1/models`, `/v1/chat/completions`, `/v1/completions` and
//! `/v1/embeddings`, so the official `openai` clients, Open WebUI and LangChain work
//! unchanged. These calls are stateless: the client sends the whole conversation each time.

pub(super) mod chat;
pub(super) mod completions;
pub(super) mod embeddings;
mod stream;
pub(super) mod tools;

pub use chat::chat_completions;
pub use completions::completions;
pub use embeddings::embeddings;

use super::{json, AppState, Caller};
use crate::engine::ModelState;
use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// Sampling and streaming fields shared by chat and text completions.
#[derive(Debug, Deserialize)]
pub(crate) struct Sampling {
    #[serde(default)]
    model: Option<String>,
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
    #[serde(flatten)]
    other: tools::Unknown,
}

/// Refuses the fields of a chat or text completion request that no struct took: Hearth
/// acts on every field it accepts, except the `labels` (they describe the request and
/// change nothing) and fields at their one neutral value (see [`tools::reject_unknown`]).
fn reject_unknown(fields: &tools::Unknown, chat: bool) -> Result<(), ApiError> {
    let mut neutral =
        vec![("frequency_penalty", json!(0)), ("presence_penalty", json!(0)), ("logit_bias", json!({}))];
    if chat {
        neutral.extend([("logprobs", json!(false)), ("top_logprobs", json!(0)), ("store", json!(false))]);
    } else {
        neutral.push(("best_of", json!(1)));
    }
    tools::reject_unknown(
        fields,
        "",
        &neutral,
        &["user", "metadata", "safety_identifier", "prompt_cache_key"],
    )
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// The shared fields in Hearth's terms (the assistant checks the sampling options).
struct Options {
    sampling: crate::assistant::Sampling,
    model: Option<String>,
    stream: bool,
    include_usage: bool,
}

impl Sampling {
    fn options(self) -> Result<Options, ApiError> {
        if self.n.unwrap_or(1) != 1 {
            return Err(ApiError::invalid("only n = 1 is supported"));
        }
        let stop = match self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        };
        let sampling = crate::assistant::Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: None,
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            seed: self.seed,
            stop,
        };
        if let Some(options) = &self.stream_options {
            tools::reject_unknown(
                &options.other,
                "stream_options",
                &[("include_obfuscation", json!(false))],
                &[],
            )?;
        }
        let include_usage = self.stream_options.is_some_and(|o| o.include_usage);
        Ok(Options { sampling, model: self.model, stream: self.stream, include_usage })
    }
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ModelListBody {
    /// `list`.
    object: String,
    data: Vec<ModelBody>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ModelBody {
    id: String,
    /// `model`.
    object: String,
    /// Unix seconds (the file's time).
    created: u64,
    owned_by: String,
    /// Hearth extension: `chat`, `embedding`...
    role: String,
    /// Hearth extension: whether it is in memory.
    loaded: bool,
}

/// Installed models, the configured one first (unless it failed to load). `role` and
/// `loaded` are Hearth's additions to OpenAI's model object.
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, description = "OpenAI's model list (`object: list`, `data`)", body = inline(ModelListBody))))]
pub async fn models(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    let default_failed = matches!(state.models.default_engine().state(), ModelState::Failed { .. });
    let data: Vec<Value> = state
        .models
        .installed()
        .into_iter()
        .filter(|m| !(m.default && default_failed))
        .map(|m| {
            let created = std::fs::metadata(&m.path)
                .and_then(|md| md.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            json!({ "id": m.id, "object": "model", "created": created, "owned_by": "hearth",
                    "role": m.role, "loaded": m.loaded })
        })
        .collect();
    json(&json!({ "object": "list", "data": data }))
}
