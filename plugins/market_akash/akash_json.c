/* akash_json.c — reading the Console's replies field by field.
 *
 * Every reader names the JSON path of what it did not like ("data[1].bid.price.amount:
 * expected a decimal string, got number"), so a marketplace answering garbage produces a
 * clear error on that action and never a crash. Chain integers must be strings and DecCoin
 * amounts decimal strings, as marketplace-api.md requires.
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akash.h"

/* ---- JSON writing ----------------------------------------------------------------------- */

static void jw_reserve(struct akash_jw *w, size_t more)
{
    if (w->len + more + 1 <= w->cap)
        return;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + more + 1)
        cap *= 2;
    w->text = swp_xrealloc(w->text, cap);
    w->cap = cap;
}

static void jw_put(struct akash_jw *w, const char *data, size_t len)
{
    jw_reserve(w, len);
    memcpy(w->text + w->len, data, len);
    w->len += len;
    w->text[w->len] = '\0';
}

/* Before a value or a key: the comma that separates it from the previous one. */
static void jw_sep(struct akash_jw *w)
{
    if (w->more)
        jw_put(w, ",", 1);
    w->more = true;
}

/* cJSON's escaping (print_string_ptr): the two-character escapes it knows, \u00XX for the
 * other control characters, every other byte (UTF-8 included) as it is. The exact length is
 * counted first and reserved once, so the second loop only stores (and a 1 KB manifest does
 * not ask malloc for the 6 KB of the worst case, a size that makes glibc consolidate). */
static void jw_string(struct akash_jw *w, const char *value)
{
    /* Bytes each byte takes once escaped: a table, as this runs over every manifest and
     * record (a per-byte chain of comparisons was ~66,000 instructions per acquire). */
    static const unsigned char escaped[256] = {
        6, 6, 6, 6, 6, 6, 6, 6, 2, 2, 2, 6, 2, 2, 6, 6, /* 0x00: \b \t \n \f \r */
        6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0x10 */
        1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20: " */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, /* 0x50: \\ */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x70 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x80 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x90 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xa0 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xb0 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xc0 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xd0 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xe0 */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xf0 */
    };
    static const char hex[] = "0123456789abcdef";
    size_t len = 0;
    const unsigned char *p = (const unsigned char *)value;
    for (; *p != '\0'; p++)
        len += escaped[*p];
    size_t raw = (size_t)(p - (const unsigned char *)value);
    jw_reserve(w, len + 2);
    char *out = w->text + w->len;
    *out++ = '"';
    if (len == raw) {
        memcpy(out, value, raw);
        out += raw;
    } else {
        for (p = (const unsigned char *)value; *p != '\0'; p++) {
            unsigned char c = *p;
            if (escaped[c] == 1) {
                *out++ = (char)c;
                continue;
            }
            *out++ = '\\';
            switch (c) {
            case '"':
                *out++ = '"';
                break;
            case '\\':
                *out++ = '\\';
                break;
            case '\b':
                *out++ = 'b';
                break;
            case '\f':
                *out++ = 'f';
                break;
            case '\n':
                *out++ = 'n';
                break;
            case '\r':
                *out++ = 'r';
                break;
            case '\t':
                *out++ = 't';
                break;
            default:
                *out++ = 'u';
                *out++ = '0';
                *out++ = '0';
                *out++ = hex[c >> 4];
                *out++ = hex[c & 15];
                break;
            }
        }
    }
    *out++ = '"';
    *out = '\0';
    w->len = (size_t)(out - w->text);
}

void akash_jw_open(struct akash_jw *w, char bracket)
{
    jw_sep(w);
    jw_put(w, &bracket, 1);
    w->more = false;
}

void akash_jw_close(struct akash_jw *w, char bracket)
{
    jw_put(w, &bracket, 1);
    w->more = true;
}

void akash_jw_key(struct akash_jw *w, const char *name)
{
    jw_sep(w);
    jw_string(w, name);
    jw_put(w, ":", 1);
    w->more = false;
}

void akash_jw_str(struct akash_jw *w, const char *value)
{
    jw_sep(w);
    if (value == NULL)
        jw_put(w, "null", 4);
    else
        jw_string(w, value);
}

