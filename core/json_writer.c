/* json_writer.c — see json_writer.h. */
#include "json_writer.h"

#include <float.h>
#include <limits.h>
#include <math.h>
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

void sw_jw_reserve(struct sw_jw *w, size_t more)
{
    if (w->len + more + 1 <= w->cap)
        return;
    size_t cap = w->cap ? w->cap * 2 : 512;
    while (cap < w->len + more + 1)
        cap *= 2;
    w->text = sw_xrealloc(w->text, cap);
    w->cap = cap;
}

void sw_jw_raw(struct sw_jw *w, const char *data, size_t len)
{
    sw_jw_reserve(w, len);
    memcpy(w->text + w->len, data, len);
    w->len += len;
    w->text[w->len] = '\0';
}

/* cJSON's print_string_ptr: the two-character escapes it knows, \u00XX for the other
 * control characters, every other byte (UTF-8 included) as it is. */
static void put_string(struct sw_jw *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    static const char short_escape[0x20] = {
        ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    sw_jw_reserve(w, len * 6 + 2);
    char *o = w->text + w->len;
    *o++ = '"';
    for (; *p; p++) {
        unsigned char c = *p;
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        if (c == '"' || c == '\\') {
            *o++ = (char)c;
        } else if (short_escape[c] != 0) {
            *o++ = short_escape[c];
        } else {
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    *o = '\0';
    w->len = (size_t)(o - w->text);
}

static void key(struct sw_jw *w, const char *name)
{
    if (!w->first)
        sw_jw_raw(w, ",", 1);
    w->first = false;
    if (name != NULL) {
        put_string(w, name);
        sw_jw_raw(w, ":", 1);
    }
}

void sw_jw_open(struct sw_jw *w, const char *name, char bracket)
{
    key(w, name);
    sw_jw_raw(w, &bracket, 1);
    w->first = true;
}

void sw_jw_close(struct sw_jw *w, char bracket)
{
    sw_jw_raw(w, &bracket, 1);
    w->first = false;
}

void sw_jw_string(struct sw_jw *w, const char *name, const char *value)
{
    key(w, name);
    if (value == NULL)
        sw_jw_raw(w, "null", 4);
    else
        put_string(w, value);
}

void sw_jw_bool(struct sw_jw *w, const char *name, bool value)
{
    key(w, name);
    if (value)
        sw_jw_raw(w, "true", 4);
    else
        sw_jw_raw(w, "false", 5);
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

void sw_jw_number(struct sw_jw *w, const char *name, double value)
{
    char buf[32];
    size_t len;
    key(w, name);
    if (!isfinite(value)) {
        sw_jw_raw(w, "null", 4);
        return;
    }
    if (floor(value) == value && fabs(value) < 1e15 && !(value == 0 && signbit(value))) {
        len = integer_text((long long)value, buf);
    } else {
        double back = 0;
        int n = snprintf(buf, sizeof(buf), "%1.15g", value);
        if (sscanf(buf, "%lg", &back) != 1 || !within_epsilon(back, value))
            n = snprintf(buf, sizeof(buf), "%1.17g", value);
        len = n > 0 ? (size_t)n : 0;
    }
    sw_jw_raw(w, buf, len);
}
