//! The Wyoming wire format: a JSON header line, then optional data and payload.
//!
//! ```text
//! {"type": "...", "data": {...}, "data_length": N, "payload_length": M}\n
//! <N bytes: a JSON object merged on top of the header's "data">
//! <M bytes: binary payload, usually PCM audio>
//! ```
//!
//! The reader accepts both the inline `data` form (older peers) and the
//! `data_length` form, and bounds every part by [`Limits`] before reading it.
//! The writer always uses the `data_length` form, as current peers do.

use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol version written in each header.
pub const PROTOCOL_VERSION: &str = "1.10.2";

/// One event as it travels: its type, its data object and an optional payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawEvent {
    pub kind: String,
    pub data: Map<String, Value>,
    pub payload: Option<Vec<u8>>,
}

impl RawEvent {
    pub fn new(kind: impl Into<String>) -> Self {
        RawEvent { kind: kind.into(), ..Default::default() }
    }
}

/// Upper bounds on what one event may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The header line, newline included.
    pub max_header: usize,
    /// The additional data JSON.
    pub max_data: usize,
    /// The binary payload.
    pub max_payload: usize,
}

impl Default for Limits {
    /// 64 KiB of header or data; 1 MiB of payload (about 30 s of 16 kHz mono
    /// audio per chunk; peers send ~ 64 ms chunks).
    fn default() -> Self {
        Limits { max_header: 64 * 1024, max_data: 64 * 1024, max_payload: 1024 * 1024 }
    }
}

/// Why an event could not be read or understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WyomingError {
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the header line is longer than {limit} bytes")]
    HeaderTooLong { limit: usize },
    #[error("{what} of {len} bytes is longer than the limit of {limit} bytes")]
    TooLong { what: &'static str, len: u64, limit: usize },
    #[error("the connection closed in the middle of an event")]
    Truncated,
    #[error("invalid event header: {0}")]
    InvalidHeader(String),
    #[error("invalid event data: {0}")]
    InvalidData(String),
    #[error("invalid '{kind}' event: {reason}")]
    InvalidEvent { kind: String, reason: String },
}

impl WyomingError {
    /// Whether the stream can still be read after this error (the event was
    /// read whole but not understood).
    pub fn is_recoverable(&self) -> bool {
        matches!(self, WyomingError::InvalidEvent { .. })
    }
}

/// Reads the next event; `None` when the peer closed the connection between events.
pub async fn read_event<R>(reader: &mut R, limits: &Limits) -> Result<Option<RawEvent>, WyomingError>
where
    R: AsyncBufRead + Unpin,
{
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut *reader).take(limits.max_header as u64 + 1).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            return Err(if line.len() > limits.max_header {
                WyomingError::HeaderTooLong { limit: limits.max_header }
            } else {
                WyomingError::Truncated
            });
        }
        // Tolerate blank lines between events.
        if !line.iter().all(u8::is_ascii_whitespace) {
            break;
        }
    }
    let header: Value =
        serde_json::from_slice(&line).map_err(|e| WyomingError::InvalidHeader(e.to_string()))?;
    let Value::Object(mut header) = header else {
        return Err(WyomingError::InvalidHeader("not a JSON object".into()));
    };
    let kind = match header.remove("type") {
        Some(Value::String(kind)) if !kind.is_empty() => kind,
        _ => return Err(WyomingError::InvalidHeader("no \"type\" string".into())),
    };
    let mut data = match header.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(data)) => data,
        Some(_) => return Err(WyomingError::InvalidHeader("\"data\" is not an object".into())),
    };
    let data_length = length(&header, "data_length")?;
    let payload_length = length(&header, "payload_length")?;
    check(data_length, limits.max_data, "event data")?;
    check(payload_length, limits.max_payload, "event payload")?;
    if data_length > 0 {
        let bytes = read_exact(reader, data_length as usize).await?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(extra)) => data.extend(extra),
            Ok(_) => return Err(WyomingError::InvalidData("not a JSON object".into())),
            Err(e) => return Err(WyomingError::InvalidData(e.to_string())),
        }
    }
    let payload = match payload_length {
        0 => None,
        n => Some(read_exact(reader, n as usize).await?),
    };
    Ok(Some(RawEvent { kind, data, payload }))
}

fn length(header: &Map<String, Value>, key: &str) -> Result<u64, WyomingError> {
    match header.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => {
            v.as_u64().ok_or_else(|| WyomingError::InvalidHeader(format!("\"{key}\" is not a length: {v}")))
        }
    }
}

fn check(len: u64, limit: usize, what: &'static str) -> Result<(), WyomingError> {
    if len > limit as u64 {
        return Err(WyomingError::TooLong { what, len, limit });
    }
    Ok(())
}

async fn read_exact<R: AsyncBufRead + Unpin>(reader: &mut R, n: usize) -> Result<Vec<u8>, WyomingError> {
    let mut buf = vec![0u8; n];
    match reader.read_exact(&mut buf).await {
        Ok(_) => Ok(buf),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(WyomingError::Truncated),
        Err(e) => Err(e.into()),
    }
}

/// The bytes of one event on the wire.
pub fn encode_event(event: &RawEvent) -> Vec<u8> {
    let mut header = Map::new();
    header.insert("type".into(), Value::String(event.kind.clone()));
    header.insert("version".into(), Value::String(PROTOCOL_VERSION.into()));
    let data = (!event.data.is_empty())
        .then(|| serde_json::to_vec(&event.data).expect("a JSON map always serializes"));
    if let Some(data) = &data {
        header.insert("data_length".into(), data.len().into());
    }
    let payload = event.payload.as_deref().filter(|p| !p.is_empty());
    if let Some(payload) = payload {
        header.insert("payload_length".into(), payload.len().into());
    }
    let mut out = serde_json::to_vec(&header).expect("a JSON map always serializes");
    out.push(b'\n');
    out.extend_from_slice(data.as_deref().unwrap_or_default());
    out.extend_from_slice(payload.unwrap_or_default());
    out
}

/// Writes one event and flushes it.
pub async fn write_event<W: AsyncWrite + Unpin>(writer: &mut W, event: &RawEvent) -> std::io::Result<()> {
    writer.write_all(&encode_event(event)).await?;
    writer.flush().await
}
