/* admin_api.c — routes, JSON documents and the Prometheus exposition of the admin API.
 *
 * Everything is answered inside the handler from what the runtime holds in memory or the
 * journal's indexed queries, so a request costs microseconds and never waits. Slow or
 * malformed clients are the HTTP server's business: its idle timer bounds a whole request
 * (a client trickling bytes is cut off), header and body sizes are capped, and excess
 * connections are refused.
 */
#include "admin_api.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_server.h"
#include "journal.h"
#include "json_writer.h"
#include "log.h"
#include "mem.h"
#include "model.h"

#define DEFAULT_MAX_HEADER_BYTES (8 * 1024)
#define DEFAULT_MAX_BODY_BYTES (64 * 1024)
#define DEFAULT_IDLE_TIMEOUT_MS 10000
#define DEFAULT_MAX_CONNECTIONS 256
#define DEFAULT_LIMIT 100
#define MAX_LIMIT 1000
/* Refused mutations are logged at most this often (with a count), so a client hammering
 * the API with a wrong token cannot flood the log. */
#define AUTH_LOG_EVERY_MS 10000

static const char *LOG = "admin";
static const char *JSON_TYPE = "application/json";
static const char *PROM_TYPE = "text/plain; version=0.0.4; charset=utf-8";

struct status_cache;

struct sw_admin_api {
    struct sw_http_server *server;
    struct sw_runtime *rt;
    struct sw_clock *clock;
    char *token;
    uint64_t refused_auth;
    uint64_t refused_auth_logged;
    int64_t refused_auth_logged_ms;
    uint64_t requests;
    struct status_cache *status; /* GET /v1/status: sections reused while unchanged */
    struct sw_jw status_out;     /* its document, reused by every request */
};

/* ---- a growable text buffer: json_writer's, used raw (sbuf_printf, sw_jw_raw) ---------- */

static void sbuf_printf(struct sw_jw *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sbuf_printf(struct sw_jw *b, const char *fmt, ...)
{
    for (;;) {
        size_t avail = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->text ? b->text + b->len : NULL, avail, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < avail) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        b->text = sw_xrealloc(b->text, cap);
        b->cap = cap;
    }
}

static char *sbuf_take(struct sw_jw *b)
{
    if (b->text == NULL)
        return sw_xstrdup("");
    return b->text;
}

/* ---- helpers ------------------------------------------------------------------------------ */

bool sw_admin_token_equal(const char *expected, const char *given)
{
    if (expected == NULL || given == NULL)
        return false;
    size_t elen = strlen(expected), glen = strlen(given);
    if (elen == 0)
        return false;
    unsigned char diff = elen != glen;
    /* Walk the given string whole, comparing against expected cyclically: the time says
     * how long the guess was, nothing about how much of it was right. */
    for (size_t i = 0; i < glen; i++)
        diff |= (unsigned char)(given[i] ^ expected[i % elen]);
    return diff == 0;
}

/* cJSON prints every number with sprintf and checks it with sscanf, which dominated the
 * cost of /v1/status; integers (almost every number here) are written directly instead. */
static void format_json_number(double v, char *buf, size_t size)
{
    if (!isfinite(v)) {
        snprintf(buf, size, "null");
    } else if (floor(v) == v && fabs(v) < 1e15) {
        long long n = (long long)v;
        char tmp[24];
        size_t len = 0;
        unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
        do {
            tmp[len++] = (char)('0' + u % 10);
            u /= 10;
        } while (u > 0);
        size_t o = 0;
        if (n < 0 && o + 1 < size)
            buf[o++] = '-';
        while (len > 0 && o + 1 < size)
            buf[o++] = tmp[--len];
        buf[o] = '\0';
    } else {
        for (int precision = 6; precision <= 17; precision++) {
            snprintf(buf, size, "%.*g", precision, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
}

static void add_num(cJSON *obj, const char *name, double v)
{
    char buf[40];
    format_json_number(v, buf, sizeof(buf));
    cJSON_AddRawToObject(obj, name, buf);
}

static char *cjson_take(cJSON *root)
{
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    char *owned = sw_xstrdup(text != NULL ? text : "null");
    cJSON_free(text);
    return owned;
}

static void respond_text(struct sw_http_exchange *ex, int status, const char *type,
                         const char *text)
{
    sw_http_respond(ex, status, type, NULL, 0, text, strlen(text));
}

static void respond_json_owned(struct sw_http_exchange *ex, int status, char *text)
{
    static const char *const headers[] = {"Cache-Control: no-store"};
    sw_http_respond(ex, status, JSON_TYPE, headers, 1, text, strlen(text));
    free(text);
}

static void respond_error(struct sw_http_exchange *ex, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void respond_error(struct sw_http_exchange *ex, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "error", msg);
    respond_json_owned(ex, status, cjson_take(root));
}

/* Percent-decode one path segment; NULL when it holds a '/' or a NUL once decoded. */
static char *segment_decode(const char *s, size_t len)
{
    char *out = sw_xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            c = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (c == '\0' || c == '/') {
            free(out);
            return NULL;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

/* Splits "/v1/policies/NAME/pause" style paths: up to max segments, decoded, owned. */
static size_t split_path(const char *path, char **segs, size_t max)
{
    size_t n = 0;
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p != '\0') {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (n == max) {
            n = max + 1;
            break;
        }
        char *seg = segment_decode(p, len);
        if (seg == NULL) {
            n = max + 1;
            break;
        }
        segs[n++] = seg;
        p += len;
        while (*p == '/')
            p++;
    }
    return n;
}

static void free_segs(char **segs, size_t n, size_t max)
{
    for (size_t i = 0; i < n && i < max; i++)
        free(segs[i]);
}

static bool parse_int64(const char *text, int64_t min, int64_t max, int64_t *out)
{
    if (text == NULL || text[0] == '\0')
        return false;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (*end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* ---- documents ------------------------------------------------------------------------------ */

static double round3(double v)
{
    return round(v * 1000.0) / 1000.0;
}

static cJSON *unit_json(const struct sw_unit *u)
{
    cJSON *item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, "key", u->key);
    if (u->market_id)
        cJSON_AddStringToObject(item, "market_id", u->market_id);
    else
        cJSON_AddNullToObject(item, "market_id");
    cJSON_AddStringToObject(item, "group", u->group ? u->group : "");
    cJSON_AddStringToObject(item, "region", u->region ? u->region : "");
    if (u->provider)
        cJSON_AddStringToObject(item, "provider", u->provider);
    else
        cJSON_AddNullToObject(item, "provider");
    add_num(item, "price_usd_hour", u->price_usd_hour);
    cJSON_AddStringToObject(item, "state", sw_unit_state_name(u->state));
    cJSON_AddBoolToObject(item, "self", u->self);
    cJSON_AddBoolToObject(item, "unhealthy", u->unhealthy);
    add_num(item, "ordered_ms", (double)u->ordered_ms);
    if (u->ready_ms > 0)
        add_num(item, "ready_ms", (double)u->ready_ms);
    else
        cJSON_AddNullToObject(item, "ready_ms");
    cJSON *uris = cJSON_AddArrayToObject(item, "uris");
    for (size_t i = 0; i < u->uri_count; i++)
        cJSON_AddItemToArray(uris, cJSON_CreateString(u->uris[i]));
    return item;
}

char *sw_admin_leases_json(struct sw_runtime *rt)
{
    const struct sw_units *units = sw_runtime_units(rt);
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "leases");
    for (size_t i = 0; i < units->count; i++)
        if (units->items[i]->state != SW_UNIT_CLOSED)
            cJSON_AddItemToArray(arr, unit_json(units->items[i]));
    return cjson_take(root);
}

struct region_tally {
    const char *region;
    int desired;
    bool has_desired;
    int ready;
    int pending;
    int releasing;
};

static struct region_tally *tally_find(struct region_tally *t, size_t *n, const char *region)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(t[i].region, region) == 0)
            return &t[i];
    struct region_tally *r = &t[(*n)++];
    memset(r, 0, sizeof(*r));
    r->region = region;
    return r;
}

static int tally_order(const void *a, const void *b)
{
    return strcmp(((const struct region_tally *)a)->region,
                  ((const struct region_tally *)b)->region);
}

/* Desired vs actual per region of one group; the array is owned, strings borrowed. */
static struct region_tally *group_tally(struct sw_runtime *rt, const char *group, size_t *count)
{
    const struct sw_desired *desired = sw_runtime_desired(rt);
    const struct sw_units *units = sw_runtime_units(rt);
    struct region_tally *t = sw_xcalloc(desired->count + units->count + 1, sizeof(*t));
    size_t n = 0;
    for (size_t i = 0; i < desired->count; i++) {
        const struct sw_desired_entry *e = &desired->entries[i];
        if (strcmp(e->group, group) != 0)
            continue;
        struct region_tally *r = tally_find(t, &n, e->region);
        r->desired = e->count;
        r->has_desired = true;
    }
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (u->state == SW_UNIT_CLOSED || u->group == NULL || u->region == NULL ||
            strcmp(u->group, group) != 0)
            continue;
        struct region_tally *r = tally_find(t, &n, u->region);
        if (u->state == SW_UNIT_READY)
            r->ready++;
        else if (u->state == SW_UNIT_RELEASING)
            r->releasing++;
        else
            r->pending++;
    }
    qsort(t, n, sizeof(*t), tally_order);
    *count = n;
    return t;
}

static cJSON *override_json(const struct sw_runtime_override *ov, int64_t now_ms)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "group", ov->group);
    if (ov->region)
        cJSON_AddStringToObject(o, "region", ov->region);
    else
        cJSON_AddNullToObject(o, "region");
    add_num(o, "count", ov->count);
    add_num(o, "set_ms", (double)ov->set_ms);
    add_num(o, "until_ms", (double)ov->until_ms);
    double left = ov->until_ms > now_ms ? (double)(ov->until_ms - now_ms) / 1000.0 : 0;
    add_num(o, "remaining_s", round3(left));
    return o;
}

