//! The bounded binary [`Reader`] and the parsing of the header, metadata and
//! tensor-info sections into [`Kv`] values and [`TensorInfo`]s.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use super::checks::{ggml_type, MAX_BLOCK_COUNT};
use super::{is_int, value_type_name, GgufError, Kv, TensorInfo, Val};
use super::{T_ARRAY, T_BOOL, T_F32, T_F64, T_I16, T_I32, T_I64, T_I8, T_STRING, T_U16, T_U32, T_U64, T_U8};

const MAX_KEY_LEN: u64 = 64 * 1024;
const MAX_STRING_LEN: u64 = 16 * 1024 * 1024;
/// Cap on both the metadata entry count and the tensor count.
pub(super) const MAX_ENTRIES: u64 = 1 << 20;
const MAX_ARRAY_LEN: u64 = 1 << 30;
/// ggml's `GGML_MAX_NAME` is 64 bytes including the terminating NUL.
const MAX_TENSOR_NAME_LEN: u64 = 63;
const MAX_DIMS: u32 = 4;
/// Strings up to this length are kept for the metadata checks; longer ones are skipped.
const KEEP_STRING_LEN: u64 = 4096;
/// The chat template is kept whole up to this length (for the Ollama API's `/api/show`).
const KEEP_TEMPLATE_LEN: u64 = 1 << 20;
/// Smallest possible encodings: a one-byte key with a one-byte value, and a
/// one-byte tensor name with one dimension.
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 8 + 4 + 8;

fn fixed_size(ty: u32) -> Option<u64> {
    match ty {
        T_U8 | T_I8 | T_BOOL => Some(1),
        T_U16 | T_I16 => Some(2),
        T_U32 | T_I32 | T_F32 => Some(4),
        T_U64 | T_I64 | T_F64 => Some(8),
        _ => None,
    }
}

/// Describes the field being read, for error messages; only called on error.
type What<'a> = &'a dyn Fn() -> String;

/// Buffered reader that tracks its position and refuses to read past the end.
pub(super) struct Reader<'p, R> {
    inner: BufReader<R>,
    pos: u64,
    len: u64,
    path: &'p Path,
}

impl<'p, R: Read + Seek> Reader<'p, R> {
    /// Wraps `inner`, a source of `len` bytes, in a 64 KiB buffer.
    pub(super) fn new(inner: R, len: u64, path: &'p Path) -> Self {
        Reader { inner: BufReader::with_capacity(64 * 1024, inner), pos: 0, len, path }
    }

    /// Bytes read or skipped so far.
    pub(super) fn pos(&self) -> u64 {
        self.pos
    }

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
                let keep = if key == "tokenizer.chat_template" { KEEP_TEMPLATE_LEN } else { KEEP_STRING_LEN };
                if len > keep {
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

/// Returns `(version, tensor_count, kv_count)`.
pub(super) fn read_header<R: Read + Seek>(r: &mut Reader<R>) -> Result<(u32, u64, u64), GgufError> {
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

pub(super) fn read_metadata<R: Read + Seek>(
    r: &mut Reader<R>,
    kv_count: u64,
) -> Result<HashMap<String, Kv>, GgufError> {
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

pub(super) fn read_tensor_infos<R: Read + Seek>(
    r: &mut Reader<R>,
    count: u64,
) -> Result<Vec<TensorInfo>, GgufError> {
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
