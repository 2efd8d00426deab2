//! Ollama's `POST /api/embed` (`input`: a string or a list; L2-normalised vectors, as
//! Ollama gives them) and the older `POST /api/embeddings` (`prompt`: one string).
//! The model is the one named, else `model.embedding_model`.

use super::chat::LABELS;
use super::{model_id, ollama_name, parse, OllamaError};
use crate::engine::{EngineError, ModelState, MAX_INPUTS};
use crate::error::ApiError;
use crate::http::openai::tools::{reject_unknown, Unknown};
use crate::http::{AppState, Caller};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct EmbedRequest {
    #[serde(default)]
    model: Option<String>,
    input: Input,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    options: Option<Unknown>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    #[serde(default)]
    model: Option<String>,
    prompt: String,
    #[serde(default)]
    options: Option<Unknown>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// The vectors of `inputs` from the embedding model a request names, and its name.
async fn vectors(
    state: &AppState,
    model: Option<&str>,
    options: Option<Unknown>,
    inputs: Vec<String>,
) -> Result<(String, crate::engine::Embeddings), OllamaError> {
    // Sampling means nothing here; the loading settings change nothing either.
    reject_unknown(&options.unwrap_or_default(), "options", &[], super::OPTION_LABELS)?;
    if inputs.len() > MAX_INPUTS {
        return Err(ApiError::invalid(format!(
            "input holds {} strings; the limit is {MAX_INPUTS}",
            inputs.len()
        ))
        .into());
    }
    let embedder = state.models.embedder(model_id(model).as_deref()).await?;
    let id = match embedder.state() {
        ModelState::Ready(info) => info.id,
        _ => return Err(EngineError::NotReady("the embedding model is not ready".into()).into()),
    };
    Ok((id, embedder.embed(inputs).await?))
}

/// `truncate: false` is what Hearth does: an input longer than the model reads is refused.
fn embed_neutral() -> Vec<(&'static str, Value)> {
    vec![("truncate", json!(false))]
}

/// The requests' fields, for the OpenAPI document (`EmbedRequest`, `EmbeddingsRequest`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"input": "hello"}))]
struct EmbedBody {
    model: Option<String>,
    /// A text or texts.
    input: Vec<String>,
    dimensions: Option<u32>,
    truncate: Option<bool>,
    /// Sampling: `temperature`, `top_p`, `top_k`, `num_predict`, `seed`, `stop`, `num_ctx`...
    options: Option<serde_json::Map<String, serde_json::Value>>,
    keep_alive: Option<serde_json::Value>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"prompt": "hello"}))]
struct EmbeddingsBody {
    model: Option<String>,
    prompt: String,
    /// Sampling: `temperature`, `top_p`, `top_k`, `num_predict`, `seed`, `stop`, `num_ctx`...
    options: Option<serde_json::Map<String, serde_json::Value>>,
    keep_alive: Option<serde_json::Value>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct EmbedReply {
    model: String,
    embeddings: Vec<Vec<f32>>,
    total_duration: u64,
    prompt_eval_count: u64,
}

#[utoipa::path(post, path = "/api/embed", tag = "ollama", request_body = EmbedBody,
    description = "Ollama's embed: `model`, `input` (text or texts), `truncate`, `options`.",
    responses((status = 200, description = "`embeddings`", body = inline(EmbedReply)), (status = 400, description = "`invalid_request`, `unsupported_parameter`, `context_length_exceeded`"),
        (status = 404, description = "`model_not_found` / `unknown_model`"),
        (status = 429, description = "`overloaded` or `rate_limited`"),
        (status = 503, description = "`model_not_ready`, `insufficient_memory`, `shedding_load` or `model_loads_paused`"),
        (status = 504, description = "`timeout`")))]
pub async fn embed(
    state: web::Data<AppState>,
    _caller: Caller,
    body: web::Json<Value>,
) -> Result<HttpResponse, OllamaError> {
    let started = Instant::now();
    let request: EmbedRequest = parse(body.into_inner())?;
    reject_unknown(&request.unknown, "", &embed_neutral(), LABELS)?;
    let inputs = match request.input {
        Input::One(s) => vec![s],
        Input::Many(v) => v,
    };
    let (model, result) = vectors(&state, request.model.as_deref(), request.options, inputs).await?;
    if let Some(d) = request.dimensions {
        let native = result.vectors.first().map_or(0, Vec::len);
        if d != native {
            return Err(ApiError::invalid(format!("dimensions: this model gives {native}, not {d}")).into());
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "model": ollama_name(&model),
        "embeddings": result.vectors,
        "total_duration": started.elapsed().as_nanos() as u64,
        "prompt_eval_count": result.prompt_tokens,
    })))
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct EmbeddingReply {
    embedding: Vec<f32>,
}

#[utoipa::path(post, path = "/api/embeddings", tag = "ollama", request_body = EmbeddingsBody,
    description = "Ollama's older embeddings: `model`, `prompt`.",
    responses((status = 200, description = "`embedding`", body = inline(EmbeddingReply)), (status = 400, description = "`invalid_request`, `unsupported_parameter`, `context_length_exceeded`"),
        (status = 404, description = "`model_not_found` / `unknown_model`"),
        (status = 429, description = "`overloaded` or `rate_limited`"),
        (status = 503, description = "`model_not_ready`, `insufficient_memory`, `shedding_load` or `model_loads_paused`"),
        (status = 504, description = "`timeout`")))]
pub async fn embeddings(
    state: web::Data<AppState>,
    _caller: Caller,
    body: web::Json<Value>,
) -> Result<HttpResponse, OllamaError> {
    let request: EmbeddingsRequest = parse(body.into_inner())?;
    reject_unknown(&request.unknown, "", &[], LABELS)?;
    let (_, result) =
        vectors(&state, request.model.as_deref(), request.options, vec![request.prompt]).await?;
    let embedding = result.vectors.into_iter().next().unwrap_or_default();
    Ok(HttpResponse::Ok().json(json!({ "embedding": embedding })))
}