static double spend_ready(const struct sw_units *units)
{
    double sum = 0;
    for (size_t i = 0; i < units->count; i++)
        if (units->items[i]->state == SW_UNIT_READY ||
            units->items[i]->state == SW_UNIT_RELEASING)
            sum += units->items[i]->price_usd_hour;
    return sum;
}

/* ---- a direct JSON writer for the hot document ---- */

/* /v1/status is the one document polled often (dashboards, the benchmark): written
 * straight into a buffer with memcpy, it costs no cJSON tree and no printf. */
struct jw {
    struct sw_jw *b;
    bool first; /* no comma before the next member */
};

static void jw_raw(struct jw *w, const char *text, size_t len)
{
    sw_jw_raw(w->b, text, len);
}

static void jw_str(struct jw *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t len = strlen((const char *)p);
    sw_jw_reserve(w->b, len * 6 + 2); /* every byte escaped as \u00XX at worst */
    char *o = w->b->text + w->b->len;
    *o++ = '"';
    for (; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        } else {
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    *o = '\0';
    w->b->len = (size_t)(o - w->b->text);
}

static void jw_key(struct jw *w, const char *key)
{
    if (!w->first)
        jw_raw(w, ",", 1);
    w->first = false;
    if (key != NULL) { /* keys are literals here: nothing to escape */
        size_t len = strlen(key);
        sw_jw_reserve(w->b, len + 3);
        char *o = w->b->text + w->b->len;
        *o++ = '"';
        memcpy(o, key, len);
        o += len;
        *o++ = '"';
        *o++ = ':';
        *o = '\0';
        w->b->len = (size_t)(o - w->b->text);
    }
}

static void jw_open(struct jw *w, const char *key, char bracket)
{
    jw_key(w, key);
    jw_raw(w, &bracket, 1);
    w->first = true;
}

static void jw_close(struct jw *w, char bracket)
{
    jw_raw(w, &bracket, 1);
    w->first = false;
}

static void jw_string(struct jw *w, const char *key, const char *value)
{
    jw_key(w, key);
    if (value == NULL)
        jw_raw(w, "null", 4);
    else
        jw_str(w, value);
}

static void jw_number(struct jw *w, const char *key, double value)
{
    char buf[40];
    format_json_number(value, buf, sizeof(buf));
    jw_key(w, key);
    jw_raw(w, buf, strlen(buf));
}

static void jw_bool(struct jw *w, const char *key, bool value)
{
    jw_key(w, key);
    if (value)
        jw_raw(w, "true", 4);
    else
        jw_raw(w, "false", 5);
}

static void jw_null(struct jw *w, const char *key)
{
    jw_key(w, key);
    jw_raw(w, "null", 4);
}

/* ---- GET /v1/status, one function per section ---- */

/* Each section writes its members into the top-level object. A section with a key
 * function is cached (see status_write): the key function appends every input the
 * section's text depends on, byte for byte, and the cached text is reused for as long as
 * those bytes are the same. Comparing the inputs, rather than counting on the runtime to
 * announce its changes, keeps the cache exact whatever changed the state (a plugin's
 * completion, a timer, a mutation). A section without a key function (the clock, and
 * whatever a new section does not declare) is written for every request. */

static void key_bytes(struct sw_jw *key, const void *data, size_t len)
{
    sw_jw_raw(key, data, len);
}

/* With its NUL, so that ("ab","c") and ("a","bc") differ; NULL differs from "". */
static void key_str(struct sw_jw *key, const char *s)
{
    if (s == NULL)
        key_bytes(key, "\xff", 1);
    else
        key_bytes(key, s, strlen(s) + 1);
}

static void status_identity(struct jw *w, struct sw_runtime *rt, int64_t now_ms)
{
    (void)now_ms;
    jw_string(w, "id", sw_runtime_config(rt)->instance_id);
    jw_string(w, "version", SW_VERSION);
}

static void status_leader(struct jw *w, struct sw_runtime *rt, int64_t now_ms)
{
    (void)now_ms;
    const char *leader = sw_runtime_leader_json(rt); /* ha */
    jw_key(w, "leader");
    jw_raw(w, leader, strlen(leader));
}

static void status_clock(struct jw *w, struct sw_runtime *rt, int64_t now_ms)
{
    const struct sw_runtime_stats *st = sw_runtime_stats(rt);
    jw_bool(w, "ready", sw_runtime_ready(rt));
    jw_number(w, "now_ms", (double)now_ms);
    jw_number(w, "started_ms", (double)st->started_ms);
    jw_number(w, "uptime_s",
              st->started_ms > 0 ? round3((double)(now_ms - st->started_ms) / 1000.0) : 0);
}

static void status_market(struct jw *w, struct sw_runtime *rt, int64_t now_ms)
{
    (void)now_ms;
    const struct sw_config *config = sw_runtime_config(rt);
    jw_string(w, "market", config->market_plugin);
    jw_string(w, "self_market_id", config->self_market_id);
}

static void status_policies(struct jw *w, struct sw_runtime *rt, int64_t now_ms)
{
    (void)now_ms;
    jw_open(w, "policies", '[');
    for (size_t i = 0; i < sw_runtime_policy_count(rt); i++) {
        struct sw_runtime_policy_info info;
        sw_runtime_policy_info(rt, i, &info);
        jw_open(w, NULL, '{');
        jw_string(w, "name", info.name);
        jw_string(w, "file", info.file);
        jw_number(w, "interval_ms", (double)info.interval_ms);
        jw_bool(w, "paused", info.paused);
        jw_number(w, "evaluations", (double)info.evaluations);
        jw_number(w, "errors", (double)info.errors);
        if (info.last_eval_ms > 0)
            jw_number(w, "last_eval_ms", (double)info.last_eval_ms);
        else
            jw_null(w, "last_eval_ms");
        jw_number(w, "last_duration_ms", round3(info.last_duration_ms));
        jw_string(w, "last_error", info.last_error);
        jw_close(w, '}');
    }
    jw_close(w, ']');
}

static void key_policies(struct sw_jw *key, struct sw_runtime *rt, int64_t now_ms)
{
    (void)now_ms;
    for (size_t i = 0; i < sw_runtime_policy_count(rt); i++) {
        struct sw_runtime_policy_info info;
        sw_runtime_policy_info(rt, i, &info);
        key_str(key, info.name);
        key_str(key, info.file);
        key_bytes(key, &info.interval_ms, sizeof(info.interval_ms));
        key_bytes(key, &info.paused, sizeof(info.paused));
        key_bytes(key, &info.evaluations, sizeof(info.evaluations));
        key_bytes(key, &info.errors, sizeof(info.errors));
        key_bytes(key, &info.last_eval_ms, sizeof(info.last_eval_ms));
        key_bytes(key, &info.last_duration_ms, sizeof(info.last_duration_ms));
        key_str(key, info.last_error);
    }
}

static void status_group_overrides(struct jw *w, struct sw_runtime *rt, const char *group,
                                   int64_t now_ms)
{
    jw_open(w, "overrides", '[');
    for (size_t i = 0; i < sw_runtime_override_count(rt); i++) {
        const struct sw_runtime_override *ov = sw_runtime_override_at(rt, i);
        if (strcmp(ov->group, group) != 0)
            continue;
        double left = ov->until_ms > now_ms ? (double)(ov->until_ms - now_ms) / 1000.0 : 0;
        jw_open(w, NULL, '{');
        jw_string(w, "group", ov->group);
        jw_string(w, "region", ov->region);
        jw_number(w, "count", ov->count);
        jw_number(w, "set_ms", (double)ov->set_ms);
        jw_number(w, "until_ms", (double)ov->until_ms);
        jw_number(w, "remaining_s", round3(left));
        jw_close(w, '}');
    }
    jw_close(w, ']');
}

static void status_groups(struct jw *w, struct sw_runtime *rt, int64_t now_ms)
{
    const struct sw_config *config = sw_runtime_config(rt);
    jw_open(w, "groups", '[');
    for (size_t gi = 0; gi < config->group_count; gi++) {
        const struct sw_group_config *g = &config->groups[gi];
        jw_open(w, NULL, '{');
        jw_string(w, "name", g->name);
        jw_number(w, "min", g->min);
        jw_number(w, "max", g->max);
        size_t n = 0;
        struct region_tally *t = group_tally(rt, g->name, &n);
        int desired = 0, ready = 0, pending = 0, releasing = 0;
        jw_open(w, "regions", '[');
        for (size_t i = 0; i < n; i++) {
            jw_open(w, NULL, '{');
            jw_string(w, "region", t[i].region);
            if (t[i].has_desired)
                jw_number(w, "desired", t[i].desired);
            else
                jw_null(w, "desired");
            jw_number(w, "ready", t[i].ready);
            jw_number(w, "pending", t[i].pending);
            jw_number(w, "releasing", t[i].releasing);
            jw_close(w, '}');
            desired += t[i].desired;
            ready += t[i].ready;
            pending += t[i].pending;
            releasing += t[i].releasing;
        }
        jw_close(w, ']');
        free(t);
        jw_number(w, "desired", desired);
        jw_number(w, "ready", ready);
        jw_number(w, "pending", pending);
        jw_number(w, "releasing", releasing);
        status_group_overrides(w, rt, g->name, now_ms);
        jw_close(w, '}');
    }
    jw_close(w, ']');
}

static void key_groups(struct sw_jw *key, struct sw_runtime *rt, int64_t now_ms)
{
    const struct sw_config *config = sw_runtime_config(rt);
    key_bytes(key, &config, sizeof(config));
    const struct sw_desired *desired = sw_runtime_desired(rt);
    for (size_t i = 0; i < desired->count; i++) {
        key_str(key, desired->entries[i].group);
        key_str(key, desired->entries[i].region);
        key_bytes(key, &desired->entries[i].count, sizeof(desired->entries[i].count));
    }
    key_bytes(key, "", 1);
    const struct sw_units *units = sw_runtime_units(rt);
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (u->state == SW_UNIT_CLOSED)
            continue;
        key_bytes(key, &u->state, sizeof(u->state));
        key_str(key, u->group);
        key_str(key, u->region);
    }
    key_bytes(key, "", 1);
    size_t overrides = sw_runtime_override_count(rt);
    for (size_t i = 0; i < overrides; i++) {
        const struct sw_runtime_override *ov = sw_runtime_override_at(rt, i);
        key_str(key, ov->group);
        key_str(key, ov->region);
        key_bytes(key, &ov->count, sizeof(ov->count));
        key_bytes(key, &ov->set_ms, sizeof(ov->set_ms));
        key_bytes(key, &ov->until_ms, sizeof(ov->until_ms));
    }
    /* An override's remaining_s counts down with the clock. */
    if (overrides > 0)
        key_bytes(key, &now_ms, sizeof(now_ms));
}

