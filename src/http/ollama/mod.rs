//! The Ollama API, for the clients that speak it (Home Assistant's Ollama integration,
//! Open WebUI, the `ollama` Python and JavaScript clients): `/api/version`, `/api/tags`,
//! `/api/show`, `/api/ps`, `/api/chat` (the `messages` form), `/api/generate`,
//! `/api/embed` (and the older `/api/embeddings`), and `/api/pull` for installed models.
//!
//! Transport only: a chat is an assistant turn (`Conversation::Ephemeral`, like
//! `/v1/chat/completions`), `raw` generation goes to the engine like `/v1/completions`.
//! Replies stream as NDJSON (one JSON object a line, the last with `done: true` and the
//! timings in nanoseconds); `stream` is true unless the request says false, as in Ollama.
//!
//! Hearth's own `POST /api/chat` (`{"message": ...}`) shares the path: [`api_chat`] tells
//! the two apart by the body (a `messages` field is Ollama's).
//!
//! Errors are Ollama's `{"error": "..."}` with the status of Hearth's error table and its
//! stable code beside (`"code"`). As everywhere in Hearth, a request field Hearth does not
//! act on is a 400 naming it, except those listed in `chat.rs` (`LABELS`, `OPTION_LABELS`)
//! that change nothing here. Authentication is Hearth's: `Authorization: Bearer <token>`
//! (the clients can send it: `ollama.Client(headers=...)`, Home Assistant's API key);
//! a refusal before routing (401, 403) is in Ollama's shape on the paths that are Ollama's
//! only ([`is_ollama_only`]), in Hearth's on the shared `/api/chat`.

mod chat;
pub(super) mod embed;
pub(super) mod generate;
pub(super) mod models;
mod stream;

pub use embed::{embed, embeddings};
pub use generate::generate;
pub use models::{ps, pull, show, tags, version};

use super::openai::tools::{reject_unknown, Unknown};
use super::{AppState, Caller};
use crate::error::{ApiError, ErrorCode};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime};

/// `/api/chat`'s two bodies.
#[derive(utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code, clippy::large_enum_variant)] // for the document only, never built
enum ApiChatBody {
    Hearth(super::chat::ChatRequest),
    Ollama(OllamaChatBody),
}

/// Ollama's chat request.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"messages": [{"role": "user", "content": "Say hello."}], "stream": false, "options": {"num_predict": 8}}))]
struct OllamaChatBody {
    model: Option<String>,
    messages: Vec<OllamaMessage>,
    tools: Option<Vec<serde_json::Value>>,
    /// `"json"` or a JSON schema.
    format: Option<serde_json::Value>,
    /// Sampling: `temperature`, `top_p`, `top_k`, `num_predict`, `seed`, `stop`, `num_ctx`...
    options: Option<serde_json::Map<String, Value>>,
    /// Default true: NDJSON.
    stream: Option<bool>,
    think: Option<serde_json::Value>,
    keep_alive: Option<serde_json::Value>,
}

#[derive(utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum OllamaRole {
    System,
    User,
    Assistant,
    Tool,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct OllamaMessage {
    role: OllamaRole,
    content: Option<String>,
    images: Option<Vec<serde_json::Value>>,
    tool_calls: Option<Vec<serde_json::Value>>,
    tool_name: Option<String>,
    thinking: Option<String>,
}

/// `/api/chat`'s two answers.
#[derive(utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code, clippy::large_enum_variant)] // for the document only, never built
enum ApiChatReply {
    Hearth(super::chat::ChatResponse),
    Ollama(OllamaChatReply),
}

/// Ollama's chat answer (not streamed).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct OllamaChatReply {
    model: String,
    created_at: String,
    message: serde_json::Map<String, Value>,
    done: bool,
    done_reason: Option<String>,
    total_duration: Option<u64>,
    load_duration: Option<u64>,
    prompt_eval_count: Option<u64>,
    prompt_eval_duration: Option<u64>,
    eval_count: Option<u64>,
    eval_duration: Option<u64>,
}

