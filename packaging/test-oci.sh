#!/usr/bin/env bash
# Builds Hearth's container image from the repository with podman and runs it, as a user would:
#
#   packaging/test-oci.sh [--arch amd64|arm64] [--keep]
#
# 1. the base image debian:bookworm-slim is made locally when podman has none (no registry is
#    reachable here): debootstrap --variant=minbase, trimmed like Docker's slim images, then
#    `podman import`;
# 2. `podman build --format docker -f packaging/docker/Dockerfile` from the repository (the
#    OCI format would drop the HEALTHCHECK; the build stage compiles hearth, its cargo
#    registry and target/ are cache mounts, so a second build is incremental); the image
#    must be under 150 MB (it is built FROM scratch: about 60 MB), and have no shell;
# 3. the container runs with the SmolLM2 test model mounted in; its HEALTHCHECK (`hearth
#    health`) passes, /api/health answers over HTTPS (checked against the CA in its volume),
#    the process is not root (uid 10001), a user and token made with `podman exec` get a chat
#    answered, text is spoken (Piper, espeak-ng) and heard back (whisper) inside the image, and
#    a new container on the same volume keeps the conversation.
# --arch arm64 (on amd64): the arm64 image, its binary cross-built in the build stage
# (packaging/cross.sh), run under qemu-user-static (binfmt_misc): the same checks, slower.
# Needs root (podman with runc and cgroupfs, as ../shared/RECIPES.md records).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-oci: needs root (podman, debootstrap)" >&2; exit 1; }

step() { echo "== test-oci: $*" >&2; }
fail() { echo "test-oci: FAILED: $*" >&2; exit 1; }
. packaging/debroot.sh

arch=$(dpkg --print-architecture)
keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) fail "unknown argument $1 (see --help)" ;;
  esac
  shift
done
for tool in podman runc debootstrap curl python3; do
  command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >&2
done
model=${HEARTH_TEST_SMALL_MODEL:-$HOME/.cache/hearth/models/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$model" ] || fail "test model missing: python3 models/fetch.py test"

work=$(mktemp -d /var/tmp/hearth-oci-test.XXXXXX)
name=hearth-oci-test-$$
image=localhost/hearth:test-$arch
cleanup() {
  podman --runtime runc rm -f "$name" >/dev/null 2>&1 || true
  podman volume rm -f "$name-data" >/dev/null 2>&1 || true
  [ -n "$keep" ] || podman rmi -f "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# crun fails on this kernel's hybrid cgroups; systemd's cgroup manager is not reachable.
printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n' >"$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf
pod() { podman --runtime runc "$@"; }

base() {  # base ARCH: debian:bookworm-slim-ARCH, imported once from a debootstrap root
  local a=$1 ref=docker.io/library/debian:bookworm-slim-$1
  pod image exists "$ref" && return 0
  step "making $ref from debootstrap (no registry here)"
  local root=$work/base-$a
  debroot_extract "$a" "" "$root"
  # What Docker's slim images leave out: documentation, manuals, translations, apt caches.
  mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
    >"$root/etc/dpkg/dpkg.cfg.d/docker-slim"
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root/etc/resolv.conf"
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  tar -C "$root" -c . | pod import --arch "$a" - "$ref" >/dev/null
  rm -rf "$root"
}

host=$(dpkg --print-architecture)
base "$host"
platform=()
if [ "$arch" != "$host" ]; then
  [ "$host/$arch" = amd64/arm64 ] || fail "--arch $arch on $host: only arm64 on amd64 is cross-built"
  debroot_binfmt "$arch"   # the runtime stage's apt-get runs under qemu-user-static
  base "$arch"
  platform=(--platform "linux/$arch" --build-arg "BUILDPLATFORM=linux/$host")
fi

step "podman build ($arch) from the repository"
start=$(date +%s)
# The build stage runs on this machine's base and cross-compiles; the runtime stage is the
# target's base. (A registry's debian:bookworm-slim is a multi-arch list that does this by itself.)
pod build --format docker --pull=never --network host --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt \
  ${platform[@]+"${platform[@]}"} --build-arg "BUILD_BASE=debian:bookworm-slim-$host" \
  --build-arg "BASE=debian:bookworm-slim-$arch" -f packaging/docker/Dockerfile -t "$image" . \
  >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; fail "podman build"; }
echo "built in $(( $(date +%s) - start )) s" >&2
size=$(pod image inspect --format '{{.Size}}' "$image")
echo "image size: $(( size / 1000000 )) MB ($size bytes)" >&2
[ "$size" -lt 150000000 ] || fail "the image is $size bytes, over 150 MB"
[ "$(pod image inspect --format '{{.Config.User}}' "$image")" = 10001:10001 ] || fail "the image's USER is not 10001"
! pod run --rm --network host --entrypoint /bin/sh "$image" -c true 2>/dev/null || fail "the image has a shell"
[ "$(pod image inspect --format '{{.Architecture}}' "$image")" = "$arch" ] || fail "the image is not $arch"
pod run --rm --network host --entrypoint hearth "$image" --version >&2 || fail "hearth --version in the image"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
plain=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# ONNX Runtime is a native library: the target architecture's build (fetched once).
runtime_dir=$(dirname "$model")
if [ "$arch" != "$host" ]; then
  runtime_dir=$HOME/.cache/hearth/models-aarch64
  [ -f "$runtime_dir/libonnxruntime.so.1.31.1" ] \
    || python3 models/fetch.py onnxruntime --arch aarch64 --dest "$runtime_dir" >&2 \
    || fail "cannot fetch the aarch64 ONNX Runtime"
fi
run() {
  pod run -d --name "$name" --network host -v "$name-data:/var/lib/hearth" \
    -v "$(dirname "$model"):/models:ro" -v "$runtime_dir:/runtime:ro" \
    -e HEARTH_LISTEN="127.0.0.1:$port" -e HEARTH_HTTP_LISTEN="127.0.0.1:$plain" -e HEARTH_THREADS=1 \
    --health-interval disable "$image" --model "/models/$(basename "$model")" >/dev/null
}
wait_ready() {
  for _ in $(seq 1 "${1:-240}"); do
    if curl -fsS "http://127.0.0.1:$plain/api/health" 2>/dev/null | grep -q '"state":"ready"'; then return 0; fi
    [ "$(pod inspect --format '{{.State.Running}}' "$name")" = true ] || { pod logs "$name" >&2; fail "the container stopped"; }
    sleep 1
  done
  pod logs "$name" | tail -30 >&2
  fail "hearth did not become ready"
}

step "run it with the test model mounted in"
start=$(date +%s)
run
wait_ready 600
echo "ready in $(( $(date +%s) - start )) s" >&2
# (no systemd here to time the checks: run the image's HEALTHCHECK once by hand)
pod healthcheck run "$name" >/dev/null || fail "the HEALTHCHECK (hearth health) failed"
pod exec "$name" hearth health --ready >&2 || fail "hearth health --ready"
pid=$(pod inspect --format '{{.State.Pid}}' "$name")
[ "$(stat -c %u "/proc/$pid")" = 10001 ] || fail "the server process runs as uid $(stat -c %u "/proc/$pid")"
pod cp "$name:/var/lib/hearth/tls/ca.crt" "$work/ca.crt"
health=$(curl -fsS --cacert "$work/ca.crt" "https://localhost:$port/api/health")
echo "$health" | grep -q '"mode":"local"' || fail "health over HTTPS: $health"

pod exec "$name" hearth users add alice >/dev/null
token=$(pod exec "$name" hearth tokens create --user alice | tail -n 1)
api() {  # api METHOD PATH [JSON]
  curl -fsS --cacert "$work/ca.crt" -X "$1" "https://localhost:$port$2" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' ${3:+-d "$3"}
}
start=$(date +%s)
reply=$(api POST /api/chat '{"message":"Say hello in three words."}')
conversation=$(echo "$reply" | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["reply"].strip(), r; print(r["conversation_id"])')
echo "chat answered in $(( $(date +%s) - start )) s: $(echo "$reply" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reply"][:80])')" >&2

