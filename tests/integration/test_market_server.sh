#!/usr/bin/env bash
# steward market serve over real HTTP on 127.0.0.1, driven with curl and checked with jq:
#   A (--speed 20): the contract field by field — auth, wrapping, errors, the lifecycle
#     create → bids → lease → ready → close, DecCoin and chain-integer formats, pagination,
#     idempotent lease and delete, escrow settlement, deposits, provider capacity,
#     provider closures (rate and close-all), offline providers, every fault switched at
#     runtime, garbage input, restart on the same state file;
#   B (--speed 300): bid expiry and unleased deployments closed at the default windows;
#     escrow running dry and auto top-up (with --bid-ttl 1h, so a slow run cannot race it);
#   C (fault flags on the command line): the same --seed replays the same fault sequence.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool curl
require_tool jq
require_steward

new_workdir
W=$WORKDIR
KEY="test-key-$$-0123456789"
export STEWARD_MARKET_API_KEY=$KEY
PROVIDERS=$SW_SOURCE_DIR/examples/providers/local.json
SDL_AUDITED=$(cat "$SW_SOURCE_DIR/examples/providers/web.sdl.yaml")
SDL_OPEN=$(printf '%s\n' "$SDL_AUDITED" | grep -v -e signedBy -e anyOf -e akash1365)
HARBOR=akash1localeuwest0harbor00000000000000000a1
QUAY=akash1localeuwest0quay00000000000000000000b2
CANYON=akash1localuswest0canyon000000000000000000d4
FLAKY=akash1localaseast0flaky0000000000000000000e5
REEF=akash1localocaus0reef00000000000000000000f6
DEC18='^[0-9]+\.[0-9]{18}$'


# ---- helpers ---------------------------------------------------------------------------

# start_server NAME ARGS...: PORT and PID of the new server; its log is $W/NAME.log.
start_server() {
  local name=$1
  shift
  rm -f "$W/$name.port"
  "$STEWARD_BIN" market serve --listen 127.0.0.1:0 --state "$W/$name.db" \
    --providers "$PROVIDERS" --port-file "$W/$name.port" "$@" \
    >>"$W/$name.out" 2>>"$W/$name.log" &
  PID=$!
  SW_TEST_PIDS+=("$PID")
  log=$W/$name.log
  for _ in $(seq 1 200); do
    [ -s "$W/$name.port" ] && break
    kill -0 "$PID" 2>/dev/null || fail "server $name exited at start"
    sleep 0.05
  done
  [ -s "$W/$name.port" ] || fail "server $name did not write its port"
  PORT=$(cat "$W/$name.port")
  grep -q "listening on http://127.0.0.1:$PORT" "$W/$name.out" || fail "no listening line"
}

# stop_server PID: SIGTERM must end it cleanly (exit 0; under ASan, no leak report).
stop_server() {
  kill -TERM "$1"
  local rc=0
  wait "$1" || rc=$?
  [ "$rc" = 0 ] || fail "server $1 exited with $rc after SIGTERM"
}

# req METHOD PATH [BODY]: CODE (HTTP status, or 000 when no answer), OUT (body), HDRS.
# AUTH=none sends no key, AUTH=<value> sends that key instead of the right one.
req() {
  local method=$1 path=$2 body=${3-}
  local args=(-sS -o "$W/resp" -D "$W/hdrs" -w '%{http_code}' -X "$method" --max-time 10)
  case "${AUTH-}" in
    none) ;;
    "") args+=(-H "x-api-key: $KEY") ;;
    *) args+=(-H "x-api-key: $AUTH") ;;
  esac
  if [ -n "$body" ]; then
    printf '%s' "$body" >"$W/reqbody"
    args+=(-H 'content-type: application/json' --data-binary @"$W/reqbody")
  fi
  : >"$W/resp"
  : >"$W/hdrs"
  CODE=$(curl "${args[@]}" "http://127.0.0.1:$PORT$path" 2>/dev/null) || true
  OUT=$(<"$W/resp")
  HDRS=$(<"$W/hdrs")
}

expect() { # expect CODE WHAT
  [ "$CODE" = "$1" ] || fail "$2: expected HTTP $1, got $CODE: ${OUT:0:400}"
}

