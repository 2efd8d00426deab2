#!/usr/bin/env bash
# Installs the real .deb into a clean Debian 12 root and runs it there, as a user would:
#
#   packaging/test-deb.sh [--profile dev] [PATH.deb]   (default: build it with packaging/build-deb.sh)
#
# --profile dev: package the development build (CI: no release build; same files and scripts).
# 1. a fresh bookworm root with systemd (debootstrap --variant=minbase; the pristine root is
#    cached as a tarball under ~/.cache/hearth/debroot/), `apt-get install ./hearth_*.deb`
#    pulling its dependencies from Debian's archive;
# 2. the package's files, user, data dir and config are checked; the root boots with
#    systemd-nspawn --boot and systemd starts the packaged unit, hardening and all (a
#    drop-in only moves it to loopback ports of its own and names the SmolLM2 test model);
# 3. /api/health answers over HTTPS (checked against the box's own CA), a chat is answered, and
#    the service downloads a model itself (fetch.py and pip under the unit's hardening);
# 4. an upgrade to a newer-versioned build, installed while the service runs, restarts it and
#    keeps the conversation, the config and the CA;
# 5. purge stops it and removes the user, the config and /var/lib/hearth.
# lintian's and `systemd-analyze security`'s verdicts are printed (packaging/RESULTS.md
# records them). Needs root. About 3-5 minutes plus the build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-deb: needs root (chroot, debootstrap)" >&2; exit 1; }
for tool in debootstrap curl python3 systemd-nspawn; do
  if ! command -v "$tool" >/dev/null; then
    package=$tool
    [ "$tool" = systemd-nspawn ] && package=systemd-container
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >&2
  fi
done

step() { echo "== test-deb: $*" >&2; }
fail() { echo "test-deb: FAILED: $*" >&2; exit 1; }
. packaging/debroot.sh

profile=release
if [ "${1:-}" = --profile ]; then profile=$2; shift 2; fi
work=$(mktemp -d /var/tmp/hearth-deb-test.XXXXXX)
chmod 0755 "$work"   # lintian reads the package as an unprivileged user
deb=${1:-}
if [ -z "$deb" ]; then
  step "building the package ($profile profile)"
  deb=$(bash packaging/build-deb.sh --profile "$profile" | tail -n 1)
fi
[ -f "$deb" ] || fail "no package at $deb"
# cargo-deb deletes older packages when it makes the newer one below: keep a copy.
cp "$deb" "$work/" && deb=$work/$(basename "$deb") && chmod 0644 "$deb"
model=${HEARTH_TEST_SMALL_MODEL:-$HOME/.cache/hearth/models/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$model" ] || fail "test model missing: python3 models/fetch.py test"

root=$work/root
booted=""
cleanup() {
  [ -n "$booted" ] && { kill "$booted" 2>/dev/null; wait "$booted" 2>/dev/null; } || true
  debroot_umount "$root"
  rm -rf "$work"
}
trap cleanup EXIT

debroot_extract "$(dpkg --print-architecture)" systemd,systemd-sysv,dbus "$root"
debroot_mount "$root"
in_root() { chroot "$root" "$@"; }
# No daemons start inside the root during installs (as in an image build).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"

step "apt-get install ./$(basename "$deb") into a clean bookworm"
cp "$deb" "$root/tmp/"
in_root apt-get update -qq
before=$(in_root dpkg-query -W -f='${Package}\n' | sort)
DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -qq --no-install-recommends "/tmp/$(basename "$deb")" \
  >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "apt-get install"; }
after=$(in_root dpkg-query -W -f='${Package}\n' | sort)
echo "packages pulled in: $(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')" >&2
in_root dpkg-query -W -f='Depends: ${Depends}\n' hearth >&2

step "files, user, data dir, config"
for f in /usr/bin/hearth /usr/lib/systemd/system/hearth.service /etc/hearth/hearth.toml \
         /usr/share/bash-completion/completions/hearth /usr/share/man/man1/hearth.1.gz \
         /usr/share/hearth/models/manifest.toml; do
  [ -e "$root$f" ] || fail "$f is not installed"
