#!/usr/bin/env bash
# kill -9 crash campaign: N trials per backend, each killing every cloudpki
# process of the trial with SIGKILL at a random moment during one operation
# (rotating through the five below), then restarting `serve` and checking that
# nothing acknowledged was lost and nothing unacknowledged is half-applied.
#
#   scripts/crash-campaign.sh N [--backend sqlite|postgres|both] [--results FILE] [--seed S]
#
# Scenarios (trial i runs scenario i mod 5):
#   revoke-all  `cert revoke-all --ca A --batch B` of a CA with LEAVES leaves
#               (acknowledged: the serials of each `--json` batch line); in
#               trials 20-39, 60-79, ... (row revoke-all-live) only the CLI is
#               killed first and the still running serve is checked (it must
#               follow the dead writer's commits; CRL numbers may not go down),
#               then serve is killed too, restarted and checked again
#   issue       3 curl loops on the API's issueLeafCertificate and one
#               `cert issue` loop (acknowledged: 201 / exit status 0)
#   crl         two `cert revoke` loops while `serve` re-signs the CRL on each
#               revocation; serve is killed first, the revokers up to 0.3 s later
#   kek         `kek rotate --new-kek-file F --batch-size 1` (45 sealed keys)
#               while serve runs under rollover (old KEK by --kek-file, new in
#               CLOUDPKI_NEXT_KEK); then `kek status`, `kek verify` with both
#               KEKs (no key half re-sealed), a resumed rotation to exit 0, and
#               `kek verify`, `cert issue` and serve (every CRL re-signed) under
#               the new KEK alone -- at once if the killed rotation had exited 0;
#               SKIPPED while `cloudpki kek --help` fails
#   storm       600 concurrent revokeLeafCertificate calls (curl --parallel,
#               16 at once) (acknowledged: 200 with certificateStatus revoked)
# Every trial runs `serve` (loopback port) and a CRL poller (curl + `openssl
# crl -crlnumber`) during the operation; the kill takes down the operation
# and serve at the same instant (PostgreSQL itself is not killed).
#
# After the restart (scripts/crash-verify.py): acknowledged changes present
# (CLI view of the store), rows whole (revocation time and reason, pre-signed
# OCSP answers, change-log entries), SQLite `PRAGMA integrity_check`, every
# CRL number served after the restart > the highest the poller saw before the
# kill, the served CRLs equal to the store for every leaf, and `openssl ocsp`
# on a sample of revoked and good leaves equal to the store.
#
# Fixtures (root, two issuing CAs with LEAVES leaves each, 40 more CAs without
# leaves, a token) are built
# once per binary and backend under $CRASH_CACHE_DIR (default
# ${CARGO_TARGET_DIR:-target}/crash-campaign) and copied per trial (SQLite: the
# data directory; PostgreSQL: CREATE DATABASE … TEMPLATE, in a throwaway
# cluster started with scripts/pg-throwaway.sh and stopped on exit). A failed
# trial's data directory (or pg_dump) and logs are kept under
# $CRASH_CACHE_DIR/failed/ for reproduction.
#
# Environment: CLOUDPKI_BIN (default: cargo build --release), LEAVES (3000),
# CRASH_PG_PORT (default: a free port), CRASH_CACHE_DIR.
# Exit status 0 only if every check of every trial passed.
set -euo pipefail
set -m # every background job in its own process group: kill -9 -- -PGID
shopt -s nullglob

usage() {
  echo "usage: $0 N [--backend sqlite|postgres|both] [--results FILE] [--seed S]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
COMMAND_LINE="scripts/crash-campaign.sh $*"
N=$1
shift
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] || usage
BACKENDS="sqlite postgres"
RESULTS=""
while [ $# -gt 0 ]; do
  case "$1" in
  --backend)
    case "${2:-}" in
    sqlite | postgres) BACKENDS=$2 ;;
    both) BACKENDS="sqlite postgres" ;;
    *) usage ;;
    esac
    shift 2
    ;;
  --results)
    RESULTS=${2:?}
    shift 2
    ;;
  --seed)
    RANDOM=${2:?}
    shift 2
    ;;
  *) usage ;;
  esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
VERIFY="$REPO/scripts/crash-verify.py"
LEAVES=${LEAVES:-3000}
SCENARIOS=(revoke-all issue crl kek storm)
LABEL=""

