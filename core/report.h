/* report.h — what `steward simulate` writes: report.json (deterministic: the same inputs
 * and seed give the same bytes, so it holds no wall-clock figures), run.json (wall time),
 * report.html (one self-contained page with inline SVG charts) and the side-by-side table
 * on stdout. The first run is the main one; the others are --compare runs.
 * Context: any thread; runs are borrowed.
 */
#ifndef SW_REPORT_H
#define SW_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"
#include "sim.h"

/* report.json as text (owned, free()): {"format", "config", "policies", "seed", "window",
 * "model", "summary", "regions", "groups"} of runs[0], plus "compare": [ the same for
 * each further run ] when count > 1. Numbers are rounded (USD and hours to 6 decimals,
 * milliseconds and requests to 3); a figure that does not exist (no traffic) is null. */
char *sw_report_json(const struct sw_sim_result *const *runs, size_t count);

/* run.json: {"runs": [{"config", "wall_s", "evaluations_per_s", "sim_days_per_wall_s"}]}.
 * Owned text. */
char *sw_report_run_json(const struct sw_sim_result *const *runs, size_t count);

/* report.html: summary table, then per region capacity (ready web units × rps_per_unit)
 * against demand, latency percentiles per minute with the SLO line, cumulative cost and
 * lease events; one colour per run. Owned text. */
char *sw_report_html(const struct sw_sim_result *const *runs, size_t count);

/* Writes text to path (replacing it). 0 or SW_EIO with err. */
int sw_report_write_file(const char *path, const char *text, struct sw_error *err);

/* The summary as a table, one column per run. */
void sw_report_print_table(FILE *out, const struct sw_sim_result *const *runs, size_t count);

#endif /* SW_REPORT_H */
