/* test_policy.c — the policy lifecycle: ctx contents, ctx.state persistence and
 * serialisation, explanations, metric errors, os.time on a simulated clock, hot reload,
 * deterministic randomness, on_event, load errors. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "mem.h"
#include "policy.h"
#include "sw_test.h"

/* clock.c belongs to another module; weak so the real one wins once it is linked. */
__attribute__((weak)) int64_t sw_clock_now(struct sw_clock *clock)
{
    return clock->ops->now_ms(clock);
}

/* clock_sim.c is not in this tree: a minimal simulated clock, time set by the test. */
struct fake_clock {
    struct sw_clock base;
    int64_t now_ms;
};

static int64_t fake_now(struct sw_clock *clock)
{
    return ((struct fake_clock *)clock)->now_ms;
}

static const struct sw_clock_ops fake_ops = {.now_ms = fake_now};

static char tmp_dir[] = "/tmp/sw_policy_XXXXXX";

__attribute__((destructor)) static void remove_tmp_dir(void)
{
    DIR *dir = opendir(tmp_dir);
    if (dir == NULL)
        return;
    struct dirent *ent;
    char path[600];
    while ((ent = readdir(dir)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmp_dir, ent->d_name);
        unlink(path);
    }
    closedir(dir);
    rmdir(tmp_dir);
}

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    /* A flag, not a look at the template: mkdtemp may put an 'X' back where one was. */
    static bool tmp_made;
    if (!tmp_made && mkdtemp(tmp_dir) == NULL)
        abort();
    tmp_made = true;
    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* ---- captured log lines --------------------------------------------------------------- */

static char log_buf[8192];

static void capture_log(void *ud, int level, const char *msg)
{
    (void)ud;
    size_t len = strlen(log_buf);
    snprintf(log_buf + len, sizeof(log_buf) - len, "%d:%s\n", level, msg);
}

/* ---- fixtures ------------------------------------------------------------------------- */

static char *regions_web[] = {"eu-west", "us-east"};
static struct sw_group_config groups[2] = {
    {.name = "web",
     .min = 1,
     .max = 8,
     .regions = regions_web,
     .region_count = 2,
     .scale_up_cooldown_ms = 30000,
     .scale_down_cooldown_ms = 300000,
     .max_price_usd_hour = 1.5},
    {.name = "batch", .max = 4},
};

struct world {
    struct sw_units units;
    struct sw_offers offers;
    struct sw_metric_set metrics;
    struct sw_policy_input in;
};

static void add_unit(struct world *w, const char *key, const char *region, int state,
                     bool unhealthy, double price, int64_t ordered_ms)
{
    struct sw_unit *u = sw_unit_new(key, "web", region);
    u->state = state;
    u->unhealthy = unhealthy;
    u->price_usd_hour = price;
    u->ordered_ms = ordered_ms;
    if (state != SW_UNIT_ORDERED) {
        u->market_id = sw_xasprintf("m-%s", key);
        u->provider = sw_xstrdup("prov1");
    }
    const char *uris[] = {"https://a.example", "https://b.example"};
    if (state == SW_UNIT_READY)
        sw_unit_set_uris(u, uris, 2);
    sw_units_add(&w->units, u);
}

static void world_init(struct world *w)
{
    memset(w, 0, sizeof(*w));
    int64_t now = 1700000000500;
    add_unit(w, "k-ready", "eu-west", SW_UNIT_READY, false, 0.5, now - 60000);
    add_unit(w, "k-ordered", "eu-west", SW_UNIT_ORDERED, false, 0, now - 5000);
    add_unit(w, "k-sick", "us-east", SW_UNIT_READY, true, 0.7, now - 120000);
    add_unit(w, "k-releasing", "eu-west", SW_UNIT_RELEASING, false, 0.5, now - 100000);
    add_unit(w, "k-closed", "eu-west", SW_UNIT_CLOSED, false, 0.5, now - 900000);
    sw_offers_add(&w->offers, "p1", "us-east", 0.9, true);
    sw_offers_add(&w->offers, "p2", "eu-west", 0.6, false);
    sw_offers_add(&w->offers, "p3", "eu-west", 0.4, true);
    const char *names[] = {"region", "code"};
    const char *eu200[] = {"eu-west", "200"};
    const char *eu500[] = {"eu-west", "500"};
    const char *us200[] = {"us-east", "200"};
    const char *bare_names[] = {"code"};
    const char *bare[] = {"200"};
    struct swp_sample samples[] = {{names, eu200, 2, 10},
                                   {names, eu500, 2, 2},
                                   {names, us200, 2, 5},
                                   {bare_names, bare, 1, 1}};
    sw_metric_set_put(&w->metrics, "rps", now, samples, 4);
    sw_metric_set_put_error(&w->metrics, "latency", now, SW_ETIMEDOUT, "prometheus: timeout");
    w->in = (struct sw_policy_input){
        .now_ms = now,
        .units = &w->units,
        .offers = &w->offers,
        .metrics = &w->metrics,
        .groups = groups,
        .group_count = 2,
        .budget_usd_hour = 10,
        .spend_usd_hour = sw_units_spend_usd_hour(&w->units),
    };
}

static void world_free(struct world *w)
{
    sw_units_clear(&w->units);
    sw_offers_clear(&w->offers);
    sw_metric_set_clear(&w->metrics);
}

static struct sw_policy *load(const char *name, const char *text, const char *params,
                              struct sw_clock *clock, uint64_t seed)
{
    struct sw_policy_opts opts = {
        .name = name,
        .file = write_file(name, text),
        .lua_path = SW_SOURCE_DIR "/lua",
        .params_json = params,
        .clock = clock,
        .seed = seed,
        .log_fn = capture_log,
    };
    struct sw_error err = {0};
    struct sw_policy *p = sw_policy_new(&opts, &err);
    if (p == NULL)
        fprintf(stderr, "    sw_policy_new: %s\n", err.msg);
    return p;
}

static cJSON *state_of(struct sw_policy *p)
{
    char *json = sw_policy_state_json(p);
    if (json == NULL)
        return NULL;
    cJSON *tree = cJSON_Parse(json);
    free(json);
    return tree;
}

static double num_at(const cJSON *root, const char *path)
{
    /* "a.b.2.c": object keys and 0-based array indexes. */
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *node = root;
    for (char *tok = strtok(buf, "."); tok != NULL && node != NULL; tok = strtok(NULL, "."))
        node = cJSON_IsArray(node) ? cJSON_GetArrayItem(node, atoi(tok))
                                   : cJSON_GetObjectItemCaseSensitive(node, tok);
    if (cJSON_IsBool(node))
        return cJSON_IsTrue(node) ? 1 : 0;
    return cJSON_IsNumber(node) ? node->valuedouble : -12345;
}

static const char *str_at(const cJSON *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *node = root;
    for (char *tok = strtok(buf, "."); tok != NULL && node != NULL; tok = strtok(NULL, "."))
        node = cJSON_IsArray(node) ? cJSON_GetArrayItem(node, atoi(tok))
                                   : cJSON_GetObjectItemCaseSensitive(node, tok);
    return cJSON_IsString(node) ? node->valuestring : "(missing)";
}

/* ---- tests ------------------------------------------------------------------------------ */

static const char *ctx_policy =
    "return {name = 'inspect', interval = '15s', evaluate = function(ctx)\n"
    "  local s = ctx.state\n"
    "  s.now, s.now_ms = ctx.now, ctx.now_ms\n"
    "  s.param = ctx.params.nested.list[2]\n"
    "  s.param_count = #ctx.params.nested.list\n"
    "  s.params_copy = ctx.params\n"
    "  s.groups = {}\n"
    "  for name, g in pairs(ctx.groups) do\n"
    "    s.groups[name] = {name = g.name, min = g.min, max = g.max, regions = #g.regions,\n"
    "      region1 = g.regions[1], cap = g.max_price_usd_hour, up = g.scale_up_cooldown_s,\n"
    "      down = g.scale_down_cooldown_s}\n"
    "  end\n"
    "  s.leases = {}\n"
    "  for i, l in ipairs(ctx.leases) do\n"
    "    s.leases[i] = {key = l.key, state = l.state, ready = l.ready, pending = l.pending,\n"
    "      healthy = l.healthy, age = l.age_s, uris = #l.uris, uri = l.uris[1] or 'none',\n"
    "      provider = l.provider or 'none', market_id = l.market_id or 'none',\n"
    "      price = l.price_usd_hour, group = l.group, region = l.region}\n"
    "  end\n"
    "  s.cap_web, s.cap_eu = ctx.capacity('web'), ctx.capacity('web', 'eu-west')\n"
    "  s.cap_us, s.cap_batch = ctx.capacity('web', 'us-east'), ctx.capacity('batch')\n"
    "  s.ready_web, s.ready_us = ctx.ready('web'), ctx.ready('web', 'us-east')\n"
    "  s.offers = #ctx.offers\n"
    "  s.offer1 = {ctx.offers[1].provider, ctx.offers[1].region, ctx.offers[1].price_usd_hour,\n"
    "    ctx.offers[1].audited}\n"
    "  s.price_eu, s.price_mars_nil = ctx.price('eu-west'), ctx.price('mars') == nil\n"
    "  s.regions = ctx.regions()\n"
    "  s.budget = {ctx.budget.usd_per_hour, ctx.budget.spend_usd_per_hour}\n"
    "  local rps = assert(ctx.metrics.query('rps'))\n"
    "  s.rps_n, s.rps1, s.rps1_region = #rps, rps[1].value, rps[1].labels.region\n"
    "  s.sum = assert(ctx.metrics.sum_by('rps', 'region'))\n"
    "  return {web = {['eu-west'] = 2, ['us-east'] = 0}, batch = {}}\n"
    "end}\n";

