/* test_event_json.c — a plugin event's JSON text: the copying path must print exactly what
 * the cJSON tree printed (the journal and `steward replay` see this text), and the
 * object check must never call something an object that cJSON does not parse as one. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event_json.h"
#include "mem.h"
#include "sw_test.h"

static void same_as_tree(const char *type, const char *market_id, const char *reason,
                         const char *data_json)
{
    char *fast = sw_event_json_build(type, market_id, reason, data_json);
    char *tree = sw__event_json_build_tree(type, market_id, reason, data_json);
    SW_ASSERT(fast != NULL && tree != NULL);
    if (strcmp(fast, tree) != 0)
        fprintf(stderr, "data %s\n", data_json != NULL ? data_json : "(null)");
    SW_ASSERT_STREQ(fast, tree);
    free(fast);
    free(tree);
}

SW_TEST(builds_what_the_cjson_tree_printed)
{
    static const char *const data[] = {
        NULL,
        "{}",
        "{\"provider\":\"akash1p\",\"price_uact\":\"50.000000000000000000\","
        "\"price_usd_hour\":0.0123,\"rule\":\"lowest price\",\"key\":\"web/r0/1\","
        "\"region\":\"r0\",\"bids\":[{\"provider\":\"akash1p\",\"state\":\"open\","
        "\"price_uact\":\"50\",\"created_at\":123456,\"verdict\":\"ok\"}]}",
        /* printed differently by cJSON: must go through the tree */
        "{ \"a\": 1 }",
        "{\"a\":1.0}",
        "{\"a\":1e2}",
        "{\"a\":1E2}",
        "{\"a\":-0}",
        "{\"a\":-0.0}",
        "{\"a\":0.1}",
        "{\"a\":1.5,\"b\":-2.25,\"c\":1e-7,\"d\":1.2345678901234567}",
        "{\"a\":123456789012345}",
        "{\"a\":1234567890123456789}",
        "{\"a\":3000000000,\"b\":-2147483649}",
        "{\"a\":1e400}",
        "{\"a\":\"\\/\"}",
        "{\"a\":\"\\u00e9\"}",
        "{\"a\":\"\\u001f\\u001F\\u0001\\n\\u000a\"}",
        "{\"a\":\"\\u0000x\"}",
        "{\"a\":\"\\ud83d\\ude00\"}",
        "{\"a\":\"raw \xc3\xa9 \x7f\"}",
        "{\"a\":\"raw\ttab\"}",
        "{\"a\":true,\"b\":false,\"c\":null,\"d\":[],\"e\":{},\"f\":[1,[2,{\"g\":3}]]}",
        "{\"nested\":{\"x\":1,\"x\":2}}",
        /* names that repeat, or repeat the event's own fields, ignoring case */
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"A\":2}",
        "{\"type\":\"other\",\"x\":1}",
        "{\"Type\":\"other\",\"x\":1}",
        "{\"market_id\":\"9\",\"x\":1}",
        "{\"REASON\":\"r\"}",
        "{\"\\n\":1,\"\\u000a\":2}",
        "{\"\":1}",
        /* not objects, or not only one */
        "[1,2]",
        "\"text\"",
        "42",
        "{bad",
        "{\"a\":1} trailing",
        "{\"a\":1}{\"b\":2}",
        "",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":tru}",
    };
    const char *ids[] = {NULL, "1700000000123"};
    const char *reasons[] = {NULL, "lowest price", "quote \" and \\ and \n and \x01"};
    for (size_t i = 0; i < SW_ARRAY_LEN(data); i++)
        for (size_t m = 0; m < 2; m++)
            for (size_t r = 0; r < 3; r++)
                same_as_tree("bid_chosen", ids[m], reasons[r], data[i]);
    same_as_tree("ty\"pe\x02", NULL, NULL, "{\"x\":1}");
    /* The plugin's bid_chosen text and the printed forms are copied... */
    static const size_t copied[] = {1, 2, 9, 11, 13, 20, 22, 23};
    for (size_t i = 0; i < SW_ARRAY_LEN(copied); i++)
        SW_ASSERT(sw__event_json_copies(data[copied[i]]));
    /* ...the others are not. */
    static const size_t built[] = {0,  3,  4,  5,  6,  7,  8,  10, 12, 14, 15,
                                   16, 17, 18, 19, 21, 24, 25, 26, 27, 28, 29};
    for (size_t i = 0; i < SW_ARRAY_LEN(built); i++)
        SW_ASSERT(!sw__event_json_copies(data[built[i]]));
}

