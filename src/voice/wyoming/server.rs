//! A Wyoming TCP server over [`VoiceServices`]: speech-to-text
//! (`transcribe` + `audio-start/chunk/stop` → `transcript`), text-to-speech
//! (`synthesize` → `audio-start/chunk/stop`) and intent handling
//! (`transcript` → `handled`), plus `describe` → `info` and `ping` → `pong`.
//!
//! Each connection is one task; connections beyond
//! [`ServerOptions::max_connections`] get an `error` event and are closed, and
//! a connection idle for [`ServerOptions::idle_timeout`] is closed.
//!
//! A peer off the allowlist takes one of those connection slots only once its token
//! is accepted. Until then it holds one of a few places of its own
//! ([`ServerOptions::max_unauthenticated`]) for at most
//! [`ServerOptions::auth_timeout`], and may send nothing but a small `auth` event:
//! any host on the network can connect, and it must not be able to hold the slots
//! of the satellites that may.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadHalf, WriteHalf};
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
    /// Peers off the allowlist waiting to authenticate, at most, across all addresses.
    pub max_unauthenticated: usize,
    /// A peer admitted by a token has it checked again before its next event once this
    /// long has passed: a revoked token ends the connection.
    pub recheck_token_every: Duration,
    /// How long a peer off the allowlist has to send its `auth` event.
    pub auth_timeout: Duration,
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
            max_unauthenticated: 4,
            auth_timeout: Duration::from_secs(10),
            recheck_token_every: Duration::from_secs(5),
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
    let waiting = Arc::new(Semaphore::new(options.max_unauthenticated.max(1)));
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
        let admitted = options.allow.as_ref().is_none_or(|allow| allow.contains(&canonical(peer.ip())));
        // An allowlisted peer takes a connection slot now; another one a place to authenticate.
        let place = if admitted { &permits } else { &waiting };
        let Ok(place) = place.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let busy = error_event("overloaded", "too many Wyoming connections; try again later");
                let _ = write_event(&mut stream, &busy.to_raw()).await;
            });
            continue;
        };
        let (services, options, permits) = (services.clone(), options.clone(), permits.clone());
        connections.spawn(async move {
            tracing::debug!(%peer, admitted, "wyoming: connected");
            let mut connection = Connection::new(stream);
            let _permit = if admitted {
                place
            } else {
                let authenticated = connection.authenticate(&*services, &options).await;
                drop(place);
                match authenticated {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        tracing::info!(%peer, error = %e, "wyoming: authentication failed");
                        return;
                    }
                }
                match permits.try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(_) => {
                        let busy = error_event("overloaded", "too many Wyoming connections; try again later");
                        let _ = connection.send(&busy).await;
                        return;
                    }
                }
            };
            if let Err(e) = connection.serve(&*services, &options).await {
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

/// [`handle_connection`] for a peer that may have to authenticate first: unless its
/// first event is an `auth` event with a token that [`VoiceServices::authorize`]
/// accepts, sent within [`ServerOptions::auth_timeout`], it gets an `unauthorized`
/// error and the connection is closed.
pub async fn serve_connection<S, T>(
    stream: T,
    services: &S,
    options: &ServerOptions,
    admitted: bool,
) -> Result<(), WyomingError>
where
    S: VoiceServices,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut connection = Connection::new(stream);
    if !admitted && !connection.authenticate(services, options).await? {
        return Ok(());
    }
    connection.serve(services, options).await
}

/// What an `auth` event may carry: a token, in a line of JSON.
const AUTH_LIMITS: Limits = Limits { max_header: 4096, max_data: 4096, max_payload: 0 };

/// One peer's stream.
struct Connection<T> {
    reader: BufReader<ReadHalf<T>>,
    write: WriteHalf<T>,
    /// The token that admitted the peer (`None`: on the allowlist), and when it was last
    /// found valid.
    token: Option<(String, std::time::Instant)>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Connection<T> {
    fn new(stream: T) -> Self {
        let (read, write) = tokio::io::split(stream);
        Connection { reader: BufReader::new(read), write, token: None }
    }

    async fn send(&mut self, event: &Event) -> Result<(), WyomingError> {
        Ok(write_event(&mut self.write, &event.to_raw()).await?)
    }

    /// Waits for a peer off the allowlist to send a good token, as its first event and
    /// within the deadline. Anything else gets an `unauthorized` error; the caller then
    /// closes the connection.
    async fn authenticate<S: VoiceServices>(
        &mut self,
        services: &S,
        options: &ServerOptions,
    ) -> Result<bool, WyomingError> {
        let first = tokio::time::timeout(options.auth_timeout, read_event(&mut self.reader, &AUTH_LIMITS));
        let raw = match first.await {
            Ok(Ok(Some(raw))) => Some(raw),
            Ok(Ok(None)) => return Ok(false),
            Err(_) => None,
            Ok(Err(e)) => {
                let _ = self.send(&error_event("invalid_event", e.to_string())).await;
                return Err(e);
            }
        };
        if let Some(raw) = raw.filter(|raw| raw.kind == "auth") {
            let token = raw.data.get("token").and_then(|t| t.as_str()).unwrap_or_default();
            if services.authorize(token).await {
                self.token = Some((token.to_string(), std::time::Instant::now()));
                return Ok(true);
            }
            self.send(&error_event("unauthorized", "invalid or revoked token")).await?;
            return Ok(false);
        }
        let text = "this Wyoming server needs a token: send {\"type\": \"auth\", \"data\": {\"token\": \"hth_...\"}} \
                    first, or add this address to voice.wyoming_allow";
        self.send(&error_event("unauthorized", text)).await?;
        Ok(false)
    }

    /// Serves an admitted peer's events until it leaves, idles out or the stream breaks.
    async fn serve<S: VoiceServices>(
        &mut self,
        services: &S,
        options: &ServerOptions,
    ) -> Result<(), WyomingError> {
        let mut session = Session::default();
        loop {
            let next = read_event(&mut self.reader, &options.limits);
            let raw = match tokio::time::timeout(options.idle_timeout, next).await {
                Err(_) | Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(raw))) => raw,
                Ok(Err(e)) => {
                    let _ = self.send(&error_event("invalid_event", e.to_string())).await;
                    return Err(e);
                }
            };
            if raw.kind == "auth" {
                // A peer may present a token again; a bad one ends the connection.
                let token = raw.data.get("token").and_then(|t| t.as_str()).unwrap_or_default();
                if !services.authorize(token).await {
                    self.send(&error_event("unauthorized", "invalid or revoked token")).await?;
                    return Ok(());
                }
                self.token = Some((token.to_string(), std::time::Instant::now()));
                continue;
            }
            // A token revoked since it admitted the peer ends the connection (checked at
            // most every `recheck_token_every`, before the peer's next event).
            if let Some((token, checked)) = &self.token {
                if checked.elapsed() >= options.recheck_token_every {
                    if !services.authorize(token).await {
                        self.send(&error_event("unauthorized", "the token was revoked")).await?;
                        return Ok(());
                    }
                    self.token = self.token.take().map(|(t, _)| (t, std::time::Instant::now()));
                }
            }
            let replies = match Event::from_raw(raw) {
                Ok(event) => session.handle(event, services, options).await,
                Err(e) => vec![error_event("invalid_event", e.to_string())],
            };
            for reply in replies {
                self.send(&reply).await?;
            }
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
