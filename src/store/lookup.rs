//! Lookups that turn search hits back into rows, checking ownership again: the index
//! is derived data, SQLite has the last word on what exists and who owns it.

use super::{Result, Store};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// Where a message lives, for showing a search hit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageRef {
    pub id: i64,
    pub conversation_id: String,
    pub conversation_title: String,
    pub role: String,
}

impl Store {
    /// This user's messages among `ids`, in the order of `ids`; others are skipped.
    pub fn message_refs(&self, user_id: i64, ids: &[i64]) -> Result<Vec<MessageRef>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT m.id, c.id, c.title, m.role FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.id = ?1 AND c.user_id = ?2",
        )?;
        let mut refs = Vec::with_capacity(ids.len());
        for id in ids {
            let found = stmt
                .query_row(params![id, user_id], |r| {
                    Ok(MessageRef {
                        id: r.get(0)?,
                        conversation_id: r.get(1)?,
                        conversation_title: r.get(2)?,
                        role: r.get(3)?,
                    })
                })
                .optional()?;
            refs.extend(found);
        }
        Ok(refs)
    }
}
