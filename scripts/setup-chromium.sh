#!/usr/bin/env bash
# Headless Chromium for the HTML report test (tests/test_report.py). Idempotent: does
# nothing when /usr/bin/chromium exists. Needs root (CI runs setup scripts as root).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-chromium: no apt-get here; install Chromium so /usr/bin/chromium exists" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
