#include "ha.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base64.h"
#include "http_client.h"
#include "log.h"
#include "mem.h"

static const char *LOG = "ha";

/* Every reply of the gateway is small; a units set of a few thousand records fits easily. */
#define MAX_REPLY_BYTES (16u << 20)
/* Back-off after a transport error before a write is tried again (the step-down deadline
 * bounds how long a leader keeps trying). */
#define WRITE_RETRY_MS 200
#define KEEPALIVE_RETRY_MS 250

enum ha_state { HA_IDLE, HA_FOLLOWING, HA_LEADING, HA_LOST };
/* W_BARRIER sends nothing: it completes (0) when it reaches the head of the queue, i.e. once
 * every write queued before it was acknowledged (sw_ha_barrier). */
enum write_kind { W_PUT, W_DELETE, W_LOAD, W_BARRIER };

struct write_entry {
    struct write_entry *next;
    int kind;
    char *unit_key;  /* put/delete: the etcd key below the prefix ("units/<key>", "kv/..."),
                        NULL for a load or a barrier */
    char *record;    /* put */
    uint64_t unit_seq;
    sw_ha_done_cb done;
    sw_ha_units_cb load_cb;
    void *ud;
};

struct sw_ha {
    struct sw_ha_opts opts;
    const struct sw_ha_config *config;
    struct sw_clock *clock;
    struct sw_http_client *http;
    char *replica;
    char *leader_key;
    char *units_prefix;  /* "<prefix>/units/" */
    char *kv_prefix;     /* "<prefix>/kv/": the plugins' key-value spaces */
    char *seq_key;
    size_t endpoint;     /* index into config->endpoints; moves on after a transport error */
    int state;
    bool freeing;

    int64_t ttl_ms;
    int64_t poll_ms;     /* follower: how often the leader key is read */
    int64_t timeout_ms;  /* per request */
    int64_t margin_ms;   /* a leader steps down this long before its lease could expire */

    uint64_t timer;          /* follower poll, or leader keepalive tick */
    uint64_t stepdown_timer;
    uint64_t ctl_req;        /* the election/keepalive request in flight, 0 none */
    int64_t lease_id;
    int64_t grant_sent_ms;
    int64_t ka_sent_ms;
    int64_t won_revision;
    int64_t lease_deadline_ms; /* leader: the lease surely lives until then */

    char *leader_seen;
    int64_t leader_rev_seen;
    int64_t leader_since_ms;
    uint64_t elections_won;
    bool etcd_trouble; /* logged once per outage */

    struct write_entry *writes_head;
    struct write_entry *writes_tail;
    struct write_entry *inflight;
    uint64_t write_req;
    uint64_t write_timer;
    uint64_t seq_written;
};

/* ---- reply parsing ------------------------------------------------------------------------- */

static int parse_fail(char *msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int parse_fail(char *msg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, 128, fmt, ap);
    va_end(ap);
    return SW_EHTTP;
}

/* int64 fields arrive as strings ("7587862041617357317"); a number is accepted only when
 * it is small enough to be exact in a double. Absent: 0 (the gateway omits zero). */
static int get_i64(const cJSON *obj, const char *name, int64_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = 0;
    if (item == NULL || cJSON_IsNull(item))
        return 0;
    if (cJSON_IsString(item)) {
        const char *s = item->valuestring;
        char *end = NULL;
        if (s[0] == '\0')
            return -1;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0')
            return -1;
        *out = (int64_t)v;
        return 0;
    }
    if (cJSON_IsNumber(item) && item->valuedouble >= -9007199254740992.0 &&
        item->valuedouble <= 9007199254740992.0 &&
        item->valuedouble == (double)(int64_t)item->valuedouble) {
        *out = (int64_t)item->valuedouble;
        return 0;
    }
    return -1;
}

/* Parses the first JSON value of body; what follows (a chunked trailer, a second stream
 * message) is ignored. An error reply, whatever the status, becomes SW_EHTTP. */
static int parse_reply(long status, const char *body, size_t len, cJSON **out, char *msg)
{
    *out = NULL;
    const char *end = NULL;
    cJSON *root = body != NULL && len > 0 ? cJSON_ParseWithLengthOpts(body, len, &end, false)
                                          : NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return parse_fail(msg, "etcd answered HTTP %ld without a JSON object", status);
    }
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (error != NULL) {
        /* Unary calls: {"error":"...","message":"...","code":5}; a stream (keepalive):
         * {"error":{"grpc_code":5,"http_code":404,"message":"...","http_status":"..."}}. */
        const cJSON *holder = cJSON_IsObject(error) ? error : root;
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(holder, "message");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(holder, "code");
        if (code == NULL)
            code = cJSON_GetObjectItemCaseSensitive(holder, "grpc_code");
        int rc = parse_fail(msg, "etcd: %s (code %d, HTTP %ld)",
                            cJSON_IsString(text)          ? text->valuestring
                            : cJSON_IsString(error)       ? error->valuestring
                                                          : "error",
                            cJSON_IsNumber(code) ? code->valueint : 0, status);
        cJSON_Delete(root);
        return rc;
    }
    if (status != 200) {
        cJSON_Delete(root);
        return parse_fail(msg, "etcd answered HTTP %ld", status);
    }
    *out = root;
    return 0;
}

static int header_revision(const cJSON *root, int64_t *revision, char *msg)
{
    const cJSON *header = cJSON_GetObjectItemCaseSensitive(root, "header");
    if (!cJSON_IsObject(header) || get_i64(header, "revision", revision) < 0)
        return parse_fail(msg, "etcd reply without a valid header.revision");
    return 0;
}

