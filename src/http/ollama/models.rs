//! What is installed and loaded, in Ollama's shapes: `/api/version`, `/api/tags`,
//! `/api/show`, `/api/ps`, and `/api/pull`, which answers for installed models only
//! (Hearth's models come from its own manifest: `hearth models pull`, or the admin page).
//!
//! A model's `details` come from its GGUF file: `family` is `general.architecture`,
//! `parameter_size` counts the weights of all tensors, `quantization_level` names
//! `general.file_type`.

use super::chat::LABELS;
use super::{model_id, ollama_name, parse, rfc3339, OllamaError};
use crate::engine::gguf::{self, GgufSummary};
use crate::engine::{Installed, ModelState, ToolFormat, ALIASES};
use crate::error::{ApiError, ErrorCode};
use crate::http::openai::tools::{reject_unknown, Unknown};
use crate::http::{AppState, Caller};
use crate::models::manifest;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// The Ollama release whose API Hearth answers as (tools, `format` schemas, `think`,
/// `/api/embed`): clients that check the server's version before using a feature see it.
pub const OLLAMA_API_VERSION: &str = "0.12.0";

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Version {
    version: String,
    hearth: String,
}

#[utoipa::path(get, path = "/api/version", tag = "ollama",
    responses((status = 200, description = "The Ollama API version served, and Hearth's", body = inline(Version))))]
pub async fn version(_caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "version": OLLAMA_API_VERSION, "hearth": env!("CARGO_PKG_VERSION") }))
}

/// An installed model and what its GGUF file says (`None`: the file did not validate).
struct Described {
    model: Installed,
    gguf: Option<GgufSummary>,
}

/// Every installed model with its file's facts (read off the blocking pool: a few MB of
/// metadata per file). The configured model is left out when it failed to load.
async fn described(state: &AppState) -> Vec<Described> {
    let default_failed = matches!(state.models.default_engine().state(), ModelState::Failed { .. });
    let installed: Vec<Installed> =
        state.models.installed().into_iter().filter(|m| !(m.default && default_failed)).collect();
    web::block(move || {
        installed
            .into_iter()
            .map(|model| Described { gguf: gguf::validate(&model.path).ok(), model })
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Ollama's way of writing a parameter count: "494.03M", "1.5B".
fn parameter_size(n: u64) -> String {
    let f = n as f64;
    let whole = |x: f64| x == x.floor();
    if n >= 1_000_000_000 {
        let b = f / 1e9;
        if whole(b) {
            format!("{b:.0}B")
        } else {
            format!("{b:.1}B")
        }
    } else if n >= 1_000_000 {
        let m = f / 1e6;
        if whole(m) {
            format!("{m:.0}M")
        } else {
            format!("{m:.2}M")
        }
    } else if n >= 1_000 {
        format!("{:.0}K", f / 1e3)
    } else {
        n.to_string()
    }
}

impl Described {
    fn name(&self) -> String {
        ollama_name(&self.model.id)
    }

    fn family(&self) -> String {
        self.gguf.as_ref().map_or_else(String::new, |g| g.architecture.clone())
    }

    fn details(&self) -> Value {
        let family = self.family();
        let gguf = self.gguf.as_ref();
        json!({
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": gguf.map_or_else(String::new, |g| parameter_size(g.parameters)),
            "quantization_level": gguf.and_then(|g| g.file_type).and_then(gguf::file_type_name).unwrap_or(""),
        })
    }

    /// The manifest's sha256 of the file, if it is a listed model (Ollama's digest is of
    /// its own manifest; Hearth has none per model, and hashing every file on a listing
    /// would read gigabytes).
    fn digest(&self) -> String {
        let file = self.model.path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        manifest().find_by_file(file).map_or_else(String::new, |m| m.sha256.clone())
    }

    fn modified_at(&self) -> String {
        let modified = std::fs::metadata(&self.model.path).and_then(|m| m.modified()).ok();
        rfc3339(modified.unwrap_or(std::time::SystemTime::UNIX_EPOCH))
    }

    /// `completion`, and `tools` when its chat template shows tools in a format Hearth
    /// reads; `embedding` for an embedding model.
    fn capabilities(&self) -> Vec<&'static str> {
        if self.model.role == "embedding" {
            return vec!["embedding"];
        }
        let template = self.gguf.as_ref().and_then(|g| g.chat_template.as_deref());
        let mut capabilities = vec!["completion"];
        if template.is_some_and(|t| ToolFormat::detect(t).is_ok()) {
            capabilities.push("tools");
        }
        capabilities
    }

    fn listed(&self) -> Value {
        json!({
            "name": self.name(),
            "model": self.name(),
            "modified_at": self.modified_at(),
            "size": self.model.bytes,
            "digest": self.digest(),
            "details": self.details(),
        })
    }
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct TagsBody {
    models: Vec<TagBody>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct TagBody {
    /// `name:latest`.
    name: String,
    model: String,
    /// RFC 3339.
    modified_at: String,
    size: u64,
    /// The file's sha256 where the manifest knows it, else empty.
    digest: String,
    /// `format`, `family`, `parameter_size`, `quantization_level`...
    details: serde_json::Map<String, serde_json::Value>,
}

/// `GET /api/tags`: the installed models, the configured one first.
#[utoipa::path(get, path = "/api/tags", tag = "ollama",
    responses((status = 200, description = "The installed models (`models`)", body = inline(TagsBody))))]
pub async fn tags(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    let models: Vec<Value> = described(&state).await.iter().map(Described::listed).collect();
    HttpResponse::Ok().json(json!({ "models": models }))
}

/// The installed model a request names (the configured one for none or an alias).
async fn find(state: &AppState, name: Option<&str>) -> Result<Described, OllamaError> {
    let id = match model_id(name) {
        Some(id) if !ALIASES.contains(&id.as_str()) => id,
        _ => state.models.default_id(),
    };
    described(state).await.into_iter().find(|d| d.model.id == id).ok_or_else(|| {
        OllamaError(ApiError::new(
            ErrorCode::ModelNotFound,
            format!("model '{}' not found: it is not installed on this Hearth", name.unwrap_or(&id)),
        ))
    })
}

#[derive(Debug, Deserialize)]
struct NamedRequest {
    #[serde(default)]
    model: Option<String>,
    /// The older spelling of `model`.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(flatten)]
    unknown: Unknown,
}

impl NamedRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref().or(self.name.as_deref())
    }
}

