//! Choosing the next token: greedy straight from the logits, or llama.cpp's sampler chain
//! when the request asks for a temperature.

use super::GenerateParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

/// The most likely token (the first of equals, as llama.cpp's greedy sampler picks),
/// read straight from the logits: a sampler would first build a candidate array of the
/// whole vocabulary (150k entries for Qwen) for every token. Two passes that the compiler
/// vectorizes, the largest value and then the first chunk holding it, take about 7-20 µs
/// over 150k logits where a scan tracking the best index took 85 µs, which is per token
/// and per stream. NaN never wins.
pub(super) fn greedy(logits: &[f32]) -> LlamaToken {
    const LANES: usize = 16;
    let chunks = logits.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut lanes = [f32::NEG_INFINITY; LANES];
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = if x > *lane { x } else { *lane };
        }
    }
    let max = lanes.iter().chain(rest).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    let mut base = 0;
    for chunk in logits.chunks(LANES) {
        if chunk.iter().fold(false, |hit, &x| hit | (x == max)) {
            return LlamaToken((base + chunk.iter().position(|&x| x == max).unwrap_or(0)) as i32);
        }
        base += chunk.len();
    }
    LlamaToken(0)
}

pub(super) fn sampler(params: &GenerateParams) -> Option<LlamaSampler> {
    if params.temperature <= 0.0 {
        return None;
    }
    let seed = params.seed.unwrap_or_else(rand::random);
    let mut chain = Vec::new();
    if params.top_k > 0 {
        chain.push(LlamaSampler::top_k(params.top_k as i32));
    }
    chain.push(LlamaSampler::top_p(params.top_p, 1));
    chain.push(LlamaSampler::temp(params.temperature));
    chain.push(LlamaSampler::dist(seed));
    Some(LlamaSampler::chain_simple(chain))
}

#[cfg(test)]
mod tests {
    use super::greedy;

    /// The first index of the largest value, the plain way.
    fn first_max(logits: &[f32]) -> i32 {
        let mut best = 0;
        for (i, &x) in logits.iter().enumerate() {
            if x > logits[best] || logits[best].is_nan() && !x.is_nan() {
                best = i;
            }
        }
        best as i32
    }

    #[test]
    fn greedy_picks_the_first_largest_logit() {
        let mut r: u64 = 7;
        for len in [1, 15, 16, 17, 151_936] {
            let mut logits: Vec<f32> = (0..len)
                .map(|_| {
                    r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (r >> 40) as f32 / 1e5 - 50.0
                })
                .collect();
            assert_eq!(greedy(&logits).0, first_max(&logits), "random, {len} logits");
            // A tie: the earlier index wins, wherever the two sit in their chunks.
            let top = logits.iter().cloned().fold(f32::MIN, f32::max) + 1.0;
            logits[len - 1] = top;
            logits[len / 2] = top;
            assert_eq!(greedy(&logits).0, (len / 2) as i32, "tie, {len} logits");
        }
    }

    #[test]
    fn greedy_skips_nan_and_copes_with_no_finite_logit() {
        assert_eq!(greedy(&[f32::NAN, 1.0, 3.0, f32::NAN, 2.0]).0, 2);
        assert_eq!(greedy(&[f32::NEG_INFINITY; 40]).0, 0);
        assert_eq!(greedy(&[f32::NAN; 20]).0, 0);
        assert_eq!(greedy(&[]).0, 0);
    }
}