/* sum_by keeps each sample's key per (series, label): values that change, labels
 * that change at the same sample count, two labels in turn, a returned table the policy
 * changes and a metric that failed must all answer as a fresh computation would. */
static const char sum_by_policy[] =
    "return {name = 'sums', interval = '10s', evaluate = function(ctx)\n"
    "  local r, e = ctx.metrics.sum_by('rps', 'region')\n"
    "  local c = ctx.metrics.sum_by('rps', 'code')\n"
    "  ctx.state.err = e or 'none'\n"
    "  ctx.state.r, ctx.state.c = r or {}, c or {}\n"
    "  if r then r['eu-west'] = -1; r.extra = 99 end\n"
    "  ctx.state.r2 = ctx.metrics.sum_by('rps', 'region')\n"
    "  return {web = {}, batch = {}}\n"
    "end}\n";

static void put_rps(struct world *w, const char *label, const char *a, const char *b, double va,
                    double vb)
{
    const char *names[] = {label, "code"};
    const char *first[] = {a, "200"};
    const char *second[] = {b, "500"};
    struct swp_sample samples[] = {{names, first, 2, va}, {names, second, 2, vb}};
    sw_metric_set_put(&w->metrics, "rps", w->in.now_ms, samples, 2);
}

SW_TEST(sum_by_reuses_keys_only_for_the_same_series)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("sums.lua", sum_by_policy, NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    /* world_init's rps: eu-west 10 + 2, us-east 5, one sample without a region. */
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    cJSON *s = state_of(p);
    SW_ASSERT_NEAR(num_at(s, "r.eu-west"), -1, 1e-12); /* the policy's change */
    SW_ASSERT_NEAR(num_at(s, "r.us-east"), 5, 1e-12);
    SW_ASSERT_NEAR(num_at(s, "r2.eu-west"), 12, 1e-12); /* not the changed table */
    SW_ASSERT(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "r2"), "extra") == NULL);
    SW_ASSERT_NEAR(num_at(s, "c.200"), 16, 1e-12);
    cJSON_Delete(s);

    put_rps(&w, "region", "eu-west", "us-east", 1.5, 2.5); /* new series */
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    s = state_of(p);
    SW_ASSERT_NEAR(num_at(s, "r2.eu-west"), 1.5, 1e-12);
    SW_ASSERT_NEAR(num_at(s, "r.us-east"), 2.5, 1e-12);
    SW_ASSERT(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "r"), "") == NULL);
    SW_ASSERT_NEAR(num_at(s, "c.500"), 2.5, 1e-12);
    cJSON_Delete(s);

    put_rps(&w, "region", "eu-west", "us-east", 7, 8); /* same series, new values */
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    s = state_of(p);
    SW_ASSERT_NEAR(num_at(s, "r2.eu-west"), 7, 1e-12);
    SW_ASSERT_NEAR(num_at(s, "r2.us-east"), 8, 1e-12);
    SW_ASSERT_NEAR(num_at(s, "c.200"), 7, 1e-12);
    cJSON_Delete(s);

    put_rps(&w, "region", "as-east", "as-east", 3, 4); /* same count, other label values */
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    s = state_of(p);
    SW_ASSERT_NEAR(num_at(s, "r2.as-east"), 7, 1e-12);
    SW_ASSERT(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "r2"), "eu-west") == NULL);
    cJSON_Delete(s);

    put_rps(&w, "zone", "as-east", "as-east", 3, 4); /* the label is gone: all under "" */
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    s = state_of(p);
    SW_ASSERT_NEAR(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "r2"), "")->valuedouble, 7, 1e-12);
    SW_ASSERT(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "r2"), "as-east") == NULL);
    cJSON_Delete(s);

    sw_metric_set_put_error(&w.metrics, "rps", w.in.now_ms, SW_ETIMEDOUT, "timeout");
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    s = state_of(p);
    SW_ASSERT_STREQ(str_at(s, "err"), "metric 'rps': timeout");
    cJSON_Delete(s);

    put_rps(&w, "region", "eu-west", "us-east", 1, 1);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    s = state_of(p);
    SW_ASSERT_NEAR(num_at(s, "r2.eu-west"), 1, 1e-12);
    SW_ASSERT_STREQ(str_at(s, "err"), "none");
    cJSON_Delete(s);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

/* ctx.offers is reused while the offers' names serial says the names are the same:
 * new prices show, and new names at the same count show too. */
static const char offers_policy[] =
    "return {name = 'offers', interval = '10s', evaluate = function(ctx)\n"
    "  ctx.state.p, ctx.state.r = ctx.offers[1].provider, ctx.offers[1].region\n"
    "  ctx.state.price = ctx.offers[1].price_usd_hour\n"
    "  return {web = {}, batch = {}}\n"
    "end}\n";

