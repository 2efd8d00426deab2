//! The one table of API errors.
//!
//! Every error a client can see has a row here: an HTTP status (as a number: no HTTP
//! types live below `http/`), a stable snake_case code that clients may match on, and an
//! OpenAI-style error `type`. Module errors convert into [`ApiError`] here: audio, speech
//! and assistant errors say their own code (`code()`), engine and store errors are mapped
//! below. The conversion to an HTTP response happens only in `http/` (`ApiError`'s
//! `ResponseError` impl, `http/errors.rs`), so handlers never choose status codes.

use serde::Serialize;

macro_rules! error_codes {
    ($($variant:ident => $status:literal, $code:literal, $kind:literal;)*) => {
        /// A stable error code. The string form never changes once released.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode { $($variant),* }

        impl ErrorCode {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The HTTP status this code is answered with.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status),* }
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
    InvalidJson           => 400, "invalid_json",            "invalid_request_error";
    InvalidRequest        => 400, "invalid_request",         "invalid_request_error";
    ContextLengthExceeded => 400, "context_length_exceeded", "invalid_request_error";
    UnsupportedParameter  => 400, "unsupported_parameter",   "invalid_request_error";
    ToolsUnsupported      => 400, "tools_unsupported",       "invalid_request_error";
    Unauthorized          => 401, "unauthorized",            "authentication_error";
    Forbidden             => 403, "forbidden",               "permission_error";
    InvalidCredentials    => 401, "invalid_credentials",     "authentication_error";
    InvalidSetupCode      => 401, "invalid_setup_code",      "authentication_error";
    InsufficientScope     => 403, "insufficient_scope",      "permission_error";
    CsrfRejected          => 403, "csrf_rejected",           "permission_error";
    AdminAddressRefused   => 403, "admin_address_refused",   "permission_error";
    AlreadyOnboarded      => 409, "already_onboarded",       "invalid_request_error";
    PullInProgress        => 409, "pull_in_progress",        "invalid_request_error";
    BackupInProgress      => 409, "backup_in_progress",      "invalid_request_error";
    InvalidImport         => 400, "invalid_import",          "invalid_request_error";
    TooManyAttempts       => 429, "too_many_attempts",       "rate_limit_error";
    UnknownHost           => 421, "unknown_host",            "invalid_request_error";
    NotFound              => 404, "not_found",               "invalid_request_error";
    ConversationNotFound  => 404, "conversation_not_found",  "invalid_request_error";
    ModelNotFound         => 404, "model_not_found",         "invalid_request_error";
    UnknownModel          => 404, "unknown_model",           "invalid_request_error";
    VoiceNotFound         => 404, "voice_not_found",         "invalid_request_error";
    DocumentNotFound      => 404, "document_not_found",      "invalid_request_error";
    JobNotFound           => 404, "job_not_found",           "invalid_request_error";
    WorkflowNotFound      => 404, "workflow_not_found",      "invalid_request_error";
    WorkflowRunNotFound   => 404, "workflow_run_not_found",  "invalid_request_error";
    HookNotFound          => 404, "hook_not_found",          "invalid_request_error";
    InvalidSignature      => 401, "invalid_signature",       "authentication_error";
    NoteNotFound          => 404, "note_not_found",          "invalid_request_error";
    UnknownSkill          => 400, "unknown_skill",           "invalid_request_error";
    BadPayload            => 400, "bad_payload",             "invalid_request_error";
    InvalidConfig         => 400, "invalid_config",          "invalid_request_error";
    CommandNotAllowed     => 403, "command_not_allowed",     "permission_error";
    UnknownCommand        => 404, "unknown_command",         "invalid_request_error";
    MethodNotAllowed      => 405, "method_not_allowed",      "invalid_request_error";
    PayloadTooLarge       => 413, "payload_too_large",       "invalid_request_error";
    QuotaExceeded         => 413, "quota_exceeded",          "invalid_request_error";
    UnsupportedMediaType  => 415, "unsupported_media_type",  "invalid_request_error";
    InvalidAudio          => 400, "invalid_audio",           "invalid_request_error";
    AudioTooLong          => 413, "audio_too_long",          "invalid_request_error";
    Overloaded            => 429, "overloaded",              "rate_limit_error";
    RateLimited           => 429, "rate_limited",            "rate_limit_error";
    ModelNotReady         => 503, "model_not_ready",         "server_error";
    Timeout               => 504, "timeout",                 "server_error";
    InsufficientMemory    => 503, "insufficient_memory",     "server_error";
    Shedding              => 503, "shedding_load",           "server_error";
    LoadsPaused           => 503, "model_loads_paused",      "server_error";
    FetcherUnavailable    => 503, "fetcher_unavailable",     "server_error";
    Locked                => 503, "locked",                  "server_error";
    WrongKey              => 401, "wrong_key",               "authentication_error";
    NoEmbeddingModel      => 400, "no_embedding_model",      "invalid_request_error";
    StorageError          => 500, "storage_error",           "server_error";
    SearchError           => 500, "search_error",            "server_error";
    EngineError           => 500, "engine_error",            "server_error";
    BackupFailed          => 500, "backup_failed",           "server_error";
    Internal              => 500, "internal_error",          "server_error";
}

/// Seconds a client should wait before retrying an overloaded request.
pub const RETRY_AFTER_SECS: u32 = 2;

/// Seconds a client should wait while the governor pauses model loads.
pub const LOADS_PAUSED_RETRY_AFTER_SECS: u32 = 30;

