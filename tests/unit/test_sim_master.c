/* sim_master: the simulated training master's reply follows the job model, in the shape
 * jobs_http reads by default, written to jobs_http's key-value space only on a change. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "journal.h"
#include "mem.h"
#include "sim.h"
#include "sim_master.h"
#include "sw_test.h"
#include "trace.h"

static char *published(struct sw_journal *j)
{
    char *value = NULL;
    if (sw_journal_kv_get(j, SW_SIM_MASTER_PLUGIN, SW_SIM_MASTER_KEY, &value) < 0)
        return NULL;
    return value;
}

SW_TEST(reply_follows_the_job_model)
{
    struct sw_error err = {0};
    struct sw_journal *j = sw_journal_open(":memory:", &err);
    SW_ASSERT(j != NULL);
    const struct sw_job jobs[] = {
        {.submit_s = 5, .duration_s = 1, .workers = 1, .gpus_per_worker = 1}, /* before */
        {.submit_s = 10, .duration_s = 100, .workers = 2, .gpus_per_worker = 8},
        {.submit_s = 20, .duration_s = 50, .workers = 1, .gpus_per_worker = 1},
    };
    struct sw_jobsim *js = sw_jobsim_new(jobs, 3, 0, 8000);
    struct sw_sim_master *m = sw_sim_master_new(jobs, 3);
    SW_ASSERT_EQ(sw_sim_master_publish(m, js, 8000, j), 0);
    char *v = published(j);
    SW_ASSERT_STREQ(v, "{\"jobs\":[]}");
    free(v);
    /* Submitted, no workers yet: the master has started it (its workers are to come). */
    sw_jobsim_advance(js, 10000);
    SW_ASSERT_EQ(sw_sim_master_publish(m, js, 10000, j), 0);
    v = published(j);
    SW_ASSERT_STREQ(v, "{\"jobs\":[{\"id\":\"job-2\",\"state\":\"running\",\"workers\":2,"
                       "\"gpus_per_worker\":8}]}");
    free(v);
    sw_jobsim_set_workers(js, 12000, 2); /* job-2 trains 12..112 s */
    sw_jobsim_advance(js, 20000);
    SW_ASSERT_EQ(sw_sim_master_publish(m, js, 20000, j), 0);
    v = published(j);
    SW_ASSERT_CONTAINS(v, "{\"id\":\"job-3\",\"state\":\"running\"");
    free(v);
    sw_jobsim_advance(js, 112000);
    SW_ASSERT_EQ(sw_sim_master_publish(m, js, 112000, j), 0);
    v = published(j);
    SW_ASSERT_STREQ(v, "{\"jobs\":[{\"id\":\"job-2\",\"state\":\"done\",\"workers\":2,"
                       "\"gpus_per_worker\":8},{\"id\":\"job-3\",\"state\":\"running\","
                       "\"workers\":1,\"gpus_per_worker\":1}]}");
    free(v);
    /* job-3 starts at 112 s on the freed workers and ends at 162 s: done, then forgotten
     * an hour later. */
    sw_jobsim_advance(js, 170000);
    SW_ASSERT_EQ(sw_sim_master_publish(m, js, 170000, j), 0);
    v = published(j);
    SW_ASSERT_CONTAINS(v, "{\"id\":\"job-3\",\"state\":\"done\"");
    free(v);
    sw_jobsim_advance(js, 170000 + 3600 * 1000);
    SW_ASSERT_EQ(sw_sim_master_publish(m, js, 170000 + 3600 * 1000, j), 0);
    v = published(j);
    SW_ASSERT_STREQ(v, "{\"jobs\":[]}");
    free(v);
    sw_sim_master_free(m);
    sw_jobsim_free(js);
    sw_journal_close(j);
}

SW_TEST(configure_points_jobs_http_at_the_master)
{
    struct sw_config c;
    memset(&c, 0, sizeof(c));
    struct sw_plugin_config plugins[2] = {
        {.name = sw_xstrdup("market_sim"), .config_json = sw_xstrdup("{}")},
        {.name = sw_xstrdup("jobs_http"),
         .config_json = sw_xstrdup("{\"url\":\"http://m/jobs\",\"poll_interval\":\"10s\"}")},
    };
    c.plugins = plugins;
    c.plugin_count = 1;
    SW_ASSERT(!sw_sim_master_configure(&c)); /* no jobs_http: nothing to feed */
    c.plugin_count = 2;
    SW_ASSERT(sw_sim_master_configure(&c));
    SW_ASSERT_STREQ(plugins[1].config_json,
                    "{\"poll_interval\":\"10s\",\"reply_kv\":\"sim_master_reply\"}");
    for (int i = 0; i < 2; i++) {
        free(plugins[i].name);
        free(plugins[i].config_json);
    }
}

SW_TEST_MAIN()