SW_TEST(ctx_offers_follow_names_and_prices)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("offers.lua", offers_policy, NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    cJSON *s = state_of(p);
    SW_ASSERT_STREQ(str_at(s, "p"), "p1");
    cJSON_Delete(s);
    struct swp_offer o[3] = {{.provider = "p1", .region = "us-east", .price_usd_hour = 2.5},
                             {.provider = "p2", .region = "eu-west", .price_usd_hour = 0.6},
                             {.provider = "p3", .region = "eu-west", .price_usd_hour = 0.4}};
    uint64_t serial = w.offers.names_serial;
    sw_offers_replace(&w.offers, o, 3);
    SW_ASSERT_EQ(w.offers.names_serial, serial); /* prices only */
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    s = state_of(p);
    SW_ASSERT_NEAR(num_at(s, "price"), 2.5, 1e-12);
    cJSON_Delete(s);
    o[0].provider = "p9";
    o[0].region = "as-east";
    sw_offers_replace(&w.offers, o, 3);
    SW_ASSERT(w.offers.names_serial != serial);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    s = state_of(p);
    SW_ASSERT_STREQ(str_at(s, "p"), "p9");
    SW_ASSERT_STREQ(str_at(s, "r"), "as-east");
    cJSON_Delete(s);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(ctx_contents)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p =
        load("inspect.lua", ctx_policy, "{\"nested\":{\"list\":[1,2.5,3]}}", NULL, 1);
    SW_ASSERT(p != NULL);
    SW_ASSERT_STREQ(sw_policy_name(p), "inspect.lua"); /* the config's name wins */
    SW_ASSERT_EQ(sw_policy_interval_ms(p), 15000);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    int rc = sw_policy_eval(p, &w.in, &out, &err);
    if (rc != 0)
        fprintf(stderr, "    %s\n", sw_policy_last_error(p));
    SW_ASSERT_EQ(rc, 0);
    SW_ASSERT_EQ(out.desired.count, 2);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "eu-west"), 2);
    SW_ASSERT(sw_desired_has(&out.desired, "web", "us-east"));
    SW_ASSERT(out.memory_bytes > 0);

    cJSON *s = state_of(p);
    SW_ASSERT(s != NULL);
    SW_ASSERT_NEAR(num_at(s, "now"), 1700000000.5, 1e-6);
    SW_ASSERT_NEAR(num_at(s, "now_ms"), 1700000000500.0, 0.5);
    SW_ASSERT_NEAR(num_at(s, "param"), 2.5, 1e-12);
    SW_ASSERT_EQ(num_at(s, "param_count"), 3);
    SW_ASSERT_EQ(num_at(s, "params_copy.nested.list.2"), 3); /* a proxy stores as its data */
    SW_ASSERT_STREQ(str_at(s, "groups.web.name"), "web");
    SW_ASSERT_EQ(num_at(s, "groups.web.min"), 1);
    SW_ASSERT_EQ(num_at(s, "groups.web.max"), 8);
    SW_ASSERT_EQ(num_at(s, "groups.web.regions"), 2);
    SW_ASSERT_STREQ(str_at(s, "groups.web.region1"), "eu-west");
    SW_ASSERT_NEAR(num_at(s, "groups.web.cap"), 1.5, 1e-12);
    SW_ASSERT_EQ(num_at(s, "groups.web.up"), 30);
    SW_ASSERT_EQ(num_at(s, "groups.web.down"), 300);
    SW_ASSERT_EQ(num_at(s, "groups.batch.regions"), 0);
    /* Closed units are not leases. */
    SW_ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(s, "leases")), 4);
    SW_ASSERT_STREQ(str_at(s, "leases.0.key"), "k-ready");
    SW_ASSERT_STREQ(str_at(s, "leases.0.state"), "ready");
    SW_ASSERT_EQ(num_at(s, "leases.0.ready"), 1);
    SW_ASSERT_EQ(num_at(s, "leases.0.pending"), 0);
    SW_ASSERT_EQ(num_at(s, "leases.0.healthy"), 1);
    SW_ASSERT_NEAR(num_at(s, "leases.0.age"), 60, 1e-9);
    SW_ASSERT_EQ(num_at(s, "leases.0.uris"), 2);
    SW_ASSERT_STREQ(str_at(s, "leases.0.uri"), "https://a.example");
    SW_ASSERT_STREQ(str_at(s, "leases.0.provider"), "prov1");
    SW_ASSERT_STREQ(str_at(s, "leases.0.market_id"), "m-k-ready");
    SW_ASSERT_NEAR(num_at(s, "leases.0.price"), 0.5, 1e-12);
    SW_ASSERT_STREQ(str_at(s, "leases.0.group"), "web");
    SW_ASSERT_STREQ(str_at(s, "leases.1.state"), "ordered");
    SW_ASSERT_EQ(num_at(s, "leases.1.pending"), 1);
    SW_ASSERT_STREQ(str_at(s, "leases.1.market_id"), "none");
    SW_ASSERT_STREQ(str_at(s, "leases.1.provider"), "none");
    SW_ASSERT_EQ(num_at(s, "leases.1.uris"), 0);
    SW_ASSERT_EQ(num_at(s, "leases.2.healthy"), 0);
    SW_ASSERT_STREQ(str_at(s, "leases.3.state"), "releasing");
    SW_ASSERT_EQ(num_at(s, "leases.3.ready"), 0);
    SW_ASSERT_EQ(num_at(s, "leases.3.pending"), 0);
    /* capacity: pending + ready, healthy, not releasing/closed. */
    SW_ASSERT_EQ(num_at(s, "cap_web"), 2);
    SW_ASSERT_EQ(num_at(s, "cap_eu"), 2);
    SW_ASSERT_EQ(num_at(s, "cap_us"), 0);
    SW_ASSERT_EQ(num_at(s, "cap_batch"), 0);
    SW_ASSERT_EQ(num_at(s, "ready_web"), 1);
    SW_ASSERT_EQ(num_at(s, "ready_us"), 0);
    SW_ASSERT_EQ(num_at(s, "offers"), 3);
    SW_ASSERT_STREQ(str_at(s, "offer1.0"), "p1");
    SW_ASSERT_STREQ(str_at(s, "offer1.1"), "us-east");
    SW_ASSERT_NEAR(num_at(s, "offer1.2"), 0.9, 1e-12);
    SW_ASSERT_EQ(num_at(s, "offer1.3"), 1);
    SW_ASSERT_NEAR(num_at(s, "price_eu"), 0.4, 1e-12);
    SW_ASSERT_EQ(num_at(s, "price_mars_nil"), 1);
    SW_ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(s, "regions")), 2);
    SW_ASSERT_STREQ(str_at(s, "regions.0"), "eu-west");
    SW_ASSERT_STREQ(str_at(s, "regions.1"), "us-east");
    SW_ASSERT_EQ(num_at(s, "budget.0"), 10);
    SW_ASSERT_NEAR(num_at(s, "budget.1"), 1.7, 1e-9);
    SW_ASSERT_EQ(num_at(s, "rps_n"), 4);
    SW_ASSERT_EQ(num_at(s, "rps1"), 10);
    SW_ASSERT_STREQ(str_at(s, "rps1_region"), "eu-west");
    SW_ASSERT_EQ(num_at(s, "sum.eu-west"), 12);
    SW_ASSERT_EQ(num_at(s, "sum.us-east"), 5);
    SW_ASSERT_EQ(num_at(s, ""), -12345);
    cJSON *sum = cJSON_GetObjectItem(s, "sum");
    SW_ASSERT_EQ(num_at(sum, ""), -12345);
    SW_ASSERT(cJSON_GetObjectItemCaseSensitive(sum, "") != NULL); /* unlabeled sample */
    SW_ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(sum, "")->valuedouble, 1);
    cJSON_Delete(s);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

/* ctx.capacity, ctx.ready and ctx.price answer from tables built once per call: they must
 * agree with a scan of the input (other groups, units without a region, unhealthy and
 * releasing units), and be rebuilt when the next call's input differs. The result is the
 * same object each call, as the runtime passes it. */
SW_TEST(ctx_counts_and_prices_follow_the_input)
{
    struct world w;
    world_init(&w);
    struct sw_unit *batch = sw_unit_new("k-batch", "batch", "eu-west");
    batch->state = SW_UNIT_READY;
    sw_units_add(&w.units, batch);
    struct sw_unit *nowhere = sw_unit_new("k-nowhere", "web", "x");
    nowhere->region = NULL; /* interned (model.h): not freed */
    nowhere->state = SW_UNIT_LEASED;
    sw_units_add(&w.units, nowhere);
    struct sw_policy *p =
        load("counts.lua",
             "return {evaluate = function(ctx)\n"
             "  local s = ctx.state\n"
             "  s.c = {ctx.capacity('web', 'eu-west'), ctx.capacity('web'),\n"
             "         ctx.capacity('batch'), ctx.capacity('web', 'us-east'),\n"
             "         ctx.ready('web', 'eu-west'), ctx.ready('batch', 'eu-west'),\n"
             "         ctx.ready('web'), ctx.capacity('nope', 'eu-west')}\n"
             "  s.p = {ctx.price('eu-west') or -1, ctx.price('us-east') or -1,\n"
             "         ctx.price('mars') or -1}\n"
             "  return {web = {['eu-west'] = 1}}\n"
             "end}\n",
             NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    cJSON *s = state_of(p);
    /* web: k-ready + k-ordered in eu-west (k-sick unhealthy, k-releasing and k-closed do not
     * count), + k-nowhere for the whole group. */
    SW_ASSERT_EQ(num_at(s, "c.0"), 2);
    SW_ASSERT_EQ(num_at(s, "c.1"), 3);
    SW_ASSERT_EQ(num_at(s, "c.2"), 1);
    SW_ASSERT_EQ(num_at(s, "c.3"), 0);
    SW_ASSERT_EQ(num_at(s, "c.4"), 1);
    SW_ASSERT_EQ(num_at(s, "c.5"), 1);
    SW_ASSERT_EQ(num_at(s, "c.6"), 1);
    SW_ASSERT_EQ(num_at(s, "c.7"), 0);
    SW_ASSERT_NEAR(num_at(s, "p.0"), 0.4, 1e-12);
    SW_ASSERT_NEAR(num_at(s, "p.1"), 0.9, 1e-12);
    SW_ASSERT_EQ(num_at(s, "p.2"), -1);
    /* The same as scanning the units. */
    SW_ASSERT_EQ(num_at(s, "c.0"), sw_units_count_capacity(&w.units, "web", "eu-west"));
    SW_ASSERT_EQ(num_at(s, "c.1"), sw_units_count_capacity(&w.units, "web", NULL));
    SW_ASSERT_EQ(num_at(s, "c.2"), sw_units_count_capacity(&w.units, "batch", NULL));
    cJSON_Delete(s);

    /* The next call sees another world: one more ready unit in us-east, a cheaper offer. */
    add_unit(&w, "k-new", "us-east", SW_UNIT_READY, false, 0.3, 1700000000000);
    sw_offers_add(&w.offers, "p4", "us-east", 0.2, false);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    s = state_of(p);
    SW_ASSERT_EQ(num_at(s, "c.1"), 4);
    SW_ASSERT_EQ(num_at(s, "c.3"), 1);
    SW_ASSERT_EQ(num_at(s, "c.6"), 2);
    SW_ASSERT_NEAR(num_at(s, "p.1"), 0.2, 1e-12);
    cJSON_Delete(s);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(ctx_is_fresh_each_call)
{
    /* Leases, offers and groups are reused between calls only while the input is equal:
     * every change shows up in the next call, and age_s follows now. */
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("fresh.lua",
                               "return {evaluate = function(ctx)\n"
                               "  local l = ctx.leases[1]\n"
                               "  return {web = {n = #ctx.leases, t = ctx.now_ms % 1000,\n"
                               "    age = l and math.floor(l.age_s) or 0,\n"
                               "    ready = l and l.ready and 1 or 0,\n"
                               "    price = math.floor(ctx.offers[1] and\n"
                               "      ctx.offers[1].price_usd_hour * 100 or 0),\n"
                               "    max = ctx.groups.web.max}}\n"
                               "end}\n",
                               NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "n"), 4);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "t"), 500);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "age"), 60);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "ready"), 1);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "price"), 90);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "max"), 8);
    /* Same input, later: cached tables, new age. */
    w.in.now_ms += 10000;
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "age"), 70);
    /* Changes in place, same counts. */
    w.units.items[0]->state = SW_UNIT_RELEASING;
    w.offers.items[0].price_usd_hour = 0.25;
    groups[0].max = 7;
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    groups[0].max = 8;
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "ready"), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "price"), 25);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "max"), 7);
    w.in.now_ms -= 10000;
    sw_units_remove_at(&w.units, 0);
    w.in.now_ms += 250;
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "n"), 3);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "t"), 750);
    /* Empty input: no units, offers or metrics at all. */
    struct sw_policy_input empty = {.now_ms = 1, .groups = groups, .group_count = 2};
    SW_ASSERT_EQ(sw_policy_eval(p, &empty, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "n"), 0);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(state_persists_across_evaluations_and_restarts)
{
    struct world w;
    world_init(&w);
    const char *text = "return {evaluate = function(ctx)\n"
                       "  ctx.state.n = (ctx.state.n or 0) + 1\n"
                       "  ctx.state.hist = ctx.state.hist or {}\n"
                       "  table.insert(ctx.state.hist, ctx.state.n * 10)\n"
                       "  ctx.state.nested = {flag = true, name = 'x', ratio = 0.25}\n"
                       "  return {web = {eu = ctx.state.n}}\n"
                       "end}\n";
    struct sw_policy *p = load("counter.lua", text, NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    SW_ASSERT(sw_policy_state_json(p) == NULL); /* empty */
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    for (int i = 1; i <= 3; i++) {
        SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
        SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "eu"), i);
    }
    char *json = sw_policy_state_json(p);
    SW_ASSERT_STREQ(json, "{\"hist\":[10,20,30],\"n\":3,\"nested\":{\"flag\":true,"
                          "\"name\":\"x\",\"ratio\":0.25}}");
    sw_policy_free(p);

    /* A new process: the runtime restores the saved state. */
    p = load("counter.lua", text, NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    SW_ASSERT_EQ(sw_policy_state_load(p, json), 0);
    free(json);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "eu"), 4);
    json = sw_policy_state_json(p);
    SW_ASSERT_CONTAINS(json, "\"hist\":[10,20,30,40]");
    free(json);
    SW_ASSERT_EQ(sw_policy_state_load(p, "{not json"), SW_EINVAL);
    SW_ASSERT_EQ(sw_policy_state_load(p, "42"), SW_EINVAL);
    /* A failed load leaves the state alone. */
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "eu"), 5);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