/* Random texts over an alphabet that makes JSON, near-JSON and escapes likely. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

static void random_value(char *buf, size_t *len, size_t cap, int depth)
{
    static const char *const atoms[] = {"0",
                                        "-0",
                                        "1",
                                        "-1",
                                        "12",
                                        "0.5",
                                        "1.0",
                                        "1e3",
                                        "1E+3",
                                        "2.5e-3",
                                        "123456789012345",
                                        "1234567890123456",
                                        "0.30000000000000004",
                                        "true",
                                        "false",
                                        "null",
                                        "\"\"",
                                        "\"a\"",
                                        "\"A\"",
                                        "\"\\u0041\"",
                                        "\"\\/\"",
                                        "\"\\\\\"",
                                        "\"\\\"\"",
                                        "\"\\u001b\"",
                                        "\"\\u001B\"",
                                        "\"\\t\"",
                                        "\"\xc3\xa9\"",
                                        "tru",
                                        "01",
                                        "1.",
                                        "\"\\x\"",
                                        " ",
                                        "\n"};
    if (*len + 64 >= cap)
        return;
    uint32_t pick = rng() % 10;
    if (depth < 4 && pick < 2) {
        buf[(*len)++] = '[';
        int n = (int)(rng() % 4);
        for (int i = 0; i < n; i++) {
            if (i > 0)
                buf[(*len)++] = rng() % 20 == 0 ? ' ' : ',';
            random_value(buf, len, cap, depth + 1);
        }
        buf[(*len)++] = ']';
        return;
    }
    if (depth < 4 && pick < 4) {
        static const char *const keys[] = {"\"a\"",      "\"A\"", "\"b\"",      "\"type\"",
                                           "\"Reason\"", "\"\"",  "\"\\u0061\""};
        buf[(*len)++] = '{';
        int n = (int)(rng() % 4);
        for (int i = 0; i < n; i++) {
            if (i > 0)
                buf[(*len)++] = ',';
            const char *k = keys[rng() % SW_ARRAY_LEN(keys)];
            memcpy(buf + *len, k, strlen(k));
            *len += strlen(k);
            buf[(*len)++] = rng() % 30 == 0 ? ';' : ':';
            random_value(buf, len, cap, depth + 1);
        }
        buf[(*len)++] = '}';
        return;
    }
    const char *a = atoms[rng() % SW_ARRAY_LEN(atoms)];
    memcpy(buf + *len, a, strlen(a));
    *len += strlen(a);
}

SW_TEST(random_texts_build_what_the_tree_printed)
{
    char buf[4096];
    size_t objects = 0;
    size_t copied = 0;
    for (int i = 0; i < 20000; i++) {
        size_t len = 0;
        buf[len++] = '{';
        int n = (int)(rng() % 5);
        for (int f = 0; f < n; f++) {
            if (f > 0)
                buf[len++] = ',';
            len += (size_t)snprintf(buf + len, 16, "\"%c\":", "abAtm"[rng() % 5]);
            random_value(buf, &len, sizeof(buf) - 16, 1);
        }
        buf[len++] = '}';
        buf[len] = '\0';
        same_as_tree("e", i % 2 ? "7" : NULL, NULL, buf);
        copied += sw__event_json_copies(buf);
        /* the object check: never a yes where cJSON says no */
        bool claimed = sw_event_json_is_object(buf, len);
        cJSON *parsed = cJSON_ParseWithLength(buf, len);
        if (claimed)
            SW_ASSERT(cJSON_IsObject(parsed));
        objects += claimed;
        cJSON_Delete(parsed);
    }
    /* the generator makes plenty of valid objects, and of copyable ones */
    SW_ASSERT(objects > 1000);
    SW_ASSERT(copied > 1000);
}

SW_TEST(object_check_is_strict)
{
    static const char *const yes[] = {"{}", " {} ", "{\"a\":[1,{\"b\":\"\\/\\u00E9\"}]}\n",
                                      "{\"type\":\"x\"}", "{ \"a\" : -1.5e+3 , \"b\" : null }"};
    static const char *const no[] = {"",
                                     "[]",
                                     "\"x\"",
                                     "{",
                                     "{\"a\":}",
                                     "{\"a\":1,}",
                                     "{\"a\":1} x",
                                     "{\"a\":01}",
                                     "{\"a\":\"\\u0000\"}",
                                     "{\"a\":\"\\ud800\"}",
                                     "{\"a\":\"\x01\"}",
                                     "{'a':1}",
                                     "\xef\xbb\xbf{}"};
    for (size_t i = 0; i < SW_ARRAY_LEN(yes); i++)
        SW_ASSERT(sw_event_json_is_object(yes[i], strlen(yes[i])));
    for (size_t i = 0; i < SW_ARRAY_LEN(no); i++)
        SW_ASSERT(!sw_event_json_is_object(no[i], strlen(no[i])));
    SW_ASSERT(!sw_event_json_is_object(NULL, 0));
    char deep[300];
    memset(deep, '[', 100);
    deep[0] = '{';
    memcpy(deep + 1, "\"a\":", 4);
    memset(deep + 100, ']', 95);
    deep[195] = '}';
    cJSON *parsed = cJSON_ParseWithLength(deep, 196);
    SW_ASSERT(cJSON_IsObject(parsed)); /* cJSON takes it... */
    cJSON_Delete(parsed);
    SW_ASSERT(!sw_event_json_is_object(deep, 196)); /* ...but it is too deep for the check */
}

SW_TEST_MAIN()
