//! Encryption at rest (opt-in): what is kept on the data dir is unreadable without the
//! box's secret.
//!
//! The secret (a key file, a systemd credential, or a passphrase typed at unlock, see
//! [`secret`]) never touches the disk. Argon2id stretches it with a salt kept in
//! `<data_dir>/encryption.json` into two keys: SQLCipher's raw key for the database
//! (its pages and its WAL) and [`FileKey`], which seals Hearth's own files (the KV disk
//! cache, backups) with AES-256-GCM. The same file holds a check sealed with the file
//! key, so a wrong secret is refused (`wrong_key`) before anything is opened or written.
//! The search index is kept in RAM and rebuilt from the database at start. The presence
//! of `encryption.json` is what says a box is encrypted; `docs/encryption.md` says what a
//! stolen disk still reveals.

pub mod aead;
pub mod enable;
pub mod secret;

pub use aead::FileKey;
pub use secret::Secret;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a sealed upload's stream names (`http/spool.rs` writes it, `store/` reads it).
pub const UPLOAD_AAD: &[u8] = b"hearth-upload";

/// The file that says a data dir is encrypted, and holds the salt and the key check.
pub const HEADER_FILE: &str = "encryption.json";
const CHECK_AAD: &[u8] = b"hearth-key-check";
const CHECK_TEXT: &[u8] = b"hearth encryption key check v1";
/// Argon2id's cost: 64 MiB and 3 passes, about half a second on a Raspberry Pi 4;
/// each guess at a passphrase costs an attacker as much.
const MEMORY_KIB: u32 = 64 * 1024;
const ITERATIONS: u32 = 3;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptError {
    /// The secret does not open this box: nothing was opened or written.
    #[error("wrong key: the secret does not unlock this data dir (nothing was changed)")]
    WrongKey,
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl CryptError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        CryptError::Io { path: path.to_path_buf(), source }
    }
}

/// The key SQLCipher opens the database with (raw: SQLCipher does not stretch it again).
#[derive(Clone)]
pub struct DbKey([u8; 32]);

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(hidden)")
    }
}

impl DbKey {
    /// The statement that keys a connection; it must come before anything else on it.
    pub fn pragma(&self) -> String {
        format!("PRAGMA key = \"{}\";", self.literal())
    }

    /// SQLCipher's raw key literal, `x'…'` (for `ATTACH … KEY`).
    pub fn literal(&self) -> String {
        format!("x'{}'", hex::encode(self.0))
    }
}

/// An unlocked box's keys.
#[derive(Clone, Debug)]
pub struct Keys {
    pub db: DbKey,
    pub file: Arc<FileKey>,
}

/// The keys of an unlocked box as the settings carry them to the engine and backups
/// (`None`: not encrypted). Equal whenever both have keys or both have none.
#[derive(Clone, Debug, Default)]
pub struct Unlocked(pub Option<Keys>);

impl PartialEq for Unlocked {
    fn eq(&self, other: &Self) -> bool {
        self.0.is_some() == other.0.is_some()
    }
}

impl Unlocked {
    pub fn file_key(&self) -> Option<Arc<FileKey>> {
        self.0.as_ref().map(|k| k.file.clone())
    }

    pub fn db_key(&self) -> Option<&DbKey> {
        self.0.as_ref().map(|k| &k.db)
    }
}

/// `encryption.json`: nothing secret, but what turns the secret into the keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub version: u32,
    pub kdf: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt: String,
    pub check: String,
}

pub fn header_path(data_dir: &Path) -> PathBuf {
    data_dir.join(HEADER_FILE)
}

/// The data dir's header, or `None` when it is not encrypted. Finishes or rolls back an
/// `encryption enable` that was interrupted first (see [`enable::recover`]).
pub fn header(data_dir: &Path) -> Result<Option<Header>, CryptError> {
    enable::recover(data_dir)?;
    read_header(&header_path(data_dir))
}

fn read_header(path: &Path) -> Result<Option<Header>, CryptError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CryptError::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CryptError::io(path, e)),
    }
}