/* ctx.capacity's counts are reused while the units are the same, and only then:
 * a unit changing state or health between calls changes the answer. */
SW_TEST(ctx_counts_follow_unit_state_changes)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("counts_state.lua",
                               "return {evaluate = function(ctx)\n"
                               "  ctx.state.c = {ctx.capacity('web', 'eu-west'), "
                               "ctx.ready('web', 'eu-west'), ctx.capacity('web')}\n"
                               "  return {web = {['eu-west'] = 1}}\n"
                               "end}\n",
                               NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    cJSON *s = state_of(p);
    int cap = (int)num_at(s, "c.0"), ready = (int)num_at(s, "c.1"), all = (int)num_at(s, "c.2");
    SW_ASSERT_EQ(cap, sw_units_count_capacity(&w.units, "web", "eu-west"));
    cJSON_Delete(s);
    struct sw_unit *u = sw_units_find_key(&w.units, "k-ready");
    SW_ASSERT(u != NULL);
    u->unhealthy = true; /* same units, one now sick */
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    s = state_of(p);
    SW_ASSERT_EQ(num_at(s, "c.0"), cap - 1);
    SW_ASSERT_EQ(num_at(s, "c.1"), ready - 1);
    SW_ASSERT_EQ(num_at(s, "c.2"), all - 1);
    cJSON_Delete(s);
    u->unhealthy = false;
    u->state = SW_UNIT_RELEASING; /* same units, one now going */
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    s = state_of(p);
    SW_ASSERT_EQ(num_at(s, "c.0"), cap - 1);
    SW_ASSERT_EQ(num_at(s, "c.0"), sw_units_count_capacity(&w.units, "web", "eu-west"));
    cJSON_Delete(s);
    u->state = SW_UNIT_READY;
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    s = state_of(p);
    SW_ASSERT_EQ(num_at(s, "c.0"), cap);
    SW_ASSERT_EQ(num_at(s, "c.1"), ready);
    cJSON_Delete(s);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

/* the desired state is right whatever strings name it: the same table, new strings
 * with the same text, names longer than Lua interns, and after a reload. */
SW_TEST(desired_follows_names_across_calls)
{
    struct world w;
    world_init(&w);
    const char *text = "local n = 0\n"
                       "local long = string.rep('r', 50)\n"
                       "local same = {web = {['eu-west'] = 1, ['us-east'] = 2}}\n"
                       "return {evaluate = function(ctx)\n"
                       "  n = n + 1\n"
                       "  if n == 1 then return same end\n"
                       "  if n == 2 then same.web['eu-west'] = 3 return same end\n"
                       "  if n == 3 then return {web = {[string.format('eu-%s', 'west')] = 4,\n"
                       "                               [('us-') .. 'east'] = 5}} end\n"
                       "  if n == 4 then return {web = {[long] = 6, ['us-east'] = 7}} end\n"
                       "  if n == 5 then return {web = {[string.rep('r', 50)] = 8, "
                       "['us-east'] = 9}} end\n"
                       "  return {web = {['us-east'] = n}}\n"
                       "end}\n";
    struct sw_policy *p = load("names.lua", text, NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    char long_name[51];
    memset(long_name, 'r', 50);
    long_name[50] = '\0';
    const struct {
        const char *region;
        int count;
        const char *other;
        int other_count;
        size_t entries;
    } expect[] = {
        {"eu-west", 1, "us-east", 2, 2}, {"eu-west", 3, "us-east", 2, 2},
        {"eu-west", 4, "us-east", 5, 2}, {long_name, 6, "us-east", 7, 2},
        {long_name, 8, "us-east", 9, 2}, {"us-east", 6, "us-east", 6, 1},
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(expect); i++) {
        SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
        SW_ASSERT_EQ(out.desired.count, expect[i].entries);
        SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", expect[i].region), expect[i].count);
        SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", expect[i].other), expect[i].other_count);
    }
    /* A reload starts a new Lua state: the first tick's table again, counted afresh. */
    write_file("names.lua", "return {evaluate = function(ctx)\n"
                            "  return {web = {['eu-west'] = 11, ['us-east'] = 12}}\n"
                            "end}\n");
    SW_ASSERT_EQ(sw_policy_reload(p, &err), 0);
    for (int i = 0; i < 2; i++) {
        SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
        SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "eu-west"), 11);
        SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "us-east"), 12);
    }
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

/* Counts given as floats (what `x // 1` returns) are read as the integers they equal, at
 * the edges of the range too; other numbers get lua_tointegerx's verdict and message. */
SW_TEST(desired_counts_as_floats)
{
    struct world w;
    world_init(&w);
    const struct {
        const char *eu_west, *us_east; /* Lua expressions */
        int eu, us;
        const char *error; /* NULL: accepted */
    } cases[] = {
        {"3.0", "7 // 2.0", 3, 3, NULL},
        {"10000.0", "7", 10000, 7, NULL},
        {"-0.0", "1.0", 0, 1, NULL},
        {"2.5", "1", 0, 0, "desired.web[\"eu-west\"]: expected integer >= 0, got 2.5"},
        {"1", "10001.0", 0, 0, "desired.web[\"us-east\"]: expected integer <= 10000, got 10001"},
        {"1", "-2.0", 0, 0, "desired.web[\"us-east\"]: expected integer >= 0, got -2"},
        {"1e300", "1", 0, 0, "desired.web[\"eu-west\"]: expected integer >= 0, got 1e+300"},
        {"0/0", "1", 0, 0, "desired.web[\"eu-west\"]: expected integer >= 0, got -nan"},
        {"1", "math.huge", 0, 0, "desired.web[\"us-east\"]: expected integer >= 0, got inf"},
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(cases); i++) {
        char code[512];
        snprintf(code, sizeof(code),
                 "return {evaluate = function(ctx)\n"
                 "  return {web = {['eu-west'] = %s, ['us-east'] = %s}}\n"
                 "end}\n",
                 cases[i].eu_west, cases[i].us_east);
        char name[32];
        snprintf(name, sizeof(name), "floats%zu.lua", i);
        struct sw_policy *p = load(name, code, NULL, NULL, 1);
        SW_ASSERT(p != NULL);
        struct sw_policy_result out;
        sw_policy_result_init(&out);
        struct sw_error err = {0};
        int rc = sw_policy_eval(p, &w.in, &out, &err);
        if (cases[i].error == NULL) {
            SW_ASSERT_EQ(rc, 0);
            SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "eu-west"), cases[i].eu);
            SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "us-east"), cases[i].us);
        } else {
            SW_ASSERT_EQ(rc, SW_EPOLICY);
            SW_ASSERT_STREQ(err.msg, cases[i].error);
        }
        sw_policy_result_clear(&out);
        sw_policy_free(p);
    }
    world_free(&w);
}

