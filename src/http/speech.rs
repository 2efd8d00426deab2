//! `POST /v1/audio/speech` (OpenAI shape: text in, WAV or raw PCM out) and
//! `GET /v1/audio/voices` (the installed voices).

use super::{AppState, Caller};
use crate::audio::encode_wav;
use crate::error::{ApiError, ErrorCode};
use crate::voice::tts::{split_sentences, SpeakRequest};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"input": "Hello."}))]
pub struct SpeechRequest {
    /// `tts-1` and the like, or a voice model name: the installed voice answers either way.
    #[serde(default)]
    #[allow(dead_code)]
    pub model: Option<String>,
    pub input: String,
    /// An installed voice, or `default` for the configured one.
    #[serde(default)]
    pub voice: Option<String>,
    /// `wav` (default) or `pcm` (16-bit mono at the voice's rate, streamed sentence by
    /// sentence; the rate is in the `X-Sample-Rate` header).
    #[serde(default)]
    pub response_format: Option<String>,
    /// 0.25 to 4.0.
    #[serde(default)]
    pub speed: Option<f32>,
    /// Accepted for compatibility; Piper voices take no instructions.
    #[serde(default)]
    #[allow(dead_code)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub stream_format: Option<String>,
}

#[utoipa::path(post, path = "/v1/audio/speech", tag = "openai",
    description = "OpenAI's speech: `input`, `voice`, `model`, `response_format` (`wav`, `pcm`), `speed`.",
    request_body = SpeechRequest,
    responses((status = 200, description = "The speech", content(("audio/wav"), ("audio/pcm"))),
        (status = 400, description = "`invalid_request`"),
        (status = 404, description = "`voice_not_found`"),
        (status = 404, description = "`model_not_found` / `unknown_model`"),
        (status = 429, description = "`overloaded` or `rate_limited`: `Retry-After` says when to retry"),
        (status = 503, description = "`model_not_ready`, `insufficient_memory`, `shedding_load` or `model_loads_paused`"),
        (status = 504, description = "`timeout`")))]
pub async fn speech(
    state: web::Data<AppState>,
    _caller: Caller,
    body: web::Json<SpeechRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let input = request.input.trim().to_string();
    if input.is_empty() {
        return Err(ApiError::invalid("input must not be empty"));
    }
    let max = state.settings.voice.max_speech_chars;
    if input.chars().count() > max {
        return Err(ApiError::invalid(format!(
            "input is longer than {max} characters (voice.max_speech_chars); split it into several requests"
        )));
    }
    if let Some(speed) = request.speed {
        if !(0.25..=4.0).contains(&speed) {
            return Err(ApiError::invalid("speed must be between 0.25 and 4.0"));
        }
    }
    if request.stream_format.as_deref().is_some_and(|f| f != "audio") {
        return Err(ApiError::invalid("stream_format must be 'audio' (server-sent events are not offered)"));
    }
    let voice = request.voice.filter(|v| !v.is_empty() && v != "default");
    let tts = state.voice.tts.clone();
    match request.response_format.as_deref().unwrap_or("wav") {
        "wav" => {
            let speech = tts.synthesize(SpeakRequest { text: input, voice, speed: request.speed }).await?;
            Ok(HttpResponse::Ok().content_type("audio/wav").body(encode_wav(&speech.samples, speech.rate, 1)))
        }
        "pcm" => {
            // The first sentence decides the status (and the rate header); the rest stream.
            let mut sentences = split_sentences(&input).into_iter();
            let first = sentences.next().unwrap_or_default();
            let speak = move |text: String| SpeakRequest { text, voice: voice.clone(), speed: request.speed };
            let head = tts.synthesize(speak(first)).await?;
            let rate = head.rate;
            let first_bytes = pcm_bytes(&head.samples);
            let rest =
                futures_util::stream::unfold((sentences, tts, speak), |(mut left, tts, speak)| async move {
                    let text = left.next()?;
                    let chunk = match tts.synthesize(speak(text)).await {
                        Ok(speech) => Ok(pcm_bytes(&speech.samples)),
                        Err(e) => Err(actix_web::error::ErrorInternalServerError(e.to_string())),
                    };
                    Some((chunk, (left, tts, speak)))
                });
            let body =
                futures_util::StreamExt::chain(futures_util::stream::once(async { Ok(first_bytes) }), rest);
            Ok(HttpResponse::Ok()
                .content_type("audio/pcm")
                .insert_header(("X-Sample-Rate", rate.to_string()))
                .streaming(body))
        }
        other => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("response_format '{other}' is not supported; use wav or pcm"),
        )),
    }
}

fn pcm_bytes(samples: &[i16]) -> bytes::Bytes {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>().into()
}

#[utoipa::path(get, path = "/v1/audio/voices", tag = "openai",
    responses((status = 200, description = "The voices (`object: list`, `voices`)", body = crate::http::openapi::Object)))]
pub async fn voices(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "object": "list", "voices": state.voice.tts.voices() }))
}
