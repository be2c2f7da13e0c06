/* json_writer.c — see json_writer.h. */
#include "json_writer.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

void sw_jw_init(struct sw_jw *w)
{
    w->text = NULL;
    w->len = 0;
    w->cap = 0;
    w->first = true;
}

void sw_jw_free(struct sw_jw *w)
{
    free(w->text);
    sw_jw_init(w);
}

char *sw_jw_take(struct sw_jw *w)
{
    char *text = w->text != NULL ? w->text : sw_xstrdup("");
    sw_jw_init(w);
    return text;
}

static void grow(struct sw_jw *w, size_t more)
{
    size_t cap = w->cap ? w->cap * 2 : 512;
    while (cap < w->len + more + 1)
        cap *= 2;
    w->text = sw_xrealloc(w->text, cap);
    w->cap = cap;
}

/* The common case (room already there) stays in the caller: members are written by the
 * thousand per tick. */
static inline void reserve(struct sw_jw *w, size_t more)
{
    if (w->len + more + 1 > w->cap)
        grow(w, more);
}

void sw_jw_reserve(struct sw_jw *w, size_t more)
{
    reserve(w, more);
}

void sw_jw_raw(struct sw_jw *w, const char *data, size_t len)
{
    reserve(w, len);
    memcpy(w->text + w->len, data, len);
    w->len += len;
    w->text[w->len] = '\0';
}

/* Whether any of the 8 bytes of x needs an escape: below 0x20, '"' or '\\'. Bit tricks
 * (exact for "any"): a long string is copied 8 bytes a test rather than judged byte by
 * byte. */
static inline bool word_needs_escape(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
    uint64_t control = (x - ones * 0x20) & ~x;
    uint64_t hit = control | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash);
    return (hit & highs) != 0;
}

/* cJSON's print_string_ptr, quotes included, into room for len * 6 + 2 bytes: the
 * two-character escapes it knows, \u00XX for the other control characters, every other
 * byte (UTF-8 included) as it is. Returns the end. */
