//! The text-to-speech thread: owns the ONNX Runtime session of one Piper voice.

use super::voice::VoiceConfig;
use super::{espeak, runtime, text, Job, Loaded, Speech, TtsError, TtsState, VoiceInfo};
use ort::session::Session;
use ort::value::Tensor;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// Silence between sentences, in seconds (Piper's command line uses 0.2).
const SENTENCE_SILENCE: f32 = 0.2;

/// ONNX Runtime allows one environment per process, for the life of the process.
static ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

pub(super) struct Start {
    pub voice: PathBuf,
    pub onnxruntime: PathBuf,
    pub threads: u32,
    pub name: String,
    pub state: watch::Sender<TtsState>,
    pub loaded: Arc<OnceLock<Loaded>>,
}

struct Engine {
    session: Session,
    config: VoiceConfig,
}

pub(super) fn run(start: Start, mut jobs: mpsc::Receiver<Job>) {
    let began = Instant::now();
    let mut engine = match load(&start) {
        Ok(engine) => engine,
        Err(reason) => {
            tracing::error!(voice = %start.name, %reason, "text to speech failed to load");
            let _ = start.state.send(TtsState::Failed { reason });
            while let Some(job) = jobs.blocking_recv() {
                let _ = job.reply.send(Err(TtsError::NotReady("the voice failed to load".into())));
            }
            return;
        }
    };
    let rate = engine.config.sample_rate;
    let info =
        VoiceInfo { name: start.name.clone(), language: engine.config.language.clone(), rate, default: true };
    let _ = start.loaded.set(Loaded { info });
    tracing::info!(voice = %start.name, rate, threads = start.threads, load_ms = began.elapsed().as_millis() as u64,
        "text to speech ready");
    let _ = start.state.send(TtsState::Ready { voice: start.name.clone(), rate });

    while let Some(job) = jobs.blocking_recv() {
        if job.reply.is_closed() || job.cancelled.load(Ordering::Relaxed) {
            continue;
        }
        let result = engine.synthesize(&job);
        let _ = job.reply.send(result);
    }
}

fn load(start: &Start) -> Result<Engine, String> {
    let config = VoiceConfig::load(&start.voice)?;
    crate::models::check_listed(&start.voice, file_len(&start.voice)?)?;
    let environment = environment(&start.onnxruntime)?;
    // Phonemize once now so a missing espeak-ng voice fails the load, not the first request.
    espeak::phonemize(&config.espeak_voice, "test")?;
    let threads = start.threads.max(1) as usize;
    let ort_err = |e: ort::Error<ort::session::builder::SessionBuilder>| e.to_string();
    let session = Session::builder(&environment)
        .map_err(|e| e.to_string())?
        .with_intra_threads(threads)
        .map_err(ort_err)?
        .with_inter_threads(1)
        .map_err(ort_err)?
        // Cores are shared with the other engines: idle workers sleep instead of spinning.
        .with_intra_op_spinning(false)
        .map_err(ort_err)?
        .with_inter_op_spinning(false)
        .map_err(ort_err)?
        .commit_from_file(&start.voice)
        .map_err(|e| format!("ONNX Runtime cannot load {}: {e}", start.voice.display()))?;
    let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    if let Some(missing) = ["input", "input_lengths", "scales"].into_iter().find(|n| !names.contains(n)) {
        return Err(format!("{} is not a Piper voice: no input '{missing}'", start.voice.display()));
    }
    if config.num_speakers > 1 && !names.contains(&"sid") {
        return Err(format!("{}: several speakers but no 'sid' input", start.voice.display()));
    }
    Ok(Engine { session, config })
}

fn file_len(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path).map(|m| m.len()).map_err(|e| format!("{}: {e}", path.display()))
}

