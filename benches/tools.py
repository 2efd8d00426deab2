#!/usr/bin/env python3
"""Tool calling: how often a model calls the right function with valid, right arguments
(and calls nothing when no function fits), and what a tool turn costs in time.

  accuracy  a fixed suite of 44 requests over 6 functions (benches/tools_suite.json): 36 that
            one function answers, 8 that none does. Each goes to /v1/chat/completions with all
            six tools and `tool_choice: auto` at temperature 0; the 36 again with
            `tool_choice: required`. A call is right when it names the expected function, its
            arguments are valid against the function's schema, and the values the request
            implies are there (city, minutes, recipient, ...).
  time      for one request per function: a plain answer without tools, against a tool turn
            (the call with `tool_choice: required`, then the canned result sent back with
            `tool_choice: none` for the answer): the call is the step a tool turn adds before
            its answer; the whole turn is also set against the plain answer (which is often
            longer: without the tool the model explains what it cannot do). Wall clock at the
            client, tool execution excluded, medians over the six. The result is
            also sent back with `tool_choice: auto`, to count how often the model answers in
            words then (rather than calling again).

Runs each model on its own Hearth process (fresh data dir, TLS off). Writes its section of
benches/RESULTS.md (between `<!-- tools:start -->` and `<!-- tools:end -->`) and the raw
record to benches/work/tools.json.

  python3 benches/tools.py [--binary target/release/hearth] [--models default,1.5b] [--threads N]
  python3 benches/tools.py --report-only     # the section again from benches/work/tools.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
import report  # noqa: E402

START = "<!-- tools:start -->"
END = "<!-- tools:end -->"
MODELS = {
    "default": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
}
SYSTEM = "You are a helpful home assistant. Use a tool when one fits the request."


def valid(value, schema: dict) -> bool:
    """The subset of JSON Schema the suite's tools use."""
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
    }
    if kind and not checks[kind](value):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "minimum" in schema and value < schema["minimum"] or "maximum" in schema and value > schema["maximum"]:
        return False
    if isinstance(value, str) and ("minLength" in schema and len(value) < schema["minLength"]
                                   or "maxLength" in schema and len(value) > schema["maxLength"]):
        return False
    if kind == "array":
        if len(value) < schema.get("minItems", 0):
            return False
        return all(valid(item, schema.get("items", {})) for item in value)
    if kind == "object":
        props = schema.get("properties", {})
        if any(k not in value for k in schema.get("required", [])):
            return False
        if schema.get("additionalProperties") is False and any(k not in props for k in value):
            return False
        return all(valid(v, props[k]) for k, v in value.items() if k in props)
    return True


def values_right(arguments: dict, expect: dict) -> bool:
    """`expect` maps an argument to a value it must equal, or to {"contains": [...]} whose
    strings must all appear in it (case-insensitive; in any item for arrays)."""
    for key, want in expect.items():
        got = arguments.get(key)
        if isinstance(want, dict) and "contains" in want:
            text = " ".join(map(str, got)) if isinstance(got, list) else str(got or "")
            if not all(w.lower() in text.lower() for w in want["contains"]):
                return False
        elif isinstance(want, str):
            if str(got or "").lower() != want.lower():
                return False
        elif got != want:
            return False
    return True


def ask(ep: h.Endpoint, body: dict) -> tuple[dict, float]:
    started = time.monotonic()
    reply = h.http_json(ep, "POST", "/v1/chat/completions", body, timeout=900)
    return reply, time.monotonic() - started


def classify(reply: dict, case: dict, schemas: dict) -> dict:
    """What happened to one request: no_call, wrong_function, invalid_arguments, wrong_values
    or right (for a case that expects a call); right or called (for one that expects none)."""
    message = reply["choices"][0]["message"]
    calls = message.get("tool_calls") or []
    out = {"finish_reason": reply["choices"][0]["finish_reason"], "calls": len(calls),
           "content": (message.get("content") or "")[:200]}
    if calls:
        first = calls[0]["function"]
        out["name"] = first["name"]
        try:
            out["arguments"] = json.loads(first["arguments"])
        except ValueError:
            out["arguments"] = first["arguments"]
    expected = case.get("call")
    if expected is None:
        out["result"] = "called" if calls else "right"
        return out
    if not calls:
        out["result"] = "no_call"
    elif out["name"] != expected:
        out["result"] = "wrong_function"
    elif not isinstance(out["arguments"], dict) or not valid(out["arguments"], schemas[expected]):
        out["result"] = "invalid_arguments"
    elif not values_right(out["arguments"], case.get("expect", {})):
        out["result"] = "wrong_values"
    else:
        out["result"] = "right"
    return out