int sw_ha_parse_grant(long status, const char *body, size_t len, int64_t *id, int64_t *ttl_s,
                      char *msg)
{
    cJSON *root = NULL;
    int rc = parse_reply(status, body, len, &root, msg);
    if (rc < 0)
        return rc;
    if (get_i64(root, "ID", id) < 0 || get_i64(root, "TTL", ttl_s) < 0 || *id == 0 ||
        *ttl_s <= 0)
        rc = parse_fail(msg, "lease grant reply without a valid ID and TTL");
    cJSON_Delete(root);
    return rc;
}

int sw_ha_parse_keepalive(long status, const char *body, size_t len, int64_t *ttl_s, char *msg)
{
    cJSON *root = NULL;
    int rc = parse_reply(status, body, len, &root, msg);
    if (rc < 0)
        return rc;
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(root, "result");
    if (!cJSON_IsObject(result) || get_i64(result, "TTL", ttl_s) < 0)
        rc = parse_fail(msg, "lease keepalive reply without a result");
    cJSON_Delete(root);
    return rc;
}

void sw_ha_kvs_clear(struct sw_ha_kvs *kvs)
{
    for (size_t i = 0; i < kvs->count; i++) {
        free(kvs->items[i].key);
        free(kvs->items[i].value);
    }
    free(kvs->items);
    kvs->items = NULL;
    kvs->count = 0;
}

static char *decode_field(const cJSON *obj, const char *name, bool required)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (item == NULL)
        return required ? NULL : sw_xstrdup("");
    if (!cJSON_IsString(item))
        return NULL;
    return sw_base64_decode(item->valuestring, strlen(item->valuestring), NULL);
}

static int parse_kvs(const cJSON *holder, struct sw_ha_kvs *out, char *msg)
{
    const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(holder, "kvs");
    if (kvs == NULL)
        return 0; /* omitted: no key in the range */
    if (!cJSON_IsArray(kvs))
        return parse_fail(msg, "range reply: kvs is not an array");
    const cJSON *item;
    cJSON_ArrayForEach(item, kvs)
    {
        struct sw_ha_kv kv = {0};
        kv.key = decode_field(item, "key", true);
        kv.value = decode_field(item, "value", false);
        if (kv.key == NULL || kv.value == NULL ||
            get_i64(item, "create_revision", &kv.create_revision) < 0 ||
            get_i64(item, "mod_revision", &kv.mod_revision) < 0 ||
            get_i64(item, "lease", &kv.lease) < 0) {
            free(kv.key);
            free(kv.value);
            return parse_fail(msg, "range reply: malformed kv");
        }
        out->items = sw_xrealloc(out->items, (out->count + 1) * sizeof(*out->items));
        out->items[out->count++] = kv;
    }
    return 0;
}

int sw_ha_parse_range(long status, const char *body, size_t len, struct sw_ha_kvs *out,
                      int64_t *revision, char *msg)
{
    cJSON *root = NULL;
    int rc = parse_reply(status, body, len, &root, msg);
    if (rc < 0)
        return rc;
    if ((rc = header_revision(root, revision, msg)) == 0)
        rc = parse_kvs(root, out, msg);
    cJSON_Delete(root);
    return rc;
}

int sw_ha_parse_txn(long status, const char *body, size_t len, bool *succeeded,
                    int64_t *revision, struct sw_ha_kvs *ranges, char *msg)
{
    cJSON *root = NULL;
    int rc = parse_reply(status, body, len, &root, msg);
    if (rc < 0)
        return rc;
    *succeeded = false;
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "succeeded");
    if (ok != NULL && !cJSON_IsBool(ok)) {
        rc = parse_fail(msg, "txn reply: succeeded is not a boolean");
        goto out;
    }
    *succeeded = cJSON_IsTrue(ok);
    if ((rc = header_revision(root, revision, msg)) < 0)
        goto out;
    const cJSON *responses = cJSON_GetObjectItemCaseSensitive(root, "responses");
    if (responses != NULL && !cJSON_IsArray(responses)) {
        rc = parse_fail(msg, "txn reply: responses is not an array");
        goto out;
    }
    const cJSON *resp;
    cJSON_ArrayForEach(resp, responses)
    {
        const cJSON *range = cJSON_GetObjectItemCaseSensitive(resp, "response_range");
        if (range != NULL && ranges != NULL && (rc = parse_kvs(range, ranges, msg)) < 0)
            goto out;
    }
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- unit records ---------------------------------------------------------------------------- */

char *sw_ha_unit_record(const struct sw_unit *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "key", u->key);
    cJSON_AddStringToObject(o, "group", u->group);
    cJSON_AddStringToObject(o, "region", u->region);
    cJSON_AddStringToObject(o, "state", sw_unit_state_name(u->state));
    if (u->market_id != NULL)
        cJSON_AddStringToObject(o, "market_id", u->market_id);
    if (u->provider != NULL)
        cJSON_AddStringToObject(o, "provider", u->provider);
    cJSON_AddNumberToObject(o, "price_usd_hour", u->price_usd_hour);
    cJSON_AddNumberToObject(o, "ordered_ms", (double)u->ordered_ms);
    cJSON_AddNumberToObject(o, "ready_ms", (double)u->ready_ms);
    if (u->uri_count > 0) {
        cJSON *uris = cJSON_AddArrayToObject(o, "uris");
        for (size_t i = 0; i < u->uri_count; i++)
            cJSON_AddItemToArray(uris, cJSON_CreateString(u->uris[i]));
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *owned = sw_xstrdup(text);
    cJSON_free(text);
    return owned;
}

static const char *str_field(const cJSON *o, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(item) && item->valuestring[0] != '\0' ? item->valuestring : NULL;
}