/// `/api/show`'s and `/api/pull`'s request, for the OpenAPI document (`NamedRequest`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct NamedBody {
    model: Option<String>,
    /// The older name of `model`.
    name: Option<String>,
    stream: Option<bool>,
    verbose: Option<bool>,
    insecure: Option<bool>,
}

/// `POST /api/show`: a model's details, GGUF facts, chat template and capabilities.
#[utoipa::path(post, path = "/api/show", tag = "ollama", request_body = NamedBody,
    description = "A model's details: `{\"model\"}` (or `name`).",
    responses((status = 200, description = "What the model file says", body = crate::http::openapi::Object),
        (status = 400, description = "`invalid_request` or `unsupported_parameter`"),
        (status = 404, description = "`model_not_found`")))]
pub async fn show(
    state: web::Data<AppState>,
    _caller: Caller,
    body: web::Json<Value>,
) -> Result<HttpResponse, OllamaError> {
    let request: NamedRequest = parse(body.into_inner())?;
    // `verbose` adds the tokenizer's arrays in Ollama; the answer here is the same either way.
    reject_unknown(&request.unknown, "", &[], &["verbose"])?;
    if request.stream.is_some() {
        return Err(ApiError::invalid("stream has no place in /api/show").into());
    }
    let found = find(&state, request.model()).await?;
    let mut info = serde_json::Map::new();
    if let Some(g) = &found.gguf {
        let arch = &g.architecture;
        info.insert("general.architecture".into(), arch.clone().into());
        info.insert("general.parameter_count".into(), g.parameters.into());
        if let Some(name) = &g.name {
            info.insert("general.name".into(), name.clone().into());
        }
        if let Some(t) = g.file_type {
            info.insert("general.file_type".into(), t.into());
        }
        if let Some(n) = g.context_length {
            info.insert(format!("{arch}.context_length"), n.into());
        }
        if let Some(n) = g.block_count {
            info.insert(format!("{arch}.block_count"), n.into());
        }
    }
    let file = found.model.path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
    let license = manifest().find_by_file(file).map_or_else(String::new, |m| m.license.clone());
    let m = &state.settings.model;
    let parameters = format!("temperature {}\ntop_p {}\ntop_k {}", m.temperature, m.top_p, m.top_k);
    Ok(HttpResponse::Ok().json(json!({
        "license": license,
        "modelfile": "",
        "parameters": parameters,
        "template": found.gguf.as_ref().and_then(|g| g.chat_template.clone()).unwrap_or_default(),
        "details": found.details(),
        "model_info": info,
        "capabilities": found.capabilities(),
        "modified_at": found.modified_at(),
    })))
}

