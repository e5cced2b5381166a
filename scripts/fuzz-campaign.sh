#!/usr/bin/env bash
# Fuzzing campaign: every cargo-fuzz target in fuzz/ (or those named) for a
# given time or number of executions, one after the other on one core; then
# each corpus is minimised and kept as seeds, and fuzz/RESULTS.md gets a table.
#
# Usage: scripts/fuzz-campaign.sh [--seconds N | --runs N] [--no-build] [TARGET...]
#   --seconds N  per target (default 600)
#   --runs N     per target: N executions instead of a time
#   --no-build   run the binaries already in fuzz/target (built by a previous
#                run or by scripts/fuzz-smoke.sh with the same sanitizer)
#   TARGET       only these targets (default: all of them)
# Environment:
#   FUZZ_SANITIZER    address (default) or none; none builds and runs faster
#   FUZZ_NICE         niceness of the build and the runs (default 10)
#   FUZZ_MAX_CRASHES  crashes per target before moving on (default 3): after a
#                     crash the target is restarted for the time it has left
#   FUZZ_SEED_BYTES   most bytes of minimised corpus kept as seeds per target
#                     (default 2097152)
#
# One core: libFuzzer fuzzes in-process on one thread (no -jobs/-workers,
# which would only move the same single run into a child process writing
# ./fuzz-0.log), under nice. The working corpus is fuzz/corpus/<target>/
# (git-ignored), seeded from fuzz/seeds/<target>/. Afterwards each corpus is
# minimised with libFuzzer's -merge=1 (what `cargo fuzz cmin` runs, here on
# the binary already built, so a change to src/ mid-campaign cannot rebuild
# it) and the minimised corpus replaces the SHA-1-named files in
# fuzz/seeds/<target>/; named seeds stay. Past FUZZ_SEED_BYTES the smallest
# files are kept.
#
# Crashing inputs are left in fuzz/artifacts/<target>/. Logs go to
# fuzz/target/campaign/<target>.<n>.log; the table to fuzz/RESULTS.md, rewritten
# after every target (so a stopped campaign still has its finished rows).
# Exit status: 0 clean, 1 a target crashed, 2 bad usage, 3 the build failed.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(graph_body odata_query ocsp_request ocsp_get_path csr pem cert_upload scep_message)
seconds=600
runs=
build=1
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=${2:-}; runs=; shift 2 ;;
    --runs) runs=${2:-}; shift 2 ;;
    --no-build) build=; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for n in "$seconds" ${runs:+"$runs"}; do
  case $n in '' | *[!0-9]* | 0) echo "--seconds/--runs need a positive whole number, got '$n'" >&2; exit 2 ;; esac
done
for t in "${targets[@]}"; do
  [ -d "fuzz/seeds/$t" ] || { echo "unknown target '$t' (no fuzz/seeds/$t)" >&2; exit 2; }
done
sanitizer=${FUZZ_SANITIZER:-address}
nice_level=${FUZZ_NICE:-10}
max_crashes=${FUZZ_MAX_CRASHES:-3}
seed_bytes=${FUZZ_SEED_BYTES:-2097152}

export RUSTC_BOOTSTRAP=1
FLAGS=(--fuzz-dir fuzz --sanitizer "$sanitizer" --debug-assertions)
if [ -n "$build" ]; then
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
  echo "== building fuzz targets (sanitizer: $sanitizer)"
  nice -n "$nice_level" cargo fuzz build "${FLAGS[@]}" || { echo "fuzz build failed" >&2; exit 3; }
fi
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=fuzz/target/$host/release

max_len() {
  case $1 in
    ocsp_get_path) echo 4200 ;;
    pem | graph_body | scep_message) echo 8192 ;;
    *) echo 4096 ;;
  esac
}
stat_of() { sed -n "s/^stat::$1:[[:space:]]*//p" "$2" | tail -1; }
sha1() { sha1sum "$1" | cut -c1-40; }
dir_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

log_dir=fuzz/target/campaign
mkdir -p "$log_dir"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
budget=$([ -n "$runs" ] && echo "$runs executions" || echo "${seconds} s")
rows=()
notes=()
failed=()

