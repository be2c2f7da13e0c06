#!/usr/bin/env bash
# metrics_prometheus against a REAL Prometheus (Debian package `prometheus`) scraping a tiny
# exporter (fixtures/exporter.py) whose per-region request counters grow at rates this
# test sets. steward runs with a policy (fixtures/log_rates.lua) that logs what
# ctx.metrics answers and asks for one unit per 20 rps. Asserted:
#   - the per-region rates steward reads through PromQL rate() match the exporter's;
#   - a query with no samples reaches the policy as an explicit error, not a zero;
#   - when demand moves from eu-west to as-east, steward buys in as-east and the policy
#     gives eu-west back.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool prometheus
require_tool python3
require_steward

new_workdir
work=$WORKDIR
log="$work/steward.log"
fixtures="$SW_SOURCE_DIR/tests/integration/fixtures"
. "$SW_SOURCE_DIR/tests/integration/prom_lib.sh"
prom_start web exporter.py rates.json '{"eu-west": 50, "as-east": 0}'

query='sum by (region) (rate(http_requests_total[5s]))'

# Prints "region=value ..." for the query, or nothing while Prometheus has no data.
prom_rates() {
  python3 - "$prom_port" "$query" <<'PY'
import json, sys, urllib.parse, urllib.request
port, q = sys.argv[1], sys.argv[2]
url = "http://127.0.0.1:%s/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q}))
try:
    with urllib.request.urlopen(url, timeout=2) as r:
        data = json.load(r)
except Exception:
    sys.exit(0)
print(" ".join("%s=%.1f" % (s["metric"].get("region", ""), float(s["value"][1]))
               for s in sorted(data["data"]["result"], key=lambda s: s["metric"].get("region", ""))))
PY
}

# Wait (bounded) until Prometheus answers with rates matching a python predicate over `r`.
wait_rates() {
  local predicate=$1 deadline=$((SECONDS + 40)) seen=""
  while [ $SECONDS -lt $deadline ]; do
    kill -0 "$prom_pid" 2>/dev/null || { cat "$work/prometheus.log" >&2; fail "prometheus exited"; }
    seen=$(prom_rates)
    if [ -n "$seen" ] && python3 -c "
import sys
r = {k: float(v) for k, v in (p.split('=') for p in sys.argv[1].split())}
sys.exit(0 if ($predicate) else 1)" "$seen" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  fail "prometheus never reported rates with $predicate (last: '$seen')"
}

wait_rates 'abs(r.get("eu-west", 0) - 50) < 5 and r.get("as-east", 1) == 0'

cp "$fixtures/log_rates.lua" "$work/"
cat >"$work/steward.jsonc" <<JSON
{
  "id": "promtest",
  "state": "prom.db",
  "market": "market_sim",
  "plugins": {
    "market_sim": { "providers_file": "$SW_SOURCE_DIR/examples/providers/demo.json",
                    "bid_window": "4s" },
    "metrics_prometheus": { "base_url": "http://127.0.0.1:$prom_port", "timeout": "3s" }
  },
  "metrics": {
    "rps": { "plugin": "metrics_prometheus", "query": "$query", "every": "1s" },
    "missing": { "plugin": "metrics_prometheus", "query": "no_such_metric_total", "every": "1s" }
  },
  "groups": { "web": { "min": 0, "max": 6, "regions": ["eu-west", "as-east"] } },
  "policies": [ { "name": "log-rates", "file": "log_rates.lua", "interval": "1s",
                  "params": { "rps_per_unit": 20 } } ]
}
JSON
export STEWARD_PLUGIN_PATH="$SW_PLUGIN_DIR"

# The last "rates ..." line the policy logged, checked against a python predicate.
check_logged_rates() {
  local file=$1 predicate=$2 line
  line=$(grep -o 'rates [a-z].*' "$file" | tail -n 1 || true)
  [ -n "$line" ] || fail "the policy never logged rates"
  python3 -c "
import sys
r = {k: float(v) for k, v in (p.split('=') for p in sys.argv[1].split()[1:])}
sys.exit(0 if ($predicate) else 1)" "$line" || fail "steward read '$line', expected $predicate"
  echo "steward read: $line"
}

"$STEWARD_BIN" run -c "$work/steward.jsonc" --for 6s 2>"$work/phase1.log" || { log="$work/phase1.log"; fail "phase 1 run failed"; }
cat "$work/phase1.log" >>"$log"
log="$work/phase1.log"
check_logged_rates "$work/phase1.log" 'abs(r["eu-west"] - 50) < 7.5 and r["as-east"] == 0'
grep -q "missing: metric 'missing': prometheus: query returned no samples" "$work/phase1.log" ||
  fail "an empty query did not reach the policy as an error"
grep -q 'acquire web/eu-west' "$work/phase1.log" || fail "no unit bought in eu-west"
if grep -q 'acquire web/as-east' "$work/phase1.log"; then fail "bought in as-east without demand"; fi

# Demand moves to as-east.
exporter_set '{"eu-west": 0, "as-east": 50}'
wait_rates 'abs(r.get("as-east", 0) - 50) < 5 and r.get("eu-west", 1) == 0'
"$STEWARD_BIN" run -c "$work/steward.jsonc" --for 6s 2>"$work/phase2.log" || { log="$work/phase2.log"; fail "phase 2 run failed"; }
log="$work/phase2.log"
check_logged_rates "$work/phase2.log" 'abs(r["as-east"] - 50) < 7.5 and r["eu-west"] == 0'
grep -q 'acquire web/as-east' "$work/phase2.log" || fail "no unit bought in as-east after demand moved"
grep -q 'policy log-rates wants {"web":{"as-east":3,"eu-west":0}}' "$work/phase2.log" ||
  fail "the policy did not give eu-west back after demand left"

kill "$prom_pid" 2>/dev/null || true
wait "$prom_pid" 2>/dev/null || true
echo "ok: steward read per-region rates from a real Prometheus and followed them"
