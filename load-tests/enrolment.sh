#!/usr/bin/env bash
# SCEP and EST enrolments per second on one core: the server pinned to one core (SQLite,
# synchronous=FULL), the load generator (examples/enrol_load.rs: devices' keys, CSRs and SCEP
# envelopes made before the clock starts) on the other. For an RSA-2048 and a P-256 issuing
# CA: SCEP PKCSReq over POST (RSA-2048 device keys, as SCEP devices use) and EST simpleenroll
# over TLS (P-256 device keys). Server CPU per enrolment from its process-group ticks. Writes
# load-tests/out/enrolment-*/ and the "Enrolment" section of RESULTS.md.
#
#   load-tests/enrolment.sh        # ~3 min after the release build
# Knobs: COUNT (2000 enrolments per run), CONC (8 concurrent devices).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
source "$HERE/lib/common.sh"

BIN=${CLOUDPKI:-$ROOT/target/release/cloudpki}
LOADGEN=${LOADGEN:-$ROOT/target/release/examples/enrol_load}
COUNT=${COUNT:-2000}; CONC=${CONC:-8}
SERVER_CPU=${SERVER_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}; PIN=1
NICE=${NICE:--10}; [ "$(id -u)" = 0 ] || NICE=0
OUT=${OUT:-$HERE/out/enrolment-$(date +%Y%m%d-%H%M%S)}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
CMDLINE="COUNT=$COUNT CONC=$CONC ${0#$ROOT/}"
TMP=$(mktemp -d /tmp/cloudpki-enrol.XXXXXX)
mkdir -p "$OUT"
trap 'rc=$?; cleanup_all; rm -rf "$TMP"; exit $rc' EXIT
trap 'exit 130' INT TERM
prioritize

[ -x "$LOADGEN" ] || { log "no $LOADGEN: cargo build --release --example enrol_load"; exit 1; }
private_binary
PORT=${PORT:-18310}; TLS_PORT=${TLS_PORT:-18311}
export CLOUDPKI_DATA_DIR=$TMP/data
"$BIN" --public-url "http://127.0.0.1:$PORT" init >/dev/null

# A TLS certificate for the EST listener.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/tls-ca.key" \
  -subj "/CN=Load TLS CA" -days 2 -out "$TMP/tls-ca.pem" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/tls.key" \
  -subj /CN=127.0.0.1 -out "$TMP/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$TMP/tls.ext"
openssl x509 -req -in "$TMP/tls.csr" -CA "$TMP/tls-ca.pem" -CAkey "$TMP/tls-ca.key" -set_serial 1 \
  -days 1 -extfile "$TMP/tls.ext" -out "$TMP/tls.pem" 2>/dev/null
# One source and one challenge: the default rate limits would hold the run back.
cat >"$TMP/cloudpki.toml" <<TOML
enrol_rate_per_source = 0
enrol_rate_per_challenge = 0
tls_listen = "127.0.0.1:$TLS_PORT"
tls_cert = "$TMP/tls.pem"
tls_key = "$TMP/tls.key"
TOML

declare -A ISSUING CHALLENGE
for key in rsa2048 eCP256; do
  root=$("$BIN" --json ca create --type root --common-name "Load Root $key" --key-size "$key" | jq -r .id)
  ISSUING[$key]=$("$BIN" --json ca create --type issuing --issuer "$root" --common-name "Load Issuing $key" \
    --key-size "$key" --eku 1.3.6.1.5.5.7.3.2 | jq -r .id)
  types=(--key-type rsa2048); [ "$key" = eCP256 ] && types+=(--key-type eCP256)
  profile=$("$BIN" --json profile create --ca "${ISSUING[$key]}" --name load "${types[@]}" | jq -r '.[0].id')
  CHALLENGE[$key]=$("$BIN" --json challenge create --profile "$profile" --uses $((4 * COUNT)) | jq -r .challenge)
done

START_NS=$(date +%s%N)
start_pg "$OUT/server.log" "$BIN" serve --listen "127.0.0.1:$PORT" --config "$TMP/cloudpki.toml"
SERVER=$PG
wait_ready "http://127.0.0.1:$PORT/readyz" "$SERVER" 60 >/dev/null

rows=()
for key in rsa2048 eCP256; do
  ca=${ISSUING[$key]}
  curl -s -o "$TMP/ra-$key.p7" "http://127.0.0.1:$PORT/scep/$ca?operation=GetCACert"
  # The RA certificate (the one that is no CA) out of GetCACert's certs-only PKCS#7.
  python3 - "$TMP/ra-$key.p7" "$TMP/ra-$key.der" <<'PY'
import sys
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
certs = pkcs7.load_der_pkcs7_certificates(open(sys.argv[1], "rb").read())
def is_ca(c):
    try:
        return c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
ra = next(c for c in certs if not is_ca(c))
open(sys.argv[2], "wb").write(ra.public_bytes(Encoding.DER))
PY
  for proto in scep est; do
    if [ "$proto" = scep ]; then
      url="http://127.0.0.1:$PORT/scep/$ca"; trust=$TMP/ra-$key.der; dkey=rsa
    else
      # EST devices: P-256 keys, but RSA-2048 under the RSA-2048 CA (no device key stronger than its CA's).
      url="https://127.0.0.1:$TLS_PORT/$ca"; trust=$TMP/tls-ca.pem; dkey=ec
      [ "$key" = rsa2048 ] && dkey=rsa
    fi
    before=$(pg_ticks "$SERVER")
    taskset -c "$LOAD_CPU" "$LOADGEN" "$proto" "$url" "$trust" "${CHALLENGE[$key]}" "$COUNT" "$CONC" "$dkey" \
      >"$OUT/$proto-$key.json" 2>"$OUT/$proto-$key.log"
    after=$(pg_ticks "$SERVER")
    json=$(cat "$OUT/$proto-$key.json")
    ok=$(jq -r .ok <<<"$json"); per_s=$(jq -r .per_second <<<"$json")
    cpu_ms=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$ok" 'BEGIN { printf "%.2f", t * 1000 / hz / n }')
    log "$proto $key: $json (server CPU $cpu_ms ms per enrolment)"
    rows+=("| $proto | $key | $ok | $(jq -r .failures <<<"$json") | $per_s | $(jq -r .p50_ms <<<"$json") / $(jq -r .p99_ms <<<"$json") | $cpu_ms |")
  done
done

{
  echo
  echo "## Enrolment: SCEP and EST per second on one core"
  echo
  echo "Command: \`$CMDLINE\` (binary $BIN_INFO). Server pinned to core $SERVER_CPU (SQLite,"
  echo "synchronous=FULL), \`examples/enrol_load\` on core $LOAD_CPU with $CONC devices at a time on"
  echo "keep-alive connections; SCEP: PKCSReq over POST, RSA-2048 device keys, AES-128; EST:"
  echo "simpleenroll over TLS 1.3 with a challenge as the Basic password, P-256 device keys (RSA-2048"
  echo "under the RSA-2048 CA: a profile allows no key stronger than its CA's)."
  echo
  echo "| protocol | issuing CA | enrolled | failed | per second | p50 / p99 ms | server CPU ms per enrolment |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} | tee -a "$RESULTS"
