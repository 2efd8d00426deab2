//! A Wyoming TCP server over [`VoiceServices`]: speech-to-text
//! (`transcribe` + `audio-start/chunk/stop` → `transcript`), text-to-speech
//! (`synthesize` → `audio-start/chunk/stop`) and intent handling
//! (`transcript` → `handled`), plus `describe` → `info` and `ping` → `pong`.
//!
//! Each connection is one task; connections beyond
//! [`ServerOptions::max_connections`] get an `error` event and are closed, and
//! a connection idle for [`ServerOptions::idle_timeout`] is closed.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::codec::{read_event, write_event, Limits, WyomingError};
use super::events::{
    AudioChunk, AudioFormat, AudioStart, AudioStop, ErrorEvent, Event, Handled, Synthesize, TextChunk,
    Transcribe, Transcript, TranscriptStart,
};
use super::info::Info;
use crate::audio::{resample, s16le_to_f32, to_mono, MAX_RATE, MIN_RATE, SPEECH_RATE};

/// Satellites send mono (some stereo) audio; more channels are refused.
const MAX_CHANNELS: u16 = 2;

/// Synthesized speech: interleaved 16-bit samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthesized {
    pub rate: u32,
    pub channels: u16,
    pub samples: Vec<i16>,
}

/// A failure of a service, reported to the peer as an `error` event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// Stable snake_case code, e.g. `model_not_ready`.
    pub code: String,
    pub message: String,
}

impl ServiceError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ServiceError { code: code.into(), message: message.into() }
    }
}

/// What the server offers; the engines implement it.
pub trait VoiceServices: Send + Sync + 'static {
    /// The `info` answer. Programs listed here are the ones requests may use.
    fn info(&self) -> Info;

    /// Transcribes one utterance of 16 kHz mono audio.
    fn transcribe(
        &self,
        request: &Transcribe,
        audio: Vec<f32>,
    ) -> impl Future<Output = Result<Transcript, ServiceError>> + Send;

    /// Speaks `request.text`.
    fn synthesize(
        &self,
        request: &Synthesize,
    ) -> impl Future<Output = Result<Synthesized, ServiceError>> + Send;

    /// Answers a transcript; `None` when it cannot be handled (`not-handled`).
    fn handle(
        &self,
        transcript: &Transcript,
    ) -> impl Future<Output = Result<Option<Handled>, ServiceError>> + Send;

    /// Whether `token` (from an `auth` event) admits a peer that is not on the
    /// allowlist. By default no token does.
    fn authorize(&self, token: &str) -> impl Future<Output = bool> + Send {
        let _ = token;
        async { false }
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub limits: Limits,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// Longest utterance accepted for transcription, in seconds and in bytes
    /// of PCM (whichever is reached first).
    pub max_utterance_seconds: f64,
    pub max_utterance_bytes: usize,
    /// Samples per `audio-chunk` of synthesized speech.
    pub samples_per_chunk: usize,
    /// When set, only peers at these addresses are served straight away (Home Assistant
    /// cannot send a token); any other peer must first send
    /// `{"type": "auth", "data": {"token": "hth_..."}}`, checked by
    /// [`VoiceServices::authorize`]. `None`: every peer is served (tests, loopback tools).
    pub allow: Option<Vec<IpAddr>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            limits: Limits::default(),
            max_connections: 8,
            idle_timeout: Duration::from_secs(300),
            max_utterance_seconds: 60.0,
            max_utterance_bytes: 16 * 1024 * 1024,
            samples_per_chunk: 1024,
            allow: None,
        }
    }
}

/// Accepts connections on `listener` until `shutdown` completes; then the open
/// connections are dropped.
pub async fn serve<S: VoiceServices>(
    listener: TcpListener,
    services: Arc<S>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let options = Arc::new(options);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            () = &mut shutdown => {
                connections.abort_all();
                return;
            }
            // Reap finished connections as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "wyoming: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let busy = error_event("overloaded", "too many Wyoming connections; try again later");
                let _ = write_event(&mut stream, &busy.to_raw()).await;
            });
            continue;
        };
        let (services, options) = (services.clone(), options.clone());
        connections.spawn(async move {
            let _permit = permit;
            tracing::debug!(%peer, "wyoming: connected");
            let admitted = options.allow.as_ref().is_none_or(|allow| allow.contains(&canonical(peer.ip())));
            if let Err(e) = serve_connection(stream, &*services, &options, admitted).await {
                tracing::info!(%peer, error = %e, "wyoming: connection ended with an error");
            }
        });
    }
}

