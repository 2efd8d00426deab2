//! Conversations and their messages. Every query is scoped to the owning user, so a
//! conversation id from another user reads as "not found".

use super::{now, Result, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Conversation {
    pub id: String,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Message {
    pub id: i64,
    pub role: String,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// The document excerpts a reply was given (see `knowledge::Citation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citations: Option<serde_json::Value>,
    /// The tools a reply called, in order, with their results (see `skills::ToolRun`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    pub created_at: i64,
}

/// One exchange to persist: the user's message and the model's reply, together.
#[derive(Debug, Clone)]
pub struct NewTurn {
    /// An existing conversation of this user, or `None` to start one.
    pub conversation_id: Option<String>,
    /// The id a started conversation gets (chosen before the turn ran, so what the turn's
    /// skills did can refer to it); a fresh one when `None`.
    pub new_id: Option<String>,
    pub user_id: i64,
    pub user_message: String,
    pub reply: String,
    pub model: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub finish_reason: String,
    /// The conversation's knowledge setting to remember, when the request gave one.
    pub knowledge: Option<bool>,
    /// JSON citations of the reply, when documents were used.
    pub citations: Option<String>,
    /// JSON tool calls of the reply and their results, when it called any.
    pub tool_calls: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnIds {
    pub conversation_id: String,
    pub user_message_id: i64,
    pub reply_id: i64,
}

const TITLE_CHARS: usize = 60;

fn title_from(message: &str) -> String {
    let line = message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("New conversation");
    let mut title: String = line.chars().take(TITLE_CHARS).collect();
    if line.chars().count() > TITLE_CHARS {
        title.push('…');
    }
    title
}

impl Store {
    /// Persists a whole turn in one transaction; returns after COMMIT.
    pub fn append_turn(&self, turn: &NewTurn) -> Result<TurnIds> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let t = now();
        let conversation_id = match &turn.conversation_id {
            Some(id) => {
                let owned = tx.execute(
                    "UPDATE conversations SET updated_at = ?3 WHERE id = ?1 AND user_id = ?2",
                    params![id, turn.user_id, t],
                )?;
                if owned == 0 {
                    return Err(StoreError::NotFound(format!("conversation '{id}'")));
                }
                id.clone()
            }
            None => {
                let id = turn.new_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                // (The knowledge setting is stored below, for new and old conversations.)
                tx.execute(
                    "INSERT INTO conversations (id, user_id, title, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?4)",
                    params![id, turn.user_id, title_from(&turn.user_message), t],
                )?;
                id
            }
        };
        if let Some(knowledge) = turn.knowledge {
            tx.execute(
                "UPDATE conversations SET knowledge = ?2 WHERE id = ?1",
                params![conversation_id, knowledge],
            )?;
        }
        tx.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at) VALUES (?1, 'user', ?2, ?3)",
            params![conversation_id, turn.user_message, t],
        )?;
        let user_message_id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO messages (conversation_id, role, content, model, prompt_tokens, completion_tokens,
                                   finish_reason, created_at, citations, tool_calls)
             VALUES (?1, 'assistant', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                conversation_id,
                turn.reply,
                turn.model,
                turn.prompt_tokens,
                turn.completion_tokens,
                turn.finish_reason,
                t,
                turn.citations,
                turn.tool_calls
            ],
        )?;
        let reply_id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(TurnIds { conversation_id, user_message_id, reply_id })
    }

    /// A conversation of this user, or `NotFound` (also for other users' ids).
    pub fn conversation(&self, user_id: i64, id: &str) -> Result<Conversation> {
        self.reader()
            .query_row(
                "SELECT id, title, created_at, updated_at FROM conversations WHERE id = ?1 AND user_id = ?2",
                params![id, user_id],
                |row| {
                    Ok(Conversation {
                        id: row.get(0)?,
                        title: row.get(1)?,
                        created_at: row.get(2)?,
                        updated_at: row.get(3)?,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("conversation '{id}'")))
    }

    /// The knowledge setting remembered for one of this user's conversations.
    pub fn conversation_knowledge(&self, user_id: i64, id: &str) -> Result<Option<bool>> {
        self.reader()
            .query_row(
                "SELECT knowledge FROM conversations WHERE id = ?1 AND user_id = ?2",
                params![id, user_id],
                |row| row.get::<_, Option<bool>>(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("conversation '{id}'")))
    }

    /// Renames one of this user's conversations.
    pub fn rename_conversation(&self, user_id: i64, id: &str, title: &str) -> Result<()> {
        let changed = self.writer().execute(
            "UPDATE conversations SET title = ?3 WHERE id = ?1 AND user_id = ?2",
            params![id, user_id, title],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("conversation '{id}'")));
        }
        Ok(())
    }

    /// Deletes one of this user's conversations and its messages.
    pub fn delete_conversation(&self, user_id: i64, id: &str) -> Result<()> {
        let changed = self
            .writer()
            .execute("DELETE FROM conversations WHERE id = ?1 AND user_id = ?2", params![id, user_id])?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("conversation '{id}'")));
        }
        Ok(())
    }

    /// Deletes the newest turn (the last user message and everything after it) of one
    /// of this user's conversations, so a reply can be regenerated.
    pub fn delete_last_turn(&self, user_id: i64, id: &str) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let last_user: Option<i64> = tx.query_row(
            "SELECT MAX(m.id) FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE c.id = ?1 AND c.user_id = ?2 AND m.role = 'user'",
            params![id, user_id],
            |r| r.get(0),
        )?;
        let Some(from) = last_user else {
            return Err(StoreError::NotFound(format!("a turn in conversation '{id}'")));
        };
        tx.execute("DELETE FROM messages WHERE conversation_id = ?1 AND id >= ?2", params![id, from])?;
        tx.commit()?;
        Ok(())
    }

    /// This user's conversations, most recently active first.
    pub fn list_conversations(&self, user_id: i64, limit: u32, offset: u32) -> Result<Vec<Conversation>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(
            "SELECT id, title, created_at, updated_at FROM conversations
             WHERE user_id = ?1 ORDER BY updated_at DESC, rowid DESC LIMIT ?2 OFFSET ?3",
        )?;
        let rows = stmt
            .query_map(params![user_id, limit, offset], |row| {
                Ok(Conversation {
                    id: row.get(0)?,
                    title: row.get(1)?,
                    created_at: row.get(2)?,
                    updated_at: row.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The messages of one of this user's conversations, oldest first.
    pub fn messages(&self, user_id: i64, conversation_id: &str) -> Result<Vec<Message>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(
            "SELECT m.id, m.role, m.content, m.model, m.prompt_tokens, m.completion_tokens,
                    m.finish_reason, m.created_at, m.citations, m.tool_calls
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE c.id = ?1 AND c.user_id = ?2 ORDER BY m.id",
        )?;
        let rows = stmt
            .query_map(params![conversation_id, user_id], |row| {
                Ok(Message {
                    id: row.get(0)?,
                    role: row.get(1)?,
                    content: row.get(2)?,
                    model: row.get(3)?,
                    prompt_tokens: row.get(4)?,
                    completion_tokens: row.get(5)?,
                    finish_reason: row.get(6)?,
                    created_at: row.get(7)?,
                    citations: row.get::<_, Option<String>>(8)?.and_then(|c| serde_json::from_str(&c).ok()),
                    tool_calls: row.get::<_, Option<String>>(9)?.and_then(|c| serde_json::from_str(&c).ok()),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{temp_store, Role};

    fn turn(user_id: i64, conversation_id: Option<String>, text: &str) -> NewTurn {
        NewTurn {
            conversation_id,
            new_id: None,
            user_id,
            user_message: text.into(),
            reply: format!("reply to {text}"),
            model: "m".into(),
            prompt_tokens: 10,
            completion_tokens: 3,
            finish_reason: "stop".into(),
            knowledge: None,
            citations: None,
            tool_calls: None,
        }
    }

    #[test]
    fn turns_accumulate_in_order_and_stay_private() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let bob = store.create_user("bob", Role::User).unwrap();
        let first = store.append_turn(&turn(alice.id, None, "hello")).unwrap();
        let id = first.conversation_id.clone();
        store.append_turn(&turn(alice.id, Some(id.clone()), "again")).unwrap();

        let messages = store.messages(alice.id, &id).unwrap();
        let texts: Vec<_> = messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["hello", "reply to hello", "again", "reply to again"]);
        assert_eq!(store.conversation(alice.id, &id).unwrap().title, "hello");

        assert!(store.messages(bob.id, &id).unwrap().is_empty());
        assert!(matches!(store.conversation(bob.id, &id), Err(StoreError::NotFound(_))));
        assert!(store.list_conversations(bob.id, 50, 0).unwrap().is_empty());
        let stolen = store.append_turn(&turn(bob.id, Some(id.clone()), "mine now"));
        assert!(matches!(stolen, Err(StoreError::NotFound(_))));
        assert_eq!(store.messages(alice.id, &id).unwrap().len(), 4, "failed turn left no trace");
    }

    #[test]
    fn conversations_are_renamed_and_deleted_only_by_their_owner() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let bob = store.create_user("bob", Role::User).unwrap();
        let id = store.append_turn(&turn(alice.id, None, "hello")).unwrap().conversation_id;
        assert!(matches!(store.rename_conversation(bob.id, &id, "x"), Err(StoreError::NotFound(_))));
        assert!(matches!(store.delete_conversation(bob.id, &id), Err(StoreError::NotFound(_))));
        store.append_turn(&turn(alice.id, Some(id.clone()), "again")).unwrap();
        assert!(store.delete_last_turn(bob.id, &id).is_err());
        store.delete_last_turn(alice.id, &id).unwrap();
        let texts: Vec<_> = store.messages(alice.id, &id).unwrap().into_iter().map(|m| m.content).collect();
        assert_eq!(texts, ["hello", "reply to hello"], "only the newest turn went");
        store.rename_conversation(alice.id, &id, "Greetings").unwrap();
        assert_eq!(store.conversation(alice.id, &id).unwrap().title, "Greetings");
        store.delete_conversation(alice.id, &id).unwrap();
        assert!(store.messages(alice.id, &id).unwrap().is_empty(), "messages go with it");
        assert!(matches!(store.conversation(alice.id, &id), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn titles_are_short_first_lines() {
        assert_eq!(title_from("\n  Plan a trip  \nto Rome"), "Plan a trip");
        let long = "x".repeat(100);
        assert_eq!(title_from(&long).chars().count(), TITLE_CHARS + 1);
        assert_eq!(title_from("   "), "New conversation");
    }
}