/// An error as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// `Retry-After` in seconds, where the code calls for one.
    pub retry_after_secs: Option<u32>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let retry_after_secs = match code {
            ErrorCode::Overloaded => Some(RETRY_AFTER_SECS),
            ErrorCode::LoadsPaused => Some(LOADS_PAUSED_RETRY_AFTER_SECS),
            ErrorCode::Shedding => Some(RETRY_AFTER_SECS),
            _ => None,
        };
        Self { code, message: message.into(), retry_after_secs }
    }

    /// A rate limit's refusal: 429 with how long to wait.
    pub fn limited(refusal: crate::rate::Refusal) -> Self {
        let retry_after_secs = Some(u32::try_from(refusal.retry_after()).unwrap_or(u32::MAX));
        ApiError { retry_after_secs, ..Self::new(ErrorCode::RateLimited, refusal.to_string()) }
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

/// Errors that say their own code; their message is the client's to read.
macro_rules! coded_errors {
    ($($error:ty),*) => {$(
        impl From<$error> for ApiError {
            fn from(e: $error) -> Self {
                ApiError::new(e.code(), e.to_string())
            }
        }
    )*};
}

coded_errors!(
    crate::audio::AudioError,
    crate::voice::stt::SttError,
    crate::voice::tts::TtsError,
    crate::channels::hooks::HookError
);

/// The row of an engine error.
pub fn engine_code(e: &crate::engine::EngineError) -> ErrorCode {
    use crate::engine::EngineError as E;
    match e {
        E::NotReady(_) => ErrorCode::ModelNotReady,
        E::Overloaded(_) => ErrorCode::Overloaded,
        E::ContextLengthExceeded { .. } => ErrorCode::ContextLengthExceeded,
        E::InvalidRequest(_) => ErrorCode::InvalidRequest,
        E::ToolsUnsupported(_) => ErrorCode::ToolsUnsupported,
        E::Timeout(_) => ErrorCode::Timeout,
        E::ModelNotFound(_) => ErrorCode::ModelNotFound,
        E::InsufficientMemory { .. } => ErrorCode::InsufficientMemory,
        E::NoEmbeddingModel => ErrorCode::NoEmbeddingModel,
        E::Limited(_) => ErrorCode::RateLimited,
        E::Shedding { .. } => ErrorCode::Shedding,
        E::LoadsPaused => ErrorCode::LoadsPaused,
        _ => ErrorCode::EngineError,
    }
}

impl From<crate::engine::EngineError> for ApiError {
    fn from(e: crate::engine::EngineError) -> Self {
        let mut error = match e {
            crate::engine::EngineError::Limited(refusal) => return ApiError::limited(refusal),
            _ => ApiError::new(engine_code(&e), e.to_string()),
        };
        if let crate::engine::EngineError::Shedding { retry_after_secs } = e {
            error.retry_after_secs = Some(retry_after_secs);
        }
        error
    }
}

impl From<crate::assistant::AssistantError> for ApiError {
    fn from(e: crate::assistant::AssistantError) -> Self {
        if let crate::assistant::AssistantError::Engine(engine) = e {
            return engine.into();
        }
        if let crate::assistant::AssistantError::Storage(inner) = &e {
            // Details go to the log; clients get a stable, unrevealing message.
            tracing::error!(error = %inner, "storage failure");
        }
        ApiError::new(e.code(), e.to_string())
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

impl From<crate::skills::PerUserError> for ApiError {
    fn from(e: crate::skills::PerUserError) -> Self {
        match e {
            crate::skills::PerUserError::Store(e) => e.into(),
            unknown => ApiError::new(ErrorCode::UnknownSkill, unknown.to_string()),
        }
    }
}

impl From<crate::reminders::ReminderError> for ApiError {
    fn from(e: crate::reminders::ReminderError) -> Self {
        match e {
            crate::reminders::ReminderError::Invalid(why) => ApiError::invalid(why),
            crate::reminders::ReminderError::Store(e) => e.into(),
        }
    }
}

impl From<crate::notes::NoteError> for ApiError {
    fn from(e: crate::notes::NoteError) -> Self {
        use crate::notes::NoteError as E;
        match e {
            E::Invalid(why) => ApiError::invalid(why),
            E::TooLarge(why) => ApiError::new(ErrorCode::PayloadTooLarge, why),
            E::Store(crate::store::StoreError::NotFound(what)) => {
                ApiError::new(ErrorCode::NoteNotFound, format!("{what} not found"))
            }
            E::Store(e) => e.into(),
            E::Search(why) => ApiError::new(ErrorCode::SearchError, why),
        }
    }
}

impl From<crate::crypt::CryptError> for ApiError {
    fn from(e: crate::crypt::CryptError) -> Self {
        use crate::crypt::CryptError as E;
        match e {
            E::WrongKey => ApiError::new(ErrorCode::WrongKey, e.to_string()),
            E::Invalid(why) => ApiError::invalid(why),
            E::Io { .. } => ApiError::new(ErrorCode::StorageError, e.to_string()),
        }
    }
}

impl From<crate::backup::BackupError> for ApiError {
    fn from(e: crate::backup::BackupError) -> Self {
        use crate::backup::BackupError as E;
        match e {
            E::Busy => ApiError::new(ErrorCode::BackupInProgress, e.to_string()),
            E::Store(e) => e.into(),
            other => ApiError::new(ErrorCode::BackupFailed, other.to_string()),
        }
    }
}

impl From<crate::backup::export::TransferError> for ApiError {
    fn from(e: crate::backup::export::TransferError) -> Self {
        use crate::backup::export::TransferError as E;
        match e {
            E::TooLarge => ApiError::new(ErrorCode::PayloadTooLarge, e.to_string()),
            E::Invalid(why) => ApiError::new(ErrorCode::InvalidImport, why),
            E::Store(e) => e.into(),
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
            assert_eq!((500..600).contains(&status), server_side, "{code:?}");
            assert!((400..600).contains(&status), "{code:?}");
        }
    }
}
