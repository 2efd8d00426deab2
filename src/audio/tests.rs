use super::wav::g711;
use super::*;
use crate::error::{ApiError, ErrorCode};
use rand::{Rng, RngCore, SeedableRng};

/// A WAV file with a plain fmt chunk.
fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let mut fmt = Vec::new();
    let block = channels * bits / 8;
    fmt.extend_from_slice(&tag.to_le_bytes());
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&rate.to_le_bytes());
    fmt.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    fmt.extend_from_slice(&block.to_le_bytes());
    fmt.extend_from_slice(&bits.to_le_bytes());
    riff(&fmt, data)
}

/// A WAVE_FORMAT_EXTENSIBLE file whose sub-format is `tag`.
fn wav_ext(tag: u16, channels: u16, rate: u32, bits: u16, valid: u16, data: &[u8]) -> Vec<u8> {
    let base = wav(0xFFFE, channels, rate, bits, &[]);
    let mut fmt = base[20..36].to_vec();
    fmt.extend_from_slice(&22u16.to_le_bytes());
    fmt.extend_from_slice(&valid.to_le_bytes());
    fmt.extend_from_slice(&3u32.to_le_bytes()); // front left + right
    fmt.extend_from_slice(&tag.to_le_bytes());
    fmt.extend_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
    riff(&fmt, data)
}

fn riff(fmt: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = b"RIFF\0\0\0\0WAVE".to_vec();
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    out.extend_from_slice(fmt);
    // A chunk to skip, of odd size (so with a pad byte), before the data.
    out.extend_from_slice(b"LIST\x03\0\0\0abc\0");
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    let len = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&len.to_le_bytes());
    out
}

