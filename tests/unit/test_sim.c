/* test_sim.c — the simulator: its models' arithmetic by hand (percentiles, the web
 * assignment, the job queue), a whole run of the real runtime on a hand-computable
 * scenario (2 leases × ~3 h × 0.6 USD/h; known RTTs give known percentiles), determinism
 * (same inputs and seed → the same report.json bytes) and the HTML report's shape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "report.h"
#include "sim.h"
#include "sw_test.h"

/* ---- models -------------------------------------------------------------------------- */

SW_TEST(weighted_percentiles_nearest_rank)
{
    struct sw_weighted items[] = {{55, 50}, {15, 50}};
    SW_ASSERT_NEAR(sw_weighted_percentile(items, 2, 50), 15, 0);
    SW_ASSERT_NEAR(sw_weighted_percentile(items, 2, 50.1), 55, 0);
    SW_ASSERT_NEAR(sw_weighted_percentile(items, 2, 95), 55, 0);
    struct sw_weighted skew[] = {{10, 96}, {200, 4}};
    SW_ASSERT_NEAR(sw_weighted_percentile(skew, 2, 95), 10, 0);
    SW_ASSERT_NEAR(sw_weighted_percentile(skew, 2, 99), 200, 0);
    struct sw_weighted dropped[] = {{10, 90}, {INFINITY, 10}};
    SW_ASSERT(isinf(sw_weighted_percentile(dropped, 2, 95)));
    struct sw_weighted none[] = {{10, 0}};
    SW_ASSERT(isnan(sw_weighted_percentile(none, 1, 50)));
}

SW_TEST(histogram_resolution_and_percentiles)
{
    struct sw_hist h;
    sw_hist_init(&h);
    SW_ASSERT(isnan(sw_hist_percentile(&h, 50)));
    sw_hist_add(&h, 15, 50);
    sw_hist_add(&h, 55, 50);
    SW_ASSERT_NEAR(sw_hist_percentile(&h, 50), 15, 1e-9);
    SW_ASSERT_NEAR(sw_hist_percentile(&h, 95), 55, 1e-9);
    sw_hist_add(&h, 12.345, 900); /* 0.01 ms resolution below 100 ms */
    SW_ASSERT_NEAR(sw_hist_percentile(&h, 50), 12.35, 1e-9);
    struct sw_hist big;
    sw_hist_init(&big);
    sw_hist_add(&big, 250.04, 1); /* 0.1 ms below 1 s */
    SW_ASSERT_NEAR(sw_hist_percentile(&big, 99), 250.0, 1e-9);
    sw_hist_add(&big, 1e9, 1); /* past the range: the last bin */
    SW_ASSERT_NEAR(sw_hist_percentile(&big, 100), 59999, 1e-9);
    sw_hist_merge(&h, &big);
    SW_ASSERT_NEAR(h.total, 1002, 1e-9);
    sw_hist_clear(&h);
    sw_hist_clear(&big);
}

SW_TEST(web_model_nearest_first_then_spill_then_drop)
{
    /* users a, b; servers x, y. RTT a→x 10, a→y 40, b→x 30, b→y 5. */
    const double rtt[] = {10, 40, 30, 5};
    size_t order[4];
    struct sw_web_model m;
    sw_web_model_init(&m, 2, 2, rtt, order, 5);
    SW_ASSERT_EQ(order[0], 3); /* b→y 5 */
    SW_ASSERT_EQ(order[1], 0); /* a→x 10 */
    double served[4], dropped[2], latency[4], load[2];
    /* a sends 150, b 100; x holds 100, y 120: a fills x, spills 20 to y (b took 100
     * first), 30 dropped. */
    const double demand[] = {150, 100};
    const double capacity[] = {100, 120};
    sw_web_model_assign(&m, demand, capacity, served, dropped, latency, load, NULL);
    SW_ASSERT_NEAR(served[0], 100, 1e-12);
    SW_ASSERT_NEAR(served[1], 20, 1e-12);
    SW_ASSERT_NEAR(served[2], 0, 1e-12);
    SW_ASSERT_NEAR(served[3], 100, 1e-12);
    SW_ASSERT_NEAR(dropped[0], 30, 1e-12);
    SW_ASSERT_NEAR(dropped[1], 0, 1e-12);
    /* x is full: ρ capped at 0.95 → 5 × 19 = 95 ms of queueing; y is at 1: capped too. */
    SW_ASSERT_NEAR(latency[0], 10 + 95, 1e-9);
    SW_ASSERT_NEAR(latency[1], 40 + 95, 1e-9);
    SW_ASSERT(isnan(latency[2]));
    /* Half-loaded: ρ = 0.5 → 5 ms. */
    const double light[] = {50, 60};
    sw_web_model_assign(&m, light, capacity, served, dropped, latency, load, NULL);
    SW_ASSERT_NEAR(latency[0], 10 + 5, 1e-9);
    SW_ASSERT_NEAR(latency[3], 5 + 5 * 0.5 / 0.5, 1e-9);
    SW_ASSERT_NEAR(dropped[0] + dropped[1], 0, 0);
}

