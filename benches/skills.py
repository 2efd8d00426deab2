#!/usr/bin/env python3
"""Skills in Hearth's own chat (issue 22): with `[skills]` on (clock, search_documents), does
`/api/chat` call the right skill when one fits, answer from its result, and leave plain
questions alone; and what do the skills cost a turn?

Starts `hearth serve` per model (fresh data dir, TLS off), uploads the suite's documents
(`benches/skills_suite.json`), then asks every case once in a new conversation, temperature 0,
with skills on; the plain cases also with `"skills": false`. Per case:

  clock      the clock was called and the reply tells its time, date, weekday, month or year
             (what the question asked: any of them counts)
  timers     the case's skill (set_timer or set_reminder) was called, and what it set says the
             expected length or time (and the reminder's words)
  documents  search_documents was called and the reply contains the expected words
  plain      no skill was called
  time       wall clock at the client for the whole turn, tool rounds included

Writes its section of benches/RESULTS.md (between `<!-- skills:start -->` and
`<!-- skills:end -->`) and the raw record to benches/work/skills.json.

  python3 benches/skills.py [--binary target/release/hearth] [--models default,1.5b]
  python3 benches/skills.py --report-only
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
import report  # noqa: E402

START = "<!-- skills:start -->"
END = "<!-- skills:end -->"
MODELS = {
    "default": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
}
WANTED = {"clock": "clock", "documents": "search_documents", "timers": "(the case's skill)", "plain": None}


def upload(ep: h.Endpoint, documents: dict) -> None:
    """Uploads through the real multipart route and waits for the ingest jobs."""
    import http.client
    import uuid
    boundary = uuid.uuid4().hex
    body = b""
    for name, text in documents.items():
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                 f"Content-Type: text/markdown\r\n\r\n").encode() + text.encode() + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    conn = ep.connection(60)
    headers = {**ep.headers(), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    conn.request("POST", "/api/documents", body=body, headers=headers)
    resp = conn.getresponse()
    answer = json.loads(resp.read() or b"{}")
    if resp.status != 202:
        raise h.BenchError(f"upload: {resp.status} {answer}")
    for doc in answer["documents"]:
        deadline = time.monotonic() + 300
        while True:
            job = h.http_json(ep, "GET", f"/api/jobs/{doc['job_id']}")
            if job["state"] in ("done", "failed"):
                if job["state"] != "done":
                    raise h.BenchError(f"ingest failed: {job}")
                break
            if time.monotonic() > deadline:
                raise h.BenchError(f"ingest timed out: {job}")
            time.sleep(0.5)


def told(reply: str, reading: str) -> bool:
    """Whether the reply carries something the clock read ("It is 14:05 on Sunday 6 December
    2026 (UTC+00:00)."), in words: an echo of the tool's wrapper or of JSON does not count."""
    text = reply.lower()
    if "tool_response" in text or "{" in text:
        return False
    words = reading.split()
    time, weekday, month, year = words[2], words[4], words[6], words[7]
    hour, minute = time.split(":")
    twelve = f"{int(hour) % 12 or 12}:{minute}"
    hits = [time, twelve, weekday, month, year,
            "morning" if int(hour) < 12 else "afternoon" if int(hour) < 18 else "evening",
            "weekend" if weekday in ("Saturday", "Sunday") else "weekday"]
    return any(x.lower() in text for x in hits)


def contains(reply: str, expect: list[str]) -> bool:
    text = reply.lower()
    return all(any(alt in text for alt in e.lower().split("|")) for e in expect)


def ask(ep: h.Endpoint, prompt: str, skills: bool) -> tuple[dict, float]:
    started = time.monotonic()
    body = {"message": prompt, "temperature": 0, "skills": skills}
    answer = h.http_json(ep, "POST", "/api/chat", body, timeout=900)
    return answer, time.monotonic() - started


def run_cases(ep: h.Endpoint, suite: dict) -> list[dict]:
    rows = []
    for case in suite["cases"]:
        answer, wall = ask(ep, case["prompt"], True)
        calls = [c["name"] for c in answer["tool_calls"]]
        wanted = case.get("skill") or WANTED[case["kind"]]
        row = {"kind": case["kind"], "prompt": case["prompt"], "calls": calls, "seconds": wall,
               "reply": answer["reply"][:240], "prompt_tokens": answer["usage"]["prompt_tokens"],
               "completion_tokens": answer["usage"]["completion_tokens"],
               "called_right": (calls == [] if wanted is None else wanted in calls)}
        if case["kind"] == "clock":
            clock = next((c["result"] for c in answer["tool_calls"] if c["name"] == "clock"), None)
            row["answered"] = bool(clock) and told(answer["reply"], clock)
        elif case["kind"] == "documents":
            row["answered"] = contains(answer["reply"], case["expect"])
        elif case["kind"] == "timers":
            # Set right: the skill ran and what it set says the expected time (and text).
            result = next((c["result"] for c in answer["tool_calls"] if c["name"] == wanted and c["ok"]), "")
            row["answered"] = contains(result, case["expect"])
            row["result"] = result
        else:
            plain, plain_wall = ask(ep, case["prompt"], False)
            row.update(answered=True, plain_seconds=plain_wall, plain_prompt_tokens=plain["usage"]["prompt_tokens"])
        h.log(f"{case['kind']}: {case['prompt'][:40]!r} calls={calls} {wall:.1f}s right={row['called_right']} "
              f"answered={row['answered']}")
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    out = {}
    for kind in WANTED:
        rs = [r for r in rows if r["kind"] == kind]
        out[kind] = {"n": len(rs), "called_right": sum(r["called_right"] for r in rs),
                     "answered": sum(r["answered"] for r in rs),
                     "median_s": statistics.median(r["seconds"] for r in rs)}
    plain = [r for r in rows if r["kind"] == "plain"]
    out["plain"]["median_s_without_skills"] = statistics.median(r["plain_seconds"] for r in plain)
    out["plain"]["prompt_tokens"] = statistics.median(r["prompt_tokens"] for r in plain)
    out["plain"]["prompt_tokens_without_skills"] = statistics.median(r["plain_prompt_tokens"] for r in plain)
    return out


def write_section(record: dict, results: Path) -> None:
    machine, build = record["machine"], record["build"]
    models = record["models"]
    head = "| | " + " | ".join(m["file"] for m in models.values()) + " |"
    lines = [START, "## Skills in Hearth's own chat", "",
             f"`python3 benches/skills.py` on {record['date']} ({record['minutes']} min), build "
             f"`{build.get('git', '?')}` (`{record['binary']}`), {machine['cpu']}, {machine['logical_cpus']} "
             f"logical CPUs, load average at start {' '.join(machine['loadavg_at_start'])} (a shared machine). "
             f"`/api/chat` with the default `[skills]` (clock, search_documents, set_timer, set_reminder, "
             "list_reminders, cancel_reminder; one round), each question in a "
             f"new conversation, temperature 0; suite `benches/skills_suite.json` ({len(record['cases'])} "
             "requests, 3 documents). Raw record: `benches/work/skills.json`.", "",
             head, "|---|" + "---|" * len(models)]

    def cell(kind: str, key: str) -> list[str]:
        return [f"{m['summary'][kind][key]}/{m['summary'][kind]['n']}" for m in models.values()]

    table = [
        ("clock questions: the clock called", cell("clock", "called_right")),
        ("clock questions: the reply tells what it read", cell("clock", "answered")),
        ("document questions: search_documents called", cell("documents", "called_right")),
        ("document questions: the reply has the answer", cell("documents", "answered")),
        ("timer and reminder requests: the right skill called", cell("timers", "called_right")),
        ("timer and reminder requests: set for the time asked", cell("timers", "answered")),
        ("plain questions: no skill called", cell("plain", "called_right")),
        ("median turn, clock question (s)", [f"{m['summary']['clock']['median_s']:.2f}" for m in models.values()]),
        ("median turn, document question (s)", [f"{m['summary']['documents']['median_s']:.2f}" for m in models.values()]),
        ("median turn, plain question, skills on / off (s)",
         [f"{m['summary']['plain']['median_s']:.2f} / {m['summary']['plain']['median_s_without_skills']:.2f}"
          for m in models.values()]),
        ("prompt tokens of a plain question, skills on / off",
         [f"{m['summary']['plain']['prompt_tokens']:.0f} / {m['summary']['plain']['prompt_tokens_without_skills']:.0f}"
          for m in models.values()]),
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in table]
    misses = [f"{k}: {r['kind']} {r['prompt']!r} → calls {r['calls']}, reply {r['reply'][:100]!r}"
              for k, m in models.items() for r in m["rows"] if not (r["called_right"] and r["answered"])]
    if misses:
        lines += ["", "<details><summary>What went wrong</summary>", ""] + [f"- {m}" for m in misses] + ["", "</details>"]
    lines += ["", END]
    report.replace_section(results, START, END, "\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(h.REPO / "target" / "release" / "hearth"))
    ap.add_argument("--models", default="default,1.5b", help="comma-separated: default, 1.5b")
    ap.add_argument("--cache", default=str(Path.home() / ".cache/hearth/models"))
    ap.add_argument("--results", default=str(h.BENCH_DIR / "RESULTS.md"))
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    raw = h.WORK / "skills.json"
    if args.report_only:
        write_section(json.loads(raw.read_text()), Path(args.results))
        return 0
    h.LOGS.mkdir(parents=True, exist_ok=True)
    suite = json.loads((h.BENCH_DIR / "skills_suite.json").read_text())
    binary = Path(args.binary)
    record = {"machine": h.machine(), "build": h.hearth_build_info(), "cases": suite["cases"], "models": {},
              "binary": str(binary.relative_to(h.REPO) if binary.is_relative_to(h.REPO) else binary),
              "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}
    started = time.monotonic()
    for key in args.models.split(","):
        model = Path(args.cache) / MODELS[key]
        if not model.is_file():
            raise h.BenchError(f"model missing: {model} (hearth models pull)")
        server = h.start_hearth(binary, model, None, 4096, f"skills-{key}")
        try:
            upload(server.ep, suite["documents"])
            rows = run_cases(server.ep, suite)
        finally:
            server.stop()
        record["models"][key] = {"file": model.name, "rows": rows, "summary": summary(rows)}
        record["minutes"] = round((time.monotonic() - started) / 60)
        raw.write_text(json.dumps(record, indent=1))
    write_section(record, Path(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
