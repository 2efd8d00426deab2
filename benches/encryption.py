#!/usr/bin/env python3
"""The cost of encryption at rest, side by side in one run: two `hearth serve` processes on
the same model and build, one on a plain data dir and one on a data dir made with
`hearth encryption enable --new-key-file` (SQLCipher database, sealed KV disk cache, the
search index in RAM), measured in alternating rounds (plain, encrypted, encrypted, plain, ...)
so that drift on a noisy box hits both.

  chat      POST /api/chat, a stored conversation continued turn after turn (greedy, fixed
            length): seconds per turn (the turn's history read and its reply written in SQLite)
  ingest    a generated Markdown document uploaded (POST /api/documents) until its ingest job
            is done: MB/s (stored, chunked, indexed)
  search    GET /api/search over what was ingested: p50 and p99 latency

Cost: how much slower encrypted is (positive) than plain. Writes its section of
benches/RESULTS.md (between `<!-- encryption:start -->` and `<!-- encryption:end -->`).

  python3 benches/encryption.py [--binary target/release/hearth] [--model PATH] [--rounds 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
import report  # noqa: E402

START = "<!-- encryption:start -->"
END = "<!-- encryption:end -->"
WORDS = ("garden kitchen recipe school holiday invoice doctor insurance birthday winter heating boiler "
         "router grandmother football piano lesson train ticket bread oven shelf paint window roof cat").split()


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def document(kib: int, seed: int) -> bytes:
    """Markdown of about `kib` KiB: sections of sentences made of household words."""
    out, i = [], seed
    while sum(len(x) for x in out) < kib * 1024:
        out.append(f"\n## Section {i}\n\n")
        for _ in range(8):
            words = [WORDS[(i * 7 + k * k + seed) % len(WORDS)] for k in range(14)]
            out.append(" ".join(words).capitalize() + ".\n")
            i += 1
    return ("# Household notes\n" + "".join(out)).encode()


def upload(ep: h.Endpoint, name: str, data: bytes) -> str:
    boundary = "hearth-bench-boundary-41"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: text/markdown\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    conn = ep.connection(120)
    headers = {"Authorization": f"Bearer {ep.token}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    conn.request("POST", "/api/documents", body=body, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    if resp.status >= 300:
        raise h.BenchError(f"upload -> HTTP {resp.status}: {raw[:300]!r}")
    return json.loads(raw)["documents"][0]["job_id"]


def ingest(ep: h.Endpoint, kib: int, seed: int) -> dict:
    data = document(kib, seed)
    t0 = time.monotonic()
    job = upload(ep, f"notes-{seed}.md", data)
    while True:
        state = h.http_json(ep, "GET", f"/api/jobs/{job}")["state"]
        if state == "done":
            break
        if state == "failed":
            raise h.BenchError(f"ingest job {job} failed")
        time.sleep(0.05)
    seconds = time.monotonic() - t0
    return {"mb_s": len(data) / 1e6 / seconds, "seconds": seconds}


def chat(ep: h.Endpoint, conversation: str | None, tokens: int, turn: int) -> tuple[dict, str]:
    body = {"message": f"Tell me one more thing about the garden, part {turn}.", "max_tokens": tokens,
            "temperature": 0}
    if conversation:
        body["conversation_id"] = conversation
    t0 = time.monotonic()
    reply = h.http_json(ep, "POST", "/api/chat", body, timeout=300)
    return {"seconds": time.monotonic() - t0}, reply["conversation_id"]


def search(ep: h.Endpoint, queries: int) -> dict:
    times = []
    for i in range(queries):
        q = urllib.parse.quote(" ".join(WORDS[(i * 5 + k) % len(WORDS)] for k in range(3)))
        t0 = time.monotonic()
        h.http_json(ep, "GET", f"/api/search?q={q}&limit=10")
        times.append(time.monotonic() - t0)
    return {"p50_ms": 1000 * percentile(times, 0.5), "p99_ms": 1000 * percentile(times, 0.99)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(h.REPO / "target" / "release" / "hearth"))
    ap.add_argument("--model", default=str(Path.home() / ".cache/hearth/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per side (default 5)")
    ap.add_argument("--tokens", type=int, default=32, help="tokens per chat reply (default 32)")
    ap.add_argument("--kib", type=int, default=512, help="KiB per ingested document (default 512)")
    ap.add_argument("--queries", type=int, default=300, help="searches per round (default 300)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", default=str(h.BENCH_DIR / "RESULTS.md"))
    args = ap.parse_args()
    h.LOGS.mkdir(parents=True, exist_ok=True)
    binary, model = Path(args.binary), Path(args.model)
    if not model.is_file():
        raise h.BenchError(f"model missing: {model} (python3 models/fetch.py default)")
    key = h.WORK / "keys" / "encryption-bench.key"
    key.parent.mkdir(parents=True, exist_ok=True)
    key.unlink(missing_ok=True)
    sides = {
        "plain": h.start_hearth(binary, model, args.threads, 2048, "enc-plain"),
        "encrypted": h.start_hearth(binary, model, args.threads, 2048, "enc-on",
                                    settings={"HEARTH_KEY_FILE": str(key)},
                                    setup=[["encryption", "enable", "--new-key-file", str(key)]]),
    }
    health = h.http_json(sides["encrypted"].ep, "GET", "/api/health")
    if health.get("encrypted") is not True:
        raise h.BenchError(f"the encrypted side does not say it is encrypted: {health}")
    kinds = ("chat", "ingest", "search")
    runs: dict[str, dict[str, list[dict]]] = {s: {k: [] for k in kinds} for s in sides}
    conversations: dict[str, str | None] = {s: None for s in sides}
    try:
        for side, server in sides.items():  # warm-up: the first chat fills caches
            _, conversations[side] = chat(server.ep, None, 4, 0)
        for r in range(args.rounds):
            for side in (("plain", "encrypted") if r % 2 == 0 else ("encrypted", "plain")):
                ep = sides[side].ep
                result, conversations[side] = chat(ep, conversations[side], args.tokens, r + 1)
                runs[side]["chat"].append(result)
                runs[side]["ingest"].append(ingest(ep, args.kib, r))
                runs[side]["search"].append(search(ep, args.queries))
                h.log(f"round {r + 1} {side}: {json.dumps({k: v[-1] for k, v in runs[side].items()})}")
    finally:
        for server in sides.values():
            server.stop()

    def med(side: str, kind: str, key: str) -> float:
        return statistics.median(x[key] for x in runs[side][kind])

    def spread(side: str, kind: str, key: str) -> str:
        values = [x[key] for x in runs[side][kind]]
        return f"{min(values):.2f}-{max(values):.2f}"

    rows = []
    for kind, key, better in [("chat", "seconds", "lower"), ("ingest", "mb_s", "higher"),
                              ("search", "p50_ms", "lower"), ("search", "p99_ms", "lower")]:
        p, e = med("plain", kind, key), med("encrypted", kind, key)
        cost = (p / e - 1) if better == "higher" else (e / p - 1)
        rows.append((kind, key, p, spread("plain", kind, key), e, spread("encrypted", kind, key), cost))

    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [START, "## Encryption at rest: plain vs encrypted", "",
             f"`python3 benches/encryption.py` on {date}, {args.rounds} alternating rounds per side: a "
             f"{args.tokens}-token turn of a stored conversation on `{model.name}` with {args.threads} threads, "
             f"a {args.kib} KiB Markdown document ingested, {args.queries} searches; build "
             f"`{h.hearth_build_info().get('git', '?')}`. Medians, with the range over rounds. Cost: how much "
             "slower encrypted is (positive) than plain.", "",
             "| path | measure | plain | (range) | encrypted | (range) | cost of encryption |",
             "|---|---|---|---|---|---|---|"]
    for kind, key, p, ps, e, es, cost in rows:
        lines.append(f"| {kind} | {key} | {p:.2f} | {ps} | {e:.2f} | {es} | {100 * cost:+.1f}% |")
    lines += ["", END]
    section = "\n".join(lines)
    print(section)
    report.replace_section(Path(args.results), START, END, section)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except h.BenchError as e:
        print(f"encryption bench: {e}", file=sys.stderr)
        sys.exit(2)
