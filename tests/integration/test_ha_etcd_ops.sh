#!/usr/bin/env bash
# HA operations through a real etcd and a real marketplace (`steward market serve` +
# market_akash), the other half of test_ha_etcd.sh (kept apart so each stays under a minute):
#   - the request gate: etcd is reached through a proxy that adds latency to every reply, the
#     marketplace through a proxy that timestamps every request; each deployment create
#     arrives only after etcd acknowledged the txn holding market_akash's "pending" entry for
#     that unit (ordering: kv write acknowledged -> request sent);
#   - several endpoints: the first etcd endpoint of every replica is dead;
#   - a follower's /v1/status (leader object), /metrics (steward_ha_leader 0) and /readyz (503);
#   - etcd stopped (SIGSTOP): the leader steps down before its lease could expire, and the
#     follower, without etcd, never acts; after SIGCONT the follower takes over;
#   - on takeover, a plugin entry that exists only in the new leader's journal is removed;
#   - SIGTERM of the leader revokes its lease after the drain: the follower leads at its next
#     poll, not after the ttl (printed as the SIGTERM handover figure).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/ha_lib.sh"
DELAY=0.15 # seconds the etcd proxy adds to each reply

# --- etcd
ha_etcd_start
DEAD=$(free_port) # nothing listens there

ak_server_start --speed 1
ak_config churn.lua 1s 1 12

# --- the proxies: one line per exchange in proxy.log:
#   etcd <arrived> <answered> <path> <status> <puts: key=value,...>   (txn puts decoded)
#   market <arrived> <method> <path> <unit key of a create or ->
cat >"$WORKDIR/proxy.py" <<'PY'
import base64, http.client, http.server, json, re, sys, threading, time
etcd_port, market_port, delay, out, port_file = (int(sys.argv[1]), int(sys.argv[2]),
    float(sys.argv[3]), sys.argv[4], sys.argv[5])
lock = threading.Lock()
def log(line):
    with lock, open(out, "a") as f:
        f.write(line + "\n")
def b64(s):
    return base64.b64decode(s).decode(errors="replace")
def make(upstream, kind):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *a): pass
        def do_any(self):
            arrived = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            what = "-"
            if kind == "market" and self.command == "POST" and self.path == "/v1/deployments":
                m = re.search(r"STEWARD_UNIT_KEY[^A-Za-z0-9]+([A-Za-z0-9_.-]+)", body.decode(errors="replace"))
                what = m.group(1) if m else "?"
                log("market %.6f %s %s %s" % (arrived, self.command, self.path, what))
            try:
                c = http.client.HTTPConnection("127.0.0.1", upstream, timeout=20)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                c.request(self.command, self.path, body, headers)
                r = c.getresponse()
                data = r.read()
                status = r.status
                ctype = r.getheader("Content-Type", "application/json")
            except Exception:
                self.close_connection = True
                return
            if kind == "etcd":
                time.sleep(delay)
                puts = []
                if self.path == "/v3/kv/txn":
                    try:
                        for op in json.loads(body).get("success", []):
                            p = op.get("request_put")
                            if p:
                                puts.append("%s=%s" % (b64(p["key"]), b64(p.get("value", ""))))
                    except Exception:
                        pass
                answered = time.time()
                log("etcd %.6f %.6f %s %d %s" % (arrived, answered, self.path, status,
                    " ".join(x.replace(" ", "") for x in puts) or "-"))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_any
    return H
servers = []
for upstream, kind in ((etcd_port, "etcd"), (market_port, "market")):
    s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make(upstream, kind))
    s.daemon_threads = True
    threading.Thread(target=s.serve_forever, daemon=True).start()
    servers.append(s)
with open(port_file + ".tmp", "w") as f:
    f.write("%d %d\n" % (servers[0].server_address[1], servers[1].server_address[1]))
import os; os.rename(port_file + ".tmp", port_file)
threading.Event().wait()
PY
python3 "$WORKDIR/proxy.py" "$EP" "$SRV_PORT" "$DELAY" "$WORKDIR/proxy.log" "$WORKDIR/proxy.ports" \
  2>"$WORKDIR/proxy.err" &
SW_TEST_PIDS+=("$!")
for _ in $(seq 1 100); do [ -s "$WORKDIR/proxy.ports" ] && break; sleep 0.05; done
read -r EPX MPX <"$WORKDIR/proxy.ports" || fail "the proxies did not start"

# a and b talk to etcd and to the marketplace through the proxies; c straight to etcd.
# Every replica's first endpoint is dead. One admin port each.
for r in a b c; do
  if [ "$r" = c ]; then etcd_ep=$EP market=$SRV_PORT; else etcd_ep=$EPX market=$MPX; fi
  port=$(free_port)
  eval "API_$r=http://127.0.0.1:$port"
  ha_replica_dir "$r" "\"http://127.0.0.1:$DEAD\", \"http://127.0.0.1:$etcd_ep\"" \
    "\n  \"admin\": { \"listen\": \"127.0.0.1:$port\" },"
  sed -i "s|127.0.0.1:$SRV_PORT|127.0.0.1:$market|" "$WORKDIR/$r/steward.jsonc"
