//! The web UI's account API: first-run onboarding, login, logout and the current user.
//!
//! `GET /api/onboard` and `POST /api/onboard`, `POST /api/login` are public; they
//! require the `X-Hearth-CSRF: 1` header like every state-changing browser request, so
//! another site cannot log a visitor in to an account of its choosing. Attempts are
//! counted per client address before the password is checked, failures slowed down, and
//! password checks bounded across all clients ([`Throttle`]). Passwords are never logged,
//! nor is the name a failed login typed (a password typed into the name field would end up
//! in the log): a failure logs the account's id when the name is a user's, else nothing.

use super::auth::{csrf_header_ok, csrf_rejected, Credential};
use super::{json, AppState, Caller};
use crate::audit::quiet::Quiet;
use crate::audit::{user_target, Action, Actor, Event, Outcome};
use crate::auth::password::{check_new_password, hash_password, verify_against_dummy, verify_password};
use crate::auth::revocation::Revoked;
use crate::auth::session::{
    new_session, remove_setup_code_file, session_cookie, setup_code_hash, SESSION_SECS,
};
use crate::auth::throttle::{Attempt, Throttle, FAILURE_DELAY};
use crate::error::{ApiError, ErrorCode};
use crate::store::{Onboarded, User, VOICE_LANGUAGE};
use actix_web::http::header::{CACHE_CONTROL, RETRY_AFTER, SET_COOKIE};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use tokio::sync::OwnedSemaphorePermit;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    name: String,
    password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardRequest {
    code: String,
    name: String,
    password: String,
    /// The language people will speak to the box: ISO 639-1 codes (`en`, or `en,de`
    /// to detect among those), or `auto` to detect among all. Absent: unchanged.
    #[serde(default)]
    language: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current: String,
    new: String,
}

/// The client's address as the socket saw it (forwarding headers can be forged).
fn client_ip(req: &HttpRequest) -> IpAddr {
    req.peer_addr().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

/// Someone not logged in, for the audit log.
fn anonymous(req: &HttpRequest) -> Actor {
    Actor::anonymous(req.peer_addr().map(|a| a.ip().to_string()))
}

/// Records an attempt refused before any password was checked (locked out, busy): the
/// first of an address's refusals in a minute, with how many were left out before it
/// ([`Quiet`]: refusals cost a client nothing, and each record is a synced commit). A
/// request without the CSRF header is not an attempt.
async fn record_refusal(state: &AppState, req: &HttpRequest, action: Action, refused: &HttpResponse) {
    if refused.status() != actix_web::http::StatusCode::TOO_MANY_REQUESTS {
        return;
    }
    let address = req.peer_addr().map(|a| a.ip());
    if let Some(left_out) = Quiet::refusals().record_now(address, std::time::Instant::now()) {
        let event = Event::new(&anonymous(req), action).outcome(Outcome::Refused).detail(
            json!({ "reason": ErrorCode::TooManyAttempts.code(), "refusals_not_recorded": left_out }),
        );
        crate::audit::record_or_warn(&state.store, event).await;
    }
}

/// Whether the browser reached us over TLS, so the cookie may be marked `Secure`.
fn over_tls(req: &HttpRequest) -> bool {
    req.app_config().secure() || req.connection_info().scheme() == "https"
}

/// Why an attempt is not checked.
enum Refused {
    /// A request from a browser without the CSRF header.
    Csrf,
    /// Too many failures from the address: seconds to wait.
    LockedOut(u64),
    /// The box is busy checking other passwords.
    Busy,
}

impl Refused {
    fn response(self) -> HttpResponse {
        let (message, wait_secs) = match self {
            Refused::Csrf => return csrf_rejected().error_response(),
            Refused::LockedOut(wait) => {
                (format!("too many failed attempts from this address; try again in {wait} seconds"), wait)
            }
            Refused::Busy => ("the server is busy checking other logins; try again in a second".into(), 1),
        };
        let mut response = ApiError::new(ErrorCode::TooManyAttempts, message).error_response();
        if let Ok(value) = wait_secs.to_string().parse() {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        response
    }
}

/// Counts an attempt from the client's address, unless it is locked out.
fn attempt(req: &HttpRequest) -> Result<Attempt<'static>, Refused> {
    Throttle::logins().begin(client_ip(req)).map_err(Refused::LockedOut)
}

/// Refuses requests without the CSRF header, then counts the attempt like [`attempt`].
fn precheck(req: &HttpRequest) -> Result<Attempt<'static>, Refused> {
    if !csrf_header_ok(req.headers()) {
        return Err(Refused::Csrf);
    }
    attempt(req)
}