/* The walk stops once no demand or no room is left; the pairs it no longer visits must
 * read exactly as if it had (0 served, NaN latency), with the index arrays the simulator
 * adds or without them, and a second assignment must not see the first one's values. */
SW_TEST(web_model_early_stop_matches_a_full_walk)
{
    /* 3 users × 3 servers, RTT rising along the row-major pair index. */
    double rtt[9];
    for (size_t i = 0; i < 9; i++)
        rtt[i] = 10 + (double)i;
    size_t order[9];
    uint32_t order_user[9], order_server[9];
    struct sw_web_model m, indexed;
    sw_web_model_init(&m, 3, 3, rtt, order, 5);
    sw_web_model_init(&indexed, 3, 3, rtt, order, 5);
    for (size_t k = 0; k < 9; k++) {
        order_user[k] = (uint32_t)(order[k] / 3);
        order_server[k] = (uint32_t)(order[k] % 3);
    }
    indexed.order_user = order_user;
    indexed.order_server = order_server;
    const struct sw_web_model *models[] = {&m, &indexed};
    for (size_t v = 0; v < 2; v++) {
        double served[9], dropped[3], latency[9], load[3];
        /* Room runs out first: 25 rps of room for 300 of demand. */
        const double heavy[] = {100, 100, 100}, small[] = {10, 10, 5};
        sw_web_model_assign(models[v], heavy, small, served, dropped, latency, load, NULL);
        SW_ASSERT_NEAR(served[0], 10, 0);
        SW_ASSERT_NEAR(served[1], 10, 0);
        SW_ASSERT_NEAR(served[2], 5, 0);
        for (size_t pair = 3; pair < 9; pair++) {
            SW_ASSERT_EQ(served[pair], 0);
            SW_ASSERT(isnan(latency[pair]));
        }
        SW_ASSERT_NEAR(dropped[0], 75, 0);
        SW_ASSERT_NEAR(dropped[1] + dropped[2], 200, 0);
        /* Demand runs out first: user 0 alone, served by the nearest server. */
        const double one[] = {30, 0, 0}, plenty[] = {100, 100, 100};
        sw_web_model_assign(models[v], one, plenty, served, dropped, latency, load, NULL);
        SW_ASSERT_NEAR(served[0], 30, 0);
        for (size_t pair = 1; pair < 9; pair++)
            SW_ASSERT_EQ(served[pair], 0);
        SW_ASSERT_NEAR(load[0], 30, 0);
        SW_ASSERT_NEAR(load[1] + load[2], 0, 0);
        SW_ASSERT_NEAR(dropped[0] + dropped[1] + dropped[2], 0, 0);
    }
}

/* The served-pair list: the same outputs to the bit as without it, every pair that took a
 * share listed once in ascending order, every unlisted pair 0 with NaN latency. Demands
 * and capacities in odd fractions, some zero, over many rounds; small models and one of
 * 65 × 65 pairs. */
