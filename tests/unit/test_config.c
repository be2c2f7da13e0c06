/* test_config.c — config parsing: every field, defaults, and the exact message of each
 * malformed document (file:json.path: expected X, got Y). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "mem.h"
#include "sw_test.h"

/* A scratch directory holding a policy file and an SDL template, removed at exit. */
static char scratch[64];

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

static char *scratch_file(const char *name)
{
    return sw_xasprintf("%s/%s", scratch, name);
}

static void remove_scratch(void)
{
    static const char *const names[] = {"policies/scale.lua", "policies/other.lua", "web.sdl",
                                        "steward.json", "big.json"};
    for (size_t i = 0; i < SW_ARRAY_LEN(names); i++) {
        char *path = scratch_file(names[i]);
        unlink(path);
        free(path);
    }
    char *dir = scratch_file("policies");
    rmdir(dir);
    free(dir);
    rmdir(scratch);
}

static void ensure_scratch(void)
{
    if (scratch[0] != '\0')
        return;
    snprintf(scratch, sizeof(scratch), "/tmp/sw_test_config_XXXXXX");
    if (mkdtemp(scratch) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    atexit(remove_scratch);
    char *dir = scratch_file("policies");
    mkdir(dir, 0700);
    free(dir);
    char *path = scratch_file("policies/scale.lua");
    write_file(path, "return {}\n");
    free(path);
    path = scratch_file("policies/other.lua");
    write_file(path, "return {}\n");
    free(path);
    path = scratch_file("web.sdl");
    write_file(path, "version: \"2.0\"\n");
    free(path);
}

/* Parses text as if it were <scratch>/steward.json. */
static struct sw_config *parse_in_scratch(const char *text, struct sw_error *err)
{
    ensure_scratch();
    char *path = scratch_file("steward.json");
    struct sw_config *c = sw_config_parse(text, strlen(text), path, err);
    free(path);
    return c;
}

/* Asserts the document fails with exactly "<scratch>/steward.json<suffix>". */
#define EXPECT_ERROR(text, suffix)                                                                 \
    do {                                                                                           \
        struct sw_error err_ = {0};                                                                \
        struct sw_config *c_ = parse_in_scratch((text), &err_);                                    \
        char *want_ = sw_xasprintf("%s/steward.json%s", scratch, (suffix));                        \
        int ok_ = c_ == NULL && err_.code == SW_ECONFIG && strcmp(err_.msg, want_) == 0;           \
        if (!ok_)                                                                                  \
            fprintf(stderr, "    got (%d): %s\n    want: %s\n", err_.code, err_.msg, want_);       \
        free(want_);                                                                               \
        sw_config_free(c_);                                                                        \
        SW_ASSERT(ok_);                                                                            \
    } while (0)

#define MIN_GROUPS "\"groups\": {\"web\": {\"max\": 2}}"

SW_TEST(full_config_every_field)
{
    setenv("SW_TEST_DSEQ", "4242", 1);
    const char *text =
        "{\n"
        "  // instance\n"
        "  \"id\": \"prod-eu_1\",\n"
        "  \"state\": \"data/journal.db\",\n"
        "  \"seed\": 77,\n"
        "  \"log\": {\"format\": \"json\", \"level\": \"debug\"},\n"
        "  \"plugin_dirs\": [\"plugins\", \"/opt/steward/plugins\"],\n"
        "  \"lua_path\": \"lua\",\n"
        "  \"market\": \"akash\",\n"
        "  \"self\": {\"market_id_env\": \"SW_TEST_DSEQ\"},\n"
        "  \"plugins\": {\"akash\": {\"api_key_env\": \"AKASH_KEY\", \"rpc\": \"https://x\"},\n"
        "              \"prom\": {}},\n"
        "  \"metrics\": {\"rps\": {\"plugin\": \"prom\", \"query\": \"sum(rate(x[1m]))\",\n"
        "                        \"every\": \"15s\"},\n"
        "              \"lat\": {\"plugin\": \"prom\", \"query\": \"up\"}},\n"
        "  \"guard\": {\"budget_usd_hour\": 5.5, \"max_leases\": 20,\n"
        "            \"max_actions_per_window\": 6, \"action_window\": \"5m\",\n"
        "            \"unhealthy_after\": 4,\n"
        "            \"provider_backoff\": {\"closures_per_lease_hour\": 0.5,\n"
        "              \"min_lease_hours\": 2, \"backoff\": \"5m\", \"max_backoff\": \"1h\"}},\n"
        "  \"groups\": {\n"
        "    \"web\": {\"min\": 1, \"max\": 12, \"regions\": [\"eu-west\", \"us-east\"],\n"
        "            \"scale_up_cooldown\": \"30s\", \"scale_down_cooldown\": \"5m\",\n"
        "            \"max_price_usd_hour\": 0.75, \"profile\": {\"cpu\": 2, \"gpu\": null},\n"
        "            \"sdl\": \"web.sdl\", \"acquire_deadline\": \"6m\",\n"
        "            \"spread\": {\"max_share_per_provider\": 0.5, \"min_providers\": 2}},\n"
        "    \"batch\": {\"max\": 4}\n"
        "  },\n"
        "  /* policies run in order */\n"
        "  \"policies\": [\n"
        "    {\"name\": \"geo\", \"file\": \"policies/scale.lua\", \"interval\": \"2s\",\n"
        "     \"params\": {\"target\": 100}, \"limits\": {\"instructions\": 5000,\n"
        "     \"memory\": \"512KiB\", \"time\": \"250ms\"}},\n"
        "    {\"name\": \"ml\", \"file\": \"policies/other.lua\"}\n"
        "  ]\n"
        "}\n";
    struct sw_error err = {0};
    struct sw_config *c = parse_in_scratch(text, &err);
    if (c == NULL)
        fprintf(stderr, "    %s\n", err.msg);
    SW_ASSERT(c != NULL);
    char *want = sw_xasprintf("%s/steward.json", scratch);
    SW_ASSERT_STREQ(c->path, want);
    free(want);
    SW_ASSERT_STREQ(c->dir, scratch);
    SW_ASSERT_STREQ(c->instance_id, "prod-eu_1");
    want = sw_xasprintf("%s/data/journal.db", scratch);
    SW_ASSERT_STREQ(c->state_path, want);
    free(want);
    SW_ASSERT_EQ(c->seed, 77);
    SW_ASSERT_EQ(c->log_format, SW_LOG_FORMAT_JSON);
    SW_ASSERT_EQ(c->log_level, SW_LOG_DEBUG);
    SW_ASSERT_EQ(c->plugin_dir_count, 2);
    want = sw_xasprintf("%s/plugins", scratch);
    SW_ASSERT_STREQ(c->plugin_dirs[0], want);
    free(want);
    SW_ASSERT_STREQ(c->plugin_dirs[1], "/opt/steward/plugins");
    want = sw_xasprintf("%s/lua", scratch);
    SW_ASSERT_STREQ(c->lua_path, want);
    free(want);
    SW_ASSERT_STREQ(c->market_plugin, "akash");
    SW_ASSERT_STREQ(c->self_market_id, "4242");

    SW_ASSERT_EQ(c->plugin_count, 2);
    SW_ASSERT_STREQ(c->plugins[0].name, "akash");
    SW_ASSERT_STREQ(c->plugins[0].config_json,
                    "{\"api_key_env\":\"AKASH_KEY\",\"rpc\":\"https://x\"}");
    SW_ASSERT_STREQ(c->plugins[1].config_json, "{}");
    SW_ASSERT(sw_config_plugin(c, "prom") == &c->plugins[1]);
    SW_ASSERT(sw_config_plugin(c, "nope") == NULL);

    SW_ASSERT_EQ(c->metric_count, 2);
    SW_ASSERT_STREQ(c->metrics[0].name, "rps");
    SW_ASSERT_STREQ(c->metrics[0].plugin, "prom");
    SW_ASSERT_STREQ(c->metrics[0].query, "sum(rate(x[1m]))");
    SW_ASSERT_EQ(c->metrics[0].every_ms, 15000);
    SW_ASSERT_STREQ(c->metrics[1].name, "lat");
    SW_ASSERT_EQ(c->metrics[1].every_ms, 0);

    SW_ASSERT_NEAR(c->guard.budget_usd_hour, 5.5, 1e-12);
    SW_ASSERT_EQ(c->guard.max_leases, 20);
    SW_ASSERT_EQ(c->guard.max_actions, 6);
    SW_ASSERT_EQ(c->guard.action_window_ms, 300000);
    SW_ASSERT_EQ(c->guard.unhealthy_after, 4);
    SW_ASSERT_NEAR(c->guard.provider_backoff.closures_per_lease_hour, 0.5, 1e-12);
    SW_ASSERT_NEAR(c->guard.provider_backoff.min_lease_hours, 2, 1e-12);
    SW_ASSERT_EQ(c->guard.provider_backoff.backoff_ms, 300000);
    SW_ASSERT_EQ(c->guard.provider_backoff.max_backoff_ms, 3600000);

    SW_ASSERT_EQ(c->group_count, 2);
    const struct sw_group_config *web = sw_config_group(c, "web");
    SW_ASSERT(web == &c->groups[0]);
    SW_ASSERT_EQ(web->min, 1);
    SW_ASSERT_EQ(web->max, 12);
    SW_ASSERT_EQ(web->region_count, 2);
    SW_ASSERT_STREQ(web->regions[0], "eu-west");
    SW_ASSERT_STREQ(web->regions[1], "us-east");
    SW_ASSERT_EQ(web->scale_up_cooldown_ms, 30000);
    SW_ASSERT_EQ(web->scale_down_cooldown_ms, 300000);
    SW_ASSERT_NEAR(web->max_price_usd_hour, 0.75, 1e-12);
    SW_ASSERT_STREQ(web->profile_json, "{\"cpu\":2,\"gpu\":null}");
    SW_ASSERT_STREQ(web->sdl_template, "version: \"2.0\"\n");
    SW_ASSERT_EQ(web->acquire_deadline_ms, 360000);
    SW_ASSERT_NEAR(web->spread_max_share, 0.5, 1e-12);
    SW_ASSERT_EQ(web->spread_min_providers, 2);
    const struct sw_group_config *batch = sw_config_group(c, "batch");
    SW_ASSERT(batch == &c->groups[1]);
    SW_ASSERT_EQ(batch->min, 0);
    SW_ASSERT_EQ(batch->max, 4);
    SW_ASSERT_EQ(batch->region_count, 0);
    SW_ASSERT(batch->regions == NULL);
    SW_ASSERT_EQ(batch->scale_up_cooldown_ms, 0);
    SW_ASSERT_EQ(batch->scale_down_cooldown_ms, 0);
    SW_ASSERT_NEAR(batch->max_price_usd_hour, 0, 0);
    SW_ASSERT(batch->profile_json == NULL);
    SW_ASSERT(batch->sdl_template == NULL);
    SW_ASSERT_EQ(batch->acquire_deadline_ms, 480000);
    SW_ASSERT_NEAR(batch->spread_max_share, 0, 0);
    SW_ASSERT_EQ(batch->spread_min_providers, 0);
    SW_ASSERT(sw_config_group(c, "cache") == NULL);

    SW_ASSERT_EQ(c->policy_count, 2);
    const struct sw_policy_config *geo = &c->policies[0];
    SW_ASSERT_STREQ(geo->name, "geo");
    want = sw_xasprintf("%s/policies/scale.lua", scratch);
    SW_ASSERT_STREQ(geo->file, want);
    free(want);
    SW_ASSERT_EQ(geo->interval_ms, 2000);
    SW_ASSERT_STREQ(geo->params_json, "{\"target\":100}");
    SW_ASSERT_EQ(geo->max_instructions, 5000);
    SW_ASSERT_EQ(geo->memory_limit, 512 * 1024);
    SW_ASSERT_EQ(geo->time_limit_ms, 250);
    const struct sw_policy_config *ml = &c->policies[1];
    SW_ASSERT_STREQ(ml->name, "ml");
    SW_ASSERT_EQ(ml->interval_ms, 10000);
    SW_ASSERT_STREQ(ml->params_json, "{}");
    SW_ASSERT_EQ(ml->max_instructions, 0); /* none: the time budget alone, kept by a watchdog */
    SW_ASSERT_EQ(ml->memory_limit, 32 * 1024 * 1024);
    SW_ASSERT_EQ(ml->time_limit_ms, 1000);
    sw_config_free(c);
    unsetenv("SW_TEST_DSEQ");
}

SW_TEST(defaults_for_minimal_config)
{
    unsetenv("AKASH_DEPLOYMENT_SEQUENCE");
    const char *text = "{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 3}}}";
    struct sw_error err = {0};
    struct sw_config *c = sw_config_parse(text, strlen(text), "steward.json", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->dir, ".");
    SW_ASSERT_STREQ(c->instance_id, "steward");
    SW_ASSERT_STREQ(c->state_path, "./steward.db");
    SW_ASSERT_EQ(c->seed, 1);
    SW_ASSERT_EQ(c->log_format, SW_LOG_FORMAT_TEXT);
    SW_ASSERT_EQ(c->log_level, SW_LOG_INFO);
    SW_ASSERT_EQ(c->plugin_dir_count, 0);
    SW_ASSERT(c->lua_path == NULL);
    SW_ASSERT(c->self_market_id == NULL);
    SW_ASSERT_EQ(c->plugin_count, 0);
    SW_ASSERT_EQ(c->metric_count, 0);
    SW_ASSERT_NEAR(c->guard.budget_usd_hour, 0, 0);
    SW_ASSERT_EQ(c->guard.max_leases, 0);
    SW_ASSERT_EQ(c->guard.max_actions, 0);
    SW_ASSERT_EQ(c->guard.action_window_ms, 60000);
    SW_ASSERT_EQ(c->guard.unhealthy_after, 3);
    SW_ASSERT_NEAR(c->guard.provider_backoff.closures_per_lease_hour, 0.2, 1e-12);
    SW_ASSERT_NEAR(c->guard.provider_backoff.min_lease_hours, 1, 1e-12);
    SW_ASSERT_EQ(c->guard.provider_backoff.backoff_ms, 600000);
    SW_ASSERT_EQ(c->guard.provider_backoff.max_backoff_ms, 4 * 3600000);
    SW_ASSERT_EQ(c->group_count, 1);
    SW_ASSERT_EQ(c->groups[0].max, 3);
    SW_ASSERT_EQ(c->policy_count, 0);
    sw_config_free(c);
}

SW_TEST(relative_paths_resolve_against_config_dir)
{
    const char *text =
        "{\"market\": \"sim\", \"state\": \"../var/s.db\", \"lua_path\": \"/abs/lua\","
        " \"plugin_dirs\": [\"p\"], " MIN_GROUPS "}";
    struct sw_error err = {0};
    struct sw_config *c = sw_config_parse(text, strlen(text), "etc/steward/main.json", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->dir, "etc/steward");
    SW_ASSERT_STREQ(c->state_path, "etc/steward/../var/s.db");
    SW_ASSERT_STREQ(c->lua_path, "/abs/lua");
    SW_ASSERT_STREQ(c->plugin_dirs[0], "etc/steward/p");
    sw_config_free(c);
    c = sw_config_parse(text, strlen(text), "/steward.json", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->dir, "/");
    SW_ASSERT_STREQ(c->state_path, "/../var/s.db");
    sw_config_free(c);
}

SW_TEST(comments_are_blanked_but_strings_untouched)
{
    const char *text = "// leading line comment\n"
                       "{ /* block\n"
                       "     spanning lines */ \"market\": \"http://a//b/*c*/\", // trailing\n"
                       "  \"id\": \"x\" /**/, " MIN_GROUPS " }\n"
                       "// last line without newline";
    struct sw_error err = {0};
    struct sw_config *c = sw_config_parse(text, strlen(text), "s.json", &err);
    if (c == NULL)
        fprintf(stderr, "    %s\n", err.msg);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->market_plugin, "http://a//b/*c*/");
    SW_ASSERT_STREQ(c->instance_id, "x");
    sw_config_free(c);
}