/// A counted attempt and its turn to check a password (see [`Throttle::verifier`]), or the
/// answer refusing it. An attempt refused because others keep the box busy is not counted
/// against the client.
async fn ready_to_check(
    counted: Result<Attempt<'static>, Refused>,
) -> Result<(Attempt<'static>, OwnedSemaphorePermit), HttpResponse> {
    let attempt = counted.map_err(Refused::response)?;
    match Throttle::logins().verifier().await {
        Some(turn) => Ok((attempt, turn)),
        None => {
            attempt.refund();
            Err(Refused::Busy.response())
        }
    }
}

/// A wrong guess: it was counted when it began; it now costs the client a delay.
async fn failed(error: ApiError) -> ApiError {
    tokio::time::sleep(FAILURE_DELAY).await;
    error
}

/// Starts a session for `user` and answers with its cookie.
async fn start_session(state: &AppState, req: &HttpRequest, user: User) -> Result<HttpResponse, ApiError> {
    // Failures are not forgiven by a success: otherwise someone with an account of
    // their own could log in between guesses and never reach the limit.
    let (secret, hash) = new_session();
    let user_id = user.id;
    let by = Actor::user(user.id, &user.name, Some(client_ip(req).to_string()));
    state.store.run(move |store| store.create_session(user_id, &hash, SESSION_SECS, &by)).await?;
    tracing::info!(user = %user.name, ip = %client_ip(req), "web login");
    Ok(HttpResponse::Ok()
        .insert_header((SET_COOKIE, session_cookie(Some(&secret), over_tls(req))))
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(json!({ "user": user })))
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct OnboardStatus {
    needed: bool,
    /// The local CA's fingerprint, to compare with the console's.
    ca_fingerprint: Option<String>,
    /// `{"configured": "en"}` or `{"default": "en"}`: the voice language question.
    language: serde_json::Map<String, serde_json::Value>,
    encrypted: bool,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct LoggedIn {
    user: User,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Me {
    user: User,
    /// `session` or `token`.
    auth: String,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PasswordChanged {
    ok: Option<bool>,
    user: Option<User>,
}

/// `GET /api/onboard`: whether first-run onboarding is still open.
#[utoipa::path(get, path = "/api/onboard", tag = "account", description = "Whether first-run onboarding is still open; public.",
    responses((status = 200, description = "Onboarding's state", body = inline(OnboardStatus))))]
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let needed = state.store.run(|store| store.needs_onboarding()).await?;
    // The setup page shows the local CA's fingerprint, to compare with the console's
    // before trusting the CA on a phone.
    let ca = state.tls.as_ref().and_then(|t| t.ca.as_ref()).map(|ca| ca.fingerprint.clone());
    // The language question: offered with the box's own locale first, unless the config
    // file already answers it.
    let language = match state.settings.voice.default_language() {
        Some(configured) => json!({ "configured": configured }),
        None => json!({ "default": crate::config::system_language() }),
    };
    // Encryption at rest is chosen on the box before setup (`hearth onboard --encrypt`): the
    // page says whether it is on.
    let encrypted = state.settings.storage.unlocked.0.is_some();
    Ok(json(&json!({ "needed": needed, "ca_fingerprint": ca, "language": language, "encrypted": encrypted })))
}

/// `POST /api/onboard`: creates the first administrator with a setup code, logs in.
#[utoipa::path(post, path = "/api/onboard", tag = "account", description = "Creates the first administrator with the setup code and logs in (sets the session cookie); public, needs `X-Hearth-CSRF: 1`.",
    params(("X-Hearth-CSRF" = String, Header, description = "`1`")),
    request_body = OnboardRequest,
    responses((status = 200, description = "Onboarded and logged in", body = inline(LoggedIn), headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 400, description = "`invalid_request`: a weak password, an unknown language"),
        (status = 401, description = "`invalid_setup_code`"),
        (status = 403, description = "`csrf_rejected`: no `X-Hearth-CSRF: 1`"),
        (status = 409, description = "`already_onboarded`"),
        (status = 429, description = "`too_many_attempts`: too many failures from this address, or the box is busy checking others")))]
