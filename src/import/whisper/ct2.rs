//! Reader for CTranslate2's `model.bin` (binary versions 4 to 6).
//!
//! Layout (all little-endian): `u32` binary version, the spec name, `u32` spec
//! revision, `u32` variable count, then per variable its name, `u8` rank,
//! `rank × u32` shape, `u8` data type, `u32` byte count and the bytes; finally
//! `u32` alias count and `(alias, target)` name pairs. Strings are a `u16`
//! length that counts a terminating NUL, then the bytes and the NUL.
//!
//! Only the index is read up front; tensor data is read on demand, so opening
//! a large model is cheap. Every length is checked against the file size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::super::gguf_writer::f16_to_f32;
use super::super::ImportError;

/// The binary versions this reader understands.
pub const VERSIONS: std::ops::RangeInclusive<u32> = 4..=6;
const MAX_RANK: u8 = 8;
const MAX_VARIABLES: u32 = 1 << 20;

/// Element type of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_id(id: u8) -> Option<DType> {
        Some(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    pub fn size(self) -> u64 {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One variable in the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    /// Row-major shape, outermost first.
    pub shape: Vec<u64>,
    pub dtype: DType,
    offset: u64,
}

impl Var {
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// Tensor data as stored: half floats stay bit patterns so they can be copied exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F16(Vec<u16>),
    F32(Vec<f32>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::F16(v) => v.len(),
            Data::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements `range` (row-major).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Data {
        match self {
            Data::F16(v) => Data::F16(v[range].to_vec()),
            Data::F32(v) => Data::F32(v[range].to_vec()),
        }
    }

    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Data::F16(v) => v.iter().map(|&h| f16_to_f32(h)).collect(),
            Data::F32(v) => v.clone(),
        }
    }
}

/// An opened `model.bin`.
pub struct Ct2Model {
    path: PathBuf,
    pub version: u32,
    pub spec: String,
    pub revision: u32,
    vars: BTreeMap<String, Var>,
    aliases: BTreeMap<String, String>,
    file: BufReader<File>,
}

