//! Workflows over HTTP (transport only; the domain is `workflows/`):
//! `GET /api/workflows` (those the caller may see: an admin all of them, a user their own,
//! each with its last run and the input keys its steps read; the folder they are read from;
//! admins also get the files' errors), `POST /api/workflows/{name}/run` (run now: 202 with
//! the run's id; body optional: `{"input": {...}}`), `PATCH /api/workflows/{name}`
//! (`{"enabled": bool}`), `GET /api/workflows/{name}/runs`, `GET /api/workflow-runs/{id}`.
//! A workflow's owner and admins may run it, turn it on or off and read its runs.
//!
//! `POST /api/hooks/{name}`: an inbound webhook, authenticated by its signature
//! (`channels/hooks.rs`), not by a token.

use super::auth::Admin;
use super::{json, AppState, Caller};
use crate::audit::{Action, Event};
use crate::channels::hooks::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::error::{ApiError, ErrorCode};
use crate::store::{Role, RunFilter};
use crate::workflows::{Loaded, WorkflowError};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json as object;

impl From<WorkflowError> for ApiError {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::NotFound(_) => ApiError::new(ErrorCode::WorkflowNotFound, e.to_string()),
            WorkflowError::Unavailable(_) => ApiError::new(ErrorCode::ModelNotReady, e.to_string()),
            WorkflowError::Store(e) => e.into(),
        }
    }
}

fn may_use(caller: &Caller, loaded: &Loaded) -> bool {
    caller.user.role == Role::Admin || caller.user.id == loaded.owner_id
}

/// The workflow, if the caller may use it; others' are as missing as unknown ones.
fn visible(state: &AppState, caller: &Caller, name: &str) -> Result<Loaded, ApiError> {
    state
        .workflows
        .get(name)
        .filter(|l| may_use(caller, l))
        .ok_or_else(|| ApiError::new(ErrorCode::WorkflowNotFound, format!("no workflow is named '{name}'")))
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct WorkflowList {
    workflows: Vec<serde_json::Map<String, serde_json::Value>>,
    dir: String,
    /// Administrators only: the files that did not load, and why.
    errors: Option<serde_json::Value>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct RunStarted {
    run_id: i64,
    state: String,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct RunList {
    runs: Vec<serde_json::Map<String, serde_json::Value>>,
}

#[utoipa::path(get, path = "/api/workflows", tag = "workflows",
    responses((status = 200, description = "The workflows the caller may use (an administrator: all, and the files' errors)", body = inline(WorkflowList))))]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let workflows = state.workflows.clone();
    let mine: Vec<Loaded> = workflows.all().into_iter().filter(|l| may_use(&caller, l)).collect();
    let listed = state
        .store
        .run(move |_| mine.iter().map(|l| workflows.listed(l)).collect::<Result<Vec<_>, _>>())
        .await?;
    let mut body = object!({ "workflows": listed, "dir": state.workflows.dir().display().to_string() });
    if caller.user.role == Role::Admin {
        body["errors"] = object!(state.workflows.errors());
    }
    Ok(json(&body))
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunNow {
    #[serde(default)]
    input: Option<serde_json::Value>,
}

#[utoipa::path(post, path = "/api/workflows/{name}/run", tag = "workflows", params(("name" = String, Path)),
    request_body(content = Option<RunNow>, description = "Optional: the run's input"),
    responses((status = 202, description = "Started", body = inline(RunStarted)),
        (status = 400, description = "`invalid_request`: input is not an object"),
        (status = 404, description = "`workflow_not_found`"),
        (status = 503, description = "`model_not_ready`: what the workflow needs is not available")))]
pub async fn run(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: Option<web::Json<RunNow>>,
) -> Result<HttpResponse, ApiError> {
    let loaded = visible(&state, &caller, &name)?;
    let input = body.and_then(|b| b.into_inner().input).unwrap_or_else(|| object!({}));
    if !input.is_object() {
        return Err(ApiError::invalid("input must be a JSON object"));
    }
    let (id, _) = state.workflows.start(&loaded.workflow.name, "manual", input).await?;
    Ok(HttpResponse::Accepted().json(object!({ "run_id": id, "state": "running" })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    enabled: bool,
}

#[utoipa::path(patch, path = "/api/workflows/{name}", tag = "workflows", params(("name" = String, Path)), request_body = Change,
    responses((status = 200, description = "The workflow", body = crate::http::openapi::Object),
        (status = 404, description = "`workflow_not_found`")))]
