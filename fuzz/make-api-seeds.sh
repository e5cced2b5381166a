#!/usr/bin/env bash
# Writes the named seeds of the API targets: fuzz/seeds/graph_body/*.json and
# fuzz/seeds/odata_query/*.txt. Deterministic (no keys), so rerunning it
# changes nothing; files named by a SHA-1 next to them are the minimised
# corpus scripts/fuzz-campaign.sh keeps, and are left alone.
#
# graph_body: the request bodies of Graph's documentation examples
# (tests/fixtures/graph-examples/*.request.http, placeholders and all) and one
# valid body per request type, the PEM ones with the certificate and CSR of
# fuzz/seeds/pem/. odata_query: the query strings of tests/integration/api.rs
# and security.rs, and one per option.
set -euo pipefail
cd "$(dirname "$0")"
B=seeds/graph_body
Q=seeds/odata_query
mkdir -p "$B" "$Q"

# Graph examples: the body is what follows the first blank line.
for f in ../tests/fixtures/graph-examples/*.request.http; do
  n=$(basename "$f" .request.http)
  awk 'b { print } /^\r?$/ { b = 1 }' "$f" >"$B/example-$n.json"
done

json_pem() { # a file as a JSON string (newlines escaped)
  awk 'BEGIN { ORS = "" } { sub(/\r$/, ""); gsub(/"/, "\\\""); print $0 "\\n" }' "$1"
}
cert=$(json_pem seeds/pem/cert.pem)
csr=$(json_pem seeds/pem/csr.pem)

w() { printf '%s\n' "$2" >"$B/$1.json"; }
w create-root '{"displayName":"Root","description":"a root","cloudCertificationAuthorityType":"rootCertificationAuthority","validityPeriodInYears":10,"commonName":"Fuzz Root","organizationName":"m7kni","organizationUnit":"home","countryName":"GB","stateName":"Hampshire","localityName":"Fair Oak","certificateKeySize":"eCP256","cloudCertificationAuthorityHashingAlgorithm":"sha384","extendedKeyUsages":[{"objectIdentifier":"1.3.6.1.5.5.7.3.2"},{"objectIdentifier":"1.3.6.1.5.5.7.3.1"}],"roleScopeTagIds":["0","1"]}'
w create-issuing '{"displayName":"Issuing","cloudCertificationAuthorityType":"issuingCertificationAuthority","certificationAuthorityIssuerId":"5b7c0b1e-1b0e-4a9c-9d6e-1f2a3b4c5d6e","commonName":"Issuing CA","certificateKeySize":"rsa4096","validityPeriodInYears":4}'
w create-external '{"cloudCertificationAuthorityType":"issuingCertificationAuthorityWithExternalRoot","commonName":"Ext","countryName":"us","extendedKeyUsages":[{"objectIdentifier":"2.5.29.37.0"}]}'
w create-bad-oid '{"cloudCertificationAuthorityType":"rootCertificationAuthority","commonName":"x","validityPeriodInYears":-1,"extendedKeyUsages":[{"objectIdentifier":"1.2.268435456"}]}'
w patch-ca '{"displayName":"Renamed","description":null,"roleScopeTagIds":["0"]}'
w patch-ca-empty-tags '{"description":"d","roleScopeTagIds":[]}'
w change-status '{"certificationAuthorityStatus":"paused","certificationAuthorityVersion":1}'
w change-status-active '{"certificationAuthorityStatus":"ACTIVE"}'
w revoke-ca '{"certificationAuthorityVersion":3}'
w upload "{\"signedCertificate\":\"$cert\",\"trustChainCertificates\":[{\"displayName\":\"root\",\"certificate\":\"$cert\"}]}"
w revoke-leaf '{"leafCertificateId":"0f6e1b7a-3c1d-4b8e-9f2a-6d5c4b3a2918"}'
w serial '{"certificateSerialNumber":"2F:30:4E:55:6A:7A:56:78 78:7D:EC:A6:8B:38:43:16"}'
w reason '{"reason":"keyCompromise"}'
w patch-leaf '{"deviceName":"device-1","userPrincipalName":"alice@example.org","deviceId":"d1","userId":"u1","devicePlatform":"windows10AndLater"}'
w issue-leaf "{\"certificateSigningRequest\":\"$csr\",\"validityInDays\":365,\"deviceName\":\"device-1\",\"devicePlatform\":\"iOS\"}"
printf '' >"$B/empty.json"

q() { printf '%s' "$2" >"$Q/$1.txt"; }
q audit-activity "\$filter=activityType%20eq%20'RevokeCloudCertificationAuthorityCertificateAsync%20CloudCertificationAuthority'"
q audit-activity-quote "\$top=5&\$skiptoken=12&\$filter=activityType+eq+'it''s'"
q top "\$top=5"
q top-max "\$top=999"
q filter-status "\$filter=certificationAuthorityStatus%20eq%20'paused'"
q filter-nested "\$filter=certificationAuthorityStatus%20ne%20'paused'%20and%20(cloudCertificationAuthorityType%20eq%20'rootCertificationAuthority'%20or%20cloudCertificationAuthorityType%20eq%20'issuingCertificationAuthority')&\$count=true"
q orderby-select-top "\$orderby=displayName%20desc,validityStartDateTime&\$select=displayName,thumbprint&\$top=2"
q skip-top "\$skip=1&\$top=1"
q bad-filter-prop "\$filter=displayName%20eq%20'x'"
q bad-orderby "\$orderby=thumbprint"
q bad-select "\$select=keyPlatform"
q bad-op "\$filter=certificationAuthorityStatus%20gt%20'x'"
q leaves-orderby "\$orderby=subjectName%20desc"
q leaves-filter-select "\$filter=certificateStatus%20eq%20'active'&\$select=serialNumber"
q leaves-revoked "\$filter=certificateStatus%20eq%20'revoked'"
q count "\$count=true"
q skiptoken "\$top=2&\$skiptoken=1&\$filter=certificateStatus+ne+'revoked'"
q all-options "%24filter=certificateStatus%20eq%20%27active%27&%24orderby=certificateStatus%20asc%2CsubjectName%20desc&%24select=id%2CsubjectName%2CdevicePlatform&%24top=1&%24skip=1&%24count=false"
q unknown-option "\$expand=versions"

echo "API seeds written: graph_body $(ls $B | wc -l) files, odata_query $(ls $Q | wc -l) files"
