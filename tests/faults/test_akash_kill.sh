#!/usr/bin/env bash
# Crash safety against a real marketplace server: `steward run` with market_akash against
# `steward market serve` on 127.0.0.1, a churn policy buying and releasing, kill -9 at random
# moments and restart on the same journal and the same server state. Checked from the
# server's own state (GET /_steward/state, deployments recognised by STEWARD_TAG /
# STEWARD_UNIT_KEY in their SDL env):
#   - at every kill: every deployment of ours (open or closed) has exactly one journaled intent (intent
#     before action);
#   - over the whole run: no unit key leased more than one deployment (nothing bought twice);
#   - one deployment ever created per intent (unit key), counted over every deployment the
#     server ever made (closed ones included). The one allowed exception is a create whose
#     answer never reached the journal (kill -9 between the server applying the POST and
#     steward recording its reply, or a reply dropped after applying): the contract returns
#     the manifest only in that answer and POST /v1/leases needs it byte for byte, so such
#     a deployment can never be leased and is closed, and the intent creates again. Each
#     such extra deployment must be closed, never leased, and named with its unit key in
#     steward's "create whose answer was lost" log line; they are counted and printed;
#   - at the end, after a settling run asking for 0: the server's open deployments of ours
#     equal the journal's open units, and both are empty; no intent left pending;
#   - zero foreign deployments closed: every deployment not tagged ours (a foreign one
#     created with curl at the start) is still open, none closed by its owner.
# Kills: STEWARD_KILLS (default 12), STEWARD_SOAK=1 for 50. AKASH_KILL_FAULTS=1 also turns
# the server's faults on (10% 5xx, 5% 429, 3% malformed, 3% dropped after applying).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool sqlite3
kills=${STEWARD_KILLS:-12}
[ "${STEWARD_SOAK:-0}" = 1 ] && kills=50
new_workdir
. "$SW_SOURCE_DIR/tests/integration/akash_lib.sh"
log=$WORKDIR/steward.log
db=$WORKDIR/steward.db

ak_server_start --speed 1
cp "$AK_FIX/churn.lua" "$WORKDIR/churn.lua"
ak_config churn.lua 1s 1 12

# The foreign deployment: same account, another tool's tag.
sdl=$(sed -e 's/{{key}}/someone-else-1/' -e 's/{{tag}}/other-tool/' \
          -e 's/{{region}}/eu-west/' -e 's/{{max_price_uact}}/1000/' "$AK_FIX/web.sdl.yaml")
foreign=$(curl -sS --max-time 10 -H "x-api-key: $STEWARD_MARKET_API_KEY" \
  -H 'content-type: application/json' -X POST "http://127.0.0.1:$SRV_PORT/v1/deployments" \
  --data-binary "$(jq -n --arg s "$sdl" '{data: {sdl: $s, deposit: 1}}')" | jq -r .data.dseq)
[[ $foreign =~ ^[0-9]+$ ]] || fail "could not create the foreign deployment"
# docs/market_akash.md: a deployment created on the same account within 10 s of a create
# whose answer was lost is taken for steward's; keep the foreign one out of that window.
sleep 10.5
if [ "${AKASH_KILL_FAULTS:-0}" = 1 ]; then
  ak_admin POST /_steward/faults \
    '{"rate_5xx": 0.1, "rate_429": 0.05, "rate_malformed": 0.03, "rate_drop": 0.03}' >/dev/null
fi

check_intent_before_action() {
  ak_state
  local keys k n
  keys=$(jq -r '.data.deployments[] | select(.env.STEWARD_TAG == "e2etag") | .env.STEWARD_UNIT_KEY' "$WORKDIR/state.json")
  for k in $keys; do
    n=$(sqlite3 "$db" "SELECT count(*) FROM intents WHERE key='$k' AND kind=1" 2>/dev/null || echo x)
    [ "$n" = 1 ] || fail "deployment of unit $k has $n acquire intents after kill $1"
  done
}

# drop_window: for 2.5 s every answer is lost after the server applied the request (as a
# kill between the POST and the journal update, but without the kill): the creates in that
# window leave deployments whose answers never arrive; they must come out as the allowed,
# logged case below, never as a silent second deployment.
drop_window() {
  sleep 1.5 # past the start-up listing, into the buying
  ak_admin POST /_steward/faults '{"rate_drop": 1}' >/dev/null
  sleep 2.5
  local rate=0
  [ "${AKASH_KILL_FAULTS:-0}" = 1 ] && rate=0.03
  ak_admin POST /_steward/faults "{\"rate_drop\": $rate}" >/dev/null
  sleep 3
}

