#!/usr/bin/env bash
# Builds the store fixture the migration test starts from, with a given
# cloudpki binary (the release whose store layout the test must upgrade):
#
#   scripts/make-store-fixture.sh /path/to/old/cloudpki tests/fixtures/store-v7
#
# The directory gets the SQLite data directory (database, KEK) and the old
# binary's own JSON views of what it holds (cas.json, leaves.json), which the
# test compares with what the new build reads after migrating.
set -euo pipefail
bin=$1
out=$2
rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CLOUDPKI_DATA_DIR="$out/data" CLOUDPKI_PUBLIC_URL=http://pki.example.test:8180
c() { "$bin" --json "$@" </dev/null; }
id() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }

c init >/dev/null
root=$(c ca create --type root --common-name "Fixture Root" --key-size eCP256 --organization "Fixture Org" \
  --country nl --locality Delft --scope-tag 0 --scope-tag 7 --description 'a "quoted" root' | id)
issuing=$(c ca create --type issuing --issuer "$root" --common-name "Fixture Issuing" --key-size eCP256 \
  --validity-years 2 --eku 1.3.6.1.5.5.7.3.2 --scope-tag 7 --display-name "Issuing (display)" | id)
c ca create --type external --common-name "Fixture External" --key-size eCP384 --hash sha384 >/dev/null
paused=$(c ca create --type issuing --issuer "$root" --common-name "Fixture Paused" --key-size eCP256 | id)
c ca pause "$paused" >/dev/null
gone=$(c ca create --type issuing --issuer "$root" --common-name "Fixture Deleted" --key-size eCP256 | id)
c ca pause "$gone" >/dev/null
c ca revoke "$gone" --yes >/dev/null
c ca delete "$gone" --yes >/dev/null

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/k.pem" \
  -subj "/CN=device-1/O=Fleet" -out "$work/csr.pem" 2>/dev/null
c cert issue --ca "$issuing" --csr "$work/csr.pem" --device-name "laptop-1" --user-principal-name "ada@example.test" \
  --device-id dev-1 --user-id user-1 --device-platform windows10andlater >/dev/null
revoked=$(c cert issue --ca "$issuing" --csr "$work/csr.pem" --device-name "laptop-2" | id)
c cert revoke "$revoked" --reason keyCompromise >/dev/null
c cert issue --ca "$issuing" --csr "$work/csr.pem" --validity-days 30 >/dev/null

c ca list >"$out/cas.json"
c cert list --ca "$issuing" >"$out/leaves.json"
rm -f "$out/data/admin-token"
ls "$out/data"
