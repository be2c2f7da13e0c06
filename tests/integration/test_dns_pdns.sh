#!/usr/bin/env bash
# DNS through the PowerDNS HTTP API against a real pdns_server (gsqlite3 backend) started
# on 127.0.0.1 high ports: the plugin's list/upsert/remove checked with dig, a wrong API key
# reported, then steward itself (market_sim + a policy) publishing and withdrawing records
# as units come and go, with a foreign record left untouched, make-before-break asserted
# from the journal, and upsert-only never deleting.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dns_lib.sh"
require_tool pdns_server
require_tool pdnsutil
require_tool dig
require_tool sqlite3
require_steward

schema=/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql
[ -f "$schema" ] || schema=/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql
[ -f "$schema" ] || { [ "${CI:-}" = true ] && fail "no gsqlite3 schema"; echo "SKIP: no gsqlite3 schema"; exit 77; }

new_workdir
work=$WORKDIR
dns_port=$(free_port)
api_port=$(free_port)
export PDNS_API_KEY="steward-test-$RANDOM$RANDOM"
sqlite3 "$work/pdns.sqlite3" < "$schema"
cat > "$work/pdns.conf" <<CONF
launch=gsqlite3
gsqlite3-database=$work/pdns.sqlite3
local-address=127.0.0.1
local-port=$dns_port
api=yes
api-key=$PDNS_API_KEY
webserver=yes
webserver-address=127.0.0.1
webserver-port=$api_port
webserver-allow-from=127.0.0.0/8
socket-dir=$work
guardian=no
daemon=no
disable-syslog=yes
cache-ttl=0
negquery-cache-ttl=0
query-cache-ttl=0
loglevel=4
CONF
pdnsutil --config-dir="$work" create-zone example.test ns1.example.test >/dev/null
# Someone else's record, at a name steward will want: it must survive untouched.
pdnsutil --config-dir="$work" add-record example.test eu-west.www A 60 198.51.100.7 >/dev/null
log="$work/pdns.log"
pdns_server --config-dir="$work" >"$log" 2>&1 &
SW_TEST_PIDS+=($!)
wait_for 10 has_answer "$dns_port" example.test SOA || fail "pdns_server did not start"

cp "$SW_SOURCE_DIR"/tests/integration/fixtures/{dns_providers.json,dns_flow.lua} "$work/"
cd "$work"
plugin_json="{\"base_url\": \"http://127.0.0.1:$api_port\", \"api_key_env\": \"PDNS_API_KEY\"}"
write_run_config steward.jsonc example.test. dns_pdns "$plugin_json" sync
api_ready() { "$STEWARD_BIN" dns list -c steward.jsonc >/dev/null 2>&1; }
wait_for 10 api_ready || fail "the PowerDNS API did not come up"

# ---- the plugin against the server ----
"$STEWARD_BIN" dns upsert -c steward.jsonc api A 60 192.0.2.10 192.0.2.11 || fail "upsert A"
"$STEWARD_BIN" dns upsert -c steward.jsonc api AAAA 60 2001:db8::10 || fail "upsert AAAA"
"$STEWARD_BIN" dns upsert -c steward.jsonc note TXT 60 '"hello world"' || fail "upsert TXT"
[ "$(dns_query "$dns_port" api.example.test A | sort | tr '\n' ' ')" = "192.0.2.10 192.0.2.11 " ] ||
  fail "A records not served: $(dns_query "$dns_port" api.example.test A)"
