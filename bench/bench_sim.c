/* bench_sim.c — `steward simulate` throughput: the real runtime with policies/
 * follow_demand.lua every 10 s over a generated diurnal demand trace (5-minute rows) on a
 * generated marketplace (two providers per region, a full RTT matrix).
 *
 * Headline: 30 simulated days, 12 regions (259,200 evaluations). Then wall time against
 * regions (3, 12, 48 over 3 days) and against days (1, 30, and 365 when
 * SW_BENCH_LONG=1; 90 otherwise, so `make bench` stays short). Each case runs in its own
 * child process so its peak RSS is its own. Prints wall seconds, evaluations/s,
 * simulated days per wall second and peak RSS. `bench_sim --headline` runs the first case
 * only; `bench_sim REGIONS DAYS` one case of that size.
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

static void write_inputs(int regions, int days)
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

    path = sw_xasprintf("%s/bench.jsonc", dir);
    f = fopen(path, "w");
    fprintf(f,
            "{\"id\": \"bench\", \"seed\": 1, \"market\": \"market_sim\",\n"
            " \"plugins\": {\"market_sim\": {\"providers_file\": \"providers.json\"}},\n"
            " \"metrics\": {\"rps\": {\"plugin\": \"metrics_trace\", \"query\": \"rps\"}},\n"
            " \"groups\": {\"web\": {\"min\": 1, \"max\": 2000, \"scale_up_cooldown\": \"30s\","
            " \"scale_down_cooldown\": \"2m\"}},\n"
            " \"policies\": [{\"name\": \"follow-demand\", \"file\": \"%s/policies/"
            "follow_demand.lua\", \"interval\": \"10s\", \"params\": {\"group\": \"web\","
            " \"rps_per_unit\": 100, \"half_life_s\": 120, \"scale_down_after_s\": 900,"
            " \"min_rps_for_region\": 40}}],\n"
            " \"simulation\": {\"rtt\": \"rtt.csv\"}}\n",
            SW_SOURCE_DIR);
    fclose(f);
    free(path);
}

static void run_case(const char *label, int regions, int days)
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
    write_inputs(regions, days);
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
    uint64_t start = uv_hrtime();
    if (sw_sim_run(&opts, &r, &err) < 0) {
        fprintf(stderr, "bench_sim: %s\n", err.msg);
        _exit(1);
    }
    double wall = (double)(uv_hrtime() - start) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%-22s %3d regions %4d days %9llu evals %8.2f s wall %9.0f evals/s %7.2f days/s "
           "%6.1f MB RSS  (cost %.0f USD, p95 %.0f ms)\n",
           label, regions, days, (unsigned long long)r->evaluations, wall,
           (double)r->evaluations / wall, r->sim_s / 86400.0 / wall, ru.ru_maxrss / 1024.0,
           r->cost_usd, r->latency_p95);
    fflush(stdout);
    sw_sim_result_free(r);
    free(config);
    free(demand);
    _exit(0);
}

static void cleanup(void)
{
    static const char *const names[] = {"rtt.csv", "providers.json", "demand.csv", "bench.jsonc"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *p = sw_xasprintf("%s/%s", dir, names[i]);
        unlink(p);
        free(p);
    }
    rmdir(dir);
}

int main(int argc, char **argv)
{
    snprintf(dir, sizeof(dir), "/tmp/sw_bench_sim_XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    bool only_headline = argc > 1 && strcmp(argv[1], "--headline") == 0;
    if (argc == 3) { /* bench_sim REGIONS DAYS: one case, e.g. under perf */
        run_case("custom", atoi(argv[1]), atoi(argv[2]));
        return 0;
    }
    printf("bench_sim: follow_demand every 10 s, 5-minute demand rows (targets for the "
           "headline: <= 2 s wall, <= 64 MB RSS)\n");
    run_case("headline", 12, 30);
    if (only_headline)
        return 0;
    run_case("regions", 3, 3);
    run_case("regions", 12, 3);
    run_case("regions", 48, 3);
    run_case("days", 12, 1);
    const char *longrun = getenv("SW_BENCH_LONG");
    if (longrun != NULL && strcmp(longrun, "1") == 0)
        run_case("days", 12, 365);
    else
        run_case("days (365: SW_BENCH_LONG=1)", 12, 90);
    return 0;
}
