//! The OpenAI-compatible audio routes: `POST /v1/audio/transcriptions` (multipart WAV
//! upload → text, JSON, verbose JSON with segments, SRT or WebVTT).

use super::{AppState, Caller};
use crate::audio::{decode_wav_16k_mono, AudioLimits};
use crate::error::{ApiError, ErrorCode};
use crate::voice::stt::{Segment, TranscribeRequest, Transcription};
use actix_multipart::Multipart;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;

/// Largest upload accepted (OpenAI's limit).
pub const MAX_AUDIO_BYTES: usize = 25 * 1024 * 1024;
/// Largest text field (model, language, prompt, ...).
const MAX_FIELD_BYTES: usize = 4096;

fn multipart_error(e: actix_multipart::MultipartError) -> ApiError {
    use actix_multipart::MultipartError as M;
    match e {
        M::ContentTypeMissing | M::ContentTypeParse | M::ContentTypeIncompatible | M::BoundaryMissing => {
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send multipart/form-data with the audio in a 'file' field",
            )
        }
        other => ApiError::invalid(format!("could not read the upload: {other}")),
    }
}

/// The fields of a transcription request.
#[derive(Debug, Default)]
struct Form {
    file: Option<Vec<u8>>,
    language: Option<String>,
    prompt: Option<String>,
    response_format: Option<String>,
    temperature: Option<String>,
}

async fn read_form(mut multipart: Multipart) -> Result<Form, ApiError> {
    let mut form = Form::default();
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(multipart_error)?;
        let name = field.name().unwrap_or_default().to_string();
        let limit = if name == "file" { MAX_AUDIO_BYTES } else { MAX_FIELD_BYTES };
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(multipart_error)?;
            if data.len() + chunk.len() > limit {
                return Err(match name.as_str() {
                    "file" => ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        format!("the audio file is larger than {MAX_AUDIO_BYTES} bytes"),
                    ),
                    _ => ApiError::invalid(format!(
                        "the field '{name}' is longer than {MAX_FIELD_BYTES} bytes"
                    )),
                });
            }
            data.extend_from_slice(&chunk);
        }
        let text = || {
            String::from_utf8(data.clone())
                .map(|s| s.trim().to_string())
                .map_err(|_| ApiError::invalid(format!("the field '{name}' is not UTF-8 text")))
        };
        match name.as_str() {
            "file" => form.file = Some(data),
            "language" => form.language = Some(text()?).filter(|s| !s.is_empty()),
            "prompt" => form.prompt = Some(text()?).filter(|s| !s.is_empty()),
            "response_format" => form.response_format = Some(text()?),
            "temperature" => form.temperature = Some(text()?),
            // `model` names whisper-1 or ours: either way the installed model answers.
            // Unknown fields are ignored, as OpenAI's API does.
            _ => {}
        }
    }
    Ok(form)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ResponseFormat {
    Json,
    Text,
    VerboseJson,
    Srt,
    Vtt,
}

fn response_format(raw: Option<&str>) -> Result<ResponseFormat, ApiError> {
    Ok(match raw.unwrap_or("json") {
        "json" => ResponseFormat::Json,
        "text" => ResponseFormat::Text,
        "verbose_json" => ResponseFormat::VerboseJson,
        "srt" => ResponseFormat::Srt,
        "vtt" => ResponseFormat::Vtt,
        other => {
            return Err(ApiError::invalid(format!(
                "response_format '{other}' is not supported; use json, text, verbose_json, srt or vtt"
            )))
        }
    })
}

#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "openai",
    description = "OpenAI's transcriptions: multipart `file` (WAV), `model`, `language`, `prompt`, `response_format` (`json`, `text`, `verbose_json`, `srt`, `vtt`), `temperature`.",
    request_body(content = crate::http::openapi::Object, content_type = "multipart/form-data"),
    responses((status = 200, description = "The transcript in the format asked", content((crate::http::openapi::Object = "application/json"), (String = "text/plain"), (String = "application/x-subrip"), (String = "text/vtt"))),
        (status = 400, description = "`invalid_request` or `invalid_audio`"),
        (status = 413, description = "`payload_too_large` or `audio_too_long`"),
        (status = 415, description = "`unsupported_media_type`: not multipart"),
        (status = 404, description = "`model_not_found` / `unknown_model`"),
        (status = 429, description = "`overloaded` or `rate_limited`: `Retry-After` says when to retry"),
        (status = 503, description = "`model_not_ready`, `insufficient_memory`, `shedding_load` or `model_loads_paused`"),
        (status = 504, description = "`timeout`")))]
