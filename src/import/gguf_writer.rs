//! A small streaming GGUF (version 3) writer: metadata key/values, tensor infos
//! and f32/f16 tensor data, 32-byte aligned (ggml's `docs/gguf.md`).
//!
//! Tensor data is requested one tensor at a time from a callback, so converting
//! a model needs memory for one tensor only. The file is written to
//! `OUT.partial`, checked with the project's own validator
//! ([`crate::engine::gguf::validate`]) and only then renamed to `OUT`; on any
//! error the partial file is removed. The output is deterministic: the same
//! keys and tensors give the same bytes.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ImportError;
use crate::engine::gguf::{T_ARRAY, T_BOOL, T_F32, T_I32, T_STRING, T_U32};

/// Alignment of the data section and of every tensor in it.
pub const ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_NAME` (64) minus the terminating NUL.
const MAX_TENSOR_NAME: usize = 63;

/// A metadata value (only the types the importers need).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    StrArray(Vec<String>),
    I32Array(Vec<i32>),
}

/// Storage type of a tensor in the output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
}

impl TensorType {
    fn ggml_id(self) -> u32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
        }
    }

    fn size(self) -> u64 {
        match self {
            TensorType::F32 => 4,
            TensorType::F16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TensorType::F32 => "F32",
            TensorType::F16 => "F16",
        }
    }
}

/// One tensor of the output: its GGUF name, ggml dimensions (fastest-varying
/// first, i.e. the reverse of a row-major shape) and storage type.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: TensorType,
}

impl TensorSpec {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    fn bytes(&self) -> u64 {
        self.elements() * self.ty.size()
    }
}

/// Supplies a tensor's values: `(index, spec) -> row-major f32 data`.
type DataFn<'a> = dyn FnMut(usize, &TensorSpec) -> Result<Vec<f32>, ImportError> + 'a;

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// Collects metadata and tensor descriptions, then writes the file.
#[derive(Debug, Default)]
pub struct GgufBuilder {
    kvs: Vec<(String, Value)>,
    tensors: Vec<TensorSpec>,
    names: HashSet<String>,
}

impl GgufBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a metadata value; a later value for the same key replaces the earlier one.
    pub fn kv(&mut self, key: &str, value: Value) {
        match self.kvs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.kvs.push((key.to_string(), value)),
        }
    }

    /// Adds a tensor description; data is asked for in this order by [`Self::write`].
    pub fn tensor(&mut self, spec: TensorSpec) -> Result<(), ImportError> {
        let bad = |reason: String| Err(ImportError::Tensor { name: spec.name.clone(), reason });
        if spec.name.is_empty() || spec.name.len() > MAX_TENSOR_NAME {
            return bad(format!("name must be 1 to {MAX_TENSOR_NAME} bytes"));
        }
        if spec.dims.is_empty() || spec.dims.len() > 4 || spec.dims.contains(&0) {
            return bad(format!("has unusable dimensions {:?} (1 to 4 non-zero dimensions)", spec.dims));
        }
        let fits = spec.dims.iter().try_fold(spec.ty.size(), |acc, &d| acc.checked_mul(d));
        if fits.is_none_or(|b| b > i64::MAX as u64) {
            return bad(format!("dimensions {:?} are too large", spec.dims));
        }
        if !self.names.insert(spec.name.clone()) {
            return bad("appears twice".to_string());
        }
        self.tensors.push(spec);
        Ok(())
    }

    /// Writes the file: header, metadata, tensor infos, then the data of each
    /// tensor as returned by `data(index, spec)` (row-major f32 values, exactly
    /// `spec.elements()` of them), converted to the tensor's type. The result is
    /// validated before it is renamed into place.
    pub fn write(
        &self,
        out: &Path,
        mut data: impl FnMut(usize, &TensorSpec) -> Result<Vec<f32>, ImportError>,
    ) -> Result<Written, ImportError> {
        let mut partial = out.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let result = self.write_partial(&partial, &mut data).and_then(|(bytes, sha256)| {
            crate::engine::gguf::validate(&partial)?;
            fs::rename(&partial, out).map_err(|source| ImportError::Write { path: out.into(), source })?;
            Ok(Written { path: out.to_path_buf(), bytes, sha256 })
        });
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        result
    }

    fn write_partial(&self, path: &Path, data: &mut DataFn) -> Result<(u64, String), ImportError> {
        let werr = |source| ImportError::Write { path: path.to_path_buf(), source };
        let file = File::create(path).map_err(werr)?;
        let mut w =
            HashingWriter { inner: BufWriter::with_capacity(1 << 20, file), hash: Sha256::new(), n: 0 };
        self.write_head(&mut w).map_err(werr)?;
        for (i, spec) in self.tensors.iter().enumerate() {
            let values = data(i, spec)?;
            if values.len() as u64 != spec.elements() {
                return Err(ImportError::Tensor {
                    name: spec.name.clone(),
                    reason: format!("has {} values but its shape needs {}", values.len(), spec.elements()),
                });
            }
            write_values(&mut w, &values, spec.ty).map_err(werr)?;
            pad(&mut w).map_err(werr)?;
        }
        w.inner.flush().map_err(werr)?;
        let file = w.inner.into_inner().map_err(|e| werr(e.into_error()))?;
        file.sync_all().map_err(werr)?;
        Ok((w.n, hex::encode(w.hash.finalize())))
    }

    fn write_head(&self, w: &mut HashingWriter) -> io::Result<()> {
        w.write_all(b"GGUF")?;
        w.write_all(&3u32.to_le_bytes())?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        w.write_all(&(self.kvs.len() as u64).to_le_bytes())?;
        for (key, value) in &self.kvs {
            write_str(w, key)?;
            write_value(w, value)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            write_str(w, &t.name)?;
            w.write_all(&(t.dims.len() as u32).to_le_bytes())?;
            for d in &t.dims {
                w.write_all(&d.to_le_bytes())?;
            }
            w.write_all(&t.ty.ggml_id().to_le_bytes())?;
            w.write_all(&offset.to_le_bytes())?;
            offset += t.bytes().next_multiple_of(ALIGNMENT);
        }
        pad(w)
    }
}

/// Counts and hashes everything written, so the caller gets the sha256 for free.
struct HashingWriter {
    inner: BufWriter<File>,
    hash: Sha256,
    n: u64,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pad(w: &mut HashingWriter) -> io::Result<()> {
    let zeros = [0u8; ALIGNMENT as usize];
    let n = (w.n.next_multiple_of(ALIGNMENT) - w.n) as usize;
    w.write_all(&zeros[..n])
}

fn write_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_value(w: &mut impl Write, value: &Value) -> io::Result<()> {
    match value {
        Value::U32(v) => w.write_all(&T_U32.to_le_bytes()).and_then(|()| w.write_all(&v.to_le_bytes())),
        Value::F32(v) => w.write_all(&T_F32.to_le_bytes()).and_then(|()| w.write_all(&v.to_le_bytes())),
        Value::Bool(v) => w.write_all(&T_BOOL.to_le_bytes()).and_then(|()| w.write_all(&[u8::from(*v)])),
        Value::Str(s) => w.write_all(&T_STRING.to_le_bytes()).and_then(|()| write_str(w, s)),
        Value::StrArray(items) => {
            w.write_all(&T_ARRAY.to_le_bytes())?;
            w.write_all(&T_STRING.to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|s| write_str(w, s))
        }
        Value::I32Array(items) => {
            w.write_all(&T_ARRAY.to_le_bytes())?;
            w.write_all(&T_I32.to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|v| w.write_all(&v.to_le_bytes()))
        }
    }
}

fn write_values(w: &mut impl Write, values: &[f32], ty: TensorType) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    for chunk in values.chunks(16 * 1024) {
        buf.clear();
        match ty {
            TensorType::F32 => chunk.iter().for_each(|v| buf.extend_from_slice(&v.to_le_bytes())),
            TensorType::F16 => {
                chunk.iter().for_each(|v| buf.extend_from_slice(&f32_to_f16(*v).to_le_bytes()))
            }
        }
        w.write_all(&buf)?;
    }
    Ok(())
}

/// IEEE 754 binary32 to binary16, rounding to nearest even (as numpy's `astype`):
/// overflow gives infinity, tiny values become subnormal or zero, NaN stays NaN.
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        let nan = if man != 0 { 0x0200 | (man >> 13) as u16 } else { 0 };
        return sign | 0x7c00 | nan;
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let (kept, rest, half) = if e <= 0 {
        // Subnormal (or zero): value = m * 2^-24 with m = full mantissa >> shift.
        let shift = (14 - e) as u32;
        if shift > 24 {
            return sign;
        }
        let full = man | 0x80_0000;
        (full >> shift, full & ((1 << shift) - 1), 1u32 << (shift - 1))
    } else {
        (((e as u32) << 10) | (man >> 13), man & 0x1fff, 0x1000)
    };
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    let rounded = if rest > half || (rest == half && kept & 1 == 1) { kept + 1 } else { kept };
    sign | rounded as u16
}

/// IEEE 754 binary16 to binary32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            let v = man as f32 * f32::from_bits(0x3380_0000); // 2^-24
            return if sign != 0 { -v } else { v };
        }
        0x1f => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
#[path = "gguf_writer_tests.rs"]
mod tests;
