//! Answering from the user's documents: whether a turn does, and what it retrieves.

use crate::knowledge::{Knowledge, Retrieved};

/// Whether a turn uses the user's documents: what the turn asks, else what its stored
/// conversation remembers (the last choice given in it), else the configured default.
/// Only a choice the turn gives is remembered ([`super::Complete::persist`]), so a turn
/// that says nothing keeps the conversation's choice as it was.
pub(super) fn use_documents(asked: Option<bool>, remembered: Option<bool>, default: bool) -> bool {
    asked.or(remembered).unwrap_or(default)
}

/// Retrieval for `question` from the user's documents. A failure is logged and the turn
/// goes on without documents rather than failing.
pub(super) async fn retrieve(knowledge: &Knowledge, user_id: i64, question: &str) -> Option<Retrieved> {
    match knowledge.retrieve(user_id, question).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "retrieval failed; answering without documents");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::use_documents;

    #[test]
    fn the_turns_choice_wins_then_the_conversations_then_the_default() {
        for default in [false, true] {
            for remembered in [None, Some(false), Some(true)] {
                assert!(use_documents(Some(true), remembered, default));
                assert!(!use_documents(Some(false), remembered, default));
            }
            assert!(use_documents(None, Some(true), default));
            assert!(!use_documents(None, Some(false), default));
            assert_eq!(use_documents(None, None, default), default);
        }
    }
}
