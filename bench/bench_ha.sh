#!/usr/bin/env bash
# HA handover times with a real etcd and `steward market serve`, RUNS times each, printing
# every figure, then the best and the median:
#   - failover: kill -9 of the leader (an acquire in flight) to the new leader's first fenced
#     marketplace action (tests/integration/test_ha_etcd.sh). Target: <= TTL + 1 s.
#   - SIGTERM handover: end of the leader's drain to the follower leading, the lease being
#     revoked on the way out (tests/integration/test_ha_etcd_ops.sh); also shown from the
#     signal itself (drain included). Target: one follower poll (TTL/10), far below TTL.
#
#   bench/bench_ha.sh [build-dir]       (env: RUNS=3 HA_TTL=3)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
runs=${RUNS:-3}
export HA_TTL=${HA_TTL:-3}
command -v etcd >/dev/null || { echo "etcd is not installed (Debian package etcd-server)" >&2; exit 77; }
export STEWARD_BIN=$build/steward SW_SOURCE_DIR=$src SW_BUILD_DIR=$build SW_PLUGIN_DIR=$build/plugins
summary() { # summary LABEL TARGET-TEXT < figures
  sort -n | awk -v label="$1" -v target="$2" -v ttl="$HA_TTL" '
    { v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
      printf "%s best %.3fs median %.3fs over %d runs (ttl %ss, %s)\n", label, v[1], m, NR, ttl, target }'
}
kill9=() term=()
for i in $(seq 1 "$runs"); do
  out=$(bash "$src/tests/integration/test_ha_etcd.sh" 2>&1) || { echo "$out" | tail -20 >&2; exit 1; }
  f=$(echo "$out" | sed -n 's/^failover: .* first action \([0-9.]*\)s.*/\1/p')
  out=$(bash "$src/tests/integration/test_ha_etcd_ops.sh" 2>&1) || { echo "$out" | tail -20 >&2; exit 1; }
  h=$(echo "$out" | sed -n 's/^sigterm handover: \([0-9.]*\)s .*/\1/p')
  t=$(echo "$out" | sed -n 's/^sigterm handover: .* (\([0-9.]*\)s after SIGTERM.*/\1/p')
  echo "run $i: kill -9 failover ${f}s; SIGTERM handover ${h}s after the drain (${t}s after the signal)"
  kill9+=("$f")
  term+=("$h")
done
printf '%s\n' "${kill9[@]}" | summary "kill -9 failover" "target <= $((HA_TTL + 1))s"
printf '%s\n' "${term[@]}" | summary "SIGTERM handover" "lease revoked: one follower poll"
