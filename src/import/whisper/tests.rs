//! The converter on a tiny synthetic CTranslate2 Whisper model.

use super::super::gguf_writer::{f16_to_f32, f32_to_f16};
use super::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

struct Var {
    name: String,
    shape: Vec<u32>,
    dtype: u8,
    bytes: Vec<u8>,
}

/// Distinct values per variable, so slices can be told apart.
fn values(seed: usize, n: usize) -> Vec<f32> {
    (0..n).map(|i| (seed * 100 + i) as f32 * 0.01 - 1.0).collect()
}

fn f16_var(name: &str, shape: &[u32], seed: usize) -> Var {
    let n = shape.iter().product::<u32>() as usize;
    let bytes = values(seed, n).iter().flat_map(|&v| f32_to_f16(v).to_le_bytes()).collect();
    Var { name: name.into(), shape: shape.to_vec(), dtype: 4, bytes }
}

fn i16_scalar(name: &str, v: i16) -> Var {
    Var { name: name.into(), shape: vec![1], dtype: 2, bytes: v.to_le_bytes().to_vec() }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn ct2_bytes(spec: &str, vars: &[Var], aliases: &[(&str, &str)]) -> Vec<u8> {
    let mut out = 6u32.to_le_bytes().to_vec();
    put_str(&mut out, spec);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
    for v in vars {
        put_str(&mut out, &v.name);
        out.push(v.shape.len() as u8);
        v.shape.iter().for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
        out.push(v.dtype);
        out.extend_from_slice(&(v.bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&v.bytes);
    }
    out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
    for (a, b) in aliases {
        put_str(&mut out, a);
        put_str(&mut out, b);
    }
    out
}

const D: u32 = 4;

/// A Whisper with width 4, 2 heads, 2 mels, one layer each side, 5 tokens.
fn tiny_vars() -> Vec<Var> {
    let mut vars = Vec::new();
    let mut seed = 0;
    let mut add = |name: String, shape: &[u32]| {
        seed += 1;
        vars.push(f16_var(&name, shape, seed));
    };
    add("encoder/conv1/weight".into(), &[D, 2, 3]);
    add("encoder/conv1/bias".into(), &[D]);
    add("encoder/conv2/weight".into(), &[D, D, 3]);
    add("encoder/conv2/bias".into(), &[D]);
    add("encoder/position_encodings/encodings".into(), &[6, D]);
    add("decoder/embeddings/weight".into(), &[5, D]);
    add("decoder/position_encodings/encodings".into(), &[3, D]);
    for side in ["encoder", "decoder"] {
        let s = format!("{side}/layer_0");
        add(format!("{s}/self_attention/linear_0/weight"), &[3 * D, D]);
        add(format!("{s}/self_attention/linear_0/bias"), &[3 * D]);
        for p in [format!("{s}/self_attention/linear_1"), format!("{s}/ffn/linear_1")] {
            add(format!("{p}/weight"), &[D, if p.contains("ffn") { 2 * D } else { D }]);
            add(format!("{p}/bias"), &[D]);
        }
        add(format!("{s}/ffn/linear_0/weight"), &[2 * D, D]);
        add(format!("{s}/ffn/linear_0/bias"), &[2 * D]);
        let mut norms = vec![
            format!("{s}/self_attention/layer_norm"),
            format!("{s}/ffn/layer_norm"),
            format!("{side}/layer_norm"),
        ];
        if side == "decoder" {
            norms.push(format!("{s}/attention/layer_norm"));
            add(format!("{s}/attention/linear_0/weight"), &[D, D]);
            add(format!("{s}/attention/linear_0/bias"), &[D]);
            add(format!("{s}/attention/linear_1/weight"), &[2 * D, D]);
            add(format!("{s}/attention/linear_1/bias"), &[2 * D]);
            add(format!("{s}/attention/linear_2/weight"), &[D, D]);
            add(format!("{s}/attention/linear_2/bias"), &[D]);
        }
        for n in norms {
            add(format!("{n}/gamma"), &[D]);
            add(format!("{n}/beta"), &[D]);
        }
    }
    vars.push(i16_scalar("encoder/num_heads", 2));
    vars.push(i16_scalar("decoder/num_heads", 2));
    // Whisper has no key bias: zero the key blocks.
    for v in &mut vars {
        if v.name.ends_with("self_attention/linear_0/bias") {
            v.bytes[8..16].fill(0);
        } else if v.name.ends_with("attention/linear_1/bias") && !v.name.contains("self") {
            v.bytes[..8].fill(0);
        }
    }
    vars
}

const VOCAB: &str = "!\na\nĠb\n<|endoftext|>\n<|startoftranscript|>\n";

fn model_dir(vars: &[Var], vocab: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let aliases = [("decoder/projection/weight", "decoder/embeddings/weight")];
    std::fs::write(dir.path().join("model.bin"), ct2_bytes("WhisperSpec", vars, &aliases)).unwrap();
    std::fs::write(dir.path().join("vocabulary.txt"), vocab).unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    dir
}

/// A written tensor: dims, type (0 f32, 1 f16), raw data.
type Tensor = (Vec<u64>, i32, Vec<u8>);

/// Hyper-parameters, vocabulary and every tensor of a written file.
fn tensors(path: &Path) -> (Vec<i32>, Vec<Vec<u8>>, BTreeMap<String, Tensor>) {
    let b = std::fs::read(path).unwrap();
    let i32_at = |at: usize| i32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let hp: Vec<i32> = (0..11).map(|i| i32_at(4 + 4 * i)).collect();
    let mut pos = 48 + 8 + (i32_at(48) * i32_at(52) * 4) as usize;
    let n_vocab = i32_at(pos) as usize;
    pos += 4;
    let mut vocab = Vec::new();
    for _ in 0..n_vocab {
        let n = i32_at(pos) as usize;
        vocab.push(b[pos + 4..pos + 4 + n].to_vec());
        pos += 4 + n;
    }
    let mut out = BTreeMap::new();
    while pos < b.len() {
        let (n_dims, name_len, ty) = (i32_at(pos) as usize, i32_at(pos + 4) as usize, i32_at(pos + 8));
        pos += 12;
        let dims: Vec<u64> = (0..n_dims).map(|i| i32_at(pos + 4 * i) as u64).collect();
        pos += 4 * n_dims;
        let name = String::from_utf8(b[pos..pos + name_len].to_vec()).unwrap();
        pos += name_len;
        let n = dims.iter().product::<u64>() as usize * if ty == 0 { 4 } else { 2 };
        out.insert(name, (dims, ty, b[pos..pos + n].to_vec()));
        pos += n;
    }
    (hp, vocab, out)
}

fn convert(dir: &Path, outtype: OutType) -> Result<(ImportReport, tempfile::TempDir), ImportError> {
    let out_dir = tempfile::tempdir().unwrap();
    let options = ImportOptions { outtype, ..Default::default() };
    let mut seen = 0;
    let report = super::super::import(dir, &out_dir.path().join("w.bin"), &options, &mut |p| {
        seen += 1;
        assert_eq!(p.index, seen);
    });
    let report = report?;
    assert_eq!(seen, report.tensors);
    Ok((report, out_dir))
}

fn f16_bits(bytes: &[u8]) -> Vec<u16> {
    bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
}

#[test]
fn tiny_model_converts_with_split_projections() {
    let vars = tiny_vars();
    let dir = model_dir(&vars, VOCAB);
    let (report, _out) = convert(dir.path(), OutType::F16).unwrap();
    assert_eq!((report.architecture, report.tensors), ("whisper", 50));
    let (hp, vocab, t) = tensors(&report.path);
    assert_eq!(hp, [5, 6, 4, 2, 1, 3, 4, 2, 1, 2, 1]);
    assert_eq!(vocab, [b"!".to_vec(), b"a".to_vec(), b" b".to_vec()]);
    assert_eq!(t.len(), 50);
    let source = |name: &str| f16_bits(&vars.iter().find(|v| v.name == name).unwrap().bytes);

    let qkv = source("encoder/layer_0/self_attention/linear_0/weight");
    let (dims, ty, data) = &t["encoder.blocks.0.attn.query.weight"];
    assert_eq!((dims.as_slice(), *ty), (&[4, 4][..], 1));
    assert_eq!(f16_bits(data), qkv[..16]);
    assert_eq!(f16_bits(&t["encoder.blocks.0.attn.key.weight"].2), qkv[16..32]);
    assert_eq!(f16_bits(&t["encoder.blocks.0.attn.value.weight"].2), qkv[32..]);
    assert!(!t.contains_key("encoder.blocks.0.attn.key.bias"));
    let bias = source("decoder/layer_0/self_attention/linear_0/bias");
    let (dims, ty, data) = &t["decoder.blocks.0.attn.value.bias"];
    assert_eq!((dims.as_slice(), *ty), (&[4][..], 0));
    let floats: Vec<f32> = data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(floats, bias[8..].iter().map(|&h| f16_to_f32(h)).collect::<Vec<_>>());
    let kv = source("decoder/layer_0/attention/linear_1/weight");
    assert_eq!(f16_bits(&t["decoder.blocks.0.cross_attn.value.weight"].2), kv[16..]);

    // Conv biases become f32 columns; positional embeddings stay f32 matrices.
    assert_eq!((t["encoder.conv1.bias"].0.as_slice(), t["encoder.conv1.bias"].1), (&[1, 4][..], 0));
    assert_eq!((t["encoder.conv1.weight"].0.as_slice(), t["encoder.conv1.weight"].1), (&[3, 2, 4][..], 1));
    assert_eq!(
        (t["decoder.positional_embedding"].0.as_slice(), t["decoder.positional_embedding"].1),
        (&[4, 3][..], 0)
    );
    assert_eq!(t["decoder.token_embedding.weight"].0, [4, 5]);

    let summary = ggml::read_summary(&report.path).unwrap();
    assert_eq!((summary.vocab, summary.tensors.len(), summary.bytes), (3, 50, report.bytes));
    let sha = hex::encode(Sha256::digest(std::fs::read(&report.path).unwrap()));
    assert_eq!(sha, report.sha256);
}

#[test]
fn f32_output_and_quantized_weights() {
    let mut vars = tiny_vars();
    // Make one projection int8 with a per-row scale: q / scale gives the weights.
    let w = vars.iter_mut().find(|v| v.name == "encoder/layer_0/ffn/linear_0/weight").unwrap();
    w.dtype = 1;
    w.bytes = (0..32).map(|i| (i as i8 - 16) as u8).collect();
    let scale: Vec<u8> = (0..8).flat_map(|r| (2.0f32 + r as f32).to_le_bytes()).collect();
    vars.push(Var {
        name: "encoder/layer_0/ffn/linear_0/weight_scale".into(),
        shape: vec![8],
        dtype: 0,
        bytes: scale,
    });
    let dir = model_dir(&vars, VOCAB);
    let (report, _out) = convert(dir.path(), OutType::F32).unwrap();
    let (hp, _, t) = tensors(&report.path);
    assert_eq!(hp[10], 0);
    assert!(t.values().all(|(_, ty, _)| *ty == 0));
    let floats: Vec<f32> = t["encoder.blocks.0.mlp.0.weight"]
        .2
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let expected: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) / (2.0 + (i / 4) as f32)).collect();
    assert_eq!(floats, expected);
}

