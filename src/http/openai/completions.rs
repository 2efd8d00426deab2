//! `POST /v1/completions`: raw text continued as is, without the chat template.

use super::stream::{Chunks, Kind};
use super::Sampling;
use crate::assistant::Reply;
use crate::engine::{Owner, Prompt};
use crate::error::ApiError;
use crate::http::peer::unless_gone;
use crate::http::sse::sse_response;
use crate::http::{json, AppState, Caller};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    prompt: PromptInput,
    #[serde(default)]
    echo: bool,
    #[serde(default)]
    suffix: Option<String>,
    #[serde(flatten)]
    sampling: Sampling,
    /// Whatever no field above took: refused unless neutral (last, so it gets only that).
    #[serde(flatten)]
    unknown: super::tools::Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PromptInput {
    One(String),
    Many(Vec<String>),
}

/// The request's fields, for the OpenAPI document (`CompletionRequest` reads them).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"model": "default", "prompt": "Once upon a time", "max_tokens": 8}))]
struct CompletionBody {
    /// A text (or texts: one only).
    prompt: String,
    echo: Option<bool>,
    suffix: Option<String>,
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
}

#[utoipa::path(post, path = "/v1/completions", tag = "openai",
    description = "OpenAI's (legacy) completions: `model`, `prompt`, `stream`, `max_tokens`, `temperature`, `stop`...",
    request_body = CompletionBody,
    responses((status = 200, description = "A `text_completion`, or with `stream` its chunks as server-sent events", content((crate::http::openapi::Object = "application/json"), (crate::http::openapi::SseEvent = "text/event-stream"))),
        (status = 400, description = "`invalid_request`, `unsupported_parameter` or `context_length_exceeded`"),
        (status = 404, description = "`model_not_found` / `unknown_model`"),
        (status = 429, description = "`overloaded` or `rate_limited`: `Retry-After` says when to retry"),
        (status = 503, description = "`model_not_ready`, `insufficient_memory`, `shedding_load` or `model_loads_paused`"),
        (status = 504, description = "`timeout`")))]
pub async fn completions(
    http: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    super::reject_unknown(&request.unknown, false)?;
    let prompt = match request.prompt {
        PromptInput::One(p) => p,
        PromptInput::Many(mut v) if v.len() == 1 => v.remove(0),
        PromptInput::Many(_) => {
            return Err(ApiError::invalid("prompt must be one string (batches are not supported)"))
        }
    };
    if prompt.is_empty() {
        return Err(ApiError::invalid("prompt must not be empty"));
    }
    if request.suffix.is_some() {
        return Err(ApiError::invalid("suffix (fill-in-the-middle) is not supported"));
    }
    // Raw text is no conversation: the engine directly, with the turn's sampling rules.
    let options = request.sampling.options()?;
    let params = options.sampling.resolve(&state.settings.model, options.stream)?;
    let (engine, model) = state.assistant.engine(options.model.as_deref()).await?;
    let started =
        Reply::start(engine.submit(Owner::user(caller.user.id), Prompt::Text(prompt.clone()), params)?);
    let reply = unless_gone(&http, started).await??;

    let id = format!("cmpl-{}", uuid::Uuid::new_v4().simple());
    let created = crate::store::now();
    let model = model.id;
    if options.stream {
        let chunks = Chunks {
            kind: Kind::Text,
            id,
            created,
            model,
            include_usage: options.include_usage,
            citations: None,
        };
        return Ok(sse_response(chunks.stream(reply)));
    }
    let (text, finished) = unless_gone(&http, reply.collect()).await??;
    let text = if request.echo { prompt + &text } else { text };
    Ok(json(&json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0, "text": text, "logprobs": null, "finish_reason": finished.finish_reason.as_str(),
        }],
        "usage": finished.usage,
        "timings": finished.timings,
    })))
}
