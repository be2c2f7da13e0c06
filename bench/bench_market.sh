#!/usr/bin/env bash
# market_akash against a local `steward market serve` (issue 3, "Performance"):
#
#   market.acquire_50   50 units asked at once, 5 in each of 10 regions; providers bid after
#                       BID_DELAY (500ms) and are ready READY_DELAY (2s) after the lease.
#                       Target: all 50 ready (as steward sees them) within
#                       2 x (bid delay + ready delay) of the moment they are asked for;
#                       steward's overhead <= 1 ms CPU per acquire.
#                       CPU accounting: on-CPU time of the steward process, every thread,
#                       from /proc/<pid>/task/*/schedstat (ns), cross-checked against
#                       utime + stime from /proc/<pid>/stat (1/CLK_TCK resolution):
#                         - the policy asks for nothing until START (1.5 s after launch), so
#                           start-up (plugin load, journal open, the recovery listing) is
#                           sampled before the burst and left out;
#                         - burst = CPU from START to the moment the journal shows 50 ready;
#                         - idle = CPU over IDLE_S (3 s) after that, with the same policy
#                           ticking every 200 ms and no watch pass due (watch_interval 30 s):
#                           idle rate x burst wall time is subtracted from the burst;
#                         - per acquire = (burst - idle share) / 50; per request likewise over
#                           the HTTP requests the server logged from START to all-ready.
#   market.track_1000   one steward owning 1,000 ready deployments (bought by steward itself
#                       from fast providers: recovery closes units carrying our id that the
#                       journal does not know, so deployments created behind its back with
#                       curl cannot be adopted). Targets: VmRSS <= 20 MB, one full watch pass
#                       <= 1 s wall. A watch pass is measured on the server side: the server
#                       logs every request at debug level with a ms timestamp; a pass is a
#                       burst of GET /v1/deployments/<dseq> (8 in flight) and its duration is
#                       first-to-last request of the burst (plus the last answer's latency,
#                       which is sub-millisecond on loopback).
#
#   make build && bash bench/bench_market.sh [build-dir]
#   env: BID_DELAY=500ms READY_DELAY=2s POLL_INTERVAL=3s RUNS=1 (acquire_50 repetitions)
#        N_TRACK=1000 (0 skips track_1000) WATCH_INTERVAL=3s KEEP=1 (keep workdir)
#        RSS_DETAIL=1 (track_1000: steward's resident memory by mapping)
#        PERF=1 (perf record -g on steward during the first burst: perf.data in the workdir;
#        PERF=all: during every burst, perf.data.<run>, to add up several runs' samples;
#        PERF_FREQ=4000 samples per second)
#        STRACE=1 (strace -c -f on steward during the first burst: syscall counts printed;
#        STRACE=2: the full trace with timestamps in strace.txt, kept with KEEP=1)
#        STEWARD_BENCH_LOG=debug (steward's log level in the runs; default info)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
bin=$build/steward
bid_delay=${BID_DELAY:-500ms}
ready_delay=${READY_DELAY:-2s}
n_track=${N_TRACK:-1000}
watch_interval=${WATCH_INTERVAL:-3s}
. "$src/bench/bench_lib.sh"
bench_setup market BENCH_AKASH_KEY curl jq sqlite3
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# on-CPU time in µs of every live thread (schedstat: ns), finer than the 10 ms ticks
cpu_us() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s / 1000 }'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# providers DIR BID READY CAPACITY: two providers in each of r0..r9.
providers() {
  jq -n --arg bid "$2" --arg ready "$3" --argjson cap "$4" '{providers: [range(0; 10) as $r |
    range(0; 2) as $i | {owner: ("akash1bench" + ($r|tostring) + "p" + ($i|tostring) + "0000000000000000000000000000000"),
    host_uri: ("https://p\($i).r\($r).test:8443"), region: "r\($r)", price_uact_per_block: (50 + 10 * $i),
    bid_delay: $bid, ready_delay: $ready, capacity: $cap, audited: true, closures_per_hour: 0}]}' >"$1/providers.json"
}

