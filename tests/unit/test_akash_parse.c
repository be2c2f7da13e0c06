/* test_akash_parse.c — market_akash's reply parser (akash_parse.c) against cJSON itself.
 *
 * Differential: every input goes to cJSON_ParseWithLength and to akash_json_parse; either
 * both refuse it or both trees are equal node for node (type, key, valuestring, valueint,
 * valuedouble bit for bit, order and links). Inputs: the local marketplace server's replies
 * (tests/unit/akash_replies, captured from `steward market serve`), every JSON file under
 * tests/ and examples/, hand-written edge cases and a seeded mutation loop over all of them.
 * The parser gets an exact-size copy of each input, so under ASan a read past the end fails
 * the test; cJSON gets a NUL after the input, since it may look one byte past the end.
 * The file is compiled in, as its symbols are hidden inside the plugin.
 */
#include <dirent.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "../../plugins/market_akash/akash_parse.c"
#include "sw_test.h"

#define REPLY_DIR SW_SOURCE_DIR "/tests/unit/akash_replies"
/* Mutated inputs per run; AKASH_PARSE_MUTATIONS raises it for a longer soak. */
#define DEFAULT_MUTATIONS 200000

/* ---- inputs ------------------------------------------------------------------------------ */

struct input {
    char *text;
    size_t len;
};

struct corpus {
    struct input *items;
    size_t count;
    size_t cap;
};

static void corpus_add(struct corpus *c, const char *text, size_t len)
{
    if (c->count == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->items = realloc(c->items, c->cap * sizeof(*c->items));
    }
    char *copy = malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    c->items[c->count++] = (struct input){copy, len};
}

static void corpus_free(struct corpus *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->items[i].text);
    free(c->items);
    *c = (struct corpus){0};
}

static bool read_file(const char *path, struct corpus *c)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            text = realloc(text, cap);
        }
        size_t got = fread(text + len, 1, cap - len, f);
        if (got == 0)
            break;
        len += got;
    }
    fclose(f);
    corpus_add(c, text, len);
    free(text);
    return true;
}

static bool has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcmp(name + n - s, suffix) == 0;
}

/* Every *.json and *.jsonc file under dir (recursively). */
static void add_tree(const char *dir, struct corpus *c)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            add_tree(path, c);
        else if (has_suffix(e->d_name, ".json") || has_suffix(e->d_name, ".jsonc"))
            read_file(path, c);
    }
    closedir(d);
}

static void add_replies(struct corpus *c)
{
    add_tree(REPLY_DIR, c);
}

/* ---- the comparison ---------------------------------------------------------------------- */

static char mismatch[512];

static bool same_text(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Equal trees, links included; on a difference mismatch says where. */
static bool same_tree(const cJSON *a, const cJSON *b, int depth)
{
    if (a->type != b->type) {
        snprintf(mismatch, sizeof(mismatch), "depth %d: type %d != %d", depth, a->type, b->type);
        return false;
    }
    if (!same_text(a->string, b->string) || !same_text(a->valuestring, b->valuestring)) {
        snprintf(mismatch, sizeof(mismatch), "depth %d: key/value \"%s\"/\"%s\" != \"%s\"/\"%s\"",
                 depth, a->string ? a->string : "(null)",
                 a->valuestring ? a->valuestring : "(null)", b->string ? b->string : "(null)",
                 b->valuestring ? b->valuestring : "(null)");
        return false;
    }
    if (a->valueint != b->valueint || memcmp(&a->valuedouble, &b->valuedouble, sizeof(double))) {
        snprintf(mismatch, sizeof(mismatch), "depth %d: number %d/%.17g != %d/%.17g", depth,
                 a->valueint, a->valuedouble, b->valueint, b->valuedouble);
        return false;
    }
    const cJSON *x = a->child, *y = b->child;
    const cJSON *px = NULL, *py = NULL;
    while (x != NULL && y != NULL) {
        if ((px != NULL && x->prev != px) || (py != NULL && y->prev != py)) {
            snprintf(mismatch, sizeof(mismatch), "depth %d: prev link broken", depth);
            return false;
        }
        if (!same_tree(x, y, depth + 1))
            return false;
        px = x, py = y;
        x = x->next, y = y->next;
    }
    if (x != NULL || y != NULL) {
        snprintf(mismatch, sizeof(mismatch), "depth %d: child counts differ", depth);
        return false;
    }
    /* cJSON's first child points back at the last one. */
    if ((a->child != NULL && a->child->prev != px) || (b->child != NULL && b->child->prev != py)) {
        snprintf(mismatch, sizeof(mismatch), "depth %d: first child's prev is not the last", depth);
        return false;
    }
    return true;
}

struct tally {
    size_t inputs;
    size_t accepted;
};

static void show_input(const char *text, size_t len)
{
    fprintf(stderr, "    input (%zu bytes): \"", len);
    for (size_t i = 0; i < len && i < 300; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch >= 32 && ch < 127 && ch != '\\' && ch != '"')
            fputc(ch, stderr);
        else
            fprintf(stderr, "\\x%02x", ch);
    }
    fprintf(stderr, "%s\"\n", len > 300 ? "..." : "");
}

