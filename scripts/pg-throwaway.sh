#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests: trust authentication, loopback
# only, fsync off (a crash may lose it; it holds nothing worth keeping), TLS
# on with a throwaway CA made here (openssl).
#
#   pg-throwaway.sh start DIR PORT   initialise DIR if empty, start the server
#                                    on 127.0.0.1:PORT (socket in DIR), wait
#                                    until it accepts connections and print
#                                    postgres://postgres@127.0.0.1:PORT/postgres?sslmode=verify-full&sslrootcert=CA
#                                    Idempotent: a running cluster is reused
#                                    (one made before TLS gets it, by reload).
#   pg-throwaway.sh stop DIR         stop it (nothing to do if not running)
#
# TLS: the data directory holds ca.pem (the CA, the URL's sslrootcert),
# server.crt (SAN DNS:localhost, IP:127.0.0.1) and server.key. The server
# also accepts plain connections (host trust): clients choose with sslmode.
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

# A throwaway CA and a server certificate for localhost / 127.0.0.1, and
# ssl = on in postgresql.conf; once per data directory. The CA key is
# thrown away: nothing else is ever signed by it.
ensure_tls() {
  if [ -s "$data/server.crt" ] && [ -s "$data/ca.pem" ] && grep -q '^# cloudpki throwaway TLS' "$data/postgresql.conf"; then
    return 1
  fi
  local tmp
  tmp=$(mktemp -d)
  cat >"$tmp/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = cloudpki throwaway test CA
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
  (
    cd "$tmp"
    openssl req -config openssl.cnf -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout ca.key -out ca.pem -days 3650 -extensions ca
    openssl req -config openssl.cnf -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout server.key -out server.csr -subj /CN=localhost
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
      -days 3650 -extfile openssl.cnf -extensions server -out server.crt
  ) >&2 2>"$tmp/openssl.log" || {
    cat "$tmp/openssl.log" >&2
    rm -rf "$tmp"
    echo "cannot make the throwaway TLS certificates (openssl)" >&2
    exit 1
  }
  install -m 600 "$tmp/server.key" "$data/server.key"
  install -m 644 "$tmp/server.crt" "$data/server.crt"
  install -m 644 "$tmp/ca.pem" "$data/ca.pem"
  rm -rf "$tmp"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$data/server.key" "$data/server.crt" "$data/ca.pem"
  fi
  if ! grep -q '^# cloudpki throwaway TLS' "$data/postgresql.conf"; then
    printf '%s\n' '# cloudpki throwaway TLS' "ssl = on" "ssl_cert_file = 'server.crt'" \
      "ssl_key_file = 'server.key'" >>"$data/postgresql.conf"
  fi
  return 0
}

# The URL's query value for a path: percent-encode all but [A-Za-z0-9/._-].
urlencode() {
  local s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in
    [A-Za-z0-9/._-]) out+=$c ;;
    *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
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
  tls_changed=0
  ensure_tls && tls_changed=1
  if running; then
    # postmaster.pid's fourth line is the port it listens on.
    actual=$(sed -n 4p "$data/postmaster.pid")
    if [ "$actual" != "$port" ]; then
      echo "the cluster in $data already runs on port $actual, not $port" >&2
      exit 1
    fi
    if [ "$tls_changed" = 1 ]; then
      as_pg "$bin/pg_ctl" -D "$data" reload >&2
      sleep 0.5
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
      echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=verify-full&sslrootcert=$(urlencode "$data/ca.pem")"
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
