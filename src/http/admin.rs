//! Account administration from the web UI: users (administrators only), API tokens
//! (everyone manages their own; administrators may see and revoke all) and live
//! system figures for the admin page.

use super::auth::{admin_address_allowed, Admin};
use super::{json, AppState, Caller};
use crate::audit::{Action, Event};
use crate::auth::generate_token;
use crate::auth::password::{check_new_password, hash_password};
use crate::auth::revocation::Revoked;
use crate::auth::scopes::{Scope, TokenGrant};
use crate::error::{ApiError, ErrorCode};
use crate::store::Role;
use crate::telemetry::Sample;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    password: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TokenFilter {
    #[serde(default)]
    all: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    label: String,
    /// `chat`, `documents`, `voice`, `admin`; absent: all of them.
    #[serde(default)]
    scopes: Vec<String>,
    /// Days until it stops working; absent: until revoked.
    #[serde(default)]
    expires_in_days: Option<u32>,
    /// Its own request limit per minute, below its user's; absent: only the user's.
    #[serde(default)]
    requests_per_minute: Option<u32>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UserList {
    users: Vec<crate::store::Account>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct CreatedUser {
    user: crate::store::User,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PasswordSet {
    ok: bool,
    tokens_revoked: usize,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct DisabledSet {
    ok: bool,
    disabled: bool,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct TokenList {
    tokens: Vec<crate::store::TokenInfo>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct CreatedToken {
    id: i64,
    label: String,
    prefix: String,
    /// The secret: shown this once.
    token: String,
    scopes: Vec<String>,
    expires_at: Option<i64>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct SystemBody {
    /// The latest sample: CPU, memory, swap, disk, temperatures, throttling.
    system: serde_json::Map<String, serde_json::Value>,
    /// Earlier samples (`at_ms`, `cpu_percent`, `memory_available_bytes`, ...).
    history: Vec<serde_json::Map<String, serde_json::Value>>,
    interval_seconds: f64,
    engine: serde_json::Map<String, serde_json::Value>,
    governor: serde_json::Value,
    uptime_seconds: u64,
}

/// `GET /api/users`
#[utoipa::path(get, path = "/api/users", tag = "admin", extensions(("x-hearth-role" = json!("admin"))),
    responses((status = 200, description = "Every account", body = inline(UserList))))]
pub async fn list_users(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let users = state.store.run(|store| store.list_accounts()).await?;
    Ok(json(&json!({ "users": users })))
}

/// `POST /api/users`: a user who logs in with a password.
#[utoipa::path(post, path = "/api/users", tag = "admin", extensions(("x-hearth-role" = json!("admin"))), request_body = NewUser,
    responses((status = 201, description = "Created", body = inline(CreatedUser)),
        (status = 400, description = "`invalid_request`: a weak password, a bad or taken name")))]
pub async fn create_user(
    state: web::Data<AppState>,
    admin: Admin,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let NewUser { name, password, admin: make_admin } = body.into_inner();
    check_new_password(&password).map_err(ApiError::invalid)?;
    let role = if make_admin { Role::Admin } else { Role::User };
    let by = admin.0.actor();
    let user = state
        .store
        .run(move |store| store.create_account(&name, role, &hash_password(&password), &by))
        .await?;
    tracing::info!(by = %admin.0.user.name, user = %user.name, role = role.as_str(), "user created");
    Ok(HttpResponse::Created().json(json!({ "user": user })))
}

/// `PUT /api/users/{id}/password`: sets any user's password (e.g. one made with the
/// CLI, who has none yet); that user's sessions end.
#[utoipa::path(put, path = "/api/users/{id}/password", tag = "admin", extensions(("x-hearth-role" = json!("admin"))), params(("id" = i64, Path)), request_body = NewPassword,
    description = "Sets a user's password; their sessions end and, for another user, their tokens are revoked.",
    responses((status = 200, description = "Set", body = inline(PasswordSet)),
        (status = 400, description = "`invalid_request`: a weak password"),
        (status = 404, description = "`not_found`: no such user")))]
pub async fn set_password(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: web::Json<NewPassword>,
) -> Result<HttpResponse, ApiError> {
    let password = body.into_inner().password;
    check_new_password(&password).map_err(ApiError::invalid)?;
    let id = id.into_inner();
    // Resetting another user's password is what an administrator does when the account
    // may be in other hands: its sessions and its API tokens (which such hands could have
    // made) all end. Giving an account its first password, or one's own, ends sessions only.
    let own = id == admin.0.user.id;
    let by = admin.0.actor();
    let tokens = state
        .store
        .run(move |store| {
            let had = store.set_password(id, &hash_password(&password), &by)?;
            if had && !own {
                store.revoke_tokens_of(id, &by)
            } else {
                Ok(Vec::new())
            }
        })
        .await?;
    state.revocations.revoke(Revoked::SessionsOf(id));
    for token in &tokens {
        state.revocations.revoke(Revoked::Token(*token));
    }
    tracing::info!(by = %admin.0.user.name, user_id = id, tokens_revoked = tokens.len(), "password reset by an administrator");
    Ok(json(&json!({ "ok": true, "tokens_revoked": tokens.len() })))
}

/// `POST /api/users/{id}/disable`: a disabled account's credentials are refused at once
/// (live connections too); its data stays. (`disable` and `enable` are two handlers only
/// because an OpenAPI annotation describes one path; both are [`set_disabled`].)
#[utoipa::path(post, path = "/api/users/{id}/disable", tag = "admin", extensions(("x-hearth-role" = json!("admin"))), params(("id" = i64, Path)),
    responses((status = 200, description = "Disabled", body = inline(DisabledSet)),
        (status = 400, description = "`invalid_request`: your own account"),
        (status = 404, description = "`not_found`: no such user")))]
