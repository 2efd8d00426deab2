//! OpenAI-compatible `/v1/models`, `/v1/chat/completions` and `/v1/completions`, so the
//! official `openai` clients, Open WebUI and LangChain work unchanged. These calls are
//! stateless: the client sends the whole conversation each time.

mod chat;
mod completions;
mod stream;

pub use chat::chat_completions;
pub use completions::completions;

use super::chat::params;
use super::{json, AppState, Caller};
use crate::engine::{EngineError, GenerateParams, ModelInfo, ModelState};
use crate::error::{ApiError, ErrorCode};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// Names accepted for the loaded model besides its own id.
const ALIASES: &[&str] = &["default", "hearth"];

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
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// A validated request: the model that serves it and the engine parameters.
struct Prepared {
    model: ModelInfo,
    params: GenerateParams,
    stream: bool,
    include_usage: bool,
}

impl Sampling {
    fn prepare(self, state: &AppState) -> Result<Prepared, ApiError> {
        let model = state.engine.model().ok_or_else(|| {
            let reason = match state.engine.state() {
                ModelState::Failed { error, .. } => error,
                _ => "the model is still loading".into(),
            };
            ApiError::from(EngineError::NotReady(reason))
        })?;
        if let Some(name) = &self.model {
            if name != &model.id && !ALIASES.contains(&name.as_str()) {
                return Err(ApiError::new(
                    ErrorCode::ModelNotFound,
                    format!("model '{name}' is not loaded; available: '{}'", model.id),
                ));
            }
        }
        if self.n.unwrap_or(1) != 1 {
            return Err(ApiError::invalid("only n = 1 is supported"));
        }
        let stop = match self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        };
        let max_tokens = self.max_completion_tokens.or(self.max_tokens);
        let params = params(state, self.temperature, self.top_p, max_tokens, self.seed, stop)?;
        let include_usage = self.stream_options.is_some_and(|o| o.include_usage);
        Ok(Prepared { model, params, stream: self.stream, include_usage })
    }
}

fn model_card(info: &ModelInfo) -> Value {
    json!({ "id": info.id, "object": "model", "created": info.loaded_at, "owned_by": "hearth" })
}

pub async fn models(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    let data: Vec<Value> = state.engine.model().iter().map(model_card).collect();
    json(&json!({ "object": "list", "data": data }))
}
