#!/usr/bin/env bash
# Fashion-MNIST for the --dataset fashion-mnist test (tests/test_data.py): Debian's
# dataset-fashion-mnist package puts the four idx files in /usr/share/datasets/fashion-mnist,
# where budgetnas finds them. Idempotent and quiet: does nothing when the folder exists;
# prints apt's output only when the install fails.
set -euo pipefail
folder=/usr/share/datasets/fashion-mnist
if [ -d "$folder" ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
if ! command -v apt-get >/dev/null || { [ -n "$sudo" ] && ! command -v sudo >/dev/null; }; then
  echo "setup-fashion: no root apt-get to install dataset-fashion-mnist; the Fashion-MNIST test skips outside CI" >&2
  exit 0
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends dataset-fashion-mnist; } \
    >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup-fashion: installing dataset-fashion-mnist failed" >&2
  exit 1
fi
[ -d "$folder" ] || { echo "setup-fashion: dataset-fashion-mnist installed but $folder is missing" >&2; exit 1; }