check() { # check [jq args...] JQ_FILTER WHAT: $OUT satisfies the filter
  local what=${!#}
  local filter=${*: -2:1}
  local args=("${@:1:$#-2}")
  printf '%s' "$OUT" | jq -e "${args[@]}" "$filter" >/dev/null 2>&1 || fail "$what: ${OUT:0:600}"
}

is_error_shape() { # is_error_shape STATUS CODE WHAT: the contract's error object, exactly
  expect "$1" "$3"
  local type=client_error
  [ "$1" -lt 500 ] || type=server_error
  local re='^\{"error":"[A-Za-z]+Error","message":"([^"\\]|\\.)*","code":"'"$2"'","type":"'"$type"'"\}$'
  [[ $OUT =~ $re ]] || fail "$3: not the error shape with code $2: ${OUT:0:400}"
}

wait_for() { # wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds
  local secs=$1 what=$2
  shift 2
  local end=$((SECONDS + secs))
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || fail "timed out after ${secs}s waiting for $what"
    sleep 0.05
  done
}

jstr() { jq -Rs . <<<"$1"; } # a JSON string literal

create() { # create SDL_JSON DEPOSIT: DSEQ and MANIFEST_JSON (the manifest as a JSON literal)
  req POST /v1/deployments "{\"data\": {\"sdl\": $1, \"deposit\": $2}}"
  expect 201 "create deployment"
  local re='^\{"data":\{"dseq":"([0-9]+)","manifest":("([^"\\]|\\.)*"),"signTx":'
  [[ $OUT =~ $re ]] || fail "create response: ${OUT:0:300}"
  DSEQ=${BASH_REMATCH[1]}
  MANIFEST_JSON=${BASH_REMATCH[2]}
}

lease_body() { # lease_body DSEQ PROVIDER [MANIFEST_JSON]
  printf '{"manifest": %s, "leases": [{"dseq": "%s", "gseq": 1, "oseq": 1, "provider": "%s"}]}' \
    "${3-$MANIFEST_JSON}" "$1" "$2"
}

bid_count() { # bid_count DSEQ N [STATE]: exactly N bids (in STATE); no jq, it polls
  req GET "/v1/bids?dseq=$1"
  [ "$CODE" = 200 ] || return 1
  local pattern='"bid":{'
  [ -z "${3-}" ] || pattern="\"state\":\"$3\",\"price\""
  [ "$(grep -o -- "$pattern" <<<"$OUT" | wc -l)" -eq "$2" ]
}

deployment_matches() { # deployment_matches DSEQ ERE: GET it and match its body
  req GET "/v1/deployments/$1"
  [ "$CODE" = 200 ] && grep -Eq -- "$2" <<<"$OUT"
}
LEASE_READY='"leases":\[\{"id":\{[^}]*\},"state":"active",.*"status":\{"services"'
LEASE_CLOSED='"leases":\[\{"id":\{[^}]*\},"state":"closed"'
DEP_CLOSED='"deployment":\{"id":\{[^}]*\},"state":"closed"'

# JSON string literals of the SDLs used below (jq 1.6 starts slowly: build them once).
J_AUDITED=$(jstr "$SDL_AUDITED")
J_OPEN=$(jstr "$SDL_OPEN")
J_USWEST=$(jstr "$(sed 's/eu-west/na-us-west/g' <<<"$SDL_OPEN")")
J_ASEAST=$(jstr "$(sed 's/eu-west/as-east/g' <<<"$SDL_OPEN")")
J_REEF=$(jstr "$(sed 's/eu-west/oc-aus/g; s/amount: 200/amount: 20000/' <<<"$SDL_OPEN")")
J_BAD=$(jstr "$(printf 'version: "2.0"\nservices: 3\n')")

# ---- A: the contract --------------------------------------------------------------------
start_server a --speed 20 --seed 7
PID_A=$PID

# Providers: no auth, not wrapped.
AUTH=none req GET /v1/providers
expect 200 "GET /v1/providers without a key"
check --arg h "$HARBOR" 'type == "array" and length == 6 and all(.[]; (.owner|type=="string") and
  (.hostUri|startswith("https://")) and (.isOnline|type=="boolean") and
  (.isAudited|type=="boolean") and (.uptime7d|type=="number") and
  (.attributes|type=="array") and (.locationRegion|type=="string")) and
  (.[] | select(.owner == $h) | .locationRegion == "eu-west" and .isAudited and
   (.attributes | any(.key == "location-region" and .value == "eu-west")))' "providers"

# Auth: missing and wrong keys are 401 in the error shape; the right key passes.
AUTH=none req GET /v1/balances
is_error_shape 401 unauthorized "no key"
AUTH=wrong-key-0000 req GET /v1/balances
is_error_shape 401 unauthorized "wrong key"
AUTH=none req POST /v1/deployments '{}'
is_error_shape 401 unauthorized "create without a key"
req GET /v1/balances
expect 200 "balances"
[ "$OUT" = '{"data":{"balance":1000,"deployments":0,"total":1000}}' ] || fail "fresh wallet: $OUT"

