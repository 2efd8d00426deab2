//! The speech engines a server runs, started from the settings.

use super::stt::{Transcriber, PREFERRED_MODELS};
use crate::config::Settings;
use crate::telemetry::Metrics;

/// The speech engines; clone freely.
#[derive(Clone)]
pub struct Voice {
    pub stt: Transcriber,
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
        Voice { stt }
    }
}
