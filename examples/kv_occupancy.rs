//! llama.cpp alone, through llama-cpp-2: llama-bench-style pp512 and tg64 for several
//! KV-cache setups, measured in turns so a drifting machine affects them alike. It shows
//! what idle sequences left in a unified KV cache cost the running one (`src/engine/park.rs`).
//!
//!     cargo run --release --example kv_occupancy -- MODEL.gguf THREADS REPS SETUP...
//!
//! Each SETUP is `n_ctx,n_seq_max,unified(0|1),idle`: `idle` sequences of 512 tokens are
//! decoded first and left in the cache. For example, Hearth's default cache with and without
//! seven idle conversations: `16384,8,1,0 16384,8,1,7`. Prints best and median per setup.
//! `KV_PP_ONLY=1` skips tg64 (pp512 alone, as a steady load to compare processes).
//! `KV_TEXT=FILE` feeds the tokens of a text instead of llama-bench's random tokens.
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::time::Instant;

/// Random tokens, as llama-bench uses, or (with `KV_TEXT=FILE`) the tokens of a text in turn.
struct Rng(u64, i32, Vec<LlamaToken>, usize);
impl Rng {
    fn tok(&mut self) -> LlamaToken {
        if !self.2.is_empty() {
            self.3 += 1;
            return self.2[self.3 % self.2.len()];
        }
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        LlamaToken(((self.0 >> 33) % self.1 as u64) as i32)
    }
}

fn pp(ctx: &mut LlamaContext, batch: &mut LlamaBatch, rng: &mut Rng, n: i32) -> f64 {
    ctx.kv_cache_seq_rm(0, None, None).unwrap();
    batch.clear();
    for p in 0..n {
        batch.add(rng.tok(), p, &[0], p == n - 1).unwrap();
    }
    let t = Instant::now();
    ctx.decode(batch).unwrap();
    ctx.synchronize();
    n as f64 / t.elapsed().as_secs_f64()
}

fn tg(ctx: &mut LlamaContext, batch: &mut LlamaBatch, rng: &mut Rng, n: i32) -> f64 {
    ctx.kv_cache_seq_rm(0, None, None).unwrap();
    let t = Instant::now();
    for p in 0..n {
        batch.clear();
        batch.add(rng.tok(), p, &[0], true).unwrap();
        ctx.decode(batch).unwrap();
    }
    ctx.synchronize();
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = &args[1];
    let threads: i32 = args.get(2).map_or(2, |s| s.parse().unwrap());
    let reps: usize = args.get(3).map_or(8, |s| s.parse().unwrap());
    // name, n_ctx, seqs, unified, fill
    let setups: Vec<(String, u32, u32, bool, usize)> = args[4..]
        .iter()
        .map(|s| {
            let f: Vec<&str> = s.split(',').collect();
            (s.clone(), f[0].parse().unwrap(), f[1].parse().unwrap(), f[2] == "1", f[3].parse().unwrap())
        })
        .collect();
    let pp_only = std::env::var_os("KV_PP_ONLY").is_some();
    let backend = LlamaBackend::init().unwrap();
    let model = LlamaModel::load_from_file(&backend, path, &LlamaModelParams::default()).unwrap();
    let text = match std::env::var("KV_TEXT") {
        Ok(file) => {
            let text = std::fs::read_to_string(file).unwrap();
            model.vocab().tokenize(text.as_bytes(), false, false)
        }
        Err(_) => Vec::new(),
    };
    let mut rng = Rng(12345, model.n_vocab(), text, 0);
    let mut batch = LlamaBatch::new(512, 1);
    let mut ctxs = Vec::new();
    for (_, n_ctx, seqs, unified, fill) in &setups {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(*n_ctx))
            .with_n_batch(512)
            .with_n_ubatch(512)
            .with_n_seq_max(*seqs)
            .with_kv_unified(*unified)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut ctx = model.new_context(&backend, params).unwrap();
        for s in 0..*fill {
            batch.clear();
            for p in 0..512 {
                batch.add(rng.tok(), p, &[(s + 1) as i32], p == 511).unwrap();
            }
            ctx.decode(&mut batch).unwrap();
        }
        pp(&mut ctx, &mut batch, &mut rng, 512); // warm-up
        tg(&mut ctx, &mut batch, &mut rng, 16);
        ctxs.push(ctx);
    }
    let mut res = vec![(Vec::new(), Vec::new()); setups.len()];
    for _ in 0..reps {
        for (i, ctx) in ctxs.iter_mut().enumerate() {
            res[i].0.push(pp(ctx, &mut batch, &mut rng, 512));
            if !pp_only {
                res[i].1.push(tg(ctx, &mut batch, &mut rng, 64));
            }
        }
    }
    for (i, (p, t)) in res.iter_mut().enumerate() {
        p.sort_by(|a, b| b.partial_cmp(a).unwrap());
        t.sort_by(|a, b| b.partial_cmp(a).unwrap());
        if t.is_empty() {
            t.push(0.0);
        }
        println!(
            "{:>16}: pp512 best {:6.1} median {:6.1} | tg64 best {:5.1} median {:5.1}",
            setups[i].0,
            p[0],
            p[p.len() / 2],
            t[0],
            t[t.len() / 2]
        );
    }
}
