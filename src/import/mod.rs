//! Importing models from other formats into GGUF (see `hearth models import`).
//!
//! Two families are supported. BERT encoders as sentence-transformers ships
//! them (a Hugging Face folder with `config.json`, `model.safetensors`,
//! `vocab.txt` or `tokenizer.json`, and `1_Pooling/config.json`). They become a
//! GGUF that llama.cpp loads as an embedding model (architecture `bert`, the
//! pooling the model was trained with). Whisper speech-recognition models in
//! CTranslate2 (faster-whisper) format become whisper.cpp ggml files
//! ([`whisper`]). Nothing here needs Python or the
//! network; bad input of any kind is a typed [`ImportError`], never a panic,
//! and the output is validated ([`crate::engine::gguf::validate`]) before it
//! is renamed into place.

mod bert;
mod gguf_writer;
mod safetensors;
mod vocab;
pub mod whisper;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub use gguf_writer::TensorType;
use safetensors::{Entry, SafeTensors};

/// How 2-D weight matrices are stored (1-D tensors are always f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutType {
    F32,
    #[default]
    F16,
}

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub outtype: OutType,
    /// `general.name`; by default the output file's stem without a `-f16`/`-f32` suffix.
    pub name: Option<String>,
    /// Replace an existing output file.
    pub overwrite: bool,
}

/// Reported before each tensor is converted.
#[derive(Debug)]
pub struct TensorProgress<'a> {
    /// 1-based.
    pub index: usize,
    pub total: usize,
    pub source: &'a str,
    pub name: &'a str,
    pub ty: TensorType,
    /// ggml order (fastest-varying first).
    pub dims: &'a [u64],
}

/// The written file.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    pub architecture: &'static str,
    pub tensors: usize,
}

/// Why an import failed. Every message names the file or tensor at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("{what} not found: {} ({hint})", .path.display())]
    Missing { path: PathBuf, what: &'static str, hint: String },
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not valid JSON: {source}", .path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {reason}", .path.display())]
    Config { path: PathBuf, reason: String },
    #[error(
        "{}: unsupported model architecture {found}; `hearth models import` converts BERT encoders \
         (model_type \"bert\", architectures {}), such as sentence-transformers embedding models, \
         and CTranslate2 (faster-whisper) Whisper models",
        .path.display(),
        bert::ARCHITECTURES.join(", ")
    )]
    UnsupportedArchitecture { path: PathBuf, found: String },
    #[error("{}: not a valid safetensors file: {reason}", .path.display())]
    Safetensors { path: PathBuf, reason: String },
    #[error("tensor '{name}' {reason}")]
    Tensor { name: String, reason: String },
    #[error("vocabulary {}: {reason}", .path.display())]
    Vocab { path: PathBuf, reason: String },
    #[error("{} already exists (pass --force to replace it)", .path.display())]
    OutputExists { path: PathBuf },
    #[error("{}: not a valid CTranslate2 model: {reason}", .path.display())]
    Ct2 { path: PathBuf, reason: String },
    #[error("the converted file {} failed ggml validation: {reason}", .path.display())]
    Ggml { path: PathBuf, reason: String },
    #[error("the converted file failed GGUF validation: {0}")]
    Invalid(#[from] crate::engine::gguf::GgufError),
}

/// Converts the model in the folder `src` to the GGUF file `out`, calling
/// `progress` before each tensor.
pub fn import(
    src: &Path,
    out: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(&TensorProgress),
) -> Result<ImportReport, ImportError> {
    if !src.is_dir() {
        let hint = "pass the folder that holds config.json and model.safetensors, or model.bin and \
                    vocabulary.txt"
            .to_string();
        return Err(ImportError::Missing { path: src.to_path_buf(), what: "model folder", hint });
    }
    if out.is_dir() || (out.exists() && !options.overwrite) {
        return Err(ImportError::OutputExists { path: out.to_path_buf() });
    }
    if whisper::is_ct2_dir(src) {
        return whisper::import(src, out, options, progress);
    }
    let config_path = src.join("config.json");
    let config = read_json(&config_path)?;
    if !bert::is_bert(&config) {
        let model_type = config.get("model_type").map_or_else(|| "none".into(), |v| v.to_string());
        let archs = config.get("architectures").map_or_else(|| "none".into(), |v| v.to_string());
        let found = format!("(model_type {model_type}, architectures {archs})");
        return Err(ImportError::UnsupportedArchitecture { path: config_path, found });
    }
    let mut weights = Weights::open(src)?;
    let name = options.name.clone().unwrap_or_else(|| default_name(out));
    let (builder, sources) = bert::plan(src, &config, &weights, options.outtype, &name)?;
    let total = sources.len();
    let written = builder.write(out, |i, spec| {
        let (source, name, ty, dims) =
            (sources[i].as_str(), spec.name.as_str(), spec.ty, spec.dims.as_slice());
        progress(&TensorProgress { index: i + 1, total, source, name, ty, dims });
        weights.read_f32(source)
    })?;
    Ok(ImportReport {
        path: written.path,
        bytes: written.bytes,
        sha256: written.sha256,
        architecture: "bert",
        tensors: total,
    })
}

