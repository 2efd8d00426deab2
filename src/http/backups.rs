//! Backups, retention and a user's conversations as a file, over HTTP: `GET` and
//! `POST /api/admin/backups`, `GET`/`PUT /api/admin/users/{id}/retention`,
//! `GET /api/conversations/export` and `POST /api/conversations/import`. The work is
//! `backup/`'s.

use super::auth::Admin;
use super::{json, AppState, Caller};
use crate::audit::{Action, Event};
use crate::backup::export::{self, Format, TransferError, MAX_IMPORT_BYTES};
use crate::error::ApiError;
use crate::store::Retention;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct BackupStarted {
    running: serde_json::Value,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct RetentionBody {
    user_id: i64,
    own: Retention,
    /// The box's settings (`[retention]`).
    #[schema(rename = "box")]
    r#box: serde_json::Map<String, serde_json::Value>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct RetentionRun {
    deleted: Vec<crate::store::RetentionDeleted>,
}

/// `GET /api/admin/backups`: the archives (newest first), the one under way, the last result.
#[utoipa::path(get, path = "/api/admin/backups", tag = "admin", extensions(("x-hearth-role" = json!("admin"))),
    responses((status = 200, description = "The backups made and the running one", body = crate::http::openapi::Object)))]
pub async fn list(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let backups = state.backups.clone();
    let status =
        web::block(move || backups.status()).await.map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(json(&status))
}

/// `POST /api/admin/backups`: starts one; 202 at once (`GET` says when it is done), 409
/// `backup_in_progress` while another runs.
#[utoipa::path(post, path = "/api/admin/backups", tag = "admin", extensions(("x-hearth-role" = json!("admin"))),
    responses((status = 202, description = "A backup started", body = inline(BackupStarted)),
        (status = 409, description = "`backup_in_progress`")))]
pub async fn start(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, ApiError> {
    let running = state.backups.start("api")?;
    let event = Event::new(&admin.0.actor(), Action::Backup).detail(serde_json::json!({"state": "started"}));
    crate::audit::record(&state.store, event).await?;
    tracing::info!(by = %admin.0.user.name, "backup started");
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "running": running })))
}

/// `GET /api/admin/users/{id}/retention`: the user's own days (`null`: the box's) and the box's.
#[utoipa::path(get, path = "/api/admin/users/{id}/retention", tag = "admin", extensions(("x-hearth-role" = json!("admin"))), params(("id" = i64, Path)),
    responses((status = 200, description = "The user's own retention and the box's", body = inline(RetentionBody)),
        (status = 404, description = "`not_found`: no such user")))]
pub async fn retention_of(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let own = state.store.run(move |store| store.user_retention(id)).await?;
    Ok(json(&retention_body(&state, id, own)))
}

/// `PUT /api/admin/users/{id}/retention` `{"conversations_days": 30, "documents_days": null}`:
/// days after which the user's conversations (not continued) and documents (added) are
/// deleted by the daily retention; 0 keeps them, `null` follows `[retention]`.
#[utoipa::path(put, path = "/api/admin/users/{id}/retention", tag = "admin", extensions(("x-hearth-role" = json!("admin"))), params(("id" = i64, Path)), request_body = Retention,
    responses((status = 200, description = "The user's own retention and the box's", body = inline(RetentionBody)),
        (status = 404, description = "`not_found`: no such user")))]
pub async fn set_retention(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: web::Json<Retention>,
) -> Result<HttpResponse, ApiError> {
    let (id, own) = (id.into_inner(), body.into_inner());
    state.store.run(move |store| store.set_user_retention(id, own)).await?;
    let event = Event::new(&admin.0.actor(), Action::ConfigChanged)
        .target(format!("user:{id}"))
        .detail(serde_json::json!({"retention": {"conversations_days": own.conversations_days, "documents_days": own.documents_days}}));
    crate::audit::record(&state.store, event).await?;
    tracing::info!(by = %admin.0.user.name, user_id = id, ?own, "retention set for a user");
    Ok(json(&retention_body(&state, id, own)))
}

/// `POST /api/admin/retention`: runs a retention pass now (it also runs daily) and answers
/// what it deleted, per user.
#[utoipa::path(post, path = "/api/admin/retention", tag = "admin", extensions(("x-hearth-role" = json!("admin"))),
    description = "Deletes what the retention settings say is too old, now.",
    responses((status = 200, description = "What was deleted, per user", body = inline(RetentionRun))))]
pub async fn run_retention(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, ApiError> {
    let settings = state.settings.retention.clone();
    let by = admin.0.actor();
    let deleted = state.store.run(move |store| crate::backup::retention::run(store, &settings, &by)).await?;
    if !deleted.is_empty() {
        state.models.forget_cached().await;
    }
    tracing::info!(by = %admin.0.user.name, users = deleted.len(), "retention run by hand");
    Ok(json(&serde_json::json!({ "deleted": deleted })))
}

fn retention_body(state: &AppState, id: i64, own: Retention) -> serde_json::Value {
    serde_json::json!({ "user_id": id, "own": own, "box": state.settings.retention })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/conversations/export?format=json|markdown`: the caller's conversations as a file.
#[utoipa::path(get, path = "/api/conversations/export", tag = "conversations", params(ExportQuery),
    description = "The caller's conversations as a file (`format`: `json`, the default, or `markdown`).",
    responses((status = 200, description = "The file", content(("application/json"), ("text/markdown"))),
        (status = 400, description = "`invalid_request`: an unknown format")))]
pub async fn export(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = query.format.as_deref().unwrap_or("json");
    let format = Format::parse(name)
        .ok_or_else(|| ApiError::invalid(format!("format must be json or markdown, not '{name}'")))?;
    let (user_id, user) = (caller.user.id, caller.user.name.clone());
    let store = state.store.clone();
    let by = caller.actor();
    let bytes = web::block(move || export::export(&store, user_id, &user, format, &by))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let file = format!("hearth-conversations-{}.{}", caller.user.name, format.extension());
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{file}\"")))
        .body(bytes))
}

/// `POST /api/conversations/import` with a JSON export: its conversations join the caller's;
/// the same file again adds nothing. Over 32 MiB: 413 `payload_too_large`; not an export:
/// 400 `invalid_import`.
#[utoipa::path(post, path = "/api/conversations/import", tag = "conversations",
    description = "Imports conversations from an export (`GET /api/conversations/export?format=json`, this box's or another's).",
    request_body(content = crate::http::openapi::Object, description = "An export file (JSON)", content_type = "application/json"),
    responses((status = 200, description = "What was imported", body = crate::http::openapi::Object),
        (status = 400, description = "`invalid_import`: not an export this box can read; `invalid_request`: the body could not be read"),
        (status = 413, description = "`payload_too_large`: over 32 MiB")))]
pub async fn import(
    state: web::Data<AppState>,
    caller: Caller,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > MAX_IMPORT_BYTES {
            return Err(TransferError::TooLarge.into());
        }
        body.extend_from_slice(&chunk);
    }
    let (user_id, store) = (caller.user.id, state.store.clone());
    let by = caller.actor();
    let done = web::block(move || export::import(&store, user_id, &body, &by))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(json(&done))
}