pub async fn transcriptions(
    state: web::Data<AppState>,
    _caller: Caller,
    multipart: Multipart,
) -> Result<HttpResponse, ApiError> {
    let form = read_form(multipart).await?;
    let format = response_format(form.response_format.as_deref())?;
    if let Some(t) = &form.temperature {
        match t.parse::<f32>() {
            Ok(v) if (0.0..=1.0).contains(&v) => {}
            _ => return Err(ApiError::invalid("temperature must be a number between 0 and 1")),
        }
    }
    let file =
        form.file.ok_or_else(|| ApiError::invalid("the request has no 'file' field with the audio"))?;
    if file.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidAudio, "the audio file is empty"));
    }
    let limits = AudioLimits {
        max_bytes: MAX_AUDIO_BYTES,
        max_seconds: state.settings.voice.max_audio_seconds as f64,
    };
    // Decoding and resampling minutes of audio is CPU work: off the async workers.
    let audio = web::block(move || decode_wav_16k_mono(&file, &limits))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "audio decoding stopped"))??;
    let language = form.language.or_else(|| state.voice.default_language());
    let request = TranscribeRequest { audio, language, prompt: form.prompt, fast: false };
    let t = state.voice.stt.transcribe(request).await?;
    Ok(render(&t, format))
}

fn render(t: &Transcription, format: ResponseFormat) -> HttpResponse {
    match format {
        ResponseFormat::Json => HttpResponse::Ok().json(json!({ "text": t.text })),
        ResponseFormat::Text => {
            HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(t.text.clone())
        }
        ResponseFormat::VerboseJson => HttpResponse::Ok().json(json!({
            "task": "transcribe",
            "language": t.language,
            "duration": t.duration,
            "text": t.text,
            "segments": t.segments.iter().map(|s| json!({
                "id": s.id,
                "seek": 0,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": [],
                "temperature": 0.0,
                "no_speech_prob": s.no_speech_prob,
            })).collect::<Vec<_>>(),
        })),
        ResponseFormat::Srt => HttpResponse::Ok()
            .content_type("application/x-subrip; charset=utf-8")
            .body(subtitles(&t.segments, false)),
        ResponseFormat::Vtt => {
            HttpResponse::Ok().content_type("text/vtt; charset=utf-8").body(subtitles(&t.segments, true))
        }
    }
}

/// SubRip (`vtt == false`) or WebVTT cues, one per segment.
fn subtitles(segments: &[Segment], vtt: bool) -> String {
    let stamp = |seconds: f64| {
        let ms = (seconds.max(0.0) * 1000.0).round() as u64;
        let sep = if vtt { '.' } else { ',' };
        format!("{:02}:{:02}:{:02}{sep}{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
    };
    let mut out = String::from(if vtt { "WEBVTT\n\n" } else { "" });
    for (i, s) in segments.iter().enumerate() {
        if !vtt {
            out.push_str(&format!("{}\n", i + 1));
        }
        out.push_str(&format!("{} --> {}\n{}\n\n", stamp(s.start), stamp(s.end), s.text.trim()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(id: usize, start: f64, end: f64, text: &str) -> Segment {
        Segment { id, start, end, text: text.into(), no_speech_prob: 0.0 }
    }

    #[test]
    fn subtitles_in_both_formats() {
        let segments = [segment(0, 0.0, 1.5, " Hello."), segment(1, 61.25, 3725.0, " World.")];
        assert_eq!(
            subtitles(&segments, false),
            "1\n00:00:00,000 --> 00:00:01,500\nHello.\n\n2\n00:01:01,250 --> 01:02:05,000\nWorld.\n\n"
        );
        assert!(subtitles(&segments, true).starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello.\n"));
    }

    #[test]
    fn response_formats_are_checked() {
        assert_eq!(response_format(None).unwrap(), ResponseFormat::Json);
        assert_eq!(response_format(Some("verbose_json")).unwrap(), ResponseFormat::VerboseJson);
        let err = response_format(Some("mp3")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }
}
