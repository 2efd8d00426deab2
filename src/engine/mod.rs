//! The language model engines.
//!
//! Each loaded model runs on a dedicated thread that owns its llama.cpp model and
//! context; FFI and CPU work never touch the async runtime. Requests reach it over a
//! bounded channel (a full queue is an immediate [`EngineError::Overloaded`]); each
//! request carries its own channel on which tokens stream back, and a client that goes
//! away closes it, which stops the work at the next step. The thread runs a
//! continuous-batching scheduler with per-conversation KV reuse (`scheduler`, `slots`).
//! The [`Registry`] decides which models are loaded; [`Embedder`] serves embeddings.
//! Chats with tools are rendered with the model's own chat template,
//! tool calls and JSON replies are held to their format by grammars ([`Constraint`]), and
//! calls are read out of the text into [`Finished::tool_calls`].
//!
//! Model files are validated ([`gguf::validate`], sha256 against the manifest) before
//! llama.cpp sees them: a corrupt or hostile file leaves the engine in
//! [`ModelState::Failed`] and the process running.

mod embed;
pub mod gguf;
mod grammar;
#[cfg(feature = "llm")]
mod llama;
#[cfg(any(feature = "llm", feature = "stt"))]
pub(crate) mod omp;
#[cfg(feature = "llm")]
mod park;
mod registry;
#[cfg(feature = "llm")]
mod sampling;
#[cfg(feature = "llm")]
mod scheduler;
mod slots;
#[cfg_attr(not(feature = "llm"), allow(dead_code))]
mod spill;
mod template;
mod text;
#[cfg(feature = "llm")]
mod threads;
mod tools;
mod types;

pub use embed::{Embedder, Embeddings, MAX_INPUTS};
pub use registry::{Installed, Registry, ALIASES};
pub use text::{StopMatcher, Utf8Stream};
pub use tools::{Constraint, ToolCall, ToolChoice, ToolFormat, ToolSpec, ToolUse};
pub use types::{
    ChatMessage, EngineError, Event, FinishReason, Finished, GenerateParams, ModelInfo, ModelState, Owner,
    Prompt, Timings, Usage,
};

use crate::config::Settings;
use crate::governor::Governor;
use crate::telemetry::Metrics;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// What the engine thread receives: a request, or the order to stop.
pub(crate) enum Work {
    Job(Job),
    /// Drop every idle conversation's cache, in RAM and on disk (a conversation was deleted).
    Forget,
    Stop,
}

/// A request queued for the engine thread.
pub(crate) struct Job {
    /// Only this owner's cached prefixes may serve the prompt.
    owner: Owner,
    prompt: Prompt,
    params: GenerateParams,
    events: mpsc::UnboundedSender<Event>,
    queued_at: Instant,
    /// The owner's place in their share of the engine (`rate/`), freed when the job ends;
    /// charged with the tokens generated.
    share: crate::rate::Share,
}

/// What the engine thread needs from the settings.
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    pub path: PathBuf,
    pub threads: u32,
    pub threads_batch: u32,
    pub context_size: u32,
    pub verify_sha256: bool,
    pub parallel: usize,
    pub kv_cache_tokens: u32,
    pub idle_cache_tokens: u32,
    /// Where conversations that leave RAM are saved (`None`: nowhere), and how many bytes.
    pub disk_cache: Option<(PathBuf, u64)>,
    /// Encryption at rest: the disk cache's files are sealed with this key.
    pub disk_key: Option<Arc<crate::crypt::FileKey>>,
    pub timeout: Duration,
    /// `[model] threads` and `threads_batch` as set (0: automatic, following the load).
    pub threads_configured: u32,
    pub threads_batch_configured: u32,
    /// Chooses the threads and prompt chunks between decodes.
    pub governor: Governor,
}

/// A handle to the engine; clone it freely.
#[derive(Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Work>,
    /// The engine thread, to wait for when stopping.
    thread: Option<Arc<JoinHandle<()>>>,
    state: watch::Receiver<ModelState>,
    queue_size: usize,
    metrics: Metrics,
    /// Each user's share of this and every other engine (`[limits]`).
    limiter: crate::rate::Limiter,
    /// Sheds new requests under pressure.
    governor: Governor,
}

