#!/usr/bin/env python3
"""Voice pipeline client for benches/voice.py part 3: end of speech -> first audio byte.

Speaks Hearth's voice WebSocket protocol (`ws://HOST/api/ws?token=...`):
  client: {"type":"start","conversation_id":null,"voice":"default"}, then binary frames of
          16 kHz mono s16le PCM, optionally {"type":"stop"};
  server: {"type":"vad","event":"speech_start"|"speech_end"}, {"type":"transcript","text"},
          {"type":"reply_delta","text"}, {"type":"audio_start","rate","channels","format"},
          binary audio frames, {"type":"audio_end"}, {"type":"done","metrics":{...}},
          {"type":"error","code","message"}.

The token is sent as `?token=` and as `Authorization: Bearer`. One turn: the speech is sent as 20 ms frames in real time, then ~0.8 s of silence frames; the
figure is the time from sending the last speech frame (end of speech) to receiving the first
binary audio frame. Needs the `websockets` package (PyPI; benches/voice.sh installs it into
benches/work/venv).

  voice_ws.py --url ws://127.0.0.1:8080/api/ws --token TOKEN --wav speech.wav [--turns 5]
"""

from __future__ import annotations

import argparse
import array
import json
import statistics
import sys
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

RATE = 16000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000  # 320 samples = 640 bytes
VOICED_RMS = 300  # a frame louder than this (about -40 dBFS) counts as voice


def last_voiced(frs: list[bytes]) -> int | None:
    """Index of the last frame whose RMS is above VOICED_RMS (None: all quiet)."""
    for i in range(len(frs) - 1, -1, -1):
        a = array.array("h")
        a.frombytes(frs[i])
        if sys.byteorder == "big":
            a.byteswap()
        if a and (sum(x * x for x in a) / len(a)) ** 0.5 > VOICED_RMS:
            return i
    return None


