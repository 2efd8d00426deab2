#!/usr/bin/env bash
# The language check at full size: all 50 commands of tests/integration/voice_language.rs,
# each spoken by Hearth's default voice and sent to a freshly started default install
# (whisper-base, no voice.language) as its first transcription and again. About 10 minutes
# on 2 cores. scripts/test.sh runs 2 of them; record this one's result in
# benches/RESULTS.md ("Voice language on fresh starts") when the speech code changes.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 models/fetch.py test whisper-base piper-joe onnxruntime --hearth target/debug/hearth >/dev/null
HEARTH_TEST_LANGUAGE_STARTS=50 cargo test --locked --test integration \
  voice_language::the_first_transcription_after_a_start_hears_english -- --nocapture 2>&1 | grep -E "voice language:|test result|panicked|request for"
