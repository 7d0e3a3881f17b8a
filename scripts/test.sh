#!/usr/bin/env bash
# The test command: set up, fetch MNIST once (downloads allowed here), then run the whole
# suite offline from that cache (real data, real storages).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
for extra in scripts/setup-*.sh; do [ -f "$extra" ] && bash "$extra"; done
.venv/bin/budgetnas data mnist
export BUDGETNAS_OFFLINE=1
# pytest exits 5 when it collects nothing: that is a failure here too.
# Two pytest workers, each taking whole files (module fixtures are made once): the suite
# mostly waits on processes it starts, so two cores run it in 5.5 min instead of 7.6
# (measured on the 2-core CI machine kind). -n 0 runs it in this process.
exec .venv/bin/python -m pytest -q -n "${BUDGETNAS_TEST_WORKERS:-2}" --dist loadfile "$@"
