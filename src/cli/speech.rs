//! Speech from the command line: `hearth transcribe` (whisper.cpp, in process).

use crate::audio::{decode_wav_16k_mono, AudioLimits};
use crate::config::Settings;
use crate::voice::stt::{SttState, TranscribeRequest, Transcriber, PREFERRED_MODELS};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Transcribe a WAV file with the local speech model (whisper.cpp).
///
/// Accepts WAV at any common rate and channel count (resampled to 16 kHz mono). Prints
/// the text, or with `--format json` the text, language, timed segments and
/// `elapsed_ms`, the time spent inside whisper (benchmarks compare it).
#[derive(Debug, Args)]
pub struct TranscribeArgs {
    /// The WAV file.
    #[arg(value_name = "FILE.wav")]
    file: PathBuf,
    /// Whisper model: a manifest name (whisper-base, whisper-tiny-en) or a ggml file.
    /// Default: voice.stt_model, else the best installed.
    #[arg(long, value_name = "NAME|PATH")]
    model: Option<String>,
    /// Threads (default: voice.threads, else one per core, at most 4).
    #[arg(long, value_name = "N")]
    threads: Option<u32>,
    /// Spoken language, ISO 639-1 (default: detect; English-only models: en).
    #[arg(long, value_name = "CODE")]
    language: Option<String>,
    /// Encode only as much of whisper's 30 s window as the clip needs (faster for short
    /// commands, slightly less accurate).
    #[arg(long)]
    fast: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn transcribe(args: TranscribeArgs, settings: &Settings) -> anyhow::Result<()> {
    let voice = &settings.voice;
    let limits = AudioLimits { max_bytes: 512 * 1024 * 1024, max_seconds: voice.max_audio_seconds as f64 };
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let audio = decode_wav_16k_mono(&bytes, &limits).with_context(|| args.file.display().to_string())?;
    let configured = args.model.as_deref().unwrap_or(&voice.stt_model);
    let model = crate::models::locate(configured, PREFERRED_MODELS, &settings.storage.data_dir);
    let threads = args.threads.filter(|&t| t > 0).unwrap_or_else(|| voice.speech_threads());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let stt = Transcriber::start(model.map_err(|e| e.to_string()), threads);
        if let SttState::Failed { reason } = stt.ready(Duration::from_secs(600)).await {
            bail!("{reason}");
        }
        let request = TranscribeRequest { audio, language: args.language, prompt: None, fast: args.fast };
        let t = stt.transcribe(request).await?;
        match args.format {
            Format::Text => println!("{}", t.text),
            Format::Json => {
                let mut json = serde_json::to_value(&t)?;
                json["elapsed_ms"] = serde_json::json!((t.elapsed.as_secs_f64() * 1000.0).round());
                json["threads"] = serde_json::json!(threads);
                println!("{json}");
            }
        }
        Ok(())
    })
}
