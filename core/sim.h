/* sim.h — `steward simulate`: the real runtime (policies, guard, planner, journal, plugins)
 * driven by the virtual clock over recorded traces, with the marketplace swapped for
 * market_sim and the demand metric for metrics_trace. The driver only observes: it
 * integrates lease cost from unit state changes, samples a web-serving model every
 * simulated minute and runs a small batch-job model (docs/simulation.md has the formulas).
 *
 * The pure models (latency histogram, web assignment, jobs) are public so tests can check
 * their arithmetic by hand.
 * Context: one thread; a run owns its clock and runtime.
 */
#ifndef SW_SIM_H
#define SW_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "trace.h"

/* ---- latency histogram (request-weighted, nearest rank) ------------------------------ */

/* Values are kept at 0.01 ms resolution below 100 ms, 0.1 ms below 1 s, 1 ms below 60 s;
 * longer ones land in the last bin. */
struct sw_hist {
    double *weight; /* SW_HIST_BINS */
    double total;
};

void sw_hist_init(struct sw_hist *h);
void sw_hist_clear(struct sw_hist *h);
void sw_hist_add(struct sw_hist *h, double value_ms, double weight);
/* Smallest recorded value whose cumulative weight reaches p% of the total (nearest rank;
 * p in (0, 100]); NaN when empty. */
double sw_hist_percentile(const struct sw_hist *h, double p);
void sw_hist_merge(struct sw_hist *into, const struct sw_hist *from);

/* Weighted nearest-rank percentile of (value, weight) pairs; sorts them in place. NaN when
 * the total weight is 0. Values may be INFINITY (dropped requests). */
struct sw_weighted {
    double value;
    double weight;
};
double sw_weighted_percentile(struct sw_weighted *items, size_t count, double p);

/* ---- web demand model (one sample) ---------------------------------------------------- */

/* Users in region u send demand[u] requests/s; serving region s absorbs capacity[s]. Pairs
 * are visited in increasing RTT (ties: lower u, then lower s) and each takes what it can,
 * so a region's users go to the nearest region with capacity left and spill to the next
 * nearest; what no region can take is dropped. Latency of a pair = rtt + service_ms ×
 * ρ/(1−ρ), ρ = the serving region's load / capacity, capped at SW_SIM_RHO_CAP. */
#define SW_SIM_RHO_CAP 0.95

struct sw_web_model {
    size_t users;
    size_t servers;
    const double *rtt_ms; /* users × servers */
    size_t *order;        /* users × servers pair indices by RTT; sw_web_model_init fills */
    double service_ms;
    /* Optional, NULL after sw_web_model_init: order[k]'s user and server, so a sample
     * does not divide per pair (the simulator fills them; users × servers entries). */
    uint32_t *order_user;
    uint32_t *order_server;
};

/* order must hold users × servers entries; it is filled here (owned by the caller). */
void sw_web_model_init(struct sw_web_model *m, size_t users, size_t servers, const double *rtt_ms,
                       size_t *order, double service_ms);
/* served (users × servers), dropped (users) and latency (users × servers; NaN where nothing
 * is served) are outputs; load (servers) is scratch. Returns how many pairs the walk wrote
 * a share to; when served_pairs (users × servers entries, or NULL) is given, it gets those
 * pairs in ascending order: every pair with served > 0 is among them (the others read 0),
 * so a caller can skip the rest. */
size_t sw_web_model_assign(const struct sw_web_model *m, const double *demand,
                           const double *capacity, double *served, double *dropped, double *latency,
                           double *load, size_t *served_pairs);

/* ---- batch-job model ------------------------------------------------------------------ */

/* Jobs queue first-in first-out; the head starts once `workers` ready units of the job
 * group are free, runs duration_s, then frees them. A worker lost while a job runs
 * interrupts the job started last, which goes back to the head of the queue and starts
 * over. Ready-unit time not held by a job is idle (waste). Times are clock ms. */
struct sw_jobsim;

struct sw_jobsim_stats {
    uint64_t submitted;
    uint64_t started;
    uint64_t completed;
    uint64_t restarted;
    uint64_t waiting;  /* submitted, never started by the end */
    double wait_p50_s; /* over jobs that started; NaN when none */
    double wait_p95_s;
    double worker_hours;      /* ready units of the job group × time */
    double idle_worker_hours; /* of which no job held them */
    double gpu_hours;         /* busy workers × gpus_per_worker × time */
};

/* jobs borrowed; submit times are origin_ms + submit_s × 1000. Owned; sw_jobsim_free. */
struct sw_jobsim *sw_jobsim_new(const struct sw_job *jobs, size_t count, int64_t origin_ms,
                                int64_t start_ms);
void sw_jobsim_free(struct sw_jobsim *js);
/* Process submits and completions up to now_ms (time never goes back). */
void sw_jobsim_advance(struct sw_jobsim *js, int64_t now_ms);
/* The ready worker count changed at now_ms. */
void sw_jobsim_set_workers(struct sw_jobsim *js, int64_t now_ms, int ready);
/* Next submit or completion, INT64_MAX when none. */
int64_t sw_jobsim_next_ms(const struct sw_jobsim *js);
/* Advance to end_ms and fill out. */
void sw_jobsim_finish(struct sw_jobsim *js, int64_t end_ms, struct sw_jobsim_stats *out);
/* ml: calls fn for every job submitted and not completed (index into the jobs array):
 * started_ms is when its current run started, -1 while it waits for workers. Returns how
 * many jobs of the array are submitted or before the window (the next submit's index). */
