#!/usr/bin/env bash
# Regenerates fuzz/seeds/<target>/ and fuzz/fixtures/ with OpenSSL (3.x).
#
# Every seed is a real object made by openssl: requests from `openssl ocsp
# -reqout`, CSRs from `openssl req`, certificates from `openssl req -x509` /
# `openssl x509 -req`. Keys are fresh each run and are not kept: only the two
# root public keys are (fixtures/*.spki.der, the fixed issuer keys of the
# cert_upload target), so rerunning changes every seed. That is fine: seeds
# only need to be valid starting points.
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_DIR=$PWD
SEEDS=$FUZZ_DIR/seeds
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
q() { "$@" >/dev/null 2>&1; }

# Only the targets regenerated here: scep_message keeps its captured seeds
# (real strongSwan and certmonger requests; see fuzz/README.md).
rm -rf "$SEEDS"/{ocsp_request,ocsp_get_path,csr,pem,cert_upload}
mkdir -p "$SEEDS"/{ocsp_request,ocsp_get_path,csr,pem,cert_upload} "$FUZZ_DIR/fixtures"

# --- A small PKI -------------------------------------------------------------
# Root EC P-256 (SHA-256) and root RSA-2048 (SHA-384): the fixed issuer keys.
q openssl ecparam -name prime256v1 -genkey -noout -out root-ec.key
q openssl req -x509 -new -key root-ec.key -sha256 -days 3650 -subj "/C=GB/O=cloudpki fuzz/CN=Fuzz Root EC" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out root-ec.pem
q openssl genrsa -out root-rsa.key 2048
q openssl req -x509 -new -key root-rsa.key -sha384 -days 3650 -subj "/CN=Fuzz Root RSA/O=cloudpki fuzz" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:1" -addext "keyUsage=critical,keyCertSign,cRLSign" -out root-rsa.pem
openssl pkey -in root-ec.key -pubout -outform DER -out "$FUZZ_DIR/fixtures/root-ec-p256.spki.der"
openssl pkey -in root-rsa.key -pubout -outform DER -out "$FUZZ_DIR/fixtures/root-rsa-2048.spki.der"

cat >int.ext <<'EOF'
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign,digitalSignature
extendedKeyUsage=clientAuth,serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
authorityInfoAccess=caIssuers;URI:http://pki.example/cacerts/root_v1/cert.cer,OCSP;URI:http://pki.example/ocsp
crlDistributionPoints=URI:http://pki.example/crls/root_v1/current.crl
EOF
# Issuing CA P-384 under the EC root (SHA-384, serial with a 00 sign byte).
q openssl ecparam -name secp384r1 -genkey -noout -out int-p384.key
q openssl req -new -key int-p384.key -out int-p384.csr \
  -subj "/C=GB/ST=Hampshire/L=Fair Oak/O=m7kni/OU=home/CN=Issuing CA P-384"
q openssl x509 -req -in int-p384.csr -CA root-ec.pem -CAkey root-ec.key -set_serial 0x00e41047aa -sha384 \
  -days 1825 -extfile int.ext -out int-p384.pem
# Issuing CA RSA-2048 under the RSA root (SHA-512).
q openssl genrsa -out int-rsa.key 2048
q openssl req -new -key int-rsa.key -subj "/CN=Issuing CA RSA" -out int-rsa.csr
q openssl x509 -req -in int-rsa.csr -CA root-rsa.pem -CAkey root-rsa.key -set_serial 0x1234567890abcdef -sha512 \
  -days 1825 -extfile int.ext -out int-rsa.pem
# A device leaf under the EC root.
q openssl ecparam -name prime256v1 -genkey -noout -out leaf.key
q openssl req -new -key leaf.key -subj "/CN=device-1" -out leaf.csr
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:device-1.example,IP:10.0.0.1\n' >leaf.ext
q openssl x509 -req -in leaf.csr -CA root-ec.pem -CAkey root-ec.key -set_serial 0x2F304E556A7A5678787DECA68B384316 \
  -sha256 -days 365 -extfile leaf.ext -out leaf.pem

# --- cert_upload: DER certificates --------------------------------------------
for c in root-ec root-rsa int-p384 int-rsa leaf; do
  openssl x509 -in $c.pem -outform DER -out "$SEEDS/cert_upload/$c.der"
done

# --- ocsp_request: DER OCSP requests ------------------------------------------
R=$SEEDS/ocsp_request
q openssl ocsp -issuer root-ec.pem -cert leaf.pem -reqout $R/sha1-nonce.der
q openssl ocsp -issuer root-ec.pem -cert leaf.pem -no_nonce -reqout $R/sha1.der
for h in sha256 sha384 sha512; do
  q openssl ocsp -$h -issuer root-ec.pem -cert leaf.pem -no_nonce -reqout $R/$h.der
