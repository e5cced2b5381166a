#!/usr/bin/env python3
"""fleet_report.py cachelog < ACCESS_LOG_LINES > JSON
       Counts the nginx cache's JSON access-log lines (deploy/nginx format) per request kind
       (ocsp_get, ocsp_post, crl, aia, other) and cache status, plus the upstream each went to.
   fleet_report.py OUTDIR
       RESULTS-fleet.md (on stdout) from OUTDIR (meta.json, results.jsonl, components.jsonl,
       raw/*.cache.json, raw/*.r[12].{before,after}, propagation.json, validate-*.json): fleet.sh
       runs it at the end; run it again on a kept OUTDIR to regenerate the report.
"""
import json, os, platform, re, sys
from collections import Counter, defaultdict

KINDS = ("ocsp_get", "ocsp_post", "crl", "aia", "other")
COMPONENTS = ("responder1", "responder2", "cache", "static", "signer", "postgres")


def kind(method, uri):
    if uri.startswith("/ocsp/") and method in ("GET", "HEAD"):
        return "ocsp_get"
    if uri.startswith("/ocsp") and method == "POST":
        return "ocsp_post"
    if uri.startswith("/crls/"):
        return "crl"
    if uri.startswith("/cacerts/"):
        return "aia"
    return "other"


def cachelog():
    by, slow = defaultdict(Counter), Counter()
    upstream, status = Counter(), Counter()
    for line in sys.stdin:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        k = kind(r.get("method", ""), r.get("uri", ""))
        by[k][r.get("cache") or "-"] += 1
        status[str(r.get("status"))] += 1
        try:
            t = float(r.get("request_time") or 0)
        except ValueError:
            t = 0.0
        if t >= 0.1:   # e.g. waiting on proxy_cache_lock, which re-checks every 500 ms
            slow[f"{k} {r.get('cache') or '-'} {'>=0.5s' if t >= 0.5 else '>=0.1s'}"] += 1
        for u in filter(None, (r.get("upstream") or "").split(", ")):
            upstream[u] += 1
    print(json.dumps(dict(kinds={k: dict(v) for k, v in by.items()}, status=dict(status), upstream=dict(upstream),
                          slow=dict(slow))))


