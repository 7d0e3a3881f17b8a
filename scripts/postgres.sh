#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and trials of 'budgetnas worker':
#
#   scripts/postgres.sh start [DIR]   initdb + start on a free 127.0.0.1 port; prints
#                                     url=postgresql://budgetnas:PASSWORD@127.0.0.1:PORT/budgetnas
#                                     dir=DIR  (pass it to stop)
#   scripts/postgres.sh stop DIR      stop the server and delete DIR
#   scripts/postgres.sh bindir        the folder holding initdb and pg_ctl (exit 1 if none)
#
# initdb refuses to run as root: as root the server runs as the 'postgres' user. The
# server listens only on 127.0.0.1, keeps its socket in DIR, needs a password over TCP
# (scram-sha-256) and runs with fsync off: it is for tests, never for data you keep.
# Install the binaries with scripts/setup-postgres.sh.
set -euo pipefail

bindir() {
  local d
  for d in ${PG_BINDIR:-} $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV) \
           "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")"; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

as_owner() {  # run a server command as the cluster's owner
  if [ "$(id -u)" = 0 ]; then runuser -u "$OWNER" -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  local bin dir port password
  bin=$(bindir) || { echo "postgres.sh: no initdb/pg_ctl found: run scripts/setup-postgres.sh" >&2; exit 1; }
  dir=${1:-$(mktemp -d /tmp/budgetnas-pg.XXXXXX)}
  mkdir -p "$dir/sock"
  OWNER=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    OWNER=postgres
    id -u "$OWNER" >/dev/null 2>&1 || useradd --system --no-create-home "$OWNER"
    chown -R "$OWNER" "$dir"
  fi
  password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s\n' "$password" > "$dir/pwfile"
  chmod 600 "$dir/pwfile"
  [ "$(id -u)" = 0 ] && chown "$OWNER" "$dir/pwfile"
  as_owner "$bin/initdb" -D "$dir/data" -U budgetnas --pwfile="$dir/pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  rm -f "$dir/pwfile"
  for attempt in 1 2 3; do
    port=$(free_port)
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
         -o "-p $port -k $dir/sock -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60" >/dev/null; then
      break
    fi
    [ "$attempt" = 3 ] && { cat "$dir/server.log" >&2; exit 1; }
  done
  as_owner "$bin/createdb" -h "$dir/sock" -p "$port" -U budgetnas budgetnas
  echo "url=postgresql://budgetnas:$password@127.0.0.1:$port/budgetnas"
  echo "dir=$dir"
}

stop() {
  local bin dir=${1:?usage: postgres.sh stop DIR}
  bin=$(bindir)
  OWNER=$(stat -c %U "$dir/data" 2>/dev/null || id -un)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  bindir) bindir ;;
  *) echo "usage: $0 start [DIR] | stop DIR | bindir" >&2; exit 2 ;;
esac