/* What the budget section shows, computed once for the key and once for the text. */
struct budget_view {
    double limit_usd_hour;
    double spend_usd_hour;
    double ready_spend_usd_hour;
    int open_units;
    int max_leases;
};

static struct budget_view budget_view(struct sw_runtime *rt)
{
    const struct sw_config *config = sw_runtime_config(rt);
    const struct sw_units *units = sw_runtime_units(rt);
    struct budget_view v;
    memset(&v, 0, sizeof(v)); /* padding too: the struct is compared as bytes */
    v.limit_usd_hour = config->guard.budget_usd_hour;
    /* Pending units count at their planned price, as the guard counts them. */
    v.spend_usd_hour = round3(sw_units_spend_usd_hour(units));
    v.ready_spend_usd_hour = round3(spend_ready(units));
    v.open_units = sw_units_count_open(units);
    v.max_leases = config->guard.max_leases;
    return v;
}

static void status_budget(struct jw *w, struct sw_runtime *rt, int64_t now_ms)
{
    (void)now_ms;
    struct budget_view v = budget_view(rt);
    jw_open(w, "budget", '{');
    if (v.limit_usd_hour > 0)
        jw_number(w, "limit_usd_hour", v.limit_usd_hour);
    else
        jw_null(w, "limit_usd_hour");
    jw_number(w, "spend_usd_hour", v.spend_usd_hour);
    jw_number(w, "ready_spend_usd_hour", v.ready_spend_usd_hour);
    jw_number(w, "open_units", v.open_units);
    if (v.max_leases > 0)
        jw_number(w, "max_leases", v.max_leases);
    else
        jw_null(w, "max_leases");
    jw_close(w, '}');
}

