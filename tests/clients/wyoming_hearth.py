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

from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize

from wyoming_common import TIMEOUT, handle, read, synthesize, transcribe


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

        start, audio, _ = await synthesize(client, Synthesize(text="Please turn on the kitchen light."))
        report["tts"] = {"rate": start.rate, "width": start.width, "channels": start.channels, "bytes": len(audio)}
        report["round_trip"] = await transcribe(client, audio, start.rate, start.width, start.channels, {})
        report["handled"] = await handle(client, report["transcript"])
    print(json.dumps(report))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("wav", nargs="?", default="")
    parser.add_argument("--token")
    parser.add_argument("--expect-refusal", action="store_true")
    asyncio.run(main(parser.parse_args()))
