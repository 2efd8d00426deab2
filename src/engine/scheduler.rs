//! Continuous batching over one llama.cpp context.
//!
//! Every step builds one batch: the last sampled token of each generating request, then
//! chunks of prompts still being read, up to [`BATCH_TOKENS`]. New requests are admitted
//! between steps, so a long prompt is read a chunk at a time while other replies keep
//! streaming. Each request runs in a slot (a KV sequence); a finished conversation keeps
//! its cache, and its next turn evaluates only the tokens after the shared prefix.
//! When a new conversation needs its sequence, it waits in RAM outside the cache (`park`).
//! Every cache (a slot, RAM, the disk) serves only requests of the owner who filled it.

use super::grammar;
use super::llama::BATCH_TOKENS;
use super::park::{self, Parked};
use super::sampling::Sampler;
use super::slots::{fit_history, Placement, Slots};
use super::spill::Spill;
use super::template::ChatTemplate;
use super::tools::{CallGuard, CallReader, Constraint, ToolCall, ToolFormat, ToolSpec};
use super::{
    ChatMessage, EngineError, Event, FinishReason, Finished, Job, Owner, Prompt, StopMatcher, Timings, Usage,
    Utf8Stream, Work,
};
use crate::telemetry::Metrics;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::DecodeError;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A conversation whose cache a new request would cut by this many tokens or more is kept
/// (parked) first: it is another conversation sharing a prefix, such as the system prompt.
/// A shorter cut is the same conversation rendered a little differently (a reply whose
/// text tokenizes otherwise), whose old tail nobody will ask for.
const KEEP_CUT: usize = 16;

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
}

impl<'m> Scheduler<'m> {
    pub fn new(
        model: &'m LlamaModel,
        template: &'m LlamaChatTemplate,
        jinja: Option<&'m ChatTemplate>,
        ctx: LlamaContext<'m>,
        metrics: &'m Metrics,
        limits: Limits,
        disk: Option<Spill>,
    ) -> Self {
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

    /// The tool-call format the model speaks, or why it cannot take tools.
    fn tool_format(&self) -> Result<ToolFormat, EngineError> {
        let Some(jinja) = self.jinja else {
            return Err(EngineError::ToolsUnsupported(
                "this model has no chat template Hearth can render with tools".into(),
            ));
        };
        jinja.tool_format().map_err(|why| EngineError::ToolsUnsupported(why.explain().into()))
    }

    /// The prompt's tokens. A chat with tools, tool calls or tool results is rendered with the
    /// model's own template; others with llama.cpp's renderer, as they always were.
    fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[ToolSpec]>,
    ) -> Result<Vec<LlamaToken>, EngineError> {
        if tools.is_none() && !messages.iter().any(ChatMessage::needs_template) {
            return self.render_builtin(messages);
        }
        self.tool_format()?;
        let jinja = self.jinja.expect("tool_format checked it");
        let text = jinja.render(messages, tools, true)?;
        tracing::trace!(prompt = %text, "rendered with the model's chat template");
        // llama.cpp adds the BOS token itself where the model wants one.
        let bos = self.model.vocab().token_to_piece(self.model.vocab().bos(), true, None);
        let text = match text.as_bytes().strip_prefix(bos.as_slice()) {
            Some(rest) if !bos.is_empty() => rest,
            _ => text.as_bytes(),
        };
        Ok(self.model.vocab().tokenize(text, true, true))
    }