struct sw_unit *sw_ha_unit_from_record(const char *json, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(json, len);
    struct sw_unit *u = NULL;
    const char *key = str_field(o, "key"), *group = str_field(o, "group");
    const char *region = str_field(o, "region"), *state = str_field(o, "state");
    int st = state != NULL ? sw_unit_state_parse(state) : -1;
    if (!cJSON_IsObject(o) || key == NULL || group == NULL || region == NULL || st < 0)
        goto out;
    u = sw_unit_new(key, group, region);
    u->state = st;
    const char *market_id = str_field(o, "market_id"), *provider = str_field(o, "provider");
    u->market_id = market_id != NULL ? sw_xstrdup(market_id) : NULL;
    u->provider = provider != NULL ? sw_xstrdup(provider) : NULL;
    const cJSON *num = cJSON_GetObjectItemCaseSensitive(o, "price_usd_hour");
    u->price_usd_hour = cJSON_IsNumber(num) && num->valuedouble >= 0 ? num->valuedouble : 0;
    num = cJSON_GetObjectItemCaseSensitive(o, "ordered_ms");
    u->ordered_ms = cJSON_IsNumber(num) ? (int64_t)num->valuedouble : 0;
    num = cJSON_GetObjectItemCaseSensitive(o, "ready_ms");
    u->ready_ms = cJSON_IsNumber(num) ? (int64_t)num->valuedouble : 0;
    const cJSON *uris = cJSON_GetObjectItemCaseSensitive(o, "uris");
    if (cJSON_IsArray(uris))
        sw_unit_set_uris_json(u, uris);
out:
    cJSON_Delete(o);
    return u;
}

/* ---- requests ------------------------------------------------------------------------------ */

static int64_t now_ms(struct sw_ha *ha)
{
    return sw_clock_now(ha->clock);
}

static char *b64(const char *text)
{
    return sw_base64_encode(text, strlen(text));
}

static uint64_t post(struct sw_ha *ha, const char *path, const char *body, sw_http_cb cb)
{
    char *url = sw_xasprintf("%s%s", ha->config->endpoints[ha->endpoint], path);
    static const char *const headers[] = {"Content-Type: application/json"};
    struct swp_http_req req = {
        .size = sizeof(req),
        .method = "POST",
        .url = url,
        .headers = headers,
        .header_count = 1,
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = (uint32_t)ha->timeout_ms,
        .max_response_bytes = MAX_REPLY_BYTES,
    };
    uint64_t id = sw_http_client_request(ha->http, &req, cb, ha);
    free(url);
    return id;
}

/* After a transport error or a server error, the next request goes to the next endpoint. */
static void note_trouble(struct sw_ha *ha, const char *what, const char *detail)
{
    if (!ha->etcd_trouble)
        sw_log(SW_LOG_WARN, LOG, "etcd %s: %s: %s (retrying%s)", what,
               ha->config->endpoints[ha->endpoint], detail,
               ha->config->endpoint_count > 1 ? " on the next endpoint" : "");
    ha->etcd_trouble = true;
    ha->endpoint = (ha->endpoint + 1) % ha->config->endpoint_count;
}

static void note_ok(struct sw_ha *ha)
{
    if (ha->etcd_trouble)
        sw_log(SW_LOG_INFO, LOG, "etcd reachable again at %s",
               ha->config->endpoints[ha->endpoint]);
    ha->etcd_trouble = false;
}

/* True for a transport error, or an answer that is not the gateway's (proxy, 5xx): then
 * it was noted (note_trouble) and the caller retries; what names the request in the log. */
static bool transport_trouble(struct sw_ha *ha, const char *what, int status,
                              const struct swp_http_resp *resp, const char *error_text)
{
    if (status >= 0 && resp != NULL && resp->status != 0 && resp->status < 500)
        return false;
    char buf[32];
    const char *detail = buf;
    if (status < 0)
        detail = error_text != NULL && error_text[0] ? error_text : sw_strerror(status);
    else
        snprintf(buf, sizeof(buf), "HTTP %ld", resp != NULL ? resp->status : 0L);
    note_trouble(ha, what, detail);
    return true;
}

static void note_leader(struct sw_ha *ha, const char *name, int64_t revision)
{
    if (name != NULL && ha->leader_seen != NULL && strcmp(name, ha->leader_seen) == 0 &&
        revision == ha->leader_rev_seen)
        return;
    if (name == NULL && ha->leader_seen == NULL)
        return;
    free(ha->leader_seen);
    ha->leader_seen = name != NULL ? sw_xstrdup(name) : NULL;
    ha->leader_rev_seen = revision;
    ha->leader_since_ms = now_ms(ha);
    if (name != NULL && strcmp(name, ha->replica) != 0)
        sw_log(SW_LOG_INFO, LOG, "following leader %s (revision %" PRId64 ")", name, revision);
    else if (name == NULL)
        sw_log(SW_LOG_INFO, LOG, "no leader: campaigning");
}

/* ---- follower: poll the leader key, campaign when it is gone ------------------------------ */

static void follow_tick(void *ud);
static void keepalive_tick(void *ud);
static void fail_writes(struct sw_ha *ha, int status);

/* Stops *timer if it runs and zeroes it. */
static void timer_clear(struct sw_ha *ha, uint64_t *timer)
{
    if (*timer != 0)
        sw_clock_timer_stop(ha->clock, *timer);
    *timer = 0;
}

/* Cancels the request *req names, if any; *req is zeroed first, so the callback (which runs
 * with SW_ECANCELED) finds nothing of its own to clear. */
static void request_cancel(struct sw_ha *ha, uint64_t *req)
{
    uint64_t id = *req;
    *req = 0;
    if (id != 0)
        sw_http_client_cancel(ha->http, id);
}

/* The body of the lease calls that name one lease (revoke, keepalive). */
static void lease_body(char *buf, size_t size, int64_t lease_id)
{
    snprintf(buf, size, "{\"ID\":\"%" PRId64 "\"}", lease_id);
}

