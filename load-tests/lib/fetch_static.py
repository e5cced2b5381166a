#!/usr/bin/env python3
"""fetch_static.py BASE_URL FIXDIR OUTDIR

Fetches from a running cloudpki the bytes every scenario asks for and lays them out as a static
tree for nginx, so that nginx serves exactly the same bytes (the "static ceiling" baseline):
  OUTDIR/ocsp/<base64>          one file per GET request. nginx percent-decodes the URI before
                                mapping it to a file, so /ocsp/MFQw...%2Fab%3D is looked up as
                                ocsp/MFQw.../ab= : '/' inside the base64 becomes a sub-directory.
  OUTDIR/ocsp-post.der          one canned answer for every POST (nginx cannot choose by body;
                                same as the peers' nginx setup)
  OUTDIR/crls/<id>_v1/current.crl, OUTDIR/cacerts/<id>_v1/cert.cer   root and issuing CA
  OUTDIR/expect/NNNN.der        the answer to request NNNN (k6 compares bodies against these)
  OUTDIR/crl.list, aia.list     URL paths of the CRLs / CA certificates (for crl.js, aia.js)
Exits non-zero if any fetch is not HTTP 200, or if GET and POST answers differ for a request.
"""
import http.client, os, sys, urllib.parse


def main():
    base, fix, out = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)

    def fetch(method, path, body=None):
        headers = {"Content-Type": "application/ocsp-request"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise SystemExit(f"{method} {path[:80]}: HTTP {r.status} {data[:200]!r}")
        return data

    ids = dict(l.strip().split("=", 1) for l in open(f"{fix}/ids.env") if "=" in l)
    os.makedirs(f"{out}/expect", exist_ok=True)
    suffixes = open(f"{fix}/reqs/get.txt").read().split()
    posts = open(f"{fix}/reqs/post.list").read().split()
    mismatch = 0
    for n, (suffix, post) in enumerate(zip(suffixes, posts)):
        body = fetch("GET", f"/ocsp/{suffix}")
        if fetch("POST", "/ocsp", open(post, "rb").read()) != body:
            mismatch += 1
        dest = os.path.join(out, "ocsp", urllib.parse.unquote(suffix))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        open(dest, "wb").write(body)
        open(f"{out}/expect/{n:04d}.der", "wb").write(body)
        if n == 0:
            open(f"{out}/ocsp-post.der", "wb").write(body)
    crls, aias = [], []
    for ca in (ids["ISSUING_ID"], ids["ROOT_ID"]):
        for kind, path in (("crl", f"/crls/{ca}_v1/current.crl"), ("aia", f"/cacerts/{ca}_v1/cert.cer")):
            data = fetch("GET", path)
            os.makedirs(os.path.dirname(out + path), exist_ok=True)
            open(out + path, "wb").write(data)
            (crls if kind == "crl" else aias).append(path)
    open(f"{out}/crl.list", "w").write("\n".join(crls) + "\n")
    open(f"{out}/aia.list", "w").write("\n".join(aias) + "\n")
    print(f"fetched {len(suffixes)} OCSP answers, {len(crls)} CRLs, {len(aias)} CA certs; "
          f"GET/POST body mismatches: {mismatch}", file=sys.stderr)
    sys.exit(1 if mismatch else 0)


if __name__ == "__main__":
    main()