#[test]
fn bad_models_fail_with_clear_errors_and_leave_nothing() {
    let check = |dir: &Path, text: &str| {
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("w.bin");
        let err = super::super::import(dir, &out, &ImportOptions::default(), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains(text), "{err}");
        assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0);
    };
    let dir = model_dir(&tiny_vars(), VOCAB);
    let bytes = std::fs::read(dir.path().join("model.bin")).unwrap();
    for cut in [0, 3, 10, 100, bytes.len() - 1] {
        std::fs::write(dir.path().join("model.bin"), &bytes[..cut]).unwrap();
        check(dir.path(), "not a valid CTranslate2 model");
    }
    let mut v9 = bytes.clone();
    v9[0] = 9;
    std::fs::write(dir.path().join("model.bin"), &v9).unwrap();
    check(dir.path(), "binary version 9 (supported: 4 to 6)");
    let mut extra = bytes.clone();
    extra.push(0);
    std::fs::write(dir.path().join("model.bin"), &extra).unwrap();
    check(dir.path(), "1 unexpected bytes");

    let other = model_dir(&[], VOCAB);
    std::fs::write(other.path().join("model.bin"), ct2_bytes("TransformerSpec", &tiny_vars(), &[])).unwrap();
    check(other.path(), "unsupported model architecture (CTranslate2 spec TransformerSpec)");

    let mut vars = tiny_vars();
    vars.retain(|v| v.name != "decoder/layer_0/attention/linear_2/bias");
    check(model_dir(&vars, VOCAB).path(), "decoder/layer_0/attention/linear_2/bias' is missing");

    let mut vars = tiny_vars();
    let b = vars.iter_mut().find(|v| v.name == "encoder/layer_0/self_attention/linear_0/bias").unwrap();
    b.bytes[10] = 0x3c;
    check(model_dir(&vars, VOCAB).path(), "non-zero key bias");

    check(model_dir(&tiny_vars(), "!\na\n<|endoftext|>\n").path(), "has 3 tokens but the model has 5");
    check(model_dir(&tiny_vars(), "!\na\nb\nc\nd\n").path(), "has no <|endoftext|> token");
    check(model_dir(&tiny_vars(), "!\n a\nb\n<|endoftext|>\nx\n").path(), "is not byte-level BPE");
}

#[test]
fn mel_filters_match_openai_bit_for_bit() {
    // sha256 of mel_80 / mel_128 in openai-whisper's assets/mel_filters.npz (as little-endian f32).
    let hash = |n| {
        hex::encode(Sha256::digest(
            mel::mel_filters(n).iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
        ))
    };
    assert_eq!(hash(80), "4f2701b1d287d74a0dc9871026e9519d98cb76426615f2539b0d151a0ae4ec2e");
    assert_eq!(hash(128), "2a5f9822897750e047c85dea37cc268d3be0ecfd23c28a5f10da129d99d05afe");
    assert!(mel::mel_filters(80)[0].is_sign_negative());
}

#[test]
fn byte_decoder_inverts_gpt2_byte_level_bpe() {
    let d = byte_decoder();
    assert_eq!(d.len(), 256);
    assert_eq!(d[&'Ġ'], b' ');
    assert_eq!(d[&'Ċ'], b'\n');
    assert_eq!(d[&'a'], b'a');
    assert_eq!(d.values().copied().collect::<std::collections::HashSet<u8>>().len(), 256);
}