fn error_event(code: &str, text: impl Into<String>) -> Event {
    Event::Error(ErrorEvent { text: text.into(), code: Some(code.into()) })
}

/// An IPv4 peer reached over an IPv6 socket, as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Serves one connection until the peer closes it, it idles out, or the
/// stream breaks. Events that are read whole but not understood get an
/// `error` event and the connection goes on.
pub async fn handle_connection<S, T>(
    stream: T,
    services: &S,
    options: &ServerOptions,
) -> Result<(), WyomingError>
where
    S: VoiceServices,
    T: AsyncRead + AsyncWrite + Unpin,
{
    serve_connection(stream, services, options, true).await
}

/// [`handle_connection`] for a peer that may have to authenticate first: until it
/// sends an `auth` event with a token that [`VoiceServices::authorize`] accepts, any
/// other event gets an `unauthorized` error and the connection is closed.
pub async fn serve_connection<S, T>(
    stream: T,
    services: &S,
    options: &ServerOptions,
    mut admitted: bool,
) -> Result<(), WyomingError>
where
    S: VoiceServices,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let mut session = Session::default();
    loop {
        let raw = match tokio::time::timeout(options.idle_timeout, read_event(&mut reader, &options.limits))
            .await
        {
            Err(_) | Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(raw))) => raw,
            Ok(Err(e)) => {
                let _ = write_event(&mut write, &error_event("invalid_event", e.to_string()).to_raw()).await;
                return Err(e);
            }
        };
        if raw.kind == "auth" {
            let token = raw.data.get("token").and_then(|t| t.as_str()).unwrap_or_default();
            admitted = services.authorize(token).await;
            if !admitted {
                let refused = error_event("unauthorized", "invalid or revoked token");
                write_event(&mut write, &refused.to_raw()).await?;
                return Ok(());
            }
            continue;
        }
        if !admitted {
            let text = "this Wyoming server needs a token: send {\"type\": \"auth\", \"data\": {\"token\": \"hth_...\"}} \
                        first, or add this address to voice.wyoming_allow";
            write_event(&mut write, &error_event("unauthorized", text).to_raw()).await?;
            return Ok(());
        }
        let replies = match Event::from_raw(raw) {
            Ok(event) => session.handle(event, services, options).await,
            Err(e) => vec![error_event("invalid_event", e.to_string())],
        };
        for reply in replies {
            write_event(&mut write, &reply.to_raw()).await?;
        }
    }
}

/// One utterance being received.
struct Utterance {
    format: AudioFormat,
    pcm: Vec<u8>,
    too_long: bool,
}

/// Per-connection state.
#[derive(Default)]
struct Session {
    transcribe: Option<Transcribe>,
    audio: Option<Utterance>,
}

fn check_format(f: &AudioFormat) -> Result<(), Event> {
    if f.width != 2
        || f.channels == 0
        || f.channels > MAX_CHANNELS
        || !(MIN_RATE..=MAX_RATE).contains(&f.rate)
    {
        let text = format!(
            "audio of {} Hz, {} byte(s) per sample, {} channel(s) is not supported; send 16-bit PCM \
             (width 2), 1 to {MAX_CHANNELS} channels, {MIN_RATE} to {MAX_RATE} Hz",
            f.rate, f.width, f.channels
        );
        return Err(error_event("unsupported_audio", text));
    }
    Ok(())
}

impl Session {
    async fn handle<S: VoiceServices>(
        &mut self,
        event: Event,
        services: &S,
        options: &ServerOptions,
    ) -> Vec<Event> {
        match event {
            Event::Describe => vec![Event::Info(Box::new(services.info()))],
            Event::Ping(ping) => vec![Event::Pong(ping)],
            Event::Transcribe(request) => {
                self.transcribe = Some(request);
                vec![]
            }
            Event::AudioStart(start) => self.start_audio(start.format),
            Event::AudioChunk(chunk) => self.add_audio(chunk, options),
            Event::AudioStop(_) => self.finish_audio(services).await,
            Event::Synthesize(request) => synthesize(services, &request, options.samples_per_chunk).await,
            Event::Transcript(transcript) => match services.handle(&transcript).await {
                Ok(Some(handled)) => vec![Event::Handled(handled)],
                Ok(None) => vec![Event::NotHandled(Handled::default())],
                Err(e) => vec![error_event(&e.code, e.message)],
            },
            Event::Error(e) => {
                tracing::info!(code = ?e.code, text = %e.text, "wyoming: peer reported an error");
                vec![]
            }
            other => {
                tracing::debug!(kind = other.kind(), "wyoming: ignoring event");
                vec![]
            }
        }
    }

