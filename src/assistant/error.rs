//! Why a turn failed, with its stable code. `crate::error` turns it into the API's error
//! body; `http/` alone picks the status line.

use crate::engine::EngineError;
use crate::error::{engine_code, ErrorCode};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssistantError {
    /// The request itself is wrong (an empty message, a temperature out of range).
    #[error("{0}")]
    Invalid(String),
    /// No conversation of this user has that id.
    #[error("no such conversation")]
    ConversationNotFound,
    /// The turn asks for what this assistant does not keep (a stored conversation, or one
    /// without a user): a channel's mistake, not the client's.
    #[error("{0}")]
    Unsupported(&'static str),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The workflow a phrase triggers could not start.
    #[error(transparent)]
    Workflow(#[from] crate::workflows::WorkflowError),
    /// The database failed; the details go to the log, not to the client.
    #[error("the database could not complete the request")]
    Storage(StoreError),
}

impl AssistantError {
    /// Its row in the error table.
    pub fn code(&self) -> ErrorCode {
        match self {
            AssistantError::Invalid(_) => ErrorCode::InvalidRequest,
            AssistantError::ConversationNotFound => ErrorCode::ConversationNotFound,
            AssistantError::Unsupported(_) => ErrorCode::Internal,
            AssistantError::Engine(e) => engine_code(e),
            AssistantError::Storage(_) => ErrorCode::StorageError,
            AssistantError::Workflow(e) => match e {
                crate::workflows::WorkflowError::NotFound(_) => ErrorCode::WorkflowNotFound,
                crate::workflows::WorkflowError::Unavailable(_) => ErrorCode::ModelNotReady,
                crate::workflows::WorkflowError::Store(_) => ErrorCode::StorageError,
            },
        }
    }

    /// The engine ended a reply's channel without a last event.
    pub(crate) fn stopped() -> AssistantError {
        EngineError::Failed("the engine stopped before finishing the reply".into()).into()
    }
}

/// A store error of a turn: a missing row is the conversation.
impl From<StoreError> for AssistantError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => AssistantError::ConversationNotFound,
            other => AssistantError::Storage(other),
        }
    }
}
