#!/usr/bin/env bash
# ab.sh BIN_A BIN_B: two cloudpki binaries (or wrappers that exec one, to set
# an environment) answering the fixture's OCSP mix in interleaved rounds, each
# on its own copy of the 10k fixture, both pinned to CPU 0 with one worker, wrk
# pinned to CPU 1. Prints, per round, each server's req/s and its CPU per
# answer (`pg_ticks` of its process group over the wrk run).
#
# Why beside ocsp-vs-nginx.sh: a change worth a few percent is smaller than
# what one server's rounds spread across minutes on this host; A and B
# alternating every few seconds see the same host, so their difference is the
# change. Writes nothing to RESULTS.md.
#
#   ROUNDS=4 D=8 SCN="get post" load-tests/ab.sh target/release/cloudpki /tmp/cloudpki-other
set -euo pipefail
A=$(realpath "$1"); B=$(realpath "$2")
ROUNDS=${ROUNDS:-3}; D=${D:-8}; SCN=${SCN:-get post}
HERE=$(cd "$(dirname "$0")" && pwd); FIX=${FIX:-$HERE/.data/fixture}
source "$HERE/lib/common.sh"
[ -f "$FIX/done" ] || { log "no fixture in $FIX: CLOUDPKI=$A $HERE/gen-fixture.sh"; exit 1; }
command -v wrk >/dev/null || { log "wrk missing: apt-get install wrk"; exit 1; }
T=$(mktemp -d /tmp/cloudpki-ab.XXXXXX)
trap 'rc=$?; cleanup_all; rm -rf "$T"; exit $rc' EXIT
trap 'exit 130' INT TERM
cp -a "$FIX/data" "$T/a"; cp -a "$FIX/data" "$T/b"
SERVER_CPU=0; START_NS=$(date +%s%N)
start_pg "$T/a.log" env TOKIO_WORKER_THREADS=1 "$A" --data-dir "$T/a" serve --listen 127.0.0.1:18301
PA=$PG
start_pg "$T/b.log" env TOKIO_WORKER_THREADS=1 "$B" --data-dir "$T/b" serve --listen 127.0.0.1:18302
PB=$PG
wait_ready http://127.0.0.1:18301/readyz "$PA" 60 >/dev/null
wait_ready http://127.0.0.1:18302/readyz "$PB" 60 >/dev/null
hz=$(getconf CLK_TCK)
cd "$HERE"
for scn in $SCN; do
  case $scn in
    get) args=(get "$FIX/reqs/get.txt") ;;
    post) args=(post "$FIX/reqs/post.list") ;;
    *) log "unknown scenario $scn (get, post)"; exit 1 ;;
  esac
  for r in $(seq "$ROUNDS"); do
    line="$scn r$r:"
    for who in A:$PA:18301 B:$PB:18302; do
      IFS=: read -r name pg port <<<"$who"
      before=$(pg_ticks "$pg")
      taskset -c 1 wrk -t1 -c64 -d"${D}s" --timeout 5s -s wrk/req.lua "http://127.0.0.1:$port/" -- "${args[@]}" >"$T/wrk.txt" 2>&1
      after=$(pg_ticks "$pg")
      n=$(grep -o '[0-9]* requests in' "$T/wrk.txt" | awk '{ print $1 }')
      line="$line $name $(python3 -c "print(f'{$n / $D:,.0f} req/s {($after - $before) / $hz * 1e6 / $n:.2f} us')")"
    done
    echo "$line"
  done
done
