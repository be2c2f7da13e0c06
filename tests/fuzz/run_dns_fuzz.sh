#!/usr/bin/env bash
# fuzz.dns_wire: build dns_rfc2136's wire-format targets with clang (libFuzzer + ASan +
# UBSan) and run each on the seed corpus in corpus/dns_wire: STEWARD_FUZZ_RUNS runs each
# (default 200000), or STEWARD_FUZZ_SECONDS seconds each when that is set (long runs).
# Any crash, leak or sanitizer report fails the test. Prints executions and coverage.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool clang

src=$SW_SOURCE_DIR
out=$SW_BUILD_DIR/fuzz
mkdir -p "$out"
new_workdir
runs=${STEWARD_FUZZ_RUNS:-200000}
budget=(-runs="$runs")
[ -n "${STEWARD_FUZZ_SECONDS:-}" ] && budget=(-max_total_time="$STEWARD_FUZZ_SECONDS")

for target in dns_msg dns_tsig; do
  bin="$out/fuzz_$target"
  if ! clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
       -I"$src/plugins/dns_rfc2136" "$src/tests/fuzz/fuzz_$target.c" \
       "$src/plugins/dns_rfc2136/dns_wire.c" "$src/plugins/dns_rfc2136/sha256.c" \
       -o "$bin" 2>"$WORKDIR/build_$target.log"; then
    if grep -q "fuzzer" "$WORKDIR/build_$target.log" && [ "${CI:-}" != true ]; then
      echo "SKIP: clang has no libFuzzer runtime (libclang-rt-dev)" >&2
      exit 77
    fi
    cat "$WORKDIR/build_$target.log" >&2
    fail "cannot build fuzz_$target"
  fi
  corpus="$WORKDIR/corpus_$target"
  mkdir -p "$corpus"
  cp "$src"/tests/fuzz/corpus/dns_wire/* "$corpus/"
  log="$WORKDIR/$target.log"
  if ! "$bin" "${budget[@]}" -max_len=4096 -print_final_stats=1 "$corpus" >"$log" 2>&1; then
    fail "fuzz_$target found a failure (reproduce with $bin on the crash file above)"
  fi
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  echo "fuzz_$target: ${execs:-?} executions, ${cov:-?} edges covered, ${ft:-?} features," \
       "$(ls "$corpus" | wc -l) corpus inputs, 0 crashes"
done
