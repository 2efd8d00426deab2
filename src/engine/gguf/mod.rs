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

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use checks::{check_layout, check_metadata};
use reader::{read_header, read_metadata, read_tensor_infos, Reader};

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

// Declared after `bail!` so that the submodules can use it.
mod checks;
mod reader;
#[cfg(test)]
pub(crate) mod tests;

/// Alignment of the tensor data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

// GGUF metadata value types (shared with the writer in `crate::import`).
pub(crate) const T_U8: u32 = 0;
pub(crate) const T_I8: u32 = 1;
pub(crate) const T_U16: u32 = 2;
pub(crate) const T_I16: u32 = 3;
pub(crate) const T_U32: u32 = 4;
pub(crate) const T_I32: u32 = 5;
pub(crate) const T_F32: u32 = 6;
pub(crate) const T_BOOL: u32 = 7;
pub(crate) const T_STRING: u32 = 8;
pub(crate) const T_ARRAY: u32 = 9;
pub(crate) const T_U64: u32 = 10;
pub(crate) const T_I64: u32 = 11;
pub(crate) const T_F64: u32 = 12;

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
    /// The chat template's Jinja source (kept up to 1 MiB).
    #[serde(skip)]
    pub chat_template: Option<String>,
    /// `general.file_type`: llama.cpp's `llama_ftype`, the weights' quantization.
    pub file_type: Option<u32>,
    /// Weights in all tensors.
    pub parameters: u64,
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

/// Parses and checks everything up to the tensor data; `len` is the file size.
fn parse<R: Read + Seek>(inner: R, len: u64, path: &Path) -> Result<GgufSummary, GgufError> {
    let mut r = Reader::new(inner, len, path);
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
    let Some(data_offset) = r.pos().checked_next_multiple_of(alignment) else {
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
        chat_template: match kvs.get("tokenizer.chat_template") {
            Some(Kv { val: Val::Str(Some(s)), .. }) => Some(s.clone()),
            _ => None,
        },
        file_type: match kvs.get("general.file_type") {
            Some(Kv { val: Val::Int(t), .. }) => u32::try_from(*t).ok(),
            _ => None,
        },
        parameters: tensors.iter().map(|t| t.dims.iter().product::<u64>()).sum(),
        data_offset,
    })
}

// The parsed form of the file, produced by `reader` and inspected by `checks`.

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

/// The name of a `general.file_type` (llama.cpp's `llama_ftype`), as Ollama reports a
/// model's `quantization_level`.
pub fn file_type_name(file_type: u32) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4",
        _ => return None,
    })
}

fn value_type_name(ty: u32) -> &'static str {
    const NAMES: [&str; 13] =
        ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"];
    NAMES.get(ty as usize).copied().unwrap_or("unknown type")
}

fn is_int(ty: u32) -> bool {
    matches!(ty, T_U8 | T_I8 | T_U16 | T_I16 | T_U32 | T_I32 | T_U64 | T_I64)
}
