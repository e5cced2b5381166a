# common.sh - sourced by run.sh and scale-1m.sh: server start/stop, CPU accounting, load runs.
# Every server is started in its own process group (setsid) and stopped only through that
# group id (see stop_pg); cleanup_all runs from the callers' EXIT trap.

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

STARTED_PGIDS=()

# private_binary: checks $BIN, copies it into $TMP and points BIN at the copy (target/ is shared
# with builds that replace the binary: one run, one binary), BIN_INFO at what it was built from.
private_binary() {
  [ -x "$BIN" ] || { log "no binary $BIN: cargo build --release"; exit 1; }
  cp -p "$BIN" "$TMP/cloudpki"
  BIN_INFO="$(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$BIN" | cut -c1-12)"
  BIN=$TMP/cloudpki
}

# start_pg LOGFILE CMD... : runs CMD in a new session/process group; sets PG (pid = pgid).
# With PIN=1 the server is pinned to $SERVER_CPU. Its nice value is inherited from the script
# (prioritize: NICE, e.g. -10, root only); its session's autogroup gets NICE as well. (setsid does not fork here: a background job
# of a non-interactive shell is not a group leader, so $! is the server's pid and its pgid.)
start_pg() {
  local logf=$1; shift
  local pin=(); [ "${PIN:-1}" = 1 ] && pin=(taskset -c "$SERVER_CPU")   # nice: inherited (prioritize)
  # The new session gets its own scheduler autogroup; give it the NICE weight too (see prioritize)
  "${pin[@]}" setsid bash -c 'echo "$0" >/proc/self/autogroup 2>/dev/null; exec "$@"' "${NICE:-0}" "$@" \
    >"$logf" 2>&1 </dev/null &
  PG=$!
  STARTED_PGIDS+=("$PG")
}

# With kernel.sched_autogroup_enabled=1 (as here) CPU is shared between sessions first, so a
# process's nice only counts inside its own session: a co-tenant's `cargo build` in another
# session gets an equal share whatever the nice values. So also set the autogroup nice of this
# script's session (load generators, storm CLI) and of each server's session (start_pg).
prioritize() {
  [ "${NICE:-0}" = 0 ] && return 0
  renice -n "$NICE" -p $$ >/dev/null 2>&1 || true
  echo "$NICE" >/proc/$$/autogroup 2>/dev/null || true
}

stop_pg() {  # stop_pg PGID: TERM the group, KILL it after 10 s
  local pg=$1 i
  [ -n "$pg" ] || return 0
  if kill -TERM -- "-$pg" 2>/dev/null; then
    for i in $(seq 100); do kill -0 -- "-$pg" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pg" 2>/dev/null || true
  fi
  wait "$pg" 2>/dev/null || true
  # forget it, so that cleanup_all never signals a group id the kernel may have reused
  local keep=() p; for p in "${STARTED_PGIDS[@]}"; do [ "$p" = "$pg" ] || keep+=("$p"); done
  STARTED_PGIDS=("${keep[@]}")
}

cleanup_all() {
  local pg
  for pg in "${STARTED_PGIDS[@]}"; do stop_pg "$pg"; done
}

# wait_ready URL PID TIMEOUT_S : polls URL (every 10 ms) until HTTP 200; prints elapsed ms
# since START_NS (set by the caller just before starting the server).
wait_ready() {
  local url=$1 pid=$2 timeout=$3 deadline
  deadline=$(( $(date +%s) + timeout ))
  while [ "$(date +%s)" -le "$deadline" ]; do
    if curl -sf -o /dev/null --max-time 1 "$url"; then
      echo $(( ($(date +%s%N) - START_NS) / 1000000 )); return 0
    fi
    kill -0 "$pid" 2>/dev/null || { log "server $pid exited during startup"; return 1; }
    sleep 0.01
  done
  log "not ready after ${timeout}s: $url"; return 1
}

# admin_token DATA_DIR PRINCIPAL TTL_S: makes PRINCIPAL an Intune Administrator of the data dir and
# prints a management-API token for it (revocations through the API, as an administrator makes them).
admin_token() {
  "$BIN" --data-dir "$1" role assign --principal "$2" --role "Intune Administrator" >/dev/null
  "$BIN" --data-dir "$1" token create --principal "$2" --scope DeviceManagementCloudCA.ReadWrite.All --ttl "$3"
}