/* A policy whose evaluate runs `code` (only when params.bad is set, if `guarded`) and asks
 * for one unit: the ctx.state checks below vary only the code. */
static struct sw_policy *load_state_code(const char *name, const char *code, bool guarded,
                                         const char *params)
{
    char text[512];
    snprintf(text, sizeof(text),
             "return {evaluate = function(ctx)\n"
             "  %s%s%s\n"
             "  return {web = {eu = 1}}\n"
             "end}\n",
             guarded ? "if ctx.params.bad then " : "", code, guarded ? " end" : "");
    return load(name, text, params, NULL, 1);
}

/* The check after each call passes what can be stored, and only that, whatever shape
 * takes it to the edge: numbers either side of 2^53, a float beyond it, sizes just under
 * and over the limit (integers count 20 bytes, floats 24), metatables, a read-only ctx
 * table, a table reached twice, sparse arrays, the deepest nesting allowed. Each verdict
 * is the stored JSON's: eval and state_save agree. */
SW_TEST(state_check_agrees_with_the_stored_json)
{
    struct world w;
    world_init(&w);
    struct {
        const char *code;
        const char *expect; /* NULL: storable */
    } cases[] = {
        {"ctx.state.i = math.tointeger(2^53)", NULL},
        {"ctx.state.i = -math.tointeger(2^53)", NULL},
        {"ctx.state.i = math.tointeger(2^53) + 2", "is too large to store exactly"},
        {"ctx.state.i = -math.tointeger(2^53) - 2", "is too large to store exactly"},
        {"ctx.state.f = 1e300", NULL},
        {"ctx.state.f = -1e300", NULL},
        {"ctx.state.f = 1/0", "NaN or an infinite number"},
        /* 2 + 12000 * 20 bytes of integers: within the limit as integers, not as floats. */
        {"local t = {} for i = 1, 12000 do t[i] = i end ctx.state.a = t", NULL},
        {"local t = {} for i = 1, 14000 do t[i] = i end ctx.state.a = t", "larger than"},
        {"local t = {} for i = 1, 12000 do t[i] = i + 0.5 end ctx.state.a = t", "larger than"},
        {"ctx.state.s = setmetatable({x = 1}, {__index = function() return 2 end})", NULL},
        {"ctx.state.p = ctx.params", NULL},
        {"local t = {1, 2} ctx.state.a, ctx.state.b = t, {t, t}", NULL},
        {"ctx.state.h = {[1] = 'a', [5] = 'e'}", NULL},
        {"ctx.state.deep = {} local t = ctx.state.deep for i = 1, 30 do t.x = {} t = t.x end",
         NULL},
        {"ctx.state.deep = {} local t = ctx.state.deep for i = 1, 31 do t.x = {} t = t.x end",
         "nested deeper than 32 levels"},
        {"ctx.state.z = {a = 1, [2.5] = 1}", "key 2.5 cannot be stored"},
        {"ctx.state.z = {a = 1, [0] = 1}", "key 0 cannot be stored"},
        {"ctx.state.z = {1, 2, nil, 4, x = {y = 'a\\0'}}", "a table mixing"},
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(cases); i++) {
        struct sw_policy *p =
            load_state_code("state_edge.lua", cases[i].code, false, "{\"k\":{\"v\":[1,2]}}");
        SW_ASSERT(p != NULL);
        struct sw_policy_result out;
        sw_policy_result_init(&out);
        struct sw_error err = {0};
        int rc = sw_policy_eval(p, &w.in, &out, &err);
        char *json = NULL;
        struct sw_error save_err = {0};
        int save_rc = sw_policy_state_save(p, &json, &save_err);
        if (cases[i].expect == NULL) {
            SW_ASSERT_EQ(rc, 0);
            SW_ASSERT_EQ(save_rc, 0);
            SW_ASSERT(json != NULL);
        } else {
            SW_ASSERT_EQ(rc, SW_EPOLICY);
            SW_ASSERT_CONTAINS(err.msg, cases[i].expect);
            SW_ASSERT(save_rc < 0);
            SW_ASSERT_CONTAINS(save_err.msg, cases[i].expect);
        }
        free(json);
        sw_policy_result_clear(&out);
        sw_policy_free(p);
    }
    world_free(&w);
}

/* ctx.capacity and ctx.ready answer for the text, however the policy comes by its strings:
 * literals kept across ticks, strings built anew, more pairs than the per-string memo
 * holds, numbers and nil for the region; and the answers follow the units. */
