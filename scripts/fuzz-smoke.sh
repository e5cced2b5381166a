#!/usr/bin/env bash
# Fuzzing smoke run: every cargo-fuzz target in fuzz/ for a short while,
# starting from the seeds in fuzz/seeds/<target>/. Exits non-zero when any
# target crashes (panic, failed assertion, timeout, out-of-memory, sanitizer
# report); the input that did it is left in fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz-smoke.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 30; also FUZZ_SECONDS, or SECONDS exported in
#            the environment)
#   TARGET   only these targets (default: all of them)
# Environment:
#   FUZZ_SANITIZER  address (default) or none; none builds and runs faster
#   FUZZ_NICE       niceness of the build and the runs (default 10: the
#                   machine is shared)
#
# The toolchain is stable: cargo fuzz needs nightly-only rustc flags
# (-Zsanitizer, sanitizer coverage), which RUSTC_BOOTSTRAP=1 unlocks.
#
# The working corpus is fuzz/corpus/<target>/ (git-ignored): seeds are copied
# in, and whatever new coverage a run finds stays there for the next run.
# Logs go to fuzz/target/smoke/<target>.log.
# Exit status: 0 all clean, 1 a target crashed, 2 bad usage, 3 the build failed.

# Bash's SECONDS counts up from the script's start; read it before it moves.
env_seconds=
if printenv SECONDS >/dev/null 2>&1; then env_seconds=$SECONDS; fi
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(ocsp_request ocsp_get_path csr pem cert_upload graph_body odata_query scep_message)
per_target=${1:-${FUZZ_SECONDS:-${env_seconds:-30}}}
shift $(($# > 0 ? 1 : 0))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
case $per_target in
  '' | *[!0-9]*)
    echo "SECONDS must be a whole number, got '$per_target'" >&2
    exit 2
    ;;
esac
sanitizer=${FUZZ_SANITIZER:-address}
nice_level=${FUZZ_NICE:-10}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# -a: debug assertions (overflow checks) on, as in the test builds.
FLAGS=(--fuzz-dir fuzz --sanitizer "$sanitizer" --debug-assertions)

echo "== building fuzz targets (sanitizer: $sanitizer)"
if ! nice -n "$nice_level" cargo fuzz build "${FLAGS[@]}"; then
  echo "fuzz build failed (a compile error, not a crash found by fuzzing)" >&2
  exit 3
fi
# Run the binaries just built rather than `cargo fuzz run`, which rebuilds
# first: every target then runs the same build, even while src/ is edited.
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=fuzz/target/$host/release

# Longest input worth trying per target (GET paths are capped at 4096 bytes,
# request bodies at 16 KiB; certificates and bundles are a few KiB).
max_len() {
  case $1 in
    ocsp_get_path) echo 4200 ;;
    pem | graph_body) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

mkdir -p fuzz/target/smoke
failed=()
summary=()
for t in "${targets[@]}"; do
  if [ ! -d "fuzz/seeds/$t" ]; then
    echo "no seeds for target '$t' (fuzz/seeds/$t)" >&2
    exit 2
  fi
  corpus=fuzz/corpus/$t
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  cp -n fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
  log=fuzz/target/smoke/$t.log
  echo "== $t: ${per_target}s from $(ls "$corpus" | wc -l) corpus files"
  status=0
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0} nice -n "$nice_level" "$bin_dir/$t" \
    -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$per_target" -max_len="$(max_len "$t")" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$corpus" >"$log" 2>&1 || status=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb:[[:space:]]*//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 || true)
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    summary+=("$(printf '%-14s CRASH (exit %s) after %s execs; log %s' "$t" "$status" "${execs:-?}" "$log")")
    echo "!! $t crashed (exit $status):"
    grep -E "panicked at|^Test unit written to|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY:|==[0-9]+== ?ERROR" "$log" | head -20 || true
    grep -A3 "panicked at" "$log" | head -12 || true
  else
    summary+=("$(printf '%-14s ok  %9s execs  %6s exec/s  %s  rss %sMB' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${rss:-?}")")
    echo "   ${done_line:-$cov}"
  fi
done

echo
echo "== fuzz smoke summary (${per_target}s per target, sanitizer $sanitizer)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]}; inputs in fuzz/artifacts/<target>/. Reproduce with" \
    "$bin_dir/<target> <artifact>, or RUSTC_BOOTSTRAP=1 cargo fuzz run ${FLAGS[*]} <target> <artifact>" >&2
  exit 1
fi
