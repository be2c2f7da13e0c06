#!/usr/bin/env bash
# The admin API end to end: `steward run` on the demo configuration with "admin" enabled on
# a free loopback port, time compressed 20x, then every route's shape, the bearer token
# (401 without or with a wrong one), pause/resume, an override that pins a count and
# expires, /metrics as Prometheus text (promtool when installed, plus a strict parser
# here), the CLI verbs, SIGHUP and SIGTERM, and the token never appearing in the logs.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool curl
require_tool python3

new_workdir
work=$WORKDIR
log="$work/steward.log"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
api="http://127.0.0.1:$port"
export STEWARD_ADMIN_TOKEN="adm-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
auth="Authorization: Bearer $STEWARD_ADMIN_TOKEN"

python3 - "$SW_SOURCE_DIR" "$work" "$port" <<'PY'
import sys
src, work, port = sys.argv[1:]
s = open(f"{src}/examples/demo/steward.jsonc").read()
s = s.replace('"../providers/demo.json"', f'"{src}/examples/providers/demo.json"')
s = s.replace('"../../policies/follow_demand.lua"', f'"{src}/policies/follow_demand.lua"')
s = s.replace('"seed": 42,', '"seed": 42,\n  "admin": { "listen": "127.0.0.1:%s", '
              '"token_env": "STEWARD_ADMIN_TOKEN" },' % port, 1)
assert '"admin"' in s
open(f"{work}/steward.jsonc", "w").write(s)
PY

"$STEWARD_BIN" run -c "$work/steward.jsonc" --speed 20 --log-level debug 2>"$log" &
pid=$!
SW_TEST_PIDS+=("$pid")

for _ in $(seq 1 100); do
  curl -sf "$api/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || fail "steward exited early"
  sleep 0.1
done
curl -sf "$api/readyz" >/dev/null || fail "not ready after 10 s"
[ "$(curl -s "$api/healthz")" = ok ] || fail "/healthz"