write_results() {
  {
    echo "# Fuzzing results"
    echo
    echo "Written by \`scripts/fuzz-campaign.sh\` (campaign started $started; budget $budget per target;"
    echo "sanitizer \`$sanitizer\`, debug assertions on; one core under \`nice -n $nice_level\`;"
    echo "$(nproc) cores shared with other work, so exec/s are lower bounds)."
    echo "Coverage is libFuzzer's last \`cov:\` (edges) and \`ft:\` (features) of the run; corpus is"
    echo "the minimised corpus (files / bytes) kept in \`fuzz/seeds/<target>/\`."
    echo
    echo "| target | seconds | executions | exec/s | cov | ft | corpus (min) | crashes |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${rows[@]}"
    if [ ${#notes[@]} -gt 0 ]; then
      echo
      printf -- '- %s\n' "${notes[@]}"
    fi
  } >fuzz/RESULTS.md
}

for t in "${targets[@]}"; do
  corpus=fuzz/corpus/$t
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  cp -n fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
  dict=()
  [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
  echo "== $t: $budget from $(ls "$corpus" | wc -l) corpus files ($(date -u +%H:%M:%S))"
  t0=$(date +%s)
  execs=0 crashes=0 attempt=0 cov=? ft=?
  while :; do
    attempt=$((attempt + 1))
    if [ -n "$runs" ]; then
      left=$((runs - execs)); limit=(-runs="$left")
    else
      left=$((seconds - ($(date +%s) - t0))); limit=(-max_total_time="$left")
    fi
    [ "$left" -gt 0 ] || break
    log=$log_dir/$t.$attempt.log
    status=0
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0} nice -n "$nice_level" "$bin_dir/$t" \
      -artifact_prefix="fuzz/artifacts/$t/" "${limit[@]}" -max_len="$(max_len "$t")" "${dict[@]}" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$corpus" >"$log" 2>&1 || status=$?
    n=$(stat_of number_of_executed_units "$log")
    execs=$((execs + ${n:-0}))
    last=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
    if [ -n "$last" ]; then
      cov=$(echo "$last" | awk '{ print $2 }') ft=$(echo "$last" | awk '{ print $4 }')
    fi
    if [ "$status" -eq 0 ]; then
      break
    fi
    crashes=$((crashes + 1))
    echo "!! $t crashed (exit $status, log $log):"
    grep -E "panicked at|^Test unit written to|ERROR: libFuzzer|SUMMARY:" "$log" | head -8 || true
    notes+=("\`$t\` crash $crashes: $(grep -m1 -oE 'panicked at [^ ]+' "$log" || grep -m1 -oE 'ERROR: libFuzzer: [a-z-]+' "$log" || echo "exit $status"); input $(sed -n 's/.*Test unit written to //p' "$log" | head -1)")
    [ "$crashes" -lt "$max_crashes" ] || break
  done
  elapsed=$(($(date +%s) - t0))
  [ "$crashes" -eq 0 ] || failed+=("$t")

  # Minimise (cargo fuzz cmin's -merge=1), then keep the result as seeds.
  min=$log_dir/$t.min
  rm -rf "$min" && mkdir -p "$min"
  if nice -n "$nice_level" "$bin_dir/$t" -merge=1 -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
    "$min" "$corpus" >"$log_dir/$t.cmin.log" 2>&1; then
    rm -rf "$corpus" && mv "$min" "$corpus"
  else
    notes+=("\`$t\`: minimisation failed (log $log_dir/$t.cmin.log); the corpus was kept whole")
  fi
  seeds=fuzz/seeds/$t
  find "$seeds" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
  declare -A named=()
  for f in "$seeds"/*; do [ -f "$f" ] && named[$(sha1 "$f")]=1; done
  total=0 kept=0 dropped=0
  while read -r size f; do
    [ -z "${named[$(sha1 "$f")]:-}" ] || continue
    if [ $((total + size)) -gt "$seed_bytes" ]; then dropped=$((dropped + 1)); continue; fi
    cp "$f" "$seeds/$(basename "$f")"
    total=$((total + size)) kept=$((kept + 1))
  done < <(find "$corpus" -type f -printf '%s %p\n' | sort -n)
  unset named
  [ "$dropped" -eq 0 ] || notes+=("\`$t\`: minimised corpus over $seed_bytes bytes; the $kept smallest files kept as seeds, $dropped larger ones left out")

  files=$(find "$corpus" -type f | wc -l)
  rate=$((execs / (elapsed > 0 ? elapsed : 1)))
  rows+=("| \`$t\` | $elapsed | $execs | $rate | $cov | $ft | $files / $(dir_bytes "$corpus") | $crashes |")
  echo "   $elapsed s, $execs execs, $rate exec/s, cov $cov ft $ft, minimised corpus $files files"
  write_results
done

echo
cat fuzz/RESULTS.md
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]}; inputs in fuzz/artifacts/<target>/" >&2
  exit 1
fi