static void schedule(struct sw_ha *ha, int64_t delay_ms, sw_timer_cb cb)
{
    timer_clear(ha, &ha->timer);
    ha->timer = sw_clock_timer_start(ha->clock, (uint64_t)delay_ms, cb, ha);
}

static void revoke_done(void *ud, int status, const struct swp_http_resp *resp,
                        const char *error_text)
{
    (void)ud, (void)status, (void)resp, (void)error_text;
}

static void lease_revoke(struct sw_ha *ha, int64_t lease_id)
{
    char body[64];
    lease_body(body, sizeof(body), lease_id);
    post(ha, "/v3/lease/revoke", body, revoke_done);
}

static void stepdown_fired(void *ud);

static void arm_stepdown(struct sw_ha *ha)
{
    timer_clear(ha, &ha->stepdown_timer);
    int64_t left = ha->lease_deadline_ms - ha->margin_ms - now_ms(ha);
    ha->stepdown_timer =
        sw_clock_timer_start(ha->clock, left > 0 ? (uint64_t)left : 0, stepdown_fired, ha);
}

static void lose(struct sw_ha *ha, const char *why)
{
    if (ha->state != HA_LEADING)
        return;
    ha->state = HA_LOST;
    timer_clear(ha, &ha->timer);
    timer_clear(ha, &ha->stepdown_timer);
    request_cancel(ha, &ha->ctl_req);
    free(ha->leader_seen);
    ha->leader_seen = NULL;
    sw_log(SW_LOG_ERROR, LOG, "replica %s is no longer the leader: %s; it stops acting", ha->replica,
           why);
    fail_writes(ha, SW_EAGAIN);
    if (ha->opts.on_lost != NULL)
        ha->opts.on_lost(ha->opts.ud, why);
}

static void stepdown_fired(void *ud)
{
    struct sw_ha *ha = ud;
    ha->stepdown_timer = 0;
    lose(ha, "the lease could not be renewed before it expires");
}

static void become_leader(struct sw_ha *ha, int64_t revision)
{
    ha->state = HA_LEADING;
    ha->won_revision = revision;
    ha->elections_won++;
    note_leader(ha, ha->replica, revision);
    sw_log(SW_LOG_INFO, LOG, "replica %s is the leader (%s, revision %" PRId64 ", lease %" PRIx64
           ", ttl %" PRId64 "s)", ha->replica, ha->leader_key, revision, (uint64_t)ha->lease_id,
           ha->ttl_ms / 1000);
    arm_stepdown(ha);
    schedule(ha, ha->ttl_ms / 3, keepalive_tick);
    if (ha->opts.on_elected != NULL)
        ha->opts.on_elected(ha->opts.ud);
}

/* The start of each reply a follower gets (range, lease grant, campaign): false when the
 * caller has nothing more to do with it: cancelled, freeing, or a transport trouble (noted,
 * and the leader key is polled again). */
static bool follower_reply(struct sw_ha *ha, const char *what, int status,
                           const struct swp_http_resp *resp, const char *error_text)
{
    if (status == SW_ECANCELED || ha->freeing)
        return false;
    ha->ctl_req = 0;
    if (!transport_trouble(ha, what, status, resp, error_text))
        return true;
    schedule(ha, ha->poll_ms, follow_tick);
    return false;
}

static void campaign_done(void *ud, int status, const struct swp_http_resp *resp,
                          const char *error_text)
{
    struct sw_ha *ha = ud;
    /* On a transport trouble the txn may have been applied: the lease is kept so a win is not
     * lost. If it was applied, the next range shows this replica as the leader and the lease
     * lapses (nobody keeps it alive): another campaign follows after the TTL. */
    if (!follower_reply(ha, "campaign", status, resp, error_text))
        return;
    char msg[128];
    bool won = false;
    int64_t revision = 0;
    struct sw_ha_kvs kvs = {0};
    if (sw_ha_parse_txn(resp->status, resp->body, resp->body_len, &won, &revision, &kvs, msg) <
        0) {
        sw_log(SW_LOG_WARN, LOG, "campaign: %s", msg);
        sw_ha_kvs_clear(&kvs);
        lease_revoke(ha, ha->lease_id);
        schedule(ha, ha->poll_ms, follow_tick);
        return;
    }
    note_ok(ha);
    if (won) {
        sw_ha_kvs_clear(&kvs);
        become_leader(ha, revision);
        return;
    }
    if (kvs.count > 0)
        note_leader(ha, kvs.items[0].value, kvs.items[0].create_revision);
    sw_ha_kvs_clear(&kvs);
    lease_revoke(ha, ha->lease_id); /* lost the race: this lease would only linger */
    ha->lease_id = 0;
    schedule(ha, ha->poll_ms, follow_tick);
}

static void grant_done(void *ud, int status, const struct swp_http_resp *resp,
                       const char *error_text)
{
    struct sw_ha *ha = ud;
    if (!follower_reply(ha, "lease grant", status, resp, error_text))
        return;
    char msg[128];
    int64_t ttl_s = 0;
    if (sw_ha_parse_grant(resp->status, resp->body, resp->body_len, &ha->lease_id, &ttl_s,
                          msg) < 0) {
        sw_log(SW_LOG_WARN, LOG, "lease grant: %s", msg);
        schedule(ha, ha->poll_ms, follow_tick);
        return;
    }
    note_ok(ha);
    /* The lease lives at least TTL from when etcd granted it, which is after we asked. */
    ha->lease_deadline_ms = ha->grant_sent_ms + ttl_s * 1000;
    char *key = b64(ha->leader_key), *value = b64(ha->replica);
    char *body = sw_xasprintf(
        "{\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",\"target\":\"CREATE\","
        "\"create_revision\":\"0\"}],"
        "\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%" PRId64
        "\"}}],"
        "\"failure\":[{\"request_range\":{\"key\":\"%s\"}}]}",
        key, key, value, ha->lease_id, key);
    ha->ctl_req = post(ha, "/v3/kv/txn", body, campaign_done);
    free(key);
    free(value);
    free(body);
}