SW_TEST(comment_positions_stay_true)
{
    /* The error sits after a block comment spanning lines: line and column must count
     * the comment's bytes as if it were still there. */
    const char *text = "{\n  /* one\n  two */ \"market\": \"sim\",\n  \"seed\": tru\n}";
    struct sw_error err = {0};
    SW_ASSERT(sw_config_parse(text, strlen(text), "c.json", &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_ECONFIG);
    SW_ASSERT_STREQ(
        err.msg, "c.json:4:11: invalid JSON: unexpected word 'tru' (strings need double quotes)");
}

SW_TEST(syntax_errors_name_line_and_column)
{
    EXPECT_ERROR("{\n  \"market\": \"sim\",\n}", ":3:1: invalid JSON: trailing comma before '}'");
    EXPECT_ERROR("{\n  \"market\": \"sim\"\n  \"seed\": 1\n}",
                 ":3:3: invalid JSON: expected ',' or '}', got '\"'");
    EXPECT_ERROR("{\"market\" \"sim\"}",
                 ":1:11: invalid JSON: expected ':' after the key, got '\"'");
    EXPECT_ERROR("{\"market\": \"sim\"\n\n", ":1:17: invalid JSON: unexpected end of input");
    EXPECT_ERROR("", ":1:1: invalid JSON: unexpected end of input");
    EXPECT_ERROR("{\"market\": \"si\n\"}", ":1:15: invalid JSON: unterminated string");
    EXPECT_ERROR("{\"a\": \"\\q\"}", ":1:8: invalid JSON: invalid escape in string");
    EXPECT_ERROR("{\"a\": \"\\ud800x\"}",
                 ":1:8: invalid JSON: unpaired UTF-16 surrogate in string");
    EXPECT_ERROR("{\"seed\": 01}", ":1:10: invalid JSON: invalid number (leading zero)");
    EXPECT_ERROR("{\"market\": 'sim'}",
                 ":1:12: invalid JSON: unexpected ''' (strings need double quotes)");
    EXPECT_ERROR("{} {}", ":1:4: invalid JSON: unexpected text after the JSON value");
    EXPECT_ERROR("{\n /* never closed", ":2:2: invalid JSON: unterminated /* comment");
    EXPECT_ERROR("[1, 2, ]", ":1:8: invalid JSON: trailing comma before ']'");
    EXPECT_ERROR("{,}", ":1:2: invalid JSON: expected a \"key\", got ','");
}

SW_TEST(nesting_and_size_are_capped)
{
    char deep[200];
    size_t n = 0;
    for (int i = 0; i < 65; i++)
        deep[n++] = '[';
    for (int i = 0; i < 65; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    struct sw_error err = {0};
    SW_ASSERT(sw_json_parse_relaxed(deep, n, "d.json", &err) == NULL);
    SW_ASSERT_STREQ(err.msg, "d.json:1:65: invalid JSON: nested deeper than 64 levels");
    /* 64 levels are fine. */
    cJSON *ok = sw_json_parse_relaxed(deep + 1, n - 2, "d.json", &err);
    SW_ASSERT(ok != NULL);
    cJSON_Delete(ok);

    size_t big_len = ((size_t)4 << 20) + 1;
    char *big = sw_xmalloc(big_len);
    memset(big, ' ', big_len);
    big[0] = '{';
    big[big_len - 1] = '}';
    SW_ASSERT(sw_json_parse_relaxed(big, big_len, "b.json", &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_ECONFIG);
    SW_ASSERT_STREQ(err.msg, "b.json: larger than 4 MiB");

    ensure_scratch();
    char *path = scratch_file("big.json");
    FILE *f = fopen(path, "w");
    fwrite(big, 1, big_len, f);
    fclose(f);
    SW_ASSERT(sw_config_load(path, &err) == NULL);
    char *want = sw_xasprintf("%s: larger than 4 MiB", path);
    SW_ASSERT_STREQ(err.msg, want);
    free(want);
    free(path);
    free(big);
}

SW_TEST(load_reads_file_and_reports_unreadable)
{
    ensure_scratch();
    char *path = scratch_file("steward.json");
    write_file(path, "{\"market\": \"sim\", " MIN_GROUPS "}");
    struct sw_error err = {0};
    struct sw_config *c = sw_config_load(path, &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->market_plugin, "sim");
    SW_ASSERT_STREQ(c->dir, scratch);
    sw_config_free(c);
    unlink(path);
    SW_ASSERT(sw_config_load(path, &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_EIO);
    char *want = sw_xasprintf("%s: cannot read: No such file or directory", path);
    SW_ASSERT_STREQ(err.msg, want);
    free(want);
    free(path);
    /* A directory opens but cannot be read. */
    SW_ASSERT(sw_config_load(scratch, &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_EIO);
    want = sw_xasprintf("%s: cannot read: Is a directory", scratch);
    SW_ASSERT_STREQ(err.msg, want);
    free(want);
}

SW_TEST(wrong_types_show_type_and_value)
{
    EXPECT_ERROR("[1]", ": expected object at the top level, got array");
    EXPECT_ERROR("{\"market\": \"sim\", \"seed\": \"ten\", " MIN_GROUPS "}",
                 ":seed: expected integer >= 0, got string \"ten\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"seed\": -1, " MIN_GROUPS "}",
                 ":seed: expected integer >= 0, got -1");
    EXPECT_ERROR("{\"market\": \"sim\", \"seed\": 1.5, " MIN_GROUPS "}",
                 ":seed: expected integer >= 0, got 1.5");
    EXPECT_ERROR("{\"market\": true, " MIN_GROUPS "}",
                 ":market: expected non-empty string, got true");
    EXPECT_ERROR("{\"market\": null, " MIN_GROUPS "}",
                 ":market: expected non-empty string, got null");
    EXPECT_ERROR("{\"market\": \"sim\", \"log\": [], " MIN_GROUPS "}",
                 ":log: expected object, got array");
    EXPECT_ERROR("{\"market\": \"sim\", \"log\": {\"format\": \"xml\"}, " MIN_GROUPS "}",
                 ":log.format: expected \"text\" or \"json\", got string \"xml\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"log\": {\"level\": 3}, " MIN_GROUPS "}",
                 ":log.level: expected \"debug\", \"info\", \"warn\" or \"error\", got 3");
    EXPECT_ERROR("{\"market\": \"sim\", \"plugin_dirs\": \"p\", " MIN_GROUPS "}",
                 ":plugin_dirs: expected array of strings, got string \"p\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"plugin_dirs\": [\"a\", {}], " MIN_GROUPS "}",
                 ":plugin_dirs[1]: expected non-empty string, got object");
    EXPECT_ERROR("{\"market\": \"sim\", \"plugins\": {\"prom\": \"x\"}, " MIN_GROUPS "}",
                 ":plugins.prom: expected object, got string \"x\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 2, \"profile\": 1}}}",
                 ":groups.web.profile: expected object, got 1");
}

SW_TEST(unknown_keys_rejected_at_every_level)
{
    EXPECT_ERROR("{\"market\": \"sim\", \"maket\": 1, " MIN_GROUPS "}",
                 ": unknown key 'maket' (known: id, state, seed, log, plugin_dirs, lua_path, "
                 "market, self, plugins, metrics, guard, groups, policies, simulation, admin, "
                 "dns, probes, ha, history)");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 2, \"maxx\": 3}}}",
                 ":groups.web: unknown key 'maxx' (known: min, max, regions, scale_up_cooldown, "
                 "scale_down_cooldown, max_price_usd_hour, profile, sdl, acquire_deadline, "
                 "providers, provider_env, spread)");
    EXPECT_ERROR("{\"market\": \"sim\", \"guard\": {\"budget\": 3}, " MIN_GROUPS "}",
                 ":guard: unknown key 'budget' (known: budget_usd_hour, max_leases, "
                 "max_actions_per_window, action_window, unhealthy_after, provider_backoff)");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [{\"name\": \"p\", "
                 "\"file\": \"policies/scale.lua\", \"every\": \"1s\"}]}",
                 ":policies[0]: unknown key 'every' (known: name, file, interval, params, "
                 "limits)");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [{\"name\": \"p\", "
                 "\"file\": \"policies/scale.lua\", \"limits\": {\"cpu\": 1}}]}",
                 ":policies[0].limits: unknown key 'cpu' (known: instructions, memory, time)");
    EXPECT_ERROR("{\"market\": \"sim\", \"log\": {\"colour\": true}, " MIN_GROUPS "}",
                 ":log: unknown key 'colour' (known: format, level)");
    EXPECT_ERROR("{\"market\": \"sim\", \"self\": {\"id\": \"1\"}, " MIN_GROUPS "}",
                 ":self: unknown key 'id' (known: market_id, market_id_env)");
    EXPECT_ERROR("{\"market\": \"sim\", \"metrics\": {\"rps\": {\"plugin\": \"p\", \"query\": "
                 "\"q\", \"step\": 1}}, " MIN_GROUPS "}",
                 ":metrics.rps: unknown key 'step' (known: plugin, query, every)");
    EXPECT_ERROR("{\"market\": \"sim\", \"market\": \"x\", " MIN_GROUPS "}",
                 ": duplicate key 'market'");
}

SW_TEST(free_form_sections_accept_any_key)
{
    const char *text = "{\"market\": \"sim\", \"plugins\": {\"prom\": {\"anything\": [1]}},"
                       " \"groups\": {\"web\": {\"max\": 2, \"profile\": {\"whatever\": 1}}},"
                       " \"policies\": [{\"name\": \"p\", \"file\": \"policies/scale.lua\","
                       " \"params\": {\"free\": {\"form\": true}}}]}";
    struct sw_error err = {0};
    struct sw_config *c = parse_in_scratch(text, &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->policies[0].params_json, "{\"free\":{\"form\":true}}");
    sw_config_free(c);
}

SW_TEST(simulation_object_kept_as_json)
{
    struct sw_error err = {0};
    struct sw_config *c = parse_in_scratch("{\"market\": \"sim\", " MIN_GROUPS ","
                                           " \"simulation\": {\"rps_per_unit\": 50,"
                                           " \"slo_p95_ms\": 80}}", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->simulation_json, "{\"rps_per_unit\":50,\"slo_p95_ms\":80}");
    sw_config_free(c);
    c = parse_in_scratch("{\"market\": \"sim\", " MIN_GROUPS "}", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT(c->simulation_json == NULL);
    sw_config_free(c);
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"simulation\": 3}",
                 ":simulation: expected object, got 3");
}

SW_TEST(group_rules)
{
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"min\": 2, \"max\": 1}}}",
                 ":groups.web.max: expected integer >= min (2), got 1");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"min\": 1}}}",
                 ":groups.web.max: required");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {}}", ":groups: expected at least one group");
    EXPECT_ERROR("{\"market\": \"sim\"}", ":groups: expected at least one group");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"min\": -1, \"max\": 1}}}",
                 ":groups.web.min: expected integer >= 0, got -1");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 1, \"regions\": "
                 "[\"a\", \"a\"]}}}",
                 ":groups.web.regions[1]: duplicate \"a\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 1, "
                 "\"max_price_usd_hour\": -0.5}}}",
                 ":groups.web.max_price_usd_hour: expected number >= 0, got -0.5");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 1, "
                 "\"acquire_deadline\": 0}}}",
                 ":groups.web.acquire_deadline: expected duration > 0, got 0");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"we b\": {\"max\": 1}}}",
                 ":groups.we b: group name must match [A-Za-z0-9_-]{1,64}");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": 3}}",
                 ":groups.web: expected object, got 3");
}

