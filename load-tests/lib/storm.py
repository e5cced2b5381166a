#!/usr/bin/env python3
"""storm.py BIN DATA_DIR BASE_URL STORM_TSV OUT_JSON [--rate 20] [--seconds 15] [--poll-ms 1] [--offset K]

The revocation storm: revokes the serials of STORM_TSV (serial<TAB>leaf id<TAB>GET suffix) at a
steady RATE per second through the CLI (`cloudpki --data-dir D cert revoke ID --reason
keyCompromise`: there is no HTTP hook for revocations), for SECONDS seconds. Each revocation
gets its own thread: it starts the CLI on schedule, notes the moment the CLI exits (its
transaction is committed by then), then polls GET /ocsp/<that serial> every POLL_MS until the
answer says `revoked`, and records exit -> first `revoked` answer = the visibility delay.
The delay is measured to the arrival of the first `revoked` answer (an upper bound; the
resolution is one poll, ~POLL_MS + one loopback round trip).

Writes OUT_JSON (summary: counts, CLI time and visibility delay percentiles, first errors) and
OUT_JSON with .tsv: one line per revocation (serial, cli_ms, delay_ms, polls, error).
Bounded: at most RATE*SECONDS revocations, each poll loop gives up after 10 s.
"""
import argparse, http.client, json, subprocess, sys, threading, time

from cryptography.x509 import ocsp


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def main():
    a = argparse.ArgumentParser()
    a.add_argument("bin"); a.add_argument("data_dir"); a.add_argument("base"); a.add_argument("storm_tsv")
    a.add_argument("out")
    a.add_argument("--rate", type=float, default=20); a.add_argument("--seconds", type=float, default=15)
    a.add_argument("--poll-ms", type=float, default=1.0); a.add_argument("--give-up-s", type=float, default=10)
    a.add_argument("--offset", type=int, default=0, help="skip this many storm serials (used by an earlier storm)")
    o = a.parse_args()
    host, port = o.base.split("//", 1)[1].rstrip("/").split(":")
    rows = [l.split("\t") for l in open(o.storm_tsv).read().splitlines() if l][o.offset:]
    n = min(len(rows), int(o.rate * o.seconds))
    if n < int(o.rate * o.seconds):
        print(f"storm: only {len(rows)} storm serials; revoking {n}", file=sys.stderr)
    results = [None] * n
    start = time.monotonic() + 0.2

    def one(k, serial, leaf_id, suffix):
        r = dict(serial=serial, lag_ms=None, cli_ms=None, delay_ms=None, polls=0, error="")
        due = start + k / o.rate
        time.sleep(max(0.0, due - time.monotonic()))
        t0 = time.monotonic()
        r["lag_ms"] = (t0 - due) * 1e3
        p = subprocess.run([o.bin, "--data-dir", o.data_dir, "cert", "revoke", leaf_id, "--reason", "keyCompromise"],
                           capture_output=True, text=True)
        t_exit = time.monotonic()
        r["cli_ms"] = (t_exit - t0) * 1e3
        if p.returncode != 0:
            r["error"] = f"cli exit {p.returncode}: {(p.stderr or p.stdout).strip()[:300]}"
            results[k] = r
            return
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        while time.monotonic() - t_exit < o.give_up_s:
            try:
                conn.request("GET", f"/ocsp/{suffix}")
                resp = conn.getresponse()
                body = resp.read()
                r["polls"] += 1
                if resp.status != 200:
                    r["error"] = f"HTTP {resp.status} while polling: {body[:100]!r}"
                else:
                    st = ocsp.load_der_ocsp_response(body).certificate_status
                    if st == ocsp.OCSPCertStatus.REVOKED:
                        r["delay_ms"] = (time.monotonic() - t_exit) * 1e3
                        r["error"] = ""
                        break
            except Exception as e:  # noqa: BLE001 - recorded, then retried with a new connection
                r["error"] = f"{type(e).__name__}: {e}"
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
            time.sleep(o.poll_ms / 1e3)
        else:
            r["error"] = r["error"] or f"not revoked after {o.give_up_s} s"
        conn.close()
        results[k] = r

    threads = [threading.Thread(target=one, args=(k, *rows[k][:3]), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(o.give_up_s + 60)
    done = [r for r in results if r]
    delays = [r["delay_ms"] for r in done if r["delay_ms"] is not None]
    cli = [r["cli_ms"] for r in done if r["cli_ms"] is not None]
    errs = [r for r in done if r["error"]]
    wall = time.monotonic() - start
    summary = dict(
        revocations=n, seconds=o.seconds, visible=len(delays), failed=len(errs) + (n - len(done)), rate_target=o.rate,
        rate_achieved=round(n / max(wall, 1e-9), 2), poll_ms=o.poll_ms,
        delay_ms={k: (round(v, 2) if v is not None else None) for k, v in
                  dict(p50=pct(delays, 50), p90=pct(delays, 90), p99=pct(delays, 99),
                       max=max(delays, default=None), min=min(delays, default=None)).items()},
        cli_ms={k: (round(v, 1) if v is not None else None) for k, v in
                dict(p50=pct(cli, 50), p99=pct(cli, 99), max=max(cli, default=None)).items()},
        max_schedule_lag_ms=round(max((r["lag_ms"] or 0) for r in done), 1) if done else None,
        first_errors=sorted({r["error"] for r in errs})[:5],
    )
    json.dump(summary, open(o.out, "w"), indent=1)
    with open(o.out.rsplit(".", 1)[0] + ".tsv", "w") as f:
        f.write("serial\tcli_ms\tdelay_ms\tpolls\terror\n")
        for r in done:
            f.write(f"{r['serial']}\t{r['cli_ms']}\t{r['delay_ms']}\t{r['polls']}\t{r['error']}\n")
    with open(o.out.rsplit(".", 1)[0] + "-revoked.tsv", "w") as f:
        for k, r in enumerate(results):
            if r and r["cli_ms"] is not None and not r["error"].startswith("cli exit"):
                f.write("\t".join(rows[k][:3]) + "\n")
    print(json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
