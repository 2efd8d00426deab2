"""Plumbing for benches/compare.py: HTTP with timeouts, SSE streams, server processes
(Hearth and llama-server), peak RSS, the machine description. Python 3.11 stdlib only."""

from __future__ import annotations

import atexit
import http.client
import json
import os
import platform
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK = BENCH_DIR / "work"
LOGS = WORK / "logs"


class BenchError(RuntimeError):
    """A failure that should stop the run with a clear message."""


class StartFailed(BenchError):
    """A server reported that it cannot start; waiting longer will not help."""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes

_CHILDREN: list[subprocess.Popen] = []


def _kill_children() -> None:
    for p in list(_CHILDREN):
        stop_process(p)


def _on_signal(signum, _frame):
    _kill_children()
    raise SystemExit(128 + signum)


atexit.register(_kill_children)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def spawn(cmd: list[str], log_path: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """Starts a child in its own process group; it is killed when this process exits."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env, start_new_session=True)
    if log_path:
        out.close()
    _CHILDREN.append(p)
    return p


def stop_process(p: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the child's process group, SIGKILL after `grace` seconds."""
    if p in _CHILDREN:
        _CHILDREN.remove(p)
    if p.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def clean_env(extra: dict | None = None) -> dict:
    """The environment for servers and tools: no inherited HEARTH_*, OMP_* or GGML_*
    settings, so each side runs with its own defaults unless the harness says otherwise."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HEARTH_", "OMP_", "GOMP_", "GGML_", "LLAMA_"))}
    env.update(extra or {})
    return env


def run_tool(cmd: list[str], timeout: float, log_path: Path) -> str:
    """Runs a command to completion, returning stdout; stderr goes to log_path."""
    with open(log_path, "ab") as err:
        err.write(f"\n$ {' '.join(cmd)}\n".encode())
        err.flush()
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, timeout=timeout,
                               stdin=subprocess.DEVNULL, env=clean_env())
        except subprocess.TimeoutExpired as e:
            raise BenchError(f"{Path(cmd[0]).name} timed out after {timeout:.0f} s (log: {log_path})") from e
    if r.returncode != 0:
        raise BenchError(f"{Path(cmd[0]).name} exited with {r.returncode} (log: {log_path})")
    return r.stdout.decode(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM (peak resident set) of a live process, KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Busy:
    """One CPU-bound process (a Python busy loop) for the contention workload."""

    def __enter__(self):
        self.p = spawn([sys.executable, "-c", "while True: pass"])
        time.sleep(1.0)
        return self

    def __exit__(self, *exc):
        stop_process(self.p, grace=2.0)


# --------------------------------------------------------------------------- HTTP

@dataclass
class Endpoint:
    port: int
    token: str | None = None
    host: str = "127.0.0.1"
    # HTTPS, trusting this CA file (Hearth's local CA); None: plain HTTP.
    ca: str | None = None

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.ca is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=_tls_context(self.ca))

    def headers(self) -> dict:
        h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h


_TLS_CONTEXTS: dict[str, ssl.SSLContext] = {}


def _tls_context(ca: str) -> ssl.SSLContext:
    """One client context per CA file: making one reads the file and costs milliseconds,
    which a per-connection measurement must not count."""
    if ca not in _TLS_CONTEXTS:
        _TLS_CONTEXTS[ca] = ssl.create_default_context(cafile=ca)
    return _TLS_CONTEXTS[ca]


def http_json(ep: Endpoint, method: str, path: str, body: dict | None = None, timeout: float = 30.0) -> dict:
    """One request; returns the decoded JSON body. Raises BenchError on non-2xx."""
    conn = ep.connection(timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=ep.headers())
        resp = conn.getresponse()
        raw = resp.read()
    except (OSError, http.client.HTTPException) as e:
        raise BenchError(f"{method} {path} on port {ep.port}: {e}") from e
    finally:
        conn.close()
    if not 200 <= resp.status < 300:
        raise BenchError(f"{method} {path} -> HTTP {resp.status}: {raw[:300]!r}")
    try:
        return json.loads(raw)
    except ValueError as e:
        raise BenchError(f"{method} {path}: response is not JSON: {raw[:200]!r}") from e


@dataclass
class StreamResult:
    ttft: float | None = None          # seconds from sending the request to the first text
    total: float = 0.0                 # seconds until the stream ended
    chunks: int = 0                    # text-carrying events
    text: str = ""
    first_at: float | None = None      # monotonic time of the first / last text event
    last_at: float | None = None
    usage: dict | None = None
    timings: dict | None = None
    final: dict | None = None          # Hearth's `done` event payload

    @property
    def completion_tokens(self) -> int:
        if self.usage and self.usage.get("completion_tokens") is not None:
            return int(self.usage["completion_tokens"])
        if self.timings and self.timings.get("predicted_n") is not None:
            return int(self.timings["predicted_n"])
        return self.chunks

    def gen_rate(self) -> float | None:
        """Tokens per second after the first token (wall clock, client side)."""
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return None
        return (self.completion_tokens - 1) / (self.last_at - self.first_at)


def _sse_events(resp, deadline: float):
    """Yields (event, data) pairs from a text/event-stream response."""
    event, data = None, []
    while True:
        if time.monotonic() > deadline:
            raise BenchError("stream exceeded its deadline")
        line = resp.readline()
        if not line:
            if data:
                yield event, "\n".join(data)
            return
        line = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


def stream_chat(ep: Endpoint, path: str, body: dict, timeout: float = 600.0) -> StreamResult:
    """POSTs a streaming request and consumes it. Understands both OpenAI chunks
    (`data: {choices:[{delta}]}` ... `data: [DONE]`) and Hearth's native events
    (`event: token` / `event: done` / `event: error`)."""
    res = StreamResult()
    deadline = time.monotonic() + timeout
    conn = ep.connection(min(timeout, 300.0))
    t0 = time.monotonic()
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers=ep.headers())
        resp = conn.getresponse()
        if resp.status != 200:
            raise BenchError(f"POST {path} -> HTTP {resp.status}: {resp.read()[:300]!r}")
        for event, data in _sse_events(resp, deadline):
            if data == "[DONE]":
                break
            try:
                obj = json.loads(data)
            except ValueError:
                continue
            if event == "error" or (isinstance(obj, dict) and "error" in obj and "choices" not in obj):
                raise BenchError(f"stream error from {path}: {data[:300]}")
            text = ""
            if event == "token":
                text = obj.get("text", "")
            elif event == "done":
                res.final = obj
                res.usage = obj.get("usage")
                res.timings = obj.get("timings")
                break
            else:
                for choice in obj.get("choices") or []:
                    text += (choice.get("delta") or {}).get("content") or ""
                if obj.get("usage"):
                    res.usage = obj["usage"]
                if obj.get("timings"):
                    res.timings = obj["timings"]
            if text:
                now = time.monotonic()
                if res.ttft is None:
                    res.ttft = now - t0
                    res.first_at = now
                res.last_at = now
                res.chunks += 1
                res.text += text
    except (OSError, http.client.HTTPException) as e:
        raise BenchError(f"POST {path} on port {ep.port}: {e}") from e
    finally:
        conn.close()
    res.total = time.monotonic() - t0
    return res


# --------------------------------------------------------------------------- servers

@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    ep: Endpoint
    log_path: Path
    peak_rss_kib: int | None = None
    info: dict = field(default_factory=dict)

    def sample_rss(self) -> int | None:
        v = peak_rss_kib(self.proc.pid)
        if v is not None:
            self.peak_rss_kib = max(v, self.peak_rss_kib or 0)
        return self.peak_rss_kib

    def stop(self) -> None:
        self.sample_rss()
        stop_process(self.proc)


def _wait_ready(name: str, proc: subprocess.Popen, log_path: Path, check, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise BenchError(f"{name} exited with {proc.returncode} while starting (log: {log_path})\n{tail}")
        try:
            ready, info, last = check()
            if ready:
                return info
        except StartFailed:
            stop_process(proc)
            raise
        except BenchError as e:
            last = str(e)
        time.sleep(0.5)
    stop_process(proc)
    raise BenchError(f"{name} not ready after {timeout:.0f} s ({last}); log: {log_path}")


def start_hearth(binary: Path, model: Path, threads: int | None, ctx: int, tag: str,
                 extra_args: list[str] | None = None, settings: dict | None = None,
                 timeout: float = 300.0, setup: list[list[str]] | None = None) -> Server:
    """Starts `hearth serve` on a fresh data dir with a bench user and token.
    threads=None leaves Hearth's own default (no --threads). `settings`: extra HEARTH_*
    environment variables. `setup`: hearth commands run on the new data dir first (e.g.
    `encryption enable`); "{data}" in them names the data dir."""
    if not binary.is_file():
        raise BenchError(f"Hearth binary missing: {binary} (run benches/run.sh, which builds it)")
    data = WORK / "hearth-data" / tag
    if data.exists():
        subprocess.run(["rm", "-rf", str(data)], check=True)
    data.mkdir(parents=True)
    # Plain HTTP unless `settings` says otherwise: the chat benchmarks measure the engine
    # (benches/tls.py compares TLS with plain HTTP).
    # No per-user request limit: benchmarks send requests as fast as they can and measure
    # the engine (benches/load.py sets the limits it tests).
    env = clean_env({"HEARTH_CONFIG": "/dev/null", "HEARTH_TLS_MODE": "off", "HEARTH_REQUESTS_PER_MINUTE": "0",
                     "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "info"), **(settings or {})})
    tls = env["HEARTH_TLS_MODE"] != "off"
    log_path = LOGS / f"hearth-{tag}.log"
    log_path.unlink(missing_ok=True)

    def admin(*args: str) -> str:
        r = subprocess.run([str(binary), *args, "--data-dir", str(data)], env=env, timeout=60,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise BenchError(f"hearth {' '.join(args)} failed ({r.returncode}): {r.stderr.decode()[-500:]}")
        return r.stdout.decode()

    for command in setup or []:
        admin(*[c.replace("{data}", str(data)) for c in command])
    admin("users", "add", "bench")
    out = [l.strip() for l in admin("tokens", "create", "--user", "bench").splitlines() if l.strip()]
    if not out:
        raise BenchError("hearth tokens create printed no token")
    token = out[-1]
    port, plain_port = free_port(), free_port()
    cmd = [str(binary), "serve", "--data-dir", str(data), "--model", str(model),
           "--listen", f"127.0.0.1:{port}", "--http-listen", f"127.0.0.1:{plain_port}", "--context-size", str(ctx)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    cmd += list(extra_args or [])
    with open(log_path, "ab") as f:
        f.write(f"$ {' '.join(cmd)}\n".encode())
    proc = spawn(cmd, log_path, env)
    ep = Endpoint(port, token, ca=str(data / "tls" / "ca.crt") if tls else None)

    def check():
        # With TLS on, the plain listener answers health (before and after the CA exists).
        h = http_json(Endpoint(plain_port if tls else port), "GET", "/api/health", timeout=5)
        components = h.get("components") or {}
        m = components.get("model") or {}
        if m.get("state") == "failed":
            raise StartFailed(f"Hearth's model failed to load: {m.get('error')} (log: {log_path})")
        if m.get("state") != "ready":
            return False, h, f"model state {m.get('state')!r}"
        # The speech engines load beside the model and finish after it (piper's voice takes
        # ~2.5 s of CPU on this box): measuring before then would time the start-up, not the
        # appliance. Ready or failed (no voice installed) both mean they are done.
        loading = [k for k in ("speech_to_text", "text_to_speech")
                   if (components.get(k) or {}).get("state") == "loading"]
        return not loading, h, f"{', '.join(loading)} still loading"

    shown = "".join(f", {k}={v}" for k, v in (settings or {}).items())
    log(f"starting Hearth ({tag}, threads={threads if threads is not None else 'default'}{shown}) on :{port}")
    info = _wait_ready("hearth", proc, log_path, check, timeout)
    return Server("hearth", proc, ep, log_path, info=info)


def start_llama_server(binary: Path, model: Path, threads: int, ctx: int, parallel: int,
                       timeout: float = 300.0) -> Server:
    if not binary.is_file():
        raise BenchError(f"llama-server missing: {binary} (benches/build_ref.sh builds it)")
    port = free_port()
    log_path = LOGS / f"llama-server-np{parallel}.log"
    log_path.unlink(missing_ok=True)
    cmd = [str(binary), "-m", str(model), "-t", str(threads), "--parallel", str(parallel),
           "-c", str(ctx * parallel), "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "ab") as f:
        f.write(f"$ {' '.join(cmd)}\n".encode())
    proc = spawn(cmd, log_path, clean_env())
    ep = Endpoint(port)

    def check():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/health")
            r = conn.getresponse()
            body = r.read()
        except OSError as e:
            return False, {}, str(e)
        finally:
            conn.close()
        return r.status == 200, {}, f"HTTP {r.status} {body[:80]!r}"

    log(f"starting llama-server --parallel {parallel} -c {ctx * parallel} -t {threads} on :{port}")
    _wait_ready("llama-server", proc, log_path, check, timeout)
    return Server(f"llama-server-np{parallel}", proc, ep, log_path)


# --------------------------------------------------------------------------- machine

def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cmd(args: list[str], cwd: Path | None = None) -> str:
    try:
        return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30,
                              cwd=cwd).stdout.decode().strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine() -> dict:
    cpuinfo = _read("/proc/cpuinfo")
    model = next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("model name")), "")
    if not model:
        model = platform.processor() or platform.machine()
    cores = {(l1, l2) for l1, l2 in
             ((b.get("physical id"), b.get("core id")) for b in
              (dict((k.strip(), v.strip()) for k, v in (ln.split(":", 1) for ln in blk.splitlines() if ":" in ln))
               for blk in cpuinfo.split("\n\n") if blk.strip())) if l2 is not None}
    flags = next((l.split(":", 1)[1].split() for l in cpuinfo.splitlines() if l.startswith("flags")), [])
    mem_kib = next((int(l.split()[1]) for l in _read("/proc/meminfo").splitlines()
                    if l.startswith("MemTotal:")), 0)
    osr = dict(l.split("=", 1) for l in _read("/etc/os-release").splitlines() if "=" in l)
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "physical_cores": len(cores) or None,
        "simd": " ".join(f for f in ("avx2", "fma", "avx512f", "f16c", "neon", "asimd") if f in flags),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": osr.get("PRETTY_NAME", "").strip('"'),
        "arch": platform.machine(),
        "virtualization": _cmd(["systemd-detect-virt"]) or "unknown",
        "loadavg_at_start": _read("/proc/loadavg").split()[:3],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def hearth_build_info() -> dict:
    sha = _cmd(["git", "rev-parse", "--short=12", "HEAD"], REPO)
    dirty = bool(_cmd(["git", "status", "--porcelain", "--untracked-files=no", "--", "src", "Cargo.toml",
                       "Cargo.lock"], REPO))
    lock = _read(str(REPO / "Cargo.lock"))
    versions = {}
    blocks = lock.split("[[package]]")
    for b in blocks:
        kv = dict((l.split("=", 1)[0].strip(), l.split("=", 1)[1].strip().strip('"'))
                  for l in b.splitlines() if "=" in l and not l.startswith("[") and not l.startswith(" "))
        if kv.get("name") in ("llama-cpp-2", "llama-cpp-sys-2"):
            versions[kv["name"]] = kv.get("version")
    return {"git": (sha + ("-dirty" if dirty else "")) if sha else "unknown", "crates": versions,
            "rustc": _cmd(["rustc", "--version"])}
