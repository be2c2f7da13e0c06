#!/usr/bin/env bash
# The evaluation history end to end (`steward run` on the demo configuration, whose policy
# follow-demand keeps state: smoothing and a hold-down timer):
#   - with "history": {"keep": "5m"} the journal keeps only the last minutes of
#     evaluations, from the policy's latest ctx.state snapshot at or before the cut on
#     (snapshots: the first evaluation, then every 10 minutes), while intents and events
#     older than that stay; the units and offers of the inputs are stored once per distinct
#     content (far fewer rows than evaluations);
#   - `steward replay` reproduces every decision (0 differ) from any starting point: on a
#     journal kept whole, with --from in the middle, and after the cut; the same journals
#     without their snapshots (as written before them) start from an empty state, say so on
#     stderr and differ;
#   - `steward replay --from` and GET /v1/decisions?since= older than what is kept say which
#     span the journal still holds; a window entirely before it is an error (exit 2);
#   - "forever" deletes nothing.
# The live clock runs 200 times faster (`--speed 200`) so 40 minutes of clock, four snapshot
# intervals, take 12 s; the 10-minute interval itself is not configurable.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ -n "${STEWARD_BIN:-}" ] && [ -x "$STEWARD_BIN" ] || { echo "SKIP: no steward binary"; exit 77; }
require_tool curl
require_tool python3
require_tool sqlite3

new_workdir
work=$WORKDIR
log="$work/steward.log"
port=$(free_port)
api="http://127.0.0.1:$port"
export STEWARD_ADMIN_TOKEN="adm-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"

# config NAME KEEP [ADMIN_PORT]: the demo writing to $work/NAME.db with history.keep KEEP.
config() {
  python3 - "$SW_SOURCE_DIR" "$work" "$1" "$2" "${3:-}" <<'PY'
import sys
src, work, name, keep, port = sys.argv[1:]
s = open(f"{src}/examples/demo/steward.jsonc").read()
s = s.replace('"../providers/demo.json"', f'"{src}/examples/providers/demo.json"')
s = s.replace('"../../policies/follow_demand.lua"', f'"{src}/policies/follow_demand.lua"')
s = s.replace('"state": "demo.db",', f'"state": "{work}/{name}.db",', 1)
extra = f'"history": {{ "keep": {keep} }},'
if port:
    extra += (f' "admin": {{ "listen": "127.0.0.1:{port}", '
              '"token_env": "STEWARD_ADMIN_TOKEN" },')
s = s.replace('"seed": 42,', '"seed": 42,\n  ' + extra, 1)
assert '"history"' in s and f'{name}.db' in s
open(f"{work}/{name}.jsonc", "w").write(s)
PY
}
q() { sqlite3 "$work/$1.db" "$2"; }

# ---- a 5 minute window, 40 minutes of clock ----------------------------------------------------
config short '"5m"' "$port"
"$STEWARD_BIN" run -c "$work/short.jsonc" --speed 200 --for 40m --log-level warn 2>"$log" &
pid=$!
SW_TEST_PIDS+=("$pid")
for _ in $(seq 1 100); do
  curl -sf "$api/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || fail "steward exited early: $(tail -5 "$log")"
  sleep 0.1
done
# Once retention has run (from 15 minutes of clock on: the second snapshot is 5 minutes
# old), a `since` before the window says what is left.
note=""
for _ in $(seq 1 200); do
  note=$(curl -sf "$api/v1/decisions?since=1000&limit=1" |
         python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("note", ""), d.get("kept_from_ms", ""))')
  [ -n "${note// /}" ] && break
  sleep 0.1
done
case "$note" in
  "evaluations before "*" were deleted (history.keep); the journal holds "*" to "*" "[0-9]*) ;;
  *) fail "no note for a since older than the kept history: '$note'" ;;
esac
# The text CLI says it too, after the list.
"$STEWARD_BIN" decisions --since 1000 --limit 1 --api "$api" >"$work/cli.txt" ||
  fail "steward decisions failed: $(cat "$work/cli.txt")"
grep -q "^note: evaluations before .* were deleted (history.keep)" "$work/cli.txt" ||
  fail "steward decisions does not show the note: $(cat "$work/cli.txt")"
# A since inside the kept span has no note.
curl -sf "$api/v1/decisions?since=10s&limit=1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert "note" not in d and "kept_from_ms" not in d, d.keys()
' || fail "note on a since within the kept history"
wait "$pid" || fail "live run failed: $(tail -5 "$log")"

