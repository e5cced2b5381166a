#!/usr/bin/env bash
# Pages a 1M-leaf CA through the management API in every documented $orderby, following
# @odata.nextLink to the end, then streams getAllCloudCertificationAuthorityLeafCertificates;
# reports page latency (p50/p99/max) and the server's RSS growth.
#   load-tests/paging-1m.sh      # reuses scale-1m.sh's fixture (load-tests/.data/scale-1m);
#                                # generates it first if missing (~10 min)
# Knobs: FIX, TOP (page size, 999), PORT (18194), ORDERS (space-separated, quoted terms).
# Goals (foundation issue): any page p99 < 50 ms, RSS growth < 20 MB.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
source "$HERE/lib/common.sh"
BIN=${CLOUDPKI:-$ROOT/target/release/cloudpki}
FIX=${FIX:-$HERE/.data/scale-1m}
TOP=${TOP:-999}; PORT=${PORT:-18194}; PIN=0
TMP=$(mktemp -d /tmp/cloudpki-paging.XXXXXX)
trap 'rc=$?; cleanup_all; rm -rf "$TMP"; exit $rc' EXIT
trap 'exit 130' INT TERM
[ -x "$BIN" ] || { log "no binary $BIN: cargo build --release"; exit 1; }
cp -p "$BIN" "$TMP/cloudpki"; BIN=$TMP/cloudpki
if [ ! -f "$FIX/done" ]; then
  N=1000000 FIX=$FIX CLOUDPKI=$BIN PORT=18193 STORM=0 LIST_LIMIT=20000 "$HERE/gen-fixture.sh"
fi
source "$FIX/ids.env"
START_NS=$(date +%s%N)
start_pg "$TMP/serve.log" "$BIN" --data-dir "$FIX/data" serve --listen "127.0.0.1:$PORT"
pg=$PG
ms=$(wait_ready "http://127.0.0.1:$PORT/readyz" "$pg" 300)
log "ready in $ms ms, VmRSS $(( $(rss_kb "$pg") / 1024 )) MB"
TOKEN=$(tr -d '[:space:]' <"$FIX/data/admin-token")
read -r -a orders <<<"${ORDERS:-subjectName certificateStatus validityEndDateTime%desc validityStartDateTime}"
orders=("${orders[@]//%/ }")
echo "Paging CA $ISSUING_ID ($N leaves), \$top=$TOP, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores:"
python3 "$HERE/lib/page_all.py" "http://127.0.0.1:$PORT" "$TOKEN" "$ISSUING_ID" "$pg" "$TOP" "${orders[@]}"
