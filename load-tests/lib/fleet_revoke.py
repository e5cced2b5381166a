#!/usr/bin/env python3
"""fleet_revoke.py SIGNER TOKEN ISSUING_ID STORM_TSV OUT_JSON --responder URL [--responder URL] --cache URL
                   [--count 50] [--rate 5] [--offset 0] [--poll-ms 1] [--give-up-s 10] [--crl-wait-s 75]

Revocation propagation through a fleet (used by fleet.sh while k6 loads the cache):

 1. prime: GET /ocsp/<suffix> of COUNT serials of STORM_TSV (serial<TAB>id<TAB>GET suffix) through
    the CACHE, so it holds their `good` answers (as it would for certificates relying parties
    ask about), and once from each responder; records the Cache-Control max-age we send;
 2. revoke them through the SIGNER's management API (revokeLeafCertificateBySerialNumber, bearer
    TOKEN) at a steady RATE per second, one thread per revocation. The API answers after the
    commit, so the moment its answer arrives is the acknowledgement ("ack");
 3. per revocation and per RESPONDER (directly, not via the cache): poll GET /ocsp/<suffix> every
    POLL_MS until the answer says `revoked`; delay = ack -> first `revoked` answer (the answer's
    signature and CertID are checked by fleet.sh's validate.py runs afterwards);
 4. CRLs: one poller per responder fetches the issuing CA's CRL every 20 ms and notes for each
    revoked serial when it first appears (delay from that serial's ack); one poller does the same
    through the CACHE every 0.5 s for up to CRL_WAIT_S after the last ack (the CRL max-age is
    <= 60 s, so the cache shows them within about a minute);
 5. after the last revocation: GET each serial's OCSP URL through the CACHE (what relying parties
    behind it get: the cached `good` until its max-age runs out, RFC 5019 caching) and POST the
    same request through the CACHE (POST is not cached: the responders' `revoked`).

Writes OUT_JSON (summary) and OUT_JSON with .tsv (one line per revocation). Bounded: COUNT
revocations, each poll loop gives up after GIVE_UP_S, the cache CRL poller after CRL_WAIT_S.
"""
import argparse, base64, http.client, json, os, sys, threading, time, urllib.parse

from cryptography import x509
from cryptography.x509 import ocsp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from storm import pct  # noqa: E402  (same percentile definition as the single-node storm)


def hostport(url):
    u = urllib.parse.urlparse(url)
    return u.hostname, u.port


