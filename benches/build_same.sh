#!/usr/bin/env bash
# Diagnostic: build llama-bench from the llama.cpp that Hearth itself links (the copy vendored
# in llama-cpp-sys-2), so a gap in part a can be split into "llama.cpp version" and "Hearth".
# The crate ships llama.cpp without tools/, so llama-bench's two sources are taken from the
# reference tree (benches/build_ref.sh unpacks it). Output:
# benches/work/llama.cpp-same/build/bin/llama-bench. ~4 min on 2 cores; offline.
#
#   benches/build_same.sh            build (skipped when the binary exists)
#   benches/build_same.sh -fPIC      ggml and llama compiled -fPIC, to compare (build-pic/)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
WORK="$BENCH_DIR/work"
SAME="$WORK/llama.cpp-same"
TOOL_SRC="$WORK/llama.cpp-ref/tools/llama-bench"
JOBS="${JOBS:-$(nproc)}"
log() { printf '[build_same] %s\n' "$*" >&2; }
die() { printf '[build_same] ERROR: %s\n' "$*" >&2; exit 1; }

build="build"
pic=OFF
case "${1:-}" in
    "") ;;
    -fPIC) build="build-pic"; pic=ON ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
esac
[[ -x "$SAME/$build/bin/llama-bench" ]] && { log "present: $SAME/$build/bin/llama-bench"; exit 0; }
[[ -f "$TOOL_SRC/llama-bench.cpp" ]] || die "no $TOOL_SRC (run benches/build_ref.sh first)"

src=$(cd "$REPO" && cargo metadata --locked --format-version 1 | python3 -c '
import json, os, sys
pkg = [p for p in json.load(sys.stdin)["packages"] if p["name"] == "llama-cpp-sys-2"]
sys.exit("llama-cpp-sys-2 is not in Cargo.lock") if not pkg else None
print(os.path.join(os.path.dirname(pkg[0]["manifest_path"]), "llama.cpp"))')
if [[ ! -f "$SAME/tools/llama-bench/llama-bench.cpp" ]]; then
    log "copying $src"
    rm -rf "$SAME"
    cp -r "$src" "$SAME"
    chmod -R u+w "$SAME"
    rm -f "$SAME/.git"
    cp "$TOOL_SRC"/* "$SAME/tools/llama-bench/"
    echo 'add_subdirectory(llama-bench)' >"$SAME/tools/CMakeLists.txt"
fi

export GIT_CEILING_DIRECTORIES="$WORK"
# The same options as the reference build (benches/build_ref.sh) and scripts/ggml.sh.
cmake -S "$SAME" -B "$SAME/$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE="$pic" -DGGML_NATIVE=OFF -DGGML_LLAMAFILE=ON \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMIT=hearth-vendored \
    >"$WORK/same-configure.log" 2>&1 || die "cmake configure failed, see $WORK/same-configure.log"
log "building llama-bench -j$JOBS; log: $WORK/same-build.log"
cmake --build "$SAME/$build" -j"$JOBS" --target llama-bench >"$WORK/same-build.log" 2>&1 \
    || die "build failed, see $WORK/same-build.log"
log "built: $SAME/$build/bin/llama-bench"
