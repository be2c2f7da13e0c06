/* test_runtime_probes.c — the runtime's probe scheduler end to end on a live loop:
 * market_sim units (fast providers), probe_http probing each ready unit through
 * probes.target_template at a local health server, a policy reading ctx.probes.
 * Asserted: a unit failing guard.unhealthy_after probes in a row is released and
 * replaced; a unit failing fewer in a row recovers and is kept; configured targets appear
 * in ctx.probes without a unit. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "runtime.h"
#include "sw_test.h"
#include "sw_plugin_harness.h"

#define MAX_TRACKED 32

struct health {
    char market_id[MAX_TRACKED][32];
    int requests[MAX_TRACKED];
    int fail_next[MAX_TRACKED]; /* fail this many more requests; -1 = always */
    size_t count;
    int extra_requests;
};

static int health_slot(struct health *hs, const char *market_id)
{
    for (size_t i = 0; i < hs->count; i++)
        if (strcmp(hs->market_id[i], market_id) == 0)
            return (int)i;
    if (hs->count == MAX_TRACKED)
        return -1;
    snprintf(hs->market_id[hs->count], sizeof(hs->market_id[0]), "%s", market_id);
    return (int)hs->count++;
}

static void health_handler(void *ud, struct sw_http_exchange *ex, const struct sw_http_request *req)
{
    struct health *hs = ud;
    if (strcmp(req->path, "/extra") == 0) {
        hs->extra_requests++;
        sw_http_respond(ex, 200, "text/plain", NULL, 0, "ok", 2);
        return;
    }
    const char *prefix = "/health/";
    if (strncmp(req->path, prefix, strlen(prefix)) != 0) {
        sw_http_respond(ex, 404, "text/plain", NULL, 0, "", 0);
        return;
    }
    int slot = health_slot(hs, req->path + strlen(prefix));
    if (slot < 0) {
        sw_http_respond(ex, 500, "text/plain", NULL, 0, "", 0);
        return;
    }
    hs->requests[slot]++;
    bool fail = hs->fail_next[slot] != 0;
    if (hs->fail_next[slot] > 0)
        hs->fail_next[slot]--;
    if (fail)
        sw_http_respond(ex, 503, "text/plain", NULL, 0, "sick", 4);
    else
        sw_http_respond(ex, 200, "text/plain", NULL, 0, "ok", 2);
}

static const char *POLICY =
    "return {\n"
    "  evaluate = function(ctx)\n"
    "    local n, bad, extra = 0, 0, 0\n"
    "    for _, p in ipairs(ctx.probes) do\n"
    "      n = n + 1\n"
    "      if not p.ok then bad = bad + 1 end\n"
    "      if p.unit == nil then extra = extra + 1 end\n"
    "    end\n"
    "    ctx.state.probes = { n = n, bad = bad, extra = extra }\n"
    "    return { web = { [\"eu-west\"] = 2 } }\n"
    "  end,\n"
    "}\n";

struct fixture {
    struct harness h; /* loop, clock and the health server; its plugin host is unused */
    struct health hs;
    char dir[64];
    char db[128];
    char policy[128];
    struct sw_config *config;
    struct sw_runtime *rt;
};

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    fputs(text, f);
    fclose(f);
}

