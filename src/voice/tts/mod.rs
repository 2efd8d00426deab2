//! Text to speech: Piper voices (VITS models in ONNX) on ONNX Runtime (through `ort`, the
//! library loaded at run time), phonemes from espeak-ng, on a thread of its own.
//!
//! The [`Synthesizer`] handle is cheap to clone. Requests reach the thread over a bounded
//! queue (a full queue is [`TtsError::Busy`] at once) and each gets its answer on its own
//! channel. Long text is spoken sentence by sentence (bounded memory per inference) with
//! a short silence between; a caller that goes away stops the work at the next sentence.
//! The voice, its `.onnx.json` and the ONNX Runtime library are checked before ONNX
//! Runtime opens them, so a bad file leaves the engine failed with a reason.

#[cfg(feature = "tts")]
mod engine;
#[cfg(feature = "tts")]
mod espeak;
mod runtime;
// Without the `tts` feature only the pure parts (and their tests) remain.
#[cfg_attr(not(feature = "tts"), allow(dead_code))]
mod text;
#[cfg_attr(not(feature = "tts"), allow(dead_code))]
mod voice;

#[cfg(feature = "tts")]
pub use runtime::check_library;
pub use runtime::{check_elf, locate_onnxruntime, ONNXRUNTIME_MODEL};

/// Checks a voice without loading it into ONNX Runtime: its `.onnx.json`, and that
/// espeak-ng can phonemize in its language. Returns the voice's language and rate.
#[cfg(feature = "tts")]
pub fn check_voice(model: &Path) -> Result<(String, u32), String> {
    std::fs::metadata(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let config = voice::VoiceConfig::load(model)?;
    espeak::phonemize(&config.espeak_voice, "Hello.")?;
    Ok((config.language, config.sample_rate))
}
pub use text::split_sentences;

use super::worker::Refused;
use crate::error::ErrorCode;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The manifest voices tried, best first, when none is configured.
pub const PREFERRED_VOICES: &[&str] = &["piper-joe"];

/// Requests waiting for the thread before new ones are turned away.
const QUEUE: usize = 8;

/// Accepted `speed` (Piper's length scale is divided by it).
const SPEEDS: std::ops::RangeInclusive<f32> = 0.25..=4.0;

/// Longest text by default, in characters (`voice.max_speech_chars`'s default).
const DEFAULT_MAX_CHARS: usize = 4000;

/// What to say.
#[derive(Debug, Clone, Default)]
pub struct SpeakRequest {
    pub text: String,
    /// A name from [`Synthesizer::voices`], or `default`; `None`: the default voice.
    pub voice: Option<String>,
    /// 1.0 is the voice's own pace; 0.25 to 4.0.
    pub speed: Option<f32>,
}

/// Synthesized speech: 16-bit mono samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    /// Samples per second (the voice's).
    pub rate: u32,
    pub samples: Vec<i16>,
    /// Time spent synthesizing.
    pub elapsed: Duration,
}

impl Speech {
    /// Seconds of audio.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / self.rate.max(1) as f64)
    }
}

/// A voice that requests may name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoiceInfo {
    pub name: String,
    /// The voice's language, e.g. `en_US`.
    pub language: String,
    /// Samples per second.
    pub rate: u32,
    pub default: bool,
}

/// The engine's state, for health checks and `hearth doctor`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TtsState {
    Loading { voice: String },
    Ready { voice: String, rate: u32 },
    Failed { reason: String },
}

/// Why a synthesis failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TtsError {
    #[error("text to speech is not available: {0}")]
    NotReady(String),
    #[error("text to speech is busy ({0} requests waiting); retry shortly")]
    Busy(usize),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no voice '{0}'; GET the voice list for the names available")]
    VoiceNotFound(String),
    #[error("speech synthesis failed: {0}")]
    Failed(String),
}

impl TtsError {
    /// Its row in the error table.
    pub fn code(&self) -> ErrorCode {
        match self {
            TtsError::NotReady(_) => ErrorCode::ModelNotReady,
            TtsError::Busy(_) => ErrorCode::Overloaded,
            TtsError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            TtsError::VoiceNotFound(_) => ErrorCode::VoiceNotFound,
            TtsError::Failed(_) => ErrorCode::EngineError,
        }
    }
}

#[cfg_attr(not(feature = "tts"), allow(dead_code))]
pub(crate) type Job = super::worker::Job<SpeakRequest, Result<Speech, TtsError>>;

/// What the thread knows once the voice is loaded.
#[cfg_attr(not(feature = "tts"), allow(dead_code))]
struct Loaded {
    info: VoiceInfo,
}

/// A handle to the text-to-speech thread; clone it freely.
#[derive(Clone)]
pub struct Synthesizer {
    jobs: Option<mpsc::Sender<Job>>,
    state: watch::Receiver<TtsState>,
    /// Names requests may use for the voice (besides `default`).
    names: Arc<Vec<String>>,
    loaded: Arc<OnceLock<Loaded>>,
    max_chars: usize,
    metrics: Option<crate::telemetry::Metrics>,
}

impl Synthesizer {
    /// Starts the thread, which checks and loads the voice in the background. `voice` is
    /// the `.onnx` file (its `.onnx.json` beside it) and `onnxruntime` the library; `Err`
    /// says why there is none (the engine then stays failed with that reason).
    pub fn start(
        voice: Result<PathBuf, String>,
        onnxruntime: Result<PathBuf, String>,
        threads: u32,
    ) -> Synthesizer {
        match (voice, onnxruntime) {
            (Err(reason), _) => Synthesizer::failed(reason),
            (_, Err(reason)) => Synthesizer::failed(reason),
            (Ok(voice), Ok(onnxruntime)) => Self::spawn(voice, onnxruntime, threads),
        }
    }

