//! A user's conversations read out whole (for an export) and written back (an import).
//! Importing the same export again adds nothing: each imported conversation remembers the
//! id it had (`conversation_imports`).

use super::{now, Result, Store, StoreError};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

/// One conversation as exported: everything stored about it but the owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedConversation {
    pub id: String,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge: Option<bool>,
    pub messages: Vec<ExportedMessage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedMessage {
    pub role: String,
    pub content: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citations: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Imported {
    pub conversations: usize,
    pub messages: usize,
    /// Conversations already there (imported before, or the user's own).
    pub skipped: usize,
}

impl Store {
    /// All of a user's conversations with their messages, oldest first.
    pub fn export_conversations(&self, user_id: i64) -> Result<Vec<ExportedConversation>> {
        let conn = self.reader();
        let mut conversations: Vec<ExportedConversation> = conn
            .prepare(
                "SELECT id, title, created_at, updated_at, knowledge FROM conversations
                 WHERE user_id = ?1 ORDER BY created_at, rowid",
            )?
            .query_map([user_id], |r| {
                Ok(ExportedConversation {
                    id: r.get(0)?,
                    title: r.get(1)?,
                    created_at: r.get(2)?,
                    updated_at: r.get(3)?,
                    knowledge: r.get(4)?,
                    messages: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = conn.prepare(
            "SELECT role, content, created_at, model, prompt_tokens, completion_tokens, finish_reason,
                    citations, tool_calls
             FROM messages WHERE conversation_id = ?1 ORDER BY id",
        )?;
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        for conversation in &mut conversations {
            conversation.messages = stmt
                .query_map([&conversation.id], |r| {
                    Ok(ExportedMessage {
                        role: r.get(0)?,
                        content: r.get(1)?,
                        created_at: r.get(2)?,
                        model: r.get(3)?,
                        prompt_tokens: r.get(4)?,
                        completion_tokens: r.get(5)?,
                        finish_reason: r.get(6)?,
                        citations: json(r.get(7)?),
                        tool_calls: json(r.get(8)?),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
        }
        Ok(conversations)
    }

    /// Adds exported conversations to a user's, all or nothing. A conversation already
    /// imported into this user (by its exported id), or that is the user's own, is skipped;
    /// one whose id another user holds gets a new id.
    pub fn import_conversations(
        &self,
        user_id: i64,
        conversations: &[ExportedConversation],
    ) -> Result<Imported> {
        for c in conversations {
            if let Some(m) =
                c.messages.iter().find(|m| !matches!(m.role.as_str(), "system" | "user" | "assistant"))
            {
                return Err(StoreError::Conflict(format!(
                    "conversation '{}': role '{}' is not system, user or assistant",
                    c.id, m.role
                )));
            }
        }
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let mut done = Imported::default();
        for c in conversations {
            if already_here(&tx, user_id, &c.id)? {
                done.skipped += 1;
                continue;
            }
            let taken: bool =
                tx.query_row("SELECT EXISTS (SELECT 1 FROM conversations WHERE id = ?1)", [&c.id], |r| {
                    r.get(0)
                })?;
            let id = if taken { uuid::Uuid::new_v4().to_string() } else { c.id.clone() };
            tx.execute(
                "INSERT INTO conversations (id, user_id, title, created_at, updated_at, knowledge)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, user_id, c.title, c.created_at, c.updated_at, c.knowledge],
            )?;
            for m in &c.messages {
                let text = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
                tx.execute(
                    "INSERT INTO messages (conversation_id, role, content, model, prompt_tokens, completion_tokens,
                                           finish_reason, created_at, citations, tool_calls)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        id,
                        m.role,
                        m.content,
                        m.model,
                        m.prompt_tokens,
                        m.completion_tokens,
                        m.finish_reason,
                        m.created_at,
                        text(&m.citations),
                        text(&m.tool_calls)
                    ],
                )?;
            }
            tx.execute(
                "INSERT INTO conversation_imports (user_id, source_id, conversation_id) VALUES (?1, ?2, ?3)",
                params![user_id, c.id, id],
            )?;
            done.conversations += 1;
            done.messages += c.messages.len();
        }
        tx.commit()?;
        tracing::debug!(at = now(), user_id, ?done, "conversations imported");
        Ok(done)
    }
}

fn already_here(tx: &Transaction<'_>, user_id: i64, source_id: &str) -> Result<bool> {
    let own: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM conversations WHERE id = ?1 AND user_id = ?2",
            params![source_id, user_id],
            |r| r.get(0),
        )
        .optional()?;
    let imported: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM conversation_imports WHERE user_id = ?1 AND source_id = ?2",
            params![user_id, source_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(own.is_some() || imported.is_some())
}

#[cfg(test)]
mod tests {
    use crate::store::{temp_store, NewTurn, Role};

    #[test]
    fn an_export_imports_into_another_user_once() {
        let (_dir, store) = temp_store();
        let alice =
            store.create_account("alice", Role::User, "phc", &crate::audit::Actor::system()).unwrap().id;
        let bob = store.create_account("bob", Role::User, "phc", &crate::audit::Actor::system()).unwrap().id;
        let turn = NewTurn {
            conversation_id: None,
            new_id: None,
            user_id: alice,
            user_message: "what time is it?".into(),
            reply: "It is noon.".into(),
            model: "m".into(),
            prompt_tokens: 3,
            completion_tokens: 4,
            finish_reason: "stop".into(),
            knowledge: Some(false),
            citations: None,
            tool_calls: Some(r#"[{"name":"clock","arguments":{},"result":"noon","ok":true}]"#.into()),
        };
        store.append_turn(&turn).unwrap();
        let export = store.export_conversations(alice).unwrap();
        assert_eq!(export[0].messages[1].tool_calls.as_ref().unwrap()[0]["name"], "clock");
        let first = store.import_conversations(bob, &export).unwrap();
        assert_eq!((first.conversations, first.messages, first.skipped), (1, 2, 0));
        let again = store.import_conversations(bob, &export).unwrap();
        assert_eq!((again.conversations, again.skipped), (0, 1), "idempotent");
        let mine = store.import_conversations(alice, &export).unwrap();
        assert_eq!(mine.skipped, 1, "alice's own");
        let mut bobs = store.export_conversations(bob).unwrap();
        assert_ne!(bobs[0].id, export[0].id, "a new id: alice holds that one");
        bobs[0].id = export[0].id.clone();
        assert_eq!(bobs, export, "lossless");
        let mut bad = export.clone();
        bad[0].messages[0].role = "tool".into();
        bad[0].id = "other".into();
        assert!(store.import_conversations(bob, &bad).is_err());
    }
}
