#!/usr/bin/env python3
"""Answers from documents (issue 22): does a reply with "Use my documents" say the answer in
words, cite after the claim, and invent no links?

Starts `hearth serve` on a fresh data dir with a bench user and token, uploads the documents
in benches/docqa/docs/ through `POST /api/documents`, waits for their ingest jobs, then asks
each question of benches/docqa/questions.json once on `POST /api/chat` with
`"knowledge": true`, each in a new conversation, one at a time. Per reply it checks:

  contains      every term of the question's `answer` appears (case-insensitive, whole words)
  marker-only   fewer than --min-words (default 1) words are left once citation markers (`[1]`, `[1, 2]`,
                `(from "x.md")`), file names, URLs, punctuation and filler words ("the answer is",
                "see excerpt", "according to the document") are removed; fewer than 3: short
  invented link an http(s)/www URL or web address that appears in none of the documents
  retrieved     the question's document is among the citations (and whether it is first)
  cites         the reply carries a marker [n] of a citation it was given; whether it starts
                with one

  python3 benches/docqa.py [--binary target/debug/hearth] [--model PATH] [--set tuning|held-out|all]
                           [--temperature 0|default] [--seed N] [--label NAME] [--embeddings]
  python3 benches/docqa.py table benches/work/docqa/A.json benches/work/docqa/B.json ...
  python3 benches/docqa.py rescore benches/work/docqa/A.json ...   (the checks again, on stored replies)

Writes benches/work/docqa/<label>.json (summary and every reply). Exits 1 when the set misses
the goal (contains >= 90%, no marker-only reply, no invented link), 2 on a harness error.
See benches/README.md ("Answers from documents").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

DOCQA = h.BENCH_DIR / "docqa"
OUT = h.WORK / "docqa"
DEFAULT_MODEL = Path.home() / ".cache/hearth/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

MARKER = re.compile(r"\[\^?\s*\d+(?:\s*[,;-]\s*\d+)*\s*\]")
# "Excerpt 1", "[Excerpt 2]", "source #3": a marker in words.
NAMED_MARKER = re.compile(r"\b(?:excerpts?|sources?|documents?|references?)\s*#?\d+(?:\s*(?:,|and)\s*\d+)*", re.I)
FROM = re.compile(r"\(?\s*from\s+[\"“'`]?[^\"”'`)\n]*?\.(?:md|txt|pdf|html?|docx?)[\"”'`]?\s*\)?", re.I)
FILE = re.compile(r"[\"“'`]?[\w.-]+\.(?:md|txt|pdf|html?|docx?)\b[\"”'`]?", re.I)
URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'`)\]]+", re.I)
# Web addresses without a scheme (docs.hearth.com/boiler), not IP addresses or file names.
HOST = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:com|org|net|io|co\.uk|uk|info|app|dev)\b(?:/[^\s<>\"'`)\]]*)?", re.I)
# Words that carry no answer: "The answer is [1].", "See excerpt [2] from the document."
FILLER = {"the", "a", "an", "answer", "answers", "is", "are", "see", "in", "from", "of", "to", "according", "based",
          "on", "as", "per", "mentioned", "stated", "above", "below", "here", "it", "this", "that", "my", "your",
          "question", "source", "sources", "reference", "references", "citation", "citations", "excerpt",
          "excerpts", "document", "documents", "number", "provided", "given", "found"}
WORD = re.compile(r"[^\W_]+(?:[.,:'’-][^\W_]+)*", re.UNICODE)

GOAL_CONTAINS = 0.90
# Replies with fewer words of their own than this are counted as short (reported, no goal).
SHORT_WORDS = 3


# --------------------------------------------------------------------------- checks

def term_matches(alternatives: list[str], reply: str) -> bool:
    """One answer term: any alternative, as whole words (a trailing * allows any ending)."""
    for alt in alternatives:
        stem = alt.endswith("*")
        body = re.escape(alt.rstrip("*").lower())
        body = body.replace(r"\ ", r"\s+")  # "9 pm" matches "9\u00a0pm" and "9  pm"
        pattern = r"(?<![\w])" + body + ("" if stem else r"(?![\w])")
        # A number must not be part of a longer number ("5" is not in "1.5" or "5,000").
        if alt[:1].isdigit():
            pattern = r"(?<![\d.,])" + pattern
        if alt.rstrip("*")[-1:].isdigit() and not stem:
            pattern += r"(?![.,]?\d)"
        if re.search(pattern, reply.lower()):
            return True
    return False


def own_words(reply: str) -> list[str]:
    """The reply's words once citation markers, file names, links and source labels are gone."""
    text = URL.sub(" ", reply)
    text = FROM.sub(" ", text)
    text = FILE.sub(" ", text)
    text = NAMED_MARKER.sub(" ", text)
    text = MARKER.sub(" ", text)
    return [w for w in WORD.findall(text) if w.lower() not in FILLER]


