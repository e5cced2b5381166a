#!/usr/bin/env bash
# What a revocation costs in memory: REVS leaves of the 10k fixture's issuing CA revoked through the
# management API at RATE a second, with no other load, and the server's RSS read every STEP_S
# seconds. Separates the first WARM revocations (caches filling: SQLite's page caches, the CRL
# book's tables, the allocator's) from the steady cost after them, a least-squares slope in KB per
# revocation. With gdb, glibc's own count of bytes in use before and after (malloc_stats), which
# tells live data from allocator overhead. Writes load-tests/out/revocation-memory-*/ and the
# "Memory per revocation" section of RESULTS.md.
#
#   load-tests/revocation-memory.sh           # ~4 min
# Knobs: REVS (9000), RATE (50), STEP_S (15), WARM (1000), FIX.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
source "$HERE/lib/common.sh"

BIN=${CLOUDPKI:-$ROOT/target/release/cloudpki}
FIX=${FIX:-$HERE/.data/fixture}
REVS=${REVS:-9000}; RATE=${RATE:-50}; STEP_S=${STEP_S:-15}; WARM=${WARM:-1000}
SERVER_CPU=0; LOAD_CPU=1; PIN=1
OUT=${OUT:-$HERE/out/revocation-memory-$(date +%Y%m%d-%H%M%S)}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
CMDLINE="REVS=$REVS RATE=$RATE STEP_S=$STEP_S WARM=$WARM ${0#$ROOT/}"
TMP=$(mktemp -d /tmp/cloudpki-revmem.XXXXXX)
mkdir -p "$OUT"
trap 'rc=$?; cleanup_all; jobs -p | xargs -r kill 2>/dev/null || true; rm -rf "$TMP"; exit $rc' EXIT
trap 'exit 130' INT TERM

private_binary
if [ ! -f "$FIX/done" ]; then
  FIX=$FIX CLOUDPKI=$BIN "$HERE/gen-fixture.sh"
fi
source "$FIX/ids.env"   # ROOT_ID ISSUING_ID PORT N
BASE=http://127.0.0.1:$PORT

cp -a "$FIX/data" "$TMP/data"
"$BIN" --data-dir "$TMP/data" --json cert list --ca "$ISSUING_ID" --status active >"$TMP/active.json"
python3 -c "
import json, sys
v = json.load(open(sys.argv[1]))['value']
print('\n'.join(l['id'] for l in v[:int(sys.argv[2])]))" "$TMP/active.json" "$REVS" >"$TMP/revoke.ids"
REVS=$(wc -l <"$TMP/revoke.ids")
TOKEN=$(admin_token "$TMP/data" revmem-admin 7200)

log "cloudpki on $BASE (CPU $SERVER_CPU, one worker); $REVS revocations at $RATE a second"
START_NS=$(date +%s%N)
start_pg "$OUT/cloudpki.log" env TOKIO_WORKER_THREADS=1 "$BIN" --data-dir "$TMP/data" serve --listen "127.0.0.1:$PORT"
SPG=$PG
wait_ready "$BASE/readyz" "$SPG" 60 >/dev/null
sleep 12   # past the first allocator trim (every 10 s)

# glibc's bytes in use, printed by malloc_stats() on the server's stderr (its log); "" without gdb.
in_use() {
  command -v gdb >/dev/null || return 0
  gdb -p "$SPG" -batch -ex 'call (void)malloc_stats()' >/dev/null 2>&1 || true   # its status is the call's, not ours
  sleep 0.3
  grep -a 'in use bytes' "$OUT/cloudpki.log" | tail -1 | awk '{print $NF}'
}
IN_USE_BEFORE=$(in_use)
: >"$OUT/revoke.log"
echo "0 0 $(rss_kb "$SPG")" >"$OUT/rss.txt"
taskset -c "$LOAD_CPU" python3 "$HERE/lib/revoke_loop.py" "$BASE" "$TOKEN" "$ISSUING_ID" "$TMP/revoke.ids" \
  "$OUT/revoke.log" "$RATE" &
