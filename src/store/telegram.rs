//! The Telegram channel's state (`channels/telegram`).
//!
//! Telegram keeps an update until a `getUpdates` call confirms it with a higher `offset`.
//! The offset stored here moves past an update only once it was handled (answered, or
//! ignored), so after a crash the update comes again rather than being lost. Between the
//! turn's COMMIT and the last piece of the answer reaching Telegram, the reply waits in
//! `telegram_replies`: an update that comes again with its reply stored is answered from
//! there, without a second turn. What remains is one crash point that can repeat a
//! message: after Telegram accepted a piece and before `parts_sent` was written.

use super::{now, Result, Store};
use rusqlite::{params, OptionalExtension};

/// A reply stored and not yet all sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramReply {
    pub update_id: i64,
    pub chat_id: i64,
    /// The text to send, whole (split into pieces when sent).
    pub text: String,
    /// What to say in a voice message after the text, when voice replies are on.
    pub speak: Option<String>,
    /// Pieces of `text` Telegram has accepted.
    pub parts_sent: u32,
}

impl Store {
    /// The `offset` to poll with: one past the last update handled; `None` at first.
    pub fn telegram_offset(&self) -> Result<Option<i64>> {
        let conn = self.reader();
        Ok(conn
            .query_row("SELECT next_offset FROM telegram_poll WHERE id = 1", [], |r| r.get(0))
            .optional()?)
    }

    /// Marks an update handled: it is deleted from the pending replies (if there) and the
    /// offset moves past it, in one transaction.
    pub fn telegram_handled(&self, update_id: i64) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM telegram_replies WHERE update_id = ?1", [update_id])?;
        tx.execute(
            "INSERT INTO telegram_poll (id, next_offset) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
            [update_id + 1],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The id of the user a chat speaks as, if that user exists and is not disabled.
    pub fn telegram_user(&self, name: &str) -> Result<Option<i64>> {
        let conn = self.reader();
        Ok(conn
            .query_row("SELECT id FROM users WHERE name = ?1 AND disabled_at IS NULL", [name], |r| r.get(0))
            .optional()?)
    }

    /// The conversation a chat continues, if it has one and it belongs to `user_id` (a
    /// chat given to another user starts afresh).
    pub fn telegram_conversation(&self, chat_id: i64, user_id: i64) -> Result<Option<String>> {
        let conn = self.reader();
        Ok(conn
            .query_row(
                "SELECT conversation_id FROM telegram_chats WHERE chat_id = ?1 AND user_id = ?2",
                params![chat_id, user_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// After the turn's COMMIT: keeps the reply until it is sent, and the chat's
    /// conversation, in one transaction.
    pub fn telegram_reply_stored(
        &self,
        reply: &TelegramReply,
        user_id: i64,
        conversation_id: &str,
    ) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO telegram_replies (update_id, chat_id, text, speak, parts_sent, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (update_id) DO UPDATE SET text = excluded.text, speak = excluded.speak,
                                                  parts_sent = excluded.parts_sent",
            params![reply.update_id, reply.chat_id, reply.text, reply.speak, reply.parts_sent, now()],
        )?;
        tx.execute(
            "INSERT INTO telegram_chats (chat_id, user_id, conversation_id, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (chat_id) DO UPDATE SET user_id = excluded.user_id,
                 conversation_id = excluded.conversation_id, updated_at = excluded.updated_at",
            params![reply.chat_id, user_id, conversation_id, now()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A reply stored for this update and not yet all sent.
    pub fn telegram_pending_reply(&self, update_id: i64) -> Result<Option<TelegramReply>> {
        let conn = self.reader();
        Ok(conn
            .query_row(
                "SELECT update_id, chat_id, text, speak, parts_sent FROM telegram_replies WHERE update_id = ?1",
                [update_id],
                |r| {
                    Ok(TelegramReply {
                        update_id: r.get(0)?,
                        chat_id: r.get(1)?,
                        text: r.get(2)?,
                        speak: r.get(3)?,
                        parts_sent: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Telegram accepted the first `parts` pieces of an update's reply.
    pub fn telegram_parts_sent(&self, update_id: i64, parts: u32) -> Result<()> {
        self.writer().execute(
            "UPDATE telegram_replies SET parts_sent = ?2 WHERE update_id = ?1",
            params![update_id, parts],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewTurn, Role};

    fn turn(user_id: i64) -> NewTurn {
        NewTurn {
            conversation_id: None,
            new_id: None,
            user_id,
            user_message: "hi".into(),
            reply: "hello".into(),
            model: "m".into(),
            prompt_tokens: 1,
            completion_tokens: 1,
            finish_reason: "stop".into(),
            knowledge: None,
            citations: None,
            tool_calls: None,
        }
    }

    #[test]
    fn offsets_and_pending_replies_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.telegram_offset().unwrap(), None);
        let alice = store.create_user("alice", Role::User).unwrap();
        assert_eq!(store.telegram_user("alice").unwrap(), Some(alice.id));
        assert_eq!(store.telegram_user("nobody").unwrap(), None);
        store.set_disabled(alice.id, true, &crate::audit::Actor::system()).unwrap();
        assert_eq!(store.telegram_user("alice").unwrap(), None, "a disabled user is not answered");
        store.set_disabled(alice.id, false, &crate::audit::Actor::system()).unwrap();
        let ids = store.append_turn(&turn(alice.id)).unwrap();
        let reply =
            TelegramReply { update_id: 7, chat_id: 42, text: "hello".into(), speak: None, parts_sent: 0 };
        store.telegram_reply_stored(&reply, alice.id, &ids.conversation_id).unwrap();
        store.telegram_parts_sent(7, 1).unwrap();
        store.telegram_handled(5).unwrap();

        let store = Store::open(&path).unwrap();
        assert_eq!(store.telegram_offset().unwrap(), Some(6));
        let pending = store.telegram_pending_reply(7).unwrap().unwrap();
        assert_eq!((pending.parts_sent, pending.text.as_str()), (1, "hello"));
        assert_eq!(store.telegram_conversation(42, alice.id).unwrap(), Some(ids.conversation_id.clone()));
        assert_eq!(store.telegram_conversation(42, alice.id + 1).unwrap(), None, "another user's");

        store.telegram_handled(7).unwrap();
        store.telegram_handled(6).unwrap();
        assert_eq!(store.telegram_offset().unwrap(), Some(8), "the offset never goes back");
        assert_eq!(store.telegram_pending_reply(7).unwrap(), None);

        // A deleted conversation leaves the chat without one.
        store.delete_conversation(alice.id, &ids.conversation_id).unwrap();
        assert_eq!(store.telegram_conversation(42, alice.id).unwrap(), None);
    }
}