/* Both parsers on text; false (with the input shown) when they disagree. */
static bool differ_check(const char *text, size_t len, struct tally *t)
{
    char *for_cjson = malloc(len + 1);
    char *exact = malloc(len > 0 ? len : 1);
    memcpy(for_cjson, text, len);
    for_cjson[len] = '\0';
    memcpy(exact, text, len);
    cJSON *expected = cJSON_ParseWithLength(for_cjson, len);
    cJSON *got = akash_json_parse(exact, len);
    bool ok;
    if (expected == NULL || got == NULL) {
        ok = expected == got;
        snprintf(mismatch, sizeof(mismatch), "cJSON %s, akash_json_parse %s",
                 expected ? "accepts" : "refuses", got ? "accepts" : "refuses");
    } else {
        ok = same_tree(expected, got, 0);
    }
    if (!ok) {
        fprintf(stderr, "    %s\n", mismatch);
        show_input(text, len);
    }
    t->inputs++;
    t->accepted += expected != NULL;
    cJSON_Delete(expected);
    cJSON_Delete(got);
    free(for_cjson);
    free(exact);
    return ok;
}

#define SAME(text, len, tally) SW_ASSERT(differ_check((text), (len), (tally)))
#define SAME_LIT(lit, tally) SAME((lit), sizeof(lit) - 1, (tally))

/* ---- the tests --------------------------------------------------------------------------- */

SW_TEST(marketplace_replies_parse_as_cjson_parses_them)
{
    struct corpus c = {0};
    add_replies(&c);
    SW_ASSERT(c.count >= 15);
    struct tally t = {0};
    for (size_t i = 0; i < c.count; i++) {
        SAME(c.items[i].text, c.items[i].len, &t);
        SW_ASSERT_EQ(t.accepted, i + 1); /* each reply is JSON */
        /* Every prefix: what a connection cut short or the server's malformed-body fault
         * (half the body) delivers. */
        for (size_t cut = 0; cut < c.items[i].len; cut++)
            SAME(c.items[i].text, cut, &t);
    }
    SW_ASSERT_EQ(t.accepted, c.count); /* no prefix of an object is JSON */
    corpus_free(&c);
}

SW_TEST(a_reply_tree_reads_as_the_plugin_expects)
{
    struct corpus c = {0};
    SW_ASSERT(read_file(REPLY_DIR "/deployment_ready.json", &c));
    cJSON *root = akash_json_parse(c.items[0].text, c.items[0].len);
    SW_ASSERT(root != NULL);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *leases = cJSON_GetObjectItemCaseSensitive(data, "leases");
    SW_ASSERT(cJSON_IsArray(leases));
    SW_ASSERT_EQ(cJSON_GetArraySize(leases), 1);
    const cJSON *lease = cJSON_GetArrayItem(leases, 0);
    SW_ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(lease, "state")), "active");
    SW_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(lease, "reason")));
    const cJSON *web = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(lease, "status"), "services"), "web");
    SW_ASSERT_EQ(cJSON_GetObjectItem(web, "available")->valueint, 1);
    SW_ASSERT(cJSON_GetObjectItem(web, "available")->valuedouble == 1.0);
    char *printed = cJSON_PrintUnformatted(root);
    SW_ASSERT_STREQ(printed, c.items[0].text);
    free(printed);
    cJSON_Delete(root);
    corpus_free(&c);
}

