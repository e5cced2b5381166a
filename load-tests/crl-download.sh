#!/usr/bin/env bash
# CRL downloads against nginx serving the same bytes from files: three CRLs of about 60 KB, 600 KB
# and 6 MB (1,200, 12,000 and 122,000 entries with a reason code, one issuing CA each, unpartitioned
# so one CRL holds them all). Server (cloudpki with one tokio worker, or nginx with one worker)
# pinned to CPU 0, wrk pinned to CPU 1, the same run, 3 interleaved runs per size, median req/s
# and server CPU per download. Writes the "CRL downloads against nginx" section of RESULTS.md.
#
#   load-tests/crl-download.sh        # first run builds the CAs (~1 min, cached in .data/crl-sizes)
# Knobs: DURATION (s per run, 10), RUNS (3), CONNS (wrk connections, 16), FIX.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
source "$HERE/lib/common.sh"

BIN=${CLOUDPKI:-$ROOT/target/release/cloudpki}
FIX=${FIX:-$HERE/.data/crl-sizes}
DURATION=${DURATION:-10}; RUNS=${RUNS:-3}; CONNS=${CONNS:-16}
PORT=${PORT:-18195}; NGINX_PORT=${NGINX_PORT:-18196}
SERVER_CPU=${SERVER_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}; PIN=1
NICE=${NICE:-$( [ "$(id -u)" = 0 ] && echo -10 || echo 0 )}; export NICE
OUT=${OUT:-$HERE/out/crl-download-$(date +%Y%m%d-%H%M%S)}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
CMDLINE="DURATION=$DURATION RUNS=$RUNS CONNS=$CONNS ${0#$ROOT/} $*"
TMP=$(mktemp -d /tmp/cloudpki-crl-dl.XXXXXX)
chmod 755 "$TMP"
mkdir -p "$OUT"
trap 'rc=$?; cleanup_all; rm -rf "$TMP"; [ $rc -eq 0 ] || log "FAILED (exit $rc); outputs in $OUT"; exit $rc' EXIT
trap 'exit 130' INT TERM
prioritize
command -v nginx >/dev/null || { log "nginx missing: apt-get install nginx-light"; exit 1; }
command -v wrk >/dev/null || { log "wrk missing: apt-get install wrk"; exit 1; }
private_binary
SIZES=(60k:1200 600k:12000 6m:122000)

