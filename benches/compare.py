#!/usr/bin/env python3
"""Hearth vs llama.cpp's own tools, same model, threads and machine, one run.

Parts (see benches/README.md):
  a single      single-stream prompt processing and generation tok/s   vs llama-bench
  b concurrent  aggregate generated tok/s with 1, 2, 4, 8 streaming chats vs llama-server --parallel N
  c turns       time to first token over one growing conversation       vs llama-server cache_prompt
  d rss         peak RSS minus model file size                          vs llama-server
  e contention  generation tok/s with one busy process, / quiet figure  vs llama-bench defaults

Usage: compare.py [all|single|concurrent|turns|rss|contention|report] [--quick] [--only a,c] ...
Normally run through benches/run.sh, which builds both sides first. Python 3.11 stdlib only.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import harness as h
import report

PARTS = {"a": "single", "b": "concurrent", "c": "turns", "d": "rss", "e": "contention", "f": "returning"}
DEFAULT_MODEL = Path.home() / ".cache/hearth/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

TOPICS = ["a lighthouse keeper and a storm", "a robot learning to bake bread", "two rival chess clubs",
          "a lost dog crossing a mountain", "a city built on a whale", "a detective who hates rain",
          "a garden that grows clocks", "the last train before winter", "a violinist on Mars",
          "an island of talking birds", "a thief who steals colours", "a library with no exit",
          "a glacier that remembers", "a fisherman and a comet", "a bakery at the end of time",
          "a map that redraws itself"]

TURNS = ["I want to plan a small vegetable garden behind my house. Where should I start?",
         "The yard gets about six hours of sun. Which vegetables suit that?",
         "How big should the first beds be?", "What soil mix would you use for raised beds?",
         "When should I plant tomatoes in a temperate climate?", "How often should I water them?",
         "What about pests? I'd rather avoid sprays.", "Which companion plants help tomatoes?",
         "Can I grow herbs in the same bed?", "How do I keep a simple planting log?",
         "What tools do I really need as a beginner?", "How should I compost kitchen scraps?",
         "When is the compost ready to use?", "How do I stop weeds without chemicals?",
         "Should I use mulch, and which kind?", "How do I save seeds from this year's plants?",
         "What can I plant in autumn for a winter harvest?", "How do I protect plants from frost?",
         "Give me a short checklist for spring.", "Summarize the whole plan in five bullet points."]

WORDS = ("the river old mill carried seven boats past quiet village while farmers counted sheep under grey "
         "clouds and children ran along stone walls toward market where bakers sold warm bread cheese "
         "apples honey wool lanterns copper pots maps of distant hills before evening bells rang across "
         "valley every traveller paused to listen then walked on slowly through fields of barley").split()


def filler(n_words: int, seed: int) -> str:
    rng = random.Random(seed)
    sentences, count = [], 0
    while count < n_words:
        k = rng.randint(8, 16)
        words = [rng.choice(WORDS) for _ in range(k)]
        sentences.append(" ".join(words).capitalize() + ".")
        count += k
    return " ".join(" ".join(sentences).split()[:n_words]).rstrip(".") + "."


def nonce() -> str:
    return uuid.uuid4().hex[:8]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Bench:
    def __init__(self, args):
        self.args = args
        self.q = args.quick
        self.model = Path(args.model).expanduser().resolve()
        self.threads = args.threads
        self.ctx = args.context
        self.bin_hearth = Path(args.hearth_bin)
        self.bin_bench = Path(args.ref_bin) / "llama-bench"
        self.bin_server = Path(args.ref_bin) / "llama-server"
        self.reps = args.reps or (2 if self.q else 11)
        self.b_rounds = 1 if self.q else 5
        self.pp, self.tg = (128, 32) if self.q else (512, 128)
        self.res: dict = {"parts": {}, "errors": {}, "servers": {}}

    # ------------------------------------------------------------------ Hearth single stream
    def _chat(self, ep, messages, max_tokens, extra=None, timeout=600.0) -> dict:
        body = {"model": "default", "messages": messages, "temperature": 0, "max_tokens": max_tokens}
        body.update(extra or {})
        return h.http_json(ep, "POST", "/v1/chat/completions", body, timeout=timeout)

    def _pp_messages(self, n_words: int):
        # The same notes every time, so the prompt's length varies only with the nonce (a few
        # tokens), which keeps another run's cache from serving it.
        return [{"role": "system", "content": f"Session {nonce()}. You are a helpful assistant."},
                {"role": "user", "content": "Summarize these notes in one sentence.\n\n" + filler(n_words, 1)}]

    def _tg_messages(self, topic: str):
        return [{"role": "system", "content": f"Session {nonce()}. You are a storyteller."},
                {"role": "user", "content": f"Write a very long, detailed story about {topic}. "
                                            "Describe everything at length and do not stop early."}]

    def _one(self, ep, messages, max_tokens) -> tuple[dict, str]:
        """Returns (timings, source): the response's llama-server-style `timings`,
        or wall-clock figures from a streaming request when the server sends none."""
        r = self._chat(ep, messages, max_tokens)
        t = r.get("timings")
        if t and t.get("prompt_ms") is not None and t.get("predicted_ms") is not None:
            t = dict(t)
            t.setdefault("prompt_n", (r.get("usage") or {}).get("prompt_tokens"))
            return t, "timings"
        s = h.stream_chat(ep, "/v1/chat/completions",
                          {"messages": messages, "temperature": 0, "max_tokens": max_tokens, "stream": True,
                           "stream_options": {"include_usage": True}})
        prompt_n = (s.usage or {}).get("prompt_tokens") or (r.get("usage") or {}).get("prompt_tokens")
        return {"prompt_n": prompt_n, "prompt_ms": s.ttft * 1000 if s.ttft else None,
                "prompt_per_second": prompt_n / s.ttft if prompt_n and s.ttft else None,
                "predicted_n": s.completion_tokens, "predicted_per_second": s.gen_rate()}, "wall-clock"

    def _calibrate_words(self, ep, target: int) -> int:
        """Finds a filler length whose whole prompt (template and cached prefix included) is
        a little under `target` tokens on this model, as llama-bench's pp512 fills 512 cells:
        a prompt one token longer makes llama.cpp attend over 768 cells (it pads by 256)."""
        goal = target - 6  # room for the nonce's few tokens of variation
        words = int(goal / 1.4)
        for _ in range(5):
            r = self._chat(ep, self._pp_messages(words), 1)
            got = (r.get("usage") or {}).get("prompt_tokens")
            if not got or goal - 4 <= got <= goal:
                break
            words = max(10, int(words * goal / got) - (1 if got > goal else 0))
        return words

    def single(self) -> tuple[dict, dict]:
        """Part a, interleaved: llama-bench runs once (`-r 1`, after its own warm-up) before the
        first repetition and after every one, so each of Hearth's samples sits between two of
        llama-bench's. A shared machine's speed drifts by 10-30% over minutes (other tenants,
        clocks); interleaving makes both sides see the same drift, and consecutive llama-bench
        runs show how far the machine's own noise moves a ratio (report.py's A/A figures).
        Hearth gets the same protocol as llama-bench: a new process for every sample (a process's
        memory layout can move its speed by a few percent for its whole life), and a warm-up
        prompt of the same size right before the measured one (llama-bench's pp warm-up is a
        full pp run, and its tg run follows its pp runs). Hearth runs as the appliance does:
        default parallel, and the speech engines where their models are installed.
        Returns (reference, Hearth)."""
        ref: dict = {"pp_samples": [], "tg_samples": []}
        pp, tg, src = [], [], set()
        words, peak = None, 0

        def reference(i: int):
            for t in self.llama_bench(["-t", str(self.threads), "-p", str(self.pp), "-n", str(self.tg),
                                       "-r", "1"], "single"):
                key = "pp" if t.get("n_gen", 0) == 0 else "tg"
                ref[key + "_samples"].extend(t.get("samples_ts") or [t.get("avg_ts")])
            h.log(f"  llama-bench run {i + 1}: pp {ref['pp_samples'][-1]:.1f}/s; tg {ref['tg_samples'][-1]:.1f}/s")

        reference(0)
        for i in range(self.reps):
            srv = h.start_hearth(self.bin_hearth, self.model, self.threads, self.ctx, "main")
            try:
                ep = srv.ep
                if words is None:
                    words = self._calibrate_words(ep, self.pp)
                self._one(ep, self._tg_messages("a warm-up"), 8)
                self._one(ep, self._pp_messages(words), 1)  # warm-up, as llama-bench does
                t, s = self._one(ep, self._pp_messages(words), 1)
                pp.append(t.get("prompt_per_second"))
                src.add(s)
                t2, s = self._one(ep, self._tg_messages(TOPICS[i % len(TOPICS)]), self.tg)
                tg.append(t2.get("predicted_per_second"))
                src.add(s)
            finally:
                srv.stop()
                peak = max(peak, srv.peak_rss_kib or 0)
                self.res["servers"]["hearth-main"] = peak
            h.log(f"  hearth run {i + 1}: pp {t.get('prompt_n')} tok {pp[-1] or 0:.1f}/s (cache_n "
                  f"{t.get('cache_n')}); tg {t2.get('predicted_n')} tok {tg[-1] or 0:.1f}/s")
            reference(i + 1)
        ref.update(pp=median(ref["pp_samples"]), tg=median(ref["tg_samples"]), interleaved="bracketed")
        return ref, {"pp_samples": pp, "tg_samples": tg, "pp": median(pp), "tg": median(tg),
                     "prompt_n": t.get("prompt_n"), "predicted_n": t2.get("predicted_n"), "source": sorted(src),
                     "interleaved": True, "instances": self.reps}

    # ------------------------------------------------------------------ llama-bench
    def llama_bench(self, extra: list[str], tag: str) -> list[dict]:
        if not self.bin_bench.is_file():
            raise h.BenchError(f"llama-bench missing: {self.bin_bench} (run benches/build_ref.sh)")
        cmd = [str(self.bin_bench), "-m", str(self.model), "-o", "json", *extra]
        h.log(f"llama-bench {' '.join(extra)}")
        out = h.run_tool(cmd, timeout=1800, log_path=h.LOGS / f"llama-bench-{tag}.log")
        start = out.find("[")
        try:
            data = json.loads(out[start:])
        except ValueError as e:
            raise h.BenchError(f"llama-bench printed no JSON (log: {h.LOGS}/llama-bench-{tag}.log)") from e
        self.res.setdefault("llama_bench_build", {
            "build_commit": data[0].get("build_commit"), "build_number": data[0].get("build_number"),
            "cpu_info": data[0].get("cpu_info"), "backends": data[0].get("backends")})
        return data

    # ------------------------------------------------------------------ concurrency
    def concurrent(self, srv: h.Server, n: int, extra: dict | None = None) -> dict:
        per_client = 1 if self.q else 3
        max_tokens = 32 if self.q else 128
        results, errors = [], []
        lock = threading.Lock()

        def client(c: int):
            for j in range(per_client):
                topic = TOPICS[(c * per_client + j) % len(TOPICS)]
                body = {"messages": [{"role": "system", "content": "You are a helpful storyteller."},
                                     {"role": "user", "content": f"Write a long story about {topic}."}],
                        "temperature": 0, "max_tokens": max_tokens, "stream": True,
                        "stream_options": {"include_usage": True}, **(extra or {})}
                try:
                    r = h.stream_chat(srv.ep, "/v1/chat/completions", body, timeout=900)
                    with lock:
                        results.append(r)
                except h.BenchError as e:
                    with lock:
                        errors.append(str(e))
                    return

        threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(n)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=1800)
        wall = time.monotonic() - t0
        srv.sample_rss()
        if errors:
            raise h.BenchError(f"{srv.name} with {n} clients: {len(errors)} request(s) failed: {errors[0]}")
        tokens = sum(r.completion_tokens for r in results)
        agg = tokens / wall if wall > 0 else None
        h.log(f"  {srv.name} N={n}: {tokens} tokens in {wall:.1f} s = {agg:.1f} tok/s")
        return {"aggregate": agg, "tokens": tokens, "wall_s": wall, "requests": len(results),
                "ttft_median_ms": (median([r.ttft for r in results]) or 0) * 1000}

    def warm(self, srv: h.Server):
        h.stream_chat(srv.ep, "/v1/chat/completions",
                      {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4,
                       "temperature": 0, "stream": True}, timeout=300)

    # ------------------------------------------------------------------ growing conversation
    def n_turns(self) -> int:
        return 5 if self.q else 20

    def conversation_v1(self, srv: h.Server, extra: dict | None = None) -> list[float]:
        """One conversation over /v1/chat/completions, the whole history each turn. TTFT ms per turn."""
        max_tokens = 16 if self.q else 40
        msgs = [{"role": "system", "content": f"Session {nonce()}. You are a patient gardening adviser."}]
        ttfts = []
        for turn in range(self.n_turns()):
            msgs.append({"role": "user", "content": TURNS[turn]})
            body = {"messages": msgs, "temperature": 0, "max_tokens": max_tokens, "stream": True,
                    "stream_options": {"include_usage": True}, **(extra or {})}
            r = h.stream_chat(srv.ep, "/v1/chat/completions", body, timeout=600)
            ttfts.append(r.ttft * 1000 if r.ttft is not None else None)
            msgs.append({"role": "assistant", "content": r.text})
        srv.sample_rss()
        return ttfts

    def conversation_native(self, srv: h.Server) -> list[float]:
        """The same conversation through Hearth's /api/chat with conversation_id."""
        max_tokens = 16 if self.q else 40
        conv, ttfts = None, []
        for turn in range(self.n_turns()):
            msg = TURNS[turn] if turn else f"(session {nonce()}) {TURNS[0]}"
            body = {"message": msg, "stream": True, "temperature": 0, "max_tokens": max_tokens}
            if conv:
                body["conversation_id"] = conv
            r = h.stream_chat(srv.ep, "/api/chat", body, timeout=600)
            if not r.final or not r.final.get("conversation_id"):
                raise h.BenchError("/api/chat stream ended without a done event carrying conversation_id")
            conv = r.final["conversation_id"]
            ttfts.append(r.ttft * 1000 if r.ttft is not None else None)
        srv.sample_rss()
        return ttfts

    def turns(self, fn, *a) -> dict:
        reps = 1 if self.q else 3
        runs = [fn(*a) for _ in range(reps)]
        per_turn = [median([r[i] for r in runs]) for i in range(self.n_turns())]
        return {"runs_ms": runs, "median_ms": per_turn}

    # ------------------------------------------------------------------ returning conversation
    def returning(self, srv: h.Server) -> dict:
        """Part f, on the servers of N = 1: a conversation of ~850 tokens gets its reply, two
        other conversations take the server's sequences, and then it comes back: the time to
        its next first token. Hearth saves it to its disk cache when its sequence is taken;
        llama-server keeps evicted prompts in RAM (`--cache-ram`, 8 GiB by default)."""
        walls, prompt = [], None
        for i in range(1 if self.q else 3):
            msgs = [{"role": "system", "content": f"Session {nonce()}. You are a helpful assistant."},
                    {"role": "user", "content": "Summarize these notes.\n\n" + filler(150 if self.q else 600, i)}]
            r = self._chat(srv.ep, msgs, 16)
            msgs += [{"role": "assistant", "content": r["choices"][0]["message"]["content"]},
                     {"role": "user", "content": "And in one word?"}]
            for topic in ("owls", "tides"):
                self._chat(srv.ep, [{"role": "user", "content": f"Say something about {topic} ({nonce()})."}], 4)
            time.sleep(1)  # Hearth writes its disk cache on a thread of its own
            t0 = time.monotonic()
            r = self._chat(srv.ep, msgs, 1)
            walls.append((time.monotonic() - t0) * 1000)
            prompt = (r.get("usage") or {}).get("prompt_tokens")
            h.log(f"  {srv.name}: returning conversation of {prompt} tokens, first token in {walls[-1]:.0f} ms "
                  f"(cache_n {(r.get('timings') or {}).get('cache_n')})")
        return {"ttft_ms": median(walls), "samples_ms": walls, "prompt_tokens": prompt}

    # ------------------------------------------------------------------ contention
    def contention_ref(self) -> dict:
        n, r = ("16", "1") if self.q else ("64", "3")
        quiet = self.llama_bench(["-n", n, "-p", "0", "-r", r], "quiet")[0]
        with h.Busy():
            busy = self.llama_bench(["-n", n, "-p", "0", "-r", r], "busy")[0]
        q, b = median(quiet["samples_ts"]), median(busy["samples_ts"])
        return {"quiet": q, "busy": b, "fraction": b / q if q else None, "threads": quiet.get("n_threads"),
                "quiet_samples": quiet["samples_ts"], "busy_samples": busy["samples_ts"]}

    def contention_hearth(self, srv: h.Server) -> dict:
        n = 16 if self.q else 64
        reps = 1 if self.q else 3
        self._one(srv.ep, self._tg_messages("a warm-up"), 8)

        def runs():
            return [self._one(srv.ep, self._tg_messages(TOPICS[i]), n)[0].get("predicted_per_second")
                    for i in range(reps)]

        quiet = runs()
        with h.Busy():
            busy = runs()
        q, b = median(quiet), median(busy)
        return {"quiet": q, "busy": b, "fraction": b / q if q and b else None,
                "threads": ((srv.info.get("components") or {}).get("model") or {}).get("threads"),
                "quiet_samples": quiet, "busy_samples": busy}

    # ------------------------------------------------------------------ orchestration
    def part(self, key: str, fn, *a, **kw):
        """Runs one measurement; a failure is recorded and the rest of the run goes on."""
        try:
            return fn(*a, **kw)
        except h.BenchError as e:
            h.log(f"ERROR in part {key}: {e}")
            self.res["errors"].setdefault(key, []).append(str(e))
            return None

    def run(self, only: set[str]):
        P = self.res["parts"]
        ns = [1, 2] if self.q else [1, 2, 4, 8]
        if "e" in only:
            P.setdefault("e", {})["ref"] = self.part("e", self.contention_ref)

        if "a" in only:
            a = self.part("a", self.single)
            if a:
                P.setdefault("a", {}).update(ref=a[0], hearth=a[1])

        if only & {"b", "c", "d", "f"}:
            # Hearth is configured like llama-server --parallel N, and like it without speech
            # models (an empty model cache), so that b compares the same batching and d the same
            # process. Both sides run at once for each N and take turns, so that both see the
            # same drift.
            no_voice = h.WORK / "empty-model-cache"
            no_voice.mkdir(parents=True, exist_ok=True)
            for n in (ns if "b" in only else [1]):
                self.serve_pair(n, only, no_voice)

        if "e" in only:
            srv = self.part("e", h.start_hearth, self.bin_hearth, self.model, None, self.ctx, "default-threads")
            if srv:
                try:
                    P.setdefault("e", {})["hearth"] = self.part("e", self.contention_hearth, srv)
                finally:
                    srv.stop()
                    self.res["servers"]["hearth-default-threads"] = srv.peak_rss_kib

    def serve_pair(self, n: int, only: set[str], no_voice: Path):
        """Parts b (N streams), c (at N = 1) and d, with Hearth and llama-server both started
        for N parallel requests (one idles while the other is measured). Part b alternates the
        sides over a few rounds (Hearth first, then llama-server first, ...), so that both see
        the same drift; each side's figure is the median of its rounds."""
        P = self.res["parts"]
        settings = {"HEARTH_PARALLEL": str(n), "HEARTH_MODEL_CACHE": str(no_voice)}
        servers = {
            "hearth": self.part("hearth", h.start_hearth, self.bin_hearth, self.model, self.threads, self.ctx,
                                f"np{n}", settings=settings),
            "ref": self.part("ref", h.start_llama_server, self.bin_server, self.model, self.threads, self.ctx, n),
        }
        live = {side: srv for side, srv in servers.items() if srv}
        try:
            if "b" in only:
                for srv in live.values():
                    self.part("b", self.warm, srv)
                rounds: dict = {side: [] for side in live}
                for r in range(self.b_rounds):
                    for side in (list(live) if r % 2 == 0 else list(reversed(live))):
                        got = self.part("b", self.concurrent, live[side], n)
                        if got:
                            rounds[side].append(got)
                for side, got in rounds.items():
                    if got:
                        P.setdefault("b", {}).setdefault(side, {})[n] = {
                            "aggregate": median([g["aggregate"] for g in got]), "rounds": got}
            if n == 1 and "c" in only:
                c = P.setdefault("c", {})
                if "hearth" in live:
                    c["hearth_v1"] = self.part("c", self.turns, self.conversation_v1, live["hearth"])
                    c["hearth_native"] = self.part("c", self.turns, self.conversation_native, live["hearth"])
                if "ref" in live:
                    c["ref"] = self.part("c", self.turns, self.conversation_v1, live["ref"], {"cache_prompt": True})
            if n == 1 and "f" in only:
                for side, srv in live.items():
                    P.setdefault("f", {})[side] = self.part("f", self.returning, srv)
            if not only & {"b", "c", "f"}:
                for srv in live.values():
                    self.part("d", self.warm, srv)
        finally:
            for side, srv in live.items():
                srv.stop()
                self.res["servers"][f"hearth-np{n}" if side == "hearth" else f"llama-server-np{n}"] = srv.peak_rss_kib


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="all",
                    choices=["all", "report", *PARTS.values()])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context", type=int, default=4096)
    ap.add_argument("--quick", action="store_true", help="short smoke run: fewer, smaller requests")
    ap.add_argument("--reps", type=int, default=0,
                    help="part a's repetitions (default 11; 2 with --quick)")
    ap.add_argument("--only", default="", help="comma-separated parts: a,b,c,d,e,f (or their names)")
    ap.add_argument("--hearth-bin", default=str(h.WORK / "target/release/hearth"))
    ap.add_argument("--ref-bin", default=str(h.WORK / "llama.cpp-ref/build/bin"))
    ap.add_argument("--results", default=str(h.BENCH_DIR / "RESULTS.md"))
    ap.add_argument("--json", default=str(h.WORK / "results.json"))
    ap.add_argument("--command-line", default="", help="how the run was started (for RESULTS.md)")
    args = ap.parse_args(argv)

    if args.command == "report":
        data = json.loads(Path(args.json).read_text())
        print(report.write(data, Path(args.results)))
        return 0

    names = {v: k for k, v in PARTS.items()}
    if args.command != "all":
        only = {names[args.command]}
    elif args.only:
        only = set()
        for p in args.only.split(","):
            p = p.strip()
            if p in PARTS:
                only.add(p)
            elif p in names:
                only.add(names[p])
            elif p:
                ap.error(f"unknown part '{p}' (use a,b,c,d,e,f or {','.join(names)})")
    else:
        only = set(PARTS)

    model = Path(args.model).expanduser()
    if not model.is_file():
        print(f"error: model not found: {model} (python3 models/fetch.py default)", file=sys.stderr)
        return 2
    h.LOGS.mkdir(parents=True, exist_ok=True)
    bench = Bench(args)
    bench.res["meta"] = {
        "machine": h.machine(), "hearth": h.hearth_build_info(), "ref": report.ref_build_info(),
        "model": str(bench.model), "model_bytes": bench.model.stat().st_size,
        "threads": args.threads, "context": args.context, "quick": args.quick, "parts": sorted(only),
        "command": args.command_line or "benches/compare.py " + " ".join(argv or sys.argv[1:]),
        "sizes": {"pp": bench.pp, "tg": bench.tg, "reps": bench.reps, "b_rounds": bench.b_rounds},
    }
    t0 = time.monotonic()
    try:
        bench.run(only)
    except BaseException:
        # Interrupted: keep what was measured without replacing the last complete record.
        bench.res["meta"]["interrupted"] = True
        Path(args.json).with_suffix(".interrupted.json").write_text(json.dumps(bench.res, indent=1, default=str))
        raise
    bench.res["meta"]["duration_s"] = round(time.monotonic() - t0)
    Path(args.json).write_text(json.dumps(bench.res, indent=1, default=str))
    print(report.write(json.loads(json.dumps(bench.res, default=str)), Path(args.results)))
    if bench.res["errors"]:
        print(f"\n{sum(len(v) for v in bench.res['errors'].values())} error(s); see above and {h.LOGS}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
