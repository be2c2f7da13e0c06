/* test_runtime.c — the decision loop end to end under the simulated clock: real plugins
 * (market_sim, the fixture that never completes), real policies, real journal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock_sim.h"
#include "config.h"
#include "journal.h"
#include "log.h"
#include "mem.h"
#include "runtime.h"
#include "sw_test.h"

#define START_MS 1767225600000LL /* 2026-01-01T00:00:00Z */

struct world {
    char dir[64];
    char *config_path;
    struct sw_config *config;
    struct sw_clock *clock;
    struct sw_runtime *rt;
    const char *plugin_dirs[2];
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    SW_ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void world_dir(struct world *w)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->dir, sizeof(w->dir), "/tmp/sw_runtime_XXXXXX");
    SW_ASSERT(mkdtemp(w->dir) != NULL);
    sw_log_configure(stderr, SW_LOG_FORMAT_TEXT, SW_LOG_ERROR);
}

/* Configure from a config text whose policy is `policy_lua`; providers go to providers.json. */
static void world_config(struct world *w, const char *config_text, const char *policy_lua,
                         const char *providers_json)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/policy.lua", w->dir);
    write_file(path, policy_lua);
    if (providers_json != NULL) {
        snprintf(path, sizeof(path), "%s/providers.json", w->dir);
        write_file(path, providers_json);
    }
    free(w->config_path);
    w->config_path = sw_xasprintf("%s/steward.json", w->dir);
    write_file(w->config_path, config_text);
    struct sw_error err = {0};
    sw_config_free(w->config);
    w->config = sw_config_load(w->config_path, &err);
    if (w->config == NULL)
        fprintf(stderr, "    config: %s\n", err.msg);
    SW_ASSERT(w->config != NULL);
}

static void world_start(struct world *w, int64_t start_ms, uint64_t op_grace_ms)
{
    w->clock = sw_clock_sim_new(start_ms);
    w->plugin_dirs[0] = getenv("SW_PLUGIN_DIR");
    w->plugin_dirs[1] = w->dir;
    struct sw_runtime_opts opts = {
        .config = w->config,
        .clock = w->clock,
        .plugin_dirs = w->plugin_dirs,
        .plugin_dir_count = 2,
        .lua_path = SW_SOURCE_DIR "/lua",
        .op_grace_ms = op_grace_ms,
        .watch_every_ms = 5000,
    };
    struct sw_error err = {0};
    w->rt = sw_runtime_new(&opts, &err);
    if (w->rt == NULL)
        fprintf(stderr, "    runtime: %s\n", err.msg);
    SW_ASSERT(w->rt != NULL);
    SW_ASSERT_EQ(sw_runtime_start(w->rt, &err), 0);
}

static void world_run_until(struct world *w, int64_t until_ms)
{
    sw_clock_sim_run(w->clock, until_ms);
}

static void world_stop(struct world *w)
{
    sw_runtime_free(w->rt);
    w->rt = NULL;
    sw_clock_free(w->clock);
    w->clock = NULL;
}

static void world_free(struct world *w)
{
    if (w->rt != NULL)
        world_stop(w);
    sw_config_free(w->config);
    free(w->config_path);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", w->dir);
    SW_ASSERT_EQ(system(cmd), 0);
}

static const char *providers_slow =
    "{\"providers\": ["
    " {\"owner\": \"akash1slow\", \"region\": \"eu-west\", \"price_uact_per_block\": 100,"
    "  \"bid_delay\": \"20s\", \"ready_delay\": \"30s\", \"capacity\": 10},"
    " {\"owner\": \"akash1dear\", \"region\": \"eu-west\", \"price_uact_per_block\": 400,"
    "  \"bid_delay\": \"1s\", \"ready_delay\": \"5s\", \"capacity\": 10}]}";

