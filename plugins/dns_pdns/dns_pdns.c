/* dns_pdns — DNS records through the PowerDNS Authoritative HTTP API (kind DNS).
 *
 *   list       GET   {base_url}/api/v1/servers/{server_id}/zones/{zone}
 *   upsert     PATCH {same} {"rrsets": [{..., "changetype": "REPLACE", "records": [...]}]}
 *   remove     PATCH {same} {"rrsets": [{"name", "type", "changetype": "DELETE"}]}
 *   update_if  GET, compare the RRset with the expected one, then PATCH. The API has no
 *              conditional write, so this narrows the race to one round trip instead of
 *              closing it (dns_rfc2136 closes it with prerequisites).
 *
 * Every request carries X-API-Key from the environment variable named by api_key_env
 * (SECRET_ENV: steward redacts it from every log line; this file never formats it).
 * Records are presentation-format strings, as PowerDNS stores them ("1.2.3.4",
 * "target.example.", "\"text\"").
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "steward/swp_plugin.h"
#include "steward/swp_util.h"

struct plugin;

struct op {
    struct op *next;
    struct plugin *p;
    uint64_t request;
    char *zone;
    char *what;
    /* update_if: the PATCH to send once the GET showed the expected records. */
    char *patch_body;
    struct swp_rrset expected;
    char **expected_records;
    swp_done_cb done;
    swp_rrsets_cb list_done;
    void *ud;
};

struct plugin {
    const struct swp_host *host;
    char *base_url;
    char *server_id;
    char *key_header; /* "X-API-Key: <secret>" */
    uint32_t timeout_ms;
    struct op *ops;
};

static struct op *op_new(struct plugin *p, const char *zone, const char *what)
{
    struct op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        abort();
    op->p = p;
    op->zone = swp_xstrdup(zone);
    op->what = swp_xstrdup(what);
    op->next = p->ops;
    p->ops = op;
    return op;
}

static void op_free(struct op *op)
{
    for (struct op **pp = &op->p->ops; *pp != NULL; pp = &(*pp)->next)
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    for (size_t i = 0; i < op->expected.record_count; i++)
        free(op->expected_records[i]);
    free(op->expected_records);
    free((char *)op->expected.name);
    free((char *)op->expected.type);
    free(op->patch_body);
    free(op->zone);
    free(op->what);
    free(op);
}

static void op_finish(struct op *op, int status, const struct swp_error *err)
{
    if (op->list_done != NULL)
        op->list_done(op->ud, status, NULL, 0, err);
    else
        op->done(op->ud, status, err);
    op_free(op);
}