static char *put_string(char *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    /* 0: as it is; else the letter after the backslash ('u': \u00XX) */
    static const char escape[256] = {
        ['\0'] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u',
        [0x06] = 'u',  [0x07] = 'u', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', [0x0b] = 'u',
        ['\f'] = 'f',  ['\r'] = 'r', [0x0e] = 'u', [0x0f] = 'u', [0x10] = 'u', [0x11] = 'u',
        [0x12] = 'u',  [0x13] = 'u', [0x14] = 'u', [0x15] = 'u', [0x16] = 'u', [0x17] = 'u',
        [0x18] = 'u',  [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u', [0x1d] = 'u',
        [0x1e] = 'u',  [0x1f] = 'u', ['"'] = '"',  ['\\'] = '\\'};
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;
    *o++ = '"';
    while (p < end) {
        if (end - p >= 8) {
            uint64_t word;
            memcpy(&word, p, sizeof(word));
            if (!word_needs_escape(word)) {
                memcpy(o, &word, sizeof(word));
                o += 8;
                p += 8;
                continue;
            }
        }
        unsigned char c = *p++;
        char letter = escape[c];
        if (letter == 0) {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        *o++ = letter;
        if (letter == 'u') {
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    return o;
}

/* A member's comma and key (name NULL: an array element or the document), with room for
 * `more` bytes of value after them; returns where the value goes. member_end closes it. */
static char *member_begin(struct sw_jw *w, const char *name, size_t more)
{
    size_t name_len = name != NULL ? strlen(name) : 0;
    reserve(w, 1 + (name != NULL ? name_len * 6 + 3 : 0) + more);
    char *o = w->text + w->len;
    if (!w->first)
        *o++ = ',';
    w->first = false;
    if (name != NULL) {
        o = put_string(o, name, name_len);
        *o++ = ':';
    }
    return o;
}

static void member_end(struct sw_jw *w, char *o)
{
    *o = '\0';
    w->len = (size_t)(o - w->text);
}

/* A member whose value is len bytes of JSON text. */
static void member_text(struct sw_jw *w, const char *name, const char *text, size_t len)
{
    char *o = member_begin(w, name, len);
    memcpy(o, text, len);
    member_end(w, o + len);
}

void sw_jw_open(struct sw_jw *w, const char *name, char bracket)
{
    member_text(w, name, &bracket, 1);
    w->first = true;
}

void sw_jw_close(struct sw_jw *w, char bracket)
{
    reserve(w, 1);
    w->text[w->len++] = bracket;
    w->text[w->len] = '\0';
    w->first = false;
}

void sw_jw_string(struct sw_jw *w, const char *name, const char *value)
{
    if (value == NULL) {
        member_text(w, name, "null", 4);
        return;
    }
    size_t len = strlen(value);
    char *o = member_begin(w, name, len * 6 + 2);
    member_end(w, put_string(o, value, len));
}

void sw_jw_bool(struct sw_jw *w, const char *name, bool value)
{
    if (value)
        member_text(w, name, "true", 4);
    else
        member_text(w, name, "false", 5);
}

/* Integer digits by hand: what "%1.15g" prints for an integral value below 1e15 (but -0),
 * without the cost of printf. */
static size_t integer_text(long long n, char *out)
{
    char tmp[24];
    size_t len = 0, o = 0;
    unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    do {
        tmp[len++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (n < 0)
        out[o++] = '-';
    while (len > 0)
        out[o++] = tmp[--len];
    return o;
}

static bool within_epsilon(double a, double b)
{
    double max = fmax(fabs(a), fabs(b));
    return fabs(a - b) <= max * DBL_EPSILON;
}

/* What "%1.15g" prints for a value that is the double nearest a decimal of at most 15
 * significant digits, no exponent (0.0001 <= |value| < 1e15), and not an integer: that
 * decimal, in fixed notation without trailing zeros. It also reads back as the value, so
 * cJSON keeps it. Prices, rates and shares are such decimals; the test below is exact:
 * m / 10^k is a correctly rounded division of two exact doubles, so equality means value
 * is the double nearest m / 10^k, and 15 significant digits of value round to that
 * decimal (its half-spacing is more than 40 times value's half-ulp). 0 when it does not
 * apply (the caller uses printf). */
static size_t short_decimal_text(double value, char *out)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19};
    double magnitude = fabs(value);
    if (!(magnitude >= 1e-4 && magnitude < 1e15))
        return 0;
    for (size_t k = 1; k < sizeof(pow10) / sizeof(pow10[0]); k++) {
        double scaled = magnitude * pow10[k];
        if (scaled >= 1e15)
            return 0;
        double m = nearbyint(scaled);
        if (m / pow10[k] != magnitude)
            continue;
        unsigned long long digits = (unsigned long long)m;
        if (digits % 10 == 0)
            return 0; /* not reached for a non-integer; printf decides */
        char tmp[24];
        size_t count = 0;
        while (digits > 0) {
            tmp[count++] = (char)('0' + digits % 10);
            digits /= 10;
        }
        /* decimal exponent of the leading digit: %g's fixed notation needs it >= -4 */
        if ((long)count - 1 - (long)k < -4)
            return 0;
        size_t o = 0;
        if (value < 0)
            out[o++] = '-';
        if (count <= k) {
            out[o++] = '0';
            out[o++] = '.';
            for (size_t z = count; z < k; z++)
                out[o++] = '0';
        }
        while (count > 0) {
            if (count == k && o > 0 && out[o - 1] != '.')
                out[o++] = '.';
            out[o++] = tmp[--count];
        }
        return o;
    }
    return 0;
}

void sw_jw_number(struct sw_jw *w, const char *name, double value)
{
    char buf[32];
    size_t len;
    if (!isfinite(value)) {
        member_text(w, name, "null", 4);
        return;
    }
    if (floor(value) == value && fabs(value) < 1e15 && !(value == 0 && signbit(value))) {
        len = integer_text((long long)value, buf);
    } else if ((len = short_decimal_text(value, buf)) == 0) {
        double back = 0;
        int n = snprintf(buf, sizeof(buf), "%1.15g", value);
        if (sscanf(buf, "%lg", &back) != 1 || !within_epsilon(back, value))
            n = snprintf(buf, sizeof(buf), "%1.17g", value);
        len = n > 0 ? (size_t)n : 0;
    }
    member_text(w, name, buf, len);
}
