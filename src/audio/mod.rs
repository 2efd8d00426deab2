//! Audio in and out: WAV decoding to the 16 kHz mono `f32` that speech
//! recognition wants, band-limited resampling, WAV encoding for synthesized
//! speech, OGG/Opus voice messages in and out (`ogg_opus.rs`, libopus), framing of 16 kHz s16le
//! PCM streams, and voice activity detection.
//!
//! Everything here but the Opus codec is pure Rust, and all of it works on bytes already in memory. Input is
//! untrusted: any byte string gives either audio or a typed [`AudioError`],
//! never a panic, and header fields are checked against [`AudioLimits`] before
//! anything is allocated for them.
//!
//! ```
//! use hearth::audio::{decode_wav_16k_mono, encode_wav, AudioLimits};
//! let tone: Vec<i16> = (0..8000).map(|i| ((i as f32 * 0.1).sin() * 8000.0) as i16).collect();
//! let wav = encode_wav(&tone, 8000, 1);
//! let speech = decode_wav_16k_mono(&wav, &AudioLimits::default()).unwrap();
//! assert_eq!(speech.len(), 16000);
//! ```

mod encode;
mod frames;
mod ogg_opus;
mod resample;
mod vad;
mod wav;

pub use encode::{encode_wav, f32_to_i16, wav_header, WavSample, STREAMING_DATA_LEN};
pub use frames::{f32_to_s16le, s16le_to_f32, PcmFramer, FRAME_SAMPLES_20MS};
pub use ogg_opus::{decode_ogg_opus_16k_mono, encode_ogg_opus};
pub use resample::{resample, Resampler};
pub use vad::{level_dbfs, Vad, VadConfig, VadEvent};
pub use wav::{decode_wav, probe_wav, to_mono, Encoding, WavAudio, WavInfo};

use crate::error::ErrorCode;

/// The sample rate speech recognition works at.
pub const SPEECH_RATE: u32 = 16_000;

/// The lowest and highest sample rates accepted (inclusive).
pub const MIN_RATE: u32 = 8_000;
pub const MAX_RATE: u32 = 192_000;

/// At most this many interleaved channels.
pub const MAX_CHANNELS: u16 = 32;

/// What the decoder supports, for error messages.
pub const SUPPORTED: &str = "WAV (RIFF/WAVE) with PCM 8/16/24/32-bit integer, IEEE float 32/64-bit, \
     A-law or µ-law samples (plain or WAVE_FORMAT_EXTENSIBLE), 1 to 32 channels, 8 to 192 kHz";

/// Limits on what a decoder accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioLimits {
    /// Largest input, in bytes.
    pub max_bytes: usize,
    /// Longest audio, in seconds.
    pub max_seconds: f64,
}

impl Default for AudioLimits {
    /// 25 MB (OpenAI's upload limit) and 10 minutes.
    fn default() -> Self {
        AudioLimits { max_bytes: 25 * 1024 * 1024, max_seconds: 600.0 }
    }
}

/// Why audio could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// Not a WAV file at all (another container, or not audio).
    #[error("{found} is not supported; send {SUPPORTED}")]
    UnsupportedFormat { found: String },
    /// A WAV file whose sample encoding, rate or layout is not supported.
    #[error("WAV with {found} is not supported; send {SUPPORTED}")]
    UnsupportedEncoding { found: String },
    /// The file claims to be WAV but its structure is broken.
    #[error("corrupt WAV file: {reason}")]
    Corrupt { reason: String },
    /// The file ends before the data its header announces.
    #[error("truncated WAV file: {reason}")]
    Truncated { reason: String },
    /// A valid WAV file without a single sample.
    #[error("the WAV file contains no audio samples")]
    Empty,
    /// More bytes than [`AudioLimits::max_bytes`].
    #[error("audio of {bytes} bytes is larger than the limit of {max_bytes} bytes")]
    TooLarge { bytes: usize, max_bytes: usize },
    /// Longer than [`AudioLimits::max_seconds`].
    #[error("audio of {seconds:.1} s is longer than the limit of {max_seconds:.1} s")]
    TooLong { seconds: f64, max_seconds: f64 },
}

/// The class of an [`AudioError`], which decides how it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioErrorClass {
    /// 415: the client sent a format we do not decode.
    Unsupported,
    /// 400: the client sent broken or empty audio.
    Invalid,
    /// 413: the audio exceeds a limit.
    TooLarge,
}

impl AudioError {
    pub fn class(&self) -> AudioErrorClass {
        match self {
            AudioError::UnsupportedFormat { .. } | AudioError::UnsupportedEncoding { .. } => {
                AudioErrorClass::Unsupported
            }
            AudioError::Corrupt { .. } | AudioError::Truncated { .. } | AudioError::Empty => {
                AudioErrorClass::Invalid
            }
            AudioError::TooLarge { .. } | AudioError::TooLong { .. } => AudioErrorClass::TooLarge,
        }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        AudioError::Corrupt { reason: reason.into() }
    }

    pub(crate) fn truncated(reason: impl Into<String>) -> Self {
        AudioError::Truncated { reason: reason.into() }
    }

    pub(crate) fn encoding(found: impl Into<String>) -> Self {
        AudioError::UnsupportedEncoding { found: found.into() }
    }
}

impl AudioError {
    /// Its row in the error table.
    pub fn code(&self) -> ErrorCode {
        match (self, self.class()) {
            (_, AudioErrorClass::Unsupported) => ErrorCode::UnsupportedMediaType,
            (_, AudioErrorClass::Invalid) => ErrorCode::InvalidAudio,
            (AudioError::TooLong { .. }, _) => ErrorCode::AudioTooLong,
            (_, AudioErrorClass::TooLarge) => ErrorCode::PayloadTooLarge,
        }
    }
}

/// Decodes a WAV file to mono `f32` samples at 16 kHz: channels are averaged
/// and the rate converted with a band-limited resampler.
pub fn decode_wav_16k_mono(bytes: &[u8], limits: &AudioLimits) -> Result<Vec<f32>, AudioError> {
    let audio = decode_wav(bytes, limits)?;
    let mono = to_mono(&audio.samples, audio.info.channels);
    Ok(resample(&mono, audio.info.sample_rate, SPEECH_RATE))
}

#[cfg(test)]
mod tests;
