#!/usr/bin/env python3
"""Threads that follow the load (issue 24): single-stream generation tok/s of Hearth with its
default threads against llama-bench with every core, on a quiet box and with one busy process
beside it, side by side in one run.

  quiet   Hearth (no --threads: every core while nothing else is busy)  vs  llama-bench -t <cores>
  busy    the same with a Python busy loop running, measured after Hearth's sampler saw it

Goals: quiet Hearth / llama-bench >= 0.95; busy Hearth / quiet Hearth >= 0.8.
Hearth's thread count during each phase is read from /metrics (hearth_generation_threads).

Usage: benches/threads.py [--reps N] [--tokens N] [--quick] [--no-ref] [--results]
Run on a quiet box after benches/run.sh has built both sides (benches/work/target/release/hearth,
benches/work/llama.cpp-ref/build/bin/llama-bench). --results replaces the "Threads follow the
load" section of benches/RESULTS.md. --no-ref skips llama-bench (smoke runs only: no ratios to it).
Python 3.11 stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import harness as h

DEFAULT_MODEL = Path.home() / ".cache/hearth/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
SECTION = "## Threads follow the load (issue 24)"
TOPICS = ["a lighthouse keeper and a storm", "a robot learning to bake bread", "two rival chess clubs",
          "a lost dog crossing a mountain", "a city built on a whale", "a detective who hates rain",
          "a garden that grows clocks", "the last train before winter", "a violinist on Mars",
          "an island of talking birds", "a thief who steals colours"]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def hearth_tg(srv: h.Server, tokens: int, topic: str) -> float | None:
    body = {"model": "default", "temperature": 0, "max_tokens": tokens,
            "messages": [{"role": "system", "content": f"Session {time.time_ns()}. You are a storyteller."},
                         {"role": "user", "content": f"Write a very long, detailed story about {topic}. "
                                                     "Describe everything at length and do not stop early."}]}
    r = h.http_json(srv.ep, "POST", "/v1/chat/completions", body, timeout=600)
    return (r.get("timings") or {}).get("predicted_per_second")


def hearth_threads(srv: h.Server) -> int | None:
    conn = srv.ep.connection(10)
    try:
        conn.request("GET", "/metrics", headers=srv.ep.headers())
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    m = re.search(r"^hearth_generation_threads (\d+)", text, re.M)
    return int(m.group(1)) if m else None


def llama_bench(binary: Path, model: Path, threads: int, tokens: int, reps: int, tag: str) -> list[float]:
    cmd = [str(binary), "-m", str(model), "-o", "json", "-t", str(threads), "-p", "0",
           "-n", str(tokens), "-r", str(reps)]
    h.log(f"llama-bench -t {threads} -n {tokens} -r {reps} ({tag})")
    out = h.run_tool(cmd, timeout=1800, log_path=h.LOGS / f"threads-llama-bench-{tag}.log")
    data = json.loads(out[out.find("["):])
    return data[0]["samples_ts"]


def measure(args) -> dict:
    model = Path(args.model).expanduser().resolve()
    cores = os.cpu_count() or 1
    interval_ms = 1000
    res: dict = {"cores": cores, "model": str(model), "tokens": args.tokens, "reps": args.reps,
                 "machine": h.machine(), "load_at_start": os.getloadavg()[0], "nice": os.nice(0)}
    ref_bin = Path(args.ref_bin) / "llama-bench"
    if not args.no_ref and not ref_bin.is_file():
        raise h.BenchError(f"llama-bench missing: {ref_bin} (benches/build_ref.sh builds it; --no-ref skips it)")
    # The sampler reads the machine every second here (5 s by default): the busy phase
    # waits three intervals before measuring, whatever the interval.
    srv = h.start_hearth(Path(args.hearth_bin), model, None, 4096, "threads",
                         settings={"HEARTH_GOVERNOR_SAMPLE_INTERVAL_MS": str(interval_ms)})
    try:
        hearth_tg(srv, 8, "a warm-up")
        if not args.no_ref:
            res["ref_quiet"] = llama_bench(ref_bin, model, cores, args.tokens, args.reps, "quiet")
        time.sleep(3 * interval_ms / 1000)
        res["hearth_quiet"] = [hearth_tg(srv, args.tokens, TOPICS[i % len(TOPICS)]) for i in range(args.reps)]
        res["hearth_quiet_threads"] = hearth_threads(srv)
        with h.Busy():
            time.sleep(3 * interval_ms / 1000)
            res["hearth_busy"] = [hearth_tg(srv, args.tokens, TOPICS[(i + 5) % len(TOPICS)])
                                  for i in range(args.reps)]
            res["hearth_busy_threads"] = hearth_threads(srv)
            if not args.no_ref:
                # Every core against a busy one is slow (threads wait for each other): fewer runs.
                res["ref_busy"] = llama_bench(ref_bin, model, cores, args.tokens, min(args.reps, 2), "busy")
    finally:
        srv.stop()
    # The bound for the busy phase: with one core taken, generation has the others. Hearth
    # on a quiet box held to cores-1 threads shows what that is on this machine.
    srv = h.start_hearth(Path(args.hearth_bin), model, max(cores - 1, 1), 4096, "threads-fewer")
    try:
        hearth_tg(srv, 8, "a warm-up")
        res["hearth_fewer"] = [hearth_tg(srv, args.tokens, TOPICS[(i + 3) % len(TOPICS)]) for i in range(args.reps)]
    finally:
        srv.stop()
    for k in ("ref_quiet", "ref_busy", "hearth_quiet", "hearth_busy", "hearth_fewer"):
        res[k + "_median"] = median(res.get(k, []))
    rq, hq, hb, rb = (res.get(k + "_median") for k in ("ref_quiet", "hearth_quiet", "hearth_busy", "ref_busy"))
    res["quiet_vs_ref"] = hq / rq if hq and rq else None
    res["busy_vs_quiet"] = hb / hq if hb and hq else None
    res["busy_vs_ref_busy"] = hb / rb if hb and rb else None
    res["ref_busy_vs_quiet"] = rb / rq if rb and rq else None
    hf = res.get("hearth_fewer_median")
    res["fewer_vs_quiet"] = hf / hq if hf and hq else None
    res["busy_vs_fewer"] = hb / hf if hb and hf else None
    return res


def markdown(res: dict, command: str) -> str:
    f = lambda x, d=1: "—" if x is None else f"{x:.{d}f}"
    m = res["machine"]
    lines = [SECTION, "",
             f"`{command}` on {m.get('cpu', '?')} ({res['cores']} cores), load {res['load_at_start']:.2f} at start"
             + (f", run at niceness {res['nice']} (the box was not quiet: other work ran at 0)" if res.get("nice") else "")
             + "; "
             f"model `{Path(res['model']).name}`, {res['tokens']} generated tokens, median of {res['reps']}. "
             "Hearth runs with its default threads (no `--threads`): every core while nothing else is busy, "
             "one less while something is (`src/governor/threads.rs`); llama-bench gets every core (`-t`).", "",
             "| | quiet tok/s | with one busy process tok/s | busy / quiet | Hearth threads (quiet, busy) |",
             "|---|---|---|---|---|",
             f"| Hearth | {f(res['hearth_quiet_median'])} | {f(res['hearth_busy_median'])} | "
             f"{f(res['busy_vs_quiet'], 2)} | {res.get('hearth_quiet_threads')}, {res.get('hearth_busy_threads')} |",
             f"| llama-bench -t {res['cores']} | {f(res.get('ref_quiet_median'))} | {f(res.get('ref_busy_median'))} | "
             f"{f(res.get('ref_busy_vs_quiet'), 2)} | {res['cores']}, {res['cores']} |",
             f"| Hearth held to {max(res['cores'] - 1, 1)} thread(s), quiet | {f(res.get('hearth_fewer_median'))} | — | — | "
             f"{max(res['cores'] - 1, 1)} |", "",
             f"Quiet, Hearth / llama-bench: **{f(res['quiet_vs_ref'], 2)}×** (goal ≥ 0.95). "
             f"Busy, Hearth / its quiet speed: **{f(res['busy_vs_quiet'], 2)}×** (goal ≥ 0.8); "
             f"busy, Hearth / llama-bench busy: {f(res['busy_vs_ref_busy'], 2)}×. "
             f"With one core taken, generation has {max(res['cores'] - 1, 1)} of {res['cores']}: "
             f"{max(res['cores'] - 1, 1)} thread(s) on a quiet box run at {f(res.get('fewer_vs_quiet'), 2)}× of every core, "
             f"the most the busy phase can reach here; it reaches {f(res.get('busy_vs_fewer'), 2)}× of that.", ""]
    return "\n".join(lines)


def write_results(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else ""
    start = old.find(SECTION)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + ("" if end < 0 else old[end + 1:])
    path.write_text(new)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 repetitions of 32 tokens")
    ap.add_argument("--no-ref", action="store_true", help="skip llama-bench (smoke runs only)")
    ap.add_argument("--hearth-bin", default=str(h.WORK / "target/release/hearth"))
    ap.add_argument("--ref-bin", default=str(h.WORK / "llama.cpp-ref/build/bin"))
    ap.add_argument("--results", action="store_true", help="write the section into benches/RESULTS.md")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.tokens = 2, 32
    h.LOGS.mkdir(parents=True, exist_ok=True)
    res = measure(args)
    (h.WORK / "threads.json").write_text(json.dumps(res, indent=2))
    text = markdown(res, "benches/threads.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(text)
    if args.results:
        write_results(h.BENCH_DIR / "RESULTS.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
