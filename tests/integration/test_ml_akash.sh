#!/usr/bin/env bash
# ML batch end to end over real HTTP: a job master stand-in (an HTTP server whose job list
# this script rewrites), steward with market_akash, jobs_http and policies/ml_batch.lua, and
# `steward market serve` with two GPU providers in the master's region: the master's own
# (slow to bid, 6 slots) and a cheaper, faster one that must never get a worker (placement
# pinned by provider_env = AKASH_PROVIDER → only_providers). Real time. Asserted:
#   1. a job starting with 4 workers produces exactly 4 ready leases on the master's
#      provider within poll + bid + ready delays, and no more while the slow bids keep them
#      pending over several evaluations;
#   2. the provider closing one worker mid-job: that unit is lost and replaced on the
#      master's provider, 4 again, one deployment more in all;
#   3. marking the job done closes all 4 within one evaluation interval of job_done;
#   4. a gang that cannot be filled (8 workers, 6 slots) is rolled back at its deadline with
#      zero leases left, none of them ever placed elsewhere.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool python3
require_tool sqlite3
new_workdir
. "$SW_SOURCE_DIR/tests/integration/akash_lib.sh"
FIX=$SW_SOURCE_DIR/tests/integration/fixtures
MASTER=akash1mlmaster00000000000000000000000000a1
INTERVAL_MS=300 # policy interval
POLL_MS=200     # jobs_http poll
BID_MS=1500     # the master's bid_delay
READY_MS=300    # the master's ready_delay
SLACK_MS=2500   # HTTP round trips, creates in series, a loaded machine

AK_FIX=$FIX/ml_akash
ak_server_start --speed 1

set_jobs() { # atomically, so the master never serves half a file
  printf '%s\n' "$1" >"$WORKDIR/jobs.json.tmp"
  mv "$WORKDIR/jobs.json.tmp" "$WORKDIR/jobs.json"
}
set_jobs '{"jobs": []}'
python3 "$FIX/job_master.py" "$WORKDIR/jobs.json" "$WORKDIR/master.port" &
SW_TEST_PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$WORKDIR/master.port" ] && break; sleep 0.05; done
[ -s "$WORKDIR/master.port" ] || fail "the job master stand-in did not start"

sed -e "s|@PORT@|$SRV_PORT|" -e "s|@MASTER_PORT@|$(cat "$WORKDIR/master.port")|" \
    -e "s|@POLICY@|$SW_SOURCE_DIR/policies/ml_batch.lua|" \
    -e "s|@SDL@|$SW_SOURCE_DIR/examples/ml/worker-gpu.sdl.yaml|" \
    "$AK_FIX/steward.jsonc" >"$WORKDIR/steward.jsonc"
export AKASH_PROVIDER=$MASTER
log=$WORKDIR/steward.log
(cd "$WORKDIR" && exec "$STEWARD_BIN" run -c steward.jsonc 2>>"$log") &
STEWARD_PID=$!
SW_TEST_PIDS+=("$STEWARD_PID")

q() { sqlite3 -cmd ".timeout 2000" "$WORKDIR/steward.db" "$1"; }
# Our workers on the server: the example SDL tags each with STEWARD_GROUP=workers.
ours() {
  jq -r "[.data.deployments[] | select(.env.STEWARD_GROUP == \"workers\")] | ${1:-length}" \
    "$WORKDIR/state.json"
}
active_ready() {
  ours "map(select(.state == \"active\" and .leases[0].state == \"active\" and
                   .leases[0].ready_ms != null)) | length"
}
elsewhere() { ours "map(.leases[]? | select(.provider != \"$MASTER\")) | length"; }
# wait_sql SQL EXPECTED SECONDS: poll steward's journal until SQL returns EXPECTED.
wait_sql() {
  local got="" end=$((SECONDS + $3))
  until got=$(q "$1" 2>/dev/null) && [ "$got" = "$2" ]; do
    [ "$SECONDS" -lt "$end" ] || fail "waited $3 s for [$1] = $2, last got [$got]"
    kill -0 "$STEWARD_PID" 2>/dev/null || fail "steward exited early"
    sleep 0.05
  done
}
wait_sql "SELECT count(*) > 0 FROM evaluations" 1 15

