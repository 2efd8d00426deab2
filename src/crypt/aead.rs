//! Files sealed with AES-256-GCM (ring): whole small files in one piece, and streams
//! (backups) in chunks, each with its own nonce, so a large file is never held in RAM.
//!
//! A sealed blob is `HEARTHE1 | nonce (12) | ciphertext | tag (16)`. A sealed stream is
//! `HEARTHS1 | prefix (8)` then chunks `length (u32 BE, top bit: last) | ciphertext | tag`;
//! chunk `i`'s nonce is `prefix | i (u32 BE)` and its last flag is authenticated, so a
//! stream cut after a chunk fails instead of reading short. The `aad` names what the
//! bytes are for (a KV file, a backup), so one kind of file cannot be passed off as another.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::io::{self, Read, Write};
use std::ops::Deref;

pub const BLOB_MAGIC: &[u8; 8] = b"HEARTHE1";
pub const STREAM_MAGIC: &[u8; 8] = b"HEARTHS1";
const TAG: usize = 16;
/// Plaintext bytes per stream chunk.
const CHUNK: usize = 64 * 1024;
const LAST: u32 = 1 << 31;

/// The key for Hearth's own files (not SQLite's, which SQLCipher derives from its own key).
pub struct FileKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(hidden)")
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).expect("the system's random source failed");
    out
}

impl FileKey {
    pub fn new(bytes: &[u8; 32]) -> FileKey {
        let key = UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes is an AES-256 key");
        FileKey { key: LessSafeKey::new(key) }
    }

