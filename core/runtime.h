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
    /* Observation hooks (the simulator's accounting; NULL: none), called on the loop
     * thread with borrowed arguments and must not call back into the runtime.
     * on_unit: after every journaled change of a unit (state, market id, provider,
     * price), with the unit as it now is. on_evaluation: after a policy's evaluation was
     * journaled and its actions started; sw_runtime_desired/units show the result. */
    void (*on_unit)(void *ud, const struct sw_unit *u);
    void (*on_evaluation)(void *ud, const char *policy);
    void *observe_ud;
    /* Journal neither evaluation records nor the policy state after each tick (simulation
     * without --keep-journal: no restart to survive, no replay, and memory stays flat). */
    bool skip_records;
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

/* ---- admin API hooks (admin_api.c) ------------------------------------------------------
 * What the admin API reads and changes: per-policy counters, pause/resume, overrides, and
 * the plugins' HTTP latency. Context: loop thread only, like everything above. */

/* Upper bounds (seconds) of the duration histograms below; one more bucket counts the rest. */
#define SW_RUNTIME_HIST_BUCKETS 12
extern const double sw_runtime_hist_bounds[SW_RUNTIME_HIST_BUCKETS];

struct sw_runtime_hist {
    uint64_t buckets[SW_RUNTIME_HIST_BUCKETS + 1]; /* per bucket, not cumulative */
    uint64_t count;
    double sum_s;
};

struct sw_runtime_policy_info {
    const char *name;           /* borrowed from the config */
    const char *file;
    int64_t interval_ms;
    bool paused;
    uint64_t evaluations;
    uint64_t errors;            /* failed evaluate and on_event calls */
    int64_t last_eval_ms;       /* clock time; 0 before the first */
    double last_duration_ms;
    const char *last_error;     /* the last failure's message, NULL after a good evaluation;
                                   borrowed until the policy runs again */
    struct sw_runtime_hist duration; /* evaluate() wall time, policy and planning included */
};

size_t sw_runtime_policy_count(const struct sw_runtime *rt);
/* Policy i (< sw_runtime_policy_count) in config order; strings borrowed as noted. */
void sw_runtime_policy_info(const struct sw_runtime *rt, size_t i,
                            struct sw_runtime_policy_info *out);
/* Pause (no evaluate, no on_event; its groups keep their last desired counts) or resume
 * (evaluates on the next turn). Recorded in the journal, so a pause survives a restart.
 * 0, or SW_ENOENT for an unknown policy name. */
int sw_runtime_policy_set_paused(struct sw_runtime *rt, const char *name, bool paused);

/* Guard refusals by action kind (the total is stats.refused). */
uint64_t sw_runtime_refused_count(const struct sw_runtime *rt, int action_kind);

/* A count pinned by an operator: applied after the policies' desired states are merged
 * and before the guard, which still clamps it (min/max, budget, cooldowns). */
struct sw_runtime_override {
    const char *group;          /* borrowed until the override is replaced or expires */
    const char *region;         /* NULL: the group's total, spread like the current desired
                                   state (evenly over its regions when that is empty) */
    int count;
    int64_t set_ms;
    int64_t until_ms;           /* clock time it expires */
};

/* Pin group (or group/region) to count for duration_ms (clock time, so --speed compresses
 * it). A group-wide override replaces every override of the group; a regional one replaces
 * the group-wide one and the same region's. Takes effect at once (a planning pass runs if
 * recovery finished) and, when it expires, the policies' own desired state comes back.
 * Returns 0; SW_ENOENT for an unknown group; SW_EINVAL (with err) for a region the group
 * may not use, count outside [0, max], duration_ms <= 0, or a group-wide override on a
 * group with no region to spread over. Strings are copied. */
int sw_runtime_override_set(struct sw_runtime *rt, const char *group, const char *region,
                            int count, int64_t duration_ms, struct sw_error *err);
/* Remove every override of group now (same effect as expiry). 0 or SW_ENOENT if none. */
int sw_runtime_override_clear(struct sw_runtime *rt, const char *group);
size_t sw_runtime_override_count(const struct sw_runtime *rt);
/* Override i (< count); borrowed until overrides change. */
const struct sw_runtime_override *sw_runtime_override_at(const struct sw_runtime *rt, size_t i);

/* HTTP requests plugins made through the host (a market plugin's marketplace calls). */
struct sw_runtime_http_stats {
    const char *plugin;         /* borrowed, lives as long as the runtime */
    uint64_t ok;                /* a response arrived (any HTTP status) */
    uint64_t errors;            /* timeout, transport error, too big */
    struct sw_runtime_hist duration; /* responses only */
};

size_t sw_runtime_http_stats_count(const struct sw_runtime *rt);
const struct sw_runtime_http_stats *sw_runtime_http_stats_at(const struct sw_runtime *rt,
                                                             size_t i);
/* The configuration the runtime was created with (borrowed). */
const struct sw_config *sw_runtime_config(const struct sw_runtime *rt);

/* Stop deciding, keep finishing (SIGTERM's drain): no more policy evaluations, metric,
 * offer or watch refreshes, or override passes; marketplace operations already started
 * go on and complete normally (watch sw_runtime_ops_in_flight). Call sw_runtime_stop
 * afterwards; what is still in flight then stays pending for the next start's recovery. */
void sw_runtime_quiesce(struct sw_runtime *rt);
/* dns: the DNS sync of the "dns" config section, or NULL when there is none. Borrowed;
 * for status output and tests. */
struct sw_dns_sync;
struct sw_dns_sync *sw_runtime_dns(struct sw_runtime *rt);

/* ha: who leads (docs/operations.md#high-availability), for the admin API. The JSON object
 * of /v1/status's "leader" ({"ha":false,"who":"self",...} without an "ha" section) and the
 * /metrics lines steward_leader and, with HA, steward_ha_leader. Both are owned by the
 * runtime and valid until the next call of the same function. */
const char *sw_runtime_leader_json(struct sw_runtime *rt);
const char *sw_runtime_leader_metrics(struct sw_runtime *rt);

#endif /* SW_RUNTIME_H */
