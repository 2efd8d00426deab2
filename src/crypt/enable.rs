//! Turning encryption on for a data dir, new or in use, and changing its secret later
//! (`rekey`: the same steps from the encrypted database), in steps a crash cannot tear:
//!
//! 1. the plain database is copied into `hearth.db.encrypting` (SQLCipher's
//!    `sqlcipher_export`), synced;
//! 2. the header is written as `encryption.json.pending`;
//! 3. `hearth.db.encrypting` is renamed over `hearth.db` (the commit point);
//! 4. the pending header is renamed to `encryption.json`;
//! 5. derived plaintext is deleted: the search index (rebuilt in RAM from now on), the
//!    KV disk cache (a cache), uploads left half-way.
//!
//! [`recover`] runs before anything opens a data dir: with the copy still there (before
//! step 3) it rolls back to the plain box; without it (after step 3) it finishes.

use super::{header_path, CryptError, Header, Keys, Secret};
use std::fs;
use std::path::{Path, PathBuf};

const DB: &str = "hearth.db";
const COPY: &str = "hearth.db.encrypting";
const COPY_JOURNAL: &str = "hearth.db.encrypting-journal";
const PENDING: &str = "encryption.json.pending";
/// Held (flock) by `enable` and `rekey` from start to end, so that another process's
/// [`recover`] never mistakes a conversion under way for an interrupted one.
const LOCK: &str = "encryption.lock";

/// The conversion lock, or `None` while another process holds it.
fn lock(data_dir: &Path) -> Result<Option<fs::File>, CryptError> {
    use std::os::fd::AsRawFd;
    let path = data_dir.join(LOCK);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CryptError::io(&path, e))?;
    // SAFETY: flock on a descriptor we own; it only advises other flock callers.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    Ok(taken.then_some(file))
}

fn lock_or_busy(data_dir: &Path) -> Result<fs::File, CryptError> {
    lock(data_dir)?.ok_or_else(|| {
        CryptError::Invalid(format!(
            "another `hearth encryption` command is converting {}",
            data_dir.display()
        ))
    })
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn remove_if_there(path: &Path) -> Result<(), CryptError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CryptError::io(path, e)),
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), CryptError> {
    fs::rename(from, to).map_err(|e| CryptError::io(from, e))
}

/// What enabling did, for the command to report.
#[derive(Debug)]
pub struct Enabled {
    pub keys: Keys,
    /// Backups made before: they are not encrypted.
    pub plain_backups: Vec<PathBuf>,
}

/// Encrypts `data_dir` with `secret`. The service must be stopped. An error if it is
/// encrypted already.
pub fn enable(data_dir: &Path, backup_dir: &Path, secret: &Secret) -> Result<Enabled, CryptError> {
    fs::create_dir_all(data_dir).map_err(|e| CryptError::io(data_dir, e))?;
    let _lock = lock_or_busy(data_dir)?;
    recover_held(data_dir)?;
    if header_path(data_dir).exists() {
        return Err(CryptError::Invalid(format!(
            "{} is encrypted already (to change the secret: hearth encryption rekey)",
            data_dir.display()
        )));
    }
    let (header, keys) = Header::create(secret)?;
    let (db, copy) = (data_dir.join(DB), data_dir.join(COPY));
    if db.exists() {
        for leftover in [COPY, COPY_JOURNAL] {
            remove_if_there(&data_dir.join(leftover))?;
        }
        crate::store::encrypted_copy(&db, None, &copy, &keys.db)
            .map_err(|e| CryptError::Invalid(e.to_string()))?;
    }
    commit(data_dir, &header)?;
    let plain_backups = plain_backups(backup_dir);
    Ok(Enabled { keys, plain_backups })
}

/// Steps 2 to 5: the header as pending, the copy over the database, the header in place.
fn commit(data_dir: &Path, header: &Header) -> Result<(), CryptError> {
    let (db, copy) = (data_dir.join(DB), data_dir.join(COPY));
    header.write(&data_dir.join(PENDING))?;
    if copy.exists() {
        rename(&copy, &db)?;
        sync_dir(data_dir);
    }
    finish(data_dir)
}

/// Changes an encrypted data dir's secret: the database is copied under the new key, the
/// KV disk cache (sealed with the old one) is dropped. The service must be stopped.
/// Backups made before still need the old secret.
pub fn rekey(data_dir: &Path, old: &Keys, secret: &Secret) -> Result<Keys, CryptError> {
    let _lock = lock_or_busy(data_dir)?;
    recover_held(data_dir)?;
    if !header_path(data_dir).exists() {
        return Err(CryptError::Invalid(format!("{} is not encrypted", data_dir.display())));
    }
    let (header, keys) = Header::create(secret)?;
    let (db, copy) = (data_dir.join(DB), data_dir.join(COPY));
    remove_if_there(&copy)?;
    crate::store::encrypted_copy(&db, Some(&old.db), &copy, &keys.db).map_err(|e| match e {
        crate::store::StoreError::WrongKey(_) => CryptError::WrongKey,
        e => CryptError::Invalid(e.to_string()),
    })?;
    commit(data_dir, &header)?;
    Ok(keys)
}

/// Completes or rolls back an interrupted [`enable`] or [`rekey`]; nothing while one is
/// under way in another process, or when the data dir does not exist yet.
pub fn recover(data_dir: &Path) -> Result<(), CryptError> {
    if ![PENDING, COPY, COPY_JOURNAL].iter().any(|f| data_dir.join(f).exists()) {
        return Ok(());
    }
    match lock(data_dir)? {
        Some(_lock) => recover_held(data_dir),
        None => Ok(()),
    }
}

