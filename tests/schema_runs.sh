#!/usr/bin/env bash
# Structured output at full size: 100 replies at temperature 1 from the small model, each
# constrained by a JSON schema, all of which must parse and match it
# (tools::json_schema_replies_always_parse_and_match_the_schema). About 12 minutes on 2
# cores, so scripts/test.sh asks for 12; run this one when the grammar or sampling code
# changes.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 models/fetch.py test >/dev/null
HEARTH_TEST_SCHEMA_RUNS=100 cargo test --locked --test integration \
  tools::json_schema_replies_always_parse_and_match_the_schema -- --nocapture 2>&1 | grep -E "json_schema:|test result|panicked"
