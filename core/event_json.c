#include "event_json.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_writer.h"
#include "mem.h"

/* Past these the scanner gives up and the caller parses: cJSON's own limits (1000 levels,
 * 63-character numbers) are further out, so giving up early is always safe. */
#define MAX_DEPTH 64
#define MAX_NUMBER_CHARS 32
/* Top-level data fields compared pairwise for names that repeat. */
#define MAX_FIELDS 32

/* canonical: accept only what cJSON_PrintUnformatted would print for the parsed value, so
 * that the text can be copied instead of parsed and printed again. Otherwise accept
 * strict JSON, a subset of what cJSON parses. */
struct scan {
    const char *p;
    const char *end;
    bool canonical;
    int depth;
};

static void skip_space(struct scan *s)
{
    if (s->canonical)
        return;
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex_value(char c, bool lower_only)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (!lower_only && c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* cJSON prints \" \\ \b \f \n \r \t, \u00xx (lower case) for the other control
 * characters and every other byte as it is; it parses \/ and any \uXXXX too, which it
 * would then print differently. */
static bool scan_string(struct scan *s)
{
    if (s->p >= s->end || *s->p != '"')
        return false;
    s->p++;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p++;
        if (c == '"')
            return true;
        if (c < 0x20)
            return false;
        if (c != '\\')
            continue;
        if (s->p >= s->end)
            return false;
        char e = *s->p++;
        if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't')
            continue;
        if (e == '/' && !s->canonical)
            continue;
        if (e != 'u' || s->end - s->p < 4)
            return false;
        unsigned code = 0;
        for (int i = 0; i < 4; i++) {
            int v = hex_value(s->p[i], s->canonical);
            if (v < 0)
                return false;
            code = code * 16 + (unsigned)v;
        }
        s->p += 4;
        if (code == 0 || (code >= 0xD800 && code <= 0xDFFF))
            return false; /* cut strings and surrogate pairs: leave them to cJSON */
        if (s->canonical && (code >= 0x20 || code == '\b' || code == '\f' || code == '\n' ||
                             code == '\r' || code == '\t'))
            return false;
    }
    return false;
}

/* cJSON's print_number: 15 significant digits if they read back within a relative
 * DBL_EPSILON (its compare_double), else 17. */
static bool number_prints_as(const char *text, size_t len)
{
    char copy[MAX_NUMBER_CHARS + 1];
    memcpy(copy, text, len);
    copy[len] = '\0';
    double value = strtod(copy, NULL);
    if (isnan(value) || isinf(value))
        return false;
    char printed[40];
    int n = snprintf(printed, sizeof(printed), "%1.15g", value);
    double back = strtod(printed, NULL);
    double larger = fabs(back) > fabs(value) ? fabs(back) : fabs(value);
    if (!(fabs(back - value) <= larger * DBL_EPSILON))
        n = snprintf(printed, sizeof(printed), "%1.17g", value);
    return n > 0 && (size_t)n == len && memcmp(printed, text, len) == 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool scan_number(struct scan *s)
{
    const char *start = s->p;
    const char *p = s->p;
    if (p < s->end && *p == '-')
        p++;
    if (p >= s->end || !is_digit(*p))
        return false;
    if (*p == '0')
        p++;
    else
        while (p < s->end && is_digit(*p))
            p++;
    bool integer = true;
    if (p < s->end && *p == '.') {
        integer = false;
        p++;
        if (p >= s->end || !is_digit(*p))
            return false;
        while (p < s->end && is_digit(*p))
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        integer = false;
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= s->end || !is_digit(*p))
            return false;
        while (p < s->end && is_digit(*p))
            p++;
    }
    size_t len = (size_t)(p - start);
    if (len > MAX_NUMBER_CHARS)
        return false;
    s->p = p;
    if (!s->canonical)
        return true;
    size_t digits = len - (*start == '-' ? 1u : 0u);
    /* Up to 15 digits an integer prints as itself; -0 prints as 0. */
    if (integer && digits <= 15)
        return !(*start == '-' && start[1] == '0');
    return number_prints_as(start, len);
}

static bool scan_literal(struct scan *s, const char *word)
{
    size_t len = strlen(word);
    if ((size_t)(s->end - s->p) < len || memcmp(s->p, word, len) != 0)
        return false;
    s->p += len;
    return true;
}

static bool scan_value(struct scan *s);

/* keys/key_lens (may be NULL): the object's field names as written, up to MAX_FIELDS;
 * more fields than that fail the scan when keys are asked for. */
/* At the opening bracket of a container: -1 when it nests too deep, 1 when `close` follows
 * at once (empty, consumed), 0 when members follow. */
static int enter(struct scan *s, char close)
{
    if (++s->depth > MAX_DEPTH)
        return -1;
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 1;
    }
    return 0;
}

/* After a member or an element: 1 when `close` ends the container, 0 after a comma (another
 * follows), -1 on anything else. */
static int after_item(struct scan *s, char close)
{
    skip_space(s);
    if (s->p >= s->end)
        return -1;
    if (*s->p == close) {
        s->p++;
        s->depth--;
        return 1;
    }
    if (*s->p != ',')
        return -1;
    s->p++;
    return 0;
}