# Errors: unknown paths, wrong methods, bad bodies, bad SDL, deposits.
req GET /v1/nothing-here
is_error_shape 404 not_found "unknown path"
req PUT /v1/leases '{}'
is_error_shape 405 bad_request "PUT /v1/leases"
grep -qi '^Allow: POST' <<<"$HDRS" || fail "405 without Allow: $HDRS"
req DELETE /v1/bids
is_error_shape 405 bad_request "DELETE /v1/bids"
req POST /v1/deployments 'this is not json'
is_error_shape 400 bad_request "non-JSON create"
req POST /v1/deployments "{\"sdl\": $J_OPEN, \"deposit\": 5}"
is_error_shape 400 bad_request "unwrapped create"
req POST /v1/deployments "{\"data\": {\"sdl\": $J_BAD, \"deposit\": 5}}"
is_error_shape 400 bad_request "invalid SDL"
[[ $OUT == *'"message":"sdl: services'* ]] || fail "SDL error message: $OUT"
req POST /v1/deployments "{\"data\": {\"sdl\": $J_OPEN, \"deposit\": 0.4}}"
is_error_shape 400 bad_request "deposit below 0.5"
req POST /v1/deployments "{\"data\": {\"sdl\": $J_OPEN}}"
is_error_shape 400 bad_request "no deposit"
req POST /v1/deployments "{\"data\": {\"sdl\": $J_OPEN, \"deposit\": 2000}}"
is_error_shape 402 bad_request "deposit above the balance"
req GET /v1/balances
[ "$OUT" = '{"data":{"balance":1000,"deployments":0,"total":1000}}' ] || fail "refused creates spent: $OUT"

# Create: 201, dseq = creation time in ms as a string, manifest, signTx.
wall_ms=$(($(date +%s%N) / 1000000))
create "$J_AUDITED" 5
D_AUDITED=$DSEQ
M_AUDITED=$MANIFEST_JSON
check '(.data.dseq | test("^[0-9]{13}$")) and
  (.data.manifest | fromjson | .[0].name == "eu-west" and .[0].services[0].image == "nginx:1.25.3") and
  .data.signTx.code == 0 and (.data.signTx.transactionHash | test("^[0-9A-F]{64}$")) and
  (.data.signTx | has("rawLog"))' "create response"
[ "$DSEQ" -ge "$((wall_ms - 1000))" ] || fail "dseq $DSEQ is not a creation time in ms (wall $wall_ms)"
create "$J_OPEN" 5
D_OPEN=$DSEQ
M_OPEN=$MANIFEST_JSON
[ "$D_OPEN" -gt "$D_AUDITED" ] || fail "dseqs not unique and increasing: $D_AUDITED then $D_OPEN"

# Bids: after their bid delay, only providers matching every attribute, the auditor
# requirement and the max price bid (pier asks 300 > 200; quay is not audited).
wait_for 5 "two bids on the open deployment" bid_count "$D_OPEN" 2
wait_for 5 "one bid on the audited deployment" bid_count "$D_AUDITED" 1
sleep 0.3 # more than every bid delay at this speed: nobody else bids
bid_count "$D_AUDITED" 1 || fail "unexpected extra bid: $OUT"
[[ $OUT == *"\"provider\":\"$HARBOR\""* ]] || fail "the audited bid is not harbor's: $OUT"
bid_count "$D_OPEN" 2 || fail "unexpected extra bid: $OUT"
check --arg h "$HARBOR" --arg q "$QUAY" --arg re "$DEC18" '
  ([.data[].bid.id.provider] | sort) == ([$h, $q] | sort) and
  all(.data[]; .bid.state == "open" and .bid.price.denom == "uact" and
      (.bid.price.amount | test($re)) and (.bid.created_at | test("^[0-9]+$")) and
      (.bid.id.dseq | type == "string") and .bid.id.gseq == 1 and .bid.id.oseq == 1 and
      .bid.id.bseq == 0 and (.bid.id.owner | startswith("akash1")) and
      (.bid.resources_offer | length == 1) and .escrow_account.id.scope == "bid") and
  (.data | min_by(.bid.price.amount | tonumber) | .bid.id.provider) == $q and
  (.data[] | select(.bid.id.provider == $q) | .bid.price.amount) == "80.000000000000000000"' \
  "bid set, prices and formats"
req GET /v1/bids
is_error_shape 400 bad_request "bids without dseq"
req GET /v1/bids?dseq=123
expect 200 "bids of an unknown dseq"
[ "$OUT" = '{"data":[]}' ] || fail "bids of an unknown dseq: $OUT"

# Lease: the body is not wrapped, the manifest must match byte for byte, the bid must exist.
req POST /v1/leases "{\"data\": $(lease_body "$D_OPEN" "$QUAY" "$M_OPEN")}"
is_error_shape 400 bad_request "wrapped lease body"
req POST /v1/leases "$(lease_body "$D_OPEN" "$QUAY" "${M_OPEN%\"} \"")"
is_error_shape 400 bad_request "manifest with one more byte"
req POST /v1/leases "$(lease_body "$D_OPEN" "akash1localeuwest0pier00000000000000000000c3" "$M_OPEN")"
is_error_shape 400 bad_request "lease without a bid"
req POST /v1/leases "$(lease_body 999 "$QUAY" "$M_OPEN")"
is_error_shape 404 not_found "lease on an unknown deployment"
req POST /v1/leases "$(lease_body "$D_OPEN" "$QUAY" "$M_OPEN")"
expect 200 "lease the lowest bid"
check --arg q "$QUAY" --arg re "$DEC18" '.data.deployment.state == "active" and
  (.data.leases | length == 1) and .data.leases[0].state == "active" and
  .data.leases[0].id.provider == $q and .data.leases[0].price.amount == "80.000000000000000000" and
  .data.leases[0].status == null and .data.leases[0].closed_on == "0" and
  (.data.leases[0].created_at | test("^[0-9]+$")) and
  .data.escrow_account.state.state == "open" and
  (.data.escrow_account.state.funds[0].amount | test($re))' "lease response"
