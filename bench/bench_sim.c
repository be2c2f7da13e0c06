/* bench_sim.c — `steward simulate` throughput: the real runtime with a policy every 10 s
 * over a generated diurnal demand trace (5-minute rows) on a generated marketplace (two
 * providers per region, a full RTT matrix).
 *
 * Policies: "geo" is policies/geo_latency.lua (the headline); "trivial" is a
 * policy that returns the same desired state (one unit per region) every tick without
 * reading ctx, so its figure is the cost of everything around the Lua policy (runtime,
 * guard, planner, market_sim, metrics_trace, the simulator's models); "follow" is
 * policies/follow_demand.lua.
 *
 * Headline: geo, 30 simulated days, 12 regions (259,200 evaluations). Then regions
 * 3/12/48 × days 1/30/365 for trivial and geo, the cases that take many minutes (trivial
 * 48 × 365, geo 48 × 30, geo × 365) only with SW_BENCH_LONG=1. Each case runs in its own
 * child process so its peak RSS is its own. Prints wall and CPU seconds, µs per
 * evaluation (wall, and CPU: on a shared machine wall time also counts other processes),
 * evaluations/s, simulated days per wall second, peak RSS and the actions taken.
 *   bench_sim --headline             the headline only
 *   bench_sim [POLICY] REGIONS DAYS  one case (e.g. under perf); POLICY defaults to geo
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"
#include "mem.h"
#include "sim.h"

static char dir[64];

static void write_inputs(const char *policy, int regions, int days)
{
    char *path = sw_xasprintf("%s/rtt.csv", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "from,to,rtt_ms\n");
    for (int a = 0; a < regions; a++)
        for (int b = 0; b < regions; b++)
            fprintf(f, "r%02d,r%02d,%d\n", a, b, a == b ? 2 : 15 + 9 * abs(a - b));
    fclose(f);
    free(path);

    path = sw_xasprintf("%s/providers.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"providers\": [\n");
    for (int r = 0; r < regions; r++)
        for (int k = 0; k < 2; k++)
            fprintf(f,
                    "%s{\"owner\": \"akash1bench%02d%d\", \"region\": \"r%02d\", "
                    "\"price_uact_per_block\": %d, \"bid_delay\": \"%ds\", \"ready_delay\": "
                    "\"12s\", \"capacity\": 200, \"closures_per_hour\": 0.01}\n",
                    r || k ? "," : "", r, k, r, 90 + 40 * k + r, 1 + k);
    fprintf(f, "]}\n");
    fclose(f);
    free(path);

    path = sw_xasprintf("%s/demand.csv", dir);
    f = fopen(path, "w");
    fprintf(f, "time_s,region,rps\n");
    for (long t = 0; t <= (long)days * 86400; t += 300)
        for (int r = 0; r < regions; r++) {
            double peak_hour = fmod(r * 24.0 / regions, 24.0);
            double hour = fmod(t / 3600.0, 24.0);
            double shape = (1 + cos(2 * M_PI * (hour - peak_hour) / 24)) / 2;
            fprintf(f, "%ld,r%02d,%.1f\n", t, r, 20 + 600 * shape * shape);
        }
    fclose(f);
    free(path);

    path = sw_xasprintf("%s/trivial.lua", dir);
    f = fopen(path, "w");
    fprintf(f,
            "local want = {}\nfor r = 0, %d do want[string.format(\"r%%02d\", r)] = 1 end\n"
            "return {name = \"trivial\", evaluate = function(ctx) return {web = want} end}\n",
            regions - 1);
    fclose(f);
    free(path);

    path = sw_xasprintf("%s/bench.jsonc", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"id\": \"bench\", \"seed\": 1, \"market\": \"market_sim\",\n"
               " \"plugins\": {\"market_sim\": {\"providers_file\": \"providers.json\"}},\n"
               " \"metrics\": {\"rps\": {\"plugin\": \"metrics_trace\", \"query\": \"rps\"}},\n"
               " \"groups\": {\"web\": {\"min\": 1, \"max\": 2000, \"scale_up_cooldown\": \"30s\","
               " \"scale_down_cooldown\": \"2m\"}},\n"
               " \"simulation\": {\"rtt\": \"rtt.csv\"},\n");
    if (strcmp(policy, "trivial") == 0) {
        fprintf(f, " \"policies\": [{\"name\": \"trivial\", \"file\": \"trivial.lua\", "
                   "\"interval\": \"10s\"}]}\n");
    } else if (strcmp(policy, "follow") == 0) {
        fprintf(f,
                " \"policies\": [{\"name\": \"follow-demand\", \"file\": \"%s/policies/"
                "follow_demand.lua\", \"interval\": \"10s\", \"params\": {\"group\": \"web\","
                " \"rps_per_unit\": 100, \"half_life_s\": 120, \"scale_down_after_s\": 900,"
                " \"min_rps_for_region\": 40}}]}\n",
                SW_SOURCE_DIR);
    } else {
        /* Units serve 100 rps (simulation.rps_per_unit's default); the policy plans 70. The
         * policy's default hysteresis (30 s up, 300 s down): neighbours within the SLO at
         * prices 1% apart are near-equivalent placements here, the case its stickiness
         * (switch_saving) is for. */
        fprintf(f,
                " \"policies\": [{\"name\": \"geo-latency\", \"file\": \"%s/policies/"
                "geo_latency.lua\", \"interval\": \"10s\", \"params\": {\"group\": \"web\","
                " \"rps_per_unit\": 70, \"slo_ms\": 60, \"server_ms\": 10, \"rtt\": [",
                SW_SOURCE_DIR);
        for (int a = 0; a < regions; a++)
            for (int b = 0; b < regions; b++)
                fprintf(f, "%s[\"r%02d\", \"r%02d\", %d]", a || b ? ", " : "", a, b,
                        a == b ? 2 : 15 + 9 * abs(a - b));
        fprintf(f, "]}}]}\n");
    }
    fclose(f);
    free(path);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void run_case(const char *label, const char *policy, int regions, int days)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid > 0) {
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench_sim: case %s failed\n", label);
            exit(1);
        }
        return;
    }
    write_inputs(policy, regions, days);
    sw_log_configure(stderr, SW_LOG_FORMAT_TEXT, SW_LOG_ERROR);
    char *config = sw_xasprintf("%s/bench.jsonc", dir);
    char *demand = sw_xasprintf("%s/demand.csv", dir);
    const char *traces[] = {demand};
    const char *dirs[] = {SW_PLUGIN_DIR_FOR_BENCH};
    struct sw_sim_opts opts = {
        .config_path = config,
        .traces = traces,
        .trace_count = 1,
        .plugin_dirs = dirs,
        .plugin_dir_count = 1,
        .lua_path = SW_SOURCE_DIR "/lua",
    };
    struct sw_sim_result *r = NULL;
    struct sw_error err = {0};
    double cpu_before = cpu_seconds();
    uint64_t start = uv_hrtime();
    if (sw_sim_run(&opts, &r, &err) < 0) {
        fprintf(stderr, "bench_sim: %s\n", err.msg);
        _exit(1);
    }
    double wall = (double)(uv_hrtime() - start) / 1e9;
    /* CPU time too: on a shared machine wall time also counts other processes' turns. */
    double cpu = cpu_seconds() - cpu_before;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double evals = (double)r->evaluations;
    printf("%-8s %-7s %2d regions %3d days %8llu evals %7.2f s wall %7.2f s cpu %6.1f us/eval "
           "(cpu %5.1f) %7.0f evals/s %7.2f days/s %5.1f MB RSS (%llu actions, %.0f USD)\n",
           label, policy, regions, days, (unsigned long long)r->evaluations, wall, cpu,
           wall * 1e6 / evals, cpu * 1e6 / evals, evals / wall, r->sim_s / 86400.0 / wall,
           ru.ru_maxrss / 1024.0, (unsigned long long)r->actions, r->cost_usd);
    fflush(stdout);
    int status = r->policy_errors > 0 ? 1 : 0; /* a policy that fails measures nothing */
    sw_sim_result_free(r);
    free(config);
    free(demand);
    _exit(status);
}

