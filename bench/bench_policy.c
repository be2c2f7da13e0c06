/* bench_policy.c — cost of one sw_policy_eval, ctx construction and validation included.
 * Target: <= 5 us for a trivial policy with 10 units, 10 offers and 1 metric.
 * Prints ns per call for a trivial policy and for heavier ones that touch the lazily
 * converted tables (leases, offers, groups). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "clock.h"
#include "mem.h"
#include "policy.h"

/* clock.c belongs to another module; weak so the real one wins once it is linked. */
__attribute__((weak)) int64_t sw_clock_now(struct sw_clock *clock)
{
    return clock->ops->now_ms(clock);
}

static const char *const policies[][2] = {
    {"trivial (metric query)", "return {name = 'bench', evaluate = function(ctx)\n"
                               "  local rps = ctx.metrics.query('rps')\n"
                               "  return {web = {['eu-west'] = math.ceil(rps[1].value / 100)}}\n"
                               "end}\n"},
    {"capacity + price + state",
     "return {name = 'bench', evaluate = function(ctx)\n"
     "  local rps = ctx.metrics.query('rps')\n"
     "  local want = math.ceil(rps[1].value / 100)\n"
     "  ctx.state.ticks = (ctx.state.ticks or 0) + 1\n"
     "  if ctx.capacity('web', 'eu-west') < want and ctx.price('eu-west') then\n"
     "    ctx.explain('web', 'eu-west', 'under target')\n"
     "  end\n"
     "  return {web = {['eu-west'] = want, ['us-east'] = 1}}\n"
     "end}\n"},
    {"touches leases + offers + groups",
     "return {name = 'bench', evaluate = function(ctx)\n"
     "  local ready = 0\n"
     "  for _, l in ipairs(ctx.leases) do if l.ready then ready = ready + 1 end end\n"
     "  local cheapest = math.huge\n"
     "  for _, o in ipairs(ctx.offers) do cheapest = math.min(cheapest, o.price_usd_hour) end\n"
     "  local max = ctx.groups.web.max\n"
     "  return {web = {['eu-west'] = math.min(max, ready + 1)}}\n"
     "end}\n"},
};

static void build_input(struct sw_units *units, struct sw_offers *offers,
                        struct sw_metric_set *metrics)
{
    static const char *const regions[] = {"eu-west", "us-east"};
    for (int i = 0; i < 10; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        struct sw_unit *u = sw_unit_new(key, "web", regions[i % 2]);
        u->state = i % 3 == 0 ? SW_UNIT_LEASED : SW_UNIT_READY;
        u->market_id = sw_xasprintf("%d", 1000 + i);
        u->provider = sw_xstrdup("provider");
        u->price_usd_hour = 0.5;
        u->ordered_ms = 1700000000000 - 60000;
        const char *uris[] = {"https://x.example"};
        sw_unit_set_uris(u, uris, 1);
        sw_units_add(units, u);
        sw_offers_add(offers, "provider", regions[i % 2], 0.4 + i * 0.01, i % 2 == 0);
    }
    const char *names[] = {"region"};
    const char *values[] = {"eu-west"};
    struct swp_sample sample = {names, values, 1, 420};
    sw_metric_set_put(metrics, "rps", 1700000000000, &sample, 1);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 200000;
    char dir[] = "/tmp/sw_bench_XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    struct sw_units units;
    struct sw_offers offers;
    struct sw_metric_set metrics;
    sw_units_init(&units);
    sw_offers_init(&offers);
    sw_metric_set_init(&metrics);
    build_input(&units, &offers, &metrics);
    char *regions[] = {"eu-west", "us-east"};
    struct sw_group_config groups[] = {
        {.name = "web", .max = 20, .regions = regions, .region_count = 2}};
    struct sw_policy_input in = {
        .now_ms = 1700000000000,
        .units = &units,
        .offers = &offers,
        .metrics = &metrics,
        .groups = groups,
        .group_count = 1,
        .budget_usd_hour = 10,
        .spend_usd_hour = 5,
    };
    int status = 0;
    for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/bench.lua", dir);
        FILE *f = fopen(path, "w");
        fputs(policies[i][1], f);
        fclose(f);
        struct sw_policy_opts opts = {.file = path, .lua_path = SW_SOURCE_DIR "/lua"};
        struct sw_error err = {0};
        struct sw_policy *p = sw_policy_new(&opts, &err);
        if (p == NULL) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        struct sw_policy_result out;
        sw_policy_result_init(&out);
        for (long n = 0; n < iterations / 10; n++)
            sw_policy_eval(p, &in, &out, &err);
        uint64_t start = uv_hrtime();
        for (long n = 0; n < iterations; n++) {
            if (sw_policy_eval(p, &in, &out, &err) != 0) {
                fprintf(stderr, "eval failed: %s\n", err.msg);
                status = 1;
                break;
            }
        }
        double ns = (double)(uv_hrtime() - start) / (double)iterations;
        printf("bench_policy: %-34s %8.0f ns/eval  (lua heap %zu bytes)\n", policies[i][0], ns,
               out.memory_bytes);
        sw_policy_result_clear(&out);
        sw_policy_free(p);
        unlink(path);
    }
    rmdir(dir);
    sw_units_clear(&units);
    sw_offers_clear(&offers);
    sw_metric_set_clear(&metrics);
    return status;
}
