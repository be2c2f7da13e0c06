#!/usr/bin/env bash
# probe_http throughput (issue 5, "Performance"): 500 endpoints probed per second on
# loopback, on one core at <= 25% CPU.
#
#   bench/bench_probe.sh [build-dir]
#     env: ENDPOINTS=500 LISTENERS=500 DURATION=20 RUNS=3 WARMUP=3 LOG_LEVEL=info
#          KEEP=1 (keep the workdir and its steward.log)
#
# A loopback target (bench/probe_target.c: one libuv process, any path answers 200) serves
# ENDPOINTS distinct URLs over LISTENERS ports: by default each endpoint is its own
# host:port, as the units of a deployment are, so no connection can serve two endpoints
# (LISTENERS=1 puts them all on one server, where the HTTP client may share connections
# between them). steward runs with market_sim, no policy, and a probes section
# listing the ENDPOINTS URLs with every = 1s, so the runtime hands all of them to
# probe_http each second. After WARMUP seconds, each run measures DURATION seconds:
# probes/s is what the target answered in the window (its own count, read through GET
# /__count, which it does not count), and steward's CPU is utime + stime from
# /proc/PID/stat over the same window, as a percentage of one core. The target runs in its
# own process: its CPU is not steward's. Prints every run, then the best and the median.
# Exits 1 when fewer than 95% of the due probes were answered in the median run (the
# probes did not keep their schedule); the 25% CPU target is reported as met or missed.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
endpoints=${ENDPOINTS:-500}
duration=${DURATION:-20}
runs=${RUNS:-3}
warmup=${WARMUP:-3}
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 77; }
[ -x "$build/bench/probe_target" ] || { echo "no $build/bench/probe_target: build first" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/steward-bench-probe.XXXXXX")
pid= target_pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "$target_pid" ] && kill "$target_pid" 2>/dev/null
  wait 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

listeners=${LISTENERS:-$endpoints}
"$build/bench/probe_target" "$work/ports" "$listeners" >"$work/target.out" 2>"$work/target.log" &
target_pid=$!
for _ in $(seq 1 100); do
  [ -f "$work/ports" ] && [ "$(wc -l <"$work/ports")" = "$listeners" ] && break
  sleep 0.1
done
tport=$(head -1 "$work/ports")

python3 - "$src" "$work" "$endpoints" <<'PY'
import json, os, sys
src, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ports = open(f"{work}/ports").read().split()
config = {
    "id": "benchprobe",
    "state": f"{work}/probe.db",
    "log": {"format": "text", "level": os.environ.get("LOG_LEVEL", "info")},
    "market": "market_sim",
    "plugins": {
        "market_sim": {"providers_file": f"{src}/examples/providers/demo.json"},
        "probe_http": {"timeout": "2s"},
    },
    "groups": {"web": {"min": 0, "max": 1, "regions": ["eu-west"]}},
    "policies": [],
    "probes": {
        "plugin": "probe_http",
        "every": "1s",
        "targets": [f"http://127.0.0.1:{ports[i % len(ports)]}/endpoint/{i}" for i in range(n)],
    },
}
json.dump(config, open(f"{work}/steward.json", "w"), indent=1)
PY
"$build/steward" run -c "$work/steward.json" 2>"$work/steward.log" &
pid=$!
sleep "$warmup"
kill -0 "$pid" 2>/dev/null || { echo "steward exited:" >&2; tail -5 "$work/steward.log" >&2; exit 1; }

answered() { curl -sf "http://127.0.0.1:$tport/__count"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
now_s() { awk '{print $1}' /proc/uptime; }
hz=$(getconf CLK_TCK)
echo "== steward probing $endpoints loopback endpoints on $listeners ports every 1s;" \
  "$runs windows of ${duration}s after ${warmup}s ($(nproc) cores)"
: >"$work/runs.txt"
for run in $(seq 1 "$runs"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  c0=$(answered); t0=$(cpu_ticks); s0=$(now_s)
  sleep "$duration"
  c1=$(answered); t1=$(cpu_ticks); s1=$(now_s)
  read -r rate cpu < <(awk -v c=$((c1 - c0)) -v t=$((t1 - t0)) -v hz="$hz" -v s0="$s0" \
    -v s1="$s1" 'BEGIN { e = s1 - s0; printf "%.1f %.1f\n", c / e, t / hz / e * 100 }')
  echo "   run $run: $rate probes/s, steward CPU $cpu% of one core (load average $load)"
  echo "$rate $cpu" >>"$work/runs.txt"
done
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"; wait "$pid" || true; pid=
kill -TERM "$target_pid"; wait "$target_pid" || true; target_pid=
failed=$(grep -c "probe of\|refused" "$work/steward.log" || true)

read -r best_rate median_rate < <(sort -n -k1,1 "$work/runs.txt" |
  awk '{ v[NR] = $1 } END { print v[NR], v[int((NR + 1) / 2)] }')
read -r best_cpu median_cpu < <(sort -n -k2,2 "$work/runs.txt" |
  awk '{ v[NR] = $2 } END { print v[1], v[int((NR + 1) / 2)] }')
cpu_met=$(awk -v c="$median_cpu" 'BEGIN { print (c <= 25) ? "met" : "MISSED" }')
echo "== probes/s best $best_rate, median $median_rate (due $endpoints/s);" \
  "steward CPU best $best_cpu%, median $median_cpu% (<= 25%: $cpu_met); VmRSS ${rss_kb} kB"
echo "== $(uptime)"
if awk -v r="$median_rate" -v n="$endpoints" 'BEGIN { exit !(r < 0.95 * n) }'; then
  echo "FAIL: the median run answered fewer than 95% of the due probes" >&2
  tail -5 "$work/steward.log" >&2
  exit 1
fi