re='"created_at":"([0-9]+)","closed_on"'
[[ $OUT =~ $re ]] || fail "lease height: $OUT"
LEASE_HEIGHT=${BASH_REMATCH[1]}
req POST /v1/leases "$(lease_body "$D_OPEN" "$QUAY" "$M_OPEN")"
expect 200 "the same lease again (idempotent)"
[ "$(grep -o '"state":"active","price"' <<<"$OUT" | wc -l)" = 1 ] || fail "not one lease: $OUT"
req POST /v1/leases "$(lease_body "$D_OPEN" "$HARBOR" "$M_OPEN")"
is_error_shape 409 conflict "a second provider on a leased order"
bid_count "$D_OPEN" 1 active || fail "winner not active: $OUT"
bid_count "$D_OPEN" 1 lost || fail "other bid not lost: $OUT"
[[ $OUT == *"\"provider\":\"$QUAY\",\"bseq\":0},\"state\":\"active\""* ]] || fail "quay's bid: $OUT"

# Ready after the provider's ready delay: status with every service available == total.
wait_for 5 "the lease to be ready" deployment_matches "$D_OPEN" "$LEASE_READY"
check '.data.leases[0].status.services.web as $s | $s.name == "web" and $s.available == 1 and
  $s.total == 1 and $s.ready_replicas == 1 and ($s.uris | length == 1) and
  ($s.uris[0] | endswith(".ingress.provider.quay.eu-west.local"))' "ready status"

# Escrow settles at the lease price per block: transferred = price × blocks since the
# lease, funds + transferred = the deposit.
escrow_exact() {
  req GET "/v1/deployments/$D_OPEN"
  local re='"funds":\[\{"denom":"uact","amount":"([0-9]+)\.0+"\}\],"transferred":\[\{"denom":"uact","amount":"([0-9]+)\.0+"\}\],"settled_at":"([0-9]+)"'
  [[ $OUT =~ $re ]] || fail "escrow fields: $OUT"
  FUNDS=${BASH_REMATCH[1]}
  PAID=${BASH_REMATCH[2]}
  [ "$PAID" -eq "$((80 * (BASH_REMATCH[3] - LEASE_HEIGHT)))" ] || fail "paid $PAID for blocks $LEASE_HEIGHT..${BASH_REMATCH[3]} at 80"
  [ "$((FUNDS + PAID))" -eq 5000000 ] || fail "funds $FUNDS + paid $PAID != the 5 USD deposit"
}
escrow_exact
T1=$PAID
sleep 0.7 # > 2 blocks of 300 ms
escrow_exact
[ "$PAID" -ge "$((T1 + 160))" ] || fail "escrow did not settle blocks over time: $T1 then $PAID"

# Listing: active deployments only, paginated; leases there carry no status.
create "$J_USWEST" 1
D_CANYON=$DSEQ
M_CANYON=$MANIFEST_JSON
req GET "/v1/deployments?skip=0&limit=2"
expect 200 "list page 1"
check '.data.pagination == {"total": 3, "skip": 0, "limit": 2, "hasMore": true} and
  (.data.deployments | length == 2) and
  all(.data.deployments[].leases[]; has("status") | not)' "page 1"
req GET "/v1/deployments?skip=2&limit=2"
[[ $OUT == '{"data":{"deployments":[{"deployment":{"id":{"owner":"'*'","dseq":"'"$D_CANYON"'"}'*'"pagination":{"total":3,"skip":2,"limit":2,"hasMore":false}}}' ]] ||
  fail "page 2: $OUT"
req GET "/v1/deployments?limit=0"
is_error_shape 400 bad_request "limit 0"
req GET "/v1/deployments?skip=x"
is_error_shape 400 bad_request "skip x"

# Provider capacity: canyon holds one order (open bids count), so a second na-us-west
# deployment gets no bid; it bids once per order, at its bid delay.
create "$J_USWEST" 1
D_CANYON2=$DSEQ
wait_for 5 "canyon's bid" bid_count "$D_CANYON" 1
sleep 0.2
bid_count "$D_CANYON2" 0 || fail "a full provider bid: $OUT"
req POST /v1/leases "$(lease_body "$D_CANYON" "$CANYON" "$M_CANYON")"
expect 200 "lease canyon"

