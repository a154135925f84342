#!/usr/bin/env bash
# Quick start: web app + worker on embedded defaults (SQLite, embedded Redis, shadow mode),
# the bundled demo data replayed through the signed webhook endpoints, then a summary.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
exec .venv/bin/leadloop demo "$@"
