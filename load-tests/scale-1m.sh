#!/usr/bin/env bash
# 1M certificates in one issuing CA: startup time to /readyz, RSS, and OCSP GET req/s on that data.
#   load-tests/scale-1m.sh        # first run ~10 min (issue-bulk of 1M leaves, ~4.5 GB of SQLite),
#                                 # then ~2 min; replaces the "1M certificates" section of RESULTS.md
# Knobs: N (1000000), FIX (load-tests/.data/scale-1m), STARTS (server starts measured, 3),
#   DURATION (s per load run, 10), VUS (64), PIN (1), SKIP_BUILD (1: build is run.sh's job).
# Goals: RSS <= 1.5 GB, startup <= 15 s. Same pinning as run.sh (server on CPU 0 with one tokio
# worker, load generator on CPU 1), so the req/s compare with the 10k-certificate run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
source "$HERE/lib/common.sh"

BIN=${CLOUDPKI:-$ROOT/target/release/cloudpki}
N=${N:-1000000}
FIX=${FIX:-$HERE/.data/scale-1m}
OUT=${OUT:-$HERE/out/scale-1m-$(date +%Y%m%d-%H%M%S)}
STARTS=${STARTS:-3}; DURATION=${DURATION:-10}; VUS=${VUS:-64}
PIN=${PIN:-1}; SERVER_CPU=${SERVER_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
NICE=${NICE:-$( [ "$(id -u)" = 0 ] && echo -10 || echo 0 )}; QUIET_MAX=${QUIET_MAX:-10}
export NICE
RESULTS=${RESULTS:-$HERE/RESULTS.md}
export K6_NO_USAGE_REPORT=true
K6=${K6:-$(command -v k6 || true)}
CMDLINE="N=$N NICE=$NICE ${0#$ROOT/} $*"
TMP=$(mktemp -d /tmp/cloudpki-scale.XXXXXX)
STATIC=$TMP/static
mkdir -p "$OUT/raw"
trap 'rc=$?; cleanup_all; rm -rf "$TMP"; [ $rc -eq 0 ] || log "FAILED (exit $rc); raw outputs in $OUT"; exit $rc' EXIT
trap 'exit 130' INT TERM
prioritize

if [ "${SKIP_BUILD:-1}" != 1 ]; then (cd "$ROOT" && cargo build --release); fi
[ -x "$BIN" ] || { log "no binary $BIN: cargo build --release"; exit 1; }
# Run a private copy: target/ is shared with a developer whose builds replace the binary, and
# one run must use one binary for servers and CLI alike.
cp -p "$BIN" "$TMP/cloudpki"
BIN_INFO="$(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$BIN" | cut -c1-12)"
BIN=$TMP/cloudpki

if [ ! -f "$FIX/done" ]; then
  log "generating $N leaves in $FIX (several minutes)"
  # Only the first 20000 leaves are listed to pick the sample from (a JSON list of 1M is ~0.5 GB).
  N=$N FIX=$FIX CLOUDPKI=$BIN PORT=18193 STORM=0 LIST_LIMIT=20000 "$HERE/gen-fixture.sh"
fi
source "$FIX/ids.env"
BASE=http://127.0.0.1:$PORT
ss -Hltn "sport = :$PORT" | grep -q . && { log "port $PORT in use"; exit 1; }
SERVER_ENV=(env); [ "$PIN" = 1 ] && SERVER_ENV+=(TOKIO_WORKER_THREADS=1)
DB_MB=$(( $(du -sk "$FIX/data" | cut -f1) / 1024 ))

# --- startup time and RSS, STARTS times (the page cache is warm after the first) ------------
: >"$OUT/starts.tsv"
for i in $(seq "$STARTS"); do
  START_NS=$(date +%s%N)
  start_pg "$OUT/cloudpki-$i.log" "${SERVER_ENV[@]}" "$BIN" --data-dir "$FIX/data" serve --listen "127.0.0.1:$PORT"
  pg=$PG
  ms=$(wait_ready "$BASE/readyz" "$pg" 120)
  rss=$(rss_kb "$pg"); hwm=$(rss_kb "$pg" VmHWM)
  log "start $i: ready in $ms ms, VmRSS $((rss / 1024)) MB, VmHWM $((hwm / 1024)) MB"
  printf '%s\t%s\t%s\n' "$ms" "$rss" "$hwm" >>"$OUT/starts.tsv"
  [ "$i" = "$STARTS" ] || stop_pg "$pg"
done

# --- correctness and OCSP GET load on the last instance --------------------------------------
python3 "$HERE/lib/fetch_static.py" "$BASE" "$FIX" "$STATIC"
VALIDATE=$(python3 "$HERE/lib/validate.py" cloudpki "$BASE" "$FIX" || true)
echo "$VALIDATE" >&2
if command -v wrk >/dev/null; then
  WRK_ARGS=(get "$FIX/reqs/get.txt")
  log "ocsp-get: wrk peak"
  run_load wrk "" "$BASE" "ocsp-get-wrk-peak" "$pg" scenario=ocsp-get target=cloudpki-1m mode=peak || true
