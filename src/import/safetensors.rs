//! A bounds-checked reader for safetensors files: an 8-byte little-endian header
//! length, a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, ...}`
//! (plus an optional `__metadata__`), then the raw data. Every entry is checked
//! against the file size before anything is read; tensors are read one at a time.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::gguf_writer::f16_to_f32;
use super::ImportError;

/// The spec's cap on the JSON header.
const MAX_HEADER: u64 = 100 * 1024 * 1024;

/// Element types named by the safetensors format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F64,
    F32,
    F16,
    BF16,
    /// Integer, boolean and 8-bit float types: they can be skipped but not converted.
    Other(&'static str, u64),
}

impl Dtype {
    fn parse(s: &str) -> Option<Dtype> {
        Some(match s {
            "F64" => Dtype::F64,
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "I64" => Dtype::Other("I64", 8),
            "U64" => Dtype::Other("U64", 8),
            "I32" => Dtype::Other("I32", 4),
            "U32" => Dtype::Other("U32", 4),
            "I16" => Dtype::Other("I16", 2),
            "U16" => Dtype::Other("U16", 2),
            "I8" => Dtype::Other("I8", 1),
            "U8" => Dtype::Other("U8", 1),
            "BOOL" => Dtype::Other("BOOL", 1),
            "F8_E5M2" => Dtype::Other("F8_E5M2", 1),
            "F8_E4M3" => Dtype::Other("F8_E4M3", 1),
            _ => return None,
        })
    }

    fn size(self) -> u64 {
        match self {
            Dtype::F64 => 8,
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::Other(_, size) => size,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F64 => "F64",
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::Other(name, _) => name,
        }
    }
}

/// One tensor's header entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub dtype: Dtype,
    /// Row-major shape, as in PyTorch.
    pub shape: Vec<u64>,
    begin: u64,
    end: u64,
}

/// An open safetensors file with a checked header.
#[derive(Debug)]
pub struct SafeTensors {
    path: PathBuf,
    file: File,
    data_start: u64,
    entries: BTreeMap<String, Entry>,
}

impl SafeTensors {
    /// Opens `path` and checks its header against the file size.
    pub fn open(path: &Path) -> Result<SafeTensors, ImportError> {
        let io = |source| ImportError::Io { path: path.to_path_buf(), source };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let bad = |reason: String| ImportError::Safetensors { path: path.to_path_buf(), reason };
        if len < 8 {
            return Err(bad(format!("the file is only {len} bytes, too short for a header")));
        }
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(io)?;
        let header_len = u64::from_le_bytes(n);
        if header_len > MAX_HEADER || header_len > len - 8 {
            return Err(bad(format!(
                "the header claims {header_len} bytes but the file has {} after the length field \
                 (truncated or not a safetensors file)",
                len - 8
            )));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(io)?;
        let entries = parse_header(&header, len - 8 - header_len).map_err(bad)?;
        Ok(SafeTensors { path: path.to_path_buf(), file, data_start: 8 + header_len, entries })
    }

    /// Tensor names and entries, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Reads one tensor and converts it to f32 (from F32, F16, BF16 or F64).
    pub fn read_f32(&mut self, name: &str) -> Result<Vec<f32>, ImportError> {
        let Some(entry) = self.entries.get(name).cloned() else {
            return Err(ImportError::Tensor { name: name.into(), reason: "is not in the file".into() });
        };
        if let Dtype::Other(dtype, _) = entry.dtype {
            let reason = format!("has dtype {dtype}; only F32, F16, BF16 and F64 weights can be converted");
            return Err(ImportError::Tensor { name: name.into(), reason });
        }
        let io = |source| ImportError::Io { path: self.path.clone(), source };
        let mut raw = vec![0u8; (entry.end - entry.begin) as usize];
        self.file.seek(SeekFrom::Start(self.data_start + entry.begin)).map_err(io)?;
        self.file.read_exact(&mut raw).map_err(io)?;
        Ok(match entry.dtype {
            Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => raw.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
            Dtype::F64 => {
                raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
            }
            Dtype::Other(..) => unreachable!("refused above"),
        })
    }
}

/// Parses and checks the JSON header; `data_len` is the size of the data section.
fn parse_header(header: &[u8], data_len: u64) -> Result<BTreeMap<String, Entry>, String> {
    let json: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| format!("the header is not valid JSON: {e}"))?;
    let serde_json::Value::Object(map) = json else {
        return Err("the header is not a JSON object".into());
    };
    let mut entries = BTreeMap::new();
    for (name, info) in map {
        if name == "__metadata__" {
            continue;
        }
        let entry = parse_entry(&info, data_len).map_err(|reason| format!("tensor '{name}' {reason}"))?;
        entries.insert(name, entry);
    }
    let mut spans: Vec<(u64, u64)> =
        entries.values().map(|e| (e.begin, e.end)).filter(|s| s.0 < s.1).collect();
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[0].1 > w[1].0) {
        return Err("two tensors' data overlap".into());
    }
    Ok(entries)
}

