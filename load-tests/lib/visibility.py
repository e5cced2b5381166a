#!/usr/bin/env python3
"""Any-writer visibility: how long after `cloudpki cert revoke` (another
process, same SQLite store) returns does the running server answer `revoked`?

    visibility.py BIN DATA_DIR BASE_URL ISSUER_PEM LEAVES_JSON COUNT RATE

Revokes COUNT leaves through the CLI at up to RATE per second (one CLI run at a
time), and after each CLI exit polls POST /ocsp on one keep-alive connection
every 0.2 ms until the answer says revoked. Prints one JSON line: the delays
(CLI exit -> first revoked answer) p50/p90/p99/max in ms, and the CLI run times.
"""
import hashlib
import http.client
import json
import subprocess
import sys
import time
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, round((len(s) - 1) * p))] if s else None


def main():
    bin_, data, base, issuer_pem, leaves_json, count, rate = sys.argv[1:8]
    count, rate = int(count), float(rate)
    issuer = x509.load_pem_x509_certificate(open(issuer_pem, "rb").read())
    name_hash = hashlib.sha1(issuer.subject.public_bytes()).digest()
    spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # The key hash is over the BIT STRING's contents: the uncompressed point
    # ends the SPKI for EC keys.
    point = issuer.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert spki.endswith(point)
    key_hash = hashlib.sha1(point).digest()
    leaves = [l for l in json.load(open(leaves_json)) if l.get("certificateStatus", "active") == "active"][:count]
    u = urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port)

    def status(serial_hex):
        req = (
            ocsp.OCSPRequestBuilder()
            .add_certificate_by_hash(name_hash, key_hash, int(serial_hex, 16), hashes.SHA1())
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        conn.request("POST", "/ocsp", body=req, headers={"Content-Type": "application/ocsp-request"})
        r = conn.getresponse()
        body = r.read()
        return ocsp.load_der_ocsp_response(body).certificate_status

    delays, cli_runs, failed = [], [], 0
    for leaf in leaves:
        assert status(leaf["serialNumber"]) == ocsp.OCSPCertStatus.GOOD
        started = time.monotonic()
        p = subprocess.run(
            [bin_, "--data-dir", data, "cert", "revoke", leaf["id"], "--reason", "keyCompromise"],
            capture_output=True,
        )
        acked = time.monotonic()
        cli_runs.append((acked - started) * 1000)
        if p.returncode != 0:
            failed += 1
            continue
        deadline = acked + 10
        while status(leaf["serialNumber"]) != ocsp.OCSPCertStatus.REVOKED:
            if time.monotonic() > deadline:
                failed += 1
                break
            time.sleep(0.0002)
        else:
            delays.append((time.monotonic() - acked) * 1000)
        pause = 1 / rate - (time.monotonic() - started)
        if pause > 0:
            time.sleep(pause)
    r2 = lambda x: None if x is None else round(x, 2)
    print(
        json.dumps(
            {
                "revocations": len(leaves),
                "visible": len(delays),
                "failed": failed,
                "p50_ms": r2(pct(delays, 0.5)),
                "p90_ms": r2(pct(delays, 0.9)),
                "p99_ms": r2(pct(delays, 0.99)),
                "max_ms": r2(max(delays) if delays else None),
                "cli_p50_ms": r2(pct(cli_runs, 0.5)),
                "cli_p99_ms": r2(pct(cli_runs, 0.99)),
            }
        )
    )


if __name__ == "__main__":
    main()
