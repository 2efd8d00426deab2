#!/usr/bin/env bash
# One command from a fresh checkout to a running Hearth on the default model:
# installs system packages, fetches and verifies the model (and the voice models), builds, creates an admin
# user and token on first run (printed once), and serves HTTPS on 0.0.0.0:8443 (or $HEARTH_LISTEN)
# with the box's own certificate authority, plain HTTP on 0.0.0.0:8080 redirecting to it.
# Extra arguments go to `hearth serve` (e.g. --listen 127.0.0.1:9000).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
model=$(python3 models/fetch.py default | tail -n 1)
cargo build --release --locked
hearth=./target/release/hearth
# Voice: a whisper model (converted by hearth itself), a Piper voice and ONNX Runtime.
# Without them the rest works; `hearth doctor` says what is missing.
python3 models/fetch.py whisper-base piper-joe onnxruntime --hearth "$hearth" >/dev/null \
  || echo "run.sh: the voice models could not be fetched; speech is off (see: $hearth doctor)" >&2
data_dir=${HEARTH_DATA_DIR:-./data}

if "$hearth" users list --data-dir "$data_dir" | grep -q '^No users'; then
  "$hearth" users add admin --admin --data-dir "$data_dir" >/dev/null
  token=$("$hearth" tokens create --user admin --label first-run --data-dir "$data_dir" 2>/dev/null | tail -n 1)
  echo
  echo "First run: created user 'admin' with this API token (shown once, keep it):"
  echo "  $token"
  echo "Try: curl --cacert $data_dir/tls/ca.crt -H \"Authorization: Bearer $token\" \\"
  echo "       -H 'Content-Type: application/json' -d '{\"message\":\"Hello World\"}' https://localhost:8443/api/chat"
  echo
fi

# The LAN address by default; a --listen flag among the arguments still wins.
export HEARTH_LISTEN=${HEARTH_LISTEN:-0.0.0.0:8443}
export HEARTH_HTTP_LISTEN=${HEARTH_HTTP_LISTEN:-0.0.0.0:8080}
exec "$hearth" serve --data-dir "$data_dir" --model "$model" "$@"
