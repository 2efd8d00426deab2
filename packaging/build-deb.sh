#!/usr/bin/env bash
# Builds Hearth's Debian package: target/debian/hearth_<version>_<arch>.deb.
#
#   packaging/build-deb.sh [amd64] [--version 0.1.0-2] [--profile dev]
#
# --profile dev packages the development build (dependencies optimized, Hearth's own code
# not): the same files and scripts without a release build, for CI's install test.
# The binary is built on this machine's Debian 12 (glibc 2.36), which is what Debian 12
# and Raspberry Pi OS bookworm ship: the package's `libc6 (>= ...)` dependency, found by
# dpkg-shlibdeps, says so. Shell completions and the man page are made from the CLI
# itself (`hearth completions`, `hearth manpage`). Installs cargo-deb and dpkg-dev
# when missing. arm64 (cross-built) is not done yet: see issue 20.
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
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "build-deb: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "${want:-$arch}" != "$arch" ]; then
  echo "build-deb: building for ${want} on $arch needs the cross toolchain (not yet: issue 20)" >&2
  exit 2
fi

command -v dpkg-shlibdeps >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev >&2
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked >&2
bash scripts/deps.sh
cargo build --locked --profile "$profile"
dir=$profile
[ "$profile" = dev ] && dir=debug
bin=${CARGO_TARGET_DIR:-target}/$dir/hearth

gen=packaging/deb/generated
mkdir -p "$gen"
"$bin" completions bash >"$gen/hearth.bash"
"$bin" completions zsh >"$gen/_hearth"
"$bin" completions fish >"$gen/hearth.fish"
"$bin" manpage | gzip -9n >"$gen/hearth.1.gz"

cargo deb --no-build --locked --profile "$profile" ${version:+--deb-version "$version"} >&2
ls -t "${CARGO_TARGET_DIR:-target}"/debian/hearth_*_"$arch".deb | head -n 1
