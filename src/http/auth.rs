//! Authentication runs as middleware in front of every route except the public ones,
//! before any extractor reads the body: an unauthenticated client learns nothing about
//! the route or its validation. The authenticated [`Caller`] is then a handler
//! argument, so a handler that needs a user cannot run without one; [`Admin`] likewise
//! for administrators.
//!
//! Two credentials are accepted: `Authorization: Bearer <token>` (API clients) and the
//! web UI's session cookie. A request carrying the cookie that could change state (any
//! method but GET/HEAD/OPTIONS) must also send `X-Hearth-CSRF: 1`: a cross-site page
//! cannot add a custom header without a CORS preflight, which Hearth never answers
//! with permission. The cookie is also `SameSite=Strict`. Bearer requests need no such
//! header, since browsers never attach tokens on their own.

use super::AppState;
use crate::audit::{Action, Actor, Event, Outcome};
use crate::auth::scopes::{Scope, Scopes};
use crate::auth::session::{cookie_value, sha256, CSRF_HEADER, SESSION_COOKIE};
use crate::auth::{bearer, hash_token};
use crate::error::{ApiError, ErrorCode};
use crate::store::{Role, User};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, AUTHORIZATION, COOKIE};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, ResponseError};
use futures_util::future::LocalBoxFuture;
use std::future::{ready, Ready};
use std::net::IpAddr;

/// API paths served without authentication (the web UI's own files are public too).
/// The local CA's certificate and ACME challenge answers are public too: a phone fetches
/// the certificate before it can log in safely, and the ACME CA has no account.
const PUBLIC_PATHS: &[&str] = &["/api/health", "/api/login", "/api/onboard", "/ca.crt", "/ca.der"];

/// Inbound webhooks carry a signature instead of a token (`channels/hooks.rs`).
const SIGNED_PREFIX: &str = "/api/hooks/";

pub(super) fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path)
        || path.starts_with(SIGNED_PREFIX)
        || path == "/"
        || path.starts_with("/assets/")
        || path.starts_with("/.well-known/acme-challenge/")
}

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An API token, by id.
    Token(i64),
    /// A web session, by id.
    Session(i64),
}

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub credential: Credential,
    /// What the credential may be used for (sessions: everything the role allows).
    pub scopes: Scopes,
    /// The TCP peer's address (never a forwarding header, which anyone can send).
    pub address: Option<IpAddr>,
    /// A token's own request limit per minute (`None`: only the user's).
    pub token_requests_per_minute: Option<u32>,
}

impl Caller {
    /// Who this is, for the audit log.
    pub fn actor(&self) -> Actor {
        Actor::user(self.user.id, &self.user.name, self.address.map(|a| a.to_string()))
    }
}

/// A caller who is an administrator, from an address `[server] admin_allow` lets in;
/// any other caller gets 403 (`forbidden`, or `admin_address_refused`, which is written to
/// the audit log).
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, message)
}

/// True when the request carries the anti-CSRF header the web UI sends.
pub fn csrf_header_ok(headers: &HeaderMap) -> bool {
    headers.get(CSRF_HEADER).is_some_and(|v| v.as_bytes() == b"1")
}

pub fn csrf_rejected() -> ApiError {
    ApiError::new(
        ErrorCode::CsrfRejected,
        format!("requests from the web UI that change anything must carry the '{CSRF_HEADER}: 1' header"),
    )
}