REVOKER=$!
t=0
while kill -0 "$REVOKER" 2>/dev/null; do
  sleep "$STEP_S"; t=$((t + STEP_S))
  echo "$t $(grep -c '^ok' "$OUT/revoke.log") $(rss_kb "$SPG")" >>"$OUT/rss.txt"
done
sleep "$STEP_S"   # one more trim
echo "$((t + STEP_S)) $(grep -c '^ok' "$OUT/revoke.log") $(rss_kb "$SPG")" >>"$OUT/rss.txt"
IN_USE_AFTER=$(in_use)
stop_pg "$SPG"

python3 - "$OUT" "$RESULTS" "$CMDLINE" "$BIN_INFO" "$(git -C "$ROOT" rev-parse --short HEAD)" "$WARM" \
  "$IN_USE_BEFORE" "$IN_USE_AFTER" "$HERE/lib" <<'PY'
import datetime, os, sys
out, results, cmd, binary, rev, warm, use0, use1, lib = sys.argv[1:10]
sys.path.insert(0, lib)
from results_section import replace_section
warm = int(warm)
rows = [tuple(map(int, l.split())) for l in open(os.path.join(out, "rss.txt"))]
log = open(os.path.join(out, "revoke.log")).read().split("\n")
ok, failed = sum(l.startswith("ok") for l in log), sum(l.startswith("failed") for l in log)
base = rows[0][2]
end = rows[-1]
# The first sample at or past WARM revocations, then a least-squares line through the rest.
after = [r for r in rows if r[1] >= warm]
warm_row = after[0] if after else end
steady = after
slope = None
if len(steady) >= 3:
    xs, ys = [r[1] for r in steady], [r[2] for r in steady]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else None
per = lambda kb, n: f"{1024 * kb / n:,.0f} B" if n else "n/a"
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = [
    "## Memory per revocation (revocation-memory.sh)",
    "",
    f"* Date: {now}; command: `{cmd}`; tree {rev}; binary built {binary}; raw: `{os.path.relpath(out, os.path.dirname(results))}`",
    "* The 10k fixture's issuing CA, its leaves revoked through the management API with no other load (server pinned to CPU 0, one worker); "
    "RSS (`VmRSS`) read every step, after the server's allocator trim (every 10 s).",
    f"* {ok:,} revoked, {failed} failed.",
    "",
    "| | RSS | per revocation |",
    "|---|---|---|",
    f"| before | {base / 1024:.1f} MB | |",
    f"| after the first {warm_row[1]:,} (warm-up) | {warm_row[2] / 1024:.1f} MB (+{(warm_row[2] - base) / 1024:.2f}) | {per(warm_row[2] - base, warm_row[1])} |",
    f"| after all {end[1]:,} | {end[2] / 1024:.1f} MB (+{(end[2] - base) / 1024:.2f}) | {per(end[2] - base, end[1])} |",
    f"| steady slope after the warm-up (least squares, {len(steady)} samples) | | "
    + (f"**{1024 * slope:,.0f} B**" if slope is not None else "n/a") + " |",
]
if use0 and use1:
    d = int(use1) - int(use0)
    lines.append(f"| glibc's bytes in use (`malloc_stats`), before → after | {int(use0) / 2**20:.2f} → {int(use1) / 2**20:.2f} MB (+{d / 2**20:.2f}) | {d / max(end[1], 1):,.0f} B |")
lines += [
    "",
    "<details><summary>Samples</summary>",
    "",
    "| s | revoked | RSS MB |",
    "|---|---|---|",
    *[f"| {t} | {n:,} | {kb / 1024:.2f} |" for t, n, kb in rows],
    "",
    "</details>",
    "",
]
replace_section(results, lines)
PY
log "done: $OUT"
