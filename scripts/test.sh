#!/usr/bin/env bash
# The full test suite, runnable on a fresh machine: installs what the tests
# need (idempotently), then checks formatting, lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
bash scripts/check-layers.sh
# The PostgreSQL store's tests use the server CLOUDPKI_TEST_POSTGRES names;
# unless the caller set one, run a throwaway cluster for this run, on a free
# port (a cluster a plain `cargo test` left running may hold 55432).
if [ -z "${CLOUDPKI_TEST_POSTGRES:-}" ]; then
  pg_dir=target/pg-test-run
  pg_port=${CLOUDPKI_TEST_PG_PORT:-}
  if [ -z "$pg_port" ]; then
    pg_port=55440
    while (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null; do
      pg_port=$((pg_port + 1))
    done
  fi
  trap 'bash scripts/pg-throwaway.sh stop "$pg_dir" || true' EXIT
  CLOUDPKI_TEST_POSTGRES=$(bash scripts/pg-throwaway.sh start "$pg_dir" "$pg_port")
  export CLOUDPKI_TEST_POSTGRES
fi

cargo test --all-targets --locked
