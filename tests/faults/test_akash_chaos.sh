#!/usr/bin/env bash
# market_akash under a misbehaving marketplace: `steward market serve` on 127.0.0.1 with
# faults switched on at runtime (POST /_steward/faults: 20% 5xx, 10% 429, 5% malformed
# bodies, latency spikes) and a steady policy asking for 3 units in each of 2 regions while
# the guard allows max_leases 5 and a budget. Checked:
#   - steward converges to 5 ready units (the guard's clamp) within a bounded time;
#   - sampled all along on the server: active leases of ours never exceed max_leases, their
#     spend never exceeds the budget; the journal never has more than max_leases open units;
#   - steward never crashes (alive at the end, clean exit on SIGTERM);
#   - every deployment of ours on the server has its acquire intent in the journal, the
#     journal's open units are exactly the server's leased deployments, and every
#     deployment of ours that is not a journaled open unit has been closed.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool sqlite3
new_workdir
. "$SW_SOURCE_DIR/tests/integration/akash_lib.sh"
log=$WORKDIR/steward.log
db=$WORKDIR/steward.db
MAX=5
BUDGET=0.3

ak_server_start --speed 1
ak_admin POST /_steward/faults '{"rate_5xx": 0.2, "rate_429": 0.1, "rate_malformed": 0.05,
  "latency_spike_ms": 1200, "latency_spike_rate": 0.05}' >"$WORKDIR/faults.json"
jq -e '.data.rate_5xx == 0.2 and .data.rate_malformed == 0.05' "$WORKDIR/faults.json" >/dev/null ||
  jq -e '.rate_5xx == 0.2' "$WORKDIR/faults.json" >/dev/null || fail "faults not set: $(cat "$WORKDIR/faults.json")"
sed 's/^local N = 2$/local N = 3/' "$AK_FIX/steady.lua" >"$WORKDIR/steady.lua"
ak_config steady.lua 1s 1 "$MAX"
sed -i "s/\"guard\": { \"max_leases\": $MAX }/\"guard\": { \"max_leases\": $MAX, \"budget_usd_hour\": $BUDGET }/" \
  "$WORKDIR/steward.jsonc"
grep -q budget_usd_hour "$WORKDIR/steward.jsonc" || fail "budget not configured"

(cd "$WORKDIR" && exec "$STEWARD_BIN" run -c steward.jsonc 2>>"$log") &
STEWARD_PID=$!
SW_TEST_PIDS+=("$STEWARD_PID")

# Limits, sampled on the server and in the journal at every poll.
limits_ok() {
  local leases spend open
  leases=$(ak_ours 'map(select(.leases | any(.state == "active"))) | length')
  spend=$(ak_ours '[.[].leases[] | select(.state == "active") | (.price_uact | tonumber) * 600 / 1e6] | add // 0')
  [ "$leases" -le "$MAX" ] || fail "$leases active leases on the server, max_leases $MAX"
  awk -v s="$spend" -v b="$BUDGET" 'BEGIN { exit !(s <= b + 1e-9) }' ||
    fail "server-side spend $spend USD/h over the budget $BUDGET"
  open=$(sqlite3 "$db" "SELECT count(*) FROM units WHERE state != 4" 2>/dev/null || echo 0)
  [ "$open" -le "$MAX" ] || fail "$open open units in the journal, max_leases $MAX"
  kill -0 "$STEWARD_PID" 2>/dev/null || fail "steward died"
}
converged() {
  limits_ok
  [ "$(ak_ours 'map(select(.leases | any(.state == "active" and .ready_ms != null))) | length')" = "$MAX" ] &&
    [ "$(sqlite3 "$db" "SELECT count(*) FROM units WHERE state != 4 AND market_id IS NOT NULL")" = "$MAX" ]
}
start=$SECONDS
ak_wait 60 "convergence to $MAX ready units under faults" converged
took=$((SECONDS - start))
# Stay converged for a while under the same faults (orphans of lost creates get closed).
end=$((SECONDS + 4))
while [ "$SECONDS" -lt "$end" ]; do ak_state; limits_ok; sleep 0.2; done
consistent() {
  limits_ok
  local server journal
  server=$(ak_ours 'map(.dseq) | sort | join(" ")')
  journal=$(sqlite3 "$db" "SELECT market_id FROM units WHERE state != 4 ORDER BY 1" | tr '\n' ' ')
  [ "$server" = "${journal% }" ]
}
ak_wait 30 "server and journal to agree" consistent
ak_ours 'map(select(.leases | any(.state == "active" and .ready_ms != null))) | length' | grep -qx "$MAX" ||
  fail "fell below $MAX ready units"

# Every deployment of ours was journaled as an acquire intent first.
for k in $(jq -r '.data.deployments[] | select(.env.STEWARD_TAG == "e2etag") | .env.STEWARD_UNIT_KEY' "$WORKDIR/state.json" | sort -u); do
  [ "$(sqlite3 "$db" "SELECT count(*) FROM intents WHERE key='$k' AND kind=1")" = 1 ] ||
    fail "deployment of $k without its acquire intent"
done
requests=$(jq '.data.requests' "$WORKDIR/state.json")
injected=$(jq '.injected_5xx + .injected_429 + .injected_malformed' <<<"$requests")
[ "$injected" -ge 5 ] || fail "too few faults injected to mean anything: $requests"

kill -TERM "$STEWARD_PID"
wait "$STEWARD_PID" || fail "steward did not stop cleanly"
if grep -aq "$STEWARD_MARKET_API_KEY" "$log" "$db"*; then fail "the API key leaked"; fi
created=$(jq '[.data.deployments[] | select(.env.STEWARD_TAG == "e2etag")] | length' "$WORKDIR/state.json")
ak_server_stop
echo "ok: converged to $MAX in ${took}s under $(jq -c '{total,injected_5xx,injected_429,injected_malformed,delayed}' <<<"$requests"); $created deployments created"
