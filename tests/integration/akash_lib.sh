# Helpers for the market_akash end-to-end suites: a real `steward market serve` on
# 127.0.0.1 (free port, API key from the environment) and a steward configured against it.
# Source after tests/lib.sh. Uses WORKDIR; sets SRV_PORT, SRV_PID, STEWARD_PID.
require_tool curl
require_tool jq
require_steward
AK_FIX=$SW_SOURCE_DIR/tests/integration/fixtures/akash
export STEWARD_MARKET_API_KEY="e2e-secret-key-$$-$RANDOM-zz9"
export E2E_AKASH_KEY=$STEWARD_MARKET_API_KEY
export STEWARD_PLUGIN_PATH=$SW_PLUGIN_DIR

# ak_server_start [FLAGS...]: starts the server on a free port with the fixture providers.
ak_server_start() {
  rm -f "$WORKDIR/market.port"
  "$STEWARD_BIN" market serve --listen 127.0.0.1:0 --state "$WORKDIR/market.db" \
    --providers "$AK_FIX/providers.json" --port-file "$WORKDIR/market.port" --seed "${AK_SEED:-5}" "$@" \
    >>"$WORKDIR/market.out" 2>>"$WORKDIR/market.log" &
  SRV_PID=$!
  SW_TEST_PIDS+=("$SRV_PID")
  for _ in $(seq 1 200); do
    [ -s "$WORKDIR/market.port" ] && break
    kill -0 "$SRV_PID" 2>/dev/null || fail "market server exited at start"
    sleep 0.05
  done
  [ -s "$WORKDIR/market.port" ] || fail "market server did not write its port"
  SRV_PORT=$(cat "$WORKDIR/market.port")
}

# ak_admin METHOD PATH [BODY]: the server's answer on stdout (admin routes have no faults).
ak_admin() {
  local args=(-sS --max-time 10 -X "$1" -H "x-api-key: $STEWARD_MARKET_API_KEY")
  [ -n "${3-}" ] && args+=(-H 'content-type: application/json' --data-binary "$3")
  curl "${args[@]}" "http://127.0.0.1:$SRV_PORT$2"
}

# ak_state: the server's state JSON into $WORKDIR/state.json.
ak_state() { ak_admin GET /_steward/state >"$WORKDIR/state.json" || fail "GET /_steward/state"; }

# ak_config POLICY BID_WINDOW MIN_BIDS MAX_LEASES: $WORKDIR/steward.jsonc for this server.
ak_config() {
  cp "$AK_FIX/web.sdl.yaml" "$WORKDIR/"
  sed -e "s|@PORT@|$SRV_PORT|" -e "s|@POLICY@|$1|" -e "s|@BID_WINDOW@|$2|" \
      -e "s|@MIN_BIDS@|$3|" -e "s|@MAX_LEASES@|$4|" "$AK_FIX/steward.jsonc" >"$WORKDIR/steward.jsonc"
}

# ak_ours [FILTER]: jq over our (tag e2etag) active deployments in state.json, e.g. 'length'.
ak_ours() {
  jq -r "[.data.deployments[] | select(.env.STEWARD_TAG == \"e2etag\" and .state == \"active\")] | ${1:-length}" \
    "$WORKDIR/state.json"
}

# ak_wait SECONDS WHAT COMMAND...: until COMMAND succeeds (state refreshed before each try).
ak_wait() {
  local secs=$1 what=$2
  shift 2
  local end=$((SECONDS + secs))
  until ak_state && "$@"; do
    [ "$SECONDS" -lt "$end" ] || fail "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}

# ak_server_stop: SIGTERM must end the server cleanly (exit 0; under ASan, no leak report).
ak_server_stop() {
  kill -TERM "$SRV_PID"
  local rc=0
  wait "$SRV_PID" || rc=$?
  [ "$rc" = 0 ] || fail "market server exited with $rc after SIGTERM"
}
