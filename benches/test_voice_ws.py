"""Tests of benches/voice_ws.py against a tiny fake voice server (no Hearth needed).

    benches/work/venv/bin/python -m unittest discover -s benches -p 'test_voice*.py'

The fake server follows the protocol: it waits for `start`, counts speech frames, reports
speech_end after 10 silent frames (200 ms), then after a fixed delay sends a transcript, a reply
delta, audio_start, binary audio, audio_end and `done` with metrics."""

from __future__ import annotations

import json
import struct
import tempfile
import threading
import time
import unittest
import wave
from pathlib import Path

import voice_ws

try:
    from websockets.sync.server import serve
except ImportError:  # pragma: no cover
    serve = None

REPLY_DELAY_S = 0.15


class FakeVoiceServer:
    def __init__(self, mode: str = "normal"):
        self.mode = mode               # normal | no_vad (needs `stop`) | error
        self.seen: list = []           # what each connection received: (start msg, frames, got_stop, token)
        self.server = serve(self.handler, "127.0.0.1", 0)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.thread.join(timeout=5)

    def handler(self, ws):
        token = ws.request.path.split("token=", 1)[-1] if "token=" in ws.request.path else None
        self.auth = ws.request.headers.get("Authorization")
        start = json.loads(ws.recv())
        n_frames, silent, speaking, got_stop = 0, 0, False, False
        if self.mode == "error":
            ws.send(json.dumps({"type": "error", "code": "voice_unavailable", "message": "no speech model"}))
            self.seen.append((start, 0, False, token))
            return
        while True:
            msg = ws.recv()
            if isinstance(msg, str):
                if json.loads(msg).get("type") == "stop":
                    got_stop = True
                    break
                continue
            n_frames += 1
            quiet = not any(msg)
            if not quiet and not speaking:
                speaking = True
                ws.send(json.dumps({"type": "vad", "event": "speech_start"}))
            silent = silent + 1 if quiet else 0
            if speaking and silent >= 10 and self.mode == "normal":
                break
        ws.send(json.dumps({"type": "vad", "event": "speech_end"}))
        time.sleep(REPLY_DELAY_S)
        ws.send(json.dumps({"type": "transcript", "text": "turn on the lights"}))
        ws.send(json.dumps({"type": "reply_delta", "text": "Okay, "}))
        ws.send(json.dumps({"type": "reply_delta", "text": "lights on."}))
        ws.send(json.dumps({"type": "audio_start", "rate": 22050, "channels": 1, "format": "s16le"}))
        ws.send(b"\x01\x00" * 2205)
        ws.send(b"\x01\x00" * 2205)
        ws.send(json.dumps({"type": "audio_end"}))
        ws.send(json.dumps({"type": "done", "metrics": {"speech_end_to_transcript_ms": 100,
                                                        "transcript_to_first_token_ms": 20,
                                                        "first_token_to_first_audio_ms": 30,
                                                        "speech_end_to_first_audio_ms": 150}}))
        self.seen.append((start, n_frames, got_stop, token))
        # drain whatever the client still sends until it closes
        try:
            while True:
                ws.recv()
        except Exception:
            pass


