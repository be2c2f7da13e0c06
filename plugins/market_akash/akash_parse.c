/* akash_parse.c — the Console's replies parsed into a cJSON tree, in one pass.
 *
 * cJSON_ParseWithLength spent ~35 instructions per byte of a reply (two passes over every
 * string with a bounds check per byte, three strncmp calls before each value, a hook call
 * and a memset per node): 15% of the acquire burst's CPU. This parser builds the same tree
 * (nodes and strings from malloc, so cJSON_Delete frees it; steward never calls
 * cJSON_InitHooks) and follows cJSON 1.7.15 as Debian ships it, quirks included, so every
 * reader (cJSON_GetObjectItem, cJSON_IsString, ...) sees what it saw before:
 *   - bytes 0..32 (NUL too) count as whitespace; a UTF-8 BOM is skipped only when at
 *     least 5 bytes are given; whatever follows the value is ignored;
 *   - strings take raw control bytes and NULs; an escape is checked only when decoded, and
 *     a \u sequence always consumes 6 (or 12) bytes, its invalid hex digits reading as 0;
 *   - a number is the longest run of [0-9+-.eE] given to strtod (with the locale's decimal
 *     point), which keeps the prefix strtod accepts; valueint saturates as cJSON's does;
 *   - CJSON_NESTING_LIMIT open arrays and objects at most.
 * tests/unit/test_akash_parse.c holds it to cJSON, tree for tree, on replies, edge cases
 * and a few hundred thousand mutated inputs.
 */
#include <limits.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "akash.h"

/* Integers of at most this many digits are below 2^53: converting them by hand gives the
 * double strtod would, bit for bit, without strtod's cost. */
#define EXACT_DIGITS 15
/* A number span up to this length is copied to the stack for strtod. */
#define NUMBER_STACK 64

struct parser {
    const unsigned char *end;
    size_t depth;
};

/* Byte classes. */
enum { C_NUM = 1, C_DIGIT = 2 };
static const unsigned char byte_class[256] = {
    ['+'] = C_NUM,           ['-'] = C_NUM,           ['.'] = C_NUM,
    ['e'] = C_NUM,           ['E'] = C_NUM,           ['0'] = C_NUM | C_DIGIT,
    ['1'] = C_NUM | C_DIGIT, ['2'] = C_NUM | C_DIGIT, ['3'] = C_NUM | C_DIGIT,
    ['4'] = C_NUM | C_DIGIT, ['5'] = C_NUM | C_DIGIT, ['6'] = C_NUM | C_DIGIT,
    ['7'] = C_NUM | C_DIGIT, ['8'] = C_NUM | C_DIGIT, ['9'] = C_NUM | C_DIGIT,
};

static const unsigned char *parse_value(struct parser *ps, const unsigned char *p, cJSON *item);
static inline const unsigned char *parse_string(const unsigned char *p, const unsigned char *end,
                                                char **out);

/* A member or element: strings, most of a reply's values, without the call. */
static inline const unsigned char *parse_inner(struct parser *ps, const unsigned char *p,
                                               cJSON *item)
{
    if (p < ps->end && *p == '"') {
        p = parse_string(p, ps->end, &item->valuestring);
        if (p != NULL)
            item->type = cJSON_String;
        return p;
    }
    return parse_value(ps, p, item);
}

static inline const unsigned char *skip_space(const unsigned char *p, const unsigned char *end)
{
    while (p < end && *p <= 32)
        p++;
    return p;
}

static cJSON *new_node(void)
{
    cJSON *node = malloc(sizeof(*node));
    if (node != NULL)
        *node = (cJSON){0};
    return node;
}

/* The first '"' or '\\' in [p, end), or end. */
__attribute__((always_inline)) static inline const unsigned char *
find_quote_or_escape(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i escape = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned mask = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, escape)));
        if (mask != 0)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\')
        p++;
    return p;
}

/* cJSON's parse_hex4: an invalid digit makes the whole value 0 (not an error). */
static unsigned hex4(const unsigned char *in)
{
    unsigned value = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = in[i];
        unsigned digit;
        if (ch >= '0' && ch <= '9')
            digit = (unsigned)(ch - '0');
        else if (ch >= 'A' && ch <= 'F')
            digit = (unsigned)(ch - 'A' + 10);
        else if (ch >= 'a' && ch <= 'f')
            digit = (unsigned)(ch - 'a' + 10);
        else
            return 0;
        value = (value << 4) | digit;
    }
    return value;
}

/* A \u sequence at in (before stop, the closing quote) written to *out as UTF-8 as cJSON's
 * utf16_literal_to_utf8 does. Returns the bytes consumed (6 or 12), 0 when invalid. */
