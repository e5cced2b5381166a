#!/usr/bin/env bash
# The full test suite, runnable on a fresh machine: installs what the tests
# need (idempotently), then checks formatting, lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fuzz targets are a workspace of their own (fuzzing them needs nightly):
# at least keep them compiling against the library they call.
CARGO_TARGET_DIR=target cargo check --manifest-path fuzz/Cargo.toml --bins --locked
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

cargo test --workspace --all-targets --locked

# kill -9 at a random moment in each kind of operation (revoke-all, issuance,
# CRL publication, KEK rotation, an API storm), once per kind and backend, on
# the debug binary the tests built; scripts/CRASH-RESULTS.md has the
# 100-trial runs of `scripts/crash-campaign.sh 100`.
CLOUDPKI_BIN="${CARGO_TARGET_DIR:-target}/debug/cloudpki" LEAVES=500 \
  bash scripts/crash-campaign.sh 6 --backend both
echo "crash-campaign: 12 passed, 0 failed"