    /// Seals `plain` with a fresh random nonce.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let nonce = random::<{ NONCE_LEN }>();
        let mut out = Vec::with_capacity(8 + NONCE_LEN + plain.len() + TAG);
        out.extend_from_slice(BLOB_MAGIC);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
            .expect("sealing cannot fail for sizes under 64 GiB");
        out.extend_from_slice(&body);
        out
    }

    /// Opens what [`seal`](Self::seal) made with the same `aad`; an error for anything
    /// else (another key, damaged, truncated, another kind of file).
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> io::Result<Vec<u8>> {
        if sealed.len() < 8 + NONCE_LEN + TAG || &sealed[..8] != BLOB_MAGIC {
            return Err(invalid("not a sealed Hearth file"));
        }
        let nonce: [u8; NONCE_LEN] = sealed[8..8 + NONCE_LEN].try_into().expect("12 bytes");
        let mut body = sealed[8 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
            .map_err(|_| invalid("cannot be opened with this key (another key, or damaged)"))?;
        let n = plain.len();
        body.truncate(n);
        Ok(body)
    }

    fn chunk_nonce(prefix: &[u8; 8], i: u32) -> Nonce {
        let mut n = [0u8; NONCE_LEN];
        n[..8].copy_from_slice(prefix);
        n[8..].copy_from_slice(&i.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    }

    fn chunk_aad(aad: &[u8], last: bool) -> Vec<u8> {
        let mut a = aad.to_vec();
        a.push(u8::from(last));
        a
    }
}

/// Writes a sealed stream; call [`finish`](SealWriter::finish) to write the last chunk.
/// `K` holds the key: `&FileKey`, or an `Arc<FileKey>` for a writer that must be `'static`.
pub struct SealWriter<K: Deref<Target = FileKey>, W: Write> {
    out: W,
    key: K,
    aad: Vec<u8>,
    prefix: [u8; 8],
    index: u32,
    buf: Vec<u8>,
    started: bool,
}

impl<K: Deref<Target = FileKey>, W: Write> SealWriter<K, W> {
    pub fn new(out: W, key: K, aad: &[u8]) -> Self {
        SealWriter {
            out,
            key,
            aad: aad.to_vec(),
            prefix: random(),
            index: 0,
            buf: Vec::with_capacity(CHUNK),
            started: false,
        }
    }

    fn emit(&mut self, last: bool) -> io::Result<()> {
        if !self.started {
            self.out.write_all(STREAM_MAGIC)?;
            self.out.write_all(&self.prefix)?;
            self.started = true;
        }
        let nonce = FileKey::chunk_nonce(&self.prefix, self.index);
        self.index = self.index.checked_add(1).ok_or_else(|| invalid("stream too long"))?;
        let len = self.buf.len() as u32 | if last { LAST } else { 0 };
        let aad = FileKey::chunk_aad(&self.aad, last);
        let mut body = std::mem::take(&mut self.buf);
        self.key
            .key
            .seal_in_place_append_tag(nonce, Aad::from(&aad), &mut body)
            .map_err(|_| invalid("sealing failed"))?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(&body)?;
        body.clear();
        self.buf = body;
        Ok(())
    }

    /// Seals what is buffered as the last chunk and hands back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.emit(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<K: Deref<Target = FileKey>, W: Write> Write for SealWriter<K, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.emit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads a sealed stream back; an error at the first chunk that fails (or when it ends
/// before its last chunk).
pub struct OpenReader<K: Deref<Target = FileKey>, R: Read> {
    input: R,
    key: K,
    aad: Vec<u8>,
    prefix: Option<[u8; 8]>,
    index: u32,
    plain: Vec<u8>,
    at: usize,
    done: bool,
}

impl<K: Deref<Target = FileKey>, R: Read> OpenReader<K, R> {
    pub fn new(input: R, key: K, aad: &[u8]) -> Self {
        OpenReader {
            input,
            key,
            aad: aad.to_vec(),
            prefix: None,
            index: 0,
            plain: Vec::new(),
            at: 0,
            done: false,
        }
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let prefix = match self.prefix {
            Some(p) => p,
            None => {
                let mut head = [0u8; 16];
                self.input.read_exact(&mut head).map_err(|_| invalid("not a sealed Hearth stream"))?;
                if &head[..8] != STREAM_MAGIC {
                    return Err(invalid("not a sealed Hearth stream"));
                }
                let p: [u8; 8] = head[8..].try_into().expect("8 bytes");
                self.prefix = Some(p);
                p
            }
        };
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len).map_err(|_| invalid("sealed stream cut short"))?;
        let len = u32::from_be_bytes(len);
        let last = len & LAST != 0;
        let n = (len & !LAST) as usize;
        if n > CHUNK {
            return Err(invalid("sealed stream damaged"));
        }
        let mut body = vec![0u8; n + TAG];
        self.input.read_exact(&mut body).map_err(|_| invalid("sealed stream cut short"))?;
        let nonce = FileKey::chunk_nonce(&prefix, self.index);
        self.index = self.index.checked_add(1).ok_or_else(|| invalid("stream too long"))?;
        let aad = FileKey::chunk_aad(&self.aad, last);
        self.key
            .key
            .open_in_place(nonce, Aad::from(&aad), &mut body)
            .map_err(|_| invalid("cannot be opened with this key (another key, or damaged)"))?;
        body.truncate(n);
        self.plain = body;
        self.at = 0;
        self.done = last;
        Ok(())
    }
}

impl<K: Deref<Target = FileKey>, R: Read> Read for OpenReader<K, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.plain.len() - self.at);
        out[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Whether `bytes` begin like a sealed stream (a backup made with encryption on).
pub fn is_sealed_stream(bytes: &[u8]) -> bool {
    bytes.starts_with(STREAM_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> FileKey {
        FileKey::new(&[b; 32])
    }

    #[test]
    fn a_blob_opens_only_with_its_key_and_purpose() {
        let sealed = key(1).seal(b"kv", b"the secret words");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key(1).open(b"kv", &sealed).unwrap(), b"the secret words");
        assert!(key(2).open(b"kv", &sealed).is_err());
        assert!(key(1).open(b"backup", &sealed).is_err());
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(key(1).open(b"kv", &damaged).is_err());
    }

    #[test]
    fn a_stream_round_trips_and_refuses_truncation() {
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let k = key(3);
        let mut w = SealWriter::new(Vec::new(), &k, b"backup");
        w.write_all(&plain).unwrap();
        let sealed = w.finish().unwrap();
        assert!(is_sealed_stream(&sealed));
        let mut back = Vec::new();
        OpenReader::new(&sealed[..], &k, b"backup").read_to_end(&mut back).unwrap();
        assert_eq!(back, plain);
        // Cut at a chunk boundary: the last flag is missing, so it fails.
        let first_chunk = 16 + 4 + CHUNK + TAG;
        let mut out = Vec::new();
        assert!(OpenReader::new(&sealed[..first_chunk], &k, b"backup").read_to_end(&mut out).is_err());
        let mut out = Vec::new();
        assert!(OpenReader::new(&sealed[..], &key(4), b"backup").read_to_end(&mut out).is_err());
    }

    #[test]
    fn an_empty_stream_is_one_last_chunk() {
        let k = key(5);
        let sealed = SealWriter::new(Vec::new(), &k, b"x").finish().unwrap();
        let mut back = Vec::new();
        OpenReader::new(&sealed[..], &k, b"x").read_to_end(&mut back).unwrap();
        assert!(back.is_empty());
    }
}
