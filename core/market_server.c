/* market_server.c — `steward market serve`, the local marketplace (see market_server.h).
 *
 * Model. Every fact lives in SQLite (one connection, WAL) and every request runs in one
 * transaction: first the marketplace is advanced to "now", then the request is applied.
 * Advancing replays, in time order, the scheduled facts of a persistent timeline (a
 * provider's bid after its bid delay, a bid's expiry, a lease turning ready, a provider
 * closing a lease, an unleased deployment being closed) interleaved with escrow
 * settlements. Escrow is settled lazily, as on the chain: each deployment keeps the block
 * height it is settled to and the time its next settlement matters (the block its funds run
 * dry, or the block an auto top-up is due); reads settle what they report. So the state at
 * any instant depends only on the requests and the clock, a restart continues where the
 * last run stopped, and one wake timer (for the earliest scheduled fact) keeps the log
 * timely without polling.
 *
 * Money is integer micro-uact (1e-6 uact; 1 USD = 1e6 uact = 1e12 micro-uact) so escrow
 * arithmetic is exact and DecCoin strings print with 18 true decimals.
 *
 * Time: the marketplace clock is a live clock at --speed (every delay the marketplace has
 * is compressed); network latency injected by faults runs on a second live clock at speed
 * 1, because it models the wire, not the marketplace.
 */
#include "market_server.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

#include "base64.h"
#include "clock.h"
#include "config.h"
#include "http_server.h"
#include "log.h"
#include "mem.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

#define MICRO_PER_UACT INT64_C(1000000)
#define MICRO_PER_USD INT64_C(1000000000000)
/* 1e6 USD: keeps every sum of balances and escrows far below INT64_MAX micro-uact. */
#define MAX_USD 1000000.0
#define MIN_DEPOSIT_USD 0.5
/* Per-block prices up to 1e9 uact and up to 1000 replicas per group keep a group's price
 * below 1e18 micro-uact. */
#define MAX_PRICE_UACT 1e9
#define MAX_GROUP_UNITS 1000
/* What a provider escrows per bid on Akash (0.5 ACT); only shown in bid escrow accounts. */
#define BID_DEPOSIT_MICRO (INT64_C(500000) * MICRO_PER_UACT)

#define GENESIS_HEIGHT INT64_C(1000000)
#define DEFAULT_BLOCK_MS 6000
#define DEFAULT_BID_TTL_MS (5 * 60 * 1000)
#define DEFAULT_UNLEASED_MS (10 * 60 * 1000)
/* Auto top-up keeps at least this much runway (marketplace time). */
#define TOPUP_RUNWAY_MS (60 * 60 * 1000)
#define DEFAULT_BALANCE_USD 1000.0
#define DEFAULT_API_KEY_ENV "STEWARD_MARKET_API_KEY"
#define DEFAULT_OWNER "akash1stewardmarketwallet0qpzry9x8gf2tvdw0s3"

/* Bodies up to APP_MAX_BODY get a JSON 413 from us; the HTTP layer refuses anything past
 * HTTP_MAX_BODY (plain-text 413) before reading it, which bounds memory per connection. */
#define APP_MAX_BODY (1024 * 1024)
#define HTTP_MAX_BODY (2 * 1024 * 1024)
#define YAML_MAX_DEPTH 64
#define MAX_LEASES_PER_REQUEST 64
#define MAX_PAGE_LIMIT 1000
#define DEFAULT_PAGE_LIMIT 100

typedef int64_t money_t; /* micro-uact */

/* ---- small helpers ---------------------------------------------------------------------- */

struct strbuf {
    char *data;
    size_t len;
    size_t cap;
};

static void sb_append(struct strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = sw_xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(struct strbuf *b, const char *s)
{
    sb_append(b, s, strlen(s));
}

static char *sb_take(struct strbuf *b)
{
    char *s = b->data != NULL ? b->data : sw_xstrdup("");
    memset(b, 0, sizeof(*b));
    return s;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static double unit_double(uint64_t x)
{
    return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

/* A keyed 64-bit digest: FNV-1a over the bytes, then splitmix finalisation, so every
 * derived value (hashes, ingress names, closure draws) is a pure function of the seed and
 * the thing it describes: the same seed replays the same marketplace. */
static uint64_t digest64(uint64_t key, const char *text)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325) ^ key;
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        h ^= *p;
        h *= UINT64_C(0x100000001b3);
    }
    return splitmix64(&h);
}

static void digest_bytes(uint64_t key, const char *text, unsigned char *out, size_t len)
{
    uint64_t state = digest64(key, text);
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = splitmix64(&state);
        for (size_t j = 0; j < 8 && i + j < len; j++)
            out[i + j] = (unsigned char)(v >> (8 * j));
    }
}

static void hex_upper(const unsigned char *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

/* "12.500000000000000000": DecCoin amounts carry 18 decimals; ours are exact to 6. */
static void money_text(money_t micro, char *out, size_t len)
{
    if (micro < 0)
        micro = 0;
    snprintf(out, len, "%" PRId64 ".%06" PRId64 "000000000000", micro / MICRO_PER_UACT,
             micro % MICRO_PER_UACT);
}

static double money_usd(money_t micro)
{
    return (double)micro / (double)MICRO_PER_USD;
}

/* A decimal string ("12", "12.5", "0.000001") to micro-uact; digits past the 6th
 * decimal are dropped (they are below what escrow can move). */
static bool parse_decimal_micro(const char *s, money_t *out)
{
    const char *p = s;
    int64_t whole = 0;
    int64_t frac = 0;
    int frac_digits = 0;
    bool any = false;
    if (*p == '+')
        p++;
    while (isdigit((unsigned char)*p)) {
        if (whole > (INT64_MAX / MICRO_PER_UACT) / 10)
            return false;
        whole = whole * 10 + (*p - '0');
        p++;
        any = true;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            if (frac_digits < 6) {
                frac = frac * 10 + (*p - '0');
                frac_digits++;
            }
            p++;
            any = true;
        }
    }
    if (!any || *p != '\0')
        return false;
    while (frac_digits < 6) {
        frac *= 10;
        frac_digits++;
    }
    *out = whole * MICRO_PER_UACT + frac;
    return true;
}

static bool parse_u64_text(const char *s, uint64_t *out)
{
    if (s == NULL || *s == '\0' || strlen(s) > 19)
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return true;
}

/* A dseq from a path, query or JSON string: 1..19 digits, > 0, fits int64. */
static bool parse_dseq(const char *s, int64_t *out)
{
    uint64_t v;
    if (!parse_u64_text(s, &v) || v == 0 || v > (uint64_t)INT64_MAX)
        return false;
    *out = (int64_t)v;
    return true;
}

/* ---- YAML subset ------------------------------------------------------------------------ */

struct yline {
    int indent;
    char *text; /* structural content: after the indent, comment and trailing blanks cut */
    const char *raw;
    size_t raw_len;
    int number;
    bool tab_indent; /* a tab inside the indentation: fatal only if the line is structural */
};

struct yparser {
    struct yline *lines;
    size_t count;
    size_t pos;
    int depth;
    struct sw_error *err;
    bool failed;
};

