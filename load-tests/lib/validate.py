#!/usr/bin/env python3
"""validate.py cloudpki BASE_URL FIXDIR [--storm-revoked FILE] [--keyless]
   validate.py static   BASE_URL FIXDIR STATICDIR

cloudpki: checks real answers, request by request (run before and after the load):
  every sampled request by GET and by POST: HTTP 200, Content-Type application/ocsp-response,
  OCSP status successful, one SingleResponse whose CertID (serial, issuer name/key hash) is the
  request's, cert status = expectation (good, or revoked with reason keyCompromise), signature by
  the issuing CA key (or a delegated responder certificate issued by it with id-kp-OCSPSigning),
  thisUpdate <= now < nextUpdate; GET and POST bodies identical.
  SHA-256 CertIDs (pre-signed too), nonce requests (signed on demand: nonce echoed, or tryLater),
  an unknown serial (`unknown`), both CRLs (signature, revoked serials listed) and the AIA cert.
--keyless: the target is a key-less responder (`serve --role responder`, or a cache in front of
  responders), which signs nothing: a nonce is ignored (the answer must be the pre-signed one, valid
  as above and without a nonce) and the unknown serial gets `unauthorized` (ARCHITECTURE.md).
static: the nginx copy serves byte-identical bodies for every GET, the canned POST, CRLs, AIA.
Prints one JSON line (summary + first errors); exit 1 when a check fails.
"""
import base64, datetime as dt, glob, http.client, json, sys, urllib.parse

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

TRY_LATER = bytes.fromhex("3003 0a01 03")
UNAUTHORIZED = bytes.fromhex("3003 0a01 06")


class Client:
    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def __call__(self, method, path, body=None):
        headers = {"Content-Type": "application/ocsp-request"} if body is not None else {}
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.getheader("Content-Type", ""), r.read()
            except (ConnectionError, http.client.HTTPException):
                if attempt:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)


def verify(cert, sig, data, hash_alg):
    pub = cert.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(sig, data, ec.ECDSA(hash_alg))
    else:
        pub.verify(sig, data, padding.PKCS1v15(), hash_alg)


class Checker:
    def __init__(self, fix):
        self.ca = x509.load_pem_x509_certificate(open(f"{fix}/ca.pem", "rb").read())
        self.root = x509.load_pem_x509_certificate(open(f"{fix}/root.pem", "rb").read())
        self.errors, self.counts = [], {}

    def count(self, k, n=1):
        self.counts[k] = self.counts.get(k, 0) + n

    def err(self, msg):
        self.count("errors")
        if len(self.errors) < 8:
            self.errors.append(msg)

    def ocsp_answer(self, what, code, ctype, body, req_der, want=None, nonce=False):
        """Checks one OCSP answer; want = 'good' | 'revoked' | 'unknown' | None (any)."""
        self.count("checked")
        if code != 200 or ctype != "application/ocsp-response":
            return self.err(f"{what}: HTTP {code} {ctype!r} {body[:60]!r}")
        if nonce and body == TRY_LATER:
            return self.count("try_later")
        try:
            r = ocsp.load_der_ocsp_response(body)
            q = ocsp.load_der_ocsp_request(req_der)
            if r.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
                return self.err(f"{what}: OCSP {r.response_status.name}")
            singles = list(r.responses)
            if len(singles) != 1:
                return self.err(f"{what}: {len(singles)} SingleResponses")
            s = singles[0]
            if (s.serial_number, s.issuer_key_hash, s.issuer_name_hash) != (
                    q.serial_number, q.issuer_key_hash, q.issuer_name_hash) or \
                    type(s.hash_algorithm) is not type(q.hash_algorithm):
                return self.err(f"{what}: CertID in answer != request (serial {s.serial_number:X})")
            status = s.certificate_status.name.lower()
            self.count(status)
            if want and status != want:
                return self.err(f"{what}: serial {q.serial_number:X} is {status}, expected {want}")
            if status == "revoked" and want == "revoked" and \
                    s.revocation_reason != x509.ReasonFlags.key_compromise:
                return self.err(f"{what}: revocation reason {s.revocation_reason}")
            signer = self.ca
            if r.certificates:
                signer = r.certificates[0]
                signer.verify_directly_issued_by(self.ca)
                eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
                if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
                    return self.err(f"{what}: responder certificate lacks id-kp-OCSPSigning")
            verify(signer, r.signature, r.tbs_response_bytes, r.signature_hash_algorithm)
            now = dt.datetime.now(dt.timezone.utc)
            if not (s.this_update_utc <= now + dt.timedelta(minutes=5)
                    and (s.next_update_utc is None or now < s.next_update_utc)):
                return self.err(f"{what}: outside thisUpdate/nextUpdate window")
            if nonce:
                want_n = q.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
                got = r.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
                if got != want_n:
                    return self.err(f"{what}: nonce not echoed")
            self.count("passed")
        except InvalidSignature:
            self.err(f"{what}: bad signature")
        except Exception as e:  # noqa: BLE001 - any parse failure is a finding
            self.err(f"{what}: {type(e).__name__}: {e}")


