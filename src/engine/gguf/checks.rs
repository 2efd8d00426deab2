//! Tensor-layout and metadata consistency checks, and the ggml tensor type table.

use std::collections::HashMap;

use super::{describe, is_int, value_type_name, GgufError, Kv, TensorInfo, Val};
use super::{T_F32, T_I32, T_STRING, T_U32, T_U64};

/// Most blocks (layers) a model may claim; also the longest integer array kept.
pub(super) const MAX_BLOCK_COUNT: u64 = 4096;
/// Special token ids that must index into `tokenizer.ggml.tokens`.
const SPECIAL_TOKEN_KEYS: [&str; 4] = [
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.unknown_token_id",
];

/// `(name, elements per block, bytes per block)` for a ggml type id.
/// Ids 4, 5, 31-33 and 36-38 were removed from ggml and are rejected.
pub(super) fn ggml_type(id: u32) -> Option<(&'static str, u64, u64)> {
    Some(match id {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 18),
        3 => ("Q4_1", 32, 20),
        6 => ("Q5_0", 32, 22),
        7 => ("Q5_1", 32, 24),
        8 => ("Q8_0", 32, 34),
        9 => ("Q8_1", 32, 36),
        10 => ("Q2_K", 256, 84),
        11 => ("Q3_K", 256, 110),
        12 => ("Q4_K", 256, 144),
        13 => ("Q5_K", 256, 176),
        14 => ("Q6_K", 256, 210),
        15 => ("Q8_K", 256, 292),
        16 => ("IQ2_XXS", 256, 66),
        17 => ("IQ2_XS", 256, 74),
        18 => ("IQ3_XXS", 256, 98),
        19 => ("IQ1_S", 256, 50),
        20 => ("IQ4_NL", 32, 18),
        21 => ("IQ3_S", 256, 110),
        22 => ("IQ2_S", 256, 82),
        23 => ("IQ4_XS", 256, 136),
        24 => ("I8", 1, 1),
        25 => ("I16", 1, 2),
        26 => ("I32", 1, 4),
        27 => ("I64", 1, 8),
        28 => ("F64", 1, 8),
        29 => ("IQ1_M", 256, 56),
        30 => ("BF16", 1, 2),
        34 => ("TQ1_0", 256, 54),
        35 => ("TQ2_0", 256, 66),
        39 => ("MXFP4", 32, 17),
        40 => ("NVFP4", 64, 36),
        41 => ("Q1_0", 128, 18),
        42 => ("Q2_0", 64, 18),
        _ => return None,
    })
}

/// Every tensor must be aligned, inside the file, and not overlap another.
pub(super) fn check_layout(
    tensors: &[TensorInfo],
    data_offset: u64,
    alignment: u64,
    file_size: u64,
) -> Result<(), GgufError> {
    for t in tensors {
        let (offset, size) = (t.offset, t.size);
        if offset % alignment != 0 {
            bail!(Tensor, t.name, "has data offset {offset}, not a multiple of the alignment {alignment}");
        }
        let start = data_offset.saturating_add(offset);
        if start > file_size || size > file_size - start {
            bail!(
                Tensor,
                t.name,
                "extends past end of file (needs {size} bytes at offset {start}, file is {file_size} bytes)"
            );
        }
    }
    let mut order: Vec<&TensorInfo> = tensors.iter().collect();
    order.sort_by_key(|t| t.offset);
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.offset + a.size > b.offset {
            let (a_end, b_end) = (a.offset + a.size, b.offset + b.size);
            bail!(
                Tensor,
                b.name,
                "overlaps tensor '{}' (data {}..{b_end} and {}..{a_end})",
                a.name,
                b.offset,
                a.offset
            );
        }
    }
    Ok(())
}

pub(super) struct Checked {
    pub(super) architecture: String,
    pub(super) block_count: Option<u64>,
    pub(super) context_length: Option<u64>,
}

/// A hyper-parameter given either once or per layer.
struct PerLayer {
    values: Vec<u64>,
    is_array: bool,
}