static cJSON *yfail(struct yparser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cJSON *yfail(struct yparser *p, int line, const char *fmt, ...)
{
    if (!p->failed) {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        sw_error_set(p->err, SW_EINVAL, "line %d: %s", line, msg);
        p->failed = true;
    }
    return NULL;
}

/* Where a scalar may begin: quotes there open a quoted scalar; elsewhere they are text. */
static bool scalar_start(const char *start, const char *at)
{
    if (at == start)
        return true;
    char prev = at[-1];
    if (prev == '[' || prev == '{' || prev == ',')
        return true;
    if (prev == ' ' && at - 1 > start) {
        const char *q = at - 1;
        while (q > start && *q == ' ')
            q--;
        return *q == ':' || *q == '-' || *q == '[' || *q == '{' || *q == ',' || *q == '?';
    }
    return prev == ' ';
}

/* Cut a "# comment" (a '#' at the start or after a blank, outside quoted scalars). */
static void strip_comment(char *s)
{
    for (char *c = s; *c != '\0'; c++) {
        if ((*c == '"' || *c == '\'') && scalar_start(s, c)) {
            char quote = *c;
            for (c++; *c != '\0'; c++) {
                if (quote == '"' && *c == '\\' && c[1] != '\0')
                    c++;
                else if (*c == quote) {
                    if (quote == '\'' && c[1] == '\'')
                        c++;
                    else
                        break;
                }
            }
            if (*c == '\0')
                return;
        } else if (*c == '#' && (c == s || c[-1] == ' ' || c[-1] == '\t')) {
            *c = '\0';
            return;
        }
    }
}

static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

static void ylines_free(struct yparser *p)
{
    for (size_t i = 0; i < p->count; i++)
        free(p->lines[i].text);
    free(p->lines);
}

static void ylines_split(struct yparser *p, const char *text, size_t len)
{
    size_t cap = 0;
    size_t start = 0;
    int number = 0;
    while (start < len) {
        size_t end = start;
        while (end < len && text[end] != '\n')
            end++;
        number++;
        if (p->count == cap) {
            cap = cap ? cap * 2 : 64;
            p->lines = sw_xrealloc(p->lines, cap * sizeof(*p->lines));
        }
        struct yline *l = &p->lines[p->count++];
        memset(l, 0, sizeof(*l));
        l->raw = text + start;
        l->raw_len = end - start;
        if (l->raw_len > 0 && l->raw[l->raw_len - 1] == '\r')
            l->raw_len--;
        l->number = number;
        size_t i = 0;
        while (i < l->raw_len && (l->raw[i] == ' ' || l->raw[i] == '\t')) {
            if (l->raw[i] == '\t')
                l->tab_indent = true;
            i++;
        }
        /* Indent counts spaces only: a tab makes the line invalid if it is structural. */
        size_t spaces = 0;
        while (spaces < l->raw_len && l->raw[spaces] == ' ')
            spaces++;
        l->indent = (int)(spaces > 100000 ? 100000 : spaces);
        /* NUL bytes in the input would cut strings short: they end the line's text. */
        l->text = sw_xstrndup(l->raw + i, l->raw_len - i);
        strip_comment(l->text);
        rtrim(l->text);
        start = end + 1;
    }
}

static bool yblank(const struct yline *l)
{
    return l->text[0] == '\0';
}

/* Index of the next structural line at or after p->pos, or p->count. */
static size_t ynext(struct yparser *p)
{
    size_t i = p->pos;
    while (i < p->count && yblank(&p->lines[i]))
        i++;
    return i;
}

static bool is_seq_item(const char *t)
{
    return t[0] == '-' && (t[1] == ' ' || t[1] == '\0');
}

/* Position of the mapping ':' (followed by a blank or the end), outside quotes and flow
 * brackets; -1 when the text is not "key: value". */
static long find_colon(const char *t)
{
    int nest = 0;
    for (const char *c = t; *c != '\0'; c++) {
        if ((*c == '"' || *c == '\'') && scalar_start(t, c)) {
            char quote = *c;
            for (c++; *c != '\0' && *c != quote; c++)
                if (quote == '"' && *c == '\\' && c[1] != '\0')
                    c++;
            if (*c == '\0')
                return -1;
        } else if (*c == '[' || *c == '{') {
            nest++;
        } else if (*c == ']' || *c == '}') {
            nest--;
        } else if (*c == ':' && nest == 0 && (c[1] == ' ' || c[1] == '\0')) {
            return c - t;
        }
    }
    return -1;
}

static void utf8_put(struct strbuf *b, unsigned long cp)
{
    char tmp[4];
    size_t n;
    if (cp < 0x80) {
        tmp[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        tmp[0] = (char)(0xC0 | (cp >> 6));
        tmp[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        tmp[0] = (char)(0xE0 | (cp >> 12));
        tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        tmp[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        tmp[0] = (char)(0xF0 | (cp >> 18));
        tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        tmp[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sb_append(b, tmp, n);
}

/* A quoted scalar starting at *cur (on the quote); advances past the closing quote. */
static cJSON *yquoted(struct yparser *p, int line, const char **cur)
{
    const char *c = *cur;
    char quote = *c++;
    struct strbuf b = {0};
    for (;;) {
        if (*c == '\0') {
            free(b.data);
            return yfail(p, line,
                         "unterminated %s-quoted string (quoted strings must end on "
                         "their line)",
                         quote == '"' ? "double" : "single");
        }
        if (quote == '\'' && *c == '\'') {
            if (c[1] == '\'') {
                sb_append(&b, "'", 1);
                c += 2;
                continue;
            }
            c++;
            break;
        }
        if (quote == '"' && *c == '"') {
            c++;
            break;
        }
        if (quote == '"' && *c == '\\') {
            c++;
            char e = *c;
            const char *simple = NULL;
            switch (e) {
            case 'n':
                simple = "\n";
                break;
            case 't':
                simple = "\t";
                break;
            case 'r':
                simple = "\r";
                break;
            case '"':
                simple = "\"";
                break;
            case '\\':
                simple = "\\";
                break;
            case '/':
                simple = "/";
                break;
            case ' ':
                simple = " ";
                break;
            case '0':
                simple = "";
                break; /* a NUL would end the C string: dropped */
            default:
                break;
            }
            if (simple != NULL) {
                sb_puts(&b, simple);
                c++;
                continue;
            }
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
            if (digits == 0) {
                free(b.data);
                return yfail(p, line, "unknown escape \\%c in a double-quoted string",
                             e != '\0' ? e : '?');
            }
            unsigned long cp = 0;
            for (int i = 1; i <= digits; i++) {
                char h = c[i];
                int v = isdigit((unsigned char)h) ? h - '0'
                        : (h >= 'a' && h <= 'f')  ? h - 'a' + 10
                        : (h >= 'A' && h <= 'F')  ? h - 'A' + 10
                                                  : -1;
                if (v < 0) {
                    free(b.data);
                    return yfail(p, line, "bad \\%c escape in a double-quoted string", e);
                }
                cp = cp * 16 + (unsigned long)v;
            }
            c += digits + 1;
            if (cp != 0 && cp <= 0x10FFFF)
                utf8_put(&b, cp);
            continue;
        }
        sb_append(&b, c, 1);
        c++;
    }
    *cur = c;
    char *s = sb_take(&b);
    cJSON *item = cJSON_CreateString(s);
    free(s);
    return item;
}

static bool looks_numeric(const char *s)
{
    const char *c = s;
    if (*c == '+' || *c == '-')
        c++;
    bool digits = false;
    while (isdigit((unsigned char)*c)) {
        c++;
        digits = true;
    }
    if (*c == '.') {
        c++;
        while (isdigit((unsigned char)*c)) {
            c++;
            digits = true;
        }
    }
    if (!digits)
        return false;
    if (*c == 'e' || *c == 'E') {
        c++;
        if (*c == '+' || *c == '-')
            c++;
        if (!isdigit((unsigned char)*c))
            return false;
        while (isdigit((unsigned char)*c))
            c++;
    }
    return *c == '\0';
}

/* A plain scalar typed as YAML 1.2 core. */
static cJSON *yplain(const char *s)
{
    if (*s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
        strcmp(s, "NULL") == 0)
        return cJSON_CreateNull();
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return cJSON_CreateTrue();
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return cJSON_CreateFalse();
    if (looks_numeric(s)) {
        double v = strtod(s, NULL);
        if (isfinite(v))
            return cJSON_CreateNumber(v);
    }
    return cJSON_CreateString(s);
}

static void skip_blanks(const char **cur)
{
    while (**cur == ' ' || **cur == '\t')
        (*cur)++;
}

static cJSON *yflow(struct yparser *p, int line, const char **cur);

/* A plain scalar inside a flow collection: ends at , ] } or ": ". */
static cJSON *yflow_plain(struct yparser *p, int line, const char **cur, bool in_map_key)
{
    const char *c = *cur;
    const char *start = c;
    while (*c != '\0' && *c != ',' && *c != ']' && *c != '}') {
        if (*c == ':' &&
            (c[1] == ' ' || c[1] == ',' || c[1] == '}' || c[1] == ']' || c[1] == '\0')) {
            if (!in_map_key)
                return yfail(p, line,
                             "\"key: value\" pairs inside a flow sequence are not "
                             "supported");
            break;
        }
        c++;
    }
    char *text = sw_xstrndup(start, (size_t)(c - start));
    rtrim(text);
    *cur = c;
    cJSON *item = yplain(text);
    free(text);
    return item;
}

static cJSON *yflow_scalar(struct yparser *p, int line, const char **cur, bool in_map_key)
{
    if (**cur == '"' || **cur == '\'')
        return yquoted(p, line, cur);
    char ch = **cur;
    if (ch == '&' || ch == '*' || ch == '!' || ch == '|' || ch == '>' || ch == '@' || ch == '`')
        return yfail(p, line,
                     "'%c' (anchors, aliases, tags, block scalars) is not supported "
                     "in a flow collection",
                     ch);
    return yflow_plain(p, line, cur, in_map_key);
}

static cJSON *yflow(struct yparser *p, int line, const char **cur)
{
    if (++p->depth > YAML_MAX_DEPTH) {
        p->depth--;
        return yfail(p, line, "nesting deeper than %d levels", YAML_MAX_DEPTH);
    }
    char open = **cur;
    char close = open == '[' ? ']' : '}';
    cJSON *coll = open == '[' ? cJSON_CreateArray() : cJSON_CreateObject();
    (*cur)++;
    for (;;) {
        skip_blanks(cur);
        if (**cur == close) {
            (*cur)++;
            break;
        }
        if (**cur == '\0') {
            cJSON_Delete(coll);
            p->depth--;
            return yfail(p, line, "unclosed '%c' (flow collections must end on their line)", open);
        }
        if (open == '[') {
            cJSON *item = (**cur == '[' || **cur == '{') ? yflow(p, line, cur)
                                                         : yflow_scalar(p, line, cur, false);
            if (item == NULL) {
                cJSON_Delete(coll);
                p->depth--;
                return NULL;
            }
            cJSON_AddItemToArray(coll, item);
        } else {
            cJSON *key = yflow_scalar(p, line, cur, true);
            if (key == NULL) {
                cJSON_Delete(coll);
                p->depth--;
                return NULL;
            }
            char keytext[256];
            if (cJSON_IsString(key))
                snprintf(keytext, sizeof(keytext), "%s", key->valuestring);
            else {
                char *printed = cJSON_PrintUnformatted(key);
                snprintf(keytext, sizeof(keytext), "%s", printed ? printed : "");
                cJSON_free(printed);
            }
            cJSON_Delete(key);
            skip_blanks(cur);
            cJSON *value = NULL;
            if (**cur == ':') {
                (*cur)++;
                skip_blanks(cur);
                if (**cur == ',' || **cur == '}')
                    value = cJSON_CreateNull();
                else if (**cur == '[' || **cur == '{')
                    value = yflow(p, line, cur);
                else
                    value = yflow_scalar(p, line, cur, false);
            } else {
                value = cJSON_CreateNull();
            }
            if (value == NULL) {
                cJSON_Delete(coll);
                p->depth--;
                return NULL;
            }
            if (cJSON_GetObjectItemCaseSensitive(coll, keytext) != NULL) {
                cJSON_Delete(value);
                cJSON_Delete(coll);
                p->depth--;
                return yfail(p, line, "duplicate key \"%s\"", keytext);
            }
            cJSON_AddItemToObject(coll, keytext, value);
        }
        skip_blanks(cur);
        if (**cur == ',') {
            (*cur)++;
        } else if (**cur == '\0') {
            cJSON_Delete(coll);
            p->depth--;
            return yfail(p, line, "unclosed '%c' (flow collections must end on their line)", open);
        } else if (**cur != close) {
            cJSON_Delete(coll);
            p->depth--;
            return yfail(p, line, "expected ',' or '%c' in a flow collection", close);
        }
    }
    p->depth--;
    return coll;
}

/* The value written after "key: " or "- " on one line. */
static cJSON *yinline(struct yparser *p, int line, const char *text)
{
    const char *cur = text;
    skip_blanks(&cur);
    cJSON *item;
    char ch = *cur;
    if (ch == '[' || ch == '{') {
        item = yflow(p, line, &cur);
    } else if (ch == '"' || ch == '\'') {
        item = yquoted(p, line, &cur);
    } else if (ch == '&' || ch == '*' || ch == '!' || ch == '%' || ch == '@' || ch == '`') {
        return yfail(p, line, "'%c' (anchors, aliases, tags, directives) is not supported", ch);
    } else if (ch == '?' && (cur[1] == ' ' || cur[1] == '\0')) {
        return yfail(p, line, "complex keys (\"? key\") are not supported");
    } else {
        return yplain(cur);
    }
    if (item == NULL)
        return NULL;
    skip_blanks(&cur);
    if (*cur != '\0') {
        cJSON_Delete(item);
        return yfail(p, line, "unexpected text after a value: \"%.40s\"", cur);
    }
    return item;
}

/* A | or > block scalar whose header is on line `at` (indent `parent`). */
static cJSON *yblock_scalar(struct yparser *p, int parent, const char *header, int line)
{
    bool folded = header[0] == '>';
    char chomp = 'c';
    for (const char *h = header + 1; *h != '\0'; h++) {
        if ((*h == '-' || *h == '+') && chomp == 'c')
            chomp = *h;
        else if (*h == ' ')
            continue;
        else
            return yfail(p, line, "unsupported block scalar header \"%s\"", header);
    }
    /* Content lines: blank, or indented deeper than the parent; the first non-blank one
     * fixes the content indent. */
    int content_indent = -1;
    size_t end = p->pos;
    while (end < p->count) {
        const struct yline *l = &p->lines[end];
        bool blank = true;
        for (size_t i = 0; i < l->raw_len; i++)
            if (l->raw[i] != ' ' && l->raw[i] != '\t')
                blank = false;
        if (!blank) {
            if (l->indent <= parent)
                break;
            if (content_indent < 0)
                content_indent = l->indent;
            else if (l->indent < content_indent)
                break;
        }
        end++;
    }
    struct strbuf b = {0};
    size_t last_content = p->pos;
    for (size_t i = p->pos; i < end; i++) {
        const struct yline *l = &p->lines[i];
        bool blank = true;
        for (size_t k = 0; k < l->raw_len; k++)
            if (l->raw[k] != ' ' && l->raw[k] != '\t')
                blank = false;
        if (!blank)
            last_content = i + 1;
    }
    if (content_indent < 0)
        last_content = p->pos;
    bool prev_text = false;
    for (size_t i = p->pos; i < end; i++) {
        const struct yline *l = &p->lines[i];
        size_t skip = content_indent > 0 ? (size_t)content_indent : 0;
        const char *s = l->raw_len > skip ? l->raw + skip : "";
        size_t n = l->raw_len > skip ? l->raw_len - skip : 0;
        bool blank = n == 0;
        if (i >= last_content) {
            if (chomp == '+')
                sb_append(&b, "\n", 1);
            continue;
        }
        if (folded) {
            bool more_indented = n > 0 && (s[0] == ' ' || s[0] == '\t');
            if (blank) {
                sb_append(&b, "\n", 1);
                prev_text = false;
            } else {
                if (prev_text && !more_indented)
                    sb_append(&b, " ", 1);
                else if (prev_text)
                    sb_append(&b, "\n", 1);
                sb_append(&b, s, n);
                prev_text = true;
            }
        } else {
            sb_append(&b, s, n);
            sb_append(&b, "\n", 1);
        }
    }
    if (folded && b.len > 0 && last_content > p->pos)
        sb_append(&b, "\n", 1);
    char *s = sb_take(&b);
    if (chomp == '-') {
        size_t n = strlen(s);
        while (n > 0 && s[n - 1] == '\n')
            s[--n] = '\0';
    } else if (chomp == 'c') {
        size_t n = strlen(s);
        while (n > 1 && s[n - 1] == '\n' && s[n - 2] == '\n')
            s[--n] = '\0';
    }
    p->pos = end;
    cJSON *item = cJSON_CreateString(s);
    free(s);
    return item;
}

static cJSON *ynode(struct yparser *p, int min_indent);
static cJSON *yseq(struct yparser *p, int indent);

static cJSON *ymap(struct yparser *p, int indent)
{
    if (++p->depth > YAML_MAX_DEPTH) {
        p->depth--;
        return yfail(p, p->lines[p->pos].number, "nesting deeper than %d levels", YAML_MAX_DEPTH);
    }
    cJSON *obj = cJSON_CreateObject();
    for (;;) {
        size_t i = ynext(p);
        if (i >= p->count)
            break;
        struct yline *l = &p->lines[i];
        if (l->indent < indent)
            break;
        p->pos = i;
        if (l->tab_indent) {
            cJSON_Delete(obj);
            p->depth--;
            return yfail(p, l->number, "tab in indentation (YAML indents with spaces)");
        }
        if (l->indent > indent) {
            cJSON_Delete(obj);
            p->depth--;
            return yfail(p, l->number, "unexpected indentation");
        }
        if (is_seq_item(l->text)) {
            cJSON_Delete(obj);
            p->depth--;
            return yfail(p, l->number, "a list item where a \"key: value\" was expected");
        }
        if (strcmp(l->text, "---") == 0 || strcmp(l->text, "...") == 0) {
            cJSON_Delete(obj);
            p->depth--;
            return yfail(p, l->number, "only one YAML document is supported");
        }
        long colon = find_colon(l->text);
        if (colon < 0) {
            cJSON_Delete(obj);
            p->depth--;
            return yfail(p, l->number, "expected \"key: value\", got \"%.40s\"", l->text);
        }
        char *keysrc = sw_xstrndup(l->text, (size_t)colon);
        rtrim(keysrc);
        char *key = NULL;
        if (keysrc[0] == '"' || keysrc[0] == '\'') {
            const char *cur = keysrc;
            cJSON *k = yquoted(p, l->number, &cur);
            if (k != NULL && *cur == '\0')
                key = sw_xstrdup(k->valuestring);
            else if (k != NULL)
                yfail(p, l->number, "unexpected text after a quoted key");
            cJSON_Delete(k);
        } else if (keysrc[0] == '?' || keysrc[0] == '[' || keysrc[0] == '{' || keysrc[0] == '&' ||
                   keysrc[0] == '*' || keysrc[0] == '!') {
            yfail(p, l->number, "complex keys, anchors and tags are not supported");
        } else if (keysrc[0] == '\0') {
            yfail(p, l->number, "empty key");
        } else {
            key = sw_xstrdup(keysrc);
        }
        free(keysrc);
        if (key == NULL) {
            cJSON_Delete(obj);
            p->depth--;
            return NULL;
        }
        if (cJSON_GetObjectItemCaseSensitive(obj, key) != NULL) {
            yfail(p, l->number, "duplicate key \"%s\"", key);
            free(key);
            cJSON_Delete(obj);
            p->depth--;
            return NULL;
        }
        const char *rest = l->text + colon + 1;
        while (*rest == ' ')
            rest++;
        int line = l->number;
        p->pos = i + 1;
        cJSON *value;
        if (*rest == '\0') {
            size_t n = ynext(p);
            if (n < p->count && p->lines[n].indent > indent)
                value = ynode(p, indent + 1);
            else if (n < p->count && p->lines[n].indent == indent && is_seq_item(p->lines[n].text))
                value = yseq(p, indent);
            else
                value = cJSON_CreateNull();
        } else if (*rest == '|' || *rest == '>') {
            value = yblock_scalar(p, indent, rest, line);
        } else {
            value = yinline(p, line, rest);
        }
        if (value == NULL) {
            free(key);
            cJSON_Delete(obj);
            p->depth--;
            return NULL;
        }
        cJSON_AddItemToObject(obj, key, value);
        free(key);
    }
    p->depth--;
    return obj;
}

static cJSON *yseq(struct yparser *p, int indent)
{
    if (++p->depth > YAML_MAX_DEPTH) {
        p->depth--;
        return yfail(p, p->lines[p->pos].number, "nesting deeper than %d levels", YAML_MAX_DEPTH);
    }
    cJSON *arr = cJSON_CreateArray();
    for (;;) {
        size_t i = ynext(p);
        if (i >= p->count)
            break;
        struct yline *l = &p->lines[i];
        if (l->indent < indent || (l->indent == indent && !is_seq_item(l->text)))
            break;
        p->pos = i;
        if (l->tab_indent) {
            cJSON_Delete(arr);
            p->depth--;
            return yfail(p, l->number, "tab in indentation (YAML indents with spaces)");
        }
        if (l->indent > indent) {
            cJSON_Delete(arr);
            p->depth--;
            return yfail(p, l->number, "unexpected indentation");
        }
        const char *rest = l->text + 1;
        while (*rest == ' ')
            rest++;
        int offset = (int)(rest - l->text);
        cJSON *value;
        if (*rest == '\0') {
            p->pos = i + 1;
            size_t n = ynext(p);
            if (n < p->count && p->lines[n].indent > indent)
                value = ynode(p, indent + 1);
            else
                value = cJSON_CreateNull();
        } else if (is_seq_item(rest) ||
                   (find_colon(rest) >= 0 && rest[0] != '[' && rest[0] != '{')) {
            /* "- key: v" or "- - x": the rest of the line opens a nested block whose
             * indent is the column where it starts; the line is re-read as that block. */
            bool nested_seq = is_seq_item(rest);
            char *moved = sw_xstrdup(rest);
            free(l->text); /* rest pointed into it */
            l->text = moved;
            l->indent = indent + offset;
            value = nested_seq ? yseq(p, l->indent) : ymap(p, l->indent);
        } else if (*rest == '|' || *rest == '>') {
            p->pos = i + 1;
            value = yblock_scalar(p, indent, rest, l->number);
        } else {
            p->pos = i + 1;
            value = yinline(p, l->number, rest);
        }
        if (value == NULL) {
            cJSON_Delete(arr);
            p->depth--;
            return NULL;
        }
        cJSON_AddItemToArray(arr, value);
    }
    p->depth--;
    return arr;
}

static cJSON *ynode(struct yparser *p, int min_indent)
{
    size_t i = ynext(p);
    if (i >= p->count || p->lines[i].indent < min_indent)
        return cJSON_CreateNull();
    p->pos = i;
    const struct yline *l = &p->lines[i];
    if (is_seq_item(l->text))
        return yseq(p, l->indent);
    if (find_colon(l->text) < 0) {
        /* A lone scalar as a block value ("key:\n  value"). */
        if (l->tab_indent)
            return yfail(p, l->number, "tab in indentation (YAML indents with spaces)");
        int line = l->number;
        int ind = l->indent;
        p->pos = i + 1;
        size_t n = ynext(p);
        if (n < p->count && p->lines[n].indent >= ind && p->lines[n].indent >= min_indent)
            return yfail(p, p->lines[n].number, "multi-line plain scalars are not supported");
        return yinline(p, line, l->text);
    }
    return ymap(p, l->indent);
}

cJSON *sw_market_yaml_parse(const char *text, size_t len, struct sw_error *err)
{
    struct yparser p = {.err = err};
    if (text == NULL) {
        sw_error_set(err, SW_EINVAL, "line 1: no text");
        return NULL;
    }
    ylines_split(&p, text, len);
    /* A leading "---" starts the (only) document. */
    size_t first = ynext(&p);
    if (first < p.count && strncmp(p.lines[first].text, "---", 3) == 0 &&
        (p.lines[first].text[3] == '\0' || p.lines[first].text[3] == ' ')) {
        if (p.lines[first].text[3] != '\0') {
            yfail(&p, p.lines[first].number, "content after \"---\" is not supported");
            ylines_free(&p);
            return NULL;
        }
        p.pos = first + 1;
    } else if (first < p.count && p.lines[first].text[0] == '%') {
        yfail(&p, p.lines[first].number, "YAML directives are not supported");
        ylines_free(&p);
        return NULL;
    }
    cJSON *root = ynode(&p, 0);
    if (root != NULL) {
        size_t rest = ynext(&p);
        if (rest < p.count && strcmp(p.lines[rest].text, "...") == 0) {
            p.pos = rest + 1; /* an explicit document end: only blank lines may follow */
            rest = ynext(&p);
        }
        if (rest < p.count) {
            const struct yline *l = &p.lines[rest];
            yfail(&p, l->number, "%s",
                  l->indent > 0 ? "unexpected indentation" : "unexpected content");
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (root == NULL && !p.failed)
        sw_error_set(err, SW_EINVAL, "line 1: could not parse");
    ylines_free(&p);
    return root;
}

/* ---- SDL ---------------------------------------------------------------------------------- */

/* One placement that the deployment section uses: one group (gseq), one order (oseq 1). */
struct sdl_group {
    char *name;
    cJSON *attributes; /* object: key → string value */
    cJSON *any_of;     /* array of auditor addresses (signedBy.anyOf) */
    cJSON *all_of;     /* signedBy.allOf */
    money_t max_price; /* per block for the whole group: Σ pricing amount × count */
    int64_t units;     /* replicas in the group */
    int64_t gpu_units;
    cJSON *gpu_models; /* "vendor" or "vendor/model" strings */
    cJSON *services;   /* [{"name", "count", "global", "accept"}] */
    cJSON *offer;      /* resources_offer, as bids carry it */
};

struct sdl {
    struct sdl_group *groups;
    size_t group_count;
    cJSON *env; /* every service's env, KEY → value (first wins) */
    char *manifest;
};

static void sdl_free(struct sdl *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->group_count; i++) {
        struct sdl_group *g = &s->groups[i];
        free(g->name);
        cJSON_Delete(g->attributes);
        cJSON_Delete(g->any_of);
        cJSON_Delete(g->all_of);
        cJSON_Delete(g->gpu_models);
        cJSON_Delete(g->services);
        cJSON_Delete(g->offer);
    }
    free(s->groups);
    cJSON_Delete(s->env);
    free(s->manifest);
    free(s);
}

static int sdl_fail(struct sw_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int sdl_fail(struct sw_error *err, const char *fmt, ...)
{
    char msg[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return sw_error_set(err, SW_EINVAL, "sdl: %s", msg);
}

static const char *type_name(const cJSON *item)
{
    return sw_json_type_name(item);
}

/* Service names become hostnames: lowercase letters, digits and '-', a letter first. */
static bool valid_service_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !islower((unsigned char)s[0]) || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

static bool parse_cpu_millis(const cJSON *v, int64_t *out)
{
    double cores;
    if (cJSON_IsNumber(v)) {
        cores = v->valuedouble;
    } else if (cJSON_IsString(v) && v->valuestring[0] != '\0') {
        const char *s = v->valuestring;
        size_t n = strlen(s);
        char *end = NULL;
        if (s[n - 1] == 'm') {
            errno = 0;
            double millis = strtod(s, &end);
            if (end != s + n - 1 || errno != 0 || !isdigit((unsigned char)s[0]))
                return false;
            cores = millis / 1000.0;
        } else {
            cores = strtod(s, &end);
            if (*end != '\0' || !(isdigit((unsigned char)s[0]) || s[0] == '.'))
                return false;
        }
    } else {
        return false;
    }
    if (!isfinite(cores) || cores <= 0 || cores > 1024)
        return false;
    int64_t millis = llround(cores * 1000.0);
    if (millis < 1)
        return false;
    *out = millis;
    return true;
}

/* "512Mi", "1Gi", "5G", "1.5Gi", "1024" (bytes). */
static bool parse_quantity(const cJSON *v, int64_t *out)
{
    double bytes;
    if (cJSON_IsNumber(v)) {
        bytes = v->valuedouble;
    } else if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        if (!isdigit((unsigned char)s[0]) && s[0] != '.')
            return false;
        char *end = NULL;
        double value = strtod(s, &end);
        if (end == s)
            return false;
        /* strtod would accept an exponent ("1e3"): quantities are plain decimals. */
        for (const char *c = s; c < end; c++)
            if (!isdigit((unsigned char)*c) && *c != '.')
                return false;
        static const struct {
            const char *suffix;
            double mult;
        } units[] = {
            {"", 1},
            {"k", 1e3},
            {"ki", 1024.0},
            {"m", 1e6},
            {"mi", 1048576.0},
            {"g", 1e9},
            {"gi", 1073741824.0},
            {"t", 1e12},
            {"ti", 1099511627776.0},
            {"p", 1e15},
            {"pi", 1125899906842624.0},
            {"e", 1e18},
            {"ei", 1152921504606846976.0},
        };
        char suffix[8];
        size_t n = strlen(end);
        if (n >= sizeof(suffix))
            return false;
        for (size_t i = 0; i <= n; i++)
            suffix[i] = (char)tolower((unsigned char)end[i]);
        if (n > 0 && suffix[n - 1] == 'b')
            suffix[--n] = '\0';
        bool found = false;
        for (size_t i = 0; i < SW_ARRAY_LEN(units); i++) {
            if (strcmp(suffix, units[i].suffix) == 0) {
                bytes = value * units[i].mult;
                found = true;
                break;
            }
        }
        if (!found)
            return false;
    } else {
        return false;
    }
    if (!isfinite(bytes) || bytes < 0 || bytes > 4.0e18)
        return false;
    *out = (int64_t)llround(bytes);
    return true;
}

static bool parse_amount_micro(const cJSON *v, money_t *out)
{
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d) || d < 0 || d > MAX_PRICE_UACT)
            return false;
        *out = llround(d * (double)MICRO_PER_UACT);
        return true;
    }
    if (cJSON_IsString(v)) {
        money_t m;
        if (!parse_decimal_micro(v->valuestring, &m) || m > (money_t)(MAX_PRICE_UACT * 1e6))
            return false;
        *out = m;
        return true;
    }
    return false;
}

static cJSON *val_obj(const char *val)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "val", val);
    return o;
}

static cJSON *val_obj_i64(int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return val_obj(buf);
}

/* An optional array of strings at obj[key] (a copy, or NULL when absent). */
static int string_list(const cJSON *obj, const char *key, const char *path, cJSON **out,
                       struct sw_error *err)
{
    *out = NULL;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL || cJSON_IsNull(item))
        return 0;
    if (!cJSON_IsArray(item))
        return sdl_fail(err, "%s.%s: expected a list of strings, got %s", path, key,
                        type_name(item));
    cJSON *copy = cJSON_CreateArray();
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, item)
    {
        char num[32];
        if (cJSON_IsString(e)) {
            cJSON_AddItemToArray(copy, cJSON_CreateString(e->valuestring));
        } else if (cJSON_IsNumber(e)) {
            /* YAML types "8080" as a number; commands and args are strings. */
            snprintf(num, sizeof(num), "%.15g", e->valuedouble);
            cJSON_AddItemToArray(copy, cJSON_CreateString(num));
        } else {
            cJSON_Delete(copy);
            return sdl_fail(err, "%s.%s[%d]: expected a string, got %s", path, key, i,
                            type_name(e));
        }
        i++;
    }
    *out = copy;
    return 0;
}

/* profiles.compute.<name>.resources → the manifest and bid shapes of those resources. */
struct sdl_resources {
    int64_t cpu_millis;
    int64_t memory_bytes;
    cJSON *storage; /* [{"name", "bytes"}] */
    int64_t gpu_units;
    cJSON *gpu_models;
};

static void resources_clear(struct sdl_resources *r)
{
    cJSON_Delete(r->storage);
    cJSON_Delete(r->gpu_models);
    memset(r, 0, sizeof(*r));
}

static int parse_resources(const cJSON *profile, const char *pname, struct sdl_resources *r,
                           struct sw_error *err)
{
    memset(r, 0, sizeof(*r));
    if (!cJSON_IsObject(profile))
        return sdl_fail(err, "profiles.compute.%s: expected a mapping, got %s", pname,
                        type_name(profile));
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(profile, "resources");
    if (!cJSON_IsObject(res))
        return sdl_fail(err, "profiles.compute.%s.resources: expected a mapping, got %s", pname,
                        type_name(res));
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(res, "cpu");
    const cJSON *units =
        cJSON_IsObject(cpu) ? cJSON_GetObjectItemCaseSensitive(cpu, "units") : NULL;
    if (!parse_cpu_millis(units, &r->cpu_millis))
        return sdl_fail(err,
                        "profiles.compute.%s.resources.cpu.units: expected a CPU count "
                        "> 0 (0.5, \"500m\", 2)",
                        pname);
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(res, "memory");
    const cJSON *size = cJSON_IsObject(mem) ? cJSON_GetObjectItemCaseSensitive(mem, "size") : NULL;
    if (!parse_quantity(size, &r->memory_bytes) || r->memory_bytes == 0)
        return sdl_fail(err,
                        "profiles.compute.%s.resources.memory.size: expected a size "
                        "(\"512Mi\", \"1Gi\")",
                        pname);
    const cJSON *storage = cJSON_GetObjectItemCaseSensitive(res, "storage");
    if (!cJSON_IsObject(storage) && !cJSON_IsArray(storage))
        return sdl_fail(err,
                        "profiles.compute.%s.resources.storage: expected a mapping with "
                        "size (or a list of them), got %s",
                        pname, type_name(storage));
    r->storage = cJSON_CreateArray();
    /* One volume as a mapping, or a list of them. */
    const cJSON *vol = cJSON_IsObject(storage) ? storage : storage->child;
    for (int index = 0; vol != NULL; index++) {
        int64_t bytes;
        const cJSON *vsize =
            cJSON_IsObject(vol) ? cJSON_GetObjectItemCaseSensitive(vol, "size") : NULL;
        if (!parse_quantity(vsize, &bytes)) {
            resources_clear(r);
            return sdl_fail(err,
                            "profiles.compute.%s.resources.storage[%d].size: expected a "
                            "size (\"1Gi\")",
                            pname, index);
        }
        const cJSON *vname = cJSON_GetObjectItemCaseSensitive(vol, "name");
        cJSON *entry = cJSON_CreateObject();
        cJSON_AddStringToObject(entry, "name",
                                cJSON_IsString(vname) ? vname->valuestring
                                : index == 0          ? "default"
                                                      : "data");
        cJSON_AddNumberToObject(entry, "bytes", (double)bytes);
        cJSON_AddItemToArray(r->storage, entry);
        vol = cJSON_IsObject(storage) ? NULL : vol->next;
    }
    r->gpu_models = cJSON_CreateArray();
    const cJSON *gpu = cJSON_GetObjectItemCaseSensitive(res, "gpu");
    if (gpu != NULL && !cJSON_IsNull(gpu)) {
        const cJSON *gunits =
            cJSON_IsObject(gpu) ? cJSON_GetObjectItemCaseSensitive(gpu, "units") : NULL;
        if (!cJSON_IsNumber(gunits) || gunits->valuedouble < 0 || gunits->valuedouble > 64 ||
            gunits->valuedouble != floor(gunits->valuedouble)) {
            resources_clear(r);
            return sdl_fail(err,
                            "profiles.compute.%s.resources.gpu.units: expected an integer "
                            "from 0 to 64",
                            pname);
        }
        r->gpu_units = (int64_t)gunits->valuedouble;
        const cJSON *gattrs = cJSON_GetObjectItemCaseSensitive(gpu, "attributes");
        const cJSON *vendors =
            cJSON_IsObject(gattrs) ? cJSON_GetObjectItemCaseSensitive(gattrs, "vendor") : NULL;
        const cJSON *vendor;
        cJSON_ArrayForEach(vendor, (cJSON_IsObject(vendors) ? vendors : NULL))
        {
            const cJSON *model;
            bool any_model = false;
            cJSON_ArrayForEach(model, (cJSON_IsArray(vendor) ? vendor : NULL))
            {
                const cJSON *mname = cJSON_GetObjectItemCaseSensitive(model, "model");
                if (cJSON_IsString(mname)) {
                    char *text = sw_xasprintf("%s/%s", vendor->string, mname->valuestring);
                    cJSON_AddItemToArray(r->gpu_models, cJSON_CreateString(text));
                    free(text);
                    any_model = true;
                }
            }
            if (!any_model)
                cJSON_AddItemToArray(r->gpu_models, cJSON_CreateString(vendor->string));
        }
        if (r->gpu_units > 0 && cJSON_GetArraySize(r->gpu_models) == 0) {
            resources_clear(r);
            return sdl_fail(err,
                            "profiles.compute.%s.resources.gpu.attributes.vendor: GPUs "
                            "need a vendor (e.g. nvidia)",
                            pname);
        }
    }
    return 0;
}

static cJSON *resources_manifest_json(const struct sdl_resources *r, int id, bool offer)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", id);
    cJSON *cpu = cJSON_AddObjectToObject(o, "cpu");
    cJSON_AddItemToObject(cpu, "units", val_obj_i64(r->cpu_millis));
    if (offer)
        cJSON_AddArrayToObject(cpu, "attributes");
    cJSON *mem = cJSON_AddObjectToObject(o, "memory");
    cJSON_AddItemToObject(mem, offer ? "quantity" : "size", val_obj_i64(r->memory_bytes));
    if (offer)
        cJSON_AddArrayToObject(mem, "attributes");
    cJSON *storage = cJSON_AddArrayToObject(o, "storage");
    const cJSON *vol;
    cJSON_ArrayForEach(vol, r->storage)
    {
        cJSON *v = cJSON_CreateObject();
        cJSON_AddStringToObject(v, "name",
                                cJSON_GetObjectItemCaseSensitive(vol, "name")->valuestring);
        cJSON_AddItemToObject(
            v, offer ? "quantity" : "size",
            val_obj_i64((int64_t)cJSON_GetObjectItemCaseSensitive(vol, "bytes")->valuedouble));
        if (offer)
            cJSON_AddArrayToObject(v, "attributes");
        cJSON_AddItemToArray(storage, v);
    }
    cJSON *gpu = cJSON_AddObjectToObject(o, "gpu");
    cJSON_AddItemToObject(gpu, "units", val_obj_i64(r->gpu_units));
    if (offer)
        cJSON_AddArrayToObject(gpu, "attributes");
    if (offer)
        cJSON_AddArrayToObject(o, "endpoints");
    else
        cJSON_AddNullToObject(o, "endpoints");
    return o;
}

/* services.<name>.expose → manifest entries; reports whether the service is reachable
 * through the provider's HTTP ingress (a global expose as port 80) and its accept hosts. */
static int parse_expose(const cJSON *svc, const char *sname, cJSON **manifest_out, bool *ingress,
                        cJSON *accept_out, struct sw_error *err)
{
    *manifest_out = NULL;
    *ingress = false;
    const cJSON *expose = cJSON_GetObjectItemCaseSensitive(svc, "expose");
    if (expose == NULL || cJSON_IsNull(expose))
        return 0;
    if (!cJSON_IsArray(expose))
        return sdl_fail(err, "services.%s.expose: expected a list, got %s", sname,
                        type_name(expose));
    cJSON *out = cJSON_CreateArray();
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, expose)
    {
        const cJSON *port = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "port") : NULL;
        if (!cJSON_IsNumber(port) || port->valuedouble < 1 || port->valuedouble > 65535 ||
            port->valuedouble != floor(port->valuedouble)) {
            cJSON_Delete(out);
            return sdl_fail(err, "services.%s.expose[%d].port: expected a port number", sname, i);
        }
        const cJSON *as = cJSON_GetObjectItemCaseSensitive(e, "as");
        if (as != NULL && (!cJSON_IsNumber(as) || as->valuedouble < 1 || as->valuedouble > 65535 ||
                           as->valuedouble != floor(as->valuedouble))) {
            cJSON_Delete(out);
            return sdl_fail(err, "services.%s.expose[%d].as: expected a port number", sname, i);
        }
        const cJSON *proto = cJSON_GetObjectItemCaseSensitive(e, "proto");
        if (proto != NULL &&
            (!cJSON_IsString(proto) || (strcasecmp(proto->valuestring, "tcp") != 0 &&
                                        strcasecmp(proto->valuestring, "udp") != 0 &&
                                        strcasecmp(proto->valuestring, "http") != 0))) {
            cJSON_Delete(out);
            return sdl_fail(err, "services.%s.expose[%d].proto: expected tcp, udp or http", sname,
                            i);
        }
        bool global = false;
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(e, "to");
        if (to != NULL && !cJSON_IsNull(to) && !cJSON_IsArray(to)) {
            cJSON_Delete(out);
            return sdl_fail(err, "services.%s.expose[%d].to: expected a list", sname, i);
        }
        const cJSON *dest;
        cJSON_ArrayForEach(dest, (cJSON_IsArray(to) ? to : NULL))
        {
            const cJSON *g = cJSON_GetObjectItemCaseSensitive(dest, "global");
            if (!cJSON_IsObject(dest) || (g != NULL && !cJSON_IsBool(g))) {
                cJSON_Delete(out);
                return sdl_fail(err,
                                "services.%s.expose[%d].to: expected entries like "
                                "{global: true} or {service: name}",
                                sname, i);
            }
            if (cJSON_IsTrue(g))
                global = true;
        }
        cJSON *accept = NULL;
        if (string_list(e, "accept", "services.<svc>.expose[]", &accept, err) < 0) {
            cJSON_Delete(out);
            return SW_EINVAL;
        }
        int external = as != NULL ? (int)as->valuedouble : (int)port->valuedouble;
        if (global && external == 80) {
            *ingress = true;
            const cJSON *host;
            cJSON_ArrayForEach(host, accept)
                cJSON_AddItemToArray(accept_out, cJSON_CreateString(host->valuestring));
        }
        cJSON *m = cJSON_CreateObject();
        cJSON_AddNumberToObject(m, "port", port->valuedouble);
        cJSON_AddNumberToObject(m, "externalPort", external);
        cJSON_AddStringToObject(
            m, "proto",
            proto != NULL && strcasecmp(proto->valuestring, "udp") == 0 ? "UDP" : "TCP");
        cJSON_AddStringToObject(m, "service", "");
        cJSON_AddBoolToObject(m, "global", global);
        if (accept != NULL)
            cJSON_AddItemToObject(m, "hosts", accept);
        else
            cJSON_AddNullToObject(m, "hosts");
        cJSON_AddItemToArray(out, m);
        i++;
    }
    *manifest_out = out;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Validates the parsed document and derives groups, prices and the manifest. */
