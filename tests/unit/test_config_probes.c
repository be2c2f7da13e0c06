/* test_config_probes.c — the "probes" section of the configuration (runtime's probe
 * scheduler): defaults, every field, and the exact message of each malformed value. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "sw_test.h"

#define HEAD "{\"market\": \"market_sim\", \"groups\": {\"web\": {\"max\": 2}}"

static struct sw_config *parse(const char *text, struct sw_error *err)
{
    return sw_config_parse(text, strlen(text), "/etc/steward/steward.jsonc", err);
}

static void expect_error(const char *text, const char *message)
{
    struct sw_error err = {0};
    struct sw_config *c = parse(text, &err);
    if (c != NULL) {
        sw_config_free(c);
        SW_FAIL_AT("accepted: %s", text);
    }
    SW_ASSERT_EQ(err.code, SW_ECONFIG);
    SW_ASSERT_STREQ(err.msg, message);
}

SW_TEST(absent_means_no_probes)
{
    struct sw_error err = {0};
    struct sw_config *c = parse(HEAD "}", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT(c->probes.plugin == NULL);
    SW_ASSERT_EQ(c->probes.target_count, 0);
    sw_config_free(c);
}

SW_TEST(defaults)
{
    struct sw_error err = {0};
    struct sw_config *c = parse(HEAD ", \"probes\": {\"plugin\": \"probe_http\"}}", &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_STREQ(c->probes.plugin, "probe_http");
    SW_ASSERT_EQ(c->probes.every_ms, 15000);
    SW_ASSERT_STREQ(c->probes.path, "/");
    SW_ASSERT(c->probes.target_template == NULL);
    SW_ASSERT_EQ(c->probes.target_count, 0);
    sw_config_free(c);
}

SW_TEST(every_field)
{
    struct sw_error err = {0};
    struct sw_config *c =
        parse(HEAD ", \"probes\": {\"plugin\": \"probe_http\", \"every\": \"2s\","
                   " \"targets\": [\"https://example.test/health\", \"http://10.0.0.1:8080/\"],"
                   " \"path\": \"/healthz\","
                   " \"target_template\": \"http://127.0.0.1:9/health/{market_id}\"}}",
              &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT_EQ(c->probes.every_ms, 2000);
    SW_ASSERT_EQ(c->probes.target_count, 2);
    SW_ASSERT_STREQ(c->probes.targets[0], "https://example.test/health");
    SW_ASSERT_STREQ(c->probes.targets[1], "http://10.0.0.1:8080/");
    SW_ASSERT_STREQ(c->probes.path, "/healthz");
    SW_ASSERT_STREQ(c->probes.target_template, "http://127.0.0.1:9/health/{market_id}");
    sw_config_free(c);
}

SW_TEST(malformed_values_name_the_path)
{
    expect_error(HEAD ", \"probes\": {}}", "/etc/steward/steward.jsonc:probes.plugin: required");
    expect_error(HEAD ", \"probes\": {\"plugin\": \"probe_http\", \"evry\": \"1s\"}}",
                 "/etc/steward/steward.jsonc:probes: unknown key 'evry' (known: plugin, every, "
                 "targets, path, target_template)");
    expect_error(HEAD ", \"probes\": {\"plugin\": \"probe_http\", \"every\": \"10ms\"}}",
                 "/etc/steward/steward.jsonc:probes.every: expected duration >= 100ms, got "
                 "string \"10ms\"");
    expect_error(HEAD ", \"probes\": {\"plugin\": \"probe_http\", \"targets\": "
                      "[\"https://a.test/\", \"a.test\"]}}",
                 "/etc/steward/steward.jsonc:probes.targets[1]: expected http:// or https:// "
                 "URL, got string \"a.test\"");
    expect_error(HEAD ", \"probes\": {\"plugin\": \"probe_http\", \"path\": \"health\"}}",
                 "/etc/steward/steward.jsonc:probes.path: expected path starting with '/', got "
                 "string \"health\"");
    expect_error(HEAD ", \"probes\": {\"plugin\": \"probe_http\", \"target_template\": "
                      "\"{uri}/health\"}}",
                 "/etc/steward/steward.jsonc:probes.target_template: expected URL template like "
                 "\"https://{uri}/health\", got string \"{uri}/health\"");
    expect_error(HEAD ", \"probes\": [1]}",
                 "/etc/steward/steward.jsonc:probes: expected object, got array");
}

SW_TEST_MAIN()
