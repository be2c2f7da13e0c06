#!/usr/bin/env bash
# steward + market_akash end to end against a real `steward market serve` over HTTP on
# 127.0.0.1 (free port, API key from the environment), with fast providers:
#   - a policy asking for N units in 2 regions → exactly 2N active leases on the server, every
#     one ready and from the lowest-price provider of its region;
#   - the desired count lowered (policy file rewritten + SIGHUP) → the surplus deployments are
#     closed on the server (close_cause owner), nothing bought in the meantime;
#   - a provider closing all its leases → unit_lost → the unit replaced by another provider;
#   - the API key never appears in steward's log or journal.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
new_workdir
. "$SW_SOURCE_DIR/tests/integration/akash_lib.sh"
CHEAP_EU=akash1e2eeuwest0cheap000000000000000000000a1
CHEAP_AS=akash1e2easeast0cheap000000000000000000000c3

ak_server_start --speed 1
cp "$AK_FIX/steady.lua" "$WORKDIR/steady.lua"
# min_bids 0: the whole 1 s window is waited, so every provider has bid before the choice.
ak_config steady.lua 1s 0 12
log=$WORKDIR/steward.log
(cd "$WORKDIR" && exec "$STEWARD_BIN" run -c steward.jsonc 2>>"$log") &
STEWARD_PID=$!
SW_TEST_PIDS+=("$STEWARD_PID")

# --- N = 2 per region: 4 ready leases, each from its region's cheapest provider.
four_ready() {
  [ "$(ak_ours 'map(select(.leases[0].state == "active" and .leases[0].ready_ms != null)) | length')" = 4 ]
}
ak_wait 30 "4 ready leases" four_ready
sleep 1.5 # a few more policy passes: still exactly 4, nothing extra bought
ak_state
[ "$(ak_ours)" = 4 ] || fail "expected exactly 4 active deployments, got $(ak_ours)"
total=$(jq '[.data.deployments[] | select(.env.STEWARD_TAG == "e2etag")] | length' "$WORKDIR/state.json")
[ "$total" = 4 ] || fail "4 units wanted but $total deployments created"
bad=$(ak_ours "map(select(.leases[0].provider != \"$CHEAP_EU\" and .leases[0].provider != \"$CHEAP_AS\")) | map(.dseq) | join(\" \")")
[ -z "$bad" ] || fail "deployments not leased from the lowest-price provider: $bad"
[ "$(ak_ours "map(select(.leases[0].provider == \"$CHEAP_EU\")) | length")" = 2 ] ||
  fail "eu-west does not have 2 units on its cheapest provider"
[ "$(ak_ours "map(select(.leases[0].provider == \"$CHEAP_AS\")) | length")" = 2 ] ||
  fail "as-east does not have 2 units on its cheapest provider"
[ "$(ak_ours 'map(.bids | length) | min')" -ge 2 ] || fail "the choice was made before both bids"

# --- N = 1 per region: two deployments closed by their owner, two kept.
sed -i 's/^local N = 2$/local N = 1/' "$WORKDIR/steady.lua"
kill -HUP "$STEWARD_PID"
two_left() { [ "$(ak_ours)" = 2 ]; }
ak_wait 20 "the surplus released" two_left
closed=$(jq '[.data.deployments[] | select(.env.STEWARD_TAG == "e2etag" and .state == "closed" and .close_cause == "owner")] | length' "$WORKDIR/state.json")
[ "$closed" = 2 ] || fail "expected 2 deployments closed by steward, got $closed"
sleep 1
ak_state
[ "$(ak_ours)" = 2 ] || fail "after the release the count moved to $(ak_ours)"
[ "$(jq '[.data.deployments[] | select(.env.STEWARD_TAG == "e2etag")] | length' "$WORKDIR/state.json")" = 4 ] ||
  fail "a deployment was bought while releasing"

# --- the eu-west provider closes all its leases: unit_lost, replaced by another provider.
lost_dseq=$(ak_ours "map(select(.leases[0].provider == \"$CHEAP_EU\")) | .[0].dseq")
[ -n "$lost_dseq" ] && [ "$lost_dseq" != null ] || fail "no eu-west unit to lose"
ak_admin POST "/_steward/providers/$CHEAP_EU/close-all" '{"reason": "lease_closed_reason_unstable"}' >/dev/null
replaced() {
  [ "$(ak_ours "map(select(.dseq != \"$lost_dseq\" and .leases[0].state == \"active\" and .leases[0].ready_ms != null)) | length")" = 2 ] &&
    [ "$(ak_ours "map(select(.dseq == \"$lost_dseq\")) | length")" = 0 ]
}
ak_wait 30 "the lost unit replaced" replaced
grep -q "$lost_dseq" <(grep -i 'lost' "$log") || fail "no unit_lost logged for $lost_dseq"
new_provider=$(ak_ours "map(select(.leases[0].provider != \"$CHEAP_AS\")) | .[0].leases[0].provider")
[ "$new_provider" != "$CHEAP_EU" ] || fail "the replacement went back to the provider that closed it"
[ "$(ak_ours)" = 2 ] || fail "expected 2 units after the replacement, got $(ak_ours)"

kill -TERM "$STEWARD_PID"
wait "$STEWARD_PID" || fail "steward did not stop cleanly"
if grep -aq "$STEWARD_MARKET_API_KEY" "$log" "$WORKDIR"/steward.db*; then
  fail "the API key appears in steward's log or journal"
fi
ak_server_stop
echo "ok: 4 ready on the cheapest providers, 2 released, lost $lost_dseq replaced on $new_provider"