    /// An engine that never works, saying why.
    pub fn failed(reason: impl Into<String>) -> Synthesizer {
        let (_tx, state) = watch::channel(TtsState::Failed { reason: reason.into() });
        Synthesizer {
            jobs: None,
            state,
            names: Arc::default(),
            loaded: Arc::default(),
            max_chars: DEFAULT_MAX_CHARS,
            metrics: None,
        }
    }

    #[cfg(feature = "tts")]
    fn spawn(voice: PathBuf, onnxruntime: PathBuf, threads: u32) -> Synthesizer {
        let names = voice_names(&voice);
        let name = names[0].clone();
        let (state_tx, state) = watch::channel(TtsState::Loading { voice: name.clone() });
        let (jobs_tx, jobs_rx) = mpsc::channel(QUEUE);
        let loaded = Arc::new(OnceLock::new());
        let start =
            engine::Start { voice, onnxruntime, threads, name, state: state_tx, loaded: loaded.clone() };
        let spawned =
            std::thread::Builder::new().name("hearth-tts".into()).spawn(move || engine::run(start, jobs_rx));
        match spawned {
            Ok(_) => Synthesizer {
                jobs: Some(jobs_tx),
                state,
                names: Arc::new(names),
                loaded,
                max_chars: DEFAULT_MAX_CHARS,
                metrics: None,
            },
            Err(e) => Synthesizer::failed(format!("cannot start the speech thread: {e}")),
        }
    }

    #[cfg(not(feature = "tts"))]
    fn spawn(_voice: PathBuf, _onnxruntime: PathBuf, _threads: u32) -> Synthesizer {
        Synthesizer::failed("this hearth was built without text to speech (cargo feature `tts`)")
    }

    /// Records each synthesis's time on `/metrics`.
    pub fn with_metrics(mut self, metrics: crate::telemetry::Metrics) -> Synthesizer {
        self.metrics = Some(metrics);
        self
    }

    /// The longest text accepted, in characters (`voice.max_speech_chars`; default 4000).
    pub fn with_max_chars(mut self, max_chars: usize) -> Synthesizer {
        self.max_chars = max_chars.max(1);
        self
    }

    pub fn state(&self) -> TtsState {
        self.state.borrow().clone()
    }

    /// Waits until the voice is loaded or has failed, at most `timeout`.
    pub async fn ready(&self, timeout: Duration) -> TtsState {
        let mut state = self.state.clone();
        let wait = state.wait_for(|s| !matches!(s, TtsState::Loading { .. }));
        let _ = tokio::time::timeout(timeout, wait).await;
        self.state()
    }

    /// The voices requests may name (empty until the voice has loaded); `default` always
    /// names the default one.
    pub fn voices(&self) -> Vec<VoiceInfo> {
        self.loaded.get().map(|l| vec![l.info.clone()]).unwrap_or_default()
    }

    /// Synthesizes `request.text`.
    pub async fn synthesize(&self, request: SpeakRequest) -> Result<Speech, TtsError> {
        if let TtsState::Failed { reason } = self.state() {
            return Err(TtsError::NotReady(reason));
        }
        self.check(&request)?;
        let jobs = self.jobs.as_ref().ok_or_else(|| TtsError::NotReady("no voice".into()))?;
        let result = match super::worker::call(jobs, request).await {
            Ok(Some(result)) => result,
            Ok(None) => Err(TtsError::Failed("the speech thread stopped".into())),
            Err(Refused::Full) => return Err(TtsError::Busy(QUEUE)),
            Err(Refused::Stopped) => return Err(TtsError::NotReady("the speech thread has stopped".into())),
        };
        if let (Ok(speech), Some(metrics)) = (&result, &self.metrics) {
            metrics.observe_stage("synthesize", speech.elapsed);
        }
        result
    }

    fn check(&self, request: &SpeakRequest) -> Result<(), TtsError> {
        if request.text.trim().is_empty() {
            return Err(TtsError::InvalidRequest("the text is empty".into()));
        }
        let chars = request.text.chars().count();
        if chars > self.max_chars {
            return Err(TtsError::InvalidRequest(format!(
                "the text is {chars} characters; at most {} are accepted",
                self.max_chars
            )));
        }
        if let Some(speed) = request.speed.filter(|s| !SPEEDS.contains(s)) {
            return Err(TtsError::InvalidRequest(format!(
                "speed {speed} is out of range ({} to {})",
                SPEEDS.start(),
                SPEEDS.end()
            )));
        }
        match request.voice.as_deref().map(str::trim) {
            None | Some("" | "default") => Ok(()),
            Some(name) if self.names.iter().any(|n| n == name) => Ok(()),
            Some(name) => Err(TtsError::VoiceNotFound(name.to_string())),
        }
    }
}

/// The names of a voice file: its manifest name when listed, and its file stem.
#[cfg_attr(not(feature = "tts"), allow(dead_code))]
fn voice_names(path: &Path) -> Vec<String> {
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("voice");
    let stem = file.strip_suffix(".onnx").unwrap_or(file).to_string();
    match crate::models::manifest().find_by_file(file) {
        Some(entry) if entry.name != stem => vec![entry.name.clone(), stem],
        _ => vec![stem],
    }
}

#[cfg(all(test, feature = "tts"))]
mod tests;
#[cfg(test)]
mod text_tests;
