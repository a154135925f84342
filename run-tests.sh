#!/usr/bin/env bash
# The whole test suite. With DATABASE_URL / REDIS_URL set it runs against those servers
# (CI: PostgreSQL and Redis), otherwise against SQLite and the embedded Redis. Without pytest
# arguments it then fuzzes the HTTP API from /openapi.json against a live server on the same
# stores (scripts/fuzz_api.py: >= 10,000 cases, no 5xx). Scoring runs compiled
# (scoring/native.py); its tests then run once more as pure Python, the fallback.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache 2>&1 | tail -n 6
.venv/bin/python -m pytest "$@"
if [ "$#" -eq 0 ]; then
  echo "the API fuzzer against a live server (scripts/fuzz_api.py):"
  .venv/bin/python scripts/fuzz_api.py
  echo "scoring tests again as pure Python (LEADLOOP_PURE_PYTHON=1):"
  pure_tests=$(ls tests/test_scoring_*.py tests/test_rules_*.py tests/test_lifecycle_{decide,follow_up,outcomes,rules}.py |
    grep -v test_scoring_native.py)
  # shellcheck disable=SC2086  # one word per test file
  LEADLOOP_PURE_PYTHON=1 exec .venv/bin/python -m pytest -q $pure_tests
fi