static void check_served_pairs(size_t users, size_t servers, int rounds)
{
    size_t n = users * servers;
    double *rtt = sw_xcalloc(n, sizeof(double));
    size_t *order = sw_xcalloc(n, sizeof(size_t)), *pairs = sw_xcalloc(n, sizeof(size_t));
    double *served_a = sw_xcalloc(n, sizeof(double)), *served_b = sw_xcalloc(n, sizeof(double));
    double *latency_a = sw_xcalloc(n, sizeof(double)), *latency_b = sw_xcalloc(n, sizeof(double));
    double *demand = sw_xcalloc(users, sizeof(double)),
           *capacity = sw_xcalloc(servers, sizeof(double));
    double *dropped_a = sw_xcalloc(users, sizeof(double)),
           *dropped_b = sw_xcalloc(users, sizeof(double));
    double *load_a = sw_xcalloc(servers, sizeof(double)),
           *load_b = sw_xcalloc(servers, sizeof(double));
    for (size_t i = 0; i < n; i++)
        rtt[i] = 3 + (double)((i * 7) % 11); /* ties included */
    struct sw_web_model m;
    sw_web_model_init(&m, users, servers, rtt, order, 4);
    unsigned seed = 12345;
    for (int round = 0; round < rounds; round++) {
        for (size_t u = 0; u < users; u++) {
            seed = seed * 1103515245u + 12345u;
            demand[u] = (seed >> 16) % 5 == 0 ? 0 : (double)((seed >> 8) % 1000) / 7.0;
        }
        for (size_t j = 0; j < servers; j++) {
            seed = seed * 1103515245u + 12345u;
            capacity[j] = (seed >> 16) % 4 == 0 ? 0 : (double)((seed >> 8) % 700) / 3.0;
        }
        size_t taken_a =
            sw_web_model_assign(&m, demand, capacity, served_a, dropped_a, latency_a, load_a, NULL);
        size_t taken_b = sw_web_model_assign(&m, demand, capacity, served_b, dropped_b, latency_b,
                                             load_b, pairs);
        SW_ASSERT_EQ(taken_a, taken_b);
        SW_ASSERT(memcmp(served_a, served_b, n * sizeof(double)) == 0);
        SW_ASSERT(memcmp(dropped_a, dropped_b, users * sizeof(double)) == 0);
        SW_ASSERT(memcmp(load_a, load_b, servers * sizeof(double)) == 0);
        size_t next = 0;
        for (size_t pair = 0; pair < n; pair++) {
            SW_ASSERT(isnan(latency_a[pair]) == isnan(latency_b[pair]));
            if (!isnan(latency_a[pair]))
                SW_ASSERT(memcmp(&latency_a[pair], &latency_b[pair], sizeof(double)) == 0);
            if (next < taken_b && pairs[next] == pair) {
                SW_ASSERT(served_b[pair] > 0);
                next++;
                continue;
            }
            SW_ASSERT_EQ(served_b[pair], 0);
            SW_ASSERT(isnan(latency_b[pair]));
        }
        SW_ASSERT_EQ(next, taken_b); /* ascending, each once */
    }
    void *all[] = {rtt,    order,    pairs,     served_a,  served_b, latency_a, latency_b,
                   demand, capacity, dropped_a, dropped_b, load_a,   load_b};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        free(all[i]);
}

SW_TEST(web_model_served_pairs_match_the_full_scan)
{
    check_served_pairs(5, 4, 500);
    check_served_pairs(12, 12, 200);
    check_served_pairs(65, 65, 20);
}

