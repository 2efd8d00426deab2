//! Keeping the index in step with SQLite: applying the outbox, and full rebuilds.

use super::{Result, SearchIndex};
use crate::store::{IndexItem, ItemKind, Store};
use tantivy::{doc, TantivyDocument, Term};

/// Outbox entries applied per index commit.
const BATCH: u32 = 2000;

impl SearchIndex {
    fn key_term(&self, kind: ItemKind, id: i64) -> Term {
        Term::from_field_text(self.inner.fields.key, &format!("{}:{id}", kind.as_str()))
    }

    fn document(&self, item: &IndexItem) -> TantivyDocument {
        let f = &self.inner.fields;
        let mut document = doc!(
            f.key => format!("{}:{}", item.kind.as_str(), item.id),
            f.kind => match item.kind {
                ItemKind::Message => "message",
                ItemKind::Chunk => "document",
                ItemKind::Note => "note",
            },
            f.user => item.user_id as u64,
            f.item => item.id as u64,
            f.created => item.created_at,
            f.text => item.text.as_str(),
        );
        if let Some(c) = &item.conversation_id {
            document.add_text(f.conversation, c);
        }
        if let Some(context) = &item.context {
            document.add_text(f.context, context);
        }
        if let Some(d) = item.document_id {
            document.add_u64(f.document, d as u64);
        }
        document
    }

    /// Applies every pending outbox entry (or rebuilds, when the index was created
    /// empty). Returns how many entries were applied.
    pub fn sync(&self, store: &Store) -> Result<usize> {
        if *self.inner.needs_rebuild.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(self.rebuild(store, &|_, _| {})? as usize);
        }
        let mut writer = self.writer();
        let mut applied = 0;
        loop {
            let batch = store.outbox_batch(BATCH)?;
            let Some(last) = batch.last().map(|e| e.seq) else { break };
            for entry in &batch {
                writer.delete_term(self.key_term(entry.kind, entry.item_id));
                if entry.delete {
                    continue;
                }
                if let Some(item) = store.index_item(entry.kind, entry.item_id)? {
                    writer.add_document(self.document(&item))?;
                }
            }
            writer.commit()?;
            // Only now: a crash before this line replays the batch, which is harmless.
            store.outbox_ack(last)?;
            applied += batch.len();
        }
        if applied > 0 {
            // Reload before letting go of the writer: a concurrent `sync` that finds
            // nothing to apply must not search an older view than this commit.
            self.inner.reader.reload()?;
        }
        drop(writer);
        Ok(applied)
    }

    /// Throws the index away and builds it again from SQLite, reporting
    /// `(done, total)` as it goes. Returns the number of items indexed.
    pub fn rebuild(&self, store: &Store, progress: &dyn Fn(u64, u64)) -> Result<u64> {
        let mut writer = self.writer();
        // Everything committed up to here is read below; later entries stay queued.
        let head = store.outbox_head()?;
        let total = store.index_item_count()?;
        writer.delete_all_documents()?;
        let mut done = 0u64;
        progress(0, total);
        for kind in [ItemKind::Message, ItemKind::Chunk, ItemKind::Note] {
            let mut after = 0;
            loop {
                let items = store.index_items_after(kind, after, BATCH)?;
                let Some(last) = items.last().map(|i| i.id) else { break };
                for item in &items {
                    writer.add_document(self.document(item))?;
                }
                after = last;
                done += items.len() as u64;
                progress(done, total.max(done));
            }
        }
        writer.commit()?;
        store.outbox_ack(head)?;
        *self.inner.needs_rebuild.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.inner.reader.reload()?;
        drop(writer);
        Ok(done)
    }

    /// At startup: applies the outbox, then checks the index holds exactly as many
    /// items as SQLite; rebuilds when it doesn't (a lost or damaged index).
    pub fn reconcile(&self, store: &Store) -> Result<()> {
        let applied = self.sync(store)?;
        let expected = store.index_item_count()?;
        let held = self.num_docs();
        if held != expected {
            tracing::warn!(held, expected, "search index disagrees with the database; rebuilding it");
            let started = std::time::Instant::now();
            let n = self.rebuild(store, &|_, _| {})?;
            tracing::info!(items = n, secs = started.elapsed().as_secs_f32(), "search index rebuilt");
        } else if applied > 0 {
            tracing::info!(applied, "search index caught up with the database");
        }
        Ok(())
    }
}
