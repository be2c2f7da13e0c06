#!/usr/bin/env bash
# steward simulate and steward replay through the CLI:
#   - the shipped example runs (one simulated day), writes its four files, and a second run
#     gives the same report.json bytes; --json prints it; --compare overlays two configs;
#   - a bad trace fails with exit 2 and a FILE:LINE:COLUMN message;
#   - a journal recorded by a short live `steward run --speed 50` of examples/demo replays
#     with 0 differences under the unchanged policy, and with differences (exit 1) under a
#     modified one;
#   - the same policy and trace on the live clock (`steward run --speed 50` on market_sim,
#     the trace played by metrics_trace) and through `steward simulate` make the same
#     sequence of acquire/release decisions.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ -n "${STEWARD_BIN:-}" ] && [ -x "$STEWARD_BIN" ] || { echo "SKIP: no steward binary"; exit 77; }
new_workdir
work=$WORKDIR
src=$SW_SOURCE_DIR
log="$work/steward.log"

# ---- simulate ------------------------------------------------------------------------------
"$STEWARD_BIN" simulate -c "$src/examples/sim/steward.jsonc" \
    --trace "$src/examples/traces/demand_7d.csv" --to 1d --out "$work/a" >"$work/a.txt" 2>"$log" \
    || fail "simulate failed"
for f in report.json report.html timeline.csv run.json; do
  [ -s "$work/a/$f" ] || fail "simulate did not write $f"
done
grep -q '"cost_usd"' "$work/a/report.json" || fail "report.json has no cost_usd"
grep -q '"slo_violation_minutes"' "$work/a/report.json" || fail "no slo_violation_minutes"
grep -q '<svg' "$work/a/report.html" || fail "report.html has no SVG"
grep -q 'wall_s' "$work/a/run.json" || fail "run.json has no wall_s"
grep -q '^cost_usd' "$work/a.txt" || fail "no summary table on stdout"
head -1 "$work/a/timeline.csv" | grep -q '^run,time_s,policy,desired_total' || fail "timeline header"
rows=$(($(wc -l <"$work/a/timeline.csv") - 1))
evals=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["evaluations"])' \
        "$work/a/report.json")
# One row per evaluation: 8641 scheduled ticks in a day at 10 s, plus any repair evaluation
# a lost unit triggered.
[ "$rows" -eq "$evals" ] && [ "$rows" -ge 8641 ] ||
  fail "timeline has $rows rows, report counts $evals evaluations (at least 8641 expected)"

"$STEWARD_BIN" simulate -c "$src/examples/sim/steward.jsonc" \
    --trace "$src/examples/traces/demand_7d.csv" --to 1d --out "$work/b" --quiet >"$work/b.txt" \
    2>>"$log" || fail "second simulate failed"
[ ! -s "$work/b.txt" ] || fail "--quiet printed something"
cmp "$work/a/report.json" "$work/b/report.json" || fail "report.json differs between two runs"

"$STEWARD_BIN" simulate -c "$src/examples/sim/steward.jsonc" \
    --trace "$src/examples/traces/demand_7d.csv" --to 1d --json >"$work/c.json" 2>>"$log" \
    || fail "--json failed"
cmp "$work/a/report.json" "$work/c.json" || fail "--json output differs from report.json"

"$STEWARD_BIN" simulate -c "$src/examples/sim/steward.jsonc" \
    --trace "$src/examples/traces/demand_7d.csv" --to 6h --out "$work/cmp" \
    --compare "$src/examples/sim/steward-eager.jsonc" >"$work/cmp.txt" 2>>"$log" \
    || fail "--compare failed"
grep -q 'steward-eager.jsonc' "$work/cmp.txt" || fail "compare table lacks the second config"
grep -q '"compare"' "$work/cmp/report.json" || fail "report.json lacks compare"
grep -q 'data-run="2"' "$work/cmp/report.html" || fail "HTML lacks the second run"

# ---- bad input -------------------------------------------------------------------------------
printf 'time_s,region,rps\n0,eu-west,10\n60,eu-west\n' >"$work/ragged.csv"
set +e
"$STEWARD_BIN" simulate -c "$src/examples/sim/steward.jsonc" --trace "$work/ragged.csv" \
    --quiet 2>"$work/err.txt"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "a ragged trace exited $rc, expected 2"
grep -q "ragged.csv:3:11: expected 3 fields like the header, got 2" "$work/err.txt" \
    || fail "unexpected message: $(cat "$work/err.txt")"

# ---- replay of a live run --------------------------------------------------------------------
sed -e "s#\"state\": \"demo.db\"#\"state\": \"$work/live.db\"#" \
    -e "s#\.\./providers/demo.json#$src/examples/providers/demo.json#" \
    -e "s#\.\./\.\./policies/follow_demand.lua#$src/policies/follow_demand.lua#" \
    "$src/examples/demo/steward.jsonc" >"$work/live.jsonc"
"$STEWARD_BIN" run -c "$work/live.jsonc" --speed 50 --for 200s --log-level warn 2>>"$log" \
    || fail "live run failed"
"$STEWARD_BIN" replay --state "$work/live.db" -c "$work/live.jsonc" >"$work/replay.txt" \
    2>>"$log" || fail "replay of the unchanged policy reported differences: $(cat "$work/replay.txt")"
grep -Eq '^replayed ([2-9][0-9]|[1-9][0-9]{2,}) of [0-9]+ evaluations: 0 differ' "$work/replay.txt" \
    || fail "unexpected replay summary: $(cat "$work/replay.txt")"

sed 's#math.ceil(avg / per_unit)#math.ceil(avg / per_unit) + 1#' "$src/policies/follow_demand.lua" \
    >"$work/v2.lua"
sed "s#$src/policies/follow_demand.lua#$work/v2.lua#" "$work/live.jsonc" >"$work/v2.jsonc"
set +e
"$STEWARD_BIN" replay --state "$work/live.db" -c "$work/v2.jsonc" >"$work/replay2.txt" 2>>"$log"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "replay of a changed policy exited $rc, expected 1"
grep -q '^eval [0-9]* at .* follow-demand: recorded {"web"' "$work/replay2.txt" \
    || fail "no difference lines: $(head -3 "$work/replay2.txt")"
"$STEWARD_BIN" replay --state "$work/live.db" -c "$work/v2.jsonc" --json >"$work/replay2.json" \
    2>>"$log" || true
grep -q '"differences"' "$work/replay2.json" || fail "replay --json lacks differences"
# ---- live and simulated make the same decisions ----------------------------------------------
require_tool sqlite3
mkdir "$work/same"
cp "$src"/tests/integration/fixtures/same* "$work/same/"
(cd "$work/same" && "$STEWARD_BIN" run -c same.jsonc --speed 50 --for 300s --log-level warn) \
    2>>"$log" || fail "live run of same.jsonc failed"
(cd "$work/same" && "$STEWARD_BIN" simulate -c same.jsonc --trace same_demand.csv --to 300 \
    --out sim --keep-journal --quiet) 2>>"$log" || fail "simulate of same.jsonc failed"
sqlite3 "$work/same/same.db" "SELECT kind, region FROM intents ORDER BY id" >"$work/same/live.txt"
sqlite3 "$work/same/sim/sim.db" "SELECT kind, region FROM intents ORDER BY id" >"$work/same/sim.txt"
[ "$(wc -l <"$work/same/live.txt")" -ge 10 ] || fail "the live run decided too little"
diff "$work/same/live.txt" "$work/same/sim.txt" >"$work/same/diff.txt" \
    || fail "live and simulated decisions differ: $(cat "$work/same/diff.txt")"
echo "simulate and replay: ok"
