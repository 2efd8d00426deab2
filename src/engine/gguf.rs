//! Pre-flight validation of GGUF model files.
//!
//! llama.cpp trusts the model files it loads. Most malformed files make it
//! return an error, but some hostile ones make it abort the whole process
//! (`GGML_ASSERT` / `SIGABRT`) instead: for example a file whose
//! `llama.block_count` is 1000 while it only has tensors for 30 blocks. An
//! appliance must not go down because of one bad download or a file a user
//! dropped in, so Hearth calls [`validate`] before llama.cpp ever sees a file
//! and turns every problem into a typed [`GgufError`] with a readable message.
//!
//! The validator parses the GGUF container (versions 2 and 3, see ggml's
//! `docs/gguf.md`) with buffered reads, from the header through the metadata
//! and tensor-info sections. It never reads the tensor data itself, so a
//! multi-gigabyte model costs a few megabytes of I/O. Every length or count
//! taken from the file is checked against fixed sanity caps *and* against the
//! bytes left in the file before anything is allocated or skipped, so a
//! truncated, random or hostile file cannot make it allocate or loop without
//! bound.
//!
//! Beyond the container structure (known types, sizes, alignment, every tensor
//! inside the file and none overlapping, no duplicate keys or tensor names),
//! it checks the metadata that llama.cpp relies on without checking: the
//! architecture, the block count against the `blk.N.*` tensors actually
//! present, the main hyper-parameters, and the tokenizer arrays and special
//! token ids.
//!
//! It deliberately does not inspect tensor values or decide whether the
//! architecture is supported; llama.cpp reports those failures gracefully.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Alignment of the tensor data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

const MAX_KEY_LEN: u64 = 64 * 1024;
const MAX_STRING_LEN: u64 = 16 * 1024 * 1024;
/// Cap on both the metadata entry count and the tensor count.
const MAX_ENTRIES: u64 = 1 << 20;
const MAX_ARRAY_LEN: u64 = 1 << 30;
/// ggml's `GGML_MAX_NAME` is 64 bytes including the terminating NUL.
const MAX_TENSOR_NAME_LEN: u64 = 63;
const MAX_DIMS: u32 = 4;
const MAX_BLOCK_COUNT: u64 = 4096;
/// Strings up to this length are kept for the metadata checks; longer ones are skipped.
const KEEP_STRING_LEN: u64 = 4096;
/// Smallest possible encodings: a one-byte key with a one-byte value, and a
/// one-byte tensor name with one dimension.
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 8 + 4 + 8;
/// Special token ids that must index into `tokenizer.ggml.tokens`.
const SPECIAL_TOKEN_KEYS: [&str; 4] = [
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.unknown_token_id",
];

// GGUF metadata value types.
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

/// What [`validate`] learned about a model file that passed every check.
#[derive(Debug, Clone, Serialize)]
pub struct GgufSummary {
    pub version: u32,
    pub architecture: String,
    pub name: Option<String>,
    pub tensor_count: u64,
    pub kv_count: u64,
    pub block_count: Option<u64>,
    pub context_length: Option<u64>,
    pub file_size: u64,
    pub has_chat_template: bool,
    /// Absolute file offset where the tensor data section starts.
    pub data_offset: u64,
}

/// Why a file was rejected. Every message names what is wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    #[error("cannot read model file {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("not a GGUF file (it starts with \"{found}\" instead of \"GGUF\")")]
    NotGguf { found: String },
    #[error("unsupported GGUF version {version} (only versions 2 and 3 can be loaded)")]
    UnsupportedVersion { version: u32 },
    /// A length, count or offset points past the end of the file.
    #[error(
        "GGUF file is truncated or corrupt: {what} needs {needed} bytes at offset {offset}, \
         but the file is only {file_size} bytes"
    )]
    Truncated { what: String, offset: u64, needed: u64, file_size: u64 },
    /// The container structure is malformed.
    #[error("malformed GGUF file: {reason}")]
    Invalid { reason: String },
    /// One tensor's description is unusable (type, shape, offset, size).
    #[error("tensor '{name}' {reason}")]
    Tensor { name: String, reason: String },
    /// A metadata value is missing, mistyped, absurd or inconsistent with the tensors.
    #[error("invalid model metadata: {key} {reason}")]
    Metadata { key: String, reason: String },
}

/// `bail!(Variant, [name or key,] "format", args...)` returns a formatted error.
macro_rules! bail {
    (Invalid, $($fmt:tt)+) => {
        return Err(GgufError::Invalid { reason: format!($($fmt)+) })
    };
    (Tensor, $name:expr, $($fmt:tt)+) => {
        return Err(GgufError::Tensor { name: $name.to_string(), reason: format!($($fmt)+) })
    };
    (Metadata, $key:expr, $($fmt:tt)+) => {
        return Err(GgufError::Metadata { key: $key.to_string(), reason: format!($($fmt)+) })
    };
}

/// Validates the GGUF file at `path` without loading its tensor data.
///
/// # Errors
/// A [`GgufError`] describing the first problem found.
pub fn validate(path: &Path) -> Result<GgufSummary, GgufError> {
    let io_err = |source| GgufError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(io_err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")));
    }
    let summary = parse(file, meta.len(), path)?;
    tracing::debug!(path = %path.display(), ?summary, "GGUF file passed validation");
    Ok(summary)
}

