//! Archives of an encrypted box: `HEARTHB1 | header length (u32 BE) | encryption.json |
//! sealed stream` (`crypt::aead`) around the same `tar.gz`. The header goes in the clear
//! (a salt and a key check, nothing secret) so that the box's secret opens the archive on
//! a new box too; the restored data dir gets it as its `encryption.json`.

use super::BackupError;
use crate::crypt::aead::{OpenReader, SealWriter};
use crate::crypt::{FileKey, Header, Keys};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"HEARTHB1";
const AAD: &[u8] = b"hearth-backup";
const HEADER_LIMIT: u32 = 64 * 1024;

/// Where the compressed archive goes: the file, or the file through the seal.
pub(super) enum Out<'k> {
    Plain(BufWriter<File>),
    Sealed(SealWriter<&'k FileKey, BufWriter<File>>),
}

impl<'k> Out<'k> {
    pub fn new(file: File, seal: Option<(&Header, &'k FileKey)>) -> io::Result<Out<'k>> {
        let mut out = BufWriter::new(file);
        Ok(match seal {
            None => Out::Plain(out),
            Some((header, key)) => {
                let json = serde_json::to_vec(header).map_err(io::Error::other)?;
                out.write_all(MAGIC)?;
                out.write_all(&(json.len() as u32).to_be_bytes())?;
                out.write_all(&json)?;
                Out::Sealed(SealWriter::new(out, key, AAD))
            }
        })
    }

    pub fn finish(self) -> io::Result<File> {
        let out = match self {
            Out::Plain(out) => out,
            Out::Sealed(sealed) => sealed.finish()?,
        };
        out.into_inner().map_err(|e| e.into_error())
    }
}

impl Write for Out<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Out::Plain(out) => out.write(buf),
            Out::Sealed(out) => out.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Out::Plain(out) => out.flush(),
            Out::Sealed(out) => out.flush(),
        }
    }
}

/// The header of a sealed archive (`None`: a plain one).
pub fn archive_header(archive: &Path) -> Result<Option<Header>, BackupError> {
    let file = File::open(archive).map_err(|e| BackupError::io(archive.display(), e))?;
    let (header, _) = read_preamble(BufReader::new(file))?;
    Ok(header)
}

fn read_preamble(mut input: BufReader<File>) -> Result<(Option<Header>, BufReader<File>), BackupError> {
    let start = input.fill_buf_exact()?;
    if start.as_slice() != MAGIC {
        return Ok((None, input));
    }
    input.consume_n(8);
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(|e| BackupError::Damaged(e.to_string()))?;
    let len = u32::from_be_bytes(len);
    if len > HEADER_LIMIT {
        return Err(BackupError::Damaged("its encryption header is too large".into()));
    }
    let mut json = vec![0u8; len as usize];
    input.read_exact(&mut json).map_err(|e| BackupError::Damaged(e.to_string()))?;
    let header = serde_json::from_slice(&json)
        .map_err(|e| BackupError::Damaged(format!("its encryption header: {e}")))?;
    Ok((Some(header), input))
}

/// The archive's compressed bytes: as they are, or opened with `keys`. A sealed archive
/// without keys, or with another box's, is an error that says so.
pub(super) fn reader<'k>(archive: &Path, keys: Option<&'k Keys>) -> Result<Box<dyn Read + 'k>, BackupError> {
    let file = File::open(archive).map_err(|e| BackupError::io(archive.display(), e))?;
    let (header, input) = read_preamble(BufReader::new(file))?;
    match (header, keys) {
        (None, _) => Ok(Box::new(input)),
        (Some(_), None) => Err(BackupError::Io(format!(
            "{} is encrypted: its box's key file or passphrase is needed",
            archive.display()
        ))),
        (Some(_), Some(keys)) => Ok(Box::new(OpenReader::new(input, &*keys.file, AAD))),
    }
}

trait PeekExt {
    fn fill_buf_exact(&mut self) -> Result<Vec<u8>, BackupError>;
    fn consume_n(&mut self, n: usize);
}

impl PeekExt for BufReader<File> {
    /// The first 8 bytes without consuming them (fewer when the file is shorter).
    fn fill_buf_exact(&mut self) -> Result<Vec<u8>, BackupError> {
        use std::io::BufRead;
        let buf = self.fill_buf().map_err(|e| BackupError::Damaged(e.to_string()))?;
        Ok(buf[..buf.len().min(8)].to_vec())
    }

    fn consume_n(&mut self, n: usize) {
        use std::io::BufRead;
        self.consume(n);
    }
}
