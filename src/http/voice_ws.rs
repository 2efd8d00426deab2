//! `GET /api/ws`: the streamed voice pipeline over a WebSocket.
//!
//! Client → server: a text message `{"type": "start", "conversation_id"?, "voice"?,
//! "knowledge"?, "language"?, "vad_silence_ms"?}` (optional; settings for the turns that follow), then
//! binary frames of 16 kHz mono s16le PCM. An utterance ends when the client sends
//! `{"type": "stop"}` (push-to-talk release) or after `vad_silence_ms` of quiet
//! (hands-free). `{"type": "text", "text": ...}` asks by text and still gets a spoken
//! answer; `{"type": "cancel"}` stops the answer in progress.
//!
//! Server → client: `{"type": "ready"}`, then per turn `vad` (speech_start/speech_end),
//! `transcript`, `reply_delta`s, `audio_start` (rate, channels, format), binary s16le
//! frames of each sentence as soon as it is synthesized, `audio_end`, and `done` with the
//! stored turn's ids and per-stage latencies (also on `/metrics`); or `error` with a
//! stable code. Between turns, a reminder that rang (or rang while no channel was
//! connected) comes as `{"type": "notice", "text", "reminder"}` followed by its spoken
//! text (`audio_start`, frames, `audio_end`) and `notice_end`. Audio that arrives while a turn is being
//! answered or a notice told is dropped.

use super::voice_turn::{self, Input, TurnSettings};
use super::{AppState, Caller, Credential};
use crate::auth::revocation::Revoked;
use crate::error::{ApiError, ErrorCode};
use crate::notices::Notice;
use crate::voice::pipeline::{Capture, CaptureEvent};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, Session};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::time::Instant;
use tokio::sync::broadcast::error::RecvError;

/// Largest WebSocket message accepted (a second of 16 kHz PCM is 32 KB).
const MAX_MESSAGE_BYTES: usize = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Start {
        #[serde(default)]
        conversation_id: Option<String>,
        #[serde(default)]
        voice: Option<String>,
        #[serde(default)]
        knowledge: Option<bool>,
        #[serde(default)]
        vad_silence_ms: Option<u32>,
        #[serde(default)]
        language: Option<String>,
    },
    Stop,
    Text {
        text: String,
    },
    Cancel,
}

/// A browser page on another site must not drive this socket with the user's cookie:
/// when an `Origin` is sent, its host must be the one the request was sent to.
fn check_origin(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get("origin").and_then(|o| o.to_str().ok()) else { return Ok(()) };
    let origin_host = origin.split("://").nth(1).unwrap_or(origin);
    let host = req.connection_info().host().to_string();
    if origin_host.eq_ignore_ascii_case(&host) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Forbidden, format!("WebSocket from origin {origin} refused")))
    }
}

#[utoipa::path(get, path = "/api/ws", tag = "voice",
    description = "The web UI's WebSocket (streamed replies, push-to-talk audio): a WebSocket upgrade from the box's own origin.",
    params(("Upgrade" = String, Header, description = "`websocket`"), ("Sec-WebSocket-Key" = String, Header), ("Sec-WebSocket-Version" = String, Header, description = "`13`")),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "`invalid_request`: not a WebSocket handshake"),
        (status = 403, description = "`forbidden`: another origin")))]
pub async fn ws(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    check_origin(&req)?;
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::invalid(format!("not a WebSocket handshake: {e}")))?;
    let stream = stream
        .max_frame_size(MAX_MESSAGE_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_MESSAGE_BYTES);
    // Listening before the socket runs: a revocation from now on reaches it.
    let revoked = state.revocations.subscribe();
    actix_web::rt::spawn(run(state, caller, session, stream, revoked));
    Ok(response)
}

async fn send(session: &mut Session, value: serde_json::Value) -> bool {
    session.text(value.to_string()).await.is_ok()
}

async fn send_error(session: &mut Session, e: &ApiError) -> bool {
    send(session, json!({"type": "error", "code": e.code.code(), "message": e.message})).await
}

