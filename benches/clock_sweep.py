#!/usr/bin/env python3
"""The clock skill answered in words across the hours of a day (issue 22): the answer round's
prompt decides whether the default 0.5B model says the time it was given or writes the call
again as JSON, and the outcome moves with the digits of the reading, so one time of day proves
little. Starts `hearth serve` once per time zone (`TZ=Etc/GMT±k`, fresh data dir, TLS off),
asks three time questions through `/api/chat` with the sampling a person gets (no temperature
given), and counts the replies that tell the clock's reading in words (`skills.told`: no JSON,
no `<tool_response>`).

  python3 benches/clock_sweep.py [--binary target/release/hearth] [--zones 12]

Prints one line per reply and the count at the end; the last result is kept by hand in
benches/RESULTS.md, below the skills section.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
from skills import MODELS, told  # noqa: E402

PROMPTS = ["What time is it now?", "What time is it?", "Can you tell me the current time?"]


def zones(n: int) -> list[str]:
    """UTC, then UTC+1, UTC-1, UTC+2, ... (Etc/GMT's signs are inverted: Etc/GMT-2 is UTC+2)."""
    out = ["Etc/GMT"]
    k = 1
    while len(out) < n:
        out += [f"Etc/GMT-{k}", f"Etc/GMT+{k}"]
        k += 1
    return out[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=str(h.REPO / "target" / "release" / "hearth"))
    ap.add_argument("--model", default=str(Path.home() / ".cache/hearth/models" / MODELS["default"]))
    ap.add_argument("--zones", type=int, default=12, help="how many time zones (hours of the day)")
    args = ap.parse_args()
    h.LOGS.mkdir(parents=True, exist_ok=True)
    good = asked = 0
    for zone in zones(args.zones):
        server = h.start_hearth(Path(args.binary), Path(args.model), None, 4096, "clock-sweep",
                                settings={"TZ": zone, "HEARTH_MAX_TOKENS": "60"})
        try:
            for prompt in PROMPTS:
                answer = h.http_json(server.ep, "POST", "/api/chat", {"message": prompt}, timeout=600)
                reading = next((c["result"] for c in answer["tool_calls"] if c["name"] == "clock"), None)
                ok = reading is not None and told(answer["reply"], reading)
                asked += 1
                good += ok
                print(json.dumps({"zone": zone, "prompt": prompt, "reading": reading, "told": ok,
                                  "reply": answer["reply"]}), flush=True)
        finally:
            server.stop()
    print(f"told in words: {good}/{asked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