mark=$(q short "SELECT value FROM meta WHERE key = 'history_pruned_before_ms'")
[ -n "$mark" ] || fail "retention never ran"
read -r oldest newest count < <(q short "SELECT min(at_ms), max(at_ms), count(*) FROM evaluations" | tr '|' ' ')
[ "$oldest" -ge "$mark" ] || fail "an evaluation older than the mark is left ($oldest < $mark)"
# Kept: at least the window, at most the window, one snapshot interval and a retention period
# (a quarter of the window).
span=$((newest - oldest))
[ "$span" -ge 290000 ] && [ "$span" -le 990000 ] ||
  fail "evaluations span $span ms, window 5 min, snapshots every 10 min"
[ "$count" -ge 8 ] || fail "only $count evaluations kept"
# The kept history starts at a snapshot; no snapshot is left without its evaluation.
[ "$(q short "SELECT min(eval_id) FROM eval_snapshots")" = \
  "$(q short "SELECT min(id) FROM evaluations")" ] || fail "the kept history does not start at a snapshot"
[ "$(q short "SELECT count(*) FROM eval_snapshots s WHERE NOT EXISTS
               (SELECT 1 FROM evaluations e WHERE e.id = s.eval_id)")" -eq 0 ] ||
  fail "snapshots without their evaluation"
[ "$(q short "SELECT count(*) FROM intents WHERE created_ms < $mark")" -ge 1 ] ||
  fail "no intent older than the window: retention must not touch them, the test needs some"
[ "$(q short "SELECT count(*) FROM events WHERE at_ms < $mark")" -ge 0 ] || fail "events"
shared=$(q short "SELECT count(*) FROM eval_inputs_shared")
split=$(q short "SELECT count(*) FROM eval_inputs")
[ "$split" -eq "$count" ] || fail "$split split inputs for $count evaluations"
[ "$shared" -lt "$count" ] || fail "$shared shared parts for $count evaluations: nothing shared"
[ "$(q short "SELECT count(*) FROM eval_inputs_shared s WHERE NOT EXISTS
               (SELECT 1 FROM eval_inputs i WHERE i.shared_id = s.id)")" -le 1 ] ||
  fail "unreferenced shared parts left behind"

# ---- replay after the cut ---------------------------------------------------------------------
# replay_ok NAME DB [ARGS...]: 0 differ, no warning; the summary in $work/NAME.txt.
replay_ok() {
  local name=$1 db=$2
  shift 2
  "$STEWARD_BIN" replay --state "$work/$db.db" -c "$work/$db.jsonc" "$@" >"$work/$name.txt" \
      2>"$work/$name.err" || fail "replay $name $*: $(tail -3 "$work/$name.txt") $(cat "$work/$name.err")"
  grep -Eq "^replayed [0-9]+ of [0-9]+ evaluations: 0 differ" "$work/$name.txt" ||
    fail "replay $name: $(tail -1 "$work/$name.txt")"
}
# replay_differs NAME DB [ARGS...]: the journal without its snapshots (as written before
# them): starts from an empty state, says so, and prints the differences count in $differ.
replay_differs() {
  local name=$1 db=$2
  shift 2
  cp "$work/$db.db" "$work/$db-nosnap.db"
  sqlite3 "$work/$db-nosnap.db" "DELETE FROM eval_snapshots"
  set +e
  "$STEWARD_BIN" replay --state "$work/$db-nosnap.db" -c "$work/$db.jsonc" "$@" \
      >"$work/$name.txt" 2>"$work/$name.err"
  local rc=$?
  set -e
  [ "$rc" -le 1 ] || fail "replay $name failed ($rc): $(cat "$work/$name.err")"
  grep -q "no ctx.state snapshot at or before .*: replaying from an empty state" "$work/$name.err" ||
    fail "replay $name: no empty-state note: $(cat "$work/$name.err")"
  differ=$(sed -nE 's/^replayed [0-9]+ of [0-9]+ evaluations: ([0-9]+) differ.*/\1/p' "$work/$name.txt")
  [ -n "$differ" ] || fail "replay $name: $(tail -1 "$work/$name.txt")"
}

# From the oldest kept evaluation: its snapshot seeds the policy, the rest reproduce.
replay_ok cut short
grep -Eq "^replayed $((count - 1)) of $count evaluations: 0 differ \(the first of a kept history seeds" \
    "$work/cut.txt" || fail "unexpected replay summary: $(tail -1 "$work/cut.txt")"
[ ! -s "$work/cut.err" ] || fail "replay without --from warned: $(cat "$work/cut.err")"
# From the middle of what is kept: seeded from the snapshot before, warmed up, exact.
mid=$(( (oldest + newest) / 2000 ))
replay_ok cutmid short --from "$mid"
[ ! -s "$work/cutmid.err" ] || fail "replay --from $mid warned: $(cat "$work/cutmid.err")"
# Before this change: an empty state at the cut, differences until it caught up.
replay_differs cut0 short
[ "$differ" -ge 1 ] || fail "without snapshots the replay after the cut reproduced everything: \
the test cannot tell"

