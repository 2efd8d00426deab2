//! Speech to text: whisper.cpp (through `whisper-rs`) on a thread of its own.
//!
//! The [`Transcriber`] handle is cheap to clone. Requests reach the thread over a bounded
//! queue (a full queue is [`SttError::Busy`] at once) and each gets its answer on its own
//! channel; a caller that goes away aborts its transcription at the next whisper step.
//! The model is checked (ggml magic, and size and sha256 when the manifest lists it)
//! before whisper.cpp opens it, so a corrupt file leaves the engine failed with a reason
//! and the process running.

#[cfg(feature = "stt")]
mod whisper;

use super::worker::Refused;
use crate::error::ErrorCode;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The manifest models tried, best first, when none is configured.
pub const PREFERRED_MODELS: &[&str] = &["whisper-base", "whisper-tiny-en"];

/// Requests waiting for the thread before new ones are turned away.
const QUEUE: usize = 8;

/// What to transcribe.
#[derive(Debug, Clone, Default)]
pub struct TranscribeRequest {
    /// 16 kHz mono samples in [-1, 1].
    pub audio: Vec<f32>,
    /// ISO 639-1 code (`en`), or `None` to detect it (multilingual models only).
    pub language: Option<String>,
    /// Words that help recognition (names, jargon): whisper's initial prompt.
    pub prompt: Option<String>,
    /// Encode only as much of whisper's 30 s window as the clip needs. Much faster
    /// for short commands (the voice pipeline); slightly less accurate.
    pub fast: bool,
}

/// One timed piece of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub id: usize,
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// whisper's estimate that the segment holds no speech.
    pub no_speech_prob: f32,
}

/// A finished transcription.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcription {
    /// The whole text, segments joined and trimmed.
    pub text: String,
    /// The language spoken (as given, or as detected).
    pub language: String,
    /// Seconds of audio.
    pub duration: f64,
    pub segments: Vec<Segment>,
    /// Time spent in whisper, in seconds.
    #[serde(skip)]
    pub elapsed: Duration,
}

/// Why a transcription failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SttError {
    #[error("speech to text is not available: {0}")]
    NotReady(String),
    #[error("speech to text is busy ({0} requests waiting); retry shortly")]
    Busy(usize),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("transcription failed: {0}")]
    Failed(String),
}

impl SttError {
    /// Its row in the error table.
    pub fn code(&self) -> ErrorCode {
        match self {
            SttError::NotReady(_) => ErrorCode::ModelNotReady,
            SttError::Busy(_) => ErrorCode::Overloaded,
            SttError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            SttError::Failed(_) => ErrorCode::EngineError,
        }
    }
}

/// The engine's state, for health checks and `hearth doctor`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SttState {
    Loading { model: String },
    Ready { model: String, multilingual: bool },
    Failed { reason: String },
}

pub(crate) type Job = super::worker::Job<TranscribeRequest, Result<Transcription, SttError>>;

/// A handle to the speech-to-text thread; clone it freely.
#[derive(Clone)]
pub struct Transcriber {
    jobs: Option<mpsc::Sender<Job>>,
    state: watch::Receiver<SttState>,
    metrics: Option<crate::telemetry::Metrics>,
}

impl Transcriber {
    /// Starts the thread, which checks and loads `model` in the background; `Err` is
    /// why there is no model (the engine then stays failed with that reason).
    pub fn start(model: Result<PathBuf, String>, threads: u32) -> Transcriber {
        let path = match model {
            Ok(path) => path,
            Err(reason) => return Transcriber::failed(reason),
        };
        Self::spawn(path, threads)
    }

    /// An engine that never works, saying why.
    pub fn failed(reason: impl Into<String>) -> Transcriber {
        let (_tx, state) = watch::channel(SttState::Failed { reason: reason.into() });
        Transcriber { jobs: None, state, metrics: None }
    }

    #[cfg(feature = "stt")]
    fn spawn(path: PathBuf, threads: u32) -> Transcriber {
        let model = crate::models::model_id(&path);
        let (state_tx, state) = watch::channel(SttState::Loading { model });
        let (jobs_tx, jobs_rx) = mpsc::channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("hearth-stt".into())
            .spawn(move || whisper::run(path, threads, state_tx, jobs_rx));
        match spawned {
            Ok(_) => Transcriber { jobs: Some(jobs_tx), state, metrics: None },
            Err(e) => Transcriber::failed(format!("cannot start the speech thread: {e}")),
        }
    }

    #[cfg(not(feature = "stt"))]
    fn spawn(_path: PathBuf, _threads: u32) -> Transcriber {
        Transcriber::failed("this hearth was built without speech to text (cargo feature `stt`)")
    }

    pub fn state(&self) -> SttState {
        self.state.borrow().clone()
    }

    /// Waits until the model is loaded or has failed, at most `timeout`.
    pub async fn ready(&self, timeout: Duration) -> SttState {
        let mut state = self.state.clone();
        let wait = state.wait_for(|s| !matches!(s, SttState::Loading { .. }));
        let _ = tokio::time::timeout(timeout, wait).await;
        self.state()
    }

    /// Transcribes one clip.
    pub async fn transcribe(&self, request: TranscribeRequest) -> Result<Transcription, SttError> {
        if let SttState::Failed { reason } = self.state() {
            return Err(SttError::NotReady(reason));
        }
        if request.audio.is_empty() {
            return Err(SttError::InvalidRequest("the audio is empty".into()));
        }
        let jobs = self.jobs.as_ref().ok_or_else(|| SttError::NotReady("no model".into()))?;
        let result = match super::worker::call(jobs, request).await {
            Ok(Some(result)) => result,
            Ok(None) => Err(SttError::Failed("the speech thread stopped".into())),
            Err(Refused::Full) => return Err(SttError::Busy(QUEUE)),
            Err(Refused::Stopped) => return Err(SttError::NotReady("the speech thread has stopped".into())),
        };
        if let (Ok(t), Some(metrics)) = (&result, &self.metrics) {
            metrics.observe_stage("transcribe", t.elapsed);
        }
        result
    }

    /// Records each transcription's time on `/metrics`.
    pub fn with_metrics(mut self, metrics: crate::telemetry::Metrics) -> Transcriber {
        self.metrics = Some(metrics);
        self
    }
}

/// Checks a whisper.cpp model file before whisper.cpp reads it: the ggml magic, the
/// structure (hyperparameters, vocabulary and every tensor within the file), and size
/// and sha256 when the manifest lists the file.
pub fn check_model(path: &Path) -> Result<(), String> {
    std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !crate::import::whisper::is_ggml_file(path) {
        return Err(format!(
            "{} is not a whisper.cpp ggml model (bad magic); convert a faster-whisper model with \
             `hearth models import`",
            path.display()
        ));
    }
    crate::import::whisper::verify_file(path).map(|_| ())
}

/// Joins segment texts the way whisper prints them, trimmed.
fn join_segments(segments: &[Segment]) -> String {
    let text: String = segments.iter().map(|s| s.text.as_str()).collect();
    text.trim().to_string()
}

#[cfg(test)]
mod tests;
