//! Ollama's `POST /api/generate`: a prompt answered through the model's chat template (a
//! one-message assistant turn, with `system` as its system prompt), or continued as raw
//! text (`raw: true`, the engine directly, like `/v1/completions`). An empty prompt only
//! loads the model (`done_reason: "load"`), as in Ollama.

use super::chat::{neutral, LABELS};
use super::stream::{Frames, Kind};
use super::{format_constraint, model_id, ollama_name, parse, refuse_thinking, Clock, OllamaError, Options};
use crate::assistant::{Conversation, Reply, Turn, Who};
use crate::engine::{ChatMessage, Owner, Prompt};
use crate::error::ApiError;
use crate::http::openai::tools::{reject_unknown, unsupported, Unknown};
use crate::http::peer::unless_gone;
use crate::http::{AppState, Caller};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Instant, SystemTime};

#[derive(Debug, Deserialize)]
pub struct GenerateRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    raw: Option<bool>,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    options: Option<Options>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    think: Option<Value>,
    /// Refused unless empty: each names what Hearth does not do.
    #[serde(default)]
    suffix: Option<String>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    context: Option<Vec<Value>>,
    #[serde(default)]
    images: Option<Vec<Value>>,
    #[serde(flatten)]
    unknown: Unknown,
}

impl GenerateRequest {
    /// The fields Hearth cannot honour, each with why.
    fn refuse_unsupported(&self) -> Result<(), OllamaError> {
        let refuse = |message: &str| Err(OllamaError(unsupported(message.to_string())));
        if self.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
            return refuse("suffix (fill-in-the-middle) is not supported");
        }
        if self.template.as_ref().is_some_and(|t| !t.is_empty()) {
            return refuse(
                "template is not supported: Hearth uses the model's own chat template (or raw: true)",
            );
        }
        if self.context.as_ref().is_some_and(|c| !c.is_empty()) {
            return refuse(
                "context is not supported: Hearth returns no context to continue from; \
                 send the conversation's messages to /api/chat instead",
            );
        }
        if self.images.as_ref().is_some_and(|i| !i.is_empty()) {
            return refuse("images is not supported: Hearth's models read text only");
        }
        Ok(())
    }
}

/// The request's fields, for the OpenAPI document (`GenerateRequest` reads them).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"prompt": "Why is the sky blue?", "stream": false, "options": {"num_predict": 8}}))]
struct GenerateBody {
    model: Option<String>,
    prompt: Option<String>,
    system: Option<String>,
    raw: Option<bool>,
    /// `"json"` or a JSON schema.
    format: Option<serde_json::Value>,
    /// Default true: NDJSON.
    stream: Option<bool>,
    think: Option<serde_json::Value>,
    suffix: Option<String>,
    template: Option<String>,
    /// Sampling: `temperature`, `top_p`, `top_k`, `num_predict`, `seed`, `stop`, `num_ctx`...
    options: Option<serde_json::Map<String, serde_json::Value>>,
    keep_alive: Option<serde_json::Value>,
}

#[utoipa::path(post, path = "/api/generate", tag = "ollama", request_body = GenerateBody,
    description = "Ollama's generate: `model`, `prompt`, `system`, `stream` (default true: NDJSON), `format`, `raw`, `options`...",
    responses((status = 200, description = "The reply", content((crate::http::openapi::Object = "application/json"), (String = "application/x-ndjson"))),
        (status = 400, description = "`invalid_request`, `unsupported_parameter`, `context_length_exceeded`"),
        (status = 404, description = "`model_not_found` / `unknown_model`"),
        (status = 429, description = "`overloaded` or `rate_limited`"),
        (status = 503, description = "`model_not_ready`, `insufficient_memory`, `shedding_load` or `model_loads_paused`"),
        (status = 504, description = "`timeout`")))]
pub async fn generate(
    http: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<Value>,
) -> Result<HttpResponse, OllamaError> {
    let started = Instant::now();
    let request: GenerateRequest = parse(body.into_inner())?;
    reject_unknown(&request.unknown, "", &neutral(), LABELS)?;
    refuse_thinking(&request.think)?;
    request.refuse_unsupported()?;
    let format = format_constraint(request.format)?;
    let sampling = request.options.unwrap_or_default().sampling()?;
    let stream = request.stream.unwrap_or(true);
    let model = model_id(request.model.as_deref());
    let prompt = request.prompt.unwrap_or_default();
    if prompt.is_empty() {
        // Ollama's way to load a model ahead of use.
        let (_, info) = state.assistant.engine(model.as_deref()).await?;
        return Ok(HttpResponse::Ok().json(json!({
            "model": ollama_name(&info.id), "created_at": super::rfc3339(SystemTime::now()),
            "response": "", "done": true, "done_reason": "load",
        })));
    }
    if request.raw.unwrap_or(false) {
        if request.system.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(
                ApiError::invalid("system has no place in a raw prompt; write it into the prompt").into()
            );
        }
        if format.is_some() {
            return Err(unsupported("format together with raw is not supported").into());
        }
        // Raw text is no conversation: the engine directly, with the turn's sampling rules.
        let params = sampling.resolve(&state.settings.model, stream)?;
        let (engine, info) = state.assistant.engine(model.as_deref()).await?;
        let started_reply =
            Reply::start(engine.submit(Owner::user(caller.user.id), Prompt::Text(prompt), params)?);
        let reply = unless_gone(&http, started_reply).await??;
        let frames = Frames {
            kind: Kind::Generate,
            model: ollama_name(&info.id),
            clock: Clock { started, load: started.elapsed() },
        };
        if stream {
            return Ok(frames.stream(reply));
        }
        let (text, finished) = unless_gone(&http, reply.collect()).await??;
        return Ok(frames.whole(&text, &finished));
    }
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = request.system.filter(|s| !s.is_empty()) {
        messages.push(ChatMessage::new("system", system));
    }
    messages.push(ChatMessage::new("user", prompt));
    let turn = Turn {
        sampling,
        model,
        knowledge: Some(false),
        stream,
        constraint: format.unwrap_or_default(),
        ..Turn::new(Who::user(caller.user.id), Conversation::Ephemeral { messages })
    };
    Frames::answer(&http, &state, turn, Kind::Generate, started).await
}
