//! Making an archive while the service runs.

use super::archive::{ArchiveInfo, Manifest, Member, FORMAT, MANIFEST, PREFIX, SUFFIX};
use super::tar;
use super::BackupError;
use rusqlite::{Connection, OpenFlags};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// What a backup copies, from the settings in effect.
#[derive(Debug, Clone)]
pub struct Sources {
    pub data_dir: PathBuf,
    /// The config file that was read (`None`: built-in defaults and the environment).
    pub config_file: Option<PathBuf>,
    pub workflows_dir: PathBuf,
    /// `model.path` as configured, recorded in `models.json`.
    pub model: String,
    /// Encryption at rest: the box's keys and header; the archive is sealed with them.
    pub keys: Option<crate::crypt::Keys>,
}

impl Sources {
    pub fn from_settings(settings: &crate::config::Settings, config_file: Option<&Path>) -> Sources {
        Sources {
            data_dir: settings.storage.data_dir.clone(),
            config_file: config_file.map(Path::to_path_buf),
            workflows_dir: settings.workflows_dir(),
            model: settings.model.path.clone(),
            keys: settings.storage.unlocked.0.clone(),
        }
    }
}

/// Makes one archive in `dir` and returns it. `progress` hears (bytes done, bytes in all)
/// as members are written. Safe while `hearth serve` runs: the database is copied inside
/// one read transaction, which writers do not wait for.
pub fn create(
    sources: &Sources,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ArchiveInfo, BackupError> {
    let db = sources.data_dir.join("hearth.db");
    if !db.is_file() {
        return Err(BackupError::Io(format!("no database at {}: is this the data dir?", db.display())));
    }
    // A new folder is the owner's only; an existing one is left as it is.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| BackupError::io(dir.display(), e))?;
    clean_stale(dir);
    let now = chrono::Utc::now();
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let mut name = format!("{PREFIX}{stamp}{SUFFIX}");
    for n in 2.. {
        if !dir.join(&name).exists() {
            break;
        }
        name = format!("{PREFIX}{stamp}-{n}{SUFFIX}");
    }
    let pid = std::process::id();
    let staging = dir.join(format!(".{PREFIX}{stamp}-{pid}.staging"));
    let tmp = dir.join(format!(".{PREFIX}{stamp}-{pid}{SUFFIX}.tmp"));
    let result = (|| {
        crate::private_files::private_dir(&staging).map_err(|e| BackupError::io(staging.display(), e))?;
        let db_key = sources.keys.as_ref().map(|k| &k.db);
        let schema_version = snapshot(&db, &staging.join("hearth.db"), db_key)?;
        let header = match &sources.keys {
            Some(_) => Some(
                crate::crypt::header(&sources.data_dir)
                    .map_err(|e| BackupError::Io(e.to_string()))?
                    .ok_or_else(|| BackupError::Io("the box has keys but no encryption.json".into()))?,
            ),
            None => None,
        };
        let seal = header.as_ref().zip(sources.keys.as_ref().map(|k| &*k.file));
        let models = staging.join("models.json");
        std::fs::write(&models, models_json(sources)).map_err(|e| BackupError::io(models.display(), e))?;
        let members = gather(sources, &staging)?;
        let total: u64 = members.iter().map(|(_, _, size)| size).sum();
        let manifest = write_archive(&tmp, &members, schema_version, now.timestamp(), seal, &mut |done| {
            progress(done, total)
        })?;
        let path = dir.join(&name);
        std::fs::rename(&tmp, &path).map_err(|e| BackupError::io(path.display(), e))?;
        sync_dir(dir);
        let bytes = std::fs::metadata(&path).map_err(|e| BackupError::io(path.display(), e))?.len();
        tracing::info!(file = %name, bytes, members = manifest.members.len(), "backup written");
        Ok(ArchiveInfo { file: name.clone(), path, bytes, created_at: manifest.created_at })
    })();
    let _ = std::fs::remove_dir_all(&staging);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A consistent copy of the live database (its WAL included) into `to`; returns its
/// schema version.
/// With SQLCipher the copy is encrypted with the same key (`VACUUM INTO` attaches it so).
fn snapshot(db: &Path, to: &Path, key: Option<&crate::crypt::DbKey>) -> Result<i64, BackupError> {
    let conn =
        Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(crate::store::StoreError::from)?;
    let keyed = |c: &Connection| match key {
        Some(key) => c.execute_batch(&key.pragma()).map_err(crate::store::StoreError::from),
        None => Ok(()),
    };
    keyed(&conn)?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(crate::store::StoreError::from)?;
    let target = to.to_str().ok_or_else(|| BackupError::Io(format!("{} is not UTF-8", to.display())))?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(crate::store::StoreError::from)?;
    let copy = Connection::open(to).map_err(crate::store::StoreError::from)?;
    keyed(&copy)?;
    let version =
        copy.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(crate::store::StoreError::from)?;
    Ok(version)
}

/// What `models.json` says: the configured model and which models were installed, so the
/// owner knows what to pull again. The model files themselves are not in the archive.
fn models_json(sources: &Sources) -> String {
    let installed: Vec<serde_json::Value> = crate::models::manifest()
        .models
        .iter()
        .filter_map(|m| {
            let path = crate::models::find_installed(m, &sources.data_dir)?;
            Some(serde_json::json!({"name": m.name, "file": m.file, "bytes": m.bytes, "sha256": m.sha256, "path": path}))
        })
        .collect();
    let others: Vec<String> = std::fs::read_dir(crate::models::models_dir(&sources.data_dir))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| !installed.iter().any(|m| m["file"] == f.as_str()))
        .collect();
    let doc = serde_json::json!({
        "note": "Model files are not in backups (they are large and can be fetched again): `hearth models pull NAME` or `hearth models add FILE` on the restored box.",
        "configured_model": sources.model,
        "installed": installed,
        "other_files_in_models_dir": others,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Every member as (name in the archive, file, size).
fn gather(sources: &Sources, staging: &Path) -> Result<Vec<(String, PathBuf, u64)>, BackupError> {
    let mut members = Vec::new();
    let mut add = |name: String, path: PathBuf| -> Result<(), BackupError> {
        let size = std::fs::metadata(&path).map_err(|e| BackupError::io(path.display(), e))?.len();
        members.push((name, path, size));
        Ok(())
    };
    add("hearth.db".into(), staging.join("hearth.db"))?;
    add("models.json".into(), staging.join("models.json"))?;
    if let Some(config) = sources.config_file.as_ref().filter(|c| c.is_file()) {
        add("config/hearth.toml".into(), config.clone())?;
    }
    for (prefix, folder) in
        [("tls", sources.data_dir.join("tls")), ("workflows", sources.workflows_dir.clone())]
    {
        for (relative, path) in files_under(&folder)? {
            add(format!("{prefix}/{relative}"), path)?;
        }
    }
    Ok(members)
}

/// Regular files under `dir` (two levels deep at most), as (relative name, path), sorted.
fn files_under(dir: &Path) -> Result<Vec<(String, PathBuf)>, BackupError> {
    let mut found = Vec::new();
    let mut pending = vec![(String::new(), dir.to_path_buf(), 0)];
    while let Some((prefix, folder, depth)) = pending.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BackupError::io(folder.display(), e)),
        };
        for entry in entries.flatten() {
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_file() {
                found.push((name, entry.path()));
            } else if kind.is_dir() && depth < 2 {
                pending.push((format!("{name}/"), entry.path(), depth + 1));
            }
        }
    }
    found.sort();
    Ok(found)
}

fn write_archive(
    tmp: &Path,
    members: &[(String, PathBuf, u64)],
    schema_version: i64,
    created_at: i64,
    seal: Option<(&crate::crypt::Header, &crate::crypt::FileKey)>,
    progress: &mut dyn FnMut(u64),
) -> Result<Manifest, BackupError> {
    // Owner-only: the archive holds the keys and every user's data.
    let file = crate::private_files::create_private(tmp).map_err(|e| BackupError::io(tmp.display(), e))?;
    let encrypted = seal.is_some();
    let out = super::sealed::Out::new(file, seal).map_err(|e| BackupError::io(tmp.display(), e))?;
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let mut writer = tar::Writer::new(gz);
    let mut manifest = Manifest {
        format: FORMAT,
        hearth_version: env!("CARGO_PKG_VERSION").into(),
        schema_version,
        created_at,
        encrypted,
        members: Vec::new(),
    };
    let mut done = 0u64;
    for (name, path, size) in members {
        let mut source = File::open(path).map_err(|e| BackupError::io(path.display(), e))?;
        let mode = mode_of(&source);
        let mut counted = Counted { inner: &mut source, done: &mut done, progress: &mut *progress };
        let sha256 = writer
            .append(name, mode, created_at, *size, &mut counted)
            .map_err(|e| BackupError::io(name, e))?;
        manifest.members.push(Member { path: name.clone(), size: *size, sha256 });
    }
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io(e.to_string()))?;
    writer
        .append(MANIFEST, 0o644, created_at, text.len() as u64, &mut text.as_slice())
        .map_err(|e| BackupError::io(MANIFEST, e))?;
    let gz = writer.finish().map_err(|e| BackupError::io(tmp.display(), e))?;
    let out = gz.finish().map_err(|e| BackupError::io(tmp.display(), e))?;
    let file = out.finish().map_err(|e| BackupError::io(tmp.display(), e))?;
    // On disk before the rename makes it an archive.
    file.sync_all().map_err(|e| BackupError::io(tmp.display(), e))?;
    Ok(manifest)
}

fn mode_of(file: &File) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    file.metadata().map_or(0o600, |m| m.permissions().mode() & 0o777)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Removes what backups killed half-way left (their process is gone).
fn clean_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&format!(".{PREFIX}")) else { continue };
        let pid = rest.split(['.', '-']).nth(1).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let path = entry.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            tracing::info!(file = %name, "removed what an interrupted backup left");
        }
    }
}

/// Counts bytes read and reports every MiB.
struct Counted<'a> {
    inner: &'a mut dyn Read,
    done: &'a mut u64,
    progress: &'a mut dyn FnMut(u64),
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = *self.done >> 20;
        *self.done += n as u64;
        if *self.done >> 20 != before || n == 0 {
            (self.progress)(*self.done);
        }
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) fn test_sources(dir: &Path) -> Sources {
    Sources {
        data_dir: dir.to_path_buf(),
        config_file: None,
        workflows_dir: dir.join("workflows"),
        model: "m".into(),
        keys: None,
    }
}