/// `POST /api/chat`: Ollama's chat when the body has `messages`, else Hearth's own
/// (`{"message": ..., "conversation_id": ...}`, `http/chat.rs`). A body that is not JSON
/// gets Hearth's error shape, as it is neither.
#[utoipa::path(post, path = "/api/chat", tag = "chat",
    description = "Two in one. Hearth's chat: `{\"message\", \"conversation_id\"?, \"stream\"?, ...}` gives the reply, its conversation, usage and citations (`stream`: server-sent events). Ollama's chat, when the body has `messages`: `model`, `messages`, `stream` (default true: NDJSON), `tools`, `format`, `options`...; its errors come in Ollama's shape.",
    request_body = ApiChatBody,
    responses((status = 200, description = "The reply: Hearth's (JSON, or server-sent events `token`, `tool_call`, `tool_result`... `done`), or Ollama's (JSON, or NDJSON)", content((ApiChatReply = "application/json"), (crate::http::openapi::SseEvent = "text/event-stream"), (String = "application/x-ndjson"))),
        (status = 400, description = "`invalid_request`, `unsupported_parameter`, `context_length_exceeded`, `tools_unsupported`", body = crate::http::openapi::EitherErrorBody),
        (status = 404, description = "`conversation_not_found`, `model_not_found`, `unknown_model`", body = crate::http::openapi::EitherErrorBody),
        (status = 429, description = "`overloaded` or `rate_limited`", body = crate::http::openapi::EitherErrorBody),
        (status = 503, description = "`model_not_ready`, `insufficient_memory`, `shedding_load` or `model_loads_paused`", body = crate::http::openapi::EitherErrorBody),
        (status = 504, description = "`timeout`", body = crate::http::openapi::EitherErrorBody)))]
pub async fn api_chat(
    http: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<Value>,
) -> Result<HttpResponse, actix_web::Error> {
    let body = body.into_inner();
    if body.get("messages").is_some() {
        let request = parse::<chat::ChatRequest>(body)?;
        return Ok(chat::chat(http, state, caller, request).await?);
    }
    let request = serde_json::from_value::<super::chat::ChatRequest>(body)
        .map_err(|e| ApiError::invalid(format!("invalid request: {e}")))?;
    Ok(super::chat::answer(http, state, caller, request).await?)
}

/// The paths that only the Ollama API serves (`/api/chat` is shared with Hearth's chat).
pub const OLLAMA_ONLY: &[&str] = &[
    "/api/version",
    "/api/tags",
    "/api/show",
    "/api/ps",
    "/api/pull",
    "/api/generate",
    "/api/embed",
    "/api/embeddings",
];

pub fn is_ollama_only(path: &str) -> bool {
    OLLAMA_ONLY.contains(&path)
}

/// An error in Ollama's shape: `{"error": "<message>", "code": "<Hearth's code>"}`, with
/// the status of Hearth's error table.
#[derive(Debug)]
pub struct OllamaError(pub ApiError);

impl std::fmt::Display for OllamaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for OllamaError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(secs) = self.0.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.0.code == ErrorCode::Unauthorized {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(error_body(&self.0))
    }
}

fn error_body(e: &ApiError) -> Value {
    json!({ "error": e.message, "code": e.code.code() })
}

impl From<ApiError> for OllamaError {
    fn from(e: ApiError) -> Self {
        OllamaError(e)
    }
}

impl From<crate::assistant::AssistantError> for OllamaError {
    fn from(e: crate::assistant::AssistantError) -> Self {
        OllamaError(e.into())
    }
}

impl From<crate::engine::EngineError> for OllamaError {
    fn from(e: crate::engine::EngineError) -> Self {
        OllamaError(e.into())
    }
}

/// The JSON body extractor of the Ollama-only routes: its failures (malformed JSON, a
/// body over `server.max_body_bytes`, no JSON content type) in Ollama's shape.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| OllamaError(super::limits::json_error(err, limit)).into())
}

/// Reads a request from a JSON value; a wrong type or missing field is a 400 saying which.
fn parse<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, OllamaError> {
    serde_json::from_value(body).map_err(|e| OllamaError(ApiError::invalid(format!("invalid request: {e}"))))
}

/// The tag Ollama gives a model pulled without one; Hearth's models have no tags, and are
/// listed with this one so that clients that expect `name:tag` find it.
const TAG: &str = ":latest";

