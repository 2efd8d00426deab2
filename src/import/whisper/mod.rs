//! Whisper speech-recognition models in CTranslate2 format (what
//! faster-whisper uses: a folder with `model.bin` and `vocabulary.txt` or
//! `vocabulary.json`) converted to whisper.cpp's ggml `.bin` file.
//!
//! Tensors are renamed and reordered to the names whisper.cpp expects, the
//! fused attention projections are split (CTranslate2 stores query/key/value
//! as one matrix; Whisper has no key bias, which is checked to be zero and
//! dropped), and the mel filter bank is computed ([`mel`]). Matrices keep the
//! model's half precision; 1-D tensors, convolution biases and positional
//! embeddings are f32, as whisper.cpp's own converters write them. The output
//! is read back ([`ggml::read_summary`]) before it is renamed into place.

pub mod ct2;
pub mod ggml;
pub mod mel;

use std::fs;
use std::path::{Path, PathBuf};

use self::ct2::{Ct2Model, Data};
use self::ggml::{GgmlWriter, Hparams, TensorData};
use super::{ImportError, ImportOptions, ImportReport, OutType, TensorProgress, TensorType};

const EOT: &str = "<|endoftext|>";

/// Whether `dir` looks like a CTranslate2 model folder.
pub fn is_ct2_dir(dir: &Path) -> bool {
    dir.join("model.bin").is_file()
        && (dir.join("vocabulary.txt").is_file() || dir.join("vocabulary.json").is_file())
}

/// One output tensor and where its data comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Planned {
    pub name: String,
    pub source: String,
    /// Element range of the source (row-major), for split projections.
    pub range: Option<std::ops::Range<usize>>,
    /// ggml order (fastest-varying first).
    pub dims: Vec<u64>,
    pub ty: TensorType,
}