static bool setup(struct fixture *fx)
{
    memset(&fx->hs, 0, sizeof(fx->hs));
    harness_start(&fx->h, health_handler, &fx->hs);
    sw_log_configure(fx->h.log, SW_LOG_FORMAT_TEXT, SW_LOG_INFO);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/sw_test_probes_XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return false;
    snprintf(fx->db, sizeof(fx->db), "%s/probes.db", fx->dir);
    snprintf(fx->policy, sizeof(fx->policy), "%s/keep2.lua", fx->dir);
    write_text(fx->policy, POLICY);
    char *text = sw_xasprintf(
        "{\"id\": \"probetest\", \"state\": \"%s\", \"market\": \"market_sim\",\n"
        " \"plugins\": {\n"
        "   \"market_sim\": {\"create_delay\": \"20ms\", \"bid_window\": \"300ms\",\n"
        "     \"providers\": [\n"
        "       {\"owner\": \"akash1a\", \"region\": \"eu-west\", \"price_uact_per_block\": 100,\n"
        "        \"bid_delay\": \"30ms\", \"ready_delay\": \"50ms\", \"capacity\": 50},\n"
        "       {\"owner\": \"akash1b\", \"region\": \"eu-west\", \"price_uact_per_block\": 110,\n"
        "        \"bid_delay\": \"40ms\", \"ready_delay\": \"50ms\", \"capacity\": 50}]},\n"
        "   \"probe_http\": {\"timeout\": \"500ms\"}},\n"
        " \"probes\": {\"plugin\": \"probe_http\", \"every\": \"150ms\",\n"
        "   \"target_template\": \"%s/health/{market_id}\", \"targets\": [\"%s/extra\"]},\n"
        " \"guard\": {\"unhealthy_after\": 3},\n"
        " \"groups\": {\"web\": {\"max\": 4, \"regions\": [\"eu-west\"]}},\n"
        " \"policies\": [{\"name\": \"keep2\", \"file\": \"%s\", \"interval\": \"100ms\"}]}\n",
        fx->db, fx->h.base, fx->h.base, fx->policy);
    struct sw_error err = {0};
    char *cfg_path = sw_xasprintf("%s/steward.json", fx->dir);
    fx->config = sw_config_parse(text, strlen(text), cfg_path, &err);
    free(cfg_path);
    free(text);
    if (fx->config == NULL) {
        fprintf(stderr, "    config: %s\n", err.msg);
        return false;
    }
    const char *plugin_dir = getenv("SW_PLUGIN_DIR");
    const char *source = getenv("SW_SOURCE_DIR");
    if (plugin_dir == NULL || source == NULL) {
        fprintf(stderr, "    SW_PLUGIN_DIR / SW_SOURCE_DIR not set (run through ctest)\n");
        return false;
    }
    static char lua_path[512];
    snprintf(lua_path, sizeof(lua_path), "%s/lua", source);
    const char *dirs[] = {plugin_dir};
    struct sw_runtime_opts opts = {
        .config = fx->config,
        .clock = fx->h.clock,
        .loop = &fx->h.loop,
        .plugin_dirs = dirs,
        .plugin_dir_count = 1,
        .lua_path = lua_path,
        .offers_every_ms = 200,
        .watch_every_ms = 500,
        .skip_inputs = true,
    };
    fx->rt = sw_runtime_new(&opts, &err);
    if (fx->rt == NULL) {
        fprintf(stderr, "    runtime: %s\n", err.msg);
        return false;
    }
    return sw_runtime_start(fx->rt, &err) == 0;
}

