//! The index outbox: triggers record every added or deleted message and chunk (and every
//! added, changed or deleted note) in the
//! same transaction as the change; the search indexer applies entries in order and
//! acknowledges them only after the index has committed. Replaying an entry is
//! harmless (adds are upserts, deletes are idempotent).

use super::{Result, Store};
use rusqlite::{params, OptionalExtension};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    Message,
    Chunk,
    Note,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Message => "message",
            ItemKind::Chunk => "chunk",
            ItemKind::Note => "note",
        }
    }

    fn parse(s: &str) -> ItemKind {
        match s {
            "chunk" => ItemKind::Chunk,
            "note" => ItemKind::Note,
            _ => ItemKind::Message,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub seq: i64,
    pub kind: ItemKind,
    pub item_id: i64,
    pub delete: bool,
}

/// Everything the index keeps of a message, chunk or note.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexItem {
    pub kind: ItemKind,
    pub id: i64,
    pub user_id: i64,
    /// The conversation of a message.
    pub conversation_id: Option<String>,
    /// The document of a chunk.
    pub document_id: Option<i64>,
    pub created_at: i64,
    pub text: String,
    /// What a chunk is read under, searched beside its text: the document's name, its
    /// title and the heading of the chunk's section (a chunk that continues a section
    /// starts without it).
    pub context: Option<String>,
}

const MESSAGE_ITEM: &str = "SELECT m.id, c.user_id, m.conversation_id, NULL, m.created_at, m.content, NULL
     FROM messages m JOIN conversations c ON c.id = m.conversation_id";
/// A chunk's context: its document's name, then the first line of the document's first
/// chunk and of the last chunk up to this one when they are headings (a heading always
/// starts a chunk, see `knowledge/chunk.rs`).
const CHUNK_ITEM: &str = "SELECT k.id, k.user_id, NULL, k.document_id, d.created_at, k.text,
        d.name || char(10) || COALESCE((SELECT substr(h.text, 1, instr(h.text || char(10), char(10)) - 1)
            FROM chunks h WHERE h.document_id = k.document_id AND h.ord = 0 AND h.text LIKE '#%'), '')
        || char(10) || COALESCE((SELECT substr(h.text, 1, instr(h.text || char(10), char(10)) - 1)
            FROM chunks h WHERE h.document_id = k.document_id AND h.ord <= k.ord AND h.ord > 0
            AND h.text LIKE '#%' ORDER BY h.ord DESC LIMIT 1), '')
     FROM chunks k JOIN documents d ON d.id = k.document_id";
/// A note is searched by its title and text together.
const NOTE_ITEM: &str =
    "SELECT n.id, n.user_id, NULL, NULL, n.created_at, n.title || char(10) || n.text, NULL
     FROM notes n";

fn item_from_row(kind: ItemKind, row: &rusqlite::Row<'_>) -> rusqlite::Result<IndexItem> {
    Ok(IndexItem {
        kind,
        id: row.get(0)?,
        user_id: row.get(1)?,
        conversation_id: row.get(2)?,
        document_id: row.get(3)?,
        created_at: row.get(4)?,
        text: row.get(5)?,
        context: row.get(6)?,
    })
}

fn item_query(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Message => MESSAGE_ITEM,
        ItemKind::Chunk => CHUNK_ITEM,
        ItemKind::Note => NOTE_ITEM,
    }
}

fn id_field(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Message => "m.id",
        ItemKind::Chunk => "k.id",
        ItemKind::Note => "n.id",
    }
}

impl Store {
    /// The oldest outbox entries, at most `limit`.
    pub fn outbox_batch(&self, limit: u32) -> Result<Vec<OutboxEntry>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached("SELECT seq, kind, item_id, op FROM index_outbox ORDER BY seq LIMIT ?1")?;
        let rows = stmt.query_map([limit], |r| {
            Ok(OutboxEntry {
                seq: r.get(0)?,
                kind: ItemKind::parse(&r.get::<_, String>(1)?),
                item_id: r.get(2)?,
                delete: r.get::<_, String>(3)? == "delete",
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets outbox entries up to `seq`, once the index holds them.
    pub fn outbox_ack(&self, seq: i64) -> Result<()> {
        self.writer().execute("DELETE FROM index_outbox WHERE seq <= ?1", [seq])?;
        Ok(())
    }

    /// The newest outbox sequence number (0 when empty).
    pub fn outbox_head(&self) -> Result<i64> {
        Ok(self.reader().query_row("SELECT COALESCE(MAX(seq), 0) FROM index_outbox", [], |r| r.get(0))?)
    }

    /// The current state of one item, `None` when it no longer exists.
    pub fn index_item(&self, kind: ItemKind, id: i64) -> Result<Option<IndexItem>> {
        let sql = format!("{} WHERE {} = ?1", item_query(kind), id_field(kind));
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&sql)?;
        Ok(stmt.query_row([id], |r| item_from_row(kind, r)).optional()?)
    }

    /// Items with ids after `after`, in id order, at most `limit` (for rebuilds).
    pub fn index_items_after(&self, kind: ItemKind, after: i64, limit: u32) -> Result<Vec<IndexItem>> {
        let field = id_field(kind);
        let filter = if kind == ItemKind::Message { " AND m.role != 'system'" } else { "" };
        let sql = format!("{} WHERE {field} > ?1{filter} ORDER BY {field} LIMIT ?2", item_query(kind));
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![after, limit], |r| item_from_row(kind, r))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many messages, chunks and notes there are to index.
    pub fn index_item_count(&self) -> Result<u64> {
        Ok(self.reader().query_row(
            "SELECT (SELECT COUNT(*) FROM messages WHERE role != 'system') + (SELECT COUNT(*) FROM chunks)
                  + (SELECT COUNT(*) FROM notes)",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{temp_store, NewChunk, Role};

    #[test]
    fn changes_reach_the_outbox_in_their_transaction() {
        let (_dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let doc = store.add_document(alice.id, "a.txt", "text", b"one two").unwrap().document;
        let chunks = vec![
            NewChunk { text: "one".into(), embedding: None },
            NewChunk { text: "two".into(), embedding: None },
        ];
        store.finish_document(doc.id, &chunks).unwrap();
        let batch = store.outbox_batch(100).unwrap();
        assert_eq!(batch.len(), 2);
        assert!(batch.iter().all(|e| e.kind == ItemKind::Chunk && !e.delete));
        let item = store.index_item(ItemKind::Chunk, batch[0].item_id).unwrap().unwrap();
        assert_eq!((item.user_id, item.document_id, item.text.as_str()), (alice.id, Some(doc.id), "one"));

        store.outbox_ack(batch[1].seq).unwrap();
        store.delete_document(alice.id, doc.id).unwrap();
        let batch = store.outbox_batch(100).unwrap();
        assert_eq!(batch.len(), 2, "both chunks are queued for deletion");
        assert!(batch.iter().all(|e| e.delete));
        assert!(store.index_item(ItemKind::Chunk, batch[0].item_id).unwrap().is_none());
    }
}
