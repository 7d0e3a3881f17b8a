#!/usr/bin/env bash
# PostgreSQL server binaries for the multi-worker tests (tests/test_workers_postgres.py).
# Idempotent and quick when already installed: the tests start their own throwaway
# cluster with scripts/postgres.sh; nothing here starts a server.
set -euo pipefail
cd "$(dirname "$0")/.."

have_server() { bash scripts/postgres.sh bindir >/dev/null 2>&1; }

if have_server; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup-postgres: no PostgreSQL server binaries (initdb, pg_ctl) and no root apt-get to install them;" \
       "the PostgreSQL tests will skip outside CI" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q postgresql >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
have_server || { echo "setup-postgres: installed postgresql but found no initdb/pg_ctl" >&2; exit 1; }