pub async fn disable(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    set_disabled(req, state, admin, id).await
}

/// `POST /api/users/{id}/enable`.
#[utoipa::path(post, path = "/api/users/{id}/enable", tag = "admin", extensions(("x-hearth-role" = json!("admin"))), params(("id" = i64, Path)),
    responses((status = 200, description = "Enabled", body = inline(DisabledSet)),
        (status = 400, description = "`invalid_request`: your own account"),
        (status = 404, description = "`not_found`: no such user")))]
pub async fn enable(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    set_disabled(req, state, admin, id).await
}

async fn set_disabled(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, disabled) = (id.into_inner(), req.path().ends_with("/disable"));
    if id == admin.0.user.id {
        return Err(ApiError::invalid("you cannot disable your own account"));
    }
    let by = admin.0.actor();
    state.store.run(move |store| store.set_disabled(id, disabled, &by)).await?;
    if disabled {
        state.revocations.revoke(Revoked::User(id));
    }
    tracing::info!(by = %admin.0.user.name, user_id = id, disabled, "account disabled or enabled");
    Ok(json(&json!({ "ok": true, "disabled": disabled })))
}

/// `DELETE /api/users/{id}`: the account and everything it owns (conversations,
/// documents, tokens, its entries in the search index and its cached keys and values).
#[utoipa::path(delete, path = "/api/users/{id}", tag = "admin", extensions(("x-hearth-role" = json!("admin"))), params(("id" = i64, Path)),
    description = "Deletes a user with all their data.",
    responses((status = 200, description = "Deleted", body = crate::http::openapi::Done),
        (status = 400, description = "`invalid_request`: your own account"),
        (status = 404, description = "`not_found`: no such user")))]
pub async fn delete_user(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if id == admin.0.user.id {
        return Err(ApiError::invalid("you cannot delete your own account"));
    }
    let by = admin.0.actor();
    state.store.run(move |store| store.delete_user(id, &by)).await?;
    state.revocations.revoke(Revoked::User(id));
    // Idle conversations' keys and values leave RAM and disk (everyone's: cheap to redo).
    state.models.forget_cached().await;
    tracing::info!(by = %admin.0.user.name, user_id = id, "account deleted with its data");
    Ok(json(&json!({ "ok": true })))
}

/// `GET /api/tokens[?all=true]`: the caller's tokens; every user's for an admin asking for
/// all (from an address `server.admin_allow` lets in; recorded as an `admin_read`).
#[utoipa::path(get, path = "/api/tokens", tag = "tokens", params(TokenFilter),
    description = "The caller's tokens; an administrator's `all=true`: every user's (recorded in the audit log).",
    responses((status = 200, description = "Tokens (never their secrets)", body = inline(TokenList)),
        (status = 403, description = "`admin_address_refused`: `all=true` from an address `server.admin_allow` does not let in")))]
pub async fn list_tokens(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    filter: web::Query<TokenFilter>,
) -> Result<HttpResponse, ApiError> {
    let all = filter.all && caller.user.role == Role::Admin;
    if all {
        admin_address_allowed(&state, &caller, req.method().as_str(), req.path()).await?;
        let event = Event::new(&caller.actor(), Action::AdminRead).target("tokens of every user");
        crate::audit::record(&state.store, event).await?;
    }
    let owner = (!all).then(|| caller.user.name.clone());
    let tokens = state.store.run(move |store| store.list_tokens(owner.as_deref())).await?;
    Ok(json(&json!({ "tokens": tokens })))
}

/// `POST /api/tokens`: a new token for the caller; the secret is in this answer only.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = NewToken,
    description = "A new API token for the caller; its secret is shown once.",
    responses((status = 201, description = "The token, with its secret", body = inline(CreatedToken)),
        (status = 400, description = "`invalid_request`: a label outside 1-64 characters, an unknown scope, a bad expiry"),
        (status = 403, description = "`insufficient_scope`: scopes the caller's credential lacks")))]
