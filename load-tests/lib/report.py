#!/usr/bin/env python3
"""report.py add RESULTS.jsonl RAWPREFIX key=value...
       Parses one k6 (RAWPREFIX.json = handleSummary JSON) or wrk (RAWPREFIX.txt, WRKJSON line) run,
       adds CPU shares (server process group, load generator via /usr/bin/time in RAWPREFIX.time,
       everything else on the box), appends one JSON record and prints a one-line summary.
   report.py rate RESULTS.jsonl SCENARIO TARGET [FRACTION]
       FRACTION (default 0.5) of that scenario's k6 peak req/s for TARGET (integer, >= 1).
   report.py md OUTDIR
       RESULTS.md body from OUTDIR/results.jsonl and OUTDIR/meta.json, on stdout.
"""
import json, re, sys
from collections import defaultdict

TARGETS = {  # the goals in load-tests/README.md
    "ratio": 1.0,         # OCSP GET/POST req/s >= 1.0 x nginx static
    "half_p99_ms": 2.0,   # p99 < 2 ms at half of peak
    "rss_mb": 1536,       # 1M certs: RSS <= 1.5 GB
    "startup_s": 15.0,    # 1M certs: startup <= 15 s
    "revoke_p99_ms": 10,  # revocation visible <= 10 ms p99
}


def add(results, raw, kv):
    m = dict(x.split("=", 1) for x in kv)
    rec = {k: (float(v) if re.fullmatch(r"-?[\d.]+", v) else v) for k, v in m.items()}
    t = re.search(r"TIME ([\d.]+) ([\d.]+) ([\d.]+)", open(raw + ".time").read())
    if m["tool"] == "wrk":
        w = json.loads(re.search(r"WRKJSON (\{.*\})", open(raw + ".txt").read()).group(1))
        dur = w["duration_us"] / 1e6
        rec.update(requests=w["requests"], p50_ms=w["p50_us"] / 1e3, p90_ms=w["p90_us"] / 1e3,
                   p95_ms=w["p95_us"] / 1e3 if "p95_us" in w else None, p99_ms=w["p99_us"] / 1e3, max_ms=w["max_us"] / 1e3,
                   errors=w["err_connect"] + w["err_read"] + w["err_write"] + w["err_timeout"] + w["non2xx3xx"],
                   wrong=0, dropped=0)
    else:
        d = json.load(open(raw + ".json"))
        mt = d["metrics"]
        h = mt["http_req_duration"]["values"]
        dur = d["state"]["testRunDurationMs"] / 1e3

        def val(name, key="count"):
            return mt.get(name, {}).get("values", {}).get(key, 0)
        rec.update(requests=val("http_reqs"), p50_ms=h["med"], p90_ms=h["p(90)"], p95_ms=h.get("p(95)"), p99_ms=h["p(99)"],
                   max_ms=h["max"], errors=val("http_req_failed", "passes"), wrong=val("wrong_answers"),
                   dropped=val("dropped_iterations"), try_later=val("try_later"))
    rec["measured_s"] = dur
    rec["rps"] = rec["requests"] / dur if dur else 0
    wall = rec["wall_s"] = max(float(t.group(1)), 0.01)
    hz = float(m["hz"])
    rec["server_cpu_pct"] = 100 * float(m["server_ticks"]) / hz / wall
    rec["load_cpu_pct"] = 100 * (float(t.group(2)) + float(t.group(3))) / wall
    busy = 100 * float(m["all_busy_ticks"]) / hz / wall
    rec["other_cpu_pct"] = max(0.0, busy - rec["server_cpu_pct"] - rec["load_cpu_pct"])
    rec["server_us_per_req"] = 1e6 * float(m["server_ticks"]) / hz / max(rec["requests"], 1)
    with open(results, "a") as f:
        f.write(json.dumps(rec) + "\n")
    extra = f"  rate {rec['rate']:.0f}" if "rate" in rec else ""
    print(f"  {rec['rps']:8.0f} req/s  p50 {rec['p50_ms']:.3f} ms  p99 {rec['p99_ms']:.3f} ms  "
          f"err {rec['errors']:.0f}  wrong {rec['wrong']:.0f}  dropped {rec['dropped']:.0f}  "
          f"server {rec['server_cpu_pct']:.0f}% ({rec['server_us_per_req']:.0f} us/req)  "
          f"load {rec['load_cpu_pct']:.0f}%  other {rec['other_cpu_pct']:.0f}%{extra}", file=sys.stderr)


