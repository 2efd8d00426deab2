#!/usr/bin/env bash
# The web UI's end-to-end tests: real `hearth serve` (target/debug/hearth, the small
# test model) driven in Debian's headless Chromium (/usr/bin/chromium) through
# playwright-core from npm. No browser is downloaded. Push-to-talk runs with Chromium's
# fake microphone playing tests/data/speech_kitchen.wav, and with the real speech models
# (whisper-tiny-en, piper-joe) when they are in the model cache. Screenshots of the chat
# page land in target/e2e-screenshots/.
set -euo pipefail
cd "$(dirname "$0")"

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "e2e: Node.js 18 or newer is needed (found $(node --version))" >&2
  exit 1
fi
if ! node -e "require.resolve('playwright-core')" 2>/dev/null; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2
fi
node --test markdown.test.mjs voice.test.mjs ui.test.mjs voice-ui.test.mjs models-ui.test.mjs skills-ui.test.mjs audit-ui.test.mjs workflows-notes-ui.test.mjs announce-ui.test.mjs
# A phone on the LAN: HTTPS from the box's own CA, in a network namespace of its own.
bash phone.sh
echo "e2e: screenshots in ${CARGO_TARGET_DIR:-target}/e2e-screenshots/" >&2