fi
if [ -n "$K6" ]; then
  K6_ENV=()
  log "ocsp-get: k6 peak"
  run_load k6 ocsp-get "$BASE" "ocsp-get-k6-peak" "$pg" scenario=ocsp-get target=cloudpki-1m mode=peak || true
  rate=$(python3 "$HERE/lib/report.py" rate "$OUT/results.jsonl" ocsp-get cloudpki-1m 0.5)
  K6_ENV=(RATE="$rate")
  log "ocsp-get: k6 at half of peak ($rate req/s)"
  run_load k6 ocsp-get "$BASE" "ocsp-get-k6-half" "$pg" scenario=ocsp-get target=cloudpki-1m mode=half rate="$rate" || true
fi
RSS_END=$(rss_kb "$pg"); HWM_END=$(rss_kb "$pg" VmHWM)
stop_pg "$pg"
LOGW=$(grep -aE 'WARN|ERROR' "$OUT"/cloudpki-*.log | head -3 | sed 's/\x1b\[[0-9;]*m//g' | tr '\n' ' ' || true)
LOADED=$(grep -ah 'snapshot loaded' "$OUT/cloudpki-1.log" | sed 's/\x1b\[[0-9;]*m//g' | head -1 || true)

# --- section for RESULTS.md ------------------------------------------------------------------
GIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)"
python3 - "$OUT" "$CMDLINE" "$N" "$DB_MB" "$RSS_END" "$HWM_END" "$VALIDATE" "${LOGW:-none}" "$LOADED" \
  "$(cat "$FIX/issue-bulk.time" 2>/dev/null || echo '?')" "binary built $BIN_INFO; tree at run time: $GIT" >"$OUT/section.md" <<'EOF'
import json, os, platform, re, statistics, sys, time
out, cmd, n, db_mb, rss_end, hwm_end, validate, logw, loaded, bulk, binary = sys.argv[1:12]
starts = [list(map(int, l.split("\t"))) for l in open(f"{out}/starts.tsv").read().splitlines()]
recs = [json.loads(l) for l in open(f"{out}/results.jsonl")] if os.path.exists(f"{out}/results.jsonl") else []
cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1).strip()
ms = [s[0] for s in starts]; rss = [s[1] / 1024 for s in starts]
worst_s, worst_rss = max(ms) / 1000, max(max(rss), int(hwm_end) / 1024)
L = ["<!-- scale-1m -->", "## 1M certificates (scale-1m.sh)", "",
     f"* Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command: `{cmd}`; raw: `{out.split('/load-tests/')[-1]}`  ",
     f"* Machine: {os.cpu_count()} CPUs ({cpu}), kernel {platform.release()}; server pinned to CPU 0 with one tokio worker, nice {os.environ.get('NICE', '0')}  ",
     f"* cloudpki: {binary}  ",
     f"* Data: {int(n):,} leaves in one issuing CA (P-256), SQLite data dir {int(db_mb):,} MB; issue-bulk: {bulk}  ",
     f"* Server log at load: `{loaded}`", "",
     "| goal | measured | verdict |", "|---|---|---|",
     f"| startup to /readyz ≤ 15 s | {', '.join(f'{m / 1000:.2f}' for m in ms)} s over {len(ms)} starts (worst {worst_s:.2f} s) | "
     f"{'met' if worst_s <= 15 else f'MISSED by {worst_s - 15:.1f} s'} |",
     f"| RSS ≤ 1.5 GB | after start {', '.join(f'{r:,.0f}' for r in rss)} MB; after load {int(rss_end) / 1024:,.0f} MB; "
     f"peak (VmHWM) {int(hwm_end) / 1024:,.0f} MB | {'met' if worst_rss <= 1536 else f'MISSED by {worst_rss - 1536:,.0f} MB'} |", ""]
if recs:
    L += ["| OCSP GET on 1M | req/s | p50 ms | p99 ms | server CPU % | server µs CPU/req | errors |", "|---|---|---|---|---|---|---|"]
    for r in recs:
        what = f"{r['tool']} {r['mode']}" + (f" ({r['rate']:.0f} req/s)" if r["mode"] == "half" else "")
        L.append(f"| {what} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['server_cpu_pct']:.0f} | "
                 f"{r['server_us_per_req']:.1f} | {r['errors']:.0f} |")
    L.append("")
L += [f"* Validation on 1M (1000 sampled serials by GET and POST, SHA-256, nonce, unknown, CRL, AIA): `{validate}`",
      f"* WARN/ERROR log lines: {logw}", ""]
print("\n".join(L))
EOF
# Replace the section in RESULTS.md (from its marker to the end, keeping the hand-written fleet
# section that follows it: <!-- fleet --> to the end), or append it.
fleet=""
if [ -f "$RESULTS" ]; then fleet=$(sed -n '/^<!-- fleet -->/,$p' "$RESULTS"); fi
if [ -f "$RESULTS" ] && grep -q '^<!-- scale-1m -->' "$RESULTS"; then
  sed -i '/^<!-- scale-1m -->/,$d' "$RESULTS"
elif [ -n "$fleet" ]; then
  sed -i '/^<!-- fleet -->/,$d' "$RESULTS"
fi
cat "$OUT/section.md" >>"$RESULTS"
[ -z "$fleet" ] || printf '%s\n' "$fleet" >>"$RESULTS"
log "wrote the 1M section of $RESULTS"
cat "$OUT/section.md"
