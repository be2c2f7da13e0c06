#!/usr/bin/env bash
# policies/geo_latency.lua end to end, every component real and on 127.0.0.1: Prometheus
# (Debian package `prometheus`) scraping fixtures/exporter.py, whose per-region request
# rates the test sets; steward with metrics_prometheus, market_akash against `steward market
# serve` (fixtures/akash/geo_providers.json: providers in 6 regions) and probe_http probing
# every ready lease (probes.target_template: fixtures/probe_target.py, with the lease's uri
# in the path). The policy runs with short delays (scale up 2 s, down 8 s). Asserted:
#   - demand in eu-west is served from eu-central (15 ms, cheaper than eu-west), not from
#     us-west, the cheapest region, whose 140 ms break the 80 ms SLO;
#   - demand moving to as-east buys as-east (not the cheaper us-west, 110 ms away), and
#     eu-central is released only after the scale-down delay: it is still serving when
#     as-east is ready, and goes at least 5 s later;
#   - a unit whose probes fail is replaced: its deployment is closed and another one in the
#     same region serves;
#   - probes reach each lease's uri (the ingress host the marketplace reports).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool prometheus
require_tool python3
new_workdir
. "$SW_SOURCE_DIR/tests/integration/akash_lib.sh"
work=$WORKDIR
fixtures="$SW_SOURCE_DIR/tests/integration/fixtures"

# --- demand: exporter + Prometheus
exporter_port=$(free_port)
prom_port=$(free_port)
probe_port=$(free_port)
set_rates() {
  printf '%s\n' "$1" >"$work/rates.json.tmp" && mv "$work/rates.json.tmp" "$work/rates.json"
}
set_rates '{"eu-west": 50, "as-east": 0}'
python3 "$fixtures/exporter.py" "$exporter_port" "$work/rates.json" &
SW_TEST_PIDS+=($!)
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: web
    static_configs:
      - targets: ["127.0.0.1:$exporter_port"]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!
SW_TEST_PIDS+=("$prom_pid")
query='sum by (region) (rate(http_requests_total[5s]))'

# --- probe target, marketplace
: >"$work/fail.txt"
python3 "$fixtures/probe_target.py" "$probe_port" "$work/fail.txt" "$work/probes.log" &
SW_TEST_PIDS+=($!)
AK_FIX=$fixtures/akash
rm -f "$work/market.port"
"$STEWARD_BIN" market serve --listen 127.0.0.1:0 --state "$work/market.db" \
  --providers "$AK_FIX/geo_providers.json" --port-file "$work/market.port" --seed 7 \
  >>"$work/market.out" 2>>"$work/market.log" &
SRV_PID=$!
SW_TEST_PIDS+=("$SRV_PID")
for _ in $(seq 1 200); do
  [ -s "$work/market.port" ] && break
  sleep 0.05
done
[ -s "$work/market.port" ] || fail "market server did not write its port"
SRV_PORT=$(cat "$work/market.port")

# Prometheus answers with the eu-west rate (its first sample takes a few seconds).
prom_ok() {
  curl -sf --max-time 2 "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$query" |
    jq -e '[.data.result[] | select(.metric.region == "eu-west") | .value[1] | tonumber]
           | .[0] > 40' \
      >/dev/null 2>&1
}
end=$((SECONDS + 40))
until prom_ok; do
  kill -0 "$prom_pid" 2>/dev/null || { cat "$work/prometheus.log" >&2; fail "prometheus exited"; }
  [ $SECONDS -lt $end ] || fail "prometheus never reported the eu-west rate"
  sleep 0.5
done

# --- steward
cp "$AK_FIX/web.sdl.yaml" "$work/"
# steward_config POLICY_ENTRY: $work/steward.jsonc with that "policies" entry.
rtt='[["eu-west","eu-central",15],["eu-west","us-east",75],["eu-central","us-east",90],
      ["us-east","us-west",65],["us-west","as-east",110],["eu-west","as-east",220],
      ["eu-central","as-east",230],["us-east","as-east",160],["eu-west","us-west",140],
      ["eu-central","us-west",150],["sa-brazil","us-east",120],["sa-brazil","us-west",170],
      ["sa-brazil","eu-west",180],["sa-brazil","eu-central",190],["sa-brazil","as-east",280]]'