#define CONFIG_SIM(budget)                                                               \
    "{\"id\": \"rt\", \"state\": \"journal.db\", \"market\": \"market_sim\","                  \
    " \"plugins\": {\"market_sim\": {\"providers_file\": \"providers.json\","                     \
    "                               \"bid_window\": \"25s\"}},"                              \
    " \"guard\": {\"budget_usd_hour\": " budget "},"                                          \
    " \"groups\": {\"web\": {\"min\": 0, \"max\": 10, \"regions\": [\"eu-west\"]}},"            \
    " \"policies\": [{\"name\": \"p\", \"file\": \"policy.lua\", \"interval\": \"1s\"}]}"

static const char *config_sim = CONFIG_SIM("10");
static const char *want_three =
    "return { evaluate = function(ctx) return { web = { ['eu-west'] = 3 } } end }";

SW_TEST(slow_marketplace_never_buys_twice)
{
    struct world w;
    world_dir(&w);
    world_config(&w, config_sim, want_three, providers_slow);
    world_start(&w, START_MS, 0);
    /* 40 ticks while nothing is ready yet: pending units count as capacity. */
    world_run_until(&w, START_MS + 40000);
    const struct sw_runtime_stats *st = sw_runtime_stats(w.rt);
    SW_ASSERT(st->evaluations >= 40);
    SW_ASSERT_EQ(st->acquires_started, 3);
    SW_ASSERT_EQ(st->acquires_ready, 0);
    world_run_until(&w, START_MS + 120000);
    SW_ASSERT_EQ(st->acquires_started, 3);
    SW_ASSERT_EQ(st->acquires_ready, 3);
    SW_ASSERT_EQ(sw_units_count_capacity(sw_runtime_units(w.rt), "web", "eu-west"), 3);
    /* The lowest price won (earliest on a tie is market_sim's own test). */
    const struct sw_units *units = sw_runtime_units(w.rt);
    for (size_t i = 0; i < units->count; i++)
        SW_ASSERT_STREQ(units->items[i]->provider, "akash1slow");
    world_free(&w);
}

SW_TEST(guard_budget_holds_while_the_policy_asks_for_more)
{
    struct world w;
    world_dir(&w);
    /* 100 uact/block = 0.06 USD/h: a 0.2 USD/h budget carries three units. */
    world_config(&w, CONFIG_SIM("0.2"),
                 "return { evaluate = function(ctx) return { web = { ['eu-west'] = 9 } } end }",
                 "{\"providers\": [{\"owner\": \"akash1a\", \"region\": \"eu-west\","
                 " \"price_uact_per_block\": 100, \"bid_delay\": \"1s\", \"ready_delay\": \"2s\","
                 " \"capacity\": 20}]}");
    world_start(&w, START_MS, 0);
    world_run_until(&w, START_MS + 60000);
    const struct sw_runtime_stats *st = sw_runtime_stats(w.rt);
    SW_ASSERT_EQ(st->acquires_started, 3);
    SW_ASSERT(st->refused > 0);
    SW_ASSERT(sw_units_spend_usd_hour(sw_runtime_units(w.rt)) <= 0.2 + 1e-9);
    world_free(&w);
}

