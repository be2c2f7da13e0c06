#!/usr/bin/env bash
# ML batch end to end: a job master stand-in (an HTTP server whose job list this script
# rewrites), steward with market_sim, jobs_http and policies/ml_batch.lua, time compressed
# tenfold. Two providers share the region: the master's (dear, slow to bid, 6 slots) and a
# cheaper, faster one that must never get a worker. Asserted:
#   1. a job starting with 4 workers produces exactly 4 units, all on the master's provider,
#      ready within one evaluation + create + bid + ready delays, and no more while the
#      slow bids keep them pending over several evaluations;
#   2. marking it done releases all 4 within one evaluation interval of the job_done event;
#   3. a gang that cannot be filled (8 workers, 6 slots) is rolled back at its deadline
#      with zero units left, none of them placed elsewhere.
# All times below are simulated (journal at_ms); real time is a tenth.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool python3
require_tool sqlite3
require_steward

MASTER=akash1master0000000000000000000000000000a
INTERVAL_MS=2000   # policy interval
CREATE_MS=200      # market_sim create_delay
BID_MS=5000        # the master's provider bid_delay
READY_MS=2000      # the master's provider ready_delay
SLACK_MS=3000      # scheduling jitter at 10x (300 ms of real time)

new_workdir
work=$WORKDIR
fixtures="$SW_SOURCE_DIR/tests/integration/fixtures"
cp "$fixtures/ml_providers.json" "$work/"
db="$work/ml.db"
log="$work/steward.log"

set_jobs() { # atomically, so the master never serves half a file
  printf '%s\n' "$1" >"$work/jobs.json.tmp"
  mv "$work/jobs.json.tmp" "$work/jobs.json"
}
set_jobs '{"jobs": []}'

python3 "$fixtures/job_master.py" "$work/jobs.json" "$work/port" &
SW_TEST_PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.05; done
[ -s "$work/port" ] || fail "the job master stand-in did not start"
port=$(cat "$work/port")

cat >"$work/steward.jsonc" <<EOF
{
  "id": "mltest",
  "state": "ml.db",
  "seed": 3,
  "market": "market_sim",
  "plugins": {
    "market_sim": { "providers_file": "ml_providers.json", "create_delay": "${CREATE_MS}ms",
                    "bid_window": "10s", "persist": false },
    "jobs_http": { "url": "http://127.0.0.1:${port}/jobs", "poll_interval": "1s",
                   "timeout": "1s" }
  },
  "metrics": {
    "jobs": { "plugin": "jobs_http", "query": "jobs", "every": "1s" },
    "jobs_gpus": { "plugin": "jobs_http", "query": "jobs_gpus", "every": "1s" }
  },
  "groups": {
    "workers": { "min": 0, "max": 8, "regions": ["eu-west"], "provider_env": "AKASH_PROVIDER",
                 "acquire_deadline": "60s",
                 "profile": { "gpu": { "units": 1, "vendor": "nvidia", "model": "a100" } } }
  },
  "policies": [
    { "name": "ml", "file": "$SW_SOURCE_DIR/policies/ml_batch.lua", "interval": "${INTERVAL_MS}ms",
      "params": { "group": "workers", "gang_deadline_s": 30, "retry_after_s": 3600,
                  "idle_timeout_s": 3600 } }
  ]
}
EOF

export AKASH_PROVIDER=$MASTER
"$STEWARD_BIN" check -c "$work/steward.jsonc" >/dev/null || fail "steward check refused the config"
# The shipped example stays valid, and refuses to run unpinned.
"$STEWARD_BIN" check -c "$SW_SOURCE_DIR/examples/ml/steward.jsonc" >/dev/null ||
  fail "examples/ml/steward.jsonc does not check"
if env -u AKASH_PROVIDER "$STEWARD_BIN" check -c "$SW_SOURCE_DIR/examples/ml/steward.jsonc" \
    2>"$work/unpinned.txt"; then
  fail "examples/ml/steward.jsonc checked without AKASH_PROVIDER"
fi
grep -q 'groups.workers.provider_env: environment variable AKASH_PROVIDER is not set' \
  "$work/unpinned.txt" || fail "unexpected refusal: $(cat "$work/unpinned.txt")"
"$STEWARD_BIN" run -c "$work/steward.jsonc" --speed 10 --for 600s 2>"$log" &
steward_pid=$!
SW_TEST_PIDS+=("$steward_pid")

q() { sqlite3 -cmd ".timeout 2000" "$db" "$1"; }
# wait_for SQL EXPECTED SECONDS: poll the journal until SQL returns EXPECTED.
wait_for() {
  local got=""
  for _ in $(seq 1 $(($3 * 20))); do
    got=$(q "$1" 2>/dev/null || true)
    [ "$got" = "$2" ] && return 0
    kill -0 "$steward_pid" 2>/dev/null || fail "steward exited early"
    sleep 0.05
  done
  fail "waited $3 s for [$1] = $2, last got [$got]"
}
open_workers="SELECT count(*) FROM units WHERE group_name='workers' AND state != 4"

