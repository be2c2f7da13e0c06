#!/usr/bin/env bash
# examples/resilience: both configs check and run. Seven hours on a 3600× compressed live
# clock (about 7 s each) include the first daily outage at 6 h; from the journals, the share
# of time with at least the group's min (3) units ready must be 100% with the spread and
# below it without (the outage takes all 6 units down until replacements are ready). The
# 7-day comparison for docs/simulation.md comes from `steward simulate`.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool python3

new_workdir
work=$WORKDIR
cp "$SW_SOURCE_DIR"/examples/resilience/* "$work/"
for c in with_spread without_spread; do
  log="$work/$c.log"
  "$STEWARD_BIN" check -c "$work/$c.jsonc" >/dev/null || fail "$c: check failed"
  "$STEWARD_BIN" run -c "$work/$c.jsonc" --speed 3600 --for 7h 2>"$log" || fail "$c: run failed"
  grep -q "units lost at once" "$log" || fail "$c: the outage did not happen"
done

python3 - "$work" <<'PY' || fail "availability checks failed"
import sqlite3, sys

def availability(path, minimum=3):
    db = sqlite3.connect(path)
    rows = db.execute("SELECT ready_ms, closed_ms FROM units WHERE group_name = 'web'"
                      " AND ready_ms > 0").fetchall()
    last = db.execute("SELECT max(at_ms) FROM evaluations").fetchone()[0]
    edges = sorted([(r, 1) for r, _ in rows] + [(c, -1) for _, c in rows if c])
    # From the first moment the group reached its min to the last evaluation.
    ready, since, up, start = 0, None, 0, None
    for t, d in edges:
        if t > last:
            break
        if ready >= minimum and since is not None:
            up += t - since
        ready += d
        since = t
        if start is None and ready >= minimum:
            start = t
    if ready >= minimum and since is not None:
        up += last - since
    return up / (last - start)

w = availability(sys.argv[1] + "/with_spread.db")
wo = availability(sys.argv[1] + "/without_spread.db")
print(f"availability over ~7 h with one outage: with spread {w:.5f}, without {wo:.5f}")
sys.exit(0 if w == 1.0 and wo < 1.0 else 1)
PY
echo "ok: examples/resilience check and run"
