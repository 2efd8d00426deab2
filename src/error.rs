//! The one table of API errors.
//!
//! Every error a client can see has a row here: an HTTP status, a stable snake_case
//! code that clients may match on, and an OpenAI-style error `type`. Module errors
//! convert into [`ApiError`]; the conversion to an HTTP response happens only in
//! [`ApiError`]'s `ResponseError` impl, so handlers never choose status codes.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

macro_rules! error_codes {
    ($($variant:ident => $status:ident, $code:literal, $kind:literal;)*) => {
        /// A stable error code. The string form never changes once released.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode { $($variant),* }

        impl ErrorCode {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The HTTP status this code is answered with.
            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status),* }
            }

            /// The stable snake_case code.
            pub fn code(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),* }
            }

            /// The OpenAI-compatible error `type`.
            pub fn kind(self) -> &'static str {
                match self { $(ErrorCode::$variant => $kind),* }
            }
        }
    };
}

error_codes! {
    InvalidJson           => BAD_REQUEST,            "invalid_json",            "invalid_request_error";
    InvalidRequest        => BAD_REQUEST,            "invalid_request",         "invalid_request_error";
    ContextLengthExceeded => BAD_REQUEST,            "context_length_exceeded", "invalid_request_error";
    UnsupportedParameter  => BAD_REQUEST,            "unsupported_parameter",   "invalid_request_error";
    ToolsUnsupported      => BAD_REQUEST,            "tools_unsupported",       "invalid_request_error";
    Unauthorized          => UNAUTHORIZED,           "unauthorized",            "authentication_error";
    Forbidden             => FORBIDDEN,              "forbidden",               "permission_error";
    InvalidCredentials    => UNAUTHORIZED,           "invalid_credentials",     "authentication_error";
    InvalidSetupCode      => UNAUTHORIZED,           "invalid_setup_code",      "authentication_error";
    InsufficientScope     => FORBIDDEN,              "insufficient_scope",      "permission_error";
    CsrfRejected          => FORBIDDEN,              "csrf_rejected",           "permission_error";
    AlreadyOnboarded      => CONFLICT,               "already_onboarded",       "invalid_request_error";
    PullInProgress        => CONFLICT,               "pull_in_progress",        "invalid_request_error";
    TooManyAttempts       => TOO_MANY_REQUESTS,      "too_many_attempts",       "rate_limit_error";
    UnknownHost           => MISDIRECTED_REQUEST,    "unknown_host",            "invalid_request_error";
    NotFound              => NOT_FOUND,              "not_found",               "invalid_request_error";
    ConversationNotFound  => NOT_FOUND,              "conversation_not_found",  "invalid_request_error";
    ModelNotFound         => NOT_FOUND,              "model_not_found",         "invalid_request_error";
    UnknownModel          => NOT_FOUND,              "unknown_model",           "invalid_request_error";
    VoiceNotFound         => NOT_FOUND,              "voice_not_found",         "invalid_request_error";
    DocumentNotFound      => NOT_FOUND,              "document_not_found",      "invalid_request_error";
    JobNotFound           => NOT_FOUND,              "job_not_found",           "invalid_request_error";
    MethodNotAllowed      => METHOD_NOT_ALLOWED,     "method_not_allowed",      "invalid_request_error";
    PayloadTooLarge       => PAYLOAD_TOO_LARGE,      "payload_too_large",       "invalid_request_error";
    QuotaExceeded         => PAYLOAD_TOO_LARGE,      "quota_exceeded",          "invalid_request_error";
    UnsupportedMediaType  => UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",  "invalid_request_error";
    InvalidAudio          => BAD_REQUEST,            "invalid_audio",           "invalid_request_error";
    AudioTooLong          => PAYLOAD_TOO_LARGE,      "audio_too_long",          "invalid_request_error";
    Overloaded            => TOO_MANY_REQUESTS,      "overloaded",              "rate_limit_error";
    ModelNotReady         => SERVICE_UNAVAILABLE,    "model_not_ready",         "server_error";
    Timeout               => GATEWAY_TIMEOUT,        "timeout",                 "server_error";
    InsufficientMemory    => SERVICE_UNAVAILABLE,    "insufficient_memory",     "server_error";
    FetcherUnavailable    => SERVICE_UNAVAILABLE,    "fetcher_unavailable",     "server_error";
    NoEmbeddingModel      => BAD_REQUEST,            "no_embedding_model",      "invalid_request_error";
    StorageError          => INTERNAL_SERVER_ERROR,  "storage_error",           "server_error";
    SearchError           => INTERNAL_SERVER_ERROR,  "search_error",            "server_error";
    EngineError           => INTERNAL_SERVER_ERROR,  "engine_error",            "server_error";
    Internal              => INTERNAL_SERVER_ERROR,  "internal_error",          "server_error";
}