static void range_done(void *ud, int status, const struct swp_http_resp *resp,
                       const char *error_text)
{
    struct sw_ha *ha = ud;
    if (!follower_reply(ha, "range", status, resp, error_text))
        return;
    char msg[128];
    struct sw_ha_kvs kvs = {0};
    int64_t revision = 0;
    if (sw_ha_parse_range(resp->status, resp->body, resp->body_len, &kvs, &revision, msg) < 0) {
        sw_log(SW_LOG_WARN, LOG, "reading the leader key: %s", msg);
        sw_ha_kvs_clear(&kvs);
        schedule(ha, ha->poll_ms, follow_tick);
        return;
    }
    note_ok(ha);
    if (kvs.count > 0) {
        note_leader(ha, kvs.items[0].value, kvs.items[0].create_revision);
        sw_ha_kvs_clear(&kvs);
        schedule(ha, ha->poll_ms, follow_tick);
        return;
    }
    note_leader(ha, NULL, 0);
    char body[64];
    snprintf(body, sizeof(body), "{\"TTL\":%" PRId64 "}", ha->ttl_ms / 1000);
    ha->grant_sent_ms = now_ms(ha);
    ha->ctl_req = post(ha, "/v3/lease/grant", body, grant_done);
}

static void follow_tick(void *ud)
{
    struct sw_ha *ha = ud;
    ha->timer = 0;
    if (ha->state != HA_FOLLOWING || ha->ctl_req != 0)
        return;
    char *key = b64(ha->leader_key);
    char *body = sw_xasprintf("{\"key\":\"%s\"}", key);
    ha->ctl_req = post(ha, "/v3/kv/range", body, range_done);
    free(key);
    free(body);
}

/* ---- leader: keep the lease alive ------------------------------------------------------------ */

/* The gateway maps keepalive to a bidirectional stream: one POST sends one request, the
 * gateway closes its sending side, etcd answers once and the stream (the chunked reply)
 * ends, so each renewal is a short request of its own (checked against etcd 3.4.23). */
static void keepalive_done(void *ud, int status, const struct swp_http_resp *resp,
                           const char *error_text)
{
    struct sw_ha *ha = ud;
    if (status == SW_ECANCELED || ha->freeing)
        return;
    ha->ctl_req = 0;
    if (ha->state != HA_LEADING)
        return;
    char msg[128];
    if (transport_trouble(ha, "keepalive", status, resp, error_text)) {
        schedule(ha, KEEPALIVE_RETRY_MS, keepalive_tick);
        return;
    }
    int64_t ttl_s = 0;
    if (sw_ha_parse_keepalive(resp->status, resp->body, resp->body_len, &ttl_s, msg) < 0) {
        sw_log(SW_LOG_WARN, LOG, "keepalive: %s", msg);
        schedule(ha, KEEPALIVE_RETRY_MS, keepalive_tick);
        return;
    }
    note_ok(ha);
    if (ttl_s <= 0) {
        lose(ha, "etcd says the lease expired");
        return;
    }
    int64_t deadline = ha->ka_sent_ms + ttl_s * 1000;
    if (deadline > ha->lease_deadline_ms)
        ha->lease_deadline_ms = deadline;
    arm_stepdown(ha);
    schedule(ha, ha->ttl_ms / 3, keepalive_tick);
}

static void keepalive_tick(void *ud)
{
    struct sw_ha *ha = ud;
    ha->timer = 0;
    if (ha->state != HA_LEADING || ha->ctl_req != 0)
        return;
    char body[64];
    lease_body(body, sizeof(body), ha->lease_id);
    ha->ka_sent_ms = now_ms(ha);
    ha->ctl_req = post(ha, "/v3/lease/keepalive", body, keepalive_done);
}

/* ---- fenced writes ------------------------------------------------------------------------ */

static void write_next(void *ud);

static void entry_free(struct write_entry *e)
{
    free(e->unit_key);
    free(e->record);
    free(e);
}

/* Takes the head of the write queue off it (NULL when empty). */
static struct write_entry *queue_pop(struct sw_ha *ha)
{
    struct write_entry *e = ha->writes_head;
    if (e == NULL)
        return NULL;
    ha->writes_head = e->next;
    if (ha->writes_head == NULL)
        ha->writes_tail = NULL;
    e->next = NULL;
    return e;
}

static void complete(struct write_entry *e, int status, const struct sw_units *units,
                     uint64_t seq)
{
    if (e->kind == W_LOAD)
        e->load_cb(e->ud, status, units, NULL, seq);
    else if (e->done != NULL)
        e->done(e->ud, status);
    entry_free(e);
}

static void fail_writes(struct sw_ha *ha, int status)
{
    timer_clear(ha, &ha->write_timer);
    request_cancel(ha, &ha->write_req); /* write_done leaves the entry to us */
    struct write_entry *e = ha->inflight;
    ha->inflight = NULL;
    if (e != NULL)
        complete(e, status, NULL, 0);
    while ((e = queue_pop(ha)) != NULL)
        complete(e, status, NULL, 0);
}

static void kick(struct sw_ha *ha, uint64_t delay_ms)
{
    if (ha->inflight != NULL || ha->write_timer != 0 || ha->writes_head == NULL)
        return;
    ha->write_timer = sw_clock_timer_start(ha->clock, delay_ms, write_next, ha);
}

