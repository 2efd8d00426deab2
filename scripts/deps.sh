#!/usr/bin/env bash
# Installs the system packages Hearth needs to build and test on Debian 12 / Ubuntu.
# Idempotent: packages already present are skipped. Uses sudo when not root.
set -euo pipefail

packages=(
  build-essential cmake clang libclang-dev pkg-config               # llama.cpp via bindgen
  libssl-dev                                                         # SQLCipher's libcrypto
  python3 python3-pip python3-venv                                   # model fetcher, test clients
  libespeak-ng-dev espeak-ng-data                                    # text to speech: phonemes
  chromium                                                           # web UI end-to-end tests
  openssl pebble libnss3-tools iproute2                              # TLS tests: s_client, an ACME CA,
                                                                     # a CA in Chromium, network namespaces
  mosquitto mosquitto-clients                                        # MQTT tests: a broker, a subscriber
  prometheus                                                         # promtool check metrics on /metrics
)
# Node.js and npm drive Chromium in the web UI's tests (playwright-core). Skip them when
# a Node.js is already installed some other way (e.g. NodeSource, whose package
# conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "deps: cargo not found. Hearth needs Rust 1.93 or newer (https://rustup.rs)." >&2
  exit 1
fi
# Cargo config `include` (.cargo/config.toml, for the shared ggml) is stable from 1.93.
minor=$(cargo --version | sed -n 's/^cargo 1\.\([0-9]*\).*/\1/p')
if [ -n "$minor" ] && [ "$minor" -lt 93 ]; then
  echo "deps: $(cargo --version) is too old; Hearth needs Rust 1.93 or newer (rustup update)." >&2
  exit 1
fi
echo "deps: ok ($(cargo --version))" >&2

# The one static ggml that llama.cpp and whisper.cpp share (see scripts/ggml.sh).
bash "$(dirname "$0")/ggml.sh"
