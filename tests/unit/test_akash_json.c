/* test_akash_json.c — market_akash's JSON writer (akash_jw in akash_json.c): the plugin's
 * KV records and request bodies must read back exactly as the cJSON trees they replace
 * printed them, escapes and numbers included. The file is compiled in, as its symbols are
 * hidden inside the plugin. */
#include <float.h>

#include "../../plugins/market_akash/akash_json.c"
#include "../../plugins/market_akash/akash_sdl.c" /* akash_marker_find */
#include "sw_test.h"

/* The writer's text must equal cJSON_PrintUnformatted of the same tree. */
static void same_as_cjson(char *written, cJSON *tree)
{
    char *printed = cJSON_PrintUnformatted(tree);
    SW_ASSERT_STREQ(written, printed);
    cJSON *back = cJSON_Parse(written);
    SW_ASSERT(back != NULL);
    SW_ASSERT(cJSON_Compare(back, tree, true));
    cJSON_Delete(back);
    cJSON_free(printed);
    cJSON_Delete(tree);
    free(written);
}

SW_TEST(strings_escape_as_cjson_does)
{
    static const char *const values[] = {
        "",
        "plain",
        "quote \" backslash \\ slash /",
        "controls \b\f\n\r\t and \x01\x1f\x7f",
        "utf-8: r\xc3\xa9gion \xe2\x82\xac",
        "services:\n  web:\n    image: \"nginx:1.25\"\n    env: [\"A=\\\\b\"]\n",
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct akash_jw w = {0};
        akash_jw_str(&w, values[i]);
        same_as_cjson(akash_jw_take(&w), cJSON_CreateString(values[i]));
    }
    /* Every byte, alone and amid plain text (the escaping table). */
    for (int c = 1; c < 256; c++) {
        char one[2] = {(char)c, '\0'};
        char amid[8] = {'a', (char)c, 'b', (char)c, (char)c, 'z', '\0'};
        struct akash_jw w = {0};
        akash_jw_str(&w, one);
        same_as_cjson(akash_jw_take(&w), cJSON_CreateString(one));
        akash_jw_str(&w, amid);
        same_as_cjson(akash_jw_take(&w), cJSON_CreateString(amid));
    }
}

SW_TEST(integers_print_in_full)
{
    const int64_t values[] = {0,
                              1,
                              -1,
                              9,
                              10,
                              -10,
                              99,
                              100,
                              2147483647,
                              -2147483648LL,
                              INT64_C(1795328176742),
                              INT64_MAX,
                              INT64_MIN,
                              INT64_MIN + 1};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char expect[32];
        snprintf(expect, sizeof(expect), "%" PRId64, values[i]);
        struct akash_jw w = {0};
        akash_jw_int(&w, values[i]);
        char *text = akash_jw_take(&w);
        SW_ASSERT_STREQ(text, expect);
        free(text);
    }
}

SW_TEST(numbers_print_as_cjson_does)
{
    const double values[] = {0,       1,      -7,      2147483647.0, -2147483648.0, 2147483648.0,
                             0.03,    0.1,    1e-7,    123456.789,   1.0 / 3.0,     6e23,
                             DBL_MAX, -0.0,   0.5e-300};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct akash_jw w = {0};
        akash_jw_num(&w, values[i]);
        same_as_cjson(akash_jw_take(&w), cJSON_CreateNumber(values[i]));
    }
    struct akash_jw w = {0};
    akash_jw_int(&w, INT64_C(1795328176742));
    char *text = akash_jw_take(&w);
    SW_ASSERT_STREQ(text, "1795328176742");
    free(text);
    /* Decimals of every length and scale, and any bit pattern. */
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 30000; i++) {
        sw_test_next_random(&x);
        double v;
        if (i % 3 == 0)
            memcpy(&v, &x, sizeof(v));
        else
            v = (double)(x % 1000000000000000ULL >> (x % 50)) / pow(10, (double)(x % 20));
        if (isnan(v) || isinf(v) || (i % 3 != 0 && (x & 1)))
            v = -fabs(v) / 3 * 3;
        if (isnan(v) || isinf(v))
            continue;
        akash_jw_num(&w, v);
        same_as_cjson(akash_jw_take(&w), cJSON_CreateNumber(v));
    }
}

/* Plain runs are judged a word at a time: a byte to escape at every offset. */
SW_TEST(escapes_at_every_offset_as_cjson_does)
{
    static const char specials[] = {'"', '\\', '\n', '\x01', '\x1f', '\x7f', '\xc3'};
    char text[40];
    for (size_t len = 1; len < sizeof(text); len++)
        for (size_t at = 0; at < len; at++)
            for (size_t s = 0; s < sizeof(specials); s++) {
                memset(text, 'a', len);
                text[len] = '\0';
                text[at] = specials[s];
                struct akash_jw w = {0};
                akash_jw_str(&w, text);
                same_as_cjson(akash_jw_take(&w), cJSON_CreateString(text));
            }
}

SW_TEST(nested_records_print_as_cjson_does)
{
    struct akash_jw w = {0};
    akash_jw_open(&w, '{');
    akash_jw_kstr(&w, "dseq", "1795328176742");
    akash_jw_kstr(&w, "key", NULL);
    akash_jw_kint(&w, "gseq", 1);
    akash_jw_knum(&w, "price", 0.0304);
    akash_jw_key(&w, "empty");
    akash_jw_open(&w, '[');
    akash_jw_close(&w, ']');
    akash_jw_key(&w, "uris");
    akash_jw_open(&w, '[');
    akash_jw_str(&w, "https://a.test");
    akash_jw_str(&w, "https://b.test");
    akash_jw_close(&w, ']');
    akash_jw_key(&w, "leases");
    akash_jw_open(&w, '[');
    for (int i = 0; i < 2; i++) {
        akash_jw_open(&w, '{');
        akash_jw_kint(&w, "oseq", i);
        akash_jw_key(&w, "inner");
        akash_jw_open(&w, '{');
        akash_jw_close(&w, '}');
        akash_jw_close(&w, '}');
    }
    akash_jw_close(&w, ']');
    akash_jw_key(&w, "raw");
    akash_jw_raw(&w, "true");
    akash_jw_close(&w, '}');

    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dseq", "1795328176742");
    cJSON_AddNullToObject(o, "key");
    cJSON_AddNumberToObject(o, "gseq", 1);
    cJSON_AddNumberToObject(o, "price", 0.0304);
    cJSON_AddArrayToObject(o, "empty");
    cJSON *uris = cJSON_AddArrayToObject(o, "uris");
    cJSON_AddItemToArray(uris, cJSON_CreateString("https://a.test"));
    cJSON_AddItemToArray(uris, cJSON_CreateString("https://b.test"));
    cJSON *leases = cJSON_AddArrayToObject(o, "leases");
    for (int i = 0; i < 2; i++) {
        cJSON *l = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "oseq", i);
        cJSON_AddObjectToObject(l, "inner");
        cJSON_AddItemToArray(leases, l);
    }
    cJSON_AddTrueToObject(o, "raw");
    same_as_cjson(akash_jw_take(&w), o);

    /* nothing written: an empty string, still owned */
    struct akash_jw none = {0};
    char *text = akash_jw_take(&none);
    SW_ASSERT_STREQ(text, "");
    free(text);
}

SW_TEST_MAIN()
