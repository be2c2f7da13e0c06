/* test_market_server.c — the local marketplace's YAML subset and SDL derivation (the HTTP
 * behaviour is covered end to end by tests/integration/test_market_server.sh), plus the
 * command line's refusals, which never start a server. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "market_server.h"
#include "sw_test.h"

static const char WEB_SDL[] = "# a comment line\n"
                              "version: \"2.0\"\n"
                              "services:\n"
                              "  web:\n"
                              "    image: nginx:1.25.3   # trailing comment\n"
                              "    env:\n"
                              "      - STEWARD_KEY=web/eu-west/1\n"
                              "      - 'QUOTED=it''s'\n"
                              "    expose:\n"
                              "      - port: 8080\n"
                              "        as: 80\n"
                              "        accept: [www.example.com]\n"
                              "        to:\n"
                              "          - global: true\n"
                              "profiles:\n"
                              "  compute:\n"
                              "    web:\n"
                              "      resources:\n"
                              "        cpu: {units: 0.5}\n"
                              "        memory:\n"
                              "          size: 512Mi\n"
                              "        storage:\n"
                              "          - size: 1Gi\n"
                              "  placement:\n"
                              "    eu-west:\n"
                              "      attributes:\n"
                              "        location-region: eu-west\n"
                              "      signedBy:\n"
                              "        anyOf:\n"
                              "          - akash1auditor\n"
                              "      pricing:\n"
                              "        web:\n"
                              "          denom: uact\n"
                              "          amount: 200\n"
                              "deployment:\n"
                              "  web:\n"
                              "    eu-west:\n"
                              "      profile: web\n"
                              "      count: 2\n";

static cJSON *parse(const char *text, struct sw_error *err)
{
    return sw_market_yaml_parse(text, strlen(text), err);
}

static const char *str_at(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

SW_TEST(yaml_block_mappings_sequences_and_scalars)
{
    struct sw_error err = {0};
    cJSON *root = parse("a: 1\n"
                        "b:\n"
                        "  c: hello world\n"
                        "  d: \"quoted: # not a comment\"\n"
                        "list:\n"
                        "- x\n"
                        "- 2.5\n"
                        "- k: v\n"
                        "  k2: v2\n"
                        "- - nested\n"
                        "flags: [true, false, null, ~, 'x, y']\n"
                        "map: {denom: uact, amount: 12.5}\n"
                        "empty:\n"
                        "tail: done # comment\n",
                        &err);
    SW_ASSERT(root != NULL);
    SW_ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(root, "a")->valuedouble, 1);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "b");
    SW_ASSERT_STREQ(str_at(b, "c"), "hello world");
    SW_ASSERT_STREQ(str_at(b, "d"), "quoted: # not a comment");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "list");
    SW_ASSERT_EQ(cJSON_GetArraySize(list), 4);
    SW_ASSERT_STREQ(cJSON_GetArrayItem(list, 0)->valuestring, "x");
    SW_ASSERT_NEAR(cJSON_GetArrayItem(list, 1)->valuedouble, 2.5, 1e-9);
    SW_ASSERT_STREQ(str_at(cJSON_GetArrayItem(list, 2), "k2"), "v2");
    SW_ASSERT_STREQ(cJSON_GetArrayItem(cJSON_GetArrayItem(list, 3), 0)->valuestring, "nested");
    const cJSON *flags = cJSON_GetObjectItemCaseSensitive(root, "flags");
    SW_ASSERT(cJSON_IsTrue(cJSON_GetArrayItem(flags, 0)));
    SW_ASSERT(cJSON_IsFalse(cJSON_GetArrayItem(flags, 1)));
    SW_ASSERT(cJSON_IsNull(cJSON_GetArrayItem(flags, 2)));
    SW_ASSERT(cJSON_IsNull(cJSON_GetArrayItem(flags, 3)));
    SW_ASSERT_STREQ(cJSON_GetArrayItem(flags, 4)->valuestring, "x, y");
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "map");
    SW_ASSERT_STREQ(str_at(map, "denom"), "uact");
    SW_ASSERT_NEAR(cJSON_GetObjectItemCaseSensitive(map, "amount")->valuedouble, 12.5, 1e-9);
    SW_ASSERT(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "empty")));
    SW_ASSERT_STREQ(str_at(root, "tail"), "done");
    cJSON_Delete(root);
}

SW_TEST(yaml_block_scalars_and_escapes)
{
    struct sw_error err = {0};
    cJSON *root = parse("lit: |\n"
                        "  line one\n"
                        "  # kept\n"
                        "\n"
                        "  line two\n"
                        "fold: >-\n"
                        "  a\n"
                        "  b\n"
                        "esc: \"tab\\there \\u00e9\"\n"
                        "apostrophe: don't # comment\n",
                        &err);
    SW_ASSERT(root != NULL);
    SW_ASSERT_STREQ(str_at(root, "lit"), "line one\n# kept\n\nline two\n");
    SW_ASSERT_STREQ(str_at(root, "fold"), "a b");
    SW_ASSERT_STREQ(str_at(root, "esc"), "tab\there \xc3\xa9");
    SW_ASSERT_STREQ(str_at(root, "apostrophe"), "don't");
    cJSON_Delete(root);
}

SW_TEST(yaml_refuses_what_it_does_not_support_with_line_numbers)
{
    static const struct {
        const char *text;
        const char *message;
    } cases[] = {
        {"a: 1\n\tb: 2\n", "line 2: tab in indentation"},
        {"a: 1\n   b: 2\n", "line 2: unexpected indentation"},
        {"a: \"open\n", "line 1: unterminated double-quoted"},
        {"a: &anchor 1\n", "line 1: '&'"},
        {"a: *alias\n", "line 1: '*'"},
        {"a: 1\na: 2\n", "line 2: duplicate key \"a\""},
        {"a: 1\n---\nb: 2\n", "line 2: only one YAML document"},
        {"a: [1, 2\n", "line 1: unclosed '['"},
        {"a:\n  - x\n  y: 1\n", "line 3:"},
        {"just a line\nand another\n", "multi-line plain scalars"},
        {"a: \"x\" trailing\n", "unexpected text after a value"},
        {"? complex\n", "line 1:"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sw_error err = {0};
        cJSON *root = parse(cases[i].text, &err);
        if (root != NULL)
            SW_FAIL_AT("case %zu parsed: %s", i, cases[i].text);
        SW_ASSERT_EQ(err.code, SW_EINVAL);
        SW_ASSERT_CONTAINS(err.msg, cases[i].message);
    }
}

SW_TEST(yaml_depth_is_capped)
{
    char text[8192];
    size_t o = 0;
    for (int i = 0; i < 80 && o + 200 < sizeof(text); i++) {
        for (int s = 0; s < i; s++)
            text[o++] = ' ';
        o += (size_t)snprintf(text + o, sizeof(text) - o, "k%d:\n", i);
    }
    text[o] = '\0';
    struct sw_error err = {0};
    SW_ASSERT(parse(text, &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "nesting deeper than 64");

    char flow[600];
    memset(flow, '[', 300);
    flow[300] = '\0';
    char doc[700];
    snprintf(doc, sizeof(doc), "a: %s\n", flow);
    SW_ASSERT(parse(doc, &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "nesting deeper");
}

SW_TEST(sdl_describe_derives_groups_prices_services_and_manifest)
{
    struct sw_error err = {0};
    cJSON *d = sw_market_sdl_describe(WEB_SDL, strlen(WEB_SDL), &err);
    if (d == NULL)
        SW_FAIL_AT("%s", err.msg);
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(d, "groups");
    SW_ASSERT_EQ(cJSON_GetArraySize(groups), 1);
    const cJSON *g = cJSON_GetArrayItem(groups, 0);
    SW_ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(g, "gseq")->valuedouble, 1);
    SW_ASSERT_STREQ(str_at(g, "name"), "eu-west");
    SW_ASSERT_STREQ(str_at(cJSON_GetObjectItemCaseSensitive(g, "attributes"), "location-region"),
                    "eu-west");
    const cJSON *any_of = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(g, "signed_by"), "any_of");
    SW_ASSERT_STREQ(cJSON_GetArrayItem(any_of, 0)->valuestring, "akash1auditor");
    /* 200 uact per replica × 2 replicas, as an 18-decimal DecCoin amount. */
    SW_ASSERT_STREQ(str_at(g, "max_price"), "400.000000000000000000");
    SW_ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(g, "units")->valuedouble, 2);
    const cJSON *svc = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(g, "services"), 0);
    SW_ASSERT_STREQ(str_at(svc, "name"), "web");
    SW_ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(svc, "global")));
    SW_ASSERT_STREQ(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(svc, "accept"), 0)->valuestring,
        "www.example.com");
    const cJSON *offer =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(g, "resources_offer"), 0);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(offer, "resources");
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(res, "cpu");
    SW_ASSERT_STREQ(str_at(cJSON_GetObjectItemCaseSensitive(cpu, "units"), "val"), "500");
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(res, "memory");
    SW_ASSERT_STREQ(str_at(cJSON_GetObjectItemCaseSensitive(mem, "quantity"), "val"), "536870912");
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(d, "env");
    SW_ASSERT_STREQ(str_at(env, "STEWARD_KEY"), "web/eu-west/1");
    SW_ASSERT_STREQ(str_at(env, "QUOTED"), "it's");
    const char *manifest = str_at(d, "manifest");
    SW_ASSERT(manifest != NULL);
    cJSON *m = cJSON_Parse(manifest);
    SW_ASSERT(cJSON_IsArray(m));
    SW_ASSERT_STREQ(str_at(cJSON_GetArrayItem(m, 0), "name"), "eu-west");
    SW_ASSERT_CONTAINS(manifest, "\"image\":\"nginx:1.25.3\"");
    cJSON_Delete(m);

    /* Same text, same manifest: clients resend it byte for byte. */
    cJSON *again = sw_market_sdl_describe(WEB_SDL, strlen(WEB_SDL), &err);
    SW_ASSERT_STREQ(str_at(again, "manifest"), manifest);
    cJSON_Delete(again);
    cJSON_Delete(d);
}

