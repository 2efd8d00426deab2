//! One retention pass: what `[retention]` and users' own settings say is too old goes,
//! with its search entries (the outbox) and any KV cache the engines keep.

use crate::audit::{Action, Actor, Event};
use crate::config::RetentionSettings;
use crate::store::{RetentionDeleted, Store, StoreError};

/// Deletes what is past its days; returns what went, per user.
pub fn run(
    store: &Store,
    settings: &RetentionSettings,
    by: &Actor,
) -> Result<Vec<RetentionDeleted>, StoreError> {
    let deleted =
        store.apply_retention(settings.conversations_days, settings.documents_days, crate::store::now())?;
    for d in &deleted {
        let event = Event::new(by, Action::RetentionDeleted).target(format!("user:{}", d.user_id)).detail(
            serde_json::json!({"conversations": d.conversations.len(), "documents": d.documents.len()}),
        );
        store.audit(&event)?;
        tracing::info!(
            user_id = d.user_id,
            conversations = d.conversations.len(),
            documents = d.documents.len(),
            "retention deleted old conversations and documents"
        );
    }
    Ok(deleted)
}
