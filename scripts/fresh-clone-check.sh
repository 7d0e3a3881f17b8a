#!/usr/bin/env bash
# A new user's first minutes, checked: clone this repository into an empty temporary
# folder (no shared/ or anything else beside it), install it the plain way (no extras),
# with a fresh HOME and cache and no offline copies of any dataset, then fetch MNIST,
# run a 2-trial search on a training subset, export its winner and train a preset.
# CI runs it before the suite. Clones what is committed (HEAD), not the work tree.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/budgetnas-fresh.XXXXXX")"
trap 'rm -rf "$work"' EXIT
git clone -q "$src" "$work/clone"
cd "$work/clone"
mkdir -p "$work/home"
export HOME="$work/home" XDG_CACHE_HOME="$work/home/.cache" BUDGETNAS_OFFLINE_DIRS=""
unset BUDGETNAS_DATA BUDGETNAS_OFFLINE BUDGETNAS_STORAGE
set -x
EXTRAS= bash scripts/setup.sh
.venv/bin/budgetnas data mnist
.venv/bin/budgetnas search --budget 5000 --epochs 1 --trials 2 --train-limit 2000 --no-progress
.venv/bin/budgetnas export
.venv/bin/budgetnas train --preset B --epochs 1 --train-limit 2000 --no-progress
{ set +x; } 2>/dev/null
test -f exports/budgetnas-trial0/model.onnx -o -f exports/budgetnas-trial1/model.onnx
test -f exports/preset-B-1ep/model.onnx
echo "fresh clone in $work: every step passed"
