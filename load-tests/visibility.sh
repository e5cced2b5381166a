#!/usr/bin/env bash
# Any-writer visibility on SQLite: `cloudpki cert revoke` run as its own process (the CLI beside
# a running `serve`, same data directory) and the time from the CLI's exit to the server's first
# `revoked` OCSP answer. The server notices other processes' commits through SQLite's
# data_version, checked every 2 ms while inotify reports writes to the database's files
# (src/store/sqlite.rs); the target is p99 <= 10 ms.
# Writes load-tests/out/visibility-*/ and the "Any-writer visibility" section of RESULTS.md.
#
#   load-tests/visibility.sh            # ~1 min: 300 leaves, 200 revocations at 5/s then 100 at 20/s
#   FIX=/work/fixtures/scale-5m load-tests/visibility.sh
#                                       # the same on a copy of a scale-1m.sh fixture (millions of
#                                       # leaves in one CA; the copy takes a minute per ~5 GB)
# Knobs: COUNT (200), RATE (5), FAST_COUNT (100), FAST_RATE (20), PORT (18196), FIX (none).
# PostgreSQL followers are measured by the fleet test (tests/integration/fleet.rs prints the
# responders' OCSP and CRL propagation p50/p99) and by load-tests/fleet.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
source "$HERE/lib/common.sh"

BIN=${CLOUDPKI:-$ROOT/target/release/cloudpki}
COUNT=${COUNT:-200}; RATE=${RATE:-5}; FAST_COUNT=${FAST_COUNT:-100}; FAST_RATE=${FAST_RATE:-20}
PORT=${PORT:-18196}
OUT=${OUT:-$HERE/out/visibility-$(date +%Y%m%d-%H%M%S)}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
FIX=${FIX:-}
CMDLINE="COUNT=$COUNT RATE=$RATE FAST_COUNT=$FAST_COUNT FAST_RATE=$FAST_RATE ${FIX:+FIX=$FIX }${0#$ROOT/}"
TMP=$(mktemp -d /tmp/cloudpki-visibility.XXXXXX)
mkdir -p "$OUT"
trap 'rc=$?; cleanup_all; rm -rf "$TMP"; exit $rc' EXIT
trap 'exit 130' INT TERM

private_binary
D=$TMP/data
pki() { "$BIN" --data-dir "$D" --json "$@"; }
jget() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

if [ -n "$FIX" ]; then
  log "fixture: a copy of $FIX/data ($(du -sh "$FIX/data" | cut -f1))"
  cp -r "$FIX/data" "$D"
  cp "$FIX/ca.pem" "$TMP/ca.pem"
  # Leaves listed in the fixture but not in its request sample (whose statuses the scale
  # script's validation expects): the copy is thrown away, but keep the two apart anyway.
  python3 - "$FIX" "$TMP/leaves.json" "$COUNT" "$((COUNT + FAST_COUNT))" <<'PY'
import json, sys
fix, out, n, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sample = {l.split("\t")[0].lower() for l in open(f"{fix}/reqs/expect.txt")}
leaves = [{"serialNumber": s, "id": i} for s, i in (l.rstrip("\n").split("\t") for l in open(f"{fix}/leaves.tsv"))
          if s.lower() not in sample][:total]
assert len(leaves) == total, f"only {len(leaves)} leaves outside the sample"
json.dump(leaves[:n], open(out + ".slow", "w")); json.dump(leaves[n:], open(out + ".fast", "w"))
PY
else
log "fixture: root + issuing (P-256), $((COUNT + FAST_COUNT)) leaves"
ROOT_ID=$("$BIN" --data-dir "$D" --public-url "http://127.0.0.1:$PORT" --json \
  ca create --type root --common-name "Visibility Root" --key-size eCP256 | jget id)
ISSUING_ID=$(pki ca create --type issuing --issuer "$ROOT_ID" --common-name "Visibility Issuing" --key-size eCP256 | jget id)
pki ca cert "$ISSUING_ID" >"$TMP/ca.pem"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/leaf.key" \
  -subj "/CN=visibility-device" -out "$TMP/leaf.csr" 2>/dev/null