/// SHA-256 of a file as lowercase hex, streamed through a 1 MiB buffer.
///
/// # Errors
/// Any I/O error from opening or reading the file.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// `(name, elements per block, bytes per block)` for a ggml type id.
/// Ids 4, 5, 31-33 and 36-38 were removed from ggml and are rejected.
fn ggml_type(id: u32) -> Option<(&'static str, u64, u64)> {
    Some(match id {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 18),
        3 => ("Q4_1", 32, 20),
        6 => ("Q5_0", 32, 22),
        7 => ("Q5_1", 32, 24),
        8 => ("Q8_0", 32, 34),
        9 => ("Q8_1", 32, 36),
        10 => ("Q2_K", 256, 84),
        11 => ("Q3_K", 256, 110),
        12 => ("Q4_K", 256, 144),
        13 => ("Q5_K", 256, 176),
        14 => ("Q6_K", 256, 210),
        15 => ("Q8_K", 256, 292),
        16 => ("IQ2_XXS", 256, 66),
        17 => ("IQ2_XS", 256, 74),
        18 => ("IQ3_XXS", 256, 98),
        19 => ("IQ1_S", 256, 50),
        20 => ("IQ4_NL", 32, 18),
        21 => ("IQ3_S", 256, 110),
        22 => ("IQ2_S", 256, 82),
        23 => ("IQ4_XS", 256, 136),
        24 => ("I8", 1, 1),
        25 => ("I16", 1, 2),
        26 => ("I32", 1, 4),
        27 => ("I64", 1, 8),
        28 => ("F64", 1, 8),
        29 => ("IQ1_M", 256, 56),
        30 => ("BF16", 1, 2),
        34 => ("TQ1_0", 256, 54),
        35 => ("TQ2_0", 256, 66),
        39 => ("MXFP4", 32, 17),
        40 => ("NVFP4", 64, 36),
        41 => ("Q1_0", 128, 18),
        42 => ("Q2_0", 64, 18),
        _ => return None,
    })
}

fn value_type_name(ty: u32) -> &'static str {
    const NAMES: [&str; 13] =
        ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"];
    NAMES.get(ty as usize).copied().unwrap_or("unknown type")
}

fn fixed_size(ty: u32) -> Option<u64> {
    match ty {
        T_U8 | T_I8 | T_BOOL => Some(1),
        T_U16 | T_I16 => Some(2),
        T_U32 | T_I32 | T_F32 => Some(4),
        T_U64 | T_I64 | T_F64 => Some(8),
        _ => None,
    }
}

fn is_int(ty: u32) -> bool {
    matches!(ty, T_U8 | T_I8 | T_U16 | T_I16 | T_U32 | T_I32 | T_U64 | T_I64)
}

/// A metadata value, reduced to what the consistency checks need.
enum Val {
    Int(i128),
    Other,
    /// `None` when the string is too long to keep or is not UTF-8.
    Str(Option<String>),
    /// Integer elements are kept for short arrays (per-layer hyper-parameters).
    Array {
        elem: u32,
        len: u64,
        ints: Option<Vec<i128>>,
    },
}

struct Kv {
    ty: u32,
    val: Val,
}

fn describe(kv: &Kv) -> String {
    match kv.val {
        Val::Array { elem, .. } => format!("an array of {}", value_type_name(elem)),
        _ => format!("a {}", value_type_name(kv.ty)),
    }
}

struct TensorInfo {
    name: String,
    dims: Vec<u64>,
    offset: u64,
    size: u64,
}

/// Describes the field being read, for error messages; only called on error.
type What<'a> = &'a dyn Fn() -> String;

/// Buffered reader that tracks its position and refuses to read past the end.
struct Reader<'p, R> {
    inner: BufReader<R>,
    pos: u64,
    len: u64,
    path: &'p Path,
}

