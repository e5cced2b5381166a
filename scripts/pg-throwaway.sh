#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests: trust authentication, loopback
# only, fsync off (a crash may lose it; it holds nothing worth keeping).
#
#   pg-throwaway.sh start DIR PORT   initialise DIR if empty, start the server
#                                    on 127.0.0.1:PORT (socket in DIR), wait
#                                    until it accepts connections and print
#                                    postgres://postgres@127.0.0.1:PORT/postgres
#                                    Idempotent: a running cluster is reused.
#   pg-throwaway.sh stop DIR         stop it (nothing to do if not running)
#
# Progress goes to stderr; stdout is only the URL, for $(…).
set -euo pipefail

usage() {
  echo "usage: $0 start DIR PORT | stop DIR" >&2
  exit 2
}

bindir() {
  local initdb
  initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$initdb" ]; then
    echo "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb);" \
      "install them with scripts/install-test-deps.sh (Debian package postgresql)" >&2
    exit 1
  fi
  dirname "$initdb"
}

# initdb and the server refuse to run as root: use the postgres account then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

[ $# -ge 2 ] || usage
cmd=$1
if [ "$cmd" = stop ] && [ ! -d "$2" ]; then
  exit 0
fi
mkdir -p "$2"
dir=$(cd "$2" && pwd)
bin=$(bindir)

# Serialise concurrent starts/stops (two test processes at once).
exec 9>"$dir.lock"
flock 9

# The data directory is DIR itself, unless the postgres account cannot reach
# it (a checkout under a private home, say): then one derived from DIR's path.
data=$dir
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$(dirname "$dir")"; then
  data=/var/tmp/cloudpki-pg$(printf '%s' "$dir" | tr -c 'A-Za-z0-9\n' _)
  mkdir -p "$data"
fi

running() {
  as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

case "$cmd" in
start)
  [ $# -eq 3 ] || usage
  port=$3
  if [ ! -s "$data/PG_VERSION" ]; then
    if [ -n "$(ls -A "$data")" ]; then
      echo "$data is neither empty nor a PostgreSQL data directory" >&2
      exit 1
    fi
    if [ "$(id -u)" = 0 ]; then
      chown postgres: "$data"
    fi
    chmod 700 "$data"
    as_pg "$bin/initdb" -D "$data" --auth=trust --username=postgres --encoding=UTF8 --locale=C >&2
  fi
  if running; then
    # postmaster.pid's fourth line is the port it listens on.
    actual=$(sed -n 4p "$data/postmaster.pid")
    if [ "$actual" != "$port" ]; then
      echo "the cluster in $data already runs on port $actual, not $port" >&2
      exit 1
    fi
  else
    # 9>&-: the server must not inherit (and hold forever) the flock.
    as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start -o "\
      -c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$data' \
      -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      </dev/null >&2 9>&- || {
      echo "PostgreSQL did not start; the end of $data/server.log:" >&2
      tail -n 20 "$data/server.log" >&2 || true
      exit 1
    }
  fi
  for _ in $(seq 1 100); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
      echo "postgres://postgres@127.0.0.1:$port/postgres"
      exit 0
    fi
    sleep 0.1
  done
  echo "PostgreSQL in $data does not accept connections on port $port" >&2
  exit 1
  ;;
stop)
  [ $# -eq 2 ] || usage
  if [ -s "$data/PG_VERSION" ] && running; then
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >&2
  fi
  ;;
*)
  usage
  ;;
esac
