#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install leadloop into it, editable, with its test tools; as root
# with apt, also the headless browser of the dashboard's tests (scripts/install_browser.sh).
# The install also compiles scoring's hot path (setup.py: the package leadloop_native). Re-installs
# when pyproject.toml or setup.py changed since the last install; otherwise builds again (the same
# pip install, without the dependencies) only when that hot path's source changed. A failed compile
# is not fatal: scoring then runs as pure Python, with the same results.
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

# Whether the installed leadloop_native was built from scoring's source as it is now (scoring/native.py,
# loaded on its own: importing scoring would warn about the stale build we are about to replace).
twin_is_current() {
  .venv/bin/python -c 'import runpy, sys
native = runpy.run_path("scoring/native.py")
sys.exit(native["built_digest"]() != native["source_digest"]())'
}

# The former scripts/build_native.py copied the twin into site-packages behind pip's back; that copy
# would shadow the one the install builds.
for legacy in .venv/lib/python3*/site-packages/leadloop_native__mypyc.*; do
  if [ -e "$legacy" ]; then rm -rf "$legacy" "$(dirname "$legacy")/leadloop_native"; fi
done

stamp=.venv/.leadloop-installed
want=$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing leadloop and its dependencies into .venv ..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,native]' >&2
  echo "$want" > "$stamp"
  built=yes
elif ! twin_is_current; then
  echo "compiling scoring's hot path again (its source changed) ..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps -e . >&2
  built=yes
fi
if [ -n "${built:-}" ] && ! twin_is_current; then
  echo "could not compile scoring's hot path (pip install -v -e . says why); scoring runs as pure Python" \
    "(same results, slower)" >&2
fi
bash scripts/install_browser.sh