SW_TEST(sdl_groups_are_ordered_by_placement_name)
{
    const char *text =
        "version: '2.1'\n"
        "services:\n"
        "  api: {image: api:1}\n"
        "  db: {image: pg:16}\n"
        "profiles:\n"
        "  compute:\n"
        "    small: {resources: {cpu: {units: 250m}, memory: {size: 1G}, storage: {size: 2Gi}}}\n"
        "  placement:\n"
        "    zeta: {pricing: {small: {denom: uact, amount: \"10.5\"}}}\n"
        "    alpha:\n"
        "      attributes: {location-region: as-east, tier: 3}\n"
        "      pricing: {small: {denom: uact, amount: 7}}\n"
        "deployment:\n"
        "  api: {zeta: {profile: small, count: 3}}\n"
        "  db: {alpha: {profile: small, count: 1}, zeta: {profile: small, count: 1}}\n";
    struct sw_error err = {0};
    cJSON *d = sw_market_sdl_describe(text, strlen(text), &err);
    if (d == NULL)
        SW_FAIL_AT("%s", err.msg);
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(d, "groups");
    SW_ASSERT_EQ(cJSON_GetArraySize(groups), 2);
    const cJSON *alpha = cJSON_GetArrayItem(groups, 0);
    const cJSON *zeta = cJSON_GetArrayItem(groups, 1);
    SW_ASSERT_STREQ(str_at(alpha, "name"), "alpha");
    SW_ASSERT_STREQ(str_at(cJSON_GetObjectItemCaseSensitive(alpha, "attributes"), "tier"), "3");
    SW_ASSERT_STREQ(str_at(alpha, "max_price"), "7.000000000000000000");
    SW_ASSERT_STREQ(str_at(zeta, "name"), "zeta");
    SW_ASSERT_STREQ(str_at(zeta, "max_price"), "42.000000000000000000"); /* 10.5 × (3 + 1) */
    SW_ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(zeta, "units")->valuedouble, 4);
    SW_ASSERT(!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(zeta, "services"), 0), "global")));
    cJSON_Delete(d);
}

