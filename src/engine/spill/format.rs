//! The cache files' format: a header (magic, version, model key, owner, token count,
//! state length, checksum), the tokens, then the KV state; or, with encryption at rest,
//! the same sealed with AES-256-GCM (`write_sealed`).

use super::Owner;
use crate::crypt::FileKey;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub(super) const MAGIC: &[u8; 8] = b"HEARTHKV";
/// An encrypted file's magic (encryption at rest on).
pub(super) const SEALED_MAGIC: &[u8; 8] = b"HEARTHKX";
pub(super) const HEAD_AAD: &[u8] = b"hearth-kv-head";
pub(super) const VERSION: u32 = 2;
/// Magic, version, key, owner, token count, state length, checksum.
pub(super) const HEADER: usize = 8 + 4 + 8 + 8 + 4 + 8 + 4;

pub(super) fn file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id}.kv"))
}

/// Creates (or truncates) a file readable by this user only.
pub(super) fn private_file(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

pub(super) fn checksum(owner: Owner, tokens: &[i32], state: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&owner.key().to_le_bytes());
    for t in tokens {
        h.update(&t.to_le_bytes());
    }
    h.update(state);
    h.finalize()
}

pub(super) fn encode_header(key: u64, owner: Owner, tokens: &[i32], state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + tokens.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&owner.key().to_le_bytes());
    out.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(&checksum(owner, tokens, state).to_le_bytes());
    for t in tokens {
        out.extend_from_slice(&t.to_le_bytes());
    }
    out
}

pub(super) fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// What [`read`] finds in a file.
pub(super) struct File {
    pub(super) owner: Owner,
    pub(super) tokens: Vec<i32>,
    /// Bytes of entries.
    pub(super) len: u64,
    /// The entries, when asked for.
    pub(super) state: Vec<u8>,
}

/// Reads a file's header and tokens; with `state`, also its entries, checked against
/// the checksum. With a key, the file is a sealed one (see [`write_sealed`]).
pub(super) fn read(path: &Path, key: u64, state: bool, cipher: Option<&FileKey>) -> io::Result<File> {
    if let Some(cipher) = cipher {
        return read_sealed(path, key, state, cipher);
    }
    let mut f = io::BufReader::new(fs::File::open(path)?);
    let mut head = [0u8; HEADER];
    f.read_exact(&mut head)?;
    let (owner, n, len, sum) = parse_head(&head, key)?;
    let size = fs::metadata(path)?.len();
    if size != HEADER as u64 + n as u64 * 4 + len {
        return Err(invalid("truncated or padded"));
    }
    let mut raw = vec![0u8; n * 4];
    f.read_exact(&mut raw)?;
    let tokens = parse_tokens(&raw);
    let mut bytes = Vec::new();
    if state {
        bytes = vec![0u8; len as usize];
        f.read_exact(&mut bytes)?;
        if checksum(owner, &tokens, &bytes) != sum {
            return Err(invalid("checksum mismatch"));
        }
    }
    Ok(File { owner, tokens, len, state: bytes })
}

/// The header's owner, token count, entries' length and checksum, if it is this model's.
pub(super) fn parse_head(head: &[u8], key: u64) -> io::Result<(Owner, usize, u64, u32)> {
    if head.len() < HEADER {
        return Err(invalid("not a Hearth KV file of this version"));
    }
    let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
    if &head[..8] != MAGIC || u32_at(8) != VERSION {
        return Err(invalid("not a Hearth KV file of this version"));
    }
    if u64_at(12) != key {
        return Err(invalid("written by another model or build"));
    }
    Ok((Owner::from_key(u64_at(20) as i64), u32_at(28) as usize, u64_at(32), u32_at(40)))
}

pub(super) fn parse_tokens(raw: &[u8]) -> Vec<i32> {
    raw.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
}

/// The entries' seal names the header's seal (its nonce), so halves of two files
/// cannot be put together.
pub(super) fn state_aad(sealed_head: &[u8]) -> Vec<u8> {
    let mut aad = b"hearth-kv-state".to_vec();
    aad.extend_from_slice(&sealed_head[..20.min(sealed_head.len())]);
    aad
}

/// An encrypted file: `HEARTHKX | length (u32 LE) | sealed header and tokens | sealed
/// entries`. The two halves are sealed apart so that indexing the folder at start opens
/// only the small first one.
pub(super) fn write_sealed(
    out: &mut impl Write,
    cipher: &FileKey,
    head: &[u8],
    state: &[u8],
) -> io::Result<u64> {
    let sealed_head = cipher.seal(HEAD_AAD, head);
    let sealed_state = cipher.seal(&state_aad(&sealed_head), state);
    out.write_all(SEALED_MAGIC)?;
    out.write_all(&(sealed_head.len() as u32).to_le_bytes())?;
    out.write_all(&sealed_head)?;
    out.write_all(&sealed_state)?;
    Ok((12 + sealed_head.len() + sealed_state.len()) as u64)
}

pub(super) fn read_sealed(path: &Path, key: u64, state: bool, cipher: &FileKey) -> io::Result<File> {
    let mut f = io::BufReader::new(fs::File::open(path)?);
    let mut start = [0u8; 12];
    f.read_exact(&mut start)?;
    if &start[..8] != SEALED_MAGIC {
        return Err(invalid("not an encrypted Hearth KV file"));
    }
    let head_len = u32::from_le_bytes(start[8..].try_into().expect("4 bytes")) as usize;
    if head_len > 64 << 20 {
        return Err(invalid("damaged"));
    }
    let mut sealed_head = vec![0u8; head_len];
    f.read_exact(&mut sealed_head)?;
    let head = cipher.open(HEAD_AAD, &sealed_head)?;
    let (owner, n, len, sum) = parse_head(&head, key)?;
    if head.len() != HEADER + n * 4 {
        return Err(invalid("damaged"));
    }
    let tokens = parse_tokens(&head[HEADER..]);
    // The entries' seal: magic, nonce, the entries, the tag.
    let size = fs::metadata(path)?.len();
    if size != 12 + head_len as u64 + 8 + 12 + len + 16 {
        return Err(invalid("truncated or padded"));
    }
    let mut bytes = Vec::new();
    if state {
        let mut sealed = Vec::with_capacity((size - 12 - head_len as u64) as usize);
        f.read_to_end(&mut sealed)?;
        bytes = cipher.open(&state_aad(&sealed_head), &sealed)?;
        if checksum(owner, &tokens, &bytes) != sum {
            return Err(invalid("checksum mismatch"));
        }
    }
    Ok(File { owner, tokens, len, state: bytes })
}
