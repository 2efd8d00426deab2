//! SQLite, the system of record.
//!
//! One writer connection (behind a mutex) and a few reader connections, all in WAL
//! mode. `synchronous = FULL`: a write is acknowledged only after its COMMIT is on
//! disk, so an acknowledged reply survives `kill -9` and power loss. All calls are
//! blocking; async callers run them through [`Store::run`], which moves them off the
//! async runtime.

mod accounts;
mod audit;
mod conversations;
mod documents;
mod jobs;
mod lifecycle;
mod lookup;
mod migrations;
mod notes;
mod outbox;
mod preferences;
mod reminders;
mod retention;
mod telegram;
mod transfer;
mod user_skills;
mod users;
mod workflows;

pub use accounts::{Account, Onboarded};
pub use audit::{AuditFilter, ChainReport};
pub use conversations::{Conversation, Message, NewTurn, TurnIds};
pub use documents::{sha256_hex, ChunkRow, Document, Enqueued, NewChunk, NewDocument};
pub use jobs::{Job, MAX_ATTEMPTS};
pub use lookup::MessageRef;
pub use migrations::schema_version;
pub use notes::Note;
pub use outbox::{IndexItem, ItemKind, OutboxEntry};
pub use preferences::VOICE_LANGUAGE;
pub use reminders::{NewReminder, Reminder};
pub use retention::{Retention, RetentionDeleted};
pub use telegram::TelegramReply;
pub use transfer::{ExportedConversation, ExportedMessage, Imported};
pub use user_skills::UserSkills;
pub use users::{valid_user_name, Role, TokenInfo, TokenOwner, User};
pub use workflows::{RunFilter, WorkflowRun};

use crate::crypt::DbKey;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const READERS: usize = 4;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database task failed: {0}")]
    Task(String),
    /// Storing this would take the user past their storage quota (all in bytes).
    #[error("storage quota exceeded: {used} used + {needed} new > {quota}")]
    QuotaExceeded { used: u64, needed: u64, quota: u64 },
    /// A file to be stored could not be read.
    #[error("{0}")]
    Io(String),
    /// The database is encrypted with another key (or without one given), or is not a
    /// database: it was opened read-only and nothing was written.
    #[error("cannot open database {0}: wrong key, or not a Hearth database")]
    WrongKey(PathBuf),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A cheap handle to the database; clone it freely.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl Store {
    /// Opens (creating if needed) an unencrypted database and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_keyed(path, None)
    }

    /// Opens (creating if needed) the database, with SQLCipher's key when the box is
    /// encrypted, and applies pending migrations. A wrong key is [`StoreError::WrongKey`],
    /// found before anything is written.
    pub fn open_keyed(path: &Path, key: Option<&DbKey>) -> Result<Store> {
        let open_err = |message: String| StoreError::Open { path: path.to_path_buf(), message };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(format!("creating {}: {e}", dir.display())))?;
        }
        let mut writer = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        apply_key(&writer, key, path)?;
        configure(&writer).map_err(|e| open_err(e.to_string()))?;
        migrations::apply(&mut writer).map_err(|e| open_err(format!("migration failed: {e}")))?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let reader = Connection::open_with_flags(path, flags).map_err(|e| open_err(e.to_string()))?;
            apply_key(&reader, key, path)?;
            reader.busy_timeout(std::time::Duration::from_secs(5))?;
            readers.push(Mutex::new(reader));
        }
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs blocking database work on tokio's blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// The single writer. Hold it only for one transaction.
    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the transaction
        // rolls back when dropped), so a poisoned lock is safe to reuse.
        self.inner.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer in an immediate transaction, for writes that read first (the audit
    /// chain's head): a deferred one could not wait for another process's write (the
    /// command line beside a running service) and would fail at once.
    fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.inner.next_reader.fetch_add(1, Ordering::Relaxed) % self.inner.readers.len();
        self.inner.readers[n].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A quick liveness check for `/api/health`.
    pub fn ping(&self) -> Result<()> {
        self.reader().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Keys a new connection (SQLCipher: the first statement on it) and reads the schema, which
/// fails on a wrong key or an encrypted file opened without one.
fn apply_key(conn: &Connection, key: Option<&DbKey>, path: &Path) -> Result<()> {
    if let Some(key) = key {
        conn.execute_batch(&key.pragma())?;
        // Sorting and temporary tables stay in RAM, never in a temporary file.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
    }
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::NotADatabase => {
            Err(StoreError::WrongKey(path.to_path_buf()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Copies the database at `from` (plain, or encrypted with `from_key`) into a new one at
/// `out` encrypted with `key` (SQLCipher's `sqlcipher_export`, with the schema version),
/// synced. `out` must not exist.
pub fn encrypted_copy(from: &Path, from_key: Option<&DbKey>, out: &Path, key: &DbKey) -> Result<()> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    let conn = Connection::open_with_flags(from, flags)?;
    apply_key(&conn, from_key, from)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let target = out.to_string_lossy().replace('\'', "''");
    conn.execute_batch(&format!("ATTACH DATABASE '{target}' AS enc KEY \"{}\";", key.literal()))?;
    conn.query_row("SELECT sqlcipher_export('enc')", [], |_| Ok(()))?;
    conn.execute_batch(&format!("PRAGMA enc.user_version = {version}; DETACH DATABASE enc;"))?;
    drop(conn);
    std::fs::File::open(out).and_then(|f| f.sync_all()).map_err(|e| StoreError::Io(e.to_string()))?;
    Ok(())
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Deleted rows are overwritten, not left in free pages for anyone reading the file.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: the WAL is synced at every commit, so acknowledged writes survive power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hearth.db")).unwrap();
    (dir, store)
}