static void op_failf(struct op *op, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void op_failf(struct op *op, int code, const char *fmt, ...)
{
    struct swp_error err = {code, ""};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
    va_end(ap);
    op->p->host->log(op->p->host, SWP_LOG_WARN, "%s", err.msg);
    op_finish(op, code, &err);
}

/* Zone names go into the URL as they are: refuse anything that would need escaping. */
static bool url_safe(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-' || *c == '_'))
            return false;
    return true;
}

static uint64_t http_send(struct op *op, const char *method, const char *body, swp_http_cb cb)
{
    struct plugin *p = op->p;
    char *url = swp_xasprintf("%s/api/v1/servers/%s/zones/%s", p->base_url, p->server_id, op->zone);
    const char *headers[] = {p->key_header, "Accept: application/json",
                             "Content-Type: application/json"};
    struct swp_http_req req = {
        .size = sizeof(req),
        .method = method,
        .url = url,
        .headers = headers,
        .header_count = body != NULL ? 3 : 2,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .timeout_ms = p->timeout_ms,
    };
    op->request = p->host->http_request(p->host, &req, cb, op);
    free(url);
    return op->request;
}

/* A non-2xx answer as one line: PowerDNS puts the reason in {"error": "..."}. */
static void fail_http(struct op *op, int status, const struct swp_http_resp *resp)
{
    struct plugin *p = op->p;
    if (status == SWP_ECANCELED) {
        struct swp_error err = {SWP_ECANCELED, "cancelled"};
        op_finish(op, SWP_ECANCELED, &err);
        return;
    }
    if (status < 0) {
        op_failf(op, status == SWP_ETIMEDOUT ? SWP_ETIMEDOUT : SWP_EIO,
                 "%s: PowerDNS API at %s unreachable (%s)", op->what, p->base_url,
                 status == SWP_ETIMEDOUT ? "timed out" : "transport error");
        return;
    }
    const char *reason = "";
    cJSON *json = resp->body_len > 0 ? cJSON_ParseWithLength(resp->body, resp->body_len) : NULL;
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(json, "error");
    if (cJSON_IsString(error))
        reason = error->valuestring;
    if (resp->status == 401 || resp->status == 403)
        op_failf(op, SWP_EIO, "%s: PowerDNS refused the API key (HTTP %ld): check api_key_env",
                 op->what, resp->status);
    else if (resp->status == 404)
        op_failf(op, SWP_EIO, "%s: PowerDNS has no zone %s on server %s (HTTP 404)", op->what,
                 op->zone, p->server_id);
    else
        op_failf(op, SWP_EIO, "%s: PowerDNS answered HTTP %ld%s%s", op->what, resp->status,
                 reason[0] ? ": " : "", reason);
    cJSON_Delete(json);
}

/* ---- list -------------------------------------------------------------------------------- */

struct rrsets {
    struct swp_rrset *sets;
    const char ***records;
    size_t count;
};

static void rrsets_free(struct rrsets *r)
{
    for (size_t i = 0; i < r->count; i++)
        free(r->records[i]);
    free(r->records);
    free(r->sets);
}

/* Borrows strings from json (alive while it is). Disabled records are not served, so they
 * are not listed. Returns 0 or -1 when the document is not a zone. */
static int parse_zone(const cJSON *json, struct rrsets *out)
{
    memset(out, 0, sizeof(*out));
    const cJSON *rrsets = cJSON_GetObjectItemCaseSensitive(json, "rrsets");
    if (!cJSON_IsArray(rrsets))
        return -1;
    size_t n = (size_t)cJSON_GetArraySize(rrsets);
    out->sets = calloc(n ? n : 1, sizeof(*out->sets));
    out->records = calloc(n ? n : 1, sizeof(*out->records));
    if (out->sets == NULL || out->records == NULL)
        abort();
    const cJSON *set;
    cJSON_ArrayForEach(set, rrsets)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(set, "name");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(set, "type");
        const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(set, "ttl");
        const cJSON *records = cJSON_GetObjectItemCaseSensitive(set, "records");
        if (!cJSON_IsString(name) || !cJSON_IsString(type) || !cJSON_IsArray(records))
            continue;
        size_t rn = (size_t)cJSON_GetArraySize(records);
        const char **texts = calloc(rn ? rn : 1, sizeof(char *));
        if (texts == NULL)
            abort();
        size_t used = 0;
        const cJSON *rec;
        cJSON_ArrayForEach(rec, records)
        {
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(rec, "content");
            if (cJSON_IsString(content) &&
                !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "disabled")))
                texts[used++] = content->valuestring;
        }
        if (used == 0) {
            free(texts);
            continue;
        }
        struct swp_rrset *r = &out->sets[out->count];
        r->name = name->valuestring;
        r->type = type->valuestring;
        r->ttl = cJSON_IsNumber(ttl) && ttl->valuedouble >= 0 ? (uint32_t)ttl->valuedouble : 0;
        r->records = texts;
        r->record_count = used;
        out->records[out->count++] = texts;
    }
    return 0;
}

static void list_done(void *ud, int status, const struct swp_http_resp *resp)
{
    struct op *op = ud;
    op->request = 0;
    if (status < 0 || resp->status != 200) {
        fail_http(op, status, resp);
        return;
    }
    cJSON *json = cJSON_ParseWithLength(resp->body, resp->body_len);
    struct rrsets sets;
    if (json == NULL || parse_zone(json, &sets) < 0) {
        cJSON_Delete(json);
        op_failf(op, SWP_EIO, "%s: PowerDNS answered something that is not a zone", op->what);
        return;
    }
    op->list_done(op->ud, SWP_OK, sets.sets, sets.count, NULL);
    rrsets_free(&sets);
    cJSON_Delete(json);
    op_free(op);
}

static int pdns_list(void *state, const char *zone, swp_rrsets_cb done, void *ud)
{
    struct plugin *p = state;
    if (!url_safe(zone) || done == NULL)
        return SWP_EINVAL;
    char what[300];
    snprintf(what, sizeof(what), "listing of %s", zone);
    struct op *op = op_new(p, zone, what);
    op->list_done = done;
    op->ud = ud;
    if (http_send(op, "GET", NULL, list_done) == 0) {
        op_free(op);
        return SWP_ENOTSUP;
    }
    return 0;
}

/* ---- writes ------------------------------------------------------------------------------ */