class Conn:
    """One keep-alive HTTP connection, reopened after an error."""

    def __init__(self, url, timeout=5):
        self.host, self.port = hostport(url)
        self.timeout = timeout
        self.c = None

    def __call__(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
            except (OSError, http.client.HTTPException):
                self.c = None
                if attempt:
                    raise

    def close(self):
        if self.c:
            self.c.close()


def ocsp_status(code, body):
    if code != 200:
        return f"HTTP {code}"
    try:
        return ocsp.load_der_ocsp_response(body).certificate_status.name.lower()
    except Exception as e:  # noqa: BLE001
        return f"unparsable ({type(e).__name__})"


def max_age(headers):
    for part in headers.get("cache-control", "").split(","):
        k, _, v = part.strip().partition("=")
        if k == "max-age" and v.isdigit():
            return int(v)
    return None


def stats(xs, nd=2):
    return {k: (round(v, nd) if v is not None else None) for k, v in
            dict(p50=pct(xs, 50), p90=pct(xs, 90), p99=pct(xs, 99), max=max(xs, default=None),
                 min=min(xs, default=None)).items()}


def main():
    a = argparse.ArgumentParser()
    for n in ("signer", "token", "issuing_id", "storm_tsv", "out"):
        a.add_argument(n)
    a.add_argument("--responder", action="append", required=True)
    a.add_argument("--cache", required=True)
    a.add_argument("--count", type=int, default=50)
    a.add_argument("--rate", type=float, default=5)
    a.add_argument("--offset", type=int, default=0)
    a.add_argument("--poll-ms", type=float, default=1.0)
    a.add_argument("--give-up-s", type=float, default=10)
    a.add_argument("--crl-wait-s", type=float, default=75)
    o = a.parse_args()

    rows = [l.split("\t")[:3] for l in open(o.storm_tsv).read().splitlines() if l][o.offset:o.offset + o.count]
    n = len(rows)
    crl_path = f"/crls/{o.issuing_id}_v1/current.crl"
    api_path = f"/beta/deviceManagement/cloudCertificationAuthority/{o.issuing_id}/revokeLeafCertificateBySerialNumber"
    api_headers = {"Authorization": f"Bearer {o.token}", "Content-Type": "application/json"}
    errors = []

    def err(msg):
        if len(errors) < 10:
            errors.append(msg)

    # --- 1. prime the cache (and look at each responder once) --------------------------------
    cache = Conn(o.cache)
    prime = dict(cache_status={}, answer={}, max_age_s=[])
    for serial, _id, suffix in rows:
        code, h, body = cache("GET", f"/ocsp/{suffix}")
        st = ocsp_status(code, body)
        prime["answer"][st] = prime["answer"].get(st, 0) + 1
        cs = h.get("x-cache-status", "?")
        prime["cache_status"][cs] = prime["cache_status"].get(cs, 0) + 1
        if max_age(h) is not None:
            prime["max_age_s"].append(max_age(h))
        if st != "good":
            err(f"prime {serial}: {st} through the cache before revocation")
    for url in o.responder:
        c = Conn(url)
        for serial, _id, suffix in rows:
            st = ocsp_status(*(lambda r: (r[0], r[2]))(c("GET", f"/ocsp/{suffix}")))
            if st != "good":
                err(f"prime {serial}: {st} at {url} before revocation")
        c.close()
    ma = prime.pop("max_age_s")
    prime["max_age_s"] = dict(min=min(ma, default=None), max=max(ma, default=None))

    # --- 2-4. revoke, poll responders, poll CRLs ---------------------------------------------
    results = [dict(serial=s, ack=None, api_ms=None, delays={}, error="") for s, _i, _g in rows]
    crl_seen = {url: {} for url in o.responder + ["cache"]}   # url -> serial -> first-seen time
    stop = threading.Event()
    last_ack = [None]
    t_start = time.monotonic() + 0.2

    def crl_poller(url, interval, deadline_after_last_ack):
        c = Conn(o.cache if url == "cache" else url)
        seen = crl_seen[url]
        want = {int(s, 16): s for s, _i, _g in rows}
        fetches = 0
        while not stop.is_set():
            if last_ack[0] is not None and (len(seen) == n or
                                            time.monotonic() - last_ack[0] > deadline_after_last_ack):
                break
            try:
                code, h, body = c("GET", crl_path)
                fetches += 1
                t = time.monotonic()
                if code == 200:
                    for e in x509.load_der_x509_crl(body):
                        s = want.get(e.serial_number)
                        if s and s not in seen:
                            seen[s] = t
            except Exception as e:  # noqa: BLE001
                err(f"CRL poll {url}: {type(e).__name__}: {e}")
            time.sleep(interval)
        c.close()

    def poll_responder(k, url, suffix, t_ack):
        c = Conn(url)
        r = results[k]
        while time.monotonic() - t_ack < o.give_up_s:
            try:
                code, _h, body = c("GET", f"/ocsp/{suffix}")
                if ocsp_status(code, body) == "revoked":
                    r["delays"][url] = (time.monotonic() - t_ack) * 1e3
                    break
            except Exception as e:  # noqa: BLE001
                err(f"poll {url}: {type(e).__name__}: {e}")
            time.sleep(o.poll_ms / 1e3)
        else:
            r["error"] = r["error"] or f"not revoked at {url} after {o.give_up_s} s"
        c.close()

    def revoke(k, serial, suffix):
        r = results[k]
        due = t_start + k / o.rate
        time.sleep(max(0.0, due - time.monotonic()))
        api = Conn(o.signer, timeout=30)
        t0 = time.monotonic()
        try:
            code, _h, body = api("POST", api_path, json.dumps({"certificateSerialNumber": serial}).encode(), api_headers)
        except Exception as e:  # noqa: BLE001
            r["error"] = f"API: {type(e).__name__}: {e}"
            return
        finally:
            api.close()
        t_ack = time.monotonic()
        r["api_ms"] = (t_ack - t0) * 1e3
        try:
            status = json.loads(body)["value"]["certificateStatus"]
        except Exception:  # noqa: BLE001
            status = None
        if code != 200 or status != "revoked":
            r["error"] = f"API HTTP {code}: {body[:200]!r}"
            return
        r["ack"] = t_ack
        last_ack[0] = max(last_ack[0] or 0, t_ack)
        ts = [threading.Thread(target=poll_responder, args=(k, url, suffix, t_ack), daemon=True) for url in o.responder]
        for t in ts:
            t.start()
        for t in ts:
            t.join(o.give_up_s + 5)

    pollers = [threading.Thread(target=crl_poller, args=(url, 0.02, o.give_up_s), daemon=True) for url in o.responder]
    pollers.append(threading.Thread(target=crl_poller, args=("cache", 0.5, o.crl_wait_s), daemon=True))
    for t in pollers:
        t.start()
    threads = [threading.Thread(target=revoke, args=(k, s, g), daemon=True) for k, (s, _i, g) in enumerate(rows)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(n / o.rate + o.give_up_s + 60)
    t_revoked = time.monotonic()

    # --- 5. what the cache serves now ----------------------------------------------------------
    after = dict(get_answer={}, get_cache_status={}, get_max_age_s=[], post_answer={})
    for serial, _id, suffix in rows:
        code, h, body = cache("GET", f"/ocsp/{suffix}")
        st = ocsp_status(code, body)
        after["get_answer"][st] = after["get_answer"].get(st, 0) + 1
        cs = h.get("x-cache-status", "?")
        after["get_cache_status"][cs] = after["get_cache_status"].get(cs, 0) + 1
        if max_age(h) is not None:
            after["get_max_age_s"].append(max_age(h))
        der = base64.b64decode(urllib.parse.unquote(suffix))
        code, h, body = cache("POST", "/ocsp", der, {"Content-Type": "application/ocsp-request"})
        st = ocsp_status(code, body)
        after["post_answer"][st] = after["post_answer"].get(st, 0) + 1
    for k in ("get_max_age_s",):
        xs = after[k]
        after[k] = dict(min=min(xs, default=None), max=max(xs, default=None))
    # the cache CRL poller runs on until every serial is listed or CRL_WAIT_S after the last ack
    for t in pollers:
        t.join(o.crl_wait_s + 30)
    stop.set()
    cache.close()

    acked = [r for r in results if r["ack"] is not None]
    summary = dict(
        revocations=n, rate_target=o.rate, poll_ms=o.poll_ms, acknowledged=len(acked),
        rate_achieved=round(n / max(t_revoked - t_start, 1e-9), 2) if n else None,
        api_ms=stats([r["api_ms"] for r in acked], 1), prime=prime, cache_after=after,
        responders={}, crl={}, first_errors=sorted({r["error"] for r in results if r["error"]})[:5] + errors[:5],
    )
    for url in o.responder:
        d = [r["delays"][url] for r in acked if url in r["delays"]]
        summary["responders"][url] = dict(visible=len(d), delay_ms=stats(d))
    for url, seen in crl_seen.items():
        d = [(seen[r["serial"]] - r["ack"]) * 1e3 for r in acked if r["serial"] in seen]
        summary["crl"][url] = dict(listed=len(d), delay_ms=stats(d, 1))
    json.dump(summary, open(o.out, "w"), indent=1)
    with open(o.out.rsplit(".", 1)[0] + ".tsv", "w") as f:
        f.write("serial\tapi_ms\t" + "\t".join(f"ocsp_ms {u}" for u in o.responder) + "\terror\n")
        for r in results:
            f.write(f"{r['serial']}\t{r['api_ms']}\t" + "\t".join(str(r["delays"].get(u)) for u in o.responder)
                    + f"\t{r['error']}\n")
    with open(o.out.rsplit(".", 1)[0] + "-revoked.tsv", "w") as f:
        for r, row in zip(results, rows):
            if r["ack"] is not None:
                f.write("\t".join(row) + "\n")
    print(json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
