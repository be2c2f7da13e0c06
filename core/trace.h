/* trace.h — the simulator's input files: demand, round-trip times and jobs, as CSV with a
 * header row (docs/simulation.md). Every problem is an error naming FILE:LINE:COLUMN.
 *
 * Format rules shared by the three kinds: one header row naming the columns (any order,
 * no extra columns), comma-separated plain fields (no quoting), surrounding spaces and a
 * trailing CR ignored, blank lines and lines starting with '#' skipped, every row with as
 * many fields as the header. Times are seconds from the trace origin.
 * Context: any thread; no shared state.
 */
#ifndef SW_TRACE_H
#define SW_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum sw_trace_kind {
    SW_TRACE_DEMAND = 1, /* time_s,region,rps */
    SW_TRACE_JOBS = 2,   /* submit_s,duration_s,workers,gpus_per_worker */
    SW_TRACE_RTT = 3,    /* from,to,rtt_ms */
};

/* Which kind a file is, from its header row: a kind > 0, or SW_EINVAL/SW_EIO with err
 * ("FILE:1:1: header 'a,b' is none of ..."). */
int sw_trace_kind(const char *path, struct sw_error *err);

/* ---- demand: requests per second from users in each region ------------------------- */

/* One region's series: the rate holds from one row's time until the next row's. */
struct sw_demand_series {
    double *time_s; /* non-decreasing */
    double *rps;
    size_t count;
    int first_line; /* where the region first appears, for error messages */
    int first_col;
};

struct sw_demand {
    char *path;
    char **regions;                  /* sorted by name */
    struct sw_demand_series *series; /* parallel to regions */
    size_t region_count;
    size_t row_count;
    double start_s; /* first row's time */
    double end_s;   /* last row's time */
};

/* Load and validate (sorted times, no duplicate (time, region), rps >= 0). Owned; free
 * with sw_demand_free. NULL with err (SW_EINVAL for content, SW_EIO when unreadable). */
struct sw_demand *sw_demand_load(const char *path, struct sw_error *err);
void sw_demand_free(struct sw_demand *d);
/* Index of region in d->regions, or -1. */
int sw_demand_region(const struct sw_demand *d, const char *region);
/* The rate of region index r at time t_s: the value of its last row at or before t_s, 0
 * before its first row. *cursor (may be NULL) speeds up calls with increasing t_s; start
 * it at 0. */
double sw_demand_rps_at(const struct sw_demand *d, size_t r, double t_s, size_t *cursor);

/* ---- round-trip times between regions ------------------------------------------------ */

struct sw_rtt {
    char *path;
    char **regions; /* every region named in either column, sorted */
    size_t region_count;
    double *ms; /* region_count², row = from, column = to; NaN when absent */
};

/* Load and validate (rtt_ms >= 0, no duplicate pair). Owned; sw_rtt_free. NULL with err. */
struct sw_rtt *sw_rtt_load(const char *path, struct sw_error *err);
void sw_rtt_free(struct sw_rtt *rtt);
int sw_rtt_region(const struct sw_rtt *rtt, const char *region); /* -1 if unknown */
/* NaN when the pair is missing or an index is negative. */
double sw_rtt_ms(const struct sw_rtt *rtt, int from, int to);

/* Every demand region must be in the RTT table and have a round-trip time to every
 * serving region (where capacity may run). Errors point at the demand row where the user
 * region first appears: "demand.csv:3:5: unknown region 'mars' (not in rtt.csv)" or
 * "demand.csv:3:5: no round-trip time from 'eu-west' to 'oc-aus' in rtt.csv". A serving
 * region missing from the table is an error naming the RTT file and both regions. */
int sw_trace_check_regions(const struct sw_demand *d, const struct sw_rtt *rtt,
                           const char *const *serving, size_t serving_count, struct sw_error *err);

/* ---- batch / ML jobs ------------------------------------------------------------------ */

struct sw_job {
    double submit_s;
    double duration_s; /* run time once all workers are ready */
    int workers;
    int gpus_per_worker;
    int line;
};

struct sw_jobs {
    char *path;
    struct sw_job *items; /* sorted by submit_s (required of the file) */
    size_t count;
};

/* Load and validate (sorted submit_s, duration_s >= 0, workers >= 1, gpus_per_worker >=
 * 0, integers where integers are due). Owned; sw_jobs_free. NULL with err. */
struct sw_jobs *sw_jobs_load(const char *path, struct sw_error *err);
void sw_jobs_free(struct sw_jobs *jobs);

#endif /* SW_TRACE_H */
