#!/usr/bin/env bash
# ml_batch taking its jobs from a queue-depth gauge through metrics_prometheus and a REAL
# Prometheus scraping a tiny exporter (fixtures/queue_exporter.py) whose
# training_queue_depth{job="bert",workers="4"} this test sets. Asserted: depth 2 → two gangs,
# 8 workers ready; depth 1 → the newest gang released (4 left); depth 0 → every worker
# given back. steward runs at speed 1 with market_sim (Prometheus answers for real time).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool prometheus
require_tool python3
require_tool sqlite3
require_steward

new_workdir
work=$WORKDIR
. "$SW_SOURCE_DIR/tests/integration/prom_lib.sh"
prom_start trainer queue_exporter.py queue.json '{"bert": {"workers": 4, "depth": 0}}'

cat >"$work/providers.json" <<'JSON'
{"providers": [
  {"owner": "akash1mlmaster00000000000000000000000000a1", "host_uri": "https://m.test:8443",
   "region": "eu-west", "price_uact_per_block": 150, "bid_delay": "200ms", "ready_delay": "300ms",
   "capacity": 20, "audited": true, "closures_per_hour": 0}]}
JSON
cat >"$work/steward.jsonc" <<JSON
{
  "id": "mlprom",
  "state": "mlprom.db",
  "market": "market_sim",
  "plugins": {
    "market_sim": { "providers_file": "providers.json", "bid_window": "1s", "persist": false },
    "metrics_prometheus": { "base_url": "http://127.0.0.1:$prom_port", "timeout": "2s" }
  },
  "metrics": {
    "queue": { "plugin": "metrics_prometheus", "query": "training_queue_depth", "every": "1s" }
  },
  "groups": {
    "workers": { "min": 0, "max": 16, "regions": ["eu-west"],
                 "providers": ["akash1mlmaster00000000000000000000000000a1"],
                 "acquire_deadline": "30s" }
  },
  "policies": [
    { "name": "ml", "file": "$SW_SOURCE_DIR/policies/ml_batch.lua", "interval": "1s",
      "params": { "group": "workers", "queue_metric": "queue", "jobs_metric": false,
                  "gang_deadline_s": 30, "idle_timeout_s": 600 } }
  ]
}
JSON
export STEWARD_PLUGIN_PATH="$SW_PLUGIN_DIR"
log="$work/steward.log"
(cd "$work" && exec "$STEWARD_BIN" run -c steward.jsonc 2>"$log") &
steward_pid=$!
SW_TEST_PIDS+=("$steward_pid")

q() { sqlite3 -cmd ".timeout 2000" "$work/mlprom.db" "$1"; }
ready="SELECT count(*) FROM units WHERE group_name='workers' AND state = 3"
open_units="SELECT count(*) FROM units WHERE group_name='workers' AND state != 4"
wait_sql() {
  local got="" end=$((SECONDS + $3))
  until got=$(q "$1" 2>/dev/null) && [ "$got" = "$2" ]; do
    [ "$SECONDS" -lt "$end" ] || fail "waited $3 s for [$1] = $2, last got [$got]"
    kill -0 "$steward_pid" 2>/dev/null || fail "steward exited early"
    sleep 0.1
  done
}

wait_sql "SELECT count(*) > 0 FROM evaluations" 1 20
exporter_set '{"bert": {"workers": 4, "depth": 2}}'
wait_sql "$ready" 8 30
grep -q 'bert#2: gang 0/4 ready' "$log" || fail "no gang for the second queued job"
echo "ok 1: depth 2 → 8 workers ready"
exporter_set '{"bert": {"workers": 4, "depth": 1}}'
wait_sql "$open_units" 4 20
echo "ok 2: depth 1 → 4 workers (the newest gang released)"
exporter_set '{"bert": {"workers": 4, "depth": 0}}'
wait_sql "$open_units" 0 20
sleep 2
[ "$(q "$open_units")" = 0 ] || fail "workers bought again with an empty queue"
echo "ok 3: depth 0 → every worker given back"
kill -TERM "$steward_pid"
wait "$steward_pid" || fail "steward did not stop cleanly"
