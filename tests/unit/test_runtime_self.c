/* test_runtime_self.c — steward never releases the unit it runs in. The runtime with
 * market_sim on a simulated clock; the marketplace holds steward's own deployment
 * (AKASH_DEPLOYMENT_SEQUENCE), tagged with steward's id, next to ordinary ones, and the
 * policy wants nothing. The ordinary ones go (so releasing works); the self one stays,
 * whether the journal knows it or recovery finds it as an "orphan". */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock_sim.h"
#include "config.h"
#include "journal.h"
#include "log.h"
#include "mem.h"
#include "runtime.h"
#include "sw_test.h"

#define START_MS 1700000000000LL

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static void plant_deployment(struct sw_journal *j, const char *dseq, const char *key)
{
    char *value = sw_xasprintf(
        "{\"dseq\":\"%s\",\"state\":\"ready\",\"key\":\"%s\",\"group\":\"web\","
        "\"region\":\"eu-west\",\"tag\":\"selftest\",\"provider\":\"akash1west\","
        "\"uri\":\"%s.test\",\"created_ms\":%s,\"price_uact_per_block\":100,"
        "\"price_usd_hour\":0.06,\"ready_at_ms\":0,\"closure_at_ms\":0}",
        dseq, key, key, dseq);
    char *name = sw_xasprintf("dep/%s", dseq);
    SW_ASSERT_EQ(sw_journal_kv_set(j, "market_sim", name, value), 0);
    free(name);
    free(value);
}

static void journal_unit(struct sw_journal *j, const char *key, const char *market_id)
{
    struct sw_unit *u = sw_unit_new(key, "web", "eu-west");
    u->market_id = sw_xstrdup(market_id);
    u->provider = sw_xstrdup("akash1west");
    u->price_usd_hour = 0.06;
    u->state = SW_UNIT_READY;
    u->ordered_ms = START_MS - 60000;
    u->ready_ms = START_MS - 30000;
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_journal_unit_save(j, u, &err), 0);
    sw_unit_free(u);
}

static bool deployment_open(struct sw_journal *j, const char *dseq)
{
    char *name = sw_xasprintf("dep/%s", dseq);
    char *value = NULL;
    int rc = sw_journal_kv_get(j, "market_sim", name, &value);
    free(name);
    free(value);
    return rc == 0;
}