for i in $(seq 1 "$kills"); do
  (cd "$WORKDIR" && exec "$STEWARD_BIN" run -c steward.jsonc 2>>"$log") &
  pid=$!
  [ "$i" = 2 ] && drop_window
  sleep "$(python3 -c "import random; print(round(random.uniform(0.3, 2.5), 2))")"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  check_intent_before_action "$i"
done

# Settle: the same loop asked for nothing.
sed -i 's/if ctx.params.drain then/if true then/' "$WORKDIR/churn.lua"
settled() {
  [ "$(ak_ours)" = 0 ] &&
    [ "$(sqlite3 "$db" "SELECT count(*) FROM units WHERE state != 4")" = 0 ] &&
    [ "$(sqlite3 "$db" "SELECT count(*) FROM intents WHERE state = 0")" = 0 ]
}
(cd "$WORKDIR" && exec "$STEWARD_BIN" run -c steward.jsonc 2>>"$log") &
pid=$!
SW_TEST_PIDS+=("$pid")
ak_wait 30 "the drained run to settle" settled
kill -TERM "$pid"
wait "$pid" || fail "the settling run did not stop cleanly"
ak_state

ours_market=$(ak_ours 'map(.dseq) | sort | join(" ")')
ours_journal=$(sqlite3 "$db" "SELECT market_id FROM units WHERE state != 4 ORDER BY 1" | tr '\n' ' ')
[ "$ours_market" = "${ours_journal% }" ] ||
  fail "server and journal disagree: server [$ours_market] journal [$ours_journal]"
pending=$(sqlite3 "$db" "SELECT count(*) FROM intents WHERE state = 0")
[ "$pending" = 0 ] || fail "$pending intents still pending"

# Nothing bought twice: no unit key with more than one leased deployment.
twice=$(jq -r '[.data.deployments[] | select(.env.STEWARD_TAG == "e2etag" and (.leases | length) > 0)]
  | group_by(.env.STEWARD_UNIT_KEY) | map(select(length > 1) | .[0].env.STEWARD_UNIT_KEY) | join(" ")' "$WORKDIR/state.json")
[ -z "$twice" ] || fail "unit keys leased more than once: $twice"
# One deployment ever created per intent, but for lost create answers (see the top).
# extra: for every key, all its deployments but the last one created.
extra=$(jq -r '[.data.deployments[] | select(.env.STEWARD_TAG == "e2etag")]
  | group_by(.env.STEWARD_UNIT_KEY)[] | select(length > 1) | sort_by(.created_ms) | .[:-1][]
  | "\(.dseq) \(.env.STEWARD_UNIT_KEY) \(.state) \(.leases | length)"' "$WORKDIR/state.json")
lost=0
while read -r dseq key state leases; do
  [ -n "$dseq" ] || continue
  [ "$state" = closed ] || fail "unit $key has a second deployment $dseq still $state"
  [ "$leases" = 0 ] || fail "unit $key: extra deployment $dseq was leased ($leases leases)"
  grep -aq "deployment $dseq was created for unit $key by a create whose answer was lost" "$log" ||
    fail "unit $key has two deployments and $dseq is not a logged lost create answer"
  echo "allowed: unit $key: deployment $dseq made by a create whose answer was lost, closed unleased"
  lost=$((lost + 1))
done <<<"$extra"
[ "$lost" -gt 0 ] || echo "note: the lost-answer window caught no create this time (the policy was not buying)"
created=$(jq '[.data.deployments[] | select(.env.STEWARD_TAG == "e2etag")] | length' "$WORKDIR/state.json")
[ "$created" -ge "$kills" ] || fail "only $created deployments in $kills runs: the test did not exercise buying"

fstate=$(jq -r ".data.deployments[] | select(.dseq == \"$foreign\") | .state" "$WORKDIR/state.json")
[ "$fstate" = active ] || fail "the foreign deployment $foreign was touched (state $fstate)"
fclosed=$(jq '[.data.deployments[] | select(.env.STEWARD_TAG != "e2etag" and .close_cause == "owner")] | length' "$WORKDIR/state.json")
[ "$fclosed" = 0 ] || fail "$fclosed foreign deployments were closed by their owner"
[ "$(jq -r ".data.deployments[] | select(.dseq == \"$foreign\") | .env.STEWARD_TAG" "$WORKDIR/state.json")" = other-tool ] ||
  fail "the foreign deployment lost its tag"
if grep -aq "$STEWARD_MARKET_API_KEY" "$log" "$db"*; then fail "the API key leaked"; fi
ak_server_stop
echo "ok: $kills kills, $created deployments created, $lost extra deployments from lost create answers (closed unleased, logged), 0 bought twice, 0 foreign closed"
