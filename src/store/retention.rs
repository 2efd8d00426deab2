//! Retention: conversations and documents older than a number of days are deleted, by
//! the box's `[retention]` or a user's own setting; and when maintenance tasks last ran.

use super::{Result, Store, StoreError};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

/// A user's own retention; `None` for a field: the box's setting. 0 keeps forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub conversations_days: Option<u32>,
    pub documents_days: Option<u32>,
}

/// What one pass deleted for one user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RetentionDeleted {
    pub user_id: i64,
    pub conversations: Vec<String>,
    pub documents: Vec<i64>,
}

const DAY: i64 = 86_400;

impl Store {
    /// A user's own retention (both `None` when they have none), or `NotFound`.
    pub fn user_retention(&self, user_id: i64) -> Result<Retention> {
        let conn = self.reader();
        let row = conn
            .query_row(
                "SELECT r.conversations_days, r.documents_days FROM users u
                 LEFT JOIN user_retention r ON r.user_id = u.id WHERE u.id = ?1",
                [user_id],
                |r| Ok(Retention { conversations_days: r.get(0)?, documents_days: r.get(1)? }),
            )
            .optional()?;
        row.ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))
    }

    /// Sets a user's own retention (both `None`: back to the box's).
    pub fn set_user_retention(&self, user_id: i64, retention: Retention) -> Result<()> {
        let conn = self.writer();
        let exists: bool =
            conn.query_row("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)", [user_id], |r| r.get(0))?;
        if !exists {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        if retention == Retention::default() {
            conn.execute("DELETE FROM user_retention WHERE user_id = ?1", [user_id])?;
        } else {
            conn.execute(
                "INSERT INTO user_retention (user_id, conversations_days, documents_days, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id) DO UPDATE SET conversations_days = ?2, documents_days = ?3, updated_at = ?4",
                params![user_id, retention.conversations_days, retention.documents_days, super::now()],
            )?;
        }
        Ok(())
    }

    /// Deletes, for every user, the conversations last active and the documents added
    /// more than their number of days before `now` (a user's own setting, else the box's
    /// `conversations_days` / `documents_days`; 0 keeps forever), in one transaction.
    /// Messages and chunks go one by one so the index hears of it through the outbox;
    /// document bytes no other document shares go too. Returns what went, per user.
    pub fn apply_retention(
        &self,
        conversations_days: u32,
        documents_days: u32,
        now: i64,
    ) -> Result<Vec<RetentionDeleted>> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let users: Vec<(i64, Option<u32>, Option<u32>)> = tx
            .prepare(
                "SELECT u.id, r.conversations_days, r.documents_days FROM users u
                 LEFT JOIN user_retention r ON r.user_id = u.id ORDER BY u.id",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut report = Vec::new();
        for (user_id, own_conversations, own_documents) in users {
            let mut deleted = RetentionDeleted { user_id, ..Default::default() };
            let days = own_conversations.unwrap_or(conversations_days);
            if days > 0 {
                deleted.conversations = old_conversations(&tx, user_id, now - i64::from(days) * DAY)?;
                for id in &deleted.conversations {
                    tx.execute("DELETE FROM messages WHERE conversation_id = ?1", [id])?;
                    tx.execute("DELETE FROM conversations WHERE id = ?1", [id])?;
                }
            }
            let days = own_documents.unwrap_or(documents_days);
            if days > 0 {
                deleted.documents = old_documents(&tx, user_id, now - i64::from(days) * DAY)?;
                for id in &deleted.documents {
                    delete_document_in(&tx, *id, now)?;
                }
            }
            if !deleted.conversations.is_empty() || !deleted.documents.is_empty() {
                report.push(deleted);
            }
        }
        tx.execute(
            "DELETE FROM blobs WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.sha256 = blobs.sha256)",
            [],
        )?;
        tx.commit()?;
        Ok(report)
    }

    /// When a maintenance task (`backup`, `retention`) last ran, in Unix seconds.
    pub fn maintenance_last_run(&self, task: &str) -> Result<Option<i64>> {
        Ok(self
            .reader()
            .query_row("SELECT last_run_at FROM maintenance_runs WHERE task = ?1", [task], |r| r.get(0))
            .optional()?)
    }

    pub fn set_maintenance_run(&self, task: &str, at: i64) -> Result<()> {
        self.writer().execute(
            "INSERT INTO maintenance_runs (task, last_run_at) VALUES (?1, ?2)
             ON CONFLICT (task) DO UPDATE SET last_run_at = ?2",
            params![task, at],
        )?;
        Ok(())
    }
}