get() { curl -sf "$api$1" || fail "GET $1"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
# py 'expression over d (the JSON read from stdin)' — prints the result
py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---- read routes and their shapes
get /v1/status | python3 -c '
import json, sys
d = json.load(sys.stdin)
for k in ("id", "version", "leader", "ready", "uptime_s", "policies", "groups", "budget",
          "escrow", "counters", "now_ms", "started_ms", "market", "self_market_id"):
    assert k in d, k
assert d["id"] == "demo" and d["leader"]["who"] == "self" and d["leader"]["self"] is True
assert d["ready"] is True
p = d["policies"][0]
for k in ("name", "paused", "evaluations", "errors", "last_error", "interval_ms"):
    assert k in p, k
assert p["name"] == "follow-demand" and p["paused"] is False and p["evaluations"] >= 1
g = d["groups"][0]
for k in ("name", "min", "max", "desired", "ready", "pending", "releasing", "regions", "overrides"):
    assert k in g, k
for r in g["regions"]:
    assert set(r) == {"region", "desired", "ready", "pending", "releasing"}, r
assert d["budget"]["limit_usd_hour"] == 2.5
assert "spend_usd_hour" in d["budget"] and "runway_hours" in d["escrow"]
' || fail "/v1/status shape"

for _ in $(seq 1 60); do
  n=$(get /v1/leases | py 'len(d["leases"])')
  [ "$n" -ge 1 ] && break
  sleep 0.2
done
get /v1/leases | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["leases"], "no leases after 12 s"
for u in d["leases"]:
    for k in ("key", "market_id", "group", "region", "provider", "price_usd_hour", "state",
              "self", "unhealthy", "ordered_ms", "ready_ms", "uris"):
        assert k in u, k
' || fail "/v1/leases shape"

get "/v1/decisions?policy=follow-demand&limit=2" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["count"] == len(d["decisions"]) and 1 <= d["count"] <= 2
for e in d["decisions"]:
    assert e["policy"] == "follow-demand"
    for k in ("id", "at_ms", "desired", "actions", "refused", "explain", "error", "duration_ms"):
        assert k in e, k
    assert "policy" in e["desired"] and "effective" in e["desired"]
    assert "inputs" not in e
' || fail "/v1/decisions shape"
get "/v1/decisions?since=1m&inputs=1&limit=1" | py 'd["decisions"][0]["inputs"]["units"] is not None' >/dev/null ||
  fail "/v1/decisions?inputs=1"
[ "$(code "$api/v1/decisions?since=soon")" = 400 ] || fail "bad since accepted"

get "/v1/events?after=0&limit=5" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert isinstance(d["events"], list) and "next_after" in d
ids = [e["id"] for e in d["events"]]
assert ids == sorted(ids) and len(ids) <= 5
for e in d["events"]:
    assert set(e) == {"id", "at_ms", "type", "data"}
' || fail "/v1/events shape"

# ---- the token
[ "$(code -X POST "$api/v1/policies/follow-demand/pause")" = 401 ] || fail "pause without a token"
[ "$(code -X POST -H "Authorization: Bearer wrong-$STEWARD_ADMIN_TOKEN" \
      "$api/v1/policies/follow-demand/pause")" = 401 ] || fail "pause with a wrong token"
[ "$(code -X POST -H "Authorization: Bearer ${STEWARD_ADMIN_TOKEN%?}" \
      "$api/v1/policies/follow-demand/pause")" = 401 ] || fail "pause with a truncated token"
[ "$(code -X POST "$api/v1/reload")" = 401 ] || fail "reload without a token"
[ "$(code -X POST -d '{"count":1,"for":"1m"}' "$api/v1/groups/web/override")" = 401 ] ||
  fail "override without a token"
[ "$(get /v1/status | py 'd["policies"][0]["paused"]')" = False ] || fail "refused pause paused"

# ---- pause stops evaluations, resume restarts them
evals() { get /v1/status | py 'd["policies"][0]["evaluations"]'; }
[ "$(code -X POST -H "$auth" "$api/v1/policies/follow-demand/pause")" = 200 ] || fail "pause"
sleep 0.3
before=$(evals)
sleep 1.5   # 30 s of clock: six intervals
after=$(evals)
[ "$before" = "$after" ] || fail "evaluations went on while paused ($before -> $after)"
[ "$(get /v1/status | py 'd["policies"][0]["paused"]')" = True ] || fail "not shown paused"
[ "$(code -X POST -H "$auth" "$api/v1/policies/follow-demand/resume")" = 200 ] || fail "resume"
for _ in $(seq 1 50); do
  resumed=$(evals)
  [ "$resumed" -ge $((after + 3)) ] && break
  sleep 0.1
done
[ "$resumed" -ge $((after + 3)) ] || fail "evaluations did not restart ($after -> $resumed)"
[ "$(code -X POST -H "$auth" "$api/v1/policies/nosuch/pause")" = 404 ] || fail "unknown policy"

# ---- an override pins a count, then expires
region=oc-aus
want=$(get /v1/status | python3 -c "
import json, sys
d = json.load(sys.stdin)
r = {x['region']: x['desired'] for x in d['groups'][0]['regions']}
v = r.get('$region') or 0
print(v + 2 if v <= 10 else v - 2)")
read -r set_ms until_ms < <(curl -sf -X POST -H "$auth" \
    -d "{\"count\": $want, \"region\": \"$region\", \"for\": \"40s\"}" \
    "$api/v1/groups/web/override" | py 'd["set_ms"], d["until_ms"]' | tr -d '(),') ||
  fail "override refused"
get /v1/status | python3 -c "
import json, sys
d = json.load(sys.stdin)
g = d['groups'][0]
assert g['overrides'] and g['overrides'][0]['region'] == '$region' and g['overrides'][0]['count'] == $want
r = {x['region']: x['desired'] for x in g['regions']}
assert r['$region'] == $want, r
" || fail "override not in force at once"
sleep 0.8   # 16 s of clock: policy passes keep the pin
get "/v1/decisions?policy=follow-demand&since=$set_ms" | python3 -c "
import json, sys
during = [e for e in json.load(sys.stdin)['decisions'] if e['at_ms'] < $until_ms]
assert len(during) >= 2, len(during)
for e in during:
    assert e['desired']['effective']['web']['$region'] == $want, e['desired']
" || fail "the policy passes did not keep the override"
for _ in $(seq 1 100); do   # 40 s of clock is 2 s of wall time; more on a loaded machine
  get /v1/status | py 'd["groups"][0]["overrides"]' | grep -qx '\[\]' && break
  sleep 0.1
done
get /v1/status | py 'd["groups"][0]["overrides"]' | grep -qx '\[\]' || fail "override did not expire"
sleep 0.5
get "/v1/decisions?policy=follow-demand&limit=1" | python3 -c "
import json, sys
e = json.load(sys.stdin)['decisions'][0]
pol = e['desired']['policy'].get('web', {})
eff = e['desired']['effective']['web']
assert eff.get('$region', 0) == pol.get('$region', 0), e['desired']
" || fail "after expiry the policy's own count did not come back"
get "/v1/events?limit=1000" | python3 -c '
import json, sys
types = [e["type"] for e in json.load(sys.stdin)["events"]]
for t in ("policy_paused", "policy_resumed", "override_set", "override_expired"):
    assert t in types, t
' || fail "admin actions missing from /v1/events"

# ---- /metrics
curl -sf "$api/metrics" >"$work/metrics.txt" || fail "/metrics"
if command -v promtool >/dev/null 2>&1; then
  promtool check metrics <"$work/metrics.txt" || fail "promtool rejects /metrics"
elif [ "${CI:-}" = true ]; then
  fail "promtool is not installed (CI installs the prometheus package)"
fi
python3 - "$work/metrics.txt" <<'PY' || fail "/metrics is not valid exposition text"
import re, sys
text = open(sys.argv[1]).read()
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)\})? (\S+)$')
types, values = {}, {}
for line in text.splitlines():
    if line.startswith("# HELP "):
        continue
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ")
        assert kind in ("counter", "gauge", "histogram"), line
        types[name] = kind
        continue
    m = sample.match(line)
    assert m, "bad line: " + line
    float(m.group(4).replace("+Inf", "inf"))
    name = m.group(1)
    family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
    assert family in types, "no TYPE for " + line
    values[name + (m.group(2) or "")] = float(m.group(4).replace("+Inf", "inf"))
