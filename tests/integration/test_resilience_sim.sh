#!/usr/bin/env bash
# examples/resilience under `steward simulate`: 31 simulated hours (two daily outages of the
# busiest provider, at 6 h and 30 h) with and without the spread constraint, compared in one
# run. The availability (share of sampled time with at least the group's min ready) must be
# at least as high with the spread, the outage must show without it, and report.json must be
# byte-identical on a second run. The 7-day numbers in docs/simulation.md come from the same
# command without --to.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool python3

new_workdir
work=$WORKDIR
ex="$SW_SOURCE_DIR/examples/resilience"
for out in a b; do
  "$STEWARD_BIN" simulate -c "$ex/sim_with_spread.jsonc" --trace "$ex/demand_flat_7d.csv" \
    --to 31h --compare "$ex/sim_without_spread.jsonc" --quiet --out "$work/$out" \
    2>"$work/$out.log" || { log="$work/$out.log"; fail "simulate failed"; }
done
cmp -s "$work/a/report.json" "$work/b/report.json" || fail "report.json differs between runs"

python3 - "$work/a/report.json" <<'PY' || fail "availability checks failed"
import json, sys

report = json.load(open(sys.argv[1]))
with_spread, without = report, report["compare"][0]
a, b = with_spread["summary"]["availability"], without["summary"]["availability"]
print(f"availability over 31 h with two outages: with spread {a:.6f}, without {b:.6f}")
assert with_spread["groups"]["web"]["min"] == 3
assert with_spread["groups"]["web"]["availability"] == a
assert without["summary"]["provider_closures"] >= 12, "both outages closed all six units"
assert a >= b, "the spread must not lower availability"
# Without the spread each outage takes all six units down for about a minute; with it three
# keep serving, so only the start (before the first units are ready) counts as down.
assert b < a, "the outages must show without the spread"
assert (1 - a) * with_spread["summary"]["sim_s"] <= 60, "with spread: down only at the start"
PY
echo "ok: resilience simulation, availability with spread >= without"
