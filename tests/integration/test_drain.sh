#!/usr/bin/env bash
# SIGTERM drains: with marketplace operations in flight, steward stops deciding at once,
# waits for those operations to finish (bounded), journals their outcome, flushes and
# exits 0, leaving no intent pending. A second signal stops without waiting.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool curl
require_tool python3
require_tool sqlite3

new_workdir
work=$WORKDIR
cp "$SW_SOURCE_DIR"/tests/faults/fixtures/{churn.jsonc,churn.lua,providers_fast.json} "$work/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$work/churn.jsonc" "$port" <<'PY'
import sys
p, port = sys.argv[1:]
s = open(p).read()
s = s.replace('"seed": 7,', '"seed": 7,\n  "admin": { "listen": "127.0.0.1:%s" },' % port, 1)
open(p, "w").write(s)
PY

in_flight() {
  curl -sf "http://127.0.0.1:$port/v1/status" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["ops_in_flight"])' 2>/dev/null ||
    echo 0
}

# Starts steward, sends $2 SIGTERMs once an operation is in flight, waits for the exit.
# Retries (up to 5 runs) when the operation finished between the check and the signal,
# so the log really shows a drain. $1: log file.
run_once() {
  local attempt n
  for attempt in 1 2 3 4 5; do
    "$STEWARD_BIN" run -c "$work/churn.jsonc" 2>"$1" &
    pid=$!
    SW_TEST_PIDS+=("$pid")
    n=0
    for _ in $(seq 1 200); do
      n=$(in_flight)
      [ "$n" -gt 0 ] && break
      sleep 0.05
    done
    [ "$n" -gt 0 ] || fail "no operation ever in flight"
    for _ in $(seq 1 "$2"); do kill -TERM "$pid" 2>/dev/null || true; sleep 0.05; done
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" = 0 ] || fail "exit status $rc"
    grep -q 'no new decisions; waiting' "$1" && return 0
  done
  fail "five runs and never a signal while an operation was in flight"
}

log="$work/drain.log"
started=$(date +%s%N)
run_once "$log" 1
took=$(( ($(date +%s%N) - started) / 1000000 ))
grep -q 'terminated (SIGTERM): no new decisions; waiting up to 10s for' "$log" || fail "no drain"
grep -q 'stopping: terminated (SIGTERM)' "$log" || fail "no orderly stop"
after=$(sed -n '/no new decisions; waiting/,$p' "$log")
if grep -q 'runtime\] acquire \| policy churn wants' <<<"$after"; then
  fail "decisions after the drain began: $(grep 'acquire \|wants' <<<"$after" | head -3)"
fi
grep -q 'drain deadline' "$log" && fail "operations outlived the drain deadline"
pending=$(sqlite3 "$work/crash.db" "SELECT count(*) FROM intents WHERE state = 0")
[ "$pending" = 0 ] || fail "$pending intents left pending after a drained stop"

# A second signal does not wait.
log2="$work/drain2.log"
run_once "$log2" 2
grep -q 'second signal: not waiting' "$log2" || fail "second signal ignored"
echo "ok: drained in ${took} ms with no intent pending; a second SIGTERM stops at once"
