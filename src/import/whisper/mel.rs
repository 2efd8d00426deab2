//! Whisper's mel filter bank, computed as `librosa.filters.mel(sr=16000,
//! n_fft=400, n_mels=N)` does (Slaney mel scale, Slaney area normalisation).
//! OpenAI ships these filters as `mel_filters.npz`; computing them the same
//! way, step by step in f64 and stored as f32, gives the same bits, so no file
//! from another package is needed to convert a model.

pub const SAMPLE_RATE: f64 = 16_000.0;
pub const N_FFT: usize = 400;
/// Frequency bins of the real FFT.
pub const N_FREQS: usize = N_FFT / 2 + 1;

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1_000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(f: f64) -> f64 {
    if f >= MIN_LOG_HZ {
        MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() / log_step()
    } else {
        f / F_SP
    }
}

fn mel_to_hz(m: f64) -> f64 {
    if m >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (m - MIN_LOG_MEL)).exp()
    } else {
        F_SP * m
    }
}

/// numpy's `linspace(start, stop, num)` (endpoint included), element for element.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// `n_mels` rows of [`N_FREQS`] weights, row-major.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    let fft: Vec<f64> = linspace(0.0, SAMPLE_RATE / 2.0, N_FREQS);
    let mels = linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0), n_mels + 2);
    let mel_f: Vec<f64> = mels.into_iter().map(mel_to_hz).collect();
    let mut weights = vec![0f32; n_mels * N_FREQS];
    for (i, row) in weights.chunks_exact_mut(N_FREQS).enumerate() {
        let (lower_d, upper_d) = (mel_f[i + 1] - mel_f[i], mel_f[i + 2] - mel_f[i + 1]);
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for (w, &f) in row.iter_mut().zip(&fft) {
            let lower = -(mel_f[i] - f) / lower_d;
            let upper = (mel_f[i + 2] - f) / upper_d;
            // librosa stores the triangle as f32, then scales it in f64.
            let triangle = np_maximum(0.0, np_minimum(lower, upper)) as f32;
            *w = (f64::from(triangle) * enorm) as f32;
        }
    }
    weights
}

/// numpy's `minimum` for non-NaN input: the second argument unless the first is
/// smaller (so `minimum(-0.0, 0.0)` is `0.0`).
fn np_minimum(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

/// numpy's `maximum` for non-NaN input (`maximum(0.0, -0.0)` is `-0.0`, which
/// the first filter's first weight is).
fn np_maximum(a: f64, b: f64) -> f64 {
    if a > b {
        a
    } else {
        b
    }
}