# server DIR: starts `steward market serve` on a free port; sets port.
server() {
  "$bin" market serve --listen 127.0.0.1:0 --state "$1/market.db" --providers "$1/providers.json" \
    --port-file "$1/market.port" --seed 5 --speed 1 --log-level debug \
    >"$1/market.out" 2>"$1/market.log" &
  pids+=($!)
  for _ in $(seq 1 200); do [ -s "$1/market.port" ] && break; sleep 0.05; done
  port=$(cat "$1/market.port")
}

# steward_config DIR PER_REGION BID_WINDOW POLL WATCH MAX [START_MS]
# START_MS (epoch ms): nothing is asked for before it.
steward_config() {
  local regions
  regions=$(jq -nc '[range(0; 10) | "r\(.)"]')
  cp "$src/tests/integration/fixtures/akash/web.sdl.yaml" "$1/"
  cat >"$1/fixed.lua" <<EOF
-- $2 units in each of the 10 regions, asked at once (from ${7:-0} ms since the epoch).
local t, none = {}, {}
for i = 0, 9 do t["r" .. i] = $2; none["r" .. i] = 0 end
return { name = "fixed", evaluate = function(ctx)
  if ctx.now_ms < ${7:-0} then return { web = none } end
  return { web = t }
end }
EOF
  cat >"$1/steward.jsonc" <<EOF
{
  "id": "benchtag",
  "state": "steward.db",
  "seed": 3,
  "log": { "format": "text", "level": "${STEWARD_BENCH_LOG:-info}" },
  "market": "market_akash",
  "plugins": {
    "market_akash": {
      "base_url": "http://127.0.0.1:$port",
      "api_key_env": "BENCH_AKASH_KEY",
      "deposit_usd": 1,
      "sdl_template": "web.sdl.yaml",
      "bid_window": "$3",
      "min_bids": 1,
      "poll_interval": "$4",
      "ready_timeout": "60s",
      "request_timeout": "5s",
      "watch_interval": "$5"
    }
  },
  "guard": { "max_leases": $6 },
  "groups": {
    "web": { "min": 0, "max": $6, "regions": $regions, "acquire_deadline": "5m",
             "scale_up_cooldown": "0s", "scale_down_cooldown": "0s" }
  },
  "policies": [ { "name": "fixed", "file": "fixed.lua", "interval": "200ms" } ]
}
EOF
}

# ready_count: our active deployments whose lease is ready, from the server's state.
ready_count() {
  curl -sS --max-time 20 -H "x-api-key: $STEWARD_MARKET_API_KEY" "http://127.0.0.1:$port/_steward/state" |
    jq '[.data.deployments[] | select(.env.STEWARD_TAG == "benchtag" and .state == "active"
         and .leases[0].ready_ms != null)] | length'
}