static char *patch_body(const char *name, const char *type, uint32_t ttl,
                        const char *const *records, size_t count)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *sets = cJSON_AddArrayToObject(root, "rrsets");
    cJSON *set = cJSON_CreateObject();
    cJSON_AddStringToObject(set, "name", name);
    cJSON_AddStringToObject(set, "type", type);
    if (count > 0) {
        cJSON_AddNumberToObject(set, "ttl", ttl);
        cJSON_AddStringToObject(set, "changetype", "REPLACE");
        cJSON *recs = cJSON_AddArrayToObject(set, "records");
        for (size_t i = 0; i < count; i++) {
            cJSON *rec = cJSON_CreateObject();
            cJSON_AddStringToObject(rec, "content", records[i]);
            cJSON_AddBoolToObject(rec, "disabled", false);
            cJSON_AddItemToArray(recs, rec);
        }
    } else {
        cJSON_AddStringToObject(set, "changetype", "DELETE");
    }
    cJSON_AddItemToArray(sets, set);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    char *owned = swp_xstrdup(text);
    cJSON_free(text);
    return owned;
}

static void patch_done(void *ud, int status, const struct swp_http_resp *resp)
{
    struct op *op = ud;
    op->request = 0;
    if (status < 0 || (resp->status != 204 && resp->status != 200)) {
        fail_http(op, status, resp);
        return;
    }
    op_finish(op, SWP_OK, NULL);
}