/// A model's name as the Ollama API lists it.
fn ollama_name(id: &str) -> String {
    format!("{id}{TAG}")
}

/// The installed model a request names: `name`, `name:latest` (or `None`, empty: the
/// configured model).
fn model_id(name: Option<&str>) -> Option<String> {
    let name = name?.trim();
    let id = name.strip_suffix(TAG).unwrap_or(name);
    (!id.is_empty()).then(|| id.to_string())
}

/// `options`: Ollama's sampling settings (Modelfile parameters).
#[derive(Debug, Default, Deserialize)]
struct Options {
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    top_k: Option<u32>,
    /// -1 (no limit) and -2 (fill the context) take `model.max_tokens`.
    #[serde(default)]
    num_predict: Option<i64>,
    /// Negative: a random seed.
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    stop: Option<Vec<String>>,
    #[serde(flatten)]
    other: Unknown,
}

/// Options at the one value that asks for nothing Hearth does not do (Ollama's own
/// defaults for some, such as `repeat_penalty`, differ: ask for these values to match).
fn neutral_options() -> Vec<(&'static str, Value)> {
    vec![
        ("repeat_penalty", json!(1)),
        ("presence_penalty", json!(0)),
        ("frequency_penalty", json!(0)),
        ("typical_p", json!(1)),
        ("tfs_z", json!(1)),
        ("min_p", json!(0)),
        ("mirostat", json!(0)),
    ]
}

/// Options that change nothing in the reply here, accepted whatever their value:
/// `num_ctx` (the context window is the model's `model.context_size`, fixed when it loads;
/// Home Assistant sends 8192 with every request; a conversation longer than the window
/// loses its oldest messages, or is refused), and the loading and threading settings
/// (`num_thread`, `num_gpu`, `main_gpu`, `num_batch`, `low_vram`, `use_mmap`, `use_mlock`,
/// `numa`), which `[model]` decides for every request at once.
const OPTION_LABELS: &[&str] = &[
    "num_ctx",
    "num_thread",
    "num_gpu",
    "main_gpu",
    "num_batch",
    "low_vram",
    "use_mmap",
    "use_mlock",
    "numa",
];

impl Options {
    fn sampling(self) -> Result<crate::assistant::Sampling, OllamaError> {
        reject_unknown(&self.other, "options", &neutral_options(), OPTION_LABELS)?;
        let max_tokens = match self.num_predict {
            None | Some(-1) | Some(-2) => None,
            Some(n) => Some(u32::try_from(n).map_err(|_| {
                ApiError::invalid("options.num_predict must be a positive number of tokens, -1 or -2")
            })?),
        };
        let seed = match self.seed {
            None => None,
            Some(s) if s < 0 => None,
            Some(s) => {
                Some(u32::try_from(s).map_err(|_| ApiError::invalid("options.seed must be below 2^32"))?)
            }
        };
        Ok(crate::assistant::Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            max_tokens,
            seed,
            stop: self.stop.unwrap_or_default(),
        })
    }
}

/// `format`: `"json"`, a JSON schema, or `""`/absent for free text.
fn format_constraint(format: Option<Value>) -> Result<Option<crate::engine::Constraint>, OllamaError> {
    use crate::engine::Constraint;
    match format {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(Constraint::JsonObject)),
        Some(schema @ Value::Object(_)) => Ok(Some(Constraint::JsonSchema(schema))),
        Some(other) => {
            Err(ApiError::invalid(format!("format must be \"json\" or a JSON schema object, not {other}"))
                .into())
        }
    }
}

/// `think`: only off. Hearth's models answer without a separate reasoning part.
fn refuse_thinking(think: &Option<Value>) -> Result<(), OllamaError> {
    match think {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
        Some(other) => Err(OllamaError(super::openai::tools::unsupported(format!(
            "think: {other} is not supported; Hearth's models do not return separate thinking (send false or leave it out)"
        )))),
    }
}

/// When a request started, and how long it took until the engine had it.
#[derive(Debug, Clone, Copy)]
struct Clock {
    started: Instant,
    /// Until the engine accepted the request: loading the model if it was not loaded,
    /// reading and preparing the prompt (Ollama's `load_duration`).
    load: Duration,
}

