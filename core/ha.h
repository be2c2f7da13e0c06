/* ha.h — several steward replicas, one acting: leader election, fencing and the replicated
 * owned-units set through etcd's v3 JSON gateway (etcd 3.4: /v3/lease/grant, keepalive,
 * revoke, /v3/kv/range, /v3/kv/txn), spoken over the core's async HTTP client on the loop.
 *
 * The leader holds <prefix>/leader (value: its replica name) attached to a lease it keeps
 * alive every TTL/3. Every write it makes afterwards (a unit's record under
 * <prefix>/units/<key>, the unit sequence at <prefix>/unit_seq) is a txn whose compare is
 * "the leader key still has the create_revision and value this replica won": if another
 * replica took over, the txn fails, nothing is written and this replica steps down. The
 * runtime writes a unit's record before each marketplace action (the fence), so a paused
 * ex-leader cannot act. See docs/operations.md#high-availability.
 * Context: loop thread only.
 */
#ifndef SW_HA_H
#define SW_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "clock.h"
#include "config.h"
#include "error.h"
#include "model.h"

struct sw_ha;

struct sw_ha_opts {
    const struct sw_ha_config *config; /* borrowed; must outlive the sw_ha */
    struct sw_clock *clock;            /* borrowed */
    uv_loop_t *loop;                   /* borrowed; for the HTTP client */
    /* This replica won the election: it may now load the replicated units
     * (sw_ha_units_load) and act. Called once. */
    void (*on_elected)(void *ud);
    /* This replica was the leader and is no longer (lease not renewed in time, lease gone,
     * a fenced txn refused): it must not act any more. Called once, after which every
     * write is refused. why is borrowed for the call. */
    void (*on_lost)(void *ud, const char *why);
    void *ud;
};

/* Owned; free with sw_ha_free. NULL with err (SW_ECONFIG) when the configuration cannot be
 * used (no endpoint). Nothing is sent before sw_ha_start. */
struct sw_ha *sw_ha_new(const struct sw_ha_opts *opts, struct sw_error *err);
/* Start following and campaigning (the first range goes out on the next turn). */
void sw_ha_start(struct sw_ha *ha);
/* Stop every timer and cancel every request; queued writes complete with SW_ECANCELED.
 * The lease is left to expire unless sw_ha_resign ran first. NULL is a no-op. */
void sw_ha_free(struct sw_ha *ha);
/* Clean shutdown of a leader: revoke its lease (which deletes the leader key) so a follower
 * takes over at its next poll instead of after the TTL. Blocks up to min(ttl/3, 1 s) per
 * endpoint: meant for after the loop stopped (exit path), when the async client cannot
 * run. Afterwards this replica acts on nothing (writes are refused). Returns 0 (revoked,
 * or not leading: nothing to do) or SW_EHTTP (no endpoint answered; the lease expires). */
int sw_ha_resign(struct sw_ha *ha);

/* Done callback of a write: 0 (written under this replica's leadership), SW_EAGAIN (refused:
 * this replica is not, or no longer, the leader; nothing was written), SW_ECANCELED (the
 * sw_ha is being freed). */
typedef void (*sw_ha_done_cb)(void *ud, int status);

/* Record u (borrowed for the call; serialized now) under <prefix>/units/<key> in a fenced
 * txn, together with unit_seq at <prefix>/unit_seq when it grew. Writes are sent one at a
 * time in call order; a write still queued for the same unit is replaced by the newer one
 * (its callback carried over). Transport errors are retried while this replica leads.
 * done may be NULL. Returns 0 (done fires exactly once), or SW_EAGAIN when not the leader
 * (done never fires). */
int sw_ha_unit_put(struct sw_ha *ha, const struct sw_unit *u, uint64_t unit_seq,
                   sw_ha_done_cb done, void *ud);
/* Delete a unit's record (closed or released) the same fenced way. Same returns. */
int sw_ha_unit_delete(struct sw_ha *ha, const char *unit_key, sw_ha_done_cb done, void *ud);

/* The request gate: done fires (0) once every write queued before this call has been
 * acknowledged by etcd, or with SW_EAGAIN (leadership lost: those writes were refused) or
 * SW_ECANCELED (freeing). Returns 1 when nothing is outstanding (done never fires: go
 * ahead now), else 0 (done fires exactly once, never inside this call). */
int sw_ha_barrier(struct sw_ha *ha, sw_ha_done_cb done, void *ud);
/* Writes queued or in flight, not yet acknowledged (0 for NULL). */
size_t sw_ha_writes_outstanding(const struct sw_ha *ha);