static void key_budget(struct sw_jw *key, struct sw_runtime *rt, int64_t now_ms)
{
    (void)now_ms;
    struct budget_view v = budget_view(rt);
    key_bytes(key, &v, sizeof(v));
}

static void status_escrow(struct jw *w, struct sw_runtime *rt, int64_t now_ms)
{
    (void)rt;
    (void)now_ms;
    /* No market plugin reports an escrow balance yet: unknown, not zero. */
    jw_open(w, "escrow", '{');
    jw_null(w, "runway_hours");
    jw_close(w, '}');
}

static void status_counters(struct jw *w, struct sw_runtime *rt, int64_t now_ms)
{
    (void)now_ms;
    const struct sw_runtime_stats *st = sw_runtime_stats(rt);
    jw_open(w, "counters", '{');
    jw_number(w, "evaluations", (double)st->evaluations);
    jw_number(w, "policy_errors", (double)st->policy_errors);
    jw_number(w, "acquires_started", (double)st->acquires_started);
    jw_number(w, "acquires_ready", (double)st->acquires_ready);
    jw_number(w, "acquires_failed", (double)st->acquires_failed);
    jw_number(w, "releases_started", (double)st->releases_started);
    jw_number(w, "releases_done", (double)st->releases_done);
    jw_number(w, "releases_failed", (double)st->releases_failed);
    jw_number(w, "refused", (double)st->refused);
    jw_number(w, "units_lost", (double)st->units_lost);
    jw_number(w, "ops_in_flight", (double)sw_runtime_ops_in_flight(rt));
    jw_close(w, '}');
}

static void key_counters(struct sw_jw *key, struct sw_runtime *rt, int64_t now_ms)
{
    (void)now_ms;
    /* Counters only (no padding to compare). */
    key_bytes(key, sw_runtime_stats(rt), sizeof(struct sw_runtime_stats));
    size_t in_flight = sw_runtime_ops_in_flight(rt);
    key_bytes(key, &in_flight, sizeof(in_flight));
}

struct status_section {
    void (*write)(struct jw *w, struct sw_runtime *rt, int64_t now_ms);
    /* NULL: written for every request */
    void (*key)(struct sw_jw *key, struct sw_runtime *rt, int64_t now_ms);
};

/* In document order. */
static const struct status_section status_sections[] = {
    {status_identity, NULL},     {status_leader, NULL},           {status_clock, NULL},
    {status_market, NULL},       {status_policies, key_policies}, {status_groups, key_groups},
    {status_budget, key_budget}, {status_escrow, NULL},           {status_counters, key_counters},
};
#define STATUS_SECTION_COUNT SW_ARRAY_LEN(status_sections)

struct status_cache {
    struct {
        struct sw_jw key;  /* the inputs text was written from */
        struct sw_jw text; /* the section's members, each after a comma */
        bool valid;
    } sections[STATUS_SECTION_COUNT];
    struct sw_jw scratch_key;
    uint64_t hits;
    uint64_t writes;
};

static void status_cache_free(struct status_cache *cache)
{
    for (size_t i = 0; i < STATUS_SECTION_COUNT; i++) {
        free(cache->sections[i].key.text);
        free(cache->sections[i].text.text);
    }
    free(cache->scratch_key.text);
}

/* Appends a section's cached text, written again first if its inputs changed. */
static void status_cached_section(struct jw *w, struct status_cache *cache, size_t i,
                                  struct sw_runtime *rt, int64_t now_ms)
{
    const struct status_section *sec = &status_sections[i];
    struct sw_jw *key = &cache->scratch_key;
    key->len = 0;
    sec->key(key, rt, now_ms);
    struct sw_jw *old = &cache->sections[i].key;
    if (cache->sections[i].valid && old->len == key->len &&
        memcmp(old->text, key->text, key->len) == 0) {
        cache->hits++;
    } else {
        struct sw_jw swap = *old;
        *old = *key;
        *key = swap;
        struct sw_jw *text = &cache->sections[i].text;
        text->len = 0;
        struct jw sw = {.b = text, .first = false};
        sec->write(&sw, rt, now_ms);
        cache->sections[i].valid = true;
        cache->writes++;
    }
    const struct sw_jw *text = &cache->sections[i].text;
    /* The cached text opens with a comma, wrong only for the object's first member. */
    size_t skip = w->first && text->len > 0 && text->text[0] == ',' ? 1 : 0;
    if (text->len > skip)
        jw_raw(w, text->text + skip, text->len - skip);
    w->first = false;
}

/* The document into out (appended); cache NULL writes every section. */
static void status_write(struct sw_jw *out, struct status_cache *cache, struct sw_runtime *rt,
                         int64_t now_ms)
{
    struct jw w = {.b = out, .first = true};
    jw_open(&w, NULL, '{');
    for (size_t i = 0; i < STATUS_SECTION_COUNT; i++) {
        if (cache != NULL && status_sections[i].key != NULL)
            status_cached_section(&w, cache, i, rt, now_ms);
        else
            status_sections[i].write(&w, rt, now_ms);
    }
    jw_close(&w, '}');
}

char *sw_admin_status_json(struct sw_runtime *rt, int64_t now_ms)
{
    struct sw_jw out = {0};
    status_write(&out, NULL, rt, now_ms);
    return sbuf_take(&out);
}

char *sw_admin_api_status_json(struct sw_admin_api *api, int64_t now_ms)
{
    struct sw_jw out = {0};
    status_write(&out, api->status, api->rt, now_ms);
    return sbuf_take(&out);
}

void sw_admin_api_status_cache_stats(const struct sw_admin_api *api, uint64_t *hits,
                                     uint64_t *writes)
{
    *hits = api->status->hits;
    *writes = api->status->writes;
}

/* ---- Prometheus exposition ------------------------------------------------------------------ */

/* Label values escape backslash, double quote and newline (exposition format 0.0.4). */
static void put_label(struct sw_jw *b, const char *value)
{
    for (const char *p = value ? value : ""; *p; p++) {
        if (*p == '\\')
            sbuf_printf(b, "\\\\");
        else if (*p == '"')
            sbuf_printf(b, "\\\"");
        else if (*p == '\n')
            sbuf_printf(b, "\\n");
        else
            sbuf_printf(b, "%c", *p);
    }
}