static struct sdl *sdl_build(const cJSON *root, struct sw_error *err)
{
    if (!cJSON_IsObject(root)) {
        sdl_fail(err, "expected a YAML mapping at the top, got %s", type_name(root));
        return NULL;
    }
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    bool version_ok =
        (cJSON_IsString(version) &&
         (strcmp(version->valuestring, "2.0") == 0 || strcmp(version->valuestring, "2.1") == 0)) ||
        (cJSON_IsNumber(version) && (version->valuedouble == 2.0 || version->valuedouble == 2.1));
    if (!version_ok) {
        sdl_fail(err, "version: expected \"2.0\" or \"2.1\"");
        return NULL;
    }
    const cJSON *services = cJSON_GetObjectItemCaseSensitive(root, "services");
    const cJSON *profiles = cJSON_GetObjectItemCaseSensitive(root, "profiles");
    const cJSON *deployment = cJSON_GetObjectItemCaseSensitive(root, "deployment");
    if (!cJSON_IsObject(services) || services->child == NULL) {
        sdl_fail(err, "services: expected a non-empty mapping of services");
        return NULL;
    }
    if (!cJSON_IsObject(profiles)) {
        sdl_fail(err, "profiles: expected a mapping with compute and placement");
        return NULL;
    }
    const cJSON *compute = cJSON_GetObjectItemCaseSensitive(profiles, "compute");
    const cJSON *placement = cJSON_GetObjectItemCaseSensitive(profiles, "placement");
    if (!cJSON_IsObject(compute) || compute->child == NULL) {
        sdl_fail(err, "profiles.compute: expected a non-empty mapping of compute profiles");
        return NULL;
    }
    if (!cJSON_IsObject(placement) || placement->child == NULL) {
        sdl_fail(err, "profiles.placement: expected a non-empty mapping of placements");
        return NULL;
    }
    if (!cJSON_IsObject(deployment) || deployment->child == NULL) {
        sdl_fail(err, "deployment: expected a non-empty mapping of service → placement");
        return NULL;
    }

    const cJSON *svc;
    cJSON_ArrayForEach(svc, services)
    {
        if (!valid_service_name(svc->string)) {
            sdl_fail(err,
                     "services.%s: a service name is lowercase letters, digits and '-' "
                     "(a letter first, at most 63)",
                     svc->string);
            return NULL;
        }
        const cJSON *image =
            cJSON_IsObject(svc) ? cJSON_GetObjectItemCaseSensitive(svc, "image") : NULL;
        if (!cJSON_IsString(image) || image->valuestring[0] == '\0') {
            sdl_fail(err, "services.%s.image: expected a non-empty string", svc->string);
            return NULL;
        }
        if (cJSON_GetObjectItemCaseSensitive(deployment, svc->string) == NULL) {
            sdl_fail(err, "services.%s: not deployed anywhere (add it under deployment)",
                     svc->string);
            return NULL;
        }
    }
    const cJSON *prof;
    cJSON_ArrayForEach(prof, compute)
    {
        if (!valid_name(prof->string)) {
            sdl_fail(err, "profiles.compute.%s: invalid profile name", prof->string);
            return NULL;
        }
    }
    const cJSON *pl;
    cJSON_ArrayForEach(pl, placement)
    {
        if (!valid_name(pl->string)) {
            sdl_fail(err, "profiles.placement.%s: invalid placement name", pl->string);
            return NULL;
        }
        if (!cJSON_IsObject(pl)) {
            sdl_fail(err, "profiles.placement.%s: expected a mapping, got %s", pl->string,
                     type_name(pl));
            return NULL;
        }
        const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(pl, "attributes");
        if (attrs != NULL && !cJSON_IsNull(attrs) && !cJSON_IsObject(attrs)) {
            sdl_fail(err, "profiles.placement.%s.attributes: expected a mapping, got %s",
                     pl->string, type_name(attrs));
            return NULL;
        }
        const cJSON *a;
        cJSON_ArrayForEach(a, (cJSON_IsObject(attrs) ? attrs : NULL))
        {
            if (!cJSON_IsString(a) && !cJSON_IsNumber(a) && !cJSON_IsBool(a)) {
                sdl_fail(err, "profiles.placement.%s.attributes.%s: expected a scalar", pl->string,
                         a->string);
                return NULL;
            }
        }
        const cJSON *signed_by = cJSON_GetObjectItemCaseSensitive(pl, "signedBy");
        if (signed_by != NULL && !cJSON_IsNull(signed_by) && !cJSON_IsObject(signed_by)) {
            sdl_fail(err, "profiles.placement.%s.signedBy: expected a mapping with anyOf/allOf",
                     pl->string);
            return NULL;
        }
        const cJSON *pricing = cJSON_GetObjectItemCaseSensitive(pl, "pricing");
        if (!cJSON_IsObject(pricing) || pricing->child == NULL) {
            sdl_fail(err,
                     "profiles.placement.%s.pricing: expected a mapping of profile → "
                     "{denom, amount}",
                     pl->string);
            return NULL;
        }
        const cJSON *price;
        cJSON_ArrayForEach(price, pricing)
        {
            const cJSON *denom = cJSON_GetObjectItemCaseSensitive(price, "denom");
            const cJSON *amount = cJSON_GetObjectItemCaseSensitive(price, "amount");
            money_t m;
            if (!cJSON_IsObject(price) || !cJSON_IsString(denom) ||
                strcmp(denom->valuestring, "uact") != 0) {
                sdl_fail(err, "profiles.placement.%s.pricing.%s.denom: expected \"uact\"",
                         pl->string, price->string);
                return NULL;
            }
            if (!parse_amount_micro(amount, &m)) {
                sdl_fail(err,
                         "profiles.placement.%s.pricing.%s.amount: expected a number of "
                         "uact per block from 0 to 1e9",
                         pl->string, price->string);
                return NULL;
            }
            if (cJSON_GetObjectItemCaseSensitive(compute, price->string) == NULL) {
                sdl_fail(err, "profiles.placement.%s.pricing.%s: no such compute profile",
                         pl->string, price->string);
                return NULL;
            }
        }
    }

    /* Placements used by the deployment section, in name order: gseq 1, 2, ... */
    char **used = NULL;
    size_t used_count = 0;
    const cJSON *dep_svc;
    cJSON_ArrayForEach(dep_svc, deployment)
    {
        if (cJSON_GetObjectItemCaseSensitive(services, dep_svc->string) == NULL) {
            free(used);
            sdl_fail(err, "deployment.%s: no such service", dep_svc->string);
            return NULL;
        }
        if (!cJSON_IsObject(dep_svc) || dep_svc->child == NULL) {
            free(used);
            sdl_fail(err, "deployment.%s: expected a mapping of placement → {profile, count}",
                     dep_svc->string);
            return NULL;
        }
        const cJSON *target;
        cJSON_ArrayForEach(target, dep_svc)
        {
            const cJSON *plc = cJSON_GetObjectItemCaseSensitive(placement, target->string);
            if (plc == NULL) {
                free(used);
                sdl_fail(err, "deployment.%s.%s: no such placement", dep_svc->string,
                         target->string);
                return NULL;
            }
            const cJSON *pname = cJSON_GetObjectItemCaseSensitive(target, "profile");
            const cJSON *count = cJSON_GetObjectItemCaseSensitive(target, "count");
            if (!cJSON_IsString(pname) ||
                cJSON_GetObjectItemCaseSensitive(compute, pname->valuestring) == NULL) {
                free(used);
                sdl_fail(err, "deployment.%s.%s.profile: expected the name of a compute profile",
                         dep_svc->string, target->string);
                return NULL;
            }
            const cJSON *pricing = cJSON_GetObjectItemCaseSensitive(plc, "pricing");
            if (cJSON_GetObjectItemCaseSensitive(pricing, pname->valuestring) == NULL) {
                free(used);
                sdl_fail(err,
                         "profiles.placement.%s.pricing.%s: missing (deployment.%s uses "
                         "that profile there)",
                         target->string, pname->valuestring, dep_svc->string);
                return NULL;
            }
            if (!cJSON_IsNumber(count) || count->valuedouble < 1 ||
                count->valuedouble > MAX_GROUP_UNITS ||
                count->valuedouble != floor(count->valuedouble)) {
                free(used);
                sdl_fail(err, "deployment.%s.%s.count: expected an integer from 1 to %d",
                         dep_svc->string, target->string, MAX_GROUP_UNITS);
                return NULL;
            }
            bool seen = false;
            for (size_t i = 0; i < used_count; i++)
                if (strcmp(used[i], target->string) == 0)
                    seen = true;
            if (!seen) {
                used = sw_xrealloc(used, (used_count + 1) * sizeof(char *));
                used[used_count++] = target->string;
            }
        }
    }
    qsort(used, used_count, sizeof(char *), compare_names);

    struct sdl *s = sw_xcalloc(1, sizeof(*s));
    s->groups = sw_xcalloc(used_count, sizeof(*s->groups));
    s->group_count = used_count;
    s->env = cJSON_CreateObject();
    cJSON *manifest = cJSON_CreateArray();
    int resource_id = 1;
    for (size_t gi = 0; gi < used_count; gi++) {
        struct sdl_group *g = &s->groups[gi];
        const cJSON *plc = cJSON_GetObjectItemCaseSensitive(placement, used[gi]);
        g->name = sw_xstrdup(used[gi]);
        g->attributes = cJSON_CreateObject();
        const cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(plc, "attributes"))
        {
            char num[32];
            const char *value = a->valuestring;
            if (cJSON_IsNumber(a)) {
                snprintf(num, sizeof(num), "%.15g", a->valuedouble);
                value = num;
            } else if (cJSON_IsBool(a)) {
                value = cJSON_IsTrue(a) ? "true" : "false";
            }
            cJSON_AddStringToObject(g->attributes, a->string, value);
        }
        const cJSON *signed_by = cJSON_GetObjectItemCaseSensitive(plc, "signedBy");
        if (string_list(signed_by, "anyOf", "profiles.placement.<p>.signedBy", &g->any_of, err) <
                0 ||
            string_list(signed_by, "allOf", "profiles.placement.<p>.signedBy", &g->all_of, err) < 0)
            goto fail;
        if (g->any_of == NULL)
            g->any_of = cJSON_CreateArray();
        if (g->all_of == NULL)
            g->all_of = cJSON_CreateArray();
        g->gpu_models = cJSON_CreateArray();
        g->services = cJSON_CreateArray();
        g->offer = cJSON_CreateArray();
        cJSON *mgroup = cJSON_CreateObject();
        cJSON_AddItemToArray(manifest, mgroup);
        cJSON_AddStringToObject(mgroup, "name", g->name);
        cJSON *msvcs = cJSON_AddArrayToObject(mgroup, "services");
        const cJSON *pricing = cJSON_GetObjectItemCaseSensitive(plc, "pricing");

        cJSON_ArrayForEach(dep_svc, deployment)
        {
            const cJSON *target = cJSON_GetObjectItemCaseSensitive(dep_svc, g->name);
            if (target == NULL)
                continue;
            const char *sname = dep_svc->string;
            const cJSON *sdef = cJSON_GetObjectItemCaseSensitive(services, sname);
            const char *pname = cJSON_GetObjectItemCaseSensitive(target, "profile")->valuestring;
            int64_t count = (int64_t)cJSON_GetObjectItemCaseSensitive(target, "count")->valuedouble;
            money_t unit_price = 0;
            parse_amount_micro(cJSON_GetObjectItemCaseSensitive(
                                   cJSON_GetObjectItemCaseSensitive(pricing, pname), "amount"),
                               &unit_price);
            struct sdl_resources r;
            if (parse_resources(cJSON_GetObjectItemCaseSensitive(compute, pname), pname, &r, err) <
                0)
                goto fail;
            g->units += count;
            if (g->units > MAX_GROUP_UNITS) {
                resources_clear(&r);
                sdl_fail(err, "deployment: placement %s has more than %d replicas", g->name,
                         MAX_GROUP_UNITS);
                goto fail;
            }
            g->max_price += unit_price * count;
            g->gpu_units += r.gpu_units * count;
            const cJSON *model;
            cJSON_ArrayForEach(model, r.gpu_models)
                cJSON_AddItemToArray(g->gpu_models, cJSON_CreateString(model->valuestring));

            cJSON *cmd = NULL, *args = NULL, *env = NULL;
            if (string_list(sdef, "command", "services", &cmd, err) < 0 ||
                string_list(sdef, "args", "services", &args, err) < 0 ||
                string_list(sdef, "env", "services", &env, err) < 0) {
                cJSON_Delete(cmd);
                cJSON_Delete(args);
                resources_clear(&r);
                goto fail;
            }
            const cJSON *kv;
            cJSON_ArrayForEach(kv, env)
            {
                const char *eq = strchr(kv->valuestring, '=');
                if (eq == NULL || eq == kv->valuestring) {
                    cJSON_Delete(cmd);
                    cJSON_Delete(args);
                    cJSON_Delete(env);
                    resources_clear(&r);
                    sdl_fail(err, "services.%s.env: expected KEY=value entries", sname);
                    goto fail;
                }
                char *key = sw_xstrndup(kv->valuestring, (size_t)(eq - kv->valuestring));
                if (cJSON_GetObjectItemCaseSensitive(s->env, key) == NULL)
                    cJSON_AddStringToObject(s->env, key, eq + 1);
                free(key);
            }
            cJSON *expose = NULL;
            bool ingress = false;
            cJSON *accept = cJSON_CreateArray();
            if (parse_expose(sdef, sname, &expose, &ingress, accept, err) < 0) {
                cJSON_Delete(cmd);
                cJSON_Delete(args);
                cJSON_Delete(env);
                cJSON_Delete(accept);
                resources_clear(&r);
                goto fail;
            }

            cJSON *ms = cJSON_CreateObject();
            cJSON_AddStringToObject(ms, "name", sname);
            cJSON_AddStringToObject(ms, "image",
                                    cJSON_GetObjectItemCaseSensitive(sdef, "image")->valuestring);
            cJSON_AddItemToObject(ms, "command", cmd != NULL ? cmd : cJSON_CreateNull());
            cJSON_AddItemToObject(ms, "args", args != NULL ? args : cJSON_CreateNull());
            cJSON_AddItemToObject(ms, "env", env != NULL ? env : cJSON_CreateNull());
            cJSON_AddItemToObject(ms, "resources", resources_manifest_json(&r, resource_id, false));
            cJSON_AddNumberToObject(ms, "count", (double)count);
            cJSON_AddItemToObject(ms, "expose", expose != NULL ? expose : cJSON_CreateNull());
            cJSON_AddNullToObject(ms, "params");
            cJSON_AddItemToArray(msvcs, ms);

            cJSON *offer = cJSON_CreateObject();
            cJSON_AddItemToObject(offer, "resources",
                                  resources_manifest_json(&r, resource_id, true));
            cJSON_AddNumberToObject(offer, "count", (double)count);
            cJSON_AddItemToArray(g->offer, offer);
            resource_id++;

            cJSON *info = cJSON_CreateObject();
            cJSON_AddStringToObject(info, "name", sname);
            cJSON_AddNumberToObject(info, "count", (double)count);
            cJSON_AddBoolToObject(info, "global", ingress);
            cJSON_AddItemToObject(info, "accept", accept);
            cJSON_AddItemToArray(g->services, info);
            resources_clear(&r);
        }
    }
    char *text = cJSON_PrintUnformatted(manifest);
    s->manifest = sw_xstrdup(text);
    cJSON_free(text);
    cJSON_Delete(manifest);
    free(used);
    return s;
fail:
    cJSON_Delete(manifest);
    free(used);
    sdl_free(s);
    return NULL;
}

static struct sdl *sdl_parse(const char *text, size_t len, struct sw_error *err)
{
    struct sw_error yerr = {0};
    cJSON *root = sw_market_yaml_parse(text, len, &yerr);
    if (root == NULL) {
        sw_error_set(err, SW_EINVAL, "sdl: invalid YAML: %s", yerr.msg);
        return NULL;
    }
    struct sdl *s = sdl_build(root, err);
    cJSON_Delete(root);
    return s;
}

cJSON *sw_market_sdl_describe(const char *text, size_t len, struct sw_error *err)
{
    struct sdl *s = sdl_parse(text, len, err);
    if (s == NULL)
        return NULL;
    cJSON *out = cJSON_CreateObject();
    cJSON *groups = cJSON_AddArrayToObject(out, "groups");
    for (size_t i = 0; i < s->group_count; i++) {
        const struct sdl_group *g = &s->groups[i];
        cJSON *o = cJSON_CreateObject();
        char price[48];
        money_text(g->max_price, price, sizeof(price));
        cJSON_AddNumberToObject(o, "gseq", (double)(i + 1));
        cJSON_AddStringToObject(o, "name", g->name);
        cJSON_AddItemToObject(o, "attributes", cJSON_Duplicate(g->attributes, true));
        cJSON *sb = cJSON_AddObjectToObject(o, "signed_by");
        cJSON_AddItemToObject(sb, "any_of", cJSON_Duplicate(g->any_of, true));
        cJSON_AddItemToObject(sb, "all_of", cJSON_Duplicate(g->all_of, true));
        cJSON_AddStringToObject(o, "max_price", price);
        cJSON_AddNumberToObject(o, "units", (double)g->units);
        cJSON_AddNumberToObject(o, "gpu_units", (double)g->gpu_units);
        cJSON_AddItemToObject(o, "services", cJSON_Duplicate(g->services, true));
        cJSON_AddItemToObject(o, "resources_offer", cJSON_Duplicate(g->offer, true));
        cJSON_AddItemToArray(groups, o);
    }
    cJSON_AddItemToObject(out, "env", cJSON_Duplicate(s->env, true));
    cJSON_AddStringToObject(out, "manifest", s->manifest);
    sdl_free(s);
    return out;
}

/* ---- providers ---------------------------------------------------------------------------- */

struct mprovider {
    char *owner;
    char *host_uri;
    char *host; /* ingress hostnames are <label>.ingress.<host> */
    char *region;
    cJSON *attributes; /* object: key → string; location-region always present */
    money_t price;     /* per block per replica */
    int64_t bid_delay_ms;
    int64_t ready_delay_ms;
    int64_t capacity; /* open bids + active leases it can hold */
    bool audited;
    cJSON *auditors; /* array of auditor addresses, or NULL: audited by anyone asked */
    double closures_per_hour;
    double uptime7d;
    bool online;
};

static void providers_free(struct mprovider *list, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(list[i].owner);
        free(list[i].host_uri);
        free(list[i].host);
        free(list[i].region);
        cJSON_Delete(list[i].attributes);
        cJSON_Delete(list[i].auditors);
    }
    free(list);
}

static int read_file(const char *path, size_t cap, char **out, size_t *len, struct sw_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return sw_error_set(err, SW_EIO, "%s: %s", path, strerror(errno));
    struct strbuf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > cap) {
            fclose(f);
            free(b.data);
            return sw_error_set(err, SW_ETOOBIG, "%s: larger than %zu bytes", path, cap);
        }
        sb_append(&b, chunk, n);
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        free(b.data);
        return sw_error_set(err, SW_EIO, "%s: read error", path);
    }
    *len = b.len;
    *out = sb_take(&b);
    return 0;
}

static int provider_fail(struct sw_error *err, const char *path, int index, const char *key,
                         const char *expected)
{
    return sw_error_set(err, SW_ECONFIG, "%s: providers[%d].%s: expected %s", path, index, key,
                        expected);
}

/* "https://provider.example.com:8443/x" → "provider.example.com". */
static char *host_of(const char *uri)
{
    const char *s = strstr(uri, "://");
    s = s != NULL ? s + 3 : uri;
    size_t n = strcspn(s, ":/?#");
    return sw_xstrndup(s, n);
}

static int provider_parse(struct mprovider *p, const cJSON *obj, const char *path, int index,
                          struct sw_error *err)
{
    if (!cJSON_IsObject(obj))
        return sw_error_set(err, SW_ECONFIG, "%s: providers[%d]: expected an object", path, index);
    const cJSON *owner = cJSON_GetObjectItemCaseSensitive(obj, "owner");
    if (!cJSON_IsString(owner) || owner->valuestring[0] == '\0' ||
        strpbrk(owner->valuestring, "/?#% \t\r\n") != NULL)
        return provider_fail(err, path, index, "owner",
                             "a non-empty address without '/', '?', "
                             "'#', '%' or blanks");
    p->owner = sw_xstrdup(owner->valuestring);
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(obj, "attributes");
    p->attributes = cJSON_CreateObject();
    if (attrs != NULL) {
        if (!cJSON_IsObject(attrs))
            return provider_fail(err, path, index, "attributes", "an object of strings");
        const cJSON *a;
        cJSON_ArrayForEach(a, attrs)
        {
            if (!cJSON_IsString(a))
                return provider_fail(err, path, index, "attributes", "an object of strings");
            cJSON_AddStringToObject(p->attributes, a->string, a->valuestring);
        }
    }
    const cJSON *region = cJSON_GetObjectItemCaseSensitive(obj, "region");
    const cJSON *attr_region = cJSON_GetObjectItemCaseSensitive(p->attributes, "location-region");
    if (region == NULL)
        region = attr_region;
    if (!cJSON_IsString(region) || region->valuestring[0] == '\0')
        return provider_fail(err, path, index, "region",
                             "a non-empty string (or attributes.location-region)");
    p->region = sw_xstrdup(region->valuestring);
    if (attr_region == NULL)
        cJSON_AddStringToObject(p->attributes, "location-region", p->region);

    const cJSON *uri = cJSON_GetObjectItemCaseSensitive(obj, "host_uri");
    if (uri != NULL && (!cJSON_IsString(uri) || uri->valuestring[0] == '\0'))
        return provider_fail(err, path, index, "host_uri", "a non-empty string");
    if (uri != NULL) {
        p->host_uri = sw_xstrdup(uri->valuestring);
        p->host = host_of(uri->valuestring);
    } else {
        p->host = sw_xasprintf("%s.provider.local", p->owner);
        p->host_uri = sw_xasprintf("https://%s:8443", p->host);
    }
    if (p->host[0] == '\0') {
        free(p->host);
        p->host = sw_xasprintf("%s.provider.local", p->owner);
    }

    const cJSON *price = cJSON_GetObjectItemCaseSensitive(obj, "price_uact_per_block");
    if (!cJSON_IsNumber(price) || !(price->valuedouble >= 0) || price->valuedouble > MAX_PRICE_UACT)
        return provider_fail(err, path, index, "price_uact_per_block", "a number from 0 to 1e9");
    p->price = llround(price->valuedouble * (double)MICRO_PER_UACT);

    static const struct {
        const char *key;
        int64_t fallback;
        size_t offset;
    } delays[] = {
        {"bid_delay", 1000, offsetof(struct mprovider, bid_delay_ms)},
        {"ready_delay", 10000, offsetof(struct mprovider, ready_delay_ms)},
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(delays); i++) {
        int64_t *slot = (int64_t *)((char *)p + delays[i].offset);
        *slot = delays[i].fallback;
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, delays[i].key);
        if (item != NULL && (sw_duration_from_json(item, slot) < 0 || *slot < 0))
            return provider_fail(err, path, index, delays[i].key,
                                 "a duration (\"2s\", \"500ms\", or seconds)");
    }
    const cJSON *capacity = cJSON_GetObjectItemCaseSensitive(obj, "capacity");
    p->capacity = 10;
    if (capacity != NULL) {
        if (!cJSON_IsNumber(capacity) || capacity->valuedouble < 0 || capacity->valuedouble > 1e9 ||
            capacity->valuedouble != floor(capacity->valuedouble))
            return provider_fail(err, path, index, "capacity", "an integer >= 0");
        p->capacity = (int64_t)capacity->valuedouble;
    }
    const cJSON *audited = cJSON_GetObjectItemCaseSensitive(obj, "audited");
    if (audited != NULL && !cJSON_IsBool(audited))
        return provider_fail(err, path, index, "audited", "a boolean");
    p->audited = cJSON_IsTrue(audited);
    const cJSON *auditors = cJSON_GetObjectItemCaseSensitive(obj, "auditors");
    if (auditors != NULL) {
        if (!cJSON_IsArray(auditors))
            return provider_fail(err, path, index, "auditors", "an array of addresses");
        const cJSON *a;
        cJSON_ArrayForEach(a, auditors)
        {
            if (!cJSON_IsString(a))
                return provider_fail(err, path, index, "auditors", "an array of addresses");
        }
        p->auditors = cJSON_Duplicate(auditors, true);
    }
    const cJSON *closures = cJSON_GetObjectItemCaseSensitive(obj, "closures_per_hour");
    if (closures != NULL &&
        (!cJSON_IsNumber(closures) || !(closures->valuedouble >= 0) || closures->valuedouble > 1e6))
        return provider_fail(err, path, index, "closures_per_hour", "a number >= 0");
    p->closures_per_hour = closures != NULL ? closures->valuedouble : 0;
    const cJSON *uptime = cJSON_GetObjectItemCaseSensitive(obj, "uptime7d");
    if (uptime != NULL &&
        (!cJSON_IsNumber(uptime) || !(uptime->valuedouble >= 0) || uptime->valuedouble > 1))
        return provider_fail(err, path, index, "uptime7d", "a number from 0 to 1");
    p->uptime7d =
        uptime != NULL ? uptime->valuedouble : fmax(0.0, 1.0 - fmin(1.0, p->closures_per_hour));
    const cJSON *online = cJSON_GetObjectItemCaseSensitive(obj, "online");
    if (online != NULL && !cJSON_IsBool(online))
        return provider_fail(err, path, index, "online", "a boolean");
    p->online = online == NULL || cJSON_IsTrue(online);
    return 0;
}

