//! The engine thread: owns llama.cpp's model and context and serves jobs one at a time.

use super::{
    verify_model_file, ChatMessage, EngineError, Event, FinishReason, GenerateParams, Job, ModelInfo,
    ModelState, StopMatcher, Timings, Usage, Utf8Stream, WorkerConfig,
};
use crate::telemetry::Metrics;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// Tokens decoded per llama.cpp call while reading a prompt.
const PREFILL_CHUNK: usize = 512;

pub(super) fn run(
    config: WorkerConfig,
    mut jobs: mpsc::Receiver<Job>,
    state: watch::Sender<ModelState>,
    metrics: Metrics,
) {
    let fail = |error: String| {
        tracing::error!(path = %config.path.display(), %error, "model not loaded");
        metrics.model_load_failures.inc();
        let _ = state.send(ModelState::Failed { path: config.path.clone(), error });
    };

    let started = Instant::now();
    let verified = match verify_model_file(&config.path, config.verify_sha256) {
        Ok((_, verified)) => verified,
        Err(e) => return fail(e),
    };
    let backend = match LlamaBackend::init() {
        Ok(b) => b,
        Err(e) => return fail(format!("llama.cpp backend: {e}")),
    };
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
    let model = match LlamaModel::load_from_file(&backend, &config.path, &LlamaModelParams::default()) {
        Ok(m) => m,
        Err(e) => return fail(format!("llama.cpp could not load {}: {e}", config.path.display())),
    };
    let trained = model.n_ctx_train();
    let context_size = config.context_size.min(trained.max(128));
    let threads = config.threads as i32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(context_size))
        .with_n_batch(PREFILL_CHUNK as u32)
        .with_n_ubatch(PREFILL_CHUNK as u32)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match model.new_context(&backend, params) {
        Ok(c) => c,
        Err(e) => return fail(format!("llama.cpp context ({context_size} tokens): {e}")),
    };
    let (template, template_name) = match model.chat_template(None) {
        Ok(t) => (t, "gguf".to_string()),
        Err(_) => (LlamaChatTemplate::new("chatml").expect("static name"), "chatml (fallback)".into()),
    };

    let info = ModelInfo {
        id: model_id(&config.path),
        path: config.path.clone(),
        architecture: model.meta_val_str("general.architecture").unwrap_or_default(),
        file_size: std::fs::metadata(&config.path).map_or(0, |m| m.len()),
        context_size,
        trained_context: trained,
        parameters: model.n_params(),
        threads: config.threads,
        sha256_verified: verified,
        chat_template: template_name,
        load_seconds: started.elapsed().as_secs_f64(),
        loaded_at: crate::store::now(),
    };
    tracing::info!(
        model = %info.id, context = context_size, threads, seconds = format!("{:.1}", info.load_seconds),
        "model ready"
    );
    metrics.model_loaded.set(1);
    let _ = state.send(ModelState::Ready(Box::new(info)));

    let engine = Worker { model: &model, template: &template, metrics: &metrics };
    while let Some(job) = jobs.blocking_recv() {
        metrics.queue_depth.dec();
        if job.events.is_closed() {
            continue; // the client left while waiting
        }
        let waited = job.queued_at.elapsed();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| engine.generate(&mut ctx, &job)));
        let event = match outcome {
            Ok(Ok((finish_reason, usage, timings))) => {
                tracing::debug!(?waited, ?usage, ?timings, "reply finished");
                Event::Done { finish_reason, usage, timings }
            }
            Ok(Err(Cancelled)) => {
                tracing::debug!("client went away; generation stopped");
                continue;
            }
            Ok(Err(Failed(e))) => Event::Error(e),
            Err(_) => Event::Error(EngineError::Failed("the engine panicked on this request".into())),
        };
        let _ = job.events.send(event);
    }
    metrics.model_loaded.set(0);
}

/// How one job ended other than normally.
enum Stop {
    Cancelled,
    Failed(EngineError),
}
use Stop::{Cancelled, Failed};

impl From<EngineError> for Stop {
    fn from(e: EngineError) -> Self {
        Failed(e)
    }
}

struct Worker<'m> {
    model: &'m LlamaModel,
    template: &'m LlamaChatTemplate,
    metrics: &'m Metrics,
}

