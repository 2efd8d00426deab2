//! `POST /v1/embeddings`. Vectors are L2-normalised. The official `openai` client asks
//! for `encoding_format: "base64"` (little-endian f32) by default; `"float"` gives arrays.

use crate::engine::{EngineError, MAX_INPUTS};
use crate::error::ApiError;
use crate::http::{json, AppState, Caller};
use actix_web::{web, HttpResponse};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    input: Input,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    /// Whatever no field above took: refused (`user` only labels the request).
    #[serde(flatten)]
    unknown: super::tools::Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
    /// Token ids (OpenAI allows them); refused with a clear message.
    Tokens(#[allow(dead_code)] Vec<Value>),
}

/// The request's fields, for the OpenAPI document (`EmbeddingRequest` reads them).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"input": "hello"}))]
struct EmbeddingBody {
    /// A text or texts.
    input: Vec<String>,
    model: Option<String>,
    /// `float` or `base64`.
    encoding_format: Option<String>,
    dimensions: Option<u32>,
    user: Option<String>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct EmbeddingListBody {
    /// `list`.
    object: String,
    data: Vec<EmbeddingItemBody>,
    model: String,
    /// `prompt_tokens`, `total_tokens`.
    usage: serde_json::Map<String, serde_json::Value>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct EmbeddingItemBody {
    /// `embedding`.
    object: String,
    index: usize,
    /// Numbers, or base64 of little-endian f32 (`encoding_format: base64`).
    embedding: serde_json::Value,
}

#[utoipa::path(post, path = "/v1/embeddings", tag = "openai",
    description = "OpenAI's embeddings: `model`, `input` (text or texts), `encoding_format`, `dimensions`.",
    request_body = EmbeddingBody,
    responses((status = 200, description = "A `list` of `embedding`s", body = inline(EmbeddingListBody)),
        (status = 400, description = "`invalid_request`, `unsupported_parameter`, `no_embedding_model` or `context_length_exceeded`"),
        (status = 404, description = "`model_not_found` / `unknown_model`"),
        (status = 429, description = "`overloaded` or `rate_limited`: `Retry-After` says when to retry"),
        (status = 503, description = "`model_not_ready`, `insufficient_memory`, `shedding_load` or `model_loads_paused`"),
        (status = 504, description = "`timeout`")))]
pub async fn embeddings(
    state: web::Data<AppState>,
    _caller: Caller,
    body: web::Json<EmbeddingRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    super::tools::reject_unknown(&request.unknown, "", &[], &["user"])?;
    let inputs = match request.input {
        Input::One(s) => vec![s],
        Input::Many(v) => v,
        Input::Tokens(_) => return Err(ApiError::invalid("token arrays are not supported; send text")),
    };
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!("encoding_format '{other}': use float or base64")))
        }
    };
    if inputs.len() > MAX_INPUTS {
        return Err(ApiError::invalid(format!(
            "input holds {} strings; the limit is {MAX_INPUTS}",
            inputs.len()
        )));
    }
    let embedder = state.models.embedder(request.model.as_deref()).await?;
    let model = match embedder.state() {
        crate::engine::ModelState::Ready(info) => info.id,
        _ => return Err(EngineError::NotReady("the embedding model is not ready".into()).into()),
    };
    let result = embedder.embed(inputs).await?;
    if let Some(d) = request.dimensions {
        let native = result.vectors.first().map_or(0, Vec::len);
        if d != native {
            return Err(ApiError::invalid(format!("dimensions: this model gives {native}, not {d}")));
        }
    }
    let data: Vec<Value> = result
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(json(&json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens },
    })))
}