[ "$(dns_query "$dns_port" api.example.test AAAA)" = "2001:db8::10" ] || fail "AAAA not served"
[ "$(dns_query "$dns_port" note.example.test TXT)" = '"hello world"' ] || fail "TXT not served"
"$STEWARD_BIN" dns list -c steward.jsonc > list.txt || fail "list"
grep -q "^api.example.test.	60	AAAA	2001:db8::10$" list.txt || fail "list misses AAAA: $(cat list.txt)"
"$STEWARD_BIN" dns upsert -c steward.jsonc api A 60 192.0.2.12 || fail "replace A"
[ "$(dns_query "$dns_port" api.example.test A)" = "192.0.2.12" ] || fail "REPLACE did not replace"
"$STEWARD_BIN" dns remove -c steward.jsonc api A || fail "remove"
no_answer "$dns_port" api.example.test A || fail "removed A still served"
[ "$(dns_query "$dns_port" api.example.test AAAA)" = "2001:db8::10" ] || fail "remove took AAAA too"
if PDNS_API_KEY=wrong "$STEWARD_BIN" dns list -c steward.jsonc 2> wrongkey.txt; then
  fail "a wrong API key was accepted"
fi
grep -q "PowerDNS refused the API key (HTTP 401)" wrongkey.txt || fail "unclear: $(cat wrongkey.txt)"
if grep -q "$PDNS_API_KEY" wrongkey.txt list.txt; then fail "the API key was printed"; fi

# ---- steward keeps the zone pointing at live units (sync mode) ----
log="$work/steward.log"
"$STEWARD_BIN" run -c steward.jsonc --for 11s 2>"$log" &
run_pid=$!
SW_TEST_PIDS+=($run_pid)
wait_for 8 has_answer "$dns_port" as-east.www.example.test CNAME || fail "as-east.www never published"
wait_for 3 has_answer "$dns_port" www.example.test CNAME || fail "www never published"
east=$(dns_query "$dns_port" as-east.www.example.test CNAME)
case "$east" in web-*.as-east.sim.steward.test.) ;; *) fail "as-east.www points at '$east'" ;; esac
owner=$(dns_query "$dns_port" sw-cname-as-east.www.example.test TXT)
[ "$owner" = '"heritage=steward,steward/owner=dnstest,steward/group=web"' ] ||
  fail "ownership record: '$owner'"
[ "$(dns_query "$dns_port" eu-west.www.example.test A)" = "198.51.100.7" ] || fail "foreign A changed"
no_answer "$dns_port" eu-west.www.example.test CNAME || fail "CNAME written over a foreign record"
# The policy gives as-east back after 5 s: it must leave DNS, then be released.
wait_for 9 no_answer "$dns_port" as-east.www.example.test CNAME || fail "as-east.www never withdrawn"
wait "$run_pid" || fail "steward run failed"
check_make_before_break steward.db 2000
[ "$(dns_query "$dns_port" eu-west.www.example.test A)" = "198.51.100.7" ] || fail "foreign A changed"
conflicts=$(sqlite3 steward.db "SELECT count(*) FROM events WHERE type='dns_conflict' AND json_extract(data_json,'\$.name')='eu-west.www.example.test.'")
[ "$conflicts" = 1 ] || fail "the foreign record was reported $conflicts times (want once)"
grep -q "eu-west.www.example.test. CNAME: .*; left untouched" "$log" ||
  fail "the conflict is not in the log"

# ---- upsert-only never deletes ----
rm -f steward.db steward.db-wal steward.db-shm
write_run_config steward.jsonc example.test. dns_pdns "$plugin_json" upsert-only
"$STEWARD_BIN" run -c steward.jsonc --for 10s 2>>"$log" || fail "upsert-only run failed"
deletes=$(sqlite3 steward.db "SELECT count(*) FROM events WHERE type='dns_change' AND json_extract(data_json,'\$.action')='delete'")
[ "$deletes" = 0 ] || fail "upsert-only deleted $deletes record sets"
released=$(sqlite3 steward.db "SELECT count(*) FROM events WHERE type='unit_released'")
[ "$released" -ge 1 ] || fail "upsert-only run released nothing: the scenario did not run"
has_answer "$dns_port" as-east.www.example.test CNAME || fail "upsert-only deleted as-east.www"
has_answer "$dns_port" sw-cname-as-east.www.example.test TXT || fail "upsert-only deleted ownership"
echo "dns_pdns: ok"
