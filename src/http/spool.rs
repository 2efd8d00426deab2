//! Uploaded files written to disk as they arrive (issue 25): a request of 20 files of
//! 20 MiB must not mean 400 MiB in memory. Each file goes to a private temporary file
//! in `<data_dir>/uploads/`, hashed and checked for text on the way, and from there
//! into SQLite in pieces; memory per upload stays at one write buffer. On an encrypted box
//! the file is sealed as it is written (`crypt::aead`), and the store opens it with the key.

use crate::crypt::aead::SealWriter;
use crate::crypt::{FileKey, UPLOAD_AAD as SEAL_AAD};
use crate::error::{ApiError, ErrorCode};
use crate::knowledge::extract::{TextCheck, HEAD_BYTES};
use actix_web::web;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes gathered before one write to disk: what one upload holds in memory.
const WRITE_BUF: usize = 256 * 1024;
/// The temporary files' extension; `hearth serve` removes leftovers at start.
pub const PART_EXTENSION: &str = "part";

/// An uploaded file on disk. The file is removed when this is dropped: after its
/// content went into the database, or when the request failed.
#[derive(Debug)]
pub struct Spooled {
    pub path: PathBuf,
    pub size: u64,
    /// sha256 of the content, in hex.
    pub sha256: String,
    /// The first bytes, for detecting the kind.
    pub head: Vec<u8>,
    /// Whether the whole file is UTF-8 without NUL bytes.
    pub is_text: bool,
}

impl Drop for Spooled {
    fn drop(&mut self) {
        // An unlink is a quick metadata change; the handler moves finished uploads into
        // the database task, so the usual drop happens off the async runtime anyway.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The temporary file: plain, or sealed on an encrypted box.
enum SpoolFile {
    Plain(std::fs::File),
    Sealed(SealWriter<Arc<FileKey>, std::fs::File>),
}

impl SpoolFile {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            SpoolFile::Plain(f) => f.write_all(buf),
            SpoolFile::Sealed(f) => f.write_all(buf),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            SpoolFile::Plain(_) => Ok(()),
            SpoolFile::Sealed(f) => f.finish().map(drop),
        }
    }
}

/// Writes one upload to its temporary file.
pub struct Spooler {
    file: Option<SpoolFile>,
    buf: Vec<u8>,
    hasher: Sha256,
    text: TextCheck,
    spooled: Spooled,
}

fn storage_failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "cannot write an upload to disk");
    ApiError::new(ErrorCode::StorageError, "the upload could not be stored on the box")
}

fn create_private(dir: &Path, path: &Path) -> std::io::Result<std::fs::File> {
    crate::private_files::private_dir(dir)?;
    crate::private_files::create_private(path)
}

impl Spooler {
    /// Starts a new temporary file in `dir` (made if missing), sealed with `key` if given.
    pub async fn create(dir: PathBuf, key: Option<Arc<FileKey>>) -> Result<Spooler, ApiError> {
        let path = dir.join(format!("{}.{PART_EXTENSION}", uuid::Uuid::new_v4().simple()));
        let at = path.clone();
        let file = web::block(move || create_private(&dir, &at)).await.map_err(storage_failed)?;
        let spooled = Spooled { path, size: 0, sha256: String::new(), head: Vec::new(), is_text: false };
        let file = match (file.map_err(storage_failed)?, key) {
            (file, None) => SpoolFile::Plain(file),
            (file, Some(key)) => SpoolFile::Sealed(SealWriter::new(file, key, SEAL_AAD)),
        };
        Ok(Spooler {
            file: Some(file),
            buf: Vec::with_capacity(WRITE_BUF),
            hasher: Sha256::new(),
            text: TextCheck::default(),
            spooled,
        })
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.spooled.size
    }

    /// Adds the next piece of the upload.
    pub async fn write(&mut self, piece: &[u8]) -> Result<(), ApiError> {
        self.hasher.update(piece);
        self.text.feed(piece);
        let head = &mut self.spooled.head;
        if head.len() < HEAD_BYTES {
            head.extend_from_slice(&piece[..piece.len().min(HEAD_BYTES - head.len())]);
        }
        self.spooled.size += piece.len() as u64;
        self.buf.extend_from_slice(piece);
        if self.buf.len() >= WRITE_BUF {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ApiError> {
        let (Some(mut file), buf) = (self.file.take(), std::mem::take(&mut self.buf)) else {
            return Err(storage_failed("the upload's file is gone after an earlier failure"));
        };
        let (file, mut buf) = web::block(move || file.write_all(&buf).map(|()| (file, buf)))
            .await
            .map_err(storage_failed)?
            .map_err(storage_failed)?;
        buf.clear();
        (self.file, self.buf) = (Some(file), buf);
        Ok(())
    }

    /// Writes what is left and closes the file.
    pub async fn finish(mut self) -> Result<Spooled, ApiError> {
        self.flush().await?;
        if let Some(file) = self.file.take() {
            web::block(move || file.finish()).await.map_err(storage_failed)?.map_err(storage_failed)?;
        }
        let mut spooled = self.spooled;
        spooled.sha256 = hex::encode(self.hasher.finalize());
        spooled.is_text = self.text.is_text();
        Ok(spooled)
    }
}

/// Removes temporary upload files a crash or kill left behind (called at start, before
/// any upload can be under way).
pub fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == PART_EXTENSION) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a leftover upload");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn an_upload_is_hashed_checked_and_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = dir.path().join("uploads");
        let mut spooler = Spooler::create(uploads.clone(), None).await.unwrap();
        let text = "héllo ".repeat(100_000); // several write buffers, 'é' split between pieces
        for piece in text.as_bytes().chunks(4093) {
            spooler.write(piece).await.unwrap();
        }
        let spooled = spooler.finish().await.unwrap();
        assert_eq!(spooled.size, text.len() as u64);
        assert_eq!(spooled.sha256, crate::store::sha256_hex(text.as_bytes()));
        assert_eq!((spooled.head.as_slice(), spooled.is_text), (&text.as_bytes()[..HEAD_BYTES], true));
        assert_eq!(std::fs::read(&spooled.path).unwrap(), text.as_bytes());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&spooled.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let path = spooled.path.clone();
        drop(spooled);
        assert!(!path.exists());

        let leftover = Spooler::create(uploads.clone(), None).await.unwrap();
        std::mem::forget(leftover); // as after a crash
        assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 1);
        remove_leftovers(&uploads);
        assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
    }

    #[actix_web::test]
    async fn on_an_encrypted_box_the_upload_is_sealed_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(FileKey::new(&[7; 32]));
        let mut spooler = Spooler::create(dir.path().join("uploads"), Some(key.clone())).await.unwrap();
        let text = "the cellar code is MARKER-1234. ".repeat(20_000);
        for piece in text.as_bytes().chunks(5000) {
            spooler.write(piece).await.unwrap();
        }
        let spooled = spooler.finish().await.unwrap();
        assert_eq!(spooled.size, text.len() as u64);
        assert_eq!(spooled.sha256, crate::store::sha256_hex(text.as_bytes()), "of the content, not the file");
        let on_disk = std::fs::read(&spooled.path).unwrap();
        assert!(!on_disk.windows(6).any(|w| w == b"MARKER"));
        let mut back = Vec::new();
        use std::io::Read;
        crate::crypt::aead::OpenReader::new(&on_disk[..], key, SEAL_AAD).read_to_end(&mut back).unwrap();
        assert_eq!(back, text.as_bytes());
    }
}