/// Converts the CTranslate2 Whisper model in `src` to the ggml file `out`.
pub fn import(
    src: &Path,
    out: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(&TensorProgress),
) -> Result<ImportReport, ImportError> {
    let model_path = src.join("model.bin");
    let mut model = Ct2Model::open(&model_path)?;
    if model.spec != "WhisperSpec" {
        let found = format!("(CTranslate2 spec {})", model.spec);
        return Err(ImportError::UnsupportedArchitecture { path: model_path, found });
    }
    let hp = hparams(&mut model, options.outtype)?;
    let vocab = vocabulary(src, hp.n_vocab as usize)?;
    let mel = mel::mel_filters(hp.n_mels as usize);
    let plan = plan(&model, &hp)?;
    check_key_biases(&mut model, &hp)?;

    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result =
        write(&mut model, &partial, &hp, &mel, &vocab, &plan, progress).and_then(|(bytes, sha256)| {
            let summary = ggml::read_summary(&partial)
                .map_err(|reason| ImportError::Ggml { path: partial.clone(), reason })?;
            if summary.tensors.len() != plan.len() || summary.bytes != bytes {
                let reason =
                    format!("read back {} tensors and {} bytes", summary.tensors.len(), summary.bytes);
                return Err(ImportError::Ggml { path: partial.clone(), reason });
            }
            fs::rename(&partial, out)
                .map_err(|source| ImportError::Write { path: out.to_path_buf(), source })?;
            Ok(ImportReport {
                path: out.to_path_buf(),
                bytes,
                sha256,
                architecture: "whisper",
                tensors: plan.len(),
            })
        });
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

fn write(
    model: &mut Ct2Model,
    partial: &Path,
    hp: &Hparams,
    mel: &[f32],
    vocab: &[Vec<u8>],
    plan: &[Planned],
    progress: &mut dyn FnMut(&TensorProgress),
) -> Result<(u64, String), ImportError> {
    let werr = |source| ImportError::Write { path: partial.to_path_buf(), source };
    let mut w = GgmlWriter::create(partial).map_err(werr)?;
    w.header(hp, mel, mel::N_FREQS, vocab).map_err(werr)?;
    for (i, t) in plan.iter().enumerate() {
        progress(&TensorProgress {
            index: i + 1,
            total: plan.len(),
            source: &t.source,
            name: &t.name,
            ty: t.ty,
            dims: &t.dims,
        });
        let mut data = model.read(&t.source)?;
        if let Some(range) = &t.range {
            data = data.slice(range.clone());
        }
        let expected: u64 = t.dims.iter().product();
        if data.len() as u64 != expected {
            let reason = format!("has {} values where {:?} needs {expected}", data.len(), t.dims);
            return Err(ImportError::Tensor { name: t.source.clone(), reason });
        }
        match (t.ty, &data) {
            (TensorType::F16, Data::F16(bits)) => w.tensor(&t.name, &t.dims, TensorData::F16(bits)),
            (TensorType::F16, Data::F32(v)) => {
                let bits: Vec<u16> = v.iter().map(|&x| super::gguf_writer::f32_to_f16(x)).collect();
                w.tensor(&t.name, &t.dims, TensorData::F16(&bits))
            }
            (TensorType::F32, data) => w.tensor(&t.name, &t.dims, TensorData::F32(&data.to_f32())),
        }
        .map_err(werr)?;
    }
    w.finish().map_err(werr)
}

fn dim(model: &Ct2Model, name: &str, axis: usize) -> Result<i32, ImportError> {
    let shape = model.shape(name)?;
    let d = shape.get(axis).copied().ok_or_else(|| ImportError::Tensor {
        name: name.into(),
        reason: format!("has shape {shape:?}, expected at least {} dimensions", axis + 1),
    })?;
    i32::try_from(d)
        .map_err(|_| ImportError::Tensor { name: name.into(), reason: format!("dimension {d} is too large") })
}

fn count_layers(model: &Ct2Model, side: &str) -> i32 {
    (0..)
        .take_while(|i| model.get(&format!("{side}/layer_{i}/self_attention/linear_1/weight")).is_some())
        .count() as i32
}

fn heads(model: &mut Ct2Model, side: &str, state: i32) -> Result<i32, ImportError> {
    // Older conversions lack num_heads; every Whisper size uses 64-wide heads.
    let name = format!("{side}/num_heads");
    match model.scalar(&name)? {
        Some(h) if h > 0 && h <= i64::from(state) && i64::from(state) % h == 0 => Ok(h as i32),
        Some(h) => Err(ImportError::Tensor { name, reason: format!("is {h} for a width of {state}") }),
        None => Ok((state / 64).max(1)),
    }
}

fn hparams(model: &mut Ct2Model, outtype: OutType) -> Result<Hparams, ImportError> {
    let n_audio_state = dim(model, "encoder/conv1/weight", 0)?;
    let n_text_state = dim(model, "decoder/embeddings/weight", 1)?;
    let hp = Hparams {
        n_vocab: dim(model, "decoder/embeddings/weight", 0)?,
        n_audio_ctx: dim(model, "encoder/position_encodings/encodings", 0)?,
        n_audio_state,
        n_audio_head: heads(model, "encoder", n_audio_state)?,
        n_audio_layer: count_layers(model, "encoder"),
        n_text_ctx: dim(model, "decoder/position_encodings/encodings", 0)?,
        n_text_state,
        n_text_head: heads(model, "decoder", n_text_state)?,
        n_text_layer: count_layers(model, "decoder"),
        n_mels: dim(model, "encoder/conv1/weight", 1)?,
        ftype: match outtype {
            OutType::F32 => 0,
            OutType::F16 => 1,
        },
    };
    if hp.n_audio_layer == 0 || hp.n_text_layer == 0 {
        let reason = format!("has {} encoder and {} decoder layers", hp.n_audio_layer, hp.n_text_layer);
        return Err(ImportError::Config { path: PathBuf::from("model.bin"), reason });
    }
    Ok(hp)
}

/// The token strings before `<|endoftext|>`, as bytes (GPT-2 byte-level BPE
/// maps each byte to a printable character; this undoes it).
pub(crate) fn vocabulary(src: &Path, n_vocab: usize) -> Result<Vec<Vec<u8>>, ImportError> {
    let (path, tokens) = read_vocabulary(src)?;
    let bad = |reason: String| ImportError::Vocab { path: path.clone(), reason };
    if tokens.len() != n_vocab {
        return Err(bad(format!("has {} tokens but the model has {n_vocab}", tokens.len())));
    }
    let eot = tokens.iter().position(|t| t == EOT).ok_or_else(|| bad(format!("has no {EOT} token")))?;
    let decoder = byte_decoder();
    tokens[..eot]
        .iter()
        .enumerate()
        .map(|(i, token)| {
            token
                .chars()
                .map(|c| decoder.get(&c).copied())
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| bad(format!("token {i} {token:?} is not byte-level BPE")))
        })
        .collect()
}