# Nothing from the caller's environment may point the trials elsewhere.
unset CLOUDPKI_KEK CLOUDPKI_KEK_FILE CLOUDPKI_NEXT_KEK CLOUDPKI_NEXT_KEK_FILE CLOUDPKI_DATABASE \
  CLOUDPKI_DATA_DIR CLOUDPKI_PUBLIC_URL CLOUDPKI_CONFIG CLOUDPKI_LISTEN CLOUDPKI_ROLE \
  CLOUDPKI_ADMIN_LISTEN CLOUDPKI_MAX_CAS

for tool in python3 openssl curl sha256sum shuf; do
  command -v "$tool" >/dev/null || {
    echo "$tool is required (scripts/install-test-deps.sh)" >&2
    exit 1
  }
done
python3 -c 'import cryptography, sqlite3' 2>/dev/null || {
  echo "python3 with the cryptography package is required (scripts/install-test-deps.sh)" >&2
  exit 1
}
if [[ $BACKENDS == *postgres* ]] && ! command -v psql >/dev/null; then
  echo "psql is required for --backend postgres (scripts/install-test-deps.sh installs PostgreSQL)" >&2
  exit 1
fi

if [ -n "${CLOUDPKI_BIN:-}" ]; then
  BIN=$CLOUDPKI_BIN
else
  (cd "$REPO" && cargo build --release --locked --bin cloudpki)
  BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/cloudpki