async fn run(
    state: web::Data<AppState>,
    caller: Caller,
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
    mut revoked: tokio::sync::broadcast::Receiver<Revoked>,
) {
    let (token, login) = match caller.credential {
        Credential::Token(id) => (Some(id), None),
        Credential::Session(id) => (None, Some(id)),
    };
    let voice = &state.settings.voice;
    let mut settings = TurnSettings::default();
    let mut capture = Capture::new(settings.vad_silence_ms, voice.max_audio_seconds.min(120));
    // The turn being answered (or a notice being told), and where it reports its
    // conversation id.
    let mut turn: Option<tokio::task::JoinHandle<Option<String>>> = None;
    // Notices for this user (a reminder that rang), told between turns: first those missed.
    let mut notices = state.reminders.notices().subscribe();
    let mut waiting: VecDeque<Notice> = state.reminders.missed(caller.user.id).await.into();
    if !send(&mut session, json!({"type": "ready", "rate": 16000, "format": "s16le"})).await {
        return;
    }
    loop {
        if turn.is_none() {
            if let Some(notice) = waiting.pop_front() {
                let voice = settings.voice.clone();
                turn = Some(actix_web::rt::spawn(voice_turn::tell(
                    state.clone(),
                    voice,
                    notice,
                    session.clone(),
                )));
            }
        }
        let finished = async {
            match turn.as_mut() {
                Some(handle) => handle.await.ok().flatten(),
                None => std::future::pending().await,
            }
        };
        let message = tokio::select! {
            conversation = finished => Err(conversation),
            message = stream.next() => Ok(message),
            notice = notices.recv() => {
                match notice {
                    // Reminders and announcements: what workflows tell shows in the web UI's events.
                    Ok(notice) if notice.concerns(caller.user.id) && notice.spoken() => {
                        waiting.push_back((*notice).clone())
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => waiting.extend(state.reminders.missed(caller.user.id).await),
                    Err(RecvError::Closed) => {}
                }
                continue;
            }
            revocation = revoked.recv() => {
                // A listener that fell behind cannot know whether it was named: it hangs up
                // too (and so it would if the broadcast ended, which the server never lets).
                let ended = match revocation {
                    Ok(r) => r.ends(token, login, caller.user.id),
                    Err(_) => true,
                };
                if ended {
                    let e = ApiError::new(ErrorCode::Unauthorized, "this connection's credential was revoked; sign in again");
                    send_error(&mut session, &e).await;
                    break;
                }
                continue;
            }
        };
        let message = match message {
            Ok(message) => message,
            Err(conversation) => {
                turn = None;
                if conversation.is_some() {
                    settings.conversation_id = conversation;
                }
                capture.reset();
                continue;
            }
        };
        let input = match message {
            None | Some(Ok(AggregatedMessage::Close(_))) => break,
            Some(Err(e)) => {
                // An over-long message or a broken frame: say why, then hang up.
                let code = match e {
                    actix_ws::ProtocolError::Overflow => ErrorCode::PayloadTooLarge,
                    _ => ErrorCode::InvalidRequest,
                };
                send_error(&mut session, &ApiError::new(code, format!("WebSocket error: {e}"))).await;
                break;
            }
            Some(Ok(AggregatedMessage::Ping(bytes))) => {
                let _ = session.pong(&bytes).await;
                continue;
            }
            Some(Ok(AggregatedMessage::Pong(_))) => continue,
            Some(Ok(AggregatedMessage::Binary(bytes))) => {
                if turn.is_some() {
                    continue; // answering: the microphone is not listened to
                }
                let mut input = None;
                for event in capture.push(&bytes) {
                    match event {
                        CaptureEvent::SpeechStart => {
                            send(&mut session, json!({"type": "vad", "event": "speech_start"})).await;
                        }
                        CaptureEvent::Utterance(audio) => {
                            send(&mut session, json!({"type": "vad", "event": "speech_end"})).await;
                            input = Some(Input::Audio { audio, ended: Instant::now() });
                        }
                        CaptureEvent::TooLong => {
                            let e = ApiError::new(
                                ErrorCode::AudioTooLong,
                                "the utterance is too long; it was dropped",
                            );
                            send_error(&mut session, &e).await;
                        }
                    }
                }
                match input {
                    Some(input) => input,
                    None => continue,
                }
            }
            Some(Ok(AggregatedMessage::Text(text))) => match serde_json::from_str::<ClientMessage>(&text) {
                Err(e) => {
                    send_error(&mut session, &ApiError::new(ErrorCode::InvalidJson, e.to_string())).await;
                    continue;
                }
                Ok(ClientMessage::Start { conversation_id, voice, knowledge, vad_silence_ms, language }) => {
                    if let Some(ms) = vad_silence_ms {
                        if !(100..=5000).contains(&ms) {
                            let e = ApiError::invalid("vad_silence_ms must be between 100 and 5000");
                            send_error(&mut session, &e).await;
                            continue;
                        }
                        settings.vad_silence_ms = ms;
                        capture = Capture::new(ms, state.settings.voice.max_audio_seconds.min(120));
                    }
                    settings.conversation_id = conversation_id;
                    settings.voice = voice;
                    settings.knowledge = knowledge;
                    settings.language = language.filter(|l| !l.is_empty());
                    continue;
                }
                Ok(ClientMessage::Cancel) => {
                    // Acknowledged whether or not an answer was running (it may just have ended).
                    if let Some(handle) = turn.take() {
                        handle.abort();
                    }
                    send(&mut session, json!({"type": "cancelled"})).await;
                    capture.reset();
                    continue;
                }
                Ok(_) if turn.is_some() => {
                    let e = ApiError::new(ErrorCode::Overloaded, "still answering; send cancel first");
                    send_error(&mut session, &e).await;
                    continue;
                }
                Ok(ClientMessage::Stop) => match capture.stop() {
                    Some(audio) => Input::Audio { audio, ended: Instant::now() },
                    None => {
                        send(&mut session, json!({"type": "no_speech"})).await;
                        continue;
                    }
                },
                Ok(ClientMessage::Text { text }) => Input::Text(text),
            },
        };
        let task = voice_turn::run(state.clone(), caller.user.id, settings.clone(), input, session.clone());
        turn = Some(actix_web::rt::spawn(task));
    }
    // The client went away: stop the answer in progress (generation and synthesis).
    if let Some(handle) = turn.take() {
        handle.abort();
    }
    let _ = session.close(None).await;
}