def messages(prompt: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def accuracy(ep: h.Endpoint, suite: dict) -> dict:
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in suite["tools"]}
    runs = {"auto": [], "required": []}
    for mode in ("auto", "required"):
        for case in suite["cases"]:
            if mode == "required" and case.get("call") is None:
                continue
            body = {"messages": messages(case["prompt"]), "tools": suite["tools"], "tool_choice": mode,
                    "temperature": 0, "max_tokens": 200}
            reply, wall = ask(ep, body)
            result = classify(reply, case, schemas)
            result.update(prompt=case["prompt"], expected=case.get("call"), wall_s=round(wall, 2))
            runs[mode].append(result)
            h.log(f"{mode}: {case['prompt'][:50]!r} -> {result['result']} "
                  f"({result.get('name')} {json.dumps(result.get('arguments'))[:80]})")
    return runs


def summary(runs: dict) -> dict:
    auto, required = runs["auto"], runs["required"]
    calls = [r for r in auto if r["expected"]]
    none = [r for r in auto if not r["expected"]]

    def share(rows, test) -> float:
        return sum(1 for r in rows if test(r)) / len(rows) if rows else 0.0

    named = lambda r: r.get("name") == r["expected"]  # noqa: E731
    valid_args = lambda r: r["calls"] > 0 and r["result"] not in ("invalid_arguments",)  # noqa: E731
    return {
        "auto_right_function": share(calls, named),
        "auto_valid_arguments": share([r for r in calls if r["calls"]], valid_args),
        "auto_right_call": share(calls, lambda r: r["result"] == "right"),
        "auto_no_call_when_none_fits": share(none, lambda r: r["result"] == "right"),
        "auto_overall": share(auto, lambda r: r["result"] == "right"),
        "required_right_function": share(required, named),
        "required_valid_arguments": share(required, valid_args),
        "required_right_call": share(required, lambda r: r["result"] == "right"),
        "counts": {"call_cases": len(calls), "no_call_cases": len(none), "required_cases": len(required)},
        "outcomes_auto": {k: sum(1 for r in auto if r["result"] == k) for k in
                          ("right", "no_call", "wrong_function", "invalid_arguments", "wrong_values", "called")},
    }


def tool_turns(ep: h.Endpoint, suite: dict) -> dict:
    """One case per function: a plain answer against a tool turn."""
    picked, seen = [], set()
    for case in suite["cases"]:
        if case.get("call") and case["call"] not in seen:
            seen.add(case["call"])
            picked.append(case)
    rows = []
    for case in picked:
        plain, plain_wall = ask(ep, {"messages": messages(case["prompt"]), "temperature": 0, "max_tokens": 100})
        first, call_wall = ask(ep, {"messages": messages(case["prompt"]), "tools": suite["tools"],
                                    "tool_choice": "required", "temperature": 0, "max_tokens": 200})
        call = first["choices"][0]["message"]["tool_calls"][0]
        history = messages(case["prompt"]) + [
            first["choices"][0]["message"],
            {"role": "tool", "tool_call_id": call["id"], "content": case.get("result", "done")},
        ]
        answer, answer_wall = ask(ep, {"messages": history, "tools": suite["tools"], "tool_choice": "none",
                                       "temperature": 0, "max_tokens": 100})
        auto, _ = ask(ep, {"messages": history, "tools": suite["tools"], "tool_choice": "auto",
                           "temperature": 0, "max_tokens": 100})
        auto_message = auto["choices"][0]["message"]
        rows.append({
            "prompt": case["prompt"],
            "plain_s": plain_wall, "call_s": call_wall, "answer_s": answer_wall,
            "added_s": call_wall + answer_wall - plain_wall,
            "plain_prompt_tokens": plain["usage"]["prompt_tokens"],
            "tools_prompt_tokens": first["usage"]["prompt_tokens"],
            "call_tokens": first["usage"]["completion_tokens"],
            "call_predicted_per_second": first["timings"]["predicted_per_second"],
            "plain_predicted_per_second": plain["timings"]["predicted_per_second"],
            "plain_tokens": plain["usage"]["completion_tokens"],
            "answer_tokens": answer["usage"]["completion_tokens"],
            "answer": (answer["choices"][0]["message"].get("content") or "")[:160],
            "auto_after_result": "called again" if auto_message.get("tool_calls") else "answered",
            "auto_answer": (auto_message.get("content") or "")[:160],
        })
        h.log(f"turn {case['call']}: plain {plain_wall:.2f} s, call {call_wall:.2f} s, answer {answer_wall:.2f} s")
    return {"rows": rows}