/* Shortest text that reads back as the same double. */
static void put_number(struct sw_jw *b, double v)
{
    if (isnan(v)) {
        sbuf_printf(b, "NaN");
        return;
    }
    if (isinf(v)) {
        sbuf_printf(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (floor(v) == v && fabs(v) < 1e15) {
        sbuf_printf(b, "%.0f", v);
        return;
    }
    char buf[40];
    for (int precision = 6; precision <= 17; precision++) {
        snprintf(buf, sizeof(buf), "%.*g", precision, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    sbuf_printf(b, "%s", buf);
}

static void put_header(struct sw_jw *b, const char *name, const char *type, const char *help)
{
    sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample: name{k1="v1",k2="v2"} value. labels is "k", "v", ..., NULL. */
static void put_sample(struct sw_jw *b, const char *name, const char *const *labels, double value)
{
    sbuf_printf(b, "%s", name);
    if (labels != NULL && labels[0] != NULL) {
        sbuf_printf(b, "{");
        for (size_t i = 0; labels[i] != NULL; i += 2) {
            sbuf_printf(b, "%s%s=\"", i ? "," : "", labels[i]);
            put_label(b, labels[i + 1]);
            sbuf_printf(b, "\"");
        }
        sbuf_printf(b, "}");
    }
    sbuf_printf(b, " ");
    put_number(b, value);
    sbuf_printf(b, "\n");
}

static void put_histogram(struct sw_jw *b, const char *name, const char *label,
                          const char *label_value, const struct sw_runtime_hist *h)
{
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= SW_RUNTIME_HIST_BUCKETS; i++) {
        cumulative += h->buckets[i];
        sbuf_printf(b, "%s_bucket{%s=\"", name, label);
        put_label(b, label_value);
        sbuf_printf(b, "\",le=\"");
        if (i < SW_RUNTIME_HIST_BUCKETS)
            put_number(b, sw_runtime_hist_bounds[i]);
        else
            sbuf_printf(b, "+Inf");
        sbuf_printf(b, "\"} %" PRIu64 "\n", cumulative);
    }
    sbuf_printf(b, "%s_sum{%s=\"", name, label);
    put_label(b, label_value);
    sbuf_printf(b, "\"} ");
    put_number(b, h->sum_s);
    sbuf_printf(b, "\n%s_count{%s=\"", name, label);
    put_label(b, label_value);
    sbuf_printf(b, "\"} %" PRIu64 "\n", h->count);
}

struct lease_count {
    const char *group;
    const char *region;
    const char *state;
    int count;
};

static int lease_count_order(const void *pa, const void *pb)
{
    const struct lease_count *a = pa, *b = pb;
    int c = strcmp(a->group, b->group);
    if (c == 0)
        c = strcmp(a->region, b->region);
    return c != 0 ? c : strcmp(a->state, b->state);
}

static void put_leases(struct sw_jw *b, const struct sw_units *units)
{
    put_header(b, "steward_leases", "gauge", "Units not closed, by group, region and state.");
    struct lease_count *counts = sw_xcalloc(units->count + 1, sizeof(*counts));
    size_t n = 0;
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (u->state == SW_UNIT_CLOSED)
            continue;
        const char *group = u->group ? u->group : "";
        const char *region = u->region ? u->region : "";
        const char *state = sw_unit_state_name(u->state);
        size_t j = 0;
        while (j < n && !(strcmp(counts[j].group, group) == 0 &&
                          strcmp(counts[j].region, region) == 0 &&
                          strcmp(counts[j].state, state) == 0))
            j++;
        if (j == n)
            counts[n++] = (struct lease_count){group, region, state, 0};
        counts[j].count++;
    }
    qsort(counts, n, sizeof(*counts), lease_count_order);
    for (size_t i = 0; i < n; i++) {
        const char *labels[] = {"group", counts[i].group, "region", counts[i].region,
                                "state", counts[i].state, NULL};
        put_sample(b, "steward_leases", labels, counts[i].count);
    }
    free(counts);
}

char *sw_admin_metrics_text(struct sw_runtime *rt, int64_t now_ms)
{
    const struct sw_config *config = sw_runtime_config(rt);
    const struct sw_runtime_stats *st = sw_runtime_stats(rt);
    const struct sw_units *units = sw_runtime_units(rt);
    struct sw_jw b = {0};

    put_header(&b, "steward_build_info", "gauge", "Version of this steward; always 1.");
    const char *build_labels[] = {"version", SW_VERSION, "id", config->instance_id, NULL};
    put_sample(&b, "steward_build_info", build_labels, 1);
    put_header(&b, "steward_ready", "gauge",
               "1 once recovery finished and the first evaluation ran.");
    put_sample(&b, "steward_ready", NULL, sw_runtime_ready(rt) ? 1 : 0);
    sbuf_printf(&b, "%s", sw_runtime_leader_metrics(rt)); /* ha: steward_leader and _ha_ */
    put_header(&b, "steward_uptime_seconds", "gauge", "Time since the runtime started (clock).");
    put_sample(&b, "steward_uptime_seconds", NULL,
               st->started_ms > 0 ? (double)(now_ms - st->started_ms) / 1000.0 : 0);

    size_t policy_count = sw_runtime_policy_count(rt);
    put_header(&b, "steward_evaluations_total", "counter", "Policy evaluations.");
    for (size_t i = 0; i < policy_count; i++) {
        struct sw_runtime_policy_info info;
        sw_runtime_policy_info(rt, i, &info);
        const char *labels[] = {"policy", info.name, NULL};
        put_sample(&b, "steward_evaluations_total", labels, (double)info.evaluations);
    }
    put_header(&b, "steward_evaluation_duration_seconds", "histogram",
               "Wall time of one evaluation: the policy call, guard, planning and journaling.");
    for (size_t i = 0; i < policy_count; i++) {
        struct sw_runtime_policy_info info;
        sw_runtime_policy_info(rt, i, &info);
        put_histogram(&b, "steward_evaluation_duration_seconds", "policy", info.name,
                      &info.duration);
    }
    put_header(&b, "steward_policy_errors_total", "counter",
               "Failed evaluate and on_event calls (the last good desired state was kept).");
    for (size_t i = 0; i < policy_count; i++) {
        struct sw_runtime_policy_info info;
        sw_runtime_policy_info(rt, i, &info);
        const char *labels[] = {"policy", info.name, NULL};
        put_sample(&b, "steward_policy_errors_total", labels, (double)info.errors);
    }
    put_header(&b, "steward_policy_paused", "gauge", "1 while a policy is paused.");
    for (size_t i = 0; i < policy_count; i++) {
        struct sw_runtime_policy_info info;
        sw_runtime_policy_info(rt, i, &info);
        const char *labels[] = {"policy", info.name, NULL};
        put_sample(&b, "steward_policy_paused", labels, info.paused ? 1 : 0);
    }

    put_header(&b, "steward_actions_total", "counter",
               "Marketplace actions by kind and outcome (started, ready/done, failed, and "
               "refused by the guard before starting).");
    static const char *const outcomes_acq[] = {"started", "ready", "failed", "refused"};
    static const char *const outcomes_rel[] = {"started", "done", "failed", "refused"};
    const uint64_t acq[] = {st->acquires_started, st->acquires_ready, st->acquires_failed,
                            sw_runtime_refused_count(rt, SW_ACTION_ACQUIRE)};
    const uint64_t rel[] = {st->releases_started, st->releases_done, st->releases_failed,
                            sw_runtime_refused_count(rt, SW_ACTION_RELEASE)};
    for (size_t i = 0; i < SW_ARRAY_LEN(acq); i++) {
        const char *labels[] = {"kind", "acquire", "outcome", outcomes_acq[i], NULL};
        put_sample(&b, "steward_actions_total", labels, (double)acq[i]);
    }
    for (size_t i = 0; i < SW_ARRAY_LEN(rel); i++) {
        const char *labels[] = {"kind", "release", "outcome", outcomes_rel[i], NULL};
        put_sample(&b, "steward_actions_total", labels, (double)rel[i]);
    }
    put_header(&b, "steward_market_ops_in_flight", "gauge",
               "Marketplace operations started and not yet completed.");
    put_sample(&b, "steward_market_ops_in_flight", NULL, (double)sw_runtime_ops_in_flight(rt));
    put_header(&b, "steward_units_lost_total", "counter",
               "Units the marketplace closed or stopped listing without steward asking.");
    put_sample(&b, "steward_units_lost_total", NULL, (double)st->units_lost);
    put_header(&b, "steward_recovery_total", "counter",
               "What recovery did with unfinished intents and unknown units at start.");
    const char *adopted[] = {"outcome", "adopted", NULL};
    const char *abandoned[] = {"outcome", "abandoned", NULL};
    const char *orphans[] = {"outcome", "orphan_closed", NULL};
    put_sample(&b, "steward_recovery_total", adopted, (double)st->recovered_adopted);
    put_sample(&b, "steward_recovery_total", abandoned, (double)st->recovered_abandoned);
    put_sample(&b, "steward_recovery_total", orphans, (double)st->recovered_closed_orphans);

    size_t http_count = sw_runtime_http_stats_count(rt);
    put_header(&b, "steward_plugin_http_requests_total", "counter",
               "HTTP requests plugins made through the host (a market plugin's marketplace "
               "calls), by outcome: ok (a response, any status) or error (no response).");
    for (size_t i = 0; i < http_count; i++) {
        const struct sw_runtime_http_stats *hs = sw_runtime_http_stats_at(rt, i);
        const char *ok[] = {"plugin", hs->plugin, "outcome", "ok", NULL};
        const char *error[] = {"plugin", hs->plugin, "outcome", "error", NULL};
        put_sample(&b, "steward_plugin_http_requests_total", ok, (double)hs->ok);
        put_sample(&b, "steward_plugin_http_requests_total", error, (double)hs->errors);
    }
    put_header(&b, "steward_plugin_http_request_duration_seconds", "histogram",
               "Latency of plugins' HTTP requests that got a response.");
    for (size_t i = 0; i < http_count; i++) {
        const struct sw_runtime_http_stats *hs = sw_runtime_http_stats_at(rt, i);
        put_histogram(&b, "steward_plugin_http_request_duration_seconds", "plugin", hs->plugin,
                      &hs->duration);
    }

    put_leases(&b, units);
    put_header(&b, "steward_desired_units", "gauge",
               "Effective desired units per group and region (policies, overrides, guard).");
    const struct sw_desired *desired = sw_runtime_desired(rt);
    for (size_t i = 0; i < desired->count; i++) {
        const char *labels[] = {"group", desired->entries[i].group, "region",
                                desired->entries[i].region, NULL};
        put_sample(&b, "steward_desired_units", labels, desired->entries[i].count);
    }
    put_header(&b, "steward_overrides", "gauge", "Operator overrides in force.");
    put_sample(&b, "steward_overrides", NULL, (double)sw_runtime_override_count(rt));
    put_header(&b, "steward_spend_usd_per_hour", "gauge",
               "Spend rate of open units; pending units at their planned price.");
    put_sample(&b, "steward_spend_usd_per_hour", NULL, sw_units_spend_usd_hour(units));
    if (config->guard.budget_usd_hour > 0) {
        put_header(&b, "steward_budget_usd_per_hour", "gauge", "The guard's budget.");
        put_sample(&b, "steward_budget_usd_per_hour", NULL, config->guard.budget_usd_hour);
    }
    /* steward_escrow_runway_hours, steward_dns_sync_errors_total and
     * steward_probe_results_total appear once a module reports them: an absent series
     * says "unknown", a zero would lie. */
    return sbuf_take(&b);
}

/* ---- journal-backed reads ------------------------------------------------------------------- */

/* since: epoch milliseconds, or a duration ("15m") back from now. */
static bool parse_since(const char *text, int64_t now_ms, int64_t *from_ms)
{
    int64_t v;
    if (parse_int64(text, 0, INT64_MAX / 2, &v)) {
        *from_ms = v;
        return true;
    }
    int64_t ms;
    if (sw_duration_parse(text, &ms) == 0) {
        *from_ms = now_ms > ms ? now_ms - ms : 0;
        return true;
    }
    return false;
}

static cJSON *evals_parse(struct sw_journal *j, const char *policy, int64_t from_ms,
                          size_t limit, struct sw_error *err)
{
    char *text = sw_journal_evals_json(j, policy, from_ms, INT64_MAX, limit, err);
    if (text == NULL)
        return NULL;
    cJSON *arr = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        sw_error_set(err, SW_ESTORE, "journal returned unreadable evaluations");
        return NULL;
    }
    return arr;
}

static void handle_decisions(struct sw_admin_api *api, struct sw_http_exchange *ex,
                             const struct sw_http_request *req)
{
    int64_t now = sw_clock_now(api->clock);
    char *since = sw_http_request_query_param(req, "since");
    char *policy = sw_http_request_query_param(req, "policy");
    char *limit_text = sw_http_request_query_param(req, "limit");
    char *inputs_text = sw_http_request_query_param(req, "inputs");
    int64_t limit = DEFAULT_LIMIT, from_ms = 0;
    bool with_inputs = inputs_text != NULL && strcmp(inputs_text, "1") == 0;
    struct sw_error err = {0};
    cJSON *arr = NULL;
    if (limit_text != NULL && !parse_int64(limit_text, 1, MAX_LIMIT, &limit)) {
        respond_error(ex, 400, "limit: expected an integer from 1 to %d", MAX_LIMIT);
        goto out;
    }
    if (since != NULL && !parse_since(since, now, &from_ms)) {
        respond_error(ex, 400, "since: expected epoch milliseconds or a duration like 15m");
        goto out;
    }
    if (policy != NULL && policy[0] == '\0') {
        free(policy);
        policy = NULL;
    }
    if (since != NULL) {
        /* Paging forward: the oldest `limit` from `since` on. */
        arr = evals_parse(sw_runtime_journal(api->rt), policy, from_ms, (size_t)limit, &err);
    } else {
        /* The newest `limit`: widen a window back from now until it holds enough, so a
         * long journal is never read whole. */
        int64_t window = 60000;
        for (;;) {
            cJSON_Delete(arr);
            bool all = window > now || window > (int64_t)1 << 40;
            arr = evals_parse(sw_runtime_journal(api->rt), policy, all ? 0 : now - window, 0,
                              &err);
            if (arr == NULL || all || cJSON_GetArraySize(arr) >= limit)
                break;
            window *= 8;
        }
        while (arr != NULL && cJSON_GetArraySize(arr) > limit)
            cJSON_DeleteItemFromArray(arr, 0);
    }
    if (arr == NULL) {
        respond_error(ex, 500, "journal: %s", err.msg);
        goto out;
    }
    if (!with_inputs) {
        cJSON *item;
        cJSON_ArrayForEach(item, arr) cJSON_DeleteItemFromObjectCaseSensitive(item, "inputs");
    }
    cJSON *root = cJSON_CreateObject();
    add_num(root, "count", cJSON_GetArraySize(arr));
    /* history: a `since` older than what retention kept says which span is left. */
    struct sw_history_span span;
    char gap[256];
    if (since != NULL &&
        sw_journal_history_span(sw_runtime_journal(api->rt), &span, NULL) == 0 &&
        sw_journal_history_gap(&span, from_ms, gap, sizeof(gap))) {
        add_num(root, "kept_from_ms", (double)span.pruned_before_ms);
        cJSON_AddStringToObject(root, "note", gap);
    }
    cJSON_AddItemToObject(root, "decisions", arr);
    respond_json_owned(ex, 200, cjson_take(root));
out:
    free(since);
    free(policy);
    free(limit_text);
    free(inputs_text);
}

static void handle_events(struct sw_admin_api *api, struct sw_http_exchange *ex,
                          const struct sw_http_request *req)
{
    char *after_text = sw_http_request_query_param(req, "after");
    char *limit_text = sw_http_request_query_param(req, "limit");
    int64_t after = 0, limit = DEFAULT_LIMIT;
    if (after_text != NULL && !parse_int64(after_text, 0, INT64_MAX, &after)) {
        respond_error(ex, 400, "after: expected an event id (integer >= 0)");
        goto out;
    }
    if (limit_text != NULL && !parse_int64(limit_text, 1, MAX_LIMIT, &limit)) {
        respond_error(ex, 400, "limit: expected an integer from 1 to %d", MAX_LIMIT);
        goto out;
    }
    struct sw_event_record *events = NULL;
    size_t count = 0;
    struct sw_journal *j = sw_runtime_journal(api->rt);
    if (sw_journal_events(j, after, (size_t)limit, &events, &count) < 0) {
        respond_error(ex, 500, "journal: %s", sw_journal_last_error(j));
        goto out;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "events");
    int64_t last = after;
    for (size_t i = 0; i < count; i++) {
        cJSON *item = cJSON_CreateObject();
        add_num(item, "id", (double)events[i].id);
        add_num(item, "at_ms", (double)events[i].at_ms);
        cJSON_AddStringToObject(item, "type", events[i].type);
        cJSON *data = events[i].data_json ? cJSON_Parse(events[i].data_json) : NULL;
        cJSON_AddItemToObject(item, "data", data != NULL ? data : cJSON_CreateNull());
        cJSON_AddItemToArray(arr, item);
        last = events[i].id;
    }
    sw_journal_events_free(events, count);
    add_num(root, "next_after", (double)last);
    respond_json_owned(ex, 200, cjson_take(root));
out:
    free(after_text);
    free(limit_text);
}

/* ---- mutations ------------------------------------------------------------------------------ */

static bool authorized(struct sw_admin_api *api, struct sw_http_exchange *ex,
                       const struct sw_http_request *req)
{
    if (api->token == NULL) {
        respond_error(ex, 403, "mutations are disabled: set admin.token_env in the config and "
                               "the token in that environment variable");
        return false;
    }
    const char *auth = sw_http_request_header(req, "authorization");
    const char *given = NULL;
    if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0) {
        given = auth + 7;
        while (*given == ' ')
            given++;
    }
    if (sw_admin_token_equal(api->token, given))
        return true;
    api->refused_auth++;
    int64_t now = sw_clock_now(api->clock);
    if (api->refused_auth_logged_ms == 0 ||
        now - api->refused_auth_logged_ms >= AUTH_LOG_EVERY_MS) {
        /* Method and path only: the header may hold a near-miss of the real token. */
        sw_log(SW_LOG_WARN, LOG, "refused %s %s: %s bearer token (%" PRIu64 " refused so far)",
               req->method, req->path, given == NULL ? "missing" : "wrong", api->refused_auth);
        api->refused_auth_logged_ms = now;
    }
    static const char *const headers[] = {"WWW-Authenticate: Bearer realm=\"steward\""};
    static const char body[] = "{\"error\":\"unauthorized: send Authorization: Bearer <token>\"}";
    sw_http_respond(ex, 401, JSON_TYPE, headers, 1, body, sizeof(body) - 1);
    return false;
}

static void handle_pause(struct sw_admin_api *api, struct sw_http_exchange *ex, const char *name,
                         bool pause)
{
    if (sw_runtime_policy_set_paused(api->rt, name, pause) < 0) {
        respond_error(ex, 404, "no policy named '%s'", name);
        return;
    }
    sw_log(SW_LOG_INFO, LOG, "%s policy %s", pause ? "paused" : "resumed", name);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "policy", name);
    cJSON_AddBoolToObject(root, "paused", pause);
    respond_json_owned(ex, 200, cjson_take(root));
}