pub async fn create_token(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<NewToken>,
) -> Result<HttpResponse, ApiError> {
    let NewToken { label, scopes, expires_in_days, requests_per_minute } = body.into_inner();
    let label = label.trim().to_string();
    if label.is_empty() || label.chars().count() > 64 {
        return Err(ApiError::invalid("label must have 1-64 characters"));
    }
    let grant = TokenGrant::new(&scopes, expires_in_days)
        .and_then(|g| g.with_requests_per_minute(requests_per_minute))
        .map_err(ApiError::invalid)?;
    // A token can do no more than the credential that makes it.
    if Scope::ALL.iter().any(|s| grant.scopes.has(*s) && !caller.scopes.has(*s)) {
        return Err(ApiError::new(
            ErrorCode::InsufficientScope,
            "a token cannot grant scopes it does not have",
        ));
    }
    let token = generate_token();
    let (user_id, prefix, hash) = (caller.user.id, token.prefix.clone(), token.hash);
    let stored_label = label.clone();
    let by = caller.actor();
    let id = state
        .store
        .run(move |store| store.insert_token_with(user_id, &stored_label, &prefix, &hash, grant, &by))
        .await?;
    tracing::info!(user = %caller.user.name, prefix = %token.prefix, scopes = ?grant.scopes, "token created");
    Ok(HttpResponse::Created().json(json!({
        "id": id, "label": label, "prefix": token.prefix, "token": token.secret,
        "scopes": grant.scopes.names(), "expires_at": grant.expires_at,
        "requests_per_minute": grant.requests_per_minute,
    })))
}

/// `DELETE /api/tokens/{id}`: revokes one of the caller's tokens (any token, for an admin
/// from an address `server.admin_allow` lets in; elsewhere an admin is as any user).
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    description = "Revokes one of the caller's tokens (an administrator: anyone's).",
    responses((status = 200, description = "Revoked", body = crate::http::openapi::Done),
        (status = 404, description = "`not_found`: no such token of the caller's")))]
pub async fn revoke_token(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let admin = caller.user.role == Role::Admin && admin_address_ok(&state, &caller);
    let owner = (!admin).then_some(caller.user.id);
    let by = caller.actor();
    state.store.run(move |store| store.revoke_token_id(id, owner, &by)).await?;
    state.revocations.revoke(Revoked::Token(id));
    tracing::info!(by = %caller.user.name, token_id = id, "token revoked");
    Ok(json(&json!({ "ok": true })))
}

/// Whether `server.admin_allow` lets the caller's address in (no refusal recorded).
fn admin_address_ok(state: &AppState, caller: &Caller) -> bool {
    crate::auth::allowlist::parse_all(&state.settings.server.admin_allow)
        .is_ok_and(|list| crate::auth::allowlist::allows(&list, caller.address))
}

/// `GET /api/system`: the sampler's latest figures and its recent history (oldest first),
/// with the engine's, for the admin page.
#[utoipa::path(get, path = "/api/system", tag = "admin", extensions(("x-hearth-role" = json!("admin"))),
    responses((status = 200, description = "The machine's figures, their history, the engine's and the governor's state", body = inline(SystemBody))))]
pub async fn system(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let m = &state.metrics;
    let latest = state.sampler.latest();
    let history: Vec<_> = state.sampler.history().iter().map(|s| history_point(s)).collect();
    Ok(json(&json!({
        "system": current(&latest),
        "history": history,
        "interval_seconds": state.sampler.interval().as_secs_f64(),
        "engine": {
            "tokens_per_second": m.generation_tokens_per_second.get(),
            "tokens_generated": m.tokens_generated.get(),
            "queue_depth": m.queue_depth.get(),
            "active_sequences": m.active_sequences.get(),
        },
        "governor": state.models.governor().status(),
        "uptime_seconds": state.started.elapsed().as_secs(),
    })))
}

/// The latest sample in full, with the figures the admin page shows at a glance.
fn current(s: &Sample) -> serde_json::Value {
    json!({
        "at_ms": s.at_ms,
        "cpu_percent": f64::from(s.cpu_mean()) * 100.0,
        "cpu_usage": s.cpu_usage,
        "cpus": s.cpu_usage.len(),
        "load_average": s.load_average,
        "memory_total_bytes": s.memory_total_bytes,
        "memory_available_bytes": s.memory_available_bytes,
        "memory_used_bytes": s.memory_total_bytes.saturating_sub(s.memory_available_bytes),
        "swap_total_bytes": s.swap_total_bytes,
        "swap_used_bytes": s.swap_used_bytes,
        "disk_total_bytes": s.disk_total_bytes,
        "disk_available_bytes": s.disk_available_bytes,
        "temperatures": s.temperatures,
        "temperature_celsius": s.hottest(),
        "throttling": s.throttling,
        "process_resident_bytes": s.process_resident_bytes,
        "memory_limit_bytes": s.memory_limit_bytes,
        "generation_cpu_cores": s.generation_cpu,
        "boot_uptime_seconds": sysinfo::System::uptime(),
    })
}

/// One point of the sparklines: small, since the page asks every few seconds.
fn history_point(s: &Sample) -> serde_json::Value {
    json!({
        "at_ms": s.at_ms,
        "cpu_percent": f64::from(s.cpu_mean()) * 100.0,
        "memory_available_bytes": s.memory_available_bytes,
        "temperature_celsius": s.hottest(),
        "process_resident_bytes": s.process_resident_bytes,
    })
}