def links(text: str) -> list[str]:
    found = [u.rstrip(".,;:!?") for u in URL.findall(text)]
    rest = URL.sub(" ", text)
    found += [u.rstrip(".,;:!?") for u in HOST.findall(rest)]
    return found


def invented_links(reply: str, corpus: str) -> list[str]:
    known = {u.rstrip("/").lower() for u in links(corpus)}
    return [u for u in links(reply) if u.rstrip("/").lower() not in known]


def check(q: dict, reply: str, citations: list[dict], corpus: str, min_words: int) -> dict:
    names = [c.get("document_name") for c in citations]
    words = own_words(reply)
    valid = {int(c["n"]) for c in citations if "n" in c}
    cited = [int(n) for m in MARKER.findall(reply) for n in re.findall(r"\d+", m)]
    return {
        "contains": all(term_matches(t, reply) for t in q["answer"]),
        "own_words": len(words),
        "marker_only": len(words) < min_words,
        "short": len(words) < SHORT_WORDS,
        "invented_links": invented_links(reply, corpus),
        "retrieved": q["document"] in names,
        "retrieved_first": bool(names) and names[0] == q["document"],
        "cites": any(n in valid for n in cited),
        "starts_with_marker": bool(re.match(r"\s*(?:\[\^?\s*\d|\(?from\s)", reply, re.I)),
    }