fi
[ -x "$BIN" ] || {
  echo "no cloudpki binary at $BIN" >&2
  exit 1
}
BIN_KEY=$(sha256sum "$BIN" | cut -c1-12)
CACHE=${CRASH_CACHE_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/crash-campaign}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
WORK=$(mktemp -d /tmp/crash-campaign.XXXXXX)
LOG=$CACHE/campaign-$(date +%Y%m%d-%H%M%S).log # every trial's findings
PG_DIR=$CACHE/pg
PG_STARTED=""
PG_ADMIN=""
# The URL of database $1 on the throwaway cluster: PG_ADMIN's path replaced,
# its query (sslmode=verify-full&sslrootcert=…) kept.
pg_db_url() {
  local base=${PG_ADMIN%%\?*}
  local query=${PG_ADMIN#"$base"}
  printf '%s/%s%s' "${base%/*}" "$1" "$query"
}
declare -A LIVE=() # process groups we started and have not reaped

cleanup() {
  local g
  for g in "${!LIVE[@]}"; do
    kill -9 -- "-$g" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ -n "$PG_STARTED" ]; then
    bash "$REPO/scripts/pg-throwaway.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ------------------------------------------------------------------ helpers
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rand() { # LO HI
  echo $(($1 + (RANDOM * 32768 + RANDOM) % ($2 - $1 + 1)))
}

sleep_ms() {
  sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"
}

now_ms() {
  date +%s%3N
}

# Starts "$@" in its own process group; PID (= PGID) in SPAWNED.
spawn() {
  "$@" &
  SPAWNED=$!
  LIVE[$SPAWNED]=1
}

# SIGKILL to whole process groups, then reap them.
kill9() {
  local g
  for g in "$@"; do
    kill -9 -- "-$g" 2>/dev/null || true
  done
  for g in "$@"; do
    wait "$g" 2>/dev/null || true
    unset "LIVE[$g]"
  done
}

# SIGTERM (graceful), SIGKILL after 10 s.
stop() {
  local g=$1 i
  kill -TERM -- "-$g" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$g" 2>/dev/null || break
    sleep 0.1
  done
  kill9 "$g"
}

wait_ready() { # URL SECONDS: until serve ($SERVE) answers /readyz, or exits
  local deadline=$(($(date +%s) + $2))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if curl -sf -m 2 -o /dev/null "$1/readyz"; then
      return 0
    fi
    kill -0 "$SERVE" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

json_id() {
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}

pg_exec() { # SQL, against the cluster's postgres database
  psql -X -q -v ON_ERROR_STOP=1 -At -d "$PG_ADMIN" -c "$1"
}

# ------------------------------------------------------------------ fixtures
# Sets F (fixture directory), FIXDB (PostgreSQL template) and the ids.
fixture() {
  local backend=$1 g
  F=$CACHE/fixture-v2-$backend-$BIN_KEY-$LEAVES
  FIXDB=crash_fixture_v2_${BIN_KEY}_$LEAVES
  if [ -e "$F/ready" ] && { [ "$backend" = sqlite ] ||
    [ "$(pg_exec "SELECT 1 FROM pg_database WHERE datname = '$FIXDB'")" = 1 ]; }; then
    # shellcheck disable=SC1091
    source "$F/ids"
    return
  fi
  echo "building the $backend fixture ($LEAVES leaves per issuing CA) in $F" >&2
  local started
  started=$(date +%s)
  rm -rf "$F"
  mkdir -p "$F"
  openssl rand -base64 32 >"$F/kek"
  g=(--data-dir "$F/data" --kek-file "$F/kek")
  if [ "$backend" = postgres ]; then
    pg_exec "DROP DATABASE IF EXISTS $FIXDB"
    pg_exec "CREATE DATABASE $FIXDB"
    g+=(--database "$(pg_db_url "$FIXDB")")
  fi
  "$BIN" "${g[@]}" --public-url http://127.0.0.1:8180 init >/dev/null
  ROOT=$("$BIN" "${g[@]}" --json ca create --type root --common-name "Crash Root" --key-size eCP256 | json_id)
  CA_A=$("$BIN" "${g[@]}" --json ca create --type issuing --issuer "$ROOT" --common-name "Crash A" \
    --key-size eCP256 | json_id)
  CA_B=$("$BIN" "${g[@]}" --json ca create --type issuing --issuer "$ROOT" --common-name "Crash B" \
    --key-size eCP256 | json_id)
  # 40 more CAs without leaves: 45 sealed keys, so a KEK rotation lasts long enough to be cut.
  local n
  for n in $(seq 1 40); do
    "$BIN" "${g[@]}" ca create --type issuing --issuer "$ROOT" --common-name "Crash Extra $n" \
      --key-size eCP256 >/dev/null
  done
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$F/leaf.key" \
    -subj /CN=crash-device -out "$F/csr.pem" 2>/dev/null
  "$BIN" "${g[@]}" cert issue-bulk --ca "$CA_A" --csr "$F/csr.pem" --count "$LEAVES" >/dev/null 2>&1
  "$BIN" "${g[@]}" cert issue-bulk --ca "$CA_B" --csr "$F/csr.pem" --count "$LEAVES" >/dev/null 2>&1
  "$BIN" "${g[@]}" ca cert "$ROOT" >"$F/root.pem"
  "$BIN" "${g[@]}" ca cert "$CA_A" >"$F/a.pem"
  "$BIN" "${g[@]}" ca cert "$CA_B" >"$F/b.pem"
  "$BIN" "${g[@]}" --json cert list --ca "$CA_A" >"$F/a.json"
  "$BIN" "${g[@]}" --json cert list --ca "$CA_B" >"$F/b.json"
  python3 "$VERIFY" leaves "$F/a.json" >"$F/a.tsv"
  python3 "$VERIFY" leaves "$F/b.json" >"$F/b.tsv"
  rm -f "$F/a.json" "$F/b.json"
  "$BIN" "${g[@]}" role assign --principal crash --role "Intune Administrator" >/dev/null
  "$BIN" "${g[@]}" token create --principal crash --scope DeviceManagementCloudCA.ReadWrite.All \
    --ttl 31000000 >"$F/token"
  python3 -c 'import json, sys; print(json.dumps({"certificateSigningRequest": open(sys.argv[1]).read(),
    "deviceName": "crash-device"}))' "$F/csr.pem" >"$F/issue.json"
  # Unthrottled API for the storm and the issuance loops.
  echo "api_rate_limit = 0" >"$F/serve.toml"
  printf 'ROOT=%s\nCA_A=%s\nCA_B=%s\n' "$ROOT" "$CA_A" "$CA_B" >"$F/ids"
  [ "$(wc -l <"$F/a.tsv")" -eq "$LEAVES" ] && [ "$(wc -l <"$F/b.tsv")" -eq "$LEAVES" ] || {
    echo "fixture: expected $LEAVES leaves per CA" >&2
    exit 1
  }
  touch "$F/ready"
  echo "fixture built in $(($(date +%s) - started)) s" >&2
}

# ------------------------------------------------------------------ one trial
# Workers: run in the background, in their own process groups; errexit off.
poller() { # OUT CA...
  set +e
  local out=$1 ca n
  shift
  while :; do
    for ca in "$@"; do
      if curl -sf -m 2 -o "$T/poll.crl" "$URL/crls/${ca}_v1/current.crl"; then
        n=$(openssl crl -inform DER -in "$T/poll.crl" -noout -crlnumber 2>/dev/null) &&
          echo "$ca $n $(now_ms)" >>"$out"
      fi
    done
    sleep 0.03
  done
}