# close-all with a dseq (ml: lose one unit of several): only that deployment's lease.
req POST "/_steward/providers/$CANYON/close-all" "{\"dseq\": \"$D_OPEN\"}"
expect 200 "close-all of another deployment"
[[ $OUT == *'"closed":0,'* ]] || fail "close-all of a deployment canyon does not host: $OUT"
req POST "/_steward/providers/$CANYON/close-all" '{"dseq": "x1"}'
is_error_shape 400 bad_request "close-all with a malformed dseq"
# close-all: the provider closes every lease at once; the deployment stays active.
req POST "/_steward/providers/$CANYON/close-all" "{\"dseq\": \"$D_CANYON\"}"
expect 200 "close-all"
[[ $OUT == *'"closed":1,'* ]] || fail "close-all count: $OUT"
req GET "/v1/deployments/$D_CANYON"
check '.data.deployment.state == "active" and .data.leases[0].state == "closed" and
  .data.leases[0].reason == "lease_closed_reason_unstable" and .data.leases[0].closed_on != "0" and
  .data.leases[0].status == null' "closed by the provider"
req POST /_steward/providers/akash1nobody/close-all
is_error_shape 404 not_found "close-all of an unknown provider"

# closures_per_hour: flaky closes leases on its own (600/h: within seconds here).
create "$J_ASEAST" 1
D_FLAKY=$DSEQ
wait_for 5 "flaky's bid" bid_count "$D_FLAKY" 1
req POST /v1/leases "$(lease_body "$D_FLAKY" "$FLAKY")"
expect 200 "lease flaky"
wait_for 15 "flaky to close its lease" deployment_matches "$D_FLAKY" "$LEASE_CLOSED"
[[ $OUT == *'"reason":"lease_closed_reason_unstable"'* && $OUT == *'"state":"active","hash"'* ]] ||
  fail "provider-closed lease: $OUT"

# Offline provider: its lease status is null (unreachable) until it is back.
req POST /v1/leases "$(lease_body "$D_AUDITED" "$HARBOR" "$M_AUDITED")"
expect 200 "lease harbor"
wait_for 5 "harbor's lease to be ready" deployment_matches "$D_AUDITED" "$LEASE_READY"
req POST "/_steward/providers/$HARBOR/offline"
expect 200 "harbor offline"
deployment_matches "$D_AUDITED" '"state":"active",.*"status":null' || fail "offline status: $OUT"
AUTH=none req GET /v1/providers
[[ $OUT == *"\"owner\":\"$HARBOR\",\"hostUri\":\"https://provider.harbor.eu-west.local:8443\",\"isOnline\":false"* ]] ||
  fail "isOnline false: $OUT"
req POST "/_steward/providers/$HARBOR/online"
deployment_matches "$D_AUDITED" "$LEASE_READY" || fail "online again: $OUT"

# Deposit and auto top-up settings.
req POST /v1/deposit-deployment "{\"data\": {\"dseq\": \"$D_AUDITED\", \"deposit\": 1}}"
expect 200 "deposit"
check '(.data.escrow_account.state.deposits | length == 2) and
  .data.escrow_account.state.deposits[1].balance.amount == "1000000.000000000000000000"' "deposit recorded"
req POST /v1/deposit-deployment '{"data": {"dseq": "42", "deposit": 1}}'
is_error_shape 404 not_found "deposit to an unknown deployment"
req POST /v1/deposit-deployment "{\"data\": {\"dseq\": \"$D_AUDITED\", \"deposit\": 5000}}"
is_error_shape 402 bad_request "deposit above the balance"
req POST /v2/deployment-settings "{\"data\": {\"dseq\": \"$D_AUDITED\", \"autoTopUpEnabled\": true}}"
expect 200 "deployment settings"
[ "$OUT" = "{\"data\":{\"dseq\":\"$D_AUDITED\",\"autoTopUpEnabled\":true}}" ] || fail "settings: $OUT"
req GET "/v2/deployment-settings/$D_AUDITED"
[ "$OUT" = "{\"data\":{\"dseq\":\"$D_AUDITED\",\"autoTopUpEnabled\":true}}" ] || fail "settings read: $OUT"

# Close: idempotent; leases close with the owner's reason; unspent escrow returns.
req DELETE "/v1/deployments/$D_OPEN"
expect 200 "close"
[ "$OUT" = '{"data":{"success":true}}' ] || fail "close response: $OUT"
req DELETE "/v1/deployments/$D_OPEN"
expect 200 "close again"
[ "$OUT" = '{"data":{"success":true}}' ] || fail "close again response: $OUT"
req GET "/v1/deployments/$D_OPEN"
check '.data.deployment.state == "closed" and .data.leases[0].state == "closed" and
  .data.leases[0].reason == "lease_closed_owner" and .data.leases[0].closed_on != "0" and
  .data.escrow_account.state.state == "closed" and
  .data.escrow_account.state.funds[0].amount == "0.000000000000000000"' "closed deployment"
