//! A user's notes: a title and a text, edited in place. The search index follows them
//! through the outbox (`note` entries, by triggers on the table), like messages and chunks.

use super::{now, Result, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Note {
    pub id: i64,
    #[serde(skip)]
    pub user_id: i64,
    pub title: String,
    pub text: String,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, user_id, title, text, created_at, updated_at";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Note> {
    Ok(Note {
        id: row.get(0)?,
        user_id: row.get(1)?,
        title: row.get(2)?,
        text: row.get(3)?,
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

/// The note `id` if it is this user's: another user's is as absent as a missing one.
fn get(conn: &rusqlite::Connection, user_id: i64, id: i64) -> Result<Note> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM notes WHERE id = ?1 AND user_id = ?2"),
        [id, user_id],
        from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("note {id}")))
}

impl Store {
    pub fn add_note(&self, user_id: i64, title: &str, text: &str) -> Result<Note> {
        let conn = self.writer();
        let t = now();
        conn.execute(
            "INSERT INTO notes (user_id, title, text, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![user_id, title, text, t],
        )?;
        get(&conn, user_id, conn.last_insert_rowid())
    }

    pub fn note(&self, user_id: i64, id: i64) -> Result<Note> {
        get(&self.reader(), user_id, id)
    }

    /// This user's notes, the most recently changed first.
    pub fn notes(&self, user_id: i64, limit: u32, offset: u32) -> Result<Vec<Note>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notes WHERE user_id = ?1 ORDER BY updated_at DESC, id DESC LIMIT ?2 OFFSET ?3"
        ))?;
        let rows = stmt.query_map(params![user_id, limit, offset], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn note_count(&self, user_id: i64) -> Result<u64> {
        Ok(self
            .reader()
            .query_row("SELECT COUNT(*) FROM notes WHERE user_id = ?1", [user_id], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Those of `ids` that are this user's notes, in the order of `ids`.
    pub fn notes_by_ids(&self, user_id: i64, ids: &[i64]) -> Result<Vec<Note>> {
        let conn = self.reader();
        let mut notes = Vec::with_capacity(ids.len());
        for id in ids {
            match get(&conn, user_id, *id) {
                Ok(note) => notes.push(note),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(notes)
    }

    /// Replaces the title, the text, or both, of this user's note.
    pub fn update_note(
        &self,
        user_id: i64,
        id: i64,
        title: Option<&str>,
        text: Option<&str>,
    ) -> Result<Note> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let old = get(&tx, user_id, id)?;
        tx.execute(
            "UPDATE notes SET title = ?2, text = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, title.unwrap_or(&old.title), text.unwrap_or(&old.text), now()],
        )?;
        let note = get(&tx, user_id, id)?;
        tx.commit()?;
        Ok(note)
    }

    pub fn delete_note(&self, user_id: i64, id: i64) -> Result<()> {
        match self.writer().execute("DELETE FROM notes WHERE id = ?1 AND user_id = ?2", [id, user_id])? {
            0 => Err(StoreError::NotFound(format!("note {id}"))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{temp_store, ItemKind, Role, StoreError};

    #[test]
    fn notes_are_their_owners_alone_and_reach_the_outbox() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let bob = store.create_user("bob", Role::User).unwrap();
        let wifi = store.add_note(alice.id, "Wifi", "guest password marmalade").unwrap();
        let bins = store.add_note(alice.id, "Bins", "black bin on Thursday").unwrap();
        store.add_note(bob.id, "Bob's", "bob's own").unwrap();
        assert_eq!((wifi.title.as_str(), wifi.text.as_str()), ("Wifi", "guest password marmalade"));

        let mine: Vec<i64> = store.notes(alice.id, 10, 0).unwrap().iter().map(|n| n.id).collect();
        assert_eq!(mine, [bins.id, wifi.id], "newest first, bob's not among them");
        assert_eq!(store.note_count(alice.id).unwrap(), 2);
        assert!(matches!(store.note(bob.id, wifi.id), Err(StoreError::NotFound(_))));
        assert!(matches!(
            store.update_note(bob.id, wifi.id, None, Some("mine now")),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(store.delete_note(bob.id, wifi.id), Err(StoreError::NotFound(_))));
        assert_eq!(
            store.note(alice.id, wifi.id).unwrap().text,
            "guest password marmalade",
            "untouched by bob"
        );
        let found: Vec<i64> =
            store.notes_by_ids(bob.id, &[wifi.id, bins.id]).unwrap().iter().map(|n| n.id).collect();
        assert!(found.is_empty(), "bob cannot read alice's through ids");

        let changed = store.update_note(alice.id, wifi.id, None, Some("guest password is jam")).unwrap();
        assert_eq!((changed.title.as_str(), changed.text.as_str()), ("Wifi", "guest password is jam"));
        let item = store.index_item(ItemKind::Note, wifi.id).unwrap().unwrap();
        assert_eq!((item.user_id, item.text.as_str()), (alice.id, "Wifi\nguest password is jam"));

        store.delete_note(alice.id, wifi.id).unwrap();
        assert!(matches!(store.note(alice.id, wifi.id), Err(StoreError::NotFound(_))));
        let notes: Vec<(i64, bool)> = store
            .outbox_batch(100)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == ItemKind::Note)
            .map(|e| (e.item_id, e.delete))
            .collect();
        assert_eq!(notes.len(), 5, "three adds, one update, one delete: {notes:?}");
        assert_eq!(notes.last(), Some(&(wifi.id, true)));
        assert_eq!(store.index_item_count().unwrap(), 2, "the notes left: alice's bins and bob's");
    }
}
