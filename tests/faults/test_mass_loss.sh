#!/usr/bin/env bash
# Mass loss: three providers in one region, the cheapest closes all its leases at once
# (market_sim's close_provider_at hook, 3 s in). The group asks for 4 units, at most half of
# them on one provider, and has a 5 s scale-up cooldown; from its second evaluation on it
# asks for 6. Checked against the journal:
#   - the group never held more than its allowed share on one provider (2 of 4, 3 of 6), so
#     the outage took 2 units, not 4;
#   - the replacements were ordered at once (well within one 10 s evaluation interval,
#     despite the cooldown), on the other providers, and were ready within
#     create + bid + ready delay;
#   - the failed provider is backed off (provider_stats) and not chosen again while backed
#     off, although it is still the cheapest bidder: the later scale-up goes elsewhere.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
require_tool python3

new_workdir
work=$WORKDIR
cp "$SW_SOURCE_DIR"/tests/faults/fixtures/{mass_loss.jsonc,mass_loss.lua,providers_three.json} \
   "$work/"
log="$work/steward.log"
"$STEWARD_BIN" check -c "$work/mass_loss.jsonc" >/dev/null || fail "config check failed"
"$STEWARD_BIN" run -c "$work/mass_loss.jsonc" --for 17s 2>"$log" || fail "run failed"

grep -q "2 units lost at once; evaluating 1 policy now" "$log" ||
  fail "the loss did not trigger an immediate evaluation"

python3 - "$work/mass.db" <<'PY' || fail "journal checks failed (see above)"
import json, sqlite3, sys

OUTAGE = "akash1outage000000000000000000000000000a"
INTERVAL_MS = 10000
# create_delay + the slowest eligible bid (300 ms, before the 1 s window) + the slowest
# ready delay (700 ms), plus scheduling slack.
READY_BOUND_MS = 100 + 1000 + 700 + 500

db = sqlite3.connect(sys.argv[1])
problems = []

def check(cond, msg):
    if not cond:
        problems.append(msg)

units = db.execute("SELECT key, provider, state, ordered_ms, ready_ms, closed_ms, close_reason "
                   "FROM units WHERE group_name = 'web' ORDER BY ordered_ms, key").fetchall()
lost = [json.loads(d) for (d,) in db.execute(
    "SELECT data_json FROM events WHERE type = 'unit_lost' ORDER BY id")]
lost_at = [a for (a,) in db.execute("SELECT at_ms FROM events WHERE type = 'unit_lost'")]
check(len(lost) == 2, f"expected 2 lost units (half the group), got {len(lost)}")
check(all(e.get("provider") == OUTAGE for e in lost), f"lost units not all on {OUTAGE}: {lost}")
loss_ms = min(lost_at) if lost_at else 0

# Desired over time: 4 until the scale-up evaluation asked for 6.
evals = db.execute("SELECT at_ms, desired_json FROM evaluations ORDER BY id").fetchall()
six_from = min([a for a, d in evals if json.loads(d)["effective"]["web"]["eu-west"] == 6]
               or [1 << 62])

# The share: at every moment a unit was open, no provider held more than half the group.
end = max([u[5] or 0 for u in units] + [u[4] or 0 for u in units] + [a for a, _ in evals]) + 1
for key, provider, state, ordered, ready, closed, reason in units:
    if provider is None:
        continue
    for t in (ordered, ready):
        if not t:
            continue
        allowed = 3 if t >= six_from else 2
        held = sum(1 for v in units if v[1] == provider and v[3] <= t < (v[5] or end))
        check(held <= allowed, f"{provider} held {held} units at {t} (allowed {allowed})")

# Replacements: the acquires ordered after the loss and before the scale-up.
repl = [u for u in units if loss_ms <= u[3] < six_from]
check(len(repl) == 2, f"expected 2 replacements, got {[u[0] for u in repl]}")
for key, provider, state, ordered, ready, closed, reason in repl:
    check(ordered - loss_ms < 1000,
          f"{key} ordered {ordered - loss_ms} ms after the loss (interval {INTERVAL_MS} ms)")
    check(provider is not None and provider != OUTAGE, f"{key} placed on {provider}")
    check(ready and ready - ordered <= READY_BOUND_MS,
          f"{key} ready {ready - ordered if ready else None} ms after ordering")
reasons = [r for (r,) in db.execute("SELECT reason FROM intents WHERE kind = 1 AND created_ms >= ?"
                                    " AND created_ms < ?", (loss_ms, six_from))]
check(all("no scale-up cooldown" in r for r in reasons) and len(reasons) == 2,
      f"replacements did not skip the cooldown: {reasons}")

# Back-off: recorded, and honoured by every acquire ordered since the loss.
row = db.execute("SELECT closures, backoff_until_ms, backoff_strikes FROM provider_stats "
                 "WHERE provider = ?", (OUTAGE,)).fetchone()
check(row is not None and row[0] == 2 and row[2] == 1,
      f"provider_stats for {OUTAGE}: {row}")
until = row[1] if row else 0
check(until >= loss_ms + 600000 - 5, f"back-off ends at {until}, loss at {loss_ms}")
after = [u for u in units if u[3] >= loss_ms]
check(len(after) == 4, f"expected 2 replacements + 2 scale-up units, got {[u[0] for u in after]}")
for key, provider, *_ in after:
    check(provider != OUTAGE, f"{key} went to {OUTAGE} during its back-off")
scale_up = [u for u in units if u[3] >= six_from]
check(len(scale_up) == 2 and all(u[4] for u in scale_up),
      f"the scale-up units are not both ready: {scale_up}")

final = {}
for key, provider, state, ordered, ready, closed, reason in units:
    if state != 4:
        final[provider] = final.get(provider, 0) + 1
check(sorted(final.values()) == [3, 3] and OUTAGE not in final, f"final spread {final}")

for p in problems:
    print("  -", p, file=sys.stderr)
print(f"loss at {loss_ms}, replacements {[u[3] - loss_ms for u in repl]} ms after, "
      f"ready in {[u[4] - u[3] for u in repl]} ms; final {final}")
sys.exit(1 if problems else 0)
PY
echo "ok: mass loss replaced at once, spread kept, failed provider backed off"
