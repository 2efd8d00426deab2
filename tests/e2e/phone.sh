#!/usr/bin/env bash
# Runs tests/e2e/phone.test.mjs inside a network namespace of its own: a veth pair with
# 10.77.0.1 and 10.77.0.2 on it (addresses that exist only inside the namespace; nothing
# reaches a real network), so the server listens on a non-loopback address as on a LAN
# and Chromium reaches it as a phone would. Needs root (ip netns), Chromium, certutil.
set -euo pipefail
cd "$(dirname "$0")"

for tool in ip certutil; do
  command -v "$tool" >/dev/null || { echo "phone: $tool is missing (apt-get install iproute2 libnss3-tools)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "phone: needs root to make a network namespace (ip netns add)" >&2; exit 1; }

ns="hearth-phone-$$"
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
ip -n "$ns" link add veth0 type veth peer name veth1
ip -n "$ns" addr add 10.77.0.1/24 dev veth0
ip -n "$ns" addr add 10.77.0.2/24 dev veth1
ip -n "$ns" link set veth0 up
ip -n "$ns" link set veth1 up

ip netns exec "$ns" env PHONE_ADDR=10.77.0.1 node --test phone.test.mjs
