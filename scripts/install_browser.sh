#!/usr/bin/env bash
# The headless browser of the dashboard's browser tests: Debian's chromium and its chromedriver.
# Installs them with apt-get when they are missing and this runs as root with apt; otherwise says
# what is missing (the browser tests then fail with the same message: they never skip).
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium and chromium-driver (the dashboard's browser tests) ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q chromium chromium-driver >/dev/null
  fi
  exit 0
fi
echo "chromium and chromedriver are missing: install Debian's chromium and chromium-driver packages" \
  "(the dashboard's browser tests need them)" >&2