static void handle_override(struct sw_admin_api *api, struct sw_http_exchange *ex,
                            const struct sw_http_request *req, const char *group)
{
    if (strcmp(req->method, "DELETE") == 0) {
        if (sw_runtime_override_clear(api->rt, group) < 0) {
            respond_error(ex, 404, "group '%s' has no override", group);
            return;
        }
        sw_log(SW_LOG_INFO, LOG, "cleared the override of group %s", group);
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "group", group);
        cJSON_AddBoolToObject(root, "cleared", true);
        respond_json_owned(ex, 200, cjson_take(root));
        return;
    }
    cJSON *body = cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(body, "count");
    const cJSON *region = cJSON_GetObjectItemCaseSensitive(body, "region");
    const cJSON *duration = cJSON_GetObjectItemCaseSensitive(body, "for");
    int64_t duration_ms = 0;
    if (!cJSON_IsObject(body)) {
        respond_error(ex, 400, "expected a JSON object like {\"count\": 3, \"region\": "
                               "\"eu-west\", \"for\": \"30m\"}");
    } else if (!cJSON_IsNumber(count) || count->valuedouble != floor(count->valuedouble) ||
               count->valuedouble < 0 || count->valuedouble > 1e6) {
        respond_error(ex, 400, "count: expected an integer >= 0");
    } else if (region != NULL && !cJSON_IsNull(region) &&
               (!cJSON_IsString(region) || region->valuestring[0] == '\0')) {
        respond_error(ex, 400, "region: expected a region name or null");
    } else if (duration == NULL || sw_duration_from_json(duration, &duration_ms) < 0 ||
               duration_ms <= 0) {
        respond_error(ex, 400, "for: expected a duration like \"30m\" (or seconds)");
    } else {
        struct sw_error err = {0};
        const char *r = cJSON_IsString(region) ? region->valuestring : NULL;
        int rc = sw_runtime_override_set(api->rt, group, r, (int)count->valuedouble, duration_ms,
                                         &err);
        if (rc == SW_ENOENT) {
            respond_error(ex, 404, "%s", err.msg);
        } else if (rc < 0) {
            respond_error(ex, 400, "%s", err.msg);
        } else {
            int64_t now = sw_clock_now(api->clock);
            const struct sw_runtime_override *found = NULL;
            for (size_t i = 0; i < sw_runtime_override_count(api->rt); i++) {
                const struct sw_runtime_override *ov = sw_runtime_override_at(api->rt, i);
                if (strcmp(ov->group, group) == 0 &&
                    ((r == NULL && ov->region == NULL) ||
                     (r != NULL && ov->region != NULL && strcmp(ov->region, r) == 0)))
                    found = ov;
            }
            respond_json_owned(ex, 200, found ? cjson_take(override_json(found, now))
                                              : sw_xstrdup("{}"));
        }
    }
    cJSON_Delete(body);
}