/* By hand: snprintf was ~740 instructions a number, 12 per record field of a burst. */
void akash_jw_int(struct akash_jw *w, int64_t value)
{
    char text[24];
    char *end = text + sizeof(text);
    char *q = end;
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        *--q = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0)
        *--q = '-';
    jw_sep(w);
    jw_put(w, q, (size_t)(end - q));
}

/* cJSON's print_number: 15 significant digits if they read back within a relative
 * DBL_EPSILON (its compare_double), else 17; NaN and infinities as null. */
void akash_jw_num(struct akash_jw *w, double value)
{
    char text[32];
    int n;
    if (isnan(value) || isinf(value))
        n = snprintf(text, sizeof(text), "null");
    else {
        n = snprintf(text, sizeof(text), "%1.15g", value);
        double back = strtod(text, NULL);
        double larger = fabs(back) > fabs(value) ? fabs(back) : fabs(value);
        if (!(fabs(back - value) <= larger * DBL_EPSILON))
            n = snprintf(text, sizeof(text), "%1.17g", value);
    }
    jw_sep(w);
    jw_put(w, text, (size_t)n);
}

void akash_jw_raw(struct akash_jw *w, const char *json)
{
    jw_sep(w);
    jw_put(w, json, strlen(json));
}

void akash_jw_kstr(struct akash_jw *w, const char *name, const char *value)
{
    akash_jw_key(w, name);
    akash_jw_str(w, value);
}

void akash_jw_kint(struct akash_jw *w, const char *name, int64_t value)
{
    akash_jw_key(w, name);
    akash_jw_int(w, value);
}

void akash_jw_knum(struct akash_jw *w, const char *name, double value)
{
    akash_jw_key(w, name);
    akash_jw_num(w, value);
}

char *akash_jw_take(struct akash_jw *w)
{
    char *text = w->text != NULL ? w->text : swp_xstrdup("");
    memset(w, 0, sizeof(*w));
    return text;
}

/* ---- memory and errors ------------------------------------------------------------------ */