impl<R: Read + Seek> Reader<'_, R> {
    fn need(&self, n: u64, what: What) -> Result<(), GgufError> {
        if n > self.len.saturating_sub(self.pos) {
            let (offset, needed, file_size) = (self.pos, n, self.len);
            return Err(GgufError::Truncated { what: what(), offset, needed, file_size });
        }
        Ok(())
    }

    fn io(&self, source: io::Error) -> GgufError {
        GgufError::Io { path: self.path.to_path_buf(), source }
    }

    fn array<const N: usize>(&mut self, what: What) -> Result<[u8; N], GgufError> {
        self.need(N as u64, what)?;
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf).map_err(|e| self.io(e))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: What) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: What) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Reads `n` bytes; callers cap `n` far below memory limits.
    fn bytes(&mut self, n: u64, what: What) -> Result<Vec<u8>, GgufError> {
        self.need(n, what)?;
        let mut buf = vec![0u8; n as usize];
        self.inner.read_exact(&mut buf).map_err(|e| self.io(e))?;
        self.pos += n;
        Ok(buf)
    }

    fn skip(&mut self, n: u64, what: What) -> Result<(), GgufError> {
        self.need(n, what)?;
        let Ok(delta) = i64::try_from(n) else { bail!(Invalid, "{} is too large", what()) };
        self.inner.seek_relative(delta).map_err(|e| self.io(e))?;
        self.pos += n;
        Ok(())
    }

    /// Reads a string's length prefix and checks it against `max` and the file.
    fn str_len(&mut self, max: u64, what: What) -> Result<u64, GgufError> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        if len > max {
            bail!(Invalid, "{} claims to be {len} bytes long (limit {max})", what());
        }
        self.need(len, what)?;
        Ok(len)
    }

    /// Reads a UTF-8 string of at most `max` bytes.
    fn string(&mut self, max: u64, what: What) -> Result<String, GgufError> {
        let len = self.str_len(max, what)?;
        match String::from_utf8(self.bytes(len, what)?) {
            Ok(s) => Ok(s),
            Err(_) => bail!(Invalid, "{} is not valid UTF-8", what()),
        }
    }

    /// Reads a fixed-size scalar of GGUF type `ty`.
    fn fixed(&mut self, ty: u32, what: What) -> Result<Val, GgufError> {
        Ok(match ty {
            T_U8 => Val::Int(self.array::<1>(what)?[0].into()),
            T_I8 => Val::Int(i8::from_le_bytes(self.array(what)?).into()),
            T_U16 => Val::Int(u16::from_le_bytes(self.array(what)?).into()),
            T_I16 => Val::Int(i16::from_le_bytes(self.array(what)?).into()),
            T_U32 => Val::Int(u32::from_le_bytes(self.array(what)?).into()),
            T_I32 => Val::Int(i32::from_le_bytes(self.array(what)?).into()),
            T_U64 => Val::Int(u64::from_le_bytes(self.array(what)?).into()),
            T_I64 => Val::Int(i64::from_le_bytes(self.array(what)?).into()),
            T_F32 => self.array::<4>(what).map(|_| Val::Other)?,
            T_F64 => self.array::<8>(what).map(|_| Val::Other)?,
            T_BOOL => match self.array::<1>(what)?[0] {
                0 | 1 => Val::Other,
                b => bail!(Invalid, "{} is a bool with byte value {b} (must be 0 or 1)", what()),
            },
            other => bail!(Invalid, "{} has unknown value type {other}", what()),
        })
    }

    fn value(&mut self, ty: u32, key: &str) -> Result<Val, GgufError> {
        let what = || format!("value of metadata key '{key}'");
        match ty {
            T_STRING => {
                let len = self.str_len(MAX_STRING_LEN, &what)?;
                if len > KEEP_STRING_LEN {
                    self.skip(len, &what)?;
                    return Ok(Val::Str(None));
                }
                Ok(Val::Str(String::from_utf8(self.bytes(len, &what)?).ok()))
            }
            T_ARRAY => self.array_value(key),
            _ => self.fixed(ty, &what),
        }
    }

    fn array_value(&mut self, key: &str) -> Result<Val, GgufError> {
        let elem = self.u32(&|| format!("element type of array '{key}'"))?;
        let len = self.u64(&|| format!("length of array '{key}'"))?;
        let elem_min = match (elem, fixed_size(elem)) {
            (T_STRING, _) => 8,
            (T_ARRAY, _) => bail!(Invalid, "'{key}' is an array of arrays, which llama.cpp rejects"),
            (_, Some(size)) => size,
            (_, None) => bail!(Invalid, "array '{key}' has unknown element type {elem}"),
        };
        if len > MAX_ARRAY_LEN {
            bail!(Invalid, "array '{key}' claims {len} elements (limit {MAX_ARRAY_LEN})");
        }
        let min_bytes = len * elem_min;
        let elem_name = value_type_name(elem);
        self.need(min_bytes, &|| format!("array '{key}' ({len} elements of type {elem_name})"))?;
        let what = || format!("element of array '{key}'");
        let mut ints = None;
        if elem == T_STRING {
            for _ in 0..len {
                let n = self.str_len(MAX_STRING_LEN, &what)?;
                self.skip(n, &what)?;
            }
        } else if is_int(elem) && len <= MAX_BLOCK_COUNT {
            let mut values = Vec::with_capacity(len as usize);
            for _ in 0..len {
                if let Val::Int(v) = self.fixed(elem, &what)? {
                    values.push(v);
                }
            }
            ints = Some(values);
        } else {
            self.skip(min_bytes, &what)?;
        }
        Ok(Val::Array { elem, len, ints })
    }
}

/// Parses and checks everything up to the tensor data; `len` is the file size.
fn parse<R: Read + Seek>(inner: R, len: u64, path: &Path) -> Result<GgufSummary, GgufError> {
    let inner = BufReader::with_capacity(64 * 1024, inner);
    let mut r = Reader { inner, pos: 0, len, path };
    let (version, tensor_count, kv_count) = read_header(&mut r)?;
    let kvs = read_metadata(&mut r, kv_count)?;
    let alignment = match kvs.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Kv { ty: T_U32, val: Val::Int(a) }) => match u64::try_from(*a) {
            Ok(a) if a.is_power_of_two() => a,
            _ => bail!(Metadata, "general.alignment", "is {a}, which is not a power of two"),
        },
        Some(kv) => bail!(Metadata, "general.alignment", "must be a u32 but is {}", describe(kv)),
    };
    let tensors = read_tensor_infos(&mut r, tensor_count)?;
    let Some(data_offset) = r.pos.checked_next_multiple_of(alignment) else {
        bail!(Invalid, "the data section offset overflows");
    };
    check_layout(&tensors, data_offset, alignment, len)?;
    let checked = check_metadata(&kvs, &tensors)?;
    Ok(GgufSummary {
        version,
        architecture: checked.architecture,
        name: match kvs.get("general.name") {
            Some(Kv { val: Val::Str(Some(s)), .. }) => Some(s.clone()),
            _ => None,
        },
        tensor_count,
        kv_count,
        block_count: checked.block_count,
        context_length: checked.context_length,
        file_size: len,
        has_chat_template: kvs.get("tokenizer.chat_template").is_some_and(|kv| kv.ty == T_STRING),
        data_offset,
    })
}