step "speech in the image: espeak-ng's data, ONNX Runtime and a Piper voice, whisper"
# Piper on ONNX Runtime (loaded from the models folder with the image's C++ runtime) and
# espeak-ng's phonemes speak; whisper.cpp hears it back.
for f in en_US-joe-medium.onnx ggml-tiny.en.bin; do
  [ -f "$(dirname "$model")/$f" ] || fail "$f missing: python3 models/fetch.py piper-joe onnxruntime whisper-tiny-en --hearth target/debug/hearth"
done
speech=(pod exec -e HEARTH_MODEL_CACHE=/models -e HEARTH_ONNXRUNTIME=/runtime/libonnxruntime.so.1.31.1 "$name" hearth)
if [ "$arch" != "$host" ]; then
  # Under qemu-user, ONNX Runtime's cpuinfo reads this x86 host's CPU lists in /sys and
  # crashes (a Debian arm64 chroot does the same once /sys is mounted; without it, it speaks).
  # So here the speech runs in a second container on the same volume with those two files masked.
  speech=(pod run --rm --network host --security-opt mask=/sys/devices/system/cpu/possible:/sys/devices/system/cpu/present
          -v "$name-data:/var/lib/hearth"
          -v "$(dirname "$model"):/models:ro" -v "$runtime_dir:/runtime:ro" -e HEARTH_MODEL_CACHE=/models
          -e HEARTH_ONNXRUNTIME=/runtime/libonnxruntime.so.1.31.1 --entrypoint hearth "$image")
fi
start=$(date +%s)
"${speech[@]}" speak "Hello from the kitchen." -o /var/lib/hearth/hello.wav \
  >"$work/speak.log" 2>&1 || { cat "$work/speak.log" >&2; fail "hearth speak in the image"; }
cat "$work/speak.log" >&2
# ONNX Runtime's PyPI build would start Microsoft's telemetry uploader (it says so when it
# finds no CA bundle, as here): hearth switches it off.
! grep -qi telemetry "$work/speak.log" || fail "ONNX Runtime's telemetry is on"
heard=$("${speech[@]}" transcribe /var/lib/hearth/hello.wav --model whisper-tiny-en) \
  || fail "hearth transcribe in the image"
echo "spoken and heard in $(( $(date +%s) - start )) s" >&2
echo "heard: $heard" >&2
echo "$heard" | grep -qi kitchen || fail "the spoken text came back as: $heard"

step "a new container on the same volume keeps the conversation"
pod rm -f "$name" >/dev/null
run
wait_ready 600
api GET "/api/conversations/$conversation" | grep -q '"messages"' || fail "the conversation is gone"
echo "test-oci: passed ($arch image, $(( size / 1000000 )) MB)"
