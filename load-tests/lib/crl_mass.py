#!/usr/bin/env python3
"""crl_mass.py: measurements for load-tests/crl-mass-revocation.sh (partitioned CRLs at scale).

  crl_mass.py fresh BASE TOKEN CA N OUT.json
      Revokes N active leaves of CA one at a time through the API. For each, the leaf's own
      partition CRL (its crlDistributionPointUrl) is polled with If-None-Match until the served
      CRL lists the serial. Times from the moment the revocation request was sent and from the
      moment its answer (the commit, fsync'd) arrived.
  crl_mass.py entries BASE CA
      Prints the sum of cloudpki_crl_entries over the CA's complete CRLs (every partition).
  crl_mass.py probe BASE GETLIST CRLURLS STOPFILE OUT.json
      Until STOPFILE exists: OCSP GETs (cycling through GETLIST) and CRL GETs (cycling through
      the comma-separated CRLURLS), each latency recorded with its time, about 50 requests/s.
"""
import http.client
import json
import re
import sys
import time
import urllib.parse


def conn(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def request(c, method, path, body=None, headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round((len(s) - 1) * p)))]


def summary(ms):
    return {"n": len(ms), "p50_ms": pct(ms, 0.5), "p99_ms": pct(ms, 0.99), "max_ms": max(ms) if ms else None}


def fresh(base, token, ca, n, out):
    api = conn(base)
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    q = urllib.parse.quote("certificateStatus eq 'active'")
    status, _, body = request(
        api, "GET", f"/beta/deviceManagement/cloudCertificationAuthority/{ca}/cloudCertificationAuthorityLeafCertificate?$top={n}&$filter={q}",
        headers=auth)
    assert status == 200, (status, body[:300])
    leaves = json.loads(body)["value"][:n]
    crl = conn(base)
    from_send, from_ack = [], []
    for leaf in leaves:
        path = urllib.parse.urlsplit(leaf["crlDistributionPointUrl"]).path
        s, h, b = request(crl, "GET", path)
        assert s == 200, (s, path)
        etag = h.get("ETag") or h.get("etag")
        serial = bytes.fromhex(leaf["serialNumber"])
        sent = time.perf_counter()
        s, _, b = request(api, "POST", f"/beta/deviceManagement/cloudCertificationAuthority/{ca}/revokeLeafCertificate",
                          json.dumps({"leafCertificateId": leaf["id"]}).encode(), auth)
        acked = time.perf_counter()
        assert s == 200, (s, b[:300])
        while True:
            s, h, b = request(crl, "GET", path, headers={"If-None-Match": etag})
            if s == 200:
                etag = h.get("ETag") or h.get("etag")
                # The serial as a DER INTEGER inside the CRL (a 16-byte serial with its top bit clear).
                if b"\x02" + bytes([len(serial)]) + serial in b:
                    break
            if time.perf_counter() - sent > 10:
                raise SystemExit(f"{leaf['serialNumber']} not on {path} after 10 s")
        seen = time.perf_counter()
        from_send.append((seen - sent) * 1000)
        from_ack.append((seen - acked) * 1000)
        time.sleep(0.02)  # stay under the API's per-principal rate limit
    res = {"from_request_sent": summary(from_send), "from_commit_acknowledged": summary(from_ack)}
    json.dump(res, open(out, "w"), indent=1)
    print(json.dumps(res))


def entries(base, ca):
    c = conn(base)
    s, _, b = request(c, "GET", "/metrics")
    total = 0
    for m in re.finditer(rb'cloudpki_crl_entries\{ca="([^"]+)",partition="(\d+)"\} (\d+)', b):
        if m.group(1).decode() == ca:
            total += int(m.group(3))
    print(total)


def probe(base, getlist, crlurls, stopfile, out):
    import os
    gets = [l.strip() for l in open(getlist) if l.strip()]
    crls = [urllib.parse.urlsplit(u).path for u in crlurls.split(",") if u]
    c = conn(base)
    ocsp, crl, errors = [], [], 0
    i = 0
    while not os.path.exists(stopfile):
        t = time.perf_counter()
        try:
            s, _, _ = request(c, "GET", "/ocsp/" + gets[i % len(gets)])
            ocsp.append((time.time(), (time.perf_counter() - t) * 1000, s))
            t = time.perf_counter()
            s, _, _ = request(c, "GET", crls[i % len(crls)])
            crl.append((time.time(), (time.perf_counter() - t) * 1000, s))
        except Exception:
            errors += 1
            c = conn(base)
        i += 1
        time.sleep(0.02)
    bad = sum(1 for _, _, s in ocsp + crl if s != 200)
    res = {
        "ocsp_get": summary([ms for _, ms, _ in ocsp]),
        "crl_get": summary([ms for _, ms, _ in crl]),
        "non_200": bad,
        "errors": errors,
    }
    json.dump(res, open(out, "w"), indent=1)
    print(json.dumps(res))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "fresh":
        fresh(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    elif cmd == "entries":
        entries(sys.argv[2], sys.argv[3])
    elif cmd == "probe":
        probe(*sys.argv[2:7])
    else:
        raise SystemExit(__doc__)
