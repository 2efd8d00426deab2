//! Backups of the box and what the owner keeps: `hearth backup` (online, while `hearth serve`
//! runs), `hearth restore`, `hearth backup verify`, the scheduled backups and their
//! retention (`[backup]`), retention of old conversations and documents (`[retention]`,
//! per-user overrides), and a user's conversations exported and imported (`export.rs`).
//!
//! An archive is one gzip-compressed tar file, `hearth-backup-<UTC time>.tar.gz`:
//! `hearth.db` (a consistent copy made with SQLite's `VACUUM INTO` inside one read
//! transaction; document bytes live in it), `tls/` (the local CA and keys), `workflows/`,
//! `config/hearth.toml` (the config file in effect, if any), `models.json` (which models
//! were installed: not the model files themselves, which are large and can be pulled
//! again) and last `manifest.json` (format, versions, time, the sha256 of every member).
//! The search index and KV caches are not in it: they are derived and rebuilt from SQLite.
//! An archive is written under a dot-name ending in `.tmp`, synced, then renamed, so
//! a backup killed half-way leaves earlier archives as they were and nothing that looks
//! complete.

mod archive;
mod create;
pub mod export;
mod restore;
pub mod retention;
mod schedule;
mod sealed;
mod tar;

pub use archive::{list, prune, ArchiveInfo, Manifest, Member, FORMAT};
pub use create::{create, Sources};
pub use restore::{restore, verify, Restored};
pub use schedule::{parse_every, Backups, Maintenance};
pub use sealed::archive_header;

/// What can go wrong with a backup or a restore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("{0}")]
    Io(String),
    /// The archive is not one of Hearth's, is cut short, or a member's bytes differ from
    /// its manifest.
    #[error("the archive cannot be trusted: {0}")]
    Damaged(String),
    #[error("the archive is from a newer hearth (database schema {archive}, this one knows up to {ours}); upgrade hearth first")]
    NewerSchema { archive: i64, ours: i64 },
    #[error("{0} is not empty; restore into a fresh folder, or pass --force to replace its database, keys and index")]
    NotEmpty(std::path::PathBuf),
    #[error("a backup is already running")]
    Busy,
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

impl BackupError {
    fn io(what: impl std::fmt::Display, e: std::io::Error) -> BackupError {
        BackupError::Io(format!("{what}: {e}"))
    }
}