def speech_pcm(seconds: float) -> bytes:
    n = int(16000 * seconds)
    return b"".join(struct.pack("<h", 1000 if (i // 40) % 2 else -1000) for i in range(n))


@unittest.skipIf(serve is None, "websockets is not installed (benches/work/venv has it)")
class VoiceWsTest(unittest.TestCase):
    def setUp(self):
        self.fake = None

    def tearDown(self):
        if self.fake:
            self.fake.close()

    def url(self, mode="normal"):
        self.fake = FakeVoiceServer(mode)
        return f"ws://127.0.0.1:{self.fake.port}/api/ws"

    def test_measures_end_of_speech_to_first_audio(self):
        url = self.url()
        pcm = speech_pcm(0.4)  # 20 frames
        # Frames sent 4x faster than real time; silence 0.3 s = 15 frames (server needs 10).
        turn = voice_ws.run_turn(url, "tok en/1", pcm, silence_s=0.3, frame_s=0.005, timeout_s=10)
        self.assertIsNone(turn.error)
        self.assertFalse(turn.stop_sent)
        start, n_frames, got_stop, token = self.fake.seen[0]
        self.assertEqual(start, {"type": "start", "conversation_id": None, "voice": "default"})
        self.assertEqual(token, "tok%20en%2F1")
        self.assertEqual(self.fake.auth, "Bearer tok en/1")
        self.assertFalse(got_stop)
        self.assertGreaterEqual(n_frames, 30)
        # The server answers 10 silent frames (10 x 5 ms) + REPLY_DELAY_S after the end of speech.
        ms = turn.end_of_speech_to_first_audio_ms
        self.assertIsNotNone(ms)
        self.assertGreaterEqual(ms, REPLY_DELAY_S * 1000)
        self.assertLess(ms, REPLY_DELAY_S * 1000 + 1000)
        self.assertEqual(turn.transcript, "turn on the lights")
        self.assertEqual(turn.reply, "Okay, lights on.")
        self.assertEqual(turn.audio_bytes, 2 * 4410)
        self.assertAlmostEqual(turn.audio_seconds(), 0.2, places=3)
        self.assertEqual(turn.metrics["speech_end_to_first_audio_ms"], 150)
        kinds = [e["type"] for e in turn.events]
        self.assertEqual(kinds, ["vad", "vad", "transcript", "reply_delta", "audio_start",
                                 "(first binary audio frame)", "audio_end", "done"])
        self.assertLess(turn.events[0]["t_ms"], 0)   # speech_start came before the end of speech
        self.assertNotIn("text", turn.events[3])     # reply text is not repeated in the events

    def test_measures_from_the_last_voiced_frame_too(self):
        url = self.url()
        pcm = speech_pcm(0.2) + b"\0" * (2 * 1600)  # 10 voiced frames, then 5 quiet ones
        turn = voice_ws.run_turn(url, "t", pcm, silence_s=0.3, frame_s=0.005, timeout_s=10)
        self.assertIsNone(turn.error)
        self.assertGreaterEqual(turn.trailing_quiet_ms, 4 * 5)
        self.assertLess(turn.trailing_quiet_ms, 200)
        self.assertAlmostEqual(turn.last_voice_to_first_audio_ms - turn.end_of_speech_to_first_audio_ms,
                               turn.trailing_quiet_ms, delta=1.0)
        self.assertEqual(voice_ws.last_voiced(voice_ws.frames(pcm)), 9)
        self.assertIsNone(voice_ws.last_voiced([b"\0" * 640]))

    def test_sends_stop_when_the_server_never_reports_speech_end(self):
        url = self.url("no_vad")
        turn = voice_ws.run_turn(url, None, speech_pcm(0.1), silence_s=0.1, frame_s=0.002,
                                 stop_after_s=0.2, timeout_s=10)
        self.assertIsNone(turn.error)
        self.assertTrue(turn.stop_sent)
        self.assertTrue(self.fake.seen[0][2])
        self.assertIsNone(self.fake.seen[0][3])
        self.assertIsNotNone(turn.end_of_speech_to_first_audio_ms)

    def test_reports_a_refused_connection(self):
        turn = voice_ws.run_turn("ws://127.0.0.1:9/api/ws", "t", speech_pcm(0.1), frame_s=0.002, open_timeout=2)
        self.assertIn("cannot open", turn.error)
        self.assertIsNone(turn.end_of_speech_to_first_audio_ms)

    def test_reports_server_errors(self):
        url = self.url("error")
        turn = voice_ws.run_turn(url, "t", speech_pcm(0.1), silence_s=0.1, frame_s=0.002, timeout_s=5)
        self.assertEqual(turn.error, "voice_unavailable: no speech model")
        self.assertIsNone(turn.end_of_speech_to_first_audio_ms)

    def test_run_turns_takes_the_median(self):
        url = self.url()
        res = voice_ws.run_turns(url, "t", speech_pcm(0.1), 3, pause_s=0.0, silence_s=0.3, frame_s=0.002,
                                 timeout_s=10)
        self.assertEqual(len(res["samples_ms"]), 3)
        self.assertEqual(res["errors"], [])
        self.assertIsNotNone(res["median_ms"])
        self.assertEqual(res["server_median_ms"]["speech_end_to_first_audio_ms"], 150)


class PcmTest(unittest.TestCase):
    def test_reads_and_resamples_wav(self):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "a.wav"
            with wave.open(str(p), "wb") as w:
                w.setnchannels(2)
                w.setsampwidth(2)
                w.setframerate(22050)
                w.writeframes(struct.pack("<hh", 100, 300) * 22050)  # 1 s stereo
            pcm = voice_ws.read_pcm16k(p)
            self.assertEqual(len(pcm), 2 * 16000)
            self.assertEqual(struct.unpack("<h", pcm[:2])[0], 200)
            fr = voice_ws.frames(pcm + b"\x01\x00")
            self.assertEqual(len(fr), 51)
            self.assertTrue(all(len(f) == 640 for f in fr))


if __name__ == "__main__":
    unittest.main()