SW_TEST(plugin_that_never_completes_fails_only_that_action)
{
    struct world w;
    world_dir(&w);
    /* The runtime finds plugins as swp_<name>.so. */
    char *src = sw_xasprintf("%s/op_never_completes.so", getenv("SW_FIXTURE_DIR"));
    char *dst = sw_xasprintf("%s/swp_fixture_never.so", w.dir);
    SW_ASSERT_EQ(symlink(src, dst), 0);
    free(src);
    free(dst);
    world_config(&w,
                 "{\"id\": \"rt\", \"state\": \"journal.db\", \"market\": \"fixture_never\","
                 " \"groups\": {\"web\": {\"max\": 2, \"acquire_deadline\": \"2s\"}},"
                 " \"policies\": [{\"name\": \"p\", \"file\": \"policy.lua\","
                 "                 \"interval\": \"1s\"}]}",
                 "return { evaluate = function(ctx) return { web = { eu = 1 } } end }", NULL);
    world_start(&w, START_MS, 1000);
    world_run_until(&w, START_MS + 2500);
    const struct sw_runtime_stats *st = sw_runtime_stats(w.rt);
    SW_ASSERT_EQ(st->acquires_started, 1);
    SW_ASSERT_EQ(st->acquires_failed, 0);
    world_run_until(&w, START_MS + 3500); /* deadline 2 s + grace 1 s */
    SW_ASSERT_EQ(st->acquires_failed, 1);
    struct sw_intent in = {0};
    SW_ASSERT_EQ(sw_journal_intent_get(sw_runtime_journal(w.rt), "rt-u1", &in, NULL), 0);
    SW_ASSERT_EQ(in.state, SW_INTENT_FAILED);
    SW_ASSERT_STREQ(in.outcome, "plugin missed its deadline");
    sw_intent_clear(&in);
    /* The loop goes on: the next tick orders a new unit. */
    world_run_until(&w, START_MS + 5500);
    SW_ASSERT_EQ(st->acquires_started, 2);
    SW_ASSERT(st->evaluations >= 5);
    world_free(&w);
}

SW_TEST(restart_mid_acquire_adopts_instead_of_buying_again)
{
    struct world w;
    world_dir(&w);
    world_config(&w, config_sim, want_three, providers_slow);
    world_start(&w, START_MS, 0);
    /* Created on the marketplace, waiting for bids: stop as a crash would leave it. */
    world_run_until(&w, START_MS + 5000);
    SW_ASSERT_EQ(sw_runtime_stats(w.rt)->acquires_started, 3);
    world_stop(&w);

    world_start(&w, START_MS + 6000, 0);
    world_run_until(&w, START_MS + 200000);
    const struct sw_runtime_stats *st = sw_runtime_stats(w.rt);
    /* market_sim closes deployments still waiting for bids when it reloads; recovery
     * abandons their intents and the policy's three are bought again, exactly once. */
    SW_ASSERT_EQ(st->recovered_abandoned + st->recovered_adopted, 3);
    SW_ASSERT_EQ(st->acquires_started, st->recovered_abandoned);
    SW_ASSERT_EQ(sw_units_count_capacity(sw_runtime_units(w.rt), "web", "eu-west"), 3);
    SW_ASSERT_EQ(sw_journal_unit_count(sw_runtime_journal(w.rt), -1), 3);
    world_free(&w);
}

SW_TEST(restart_after_lease_resumes_the_acquire_by_key)
{
    struct world w;
    world_dir(&w);
    world_config(&w, config_sim, want_three, providers_slow);
    world_start(&w, START_MS, 0);
    /* Bids chosen at ~25.2 s, ready at ~55 s: stop while leased. */
    world_run_until(&w, START_MS + 30000);
    const struct sw_units *units = sw_runtime_units(w.rt);
    SW_ASSERT_EQ(units->count, 3);
    SW_ASSERT_EQ(units->items[0]->state, SW_UNIT_LEASED);
    world_stop(&w);

    world_start(&w, START_MS + 31000, 0);
    world_run_until(&w, START_MS + 120000);
    const struct sw_runtime_stats *st = sw_runtime_stats(w.rt);
    SW_ASSERT_EQ(st->recovered_adopted, 3);
    SW_ASSERT_EQ(st->acquires_started, 0); /* nothing bought again */
    SW_ASSERT_EQ(st->acquires_ready, 3);   /* the resumed acquires completed */
    SW_ASSERT_EQ(sw_units_count_capacity(sw_runtime_units(w.rt), "web", "eu-west"), 3);
    struct sw_intent *pending = NULL;
    size_t pending_count = 0;
    SW_ASSERT_EQ(sw_journal_intents_pending(sw_runtime_journal(w.rt), &pending, &pending_count,
                                            NULL),
                 0);
    SW_ASSERT_EQ(pending_count, 0);
    free(pending);
    world_free(&w);
}

SW_TEST_MAIN()
