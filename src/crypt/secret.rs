//! Where the box's secret comes from: `[storage] key_file`, a systemd credential
//! (`LoadCredentialEncrypted=hearth-key:…`, sealed with the TPM where there is one), or a
//! passphrase typed at unlock. The secret is never logged and never written by Hearth
//! except when `hearth encryption enable --new-key-file` makes a key file.

use super::CryptError;
use std::io::{self, BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The name of the systemd credential that holds the secret.
pub const CREDENTIAL: &str = "hearth-key";
const MIN_PASSPHRASE: usize = 8;

/// A secret: bytes of a key file or a passphrase. `Debug` hides it; dropped, it is zeroed.
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
    }
}

impl Secret {
    pub fn from_bytes(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// A passphrase as typed: the line's end removed; too short is refused.
    pub fn passphrase(text: &str) -> Result<Secret, CryptError> {
        let text = text.trim_end_matches(['\n', '\r']);
        if text.chars().count() < MIN_PASSPHRASE {
            return Err(CryptError::Invalid(format!(
                "a passphrase needs at least {MIN_PASSPHRASE} characters"
            )));
        }
        Ok(Secret(text.as_bytes().to_vec()))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Reads a key file: it must be readable by its owner only and owned by this user,
/// like an SSH key. A final line end is not part of the key.
pub fn from_key_file(path: &Path) -> Result<Secret, CryptError> {
    let meta = std::fs::metadata(path).map_err(|e| CryptError::io(path, e))?;
    if meta.mode() & 0o077 != 0 {
        return Err(CryptError::Invalid(format!(
            "{}: a key file must be readable by its owner only (chmod 600 {0})",
            path.display()
        )));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(CryptError::Invalid(format!(
            "{}: a key file must be owned by the user Hearth runs as (uid {me})",
            path.display()
        )));
    }
    read_secret_file(path)
}

fn read_secret_file(path: &Path) -> Result<Secret, CryptError> {
    let mut bytes = std::fs::read(path).map_err(|e| CryptError::io(path, e))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.len() < 16 {
        return Err(CryptError::Invalid(format!("{}: a key file needs at least 16 bytes", path.display())));
    }
    Ok(Secret(bytes))
}

/// The systemd credential's file, when the service was started with one.
pub fn credential_path() -> Option<PathBuf> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    let path = Path::new(&dir).join(CREDENTIAL);
    path.exists().then_some(path)
}

/// The secret this box can get without a person: the key file if one is configured,
/// else the systemd credential, else `None` (a passphrase is needed).
pub fn unattended(key_file: &Path) -> Result<Option<Secret>, CryptError> {
    if !key_file.as_os_str().is_empty() {
        return from_key_file(key_file).map(Some);
    }
    // systemd makes the credential's file readable by the service only.
    credential_path().map(|p| read_secret_file(&p)).transpose()
}

/// Makes a new key file (0600, 32 random bytes as hex); an error if it exists.
pub fn new_key_file(path: &Path) -> Result<Secret, CryptError> {
    let text = format!("{}\n", hex::encode(super::aead::random::<32>()));
    let mut f = crate::private_files::create_private(path).map_err(|e| CryptError::io(path, e))?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| CryptError::io(path, e))?;
    read_secret_file(path)
}

/// Reads a passphrase: from the terminal without echo, or a line of standard input
/// when that is not a terminal (scripts).
pub fn read_passphrase(prompt: &str) -> Result<Secret, CryptError> {
    let stdin = io::stdin();
    let fd = libc::STDIN_FILENO;
    // SAFETY: isatty only inspects the descriptor.
    let tty = unsafe { libc::isatty(fd) } == 1;
    let mut line = String::new();
    if tty {
        eprint!("{prompt}");
        let _ = io::stderr().flush();
        // SAFETY: termios is a plain struct filled by tcgetattr; we restore it after.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        let have = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
        if have {
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            quiet.c_lflag |= libc::ECHONL;
            unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
        }
        let read = stdin.lock().read_line(&mut line);
        if have {
            unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        }
        read.map_err(|e| CryptError::io(Path::new("stdin"), e))?;
    } else {
        stdin.lock().read_line(&mut line).map_err(|e| CryptError::io(Path::new("stdin"), e))?;
    }
    let secret = Secret::passphrase(&line);
    line.clear();
    secret
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let made = new_key_file(&path).unwrap();
        assert_eq!(from_key_file(&path).unwrap().bytes(), made.bytes());
        assert_eq!(made.bytes().len(), 64);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = from_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(new_key_file(&path).is_err(), "never overwrites a key");
        assert_eq!(format!("{made:?}"), "Secret(hidden)");
    }

    #[test]
    fn a_short_passphrase_is_refused() {
        assert!(Secret::passphrase("short\n").is_err());
        assert_eq!(Secret::passphrase("long enough\n").unwrap().bytes(), b"long enough");
    }
}