SW_TEST(every_json_file_of_the_tree_parses_as_cjson_parses_it)
{
    struct corpus c = {0};
    add_tree(SW_SOURCE_DIR "/tests", &c);
    add_tree(SW_SOURCE_DIR "/examples", &c);
    SW_ASSERT(c.count >= 30);
    struct tally t = {0};
    for (size_t i = 0; i < c.count; i++)
        SAME(c.items[i].text, c.items[i].len, &t);
    SW_ASSERT(t.accepted > 0);
    corpus_free(&c);
}

SW_TEST(whitespace_bom_and_trailing_bytes)
{
    struct tally t = {0};
    SAME_LIT("", &t);
    SAME_LIT(" ", &t);
    SAME_LIT("\0", &t);
    SAME_LIT(" \t\r\n{} \n", &t);
    SAME_LIT("\x01\x02\x1f\x20[\x0b\x31\x0c,\x00\x32\x1f]", &t); /* bytes 0..32 are space */
    SAME_LIT("[1\0,2]", &t);
    SAME_LIT("{\"a\"\0:\0\x31}", &t);
    SAME_LIT("\x21{}", &t);
    SAME_LIT("\x7f{}", &t);
    SAME_LIT("{}garbage", &t);
    SAME_LIT("1abc", &t);
    SAME_LIT("[1]]", &t);
    SAME_LIT("nullx", &t);
    SAME_LIT("truefalse", &t);
    SAME_LIT("\"a\"\"b\"", &t);
    SAME_LIT("{} {", &t);
    SAME_LIT("\xEF\xBB\xBF\x31", &t);     /* 4 bytes: cJSON does not skip the BOM */
    SAME_LIT("\xEF\xBB\xBF\x31\x32", &t); /* 5 bytes: it does */
    SAME_LIT("\xEF\xBB\xBF {}", &t);
    SAME_LIT("\xEF\xBB\xBF\xEF\xBB\xBF{}", &t);
    SAME_LIT("\xEF\xBB{}", &t);
    SAME_LIT("<html><head><title>502 Bad Gateway</title></head></html>\n", &t);
    /* A NULL text. */
    SW_ASSERT(akash_json_parse(NULL, 0) == NULL);
    SW_ASSERT(akash_json_parse(NULL, 5) == NULL);
}

SW_TEST(literals_and_structure)
{
    /* clang-format off */
    static const char *const cases[] = {
        "null", "nul", "nulll", "NULL", "n", "true", "tru", "True", "t", "false", "fals",
        "falsey", "f", "[]", "{}", "[ ]", "{ }", "[", "{", "]", "}", "[,]", "[1,]", "[,1]",
        "{,}", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}", "{\"a\":1 \"b\":2}", "{1:2}",
        "{a:1}", "{'a':1}", "[1 2]", "[1,,2]", "[[]]", "[[],[{}]]", "{\"\":\"\"}",
        "{\"a\":{\"b\":{\"c\":[1,{\"d\":null}]}}}", "{\"a\":1,\"a\":2,\"a\":[3]}",
        "[null,true,false,\"s\",1,-2.5,[],{}]", "{\"k\":true,\"l\":false,\"m\":null}",
        "[\"a\",]", "{\"a\":1}}", "[1]x", "[true", "[null", "{\"a\":nul}", "{\"a\"::1}",
        "{\"a\":1:2}", "[\"\\\"\"]", "{\"\\u00e9\":\"\\u00e9\"}", "{\"a\\\"b\":1}",
    };
    /* clang-format on */
    struct tally t = {0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        SAME(cases[i], strlen(cases[i]), &t);
        /* Without its last byte too: the end of the buffer in every state. */
        if (cases[i][0] != '\0')
            SAME(cases[i], strlen(cases[i]) - 1, &t);
    }
    SW_ASSERT(t.accepted >= 15);
}

