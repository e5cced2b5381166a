#!/usr/bin/env python3
"""fleet_nginx.py DEPLOY_NGINX_DIR OUTDIR PORT RESPONDER1 RESPONDER2 SIGNER WORKERS [EXTRA]

Derives the load test's nginx cache config from the deployed one (deploy/nginx/nginx.conf +
cloudpki-cache.conf), changing only what a loopback test run needs, so that the test exercises
the caching rules that ship:
  * no `user` line (the master runs as root here; workers get nginx's default user), pid,
    temp paths and the cache directory under OUTDIR, `worker_processes` = WORKERS;
  * the access log (same JSON format) to OUTDIR/access.log, buffered, instead of stdout: it is
    where the cache hit ratio is counted;
  * `listen 127.0.0.1:PORT` instead of 8080; upstream servers are loopback HOST:PORTs instead of
    the compose service names; the include points at OUTDIR's copy of cloudpki-cache.conf.
EXTRA (fleet.sh's CACHE_TUNING; default none): directives added to the server block (they override
the http-level ones),
to measure a tuning of the shipped config (e.g. "sendfile off;") without editing deploy/.
Every substitution must match exactly once (or the stated number of times): if deploy/ changes
shape, this fails instead of silently testing something else. Writes OUTDIR/nginx.conf and
OUTDIR/cloudpki-cache.conf.
"""
import os, re, sys


def sub(text, pattern, repl, count=1):
    new, n = re.subn(pattern, repl, text, flags=re.M)
    if n != count:
        raise SystemExit(f"fleet_nginx.py: pattern {pattern!r} matched {n} times, expected {count}: "
                         "deploy/nginx changed shape; update this script")
    return new


def main():
    src, out, port, r1, r2, signer, workers = sys.argv[1:8]
    extra = sys.argv[8] if len(sys.argv) > 8 else ""
    os.makedirs(f"{out}/cache", exist_ok=True)
    conf = open(f"{src}/nginx.conf").read()
    conf = sub(conf, r"^user nginx;\n", "")
    conf = sub(conf, r"^worker_processes auto;", f"worker_processes {workers};")
    conf = sub(conf, r"^pid /var/run/nginx\.pid;", f"pid {out}/nginx.pid;")
    conf = sub(conf, r"^error_log /dev/stderr warn;", f"error_log {out}/error.log warn;")
    conf = sub(conf, r"access_log /dev/stdout cloudpki;",
               f"access_log {out}/access.log cloudpki buffer=256k flush=1s;\n"
               f"    client_body_temp_path {out}/body; proxy_temp_path {out}/proxy;\n"
               f"    fastcgi_temp_path {out}/fcgi; uwsgi_temp_path {out}/uwsgi; scgi_temp_path {out}/scgi;")
    conf = sub(conf, r"server responder-1:8180 ", f"server {r1} ")
    conf = sub(conf, r"server responder-2:8180 ", f"server {r2} ")
    conf = sub(conf, r"server signer:8180;", f"server {signer};")
    conf = sub(conf, r"proxy_cache_path /var/cache/nginx/cloudpki ", f"proxy_cache_path {out}/cache ")
    conf = sub(conf, r"listen 8080 reuseport;", f"listen 127.0.0.1:{port} reuseport;")
    conf = sub(conf, r"include /etc/nginx/cloudpki-cache\.conf;", f"include {out}/cloudpki-cache.conf;", 3)
    if extra:
        conf = sub(conf, r"^        merge_slashes off;$", f"        merge_slashes off;\n        # CACHE_TUNING (test only)\n        {extra}")
    open(f"{out}/nginx.conf", "w").write(conf)
    open(f"{out}/cloudpki-cache.conf", "w").write(open(f"{src}/cloudpki-cache.conf").read())


if __name__ == "__main__":
    main()