fn tone(freq: f64, rate: u32, seconds: f64, amplitude: f64) -> Vec<f32> {
    let n = (f64::from(rate) * seconds) as usize;
    (0..n)
        .map(|i| (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Frequency from the interpolated positive-going zero crossings.
fn frequency(x: &[f32], rate: u32) -> f64 {
    let crossings: Vec<f64> = x
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| i as f64 + f64::from(w[0] / (w[0] - w[1])))
        .collect();
    let span = crossings.last().unwrap() - crossings[0];
    (crossings.len() - 1) as f64 * f64::from(rate) / span
}

fn limits() -> AudioLimits {
    AudioLimits::default()
}

#[test]
fn pcm16_round_trips_exactly() {
    let samples: Vec<i16> = vec![0, 1, -1, i16::MAX, i16::MIN, 1234, -4321, 7];
    let bytes = encode_wav(&samples, 22_050, 2);
    let info = probe_wav(&bytes).unwrap();
    assert_eq!(info, WavInfo { sample_rate: 22_050, channels: 2, encoding: Encoding::PcmI16, frames: 4 });
    let audio = decode_wav(&bytes, &limits()).unwrap();
    let back: Vec<i16> = audio.samples.iter().map(|&v| f32_to_i16(v)).collect();
    assert_eq!(back, samples);
}

#[test]
fn stereo_44k1_tone_keeps_frequency_and_amplitude_at_16k_mono() {
    let left = tone(440.0, 44_100, 2.0, 0.5);
    let interleaved: Vec<f32> = left.iter().flat_map(|&v| [v, v]).collect();
    let bytes = encode_wav(&interleaved, 44_100, 2);
    let speech = decode_wav_16k_mono(&bytes, &limits()).unwrap();
    assert_eq!(speech.len(), 32_000);
    let middle = &speech[4_000..28_000];
    let f = frequency(middle, 16_000);
    assert!((f - 440.0).abs() < 0.2, "frequency {f}");
    let amplitude = rms(middle) * 2f64.sqrt();
    assert!((amplitude - 0.5).abs() < 0.005, "amplitude {amplitude}");
    // Aligned in time as well: the resampled tone matches the ideal one.
    let ideal = tone(440.0, 16_000, 2.0, 0.5);
    let err: f64 =
        middle.iter().zip(&ideal[4_000..28_000]).map(|(a, b)| f64::from(a - b).abs()).fold(0.0, f64::max);
    assert!(err < 0.01, "max deviation {err}");
}

#[test]
fn downsampling_removes_tones_above_the_new_nyquist() {
    // 12 kHz cannot exist at 16 kHz; a naive resampler folds it to 4 kHz.
    let high = tone(12_000.0, 44_100, 1.0, 0.9);
    let out = resample(&high, 44_100, 16_000);
    let level = rms(&out[1_000..15_000]) / rms(&high);
    assert!(level < 1e-3, "alias level {level}");
    // The pass band reaches 7 kHz (at 48 kHz → 16 kHz), and just above 8 kHz is stopped.
    for (freq, low, high) in
        [(3_000.0, 0.999, 1.001), (6_500.0, 0.995, 1.005), (7_000.0, 0.98, 1.01), (8_100.0, 0.0, 1e-3)]
    {
        let input = tone(freq, 48_000, 1.0, 0.5);
        let out = resample(&input, 48_000, 16_000);
        let gain = rms(&out[1_000..15_000]) / rms(&input);
        assert!((low..=high).contains(&gain), "{freq} Hz: gain {gain}");
    }
}

#[test]
fn every_common_rate_converts_with_the_right_length_and_pitch() {
    for rate in [8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 88_200, 96_000] {
        let input = tone(1_000.0, rate, 0.5, 0.5);
        let out = resample(&input, rate, 16_000);
        assert_eq!(out.len(), (input.len() * 16_000).div_ceil(rate as usize), "{rate}");
        let f = frequency(&out[800..7_200], 16_000);
        assert!((f - 1_000.0).abs() < 0.5, "{rate}: {f}");
        let amplitude = rms(&out[800..7_200]) * 2f64.sqrt();
        assert!((amplitude - 0.5).abs() < 0.01, "{rate}: {amplitude}");
    }
}

#[test]
fn odd_ratios_without_a_table_still_work() {
    // 44_099 → 16_000 has 16_000 phases: coefficients are computed per sample.
    let input = tone(500.0, 44_099, 0.25, 0.5);
    let out = resample(&input, 44_099, 16_000);
    assert_eq!(out.len(), (input.len() * 16_000).div_ceil(44_099));
    assert!((frequency(&out[500..3_500], 16_000) - 500.0).abs() < 0.5);
    // Absurd ratios stay bounded in time and memory.
    assert_eq!(resample(&[0.5; 10_000], u32::MAX, 1).len(), 1);
    assert_eq!(resample(&[0.5; 3], 1, 1_000).len(), 3_000);
}

#[test]
fn streaming_in_chunks_equals_the_whole_buffer() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let input: Vec<f32> = (0..20_000).map(|_| rng.gen_range(-1.0..1.0)).collect();
    for (from, to) in [(44_100, 16_000), (8_000, 16_000), (48_000, 16_000), (16_000, 16_000)] {
        let whole = resample(&input, from, to);
        let mut r = Resampler::new(from, to);
        let mut streamed = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = rng.gen_range(1..=1_500).min(rest.len());
            r.process(&rest[..n], &mut streamed);
            rest = &rest[n..];
        }
        r.flush(&mut streamed);
        assert_eq!(streamed, whole, "{from} -> {to}");
        // After a flush the resampler starts a fresh stream.
        let mut again = Vec::new();
        r.process(&input, &mut again);
        r.flush(&mut again);
        assert_eq!(again, whole, "{from} -> {to} reused");
    }
}

