//! WAV encoding (16-bit PCM) for synthesized speech.

/// The size fields of a header written before the length is known (a stream).
/// Decoders here, and most players, read to the end of the input instead.
pub const STREAMING_DATA_LEN: u32 = u32::MAX;

/// A sample that can be written as 16-bit PCM.
pub trait WavSample: Copy {
    fn to_i16(self) -> i16;
}

impl WavSample for i16 {
    fn to_i16(self) -> i16 {
        self
    }
}

impl WavSample for f32 {
    fn to_i16(self) -> i16 {
        f32_to_i16(self)
    }
}

/// `[-1, 1]` to 16-bit, rounding to nearest and clipping (NaN is silence).
pub fn f32_to_i16(v: f32) -> i16 {
    if v.is_nan() {
        return 0;
    }
    (v * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16
}

/// A 44-byte header for 16-bit PCM with `data_bytes` of samples; pass
/// [`STREAMING_DATA_LEN`] when the length is not known yet.
pub fn wav_header(data_bytes: u32, sample_rate: u32, channels: u16) -> [u8; 44] {
    let channels = channels.max(1);
    let block_align = channels * 2;
    let riff_len = if data_bytes == STREAMING_DATA_LEN { u32::MAX } else { data_bytes.saturating_add(36) };
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&riff_len.to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// A complete 16-bit PCM WAV file of interleaved `samples`.
pub fn encode_wav<S: WavSample>(samples: &[S], sample_rate: u32, channels: u16) -> Vec<u8> {
    let data_bytes = u32::try_from(samples.len() * 2).unwrap_or(STREAMING_DATA_LEN - 1);
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(&wav_header(data_bytes, sample_rate, channels));
    for s in samples {
        out.extend_from_slice(&s.to_i16().to_le_bytes());
    }
    out
}
