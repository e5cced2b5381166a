#!/usr/bin/env bash
# Build the load-test fixture: a cloudpki data dir (root + issuing CA, P-256) with N leaves,
# and the OCSP requests the k6/wrk scenarios send.
#
#   load-tests/gen-fixture.sh                         # N=10000 SAMPLE=1000 -> load-tests/.data/fixture
#   N=1000000 FIX=load-tests/.data/scale-1m load-tests/gen-fixture.sh   (what scale-1m.sh does)
#
# Knobs: N (leaves), SAMPLE (serials the load scenarios ask about), STORM (other serials, kept
# good, that the revocation storm revokes), REVOKED (how many of SAMPLE are revoked here, so
# validation sees both answers), PORT (fixed into the certificates' URLs: the server port),
# BATCH (issue-bulk leaves per transaction), LIST_LIMIT (only list this many leaves to pick the
# sample from; 0 = all. A list of 1M leaves as JSON is ~0.5 GB, so scale-1m.sh limits it),
# PUBLIC_URL (default http://127.0.0.1:$PORT), DATABASE (postgres://…: create the PKI in that
# initialised PostgreSQL database instead of a SQLite data/ dir; needs CLOUDPKI_KEK; fleet.sh).
#
# Output in $FIX:
#   data/                    the cloudpki data directory (SQLite + sealed keys; with DATABASE: nothing
#                            durable, the PKI lives in PostgreSQL)
#   ids.env                  ROOT_ID, ISSUING_ID, PORT, N
#   ca.pem / root.pem        issuing CA / root certificate
#   leaf.csr / leaf.key      the one CSR every leaf was issued from
#   reqs/                    see lib/make_reqs.py (DER requests, GET suffixes, expectations)
#   static/                  (filled by lib/fetch_static.py once a server runs) bytes for nginx
#   done                     marker: the fixture is complete
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=${CLOUDPKI:-$ROOT/target/release/cloudpki}
FIX=${FIX:-$HERE/.data/fixture}
N=${N:-10000}; SAMPLE=${SAMPLE:-1000}; STORM=${STORM:-600}; REVOKED=${REVOKED:-50}
PORT=${PORT:-18190}; BATCH=${BATCH:-5000}; LIST_LIMIT=${LIST_LIMIT:-0}; SEED=${SEED:-42}
PUBLIC_URL=${PUBLIC_URL:-http://127.0.0.1:$PORT}; DATABASE=${DATABASE:-}

log() { printf '[%(%H:%M:%S)T] gen-fixture: %s\n' -1 "$*" >&2; }
[ -x "$BIN" ] || { log "no binary at $BIN: run 'cargo build --release' first"; exit 2; }
jget() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# Build in a temp dir beside the target and move it into place at the end, so an interrupted
# run never leaves a half-made fixture that looks complete.
tmp="$FIX.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"; mkdir -p "$tmp"
D=$tmp/data
STORE=(--data-dir "$D"); [ -n "$DATABASE" ] && STORE+=(--database "$DATABASE")
pki() { "$BIN" "${STORE[@]}" --json "$@"; }

log "CAs (P-256), public URL $PUBLIC_URL${DATABASE:+, in PostgreSQL}"
ROOT_ID=$("$BIN" "${STORE[@]}" --public-url "$PUBLIC_URL" --json \
  ca create --type root --common-name "LoadTest Root" --key-size eCP256 | jget id)
ISSUING_ID=$(pki ca create --type issuing --issuer "$ROOT_ID" --common-name "LoadTest Issuing" --key-size eCP256 | jget id)
pki ca cert "$ISSUING_ID" >"$tmp/ca.pem"
pki ca cert "$ROOT_ID" >"$tmp/root.pem"
printf 'ROOT_ID=%s\nISSUING_ID=%s\nPORT=%s\nN=%s\n' "$ROOT_ID" "$ISSUING_ID" "$PORT" "$N" >"$tmp/ids.env"

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/leaf.key" \
  -subj "/CN=leaf.loadtest.invalid" -out "$tmp/leaf.csr" 2>/dev/null

log "issue-bulk $N leaves (batch $BATCH)"
t0=$(date +%s.%N)
pki cert issue-bulk --ca "$ISSUING_ID" --csr "$tmp/leaf.csr" --count "$N" --batch "$BATCH" >"$tmp/issue-bulk.json"
t1=$(date +%s.%N)
python3 - "$t0" "$t1" "$N" "$tmp/issue-bulk.time" <<'EOF'
import sys; t0, t1, n, out = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
open(out, "w").write(f"{t1 - t0:.1f} s for {n} leaves ({n / (t1 - t0):.0f}/s)\n")
EOF
log "issued: $(cat "$tmp/issue-bulk.time")"

log "listing leaves (limit: ${LIST_LIMIT/#0/none})"
limit=(); [ "$LIST_LIMIT" != 0 ] && limit=(--limit "$LIST_LIMIT")
pki cert list --ca "$ISSUING_ID" "${limit[@]}" >"$tmp/leaves.json"

log "requests for $SAMPLE sampled serials (+ $STORM storm serials, nonce and unknown-serial requests)"
python3 "$HERE/lib/make_reqs.py" "$tmp" "$SAMPLE" "$STORM" "$REVOKED" "$SEED"
rm -f "$tmp/leaves.json"   # large for big N; leaves.tsv keeps what the scripts need

# Cross-check our request encoding against openssl's (the peers use `openssl ocsp -reqout`).
first=$(head -1 "$tmp/reqs/expect.txt" | cut -f1)
openssl ocsp -issuer "$tmp/ca.pem" -serial "0x$first" -no_nonce -reqout "$tmp/openssl-req.der" >/dev/null 2>&1
if cmp -s "$tmp/openssl-req.der" "$(head -1 "$tmp/reqs/post.list")"; then
  log "request encoding identical to 'openssl ocsp -reqout'"
else
  log "note: request bytes differ from openssl's (same CertID expected; see reqs/)"
fi

log "revoking $REVOKED sampled leaves (keyCompromise) so answers include 'revoked'"
while IFS=$'\t' read -r _serial id; do
  pki cert revoke "$id" --reason keyCompromise >/dev/null
done <"$tmp/reqs/revoke-at-fixture.tsv"

# make_reqs.py wrote absolute paths under $tmp; rewrite them for the final location.
FIX_ABS=$(mkdir -p "$(dirname "$FIX")" && cd "$(dirname "$FIX")" && pwd)/$(basename "$FIX")
sed -i "s#^$tmp/#$FIX_ABS/#" "$tmp/reqs/post.list" "$tmp/reqs/nonce.list"
touch "$tmp/done"
rm -rf "$FIX"; mv "$tmp" "$FIX"
trap - EXIT
log "fixture ready in $FIX ($(du -sh "$FIX" | cut -f1))"