api_issue_loop() { # K
  set +e
  local k=$1 n=0 f code
  while :; do
    n=$((n + 1))
    f=$T/iss/api-$k-$n.json
    code=$(curl -s -m 10 -o "$f" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
      -H 'Content-Type: application/json' --data-binary "@$F/issue.json" \
      "$URL/beta/deviceManagement/cloudCertificationAuthority/$CA_B/issueLeafCertificate")
    if [ "$code" = 201 ]; then
      echo "$f" >>"$T/iss/acked-api-$k"
    fi
  done
}

cli_issue_loop() {
  set +e
  local n=0 f
  while :; do
    n=$((n + 1))
    f=$T/iss/cli-$n.json
    if "$BIN" "${G[@]}" --json cert issue --ca "$CA_B" --csr "$F/csr.pem" >"$f" 2>>"$T/op.err"; then
      echo "$f" >>"$T/iss/acked-cli"
    fi
  done
}

cli_revoke_loop() { # IDS_FILE ACKED_FILE
  set +e
  local id
  while read -r id; do
    if "$BIN" "${G[@]}" cert revoke "$id" --ca "$CA_B" --reason keyCompromise >/dev/null 2>>"$T/op.err"; then
      echo "$id" >>"$2"
    fi
  done <"$1"
}

# crash-verify.py against the running serve; adds to the R_* counts.
run_verify() { # extra verify args...
  local out c l h n r d store
  # An array, not an unquoted $(…): with nullglob a URL's `?` would vanish.
  if [ "$backend" = sqlite ]; then store=(--sqlite-db "$T/data/cloudpki.db"); else store=(--pg-url "${G[5]}"); fi
  echo "--- verify $*" >>"$T/verify.log"
  out=$(python3 "$VERIFY" verify --bin "$BIN" --global-args "${G[*]}" --serve "$URL" \
    --ca "$ROOT=$F/root.pem" --ca "$CA_A=$F/a.pem" --ca "$CA_B=$F/b.pem" --root-pem "$F/root.pem" \
    --target-ca "$target" --crl-log "$T/crl.log" --seed "$RANDOM" \
    "${store[@]}" \
    "${extra[@]}" "$@" 2>>"$T/verify.log") || R_ERROR="crash-verify.py failed (see verify.log)"
  read -r c l h n r d <<<"${out:-0 0 0 0 0 0}"
  R_CHECKED=$((R_CHECKED + c)) R_LOST=$((R_LOST + l)) R_HALF=$((R_HALF + h))
  R_INTEG=$((R_INTEG + n)) R_REGRESS=$((R_REGRESS + r)) R_DISAGREE=$((R_DISAGREE + d))
}

start_serve() { # extra global args...
  spawn "$BIN" "${G[@]}" "$@" serve --listen "127.0.0.1:$PORT" --config "$F/serve.toml" >>"$T/serve.log" 2>&1
  SERVE=$SPAWNED
}