static int providers_load(const char *path, struct mprovider **out, size_t *count,
                          struct sw_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, 4u << 20, &text, &len, err);
    if (rc < 0)
        return rc;
    cJSON *root = sw_json_parse_relaxed(text, len, path, err);
    free(text);
    if (root == NULL)
        return SW_ECONFIG;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "providers");
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
        cJSON_Delete(root);
        return sw_error_set(err, SW_ECONFIG,
                            "%s: expected {\"providers\": [...]} with at least "
                            "one provider",
                            path);
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    struct mprovider *list = sw_xcalloc(n, sizeof(*list));
    const cJSON *item;
    int index = 0;
    rc = 0;
    cJSON_ArrayForEach(item, arr)
    {
        rc = provider_parse(&list[index], item, path, index, err);
        if (rc < 0)
            break;
        for (int j = 0; j < index; j++) {
            if (strcmp(list[j].owner, list[index].owner) == 0) {
                rc = sw_error_set(err, SW_ECONFIG,
                                  "%s: providers[%d].owner: \"%s\" already used "
                                  "by providers[%d]",
                                  path, index, list[index].owner, j);
                break;
            }
        }
        if (rc < 0)
            break;
        index++;
    }
    cJSON_Delete(root);
    if (rc < 0) {
        providers_free(list, n);
        return rc;
    }
    *out = list;
    *count = n;
    return 0;
}

/* ---- the server --------------------------------------------------------------------------- */

struct faults {
    int64_t latency_ms;
    int64_t latency_spike_ms;
    double latency_spike_rate;
    double rate_429;
    double rate_5xx;
    double rate_malformed;
    double rate_drop;
};

struct cached_stmt {
    const char *sql;
    sqlite3_stmt *stmt;
};

struct delayed;

struct market {
    uv_loop_t *loop;
    struct sw_clock *clock;     /* marketplace time (--speed) */
    struct sw_clock *net_clock; /* wall time, for injected latency */
    int64_t clock_offset;       /* keeps time monotonic across restarts */
    struct sw_http_server *http;
    sqlite3 *db;
    struct cached_stmt *stmts;
    size_t stmt_count;
    bool db_failed;
    char db_error[256];
    int64_t changes_at_begin; /* sqlite3_total_changes64 when the transaction began */
    int64_t persisted_now;    /* the last "last_now_ms" written */

    struct mprovider *providers;
    size_t provider_count;
    char *api_key;
    char *owner;
    uint64_t seed;
    uint64_t fault_rng;
    struct faults faults;

    int64_t block_ms;
    int64_t bid_ttl_ms;
    int64_t unleased_ms;
    int64_t genesis_ms;

    uint64_t wake_timer;
    int64_t wake_due;
    struct delayed *delayed;

    uv_signal_t sigint;
    uv_signal_t sigterm;
    bool stopping;
    double speed;
    char *state_path;

    struct {
        uint64_t requests;
        uint64_t injected_429;
        uint64_t injected_5xx;
        uint64_t injected_malformed;
        uint64_t injected_drop;
        uint64_t delayed;
    } stats;
};

static struct mprovider *provider_find(struct market *m, const char *owner)
{
    for (size_t i = 0; owner != NULL && i < m->provider_count; i++)
        if (strcmp(m->providers[i].owner, owner) == 0)
            return &m->providers[i];
    return NULL;
}

static int64_t market_now(struct market *m)
{
    return sw_clock_now(m->clock) + m->clock_offset;
}

static int64_t height_at(struct market *m, int64_t t)
{
    if (t < m->genesis_ms)
        return GENESIS_HEIGHT;
    return GENESIS_HEIGHT + (t - m->genesis_ms) / m->block_ms;
}

static int64_t time_of_height(struct market *m, int64_t h)
{
    return m->genesis_ms + (h - GENESIS_HEIGHT) * m->block_ms;
}

/* ---- SQLite --------------------------------------------------------------------------------- */

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS deployments("
    " dseq INTEGER PRIMARY KEY, state TEXT NOT NULL, hash TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, created_height INTEGER NOT NULL,"
    " closed_ms INTEGER, closed_height INTEGER, close_cause TEXT,"
    " sdl TEXT NOT NULL, manifest TEXT NOT NULL, env TEXT NOT NULL,"
    " escrow_state TEXT NOT NULL, funds INTEGER NOT NULL, transferred INTEGER NOT NULL,"
    " settled_height INTEGER NOT NULL, rate INTEGER NOT NULL DEFAULT 0, next_settle_ms INTEGER,"
    " deposit_first INTEGER NOT NULL, auto_top_up INTEGER NOT NULL DEFAULT 0,"
    " ever_leased INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS deployments_settle ON deployments(state, next_settle_ms);"
    "CREATE TABLE IF NOT EXISTS deposits(dseq INTEGER NOT NULL, height INTEGER NOT NULL,"
    " amount INTEGER NOT NULL, source TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS deposits_dseq ON deposits(dseq);"
    "CREATE TABLE IF NOT EXISTS dgroups(dseq INTEGER NOT NULL, gseq INTEGER NOT NULL,"
    " name TEXT NOT NULL, units INTEGER NOT NULL, max_price INTEGER NOT NULL,"
    " services TEXT NOT NULL, offer TEXT NOT NULL, PRIMARY KEY(dseq, gseq));"
    "CREATE TABLE IF NOT EXISTS bids(dseq INTEGER NOT NULL, gseq INTEGER NOT NULL,"
    " oseq INTEGER NOT NULL, provider TEXT NOT NULL, bseq INTEGER NOT NULL, state TEXT NOT NULL,"
    " price INTEGER NOT NULL, created_ms INTEGER NOT NULL, created_height INTEGER NOT NULL,"
    " closed_ms INTEGER, PRIMARY KEY(dseq, gseq, oseq, provider, bseq));"
    "CREATE INDEX IF NOT EXISTS bids_provider ON bids(provider, state);"
    "CREATE TABLE IF NOT EXISTS leases(dseq INTEGER NOT NULL, gseq INTEGER NOT NULL,"
    " oseq INTEGER NOT NULL, provider TEXT NOT NULL, bseq INTEGER NOT NULL, state TEXT NOT NULL,"
    " price INTEGER NOT NULL, created_ms INTEGER NOT NULL, created_height INTEGER NOT NULL,"
    " closed_ms INTEGER, closed_height INTEGER, reason TEXT, ready_ms INTEGER,"
    " PRIMARY KEY(dseq, gseq, oseq, provider, bseq));"
    "CREATE INDEX IF NOT EXISTS leases_provider ON leases(provider, state);"
    "CREATE TABLE IF NOT EXISTS timeline(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " due_ms INTEGER NOT NULL, kind TEXT NOT NULL, dseq INTEGER NOT NULL,"
    " gseq INTEGER NOT NULL DEFAULT 0, oseq INTEGER NOT NULL DEFAULT 0,"
    " provider TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS timeline_due ON timeline(due_ms, id);"
    "CREATE INDEX IF NOT EXISTS timeline_dseq ON timeline(dseq);";

static int db_fail(struct market *m, const char *what)
{
    if (!m->db_failed) {
        snprintf(m->db_error, sizeof(m->db_error), "%s: %s", what, sqlite3_errmsg(m->db));
        m->db_failed = true;
    }
    return -1;
}

/* Cached by the SQL text's address: every call site passes a string literal. */
static sqlite3_stmt *stmt_get(struct market *m, const char *sql)
{
    for (size_t i = 0; i < m->stmt_count; i++) {
        if (m->stmts[i].sql == sql) {
            sqlite3_reset(m->stmts[i].stmt);
            sqlite3_clear_bindings(m->stmts[i].stmt);
            return m->stmts[i].stmt;
        }
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(m->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        db_fail(m, "prepare");
        return NULL;
    }
    m->stmts = sw_xrealloc(m->stmts, (m->stmt_count + 1) * sizeof(*m->stmts));
    m->stmts[m->stmt_count].sql = sql;
    m->stmts[m->stmt_count].stmt = st;
    m->stmt_count++;
    return st;
}

/* Bind by a type string: 'i' int64_t, 't' text (NULL binds NULL), 'n' NULL. */
static sqlite3_stmt *q_bindv(struct market *m, const char *sql, const char *types, va_list ap)
{
    sqlite3_stmt *st = stmt_get(m, sql);
    if (st == NULL)
        return NULL;
    int idx = 1;
    for (const char *t = types; *t != '\0'; t++, idx++) {
        int rc = SQLITE_OK;
        if (*t == 'i') {
            rc = sqlite3_bind_int64(st, idx, va_arg(ap, int64_t));
        } else if (*t == 't') {
            const char *s = va_arg(ap, const char *);
            rc = s != NULL ? sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT)
                           : sqlite3_bind_null(st, idx);
        } else {
            rc = sqlite3_bind_null(st, idx);
        }
        if (rc != SQLITE_OK) {
            db_fail(m, "bind");
            return NULL;
        }
    }
    return st;
}

static sqlite3_stmt *q_bind(struct market *m, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = q_bindv(m, sql, types, ap);
    va_end(ap);
    return st;
}

/* 1: a row, 0: done, -1: error. */
static int q_step(struct market *m, sqlite3_stmt *st)
{
    if (st == NULL)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return db_fail(m, "step");
}

static int q_run(struct market *m, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = q_bindv(m, sql, types, ap);
    va_end(ap);
    int rc = q_step(m, st);
    if (st != NULL)
        sqlite3_reset(st);
    return rc < 0 ? -1 : 0;
}

/* The first column of the first row as an integer; *found says whether there was a row
 * with a non-NULL value. */
static int q_int(struct market *m, int64_t *out, bool *found, const char *sql, const char *types,
                 ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = q_bindv(m, sql, types, ap);
    va_end(ap);
    int rc = q_step(m, st);
    if (rc < 0)
        return -1;
    bool have = rc == 1 && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (have)
        *out = sqlite3_column_int64(st, 0);
    if (found != NULL)
        *found = have;
    sqlite3_reset(st);
    return 0;
}

static char *col_text(sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    return s != NULL ? sw_xstrdup((const char *)s) : NULL;
}

static int64_t col_int_or(sqlite3_stmt *st, int col, int64_t dflt)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? dflt : sqlite3_column_int64(st, col);
}

static int meta_get(struct market *m, const char *key, int64_t *out, bool *found)
{
    return q_int(m, out, found, "SELECT value FROM meta WHERE key=?", "t", key);
}

