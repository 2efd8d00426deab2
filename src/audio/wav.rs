//! WAV (RIFF/WAVE) parsing and sample decoding.

use super::{AudioError, AudioLimits, MAX_CHANNELS, MAX_RATE, MIN_RATE};
use std::ops::Range;

/// How the samples in a WAV file are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Unsigned 8-bit PCM.
    PcmU8,
    PcmI16,
    PcmI24,
    PcmI32,
    F32,
    F64,
    /// G.711 A-law (8 bits).
    ALaw,
    /// G.711 µ-law (8 bits).
    MuLaw,
}

impl Encoding {
    /// Bytes per sample in the file.
    pub fn bytes(self) -> usize {
        match self {
            Encoding::PcmU8 | Encoding::ALaw | Encoding::MuLaw => 1,
            Encoding::PcmI16 => 2,
            Encoding::PcmI24 => 3,
            Encoding::PcmI32 | Encoding::F32 => 4,
            Encoding::F64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::PcmU8 => "PCM u8",
            Encoding::PcmI16 => "PCM s16",
            Encoding::PcmI24 => "PCM s24",
            Encoding::PcmI32 => "PCM s32",
            Encoding::F32 => "float32",
            Encoding::F64 => "float64",
            Encoding::ALaw => "A-law",
            Encoding::MuLaw => "µ-law",
        }
    }
}

/// What a WAV header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub encoding: Encoding,
    /// Sample frames (one sample per channel) in the data chunk.
    pub frames: usize,
}

impl WavInfo {
    pub fn seconds(&self) -> f64 {
        self.frames as f64 / f64::from(self.sample_rate)
    }
}

/// Decoded audio: interleaved samples, nominally in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct WavAudio {
    pub info: WavInfo,
    pub samples: Vec<f32>,
}

/// Reads a WAV header without decoding the samples.
pub fn probe_wav(bytes: &[u8]) -> Result<WavInfo, AudioError> {
    parse(bytes).map(|(info, _)| info)
}

/// Decodes a whole WAV file to interleaved `f32` samples, checking `limits`
/// before decoding.
pub fn decode_wav(bytes: &[u8], limits: &AudioLimits) -> Result<WavAudio, AudioError> {
    if bytes.len() > limits.max_bytes {
        return Err(AudioError::TooLarge { bytes: bytes.len(), max_bytes: limits.max_bytes });
    }
    let (info, data) = parse(bytes)?;
    if info.seconds() > limits.max_seconds {
        return Err(AudioError::TooLong { seconds: info.seconds(), max_seconds: limits.max_seconds });
    }
    let width = info.encoding.bytes();
    let used = info.frames * usize::from(info.channels) * width;
    let raw = &bytes[data.start..data.start + used];
    let samples = decode_samples(raw, info.encoding);
    Ok(WavAudio { info, samples })
}