req DELETE /v1/deployments/424242
is_error_shape 404 not_found "close an unknown deployment"
req DELETE /v1/deployments/abc
is_error_shape 400 bad_request "close a malformed dseq"
req GET /_steward/state
expect 200 "state dump"
# Every USD the wallet misses is in an open escrow or was paid to a provider.
check --arg d "$D_OPEN" '.data as $s | ([$s.deployments[] | .transferred_uact | tonumber] | add) as $paid |
  ([$s.deployments[] | select(.state == "active") | .funds_uact | tonumber] | add) as $held |
  (($s.balance * 1e6 + $held + $paid) - 1e9 | fabs) < 0.01 and
  $s.counts.deployments == 5 and $s.counts.deployments_active == 4 and
  ($s.deployments[] | select(.dseq == $d) | .close_cause == "owner" and
   .env.STEWARD_KEY == "web/eu-west/1")' "state dump: money conserved, counts, env"

# Faults, switched at runtime (admin endpoints are never faulted).
set_faults() {
  req POST /_steward/faults "$1"
  expect 200 "set faults $1"
}
AUTH=none req POST /_steward/faults '{"rate_429": 1}'
is_error_shape 401 unauthorized "faults without a key"
req POST /_steward/faults '{"rate_429": 2}'
is_error_shape 400 bad_request "a rate above 1"
req POST /_steward/faults '{"rate_teapot": 1}'
is_error_shape 400 bad_request "an unknown fault"

set_faults '{"rate_429": 1}'
req POST /v1/deployments "{\"data\": {\"sdl\": $J_OPEN, \"deposit\": 1}}"
is_error_shape 429 rate_limited "injected 429"
grep -qi '^Retry-After: [0-9]' <<<"$HDRS" || fail "429 without Retry-After: $HDRS"
AUTH=none req GET /v1/providers
expect 429 "providers are faulted too"
set_faults '{"rate_429": 0, "rate_5xx": 1}'
req GET /v1/balances
case "$CODE" in 500) code=unknown_error ;; 502 | 503) code=service_unavailable ;; *) fail "injected 5xx: got $CODE" ;; esac
is_error_shape "$CODE" "$code" "injected 5xx"
set_faults '{"rate_5xx": 0, "rate_malformed": 1}'
saw_truncated=0
saw_html=0
for _ in $(seq 1 12); do
  req GET /v1/balances
  expect 200 "malformed answers keep their status"
  case "$OUT" in
    "<html>"*) saw_html=1 ;;
    '{"data":{"balance":'*'}}') fail "a malformed answer was whole: $OUT" ;;
    '{"data":'*) saw_truncated=1 ;;
    *) fail "unexpected malformed body: $OUT" ;;
  esac
done
[ "$saw_truncated$saw_html" = 11 ] || fail "malformed bodies: truncated $saw_truncated, html $saw_html"
# A malformed answer hides a request that was applied.
req POST /v1/deployments "{\"data\": {\"sdl\": $J_OPEN, \"deposit\": 1}}"
set_faults '{"rate_malformed": 0, "rate_drop": 1}'
req GET /v1/balances
[ "$CODE" = 000 ] || fail "dropped connection answered $CODE"
rc=0
curl -sS -o /dev/null -H "x-api-key: $KEY" "http://127.0.0.1:$PORT/v1/balances" 2>/dev/null || rc=$?
[ "$rc" = 52 ] || fail "a dropped connection should be curl's empty reply (52), got $rc"
set_faults '{"rate_drop": 0, "latency_ms": 300}'
t=$(curl -sS -o /dev/null -w '%{time_total}' -H "x-api-key: $KEY" "http://127.0.0.1:$PORT/v1/balances")
awk -v t="$t" 'BEGIN { exit !(t >= 0.3) }' || fail "latency 300 ms took ${t}s"
set_faults '{"latency_ms": 0, "latency_spike_ms": 400, "latency_spike_rate": 1}'
t=$(curl -sS -o /dev/null -w '%{time_total}' -H "x-api-key: $KEY" "http://127.0.0.1:$PORT/v1/balances")
awk -v t="$t" 'BEGIN { exit !(t >= 0.4) }' || fail "latency spike 400 ms took ${t}s"
set_faults '{"latency_spike_ms": 0, "latency_spike_rate": 0}'
[ "$OUT" = '{"data":{"latency_ms":0,"latency_spike_ms":0,"latency_spike_rate":0,"rate_429":0,"rate_5xx":0,"rate_malformed":0,"rate_drop":0}}' ] ||
  fail "faults reset: $OUT"
req GET /_steward/state
check '.data.counts.deployments == 6 and .data.requests.injected_429 == 2 and
  .data.requests.injected_5xx == 1 and .data.requests.injected_malformed == 13 and
  .data.requests.injected_drop == 2 and .data.requests.delayed == 2' "fault counters"

