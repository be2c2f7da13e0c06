#!/usr/bin/env bash
# Crash safety: kill -9 a running `steward run` at random moments while its policy keeps
# buying and releasing, restart it each time, and check the journal against the
# marketplace's own state (market_sim persists its deployments in the journal's KV space):
#   - at every kill: every deployment of ours on the marketplace has exactly one intent
#     (intent before action);
#   - over the whole run: no intent key ever created two deployments (nothing bought twice);
#   - at the end, after a settling run: the marketplace's open deployments of ours equal
#     the journal's open units (nothing forgotten), no intent is left pending, and the
#     foreign deployment planted at the start is untouched (nothing released that is not
#     ours).
# Kills: 12 by default, STEWARD_SOAK=1 for 60.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool sqlite3

kills=${STEWARD_KILLS:-12}
[ "${STEWARD_SOAK:-0}" = 1 ] && kills=60
new_workdir
work=$WORKDIR
cp "$SW_SOURCE_DIR"/tests/faults/fixtures/{churn.jsonc,churn.lua,providers_fast.json} "$work/"
db="$work/crash.db"
log="$work/steward.log"

# A foreign deployment (another tool's) that steward must never touch.
"$STEWARD_BIN" check -c "$work/churn.jsonc" >/dev/null
"$STEWARD_BIN" run -c "$work/churn.jsonc" --for 1s 2>>"$log" || fail "first run failed"
sqlite3 "$db" <<'SQL'
INSERT OR REPLACE INTO kv(ns, key, value) VALUES ('market_sim', 'dep/1000000000001',
 '{"dseq":"1000000000001","state":"ready","key":"someone-else-1","group":"web","region":"eu-west","tag":"other-tool","provider":"akash1fastwest00000000000000000000000000a","uri":"x.test","created_ms":1000000000001,"price_uact_per_block":100,"price_usd_hour":0.06,"ready_at_ms":0,"closure_at_ms":0}');
SQL
index=$(sqlite3 "$db" "SELECT value FROM kv WHERE ns='market_sim' AND key='index'")
[ -n "$index" ] || index='[]'
new_index=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); a.append("1000000000001"); print(json.dumps(a))' "$index")
sqlite3 "$db" "INSERT OR REPLACE INTO kv(ns, key, value) VALUES ('market_sim', 'index', '$new_index')"

check_intent_before_action() {
  local orphans
  orphans=$(sqlite3 "$db" "SELECT json_extract(k.value,'$.key') FROM kv k
      WHERE k.ns='market_sim' AND k.key LIKE 'dep/%'
        AND json_extract(k.value,'$.tag')='crashtest'
        AND (SELECT count(*) FROM intents i WHERE i.key=json_extract(k.value,'$.key')) != 1")
  [ -z "$orphans" ] || fail "deployments without exactly one intent after kill $1: $orphans"
}

for i in $(seq 1 "$kills"); do
  "$STEWARD_BIN" run -c "$work/churn.jsonc" 2>>"$log" &
  pid=$!
  sleep "$(python3 -c "import random; print(round(random.uniform(0.3, 2.5), 2))")"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  check_intent_before_action "$i"
done

# Settle: the same loop asked for nothing, until every intent resolved.
python3 - "$work/churn.jsonc" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = s.replace('"interval": "300ms" }', '"interval": "300ms", "params": { "drain": true } }')
open(p, "w").write(s)
PY
"$STEWARD_BIN" run -c "$work/churn.jsonc" --for 6s 2>>"$log" || fail "settling run failed"

dups=$(grep -o 'created for [^ ]* in [^ ]* (key [^)]*)' "$log" | sed 's/.*(key \(.*\))/\1/' |
       sort | uniq -d)
[ -z "$dups" ] || fail "intent keys that created more than one deployment: $dups"
created=$(grep -c 'created for ' "$log" || true)
[ "$created" -ge "$kills" ] || fail "only $created deployments created in $kills runs: the test did not exercise buying"

pending=$(sqlite3 "$db" "SELECT count(*) FROM intents WHERE state=0")
[ "$pending" = 0 ] || fail "$pending intents still pending after the settling run"

ours_market=$(sqlite3 "$db" "SELECT json_extract(value,'$.dseq') FROM kv WHERE ns='market_sim'
   AND key LIKE 'dep/%' AND json_extract(value,'$.tag')='crashtest' ORDER BY 1")
ours_journal=$(sqlite3 "$db" "SELECT market_id FROM units WHERE state != 4
   ORDER BY 1")
[ "$ours_market" = "$ours_journal" ] ||
  fail "marketplace and journal disagree: market [$ours_market] journal [$ours_journal]"
[ -z "$ours_market" ] || fail "drained run left deployments open: $ours_market"

foreign=$(sqlite3 "$db" "SELECT count(*) FROM kv WHERE ns='market_sim' AND key='dep/1000000000001'")
[ "$foreign" = 1 ] || fail "the foreign deployment was touched"

intents=$(sqlite3 "$db" "SELECT count(*) FROM intents")
adopted=$(grep -c 'recovery: adopted' "$log" || true)
echo "ok: $kills kills, $intents intents, $created deployments created, $adopted adopted on restart"
