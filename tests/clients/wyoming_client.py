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

from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

from wyoming_common import handle, read, synthesize, transcribe


async def main(host, port):
    report = {}
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        info = Info.from_event(await read(client))
        report["asr"] = [p.name for p in info.asr]
        report["asr_models"] = [m.name for p in info.asr for m in p.models]
        report["tts_voices"] = [v.name for p in info.tts for v in p.voices]
        report["handle"] = [p.name for p in info.handle]

        rate = 44100
        frames = [int(12000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate)]
        pcm = b"".join(struct.pack("<hh", v, v) for v in frames)
        streamed = {}
        report["transcript"] = await transcribe(client, pcm, rate, 2, 2, streamed, chunk_frames=1024)
        if any(p.supports_transcript_streaming for p in info.asr):
            report["transcript_stop"] = streamed.get("streaming", {}).get("stop")

        voice = SynthesizeVoice(name="test-voice")
        start, audio, chunks = await synthesize(client, Synthesize(text="Hello from Hearth.", voice=voice))
        report["tts"] = {"rate": start.rate, "width": start.width, "channels": start.channels,
                         "chunks": chunks, "bytes": len(audio)}
        report["handled"] = await handle(client, "turn on the lights")
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
