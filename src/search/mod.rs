//! Full-text search over chat history, document chunks and notes (Tantivy).
//!
//! The index is derived from SQLite and can always be rebuilt from it. It follows the
//! store through the outbox (see `store::outbox`): [`SearchIndex::sync`] applies
//! pending entries, commits, and only then acknowledges them, so after a crash the
//! index is at most behind SQLite, never ahead. An index that is missing, unreadable,
//! of another schema version, or whose document count disagrees with SQLite is
//! rebuilt from scratch when opened.
//!
//! All calls block (disk and CPU): async callers use `spawn_blocking` / `Store::run`.

#[cfg(test)]
mod measure;
mod query;
mod schema;
mod sync;
mod tokenizer;

pub use query::{ends_compound, Hit, HitKind, Page, SearchQuery};
pub use schema::terms;

use schema::{Fields, ANALYZER, SCHEMA_VERSION};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};

/// Memory for the index writer's buffer. Small: documents arrive in modest batches.
const WRITER_MEMORY: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("the search index at {0} is in use by another process (is `hearth serve` running?)")]
    Busy(PathBuf),
    #[error("search index I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

pub type Result<T, E = SearchError> = std::result::Result<T, E>;

/// A handle to the index; clone it freely.
#[derive(Clone)]
pub struct SearchIndex {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    reader: IndexReader,
    fields: Fields,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    /// Set when the index was created empty (new, or discarded): it must be rebuilt.
    needs_rebuild: Mutex<bool>,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it when absent. An index that cannot be read
    /// or has another schema version is discarded (it is derived data) and marked for
    /// a rebuild.
    pub fn open(dir: &Path) -> Result<SearchIndex> {
        std::fs::create_dir_all(dir)?;
        let version_file = dir.join("hearth-schema-version");
        let version = std::fs::read_to_string(&version_file).unwrap_or_default();
        let existing = dir.join("meta.json").exists();
        let mut fresh = !existing;
        if existing && version.trim() != SCHEMA_VERSION {
            tracing::warn!(dir = %dir.display(), "search index has another schema version; rebuilding it");
            discard(dir)?;
            fresh = true;
        }
        let index = match open_index(dir) {
            Ok(index) => index,
            Err(SearchError::Busy(p)) => return Err(SearchError::Busy(p)),
            Err(e) if !fresh => {
                tracing::warn!(error = %e, dir = %dir.display(), "search index unreadable; rebuilding it");
                discard(dir)?;
                fresh = true;
                open_index(dir)?
            }
            Err(e) => return Err(e),
        };
        std::fs::write(&version_file, SCHEMA_VERSION)?;
        let (_, fields) = schema::build();
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY).map_err(|e| match e {
            tantivy::TantivyError::LockFailure(..) => SearchError::Busy(dir.to_path_buf()),
            other => other.into(),
        })?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(SearchIndex {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                reader,
                fields,
                writer: Mutex::new(writer),
                needs_rebuild: Mutex::new(fresh),
            }),
        })
    }

    /// A new index in RAM, to be rebuilt from the database (by [`follow`](Self::follow)
    /// or [`reconcile`](Self::reconcile)). With encryption at rest the index never touches
    /// the disk: rebuilding it at start costs less than sealing every read of an on-disk
    /// one (the numbers are in docs/encryption.md).
    pub fn in_ram() -> Result<SearchIndex> {
        let (schema, fields) = schema::build();
        let index = Index::create_in_ram(schema);
        index.tokenizers().register(ANALYZER, schema::analyzer());
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(SearchIndex {
            inner: Arc::new(Inner {
                dir: PathBuf::new(),
                reader,
                fields,
                writer: Mutex::new(writer),
                needs_rebuild: Mutex::new(true),
            }),
        })
    }

    /// The index's folder (empty for one in RAM).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Documents in the index (messages, chunks and notes).
    pub fn num_docs(&self) -> u64 {
        self.inner.reader.searcher().num_docs()
    }

    /// Keeps the index following the database on a thread of its own: reconciles once
    /// (rebuilding a lost index without delaying startup), then applies new changes
    /// every `every`.
    pub fn follow(&self, store: crate::store::Store, every: std::time::Duration) {
        let index = self.clone();
        std::thread::Builder::new()
            .name("hearth-indexer".into())
            .spawn(move || {
                if let Err(e) = index.reconcile(&store) {
                    tracing::error!(error = %e, "search index reconciliation failed");
                }
                loop {
                    std::thread::sleep(every);
                    if let Err(e) = index.sync(&store) {
                        tracing::warn!(error = %e, "search index update failed; retrying");
                    }
                }
            })
            .expect("spawning the indexer thread");
    }

    fn writer(&self) -> MutexGuard<'_, IndexWriter<TantivyDocument>> {
        // A panic mid-batch leaves uncommitted changes that the next sync rolls back.
        self.inner.writer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn open_index(dir: &Path) -> Result<Index> {
    let (schema, _) = schema::build();
    let directory = MmapDirectory::open(dir).map_err(tantivy::TantivyError::from)?;
    let index = Index::open_or_create(directory, schema)?;
    index.tokenizers().register(ANALYZER, schema::analyzer());
    Ok(index)
}

/// Removes an index's files (never anything else in the directory's parent).
fn discard(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