def cold_tools_prompt(ep: h.Endpoint, suite: dict) -> dict:
    """The first tool request after start: the tools block is read once, then reused."""
    body = {"messages": messages("What's the weather in Oslo?"), "tools": suite["tools"],
            "tool_choice": "required", "temperature": 0, "max_tokens": 60}
    reply, wall = ask(ep, body)
    t = reply["timings"]
    return {"wall_s": wall, "prompt_n": t["prompt_n"], "prompt_ms": t["prompt_ms"],
            "prompt_tokens": reply["usage"]["prompt_tokens"]}


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(h.REPO / "target" / "release" / "hearth"))
    ap.add_argument("--models", default="default,1.5b", help="comma-separated: default, 1.5b")
    ap.add_argument("--cache", default=str(Path.home() / ".cache/hearth/models"))
    ap.add_argument("--threads", type=int, default=None, help="inference threads (default: Hearth's own)")
    ap.add_argument("--results", default=str(h.BENCH_DIR / "RESULTS.md"))
    ap.add_argument("--report-only", action="store_true", help="write the section from benches/work/tools.json")
    args = ap.parse_args()
    if args.report_only:
        record = json.loads((h.WORK / "tools.json").read_text())
        write_section(record, Path(args.results))
        return 0
    h.LOGS.mkdir(parents=True, exist_ok=True)
    suite = json.loads((h.BENCH_DIR / "tools_suite.json").read_text())
    binary = Path(args.binary)
    machine, build = h.machine(), h.hearth_build_info()
    record = {"machine": machine, "build": build, "suite_cases": len(suite["cases"]), "models": {},
              "binary": str(binary.relative_to(h.REPO) if binary.is_relative_to(h.REPO) else binary),
              "threads": args.threads, "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}
    started = time.monotonic()
    for key in args.models.split(","):
        model = Path(args.cache) / MODELS[key]
        if not model.is_file():
            raise h.BenchError(f"model missing: {model} (python3 models/fetch.py {model.name.rsplit('-q4', 1)[0]})")
        server = h.start_hearth(binary, model, args.threads, 4096, f"tools-{key}")
        try:
            cold = cold_tools_prompt(server.ep, suite)
            runs = accuracy(server.ep, suite)
            turns = tool_turns(server.ep, suite)
        finally:
            server.stop()
        record["models"][key] = {"file": model.name, "cold": cold, "summary": summary(runs), "runs": runs,
                                 "turns": turns}
        record["minutes"] = round((time.monotonic() - started) / 60)
        (h.WORK / "tools.json").write_text(json.dumps(record, indent=1))
    write_section(record, Path(args.results))
    return 0


def write_section(record: dict, results: Path) -> None:
    machine, build = record["machine"], record["build"]
    lines = [START, "## Tool calling", "",
             f"`python3 benches/tools.py` on {record.get('date', machine['date'])} "
             f"({record.get('minutes', '?')} min), build "
             f"`{build.get('git', '?')}` (`{record.get('binary', 'target/release/hearth')}`), {machine['cpu']}, {machine['logical_cpus']} "
             f"logical CPUs, {machine['os']}, load average at start {' '.join(machine['loadavg_at_start'])} "
             f"(a shared machine: other builds and tests ran meanwhile); threads: "
             f"{record.get('threads') or 'Hearth default'}. Suite: `benches/tools_suite.json`, "
             f"{record['suite_cases']} requests over 6 functions, temperature 0, "
             "all six tools in every request. Raw record: `benches/work/tools.json`.", "",
             "| | " + " | ".join(record["models"][k]["file"] for k in record["models"]) + " |",
             "|---|" + "---|" * len(record["models"])]
    rows = [
        ("auto: right function (36 that need a call)", "auto_right_function"),
        ("auto: arguments valid against the schema (of the calls made)", "auto_valid_arguments"),
        ("auto: right function and right values", "auto_right_call"),
        ("auto: no call when no function fits (8)", "auto_no_call_when_none_fits"),
        ("auto: all 44 right", "auto_overall"),
        ("required: right function (36)", "required_right_function"),
        ("required: arguments valid against the schema", "required_valid_arguments"),
        ("required: right function and right values", "required_right_call"),
    ]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(pct(m["summary"][key]) for m in record["models"].values()) + " |")
    outcomes = lambda m: ", ".join(f"{k} {v}" for k, v in m["summary"]["outcomes_auto"].items() if v)  # noqa: E731
    lines.append("| auto: outcomes | " + " | ".join(outcomes(m) for m in record["models"].values()) + " |")
    lines += ["", "Time a tool turn adds (medians over one request per function; wall clock at the client, "
              "the tool itself excluded; the tools block stays cached between requests, as it does for a "
              "client that keeps sending the same tools):", "",
              "| | " + " | ".join(record["models"][k]["file"] for k in record["models"]) + " |",
              "|---|" + "---|" * len(record["models"])]
    turn_rows = [
        ("**the call: the step a tool turn adds before its answer (s)**", lambda t: f"**{med(t, 'call_s'):.2f}**"),
        ("the answer from the result (s)", lambda t: f"{med(t, 'answer_s'):.2f}"),
        ("the whole tool turn, call + answer (s)", lambda t: f"{statistics.median(r['call_s'] + r['answer_s'] for r in t):.2f}"),
        ("a plain answer to the same request, no tools (s)", lambda t: f"{med(t, 'plain_s'):.2f}"),
        ("tool turn minus plain answer (s)", lambda t: f"{med(t, 'added_s'):+.2f}"),
        ("prompt tokens: plain / with the tools", lambda t: f"{med(t, 'plain_prompt_tokens'):.0f} / "
                                                          f"{med(t, 'tools_prompt_tokens'):.0f}"),
        ("tokens: call / answer / plain answer", lambda t: f"{med(t, 'call_tokens'):.0f} / "
                                                          f"{med(t, 'answer_tokens'):.0f} / {med(t, 'plain_tokens'):.0f}"),
        ("generation tok/s: call (grammar) / plain", lambda t: f"{med(t, 'call_predicted_per_second'):.1f} / "
                                                              f"{med(t, 'plain_predicted_per_second'):.1f}"),
    ]
    for label, fmt in turn_rows:
        lines.append(f"| {label} | " + " | ".join(fmt(m["turns"]["rows"]) for m in record["models"].values()) + " |")
    lines.append("| result sent back with `auto`: answered in words | " + " | ".join(
        f"{sum(r['auto_after_result'] == 'answered' for r in m['turns']['rows'])} of {len(m['turns']['rows'])}"
        for m in record["models"].values()) + " |")
    lines.append("| first tool request after start: prompt tokens read, ms | " + " | ".join(
        f"{m['cold']['prompt_n']}, {m['cold']['prompt_ms']:.0f}" for m in record["models"].values()) + " |")
    lines += ["", END]
    section = "\n".join(lines)
    print(section)
    report.replace_section(results, START, END, section)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except h.BenchError as e:
        print(f"tools bench: {e}", file=sys.stderr)
        sys.exit(2)
