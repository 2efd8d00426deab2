#!/usr/bin/env bash
# Installs the cross-built arm64 .deb into a clean arm64 Debian 12 root on an amd64 machine
# and runs it there under qemu-user-static (binfmt_misc), as on a Raspberry Pi:
#
#   packaging/test-deb-arm64.sh [PATH_arm64.deb]   (default: packaging/build-deb.sh arm64)
#
# 1. a fresh arm64 bookworm root (debootstrap --variant=minbase, cached as a tarball under
#    ~/.cache/hearth/debroot/), `apt-get install ./hearth_*_arm64.deb` pulling its arm64
#    dependencies from Debian's archive;
# 2. the package's files, user and data dir are checked and `hearth --version` runs;
# 3. the unit's ExecStart runs as user hearth with the unit's environment (systemd itself
#    cannot boot under qemu-user: its seccomp filters are for the emulated architecture),
#    /api/health answers over HTTPS (checked against the box's own CA) and a chat with the
#    SmolLM2 test model is answered; the times are printed (emulation is slow);
# 4. purge removes the user, the config and /var/lib/hearth.
# Needs root. About 10 minutes plus the cross build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-deb-arm64: needs root (chroot, debootstrap, binfmt_misc)" >&2; exit 1; }
for tool in debootstrap curl python3; do
  command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >&2
done

step() { echo "== test-deb-arm64: $* ($(date +%T))" >&2; }
fail() { echo "test-deb-arm64: FAILED: $*" >&2; exit 1; }
. packaging/debroot.sh

work=$(mktemp -d /var/tmp/hearth-deb-arm64.XXXXXX)
chmod 0755 "$work"
root=$work/root
server=""
cleanup() {
  [ -n "$server" ] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; } || true
  debroot_umount "$root"
  rm -rf "$work"
}
trap cleanup EXIT

deb=${1:-}
if [ -z "$deb" ]; then
  step "cross-building the arm64 package"
  start=$(date +%s)
  deb=$(bash packaging/build-deb.sh arm64 | tail -n 1)
  echo "built in $(( $(date +%s) - start )) s" >&2
fi
[ -f "$deb" ] || fail "no package at $deb"
case "$deb" in *_arm64.deb) ;; *) fail "$deb is not an arm64 package" ;; esac
model=${HEARTH_TEST_SMALL_MODEL:-$HOME/.cache/hearth/models/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$model" ] || fail "test model missing: python3 models/fetch.py test"

debroot_extract arm64 "" "$root"
debroot_mount "$root"
in_root() { chroot "$root" "$@"; }
[ "$(in_root uname -m)" = aarch64 ] || fail "the root does not run as aarch64"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"

step "apt-get install ./$(basename "$deb") into a clean arm64 bookworm"
start=$(date +%s)
cp "$deb" "$root/tmp/"
in_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -qq --no-install-recommends "/tmp/$(basename "$deb")" \
  >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "apt-get install"; }
echo "installed in $(( $(date +%s) - start )) s" >&2
in_root dpkg-query -W -f='Depends: ${Depends}\n' hearth >&2
for f in /usr/bin/hearth /usr/lib/systemd/system/hearth.service /etc/hearth/hearth.toml \
         /usr/share/bash-completion/completions/hearth /usr/share/man/man1/hearth.1.gz; do
  [ -e "$root$f" ] || fail "$f is not installed"
done
# ELF e_machine 0xb7: AArch64.
python3 -c 'import sys; sys.exit(open(sys.argv[1], "rb").read(20)[18:20] != b"\xb7\x00")' "$root/usr/bin/hearth" \
  || fail "/usr/bin/hearth is not an arm64 binary"
in_root getent passwd hearth >/dev/null || fail "no hearth user"
[ "$(in_root stat -c '%U %a' /var/lib/hearth)" = "hearth 750" ] || fail "data dir: $(in_root stat -c '%U %a' /var/lib/hearth)"
version=$(in_root hearth --version) || fail "hearth --version"
echo "$version (under qemu-aarch64)" >&2

step "the unit's ExecStart as user hearth, with the unit's environment"
unit=$root/usr/lib/systemd/system/hearth.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
mapfile -t unit_env < <(sed -n 's/^Environment=//p' "$unit" | tr ' ' '\n')
[ -n "$exec_start" ] || fail "no ExecStart in the unit"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
plain=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
install -m 0644 "$model" "$root/var/lib/hearth/models/"
start=$(date +%s)
# shellcheck disable=SC2086 # ExecStart is a command line
chroot "$root" runuser -u hearth -- env "${unit_env[@]}" \
  HEARTH_LISTEN="127.0.0.1:$port" HEARTH_HTTP_LISTEN="127.0.0.1:$plain" HEARTH_MDNS=false \
  HEARTH_MODEL="/var/lib/hearth/models/$(basename "$model")" $exec_start >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 900); do
  curl -fsS "http://127.0.0.1:$plain/api/health" 2>/dev/null | grep -q '"state":"ready"' && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; fail "hearth serve exited"; }
  sleep 1
done
curl -fsS "http://127.0.0.1:$plain/api/health" | grep -q '"state":"ready"' || { tail -30 "$work/serve.log"; fail "not ready in 15 minutes"; }
echo "ready in $(( $(date +%s) - start )) s" >&2
health=$(curl -fsS --cacert "$root/var/lib/hearth/tls/ca.crt" "https://localhost:$port/api/health")
echo "$health" | grep -q '"mode":"local"' || fail "health over HTTPS: $health"

as_hearth() { chroot "$root" runuser -u hearth -- "$@"; }
as_hearth hearth users add alice --config /etc/hearth/hearth.toml >/dev/null
token=$(as_hearth hearth tokens create --user alice --config /etc/hearth/hearth.toml | tail -n 1)
start=$(date +%s)
reply=$(curl -fsS --max-time 900 --cacert "$root/var/lib/hearth/tls/ca.crt" "https://localhost:$port/api/chat" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"message":"Say hello in three words.","max_tokens":24}')
echo "$reply" | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["reply"].strip(), r; print("reply:", r["reply"][:80])' >&2 \
  || fail "chat: $reply"
echo "chat answered in $(( $(date +%s) - start )) s (under qemu-user emulation)" >&2
kill "$server"; wait "$server" 2>/dev/null || true; server=""

step "purge removes the user, the config and the data"
DEBIAN_FRONTEND=noninteractive in_root apt-get purge -y -qq hearth >>"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "purge"; }
[ ! -e "$root/var/lib/hearth" ] || fail "/var/lib/hearth survived the purge"
[ ! -e "$root/etc/hearth" ] || fail "/etc/hearth survived the purge"
! in_root getent passwd hearth >/dev/null || fail "the hearth user survived the purge"
echo "test-deb-arm64: passed ($(basename "$deb"); $version)"
