//! The language model engine.
//!
//! llama.cpp runs on a dedicated thread that owns the model and its context; FFI and
//! CPU work never touch the async runtime. Requests reach it over a bounded channel
//! (a full queue is an immediate [`EngineError::Overloaded`]); each request carries its
//! own channel on which tokens stream back. A client that goes away closes that
//! channel, and the engine stops working on it at the next token.
//!
//! Model files are validated ([`gguf::validate`], sha256 against the manifest) before
//! llama.cpp sees them: a corrupt or hostile file leaves the engine in
//! [`ModelState::Failed`] and the process running.

pub mod gguf;
#[cfg(feature = "llm")]
mod llama;
mod text;

pub use text::{StopMatcher, Utf8Stream};

use crate::config::Settings;
use crate::telemetry::Metrics;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// One message of a chat, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self { role: role.to_string(), content: content.into() }
    }
}

/// Sampling and length settings for one request, already resolved against defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: u32,
    pub seed: Option<u32>,
    pub max_tokens: u32,
    pub stop: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// The model ended its turn or a stop string was reached.
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

/// Where the time went, in llama-server's field names (benchmarks compare the two).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Timings {
    /// Prompt tokens evaluated for this request.
    pub prompt_n: u32,
    pub prompt_ms: f64,
    pub prompt_per_second: f64,
    /// Tokens generated.
    pub predicted_n: u32,
    pub predicted_ms: f64,
    pub predicted_per_second: f64,
    /// Prompt tokens reused from the cache instead of evaluated.
    pub cache_n: u32,
}

impl Timings {
    pub fn new(prompt_n: u32, prompt_ms: f64, predicted_n: u32, predicted_ms: f64, cache_n: u32) -> Self {
        let rate = |n: u32, ms: f64| if ms > 0.0 { n as f64 * 1000.0 / ms } else { 0.0 };
        Timings {
            prompt_n,
            prompt_ms,
            prompt_per_second: rate(prompt_n, prompt_ms),
            predicted_n,
            predicted_ms,
            predicted_per_second: rate(predicted_n, predicted_ms),
            cache_n,
        }
    }
}

/// What the engine sends back for a request, in order: tokens, then `Done` or `Error`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Token(String),
    Done { finish_reason: FinishReason, usage: Usage, timings: Timings },
    Error(EngineError),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("the model is not ready: {0}")]
    NotReady(String),
    #[error("the engine is busy ({0} requests waiting); retry shortly")]
    Overloaded(usize),
    #[error(
        "the prompt is {prompt_tokens} tokens but the context window is {context_size} tokens; \
         shorten the message or start a new conversation"
    )]
    ContextLengthExceeded { prompt_tokens: usize, context_size: usize },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("inference failed: {0}")]
    Failed(String),
}

/// Facts about the loaded model, for `/v1/models` and `/api/health`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The name clients use (`model` in OpenAI requests).
    pub id: String,
    pub path: PathBuf,
    pub architecture: String,
    pub file_size: u64,
    pub context_size: u32,
    pub trained_context: u32,
    pub parameters: u64,
    pub threads: u32,
    /// `Some(true)` when the file matched the manifest's sha256; `None` when unlisted.
    pub sha256_verified: Option<bool>,
    pub chat_template: String,
    pub load_seconds: f64,
    pub loaded_at: i64,
}

/// The model's lifecycle, published by the engine thread.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ModelState {
    Loading { path: PathBuf },
    Ready(Box<ModelInfo>),
    Failed { path: PathBuf, error: String },
}

impl ModelState {
    pub fn is_ready(&self) -> bool {
        matches!(self, ModelState::Ready(_))
    }
}

/// A request queued for the engine thread.
pub(crate) struct Job {
    messages: Vec<ChatMessage>,
    params: GenerateParams,
    events: mpsc::UnboundedSender<Event>,
    queued_at: Instant,
}

/// What the engine thread needs from the settings.
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    pub path: PathBuf,
    pub threads: u32,
    pub context_size: u32,
    pub verify_sha256: bool,
}

/// A handle to the engine; clone it freely.
#[derive(Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    state: watch::Receiver<ModelState>,
    queue_size: usize,
    metrics: Metrics,
}

impl Engine {
    /// Starts the engine thread, which validates and loads the model in the background.
    /// `model` is the file to load, or why there is none (the engine then reports
    /// [`ModelState::Failed`] with that reason).
    pub fn start(settings: &Settings, model: Result<PathBuf, String>, metrics: Metrics) -> Engine {
        let queue_size = settings.model.queue_size;
        let (jobs_tx, jobs_rx) = mpsc::channel(queue_size);
        let path = match model {
            Ok(path) => path,
            Err(error) => {
                // Nothing to load. The state stays readable after its sender is gone.
                let (_, state) = watch::channel(ModelState::Failed { path: PathBuf::new(), error });
                return Engine { jobs: jobs_tx, state, queue_size, metrics };
            }
        };
        let (state_tx, state_rx) = watch::channel(ModelState::Loading { path: path.clone() });
        let config = WorkerConfig {
            path,
            threads: settings.inference_threads(),
            context_size: settings.model.context_size,
            verify_sha256: settings.model.verify_sha256,
        };
        let worker_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("hearth-llm".into())
            .spawn(move || run_worker(config, jobs_rx, state_tx, worker_metrics))
            .expect("spawning the engine thread");
        Engine { jobs: jobs_tx, state: state_rx, queue_size, metrics }
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

    /// Queues a chat; tokens arrive on the returned channel.
    pub fn submit(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
    ) -> Result<mpsc::UnboundedReceiver<Event>, EngineError> {
        match &*self.state.borrow() {
            ModelState::Ready(_) => {}
            ModelState::Loading { .. } => {
                return Err(EngineError::NotReady("the model is still loading".into()))
            }
            ModelState::Failed { error, .. } => return Err(EngineError::NotReady(error.clone())),
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let job = Job { messages, params, events: tx, queued_at: Instant::now() };
        match self.jobs.try_send(job) {
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
    jobs: mpsc::Receiver<Job>,
    state: watch::Sender<ModelState>,
    metrics: Metrics,
) {
    llama::run(config, jobs, state, metrics);
}

#[cfg(not(feature = "llm"))]
fn run_worker(
    config: WorkerConfig,
    _jobs: mpsc::Receiver<Job>,
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
    let listed = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|name| crate::models::manifest().find_by_file(name).cloned());
    let verified = match listed {
        Some(entry) if check_sha256 => {
            if summary.file_size != entry.bytes {
                return Err(format!(
                    "{}: size {} does not match the manifest's {} bytes for {}; the file is incomplete or corrupt",
                    path.display(),
                    summary.file_size,
                    entry.bytes,
                    entry.name
                ));
            }
            let actual = gguf::sha256_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if actual != entry.sha256 {
                return Err(format!(
                    "{}: sha256 {actual} does not match the manifest's {} for {}; the file is corrupt",
                    path.display(),
                    entry.sha256,
                    entry.name
                ));
            }
            Some(true)
        }
        _ => None,
    };
    Ok((summary, verified))
}