SW_TEST(job_model_fifo_waits_and_idle_time)
{
    /* Times in ms from origin 0. */
    const struct sw_job jobs[] = {
        {.submit_s = 10, .duration_s = 100, .workers = 2, .gpus_per_worker = 1},
        {.submit_s = 20, .duration_s = 50, .workers = 1, .gpus_per_worker = 2},
        {.submit_s = 30, .duration_s = 10, .workers = 3, .gpus_per_worker = 0},
    };
    struct sw_jobsim *js = sw_jobsim_new(jobs, 3, 0, 0);
    SW_ASSERT_EQ(sw_jobsim_next_ms(js), 10000);
    sw_jobsim_set_workers(js, 0, 2);            /* 2 workers from t=0 */
    sw_jobsim_advance(js, 20000);               /* job 0 runs 10..110 s; job 1 waits */
    sw_jobsim_set_workers(js, 40000, 3);        /* a third worker: job 1 starts at 40 s */
    SW_ASSERT_EQ(sw_jobsim_next_ms(js), 90000); /* job 1 ends 40 + 50 */
    struct sw_jobsim_stats st;
    sw_jobsim_finish(js, 200000, &st);
    /* Job 2 (3 workers) starts at 110 s when job 0 ends (job 1 ended at 90), runs 10 s. */
    SW_ASSERT_EQ(st.submitted, 3);
    SW_ASSERT_EQ(st.completed, 3);
    SW_ASSERT_EQ(st.waiting, 0);
    /* waits: 0, 20, 80 s → p50 = 20, p95 = 80 */
    SW_ASSERT_NEAR(st.wait_p50_s, 20, 1e-9);
    SW_ASSERT_NEAR(st.wait_p95_s, 80, 1e-9);
    /* workers: 2 × 40 s + 3 × 160 s = 560 worker-seconds; busy: 2×100 + 1×50 + 3×10 = 280 */
    SW_ASSERT_NEAR(st.worker_hours, 560.0 / 3600, 1e-12);
    SW_ASSERT_NEAR(st.idle_worker_hours, 280.0 / 3600, 1e-12);
    SW_ASSERT_NEAR(st.gpu_hours, (2 * 100 + 2 * 50) / 3600.0, 1e-12);
    sw_jobsim_free(js);
}

SW_TEST(job_model_lost_worker_restarts_the_last_started_job)
{
    const struct sw_job jobs[] = {
        {.submit_s = 0, .duration_s = 100, .workers = 1},
        {.submit_s = 0, .duration_s = 100, .workers = 1},
    };
    struct sw_jobsim *js = sw_jobsim_new(jobs, 2, 0, 0);
    sw_jobsim_set_workers(js, 0, 2);
    sw_jobsim_set_workers(js, 50000, 1); /* job 1 interrupted, back to the queue */
    struct sw_jobsim_stats st;
    sw_jobsim_finish(js, 1000000, &st);
    SW_ASSERT_EQ(st.restarted, 1);
    SW_ASSERT_EQ(st.completed, 2);       /* job 1 reruns 100..200 s */
    SW_ASSERT_NEAR(st.wait_p95_s, 0, 0); /* its wait counts its first start */
    sw_jobsim_free(js);
}

/* ---- whole runs ---------------------------------------------------------------------- */

static char dir[64];

static char *path_in(const char *name)
{
    return sw_xasprintf("%s/%s", dir, name);
}

