"""revoke_loop.py BASE TOKEN CA_ID IDS_FILE LOG [PER_SECOND]

One leaf revoked a second (PER_SECOND: another rate) through the management API (`revokeLeafCertificate`,
bearer TOKEN; Graph's action takes no reason), as an administrator would, until the ids run
out or the process is killed. One keep-alive connection, opened again after any
failure. Appends a line per revocation to LOG: `ok MS` (time to the 200) or
`failed WHAT`.

The soak used to revoke with the CLI; a CLI process spends ~60 ms of CPU
seeding aws-lc's jitter entropy source before it signs, taken from the load
generator's core. Through the API the server signs, on its own core, which is
also the costlier case for the server.
"""
import http.client
import json
import sys
import time
import urllib.parse


def main():
    base, token, ca, ids_file, log = sys.argv[1:6]
    step = 1.0 / float(sys.argv[6]) if len(sys.argv) > 6 else 1.0
    u = urllib.parse.urlsplit(base)
    ids = [l.strip() for l in open(ids_file) if l.strip()]
    path = f"/beta/deviceManagement/cloudCertificationAuthority/{ca}/revokeLeafCertificate"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn = None
    with open(log, "a", buffering=1) as out:
        next_at = time.monotonic()
        for leaf in ids:
            next_at += step
            body = json.dumps({"leafCertificateId": leaf})
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
                conn.request("POST", path, body, headers)
                r = conn.getresponse()
                answer = r.read()
                if r.status == 200:
                    out.write(f"ok {1000 * (time.monotonic() - t0):.1f}\n")
                else:
                    out.write(f"failed {r.status} {answer[:200]!r}\n")
            except (OSError, http.client.HTTPException) as e:
                out.write(f"failed {type(e).__name__}: {e}\n")
                conn = None
            time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()