    fn start_audio(&mut self, format: AudioFormat) -> Vec<Event> {
        if let Err(e) = check_format(&format) {
            self.audio = None;
            return vec![e];
        }
        self.audio = Some(Utterance { format, pcm: Vec::new(), too_long: false });
        vec![]
    }

    fn add_audio(&mut self, chunk: AudioChunk, options: &ServerOptions) -> Vec<Event> {
        // A stream may begin without audio-start; its first chunk gives the format.
        if self.audio.is_none() {
            let started = self.start_audio(chunk.format);
            if !started.is_empty() {
                return started;
            }
        }
        let Some(utterance) = self.audio.as_mut() else { return vec![] };
        if chunk.format != utterance.format {
            self.audio = None;
            return vec![error_event("unsupported_audio", "the audio format changed within one stream")];
        }
        let f = utterance.format;
        let max_bytes =
            ((options.max_utterance_seconds * f64::from(f.rate)) as usize * usize::from(f.channels) * 2)
                .min(options.max_utterance_bytes);
        if utterance.too_long || utterance.pcm.len() + chunk.audio.len() > max_bytes {
            utterance.too_long = true;
            utterance.pcm = Vec::new();
            return vec![];
        }
        utterance.pcm.extend_from_slice(&chunk.audio);
        vec![]
    }

    async fn finish_audio<S: VoiceServices>(&mut self, services: &S) -> Vec<Event> {
        let request = self.transcribe.take().unwrap_or_default();
        let Some(utterance) = self.audio.take() else {
            return vec![error_event("invalid_event", "audio-stop without audio")];
        };
        if utterance.too_long {
            return vec![error_event("audio_too_long", "the utterance is longer than the server accepts")];
        }
        let f = utterance.format;
        let mono = to_mono(&s16le_to_f32(&utterance.pcm), f.channels);
        let audio = match tokio::task::spawn_blocking(move || resample(&mono, f.rate, SPEECH_RATE)).await {
            Ok(audio) => audio,
            Err(e) => return vec![error_event("internal_error", format!("resampling failed: {e}"))],
        };
        let streaming = services.info().asr.iter().any(|p| p.supports_transcript_streaming);
        match services.transcribe(&request, audio).await {
            Ok(transcript) if streaming => {
                let start = TranscriptStart { language: transcript.language.clone(), context: None };
                let chunk = TextChunk { text: transcript.text.clone() };
                vec![
                    Event::TranscriptStart(start),
                    Event::TranscriptChunk(chunk),
                    Event::Transcript(transcript),
                    Event::TranscriptStop,
                ]
            }
            Ok(transcript) => vec![Event::Transcript(transcript)],
            Err(e) => vec![error_event(&e.code, e.message)],
        }
    }
}

async fn synthesize<S: VoiceServices>(
    services: &S,
    request: &Synthesize,
    samples_per_chunk: usize,
) -> Vec<Event> {
    let speech = match services.synthesize(request).await {
        Ok(speech) => speech,
        Err(e) => return vec![error_event(&e.code, e.message)],
    };
    let format = AudioFormat { rate: speech.rate, width: 2, channels: speech.channels.max(1) };
    let frame = samples_per_chunk.max(1) * usize::from(format.channels);
    let ms = |samples: usize| {
        (samples / usize::from(format.channels)) as i64 * 1000 / i64::from(format.rate.max(1))
    };
    let mut events = vec![Event::AudioStart(AudioStart { format, timestamp: Some(0) })];
    for (i, chunk) in speech.samples.chunks(frame).enumerate() {
        events.push(Event::AudioChunk(AudioChunk {
            format,
            timestamp: Some(ms(i * frame)),
            audio: chunk.iter().flat_map(|s| s.to_le_bytes()).collect(),
        }));
    }
    events.push(Event::AudioStop(AudioStop { timestamp: Some(ms(speech.samples.len())) }));
    events
}