SW_TEST(sdl_unreadable_names_resolved_path)
{
    ensure_scratch();
    char *want = sw_xasprintf(":groups.web.sdl: cannot read %s/missing.sdl: No such file or "
                              "directory",
                              scratch);
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 1, \"sdl\": "
                 "\"missing.sdl\"}}}",
                 want);
    free(want);
}

SW_TEST(guard_rules)
{
    EXPECT_ERROR("{\"market\": \"sim\", \"guard\": {\"budget_usd_hour\": -1}, " MIN_GROUPS "}",
                 ":guard.budget_usd_hour: expected number >= 0, got -1");
    EXPECT_ERROR("{\"market\": \"sim\", \"guard\": {\"max_leases\": 2.5}, " MIN_GROUPS "}",
                 ":guard.max_leases: expected integer >= 0, got 2.5");
    EXPECT_ERROR("{\"market\": \"sim\", \"guard\": {\"unhealthy_after\": 0}, " MIN_GROUPS "}",
                 ":guard.unhealthy_after: expected integer >= 1, got 0");
    EXPECT_ERROR("{\"market\": \"sim\", \"guard\": {\"action_window\": \"soon\"}, " MIN_GROUPS "}",
                 ":guard.action_window: expected duration like \"10s\", got string \"soon\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"guard\": {\"action_window\": 0}, " MIN_GROUPS "}",
                 ":guard.action_window: expected duration > 0, got 0");
}