static void expect_sdl_error(const char *from, const char *to, const char *message)
{
    /* WEB_SDL with one substitution. */
    const char *at = strstr(WEB_SDL, from);
    if (at == NULL)
        SW_FAIL_AT("fixture lacks \"%s\"", from);
    char text[4096];
    snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - WEB_SDL), WEB_SDL, to, at + strlen(from));
    struct sw_error err = {0};
    cJSON *d = sw_market_sdl_describe(text, strlen(text), &err);
    if (d != NULL) {
        cJSON_Delete(d);
        SW_FAIL_AT("accepted: %s → %s", from, to);
    }
    SW_ASSERT_EQ(err.code, SW_EINVAL);
    SW_ASSERT_CONTAINS(err.msg, message);
}

SW_TEST(sdl_errors_name_the_path)
{
    expect_sdl_error("version: \"2.0\"", "version: \"1.0\"", "sdl: version");
    expect_sdl_error("count: 2", "count: 0", "deployment.web.eu-west.count");
    expect_sdl_error("count: 2", "count: 1.5", "deployment.web.eu-west.count");
    expect_sdl_error("profile: web\n", "profile: nope\n", "deployment.web.eu-west.profile");
    expect_sdl_error("denom: uact", "denom: uakt", "pricing.web.denom");
    expect_sdl_error("amount: 200", "amount: -1", "pricing.web.amount");
    expect_sdl_error("units: 0.5", "units: 0", "cpu.units");
    expect_sdl_error("size: 512Mi", "size: lots", "memory.size");
    expect_sdl_error("image: nginx:1.25.3", "image: \"\"", "services.web.image");
    expect_sdl_error("  web:\n    image", "  Web:\n    image", "services.Web");
    expect_sdl_error("STEWARD_KEY=web/eu-west/1", "NOEQUALS", "services.web.env");
    expect_sdl_error("port: 8080", "port: 70000", "expose[0].port");
    expect_sdl_error("deployment:\n  web:", "deployment:\n  other:", "services.web: not deployed");
    expect_sdl_error("    eu-west:\n      profile", "    asia:\n      profile",
                     "deployment.web.asia: no such placement");
    expect_sdl_error("version", "\tversion", "invalid YAML: line 2: tab");
}