fn read_vocabulary(src: &Path) -> Result<(PathBuf, Vec<String>), ImportError> {
    let json = src.join("vocabulary.json");
    if json.is_file() {
        let value = super::read_json(&json)?;
        let tokens = value.as_array().and_then(|a| a.iter().map(|t| t.as_str().map(String::from)).collect());
        let reason = "should be a JSON array of strings".to_string();
        return tokens.map(|t| (json.clone(), t)).ok_or(ImportError::Vocab { path: json, reason });
    }
    let path = src.join("vocabulary.txt");
    let text = fs::read_to_string(&path).map_err(|source| ImportError::Io { path: path.clone(), source })?;
    let mut tokens: Vec<String> = text.split('\n').map(String::from).collect();
    if tokens.last().is_some_and(String::is_empty) {
        tokens.pop();
    }
    Ok((path, tokens))
}

/// GPT-2's byte ↔ unicode table, inverted.
fn byte_decoder() -> std::collections::HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            let c = if printable(b) {
                char::from(b)
            } else {
                next += 1;
                char::from_u32(next - 1).expect("below the surrogates")
            };
            (c, b)
        })
        .collect()
}

fn check_key_biases(model: &mut Ct2Model, hp: &Hparams) -> Result<(), ImportError> {
    let mut check = |name: String, range: std::ops::Range<usize>| -> Result<(), ImportError> {
        let data = model.read(&name)?;
        if data.len() < range.end {
            return Err(ImportError::Tensor { name, reason: format!("has only {} values", data.len()) });
        }
        if data.slice(range).to_f32().iter().any(|&v| v != 0.0) {
            let reason = "has a non-zero key bias, which whisper.cpp cannot represent".into();
            return Err(ImportError::Tensor { name, reason });
        }
        Ok(())
    };
    let (a, t) = (hp.n_audio_state as usize, hp.n_text_state as usize);
    for i in 0..hp.n_audio_layer {
        check(format!("encoder/layer_{i}/self_attention/linear_0/bias"), a..2 * a)?;
    }
    for i in 0..hp.n_text_layer {
        check(format!("decoder/layer_{i}/self_attention/linear_0/bias"), t..2 * t)?;
        check(format!("decoder/layer_{i}/attention/linear_1/bias"), 0..t)?;
    }
    Ok(())
}

/// Whether the file starts with the whisper ggml magic.
pub fn is_ggml_file(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && u32::from_le_bytes(magic) == ggml::MAGIC
}

/// Checks a whisper ggml file's structure and, when the manifest lists its
/// file name, its size and sha256. `Some(true)`: the manifest's sha256 matches;
/// `None`: the file is not in the manifest.
pub fn verify_file(path: &Path) -> Result<(ggml::GgmlSummary, Option<bool>), String> {
    let summary = ggml::read_summary(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let verified = crate::models::check_listed(path, summary.bytes)?;
    Ok((summary, verified))
}

mod plan;
pub(crate) use plan::plan;

#[cfg(test)]
mod tests;
