#!/usr/bin/env bash
# Runs Hearth's whole test suite on a fresh Debian/Ubuntu machine: installs system
# packages, builds, fetches the real test models (cached in ~/.cache/hearth/models, verified
# by sha256; hearth itself converts the embedding model; the Piper voice and ONNX Runtime too), sets up the official `openai`
# and `ollama` Python clients, then runs every test, and last the web UI's end-to-end tests in
# headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
# hearth itself converts the embedding model (hearth models import), so build first;
# the tests below reuse this build.
cargo build --locked
python3 models/fetch.py test default all-minilm-l6-v2 whisper-tiny-en whisper-base piper-joe onnxruntime --hearth "${CARGO_TARGET_DIR:-target}/debug/hearth" >/dev/null

venv=.venv-test
# schemathesis fuzzes the OpenAPI document against the real server (tests/integration/openapi.rs).
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import openai, ollama, wyoming, schemathesis' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check 'openai>=1.30,<3' 'ollama>=0.4,<1' 'wyoming>=1.5,<2' 'schemathesis>=4,<5' >&2
fi
export HEARTH_TEST_PYTHON="$PWD/$venv/bin/python"

# The Yocto recipe lists every crate; it must follow Cargo.lock.
python3 yocto/meta-hearth/scripts/update-crates-inc.py --check

# Each integration test's server time goes to target/test-times.tsv; the slowest are
# listed after the run, to keep the suite within CI's budget.
export HEARTH_TEST_TIMES="$PWD/${CARGO_TARGET_DIR:-target}/test-times.tsv"
rm -f "$HEARTH_TEST_TIMES"
cargo test --locked --all-targets "$@"
python3 scripts/slowest-tests.py "$HEARTH_TEST_TIMES" >&2

# The web UI: its download size, then end-to-end tests in headless Chromium against the
# server built above (screenshots in target/e2e-screenshots/).
cargo test --locked --lib web::tests::the_bundle_stays_small -- --nocapture 2>&1 | grep 'web UI bundle' >&2
bash tests/e2e/run.sh

# The .deb, installed with apt into a clean Debian 12 root, started, upgraded, purged
# (the development build's binary, to spare CI a release build; packaging/RESULTS.md
# records the release package's run).
bash packaging/test-deb.sh --profile dev