pki cert issue-bulk --ca "$ISSUING_ID" --csr "$TMP/leaf.csr" --count $((COUNT + FAST_COUNT)) >/dev/null
pki cert list --ca "$ISSUING_ID" >"$TMP/leaves.json"
python3 - "$TMP/leaves.json" "$COUNT" <<'PY'
import json, sys
leaves = json.load(open(sys.argv[1]))["value"]; n = int(sys.argv[2])
json.dump(leaves[:n], open(sys.argv[1] + ".slow", "w")); json.dump(leaves[n:], open(sys.argv[1] + ".fast", "w"))
PY
fi

log "serve on 127.0.0.1:$PORT"
START_NS=$(date +%s%N)
PIN=0 start_pg "$OUT/server.log" "$BIN" --data-dir "$D" serve --listen "127.0.0.1:$PORT"
SERVER=$PG
wait_ready "http://127.0.0.1:$PORT/readyz" "$SERVER" 180 >/dev/null
log "serving: $(grep -ah "snapshot loaded" "$OUT/server.log" | sed "s/\x1b\[[0-9;]*m//g" | head -1)"

run() {  # run NAME LEAVES COUNT RATE
  log "$3 CLI revocations at $4/s"
  python3 "$HERE/lib/visibility.py" "$BIN" "$D" "http://127.0.0.1:$PORT" "$TMP/ca.pem" "$2" "$3" "$4" \
    | tee "$OUT/$1.json"
}
run slow "$TMP/leaves.json.slow" "$COUNT" "$RATE"
run fast "$TMP/leaves.json.fast" "$FAST_COUNT" "$FAST_RATE"
stop_pg "$SERVER"

CERTS=""
[ -z "$FIX" ] || CERTS=$(grep -ah 'snapshot loaded' "$OUT/server.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'certificates=[0-9]*' | head -1 | cut -d= -f2)
LIB=$HERE/lib python3 - "$OUT" "$RESULTS" "$CMDLINE" "$BIN_INFO" "$(git -C "$ROOT" rev-parse --short HEAD)" "$CERTS" <<'PY'
import json, os, sys, datetime
sys.path.insert(0, os.environ["LIB"])
from results_section import replace_section
out, results, cmd, binary, rev, certs = sys.argv[1:7]
# A run on a large fixture has its own section: the small one stays the reference.
title = f"## Any-writer visibility at {int(certs):,} certificates (visibility.sh)" if certs else "## Any-writer visibility (visibility.sh)"
rows = []
for name in ("slow", "fast"):
    r = json.load(open(os.path.join(out, name + ".json")))
    rate = cmd.split("FAST_RATE=" if name == "fast" else "RATE=")[1].split()[0]
    verdict = "met" if r["failed"] == 0 and r["p99_ms"] is not None and r["p99_ms"] <= 10 else "MISSED"
    rows.append(f"| {rate}/s | {r['revocations']} | {r['visible']} | {r['failed']} | {r['p50_ms']} | {r['p90_ms']} | "
                f"**{r['p99_ms']}** | {r['max_ms']} | {r['cli_p50_ms']} / {r['cli_p99_ms']} | {verdict} |")
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
replace_section(results, [
    title,
    "",
    f"* Date: {now}; command: `{cmd}`; tree {rev}; binary built {binary}; raw: `{os.path.relpath(out, os.path.dirname(results))}`",
    "* `cloudpki cert revoke ID` as a separate process on the SQLite store a running `serve` uses; delay = CLI exit "
    "to the server's first `revoked` OCSP answer (POST, polled every 0.2 ms on one keep-alive connection). "
    "Target: p99 <= 10 ms. Server and CLI float over both cores (not pinned).",
    "",
    "| CLI revocations | revocations | visible | failed | p50 ms | p90 ms | p99 ms | max ms | CLI run p50 / p99 ms | verdict |",
    "|---|---|---|---|---|---|---|---|---|---|",
    *rows,
    "",
])
PY
log "done: $OUT"