impl PerLayer {
    fn get(&self, layer: usize) -> u64 {
        self.values[if self.is_array { layer } else { 0 }]
    }
}

/// `N` for tensor names of the form `blk.N.*`.
fn block_index(name: &str) -> Option<u64> {
    let (n, _) = name.strip_prefix("blk.")?.split_once('.')?;
    let digits = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| n.parse().unwrap_or(u64::MAX))
}

type Kvs = HashMap<String, Kv>;

fn scalar(kvs: &Kvs, key: &str, min: u64, max: u64) -> Result<Option<u64>, GgufError> {
    match kvs.get(key) {
        None => Ok(None),
        Some(Kv { val: Val::Int(v), .. }) => match u64::try_from(*v) {
            Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => bail!(Metadata, key, "is {v}, outside the sane range {min}..={max}"),
        },
        Some(kv) => bail!(Metadata, key, "must be an integer but is {}", describe(kv)),
    }
}

/// A scalar or per-layer array of integers in `0..=max`; arrays must have one
/// value per block.
fn per_layer(kvs: &Kvs, key: &str, max: u64, blocks: Option<u64>) -> Result<Option<PerLayer>, GgufError> {
    let Some(kv @ Kv { val: Val::Array { elem, len, ints }, .. }) = kvs.get(key) else {
        let value = scalar(kvs, key, 0, max)?;
        return Ok(value.map(|v| PerLayer { values: vec![v], is_array: false }));
    };
    let Some(ints) = ints.as_ref().filter(|_| is_int(*elem) && *len > 0) else {
        let kind = describe(kv);
        bail!(Metadata, key, "must be 1 to {MAX_BLOCK_COUNT} integers but is {kind} of {len}");
    };
    if let Some(b) = blocks.filter(|&b| b != *len) {
        bail!(Metadata, key, "has {len} per-layer values but the block count is {b}");
    }
    let mut values = Vec::with_capacity(ints.len());
    for (layer, &v) in ints.iter().enumerate() {
        match u64::try_from(v) {
            Ok(v) if v <= max => values.push(v),
            _ => bail!(Metadata, key, "is {v} for layer {layer}, outside the sane range 0..={max}"),
        }
    }
    Ok(Some(PerLayer { values, is_array: true }))
}

/// Length of a tokenizer array, checking its element type.
fn tokenizer_array(kvs: &Kvs, key: &str, elems: &[u32]) -> Result<Option<u64>, GgufError> {
    match kvs.get(key) {
        None => Ok(None),
        Some(Kv { val: Val::Array { elem, len, .. }, .. }) if elems.contains(elem) => Ok(Some(*len)),
        Some(kv) => {
            let expected = value_type_name(elems[0]);
            bail!(Metadata, key, "must be an array of {expected} but is {}", describe(kv))
        }
    }
}