pub async fn change(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    change: web::Json<Change>,
) -> Result<HttpResponse, ApiError> {
    let loaded = visible(&state, &caller, &name)?;
    let (workflows, enabled) = (state.workflows.clone(), change.enabled);
    let event = Event::new(&caller.actor(), Action::ConfigChanged)
        .target(format!("workflow:{} (user:{})", loaded.workflow.name, loaded.owner_id))
        .detail(object!({ "enabled": enabled }));
    let listed = state
        .store
        .run(move |_| {
            workflows.set_enabled(&loaded.workflow.name, enabled).map_err(|e| match e {
                WorkflowError::Store(e) => e,
                other => crate::store::StoreError::NotFound(other.to_string()),
            })?;
            workflows.listed(&loaded)
        })
        .await?;
    crate::audit::record(&state.store, event).await?;
    Ok(json(&listed))
}

/// `POST /api/workflows/reload` (administrators): reads the workflow files again.
/// Recorded in the audit log.
#[utoipa::path(post, path = "/api/workflows/reload", tag = "workflows", extensions(("x-hearth-role" = json!("admin"))),
    description = "Reads the workflow files again.",
    responses((status = 200, description = "What was loaded, and the files' errors", body = crate::http::openapi::Object)))]
pub async fn reload(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, ApiError> {
    let workflows = state.workflows.clone();
    let reloaded = state.store.run(move |_| workflows.reload()).await?;
    let event = Event::new(&admin.0.actor(), Action::WorkflowsReloaded).target("workflows");
    crate::audit::record(&state.store, event).await?;
    Ok(json(&reloaded))
}

#[utoipa::path(get, path = "/api/workflows/{name}/runs", tag = "workflows", params(("name" = String, Path)),
    responses((status = 200, description = "The workflow's newest 50 runs", body = inline(RunList)),
        (status = 404, description = "`workflow_not_found`")))]
pub async fn runs(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let loaded = visible(&state, &caller, &name)?;
    if loaded.owner_id != caller.user.id {
        let what = format!("workflow runs of {} (user:{})", loaded.workflow.name, loaded.owner_id);
        read_by_admin(&state, &caller, what).await?;
    }
    let filter = RunFilter { workflow: Some(loaded.workflow.name.clone()), limit: 50 };
    let runs = state.store.run(move |s| s.workflow_runs(&filter)).await?;
    Ok(json(&object!({ "runs": runs })))
}

#[utoipa::path(get, path = "/api/workflow-runs/{id}", tag = "workflows", params(("id" = i64, Path)),
    responses((status = 200, description = "The run and its steps", body = crate::http::openapi::Object),
        (status = 404, description = "`workflow_run_not_found`")))]
pub async fn run_record(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let not_found = || ApiError::new(ErrorCode::WorkflowRunNotFound, format!("no workflow run {id}"));
    let run = state.store.run(move |s| s.workflow_run(id)).await.map_err(|_| not_found())?;
    if caller.user.role != Role::Admin && caller.user.id != run.user_id {
        return Err(not_found());
    }
    if caller.user.id != run.user_id {
        read_by_admin(&state, &caller, format!("workflow run {id} (user:{})", run.user_id)).await?;
    }
    Ok(json(&run))
}

/// An administrator reads another user's data: recorded (`admin_read`) before it is
/// answered, so a read is never unrecorded.
async fn read_by_admin(state: &AppState, caller: &Caller, what: String) -> Result<(), ApiError> {
    let event = Event::new(&caller.actor(), Action::AdminRead).target(what);
    crate::audit::record(&state.store, event).await?;
    Ok(())
}

/// `POST /api/hooks/{name}`: no token; the signature is checked before anything runs.
#[utoipa::path(post, path = "/api/hooks/{name}", tag = "workflows",
    description = "An inbound webhook (`[[hooks]]`): no token, signed with HMAC-SHA256 (`X-Hearth-Signature` over `X-Hearth-Timestamp` and the body).",
    params(("name" = String, Path), ("X-Hearth-Timestamp" = Option<String>, Header, description = "Unix seconds"), ("X-Hearth-Signature" = Option<String>, Header, description = "`sha256=<hex>`")),
    request_body(content = String, description = "Any body; the hook's workflow reads it", content_type = "application/octet-stream"),
    responses((status = 200, description = "Received (a duplicate, or done)", body = crate::http::openapi::Object),
        (status = 202, description = "Accepted: its workflow runs", body = crate::http::openapi::Object),
        (status = 400, description = "`bad_payload`"),
        (status = 401, description = "`invalid_signature`"),
        (status = 404, description = "`hook_not_found`"),
        (status = 413, description = "`payload_too_large`"),
        (status = 429, description = "`rate_limited`")))]
pub async fn hook(
    state: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let header = |h: &str| req.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (timestamp, signature) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
    let answer = state.hooks.receive(&name, timestamp.as_deref(), signature.as_deref(), body).await?;
    Ok(match answer.state.as_str() {
        "accepted" => HttpResponse::Accepted().json(answer),
        _ => HttpResponse::Ok().json(answer),
    })
}