def load(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except FileNotFoundError:
        return []


def pick(recs, **kw):
    rs = [r for r in recs if all(r.get(k) == v for k, v in kw.items())]
    return rs[-1] if rs else None


def rate(results, scenario, target, fraction=0.5, tool="k6"):
    r = pick(load(results), scenario=scenario, target=target, tool=tool, mode="peak")
    print(max(1, int((r["rps"] if r else 0) * float(fraction))))


def fmt(x, nd=0):
    return "–" if x is None else f"{x:,.{nd}f}"


def md(out):
    recs = load(f"{out}/results.jsonl")
    meta = json.load(open(f"{out}/meta.json"))
    L = []
    w = L.append
    w("# cloudpki load-test results")
    w("")
    w(f"* Date: {meta.get('date')}  ")
    w(f"* Command: `{meta.get('command')}` (raw outputs: `{meta.get('out_rel')}`)  ")
    w(f"* Machine: {meta.get('nproc')} CPUs ({meta.get('cpu_model')}), {meta.get('mem')}, kernel {meta.get('kernel')}  ")
    w(f"* cloudpki: {meta.get('git')}; tools: {meta.get('tools')}  ")
    w(f"* Fixture: {meta.get('fixture')}  ")
    w(f"* Setup: {meta.get('setup')}")
    w("")

    # --- verdicts
    def peak(scn, tgt, tool="k6"):
        return pick(recs, scenario=scn, target=tgt, tool=tool, mode="peak")
    w("## Targets")
    w("")
    w("| goal | measured | verdict |")
    w("|---|---|---|")
    for scn in ("ocsp-get", "ocsp-post"):
        for tool in ("wrk", "k6"):
            c, n = peak(scn, "cloudpki", tool), peak(scn, "nginx", tool)
            if c and n and n["rps"]:
                ratio = c["rps"] / n["rps"]
                cpu = (f"; server CPU/req cloudpki {c['server_us_per_req']:.0f} µs vs nginx {n['server_us_per_req']:.0f} µs"
                       f" (= {n['server_us_per_req'] / max(c['server_us_per_req'], 1e-9):.2f}× nginx efficiency)")
                ok = ratio >= TARGETS["ratio"]
                verdict = "met" if ok else f"MISSED by {(1 - ratio) * 100:.1f} %"
                if max(c["server_cpu_pct"], n["server_cpu_pct"]) < 80:
                    # neither server was saturated: the load generator set the pace for both
                    verdict = (f"no verdict: load-generator-bound (server CPU {c['server_cpu_pct']:.0f} % / "
                               f"{n['server_cpu_pct']:.0f} %)")
                w(f"| {scn.upper()} ≥ 1.0× nginx static ({tool}) | {c['rps']:,.0f} vs {n['rps']:,.0f} req/s = "
                  f"**{ratio:.3f}×**{cpu} | {verdict} |")
    for scn in meta.get("scenarios", []):
        for tool, how in (("wrk", "half of the wrk peak, wrk paced"), ("k6", "half of the k6 peak, k6 arrival-rate")):
            r = pick(recs, scenario=scn, target="cloudpki", tool=tool, mode="half")
            if not r:
                continue
            n = pick(recs, scenario=scn, target="nginx", tool=tool, mode="half")
            p99, goal = r["p99_ms"], TARGETS["half_p99_ms"]
            verdict = "met" if p99 < goal else f"MISSED by {p99 - goal:.2f} ms ({p99 / goal:.1f}× the goal)"
            ref = f" (nginx: {n['p99_ms']:.2f} ms)" if n else ""
            w(f"| {scn} p99 < 2 ms at half of peak ({r['rate']:.0f} req/s, {how}) | p99 {p99:.2f} ms{ref} | {verdict} |")
    for st in meta.get("storms", []):
        p99 = st.get("delay_ms", {}).get("p99")
        if p99 is None:
            continue
        verdict = "met" if p99 <= 10 else f"MISSED by {p99 - 10:.0f} ms ({p99 / 10:.0f}× the goal)"
        w(f"| revocation visible ≤ 10 ms p99 ({st['rate_target']:.0f} revocations/s) | p99 {p99:.1f} ms "
          f"(p50 {st['delay_ms']['p50']:.1f} ms, {st['visible']}/{st['revocations']} seen) | {verdict} |")
    w("| 1M certificates: RSS ≤ 1.5 GB, startup ≤ 15 s | see the scale section below | |")
    w("")

    # --- peak table
    for tool, title in (("k6", f"Peak (k6, closed model: {meta.get('vus')} VUs, {meta.get('duration')} s, load generator pinned to 1 CPU)"),
                        ("wrk", f"Peak cross-check (wrk -t1 -c{meta.get('vus')}, {meta.get('duration')} s, same pinning)")):
        rows = [s for s in meta.get("scenarios", []) + ["ocsp-nonce"] if peak(s, "cloudpki", tool) or peak(s, "nginx", tool)]
        if not rows:
            continue
        w(f"## {title}")
        w("")
        w("| scenario | cloudpki req/s | p50 ms | p99 ms | nginx req/s | p50 ms | p99 ms | ratio cloudpki/nginx "
          "| server CPU % (cloudpki / nginx) | server µs CPU/req (cloudpki / nginx) | loadgen CPU % | errors (c / n) |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for s in rows:
            c, n = peak(s, "cloudpki", tool), peak(s, "nginx", tool)
            ratio = f"{c['rps'] / n['rps']:.2f}×" if c and n and n["rps"] else "–"
            g = lambda r, k, nd=0: fmt(r[k], nd) if r else "–"  # noqa: E731
            err = f"{g(c, 'errors')} / {g(n, 'errors')}"
            if c and c.get("try_later"):
                err += f" (tryLater {c['try_later']:.0f})"
            label = f"{s} ({c['conns']:.0f} VUs, cloudpki only)" if s == "ocsp-nonce" and c and "conns" in c else s
            w(f"| {label} | {g(c, 'rps')} | {g(c, 'p50_ms', 2)} | {g(c, 'p99_ms', 2)} | {g(n, 'rps')} | {g(n, 'p50_ms', 2)} | "
              f"{g(n, 'p99_ms', 2)} | {ratio} | {g(c, 'server_cpu_pct')} / {g(n, 'server_cpu_pct')} | "
              f"{g(c, 'server_us_per_req', 1)} / {g(n, 'server_us_per_req', 1)} | "
              f"{g(c, 'load_cpu_pct')} / {g(n, 'load_cpu_pct')} | {err} |")
        w("")
    w("Server CPU % is of one core (the server is pinned to one core). A server below ~90 % at peak was not the "
      "bottleneck: the load generator (on the other core) was, and the req/s ratio then says little; "
      "compare server µs CPU/req instead.")
    w("")

    # --- half of peak
    half = sorted((r for r in recs if r.get("mode") == "half"), key=lambda r: (r["tool"] != "wrk", r["scenario"]))
    if half:
        w(f"## At half of peak ({meta.get('duration')} s per run)")
        w("")
        w("* **wrk**: half of that target's *wrk* peak (≈ half of the server's capacity); wrk paces each connection "
          "(`WRK_DELAY_MS` pause between requests, connections = rate × pause), an approximately open load.")
        w("* **k6**: constant-arrival-rate at half of that target's *k6* peak, as specified; k6 saturates its core "
          "near 3–4k req/s in this mode, so its tail latency is mostly k6's own (dropped iterations = k6 fell behind).")
        w("")
        w("| scenario | target | tool | rate req/s | achieved req/s | p50 ms | p90 ms | p99 ms | max ms | wrong answers | failed | dropped iterations |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in half:
            how = r["tool"] + (f" ({r['conns']:.0f} conns)" if r["tool"] == "wrk" and "conns" in r else "")
            w(f"| {r['scenario']} | {r['target']} | {how} | {r['rate']:,.0f} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['wrong']:.0f} | {r['errors']:.0f} | {r['dropped']:.0f} |")
        w("")

    # --- storms
    storms = meta.get("storms", [])
    if storms:
        w("## Revocation storm")
        w("")
        w(f"`cloudpki cert revoke ID --reason keyCompromise` at a steady rate for {meta.get('storm_seconds')} s per storm, "
          f"on a copy of the fixture (fresh serials per storm), while k6 sent OCSP GETs at {meta.get('storm_load_rate')} req/s "
          "(90 % sampled serials with every body compared, 10 % the storm serials). Delay = CLI exit → first `revoked` "
          f"answer, polled every {storms[0]['poll_ms']} ms per revoked serial.")
        w("")
        w("| revocations/s (achieved) | revocations | visible | failed | delay p50 ms | p90 | p99 | max | min "
          "| CLI run time p50 ms | p99 | max | OCSP during storm: req/s, p50 / p99 / max ms | wrong / failed / dropped |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for st in storms:
            d, c = st["delay_ms"], st["cli_ms"]
            sl = pick(recs, scenario="revocation-storm", storm_rate=st["rate_target"])
            during = (f"{sl['rps']:,.0f}, {sl['p50_ms']:.2f} / {sl['p99_ms']:.2f} / {sl['max_ms']:.1f}" if sl else "–")
            bad = f"{sl['wrong']:.0f} / {sl['errors']:.0f} / {sl['dropped']:.0f}" if sl else "–"
            w(f"| {st['rate_target']:.0f} ({st['rate_achieved']}) | {st['revocations']} | {st['visible']} | {st['failed']} | "
              f"{fmt(d['p50'], 1)} | {fmt(d['p90'], 1)} | {fmt(d['p99'], 1)} | {fmt(d['max'], 1)} | {fmt(d['min'], 1)} | "
              f"{fmt(c['p50'], 1)} | {fmt(c['p99'], 1)} | {fmt(c['max'], 1)} | {during} | {bad} |")
        errs = [e for st in storms for e in st.get("first_errors", [])]
        if errs:
            w("")
            w("Errors: " + "; ".join(f"`{e}`" for e in errs[:6]))
        w("")

    # --- footprint
    fp = meta.get("footprint", {})
    if fp:
        w("## cloudpki footprint (fixture)")
        w("")
        w("| certificates | startup to /readyz | RSS after start | RSS after load | peak RSS (VmHWM) |")
        w("|---|---|---|---|---|")
        w(f"| {fp.get('certs')} | {fp.get('startup_ms', 0) / 1000:.2f} s | {fp.get('rss_start_mb', 0):.1f} MB | "
          f"{fp.get('rss_end_mb', 0):.1f} MB | {fp.get('hwm_end_mb', 0):.1f} MB |")
        w("")

    # --- correctness
    w("## Correctness")
    w("")
    for k in ("validate_before", "validate_under_wrk_load", "validate_after", "validate_nginx", "validate_storm"):
        v = meta.get(k)
        if v:
            w(f"* {k.replace('_', ' ')}: `{json.dumps(v)}`")
    if meta.get("metrics"):
        w(f"* cloudpki /metrics at the end of the load runs: `{meta['metrics']}`")
    if meta.get("storm_metrics"):
        w(f"* storm server /metrics at the end: `{meta['storm_metrics']}`")
    if meta.get("server_log"):
        w(f"* cloudpki log lines at WARN/ERROR: {meta['server_log']}")
    w("")
    print("\n".join(L))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "add":
        add(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif cmd == "rate":
        rate(*sys.argv[2:])
    else:
        md(sys.argv[2])