static int meta_set(struct market *m, const char *key, int64_t value)
{
    return q_run(m,
                 "INSERT INTO meta(key, value) VALUES(?, ?) "
                 "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                 "ti", key, value);
}

static int balance_get(struct market *m, money_t *out)
{
    bool found = false;
    *out = 0;
    return meta_get(m, "balance", out, &found);
}

static int balance_add(struct market *m, money_t delta)
{
    return q_run(m, "UPDATE meta SET value = value + ? WHERE key='balance'", "i", delta);
}

static int tx_begin(struct market *m)
{
    m->db_failed = false;
    m->db_error[0] = '\0';
    if (sqlite3_exec(m->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(m, "BEGIN");
    m->changes_at_begin = sqlite3_total_changes64(m->db);
    return 0;
}

static int tx_commit(struct market *m, int64_t now)
{
    /* The latest instant is persisted with every change (and at least once a second of
     * marketplace time), not on every read: reads then cost no write. */
    if ((sqlite3_total_changes64(m->db) != m->changes_at_begin || now - m->persisted_now >= 1000) &&
        meta_set(m, "last_now_ms", now) < 0)
        return -1;
    if (sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(m, "COMMIT");
    if (sqlite3_total_changes64(m->db) != m->changes_at_begin)
        m->persisted_now = now;
    return 0;
}

static void tx_rollback(struct market *m)
{
    if (!sqlite3_get_autocommit(m->db))
        sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
}

static int db_open(struct market *m, const char *path, money_t initial_balance, bool block_ms_given,
                   struct sw_error *err)
{
    int rc = sqlite3_open_v2(
        path, &m->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        sw_error_set(err, SW_ESTORE, "%s: %s", path,
                     m->db != NULL ? sqlite3_errmsg(m->db) : sqlite3_errstr(rc));
        return SW_ESTORE;
    }
    sqlite3_busy_timeout(m->db, 2000);
    char *msg = NULL;
    const char *setup = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;";
    if (sqlite3_exec(m->db, setup, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(m->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        sw_error_set(err, SW_ESTORE, "%s: %s", path, msg != NULL ? msg : "schema");
        sqlite3_free(msg);
        return SW_ESTORE;
    }
    if (tx_begin(m) < 0)
        goto fail;
    bool found = false;
    int64_t value = 0;
    if (meta_get(m, "genesis_ms", &value, &found) < 0)
        goto fail;
    if (!found) {
        value = market_now(m);
        if (meta_set(m, "genesis_ms", value) < 0 || meta_set(m, "balance", initial_balance) < 0 ||
            meta_set(m, "last_dseq", 0) < 0)
            goto fail;
    }
    m->genesis_ms = value;
    /* Heights are derived from genesis and the block time: a state file keeps the block
     * time it was created with. */
    int64_t stored_block = 0;
    if (meta_get(m, "block_ms", &stored_block, &found) < 0)
        goto fail;
    if (!found) {
        if (meta_set(m, "block_ms", m->block_ms) < 0)
            goto fail;
    } else if (stored_block != m->block_ms) {
        if (block_ms_given) {
            tx_rollback(m);
            sw_error_set(err, SW_ECONFIG,
                         "%s was created with --block-time %" PRId64 "ms; "
                         "use that or a new state file",
                         path, stored_block);
            return SW_ECONFIG;
        }
        m->block_ms = stored_block;
    }
    /* A state written by a faster-running server may be "ahead" of this clock: continue
     * from its latest instant so heights and dseqs never go backwards. */
    int64_t last = 0;
    if (meta_get(m, "last_now_ms", &last, &found) < 0)
        goto fail;
    int64_t now = sw_clock_now(m->clock);
    m->clock_offset = found && last > now ? last - now : 0;
    if (tx_commit(m, market_now(m)) < 0)
        goto fail;
    return 0;
fail:
    tx_rollback(m);
    sw_error_set(err, SW_ESTORE, "%s: %s", path, m->db_error);
    return SW_ESTORE;
}

static void db_close(struct market *m)
{
    for (size_t i = 0; i < m->stmt_count; i++)
        sqlite3_finalize(m->stmts[i].stmt);
    free(m->stmts);
    m->stmts = NULL;
    m->stmt_count = 0;
    if (m->db != NULL)
        sqlite3_close(m->db);
    m->db = NULL;
}

/* ---- the marketplace model ------------------------------------------------------------------ */

struct dep {
    int64_t dseq;
    char state[16];        /* active | closed */
    char escrow_state[16]; /* open | closed | overdrawn */
    char hash[64];
    char close_cause[24]; /* owner | unleased | insufficient_funds, "" while active */
    int64_t created_ms;
    int64_t created_height;
    int64_t closed_ms;     /* -1 while active */
    int64_t closed_height; /* -1 while active */
    money_t funds;
    money_t transferred;
    money_t rate; /* Σ prices of its active leases, per block */
    money_t deposit_first;
    int64_t settled_height;
    int64_t next_settle_ms; /* -1: nothing due */
    bool auto_top_up;
    bool ever_leased;
};

static bool dep_active(const struct dep *d)
{
    return strcmp(d->state, "active") == 0;
}

static void copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", s != NULL ? (const char *)s : "");
}

static int dep_load(struct market *m, int64_t dseq, struct dep *d, bool *found)
{
    sqlite3_stmt *st = q_bind(m,
                              "SELECT state, escrow_state, hash, close_cause, created_ms,"
                              " created_height, closed_ms, closed_height, funds, transferred, rate,"
                              " deposit_first, settled_height, next_settle_ms, auto_top_up,"
                              " ever_leased FROM deployments WHERE dseq=?",
                              "i", dseq);
    int rc = q_step(m, st);
    if (rc < 0)
        return -1;
    *found = rc == 1;
    if (rc == 1) {
        memset(d, 0, sizeof(*d));
        d->dseq = dseq;
        copy_text(d->state, sizeof(d->state), st, 0);
        copy_text(d->escrow_state, sizeof(d->escrow_state), st, 1);
        copy_text(d->hash, sizeof(d->hash), st, 2);
        copy_text(d->close_cause, sizeof(d->close_cause), st, 3);
        d->created_ms = sqlite3_column_int64(st, 4);
        d->created_height = sqlite3_column_int64(st, 5);
        d->closed_ms = col_int_or(st, 6, -1);
        d->closed_height = col_int_or(st, 7, -1);
        d->funds = sqlite3_column_int64(st, 8);
        d->transferred = sqlite3_column_int64(st, 9);
        d->rate = sqlite3_column_int64(st, 10);
        d->deposit_first = sqlite3_column_int64(st, 11);
        d->settled_height = sqlite3_column_int64(st, 12);
        d->next_settle_ms = col_int_or(st, 13, -1);
        d->auto_top_up = sqlite3_column_int64(st, 14) != 0;
        d->ever_leased = sqlite3_column_int64(st, 15) != 0;
    }
    sqlite3_reset(st);
    return 0;
}

static int dep_save(struct market *m, const struct dep *d)
{
    sqlite3_stmt *st = q_bind(
        m,
        "UPDATE deployments SET state=?, escrow_state=?, close_cause=?, closed_ms=?,"
        " closed_height=?, funds=?, transferred=?, rate=?, settled_height=?, next_settle_ms=?,"
        " auto_top_up=?, ever_leased=? WHERE dseq=?",
        "tttiiiiiiiiii", d->state, d->escrow_state, d->close_cause[0] ? d->close_cause : NULL,
        d->closed_ms, d->closed_height, d->funds, d->transferred, d->rate, d->settled_height,
        d->next_settle_ms, (int64_t)d->auto_top_up, (int64_t)d->ever_leased, d->dseq);
    if (st == NULL)
        return -1;
    /* -1 means "none" for the two optional columns: store NULL. */
    if (d->closed_ms < 0)
        sqlite3_bind_null(st, 4);
    if (d->closed_height < 0)
        sqlite3_bind_null(st, 5);
    if (d->next_settle_ms < 0)
        sqlite3_bind_null(st, 10);
    int rc = q_step(m, st);
    sqlite3_reset(st);
    return rc < 0 ? -1 : 0;
}

static int timeline_add(struct market *m, int64_t due, const char *kind, int64_t dseq, int64_t gseq,
                        int64_t oseq, const char *provider)
{
    return q_run(m,
                 "INSERT INTO timeline(due_ms, kind, dseq, gseq, oseq, provider)"
                 " VALUES(?, ?, ?, ?, ?, ?)",
                 "itiiit", due, kind, dseq, gseq, oseq, provider != NULL ? provider : "");
}

static money_t mul_sat(money_t a, int64_t b)
{
    if (a <= 0 || b <= 0)
        return 0;
    return a > INT64_MAX / b ? INT64_MAX : a * b;
}

/* Funds an auto-topped-up escrow keeps: TOPUP_RUNWAY_MS of blocks at the current rate. */
static money_t runway_threshold(struct market *m, money_t rate)
{
    int64_t blocks = TOPUP_RUNWAY_MS / m->block_ms;
    return mul_sat(rate, blocks > 0 ? blocks : 1);
}

static void dep_compute_next(struct market *m, struct dep *d, money_t balance)
{
    d->next_settle_ms = -1;
    if (!dep_active(d) || d->rate <= 0)
        return;
    int64_t next_h = d->settled_height + d->funds / d->rate + 1; /* first unpaid block */
    if (d->auto_top_up && balance > 0) {
        money_t threshold = runway_threshold(m, d->rate);
        int64_t due = d->funds < threshold
                          ? d->settled_height + 1
                          : d->settled_height + (d->funds - threshold) / d->rate + 1;
        if (due < next_h)
            next_h = due;
    }
    d->next_settle_ms = time_of_height(m, next_h);
}

static int dep_close(struct market *m, struct dep *d, int64_t t, int64_t h, const char *cause,
                     const char *lease_state, const char *lease_reason, const char *escrow_state)
{
    if (q_run(m,
              "UPDATE bids SET state='closed', closed_ms=? WHERE dseq=? AND state IN "
              "('open', 'active')",
              "ii", t, d->dseq) < 0 ||
        q_run(m,
              "UPDATE leases SET state=?, reason=?, closed_ms=?, closed_height=? "
              "WHERE dseq=? AND state='active'",
              "ttiii", lease_state, lease_reason, t, h, d->dseq) < 0 ||
        q_run(m, "DELETE FROM timeline WHERE dseq=?", "i", d->dseq) < 0)
        return -1;
    money_t refund = strcmp(escrow_state, "closed") == 0 ? d->funds : 0;
    if (refund > 0 && balance_add(m, refund) < 0)
        return -1;
    d->funds -= refund;
    d->rate = 0;
    snprintf(d->state, sizeof(d->state), "closed");
    snprintf(d->escrow_state, sizeof(d->escrow_state), "%s", escrow_state);
    snprintf(d->close_cause, sizeof(d->close_cause), "%s", cause);
    d->closed_ms = t;
    d->closed_height = h;
    d->next_settle_ms = -1;
    sw_log(SW_LOG_INFO, "market",
           "deployment %" PRId64 " closed (%s) at height %" PRId64 ": %.6f USD paid, %.6f USD "
           "returned to the wallet",
           d->dseq, cause, h, money_usd(d->transferred), money_usd(refund));
    return dep_save(m, d);
}

/* Brings d's escrow to height target_h: pays its leases block by block (in closed form),
 * tops it up when auto top-up is on, and closes it as overdrawn at the first block it
 * cannot pay. */
static int dep_settle(struct market *m, struct dep *d, int64_t target_h)
{
    if (!dep_active(d))
        return 0;
    money_t balance = 0;
    if (balance_get(m, &balance) < 0)
        return -1;
    for (int guard = 0; d->settled_height < target_h && guard < 100000; guard++) {
        if (d->rate <= 0) {
            d->settled_height = target_h;
            break;
        }
        int64_t stop = target_h;
        if (d->auto_top_up && balance > 0) {
            money_t threshold = runway_threshold(m, d->rate);
            if (d->funds < threshold) {
                money_t want = mul_sat(threshold, 2) - d->funds;
                if (want < d->deposit_first)
                    want = d->deposit_first;
                money_t amount = want < balance ? want : balance;
                if (balance_add(m, -amount) < 0 ||
                    q_run(m,
                          "INSERT INTO deposits(dseq, height, amount, source) "
                          "VALUES(?, ?, ?, 'balance')",
                          "iii", d->dseq, d->settled_height, amount) < 0)
                    return -1;
                balance -= amount;
                d->funds += amount;
                sw_log(SW_LOG_INFO, "market",
                       "deployment %" PRId64 ": auto top-up of %.6f USD at height %" PRId64,
                       d->dseq, money_usd(amount), d->settled_height);
                continue;
            }
            int64_t due = d->settled_height + (d->funds - threshold) / d->rate + 1;
            if (due < stop)
                stop = due;
        }
        int64_t payable = d->funds / d->rate;
        int64_t span = stop - d->settled_height;
        if (span <= payable) {
            d->funds -= span * d->rate;
            d->transferred += span * d->rate;
            d->settled_height = stop;
            continue;
        }
        int64_t dry_h = d->settled_height + payable + 1;
        d->transferred += d->funds;
        d->funds = 0;
        d->settled_height = dry_h;
        return dep_close(m, d, time_of_height(m, dry_h), dry_h, "insufficient_funds",
                         "insufficient_funds", "lease_closed_reason_insufficient_funds",
                         "overdrawn");
    }
    dep_compute_next(m, d, balance);
    return dep_save(m, d);
}

static int settle_to(struct market *m, struct dep *d, int64_t t)
{
    return dep_settle(m, d, height_at(m, t));
}

/* Closes one active lease (provider-initiated or via the admin endpoint). */
static int lease_close_one(struct market *m, int64_t dseq, int64_t gseq, int64_t oseq,
                           const char *provider, int64_t t, const char *reason, bool *closed)
{
    *closed = false;
    struct dep d;
    bool found = false;
    if (dep_load(m, dseq, &d, &found) < 0)
        return -1;
    if (!found || !dep_active(&d))
        return 0;
    if (settle_to(m, &d, t) < 0)
        return -1;
    if (!dep_active(&d))
        return 0;
    int64_t price = 0;
    bool active = false;
    if (q_int(m, &price, &active,
              "SELECT price FROM leases WHERE dseq=? AND gseq=? AND oseq=? AND provider=? AND "
              "state='active'",
              "iiit", dseq, gseq, oseq, provider) < 0)
        return -1;
    if (!active)
        return 0;
    int64_t h = height_at(m, t);
    if (q_run(m,
              "UPDATE leases SET state='closed', reason=?, closed_ms=?, closed_height=? "
              "WHERE dseq=? AND gseq=? AND oseq=? AND provider=? AND state='active'",
              "tiiiiit", reason, t, h, dseq, gseq, oseq, provider) < 0 ||
        q_run(m,
              "UPDATE bids SET state='closed', closed_ms=? WHERE dseq=? AND gseq=? AND "
              "oseq=? AND provider=? AND state='active'",
              "iiiit", t, dseq, gseq, oseq, provider) < 0)
        return -1;
    d.rate -= price;
    if (d.rate < 0)
        d.rate = 0;
    money_t balance = 0;
    if (balance_get(m, &balance) < 0)
        return -1;
    dep_compute_next(m, &d, balance);
    if (dep_save(m, &d) < 0)
        return -1;
    *closed = true;
    sw_log(SW_LOG_INFO, "market",
           "deployment %" PRId64 ": provider %s closed lease %" PRId64 "/%" PRId64 " (%s)", dseq,
           provider, gseq, oseq, reason);
    return 0;
}

static int provider_reserved(struct market *m, const char *owner, int64_t *out)
{
    return q_int(m, out, NULL,
                 "SELECT (SELECT COUNT(*) FROM leases WHERE provider=?1 AND state='active') +"
                 " (SELECT COUNT(*) FROM bids WHERE provider=?1 AND state='open')",
                 "t", owner);
}

static int on_bid_due(struct market *m, int64_t t, int64_t dseq, int64_t gseq, int64_t oseq,
                      const char *owner)
{
    struct dep d;
    bool found = false;
    if (dep_load(m, dseq, &d, &found) < 0)
        return -1;
    struct mprovider *p = provider_find(m, owner);
    if (!found || !dep_active(&d) || p == NULL || !p->online)
        return 0;
    int64_t leased = 0;
    int64_t units = 0;
    bool have_group = false;
    if (q_int(m, &leased, NULL, "SELECT COUNT(*) FROM leases WHERE dseq=? AND gseq=? AND oseq=?",
              "iii", dseq, gseq, oseq) < 0 ||
        q_int(m, &units, &have_group, "SELECT units FROM dgroups WHERE dseq=? AND gseq=?", "ii",
              dseq, gseq) < 0)
        return -1;
    if (leased > 0 || !have_group)
        return 0; /* the order is no longer open */
    int64_t reserved = 0;
    if (provider_reserved(m, owner, &reserved) < 0)
        return -1;
    if (reserved >= p->capacity) {
        sw_log(SW_LOG_DEBUG, "market",
               "provider %s is full (%" PRId64 "/%" PRId64 "): no bid on "
               "%" PRId64 "/%" PRId64,
               owner, reserved, p->capacity, dseq, gseq);
        return 0;
    }
    money_t price = mul_sat(p->price, units);
    if (q_run(m,
              "INSERT OR IGNORE INTO bids(dseq, gseq, oseq, provider, bseq, state, price,"
              " created_ms, created_height) VALUES(?, ?, ?, ?, 0, 'open', ?, ?, ?)",
              "iiitiii", dseq, gseq, oseq, owner, price, t, height_at(m, t)) < 0)
        return -1;
    sw_log(SW_LOG_DEBUG, "market", "deployment %" PRId64 ": provider %s bids %.6f uact/block", dseq,
           owner, (double)price / (double)MICRO_PER_UACT);
    return timeline_add(m, t + m->bid_ttl_ms, "bid_expire", dseq, gseq, oseq, owner);
}

static int on_timeline(struct market *m, int64_t t, const char *kind, int64_t dseq, int64_t gseq,
                       int64_t oseq, const char *provider)
{
    if (strcmp(kind, "bid") == 0)
        return on_bid_due(m, t, dseq, gseq, oseq, provider);
    if (strcmp(kind, "bid_expire") == 0)
        return q_run(m,
                     "UPDATE bids SET state='closed', closed_ms=? WHERE dseq=? AND gseq=? AND "
                     "oseq=? AND provider=? AND state='open'",
                     "iiiit", t, dseq, gseq, oseq, provider);
    if (strcmp(kind, "ready") == 0)
        return q_run(m,
                     "UPDATE leases SET ready_ms=? WHERE dseq=? AND gseq=? AND oseq=? AND "
                     "provider=? AND state='active' AND ready_ms IS NULL",
                     "iiiit", t, dseq, gseq, oseq, provider);
    if (strcmp(kind, "closure") == 0) {
        bool closed;
        return lease_close_one(m, dseq, gseq, oseq, provider, t, "lease_closed_reason_unstable",
                               &closed);
    }
    if (strcmp(kind, "unleased") == 0) {
        struct dep d;
        bool found = false;
        if (dep_load(m, dseq, &d, &found) < 0)
            return -1;
        if (!found || !dep_active(&d) || d.ever_leased)
            return 0;
        if (settle_to(m, &d, t) < 0)
            return -1;
        return dep_close(m, &d, t, height_at(m, t), "unleased", "closed", "lease_closed_owner",
                         "closed");
    }
    return 0;
}

/* Replays everything due up to now, in time order; settlements first on a tie so that an
 * escrow that ran dry has closed its leases before anything else looks at them. */
static int advance(struct market *m, int64_t now)
{
    for (;;) {
        int64_t settle_ms = 0;
        int64_t settle_dseq = 0;
        bool have_settle = false;
        sqlite3_stmt *st = q_bind(m,
                                  "SELECT dseq, next_settle_ms FROM deployments WHERE "
                                  "state='active' AND next_settle_ms <= ? "
                                  "ORDER BY next_settle_ms, dseq LIMIT 1",
                                  "i", now);
        int rc = q_step(m, st);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            have_settle = true;
            settle_dseq = sqlite3_column_int64(st, 0);
            settle_ms = sqlite3_column_int64(st, 1);
        }
        sqlite3_reset(st);

        st = q_bind(m,
                    "SELECT id, due_ms, kind, dseq, gseq, oseq, provider FROM timeline "
                    "WHERE due_ms <= ? ORDER BY due_ms, id LIMIT 1",
                    "i", now);
        rc = q_step(m, st);
        if (rc < 0)
            return -1;
        if (rc == 0 && !have_settle) {
            sqlite3_reset(st);
            break;
        }
        if (have_settle && (rc == 0 || settle_ms <= sqlite3_column_int64(st, 1))) {
            sqlite3_reset(st);
            struct dep d;
            bool found = false;
            if (dep_load(m, settle_dseq, &d, &found) < 0)
                return -1;
            int64_t before = d.next_settle_ms;
            if (settle_to(m, &d, settle_ms) < 0)
                return -1;
            if (dep_active(&d) && d.next_settle_ms >= 0 && d.next_settle_ms <= before) {
                /* Cannot happen by construction; never spin on it. */
                d.next_settle_ms = before + m->block_ms;
                if (dep_save(m, &d) < 0)
                    return -1;
            }
            continue;
        }
        int64_t id = sqlite3_column_int64(st, 0);
        int64_t due = sqlite3_column_int64(st, 1);
        char kind[16];
        copy_text(kind, sizeof(kind), st, 2);
        int64_t dseq = sqlite3_column_int64(st, 3);
        int64_t gseq = sqlite3_column_int64(st, 4);
        int64_t oseq = sqlite3_column_int64(st, 5);
        char *provider = col_text(st, 6);
        sqlite3_reset(st);
        rc = q_run(m, "DELETE FROM timeline WHERE id=?", "i", id);
        if (rc == 0)
            rc = on_timeline(m, due, kind, dseq, gseq, oseq, provider);
        free(provider);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int settle_all(struct market *m, int64_t now)
{
    int64_t h = height_at(m, now);
    int64_t *list = NULL;
    size_t count = 0;
    sqlite3_stmt *st = q_bind(m,
                              "SELECT dseq FROM deployments WHERE state='active' AND "
                              "settled_height < ?",
                              "i", h);
    int rc;
    while ((rc = q_step(m, st)) == 1) {
        list = sw_xrealloc(list, (count + 1) * sizeof(*list));
        list[count++] = sqlite3_column_int64(st, 0);
    }
    if (st != NULL)
        sqlite3_reset(st);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        struct dep d;
        bool found = false;
        if (dep_load(m, list[i], &d, &found) < 0 || (found && dep_settle(m, &d, h) < 0))
            rc = -1;
    }
    free(list);
    return rc < 0 ? -1 : 0;
}

static void on_wake(void *ud);

/* One timer for the earliest scheduled fact (a timeline entry or an escrow settlement). */
static void rearm(struct market *m)
{
    if (m->stopping)
        return;
    int64_t due_timeline = 0;
    int64_t due_settle = 0;
    bool have_timeline = false;
    bool have_settle = false;
    int64_t due = -1;
    if (q_int(m, &due_timeline, &have_timeline, "SELECT MIN(due_ms) FROM timeline", "") < 0 ||
        q_int(m, &due_settle, &have_settle,
              "SELECT MIN(next_settle_ms) FROM deployments WHERE state='active'", "") < 0) {
        sw_log(SW_LOG_ERROR, "market", "state store: %s", m->db_error);
        due = market_now(m) + 1000 * (int64_t)m->speed; /* retry in about a second */
    } else {
        if (have_timeline)
            due = due_timeline;
        if (have_settle && (due < 0 || due_settle < due))
            due = due_settle;
    }
    if (due < 0) {
        sw_clock_timer_stop(m->clock, m->wake_timer);
        m->wake_timer = 0;
        return;
    }
    if (m->wake_timer != 0 && m->wake_due == due)
        return;
    sw_clock_timer_stop(m->clock, m->wake_timer);
    int64_t delay = due - market_now(m);
    m->wake_timer = sw_clock_timer_start(m->clock, delay > 0 ? (uint64_t)delay : 0, on_wake, m);
    m->wake_due = due;
}

static void on_wake(void *ud)
{
    struct market *m = ud;
    m->wake_timer = 0;
    int64_t now = market_now(m);
    if (tx_begin(m) < 0 || advance(m, now) < 0 || tx_commit(m, now) < 0) {
        tx_rollback(m);
        sw_log(SW_LOG_ERROR, "market", "state store: %s", m->db_error);
    }
    rearm(m);
}

/* ---- JSON shapes of the contract ------------------------------------------------------------ */

static cJSON *deccoin(money_t amount)
{
    char text[48];
    money_text(amount, text, sizeof(text));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "denom", "uact");
    cJSON_AddStringToObject(o, "amount", text);
    return o;
}

static void add_i64_string(cJSON *obj, const char *key, int64_t v)
{
    char text[32];
    snprintf(text, sizeof(text), "%" PRId64, v);
    cJSON_AddStringToObject(obj, key, text);
}

static cJSON *lease_id_json(struct market *m, int64_t dseq, int64_t gseq, int64_t oseq,
                            const char *provider, int64_t bseq)
{
    cJSON *id = cJSON_CreateObject();
    cJSON_AddStringToObject(id, "owner", m->owner);
    add_i64_string(id, "dseq", dseq);
    cJSON_AddNumberToObject(id, "gseq", (double)gseq);
    cJSON_AddNumberToObject(id, "oseq", (double)oseq);
    cJSON_AddStringToObject(id, "provider", provider);
    cJSON_AddNumberToObject(id, "bseq", (double)bseq);
    return id;
}

/* "<label>.ingress.<provider host>": stable for a (deployment, group, service, provider). */
static char *ingress_uri(int64_t dseq, int64_t gseq, const char *service, const struct mprovider *p,
                         const char *owner)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    char key[512];
    snprintf(key, sizeof(key), "%" PRId64 "/%" PRId64 "/%s/%s", dseq, gseq, service, owner);
    uint64_t state = digest64(0, key);
    char label[27];
    for (size_t i = 0; i < 26; i++) {
        if (i % 12 == 0)
            splitmix64(&state);
        label[i] = alphabet[(state >> ((i % 12) * 5)) & 31];
    }
    label[26] = '\0';
    if (p != NULL)
        return sw_xasprintf("%s.ingress.%s", label, p->host);
    return sw_xasprintf("%s.ingress.%s.provider.local", label, owner);
}

/* Lease status as the provider reports it: null until the workload is up (or when the
 * provider is offline), then every service with available == total. */
static int lease_status_json(struct market *m, int64_t dseq, int64_t gseq, const char *provider,
                             cJSON **out)
{
    *out = NULL;
    sqlite3_stmt *st =
        q_bind(m, "SELECT services FROM dgroups WHERE dseq=? AND gseq=?", "ii", dseq, gseq);
    int rc = q_step(m, st);
    if (rc < 0)
        return -1;
    char *text = rc == 1 ? col_text(st, 0) : NULL;
    sqlite3_reset(st);
    cJSON *services = text != NULL ? cJSON_Parse(text) : NULL;
    free(text);
    const struct mprovider *p = provider_find(m, provider);
    cJSON *status = cJSON_CreateObject();
    cJSON *svcs = cJSON_AddObjectToObject(status, "services");
    const cJSON *svc;
    cJSON_ArrayForEach(svc, services)
    {
        const char *name = cJSON_GetObjectItemCaseSensitive(svc, "name")->valuestring;
        double count = cJSON_GetObjectItemCaseSensitive(svc, "count")->valuedouble;
        cJSON *s = cJSON_AddObjectToObject(svcs, name);
        cJSON_AddStringToObject(s, "name", name);
        cJSON_AddNumberToObject(s, "available", count);
        cJSON_AddNumberToObject(s, "total", count);
        cJSON *uris = cJSON_AddArrayToObject(s, "uris");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(svc, "global"))) {
            char *uri = ingress_uri(dseq, gseq, name, p, provider);
            cJSON_AddItemToArray(uris, cJSON_CreateString(uri));
            free(uri);
            const cJSON *host;
            cJSON_ArrayForEach(host, cJSON_GetObjectItemCaseSensitive(svc, "accept"))
                cJSON_AddItemToArray(uris, cJSON_CreateString(host->valuestring));
        }
        cJSON_AddNumberToObject(s, "observed_generation", 1);
        cJSON_AddNumberToObject(s, "replicas", count);
        cJSON_AddNumberToObject(s, "updated_replicas", count);
        cJSON_AddNumberToObject(s, "ready_replicas", count);
        cJSON_AddNumberToObject(s, "available_replicas", count);
    }
    cJSON_Delete(services);
    cJSON_AddNullToObject(status, "forwarded_ports");
    cJSON_AddNullToObject(status, "ips");
    *out = status;
    return 0;
}

/* DeploymentResponse. with_status: GET /v1/deployments/<dseq> and POST /v1/leases include
 * each lease's status; the list omits the key. */
static int dep_json(struct market *m, const struct dep *d, bool with_status, cJSON **out)
{
    *out = NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON *dj = cJSON_AddObjectToObject(o, "deployment");
    cJSON *id = cJSON_AddObjectToObject(dj, "id");
    cJSON_AddStringToObject(id, "owner", m->owner);
    add_i64_string(id, "dseq", d->dseq);
    cJSON_AddStringToObject(dj, "state", d->state);
    cJSON_AddStringToObject(dj, "hash", d->hash);
    add_i64_string(dj, "created_at", d->created_height);

    cJSON *leases = cJSON_AddArrayToObject(o, "leases");
    sqlite3_stmt *st = q_bind(m,
                              "SELECT gseq, oseq, provider, bseq, state, price, created_height,"
                              " closed_height, reason, ready_ms FROM leases WHERE dseq=?"
                              " ORDER BY gseq, oseq, created_ms, provider",
                              "i", d->dseq);
    struct pending_status {
        cJSON *lease;
        int64_t gseq;
        char *provider;
    } *pending = NULL;
    size_t pending_count = 0;
    int rc;
    while ((rc = q_step(m, st)) == 1) {
        int64_t gseq = sqlite3_column_int64(st, 0);
        const char *provider = (const char *)sqlite3_column_text(st, 2);
        const char *state = (const char *)sqlite3_column_text(st, 4);
        cJSON *l = cJSON_CreateObject();
        cJSON_AddItemToObject(l, "id",
                              lease_id_json(m, d->dseq, gseq, sqlite3_column_int64(st, 1), provider,
                                            sqlite3_column_int64(st, 3)));
        cJSON_AddStringToObject(l, "state", state);
        cJSON_AddItemToObject(l, "price", deccoin(sqlite3_column_int64(st, 5)));
        add_i64_string(l, "created_at", sqlite3_column_int64(st, 6));
        add_i64_string(l, "closed_on", col_int_or(st, 7, 0));
        if (sqlite3_column_type(st, 8) == SQLITE_NULL)
            cJSON_AddNullToObject(l, "reason");
        else
            cJSON_AddStringToObject(l, "reason", (const char *)sqlite3_column_text(st, 8));
        bool ready = strcmp(state, "active") == 0 && sqlite3_column_type(st, 9) != SQLITE_NULL;
        const struct mprovider *p = provider_find(m, provider);
        if (with_status && ready && p != NULL && p->online) {
            pending = sw_xrealloc(pending, (pending_count + 1) * sizeof(*pending));
            pending[pending_count].lease = l;
            pending[pending_count].gseq = gseq;
            pending[pending_count].provider = sw_xstrdup(provider);
            pending_count++;
        } else if (with_status) {
            cJSON_AddNullToObject(l, "status");
        }
        cJSON_AddItemToArray(leases, l);
    }
    if (st != NULL)
        sqlite3_reset(st);
    for (size_t i = 0; i < pending_count; i++) {
        cJSON *status = NULL;
        if (rc == 0 &&
            lease_status_json(m, d->dseq, pending[i].gseq, pending[i].provider, &status) < 0)
            rc = -1;
        cJSON_AddItemToObject(pending[i].lease, "status",
                              status != NULL ? status : cJSON_CreateNull());
        free(pending[i].provider);
    }
    free(pending);

    cJSON *escrow = cJSON_AddObjectToObject(o, "escrow_account");
    cJSON *eid = cJSON_AddObjectToObject(escrow, "id");
    cJSON_AddStringToObject(eid, "scope", "deployment");
    char xid[128];
    snprintf(xid, sizeof(xid), "%s/%" PRId64, m->owner, d->dseq);
    cJSON_AddStringToObject(eid, "xid", xid);
    cJSON *es = cJSON_AddObjectToObject(escrow, "state");
    cJSON_AddStringToObject(es, "owner", m->owner);
    cJSON_AddStringToObject(es, "state", d->escrow_state);
    cJSON *funds = cJSON_AddArrayToObject(es, "funds");
    cJSON_AddItemToArray(funds, deccoin(d->funds));
    cJSON *transferred = cJSON_AddArrayToObject(es, "transferred");
    cJSON_AddItemToArray(transferred, deccoin(d->transferred));
    add_i64_string(es, "settled_at", d->settled_height);
    cJSON *deposits = cJSON_AddArrayToObject(es, "deposits");
    st = q_bind(m, "SELECT height, amount, source FROM deposits WHERE dseq=? ORDER BY rowid", "i",
                d->dseq);
    int drc;
    while (rc == 0 && (drc = q_step(m, st)) == 1) {
        cJSON *dep = cJSON_CreateObject();
        cJSON_AddStringToObject(dep, "owner", m->owner);
        add_i64_string(dep, "height", sqlite3_column_int64(st, 0));
        cJSON_AddStringToObject(dep, "source", (const char *)sqlite3_column_text(st, 2));
        cJSON_AddItemToObject(dep, "balance", deccoin(sqlite3_column_int64(st, 1)));
        cJSON_AddItemToArray(deposits, dep);
    }
    if (rc == 0 && drc < 0)
        rc = -1;
    if (st != NULL)
        sqlite3_reset(st);
    if (rc < 0) {
        cJSON_Delete(o);
        return -1;
    }
    *out = o;
    return 0;
}

static cJSON *provider_json(const struct mprovider *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "owner", p->owner);
    cJSON_AddStringToObject(o, "hostUri", p->host_uri);
    cJSON_AddBoolToObject(o, "isOnline", p->online);
    cJSON_AddBoolToObject(o, "isAudited", p->audited);
    cJSON_AddNumberToObject(o, "uptime7d", p->uptime7d);
    cJSON *attrs = cJSON_AddArrayToObject(o, "attributes");
    const cJSON *a;
    cJSON_ArrayForEach(a, p->attributes)
    {
        cJSON *kv = cJSON_CreateObject();
        cJSON_AddStringToObject(kv, "key", a->string);
        cJSON_AddStringToObject(kv, "value", a->valuestring);
        cJSON_AddItemToArray(attrs, kv);
    }
    cJSON_AddStringToObject(o, "locationRegion", p->region);
    return o;
}

static cJSON *faults_json(const struct faults *f)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "latency_ms", (double)f->latency_ms);
    cJSON_AddNumberToObject(o, "latency_spike_ms", (double)f->latency_spike_ms);
    cJSON_AddNumberToObject(o, "latency_spike_rate", f->latency_spike_rate);
    cJSON_AddNumberToObject(o, "rate_429", f->rate_429);
    cJSON_AddNumberToObject(o, "rate_5xx", f->rate_5xx);
    cJSON_AddNumberToObject(o, "rate_malformed", f->rate_malformed);
    cJSON_AddNumberToObject(o, "rate_drop", f->rate_drop);
    return o;
}

/* ---- replies -------------------------------------------------------------------------------- */

struct reply {
    int status;
    char *body;
    size_t len;
    const char *content_type;
    char *headers[2];
    size_t header_count;
    bool drop;
};

static void reply_clear(struct reply *r)
{
    free(r->body);
    for (size_t i = 0; i < r->header_count; i++)
        free(r->headers[i]);
    memset(r, 0, sizeof(*r));
}

static void reply_header(struct reply *r, const char *line)
{
    if (r->header_count < SW_ARRAY_LEN(r->headers))
        r->headers[r->header_count++] = sw_xstrdup(line);
}

/* Takes ownership of root. */
static void reply_json(struct reply *r, int status, cJSON *root)
{
    free(r->body);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    r->status = status;
    r->body = sw_xstrdup(text != NULL ? text : "null");
    r->len = strlen(r->body);
    r->content_type = "application/json";
    cJSON_free(text);
}

static void reply_data(struct reply *r, int status, cJSON *data)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "data", data);
    reply_json(r, status, root);
}

static void reply_error(struct reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct reply *r, int status, const char *fmt, ...)
{
    static const struct {
        int status;
        const char *error;
        const char *code;
    } classes[] = {
        {400, "BadRequestError", "bad_request"},
        {401, "UnauthorizedError", "unauthorized"},
        {402, "PaymentRequiredError", "bad_request"},
        {403, "ForbiddenError", "forbidden"},
        {404, "NotFoundError", "not_found"},
        {405, "MethodNotAllowedError", "bad_request"},
        {409, "ConflictError", "conflict"},
        {413, "PayloadTooLargeError", "bad_request"},
        {429, "TooManyRequestsError", "rate_limited"},
        {500, "InternalServerError", "unknown_error"},
        {502, "BadGatewayError", "service_unavailable"},
        {503, "ServiceUnavailableError", "service_unavailable"},
    };
    const char *error = status >= 500 ? "InternalServerError" : "BadRequestError";
    const char *code = status >= 500 ? "unknown_error" : "bad_request";
    for (size_t i = 0; i < SW_ARRAY_LEN(classes); i++) {
        if (classes[i].status == status) {
            error = classes[i].error;
            code = classes[i].code;
        }
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "error", error);
    cJSON_AddStringToObject(root, "message", msg);
    cJSON_AddStringToObject(root, "code", code);
    cJSON_AddStringToObject(root, "type", status >= 500 ? "server_error" : "client_error");
    reply_json(r, status, root);
}

/* ---- handlers ------------------------------------------------------------------------------- */

struct route_ctx {
    struct market *m;
    const struct sw_http_request *req;
    const char *method; /* HEAD is routed as GET */
    struct reply *r;
    const char *arg;    /* the path parameter, when the route has one */
    const char *action; /* /_steward/providers/<owner>/<action> */
    int64_t now;
};

/* The request body as JSON, or NULL after a 400 reply. */
static cJSON *body_json(struct route_ctx *c)
{
    if (c->req->body_len == 0) {
        reply_error(c->r, 400, "a JSON body is required");
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(c->req->body, c->req->body_len);
    if (root == NULL)
        reply_error(c->r, 400, "the body is not valid JSON");
    return root;
}

/* body.data as an object, or NULL after a 400 reply naming the expected shape. */
static const cJSON *body_data(struct route_ctx *c, const cJSON *root, const char *shape)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!cJSON_IsObject(data)) {
        reply_error(c->r, 400, "expected a wrapped body %s", shape);
        return NULL;
    }
    return data;
}