impl std::fmt::Debug for Ct2Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ct2Model").field("path", &self.path).field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl Ct2Model {
    pub fn open(path: &Path) -> Result<Ct2Model, ImportError> {
        let io = |source| ImportError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut r = Cursor { file: BufReader::new(file), pos: 0, len, path };
        let version = r.u32()?;
        if !VERSIONS.contains(&version) {
            return Err(r.bad(format!(
                "binary version {version} (supported: {} to {})",
                VERSIONS.start(),
                VERSIONS.end()
            )));
        }
        let spec = r.string()?;
        let revision = r.u32()?;
        let count = r.u32()?;
        if count > MAX_VARIABLES {
            return Err(r.bad(format!("{count} variables")));
        }
        let mut vars = BTreeMap::new();
        for _ in 0..count {
            let name = r.string()?;
            let rank = r.u8()?;
            if rank > MAX_RANK {
                return Err(r.bad(format!("variable '{name}' has rank {rank}")));
            }
            let shape = (0..rank).map(|_| r.u32().map(u64::from)).collect::<Result<Vec<_>, _>>()?;
            let id = r.u8()?;
            let dtype =
                DType::from_id(id).ok_or_else(|| r.bad(format!("variable '{name}' has data type {id}")))?;
            let bytes = u64::from(r.u32()?);
            let var = Var { shape, dtype, offset: r.pos };
            let elements = var.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            if elements.and_then(|e| e.checked_mul(dtype.size())) != Some(bytes) {
                return Err(r.bad(format!(
                    "variable '{name}' has {bytes} bytes for shape {:?} of {dtype:?}",
                    var.shape
                )));
            }
            r.skip(bytes)?;
            if vars.insert(name.clone(), var).is_some() {
                return Err(r.bad(format!("variable '{name}' appears twice")));
            }
        }
        let mut aliases = BTreeMap::new();
        let n_aliases = r.u32()?;
        if n_aliases > MAX_VARIABLES {
            return Err(r.bad(format!("{n_aliases} aliases")));
        }
        for _ in 0..n_aliases {
            let alias = r.string()?;
            let target = r.string()?;
            if !vars.contains_key(&target) {
                return Err(r.bad(format!("alias '{alias}' names the missing variable '{target}'")));
            }
            aliases.insert(alias, target);
        }
        if r.pos != len {
            return Err(r.bad(format!("{} unexpected bytes after the aliases", len - r.pos)));
        }
        Ok(Ct2Model { path: path.to_path_buf(), version, spec, revision, vars, aliases, file: r.file })
    }

    /// A variable by name or alias.
    pub fn get(&self, name: &str) -> Option<&Var> {
        let target = self.aliases.get(name).map_or(name, String::as_str);
        self.vars.get(target)
    }

    /// Variable names (aliases not included).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    fn require(&self, name: &str) -> Result<Var, ImportError> {
        self.get(name).cloned().ok_or_else(|| ImportError::Tensor {
            name: name.into(),
            reason: format!("is missing from {}", self.path.display()),
        })
    }

    fn read_bytes(&mut self, var: &Var) -> Result<Vec<u8>, ImportError> {
        let io = |source| ImportError::Io { path: self.path.clone(), source };
        let mut buf = vec![0u8; (var.elements() * var.dtype.size()) as usize];
        self.file.seek(SeekFrom::Start(var.offset)).map_err(io)?;
        self.file.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }

    /// The shape of a variable that must exist.
    pub fn shape(&self, name: &str) -> Result<Vec<u64>, ImportError> {
        Ok(self.require(name)?.shape)
    }

    /// A floating-point tensor. Integer weights are dequantized with their
    /// `<name>_scale` variable (per output row for int8, one scale for int16),
    /// as CTranslate2's quantization stores them.
    pub fn read(&mut self, name: &str) -> Result<Data, ImportError> {
        let var = self.require(name)?;
        let raw = self.read_bytes(&var)?;
        let floats = |width: usize, f: fn(&[u8]) -> f32| raw.chunks_exact(width).map(f).collect::<Vec<f32>>();
        Ok(match var.dtype {
            DType::F16 => Data::F16(raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()),
            DType::F32 => Data::F32(floats(4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            DType::BF16 => {
                Data::F32(floats(2, |c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)))
            }
            DType::I8 | DType::I16 => {
                let values = match var.dtype {
                    DType::I8 => floats(1, |c| f32::from(c[0] as i8)),
                    _ => floats(2, |c| f32::from(i16::from_le_bytes([c[0], c[1]]))),
                };
                Data::F32(self.dequantize(name, &var, values)?)
            }
            DType::I32 => {
                let reason = "is an int32 tensor where weights were expected".into();
                return Err(ImportError::Tensor { name: name.into(), reason });
            }
        })
    }

    fn dequantize(&mut self, name: &str, var: &Var, mut values: Vec<f32>) -> Result<Vec<f32>, ImportError> {
        let scale_name = format!("{name}_scale");
        let scale = self.read(&scale_name)?.to_f32();
        let rows = var.shape.first().copied().unwrap_or(1) as usize;
        let bad = |reason: String| ImportError::Tensor { name: scale_name.clone(), reason };
        let per = if scale.len() == 1 {
            values.len()
        } else if scale.len() == rows && rows > 0 {
            values.len() / rows
        } else {
            return Err(bad(format!("has {} values for {rows} rows", scale.len())));
        };
        for (row, chunk) in values.chunks_mut(per.max(1)).enumerate() {
            let s = scale[row.min(scale.len() - 1)];
            if s == 0.0 || !s.is_finite() {
                return Err(bad(format!("has the unusable value {s} in row {row}")));
            }
            chunk.iter_mut().for_each(|v| *v /= s);
        }
        Ok(values)
    }

    /// An integer scalar (a one-element int8/int16/int32 variable), if present.
    pub fn scalar(&mut self, name: &str) -> Result<Option<i64>, ImportError> {
        let Some(var) = self.get(name).cloned() else { return Ok(None) };
        if var.elements() != 1 {
            let reason = format!("should be a scalar but has shape {:?}", var.shape);
            return Err(ImportError::Tensor { name: name.into(), reason });
        }
        let raw = self.read_bytes(&var)?;
        Ok(Some(match var.dtype {
            DType::I8 => i64::from(raw[0] as i8),
            DType::I16 => i64::from(i16::from_le_bytes([raw[0], raw[1]])),
            DType::I32 => i64::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
            _ => {
                let reason = "should be an integer scalar".into();
                return Err(ImportError::Tensor { name: name.into(), reason });
            }
        }))
    }
}

/// A bounds-checked sequential reader over the file.
struct Cursor<'a> {
    file: BufReader<File>,
    pos: u64,
    len: u64,
    path: &'a Path,
}

impl Cursor<'_> {
    fn bad(&self, reason: String) -> ImportError {
        ImportError::Ct2 { path: self.path.to_path_buf(), reason }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], ImportError> {
        if self.pos + N as u64 > self.len {
            return Err(self.bad(format!("truncated at byte {} of {}", self.pos, self.len)));
        }
        let mut b = [0u8; N];
        self.file
            .read_exact(&mut b)
            .map_err(|source| ImportError::Io { path: self.path.to_path_buf(), source })?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, ImportError> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, ImportError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn string(&mut self) -> Result<String, ImportError> {
        let n = u16::from_le_bytes(self.take()?) as u64;
        if n == 0 || self.pos + n > self.len {
            return Err(self.bad(format!("bad string of length {n} at byte {}", self.pos)));
        }
        let mut b = vec![0u8; n as usize];
        self.file
            .read_exact(&mut b)
            .map_err(|source| ImportError::Io { path: self.path.to_path_buf(), source })?;
        self.pos += n;
        if b.pop() != Some(0) {
            return Err(self.bad(format!("string without its NUL at byte {}", self.pos)));
        }
        String::from_utf8(b)
            .map_err(|_| self.bad(format!("string that is not UTF-8 before byte {}", self.pos)))
    }

    fn skip(&mut self, n: u64) -> Result<(), ImportError> {
        if self.pos + n > self.len {
            return Err(
                self.bad(format!("truncated: a variable of {n} bytes at byte {} of {}", self.pos, self.len))
            );
        }
        self.file
            .seek_relative(n as i64)
            .map_err(|source| ImportError::Io { path: self.path.to_path_buf(), source })?;
        self.pos += n;
        Ok(())
    }
}