# Runs one trial; sets the R_* results and TRIAL_LINE.
trial() {
  local backend=$1 i=$2 scenario=$3
  local t0 kill_at=0 running=no op_pids=() target=$CA_B extra=() db="" integ=ok
  t0=$(now_ms)
  LABEL=$scenario
  R_CHECKED=0 R_LOST=0 R_HALF=0 R_INTEG=0 R_REGRESS=0 R_DISAGREE=0 R_KILLED=0 R_ERROR=""
  T=$WORK/$backend-$i
  mkdir -p "$T"
  if [ "$scenario" = kek ] && ! "$BIN" kek --help >/dev/null 2>&1; then
    TRIAL_LINE="SKIPPED (kek rotate not available)"
    R_SKIPPED=1
    rm -rf "$T"
    return
  fi
  R_SKIPPED=0
  G=(--data-dir "$T/data" --kek-file "$F/kek")
  if [ "$backend" = sqlite ]; then
    cp -a "$F/data" "$T/data"
  else
    db=crash_t$$_$i
    pg_exec "CREATE DATABASE $db TEMPLATE $FIXDB"
    mkdir -p "$T/data"
    G+=(--database "$(pg_db_url "$db")")
  fi
  PORT=$(free_port)
  URL=http://127.0.0.1:$PORT
  if [ "$scenario" = kek ]; then
    # Rollover: serve and the CLI read keys sealed under either KEK.
    openssl rand -base64 32 >"$T/kek.next"
    CLOUDPKI_NEXT_KEK=$(cat "$T/kek.next")
    export CLOUDPKI_NEXT_KEK
  fi
  start_serve
  if ! wait_ready "$URL" 60; then
    R_ERROR="serve did not become ready before the operation"
  else
    spawn poller "$T/crl.log" "$ROOT" "$CA_A" "$CA_B"
    local poll=$SPAWNED
    sleep 0.3
    case "$scenario" in
    revoke-all)
      target=$CA_A
      local batches=(1 5 20 100)
      local batch=${batches[$((i / 5 % 4))]}
      # Every other run of four: only the CLI dies; serve must follow its
      # commits while it runs (checked live), then it is killed and restarted.
      [ $((i / 20 % 2)) = 1 ] && LABEL=revoke-all-live
      kill_at=$(rand 50 1200)
      spawn "$BIN" "${G[@]}" --json cert revoke-all --ca "$CA_A" --batch "$batch" --reason keyCompromise \
        >"$T/revoke-all.out" 2>>"$T/op.err"
      op_pids=("$SPAWNED")
      cut -f1 "$F/a.tsv" >"$T/targets"
      extra=(--acked-revoke-all "$T/revoke-all.out" --targets "$T/targets")
      sleep_ms "$kill_at"
      kill -0 "${op_pids[0]}" 2>/dev/null && running=yes
      if [ "$LABEL" = revoke-all-live ]; then
        kill9 "${op_pids[@]}"
        sleep_ms "$(rand 0 500)"
        kill9 "$poll"
        run_verify --live
        spawn poller "$T/crl.log" "$ROOT" "$CA_A" "$CA_B"
        poll=$SPAWNED
        sleep_ms "$(rand 0 500)"
      fi
      kill9 "${op_pids[@]}" "$SERVE"
      ;;
    issue)
      mkdir -p "$T/iss"
      kill_at=$(rand 500 3000)
      local k
      for k in 1 2 3; do
        spawn api_issue_loop "$k"
        op_pids+=("$SPAWNED")
      done
      spawn cli_issue_loop
      op_pids+=("$SPAWNED")
      sleep_ms "$kill_at"
      running=yes
      kill9 "${op_pids[@]}" "$SERVE"
      cat "$T"/iss/acked-* >"$T/acked-issued" 2>/dev/null || : >"$T/acked-issued"
      extra=(--acked-issued "$T/acked-issued" --newest 6)
      ;;
    crl)
      shuf -n 400 "$F/b.tsv" | cut -f1 >"$T/targets"
      sed -n '1~2p' "$T/targets" >"$T/targets.1"
      sed -n '2~2p' "$T/targets" >"$T/targets.2"
      kill_at=$(rand 400 3000)
      spawn cli_revoke_loop "$T/targets.1" "$T/acked.1"
      op_pids+=("$SPAWNED")
      spawn cli_revoke_loop "$T/targets.2" "$T/acked.2"
      op_pids+=("$SPAWNED")
      sleep_ms "$kill_at"
      kill -0 "$SERVE" 2>/dev/null && running=yes
      kill9 "$SERVE"
      # The revokers outlive serve a little: commits no server saw.
      sleep_ms "$(rand 0 300)"
      kill9 "${op_pids[@]}"
      cat "$T"/acked.? >"$T/acked-revoked" 2>/dev/null || : >"$T/acked-revoked"
      extra=(--acked-revoked-ids "$T/acked-revoked" --targets "$T/targets")
      ;;
    storm)
      shuf -n 600 "$F/b.tsv" | cut -f1 >"$T/targets"
      mkdir -p "$T/storm"
      local id first=1
      : >"$T/storm.cfg"
      while read -r id; do
        [ $first = 1 ] || echo next >>"$T/storm.cfg"
        first=0
        printf '%s\n' \
          "url = \"$URL/beta/deviceManagement/cloudCertificationAuthority/$CA_B/revokeLeafCertificate\"" \
          "data = \"{\\\"leafCertificateId\\\": \\\"$id\\\"}\"" \
          "output = \"$T/storm/$id\"" \
          "header = \"Authorization: Bearer $TOKEN\"" \
          "header = \"Content-Type: application/json\"" \
          "max-time = 10" \
          "write-out = \"%{http_code} %{filename_effective}\\n\"" >>"$T/storm.cfg"
      done <"$T/targets"
      kill_at=$(rand 50 900)
      spawn curl -s --parallel --parallel-max 16 -K "$T/storm.cfg" >"$T/storm.wo" 2>/dev/null
      local curl_pid=$SPAWNED
      sleep_ms "$kill_at"
      kill -0 "$curl_pid" 2>/dev/null && running=yes
      kill9 "$SERVE"
      # curl finishes on its own (connection refused); what it printed is final.
      local w
      for w in $(seq 1 200); do
        kill -0 "$curl_pid" 2>/dev/null || break
        sleep 0.1
      done
      kill9 "$curl_pid"
      extra=(--acked-storm "$T/storm.wo" --targets "$T/targets")
      ;;
    kek)
      kill_at=$(rand 5 200)
      spawn env -u CLOUDPKI_NEXT_KEK "$BIN" "${G[@]}" kek rotate --new-kek-file "$T/kek.next" --batch-size 1 \
        >"$T/kek-rotate.out" 2>>"$T/op.err"
      op_pids=("$SPAWNED")
      sleep_ms "$kill_at"
      kill -0 "${op_pids[0]}" 2>/dev/null && running=yes
      local rotated=no
      if [ $running = no ]; then
        if wait "${op_pids[0]}" 2>/dev/null; then
          rotated=yes # exit 0 before the kill: the rotation is acknowledged
        else
          R_ERROR="kek rotate failed on its own (see op.err)"
        fi
      fi
      kill9 "${op_pids[@]}" "$SERVE"
      ;;
    esac
    R_KILLED=$([ $running = yes ] && echo 1 || echo 0)
    kill9 "$poll"

    if [ "$backend" = sqlite ]; then
      integ=$(python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(" ".join(r[0] for r in c.execute("PRAGMA integrity_check")))' "$T/data/cloudpki.db" 2>&1) || true
    fi
    start_serve
    if ! wait_ready "$URL" 60; then
      R_INTEG=1
      R_ERROR="serve did not restart (see serve.log)"
    else
      run_verify --integrity "$integ"
      if [ "$scenario" = kek ]; then
        kek_checks "$rotated"
      fi
    fi
    stop "$SERVE"
  fi
  unset CLOUDPKI_NEXT_KEK
  local dt=$(($(now_ms) - t0)) verdict=OK
  if [ -n "$R_ERROR" ] || [ $((R_LOST + R_HALF + R_INTEG + R_REGRESS + R_DISAGREE)) -gt 0 ]; then
    verdict=FAIL
    local keep=$CACHE/failed/$backend-$scenario-$(date +%Y%m%d-%H%M%S)-$i
    mkdir -p "$keep"
    cp -a "$T/." "$keep/" 2>/dev/null || true
    if [ -n "$db" ]; then
      pg_dump -Fc -d "$(pg_db_url "$db")" -f "$keep/$db.pgdump" 2>/dev/null || true
    fi
    cp "$F/ids" "$F/kek" "$F"/*.pem "$keep/" 2>/dev/null || true
    verdict="FAIL ${R_ERROR:+($R_ERROR) }kept in $keep"
  fi
  if [ -n "$db" ]; then
    pg_exec "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
  fi
  {
    echo "=== $backend trial $i: $LABEL, kill at ${kill_at} ms"
    cat "$T/verify.log" 2>/dev/null
  } >>"$LOG"
  rm -rf "$T"
  TRIAL_LINE=$(printf '%-15s kill@%4dms %-11s acked=%-4d lost=%d half=%d integrity=%s crl-regress=%d disagree=%d %5.1fs %s' \
    "$LABEL" "$kill_at" "$([ "$R_KILLED" = 1 ] && echo "(mid-op)" || echo "(after op)")" \
    "$R_CHECKED" "$R_LOST" "$R_HALF" "$([ "$R_INTEG" = 0 ] && echo ok || echo FAIL)" "$R_REGRESS" \
    "$R_DISAGREE" "$(echo "$dt" | awk '{print $1 / 1000}')" "$verdict")
}

# The KEK rotation, after the generic checks (serve runs under rollover):
# the rotation resumes to exit 0, then every CA key works under the new KEK
# alone. A rotation acknowledged (exit 0) before the kill must work under the
# new KEK alone at once.
kek_checks() {
  local rotated=$1 ca
  kek_sign_all() { # KEK_ARGS...
    local ok=0
    for ca in "$CA_A" "$CA_B"; do
      R_CHECKED=$((R_CHECKED + 1))
      if "$BIN" --data-dir "$T/data" "${G[@]:4}" "$@" --json cert issue --ca "$ca" --csr "$F/csr.pem" \
        >/dev/null 2>>"$T/op.err"; then
        ok=$((ok + 1))
      fi
    done
    [ "$ok" = 2 ]
  }
  local before=() n
  for ca in "$ROOT" "$CA_A" "$CA_B"; do
    before+=("$(crl_number "$ca")")
  done
  stop "$SERVE"
  if ! "$BIN" "${G[@]}" kek status >>"$T/verify.log" 2>&1; then
    R_INTEG=$((R_INTEG + 1))
    echo "INTEGRITY: kek status fails after the kill" >>"$T/verify.log"
  fi
  # Every sealed key opens under the old or the new KEK: none half re-sealed.
  R_CHECKED=$((R_CHECKED + 1))
  if ! "$BIN" "${G[@]}" kek verify >>"$T/verify.log" 2>&1; then
    R_HALF=$((R_HALF + 1))
    echo "HALF-APPLIED: a sealed key opens under neither KEK after the kill" >>"$T/verify.log"
  fi
  unset CLOUDPKI_NEXT_KEK
  if [ "$rotated" = yes ]; then
    R_CHECKED=$((R_CHECKED + 1))
    if ! "$BIN" --data-dir "$T/data" "${G[@]:4}" --kek-file "$T/kek.next" kek verify >>"$T/verify.log" 2>&1 ||
      ! kek_sign_all --kek-file "$T/kek.next"; then
      R_LOST=$((R_LOST + 1))
      echo "LOST: kek rotate exited 0 before the kill, but the new KEK alone does not open every key" \
        >>"$T/verify.log"
    fi
  fi
  if ! timeout 120 env -u CLOUDPKI_NEXT_KEK "$BIN" "${G[@]}" kek rotate --new-kek-file "$T/kek.next" \
    >>"$T/verify.log" 2>&1; then
    R_HALF=$((R_HALF + 1))
    echo "HALF-APPLIED: kek rotate does not resume to completion" >>"$T/verify.log"
  fi
  R_CHECKED=$((R_CHECKED + 1))
  if ! "$BIN" --data-dir "$T/data" "${G[@]:4}" --kek-file "$T/kek.next" kek verify >>"$T/verify.log" 2>&1 ||
    ! kek_sign_all --kek-file "$T/kek.next"; then
    R_HALF=$((R_HALF + 1))
    echo "HALF-APPLIED: after the resumed rotation the new KEK alone does not open every key" >>"$T/verify.log"
  fi
  # serve under the new KEK alone re-signs every CRL at start (needs every CA key).
  G[3]=$T/kek.next
  start_serve
  if ! wait_ready "$URL" 60; then
    R_HALF=$((R_HALF + 1))
    echo "HALF-APPLIED: serve does not start under the new KEK alone" >>"$T/verify.log"
    return
  fi
  local k=0
  for ca in "$ROOT" "$CA_A" "$CA_B"; do
    R_CHECKED=$((R_CHECKED + 1))
    n=$(crl_number "$ca")
    if [ "$n" -le "${before[$k]}" ]; then
      R_HALF=$((R_HALF + 1))
      echo "HALF-APPLIED: under the new KEK alone $ca's CRL was not re-signed (#$n, before #${before[$k]})" \
        >>"$T/verify.log"
    fi
    k=$((k + 1))
  done
}

# The number of the CRL serve answers for a CA (decimal), -1 if none.
crl_number() {
  local n
  n=$(curl -sf -m 5 "$URL/crls/${1}_v1/current.crl" | openssl crl -inform DER -noout -crlnumber 2>/dev/null) || {
    echo -1
    return
  }
  echo $((16#${n#crlNumber=0x}))
}

# ------------------------------------------------------------------ campaign
declare -A S_TRIALS S_KILLS S_CHECKED S_LOST S_HALF S_INTEG S_REGRESS S_DISAGREE S_SKIPPED S_ERRORS S_SECONDS
FAILED=0
START=$(date +%s)
echo "cloudpki crash campaign: $N trials per backend ($BACKENDS), binary $BIN ($BIN_KEY)"
for backend in $BACKENDS; do
  if [ "$backend" = postgres ]; then
    PG_PORT=${CRASH_PG_PORT:-$(free_port)}
    PG_STARTED=1
    PG_ADMIN=$(bash "$REPO/scripts/pg-throwaway.sh" start "$PG_DIR" "$PG_PORT")
    # Trial databases a killed earlier run left behind.
    for stale in $(pg_exec "SELECT datname FROM pg_database WHERE datname LIKE 'crash\_t%'"); do
      pg_exec "DROP DATABASE IF EXISTS $stale WITH (FORCE)" >/dev/null
    done
  fi
  fixture "$backend"
  TOKEN=$(cat "$F/token")
  for i in $(seq 0 $((N - 1))); do
    scenario=${SCENARIOS[$((i % ${#SCENARIOS[@]}))]}
    trial "$backend" "$i" "$scenario"
    key=$backend/$LABEL
    printf '[%s %3d/%d] %s\n' "$backend" $((i + 1)) "$N" "$TRIAL_LINE"
    S_TRIALS[$key]=$((${S_TRIALS[$key]:-0} + 1))
    S_SKIPPED[$key]=$((${S_SKIPPED[$key]:-0} + R_SKIPPED))
    [ "$R_SKIPPED" = 1 ] && continue
    S_KILLS[$key]=$((${S_KILLS[$key]:-0} + R_KILLED))
    S_CHECKED[$key]=$((${S_CHECKED[$key]:-0} + R_CHECKED))
    S_LOST[$key]=$((${S_LOST[$key]:-0} + R_LOST))
    S_HALF[$key]=$((${S_HALF[$key]:-0} + R_HALF))
    S_INTEG[$key]=$((${S_INTEG[$key]:-0} + R_INTEG))
    S_REGRESS[$key]=$((${S_REGRESS[$key]:-0} + R_REGRESS))
    S_DISAGREE[$key]=$((${S_DISAGREE[$key]:-0} + R_DISAGREE))
    S_ERRORS[$key]=$((${S_ERRORS[$key]:-0} + $([ -n "$R_ERROR" ] && echo 1 || echo 0)))
    if [[ $TRIAL_LINE == *FAIL* ]]; then
      FAILED=$((FAILED + 1))
    fi
  done
  if [ "$backend" = postgres ]; then
    bash "$REPO/scripts/pg-throwaway.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
    PG_STARTED=""
  fi
done
ELAPSED=$(($(date +%s) - START))

table() {
  local backend scenario key
  for backend in $BACKENDS; do
    echo
    echo "### $backend"
    echo
    echo "| scenario | trials | kills mid-operation | acknowledged changes checked | lost | half-applied | integrity failures | CRL number regressions | OCSP/CRL disagreements | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for scenario in revoke-all revoke-all-live "${SCENARIOS[@]:1}"; do
      key=$backend/$scenario
      [ -n "${S_TRIALS[$key]:-}" ] || continue
      if [ "${S_SKIPPED[$key]}" = "${S_TRIALS[$key]}" ]; then
        echo "| $scenario | ${S_TRIALS[$key]} | SKIPPED (kek rotate not available) | | | | | | | |"
        continue
      fi
      echo "| $scenario | ${S_TRIALS[$key]} | ${S_KILLS[$key]} | ${S_CHECKED[$key]} | ${S_LOST[$key]} | ${S_HALF[$key]} | ${S_INTEG[$key]} | ${S_REGRESS[$key]} | ${S_DISAGREE[$key]} | ${S_ERRORS[$key]} |"
    done
  done
}

TABLE=$(table)
echo "$TABLE"
echo
echo "$FAILED failed trial(s); $ELAPSED s in all; details in $LOG"
if [ -n "$RESULTS" ]; then
  {
    echo "# kill -9 crash campaign"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- command: \`$COMMAND_LINE\` (LEAVES=$LEAVES)"
    echo "- cloudpki: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown), binary sha256 $BIN_KEY…"
    echo "- machine: $(uname -sm), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- duration: $ELAPSED s; failed trials: $FAILED"
    echo "$TABLE"
  } >"$RESULTS"
fi
[ "$FAILED" = 0 ]
