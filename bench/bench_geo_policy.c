/* bench_geo_policy.c — cost of one evaluate of policies/geo_latency.lua with 48 regions.
 * Target: <= 200 us per call (ctx construction, validation and explanations included).
 *
 *   bench_geo_policy [calls] [regions]   regions: 1..48 (default 48)
 *   GEO_BENCH_STEADY=1                   demand held at its first value: every tick after
 *                                        the first is an "unchanged" one (the common tick
 *                                        of a simulation), instead of moving every tick
 *   GEO_BENCH_ROWS=N                     demand moves every N calls only (30: 5-minute rows
 *                                        at 10 s ticks, as bench_sim and `steward simulate`
 *                                        feed it): the smoothed demand then crosses a rounding
 *                                        step on some ticks only, as in a simulation
 *   GEO_BENCH_STRICT=1                   strict mode (an instruction budget, the count hook):
 *                                        counts Lua instructions, at the hook's cost
 *
 * 48 synthetic regions on a globe (latitudes and longitudes spread like cloud regions),
 * RTT = 2 ms + great-circle distance / 100 km per ms (fibre is ~200 km/ms one way, paths
 * are not straight), every pair in params.rtt (2304 rows); demand in every region with a
 * diurnal shape that moves between ticks; two offers per region; 24 ready units. Time
 * advances 10 s per call, so smoothing, hysteresis and scale-down holds all run. The first
 * call (which derives its tables from params) is reported on its own. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "mem.h"
#include "policy.h"

#define REGIONS 48
#define BENCH_PI 3.14159265358979323846

static int region_count = REGIONS;

struct place {
    char name[24];
    double lat, lon;
};

static struct place places[REGIONS];

static void make_places(void)
{
    static const char *const continents[] = {"na", "sa", "eu", "af", "as", "oc"};
    static const double centre[][2] = {{40, -95}, {-15, -55}, {50, 10},
                                       {0, 20},   {30, 105},  {-28, 140}};
    for (int i = 0; i < REGIONS; i++) {
        int c = i % 6, k = i / 6;
        snprintf(places[i].name, sizeof(places[i].name), "%s-r%02d", continents[c], k);
        places[i].lat = centre[c][0] + ((k * 37) % 17 - 8) * 1.3;
        places[i].lon = centre[c][1] + ((k * 53) % 23 - 11) * 2.1;
    }
}

static double rtt_ms(const struct place *a, const struct place *b)
{
    double la1 = a->lat * BENCH_PI / 180, la2 = b->lat * BENCH_PI / 180;
    double dlon = (b->lon - a->lon) * BENCH_PI / 180;
    double cosine = sin(la1) * sin(la2) + cos(la1) * cos(la2) * cos(dlon);
    double km = 6371.0 * acos(cosine > 1 ? 1 : (cosine < -1 ? -1 : cosine));
    return floor(2 + km / 100);
}

static char *params_json(void)
{
    size_t cap = 256 + (size_t)REGIONS * REGIONS * 64;
    char *out = sw_xmalloc(cap);
    size_t len = (size_t)snprintf(out, cap,
                                  "{\"group\": \"web\", \"rps_per_unit\": 100, \"slo_ms\": 60, "
                                  "\"min_regions\": %d, \"max_regions\": %d, \"rtt\": [",
                                  region_count < 2 ? region_count : 2,
                                  region_count < 12 ? region_count : 12);
    for (int i = 0; i < region_count; i++)
        for (int j = 0; j < region_count; j++)
            len += (size_t)snprintf(out + len, cap - len, "%s{\"from\":\"%s\",\"to\":\"%s\","
                                    "\"rtt_ms\":%.0f}", (i || j) ? "," : "", places[i].name,
                                    places[j].name, rtt_ms(&places[i], &places[j]));
    snprintf(out + len, cap - len, "]}");
    return out;
}

/* CPU time of this thread: other processes on a loaded machine do not count. */
static double thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void set_demand(struct sw_metric_set *metrics, int64_t now_ms, long tick)
{
    static const char *names[] = {"region"};
    const char *values[REGIONS];
    struct swp_sample samples[REGIONS];
    for (int i = 0; i < region_count; i++) {
        /* Each region peaks at its own local noon; the day is compressed to 2 h of ticks. */
        double phase = fmod((double)tick / 720.0 + places[i].lon / 360.0, 1.0);
        double shape = (1 + cos(2 * BENCH_PI * (phase - 0.5))) / 2;
        values[i] = places[i].name;
        samples[i] = (struct swp_sample){names, &values[i], 1, 5 + 400 * shape * shape};
    }
    sw_metric_set_put(metrics, "rps", now_ms, samples, (size_t)region_count);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 5000;
    if (argc > 2)
        region_count = atoi(argv[2]);
    if (region_count < 1 || region_count > REGIONS) {
        fprintf(stderr, "bench_geo_policy: regions must be 1..%d\n", REGIONS);
        return 2;
    }
    const char *steady_env = getenv("GEO_BENCH_STEADY");
    bool steady = steady_env != NULL && strcmp(steady_env, "1") == 0;
    const char *rows_env = getenv("GEO_BENCH_ROWS");
    long rows = rows_env != NULL ? atol(rows_env) : 1;
    if (rows < 1)
        rows = 1;
    int unit_count = region_count / 2 > 2 ? region_count / 2 : 2;
    make_places();
    struct sw_units units;
    struct sw_offers offers;
    struct sw_metric_set metrics;
    sw_units_init(&units);
    sw_offers_init(&offers);
    sw_metric_set_init(&metrics);
    char *regions[REGIONS];
    for (int i = 0; i < region_count; i++) {
        regions[i] = places[i].name;
        sw_offers_add(&offers, "provider-a", places[i].name, 0.08 + (i % 7) * 0.02, true);
        sw_offers_add(&offers, "provider-b", places[i].name, 0.09 + (i % 5) * 0.03, false);
    }
    for (int i = 0; i < unit_count; i++) {
        char key[16];
        snprintf(key, sizeof(key), "u%d", i);
        struct sw_unit *u = sw_unit_new(key, "web", places[(i * 7) % region_count].name);
        u->state = SW_UNIT_READY;
        u->market_id = sw_xasprintf("%d", 5000 + i);
        u->provider = sw_xstrdup("provider-a");
        u->price_usd_hour = 0.1;
        u->ordered_ms = 1700000000000 - 600000;
        sw_units_add(&units, u);
    }
    struct sw_group_config groups[] = {
        {.name = "web", .max = 200, .regions = regions, .region_count = (size_t)region_count}};
    struct sw_policy_input in = {
        .now_ms = 1700000000000,
        .units = &units,
        .offers = &offers,
        .metrics = &metrics,
        .groups = groups,
        .group_count = 1,
    };
    char *params = params_json();
    /* GEO_BENCH_POLICY: another policy file on the same input (to compare variants). */
    const char *file = getenv("GEO_BENCH_POLICY");
    struct sw_policy_opts opts = {
        .name = "geo",
        .file = file != NULL ? file : SW_SOURCE_DIR "/policies/geo_latency.lua",
        .lua_path = SW_SOURCE_DIR "/lua",
        .params_json = params,
        /* Generous: under valgrind (callgrind counts instructions, steady on a busy machine)
         * the first call, which builds the tables, runs ~50 times slower. */
        .time_limit_ms = 60000,
        .max_instructions = getenv("GEO_BENCH_STRICT") != NULL ? 1000000000 : 0,
    };
    struct sw_error err = {0};
    struct sw_policy *p = sw_policy_new(&opts, &err);
    if (p == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    int status = 0;

    set_demand(&metrics, in.now_ms, 0);
    uint64_t start = uv_hrtime();
    if (sw_policy_eval(p, &in, &out, &err) != 0) {
        fprintf(stderr, "eval failed: %s\n", err.msg);
        return 1;
    }
    double first_us = (double)(uv_hrtime() - start) / 1e3;

    double total_ns = 0, worst_ns = 0, cpu_ns = 0;
    size_t regions_asked = 0, explanations = 0;
    uint64_t lua_kinstructions = 0;
    for (long n = 1; n <= iterations; n++) {
        in.now_ms += 10000;
        set_demand(&metrics, in.now_ms, steady ? 0 : n - n % rows);
        start = uv_hrtime();
        double cpu_start = thread_cpu_ns();
        int rc = sw_policy_eval(p, &in, &out, &err);
        cpu_ns += thread_cpu_ns() - cpu_start;
        double ns = (double)(uv_hrtime() - start);
        if (rc != 0) {
            fprintf(stderr, "eval failed: %s\n", err.msg);
            status = 1;
            break;
        }
        total_ns += ns;
        worst_ns = ns > worst_ns ? ns : worst_ns;
        regions_asked += out.desired.count;
        explanations += out.explanation_count;
        lua_kinstructions += out.instructions;
    }
    double mean_us = total_ns / (double)iterations / 1e3;
    double cpu_us = cpu_ns / (double)iterations / 1e3;
    /* Counted in strict mode only. */
    char counted[64] = "Lua instructions not measured";
    if (lua_kinstructions > 0)
        snprintf(counted, sizeof(counted), "~%.0f Lua instructions per call",
                 1000.0 * (double)lua_kinstructions / (double)iterations);
    printf("bench_geo_policy: %d regions, %d RTT rows, %s demand: first call %.0f us (builds "
           "tables), then %.1f us/eval CPU (%.1f us wall, %.0f us worst) over %ld calls; %.1f "
           "regions asked for, %.1f explanations and %s (target <= 200 us at 48)\n",
           region_count, region_count * region_count,
           steady ? "steady" : (rows > 1 ? "stepped" : "moving"), first_us,
           cpu_us, mean_us, worst_ns / 1e3, iterations,
           (double)regions_asked / (double)iterations, (double)explanations / (double)iterations,
           counted);
    if (cpu_us > 200)
        printf("bench_geo_policy: OVER TARGET\n");
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    free(params);
    sw_units_clear(&units);
    sw_offers_clear(&offers);
    sw_metric_set_clear(&metrics);
    return status;
}
