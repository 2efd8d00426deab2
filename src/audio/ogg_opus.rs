//! OGG/Opus in and out (RFC 7845), as Telegram sends and plays voice messages: decoding
//! to the 16 kHz mono `f32` speech recognition wants, and encoding synthesized speech.
//! The codec is libopus (linked statically); the container is the `ogg` crate.

use super::{resample, AudioError, AudioLimits, SPEECH_RATE};
use ogg::{PacketReader, PacketWriteEndInfo, PacketWriter};
use opus::{Application, Bitrate, Channels, Decoder, Encoder};
use std::io::Cursor;

/// Opus's own clock: granule positions and pre-skip count 48 kHz samples.
const OPUS_RATE: u32 = 48_000;
/// The longest Opus packet: 120 ms, here at 16 kHz.
const MAX_FRAME_16K: usize = 1920;
/// Encoded frames: 20 ms at 48 kHz.
const FRAME_48K: usize = 960;

/// Decodes an OGG/Opus file to mono `f32` samples at 16 kHz (libopus decodes at that
/// rate and downmixes). The first Opus stream is read; others are ignored.
pub fn decode_ogg_opus_16k_mono(bytes: &[u8], limits: &AudioLimits) -> Result<Vec<f32>, AudioError> {
    if bytes.len() > limits.max_bytes {
        return Err(AudioError::TooLarge { bytes: bytes.len(), max_bytes: limits.max_bytes });
    }
    if !bytes.starts_with(b"OggS") {
        return Err(AudioError::UnsupportedFormat { found: "audio that is not OGG/Opus".into() });
    }
    let mut reader = PacketReader::new(Cursor::new(bytes));
    let corrupt = |e: ogg::OggReadError| AudioError::corrupt(format!("OGG: {e}"));
    let head =
        reader.read_packet().map_err(corrupt)?.ok_or_else(|| AudioError::truncated("no OGG packet"))?;
    let serial = head.stream_serial();
    let head = OpusHead::parse(&head.data)?;
    let mut decoder = Decoder::new(SPEECH_RATE, Channels::Mono)
        .map_err(|e| AudioError::corrupt(format!("Opus decoder: {e}")))?;
    let max_samples = (limits.max_seconds * f64::from(SPEECH_RATE)) as usize;
    let mut out = Vec::new();
    let mut frame = vec![0f32; MAX_FRAME_16K];
    let mut packets = 0usize;
    let mut granule = 0u64;
    while let Some(packet) = reader.read_packet().map_err(corrupt)? {
        if packet.stream_serial() != serial {
            continue;
        }
        packets += 1;
        if packet.last_in_page() {
            granule = packet.absgp_page();
        }
        // The second packet is OpusTags (comments); audio follows.
        if packets == 1 {
            continue;
        }
        let n = decoder
            .decode_float(&packet.data, &mut frame, false)
            .map_err(|e| AudioError::corrupt(format!("Opus packet {packets}: {e}")))?;
        out.extend_from_slice(&frame[..n]);
        if out.len() > max_samples {
            let seconds = out.len() as f64 / f64::from(SPEECH_RATE);
            return Err(AudioError::TooLong { seconds, max_seconds: limits.max_seconds });
        }
    }
    // Granules and pre-skip count 48 kHz samples. Pre-skip is the encoder's delay, and the
    // last granule says where the audio ends (the last frame is padded).
    // (Divided, not multiplied: a hostile granule must not overflow.)
    let to_16k = |n: u64| usize::try_from(n / u64::from(OPUS_RATE / SPEECH_RATE)).unwrap_or(usize::MAX);
    let end = to_16k(granule);
    if end > 0 && end < out.len() {
        out.truncate(end);
    }
    let skip = to_16k(u64::from(head.pre_skip)).min(out.len());
    out.drain(..skip);
    if out.is_empty() {
        return Err(AudioError::Empty);
    }
    Ok(out)
}

