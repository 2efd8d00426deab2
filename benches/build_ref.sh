#!/usr/bin/env bash
# Build llama.cpp's own llama-bench and llama-server (the reference side of the
# benchmark) offline, from the llama.cpp tree that the PyPI sdist of
# llama-cpp-python carries. Output: benches/work/llama.cpp-ref/build/bin/.
#
# Idempotent: does nothing when both binaries already exist.
# Env: LCP_VERSION (default pinned below), LCP_SDIST (path to the .tar.gz;
# otherwise looked for in benches/work/ and /tmp/lcp-sdist/, then downloaded
# with pip), JOBS (default: nproc).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$BENCH_DIR/work"
REF="$WORK/llama.cpp-ref"
BIN="$REF/build/bin"
# Pinned: llama-cpp-python 0.3.36 vendors ggml-org/llama.cpp@0c1e57098 (its CHANGELOG).
LCP_VERSION="${LCP_VERSION:-0.3.36}"
JOBS="${JOBS:-$(nproc)}"

log() { printf '[build_ref] %s\n' "$*" >&2; }
die() { printf '[build_ref] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -x "$BIN/llama-bench" && -x "$BIN/llama-server" ]]; then
    log "reference binaries present in $BIN (delete $REF to rebuild)"
    exit 0
fi

for tool in cmake c++ tar python3; do
    command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install cmake g++ python3)"
done
mkdir -p "$WORK"

# 1. Locate (or download) the sdist.
SDIST_NAME="llama_cpp_python-$LCP_VERSION.tar.gz"
SDIST="${LCP_SDIST:-}"
if [[ -z "$SDIST" ]]; then
    for cand in "$WORK/sdist/$SDIST_NAME" "/tmp/lcp-sdist/$SDIST_NAME"; do
        [[ -f "$cand" ]] && { SDIST="$cand"; break; }
    done
fi
if [[ -z "$SDIST" ]]; then
    log "downloading llama-cpp-python==$LCP_VERSION sdist with pip"
    mkdir -p "$WORK/sdist"
    python3 -m pip download --no-deps --no-binary :all: "llama-cpp-python==$LCP_VERSION" \
        -d "$WORK/sdist" >"$WORK/sdist-download.log" 2>&1 \
        || die "pip download failed, see $WORK/sdist-download.log (or set LCP_SDIST=/path/$SDIST_NAME)"
    SDIST="$WORK/sdist/$SDIST_NAME"
fi
[[ -f "$SDIST" ]] || die "sdist not found: $SDIST"
log "using $SDIST"

# 2. Extract its vendored llama.cpp into benches/work/llama.cpp-ref (source + build).
if [[ ! -f "$REF/CMakeLists.txt" ]]; then
    tmp="$WORK/.sdist-extract"
    rm -rf "$tmp" && mkdir -p "$tmp"
    tar -xzf "$SDIST" -C "$tmp"
    src="$tmp/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp"
    [[ -d "$src/tools/llama-bench" && -d "$src/tools/server" ]] || die "sdist lacks vendor/llama.cpp/tools"
    rm -rf "$REF"
    mv "$src" "$REF"
    # Record which llama.cpp the sdist says it vendors.
    commit="$(grep -m1 -oE 'llama\.cpp@[0-9a-f]{7,40}' "$tmp/llama_cpp_python-$LCP_VERSION/CHANGELOG.md" | cut -d@ -f2 || true)"
    printf '%s\n' "${commit:-unknown}" >"$REF/SDIST_LLAMA_CPP_COMMIT"
    printf '%s\n' "$LCP_VERSION" >"$REF/SDIST_VERSION"
    rm -rf "$tmp"
    # The tree's .git is a dangling submodule pointer; drop it so cmake's git
    # probe can't pick up Hearth's own repository instead.
    rm -f "$REF/.git"
fi
COMMIT="$(cat "$REF/SDIST_LLAMA_CPP_COMMIT" 2>/dev/null || echo unknown)"

# 3. Configure + build (static, portable x86-64 like the crate's build; no network).
log "configuring (llama.cpp@$COMMIT); log: $WORK/ref-configure.log"
export GIT_CEILING_DIRECTORIES="$WORK"
cmake -S "$REF" -B "$REF/build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_COMMIT="$COMMIT" \
    >"$WORK/ref-configure.log" 2>&1 || die "cmake configure failed, see $WORK/ref-configure.log"
log "building llama-bench llama-server with -j$JOBS (~5-8 min on 2 cores); log: $WORK/ref-build.log"
start=$(date +%s)
cmake --build "$REF/build" -j"$JOBS" --target llama-bench llama-server \
    >"$WORK/ref-build.log" 2>&1 || die "build failed, see tail of $WORK/ref-build.log"
log "built in $(( $(date +%s) - start )) s"
[[ -x "$BIN/llama-bench" && -x "$BIN/llama-server" ]] || die "build finished but binaries missing in $BIN"