static bool scan_object(struct scan *s, const char **keys, size_t *key_lens, size_t *count)
{
    int start = enter(s, '}');
    if (start != 0)
        return start > 0;
    for (;;) {
        skip_space(s);
        const char *key = s->p;
        if (!scan_string(s))
            return false;
        if (keys != NULL) {
            if (*count == MAX_FIELDS)
                return false;
            keys[*count] = key + 1;
            key_lens[*count] = (size_t)(s->p - key) - 2;
            (*count)++;
        }
        skip_space(s);
        if (s->p >= s->end || *s->p != ':')
            return false;
        s->p++;
        skip_space(s);
        if (!scan_value(s))
            return false;
        int end = after_item(s, '}');
        if (end != 0)
            return end > 0;
    }
}

static bool scan_array(struct scan *s)
{
    int start = enter(s, ']');
    if (start != 0)
        return start > 0;
    for (;;) {
        skip_space(s);
        if (!scan_value(s))
            return false;
        int end = after_item(s, ']');
        if (end != 0)
            return end > 0;
    }
}

static bool scan_value(struct scan *s)
{
    if (s->p >= s->end)
        return false;
    switch (*s->p) {
    case '{':
        return scan_object(s, NULL, NULL, NULL);
    case '[':
        return scan_array(s);
    case '"':
        return scan_string(s);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        return scan_number(s);
    }
}

bool sw_event_json_is_object(const char *text, size_t len)
{
    if (text == NULL)
        return false;
    struct scan s = {text, text + len, false, 0};
    skip_space(&s);
    if (s.p >= s.end || *s.p != '{' || !scan_object(&s, NULL, NULL, NULL))
        return false;
    skip_space(&s);
    return s.p == s.end;
}

/* cJSON's case_insensitive_strcmp in the C locale, on two names as written: a canonical
 * escape stands for a control character, a quote or a backslash, which no letter equals
 * and case does not change, so comparing the written forms compares the names. */
static bool same_name(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a_len != b_len)
        return false;
    for (size_t i = 0; i < a_len; i++) {
        unsigned char x = (unsigned char)a[i];
        unsigned char y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

/* The fields of data_json, between its braces, when they can be copied as they are:
 * data_json is an object in cJSON's printed form, no field repeats a name (ignoring case)
 * and none is called type, market_id or reason. NULL otherwise. */
static const char *copyable_fields(const char *data_json, size_t len, size_t *fields_len)
{
    const char *keys[MAX_FIELDS];
    size_t key_lens[MAX_FIELDS];
    size_t count = 0;
    struct scan s = {data_json, data_json + len, true, 0};
    if (len < 2 || *data_json != '{' || !scan_object(&s, keys, key_lens, &count) || s.p != s.end)
        return NULL;
    static const char *const reserved[] = {"type", "market_id", "reason"};
    for (size_t i = 0; i < count; i++) {
        for (size_t r = 0; r < SW_ARRAY_LEN(reserved); r++)
            if (same_name(keys[i], key_lens[i], reserved[r], strlen(reserved[r])))
                return NULL;
        for (size_t j = 0; j < i; j++)
            if (same_name(keys[i], key_lens[i], keys[j], key_lens[j]))
                return NULL;
    }
    *fields_len = len - 2;
    return data_json + 1;
}

char *sw_event_json_build(const char *type, const char *market_id, const char *reason,
                          const char *data_json)
{
    const char *fields = NULL;
    size_t fields_len = 0;
    if (data_json != NULL) {
        fields = copyable_fields(data_json, strlen(data_json), &fields_len);
        if (fields == NULL)
            return sw__event_json_build_tree(type, market_id, reason, data_json);
    }
    struct sw_jw w;
    sw_jw_init(&w);
    sw_jw_open(&w, NULL, '{');
    sw_jw_string(&w, "type", type);
    if (market_id != NULL)
        sw_jw_string(&w, "market_id", market_id);
    if (reason != NULL)
        sw_jw_string(&w, "reason", reason);
    if (fields_len > 0) {
        sw_jw_raw(&w, ",", 1);
        sw_jw_raw(&w, fields, fields_len);
    }
    sw_jw_close(&w, '}');
    return sw_jw_take(&w);
}

bool sw__event_json_copies(const char *data_json)
{
    size_t fields_len = 0;
    return data_json != NULL && copyable_fields(data_json, strlen(data_json), &fields_len) != NULL;
}

char *sw__event_json_build_tree(const char *type, const char *market_id, const char *reason,
                                const char *data_json)
{
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "type", type);
    if (market_id)
        cJSON_AddStringToObject(data, "market_id", market_id);
    if (reason)
        cJSON_AddStringToObject(data, "reason", reason);
    cJSON *extra = data_json ? cJSON_Parse(data_json) : NULL;
    if (cJSON_IsObject(extra)) {
        cJSON *field = extra->child;
        while (field != NULL) {
            cJSON *next = field->next;
            if (!cJSON_HasObjectItem(data, field->string))
                cJSON_AddItemToObject(data, field->string,
                                      cJSON_DetachItemViaPointer(extra, field));
            field = next;
        }
    }
    cJSON_Delete(extra);
    char *text = cJSON_PrintUnformatted(data);
    cJSON_Delete(data);
    return text;
}
