use super::checks::ggml_type;
use super::reader::MAX_ENTRIES;
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

/// A small valid GGUF file's bytes, for other modules' tests.
pub(crate) fn sample_file() -> Vec<u8> {
    model().build()
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
