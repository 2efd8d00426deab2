//! Continuous batching over one llama.cpp context.
//!
//! Every step builds one batch: the last sampled token of each generating request, then
//! chunks of prompts still being read, up to [`BATCH_TOKENS`]. New requests are admitted
//! between steps, so a long prompt is read a chunk at a time while other replies keep
//! streaming. Each request runs in a slot (a KV sequence); a finished conversation keeps
//! its cache, and its next turn evaluates only the tokens after the shared prefix.
//! When a new conversation needs its sequence, it waits in RAM outside the cache (`park`).
//! Every cache (a slot, RAM, the disk) serves only requests of the owner who filled it.

mod cache;
mod finish;
mod prompt;

use finish::sample;

use super::llama::BATCH_TOKENS;
use super::park::Parked;
use super::sampling::Sampler;
use super::slots::Slots;
use super::spill::Spill;
use super::template::ChatTemplate;
use super::threads::{Plan, ThreadSettings};
use super::tools::{CallGuard, CallReader, ToolCall};
use super::{EngineError, Event, FinishReason, Job, StopMatcher, Utf8Stream, Work};
use crate::telemetry::Metrics;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::DecodeError;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub(super) struct Limits {
    /// Most tokens one request may span (prompt and reply).
    pub context_size: usize,
    /// Requests generating at once.
    pub parallel: usize,
    /// KV sequences (at least `parallel`); idle ones keep finished conversations.
    pub sequences: usize,
    /// The sequences share one KV cache (else each has its own cells).
    pub unified: bool,
    /// Most tokens of idle conversations parked in RAM.
    pub idle_cache_tokens: usize,
    pub timeout: Duration,
    /// The threads as configured and started, and the governor that moves them.
    pub threads: ThreadSettings,
}

/// A request being served.
struct Active {
    job: Job,
    slot: usize,
    prompt: Vec<LlamaToken>,
    /// Next prompt token to evaluate; prompt tokens before it are in the cache.
    next_prompt: usize,
    reused: usize,
    dropped: usize,
    /// A sampled token not yet written to the cache.
    pending: Option<LlamaToken>,
    /// This request's logits in the current batch.
    logits_at: Option<i32>,
    /// Tokens this request added to the current batch.
    added: Vec<i32>,
    budget: usize,
    generated: usize,
    sampler: Sampler,
    utf8: Utf8Stream,
    stops: StopMatcher,
    /// Reads tool calls out of the text when the model may call tools.
    calls: Option<CallReader>,
    /// Keeps the reply from being a call when the chat involves tools but offers none.
    guard: Option<CallGuard>,
    tool_calls: Vec<ToolCall>,
    /// Text not sent yet: a reply that is not streamed is sent whole at the end.
    held: String,
    prefill_started: Instant,
    prefill_ms: Option<f64>,
    deadline: Instant,
}

/// How a request leaves the scheduler.
enum Outcome {
    Finished(FinishReason),
    Failed(EngineError),
    /// The client went away: nothing to send.
    Gone,
}

pub(super) struct Scheduler<'m> {
    model: &'m LlamaModel,
    template: &'m LlamaChatTemplate,
    /// The model's own chat template, for chats with tools (`None`: it has none Hearth can
    /// compile).
    jinja: Option<&'m ChatTemplate>,
    ctx: LlamaContext<'m>,
    metrics: &'m Metrics,
    limits: Limits,
    slots: Slots,
    parked: Parked,
    active: Vec<Active>,
    batch: LlamaBatch<'static>,
    /// The context's threads, changed between decodes.
    threads: Plan,
    governor: crate::governor::Governor,
}

impl<'m> Scheduler<'m> {
    pub fn new(
        model: &'m LlamaModel,
        template: &'m LlamaChatTemplate,
        jinja: Option<&'m ChatTemplate>,
        ctx: LlamaContext<'m>,
        metrics: &'m Metrics,
        mut limits: Limits,
        disk: Option<Spill>,
    ) -> Self {
        let settings = std::mem::replace(
            &mut limits.threads,
            ThreadSettings { configured: (0, 0), start: (0, 0), governor: Default::default() },
        );
        let governor = settings.governor.clone();
        let threads = Plan::new(settings);
        let count = limits.sequences.max(limits.parallel);
        let slots = Slots::new(count);
        let parked = Parked::new(limits.idle_cache_tokens, metrics.kv_parked_tokens.clone(), disk);
        Scheduler {
            model,
            template,
            jinja,
            ctx,
            metrics,
            limits,
            slots,
            parked,
            active: Vec::new(),
            batch: LlamaBatch::new(BATCH_TOKENS, 1),
            threads,
            governor,
        }
    }

    /// Serves jobs until told to stop or the queue's senders are gone. A panic in one step
    /// fails the requests of that step and the loop goes on.
    pub fn run(&mut self, mut jobs: mpsc::Receiver<Work>) {
        loop {
            if !self.admit(&mut jobs) {
                self.stop();
                return;
            }
            if self.active.is_empty() {
                continue;
            }
            if std::panic::catch_unwind(AssertUnwindSafe(|| self.step())).is_err() {
                tracing::error!("engine step panicked; failing its requests");
                let active = std::mem::take(&mut self.active);
                for a in active {
                    let seq = a.slot as i32;
                    let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
                    self.slots.clear(a.slot);
                    self.finish(a, Outcome::Failed(EngineError::Failed("the engine panicked".into())));
                }
            }
        }
    }

