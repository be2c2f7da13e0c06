/* runtime.h — the one loop: observations → policy → guard → planner → marketplace, with
 * the journal in between (intent before action) and recovery before the first decision.
 *
 * The runtime owns the journal, the plugin host, the policies and the set of units. It
 * borrows a clock (live or simulated) and, live, a uv loop for HTTP. The same functions
 * run under `steward run` and `steward simulate`; only the clock and plugins differ.
 * Context: loop thread only.
 */
#ifndef SW_RUNTIME_H
#define SW_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "clock.h"
#include "config.h"
#include "error.h"
#include "model.h"

struct sw_runtime;
struct sw_journal;
struct sw_http_client;

struct sw_runtime_opts {
    const struct sw_config *config;     /* borrowed; must outlive the runtime */
    struct sw_clock *clock;             /* borrowed */
    uv_loop_t *loop;                    /* borrowed; for HTTP, created on a plugin's first
                                           request; NULL: plugins get no HTTP (simulation) */
    bool dry_run;                       /* plan and journal, call no marketplace write op */
    const char *const *plugin_dirs;     /* searched in order for swp_<name>.so */
    size_t plugin_dir_count;
    const char *lua_path;               /* directory holding steward/<module>.lua */
    uint64_t op_grace_ms;               /* extra time past a deadline before the runtime
                                           gives up on a plugin op; 0 = 30 s */
    int64_t offers_every_ms;            /* offers refresh; 0 = 30 s */
    int64_t watch_every_ms;             /* list owned units to sync state; 0 = 30 s */
    bool skip_inputs;                   /* do not journal each evaluation's full inputs
                                           (simulation: speed; replay needs them live) */
    /* Called when something worth stopping for happens (e.g. the market plugin failed
     * to list units during recovery). NULL: ignore. */
    void (*on_fatal)(void *ud, const struct sw_error *err);
    void *fatal_ud;
};

/* Counters for status output and tests. */
struct sw_runtime_stats {
    uint64_t evaluations;
    uint64_t policy_errors;
    uint64_t acquires_started;
    uint64_t acquires_ready;
    uint64_t acquires_failed;
    uint64_t releases_started;
    uint64_t releases_done;
    uint64_t releases_failed;
    uint64_t refused;
    uint64_t units_lost;
    uint64_t recovered_adopted;
    uint64_t recovered_abandoned;
    uint64_t recovered_closed_orphans;
    int64_t started_ms;
    int64_t first_eval_ms;   /* clock time of the first evaluation, 0 before */
};

/* Open the journal, load plugins, compile policies, restore policy state and units.
 * Nothing is scheduled yet. Owned; free with sw_runtime_free. NULL with err: SW_ECONFIG
 * for plugin configuration problems, SW_EABI for refused plugins, SW_EPOLICY for a policy
 * that does not compile, SW_ESTORE for the journal. */
struct sw_runtime *sw_runtime_new(const struct sw_runtime_opts *opts, struct sw_error *err);

/* Resolve unfinished intents against the marketplace (recovery), then start the policy,
 * metrics, offers and watch timers. Returns 0 or an error from the first step. */
int sw_runtime_start(struct sw_runtime *rt, struct sw_error *err);

/* Stop scheduling new work and flush the journal. In-flight marketplace operations stay
 * journaled as pending and are resolved by the next start's recovery. */
void sw_runtime_stop(struct sw_runtime *rt);

/* Re-read every policy file now (SIGHUP); failures keep the old versions. */
void sw_runtime_reload(struct sw_runtime *rt);

/* Destroys plugins (their pending ops complete with SW_ECANCELED), closes the journal. */
void sw_runtime_free(struct sw_runtime *rt);

const struct sw_runtime_stats *sw_runtime_stats(const struct sw_runtime *rt);
const struct sw_units *sw_runtime_units(const struct sw_runtime *rt);
const struct sw_desired *sw_runtime_desired(const struct sw_runtime *rt);
struct sw_journal *sw_runtime_journal(struct sw_runtime *rt);
/* True once recovery finished and the first evaluation ran. */
bool sw_runtime_ready(const struct sw_runtime *rt);
/* Marketplace operations started and not yet completed. */
size_t sw_runtime_ops_in_flight(const struct sw_runtime *rt);

/* dns: the DNS sync of the "dns" config section, or NULL when there is none. Borrowed;
 * for status output and tests. */
struct sw_dns_sync;
struct sw_dns_sync *sw_runtime_dns(struct sw_runtime *rt);

#endif /* SW_RUNTIME_H */