/// `GET /api/ps`: the loaded models. `size_vram` is 0 (Hearth runs on the CPU);
/// `expires_at` is left out: the configured model stays, others go after
/// `model.idle_unload_secs` without use.
#[utoipa::path(get, path = "/api/ps", tag = "ollama",
    responses((status = 200, description = "The loaded models (`models`)", body = crate::http::openapi::Object)))]
pub async fn ps(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    let described = described(&state).await;
    let models: Vec<Value> = state
        .models
        .states()
        .into_iter()
        .filter_map(|(_, state)| match state {
            ModelState::Ready(info) => Some(info),
            _ => None,
        })
        .filter_map(|info| {
            let d = described.iter().find(|d| d.model.id == info.id)?;
            let mut entry = d.listed();
            entry["size"] = info.file_size.into();
            entry["size_vram"] = 0.into();
            entry["context_length"] = info.context_size.into();
            Some(entry)
        })
        .collect();
    HttpResponse::Ok().json(json!({ "models": models }))
}

/// `POST /api/pull`: success for an installed model; Hearth never downloads from Ollama's
/// library.
#[utoipa::path(post, path = "/api/pull", tag = "ollama", request_body = NamedBody,
    description = "Downloads a model of the manifest: `{\"model\", \"stream\"?}`; streamed progress as NDJSON.",
    responses((status = 200, description = "Progress", content((crate::http::openapi::Object = "application/json"), (String = "application/x-ndjson"))),
        (status = 400, description = "`invalid_request` or `unsupported_parameter`"),
        (status = 404, description = "`unknown_model`"),
        (status = 409, description = "`pull_in_progress`"),
        (status = 503, description = "`fetcher_unavailable`")))]
pub async fn pull(
    state: web::Data<AppState>,
    _caller: Caller,
    body: web::Json<Value>,
) -> Result<HttpResponse, OllamaError> {
    let request: NamedRequest = parse(body.into_inner())?;
    reject_unknown(&request.unknown, "", &[("insecure", json!(false))], LABELS)?;
    let Some(name) = request.model() else {
        return Err(ApiError::invalid("model is required").into());
    };
    find(&state, Some(name)).await.map_err(|_| {
        OllamaError(ApiError::new(
            ErrorCode::ModelNotFound,
            format!(
                "model '{name}' is not installed, and Hearth does not download from the Ollama library: \
                 install a model from Hearth's list with `hearth models pull <name>` or the admin page"
            ),
        ))
    })?;
    let success = json!({ "status": "success" });
    if request.stream.unwrap_or(true) {
        let mut line = serde_json::to_vec(&success).unwrap_or_default();
        line.push(b'\n');
        return Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/x-ndjson"))
            .body(line));
    }
    Ok(HttpResponse::Ok().json(success))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sizes_read_as_ollama_writes_them() {
        assert_eq!(parameter_size(494_032_768), "494.03M");
        assert_eq!(parameter_size(1_543_714_304), "1.5B");
        assert_eq!(parameter_size(7_000_000_000), "7B");
        assert_eq!(parameter_size(22_000_000), "22M");
        assert_eq!(parameter_size(135_000), "135K");
    }
}