wait_for "SELECT count(*) > 0 FROM evaluations" 1 10

# ---- 1. a job of 4 workers: exactly 4 units on the master's provider ----------------
set_jobs '{"jobs": [{"id": "train-1", "state": "running", "workers": 4, "gpus_per_worker": 8}]}'
wait_for "SELECT count(*) FROM units WHERE group_name='workers' AND state = 3" 4 10
started=$(q "SELECT min(at_ms) FROM events WHERE type='job_started'")
[ -n "$started" ] || fail "no job_started event in the journal"
last_ready=$(q "SELECT max(ready_ms) FROM units WHERE group_name='workers'")
bound=$((INTERVAL_MS + CREATE_MS + BID_MS + READY_MS + SLACK_MS))
took=$((last_ready - started))
[ "$took" -le "$bound" ] || fail "4 workers ready ${took} ms after the job started (bound ${bound} ms)"
# Several more evaluations with everything settled: still exactly 4 bought.
sleep 1
acquires=$(q "SELECT count(*) FROM intents WHERE kind=1 AND group_name='workers'")
[ "$acquires" = 4 ] || fail "$acquires acquires for a job of 4 workers (bought twice?)"
[ "$(q "$open_workers")" = 4 ] || fail "$(q "$open_workers") open workers, expected 4"
elsewhere=$(q "SELECT count(*) FROM units WHERE provider IS NOT NULL AND provider != '$MASTER'")
[ "$elsewhere" = 0 ] || fail "$elsewhere workers placed away from the master's provider"
created=$(grep -c 'created for workers in eu-west' "$log" || true)
[ "$created" = 4 ] || fail "$created deployments created, expected 4"
evals=$(q "SELECT count(*) FROM evaluations WHERE at_ms BETWEEN $started AND $last_ready")
[ "$evals" -ge 3 ] || fail "only $evals evaluations while the bids were pending: slow bids not exercised"
echo "ok 1: 4 workers on $MASTER in ${took} ms (bound ${bound}), $evals evaluations while pending, 4 acquires"

# ---- 2. done: all 4 released within one evaluation interval -----------------------
set_jobs '{"jobs": [{"id": "train-1", "state": "done", "workers": 4, "gpus_per_worker": 8}]}'
wait_for "$open_workers" 0 10
done_at=$(q "SELECT min(at_ms) FROM events WHERE type='job_done'")
[ -n "$done_at" ] || fail "no job_done event in the journal"
released=$(q "SELECT count(*) FROM events WHERE type='unit_released'")
[ "$released" = 4 ] || fail "$released units released, expected 4"
last_release=$(q "SELECT max(at_ms) FROM events WHERE type='unit_released'")
lag=$((last_release - done_at))
[ "$lag" -le $((INTERVAL_MS + SLACK_MS / 2)) ] ||
  fail "last worker released ${lag} ms after job_done (interval ${INTERVAL_MS} ms)"
echo "ok 2: 4 workers released ${lag} ms after job_done"

# ---- 3. a gang that cannot be filled is rolled back to zero -----------------------
set_jobs '{"jobs": [{"id": "train-1", "state": "done", "workers": 4},
                    {"id": "train-2", "state": "running", "workers": 8, "gpus_per_worker": 8}]}'
wait_for "SELECT count(*) FROM units WHERE group_name='workers' AND state = 3" 6 15
for _ in $(seq 1 200); do
  grep -q 'job train-2: gang of 8 not filled in 30s' "$log" && break
  kill -0 "$steward_pid" 2>/dev/null || fail "steward exited early"
  sleep 0.05
done
grep -q 'job train-2: gang of 8 not filled in 30s (6 ready)' "$log" ||
  fail "the unfillable gang was not rolled back"
wait_for "$open_workers" 0 10
sleep 1 # a few more evaluations: nothing is bought again (retry_after_s is an hour)
[ "$(q "$open_workers")" = 0 ] || fail "workers bought again after the rollback"
elsewhere=$(q "SELECT count(*) FROM units WHERE provider IS NOT NULL AND provider != '$MASTER'")
[ "$elsewhere" = 0 ] || fail "$elsewhere workers placed away from the master's provider"
pending=$(q "SELECT count(*) FROM intents WHERE state = 0")
[ "$pending" = 0 ] || fail "$pending intents still pending after the rollback"
rolled=$(q "SELECT count(*) FROM units WHERE group_name='workers' AND state = 4 AND ready_ms > 0
            AND ordered_ms > $last_release")
echo "ok 3: gang of 8 rolled back at its deadline ($rolled ready units released), zero left"

kill -TERM "$steward_pid"
wait "$steward_pid" || fail "steward did not stop cleanly"
