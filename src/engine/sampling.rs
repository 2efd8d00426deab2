//! Choosing the next token: greedy straight from the logits, or llama.cpp's sampler chain
//! when the request asks for a temperature; either held to a grammar when the reply has a
//! format (tool calls, JSON).

use super::grammar::Grammar;
use super::{EngineError, GenerateParams};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
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

/// How one request picks its tokens.
pub(super) struct Sampler {
    /// `None`: greedy, the most likely token.
    chain: Option<LlamaSampler>,
    grammar: Option<LlamaSampler>,
}

impl Sampler {
    pub fn new(
        model: &LlamaModel,
        params: &GenerateParams,
        grammar: Option<&Grammar>,
    ) -> Result<Self, EngineError> {
        let grammar = match grammar {
            None => None,
            Some(g) => {
                let built = match g.triggers.is_empty() {
                    true => LlamaSampler::grammar(model, &g.gbnf, "root"),
                    false => LlamaSampler::grammar_lazy_patterns(model, &g.gbnf, "root", &g.triggers, &[]),
                };
                Some(built.map_err(|e| {
                    tracing::warn!(error = %e, grammar = %g.gbnf, "llama.cpp refused a grammar");
                    EngineError::InvalidRequest(format!("the reply's format could not be set up: {e}"))
                })?)
            }
        };
        Ok(Sampler { chain: sampler(params), grammar })
    }

    /// The next token from output `at` of the last decode.
    ///
    /// With a grammar, the token is first chosen as if there were none and then checked
    /// against it; only when the grammar refuses it is the whole vocabulary filtered (as
    /// llama.cpp's own samplers do): a grammar check of 150k candidates per token costs
    /// milliseconds, one token's check microseconds.
    ///
    /// `refuses` (used without a grammar) turns tokens down: the most likely token it allows
    /// is taken, or a sample among those it allows.
    pub fn sample(
        &mut self,
        ctx: &LlamaContext<'_>,
        at: i32,
        refuses: Option<&dyn Fn(LlamaToken) -> bool>,
    ) -> Result<LlamaToken, EngineError> {
        let first = match &mut self.chain {
            Some(chain) => chain.sample(ctx, at),
            None => greedy(ctx.get_logits_ith(at)),
        };
        let Some(grammar) = &mut self.grammar else {
            return Ok(match refuses {
                Some(refuses) if refuses(first) => self.allowed(ctx, at, first, refuses),
                _ => first,
            });
        };
        let mut single = LlamaTokenDataArray::new(vec![LlamaTokenData::new(first, 1.0, 0.0)], false);
        grammar.apply(&mut single);
        let token = if single.data[0].logit().is_finite() {
            first
        } else {
            let mut all = ctx.token_data_array_ith(at);
            grammar.apply(&mut all);
            match &mut self.chain {
                Some(chain) => {
                    chain.apply(&mut all);
                    all.selected_token().unwrap_or(first)
                }
                // The first of the most likely tokens the grammar allows.
                None => all
                    .data
                    .iter()
                    .filter(|d| d.logit().is_finite())
                    .fold(None, |best: Option<&LlamaTokenData>, d| match best {
                        Some(b) if b.logit() >= d.logit() => Some(b),
                        _ => Some(d),
                    })
                    .map_or(first, LlamaTokenData::id),
            }
        };
        grammar
            .try_accept(token)
            .map_err(|e| EngineError::Failed(format!("the model's output left its required format ({e})")))?;
        Ok(token)
    }
}

impl Sampler {
    /// A token `refuses` allows, when it refused `first`: greedy takes the most likely of the
    /// rest, a sampler samples again without the refused ones (a few tries, then the most
    /// likely allowed token). `first` if every candidate looked at is refused.
    fn allowed(
        &mut self,
        ctx: &LlamaContext<'_>,
        at: i32,
        first: LlamaToken,
        refuses: &dyn Fn(LlamaToken) -> bool,
    ) -> LlamaToken {
        // Candidates by id: data[i] is token i.
        let mut all = ctx.token_data_array_ith(at);
        if let Some(chain) = &mut self.chain {
            let mut refused = first;
            for _ in 0..8 {
                all.data[refused.0 as usize].set_logit(f32::NEG_INFINITY);
                let mut tries = all.clone();
                chain.apply(&mut tries);
                match tries.selected_token() {
                    Some(token) if !refuses(token) => return token,
                    Some(token) => refused = token,
                    None => break,
                }
            }
        }
        let mut ranked: Vec<(f32, i32)> =
            all.data.iter().filter(|d| d.logit().is_finite()).map(|d| (d.logit(), d.id().0)).collect();
        let top = ranked.len().min(256);
        if top == 0 {
            return first;
        }
        ranked.select_nth_unstable_by(top - 1, |a, b| b.0.total_cmp(&a.0));
        ranked.truncate(top);
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.into_iter().map(|(_, id)| LlamaToken(id)).find(|&t| !refuses(t)).unwrap_or(first)
    }
}

fn sampler(params: &GenerateParams) -> Option<LlamaSampler> {
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