fn recover_held(data_dir: &Path) -> Result<(), CryptError> {
    let (copy, pending) = (data_dir.join(COPY), data_dir.join(PENDING));
    // The copy's own rollback journal, if the export was cut off.
    remove_if_there(&data_dir.join(COPY_JOURNAL))?;
    if !pending.exists() {
        // Interrupted while copying: the plain database is untouched.
        remove_if_there(&copy)?;
        return Ok(());
    }
    if copy.exists() {
        tracing::warn!(dir = %data_dir.display(), "encryption enable was interrupted before it took effect; rolling back");
        remove_if_there(&copy)?;
        remove_if_there(&pending)?;
        return Ok(());
    }
    tracing::warn!(dir = %data_dir.display(), "encryption enable was interrupted after it took effect; finishing");
    finish(data_dir)
}

fn finish(data_dir: &Path) -> Result<(), CryptError> {
    // The plain database's WAL and shared memory belong to the file that was replaced.
    for stale in ["hearth.db-wal", "hearth.db-shm"] {
        remove_if_there(&data_dir.join(stale))?;
    }
    rename(&data_dir.join(PENDING), &header_path(data_dir))?;
    sync_dir(data_dir);
    remove_derived(data_dir)
}

/// Deletes what was derived from the plain data and written in plain: the on-disk search
/// index, the KV disk cache, uploads a crash left behind. Safe to repeat.
pub fn remove_derived(data_dir: &Path) -> Result<(), CryptError> {
    for dir in ["index", "kv-cache", "uploads"] {
        let path = data_dir.join(dir);
        match fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(CryptError::io(&path, e)),
            _ => {}
        }
    }
    Ok(())
}

fn plain_backups(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gz"))
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn secret() -> Secret {
        Secret::from_bytes(b"a secret of some length".to_vec())
    }

    #[test]
    fn an_existing_box_is_encrypted_and_opens_only_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(DB);
        {
            let store = Store::open(&db).unwrap();
            store.create_user("owner", crate::store::Role::Admin).unwrap();
        }
        fs::create_dir_all(dir.path().join("index")).unwrap();
        fs::write(dir.path().join("index/segment"), b"owner").unwrap();
        let enabled = enable(dir.path(), &dir.path().join("backups"), &secret()).unwrap();
        let bytes = fs::read(&db).unwrap();
        assert!(!bytes.starts_with(b"SQLite format 3"), "the file is encrypted");
        assert!(!bytes.windows(5).any(|w| w == b"owner"));
        assert!(!dir.path().join("index").exists(), "the plain index is gone");
        assert!(matches!(Store::open(&db), Err(crate::store::StoreError::WrongKey(_))));
        let store = Store::open_keyed(&db, Some(&enabled.keys.db)).unwrap();
        assert!(store.find_user("owner").is_ok(), "the data came along");
        assert!(matches!(enable(dir.path(), dir.path(), &secret()), Err(CryptError::Invalid(_))));
    }

    #[test]
    fn a_conversion_under_way_in_another_process_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap().expect("free");
        fs::write(dir.path().join(COPY), b"being written").unwrap();
        recover(dir.path()).unwrap();
        assert!(dir.path().join(COPY).exists(), "not mistaken for an interrupted one");
        assert!(matches!(enable(dir.path(), dir.path(), &secret()), Err(CryptError::Invalid(_))));
        drop(held);
        recover(dir.path()).unwrap();
        assert!(!dir.path().join(COPY).exists(), "once the lock is free, the leftover goes");
    }

    #[test]
    fn a_new_secret_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(DB);
        let old = enable(dir.path(), dir.path(), &secret()).unwrap().keys;
        Store::open_keyed(&db, Some(&old.db))
            .unwrap()
            .create_user("owner", crate::store::Role::Admin)
            .unwrap();
        let new_secret = Secret::from_bytes(b"the next secret, longer".to_vec());
        let new = rekey(dir.path(), &old, &new_secret).unwrap();
        assert!(matches!(Store::open_keyed(&db, Some(&old.db)), Err(crate::store::StoreError::WrongKey(_))));
        let header = crate::crypt::header(dir.path()).unwrap().unwrap();
        assert!(matches!(header.unlock(&secret()), Err(CryptError::WrongKey)));
        header.unlock(&new_secret).unwrap();
        let store = Store::open_keyed(&db, Some(&new.db)).unwrap();
        assert!(store.find_user("owner").is_ok());
    }

    #[test]
    fn an_interrupted_enable_rolls_back_before_the_commit_and_finishes_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(DB);
        drop(Store::open(&db).unwrap());
        // Before the rename: the copy and the pending header exist.
        fs::write(dir.path().join(COPY), b"half").unwrap();
        let (header, _) = Header::create(&secret()).unwrap();
        header.write(&dir.path().join(PENDING)).unwrap();
        recover(dir.path()).unwrap();
        assert!(!header_path(dir.path()).exists() && !dir.path().join(COPY).exists());
        Store::open(&db).unwrap();
        // After the rename: only the pending header is left.
        header.write(&dir.path().join(PENDING)).unwrap();
        recover(dir.path()).unwrap();
        assert!(header_path(dir.path()).exists() && !dir.path().join(PENDING).exists());
    }
}
