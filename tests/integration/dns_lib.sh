# Helpers shared by the DNS integration tests (sourced after ../lib.sh).

# dns_query SERVER_PORT NAME TYPE: the answer's records, one per line (empty: none).
dns_query() {
  dig @127.0.0.1 -p "$1" +short +norecurse +time=2 +tries=1 "$2" "$3"
}

# wait_for SECONDS COMMAND...: retry the command every 0.2 s until it succeeds.
wait_for() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

has_answer() { [ -n "$(dns_query "$1" "$2" "$3")" ]; }
no_answer() { [ -z "$(dns_query "$1" "$2" "$3")" ]; }

# write_run_config FILE ZONE PLUGIN PLUGIN_JSON MODE: a steward config with market_sim, the
# dns_flow policy (as-east released after 5 s) and the dns section (ttl 1, drain 2 s).
write_run_config() {
  cat > "$1" <<JSON
{
  "id": "dnstest",
  "state": "steward.db",
  "seed": 3,
  "market": "market_sim",
  "plugins": {
    "market_sim": { "providers_file": "dns_providers.json", "create_delay": "100ms",
                    "bid_window": "300ms" },
    "$3": $4
  },
  "groups": { "web": { "min": 0, "max": 4, "regions": ["eu-west", "as-east"] } },
  "policies": [ { "name": "dns_flow", "file": "dns_flow.lua", "interval": "300ms",
                  "params": { "release_after": 5 } } ],
  "dns": { "plugin": "$3", "zone": "$2", "ttl": 1, "mode": "$5", "drain": "2s",
           "resync": "1s", "records": { "web": { "name": "www" } } }
}
JSON
}

# journal_ms DB TYPE JSON_FIELD VALUE: at_ms of the first event of TYPE whose field matches.
journal_ms() {
  sqlite3 "$1" "SELECT min(at_ms) FROM events WHERE type='$2' AND json_extract(data_json, '\$.$3')='$4'"
}

# check_make_before_break DB DRAIN_MS: the released unit was withdrawn from DNS, then the
# release reached the marketplace no sooner than DRAIN_MS later.
check_make_before_break() {
  local unit withdrawn drained released
  unit=$(sqlite3 "$1" "SELECT json_extract(data_json,'\$.unit') FROM events WHERE type='unit_released' LIMIT 1")
  [ -n "$unit" ] || fail "no unit was released"
  withdrawn=$(journal_ms "$1" dns_withdrawn unit "$unit")
  drained=$(journal_ms "$1" dns_drained unit "$unit")
  released=$(journal_ms "$1" unit_released unit "$unit")
  [ -n "$withdrawn" ] || fail "unit $unit was released without a DNS withdrawal"
  [ -n "$drained" ] || fail "unit $unit was released without draining"
  [ $((released - withdrawn)) -ge "$2" ] ||
    fail "unit $unit released $((released - withdrawn)) ms after its withdrawal (drain $2 ms)"
  echo "make-before-break: $unit withdrawn at $withdrawn, released $((released - withdrawn)) ms later"
}