SW_TEST(spread_rules)
{
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 4, \"spread\": "
                 "{\"max_share_per_provider\": 0}}}}",
                 ":groups.web.spread.max_share_per_provider: expected number in (0, 1], got 0");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 4, \"spread\": "
                 "{\"max_share_per_provider\": 1.5}}}}",
                 ":groups.web.spread.max_share_per_provider: expected number in (0, 1], got 1.5");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 4, \"spread\": "
                 "{\"min_providers\": 0}}}}",
                 ":groups.web.spread.min_providers: expected integer >= 1, got 0");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 4, \"spread\": "
                 "{\"share\": 0.5}}}}",
                 ":groups.web.spread: unknown key 'share' (known: max_share_per_provider, "
                 "min_providers)");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 4, \"spread\": 2}}}",
                 ":groups.web.spread: expected object, got 2");
    /* Only the share: no distinct-provider floor. */
    const char *text = "{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 4, \"spread\": "
                       "{\"max_share_per_provider\": 1}}}}";
    struct sw_error err = {0};
    struct sw_config *c = parse_in_scratch(text, &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_NEAR(c->groups[0].spread_max_share, 1, 0);
    SW_ASSERT_EQ(c->groups[0].spread_min_providers, 0);
    sw_config_free(c);
}

SW_TEST(provider_backoff_rules)
{
    EXPECT_ERROR("{\"market\": \"sim\", \"guard\": {\"provider_backoff\": "
                 "{\"closures_per_lease_hour\": -1}}, " MIN_GROUPS "}",
                 ":guard.provider_backoff.closures_per_lease_hour: expected number >= 0, got -1");
    EXPECT_ERROR("{\"market\": \"sim\", \"guard\": {\"provider_backoff\": "
                 "{\"backoff\": \"10m\", \"max_backoff\": \"5m\"}}, " MIN_GROUPS "}",
                 ":guard.provider_backoff.max_backoff: expected duration >= backoff, got string "
                 "\"5m\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"guard\": {\"provider_backoff\": "
                 "{\"backoff\": 0}}, " MIN_GROUPS "}",
                 ":guard.provider_backoff.backoff: expected duration > 0, got 0");
    EXPECT_ERROR("{\"market\": \"sim\", \"guard\": {\"provider_backoff\": {\"after\": 1}}, "
                 MIN_GROUPS "}",
                 ":guard.provider_backoff: unknown key 'after' (known: closures_per_lease_hour, "
                 "min_lease_hours, backoff, max_backoff)");
    /* A first back-off above the default cap lifts the cap; 0 disables the threshold. */
    const char *text = "{\"market\": \"sim\", \"guard\": {\"provider_backoff\": "
                       "{\"closures_per_lease_hour\": 0, \"backoff\": \"6h\"}}, " MIN_GROUPS "}";
    struct sw_error err = {0};
    struct sw_config *c = parse_in_scratch(text, &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_NEAR(c->guard.provider_backoff.closures_per_lease_hour, 0, 0);
    SW_ASSERT_EQ(c->guard.provider_backoff.backoff_ms, 6 * 3600000);
    SW_ASSERT_EQ(c->guard.provider_backoff.max_backoff_ms, 6 * 3600000);
    sw_config_free(c);
}

SW_TEST(bad_durations)
{
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 1, "
                 "\"scale_up_cooldown\": \"ten\"}}}",
                 ":groups.web.scale_up_cooldown: expected duration like \"10s\", got string "
                 "\"ten\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 1, "
                 "\"scale_down_cooldown\": -5}}}",
                 ":groups.web.scale_down_cooldown: expected duration like \"10s\", got -5");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 1, "
                 "\"scale_down_cooldown\": \"-5s\"}}}",
                 ":groups.web.scale_down_cooldown: expected duration like \"10s\", got string "
                 "\"-5s\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 1, "
                 "\"scale_down_cooldown\": [1]}}}",
                 ":groups.web.scale_down_cooldown: expected duration like \"10s\", got array");
}