SW_TEST(self_unit_is_never_released)
{
    char dir[] = "/tmp/sw_test_self_XXXXXX";
    SW_ASSERT(mkdtemp(dir) != NULL);
    char *db = sw_xasprintf("%s/self.db", dir);
    char *policy = sw_xasprintf("%s/nothing.lua", dir);
    char *cfg = sw_xasprintf("%s/steward.json", dir);
    write_file(policy, "return { name = 'nothing', evaluate = function(ctx)\n"
                       "  return { web = { ['eu-west'] = 0 } } end }\n");
    write_file(cfg,
               "{\"id\": \"selftest\", \"state\": \"self.db\", \"market\": \"market_sim\",\n"
               " \"plugin_dirs\": [\"" SW_BUILD_PLUGIN_DIR "\"],\n"
               " \"lua_path\": \"" SW_SOURCE_DIR "/lua\",\n"
               " \"plugins\": {\"market_sim\": {\"providers\": [{\"owner\": \"akash1west\",\n"
               "   \"region\": \"eu-west\", \"price_uact_per_block\": 100}]}},\n"
               " \"groups\": {\"web\": {\"max\": 4, \"regions\": [\"eu-west\"]}},\n"
               " \"policies\": [{\"name\": \"nothing\", \"file\": \"nothing.lua\",\n"
               "                \"interval\": \"5s\"}]}\n");

    /* The marketplace: 5000 is steward's own deployment, known to the journal; 5001 is an
     * ordinary unit of ours; 6000 is also steward's own deployment seen by another
     * instance's journal (below); 5002 is an orphan tagged ours. */
    struct sw_error err = {0};
    struct sw_journal *j = sw_journal_open(db, &err);
    SW_ASSERT(j != NULL);
    plant_deployment(j, "5000", "self-unit");
    plant_deployment(j, "5001", "selftest-u1");
    plant_deployment(j, "5002", "selftest-u2");
    SW_ASSERT_EQ(sw_journal_kv_set(j, "market_sim", "index", "[\"5000\",\"5001\",\"5002\"]"), 0);
    journal_unit(j, "self-unit", "5000");
    journal_unit(j, "selftest-u1", "5001");
    SW_ASSERT_EQ(sw_journal_meta_set(j, "instance_id", "selftest"), 0);
    sw_journal_close(j);

    /* Learned from the environment Akash injects, as in a real lease. */
    setenv("AKASH_DEPLOYMENT_SEQUENCE", "5000", 1);
    struct sw_config *config = sw_config_load(cfg, &err);
    unsetenv("AKASH_DEPLOYMENT_SEQUENCE");
    SW_ASSERT(config != NULL);
    SW_ASSERT_STREQ(config->self_market_id, "5000");

    struct sw_clock *clock = sw_clock_sim_new(START_MS);
    struct sw_runtime_opts opts = {
        .config = config,
        .clock = clock,
        .plugin_dirs = (const char *const *)config->plugin_dirs,
        .plugin_dir_count = config->plugin_dir_count,
        .lua_path = config->lua_path,
        .offers_every_ms = 10000,
        .watch_every_ms = 10000,
    };
    struct sw_runtime *rt = sw_runtime_new(&opts, &err);
    if (rt == NULL)
        fprintf(stderr, "    %s\n", err.msg);
    SW_ASSERT(rt != NULL);
    SW_ASSERT_EQ(sw_runtime_start(rt, &err), 0);
    sw_clock_sim_run(clock, START_MS + 10 * 60000);

    const struct sw_runtime_stats *st = sw_runtime_stats(rt);
    struct sw_journal *rj = sw_runtime_journal(rt);
    SW_ASSERT(st->evaluations >= 100);
    /* The ordinary unit and the orphan went: releasing works in this setup. */
    SW_ASSERT(!deployment_open(rj, "5001"));
    SW_ASSERT(!deployment_open(rj, "5002"));
    SW_ASSERT_EQ(st->recovered_closed_orphans, 1);
    SW_ASSERT_EQ(st->releases_done, 2);
    /* The unit steward runs in is still there, still ready, never even attempted. */
    SW_ASSERT(deployment_open(rj, "5000"));
    const struct sw_unit *self = sw_units_find_market_id(sw_runtime_units(rt), "5000");
    SW_ASSERT(self != NULL);
    SW_ASSERT(self->self);
    SW_ASSERT_EQ(self->state, SW_UNIT_READY);
    SW_ASSERT_EQ(sw_journal_intent_count(rj, "self-unit"), 0);
    sw_runtime_free(rt);
    sw_clock_free(clock);
    sw_config_free(config);

    /* A fresh journal (a second instance, or a lost one) with the same id: the self
     * deployment is tagged ours but unknown, which recovery would close as an orphan. */
    unlink(db);
    char *wal = sw_xasprintf("%s-wal", db), *shm = sw_xasprintf("%s-shm", db);
    unlink(wal);
    unlink(shm);
    j = sw_journal_open(db, &err);
    SW_ASSERT(j != NULL);
    plant_deployment(j, "6000", "self-unit-2");
    plant_deployment(j, "6001", "selftest-u9");
    SW_ASSERT_EQ(sw_journal_kv_set(j, "market_sim", "index", "[\"6000\",\"6001\"]"), 0);
    sw_journal_close(j);
    setenv("AKASH_DEPLOYMENT_SEQUENCE", "6000", 1);
    config = sw_config_load(cfg, &err);
    unsetenv("AKASH_DEPLOYMENT_SEQUENCE");
    SW_ASSERT(config != NULL);
    clock = sw_clock_sim_new(START_MS);
    opts.config = config;
    opts.clock = clock;
    opts.plugin_dirs = (const char *const *)config->plugin_dirs;
    opts.lua_path = config->lua_path;
    rt = sw_runtime_new(&opts, &err);
    SW_ASSERT(rt != NULL);
    SW_ASSERT_EQ(sw_runtime_start(rt, &err), 0);
    sw_clock_sim_run(clock, START_MS + 5 * 60000);
    rj = sw_runtime_journal(rt);
    SW_ASSERT(!deployment_open(rj, "6001"));
    SW_ASSERT(deployment_open(rj, "6000"));
    SW_ASSERT_EQ(sw_runtime_stats(rt)->recovered_closed_orphans, 1);
    sw_runtime_free(rt);
    sw_clock_free(clock);
    sw_config_free(config);

    unlink(db);
    unlink(wal);
    unlink(shm);
    unlink(policy);
    unlink(cfg);
    rmdir(dir);
    free(wal);
    free(shm);
    free(db);
    free(policy);
    free(cfg);
}

SW_TEST_MAIN()
