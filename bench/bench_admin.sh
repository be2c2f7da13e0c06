#!/usr/bin/env bash
# Admin API throughput: GET /v1/status with wrk on loopback while the demo's policies keep
# their schedule. Target: >= 5,000 requests/s and p99 <= 5 ms.
#
#   bench/bench_admin.sh [build-dir]       (env: DURATION=10s CONNECTIONS=4 THREADS=1 SPEED=10)
#
# steward runs the demo (market_sim + metrics_synthetic + follow-demand every 5 s of clock)
# at --speed $SPEED, so the policy is due every 5000/SPEED ms of wall time during the
# load. Afterwards the script reads the journal's evaluations made during the load and
# prints how many there were against how many were due, and the largest gap between two
# (in clock ms): a loop stalled by HTTP work would show up there.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-4}
threads=${THREADS:-1}
speed=${SPEED:-10}
command -v wrk >/dev/null || { echo "wrk is not installed (Debian package wrk)" >&2; exit 77; }
command -v sqlite3 >/dev/null || { echo "sqlite3 is not installed" >&2; exit 77; }

work=$(mktemp -d "${TMPDIR:-/tmp}/steward-bench-admin.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$src" "$work" "$port" <<'PY'
import sys
src, work, port = sys.argv[1:]
s = open(f"{src}/examples/demo/steward.jsonc").read()
s = s.replace('"../providers/demo.json"', f'"{src}/examples/providers/demo.json"')
s = s.replace('"../../policies/follow_demand.lua"', f'"{src}/policies/follow_demand.lua"')
s = s.replace('"seed": 42,', '"seed": 42,\n  "admin": { "listen": "127.0.0.1:%s" },' % port, 1)
open(f"{work}/steward.jsonc", "w").write(s)
PY
"$build/steward" run -c "$work/steward.jsonc" --speed "$speed" 2>"$work/steward.log" &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 2 # a few units bought, so /v1/status has regions and leases to report

started_ms=$(curl -sf "http://127.0.0.1:$port/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["now_ms"])')
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
ticks_before=$(cpu_ticks)
cmd="wrk -t$threads -c$connections -d$duration --latency http://127.0.0.1:$port/v1/status"
echo "== $cmd   (steward --speed $speed, $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg))"
$cmd | tee "$work/wrk.txt"
ticks_after=$(cpu_ticks)
ended_ms=$(curl -sf "http://127.0.0.1:$port/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["now_ms"])')
bytes=$(curl -sf "http://127.0.0.1:$port/v1/status" | wc -c)
kill -TERM "$pid"; wait "$pid" || true; pid=

rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
# CPU steward spent per request (user + system, policies included): what the figure would
# be on an idle core, whatever else the machine runs.
us_per_req=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
  'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
read -r evals max_gap < <(sqlite3 -separator ' ' "$work/demo.db" "
  WITH e AS (SELECT at_ms, at_ms - lag(at_ms) OVER (ORDER BY at_ms) AS gap FROM evaluations
             WHERE policy = 'follow-demand' AND at_ms BETWEEN $started_ms AND $ended_ms)
  SELECT count(*), coalesce(max(gap), 0) FROM e")
due=$(( (ended_ms - started_ms) / 5000 ))
echo "== /v1/status ($bytes bytes): $rps requests/s, p99 $p99 (target >= 5000/s, p99 <= 5ms)"
echo "== steward CPU: $us_per_req us per request (one core could serve ~$(awk -v u="$us_per_req" 'BEGIN { printf "%d", 1e6 / u }')/s)"
echo "== policy schedule under load: $evals evaluations of $due due, largest gap ${max_gap} ms of clock (interval 5000 ms)"