fn old_conversations(tx: &Transaction<'_>, user_id: i64, before: i64) -> Result<Vec<String>> {
    let ids = tx
        .prepare("SELECT id FROM conversations WHERE user_id = ?1 AND updated_at < ?2 ORDER BY updated_at")?
        .query_map(params![user_id, before], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

fn old_documents(tx: &Transaction<'_>, user_id: i64, before: i64) -> Result<Vec<i64>> {
    let ids = tx
        .prepare("SELECT id FROM documents WHERE user_id = ?1 AND created_at < ?2 ORDER BY id")?
        .query_map(params![user_id, before], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// As `Store::delete_document`, inside a transaction (blobs are swept by the caller).
fn delete_document_in(tx: &Transaction<'_>, id: i64, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE jobs SET state = 'failed', error = 'the document was deleted', updated_at = ?2
         WHERE document_id = ?1 AND state IN ('queued', 'running')",
        params![id, now],
    )?;
    tx.execute("DELETE FROM chunks WHERE document_id = ?1", [id])?;
    tx.execute("DELETE FROM documents WHERE id = ?1", [id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{temp_store, NewTurn, Role};

    fn turn(store: &Store, user_id: i64, text: &str) -> String {
        let t = NewTurn {
            conversation_id: None,
            new_id: None,
            user_id,
            user_message: text.into(),
            reply: "ok".into(),
            model: "m".into(),
            prompt_tokens: 1,
            completion_tokens: 1,
            finish_reason: "stop".into(),
            knowledge: None,
            citations: None,
            tool_calls: None,
        };
        store.append_turn(&t).unwrap().conversation_id
    }

    #[test]
    fn old_conversations_go_by_the_box_or_the_users_own_days() {
        let (_dir, store) = temp_store();
        let alice =
            store.create_account("alice", Role::User, "phc", &crate::audit::Actor::system()).unwrap().id;
        let bob = store.create_account("bob", Role::User, "phc", &crate::audit::Actor::system()).unwrap().id;
        let old_a = turn(&store, alice, "old one");
        let new_a = turn(&store, alice, "new one");
        let old_b = turn(&store, bob, "bob's old one");
        store
            .writer()
            .execute("UPDATE conversations SET updated_at = 0 WHERE id IN (?1, ?2)", params![old_a, old_b])
            .unwrap();
        store.add_document(alice, "a.txt", "text", b"hello").unwrap();
        store.writer().execute("UPDATE documents SET created_at = 0", []).unwrap();
        // Bob keeps his forever; the box keeps 30 days of conversations and all documents.
        store
            .set_user_retention(bob, Retention { conversations_days: Some(0), documents_days: None })
            .unwrap();
        assert_eq!(store.user_retention(bob).unwrap().conversations_days, Some(0));
        let report = store.apply_retention(30, 0, super::super::now()).unwrap();
        assert_eq!(
            report,
            [RetentionDeleted { user_id: alice, conversations: vec![old_a.clone()], documents: vec![] }]
        );
        assert!(store.conversation(alice, &new_a).is_ok());
        assert!(store.conversation(bob, &old_b).is_ok());
        let outbox: i64 = store
            .reader()
            .query_row(
                "SELECT COUNT(*) FROM index_outbox WHERE op = 'delete' AND kind = 'message'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(outbox, 2, "the index hears of both messages");
        let report = store.apply_retention(30, 1, super::super::now()).unwrap();
        assert_eq!(report[0].documents.len(), 1);
        let blobs: i64 = store.reader().query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0)).unwrap();
        assert_eq!(blobs, 0, "the bytes go with the document");
        store.set_user_retention(bob, Retention::default()).unwrap();
        assert_eq!(store.user_retention(bob).unwrap(), Retention::default());
        assert!(store.user_retention(999).is_err());
    }
}
