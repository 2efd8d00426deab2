#!/usr/bin/env python3
"""What telemetry costs chat throughput (issue 24): the system sampler and MQTT publishing,
both every second, against both off, on the same build, model and machine, in alternating
rounds (off, on, on, off, off, on, ...) so that drift on a noisy box hits both sides.

  off   MQTT disabled; the sampler at its slowest (`governor.sample_interval_ms` = 600000,
        so it samples once at start and not again during the round)
  on    MQTT to a local mosquitto every second (`mqtt.interval_secs` = 1, state JSON
        published), the sampler every second (`governor.sample_interval_ms` = 1000)

Each round starts a fresh `hearth serve` for its side (so the other side's threads are not
running meanwhile), warms it with one chat, then times `--chats` streamed
/v1/chat/completions of `--tokens` tokens each (greedy, same prompt). Tokens per second is
the client's: tokens after the first over the time from first to last. For each side the
median over rounds of each round's median is reported, with the range over rounds, and the
ratio on / off (1.0 = no cost) with the range of the per-pair ratios.

It checks that each side ran as intended from the server's own /metrics: MQTT messages
published, and system samples per second. A build without `governor.sample_interval_ms`
(before the governor landed) warns that the variable is unknown, and the sampler then runs
at its fixed 5 s on both sides: the bench says so, and measures MQTT alone.

  python3 benches/telemetry_overhead.py [--binary target/release/hearth] [--model PATH]
      [--rounds 6] [--chats 5] [--tokens 128] [--threads 2] [--write]

`--write` puts the result in benches/RESULTS.md (between `<!-- telemetry:start -->` and
`<!-- telemetry:end -->`). Needs `mosquitto` (apt `mosquitto`). Run it on a quiet box.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
import report  # noqa: E402

START = "<!-- telemetry:start -->"
END = "<!-- telemetry:end -->"
PROMPT = "Write a short story about a lighthouse keeper and a storm."


def start_broker(workdir: Path) -> tuple[object, int]:
    if not shutil.which("mosquitto"):
        raise h.BenchError("mosquitto is missing: sudo apt-get install -y mosquitto (scripts/deps.sh does)")
    port = h.free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = h.spawn(["mosquitto", "-c", str(conf)], h.LOGS / "telemetry-mosquitto.log")
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline:
                raise h.BenchError("mosquitto did not start (benches/work/logs/telemetry-mosquitto.log)")
            time.sleep(0.1)


def settings(side: str, broker_port: int) -> dict:
    if side == "on":
        return {
            "HEARTH_MQTT_ENABLED": "true",
            "HEARTH_MQTT_URL": f"mqtt://127.0.0.1:{broker_port}",
            "HEARTH_MQTT_DEVICE_ID": "bench",
            "HEARTH_MQTT_INTERVAL_SECS": "1",
            "HEARTH_GOVERNOR_SAMPLE_INTERVAL_MS": "1000",
        }
    return {"HEARTH_MQTT_ENABLED": "false", "HEARTH_GOVERNOR_SAMPLE_INTERVAL_MS": "600000"}


def metrics(ep: h.Endpoint) -> dict[str, float]:
    conn = ep.connection(30)
    try:
        conn.request("GET", "/metrics", headers=ep.headers())
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line.split(" ")[0]:
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def chat(ep: h.Endpoint, tokens: int) -> float:
    body = {"model": "default", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens,
            "temperature": 0, "stream": True}
    res = h.stream_chat(ep, "/v1/chat/completions", body)
    rate = res.gen_rate()
    if not rate or res.completion_tokens < tokens // 2:
        raise h.BenchError(f"a chat gave {res.completion_tokens} tokens (wanted about {tokens}); raise --tokens or check the model")
    return rate


def one_round(side: str, args, binary: Path, model: Path, broker_port: int, r: int) -> dict:
    server = h.start_hearth(binary, model, args.threads, 2048, f"telemetry-{side}", settings=settings(side, broker_port))
    try:
        chat(server.ep, 16)  # warm-up
        before, t0 = metrics(server.ep), time.monotonic()
        rates = [chat(server.ep, args.tokens) for _ in range(args.chats)]
        after, elapsed = metrics(server.ep), time.monotonic() - t0
        log = server.log_path.read_text(errors="replace")
    finally:
        server.stop()
    delta = lambda k: after.get(k, 0.0) - before.get(k, 0.0)  # noqa: E731
    result = {
        "side": side, "round": r, "tok_s": statistics.median(rates), "rates": rates, "seconds": elapsed,
        "mqtt_published": delta("hearth_mqtt_messages_published_total"),
        "samples_per_s": delta("hearth_system_samples_total") / elapsed if elapsed > 0 else 0.0,
        "sampler_setting_unknown": any("ignoring unknown" in line and "HEARTH_GOVERNOR_SAMPLE_INTERVAL_MS" in line
                                       for line in log.splitlines()),
    }
    h.log(f"round {r + 1} {side}: {json.dumps({k: v for k, v in result.items() if k != 'rates'})}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(h.REPO / "target" / "release" / "hearth"))
    ap.add_argument("--model", default=str(Path.home() / ".cache/hearth/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
    ap.add_argument("--rounds", type=int, default=6, help="rounds per side, alternating (default 6)")
    ap.add_argument("--chats", type=int, default=5, help="timed chats per round (default 5)")
    ap.add_argument("--tokens", type=int, default=128, help="tokens per chat (default 128)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="write the section of benches/RESULTS.md")
    ap.add_argument("--results", default=str(h.BENCH_DIR / "RESULTS.md"))
    args = ap.parse_args()
    h.LOGS.mkdir(parents=True, exist_ok=True)
    binary, model = Path(args.binary), Path(args.model)
    if not model.is_file():
        raise h.BenchError(f"model missing: {model} (python3 models/fetch.py default)")
    load = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="hearth-telemetry-"))
    broker, broker_port = start_broker(workdir)
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    try:
        for r in range(args.rounds):
            # ABBA: off on, on off, off on, ...
            for side in (("off", "on") if r % 2 == 0 else ("on", "off")):
                runs[side].append(one_round(side, args, binary, model, broker_port, r))
    finally:
        h.stop_process(broker)
        shutil.rmtree(workdir, ignore_errors=True)

    for run in runs["on"]:
        if run["mqtt_published"] < run["seconds"] / 2 - 1:
            raise h.BenchError(f"the 'on' side published {run['mqtt_published']:.0f} MQTT messages in "
                               f"{run['seconds']:.0f} s: it was not publishing every second")
    sampler_applied = not any(run["sampler_setting_unknown"] for side in runs.values() for run in side)
    off = [x["tok_s"] for x in runs["off"]]
    on = [x["tok_s"] for x in runs["on"]]
    ratios = [b["tok_s"] / a["tok_s"] for a, b in zip(runs["off"], runs["on"])]
    ratio = statistics.median(on) / statistics.median(off)
    rate = lambda side: statistics.median(x["samples_per_s"] for x in runs[side])  # noqa: E731
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [START, "## Telemetry overhead: sampler and MQTT every second", "",
             f"`python3 benches/telemetry_overhead.py` on {date}: {args.rounds} alternating rounds per side, each a fresh "
             f"server with {args.chats} streamed chats of {args.tokens} tokens (greedy) on `{model.name}`, "
             f"{args.threads} threads; load average at start {load:.2f}; build `{h.hearth_build_info().get('git', '?')}`. "
             "Tokens per second after the first token, client side: the median of each round's median, with the range over rounds.", "",
             "| side | tokens/s | (range) | system samples/s | MQTT messages/s |",
             "|---|---|---|---|---|"]
    for side, values in (("off", off), ("on", on)):
        published = statistics.median(x["mqtt_published"] / x["seconds"] for x in runs[side])
        lines.append(f"| {side} | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} | "
                     f"{rate(side):.2f} | {published:.2f} |")
    lines += ["", f"Ratio on / off: **{ratio:.3f}** (per pair of rounds {min(ratios):.3f}-{max(ratios):.3f}); "
              f"cost {100 * (1 - ratio):+.1f}% of chat throughput."]
    if not sampler_applied:
        lines += ["", "This build does not know `governor.sample_interval_ms`: the sampler ran at its fixed 5 s on "
                  "both sides, so this measures MQTT publishing every second alone."]
    lines += ["", END]
    section = "\n".join(lines)
    print(section)
    if args.write:
        report.replace_section(Path(args.results), START, END, section)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except h.BenchError as e:
        print(f"telemetry bench: {e}", file=sys.stderr)
        sys.exit(2)
