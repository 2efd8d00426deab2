//! The server's event flows against a test implementation of the services.

use super::events::*;
use super::info::*;
use super::*;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncWriteExt, BufReader, DuplexStream};

/// Records what it is asked; answers predictably.
#[derive(Default)]
struct Recorder {
    streaming: bool,
    heard: Mutex<Vec<(Transcribe, usize, f32)>>,
    /// `hth_good` stops being accepted once set.
    revoked: std::sync::atomic::AtomicBool,
}

impl VoiceServices for Recorder {
    fn info(&self) -> Info {
        let by = ("test", "https://example.invalid");
        Info {
            asr: vec![AsrProgram {
                artifact: Artifact::new("asr", "test asr", by, None),
                models: vec![],
                supports_transcript_streaming: self.streaming,
            }],
            ..Default::default()
        }
    }

    async fn transcribe(&self, request: &Transcribe, audio: Vec<f32>) -> Result<Transcript, ServiceError> {
        let peak = audio.iter().fold(0f32, |m, v| m.max(v.abs()));
        self.heard.lock().unwrap().push((request.clone(), audio.len(), peak));
        Ok(Transcript {
            text: format!("{} samples", audio.len()),
            language: request.language.clone(),
            context: None,
        })
    }

    async fn synthesize(&self, request: &Synthesize) -> Result<Synthesized, ServiceError> {
        if request.text.is_empty() {
            return Err(ServiceError::new("invalid_request", "nothing to say"));
        }
        Ok(Synthesized { rate: 22_050, channels: 1, samples: (0..2_500).map(|i| i as i16).collect() })
    }

    async fn handle(&self, transcript: &Transcript) -> Result<Option<Handled>, ServiceError> {
        Ok((transcript.text != "gibberish")
            .then(|| Handled { text: Some(format!("you said: {}", transcript.text)), context: None }))
    }

    async fn authorize(&self, token: &str) -> bool {
        token == "hth_good" && !self.revoked.load(std::sync::atomic::Ordering::Relaxed)
    }
}

struct Client {
    reader: BufReader<tokio::io::ReadHalf<DuplexStream>>,
    writer: tokio::io::WriteHalf<DuplexStream>,
}

impl Client {
    async fn send(&mut self, event: Event) {
        write_event(&mut self.writer, &event.to_raw()).await.unwrap();
    }

    async fn recv(&mut self) -> Event {
        let raw = read_event(&mut self.reader, &Limits::default()).await.unwrap().expect("an event");
        Event::from_raw(raw).unwrap()
    }
}

fn start(services: Recorder, options: ServerOptions) -> (Client, Arc<Recorder>, tokio::task::JoinHandle<()>) {
    let services = Arc::new(services);
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let server_services = services.clone();
    let task = tokio::spawn(async move {
        let _ = handle_connection(theirs, &*server_services, &options).await;
    });
    let (read, writer) = tokio::io::split(ours);
    (Client { reader: BufReader::new(read), writer }, services, task)
}

/// A connection from a peer that is not on the allowlist.
fn start_unadmitted() -> Client {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let _ = serve_connection(theirs, &Recorder::default(), &ServerOptions::default(), false).await;
    });
    let (read, writer) = tokio::io::split(ours);
    Client { reader: BufReader::new(read), writer }
}

fn auth(token: &str) -> Event {
    let mut raw = RawEvent::new("auth");
    raw.data.insert("token".into(), token.into());
    Event::Other(raw)
}

#[tokio::test]
async fn peers_off_the_allowlist_need_a_token_first() {
    // Anything before `auth` is refused, and the connection closed.
    let mut client = start_unadmitted();
    client.send(Event::Describe).await;
    let Event::Error(e) = client.recv().await else { panic!("expected an error") };
    assert_eq!(e.code.as_deref(), Some("unauthorized"));
    assert!(read_event(&mut client.reader, &Limits::default()).await.unwrap().is_none(), "closed");

    // A wrong token is refused.
    let mut client = start_unadmitted();
    client.send(auth("hth_bad")).await;
    let Event::Error(e) = client.recv().await else { panic!("expected an error") };
    assert_eq!(e.code.as_deref(), Some("unauthorized"));

    // A good one admits the peer.
    let mut client = start_unadmitted();
    client.send(auth("hth_good")).await;
    client.send(Event::Describe).await;
    assert!(matches!(client.recv().await, Event::Info(_)));
}

