#!/usr/bin/env bash
# docs/BAD_INPUT.md: the bad-input table run (every case through the real CLI) and each
# case written with the one line it now gets.
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGETNAS_OFFLINE=1 BUDGETNAS_BAD_INPUT_TABLE="$PWD/docs/BAD_INPUT.md" \
    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_bad_input.py -k "test_bad_input and not python_m" "$@"