/// Returns `(version, tensor_count, kv_count)`.
fn read_header<R: Read + Seek>(r: &mut Reader<R>) -> Result<(u32, u64, u64), GgufError> {
    let magic = r.bytes(r.len.min(4), &|| "magic".to_string())?;
    if magic != b"GGUF" {
        return Err(GgufError::NotGguf { found: magic.escape_ascii().to_string() });
    }
    let version = r.u32(&|| "GGUF version".to_string())?;
    if matches!(version.swap_bytes(), 2 | 3) {
        bail!(
            Invalid,
            "it is a big-endian GGUF (version {}), which cannot be loaded here",
            version.swap_bytes()
        );
    }
    if !matches!(version, 2 | 3) {
        return Err(GgufError::UnsupportedVersion { version });
    }
    let tensor_count = r.u64(&|| "tensor count".to_string())?;
    let kv_count = r.u64(&|| "metadata entry count".to_string())?;
    for (count, what) in [(tensor_count, "tensors"), (kv_count, "metadata entries")] {
        if count > MAX_ENTRIES {
            bail!(Invalid, "the header claims {count} {what} (limit {MAX_ENTRIES})");
        }
    }
    let min_size = kv_count * MIN_KV_BYTES + tensor_count * MIN_TENSOR_INFO_BYTES;
    r.need(min_size, &|| format!("{kv_count} metadata entries and {tensor_count} tensor infos"))?;
    Ok((version, tensor_count, kv_count))
}

fn read_metadata<R: Read + Seek>(r: &mut Reader<R>, kv_count: u64) -> Result<HashMap<String, Kv>, GgufError> {
    let mut kvs = HashMap::new();
    for i in 0..kv_count {
        let key = r.string(MAX_KEY_LEN, &|| format!("key of metadata entry {i}"))?;
        if key.is_empty() {
            bail!(Invalid, "metadata entry {i} has an empty key");
        }
        if kvs.contains_key(&key) {
            bail!(Invalid, "metadata key '{key}' appears more than once");
        }
        let ty = r.u32(&|| format!("value type of metadata key '{key}'"))?;
        let val = r.value(ty, &key)?;
        kvs.insert(key, Kv { ty, val });
    }
    Ok(kvs)
}

fn read_tensor_infos<R: Read + Seek>(r: &mut Reader<R>, count: u64) -> Result<Vec<TensorInfo>, GgufError> {
    let mut tensors = Vec::with_capacity(count.min(4096) as usize);
    let mut names = HashSet::new();
    for i in 0..count {
        let name = r.string(MAX_KEY_LEN, &|| format!("name of tensor {i}"))?;
        if name.is_empty() {
            bail!(Invalid, "tensor {i} has an empty name");
        }
        if name.len() as u64 > MAX_TENSOR_NAME_LEN {
            let n = name.len();
            bail!(Tensor, name, "has a {n}-byte name (llama.cpp allows {MAX_TENSOR_NAME_LEN})");
        }
        if !names.insert(name.clone()) {
            bail!(Tensor, name, "appears more than once in the tensor list");
        }
        let what = || format!("shape of tensor '{name}'");
        let n_dims = r.u32(&what)?;
        if !(1..=MAX_DIMS).contains(&n_dims) {
            bail!(Tensor, name, "has {n_dims} dimensions (must be 1 to {MAX_DIMS})");
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            match r.u64(&what)? {
                0 => bail!(Tensor, name, "has size 0 in dimension {d}"),
                n => dims.push(n),
            }
        }
        let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let Some(elements) = elements.filter(|&e| i64::try_from(e).is_ok()) else {
            bail!(Tensor, name, "has shape {dims:?}, too many elements");
        };
        let ty = r.u32(&|| format!("type of tensor '{name}'"))?;
        let Some((type_name, block, block_bytes)) = ggml_type(ty) else {
            bail!(Tensor, name, "has unknown or unsupported ggml type id {ty}");
        };
        if dims[0] % block != 0 {
            let row = dims[0];
            bail!(
                Tensor,
                name,
                "has {row} elements per row, not a multiple of the {type_name} block size {block}"
            );
        }
        let Some(size) = (elements / block).checked_mul(block_bytes) else {
            bail!(Tensor, name, "has shape {dims:?}, too large for type {type_name}");
        };
        let offset = r.u64(&|| format!("data offset of tensor '{name}'"))?;
        tensors.push(TensorInfo { name, dims, offset, size });
    }
    Ok(tensors)
}

/// Every tensor must be aligned, inside the file, and not overlap another.
fn check_layout(
    tensors: &[TensorInfo],
    data_offset: u64,
    alignment: u64,
    file_size: u64,
) -> Result<(), GgufError> {
    for t in tensors {
        let (offset, size) = (t.offset, t.size);
        if offset % alignment != 0 {
            bail!(Tensor, t.name, "has data offset {offset}, not a multiple of the alignment {alignment}");
        }
        let start = data_offset.saturating_add(offset);
        if start > file_size || size > file_size - start {
            bail!(
                Tensor,
                t.name,
                "extends past end of file (needs {size} bytes at offset {start}, file is {file_size} bytes)"
            );
        }
    }
    let mut order: Vec<&TensorInfo> = tensors.iter().collect();
    order.sort_by_key(|t| t.offset);
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.offset + a.size > b.offset {
            let (a_end, b_end) = (a.offset + a.size, b.offset + b.size);
            bail!(
                Tensor,
                b.name,
                "overlaps tensor '{}' (data {}..{b_end} and {}..{a_end})",
                a.name,
                b.offset,
                a.offset
            );
        }
    }
    Ok(())
}

struct Checked {
    architecture: String,
    block_count: Option<u64>,
    context_length: Option<u64>,
}

/// A hyper-parameter given either once or per layer.
struct PerLayer {
    values: Vec<u64>,
    is_array: bool,
}

impl PerLayer {
    fn get(&self, layer: usize) -> u64 {
        self.values[if self.is_array { layer } else { 0 }]
    }
}

/// `N` for tensor names of the form `blk.N.*`.
fn block_index(name: &str) -> Option<u64> {
    let (n, _) = name.strip_prefix("blk.")?.split_once('.')?;
    let digits = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| n.parse().unwrap_or(u64::MAX))
}

