"""Build provenance and the results table for benches/compare.py (stdlib only)."""

from __future__ import annotations

import glob
import hashlib
import json
import random
import re
import statistics
import subprocess
from pathlib import Path

import harness as h

REF_SRC = h.WORK / "llama.cpp-ref"
GOALS = {"single": 0.97, "concurrent": 1.0, "turns": 1.3, "contention": 0.4}


# --------------------------------------------------------------------------- provenance

def _ggml_version(tree: Path) -> str | None:
    try:
        text = (tree / "ggml/CMakeLists.txt").read_text()
    except OSError:
        return None
    parts = [re.search(rf"set\(GGML_VERSION_{k}\s+(\d+)\)", text) for k in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(m.group(1) for m in parts) if all(parts) else None


def _tree_digest(tree: Path) -> tuple[dict, str]:
    files = {}
    for sub in ("src", "include", "ggml/src", "ggml/include"):
        for p in sorted((tree / sub).rglob("*")):
            if p.is_file() and p.suffix in (".c", ".cpp", ".h", ".hpp", ".cu", ".inc"):
                files[str(p.relative_to(tree))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return files, hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def _cargo_lock_version(name: str) -> str | None:
    try:
        lock = (h.REPO / "Cargo.lock").read_text()
    except OSError:
        return None
    m = re.search(rf'name = "{re.escape(name)}"\nversion = "([^"]+)"', lock)
    return m.group(1) if m else None


def ref_build_info() -> dict:
    """Which llama.cpp each side is built from. The reference tree's commit comes from the
    llama-cpp-python CHANGELOG (recorded by build_ref.sh and baked into the binaries);
    the crate's vendored copy carries no commit, so it is identified by crate version,
    ggml version, a digest of its C/C++ sources, and how many files differ from the reference."""
    info: dict = {"reference": {}, "hearth_vendored": {}}
    ref = info["reference"]
    for key, name in (("sdist", "SDIST_VERSION"), ("commit", "SDIST_LLAMA_CPP_COMMIT")):
        try:
            ref[key] = (REF_SRC / name).read_text().strip()
        except OSError:
            ref[key] = None
    ref["ggml"] = _ggml_version(REF_SRC)
    server = REF_SRC / "build/bin/llama-server"
    if server.is_file():
        try:
            out = subprocess.run([str(server), "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=30).stdout.decode(errors="replace")
            ref["version_line"] = next((l.strip() for l in out.splitlines() if l.startswith("version")), None)
        except (OSError, subprocess.TimeoutExpired):
            pass
    ver = _cargo_lock_version("llama-cpp-sys-2")
    crate = info["hearth_vendored"]
    crate["crate"] = f"llama-cpp-sys-2 {ver}" if ver else None
    trees = glob.glob(str(Path.home() / f".cargo/registry/src/*/llama-cpp-sys-2-{ver}/llama.cpp")) if ver else []
    if trees:
        tree = Path(trees[0])
        crate["ggml"] = _ggml_version(tree)
        try:
            vcs = json.loads((tree.parent / ".cargo_vcs_info.json").read_text())
            crate["llama_cpp_rs_git"] = vcs.get("git", {}).get("sha1")
        except (OSError, ValueError):
            pass
        crate["commit"] = "not recorded in the crate"
        if REF_SRC.is_dir():
            a, da = _tree_digest(tree)
            b, db = _tree_digest(REF_SRC)
            differ = sum(1 for k in set(a) | set(b) if a.get(k) != b.get(k))
            crate["source_digest"], ref["source_digest"] = da, db
            crate["files_differing_from_reference"] = f"{differ} of {len(set(a) | set(b))}"
    return info


# --------------------------------------------------------------------------- table

def _f(v, unit="", nd=1):
    if v is None:
        return "—"
    return f"{v:,.{nd}f}{unit}"


def _ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def _verdict(value, goal, higher_is_better=True):
    if value is None or goal is None:
        return "—"
    ok = value >= goal if higher_is_better else value <= goal
    return "PASS" if ok else "FAIL"


def _paired_a(hs, rs):
    """Part a's paired ratios: each Hearth sample over the mean of the llama-bench runs just
    before and after it (compare.py brackets every repetition), which cancels a steady drift."""
    if not hs or not rs or len(rs) != len(hs) + 1 or None in hs or None in rs:
        return None
    return [hs[i] * 2 / (rs[i] + rs[i + 1]) for i in range(len(hs))]


def _paired_b(h, r):
    """Part b's paired ratios: Hearth's round over llama-server's round of the same turn (the two
    take turns, each going first in every other round)."""
    hr = [g.get("aggregate") for g in ((h or {}).get("rounds") or [])]
    rr = [g.get("aggregate") for g in ((r or {}).get("rounds") or [])]
    if not hr or len(hr) != len(rr) or None in hr + rr or 0 in rr:
        return None
    return [x / y for x, y in zip(hr, rr)]


def _paired_or_medians(paired, h, r):
    """(ratio the verdict uses, as shown): the median of the paired ratios, where the samples pair
    up, beside the ratio of the two medians; otherwise the ratio of medians alone."""
    medians = _ratio(h, r)
    if not paired:
        return medians, _f(medians, "×", 2)
    p = statistics.median(paired)
    return p, f"{p:.2f}× paired ({_f(medians, '×', 2)} of medians)"


def rows(data: dict) -> list[list[str]]:
    """[metric, Hearth, reference, Hearth/ref, goal, verdict] per line."""
    P = data.get("parts", {})
    meta = data.get("meta", {})
    sz = meta.get("sizes", {})
    out: list[list[str]] = []

    a = P.get("a") or {}
    ah, ar = a.get("hearth") or {}, a.get("ref") or {}
    if a:
        for key, label in (("pp", f"pp{sz.get('pp')} prompt tok/s"), ("tg", f"tg{sz.get('tg')} generation tok/s")):
            r, shown = _paired_or_medians(_paired_a(ah.get(f"{key}_samples"), ar.get(f"{key}_samples")),
                                          ah.get(key), ar.get(key))
            out.append([f"a. single stream {label}", _f(ah.get(key)), _f(ar.get(key)) + " (llama-bench)",
                        shown, "≥ 0.97×", _verdict(r, GOALS["single"])])

    b = P.get("b") or {}
    bh, br = b.get("hearth") or {}, b.get("ref") or {}
    for n in sorted({*bh, *br}, key=lambda x: int(x)):
        hv, rv = (bh.get(n) or {}).get("aggregate"), (br.get(n) or {}).get("aggregate")
        r, shown = _paired_or_medians(_paired_b(bh.get(n), br.get(n)), hv, rv)
        out.append([f"b. aggregate gen tok/s, {n} stream(s)", _f(hv), _f(rv) + f" (llama-server -np {n})",
                    shown, "≥ 1.0×", _verdict(r, GOALS["concurrent"])])

    c = P.get("c") or {}
    hv1, hn, cr = [(c.get(k) or {}).get("median_ms") for k in ("hearth_v1", "hearth_native", "ref")]
    n_turns = len(next((x for x in (hv1, hn, cr) if x), []))
    for t in [t for t in (1, 5, 10, 20) if t <= n_turns]:
        pick = lambda xs: xs[t - 1] if xs and len(xs) >= t else None  # noqa: E731
        out.append([f"c. TTFT turn {t}, ms, /v1/chat/completions", _f(pick(hv1), nd=0),
                    _f(pick(cr), nd=0) + " (llama-server cache_prompt)", _f(_ratio(pick(hv1), pick(cr)), "×", 2),
                    "lower is better", "—"])
        if hn:
            out.append([f"c. TTFT turn {t}, ms, Hearth /api/chat + conversation_id", _f(pick(hn), nd=0),
                        _f(pick(cr), nd=0), _f(_ratio(pick(hn), pick(cr)), "×", 2), "lower is better", "—"])
    if n_turns:
        last = n_turns
        growth = lambda xs: _ratio(xs[last - 1], xs[0]) if xs and len(xs) >= last else None  # noqa: E731
        for name, xs in (("/v1/chat/completions", hv1), ("/api/chat", hn)):
            g = growth(xs)
            out.append([f"c. TTFT turn {last} / turn 1, Hearth {name}", _f(g, "×", 2), _f(growth(cr), "×", 2),
                        "—", "≤ 1.3×", _verdict(g, GOALS["turns"], higher_is_better=False)])

    srv = data.get("servers") or {}
    mb = meta.get("model_bytes") or 0
    over = lambda kib: (kib * 1024 - mb) / 2**20 if kib else None  # noqa: E731
    if "d" in meta.get("parts", []):
        # Like for like: Hearth started as llama-server is (--parallel N, no speech models),
        # after the same workload (part b's N streams; part c at N = 1).
        nps = sorted((int(k[15:]) for k in srv if k.startswith("llama-server-np")))
        for n in nps[:1] + nps[-1:] if len(nps) > 1 else nps:
            hv, rv = over(srv.get(f"hearth-np{n}")), over(srv.get(f"llama-server-np{n}"))
            out.append([f"d. peak RSS − model file, MiB, parallel {n}", _f(hv, nd=0),
                        _f(rv, nd=0) + f" (llama-server -np {n})", _f(_ratio(hv, rv), "×", 2),
                        "lower is better", "—"])
        hm = over(srv.get("hearth-main"))
        if hm is not None:
            out.append(["d. peak RSS − model file, MiB, Hearth as the appliance runs (part a: default "
                        "parallel, speech engines loaded where installed; the largest of its processes)", _f(hm, nd=0), "—", "—",
                        "lower is better", "—"])

    e = P.get("e") or {}
    eh, er = e.get("hearth") or {}, e.get("ref") or {}
    if e:
        out.append([f"e. gen tok/s quiet (default threads: Hearth {eh.get('threads', '?')}, "
                    f"llama-bench {er.get('threads', '?')})", _f(eh.get("quiet")), _f(er.get("quiet")),
                    _f(_ratio(eh.get("quiet"), er.get("quiet")), "×", 2), "—", "—"])
        out.append(["e. gen tok/s with 1 busy process", _f(eh.get("busy")), _f(er.get("busy")),
                    _f(_ratio(eh.get("busy"), er.get("busy")), "×", 2), "—", "—"])
        out.append(["e. busy / quiet", _f(eh.get("fraction"), "×", 2), _f(er.get("fraction"), "×", 2),
                    _f(_ratio(eh.get("fraction"), er.get("fraction")), "×", 2), "Hearth ≥ 0.4×",
                    _verdict(eh.get("fraction"), GOALS["contention"])])

    f = P.get("f") or {}
    fh, fr = f.get("hearth") or {}, f.get("ref") or {}
    if f:
        out.append([f"f. TTFT, ms, a conversation of {fh.get('prompt_tokens') or fr.get('prompt_tokens')} tokens "
                    "back after 2 others took the sequences (N = 1)", _f(fh.get("ttft_ms"), nd=0),
                    _f(fr.get("ttft_ms"), nd=0) + " (llama-server --cache-ram)",
                    _f(_ratio(fh.get("ttft_ms"), fr.get("ttft_ms")), "×", 2), "lower is better", "—"])
    return out


def table(data: dict) -> str:
    head = ["Metric (median)", "Hearth", "Reference", "Hearth/ref", "Goal", "Result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(data)]
    return "\n".join(lines)


def _version_note(hearth_ggml, ref_ggml) -> str | None:
    try:
        a, b = (tuple(int(x) for x in v.split(".")) for v in (hearth_ggml, ref_ggml))
    except (AttributeError, ValueError):
        return None
    if a == b:
        return None
    newer = "Hearth's" if a > b else "the reference's"
    return (f"the two llama.cpp trees differ (ggml {hearth_ggml} vs {ref_ggml}; {newer} is newer): "
            "part of a gap in a or e may come from llama.cpp itself")


def _kv_table(d: dict) -> str:
    return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in d.items() if v not in (None, "")])


def _round(v):
    if isinstance(v, float):
        return round(v, 2)
    if isinstance(v, list):
        return [_round(x) for x in v]
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    return v


def _interleaving(how) -> str:
    if how == "bracketed":
        return (" (interleaved: llama-bench before the first and after every Hearth repetition; each "
                "repetition on a new Hearth process, as each llama-bench run is a new process)")
    return " (interleaved: llama-bench, then Hearth, in each)" if how else ""


def _details(data: dict) -> list[str]:
    """One compact JSON line per part and side."""
    out = []
    for part, sides in sorted((data.get("parts") or {}).items()):
        for side, v in (sides or {}).items():
            out.append(f"{part}.{side}: {json.dumps(_round(v), separators=(',', ':'))}")
    out.append(f"peak_rss_kib: {json.dumps(data.get('servers'), separators=(',', ':'))}")
    return out


def _noise(data: dict) -> list[str]:
    """Parts a and b with the machine's noise beside them. llama-bench runs before the first
    repetition and after each one (compare.py), so each Hearth sample has a run on either side:
    the paired ratio divides it by their mean, which cancels a steady drift, and consecutive
    llama-bench runs compared with each other (an A/A test) show how far noise alone moves a
    ratio. The interval resamples the repetitions (bootstrap, fixed seed)."""
    a = (data.get("parts") or {}).get("a") or {}
    ah, ar = a.get("hearth") or {}, a.get("ref") or {}
    out = []
    for key in ("pp", "tg"):
        hs, rs = ah.get(f"{key}_samples") or [], ar.get(f"{key}_samples") or []
        paired = _paired_a(hs, rs)
        if not paired:
            continue
        n = len(hs)
        aa = [abs(rs[i + 1] / rs[i] - 1) * 100 for i in range(n)]
        rng, boot = random.Random(0), []
        for _ in range(2000):
            idx = [rng.randrange(n) for _ in range(n)]
            refs = [rs[i] for i in idx] + [rs[i + 1] for i in idx]
            boot.append(statistics.median(hs[i] for i in idx) / statistics.median(refs))
        boot.sort()
        lo, hi = boot[len(boot) // 20], boot[len(boot) * 19 // 20]
        out.append(f"- **{key}**: ratio of medians {statistics.median(hs) / statistics.median(rs):.3f}×, "
                   f"90% interval {lo:.2f}–{hi:.2f}×; median of the {n} paired ratios {statistics.median(paired):.3f}× "
                   f"(range {min(paired):.2f}–{max(paired):.2f}); consecutive llama-bench runs differed by "
                   f"{statistics.median(aa):.1f}% (median), {max(aa):.1f}% at most.")
    if out:
        out = ["Part a: each Hearth sample sits between two llama-bench runs. The paired ratio divides it "
               "by their mean; consecutive llama-bench runs, compared with each other, show what noise alone "
               "does. The table's verdict is the median of the paired ratios (the ratio of medians beside it); "
               "the 90% interval (bootstrap over repetitions) says how far the ratio of medians could move on "
               "this machine.", ""] + out + [""]
    b = (data.get("parts") or {}).get("b") or {}
    lines = []
    for n in sorted(b.get("hearth") or {}, key=int):
        h_side, r_side = b["hearth"][n], (b.get("ref") or {}).get(n)
        ratios = _paired_b(h_side, r_side)
        if ratios:
            hr, rr = ([g["aggregate"] for g in side["rounds"]] for side in (h_side, r_side))
            lines.append(f"- **b, {n} stream(s)**: Hearth {', '.join(f'{x:.1f}' for x in hr)} tok/s; llama-server "
                         f"{', '.join(f'{x:.1f}' for x in rr)}; round by round {', '.join(f'{x:.2f}' for x in ratios)}×")
    if lines:
        out += ["Part b: both servers run at once and take turns, round by round (Hearth first in odd "
                "rounds, llama-server first in even ones); the table shows each side's median round, and its "
                "verdict is the median of the round-by-round ratios.", ""] + lines + [""]
    return ["## The machine's noise", ""] + out if out else []


KEEP_MARKER = "<!-- other benchmarks below: kept when benches/run.sh rewrites this file -->"


def replace_section(path: Path, start: str, end: str, section: str) -> None:
    """Puts `section` (which begins with `start` and ends with `end`) in place of the one in
    RESULTS.md, or appends it after KEEP_MARKER (adding the marker) the first time, so that
    benches/run.sh keeps it."""
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        if KEEP_MARKER not in text:
            text = text.rstrip("\n") + "\n\n" + KEEP_MARKER + "\n"
        text = text.rstrip("\n") + "\n" + section + "\n"
    path.write_text(text)


def write(data: dict, path: Path) -> str:
    """Writes RESULTS.md; returns the table (for printing)."""
    meta = data.get("meta", {})
    m = meta.get("machine", {})
    ref = (meta.get("ref") or {}).get("reference", {})
    ven = (meta.get("ref") or {}).get("hearth_vendored", {})
    hb = meta.get("hearth", {})
    lb = data.get("llama_bench_build") or {}
    tbl = table(data)
    sz = meta.get("sizes", {})
    P = data.get("parts") or {}
    md = [
        "# Hearth vs llama.cpp: benchmark results",
        "",
        f"Produced by `{meta.get('command', 'benches/run.sh')}` on {m.get('date')} "
        f"({'QUICK smoke run: small sizes, few repetitions; not for comparison' if meta.get('quick') else 'full run'}, "
        f"{meta.get('duration_s', '?')} s). Generated file: rerun the command instead of editing it. "
        "How each figure is measured: `benches/README.md`.",
        "",
        f"Model `{Path(meta.get('model', '')).name}` ({(meta.get('model_bytes') or 0):,} bytes), "
        f"threads {meta.get('threads')} (part e: each side's default), context {meta.get('context')} per sequence, "
        f"{sz.get('reps')} repetitions for part a"
        f"{_interleaving((P.get('a') or {}).get('ref', {}).get('interleaved'))}. Parts run: {', '.join(meta.get('parts', []))}. "
        "Ratios are Hearth / reference; for times (TTFT, RSS) lower is better.",
        "",
        tbl,
        "",
        *_noise(data),
    ]
    if data.get("errors"):
        md += ["## Errors", ""] + [f"- part {k}: {e}" for k, v in data["errors"].items() for e in v] + [""]
    md += [
        "## Machine", "",
        _kv_table({"CPU": m.get("cpu"), "logical CPUs": m.get("logical_cpus"), "physical cores": m.get("physical_cores"),
                   "SIMD": m.get("simd"), "RAM": f"{m.get('ram_gib')} GiB", "kernel": m.get("kernel"),
                   "OS": m.get("os"), "virtualization": m.get("virtualization"),
                   "load average at start": " ".join(m.get("loadavg_at_start") or []), "date": m.get("date")}),
        "",
        "## Builds", "",
        _kv_table({
            "Hearth": f"git {hb.get('git')}, {', '.join(f'{k} {v}' for k, v in (hb.get('crates') or {}).items())}, "
                      f"{hb.get('rustc')}, `cargo build --release`",
            "Hearth's llama.cpp (vendored in the crate)":
                f"{ven.get('crate')}; llama.cpp commit {ven.get('commit')}; ggml {ven.get('ggml')}; "
                f"llama-cpp-rs git {ven.get('llama_cpp_rs_git')}; sources digest {ven.get('source_digest')}; "
                f"{ven.get('files_differing_from_reference')} C/C++ files differ from the reference tree",
            "Reference llama.cpp": f"ggml-org/llama.cpp@{ref.get('commit')} (from llama-cpp-python {ref.get('sdist')} "
                                   f"sdist); ggml {ref.get('ggml')}; sources digest {ref.get('source_digest')}; "
                                   f"`{ref.get('version_line')}`; llama-bench build_commit {lb.get('build_commit')}",
            "Note": _version_note(ven.get("ggml"), ref.get("ggml")),
            "Reference build": "cmake Release, static, GGML_NATIVE=OFF, OpenMP (benches/build_ref.sh)",
            "llama-bench backend / CPU": f"{lb.get('backends')} / {lb.get('cpu_info')}",
        }),
        "",
        "## Details", "",
        "Raw samples (tok/s or ms) as measured; the full record is `benches/work/results.json`.",
        "",
        "```",
        *_details(data),
        "```",
        "",
    ]
    # Sections written by other benchmarks (benches/knowledge.rs) follow this marker;
    # they are kept when this file is rewritten.
    old = path.read_text() if path.exists() else ""
    kept = old[old.index(KEEP_MARKER):] if KEEP_MARKER in old else KEEP_MARKER + "\n"
    path.write_text("\n".join(md) + "\n" + kept)
    return tbl
