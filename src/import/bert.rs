//! BERT (sentence-transformers) → GGUF for llama.cpp's `bert` architecture.
//!
//! Hyper-parameters come from `config.json`, the pooling from the
//! sentence-transformers Pooling module (`1_Pooling/config.json`), the
//! vocabulary from `vocab.txt` (see [`super::vocab`]). Hugging Face tensor
//! names are mapped to llama.cpp's, every shape is checked against the
//! config, 2-D matrices are stored as f16 (unless f32 is asked for) and 1-D
//! tensors (norms, biases) stay f32, as do the position and token-type
//! embeddings (small, and added to f32 activations).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;

use super::gguf_writer::{GgufBuilder, TensorSpec, TensorType, Value};
use super::{read_optional_json, vocab, ImportError, OutType, Weights};

/// `architectures` values whose weights are a plain BERT encoder (heads are skipped).
pub const ARCHITECTURES: [&str; 3] = ["BertModel", "BertForMaskedLM", "BertForPreTraining"];
/// llama.cpp's `LLAMA_MAX_LAYERS`.
const MAX_LAYERS: u64 = 512;

/// The hyper-parameters llama.cpp needs.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    pub hidden: u64,
    pub ff: u64,
    pub layers: u64,
    pub heads: u64,
    pub context: u64,
    pub eps: f32,
    pub vocab_size: u64,
    pub type_vocab: u64,
}

/// True when `config.json` describes a BERT model this importer handles.
pub fn is_bert(config: &Json) -> bool {
    let model_type = config.get("model_type").and_then(Json::as_str);
    let archs = config.get("architectures").and_then(Json::as_array);
    let archs_ok =
        archs.is_none_or(|a| a.iter().all(|a| a.as_str().is_some_and(|a| ARCHITECTURES.contains(&a))));
    model_type == Some("bert") && archs_ok
}

