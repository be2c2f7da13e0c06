#!/usr/bin/env bash
# DNS through RFC 2136 dynamic update + TSIG (hmac-sha256) against a real Knot DNS started
# on 127.0.0.1 high ports: the plugin's AXFR list and signed updates checked with dig, a
# wrong secret refused (BADSIG) and an unsigned update refused, both reported clearly; then
# steward publishing and withdrawing records as units come and go, a foreign record left
# untouched, make-before-break from the journal, and upsert-only never deleting.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/dns_lib.sh"
require_tool knotd
require_tool dig
require_tool sqlite3
require_steward

new_workdir
work=$WORKDIR
dns_port=$(free_port)
mkdir -p "$work/db"
export TSIG_SECRET
TSIG_SECRET=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
cat > "$work/knot.conf" <<CONF
server:
    rundir: "$work"
    listen: 127.0.0.1@$dns_port
database:
    storage: "$work/db"
log:
  - target: stderr
    any: info
key:
  - id: steward-key
    algorithm: hmac-sha256
    secret: $TSIG_SECRET
acl:
  - id: steward
    key: steward-key
    action: [update, transfer]
template:
  - id: default
    storage: "$work"
    file: "%s.zone"
zone:
  - domain: example.test
    acl: steward
CONF
cat > "$work/example.test.zone" <<'ZONE'
$ORIGIN example.test.
$TTL 3600
@            SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60
@            NS  ns1.example.test.
ns1          A   127.0.0.1
; someone else's record at a name steward will want: it must survive untouched
eu-west.www  60 A 198.51.100.7
ZONE
log="$work/knot.log"
knotd -c "$work/knot.conf" >"$log" 2>&1 &
SW_TEST_PIDS+=($!)
wait_for 10 has_answer "$dns_port" example.test SOA || fail "knotd did not start"

cp "$SW_SOURCE_DIR"/tests/integration/fixtures/{dns_providers.json,dns_flow.lua} "$work/"
cd "$work"
plugin_json="{\"server\": \"127.0.0.1\", \"port\": $dns_port, \"tsig_key\": \"steward-key\", \"tsig_secret_env\": \"TSIG_SECRET\"}"
write_run_config steward.jsonc example.test. dns_rfc2136 "$plugin_json" sync

# ---- the plugin against the server ----
"$STEWARD_BIN" dns upsert -c steward.jsonc api A 60 192.0.2.10 192.0.2.11 || fail "upsert A"
"$STEWARD_BIN" dns upsert -c steward.jsonc api AAAA 60 2001:db8::10 || fail "upsert AAAA"
"$STEWARD_BIN" dns upsert -c steward.jsonc note TXT 60 '"hello world"' || fail "upsert TXT"
[ "$(dns_query "$dns_port" api.example.test A | sort | tr '\n' ' ')" = "192.0.2.10 192.0.2.11 " ] ||
  fail "A records not served: $(dns_query "$dns_port" api.example.test A)"
[ "$(dns_query "$dns_port" api.example.test AAAA)" = "2001:db8::10" ] || fail "AAAA not served"
[ "$(dns_query "$dns_port" note.example.test TXT)" = '"hello world"' ] || fail "TXT not served"
"$STEWARD_BIN" dns list -c steward.jsonc > list.txt || fail "signed AXFR list"
grep -q "^api.example.test.	60	AAAA	2001:db8::10$" list.txt || fail "list misses AAAA: $(cat list.txt)"
grep -q "^eu-west.www.example.test.	60	A	198.51.100.7$" list.txt || fail "list misses the zone file"
"$STEWARD_BIN" dns upsert -c steward.jsonc api A 60 192.0.2.12 || fail "replace A"
[ "$(dns_query "$dns_port" api.example.test A)" = "192.0.2.12" ] || fail "the update did not replace"
"$STEWARD_BIN" dns remove -c steward.jsonc api A || fail "remove"
no_answer "$dns_port" api.example.test A || fail "removed A still served"
[ "$(dns_query "$dns_port" api.example.test AAAA)" = "2001:db8::10" ] || fail "remove took AAAA too"
# A wrong secret: the server refuses the signature and steward says so.
if TSIG_SECRET=$(python3 -c 'import base64; print(base64.b64encode(b"w"*32).decode())') \
   "$STEWARD_BIN" dns upsert -c steward.jsonc api A 60 192.0.2.66 2> badsig.txt; then
  fail "an update signed with a wrong secret was accepted"
fi
grep -q "refused the TSIG signature (BADSIG): the secret of key 'steward-key' does not match" badsig.txt ||
  fail "BADSIG not reported clearly: $(cat badsig.txt)"
no_answer "$dns_port" api.example.test A || fail "the badly signed update was applied"
# No key at all: refused too.
sed 's/, "tsig_key": "steward-key", "tsig_secret_env": "TSIG_SECRET"//' steward.jsonc > unsigned.jsonc
if "$STEWARD_BIN" dns upsert -c unsigned.jsonc api A 60 192.0.2.67 2> unsigned.txt; then
  fail "an unsigned update was accepted"
fi
grep -q "refused it (NOTAUTH): not authorized without a TSIG key" unsigned.txt ||
  grep -q "refused the update (REFUSED)" unsigned.txt || fail "unclear: $(cat unsigned.txt)"
no_answer "$dns_port" api.example.test A || fail "the unsigned update was applied"
if grep -q "$TSIG_SECRET" badsig.txt unsigned.txt list.txt; then fail "the secret was printed"; fi

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
wait_for 9 no_answer "$dns_port" as-east.www.example.test CNAME || fail "as-east.www never withdrawn"
wait "$run_pid" || fail "steward run failed"
check_make_before_break steward.db 2000
[ "$(dns_query "$dns_port" eu-west.www.example.test A)" = "198.51.100.7" ] || fail "foreign A changed"
conflicts=$(sqlite3 steward.db "SELECT count(*) FROM events WHERE type='dns_conflict' AND json_extract(data_json,'\$.name')='eu-west.www.example.test.'")
[ "$conflicts" = 1 ] || fail "the foreign record was reported $conflicts times (want once)"

# ---- upsert-only never deletes ----
rm -f steward.db steward.db-wal steward.db-shm
write_run_config steward.jsonc example.test. dns_rfc2136 "$plugin_json" upsert-only
"$STEWARD_BIN" run -c steward.jsonc --for 10s 2>>"$log" || fail "upsert-only run failed"
deletes=$(sqlite3 steward.db "SELECT count(*) FROM events WHERE type='dns_change' AND json_extract(data_json,'\$.action')='delete'")
[ "$deletes" = 0 ] || fail "upsert-only deleted $deletes record sets"
released=$(sqlite3 steward.db "SELECT count(*) FROM events WHERE type='unit_released'")
[ "$released" -ge 1 ] || fail "upsert-only run released nothing: the scenario did not run"
has_answer "$dns_port" as-east.www.example.test CNAME || fail "upsert-only deleted as-east.www"
has_answer "$dns_port" sw-cname-as-east.www.example.test TXT || fail "upsert-only deleted ownership"
echo "dns_rfc2136 with Knot: ok"
