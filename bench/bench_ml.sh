#!/usr/bin/env bash
# ML batch latency (issue 6, "Performance"): from the job master reporting a job started to
# the first lease order sent, target <= one poll interval + 10 ms.
#
# steward (market_akash, jobs_http polling every POLL, policies/ml_batch.lua) against a local
# `steward market serve` and the job master stand-in (tests/integration/fixtures/job_master.py,
# which logs the time of every answer). For each of N jobs the bench flips one job to
# "running" (the master's state change, wall ms), and reads from the server's state the
# created_ms of the first deployment for that job (the lease order: POST /v1/deployments;
# server and bench share the wall clock at --speed 1). Reported per job:
#   total     state change → first deployment created   (target <= POLL + 10 ms)
#   steward   first master answer listing the job running → first deployment created
#             (what steward adds to the poll phase: parse, event, evaluation, plan, create)
# then the job is marked done and its workers closed before the next one.
#
#   make build && bash bench/bench_ml.sh [build-dir]
#   env: N=10 POLL=1s KEEP=1 (keep workdir)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
bin=$build/steward
n=${N:-10}
poll=${POLL:-1s}
. "$src/bench/bench_lib.sh"
bench_setup ml E2E_AKASH_KEY curl jq python3
poll_ms=$(ms_of "$poll")
fix=$src/tests/integration/fixtures

"$bin" market serve --listen 127.0.0.1:0 --state "$work/market.db" \
  --providers "$fix/ml_akash/providers.json" --port-file "$work/market.port" --speed 1 \
  >"$work/market.out" 2>"$work/market.log" &
pids+=($!)
set_jobs() { printf '%s\n' "$1" >"$work/jobs.json.tmp" && mv "$work/jobs.json.tmp" "$work/jobs.json"; }
set_jobs '{"jobs": []}'
python3 "$fix/job_master.py" "$work/jobs.json" "$work/master.port" "$work/served.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/market.port" ] && [ -s "$work/master.port" ] && break; sleep 0.05; done
port=$(cat "$work/market.port")
sed -e "s|@PORT@|$port|" -e "s|@MASTER_PORT@|$(cat "$work/master.port")|" \
    -e "s|@POLICY@|$src/policies/ml_batch.lua|" -e "s|@SDL@|$src/examples/ml/worker-gpu.sdl.yaml|" \
    -e "s|\"poll_interval\": \"200ms\"|\"poll_interval\": \"$poll\"|" \
    -e 's|"level": "debug"|"level": "warn"|' \
    "$fix/ml_akash/steward.jsonc" >"$work/steward.jsonc"
# The policy's own interval stays 300 ms: the job_started event evaluates at once anyway.
export AKASH_PROVIDER=akash1mlmaster00000000000000000000000000a1
(cd "$work" && exec "$bin" run -c steward.jsonc 2>"$work/steward.log") &
pids+=($!)
state() {
  curl -sS --max-time 5 -H "x-api-key: $STEWARD_MARKET_API_KEY" \
    "http://127.0.0.1:$port/_steward/state" >"$work/state.json"
}
count() { jq '[.data.deployments[] | select(.env.STEWARD_GROUP == "workers")] | length' "$work/state.json"; }
active() { jq '[.data.deployments[] | select(.env.STEWARD_GROUP == "workers" and .state == "active")] | length' "$work/state.json"; }
sleep 2 # steward up, first polls answered

totals=() overheads=()
for i in $(seq 1 "$n"); do
  state
  before=$(count)
  # A random phase against the poll cadence, as a real job start has.
  sleep "0.$((RANDOM % 10))"
  changed=$(now_ms)
  set_jobs "{\"jobs\": [{\"id\": \"b$i\", \"state\": \"running\", \"workers\": 1}]}"
  for _ in $(seq 1 200); do
    state
    [ "$(count)" -gt "$before" ] && break
    sleep 0.02
  done
  created=$(jq "[.data.deployments[] | select(.env.STEWARD_GROUP == \"workers\")] | sort_by(.created_ms) | .[$before].created_ms" "$work/state.json")
  seen=$(awk -v id="\"b$i\"" -v t="$changed" '$1 >= t && index($0, id) && index($0, "running") {print $1; exit}' "$work/served.log")
  totals+=($((created - changed)))
  overheads+=($((created - seen)))
  printf 'job %2d: total %4d ms  steward %3d ms\n' "$i" "$((created - changed))" "$((created - seen))"
  set_jobs "{\"jobs\": [{\"id\": \"b$i\", \"state\": \"done\", \"workers\": 1}]}"
  for _ in $(seq 1 300); do
    state
    [ "$(active)" = 0 ] && break
    sleep 0.05
  done
done
stats() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {printf "best %d ms, median %d ms, worst %d ms", v[1], v[int((NR+1)/2)], v[NR]}'; }
echo "ml.job_start_to_order  total   $(stats "${totals[@]}")  (target <= ${poll_ms} + 10 ms)"
echo "ml.job_start_to_order  steward $(stats "${overheads[@]}")"
worst=$(printf '%s\n' "${totals[@]}" | sort -n | tail -1)
echo "uptime: $(uptime)"
[ "$worst" -le $((poll_ms + 10)) ] || { echo "FAIL: worst $worst ms > $((poll_ms + 10)) ms" >&2; exit 1; }
