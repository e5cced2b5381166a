#!/usr/bin/env python3
"""Verification half of scripts/crash-campaign.sh (see there).

    crash-verify.py leaves LIST.json              id<TAB>serial per leaf of a
                                                  `cloudpki --json cert list`
    crash-verify.py verify [options]              one trial, after the restart

`verify` prints one line on stdout,
    checked lost half integrity regressions disagreements
and every finding, one per line, on stderr (the trial's log).

What it checks, against the restarted `serve` and the store:
  lost         an acknowledged change the store does not hold (CLI view:
               `cloudpki --json cert list`)
  half         a leaf whose row disagrees with itself: revoked_at without a
               reason or the reverse, a pre-signed OCSP answer whose status is
               not the row's, a missing pre-signed answer, a revocation without
               exactly one leafRevoked change, an issued leaf without its
               leafIssued change
  integrity    SQLite `PRAGMA integrity_check` not ok (given by the caller), or
               the store cannot be read after the restart
  regressions  a CA whose CRL served after the restart has a number not greater
               than the highest number the poller saw before the kill
  disagreements the served CRLs (every partition and delta) and the store
               disagree on any leaf of the CAs;
               the responder's OCSP answer (SHA-1 CertID, signature checked)
               for any leaf of the CA the operation touched is not the store's
               status; `openssl ocsp` on a sample of revoked and good leaves
               answers other than the store or does not verify
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cli(args, base):
    out = subprocess.run(base + ["--json"] + args, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"cloudpki {' '.join(args)}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def norm(serial):
    return format(int(serial, 16), "X")


def cmd_leaves(path):
    for leaf in json.load(open(path))["value"]:
        print(f"{leaf['id']}\t{leaf['serialNumber']}")


# ---------------------------------------------------------------- store rows
def rows_sqlite(db):
    # Read-only URI: the restarted server owns the file; WAL readers never block it.
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    leaves = con.execute(
        "SELECT id, ca_id, serial, revoked_at, revocation_reason, ocsp_sha1, ocsp_sha256 FROM leaves"
    ).fetchall()
    changes = con.execute(
        "SELECT kind, leaf_id, count(*) FROM changes WHERE leaf_id IS NOT NULL GROUP BY kind, leaf_id"
    ).fetchall()
    con.close()
    return leaves, changes


def psql(url, sql):
    out = subprocess.run(
        ["psql", "-X", "-q", "-At", "-F", "\t", "-d", url, "-c", sql],
        capture_output=True, text=True, timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"psql: {out.stderr.strip()}")
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def rows_postgres(url):
    def n(v):
        return None if v == "" else v

    leaves = [
        (i, ca, s, n(at), n(r), bytes.fromhex(o1) if o1 else None, bytes.fromhex(o2) if o2 else None)
        for i, ca, s, at, r, o1, o2 in psql(
            url,
            "SELECT id, ca_id, serial, coalesce(revoked_at::text, ''), coalesce(revocation_reason::text, ''),"
            " coalesce(encode(ocsp_sha1, 'hex'), ''), coalesce(encode(ocsp_sha256, 'hex'), '') FROM leaves",
        )
    ]
    changes = [
        (k, lid, int(c))
        for k, lid, c in psql(
            url, "SELECT kind, leaf_id, count(*) FROM changes WHERE leaf_id IS NOT NULL GROUP BY kind, leaf_id"
        )
    ]
    return leaves, changes


def presigned_status(der):
    try:
        r = ocsp.load_der_ocsp_response(der)
        return {ocsp.OCSPCertStatus.GOOD: "good", ocsp.OCSPCertStatus.REVOKED: "revoked"}.get(
            r.certificate_status, "other"
        )
    except Exception as e:  # noqa: BLE001 - any undecodable answer is a finding
        return f"undecodable ({e})"


# ---------------------------------------------------------------- responder
def fetch(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


CRL_RECORD = None  # the poller's log: CRLs seen here count as seen before a later kill


def served_crl(serve, ca):
    """Every CRL of a CA as served (current.crl and each partition in its
    partitions.json, with their deltas): the highest CRL number (a CA's CRLs
    share one sequence) and the union of the listed serials."""
    urls = json.loads(fetch(f"{serve}/crls/{ca}_v1/partitions.json"))
    number, serials = -1, set()
    for url in urls:
        path = url[url.index("/crls/"):]
        for p in (path, path.replace(".crl", "-delta.crl")):
            try:
                der = fetch(f"{serve}{p}")
            except urllib.error.HTTPError as e:
                if e.code == 404 and p.endswith("-delta.crl"):
                    continue  # the CA publishes no deltas
                raise
            crl = x509.load_der_x509_crl(der)
            number = max(number, crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
            serials |= {format(r.serial_number, "X") for r in crl}
    if CRL_RECORD:
        with open(CRL_RECORD, "a") as f:
            f.write(f"{ca} crlNumber=0x{number:X} verify\n")
    return number, serials


def poller_max(path):
    """Highest CRL number per CA the poller saw (lines: CA crlNumber=HEX SHA)."""
    best = {}
    if not os.path.exists(path):
        return best
    for line in open(path, errors="replace"):
        parts = line.split()
        if len(parts) != 3 or not parts[1].startswith("crlNumber="):
            continue
        v = parts[1].split("=", 1)[1]
        try:
            n = int(v, 16)  # openssl prints the CRL number in hex
        except ValueError:
            continue
        best[parts[0]] = max(best.get(parts[0], -1), n)
    return best


def openssl_ocsp(serve, issuer_pem, root_pem, serial):
    out = subprocess.run(
        ["openssl", "ocsp", "-issuer", issuer_pem, "-serial", "0x" + serial, "-url", f"{serve}/ocsp",
         "-CAfile", root_pem, "-no_nonce", "-timeout", "5"],
        capture_output=True, text=True, timeout=20,
    )
    text = out.stdout + out.stderr
    status = "none"
    for line in out.stdout.splitlines():
        if line.startswith("0x") and ":" in line:
            status = line.split(":", 1)[1].strip()
    verified = "Response verify OK" in text
    return status, verified, text.strip().replace("\n", " | ")


class OcspClient:
    """POST /ocsp over one keep-alive connection, SHA-1 CertIDs (the hot path)."""

    def __init__(self, serve, issuer_pem):
        self.host = serve.split("://", 1)[1]
        self.conn = None
        self.issuer = x509.load_pem_x509_certificate(open(issuer_pem, "rb").read())
        pub = self.issuer.public_key()
        if isinstance(pub, ec.EllipticCurvePublicKey):
            key_bits = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        else:
            key_bits = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        self.key_hash = hashlib.sha1(key_bits).digest()
        self.name_hash = hashlib.sha1(self.issuer.subject.public_bytes()).digest()

    def post(self, body):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, timeout=10)
                self.conn.request("POST", "/ocsp", body, {"Content-Type": "application/ocsp-request"})
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError

    def status(self, serial):
        """good / revoked / unknown, or a description of what is wrong."""
        req = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            self.name_hash, self.key_hash, int(serial, 16), hashes.SHA1()).build()
        code, body = self.post(req.public_bytes(serialization.Encoding.DER))
        if code != 200:
            return f"HTTP {code}"
        r = ocsp.load_der_ocsp_response(body)
        if r.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return f"responseStatus {r.response_status.name}"
        if r.serial_number != int(serial, 16):
            return f"answer for serial {r.serial_number:X}"
        if not r.certificates:  # signed by the CA itself (ocsp_signer = "ca")
            pub = self.issuer.public_key()
            try:
                if isinstance(pub, ec.EllipticCurvePublicKey):
                    pub.verify(r.signature, r.tbs_response_bytes, ec.ECDSA(r.signature_hash_algorithm))
                elif isinstance(pub, rsa.RSAPublicKey):
                    pub.verify(r.signature, r.tbs_response_bytes, padding.PKCS1v15(), r.signature_hash_algorithm)
            except Exception:  # noqa: BLE001
                return "bad signature"
        return r.certificate_status.name.lower()


# ---------------------------------------------------------------- acknowledged
def acked_revoked_serials(path):
    """revoke-all --json: {"acknowledged": [serials]} per committed batch."""
    out = set()
    if path and os.path.exists(path):
        for line in open(path, errors="replace"):
            try:
                v = json.loads(line)
            except ValueError:
                continue  # a line cut by the kill was never acknowledged
            if isinstance(v, dict):
                out.update(norm(s) for s in v.get("acknowledged", []))
    return out


def acked_ids(path):
    return {line.strip() for line in open(path)} if path and os.path.exists(path) else set()


def acked_storm(path):
    """curl -w '%{http_code} %{filename_effective}': 200 and a revoked body."""
    out = set()
    if path and os.path.exists(path):
        for line in open(path, errors="replace"):
            parts = line.split()
            if len(parts) == 2 and parts[0] == "200" and os.path.exists(parts[1]):
                try:
                    v = json.load(open(parts[1]))
                except ValueError:
                    continue
                if v.get("value", {}).get("certificateStatus") == "revoked":
                    out.add(os.path.basename(parts[1]))
    return out


def acked_issued(path):
    """Lines naming JSON bodies of successful issuances (API 201 or CLI exit 0)."""
    out = {}
    if path and os.path.exists(path):
        for line in open(path, errors="replace"):
            f = line.strip()
            if not f or not os.path.exists(f):
                continue
            try:
                v = json.load(open(f))
            except ValueError:
                continue
            v = v.get("value", v)
            if "id" in v and "serialNumber" in v:
                out[v["id"]] = norm(v["serialNumber"])
    return out


# ---------------------------------------------------------------- verify
def cmd_verify(a):
    rng = random.Random(a.seed)
    base = [a.bin] + a.global_args.split()
    cas = dict(x.split("=", 1) for x in a.ca)  # id=pem
    checked = lost = half = integrity = regressions = disagreements = 0
    if a.integrity != "ok":
        integrity += 1
        log(f"INTEGRITY: {a.integrity}")

    # CRL numbers first: the very first CRLs served after the restart. Live
    # (the server was not killed): they may not go down.
    global CRL_RECORD
    seen = poller_max(a.crl_log)
    CRL_RECORD = a.crl_log

    def regress(n, before):
        return n < before if a.live else n <= before

    after = {}
    for ca in cas:
        try:
            after[ca] = served_crl(a.serve, ca)
        except Exception as e:  # noqa: BLE001
            disagreements += 1
            log(f"DISAGREE: no CRL served for {ca} after restart: {e}")
    regressed = set()
    for ca, (n, _) in after.items():
        if ca in seen and regress(n, seen[ca]):
            regressed.add(ca)
            log(f"CRL REGRESSION: {ca} served #{n} after restart, poller saw #{seen[ca]} before the kill")
    log(f"crl numbers: before the kill {seen}, now { {c: v[0] for c, v in after.items()} }")

    # The store through the CLI.
    try:
        listed = {}
        for ca in cas:
            for leaf in cli(["cert", "list", "--ca", ca], base)["value"]:
                listed[leaf["id"]] = leaf
    except Exception as e:  # noqa: BLE001
        integrity += 1
        log(f"INTEGRITY: the store cannot be listed after the restart: {e}")
        print(checked, lost, half, integrity, len(regressed), disagreements)
        return
    by_serial = {(l["issuerId"], norm(l["serialNumber"])): l for l in listed.values()}

    # Acknowledged changes.
    acked_rev_serials = acked_revoked_serials(a.acked_revoke_all)
    acked_rev_ids = acked_ids(a.acked_revoked_ids) | acked_storm(a.acked_storm)
    acked_new = acked_issued(a.acked_issued)
    for s in sorted(acked_rev_serials):
        checked += 1
        l = by_serial.get((a.target_ca, s))
        if l is None or l["certificateStatus"] != "revoked":
            lost += 1
            log(f"LOST: acknowledged revocation of serial {s} is {l and l['certificateStatus']}")
    for i in sorted(acked_rev_ids):
        checked += 1
        l = listed.get(i)
        if l is None or l["certificateStatus"] != "revoked":
            lost += 1
            log(f"LOST: acknowledged revocation of leaf {i} is {l and l['certificateStatus']}")
    for i, s in sorted(acked_new.items()):
        checked += 1
        l = listed.get(i)
        if l is None or norm(l["serialNumber"]) != s or l["certificateStatus"] != "active":
            lost += 1
            log(f"LOST: acknowledged issuance {i} ({s}) is {l and l['certificateStatus']}")

    # Rows against themselves.
    try:
        leaves, changes = rows_postgres(a.pg_url) if a.pg_url else rows_sqlite(a.sqlite_db)
    except Exception as e:  # noqa: BLE001
        integrity += 1
        log(f"INTEGRITY: cannot read the store's rows: {e}")
        leaves, changes = [], []
    logged = {}
    for kind, lid, c in changes:
        logged[(kind, lid)] = c
    row_revoked = {}
    for lid, ca, serial, at, reason, o1, o2 in leaves:
        if ca not in cas:
            continue
        revoked = at is not None
        row_revoked[lid] = revoked
        problems = []
        if revoked != (reason is not None):
            problems.append(f"revoked_at={at} but reason={reason}")
        # A leaf's SHA-256 CertID answer is signed on demand (rows from
        # before that may still hold one): only SHA-1 must be pre-signed.
        for name, der in (("sha1", o1), ("sha256", o2)):
            if not der and name == "sha256":
                continue
            if not der:
                problems.append(f"no pre-signed {name} answer")
            else:
                st = presigned_status(der)
                if st != ("revoked" if revoked else "good"):
                    problems.append(f"pre-signed {name} answer {st}, row {'revoked' if revoked else 'good'}")
        if revoked and logged.get(("leafRevoked", lid), 0) != 1:
            problems.append(f"{logged.get(('leafRevoked', lid), 0)} leafRevoked changes")
        if logged.get(("leafIssued", lid), 0) != 1:
            problems.append(f"{logged.get(('leafIssued', lid), 0)} leafIssued changes")
        cli_view = listed.get(lid)
        if cli_view is None or (cli_view["certificateStatus"] == "revoked") != revoked:
            problems.append(f"CLI says {cli_view and cli_view['certificateStatus']}")
        if problems:
            half += 1
            log(f"HALF-APPLIED: leaf {lid} ({serial}): {'; '.join(problems)}")

    # Served CRLs against the store, every leaf of every CA checked.
    deadline = time.monotonic() + a.settle
    while True:
        bad = []
        for ca in cas:
            try:
                _, on_crl = served_crl(a.serve, ca)
            except Exception as e:  # noqa: BLE001
                bad.append(f"CRL of {ca} unavailable: {e}")
                continue
            store_rev = {norm(l["serialNumber"]) for l in listed.values()
                         if l["issuerId"] == ca and l["certificateStatus"] == "revoked"}
            store_all = {norm(l["serialNumber"]) for l in listed.values() if l["issuerId"] == ca}
            for s in sorted(store_rev - on_crl):
                bad.append(f"{ca}: serial {s} revoked in the store, not on the CRL")
            for s in sorted((on_crl & store_all) - store_rev):
                bad.append(f"{ca}: serial {s} on the CRL, good in the store")
        if not bad or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for b in bad[:20]:
        log(f"DISAGREE: {b}")
    disagreements += len(bad)

    # Every leaf of the touched CA through the responder (Python client).
    client = OcspClient(a.serve, cas[a.target_ca])
    wrong = []
    n_ocsp = 0
    for l in listed.values():
        if l["issuerId"] != a.target_ca:
            continue
        want = "revoked" if l["certificateStatus"] == "revoked" else "good"
        n_ocsp += 1
        try:
            got = client.status(l["serialNumber"])
        except Exception as e:  # noqa: BLE001
            got = f"no answer ({e})"
        if got != want:
            wrong.append(f"OCSP {l['serialNumber']} ({l['id']}): {got}, store {want}")
    for w in wrong[:20]:
        log(f"DISAGREE: {w}")
    disagreements += len(wrong)
    log(f"OCSP (every leaf of {a.target_ca}): {n_ocsp} leaves, {len(wrong)} wrong")

    # A sample through openssl ocsp: acknowledged, revoked-but-unacknowledged,
    # targeted-but-still-good, and untouched leaves.
    targets = acked_ids(a.targets) if a.targets else set()
    acked_all = {l["id"] for l in listed.values() if (l["issuerId"], norm(l["serialNumber"])) in
                 {(a.target_ca, s) for s in acked_rev_serials}} | acked_rev_ids | set(acked_new)
    ca_leaves = [l for l in listed.values() if l["issuerId"] == a.target_ca]
    groups = [
        [l for l in ca_leaves if l["id"] in acked_all],
        [l for l in ca_leaves if l["certificateStatus"] == "revoked" and l["id"] not in acked_all],
        [l for l in ca_leaves if l["certificateStatus"] == "active" and (l["id"] in targets or not targets)],
        [l for l in ca_leaves if l["certificateStatus"] == "active" and l["id"] not in targets],
    ]
    if acked_new or a.newest:
        # Issuance: the newest leaves, acknowledged or not, must answer good.
        groups.append(ca_leaves[-a.newest:])
    sample = {}
    for g in groups:
        for l in rng.sample(g, min(len(g), a.sample)):
            sample[l["id"]] = l
    for l in sample.values():
        want = "revoked" if l["certificateStatus"] == "revoked" else "good"
        status, verified, text = openssl_ocsp(a.serve, cas[l["issuerId"]], a.root_pem, l["serialNumber"])
        if status != want or not verified:
            disagreements += 1
            log(f"DISAGREE: openssl ocsp {l['serialNumber']} ({l['id']}): {status}, store {want},"
                f" verified={verified}: {text[:300]}")
    log(f"openssl ocsp sample: {len(sample)} leaves")

    # The CRLs once more: still above what was seen before the kill.
    for ca in cas:
        try:
            n, _ = served_crl(a.serve, ca)
        except Exception:  # noqa: BLE001 - reported above
            continue
        if ca in seen and regress(n, seen[ca]):
            regressed.add(ca)
            log(f"CRL REGRESSION: {ca} later served #{n}, poller saw #{seen[ca]} before the kill")
    regressions = len(regressed)
    print(checked, lost, half, integrity, regressions, disagreements)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("leaves")
    q.add_argument("list")
    v = sub.add_parser("verify")
    v.add_argument("--bin", required=True)
    v.add_argument("--global-args", required=True, help="cloudpki global flags (store, KEK)")
    v.add_argument("--serve", required=True, help="base URL of the restarted server")
    v.add_argument("--ca", action="append", required=True, help="CA_ID=ISSUER_PEM (repeatable)")
    v.add_argument("--root-pem", required=True)
    v.add_argument("--target-ca", required=True, help="the CA whose leaves the operation touched")
    v.add_argument("--sqlite-db")
    v.add_argument("--pg-url")
    v.add_argument("--integrity", default="ok")
    v.add_argument("--crl-log", required=True)
    v.add_argument("--acked-revoke-all")
    v.add_argument("--acked-revoked-ids")
    v.add_argument("--acked-storm")
    v.add_argument("--acked-issued")
    v.add_argument("--targets", help="ids of the leaves the operation meant to change")
    v.add_argument("--newest", type=int, default=0)
    v.add_argument("--sample", type=int, default=5)
    v.add_argument("--settle", type=float, default=3.0)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--live", action="store_true",
                   help="only the operation was killed; serve kept running (CRL numbers must not go down)")
    a = p.parse_args()
    if a.cmd == "leaves":
        cmd_leaves(a.list)
    else:
        cmd_verify(a)


if __name__ == "__main__":
    main()
