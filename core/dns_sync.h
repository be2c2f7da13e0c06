/* dns_sync.h — keep DNS pointing at the live units (the "dns" config section).
 *
 * For every READY unit of a configured group, its ingress targets (the hosts of its uris)
 * are published under the group's name and, per region, under <region>.<name>: A/AAAA when
 * the targets are IP addresses, otherwise a CNAME to one target (the longest-ready unit).
 * Next to every record steward manages sits an ownership TXT record (like external-dns's
 * TXT registry) at sw-<type>-<first label>.<rest of the name>, holding
 * "heritage=steward,steward/owner=<owner_id>,steward/group=<group>". A record without our
 * ownership record is never modified or deleted: a clash is reported (log + journal event
 * "dns_conflict"), not overwritten.
 *
 * Make-before-break: a unit is published once READY; before a planned release the runtime
 * asks sw_dns_sync_before_release, which withdraws the unit and calls back only after the
 * withdrawal reached the DNS server and the drain time passed. Units lost without a plan
 * are withdrawn on the next pass, at once. DNS failures never hold back buying; they hold
 * back releases (old leases stay until DNS no longer points at them), passes are retried
 * with exponential backoff and each failure streak raises an "alert" event.
 *
 * Passes are serial: list the zone, compute the changes, apply them one RRset at a time
 * (compare-and-set through the plugin's update_if when it has one, so a concurrent change
 * between the list and the write is detected and the pass restarts).
 * Context: loop thread only.
 */
#ifndef SW_DNS_SYNC_H
#define SW_DNS_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "config.h"
#include "model.h"
#include "steward/swp_plugin.h"

struct sw_dns_sync;

struct sw_dns_sync_opts {
    const struct sw_dns_config *config; /* borrowed; must outlive the sync */
    struct sw_clock *clock;             /* borrowed */
    const struct swp_dns_ops *ops;      /* borrowed: the dns plugin's ops */
    void *plugin_state;                 /* handed to every op */
    const char *plugin_name;            /* for messages; copied */
    const struct sw_units *units;       /* borrowed: the runtime's live set, read at each pass */
    /* Journal hook: type ("dns_change", "dns_conflict", "dns_withdrawn", "dns_drained",
     * "alert", ...) and a JSON object text, both borrowed for the call. NULL: none. */
    void (*on_event)(void *ud, const char *type, const char *data_json);
    void *event_ud;
    uint64_t retry_min_ms;              /* first retry after a failed pass; 0 = 1 s */
    uint64_t retry_max_ms;              /* backoff cap; 0 = 60 s */
};

struct sw_dns_sync_stats {
    uint64_t passes;         /* passes that completed without error */
    uint64_t passes_failed;
    uint64_t changes;        /* RRset writes and deletes applied */
    uint64_t conflicts;      /* foreign records left alone (counted once per pass) */
    uint64_t withdrawals;    /* planned releases whose unit was withdrawn and drained */
    int consecutive_failures;
    int64_t last_ok_ms;      /* clock time of the last good pass, 0 before */
};

/* Owned; free with sw_dns_sync_free. Never NULL. Nothing runs before sw_dns_sync_start. */
struct sw_dns_sync *sw_dns_sync_new(const struct sw_dns_sync_opts *opts);
/* Run a first pass now and then every config->resync_ms. */
void sw_dns_sync_start(struct sw_dns_sync *s);
/* Stop timers and start nothing new. Deferred releases are dropped without their callback:
 * their journal intents stay pending and the next start's recovery re-plans them. An op in
 * flight completes later (SW_ECANCELED when the plugin is destroyed) and is ignored. */
void sw_dns_sync_stop(struct sw_dns_sync *s);
/* Frees everything. Call after the dns plugin was destroyed (its pending ops completed),
 * or with no op in flight. NULL is a no-op. */
void sw_dns_sync_free(struct sw_dns_sync *s);

/* Units changed (a state, a unit added or dropped): run a pass on the next turn, or right
 * after the pass in flight. Cheap; call it on every change. */
void sw_dns_sync_kick(struct sw_dns_sync *s);

typedef void (*sw_dns_release_cb)(void *ud, const char *unit_key);

/* A planned release of u is about to be sent; u must already be out of the published set
 * (state RELEASING). Returns 0 when the release may go now (the unit was never in DNS,
 * or the sync is stopped), or 1 when it must wait: resume(ud, u->key) fires once the
 * withdrawal reached the server and drain_ms passed. unit key and targets are copied. */
int sw_dns_sync_before_release(struct sw_dns_sync *s, const struct sw_unit *u,
                               sw_dns_release_cb resume, void *ud);
/* Releases held back right now. */
size_t sw_dns_sync_deferred(const struct sw_dns_sync *s);
/* True when the last pass succeeded and nothing changed since. */
bool sw_dns_sync_settled(const struct sw_dns_sync *s);
const struct sw_dns_sync_stats *sw_dns_sync_stats(const struct sw_dns_sync *s);

/* ---- helpers shared with tests ------------------------------------------------------ */

/* The host of a unit uri: "https://[2001:db8::1]:8443/x" → "2001:db8::1",
 * "web-1.example:80" → "web-1.example". Writes at most size bytes; false when empty. */
bool sw_dns_uri_host(const char *uri, char *out, size_t size);
/* Name of the ownership TXT record of (name, type): "sw-a-www.example.test." for
 * ("www.example.test.", "A"). Owned by the caller. */
char *sw_dns_owner_name(const char *name, const char *type);

#endif /* SW_DNS_SYNC_H */
