#!/usr/bin/env python3
"""The load test: many concurrent clients from several users against one `hearth serve`
with its rest-of-the-box limits ([limits] defaults unless given), for a fixed time.

Each client loops: a short chat (POST /v1/chat/completions), now and then a read of its
conversations; a 429 is honoured (it waits the Retry-After, at most 5 s, and tries again).
What it checks and prints:
  - no 5xx and no transport error, from start to end;
  - fair share: every user's completed chats within 20% of the users' mean;
  - memory bounded: the server's peak RSS, sampled every second (and its growth over the
    second half of the run, which should be near zero);
  - the audit chain verifies afterwards (`hearth audit verify`), where the build has it.
Exit status 1 when a check fails. The record goes to benches/work/load-<label>.json.

Usage:
  python3 benches/load.py [--binary target/debug/hearth] [--model small|default|PATH]
                          [--users 10] [--clients 200] [--duration 120] [--label NAME]
                          [--setting HEARTH_X=Y ...]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import harness as h

MODELS = {
    "small": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "default": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
}


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: collections.Counter[str] = collections.Counter()
        self.limited: collections.Counter[str] = collections.Counter()
        self.status: collections.Counter[int] = collections.Counter()
        self.errors: list[str] = []

    def add(self, user: str, status: int, ok_chat: bool) -> None:
        with self.lock:
            self.status[status] += 1
            if ok_chat:
                self.done[user] += 1
            if status == 429:
                self.limited[user] += 1

    def error(self, text: str) -> None:
        with self.lock:
            if len(self.errors) < 50:
                self.errors.append(text)
            self.status[0] += 1


def request(port: int, token: str, method: str, path: str, body: dict | None) -> tuple[int, float | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
        resp = conn.getresponse()
        resp.read()
        retry = resp.getheader("Retry-After")
        return resp.status, float(retry) if retry else None
    finally:
        conn.close()


def client(port: int, user: str, token: str, until: float, tally: Tally, n: int) -> None:
    i = 0
    while time.monotonic() < until:
        i += 1
        chat = i % 5 != 0
        try:
            if chat:
                body = {"messages": [{"role": "user", "content": f"Say a short greeting number {n}-{i}."}],
                        "max_tokens": 12, "temperature": 0}
                status, retry = request(port, token, "POST", "/v1/chat/completions", body)
            else:
                status, retry = request(port, token, "GET", "/api/conversations", None)
        except (OSError, http.client.HTTPException) as e:
            tally.error(f"{user}: {e}")
            time.sleep(0.5)
            continue
        tally.add(user, status, chat and status == 200)
        if status >= 500:
            tally.error(f"{user}: HTTP {status}")
        if status == 429:
            time.sleep(min(retry or 1.0, 5.0))


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(h.REPO / "target" / "debug" / "hearth"))
    ap.add_argument("--model", default="small", help="small, default, or a GGUF path")
    ap.add_argument("--cache", default=str(Path.home() / ".cache/hearth/models"))
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--clients", type=int, default=200, help="in all, spread evenly over the users")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    ap.add_argument("--label", default="load")
    ap.add_argument("--setting", action="append", default=[], help="HEARTH_X=Y for the server (repeatable)")
    args = ap.parse_args()

    model = Path(args.cache) / MODELS[args.model] if args.model in MODELS else Path(args.model)
    # The box's rest limits, as shipped (the harness turns the request limit off for others).
    settings = {"HEARTH_REQUESTS_PER_MINUTE": "600", **dict(s.split("=", 1) for s in args.setting)}
    server = h.start_hearth(Path(args.binary), model, None, 4096, args.label, settings=settings)
    data = h.WORK / "hearth-data" / args.label
    binary = Path(args.binary)

    def cli(*a: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(binary), *a, "--data-dir", str(data)], env=h.clean_env({"HEARTH_CONFIG": "/dev/null"}),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)

    tokens = {}
    for u in range(args.users):
        name = f"user{u:02d}"
        r = cli("users", "add", name)
        if r.returncode != 0:
            raise h.BenchError(f"hearth users add {name}: {r.stderr.decode()[-300:]}")
        out = cli("tokens", "create", "--user", name).stdout.decode().split()
        tokens[name] = out[-1]

    tally = Tally()
    until = time.monotonic() + args.duration
    threads = []
    names = list(tokens)
    for n in range(args.clients):
        user = names[n % len(names)]
        t = threading.Thread(target=client, args=(server.ep.port, user, tokens[user], until, tally, n), daemon=True)
        t.start()
        threads.append(t)
    h.log(f"{args.clients} clients of {len(names)} users for {args.duration:.0f} s")
    rss: list[tuple[float, int]] = []
    start = time.monotonic()
    while time.monotonic() < until:
        v = rss_kib(server.proc.pid)
        if v is not None:
            rss.append((time.monotonic() - start, v))
        if server.proc.poll() is not None:
            tally.error(f"the server exited with {server.proc.returncode}")
            break
        time.sleep(1.0)
    for t in threads:
        t.join(timeout=330)
    alive = server.proc.poll() is None
    server.stop()

    audit = cli("audit", "verify")
    audit_text = (audit.stdout + audit.stderr).decode().strip()
    audit_known = "unrecognized subcommand" not in audit_text

    done = [tally.done[n] for n in names]
    mean = statistics.mean(done) if done else 0.0
    spread = max(abs(d - mean) / mean for d in done) if mean else 1.0
    half = [v for t, v in rss if t >= args.duration / 2]
    record = {
        "machine": h.machine(), "build": h.hearth_build_info(), "model": model.name,
        "users": args.users, "clients": args.clients, "duration_s": args.duration, "settings": settings,
        "status": {str(k): v for k, v in sorted(tally.status.items())},
        "chats_done": dict(zip(names, done)), "chats_per_s": sum(done) / args.duration,
        "limited": dict(tally.limited), "fair_spread": spread,
        "peak_rss_mib": max((v for _, v in rss), default=0) / 1024,
        "rss_growth_second_half_mib": ((half[-1] - half[0]) / 1024) if len(half) > 1 else None,
        "errors": tally.errors, "alive": alive,
        "audit": {"ran": audit_known, "ok": audit.returncode == 0, "output": audit_text[-500:]},
    }
    out = h.WORK / f"load-{args.label}.json"
    out.write_text(json.dumps(record, indent=2))
    five_xx = sum(v for k, v in tally.status.items() if k >= 500)
    print(f"{sum(done)} chats in {args.duration:.0f} s ({record['chats_per_s']:.1f}/s); statuses {record['status']}")
    print(f"per user: {record['chats_done']}; largest distance from the mean {spread:.0%}")
    print(f"peak RSS {record['peak_rss_mib']:.0f} MiB, growth over the second half "
          f"{record['rss_growth_second_half_mib'] if record['rss_growth_second_half_mib'] is not None else '?'} MiB")
    print(f"audit verify: {'exit ' + str(audit.returncode) if audit_known else 'not in this build'}: {audit_text[-200:]}")
    print(f"record: {out}")
    failures = []
    if five_xx or tally.status.get(0):
        failures.append(f"{five_xx} 5xx and {tally.status.get(0, 0)} transport errors: {tally.errors[:5]}")
    if spread > 0.2:
        failures.append(f"fair share: a user is {spread:.0%} from the mean")
    if not alive:
        failures.append("the server died")
    if audit_known and audit.returncode != 0:
        failures.append("the audit chain does not verify")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except h.BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