def read_pcm16k(path: Path) -> bytes:
    """A WAV file as 16 kHz mono s16le bytes (mixes channels down, resamples linearly)."""
    with wave.open(str(path), "rb") as w:
        ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit samples; 16-bit PCM expected")
    samples = array.array("h")
    samples.frombytes(raw)
    if sys.byteorder == "big":
        samples.byteswap()
    if ch > 1:
        samples = array.array("h", (sum(samples[i:i + ch]) // ch for i in range(0, len(samples), ch)))
    if rate != RATE:
        out_n = int(len(samples) * RATE / rate)
        step = rate / RATE
        res = array.array("h")
        for i in range(out_n):
            x = i * step
            j = int(x)
            frac = x - j
            a = samples[j]
            b = samples[j + 1] if j + 1 < len(samples) else a
            res.append(int(round(a + (b - a) * frac)))
        samples = res
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def frames(pcm: bytes) -> list[bytes]:
    """Splits PCM into 20 ms frames; the last one is padded with silence."""
    size = FRAME_SAMPLES * 2
    out = [pcm[i:i + size] for i in range(0, len(pcm), size)]
    if out and len(out[-1]) < size:
        out[-1] = out[-1] + b"\0" * (size - len(out[-1]))
    return out


@dataclass
class Turn:
    """What one utterance produced. Times are seconds relative to the end of speech
    (the moment the last speech frame was sent); negative means before it."""
    end_of_speech_to_first_audio_ms: float | None = None
    # From sending the last *voiced* frame (a clip may end in silence, which the server's VAD
    # counts towards its end-of-speech silence) to the first audio frame.
    last_voice_to_first_audio_ms: float | None = None
    trailing_quiet_ms: float | None = None               # audio sent after the last voiced frame
    events: list[dict] = field(default_factory=list)   # each JSON message with "t_ms"
    metrics: dict | None = None                         # the server's `done` metrics
    transcript: str = ""
    reply: str = ""
    audio_bytes: int = 0
    audio_format: dict | None = None
    stop_sent: bool = False
    error: str | None = None

    def summary(self) -> dict:
        return {"first_audio_ms": _r(self.end_of_speech_to_first_audio_ms),
                "last_voice_to_first_audio_ms": _r(self.last_voice_to_first_audio_ms),
                "trailing_quiet_ms": _r(self.trailing_quiet_ms), "metrics": self.metrics,
                "transcript": self.transcript, "reply": self.reply, "audio_bytes": self.audio_bytes,
                "audio_seconds": _r(self.audio_seconds(), 3), "stop_sent": self.stop_sent, "error": self.error,
                "events": [{k: (_r(v) if k == "t_ms" else v) for k, v in e.items()} for e in self.events]}

    def audio_seconds(self) -> float | None:
        f = self.audio_format or {}
        rate, chans = f.get("rate"), f.get("channels") or 1
        return self.audio_bytes / (2 * chans * rate) if rate else None


def _r(v, nd=1):
    return round(v, nd) if isinstance(v, float) else v


def run_turn(url: str, token: str | None, pcm: bytes, *, silence_s: float = 0.8, frame_s: float = FRAME_MS / 1000,
             stop_after_s: float = 3.0, timeout_s: float = 60.0, voice: str = "default",
             conversation_id: str | None = None, open_timeout: float = 10.0) -> Turn:
    """One utterance over a fresh connection. frame_s is the pacing of 20 ms frames
    (0.02 = real time; tests use less). If the server has not reported the end of speech
    `stop_after_s` after the silence was sent, sends {"type":"stop"} (noted in the result)."""
    from websockets.sync.client import connect  # third-party: imported only when used

    full = url + (("&" if "?" in url else "?") + "token=" + quote(token, safe="") if token else "")
    turn = Turn()
    speech = frames(pcm)
    voiced_idx = last_voiced(speech)
    voiced_at: list[float] = []
    silence = [b"\0" * (FRAME_SAMPLES * 2)] * max(0, round(silence_s / (FRAME_MS / 1000)))
    speech_end_seen = threading.Event()
    finished = threading.Event()
    lock = threading.Lock()

    # The token goes both ways: `?token=` (what a browser can send) and the Authorization header.
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        ws = connect(full, open_timeout=open_timeout, max_size=None, compression=None, additional_headers=headers)
    except Exception as e:  # refused, HTTP status instead of an upgrade, timeout
        turn.error = f"cannot open {url}: {e}"
        return turn
    with ws:
        ws.send(json.dumps({"type": "start", "conversation_id": conversation_id, "voice": voice}))

        first_audio_at: list[float] = []

        def receiver():
            try:
                while not finished.is_set():
                    try:
                        msg = ws.recv(timeout=0.5)
                    except TimeoutError:
                        continue
                    now = time.monotonic()
                    with lock:
                        if isinstance(msg, (bytes, bytearray)):
                            if turn.audio_bytes == 0:
                                first_audio_at.append(now)
                                turn.events.append({"type": "(first binary audio frame)", "bytes": len(msg), "_t": now})
                            turn.audio_bytes += len(msg)
                            continue
                        try:
                            ev = json.loads(msg)
                        except ValueError:
                            turn.events.append({"type": "(unparsed text)", "text": msg[:200], "_t": now})
                            continue
                        kind = ev.get("type")
                        if kind != "reply_delta" or not any(e.get("type") == "reply_delta" for e in turn.events):
                            # every message but reply_delta, of which only the first is kept as an event
                            rec = {k: v for k, v in ev.items() if k != "text"} if kind == "reply_delta" else dict(ev)
                            rec["_t"] = now
                            turn.events.append(rec)
                        if kind == "vad" and ev.get("event") == "speech_end":
                            speech_end_seen.set()
                        elif kind == "transcript":
                            turn.transcript = ev.get("text", "")
                        elif kind == "reply_delta":
                            turn.reply += ev.get("text", "")
                        elif kind == "audio_start":
                            turn.audio_format = {k: ev.get(k) for k in ("rate", "channels", "format")}
                        elif kind == "done":
                            turn.metrics = ev.get("metrics")
                            finished.set()
                        elif kind == "error":
                            turn.error = f"{ev.get('code')}: {ev.get('message')}"
                            finished.set()
            except Exception as e:  # connection closed or broken
                with lock:
                    if turn.metrics is None and turn.error is None:
                        turn.error = f"connection ended before `done`: {e!r}"
                finished.set()

        rx = threading.Thread(target=receiver, daemon=True)
        rx.start()
        t0 = time.monotonic()
        for i, fr in enumerate(speech):
            _sleep_until(t0 + i * frame_s)
            if finished.is_set() or not _send(ws, fr):
                break
            if i == voiced_idx:
                voiced_at.append(time.monotonic())
        eos = time.monotonic()
        t1 = t0 + len(speech) * frame_s
        for i, fr in enumerate(silence):
            _sleep_until(t1 + i * frame_s)
            if finished.is_set() or not _send(ws, fr):
                break
        if not finished.is_set() and not speech_end_seen.wait(stop_after_s):
            if not finished.is_set():
                turn.stop_sent = _send(ws, json.dumps({"type": "stop"}))
        if not finished.wait(timeout_s):
            turn.error = turn.error or f"no `done` within {timeout_s:.0f} s of the end of speech"
        finished.set()
        rx.join(timeout=2.0)
    with lock:
        for e in turn.events:
            e["t_ms"] = (e.pop("_t") - eos) * 1000
        if first_audio_at:
            turn.end_of_speech_to_first_audio_ms = (first_audio_at[0] - eos) * 1000
            if voiced_at:
                turn.last_voice_to_first_audio_ms = (first_audio_at[0] - voiced_at[0]) * 1000
        if voiced_at:
            turn.trailing_quiet_ms = (eos - voiced_at[0]) * 1000
    return turn


def _send(ws, msg) -> bool:
    """Sends; False once the connection is closed (the receiver records why)."""
    try:
        ws.send(msg)
        return True
    except Exception:  # websockets.exceptions.ConnectionClosed and OSError
        return False


def _sleep_until(t: float) -> None:
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


def run_turns(url: str, token: str | None, pcm: bytes, turns: int, pause_s: float = 0.5, log=None,
              before=None, warmup: int = 0, **kw) -> dict:
    """`warmup` + `turns` utterances, one connection each; returns the measured turns' samples,
    their median and every turn (warm-up turns under "warmup"). `before`, when given, is called
    before each turn (the bench waits for a quiet box there)."""
    results, warm = [], []
    for i in range(warmup + turns):
        if before:
            before()
        t = run_turn(url, token, pcm, **kw)
        (warm if i < warmup else results).append(t)
        if log:
            label = f"warm-up turn {i + 1}" if i < warmup else f"turn {i + 1 - warmup}/{turns}"
            log(f"{label}: end of speech -> first audio "
                f"{_fmt(t.end_of_speech_to_first_audio_ms)} ms; server {json.dumps(t.metrics)}"
                + (f"; ERROR {t.error}" if t.error else "") + (" (stop sent)" if t.stop_sent else ""))
        time.sleep(pause_s)
    samples = [t.end_of_speech_to_first_audio_ms for t in results]
    ok = [s for s in samples if s is not None]
    voice = [t.last_voice_to_first_audio_ms for t in results if t.last_voice_to_first_audio_ms is not None]
    server = {}
    for key in ("speech_end_to_transcript_ms", "transcript_to_first_token_ms", "first_token_to_first_audio_ms",
                "speech_end_to_first_audio_ms"):
        vals = [t.metrics.get(key) for t in results if t.metrics and isinstance(t.metrics.get(key), (int, float))]
        if vals:
            server[key] = statistics.median(vals)
    return {"samples_ms": [_r(s) for s in samples], "median_ms": _r(statistics.median(ok)) if ok else None,
            "last_voice_median_ms": _r(statistics.median(voice)) if voice else None,
            "trailing_quiet_ms": results[0].trailing_quiet_ms if results else None,
            "server_median_ms": server, "errors": [t.error for t in results if t.error],
            "turns": [t.summary() for t in results], "warmup": [t.summary() for t in warm]}


def _fmt(v):
    return "—" if v is None else f"{v:.0f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="ws://HOST:PORT/api/ws")
    ap.add_argument("--token", default=None)
    ap.add_argument("--wav", required=True, type=Path)
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--silence", type=float, default=0.8, help="seconds of silence frames after the speech")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args(argv)
    pcm = read_pcm16k(args.wav)
    res = run_turns(args.url, args.token, pcm, args.turns, silence_s=args.silence, timeout_s=args.timeout,
                    log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(res, indent=2))
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
