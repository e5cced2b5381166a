#!/usr/bin/env bash
# OCSP throughput at scale against the 10k fixture's, in the same run: a server on the large fixture
# (FIX) and one on the 10k fixture (SMALL) side by side on CPU 0, one tokio worker each, and
# `wrk -t1 -c64` GETs over each fixture's reqs/get.txt from CPU 1, ROUNDS interleaved rounds (the
# idle server costs nothing meanwhile). Prints the large server's start time and RSS, each round's
# req/s and server CPU µs per answer, and the ratio of the medians (issue 12, item 3: within 10 %).
#
#   FIX=/work/fixtures/scale-10m load-tests/scale-vs-10k.sh     # ~1.5 min after the large start
# Knobs: FIX (required: a gen-fixture.sh fixture), SMALL (load-tests/.data/fixture), ROUNDS (3),
#   DURATION (s per wrk run, 10), CLOUDPKI (the binary).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
source "$HERE/lib/common.sh"

BIN=${CLOUDPKI:-$ROOT/target/release/cloudpki}
FIX=${FIX:?FIX: the large fixture (load-tests/gen-fixture.sh with N=...)}
SMALL=${SMALL:-$HERE/.data/fixture}
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10}
SERVER_CPU=0; LOAD_CPU=1; PIN=1
TMP=$(mktemp -d /tmp/cloudpki-scalevs.XXXXXX)
trap 'rc=$?; cleanup_all; rm -rf "$TMP"; exit $rc' EXIT
trap 'exit 130' INT TERM
command -v wrk >/dev/null || { log "wrk is needed"; exit 1; }
for f in "$FIX" "$SMALL"; do [ -f "$f/done" ] || { log "no fixture at $f (load-tests/gen-fixture.sh)"; exit 1; }; done
private_binary

# Each server listens on the port its fixture's URLs name (ids.env), as scale-1m.sh does.
port_of() { (source "$1/ids.env"; echo "$PORT"); }
LPORT=$(port_of "$FIX"); SPORT=$(port_of "$SMALL")
[ "$LPORT" != "$SPORT" ] || { log "both fixtures name port $LPORT"; exit 1; }

START_NS=$(date +%s%N)
start_pg "$TMP/large.log" env TOKIO_WORKER_THREADS=1 "$BIN" --data-dir "$FIX/data" serve --listen "127.0.0.1:$LPORT"
LPG=$PG
ms=$(wait_ready "http://127.0.0.1:$LPORT/readyz" "$LPG" 300)
log "large: ready in $ms ms, VmRSS $(( $(rss_kb "$LPG") / 1024 )) MB, VmHWM $(( $(rss_kb "$LPG" VmHWM) / 1024 )) MB"
START_NS=$(date +%s%N)
start_pg "$TMP/small.log" env TOKIO_WORKER_THREADS=1 "$BIN" --data-dir "$SMALL/data" serve --listen "127.0.0.1:$SPORT"
SPG=$PG
wait_ready "http://127.0.0.1:$SPORT/readyz" "$SPG" 60 >/dev/null

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
: >"$TMP/rounds.tsv"
for r in $(seq "$ROUNDS"); do
  for which in small large; do
    if [ "$which" = small ]; then port=$SPORT f=$SMALL pid=$SPG; else port=$LPORT f=$FIX pid=$LPG; fi
    c0=$(ticks "$pid")
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c64 -d"${DURATION}s" --timeout 5s -s "$HERE/wrk/req.lua" \
      "http://127.0.0.1:$port/" -- get "$f/reqs/get.txt" 2>&1)
    c1=$(ticks "$pid")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out"); n=$(awk '/requests in/ {print $1}' <<<"$out")
    bad=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)
    us=$(python3 -c "print(f'{($c1 - $c0) * 1e6 / $hz / $n:.2f}')")
    log "round $r $which: $rps req/s, $us µs of server CPU an answer${bad:+; $bad}"
    printf '%s\t%s\t%s\n' "$which" "$rps" "$us" >>"$TMP/rounds.tsv"
  done
done
log "large after the load: VmRSS $(( $(rss_kb "$LPG") / 1024 )) MB, VmHWM $(( $(rss_kb "$LPG" VmHWM) / 1024 )) MB"
python3 - "$TMP/rounds.tsv" <<'EOF'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
med = {w: statistics.median(float(r[1]) for r in rows if r[0] == w) for w in ("small", "large")}
us = {w: statistics.median(float(r[2]) for r in rows if r[0] == w) for w in ("small", "large")}
print(f"medians: 10k {med['small']:,.0f} req/s ({us['small']:.2f} µs), large {med['large']:,.0f} req/s "
      f"({us['large']:.2f} µs): large ÷ 10k = {med['large'] / med['small']:.2f}")
EOF
