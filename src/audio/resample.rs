//! Band-limited sample-rate conversion: a Kaiser-windowed sinc filter evaluated
//! at the exact rational ratio of the two rates (polyphase), usable on a whole
//! buffer ([`resample`]) or on a stream of chunks ([`Resampler`]).
//!
//! The filter is zero-phase: output sample `k` is the input at time
//! `k * from / to`, so the two ends stay aligned and a stream resampled in
//! chunks gives exactly the same samples as the whole buffer at once.

/// Zero crossings of the sinc on each side, at the narrower of the two rates.
const ZERO_CROSSINGS: usize = 48;
/// The pass band ends at this fraction of the lower Nyquist frequency.
const ROLLOFF: f64 = 0.94;
/// Kaiser β: about 90 dB of stop-band attenuation.
const KAISER_BETA: f64 = 9.0;
/// Above this many coefficients (phases × taps) they are computed per sample instead of tabled.
const MAX_TABLE: usize = 1 << 20;
/// Taps on each side at most: downsampling by more than 256× gets a shorter
/// (less steep) filter rather than an unbounded one.
const MAX_HALF: usize = ZERO_CROSSINGS * 256;

/// Converts a whole mono buffer from `from` Hz to `to` Hz.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let mut r = Resampler::new(from, to);
    let mut out = Vec::with_capacity(r.output_len(input.len()) + 1);
    r.process(input, &mut out);
    r.flush(&mut out);
    out
}

/// A streaming resampler for one channel.
#[derive(Debug, Clone)]
pub struct Resampler {
    /// Output step in input samples is `step / phases` (the reduced ratio from/to).
    step: u64,
    phases: u64,
    /// Taps on each side of the centre.
    half: usize,
    /// Filter cutoff in cycles per input sample.
    cutoff: f64,
    /// `phases` rows of `2 * half` coefficients, or empty when computed on demand.
    table: Vec<f32>,
    scratch: Vec<f32>,
    /// Input history; `buf[0]` is input sample number `base` (may be negative: zero padding).
    buf: Vec<f32>,
    base: i64,
    /// The next output sample's number.
    next: u64,
    /// Input samples received.
    received: u64,
    identity: bool,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz (both non-zero; zero is treated as 1).
    pub fn new(from: u32, to: u32) -> Self {
        let (from, to) = (u64::from(from.max(1)), u64::from(to.max(1)));
        let g = gcd(from, to);
        let (step, phases) = (from / g, to / g);
        // Downsampling narrows the filter to the output's Nyquist frequency and
        // widens it in input samples by the same factor.
        let ratio = (phases as f64 / step as f64).min(1.0);
        let cutoff = 0.5 * ratio * ROLLOFF;
        let half = ((ZERO_CROSSINGS as f64 / ratio).ceil() as usize).min(MAX_HALF);
        let mut r = Resampler {
            step,
            phases,
            half,
            cutoff,
            table: Vec::new(),
            scratch: vec![0.0; 2 * half],
            buf: vec![0.0; half],
            base: -(half as i64),
            next: 0,
            received: 0,
            identity: from == to,
        };
        if (phases as usize).saturating_mul(2 * half) <= MAX_TABLE {
            let mut table = vec![0.0; phases as usize * 2 * half];
            for (p, row) in table.chunks_exact_mut(2 * half).enumerate() {
                r.fill_row(p as u64, row);
            }
            r.table = table;
        }
        r
    }

    /// How many samples `n` input samples give in total.
    pub fn output_len(&self, n: usize) -> usize {
        if self.identity {
            return n;
        }
        (n as u64 * self.phases).div_ceil(self.step) as usize
    }

    /// Coefficients for the output phase `p` (input time `n + p/phases`), for
    /// input samples `n - half + 1 ..= n + half`, normalised to unit DC gain.
    fn fill_row(&self, p: u64, row: &mut [f32]) {
        let frac = p as f64 / self.phases as f64;
        let width = self.half as f64;
        let mut sum = 0.0f64;
        for (j, c) in row.iter_mut().enumerate() {
            // Distance from the output time to input sample n - half + 1 + j.
            let t = frac + width - 1.0 - j as f64;
            let x = t / width;
            let v = if x.abs() >= 1.0 {
                0.0
            } else {
                let window = bessel_i0(KAISER_BETA * (1.0 - x * x).sqrt());
                2.0 * self.cutoff * sinc(2.0 * self.cutoff * t) * window
            };
            sum += v;
            *c = v as f32;
        }
        let norm = if sum.abs() > 1e-12 { (1.0 / sum) as f32 } else { 0.0 };
        row.iter_mut().for_each(|c| *c *= norm);
    }

    /// Feeds `input` and appends every output sample that is now complete.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if self.identity {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend_from_slice(input);
        self.received += input.len() as u64;
        self.drain(out, self.received);
    }

    /// Ends the stream: appends the remaining output samples (the input is
    /// taken as silent after its end) and resets for a new stream.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        if self.identity {
            return;
        }
        let total = self.output_len(self.received as usize) as u64;
        self.buf.extend(std::iter::repeat_n(0.0, self.half + 1));
        let end = self.received + self.half as u64 + 1;
        self.drain_until(out, end, total);
        self.buf.clear();
        self.buf.resize(self.half, 0.0);
        self.base = -(self.half as i64);
        self.next = 0;
        self.received = 0;
    }

    fn drain(&mut self, out: &mut Vec<f32>, available: u64) {
        self.drain_until(out, available, u64::MAX);
    }

    /// Emits outputs whose taps all lie below input sample `available`, up to
    /// output number `limit` (exclusive).
    fn drain_until(&mut self, out: &mut Vec<f32>, available: u64, limit: u64) {
        let taps = 2 * self.half;
        while self.next < limit {
            let pos = self.next * self.step;
            let (n, p) = (pos / self.phases, pos % self.phases);
            if n + self.half as u64 >= available {
                break;
            }
            let start = (n as i64 - self.half as i64 + 1 - self.base) as usize;
            let window = &self.buf[start..start + taps];
            let row: &[f32] = if self.table.is_empty() {
                let mut scratch = std::mem::take(&mut self.scratch);
                self.fill_row(p, &mut scratch);
                self.scratch = scratch;
                &self.scratch
            } else {
                let at = p as usize * taps;
                &self.table[at..at + taps]
            };
            out.push(window.iter().zip(row).map(|(x, c)| x * c).sum());
            self.next += 1;
        }
        // Drop history that no later output needs.
        let keep_from = (self.next * self.step / self.phases) as i64 - self.half as i64 + 1;
        let drop = (keep_from - self.base).clamp(0, self.buf.len() as i64) as usize;
        if drop > 4096 || drop > self.buf.len() / 2 {
            self.buf.drain(..drop);
            self.base += drop as i64;
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// The modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, q) = (1.0, 1.0, x * x / 4.0);
    for k in 1..64 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}