    /// Takes new jobs while there is room. Blocks only when nothing is running.
    /// Returns false when told to stop, or when the queue is closed and nothing is running.
    fn admit(&mut self, jobs: &mut mpsc::Receiver<Work>) -> bool {
        while self.active.len() < self.limits.parallel {
            let work = if self.active.is_empty() {
                match jobs.blocking_recv() {
                    Some(work) => work,
                    None => return false,
                }
            } else {
                match jobs.try_recv() {
                    Ok(work) => work,
                    Err(_) => break,
                }
            };
            let job = match work {
                Work::Job(job) => job,
                Work::Forget => {
                    self.forget_idle();
                    continue;
                }
                Work::Stop => return false,
            };
            self.metrics.queue_depth.dec();
            if job.events.is_closed() {
                self.metrics.requests_cancelled.inc();
                continue;
            }
            if job.queued_at.elapsed() >= self.limits.timeout {
                self.metrics.requests_timed_out.inc();
                let _ = job.events.send(Event::Error(EngineError::Timeout(self.limits.timeout.as_secs())));
                continue;
            }
            match self.start(job) {
                Ok(active) => {
                    self.active.push(active);
                    self.metrics.active_sequences.set(self.active.len() as i64);
                }
                Err(refused) => {
                    let (job, e) = *refused;
                    let _ = job.events.send(Event::Error(e));
                }
            }
        }
        true
    }

    /// One decode over all active requests, then sampling for those that need it.
    fn step(&mut self) {
        self.drop_departed();
        if self.active.is_empty() {
            return;
        }
        if self.limits.unified {
            let parked = self.parked.park_idle(&mut self.ctx, &mut self.slots, &[]);
            self.metrics.kv_parks.inc_by(parked as u64);
        }
        self.threads.apply(&mut self.ctx);
        self.metrics.generation_threads.set(i64::from(self.threads.now().0));
        self.fill_batch();
        loop {
            match self.ctx.decode(&mut self.batch) {
                Ok(()) => break,
                Err(DecodeError::NoKvCacheSlot) if self.evict_one() => continue,
                Err(e) => {
                    // Nothing idle to evict: the newest request gives way.
                    let newest = (0..self.active.len()).max_by_key(|&i| self.active[i].prefill_started);
                    let a = self.active.swap_remove(newest.expect("a non-empty batch has requests"));
                    let _ = self.ctx.kv_cache_seq_rm(a.slot as i32, None, None);
                    self.slots.clear(a.slot);
                    let error = EngineError::Failed(format!("the KV cache is full ({e}); retry shortly"));
                    self.finish(a, Outcome::Failed(error));
                    return;
                }
            }
        }
        let mut done = Vec::new();
        for (i, a) in self.active.iter_mut().enumerate() {
            self.slots.extend(a.slot, &a.added);
            if a.pending.take().is_none() {
                a.next_prompt += a.added.len();
            }
            a.added.clear();
            if let Some(at) = a.logits_at.take() {
                if let Some(outcome) = sample(self.model, &self.ctx, self.metrics, a, at) {
                    done.push((i, outcome));
                }
            }
        }
        for (i, outcome) in done.into_iter().rev() {
            let a = self.active.swap_remove(i);
            self.finish(a, outcome);
        }
    }

    /// Ends requests whose client left or whose time is up, before spending work on them.
    fn drop_departed(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.active.len() {
            let a = &self.active[i];
            let outcome = if a.job.events.is_closed() {
                Some(Outcome::Gone)
            } else if now >= a.deadline {
                Some(Outcome::Failed(EngineError::Timeout(self.limits.timeout.as_secs())))
            } else {
                None
            };
            match outcome {
                Some(outcome) => {
                    let a = self.active.swap_remove(i);
                    self.finish(a, outcome);
                }
                None => i += 1,
            }
        }
    }

    /// One token for each generating request, and prompt chunks in the room left, shared
    /// out in arrival order. The tokens go in sequence order: with a cache per sequence,
    /// llama.cpp decodes sequences with consecutive ids in one pass and splits the batch at
    /// any other (a batch in arrival order took several passes, 35% slower at 8 streams).
    fn fill_batch(&mut self) {
        self.batch.clear();
        let generating = self.active.iter().filter(|a| a.pending.is_some()).count();
        // Under pressure the governor asks for smaller prompt chunks.
        let mut room = (BATCH_TOKENS - generating).min(self.governor.prompt_chunk(BATCH_TOKENS));
        let mut chunks = vec![0; self.active.len()];
        for (chunk, a) in chunks.iter_mut().zip(&self.active) {
            if a.pending.is_none() {
                *chunk = (a.prompt.len() - a.next_prompt).min(room);
                room -= *chunk;
            }
        }
        let mut order: Vec<usize> = (0..self.active.len()).collect();
        order.sort_by_key(|&i| self.active[i].slot);
        for i in order {
            let a = &mut self.active[i];
            a.added.clear();
            a.logits_at = None;
            let base = self.slots.get(a.slot).cached.len();
            if let Some(token) = a.pending {
                a.logits_at = Some(self.batch.n_tokens());
                self.batch.add(token, base as i32, &[a.slot as i32], true).expect("room for every sequence");
                a.added.push(token.0);
                continue;
            }
            let start = a.next_prompt;
            for (offset, token) in a.prompt[start..start + chunks[i]].iter().enumerate() {
                let last = start + offset + 1 == a.prompt.len();
                if last {
                    a.logits_at = Some(self.batch.n_tokens());
                }
                self.batch.add(*token, (base + offset) as i32, &[a.slot as i32], last).expect("room checked");
                a.added.push(token.0);
            }
        }
    }
}
