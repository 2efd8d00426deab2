//! End-to-end tests of [`import`] on a tiny synthetic BERT.

use super::safetensors::tests::{f32_bytes, write_file};
use super::*;
use crate::engine::gguf::validate;
use serde_json::json;

const HIDDEN: u64 = 4;
const FF: u64 = 8;
const LAYERS: u64 = 2;
const VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n";

/// (name, shape) of every tensor of the tiny model, as Hugging Face names them.
fn tensors(prefix: &str) -> Vec<(String, Vec<u64>)> {
    let (h, ff) = (HIDDEN, FF);
    let mut list = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![8, h]),
        ("embeddings.position_embeddings.weight".into(), vec![16, h]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
        ("pooler.dense.weight".into(), vec![h, h]),
    ];
    for i in 0..LAYERS {
        for (part, shape) in [
            ("attention.self.query", vec![h, h]),
            ("attention.self.key", vec![h, h]),
            ("attention.self.value", vec![h, h]),
            ("attention.output.dense", vec![h, h]),
            ("attention.output.LayerNorm", vec![h, h]),
            ("intermediate.dense", vec![ff, h]),
            ("output.dense", vec![h, ff]),
            ("output.LayerNorm", vec![h, h]),
        ] {
            let norm = part.ends_with("LayerNorm");
            let weight = if norm { vec![h] } else { shape.clone() };
            list.push((format!("encoder.layer.{i}.{part}.weight"), weight));
            list.push((format!("encoder.layer.{i}.{part}.bias"), vec![shape[0]]));
        }
    }
    list.into_iter().map(|(n, s)| (format!("{prefix}{n}"), s)).collect()
}

fn write_weights(dir: &Path, list: &[(String, Vec<u64>)], dtype: &str) {
    let mut files = Vec::new();
    for (k, (name, shape)) in list.iter().enumerate() {
        let n: u64 = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| (k as f32 + i as f32) / 16.0).collect();
        let bytes = match dtype {
            "F32" => f32_bytes(&values),
            _ => values.iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect(), // BF16
        };
        files.push((name.as_str(), dtype, shape.clone(), bytes));
    }
    write_file(&dir.join("model.safetensors"), &files);
}

/// A complete tiny sentence-transformers BERT folder.
fn tiny_bert() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": HIDDEN,
        "intermediate_size": FF, "num_hidden_layers": LAYERS, "num_attention_heads": 2,
        "max_position_embeddings": 16, "vocab_size": 8, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_act": "gelu"
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.path().join("vocab.txt"), VOCAB).unwrap();
    std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
    std::fs::write(dir.path().join("1_Pooling/config.json"), r#"{"pooling_mode_mean_tokens": true}"#)
        .unwrap();
    write_weights(dir.path(), &tensors(""), "F32");
    dir
}

fn run(src: &Path, out: &Path) -> Result<ImportReport, ImportError> {
    import(src, out, &ImportOptions::default(), &mut |_| {})
}

#[test]
fn a_tiny_bert_converts_to_a_valid_gguf() {
    let src = tiny_bert();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("tiny-f16.gguf");
    let mut seen = Vec::new();
    let report = import(src.path(), &out, &ImportOptions::default(), &mut |p| {
        seen.push((p.index, p.total, p.source.to_string(), p.name.to_string(), p.ty, p.dims.to_vec()));
    })
    .unwrap();
    // 5 embedding tensors + 16 per layer; the pooler is dropped.
    assert_eq!(report.tensors, 5 + 16 * LAYERS as usize);
    assert_eq!(seen.len(), report.tensors);
    let first = &seen[0];
    assert_eq!(
        (first.0, first.2.as_str(), first.3.as_str()),
        (1, "embeddings.word_embeddings.weight", "token_embd.weight")
    );
    assert_eq!((first.4, first.5.as_slice()), (TensorType::F16, &[HIDDEN, 8][..]));
    let by_name = |n: &str| seen.iter().find(|s| s.3 == n).unwrap().clone();
    assert_eq!(by_name("position_embd.weight").4, TensorType::F32);
    assert_eq!(by_name("blk.1.ffn_up.weight").5, [HIDDEN, FF]);
    assert_eq!(by_name("blk.1.ffn_up.weight").2, "encoder.layer.1.intermediate.dense.weight");
    assert_eq!(by_name("blk.0.attn_output_norm.bias").4, TensorType::F32);

    let summary = validate(&out).unwrap();
    assert_eq!((summary.architecture.as_str(), summary.block_count), ("bert", Some(LAYERS)));
    assert_eq!((summary.name.as_deref(), summary.context_length), (Some("tiny"), Some(16)));
    assert_eq!(report.bytes, std::fs::metadata(&out).unwrap().len());
    assert_eq!(report.sha256, crate::engine::gguf::sha256_file(&out).unwrap());

    // Same input, same bytes; f32 output is larger; an existing output is kept unless asked.
    let err = run(src.path(), &out).unwrap_err();
    assert!(matches!(err, ImportError::OutputExists { .. }), "{err}");
    let options = ImportOptions { overwrite: true, ..Default::default() };
    let again = import(src.path(), &out, &options, &mut |_| {}).unwrap();
    assert_eq!(again.sha256, report.sha256);
    let f32_out = out_dir.path().join("tiny-f32.gguf");
    let options = ImportOptions { outtype: OutType::F32, ..Default::default() };
    let wide = import(src.path(), &f32_out, &options, &mut |_| {}).unwrap();
    assert!(wide.bytes > report.bytes);
    assert_ne!(wide.sha256, report.sha256);
}

