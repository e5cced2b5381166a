#!/usr/bin/env bash
# Partitioned CRLs at 1M certificates in one issuing CA (16 partitions, the default):
#   1. 100k leaves revoked first (`cert revoke-all --limit 100000`, the CLI beside the server);
#   2. freshness: 200 revocations through the API, one at a time, each timed until the leaf's own
#      partition CRL, as served, lists it (p50/p99);
#   3. mass revocation: `cert revoke-all --limit 500000` through the CLI while the server runs:
#      time until the CLI acknowledged the last batch, time until every partition served lists
#      all 600k, server RSS before and after, OCSP GET and CRL GET latency sampled throughout.
# Writes load-tests/out/crl-mass-*/ and the "CRLs at 1M certificates" section of RESULTS.md.
#
#   load-tests/crl-mass-revocation.sh   # first run makes the 1M fixture (~5 min, ~3 GB, cached in
#                                       # load-tests/.data/crl-1m); each run works on a copy
# Knobs: N (1000000), PRE (100000), MASS (500000), FRESH (200), FIX, KEEP_COPY (1: keep the copy).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
source "$HERE/lib/common.sh"

BIN=${CLOUDPKI:-$ROOT/target/release/cloudpki}
N=${N:-1000000}; PRE=${PRE:-100000}; MASS=${MASS:-500000}; FRESH=${FRESH:-200}
FIX=${FIX:-$HERE/.data/crl-1m}
OUT=${OUT:-$HERE/out/crl-mass-$(date +%Y%m%d-%H%M%S)}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
CMDLINE="N=$N PRE=$PRE MASS=$MASS FRESH=$FRESH ${0#$ROOT/} $*"
TMP=$(mktemp -d /tmp/cloudpki-crl-mass.XXXXXX)
mkdir -p "$OUT"
trap 'rc=$?; cleanup_all; [ "${KEEP_COPY:-0}" = 1 ] || rm -rf "$TMP"; [ $rc -eq 0 ] || log "FAILED (exit $rc); outputs in $OUT"; exit $rc' EXIT
trap 'exit 130' INT TERM

private_binary

if [ ! -f "$FIX/done" ]; then
  log "generating $N leaves in $FIX (several minutes)"
  N=$N FIX=$FIX CLOUDPKI=$BIN PORT=18194 STORM=0 REVOKED=0 LIST_LIMIT=20000 "$HERE/gen-fixture.sh"
fi
source "$FIX/ids.env"
BASE=http://127.0.0.1:$PORT
ss -Hltn "sport = :$PORT" | grep -q . && { log "port $PORT in use"; exit 1; }

