#!/usr/bin/env bash
# OCSP GET and POST throughput against nginx serving the same answers as static files: the
# server pinned to one core (cloudpki with one worker, nginx with one worker process), wrk on the
# other, the 1000-request mix of the fixture (one request per sampled serial, round-robin), three
# interleaved rounds (cloudpki, nginx, cloudpki, nginx, ...) and the median of each. Server CPU
# per answer from the server's process-group ticks. Writes load-tests/out/ocsp-vs-nginx-*/ and the
# "OCSP against nginx" section of RESULTS.md.
#
#   load-tests/ocsp-vs-nginx.sh          # ~3 min (+ the 10k fixture the first time, ~1 min)
# Knobs: DURATION (10 s per run), ROUNDS (3), CONNS (64 wrk connections), FIX (fixture dir),
# FLOOR (examples/hyper_floor, built with `cargo build --release --example hyper_floor`: hyper with
# cloudpki's configuration and no OCSP work, a third server in each round; FLOOR= to skip it).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
source "$HERE/lib/common.sh"

BIN=${CLOUDPKI:-$ROOT/target/release/cloudpki}
FIX=${FIX:-$HERE/.data/fixture}
DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-3}; VUS=${CONNS:-64}
SERVER_CPU=${SERVER_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}; PIN=1; NGINX_PORT=${NGINX_PORT:-18290}
FLOOR=${FLOOR-$ROOT/target/release/examples/hyper_floor}; FLOOR_PORT=${FLOOR_PORT:-18291}
NICE=${NICE:--10}; [ "$(id -u)" = 0 ] || NICE=0
OUT=${OUT:-$HERE/out/ocsp-vs-nginx-$(date +%Y%m%d-%H%M%S)}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
CMDLINE="DURATION=$DURATION ROUNDS=$ROUNDS CONNS=$VUS ${0#$ROOT/}"
TMP=$(mktemp -d /tmp/cloudpki-ocsp-nginx.XXXXXX)
chmod 755 "$TMP"   # nginx workers run as an unprivileged user and must read static/
STATIC=$TMP/static
mkdir -p "$OUT/raw"
trap 'rc=$?; cleanup_all; rm -rf "$TMP"; exit $rc' EXIT
trap 'exit 130' INT TERM
prioritize

command -v nginx >/dev/null || { log "nginx missing: apt-get install nginx-light"; exit 1; }
command -v wrk >/dev/null || { log "wrk missing: apt-get install wrk"; exit 1; }
private_binary
if [ ! -f "$FIX/done" ]; then
  log "no fixture in $FIX: generating (10k leaves)"
  FIX=$FIX CLOUDPKI=$BIN "$HERE/gen-fixture.sh"
fi
source "$FIX/ids.env"   # ROOT_ID ISSUING_ID PORT N
CBASE=http://127.0.0.1:$PORT; NBASE=http://127.0.0.1:$NGINX_PORT

log "cloudpki on $CBASE (CPU $SERVER_CPU, one worker)"
START_NS=$(date +%s%N)
start_pg "$OUT/cloudpki.log" env TOKIO_WORKER_THREADS=1 "$BIN" --data-dir "$FIX/data" serve --listen "127.0.0.1:$PORT"
CPG=$PG
wait_ready "$CBASE/readyz" "$CPG" 60 >/dev/null
python3 "$HERE/lib/fetch_static.py" "$CBASE" "$FIX" "$STATIC"
chmod -R a+rX "$STATIC"
mkdir -p "$TMP/nginx"
static_nginx_conf "$TMP/nginx" "$NGINX_PORT" "$STATIC" 1 >"$TMP/nginx/nginx.conf"
log "nginx on $NBASE (CPU $SERVER_CPU, one worker)"
START_NS=$(date +%s%N)
start_pg "$OUT/nginx.log" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf"
NPG=$PG
wait_ready "$NBASE$(head -1 "$STATIC/crl.list")" "$NPG" 20 >/dev/null
python3 "$HERE/lib/validate.py" static "$NBASE" "$FIX" "$STATIC" >/dev/null
TARGETS=(cloudpki nginx)
if [ -n "$FLOOR" ]; then
  [ -x "$FLOOR" ] || { log "no $FLOOR: cargo build --release --example hyper_floor (or FLOOR= to skip)"; exit 1; }
  cp -p "$FLOOR" "$TMP/hyper_floor"
  FBASE=http://127.0.0.1:$FLOOR_PORT
  log "hyper floor on $FBASE (CPU $SERVER_CPU, one worker)"
  START_NS=$(date +%s%N)
  start_pg "$OUT/hyper_floor.log" "$TMP/hyper_floor" "127.0.0.1:$FLOOR_PORT" "$FIX/reqs/get.txt" "$STATIC"
  FPG=$PG
  wait_ready "$FBASE/ocsp/$(head -1 "$FIX/reqs/get.txt")" "$FPG" 20 >/dev/null
  TARGETS+=(hyper)
fi