pub async fn onboard(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<OnboardRequest>,
) -> Result<HttpResponse, ApiError> {
    if !csrf_header_ok(req.headers()) {
        return Err(csrf_rejected());
    }
    let OnboardRequest { code, name, password, language } = body.into_inner();
    check_new_password(&password).map_err(ApiError::invalid)?;
    let language = language.map(|l| l.trim().to_ascii_lowercase()).filter(|l| !l.is_empty());
    if let Some(l) = language.as_deref().filter(|l| *l != "auto" && !crate::config::valid_languages(l)) {
        return Err(ApiError::invalid(format!(
            "language '{l}' is not ISO 639-1 codes such as en or en,de, nor auto"
        )));
    }
    let (attempt, turn) = match ready_to_check(attempt(&req)).await {
        Ok(ready) => ready,
        Err(refused) => {
            record_refusal(&state, &req, Action::Onboarded, &refused).await;
            return Ok(refused);
        }
    };
    let code_hash = setup_code_hash(&code);
    let by = anonymous(&req);
    let code_file = state.settings.setup_code_path();
    let outcome = state
        .store
        .run(move |store| {
            let _turn = turn;
            if !store.needs_onboarding()? {
                return Ok(Onboarded::AlreadyDone);
            }
            let outcome = store.onboard(&code_hash, &name, &hash_password(&password), &by)?;
            if matches!(outcome, Onboarded::Done(_)) {
                remove_setup_code_file(&code_file);
            }
            Ok(outcome)
        })
        .await?;
    if !matches!(outcome, Onboarded::InvalidCode) {
        attempt.refund();
    }
    match outcome {
        Onboarded::Done(user) => {
            tracing::info!(user = %user.name, "onboarding complete: administrator created");
            if let Some(language) = language {
                let stored = language.clone();
                state.store.run(move |store| store.set_preference(VOICE_LANGUAGE, &stored)).await?;
                let applied = state.voice.choose_language(Some(language.clone()).filter(|l| l != "auto"));
                let by = Actor::user(user.id, &user.name, Some(client_ip(&req).to_string()));
                let event = Event::new(&by, Action::ConfigChanged)
                    .target("voice.language")
                    .detail(json!({ "language": language, "applied": applied }));
                crate::audit::record_or_warn(&state.store, event).await;
                tracing::info!(%language, applied, "voice language chosen at setup");
            }
            start_session(&state, &req, user).await
        }
        Onboarded::AlreadyDone => Err(ApiError::new(
            ErrorCode::AlreadyOnboarded,
            "this box is already set up; log in, or ask an administrator for an account",
        )),
        Onboarded::InvalidCode => {
            let event = Event::new(&anonymous(&req), Action::Onboarded)
                .outcome(Outcome::Failure)
                .detail(json!({ "reason": ErrorCode::InvalidSetupCode.code() }));
            crate::audit::record_or_warn(&state.store, event).await;
            let e = ApiError::new(
                ErrorCode::InvalidSetupCode,
                "wrong or expired setup code; only the newest code works: read it from the setup-code file in \
                 the data directory, or run `hearth onboard` on the box for a new one",
            );
            Err(failed(e).await)
        }
    }
}

/// `POST /api/login`: name and password in, session cookie out.
#[utoipa::path(post, path = "/api/login", tag = "account", description = "Name and password in, session cookie out; public, needs `X-Hearth-CSRF: 1`.",
    params(("X-Hearth-CSRF" = String, Header, description = "`1`")),
    request_body = LoginRequest,
    responses((status = 200, description = "Logged in", body = inline(LoggedIn), headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 401, description = "`invalid_credentials`"),
        (status = 403, description = "`csrf_rejected`: no `X-Hearth-CSRF: 1`"),
        (status = 429, description = "`too_many_attempts`: too many failures from this address, or the box is busy checking others")))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let (attempt, turn) = match ready_to_check(precheck(&req)).await {
        Ok(ready) => ready,
        Err(refused) => {
            record_refusal(&state, &req, Action::LoginFailed, &refused).await;
            return Ok(refused);
        }
    };
    let LoginRequest { name, password } = body.into_inner();
    // `Err` carries the account when the name is a user's.
    let checked = state
        .store
        .run(move |store| {
            let _turn = turn;
            Ok(match store.login_candidate(&name)? {
                Some((user, hash)) if verify_password(&password, &hash) => Ok(user),
                Some((user, _)) => Err(Some(user)),
                None => {
                    verify_against_dummy(&password);
                    Err(None)
                }
            })
        })
        .await?;
    match checked {
        Ok(user) => {
            attempt.refund();
            start_session(&state, &req, user).await
        }
        Err(user) => {
            let user_id = user.as_ref().map(|u| u.id);
            tracing::info!(user_id, ip = %client_ip(&req), "failed web login");
            // As in the log: the account only when the typed name is a user's, never the
            // typed name itself (it may be a password typed in the wrong field).
            let target = user.as_ref().map_or_else(String::new, |u| user_target(u.id, &u.name));
            let reason = if user.is_some() { "wrong_password" } else { "unknown_user" };
            let event = Event::new(&anonymous(&req), Action::LoginFailed)
                .target(target)
                .outcome(Outcome::Failure)
                .detail(json!({ "reason": reason }));
            crate::audit::record_or_warn(&state.store, event).await;
            let e = ApiError::new(ErrorCode::InvalidCredentials, "wrong user name or password");
            Err(failed(e).await)
        }
    }
}

