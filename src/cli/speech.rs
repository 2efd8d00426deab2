//! Speech from the command line, in process: `hearth transcribe` (whisper.cpp) and
//! `hearth speak` (Piper).

use crate::audio::{decode_wav_16k_mono, AudioLimits};
use crate::config::Settings;
use crate::voice::stt::{SttState, TranscribeRequest, Transcriber, PREFERRED_MODELS};
use crate::voice::tts::{locate_onnxruntime, SpeakRequest, Synthesizer, TtsState, PREFERRED_VOICES};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

/// Say TEXT with the local Piper voice and write a WAV file.
///
/// Prints what it wrote, the load time and the real-time factor: synthesis time divided
/// by the length of the audio (below 1 is faster than real time); benchmarks read it.
#[derive(Debug, Args)]
pub struct SpeakArgs {
    /// The text; `-` reads it from standard input.
    text: String,
    /// Piper voice: a manifest name (piper-joe) or an .onnx file with its .onnx.json
    /// beside it. Default: voice.tts_voice, else the best installed.
    #[arg(long, value_name = "NAME|PATH")]
    voice: Option<String>,
    /// Pace: 1.0 is the voice's own, 0.25 to 4.0.
    #[arg(long, value_name = "X")]
    speed: Option<f32>,
    /// The WAV file to write (16-bit mono at the voice's rate); `-` writes to standard output.
    #[arg(long, short, value_name = "FILE.wav", default_value = "speech.wav")]
    output: String,
    /// Threads (default: voice.threads, else one per core, at most 4).
    #[arg(long, value_name = "N")]
    threads: Option<u32>,
}

pub fn speak(args: SpeakArgs, settings: &Settings) -> anyhow::Result<()> {
    let voice = &settings.voice;
    let text = match args.text.as_str() {
        "-" => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("cannot read the text from standard input")?;
            text
        }
        _ => args.text,
    };
    let data_dir = &settings.storage.data_dir;
    let configured = args.voice.as_deref().unwrap_or(&voice.tts_voice);
    let model = crate::models::locate(configured, PREFERRED_VOICES, data_dir);
    let onnxruntime = locate_onnxruntime(&voice.onnxruntime, data_dir);
    let threads = args.threads.filter(|&t| t > 0).unwrap_or_else(|| voice.speech_threads());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    let speech = rt.block_on(async {
        let tts = Synthesizer::start(model, onnxruntime, threads).with_max_chars(voice.max_speech_chars);
        if let TtsState::Failed { reason } = tts.ready(Duration::from_secs(600)).await {
            bail!("{reason}");
        }
        let loaded = started.elapsed();
        let request = SpeakRequest { text, voice: None, speed: args.speed };
        Ok((tts.synthesize(request).await?, loaded))
    });
    let (speech, loaded) = speech?;
    let wav = crate::audio::encode_wav(&speech.samples, speech.rate, 1);
    let target = if args.output == "-" {
        std::io::stdout().lock().write_all(&wav).context("cannot write to standard output")?;
        "standard output".to_string()
    } else {
        std::fs::write(&args.output, &wav).with_context(|| format!("cannot write {}", args.output))?;
        args.output
    };
    let audio = speech.duration().as_secs_f64();
    let rtf = speech.elapsed.as_secs_f64() / audio.max(1e-9);
    eprintln!(
        "wrote {target}: {audio:.2} s of audio at {} Hz; voice loaded in {:.2} s; synthesis {:.3} s, \
         real-time factor {rtf:.3} ({threads} threads)",
        speech.rate,
        loaded.as_secs_f64(),
        speech.elapsed.as_secs_f64()
    );
    Ok(())
}
