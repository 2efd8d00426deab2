//! The speech-to-text thread: owns the whisper.cpp context and state.

use super::{check_model, join_segments, Job, Segment, SttError, SttState, Transcription};
use crate::engine::omp::on_own_thread;
use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

/// Audio frames per second in whisper's encoder (1500 per 30 s window).
const FRAMES_PER_SECOND: f64 = 50.0;
/// Encoder frames kept beyond a short clip, so the decoder sees some silence.
const FAST_PADDING_FRAMES: f64 = 64.0;

/// whisper.cpp's abort callback: `data` is the job's cancellation flag.
unsafe extern "C" fn abort_when_cancelled(data: *mut c_void) -> bool {
    // SAFETY: set below to a live `AtomicBool` for the duration of `full`.
    unsafe { (*(data as *const AtomicBool)).load(Ordering::Relaxed) }
}

pub(super) fn run(
    path: PathBuf,
    threads: u32,
    state: watch::Sender<SttState>,
    mut jobs: mpsc::Receiver<Job>,
) {
    let model = crate::models::model_id(&path);
    let loaded = check_model(&path).and_then(|()| {
        whisper_rs::install_logging_hooks();
        let mut params = WhisperContextParameters::default();
        // whisper.cpp's flash attention was 30-50% slower on these CPUs.
        params.flash_attn(false);
        let path_str = path.to_str().ok_or_else(|| format!("{}: the path is not UTF-8", path.display()))?;
        let ctx = WhisperContext::new_with_params(path_str, params)
            .map_err(|e| format!("whisper.cpp cannot load {}: {e}", path.display()))?;
        let whisper_state =
            ctx.create_state().map_err(|e| format!("whisper.cpp cannot create a decoding state: {e}"))?;
        Ok((ctx, whisper_state))
    });
    let (ctx, mut whisper_state) = match loaded {
        Ok(loaded) => loaded,
        Err(reason) => {
            tracing::error!(model = %model, %reason, "speech to text failed to load");
            let _ = state.send(SttState::Failed { reason });
            // Answer whatever was queued while loading.
            while let Some(job) = jobs.blocking_recv() {
                let _ = job.reply.send(Err(SttError::NotReady("the speech model failed to load".into())));
            }
            return;
        }
    };
    let multilingual = ctx.is_multilingual();
    // One short warm-up run, so the first utterance does not pay for first-use allocations.
    let warm_up = Job {
        // A set language: detecting one would cost a full 30 s encoder pass.
        request: super::TranscribeRequest {
            audio: vec![0.0; 8000],
            language: Some("en".into()),
            fast: true,
            ..Default::default()
        },
        reply: tokio::sync::oneshot::channel().0,
        cancelled: Arc::new(AtomicBool::new(false)),
    };
    let started = Instant::now();
    let _ =
        on_own_thread("hearth-stt-run", || transcribe(&mut whisper_state, multilingual, threads, &warm_up));
    tracing::info!(model = %model, multilingual, threads, warm_up_ms = started.elapsed().as_millis() as u64, "speech to text ready");
    let _ = state.send(SttState::Ready { model: model.clone(), multilingual });

    while let Some(job) = jobs.blocking_recv() {
        if job.reply.is_closed() || job.cancelled.load(Ordering::Relaxed) {
            continue;
        }
        let result =
            on_own_thread("hearth-stt-run", || transcribe(&mut whisper_state, multilingual, threads, &job));
        let _ = job.reply.send(result);
    }
}