#[test]
fn bf16_weights_with_a_bert_prefix_and_mlm_head_convert() {
    let src = tiny_bert();
    let mut list = tensors("bert.");
    list.push(("cls.predictions.bias".into(), vec![8]));
    write_weights(src.path(), &list, "BF16");
    let out = src.path().join("out.gguf");
    assert_eq!(run(src.path(), &out).unwrap().tensors, 5 + 16 * LAYERS as usize);
}

fn err_of(setup: impl FnOnce(&Path)) -> String {
    let src = tiny_bert();
    setup(src.path());
    let out = src.path().join("out.gguf");
    let err = run(src.path(), &out).unwrap_err().to_string();
    assert!(!out.exists() && !src.path().join("out.gguf.partial").exists(), "{err}");
    err
}

fn set_config(dir: &Path, key: &str, value: serde_json::Value) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config[key] = value;
    std::fs::write(path, config.to_string()).unwrap();
}

#[test]
fn bad_sources_give_clear_errors() {
    let e = run(Path::new("/nonexistent/model"), Path::new("/tmp/x.gguf")).unwrap_err().to_string();
    assert!(e.contains("model folder not found: /nonexistent/model"), "{e}");
    let e = err_of(|d| std::fs::remove_file(d.join("config.json")).unwrap());
    assert!(e.contains("config.json") && e.contains("not found"), "{e}");
    let e = err_of(|d| std::fs::write(d.join("config.json"), "{").unwrap());
    assert!(e.contains("config.json is not valid JSON"), "{e}");
    let e = err_of(|d| {
        set_config(d, "model_type", json!("llama"));
        set_config(d, "architectures", json!(["LlamaForCausalLM"]));
    });
    assert!(e.contains("unsupported model architecture") && e.contains("LlamaForCausalLM"), "{e}");
    let e = err_of(|d| set_config(d, "architectures", json!(["BertForSequenceClassification"])));
    assert!(e.contains("unsupported model architecture"), "{e}");
    let e = err_of(|d| std::fs::remove_file(d.join("model.safetensors")).unwrap());
    assert!(e.contains("model weights not found") && e.contains("pytorch_model.bin"), "{e}");
    let e = err_of(|d| {
        let path = d.join("model.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    });
    assert!(e.contains("not a valid safetensors file") && e.contains("truncated"), "{e}");
    let e = err_of(|d| set_config(d, "intermediate_size", json!(16)));
    assert!(e.contains("encoder.layer.0.intermediate.dense.weight") && e.contains("has shape [8, 4]"), "{e}");
    let e = err_of(|d| set_config(d, "num_hidden_layers", json!(1)));
    assert!(e.contains("encoder.layer.1.") && e.contains("has no place for"), "{e}");
    let e = err_of(|d| set_config(d, "num_hidden_layers", json!(3)));
    assert!(e.contains("blk.2.attn_q.weight") && e.contains("is missing"), "{e}");
    let e = err_of(|d| {
        let mut list = tensors("");
        list.push(("decoder.something.weight".into(), vec![4]));
        write_weights(d, &list, "F32");
    });
    assert!(e.contains("decoder.something.weight") && e.contains("not part of a BERT encoder"), "{e}");
    let e = err_of(|d| {
        let mut list = tensors("");
        list.push(("bert.embeddings.LayerNorm.bias".into(), vec![4]));
        write_weights(d, &list, "F32");
    });
    assert!(e.contains("both map to 'token_embd_norm.bias'"), "{e}");
    let e = err_of(|d| {
        let list = tensors("");
        let files: Vec<_> = list
            .iter()
            .map(|(n, s)| (n.as_str(), "I32", s.clone(), vec![0u8; 4 * s.iter().product::<u64>() as usize]))
            .collect();
        write_file(&d.join("model.safetensors"), &files);
    });
    assert!(e.contains("dtype I32"), "{e}");
    let e = err_of(|d| {
        std::fs::write(d.join("1_Pooling/config.json"), r#"{"pooling_mode_max_tokens": true}"#).unwrap()
    });
    assert!(e.contains("max_tokens"), "{e}");
    let e = err_of(|d| std::fs::remove_file(d.join("vocab.txt")).unwrap());
    assert!(e.contains("vocabulary not found"), "{e}");
}

#[test]
fn the_output_must_be_writable() {
    let src = tiny_bert();
    let e = run(src.path(), &src.path().join("no/such/dir/out.gguf")).unwrap_err().to_string();
    assert!(e.contains("cannot write") && e.contains("out.gguf.partial"), "{e}");
    let e = run(src.path(), src.path()).unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");
}

#[test]
fn default_names_drop_the_type_suffix() {
    assert_eq!(default_name(Path::new("/m/all-minilm-l6-v2-f16.gguf")), "all-minilm-l6-v2");
    assert_eq!(default_name(Path::new("x_F32.gguf")), "x");
    assert_eq!(default_name(Path::new("bge-small.gguf")), "bge-small");
    assert_eq!(default_name(Path::new("-f16.gguf")), "model");
}
