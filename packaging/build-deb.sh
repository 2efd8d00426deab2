#!/usr/bin/env bash
# Builds Hearth's Debian package: target/debian/hearth_<version>_<arch>.deb.
#
#   packaging/build-deb.sh [amd64|arm64] [--version 0.1.0-2] [--profile dev]
#
# --profile dev packages the development build (dependencies optimized, Hearth's own code
# not): the same files and scripts without a release build, for CI's install test.
# The binary is built on this machine's Debian 12 (glibc 2.36), which is what Debian 12
# and Raspberry Pi OS bookworm ship: the package's `libc6 (>= ...)` dependency, found by
# dpkg-shlibdeps, says so. arm64 on an amd64 machine is cross-built with Debian's own
# toolchain (packaging/cross.sh, into target/cross) and packaged against the :arm64
# libraries; the arm64 binary runs here under qemu-user-static for the completions.
# Shell completions and the man page are made from the CLI itself (`hearth completions`,
# `hearth manpage`). Installs cargo-deb and dpkg-dev when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=$(dpkg --print-architecture)
version=""
profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    amd64|arm64) want=$1 ;;
    --version) version=$2; shift ;;
    --profile) profile=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "build-deb: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
command -v dpkg-shlibdeps >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev >&2
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked >&2
deb_args=()
run=()
if [ "${want:-$arch}" = "$arch" ]; then
  bash scripts/deps.sh
  cargo build --locked --profile "$profile"
  dir=$profile
  [ "$profile" = dev ] && dir=debug
  bin=${CARGO_TARGET_DIR:-target}/$dir/hearth
  out=${CARGO_TARGET_DIR:-target}/debian
elif [ "$arch/$want" = amd64/arm64 ]; then
  bin=$(bash packaging/cross.sh --profile "$profile" | tail -n 1)
  export CARGO_TARGET_DIR=$PWD/target/cross
  deb_args=(--target aarch64-unknown-linux-gnu)
  out=$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/debian
  arch=arm64
  command -v qemu-aarch64-static >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >&2
  # Its loader and libraries are the :arm64 ones packaging/cross.sh installed (multiarch).
  run=(qemu-aarch64-static)
else
  echo "build-deb: cannot build for $want on $arch (native, or arm64 on amd64)" >&2
  exit 2
fi

gen=packaging/deb/generated
mkdir -p "$gen"
"${run[@]}" "$bin" completions bash >"$gen/hearth.bash"
"${run[@]}" "$bin" completions zsh >"$gen/_hearth"
"${run[@]}" "$bin" completions fish >"$gen/hearth.fish"
"${run[@]}" "$bin" manpage | gzip -9n >"$gen/hearth.1.gz"

cargo deb --no-build --locked --profile "$profile" ${deb_args[@]+"${deb_args[@]}"} ${version:+--deb-version "$version"} >&2
ls -t "$out"/hearth_*_"$arch".deb | head -n 1