pub(super) fn check_metadata(kvs: &Kvs, tensors: &[TensorInfo]) -> Result<Checked, GgufError> {
    const ARCH: &str = "general.architecture";
    let arch = match kvs.get(ARCH) {
        None => bail!(Metadata, ARCH, "is missing"),
        Some(Kv { val: Val::Str(Some(s)), .. }) => s.clone(),
        Some(Kv { ty: T_STRING, .. }) => bail!(Metadata, ARCH, "is not a short UTF-8 string"),
        Some(kv) => bail!(Metadata, ARCH, "must be a string but is {}", describe(kv)),
    };
    if arch.is_empty() || arch.len() > 64 || !arch.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(Metadata, ARCH, "is {arch:?}, which is not a valid architecture name");
    }

    let key = format!("{arch}.block_count");
    let block_count = match kvs.get(&key) {
        None => None,
        Some(Kv { ty: T_U32 | T_U64, .. }) => scalar(kvs, &key, 1, MAX_BLOCK_COUNT)?,
        Some(kv) => bail!(Metadata, key, "must be a u32 or u64 but is {}", describe(kv)),
    };
    let max_block = tensors.iter().filter_map(|t| block_index(&t.name)).max();
    if let (Some(count), Some(max)) = (block_count, max_block) {
        let present = max.saturating_add(1);
        if present != count {
            bail!(Metadata, key, "is {count} but the file has tensors for {present} blocks");
        }
    }

    let context_length = scalar(kvs, &format!("{arch}.context_length"), 1, 1 << 24)?;
    let embd_key = format!("{arch}.embedding_length");
    let embedding_length = scalar(kvs, &embd_key, 1, 1 << 20)?;
    // Zero is legitimate for these: recurrent models (Mamba, RWKV) write 0
    // heads and feed-forward size, hybrid models 0 KV heads for SSM layers.
    per_layer(kvs, &format!("{arch}.feed_forward_length"), 1 << 20, block_count)?;
    let head_key = format!("{arch}.attention.head_count");
    let kv_key = format!("{arch}.attention.head_count_kv");
    let heads = per_layer(kvs, &head_key, 1 << 16, block_count)?;
    let kv_heads = per_layer(kvs, &kv_key, 1 << 16, block_count)?;
    if let (Some(h), Some(k)) = (&heads, &kv_heads) {
        let layers = match (h.is_array, k.is_array) {
            (false, false) => 1,
            (true, false) => h.values.len(),
            (false, true) => k.values.len(),
            (true, true) => h.values.len().min(k.values.len()),
        };
        for layer in 0..layers {
            let (hv, kv) = (h.get(layer), k.get(layer));
            let at = if h.is_array || k.is_array { format!(" for layer {layer}") } else { String::new() };
            if hv > 0 && kv == 0 && !h.is_array && !k.is_array {
                bail!(Metadata, kv_key, "is 0 but {head_key} is {hv}");
            }
            if hv > 0 && kv > 0 && hv % kv != 0 {
                bail!(Metadata, kv_key, "is {kv}{at}, which does not divide {head_key} ({hv})");
            }
        }
    }
    let token_embd = tensors.iter().find(|t| t.name == "token_embd.weight");
    if let (Some(e), Some(t)) = (embedding_length, token_embd) {
        if t.dims[0] != e {
            let dims = &t.dims;
            bail!(Metadata, embd_key, "is {e} but tensor 'token_embd.weight' has shape {dims:?}");
        }
    }

    let tokens = tokenizer_array(kvs, "tokenizer.ggml.tokens", &[T_STRING])?;
    let scores = tokenizer_array(kvs, "tokenizer.ggml.scores", &[T_F32])?;
    let types = tokenizer_array(kvs, "tokenizer.ggml.token_type", &[T_I32, T_U32])?;
    let arrays = [
        ("tokenizer.ggml.tokens", tokens),
        ("tokenizer.ggml.scores", scores),
        ("tokenizer.ggml.token_type", types),
    ];
    let mut present = arrays.iter().filter_map(|&(k, n)| Some((k, n?)));
    if let Some((first, n)) = present.next() {
        if let Some((other, m)) = present.find(|&(_, m)| m != n) {
            bail!(Metadata, other, "has {m} entries but {first} has {n}");
        }
    }
    if tokens.is_some_and(|n| n > i32::MAX as u64) {
        bail!(Metadata, "tokenizer.ggml.tokens", "has more tokens than llama.cpp can index");
    }
    for key in SPECIAL_TOKEN_KEYS {
        match (kvs.get(key), tokens) {
            (None, _) => {}
            (Some(Kv { val: Val::Int(id), .. }), Some(n)) if *id >= i128::from(n) => {
                bail!(Metadata, key, "is {id} but the vocabulary has only {n} tokens")
            }
            (Some(Kv { val: Val::Int(id), .. }), _) if *id < 0 => bail!(Metadata, key, "is negative ({id})"),
            (Some(Kv { val: Val::Int(_), .. }), _) => {}
            (Some(kv), _) => bail!(Metadata, key, "must be an integer but is {}", describe(kv)),
        }
    }

    Ok(Checked { architecture: arch, block_count, context_length })
}
