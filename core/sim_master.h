/* sim_master — the ML training master of `steward simulate`: the job model's jobs
 * (sw_jobsim in sim.c) published as the JSON reply a master's status endpoint gives, in
 * jobs_http's key-value space. jobs_http reads that key instead of polling HTTP, so a
 * policy gets simulated jobs through the same plugin, job_* events and ctx.metrics rows
 * as live ones (docs/simulation.md#ml-batch-jobs). */
#ifndef SW_SIM_MASTER_H
#define SW_SIM_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sw_config;
struct sw_job;
struct sw_jobsim;
struct sw_journal;

/* The plugin that reads the master, and the key it reads. */
#define SW_SIM_MASTER_PLUGIN "jobs_http"
#define SW_SIM_MASTER_KEY "sim_master_reply"

struct sw_sim_master;

/* Points the configuration's jobs_http at the simulated master: drops url, sets reply_kv.
 * Returns true when a jobs_http plugin is configured (and so reads the master). */
bool sw_sim_master_configure(struct sw_config *config);

/* jobs borrowed (the job model's array) for the master's lifetime. Owned;
 * sw_sim_master_free (NULL-safe). */
struct sw_sim_master *sw_sim_master_new(const struct sw_job *jobs, size_t count);
void sw_sim_master_free(struct sw_sim_master *m);

/* Lists the jobs as of now_ms: every submitted job not completed is "running" (the master
 * starts a job at once and it trains as soon as its workers are there), a completed one
 * "done" for an hour after. Writes the reply only when it changed. 0, or SW_ESTORE. Loop
 * thread only. */
int sw_sim_master_publish(struct sw_sim_master *m, const struct sw_jobsim *js, int64_t now_ms,
                          struct sw_journal *journal);

#endif