SW_TEST(nesting_limit_is_cjsons)
{
    size_t cap = 6 * (CJSON_NESTING_LIMIT + 10) + 16; /* {"k": ... } per level */
    char *text = malloc(cap);
    struct tally t = {0};
    static const size_t depths[] = {1, 2, 999, 1000, 1001, 1005};
    for (size_t k = 0; k < sizeof(depths) / sizeof(depths[0]); k++) {
        size_t depth = depths[k];
        for (int kind = 0; kind < 3; kind++) {
            size_t len = 0;
            for (size_t i = 0; i < depth; i++) {
                if (kind == 0)
                    text[len++] = '[';
                else if (kind == 1) {
                    memcpy(text + len, "{\"k\":", 5);
                    len += 5;
                } else
                    text[len++] = i % 2 ? '[' : ' ';
            }
            text[len++] = '1';
            for (size_t i = 0; i < depth; i++)
                text[len++] = kind == 0 ? ']' : kind == 1 ? '}' : (i % 2 ? ']' : ' ');
            SAME(text, len, &t);
        }
    }
    /* 1000 levels parse, 1001 do not (as cJSON). */
    memset(text, '[', CJSON_NESTING_LIMIT);
    memset(text + CJSON_NESTING_LIMIT, ']', CJSON_NESTING_LIMIT);
    cJSON *deep = akash_json_parse(text, 2 * CJSON_NESTING_LIMIT);
    SW_ASSERT(deep != NULL);
    cJSON_Delete(deep);
    memset(text, '[', CJSON_NESTING_LIMIT + 1);
    memset(text + CJSON_NESTING_LIMIT + 1, ']', CJSON_NESTING_LIMIT + 1);
    SW_ASSERT(akash_json_parse(text, 2 * CJSON_NESTING_LIMIT + 2) == NULL);
    free(text);
}

SW_TEST(string_escapes_as_cjson_decodes_them)
{
    /* clang-format off */
    static const char *const cases[] = {
        /* the simple escapes, and invalid ones */
        "\"\\b\\f\\n\\r\\t\\\"\\\\\\/\"", "\"\\x\"", "\"\\U0041\"", "\"\\0\"", "\"\\'\"",
        "\"\\a\"", "\"\\ \"", "\"\\\"", "\"\\", "\"abc\\", "\"\\\\\"", "\"\\\\\\\"",
        /* \u: every UTF-8 length, both cases of hex, the edges */
        "\"\\u0041\"", "\"\\u0000\"", "\"a\\u0000b\"", "\"\\u007F\"", "\"\\u007f\\u0080\"",
        "\"\\u07FF\"", "\"\\u0800\"", "\"\\uFFFF\"", "\"\\uffff\"", "\"\\uAbCd\"",
        "\"\\u00e9t\\u00E9\"", "\"\\u20AC\"",
        /* invalid hex digits read as 0, a NUL */
        "\"\\u00zz\"", "\"x\\u12G4y\"", "\"\\u 123\"", "\"\\u-123\"",
        /* too short */
        "\"\\u\"", "\"\\u1\"", "\"\\u12\"", "\"\\u123\"", "\"\\u1234", "\"abc\\u12",
        /* surrogate pairs: valid, lone, reversed, broken second half */
        "\"\\uD83D\\uDE00\"", "\"\\ud83d\\ude00\"", "\"\\uD800\\uDC00\"", "\"\\uDBFF\\uDFFF\"",
        "\"\\uD800\"", "\"\\uDBFF\"", "\"\\uDC00\"", "\"\\uDFFF\"", "\"\\uDE00\\uD83D\"",
        "\"\\uD83Dxx\"", "\"\\uD83D\\u0041\"", "\"\\uD800\\uDBFF\"", "\"\\uD800\\u00zz\"",
        "\"\\uD800\\u\"", "\"\\uD800\\uDC0\"", "\"\\uD800\\\\uDC00\"", "\"\\uD800\\nDC00xx\"",
        "\"\\uD800\\uE000\"", "\"\\uD83D\\uDE00\\uD83D\"",
        /* a \u sequence that swallows part of the next escape */
        "\"\\u12\\\"ab\"", "\"\\u123\\\"\"", "\"ab\\u123\\\"\"", "\"\\uABC\\\\\"",
        "[\"\\uABC\\\\\"]", "\"\\u12\\xab\"", "\"\\u123\\\\x\"", "{\"\\uABC\\\\\":1}",
        "\"\\uD800\\u12\\\"\\u\"",
        /* raw bytes cJSON keeps as they are */
        "\"tab\there\"", "\"nl\nhere\"", "\"\x01\x1f\x7f\"", "\"\xff\xfe\"", "\"\xc3\xa9\"",
        "\"\xe2\x82\"",
        /* keys */
        "{\"\\n\":1}", "{\"\\u0041\\u0042\":\"\\u0043\"}", "{\"\\x\":1}", "{\"a\\u\":1}",
    };
    /* clang-format on */
    struct tally t = {0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        SAME(cases[i], strlen(cases[i]), &t);
        SAME(cases[i], strlen(cases[i]) - 1, &t);
    }
    SW_ASSERT(t.accepted >= 30); /* not only refusals */
    /* Embedded NULs: raw in a string, in a key, after an escape. */
    SAME_LIT("\"a\0b\"", &t);
    SAME_LIT("{\"k\0ey\":\"v\0al\"}", &t);
    SAME_LIT("\"\\n\0\\t\"", &t);
    SAME_LIT("\"\\\0\"", &t);
}