static int teardown(struct fixture *fx)
{
    sw_runtime_free(fx->rt);
    sw_config_free(fx->config);
    int rc = harness_finish(&fx->h);
    char *cmd = sw_xasprintf("rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        rc = -1;
    free(cmd);
    return rc;
}

static const struct sw_unit *ready_unit(struct fixture *fx, size_t nth)
{
    const struct sw_units *us = sw_runtime_units(fx->rt);
    for (size_t i = 0; i < us->count; i++)
        if (us->items[i]->state == SW_UNIT_READY && !us->items[i]->unhealthy && nth-- == 0)
            return us->items[i];
    return NULL;
}

static size_t count_ready(struct fixture *fx)
{
    size_t n = 0;
    while (ready_unit(fx, n) != NULL)
        n++;
    return n;
}

/* Turn the loop until pred holds (checked every turn) or timeout_ms passed. */
static bool run_until(struct fixture *fx, bool (*pred)(struct fixture *, void *), void *arg,
                      uint64_t timeout_ms)
{
    uint64_t deadline = uv_hrtime() + timeout_ms * 1000000u;
    while (uv_hrtime() < deadline) {
        if (pred(fx, arg))
            return true;
        uv_run(&fx->h.loop, UV_RUN_ONCE);
    }
    return pred(fx, arg);
}

static bool two_ready_and_probed(struct fixture *fx, void *arg)
{
    (void)arg;
    if (count_ready(fx) != 2)
        return false;
    for (size_t i = 0; i < 2; i++) {
        int slot = health_slot(&fx->hs, ready_unit(fx, i)->market_id);
        if (slot < 0 || fx->hs.requests[slot] == 0)
            return false;
    }
    return true;
}

static bool unit_gone_and_replaced(struct fixture *fx, void *arg)
{
    const char *market_id = arg;
    const struct sw_units *us = sw_runtime_units(fx->rt);
    for (size_t i = 0; i < us->count; i++) {
        const struct sw_unit *u = us->items[i];
        if (u->market_id != NULL && strcmp(u->market_id, market_id) == 0 &&
            u->state != SW_UNIT_CLOSED)
            return false;
    }
    return count_ready(fx) == 2;
}

static int requests_for(struct fixture *fx, const char *market_id)
{
    int slot = health_slot(&fx->hs, market_id);
    return slot < 0 ? 0 : fx->hs.requests[slot];
}

static bool requests_reach(struct fixture *fx, void *arg)
{
    const int *want = arg;
    return requests_for(fx, (const char *)(want + 1)) >= want[0];
}

SW_TEST(failing_unit_is_released_and_replaced)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx));
    SW_ASSERT(run_until(&fx, two_ready_and_probed, NULL, 8000));
    char sick[32], well[32];
    snprintf(sick, sizeof(sick), "%s", ready_unit(&fx, 0)->market_id);
    snprintf(well, sizeof(well), "%s", ready_unit(&fx, 1)->market_id);
    fx.hs.fail_next[health_slot(&fx.hs, sick)] = -1;
    int before = requests_for(&fx, sick);

    SW_ASSERT(run_until(&fx, unit_gone_and_replaced, sick, 8000));
    /* It took guard.unhealthy_after failed probes, not one. */
    SW_ASSERT(requests_for(&fx, sick) - before >= 3);
    /* The healthy one was kept; the replacement is a new unit. */
    bool kept = false, replaced = false;
    for (size_t i = 0; i < 2; i++) {
        const char *id = ready_unit(&fx, i)->market_id;
        kept = kept || strcmp(id, well) == 0;
        replaced = replaced || (strcmp(id, well) != 0 && strcmp(id, sick) != 0);
    }
    SW_ASSERT(kept);
    SW_ASSERT(replaced);
    SW_ASSERT(sw_runtime_stats(fx.rt)->releases_started >= 1);

    char *log = harness_log_text(&fx.h);
    SW_ASSERT_CONTAINS(log, "is unhealthy after 3 failed probes; it will be replaced");
    SW_ASSERT_CONTAINS(log, "unhealthy: 3 failed probes");
    free(log);

    /* The unhealthy verdict is journaled as an event. */
    struct sw_event_record *events = NULL;
    size_t count = 0;
    SW_ASSERT_EQ(sw_journal_events(sw_runtime_journal(fx.rt), 0, 0, &events, &count), 0);
    bool journaled = false;
    for (size_t i = 0; i < count; i++)
        journaled = journaled || (strcmp(events[i].type, "unit_unhealthy") == 0 &&
                                  strstr(events[i].data_json, sick) != NULL);
    sw_journal_events_free(events, count);
    SW_ASSERT(journaled);
    SW_ASSERT_EQ(teardown(&fx), 0);
}

SW_TEST(fewer_failures_than_the_threshold_keep_the_unit_and_ctx_probes_shows_rounds)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx));
    SW_ASSERT(run_until(&fx, two_ready_and_probed, NULL, 8000));
    char flaky[32];
    snprintf(flaky, sizeof(flaky), "%s", ready_unit(&fx, 0)->market_id);
    fx.hs.fail_next[health_slot(&fx.hs, flaky)] = 2;
    int want[1 + 8];
    want[0] = requests_for(&fx, flaky) + 5;
    memcpy(&want[1], flaky, sizeof(flaky));
    SW_ASSERT(run_until(&fx, requests_reach, want, 8000));
    harness_run_for(&fx.h, 300);

    const struct sw_units *us = sw_runtime_units(fx.rt);
    const struct sw_unit *u = NULL;
    for (size_t i = 0; i < us->count; i++)
        if (us->items[i]->market_id && strcmp(us->items[i]->market_id, flaky) == 0)
            u = us->items[i];
    SW_ASSERT(u != NULL);
    SW_ASSERT_EQ(u->state, SW_UNIT_READY);
    SW_ASSERT(!u->unhealthy);
    SW_ASSERT_EQ(u->probe_failures, 0);
    SW_ASSERT_EQ(sw_runtime_stats(fx.rt)->releases_started, 0);
    SW_ASSERT(fx.hs.extra_requests > 0);

    /* The policy saw whole rounds: two units plus the configured target. */
    char *state = NULL;
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_journal_state_get(sw_runtime_journal(fx.rt), "keep2", &state, &err), 0);
    SW_ASSERT(state != NULL);
    SW_ASSERT_CONTAINS(state, "\"n\":3");
    SW_ASSERT_CONTAINS(state, "\"extra\":1");
    free(state);
    char *log = harness_log_text(&fx.h);
    SW_ASSERT_CONTAINS(log, "failed (HTTP 503), 2 in a row");
    SW_ASSERT_CONTAINS(log, "answers probes again");
    free(log);
    SW_ASSERT_EQ(teardown(&fx), 0);
}

SW_TEST_MAIN()