int akash_set_error(struct swp_error *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void akash_error_prefix(struct swp_error *err, const char *prefix)
{
    if (err == NULL || prefix == NULL)
        return;
    char old[sizeof(err->msg)];
    memcpy(old, err->msg, sizeof(old));
    old[sizeof(old) - 1] = '\0';
    size_t plen = strlen(prefix);
    if (plen > sizeof(err->msg) - 3)
        plen = sizeof(err->msg) - 3;
    memcpy(err->msg, prefix, plen);
    memcpy(err->msg + plen, ": ", 2);
    size_t room = sizeof(err->msg) - plen - 3;
    size_t olen = strlen(old);
    if (olen > room)
        olen = room;
    memcpy(err->msg + plen + 2, old, olen);
    err->msg[plen + 2 + olen] = '\0';
}

char *akash_sanitize(const char *text, size_t len, size_t max_len, const char *secret)
{
    static const char redacted[] = "[REDACTED]";
    if (text == NULL)
        return swp_xstrdup("");
    if (len > max_len)
        len = max_len;
    size_t secret_len = secret ? strlen(secret) : 0;
    if (secret_len < 4)
        secret_len = 0;
    /* Worst case every byte starts a redaction: bounded by len / secret_len of them. */
    size_t cap = len + 1 + (secret_len ? (len / secret_len + 1) * sizeof(redacted) : 0);
    char *out = swp_xcalloc(1, cap);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (secret_len && len - i >= secret_len && memcmp(text + i, secret, secret_len) == 0) {
            memcpy(out + o, redacted, sizeof(redacted) - 1);
            o += sizeof(redacted) - 1;
            i += secret_len;
            continue;
        }
        unsigned char ch = (unsigned char)text[i++];
        out[o++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    out[o] = '\0';
    /* A key cut by max_len could leave a prefix of it at the end: drop a trailing run that
     * is a prefix of the secret. */
    if (secret_len && len == max_len) {
        for (size_t keep = secret_len - 1; keep >= 4; keep--) {
            if (o >= keep && memcmp(out + o - keep, secret, keep) == 0) {
                out[o - keep] = '\0';
                break;
            }
        }
    }
    return out;
}

/* ---- field access ------------------------------------------------------------------------ */

const char *akash_json_type(const cJSON *item)
{
    if (item == NULL)
        return "nothing";
    if (cJSON_IsNull(item))
        return "null";
    if (cJSON_IsBool(item))
        return "boolean";
    if (cJSON_IsNumber(item))
        return "number";
    if (cJSON_IsString(item))
        return "string";
    if (cJSON_IsArray(item))
        return "array";
    if (cJSON_IsObject(item))
        return "object";
    return "invalid";
}

void akash_jfail(struct akash_jctx *c, const char *where, const char *name, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = true;
    if (c->err == NULL)
        return;
    char text[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    const char *sep = where && where[0] && name && name[0] ? "." : "";
    akash_set_error(c->err, SWP_EMARKET, "%s%s%s: %s", where ? where : "", sep, name ? name : "",
                    text);
}

static const cJSON *member(struct akash_jctx *c, const cJSON *parent, const char *where,
                           const char *name)
{
    if (c->failed || parent == NULL)
        return NULL;
    if (!cJSON_IsObject(parent)) {
        akash_jfail(c, where, "", "expected object, got %s", akash_json_type(parent));
        return NULL;
    }
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(parent, name);
    if (item == NULL)
        akash_jfail(c, where, name, "missing");
    return item;
}

const cJSON *akash_jobj(struct akash_jctx *c, const cJSON *parent, const char *where,
                        const char *name)
{
    const cJSON *item = member(c, parent, where, name);
    if (item != NULL && !cJSON_IsObject(item)) {
        akash_jfail(c, where, name, "expected object, got %s", akash_json_type(item));
        return NULL;
    }
    return item;
}

const cJSON *akash_jarr(struct akash_jctx *c, const cJSON *parent, const char *where,
                        const char *name)
{
    const cJSON *item = member(c, parent, where, name);
    if (item != NULL && !cJSON_IsArray(item)) {
        akash_jfail(c, where, name, "expected array, got %s", akash_json_type(item));
        return NULL;
    }
    return item;
}

const char *akash_jstr(struct akash_jctx *c, const cJSON *parent, const char *where,
                       const char *name)
{
    const cJSON *item = member(c, parent, where, name);
    if (item == NULL)
        return NULL;
    if (!cJSON_IsString(item)) {
        akash_jfail(c, where, name, "expected string, got %s", akash_json_type(item));
        return NULL;
    }
    return item->valuestring;
}

const char *akash_jstr_opt(struct akash_jctx *c, const cJSON *parent, const char *where,
                           const char *name)
{
    if (c->failed || parent == NULL || !cJSON_IsObject(parent))
        return NULL;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(parent, name);
    if (item == NULL || cJSON_IsNull(item))
        return NULL;
    if (!cJSON_IsString(item)) {
        akash_jfail(c, where, name, "expected string or null, got %s", akash_json_type(item));
        return NULL;
    }
    return item->valuestring;
}

static bool parse_uint(const char *text, int64_t *out)
{
    if (text == NULL || text[0] == '\0' || strlen(text) > 19)
        return false;
    for (const char *p = text; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    errno = 0;
    long long value = strtoll(text, NULL, 10);
    if (errno != 0 || value < 0)
        return false;
    *out = (int64_t)value;
    return true;
}

bool akash_is_dseq(const char *text)
{
    int64_t ignored;
    return parse_uint(text, &ignored);
}

bool akash_jintstr(struct akash_jctx *c, const cJSON *parent, const char *where, const char *name,
                   int64_t *out)
{
    const cJSON *item = member(c, parent, where, name);
    if (item == NULL)
        return false;
    if (!cJSON_IsString(item)) {
        akash_jfail(c, where, name,
                    "expected an integer string (chain integers arrive as "
                    "strings), got %s",
                    akash_json_type(item));
        return false;
    }
    if (!parse_uint(item->valuestring, out)) {
        akash_jfail(c, where, name, "expected an integer string, got \"%.40s\"", item->valuestring);
        return false;
    }
    return true;
}

bool akash_jcount(struct akash_jctx *c, const cJSON *parent, const char *where, const char *name,
                  int64_t *out)
{
    const cJSON *item = member(c, parent, where, name);
    if (item == NULL)
        return false;
    if (cJSON_IsNumber(item) && item->valuedouble >= 0 && item->valuedouble < 9e15 &&
        item->valuedouble == (double)(int64_t)item->valuedouble) {
        *out = (int64_t)item->valuedouble;
        return true;
    }
    if (cJSON_IsString(item) && parse_uint(item->valuestring, out))
        return true;
    akash_jfail(c, where, name, "expected a non-negative integer, got %s", akash_json_type(item));
    return false;
}

const char *akash_jdseq(struct akash_jctx *c, const cJSON *parent, const char *where,
                        const char *name)
{
    const cJSON *item = member(c, parent, where, name);
    if (item == NULL)
        return NULL;
    if (!cJSON_IsString(item)) {
        akash_jfail(c, where, name,
                    "expected a string of digits (a dseq is never a JSON "
                    "number), got %s",
                    akash_json_type(item));
        return NULL;
    }
    if (!akash_is_dseq(item->valuestring)) {
        akash_jfail(c, where, name, "expected a string of digits, got \"%.40s\"",
                    item->valuestring);
        return NULL;
    }
    return item->valuestring;
}

bool akash_parse_decimal(const char *text, double *out)
{
    if (text == NULL || text[0] == '\0' || strlen(text) > 64)
        return false;
    const char *p = text;
    size_t digits = 0;
    while (isdigit((unsigned char)*p)) {
        p++;
        digits++;
    }
    if (digits == 0)
        return false;
    if (*p == '.') {
        p++;
        size_t frac = 0;
        while (isdigit((unsigned char)*p)) {
            p++;
            frac++;
        }
        if (frac == 0)
            return false;
    }
    if (*p != '\0')
        return false;
    *out = strtod(text, NULL);
    return true;
}

static bool coin_read(struct akash_jctx *c, const cJSON *parent, const char *where,
                      const char *name, struct akash_coin *coin)
{
    char path[160];
    snprintf(path, sizeof(path), "%s%s%s", where, where[0] ? "." : "", name);
    const cJSON *obj = akash_jobj(c, parent, where, name);
    const char *denom = akash_jstr(c, obj, path, "denom");
    const cJSON *amount = member(c, obj, path, "amount");
    if (c->failed)
        return false;
    if (!cJSON_IsString(amount)) {
        akash_jfail(c, path, "amount", "expected a decimal string, got %s",
                    akash_json_type(amount));
        return false;
    }
    double value;
    if (!akash_parse_decimal(amount->valuestring, &value)) {
        akash_jfail(c, path, "amount", "expected a decimal string, got \"%.40s\"",
                    amount->valuestring);
        return false;
    }
    coin->denom = swp_xstrdup(denom);
    coin->amount = swp_xstrdup(amount->valuestring);
    coin->value = value;
    return true;
}

static void coin_clear(struct akash_coin *coin)
{
    free(coin->denom);
    free(coin->amount);
    memset(coin, 0, sizeof(*coin));
}

/* bseq: a number or a string upstream; kept as text. */
static char *id_text(struct akash_jctx *c, const cJSON *parent, const char *where, const char *name)
{
    if (c->failed || !cJSON_IsObject(parent))
        return NULL;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(parent, name);
    if (item == NULL || cJSON_IsNull(item))
        return swp_xstrdup("");
    if (cJSON_IsString(item))
        return swp_xstrdup(item->valuestring);
    if (cJSON_IsNumber(item))
        return swp_xasprintf("%.0f", item->valuedouble);
    akash_jfail(c, where, name, "expected string or number, got %s", akash_json_type(item));
    return NULL;
}

/* ---- bids --------------------------------------------------------------------------------- */

void akash_bids_free(struct akash_bid *bids, size_t count)
{
    for (size_t i = 0; bids != NULL && i < count; i++) {
        free(bids[i].provider);
        free(bids[i].bseq);
        free(bids[i].state);
        coin_clear(&bids[i].price);
    }
    free(bids);
}

int akash_parse_bids(const cJSON *root, const char *dseq, struct akash_bid **out, size_t *count,
                     struct swp_error *err)
{
    struct akash_jctx c = {.err = err};
    *out = NULL;
    *count = 0;
    const cJSON *data = akash_jarr(&c, root, "", "data");
    if (c.failed)
        return SWP_EMARKET;
    size_t total = (size_t)cJSON_GetArraySize(data);
    struct akash_bid *bids = swp_xcalloc(total, sizeof(*bids));
    size_t n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, data)
    {
        char where[64], bid_path[80], id_path[96];
        snprintf(where, sizeof(where), "data[%zu]", n);
        snprintf(bid_path, sizeof(bid_path), "%s.bid", where);
        snprintf(id_path, sizeof(id_path), "%s.id", bid_path);
        struct akash_bid *b = &bids[n++];
        const cJSON *bid = akash_jobj(&c, item, where, "bid");
        const cJSON *id = akash_jobj(&c, bid, bid_path, "id");
        const char *provider = akash_jstr(&c, id, id_path, "provider");
        const char *bid_dseq = akash_jdseq(&c, id, id_path, "dseq");
        akash_jcount(&c, id, id_path, "gseq", &b->gseq);
        akash_jcount(&c, id, id_path, "oseq", &b->oseq);
        b->bseq = id_text(&c, id, id_path, "bseq");
        const char *state = akash_jstr(&c, bid, bid_path, "state");
        coin_read(&c, bid, bid_path, "price", &b->price);
        akash_jintstr(&c, bid, bid_path, "created_at", &b->created_at);
        if (!c.failed && strcmp(bid_dseq, dseq) != 0)
            akash_jfail(&c, id_path, "dseq", "\"%s\" is not the deployment asked for (%s)",
                        bid_dseq, dseq);
        if (c.failed)
            break;
        b->provider = swp_xstrdup(provider);
        b->state = swp_xstrdup(state);
    }
    if (c.failed) {
        akash_bids_free(bids, n);
        return SWP_EMARKET;
    }
    *out = bids;
    *count = n;
    return 0;
}

/* ---- deployments ------------------------------------------------------------------------- */

void akash_deployment_clear(struct akash_deployment *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->lease_count; i++) {
        struct akash_lease *l = &d->leases[i];
        free(l->provider);
        free(l->state);
        free(l->reason);
        coin_clear(&l->price);
        for (size_t u = 0; u < l->uri_count; u++)
            free(l->uris[u]);
        free(l->uris);
    }
    free(d->leases);
    free(d->dseq);
    free(d->state);
    free(d->marker_key);
    free(d->marker_tag);
    memset(d, 0, sizeof(*d));
}

static void lease_status(struct akash_jctx *c, const cJSON *lease, const char *where,
                         struct akash_lease *l)
{
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(lease, "status");
    if (status == NULL || cJSON_IsNull(status))
        return;
    char spath[224];
    snprintf(spath, sizeof(spath), "%s.status", where);
    if (!cJSON_IsObject(status)) {
        akash_jfail(c, where, "status", "expected object or null, got %s", akash_json_type(status));
        return;
    }
    l->has_status = true;
    const cJSON *services = akash_jobj(c, status, spath, "services");
    if (c->failed)
        return;
    size_t uri_cap = 0;
    bool all = true;
    const cJSON *svc;
    cJSON_ArrayForEach(svc, services)
    {
        char path[320];
        snprintf(path, sizeof(path), "%s.services", spath);
        if (!cJSON_IsObject(svc)) {
            akash_jfail(c, path, svc->string, "expected object, got %s", akash_json_type(svc));
            return;
        }
        snprintf(path, sizeof(path), "%s.services.%.40s", spath, svc->string);
        int64_t available = 0, total = 0;
        akash_jcount(c, svc, path, "available", &available);
        akash_jcount(c, svc, path, "total", &total);
        const cJSON *uris = cJSON_GetObjectItemCaseSensitive(svc, "uris");
        if (c->failed)
            return;
        l->service_count++;
        if (available != total)
            all = false;
        if (uris == NULL || cJSON_IsNull(uris))
            continue;
        if (!cJSON_IsArray(uris)) {
            akash_jfail(c, path, "uris", "expected array, got %s", akash_json_type(uris));
            return;
        }
        const cJSON *uri;
        size_t index = 0;
        cJSON_ArrayForEach(uri, uris)
        {
            if (!cJSON_IsString(uri)) {
                char name[32];
                snprintf(name, sizeof(name), "uris[%zu]", index);
                akash_jfail(c, path, name, "expected string, got %s", akash_json_type(uri));
                return;
            }
            index++;
            if (l->uri_count == uri_cap) {
                uri_cap = uri_cap ? uri_cap * 2 : 4;
                char **grown = swp_xrealloc(l->uris, uri_cap * sizeof(*grown));
                l->uris = grown;
            }
            l->uris[l->uri_count++] = swp_xstrdup(uri->valuestring);
        }
    }
    l->ready = all && l->service_count > 0;
}

/* Escrow is advisory (runway, top-ups): a reply without it is not an error. */
static void escrow_read(const cJSON *dr, struct akash_deployment *d)
{
    const cJSON *escrow = cJSON_GetObjectItemCaseSensitive(dr, "escrow_account");
    const cJSON *state =
        cJSON_IsObject(escrow) ? cJSON_GetObjectItemCaseSensitive(escrow, "state") : NULL;
    const cJSON *funds =
        cJSON_IsObject(state) ? cJSON_GetObjectItemCaseSensitive(state, "funds") : NULL;
    if (!cJSON_IsArray(funds))
        return;
    double total = 0;
    const cJSON *coin;
    cJSON_ArrayForEach(coin, funds)
    {
        const cJSON *denom = cJSON_GetObjectItemCaseSensitive(coin, "denom");
        const cJSON *amount = cJSON_GetObjectItemCaseSensitive(coin, "amount");
        double value;
        if (!cJSON_IsString(denom) || !cJSON_IsString(amount) ||
            !akash_parse_decimal(amount->valuestring, &value))
            return;
        if (strcmp(denom->valuestring, "uact") == 0)
            total += value;
    }
    d->has_escrow = true;
    d->escrow_uact = total;
}

/* The SDL (or manifest) text, when a server returns it, carries the unit key and the owner
 * tag the plugin embedded at creation. */
static void markers_read(const cJSON *dr, struct akash_deployment *d)
{
    static const char *const fields[] = {"sdl", "manifest"};
    const cJSON *scopes[2] = {dr, cJSON_GetObjectItemCaseSensitive(dr, "deployment")};
    for (size_t s = 0; s < 2; s++) {
        if (!cJSON_IsObject(scopes[s]))
            continue;
        for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(scopes[s], fields[f]);
            if (!cJSON_IsString(text))
                continue;
            if (d->marker_key == NULL)
                d->marker_key = akash_marker_find(text->valuestring, "STEWARD_UNIT_KEY");
            if (d->marker_tag == NULL)
                d->marker_tag = akash_marker_find(text->valuestring, "STEWARD_TAG");
        }
    }
}

int akash_parse_deployment(const cJSON *dr, const char *where, bool with_status,
                           struct akash_deployment *out, struct swp_error *err)
{
    struct akash_jctx c = {.err = err};
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(dr)) {
        akash_jfail(&c, where, "", "expected object, got %s", akash_json_type(dr));
        return SWP_EMARKET;
    }
    char dpath[160], ipath[176];
    snprintf(dpath, sizeof(dpath), "%s.deployment", where);
    snprintf(ipath, sizeof(ipath), "%s.id", dpath);
    const cJSON *dep = akash_jobj(&c, dr, where, "deployment");
    const cJSON *id = akash_jobj(&c, dep, dpath, "id");
    const char *dseq = akash_jdseq(&c, id, ipath, "dseq");
    const char *state = akash_jstr(&c, dep, dpath, "state");
    const cJSON *leases = akash_jarr(&c, dr, where, "leases");
    if (c.failed)
        return SWP_EMARKET;
    out->dseq = swp_xstrdup(dseq);
    out->state = swp_xstrdup(state);
    size_t total = (size_t)cJSON_GetArraySize(leases);
    out->leases = swp_xcalloc(total, sizeof(*out->leases));
    const cJSON *item;
    cJSON_ArrayForEach(item, leases)
    {
        char lpath[192], lid[208];
        snprintf(lpath, sizeof(lpath), "%s.leases[%zu]", where, out->lease_count);
        snprintf(lid, sizeof(lid), "%s.id", lpath);
        struct akash_lease *l = &out->leases[out->lease_count++];
        const cJSON *lease_id = akash_jobj(&c, item, lpath, "id");
        const char *provider = akash_jstr(&c, lease_id, lid, "provider");
        akash_jcount(&c, lease_id, lid, "gseq", &l->gseq);
        akash_jcount(&c, lease_id, lid, "oseq", &l->oseq);
        const char *lstate = akash_jstr(&c, item, lpath, "state");
        const char *reason = akash_jstr_opt(&c, item, lpath, "reason");
        coin_read(&c, item, lpath, "price", &l->price);
        if (with_status && !c.failed)
            lease_status(&c, item, lpath, l);
        if (c.failed)
            return SWP_EMARKET;
        l->provider = swp_xstrdup(provider);
        l->state = swp_xstrdup(lstate);
        l->reason = swp_xstrdup(reason);
    }
    escrow_read(dr, out);
    markers_read(dr, out);
    return 0;
}