static size_t utf16_to_utf8(const unsigned char *in, const unsigned char *stop, unsigned char **out)
{
    if (stop - in < 6)
        return 0;
    unsigned long codepoint = hex4(in + 2);
    size_t consumed = 6;
    if (codepoint >= 0xDC00 && codepoint <= 0xDFFF)
        return 0;
    if (codepoint >= 0xD800 && codepoint <= 0xDBFF) {
        const unsigned char *second = in + 6;
        if (stop - second < 6 || second[0] != '\\' || second[1] != 'u')
            return 0;
        unsigned low = hex4(second + 2);
        if (low < 0xDC00 || low > 0xDFFF)
            return 0;
        codepoint = 0x10000 + (((codepoint & 0x3FF) << 10) | (low & 0x3FF));
        consumed = 12;
    }
    unsigned char *o = *out;
    if (codepoint < 0x80) {
        o[0] = (unsigned char)codepoint;
        *out = o + 1;
    } else if (codepoint < 0x800) {
        o[0] = (unsigned char)(0xC0 | (codepoint >> 6));
        o[1] = (unsigned char)(0x80 | (codepoint & 0x3F));
        *out = o + 2;
    } else if (codepoint < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (codepoint >> 12));
        o[1] = (unsigned char)(0x80 | ((codepoint >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (codepoint & 0x3F));
        *out = o + 3;
    } else {
        o[0] = (unsigned char)(0xF0 | (codepoint >> 18));
        o[1] = (unsigned char)(0x80 | ((codepoint >> 12) & 0x3F));
        o[2] = (unsigned char)(0x80 | ((codepoint >> 6) & 0x3F));
        o[3] = (unsigned char)(0x80 | (codepoint & 0x3F));
        *out = o + 4;
    }
    return consumed;
}

/* The text between in and stop (the closing quote) with its escapes decoded, as cJSON's
 * second pass does: it walks on its own, so a \u sequence that swallows part of the next
 * escape shifts what it reads next, and may step onto the closing quote (never past it). */
static char *decode_escaped(const unsigned char *in, const unsigned char *stop)
{
    /* Decoding never grows the text: 2 bytes give 1, 6 give at most 3, 12 give 4. */
    unsigned char *out = malloc((size_t)(stop - in) + 1);
    if (out == NULL)
        return NULL;
    unsigned char *o = out;
    while (in < stop) {
        const unsigned char *slash = memchr(in, '\\', (size_t)(stop - in));
        if (slash == NULL)
            slash = stop;
        memcpy(o, in, (size_t)(slash - in));
        o += slash - in;
        in = slash;
        if (in >= stop)
            break;
        size_t consumed = 2;
        switch (in[1]) { /* in + 1 <= stop: at most the closing quote */
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case '"':
        case '\\':
        case '/':
            *o++ = in[1];
            break;
        case 'u':
            consumed = utf16_to_utf8(in, stop, &o);
            if (consumed == 0)
                goto fail;
            break;
        default:
            goto fail;
        }
        in += consumed;
    }
    *o = '\0';
    return (char *)out;
fail:
    free(out);
    return NULL;
}

/* The rest of a string whose text starts at start and has an escape at q: cJSON's first
 * pass finds the closing quote (a backslash hides the byte after it, and may not be the last
 * byte given), its second decodes. */
__attribute__((noinline)) static const unsigned char *parse_escaped(const unsigned char *start,
                                                                    const unsigned char *q,
                                                                    const unsigned char *end,
                                                                    char **out)
{
    while (q < end && *q == '\\') {
        if (q + 1 >= end)
            return NULL;
        q = find_quote_or_escape(q + 2, end);
    }
    if (q >= end)
        return NULL;
    char *text = decode_escaped(start, q);
    if (text == NULL)
        return NULL;
    *out = text;
    return q + 1;
}

/* The string whose opening quote is at p: *out gets the malloc'd text. Returns the byte
 * after the closing quote, NULL when invalid (or out of memory). */
static inline const unsigned char *parse_string(const unsigned char *p, const unsigned char *end,
                                                char **out)
{
    const unsigned char *start = p + 1;
    const unsigned char *q = find_quote_or_escape(start, end);
    if (__builtin_expect(q < end && *q == '"', 1)) {
        size_t len = (size_t)(q - start);
        char *text = malloc(len + 1);
        if (text == NULL)
            return NULL;
        memcpy(text, start, len);
        text[len] = '\0';
        *out = text;
        return q + 1;
    }
    return parse_escaped(start, q, end, out);
}

static void set_number(cJSON *item, double number)
{
    item->type = cJSON_Number;
    item->valuedouble = number;
    if (number >= INT_MAX)
        item->valueint = INT_MAX;
    else if (number <= (double)INT_MIN)
        item->valueint = INT_MIN;
    else
        item->valueint = (int)number;
}

static const unsigned char *parse_number(const unsigned char *p, const unsigned char *end,
                                         cJSON *item)
{
    const unsigned char *q = p;
    bool negative = *q == '-';
    if (negative)
        q++;
    uint64_t value = 0;
    const unsigned char *digits = q;
    while (q < end && (byte_class[*q] & C_DIGIT)) {
        value = value * 10 + (uint64_t)(*q - '0');
        q++;
    }
    size_t digit_count = (size_t)(q - digits);
    if (digit_count > 0 && digit_count <= EXACT_DIGITS && (q >= end || !(byte_class[*q] & C_NUM))) {
        double number = (double)value;
        set_number(item, negative ? -number : number);
        return q;
    }
    /* A fraction, an exponent, a long integer or something strtod may refuse. */
    while (q < end && (byte_class[*q] & C_NUM))
        q++;
    size_t len = (size_t)(q - p);
    char stack[NUMBER_STACK];
    char *copy = len < sizeof(stack) ? stack : malloc(len + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, p, len);
    copy[len] = '\0';
    char point = localeconv()->decimal_point[0];
    if (point != '.') {
        for (char *dot = memchr(copy, '.', len); dot != NULL;
             dot = memchr(dot + 1, '.', len - (size_t)(dot + 1 - copy)))
            *dot = point;
    }
    char *after = NULL;
    double number = strtod(copy, &after);
    size_t used = (size_t)(after - copy);
    if (copy != stack)
        free(copy);
    if (used == 0)
        return NULL;
    set_number(item, number);
    return p + used;
}

/* A new last node of a container's list; NULL when out of memory. */
static cJSON *append_node(cJSON **head, cJSON **last)
{
    cJSON *node = new_node();
    if (node == NULL)
        return NULL;
    if (*head == NULL) {
        *head = node;
    } else {
        (*last)->next = node;
        node->prev = *last;
    }
    *last = node;
    return node;
}

/* A member's name and its colon, at p: returns where its value starts, NULL when invalid. */
static const unsigned char *parse_member_name(const unsigned char *p, const unsigned char *end,
                                              cJSON *node)
{
    if (p >= end || *p != '"')
        return NULL;
    p = parse_string(p, end, &node->string);
    if (p == NULL)
        return NULL;
    p = skip_space(p, end);
    if (p >= end || *p != ':')
        return NULL;
    return skip_space(p + 1, end);
}

/* The array or object (keyed: members have names) whose opening bracket is at p, into item.
 * cJSON's first child keeps the last one in prev. */
static const unsigned char *parse_container(struct parser *ps, const unsigned char *p,
                                            cJSON *item, bool keyed)
{
    const unsigned char *end = ps->end;
    const unsigned char close = keyed ? '}' : ']';
    cJSON *head = NULL;
    cJSON *last = NULL;
    if (ps->depth >= CJSON_NESTING_LIMIT)
        return NULL;
    ps->depth++;
    p = skip_space(p + 1, end);
    if (p >= end || *p != close) {
        for (;;) {
            cJSON *node = append_node(&head, &last);
            if (node == NULL)
                goto fail;
            if (keyed && (p = parse_member_name(p, end, node)) == NULL)
                goto fail;
            p = parse_inner(ps, p, node);
            if (p == NULL)
                goto fail;
            p = skip_space(p, end);
            if (p >= end || *p != ',')
                break;
            p = skip_space(p + 1, end);
        }
        if (p >= end || *p != close)
            goto fail;
    }
    ps->depth--;
    if (head != NULL)
        head->prev = last;
    item->type = keyed ? cJSON_Object : cJSON_Array;
    item->child = head;
    return p + 1;
fail:
    cJSON_Delete(head);
    return NULL;
}

/* The value at p into item (a fresh node). Returns the byte after it, or NULL; on failure
 * item owns nothing new. */
static const unsigned char *parse_value(struct parser *ps, const unsigned char *p, cJSON *item)
{
    const unsigned char *end = ps->end;
    if (p >= end)
        return NULL;
    switch (*p) {
    case '"':
        p = parse_string(p, end, &item->valuestring);
        if (p != NULL)
            item->type = cJSON_String;
        return p;
    case '{':
        return parse_container(ps, p, item, true);
    case '[':
        return parse_container(ps, p, item, false);
    case 'n':
        if (end - p < 4 || memcmp(p, "null", 4) != 0)
            return NULL;
        item->type = cJSON_NULL;
        return p + 4;
    case 'f':
        if (end - p < 5 || memcmp(p, "false", 5) != 0)
            return NULL;
        item->type = cJSON_False;
        return p + 5;
    case 't':
        if (end - p < 4 || memcmp(p, "true", 4) != 0)
            return NULL;
        item->type = cJSON_True;
        item->valueint = 1;
        return p + 4;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return parse_number(p, end, item);
    default:
        return NULL;
    }
}

cJSON *akash_json_parse(const char *text, size_t len)
{
    if (text == NULL || len == 0)
        return NULL;
    const unsigned char *p = (const unsigned char *)text;
    struct parser ps = {.end = p + len, .depth = 0};
    /* cJSON looks for the BOM only when a fifth byte exists. */
    if (len >= 5 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    cJSON *root = new_node();
    if (root == NULL)
        return NULL;
    if (parse_value(&ps, skip_space(p, ps.end), root) == NULL) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}
