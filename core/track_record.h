/* track_record.h — what each provider has done for this steward: leases won and made
 * ready, bid-to-ready time, involuntary closures per lease-hour, probe failures. Kept in
 * the journal (table provider_stats), so it survives restarts.
 *
 * A provider whose involuntary closures per lease-hour cross guard.provider_backoff's
 * threshold is backed off: left out of every acquire (avoid_providers) for backoff, twice
 * as long on each repeat up to max_backoff, as Cluster Autoscaler does per node group. The
 * rate is closures / max(lease-hours, min_lease_hours), lease-hours counting ended leases
 * and the ready time of open ones, so a young record with a burst of closures is judged
 * over min_lease_hours instead of a near-zero denominator. Closures during a back-off
 * belong to the same incident and do not lengthen it. Once a provider has stayed out of
 * back-off for max_backoff, the doubling starts again from backoff.
 * Context: loop thread only. Time comes in as now_ms (sw_clock time).
 */
#ifndef SW_TRACK_RECORD_H
#define SW_TRACK_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "journal.h"
#include "model.h"
#include "spread.h"

struct sw_track_record;

/* How a unit with a known provider stopped. */
enum sw_track_close {
    SW_TRACK_RELEASED = 1, /* steward released it: its lease-hours count, no closure */
    SW_TRACK_LOST = 2,     /* the marketplace or provider closed it: an involuntary closure */
    SW_TRACK_FAILED = 3,   /* its acquire failed after the provider won the bid: a bid and an
                              involuntary closure, no lease-hours */
};

/* One provider as policies see it (ctx.providers). */
struct sw_provider_record {
    const char *provider; /* borrowed from the track record */
    int64_t bids;
    int64_t acquires;
    int64_t closures;
    int64_t probe_failures;
    double lease_hours;          /* ended leases plus the ready time of open ones */
    double mean_ready_s;         /* bid-to-ready; < 0 when no unit got ready yet */
    int64_t backed_off_until_ms; /* 0 when not backed off now */
};

/* Loads the record from journal (borrowed; NULL keeps it in memory only). config is
 * borrowed and must outlive the record. Owned; free with sw_track_record_free. NULL with
 * err (SW_ESTORE) when the journal cannot be read. */
struct sw_track_record *sw_track_record_new(struct sw_journal *journal,
                                            const struct sw_provider_backoff_config *config,
                                            struct sw_error *err);
void sw_track_record_free(struct sw_track_record *tr);

/* u became READY at now_ms: one bid won, one acquire, bid-to-ready = now - ordered_ms.
 * Nothing happens when u->provider is NULL. u is borrowed. */
void sw_track_record_ready(struct sw_track_record *tr, const struct sw_unit *u, int64_t now_ms);

/* u (its provider known, else nothing happens) stopped as `how` (enum sw_track_close) at
 * now_ms. units (may be NULL; borrowed) gives the open leases whose ready time also counts
 * in the rate. Returns true when this closure started a back-off (logged here). */
bool sw_track_record_closed(struct sw_track_record *tr, const struct sw_unit *u, int how,
                            const struct sw_units *units, int64_t now_ms);

/* A probe of a unit on provider failed (recorded; it does not trigger a back-off). */
void sw_track_record_probe_failed(struct sw_track_record *tr, const char *provider);

/* True while provider is backed off at now_ms. */
bool sw_track_record_backed_off(const struct sw_track_record *tr, const char *provider,
                                int64_t now_ms);
/* Adds every provider backed off at now_ms to out (sorted by name). */
void sw_track_record_backed_off_list(const struct sw_track_record *tr, int64_t now_ms,
                                     struct sw_names *out);

/* The stored row of provider, or NULL. Borrowed until the next call that changes tr. */
const struct sw_provider_row *sw_track_record_find(const struct sw_track_record *tr,
                                                   const char *provider);

/* Every provider, by name, as of now_ms (units as for sw_track_record_closed). The array
 * and its strings are borrowed until the next call on tr; *count gets its length. */
const struct sw_provider_record *sw_track_record_view(struct sw_track_record *tr,
                                                      const struct sw_units *units, int64_t now_ms,
                                                      size_t *count);

#endif /* SW_TRACK_RECORD_H */