if [ ! -f "$FIX/done" ]; then
  log "building the CRLs in $FIX"
  rm -rf "$FIX.tmp"; mkdir -p "$FIX.tmp"
  pki() { "$BIN" --data-dir "$FIX.tmp/data" --json "$@"; }
  jget() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
  root=$("$BIN" --data-dir "$FIX.tmp/data" --public-url "http://127.0.0.1:$PORT" --json \
    ca create --type root --common-name "CRL Size Root" --key-size eCP256 | jget id)
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$FIX.tmp/leaf.key" \
    -subj "/CN=crl-size" -out "$FIX.tmp/leaf.csr" 2>/dev/null
  for s in "${SIZES[@]}"; do
    name=${s%%:*}; n=${s##*:}
    id=$(pki ca create --type issuing --issuer "$root" --common-name "CRL Size $name" --key-size eCP256 \
      --crl-partitions 0 | jget id)
    pki cert issue-bulk --ca "$id" --csr "$FIX.tmp/leaf.csr" --count "$n" --batch 5000 >/dev/null
    pki cert revoke-all --ca "$id" --reason keyCompromise --batch 2000 --yes >/dev/null
    echo "$name $id $n" >>"$FIX.tmp/cas.txt"
  done
  touch "$FIX.tmp/done"; rm -rf "$FIX"; mv "$FIX.tmp" "$FIX"
fi

cp -a "$FIX/data" "$TMP/data"
log "starting cloudpki on CPU $SERVER_CPU (one tokio worker)"
START_NS=$(date +%s%N)
TOKIO_WORKER_THREADS=1 start_pg "$OUT/cloudpki.log" "$BIN" --data-dir "$TMP/data" serve --listen "127.0.0.1:$PORT"
CLOUDPKI_PG=$PG
wait_ready "http://127.0.0.1:$PORT/readyz" "$CLOUDPKI_PG" 120 >/dev/null
STATIC=$TMP/static
while read -r name id n; do
  mkdir -p "$STATIC/crls/${id}_v1"
  curl -sf "http://127.0.0.1:$PORT/crls/${id}_v1/current.crl" -o "$STATIC/crls/${id}_v1/current.crl"
  echo "/crls/${id}_v1/current.crl" >"$TMP/$name.list"
done <"$FIX/cas.txt"
chmod -R a+rX "$STATIC"
mkdir -p "$TMP/nginx"
static_nginx_conf "$TMP/nginx" "$NGINX_PORT" "$STATIC" 1 >"$TMP/nginx/nginx.conf"
start_pg "$OUT/nginx.log" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf"
NGINX_PG=$PG
sleep 0.5

one_run() {  # one_run TARGET_URL PGID LIST -> "req_per_s server_cpu_us_per_req bytes_per_req p99_ms"
  local base=$1 pg=$2 list=$3 t0 t1 raw
  wait_quiet
  t0=$(pg_ticks "$pg")
  raw=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$HERE/wrk/req.lua" \
    "$base/" -- paths "$list" 2>&1 | grep WRKJSON | sed 's/^WRKJSON //')
  t1=$(pg_ticks "$pg")
  python3 - "$raw" $((t1 - t0)) "$(getconf CLK_TCK)" <<'EOF'
import json, sys
r = json.loads(sys.argv[1]); ticks, hz = int(sys.argv[2]), int(sys.argv[3])
bad = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"] + r["non2xx3xx"]
rps = r["requests"] / (r["duration_us"] / 1e6)
print(f"{rps:.1f} {1e6 * ticks / hz / max(r['requests'], 1):.1f} {r['bytes'] / max(r['requests'], 1):.0f} {r['p99_us'] / 1000:.2f} {bad}")
EOF
}

: >"$OUT/runs.txt"
while read -r name id n; do
  for run in $(seq "$RUNS"); do
    for tgt in cloudpki nginx; do
      if [ "$tgt" = cloudpki ]; then base=http://127.0.0.1:$PORT; pg=$CLOUDPKI_PG; else base=http://127.0.0.1:$NGINX_PORT; pg=$NGINX_PG; fi
      res=$(one_run "$base" "$pg" "$TMP/$name.list")
      log "$name run $run $tgt: $res"
      echo "$name $n $tgt $run $res" >>"$OUT/runs.txt"
    done
  done
done <"$FIX/cas.txt"

python3 - "$OUT/runs.txt" "$RESULTS" <<EOF
import statistics, sys, collections, os
runs = collections.defaultdict(list)
entries = {}
for line in open(sys.argv[1]):
    name, n, tgt, run, rps, cpu, size, p99, bad = line.split()
    runs[(name, tgt)].append((float(rps), float(cpu), int(size), float(p99), int(bad)))
    entries[name] = int(n)
lines = [
  "## CRL downloads against nginx",
  "",
  "Command: \`$CMDLINE\` (binary $BIN_INFO). One CRL per size (one issuing CA, unpartitioned, every",
  "leaf revoked with a reason code); cloudpki (one tokio worker) and nginx (one worker, sendfile, open_file_cache)",
  "each pinned to CPU $SERVER_CPU in turn, wrk (1 thread, $CONNS connections, keep-alive) pinned to CPU $LOAD_CPU;",
  "$RUNS interleaved runs of $DURATION s per size and server, medians.",
  "",
  "| CRL | entries | cloudpki req/s | nginx req/s | ratio | server CPU µs per download (cloudpki / nginx) | p99 ms (cloudpki / nginx) | errors | target |",
  "|---|---|---|---|---|---|---|---|---|",
]
for name in ["60k", "600k", "6m"]:
    c, g = runs[(name, "cloudpki")], runs[(name, "nginx")]
    med = lambda rs, i: statistics.median(r[i] for r in rs)
    ratio = med(c, 0) / med(g, 0)
    lines.append(f"| {c[0][2] / 1024:.0f} KB | {entries[name]:,} | {med(c, 0):,.0f} | {med(g, 0):,.0f} | {ratio:.2f}× | "
                 f"{med(c, 1):.0f} / {med(g, 1):.0f} | {med(c, 3):.1f} / {med(g, 3):.1f} | {sum(r[4] for r in c + g)} | "
                 f"≥ 1.0×: {'met' if ratio >= 1.0 else f'MISSED by {(1 - ratio) * 100:.0f} %'} |")
lines.append("")
results = sys.argv[2]
sys.path.insert(0, "$HERE/lib")
from results_section import replace_section
replace_section(results, lines)
print("\n".join(lines))
EOF
