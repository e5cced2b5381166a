#!/usr/bin/env bash
# Installs the independent tools the tests check our output with. Idempotent:
# does nothing when everything is present.
set -euo pipefail

apt_pkgs=()
command -v openssl >/dev/null || apt_pkgs+=(openssl)
command -v curl >/dev/null || apt_pkgs+=(curl)
command -v python3 >/dev/null || apt_pkgs+=(python3 python3-pip)
# Enrolment clients we did not write: strongSwan's `pki --scep/--scepca`
# (HTTP through the curl plugin in libstrongswan-extra-plugins) and
# certmonger's scep-submit helper.
command -v pki >/dev/null || apt_pkgs+=(strongswan-pki)
[ -e /usr/lib/ipsec/plugins/libstrongswan-curl.so ] || apt_pkgs+=(libstrongswan-extra-plugins)
[ -x /usr/lib/certmonger/scep-submit ] || apt_pkgs+=(certmonger)
# PostgreSQL server binaries for the PostgreSQL store's tests, which run a
# throwaway cluster of their own (scripts/pg-throwaway.sh).
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  apt_pkgs+=(postgresql)
  # Only the binaries are wanted: no system-wide "main" cluster started.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/cloudpki-tests.conf
fi
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
fi

# Pinned so a new release of a linter cannot turn CI red on its own.
PY_PKGS=(pkilint==0.13.3 cryptography==48.0.0 pyhanko-certvalidator==0.33.0 schemathesis==4.32.5)
if ! python3 - "${PY_PKGS[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    if version(name) != want:
        sys.exit(1)
PY
then
  python3 -m pip install --quiet --disable-pip-version-check "${PY_PKGS[@]}"
fi
