#!/usr/bin/env bash
# Layering check: no module imports one above it.
#
#   http  (listeners, routing)           may use api, snapshot, domain, ...
#   api   (Graph shape at the edge)      must not use http
#   snapshot                             must not use api or http
#   crl   (the CRL owner)                must not use snapshot, api or http
#   domain, x509, store                  must not use api, http, hyper,
#                                        and (domain, x509, store) not serde_json
#
# Exits non-zero naming each violation. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
# violation DIR PATTERN WHY [ALLOWED-FILE...]
violation() {
  local dir=$1 pattern=$2 why=$3
  shift 3
  local hits
  hits=$(grep -rnE --include='*.rs' "$pattern" "$dir" || true)
  for allowed in "$@"; do
    hits=$(printf '%s\n' "$hits" | grep -v "^$allowed:" || true)
  done
  hits=$(printf '%s\n' "$hits" | grep -v '^$' || true)
  if [ -n "$hits" ]; then
    echo "layer violation: $why"
    printf '  %s\n' "$hits"
    fail=1
  fi
}

violation src/api '(crate|super)::http\b' "api must not import http (http serves api, not the other way round)"
violation src/enrol '(crate|super)::(http|api)\b' "enrol (SCEP at the edge) must not import http or api"
violation src/snapshot '(crate)::(api|http)\b' "snapshot must not import api or http"
violation src/crl '(crate)::(snapshot|api|http)\b' "the CRL owner must not import snapshot, api or http (it hands bytes up)"
violation src/crl '\bhyper(_util)?::' "the CRL owner must not import hyper"
for low in src/domain src/x509 src/store; do
  violation "$low" '(crate)::(api|http|enrol)\b' "$low must not import api, http or enrol"
  violation "$low" '\bhyper(_util)?::' "$low must not import hyper"
done
violation src/x509 '\bserde_json\b' "x509 must not know JSON"
violation src/store '\bserde_json\b' "the store must not know JSON"
violation src/domain '\bserde_json\b' "the domain must not know JSON"

if [ "$fail" = 0 ]; then
  echo "layers: ok (api -/-> http; snapshot -/-> api, http; crl -/-> snapshot, api, http, hyper; domain, x509, store -/-> api, http, hyper; JSON only at the edge)"
fi
exit "$fail"