done
api() { curl -sS --max-time 5 -o "$WORKDIR/api.body" -w '%{http_code}' "$1"; }

start_replica a
wait_log 10 "$WORKDIR/a/steward.log" 'replica a is the leader' "replica a to lead (first endpoint dead)"
grep -q "127.0.0.1:$DEAD" "$WORKDIR/a/steward.log" || fail "a never tried the dead endpoint"

# b once, stopped as a follower (SIGTERM: exits 0, resigns nothing), a stale plugin entry put
# into its journal, then b again.
start_replica b
wait_log 10 "$WORKDIR/b/steward.log" 'following leader a' "replica b to follow a"
kill -TERM "$PID_b"
wait "$PID_b" || fail "the follower did not stop cleanly on SIGTERM"
grep -q 'resigned' "$WORKDIR/b/steward.log" && fail "a follower resigned a lease it never held"
mv "$WORKDIR/b/steward.log" "$WORKDIR/b/steward.first.log"
sqlite3 "$WORKDIR/b/steward.db" \
  "INSERT INTO kv (ns, key, value) VALUES ('market_akash', 'stale-probe', '[]')"
start_replica b
wait_log 10 "$WORKDIR/b/steward.log" 'following leader a' "replica b to follow a again"

# --- the follower's side of the admin API
code=$(api "$API_b/v1/status")
[ "$code" = 200 ] || fail "b /v1/status answered $code"
jq -e '.leader.ha == true and .leader.who == "a" and .leader.self == false and .leader.replica == "b"' \
  "$WORKDIR/api.body" >/dev/null || fail "b's leader object: $(jq -c .leader "$WORKDIR/api.body")"
code=$(api "$API_b/metrics")
[ "$code" = 200 ] || fail "b /metrics answered $code"
grep -q '^steward_ha_leader{replica="b",leader="a"} 0$' "$WORKDIR/api.body" ||
  fail "b's steward_ha_leader: $(grep steward_ha_leader "$WORKDIR/api.body")"
grep -q '^steward_leader 0$' "$WORKDIR/api.body" || fail "b's steward_leader is not 0"
code=$(api "$API_b/readyz")
[ "$code" = 503 ] || fail "b (a follower) /readyz answered $code, want 503"
[ "$(api "$API_b/healthz")" = 200 ] || fail "b /healthz is not 200"
end=$((SECONDS + 10))
until [ "$(api "$API_a/readyz")" = 200 ]; do
  [ "$SECONDS" -lt "$end" ] || fail "the leader a never became ready"
  sleep 0.1
done
api "$API_a/metrics" >/dev/null
grep -q '^steward_ha_leader{replica="a",leader="a"} 1$' "$WORKDIR/api.body" || fail "a's steward_ha_leader is not 1"
api "$API_a/v1/status" >/dev/null
jq -e '.leader.who == "a" and .leader.self == true and .leader.lease_left_ms > 0' "$WORKDIR/api.body" \
  >/dev/null || fail "a's leader object: $(jq -c .leader "$WORKDIR/api.body")"

# --- let a buy (at least two creates through the proxies)
end=$((SECONDS + 25))
until [ "$(grep -c '^market .* /v1/deployments' "$WORKDIR/proxy.log" 2>/dev/null)" -ge 2 ]; do
  [ "$SECONDS" -lt "$end" ] || { log=$WORKDIR/a/steward.log; fail "a created fewer than 2 deployments"; }
  sleep 0.1
done

# --- etcd stops answering: a steps down before its lease could expire; b never acts.
kill -STOP "$ETCD_PID"
t_stop=$(now_s)
wait_log $((TTL + 3)) "$WORKDIR/a/steward.log" 'no longer the leader' "a to step down with etcd stopped"
t_down=$(log_time "$WORKDIR/a/steward.log" 'no longer the leader')
# The lease lives at least TTL from when etcd received the last renewal that it answered.
last_ka=$(awk -v t="$t_stop" '$1 == "etcd" && $4 == "/v3/lease/keepalive" && $5 == 200 && $2 < t { v = $2 } END { print v }' \
  "$WORKDIR/proxy.log")
[ -n "$last_ka" ] || fail "no keepalive of a went through the proxy"
python3 -c "import sys; sys.exit(0 if $t_down < $last_ka + $TTL else 1)" ||
  fail "a stepped down at $t_down, not before its lease could expire ($last_ka + ${TTL}s)"
