#!/usr/bin/env bash
# examples/geo/steward.jsonc stays valid: its plugins load and its policy compiles, and the
# RTT rows inlined in it are exactly examples/geo/rtt_10_regions.csv.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool python3
require_steward
export STEWARD_PLUGIN_PATH="$SW_PLUGIN_DIR"
"$STEWARD_BIN" check -c "$SW_SOURCE_DIR/examples/geo/steward.jsonc" || fail "steward check failed"
python3 - "$SW_SOURCE_DIR/examples/geo" <<'PY' || fail "steward.jsonc's rtt rows differ from rtt_10_regions.csv"
import csv, re, sys
d = sys.argv[1]
text = open(d + "/steward.jsonc").read()
rows = [(a, b, float(c)) for a, b, c in re.findall(r'\["([\w-]+)", "([\w-]+)", ([\d.]+)\]', text)]
want = [(a, b, float(c)) for a, b, c in list(csv.reader(open(d + "/rtt_10_regions.csv")))[1:]]
sys.exit(0 if rows == want and len(rows) == 100 else 1)
PY
echo "ok: examples/geo/steward.jsonc checks and carries the measured RTT table"