/// Seconds a client should wait before retrying an overloaded request.
pub const RETRY_AFTER_SECS: u32 = 2;

/// An error as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The JSON body: `{"error": {"code", "message", "type"}}` (OpenAI's shape).
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorDetail { code: self.code.code(), message: &self.message, kind: self.code.kind() },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub code: &'static str,
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.code(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.code == ErrorCode::Overloaded {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
        }
        if self.code == ErrorCode::Unauthorized {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(self.body())
    }
}

impl From<crate::engine::EngineError> for ApiError {
    fn from(e: crate::engine::EngineError) -> Self {
        use crate::engine::EngineError as E;
        let code = match &e {
            E::NotReady(_) => ErrorCode::ModelNotReady,
            E::Overloaded(_) => ErrorCode::Overloaded,
            E::ContextLengthExceeded { .. } => ErrorCode::ContextLengthExceeded,
            E::InvalidRequest(_) => ErrorCode::InvalidRequest,
            E::ToolsUnsupported(_) => ErrorCode::ToolsUnsupported,
            E::Timeout(_) => ErrorCode::Timeout,
            E::ModelNotFound(_) => ErrorCode::ModelNotFound,
            E::InsufficientMemory { .. } => ErrorCode::InsufficientMemory,
            E::NoEmbeddingModel => ErrorCode::NoEmbeddingModel,
            _ => ErrorCode::EngineError,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<crate::models::PullError> for ApiError {
    fn from(e: crate::models::PullError) -> Self {
        use crate::models::PullError as E;
        let code = match &e {
            E::UnknownModel { .. } => ErrorCode::UnknownModel,
            E::InProgress(_) => ErrorCode::PullInProgress,
            E::MissingTool(_) => ErrorCode::FetcherUnavailable,
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<crate::search::SearchError> for ApiError {
    fn from(e: crate::search::SearchError) -> Self {
        match e {
            crate::search::SearchError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "search failure");
                ApiError::new(ErrorCode::SearchError, "the search index could not complete the request")
            }
        }
    }
}

/// A byte count for people: "1.5 MiB".
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match e {
            E::NotFound(what) => ApiError::new(ErrorCode::NotFound, format!("{what} not found")),
            E::Conflict(message) => ApiError::invalid(message),
            E::QuotaExceeded { used, needed, quota } => ApiError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "this upload needs {} but only {} of your {} storage quota is left \
                     (knowledge.user_quota_bytes); delete documents to make room",
                    mib(needed),
                    mib(quota.saturating_sub(used)),
                    mib(quota)
                ),
            ),
            other => {
                // Details go to the log; clients get a stable, unrevealing message.
                tracing::error!(error = %other, "storage failure");
                ApiError::new(ErrorCode::StorageError, "the database could not complete the request")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.code();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
        }
    }

    #[test]
    fn client_errors_are_4xx_and_server_errors_5xx() {
        for code in ErrorCode::ALL {
            let status = code.status();
            let server_side = code.kind() == "server_error";
            assert_eq!(status.is_server_error(), server_side, "{code:?}");
            assert!(status.is_client_error() || status.is_server_error(), "{code:?}");
        }
    }

    #[test]
    fn overloaded_answers_retry_after() {
        let response = ApiError::new(ErrorCode::Overloaded, "busy").error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "2");
    }
}