/// Averages interleaved channels into one.
pub fn to_mono(samples: &[f32], channels: u16) -> Vec<f32> {
    let channels = usize::from(channels.max(1));
    if channels == 1 {
        return samples.to_vec();
    }
    let scale = 1.0 / channels as f32;
    samples.chunks_exact(channels).map(|frame| frame.iter().sum::<f32>() * scale).collect()
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The tail of a KSDATAFORMAT_SUBTYPE_* GUID; the first two bytes are the format tag.
const SUBTYPE_TAIL: [u8; 14] =
    [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71];
const EXTENSIBLE: u16 = 0xFFFE;

/// Parses the header; returns the info and the byte range of the data chunk.
fn parse(bytes: &[u8]) -> Result<(WavInfo, Range<usize>), AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    if bytes.len() < 12 {
        let head = b"RIFF\0\0\0\0WAVE";
        let prefix = bytes.iter().zip(head).enumerate().all(|(i, (b, h))| (4..8).contains(&i) || b == h);
        if prefix {
            return Err(AudioError::truncated(format!("only {} bytes", bytes.len())));
        }
        return Err(AudioError::UnsupportedFormat { found: sniff(bytes).into() });
    }
    match (&bytes[0..4], &bytes[8..12]) {
        (b"RIFF", b"WAVE") => {}
        (b"RIFF", kind) => {
            let kind = String::from_utf8_lossy(kind).trim().to_string();
            return Err(AudioError::UnsupportedFormat { found: format!("a RIFF file of type '{kind}'") });
        }
        _ => return Err(AudioError::UnsupportedFormat { found: sniff(bytes).into() }),
    }
    let mut fmt: Option<Fmt> = None;
    let mut pos = 12usize;
    loop {
        if pos + 8 > bytes.len() {
            let what = if fmt.is_none() { "fmt and data chunks" } else { "data chunk" };
            return Err(if pos == bytes.len() {
                AudioError::corrupt(format!("no {what}"))
            } else {
                AudioError::truncated(format!("the file ends inside a chunk header before the {what}"))
            });
        }
        let id = &bytes[pos..pos + 4];
        let size = u32_at(bytes, pos + 4);
        let body = pos + 8;
        let remaining = bytes.len() - body;
        match id {
            b"fmt " => {
                if (size as usize) > remaining {
                    return Err(AudioError::truncated("the file ends inside the fmt chunk"));
                }
                fmt = Some(parse_fmt(&bytes[body..body + size as usize])?);
            }
            b"data" => {
                let Some(fmt) = fmt else {
                    return Err(AudioError::corrupt("the data chunk comes before the fmt chunk"));
                };
                // u32::MAX marks a stream whose length was unknown when the header was written.
                let len = if size == u32::MAX { remaining } else { size as usize };
                if len > remaining {
                    return Err(AudioError::truncated(format!(
                        "the data chunk announces {len} bytes but only {remaining} follow"
                    )));
                }
                let frame = fmt.encoding.bytes() * usize::from(fmt.channels);
                let info = WavInfo {
                    sample_rate: fmt.sample_rate,
                    channels: fmt.channels,
                    encoding: fmt.encoding,
                    frames: len / frame,
                };
                if info.frames == 0 {
                    return Err(AudioError::Empty);
                }
                return Ok((info, body..body + len));
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        pos = body.saturating_add(size as usize).saturating_add(size as usize & 1);
        if pos > bytes.len() {
            return Err(AudioError::truncated(format!(
                "chunk '{}' runs past the end of the file before the data chunk",
                String::from_utf8_lossy(id).escape_debug()
            )));
        }
    }
}

struct Fmt {
    encoding: Encoding,
    channels: u16,
    sample_rate: u32,
}

fn parse_fmt(b: &[u8]) -> Result<Fmt, AudioError> {
    if b.len() < 16 {
        return Err(AudioError::corrupt(format!("fmt chunk of {} bytes (needs at least 16)", b.len())));
    }
    let mut tag = u16_at(b, 0);
    let channels = u16_at(b, 2);
    let sample_rate = u32_at(b, 4);
    let block_align = u16_at(b, 12);
    let bits = u16_at(b, 14);
    if tag == EXTENSIBLE {
        if b.len() < 40 || u16_at(b, 16) < 22 {
            return Err(AudioError::corrupt("WAVE_FORMAT_EXTENSIBLE fmt chunk is shorter than 40 bytes"));
        }
        let valid_bits = u16_at(b, 18);
        if valid_bits > bits {
            return Err(AudioError::corrupt(format!("{valid_bits} valid bits in a {bits}-bit container")));
        }
        if b[26..40] != SUBTYPE_TAIL {
            return Err(AudioError::encoding("an unknown WAVE_FORMAT_EXTENSIBLE sub-format"));
        }
        tag = u16_at(b, 24);
    }
    let encoding = match (tag, bits) {
        (1, 8) => Encoding::PcmU8,
        (1, 16) => Encoding::PcmI16,
        (1, 24) => Encoding::PcmI24,
        (1, 32) => Encoding::PcmI32,
        (3, 32) => Encoding::F32,
        (3, 64) => Encoding::F64,
        (6, 8) => Encoding::ALaw,
        (7, 8) => Encoding::MuLaw,
        (1, _) => return Err(AudioError::encoding(format!("{bits}-bit PCM samples"))),
        (3, _) => return Err(AudioError::encoding(format!("{bits}-bit float samples"))),
        (6 | 7, _) => return Err(AudioError::encoding(format!("{bits}-bit G.711 samples"))),
        _ => return Err(AudioError::encoding(format!("{} (format tag {tag:#06x})", codec_name(tag)))),
    };
    if channels == 0 {
        return Err(AudioError::corrupt("the fmt chunk says 0 channels"));
    }
    if channels > MAX_CHANNELS {
        return Err(AudioError::encoding(format!("{channels} channels")));
    }
    if sample_rate == 0 {
        return Err(AudioError::corrupt("the fmt chunk says a sample rate of 0 Hz"));
    }
    if !(MIN_RATE..=MAX_RATE).contains(&sample_rate) {
        return Err(AudioError::encoding(format!("a sample rate of {sample_rate} Hz")));
    }
    let frame = encoding.bytes() * usize::from(channels);
    if usize::from(block_align) != frame {
        return Err(AudioError::corrupt(format!(
            "block align {block_align} does not match {channels} channel(s) of {} byte(s)",
            encoding.bytes()
        )));
    }
    Ok(Fmt { encoding, channels, sample_rate })
}

fn codec_name(tag: u16) -> &'static str {
    match tag {
        0x0002 => "Microsoft ADPCM",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG audio",
        0x0055 => "MP3",
        0x00FF | 0x1610 => "AAC",
        0x0160..=0x0163 => "Windows Media Audio",
        0x2000 => "AC-3",
        0x674F..=0x6771 => "Vorbis",
        0x704F => "Opus",
        0xF1AC => "FLAC",
        _ => "an unknown codec",
    }
}

/// Names the format of bytes that are not WAV, for the error message.
fn sniff(b: &[u8]) -> &'static str {
    let starts = |m: &[u8]| b.starts_with(m);
    if starts(b"OggS") {
        "Ogg audio (Vorbis/Opus)"
    } else if starts(b"fLaC") {
        "FLAC"
    } else if starts(b"ID3") || (b.len() >= 2 && b[0] == 0xFF && b[1] & 0xE0 == 0xE0) {
        "MPEG audio (MP3/AAC)"
    } else if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        "WebM/Matroska"
    } else if b.len() >= 8 && &b[4..8] == b"ftyp" {
        "MP4/M4A"
    } else if starts(b"FORM") {
        "AIFF"
    } else if starts(b"RIFX") {
        "big-endian WAV (RIFX)"
    } else if starts(b"RF64") || starts(b"BW64") {
        "RF64 WAV"
    } else if starts(b"#!AMR") {
        "AMR"
    } else if starts(b"caff") {
        "CAF"
    } else {
        "data without a RIFF/WAVE header"
    }
}