def check_cloudpki(base, fix, storm_revoked=None, keyless=False):
    c, get = Checker(fix), Client(base)
    ids = dict(l.strip().split("=", 1) for l in open(f"{fix}/ids.env") if "=" in l)
    suffixes = open(f"{fix}/reqs/get.txt").read().split()
    posts = open(f"{fix}/reqs/post.list").read().split()
    expect = [l.split("\t") for l in open(f"{fix}/reqs/expect.txt").read().splitlines()]
    revoked = {s for s, st in expect if st == "R"}
    for n, (suffix, post, (serial, st)) in enumerate(zip(suffixes, posts, expect)):
        der = open(post, "rb").read()
        want = "revoked" if st == "R" else "good"
        g = get("GET", f"/ocsp/{suffix}")
        p = get("POST", "/ocsp", der)
        c.ocsp_answer(f"GET #{n}", *g, der, want)
        c.ocsp_answer(f"POST #{n}", *p, der, want)
        if g[2] != p[2]:
            c.err(f"#{n}: GET and POST bodies differ")
    for f in sorted(glob.glob(f"{fix}/reqs/sha256/*.der")):
        der = open(f, "rb").read()
        n = int(f[-8:-4])
        want = "revoked" if expect[n][1] == "R" else "good"
        c.ocsp_answer(f"SHA-256 GET #{n}", *get("GET", "/ocsp/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")), der, want)
    for n, f in enumerate(open(f"{fix}/reqs/nonce.list").read().split()):
        der = open(f, "rb").read()
        want = "revoked" if expect[n][1] == "R" else "good"
        if keyless:
            code, ctype, body = get("POST", "/ocsp", der)
            c.ocsp_answer(f"nonce POST #{n} (key-less: nonce ignored)", code, ctype, body, der, want)
            try:
                if code == 200 and body != TRY_LATER:
                    ocsp.load_der_ocsp_response(body).extensions.get_extension_for_class(x509.OCSPNonce)
                    c.err(f"nonce POST #{n}: a key-less responder echoed a nonce (it cannot sign)")
            except x509.ExtensionNotFound:
                c.count("nonce_ignored")
        else:
            c.ocsp_answer(f"nonce POST #{n}", *get("POST", "/ocsp", der), der, want, nonce=True)
    der = open(f"{fix}/reqs/unknown.der", "rb").read()
    if keyless:
        code, ctype, body = get("POST", "/ocsp", der)
        c.count("checked")
        if code == 200 and ctype == "application/ocsp-response" and body == UNAUTHORIZED:
            c.count("unauthorized")
            c.count("passed")
        else:
            c.err(f"unknown serial (key-less): HTTP {code} {ctype!r} {body[:20].hex()}, expected unauthorized")
    else:
        c.ocsp_answer("unknown serial", *get("POST", "/ocsp", der), der, "unknown")
    if storm_revoked:
        for line in open(storm_revoked).read().splitlines():
            serial, _id, suffix = line.split("\t")[:3]
            code, ctype, body = get("GET", f"/ocsp/{suffix}")
            c.count("checked")
            try:
                st = ocsp.load_der_ocsp_response(body).certificate_status.name.lower()
            except Exception as e:  # noqa: BLE001
                st = f"unparsable ({e})"
            if st != "revoked":
                c.err(f"storm serial {serial}: {st} after the storm")
            else:
                c.count("passed")
    # CRLs and CA certificates
    for ca_id, cert in ((ids["ISSUING_ID"], c.ca), (ids["ROOT_ID"], c.root)):
        issuer = c.ca if cert is c.ca else c.root
        # Every CRL the CA serves (partitions.json lists current.crl and each partition).
        code, _, body = get("GET", f"/crls/{ca_id}_v1/partitions.json")
        paths = [u[u.index("/crls/"):] for u in json.loads(body)] if code == 200 else [f"/crls/{ca_id}_v1/current.crl"]
        listed, bad = set(), False
        for path in paths:
            code, ctype, body = get("GET", path)
            if code != 200 or ctype != "application/pkix-crl":
                c.err(f"CRL {path}: HTTP {code} {ctype}")
                bad = True
                continue
            crl = x509.load_der_x509_crl(body)
            if not crl.is_signature_valid(issuer.public_key()):
                c.err(f"CRL {path}: bad signature")
            listed |= {f"{e.serial_number:X}" for e in crl}
        if bad:
            continue
        if cert is c.ca:
            missing = {s.lstrip("0") for s in revoked} - listed
            if missing:
                c.err(f"CRL: {len(missing)} revoked serials missing, e.g. {sorted(missing)[:2]}")
            c.count("crl_entries", len(listed))
        code, ctype, body = get("GET", f"/cacerts/{ca_id}_v1/cert.cer")
        if code != 200 or body != cert.public_bytes(serialization.Encoding.DER):
            c.err(f"AIA {ca_id}: HTTP {code} or bytes differ from `ca cert`")
    return c