/// Middleware: rejects requests without valid credentials with 401 before routing.
pub async fn require_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if is_public(req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    match authenticate(&req).await {
        Ok(caller) => {
            if let Some(scope) = Scope::required_for(req.path()).filter(|s| !caller.scopes.has(*s)) {
                let e = ApiError::new(
                    ErrorCode::InsufficientScope,
                    format!("this token may not be used here: it needs the '{}' scope", scope.as_str()),
                );
                let response = refusal_response(req.path(), e);
                return Ok(req.into_response(response));
            }
            if let Some(state) = req.app_data::<web::Data<AppState>>() {
                let limiter = state.models.limiter();
                let counted = limiter.request(caller.user.id).and_then(|()| {
                    match (&caller.credential, caller.token_requests_per_minute) {
                        (Credential::Token(id), Some(limit)) => limiter.token_request(*id, limit),
                        _ => Ok(()),
                    }
                });
                if let Err(refusal) = counted {
                    state.metrics.rate_limited.with_label_values(&[refusal.kind()]).inc();
                    let response = refusal_response(req.path(), ApiError::limited(refusal));
                    return Ok(req.into_response(response));
                }
            }
            req.extensions_mut().insert(caller);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(e) => {
            let response = refusal_response(req.path(), e);
            Ok(req.into_response(response))
        }
    }
}

/// A refused request's answer: in Ollama's error shape on the Ollama API's own paths
/// (whose clients read `"error"` as text), Hearth's elsewhere.
fn refusal_response(path: &str, e: ApiError) -> actix_web::HttpResponse {
    if super::ollama::is_ollama_only(path) {
        return super::ollama::OllamaError(e).error_response();
    }
    e.error_response()
}

async fn authenticate(req: &ServiceRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    let address = req.peer_addr().map(|a| a.ip());
    if let Some(header) = req.headers().get(AUTHORIZATION) {
        let header =
            header.to_str().map_err(|_| unauthorized("the Authorization header is not valid text"))?;
        let token = bearer(header)
            .ok_or_else(|| unauthorized("the Authorization header must be 'Bearer <token>'"))?;
        return token_caller(&state, hash_token(token), address).await;
    }
    if let Some(secret) = session_secret(req.headers()) {
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && !csrf_header_ok(req.headers()) {
            return Err(csrf_rejected());
        }
        return session_caller(&state, sha256(&secret), address).await;
    }
    Err(unauthorized("missing 'Authorization: Bearer <token>' header (or a web session)"))
}

/// The session secret in the request's cookie, if any.
pub fn session_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .filter_map(|h| h.to_str().ok())
        .find_map(|h| cookie_value(h, SESSION_COOKIE))
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

async fn token_caller(state: &AppState, hash: [u8; 32], address: Option<IpAddr>) -> Result<Caller, ApiError> {
    let found = state
        .store
        .run(move |store| {
            let found = store.user_for_token_hash(&hash)?;
            if let Some(owner) = &found {
                if let Err(e) = store.touch_token(owner.token_id) {
                    tracing::warn!(error = %e, "could not record token use");
                }
            }
            Ok(found)
        })
        .await?;
    let owner = found.ok_or_else(|| unauthorized("invalid, expired or revoked token"))?;
    Ok(Caller {
        user: owner.user,
        credential: Credential::Token(owner.token_id),
        scopes: owner.scopes,
        address,
        token_requests_per_minute: owner.requests_per_minute,
    })
}

async fn session_caller(
    state: &AppState,
    hash: [u8; 32],
    address: Option<IpAddr>,
) -> Result<Caller, ApiError> {
    let found = state
        .store
        .run(move |store| {
            let found = store.user_for_session_hash(&hash)?;
            if let Some((session_id, _)) = &found {
                if let Err(e) = store.touch_session(*session_id) {
                    tracing::warn!(error = %e, "could not record session use");
                }
            }
            Ok(found)
        })
        .await?;
    let (session_id, user) = found.ok_or_else(|| unauthorized("the session has expired; log in again"))?;
    Ok(Caller {
        user,
        credential: Credential::Session(session_id),
        scopes: Scopes::ALL,
        address,
        token_requests_per_minute: None,
    })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Set by `require_auth`; absent only if a route escaped the middleware.
        ready(
            req.extensions().get::<Caller>().cloned().ok_or_else(|| unauthorized("authentication required")),
        )
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = req.extensions().get::<Caller>().cloned();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let path = req.path().to_string();
        let method = req.method().to_string();
        Box::pin(async move {
            let caller = match caller {
                None => return Err(unauthorized("authentication required")),
                Some(c) if c.user.role == Role::Admin => c,
                Some(_) => {
                    return Err(ApiError::new(ErrorCode::Forbidden, "only an administrator may do this"))
                }
            };
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            admin_address_allowed(&state, &caller, &method, &path).await?;
            Ok(Admin(caller))
        })
    }
}

/// Whether `[server] admin_allow` lets this administrator in from where they are; a
/// refusal is written to the audit log before it is answered.
pub async fn admin_address_allowed(
    state: &AppState,
    caller: &Caller,
    method: &str,
    path: &str,
) -> Result<(), ApiError> {
    // Checked when the settings were loaded; an entry that does not parse refuses all.
    let list = crate::auth::allowlist::parse_all(&state.settings.server.admin_allow)
        .map_err(|e| ApiError::internal(format!("server.admin_allow: {e}")))?;
    if crate::auth::allowlist::allows(&list, caller.address) {
        return Ok(());
    }
    let event = Event::new(&caller.actor(), Action::AdminAddressRefused)
        .target(format!("{method} {path}"))
        .outcome(Outcome::Refused);
    crate::audit::record_or_warn(&state.store, event).await;
    tracing::warn!(user = %caller.user.name, address = ?caller.address, %path, "admin route refused: address not in server.admin_allow");
    Err(ApiError::new(
        ErrorCode::AdminAddressRefused,
        "administration is not allowed from this address (server.admin_allow)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_health_login_onboarding_and_the_ui_are_public() {
        for path in ["/", "/assets/abc/app.js", "/api/health", "/api/login", "/api/onboard"] {
            assert!(is_public(path), "{path}");
        }
        for path in ["/api/me", "/api/logout", "/api/users", "/metrics", "/v1/models", "/index.html"] {
            assert!(!is_public(path), "{path}");
        }
    }
}