fn transcribe(
    whisper_state: &mut whisper_rs::WhisperState,
    multilingual: bool,
    threads: u32,
    job: &Job,
) -> Result<Transcription, SttError> {
    let request = &job.request;
    let duration = request.audio.len() as f64 / crate::audio::SPEECH_RATE as f64;
    // The encoder window: all of whisper's 30 s (0), or as much as a short clip needs.
    let audio_ctx = match request.fast && duration < 28.0 {
        true => (duration * FRAMES_PER_SECOND + FAST_PADDING_FRAMES).ceil().min(1500.0) as i32,
        false => 0,
    };
    let language = match languages(request.language.as_deref(), multilingual)? {
        Languages::Fixed(code) => code,
        Languages::Detect(allowed) => detect(whisper_state, &request.audio, audio_ctx, threads, &allowed)?,
    };
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(threads.max(1) as i32);
    params.set_language(Some(&language));
    params.set_detect_language(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    params.set_no_context(true);
    params.set_suppress_blank(true);
    if let Some(prompt) = request.prompt.as_deref().filter(|p| !p.trim().is_empty()) {
        params.set_initial_prompt(prompt);
    }
    params.set_audio_ctx(audio_ctx);
    // A caller that went away (HTTP disconnect, WebSocket closed) stops the work.
    // (whisper-rs 0.16's set_abort_callback_safe hands whisper.cpp a pointer of the
    // wrong type, which reads garbage and aborts every encode; so the plain C callback.)
    // SAFETY: the flag is the job's, which outlives `full` below.
    unsafe {
        params.set_abort_callback(Some(abort_when_cancelled));
        params.set_abort_callback_user_data(Arc::as_ptr(&job.cancelled) as *mut c_void);
    }

    let started = Instant::now();
    whisper_state.full(params, &request.audio).map_err(|e| match job.cancelled.load(Ordering::Relaxed) {
        true => SttError::Failed("cancelled: the caller went away".into()),
        false => SttError::Failed(e.to_string()),
    })?;
    let elapsed = started.elapsed();

    let mut segments = Vec::new();
    for (id, segment) in whisper_state.as_iter().enumerate() {
        let text = segment.to_str_lossy().map(|t| t.into_owned()).unwrap_or_default();
        segments.push(Segment {
            id,
            // whisper counts in centiseconds.
            start: segment.start_timestamp() as f64 / 100.0,
            end: (segment.end_timestamp() as f64 / 100.0).min(duration),
            text,
            no_speech_prob: segment.no_speech_probability(),
        });
    }
    Ok(Transcription { text: join_segments(&segments), language, duration, segments, elapsed })
}

/// The language of a request: given, or to be found among some (or all) languages.
#[derive(Debug, PartialEq)]
enum Languages {
    Fixed(String),
    /// Detect, choosing only among these (empty: any).
    Detect(Vec<String>),
}

/// Reads a request's language: empty or `auto` (detect), one ISO 639-1 code, or several
/// separated by commas (`voice.language = "en,de"`: detect among those only). English-only
/// models always hear English.
fn languages(raw: Option<&str>, multilingual: bool) -> Result<Languages, SttError> {
    let codes: Vec<String> = raw
        .unwrap_or("")
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "auto")
        .collect();
    for code in &codes {
        if whisper_rs::get_lang_id(code).is_none() {
            return Err(SttError::InvalidRequest(format!(
                "unknown language '{code}'; use an ISO 639-1 code such as 'en' or 'de'"
            )));
        }
        if !multilingual && code != "en" {
            return Err(SttError::InvalidRequest(format!(
                "the speech model understands English only, not '{code}'; install whisper-base"
            )));
        }
    }
    Ok(match codes.len() {
        _ if !multilingual => Languages::Fixed("en".into()),
        1 => Languages::Fixed(codes[0].clone()),
        _ => Languages::Detect(codes),
    })
}

/// Finds the language spoken in `audio`, among `allowed` (empty: any).
///
/// Not whisper.cpp's own detection inside `full`: that runs before `full` applies the
/// run's `audio_ctx`, so it encodes as much audio as the previous run did. After the
/// 0.5 s warm-up that was the first 1.8 s of the next clip, and the first transcription
/// after a start came back as Cantonese or Maori. So the state is first given this run's
/// window by a `full` call that encodes nothing (whisper.cpp stops when less than a second
/// is left to decode), and whisper's language detection then runs on this clip.
fn detect(
    whisper_state: &mut whisper_rs::WhisperState,
    audio: &[f32],
    audio_ctx: i32,
    threads: u32,
    allowed: &[String],
) -> Result<String, SttError> {
    let failed = |what: &str, e: whisper_rs::WhisperError| SttError::Failed(format!("{what}: {e}"));
    let mut prime = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    prime.set_n_threads(threads.max(1) as i32);
    prime.set_language(Some("en"));
    prime.set_audio_ctx(audio_ctx);
    prime.set_duration_ms(500);
    prime.set_no_context(true);
    prime.set_print_progress(false);
    prime.set_print_realtime(false);
    prime.set_print_special(false);
    prime.set_print_timestamps(false);
    whisper_state.full(prime, &[0.0; 1600]).map_err(|e| failed("setting the audio window", e))?;
    let threads = threads.max(1) as usize;
    whisper_state.pcm_to_mel(audio, threads).map_err(|e| failed("computing the spectrogram", e))?;
    let (best, probs) =
        whisper_state.lang_detect(0, threads).map_err(|e| failed("detecting the language", e))?;
    let id = match allowed {
        [] => best,
        allowed => allowed
            .iter()
            .filter_map(|code| whisper_rs::get_lang_id(code))
            .max_by(|a, b| probs[*a as usize].total_cmp(&probs[*b as usize]))
            .unwrap_or(best),
    };
    let code = whisper_rs::get_lang_str(id).unwrap_or("en").to_string();
    tracing::debug!(language = %code, p = probs.get(id as usize).copied().unwrap_or(0.0), ?allowed, "detected the language");
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::{languages, Languages};

    #[test]
    fn a_request_names_one_language_several_or_none() {
        let fixed = |c: &str| Languages::Fixed(c.into());
        assert_eq!(languages(None, true).unwrap(), Languages::Detect(vec![]));
        assert_eq!(languages(Some(" auto "), true).unwrap(), Languages::Detect(vec![]));
        assert_eq!(languages(Some("DE"), true).unwrap(), fixed("de"));
        assert_eq!(
            languages(Some("en, de"), true).unwrap(),
            Languages::Detect(vec!["en".into(), "de".into()])
        );
        assert_eq!(languages(None, false).unwrap(), fixed("en"), "English-only models hear English");
        assert!(languages(Some("en,zz"), true).is_err());
        assert!(languages(Some("de"), false).is_err(), "tiny.en cannot hear German");
    }
}