fn parse_entry(info: &serde_json::Value, data_len: u64) -> Result<Entry, String> {
    let dtype = info.get("dtype").and_then(|d| d.as_str()).ok_or("has no dtype")?;
    let dtype = Dtype::parse(dtype).ok_or_else(|| format!("has an unknown dtype {dtype:?}"))?;
    let shape = info.get("shape").and_then(|s| s.as_array()).ok_or("has no shape")?;
    let shape: Vec<u64> = shape
        .iter()
        .map(|d| d.as_u64().ok_or("has a shape that is not a list of sizes"))
        .collect::<Result<_, _>>()?;
    let offsets = info.get("data_offsets").and_then(|o| o.as_array()).ok_or("has no data_offsets")?;
    let (begin, end) = match offsets.as_slice() {
        [b, e] => (b.as_u64().ok_or("has a bad data offset")?, e.as_u64().ok_or("has a bad data offset")?),
        _ => return Err("needs data_offsets [begin, end]".into()),
    };
    if begin > end || end > data_len {
        return Err(format!(
            "has data {begin}..{end} but the data section is {data_len} bytes (truncated or corrupt file)"
        ));
    }
    let needed = shape.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
    if needed != Some(end - begin) {
        let needed = needed.map_or_else(|| "an overflowing number of".into(), |n| n.to_string());
        return Err(format!(
            "has {} bytes of data but its shape {shape:?} of {} needs {needed} bytes",
            end - begin,
            dtype.name()
        ));
    }
    Ok(Entry { dtype, shape, begin, end })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a safetensors file from `(name, dtype, shape, raw bytes)`, in order.
    pub(crate) fn write_file(path: &Path, tensors: &[(&str, &str, Vec<u64>, Vec<u8>)]) {
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in tensors {
            let (begin, end) = (data.len(), data.len() + bytes.len());
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}),
            );
            data.extend_from_slice(bytes);
        }
        let header = serde_json::to_vec(&header).unwrap();
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&header);
        out.extend_from_slice(&data);
        std::fs::write(path, out).unwrap();
    }

    pub(crate) fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn reads_f32_f16_bf16_and_skippable_integers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let f16: Vec<u8> = [0x3c00u16, 0xc000].iter().flat_map(|v| v.to_le_bytes()).collect();
        let bf16: Vec<u8> = [0x3f80u16, 0x4040].iter().flat_map(|v| v.to_le_bytes()).collect();
        write_file(
            &path,
            &[
                ("a", "F32", vec![2, 2], f32_bytes(&[1.0, 2.0, 3.0, 4.0])),
                ("b", "F16", vec![2], f16),
                ("c", "BF16", vec![2], bf16),
                ("ids", "I64", vec![1, 3], vec![0; 24]),
            ],
        );
        let mut st = SafeTensors::open(&path).unwrap();
        let names: Vec<&str> = st.entries().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b", "c", "ids"]);
        assert_eq!(st.get("a").unwrap().shape, [2, 2]);
        assert_eq!(st.read_f32("a").unwrap(), [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(st.read_f32("b").unwrap(), [1.0, -2.0]);
        assert_eq!(st.read_f32("c").unwrap(), [1.0, 3.0]);
        let err = st.read_f32("ids").unwrap_err().to_string();
        assert!(err.contains("dtype I64"), "{err}");
        assert!(st.read_f32("nope").is_err());
    }

    fn open_err(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, bytes).unwrap();
        SafeTensors::open(&path).unwrap_err().to_string()
    }

    fn with_header(json: &str, data: usize) -> Vec<u8> {
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(json.as_bytes());
        out.resize(out.len() + data, 0);
        out
    }

    #[test]
    fn corrupt_files_give_clear_errors() {
        assert!(open_err(b"abc").contains("too short"));
        assert!(open_err(&u64::MAX.to_le_bytes()).contains("truncated or not a safetensors file"));
        assert!(open_err(&with_header("{not json", 0)).contains("not valid JSON"));
        assert!(open_err(&with_header("[1, 2]", 0)).contains("not a JSON object"));
        let e = open_err(&with_header(r#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, 8));
        assert!(e.contains("tensor 't'") && e.contains("data section is 8 bytes"), "{e}");
        let e = open_err(&with_header(r#"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#, 16));
        assert!(e.contains("needs 12 bytes"), "{e}");
        let e = open_err(&with_header(r#"{"t":{"dtype":"Q9","shape":[1],"data_offsets":[0,1]}}"#, 1));
        assert!(e.contains("unknown dtype"), "{e}");
        let e = open_err(&with_header(r#"{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, 4));
        assert!(e.contains("not a list of sizes"), "{e}");
        let e = open_err(&with_header(r#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, 4));
        assert!(e.contains("data 4..0"), "{e}");
        let huge = r#"{"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#;
        assert!(open_err(&with_header(huge, 4)).contains("overflowing"));
        let overlap = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                          "b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
        assert!(open_err(&with_header(overlap, 12)).contains("overlap"));
        let e = open_err(&with_header(r#"{"t":{"shape":[1],"data_offsets":[0,4]}}"#, 4));
        assert!(e.contains("has no dtype"), "{e}");
    }
}
