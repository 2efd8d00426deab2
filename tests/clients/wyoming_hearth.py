"""Drives a real `hearth serve` Wyoming server with the official `wyoming` package (PyPI).

Usage: wyoming_hearth.py HOST PORT WAV [--token TOKEN] [--expect-refusal]

Sends `auth` first when a token is given; then describe -> info, the WAV file as
transcribe + audio -> transcript, synthesize -> audio, that audio transcribed again
(text -> speech -> text), and transcript -> handled (the language model's answer).
Prints one JSON line summarising what came back. With --expect-refusal it only checks
that an unauthenticated describe is refused.
"""
import argparse
import asyncio
import json
import wave

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize

TIMEOUT = 120


async def read(client):
    event = await asyncio.wait_for(client.read_event(), timeout=TIMEOUT)
    if event is None:
        raise RuntimeError("the server closed the connection")
    if Error.is_type(event.type):
        raise RuntimeError(f"server error: {Error.from_event(event)}")
    return event


async def transcribe(client, pcm, rate, width, channels, report):
    await client.write_event(Transcribe(language="en").event())
    await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
    step = 2048 * width * channels
    for at in range(0, len(pcm), step):
        await client.write_event(AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[at:at + step]).event())
    await client.write_event(AudioStop().event())
    # A streaming server sends transcript-start, -chunk(s), the transcript, then -stop.
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


async def main(args):
    report = {}
    async with AsyncTcpClient(args.host, args.port) as client:
        if args.expect_refusal:
            await client.write_event(Describe().event())
            event = await asyncio.wait_for(client.read_event(), timeout=TIMEOUT)
            report["refused"] = event is not None and Error.is_type(event.type) and Error.from_event(event).code
            report["closed"] = await asyncio.wait_for(client.read_event(), timeout=TIMEOUT) is None
            print(json.dumps(report))
            return
        if args.token:
            await client.write_event(Event(type="auth", data={"token": args.token}))
        await client.write_event(Describe().event())
        info = Info.from_event(await read(client))
        report["asr"] = [p.name for p in info.asr]
        report["tts_voices"] = [v.name for p in info.tts for v in p.voices]
        report["handle"] = [p.name for p in info.handle]

        with wave.open(args.wav, "rb") as w:
            pcm = w.readframes(w.getnframes())
            report["transcript"] = await transcribe(client, pcm, w.getframerate(), w.getsampwidth(), w.getnchannels(),
                                                    report)

        await client.write_event(Synthesize(text="Please turn on the kitchen light.").event())
        start = AudioStart.from_event(await read(client))
        audio = b""
        while True:
            event = await read(client)
            if AudioStop.is_type(event.type):
                break
            audio += AudioChunk.from_event(event).audio
        report["tts"] = {"rate": start.rate, "width": start.width, "channels": start.channels, "bytes": len(audio)}
        report["round_trip"] = await transcribe(client, audio, start.rate, start.width, start.channels, {})

        await client.write_event(Transcript(text=report["transcript"]).event())
        event = await read(client)
        if Handled.is_type(event.type):
            report["handled"] = Handled.from_event(event).text
        elif NotHandled.is_type(event.type):
            report["handled"] = None
    print(json.dumps(report))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("wav", nargs="?", default="")
    parser.add_argument("--token")
    parser.add_argument("--expect-refusal", action="store_true")
    asyncio.run(main(parser.parse_args()))