def load_lines(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except FileNotFoundError:
        return []


def load_json(path):
    try:
        return json.load(open(path))
    except (FileNotFoundError, ValueError):
        return None


def metrics(path):
    """route -> {status -> count} from a /metrics excerpt."""
    out = defaultdict(dict)
    try:
        for l in open(path):
            m = re.match(r'cloudpki_http_requests_total\{route="(\w+)",status="(\d+)"\} (\d+)', l)
            if m:
                out[m.group(1)][m.group(2)] = int(m.group(3))
    except FileNotFoundError:
        pass
    return out


def upstream_counts(out, tag):
    """Requests the responders answered during run TAG: {responder: {route: n}}, non-2xx count."""
    res, bad = {}, 0
    for r in ("r1", "r2"):
        b, a = metrics(f"{out}/raw/{tag}.{r}.before"), metrics(f"{out}/raw/{tag}.{r}.after")
        routes = {}
        for route in set(a) | set(b):
            for st in set(a.get(route, {})) | set(b.get(route, {})):
                d = a.get(route, {}).get(st, 0) - b.get(route, {}).get(st, 0)
                if d:
                    routes[route] = routes.get(route, 0) + d
                    if not (st.startswith("2") or st == "304"):
                        bad += d
        res[r] = routes
    return res, bad


def f0(x):
    return "–" if x is None else f"{x:,.0f}"


def f2(x):
    return "–" if x is None else f"{x:.2f}"


def f1(x):
    return "–" if x is None else f"{x:,.1f}"


def report(out):
    e = dict(load_json(f"{out}/meta.json") or {})
    recs = load_lines(f"{out}/results.jsonl")
    comps = {c["tag"]: c for c in load_lines(f"{out}/components.jsonl")}
    prop = load_json(f"{out}/propagation.json") or {}
    cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
    mem = int(re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read()).group(1)) / 1048576
    L = []
    w = L.append

    def rec(tool, target, mode="peak"):
        rs = [r for r in recs if r.get("tool") == tool and r.get("target") == target and r.get("mode") == mode]
        return rs[-1] if rs else None

    def comp_cpu(tag):
        """component -> CPU % of one core during the run, and total CPU seconds."""
        c = comps.get(tag)
        if not c:
            return {}, 0.0
        hz, wall = c["hz"], max(c["wall_s"], 1e-9)
        d = {k: (c["after"].get(k, 0) - c["before"].get(k, 0)) / hz for k in COMPONENTS}
        return {k: 100 * v / wall for k, v in d.items()}, sum(d.values())

    w("# cloudpki fleet load test (fleet.sh)")
    w("")
    w(f"* Date: {e.get('META_DATE')}  ")
    w(f"* Command: `{e.get('META_CMD')}` (raw outputs: `{e.get('META_OUT')}`, git-ignored)  ")
    w(f"* Machine: {os.cpu_count()} CPUs ({cpu.group(1).strip() if cpu else '?'}), {mem:.0f} GiB RAM, kernel "
      f"{platform.release()}; **the 2 cores are shared** with another engineer's builds and test runs "
      "(each measured run waits up to QUIET_MAX s for the box to calm down; what still ran shows as \"other CPU\")  ")
    w(f"* cloudpki: {e.get('META_GIT')}; tools: {e.get('META_TOOLS')}  ")
    w(f"* Fixture: {e.get('META_FIX')}  ")
    w(f"* Setup: {e.get('META_SETUP')}  ")
    w("* Fleet: throwaway PostgreSQL (`scripts/pg-throwaway.sh`: fsync off), `cloudpki init`, one "
      "`serve --role signer` (KEK), two `serve --role responder` (no KEK), and the nginx cache of "
      "`deploy/nginx/nginx.conf` + `cloudpki-cache.conf` generated by `lib/fleet_nginx.py` with only loopback "
      "changes (listen port, upstream addresses, pid/temp/cache paths, access log to a file, 1 worker, no `user`); "
      "the static baseline is run.sh's nginx serving the same bytes from files  ")
    w(f"* Caching headers the responders send: OCSP GET `{e.get('META_MAXAGE')}`; CRL `{e.get('META_CRLCC')}`; "
      f"CA certificate `{e.get('META_AIACC')}`")
    w("")
    w("**Read this first.** PostgreSQL, the signer, two responders, two nginx instances and the load generators "
      "share 2 cores (with `PIN=1`: the whole fleet on one, k6/wrk on the other). This run shows that the fleet "
      "answers correctly under load, that the cache works with the shipped config and how revocations propagate — "
      "it says little about scale: every setup here is bounded by the load generator or by the one core the fleet "
      "shares. For capacity per core see RESULTS.md; for what N responders and a CDN would serve, the estimate in "
      "RESULTS.md's section \"Fleet: what N responders and a CDN serve\".")
    w("")

    # --- throughput / latency
    dur, vus = e.get("META_DUR"), e.get("META_VUS")
    setups = (("responder", "(a) one responder, directly"), ("cache", "(b) nginx cache → two responders"),
              ("static", "(c) nginx static files (baseline)"))
    for tool, title in (("k6", f"k6 peak: {vus} VUs, {dur} s, mix 70 % OCSP GET / 20 % POST / 5 % CRL / 5 % AIA"
                               + (", **every body compared** with the expected bytes (`CHECK=1`)" if e.get("META_CHECK") == "1" else "")),
                        ("wrk", f"wrk peak cross-check: -t1 -c{vus}, {dur} s, same mix (wrk checks status codes only; "
                                "validate.py checks 2,251 answers against the target while wrk loads it)")):
        rows = [(t, label, rec(tool, t)) for t, label in setups if rec(tool, t)]
        if not rows:
            continue
        base = rec(tool, "responder")
        stat = rec(tool, "static")
        w(f"## {title}")
        w("")
        w("| setup | req/s | vs (a) | vs (c) | p50 ms | p95 ms | p99 ms | max ms | failed | wrong bodies "
          "| CPU % of a core: resp1 / resp2 / cache / static / signer / postgres | fleet µs CPU/req | loadgen CPU % | other CPU % |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for t, label, r in rows:
            tag = f"mix-{t}-{tool}"
            c, total = comp_cpu(tag)
            fleet_us = 1e6 * total / max(r["requests"], 1) if c else None
            vs_a = f"{r['rps'] / base['rps']:.2f}×" if base and base["rps"] else "–"
            vs_c = f"{r['rps'] / stat['rps']:.2f}×" if stat and stat["rps"] else "–"
            cpus = " / ".join(f"{c.get(k, 0):.0f}" for k in COMPONENTS) if c else "–"
            # report.py counts everything but the target's process group and the load generator as
            # "other"; here every fleet process is accounted for, so other = the rest of the box
            other = max(0.0, r["other_cpu_pct"] + r["server_cpu_pct"] - sum(c.values())) if c else r["other_cpu_pct"]
            wrong = f0(r.get("wrong")) if tool == "k6" and e.get("META_CHECK") == "1" else "n/a"
            w(f"| {label} | {f0(r['rps'])} | {vs_a} | {vs_c} | {f2(r['p50_ms'])} | {f2(r.get('p95_ms'))} | "
              f"{f2(r['p99_ms'])} | {f1(r['max_ms'])} | {f0(r['errors'])} | {wrong} | {cpus} | {f1(fleet_us)} | "
              f"{f0(r['load_cpu_pct'])} | {f0(other)} |")
        w("")
        if tool == "wrk":
            for t, label, _r in rows:
                v = load_json(f"{out}/validate-under-wrk-{t}.json")
                if v:
                    w(f"* validate.py against {label} while wrk loaded it: `{json.dumps(v)}`")
            w("")
    w("\"fleet µs CPU/req\" = CPU time of every fleet process (both responders, both nginx, signer, PostgreSQL) "
      "during the run divided by the requests answered: the cost of a request in this deployment, whichever process "
      "pays it. \"other CPU\" = the rest of the box: co-tenants, and validate.py running alongside wrk. \"failed\" = "
      "k6 `http_req_failed` / wrk socket errors + non-2xx/3xx. CPU % is of one core.")
    w("")

    # --- cache effectiveness
    w("## What the cache absorbed")
    w("")
    w("From the cache's access log (deploy/nginx's JSON format, `$upstream_cache_status`) and the responders' "
      "`cloudpki_http_requests_total` before/after each run. Run (b) with k6 starts with an **empty cache**; the wrk "
      "run and the propagation run find it warm. The request set is small (1,000 sampled OCSP requests, 2 CRLs, "
      "2 CA certificates), so after the first request for each URL every GET is a hit: the hit ratio measures the "
      "config's behaviour, not a real population (see RESULTS.md for the estimate with one).")
    w("")
    w("| run | requests at the cache | OCSP GET: hit / miss / other | CRL: hit / miss / other | AIA: hit / miss / other "
      "| OCSP POST (passed through) | GET hit ratio | share of all requests answered by the cache "
      "| answered by responder 1 / 2 (non-2xx) |")
    w("|---|---|---|---|---|---|---|---|---|")
    for tag, label in (("mix-cache-k6", "(b) k6, cold start"), ("mix-cache-wrk", "(b) wrk, warm"),
                       ("propagation", "propagation (k6 at a fixed rate, warm)")):
        cl = load_json(f"{out}/raw/{tag}.cache.json")
        if not cl:
            continue
        ks = cl["kinds"]
        total = sum(sum(v.values()) for v in ks.values())

        def hmo(k):
            v = ks.get(k, {})
            h, m = v.get("HIT", 0), v.get("MISS", 0)
            return h, m, sum(v.values()) - h - m

        gh = gm = go = 0
        cells = []
        for k in ("ocsp_get", "crl", "aia"):
            h, m, o = hmo(k)
            gh, gm, go = gh + h, gm + m, go + o
            cells.append(f"{h:,} / {m:,} / {o:,}")
        post = sum(ks.get("ocsp_post", {}).values())
        hit_all = sum(v.get("HIT", 0) for v in ks.values())
        ups, bad = upstream_counts(out, tag)
        r1, r2 = sum(ups.get("r1", {}).values()), sum(ups.get("r2", {}).values())
        w(f"| {label} | {total:,} | {cells[0]} | {cells[1]} | {cells[2]} | {post:,} | "
          f"{100 * gh / max(gh + gm + go, 1):.2f} % | {100 * hit_all / max(total, 1):.1f} % | {r1:,} / {r2:,} ({bad}) |")
    w("")
    w("\"other\" = EXPIRED / REVALIDATED / UPDATING / STALE (e.g. a CRL whose 60 s max-age ran out and was "
      "revalidated). POST /ocsp is never cached (and nonce requests would not be either: they are POSTs, and "
      "their answers carry `no-store`).")
    w("")

    # --- propagation
    if prop:
        pr = e.get("META_PROP_RATE")
        n, rate = prop.get("revocations"), prop.get("rate_target")
        w("## Revocation propagation under load")
        w("")
        w(f"{n} leaves revoked through the **signer's management API** (`revokeLeafCertificateBySerialNumber`, "
          f"one request every {1 / rate * 1000:.0f} ms, achieved {prop.get('rate_achieved')}/s) while k6 sent the mix "
          f"through the cache ({'peak' if pr == '0' else pr + ' req/s'}, {e.get('META_PROP_S')} s, OCSP and AIA bodies "
          "compared; CRL status and type only, since CRLs change). Before the revocations each serial was fetched once "
          "through the cache (so it held their `good` answers, as it would for certificates relying parties ask "
          "about). Delay = the API's answer (sent after the commit) → the first `revoked` answer from that responder, "
          f"asked **directly** every {prop.get('poll_ms')} ms.")
        w("")
        a = prop.get("api_ms", {})
        w(f"* API acknowledgement (request → answer): p50 {f1(a.get('p50'))} ms, p99 {f1(a.get('p99'))} ms, max "
          f"{f1(a.get('max'))} ms; {prop.get('acknowledged')}/{n} acknowledged")
        w("")
        w("| where | visible | delay p50 ms | p90 | p99 | max | min |")
        w("|---|---|---|---|---|---|---|")
        for i, (url, v) in enumerate(prop.get("responders", {}).items(), 1):
            d = v["delay_ms"]
            w(f"| OCSP at responder {i} ({url}) | {v['visible']}/{n} | {f2(d['p50'])} | {f2(d['p90'])} | "
              f"{f2(d['p99'])} | {f2(d['max'])} | {f2(d['min'])} |")
        names = {u: f"responder {i}" for i, u in enumerate(prop.get("responders", {}), 1)}
        for url, v in prop.get("crl", {}).items():
            d = v["delay_ms"]
            where = f"CRL at {names.get(url, url)} (polled every 20 ms)" if url != "cache" else \
                f"CRL through the cache (polled every 0.5 s, up to {e.get('META_CRL_WAIT')} s)"
            w(f"| {where} | {v['listed']}/{n} | {f1(d['p50'])} | {f1(d['p90'])} | {f1(d['p99'])} | {f1(d['max'])} | "
              f"{f1(d['min'])} |")
        w("")
        p, ca = prop.get("prime", {}), prop.get("cache_after", {})
        ma = ca.get("get_max_age_s", {})
        w("What the cache served (expected RFC 5019 behaviour with the shipped config, which honours the "
          "responders' max-age; see deploy/README.md \"Caches and revocation visibility\"):")
        w("")
        w(f"* before: GET through the cache {p.get('answer')} (cache status {p.get('cache_status')}); the max-age "
          f"we sent: {p.get('max_age_s', {}).get('min'):,}–{p.get('max_age_s', {}).get('max'):,} s "
          f"(≈ {p.get('max_age_s', {}).get('max', 0) / 86400:.1f} days = nextUpdate − now)")
        w(f"* after every responder answered `revoked`: GET through the cache {ca.get('get_answer')} (cache status "
          f"{ca.get('get_cache_status')}), max-age still {ma.get('min'):,}–{ma.get('max'):,} s: the cache keeps serving "
          "the cached `good` until then (≈ 4 days) — OSS nginx has no purge; the commented `proxy_cache_valid 200 5m` "
          "in deploy/nginx bounds it at 5 minutes")
        w(f"* POST of the same requests through the cache (never cached): {ca.get('post_answer')}")
        w("* CRLs through the cache: the row above (max-age ≤ 60 s)")
        errs = prop.get("first_errors") or []
        if errs:
            w("* errors: " + "; ".join(f"`{x}`" for x in errs))
        w("")
        r = rec("k6", "cache", "propagation")
        if r:
            c, total = comp_cpu("propagation")
            w(f"k6 through the cache during the revocations: {f0(r['rps'])} req/s, p50 {f2(r['p50_ms'])} / p95 "
              f"{f2(r.get('p95_ms'))} / p99 {f2(r['p99_ms'])} / max {f1(r['max_ms'])} ms, failed {f0(r['errors'])}, "
              f"wrong bodies {f0(r['wrong'])}, dropped iterations {f0(r['dropped'])}; CPU % of a core: "
              + " / ".join(f"{k} {c.get(k, 0):.0f}" for k in COMPONENTS))
            w("")

    # --- correctness
    w("## Correctness")
    w("")
    for name, what in (("r1-before", "responder 1 before the load (`--keyless`)"), ("r2-before", "responder 2 before"),
                       ("r2-same-bytes", "responder 2 serves the very bytes responder 1 served (static mode)"),
                       ("cache-before", "through the cache before the load"), ("static-before", "nginx static"),
                       ("r1-after", "responder 1 after (+ the propagation serials must be revoked)"),
                       ("r2-after", "responder 2 after (idem)"), ("cache-after", "through the cache after")):
        v = load_json(f"{out}/validate-{name}.json")
        if v:
            w(f"* {what}: `{json.dumps(v)}`")
    w("* `--keyless`: responders hold no key, so a nonce is ignored (the pre-signed answer, checked like any other) "
      "and an unknown serial gets `unauthorized`, as ARCHITECTURE.md specifies; everything else as run.sh validates")
    for f, what in (("server-warnings.txt", "cloudpki WARN/ERROR log lines"), ("nginx-errors.txt", "nginx error log")):
        try:
            t = open(f"{out}/{f}").read().strip()
        except FileNotFoundError:
            t = ""
        w(f"* {what}: " + ("none" if not t else "`" + " | ".join(t.splitlines()[:6]) + "`"))
    w("")

    # --- footprint
    foot = json.loads(e.get("META_FOOT") or "{}")
    st = json.loads(e.get("META_STARTUP") or "{}")
    if foot:
        w("## Footprint at the end")
        w("")
        w("| component | RSS MB (PostgreSQL: PSS over its processes) | start to /readyz |")
        w("|---|---|---|")
        for k in COMPONENTS:
            if foot.get(k):
                s = f"{st[k] / 1000:.2f} s" if k in st else ""
                w(f"| {k} | {foot[k] / 1024:.1f} | {s} |")
        db = int(e.get("META_DB") or 0)
        if db:
            w(f"| PostgreSQL database size | {db / 1048576:.0f} (on disk) | |")
        w("")
    print("\n".join(L))


if __name__ == "__main__":
    if sys.argv[1] == "cachelog":
        cachelog()
    else:
        report(sys.argv[1])