static void put_file(const char *name, const char *text)
{
    char *p = path_in(name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    free(p);
}

static void cleanup(void)
{
    static const char *const names[] = {"sim.jsonc",  "hold.lua", "providers.json", "rtt.csv",
                                        "demand.csv", "jobs.csv", "flaky.json"};
    for (size_t i = 0; i < SW_ARRAY_LEN(names); i++) {
        char *p = path_in(names[i]);
        unlink(p);
        free(p);
    }
    rmdir(dir);
}

static void scenario(void)
{
    if (dir[0] != '\0')
        return;
    snprintf(dir, sizeof(dir), "/tmp/sw_test_sim_XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    atexit(cleanup);
    sw_log_configure(stderr, SW_LOG_FORMAT_TEXT, SW_LOG_ERROR);
    /* 1000 uact/block = 0.6 USD/h; lease 1.2 s after the order (0.2 s create + 1 s bid). */
    put_file("providers.json",
             "{\"providers\": ["
             "{\"owner\": \"akash1west\", \"region\": \"eu-west\", \"price_uact_per_block\": 1000,"
             " \"bid_delay\": \"1s\", \"ready_delay\": \"10s\", \"capacity\": 10},"
             "{\"owner\": \"akash1central\", \"region\": \"eu-central\","
             " \"price_uact_per_block\": 500, \"bid_delay\": \"1s\", \"ready_delay\": \"10s\"}]}");
    put_file("flaky.json",
             "{\"providers\": ["
             "{\"owner\": \"akash1west\", \"region\": \"eu-west\", \"price_uact_per_block\": 1000,"
             " \"bid_delay\": \"1s\", \"ready_delay\": \"10s\", \"capacity\": 10,"
             " \"closures_per_hour\": 3},"
             "{\"owner\": \"akash1central\", \"region\": \"eu-central\","
             " \"price_uact_per_block\": 500, \"bid_delay\": \"1s\", \"ready_delay\": \"10s\","
             " \"closures_per_hour\": 2}]}");
    put_file("rtt.csv", "from,to,rtt_ms\n"
                        "eu-west,eu-west,10\neu-west,eu-central,50\n"
                        "eu-central,eu-central,10\neu-central,eu-west,50\n");
    put_file("demand.csv", "time_s,region,rps\n0,eu-west,50\n0,eu-central,50\n"
                           "10800,eu-west,50\n10800,eu-central,50\n");
    put_file("jobs.csv", "submit_s,duration_s,workers,gpus_per_worker\n"
                         "600,1800,2,1\n700,600,1,0\n");
    put_file("hold.lua", "return {name = 'hold', evaluate = function(ctx)\n"
                         "  local n = ctx.params.units\n"
                         "  if ctx.params.wobble and math.random() < 0.3 then n = n + 1 end\n"
                         "  return {web = {['eu-west'] = n}}\n"
                         "end}\n");
    put_file("sim.jsonc",
             "{\"id\": \"t\", \"seed\": 3, \"market\": \"market_sim\",\n"
             " \"plugins\": {\"market_sim\": {\"providers_file\": \"providers.json\","
             " \"bid_window\": \"5s\"}},\n"
             " \"metrics\": {\"rps\": {\"plugin\": \"metrics_trace\", \"query\": \"rps\"}},\n"
             " \"groups\": {\"web\": {\"min\": 2, \"max\": 4,"
             " \"regions\": [\"eu-west\", \"eu-central\"]}},\n"
             " \"policies\": [{\"name\": \"hold\", \"file\": \"hold.lua\", \"interval\": \"10s\","
             " \"params\": {\"units\": 2}}],\n"
             " \"simulation\": {\"rps_per_unit\": 100, \"slo_p95_ms\": 80, \"service_ms\": 5,"
             " \"rtt\": \"rtt.csv\", \"job_group\": \"web\"}}\n");
}

static int run(const char *providers, bool jobs, bool wobble, uint64_t seed,
               struct sw_sim_result **out, struct sw_error *err)
{
    scenario();
    char *config = path_in("sim.jsonc");
    char *demand = path_in("demand.csv");
    char *jobs_path = path_in("jobs.csv");
    char *providers_path = providers != NULL ? path_in(providers) : NULL;
    const char *traces[] = {demand, jobs_path};
    const char *env = getenv("SW_PLUGIN_DIR");
    const char *dirs[] = {env != NULL && env[0] ? env : SW_BUILD_PLUGIN_DIR};
    char *variant = NULL;
    if (wobble) {
        /* Same scenario, a policy that draws from math.random. */
        FILE *f = fopen(config, "r");
        char text[4096];
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        char *at = strstr(text, "{\"units\": 2}");
        variant = sw_xasprintf("%.*s{\"units\": 2, \"wobble\": true}%s", (int)(at - text), text,
                               at + strlen("{\"units\": 2}"));
        free(config);
        config = path_in("wobble.jsonc");
        FILE *w = fopen(config, "w");
        fputs(variant, w);
        fclose(w);
    }
    struct sw_sim_opts opts = {
        .config_path = config,
        .traces = traces,
        .trace_count = jobs ? 2 : 1,
        .providers_path = providers_path,
        .has_seed = seed != 0,
        .seed = seed,
        .plugin_dirs = dirs,
        .plugin_dir_count = 1,
        .lua_path = SW_SOURCE_DIR "/lua",
    };
    int rc = sw_sim_run(&opts, out, err);
    if (wobble)
        unlink(config);
    free(variant);
    free(config);
    free(demand);
    free(jobs_path);
    free(providers_path);
    return rc;
}

SW_TEST(hand_computable_scenario)
{
    struct sw_sim_result *r = NULL;
    struct sw_error err = {0};
    int rc = run(NULL, true, false, 0, &r, &err);
    if (rc < 0)
        fprintf(stderr, "    %s\n", err.msg);
    SW_ASSERT_EQ(rc, 0);
    /* Two units ordered at t=0, leased at 1.2 s, never released: 2 × 0.6 USD/h. */
    SW_ASSERT_EQ(r->leases_acquired, 2);
    SW_ASSERT_EQ(r->leases_released, 0);
    SW_ASSERT_EQ(r->provider_closures, 0);
    SW_ASSERT_EQ(r->actions, 2);
    SW_ASSERT_NEAR(r->sim_s, 10800, 0);
    SW_ASSERT_NEAR(r->lease_hours, 2 * (10800 - 1.2) / 3600, 1e-9);
    SW_ASSERT_NEAR(r->cost_usd, 2 * 0.6 * (10800 - 1.2) / 3600, 1e-9);
    /* Ticks every 10 s from 0 through 10800 inclusive. */
    SW_ASSERT_EQ(r->evaluations, 1081);
    /* 100 rps for 3 h; the first minute (no ready unit yet) is dropped. */
    SW_ASSERT_NEAR(r->demand_requests, 100.0 * 10800, 1e-6);
    SW_ASSERT_NEAR(r->dropped_requests, 100.0 * 60, 1e-6);
    SW_ASSERT_NEAR(r->served_requests, 100.0 * (10800 - 60), 1e-6);
    /* 200 rps of capacity in eu-west at ρ = 0.5: eu-west users 10 + 5 ms, eu-central
     * users 50 + 5 ms, half the requests each. */
    SW_ASSERT_NEAR(r->latency_p50, 15, 1e-9);
    SW_ASSERT_NEAR(r->latency_p95, 55, 1e-9);
    SW_ASSERT_NEAR(r->latency_p99, 55, 1e-9);
    SW_ASSERT_NEAR(r->slo_violation_minutes, 1, 1e-12); /* the minute that dropped all */
    SW_ASSERT_EQ(r->region_count, 2);
    SW_ASSERT_STREQ(r->regions[0].name, "eu-central");
    SW_ASSERT_NEAR(r->regions[0].latency_p50, 55, 1e-9);
    SW_ASSERT_NEAR(r->regions[1].served_here_requests, 100.0 * (10800 - 60), 1e-6);
    SW_ASSERT_NEAR(r->regions[1].cost_usd, r->cost_usd, 1e-12);
    SW_ASSERT_EQ(r->regions[1].peak_ready, 2);
    SW_ASSERT_EQ(r->groups[0].leases_acquired, 2);
    /* Availability (min 2): 180 one-minute samples at 0, 60, ..., 10740 s; only the one at
     * 0 s precedes the units' readiness (11.2 s). */
    SW_ASSERT_EQ(r->groups[0].min, 2);
    SW_ASSERT_NEAR(r->groups[0].sampled_s, 10800, 1e-9);
    SW_ASSERT_NEAR(r->groups[0].available_s, 10800 - 60, 1e-9);
    SW_ASSERT_NEAR(r->groups[0].availability, 179.0 / 180.0, 1e-12);
    SW_ASSERT_NEAR(r->availability, 179.0 / 180.0, 1e-12);
    /* Jobs: ready workers from 11.2 s; job 0 (2 workers) runs 600..2400 s, job 1 waits for
     * a free worker until 2400 s and runs 600 s. */
    SW_ASSERT_EQ(r->jobs.completed, 2);
    SW_ASSERT_NEAR(r->jobs.wait_p50_s, 0, 1e-9);
    SW_ASSERT_NEAR(r->jobs.wait_p95_s, 1700, 1e-9);
    SW_ASSERT_NEAR(r->jobs.worker_hours, 2 * (10800 - 11.2) / 3600, 1e-9);
    SW_ASSERT_NEAR(r->jobs.idle_worker_hours, 2 * (10800 - 11.2) / 3600 - 4200.0 / 3600, 1e-9);

    char *json = sw_report_json((const struct sw_sim_result *const *)&r, 1);
    SW_ASSERT_CONTAINS(json, "\"cost_usd\":\t3.5996");
    SW_ASSERT_CONTAINS(json, "\"availability\":\t0.994444,"); /* summary and group */
    SW_ASSERT_CONTAINS(json, "\"min\":\t2,\n\t\t\t\"availability\":\t0.994444\n");
    SW_ASSERT_CONTAINS(json, "\"latency_ms\":\t{\n\t\t\t\"p50\":\t15,");
    SW_ASSERT(strstr(json, "wall_s") == NULL); /* not deterministic: run.json only */
    free(json);
    sw_sim_result_free(r);
}

SW_TEST(same_inputs_same_report_bytes)
{
    struct sw_sim_result *a = NULL, *b = NULL, *c = NULL;
    struct sw_error err = {0};
    SW_ASSERT_EQ(run("flaky.json", false, true, 11, &a, &err), 0);
    SW_ASSERT_EQ(run("flaky.json", false, true, 11, &b, &err), 0);
    SW_ASSERT_EQ(run("flaky.json", false, true, 12, &c, &err), 0);
    SW_ASSERT(a->provider_closures > 0); /* randomness is really in play */
    char *ja = sw_report_json((const struct sw_sim_result *const *)&a, 1);
    char *jb = sw_report_json((const struct sw_sim_result *const *)&b, 1);
    char *jc = sw_report_json((const struct sw_sim_result *const *)&c, 1);
    SW_ASSERT_STREQ(ja, jb);
    SW_ASSERT(strcmp(ja, jc) != 0); /* another seed, another run */
    free(ja);
    free(jb);
    free(jc);
    sw_sim_result_free(a);
    sw_sim_result_free(b);
    sw_sim_result_free(c);
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

SW_TEST(html_has_one_series_per_region_and_run)
{
    struct sw_sim_result *runs[2] = {NULL, NULL};
    struct sw_error err = {0};
    SW_ASSERT_EQ(run(NULL, false, false, 0, &runs[0], &err), 0);
    SW_ASSERT_EQ(run("flaky.json", false, false, 0, &runs[1], &err), 0);
    char *html = sw_report_html((const struct sw_sim_result *const *)runs, 2);
    SW_ASSERT(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    SW_ASSERT_CONTAINS(html, "</html>");
    SW_ASSERT_EQ(count_of(html, "data-region=\""), 2);
    SW_ASSERT_EQ(count_of(html, "<svg"), count_of(html, "</svg>"));
    SW_ASSERT(count_of(html, "<svg") >= 5); /* 2 regions, latency, cost, events */
    SW_ASSERT_CONTAINS(html, "data-region=\"eu-west\"");
    SW_ASSERT_CONTAINS(html, "class=\"slo\"");
    SW_ASSERT(count_of(html, "data-run=\"2\"") >= 4);
    SW_ASSERT(strstr(html, "http://") == NULL ||
              count_of(html, "http://") == count_of(html, "http://www.w3.org/2000/svg"));
    SW_ASSERT(strstr(html, "<script") == NULL);
    char *json = sw_report_json((const struct sw_sim_result *const *)runs, 2);
    SW_ASSERT_CONTAINS(json, "\"compare\":");
    free(json);
    free(html);
    sw_sim_result_free(runs[0]);
    sw_sim_result_free(runs[1]);
}

SW_TEST(configuration_errors)
{
    struct sw_sim_result *r = NULL;
    struct sw_error err = {0};
    scenario();
    char *config = path_in("sim.jsonc");
    char *rtt = path_in("rtt.csv");
    const char *traces[] = {rtt};
    struct sw_sim_opts opts = {.config_path = config, .traces = traces, .trace_count = 1};
    SW_ASSERT_EQ(sw_sim_run(&opts, &r, &err), SW_EINVAL);
    SW_ASSERT_CONTAINS(err.msg, "round-trip-time table: pass it with --rtt");
    SW_ASSERT(r == NULL);
    free(rtt);
    free(config);
}

SW_TEST_MAIN()