# Garbage never crashes the server: random bodies on every POST route, truncated JSON,
# deep nesting, mutated SDL, oversized bodies, a non-HTTP request, a huge URL.
for path in /v1/deployments /v1/leases /v1/deposit-deployment /v2/deployment-settings; do
  for _ in $(seq 1 12); do
    head -c "$((RANDOM % 3000 + 1))" /dev/urandom >"$W/garbage"
    code=$(curl -sS -o "$W/resp" -w '%{http_code}' -H "x-api-key: $KEY" \
      --data-binary @"$W/garbage" "http://127.0.0.1:$PORT$path") || code=curl-failed
    [ "$code" = 400 ] || fail "garbage to $path: $code $(head -c 200 "$W/resp")"
  done
  for body in '{"data":' 'null' '[]' '{"data":{"sdl":5,"deposit":5}}' '{"data":[1]}' \
    '{"manifest":5,"leases":"x"}' '{"leases":[{"dseq":"1","gseq":0,"oseq":1,"provider":"p"}]}' \
    '{"data":{"dseq":"-1","deposit":1}}' '{"data":{"sdl":"a: [","deposit":1}}'; do
    req POST "$path" "$body"
    case "$CODE" in 400 | 404) ;; *) fail "body $body to $path: $CODE $OUT" ;; esac
  done
done
req POST /v1/deployments "$(printf '%0.s[' $(seq 1 5000))"
is_error_shape 400 bad_request "5000 nested arrays"
# The SDL without each one of its lines: created or refused, never anything else.
jq -Rsc 'rtrimstr("\n") | split("\n") as $l | range(0; $l | length) as $i |
  {data: {sdl: ($l[:$i] + $l[$i + 1:] | join("\n")), deposit: 0.5}}' <<<"$SDL_OPEN" >"$W/mutants"
while IFS= read -r body; do
  req POST /v1/deployments "$body"
  case "$CODE" in 201 | 400) ;; *) fail "SDL mutant: $CODE $OUT ($body)" ;; esac
done <"$W/mutants"
head -c 1500000 /dev/zero | tr '\0' 'x' >"$W/big"
CODE=$(curl -sS -o "$W/resp" -w '%{http_code}' -H "x-api-key: $KEY" --data-binary @"$W/big" \
  "http://127.0.0.1:$PORT/v1/deployments")
OUT=$(<"$W/resp")
is_error_shape 413 bad_request "a 1.5 MB body"
head -c 3000000 /dev/zero | tr '\0' 'x' >"$W/huge"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "x-api-key: $KEY" --data-binary @"$W/huge" \
  "http://127.0.0.1:$PORT/v1/deployments" 2>/dev/null) || true
[ "$code" = 413 ] || fail "a 3 MB body: $code"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GARBAGE\x01\x02 NOT HTTP\r\n\r\n' >&3
answer=$(timeout 5 head -c 12 <&3 || true)
exec 3<&- 3>&-
[ "$answer" = "HTTP/1.1 400" ] || fail "non-HTTP request answered: $answer"
long=$(head -c 20000 /dev/zero | tr '\0' 'a')
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/$long") || true
case "$code" in 414 | 431) ;; *) fail "a 20 KB URL: $code" ;; esac
AUTH=none req GET /v1/providers
expect 200 "alive after the garbage"

# Restart on the same state file: the same deployments, balance and clock continue.
req GET "/v1/deployments?limit=1"
re='"total":([0-9]+),'
[[ $OUT =~ $re ]] || fail "list: $OUT"
TOTAL_BEFORE=${BASH_REMATCH[1]}
req GET /v1/balances
BALANCE_BEFORE=$OUT
stop_server "$PID_A"
start_server a --speed 20 --seed 7
PID_A=$PID
req GET "/v1/deployments?limit=1"
[[ $OUT == *"\"total\":$TOTAL_BEFORE,"* ]] || fail "deployments after a restart: $OUT (before: $TOTAL_BEFORE)"
req GET /v1/balances
[ "${OUT%%,*}" = "${BALANCE_BEFORE%%,*}" ] || fail "balance after a restart: $OUT (before: $BALANCE_BEFORE)"
deployment_matches "$D_OPEN" "$DEP_CLOSED" || fail "closed deployment after a restart: $OUT"
create "$J_OPEN" 0.5
[ "$DSEQ" -gt "$D_OPEN" ] || fail "dseq went backwards after a restart"
stop_server "$PID_A"
# Heights derive from the block time: a state file keeps the one it was created with.
rc=0
"$STEWARD_BIN" market serve --listen 127.0.0.1:0 --state "$W/a.db" --providers "$PROVIDERS" \
  --block-time 1s >/dev/null 2>"$W/blocktime.err" || rc=$?
[ "$rc" = 2 ] && grep -q 'created with --block-time 6000ms' "$W/blocktime.err" ||
  fail "another block time on the same state: exit $rc, $(cat "$W/blocktime.err")"