type Kvs = HashMap<String, Kv>;

fn scalar(kvs: &Kvs, key: &str, min: u64, max: u64) -> Result<Option<u64>, GgufError> {
    match kvs.get(key) {
        None => Ok(None),
        Some(Kv { val: Val::Int(v), .. }) => match u64::try_from(*v) {
            Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => bail!(Metadata, key, "is {v}, outside the sane range {min}..={max}"),
        },
        Some(kv) => bail!(Metadata, key, "must be an integer but is {}", describe(kv)),
    }
}

/// A scalar or per-layer array of integers in `0..=max`; arrays must have one
/// value per block.
fn per_layer(kvs: &Kvs, key: &str, max: u64, blocks: Option<u64>) -> Result<Option<PerLayer>, GgufError> {
    let Some(kv @ Kv { val: Val::Array { elem, len, ints }, .. }) = kvs.get(key) else {
        let value = scalar(kvs, key, 0, max)?;
        return Ok(value.map(|v| PerLayer { values: vec![v], is_array: false }));
    };
    let Some(ints) = ints.as_ref().filter(|_| is_int(*elem) && *len > 0) else {
        let kind = describe(kv);
        bail!(Metadata, key, "must be 1 to {MAX_BLOCK_COUNT} integers but is {kind} of {len}");
    };
    if let Some(b) = blocks.filter(|&b| b != *len) {
        bail!(Metadata, key, "has {len} per-layer values but the block count is {b}");
    }
    let mut values = Vec::with_capacity(ints.len());
    for (layer, &v) in ints.iter().enumerate() {
        match u64::try_from(v) {
            Ok(v) if v <= max => values.push(v),
            _ => bail!(Metadata, key, "is {v} for layer {layer}, outside the sane range 0..={max}"),
        }
    }
    Ok(Some(PerLayer { values, is_array: true }))
}

/// Length of a tokenizer array, checking its element type.
fn tokenizer_array(kvs: &Kvs, key: &str, elems: &[u32]) -> Result<Option<u64>, GgufError> {
    match kvs.get(key) {
        None => Ok(None),
        Some(Kv { val: Val::Array { elem, len, .. }, .. }) if elems.contains(elem) => Ok(Some(*len)),
        Some(kv) => {
            let expected = value_type_name(elems[0]);
            bail!(Metadata, key, "must be an array of {expected} but is {}", describe(kv))
        }
    }
}

