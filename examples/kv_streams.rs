//! llama.cpp alone, through llama-cpp-2: batched generation over N sequences of LEN tokens
//! each, for three KV-cache layouts, measured in turns (16 steps each, REPS times) so that a
//! drifting machine affects them alike. It shows why the engine gives each sequence cells
//! of its own when the cache allows (`src/engine/llama.rs`):
//!
//! - `unified`: one cache shared by all sequences (`kv_unified`), N sequences filled;
//! - `unified-holes`: the same after N other sequences between them were removed, as when
//!   idle conversations are parked;
//! - `split`: a cache per sequence (llama.cpp's default, and llama-server's).
//!
//!     cargo run --release --example kv_streams -- MODEL.gguf THREADS REPS N LEN
//!
//! Prints each layout's median tokens/s and its median ratio to `unified` over the turns.
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::time::Instant;

struct Rng(u64, i32);
impl Rng {
    fn tok(&mut self) -> LlamaToken {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        LlamaToken(((self.0 >> 33) % self.1 as u64) as i32)
    }
}

fn fill(ctx: &mut LlamaContext, batch: &mut LlamaBatch, rng: &mut Rng, seq: i32, len: i32) {
    batch.clear();
    for p in 0..len {
        batch.add(rng.tok(), p, &[seq], p == len - 1).unwrap();
    }
    ctx.decode(batch).unwrap();
}

fn steps(
    ctx: &mut LlamaContext,
    batch: &mut LlamaBatch,
    rng: &mut Rng,
    seqs: &[i32],
    len: i32,
    k: i32,
) -> f64 {
    let t = Instant::now();
    for i in 0..k {
        batch.clear();
        for &s in seqs {
            batch.add(rng.tok(), len + i, &[s], true).unwrap();
        }
        ctx.decode(batch).unwrap();
    }
    ctx.synchronize();
    let el = t.elapsed().as_secs_f64();
    for &s in seqs {
        ctx.clear_kv_cache_seq(Some(s as u32), Some(len as u32), None).unwrap();
    }
    (k as usize * seqs.len()) as f64 / el
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let threads: i32 = a[2].parse().unwrap();
    let reps: usize = a[3].parse().unwrap();
    let n: i32 = a[4].parse().unwrap();
    let len: i32 = a[5].parse().unwrap();
    let backend = LlamaBackend::init().unwrap();
    let model = llama_cpp_2::model::LlamaModel::load_from_file(&backend, &a[1], &LlamaModelParams::default())
        .unwrap();
    let mut rng = Rng(7, model.n_vocab());
    let mut batch = LlamaBatch::new(512, 1);
    let mk = |n_ctx: u32, seqs: u32, unified: bool| {
        let p = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(512)
            .with_n_ubatch(512)
            .with_n_seq_max(seqs)
            .with_kv_unified(unified)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        model.new_context(&backend, p).unwrap()
    };
    // name, ctx, running seqs
    let mut setups: Vec<(&str, LlamaContext, Vec<i32>)> = Vec::new();
    {
        let mut c = mk(4096 * n as u32, 2 * n as u32, true);
        for s in 0..n {
            fill(&mut c, &mut batch, &mut rng, s, len);
        }
        setups.push(("unified", c, (0..n).collect()));
    }
    {
        let mut c = mk(4096 * n as u32, 2 * n as u32, true);
        for s in 0..2 * n {
            fill(&mut c, &mut batch, &mut rng, s, len);
        }
        for s in (1..2 * n).step_by(2) {
            c.clear_kv_cache_seq(Some(s as u32), None, None).unwrap();
        }
        setups.push(("unified-holes", c, (0..2 * n).step_by(2).collect()));
    }
    {
        let mut c = mk(4096 * n as u32, n as u32, false);
        for s in 0..n {
            fill(&mut c, &mut batch, &mut rng, s, len);
        }
        setups.push(("split", c, (0..n).collect()));
    }
    for (_, c, seqs) in setups.iter_mut() {
        steps(c, &mut batch, &mut rng, seqs, len, 8);
    }
    let mut res: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    for r in 0..reps {
        for j in 0..setups.len() {
            let i = if r % 2 == 0 { j } else { setups.len() - 1 - j };
            let (_, c, seqs) = &mut setups[i];
            res[i].push(steps(c, &mut batch, &mut rng, seqs, len, 16));
        }
    }
    let med = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    for (i, (name, _, _)) in setups.iter().enumerate() {
        let paired: Vec<f64> = res[i].iter().zip(&res[0]).map(|(x, y)| x / y).collect();
        println!("{name:>14}: median {:6.1} tok/s, paired vs unified {:.3}", med(&res[i]), med(&paired));
    }
}