static void cleanup(void)
{
    static const char *const names[] = {"rtt.csv", "providers.json", "demand.csv", "bench.jsonc",
                                        "trivial.lua"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *p = sw_xasprintf("%s/%s", dir, names[i]);
        unlink(p);
        free(p);
    }
    rmdir(dir);
}

/* SW_BENCH_KEEP=1: leave the generated inputs in place (to rerun them with `steward
 * simulate`); their directory is printed. */
static bool keep_inputs(void)
{
    const char *keep = getenv("SW_BENCH_KEEP");
    return keep != NULL && strcmp(keep, "1") == 0;
}

static bool known_policy(const char *name)
{
    return strcmp(name, "geo") == 0 || strcmp(name, "trivial") == 0 || strcmp(name, "follow") == 0;
}

int main(int argc, char **argv)
{
    snprintf(dir, sizeof(dir), "/tmp/sw_bench_sim_XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    if (keep_inputs())
        fprintf(stderr, "bench_sim: inputs kept in %s\n", dir);
    else
        atexit(cleanup);
    if (argc == 3 || (argc == 4 && known_policy(argv[1]))) {
        const char *policy = argc == 4 ? argv[1] : "geo";
        run_case("custom", policy, atoi(argv[argc - 2]), atoi(argv[argc - 1]));
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--headline") != 0) {
        fprintf(stderr, "usage: bench_sim [--headline | [geo|trivial|follow] REGIONS DAYS]\n");
        return 2;
    }
    printf("bench_sim: a policy every 10 s, 5-minute demand rows (headline targets: "
           "<= 2 s wall, <= 64 MB RSS)\n");
    run_case("headline", "geo", 12, 30);
    if (argc > 1)
        return 0;
    const char *longrun = getenv("SW_BENCH_LONG");
    bool long_cases = longrun != NULL && strcmp(longrun, "1") == 0;
    static const int region_cases[] = {3, 12, 48};
    /* trivial: every size but 48 × 365 days runs in seconds. geo: 12 to 250 us per
     * evaluation here, so 48 regions × 30 days and every 365-day case take a minute to a
     * quarter of an hour: SW_BENCH_LONG=1. */
    for (size_t r = 0; r < 3; r++) {
        int regions = region_cases[r];
        run_case("case", "trivial", regions, 1);
        run_case("case", "trivial", regions, 30);
        if (regions < 48 || long_cases)
            run_case("case", "trivial", regions, 365);
    }
    for (size_t r = 0; r < 3; r++) {
        int regions = region_cases[r];
        run_case("case", "geo", regions, 1);
        if (regions == 3 || (regions == 48 && long_cases))
            run_case("case", "geo", regions, 30); /* 12 × 30 is the headline, above */
        if (long_cases)
            run_case("case", "geo", regions, 365);
    }
    if (!long_cases)
        printf("(trivial 48 x 365 days, geo 48 x 30 days and geo x 365 days: SW_BENCH_LONG=1)\n");
    return 0;
}