/* ---- routing -------------------------------------------------------------------------------- */

static bool is_get(const struct sw_http_request *req)
{
    return strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
}

static void method_not_allowed(struct sw_http_exchange *ex, const char *allow)
{
    char header[64];
    snprintf(header, sizeof(header), "Allow: %s", allow);
    const char *headers[] = {header};
    static const char body[] = "{\"error\":\"method not allowed\"}";
    sw_http_respond(ex, 405, JSON_TYPE, headers, 1, body, sizeof(body) - 1);
}

#define MAX_SEGS 5

static void handle(void *ud, struct sw_http_exchange *ex, const struct sw_http_request *req)
{
    struct sw_admin_api *api = ud;
    api->requests++;
    char *segs[MAX_SEGS + 1] = {0};
    size_t n = split_path(req->path, segs, MAX_SEGS);
    int64_t now = sw_clock_now(api->clock);

    if (n > MAX_SEGS) {
        respond_error(ex, 404, "no such resource");
    } else if (n == 1 && strcmp(segs[0], "healthz") == 0) {
        if (is_get(req))
            respond_text(ex, 200, "text/plain", "ok\n");
        else
            method_not_allowed(ex, "GET, HEAD");
    } else if (n == 1 && strcmp(segs[0], "readyz") == 0) {
        if (!is_get(req))
            method_not_allowed(ex, "GET, HEAD");
        else if (sw_runtime_ready(api->rt))
            respond_text(ex, 200, "text/plain", "ready\n");
        else
            respond_text(ex, 503, "text/plain",
                         "not ready: recovery or the first evaluation has not finished\n");
    } else if (n == 1 && strcmp(segs[0], "metrics") == 0) {
        if (is_get(req)) {
            char *text = sw_admin_metrics_text(api->rt, now);
            sw_http_respond(ex, 200, PROM_TYPE, NULL, 0, text, strlen(text));
            free(text);
        } else {
            method_not_allowed(ex, "GET, HEAD");
        }
    } else if (n == 2 && strcmp(segs[0], "v1") == 0 && strcmp(segs[1], "status") == 0) {
        if (is_get(req)) {
            static const char *const headers[] = {"Cache-Control: no-store"};
            api->status_out.len = 0;
            status_write(&api->status_out, api->status, api->rt, now);
            sw_http_respond(ex, 200, JSON_TYPE, headers, 1, api->status_out.text,
                            api->status_out.len);
        } else
            method_not_allowed(ex, "GET, HEAD");
    } else if (n == 2 && strcmp(segs[0], "v1") == 0 && strcmp(segs[1], "leases") == 0) {
        if (is_get(req))
            respond_json_owned(ex, 200, sw_admin_leases_json(api->rt));
        else
            method_not_allowed(ex, "GET, HEAD");
    } else if (n == 2 && strcmp(segs[0], "v1") == 0 && strcmp(segs[1], "decisions") == 0) {
        if (is_get(req))
            handle_decisions(api, ex, req);
        else
            method_not_allowed(ex, "GET, HEAD");
    } else if (n == 2 && strcmp(segs[0], "v1") == 0 && strcmp(segs[1], "events") == 0) {
        if (is_get(req))
            handle_events(api, ex, req);
        else
            method_not_allowed(ex, "GET, HEAD");
    } else if (n == 2 && strcmp(segs[0], "v1") == 0 && strcmp(segs[1], "reload") == 0) {
        if (strcmp(req->method, "POST") != 0) {
            method_not_allowed(ex, "POST");
        } else if (authorized(api, ex, req)) {
            sw_log(SW_LOG_INFO, LOG, "reloading policies");
            sw_runtime_reload(api->rt);
            static const char body[] =
                "{\"reloaded\":true,\"note\":\"policy files re-read; one that fails to "
                "compile keeps its old version (see the log)\"}";
            sw_http_respond(ex, 200, JSON_TYPE, NULL, 0, body, sizeof(body) - 1);
        }
    } else if (n == 4 && strcmp(segs[0], "v1") == 0 && strcmp(segs[1], "policies") == 0 &&
               (strcmp(segs[3], "pause") == 0 || strcmp(segs[3], "resume") == 0)) {
        if (strcmp(req->method, "POST") != 0)
            method_not_allowed(ex, "POST");
        else if (authorized(api, ex, req))
            handle_pause(api, ex, segs[2], strcmp(segs[3], "pause") == 0);
    } else if (n == 4 && strcmp(segs[0], "v1") == 0 && strcmp(segs[1], "groups") == 0 &&
               strcmp(segs[3], "override") == 0) {
        if (strcmp(req->method, "POST") != 0 && strcmp(req->method, "DELETE") != 0)
            method_not_allowed(ex, "POST, DELETE");
        else if (authorized(api, ex, req))
            handle_override(api, ex, req, segs[2]);
    } else {
        respond_error(ex, 404, "no such resource (see docs/operations.md for the routes)");
    }
    free_segs(segs, n, MAX_SEGS);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

struct sw_admin_api *sw_admin_api_start(const struct sw_admin_api_opts *opts,
                                        struct sw_error *err)
{
    if (opts == NULL || opts->loop == NULL || opts->runtime == NULL || opts->clock == NULL) {
        sw_error_set(err, SW_EINVAL, "admin API: loop, runtime and clock are required");
        return NULL;
    }
    struct sw_admin_api *api = sw_xcalloc(1, sizeof(*api));
    api->rt = opts->runtime;
    api->clock = opts->clock;
    if (opts->token != NULL && opts->token[0] != '\0')
        api->token = sw_xstrdup(opts->token);
    api->status = sw_xcalloc(1, sizeof(*api->status));
    struct sw_http_server_opts sopts = {
        .host = opts->host != NULL ? opts->host : "127.0.0.1",
        .port = opts->port,
        .max_header_bytes = opts->max_header_bytes ? opts->max_header_bytes
                                                   : DEFAULT_MAX_HEADER_BYTES,
        .max_body_bytes = opts->max_body_bytes ? opts->max_body_bytes : DEFAULT_MAX_BODY_BYTES,
        .idle_timeout_ms = opts->idle_timeout_ms ? opts->idle_timeout_ms
                                                 : DEFAULT_IDLE_TIMEOUT_MS,
        .max_connections = opts->max_connections ? opts->max_connections
                                                 : DEFAULT_MAX_CONNECTIONS,
    };
    api->server = sw_http_server_start(opts->loop, &sopts, handle, api, err);
    if (api->server == NULL) {
        free(api->token);
        free(api->status);
        free(api);
        return NULL;
    }
    return api;
}

struct sw_admin_api *sw_admin_api_start_from_config(uv_loop_t *loop, struct sw_runtime *rt,
                                                    struct sw_clock *clock,
                                                    const struct sw_config *config,
                                                    struct sw_error *err)
{
    sw_error_clear(err);
    if (config == NULL || !config->admin.enabled)
        return NULL;
    const char *token = NULL;
    if (config->admin.token_env != NULL) {
        token = getenv(config->admin.token_env);
        if (token == NULL || token[0] == '\0') {
            sw_error_set(err, SW_ECONFIG, "%s:admin.token_env: environment variable %s is not "
                         "set (or empty): set it to the admin API's bearer token",
                         config->path, config->admin.token_env);
            return NULL;
        }
        sw_log_add_secret(token);
    }
    struct sw_admin_api_opts opts = {
        .loop = loop,
        .runtime = rt,
        .clock = clock,
        .host = config->admin.host,
        .port = config->admin.port,
        .token = token,
    };
    struct sw_admin_api *api = sw_admin_api_start(&opts, err);
    if (api == NULL)
        return NULL;
    bool v6 = strchr(config->admin.host, ':') != NULL;
    sw_log(SW_LOG_INFO, LOG, "admin API on http://%s%s%s:%d (%s%s)", v6 ? "[" : "",
           config->admin.host, v6 ? "]" : "", sw_admin_api_port(api),
           token != NULL ? "mutations need the bearer token in $" : "read-only: no token_env",
           token != NULL ? config->admin.token_env : "");
    return api;
}

int sw_admin_api_port(const struct sw_admin_api *api)
{
    return api != NULL ? sw_http_server_port(api->server) : -1;
}

void sw_admin_api_close(struct sw_admin_api *api)
{
    if (api == NULL)
        return;
    sw_http_server_close(api->server);
    free(api->token);
    status_cache_free(api->status);
    free(api->status);
    free(api->status_out.text);
    free(api);
}
