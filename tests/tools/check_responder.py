#!/usr/bin/env python3
"""Check a running cloudpki server's CRLs, AIA certificates and OCSP responder with
independent tools: `cryptography` (parsing, signatures) and pyhanko-certvalidator (full
RFC 5280 path validation fetching revocation information over HTTP).

Usage:
  python3 tests/tools/check_responder.py --root root.pem --issuing issuing.pem \
      --good good.pem --revoked revoked.pem [--url http://127.0.0.1:PORT] [--reason keyCompromise]

root/issuing: the CA certificates (PEM or DER); good: a leaf of the issuing CA that is not
revoked; revoked: a leaf of the issuing CA revoked with --reason (default keyCompromise).
Every URL is taken from the certificates (CRL DP, AIA caIssuers, AIA OCSP); with --url its
scheme and host:port replace theirs (for a server reached at another address than the
public URL baked into the certificates).

Prints one line per check, "ok: ..." or "FAIL: ...", then "check_responder: N passed,
N failed". Exit 0: every check passed; 1: a check failed; 2: bad usage or unreadable input.
Needs: cryptography, pyhanko-certvalidator (and what it pulls in: aiohttp, asn1crypto).
"""

import argparse
import asyncio
import base64
import datetime as dt
import email.utils
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, SignatureAlgorithmOID

SKEW = dt.timedelta(minutes=5)  # tolerated clock difference between server and us
ONE_SECOND = dt.timedelta(seconds=1)
TIMEOUT = 10

# Never go through an HTTP proxy from the environment: the server is local.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---------------------------------------------------------------------------- reporting


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def result(self, label, problems):
        """Record one check: ok when problems is empty, else FAIL with the problems."""
        if problems:
            self.failed += 1
            print(f"FAIL: {label}: {'; '.join(str(p) for p in problems)}", flush=True)
        else:
            self.passed += 1
            print(f"ok: {label}", flush=True)
        return not problems

    def run(self, label, fn, *args):
        """Run fn(*args) -> list of problems (or None); an exception is a failure."""
        try:
            problems = fn(*args) or []
        except Exception as e:  # noqa: BLE001 - any error is a failed check
            problems = [f"{type(e).__name__}: {e}"]
        return self.result(label, problems)


# ---------------------------------------------------------------------------- helpers


def load_cert(path):
    with open(path, "rb") as f:
        data = f.read()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def name_of(cert):
    return cert.subject.rfc4514_string()


def now_utc():
    return dt.datetime.now(dt.timezone.utc)


