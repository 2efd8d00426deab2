use super::*;
use crate::engine::gguf::validate;

fn tiny_model() -> GgufBuilder {
    let mut b = GgufBuilder::new();
    b.kv("general.architecture", Value::Str("bert".into()));
    b.kv("general.name", Value::Str("tiny".into()));
    b.kv("bert.block_count", Value::U32(1));
    b.kv("bert.embedding_length", Value::U32(4));
    b.kv("bert.attention.layer_norm_epsilon", Value::F32(1e-12));
    b.kv("bert.attention.causal", Value::Bool(false));
    b.kv("tokenizer.ggml.tokens", Value::StrArray(vec!["[PAD]".into(), "▁a".into(), "b".into()]));
    b.kv("tokenizer.ggml.token_type", Value::I32Array(vec![3, 1, 1]));
    b.kv("tokenizer.ggml.padding_token_id", Value::U32(0));
    b.kv("bert.context_length", Value::U32(99)); // replaced below: the last value wins
    b.kv("bert.context_length", Value::U32(8));
    b.tensor(TensorSpec { name: "token_embd.weight".into(), dims: vec![4, 3], ty: TensorType::F16 }).unwrap();
    b.tensor(TensorSpec { name: "blk.0.attn_q.bias".into(), dims: vec![5], ty: TensorType::F32 }).unwrap();
    b
}

fn values(n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| i as f32 * scale).collect()
}

#[test]
fn round_trip_through_the_validator() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny.gguf");
    let b = tiny_model();
    let written = b
        .write(&out, |i, spec| Ok(values(spec.elements() as usize, if i == 0 { 0.5 } else { -1.0 })))
        .unwrap();

    let summary = validate(&out).unwrap();
    assert_eq!((summary.version, summary.architecture.as_str()), (3, "bert"));
    assert_eq!((summary.tensor_count, summary.kv_count), (2, 10));
    assert_eq!((summary.block_count, summary.context_length), (Some(1), Some(8)));
    assert_eq!(summary.name.as_deref(), Some("tiny"));
    assert_eq!(summary.data_offset % ALIGNMENT, 0);

    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(written.bytes, bytes.len() as u64);
    assert_eq!(written.sha256, crate::engine::gguf::sha256_file(&out).unwrap());
    // token_embd: 12 f16 values padded to 32 bytes, then 5 f32 values padded to 32.
    assert_eq!(bytes.len() as u64, summary.data_offset + 32 + 32);
    let data = &bytes[summary.data_offset as usize..];
    let f16s: Vec<f32> = data[..24].chunks(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect();
    assert_eq!(f16s, values(12, 0.5));
    assert!(data[24..32].iter().all(|&b| b == 0));
    let f32s: Vec<f32> = data[32..52].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(f32s, values(5, -1.0));
    assert!(!dir.path().join("tiny.gguf.partial").exists());

    // Deterministic: the same input gives the same bytes.
    let again = dir.path().join("again.gguf");
    let second =
        b.write(&again, |i, spec| Ok(values(spec.elements() as usize, if i == 0 { 0.5 } else { -1.0 })));
    assert_eq!(second.unwrap().sha256, written.sha256);
}

#[test]
fn wrong_data_length_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bad.gguf");
    let err = tiny_model().write(&out, |_, _| Ok(vec![1.0; 3])).unwrap_err();
    assert!(err.to_string().contains("has 3 values but its shape needs 12"), "{err}");
    assert!(!out.exists());
    assert!(!dir.path().join("bad.gguf.partial").exists());
}

#[test]
fn an_invalid_result_is_not_renamed_into_place() {
    // token_embd's first dimension disagrees with embedding_length: the validator refuses.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("inconsistent.gguf");
    let mut b = tiny_model();
    b.kv("bert.embedding_length", Value::U32(7));
    let err = b.write(&out, |_, spec| Ok(vec![0.0; spec.elements() as usize])).unwrap_err();
    assert!(matches!(err, ImportError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("embedding_length"), "{err}");
    assert!(!out.exists());
}

#[test]
fn bad_tensor_specs_are_refused() {
    let mut b = tiny_model();
    let spec = |name: &str, dims: Vec<u64>| TensorSpec { name: name.into(), dims, ty: TensorType::F32 };
    let err = b.tensor(spec("token_embd.weight", vec![1])).unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");
    assert!(b.tensor(spec(&"x".repeat(64), vec![1])).is_err());
    assert!(b.tensor(spec("zero", vec![4, 0])).is_err());
    assert!(b.tensor(spec("five", vec![1, 1, 1, 1, 1])).is_err());
    assert!(b.tensor(spec("huge", vec![u64::MAX, 2])).is_err());
    assert_eq!(b.tensors.len(), 2);
}

#[test]
fn f16_conversion_rounds_to_nearest_even() {
    let cases: [(f32, u16); 14] = [
        (0.0, 0x0000),
        (-0.0, 0x8000),
        (1.0, 0x3c00),
        (-2.0, 0xc000),
        (1.0 / 3.0, 0x3555),
        (65504.0, 0x7bff),
        (65519.0, 0x7bff),
        (65520.0, 0x7c00), // halfway to the next (infinite) value: rounds to even
        (1e6, 0x7c00),
        (f32::INFINITY, 0x7c00),
        (6.103_515_6e-5, 0x0400), // smallest normal
        (5.960_464_5e-8, 0x0001), // smallest subnormal
        (2.980_232_2e-8, 0x0000), // half of it: ties to even (zero)
        (4.470_348_4e-8, 0x0001), // 0.75 of it: rounds up
    ];
    for (x, h) in cases {
        assert_eq!(f32_to_f16(x), h, "{x:e}");
    }
    assert_eq!(f32_to_f16(1.0 + f32::EPSILON), 0x3c00);
    assert_eq!(f32_to_f16(1.000_488_3), 0x3c00); // exactly halfway between 1 and the next: even
    assert_eq!(f32_to_f16(1.000_488_4), 0x3c01);
    assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
    for h in (0u16..=0xffff).filter(|h| h & 0x7c00 != 0x7c00) {
        assert_eq!(f32_to_f16(f16_to_f32(h)), h, "{h:#06x}");
    }
    assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
    assert_eq!(f16_to_f32(0xfbff), -65504.0);
}
