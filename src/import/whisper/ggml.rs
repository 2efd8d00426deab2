//! whisper.cpp's legacy ggml model file: writing, and reading back to check it.
//!
//! Layout (little-endian `i32` unless noted): magic `0x67676d6c`, eleven
//! hyper-parameters ([`Hparams`]), the mel filter bank (`n_mel`, `n_fft`, then
//! `n_mel × n_fft` f32), the vocabulary (count, then per token its byte length
//! and bytes), then tensors until the end of the file: `n_dims`, name length,
//! type (0 f32, 1 f16), `n_dims` sizes fastest-varying first, the name, the data.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

pub const MAGIC: u32 = 0x6767_6d6c;
const MAX_DIMS: i32 = 4;
const MAX_NAME: i32 = 256;

/// The header's hyper-parameters, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    /// 0: all f32; 1: matrices f16.
    pub ftype: i32,
}

impl Hparams {
    fn to_array(self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    fn from_array(a: [i32; 11]) -> Hparams {
        let [n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype] =
            a;
        Hparams {
            n_vocab,
            n_audio_ctx,
            n_audio_state,
            n_audio_head,
            n_audio_layer,
            n_text_ctx,
            n_text_state,
            n_text_head,
            n_text_layer,
            n_mels,
            ftype,
        }
    }
}

/// Writes the file front to back, hashing as it goes.
pub struct GgmlWriter {
    out: BufWriter<File>,
    hash: Sha256,
    bytes: u64,
}

impl GgmlWriter {
    pub fn create(path: &Path) -> io::Result<GgmlWriter> {
        Ok(GgmlWriter {
            out: BufWriter::with_capacity(1 << 20, File::create(path)?),
            hash: Sha256::new(),
            bytes: 0,
        })
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.hash.update(b);
        self.bytes += b.len() as u64;
        Ok(())
    }

    fn i32(&mut self, v: i32) -> io::Result<()> {
        self.put(&v.to_le_bytes())
    }

    pub fn header(&mut self, hp: &Hparams, mel: &[f32], n_freqs: usize, vocab: &[Vec<u8>]) -> io::Result<()> {
        self.put(&MAGIC.to_le_bytes())?;
        hp.to_array().into_iter().try_for_each(|v| self.i32(v))?;
        self.i32(hp.n_mels)?;
        self.i32(n_freqs as i32)?;
        self.f32s(mel)?;
        self.i32(vocab.len() as i32)?;
        for token in vocab {
            self.i32(token.len() as i32)?;
            self.put(token)?;
        }
        Ok(())
    }

    /// A tensor; `dims` fastest-varying first; `f16` data as bit patterns.
    pub fn tensor(&mut self, name: &str, dims: &[u64], data: TensorData<'_>) -> io::Result<()> {
        self.i32(dims.len() as i32)?;
        self.i32(name.len() as i32)?;
        self.i32(match data {
            TensorData::F32(_) => 0,
            TensorData::F16(_) => 1,
        })?;
        dims.iter().try_for_each(|&d| self.i32(d as i32))?;
        self.put(name.as_bytes())?;
        match data {
            TensorData::F32(v) => self.f32s(v),
            TensorData::F16(v) => {
                let bytes: Vec<u8> = v.iter().flat_map(|h| h.to_le_bytes()).collect();
                self.put(&bytes)
            }
        }
    }

    fn f32s(&mut self, v: &[f32]) -> io::Result<()> {
        for chunk in v.chunks(64 * 1024) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.put(&bytes)?;
        }
        Ok(())
    }

    /// Flushes and syncs; returns the size and sha256.
    pub fn finish(self) -> io::Result<(u64, String)> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((self.bytes, hex::encode(self.hash.finalize())))
    }
}

#[derive(Debug, Clone, Copy)]
pub enum TensorData<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
}

