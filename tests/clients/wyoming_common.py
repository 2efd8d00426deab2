"""What the Wyoming test clients share: reading events, a transcription round, receiving
synthesized audio and asking the handler. Built on the official `wyoming` package (PyPI)."""
import asyncio

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.handle import Handled, NotHandled
from wyoming.tts import Synthesize

TIMEOUT = 120


async def read(client):
    """The next event; a closed connection or an `error` event raises."""
    event = await asyncio.wait_for(client.read_event(), timeout=TIMEOUT)
    if event is None:
        raise RuntimeError("the server closed the connection")
    if Error.is_type(event.type):
        raise RuntimeError(f"server error: {Error.from_event(event)}")
    return event


async def transcribe(client, pcm, rate, width, channels, report, chunk_frames=2048):
    """Sends transcribe + the audio; returns the transcript. A streaming server sends
    transcript-start, -chunk(s), the transcript, then -stop: that goes in report["streaming"]."""
    await client.write_event(Transcribe(language="en").event())
    await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
    step = chunk_frames * width * channels
    for at in range(0, len(pcm), step):
        await client.write_event(AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[at:at + step]).event())
    await client.write_event(AudioStop().event())
    seen, chunks = [], ""
    event = await read(client)
    while not Transcript.is_type(event.type):
        seen.append(event.type)
        if TranscriptChunk.is_type(event.type):
            chunks += TranscriptChunk.from_event(event).text
        event = await read(client)
    text = Transcript.from_event(event).text
    if seen:
        stop = await read(client)
        report["streaming"] = {"start": TranscriptStart.is_type(seen[0]), "chunks": chunks,
                               "stop": TranscriptStop.is_type(stop.type)}
    return text


async def synthesize(client, synthesize: Synthesize):
    """Sends synthesize; returns (audio-start, the audio, how many chunks carried it)."""
    await client.write_event(synthesize.event())
    start = AudioStart.from_event(await read(client))
    audio, chunks = b"", 0
    while True:
        event = await read(client)
        if AudioStop.is_type(event.type):
            return start, audio, chunks
        audio += AudioChunk.from_event(event).audio
        chunks += 1


async def handle(client, text):
    """Sends a transcript for the handler; returns its answer (None when not handled)."""
    await client.write_event(Transcript(text=text).event())
    event = await read(client)
    if Handled.is_type(event.type):
        return Handled.from_event(event).text
    if NotHandled.is_type(event.type):
        return None
    raise RuntimeError(f"expected handled or not-handled, got {event.type}")