/* A dseq as JSON: the contract's string, or (tolerated) an integral number. */
static bool json_dseq(const cJSON *item, int64_t *out)
{
    if (cJSON_IsString(item))
        return parse_dseq(item->valuestring, out);
    if (cJSON_IsNumber(item) && item->valuedouble >= 1 && item->valuedouble <= 9007199254740992.0 &&
        item->valuedouble == floor(item->valuedouble)) {
        *out = (int64_t)item->valuedouble;
        return true;
    }
    return false;
}

/* gseq/oseq: a small positive integer as a number (or a numeric string). */
static bool json_seq(const cJSON *item, int64_t *out)
{
    if (cJSON_IsNumber(item) && item->valuedouble >= 1 && item->valuedouble <= 1e9 &&
        item->valuedouble == floor(item->valuedouble)) {
        *out = (int64_t)item->valuedouble;
        return true;
    }
    uint64_t v;
    if (cJSON_IsString(item) && parse_u64_text(item->valuestring, &v) && v >= 1 &&
        v <= 1000000000) {
        *out = (int64_t)v;
        return true;
    }
    return false;
}

static bool provider_matches(const struct mprovider *p, const struct sdl_group *g)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, g->attributes)
    {
        const cJSON *have = cJSON_GetObjectItemCaseSensitive(p->attributes, a->string);
        if (!cJSON_IsString(have) || strcmp(have->valuestring, a->valuestring) != 0)
            return false;
    }
    const cJSON *auditor;
    if (cJSON_GetArraySize(g->any_of) > 0) {
        if (!p->audited)
            return false;
        bool any = p->auditors == NULL;
        cJSON_ArrayForEach(auditor, g->any_of)
        {
            const cJSON *have;
            cJSON_ArrayForEach(have, p->auditors)
            {
                if (strcmp(have->valuestring, auditor->valuestring) == 0)
                    any = true;
            }
        }
        if (!any)
            return false;
    }
    if (cJSON_GetArraySize(g->all_of) > 0) {
        if (!p->audited)
            return false;
        cJSON_ArrayForEach(auditor, (p->auditors != NULL ? g->all_of : NULL))
        {
            bool found = false;
            const cJSON *have;
            cJSON_ArrayForEach(have, p->auditors)
            {
                if (strcmp(have->valuestring, auditor->valuestring) == 0)
                    found = true;
            }
            if (!found)
                return false;
        }
    }
    if (g->gpu_units > 0) {
        bool gpu = false;
        const cJSON *model;
        cJSON_ArrayForEach(model, g->gpu_models)
        {
            char prefix[256];
            const char *slash = strchr(model->valuestring, '/');
            if (slash != NULL)
                snprintf(prefix, sizeof(prefix), "capabilities/gpu/vendor/%.*s/model/%s",
                         (int)(slash - model->valuestring), model->valuestring, slash + 1);
            else
                snprintf(prefix, sizeof(prefix), "capabilities/gpu/vendor/%s/", model->valuestring);
            const cJSON *attr;
            cJSON_ArrayForEach(attr, p->attributes)
            {
                if (strncmp(attr->string, prefix, strlen(prefix)) == 0 &&
                    strcmp(attr->valuestring, "false") != 0)
                    gpu = true;
            }
        }
        if (!gpu)
            return false;
    }
    return mul_sat(p->price, g->units) <= g->max_price;
}

static int h_deployment_create(struct route_ctx *c)
{
    struct market *m = c->m;
    cJSON *root = body_json(c);
    if (root == NULL)
        return 0;
    const char *shape = "{\"data\": {\"sdl\": \"<SDL YAML>\", \"deposit\": <USD>}}";
    const cJSON *data = body_data(c, root, shape);
    if (data == NULL) {
        cJSON_Delete(root);
        return 0;
    }
    const cJSON *sdl_text = cJSON_GetObjectItemCaseSensitive(data, "sdl");
    const cJSON *deposit = cJSON_GetObjectItemCaseSensitive(data, "deposit");
    if (!cJSON_IsString(sdl_text) || sdl_text->valuestring[0] == '\0') {
        reply_error(c->r, 400, "data.sdl: expected the SDL YAML text as a string");
        cJSON_Delete(root);
        return 0;
    }
    if (!cJSON_IsNumber(deposit) || !isfinite(deposit->valuedouble) ||
        deposit->valuedouble < MIN_DEPOSIT_USD || deposit->valuedouble > MAX_USD) {
        reply_error(c->r, 400, "data.deposit: expected a number of USD from %.1f to %.0f",
                    MIN_DEPOSIT_USD, MAX_USD);
        cJSON_Delete(root);
        return 0;
    }
    struct sw_error err = {0};
    struct sdl *s = sdl_parse(sdl_text->valuestring, strlen(sdl_text->valuestring), &err);
    if (s == NULL) {
        reply_error(c->r, 400, "%s", err.msg);
        cJSON_Delete(root);
        return 0;
    }
    money_t amount = llround(deposit->valuedouble * (double)MICRO_PER_USD);
    int rc = -1;
    money_t balance = 0;
    int64_t last_dseq = 0;
    if (balance_get(m, &balance) < 0 || meta_get(m, "last_dseq", &last_dseq, NULL) < 0)
        goto out;
    if (amount > balance) {
        reply_error(c->r, 402,
                    "insufficient balance: the deposit is %.2f USD, the wallet holds "
                    "%.2f USD",
                    money_usd(amount), money_usd(balance));
        rc = 0;
        goto out;
    }
    int64_t dseq = c->now > last_dseq ? c->now : last_dseq + 1;
    int64_t height = height_at(m, c->now);
    unsigned char digest[32];
    char hash[SW_BASE64_ENCODED_LEN(sizeof(digest)) + 1];
    digest_bytes(0, s->manifest, digest, sizeof(digest));
    sw_base64_encode_to(digest, sizeof(digest), hash);
    char *env_json = cJSON_PrintUnformatted(s->env);
    if (q_run(m,
              "INSERT INTO deployments(dseq, state, hash, created_ms, created_height, sdl,"
              " manifest, env, escrow_state, funds, transferred, settled_height, deposit_first)"
              " VALUES(?, 'active', ?, ?, ?, ?, ?, ?, 'open', ?, 0, ?, ?)",
              "itiitttiii", dseq, hash, c->now, height, sdl_text->valuestring, s->manifest,
              env_json != NULL ? env_json : "{}", amount, height, amount) < 0) {
        cJSON_free(env_json);
        goto out;
    }
    cJSON_free(env_json);
    if (q_run(m, "INSERT INTO deposits(dseq, height, amount, source) VALUES(?, ?, ?, 'balance')",
              "iii", dseq, height, amount) < 0 ||
        balance_add(m, -amount) < 0 || meta_set(m, "last_dseq", dseq) < 0)
        goto out;
    size_t bidders = 0;
    for (size_t gi = 0; gi < s->group_count; gi++) {
        const struct sdl_group *g = &s->groups[gi];
        char *services = cJSON_PrintUnformatted(g->services);
        char *offer = cJSON_PrintUnformatted(g->offer);
        int irc = q_run(m,
                        "INSERT INTO dgroups(dseq, gseq, name, units, max_price, services, offer)"
                        " VALUES(?, ?, ?, ?, ?, ?, ?)",
                        "iitiitt", dseq, (int64_t)(gi + 1), g->name, g->units, g->max_price,
                        services, offer);
        cJSON_free(services);
        cJSON_free(offer);
        if (irc < 0)
            goto out;
        for (size_t pi = 0; pi < m->provider_count; pi++) {
            const struct mprovider *p = &m->providers[pi];
            if (!provider_matches(p, g))
                continue;
            if (timeline_add(m, c->now + p->bid_delay_ms, "bid", dseq, (int64_t)(gi + 1), 1,
                             p->owner) < 0)
                goto out;
            bidders++;
        }
    }
    if (timeline_add(m, c->now + m->unleased_ms, "unleased", dseq, 0, 0, NULL) < 0)
        goto out;

    char key[64];
    snprintf(key, sizeof(key), "tx/create/%" PRId64, dseq);
    unsigned char txd[32];
    char tx[72];
    digest_bytes(m->seed, key, txd, sizeof(txd));
    hex_upper(txd, sizeof(txd), tx);
    cJSON *out = cJSON_CreateObject();
    add_i64_string(out, "dseq", dseq);
    cJSON_AddStringToObject(out, "manifest", s->manifest);
    cJSON *sign = cJSON_AddObjectToObject(out, "signTx");
    cJSON_AddNumberToObject(sign, "code", 0);
    cJSON_AddStringToObject(sign, "transactionHash", tx);
    cJSON_AddStringToObject(sign, "rawLog", "[]");
    reply_data(c->r, 201, out);
    sw_log(SW_LOG_INFO, "market",
           "deployment %" PRId64 " created: %zu group(s), %zu provider bid(s) to come, deposit "
           "%.2f USD",
           dseq, s->group_count, bidders, money_usd(amount));
    rc = 0;
out:
    sdl_free(s);
    cJSON_Delete(root);
    return rc;
}

static int query_int(struct route_ctx *c, const char *name, int64_t dflt, int64_t min, int64_t max,
                     int64_t *out, bool *bad)
{
    char *text = sw_http_request_query_param(c->req, name);
    *out = dflt;
    if (text == NULL)
        return 0;
    uint64_t v;
    if (!parse_u64_text(text, &v) || (int64_t)v < min || (int64_t)v > max) {
        reply_error(c->r, 400,
                    "query parameter %s: expected an integer from %" PRId64 " to %" PRId64, name,
                    min, max);
        *bad = true;
    } else {
        *out = (int64_t)v;
    }
    free(text);
    return 0;
}

static int h_deployments_list(struct route_ctx *c)
{
    struct market *m = c->m;
    int64_t skip = 0;
    int64_t limit = DEFAULT_PAGE_LIMIT;
    bool bad = false;
    query_int(c, "skip", 0, 0, INT32_MAX, &skip, &bad);
    if (!bad)
        query_int(c, "limit", DEFAULT_PAGE_LIMIT, 1, MAX_PAGE_LIMIT, &limit, &bad);
    if (bad)
        return 0;
    int64_t total = 0;
    if (q_int(m, &total, NULL, "SELECT COUNT(*) FROM deployments WHERE state='active'", "") < 0)
        return -1;
    int64_t *list = NULL;
    size_t count = 0;
    sqlite3_stmt *st = q_bind(m,
                              "SELECT dseq FROM deployments WHERE state='active' ORDER BY dseq"
                              " LIMIT ? OFFSET ?",
                              "ii", limit, skip);
    int rc;
    while ((rc = q_step(m, st)) == 1) {
        list = sw_xrealloc(list, (count + 1) * sizeof(*list));
        list[count++] = sqlite3_column_int64(st, 0);
    }
    if (st != NULL)
        sqlite3_reset(st);
    cJSON *data = cJSON_CreateObject();
    cJSON *deps = cJSON_AddArrayToObject(data, "deployments");
    for (size_t i = 0; rc == 0 && i < count; i++) {
        struct dep d;
        bool found = false;
        cJSON *dj = NULL;
        if (dep_load(m, list[i], &d, &found) < 0 || (found && settle_to(m, &d, c->now) < 0) ||
            (found && dep_json(m, &d, false, &dj) < 0))
            rc = -1;
        else if (dj != NULL)
            cJSON_AddItemToArray(deps, dj);
    }
    free(list);
    if (rc < 0) {
        cJSON_Delete(data);
        return -1;
    }
    cJSON *page = cJSON_AddObjectToObject(data, "pagination");
    cJSON_AddNumberToObject(page, "total", (double)total);
    cJSON_AddNumberToObject(page, "skip", (double)skip);
    cJSON_AddNumberToObject(page, "limit", (double)limit);
    cJSON_AddBoolToObject(page, "hasMore", skip + (int64_t)count < total);
    reply_data(c->r, 200, data);
    return 0;
}

/* Loads the deployment named by the path, or replies 400/404 (found = false). */
static int path_deployment(struct route_ctx *c, struct dep *d, bool *found)
{
    int64_t dseq;
    *found = false;
    if (!parse_dseq(c->arg, &dseq)) {
        reply_error(c->r, 400, "dseq: expected a positive integer, got \"%.40s\"", c->arg);
        return 0;
    }
    if (dep_load(c->m, dseq, d, found) < 0)
        return -1;
    if (!*found)
        reply_error(c->r, 404, "deployment %" PRId64 " not found", dseq);
    return 0;
}

static int h_deployment_get(struct route_ctx *c)
{
    struct dep d;
    bool found;
    if (path_deployment(c, &d, &found) < 0)
        return -1;
    if (!found)
        return 0;
    cJSON *dj = NULL;
    if (settle_to(c->m, &d, c->now) < 0 || dep_json(c->m, &d, true, &dj) < 0)
        return -1;
    reply_data(c->r, 200, dj);
    return 0;
}

static int h_deployment_delete(struct route_ctx *c)
{
    struct dep d;
    bool found;
    if (path_deployment(c, &d, &found) < 0)
        return -1;
    if (!found)
        return 0;
    if (dep_active(&d)) {
        if (settle_to(c->m, &d, c->now) < 0)
            return -1;
        if (dep_active(&d) && dep_close(c->m, &d, c->now, height_at(c->m, c->now), "owner",
                                        "closed", "lease_closed_owner", "closed") < 0)
            return -1;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddBoolToObject(data, "success", true);
    reply_data(c->r, 200, data);
    return 0;
}

static int h_bids(struct route_ctx *c)
{
    struct market *m = c->m;
    char *text = sw_http_request_query_param(c->req, "dseq");
    int64_t dseq;
    bool ok = text != NULL && parse_dseq(text, &dseq);
    free(text);
    if (!ok) {
        reply_error(c->r, 400, "query parameter dseq: expected a positive integer");
        return 0;
    }
    cJSON *arr = cJSON_CreateArray();
    sqlite3_stmt *st = q_bind(m,
                              "SELECT b.gseq, b.oseq, b.provider, b.bseq, b.state, b.price,"
                              " b.created_height, g.offer FROM bids b LEFT JOIN dgroups g"
                              " ON g.dseq=b.dseq AND g.gseq=b.gseq WHERE b.dseq=?"
                              " ORDER BY b.created_ms, b.provider",
                              "i", dseq);
    int rc;
    while ((rc = q_step(m, st)) == 1) {
        const char *provider = (const char *)sqlite3_column_text(st, 2);
        const char *state = (const char *)sqlite3_column_text(st, 4);
        int64_t gseq = sqlite3_column_int64(st, 0);
        int64_t oseq = sqlite3_column_int64(st, 1);
        int64_t bseq = sqlite3_column_int64(st, 3);
        int64_t height = sqlite3_column_int64(st, 6);
        cJSON *item = cJSON_CreateObject();
        cJSON *bid = cJSON_AddObjectToObject(item, "bid");
        cJSON_AddItemToObject(bid, "id", lease_id_json(m, dseq, gseq, oseq, provider, bseq));
        cJSON_AddStringToObject(bid, "state", state);
        cJSON_AddItemToObject(bid, "price", deccoin(sqlite3_column_int64(st, 5)));
        add_i64_string(bid, "created_at", height);
        const char *offer = (const char *)sqlite3_column_text(st, 7);
        cJSON *offer_json = offer != NULL ? cJSON_Parse(offer) : NULL;
        cJSON_AddItemToObject(bid, "resources_offer",
                              offer_json != NULL ? offer_json : cJSON_CreateArray());
        cJSON *escrow = cJSON_AddObjectToObject(item, "escrow_account");
        cJSON *eid = cJSON_AddObjectToObject(escrow, "id");
        cJSON_AddStringToObject(eid, "scope", "bid");
        char xid[256];
        snprintf(xid, sizeof(xid), "%s/%" PRId64 "/%" PRId64 "/%" PRId64 "/%s/%" PRId64, m->owner,
                 dseq, gseq, oseq, provider, bseq);
        cJSON_AddStringToObject(eid, "xid", xid);
        cJSON *es = cJSON_AddObjectToObject(escrow, "state");
        cJSON_AddStringToObject(es, "owner", provider);
        bool open = strcmp(state, "open") == 0 || strcmp(state, "active") == 0;
        cJSON_AddStringToObject(es, "state", open ? "open" : "closed");
        cJSON *funds = cJSON_AddArrayToObject(es, "funds");
        cJSON_AddItemToArray(funds, deccoin(open ? BID_DEPOSIT_MICRO : 0));
        cJSON *transferred = cJSON_AddArrayToObject(es, "transferred");
        cJSON_AddItemToArray(transferred, deccoin(0));
        add_i64_string(es, "settled_at", height);
        cJSON_AddArrayToObject(es, "deposits");
        cJSON_AddItemToArray(arr, item);
    }
    if (st != NULL)
        sqlite3_reset(st);
    if (rc < 0) {
        cJSON_Delete(arr);
        return -1;
    }
    reply_data(c->r, 200, arr);
    return 0;
}

struct lease_spec {
    int64_t gseq;
    int64_t oseq;
    const char *provider;
    bool exists; /* already leased to this provider: only the manifest is re-sent */
    money_t price;
};

static int h_leases(struct route_ctx *c)
{
    struct market *m = c->m;
    cJSON *root = body_json(c);
    if (root == NULL)
        return 0;
    int rc = 0;
    struct lease_spec specs[MAX_LEASES_PER_REQUEST];
    size_t spec_count = 0;
    const cJSON *manifest = cJSON_GetObjectItemCaseSensitive(root, "manifest");
    const cJSON *leases = cJSON_GetObjectItemCaseSensitive(root, "leases");
    int64_t dseq = 0;
    if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "data")) && manifest == NULL) {
        reply_error(c->r, 400,
                    "POST /v1/leases takes an unwrapped body: {\"manifest\": ..., "
                    "\"leases\": [...]}");
        goto out;
    }
    if (!cJSON_IsString(manifest)) {
        reply_error(c->r, 400, "manifest: expected the manifest string returned at creation");
        goto out;
    }
    int n = cJSON_GetArraySize(leases);
    if (!cJSON_IsArray(leases) || n == 0 || n > MAX_LEASES_PER_REQUEST) {
        reply_error(c->r, 400, "leases: expected 1 to %d entries {dseq, gseq, oseq, provider}",
                    MAX_LEASES_PER_REQUEST);
        goto out;
    }
    const cJSON *spec;
    cJSON_ArrayForEach(spec, leases)
    {
        size_t i = spec_count;
        int64_t this_dseq;
        const cJSON *prov = cJSON_GetObjectItemCaseSensitive(spec, "provider");
        if (!cJSON_IsObject(spec) ||
            !json_dseq(cJSON_GetObjectItemCaseSensitive(spec, "dseq"), &this_dseq) ||
            !json_seq(cJSON_GetObjectItemCaseSensitive(spec, "gseq"), &specs[i].gseq) ||
            !json_seq(cJSON_GetObjectItemCaseSensitive(spec, "oseq"), &specs[i].oseq) ||
            !cJSON_IsString(prov) || prov->valuestring[0] == '\0') {
            reply_error(c->r, 400,
                        "leases[%zu]: expected {\"dseq\": \"<digits>\", \"gseq\": n, "
                        "\"oseq\": n, \"provider\": \"akash1...\"}",
                        i);
            goto out;
        }
        if (i > 0 && this_dseq != dseq) {
            reply_error(c->r, 400,
                        "leases[%zu]: every lease of one request must be for the "
                        "same dseq",
                        i);
            goto out;
        }
        dseq = this_dseq;
        specs[i].provider = prov->valuestring;
        specs[i].exists = false;
        for (size_t j = 0; j < i; j++) {
            if (specs[j].gseq == specs[i].gseq && specs[j].oseq == specs[i].oseq) {
                reply_error(c->r, 400, "leases[%zu]: order %" PRId64 "/%" PRId64 " appears twice",
                            i, specs[i].gseq, specs[i].oseq);
                goto out;
            }
        }
        spec_count++;
    }
    struct dep d;
    bool found = false;
    if (dep_load(m, dseq, &d, &found) < 0) {
        rc = -1;
        goto out;
    }
    if (!found) {
        reply_error(c->r, 404, "deployment %" PRId64 " not found", dseq);
        goto out;
    }
    /* Bring the escrow to now first: the lease's price counts from this block on. */
    if (settle_to(m, &d, c->now) < 0) {
        rc = -1;
        goto out;
    }
    char *stored = NULL;
    sqlite3_stmt *st = q_bind(m, "SELECT manifest FROM deployments WHERE dseq=?", "i", dseq);
    if (q_step(m, st) < 0) {
        rc = -1;
        goto out;
    }
    stored = col_text(st, 0);
    sqlite3_reset(st);
    bool same = stored != NULL && strcmp(stored, manifest->valuestring) == 0;
    free(stored);
    if (!same) {
        reply_error(c->r, 400,
                    "manifest: does not match the manifest of deployment %" PRId64
                    " (send it byte for byte as POST /v1/deployments returned it)",
                    dseq);
        goto out;
    }
    /* Validate every entry before changing anything: all or nothing. */
    size_t fresh = 0;
    for (size_t i = 0; i < spec_count; i++) {
        struct lease_spec *ls = &specs[i];
        sqlite3_stmt *q = q_bind(m,
                                 "SELECT provider, state FROM leases WHERE dseq=? AND gseq=? "
                                 "AND oseq=?",
                                 "iii", dseq, ls->gseq, ls->oseq);
        int qrc = q_step(m, q);
        if (qrc < 0) {
            rc = -1;
            goto out;
        }
        if (qrc == 1) {
            bool mine = strcmp((const char *)sqlite3_column_text(q, 0), ls->provider) == 0;
            char other[128];
            copy_text(other, sizeof(other), q, 0);
            sqlite3_reset(q);
            if (!mine) {
                reply_error(c->r, 409,
                            "order %" PRId64 "/%" PRId64 "/%" PRId64 " is already "
                            "leased to %s",
                            dseq, ls->gseq, ls->oseq, other);
                goto out;
            }
            ls->exists = true;
            continue;
        }
        sqlite3_reset(q);
        if (!dep_active(&d)) {
            reply_error(c->r, 400, "deployment %" PRId64 " is closed", dseq);
            goto out;
        }
        q = q_bind(m,
                   "SELECT state, price FROM bids WHERE dseq=? AND gseq=? AND oseq=? AND "
                   "provider=? AND bseq=0",
                   "iiit", dseq, ls->gseq, ls->oseq, ls->provider);
        qrc = q_step(m, q);
        if (qrc < 0) {
            rc = -1;
            goto out;
        }
        if (qrc == 0) {
            sqlite3_reset(q);
            reply_error(c->r, 400, "no bid from %s on order %" PRId64 "/%" PRId64 "/%" PRId64,
                        ls->provider, dseq, ls->gseq, ls->oseq);
            goto out;
        }
        char bid_state[16];
        copy_text(bid_state, sizeof(bid_state), q, 0);
        ls->price = sqlite3_column_int64(q, 1);
        sqlite3_reset(q);
        if (strcmp(bid_state, "open") != 0) {
            reply_error(c->r, 400,
                        "the bid of %s on order %" PRId64 "/%" PRId64 "/%" PRId64
                        " is %s, not open",
                        ls->provider, dseq, ls->gseq, ls->oseq, bid_state);
            goto out;
        }
        fresh++;
    }
    if (fresh > 0) {
        int64_t h = height_at(m, c->now);
        for (size_t i = 0; i < spec_count; i++) {
            struct lease_spec *ls = &specs[i];
            if (ls->exists)
                continue;
            if (q_run(m,
                      "UPDATE bids SET state='active' WHERE dseq=? AND gseq=? AND oseq=? AND "
                      "provider=? AND bseq=0",
                      "iiit", dseq, ls->gseq, ls->oseq, ls->provider) < 0 ||
                q_run(m,
                      "UPDATE bids SET state='lost', closed_ms=? WHERE dseq=? AND gseq=? AND "
                      "oseq=? AND state='open'",
                      "iiii", c->now, dseq, ls->gseq, ls->oseq) < 0 ||
                q_run(m,
                      "INSERT INTO leases(dseq, gseq, oseq, provider, bseq, state, price,"
                      " created_ms, created_height) VALUES(?, ?, ?, ?, 0, 'active', ?, ?, ?)",
                      "iiitiii", dseq, ls->gseq, ls->oseq, ls->provider, ls->price, c->now,
                      h) < 0) {
                rc = -1;
                goto out;
            }
            d.rate += ls->price;
            d.ever_leased = true;
            const struct mprovider *p = provider_find(m, ls->provider);
            if (p != NULL) {
                if (timeline_add(m, c->now + p->ready_delay_ms, "ready", dseq, ls->gseq, ls->oseq,
                                 ls->provider) < 0) {
                    rc = -1;
                    goto out;
                }
                if (p->closures_per_hour > 0) {
                    char key[256];
                    snprintf(key, sizeof(key), "closure/%" PRId64 "/%" PRId64 "/%" PRId64 "/%s",
                             dseq, ls->gseq, ls->oseq, ls->provider);
                    double u = unit_double(digest64(m->seed, key));
                    double after_ms = -log1p(-u) / p->closures_per_hour * 3600000.0;
                    if (after_ms < 1e15 &&
                        timeline_add(m, c->now + (int64_t)after_ms, "closure", dseq, ls->gseq,
                                     ls->oseq, ls->provider) < 0) {
                        rc = -1;
                        goto out;
                    }
                }
            }
            sw_log(SW_LOG_INFO, "market",
                   "deployment %" PRId64 ": lease %" PRId64 "/%" PRId64 " with %s at %.6f "
                   "uact/block (manifest delivered)",
                   dseq, ls->gseq, ls->oseq, ls->provider,
                   (double)ls->price / (double)MICRO_PER_UACT);
        }
        money_t balance = 0;
        if (balance_get(m, &balance) < 0) {
            rc = -1;
            goto out;
        }
        dep_compute_next(m, &d, balance);
        if (dep_save(m, &d) < 0) {
            rc = -1;
            goto out;
        }
    }
    cJSON *dj = NULL;
    if (dep_json(m, &d, true, &dj) < 0) {
        rc = -1;
        goto out;
    }
    reply_data(c->r, 200, dj);