static int enqueue(struct sw_ha *ha, struct write_entry *e)
{
    if (ha->state != HA_LEADING) {
        entry_free(e);
        return SW_EAGAIN;
    }
    /* A newer state of the same unit replaces a queued older one: fewer txns and the record
     * ends where the unit is. Two callbacks cannot share one entry, so those queue up. */
    if (e->unit_key != NULL) {
        for (struct write_entry *q = ha->writes_head; q != NULL; q = q->next) {
            if (q->unit_key == NULL || strcmp(q->unit_key, e->unit_key) != 0 ||
                (q->done != NULL && e->done != NULL))
                continue;
            q->kind = e->kind;
            free(q->record);
            q->record = e->record;
            e->record = NULL;
            if (e->unit_seq > q->unit_seq)
                q->unit_seq = e->unit_seq;
            if (e->done != NULL) {
                q->done = e->done;
                q->ud = e->ud;
            }
            entry_free(e);
            kick(ha, 0);
            return 0;
        }
    }
    if (ha->writes_tail != NULL)
        ha->writes_tail->next = e;
    else
        ha->writes_head = e;
    ha->writes_tail = e;
    kick(ha, 0);
    return 0;
}

static char *fence_compare(struct sw_ha *ha)
{
    char *key = b64(ha->leader_key), *value = b64(ha->replica);
    char *text = sw_xasprintf(
        "\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",\"target\":\"CREATE\","
        "\"create_revision\":\"%" PRId64 "\"},{\"key\":\"%s\",\"result\":\"EQUAL\","
        "\"target\":\"VALUE\",\"value\":\"%s\"}]",
        key, ha->won_revision, key, value);
    free(key);
    free(value);
    return text;
}

/* A range over every key starting with prefix (which ends in '/'): range_end is the prefix
 * with that last byte incremented ('0'). */
static char *range_op(const char *prefix)
{
    char *end_text = sw_xstrdup(prefix);
    end_text[strlen(end_text) - 1]++;
    char *from = b64(prefix), *end = b64(end_text);
    char *op = sw_xasprintf("{\"request_range\":{\"key\":\"%s\",\"range_end\":\"%s\"}}",
                            from, end);
    free(end_text);
    free(from);
    free(end);
    return op;
}

static char *write_body(struct sw_ha *ha, const struct write_entry *e)
{
    char *compare = fence_compare(ha);
    char *ops = NULL;
    if (e->kind == W_LOAD) {
        char *units = range_op(ha->units_prefix), *kv = range_op(ha->kv_prefix);
        char *seq = b64(ha->seq_key);
        ops = sw_xasprintf("%s,%s,{\"request_range\":{\"key\":\"%s\"}}", units, kv, seq);
        free(units);
        free(kv);
        free(seq);
    } else {
        char *full = sw_xasprintf("%s/%s", ha->config->prefix, e->unit_key);
        char *key = b64(full);
        if (e->kind == W_DELETE) {
            ops = sw_xasprintf("{\"request_delete_range\":{\"key\":\"%s\"}}", key);
        } else {
            char *value = b64(e->record);
            if (e->unit_seq > ha->seq_written) {
                char seq_text[32];
                snprintf(seq_text, sizeof(seq_text), "%" PRIu64, e->unit_seq);
                char *seq_key = b64(ha->seq_key), *seq_value = b64(seq_text);
                ops = sw_xasprintf("{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}},"
                                   "{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}",
                                   key, value, seq_key, seq_value);
                free(seq_key);
                free(seq_value);
            } else {
                ops = sw_xasprintf("{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}", key,
                                   value);
            }
            free(value);
        }
        free(full);
        free(key);
    }
    char *body = sw_xasprintf("{%s,\"success\":[%s]}", compare, ops);
    free(compare);
    free(ops);
    return body;
}

static void load_finish(struct sw_ha *ha, struct write_entry *e, const struct sw_ha_kvs *kvs)
{
    struct sw_units units;
    sw_units_init(&units);
    struct sw_ha_kvs plugin_kv = {0};
    uint64_t seq = 0;
    size_t prefix_len = strlen(ha->units_prefix), kv_len = strlen(ha->kv_prefix);
    for (size_t i = 0; i < kvs->count; i++) {
        const struct sw_ha_kv *kv = &kvs->items[i];
        if (strcmp(kv->key, ha->seq_key) == 0) {
            seq = strtoull(kv->value, NULL, 10);
            continue;
        }
        if (strncmp(kv->key, ha->kv_prefix, kv_len) == 0) {
            plugin_kv.items = sw_xrealloc(plugin_kv.items,
                                          (plugin_kv.count + 1) * sizeof(*plugin_kv.items));
            struct sw_ha_kv *copy = &plugin_kv.items[plugin_kv.count++];
            *copy = *kv;
            copy->key = sw_xstrdup(kv->key + kv_len);
            copy->value = sw_xstrdup(kv->value);
            continue;
        }
        if (strncmp(kv->key, ha->units_prefix, prefix_len) != 0)
            continue;
        struct sw_unit *u = sw_ha_unit_from_record(kv->value, strlen(kv->value));
        if (u == NULL) {
            sw_log(SW_LOG_WARN, LOG, "ignoring a malformed record at %s", kv->key);
            continue;
        }
        sw_units_add(&units, u);
    }
    if (seq > ha->seq_written)
        ha->seq_written = seq;
    e->load_cb(e->ud, 0, &units, &plugin_kv, seq);
    entry_free(e);
    sw_units_clear(&units);
    sw_ha_kvs_clear(&plugin_kv);
}

