#!/usr/bin/env bash
# One command: build both sides, run every workload, write benches/RESULTS.md.
#
#   benches/run.sh [--quick] [--only a,b,c,d,e,f] [--model PATH] [--threads N] [--context N]
#                  [--reps N] [--skip-build]
#
# Builds llama.cpp's llama-bench + llama-server offline (benches/build_ref.sh, skipped
# when present) and Hearth (`cargo build --release`, own target dir under benches/work),
# then runs benches/compare.py. See benches/README.md.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
WORK="$BENCH_DIR/work"
MODEL="${HOME}/.cache/hearth/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
THREADS=2
CONTEXT=4096
SKIP_BUILD=0
PASS=()
ORIG_ARGS="$*"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) PASS+=(--quick); shift ;;
        --only) [[ $# -ge 2 ]] || die "--only needs a value"; PASS+=(--only "$2"); shift 2 ;;
        --only=*) PASS+=(--only "${1#*=}"); shift ;;
        --reps) [[ $# -ge 2 ]] || die "--reps needs a number"; PASS+=(--reps "$2"); shift 2 ;;
        --reps=*) PASS+=(--reps "${1#*=}"); shift ;;
        --model) [[ $# -ge 2 ]] || die "--model needs a path"; MODEL="$2"; shift 2 ;;
        --model=*) MODEL="${1#*=}"; shift ;;
        --threads) [[ $# -ge 2 ]] || die "--threads needs a number"; THREADS="$2"; shift 2 ;;
        --threads=*) THREADS="${1#*=}"; shift ;;
        --context) [[ $# -ge 2 ]] || die "--context needs a number"; CONTEXT="$2"; shift 2 ;;
        --context=*) CONTEXT="${1#*=}"; shift ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer"
[[ "$CONTEXT" =~ ^[1-9][0-9]*$ ]] || die "--context must be a positive integer"

command -v python3 >/dev/null || die "python3 not found"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "python3 >= 3.9 needed"
mkdir -p "$WORK/logs"
export PYTHONDONTWRITEBYTECODE=1

# CHILD, cleanup on exit, and step (benches/steps.sh).
source "$BENCH_DIR/steps.sh"

# Model.
if [[ ! -f "$MODEL" ]]; then
    default="${HOME}/.cache/hearth/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if [[ "$MODEL" == "$default" && -f "$REPO/models/fetch.py" ]]; then
        echo "[run.sh] fetching the default model (python3 models/fetch.py default)" >&2
        (cd "$REPO" && python3 models/fetch.py default) || die "model fetch failed"
    fi
    [[ -f "$MODEL" ]] || die "model not found: $MODEL"
fi

if [[ "$SKIP_BUILD" == 0 ]]; then
    # Reference: llama-bench + llama-server (skipped when already built).
    step - "$BENCH_DIR/build_ref.sh"

    # Hearth: own target dir, so this never waits on (or invalidates) the main one.
    command -v cargo >/dev/null || die "cargo not found"
    echo "[run.sh] cargo build --release (CARGO_TARGET_DIR=benches/work/target; log: $WORK/hearth-build.log)" >&2
    start=$(date +%s)
    # The static ggml that llama.cpp and whisper.cpp share (skipped when up to date).
    step "$WORK/ggml-build.log" bash "$REPO/scripts/ggml.sh" \
        || { tail -n 30 "$WORK/ggml-build.log" >&2; die "ggml build failed (log: $WORK/ggml-build.log)"; }
    step "$WORK/hearth-build.log" env -C "$REPO" CARGO_TARGET_DIR="$WORK/target" \
        cargo build --release --bin hearth \
        || { tail -n 30 "$WORK/hearth-build.log" >&2; die "Hearth build failed (log: $WORK/hearth-build.log)"; }
    echo "[run.sh] Hearth built in $(( $(date +%s) - start )) s" >&2
fi
for b in "$WORK/target/release/hearth" "$WORK/llama.cpp-ref/build/bin/llama-bench" \
         "$WORK/llama.cpp-ref/build/bin/llama-server"; do
    [[ -x "$b" ]] || die "missing binary $b (run without --skip-build)"
done

cd "$BENCH_DIR"
rc=0
step - python3 "$BENCH_DIR/compare.py" all --model "$MODEL" --threads "$THREADS" --context "$CONTEXT" \
    --command-line "benches/run.sh${ORIG_ARGS:+ $ORIG_ARGS}" ${PASS[@]+"${PASS[@]}"} || rc=$?
exit "$rc"