#[test]
fn every_sample_encoding_decodes() {
    let expect = |bytes: Vec<u8>, encoding: Encoding, values: &[f32]| {
        let audio = decode_wav(&bytes, &limits()).unwrap();
        assert_eq!(audio.info.encoding, encoding);
        assert_eq!(audio.samples.len(), values.len(), "{encoding:?}");
        for (got, want) in audio.samples.iter().zip(values) {
            assert!((got - want).abs() < 1e-6, "{encoding:?}: {got} vs {want}");
        }
    };
    expect(wav(1, 1, 8_000, 8, &[0, 128, 255, 64]), Encoding::PcmU8, &[-1.0, 0.0, 127.0 / 128.0, -0.5]);
    let s24 = [0x00, 0x00, 0x40, 0x00, 0x00, 0xC0, 0xFF, 0xFF, 0xFF];
    expect(wav(1, 1, 8_000, 24, &s24), Encoding::PcmI24, &[0.5, -0.5, -1.0 / 8_388_608.0]);
    let s32: Vec<u8> = [i32::MIN, 1 << 30].iter().flat_map(|v| v.to_le_bytes()).collect();
    expect(wav(1, 1, 8_000, 32, &s32), Encoding::PcmI32, &[-1.0, 0.5]);
    let f32s: Vec<u8> =
        [0.25f32, -0.75, f32::NAN, f32::INFINITY].iter().flat_map(|v| v.to_le_bytes()).collect();
    expect(wav(3, 2, 8_000, 32, &f32s), Encoding::F32, &[0.25, -0.75, 0.0, 0.0]);
    let f64s: Vec<u8> = [0.125f64, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    expect(wav(3, 1, 8_000, 64, &f64s), Encoding::F64, &[0.125, -1.0]);
    expect(wav(6, 1, 8_000, 8, &[0xD5, 0xAA]), Encoding::ALaw, &[8.0 / 32_768.0, 32_256.0 / 32_768.0]);
    expect(wav(7, 1, 8_000, 8, &[0xFF, 0x00]), Encoding::MuLaw, &[0.0, -32_124.0 / 32_768.0]);
    // Extensible: 24 valid bits in 32-bit containers, and float.
    expect(wav_ext(1, 2, 48_000, 32, 24, &s32), Encoding::PcmI32, &[-1.0, 0.5]);
    expect(wav_ext(3, 2, 48_000, 32, 32, &f32s), Encoding::F32, &[0.25, -0.75, 0.0, 0.0]);
    expect(wav_ext(1, 1, 16_000, 16, 16, &[0, 0x40]), Encoding::PcmI16, &[0.5]);
}

#[test]
fn g711_matches_the_reference_tables() {
    assert_eq!(g711::mulaw(0xFF), 0);
    assert_eq!(g711::mulaw(0x7F), 0);
    assert_eq!(g711::mulaw(0x80), 32_124);
    assert_eq!(g711::mulaw(0x00), -32_124);
    assert_eq!(g711::alaw(0xD5), 8);
    assert_eq!(g711::alaw(0x55), -8);
    assert_eq!(g711::alaw(0xAA), 32_256);
    assert_eq!(g711::alaw(0x2A), -32_256);
    // Both are monotonic within each sign.
    let mu: Vec<i16> = (0x80..=0xFFu8).rev().map(g711::mulaw).collect();
    assert!(mu.windows(2).all(|w| w[0] < w[1]), "{mu:?}");
}

#[test]
fn multichannel_is_averaged() {
    let samples: Vec<i16> = vec![16_384, 0, -16_384, 8_192, 8_192, 8_192];
    let audio = decode_wav(&encode_wav(&samples, 16_000, 3), &limits()).unwrap();
    assert_eq!(to_mono(&audio.samples, 3), vec![0.0, 0.25]);
    assert_eq!(decode_wav_16k_mono(&encode_wav(&samples, 16_000, 3), &limits()).unwrap(), vec![0.0, 0.25]);
}

#[test]
fn truncated_and_empty_files_are_invalid() {
    let good = encode_wav(&[1000i16; 100], 16_000, 1);
    for cut in [1, 4, 8, 11, 12, 20, 30, 43, 44 + 50] {
        let err = decode_wav(&good[..cut], &limits()).unwrap_err();
        assert_eq!(err.class(), AudioErrorClass::Invalid, "cut {cut}: {err}");
        if cut >= 20 {
            assert!(matches!(err, AudioError::Truncated { .. }), "cut {cut}: {err}");
        }
    }
    assert_eq!(
        decode_wav(&good[..12], &limits()).unwrap_err(),
        AudioError::corrupt("no fmt and data chunks")
    );
    assert_eq!(decode_wav(&[], &limits()).unwrap_err(), AudioError::Empty);
    assert_eq!(decode_wav(&encode_wav::<i16>(&[], 16_000, 1), &limits()).unwrap_err(), AudioError::Empty);
    // A stereo 16-bit file with 3 bytes of data has no whole frame.
    assert_eq!(decode_wav(&wav(1, 2, 16_000, 16, &[1, 2, 3]), &limits()).unwrap_err(), AudioError::Empty);
    // A trailing partial frame is ignored.
    let audio = decode_wav(&wav(1, 1, 16_000, 16, &[0, 0x40, 9]), &limits()).unwrap();
    assert_eq!(audio.samples, vec![0.5]);
    let err = decode_wav(&good[..60], &limits()).unwrap_err();
    assert!(err.to_string().contains("announces 200 bytes but only 16 follow"), "{err}");
}

#[test]
fn absurd_header_values_are_rejected_without_allocating() {
    let mut huge_data = encode_wav(&[0i16; 4], 16_000, 1);
    huge_data[40..44].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    assert!(matches!(decode_wav(&huge_data, &limits()), Err(AudioError::Truncated { .. })));

    let mut huge_chunk = wav(1, 1, 16_000, 16, &[0; 8]);
    huge_chunk[40..44].copy_from_slice(&u32::MAX.to_le_bytes()); // the LIST chunk's size
    assert!(matches!(decode_wav(&huge_chunk, &limits()), Err(AudioError::Truncated { .. })));

    let mut huge_fmt = encode_wav(&[0i16; 4], 16_000, 1);
    huge_fmt[16..20].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
    assert!(matches!(decode_wav(&huge_fmt, &limits()), Err(AudioError::Truncated { .. })));

    let unsupported = |bytes: Vec<u8>, text: &str| {
        let err = decode_wav(&bytes, &limits()).unwrap_err();
        assert_eq!(err.class(), AudioErrorClass::Unsupported, "{err}");
        assert!(err.to_string().contains(text) && err.to_string().contains("PCM 8/16/24/32"), "{err}");
    };
    unsupported(wav(1, 33, 16_000, 16, &[0; 66]), "33 channels");
    unsupported(wav(1, 1, 1_000_000, 16, &[0; 2]), "1000000 Hz");
    unsupported(wav(1, 1, 4_000, 16, &[0; 2]), "4000 Hz");
    unsupported(wav(1, 1, 16_000, 12, &[0; 2]), "12-bit PCM");
    unsupported(wav(3, 1, 16_000, 16, &[0; 2]), "16-bit float");
    unsupported(wav(2, 1, 16_000, 4, &[0; 2]), "Microsoft ADPCM");
    unsupported(wav(0x55, 1, 16_000, 0, &[0; 2]), "MP3");

    let corrupt = |bytes: Vec<u8>, text: &str| {
        let err = decode_wav(&bytes, &limits()).unwrap_err();
        assert!(matches!(err, AudioError::Corrupt { .. }) && err.to_string().contains(text), "{err}");
    };
    corrupt(wav(1, 0, 16_000, 16, &[0; 2]), "0 channels");
    corrupt(wav(1, 1, 0, 16, &[0; 2]), "0 Hz");
    let mut bad_align = wav(1, 2, 16_000, 16, &[0; 8]);
    bad_align[32..34].copy_from_slice(&3u16.to_le_bytes());
    corrupt(bad_align, "block align 3");
    let mut data_first = b"RIFF\0\0\0\0WAVEdata\x02\0\0\0\0\0".to_vec();
    data_first.extend_from_slice(&encode_wav(&[0i16], 16_000, 1)[12..36]);
    corrupt(data_first, "before the fmt chunk");
    let mut short_ext = wav(0xFFFE, 1, 16_000, 16, &[0; 2]);
    short_ext[16] = 16;
    corrupt(short_ext, "EXTENSIBLE");
}

#[test]
fn other_formats_are_named_in_the_error() {
    let cases: [(&[u8], &str); 8] = [
        (b"OggS\0\x02\0\0\0\0\0\0\0\0", "Ogg"),
        (b"fLaC\0\0\0\x22\x10\0", "FLAC"),
        (b"ID3\x04\0\0\0\0\0\x0a\0\0\0", "MP3"),
        (b"\xff\xfb\x90\x64\0\0\0\0\0\0\0\0", "MP3"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81", "WebM"),
        (b"\0\0\0\x20ftypM4A \0\0\0\0", "MP4"),
        (b"RIFF\x24\0\0\0AVI LIST", "RIFF file of type 'AVI'"),
        (b"hello, this is text and not audio at all", "without a RIFF/WAVE header"),
    ];
    for (bytes, name) in cases {
        let err = decode_wav(bytes, &limits()).unwrap_err();
        assert!(matches!(err, AudioError::UnsupportedFormat { .. }), "{err}");
        assert!(err.to_string().contains(name) && err.to_string().contains("send WAV"), "{err}");
    }
}

#[test]
fn limits_apply_before_decoding() {
    let bytes = encode_wav(&vec![0i16; 32_000], 16_000, 1);
    let small = AudioLimits { max_bytes: 1_000, max_seconds: 600.0 };
    assert_eq!(
        decode_wav(&bytes, &small).unwrap_err(),
        AudioError::TooLarge { bytes: bytes.len(), max_bytes: 1_000 }
    );
    let short = AudioLimits { max_bytes: usize::MAX, max_seconds: 1.5 };
    let err = decode_wav(&bytes, &short).unwrap_err();
    assert_eq!(err, AudioError::TooLong { seconds: 2.0, max_seconds: 1.5 });
    assert_eq!(err.to_string(), "audio of 2.0 s is longer than the limit of 1.5 s");
    // A streamed header (unknown length) counts the bytes that are there.
    let mut streamed = bytes.clone();
    streamed[40..44].copy_from_slice(&STREAMING_DATA_LEN.to_le_bytes());
    assert_eq!(probe_wav(&streamed).unwrap().frames, 32_000);
    assert_eq!(wav_header(STREAMING_DATA_LEN, 16_000, 1)[4..8], [0xFF; 4]);
}

#[test]
fn errors_map_to_the_api_table() {
    let code = |e: AudioError| ApiError::from(e).code;
    assert_eq!(code(AudioError::UnsupportedFormat { found: "Ogg".into() }), ErrorCode::UnsupportedMediaType);
    assert_eq!(code(AudioError::encoding("x")), ErrorCode::UnsupportedMediaType);
    assert_eq!(code(AudioError::corrupt("x")), ErrorCode::InvalidAudio);
    assert_eq!(code(AudioError::truncated("x")), ErrorCode::InvalidAudio);
    assert_eq!(code(AudioError::Empty), ErrorCode::InvalidAudio);
    assert_eq!(code(AudioError::TooLarge { bytes: 2, max_bytes: 1 }), ErrorCode::PayloadTooLarge);
    assert_eq!(code(AudioError::TooLong { seconds: 2.0, max_seconds: 1.0 }), ErrorCode::AudioTooLong);
    assert_eq!(ErrorCode::UnsupportedMediaType.status(), 415);
    assert_eq!(ErrorCode::InvalidAudio.status(), 400);
    assert_eq!(ErrorCode::AudioTooLong.status(), 413);
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let small = AudioLimits { max_bytes: 1 << 20, max_seconds: 5.0 };
    let seeds = [
        encode_wav(&tone(300.0, 8_000, 0.05, 0.5), 8_000, 1),
        wav_ext(3, 2, 44_100, 32, 32, &[0; 64]),
        wav(7, 1, 8_000, 8, &[1, 2, 3, 4]),
    ];
    for i in 0..3_000 {
        let bytes = if i % 3 == 0 {
            let mut b = vec![0u8; rng.gen_range(0..200)];
            rng.fill_bytes(&mut b);
            if i % 2 == 0 && b.len() >= 12 {
                b[..4].copy_from_slice(b"RIFF");
                b[8..12].copy_from_slice(b"WAVE");
            }
            b
        } else {
            let mut b = seeds[i % seeds.len()].clone();
            for _ in 0..rng.gen_range(1..6) {
                let at = rng.gen_range(0..b.len());
                b[at] = rng.gen();
            }
            b.truncate(rng.gen_range(0..=b.len()));
            b
        };
        if let Ok(speech) = decode_wav_16k_mono(&bytes, &small) {
            assert!(speech.iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn framer_cuts_odd_pieces_into_whole_frames() {
    let samples: Vec<i16> = (0..1_000).map(|i| (i * 37 - 15_000) as i16).collect();
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut framer = PcmFramer::new(FRAME_SAMPLES_20MS);
    let mut frames = Vec::new();
    for piece in bytes.chunks(77) {
        framer.push(piece);
        while let Some(frame) = framer.next_frame() {
            frames.push(frame);
        }
    }
    assert_eq!(frames.len(), 3);
    assert_eq!(framer.pending_samples(), 40);
    let last = framer.finish().unwrap();
    assert_eq!(last.len(), 320);
    assert_eq!(&last[..40], &samples[960..]);
    assert!(last[40..].iter().all(|&s| s == 0));
    let joined: Vec<i16> = frames.concat();
    assert_eq!(joined, samples[..960]);
    assert_eq!(framer.finish(), None);

    let f = s16le_to_f32(&bytes[..5]);
    assert_eq!(f.len(), 2);
    assert_eq!(f32_to_s16le(&f), bytes[..4]);
    assert_eq!(f32_to_s16le(&[2.0, -2.0, f32::NAN]), [0xFF, 0x7F, 0x00, 0x80, 0, 0]);
}