static void write_done(void *ud, int status, const struct swp_http_resp *resp,
                       const char *error_text)
{
    struct sw_ha *ha = ud;
    if (status == SW_ECANCELED || ha->freeing)
        return; /* whoever cancelled completes the entry */
    ha->write_req = 0;
    struct write_entry *e = ha->inflight;
    char msg[128];
    if (transport_trouble(ha, "fenced write", status, resp, error_text)) {
        /* Back to the head: order matters, and the step-down deadline bounds the wait. */
        ha->inflight = NULL;
        e->next = ha->writes_head;
        ha->writes_head = e;
        if (ha->writes_tail == NULL)
            ha->writes_tail = e;
        kick(ha, WRITE_RETRY_MS);
        return;
    }
    bool ok = false;
    int64_t revision = 0;
    struct sw_ha_kvs kvs = {0};
    int rc = sw_ha_parse_txn(resp->status, resp->body, resp->body_len, &ok, &revision,
                             e->kind == W_LOAD ? &kvs : NULL, msg);
    ha->inflight = NULL;
    if (rc < 0) {
        sw_log(SW_LOG_ERROR, LOG, "fenced write refused by etcd: %s", msg);
        sw_ha_kvs_clear(&kvs);
        complete(e, SW_EHTTP, NULL, 0);
        kick(ha, 0);
        return;
    }
    note_ok(ha);
    if (!ok) {
        sw_ha_kvs_clear(&kvs);
        /* The compare failed: the leader key is gone or belongs to another campaign. */
        ha->inflight = e;
        lose(ha, "fencing: the leader key changed in etcd (another replica leads)");
        return;
    }
    if (e->kind == W_LOAD)
        load_finish(ha, e, &kvs);
    else {
        if (e->kind == W_PUT && e->unit_seq > ha->seq_written)
            ha->seq_written = e->unit_seq;
        complete(e, 0, NULL, 0);
    }
    sw_ha_kvs_clear(&kvs);
    kick(ha, 0);
}

static void write_next(void *ud)
{
    struct sw_ha *ha = ud;
    ha->write_timer = 0;
    if (ha->inflight != NULL || ha->writes_head == NULL)
        return;
    if (ha->state != HA_LEADING) {
        fail_writes(ha, SW_EAGAIN);
        return;
    }
    /* The local half of fencing: past the step-down point (a pause, a stalled etcd), this
     * replica may already have been replaced; it refuses before asking anyone. */
    if (now_ms(ha) >= ha->lease_deadline_ms - ha->margin_ms) {
        lose(ha, "the lease was not renewed in time (paused or cut off from etcd)");
        return;
    }
    struct write_entry *e = queue_pop(ha);
    if (e->kind == W_BARRIER) {
        complete(e, 0, NULL, 0); /* everything before it is acknowledged */
        kick(ha, 0);
        return;
    }
    ha->inflight = e;
    char *body = write_body(ha, e);
    ha->write_req = post(ha, "/v3/kv/txn", body, write_done);
    free(body);
}

int sw_ha_unit_put(struct sw_ha *ha, const struct sw_unit *u, uint64_t unit_seq,
                   sw_ha_done_cb done, void *ud)
{
    if (ha == NULL || ha->state != HA_LEADING)
        return SW_EAGAIN;
    struct write_entry *e = sw_xcalloc(1, sizeof(*e));
    e->kind = W_PUT;
    e->unit_key = sw_xasprintf("units/%s", u->key);
    e->record = sw_ha_unit_record(u);
    e->unit_seq = unit_seq;
    e->done = done;
    e->ud = ud;
    return enqueue(ha, e);
}

int sw_ha_unit_delete(struct sw_ha *ha, const char *unit_key, sw_ha_done_cb done, void *ud)
{
    if (ha == NULL || ha->state != HA_LEADING)
        return SW_EAGAIN;
    struct write_entry *e = sw_xcalloc(1, sizeof(*e));
    e->kind = W_DELETE;
    e->unit_key = sw_xasprintf("units/%s", unit_key);
    e->done = done;
    e->ud = ud;
    return enqueue(ha, e);
}

int sw_ha_kv_put(struct sw_ha *ha, const char *ns, const char *key, const char *value)
{
    if (ha == NULL || ha->state != HA_LEADING)
        return SW_EAGAIN;
    struct write_entry *e = sw_xcalloc(1, sizeof(*e));
    e->kind = value != NULL ? W_PUT : W_DELETE;
    e->unit_key = sw_xasprintf("kv/%s/%s", ns, key);
    e->record = value != NULL ? sw_xstrdup(value) : NULL;
    return enqueue(ha, e);
}

int sw_ha_barrier(struct sw_ha *ha, sw_ha_done_cb done, void *ud)
{
    if (sw_ha_writes_outstanding(ha) == 0)
        return 1;
    struct write_entry *e = sw_xcalloc(1, sizeof(*e));
    e->kind = W_BARRIER;
    e->done = done;
    e->ud = ud;
    return enqueue(ha, e);
}

size_t sw_ha_writes_outstanding(const struct sw_ha *ha)
{
    if (ha == NULL)
        return 0;
    size_t count = ha->inflight != NULL ? 1 : 0;
    for (const struct write_entry *e = ha->writes_head; e != NULL; e = e->next)
        count += e->kind != W_BARRIER;
    return count;
}

int sw_ha_units_load(struct sw_ha *ha, sw_ha_units_cb cb, void *ud)
{
    if (ha == NULL || ha->state != HA_LEADING)
        return SW_EAGAIN;
    struct write_entry *e = sw_xcalloc(1, sizeof(*e));
    e->kind = W_LOAD;
    e->load_cb = cb;
    e->ud = ud;
    return enqueue(ha, e);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static char *default_replica(void)
{
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "steward");
    /* Keep it a plain name: dots and odd characters become '-'. */
    for (char *p = host; *p != '\0'; p++)
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') &&
            *p != '_' && *p != '-')
            *p = '-';
    host[48] = '\0';
    return sw_xasprintf("%s-%ld", host, (long)getpid());
}

