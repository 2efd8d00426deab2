//! Ending an account: disabling it (its credentials stop working, its data stays) or
//! deleting it with everything it owns.

use super::{audit, now, Result, Store, StoreError};
use crate::audit::{user_target, Action, Actor, Event};
use rusqlite::{params, Connection, OptionalExtension};

fn user_name(tx: &Connection, user_id: i64) -> Result<String> {
    tx.query_row("SELECT name FROM users WHERE id = ?1", [user_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))
}

impl Store {
    /// Disables (`true`) or re-enables a user. A disabled user's tokens and sessions are
    /// refused and it cannot log in; nothing it owns is touched.
    /// Recorded as done by `by` in the same transaction.
    pub fn set_disabled(&self, user_id: i64, disabled: bool, by: &Actor) -> Result<()> {
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        let name = user_name(&tx, user_id)?;
        let at = disabled.then(now);
        tx.execute("UPDATE users SET disabled_at = ?2 WHERE id = ?1", params![user_id, at])?;
        let mut sessions = 0;
        if disabled {
            sessions = tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
        }
        let action = if disabled { Action::UserDisabled } else { Action::UserEnabled };
        let event = Event::new(by, action)
            .target(user_target(user_id, &name))
            .detail(serde_json::json!({ "sessions_ended": sessions }));
        audit::append(&tx, &event)?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes a user and everything it owns: conversations and messages, documents,
    /// their chunks and any bytes no other document shares, notes, tokens, sessions, jobs, the
    /// skills the owner set for them (`user_skills`, by cascade). The
    /// search index follows through the outbox (the triggers on messages, chunks and notes).
    /// Recorded as done by `by` in the same transaction (the audit log keeps the user's
    /// rows: it has no key into `users`).
    pub fn delete_user(&self, user_id: i64, by: &Actor) -> Result<()> {
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        let name = user_name(&tx, user_id)?;
        let count = |sql: &str| -> rusqlite::Result<i64> { tx.query_row(sql, [user_id], |r| r.get(0)) };
        let detail = serde_json::json!({
            "conversations": count("SELECT COUNT(*) FROM conversations WHERE user_id = ?1")?,
            "documents": count("SELECT COUNT(*) FROM documents WHERE user_id = ?1")?,
            "notes": count("SELECT COUNT(*) FROM notes WHERE user_id = ?1")?,
            "tokens": count("SELECT COUNT(*) FROM api_tokens WHERE user_id = ?1")?,
        });
        // Rows the index follows go one by one, so their outbox triggers fire.
        tx.execute(
            "DELETE FROM messages WHERE conversation_id IN (SELECT id FROM conversations WHERE user_id = ?1)",
            [user_id],
        )?;
        tx.execute("DELETE FROM chunks WHERE user_id = ?1", [user_id])?;
        tx.execute("DELETE FROM notes WHERE user_id = ?1", [user_id])?;
        tx.execute("DELETE FROM users WHERE id = ?1", [user_id])?;
        tx.execute(
            "DELETE FROM blobs WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.sha256 = blobs.sha256)",
            [],
        )?;
        let event = Event::new(by, Action::UserDeleted).target(user_target(user_id, &name)).detail(detail);
        audit::append(&tx, &event)?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::audit::Actor;
    use crate::store::{temp_store, Role};

    #[test]
    fn a_deleted_user_leaves_nothing_and_others_keep_theirs() {
        let (_dir, store) = temp_store();
        let alice = store.create_account("alice", Role::User, "phc", &Actor::system()).unwrap();
        let bob = store.create_account("bob", Role::User, "phc", &Actor::system()).unwrap();
        let conn = store.writer();
        for (user, text) in [(alice.id, "alice's secret"), (bob.id, "bob's note")] {
            conn.execute(
                "INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES (?1, ?2, 't', 0, 0)",
                rusqlite::params![format!("c{user}"), user],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at) VALUES (?1, 'user', ?2, 0)",
                rusqlite::params![format!("c{user}"), text],
            )
            .unwrap();
        }
        drop(conn);
        store.insert_token(alice.id, "t", "hth_x", b"hx").unwrap();
        store.delete_user(alice.id, &Actor::system()).unwrap();
        let count = |sql: &str| -> i64 { store.reader().query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT COUNT(*) FROM messages WHERE content LIKE 'alice%'"), 0);
        assert_eq!(count("SELECT COUNT(*) FROM messages"), 1, "bob's stays");
        assert_eq!(count("SELECT COUNT(*) FROM api_tokens"), 0);
        assert!(count("SELECT COUNT(*) FROM index_outbox WHERE op = 'delete'") >= 1, "the index is told");
        assert!(store.delete_user(alice.id, &Actor::system()).is_err());
        store.set_disabled(bob.id, true, &Actor::system()).unwrap();
        assert!(store.login_candidate("bob").unwrap().is_none(), "a disabled user cannot log in");
        store.set_disabled(bob.id, false, &Actor::system()).unwrap();
        assert!(store.login_candidate("bob").unwrap().is_some());
    }
}