/* Mutated SDL (bytes flipped, dropped, duplicated; lines dropped) never crashes the parser
 * and every refusal carries a message. Run under ASan in CI. */
SW_TEST(sdl_mutation_fuzz_never_crashes)
{
    uint64_t state = 12345;
    size_t base = strlen(WEB_SDL);
    int accepted = 0;
    for (int round = 0; round < 4000; round++) {
        char text[4096];
        memcpy(text, WEB_SDL, base + 1);
        size_t len = base;
        int edits = 1 + (int)(state % 4);
        for (int e = 0; e < edits && len > 2; e++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = (size_t)(state >> 33) % len;
            int kind = (int)((state >> 20) % 5);
            static const char alphabet[] = " :-\n\t#'\"[]{}|>&*!a0.";
            if (kind == 0) {
                text[pos] = alphabet[(state >> 40) % (sizeof(alphabet) - 1)];
            } else if (kind == 1) {
                memmove(text + pos, text + pos + 1, len - pos);
                len--;
            } else if (kind == 2 && len + 1 < sizeof(text)) {
                memmove(text + pos + 1, text + pos, len - pos + 1);
                len++;
            } else if (kind == 3) {
                char *nl = memchr(text + pos, '\n', len - pos);
                if (nl != NULL) {
                    char *start = text + pos;
                    while (start > text && start[-1] != '\n')
                        start--;
                    memmove(start, nl + 1, (size_t)(text + len - nl));
                    len -= (size_t)(nl + 1 - start);
                }
            } else {
                text[pos] = (char)(state >> 48);
            }
        }
        text[len] = '\0';
        struct sw_error err = {0};
        cJSON *d = sw_market_sdl_describe(text, len, &err);
        if (d != NULL) {
            accepted++;
            cJSON_Delete(d);
        } else {
            SW_ASSERT_EQ(err.code, SW_EINVAL);
            SW_ASSERT(err.msg[0] != '\0');
        }
    }
    /* Some mutations (inside comments or strings) keep the document valid. */
    SW_ASSERT(accepted > 0);
}

SW_TEST(command_line_refusals_exit_2_without_serving)
{
    char *no_args[] = {"market", NULL};
    SW_ASSERT_EQ(sw_market_server_main(1, no_args), 2);
    char *bad_sub[] = {"market", "dance", NULL};
    SW_ASSERT_EQ(sw_market_server_main(2, bad_sub), 2);
    char *missing[] = {"market", "serve", "--listen", "127.0.0.1:0", NULL};
    SW_ASSERT_EQ(sw_market_server_main(4, missing), 2);
    char *bad_rate[] = {"market", "serve", "--rate-429", "1.5", NULL};
    SW_ASSERT_EQ(sw_market_server_main(4, bad_rate), 2);
    char *bad_speed[] = {"market", "serve", "--speed", "0", NULL};
    SW_ASSERT_EQ(sw_market_server_main(4, bad_speed), 2);
    unsetenv("SW_TEST_MARKET_KEY");
    char *no_key[] = {
        "market",   "serve",       "--listen",          "127.0.0.1:0",   "--state",
        ":memory:", "--providers", "/nonexistent.json", "--api-key-env", "SW_TEST_MARKET_KEY",
        NULL};
    SW_ASSERT_EQ(sw_market_server_main(10, no_key), 2);
    setenv("SW_TEST_MARKET_KEY", "key-for-test", 1);
    /* The key is set now: the missing providers file is the configuration error. */
    SW_ASSERT_EQ(sw_market_server_main(10, no_key), 2);
    unsetenv("SW_TEST_MARKET_KEY");
}

SW_TEST_MAIN()