struct sw_ha *sw_ha_new(const struct sw_ha_opts *opts, struct sw_error *err)
{
    const struct sw_ha_config *c = opts->config;
    if (c == NULL || c->endpoint_count == 0 || c->prefix == NULL) {
        sw_error_set(err, SW_ECONFIG, "ha: no etcd endpoint configured");
        return NULL;
    }
    struct sw_ha *ha = sw_xcalloc(1, sizeof(*ha));
    ha->opts = *opts;
    ha->config = c;
    ha->clock = opts->clock;
    ha->http = sw_http_client_new(opts->loop);
    ha->replica = c->replica != NULL ? sw_xstrdup(c->replica) : default_replica();
    ha->leader_key = sw_xasprintf("%s/leader", c->prefix);
    ha->units_prefix = sw_xasprintf("%s/units/", c->prefix);
    ha->kv_prefix = sw_xasprintf("%s/kv/", c->prefix);
    ha->seq_key = sw_xasprintf("%s/unit_seq", c->prefix);
    ha->ttl_ms = c->ttl_ms;
    /* Followers read the leader key every TTL/10 (100 ms..1 s): the gateway's watch is an
     * endless stream, and the HTTP client hands over whole bodies only, so polling one key
     * is what bounds the takeover delay (lease expiry + one poll). */
    ha->poll_ms = ha->ttl_ms / 10 < 100 ? 100 : ha->ttl_ms / 10 > 1000 ? 1000 : ha->ttl_ms / 10;
    ha->timeout_ms = ha->ttl_ms / 3;
    /* Step down a fifth of the TTL before the lease could expire: room for the clocks of
     * this host and etcd's to drift and for an action already past its fence to be sent. */
    ha->margin_ms = ha->ttl_ms / 5;
    ha->state = HA_IDLE;
    return ha;
}

void sw_ha_start(struct sw_ha *ha)
{
    if (ha->state != HA_IDLE)
        return;
    ha->state = HA_FOLLOWING;
    sw_log(SW_LOG_INFO, LOG, "replica %s: electing through etcd %s (key %s, ttl %" PRId64 "s)",
           ha->replica, ha->config->endpoints[0], ha->leader_key, ha->ttl_ms / 1000);
    schedule(ha, 0, follow_tick);
}

void sw_ha_free(struct sw_ha *ha)
{
    if (ha == NULL)
        return;
    timer_clear(ha, &ha->timer);
    timer_clear(ha, &ha->stepdown_timer);
    fail_writes(ha, SW_ECANCELED);
    ha->freeing = true;
    sw_http_client_close(ha->http); /* cancels what is left; callbacks see freeing */
    free(ha->replica);
    free(ha->leader_key);
    free(ha->units_prefix);
    free(ha->kv_prefix);
    free(ha->seq_key);
    free(ha->leader_seen);
    free(ha);
}

static size_t discard_body(char *data, size_t size, size_t count, void *ud)
{
    (void)data, (void)ud;
    return size * count;
}

/* One blocking POST: the loop has stopped by the time a clean shutdown resigns, so the
 * async client cannot carry it; the timeout bounds how long exit waits. */
static bool revoke_now(struct sw_ha *ha, const char *endpoint, long timeout_ms)
{
    CURL *easy = curl_easy_init();
    if (easy == NULL)
        return false;
    char *url = sw_xasprintf("%s/v3/lease/revoke", endpoint);
    char body[64];
    lease_body(body, sizeof(body), ha->lease_id);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_body);
    long status = 0;
    CURLcode rc = curl_easy_perform(easy);
    if (rc == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(easy);
    free(url);
    /* 404 "requested lease not found": it is gone already, which is what was wanted. */
    return rc == CURLE_OK && (status == 200 || status == 404);
}

int sw_ha_resign(struct sw_ha *ha)
{
    if (ha == NULL || ha->state != HA_LEADING || ha->lease_id == 0)
        return 0;
    ha->state = HA_LOST; /* from here on nothing this replica writes is fenced in */
    long timeout_ms = ha->timeout_ms < 1000 ? (long)ha->timeout_ms : 1000;
    for (size_t i = 0; i < ha->config->endpoint_count; i++) {
        size_t at = (ha->endpoint + i) % ha->config->endpoint_count;
        if (revoke_now(ha, ha->config->endpoints[at], timeout_ms)) {
            sw_log(SW_LOG_INFO, LOG,
                   "replica %s resigned: lease revoked, a follower takes over "
                   "at its next poll",
                   ha->replica);
            return 0;
        }
    }
    sw_log(SW_LOG_WARN, LOG,
           "replica %s could not revoke its lease (etcd unreachable): a "
           "follower takes over once it expires",
           ha->replica);
    return SW_EHTTP;
}

bool sw_ha_fenced_out(struct sw_ha *ha)
{
    if (ha == NULL || ha->state == HA_LOST)
        return ha != NULL;
    if (ha->state != HA_LEADING || now_ms(ha) < ha->lease_deadline_ms - ha->margin_ms)
        return false;
    arm_stepdown(ha); /* already due: fires on the next turn, outside the caller's stack */
    return true;
}

bool sw_ha_is_leader(const struct sw_ha *ha)
{
    return ha != NULL && ha->state == HA_LEADING;
}

void sw_ha_leader(const struct sw_ha *ha, struct sw_ha_leader_info *out)
{
    memset(out, 0, sizeof(*out));
    out->replica = ha->replica;
    out->leader = ha->leader_seen;
    out->is_leader = ha->state == HA_LEADING;
    out->since_ms = ha->leader_seen != NULL ? ha->leader_since_ms : 0;
    out->elections_won = ha->elections_won;
    if (out->is_leader) {
        int64_t left = ha->lease_deadline_ms - ha->margin_ms - sw_clock_now(ha->clock);
        out->lease_left_ms = left > 0 ? left : 0;
    }
}
