# Helpers for the HA suites (test_ha_etcd*.sh): a real single-node etcd on loopback high
# ports, a real marketplace (akash_lib.sh) and steward replicas configured against both.
# Source after tests/lib.sh: it requires the tools, makes WORKDIR and sources akash_lib.sh.
# Sets TTL (HA_TTL, default 3 s); ha_etcd_start sets EP, PP and ETCD_PID.
require_tool etcd
require_tool sqlite3
require_tool python3
new_workdir
. "$SW_SOURCE_DIR/tests/integration/akash_lib.sh"
TTL=${HA_TTL:-3}

now_s() { python3 -c 'import time; print("%.3f" % time.time())'; }
# log_time FILE PATTERN: epoch seconds of the first line of FILE matching PATTERN (or empty).
log_time() {
  python3 - "$1" "$2" <<'PY'
import re, sys, datetime
for line in open(sys.argv[1], errors="replace"):
    if re.search(sys.argv[2], line):
        m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z", line)
        if m:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
            print("%.3f" % t.replace(tzinfo=datetime.timezone.utc).timestamp())
            break
PY
}
wait_log() { # wait_log SECONDS FILE PATTERN WHAT
  local end=$((SECONDS + $1))
  until grep -Eq "$3" "$2" 2>/dev/null; do
    [ "$SECONDS" -lt "$end" ] || { log=$2; fail "timed out after $1 s waiting for $4"; }
    sleep 0.05
  done
}

# ha_etcd_start: etcd on free ports EP (clients) and PP (peers), healthy on return.
ha_etcd_start() {
  EP=$(free_port)
  PP=$(free_port)
  etcd --name t --data-dir "$WORKDIR/etcd" --listen-client-urls "http://127.0.0.1:$EP" \
    --advertise-client-urls "http://127.0.0.1:$EP" --listen-peer-urls "http://127.0.0.1:$PP" \
    --initial-advertise-peer-urls "http://127.0.0.1:$PP" --initial-cluster "t=http://127.0.0.1:$PP" \
    >"$WORKDIR/etcd.log" 2>&1 &
  ETCD_PID=$!
  SW_TEST_PIDS+=("$ETCD_PID")
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$EP/health" 2>/dev/null | grep -q true && break
    kill -0 "$ETCD_PID" 2>/dev/null || { log=$WORKDIR/etcd.log; fail "etcd exited at start"; }
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$EP/health" | grep -q true || { log=$WORKDIR/etcd.log; fail "etcd not healthy"; }
}

# ha_replica_dir NAME ETCD [EXTRA]: $WORKDIR/NAME with the policy, the SDL and a copy of
# $WORKDIR/steward.jsonc (ak_config) that gains an "ha" block: endpoints ETCD (the inside of
# a JSON array, e.g. "http://127.0.0.1:$EP"), ttl TTL, replica NAME; EXTRA (sed replacement
# text, "\n" for a newline) follows the block. Same config but the replica name, so each
# replica keeps its own journal.
ha_replica_dir() {
  mkdir -p "$WORKDIR/$1"
  cp "$AK_FIX/churn.lua" "$AK_FIX/web.sdl.yaml" "$WORKDIR/$1/"
  sed -e "s|^  \"id\": \"e2etag\",|  \"id\": \"e2etag\",\n  \"ha\": { \"etcd\": [$2], \"ttl\": \"${TTL}s\", \"replica\": \"$1\" },${3-}|" \
    "$WORKDIR/steward.jsonc" >"$WORKDIR/$1/steward.jsonc"
  grep -q '"replica"' "$WORKDIR/$1/steward.jsonc" || fail "could not add the ha block"
}

start_replica() { # start_replica NAME → PID_<NAME>
  (cd "$WORKDIR/$1" && exec "$STEWARD_BIN" run -c steward.jsonc 2>>"$WORKDIR/$1/steward.log") &
  eval "PID_$1=$!"
  SW_TEST_PIDS+=("$!")
}

# ha_none_bought_twice: fails if a unit key of ours has two deployments in state.json
# (ak_state first).
ha_none_bought_twice() {
  local dups
  dups=$(jq -r '[.data.deployments[] | select(.env.STEWARD_TAG == "e2etag")] | group_by(.env.STEWARD_UNIT_KEY)
    | map(select(length > 1) | .[0].env.STEWARD_UNIT_KEY) | join(" ")' "$WORKDIR/state.json")
  [ -z "$dups" ] || fail "unit keys with more than one deployment (bought twice): $dups"
}