done
in_root getent passwd hearth >/dev/null || fail "no hearth user"
# (stat inside the root: the host has no user hearth)
[ "$(in_root stat -c '%U %a' /var/lib/hearth)" = "hearth 750" ] || fail "data dir: $(in_root stat -c '%U %a' /var/lib/hearth)"
[ "$(in_root stat -c '%U:%G %a' /etc/hearth/hearth.toml)" = "root:hearth 640" ] || fail "config: $(in_root stat -c '%U:%G %a' /etc/hearth/hearth.toml)"
grep -q '^mode = "local"' "$root/etc/hearth/hearth.toml" || fail "the packaged config does not turn TLS on"
in_root hearth --version >&2

# The packaged unit under systemd, moved to loopback ports of its own by a drop-in.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
plain=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
install -m 0644 "$model" "$root/var/lib/hearth/models/"
mkdir -p "$root/etc/systemd/system/hearth.service.d"
cat >"$root/etc/systemd/system/hearth.service.d/test.conf" <<CONF
[Service]
Environment=HEARTH_LISTEN=127.0.0.1:$port HEARTH_HTTP_LISTEN=127.0.0.1:$plain HEARTH_THREADS=1
Environment=HEARTH_MODEL=/var/lib/hearth/models/$(basename "$model")
CONF
debroot_umount "$root"
rm -f "$root/usr/sbin/policy-rc.d"

step "boot the root with systemd-nspawn; systemd starts hearth.service"
# --keep-unit --register=no: no host systemd is asked for a scope or a machine registration.
systemd-nspawn -D "$root" --boot --register=no --keep-unit --console=passive -q >"$work/boot.log" 2>&1 &
booted=$!
leader=""
# The container's PID 1 is the child of systemd-nspawn that runs systemd (nspawn's own
# short-lived helper child comes first).
for _ in $(seq 1 200); do
  leader=$(ps -o pid= --ppid "$booted" | head -n 1 | tr -d ' ' || true)
  [ -n "$leader" ] && [ "$(ps -o comm= -p "$leader" 2>/dev/null)" = systemd ] && break
  leader=""
  sleep 0.1
done
[ -n "$leader" ] || { cat "$work/boot.log"; fail "systemd-nspawn did not boot"; }
in_box() { nsenter --target "$leader" --all "$@"; }
wait_ready() {
  for _ in $(seq 1 600); do
    if curl -fsS "http://127.0.0.1:$plain/api/health" 2>/dev/null | grep -q '"state":"ready"'; then return 0; fi
    kill -0 "$booted" 2>/dev/null || { cat "$work/boot.log"; fail "the container stopped"; }
    sleep 0.5
  done
  in_box journalctl -u hearth --no-pager | tail -40 >&2 || true
  fail "hearth.service did not become ready"
}
wait_ready
[ "$(in_box systemctl is-active hearth)" = active ] || fail "hearth.service is not active"
main=$(in_box systemctl show hearth -p MainPID --value)
[ "$(in_box stat -c %U "/proc/$main")" = hearth ] || fail "the service does not run as hearth"
in_box systemd-analyze security hearth.service 2>&1 | tail -n 1 | sed 's/^/systemd-analyze (running unit): /' >&2 || true

