#!/usr/bin/env bash
# HA failover: time from kill -9 of the leader (an acquire in flight) to the new leader's
# first fenced marketplace action, with a real etcd and `steward market serve`. Runs the
# integration scenario (tests/integration/test_ha_etcd.sh) RUNS times and prints each
# figure, then the best and the median. Target: <= TTL + 1 s.
#
#   bench/bench_ha.sh [build-dir]       (env: RUNS=3 HA_TTL=3)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
runs=${RUNS:-3}
export HA_TTL=${HA_TTL:-3}
command -v etcd >/dev/null || { echo "etcd is not installed (Debian package etcd-server)" >&2; exit 77; }
export STEWARD_BIN=$build/steward SW_SOURCE_DIR=$src SW_BUILD_DIR=$build SW_PLUGIN_DIR=$build/plugins
figures=()
for i in $(seq 1 "$runs"); do
  out=$(bash "$src/tests/integration/test_ha_etcd.sh" 2>&1) || { echo "$out" | tail -20 >&2; exit 1; }
  f=$(echo "$out" | sed -n 's/^failover: .* first action \([0-9.]*\)s.*/\1/p')
  echo "run $i: failover ${f}s (ttl ${HA_TTL}s)"
  figures+=("$f")
done
printf '%s\n' "${figures[@]}" | sort -n | awk -v ttl="$HA_TTL" '
  { v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
    printf "failover best %.3fs median %.3fs over %d runs (ttl %ss, target <= %.1fs)\n", v[1], m, NR, ttl, ttl + 1 }'