impl Header {
    /// A new header (fresh salt) for `secret`, with the keys it gives.
    pub fn create(secret: &Secret) -> Result<(Header, Keys), CryptError> {
        let mut header = Header {
            version: 1,
            kdf: "argon2id".into(),
            memory_kib: MEMORY_KIB,
            iterations: ITERATIONS,
            parallelism: 1,
            salt: hex::encode(aead::random::<16>()),
            check: String::new(),
        };
        let keys = header.derive(secret)?;
        header.check = hex::encode(keys.file.seal(CHECK_AAD, CHECK_TEXT));
        Ok((header, keys))
    }

    /// The keys, if `secret` is this box's: [`CryptError::WrongKey`] otherwise. CPU-bound
    /// (Argon2id): call it off the async runtime.
    pub fn unlock(&self, secret: &Secret) -> Result<Keys, CryptError> {
        let keys = self.derive(secret)?;
        let check =
            hex::decode(&self.check).map_err(|_| CryptError::Invalid("encryption.json: bad check".into()))?;
        match keys.file.open(CHECK_AAD, &check) {
            Ok(text) if text == CHECK_TEXT => Ok(keys),
            _ => Err(CryptError::WrongKey),
        }
    }

    fn derive(&self, secret: &Secret) -> Result<Keys, CryptError> {
        if self.version != 1 || self.kdf != "argon2id" {
            return Err(CryptError::Invalid(format!(
                "encryption.json: version {} with {} is not known to this build",
                self.version, self.kdf
            )));
        }
        let salt =
            hex::decode(&self.salt).map_err(|_| CryptError::Invalid("encryption.json: bad salt".into()))?;
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(64))
            .map_err(|e| CryptError::Invalid(format!("encryption.json: {e}")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 64];
        argon
            .hash_password_into(secret.bytes(), &salt, &mut out)
            .map_err(|e| CryptError::Invalid(format!("key derivation: {e}")))?;
        let db: [u8; 32] = out[..32].try_into().expect("32 bytes");
        let file: [u8; 32] = out[32..].try_into().expect("32 bytes");
        out.fill(0);
        Ok(Keys { db: DbKey(db), file: Arc::new(FileKey::new(&file)) })
    }

    /// Writes the header (0600, atomically) to `path`.
    pub fn write(&self, path: &Path) -> Result<(), CryptError> {
        let json = serde_json::to_vec_pretty(self).expect("a header serializes");
        crate::private_files::write_private(path, &json).map_err(|e| CryptError::io(path, e))
    }
}

/// A lock on the data dir's `encryption.json` held while `serve` runs an encrypted box, so
/// that `encryption rekey` can tell the service is running (the index, which locks a plain
/// box, is in RAM). Released when dropped or when the process ends.
pub struct Held(#[allow(dead_code)] std::fs::File);

/// Takes the lock, or `None` when another process holds it.
pub fn hold(data_dir: &Path) -> Result<Option<Held>, CryptError> {
    use std::os::fd::AsRawFd;
    let path = header_path(data_dir);
    let file = std::fs::File::open(&path).map_err(|e| CryptError::io(&path, e))?;
    // SAFETY: flock on a descriptor we own; it only advises other flock callers.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    Ok(taken.then_some(Held(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_secret_unlocks_and_a_wrong_one_is_refused() {
        let (header, keys) = Header::create(&Secret::from_bytes(b"correct horse".to_vec())).unwrap();
        let again = header.unlock(&Secret::from_bytes(b"correct horse".to_vec())).unwrap();
        assert_eq!(again.db.pragma(), keys.db.pragma());
        assert!(matches!(header.unlock(&Secret::from_bytes(b"wrong".to_vec())), Err(CryptError::WrongKey)));
        assert_eq!(format!("{keys:?}").matches("hidden").count(), 2, "keys never print");
        let json = serde_json::to_string(&header).unwrap();
        assert!(!json.contains(&keys.db.literal()[2..66]), "the header holds no key");
    }
}