def last_excerpts(log: Path) -> str:
    """The excerpts of the last prompt the server logged (`--log-prompts`), unescaped."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
    start = text.rfind("prompt with excerpts prompt=")
    if start < 0:
        return ""
    return text[start:].split("My question:", 1)[0]


# --------------------------------------------------------------------------- server

def upload(ep: h.Endpoint, files: list[Path]) -> list[dict]:
    """POST /api/documents as multipart/form-data, one `file` field per document."""
    boundary = f"docqa-{uuid.uuid4().hex}"
    body = b""
    for f in files:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{f.name}\"\r\n"
                 "Content-Type: text/markdown\r\n\r\n").encode() + f.read_bytes() + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    conn = ep.connection(60)
    try:
        headers = {"Authorization": f"Bearer {ep.token}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
        conn.request("POST", "/api/documents", body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    if resp.status != 202:
        raise h.BenchError(f"upload -> HTTP {resp.status}: {raw[:300]!r}")
    return json.loads(raw)["documents"]


def wait_jobs(ep: h.Endpoint, uploaded: list[dict], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    for u in uploaded:
        while True:
            job = h.http_json(ep, "GET", f"/api/jobs/{u['job_id']}")
            if job.get("state") == "done":
                break
            if job.get("state") == "failed":
                raise h.BenchError(f"ingest of {u['document'].get('name')} failed: {job}")
            if time.monotonic() > deadline:
                raise h.BenchError(f"ingest jobs not done after {timeout:.0f} s: {job}")
            time.sleep(0.2)


# --------------------------------------------------------------------------- summary

def summarize(rows: list[dict]) -> dict:
    n = len(rows)
    if n == 0:
        return {"questions": 0}

    def count(key):
        return sum(1 for r in rows if r[key])

    return {
        "questions": n,
        "contains": count("contains"),
        "contains_rate": round(count("contains") / n, 3),
        "marker_only": count("marker_only"),
        "short": count("short"),
        "invented_links": sum(1 for r in rows if r["invented_links"]),
        "retrieved": count("retrieved"),
        "retrieved_first": count("retrieved_first"),
        "cites": count("cites"),
        "starts_with_marker": count("starts_with_marker"),
        "contains_when_retrieved": sum(1 for r in rows if r["contains"] and r["retrieved"]),
        **({"in_excerpts": count("in_excerpts")} if all("in_excerpts" in r for r in rows) else {}),
        "median_completion_tokens": sorted(r["completion_tokens"] for r in rows)[n // 2],
        "median_seconds": round(sorted(r["seconds"] for r in rows)[n // 2], 1),
    }


def passes(s: dict) -> bool:
    return s["questions"] > 0 and s["contains_rate"] >= GOAL_CONTAINS and s["marker_only"] == 0 \
        and s["invented_links"] == 0


def line(name: str, s: dict) -> str:
    return (f"{name}: contains {s['contains']}/{s['questions']} ({100 * s['contains_rate']:.0f}%), "
            f"marker-only {s['marker_only']} (short {s['short']}), invented links {s['invented_links']}, "
            f"retrieved {s['retrieved']}/{s['questions']} (first {s['retrieved_first']}), "
            f"cites {s['cites']}, starts with a marker {s['starts_with_marker']}"
            + (f", answer in the excerpts {s['in_excerpts']}/{s['questions']}" if "in_excerpts" in s else ""))


def rescore(paths: list[str]) -> int:
    """Checks the stored replies of earlier runs again (after a change to the checks)."""
    spec = {q["id"]: q for q in json.loads((DOCQA / "questions.json").read_text())["questions"]}
    corpus = "\n".join(d.read_text() for d in sorted((DOCQA / "docs").glob("*.md")))
    for p in paths:
        r = json.loads(Path(p).read_text())
        for row in r["replies"]:
            citations = [{"n": i, "document_name": name} for i, name in enumerate(row["citations"], 1)]
            row.update(check(spec[row["id"]], row["reply"], citations, corpus, r["min_words"]))
        r["summary"] = {"tuning": summarize([x for x in r["replies"] if not x["held_out"]]),
                        "held_out": summarize([x for x in r["replies"] if x["held_out"]]),
                        "all": summarize(r["replies"])}
        Path(p).write_text(json.dumps(r, indent=2, ensure_ascii=False) + "\n")
        for split, s in r["summary"].items():
            if s["questions"]:
                print(f"{r['label']} {line(split, s)}")
    return 0


def table(paths: list[str]) -> int:
    """A markdown table of the summaries of earlier runs."""
    print("| run | model | temp | set | contains | marker-only (short) | invented links | retrieved (first) | cites [n] | starts with marker | median tokens |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for p in paths:
        r = json.loads(Path(p).read_text())
        for split, s in r["summary"].items():
            if not s.get("questions"):
                continue
            print(f"| {r['label']} ({r['build']['git']}) | {Path(r['model']).name} | {r['temperature']} | {split} "
                  f"| {s['contains']}/{s['questions']} ({100 * s['contains_rate']:.0f}%) | {s['marker_only']} ({s['short']}) "
                  f"| {s['invented_links']} | {s['retrieved']} ({s['retrieved_first']}) | {s['cites']} "
                  f"| {s['starts_with_marker']} | {s['median_completion_tokens']} |")
    return 0


# --------------------------------------------------------------------------- main

def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("table", "rescore"):
        return (table if sys.argv[1] == "table" else rescore)(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(h.REPO / "target" / "debug" / "hearth"))
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--set", choices=("tuning", "held-out", "all"), default="tuning",
                    help="which questions (default: tuning; run held-out only to check a finished prompt)")
    ap.add_argument("--only", help="comma-separated question ids (overrides --set)")
    ap.add_argument("--temperature", type=lambda v: v if v == "default" else float(v), default=0.0,
                    help="0 (default): greedy, one reproducible reply per question; `default`: send none, "
                         "so /api/chat samples with [model]'s settings (0.7, top_p 0.95, top_k 40)")
    ap.add_argument("--seed", type=int, help="sampling seed, for a reproducible run at temperature > 0")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--min-words", type=int, default=1,
                    help="a reply with fewer words of its own is marker-only (default 1: none at all)")
    ap.add_argument("--threads", type=int, help="--threads for hearth serve (default: Hearth's own)")
    ap.add_argument("--embeddings", action="store_true",
                    help="hybrid retrieval with all-minilm-l6-v2 from the model cache (default: BM25, as installed)")
    ap.add_argument("--log-prompts", action="store_true",
                    help="write each prompt with its excerpts to the server's log (benches/work/logs/)")
    ap.add_argument("--label", help="name of the output file (default: from the model, set and time)")
    args = ap.parse_args()

    binary, model = Path(args.binary), Path(args.model)
    if not model.is_file():
        raise h.BenchError(f"model missing: {model} (python3 models/fetch.py default)")
    spec = json.loads((DOCQA / "questions.json").read_text())
    questions = spec["questions"]
    if args.only:
        wanted = set(args.only.split(","))
        questions = [q for q in questions if q["id"] in wanted]
    elif args.set != "all":
        questions = [q for q in questions if bool(q.get("held_out")) == (args.set == "held-out")]
    docs = sorted((DOCQA / "docs").glob("*.md"))
    corpus = "\n".join(d.read_text() for d in docs)
    h.LOGS.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    label = args.label or f"{model.stem}-{args.set}-{time.strftime('%Y%m%d-%H%M%S')}"

    # An empty model cache keeps the speech engines out (they would load beside the chat
    # model); with --embeddings it holds the embedding model only.
    # Each run has its own data dir and cache (named by its label), so that runs may overlap.
    tag = f"docqa-{label}"
    cache = h.WORK / "docqa-cache" / label
    cache.mkdir(parents=True, exist_ok=True)
    for f in cache.iterdir():
        f.unlink()
    settings = {"HEARTH_MODEL_CACHE": str(cache), "HEARTH_AUTO_PULL": "false"}
    if args.log_prompts:
        settings["RUST_LOG"] = "info,hearth::knowledge::retrieve=trace"
    if args.embeddings:
        for name in ("all-minilm-l6-v2-f16.gguf", "all-minilm-l6-v2-f16.gguf.sha256"):
            src = Path.home() / ".cache/hearth/models" / name
            if not src.is_file():
                raise h.BenchError(f"{src} missing (python3 models/fetch.py all-minilm-l6-v2)")
            (cache / name).symlink_to(src)
        settings["HEARTH_EMBEDDING_MODEL"] = "all-minilm-l6-v2"

    load = h._read("/proc/loadavg").split()[:3]
    # The tree's commit when the run starts (a --binary built elsewhere is recorded by its path).
    build = h.hearth_build_info()
    server = h.start_hearth(binary, model, args.threads, 4096, tag, settings=settings)
    rows = []
    started = time.time()
    try:
        uploaded = upload(server.ep, docs)
        wait_jobs(server.ep, uploaded)
        h.log(f"{len(docs)} documents ingested; asking {len(questions)} questions")
        for i, q in enumerate(questions, 1):
            body = {"message": q["question"], "knowledge": True, "max_tokens": args.max_tokens}
            if args.temperature != "default":
                body["temperature"] = args.temperature
            if args.seed is not None:
                body["seed"] = args.seed
            t0 = time.monotonic()
            r = h.http_json(server.ep, "POST", "/api/chat", body, timeout=900)
            seconds = time.monotonic() - t0
            row = {"id": q["id"], "held_out": bool(q.get("held_out")), "document": q["document"],
                   "question": q["question"], "reply": r["reply"],
                   "citations": [c["document_name"] for c in r.get("citations", [])],
                   **check(q, r["reply"], r.get("citations", []), corpus, args.min_words),
                   "prompt_tokens": r["usage"]["prompt_tokens"],
                   "completion_tokens": r["usage"]["completion_tokens"], "seconds": round(seconds, 1)}
            if args.log_prompts:
                excerpts = last_excerpts(h.LOGS / f"hearth-{tag}.log")
                row["excerpts"] = excerpts
                row["in_excerpts"] = all(term_matches(t, excerpts) for t in q["answer"])
            rows.append(row)
            flags = [f"no-{k}" for k in ("contains", "retrieved", "cites") if not row[k]]
            flags += [k.replace("_", "-") for k in ("marker_only", "starts_with_marker") if row[k]]
            flags += ["invented-link"] if row["invented_links"] else []
            flags += ["not-in-excerpts"] if row.get("in_excerpts") is False else []
            h.log(f"[{i}/{len(questions)}] {q['id']}: {'ok' if not flags else ' '.join(flags)} "
                  f"({seconds:.1f} s) {json.dumps(r['reply'][:160])}")
    finally:
        server.stop()

    summary = {"tuning": summarize([r for r in rows if not r["held_out"]]),
               "held_out": summarize([r for r in rows if r["held_out"]]),
               "all": summarize(rows)}
    result = {"label": label, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "model": str(model),
              "binary": str(binary), "build": build, "temperature": args.temperature,
              "seed": args.seed, "max_tokens": args.max_tokens, "min_words": args.min_words,
              "embeddings": args.embeddings, "threads": args.threads, "loadavg_at_start": load,
              "wall_seconds": round(time.time() - started), "machine": h.machine(),
              "summary": summary, "replies": rows}
    out = OUT / f"{label}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    for split, s in summary.items():
        if s["questions"] and (split != "all" or (summary["tuning"]["questions"] and summary["held_out"]["questions"])):
            print(line(split, s))
    print(f"details: {out}")
    return 0 if passes(summary["all"]) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except h.BenchError as e:
        print(f"docqa bench: {e}", file=sys.stderr)
        sys.exit(2)