/* Strings long enough for the 16-byte scan, with the quote or a backslash at every offset
 * (and the buffer ending right there), so its edges meet every case. */
SW_TEST(long_strings_at_every_offset)
{
    struct tally t = {0};
    char text[128];
    for (size_t len = 0; len < 70; len++) {
        for (int variant = 0; variant < 5; variant++) {
            size_t n = 0;
            text[n++] = '"';
            for (size_t i = 0; i < len; i++)
                text[n++] = (char)('a' + (i % 26));
            if (variant == 1 && len > 0)
                text[n - 1] = '\\';
            if (variant == 2 && len > 2)
                text[len / 2] = '\\';
            if (variant == 3 && len > 0)
                text[1 + (len * 7) % len] = '"';
            if (variant == 4 && len > 6)
                memcpy(text + 1 + len - 6, "\\u00e9", 6);
            SAME(text, n, &t);
            text[n++] = '"';
            SAME(text, n, &t);
            memcpy(text + n, "   ", 3);
            SAME(text, n + 3, &t);
        }
    }
    SW_ASSERT(t.accepted > 100);
}

SW_TEST(numbers_as_cjson_reads_them)
{
    /* clang-format off */
    static const char *const cases[] = {
        "0", "-0", "-", "--1", "+1", "1.", ".5", "-.5", "1.5", "-1.5", "1e", "1e+", "1e-",
        "1e5", "1E5", "1e+5", "1E-5", "1.5e308", "1e309", "-1e309", "4.9e-324", "1e-400",
        "2147483647", "2147483648", "-2147483648", "-2147483649", "2147483647.5",
        "2147483646.9", "-2147483648.5", "-2147483647.9", "9007199254740993", "999999999999999",
        "123456789012345", "1234567890123456", "-123456789012345", "-1234567890123456",
        "18446744073709551615", "18446744073709551616", "0x10", "1_000", "01", "00", "-01",
        "1-2", "1+2", "1e5e5", "1.2.3", "1..2", "Infinity", "NaN", "-Infinity", "-nan", "0e",
        "0.0000000000000000000000000000001", "3.141592653589793238462643383279",
        "0.1", "0.2", "0.30000000000000004", "1e-7", "123.456e-2", "-0.0", "-0e0",
        "1234567890123456789012345678901234567890123456789012345678901234567890",
        "0.1234567890123456789012345678901234567890123456789012345678901234567890e5",
        "[1234567890123456789012345678901234567890123456789012345678901234567890]",
        "[0,-0,1.5,-2e3,2147483648,-2147483649]", "{\"a\":-,\"b\":1}", "[1e]", "[1.]",
        "[-]", "[1-]", "{\"n\":12}", "{\"n\":12.5}", "[01]", "[1,2", "7", "-7",
    };
    /* clang-format on */
    struct tally t = {0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        SAME(cases[i], strlen(cases[i]), &t);
        SAME(cases[i], strlen(cases[i]) - 1, &t);
    }
    SW_ASSERT(t.accepted >= 50);
    /* Numbers of every length, digits alone and with a fraction. */
    char text[200];
    for (size_t len = 1; len < 150; len++) {
        for (size_t i = 0; i < len; i++)
            text[i] = (char)('1' + (i * 7) % 9);
        SAME(text, len, &t);
        text[len / 2] = '.';
        SAME(text, len, &t);
        text[0] = '-';
        SAME(text, len, &t);
    }
}