/// Encodes mono 16-bit samples at `rate` Hz as an OGG/Opus voice message (48 kHz, 20 ms
/// frames, 32 kbit/s).
pub fn encode_ogg_opus(samples: &[i16], rate: u32) -> Result<Vec<u8>, AudioError> {
    if samples.is_empty() {
        return Err(AudioError::Empty);
    }
    let failed = |e: opus::Error| AudioError::corrupt(format!("Opus encoder: {e}"));
    let mono: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let mut pcm = resample(&mono, rate, OPUS_RATE);
    let mut encoder = Encoder::new(OPUS_RATE, Channels::Mono, Application::Voip).map_err(failed)?;
    encoder.set_bitrate(Bitrate::Bits(32_000)).map_err(failed)?;
    let pre_skip = encoder.get_lookahead().map_err(failed)?.clamp(0, i32::from(u16::MAX)) as u16;
    // The encoder's delay (pre-skip) and the last frame are padded with silence; the end
    // granule tells players where the audio ends.
    let end = pcm.len() as u64 + u64::from(pre_skip);
    pcm.resize((pcm.len() + usize::from(pre_skip)).div_ceil(FRAME_48K) * FRAME_48K, 0.0);

    let serial = 0x4845_4152; // "HEAR"
    let mut writer = PacketWriter::new(Vec::new());
    let io = |e: std::io::Error| AudioError::corrupt(format!("OGG: {e}"));
    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&rate.to_le_bytes()); // the input's rate, for information
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family: mono or stereo
    writer.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0).map_err(io)?;
    let vendor = b"hearth";
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes()); // no comments
    writer.write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0).map_err(io)?;

    let frames = pcm.len() / FRAME_48K;
    for (i, frame) in pcm.chunks_exact(FRAME_48K).enumerate() {
        let packet = encoder.encode_vec_float(frame, 4000).map_err(failed)?;
        let last = i + 1 == frames;
        let granule = (((i + 1) * FRAME_48K) as u64 + u64::from(pre_skip)).min(end);
        let info = if last {
            PacketWriteEndInfo::EndStream
        } else if (i + 1) % 50 == 0 {
            PacketWriteEndInfo::EndPage // a page a second
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        writer.write_packet(packet, serial, info, granule).map_err(io)?;
    }
    Ok(writer.into_inner())
}

/// The identification header's fields that decoding needs.
struct OpusHead {
    pre_skip: u16,
}

impl OpusHead {
    fn parse(data: &[u8]) -> Result<OpusHead, AudioError> {
        if data.len() < 19 || !data.starts_with(b"OpusHead") {
            return Err(AudioError::UnsupportedFormat { found: "an OGG stream that is not Opus".into() });
        }
        if data[8] >> 4 != 0 {
            return Err(AudioError::encoding(format!("Opus header version {}", data[8])));
        }
        let channels = data[9];
        let mapping = data[18];
        if channels == 0 || (mapping == 0 && channels > 2) || mapping > 1 {
            return Err(AudioError::encoding(format!("Opus with {channels} channels, mapping {mapping}")));
        }
        if mapping == 1 && channels > 2 {
            // Surround needs the multistream decoder; voice messages are mono.
            return Err(AudioError::encoding(format!("Opus with {channels} channels")));
        }
        Ok(OpusHead { pre_skip: u16::from_le_bytes([data[10], data[11]]) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, seconds: f32) -> Vec<i16> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8000.0) as i16)
            .collect()
    }

    #[test]
    fn speech_survives_a_round_trip_at_16k() {
        let ogg = encode_ogg_opus(&tone(22_050, 1.5), 22_050).unwrap();
        assert!(ogg.starts_with(b"OggS"));
        let pcm = decode_ogg_opus_16k_mono(&ogg, &AudioLimits::default()).unwrap();
        // 1.5 s at 16 kHz, to the sample or so: the end granule trims the padding.
        assert!((23_998..=24_002).contains(&pcm.len()), "{}", pcm.len());
        let rms = (pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len() as f32).sqrt();
        assert!(rms > 0.1, "the tone should come back loud: {rms}");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let limits = AudioLimits::default();
        assert!(matches!(
            decode_ogg_opus_16k_mono(b"RIFF....", &limits),
            Err(AudioError::UnsupportedFormat { .. })
        ));
        assert!(decode_ogg_opus_16k_mono(b"OggS", &limits).is_err());
        let ogg = encode_ogg_opus(&tone(16_000, 0.5), 16_000).unwrap();
        for cut in [30, 60, ogg.len() / 2] {
            let _ = decode_ogg_opus_16k_mono(&ogg[..cut], &limits);
        }
        let mut flipped = ogg.clone();
        for i in (200..flipped.len()).step_by(7) {
            flipped[i] ^= 0x5a;
        }
        let _ = decode_ogg_opus_16k_mono(&flipped, &limits);
        let short = AudioLimits { max_bytes: 100, ..limits };
        assert!(matches!(decode_ogg_opus_16k_mono(&ogg, &short), Err(AudioError::TooLarge { .. })));
        let brief = AudioLimits { max_seconds: 0.1, ..limits };
        assert!(matches!(decode_ogg_opus_16k_mono(&ogg, &brief), Err(AudioError::TooLong { .. })));
    }
}