/// `all-minilm-l6-v2-f16.gguf` → `all-minilm-l6-v2`.
fn default_name(out: &Path) -> String {
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let lower = stem.to_ascii_lowercase();
    let cut = ["-f16", "-f32", "_f16", "_f32", ".f16", ".f32"].iter().find(|s| lower.ends_with(*s));
    let name = cut.map_or(stem, |s| &stem[..stem.len() - s.len()]);
    if name.is_empty() {
        "model".to_string()
    } else {
        name.to_string()
    }
}

/// The model's safetensors weights: `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json`.
pub(crate) struct Weights {
    files: Vec<SafeTensors>,
    index: BTreeMap<String, usize>,
}

impl Weights {
    fn open(dir: &Path) -> Result<Weights, ImportError> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let paths = if single.is_file() {
            vec![single]
        } else if let Some(index) = read_optional_json(&index_path)? {
            let map = index.get("weight_map").and_then(|m| m.as_object());
            let bad = |reason: &str| ImportError::Config { path: index_path.clone(), reason: reason.into() };
            let mut shards: Vec<&str> = Vec::new();
            for file in map.ok_or_else(|| bad("has no weight_map object"))?.values() {
                let file =
                    file.as_str().ok_or_else(|| bad("has a weight_map value that is not a file name"))?;
                if file.contains(['/', '\\']) || file.starts_with('.') {
                    return Err(bad("names a shard outside the model folder"));
                }
                if !shards.contains(&file) {
                    shards.push(file);
                }
            }
            shards.sort_unstable();
            shards.into_iter().map(|f| dir.join(f)).collect()
        } else {
            let hint =
                "hearth imports safetensors weights; a pytorch_model.bin must be converted first".into();
            return Err(ImportError::Missing { path: single, what: "model weights", hint });
        };
        let mut files = Vec::new();
        let mut index = BTreeMap::new();
        for path in paths {
            if !path.is_file() {
                let hint = "a shard listed in model.safetensors.index.json".into();
                return Err(ImportError::Missing { path, what: "weights shard", hint });
            }
            let file = SafeTensors::open(&path)?;
            for (name, _) in file.entries() {
                if index.insert(name.to_string(), files.len()).is_some() {
                    let reason = format!("tensor '{name}' is also in another shard");
                    return Err(ImportError::Safetensors { path: path.clone(), reason });
                }
            }
            files.push(file);
        }
        Ok(Weights { files, index })
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    pub(crate) fn entry(&self, name: &str) -> Option<&Entry> {
        self.files[*self.index.get(name)?].get(name)
    }

    fn read_f32(&mut self, name: &str) -> Result<Vec<f32>, ImportError> {
        match self.index.get(name) {
            Some(&i) => self.files[i].read_f32(name),
            None => Err(ImportError::Tensor { name: name.into(), reason: "is not in the weights".into() }),
        }
    }
}

/// Reads a JSON file that must exist.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value, ImportError> {
    read_optional_json(path)?.ok_or_else(|| ImportError::Missing {
        path: path.to_path_buf(),
        what: "file",
        hint: "a Hugging Face model folder has config.json next to model.safetensors".into(),
    })
}

/// Reads a JSON file; `None` when it does not exist.
pub(crate) fn read_optional_json(path: &Path) -> Result<Option<serde_json::Value>, ImportError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| ImportError::Json { path: path.to_path_buf(), source }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ImportError::Io { path: path.to_path_buf(), source }),
    }
}

#[cfg(test)]
mod tests;