SW_TEST(ctx_capacity_by_any_string)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p =
        load("counts_strings.lua",
             "local eu = 'eu-west'\n"
             "return {evaluate = function(ctx)\n"
             "  local r = {ctx.capacity('web', eu), ctx.ready('web', eu),\n"
             "             ctx.capacity('web', 'eu' .. '-' .. 'west'), ctx.capacity('web'),\n"
             "             ctx.capacity('web', nil), ctx.capacity('web', 'us-east'),\n"
             "             ctx.capacity('batch', eu), ctx.capacity('web', 7),\n"
             "             ctx.capacity(string.rep('w', 60), eu)}\n"
             "  for i = 1, 100 do r[#r + 1] = ctx.capacity('web', 'x' .. i) end\n"
             "  r[#r + 1] = ctx.capacity('web', eu)\n"
             "  r[#r + 1] = ctx.ready('web', 'eu-west')\n"
             "  ctx.state.r = r\n"
             "  return {web = {['eu-west'] = 1}}\n"
             "end}\n",
             NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    for (int round = 0; round < 3; round++) {
        if (round == 1) {
            struct sw_unit *u = sw_units_find_key(&w.units, "k-ordered");
            SW_ASSERT(u != NULL);
            u->state = SW_UNIT_READY; /* capacity stays, ready grows */
        } else if (round == 2) {
            add_unit(&w, "k-new", "eu-west", SW_UNIT_READY, false, 0.5, w.in.now_ms);
        }
        int cap = sw_units_count_capacity(&w.units, "web", "eu-west");
        int all = sw_units_count_capacity(&w.units, "web", NULL);
        int ready = 0;
        for (size_t i = 0; i < w.units.count; i++) {
            const struct sw_unit *u = w.units.items[i];
            ready += u->state == SW_UNIT_READY && !u->unhealthy &&
                     strcmp(u->region, "eu-west") == 0;
        }
        SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
        cJSON *s = state_of(p);
        SW_ASSERT_EQ(num_at(s, "r.0"), cap);
        SW_ASSERT_EQ(num_at(s, "r.1"), ready);
        SW_ASSERT_EQ(num_at(s, "r.2"), cap);
        SW_ASSERT_EQ(num_at(s, "r.3"), all);
        SW_ASSERT_EQ(num_at(s, "r.4"), all);
        SW_ASSERT_EQ(num_at(s, "r.5"), sw_units_count_capacity(&w.units, "web", "us-east"));
        SW_ASSERT_EQ(num_at(s, "r.6"), 0);
        SW_ASSERT_EQ(num_at(s, "r.7"), 0);
        SW_ASSERT_EQ(num_at(s, "r.8"), 0);
        SW_ASSERT_EQ(num_at(s, "r.9"), 0);
        SW_ASSERT_EQ(num_at(s, "r.109"), cap);
        SW_ASSERT_EQ(num_at(s, "r.110"), ready);
        cJSON_Delete(s);
    }
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(state_holds_plain_data_only)
{
    struct world w;
    world_init(&w);
    struct {
        const char *code;
        const char *expect;
    } cases[] = {
        {"ctx.state.f = print", "ctx.state.f: a function value cannot be stored"},
        {"ctx.state.a = {} ctx.state.a.b = ctx.state.a", "ctx.state.a.b: cycle"},
        {"ctx.state.m = {1, x = 2}", "ctx.state.m: a table mixing string and integer keys"},
        {"ctx.state.n = 0/0", "ctx.state.n: NaN or an infinite number cannot be stored"},
        {"ctx.state.k = {[true] = 1}", "ctx.state.k: key boolean cannot be stored"},
        /* A bad key is reported before a bad value, whichever lua_next visits first. */
        {"ctx.state.z = {a = print, [true] = 1}", "ctx.state.z: key boolean cannot be stored"},
        {"ctx.state.z = {a = print, [2] = 1}", "ctx.state.z: a table mixing string and integer"},
        {"ctx.state.z = {a = print, ['b\\0c'] = 1}", "ctx.state.z: a key with NUL bytes"},
        {"ctx.state.z = {y = {x = print}}", "ctx.state.z.y.x: a function value cannot be stored"},
        {"ctx.state.c = coroutine.create(print)", "ctx.state.c: a thread value cannot be stored"},
        {"ctx.state.big = string.rep('x', 300 * 1024)", "larger than the 262144-byte limit"},
        {"ctx.state.h = {[1] = 1, [1e9] = 2}", "larger than the 262144-byte limit"},
        {"ctx.state['a\\0b'] = 1", "ctx.state: a key with NUL bytes cannot be stored"},
        {"ctx.state.s = 'a\\0b'", "ctx.state.s: a string with NUL bytes cannot be stored"},
        {"ctx.state.i = math.maxinteger", "is too large to store exactly"},
        {"ctx.state.deep = {} local t = ctx.state.deep for i = 1, 40 do t.x = {} t = t.x end",
         "nested deeper than 32 levels"},
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(cases); i++) {
        struct sw_policy *p = load_state_code("state_bad.lua", cases[i].code, true, "{\"bad\":true}");
        SW_ASSERT(p != NULL);
        struct sw_policy_result out;
        sw_policy_result_init(&out);
        struct sw_error err = {0};
        SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), SW_EPOLICY);
        SW_ASSERT_CONTAINS(err.msg, cases[i].expect);
        SW_ASSERT_EQ(sw_policy_error_count(p), 1);
        char *json = (char *)1;
        SW_ASSERT(sw_policy_state_save(p, &json, &err) < 0);
        SW_ASSERT(json == NULL);
        SW_ASSERT_CONTAINS(err.msg, cases[i].expect);
        SW_ASSERT(sw_policy_state_json(p) == NULL);
        sw_policy_result_clear(&out);
        sw_policy_free(p);
    }
    /* Sparse integer keys round-trip as holes. */
    struct sw_policy *p = load("sparse.lua",
                               "return {evaluate = function(ctx)\n"
                               "  if ctx.state.t == nil then ctx.state.t = {[1] = 'a', [3] = 'c'} "
                               "end\n"
                               "  return {web = {n = #ctx.state.t, hole = ctx.state.t[2] == nil "
                               "and 1 or 0}}\n"
                               "end}\n",
                               NULL, NULL, 1);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    char *json = sw_policy_state_json(p);
    SW_ASSERT_STREQ(json, "{\"t\":[\"a\",null,\"c\"]}");
    SW_ASSERT_EQ(sw_policy_state_load(p, json), 0);
    free(json);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "hole"), 1);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(explain_recorded)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("explain.lua",
                               "return {evaluate = function(ctx)\n"
                               "  ctx.explain('web', 'eu-west', 'p95 latency 180 ms > 120 ms')\n"
                               "  ctx.explain('web', nil, 'whole group')\n"
                               "  if ctx.params.fail then error('late failure') end\n"
                               "  return {web = {['eu-west'] = 3}}\n"
                               "end}\n",
                               NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(out.explanation_count, 2);
    SW_ASSERT_STREQ(out.explanations[0].group, "web");
    SW_ASSERT_STREQ(out.explanations[0].region, "eu-west");
    SW_ASSERT_STREQ(out.explanations[0].text, "p95 latency 180 ms > 120 ms");
    SW_ASSERT(out.explanations[1].region == NULL);
    SW_ASSERT_STREQ(out.explanations[1].text, "whole group");
    /* The next call starts with none. */
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(out.explanation_count, 2);
    sw_policy_result_clear(&out);
    SW_ASSERT_EQ(out.explanation_count, 0);
    sw_policy_free(p);

    /* A failed call reports no explanations. */
    p = load("explain.lua",
             "return {evaluate = function(ctx)\n"
             "  ctx.explain('web', 'eu-west', 'x')\n"
             "  error('late failure')\n"
             "end}\n",
             NULL, NULL, 1);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), SW_EPOLICY);
    SW_ASSERT_EQ(out.explanation_count, 0);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(explanations_are_bounded)
{
    struct world w;
    world_init(&w);
    log_buf[0] = '\0';
    struct sw_policy *p = load("chatty.lua",
                               "return {evaluate = function(ctx)\n"
                               "  for i = 1, 300 do ctx.explain('web', nil, string.rep('x', 2000)) "
                               "end\n"
                               "  return {}\n"
                               "end}\n",
                               NULL, NULL, 1);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(out.explanation_count, 256);
    SW_ASSERT_EQ(strlen(out.explanations[0].text), 1024);
    SW_ASSERT_CONTAINS(log_buf, "more than 256 explanations");
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(result_reports_instructions_and_memory)
{
    struct world w;
    world_init(&w);
    static const char busy[] = "return {evaluate = function(ctx)\n"
                               "  local n = 0 for i = 1, ctx.params.loops do n = n + i end\n"
                               "  return {}\n"
                               "end}\n";
    struct sw_policy *p = load("busy.lua", busy, "{\"loops\":200000}", NULL, 1);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    /* No instruction budget: nothing counts them, and the result says 0, not a guess. */
    SW_ASSERT_EQ(out.instructions, 0);
    SW_ASSERT(out.memory_bytes > 10000);
    SW_ASSERT(out.memory_bytes < 1000000);
    sw_policy_free(p);
    /* With one (strict mode) the hook counts them. */
    struct sw_policy_opts opts = {
        .name = "busy.lua",
        .file = write_file("busy.lua", busy),
        .lua_path = SW_SOURCE_DIR "/lua",
        .params_json = "{\"loops\":200000}",
        .seed = 1,
        .max_instructions = 10000000,
        .log_fn = capture_log,
    };
    p = sw_policy_new(&opts, &err);
    SW_ASSERT(p != NULL);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    /* The loop body is 2 VM instructions per iteration: about 400 thousands. */
    SW_ASSERT(out.instructions >= 300);
    SW_ASSERT(out.instructions <= 1000);
    SW_ASSERT(out.memory_bytes > 10000);
    SW_ASSERT(out.memory_bytes < 1000000);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(metrics_errors_surface_as_nil_and_message)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("metrics.lua",
                               "return {evaluate = function(ctx)\n"
                               "  local v, e = ctx.metrics.query('latency')\n"
                               "  ctx.state.lat_nil, ctx.state.lat_err = v == nil, e\n"
                               "  v, e = ctx.metrics.query('nope')\n"
                               "  ctx.state.nope_nil, ctx.state.nope_err = v == nil, e\n"
                               "  v, e = ctx.metrics.sum_by('latency', 'region')\n"
                               "  ctx.state.sum_nil, ctx.state.sum_err = v == nil, e\n"
                               "  return {}\n"
                               "end}\n",
                               NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    cJSON *s = state_of(p);
    SW_ASSERT_EQ(num_at(s, "lat_nil"), 1);
    SW_ASSERT_STREQ(str_at(s, "lat_err"), "metric 'latency': prometheus: timeout");
    SW_ASSERT_EQ(num_at(s, "nope_nil"), 1);
    SW_ASSERT_STREQ(str_at(s, "nope_err"),
                    "metric 'nope' is not available (not configured, or no data yet)");
    SW_ASSERT_EQ(num_at(s, "sum_nil"), 1);
    SW_ASSERT_STREQ(str_at(s, "sum_err"), "metric 'latency': prometheus: timeout");
    cJSON_Delete(s);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(log_warn_and_print_go_to_log_fn)
{
    struct world w;
    world_init(&w);
    log_buf[0] = '\0';
    struct sw_policy *p = load("log.lua",
                               "print('loaded', 1)\n"
                               "return {evaluate = function(ctx)\n"
                               "  ctx.log('n=%d ratio=%.2f', 3, 0.5)\n"
                               "  ctx.log('plain %d')\n"
                               "  ctx.warn('careful: %s', 'x')\n"
                               "  warn('lua ', 'warn')\n"
                               "  return {}\n"
                               "end}\n",
                               NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    int rc = sw_policy_eval(p, &w.in, &out, &err);
    if (rc != 0)
        fprintf(stderr, "    %s\n", sw_policy_last_error(p));
    SW_ASSERT_EQ(rc, 0);
    SW_ASSERT_CONTAINS(log_buf, "1:loaded\t1\n");
    SW_ASSERT_CONTAINS(log_buf, "1:n=3 ratio=0.50\n");
    SW_ASSERT_CONTAINS(log_buf, "1:plain %d\n");
    SW_ASSERT_CONTAINS(log_buf, "2:careful: x\n");
    SW_ASSERT_CONTAINS(log_buf, "2:lua warn\n");
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(os_time_follows_simulated_clock)
{
    struct fake_clock clock = {{&fake_ops, true}, 1700000000999};
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("time.lua",
                               "return {evaluate = function(ctx)\n"
                               "  return {web = {t = os.time() - 1700000000,\n"
                               "    y2024 = os.time{year = 2024, month = 1, day = 1, hour = 0}"
                               " - 1704067200,\n"
                               "    norm = os.time{year = 2023, month = 13, day = 1, hour = 0}"
                               " - 1704067200,\n"
                               "    noon = os.time{year = 1970, month = 1, day = 2} // 3600}}\n"
                               "end}\n",
                               NULL, &clock.base, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "t"), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "y2024"), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "norm"), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "noon"), 36); /* hour defaults to 12 */
    clock.now_ms += 3600 * 1000 + 1; /* one simulated hour later, no real time passed */
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "t"), 3601);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

static void write_at(const char *name, const char *text, time_t mtime)
{
    const char *path = write_file(name, text);
    struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
    utimensat(AT_FDCWD, path, times, 0);
}

