"""Talks to a Wyoming server with the official `wyoming` package (PyPI).

Usage: wyoming_client.py HOST PORT. Runs describe -> info, transcribe + audio
(one second of 44.1 kHz stereo) -> transcript, synthesize -> audio, and
transcript -> handled; prints one JSON line summarising what came back.
"""
import asyncio
import json
import math
import struct
import sys

from wyoming.asr import Transcribe, Transcript, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice


async def read(client):
    event = await asyncio.wait_for(client.read_event(), timeout=30)
    if event is None:
        raise RuntimeError("the server closed the connection")
    if Error.is_type(event.type):
        raise RuntimeError(f"server error: {Error.from_event(event)}")
    return event


async def main(host, port):
    report = {}
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        info = Info.from_event(await read(client))
        report["asr"] = [p.name for p in info.asr]
        report["asr_models"] = [m.name for p in info.asr for m in p.models]
        report["tts_voices"] = [v.name for p in info.tts for v in p.voices]
        report["handle"] = [p.name for p in info.handle]

        rate, channels = 44100, 2
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=rate, width=2, channels=channels).event())
        frames = [int(12000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate)]
        pcm = b"".join(struct.pack("<hh", v, v) for v in frames)
        step = 1024 * 2 * channels
        for at in range(0, len(pcm), step):
            chunk = AudioChunk(rate=rate, width=2, channels=channels, audio=pcm[at:at + step])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        event = await read(client)
        while not Transcript.is_type(event.type):  # transcript-start / -chunk come first when streaming
            event = await read(client)
        report["transcript"] = Transcript.from_event(event).text
        if any(p.supports_transcript_streaming for p in info.asr):
            event = await read(client)
            report["transcript_stop"] = TranscriptStop.is_type(event.type)

        await client.write_event(Synthesize(text="Hello from Hearth.", voice=SynthesizeVoice(name="test-voice")).event())
        start = AudioStart.from_event(await read(client))
        audio, chunks = b"", 0
        while True:
            event = await read(client)
            if AudioStop.is_type(event.type):
                break
            chunk = AudioChunk.from_event(event)
            audio += chunk.audio
            chunks += 1
        report["tts"] = {"rate": start.rate, "width": start.width, "channels": start.channels,
                         "chunks": chunks, "bytes": len(audio)}

        await client.write_event(Transcript(text="turn on the lights").event())
        event = await read(client)
        if Handled.is_type(event.type):
            report["handled"] = Handled.from_event(event).text
        elif NotHandled.is_type(event.type):
            report["handled"] = None
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