impl Worker<'_> {
    fn render(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| EngineError::InvalidRequest("messages must not contain NUL characters".into()))?;
        self.model
            .apply_chat_template(self.template, &chat, true)
            .map_err(|e| EngineError::Failed(format!("chat template: {e}")))
    }

    fn generate(
        &self,
        ctx: &mut LlamaContext<'_>,
        job: &Job,
    ) -> Result<(FinishReason, Usage, Timings), Stop> {
        let prompt = self.render(&job.messages)?;
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(prompt.as_bytes(), true, true);
        let context_size = ctx.n_ctx() as usize;
        if tokens.is_empty() || tokens.len() >= context_size {
            return Err(Failed(EngineError::ContextLengthExceeded {
                prompt_tokens: tokens.len(),
                context_size,
            }));
        }
        let budget = (job.params.max_tokens as usize).min(context_size - tokens.len());
        self.metrics.prompt_tokens.inc_by(tokens.len() as u64);

        let prefill_started = Instant::now();
        ctx.clear_kv_cache();
        let mut batch = LlamaBatch::new(PREFILL_CHUNK, 1);
        for (chunk_index, chunk) in tokens.chunks(PREFILL_CHUNK).enumerate() {
            batch.clear();
            let base = chunk_index * PREFILL_CHUNK;
            for (i, token) in chunk.iter().enumerate() {
                let pos = base + i;
                batch.add(*token, pos as i32, &[0], pos + 1 == tokens.len()).map_err(failed)?;
            }
            ctx.decode(&mut batch).map_err(failed)?;
            if job.events.is_closed() {
                return Err(Cancelled);
            }
        }

        let prompt_ms = prefill_started.elapsed().as_secs_f64() * 1000.0;
        let generation_started = Instant::now();
        let mut sampler = sampler(&job.params);
        let mut utf8 = Utf8Stream::default();
        let mut stops = StopMatcher::new(job.params.stop.clone());
        let mut generated = 0usize;
        let mut position = tokens.len();
        let mut hit_stop_string = false;
        let finish = loop {
            let token = sampler.sample(ctx, batch.n_tokens() - 1);
            if vocab.is_eog(token) {
                break FinishReason::Stop;
            }
            generated += 1;
            self.metrics.tokens_generated.inc();
            let piece = utf8.push(&vocab.token_to_piece(token, false, None));
            let (text, stopped) = stops.push(&piece);
            if !text.is_empty() && job.events.send(Event::Token(text)).is_err() {
                return Err(Cancelled);
            }
            if stopped {
                hit_stop_string = true;
                break FinishReason::Stop;
            }
            if generated >= budget {
                break FinishReason::Length;
            }
            batch.clear();
            batch.add(token, position as i32, &[0], true).map_err(failed)?;
            position += 1;
            ctx.decode(&mut batch).map_err(failed)?;
        };
        // After a stop string nothing more is emitted; otherwise release held-back text.
        let tail = if hit_stop_string {
            String::new()
        } else {
            let (text, _) = stops.push(&utf8.finish());
            text + &stops.finish()
        };
        if !tail.is_empty() && job.events.send(Event::Token(tail)).is_err() {
            return Err(Cancelled);
        }
        let usage = Usage {
            prompt_tokens: tokens.len() as u32,
            completion_tokens: generated as u32,
            total_tokens: (tokens.len() + generated) as u32,
        };
        let predicted_ms = generation_started.elapsed().as_secs_f64() * 1000.0;
        let timings = Timings::new(tokens.len() as u32, prompt_ms, generated as u32, predicted_ms, 0);
        Ok((finish, usage, timings))
    }
}

fn failed(e: impl std::fmt::Display) -> Stop {
    Failed(EngineError::Failed(e.to_string()))
}

fn sampler(params: &GenerateParams) -> LlamaSampler {
    if params.temperature <= 0.0 {
        return LlamaSampler::greedy();
    }
    let seed = params.seed.unwrap_or_else(rand::random);
    let mut chain = Vec::new();
    if params.top_k > 0 {
        chain.push(LlamaSampler::top_k(params.top_k as i32));
    }
    chain.push(LlamaSampler::top_p(params.top_p, 1));
    chain.push(LlamaSampler::temp(params.temperature));
    chain.push(LlamaSampler::dist(seed));
    LlamaSampler::chain_simple(chain)
}

/// The name clients use for a model: its manifest name, or the file stem.
fn model_id(path: &std::path::Path) -> String {
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    match crate::models::manifest().find_by_file(file) {
        Some(entry) => entry.name.clone(),
        None => file.strip_suffix(".gguf").unwrap_or(file).to_string(),
    }
}