SW_TEST(required_market)
{
    EXPECT_ERROR("{" MIN_GROUPS "}", ":market: required");
    EXPECT_ERROR("{\"market\": \"\", " MIN_GROUPS "}",
                 ":market: expected non-empty string, got string \"\"");
}

SW_TEST(bad_id)
{
    EXPECT_ERROR("{\"id\": \"my steward\", \"market\": \"sim\", " MIN_GROUPS "}",
                 ":id: expected string matching [A-Za-z0-9_-]{1,64}, got string \"my steward\"");
    EXPECT_ERROR("{\"id\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
                 " \"market\": \"sim\", " MIN_GROUPS "}",
                 ":id: expected string matching [A-Za-z0-9_-]{1,64}, got string "
                 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"");
    EXPECT_ERROR("{\"id\": 5, \"market\": \"sim\", " MIN_GROUPS "}",
                 ":id: expected non-empty string, got 5");
}

SW_TEST(policy_rules)
{
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": ["
                 "{\"name\": \"p\", \"file\": \"policies/scale.lua\"},"
                 "{\"name\": \"p\", \"file\": \"policies/other.lua\"}]}",
                 ":policies[1].name: duplicate policy name 'p' (first at policies[0])");
    ensure_scratch();
    char *want = sw_xasprintf(":policies[0].file: no such file %s/policies/nope.lua", scratch);
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": ["
                 "{\"name\": \"p\", \"file\": \"policies/nope.lua\"}]}",
                 want);
    free(want);
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": ["
                 "{\"name\": \"p\", \"file\": \"policies/scale.lua\"},"
                 "{\"name\": \"q\", \"file\": \"policies/other.lua\", \"interval\": \"50ms\"}]}",
                 ":policies[1].interval: expected duration >= 100ms, got string \"50ms\"");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": ["
                 "{\"name\": \"p\", \"file\": \"policies/scale.lua\"},"
                 "{\"name\": \"q\", \"file\": \"policies/other.lua\", \"interval\": \"fast\"}]}",
                 ":policies[1].interval: expected duration like \"10s\", got string \"fast\"");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [{\"file\": \"x.lua\"}]}",
                 ":policies[0].name: required");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [{\"name\": \"a.b\", "
                 "\"file\": \"x.lua\"}]}",
                 ":policies[0].name: expected string matching [A-Za-z0-9_-]{1,64}, got string "
                 "\"a.b\"");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [{\"name\": \"p\"}]}",
                 ":policies[0].file: required");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": {}}",
                 ":policies: expected array, got object");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [\"p\"]}",
                 ":policies[0]: expected object, got string \"p\"");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [{\"name\": \"p\", "
                 "\"file\": \"policies/scale.lua\", \"params\": []}]}",
                 ":policies[0].params: expected object, got array");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [{\"name\": \"p\", "
                 "\"file\": \"policies/scale.lua\", \"limits\": {\"instructions\": 0}}]}",
                 ":policies[0].limits.instructions: expected integer > 0, got 0");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [{\"name\": \"p\", "
                 "\"file\": \"policies/scale.lua\", \"limits\": {\"memory\": \"32MB\"}}]}",
                 ":policies[0].limits.memory: expected memory size like \"32MiB\", got string "
                 "\"32MB\"");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [{\"name\": \"p\", "
                 "\"file\": \"policies/scale.lua\", \"limits\": {\"time\": 0}}]}",
                 ":policies[0].limits.time: expected duration > 0, got 0");
    want = sw_xasprintf(":policies[0].file: %s/policies is not a regular file", scratch);
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [{\"name\": \"p\", "
                 "\"file\": \"policies\"}]}",
                 want);
    free(want);
}

SW_TEST(policy_memory_limit_forms)
{
    static const struct {
        const char *json;
        size_t bytes;
    } cases[] = {{"1048576", 1048576},   {"\"32MiB\"", 32u << 20}, {"\"512KiB\"", 512u << 10},
                 {"\"1GiB\"", 1u << 30}, {"\"2048B\"", 2048},      {"\"1.5MiB\"", 1572864}};
    for (size_t i = 0; i < SW_ARRAY_LEN(cases); i++) {
        char *text = sw_xasprintf("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [{\"name\":"
                                  " \"p\", \"file\": \"policies/scale.lua\", \"limits\": "
                                  "{\"memory\": %s}}]}",
                                  cases[i].json);
        struct sw_error err = {0};
        struct sw_config *c = parse_in_scratch(text, &err);
        free(text);
        SW_ASSERT(c != NULL);
        SW_ASSERT_EQ(c->policies[0].memory_limit, cases[i].bytes);
        sw_config_free(c);
    }
}

SW_TEST(secrets_are_refused_anywhere)
{
    EXPECT_ERROR(
        "{\"market\": \"akash\", \"plugins\": {\"akash\": {\"api_key\": \"abc\"}}, " MIN_GROUPS "}",
        ":plugins.akash.api_key: secrets do not belong in the config file; put the "
        "secret in an environment variable and name it with \"api_key_env\"");
    EXPECT_ERROR("{\"market\": \"sim\", " MIN_GROUPS ", \"policies\": [{\"name\": \"p\", "
                 "\"file\": \"policies/scale.lua\", \"params\": {\"hooks\": [{\"token\": 1}]}}]}",
                 ":policies[0].params.hooks[0].token: secrets do not belong in the config file; "
                 "put the secret in an environment variable and name it with \"token_env\"");
    EXPECT_ERROR("{\"password\": \"x\", \"market\": \"sim\", " MIN_GROUPS "}",
                 ":password: secrets do not belong in the config file; put the secret in an "
                 "environment variable and name it with \"password_env\"");
    EXPECT_ERROR(
        "{\"market\": \"dns\", \"plugins\": {\"knot\": {\"tsig_secret\": \"k\"}}, " MIN_GROUPS "}",
        ":plugins.knot.tsig_secret: secrets do not belong in the config file; put the "
        "secret in an environment variable and name it with \"tsig_secret_env\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 1, \"profile\": "
                 "{\"Secret\": 1}}}}",
                 ":groups.web.profile.Secret: secrets do not belong in the config file; put the "
                 "secret in an environment variable and name it with \"Secret_env\"");
    /* The _env form is the accepted one. */
    const char *text =
        "{\"market\": \"sim\", \"plugins\": {\"a\": {\"token_env\": \"T\"}}, " MIN_GROUPS "}";
    struct sw_error err = {0};
    struct sw_config *c = sw_config_parse(text, strlen(text), "s.json", &err);
    SW_ASSERT(c != NULL);
    sw_config_free(c);
}

SW_TEST(self_market_id_from_env)
{
    const char *base = "{\"market\": \"sim\", " MIN_GROUPS "%s}";
    struct sw_error err = {0};

    setenv("AKASH_DEPLOYMENT_SEQUENCE", "9001", 1);
    char *text = sw_xasprintf(base, "");
    struct sw_config *c = sw_config_parse(text, strlen(text), "s.json", &err);
    free(text);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->self_market_id, "9001");
    sw_config_free(c);

    setenv("AKASH_DEPLOYMENT_SEQUENCE", "", 1);
    text = sw_xasprintf(base, "");
    c = sw_config_parse(text, strlen(text), "s.json", &err);
    free(text);
    SW_ASSERT(c != NULL);
    SW_ASSERT(c->self_market_id == NULL);
    sw_config_free(c);
    unsetenv("AKASH_DEPLOYMENT_SEQUENCE");

    setenv("SW_TEST_SELF", "77", 1);
    text = sw_xasprintf(base, ", \"self\": {\"market_id_env\": \"SW_TEST_SELF\"}");
    c = sw_config_parse(text, strlen(text), "s.json", &err);
    free(text);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->self_market_id, "77");
    sw_config_free(c);
    unsetenv("SW_TEST_SELF");

    text = sw_xasprintf(base, ", \"self\": {\"market_id_env\": \"SW_TEST_SELF\"}");
    c = sw_config_parse(text, strlen(text), "s.json", &err);
    free(text);
    SW_ASSERT(c != NULL);
    SW_ASSERT(c->self_market_id == NULL);
    sw_config_free(c);

    text = sw_xasprintf(base, ", \"self\": {\"market_id\": \"123\"}");
    c = sw_config_parse(text, strlen(text), "s.json", &err);
    free(text);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->self_market_id, "123");
    sw_config_free(c);

    EXPECT_ERROR("{\"market\": \"sim\", \"self\": {\"market_id\": \"1\", \"market_id_env\": "
                 "\"X\"}, " MIN_GROUPS "}",
                 ":self: expected either market_id or market_id_env, not both");
}

SW_TEST(group_providers_pin_placement)
{
    const char *base = "{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 2}, "
                       "\"workers\": {\"max\": 8%s}}}";
    struct sw_error err = {0};

    char *text = sw_xasprintf(base, "");
    struct sw_config *c = sw_config_parse(text, strlen(text), "s.json", &err);
    free(text);
    SW_ASSERT(c != NULL);
    SW_ASSERT_EQ(c->groups[1].provider_count, 0);
    SW_ASSERT(c->groups[1].providers == NULL);
    sw_config_free(c);

    text = sw_xasprintf(base, ", \"providers\": [\"akash1a\", \"akash1b\"]");
    c = sw_config_parse(text, strlen(text), "s.json", &err);
    free(text);
    SW_ASSERT(c != NULL);
    SW_ASSERT_EQ(c->groups[1].provider_count, 2);
    SW_ASSERT_STREQ(c->groups[1].providers[0], "akash1a");
    SW_ASSERT_STREQ(c->groups[1].providers[1], "akash1b");
    SW_ASSERT_EQ(c->groups[0].provider_count, 0);
    sw_config_free(c);

    /* The master's provider, as Akash injects it, joins the list once. */
    setenv("SW_TEST_PROVIDER", "akash1master", 1);
    text = sw_xasprintf(base, ", \"provider_env\": \"SW_TEST_PROVIDER\"");
    c = sw_config_parse(text, strlen(text), "s.json", &err);
    free(text);
    SW_ASSERT(c != NULL);
    SW_ASSERT_EQ(c->groups[1].provider_count, 1);
    SW_ASSERT_STREQ(c->groups[1].providers[0], "akash1master");
    sw_config_free(c);

    text = sw_xasprintf(base, ", \"providers\": [\"akash1a\"], \"provider_env\": "
                              "\"SW_TEST_PROVIDER\"");
    c = sw_config_parse(text, strlen(text), "s.json", &err);
    free(text);
    SW_ASSERT(c != NULL);
    SW_ASSERT_EQ(c->groups[1].provider_count, 2);
    SW_ASSERT_STREQ(c->groups[1].providers[1], "akash1master");
    sw_config_free(c);

    text = sw_xasprintf(base, ", \"providers\": [\"akash1master\"], \"provider_env\": "
                              "\"SW_TEST_PROVIDER\"");
    c = sw_config_parse(text, strlen(text), "s.json", &err);
    free(text);
    SW_ASSERT(c != NULL);
    SW_ASSERT_EQ(c->groups[1].provider_count, 1);
    sw_config_free(c);

    /* Named but unset (or empty) is refused: pinning must not silently become "anywhere". */
    setenv("SW_TEST_PROVIDER", "", 1);
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"workers\": {\"max\": 8, "
                 "\"provider_env\": \"SW_TEST_PROVIDER\"}}}",
                 ":groups.workers.provider_env: environment variable SW_TEST_PROVIDER is not set "
                 "(Akash sets AKASH_PROVIDER inside a deployment; export it to run elsewhere)");
    unsetenv("SW_TEST_PROVIDER");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"workers\": {\"max\": 8, "
                 "\"provider_env\": \"SW_TEST_PROVIDER\"}}}",
                 ":groups.workers.provider_env: environment variable SW_TEST_PROVIDER is not set "
                 "(Akash sets AKASH_PROVIDER inside a deployment; export it to run elsewhere)");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"workers\": {\"max\": 8, "
                 "\"providers\": [\"a\", \"a\"]}}}",
                 ":groups.workers.providers[1]: duplicate \"a\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"workers\": {\"max\": 8, "
                 "\"providers\": \"a\"}}}",
                 ":groups.workers.providers: expected array of strings, got string \"a\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"groups\": {\"workers\": {\"max\": 8, "
                 "\"provider_env\": \"\"}}}",
                 ":groups.workers.provider_env: expected non-empty string, got string \"\"");
}

