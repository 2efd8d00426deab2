//! The engine thread: validates and loads the model, then hands it to the scheduler.

use super::scheduler::Scheduler;
use super::spill::{model_key, Spill, SpillMetrics};
use super::template::ChatTemplate;
use super::{verify_model_file, ModelInfo, ModelState, Work, WorkerConfig};
use crate::telemetry::Metrics;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatTemplate, LlamaModel};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// Tokens per llama.cpp decode call: generating sequences plus prompt chunks.
pub(super) const BATCH_TOKENS: usize = 512;

/// llama.cpp's backend, initialised once for the process (several models share it).
fn backend() -> &'static Result<LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let backend = LlamaBackend::init().map_err(|e| format!("llama.cpp backend: {e}"))?;
        llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
        Ok(backend)
    })
}

/// Validates a model file and loads it (the backend is shared by every model).
/// Returns the backend, the model and whether its sha256 matched the manifest.
/// Loading progress is published to `state` in steps of 5%.
pub(super) fn load_model(
    path: &std::path::Path,
    verify_sha256: bool,
    state: &Arc<watch::Sender<ModelState>>,
) -> Result<(&'static LlamaBackend, LlamaModel, Option<bool>), String> {
    let (_, verified) = verify_model_file(path, verify_sha256)?;
    let backend = backend().as_ref().map_err(Clone::clone)?;
    let (state, owned_path) = (state.clone(), path.to_path_buf());
    let mut shown = 0.0f32;
    let params = LlamaModelParams::default().with_progress_callback(move |progress| {
        if progress >= shown + 0.05 || progress >= 1.0 {
            shown = progress;
            let _ = state.send(ModelState::Loading { path: owned_path.clone(), progress });
        }
        true // never abort
    });
    let model = LlamaModel::load_from_file(backend, path, &params)
        .map_err(|e| format!("llama.cpp could not load {}: {e}", path.display()))?;
    Ok((backend, model, verified))
}

/// The model's own chat template, compiled for chats with tools; `None` when the file has
/// none or Hearth cannot compile it (such chats are then refused, plain ones still work).
fn jinja_template(model: &LlamaModel) -> Option<ChatTemplate> {
    let source = model.meta_val_str("tokenizer.chat_template").ok()?;
    let special =
        |token| String::from_utf8_lossy(&model.vocab().token_to_piece(token, true, None)).into_owned();
    let (bos, eos) = (special(model.vocab().bos()), special(model.vocab().eos()));
    ChatTemplate::new(&source, &bos, &eos)
        .inspect_err(
            |e| tracing::warn!(error = %e, "the model's chat template does not compile; no tool calls"),
        )
        .ok()
}

pub(super) fn run(
    config: WorkerConfig,
    jobs: mpsc::Receiver<Work>,
    state: watch::Sender<ModelState>,
    metrics: Metrics,
) {
    let state = Arc::new(state);
    let fail = |error: String| {
        tracing::error!(path = %config.path.display(), %error, "model not loaded");
        metrics.model_load_failures.inc();
        let _ = state.send(ModelState::Failed { path: config.path.clone(), error });
    };

    let started = Instant::now();
    let (backend, model, verified) = match load_model(&config.path, config.verify_sha256, &state) {
        Ok(loaded) => loaded,
        Err(e) => return fail(e),
    };
    let trained = model.n_ctx_train();
    let context_size = config.context_size.min(trained.max(128));
    let parallel = config.parallel.max(1);
    let kv_cache_tokens = match config.kv_cache_tokens {
        0 => context_size.saturating_mul(parallel as u32),
        n => n.max(context_size),
    };
    // A cache per sequence (llama.cpp's default) when every sequence can have a whole
    // context window: a step then attends over each sequence's own cells only, which made
    // 8 streams 4% faster than one unified cache (`examples/kv_streams.rs`). A smaller cache
    // is shared (unified), with twice as many sequences so that finished conversations can
    // keep their cells while others run.
    let unified = (kv_cache_tokens as u64) < context_size as u64 * parallel as u64;
    let sequences = if unified { (parallel * 2).min(64) } else { parallel };
    let idle_cache_tokens = match config.idle_cache_tokens {
        0 => kv_cache_tokens,
        n => n,
    };
    let (threads, threads_batch) = (config.threads as i32, config.threads_batch as i32);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(kv_cache_tokens))
        .with_n_batch(BATCH_TOKENS as u32)
        .with_n_ubatch(BATCH_TOKENS as u32)
        .with_n_seq_max(sequences as u32)
        .with_kv_unified(unified)
        .with_n_threads(threads)
        .with_n_threads_batch(threads_batch);
    let ctx = match model.new_context(backend, params) {
        Ok(c) => c,
        Err(e) => return fail(format!("llama.cpp context ({kv_cache_tokens} KV cells): {e}")),
    };
    let (template, template_name) = match model.chat_template(None) {
        Ok(t) => (t, "gguf".to_string()),
        Err(_) => (LlamaChatTemplate::new("chatml").expect("static name"), "chatml (fallback)".into()),
    };
    let jinja = jinja_template(&model);

    let info = ModelInfo {
        id: crate::models::model_id(&config.path),
        path: config.path.clone(),
        architecture: model.meta_val_str("general.architecture").unwrap_or_default(),
        file_size: std::fs::metadata(&config.path).map_or(0, |m| m.len()),
        context_size,
        trained_context: trained,
        parameters: model.n_params(),
        threads: config.threads,
        parallel: parallel as u32,
        kv_cache_tokens,
        idle_cache_tokens,
        sha256_verified: verified,
        chat_template: template_name,
        tool_calls: jinja.as_ref().and_then(|t| t.tool_format().ok()),
        load_seconds: started.elapsed().as_secs_f64(),
        loaded_at: crate::store::now(),
    };
    // The disk cache is indexed before the model is said to be ready: a turn that comes at
    // once finds its saved conversation.
    let disk = config.disk_cache.as_ref().and_then(|(dir, budget)| {
        let metrics = SpillMetrics {
            saves: metrics.kv_saves.clone(),
            loads: metrics.kv_loads.clone(),
            bytes: metrics.kv_saved_bytes.clone(),
        };
        Spill::open(dir.clone(), model_key(&config.path), *budget, metrics, config.disk_key.clone())
            .inspect_err(
                |e| tracing::warn!(dir = %dir.display(), error = %e, "no disk cache for conversations"),
            )
            .ok()
    });
    tracing::info!(
        model = %info.id, context = context_size, kv_cache_tokens, idle_cache_tokens, parallel, sequences, unified, threads, threads_batch,
        seconds = format!("{:.1}", info.load_seconds), "model ready"
    );
    metrics.model_loaded.inc();
    let _ = state.send(ModelState::Ready(Box::new(info)));

    let mut scheduler = Scheduler::new(
        &model,
        &template,
        jinja.as_ref(),
        ctx,
        &metrics,
        super::scheduler::Limits {
            context_size: context_size as usize,
            parallel,
            sequences,
            unified,
            idle_cache_tokens: idle_cache_tokens as usize,
            timeout: config.timeout,
            threads: super::threads::ThreadSettings {
                configured: (config.threads_configured, config.threads_batch_configured),
                start: (config.threads, config.threads_batch),
                governor: config.governor.clone(),
            },
        },
        disk,
    );
    scheduler.run(jobs);
    metrics.model_loaded.dec();
}