/// Reads and checks the hyper-parameters in `config.json`.
pub fn parse_config(config: &Json, path: &Path) -> Result<BertConfig, ImportError> {
    let bad = |reason: String| ImportError::Config { path: path.to_path_buf(), reason };
    let int = |key: &str, default: Option<u64>, max: u64| -> Result<u64, ImportError> {
        match (config.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(bad(format!("has no {key}"))),
            (Some(v), _) => match v.as_u64() {
                Some(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(bad(format!("has {key} = {v}, expected an integer from 1 to {max}"))),
            },
        }
    };
    let c = BertConfig {
        hidden: int("hidden_size", None, 1 << 16)?,
        ff: int("intermediate_size", None, 1 << 20)?,
        layers: int("num_hidden_layers", None, MAX_LAYERS)?,
        heads: int("num_attention_heads", None, 1 << 12)?,
        context: int("max_position_embeddings", None, 1 << 20)?,
        vocab_size: int("vocab_size", None, 1 << 24)?,
        type_vocab: int("type_vocab_size", Some(2), 1 << 10)?,
        eps: match config.get("layer_norm_eps") {
            None => 1e-12,
            Some(v) => match v.as_f64() {
                Some(e) if e > 0.0 && e < 1.0 => e as f32,
                _ => return Err(bad(format!("has layer_norm_eps = {v}, expected a small positive number"))),
            },
        },
    };
    if !c.hidden.is_multiple_of(c.heads) {
        return Err(bad(format!(
            "has hidden_size {} not divisible by num_attention_heads {}",
            c.hidden, c.heads
        )));
    }
    let act = config.get("hidden_act").and_then(Json::as_str).unwrap_or("gelu");
    if !matches!(act, "gelu" | "gelu_new" | "gelu_pytorch_tanh") {
        return Err(bad(format!("has hidden_act {act:?}; llama.cpp's BERT uses GELU")));
    }
    let position = config.get("position_embedding_type").and_then(Json::as_str).unwrap_or("absolute");
    if position != "absolute" {
        return Err(bad(format!("has position_embedding_type {position:?}; only \"absolute\" is supported")));
    }
    Ok(c)
}

/// llama.cpp's pooling type from the sentence-transformers Pooling module:
/// 1 mean, 2 CLS, 3 last token. Without one, mean pooling.
pub fn pooling(dir: &Path) -> Result<u32, ImportError> {
    let modules = read_optional_json(&dir.join("modules.json"))?;
    let module_dir = modules
        .as_ref()
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .find(|m| m.get("type").and_then(Json::as_str).is_some_and(|t| t.ends_with(".Pooling")))
        .and_then(|m| m.get("path").and_then(Json::as_str))
        .unwrap_or("1_Pooling");
    let path = dir.join(module_dir).join("config.json");
    let Some(config) = read_optional_json(&path)? else {
        return Ok(1);
    };
    let on = |key: &str| config.get(key).and_then(Json::as_bool).unwrap_or(false);
    let modes: Vec<&str> = [
        "cls_token",
        "mean_tokens",
        "max_tokens",
        "mean_sqrt_len_tokens",
        "weightedmean_tokens",
        "lasttoken",
    ]
    .into_iter()
    .filter(|m| on(&format!("pooling_mode_{m}")))
    .collect();
    match modes.as_slice() {
        ["mean_tokens"] => Ok(1),
        ["cls_token"] => Ok(2),
        ["lasttoken"] => Ok(3),
        other => Err(ImportError::Config {
            path,
            reason: format!(
                "asks for pooling {other:?}; llama.cpp can pool by mean, CLS token or last token only"
            ),
        }),
    }
}

/// Where a Hugging Face tensor goes: a GGUF name, or nowhere (not needed for embeddings).
fn map_name(hf: &str) -> Option<Option<String>> {
    let name = hf.strip_prefix("bert.").unwrap_or(hf);
    if name == "embeddings.position_ids" || name.starts_with("pooler.") || name.starts_with("cls.") {
        return Some(None);
    }
    // Old TensorFlow-converted checkpoints call the LayerNorm parameters gamma and beta.
    let (stem, suffix) = name.rsplit_once('.')?;
    let suffix = match suffix {
        "weight" | "gamma" => "weight",
        "bias" | "beta" => "bias",
        _ => return None,
    };
    let base = match stem {
        "embeddings.word_embeddings" => "token_embd".to_string(),
        "embeddings.token_type_embeddings" => "token_types".to_string(),
        "embeddings.position_embeddings" => "position_embd".to_string(),
        "embeddings.LayerNorm" => "token_embd_norm".to_string(),
        _ => {
            let (n, rest) = stem.strip_prefix("encoder.layer.")?.split_once('.')?;
            let n: u64 = n.parse().ok()?;
            let part = match rest {
                "attention.self.query" => "attn_q",
                "attention.self.key" => "attn_k",
                "attention.self.value" => "attn_v",
                "attention.output.dense" => "attn_output",
                "attention.output.LayerNorm" => "attn_output_norm",
                "intermediate.dense" => "ffn_up",
                "output.dense" => "ffn_down",
                "output.LayerNorm" => "layer_output_norm",
                _ => return None,
            };
            format!("blk.{n}.{part}")
        }
    };
    Some(Some(format!("{base}.{suffix}")))
}

/// Every tensor llama.cpp's BERT can use, in output order: (GGUF name,
/// Hugging Face shape, required).
fn expected(c: &BertConfig) -> Vec<(String, Vec<u64>, bool)> {
    let (h, ff) = (c.hidden, c.ff);
    let mut list = vec![
        ("token_embd.weight".to_string(), vec![c.vocab_size, h], true),
        ("token_types.weight".to_string(), vec![c.type_vocab, h], false),
        ("position_embd.weight".to_string(), vec![c.context, h], true),
        ("token_embd_norm.weight".to_string(), vec![h], true),
        ("token_embd_norm.bias".to_string(), vec![h], true),
    ];
    for i in 0..c.layers {
        let blk = |part: &str, shape: Vec<u64>, required| (format!("blk.{i}.{part}"), shape, required);
        for part in ["attn_q", "attn_k", "attn_v", "attn_output"] {
            list.push(blk(&format!("{part}.weight"), vec![h, h], true));
            list.push(blk(&format!("{part}.bias"), vec![h], false));
        }
        list.push(blk("attn_output_norm.weight", vec![h], true));
        list.push(blk("attn_output_norm.bias", vec![h], true));
        list.push(blk("ffn_up.weight", vec![ff, h], true));
        list.push(blk("ffn_up.bias", vec![ff], false));
        list.push(blk("ffn_down.weight", vec![h, ff], true));
        list.push(blk("ffn_down.bias", vec![h], false));
        list.push(blk("layer_output_norm.weight", vec![h], true));
        list.push(blk("layer_output_norm.bias", vec![h], true));
    }
    list
}

/// Builds the GGUF description of the model in `dir`; returns it with, for each
/// output tensor in order, the name of its source tensor.
pub fn plan(
    dir: &Path,
    config: &Json,
    weights: &Weights,
    outtype: OutType,
    name: &str,
) -> Result<(GgufBuilder, Vec<String>), ImportError> {
    let c = parse_config(config, &dir.join("config.json"))?;
    let pooling = pooling(dir)?;
    let vocab = vocab::load(dir, c.vocab_size)?;

    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for hf in weights.names() {
        let Some(target) = map_name(hf) else {
            let reason = "is not part of a BERT encoder that llama.cpp can run".to_string();
            return Err(ImportError::Tensor { name: hf.to_string(), reason });
        };
        if let Some(target) = target {
            if let Some(other) = sources.insert(target.clone(), hf.to_string()) {
                let reason = format!("and '{other}' both map to '{target}'");
                return Err(ImportError::Tensor { name: hf.to_string(), reason });
            }
        }
    }

    let mut b = GgufBuilder::new();
    let mut order = Vec::new();
    for (target, shape, required) in expected(&c) {
        let Some(hf) = sources.remove(&target) else {
            if required {
                let reason = "is missing from the weights (llama.cpp's BERT needs it)".to_string();
                return Err(ImportError::Tensor { name: target, reason });
            }
            continue;
        };
        let entry = weights.entry(&hf).expect("names come from the weights");
        if entry.shape != shape {
            let reason = format!("has shape {:?} but config.json implies {shape:?}", entry.shape);
            return Err(ImportError::Tensor { name: hf, reason });
        }
        let small_table = target.starts_with("position_embd.") || target.starts_with("token_types.");
        let ty = match outtype {
            OutType::F16 if shape.len() == 2 && !small_table => TensorType::F16,
            _ => TensorType::F32,
        };
        b.tensor(TensorSpec { name: target, dims: shape.iter().rev().copied().collect(), ty })?;
        order.push(hf);
    }
    if let Some((target, hf)) = sources.into_iter().next() {
        let reason = format!("maps to '{target}', which config.json ({} layers) has no place for", c.layers);
        return Err(ImportError::Tensor { name: hf, reason });
    }

    let file_type = match outtype {
        OutType::F32 => 0,
        OutType::F16 => 1,
    };
    let u32_of = |v: u64| Value::U32(v as u32); // every value was bounded by parse_config
    b.kv("general.architecture", Value::Str("bert".into()));
    b.kv("general.name", Value::Str(name.into()));
    b.kv("general.file_type", Value::U32(file_type));
    b.kv("bert.context_length", u32_of(c.context));
    b.kv("bert.embedding_length", u32_of(c.hidden));
    b.kv("bert.feed_forward_length", u32_of(c.ff));
    b.kv("bert.block_count", u32_of(c.layers));
    b.kv("bert.attention.head_count", u32_of(c.heads));
    b.kv("bert.attention.layer_norm_epsilon", Value::F32(c.eps));
    b.kv("bert.attention.causal", Value::Bool(false));
    b.kv("bert.pooling_type", Value::U32(pooling));
    b.kv("tokenizer.ggml.model", Value::Str("bert".into()));
    b.kv("tokenizer.ggml.tokens", Value::StrArray(vocab.tokens));
    b.kv("tokenizer.ggml.token_type", Value::I32Array(vocab.types));
    b.kv("tokenizer.ggml.token_type_count", u32_of(c.type_vocab));
    b.kv("tokenizer.ggml.bos_token_id", Value::U32(vocab.cls));
    b.kv("tokenizer.ggml.cls_token_id", Value::U32(vocab.cls));
    b.kv("tokenizer.ggml.seperator_token_id", Value::U32(vocab.sep));
    b.kv("tokenizer.ggml.unknown_token_id", Value::U32(vocab.unk));
    if let Some(pad) = vocab.pad {
        b.kv("tokenizer.ggml.padding_token_id", Value::U32(pad));
    }
    if let Some(mask) = vocab.mask {
        b.kv("tokenizer.ggml.mask_token_id", Value::U32(mask));
    }
    b.kv("tokenizer.ggml.add_bos_token", Value::Bool(true));
    b.kv("tokenizer.ggml.add_sep_token", Value::Bool(true));
    if let Some(lower) = vocab.lowercase {
        b.kv("tokenizer.ggml.normalizer.lowercase", Value::Bool(lower));
    }
    if let Some(strip) = vocab.strip_accents {
        b.kv("tokenizer.ggml.normalizer.strip_accents", Value::Bool(strip));
    }
    Ok((b, order))
}

#[cfg(test)]
#[path = "bert_tests.rs"]
mod tests;
