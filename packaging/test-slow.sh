#!/usr/bin/env bash
# The packaging tests that do not fit CI's time (CI runs `packaging/test-deb.sh --profile dev`):
#
#   packaging/test-slow.sh [--yocto DIR]
#
#   1. packaging/test-deb.sh            the release amd64 .deb in a booted Debian 12 root
#   2. packaging/test-deb-arm64.sh      the cross-built arm64 .deb under qemu-user
#   3. packaging/test-oci.sh            the container image built with podman and run (amd64),
#      packaging/test-oci.sh --arch arm64  and the arm64 one, cross-built, run under qemu-user
#   4. with --yocto DIR (holding poky and the meta layers, as in packaging/RESULTS.md):
#      yocto/parse-check.sh for qemux86-64, raspberrypi4-64, raspberrypi5, jetson-orin-nano-devkit
# Each runs even when an earlier one failed; the summary (date, commit, result and time of
# each) is what packaging/RESULTS.md records. Needs root. About an hour from cold caches.
set -uo pipefail
cd "$(dirname "$0")/.."
yocto=""
[ "${1:-}" = --yocto ] && yocto=$2
[ "${1:-}" = -h ] || [ "${1:-}" = --help ] && { sed -n '2,13p' "$0"; exit 0; }

summary=()
failed=0
run() {  # run NAME COMMAND...
  local name=$1 start rc
  shift
  echo "==== $name: $*" >&2
  start=$(date +%s)
  "$@"
  rc=$?
  summary+=("$(printf '%-14s %-6s %5d s' "$name" "$([ $rc -eq 0 ] && echo passed || echo FAILED)" $(( $(date +%s) - start )))")
  [ $rc -eq 0 ] || failed=1
}

run deb-amd64 bash packaging/test-deb.sh
run deb-arm64 bash packaging/test-deb-arm64.sh
run oci-amd64 bash packaging/test-oci.sh
run oci-arm64 bash packaging/test-oci.sh --arch arm64
if [ -n "$yocto" ]; then
  id yocto >/dev/null 2>&1 || useradd --create-home yocto   # bitbake refuses root
  copy=$(mktemp -d /var/tmp/hearth-yocto-src.XXXXXX)
  git clone -q . "$copy/hearth" && chown -R yocto: "$copy"
  run yocto-parse runuser -u yocto -- "$copy/hearth/yocto/parse-check.sh" --poky "$yocto/poky" --source "$copy/hearth" \
    --build-dir "$copy/build" --machine qemux86-64 --machine raspberrypi4-64 --machine raspberrypi5 \
    --machine jetson-orin-nano-devkit \
    "$yocto/meta-clang" "$yocto/meta-lts-mixins" "$yocto/meta-raspberrypi" "$yocto/meta-tegra"
  rm -rf "$copy"
fi

echo
echo "packaging/test-slow.sh on $(date -u +%F) at commit $(git rev-parse --short HEAD) ($(nproc) cores):"
printf '  %s\n' "${summary[@]}"
exit $failed