SW_TEST(metrics_rules)
{
    EXPECT_ERROR("{\"market\": \"sim\", \"metrics\": {\"rps\": {\"plugin\": \"p\"}}, " MIN_GROUPS
                 "}",
                 ":metrics.rps.query: required");
    EXPECT_ERROR("{\"market\": \"sim\", \"metrics\": {\"rps\": {\"query\": \"q\"}}, " MIN_GROUPS
                 "}",
                 ":metrics.rps.plugin: required");
    EXPECT_ERROR("{\"market\": \"sim\", \"metrics\": {\"rps\": []}, " MIN_GROUPS "}",
                 ":metrics.rps: expected object, got array");
    EXPECT_ERROR("{\"market\": \"sim\", \"metrics\": {\"rps\": {\"plugin\": \"p\", \"query\": "
                 "\"q\", \"every\": \"often\"}}, " MIN_GROUPS "}",
                 ":metrics.rps.every: expected duration like \"10s\", got string \"often\"");
}

SW_TEST(duration_parse)
{
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {{"250ms", 250},   {"10s", 10000}, {"5m", 300000},  {"2h", 7200000},
                {"1d", 86400000}, {"1.5s", 1500}, {"0", 0},        {"10", 10000},
                {"0.25", 250},    {"0.5ms", 1},   {"90m", 5400000}};
    for (size_t i = 0; i < SW_ARRAY_LEN(good); i++) {
        int64_t ms = -1;
        SW_ASSERT_EQ(sw_duration_parse(good[i].text, &ms), 0);
        SW_ASSERT_EQ(ms, good[i].ms);
    }
    static const char *const bad[] = {"",    "s",    "-1s",   "10 s", "1.s",  ".5s",
                                      "10x", "1e3s", "10sec", " 10s", "ms10", "99999999999999999d"};
    for (size_t i = 0; i < SW_ARRAY_LEN(bad); i++) {
        int64_t ms = 42;
        SW_ASSERT_EQ(sw_duration_parse(bad[i], &ms), SW_EINVAL);
        SW_ASSERT_EQ(ms, 42);
    }
    SW_ASSERT_EQ(sw_duration_parse(NULL, NULL), SW_EINVAL);

    cJSON *num = cJSON_CreateNumber(2.5);
    int64_t ms = 0;
    SW_ASSERT_EQ(sw_duration_from_json(num, &ms), 0);
    SW_ASSERT_EQ(ms, 2500);
    cJSON_SetNumberValue(num, -1);
    SW_ASSERT_EQ(sw_duration_from_json(num, &ms), SW_EINVAL);
    cJSON_Delete(num);
    cJSON *str = cJSON_CreateString("3m");
    SW_ASSERT_EQ(sw_duration_from_json(str, &ms), 0);
    SW_ASSERT_EQ(ms, 180000);
    cJSON_Delete(str);
    cJSON *t = cJSON_CreateTrue();
    SW_ASSERT_EQ(sw_duration_from_json(t, &ms), SW_EINVAL);
    cJSON_Delete(t);
    SW_ASSERT_EQ(sw_duration_from_json(NULL, &ms), SW_EINVAL);
}