def check_static(base, fix, static):
    c, get = Checker(fix), Client(base)
    for n, suffix in enumerate(open(f"{fix}/reqs/get.txt").read().split()):
        code, ctype, body = get("GET", f"/ocsp/{suffix}")
        c.count("checked")
        if code != 200 or ctype != "application/ocsp-response" or body != open(f"{static}/expect/{n:04d}.der", "rb").read():
            c.err(f"GET #{n}: HTTP {code} {ctype!r}, or bytes differ")
        else:
            c.count("passed")
    der = open(open(f"{fix}/reqs/post.list").readline().strip(), "rb").read()
    code, ctype, body = get("POST", "/ocsp", der)
    c.count("checked")
    if code != 200 or ctype != "application/ocsp-response" or body != open(f"{static}/ocsp-post.der", "rb").read():
        c.err(f"POST: HTTP {code} {ctype!r}, or bytes differ")
    for p in open(f"{static}/crl.list").read().split() + open(f"{static}/aia.list").read().split():
        code, ctype, body = get("GET", p)
        c.count("checked")
        if code != 200 or body != open(static + p, "rb").read():
            c.err(f"{p}: HTTP {code} or bytes differ")
    return c


def main():
    a = sys.argv[1:]
    if a[0] == "cloudpki":
        storm = a[a.index("--storm-revoked") + 1] if "--storm-revoked" in a else None
        c = check_cloudpki(a[1].rstrip("/"), a[2], storm, keyless="--keyless" in a)
    else:
        c = check_static(a[1].rstrip("/"), a[2], a[3])
    ok = not c.errors
    print(json.dumps(dict(target=a[0], ok=ok, **c.counts, first_errors=c.errors)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
