#!/usr/bin/env python3
"""TLS vs plain HTTP, side by side in one run: two `hearth serve` processes on the same model
and build, one with `tls.mode = "local"` (its own CA) and one with `tls.mode = "off"`, measured
in alternating rounds (plain, TLS, plain, TLS, ...) so that drift on a noisy box hits both.

  health    GET /api/health: requests per second and p99 latency, with a kept-alive connection
            per client (the usual case) and with a new connection per request (a TLS handshake
            each time: the worst case)
  chat      a streamed /v1/chat/completions (greedy, fixed length): time to first token, tokens
            per second, total time (the goal: TLS costs under 10% here)

The ratio is TLS / plain (for rates, plain / TLS is the slow-down). Writes its section of
benches/RESULTS.md (between `<!-- tls:start -->` and `<!-- tls:end -->`).

  python3 benches/tls.py [--binary target/release/hearth] [--model PATH] [--rounds 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
import report  # noqa: E402

START = "<!-- tls:start -->"
END = "<!-- tls:end -->"


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def health_load(ep: h.Endpoint, clients: int, seconds: float, keep_alive: bool) -> dict:
    """`clients` threads request /api/health for `seconds`; returns rps and latency percentiles."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client():
        nonlocal errors
        mine, bad = [], 0
        conn = ep.connection(10.0) if keep_alive else None
        while time.monotonic() < stop:
            c = conn or ep.connection(10.0)
            t0 = time.monotonic()
            try:
                c.request("GET", "/api/health")
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    bad += 1
            except OSError:
                bad += 1
                if conn is not None:
                    conn.close()
                    conn = ep.connection(10.0)
            mine.append(time.monotonic() - t0)
            if conn is None:
                c.close()
        if conn is not None:
            conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    return {"rps": len(latencies) / elapsed, "p50_ms": 1000 * percentile(latencies, 0.5),
            "p99_ms": 1000 * percentile(latencies, 0.99), "requests": len(latencies), "errors": errors}


def chat_once(ep: h.Endpoint, tokens: int) -> dict:
    body = {"model": "default", "stream": True, "temperature": 0, "max_tokens": tokens, "seed": 1,
            "messages": [{"role": "system", "content": "You are a storyteller."},
                         {"role": "user", "content": "Tell a long story about a lighthouse keeper."}]}
    res = h.stream_chat(ep, "/v1/chat/completions", body)
    return {"ttft_ms": 1000 * (res.ttft or 0), "tokens": res.completion_tokens, "total_s": res.total,
            "tok_s": res.gen_rate() or 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(h.REPO / "target" / "release" / "hearth"))
    ap.add_argument("--model", default=str(Path.home() / ".cache/hearth/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per side (default 5)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent health clients (default 8)")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds of health load per round (default 3)")
    ap.add_argument("--tokens", type=int, default=64, help="tokens per streamed chat (default 64)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", default=str(h.BENCH_DIR / "RESULTS.md"))
    args = ap.parse_args()
    h.LOGS.mkdir(parents=True, exist_ok=True)
    binary, model = Path(args.binary), Path(args.model)
    if not model.is_file():
        raise h.BenchError(f"model missing: {model} (python3 models/fetch.py default)")
    load = os.getloadavg()[0]
    sides = {
        "plain": h.start_hearth(binary, model, args.threads, 2048, "tls-plain", settings={"HEARTH_TLS_MODE": "off"}),
        "tls": h.start_hearth(binary, model, args.threads, 2048, "tls-local", settings={"HEARTH_TLS_MODE": "local"}),
    }
    kinds = ("keepalive", "newconn", "chat")
    runs: dict[str, dict[str, list[dict]]] = {s: {k: [] for k in kinds} for s in sides}
    try:
        for side, server in sides.items():  # warm-up: a first chat loads caches, a first handshake
            chat_once(server.ep, 8)
            health_load(server.ep, 1, 0.5, False)
        for r in range(args.rounds):
            for side in (("plain", "tls") if r % 2 == 0 else ("tls", "plain")):
                ep = sides[side].ep
                runs[side]["keepalive"].append(health_load(ep, args.clients, args.seconds, True))
                runs[side]["newconn"].append(health_load(ep, args.clients, args.seconds, False))
                runs[side]["chat"].append(chat_once(ep, args.tokens))
                h.log(f"round {r + 1} {side}: {json.dumps({k: v[-1] for k, v in runs[side].items()})}")
    finally:
        for server in sides.values():
            server.stop()

    def med(side: str, kind: str, key: str) -> float:
        return statistics.median(x[key] for x in runs[side][kind])

    def spread(side: str, kind: str, key: str) -> str:
        values = [x[key] for x in runs[side][kind]]
        return f"{min(values):.1f}-{max(values):.1f}"

    rows = []
    for kind, key, better in [("keepalive", "rps", "higher"), ("keepalive", "p99_ms", "lower"),
                              ("newconn", "rps", "higher"), ("newconn", "p99_ms", "lower"),
                              ("chat", "ttft_ms", "lower"), ("chat", "tok_s", "higher"), ("chat", "total_s", "lower")]:
        p, t = med("plain", kind, key), med("tls", kind, key)
        cost = (p / t - 1) if better == "higher" else (t / p - 1)
        rows.append((kind, key, p, spread("plain", kind, key), t, spread("tls", kind, key), cost))
    chat_cost = max(r[6] for r in rows if r[0] == "chat" and r[1] in ("tok_s", "total_s"))
    errors = sum(x.get("errors", 0) for s in runs.values() for k in ("keepalive", "newconn") for x in s[k])

    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [START, "## TLS vs plain HTTP", "",
             f"`python3 benches/tls.py` on {date}, {args.rounds} alternating rounds per side, {args.clients} health clients "
             f"for {args.seconds:g} s per round, a {args.tokens}-token streamed chat on `{model.name}` with "
             f"{args.threads} threads; load average at start {load:.2f}; build `{h.hearth_build_info().get('git', '?')}`. "
             "Medians, with the range over rounds. Cost: how much slower TLS is (positive) than plain HTTP.", "",
             "| path | measure | plain | (range) | TLS | (range) | cost of TLS |",
             "|---|---|---|---|---|---|---|"]
    for kind, key, p, ps, t, ts, cost in rows:
        lines.append(f"| {kind} | {key} | {p:.1f} | {ps} | {t:.1f} | {ts} | {100 * cost:+.1f}% |")
    verdict = "PASS" if chat_cost < 0.10 else "FAIL"
    lines += ["", f"Chat path: TLS costs {100 * chat_cost:+.1f}% (goal: under 10%): **{verdict}**. "
              f"Health requests that failed: {errors}.", "", END]
    section = "\n".join(lines)
    print(section)
    report.replace_section(Path(args.results), START, END, section)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except h.BenchError as e:
        print(f"tls bench: {e}", file=sys.stderr)
        sys.exit(2)
