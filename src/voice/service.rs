//! The speech engines a server runs, started from the settings.

use super::stt::{Transcriber, PREFERRED_MODELS};
use super::tts::{locate_onnxruntime, Synthesizer, PREFERRED_VOICES};
use crate::config::Settings;
use crate::telemetry::Metrics;
use std::sync::{Arc, RwLock};

/// The speech engines; clone freely.
#[derive(Clone)]
pub struct Voice {
    pub stt: Transcriber,
    pub tts: Synthesizer,
    /// `voice.language` from the config, else the one chosen at setup.
    language: Arc<RwLock<Option<String>>>,
    configured: bool,
}

impl Voice {
    /// Starts the engines; each loads its model in the background, and one that cannot
    /// (nothing installed, a corrupt file) reports why in its state and on `/api/health`.
    pub fn start(settings: &Settings, metrics: &Metrics) -> Voice {
        let voice = &settings.voice;
        let data_dir = &settings.storage.data_dir;
        let stt_model = crate::models::locate(&voice.stt_model, PREFERRED_MODELS, data_dir);
        if let Err(e) = &stt_model {
            tracing::warn!(error = %e, "speech to text is off");
        }
        let stt = Transcriber::start(stt_model, voice.speech_threads()).with_metrics(metrics.clone());
        let tts_voice = crate::models::locate(&voice.tts_voice, PREFERRED_VOICES, data_dir);
        if let Err(e) = &tts_voice {
            tracing::warn!(error = %e, "text to speech is off");
        }
        let runtime = locate_onnxruntime(&voice.onnxruntime, data_dir);
        // Synthesis overlaps generation in the voice pipeline: leave the language model a core.
        let tts_threads = voice.speech_threads().min(settings.batch_threads().saturating_sub(1).max(1));
        let tts = Synthesizer::start(tts_voice, runtime, tts_threads)
            .with_metrics(metrics.clone())
            .with_max_chars(voice.max_speech_chars);
        let configured = voice.default_language();
        Voice { stt, tts, configured: configured.is_some(), language: Arc::new(RwLock::new(configured)) }
    }

    /// The language people speak to the box, when a request does not say: the config
    /// file's `voice.language`, else the one chosen at setup; `None`: detect.
    pub fn default_language(&self) -> Option<String> {
        self.language.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The language chosen in the web UI (`None`: detect). The config file wins: when it
    /// sets `voice.language`, this changes nothing and says so.
    pub fn choose_language(&self, chosen: Option<String>) -> bool {
        if self.configured {
            return false;
        }
        *self.language.write().unwrap_or_else(|e| e.into_inner()) = chosen;
        true
    }
}
