#!/usr/bin/env bash
# Builds the one ggml that llama.cpp and whisper.cpp share inside the hearth binary.
#
# Both sys crates vendor their own ggml; linking both copies into one program either fails
# (duplicate symbols) or, worse, runs one engine against the other's ggml by luck. So ggml
# is built once, statically, from the source vendored in llama-cpp-sys-2 (the newer copy),
# and both crates link it: llama-cpp-2's `system-ggml-static` feature and whisper-rs-sys's
# WHISPER_USE_SYSTEM_GGML (set, with CMAKE_PREFIX_PATH and the link path, in
# .cargo/config.toml). Run it before `cargo build`; scripts/run.sh and scripts/test.sh do.
#
#   scripts/ggml.sh                      build into target/ggml (skipped when up to date)
#   scripts/ggml.sh -DGGML_CUDA=ON       extra cmake options (Jetson / desktop GPU builds)
#   HEARTH_GGML_JOBS=4 scripts/ggml.sh   parallel compile jobs (default: all cores)
#   HEARTH_GGML_TARGET=aarch64-linux-gnu scripts/ggml.sh
#                                        cross-build for arm64 into target/ggml-aarch64-linux-gnu
#                                        with Debian's aarch64-linux-gnu-gcc (packaging/cross.sh)
#
# Offline: the source comes from cargo's registry cache (`cargo fetch`); nothing else is
# downloaded. When it rebuilds ggml it also cleans the two sys crates so they relink.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="$PWD/target/ggml"
extra=("$@")
cross="${HEARTH_GGML_TARGET:-}"
if [ -n "$cross" ]; then
  # A cross build leaves the host's ggml alone and writes no cargo config: the cross build
  # passes its own link path (packaging/cross.sh).
  prefix="$PWD/target/ggml-$cross"
  extra=(-DCMAKE_SYSTEM_NAME=Linux "-DCMAKE_SYSTEM_PROCESSOR=${cross%%-*}"
         "-DCMAKE_C_COMPILER=$cross-gcc" "-DCMAKE_CXX_COMPILER=$cross-g++" ${extra[@]+"${extra[@]}"})
fi
flags=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=OFF
  # Position-independent for Rust's PIE binaries, but as -fPIE, not -fPIC: -fPIC keeps
  # calls between ggml's own functions interposable, which cost prompt reading ~2% on
  # x86-64 (llama-bench pp512 built both ways from this source: 172.9 vs 169.1 tok/s).
  -DCMAKE_POSITION_INDEPENDENT_CODE=OFF
  "-DCMAKE_C_FLAGS=${CFLAGS:-} -fPIE"
  "-DCMAKE_CXX_FLAGS=${CXXFLAGS:-} -fPIE"
  -DGGML_NATIVE=OFF       # the same portable x86-64-v3 / armv8 baseline llama-cpp-sys-2 builds
  -DGGML_OPENMP=ON
  -DGGML_LLAMAFILE=ON     # without it whisper ran 1.6x slower
  -DGGML_BUILD_TESTS=OFF
  -DGGML_BUILD_EXAMPLES=OFF
  -DGGML_CCACHE=OFF
)

cargo fetch --locked >&2
src=$(cargo metadata --locked --format-version 1 | python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
pkg = [p for p in meta["packages"] if p["name"] == "llama-cpp-sys-2"]
if not pkg:
    sys.exit("ggml: llama-cpp-sys-2 is not in Cargo.lock")
print(os.path.join(os.path.dirname(pkg[0]["manifest_path"]), "llama.cpp", "ggml"))
')
version=$(sed -n 's/^set(GGML_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\))$/\2/p' "$src/CMakeLists.txt" | paste -sd.)
stamp="ggml $version from $src; ${flags[*]} ${extra[*]:-}"

write_cargo_config() {
  [ -z "$cross" ] || return 0
  # Absolute: rustc resolves a relative -L from each crate's folder (see .cargo/config.toml).
  printf '# Written by scripts/ggml.sh; included by .cargo/config.toml.\n[build]\nrustflags = ["-L", "native=%s/lib"]\n' \
    "$prefix" > "$prefix/cargo.toml"
}

if [ -f "$prefix/lib/libggml.a" ] && [ "$(cat "$prefix/.stamp" 2>/dev/null)" = "$stamp" ]; then
  # Kept as it is when present: rewriting the flags would rebuild every crate (a target
  # dir copied from another checkout keeps linking the ggml it was built with).
  [ -f "$prefix/cargo.toml" ] || write_cargo_config
  echo "ggml: $version up to date in $prefix" >&2
  exit 0
fi

echo "ggml: building $version (static, shared by llama.cpp and whisper.cpp) into $prefix" >&2
work="$prefix-build"
rm -rf "$work" "$prefix"
mkdir -p "$work"
# The registry copy is read-only by convention and lacks ggml.pc.in (the crate omits it);
# build from a copy with a minimal one, which cmake only fills in and installs.
cp -r "$src" "$work/src"
cat > "$work/src/ggml.pc.in" <<'EOF'
prefix=@CMAKE_INSTALL_PREFIX@
libdir=${prefix}/lib
includedir=${prefix}/include

Name: ggml
Description: ggml tensor library (shared by llama.cpp and whisper.cpp in hearth)
Version: @GGML_VERSION@
Libs: -L${libdir} -lggml -lggml-base -lggml-cpu
Cflags: -I${includedir}
EOF
jobs="${HEARTH_GGML_JOBS:-$(nproc)}"
cmake -S "$work/src" -B "$work/build" -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
  "${flags[@]}" ${extra[@]+"${extra[@]}"} >"$work/configure.log" 2>&1 \
  || { tail -30 "$work/configure.log" >&2; echo "ggml: cmake configure failed (log: $work/configure.log)" >&2; exit 1; }
cmake --build "$work/build" -j "$jobs" >"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log" >&2; echo "ggml: build failed (log: $work/build.log)" >&2; exit 1; }
cmake --install "$work/build" >/dev/null
printf '%s' "$stamp" > "$prefix/.stamp"
write_cargo_config
rm -rf "$work"

# The sys crates bundle the static ggml into their rlibs: make them pick up this build, in
# every target dir that has them (benches/run.sh builds into its own) and in both profiles
# (`cargo clean -p` alone cleans only the dev one).
dirs=("$PWD/target" "${CARGO_TARGET_DIR:-}" "$PWD/benches/work/target")
[ -z "$cross" ] || dirs=("${CARGO_TARGET_DIR:-}")
for dir in "${dirs[@]}"; do
  if [ -n "$dir" ] && [ -d "$dir" ]; then
    for profile in dev release; do
      CARGO_TARGET_DIR="$dir" cargo clean --quiet --profile "$profile" -p llama-cpp-sys-2 -p whisper-rs-sys \
        ${cross:+--target "${cross%%-*}-unknown-linux-gnu"} \
        2>/dev/null || true
    done
  fi
done
echo "ggml: $version installed in $prefix" >&2