SW_TEST(hot_reload)
{
    struct world w;
    world_init(&w);
    write_at("reload.lua",
             "return {interval = 10, evaluate = function(ctx)\n"
             "  ctx.state.n = (ctx.state.n or 0) + 1\n"
             "  return {web = {v1 = ctx.state.n}}\n"
             "end}\n",
             1000000);
    struct sw_policy_opts opts = {
        .file = write_file("reload.lua", ""), /* path only; rewritten below */
        .lua_path = SW_SOURCE_DIR "/lua",
    };
    char path[512];
    snprintf(path, sizeof(path), "%s", opts.file);
    opts.file = path;
    write_at("reload.lua",
             "return {interval = 10, evaluate = function(ctx)\n"
             "  ctx.state.n = (ctx.state.n or 0) + 1\n"
             "  return {web = {v1 = ctx.state.n}}\n"
             "end}\n",
             1000000);
    struct sw_error err = {0};
    struct sw_policy *p = sw_policy_new(&opts, &err);
    SW_ASSERT(p != NULL);
    SW_ASSERT_EQ(sw_policy_interval_ms(p), 10000);
    SW_ASSERT(!sw_policy_file_changed(p));
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "v1"), 1);

    /* Same size, new mtime: noticed. */
    write_at("reload.lua",
             "return {interval = 20, evaluate = function(ctx)\n"
             "  ctx.state.n = (ctx.state.n or 0) + 1\n"
             "  return {web = {v2 = ctx.state.n}}\n"
             "end}\n",
             1000100);
    SW_ASSERT(sw_policy_file_changed(p));
    SW_ASSERT_EQ(sw_policy_reload(p, &err), 0);
    SW_ASSERT(!sw_policy_file_changed(p));
    SW_ASSERT_EQ(sw_policy_interval_ms(p), 20000);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "v2"), 2); /* state carried over */

    /* A syntax error: the old version keeps running. */
    write_at("reload.lua", "return {evaluate = function(ctx) return {web = {v3 = 1}} end\n",
             1000200);
    SW_ASSERT(sw_policy_file_changed(p));
    SW_ASSERT_EQ(sw_policy_reload(p, &err), SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, "reload.lua:2: '}' expected");
    SW_ASSERT(!sw_policy_file_changed(p)); /* not retried until it changes again */
    SW_ASSERT_EQ(sw_policy_interval_ms(p), 20000);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "v2"), 3);
    SW_ASSERT_EQ(sw_policy_error_count(p), 0);

    /* A file without evaluate is refused the same way. */
    write_at("reload.lua", "return {name = 'x'}\n", 1000300);
    SW_ASSERT_EQ(sw_policy_reload(p, &err), SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, "reload.lua: the policy table has no evaluate function");
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "v2"), 4);

    /* Removing the file counts as a change; reloading it fails and keeps the old one. */
    unlink(path);
    SW_ASSERT(sw_policy_file_changed(p));
    SW_ASSERT_EQ(sw_policy_reload(p, &err), SW_EIO);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

/* Under a simulated clock the file is stat()ed once per real second at most: a change is
 * noticed, just not on the tick right after an earlier look. */
SW_TEST(hot_reload_check_throttled_under_simulated_clock)
{
    struct world w;
    world_init(&w);
    struct fake_clock clock = {{&fake_ops, true}, 1700000000000};
    w.in.now_ms = clock.now_ms;
    char path[512];
    snprintf(path, sizeof(path), "%s", write_file("throttled.lua", ""));
    write_at("throttled.lua", "return {evaluate = function(ctx) return {web = {v1 = 1}} end}\n",
             1000000);
    struct sw_policy_opts opts = {
        .file = path,
        .lua_path = SW_SOURCE_DIR "/lua",
        .clock = &clock.base,
    };
    struct sw_error err = {0};
    struct sw_policy *p = sw_policy_new(&opts, &err);
    SW_ASSERT(p != NULL);
    SW_ASSERT(!sw_policy_file_changed(p)); /* looked at: unchanged */
    write_at("throttled.lua", "return {evaluate = function(ctx) return {web = {v2 = 1}} end}\n",
             1000100);
    SW_ASSERT(!sw_policy_file_changed(p)); /* within the real second: not looked at */
    usleep(1100 * 1000);
    SW_ASSERT(sw_policy_file_changed(p));
    SW_ASSERT_EQ(sw_policy_reload(p, &err), 0);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "v2"), 1);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

static void random_run(uint64_t seed, long long *values, int n)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("random.lua",
                               "local first = math.random(1, 10000)\n"
                               "return {evaluate = function(ctx)\n"
                               "  local a = math.random(1, 10000)\n"
                               "  math.randomseed()\n"
                               "  local b = math.random(1, 10000)\n"
                               "  return {web = {first = first, a = a, b = b}}\n"
                               "end}\n",
                               NULL, NULL, seed);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    for (int i = 0; i < n; i++) {
        int rc = sw_policy_eval(p, &w.in, &out, &err);
        if (rc != 0)
            fprintf(stderr, "    %s\n", sw_policy_last_error(p));
        SW_ASSERT_EQ(rc, 0);
        values[3 * i] = sw_desired_get(&out.desired, "web", "first");
        values[3 * i + 1] = sw_desired_get(&out.desired, "web", "a");
        values[3 * i + 2] = sw_desired_get(&out.desired, "web", "b");
    }
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(math_random_is_deterministic_per_seed)
{
    long long a[6], b[6], c[6];
    random_run(42, a, 2);
    random_run(42, b, 2);
    random_run(43, c, 2);
    SW_ASSERT(memcmp(a, b, sizeof(a)) == 0);
    SW_ASSERT(memcmp(a, c, sizeof(a)) != 0);
    /* math.randomseed() with no argument reseeds from the recorded seed: the first draw
     * after it equals the first draw of the run. */
    SW_ASSERT_EQ(a[2], a[0]);
    SW_ASSERT_EQ(a[5], a[0]);
}

SW_TEST(on_event_returning_true_asks_for_an_evaluation)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("wants.lua",
                               "return {evaluate = function(ctx) return {} end,\n"
                               "on_event = function(ctx, ev) return ev.type == 'job_started' end}\n",
                               NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{\"type\":\"job_started\"}", &err), 0);
    SW_ASSERT(sw_policy_event_wants_eval(p));
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{\"type\":\"alert\"}", &err), 0);
    SW_ASSERT(!sw_policy_event_wants_eval(p));
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(on_event_sees_the_event)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("events.lua",
                               "return {evaluate = function(ctx)\n"
                               "  return {web = {lost = ctx.state.lost or 0}}\n"
                               "end, on_event = function(ctx, ev)\n"
                               "  if ev.type == 'unit_lost' then\n"
                               "    ctx.state.lost = (ctx.state.lost or 0) + 1\n"
                               "    ctx.state.last = ev.market_id .. '/' .. ev.reason .. '/' "
                               ".. ev.extra.n\n"
                               "  elseif ev.type == 'boom' then error('event failed') end\n"
                               "end}\n",
                               NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in,
                                    "{\"type\":\"unit_lost\",\"market_id\":\"123\","
                                    "\"reason\":\"unstable\",\"extra\":{\"n\":2}}",
                                    &err),
                 0);
    cJSON *s = state_of(p);
    SW_ASSERT_STREQ(str_at(s, "last"), "123/unstable/2");
    cJSON_Delete(s);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "lost"), 1);
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{\"type\":\"boom\"}", &err), SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, "event failed");
    SW_ASSERT_EQ(sw_policy_error_count(p), 1);
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "[1]", &err), SW_EINVAL);
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{bad", &err), SW_EINVAL);
    /* The last good desired state is untouched by events. */
    SW_ASSERT_EQ(sw_desired_get(sw_policy_last_good(p), "web", "lost"), 1);
    sw_policy_result_clear(&out);
    sw_policy_free(p);

    /* Without input: an empty ctx whose time is the clock's. */
    struct fake_clock clock = {{&fake_ops, true}, 1700000123000};
    p = load("nullin.lua",
             "return {evaluate = function() return {} end, on_event = function(ctx, ev)\n"
             "  ctx.state.seen = {#ctx.leases, ctx.now_ms, ctx.capacity('web')}\n"
             "end}\n",
             NULL, &clock.base, 1);
    SW_ASSERT_EQ(sw_policy_on_event(p, NULL, "{\"type\":\"x\"}", &err), 0);
    char *json = sw_policy_state_json(p);
    SW_ASSERT_STREQ(json, "{\"seen\":[0,1700000123000,0]}");
    free(json);
    sw_policy_free(p);

    /* No on_event: a no-op. */
    p = load("noevents.lua", "return {evaluate = function() return {} end}\n", NULL, NULL, 1);
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{\"type\":\"x\"}", &err), 0);
    sw_policy_free(p);
    world_free(&w);
}

/* A module without on_event answers events without a ctx refresh, with the same results
 * as the full call; with on_event (even one added later, or found through a metatable)
 * every event still enters the module. */