api() {  # api METHOD PATH [JSON]
  curl -fsS --cacert "$root/var/lib/hearth/tls/ca.crt" -X "$1" "https://localhost:$port$2" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' ${3:+-d "$3"}
}
health=$(curl -fsS --cacert "$root/var/lib/hearth/tls/ca.crt" "https://localhost:$port/api/health")
echo "$health" | grep -q '"mode":"local"' || fail "health over HTTPS: $health"
as_hearth() { in_box runuser -u hearth -- "$@"; }
as_hearth hearth users add alice --admin --config /etc/hearth/hearth.toml >/dev/null
token=$(as_hearth hearth tokens create --user alice --config /etc/hearth/hearth.toml | tail -n 1)
reply=$(api POST /api/chat '{"message":"Say hello in three words."}')
conversation=$(echo "$reply" | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["reply"].strip(), r; print(r["conversation_id"])')
ca_before=$(sha256sum <"$root/var/lib/hearth/tls/ca.crt")
echo "chat answered in conversation $conversation" >&2

step "the service downloads a model itself: fetch.py and pip under the unit's sandbox"
# The package Recommends python3 and python3-pip (installed here without their own
# Recommends, as the README advises); the box trusts what this host trusts (a proxy's CA)
# and takes this host's pip settings (index, certificate bundle).
mkdir -p "$root/usr/local/share/ca-certificates"
for crt in /usr/local/share/ca-certificates/*.crt; do [ ! -f "$crt" ] || cp "$crt" "$root/usr/local/share/ca-certificates/"; done
[ ! -f /etc/pip.conf ] || cp /etc/pip.conf "$root/etc/pip.conf"
DEBIAN_FRONTEND=noninteractive in_box apt-get install -y -qq --no-install-recommends python3 python3-pip ca-certificates \
  >>"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "installing python3-pip"; }
in_box update-ca-certificates >>"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "update-ca-certificates"; }
api POST /api/admin/models/pull '{"name":"onnxruntime"}' >/dev/null
pulled=""
for _ in $(seq 1 300); do
  pulled=$(api GET /api/admin/models | python3 -c '
import json, sys
m = [m for m in json.load(sys.stdin)["models"] if m["name"] == "onnxruntime"][0]
p = m.get("pull") or {}
print("installed" if m["installed"] else "failed: " + str(p.get("error")) if p.get("state") == "failed" else "")')
  [ -n "$pulled" ] && break
  sleep 1
done
[ "$pulled" = installed ] || { in_box journalctl -u hearth --no-pager | tail -20 >&2; fail "the service's own pull: ${pulled:-timed out}"; }
owner=$(in_box stat -c %U /var/lib/hearth/models/libonnxruntime.so.1.31.1) || fail "no pulled file"
[ "$owner" = hearth ] || fail "the pulled file belongs to $owner"
echo "the service pulled onnxruntime into /var/lib/hearth/models" >&2

step "upgrade to a newer build while the service runs keeps data, config and CA"
echo "# an admin's edit" >>"$root/etc/hearth/hearth.toml"
newer=${HEARTH_TEST_NEWER_DEB:-}
if [ -z "$newer" ]; then
  version=$(in_box dpkg-query -W -f='${Version}' hearth)
  newer=$(bash packaging/build-deb.sh --profile "$profile" --version "${version%-*}-99" | tail -n 1)
fi
# (not /tmp: the booted container has its own tmpfs there)
cp "$newer" "$root/var/tmp/"
before_pid=$main
DEBIAN_FRONTEND=noninteractive in_box apt-get install -y -qq -o Dpkg::Options::=--force-confold \
  "/var/tmp/$(basename "$newer")" >>"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "upgrade"; }
in_box dpkg-query -W -f='${Version}\n' hearth >&2
wait_ready
main=$(in_box systemctl show hearth -p MainPID --value)
[ "$main" != "$before_pid" ] || fail "the upgrade did not restart the service"
grep -q "an admin's edit" "$root/etc/hearth/hearth.toml" || fail "the upgrade replaced the edited config"
[ "$(sha256sum <"$root/var/lib/hearth/tls/ca.crt")" = "$ca_before" ] || fail "the upgrade replaced the CA"
api GET "/api/conversations/$conversation" | grep -q '"messages"' || fail "the conversation is gone after the upgrade"

step "purge stops the service and removes the user, the config and the data"
DEBIAN_FRONTEND=noninteractive in_box apt-get purge -y -qq hearth >>"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "purge"; }
! curl -fsS "http://127.0.0.1:$plain/api/health" >/dev/null 2>&1 || fail "the service still answers after the purge"
[ ! -e "$root/var/lib/hearth" ] || fail "/var/lib/hearth survived the purge"
[ ! -e "$root/etc/hearth" ] || fail "/etc/hearth survived the purge"
! in_box getent passwd hearth >/dev/null || fail "the hearth user survived the purge"
kill "$booted"; wait "$booted" 2>/dev/null || true; booted=""

step "lintian (recorded, not gating)"
if command -v lintian >/dev/null; then
  lintian --tag-display-limit 0 "$deb" 2>&1 | grep -v 'root privileges' | sed 's/^/lintian: /' >&2 || true
fi
echo "test-deb: passed ($(basename "$deb") -> $(basename "$newer") -> purged)"