impl Engine {
    /// Starts the engine thread, which validates and loads the model in the background.
    /// `model` is the file to load, or why there is none (the engine then reports
    /// [`ModelState::Failed`] with that reason).
    pub fn start(
        settings: &Settings,
        model: Result<PathBuf, String>,
        metrics: Metrics,
        limiter: crate::rate::Limiter,
        governor: Governor,
    ) -> Engine {
        let queue_size = settings.model.queue_size;
        let (jobs_tx, jobs_rx) = mpsc::channel(queue_size);
        let path = match model {
            Ok(path) => path,
            Err(error) => {
                // Nothing to load. The state stays readable after its sender is gone.
                let (_, state) = watch::channel(ModelState::Failed { path: PathBuf::new(), error });
                return Engine { jobs: jobs_tx, thread: None, state, queue_size, metrics, limiter, governor };
            }
        };
        let (state_tx, state_rx) = watch::channel(ModelState::Loading { path: path.clone(), progress: 0.0 });
        let disk_cache = (settings.model.disk_cache_mb > 0).then(|| {
            let dir = spill::dir_for(&settings.storage.data_dir, &crate::models::model_id(&path));
            (dir, settings.model.disk_cache_mb.saturating_mul(1 << 20))
        });
        let config = WorkerConfig {
            path,
            threads: settings.inference_threads(),
            threads_batch: settings.batch_threads(),
            context_size: settings.model.context_size,
            verify_sha256: settings.model.verify_sha256,
            parallel: settings.model.parallel as usize,
            kv_cache_tokens: settings.model.kv_cache_tokens,
            idle_cache_tokens: settings.model.idle_cache_tokens,
            disk_cache,
            disk_key: settings.storage.unlocked.file_key(),
            timeout: Duration::from_secs(settings.model.request_timeout_secs),
            threads_configured: settings.model.threads,
            threads_batch_configured: settings.model.threads_batch,
            governor: governor.clone(),
        };
        let worker_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name(crate::telemetry::GENERATION_THREAD.into())
            .spawn(move || run_worker(config, jobs_rx, state_tx, worker_metrics))
            .expect("spawning the engine thread");
        Engine {
            jobs: jobs_tx,
            thread: Some(Arc::new(thread)),
            state: state_rx,
            queue_size,
            metrics,
            limiter,
            governor,
        }
    }

    /// Drops every idle conversation's cached keys and values, in the KV cache, in RAM and
    /// in the disk cache, once the requests queued before are admitted: what was deleted
    /// must not linger anywhere. Others only lose speed (their next turn reads its history).
    pub async fn forget_cached(&self) {
        if self.thread.is_some() {
            let _ = self.jobs.send(Work::Forget).await;
        }
    }

