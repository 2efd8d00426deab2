//! Authentication runs as middleware in front of every route except the public ones,
//! before any extractor reads the body: an unauthenticated client learns nothing about
//! the route or its validation. The authenticated [`Caller`] is then a handler
//! argument, so a handler that needs a user cannot run without one.

use super::AppState;
use crate::auth::{bearer, hash_token};
use crate::error::{ApiError, ErrorCode};
use crate::store::User;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, ResponseError};
use std::future::{ready, Ready};

/// Paths served without authentication.
const PUBLIC_PATHS: &[&str] = &["/api/health"];

/// The user behind a valid `Authorization: Bearer` token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub token_id: i64,
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, message)
}

/// Middleware: rejects requests without a valid token with 401 before routing.
pub async fn require_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if PUBLIC_PATHS.contains(&req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    match authenticate(&req).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(e) => Ok(req.into_response(e.error_response())),
    }
}

async fn authenticate(req: &ServiceRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    let header = match req.headers().get(AUTHORIZATION) {
        None => return Err(unauthorized("missing 'Authorization: Bearer <token>' header")),
        Some(h) => h.to_str().map_err(|_| unauthorized("the Authorization header is not valid text"))?,
    };
    let token =
        bearer(header).ok_or_else(|| unauthorized("the Authorization header must be 'Bearer <token>'"))?;
    let hash = hash_token(token);
    let found = state
        .store
        .run(move |store| {
            let found = store.user_for_token_hash(&hash)?;
            if let Some((token_id, _)) = &found {
                if let Err(e) = store.touch_token(*token_id) {
                    tracing::warn!(error = %e, "could not record token use");
                }
            }
            Ok(found)
        })
        .await?;
    let (token_id, user) = found.ok_or_else(|| unauthorized("invalid or revoked token"))?;
    Ok(Caller { user, token_id })
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
