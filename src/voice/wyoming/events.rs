//! Typed Wyoming events: the ones a speech-to-text, text-to-speech and
//! intent-handling service exchanges. Unknown event types stay
//! [`Event::Other`]; unknown fields are ignored, as the Python library does.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::codec::{RawEvent, WyomingError};
use super::info::Info;

/// PCM format of an audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioFormat {
    /// Samples per second.
    pub rate: u32,
    /// Bytes per sample.
    pub width: u16,
    pub channels: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioStart {
    #[serde(flatten)]
    pub format: AudioFormat,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioChunk {
    #[serde(flatten)]
    pub format: AudioFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// Raw PCM (the event payload).
    #[serde(skip)]
    pub audio: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioStop {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// A request to transcribe the audio stream that follows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcribe {
    /// Model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
}

/// A transcription (from speech-to-text), or text to handle (to intent handling).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TranscriptStart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
}

/// The voice a synthesis asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SynthesizeVoice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Synthesize {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<SynthesizeVoice>,
}

/// The answer of intent handling (`handled`, or `not-handled`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Handled {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub text: String,
    /// Machine-readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A text chunk of a streamed transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextChunk {
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Every event this server understands.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    Describe,
    Info(Box<Info>),
    Transcribe(Transcribe),
    AudioStart(AudioStart),
    AudioChunk(AudioChunk),
    AudioStop(AudioStop),
    Transcript(Transcript),
    TranscriptStart(TranscriptStart),
    TranscriptChunk(TextChunk),
    TranscriptStop,
    Synthesize(Synthesize),
    Handled(Handled),
    NotHandled(Handled),
    Error(ErrorEvent),
    Ping(Ping),
    Pong(Ping),
    /// Any other type, untouched.
    Other(RawEvent),
}

fn parse<T: DeserializeOwned>(raw: &RawEvent) -> Result<T, WyomingError> {
    serde_json::from_value(Value::Object(raw.data.clone()))
        .map_err(|e| WyomingError::InvalidEvent { kind: raw.kind.clone(), reason: e.to_string() })
}

fn raw(kind: &str, data: &impl Serialize) -> RawEvent {
    let data = match serde_json::to_value(data) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    RawEvent { kind: kind.into(), data, payload: None }
}

impl Event {
    /// The event's type name on the wire.
    pub fn kind(&self) -> &str {
        match self {
            Event::Describe => "describe",
            Event::Info(_) => "info",
            Event::Transcribe(_) => "transcribe",
            Event::AudioStart(_) => "audio-start",
            Event::AudioChunk(_) => "audio-chunk",
            Event::AudioStop(_) => "audio-stop",
            Event::Transcript(_) => "transcript",
            Event::TranscriptStart(_) => "transcript-start",
            Event::TranscriptChunk(_) => "transcript-chunk",
            Event::TranscriptStop => "transcript-stop",
            Event::Synthesize(_) => "synthesize",
            Event::Handled(_) => "handled",
            Event::NotHandled(_) => "not-handled",
            Event::Error(_) => "error",
            Event::Ping(_) => "ping",
            Event::Pong(_) => "pong",
            Event::Other(raw) => &raw.kind,
        }
    }

    /// Interprets a raw event; a known type with bad fields is an error.
    pub fn from_raw(raw: RawEvent) -> Result<Event, WyomingError> {
        Ok(match raw.kind.as_str() {
            "describe" => Event::Describe,
            "info" => Event::Info(Box::new(parse(&raw)?)),
            "transcribe" => Event::Transcribe(parse(&raw)?),
            "audio-start" => Event::AudioStart(parse(&raw)?),
            "audio-chunk" => {
                let mut chunk: AudioChunk = parse(&raw)?;
                chunk.audio = raw.payload.unwrap_or_default();
                Event::AudioChunk(chunk)
            }
            "audio-stop" => Event::AudioStop(parse(&raw)?),
            "transcript" => Event::Transcript(parse(&raw)?),
            "transcript-start" => Event::TranscriptStart(parse(&raw)?),
            "transcript-chunk" => Event::TranscriptChunk(parse(&raw)?),
            "transcript-stop" => Event::TranscriptStop,
            "synthesize" => Event::Synthesize(parse(&raw)?),
            "handled" => Event::Handled(parse(&raw)?),
            "not-handled" => Event::NotHandled(parse(&raw)?),
            "error" => Event::Error(parse(&raw)?),
            "ping" => Event::Ping(parse(&raw)?),
            "pong" => Event::Pong(parse(&raw)?),
            _ => Event::Other(raw),
        })
    }

    /// The event as it is sent.
    pub fn to_raw(&self) -> RawEvent {
        let kind = self.kind();
        match self {
            Event::Describe | Event::TranscriptStop => RawEvent::new(kind),
            Event::Info(info) => raw(kind, info),
            Event::Transcribe(e) => raw(kind, e),
            Event::AudioStart(e) => raw(kind, e),
            Event::AudioChunk(e) => RawEvent { payload: Some(e.audio.clone()), ..raw(kind, e) },
            Event::AudioStop(e) => raw(kind, e),
            Event::Transcript(e) => raw(kind, e),
            Event::TranscriptStart(e) => raw(kind, e),
            Event::TranscriptChunk(e) => raw(kind, e),
            Event::Synthesize(e) => raw(kind, e),
            Event::Handled(e) | Event::NotHandled(e) => raw(kind, e),
            Event::Error(e) => raw(kind, e),
            Event::Ping(e) | Event::Pong(e) => raw(kind, e),
            Event::Other(raw) => raw.clone(),
        }
    }
}
