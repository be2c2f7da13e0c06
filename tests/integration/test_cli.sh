#!/usr/bin/env bash
# The command line as a user meets it: exit codes, messages naming file and JSON path,
# dry runs that buy nothing, JSON logs, plugin listing, and a broken policy that cannot
# take steward down.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool python3

new_workdir
work=$WORKDIR
log="$work/out.log"
demo="$SW_SOURCE_DIR/examples/demo/steward.jsonc"

# A config copy whose relative paths still resolve: same directory layout, private journal.
mkdir -p "$work/examples/demo" "$work/examples/providers" "$work/policies"
cp "$SW_SOURCE_DIR/examples/providers/demo.json" "$work/examples/providers/"
cp "$SW_SOURCE_DIR/policies/follow_demand.lua" "$work/policies/"
cp "$demo" "$work/examples/demo/steward.jsonc"
cfg="$work/examples/demo/steward.jsonc"

"$STEWARD_BIN" version | grep -q "plugin ABI 1.0" || fail "version does not name the ABI"
# The allocator in use, asked of malloc itself: jemalloc where the build links it.
if grep -q '^JEMALLOC_FOUND:INTERNAL=1' "$SW_BUILD_DIR/CMakeCache.txt"; then
  "$STEWARD_BIN" version | grep -q "^allocator: jemalloc 5" ||
    fail "a jemalloc build does not allocate with jemalloc: $("$STEWARD_BIN" version)"
else
  "$STEWARD_BIN" version | grep -q "^allocator: libc malloc$" || fail "version: $("$STEWARD_BIN" version)"
fi
for verb in run check plugins test-policy; do
  "$STEWARD_BIN" $verb --help >/dev/null || fail "steward $verb --help failed"
done
set +e
"$STEWARD_BIN" frobnicate 2>"$log"; rc=$?
set -e
[ $rc = 2 ] && grep -q "unknown command 'frobnicate'" "$log" || fail "unknown verb: rc $rc"

# check: a good config passes, a bad one exits 2 naming file and JSON path.
"$STEWARD_BIN" check -c "$cfg" >"$log" 2>&1 || fail "check of the demo config failed"
grep -q "ok (1 groups, 1 policies, market market_sim" "$log" || fail "check output: $(cat "$log")"
sed 's/"max": 16/"max": "sixteen"/' "$cfg" > "$work/examples/demo/bad.jsonc"
set +e
"$STEWARD_BIN" check -c "$work/examples/demo/bad.jsonc" 2>"$log"; rc=$?
set -e
[ $rc = 2 ] || fail "bad config: exit $rc, want 2"
grep -q 'bad.jsonc:groups.web.max: expected integer' "$log" || fail "bad config message: $(cat "$log")"

# A plugin config error is reported with the plugin's JSON path, exit 2.
sed 's/"bid_window": "3s"/"bid_window": "3s", "bid_windw": "1s"/' "$cfg" > "$work/examples/demo/badplug.jsonc"
set +e
"$STEWARD_BIN" check -c "$work/examples/demo/badplug.jsonc" 2>"$log"; rc=$?
set -e
[ $rc = 2 ] || fail "bad plugin config: exit $rc, want 2"
grep -q 'plugins.market_sim.bid_windw: unknown key' "$log" || fail "plugin config message: $(cat "$log")"

# plugins lists what is installed; describe prints the config map.
"$STEWARD_BIN" plugins --json > "$work/plugins.json"
python3 - "$work/plugins.json" <<'PY' || fail "plugins --json"
import json, sys
names = {p["name"] for p in json.load(open(sys.argv[1]))}
assert {"market_sim", "metrics_synthetic"} <= names, names
PY
"$STEWARD_BIN" plugin describe market_sim | grep -q "providers_file" || fail "describe market_sim"

# The example plugin of docs/plugins.md loads, validates and feeds a policy.
mkdir -p "$work/examples/plugins"
cp "$SW_SOURCE_DIR/examples/plugins/steward.jsonc" "$work/examples/plugins/"
"$STEWARD_BIN" check -c "$work/examples/plugins/steward.jsonc" >"$log" 2>&1 ||
  fail "check of examples/plugins: $(cat "$log")"
"$STEWARD_BIN" run -c "$work/examples/plugins/steward.jsonc" --for 1s 2>"$log" ||
  fail "run of examples/plugins failed"
grep -q "acquire web/eu-west as unit example-plugin-u3" "$log" ||
  fail "250 rps at 100 per unit should order 3 units in eu-west: $(grep acquire "$log")"

# A dry run plans and journals but buys nothing.
"$STEWARD_BIN" run -c "$cfg" --dry-run --for 2s 2>"$log" || fail "dry run failed"
grep -q "dry-run: would acquire web/" "$log" || fail "dry run did not plan an acquire"
grep -q "created for" "$log" && fail "dry run created a deployment"
python3 - "$work/examples/demo/demo.db" <<'PY' || fail "dry-run journal"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
units = db.execute("select count(*) from units").fetchone()[0]
intents = db.execute("select count(*), sum(outcome = 'dry-run') from intents").fetchone()
assert units == 0, f"{units} units in a dry run"
assert intents[0] > 0 and intents[0] == intents[1], intents
PY
rm -f "$work/examples/demo/demo.db"*

# JSON logs: every line parses; the same run buys for real.
"$STEWARD_BIN" run -c "$cfg" --for 2s --log-format json 2>"$log" || fail "json run failed"
python3 - "$log" <<'PY' || fail "json log lines"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert lines and all({"ts", "level", "component", "msg"} <= set(l) for l in lines)
assert any("acquire web/" in l["msg"] for l in lines)
PY

# A policy stuck in a loop fails each call; steward keeps running and exits cleanly.
cp "$SW_SOURCE_DIR/tests/integration/fixtures/loop.lua" "$work/policies/loop.lua"
# No limits.instructions: the watchdog stops each call at its 200 ms time budget.
sed -e 's|"file": "../../policies/follow_demand.lua"|"file": "../../policies/loop.lua"|' \
  -e 's|"interval": "5s"|"interval": "500ms", "limits": {"time": "200ms"}|' \
  "$cfg" > "$work/examples/demo/loop.jsonc"
rm -f "$work/examples/demo/demo.db"*
"$STEWARD_BIN" run -c "$work/examples/demo/loop.jsonc" --for 3s 2>"$log" || fail "run with a looping policy exited non-zero"
n=$(grep -c "time budget exceeded (200 ms)" "$log" || true)
[ "$n" -ge 2 ] || fail "expected repeated budget errors, got $n"
grep -q "summary: " "$log" || fail "no summary after the looping policy"
echo "ok"