need = ["steward_evaluations_total", "steward_evaluation_duration_seconds",
        "steward_policy_errors_total", "steward_actions_total", "steward_leases",
        "steward_spend_usd_per_hour", "steward_budget_usd_per_hour",
        "steward_plugin_http_requests_total", "steward_market_ops_in_flight"]
for n in need:
    assert n in types, n
assert types["steward_evaluation_duration_seconds"] == "histogram"
assert values['steward_evaluations_total{policy="follow-demand"}'] >= 5
c = values['steward_evaluation_duration_seconds_count{policy="follow-demand"}']
assert values['steward_evaluation_duration_seconds_bucket{policy="follow-demand",le="+Inf"}'] == c
assert values["steward_budget_usd_per_hour"] == 2.5
assert any(k.startswith("steward_leases{") for k in values)
PY

# ---- the CLI
export STEWARD_API="$api"
"$STEWARD_BIN" status >"$work/status.txt" || fail "steward status"
grep -q 'follow-demand' "$work/status.txt" && grep -q '(total)' "$work/status.txt" ||
  fail "steward status output: $(cat "$work/status.txt")"
"$STEWARD_BIN" status --json | py 'd["id"]' | grep -qx demo || fail "steward status --json"
"$STEWARD_BIN" leases --api "$api" | tail -n 1 | grep -Eq '^[0-9]+ units?$' || fail "steward leases"
"$STEWARD_BIN" leases --json | py 'len(d["leases"]) >= 1' | grep -qx True || fail "leases --json"
"$STEWARD_BIN" decisions --policy follow-demand --since 30s | grep -q 'follow-demand' ||
  fail "steward decisions"
"$STEWARD_BIN" pause follow-demand | grep -qx 'policy follow-demand paused' || fail "steward pause"
[ "$(get /v1/status | py 'd["policies"][0]["paused"]')" = True ] || fail "CLI pause had no effect"
"$STEWARD_BIN" resume follow-demand --json | py 'd["paused"]' | grep -qx False || fail "steward resume"
set +e
STEWARD_ADMIN_TOKEN=wrong "$STEWARD_BIN" pause follow-demand 2>"$work/cli.err"; rc_wrong=$?
env -u STEWARD_ADMIN_TOKEN "$STEWARD_BIN" pause follow-demand 2>/dev/null; rc_none=$?
"$STEWARD_BIN" status --api http://127.0.0.1:1 2>/dev/null; rc_down=$?
set -e
[ "$rc_wrong" = 1 ] && grep -q 401 "$work/cli.err" || fail "wrong token: exit $rc_wrong"
[ "$rc_none" = 2 ] || fail "no token: exit $rc_none"
[ "$rc_down" = 1 ] || fail "unreachable API: exit $rc_down"

# ---- signals: SIGHUP reloads, SIGTERM stops cleanly with the journal flushed
[ "$(code -X POST -H "$auth" "$api/v1/reload")" = 200 ] || fail "reload"
kill -HUP "$pid"
sleep 0.3
grep -q 'SIGHUP: reloading policies' "$log" || fail "SIGHUP not handled"
kill -0 "$pid" || fail "SIGHUP killed steward"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
grep -q 'stopping: terminated (SIGTERM)' "$log" || fail "no orderly stop"
if command -v sqlite3 >/dev/null 2>&1; then
  n=$(sqlite3 "$work/demo.db" "select count(*) from evaluations where policy='admin'")
  [ "$n" -ge 2 ] || fail "override passes not journaled ($n)"
fi

# ---- the token never reached the log (debug level, wrong tokens tried)
if grep -qF "$STEWARD_ADMIN_TOKEN" "$log"; then fail "the admin token appears in the log"; fi
grep -q 'refused POST /v1/policies/follow-demand/pause: missing bearer token' "$log" ||
  fail "refused mutations are not logged"
echo "ok: admin API on $api, $(wc -l <"$work/metrics.txt") metrics lines, $resumed evaluations seen"
