/* test_json_writer.c — the writer prints what cJSON_PrintUnformatted printed for the same
 * document: the journal's evaluation inputs moved from cJSON to it, and their digests and
 * `steward replay` read those bytes. */
#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_writer.h"
#include "mem.h"
#include "sw_test.h"

static void same_number(double v)
{
    struct sw_jw w;
    sw_jw_init(&w);
    sw_jw_open(&w, NULL, '[');
    sw_jw_number(&w, NULL, v);
    sw_jw_close(&w, ']');
    char *mine = sw_jw_take(&w);
    cJSON *array = cJSON_CreateArray();
    cJSON_AddItemToArray(array, cJSON_CreateNumber(v));
    char *theirs = cJSON_PrintUnformatted(array);
    if (strcmp(mine, theirs) != 0)
        fprintf(stderr, "value %.17g\n", v);
    SW_ASSERT_STREQ(mine, theirs);
    cJSON_free(theirs);
    cJSON_Delete(array);
    free(mine);
}

SW_TEST(numbers_print_as_cjson_prints_them)
{
    static const double fixed[] = {
        0.0,
        -0.0,
        1,
        -1,
        0.5,
        0.1,
        1.0 / 3,
        2.0 / 3,
        1e-7,
        123456.789,
        INT_MAX,
        INT_MIN,
        (double)INT_MAX + 1,
        (double)INT_MIN - 1,
        1704067200000.0,
        1e14,
        999999999999999.0,
        1e15,
        1e15 + 1,
        1e16,
        9007199254740993.0,
        1e300,
        -1e300,
        5e-324,
        DBL_MAX,
        -DBL_MAX,
        0.30000000000000004,
        0.0123,
        12.5e-3,
        0.0001,
        -0.0001,
        0.00009999,
        0.000123456789012345,
        0.03,
        -0.03,
        0.1 + 0.2,
        99999999999999.9,
        123456789.123456,
        1234567890.1234567,
        0.999999999999999,
        0.9999999999999999,
        -2.5,
        NAN,
        INFINITY,
        -INFINITY,
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(fixed); i++)
        same_number(fixed[i]);
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 40000; i++) {
        sw_test_next_random(&x);
        double v;
        switch (i % 6) {
        case 0: /* any bit pattern */
            memcpy(&v, &x, sizeof(v));
            break;
        case 1: /* prices */
            v = (double)(x % 100000000) / 1e6;
            break;
        case 2: /* integers of every size */
            v = (double)(int64_t)(x >> (x % 64));
            break;
        case 3: /* decimals of every length and scale, both signs */
            v = (double)(int64_t)(x >> (x % 64)) / pow(10, (double)(x % 23));
            break;
        case 4: /* decimals near the 15-digit and 1e-4 boundaries */
            v = (double)(x % 1000000000000000ULL) / pow(10, (double)(x % 20));
            if (x & 1)
                v = -v;
            break;
        default: /* millisecond times and fractions of them */
            v = (double)(x % 4000000000000ULL) / (double)(1 + x % 7);
        }
        same_number(v);
    }
}

SW_TEST(strings_keys_and_nesting_print_as_cjson_prints_them)
{
    char every_byte[256];
    for (int i = 1; i < 256; i++)
        every_byte[i - 1] = (char)i;
    every_byte[255] = '\0';
    static const char *const texts[] = {"",
                                        "plain",
                                        "quote \" backslash \\ slash /",
                                        "tab\tnew\nline\rcr\bbs\fff",
                                        "\x01\x1f\x7f",
                                        "utf-8: \xc3\xa9\xe2\x82\xac"};
    struct sw_jw w;
    sw_jw_init(&w);
    cJSON *root = cJSON_CreateObject();
    sw_jw_open(&w, NULL, '{');
    for (size_t i = 0; i < SW_ARRAY_LEN(texts); i++) {
        sw_jw_string(&w, texts[i], texts[i]);
        cJSON_AddStringToObject(root, texts[i], texts[i]);
    }
    sw_jw_string(&w, "all", every_byte);
    cJSON_AddStringToObject(root, "all", every_byte);
    sw_jw_open(&w, "list", '[');
    cJSON *list = cJSON_AddArrayToObject(root, "list");
    sw_jw_open(&w, NULL, '{');
    cJSON *item = cJSON_CreateObject();
    sw_jw_bool(&w, "yes", true);
    cJSON_AddBoolToObject(item, "yes", true);
    sw_jw_bool(&w, "no", false);
    cJSON_AddBoolToObject(item, "no", false);
    sw_jw_open(&w, "empty", '{');
    sw_jw_close(&w, '}');
    cJSON_AddObjectToObject(item, "empty");
    sw_jw_close(&w, '}');
    cJSON_AddItemToArray(list, item);
    sw_jw_open(&w, NULL, '[');
    sw_jw_close(&w, ']');
    cJSON_AddItemToArray(list, cJSON_CreateArray());
    sw_jw_number(&w, NULL, 2.5);
    cJSON_AddItemToArray(list, cJSON_CreateNumber(2.5));
    sw_jw_close(&w, ']');
    sw_jw_close(&w, '}');
    char *mine = sw_jw_take(&w);
    char *theirs = cJSON_PrintUnformatted(root);
    SW_ASSERT_STREQ(mine, theirs);
    cJSON_free(theirs);
    cJSON_Delete(root);
    free(mine);
}

/* Strings are copied by whole words where no byte needs an escape: every special byte at
 * every offset of a word, in strings of every length around the word size. */
SW_TEST(escapes_at_every_offset_print_as_cjson_prints_them)
{
    static const char specials[] = {'"', '\\', '\n', '\x01', '\x1f', '\x7f', ' ', '\xc3', '\xff'};
    char text[40];
    for (size_t len = 1; len < sizeof(text); len++) {
        for (size_t at = 0; at < len; at++) {
            for (size_t s = 0; s < sizeof(specials); s++) {
                memset(text, 'a', len);
                text[len] = '\0';
                text[at] = specials[s];
                if (len > 20)
                    text[len - 1 - at / 2] = specials[(s + 1) % sizeof(specials)];
                struct sw_jw w;
                sw_jw_init(&w);
                sw_jw_string(&w, NULL, text);
                char *mine = sw_jw_take(&w);
                cJSON *item = cJSON_CreateString(text);
                char *theirs = cJSON_PrintUnformatted(item);
                SW_ASSERT_STREQ(mine, theirs);
                cJSON_free(theirs);
                cJSON_Delete(item);
                free(mine);
            }
        }
    }
}

SW_TEST(an_unused_writer_takes_an_empty_text)
{
    struct sw_jw w;
    sw_jw_init(&w);
    char *text = sw_jw_take(&w);
    SW_ASSERT_STREQ(text, "");
    free(text);
    sw_jw_init(&w);
    sw_jw_string(&w, NULL, "x");
    sw_jw_free(&w);
    SW_ASSERT(w.text == NULL && w.len == 0);
}

SW_TEST_MAIN()