# ---------------------------------------------------------------- acquire_50
bid_ms=$(ms_of "$bid_delay")
ready_ms=$(ms_of "$ready_delay")
target=$((2 * (bid_ms + ready_ms)))
idle_s=${IDLE_S:-3}
ms_of_ticks() { awk -v t="$1" -v hz="$hz" 'BEGIN { printf "%.0f", t * 1000 / hz }'; }
# log_ms LINE: the server log's timestamp (UTC time of day) in ms
acquire_run() { # acquire_run N: one burst of 50 in $work/acquire$N
  local d1=$work/acquire$1
  mkdir -p "$d1"
  providers "$d1" "$bid_delay" "$ready_delay" 100
  server "$d1"
  local start=$(($(now_ms) + 1500))
  steward_config "$d1" 5 600ms "$poll_interval" 30s 50 "$start"
  (cd "$d1" && exec "$bin" run -c steward.jsonc 2>steward.log) &
  local spid=$!
  pids+=("$spid")
  # A tracer attaches in a few hundred ms on a loaded machine: start it before START, or
  # it misses the creates (the first thing the burst does). Start-up is over by then.
  while [ "$(now_ms)" -lt $((start - 700)) ]; do sleep 0.01; done
  local perf_pid=
  if [ "${PERF:-0}" = 1 ] && [ "$1" = 1 ]; then
    perf record --call-graph dwarf,16384 -F ${PERF_FREQ:-4000} -o "$work/perf.data" -p "$spid" 2>"$work/perf.log" &
    perf_pid=$!
  elif [ "${PERF:-0}" = all ]; then
    perf record --call-graph dwarf,16384 -F ${PERF_FREQ:-4000} -o "$work/perf.data.$1" -p "$spid" 2>>"$work/perf.log" &
    perf_pid=$!
  elif [ "${STRACE:-0}" = 1 ] && [ "$1" = 1 ]; then
    strace -c -f -o "$work/strace.txt" -p "$spid" 2>/dev/null &
    perf_pid=$!
  elif [ "${STRACE:-0}" = 2 ] && [ "$1" = 1 ]; then
    strace -f -tt -s 200 -o "$work/strace.txt" -p "$spid" 2>/dev/null &
    perf_pid=$!
  fi
  # sample the CPU just before the policy asks
  while [ "$(now_ms)" -lt $((start - 20)) ]; do sleep 0.01; done
  local c0 u0 t_c0
  c0=$(cpu_ticks "$spid")
  u0=$(cpu_us "$spid")
  t_c0=$(now_ms)
  # steward's own view: the journal's units in state ready (polled every 20 ms)
  local n=0 deadline=$((start + 60000))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    n=$(sqlite3 "$d1/steward.db" "SELECT count(*) FROM units WHERE state = 3" 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 50 ] && break
    sleep 0.02
  done
  local c1 u1 t_c1
  c1=$(cpu_ticks "$spid")
  u1=$(cpu_us "$spid")
  t_c1=$(now_ms)
  [ -n "$perf_pid" ] && { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
  sleep "$idle_s"
  local c2 u2 t_c2
  c2=$(cpu_ticks "$spid")
  u2=$(cpu_us "$spid")
  t_c2=$(now_ms)
  # the journal's ready_ms is steward's clock (epoch ms live) when it saw the unit ready
  local t1
  t1=$(sqlite3 "$d1/steward.db" "SELECT max(ready_ms) FROM units WHERE state = 3")
  kill -TERM "$spid"; wait "$spid" || true
  # requests from START to all-ready, by the server's log (UTC time of day in ms)
  local from=$((start % 86400000)) to=$((t1 % 86400000 + 50))
  grep -a -- ' -> ' "$d1/market.log" | awk -v from="$from" -v to="$to" '{
      split($1, a, "T"); split(a[2], b, ":"); t = ((b[1] * 60 + b[2]) * 60 + b[3]) * 1000;
      if (t >= from && t <= to) print }' >"$d1/burst.log"
  local reqs kinds
  reqs=$(wc -l <"$d1/burst.log")
  kinds=$(sed -E -e 's/.*(GET|POST|DELETE) ([^ ?]*)[^ ]* -> .*/\1 \2/' -e 's#/[0-9]+$#/N#' "$d1/burst.log" |
    sort | uniq -c | awk '{ printf "%s%s %s=%d", sep, $2, $3, $1; sep = ", " }')
  local wall=$((t1 - start))
  local burst_ms idle_ms idle_rate net_ms ticks_ms
  ticks_ms=$(ms_of_ticks $((c1 - c0)))
  # schedstat when the kernel has it (ns resolution), else the ticks
  if [ -n "$u0" ] && [ "$u1" -gt 0 ]; then
    burst_ms=$(awk -v a="$u0" -v b="$u1" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
    idle_ms=$(awk -v a="$u1" -v b="$u2" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
  else
    burst_ms=$ticks_ms
    idle_ms=$(ms_of_ticks $((c2 - c1)))
  fi
  idle_rate=$(awk -v i="$idle_ms" -v s=$((t_c2 - t_c1)) 'BEGIN { printf "%.2f", i / s * 1000 }')
  net_ms=$(awk -v b="$burst_ms" -v r="$idle_rate" -v w=$((t_c1 - t_c0)) 'BEGIN { v = b - r * w / 1000; printf "%.1f", v < 0 ? 0 : v }')
  echo "market.acquire_50[$1]: ready=$n/50 wall_ms=$wall target_ms=$target ($([ "$n" -ge 50 ] && [ "$wall" -le "$target" ] && echo met || echo MISSED))" \
    "burst_cpu_ms=$burst_ms (ticks: $ticks_ms) over $((t_c1 - t_c0))ms idle_cpu_ms_per_s=$idle_rate net_cpu_ms=$net_ms" \
    "cpu_ms_per_acquire=$(awk -v c="$net_ms" 'BEGIN { printf "%.2f", c / 50 }') target=1" \
    "http_requests=$reqs ($kinds) requests_per_acquire=$(awk -v r="$reqs" 'BEGIN { printf "%.1f", r / 50 }')" \
    "cpu_ms_per_request=$(awk -v c="$net_ms" -v r="$reqs" 'BEGIN { printf "%.3f", r ? c / r : 0 }')"
}
poll_interval=${POLL_INTERVAL:-3s}
for run in $(seq 1 "${RUNS:-1}"); do acquire_run "$run"; done
[ "${PERF:-0}" != 0 ] && echo "perf data: $work/perf.data* (KEEP=1 keeps it)"
[ "${STRACE:-0}" = 1 ] && cat "$work/strace.txt"
[ "${STRACE:-0}" = 2 ] && echo "strace: $work/strace.txt (KEEP=1 keeps it)"
[ "$n_track" -gt 0 ] || exit 0

# ---------------------------------------------------------------- track_1000
d2=$work/track
mkdir -p "$d2"
providers "$d2" 10ms 10ms $((n_track / 10 + 10))
server "$d2"
steward_config "$d2" $((n_track / 10)) 300ms 200ms "$watch_interval" "$n_track"
t0=$(now_ms)
(cd "$d2" && exec "$bin" run -c steward.jsonc 2>steward.log) &
spid=$!
pids+=("$spid")
deadline=$((t0 + 600000))
while [ "$(now_ms)" -lt "$deadline" ]; do
  n=$(sqlite3 "$d2/steward.db" "SELECT count(*) FROM units WHERE state = 3" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge "$n_track" ] && break
  sleep 0.5
done
t_acq=$(($(now_ms) - t0))
# passes that start after the last unit became ready (time of day in ms, as the log's UTC)
t_all=$(sqlite3 "$d2/steward.db" "SELECT max(ready_ms) % 86400000 FROM units WHERE state = 3")
# let at least three full watch passes run once everything is ready
w_ms=$(ms_of "$watch_interval")
sleep $(awk -v w="$w_ms" 'BEGIN { print 3.5 * w / 1000 }')
rss=$(rss_kb "$spid")
# RSS_DETAIL=1: where the resident memory is (heap, anonymous maps, libraries)
[ "${RSS_DETAIL:-0}" = 1 ] && awk '/^[0-9a-f]+-/ { name = $6 ? $6 : "[anon]" } /^Rss:/ { r[name] += $2 }
  END { for (n in r) if (r[n] >= 256) printf "  %7d kB %s\n", r[n], n }' "/proc/$spid/smaps" | sort -rn
kill -TERM "$spid"; wait "$spid" || true
on_server=$(ready_count)
# Watch passes: bursts of GET /v1/deployments/<dseq> separated by > half a watch interval.
passes=$(grep -E 'GET /v1/deployments/[0-9]+ -> ' "$d2/market.log" |
  awk -v gap=$((w_ms / 2)) '{
      split($1, a, "T"); split(a[2], b, ":"); t = ((b[1] * 60 + b[2]) * 60 + b[3]) * 1000;
      if (n && t - last > gap) { print first, last, cnt; cnt = 0; first = t }
      if (!n) first = t; n = 1; last = t; cnt++ }
    END { print first, last, cnt }' |
  awk -v want="$n_track" -v after="$t_all" '$3 >= want && $1 > after { printf "%d ", $2 - $1 }')
echo "market.track_1000: units_ready=$n on_server=$on_server acquire_all_ms=$t_acq rss_kb=$rss" \
  "target_rss_kb=20480 ($([ "$rss" -le 20480 ] && echo met || echo MISSED))" \
  "watch_pass_ms=[${passes% }] target_ms=1000"
