#!/usr/bin/env bash
# Cross-builds Hearth for arm64 (Raspberry Pi 4/5, Jetson) on an amd64 Debian 12 machine,
# with Debian's own tools only: rustc-web/cargo-web 1.96 and libstd-rust-web-dev:arm64 from
# bookworm-security, gcc/g++-aarch64-linux-gnu, and the :arm64 libraries Hearth links
# (libespeak-ng, libgomp). No rustup target or other download is needed.
#
#   packaging/cross.sh [--profile release|dev] [--deps-only] [-- CARGO_ARGS...]
#
# Installs what is missing (apt, with sudo when not root), builds the shared static ggml for
# aarch64 (scripts/ggml.sh with HEARTH_GGML_TARGET), then `cargo build --target
# aarch64-unknown-linux-gnu` into target/cross. Prints the binary's path on stdout.
#
# The binary links glibc 2.36 (Debian 12, Raspberry Pi OS bookworm, and Ubuntu 22.04+ for
# Jetson's L4T 36 all have it or newer). ggml is built for the armv8.0-a baseline, so one
# binary runs on a Pi 4 (Cortex-A72) as well as on a Pi 5 or a Jetson Orin; set
# HEARTH_ARM_ARCH=armv8.2-a+dotprod+fp16 for a build that only runs on the newer cores and
# reads prompts faster there.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
deps_only=""
cargo_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift ;;
    --deps-only) deps_only=1 ;;
    --) shift; cargo_args=("$@"); break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "cross: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

gnu=aarch64-linux-gnu
rust_target=aarch64-unknown-linux-gnu
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# What the cross build needs, by Debian package name.
packages=(rustc-web cargo-web "libstd-rust-web-dev:arm64" "gcc-$gnu" "g++-$gnu"
          "libespeak-ng-dev:arm64" "libgomp1:arm64" "libssl-dev:arm64" cmake clang libclang-dev pkg-config python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "cross: installing ${missing[*]}" >&2
  dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

[ -z "$deps_only" ] || exit 0

# Debian's rustc-web puts rustc and cargo in /usr/bin; a rustup toolchain earlier on PATH
# has no arm64 standard library, so this build uses Debian's explicitly.
export PATH="/usr/bin:/bin:/usr/sbin:/sbin"
export RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo
[ -d "/usr/lib/rustlib/$rust_target" ] \
  || { echo "cross: /usr/lib/rustlib/$rust_target is missing (apt install libstd-rust-web-dev:arm64)" >&2; exit 1; }

export CARGO_TARGET_DIR="$PWD/target/cross"
ggml="$PWD/target/ggml-$gnu"
arm_arch="${HEARTH_ARM_ARCH:-}"
HEARTH_GGML_TARGET=$gnu bash scripts/ggml.sh ${arm_arch:+"-DGGML_CPU_ARM_ARCH=$arm_arch"}

# The sys crates' cmake builds find the arm64 ggml here (this overrides .cargo/config.toml's
# [env], which names the host's), and rustc links it from here (target rustflags replace
# build.rustflags, the host's -L).
export CMAKE_PREFIX_PATH="$ggml"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="$gnu-gcc"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-L native=$ggml/lib"
export CC_aarch64_unknown_linux_gnu="$gnu-gcc" CXX_aarch64_unknown_linux_gnu="$gnu-g++"
export AR_aarch64_unknown_linux_gnu="$gnu-ar"
export PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_PATH="/usr/lib/$gnu/pkgconfig"
# SQLCipher (libsqlite3-sys, bundled-sqlcipher) links the arm64 libcrypto; Debian keeps its
# arch-specific header (openssl/configuration.h) under /usr/include/$gnu, which the cross gcc
# does not search by itself.
export AARCH64_UNKNOWN_LINUX_GNU_OPENSSL_LIB_DIR="/usr/lib/$gnu"
export AARCH64_UNKNOWN_LINUX_GNU_OPENSSL_INCLUDE_DIR="/usr/include/$gnu"
# bindgen (llama.cpp and whisper.cpp headers) parses with clang for the target.
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--target=$gnu -I/usr/$gnu/include"

/usr/bin/cargo build --locked --target "$rust_target" --profile "$profile" ${cargo_args[@]+"${cargo_args[@]}"} >&2
dir=$profile
[ "$profile" = dev ] && dir=debug
echo "$CARGO_TARGET_DIR/$rust_target/$dir/hearth"