out:
    cJSON_Delete(root);
    return rc;
}

static int h_providers(struct route_ctx *c)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < c->m->provider_count; i++)
        cJSON_AddItemToArray(arr, provider_json(&c->m->providers[i]));
    reply_json(c->r, 200, arr);
    return 0;
}

static int h_balances(struct route_ctx *c)
{
    struct market *m = c->m;
    money_t balance = 0;
    int64_t escrow = 0;
    if (settle_all(m, c->now) < 0 || balance_get(m, &balance) < 0 ||
        q_int(m, &escrow, NULL,
              "SELECT COALESCE(SUM(funds), 0) FROM deployments WHERE state='active'", "") < 0)
        return -1;
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "balance", money_usd(balance));
    cJSON_AddNumberToObject(data, "deployments", money_usd(escrow));
    cJSON_AddNumberToObject(data, "total", money_usd(balance + escrow));
    reply_data(c->r, 200, data);
    return 0;
}

static int h_deposit(struct route_ctx *c)
{
    struct market *m = c->m;
    cJSON *root = body_json(c);
    if (root == NULL)
        return 0;
    int rc = 0;
    const cJSON *data = body_data(c, root, "{\"data\": {\"dseq\": \"...\", \"deposit\": <USD>}}");
    if (data == NULL)
        goto out;
    int64_t dseq;
    const cJSON *deposit = cJSON_GetObjectItemCaseSensitive(data, "deposit");
    if (!json_dseq(cJSON_GetObjectItemCaseSensitive(data, "dseq"), &dseq)) {
        reply_error(c->r, 400, "data.dseq: expected the deployment's dseq as a string");
        goto out;
    }
    if (!cJSON_IsNumber(deposit) || !isfinite(deposit->valuedouble) || deposit->valuedouble <= 0 ||
        deposit->valuedouble > MAX_USD) {
        reply_error(c->r, 400, "data.deposit: expected a number of USD above 0");
        goto out;
    }
    struct dep d;
    bool found = false;
    if (dep_load(m, dseq, &d, &found) < 0) {
        rc = -1;
        goto out;
    }
    if (!found) {
        reply_error(c->r, 404, "deployment %" PRId64 " not found", dseq);
        goto out;
    }
    if (!dep_active(&d)) {
        reply_error(c->r, 400, "deployment %" PRId64 " is closed", dseq);
        goto out;
    }
    money_t amount = llround(deposit->valuedouble * (double)MICRO_PER_USD);
    money_t balance = 0;
    if (settle_to(m, &d, c->now) < 0 || balance_get(m, &balance) < 0) {
        rc = -1;
        goto out;
    }
    if (amount > balance) {
        reply_error(c->r, 402,
                    "insufficient balance: the deposit is %.2f USD, the wallet holds "
                    "%.2f USD",
                    money_usd(amount), money_usd(balance));
        goto out;
    }
    d.funds += amount;
    dep_compute_next(m, &d, balance - amount);
    cJSON *dj = NULL;
    if (balance_add(m, -amount) < 0 ||
        q_run(m, "INSERT INTO deposits(dseq, height, amount, source) VALUES(?, ?, ?, 'balance')",
              "iii", dseq, height_at(m, c->now), amount) < 0 ||
        dep_save(m, &d) < 0 || dep_json(m, &d, true, &dj) < 0) {
        rc = -1;
        goto out;
    }
    reply_data(c->r, 200, dj);
    sw_log(SW_LOG_INFO, "market", "deployment %" PRId64 ": deposit of %.2f USD", dseq,
           money_usd(amount));
out:
    cJSON_Delete(root);
    return rc;
}

static cJSON *settings_json(const struct dep *d)
{
    cJSON *o = cJSON_CreateObject();
    add_i64_string(o, "dseq", d->dseq);
    cJSON_AddBoolToObject(o, "autoTopUpEnabled", d->auto_top_up);
    return o;
}

static int h_settings(struct route_ctx *c)
{
    struct market *m = c->m;
    struct dep d;
    bool found = false;
    if (strcmp(c->method, "GET") == 0) {
        if (path_deployment(c, &d, &found) < 0)
            return -1;
        if (found)
            reply_data(c->r, 200, settings_json(&d));
        return 0;
    }
    cJSON *root = body_json(c);
    if (root == NULL)
        return 0;
    int rc = 0;
    int64_t dseq;
    const cJSON *data = body_data(c, root,
                                  "{\"data\": {\"dseq\": \"...\", \"autoTopUpEnabled\": "
                                  "true}}");
    const cJSON *enabled =
        data != NULL ? cJSON_GetObjectItemCaseSensitive(data, "autoTopUpEnabled") : NULL;
    if (data == NULL)
        goto out;
    if (!json_dseq(cJSON_GetObjectItemCaseSensitive(data, "dseq"), &dseq)) {
        reply_error(c->r, 400, "data.dseq: expected the deployment's dseq as a string");
        goto out;
    }
    if (!cJSON_IsBool(enabled)) {
        reply_error(c->r, 400, "data.autoTopUpEnabled: expected a boolean");
        goto out;
    }
    if (dep_load(m, dseq, &d, &found) < 0) {
        rc = -1;
        goto out;
    }
    if (!found) {
        reply_error(c->r, 404, "deployment %" PRId64 " not found", dseq);
        goto out;
    }
    money_t balance = 0;
    if (settle_to(m, &d, c->now) < 0 || balance_get(m, &balance) < 0) {
        rc = -1;
        goto out;
    }
    d.auto_top_up = cJSON_IsTrue(enabled);
    dep_compute_next(m, &d, balance);
    if (dep_save(m, &d) < 0) {
        rc = -1;
        goto out;
    }
    reply_data(c->r, 200, settings_json(&d));
out:
    cJSON_Delete(root);
    return rc;
}

static int parse_faults(const cJSON *obj, struct faults *f, char *why, size_t why_len)
{
    struct faults next = *f;
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        const char *k = item->string;
        int64_t *ms = strcmp(k, "latency_ms") == 0         ? &next.latency_ms
                      : strcmp(k, "latency_spike_ms") == 0 ? &next.latency_spike_ms
                                                           : NULL;
        double *rate = strcmp(k, "latency_spike_rate") == 0 ? &next.latency_spike_rate
                       : strcmp(k, "rate_429") == 0         ? &next.rate_429
                       : strcmp(k, "rate_5xx") == 0         ? &next.rate_5xx
                       : strcmp(k, "rate_malformed") == 0   ? &next.rate_malformed
                       : strcmp(k, "rate_drop") == 0        ? &next.rate_drop
                                                            : NULL;
        if (ms != NULL) {
            if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble > 600000) {
                snprintf(why, why_len, "%s: expected milliseconds from 0 to 600000", k);
                return -1;
            }
            *ms = (int64_t)item->valuedouble;
        } else if (rate != NULL) {
            if (!cJSON_IsNumber(item) || !(item->valuedouble >= 0) || item->valuedouble > 1) {
                snprintf(why, why_len, "%s: expected a probability from 0 to 1", k);
                return -1;
            }
            *rate = item->valuedouble;
        } else {
            snprintf(why, why_len, "unknown fault \"%.40s\"", k);
            return -1;
        }
    }
    *f = next;
    return 0;
}

static int h_faults(struct route_ctx *c)
{
    struct market *m = c->m;
    if (strcmp(c->method, "POST") == 0) {
        cJSON *root = body_json(c);
        if (root == NULL)
            return 0;
        const cJSON *obj = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "data"))
                               ? cJSON_GetObjectItemCaseSensitive(root, "data")
                               : root;
        char why[128];
        if (!cJSON_IsObject(obj) || parse_faults(obj, &m->faults, why, sizeof(why)) < 0) {
            reply_error(c->r, 400, "%s", cJSON_IsObject(obj) ? why : "expected a JSON object");
            cJSON_Delete(root);
            return 0;
        }
        cJSON_Delete(root);
        sw_log(SW_LOG_INFO, "market",
               "faults: latency %" PRId64 " ms (+%" PRId64 " ms at %.2f), 429 %.2f, 5xx %.2f, "
               "malformed %.2f, drop %.2f",
               m->faults.latency_ms, m->faults.latency_spike_ms, m->faults.latency_spike_rate,
               m->faults.rate_429, m->faults.rate_5xx, m->faults.rate_malformed,
               m->faults.rate_drop);
    }
    reply_data(c->r, 200, faults_json(&m->faults));
    return 0;
}

static int state_deployment_json(struct market *m, const struct dep *d, cJSON **out)
{
    cJSON *o = cJSON_CreateObject();
    char text[48];
    *out = NULL;
    add_i64_string(o, "dseq", d->dseq);
    cJSON_AddStringToObject(o, "state", d->state);
    if (d->close_cause[0] != '\0')
        cJSON_AddStringToObject(o, "close_cause", d->close_cause);
    else
        cJSON_AddNullToObject(o, "close_cause");
    cJSON_AddNumberToObject(o, "created_ms", (double)d->created_ms);
    if (d->closed_ms >= 0)
        cJSON_AddNumberToObject(o, "closed_ms", (double)d->closed_ms);
    else
        cJSON_AddNullToObject(o, "closed_ms");
    cJSON_AddStringToObject(o, "escrow_state", d->escrow_state);
    money_text(d->funds, text, sizeof(text));
    cJSON_AddStringToObject(o, "funds_uact", text);
    money_text(d->transferred, text, sizeof(text));
    cJSON_AddStringToObject(o, "transferred_uact", text);
    money_text(d->rate, text, sizeof(text));
    cJSON_AddStringToObject(o, "rate_uact_per_block", text);
    cJSON_AddBoolToObject(o, "auto_top_up", d->auto_top_up);
    sqlite3_stmt *st = q_bind(m, "SELECT env FROM deployments WHERE dseq=?", "i", d->dseq);
    int rc = q_step(m, st);
    if (rc == 1) {
        const char *env = (const char *)sqlite3_column_text(st, 0);
        cJSON *ej = env != NULL ? cJSON_Parse(env) : NULL;
        cJSON_AddItemToObject(o, "env", ej != NULL ? ej : cJSON_CreateObject());
    }
    if (st != NULL)
        sqlite3_reset(st);
    cJSON *groups = cJSON_AddArrayToObject(o, "groups");
    st = q_bind(m, "SELECT gseq, name, units, max_price FROM dgroups WHERE dseq=? ORDER BY gseq",
                "i", d->dseq);
    while (rc >= 0 && (rc = q_step(m, st)) == 1) {
        cJSON *g = cJSON_CreateObject();
        cJSON_AddNumberToObject(g, "gseq", (double)sqlite3_column_int64(st, 0));
        cJSON_AddStringToObject(g, "name", (const char *)sqlite3_column_text(st, 1));
        cJSON_AddNumberToObject(g, "units", (double)sqlite3_column_int64(st, 2));
        money_text(sqlite3_column_int64(st, 3), text, sizeof(text));
        cJSON_AddStringToObject(g, "max_price_uact", text);
        cJSON_AddItemToArray(groups, g);
    }
    if (st != NULL)
        sqlite3_reset(st);
    cJSON *bids = cJSON_AddArrayToObject(o, "bids");
    st = q_bind(m,
                "SELECT gseq, oseq, provider, state, price FROM bids WHERE dseq=? "
                "ORDER BY created_ms, provider",
                "i", d->dseq);
    while (rc >= 0 && (rc = q_step(m, st)) == 1) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddNumberToObject(b, "gseq", (double)sqlite3_column_int64(st, 0));
        cJSON_AddNumberToObject(b, "oseq", (double)sqlite3_column_int64(st, 1));
        cJSON_AddStringToObject(b, "provider", (const char *)sqlite3_column_text(st, 2));
        cJSON_AddStringToObject(b, "state", (const char *)sqlite3_column_text(st, 3));
        money_text(sqlite3_column_int64(st, 4), text, sizeof(text));
        cJSON_AddStringToObject(b, "price_uact", text);
        cJSON_AddItemToArray(bids, b);
    }
    if (st != NULL)
        sqlite3_reset(st);
    cJSON *leases = cJSON_AddArrayToObject(o, "leases");
    st = q_bind(m,
                "SELECT gseq, oseq, provider, state, reason, price, created_ms, ready_ms,"
                " closed_ms FROM leases WHERE dseq=? ORDER BY gseq, oseq, created_ms",
                "i", d->dseq);
    while (rc >= 0 && (rc = q_step(m, st)) == 1) {
        cJSON *l = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "gseq", (double)sqlite3_column_int64(st, 0));
        cJSON_AddNumberToObject(l, "oseq", (double)sqlite3_column_int64(st, 1));
        cJSON_AddStringToObject(l, "provider", (const char *)sqlite3_column_text(st, 2));
        cJSON_AddStringToObject(l, "state", (const char *)sqlite3_column_text(st, 3));
        if (sqlite3_column_type(st, 4) == SQLITE_NULL)
            cJSON_AddNullToObject(l, "reason");
        else
            cJSON_AddStringToObject(l, "reason", (const char *)sqlite3_column_text(st, 4));
        money_text(sqlite3_column_int64(st, 5), text, sizeof(text));
        cJSON_AddStringToObject(l, "price_uact", text);
        cJSON_AddNumberToObject(l, "created_ms", (double)sqlite3_column_int64(st, 6));
        for (int col = 7; col <= 8; col++) {
            const char *key = col == 7 ? "ready_ms" : "closed_ms";
            if (sqlite3_column_type(st, col) == SQLITE_NULL)
                cJSON_AddNullToObject(l, key);
            else
                cJSON_AddNumberToObject(l, key, (double)sqlite3_column_int64(st, col));
        }
        cJSON_AddItemToArray(leases, l);
    }
    if (st != NULL)
        sqlite3_reset(st);
    if (rc < 0) {
        cJSON_Delete(o);
        return -1;
    }
    *out = o;
    return 0;
}

static int h_state(struct route_ctx *c)
{
    struct market *m = c->m;
    char *active_param = sw_http_request_query_param(c->req, "active");
    bool only_active = active_param != NULL && strcmp(active_param, "0") != 0 &&
                       strcmp(active_param, "false") != 0;
    free(active_param);
    money_t balance = 0;
    if (settle_all(m, c->now) < 0 || balance_get(m, &balance) < 0)
        return -1;
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "now_ms", (double)c->now);
    add_i64_string(data, "height", height_at(m, c->now));
    cJSON_AddStringToObject(data, "owner", m->owner);
    cJSON_AddNumberToObject(data, "balance", money_usd(balance));
    cJSON_AddNumberToObject(data, "speed", m->speed);
    cJSON_AddNumberToObject(data, "block_ms", (double)m->block_ms);
    int64_t counts[4] = {0};
    static const char *const count_sql[4] = {
        "SELECT COUNT(*) FROM deployments",
        "SELECT COUNT(*) FROM deployments WHERE state='active'",
        "SELECT COUNT(*) FROM leases WHERE state='active'",
        "SELECT COUNT(*) FROM bids WHERE state='open'",
    };
    static const char *const count_names[4] = {"deployments", "deployments_active", "leases_active",
                                               "bids_open"};
    cJSON *cj = cJSON_AddObjectToObject(data, "counts");
    for (int i = 0; i < 4; i++) {
        if (q_int(m, &counts[i], NULL, count_sql[i], "") < 0) {
            cJSON_Delete(data);
            return -1;
        }
        cJSON_AddNumberToObject(cj, count_names[i], (double)counts[i]);
    }
    cJSON *deps = cJSON_AddArrayToObject(data, "deployments");
    int64_t *list = NULL;
    size_t count = 0;
    sqlite3_stmt *st = q_bind(m,
                              "SELECT dseq FROM deployments WHERE state='active' OR ?=0"
                              " ORDER BY dseq",
                              "i", (int64_t)only_active);
    int rc;
    while ((rc = q_step(m, st)) == 1) {
        list = sw_xrealloc(list, (count + 1) * sizeof(*list));
        list[count++] = sqlite3_column_int64(st, 0);
    }
    if (st != NULL)
        sqlite3_reset(st);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        struct dep d;
        bool found = false;
        cJSON *dj = NULL;
        if (dep_load(m, list[i], &d, &found) < 0 ||
            (found && state_deployment_json(m, &d, &dj) < 0))
            rc = -1;
        else if (dj != NULL)
            cJSON_AddItemToArray(deps, dj);
    }
    free(list);
    cJSON *provs = cJSON_AddArrayToObject(data, "providers");
    for (size_t i = 0; rc == 0 && i < m->provider_count; i++) {
        const struct mprovider *p = &m->providers[i];
        int64_t leases = 0;
        int64_t reserved = 0;
        if (q_int(m, &leases, NULL,
                  "SELECT COUNT(*) FROM leases WHERE provider=? AND state='active'", "t",
                  p->owner) < 0 ||
            provider_reserved(m, p->owner, &reserved) < 0) {
            rc = -1;
            break;
        }
        cJSON *pj = cJSON_CreateObject();
        cJSON_AddStringToObject(pj, "owner", p->owner);
        cJSON_AddBoolToObject(pj, "online", p->online);
        cJSON_AddNumberToObject(pj, "capacity", (double)p->capacity);
        cJSON_AddNumberToObject(pj, "leases_active", (double)leases);
        cJSON_AddNumberToObject(pj, "bids_open", (double)(reserved - leases));
        cJSON_AddItemToArray(provs, pj);
    }
    if (rc < 0) {
        cJSON_Delete(data);
        return -1;
    }
    cJSON *req = cJSON_AddObjectToObject(data, "requests");
    cJSON_AddNumberToObject(req, "total", (double)m->stats.requests);
    cJSON_AddNumberToObject(req, "injected_429", (double)m->stats.injected_429);
    cJSON_AddNumberToObject(req, "injected_5xx", (double)m->stats.injected_5xx);
    cJSON_AddNumberToObject(req, "injected_malformed", (double)m->stats.injected_malformed);
    cJSON_AddNumberToObject(req, "injected_drop", (double)m->stats.injected_drop);
    cJSON_AddNumberToObject(req, "delayed", (double)m->stats.delayed);
    cJSON_AddItemToObject(data, "faults", faults_json(&m->faults));
    reply_data(c->r, 200, data);
    return 0;
}

static int h_provider_action(struct route_ctx *c)
{
    struct market *m = c->m;
    struct mprovider *p = provider_find(m, c->arg);
    if (p == NULL) {
        reply_error(c->r, 404, "provider %.80s not found", c->arg);
        return 0;
    }
    if (strcmp(c->action, "offline") == 0 || strcmp(c->action, "online") == 0) {
        p->online = strcmp(c->action, "online") == 0;
        sw_log(SW_LOG_INFO, "market", "provider %s is now %s", p->owner, c->action);
        cJSON *data = cJSON_CreateObject();
        cJSON_AddStringToObject(data, "provider", p->owner);
        cJSON_AddBoolToObject(data, "isOnline", p->online);
        reply_data(c->r, 200, data);
        return 0;
    }
    /* close-all, with an optional {"reason": "..."} (default: unstable). */
    char reason[80] = "lease_closed_reason_unstable";
    int64_t only_dseq = 0; /* ml: 0 = every deployment */
    if (c->req->body_len > 0) {
        cJSON *root = body_json(c);
        if (root == NULL)
            return 0;
        const cJSON *given = cJSON_GetObjectItemCaseSensitive(root, "reason");
        if (given != NULL && (!cJSON_IsString(given) || given->valuestring[0] == '\0' ||
                              strlen(given->valuestring) >= sizeof(reason))) {
            cJSON_Delete(root);
            reply_error(c->r, 400,
                        "reason: expected a short string such as "
                        "lease_closed_reason_unstable");
            return 0;
        }
        if (given != NULL)
            snprintf(reason, sizeof(reason), "%s", given->valuestring);
        /* ml: {"dseq": "..."} closes only that deployment's lease(s) with this provider, so a
         * test can lose one unit of several (an ML gang's worker) rather than all of them. */
        const cJSON *only = cJSON_GetObjectItemCaseSensitive(root, "dseq");
        if (only != NULL && !json_dseq(only, &only_dseq)) {
            cJSON_Delete(root);
            reply_error(c->r, 400, "dseq: expected a deployment sequence such as \"1000001\"");
            return 0;
        }
        cJSON_Delete(root);
    }
    struct key {
        int64_t dseq, gseq, oseq;
    } *keys = NULL;
    size_t count = 0;
    sqlite3_stmt *st = q_bind(m,
                              "SELECT dseq, gseq, oseq FROM leases WHERE provider=? AND "
                              "state='active' ORDER BY dseq",
                              "t", p->owner);
    int rc;
    while ((rc = q_step(m, st)) == 1) {
        keys = sw_xrealloc(keys, (count + 1) * sizeof(*keys));
        keys[count].dseq = sqlite3_column_int64(st, 0);
        keys[count].gseq = sqlite3_column_int64(st, 1);
        keys[count].oseq = sqlite3_column_int64(st, 2);
        count++;
    }
    if (st != NULL)
        sqlite3_reset(st);
    int64_t closed_count = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        bool closed = false;
        if (only_dseq > 0 && keys[i].dseq != only_dseq)
            continue;
        if (lease_close_one(m, keys[i].dseq, keys[i].gseq, keys[i].oseq, p->owner, c->now, reason,
                            &closed) < 0)
            rc = -1;
        closed_count += closed;
    }
    free(keys);
    if (rc < 0)
        return -1;
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "provider", p->owner);
    cJSON_AddNumberToObject(data, "closed", (double)closed_count);
    cJSON_AddStringToObject(data, "reason", reason);
    reply_data(c->r, 200, data);
    return 0;
}

/* ---- routing -------------------------------------------------------------------------------- */

enum route_flags {
    ROUTE_AUTH = 1,  /* needs x-api-key */
    ROUTE_ADMIN = 2, /* /_steward/...: never subject to injected faults */
    ROUTE_DB = 4,    /* runs in a transaction after advancing the marketplace */
};

struct route {
    const char *pattern; /* "*" matches one path segment */
    const char *methods; /* for Allow and 405 */
    int flags;
    int (*get)(struct route_ctx *c);
    int (*post)(struct route_ctx *c);
    int (*del)(struct route_ctx *c);
};

static const struct route routes[] = {
    {"/v1/deployments", "GET, POST", ROUTE_AUTH | ROUTE_DB, h_deployments_list, h_deployment_create,
     NULL},
    {"/v1/deployments/*", "GET, DELETE", ROUTE_AUTH | ROUTE_DB, h_deployment_get, NULL,
     h_deployment_delete},
    {"/v1/bids", "GET", ROUTE_AUTH | ROUTE_DB, h_bids, NULL, NULL},
    {"/v1/leases", "POST", ROUTE_AUTH | ROUTE_DB, NULL, h_leases, NULL},
    {"/v1/providers", "GET", 0, h_providers, NULL, NULL},
    {"/v1/balances", "GET", ROUTE_AUTH | ROUTE_DB, h_balances, NULL, NULL},
    {"/v1/deposit-deployment", "POST", ROUTE_AUTH | ROUTE_DB, NULL, h_deposit, NULL},
    {"/v2/deployment-settings", "POST", ROUTE_AUTH | ROUTE_DB, NULL, h_settings, NULL},
    {"/v2/deployment-settings/*", "GET", ROUTE_AUTH | ROUTE_DB, h_settings, NULL, NULL},
    {"/_steward/faults", "GET, POST", ROUTE_AUTH | ROUTE_ADMIN, h_faults, h_faults, NULL},
    {"/_steward/state", "GET", ROUTE_AUTH | ROUTE_ADMIN | ROUTE_DB, h_state, NULL, NULL},
    {"/_steward/providers/*/close-all", "POST", ROUTE_AUTH | ROUTE_ADMIN | ROUTE_DB, NULL,
     h_provider_action, NULL},
    {"/_steward/providers/*/offline", "POST", ROUTE_AUTH | ROUTE_ADMIN, NULL, h_provider_action,
     NULL},
    {"/_steward/providers/*/online", "POST", ROUTE_AUTH | ROUTE_ADMIN, NULL, h_provider_action,
     NULL},
};

