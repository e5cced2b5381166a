#!/bin/bash
# cloudpki-healthcheck: probe a local cloudpki with nothing but bash.
#
# Neither debian:bookworm-slim nor the cloudpki binary ship an HTTP client, so
# this speaks HTTP/1.1 over bash's /dev/tcp. It is installed in the image as
# /usr/local/bin/cloudpki-healthcheck and used by the Dockerfile's HEALTHCHECK
# and by the Kubernetes readiness probe (deploy/k8s/).
#
#   cloudpki-healthcheck live    GET /healthz: 200 while the process runs
#   cloudpki-healthcheck ready   GET /readyz:  exit 0 on 200 ("ready"), and
#                                also on 503 "degraded" (see below); exit 1 on
#                                503 "loading", anything else, or no answer
#   cloudpki-healthcheck strict  GET /readyz:  exit 0 on 200 only
#
# Why "ready" accepts "degraded": a responder whose database is unreachable
# keeps serving its last snapshot (pre-signed answers stay valid until their
# nextUpdate, at least ~3 days with the default timings). If readiness failed
# on "degraded", a PostgreSQL outage would take every responder out of its
# load balancer at once, turning a database outage into a revocation-service
# outage. Alert on "degraded" instead (deploy/README.md). cloudpki answers
# /readyz with 200 "ready", 503 "loading" (before the first snapshot), or 503
# "degraded: the database is unreachable; serving the last snapshot"; any
# body starting with "degraded" counts.
#
# Address: CLOUDPKI_HEALTHCHECK_ADDR (host:port) if set, else 127.0.0.1 and the
# port of CLOUDPKI_LISTEN (default 8180). /healthz and /readyz are served on
# the main listener and on the admin one (--admin-listen) alike.
set -u

mode=${1:-ready}
case $mode in
    live) path=/healthz ;;
    ready | strict) path=/readyz ;;
    *)
        echo "usage: $0 [live|ready|strict]" >&2
        exit 2
        ;;
esac

addr=${CLOUDPKI_HEALTHCHECK_ADDR:-}
if [ -z "$addr" ]; then
    listen=${CLOUDPKI_LISTEN:-127.0.0.1:8180}
    addr=127.0.0.1:${listen##*:}
fi
host=${addr%:*}
host=${host#[}
host=${host%]}
port=${addr##*:}

{ exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || {
    echo "cannot connect to $host:$port" >&2
    exit 1
}
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: cloudpki-healthcheck\r\nConnection: close\r\n\r\n' "$path" >&3

# Status line, then headers up to the blank line, then the (short) body.
IFS= read -r -t 3 status <&3 || {
    echo "no answer from $host:$port$path" >&2
    exit 1
}
code=$(echo "$status" | cut -d' ' -f2)
while IFS= read -r -t 3 line <&3; do
    [ "${line%$'\r'}" = "" ] && break
done
body=""
IFS= read -r -t 3 body <&3 || true
body=${body%$'\r'}
exec 3<&-

echo "$path: $code $body"
case $code in
    200) exit 0 ;;
    503) [ "$mode" = ready ] && case $body in degraded*) exit 0 ;; esac ;;
esac
exit 1