/// The process's ONNX Runtime environment, loading the library on first use.
fn environment(library: &Path) -> Result<ort::environment::Environment, String> {
    let version = runtime::check_library(library)?;
    let mut env = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = env.as_ref() {
        return Ok(env.clone());
    }
    let built = ort::init_from(library)
        .map_err(|e| format!("ONNX Runtime {}: {e}", library.display()))?
        .with_name("hearth")
        // Nothing leaves the box: ort turns Microsoft's usage telemetry on unless told not to,
        // and the PyPI build of ONNX Runtime uploads it over HTTPS where it finds a CA bundle.
        .with_telemetry(false)
        .with_logger(Arc::new(log_onnxruntime))
        .build()
        .map_err(|e| format!("ONNX Runtime {}: {e}", library.display()))?;
    tracing::info!(library = %library.display(), %version, "ONNX Runtime loaded");
    Ok(env.insert(built).clone())
}

/// ONNX Runtime's warnings and errors go to the log; its info messages (each graph
/// transform, each arena allocation) would flood it.
fn log_onnxruntime(level: ort::logging::LogLevel, category: &str, _id: &str, location: &str, message: &str) {
    use ort::logging::LogLevel;
    match level {
        LogLevel::Warning => tracing::warn!(target: "onnxruntime", category, location, "{message}"),
        LogLevel::Error | LogLevel::Fatal => {
            tracing::error!(target: "onnxruntime", category, location, "{message}")
        }
        LogLevel::Verbose | LogLevel::Info => {}
    }
}

impl Engine {
    fn synthesize(&mut self, job: &Job) -> Result<Speech, TtsError> {
        let started = Instant::now();
        let request = &job.request;
        let length_scale = self.config.length_scale / request.speed.unwrap_or(1.0);
        let scales = [self.config.noise_scale, length_scale, self.config.noise_w];
        let silence = vec![0i16; (self.config.sample_rate as f32 * SENTENCE_SILENCE) as usize];
        let mut samples: Vec<i16> = Vec::new();
        for chunk in text::chunks(&request.text) {
            if job.cancelled.load(Ordering::Relaxed) || job.reply.is_closed() {
                return Err(TtsError::Failed("cancelled: the caller went away".into()));
            }
            let phonemes = espeak::phonemize(&self.config.espeak_voice, &chunk).map_err(TtsError::Failed)?;
            let (ids, missing) = self.config.phoneme_ids(&phonemes);
            if missing > 0 {
                tracing::debug!(missing, %phonemes, "phonemes the voice does not know were skipped");
            }
            if self.config.is_empty(&ids) {
                continue;
            }
            let audio = self.infer(ids, scales).map_err(TtsError::Failed)?;
            if !samples.is_empty() {
                samples.extend(&silence);
            }
            samples.extend(to_i16(&audio));
        }
        if samples.is_empty() {
            return Err(TtsError::InvalidRequest("the text has nothing to say".into()));
        }
        Ok(Speech { rate: self.config.sample_rate, samples, elapsed: started.elapsed() })
    }

    /// One inference: phoneme ids in, audio in [-1, 1] out.
    fn infer(&mut self, ids: Vec<i64>, scales: [f32; 3]) -> Result<Vec<f32>, String> {
        let err = |e: ort::Error| format!("inference failed: {e}");
        let n = ids.len() as i64;
        let mut inputs: Vec<(Cow<'_, str>, ort::session::SessionInputValue<'_>)> = vec![
            ("input".into(), Tensor::from_array(([1, n], ids)).map_err(err)?.into()),
            ("input_lengths".into(), Tensor::from_array(([1], vec![n])).map_err(err)?.into()),
            ("scales".into(), Tensor::from_array(([3], scales.to_vec())).map_err(err)?.into()),
        ];
        if self.config.num_speakers > 1 {
            inputs.push(("sid".into(), Tensor::from_array(([1], vec![0i64])).map_err(err)?.into()));
        }
        let outputs = self.session.run(inputs).map_err(err)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(err)?;
        Ok(audio.to_vec())
    }
}

/// Piper's output: each sentence's peak scaled to full range, then 16-bit.
fn to_i16(audio: &[f32]) -> Vec<i16> {
    let peak = audio.iter().fold(0f32, |m, s| m.max(s.abs()));
    if !peak.is_finite() || peak < 1e-8 {
        return vec![0; audio.len()];
    }
    audio.iter().map(|s| ((s / peak).clamp(-1.0, 1.0) * 32767.0) as i16).collect()
}
