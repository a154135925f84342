#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install leadloop with its test tools into it.
# Re-installs only when pyproject.toml changed since the last install; recompiles scoring's hot
# path (scripts/build_native.py) only when its source changed. A failed compile is not fatal:
# scoring then runs as pure Python, with the same results.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "leadloop needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  py=$(pick_python)
  echo "creating .venv with $($py --version)" >&2
  "$py" -m venv .venv
fi
stamp=.venv/.leadloop-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing leadloop and its dependencies into .venv ..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,native]' >&2
  echo "$want" > "$stamp"
fi
.venv/bin/python scripts/build_native.py || true