def http(method, url, body=None, headers=None):
    """(status, headers, body); HTTP errors (incl. 304) are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=TIMEOUT) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def content_type(headers):
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower()


def crl_dp_urls(cert):
    try:
        dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [
        gn.value
        for dp in dps
        for gn in (dp.full_name or [])
        if isinstance(gn, x509.UniformResourceIdentifier)
    ]


def aia_urls(cert, method):
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        d.access_location.value
        for d in aia
        if d.access_method == method
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


def key_id(cert):
    """The SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2 method 1, RFC 6960 byKey)."""
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def ski(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return key_id(cert)


def verify_signature(pub, signature, data, hash_alg, sig_oid):
    """Raise InvalidSignature unless signature over data verifies with pub."""
    if isinstance(pub, rsa.RSAPublicKey):
        if sig_oid == SignatureAlgorithmOID.RSASSA_PSS:
            pad = padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=padding.PSS.AUTO)
        else:
            pad = padding.PKCS1v15()
        pub.verify(signature, data, pad, hash_alg)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(signature, data, ec.ECDSA(hash_alg))
    elif isinstance(pub, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        pub.verify(signature, data)
    else:
        raise TypeError(f"unsupported key type {type(pub).__name__}")


def http_date(value):
    """Parse an HTTP date header to an aware datetime (None when absent/unparseable)."""
    if not value:
        return None
    try:
        d = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


def cache_control(headers):
    """Cache-Control directives as {name: value-or-None}."""
    out = {}
    for part in (headers.get("Cache-Control") or "").split(","):
        part = part.strip()
        if not part:
            continue
        k, _, v = part.partition("=")
        out[k.strip().lower()] = v.strip().strip('"') if v else None
    return out


class Target:
    """A certificate whose status is checked, with its issuer and what we expect."""

    def __init__(self, label, cert, issuer, issuer_label, status, reason=None):
        self.label = label
        self.cert = cert
        self.issuer = issuer
        self.issuer_label = issuer_label
        self.status = status  # ocsp.OCSPCertStatus
        self.reason = reason  # x509.ReasonFlags for a revoked one
        self.crl_revocation_date = None  # filled in from the CRL, compared with OCSP


# ---------------------------------------------------------------------------- the checks


class Checker:
    def __init__(self, args, certs):
        self.args = args
        self.c = Checks()
        self.root = certs["root"]
        self.issuing = certs["issuing"]
        self.good = certs["good"]
        self.revoked = certs["revoked"]
        self.reason = x509.ReasonFlags(args.reason)
        self.targets = [
            Target("good leaf", self.good, self.issuing, "issuing CA", ocsp.OCSPCertStatus.GOOD),
            Target(
                "revoked leaf",
                self.revoked,
                self.issuing,
                "issuing CA",
                ocsp.OCSPCertStatus.REVOKED,
                self.reason,
            ),
            Target("issuing CA", self.issuing, self.root, "root CA", ocsp.OCSPCertStatus.GOOD),
        ]
        self.base = None
        if args.url:
            u = urllib.parse.urlsplit(args.url)
            self.base = (u.scheme, u.netloc)

    def rebase(self, url):
        if not self.base:
            return url
        u = urllib.parse.urlsplit(url)
        return urllib.parse.urlunsplit((self.base[0], self.base[1], u.path, u.query, ""))

    # ------------------------------------------------------------------ inputs

    def check_inputs(self):
        c = self.c

        def chain():
            self.issuing.verify_directly_issued_by(self.root)
            self.good.verify_directly_issued_by(self.issuing)
            self.revoked.verify_directly_issued_by(self.issuing)
            if self.good.serial_number == self.revoked.serial_number:
                return ["--good and --revoked are the same certificate"]
            return []

        c.run("inputs: root -> issuing -> {good, revoked} signatures chain", chain)

        def urls():
            problems = []
            for label, cert in (("good", self.good), ("revoked", self.revoked), ("issuing", self.issuing)):
                for what, got in (
                    ("CRL DP", crl_dp_urls(cert)),
                    ("AIA caIssuers", aia_urls(cert, AuthorityInformationAccessOID.CA_ISSUERS)),
                    ("AIA OCSP", aia_urls(cert, AuthorityInformationAccessOID.OCSP)),
                ):
                    if len(got) != 1:
                        problems.append(f"{label} has {len(got)} {what} URL(s), want 1")
            return problems

        c.run("inputs: leaves and issuing CA carry one CRL DP, caIssuers and OCSP URL each", urls)

        ocsp_urls = aia_urls(self.good, AuthorityInformationAccessOID.OCSP)
        if self.args.url or ocsp_urls:
            u = urllib.parse.urlsplit(self.rebase(ocsp_urls[0]) if ocsp_urls else self.args.url)
            base = f"{u.scheme}://{u.netloc}"
            for path in ("/healthz", "/readyz"):
                c.run(
                    f"GET {path} returns 200",
                    lambda p=path: (
                        [] if (s := http("GET", base + p)[0]) == 200 else [f"HTTP {s}"]
                    ),
                )

    # ------------------------------------------------------------------ CRLs

    def check_crls(self):
        # (CA, label, cert whose CRL DP points at the CA's CRL, listed targets, unlisted)
        # Each leaf is checked against the CRL its own CRL DP names: a
        # partitioned CA's leaves may name different partitions.
        jobs = [
            (self.issuing, "issuing CA (good leaf's CRL)", [self.good], [], [self.targets[0]]),
            (self.issuing, "issuing CA (revoked leaf's CRL)", [self.revoked], [self.targets[1]], []),
            (self.root, "root CA", [self.issuing], [], [self.targets[2]]),
        ]
        for ca, label, children, listed, unlisted in jobs:
            self.check_crl(ca, label, children, listed, unlisted)

    def check_crl(self, ca, label, children, listed, unlisted):
        c = self.c
        urls = sorted({u for ch in children for u in crl_dp_urls(ch)})
        if len(urls) != 1:
            c.result(f"CRL {label}: one CRL DP URL in its certificates", [f"found {urls}"])
            return
        dp = urls[0]
        fetched = {}

        def fetch():
            status, headers, body = http("GET", self.rebase(dp))
            fetched["headers"] = headers
            if status != 200:
                return [f"HTTP {status}"]
            fetched["crl"] = x509.load_der_x509_crl(body)
            if content_type(headers) != "application/pkix-crl":
                return [f"Content-Type {headers.get('Content-Type')!r}, want application/pkix-crl"]
            return []

        c.run(f"CRL {label}: GET {dp} -> 200 application/pkix-crl, DER parses", fetch)
        crl = fetched.get("crl")
        if crl is None:
            return

        c.run(
            f"CRL {label}: issuer equals the CA subject",
            lambda: [] if crl.issuer == ca.subject else [f"issuer {crl.issuer.rfc4514_string()}"],
        )
        c.run(
            f"CRL {label}: signature valid with the CA public key",
            lambda: [] if crl.is_signature_valid(ca.public_key()) else ["is_signature_valid() is False"],
        )

        def crl_number():
            n = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            return [] if n >= 0 else [f"CRL number {n}"]

        c.run(f"CRL {label}: CRL Number extension present", crl_number)

        def aki():
            v = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
            if v.key_identifier != ski(ca):
                got = v.key_identifier.hex() if v.key_identifier else None
                return [f"keyIdentifier {got} != CA SKI {ski(ca).hex()}"]
            return []

        c.run(f"CRL {label}: Authority Key Identifier present and equals the CA's SKI", aki)

        def idp():
            ext = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
            want = [x509.UniformResourceIdentifier(dp)]
            problems = []
            if list(ext.value.full_name or []) != want:
                problems.append(f"full_name {ext.value.full_name} != {want}")
            if not ext.critical:
                problems.append("IDP not marked critical (RFC 5280 5.2.5)")
            return problems

        c.run(f"CRL {label}: Issuing Distribution Point full_name equals the CRL DP URL", idp)

        def times():
            now = now_utc()
            problems = []
            if crl.last_update_utc > now + SKEW:
                problems.append(f"thisUpdate {crl.last_update_utc} is in the future")
            if crl.next_update_utc is None:
                problems.append("no nextUpdate")
            elif crl.next_update_utc <= now:
                problems.append(f"nextUpdate {crl.next_update_utc} has passed")
            return problems

        c.run(f"CRL {label}: thisUpdate <= now < nextUpdate", times)

        for t in listed:
            def is_listed(t=t):
                rc = crl.get_revoked_certificate_by_serial_number(t.cert.serial_number)
                if rc is None:
                    return [f"serial {t.cert.serial_number:X} not listed"]
                t.crl_revocation_date = rc.revocation_date_utc
                problems = []
                try:
                    got = rc.extensions.get_extension_for_class(x509.CRLReason).value.reason
                except x509.ExtensionNotFound:
                    got = None
                if got != t.reason:
                    problems.append(f"reason {got and got.value} != {t.reason.value}")
                if rc.revocation_date_utc > now_utc() + SKEW:
                    problems.append(f"revocation date {rc.revocation_date_utc} is in the future")
                return problems

            c.run(
                f"CRL {label}: {t.label} serial {t.cert.serial_number:X} listed with reason {t.reason.value}",
                is_listed,
            )
        for t in unlisted:
            c.run(
                f"CRL {label}: {t.label} serial {t.cert.serial_number:X} not listed",
                lambda t=t: (
                    ["listed"]
                    if crl.get_revoked_certificate_by_serial_number(t.cert.serial_number)
                    else []
                ),
            )

        etag = fetched["headers"].get("ETag")
        if etag:
            def conditional():
                status, _, body = http("GET", self.rebase(dp), headers={"If-None-Match": etag})
                if status == 304:
                    return [] if not body else ["304 with a body"]
                return [f"HTTP {status}, want 304"]

            c.run(f"CRL {label}: conditional GET with If-None-Match {etag} -> 304", conditional)

    # ------------------------------------------------------------------ AIA certificates

    def check_aia(self):
        jobs = [
            (self.issuing, "issuing CA", self.good, [self.issuing, self.root]),
            (self.root, "root CA", self.issuing, [self.root]),
        ]
        for ca, label, child, chain in jobs:
            self.check_cacerts(ca, label, child, chain)

    def check_cacerts(self, ca, label, child, chain):
        c = self.c
        urls = aia_urls(child, AuthorityInformationAccessOID.CA_ISSUERS)
        if len(urls) != 1 or not urls[0].endswith("/cert.cer"):
            c.result(f"AIA {label}: caIssuers URL ends in /cert.cer", [f"found {urls}"])
            return
        cer = urls[0]
        base = cer[: -len("cert.cer")]

        def get(url, want_type):
            status, headers, body = http("GET", self.rebase(url))
            if status != 200:
                raise RuntimeError(f"HTTP {status}")
            problems = []
            if content_type(headers) != want_type:
                problems.append(f"Content-Type {headers.get('Content-Type')!r}, want {want_type}")
            return body, problems

        def cert_cer():
            body, problems = get(cer, "application/pkix-cert")
            if body != der(ca):
                problems.append("body differs from the given certificate")
            return problems

        c.run(f"AIA {label}: GET {cer} returns the {label} certificate (DER)", cert_cer)

        def cert_pem():
            body, problems = get(base + "cert.pem", "application/x-pem-file")
            got = x509.load_pem_x509_certificates(body)
            if [der(x) for x in got] != [der(ca)]:
                problems.append(f"{len(got)} certificate(s), not exactly the given one")
            return problems

        c.run(f"AIA {label}: GET {base}cert.pem returns the {label} certificate (PEM)", cert_pem)

        def chain_p7c():
            body, problems = get(base + "chain.p7c", "application/pkcs7-mime")
            got = pkcs7.load_der_pkcs7_certificates(body)
            got_set = {der(x) for x in got}
            want = {der(x) for x in chain}
            if got_set != want or len(got) != len(chain):
                names = [name_of(x) for x in got]
                problems.append(f"holds {names}, want {[name_of(x) for x in chain]}")
            return problems

        c.run(
            f"AIA {label}: GET {base}chain.p7c holds exactly {' + '.join(name_of(x) for x in chain)}",
            chain_p7c,
        )

    # ------------------------------------------------------------------ OCSP

    def check_ocsp(self):
        for t in self.targets:
            urls = aia_urls(t.cert, AuthorityInformationAccessOID.OCSP)
            if len(urls) != 1:
                self.c.result(f"OCSP {t.label}: one AIA OCSP URL", [f"found {urls}"])
                continue
            url = self.rebase(urls[0])
            for alg in (hashes.SHA1(), hashes.SHA256()):
                for with_nonce in (False, True):
                    for method in ("POST", "GET"):
                        self.ocsp_one(t, url, alg, with_nonce, method)
        self.ocsp_negative()

    def build_request(self, cert, issuer, alg, with_nonce, want_b64_chars=False):
        """An OCSP request (DER) and its nonce; with want_b64_chars the nonce is chosen so
        that the base64 of the request holds '+' and '/', exercising the URL quoting."""
        for _ in range(200):
            b = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, alg)
            nonce = None
            if with_nonce:
                nonce = os.urandom(16)
                b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
            req = b.build()
            body = req.public_bytes(serialization.Encoding.DER)
            b64 = base64.b64encode(body).decode()
            if not (want_b64_chars and with_nonce) or ("+" in b64 and "/" in b64):
                return req, body, nonce
        return req, body, nonce

    def ocsp_one(self, t, url, alg, with_nonce, method):
        label = (
            f"OCSP {method} {alg.name} {'with' if with_nonce else 'without'} nonce, "
            f"{t.label}: {t.status.name}"
        )
        try:
            req, body, nonce = self.build_request(t.cert, t.issuer, alg, with_nonce, want_b64_chars=True)
            if method == "POST":
                status, headers, resp_body = http(
                    "POST",
                    url,
                    body=body,
                    headers={
                        "Content-Type": "application/ocsp-request",
                        "Accept": "application/ocsp-response",
                    },
                )
                get_url = None
            else:
                b64 = base64.b64encode(body).decode()
                get_url = url.rstrip("/") + "/" + urllib.parse.quote(b64, safe="")
                status, headers, resp_body = http("GET", get_url)
            if status != 200:
                self.c.result(label, [f"HTTP {status}: {resp_body[:200]!r}"])
                return
            problems = []
            if content_type(headers) != "application/ocsp-response":
                problems.append(f"Content-Type {headers.get('Content-Type')!r}")
            resp = ocsp.load_der_ocsp_response(resp_body)
            problems += self.ocsp_response_problems(resp, req, t, nonce)
            if method == "GET":
                problems += self.cache_problems(headers, resp, with_nonce, get_url)
        except Exception as e:  # noqa: BLE001
            problems = [f"{type(e).__name__}: {e}"]
        if not problems:
            label += (
                f" (certID {alg.name} echoed{', nonce echoed' if with_nonce else ''}, "
                f"signed by {t.issuer_label} key, responder byKey, no certs"
                f"{', cache headers + 304' if method == 'GET' and not with_nonce else ''})"
            )
        self.c.result(label, problems)

    def ocsp_response_problems(self, resp, req, t, nonce):
        if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return [f"responseStatus {resp.response_status.name}"]
        p = []
        singles = list(resp.responses)
        if len(singles) != 1:
            p.append(f"{len(singles)} SingleResponses, want 1")
        if resp.serial_number != t.cert.serial_number:
            p.append(f"serial {resp.serial_number:X} != {t.cert.serial_number:X}")
        if resp.hash_algorithm.name != req.hash_algorithm.name:
            p.append(f"certID hash {resp.hash_algorithm.name} != request's {req.hash_algorithm.name}")
        if resp.issuer_name_hash != req.issuer_name_hash:
            p.append("issuerNameHash differs from the request's")
        if resp.issuer_key_hash != req.issuer_key_hash:
            p.append("issuerKeyHash differs from the request's")
        if resp.certificate_status != t.status:
            p.append(f"status {resp.certificate_status.name}, want {t.status.name}")
        elif t.status == ocsp.OCSPCertStatus.REVOKED:
            if resp.revocation_time_utc is None:
                p.append("no revocationTime")
            elif t.crl_revocation_date and abs(resp.revocation_time_utc - t.crl_revocation_date) > ONE_SECOND:
                p.append(f"revocationTime {resp.revocation_time_utc} != CRL's {t.crl_revocation_date}")
            if resp.revocation_reason != t.reason:
                got = resp.revocation_reason.value if resp.revocation_reason else None
                p.append(f"revocationReason {got}, want {t.reason.value}")
        now = now_utc()
        if resp.this_update_utc is None or resp.this_update_utc > now + SKEW:
            p.append(f"thisUpdate {resp.this_update_utc} missing or in the future")
        if resp.next_update_utc is None:
            p.append("no nextUpdate")
        elif resp.next_update_utc <= now:
            p.append(f"nextUpdate {resp.next_update_utc} has passed")
        if resp.produced_at_utc is None:
            p.append("no producedAt")
        try:
            got_nonce = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            got_nonce = None
        if nonce is not None and got_nonce != nonce:
            p.append(f"nonce not echoed (got {got_nonce and got_nonce.hex()})")
        if nonce is None and got_nonce is not None:
            p.append("nonce in the response to a request without one")
        if resp.responder_name is not None:
            p.append(f"responder id byName {resp.responder_name.rfc4514_string()}, want byKey")
        elif resp.responder_key_hash != key_id(t.issuer):
            p.append(f"responder key hash {resp.responder_key_hash.hex()} != {t.issuer_label} key hash")
        if resp.certificates:
            p.append(f"{len(resp.certificates)} certificate(s) included, want none")
        try:
            verify_signature(
                t.issuer.public_key(),
                resp.signature,
                resp.tbs_response_bytes,
                resp.signature_hash_algorithm,
                resp.signature_algorithm_oid,
            )
        except InvalidSignature:
            p.append(f"signature does not verify with the {t.issuer_label} public key")
        return p

    def cache_problems(self, headers, resp, with_nonce, get_url):
        cc = cache_control(headers)
        if with_nonce:
            # A response echoing a nonce answers one request: a shared cache must not keep it.
            if resp.extensions and "public" in cc and "no-store" not in cc:
                cc_value = headers.get("Cache-Control")
                return [f"response echoing a nonce is publicly cacheable (Cache-Control {cc_value!r})"]
            return []
        p = []
        now = now_utc()
        for d in ("public", "no-transform", "must-revalidate"):
            if d not in cc:
                p.append(f"Cache-Control lacks {d} ({headers.get('Cache-Control')!r})")
        try:
            max_age = int(cc["max-age"])
            if max_age <= 0:
                p.append(f"max-age={max_age}")
            elif resp.next_update_utc and now + dt.timedelta(seconds=max_age) > resp.next_update_utc + SKEW:
                p.append(f"max-age={max_age} outlives nextUpdate {resp.next_update_utc} (RFC 5019 6.2)")
        except (KeyError, TypeError, ValueError):
            p.append(f"Cache-Control lacks max-age ({headers.get('Cache-Control')!r})")
        etag = headers.get("ETag")
        if not etag:
            p.append("no ETag")
        last_mod = http_date(headers.get("Last-Modified"))
        if last_mod is None:
            p.append(f"Last-Modified missing or unparseable ({headers.get('Last-Modified')!r})")
        elif last_mod > now + SKEW:
            p.append(f"Last-Modified {last_mod} is in the future")
        expires = http_date(headers.get("Expires"))
        if expires is None:
            p.append(f"Expires missing or unparseable ({headers.get('Expires')!r})")
        elif resp.next_update_utc and expires > resp.next_update_utc + ONE_SECOND:
            p.append(f"Expires {expires} after nextUpdate {resp.next_update_utc}")
        if etag:
            status, _, body = http("GET", get_url, headers={"If-None-Match": etag})
            if status != 304:
                p.append(f"conditional GET with If-None-Match {etag} -> HTTP {status}, want 304")
            elif body:
                p.append("304 with a body")
        return p

    def ocsp_negative(self):
        c = self.c
        urls = aia_urls(self.good, AuthorityInformationAccessOID.OCSP)
        if len(urls) != 1:
            return
        url = self.rebase(urls[0])
        hdrs = {"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"}
        req = ocsp.OCSPRequestBuilder().add_certificate(self.good, self.issuing, hashes.SHA1()).build()

        def post(body):
            status, _, resp_body = http("POST", url, body=body, headers=hdrs)
            if status != 200:
                return status, None
            return status, ocsp.load_der_ocsp_response(resp_body)

        def unknown_serial():
            serial = int.from_bytes(os.urandom(15), "big") | 1
            body = (
                ocsp.OCSPRequestBuilder()
                .add_certificate_by_hash(req.issuer_name_hash, req.issuer_key_hash, serial, hashes.SHA1())
                .build()
                .public_bytes(serialization.Encoding.DER)
            )
            status, resp = post(body)
            if resp is None:
                return [f"HTTP {status}"]
            if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
                return [f"responseStatus {resp.response_status.name}"]
            st = resp.certificate_status
            if st == ocsp.OCSPCertStatus.UNKNOWN:
                return []
            # RFC 6960 2.2: "revoked" with reason certificateHold and a revocationTime of
            # 1970-01-01 is the allowed answer for a serial that was never issued.
            if (
                st == ocsp.OCSPCertStatus.REVOKED
                and resp.revocation_reason == x509.ReasonFlags.certificate_hold
                and resp.revocation_time_utc.year == 1970
            ):
                return []
            return [f"status {st.name}"]

        c.run(
            "OCSP POST, never-issued serial of the issuing CA: UNKNOWN (or RFC 6960 2.2 revoked)",
            unknown_serial,
        )

        def unknown_issuer():
            body = (
                ocsp.OCSPRequestBuilder()
                .add_certificate_by_hash(os.urandom(20), os.urandom(20), 1, hashes.SHA1())
                .build()
                .public_bytes(serialization.Encoding.DER)
            )
            status, resp = post(body)
            if resp is None:
                return [f"HTTP {status}"]
            if resp.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED:
                return []
            if (
                resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
                and resp.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
            ):
                return []
            return [f"responseStatus {resp.response_status.name}"]

        c.run("OCSP POST, unknown issuer: unauthorized (or UNKNOWN)", unknown_issuer)

        def malformed():
            status, _, resp_body = http("POST", url, body=b"\x30\x03\x02\x01\x00", headers=hdrs)
            if 400 <= status < 500:
                return []
            if status != 200:
                return [f"HTTP {status}"]
            resp = ocsp.load_der_ocsp_response(resp_body)
            if resp.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST:
                return []
            return [f"responseStatus {resp.response_status.name}"]

        c.run("OCSP POST, garbage request: malformedRequest (or HTTP 4xx)", malformed)

        def raw_get():
            # Some clients put the base64 in the path without URL-quoting its '+', '/', '='.
            _, body, _ = self.build_request(self.good, self.issuing, hashes.SHA1(), True, want_b64_chars=True)
            b64 = base64.b64encode(body).decode()
            status, _, resp_body = http("GET", url.rstrip("/") + "/" + b64)
            if status != 200:
                return [f"HTTP {status}"]
            resp = ocsp.load_der_ocsp_response(resp_body)
            if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
                return [f"responseStatus {resp.response_status.name}"]
            if resp.certificate_status != ocsp.OCSPCertStatus.GOOD:
                return [f"status {resp.certificate_status.name}"]
            return []

        c.run("OCSP GET with unquoted base64 holding '+' and '/', good leaf: GOOD", raw_get)

    # ------------------------------------------------------------------ pyhanko-certvalidator

    def check_pyhanko(self):
        try:
            import aiohttp
            from asn1crypto import x509 as a_x509
            from pyhanko_certvalidator import CertificateValidator, ValidationContext
            from pyhanko_certvalidator import errors as pv_errors
            from pyhanko_certvalidator.fetchers import Fetchers
            from pyhanko_certvalidator.fetchers.aiohttp_fetchers.cert_fetch_client import (
                AIOHttpCertificateFetcher,
            )
            from pyhanko_certvalidator.fetchers.aiohttp_fetchers.crl_client import AIOHttpCRLFetcher
            from pyhanko_certvalidator.fetchers.aiohttp_fetchers.ocsp_client import AIOHttpOCSPFetcher
            from pyhanko_certvalidator.policy_decl import (
                CertRevTrustPolicy,
                RevocationCheckingPolicy,
                RevocationCheckingRule,
            )
        except ImportError as e:
            self.c.result("pyhanko-certvalidator importable", [str(e)])
            return

        # Its fetch errors are in the results already; keep them off stderr.
        logging.getLogger("pyhanko_certvalidator").addHandler(logging.NullHandler())

        def a(cert):
            return a_x509.Certificate.load(der(cert))

        root, issuing, good, revoked = (a(x) for x in (self.root, self.issuing, self.good, self.revoked))

        def policy(rule):
            return CertRevTrustPolicy(RevocationCheckingPolicy(rule, rule))

        R = RevocationCheckingRule
        # (label, ValidationContext kwargs, pass the intermediate?, OCSP certID hash, nonces,
        #  must fetch OCSP, must fetch CRL). The legacy modes try OCSP first and only fall back
        #  to the CRL when OCSP fails, so the *_REQUIRED policies are what prove each source.
        scenarios = [
            ("revocation_mode='hard-fail'", {"revocation_mode": "hard-fail"}, True, "sha1", True, True, False),
            (
                "revocation_mode='require', issuing CA fetched via AIA",
                {"revocation_mode": "require"},
                False, "sha1", True, True, False,
            ),
            ("OCSP only (OCSP_REQUIRED)", {"revinfo_policy": policy(R.OCSP_REQUIRED)}, True, "sha1", True, True, False),
            (
                "OCSP only, SHA-256 certID, no nonce",
                {"revinfo_policy": policy(R.OCSP_REQUIRED)},
                True, "sha256", False, True, False,
            ),
            ("CRL only (CRL_REQUIRED)", {"revinfo_policy": policy(R.CRL_REQUIRED)}, True, "sha1", True, False, True),
            (
                "CRL and OCSP (CRL_AND_OCSP_REQUIRED)",
                {"revinfo_policy": policy(R.CRL_AND_OCSP_REQUIRED)},
                True, "sha1", True, True, True,
            ),
        ]
        rebase = self.rebase
        want_reason = self.reason

        class RecordingSession:
            """Duck-typed aiohttp session for the fetchers: records (and rebases) URLs."""

            def __init__(self, session):
                self.session = session
                self.log = []

            def get(self, url, **kw):
                self.log.append(("GET", url))
                return self.session.get(url=rebase(url), **kw)

            def post(self, url, **kw):
                self.log.append(("POST", url))
                return self.session.post(url=rebase(url), **kw)

        async def validate(kwargs, with_interm, certid_hash, nonces, leaf):
            async with aiohttp.ClientSession() as http_session:
                session = RecordingSession(http_session)
                fetchers = Fetchers(
                    ocsp_fetcher=AIOHttpOCSPFetcher(
                        session, certid_hash_algo=certid_hash, request_nonces=nonces
                    ),
                    crl_fetcher=AIOHttpCRLFetcher(session),
                    cert_fetcher=AIOHttpCertificateFetcher(session),
                )
                vc = ValidationContext(trust_roots=[root], allow_fetching=True, fetchers=fetchers, **kwargs)
                validator = CertificateValidator(
                    leaf, intermediate_certs=[issuing] if with_interm else [], validation_context=vc
                )
                err = path = None
                try:
                    path = await validator.async_validate_usage({"digital_signature"})
                except Exception as e:  # noqa: BLE001
                    err = e
                return path, err, session.log, list(vc.soft_fail_exceptions)

        def fetch_problems(log, must_ocsp, must_crl, must_aia):
            p = []
            n_ocsp = sum(1 for m, u in log if m == "POST")
            n_crl = sum(1 for m, u in log if m == "GET" and u.endswith(".crl"))
            n_aia = sum(1 for m, u in log if m == "GET" and not u.endswith(".crl"))
            if must_aia and not n_aia:
                p.append("the issuing CA was not fetched from the leaf's caIssuers URL")
            if must_ocsp and not n_ocsp:
                p.append("no OCSP request was made")
            if not must_ocsp and n_ocsp and must_crl:
                p.append(f"{n_ocsp} OCSP request(s) under a CRL-only policy")
            if must_crl and not n_crl:
                p.append("no CRL was fetched")
            return p, f"{n_ocsp} OCSP POST(s), {n_crl} CRL GET(s), {n_aia} caIssuers GET(s)"

        async def run_all():
            out = []
            for label, kwargs, with_interm, certid_hash, nonces, must_ocsp, must_crl in scenarios:
                for which, leaf in (("good", good), ("revoked", revoked)):
                    res = await validate(kwargs, with_interm, certid_hash, nonces, leaf)
                    out.append((label, which, must_ocsp, must_crl, not with_interm, res))
            return out

        try:
            results = asyncio.run(run_all())
        except Exception as e:  # noqa: BLE001
            self.c.result("pyhanko-certvalidator ran", [f"{type(e).__name__}: {e}"])
            return

        for label, which, must_ocsp, must_crl, must_aia, (path, err, log, soft) in results:
            fetch_p, counts = fetch_problems(log, must_ocsp, must_crl, must_aia)
            # Fetch counts matter only once the outcome is right: a validation that stopped
            # early fetched less, and saying so would only bury the real error.
            p = []
            if soft:
                p.append("soft failures: " + " | ".join(f"{type(s).__name__}: {s}" for s in soft))
            if which == "good":
                if err is not None:
                    p.insert(0, f"validation failed: {type(err).__name__}: {err}")
                elif len(path) != 3:
                    p.append(f"path of {len(path)} certificates, want 3")
                self.c.result(f"pyhanko {label}: good leaf validates ({counts})", p or fetch_p)
            else:
                if err is None:
                    p.insert(0, "validation succeeded, want a revocation error")
                elif not isinstance(err, pv_errors.RevokedError):
                    p.insert(0, f"{type(err).__name__}, want RevokedError: {err}")
                elif err.reason.native != want_reason.name:
                    # asn1crypto's CRLReason names are cryptography's ReasonFlags names
                    p.append(f"reason {err.reason.native}, want {want_reason.name}")
                p = p or fetch_p
                shown = f": {err}" if isinstance(err, pv_errors.RevokedError) and not p else ""
                self.c.result(
                    f"pyhanko {label}: revoked leaf rejected with RevokedError ({counts}){shown}", p
                )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--issuing", required=True)
    ap.add_argument("--good", required=True)
    ap.add_argument("--revoked", required=True)
    ap.add_argument("--url", help="server base URL: replaces scheme and host:port of the certificates' URLs")
    ap.add_argument("--reason", default="keyCompromise", help="the revoked leaf's reason (default keyCompromise)")
    args = ap.parse_args()
    try:
        x509.ReasonFlags(args.reason)
    except ValueError:
        ap.error(f"unknown --reason {args.reason!r}; one of {[r.value for r in x509.ReasonFlags]}")
    certs = {}
    for k in ("root", "issuing", "good", "revoked"):
        try:
            certs[k] = load_cert(getattr(args, k))
        except (OSError, ValueError) as e:
            print(f"check_responder: cannot read --{k} {getattr(args, k)}: {e}", file=sys.stderr)
            return 2

    ch = Checker(args, certs)
    ch.check_inputs()
    ch.check_crls()  # before OCSP: the CRL's revocation date is compared with OCSP's
    ch.check_aia()
    ch.check_ocsp()
    ch.check_pyhanko()
    print(f"check_responder: {ch.c.passed} passed, {ch.c.failed} failed")
    return 1 if ch.c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
