#!/usr/bin/env python3
"""Pages a whole CA's leaves through the Graph API in each $orderby, following
@odata.nextLink, and streams getAllCloudCertificationAuthorityLeafCertificates;
samples the server's RSS after every page (and every 50 ms while streaming).

  page_all.py BASE TOKEN CA_ID SERVER_PID TOP ORDER [ORDER...]   -> markdown rows on stdout
"""
import http.client, json, sys, threading, time, urllib.parse

base, token, ca, pid, top = sys.argv[1:6]
orders = sys.argv[6:]
u = urllib.parse.urlsplit(base)
headers = {"Authorization": f"Bearer {token}"}


def rss_mb():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
path = f"/beta/deviceManagement/cloudCertificationAuthority/{ca}/cloudCertificationAuthorityLeafCertificate"
print("| $orderby | pages | leaves | page p50 | page p99 | page max | RSS before | RSS max | growth |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for order in orders:
    q = urllib.parse.urlencode({"$top": top, "$orderby": order}, quote_via=urllib.parse.quote)
    url = f"{path}?{q}"
    before = rss_mb()
    peak, lat, n, pages = before, [], 0, 0
    throttled = 0
    while url:
        t0 = time.perf_counter()
        conn.request("GET", url, headers=headers)
        r = conn.getresponse()
        body = r.read()
        if r.status == 429:
            # Per-principal throttling: wait as told; not a page latency.
            throttled += 1
            time.sleep(float(r.getheader("Retry-After", "1")))
            continue
        lat.append((time.perf_counter() - t0) * 1000)
        if r.status != 200:
            sys.exit(f"{order}: {r.status} {body[:300]!r}")
        v = json.loads(body)
        n += len(v["value"])
        pages += 1
        peak = max(peak, rss_mb())
        nxt = v.get("@odata.nextLink")
        url = urllib.parse.urlsplit(nxt)._replace(scheme="", netloc="").geturl() if nxt else None
    print(f"| `{order}` | {pages} | {n} | {pct(lat, 50):.1f} ms | {pct(lat, 99):.1f} ms | {max(lat):.1f} ms "
          f"| {before:.0f} MB | {peak:.0f} MB | {peak - before:+.1f} MB |"
          + (f" ({throttled} × 429 waited out)" if throttled else ""), flush=True)

# getAll...: one answer, streamed.
before = rss_mb()
peak = [before]
done = threading.Event()


def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss_mb())
        time.sleep(0.05)


threading.Thread(target=sample, daemon=True).start()
t0 = time.perf_counter()
conn.request("POST", f"/beta/deviceManagement/cloudCertificationAuthority/{ca}/getAllCloudCertificationAuthorityLeafCertificates",
             headers=headers)
r = conn.getresponse()
size, count, tail = 0, 0, b""
while True:
    chunk = r.read(1 << 16)
    if not chunk:
        break
    size += len(chunk)
    count += (tail + chunk).count(b'"@odata.type"')
    tail = chunk[-12:]  # shorter than the pattern: no match counted twice
elapsed = time.perf_counter() - t0
done.set()
print(f"\ngetAllCloudCertificationAuthorityLeafCertificates: HTTP {r.status}, {size / 1e6:.0f} MB, {count} leaves "
      f"in {elapsed:.1f} s; RSS {before:.0f} MB before, {peak[0]:.0f} MB max ({peak[0] - before:+.1f} MB)")
