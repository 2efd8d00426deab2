//! Checking an archive and restoring it into a data dir.

use super::archive::{safe_member, Manifest, FORMAT, MANIFEST};
use super::tar;
use super::BackupError;
use crate::crypt::Keys;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The most a manifest may weigh.
const MANIFEST_LIMIT: u64 = 4 << 20;

/// With `keys`, a sealed archive (an encrypted box's) is opened with them.
fn open<'k>(
    archive: &Path,
    keys: Option<&'k Keys>,
) -> Result<tar::Reader<impl std::io::Read + 'k>, BackupError> {
    let input = super::sealed::reader(archive, keys)?;
    Ok(tar::Reader::new(flate2::read::GzDecoder::new(input)))
}

fn damaged(e: std::io::Error) -> BackupError {
    BackupError::Damaged(e.to_string())
}

/// Reads the whole archive and checks every member against the manifest (present, same
/// size and sha256, nothing extra, names that stay inside a data dir); returns the manifest.
pub fn verify(archive: &Path, keys: Option<&Keys>) -> Result<Manifest, BackupError> {
    let mut reader = open(archive, keys)?;
    let mut seen = BTreeMap::new();
    let mut manifest_bytes = None;
    while let Some(entry) = reader.next().map_err(damaged)? {
        if !safe_member(&entry.name) {
            return Err(BackupError::Damaged(format!("unexpected member '{}'", entry.name)));
        }
        if entry.name == MANIFEST {
            if entry.size > MANIFEST_LIMIT {
                return Err(BackupError::Damaged("the manifest is too large".into()));
            }
            let mut bytes = Vec::new();
            reader.body(&entry, &mut bytes).map_err(damaged)?;
            manifest_bytes = Some(bytes);
        } else {
            let sha = reader.body(&entry, &mut std::io::sink()).map_err(damaged)?;
            if seen.insert(entry.name.clone(), (entry.size, sha)).is_some() {
                return Err(BackupError::Damaged(format!("'{}' is in it twice", entry.name)));
            }
        }
    }
    let bytes = manifest_bytes.ok_or_else(|| BackupError::Damaged("it has no manifest.json".into()))?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| BackupError::Damaged(format!("manifest.json: {e}")))?;
    if manifest.format > FORMAT {
        return Err(BackupError::Damaged(format!(
            "archive format {} is newer than this hearth's ({FORMAT}); upgrade hearth",
            manifest.format
        )));
    }
    for member in &manifest.members {
        match seen.remove(&member.path) {
            None => return Err(BackupError::Damaged(format!("'{}' is missing", member.path))),
            Some((size, sha)) if size != member.size || sha != member.sha256 => {
                return Err(BackupError::Damaged(format!(
                    "'{}' is not what was backed up (sha256 differs)",
                    member.path
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = seen.keys().next() {
        return Err(BackupError::Damaged(format!("'{extra}' is not in the manifest")));
    }
    if !manifest.members.iter().any(|m| m.path == "hearth.db") {
        return Err(BackupError::Damaged("it holds no database".into()));
    }
    Ok(manifest)
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub manifest: Manifest,
    /// Where the backed-up config file was put, if the archive had one.
    pub config: Option<PathBuf>,
}

/// Restores `archive` into `data_dir`: verified first (nothing is written from an archive
/// that fails), refused from a newer schema, refused into a non-empty folder unless
/// `force`. The search index is not in archives: the next start rebuilds it from SQLite.
/// The config file goes to `<data_dir>/restored-hearth.toml` (the owner decides whether it
/// becomes `/etc/hearth/hearth.toml`).
/// A sealed archive needs its box's `keys`; the data dir gets its `encryption.json`, so the
/// same secret unlocks the restored box.
pub fn restore(
    archive: &Path,
    data_dir: &Path,
    force: bool,
    keys: Option<&Keys>,
) -> Result<Restored, BackupError> {
    let manifest = verify(archive, keys)?;
    let header = super::sealed::archive_header(archive)?;
    let ours = crate::store::schema_version();
    if manifest.schema_version > ours {
        return Err(BackupError::NewerSchema { archive: manifest.schema_version, ours });
    }
    let occupied = std::fs::read_dir(data_dir).map(|mut d| d.next().is_some()).unwrap_or(false);
    if occupied && !force {
        return Err(BackupError::NotEmpty(data_dir.to_path_buf()));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| BackupError::io(data_dir.display(), e))?;
    if occupied {
        // What the archive replaces, and what is derived from the old database.
        for name in ["hearth.db", "hearth.db-wal", "hearth.db-shm", crate::crypt::HEADER_FILE] {
            let _ = std::fs::remove_file(data_dir.join(name));
        }
        for name in ["index", "kv-cache", "tls"] {
            let _ = std::fs::remove_dir_all(data_dir.join(name));
        }
    }
    let expected: BTreeMap<&str, &str> =
        manifest.members.iter().map(|m| (m.path.as_str(), m.sha256.as_str())).collect();
    let mut reader = open(archive, keys)?;
    let mut config = None;
    while let Some(entry) = reader.next().map_err(damaged)? {
        let target = match entry.name.as_str() {
            MANIFEST | "models.json" => data_dir.join(format!("restored-{}", entry.name)),
            "config/hearth.toml" => data_dir.join("restored-hearth.toml"),
            name => data_dir.join(name),
        };
        if entry.name == "config/hearth.toml" {
            config = Some(target.clone());
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| BackupError::io(parent.display(), e))?;
        }
        let partial = target.with_extension("restoring");
        let mut out = File::create(&partial).map_err(|e| BackupError::io(partial.display(), e))?;
        set_mode(&out, entry.mode);
        let sha = reader.body(&entry, &mut out).map_err(damaged)?;
        if entry.name != MANIFEST && expected.get(entry.name.as_str()) != Some(&sha.as_str()) {
            let _ = std::fs::remove_file(&partial);
            return Err(BackupError::Damaged(format!("'{}' changed while it was restored", entry.name)));
        }
        out.flush().and_then(|()| out.sync_all()).map_err(|e| BackupError::io(partial.display(), e))?;
        std::fs::rename(&partial, &target).map_err(|e| BackupError::io(target.display(), e))?;
    }
    if let Some(header) = &header {
        header.write(&crate::crypt::header_path(data_dir)).map_err(|e| BackupError::Io(e.to_string()))?;
    }
    // Opening applies the migrations an older archive lacks and proves the file is a database.
    let db_key = keys.filter(|_| header.is_some()).map(|k| &k.db);
    crate::store::Store::open_keyed(&data_dir.join("hearth.db"), db_key)?;
    Ok(Restored { manifest, config })
}

fn set_mode(file: &File, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    // Never wider than the owner's read and write (keys stay private).
    let _ = file.set_permissions(std::fs::Permissions::from_mode(mode & 0o600));
}

#[cfg(test)]
mod tests {
    use super::super::create::{create, test_sources, Sources};
    use super::*;

    fn data_dir_with_a_user() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("hearth.db")).unwrap();
        store
            .create_account("alice", crate::store::Role::User, "phc", &crate::audit::Actor::system())
            .unwrap();
        std::fs::create_dir_all(dir.path().join("tls")).unwrap();
        std::fs::write(dir.path().join("tls/ca.key"), b"secret key").unwrap();
        dir
    }

    #[test]
    fn a_backup_verifies_and_restores_only_into_an_empty_folder() {
        let data = data_dir_with_a_user();
        let backups = tempfile::tempdir().unwrap();
        let mut calls = 0;
        let info = create(&test_sources(data.path()), backups.path(), &mut |_, _| calls += 1).unwrap();
        assert!(calls > 0);
        let manifest = verify(&info.path, None).unwrap();
        assert_eq!(manifest.schema_version, crate::store::schema_version());
        assert!(manifest.members.iter().any(|m| m.path == "tls/ca.key"));
        let leftovers: Vec<_> =
            std::fs::read_dir(backups.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 1, "only the archive: {leftovers:?}");

        let target = tempfile::tempdir().unwrap();
        restore(&info.path, target.path(), false, None).unwrap();
        let store = crate::store::Store::open(&target.path().join("hearth.db")).unwrap();
        assert!(store.login_candidate("alice").unwrap().is_some());
        assert_eq!(std::fs::read(target.path().join("tls/ca.key")).unwrap(), b"secret key");
        assert!(matches!(restore(&info.path, target.path(), false, None), Err(BackupError::NotEmpty(_))));
        restore(&info.path, target.path(), true, None).unwrap();
    }

    #[test]
    fn an_encrypted_box_makes_a_sealed_backup_that_only_its_secret_restores() {
        let data = tempfile::tempdir().unwrap();
        let secret = crate::crypt::Secret::from_bytes(b"the box's secret key".to_vec());
        let keys = crate::crypt::enable::enable(data.path(), data.path(), &secret).unwrap().keys;
        let db = data.path().join("hearth.db");
        let store = crate::store::Store::open_keyed(&db, Some(&keys.db)).unwrap();
        store
            .create_account(
                "marker-alice-7f3",
                crate::store::Role::User,
                "phc",
                &crate::audit::Actor::system(),
            )
            .unwrap();
        drop(store);
        let backups = tempfile::tempdir().unwrap();
        let sources = Sources { keys: Some(keys.clone()), ..test_sources(data.path()) };
        let info = create(&sources, backups.path(), &mut |_, _| {}).unwrap();
        let bytes = std::fs::read(&info.path).unwrap();
        assert!(bytes.starts_with(b"HEARTHB1"));
        assert!(verify(&info.path, None).unwrap_err().to_string().contains("encrypted"));
        let header = crate::backup::archive_header(&info.path).unwrap().unwrap();
        let other = crate::crypt::Secret::from_bytes(b"another secret here".to_vec());
        assert!(matches!(header.unlock(&other), Err(crate::crypt::CryptError::WrongKey)));
        let opened = header.unlock(&secret).unwrap();
        assert!(verify(&info.path, Some(&opened)).unwrap().encrypted);

        let target = tempfile::tempdir().unwrap();
        restore(&info.path, target.path(), false, Some(&opened)).unwrap();
        let restored = target.path().join("hearth.db");
        let raw = std::fs::read(&restored).unwrap();
        assert!(!raw.windows(10).any(|w| w == b"marker-ali"), "the restored database is encrypted");
        assert!(crate::crypt::header(target.path()).unwrap().is_some());
        let store = crate::store::Store::open_keyed(&restored, Some(&opened.db)).unwrap();
        assert!(store.login_candidate("marker-alice-7f3").unwrap().is_some());
    }

    #[test]
    fn a_changed_byte_or_a_cut_archive_is_refused() {
        let data = data_dir_with_a_user();
        let backups = tempfile::tempdir().unwrap();
        let info = create(&test_sources(data.path()), backups.path(), &mut |_, _| {}).unwrap();
        // Rewrite the archive with one member's byte changed, its manifest untouched.
        let plain = {
            let mut out = Vec::new();
            let mut gz = flate2::read::GzDecoder::new(File::open(&info.path).unwrap());
            std::io::Read::read_to_end(&mut gz, &mut out).unwrap();
            out
        };
        let at = plain.windows(10).position(|w| w == b"secret key").unwrap();
        let mut tampered = plain.clone();
        tampered[at] = b'S';
        let write = |bytes: &[u8], name: &str| {
            let path = backups.path().join(name);
            let mut gz =
                flate2::write::GzEncoder::new(File::create(&path).unwrap(), flate2::Compression::fast());
            gz.write_all(bytes).unwrap();
            gz.finish().unwrap();
            path
        };
        let bad = write(&tampered, "tampered.tar.gz");
        let err = verify(&bad, None).unwrap_err().to_string();
        assert!(err.contains("tls/ca.key"), "{err}");
        let target = tempfile::tempdir().unwrap();
        assert!(restore(&bad, target.path(), false, None).is_err());
        assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0, "nothing written");
        let cut = write(&plain[..plain.len() / 2], "cut.tar.gz");
        assert!(verify(&cut, None).is_err());
    }

    #[test]
    fn an_archive_from_a_newer_schema_is_refused_before_anything_is_written() {
        let data = data_dir_with_a_user();
        let db = std::fs::read(data.path().join("hearth.db")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("newer.tar.gz");
        let gz = flate2::write::GzEncoder::new(File::create(&path).unwrap(), flate2::Compression::fast());
        let mut writer = tar::Writer::new(gz);
        let sha256 = writer.append("hearth.db", 0o600, 0, db.len() as u64, &mut db.as_slice()).unwrap();
        let manifest = Manifest {
            format: FORMAT,
            hearth_version: "9.9.9".into(),
            schema_version: crate::store::schema_version() + 1,
            created_at: 0,
            encrypted: false,
            members: vec![super::super::Member { path: "hearth.db".into(), size: db.len() as u64, sha256 }],
        };
        let text = serde_json::to_vec(&manifest).unwrap();
        writer.append(MANIFEST, 0o644, 0, text.len() as u64, &mut text.as_slice()).unwrap();
        writer.finish().unwrap().finish().unwrap();
        verify(&path, None).unwrap();
        let target = tempfile::tempdir().unwrap();
        let err = restore(&path, target.path(), false, None).unwrap_err();
        assert!(matches!(err, BackupError::NewerSchema { .. }), "{err}");
        assert!(err.to_string().contains("upgrade hearth"), "{err}");
        assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
    }
}