rss_kb() { awk -v k="${2:-VmRSS}:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

pg_ticks() {  # CPU clock ticks (user+sys incl. reaped children) of process group $1
  local t=0 f line rest
  [ -n "$1" ] || { echo 0; return; }
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$f" || continue   # (2> first: processes may vanish meanwhile)
    rest=${line##*) }; set -- "$1" $rest
    [ "$4" = "$1" ] && t=$((t + ${13} + ${14} + ${15} + ${16}))
  done
  echo "$t"
}

cpu_busy() {  # all-core busy ticks (user+nice+system+irq+softirq+steal) and total
  local _c u n s i w q sq st _r; read -r _c u n s i w q sq st _r </proc/stat
  echo $((u+n+s+q+sq+st)) $((u+n+s+i+w+q+sq+st))
}

# The box is shared (another developer builds on it): before each run wait up to QUIET_MAX s
# for all-core busy <= QUIET_PCT %; the run's other_cpu_pct records what still interfered.
wait_quiet() {
  local t=0 a b busy
  [ "${NO_QUIET:-0}" = 1 ] && return 0
  while :; do
    a=($(cpu_busy)); sleep 1; b=($(cpu_busy))
    busy=$(( 100 * (b[0] - a[0]) / (b[1] - a[1] + 1) ))
    [ "$busy" -le "${QUIET_PCT:-25}" ] && return 0
    [ "$t" -eq 0 ] && log "box busy ($busy % of all cores); waiting up to ${QUIET_MAX:-20}s"
    t=$((t + 1)); [ "$t" -ge "${QUIET_MAX:-20}" ] && { log "still busy ($busy %); running anyway"; return 0; }
  done
}

# run_load TOOL SCRIPT_OR_MODE BASE TAG PGID [key=value ...] -> one record in $OUT/results.jsonl
#   k6:  SCRIPT = k6/<name>.js; extra k6 env via K6_ENV array (RATE, CHECK, POST_CANNED, VUS...)
#   wrk: MODE ARGS via WRK_ARGS array
run_load() {
  local tool=$1 what=$2 base=$3 tag=$4 pg=$5; shift 5
  local raw="$OUT/raw/$tag" lp=() t0 t1 c0 c1
  [ "${PIN:-1}" = 1 ] && lp=(taskset -c "$LOAD_CPU")
  wait_quiet
  c0=($(cpu_busy)); t0=$(pg_ticks "$pg")
  if [ "$tool" = k6 ]; then
    /usr/bin/time -f 'TIME %e %U %S' -o "$raw.time" "${lp[@]}" \
      "$K6" run --quiet --no-usage-report --no-color \
      -e BASE="$base" -e FIX="$FIX" -e STATIC="$STATIC" -e DURATION="${DURATION}s" -e VUS="$VUS" \
      -e SUMMARY="$raw.json" "${K6_ENV[@]/#/--env=}" "$HERE/k6/$what.js" >"$raw.txt" 2>&1 || true
  else
    /usr/bin/time -f 'TIME %e %U %S' -o "$raw.time" "${lp[@]}" \
      wrk -t1 -c"${WRK_CONNS:-$VUS}" -d"${DURATION}s" --timeout 5s -s "$HERE/wrk/req.lua" "$base/" -- "${WRK_ARGS[@]}" \
      >"$raw.txt" 2>&1 || true
  fi
  t1=$(pg_ticks "$pg"); c1=($(cpu_busy))
  if [ "$tool" = k6 ] && [ ! -s "$raw.json" ]; then log "k6 failed: $(tail -3 "$raw.txt")"; return 1; fi
  if [ "$tool" = wrk ] && ! grep -q WRKJSON "$raw.txt"; then log "wrk failed: $(tail -3 "$raw.txt")"; return 1; fi
  python3 "$HERE/lib/report.py" add "$OUT/results.jsonl" "$raw" tool="$tool" server_ticks=$((t1 - t0)) \
    all_busy_ticks=$((c1[0] - c0[0])) hz="$(getconf CLK_TCK)" "$@"
}

# The nginx static baseline's configuration (run.sh and fleet.sh): the same
# bytes as files, one file per GET, a canned answer for every POST.
#   static_nginx_conf DIR PORT STATIC_ROOT WORKERS > DIR/nginx.conf
static_nginx_conf() {
  local dir=$1 port=$2 static=$3 workers=$4
  cat <<EOF
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_processes $workers;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000; keepalive_timeout 60s;
  open_file_cache max=4096 inactive=60s;   # 1000+ small files: keep their descriptors open
  types {}
  server {
    listen 127.0.0.1:$port;
    root $static;
    # GET /ocsp/<urlencoded base64>: nginx decodes the URI, so %2F becomes a sub-directory of
    # static/ocsp/ (fetch_static.py lays the files out that way): one real file per request.
    location /ocsp/   { default_type application/ocsp-response; }
    # POST /ocsp: a static file answers POST with 405; error_page turns that into the canned
    # answer (the peers' trick), so POST costs nginx one internal redirect.
    location = /ocsp  { error_page 405 =200 /ocsp-post.der; return 405; }
    location = /ocsp-post.der { internal; default_type application/ocsp-response; }
    location /crls/    { default_type application/pkix-crl; }
    location /cacerts/ { default_type application/pkix-cert; }
  }
}
EOF
}
