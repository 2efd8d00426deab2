//! One turn of the voice pipeline: transcribe, answer through the assistant while
//! speaking each sentence as soon as it is complete, store the turn once all of it was
//! spoken, report latencies.

use super::AppState;
use crate::assistant::{AssistantError, Conversation, Event, Style, Turn, Who};
use crate::error::{ApiError, ErrorCode};
use crate::notices::Notice;
use crate::voice::pipeline::Sentences;
use crate::voice::stt::TranscribeRequest;
use crate::voice::tts::SpeakRequest;
use actix_web::web;
use actix_ws::Session;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Bytes of synthesized audio per binary message.
const AUDIO_FRAME_BYTES: usize = 8192;

/// What the client chose for its turns.
#[derive(Debug, Clone)]
pub struct TurnSettings {
    pub conversation_id: Option<String>,
    pub voice: Option<String>,
    pub knowledge: Option<bool>,
    /// The language spoken (ISO 639-1); `None`: `voice.language`, else detected.
    pub language: Option<String>,
    pub vad_silence_ms: u32,
}

impl Default for TurnSettings {
    fn default() -> Self {
        TurnSettings {
            conversation_id: None,
            voice: None,
            knowledge: None,
            language: None,
            vad_silence_ms: 500,
        }
    }
}

pub enum Input {
    /// An utterance and when it ended (the end of speech).
    Audio {
        audio: Vec<f32>,
        ended: Instant,
    },
    Text(String),
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// Stops a spawned task when the turn that owns it ends early (cancelled, or the client
/// went away): a dropped `JoinHandle` alone would let it run on.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a turn; returns the conversation it was stored in (none when nothing was said
/// or it failed; failures are reported to the client).
pub async fn run(
    state: web::Data<AppState>,
    user_id: i64,
    settings: TurnSettings,
    input: Input,
    mut session: Session,
) -> Option<String> {
    match answer(&state, user_id, &settings, input, &mut session).await {
        Ok(conversation) => conversation,
        Err(e) => {
            let body = json!({"type": "error", "code": e.code.code(), "message": e.message});
            let _ = session.text(body.to_string()).await;
            None
        }
    }
}

async fn answer(
    state: &web::Data<AppState>,
    user_id: i64,
    settings: &TurnSettings,
    input: Input,
    session: &mut Session,
) -> Result<Option<String>, ApiError> {
    let closed = || ApiError::new(ErrorCode::Internal, "the client went away");
    let (question, started, transcribed) = match input {
        Input::Text(text) => {
            let now = Instant::now();
            (text, now, now)
        }
        Input::Audio { audio, ended } => {
            let language = settings.language.clone().or_else(|| state.voice.default_language());
            let request = TranscribeRequest { audio, language, prompt: None, fast: true };
            let t = state.voice.stt.transcribe(request).await?;
            session
                .text(json!({"type": "transcript", "text": t.text}).to_string())
                .await
                .map_err(|_| closed())?;
            (t.text, ended, Instant::now())
        }
    };
    if question.trim().is_empty() {
        session.text(json!({"type": "no_speech"}).to_string()).await.map_err(|_| closed())?;
        return Ok(None);
    }
    state.metrics.observe_stage("speech_end_to_transcript", transcribed - started);

    // The turn: the conversation so far, the documents if asked, the model.
    let conversation = Conversation::Stored { id: settings.conversation_id.clone(), message: question };
    let turn = Turn {
        knowledge: settings.knowledge,
        style: Style::Spoken,
        skills: true,
        channel: crate::notices::Channel::Voice,
        ..Turn::new(Who::user(user_id), conversation)
    };
    let mut running = state.assistant.prepare(turn).await?.run().await?;

    // Sentences go to the speaker task as they complete; it streams their audio back.
    let (sentences_tx, sentences_rx) = mpsc::unbounded_channel::<String>();
    let mut speaker = AbortOnDrop(actix_web::rt::spawn(speak(
        state.clone(),
        settings.voice.clone(),
        sentences_rx,
        session.clone(),
    )));
    let mut sentences = Sentences::default();
    let mut first_token = None;
    let complete = loop {
        match running.next().await {
            Some(Event::Token(t)) => {
                first_token.get_or_insert_with(Instant::now);
                session
                    .text(json!({"type": "reply_delta", "text": t}).to_string())
                    .await
                    .map_err(|_| closed())?;
                for sentence in sentences.push(&t) {
                    let _ = sentences_tx.send(sentence);
                }
            }
            Some(Event::ToolCall(call)) => {
                let message = json!({"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments});
                session.text(message.to_string()).await.map_err(|_| closed())?;
            }
            Some(Event::ToolResult(run)) => {
                let message = json!({"type": "tool_result", "id": run.id, "name": run.name, "ok": run.ok, "ms": run.ms});
                session.text(message.to_string()).await.map_err(|_| closed())?;
            }
            Some(Event::Complete(complete)) => break complete,
            Some(Event::Error(e)) => return Err(e.into()),
            None => return Err(AssistantError::stopped().into()),
        }
    };
    if let Some(rest) = sentences.finish() {
        let _ = sentences_tx.send(rest);
    }
    drop(sentences_tx);
    let spoken =
        (&mut speaker.0).await.map_err(|_| ApiError::new(ErrorCode::Internal, "speech stopped"))??;
    // Stored only now: an answer cancelled or failed while it was spoken leaves nothing.
    let outcome = complete.persist().await?;
    let ids = outcome.stored.ok_or_else(|| ApiError::internal("the turn was not stored"))?;

    let first_token = first_token.unwrap_or(transcribed);
    let mut metrics = json!({
        "speech_end_to_transcript_ms": ms(transcribed - started),
        "transcript_to_first_token_ms": ms(first_token - transcribed),
    });
    state.metrics.observe_stage("transcript_to_first_token", first_token - transcribed);
    if let Some(first_audio) = spoken {
        metrics["first_token_to_first_audio_ms"] =
            json!(ms(first_audio.saturating_duration_since(first_token)));
        metrics["speech_end_to_first_audio_ms"] = json!(ms(first_audio - started));
        state
            .metrics
            .observe_stage("first_token_to_first_audio", first_audio.saturating_duration_since(first_token));
        state.metrics.observe_stage("speech_end_to_first_audio", first_audio - started);
    }
    let done = json!({
        "type": "done",
        "conversation_id": ids.conversation_id,
        "message_id": ids.reply_id,
        "reply": outcome.text,
        "model": outcome.model,
        "tool_calls": outcome.tools,
        "metrics": metrics,
    });
    session.text(done.to_string()).await.map_err(|_| closed())?;
    Ok(Some(ids.conversation_id))
}

/// Tells a notice (a reminder that rang) on a voice connection: `{"type": "notice", "text",
/// "reminder"}`, then the text spoken like an answer's audio, then `{"type": "notice_end"}`
/// (also when it could not be spoken).
pub async fn tell(
    state: web::Data<AppState>,
    voice: Option<String>,
    notice: Notice,
    session: Session,
) -> Option<String> {
    let mut out = session.clone();
    let message = json!({"type": "notice", "text": notice.text, "reminder": notice.rung()});
    if out.text(message.to_string()).await.is_err() {
        return None;
    }
    if let Some(reminder) = notice.rung() {
        state.reminders.delivered(reminder.id).await;
    }
    let (tx, sentences) = mpsc::unbounded_channel();
    let _ = tx.send(notice.text);
    drop(tx);
    if let Err(e) = speak(state, voice, sentences, session).await {
        tracing::warn!(error = %e.message, "a notice could not be spoken");
    }
    let _ = out.text(json!({"type": "notice_end"}).to_string()).await;
    None
}

/// Speaks each sentence as it arrives; returns when the first audio was sent.
async fn speak(
    state: web::Data<AppState>,
    voice: Option<String>,
    mut sentences: mpsc::UnboundedReceiver<String>,
    mut session: Session,
) -> Result<Option<Instant>, ApiError> {
    let closed = || ApiError::new(ErrorCode::Internal, "the client went away");
    let mut first_audio = None;
    while let Some(text) = sentences.recv().await {
        let speech =
            state.voice.tts.synthesize(SpeakRequest { text, voice: voice.clone(), speed: None }).await?;
        if first_audio.is_none() {
            let start = json!({"type": "audio_start", "rate": speech.rate, "channels": 1, "format": "s16le"});
            session.text(start.to_string()).await.map_err(|_| closed())?;
        }
        let bytes: Vec<u8> = speech.samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        for frame in bytes.chunks(AUDIO_FRAME_BYTES) {
            session.binary(frame.to_vec()).await.map_err(|_| closed())?;
            first_audio.get_or_insert_with(Instant::now);
        }
    }
    if first_audio.is_some() {
        session.text(json!({"type": "audio_end"}).to_string()).await.map_err(|_| closed())?;
    }
    Ok(first_audio)
}