/* ---- mutations --------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng_next(void)
{
    /* xorshift64*: deterministic, so a failure replays with the same seed. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t rng_below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rng_next() % n);
}

static const char interesting[] = "\"\\{}[],: \t\n\r0123456789-+.eEnultrfasu/bx";

static unsigned char random_byte(void)
{
    switch (rng_below(4)) {
    case 0:
    case 1:
        return (unsigned char)interesting[rng_below(sizeof(interesting) - 1)];
    case 2:
        return (unsigned char)rng_below(33); /* space and control bytes, NUL */
    default:
        return (unsigned char)rng_next();
    }
}

/* One to four edits of src into buf (cap bytes); returns the new length. */
static size_t mutate(const char *src, size_t len, char *buf, size_t cap)
{
    if (len > cap - 16)
        len = cap - 16;
    memcpy(buf, src, len);
    int edits = 1 + (int)rng_below(4);
    for (int e = 0; e < edits; e++) {
        size_t at = rng_below(len + 1);
        switch (rng_below(7)) {
        case 0: /* replace */
            if (at < len)
                buf[at] = (char)random_byte();
            break;
        case 1: /* insert */
            if (len < cap - 1) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = (char)random_byte();
                len++;
            }
            break;
        case 2: /* delete a short span */
            if (at < len) {
                size_t n = 1 + rng_below(len - at < 8 ? len - at : 8);
                memmove(buf + at, buf + at + n, len - at - n);
                len -= n;
            }
            break;
        case 3: /* flip one bit */
            if (at < len)
                buf[at] = (char)(buf[at] ^ (1 << rng_below(8)));
            break;
        case 4: /* truncate */
            len = at;
            break;
        case 5: { /* insert an escape or a number span */
            static const char *const pieces[] = {
                "\\u", "\\uD83D\\uDE00", "\\", "\\\"", "1e", "-0.5", "\\uDC00", "9999999999999999"};
            const char *piece = pieces[rng_below(sizeof(pieces) / sizeof(pieces[0]))];
            size_t n = strlen(piece);
            if (len + n < cap) {
                memmove(buf + at + n, buf + at, len - at);
                memcpy(buf + at, piece, n);
                len += n;
            }
            break;
        }
        default: { /* copy a span of the text over another place */
            size_t from = rng_below(len + 1);
            size_t n = rng_below(16);
            if (from + n <= len && at + n <= len)
                memmove(buf + at, buf + from, n);
            break;
        }
        }
    }
    return len;
}

SW_TEST(mutated_inputs_parse_as_cjson_parses_them)
{
    struct corpus seeds = {0};
    add_replies(&seeds);
    size_t replies = seeds.count;
    add_tree(SW_SOURCE_DIR "/tests/unit/akash_replies", &seeds); /* weight the replies x2 */
    /* Small seeds: the quirks, densely. */
    static const char *const small[] = {
        "{\"a\":\"\\u00e9\\uD83D\\uDE00\",\"b\":[1,-2.5e3,true,false,null],\"c\":{}}",
        "[\"\\n\\t\\\\\\\"\",0,-0,1e400,\"x\\u12\\\"y\"]",
        "{\"data\":[{\"bid\":{\"id\":{\"dseq\":\"17\",\"gseq\":1},\"state\":\"open\"}}]}",
        "  {\"k\" : [ 1 , 2 ] , \"l\" : \"v\" }  ",
        "\xEF\xBB\xBF{\"bom\":1}",
    };
    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++)
        corpus_add(&seeds, small[i], strlen(small[i]));
    SW_ASSERT(replies >= 15);

    size_t total = DEFAULT_MUTATIONS;
    const char *env = getenv("AKASH_PARSE_MUTATIONS");
    if (env != NULL && atol(env) > 0)
        total = (size_t)atol(env);
    size_t cap = 8192;
    char *buf = malloc(cap);
    struct tally t = {0};
    for (size_t n = 0; n < total; n++) {
        const struct input *seed = &seeds.items[rng_below(seeds.count)];
        size_t len = mutate(seed->text, seed->len, buf, cap);
        if (!differ_check(buf, len, &t)) {
            free(buf);
            corpus_free(&seeds);
            SW_FAIL_AT("mutation %zu differs", n);
        }
    }
    /* Mutations must keep a fair share parseable, or the test would only compare refusals. */
    fprintf(stderr, "    %zu mutated inputs, %zu accepted by both\n", t.inputs, t.accepted);
    SW_ASSERT(t.accepted > total / 20);
    free(buf);
    corpus_free(&seeds);
}

SW_TEST_MAIN()