SW_TEST(json_type_names)
{
    const char *text = "[\"s\", 1, 1.5, true, false, null, {}, []]";
    struct sw_error err = {0};
    cJSON *root = sw_json_parse_relaxed(text, strlen(text), "t.json", &err);
    SW_ASSERT(root != NULL);
    static const char *const want[] = {"string",  "integer", "number", "boolean",
                                       "boolean", "null",    "object", "array"};
    size_t i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        SW_ASSERT_STREQ(sw_json_type_name(item), want[i]);
        i++;
    }
    SW_ASSERT_EQ(i, 8);
    cJSON_Delete(root);
}

SW_TEST(lookups_tolerate_null)
{
    SW_ASSERT(sw_config_group(NULL, "web") == NULL);
    SW_ASSERT(sw_config_plugin(NULL, "x") == NULL);
    sw_config_free(NULL);
}

SW_TEST(admin_section)
{
    struct sw_error err = {0};
    /* Absent: disabled. */
    struct sw_config *c = parse_in_scratch("{\"market\": \"sim\", " MIN_GROUPS "}", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT(!c->admin.enabled);
    SW_ASSERT(c->admin.host == NULL);
    sw_config_free(c);

    /* Present but empty: loopback on the default port, no token (mutations refused). */
    c = parse_in_scratch("{\"market\": \"sim\", \"admin\": {}, " MIN_GROUPS "}", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT(c->admin.enabled);
    SW_ASSERT_STREQ(c->admin.host, "127.0.0.1");
    SW_ASSERT_EQ(c->admin.port, 9464);
    SW_ASSERT(c->admin.token_env == NULL);
    sw_config_free(c);

    c = parse_in_scratch("{\"market\": \"sim\", \"admin\": {\"listen\": \"127.0.0.1:19464\", "
                         "\"token_env\": \"STEWARD_ADMIN_TOKEN\"}, " MIN_GROUPS "}", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->admin.host, "127.0.0.1");
    SW_ASSERT_EQ(c->admin.port, 19464);
    SW_ASSERT_STREQ(c->admin.token_env, "STEWARD_ADMIN_TOKEN");
    sw_config_free(c);

    c = parse_in_scratch("{\"market\": \"sim\", \"admin\": {\"listen\": \"[::1]:0\"}, "
                         MIN_GROUPS "}", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->admin.host, "::1");
    SW_ASSERT_EQ(c->admin.port, 0);
    sw_config_free(c);

    c = parse_in_scratch("{\"market\": \"sim\", \"admin\": {\"listen\": \":9000\"}, "
                         MIN_GROUPS "}", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->admin.host, "127.0.0.1");
    SW_ASSERT_EQ(c->admin.port, 9000);
    sw_config_free(c);

    /* Any other interface with a token is fine. */
    c = parse_in_scratch("{\"market\": \"sim\", \"admin\": {\"listen\": \"0.0.0.0:9464\", "
                         "\"token_env\": \"T\"}, " MIN_GROUPS "}", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->admin.host, "0.0.0.0");
    sw_config_free(c);

    EXPECT_ERROR("{\"market\": \"sim\", \"admin\": {\"listen\": \"0.0.0.0:9464\"}, " MIN_GROUPS "}",
                 ":admin.token_env: required when admin.listen (0.0.0.0) is not a loopback "
                 "address");
    EXPECT_ERROR("{\"market\": \"sim\", \"admin\": {\"listen\": \"[2001:db8::1]:80\"}, "
                 MIN_GROUPS "}",
                 ":admin.token_env: required when admin.listen (2001:db8::1) is not a loopback "
                 "address");
    EXPECT_ERROR("{\"market\": \"sim\", \"admin\": {\"listen\": \"example.com:80\"}, "
                 MIN_GROUPS "}",
                 ":admin.listen: expected \"IP:port\" like \"127.0.0.1:9464\", got string "
                 "\"example.com:80\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"admin\": {\"listen\": \"127.0.0.1:70000\"}, "
                 MIN_GROUPS "}",
                 ":admin.listen: expected \"IP:port\" like \"127.0.0.1:9464\", got string "
                 "\"127.0.0.1:70000\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"admin\": {\"listen\": \"127.0.0.1\"}, " MIN_GROUPS "}",
                 ":admin.listen: expected \"IP:port\" like \"127.0.0.1:9464\", got string "
                 "\"127.0.0.1\"");
    EXPECT_ERROR("{\"market\": \"sim\", \"admin\": {\"listen\": 9464}, " MIN_GROUPS "}",
                 ":admin.listen: expected non-empty string, got 9464");
    EXPECT_ERROR("{\"market\": \"sim\", \"admin\": {\"port\": 1}, " MIN_GROUPS "}",
                 ":admin: unknown key 'port' (known: listen, token_env)");
    /* The token itself never goes in the file. */
    EXPECT_ERROR("{\"market\": \"sim\", \"admin\": {\"token\": \"abc\"}, " MIN_GROUPS "}",
                 ":admin.token: secrets do not belong in the config file; put the secret in an "
                 "environment variable and name it with \"token_env\"");
}

/* ---- dns ---- */

#define DNS_BASE "{\"id\": \"edge-1\", \"market\": \"sim\", \"groups\": {\"web\": {\"max\": 2}, " \
                 "\"api\": {\"max\": 1}}, "

SW_TEST(dns_section_defaults_and_names)
{
    struct sw_error err = {0};
    struct sw_config *c = parse_in_scratch(
        DNS_BASE "\"dns\": {\"plugin\": \"dns_pdns\", \"zone\": \"Example.TEST\", "
        "\"records\": {\"web\": {\"name\": \"WWW\"}, \"api\": {\"name\": \"api.v1.example.test.\", "
        "\"per_region\": false}}}}",
        &err);
    if (c == NULL)
        fprintf(stderr, "    %s\n", err.msg);
    SW_ASSERT(c != NULL);
    SW_ASSERT(c->dns != NULL);
    SW_ASSERT_STREQ(c->dns->plugin, "dns_pdns");
    SW_ASSERT_STREQ(c->dns->zone, "example.test.");
    SW_ASSERT_EQ(c->dns->ttl, 60);
    SW_ASSERT_STREQ(c->dns->owner_id, "edge-1");
    SW_ASSERT_EQ(c->dns->mode, SW_DNS_MODE_SYNC);
    SW_ASSERT_EQ(c->dns->drain_ms, 120000);
    SW_ASSERT_EQ(c->dns->resync_ms, 60000);
    SW_ASSERT_EQ(c->dns->record_count, 2);
    SW_ASSERT_STREQ(c->dns->records[0].group, "web");
    SW_ASSERT_STREQ(c->dns->records[0].name, "www.example.test.");
    SW_ASSERT(c->dns->records[0].per_region);
    SW_ASSERT_STREQ(c->dns->records[1].name, "api.v1.example.test.");
    SW_ASSERT(!c->dns->records[1].per_region);
    sw_config_free(c);

    c = parse_in_scratch(DNS_BASE "\"dns\": {\"plugin\": \"dns_rfc2136\", \"zone\": \"ex.test.\", "
                         "\"ttl\": 30, \"owner_id\": \"blue\", \"mode\": \"upsert-only\", "
                         "\"drain\": \"5s\", \"resync\": \"2s\", "
                         "\"records\": {\"web\": {\"name\": \"www\"}}}}",
                         &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_EQ(c->dns->ttl, 30);
    SW_ASSERT_STREQ(c->dns->owner_id, "blue");
    SW_ASSERT_EQ(c->dns->mode, SW_DNS_MODE_UPSERT_ONLY);
    SW_ASSERT_EQ(c->dns->drain_ms, 5000);
    SW_ASSERT_EQ(c->dns->resync_ms, 2000);
    sw_config_free(c);

    c = parse_in_scratch(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\", "
                         "\"ttl\": 45, \"records\": {}}}", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_EQ(c->dns->drain_ms, 90000); /* 2 x ttl */
    SW_ASSERT_EQ(c->dns->record_count, 0);
    sw_config_free(c);

    c = parse_in_scratch(DNS_BASE "\"seed\": 1}", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT(c->dns == NULL);
    sw_config_free(c);
}

SW_TEST(dns_section_errors)
{
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"zone\": \"ex.test.\", \"records\": {}}}",
                 ":dns.plugin: required");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"records\": {}}}", ":dns.zone: required");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex..test\", \"records\": {}}}",
                 ":dns.zone: expected DNS zone name like \"example.com.\", got string "
                 "\"ex..test\"");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\"}}",
                 ":dns.records: required (an object: group -> {\"name\": ...})");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\", \"ttl\": 0, "
                 "\"records\": {}}}",
                 ":dns.ttl: expected integer from 1 to 2^31-1, got 0");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\", \"mode\": \"all\", "
                 "\"records\": {}}}",
                 ":dns.mode: expected \"sync\" or \"upsert-only\", got string \"all\"");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\", "
                 "\"owner_id\": \"a,b\", \"records\": {}}}",
                 ":dns.owner_id: expected string matching [A-Za-z0-9_-]{1,64}, got string "
                 "\"a,b\"");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\", \"drain\": \"x\", "
                 "\"records\": {}}}",
                 ":dns.drain: expected duration like \"10s\", got string \"x\"");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\", "
                 "\"records\": {\"db\": {\"name\": \"db\"}}}}",
                 ":dns.records.db: no group named 'db' in \"groups\"");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\", "
                 "\"records\": {\"web\": {}}}}",
                 ":dns.records.web.name: required");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\", "
                 "\"records\": {\"web\": {\"name\": \"w w\"}}}}",
                 ":dns.records.web.name: expected DNS name (labels of [A-Za-z0-9_-], the first "
                 "at most 54 characters), got string \"w w\"");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\", "
                 "\"records\": {\"web\": {\"name\": \"www.other.test.\"}}}}",
                 ":dns.records.web.name: \"www.other.test.\" is not inside the zone "
                 "\"ex.test.\"");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\", "
                 "\"records\": {\"web\": {\"name\": \"www\"}, \"api\": {\"name\": \"WWW\"}}}}",
                 ":dns.records.api.name: \"www.ex.test.\" is already the name of group 'web'");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\", "
                 "\"records\": {\"web\": {\"name\": \"www\", \"per_region\": 1}}}}",
                 ":dns.records.web.per_region: expected boolean, got 1");
    EXPECT_ERROR(DNS_BASE "\"dns\": {\"plugin\": \"p\", \"zone\": \"ex.test.\", \"ttl\": 5, "
                 "\"weights\": 1, \"records\": {}}}",
                 ":dns: unknown key 'weights' (known: plugin, zone, ttl, owner_id, mode, drain, "
                 "resync, records)");
}

SW_TEST_MAIN()