fn decode_samples(raw: &[u8], encoding: Encoding) -> Vec<f32> {
    const I16: f32 = 1.0 / 32_768.0;
    match encoding {
        Encoding::PcmU8 => raw.iter().map(|&v| (f32::from(v) - 128.0) / 128.0).collect(),
        Encoding::PcmI16 => {
            raw.chunks_exact(2).map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) * I16).collect()
        }
        Encoding::PcmI24 => raw
            .chunks_exact(3)
            .map(|c| (i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8) as f32 / 8_388_608.0)
            .collect(),
        Encoding::PcmI32 => raw
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32 / 2_147_483_648.0)
            .collect(),
        Encoding::F32 => {
            raw.chunks_exact(4).map(|c| finite(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
        }
        Encoding::F64 => raw
            .chunks_exact(8)
            .map(|c| finite(f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32))
            .collect(),
        Encoding::ALaw => raw.iter().map(|&v| f32::from(alaw(v)) * I16).collect(),
        Encoding::MuLaw => raw.iter().map(|&v| f32::from(mulaw(v)) * I16).collect(),
    }
}

/// NaN and infinities would poison every later stage; they become silence.
fn finite(v: f32) -> f32 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// G.711 A-law to 16-bit linear.
fn alaw(v: u8) -> i16 {
    let v = v ^ 0x55;
    let exponent = (v >> 4) & 0x07;
    let mantissa = i16::from(v & 0x0F);
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    if v & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// G.711 µ-law to 16-bit linear.
fn mulaw(v: u8) -> i16 {
    let v = !v;
    let exponent = (v >> 4) & 0x07;
    let mantissa = i16::from(v & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if v & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
pub(super) mod g711 {
    pub fn alaw(v: u8) -> i16 {
        super::alaw(v)
    }
    pub fn mulaw(v: u8) -> i16 {
        super::mulaw(v)
    }
}
