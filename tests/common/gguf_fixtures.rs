//! Hostile GGUF fixtures derived from a real model file, for the tests that check Hearth
//! refuses bad models instead of handing them to llama.cpp.
//!
//! Standalone on purpose: the patching below parses just enough of the GGUF metadata
//! section to find a key, independently of the validator under test.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

const GGUF_TYPE_UINT32: u32 = 4;
const GGUF_TYPE_STRING: u32 = 8;
const GGUF_TYPE_ARRAY: u32 = 9;

/// Copies the first `keep_bytes` bytes of `src` to `dst`; `keep_bytes` must be smaller
/// than the file, so the copy really is truncated.
#[allow(dead_code)]
pub fn truncated_copy(src: &Path, dst: &Path, keep_bytes: u64) -> io::Result<()> {
    let len = fs::metadata(src)?.len();
    if keep_bytes >= len {
        let msg = format!("cannot truncate {} ({len} bytes) to {keep_bytes} bytes", src.display());
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    let mut input = File::open(src)?.take(keep_bytes);
    let mut output = File::create(dst)?;
    io::copy(&mut input, &mut output)?;
    output.sync_all()
}

/// Writes `len` seeded random bytes to `dst` (almost surely without the GGUF magic).
#[allow(dead_code)]
pub fn random_bytes(dst: &Path, len: usize, seed: u64) -> io::Result<()> {
    let mut bytes = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    fs::write(dst, bytes)
}

/// Like [`random_bytes`], but starts with a valid header prefix (`GGUF`, version 3) so the
/// random part is parsed as counts, keys and tensor infos.
#[allow(dead_code)]
pub fn random_bytes_after_header(dst: &Path, len: usize, seed: u64) -> io::Result<()> {
    let mut bytes = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    let header = b"GGUF\x03\0\0\0";
    let n = header.len().min(len);
    bytes[..n].copy_from_slice(&header[..n]);
    fs::write(dst, bytes)
}

/// Copies `src` to `dst` and overwrites the value of its existing u32 metadata entry `key`
/// (for example `llama.block_count`) with `value`, in place. Fails if the key is missing
/// or not a u32.
#[allow(dead_code)]
pub fn with_u32_kv(src: &Path, dst: &Path, key: &str, value: u32) -> io::Result<()> {
    let (ty, offset) = find_kv_value(src, key)?;
    if ty != GGUF_TYPE_UINT32 {
        let msg = format!("metadata key {key} in {} has GGUF type {ty}, not u32", src.display());
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    fs::copy(src, dst)?;
    let mut file = OpenOptions::new().write(true).open(dst)?;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(&value.to_le_bytes())?;
    file.sync_all()
}

/// Returns the GGUF type of metadata entry `key` and the file offset of its value.
#[allow(dead_code)]
pub fn find_kv_value(path: &Path, key: &str) -> io::Result<(u32, u64)> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut r = Cursor { inner: BufReader::new(file), pos: 0, len };
    let mut magic = [0u8; 4];
    r.read(&mut magic)?;
    let version = r.u32()?;
    if &magic != b"GGUF" || !(2..=3).contains(&version) {
        return Err(bad_data(format!("{} is not a GGUF v2/v3 file", path.display())));
    }
    let _tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    for _ in 0..kv_count {
        let key_len = r.u64()?;
        if key_len > 64 * 1024 {
            return Err(bad_data(format!("metadata key of {key_len} bytes")));
        }
        let mut name = vec![0u8; key_len as usize];
        r.read(&mut name)?;
        let ty = r.u32()?;
        if name == key.as_bytes() {
            return Ok((ty, r.pos));
        }
        r.skip_value(ty, 0)?;
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("metadata key {key} not found in {}", path.display()),
    ))
}

/// Size of the fixed-size GGUF value types (integers, floats, bool).
fn fixed_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn bad_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Position-tracking reader that refuses to go past the end of the file.
struct Cursor {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
}

impl Cursor {
    fn check(&self, n: u64) -> io::Result<()> {
        if n > self.len - self.pos {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{n} bytes at offset {}", self.pos),
            ));
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.check(buf.len() as u64)?;
        self.inner.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.read(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        self.check(n)?;
        self.inner.seek_relative(n as i64)?;
        self.pos += n;
        Ok(())
    }

    fn skip_value(&mut self, ty: u32, depth: u32) -> io::Result<()> {
        if let Some(size) = fixed_size(ty) {
            return self.skip(size);
        }
        match ty {
            GGUF_TYPE_STRING => {
                let n = self.u64()?;
                self.skip(n)
            }
            GGUF_TYPE_ARRAY if depth < 4 => {
                let elem = self.u32()?;
                let count = self.u64()?;
                // Every element takes at least one byte, so a count beyond the file is corrupt.
                self.check(count)?;
                if let Some(size) = fixed_size(elem) {
                    return self.skip(count * size);
                }
                for _ in 0..count {
                    self.skip_value(elem, depth + 1)?;
                }
                Ok(())
            }
            _ => Err(bad_data(format!("unknown or too deeply nested GGUF type {ty} at offset {}", self.pos))),
        }
    }
}