#[tokio::test]
async fn a_revoked_token_ends_the_connection_it_admitted() {
    let services = Arc::new(Recorder::default());
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let options =
        ServerOptions { recheck_token_every: std::time::Duration::ZERO, ..ServerOptions::default() };
    let server = services.clone();
    tokio::spawn(async move {
        let _ = serve_connection(theirs, &*server, &options, false).await;
    });
    let (read, writer) = tokio::io::split(ours);
    let mut client = Client { reader: BufReader::new(read), writer };
    client.send(auth("hth_good")).await;
    client.send(Event::Describe).await;
    assert!(matches!(client.recv().await, Event::Info(_)));
    services.revoked.store(true, std::sync::atomic::Ordering::Relaxed);
    client.send(Event::Describe).await;
    let Event::Error(e) = client.recv().await else { panic!("expected an error") };
    assert_eq!(e.code.as_deref(), Some("unauthorized"));
    assert!(read_event(&mut client.reader, &Limits::default()).await.unwrap().is_none(), "closed");
}

fn s16le(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[tokio::test]
async fn describe_ping_and_unknown_events() {
    let (mut client, _, _) = start(Recorder::default(), ServerOptions::default());
    client.send(Event::Describe).await;
    let Event::Info(info) = client.recv().await else { panic!("expected info") };
    assert_eq!(info.asr[0].artifact.name, "asr");
    client.send(Event::Other(RawEvent::new("detect"))).await;
    client.send(Event::Ping(Ping { text: Some("hi".into()) })).await;
    assert_eq!(client.recv().await, Event::Pong(Ping { text: Some("hi".into()) }));
    // A known type with bad fields gets an error event; the connection goes on.
    client.writer.write_all(b"{\"type\": \"synthesize\", \"data\": {}}\n").await.unwrap();
    let Event::Error(e) = client.recv().await else { panic!() };
    assert_eq!(e.code.as_deref(), Some("invalid_event"));
    client.send(Event::Describe).await;
    assert!(matches!(client.recv().await, Event::Info(_)));
}

#[tokio::test]
async fn stereo_44k1_speech_is_transcribed_as_16k_mono() {
    let (mut client, services, _) = start(Recorder::default(), ServerOptions::default());
    let format = AudioFormat { rate: 44_100, width: 2, channels: 2 };
    client.send(Event::Transcribe(Transcribe { language: Some("en".into()), ..Default::default() })).await;
    client.send(Event::AudioStart(AudioStart { format, timestamp: Some(0) })).await;
    // One second of a 16 kHz-representable tone, in chunks of odd sizes.
    let tone: Vec<i16> = (0..44_100)
        .flat_map(|i| {
            let v = ((i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 44_100.0).sin() * 16_000.0) as i16;
            [v, v]
        })
        .collect();
    for chunk in tone.chunks(1_234) {
        client.send(Event::AudioChunk(AudioChunk { format, timestamp: None, audio: s16le(chunk) })).await;
    }
    client.send(Event::AudioStop(AudioStop::default())).await;
    let Event::Transcript(t) = client.recv().await else { panic!("expected a transcript") };
    assert_eq!((t.text.as_str(), t.language.as_deref()), ("16000 samples", Some("en")));
    let heard = services.heard.lock().unwrap().clone();
    assert_eq!(heard.len(), 1);
    assert!((heard[0].2 - 16_000.0 / 32_768.0).abs() < 0.01, "peak {}", heard[0].2);

    // Without transcribe or audio-start, chunks alone still make an utterance.
    let format = AudioFormat { rate: 16_000, width: 2, channels: 1 };
    client.send(Event::AudioChunk(AudioChunk { format, timestamp: None, audio: s16le(&[100; 800]) })).await;
    client.send(Event::AudioStop(AudioStop::default())).await;
    assert_eq!(
        client.recv().await,
        Event::Transcript(Transcript { text: "800 samples".into(), ..Default::default() })
    );
}

#[tokio::test]
async fn streaming_transcripts_bracket_the_final_one() {
    let (mut client, _, _) =
        start(Recorder { streaming: true, ..Default::default() }, ServerOptions::default());
    let format = AudioFormat { rate: 16_000, width: 2, channels: 1 };
    client.send(Event::AudioStart(AudioStart { format, timestamp: None })).await;
    client.send(Event::AudioChunk(AudioChunk { format, timestamp: None, audio: s16le(&[0; 160]) })).await;
    client.send(Event::AudioStop(AudioStop::default())).await;
    assert!(matches!(client.recv().await, Event::TranscriptStart(_)));
    assert_eq!(client.recv().await, Event::TranscriptChunk(TextChunk { text: "160 samples".into() }));
    assert!(matches!(client.recv().await, Event::Transcript(_)));
    assert_eq!(client.recv().await, Event::TranscriptStop);
}

#[tokio::test]
async fn bad_audio_gets_error_events() {
    let options = ServerOptions { max_utterance_seconds: 0.5, ..Default::default() };
    let (mut client, services, _) = start(Recorder::default(), options);
    let code = |e: Event| match e {
        Event::Error(e) => e.code.unwrap(),
        other => panic!("expected an error, got {other:?}"),
    };
    let bad = AudioFormat { rate: 16_000, width: 4, channels: 1 };
    client.send(Event::AudioStart(AudioStart { format: bad, timestamp: None })).await;
    assert_eq!(code(client.recv().await), "unsupported_audio");
    client.send(Event::AudioStop(AudioStop::default())).await;
    assert_eq!(code(client.recv().await), "invalid_event");
    let surround = AudioFormat { rate: 48_000, width: 2, channels: 6 };
    client.send(Event::AudioStart(AudioStart { format: surround, timestamp: None })).await;
    assert_eq!(code(client.recv().await), "unsupported_audio");

    let format = AudioFormat { rate: 16_000, width: 2, channels: 1 };
    client.send(Event::AudioStart(AudioStart { format, timestamp: None })).await;
    for _ in 0..3 {
        client
            .send(Event::AudioChunk(AudioChunk { format, timestamp: None, audio: s16le(&[1; 4_000]) }))
            .await;
    }
    client.send(Event::AudioStop(AudioStop::default())).await;
    assert_eq!(code(client.recv().await), "audio_too_long");
    assert!(services.heard.lock().unwrap().is_empty());

    client.send(Event::AudioStart(AudioStart { format, timestamp: None })).await;
    let other = AudioFormat { rate: 8_000, ..format };
    client
        .send(Event::AudioChunk(AudioChunk { format: other, timestamp: None, audio: s16le(&[1; 10]) }))
        .await;
    assert_eq!(code(client.recv().await), "unsupported_audio");
}

#[tokio::test]
async fn synthesis_streams_audio_and_handling_answers() {
    let options = ServerOptions { samples_per_chunk: 1_000, ..Default::default() };
    let (mut client, _, _) = start(Recorder::default(), options);
    client.send(Event::Synthesize(Synthesize { text: "Hello.".into(), voice: None })).await;
    let format = AudioFormat { rate: 22_050, width: 2, channels: 1 };
    assert_eq!(client.recv().await, Event::AudioStart(AudioStart { format, timestamp: Some(0) }));
    let mut audio = Vec::new();
    for expected_ms in [0, 45, 90] {
        let Event::AudioChunk(chunk) = client.recv().await else { panic!("expected a chunk") };
        assert_eq!((chunk.format, chunk.timestamp), (format, Some(expected_ms)));
        audio.extend(chunk.audio);
    }
    assert_eq!(audio, s16le(&(0..2_500).map(|i| i as i16).collect::<Vec<_>>()));
    assert_eq!(client.recv().await, Event::AudioStop(AudioStop { timestamp: Some(113) }));

    client.send(Event::Synthesize(Synthesize { text: String::new(), voice: None })).await;
    assert_eq!(
        client.recv().await,
        Event::Error(ErrorEvent { text: "nothing to say".into(), code: Some("invalid_request".into()) })
    );

    client.send(Event::Transcript(Transcript { text: "lights on".into(), ..Default::default() })).await;
    assert_eq!(
        client.recv().await,
        Event::Handled(Handled { text: Some("you said: lights on".into()), context: None })
    );
    client.send(Event::Transcript(Transcript { text: "gibberish".into(), ..Default::default() })).await;
    assert_eq!(client.recv().await, Event::NotHandled(Handled::default()));
}

#[tokio::test]
async fn a_broken_stream_ends_the_connection_with_an_error_event() {
    let (mut client, _, task) = start(Recorder::default(), ServerOptions::default());
    client.writer.write_all(b"this is not wyoming\n").await.unwrap();
    let Event::Error(e) = client.recv().await else { panic!() };
    assert!(e.text.contains("invalid event header"), "{}", e.text);
    task.await.unwrap();
}

#[tokio::test]
async fn tcp_server_answers_and_refuses_beyond_its_connection_limit() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServerOptions { max_connections: 1, ..Default::default() };
    let server = tokio::spawn(serve(listener, Arc::new(Recorder::default()), options, async {
        let _ = stopped.await;
    }));
    let first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = first.into_split();
    let mut read = BufReader::new(read);
    write_event(&mut write, &Event::Describe.to_raw()).await.unwrap();
    let info = read_event(&mut read, &Limits::default()).await.unwrap().unwrap();
    assert_eq!(info.kind, "info");

    let second = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut second = BufReader::new(second);
    let refused =
        Event::from_raw(read_event(&mut second, &Limits::default()).await.unwrap().unwrap()).unwrap();
    assert!(
        matches!(refused, Event::Error(ErrorEvent { code: Some(ref c), .. }) if c == "overloaded"),
        "{refused:?}"
    );

    // Shutting down closes the open connection too.
    stop.send(()).unwrap();
    server.await.unwrap();
    assert!(read_event(&mut read, &Limits::default()).await.unwrap().is_none());
}

