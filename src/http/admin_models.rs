//! The admin page's models: what the manifest offers and what is installed
//! (`GET /api/admin/models`), and downloads from the package registry
//! (`POST /api/admin/models/pull`), whose progress the list shows while they run.

use super::auth::Admin;
use super::{json, AppState};
use crate::error::ApiError;
use crate::models::{find_installed, manifest, models_dir, PullError};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// A manifest name (or file), or `default`.
    name: String,
}

/// Roles a running server only picks up when it starts.
const LOADED_AT_START: &[&str] = &["speech-to-text", "text-to-speech", "runtime"];

fn blocking_failed(e: actix_web::error::BlockingError) -> ApiError {
    ApiError::internal(e.to_string())
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ModelList {
    /// Each with `name`, `file`, `role`, `license`, `bytes`, `description`, `default`,
    /// `installed`, `path`, `restart_required`, `pull`.
    models: Vec<serde_json::Map<String, serde_json::Value>>,
    folder: String,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PullStarted {
    pull: serde_json::Map<String, serde_json::Value>,
}

/// `GET /api/admin/models`: every manifest model, where it is installed, and its pull.
#[utoipa::path(get, path = "/api/admin/models", tag = "admin", extensions(("x-hearth-role" = json!("admin"))),
    responses((status = 200, description = "The manifest's models, whether each is installed, and pulls", body = inline(ModelList))))]
pub async fn list(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let data_dir = state.settings.storage.data_dir.clone();
    let configured = PathBuf::from(&state.settings.model.path);
    let pulls = state.pulls.clone();
    let folder = models_dir(&data_dir);
    // File-system look-ups: on the blocking pool.
    let models = web::block(move || {
        let models = manifest().models.iter().map(|m| {
            // The configured model file counts where it is, too.
            let is_configured = configured.file_name().is_some_and(|f| *f == *m.file) && configured.is_file();
            let path = is_configured.then(|| configured.clone()).or_else(|| find_installed(m, &data_dir));
            json!({
                "name": m.name, "file": m.file, "role": m.role, "license": m.license,
                "bytes": m.bytes, "description": m.description, "default": m.default,
                "installed": path.is_some(), "path": path,
                "restart_required": LOADED_AT_START.contains(&m.role.as_str()),
                "pull": pulls.status(&m.name),
            })
        });
        models.collect::<Vec<_>>()
    })
    .await
    .map_err(blocking_failed)?;
    Ok(json(&json!({ "models": models, "folder": folder })))
}

/// `POST /api/admin/models/pull`: starts downloading a manifest model into
/// `<data_dir>/models` and answers 202 with the pull's state; poll `GET /api/admin/models`
/// for its progress. One pull per model at a time (409 `pull_in_progress`).
#[utoipa::path(post, path = "/api/admin/models/pull", tag = "admin", extensions(("x-hearth-role" = json!("admin"))), request_body = PullRequest,
    responses((status = 202, description = "The download started", body = inline(PullStarted)),
        (status = 404, description = "`unknown_model`: not in the manifest"),
        (status = 409, description = "`pull_in_progress`"),
        (status = 503, description = "`fetcher_unavailable`: no way to download on this box")))]
pub async fn pull(
    state: web::Data<AppState>,
    admin: Admin,
    body: web::Json<PullRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = body.into_inner().name;
    let entry = manifest()
        .lookup(&name)
        .ok_or_else(|| PullError::UnknownModel { name, known: manifest().names() })?
        .clone();
    let dest = models_dir(&state.settings.storage.data_dir);
    // The default model, missing at start: the server loads it once it is here.
    let adopt = entry.default && state.settings.model.path.is_empty();
    let (registry, pulls) = (state.models.clone(), state.pulls.clone());
    let status = web::block(move || {
        pulls.start(entry, dest, move |result| {
            if let (true, Ok(path)) = (adopt, result) {
                registry.adopt_default(path.clone());
            }
        })
    })
    .await
    .map_err(blocking_failed)??;
    tracing::info!(by = %admin.0.user.name, model = %status.model, "model pull started");
    Ok(HttpResponse::Accepted().json(json!({ "pull": status })))
}