set +e
"$STEWARD_BIN" replay --state "$work/short.db" -c "$work/short.jsonc" --from 0 \
    >"$work/replay0.txt" 2>"$work/replay0.err"
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "replay --from 0 exited $rc: $(cat "$work/replay0.txt" "$work/replay0.err")"
grep -q "evaluations before .* were deleted (history.keep); the journal holds .* to .*; replaying from there" \
    "$work/replay0.err" || fail "no message for a window older than the journal: $(cat "$work/replay0.err")"
grep -Eq "^replayed $((count - 1)) of $count evaluations: 0 differ" "$work/replay0.txt" ||
  fail "replay --from 0: $(tail -1 "$work/replay0.txt")"

set +e
"$STEWARD_BIN" replay --state "$work/short.db" -c "$work/short.jsonc" --from 0 \
    --to $((mark / 1000 - 1)) >"$work/replay1.txt" 2>"$work/replay1.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "a window entirely before the kept history exited $rc, expected 2"
grep -q "nothing to replay in the window: evaluations before .* were deleted (history.keep); the journal holds" \
    "$work/replay1.err" || fail "unexpected message: $(cat "$work/replay1.err")"

# ---- forever keeps everything -----------------------------------------------------------------
config forever '"forever"'
"$STEWARD_BIN" run -c "$work/forever.jsonc" --speed 200 --for 40m --log-level warn 2>>"$log" ||
  fail "live run (forever) failed"
[ -z "$(q forever "SELECT value FROM meta WHERE key = 'history_pruned_before_ms'")" ] ||
  fail "forever: retention ran"
read -r oldest newest count < <(q forever "SELECT min(at_ms), max(at_ms), count(*) FROM evaluations" | tr '|' ' ')
[ $((newest - oldest)) -ge 2300000 ] && [ "$count" -ge 400 ] ||
  fail "forever: $count evaluations over $((newest - oldest)) ms"
# A snapshot at the first evaluation, then with the first evaluation 10 minutes of clock or
# more after the last (every 5 s here: a gap of 600 to 605 s, more if the loop lagged).
snaps=$(q forever "SELECT count(*) FROM eval_snapshots")
[ "$snaps" -ge $(( (newest - oldest) / 620000 + 1 )) ] &&
  [ "$snaps" -le $(( (newest - oldest) / 600000 + 1 )) ] ||
  fail "forever: $snaps snapshots over $((newest - oldest)) ms"
[ "$(q forever "SELECT count(*) FROM eval_snapshots s JOIN eval_snapshots n ON n.eval_id =
               (SELECT min(eval_id) FROM eval_snapshots WHERE eval_id > s.eval_id)
               WHERE n.at_ms - s.at_ms < 600000")" -eq 0 ] ||
  fail "forever: two snapshots less than 10 minutes apart"
[ "$(q forever "SELECT min(eval_id) FROM eval_snapshots")" = "$(q forever "SELECT min(id) FROM evaluations")" ] ||
  fail "forever: no snapshot at the first evaluation"
# Replay over rows written through the split inputs reproduces every decision.
[ "$(q forever "SELECT count(*) FROM eval_inputs")" -eq "$count" ] || fail "forever: rows not split"
replay_ok full forever
grep -Eq "^replayed $count of $count evaluations: 0 differ$" "$work/full.txt" ||
  fail "unexpected replay summary: $(cat "$work/full.txt")"
# From three points in the middle: exact with the snapshots, not without them.
total=0
for quarter in 1 2 3; do
  from=$(( (oldest + (newest - oldest) * quarter / 4) / 1000 ))
  replay_ok "from$quarter" forever --from "$from"
  replay_differs "nosnap$quarter" forever --from "$from"
  total=$((total + differ))
done
[ "$total" -ge 1 ] || fail "without snapshots every --from reproduced everything: the test cannot tell"
# A restart writes one with its first evaluation, whatever the time since the last. (Not
# replayed: under --speed the second run's clock starts at the wall time again, inside the
# first run's compressed span, which a real clock never does.)
last=$(q forever "SELECT max(id) FROM evaluations")
"$STEWARD_BIN" run -c "$work/forever.jsonc" --speed 200 --for 2m --log-level warn 2>>"$log" ||
  fail "live run (forever, restarted) failed"
[ "$(q forever "SELECT min(eval_id) FROM eval_snapshots WHERE eval_id > $last")" = \
  "$(q forever "SELECT min(id) FROM evaluations WHERE id > $last")" ] ||
  fail "no snapshot at the first evaluation after a restart"
echo "history: ok ($total differences without snapshots, 0 with them)"