# ---- B: time-driven behaviour, compressed -------------------------------------------------
# Default windows at 300×: bids close after 5 min (1 s), unleased deployments after 10 min (2 s).
start_server b --speed 300 --seed 3
create "$J_OPEN" 2
D_EXPIRE=$DSEQ
wait_for 3 "bids" bid_count "$D_EXPIRE" 2 open
wait_for 5 "bids to expire" bid_count "$D_EXPIRE" 2 closed
req POST /v1/leases "$(lease_body "$D_EXPIRE" "$QUAY")"
is_error_shape 400 bad_request "lease on an expired bid"
[[ $OUT == *"closed, not open"* ]] || fail "expired bid message: $OUT"
wait_for 6 "the unleased deployment to close" deployment_matches "$D_EXPIRE" "$DEP_CLOSED"
[[ $OUT == *'"leases":[],'* && $OUT == *'"state":"closed","funds"'* ]] || fail "unleased close: $OUT"
req GET /v1/balances
[ "$OUT" = '{"data":{"balance":1000,"deployments":0,"total":1000}}' ] || fail "deposit not returned: $OUT"
stop_server "$PID"

# Escrow running dry: 0.5 USD at 10000 uact/block lasts 50 blocks (1 s here).
start_server b2 --speed 300 --seed 3 --bid-ttl 1h
create "$J_REEF" 0.5
D_DRY=$DSEQ
M_DRY=$MANIFEST_JSON
wait_for 3 "reef's bid" bid_count "$D_DRY" 1 open
req POST /v1/leases "$(lease_body "$D_DRY" "$REEF" "$M_DRY")"
expect 200 "lease reef"
wait_for 6 "the escrow to run dry" deployment_matches "$D_DRY" "$DEP_CLOSED"
check '.data.leases[0].state == "insufficient_funds" and
  .data.leases[0].reason == "lease_closed_reason_insufficient_funds" and
  .data.escrow_account.state.state == "overdrawn" and
  .data.escrow_account.state.funds[0].amount == "0.000000000000000000" and
  .data.escrow_account.state.transferred[0].amount == "500000.000000000000000000"' "overdrawn escrow"
req GET /v1/deployments
[[ $OUT != *"\"dseq\":\"$D_DRY\""* ]] || fail "an overdrawn deployment is listed: $OUT"

# Auto top-up keeps the same deployment alive from the wallet.
create "$J_REEF" 0.5
D_TOPUP=$DSEQ
wait_for 3 "reef's bid" bid_count "$D_TOPUP" 1 open
req POST /v1/leases "$(lease_body "$D_TOPUP" "$REEF")"
expect 200 "lease reef again"
req POST /v2/deployment-settings "{\"data\": {\"dseq\": \"$D_TOPUP\", \"autoTopUpEnabled\": true}}"
expect 200 "enable auto top-up"
sleep 1.5
req GET "/v1/deployments/$D_TOPUP"
check '.data.deployment.state == "active" and .data.leases[0].state == "active" and
  (.data.escrow_account.state.deposits | length >= 2) and
  (.data.escrow_account.state.transferred[0].amount | tonumber) > 500000' "topped up"
stop_server "$PID"

# ---- C: fault flags on the command line replay from the seed --------------------------------
fault_flags=(--rate-429 0.2 --rate-5xx 0.2 --rate-drop 0.15 --rate-malformed 0.2 --latency-ms 20)
sequence() { # 30 requests; one token each: the status, or "bad" for a mangled 200
  SEQ=""
  for _ in $(seq 1 30); do
    req GET /v1/balances
    if [ "$CODE" = 200 ] && [[ $OUT != '{"data":{"balance":'*'}}' ]]; then
      SEQ="$SEQ bad"
    else
      SEQ="$SEQ $CODE"
    fi
  done
}
start_server c1 --seed 42 "${fault_flags[@]}"
t0=$(date +%s%N)
sequence
elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
SEQ1=$SEQ
stop_server "$PID"
start_server c2 --seed 42 "${fault_flags[@]}"
sequence
SEQ2=$SEQ
stop_server "$PID"
start_server c3 --seed 43 "${fault_flags[@]}"
sequence
SEQ3=$SEQ
stop_server "$PID"
[ "$SEQ1" = "$SEQ2" ] || fail "the same seed gave different faults: [$SEQ1] [$SEQ2]"
[ "$SEQ1" != "$SEQ3" ] || fail "another seed gave the same faults: $SEQ1"
for token in 200 429 bad 000; do
  grep -qw -- "$token" <<<"$SEQ1" || fail "no '$token' in the seeded sequence: $SEQ1"
done
grep -qwE '500|502|503' <<<"$SEQ1" || fail "no 5xx in the seeded sequence: $SEQ1"
[ "$elapsed_ms" -ge 600 ] || fail "--latency-ms 20 on 30 requests took only ${elapsed_ms} ms"

echo "ok: market server contract, lifecycle, escrow, expiry, faults and garbage input"
