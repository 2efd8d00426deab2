use super::*;
use rand::{Rng, SeedableRng};

const FRAME: usize = 320;

fn amplitude(dbfs: f32) -> f32 {
    10f32.powf(dbfs / 20.0)
}

/// White noise at `dbfs` RMS.
fn noise(rng: &mut impl Rng, dbfs: f32, n: usize) -> Vec<f32> {
    let a = amplitude(dbfs) * 3f32.sqrt();
    (0..n).map(|_| rng.gen_range(-a..a)).collect()
}

/// Speech-like: 200 ms "syllables" at `dbfs` with 60 ms dips 30 dB lower, ending on a syllable.
fn speech(dbfs: f32, n: usize) -> Vec<f32> {
    let a = amplitude(dbfs) * 2f32.sqrt();
    let mut out: Vec<f32> = (0..n)
        .map(|i| {
            let in_dip = i % 4_160 >= 3_200;
            let v = (i as f32 * 2.0 * std::f32::consts::PI * 220.0 / 16_000.0).sin() * a;
            if in_dip {
                v * 0.03
            } else {
                v
            }
        })
        .collect();
    let tail = n.saturating_sub(960);
    out[tail..].iter_mut().enumerate().for_each(|(i, v)| *v = (i as f32 * 0.086).sin() * a);
    out
}

fn events(vad: &mut Vad, audio: &[f32]) -> Vec<(usize, VadEvent)> {
    let mut out = Vec::new();
    for (i, frame) in audio.chunks(FRAME).enumerate() {
        if let Some(e) = vad.push(frame) {
            out.push((i * FRAME, e));
        }
    }
    out
}

#[test]
fn speech_between_quiet_stretches_is_found_with_its_bounds() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut audio = noise(&mut rng, -65.0, 16_000);
    audio.extend(speech(-20.0, 24_000));
    audio.extend(noise(&mut rng, -65.0, 24_000));
    let mut vad = Vad::new(VadConfig::default());
    let found = events(&mut vad, &audio);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].1, VadEvent::SpeechStart { sample: 16_000 });
    assert_eq!(found[1].1, VadEvent::SpeechEnd { sample: 40_000 });
    // Reported once 600 ms of quiet have passed.
    assert_eq!(found[1].0, 40_000 + 29 * FRAME);
    assert!(!vad.in_speech());
    assert!((vad.floor_dbfs() + 65.0).abs() < 3.0, "floor {}", vad.floor_dbfs());
}

#[test]
fn speech_from_the_first_frame_and_a_click_alone() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut audio = speech(-25.0, 12_000);
    audio.extend(noise(&mut rng, -70.0, 16_000));
    let mut vad = Vad::new(VadConfig::default());
    let found = events(&mut vad, &audio);
    assert_eq!(
        found.iter().map(|e| e.1).collect::<Vec<_>>(),
        [VadEvent::SpeechStart { sample: 0 }, VadEvent::SpeechEnd { sample: 12_160 },]
    );

    let mut click = noise(&mut rng, -70.0, 16_000);
    click[8_000..8_320].iter_mut().for_each(|v| *v = 0.8);
    assert!(events(&mut Vad::new(VadConfig::default()), &click).is_empty());
}

#[test]
fn steady_noise_is_learned_and_louder_speech_still_found() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut fan = noise(&mut rng, -30.0, 80_000);
    let mut vad = Vad::new(VadConfig::default());
    // A stream that starts in a loud room reads as speech until the window has passed...
    let early = events(&mut vad, &fan[..48_000]);
    assert!(early.len() <= 2 && early.iter().all(|(at, _)| *at < 48_000), "{early:?}");
    assert!(!vad.in_speech());
    // ...then the fan is background.
    assert!(events(&mut vad, &fan[48_000..]).is_empty());
    assert!((vad.floor_dbfs() + 30.0).abs() < 2.0, "floor {}", vad.floor_dbfs());
    fan = speech(-8.0, 16_000).iter().zip(noise(&mut rng, -30.0, 16_000)).map(|(s, n)| s + n).collect();
    let found = events(&mut vad, &fan);
    assert!(matches!(found.as_slice(), [(_, VadEvent::SpeechStart { sample: 80_000 })]), "{found:?}");
    assert_eq!(vad.finish(), Some(VadEvent::SpeechEnd { sample: 96_000 }));
    assert_eq!(vad.finish(), None);
}

#[test]
fn levels() {
    assert!((level_dbfs(&[1.0; 100]) - 0.0).abs() < 1e-3);
    assert!((level_dbfs(&[0.1, -0.1]) + 20.0).abs() < 1e-3);
    assert!(level_dbfs(&[0.0; 10]) <= -99.0);
    assert_eq!(level_dbfs(&[]), -100.0);
}