static bool same_name(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

static bool has_record(const struct swp_rrset *set, const char *text)
{
    for (size_t i = 0; i < set->record_count; i++)
        if (strcmp(set->records[i], text) == 0)
            return true;
    return false;
}

/* update_if, step 2: the zone as it is now decides whether the PATCH goes. */
static void check_done(void *ud, int status, const struct swp_http_resp *resp)
{
    struct op *op = ud;
    op->request = 0;
    if (status < 0 || resp->status != 200) {
        fail_http(op, status, resp);
        return;
    }
    cJSON *json = cJSON_ParseWithLength(resp->body, resp->body_len);
    struct rrsets sets;
    if (json == NULL || parse_zone(json, &sets) < 0) {
        cJSON_Delete(json);
        op_failf(op, SWP_EIO, "%s: PowerDNS answered something that is not a zone", op->what);
        return;
    }
    const struct swp_rrset *now = NULL;
    for (size_t i = 0; i < sets.count && now == NULL; i++)
        if (strcasecmp(sets.sets[i].type, op->expected.type) == 0 &&
            same_name(sets.sets[i].name, op->expected.name))
            now = &sets.sets[i];
    bool same = now == NULL ? op->expected.record_count == 0
                            : now->record_count == op->expected.record_count;
    for (size_t i = 0; same && now != NULL && i < op->expected.record_count; i++)
        same = has_record(now, op->expected.records[i]);
    rrsets_free(&sets);
    cJSON_Delete(json);
    if (!same) {
        op_failf(op, SWP_EAGAIN, "%s: the records changed on PowerDNS since they were listed: "
                 "concurrent change", op->what);
        return;
    }
    if (http_send(op, "PATCH", op->patch_body, patch_done) == 0)
        op_failf(op, SWP_EIO, "%s: the host refused the request", op->what);
}

static int write_op(struct plugin *p, const char *zone, const struct swp_rrset *expected,
                    const char *name, const char *type, uint32_t ttl,
                    const char *const *records, size_t count, swp_done_cb done, void *ud)
{
    if (!url_safe(zone) || name == NULL || type == NULL || done == NULL)
        return SWP_EINVAL;
    for (size_t i = 0; i < count; i++)
        if (records[i] == NULL)
            return SWP_EINVAL;
    char what[400];
    snprintf(what, sizeof(what), "%s of %s/%s", count ? "update" : "removal", name, type);
    struct op *op = op_new(p, zone, what);
    op->done = done;
    op->ud = ud;
    op->patch_body = patch_body(name, type, ttl, records, count);
    uint64_t id;
    if (expected != NULL) {
        op->expected.name = swp_xstrdup(name);
        op->expected.type = swp_xstrdup(type);
        op->expected_records = calloc(expected->record_count + 1, sizeof(char *));
        if (op->expected_records == NULL)
            abort();
        for (size_t i = 0; i < expected->record_count; i++)
            op->expected_records[i] = swp_xstrdup(expected->records[i]);
        op->expected.records = (const char *const *)op->expected_records;
        op->expected.record_count = expected->record_count;
        id = http_send(op, "GET", NULL, check_done);
    } else {
        id = http_send(op, "PATCH", op->patch_body, patch_done);
    }
    if (id == 0) {
        op_free(op);
        return SWP_ENOTSUP;
    }
    return 0;
}

static int pdns_upsert(void *state, const char *zone, const struct swp_rrset *rrset,
                       swp_done_cb done, void *ud)
{
    if (rrset == NULL || rrset->record_count == 0)
        return SWP_EINVAL;
    return write_op(state, zone, NULL, rrset->name, rrset->type, rrset->ttl, rrset->records,
                    rrset->record_count, done, ud);
}

static int pdns_remove(void *state, const char *zone, const char *name, const char *type,
                       swp_done_cb done, void *ud)
{
    return write_op(state, zone, NULL, name, type, 0, NULL, 0, done, ud);
}

static int pdns_update_if(void *state, const char *zone, const struct swp_rrset *expected,
                          const struct swp_rrset *desired, swp_done_cb done, void *ud)
{
    if (expected == NULL || desired == NULL)
        return SWP_EINVAL;
    return write_op(state, zone, expected, desired->name, desired->type, desired->ttl,
                    desired->records, desired->record_count, done, ud);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static int pdns_init(const struct swp_host *host, void **state, struct swp_error *err)
{
    const char *base = host->cfg_str(host, "base_url");
    const char *server_id = host->cfg_str(host, "server_id");
    const char *key = host->cfg_str(host, "api_key_env");
    if (key == NULL || key[0] == '\0') {
        err->code = SWP_ECONFIG;
        snprintf(err->msg, sizeof(err->msg),
                 "api_key_env: the environment variable it names is not set or empty");
        return SWP_ECONFIG;
    }
    if (!url_safe(server_id)) {
        err->code = SWP_ECONFIG;
        snprintf(err->msg, sizeof(err->msg), "server_id: expected [A-Za-z0-9._-]+");
        return SWP_ECONFIG;
    }
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        err->code = SWP_ECONFIG;
        snprintf(err->msg, sizeof(err->msg), "base_url: expected http:// or https://, got \"%s\"",
                 base);
        return SWP_ECONFIG;
    }
    struct plugin *p = calloc(1, sizeof(*p));
    if (p == NULL)
        abort();
    p->host = host;
    p->base_url = swp_xstrdup(base);
    size_t len = strlen(p->base_url);
    while (len > 0 && p->base_url[len - 1] == '/')
        p->base_url[--len] = '\0';
    p->server_id = swp_xstrdup(server_id);
    p->key_header = swp_xasprintf("X-API-Key: %s", key);
    p->timeout_ms = (uint32_t)host->cfg_int(host, "timeout");
    *state = p;
    return SWP_OK;
}

static void pdns_destroy(void *state)
{
    struct plugin *p = state;
    while (p->ops != NULL) {
        struct op *op = p->ops;
        if (op->request != 0)
            p->host->http_cancel(p->host, op->request); /* completes it with ECANCELED */
        if (p->ops == op) {
            struct swp_error err = {SWP_ECANCELED, "cancelled"};
            op_finish(op, SWP_ECANCELED, &err);
        }
    }
    /* Scrub the secret before giving the memory back. */
    memset(p->key_header, 0, strlen(p->key_header));
    free(p->key_header);
    free(p->base_url);
    free(p->server_id);
    free(p);
}

static const struct swp_config_entry CONFIG[] = {
    {"base_url", SWP_CFG_STRING, NULL, true,
     "PowerDNS webserver URL, e.g. \"http://127.0.0.1:8081\""},
    {"server_id", SWP_CFG_STRING, "\"localhost\"", false, "PowerDNS server id in the API path"},
    {"api_key_env", SWP_CFG_SECRET_ENV, NULL, true,
     "environment variable holding the API key (sent as X-API-Key)"},
    {"timeout", SWP_CFG_DURATION, "\"10s\"", false, "per HTTP request"},
};

static const struct swp_dns_ops DNS_OPS = {
    .size = sizeof(struct swp_dns_ops),
    .list = pdns_list,
    .upsert = pdns_upsert,
    .remove = pdns_remove,
    .update_if = pdns_update_if,
};

static const struct swp_plugin PLUGIN = {
    .abi_major = SWP_ABI_MAJOR,
    .abi_minor = SWP_ABI_MINOR,
    .size = sizeof(struct swp_plugin),
    .name = "dns_pdns",
    .version = "1.0.0",
    .description = "DNS records through the PowerDNS Authoritative HTTP API",
    .kinds = SWP_KIND_DNS,
    .config = CONFIG,
    .config_count = sizeof(CONFIG) / sizeof(CONFIG[0]),
    .init = pdns_init,
    .destroy = pdns_destroy,
    .dns = &DNS_OPS,
};

SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void)
{
    return &PLUGIN;
}