log "copying the fixture ($(du -sh "$FIX/data" | cut -f1))"
cp -a "$FIX/data" "$TMP/data"
D=$TMP/data
pki() { "$BIN" --data-dir "$D" "$@"; }
rss_mb() { echo $(( $(awk '/VmRSS/ {print $2}' "/proc/$1/status") / 1024 )); }
metric_sum() { python3 "$HERE/lib/crl_mass.py" entries "$BASE" "$ISSUING_ID"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
wait_entries() {  # wait_entries N TIMEOUT_S: until the CA's partitions served list N entries
  local want=$1 deadline=$(( $(date +%s) + $2 )) got
  while :; do
    got=$(metric_sum)
    [ "$got" -ge "$want" ] && return 0
    [ "$(date +%s)" -le "$deadline" ] || { log "partitions list $got of $want entries"; return 1; }
    sleep 0.05
  done
}

log "starting the server"
START_NS=$(date +%s%N)
PIN=0 start_pg "$OUT/server.log" "$BIN" --data-dir "$D" serve --listen "127.0.0.1:$PORT"
SERVER=$PG
READY_MS=$(wait_ready "$BASE/readyz" "$SERVER" 300)
PID=$(pgrep -f -n -- "$D serve") || PID=$SERVER
RSS_START=$(rss_mb "$PID")
TOKEN=$(cat "$D/admin-token")
PARTITIONS=$(curl -sf "$BASE/crls/${ISSUING_ID}_v1/partitions.json")
NPART=$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$PARTITIONS")
log "ready in $READY_MS ms, RSS $RSS_START MB, $NPART CRLs ($PARTITIONS)"

log "1. revoking $PRE leaves (CLI beside the server)"
t0=$(now_ms)
pki --json cert revoke-all --ca "$ISSUING_ID" --limit "$PRE" --batch 1000 --yes >/dev/null
PRE_ACK_MS=$(( $(now_ms) - t0 ))
wait_entries "$PRE" 120
PRE_SEEN_MS=$(( $(now_ms) - t0 ))
log "   acknowledged in $PRE_ACK_MS ms, on every partition at $PRE_SEEN_MS ms"
curl -sf "$BASE/crls/${ISSUING_ID}_v1/1.crl" -o "$OUT/partition-1-pre.crl"
PART_KB=$(( $(stat -c %s "$OUT/partition-1-pre.crl") / 1024 ))

sleep 2   # the storm of step 1 over: lone revocations are published at once
log "2. freshness: $FRESH revocations through the API"
python3 "$HERE/lib/crl_mass.py" fresh "$BASE" "$TOKEN" "$ISSUING_ID" "$FRESH" "$OUT/fresh.json" >/dev/null
BEFORE_MASS=$(metric_sum)

log "3. mass revocation of $MASS leaves, OCSP and CRL probed throughout"
CRLS=$(python3 -c 'import json,sys; print(",".join(json.loads(sys.argv[1])))' "$PARTITIONS")
python3 "$HERE/lib/crl_mass.py" probe "$BASE" "$FIX/reqs/get.txt" "$CRLS" "$TMP/stop" "$OUT/probe.json" >/dev/null &
PROBE=$!
sleep 2
t0=$(now_ms); ticks0=$(pg_ticks "$SERVER")
/usr/bin/time -f '%U %S' -o "$TMP/cli.time" "$BIN" --data-dir "$D" --json cert revoke-all --ca "$ISSUING_ID" \
  --limit "$MASS" --batch 1000 --yes >/dev/null
MASS_ACK_MS=$(( $(now_ms) - t0 ))
CLI_CPU_S=$(awk '{printf "%.1f", $1 + $2}' "$TMP/cli.time")
RSS_PEAK_AT_ACK=$(rss_mb "$PID")
wait_entries $(( BEFORE_MASS + MASS )) 600
MASS_SEEN_MS=$(( $(now_ms) - t0 ))
SERVER_CPU_S=$(awk -v t=$(( $(pg_ticks "$SERVER") - ticks0 )) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz}')
sleep 2
touch "$TMP/stop"; wait "$PROBE"
RSS_END=$(rss_mb "$PID")
log "   acknowledged in $MASS_ACK_MS ms, every partition at $MASS_SEEN_MS ms; RSS $RSS_START -> $RSS_END MB"
log "   crl verify (every partition against the store)"
pki crl verify --ca "$ISSUING_ID" >"$OUT/crl-verify.txt"
curl -sf "$BASE/crls/${ISSUING_ID}_v1/1.crl" -o "$OUT/partition-1-after.crl"
PART_AFTER_KB=$(( $(stat -c %s "$OUT/partition-1-after.crl") / 1024 ))
curl -sf "$BASE/metrics" | grep -E '^cloudpki_(crl_build_duration_seconds_(sum|count)|signatures_total\{purpose="crl"\})' >"$OUT/metrics.txt" || true
stop_pg "$SERVER"

python3 - "$OUT" "$RESULTS" <<EOF
import json, re, sys
out, results = sys.argv[1], sys.argv[2]
fresh = json.load(open(f"{out}/fresh.json"))
probe = json.load(open(f"{out}/probe.json"))
metrics = open(f"{out}/metrics.txt").read()
def m(name):
    x = re.search(re.escape(name) + r" ([0-9.e+]+)", metrics)
    return float(x.group(1)) if x else float("nan")
builds = m("cloudpki_crl_build_duration_seconds_count")
build_ms = 1000 * m("cloudpki_crl_build_duration_seconds_sum") / builds if builds else float("nan")
f, a = fresh["from_request_sent"], fresh["from_commit_acknowledged"]
lines = [
  "## CRLs at 1M certificates: partitions, freshness, mass revocation",
  "",
  "Command: \`$CMDLINE\` (binary $BIN_INFO). One issuing CA (P-256) with $N leaves from the bulk path, the",
  "default $((NPART - 1)) partitions plus current.crl; server and CLI unpinned on the 2 cores; SQLite.",
  "",
  "| measure | value | target |",
  "|---|---|---|",
  f"| start to /readyz, RSS at start | $READY_MS ms, $RSS_START MB | |",
  f"| $PRE revocations (CLI) acknowledged / on every partition | $PRE_ACK_MS ms / $PRE_SEEN_MS ms | |",
  f"| one partition's CRL with ~$PRE/$((NPART - 1)) entries | $PART_KB KB | |",
  f"| one revocation (API) until its partition serves it, from the commit's answer: p50 / p99 / max | {a['p50_ms']:.1f} / {a['p99_ms']:.1f} / {a['max_ms']:.1f} ms | p99 <= 10 ms |",
  f"| the same from the request sent (includes the commit's fsync) | {f['p50_ms']:.1f} / {f['p99_ms']:.1f} / {f['max_ms']:.1f} ms | |",
  f"| CRL signing (sign + check before publication), mean over {builds:.0f} CRLs of the run | {build_ms:.2f} ms | re-sign one partition <= 5 ms |",
  f"| mass revocation of $MASS (CLI, batches of 1000) acknowledged | $MASS_ACK_MS ms | <= 30 s |",
  f"| ... and every partition serves all of them | $MASS_SEEN_MS ms after the start | <= 30 s |",
  f"| CPU meanwhile: the CLI (signing 1 OCSP answer per leaf, SQLite) / the server (following, CRLs) | $CLI_CPU_S s / $SERVER_CPU_S s of 2 cores × {$MASS_SEEN_MS / 1000:.0f} s | |",
  f"| server RSS start / at the acknowledgement / end | $RSS_START / $RSS_PEAK_AT_ACK / $RSS_END MB | |",
  f"| one partition's CRL after ({(int('$BEFORE_MASS') + $MASS) // ($NPART - 1)} entries) | $PART_AFTER_KB KB | |",
  f"| OCSP GET during the mass revocation: p50 / p99 / max ({probe['ocsp_get']['n']} requests) | {probe['ocsp_get']['p50_ms']:.1f} / {probe['ocsp_get']['p99_ms']:.1f} / {probe['ocsp_get']['max_ms']:.1f} ms | answering throughout |",
  f"| CRL GET (a partition) during it: p50 / p99 / max ({probe['crl_get']['n']} requests) | {probe['crl_get']['p50_ms']:.1f} / {probe['crl_get']['p99_ms']:.1f} / {probe['crl_get']['max_ms']:.1f} ms | |",
  f"| probe answers other than 200, connection errors | {probe['non_200']}, {probe['errors']} | 0 |",
  "",
  "\`cloudpki crl verify\` afterwards (every partition fetched and compared with the store): " +
     ("all ok" if all(l.startswith("ok") for l in open(f"{out}/crl-verify.txt").read().splitlines()) else "DIFFERENCES, see crl-verify.txt"),
  "",
]
sys.path.insert(0, "$HERE/lib")
from results_section import replace_section
replace_section(results, lines)
print("\n".join(lines))
EOF