rc=0
wait "$PID_a" || rc=$?
[ "$rc" != 0 ] || fail "a exited 0 after losing the leadership"
sleep 1.5 # b without etcd, past a's lease
grep -Eq 'replica b is the leader|fence passed|ha: took over' "$WORKDIR/b/steward.log" &&
  { log=$WORKDIR/b/steward.log; fail "b acted without etcd"; }
kill -CONT "$ETCD_PID"
stepdown_margin=$(python3 -c "print('%.3f' % ($last_ka + $TTL - $t_down))")

# --- b takes over; the stale entry of its own journal goes, etcd's entries come.
wait_log $((TTL + 10)) "$WORKDIR/b/steward.log" 'replica b is the leader' "b to take over after etcd resumed"
wait_log 10 "$WORKDIR/b/steward.log" 'ha: took over' "b's takeover"
grep -q 'not in etcd removed' "$WORKDIR/b/steward.log" || { log=$WORKDIR/b/steward.log; fail "no stale entry removal logged"; }
[ "$(sqlite3 "$WORKDIR/b/steward.db" "SELECT count(*) FROM kv WHERE key = 'stale-probe'")" = 0 ] ||
  fail "the stale plugin entry survived the takeover"
[ "$(sqlite3 "$WORKDIR/b/steward.db" "SELECT count(*) FROM kv WHERE ns = 'market_akash' AND key = 'index'")" = 1 ] ||
  fail "b did not get market_akash's index from etcd"

# --- SIGTERM of the leader b: its lease is revoked after the drain, c leads at once.
start_replica c
wait_log 10 "$WORKDIR/c/steward.log" 'following leader b' "replica c to follow b"
end=$((SECONDS + 15))
until [ "$(grep -c "^market .* /v1/deployments" "$WORKDIR/proxy.log")" -ge 3 ]; do
  [ "$SECONDS" -lt "$end" ] || { log=$WORKDIR/b/steward.log; fail "b never created a deployment"; }
  sleep 0.1
done
t_term=$(now_s)
kill -TERM "$PID_b"
wait "$PID_b" || fail "b did not stop cleanly on SIGTERM"
grep -q 'replica b resigned: lease revoked' "$WORKDIR/b/steward.log" || { log=$WORKDIR/b/steward.log; fail "b did not revoke its lease"; }
wait_log $((TTL + 3)) "$WORKDIR/c/steward.log" 'replica c is the leader' "c to take over from b"
t_stopping=$(log_time "$WORKDIR/b/steward.log" 'stopping: terminated')
t_elected=$(log_time "$WORKDIR/c/steward.log" 'replica c is the leader')
handover=$(python3 -c "print('%.3f' % ($t_elected - $t_stopping))")
total=$(python3 -c "print('%.3f' % ($t_elected - $t_term))")
echo "sigterm handover: ${handover}s from the end of the leader's drain to the follower leading (${total}s after SIGTERM; ttl ${TTL}s)"
python3 -c "import sys; sys.exit(0 if $handover < 1.0 else 1)" ||
  fail "SIGTERM handover took ${handover}s: the lease was not revoked (ttl ${TTL}s)"
wait_log 10 "$WORKDIR/c/steward.log" 'ha: took over' "c's takeover"
kill -TERM "$PID_c"
wait "$PID_c" || fail "c did not stop cleanly"

# --- the gate: each create arrived after etcd acknowledged the pending entry for its unit.
python3 - "$WORKDIR/proxy.log" <<'PY' || fail "a deployment create reached the marketplace before its pending entry was acknowledged by etcd"
import sys
acks, creates = [], []
for line in open(sys.argv[1]):
    f = line.split()
    if f[0] == "etcd" and f[3] == "/v3/kv/txn" and f[4] == "200":
        for put in f[5:]:
            if put.startswith("/steward/e2etag/kv/market_akash/pending="):
                acks.append((float(f[2]), put))
    elif f[0] == "market":
        creates.append((float(f[1]), f[4]))
bad = 0
for t, key in creates:
    before = [a for a, put in acks if '"%s"' % key in put and a <= t]
    after = [a for a, put in acks if '"%s"' % key in put and a > t]
    if not before:
        bad += 1
        print("create of %s at %.3f: pending entry acknowledged only at %s" % (
            key, t, ["%.3f" % a for a in after] or "never"), file=sys.stderr)
print("gate: %d creates, each after etcd acknowledged its pending entry" % len(creates)
      if not bad else "gate: %d of %d creates went out first" % (bad, len(creates)))
sys.exit(1 if bad or len(creates) < 3 else 0)
PY

# Nothing bought twice.
ak_state
ha_none_bought_twice
ak_server_stop
kill "$ETCD_PID"
echo "ok: step-down ${stepdown_margin}s before the lease could expire, sigterm handover ${handover}s (ttl ${TTL}s), follower endpoints as documented, stale entry removed"
