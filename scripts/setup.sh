#!/usr/bin/env bash
# Fresh machine -> .venv with budgetnas and its pinned dependencies (CPU torch 2.13.0).
# Idempotent. EXTRAS=test,postgres by default (EXTRAS= for the plain install a user gets).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${EXTRAS-test,postgres}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=".venv/.budgetnas-$(cat pyproject.toml constraints.txt | md5sum | cut -c1-12)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