# ---- 1. a job of 4 workers: exactly 4 leases on the master's provider ---------------
set_jobs '{"jobs": [{"id": "train-1", "state": "running", "workers": 4, "gpus_per_worker": 1}]}'
four_ready() { [ "$(active_ready)" = 4 ]; }
ak_wait 20 "4 ready workers" four_ready
started=$(q "SELECT min(at_ms) FROM events WHERE type='job_started'")
[ -n "$started" ] || fail "no job_started event in the journal"
wait_sql "SELECT count(*) FROM units WHERE group_name='workers' AND state = 3" 4 5
last_ready=$(q "SELECT max(ready_ms) FROM units WHERE group_name='workers'")
bound=$((POLL_MS + BID_MS + READY_MS + SLACK_MS))
took=$((last_ready - started))
[ "$took" -le "$bound" ] || fail "4 workers ready ${took} ms after the job started (bound ${bound} ms)"
evals=$(q "SELECT count(*) FROM evaluations WHERE at_ms BETWEEN $started AND $last_ready")
[ "$evals" -ge 3 ] || fail "only $evals evaluations while the bids were pending: slow bids not exercised"
sleep 1.5 # five more evaluations with everything settled: still exactly 4 bought
ak_state
[ "$(ours)" = 4 ] || fail "$(ours) deployments created for a job of 4 workers (bought twice?)"
[ "$(active_ready)" = 4 ] || fail "$(active_ready) ready workers, expected 4"
[ "$(elsewhere)" = 0 ] || fail "$(elsewhere) leases away from the master's provider"
[ "$(ours 'map(.bids[]? | select(.provider != "'"$MASTER"'")) | length')" -ge 1 ] ||
  fail "the cheaper provider never bid: the pinning was not exercised"
echo "ok 1: 4 workers on $MASTER in ${took} ms (bound ${bound}), $evals evaluations while pending"

# ---- 2. the provider closes one worker: replaced on the master's provider ----------
lost=$(ours 'map(select(.state == "active")) | .[0].dseq')
out=$(ak_admin POST "/_steward/providers/$MASTER/close-all" "{\"dseq\": \"$lost\"}")
[ "$(jq -r .data.closed <<<"$out")" = 1 ] || fail "close one lease: $out"
replaced() {
  [ "$(active_ready)" = 4 ] && [ "$(ours)" = 5 ] &&
    [ "$(ours "map(select(.dseq == \"$lost\" and .state == \"active\")) | length")" = 0 ]
}
ak_wait 20 "the lost worker replaced" replaced
grep -q "$lost" <(grep -i 'lost' "$log") || fail "no unit_lost logged for $lost"
[ "$(elsewhere)" = 0 ] || fail "the replacement went away from the master's provider"
sleep 1
ak_state
[ "$(ours)" = 5 ] || fail "$(ours) deployments after one replacement, expected 5"
echo "ok 2: lost $lost replaced on $MASTER, 4 ready, 5 deployments in all"

# ---- 3. done: all 4 closed within one evaluation interval --------------------------
released_before=$(q "SELECT count(*) FROM events WHERE type='unit_released'")
set_jobs '{"jobs": [{"id": "train-1", "state": "done", "workers": 4, "gpus_per_worker": 1}]}'
none_active() { [ "$(ours 'map(select(.state == "active")) | length')" = 0 ]; }
ak_wait 10 "every worker closed" none_active
[ "$(ours 'map(select(.close_cause == "owner")) | length')" = 5 ] ||
  fail "expected all 5 deployments closed by steward"
wait_sql "SELECT count(*) FROM events WHERE type='unit_released'" $((released_before + 4)) 5
done_at=$(q "SELECT min(at_ms) FROM events WHERE type='job_done'")
[ -n "$done_at" ] || fail "no job_done event in the journal"
last_release=$(q "SELECT max(at_ms) FROM events WHERE type='unit_released'")
lag=$((last_release - done_at))
[ "$lag" -le $((INTERVAL_MS + 700)) ] ||
  fail "last worker released ${lag} ms after job_done (interval ${INTERVAL_MS} ms)"
echo "ok 3: 4 workers released ${lag} ms after job_done"

# ---- 4. a gang that cannot be filled is rolled back to zero ------------------------
set_jobs '{"jobs": [{"id": "train-1", "state": "done", "workers": 4},
                    {"id": "train-2", "state": "running", "workers": 8, "gpus_per_worker": 1}]}'
for _ in $(seq 1 400); do
  grep -q 'job train-2: gang of 8 not filled in 10s' "$log" && break
  kill -0 "$STEWARD_PID" 2>/dev/null || fail "steward exited early"
  sleep 0.05
done
grep -q 'job train-2: gang of 8 not filled in 10s (6 ready)' "$log" ||
  fail "the unfillable gang was not rolled back with 6 ready"
ak_wait 10 "the rolled-back gang closed" none_active
sleep 1 # more evaluations: nothing is bought again (retry_after_s is an hour)
ak_state
[ "$(ours 'map(select(.state == "active")) | length')" = 0 ] ||
  fail "workers bought again after the rollback"
[ "$(elsewhere)" = 0 ] || fail "$(elsewhere) leases away from the master's provider"
[ "$(q "SELECT count(*) FROM units WHERE group_name='workers' AND state != 4")" = 0 ] ||
  fail "steward's journal still holds open workers"
echo "ok 4: gang of 8 rolled back at its deadline, $(ours) deployments in all, zero active"

kill -TERM "$STEWARD_PID"
wait "$STEWARD_PID" || fail "steward did not stop cleanly"
ak_server_stop