/// Reads the next event of a raw connection, or `None` when it was closed.
async fn next_event<R: tokio::io::AsyncRead + Unpin>(read: &mut BufReader<R>) -> Option<Event> {
    let raw = read_event(read, &Limits::default()).await.unwrap()?;
    Some(Event::from_raw(raw).unwrap())
}

fn error_code(event: Option<Event>) -> String {
    match event {
        Some(Event::Error(ErrorEvent { code: Some(code), .. })) => code,
        other => panic!("expected an error event, got {other:?}"),
    }
}

/// Issue 25: a peer off the allowlist that has not authenticated used to hold one of the
/// connection slots (for up to the idle timeout), so any host could hold them all.
#[tokio::test]
async fn unauthenticated_peers_hold_no_connection_slot() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ServerOptions {
        max_connections: 1,
        max_unauthenticated: 2,
        auth_timeout: std::time::Duration::from_secs(2),
        allow: Some(vec![]), // this peer is not on it
        ..Default::default()
    };
    let server =
        tokio::spawn(serve(listener, Arc::new(Recorder::default()), options, std::future::pending()));

    // A host that connects and says nothing...
    let silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut silent = BufReader::new(silent);
    // ...does not keep a satellite with a token from the one slot.
    let good = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = good.into_split();
    let mut good = BufReader::new(read);
    write_event(&mut write, &auth("hth_good").to_raw()).await.unwrap();
    write_event(&mut write, &Event::Describe.to_raw()).await.unwrap();
    let info = next_event(&mut good).await;
    assert!(matches!(info, Some(Event::Info(_))), "{info:?}");

    // Peers waiting to authenticate are bounded on their own.
    let _second = tokio::net::TcpStream::connect(addr).await.unwrap();
    let third = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(error_code(next_event(&mut BufReader::new(third)).await), "overloaded");

    // And the silent one is sent away after the deadline, not the idle timeout.
    let started = std::time::Instant::now();
    assert_eq!(error_code(next_event(&mut silent).await), "unauthorized");
    assert!(next_event(&mut silent).await.is_none(), "closed");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // The satellite is still served.
    write_event(&mut write, &Event::Describe.to_raw()).await.unwrap();
    assert!(matches!(next_event(&mut good).await, Some(Event::Info(_))));
    server.abort();
}

#[tokio::test]
async fn nothing_but_a_small_auth_event_is_read_before_authentication() {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let _ = serve_connection(theirs, &Recorder::default(), &ServerOptions::default(), false).await;
    });
    let (read, mut writer) = tokio::io::split(ours);
    let mut reader = BufReader::new(read);
    let chunk = AudioChunk {
        format: AudioFormat { rate: 16_000, width: 2, channels: 1 },
        timestamp: None,
        audio: vec![0; 64 * 1024],
    };
    let _ = write_event(&mut writer, &Event::AudioChunk(chunk).to_raw()).await;
    assert_eq!(error_code(next_event(&mut reader).await), "invalid_event");
}