typedef void (*sw_jobsim_active_fn)(void *ud, size_t job, int64_t started_ms);
size_t sw_jobsim_active(const struct sw_jobsim *js, sw_jobsim_active_fn fn, void *ud);

/* ---- a run -------------------------------------------------------------------------- */

struct sw_sim_opts {
    const char *config_path;
    const char *const *traces; /* demand and/or jobs CSV files (one of each at most) */
    size_t trace_count;
    const char *providers_path; /* NULL: simulation.providers, else market_sim's own */
    const char *rtt_path;       /* NULL: simulation.rtt */
    bool has_from, has_to;
    double from_s, to_s; /* trace seconds; default: the demand trace's span */
    bool has_seed;
    uint64_t seed;            /* default: the config's seed */
    const char *journal_path; /* NULL: ":memory:" */
    bool verbose;             /* runtime logs at info instead of warn */
    const char *const *plugin_dirs;
    size_t plugin_dir_count;
    const char *lua_path;
    FILE *timeline;       /* NULL: no timeline rows */
    int run_index;        /* the timeline's "run" column (1-based) */
    bool timeline_header; /* write the header row first */
    /* Called about every simulated hour with the fraction done (0..1). */
    void (*progress)(void *ud, double fraction);
    void *progress_ud;
};

struct sw_sim_region {
    char *name;
    double demand_requests; /* from users in the region */
    double served_requests;
    double dropped_requests;
    double served_here_requests;                  /* by capacity in the region */
    double latency_p50, latency_p95, latency_p99; /* users in the region; NaN: none */
    double cost_usd;
    double lease_hours;
    uint64_t leases_acquired;
    int peak_ready; /* units of any group */
};

struct sw_sim_group {
    char *name;
    double cost_usd;
    double lease_hours;
    uint64_t leases_acquired;
    uint64_t leases_released;
    uint64_t provider_closures;
    int peak_ready;
    /* Availability: every sample_every the driver checks whether the group's ready units
     * (all regions) reach its configured min; a sample stands for its period (the last one
     * may be shorter). availability = available_s / sampled_s, NaN before any sample. */
    int min;
    double available_s;
    double sampled_s;
    double availability;
};

/* Downsampled time series for the HTML report: bucket b covers
 * [start_s + b × bucket_s, start_s + (b + 1) × bucket_s). */
struct sw_sim_series {
    size_t buckets;
    double bucket_s;
    double *demand_rps;      /* region_count × buckets: mean over the bucket */
    double *capacity_rps;    /* region_count × buckets: mean ready web units × rps_per_unit */
    double *p50, *p95, *p99; /* buckets: mean of the per-minute values, NaN without traffic */
    double *cost_usd;        /* buckets: cumulative at the bucket's end */
    double *acquired, *released, *lost; /* buckets: lease events */
    double *samples;                    /* buckets: minutes sampled (scratch for the means) */
    double *lat_samples;
};

struct sw_sim_result {
    char *config_path;
    char *policy_names; /* "a, b" */
    uint64_t seed;
    double start_s, end_s, sim_s;
    double wall_s; /* not in report.json (not deterministic) */
    /* summary */
    double cost_usd;
    double lease_hours;
    uint64_t leases_acquired;
    uint64_t leases_released;
    uint64_t provider_closures;
    uint64_t actions;
    uint64_t evaluations;
    uint64_t policy_errors;
    uint64_t refused;
    double latency_p50, latency_p95, latency_p99; /* NaN without served requests */
    double slo_violation_minutes;
    double demand_requests;
    double served_requests;
    double dropped_requests;
    /* Share of the sampled time during which every group had at least its min ready (the
     * groups' own shares are in groups[]); NaN before any sample. */
    double availability;
    double available_s, sampled_s;
    bool has_demand;
    bool has_jobs;
    struct sw_jobsim_stats jobs;
    /* the model's parameters, echoed */
    double rps_per_unit, slo_p95_ms, service_ms;
    char *web_group;
    char *job_group;
    struct sw_sim_region *regions; /* sorted by name */
    size_t region_count;
    struct sw_sim_group *groups; /* config order */
    size_t group_count;
    struct sw_sim_series series;
};

void sw_sim_result_free(struct sw_sim_result *r);

/* Run one configuration over the traces. 0 with *out owned (sw_sim_result_free); < 0 with
 * err: SW_ECONFIG/SW_EPOLICY/SW_EABI for configuration problems, SW_EINVAL for trace
 * errors (FILE:LINE:COLUMN), SW_EIO for unreadable files, or a runtime failure. */
int sw_sim_run(const struct sw_sim_opts *opts, struct sw_sim_result **out, struct sw_error *err);

/* ---- the CLI ------------------------------------------------------------------------ */

/* `steward simulate ...` (argv[0] is "simulate"). Returns the process exit code: 0, 1 on a
 * runtime failure, 2 on bad usage, configuration or traces. */
int sw_sim_main(int argc, char **argv);

#endif /* SW_SIM_H */