    /// Stops the engine thread (once the HTTP server is down): requests still running
    /// are ended and idle conversations saved to the disk cache. Waits until `deadline`;
    /// false if the thread was still running then.
    pub fn stop(&self, deadline: Instant) -> bool {
        let Some(thread) = &self.thread else { return true };
        let mut stop = Some(Work::Stop);
        while !thread.is_finished() {
            // A full queue is drained by the engine: try again until it takes the order.
            if let Some(order) = stop.take() {
                if let Err(mpsc::error::TrySendError::Full(order)) = self.jobs.try_send(order) {
                    stop = Some(order);
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    #[cfg(test)]
    pub(crate) fn from_parts(
        jobs: mpsc::Sender<Work>,
        state: watch::Receiver<ModelState>,
        queue_size: usize,
        metrics: Metrics,
    ) -> Engine {
        Engine {
            jobs,
            thread: None,
            state,
            queue_size,
            metrics,
            limiter: crate::rate::Limiter::unlimited(),
            governor: Governor::default(),
        }
    }

    /// An engine for tests of what drives it: ready (with a Hermes tool-call template),
    /// it answers each request with the next of `replies` and reports the messages and
    /// parameters it was given.
    #[cfg(test)]
    pub(crate) fn scripted(
        replies: Vec<Vec<Event>>,
    ) -> (Engine, mpsc::UnboundedReceiver<(Vec<ChatMessage>, GenerateParams)>) {
        let (jobs_tx, mut jobs_rx) = mpsc::channel::<Work>(8);
        let (seen_tx, seen_rx) = mpsc::unbounded_channel();
        let info = ModelInfo {
            id: "scripted".into(),
            path: PathBuf::new(),
            architecture: "qwen2".into(),
            file_size: 0,
            context_size: 4096,
            trained_context: 4096,
            parameters: 0,
            threads: 1,
            parallel: 1,
            kv_cache_tokens: 4096,
            idle_cache_tokens: 0,
            sha256_verified: None,
            chat_template: String::new(),
            tool_calls: Some(ToolFormat::Hermes),
            load_seconds: 0.0,
            loaded_at: 0,
        };
        let (_, state) = watch::channel(ModelState::Ready(Box::new(info)));
        tokio::spawn(async move {
            let mut replies = replies.into_iter();
            while let Some(Work::Job(job)) = jobs_rx.recv().await {
                let messages = match job.prompt {
                    Prompt::Chat(m) => m,
                    Prompt::Text(t) => vec![ChatMessage::new("user", t)],
                };
                let _ = seen_tx.send((messages, job.params));
                for event in replies.next().unwrap_or_default() {
                    let _ = job.events.send(event);
                }
            }
        });
        (Engine::from_parts(jobs_tx, state, 8, Metrics::new()), seen_rx)
    }

    pub fn state(&self) -> ModelState {
        self.state.borrow().clone()
    }

    /// The loaded model, if ready.
    pub fn model(&self) -> Option<ModelInfo> {
        match &*self.state.borrow() {
            ModelState::Ready(info) => Some((**info).clone()),
            _ => None,
        }
    }

    /// Waits until the model is loaded or has failed.
    pub async fn wait_loaded(&self) -> ModelState {
        let mut rx = self.state.clone();
        let state = rx.wait_for(|s| !matches!(s, ModelState::Loading { .. })).await;
        match state {
            Ok(s) => s.clone(),
            Err(_) => self.state(),
        }
    }

    /// Queues a chat for `owner`; tokens arrive on the returned channel.
    pub fn submit(
        &self,
        owner: Owner,
        prompt: Prompt,
        params: GenerateParams,
    ) -> Result<mpsc::UnboundedReceiver<Event>, EngineError> {
        match &*self.state.borrow() {
            ModelState::Ready(_) => {}
            ModelState::Loading { .. } => {
                return Err(EngineError::NotReady("the model is still loading".into()))
            }
            ModelState::Failed { error, .. } => return Err(EngineError::NotReady(error.clone())),
        }
        self.governor.admit_request()?;
        let share = self.limiter.admit(owner).map_err(|refusal| {
            self.metrics.rate_limited.with_label_values(&[refusal.kind()]).inc();
            EngineError::Limited(refusal)
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let job = Job { owner, prompt, params, events: tx, queued_at: Instant::now(), share };
        match self.jobs.try_send(Work::Job(job)) {
            Ok(()) => {
                self.metrics.queue_depth.inc();
                Ok(rx)
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(EngineError::Overloaded(self.queue_size)),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(EngineError::NotReady("the engine has stopped".into()))
            }
        }
    }
}

#[cfg(feature = "llm")]
fn run_worker(
    config: WorkerConfig,
    jobs: mpsc::Receiver<Work>,
    state: watch::Sender<ModelState>,
    metrics: Metrics,
) {
    llama::run(config, jobs, state, metrics);
}

#[cfg(not(feature = "llm"))]
fn run_worker(
    config: WorkerConfig,
    _jobs: mpsc::Receiver<Work>,
    state: watch::Sender<ModelState>,
    _metrics: Metrics,
) {
    let error = "this hearth was built without the `llm` feature".to_string();
    let _ = state.send(ModelState::Failed { path: config.path, error });
}

/// Validates a model file the way the engine does before loading it: GGUF structure
/// and metadata bounds, then size and sha256 when the manifest lists the file.
pub fn verify_model_file(
    path: &std::path::Path,
    check_sha256: bool,
) -> Result<(gguf::GgufSummary, Option<bool>), String> {
    let summary = gguf::validate(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let verified = if check_sha256 { crate::models::check_listed(path, summary.file_size)? } else { None };
    Ok((summary, verified))
}