impl Clock {
    /// The timings of Ollama's last object: durations in nanoseconds.
    fn stats(&self, finished: &crate::engine::Finished) -> Value {
        let ns = |ms: f64| (ms * 1e6).round() as u64;
        json!({
            "total_duration": self.started.elapsed().as_nanos() as u64,
            "load_duration": self.load.as_nanos() as u64,
            "prompt_eval_count": finished.usage.prompt_tokens,
            "prompt_eval_duration": ns(finished.timings.prompt_ms),
            "eval_count": finished.usage.completion_tokens,
            "eval_duration": ns(finished.timings.predicted_ms),
        })
    }
}

/// Ollama's `done_reason`: a reply that called tools ended as `stop`, as in Ollama.
fn done_reason(finished: &crate::engine::Finished) -> &'static str {
    match finished.finish_reason {
        crate::engine::FinishReason::Length => "length",
        _ => "stop",
    }
}

/// Merges `extra`'s fields into `object`.
fn merge(mut object: Value, extra: Value) -> Value {
    if let (Some(o), Value::Object(e)) = (object.as_object_mut(), extra) {
        o.extend(e);
    }
    object
}

/// A time as RFC 3339 in UTC with nanoseconds (`created_at`, `modified_at`).
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_796_558_400, 5);
        assert_eq!(rfc3339(t), "2026-12-06T12:00:00.000000005Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn names_take_or_leave_the_latest_tag() {
        assert_eq!(model_id(Some("qwen:latest")).as_deref(), Some("qwen"));
        assert_eq!(model_id(Some("qwen")).as_deref(), Some("qwen"));
        assert_eq!(model_id(Some("")), None);
        assert_eq!(model_id(None), None);
        assert_eq!(ollama_name("qwen"), "qwen:latest");
        assert!(is_ollama_only("/api/tags") && !is_ollama_only("/api/chat"), "/api/chat is shared");
    }

    fn options(v: Value) -> Result<crate::assistant::Sampling, OllamaError> {
        serde_json::from_value::<Options>(v).unwrap().sampling()
    }

    #[test]
    fn options_become_sampling_and_the_rest_is_refused_by_name() {
        let s = options(json!({"temperature": 0, "top_k": 5, "num_predict": 12, "seed": 3, "stop": ["x"],
                               "num_ctx": 8192, "repeat_penalty": 1.0}))
        .unwrap();
        assert_eq!((s.temperature, s.top_k, s.max_tokens, s.seed), (Some(0.0), Some(5), Some(12), Some(3)));
        assert_eq!(s.stop, ["x"]);
        let unlimited = options(json!({"num_predict": -1, "seed": -1})).unwrap();
        assert_eq!((unlimited.max_tokens, unlimited.seed), (None, None));
        for (bad, names) in [
            (json!({"repeat_penalty": 1.1}), "options.repeat_penalty"),
            (json!({"mirostat": 2}), "options.mirostat"),
            (json!({"num_predict": -5}), "options.num_predict"),
            (json!({"fancy": 1}), "options.fancy"),
        ] {
            let OllamaError(e) = options(bad.clone()).unwrap_err();
            assert!(e.message.contains(names), "{bad}: {e}");
        }
    }

    #[test]
    fn formats_and_thinking() {
        use crate::engine::Constraint;
        assert_eq!(format_constraint(Some(json!("json"))).unwrap(), Some(Constraint::JsonObject));
        assert_eq!(format_constraint(Some(json!(""))).unwrap(), None);
        let schema = json!({"type": "object"});
        assert_eq!(format_constraint(Some(schema.clone())).unwrap(), Some(Constraint::JsonSchema(schema)));
        assert!(format_constraint(Some(json!("yaml"))).is_err());
        assert!(refuse_thinking(&Some(json!(false))).is_ok());
        assert!(refuse_thinking(&Some(json!(true))).unwrap_err().0.message.contains("think"));
    }

    #[test]
    fn errors_are_in_ollamas_shape_with_the_code_beside() {
        let e = OllamaError(ApiError::new(ErrorCode::ModelNotFound, "model 'x' is not installed"));
        let response = e.error_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            error_body(&e.0),
            json!({"error": "model 'x' is not installed", "code": "model_not_found"})
        );
    }
}