    fn render_builtin(&self, messages: &[ChatMessage]) -> Result<Vec<LlamaToken>, EngineError> {
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| EngineError::InvalidRequest("messages must not contain NUL characters".into()))?;
        let text = self
            .model
            .apply_chat_template(self.template, &chat, true)
            .map_err(|e| EngineError::Failed(format!("chat template: {e}")))?;
        Ok(self.model.vocab().tokenize(text.as_bytes(), true, true))
    }

    /// Tokenizes a job, fits it into the window and places it in a slot.
    fn start(&mut self, job: Job) -> Result<Active, Box<(Job, EngineError)>> {
        let context = self.limits.context_size;
        let reserve = (job.params.max_tokens as usize).min(context / 4).max(1);
        let tools = job.params.constraint.callable_tools().map(|t| t.tools.as_slice());
        let fitted = match &job.prompt {
            Prompt::Chat(messages) => fit_history(messages.clone(), context, reserve, |m| {
                Ok(self.render(m, tools)?.into_iter().map(|t| t.0).collect())
            })
            .map(|f| (f.tokens, f.dropped)),
            Prompt::Text(text) => {
                let tokens: Vec<i32> = self
                    .model
                    .vocab()
                    .tokenize(text.as_bytes(), true, false)
                    .into_iter()
                    .map(|t| t.0)
                    .collect();
                if tokens.is_empty() || tokens.len() >= context {
                    Err(EngineError::ContextLengthExceeded {
                        prompt_tokens: tokens.len(),
                        context_size: context,
                    })
                } else {
                    Ok((tokens, 0))
                }
            }
        };
        let (tokens, dropped) = match fitted {
            Ok(f) => f,
            Err(e) => return Err(Box::new((job, e))),
        };
        let (sampler, calls, guard) = match self.output(&job) {
            Ok(output) => output,
            Err(e) => return Err(Box::new((job, e))),
        };
        let owner = job.owner;
        let placement =
            self.slots.place(&tokens, owner).expect("a free slot exists below the parallel limit");
        if self.limits.unified {
            // Park the other idle conversations first (the slot and the one it copies from
            // stay): llama.cpp puts new entries in free cells from the lowest one on, and
            // every step attends over all cells up to the highest in use, so a prefix
            // restored above a conversation that is parked right after would make every
            // later step attend over that whole span.
            let keep = [placement.slot, placement.copy_from.unwrap_or(placement.slot)];
            let parked = self.parked.park_idle(&mut self.ctx, &mut self.slots, &keep);
            self.metrics.kv_parks.inc_by(parked as u64);
        }
        // The conversation may be parked in RAM or saved on disk, sparing more than the
        // KV cache offers.
        let in_ram = self.parked.find(&tokens, placement.reuse, owner);
        let best = in_ram.map_or(placement.reuse, |f| f.shared);
        let reuse = match self.parked.disk().and_then(|d| d.find(&tokens, best, owner)) {
            Some((id, shared)) => self.load_saved(placement.slot, id, &tokens[..shared], owner),
            None => match in_ram {
                Some(found) => self.restore_parked(placement.slot, found, &tokens[..found.shared], owner),
                None => {
                    let placement = self.prepare_cache(placement);
                    self.slots.take(placement, owner);
                    placement.reuse
                }
            },
        };
        self.metrics.prompt_tokens.inc_by(tokens.len() as u64);
        self.metrics.prompt_tokens_reused.inc_by(reuse as u64);
        if dropped > 0 {
            tracing::debug!(dropped, "dropped the oldest messages to fit the context window");
        }
        let budget = (job.params.max_tokens as usize).min(context - tokens.len());
        let deadline = job.queued_at + self.limits.timeout;
        Ok(Active {
            slot: placement.slot,
            prompt: tokens.into_iter().map(LlamaToken).collect(),
            next_prompt: reuse,
            reused: reuse,
            dropped,
            pending: None,
            logits_at: None,
            added: Vec::new(),
            budget,
            generated: 0,
            sampler,
            utf8: Utf8Stream::default(),
            stops: StopMatcher::new(job.params.stop.clone()),
            calls,
            guard,
            tool_calls: Vec::new(),
            held: String::new(),
            prefill_started: Instant::now(),
            prefill_ms: None,
            deadline,
            job,
        })
    }

    /// How the job's tokens are chosen (held to a grammar when its reply has a format), the
    /// reader of its tool calls when it may call tools, and the guard that keeps it from
    /// writing a call when its chat involves tools but it may call none.
    #[allow(clippy::type_complexity)]
    fn output(&self, job: &Job) -> Result<(Sampler, Option<CallReader>, Option<CallGuard>), EngineError> {
        let constraint = &job.params.constraint;
        let (format, reader) = match constraint.callable_tools() {
            Some(tools) => {
                let format = self.tool_format()?;
                let names = tools.tools.iter().map(|t| t.name.clone()).collect();
                (Some(format), Some(CallReader::new(format, names)))
            }
            None => (None, None),
        };
        let grammar = grammar::for_constraint(constraint, format)?;
        let involves_tools = matches!(constraint, Constraint::Tools(_))
            || matches!(&job.prompt, Prompt::Chat(m) if m.iter().any(ChatMessage::needs_template));
        let guard = match (reader.is_none() && grammar.is_none() && involves_tools, self.tool_format()) {
            (true, Ok(format)) => Some(CallGuard::new(format)),
            _ => None,
        };
        let sampler = Sampler::new(self.model, &job.params, grammar.as_ref())?;
        Ok((sampler, reader, guard))
    }

    /// Makes a slot's sequence hold exactly the prefix the placement starts from: its own
    /// cache cut after the shared part, or the donor's prefix copied. Returns the placement
    /// actually applied.
    ///
    /// A conversation that gives way, or whose cache is cut by at least [`KEEP_CUT`] tokens,
    /// is parked (or saved to disk) first.
    fn prepare_cache(&mut self, placement: Placement) -> Placement {
        let seq = placement.slot as i32;
        if let Some(from) = placement.copy_from {
            self.make_room(placement.slot);
            if self.copy_prefix(from, seq, placement.reuse) {
                return placement;
            }
            return Placement { reuse: 0, copy_from: None, ..placement };
        }
        let cached = self.slots.get(placement.slot).cached.len();
        if cached >= placement.reuse + KEEP_CUT
            && self.parked.copy_out(&self.ctx, placement.slot, &self.slots)
        {
            self.metrics.kv_parks.inc();
        }
        if placement.reuse >= cached
            || self.ctx.kv_cache_seq_rm(seq, Some(placement.reuse as u32), None).is_ok()
        {
            return placement;
        }
        // Some caches (recurrent, sliding-window) cannot drop a suffix: start over.
        let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
        Placement { reuse: 0, ..placement }
    }

    /// Copies the first `len` tokens of sequence `from` into the empty sequence `seq`.
    fn copy_prefix(&mut self, from: usize, seq: i32, len: usize) -> bool {
        if self.limits.unified {
            // The sequences share cells: only their labels change.
            return self.ctx.kv_cache_seq_cp(from as i32, seq, Some(0), Some(len as u32)).is_ok();
        }
        // Each sequence has its own cells, and llama.cpp copies only whole ones between
        // them: go through its serialization instead.
        match park::seq_bytes(&self.ctx, from as i32) {
            Some(state) => park::write(&mut self.ctx, &state, seq, len),
            None => false,
        }
    }

    /// Empties `slot`'s sequence, parking (or saving) the conversation it held.
    fn make_room(&mut self, slot: usize) {
        if !self.slots.get(slot).cached.is_empty() && self.parked.evict(&mut self.ctx, slot, &mut self.slots)
        {
            self.metrics.kv_parks.inc();
        }
        let _ = self.ctx.kv_cache_seq_rm(slot as i32, None, None);
    }

    /// Puts a parked conversation into `slot`, keeping the `prefix` it shares with the
    /// prompt. Returns the tokens reused.
    fn restore_parked(&mut self, slot: usize, found: park::Found, prefix: &[i32], owner: Owner) -> usize {
        let (parked_for, tokens, state) = self.parked.checkout(found);
        self.make_room(slot);
        let restored = park::write(&mut self.ctx, &state, slot as i32, prefix.len());
        if !found.continues {
            // Another conversation that only lent its prefix stays parked.
            self.parked.park(parked_for, tokens, state);
        }
        if restored {
            self.metrics.kv_restores.inc();
        }
        let reuse = if restored { prefix.len() } else { 0 };
        self.slots.take_prefix(slot, &prefix[..reuse], owner);
        reuse
    }

    /// Drops every idle conversation's cache: in the KV cache, parked in RAM and on disk.
    fn forget_idle(&mut self) {
        for slot in 0..self.slots.len() {
            if !self.slots.get(slot).busy {
                let _ = self.ctx.kv_cache_seq_rm(slot as i32, None, None);
                self.slots.clear(slot);
            }
        }
        self.parked.clear();
        if let Some(disk) = self.parked.disk() {
            disk.clear();
        }
        tracing::info!("dropped the cached conversations");
    }

    /// Ends the requests still running, then saves every idle conversation to the disk
    /// cache (when there is one): the server is stopping or the model is being unloaded,
    /// and their next turns, after a restart too, need not read their history again.
    fn stop(&mut self) {
        for a in std::mem::take(&mut self.active) {
            self.finish(a, Outcome::Failed(EngineError::NotReady("the server is stopping".into())));
        }
        if self.parked.disk().is_none() {
            return;
        }
        self.parked.save_all(&self.ctx, &self.slots);
        tracing::info!("saved the idle conversations' caches");
    }

    /// Puts a conversation saved on disk into `slot` (parking the slot's own conversation
    /// first), keeping the `prefix` it shares with the prompt. Returns the tokens reused:
    /// none if the file could not be used.
    fn load_saved(&mut self, slot: usize, id: u64, prefix: &[i32], owner: Owner) -> usize {
        self.make_room(slot);
        let loaded = self.parked.load(&mut self.ctx, id, slot as i32, prefix.len());
        let reuse = if loaded { prefix.len() } else { 0 };
        self.slots.take_prefix(slot, &prefix[..reuse], owner);
        reuse
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
        let mut room = BATCH_TOKENS - generating;
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

    /// Frees the least recently used idle sequence. False when none is left.
    fn evict_one(&mut self) -> bool {
        let Some(slot) = self.slots.eviction_candidate() else { return false };
        self.make_room(slot);
        tracing::debug!(slot, "evicted an idle conversation from the KV cache");
        true
    }

    /// Sends a request's last event. The caller has already removed it from `active`.
    fn finish(&mut self, mut a: Active, outcome: Outcome) {
        self.slots.release(a.slot);
        self.metrics.active_sequences.set(self.active.len() as i64);
        let event = match outcome {
            Outcome::Gone => {
                self.metrics.requests_cancelled.inc();
                tracing::debug!(slot = a.slot, "client went away; generation stopped");
                return;
            }
            Outcome::Failed(e) => {
                if matches!(e, EngineError::Timeout(_)) {
                    self.metrics.requests_timed_out.inc();
                }
                Event::Error(e)
            }
            Outcome::Finished(mut finish_reason) => {
                let mut tail = a.stops.push(&a.utf8.finish()).0 + &a.stops.finish();
                if let Some(reader) = &mut a.calls {
                    let mut read = reader.push(&tail);
                    let last = reader.finish();
                    read.content += &last.content;
                    tail = read.content;
                    a.tool_calls.extend(read.calls.into_iter().chain(last.calls));
                }
                let text = std::mem::take(&mut a.held) + &tail;
                if !text.is_empty() && a.job.events.send(Event::Token(text)).is_err() {
                    return;
                }
                if !a.tool_calls.is_empty() && finish_reason == FinishReason::Stop {
                    finish_reason = FinishReason::ToolCalls;
                }
                let prompt_ms = a.prefill_ms.unwrap_or_default();
                let total_ms = a.prefill_started.elapsed().as_secs_f64() * 1000.0;
                let predicted_ms = (total_ms - prompt_ms).max(0.0);
                let evaluated = a.prompt.len() - a.reused;
                let timings = Timings::new(
                    evaluated as u32,
                    prompt_ms,
                    a.generated as u32,
                    predicted_ms,
                    a.reused as u32,
                );
                self.metrics.generation_tokens_per_second.set(timings.predicted_per_second);
                Event::Done(Finished {
                    finish_reason,
                    usage: Usage {
                        prompt_tokens: a.prompt.len() as u32,
                        completion_tokens: a.generated as u32,
                        total_tokens: (a.prompt.len() + a.generated) as u32,
                    },
                    timings,
                    dropped_messages: a.dropped as u32,
                    tool_calls: std::mem::take(&mut a.tool_calls),
                })
            }
        };
        a.job.share.charge(a.generated as u32);
        let _ = a.job.events.send(event);
    }
}