/// `POST /api/logout`: ends this session and clears the cookie.
#[utoipa::path(post, path = "/api/logout", tag = "account", description = "Ends this session (with a token: nothing to end) and clears the cookie.",
    responses((status = 200, description = "Logged out", body = crate::http::openapi::Done)))]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    if let Credential::Session(id) = caller.credential {
        let by = caller.actor();
        state.store.run(move |store| store.delete_session(id, &by)).await?;
        state.revocations.revoke(Revoked::Session(id));
    }
    Ok(HttpResponse::Ok()
        .insert_header((SET_COOKIE, session_cookie(None, over_tls(&req))))
        .json(json!({ "ok": true })))
}

/// `GET /api/me`: who is logged in, and how.
#[utoipa::path(get, path = "/api/me", tag = "account",
    responses((status = 200, description = "Who is calling, and how", body = inline(Me))))]
pub async fn me(caller: Caller) -> HttpResponse {
    let via = match caller.credential {
        Credential::Session(_) => "session",
        Credential::Token(_) => "token",
    };
    json(&json!({ "user": caller.user, "auth": via }))
}

/// `PUT /api/me/password`: changes the caller's own password; other sessions end.
#[utoipa::path(put, path = "/api/me/password", tag = "account", description = "Changes the caller's own password; other sessions end. With a session, a new session cookie comes back.",
    request_body = PasswordChange,
    responses((status = 200, description = "Changed (`{\"ok\": true}` with a token, `{\"user\"}` and a new cookie with a session)", body = inline(PasswordChanged)),
        (status = 400, description = "`invalid_request`: a weak new password"),
        (status = 401, description = "`invalid_credentials`: the current password is wrong"),
        (status = 429, description = "`too_many_attempts`")))]
pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<PasswordChange>,
) -> Result<HttpResponse, ApiError> {
    let PasswordChange { current, new } = body.into_inner();
    check_new_password(&new).map_err(ApiError::invalid)?;
    let (attempt, turn) = match ready_to_check(attempt(&req)).await {
        Ok(ready) => ready,
        Err(refused) => return Ok(refused),
    };
    let (user_id, name) = (caller.user.id, caller.user.name.clone());
    let by = caller.actor();
    let changed = state
        .store
        .run(move |store| {
            let _turn = turn;
            let ok =
                matches!(store.login_candidate(&name)?, Some((_, hash)) if verify_password(&current, &hash));
            if ok {
                store.set_password(user_id, &hash_password(&new), &by)?;
            }
            Ok(ok)
        })
        .await?;
    if !changed {
        let event = Event::new(&caller.actor(), Action::PasswordChanged)
            .target(user_target(caller.user.id, &caller.user.name))
            .outcome(Outcome::Failure)
            .detail(json!({ "reason": "wrong_current_password" }));
        crate::audit::record_or_warn(&state.store, event).await;
        let e = ApiError::new(ErrorCode::InvalidCredentials, "the current password is wrong");
        return Err(failed(e).await);
    }
    attempt.refund();
    // Every session ended with the old password, live WebSockets included.
    state.revocations.revoke(Revoked::SessionsOf(user_id));
    match caller.credential {
        Credential::Session(_) => start_session(&state, &req, caller.user).await,
        Credential::Token(_) => Ok(json(&json!({ "ok": true }))),
    }
}
