//! The archive's names, its manifest, and the archives a folder holds.

use super::BackupError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The archive format this hearth writes and reads.
pub const FORMAT: u32 = 1;
pub(super) const PREFIX: &str = "hearth-backup-";
pub(super) const SUFFIX: &str = ".tar.gz";
pub(super) const MANIFEST: &str = "manifest.json";

/// `manifest.json`, the archive's last member.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub hearth_version: String,
    /// The database's `user_version` (its migrations).
    pub schema_version: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Made by an encrypted box: the archive is sealed (`sealed.rs`) with its keys.
    pub encrypted: bool,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// A finished archive in a backup folder.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArchiveInfo {
    pub file: String,
    #[serde(skip)]
    pub path: PathBuf,
    pub bytes: u64,
    /// Unix seconds (the file's time).
    pub created_at: i64,
}

/// The finished archives in `dir`, newest first. Temporary files of a backup under way
/// (or killed) are not archives.
pub fn list(dir: &Path) -> Result<Vec<ArchiveInfo>, BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackupError::io(dir.display(), e)),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(PREFIX) && name.ends_with(SUFFIX)) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let created_at = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        found.push(ArchiveInfo { file: name, path: entry.path(), bytes: meta.len(), created_at });
    }
    // The names carry the UTC time, so they sort by age.
    found.sort_by(|a, b| b.file.cmp(&a.file));
    Ok(found)
}

/// Deletes all but the `keep` newest archives in `dir`; returns the names deleted.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<String>, BackupError> {
    let mut deleted = Vec::new();
    for old in list(dir)?.into_iter().skip(keep.max(1)) {
        std::fs::remove_file(&old.path).map_err(|e| BackupError::io(old.path.display(), e))?;
        deleted.push(old.file);
    }
    Ok(deleted)
}

/// Whether a member's name is one an archive may hold: relative, plain parts, no `..`.
pub(super) fn safe_member(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
        && (name == "hearth.db"
            || name == "models.json"
            || name == MANIFEST
            || name == "config/hearth.toml"
            || name.starts_with("tls/")
            || name.starts_with("workflows/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_archives_are_listed_and_pruned_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "hearth-backup-20260101T000000Z.tar.gz",
            "hearth-backup-20260102T000000Z.tar.gz",
            "hearth-backup-20260103T000000Z.tar.gz",
            ".hearth-backup-20260104T000000Z-77.tar.gz.tmp",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let names: Vec<String> = list(dir.path()).unwrap().into_iter().map(|a| a.file).collect();
        assert_eq!(
            names,
            [
                "hearth-backup-20260103T000000Z.tar.gz",
                "hearth-backup-20260102T000000Z.tar.gz",
                "hearth-backup-20260101T000000Z.tar.gz"
            ]
        );
        assert_eq!(prune(dir.path(), 2).unwrap(), ["hearth-backup-20260101T000000Z.tar.gz"]);
        assert_eq!(list(dir.path()).unwrap().len(), 2);
        assert!(dir.path().join(".hearth-backup-20260104T000000Z-77.tar.gz.tmp").exists());
    }

    #[test]
    fn member_names_stay_inside_the_data_dir() {
        assert!(safe_member("tls/ca.key"));
        assert!(safe_member("hearth.db"));
        assert!(!safe_member("../etc/passwd"));
        assert!(!safe_member("tls/../../x"));
        assert!(!safe_member("/abs"));
        assert!(!safe_member("other.db"));
    }
}