/// What a structurally valid file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct GgmlSummary {
    pub hparams: Hparams,
    pub vocab: usize,
    /// Name, dims (fastest-varying first) and type (0 f32, 1 f16) of each tensor.
    pub tensors: Vec<(String, Vec<u64>, i32)>,
    pub bytes: u64,
}

/// Reads a whisper ggml file's structure and checks every size against the
/// file: the header, the mel filters, the vocabulary and each tensor's data.
pub fn read_summary(path: &Path) -> Result<GgmlSummary, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut r = Reader { inner: BufReader::new(file), pos: 0, len };
    if r.i32()? as u32 != MAGIC {
        return Err("not a whisper ggml file (bad magic)".into());
    }
    let mut hp = [0i32; 11];
    for v in &mut hp {
        *v = r.i32()?;
    }
    let hparams = Hparams::from_array(hp);
    if hp[..10].iter().any(|&v| v <= 0) || !(0..=1).contains(&hparams.ftype) {
        return Err(format!("implausible hyper-parameters {hp:?}"));
    }
    let (n_mel, n_fft) = (r.i32()?, r.i32()?);
    if n_mel != hparams.n_mels || n_fft <= 0 {
        return Err(format!("mel filters of {n_mel}x{n_fft} for {} mels", hparams.n_mels));
    }
    r.skip(n_mel as u64 * n_fft as u64 * 4)?;
    let vocab = r.i32()?;
    if vocab < 0 || vocab > hparams.n_vocab {
        return Err(format!("{vocab} vocabulary entries for n_vocab {}", hparams.n_vocab));
    }
    for _ in 0..vocab {
        let n = r.i32()?;
        if !(0..=1024).contains(&n) {
            return Err(format!("a vocabulary entry of {n} bytes"));
        }
        r.skip(n as u64)?;
    }
    let mut tensors = Vec::new();
    while r.pos < len {
        let (n_dims, name_len, ty) = (r.i32()?, r.i32()?, r.i32()?);
        if !(1..=MAX_DIMS).contains(&n_dims) || !(1..=MAX_NAME).contains(&name_len) || !(0..=1).contains(&ty)
        {
            return Err(format!(
                "bad tensor header ({n_dims} dims, name of {name_len}, type {ty}) at {}",
                r.pos
            ));
        }
        let mut dims = Vec::new();
        for _ in 0..n_dims {
            let d = r.i32()?;
            if d <= 0 {
                return Err(format!("a tensor dimension of {d} at {}", r.pos));
            }
            dims.push(d as u64);
        }
        let mut name = vec![0u8; name_len as usize];
        r.read(&mut name)?;
        let name = String::from_utf8(name).map_err(|_| "a tensor name that is not UTF-8".to_string())?;
        let size = if ty == 0 { 4 } else { 2 };
        let bytes = dims.iter().try_fold(size, |a: u64, &d| a.checked_mul(d));
        let bytes = bytes.ok_or_else(|| format!("tensor {name}: dimensions {dims:?} overflow"))?;
        r.skip(bytes).map_err(|e| format!("tensor {name}: {e}"))?;
        tensors.push((name, dims, ty));
    }
    Ok(GgmlSummary { hparams, vocab: vocab as usize, tensors, bytes: len })
}

struct Reader {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
}

impl Reader {
    fn read(&mut self, buf: &mut [u8]) -> Result<(), String> {
        if self.pos + buf.len() as u64 > self.len {
            return Err(format!("truncated at byte {} of {}", self.pos, self.len));
        }
        self.inner.read_exact(buf).map_err(|e| e.to_string())?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn i32(&mut self) -> Result<i32, String> {
        let mut b = [0u8; 4];
        self.read(&mut b)?;
        Ok(i32::from_le_bytes(b))
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        if self.pos.checked_add(n).is_none_or(|end| end > self.len) {
            return Err(format!("truncated: {n} bytes needed at byte {} of {}", self.pos, self.len));
        }
        self.inner.seek_relative(n as i64).map_err(|e| e.to_string())?;
        self.pos += n;
        Ok(())
    }
}