/* Matches path against pattern; the "*" segment (non-empty, no '/') goes to *arg (owned). */
static bool route_match(const char *pattern, const char *path, char **arg)
{
    *arg = NULL;
    const char *p = pattern;
    const char *s = path;
    while (*p != '\0') {
        if (*p == '*') {
            size_t n = strcspn(s, "/");
            if (n == 0 || n > 256)
                return false;
            *arg = sw_xstrndup(s, n);
            s += n;
            p++;
            continue;
        }
        if (*p != *s) {
            free(*arg);
            *arg = NULL;
            return false;
        }
        p++;
        s++;
    }
    if (*s != '\0') {
        free(*arg);
        *arg = NULL;
        return false;
    }
    return true;
}

/* ---- faults and delivery -------------------------------------------------------------------- */

struct fault_draw {
    int64_t latency_ms;
    int status; /* injected 429 or 5xx, or 0 */
    bool drop;
    bool malformed;
    bool truncate; /* malformed: cut the body short (else: an HTML error page) */
};

/* A fixed number of draws per request whatever the rates are, so one seed replays the same
 * fault sequence. */
static void fault_draw(struct market *m, struct fault_draw *fd)
{
    memset(fd, 0, sizeof(*fd));
    const struct faults *f = &m->faults;
    double spike = unit_double(splitmix64(&m->fault_rng));
    double r429 = unit_double(splitmix64(&m->fault_rng));
    double r5xx = unit_double(splitmix64(&m->fault_rng));
    uint64_t which5xx = splitmix64(&m->fault_rng);
    double rdrop = unit_double(splitmix64(&m->fault_rng));
    double rmal = unit_double(splitmix64(&m->fault_rng));
    uint64_t how = splitmix64(&m->fault_rng);
    fd->latency_ms = f->latency_ms + (spike < f->latency_spike_rate ? f->latency_spike_ms : 0);
    if (r429 < f->rate_429) {
        fd->status = 429;
    } else if (r5xx < f->rate_5xx) {
        static const int codes[] = {500, 502, 503};
        fd->status = codes[which5xx % 3];
    } else if (rdrop < f->rate_drop) {
        fd->drop = true;
    } else if (rmal < f->rate_malformed) {
        fd->malformed = true;
        fd->truncate = (how & 1) == 0;
    }
}

static void mangle(struct reply *r, bool truncate)
{
    if (truncate && r->len >= 2) {
        r->len /= 2;
        r->body[r->len] = '\0';
        return;
    }
    free(r->body);
    r->body = sw_xstrdup("<html><head><title>502 Bad Gateway</title></head><body><center>"
                         "<h1>502 Bad Gateway</h1></center></body></html>\n");
    r->len = strlen(r->body);
    r->content_type = "text/html";
}

struct delayed {
    struct delayed *prev;
    struct delayed *next;
    struct market *m;
    struct sw_http_exchange *ex;
    struct reply r;
    uint64_t timer;
};

static void deliver_now(struct sw_http_exchange *ex, struct reply *r)
{
    if (r->drop)
        sw_http_exchange_drop(ex);
    else
        sw_http_respond(ex, r->status, r->content_type, (const char *const *)r->headers,
                        r->header_count, r->body, r->len);
    reply_clear(r);
}

static void delayed_unlink(struct market *m, struct delayed *dl)
{
    if (dl->prev != NULL)
        dl->prev->next = dl->next;
    else
        m->delayed = dl->next;
    if (dl->next != NULL)
        dl->next->prev = dl->prev;
}

static void on_delayed(void *ud)
{
    struct delayed *dl = ud;
    delayed_unlink(dl->m, dl);
    deliver_now(dl->ex, &dl->r);
    free(dl);
}

static void deliver(struct market *m, struct sw_http_exchange *ex, struct reply *r,
                    int64_t delay_ms)
{
    if (delay_ms <= 0) {
        deliver_now(ex, r);
        return;
    }
    struct delayed *dl = sw_xcalloc(1, sizeof(*dl));
    dl->m = m;
    dl->ex = ex;
    dl->r = *r;
    memset(r, 0, sizeof(*r));
    dl->timer = sw_clock_timer_start(m->net_clock, (uint64_t)delay_ms, on_delayed, dl);
    if (dl->timer == 0) {
        deliver_now(ex, &dl->r);
        free(dl);
        return;
    }
    dl->next = m->delayed;
    if (m->delayed != NULL)
        m->delayed->prev = dl;
    m->delayed = dl;
    m->stats.delayed++;
}

static void delayed_cancel_all(struct market *m)
{
    while (m->delayed != NULL) {
        struct delayed *dl = m->delayed;
        delayed_unlink(m, dl);
        sw_clock_timer_stop(m->net_clock, dl->timer);
        reply_clear(&dl->r);
        free(dl); /* the exchange is dropped by sw_http_server_close */
    }
}

/* Constant time in the length of the expected key: the comparison leaks no prefix. */
static bool auth_ok(const struct market *m, const struct sw_http_request *req)
{
    const char *given = sw_http_request_header(req, "x-api-key");
    if (given == NULL)
        return false;
    size_t expected_len = strlen(m->api_key);
    size_t given_len = strlen(given);
    unsigned diff = given_len != expected_len;
    for (size_t i = 0; i < expected_len; i++)
        diff |= (unsigned char)m->api_key[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
    return diff == 0;
}

static void on_request(void *ud, struct sw_http_exchange *ex, const struct sw_http_request *req)
{
    struct market *m = ud;
    struct reply r = {0};
    struct fault_draw fd = {0};
    char *arg = NULL;
    const struct route *rt = NULL;
    m->stats.requests++;
    if (m->stopping) {
        sw_http_exchange_drop(ex);
        return;
    }
    for (size_t i = 0; i < SW_ARRAY_LEN(routes) && rt == NULL; i++)
        if (route_match(routes[i].pattern, req->path, &arg))
            rt = &routes[i];
    if (rt == NULL) {
        reply_error(&r, 404, "no route %.200s", req->path);
        goto send;
    }
    const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
    int (*fn)(struct route_ctx *) = strcmp(method, "GET") == 0      ? rt->get
                                    : strcmp(method, "POST") == 0   ? rt->post
                                    : strcmp(method, "DELETE") == 0 ? rt->del
                                                                    : NULL;
    if (fn == NULL) {
        char allow[64];
        snprintf(allow, sizeof(allow), "Allow: %s", rt->methods);
        reply_error(&r, 405, "%s is not allowed on %.200s (allowed: %s)", req->method, req->path,
                    rt->methods);
        reply_header(&r, allow);
        goto send;
    }
    if (!(rt->flags & ROUTE_ADMIN))
        fault_draw(m, &fd);
    if (fd.status == 429) {
        m->stats.injected_429++;
        reply_error(&r, 429, "rate limit exceeded (injected)");
        reply_header(&r, "Retry-After: 1");
        goto send;
    }
    if (fd.status != 0) {
        m->stats.injected_5xx++;
        reply_error(&r, fd.status, "upstream failure (injected)");
        goto send;
    }
    if (req->body_len > APP_MAX_BODY) {
        reply_error(&r, 413, "request body larger than %d bytes", APP_MAX_BODY);
        goto send;
    }
    if ((rt->flags & ROUTE_AUTH) && !auth_ok(m, req)) {
        reply_error(&r, 401, "missing or invalid x-api-key");
        goto send;
    }
    const char *action = NULL;
    if (strncmp(rt->pattern, "/_steward/providers/", 20) == 0)
        action = strrchr(rt->pattern, '/') + 1;
    struct route_ctx c = {.m = m,
                          .req = req,
                          .method = method,
                          .r = &r,
                          .arg = arg,
                          .action = action,
                          .now = market_now(m)};
    if (rt->flags & ROUTE_DB) {
        if (tx_begin(m) < 0 || advance(m, c.now) < 0 || fn(&c) < 0 || tx_commit(m, c.now) < 0) {
            tx_rollback(m);
            sw_log(SW_LOG_ERROR, "market", "%s %s: state store: %s", req->method, req->path,
                   m->db_error);
            reply_clear(&r);
            reply_error(&r, 500, "state store error");
        }
        rearm(m);
    } else if (fn(&c) < 0) {
        reply_clear(&r);
        reply_error(&r, 500, "internal error");
    }
    if (r.status == 0)
        reply_error(&r, 500, "no response");
    if (fd.drop) {
        m->stats.injected_drop++;
        r.drop = true;
    } else if (fd.malformed) {
        m->stats.injected_malformed++;
        mangle(&r, fd.truncate);
    }
send:
    free(arg);
    sw_log(SW_LOG_DEBUG, "market", "%s %s -> %d%s", req->method, req->path, r.status,
           r.drop ? " (dropped)" : "");
    deliver(m, ex, &r, fd.latency_ms);
}

/* ---- command line --------------------------------------------------------------------------- */

static void usage_serve(FILE *out)
{
    fprintf(
        out,
        "usage: steward market serve --listen HOST:PORT --state FILE.db --providers FILE.json\n"
        "                            [options]\n"
        "\n"
        "Serve the Akash Console managed-wallet API (docs/marketplace.md) on HOST:PORT from\n"
        "a local simulated marketplace. Clients authenticate with the header x-api-key, whose\n"
        "accepted value is read from an environment variable.\n"
        "\n"
        "  --listen HOST:PORT        address to listen on (port 0: any free port)\n"
        "  --state FILE              SQLite state file (created if missing; reused on restart)\n"
        "  --providers FILE          providers JSON (format: plugins/market_sim/market_sim.c)\n"
        "  --api-key-env NAME        variable holding the API key (default %s)\n"
        "  --balance USD             starting wallet balance of a new state (default 1000)\n"
        "  --owner ADDRESS           the wallet address shown as owner\n"
        "  --speed N                 compress marketplace time N-fold (default 1)\n"
        "  --seed N                  seed of every random draw (default 1)\n"
        "  --block-time DURATION     block interval (default 6s)\n"
        "  --bid-ttl DURATION        open bids close after this (default 5m)\n"
        "  --unleased-timeout DUR    deployments without a lease close after this (default 10m)\n"
        "  --port-file FILE          write the bound port there once listening\n"
        "fault injection (all off by default; POST /_steward/faults changes them at runtime):\n"
        "  --latency-ms MS           added to every response (wall clock)\n"
        "  --latency-spike-ms MS     extra latency ...\n"
        "  --latency-spike-rate P    ... with this probability\n"
        "  --rate-429 P              answer 429 with Retry-After, request not applied\n"
        "  --rate-5xx P              answer 500/502/503, request not applied\n"
        "  --rate-malformed P        apply, then answer a truncated or non-JSON body\n"
        "  --rate-drop P             apply, then close the connection without answering\n"
        "  --log-level L, --log-format F   as for steward run\n",
        DEFAULT_API_KEY_ENV);
}

enum {
    OPT_LISTEN = 256,
    OPT_STATE,
    OPT_PROVIDERS,
    OPT_KEY_ENV,
    OPT_BALANCE,
    OPT_OWNER,
    OPT_SPEED,
    OPT_SEED,
    OPT_BLOCK,
    OPT_BID_TTL,
    OPT_UNLEASED,
    OPT_PORT_FILE,
    OPT_LATENCY,
    OPT_SPIKE_MS,
    OPT_SPIKE_RATE,
    OPT_429,
    OPT_5XX,
    OPT_MALFORMED,
    OPT_DROP,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
    OPT_HELP,
};

static const struct option serve_options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"state", required_argument, NULL, OPT_STATE},
    {"providers", required_argument, NULL, OPT_PROVIDERS},
    {"api-key-env", required_argument, NULL, OPT_KEY_ENV},
    {"balance", required_argument, NULL, OPT_BALANCE},
    {"owner", required_argument, NULL, OPT_OWNER},
    {"speed", required_argument, NULL, OPT_SPEED},
    {"seed", required_argument, NULL, OPT_SEED},
    {"block-time", required_argument, NULL, OPT_BLOCK},
    {"bid-ttl", required_argument, NULL, OPT_BID_TTL},
    {"unleased-timeout", required_argument, NULL, OPT_UNLEASED},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"latency-ms", required_argument, NULL, OPT_LATENCY},
    {"latency-spike-ms", required_argument, NULL, OPT_SPIKE_MS},
    {"latency-spike-rate", required_argument, NULL, OPT_SPIKE_RATE},
    {"rate-429", required_argument, NULL, OPT_429},
    {"rate-5xx", required_argument, NULL, OPT_5XX},
    {"rate-malformed", required_argument, NULL, OPT_MALFORMED},
    {"rate-drop", required_argument, NULL, OPT_DROP},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct serve_opts {
    const char *listen;
    const char *state;
    const char *providers;
    const char *key_env;
    const char *owner;
    const char *port_file;
    const char *log_level;
    const char *log_format;
    double balance;
    double speed;
    uint64_t seed;
    int64_t block_ms;
    int64_t bid_ttl_ms;
    int64_t unleased_ms;
    bool block_ms_given;
    struct faults faults;
    bool help;
};

static bool parse_number(const char *text, double min, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !isfinite(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("steward market serve: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

static int parse_serve_args(int argc, char **argv, struct serve_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->key_env = DEFAULT_API_KEY_ENV;
    o->owner = DEFAULT_OWNER;
    o->balance = DEFAULT_BALANCE_USD;
    o->speed = 1;
    o->seed = 1;
    o->block_ms = DEFAULT_BLOCK_MS;
    o->bid_ttl_ms = DEFAULT_BID_TTL_MS;
    o->unleased_ms = DEFAULT_UNLEASED_MS;
    optind = 1;
    opterr = 0;
    int ch;
    int longindex = 0;
    while ((ch = getopt_long(argc, argv, "h", serve_options, &longindex)) != -1) {
        const char *name = ch >= OPT_LISTEN ? serve_options[longindex].name : "?";
        double v;
        int64_t ms;
        switch (ch) {
        case OPT_LISTEN:
            o->listen = optarg;
            break;
        case OPT_STATE:
            o->state = optarg;
            break;
        case OPT_PROVIDERS:
            o->providers = optarg;
            break;
        case OPT_KEY_ENV:
            o->key_env = optarg;
            break;
        case OPT_OWNER:
            o->owner = optarg;
            break;
        case OPT_PORT_FILE:
            o->port_file = optarg;
            break;
        case OPT_LOG_LEVEL:
            o->log_level = optarg;
            break;
        case OPT_LOG_FORMAT:
            o->log_format = optarg;
            break;
        case OPT_BALANCE:
            if (!parse_number(optarg, 0, MAX_USD, &o->balance))
                return usage_error("--balance: expected USD from 0 to %.0f, got \"%s\"", MAX_USD,
                                   optarg);
            break;
        case OPT_SPEED:
            if (!parse_number(optarg, 1, 100000, &o->speed))
                return usage_error("--speed: expected a number from 1 to 100000, got \"%s\"",
                                   optarg);
            break;
        case OPT_SEED:
            if (!parse_u64_text(optarg, &o->seed))
                return usage_error("--seed: expected a non-negative integer, got \"%s\"", optarg);
            break;
        case OPT_BLOCK:
        case OPT_BID_TTL:
        case OPT_UNLEASED:
            if (sw_duration_parse(optarg, &ms) < 0 || ms < (ch == OPT_BLOCK ? 100 : 1))
                return usage_error("--%s: expected a duration like 6s or 5m%s, got \"%s\"",
                                   ch == OPT_BLOCK     ? "block-time"
                                   : ch == OPT_BID_TTL ? "bid-ttl"
                                                       : "unleased-timeout",
                                   ch == OPT_BLOCK ? " (at least 100ms)" : "", optarg);
            if (ch == OPT_BLOCK) {
                o->block_ms = ms;
                o->block_ms_given = true;
            } else if (ch == OPT_BID_TTL)
                o->bid_ttl_ms = ms;
            else
                o->unleased_ms = ms;
            break;
        case OPT_LATENCY:
        case OPT_SPIKE_MS:
            if (!parse_number(optarg, 0, 600000, &v))
                return usage_error("--%s: expected milliseconds from 0 to 600000, got \"%s\"", name,
                                   optarg);
            if (ch == OPT_LATENCY)
                o->faults.latency_ms = (int64_t)v;
            else
                o->faults.latency_spike_ms = (int64_t)v;
            break;
        case OPT_SPIKE_RATE:
        case OPT_429:
        case OPT_5XX:
        case OPT_MALFORMED:
        case OPT_DROP:
            if (!parse_number(optarg, 0, 1, &v))
                return usage_error("--%s: expected a probability from 0 to 1, got \"%s\"", name,
                                   optarg);
            *(ch == OPT_SPIKE_RATE  ? &o->faults.latency_spike_rate
              : ch == OPT_429       ? &o->faults.rate_429
              : ch == OPT_5XX       ? &o->faults.rate_5xx
              : ch == OPT_MALFORMED ? &o->faults.rate_malformed
                                    : &o->faults.rate_drop) = v;
            break;
        case OPT_HELP:
        case 'h':
            o->help = true;
            break;
        default:
            return usage_error("unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (o->help)
        return 0;
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (o->listen == NULL || o->state == NULL || o->providers == NULL)
        return usage_error("--listen, --state and --providers are required (see --help)");
    if (o->owner[0] == '\0' || strpbrk(o->owner, "/ \t\r\n") != NULL)
        return usage_error("--owner: expected an address without '/' or blanks");
    return 0;
}

static int split_listen(const char *text, char **host, int *port)
{
    const char *colon = strrchr(text, ':');
    uint64_t p;
    if (colon == NULL || colon == text || !parse_u64_text(colon + 1, &p) || p > 65535)
        return -1;
    const char *h = text;
    size_t n = (size_t)(colon - text);
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') { /* [::1]:8080 */
        h++;
        n -= 2;
    }
    *host = sw_xstrndup(h, n);
    *port = (int)p;
    return 0;
}

static int write_port_file(const char *path, int port)
{
    char *tmp = sw_xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int rc = -1;
    if (f != NULL) {
        bool ok = fprintf(f, "%d\n", port) > 0;
        ok = fclose(f) == 0 && ok;
        if (ok && rename(tmp, path) == 0)
            rc = 0;
    }
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

static void market_stop(struct market *m, const char *why)
{
    if (m->stopping)
        return;
    m->stopping = true;
    sw_log(SW_LOG_INFO, "market", "stopping: %s", why);
    delayed_cancel_all(m);
    sw_http_server_close(m->http);
    m->http = NULL;
    sw_clock_timer_stop(m->clock, m->wake_timer);
    m->wake_timer = 0;
    uv_signal_stop(&m->sigint);
    uv_signal_stop(&m->sigterm);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    market_stop(handle->data, signum == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)");
}

static int64_t log_time(void *ud)
{
    return market_now(ud);
}

static void close_walk(uv_handle_t *handle, void *arg)
{
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

static int serve(const struct serve_opts *o)
{
    const char *key = getenv(o->key_env);
    if (key == NULL || strlen(key) < 4) {
        fprintf(stderr,
                "steward market serve: set the environment variable %s to the API key "
                "clients must send as x-api-key (at least 4 characters)\n",
                o->key_env);
        return EXIT_USAGE;
    }
    char *host = NULL;
    int port = 0;
    if (split_listen(o->listen, &host, &port) < 0) {
        fprintf(stderr, "steward market serve: --listen: expected HOST:PORT, got \"%s\"\n",
                o->listen);
        return EXIT_USAGE;
    }
    int exit_code = 0;
    struct sw_error err = {0};
    struct market *m = sw_xcalloc(1, sizeof(*m));
    uv_loop_t loop;
    uv_loop_init(&loop);
    m->loop = &loop;
    m->api_key = sw_xstrdup(key);
    sw_log_add_secret(key);
    m->owner = sw_xstrdup(o->owner);
    m->seed = o->seed;
    m->fault_rng = o->seed ^ UINT64_C(0x5DEECE66D);
    m->faults = o->faults;
    m->block_ms = o->block_ms;
    m->bid_ttl_ms = o->bid_ttl_ms;
    m->unleased_ms = o->unleased_ms;
    m->speed = o->speed;
    m->state_path = sw_xstrdup(o->state);
    m->clock = sw_clock_live_new(&loop, o->speed);
    m->net_clock = sw_clock_live_new(&loop, 1.0);
    if (m->clock == NULL || m->net_clock == NULL) {
        exit_code = EXIT_RUNTIME;
        goto out;
    }
    sw_log_set_time_source(log_time, m);

    if (providers_load(o->providers, &m->providers, &m->provider_count, &err) < 0) {
        fprintf(stderr, "steward market serve: %s\n", err.msg);
        exit_code = EXIT_USAGE;
        goto out;
    }
    if (db_open(m, o->state, llround(o->balance * (double)MICRO_PER_USD), o->block_ms_given, &err) <
        0) {
        fprintf(stderr, "steward market serve: %s\n", err.msg);
        exit_code = err.code == SW_ECONFIG ? EXIT_USAGE : EXIT_RUNTIME;
        goto out;
    }
    /* Before the port file exists: whoever reads it may signal us at once. */
    uv_signal_init(&loop, &m->sigint);
    uv_signal_init(&loop, &m->sigterm);
    m->sigint.data = m->sigterm.data = m;
    uv_signal_start(&m->sigint, on_signal, SIGINT);
    uv_signal_start(&m->sigterm, on_signal, SIGTERM);
    struct sw_http_server_opts hopts = {
        .host = host,
        .port = port,
        .max_body_bytes = HTTP_MAX_BODY,
        .max_connections = 1024,
    };
    m->http = sw_http_server_start(&loop, &hopts, on_request, m, &err);
    if (m->http == NULL) {
        fprintf(stderr, "steward market serve: %s\n", err.msg);
        exit_code = EXIT_RUNTIME;
        goto out;
    }
    int bound = sw_http_server_port(m->http);
    if (o->port_file != NULL && write_port_file(o->port_file, bound) < 0) {
        fprintf(stderr, "steward market serve: --port-file %s: %s\n", o->port_file,
                strerror(errno));
        sw_http_server_close(m->http);
        m->http = NULL;
        exit_code = EXIT_RUNTIME;
        goto out;
    }
    sw_log(SW_LOG_INFO, "market",
           "listening on http://%s:%d: %zu providers, state %s, speed %g, block %" PRId64
           " ms, seed %" PRIu64,
           host, bound, m->provider_count, o->state, o->speed, m->block_ms, m->seed);
    printf("steward market: listening on http://%s:%d\n", host, bound);
    fflush(stdout);
    rearm(m);
    uv_run(&loop, UV_RUN_DEFAULT);
out:
    if (!m->stopping) {
        delayed_cancel_all(m);
        sw_http_server_close(m->http);
        sw_clock_timer_stop(m->clock, m->wake_timer);
    }
    sw_log_set_time_source(NULL, NULL);
    sw_clock_free(m->clock);
    sw_clock_free(m->net_clock);
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        sw_log(SW_LOG_WARN, "market", "event loop closed with handles still open");
    db_close(m);
    providers_free(m->providers, m->provider_count);
    free(m->api_key);
    free(m->owner);
    free(m->state_path);
    free(m);
    free(host);
    sw_log_clear_secrets();
    return exit_code;
}

int sw_market_server_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        FILE *out = argc < 2 ? stderr : stdout;
        fprintf(out,
                "usage: steward market serve [options]   (steward market serve --help)\n\n"
                "Run steward's local marketplace: the Akash Console managed-wallet API served\n"
                "from a simulated market, for tests and rehearsals (docs/marketplace.md).\n");
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "serve") != 0) {
        fprintf(stderr, "steward market: unknown sub-command '%s' (expected serve)\n", argv[1]);
        return EXIT_USAGE;
    }
    struct serve_opts o;
    int rc = parse_serve_args(argc - 1, argv + 1, &o);
    if (rc != 0)
        return rc;
    if (o.help) {
        usage_serve(stdout);
        return 0;
    }
    int format = SW_LOG_FORMAT_TEXT;
    int level = SW_LOG_INFO;
    if (o.log_format != NULL) {
        if (strcmp(o.log_format, "json") == 0)
            format = SW_LOG_FORMAT_JSON;
        else if (strcmp(o.log_format, "text") != 0)
            return usage_error("--log-format: expected text or json, got \"%s\"", o.log_format);
    }
    if (o.log_level != NULL && (level = sw_log_level_parse(o.log_level)) < 0)
        return usage_error("--log-level: expected debug, info, warn or error, got \"%s\"",
                           o.log_level);
    sw_log_configure(stderr, format, level);
    return serve(&o);
}