done
q openssl ocsp -issuer root-ec.pem -serial 0x01 -serial 0x00e41047aa -serial 12345 -reqout $R/three-serials-nonce.der
q openssl ocsp -issuer root-rsa.pem -cert int-rsa.pem -no_nonce -reqout $R/rsa-issuer.der
# Signed request: optionalSignature with the signer's certificate.
q openssl ocsp -issuer root-ec.pem -cert leaf.pem -signer leaf.pem -signkey leaf.key -reqout $R/signed.der
# 17 CertIDs: one over MAX_SINGLE_REQUESTS.
args=()
for i in $(seq 1 17); do args+=(-serial "$i"); done
q openssl ocsp -issuer root-ec.pem "${args[@]}" -no_nonce -reqout $R/seventeen.der

# --- ocsp_get_path: the same requests as clients put them in a GET path -------
G=$SEEDS/ocsp_get_path
for r in sha1-nonce sha256 three-serials-nonce signed; do
  b64=$(base64 -w0 <$R/$r.der)
  printf '%s' "$b64" >$G/$r.std.txt
  printf '%s' "$b64" | sed -e 's/+/%2B/g' -e 's#/#%2F#g' -e 's/=/%3D/g' >$G/$r.percent.txt
  printf '%s' "$b64" | tr '+/' '-_' | tr -d '=' >$G/$r.urlsafe.txt
  printf '%s' "$b64" | tr '+' ' ' | tr -d '=' >$G/$r.plus-as-space.txt
done

# --- csr: DER PKCS#10 requests from devices -----------------------------------
C=$SEEDS/csr
csr() { # name keyfile digest extra-args...
  local name=$1 key=$2 digest=$3
  shift 3
  q openssl req -new -key "$key" "$digest" -outform DER -out "$C/$name.der" "$@"
}
csr ec-p256-san-eku leaf.key -sha256 -subj "/CN=device-1/O=m7kni" \
  -addext "subjectAltName=DNS:device-1.example,IP:10.0.0.1,email:ops@example.org" \
  -addext "extendedKeyUsage=clientAuth,serverAuth"
csr ec-p384 int-p384.key -sha384 -subj "/C=GB/CN=Issuing CA P-384"
csr rsa-2048 int-rsa.key -sha256 -subj "/CN=device-rsa" -addext "extendedKeyUsage=clientAuth"
q openssl genrsa -out weak.key 1024
csr rsa-1024-weak weak.key -sha256 -subj "/CN=weak"
q openssl ecparam -name secp256k1 -genkey -noout -out k1.key
csr secp256k1 k1.key -sha256 -subj "/CN=k1"
q openssl ecparam -name secp521r1 -genkey -noout -out p521.key
csr p521-sha512 p521.key -sha512 -subj "/CN=p521"
q openssl genpkey -algorithm ed25519 -out ed.key
q openssl req -new -key ed.key -subj "/CN=ed25519" -outform DER -out "$C/ed25519-unsupported.der"
csr rsa-pss int-rsa.key -sha256 -subj "/CN=pss" -sigopt rsa_padding_mode:pss

# --- pem: operator files ----------------------------------------------------------
P=$SEEDS/pem
cp leaf.pem $P/cert.pem
{
  cat int-p384.pem root-ec.pem
  # A private key block in the bundle (random bytes, not a key): skipped.
  echo "-----BEGIN PRIVATE KEY-----"
  openssl rand -base64 48
  echo "-----END PRIVATE KEY-----"
} >$P/chain-with-key.pem
q openssl x509 -in int-rsa.pem -text -out $P/with-text.pem
sed 's/$/\r/' leaf.pem >$P/cert-crlf.pem
openssl x509 -in leaf.pem -outform DER | base64 -w0 >$P/cert.b64
openssl x509 -in leaf.pem -outform DER | base64 -w64 >$P/cert-wrapped.b64
openssl x509 -in leaf.pem -outform DER -out $P/cert.der
cp leaf.csr $P/csr.pem

echo "seeds written to $SEEDS:"
for d in "$SEEDS"/*/; do printf '  %-14s %s files\n' "$(basename "$d")" "$(ls "$d" | wc -l)"; done

# --- graph_body, odata_query: the API targets' named seeds (no OpenSSL) -------
"$FUZZ_DIR/make-api-seeds.sh"
