#!/usr/bin/env bash
# OCSP throughput at scale against the 10k fixture's, in the same run: a server on the large fixture
# (FIX) and one on the 10k fixture (SMALL) side by side on CPU 0, one tokio worker each, and
# `wrk -t1 -c64` GETs over each fixture's reqs/get.txt from CPU 1, ROUNDS interleaved rounds (the
# idle server costs nothing meanwhile). Prints the large server's start time and RSS, each round's
# req/s and server CPU µs per answer (lib/common.sh's run_load; records in OUT/results.jsonl), and the
# ratio of the medians (issue 12, item 3: within 10 %).
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
OUT=${OUT:-$HERE/out/scale-vs-10k-$(date +%Y%m%d-%H%M%S)}
TMP=$(mktemp -d /tmp/cloudpki-scalevs.XXXXXX)
mkdir -p "$OUT/raw"
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

# run_load (lib/common.sh): wrk pinned to LOAD_CPU, the server's CPU from its process group.
VUS=64; WRK_CONNS=64; NO_QUIET=1   # the other server is idle, not a co-tenant to wait for
for r in $(seq "$ROUNDS"); do
  for which in small large; do
    if [ "$which" = small ]; then port=$SPORT f=$SMALL pg=$SPG; else port=$LPORT f=$FIX pg=$LPG; fi
    WRK_ARGS=(get "$f/reqs/get.txt")
    run_load wrk "" "http://127.0.0.1:$port" "$which-$r" "$pg" which="$which" round="$r"
  done
done
log "large after the load: VmRSS $(( $(rss_kb "$LPG") / 1024 )) MB, VmHWM $(( $(rss_kb "$LPG" VmHWM) / 1024 )) MB"
python3 - "$OUT/results.jsonl" <<'EOF'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
med = lambda w, k: statistics.median(r[k] for r in recs if r["which"] == w)
for w in ("small", "large"):
    print(f"{w}: " + " / ".join(f"{r['rps']:,.0f}" for r in recs if r["which"] == w) + " req/s")
print(f"medians: 10k {med('small', 'rps'):,.0f} req/s ({med('small', 'server_us_per_req'):.2f} µs), "
      f"large {med('large', 'rps'):,.0f} req/s ({med('large', 'server_us_per_req'):.2f} µs): "
      f"large ÷ 10k = {med('large', 'rps') / med('small', 'rps'):.2f}")
EOF
