//! The authenticated caller, as a handler argument: a handler that takes a [`Caller`]
//! cannot run without a valid token, so no route can forget to check.

use super::AppState;
use crate::auth::{bearer, hash_token};
use crate::error::{ApiError, ErrorCode};
use crate::store::User;
use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

/// The user behind a valid `Authorization: Bearer` token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub token_id: i64,
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, message)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req.headers().get(AUTHORIZATION).map(|h| h.to_str().map(str::to_owned));
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let header = match header {
                None => return Err(unauthorized("missing 'Authorization: Bearer <token>' header")),
                Some(Err(_)) => return Err(unauthorized("the Authorization header is not valid text")),
                Some(Ok(h)) => h,
            };
            let token = bearer(&header)
                .ok_or_else(|| unauthorized("the Authorization header must be 'Bearer <token>'"))?;
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
        })
    }
}