fn check_metadata(kvs: &Kvs, tensors: &[TensorInfo]) -> Result<Checked, GgufError> {
    const ARCH: &str = "general.architecture";
    let arch = match kvs.get(ARCH) {
        None => bail!(Metadata, ARCH, "is missing"),
        Some(Kv { val: Val::Str(Some(s)), .. }) => s.clone(),
        Some(Kv { ty: T_STRING, .. }) => bail!(Metadata, ARCH, "is not a short UTF-8 string"),
        Some(kv) => bail!(Metadata, ARCH, "must be a string but is {}", describe(kv)),
    };
    if arch.is_empty() || arch.len() > 64 || !arch.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(Metadata, ARCH, "is {arch:?}, which is not a valid architecture name");
    }

    let key = format!("{arch}.block_count");
    let block_count = match kvs.get(&key) {
        None => None,
        Some(Kv { ty: T_U32 | T_U64, .. }) => scalar(kvs, &key, 1, MAX_BLOCK_COUNT)?,
        Some(kv) => bail!(Metadata, key, "must be a u32 or u64 but is {}", describe(kv)),
    };
    let max_block = tensors.iter().filter_map(|t| block_index(&t.name)).max();
    if let (Some(count), Some(max)) = (block_count, max_block) {
        let present = max.saturating_add(1);
        if present != count {
            bail!(Metadata, key, "is {count} but the file has tensors for {present} blocks");
        }
    }

    let context_length = scalar(kvs, &format!("{arch}.context_length"), 1, 1 << 24)?;
    let embd_key = format!("{arch}.embedding_length");
    let embedding_length = scalar(kvs, &embd_key, 1, 1 << 20)?;
    // Zero is legitimate for these: recurrent models (Mamba, RWKV) write 0
    // heads and feed-forward size, hybrid models 0 KV heads for SSM layers.
    per_layer(kvs, &format!("{arch}.feed_forward_length"), 1 << 20, block_count)?;
    let head_key = format!("{arch}.attention.head_count");
    let kv_key = format!("{arch}.attention.head_count_kv");
    let heads = per_layer(kvs, &head_key, 1 << 16, block_count)?;
    let kv_heads = per_layer(kvs, &kv_key, 1 << 16, block_count)?;
    if let (Some(h), Some(k)) = (&heads, &kv_heads) {
        let layers = match (h.is_array, k.is_array) {
            (false, false) => 1,
            (true, false) => h.values.len(),
            (false, true) => k.values.len(),
            (true, true) => h.values.len().min(k.values.len()),
        };
        for layer in 0..layers {
            let (hv, kv) = (h.get(layer), k.get(layer));
            let at = if h.is_array || k.is_array { format!(" for layer {layer}") } else { String::new() };
            if hv > 0 && kv == 0 && !h.is_array && !k.is_array {
                bail!(Metadata, kv_key, "is 0 but {head_key} is {hv}");
            }
            if hv > 0 && kv > 0 && hv % kv != 0 {
                bail!(Metadata, kv_key, "is {kv}{at}, which does not divide {head_key} ({hv})");
            }
        }
    }
    let token_embd = tensors.iter().find(|t| t.name == "token_embd.weight");
    if let (Some(e), Some(t)) = (embedding_length, token_embd) {
        if t.dims[0] != e {
            let dims = &t.dims;
            bail!(Metadata, embd_key, "is {e} but tensor 'token_embd.weight' has shape {dims:?}");
        }
    }

    let tokens = tokenizer_array(kvs, "tokenizer.ggml.tokens", &[T_STRING])?;
    let scores = tokenizer_array(kvs, "tokenizer.ggml.scores", &[T_F32])?;
    let types = tokenizer_array(kvs, "tokenizer.ggml.token_type", &[T_I32, T_U32])?;
    let arrays = [
        ("tokenizer.ggml.tokens", tokens),
        ("tokenizer.ggml.scores", scores),
        ("tokenizer.ggml.token_type", types),
    ];
    let mut present = arrays.iter().filter_map(|&(k, n)| Some((k, n?)));
    if let Some((first, n)) = present.next() {
        if let Some((other, m)) = present.find(|&(_, m)| m != n) {
            bail!(Metadata, other, "has {m} entries but {first} has {n}");
        }
    }
    if tokens.is_some_and(|n| n > i32::MAX as u64) {
        bail!(Metadata, "tokenizer.ggml.tokens", "has more tokens than llama.cpp can index");
    }
    for key in SPECIAL_TOKEN_KEYS {
        match (kvs.get(key), tokens) {
            (None, _) => {}
            (Some(Kv { val: Val::Int(id), .. }), Some(n)) if *id >= i128::from(n) => {
                bail!(Metadata, key, "is {id} but the vocabulary has only {n} tokens")
            }
            (Some(Kv { val: Val::Int(id), .. }), _) if *id < 0 => bail!(Metadata, key, "is negative ({id})"),
            (Some(Kv { val: Val::Int(_), .. }), _) => {}
            (Some(kv), _) => bail!(Metadata, key, "must be an integer but is {}", describe(kv)),
        }
    }

    Ok(Checked { architecture: arch, block_count, context_length })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, RngCore, SeedableRng};
    use std::io::Cursor;

    fn check(bytes: &[u8]) -> Result<GgufSummary, GgufError> {
        parse(Cursor::new(bytes), bytes.len() as u64, Path::new("<memory>"))
    }

    fn put_str(buf: &mut Vec<u8>, s: &str) {
        buf.extend((s.len() as u64).to_le_bytes());
        buf.extend(s.as_bytes());
    }

    fn le<T: Copy, const N: usize>(v: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|&x| f(x)).collect()
    }

    /// Builds small GGUF files. Tensors without an explicit offset are laid
    /// out back to back and get data; explicit offsets are for hostile cases.
    struct Builder {
        version: u32,
        kv_count: Option<u64>,
        alignment: u64,
        kvs: Vec<(String, u32, Vec<u8>)>,
        tensors: Vec<(String, Vec<u64>, u32, Option<u64>)>,
    }

    impl Builder {
        /// Adds a KV, replacing an existing one with the same key.
        fn kv(mut self, key: &str, ty: u32, payload: &[u8]) -> Self {
            self.kvs.retain(|(k, _, _)| k != key);
            self.kvs.push((key.to_string(), ty, payload.to_vec()));
            self
        }
        fn u32(self, key: &str, v: u32) -> Self {
            self.kv(key, T_U32, &v.to_le_bytes())
        }
        fn str(self, key: &str, v: &str) -> Self {
            let mut payload = Vec::new();
            put_str(&mut payload, v);
            self.kv(key, T_STRING, &payload)
        }
        fn arr(self, key: &str, elem: u32, n: usize, body: &[u8]) -> Self {
            let mut payload = elem.to_le_bytes().to_vec();
            payload.extend((n as u64).to_le_bytes());
            payload.extend(body);
            self.kv(key, T_ARRAY, &payload)
        }
        fn strs(self, key: &str, v: &[&str]) -> Self {
            let mut body = Vec::new();
            v.iter().for_each(|s| put_str(&mut body, s));
            self.arr(key, T_STRING, v.len(), &body)
        }
        fn tensor(mut self, name: &str, dims: &[u64], ty: u32, offset: Option<u64>) -> Self {
            self.tensors.push((name.to_string(), dims.to_vec(), ty, offset));
            self
        }
        fn build(&self) -> Vec<u8> {
            let mut out = b"GGUF".to_vec();
            out.extend(self.version.to_le_bytes());
            out.extend((self.tensors.len() as u64).to_le_bytes());
            out.extend(self.kv_count.unwrap_or(self.kvs.len() as u64).to_le_bytes());
            for (key, ty, payload) in &self.kvs {
                put_str(&mut out, key);
                out.extend(ty.to_le_bytes());
                out.extend(payload);
            }
            let (mut next, mut data_end) = (0u64, 0u64);
            for (name, dims, ty, offset) in &self.tensors {
                let off = offset.unwrap_or_else(|| {
                    let (_, block, bytes) = ggml_type(*ty).unwrap_or(("", 1, 4));
                    let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).unwrap_or(0);
                    data_end = next + n / block * bytes;
                    std::mem::replace(&mut next, data_end.next_multiple_of(self.alignment))
                });
                put_str(&mut out, name);
                out.extend((dims.len() as u32).to_le_bytes());
                out.extend(le(dims, u64::to_le_bytes));
                out.extend(ty.to_le_bytes());
                out.extend(off.to_le_bytes());
            }
            out.resize((out.len() as u64).next_multiple_of(self.alignment) as usize, 0);
            out.extend((0..data_end).map(|i| (i % 251) as u8));
            out
        }
    }

    /// A small but complete llama-style model; the last tensor ends the file.
    fn model() -> Builder {
        let tensors = Vec::new();
        Builder { version: 3, kv_count: None, alignment: 32, kvs: Vec::new(), tensors }
            .str("general.architecture", "llama")
            .str("general.name", "Tiny test model")
            .u32("llama.block_count", 2)
            .u32("llama.context_length", 2048)
            .u32("llama.embedding_length", 8)
            .u32("llama.feed_forward_length", 16)
            .u32("llama.attention.head_count", 4)
            .u32("llama.attention.head_count_kv", 2)
            .kv("llama.rope.freq_base", T_F32, &10000f32.to_le_bytes())
            .kv("tokenizer.ggml.add_bos_token", T_BOOL, &[1])
            .strs("tokenizer.ggml.tokens", &["<unk>", "<s>", "</s>", "a", "b"])
            .arr("tokenizer.ggml.scores", T_F32, 5, &le(&[0f32; 5], f32::to_le_bytes))
            .arr("tokenizer.ggml.token_type", T_I32, 5, &le(&[2, 3, 3, 1, 1], i32::to_le_bytes))
            .u32("tokenizer.ggml.bos_token_id", 1)
            .u32("tokenizer.ggml.eos_token_id", 2)
            .str("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}")
            .tensor("token_embd.weight", &[8, 5], 0, None)
            .tensor("rope_freqs.weight", &[3], 0, None)
            .tensor("blk.0.attn_q.weight", &[8, 8], 0, None)
            .tensor("blk.1.attn_q.weight", &[8, 8], 0, None)
            .tensor("output_norm.weight", &[8], 0, None)
    }

    /// Bytes in the data section of `model()`: 160 + 12 (padded to 32) + 256 + 256 + 32.
    const MODEL_DATA: u64 = 736;

    /// Asserts that the file is rejected with a message containing `needle`.
    #[track_caller]
    fn rejects(b: Builder, needle: &str) {
        let msg = check(&b.build()).expect_err("file should have been rejected").to_string();
        assert!(msg.contains(needle), "expected {needle:?} in {msg:?}");
    }

    fn u32_arr(v: &[u32]) -> Vec<u8> {
        let mut payload = T_U32.to_le_bytes().to_vec();
        payload.extend((v.len() as u64).to_le_bytes());
        payload.extend(le(v, u32::to_le_bytes));
        payload
    }

    #[test]
    fn valid_file_passes_with_correct_summary() {
        let bytes = model().build();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &bytes).unwrap();
        let s = validate(file.path()).expect("valid file");
        assert_eq!((s.version, s.architecture.as_str()), (3, "llama"));
        assert_eq!(s.name.as_deref(), Some("Tiny test model"));
        assert_eq!((s.tensor_count, s.kv_count), (5, 16));
        assert_eq!((s.block_count, s.context_length), (Some(2), Some(2048)));
        assert_eq!(s.file_size, bytes.len() as u64);
        assert!(s.has_chat_template);
        assert_eq!(s.data_offset % 32, 0);
        assert_eq!(s.file_size - s.data_offset, MODEL_DATA);
        assert_eq!(check(&Builder { version: 2, ..model() }.build()).unwrap().version, 2);
        let missing = validate(Path::new("/nonexistent/model.gguf"));
        assert!(matches!(missing, Err(GgufError::Io { .. })));
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), b"abc").unwrap();
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(file.path()).unwrap(), expected);
    }

    #[test]
    fn rejects_bad_magic_and_versions() {
        let mut bytes = model().build();
        bytes[..4].copy_from_slice(b"GGML");
        assert!(matches!(check(&bytes), Err(GgufError::NotGguf { .. })));
        assert!(matches!(check(b"GG"), Err(GgufError::NotGguf { .. })));
        for version in [0, 1, 4, 99] {
            let result = check(&Builder { version, ..model() }.build());
            assert!(matches!(result, Err(GgufError::UnsupportedVersion { version: v }) if v == version));
        }
        rejects(Builder { version: 3u32.swap_bytes(), ..model() }, "big-endian");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = model().build();
        for cut in 0..bytes.len() {
            assert!(check(&bytes[..cut]).is_err(), "file cut to {cut} bytes was accepted");
        }
        let msg = check(&bytes[..bytes.len() - 1]).unwrap_err().to_string();
        let expected = format!(
            "tensor 'output_norm.weight' extends past end of file (needs 32 bytes at offset {}, \
             file is {} bytes)",
            bytes.len() - 32,
            bytes.len() - 1
        );
        assert_eq!(msg, expected);
    }

    #[test]
    fn random_and_mutated_files_never_panic() {
        let mut rng = StdRng::seed_from_u64(0x6775_6766);
        let valid = model().build();
        for i in 0..20_000 {
            let bytes = if i % 2 == 0 {
                let mut b = vec![0u8; rng.gen_range(0..1024)];
                rng.fill_bytes(&mut b);
                if i % 4 == 0 && b.len() >= 8 {
                    b[..8].copy_from_slice(b"GGUF\x03\0\0\0");
                }
                b
            } else {
                let mut b = valid.clone();
                for _ in 0..rng.gen_range(1..6) {
                    let at = rng.gen_range(0..b.len());
                    b[at] = rng.gen();
                }
                b
            };
            let _ = check(&bytes);
        }
    }

    #[test]
    fn block_count_must_match_tensors() {
        let msg = check(&model().u32("llama.block_count", 1000).build()).unwrap_err();
        assert_eq!(
            msg.to_string(),
            "invalid model metadata: llama.block_count is 1000 but the file has tensors for 2 blocks"
        );
        rejects(model().u32("llama.block_count", 5000), "outside the sane range");
        rejects(model().u32("llama.block_count", 0), "outside the sane range");
        let signed = model().kv("llama.block_count", T_I32, &2i32.to_le_bytes());
        rejects(signed, "must be a u32 or u64 but is a i32");
    }

    #[test]
    fn huge_counts_and_lengths_are_rejected_cheaply() {
        let mut b = model();
        b.kv_count = Some(u64::MAX);
        assert!(matches!(check(&b.build()), Err(GgufError::Invalid { .. })));
        b.kv_count = Some(MAX_ENTRIES);
        assert!(matches!(check(&b.build()), Err(GgufError::Truncated { .. })));
        // A key whose length prefix is u64::MAX.
        let mut raw = b"GGUF\x03\0\0\0".to_vec();
        raw.extend(le(&[0u64, 1, u64::MAX, 0, 0, 0], u64::to_le_bytes));
        assert!(matches!(check(&raw), Err(GgufError::Invalid { .. })));
        // String values claiming more than the cap, and more than the file.
        rejects(model().kv("general.name", T_STRING, &(1u64 << 40).to_le_bytes()), "limit");
        let long = model().kv("general.name", T_STRING, &(1u64 << 20).to_le_bytes());
        assert!(matches!(check(&long.build()), Err(GgufError::Truncated { .. })));
        let mut array = T_U64.to_le_bytes().to_vec();
        array.extend((1u64 << 29).to_le_bytes());
        let array = model().kv("x.arr", T_ARRAY, &array);
        assert!(matches!(check(&array.build()), Err(GgufError::Truncated { .. })));
    }

    #[test]
    fn tensor_layout_errors() {
        rejects(model().tensor("x.weight", &[8], 0, Some(1 << 20)), "extends past end of file");
        rejects(model().tensor("x.weight", &[8], 0, Some(0)), "overlaps tensor 'token_embd");
        rejects(model().tensor("x.weight", &[4], 0, Some(1040)), "not a multiple of the alignment");
        for ty in [4, 31, 43, 1000] {
            rejects(model().tensor("x.weight", &[8], ty, None), "unsupported ggml type");
        }
        rejects(model().tensor("blk.0.attn_q.weight", &[8], 0, None), "appears more than once");
        rejects(model().tensor("x.weight", &[8, 0], 0, None), "size 0 in dimension 1");
        rejects(model().tensor("x.weight", &[1; 5], 0, None), "5 dimensions");
        rejects(model().tensor("x.weight", &[1 << 40, 1 << 40], 0, None), "too many elements");
        rejects(model().tensor(&"n".repeat(64), &[8], 0, None), "64-byte name");
        // Quantized sizes come from the type table: Q4_0 is 18 bytes per 32 elements.
        let s = check(&model().tensor("q.weight", &[64, 2], 2, None).build()).unwrap();
        assert_eq!(s.file_size - s.data_offset, MODEL_DATA + 72);
        rejects(model().tensor("q.weight", &[33], 2, None), "not a multiple of the Q4_0 block size 32");
    }

    #[test]
    fn structural_metadata_errors() {
        let mut dup = model();
        dup.kvs.push(("llama.context_length".into(), T_U32, 1u32.to_le_bytes().to_vec()));
        rejects(dup, "'llama.context_length' appears more than once");
        rejects(model().u32("general.alignment", 48), "not a power of two");
        rejects(model().kv("general.alignment", T_U64, &64u64.to_le_bytes()), "must be a u32");
        let aligned = Builder { alignment: 64, ..model().u32("general.alignment", 64) };
        assert_eq!(check(&aligned.build()).unwrap().data_offset % 64, 0);
        let nested = le(&[T_ARRAY, 0, 0], u32::to_le_bytes);
        rejects(model().kv("x.nested", T_ARRAY, &nested), "array of arrays");
        rejects(model().kv("x.flag", T_BOOL, &[2]), "must be 0 or 1");
        rejects(model().kv("x.bad", 13, &[0; 8]), "unknown value type 13");
    }

    #[test]
    fn model_metadata_consistency() {
        let mut no_arch = model();
        no_arch.kvs.retain(|(k, _, _)| k != "general.architecture");
        rejects(no_arch, "general.architecture is missing");
        rejects(model().u32("general.architecture", 7), "must be a string but is a u32");
        rejects(model().u32("llama.context_length", 0), "llama.context_length is 0");
        rejects(model().u32("llama.attention.head_count", 1 << 20), "outside the sane range");
        rejects(
            model().u32("llama.attention.head_count_kv", 3),
            "head_count_kv is 3, which does not divide llama.attention.head_count (4)",
        );
        rejects(model().u32("llama.attention.head_count_kv", 0), "is 0 but");
        // Per-layer arrays: zero KV heads for a layer is fine, a wrong length is not.
        let kv_key = "llama.attention.head_count_kv";
        assert!(check(&model().kv(kv_key, T_ARRAY, &u32_arr(&[2, 0])).build()).is_ok());
        rejects(model().kv(kv_key, T_ARRAY, &u32_arr(&[2, 2, 2])), "3 per-layer values");
        rejects(model().kv(kv_key, T_ARRAY, &u32_arr(&[2, 3])), "is 3 for layer 1");
        rejects(model().u32("llama.embedding_length", 16), "tensor 'token_embd.weight'");
        rejects(
            model().arr("tokenizer.ggml.scores", T_F32, 4, &[0; 16]),
            "tokenizer.ggml.scores has 4 entries but tokenizer.ggml.tokens has 5",
        );
        rejects(model().kv("tokenizer.ggml.scores", T_ARRAY, &u32_arr(&[0; 5])), "array of f32");
        rejects(
            model().u32("tokenizer.ggml.bos_token_id", 5),
            "bos_token_id is 5 but the vocabulary has only 5 tokens",
        );
        rejects(model().str("tokenizer.ggml.eos_token_id", "2"), "must be an integer");
    }
}