/* Takeover: the recorded units and the plugins' key-value entries (keys "<plugin>/<key>"),
 * both borrowed for the call (clone what you keep; NULL unless status is 0), and the highest
 * unit sequence any leader recorded. status as for sw_ha_done_cb. */
struct sw_ha_kvs;
typedef void (*sw_ha_units_cb)(void *ud, int status, const struct sw_units *units,
                               const struct sw_ha_kvs *plugin_kv, uint64_t unit_seq);
/* Replicate a plugin's key-value entry (value NULL: delete it) under <prefix>/kv/<ns>/<key>,
 * fenced and queued like the unit records: a plugin's own bookkeeping (the market plugin's
 * deployment index) must follow the leadership, or the next leader's plugin would not know
 * what it owns. Returns 0 or SW_EAGAIN (not the leader). */
int sw_ha_kv_put(struct sw_ha *ha, const char *ns, const char *key, const char *value);

/* Read the replicated owned-units set and plugin entries in one fenced txn (so what is read
 * is what the last leader wrote before this one won). Returns 0 (cb fires once) or
 * SW_EAGAIN. */
int sw_ha_units_load(struct sw_ha *ha, sw_ha_units_cb cb, void *ud);

struct sw_ha_leader_info {
    const char *replica;     /* this replica's name (borrowed) */
    const char *leader;      /* the leader's replica name as last seen, or NULL: none known */
    bool is_leader;          /* this replica holds the leadership now */
    int64_t since_ms;        /* clock time this replica first saw that leader (won, for self) */
    int64_t lease_left_ms;   /* leader: time left before it steps down unless renewed */
    uint64_t elections_won;
};
void sw_ha_leader(const struct sw_ha *ha, struct sw_ha_leader_info *out);
bool sw_ha_is_leader(const struct sw_ha *ha);
/* The synchronous half of fencing, for every plugin request: true once this replica led and
 * may not act any more (stepped down, or its lease is past the step-down point, in which
 * case the step-down runs on the next turn). False for NULL and for a replica that never
 * led. */
bool sw_ha_fenced_out(struct sw_ha *ha);

/* ---- etcd JSON gateway replies (exposed for tests/unit/test_ha.c) ----------------------
 * etcd 3.4's gateway omits false, zero and empty fields and writes every int64 as a JSON
 * string; lease IDs and revisions go past 2^53, so they are parsed from the string into
 * int64 and never through a double. Each parser takes an HTTP status and a body (not
 * necessarily NUL-terminated; anything after the first JSON value, like trailers, is
 * ignored). Returns 0, or SW_EHTTP with msg (size >= 128) filled from an error reply
 * ({"error","message","code"}, any status) or describing what was malformed. */

struct sw_ha_kv {
    char *key;               /* decoded from base64; owned */
    char *value;             /* decoded; owned ("" when omitted) */
    int64_t create_revision;
    int64_t mod_revision;
    int64_t lease;           /* 0 when omitted */
};
struct sw_ha_kvs {
    struct sw_ha_kv *items;  /* owned */
    size_t count;
};
void sw_ha_kvs_clear(struct sw_ha_kvs *kvs);

/* /v3/lease/grant: {"header":{...},"ID":"<int64>","TTL":"<int64>"}. */
int sw_ha_parse_grant(long status, const char *body, size_t len, int64_t *id, int64_t *ttl_s,
                      char *msg);
/* /v3/lease/keepalive, one POST: {"result":{"header":{...},"ID":"...","TTL":"..."}}; the TTL
 * is omitted (0) when the lease no longer exists. A stream error arrives as
 * {"error":{"grpc_code":..,"message":..}}. */
int sw_ha_parse_keepalive(long status, const char *body, size_t len, int64_t *ttl_s, char *msg);
/* /v3/kv/range: kvs appended to out (may be absent: no key). *revision = header.revision. */
int sw_ha_parse_range(long status, const char *body, size_t len, struct sw_ha_kvs *out,
                      int64_t *revision, char *msg);
/* /v3/kv/txn: *succeeded (omitted: false), *revision = header.revision, and the kvs of every
 * response_range in the responses, in order, appended to ranges (NULL: ignored). */
int sw_ha_parse_txn(long status, const char *body, size_t len, bool *succeeded,
                    int64_t *revision, struct sw_ha_kvs *ranges, char *msg);

/* A unit's record as stored under <prefix>/units/<key>: JSON (owned, free) and back (a new
 * unit, NULL when malformed). */
char *sw_ha_unit_record(const struct sw_unit *u);
struct sw_unit *sw_ha_unit_from_record(const char *json, size_t len);

#endif /* SW_HA_H */