SW_TEST(on_event_skipped_only_when_the_module_has_none)
{
    struct world w;
    world_init(&w);
    struct sw_error err = {0};
    struct sw_policy *p =
        load("none.lua", "return {evaluate = function() return {} end}\n", NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{\"type\":\"x\"}", &err), 0);
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, " { \"type\" : \"x\" } ", &err), 0);
    SW_ASSERT_EQ(sw_policy_on_event(p, NULL, NULL, &err), 0);
    SW_ASSERT_EQ(sw_policy_skipped_events(p), 3);
    SW_ASSERT(!sw_policy_event_wants_eval(p));
    /* The same errors as the full call, for texts the quick check cannot vouch for. */
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "[1]", &err), SW_EINVAL);
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{bad", &err), SW_EINVAL);
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{\"a\":1} trailing", &err), 0);
    SW_ASSERT_EQ(sw_policy_skipped_events(p), 3);
    sw_policy_free(p);

    /* A failed evaluate's error is cleared by a skipped event, as by a full one. */
    p = load("fails.lua", "return {evaluate = function() error('eval failed') end}\n", NULL, NULL,
             1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), SW_EPOLICY);
    SW_ASSERT_CONTAINS(sw_policy_last_error(p), "eval failed");
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{\"type\":\"x\"}", &err), 0);
    SW_ASSERT_STREQ(sw_policy_last_error(p), "");
    SW_ASSERT_EQ(sw_policy_skipped_events(p), 1);
    sw_policy_result_clear(&out);
    sw_policy_free(p);

    /* on_event set by evaluate: events from then on enter the module. */
    p = load("later.lua",
             "local M = {}\n"
             "function M.evaluate(ctx)\n"
             "  M.on_event = function(c, ev) c.state.n = (c.state.n or 0) + 1 end\n"
             "  return {}\n"
             "end\n"
             "return M\n",
             NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{\"type\":\"x\"}", &err), 0);
    SW_ASSERT_EQ(sw_policy_skipped_events(p), 1);
    sw_policy_result_init(&out);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{\"type\":\"x\"}", &err), 0);
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{\"type\":\"x\"}", &err), 0);
    SW_ASSERT_EQ(sw_policy_skipped_events(p), 1);
    char *json = sw_policy_state_json(p);
    SW_ASSERT_STREQ(json, "{\"n\":2}");
    free(json);
    sw_policy_result_clear(&out);
    sw_policy_free(p);

    /* on_event behind __index: a metatable always gets the full call. */
    p = load("meta.lua",
             "local base = {on_event = function(c, ev) c.state.seen = ev.type end}\n"
             "return setmetatable({evaluate = function() return {} end},"
             " {__index = base})\n",
             NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    SW_ASSERT_EQ(sw_policy_on_event(p, &w.in, "{\"type\":\"lost\"}", &err), 0);
    SW_ASSERT_EQ(sw_policy_skipped_events(p), 0);
    json = sw_policy_state_json(p);
    SW_ASSERT_STREQ(json, "{\"seen\":\"lost\"}");
    free(json);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(load_errors_name_the_file)
{
    struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"return {name = 'x'}", "bad.lua: the policy table has no evaluate function"},
        {"return 5", "bad.lua: a policy file must return a table"},
        {"return {evaluate = function() end, interval = 'soon'}",
         "bad.lua: interval: expected a duration such as \"10s\""},
        {"return {evaluate = function() end, interval = -1}", "got -1"},
        {"return {evaluate = function() end, on_event = 3}",
         "bad.lua: on_event must be a function, got number"},
        {"return {evaluate = function() end, name = 3}", "bad.lua: name must be a string"},
        {"return {evaluate = function( end}", "bad.lua:1:"},
        {"error('at load')", "bad.lua:1: at load"},
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(cases); i++) {
        struct sw_policy_opts opts = {.file = write_file("bad.lua", cases[i].text),
                                      .lua_path = SW_SOURCE_DIR "/lua"};
        struct sw_error err = {0};
        SW_ASSERT(sw_policy_new(&opts, &err) == NULL);
        SW_ASSERT_EQ(err.code, SW_EPOLICY);
        SW_ASSERT_CONTAINS(err.msg, cases[i].expect);
    }
    struct sw_policy_opts missing = {.file = "/nonexistent/policy.lua"};
    struct sw_error err = {0};
    SW_ASSERT(sw_policy_new(&missing, &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_EIO);
    SW_ASSERT_CONTAINS(err.msg, "/nonexistent/policy.lua");
    struct sw_policy_opts bad_params = {.file =
                                            write_file("ok.lua", "return {evaluate = function() "
                                                                 "end}"),
                                        .params_json = "{oops"};
    SW_ASSERT(sw_policy_new(&bad_params, &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "ctx.params: invalid JSON");
    struct sw_policy_opts bad_lua_path = {.file = bad_params.file, .lua_path = "/nonexistent"};
    SW_ASSERT(sw_policy_new(&bad_lua_path, &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_EIO);
}

SW_TEST(interval_forms_and_names)
{
    struct {
        const char *interval;
        int64_t ms;
    } cases[] = {{"'250ms'", 250},   {"'10s'", 10000}, {"'5m'", 300000}, {"'2h'", 7200000},
                 {"'1d'", 86400000}, {"0.5", 500},     {"30", 30000},    {"nil", 0}};
    for (size_t i = 0; i < SW_ARRAY_LEN(cases); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "return {name = 'declared', interval = %s, evaluate = function() end}",
                 cases[i].interval);
        struct sw_policy_opts opts = {.file = write_file("interval.lua", text),
                                      .lua_path = SW_SOURCE_DIR "/lua"};
        struct sw_error err = {0};
        struct sw_policy *p = sw_policy_new(&opts, &err);
        SW_ASSERT(p != NULL);
        SW_ASSERT_EQ(sw_policy_interval_ms(p), cases[i].ms);
        SW_ASSERT_STREQ(sw_policy_name(p), "declared"); /* no config name: the file's */
        sw_policy_free(p);
    }
}

SW_TEST(params_are_read_only_and_nested)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("params.lua",
                               "return {evaluate = function(ctx)\n"
                               "  local p = ctx.params\n"
                               "  assert(p.regions[2] == 'us-east' and #p.regions == 2)\n"
                               "  assert(p.limits.eu == 3 and math.type(p.limits.eu) == "
                               "'integer')\n"
                               "  assert(p.ratio == 0.5 and p.on == true and p.none == nil)\n"
                               "  local n = 0 for _ in pairs(p.limits) do n = n + 1 end\n"
                               "  assert(n == 2)\n"
                               "  if ctx.state.try then p.limits.eu = 9 end\n"
                               "  ctx.state.try = true\n"
                               "  return {}\n"
                               "end}\n",
                               "{\"regions\":[\"eu-west\",\"us-east\"],\"limits\":{\"eu\":3,"
                               "\"us\":1},\"ratio\":0.5,\"on\":true,\"none\":null}",
                               NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    int rc = sw_policy_eval(p, &w.in, &out, &err);
    if (rc != 0)
        fprintf(stderr, "    %s\n", err.msg);
    SW_ASSERT_EQ(rc, 0);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, "ctx.params.limits is read-only");
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(require_steward_modules)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("modules.lua",
                               "local smooth = require 'steward.smooth'\n"
                               "local units = require 'steward.units'\n"
                               "assert(require 'steward.smooth' == smooth)\n"
                               "return {evaluate = function(ctx)\n"
                               "  ctx.state.s = ctx.state.s or {}\n"
                               "  local v = smooth.new(10, ctx.state.s):update(100, ctx.now)\n"
                               "  return {web = {v = math.floor(v), d = units.duration('2m')}}\n"
                               "end}\n",
                               NULL, NULL, 1);
    SW_ASSERT(p != NULL);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "v"), 100);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "d"), 120);
    /* The smoother's state is plain data in ctx.state (its metatable is not stored). */
    char *json = sw_policy_state_json(p);
    SW_ASSERT_CONTAINS(json, "\"half_life_s\":10");
    free(json);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST(last_good_survives_failures)
{
    struct world w;
    world_init(&w);
    struct sw_policy *p = load("flaky.lua",
                               "return {evaluate = function(ctx)\n"
                               "  if ctx.params.fail then error('nope') end\n"
                               "  return {web = {eu = 1}}\n"
                               "end}\n",
                               "{\"fail\":true}", NULL, 1);
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    /* No good result yet: failure leaves an empty desired state. */
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), SW_EPOLICY);
    SW_ASSERT_EQ(out.desired.count, 0);
    SW_ASSERT_EQ(sw_policy_last_good(p)->count, 0);
    SW_ASSERT_EQ(sw_policy_error_count(p), 1);
    SW_ASSERT_EQ(sw_policy_eval(p, &w.in, &out, &err), SW_EPOLICY);
    SW_ASSERT_EQ(sw_policy_error_count(p), 2);
    SW_ASSERT_CONTAINS(sw_policy_last_error(p), "flaky.lua:2: nope");
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    world_free(&w);
}

SW_TEST_MAIN()
