#!/usr/bin/env bash
# examples/geo under `steward simulate`: geo_latency against its two shipped static baselines
# (one unit in every region; all capacity in the single cheapest region, sized for the
# trace's peak) over the week of examples/geo/demand_7d.csv. Asserts what docs/simulation.md
# ("Geo-latency example") reports:
#   - the comparison is fair: the three runs serve the same requests (none drops more than
#     another), and the cheapest-region baseline holds enough units for the week's peak at
#     the rate the geo policy plans with;
#   - geo_latency keeps p95 within the SLO (simulation.slo_p95_ms) and never errs;
#   - it beats both baselines on cost, on p95 and on SLO-violation minutes.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ -n "${STEWARD_BIN:-}" ] && [ -x "$STEWARD_BIN" ] || { echo "SKIP: no steward binary"; exit 77; }
require_tool python3
new_workdir
work=$WORKDIR
geo=$SW_SOURCE_DIR/examples/geo
log="$work/simulate.log"

"$STEWARD_BIN" simulate -c "$geo/sim.jsonc" \
    --compare "$geo/static_every_region.jsonc" "$geo/static_cheapest.jsonc" \
    --trace "$geo/demand_7d.csv" --rtt "$geo/rtt_10_regions.csv" --quiet \
    --out "$work/out" 2>"$log" || fail "steward simulate failed"
[ -s "$work/out/report.json" ] || fail "no report.json"

python3 - "$work/out/report.json" "$geo" <<'PY' || fail "geo comparison assertions"
import csv
import json
import re
import sys
from collections import defaultdict

r = json.load(open(sys.argv[1]))
geo_dir = sys.argv[2]
slo = r["model"]["slo_p95_ms"]
geo = r["summary"]
runs = {c["config"].rsplit("/", 1)[-1]: c["summary"] for c in r["compare"]}
every = runs["static_every_region.jsonc"]
cheap = runs["static_cheapest.jsonc"]
errors = []


def check(ok, what):
    if not ok:
        errors.append(what)


for name, s in (("geo", geo), ("every", every), ("cheapest", cheap)):
    print(f"{name}: cost {s['cost_usd']:.2f} p95 {s['latency_ms']['p95']} "
          f"slo_min {s['slo_violation_minutes']} served {s['served_requests']} "
          f"dropped {s['dropped_requests']}")
check(r["window"]["to_s"] == 7 * 86400, f"window {r['window']}")
check(slo == 80, f"SLO {slo}, expected 80 ms")

# Fair: the same demand, the same requests served.
for name, s in (("every", every), ("cheapest", cheap)):
    check(s["demand_requests"] == geo["demand_requests"], f"{name} saw other demand")
    check(s["served_requests"] == geo["served_requests"],
          f"{name} served {s['served_requests']} requests, geo {geo['served_requests']}")
# ... and the cheapest-region baseline is sized for the peak at the geo policy's rate.
totals = defaultdict(float)
for row in csv.DictReader(open(geo_dir + "/demand_7d.csv")):
    totals[row["time_s"]] += float(row["rps"])
peak = max(totals.values())
cheap_text = open(geo_dir + "/static_cheapest.jsonc").read()
units = int(re.search(r'"units":\s*(\d+)', cheap_text).group(1))
rate = float(re.search(r'"rps_per_unit":\s*([\d.]+)', open(geo_dir + "/sim.jsonc").read()).group(1))
check(units * rate >= peak, f"static_cheapest: {units} x {rate} rps < the {peak:.0f} rps peak")

p95 = geo["latency_ms"]["p95"]
check(geo["policy_errors"] == 0, f"{geo['policy_errors']} policy errors")
check(p95 is not None and p95 <= slo, f"geo p95 {p95} ms above the {slo} ms SLO")
for name, s in (("every-region", every), ("cheapest-region", cheap)):
    check(geo["cost_usd"] < s["cost_usd"],
          f"geo cost {geo['cost_usd']:.2f} not below {name} {s['cost_usd']:.2f}")
    check(p95 < s["latency_ms"]["p95"], f"geo p95 not below {name}'s")
    check(geo["slo_violation_minutes"] < s["slo_violation_minutes"],
          f"geo violates the SLO as often as the {name} baseline")
for e in errors:
    print("FAIL:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
echo "ok: over the week geo_latency beats both static baselines on cost, p95 and SLO minutes"
