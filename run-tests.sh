#!/usr/bin/env bash
# The whole test suite. With DATABASE_URL / REDIS_URL set it runs against those servers
# (CI: PostgreSQL and Redis), otherwise against SQLite and the embedded Redis.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