/// Samples the next token for one request and streams its text.
/// Returns how the request ends, or `None` if it goes on.
fn sample(
    model: &LlamaModel,
    ctx: &LlamaContext<'_>,
    metrics: &Metrics,
    a: &mut Active,
    at: i32,
) -> Option<Outcome> {
    if a.prefill_ms.is_none() {
        a.prefill_ms = Some(a.prefill_started.elapsed().as_secs_f64() * 1000.0);
        metrics.prompt_tokens_evaluated.inc_by((a.prompt.len() - a.reused) as u64);
        metrics.time_to_first_token.observe(a.job.queued_at.elapsed().as_secs_f64());
    }
    let vocab = model.vocab();
    let sampled = match &a.guard {
        Some(guard) => {
            let refuses = |t| guard.refuses(&String::from_utf8_lossy(&vocab.token_to_piece(t, false, None)));
            a.sampler.sample(ctx, at, Some(&refuses))
        }
        None => a.sampler.sample(ctx, at, None),
    };
    let token = match sampled {
        Ok(token) => token,
        Err(e) => return Some(Outcome::Failed(e)),
    };
    if vocab.is_eog(token) {
        return Some(Outcome::Finished(FinishReason::Stop));
    }
    a.generated += 1;
    metrics.tokens_generated.inc();
    let piece = a.utf8.push(&vocab.token_to_piece(token, false, None));
    if let Some(guard) = &mut a.guard {
        guard.push(&piece);
    }
    let (mut text, stopped) = a.stops.push(&piece);
    if let Some(reader) = &mut a.calls {
        let read = reader.push(&text);
        text = read.content;
        a.tool_calls.extend(read.calls);
    }
    if !a.job.params.stream {
        a.held.push_str(&text);
    } else if !text.is_empty() && a.job.events.send(Event::Token(text)).is_err() {
        return Some(Outcome::Gone);
    }
    if stopped {
        // Nothing after a stop string is sent, not even held-back text.
        a.utf8 = Utf8Stream::default();
        a.stops = StopMatcher::default();
        return Some(Outcome::Finished(FinishReason::Stop));
    }
    if a.generated >= a.budget {
        return Some(Outcome::Finished(FinishReason::Length));
    }
    a.pending = Some(token);
    None
}
