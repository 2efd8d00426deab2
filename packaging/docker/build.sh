#!/usr/bin/env bash
# The container build stage: builds hearth for Docker's TARGETARCH on the build machine
# and installs the binary at OUT.
#   packaging/docker/build.sh amd64|arm64|"" OUT     ("": this machine's, for builders without TARGETARCH)
# Native when the architectures match (scripts/ggml.sh, then cargo with Debian's rustc-web);
# otherwise arm64 is cross-built on amd64 with packaging/cross.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
host=$(dpkg --print-architecture)
target=${1:-$host} out=${2:?usage: build.sh amd64|arm64 OUT}
# A CA bundle passed as the build secret "ca" (a TLS-inspecting proxy's) for crates.io.
[ -s /run/secrets/ca ] && export CARGO_HTTP_CAINFO=/run/secrets/ca
features=${CARGO_FEATURES:+--features "$CARGO_FEATURES"}
if [ "$target" = "$host" ]; then
  bash scripts/ggml.sh
  cargo build --release --locked $features
  bin=target/release/hearth
  strip=strip
elif [ "$host/$target" = amd64/arm64 ]; then
  bin=$(bash packaging/cross.sh --profile release -- $features | tail -n 1)
  strip=aarch64-linux-gnu-strip
else
  echo "build.sh: cannot build $target on $host (native, or arm64 on amd64)" >&2
  exit 2
fi
# Stripped, as the .deb's is (a third smaller).
install -D -m 0755 "$bin" "$out"
"$strip" --strip-unneeded "$out"