steward_config() {
  cat >"$work/steward.jsonc" <<JSON
{
  "id": "e2etag",
  "state": "steward.db",
  "seed": 3,
  "log": { "format": "text", "level": "info" },
  "market": "market_akash",
  "plugins": {
    "market_akash": {
      "base_url": "http://127.0.0.1:$SRV_PORT", "api_key_env": "E2E_AKASH_KEY",
      "deposit_usd": 1, "sdl_template": "web.sdl.yaml", "bid_window": "500ms", "min_bids": 1,
      "poll_interval": "150ms", "ready_timeout": "10s", "request_timeout": "3s",
      "max_retries": 8, "backoff_base": "50ms", "backoff_max": "500ms", "watch_interval": "300ms"
    },
    "metrics_prometheus": { "base_url": "http://127.0.0.1:$prom_port", "timeout": "3s" },
    "probe_http": { "timeout": "2s", "expected_status": [200] }
  },
  "metrics": { "rps": { "plugin": "metrics_prometheus", "query": "$query", "every": "1s" } },
  "probes": { "plugin": "probe_http", "every": "500ms",
              "target_template": "http://127.0.0.1:$probe_port/{region}/{market_id}/{uri}" },
  "guard": { "max_leases": 10, "unhealthy_after": 2 },
  "groups": {
    "web": { "min": 0, "max": 8, "acquire_deadline": "20s",
             "regions": ["eu-west", "eu-central", "us-east", "us-west", "as-east", "sa-brazil"],
             "scale_up_cooldown": "0s", "scale_down_cooldown": "0s" }
  },
  "policies": [ $1 ]
}
JSON
}
log=$work/steward.log
steward_start() {
  (cd "$work" && exec "$STEWARD_BIN" run -c steward.jsonc 2>>"$log") &
  STEWARD_PID=$!
  SW_TEST_PIDS+=("$STEWARD_PID")
}

# Provider owner → region, from the fixture.
region_of='{"akash1geoe2e0euwest00000000000000000000000a1":"eu-west",
  "akash1geoe2e0eucentral000000000000000000000b1":"eu-central",
  "akash1geoe2e0useast00000000000000000000000c1":"us-east",
  "akash1geoe2e0uswest00000000000000000000000d1":"us-west",
  "akash1geoe2e0aseast00000000000000000000000e1":"as-east",
  "akash1geoe2e0aseast00000000000000000000000e2":"as-east",
  "akash1geoe2e0sabrazil000000000000000000000f1":"sa-brazil"}'
# active_in REGION [ready]: dseqs of our active deployments leased in REGION (ready ones).
active_in() {
  jq -r --argjson m "$region_of" --arg r "$1" --arg ready "${2:-}" \
    '.data.deployments[] | select(.env.STEWARD_TAG == "e2etag" and .state == "active")
     | select(.leases[0].state == "active" and $m[.leases[0].provider] == $r)
     | select($ready == "" or .leases[0].ready_ms != null) | .dseq' "$work/state.json"
}
ever_in() { # not counting the warm-up's
  jq -r --argjson m "$region_of" --arg r "$1" --arg warm "${warm_dseqs:-}" \
    '.data.deployments[] | select(.env.STEWARD_TAG == "e2etag" and .leases[0] != null)
     | select($m[.leases[0].provider] == $r)
     | select(.dseq as $d | ($warm | split("\n") | index($d)) == null) | .dseq' "$work/state.json"
}
state_of() {
  jq -r --arg d "$1" '.data.deployments[] | select(.dseq == $d) | .state' "$work/state.json"
}
refresh() { ak_state; kill -0 "$STEWARD_PID" 2>/dev/null || fail "steward exited"; }

# --- 0. Prices: market_akash knows a provider's price once it has bid for steward (kept in
# the journal's KV). One unit in every region, then none, teaches steward all six.
cat >"$work/warm.lua" <<'LUA'
local N = 1
return { name = "warm", evaluate = function(ctx)
  local want = {}
  for _, r in ipairs(ctx.groups.web.regions) do want[r] = N end
  return { web = want }
end }
LUA
steward_config '{ "name": "warm", "file": "warm.lua", "interval": "300ms" }'
steward_start
all_ready() {
  [ "$(jq '[.data.deployments[] | select(.env.STEWARD_TAG == "e2etag" and .state == "active"
          and .leases[0].ready_ms != null)] | length' "$work/state.json")" = 6 ]
}
ak_wait 30 "a ready unit in each of the 6 regions" all_ready
sed -i 's/^local N = 1$/local N = 0/' "$work/warm.lua"
kill -HUP "$STEWARD_PID"
none_left() {
  [ "$(jq '[.data.deployments[] | select(.env.STEWARD_TAG == "e2etag" and .state == "active")]
          | length' "$work/state.json")" = 0 ]
}
ak_wait 30 "the warm-up units released" none_left
kill -TERM "$STEWARD_PID"
wait "$STEWARD_PID" || fail "steward (warm-up) did not stop cleanly"
warm_dseqs=$(jq -r '.data.deployments[] | select(.env.STEWARD_TAG == "e2etag") | .dseq' \
  "$work/state.json")

steward_config '{ "name": "geo", "file": "'"$SW_SOURCE_DIR"'/policies/geo_latency.lua",
  "interval": "500ms",
  "params": { "group": "web", "rps_per_unit": 100, "slo_ms": 80, "slo_share": 0.95,
              "min_regions": 1, "scale_up_delay_s": 2, "scale_down_delay_s": 8,
              "half_life_s": 1, "rtt": '"$rtt"' } }'