const struct akash_lease *akash_active_lease(const struct akash_deployment *d, const char *provider)
{
    const struct akash_lease *any = NULL;
    for (size_t i = 0; i < d->lease_count; i++) {
        const struct akash_lease *l = &d->leases[i];
        if (strcmp(l->state, "active") != 0)
            continue;
        if (provider == NULL || strcmp(l->provider, provider) == 0)
            return l;
        if (any == NULL)
            any = l;
    }
    return provider == NULL ? any : NULL;
}

int akash_parse_page(const cJSON *root, struct akash_deployment **items, size_t *count,
                     bool *has_more, struct swp_error *err)
{
    struct akash_jctx c = {.err = err};
    const cJSON *data = akash_jobj(&c, root, "", "data");
    const cJSON *deployments = akash_jarr(&c, data, "data", "deployments");
    const cJSON *pagination = akash_jobj(&c, data, "data", "pagination");
    const cJSON *more = member(&c, pagination, "data.pagination", "hasMore");
    if (!c.failed && !cJSON_IsBool(more))
        akash_jfail(&c, "data.pagination", "hasMore", "expected boolean, got %s",
                    akash_json_type(more));
    if (c.failed)
        return SWP_EMARKET;
    *has_more = cJSON_IsTrue(more);
    size_t add = (size_t)cJSON_GetArraySize(deployments);
    struct akash_deployment *grown = swp_xrealloc(*items, (*count + add + 1) * sizeof(*grown));
    *items = grown;
    size_t index = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, deployments)
    {
        char where[64];
        snprintf(where, sizeof(where), "data.deployments[%zu]", index++);
        struct akash_deployment *d = &(*items)[*count];
        int rc = akash_parse_deployment(item, where, false, d, err);
        if (rc < 0) {
            akash_deployment_clear(d);
            return rc;
        }
        (*count)++;
    }
    return 0;
}

char *akash_error_text(const cJSON *root, const char *secret)
{
    if (!cJSON_IsObject(root))
        return NULL;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(root, "message");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (!cJSON_IsString(message) && !cJSON_IsString(error))
        return NULL;
    const char *what = cJSON_IsString(message) ? message->valuestring : error->valuestring;
    char *clean = akash_sanitize(what, strlen(what), 160, secret);
    char *text = cJSON_IsString(code) ? swp_xasprintf("%.32s: %s", code->valuestring, clean)
                                      : swp_xstrdup(clean);
    /* The code is the server's too: redact it as well. */
    char *safe = akash_sanitize(text, strlen(text), 200, secret);
    free(clean);
    free(text);
    return safe;
}
