//! `GET /api/health` (no authentication: liveness and per-component readiness) and
//! `GET /metrics` (Prometheus text, authenticated).

use super::{AppState, Caller};
use crate::engine::ModelState;
use crate::models::{manifest, PullState};
use actix_web::{web, HttpResponse};
use serde_json::json;

/// `GET /api/health`'s body (the locked server's lacks `uptime_seconds`, `encrypted` and `components`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct HealthBody {
    /// `ok`, `degraded`, or `locked` (the locked server).
    status: String,
    ready: bool,
    version: String,
    uptime_seconds: Option<u64>,
    locked: bool,
    encrypted: Option<bool>,
    /// `database`, `index`, `jobs`, `model`, `speech_to_text`, `text_to_speech`, `tls` and
    /// `models`, each with its readiness.
    components: Option<serde_json::Map<String, serde_json::Value>>,
}

#[utoipa::path(get, path = "/api/health", tag = "meta",
    description = "Liveness and readiness of each component; public. While the box is locked (encrypted, no key yet) the locked server answers `{\"status\": \"locked\", \"locked\": true, \"ready\": false, \"version\"}`.",
    responses((status = 200, description = "The box's state", body = HealthBody)))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    let database_ready = store.run(|s| s.ping()).await.is_ok();
    let pending_jobs = state.store.run(|s| s.pending_jobs()).await.ok();
    let index = match &state.knowledge.index {
        Some(index) => json!({ "ready": true, "items": index.num_docs() }),
        None => json!({ "ready": false }),
    };
    let mut model = match state.models.default_engine().state() {
        ModelState::Loading { .. } => json!({ "ready": false, "state": "loading" }),
        ModelState::Failed { error, .. } => {
            json!({ "ready": false, "state": "failed", "error": error })
        }
        ModelState::Ready(info) => json!({
            "ready": true,
            "state": "ready",
            "id": info.id,
            "context_size": info.context_size,
            "threads": info.threads,
            // The tool-call format its chat template speaks ("hermes"), or null: no tools.
            "tool_calls": info.tool_calls,
        }),
    };
    // No model at start: its download (first start, or from the admin page) is what to show.
    let pulling =
        state.models.default_missing().then(|| state.pulls.status(&manifest().default_model().name));
    match pulling.flatten() {
        Some(pull) if pull.state == PullState::Pulling => {
            model = json!({
                "ready": false, "state": "pulling", "id": pull.model, "phase": pull.phase,
                "done": pull.done, "total": pull.total,
            });
        }
        Some(pull) => model["pull"] = json!(pull),
        None => {}
    }
    let ready = database_ready && model["ready"] == true;
    HttpResponse::Ok().json(json!({
        "status": if ready { "ok" } else { "degraded" },
        "ready": ready,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        // Encryption at rest: unlocked when serving; `hearth serve` answers "locked" before.
        "locked": false,
        "encrypted": state.settings.storage.unlocked.0.is_some(),
        "components": {
            "database": { "ready": database_ready },
            "index": index,
            "jobs": { "pending": pending_jobs },
            "model": model,
            "speech_to_text": state.voice.stt.state(),
            "text_to_speech": state.voice.tts.state(),
            "tls": match &state.tls {
                Some(tls) => json!(tls.status.get()),
                None => json!({ "mode": "off" }),
            },
            "models": state.models.states().into_iter().map(|(id, s)| json!({
                "id": id,
                "state": match s {
                    ModelState::Loading { .. } => "loading",
                    ModelState::Ready(_) => "ready",
                    ModelState::Failed { .. } => "failed",
                },
            })).collect::<Vec<_>>(),
        },
    }))
}

#[utoipa::path(get, path = "/metrics", tag = "meta", extensions(("x-hearth-role" = json!("user"))),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}