steward_start

# --- 1. eu-west demand: served from eu-central (SLO-meeting), not us-west (cheapest).
end=$((SECONDS + 25))
until refresh && [ -n "$(active_in eu-central ready)" ]; do
  [ $SECONDS -lt $end ] || fail "no ready unit in eu-central for eu-west's demand"
  sleep 0.2
done
sleep 2 # a few more passes: nothing else bought
refresh
eu_dseq=$(active_in eu-central)
[ "$(echo "$eu_dseq" | wc -w)" = 1 ] ||
  fail "expected one eu-central unit for 50 rps, got: $eu_dseq"
for r in us-west eu-west us-east as-east sa-brazil; do
  [ -z "$(ever_in $r)" ] || fail "bought in $r for eu-west's demand"
done
echo "phase 1: eu-west demand served from eu-central ($eu_dseq), nothing in us-west"

# --- 2. demand moves to as-east.
set_rates '{"eu-west": 0, "as-east": 50}'
end=$((SECONDS + 30))
until refresh && [ -n "$(active_in as-east ready)" ]; do
  [ $SECONDS -lt $end ] || fail "no ready unit in as-east after demand moved there"
  sleep 0.2
done
t_as=$SECONDS
as_dseq=$(active_in as-east)
[ "$(state_of "$eu_dseq")" = active ] ||
  fail "eu-central was released before as-east was serving (scale-down delay not held)"
end=$((SECONDS + 30))
until refresh && [ "$(state_of "$eu_dseq")" = closed ]; do
  [ $SECONDS -lt $end ] || fail "eu-central was never released after demand left eu-west"
  sleep 0.2
done
t_eu=$SECONDS
[ $((t_eu - t_as)) -ge 5 ] ||
  fail "eu-central released $((t_eu - t_as)) s after as-east was ready: before the 8 s delay"
[ -z "$(ever_in us-west)" ] || fail "bought in us-west, 110 ms from as-east users"
grep -q 'not in the cheapest SLO placement for 8s: giving back 1 units' "$log" ||
  fail "the release of eu-central does not carry the policy's reason"
echo "phase 2: as-east bought ($as_dseq); eu-central released $((t_eu - t_as)) s later"

# --- 3. as-east's probes fail: the unit is replaced.
grep -q "/as-east/$as_dseq/.*ingress" "$work/probes.log" ||
  fail "the as-east lease's uri was never probed"
echo "$as_dseq" >"$work/fail.txt"
end=$((SECONDS + 30))
until refresh && [ "$(state_of "$as_dseq")" = closed ] &&
    [ -n "$(active_in as-east ready | grep -vx "$as_dseq" || true)" ]; do
  [ $SECONDS -lt $end ] || fail "the as-east unit failing its probes was not replaced"
  sleep 0.2
done
new_dseq=$(active_in as-east ready | grep -vx "$as_dseq" | head -n 1)
grep -qi "unhealthy" "$log" || fail "steward never logged the unit as unhealthy"
echo "phase 3: as-east $as_dseq failed its probes, replaced by $new_dseq"

kill -TERM "$STEWARD_PID"
wait "$STEWARD_PID" || fail "steward did not stop cleanly"
kill -TERM "$SRV_PID"
wait "$SRV_PID" || fail "market server did not stop cleanly"
kill "$prom_pid" 2>/dev/null || true
wait "$prom_pid" 2>/dev/null || true
echo "ok: geo_latency followed Prometheus demand on market_akash, held the SLO and the delays,"\
  "replaced a failing unit"