for round in $(seq "$ROUNDS"); do
  for scn in get post; do
    for tgt in "${TARGETS[@]}"; do
      base=$CBASE; pg=$CPG; [ "$tgt" = nginx ] && { base=$NBASE; pg=$NPG; }
      [ "$tgt" = hyper ] && { base=$FBASE; pg=$FPG; }
      if [ "$scn" = get ]; then WRK_ARGS=(get "$FIX/reqs/get.txt"); else WRK_ARGS=(post "$FIX/reqs/post.list"); fi
      log "round $round: ocsp-$scn -> $tgt"
      run_load wrk "" "$base" "ocsp-$scn-$tgt-$round" "$pg" scenario="ocsp-$scn" target="$tgt" round="$round"
    done
  done
done
# Every body checked once more after the load (cloudpki's answers did not change under it).
python3 "$HERE/lib/validate.py" cloudpki "$CBASE" "$FIX" >"$OUT/validate.json" || true

LIB=$HERE/lib python3 - "$OUT" "$RESULTS" "$CMDLINE" "$BIN_INFO" "$(git -C "$ROOT" rev-parse --short HEAD)" "$(nginx -v 2>&1 | cut -d' ' -f3)" <<'PY'
import json, os, statistics, sys, datetime
sys.path.insert(0, os.environ["LIB"])
from results_section import replace_section
out, results, cmd, binary, rev, nginx = sys.argv[1:7]
recs = [json.loads(l) for l in open(os.path.join(out, "results.jsonl"))]
val = json.load(open(os.path.join(out, "validate.json")))
def med(scn, tgt, key):
    return statistics.median(r[key] for r in recs if r["scenario"] == scn and r["target"] == tgt)
rows, floor = [], []
for scn in ("ocsp-get", "ocsp-post"):
    c, n = med(scn, "cloudpki", "rps"), med(scn, "nginx", "rps")
    cu, nu = med(scn, "cloudpki", "server_us_per_req"), med(scn, "nginx", "server_us_per_req")
    runs = " / ".join(f"{r['rps']:,.0f}" for r in recs if r["scenario"] == scn and r["target"] == "cloudpki")
    nruns = " / ".join(f"{r['rps']:,.0f}" for r in recs if r["scenario"] == scn and r["target"] == "nginx")
    errs = sum(r["errors"] for r in recs if r["scenario"] == scn)
    ratio, cpu = c / n, cu / nu
    verdict = "met" if ratio >= 1.2 and cpu <= 0.8 else "MISSED"
    rows.append(f"| {scn} | {c:,.0f} ({runs}) | {n:,.0f} ({nruns}) | **{ratio:.2f}×** | {cu:.1f} / {nu:.1f} (= {cpu:.2f}×) | "
                f"{med(scn, 'cloudpki', 'p99_ms'):.2f} / {med(scn, 'nginx', 'p99_ms'):.2f} | "
                f"{med(scn, 'cloudpki', 'server_cpu_pct'):.0f} / {med(scn, 'nginx', 'server_cpu_pct'):.0f} | {errs:.0f} | {verdict} |")
    if any(r["target"] == "hyper" for r in recs):
        h, hu = med(scn, "hyper", "rps"), med(scn, "hyper", "server_us_per_req")
        hruns = " / ".join(f"{r['rps']:,.0f}" for r in recs if r["scenario"] == scn and r["target"] == "hyper")
        floor.append(f"| {scn} | {h:,.0f} ({hruns}) | **{h / n:.2f}×** | {hu:.1f} / {nu:.1f} (= {hu / nu:.2f}×) | "
                     f"**{c / h:.2f}×** | {cu - hu:+.1f} |")
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
replace_section(results, [
    "## OCSP against nginx (ocsp-vs-nginx.sh)",
    "",
    f"* Date: {now}; command: `{cmd}`; tree {rev}; binary built {binary}; nginx {nginx}; raw: `{os.path.relpath(out, os.path.dirname(results))}`",
    "* Server (cloudpki one tokio worker / nginx one worker) pinned to CPU 0, `wrk -t1 -c64` pinned to CPU 1; the fixture's 1000 "
    "sampled serials round-robin (SHA-1 CertID, no nonce; nginx: one file per GET, one canned answer for every POST); "
    "three interleaved rounds, medians. Target: req/s ≥ 1.2× nginx and server CPU per answer ≤ 0.8× nginx's.",
    f"* Every body checked after the load: `{json.dumps(val)[:300]}`",
    "",
    "| scenario | cloudpki req/s (runs) | nginx req/s (runs) | ratio | server µs CPU/answer cloudpki / nginx | p99 ms c / n | server CPU % c / n | errors | verdict |",
    "|---|---|---|---|---|---|---|---|---|",
    *rows,
    "",
    *([
        "The floor: `examples/hyper_floor` (hyper with cloudpki's configuration, one worker, no OCSP work: a GET is one "
        "hash lookup of its path in cloudpki's own answers, a POST's body is read and one canned answer sent), in the "
        "same rounds. What it cannot beat nginx by, cloudpki cannot while it keeps hyper.",
        "",
        "| scenario | hyper floor req/s (runs) | floor ÷ nginx | server µs CPU/answer floor / nginx | cloudpki ÷ floor | cloudpki's own µs/answer |",
        "|---|---|---|---|---|---|",
        *floor,
        "",
    ] if floor else []),
])
PY
log "done: $OUT"
