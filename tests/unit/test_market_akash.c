/* test_market_akash.c — plugins/market_akash through the real plugin host, on a real libuv
 * loop with the live clock and the core's HTTP client, against a fake Akash Console served
 * by the core's HTTP server in this file.
 *
 * The fake Console follows marketplace-api.md: {"data": ...} wrapping, dseq as a millisecond
 * string, DecCoin amounts as 18-decimal strings, created_at heights as strings, the error
 * shape, the x-api-key check (not on /v1/providers). Scripted rules override a reply (a
 * status, a body, Retry-After, a dropped connection), optionally after the normal action
 * ran (a create that succeeded but answered 503). Every request is logged for assertions.
 *
 * Secrets: the host redacts SECRET_ENV values from log lines; the tests clear that list
 * after loading so that what they check is the plugin's own hygiene.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "error.h"
#include "http_client.h"
#include "http_server.h"
#include "log.h"
#include "mem.h"
#include "plugin_host.h"
#include "sw_test.h"

#define API_KEY "ak-test-7Hq2Lr9XwPz4-TopSecret"
#define KEY_ENV "SW_TEST_AKASH_KEY"
#define INSTANCE "steward-test"
/* Quotes, a backslash, a newline, a tab, non-ASCII and a slash: must come back identical. */
#define MANIFEST_BODY "manifest \"q\" back\\slash\n\ttab \xc3\xa9\xe4\xb8\xad </x>"

#define TEMPLATE                                                                                   \
    "version: \"2.0\"\n"                                                                           \
    "services:\n"                                                                                  \
    "  {{group}}:\n"                                                                               \
    "    image: nginx:1.27\n"                                                                      \
    "    env:\n"                                                                                   \
    "      - STEWARD_UNIT_KEY={{key}}\n"                                                           \
    "      - STEWARD_TAG={{tag}}\n"                                                                \
    "    expose:\n"                                                                                \
    "      - port: 80\n"                                                                           \
    "        as: 80\n"                                                                             \
    "        to:\n"                                                                                \
    "          - global: true\n"                                                                   \
    "profiles:\n"                                                                                  \
    "  compute:\n"                                                                                 \
    "    {{group}}:\n"                                                                             \
    "      resources:\n"                                                                           \
    "        cpu:\n"                                                                               \
    "          units: {{cpu}}\n"                                                                   \
    "        memory:\n"                                                                            \
    "          size: {{memory}}\n"                                                                 \
    "        storage:\n"                                                                           \
    "          size: {{storage}}\n"                                                                \
    "  placement:\n"                                                                               \
    "    {{region}}:\n"                                                                            \
    "      attributes:\n"                                                                          \
    "        location-region: {{region}}\n"                                                        \
    "      signedBy:\n"                                                                            \
    "        anyOf: {{auditors}}\n"                                                                \
    "      pricing:\n"                                                                             \
    "        {{group}}:\n"                                                                         \
    "          denom: uact\n"                                                                      \
    "          amount: {{max_price_uact}}\n"                                                       \
    "deployment:\n"                                                                                \
    "  {{group}}:\n"                                                                               \
    "    {{region}}:\n"                                                                            \
    "      profile: {{group}}\n"                                                                   \
    "      count: {{count}}\n"

#define PROFILE "{\"cpu\": 0.5, \"memory\": \"512Mi\", \"storage\": \"1Gi\"}"

#define PROVIDERS_JSON                                                                             \
    "[{\"owner\": \"akash1cheap\", \"hostUri\": \"https://p1:8443\", \"isOnline\": true,"          \
    "  \"isAudited\": false, \"uptime7d\": 0.99, \"locationRegion\": \"eu-west\","                 \
    "  \"attributes\": [{\"key\": \"location-region\", \"value\": \"eu-west\"},"                   \
    "                   {\"key\": \"tier\", \"value\": \"community\"}]},"                          \
    " {\"owner\": \"akash1mid\", \"isOnline\": true, \"isAudited\": true,"                         \
    "  \"attributes\": [{\"key\": \"location-region\", \"value\": \"eu-west\"},"                   \
    "                   {\"key\": \"tier\", \"value\": \"premium\"}]},"                            \
    " {\"owner\": \"akash1tie\", \"isOnline\": true, \"isAudited\": true,"                         \
    "  \"locationRegion\": \"eu-west\", \"attributes\": []},"                                      \
    " {\"owner\": \"akash1dear\", \"isOnline\": true, \"isAudited\": true,"                        \
    "  \"attributes\": [{\"key\": \"location-region\", \"value\": \"eu-west\"}]},"                 \
    " {\"owner\": \"akash1off\", \"isOnline\": false, \"isAudited\": true,"                        \
    "  \"attributes\": [{\"key\": \"location-region\", \"value\": \"eu-west\"}]}]"

/* ---- the fake Console ---------------------------------------------------------------------- */

struct bid_spec {
    const char *provider;
    const char *amount;     /* uact per block, decimal string */
    const char *created_at; /* block height string */
    const char *state;      /* NULL: "open" until a lease is made */
    int after_ms;           /* appears this long after the deployment was created */
};

struct fdep {
    char dseq[24];
    bool active;
    bool ours; /* created through POST (not seeded) */
    char *sdl;
    char *manifest;
    double deposit;
    uint64_t created_hr_ms; /* uv_hrtime in ms */
    bool leased;
    char provider[64];
    char amount[48];
    char lease_state[32];
    char lease_reason[64];
    int status_polls;
    double funds_uact;
};

struct rule {
    const char *method;
    const char *prefix; /* matched against path[?query] */
    int times;
    int status;
    const char *body;
    const char *retry_after;
    bool after_action; /* run the normal handler first, then answer this instead */
    bool drop;         /* drop the connection instead of answering */
    bool hang;         /* never answer (the client times out) */
};

struct req_log {
    char method[8];
    char target[160]; /* path[?query] */
    char *body;
    bool key_sent;
    bool key_ok;
    uint64_t at_hr_ms;
};

#define MAX_FDEPS 320
#define MAX_RULES 16
#define MAX_LOG 1024

struct console {
    struct fdep deps[MAX_FDEPS];
    size_t dep_count;
    struct bid_spec bids[8];
    size_t bid_count;
    int ready_after_polls; /* status polls after the lease before every service is up */
    int services;          /* 1 or 2 */
    struct rule rules[MAX_RULES];
    size_t rule_count;
    struct req_log log[MAX_LOG];
    size_t log_count;
    double balance;
    const char *reject_lease_provider;
    int reject_lease_times;
    double default_funds_uact;
    int64_t next_dseq;
    char *last_lease_body;
};

struct kv_entry {
    char *key;
    char *value;
    struct kv_entry *next;
};

struct event_rec {
    char *type;
    char *market_id;
    char *reason;
    char *data;
};

#define MAX_EVENTS 64

static struct fixture {
    bool active;
    uv_loop_t loop;
    uv_timer_t tick;
    struct sw_clock *clock;
    struct sw_http_client *http;
    struct sw_http_server *server;
    char base[64];
    struct sw_plugin_host *host;
    struct sw_plugin *plugin;
    const struct swp_market_ops *ops;
    void *state;
    struct console con;
    struct kv_entry *kv;
    struct event_rec events[MAX_EVENTS];
    size_t event_count;
    FILE *log_stream;
    char *log_data;
    size_t log_size;
    /* Every request as the plugin handed it to the host. */
    struct {
        char method[8];
        char path[64];
        bool idempotent;
    } sent[MAX_LOG];
    size_t sent_count;
} F;

static uint64_t hr_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static struct fdep *con_find(const char *dseq)
{
    for (size_t i = 0; i < F.con.dep_count; i++)
        if (strcmp(F.con.deps[i].dseq, dseq) == 0)
            return &F.con.deps[i];
    return NULL;
}

static struct fdep *con_add(const char *dseq)
{
    if (F.con.dep_count == MAX_FDEPS)
        abort();
    struct fdep *d = &F.con.deps[F.con.dep_count++];
    memset(d, 0, sizeof(*d));
    snprintf(d->dseq, sizeof(d->dseq), "%s", dseq);
    d->active = true;
    d->created_hr_ms = hr_ms();
    d->funds_uact = F.con.default_funds_uact;
    return d;
}

static size_t con_active(void)
{
    size_t n = 0;
    for (size_t i = 0; i < F.con.dep_count; i++)
        n += F.con.deps[i].active;
    return n;
}

static size_t con_requests(const char *method, const char *prefix)
{
    size_t n = 0;
    for (size_t i = 0; i < F.con.log_count; i++)
        n += strcmp(F.con.log[i].method, method) == 0 &&
             strncmp(F.con.log[i].target, prefix, strlen(prefix)) == 0;
    return n;
}

static const struct req_log *con_request_at(const char *method, const char *prefix, size_t nth)
{
    for (size_t i = 0; i < F.con.log_count; i++) {
        if (strcmp(F.con.log[i].method, method) == 0 &&
            strncmp(F.con.log[i].target, prefix, strlen(prefix)) == 0 && nth-- == 0)
            return &F.con.log[i];
    }
    return NULL;
}

static void con_rule(struct rule r)
{
    if (F.con.rule_count < MAX_RULES)
        F.con.rules[F.con.rule_count++] = r;
}

struct reply {
    int status;
    char *body;
};

static void reply_json(struct reply *r, int status, cJSON *root)
{
    r->status = status;
    r->body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
}

static void reply_error(struct reply *r, int status, const char *code, const char *message)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "error", "Error");
    cJSON_AddStringToObject(root, "message", message);
    cJSON_AddStringToObject(root, "code", code);
    cJSON_AddStringToObject(root, "type", status >= 500 ? "server_error" : "client_error");
    reply_json(r, status, root);
}

static cJSON *coin(const char *amount)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "denom", "uact");
    cJSON_AddStringToObject(c, "amount", amount);
    return c;
}

static cJSON *deployment_json(struct fdep *d, bool with_status)
{
    cJSON *dr = cJSON_CreateObject();
    cJSON *dep = cJSON_AddObjectToObject(dr, "deployment");
    cJSON *id = cJSON_AddObjectToObject(dep, "id");
    cJSON_AddStringToObject(id, "owner", "akash1owner");
    cJSON_AddStringToObject(id, "dseq", d->dseq);
    cJSON_AddStringToObject(dep, "state", d->active ? "active" : "closed");
    cJSON_AddStringToObject(dep, "hash", "aGFzaA==");
    cJSON_AddStringToObject(dep, "created_at", "2345690");
    cJSON *leases = cJSON_AddArrayToObject(dr, "leases");
    if (d->leased) {
        cJSON *l = cJSON_CreateObject();
        cJSON *lid = cJSON_AddObjectToObject(l, "id");
        cJSON_AddStringToObject(lid, "owner", "akash1owner");
        cJSON_AddStringToObject(lid, "dseq", d->dseq);
        cJSON_AddNumberToObject(lid, "gseq", 1);
        cJSON_AddNumberToObject(lid, "oseq", 1);
        cJSON_AddStringToObject(lid, "provider", d->provider);
        cJSON_AddNumberToObject(lid, "bseq", 1);
        cJSON_AddStringToObject(l, "state", d->active ? d->lease_state : "closed");
        cJSON_AddItemToObject(l, "price", coin(d->amount));
        cJSON_AddStringToObject(l, "created_at", "2345700");
        cJSON_AddStringToObject(l, "closed_on", "0");
        if (d->lease_reason[0])
            cJSON_AddStringToObject(l, "reason", d->lease_reason);
        else
            cJSON_AddNullToObject(l, "reason");
        if (with_status && d->status_polls > 1) {
            cJSON *status = cJSON_AddObjectToObject(l, "status");
            cJSON *services = cJSON_AddObjectToObject(status, "services");
            bool up = d->status_polls > F.con.ready_after_polls;
            for (int s = 0; s < (F.con.services ? F.con.services : 1); s++) {
                const char *name = s == 0 ? "web" : "api";
                cJSON *svc = cJSON_AddObjectToObject(services, name);
                cJSON_AddStringToObject(svc, "name", name);
                cJSON_AddNumberToObject(svc, "available", up ? 2 : 1);
                cJSON_AddNumberToObject(svc, "total", 2);
                cJSON_AddNumberToObject(svc, "ready_replicas", up ? 2 : 1);
                cJSON *uris = cJSON_AddArrayToObject(svc, "uris");
                char uri[96];
                snprintf(uri, sizeof(uri), "%s-%s.ingress.example", name, d->dseq);
                cJSON_AddItemToArray(uris, cJSON_CreateString(uri));
            }
            cJSON_AddNullToObject(status, "forwarded_ports");
            cJSON_AddNullToObject(status, "ips");
        } else if (with_status) {
            cJSON_AddNullToObject(l, "status");
        }
        cJSON_AddItemToArray(leases, l);
    }
    cJSON *escrow = cJSON_AddObjectToObject(dr, "escrow_account");
    cJSON *eid = cJSON_AddObjectToObject(escrow, "id");
    cJSON_AddStringToObject(eid, "scope", "deployment");
    cJSON_AddStringToObject(eid, "xid", d->dseq);
    cJSON *state = cJSON_AddObjectToObject(escrow, "state");
    cJSON_AddStringToObject(state, "owner", "akash1owner");
    cJSON_AddStringToObject(state, "state", "open");
    cJSON *funds = cJSON_AddArrayToObject(state, "funds");
    char amount[64];
    snprintf(amount, sizeof(amount), "%.18f", d->funds_uact);
    cJSON_AddItemToArray(funds, coin(amount));
    cJSON_AddArrayToObject(state, "transferred");
    cJSON_AddStringToObject(state, "settled_at", "2345700");
    cJSON_AddArrayToObject(state, "deposits");
    return dr;
}

static cJSON *wrap(cJSON *data)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "data", data);
    return root;
}

static void handle_create(const struct sw_http_request *req, struct reply *r)
{
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *sdl = cJSON_GetObjectItemCaseSensitive(data, "sdl");
    const cJSON *deposit = cJSON_GetObjectItemCaseSensitive(data, "deposit");
    if (!cJSON_IsString(sdl) || !cJSON_IsNumber(deposit) || deposit->valuedouble < 0.5) {
        cJSON_Delete(root);
        reply_error(r, 400, "bad_request", "invalid body");
        return;
    }
    if (F.con.balance < deposit->valuedouble) {
        cJSON_Delete(root);
        reply_error(r, 402, "payment_required", "insufficient balance for the deposit");
        return;
    }
    F.con.balance -= deposit->valuedouble;
    int64_t now = sw_clock_now(F.clock);
    if (F.con.next_dseq < now)
        F.con.next_dseq = now;
    char dseq[24];
    snprintf(dseq, sizeof(dseq), "%lld", (long long)F.con.next_dseq++);
    struct fdep *d = con_add(dseq);
    d->ours = true;
    d->sdl = sw_xstrdup(sdl->valuestring);
    d->deposit = deposit->valuedouble;
    d->manifest = sw_xasprintf("%s %s", MANIFEST_BODY, dseq);
    cJSON_Delete(root);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "dseq", dseq);
    cJSON_AddStringToObject(out, "manifest", d->manifest);
    cJSON *tx = cJSON_AddObjectToObject(out, "signTx");
    cJSON_AddNumberToObject(tx, "code", 0);
    cJSON_AddStringToObject(tx, "transactionHash", "ABCDEF");
    cJSON_AddStringToObject(tx, "rawLog", "[]");
    reply_json(r, 201, wrap(out));
}

static void handle_bids(const struct sw_http_request *req, struct reply *r)
{
    char *dseq = sw_http_request_query_param(req, "dseq");
    struct fdep *d = dseq ? con_find(dseq) : NULL;
    free(dseq);
    if (d == NULL) {
        reply_error(r, 404, "not_found", "no such deployment");
        return;
    }
    cJSON *array = cJSON_CreateArray();
    uint64_t age = hr_ms() - d->created_hr_ms;
    for (size_t i = 0; i < F.con.bid_count; i++) {
        const struct bid_spec *b = &F.con.bids[i];
        if ((uint64_t)b->after_ms > age)
            continue;
        cJSON *item = cJSON_CreateObject();
        cJSON *bid = cJSON_AddObjectToObject(item, "bid");
        cJSON *id = cJSON_AddObjectToObject(bid, "id");
        cJSON_AddStringToObject(id, "owner", "akash1owner");
        cJSON_AddStringToObject(id, "dseq", d->dseq);
        cJSON_AddNumberToObject(id, "gseq", 1);
        cJSON_AddNumberToObject(id, "oseq", 1);
        cJSON_AddStringToObject(id, "provider", b->provider);
        cJSON_AddNumberToObject(id, "bseq", 1);
        const char *state = b->state ? b->state : "open";
        if (d->leased)
            state = strcmp(d->provider, b->provider) == 0 ? "active" : "lost";
        cJSON_AddStringToObject(bid, "state", state);
        cJSON_AddItemToObject(bid, "price", coin(b->amount));
        cJSON_AddStringToObject(bid, "created_at", b->created_at);
        cJSON_AddArrayToObject(bid, "resources_offer");
        cJSON_AddObjectToObject(item, "escrow_account");
        cJSON_AddItemToArray(array, item);
    }
    reply_json(r, 200, wrap(array));
}

static void handle_lease(const struct sw_http_request *req, struct reply *r)
{
    free(F.con.last_lease_body);
    F.con.last_lease_body = sw_xstrndup(req->body, req->body_len);
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *manifest = cJSON_GetObjectItemCaseSensitive(root, "manifest");
    const cJSON *leases = cJSON_GetObjectItemCaseSensitive(root, "leases");
    const cJSON *lease = cJSON_GetArrayItem(leases, 0);
    const cJSON *dseq = cJSON_GetObjectItemCaseSensitive(lease, "dseq");
    const cJSON *provider = cJSON_GetObjectItemCaseSensitive(lease, "provider");
    const cJSON *gseq = cJSON_GetObjectItemCaseSensitive(lease, "gseq");
    struct fdep *d = cJSON_IsString(dseq) ? con_find(dseq->valuestring) : NULL;
    if (cJSON_GetObjectItemCaseSensitive(root, "data") != NULL || !cJSON_IsString(manifest) ||
        !cJSON_IsArray(leases) || !cJSON_IsString(provider) || !cJSON_IsNumber(gseq) || d == NULL) {
        cJSON_Delete(root);
        reply_error(r, 400, "bad_request", "expected {manifest, leases: [...]} (not wrapped)");
        return;
    }
    if (strcmp(manifest->valuestring, d->manifest) != 0) {
        cJSON_Delete(root);
        reply_error(r, 400, "bad_request", "manifest does not match the deployment");
        return;
    }
    if (F.con.reject_lease_provider != NULL && F.con.reject_lease_times > 0 &&
        strcmp(F.con.reject_lease_provider, provider->valuestring) == 0) {
        F.con.reject_lease_times--;
        cJSON_Delete(root);
        reply_error(r, 400, "bad_request", "bid is not open (expired)");
        return;
    }
    const struct bid_spec *bid = NULL;
    for (size_t i = 0; i < F.con.bid_count; i++)
        if (strcmp(F.con.bids[i].provider, provider->valuestring) == 0)
            bid = &F.con.bids[i];
    if (bid == NULL) {
        cJSON_Delete(root);
        reply_error(r, 404, "not_found", "no such bid");
        return;
    }
    if (!d->leased) {
        d->leased = true;
        snprintf(d->provider, sizeof(d->provider), "%s", provider->valuestring);
        snprintf(d->amount, sizeof(d->amount), "%s", bid->amount);
        snprintf(d->lease_state, sizeof(d->lease_state), "active");
    }
    cJSON_Delete(root);
    reply_json(r, 200, wrap(deployment_json(d, false)));
}

static void handle_list(const struct sw_http_request *req, struct reply *r)
{
    char *skip_text = sw_http_request_query_param(req, "skip");
    char *limit_text = sw_http_request_query_param(req, "limit");
    size_t skip = skip_text ? (size_t)atoi(skip_text) : 0;
    size_t limit = limit_text ? (size_t)atoi(limit_text) : 100;
    free(skip_text);
    free(limit_text);
    cJSON *data = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(data, "deployments");
    size_t index = 0, total = 0;
    for (size_t i = 0; i < F.con.dep_count; i++) {
        struct fdep *d = &F.con.deps[i];
        if (!d->active)
            continue;
        total++;
        if (index++ < skip || (size_t)cJSON_GetArraySize(list) >= limit)
            continue;
        cJSON_AddItemToArray(list, deployment_json(d, false));
    }
    cJSON *page = cJSON_AddObjectToObject(data, "pagination");
    cJSON_AddNumberToObject(page, "total", (double)total);
    cJSON_AddNumberToObject(page, "skip", (double)skip);
    cJSON_AddNumberToObject(page, "limit", (double)limit);
    cJSON_AddBoolToObject(page, "hasMore", skip + limit < total);
    reply_json(r, 200, wrap(data));
}

static void handle_default(const struct sw_http_request *req, struct reply *r)
{
    const char *m = req->method;
    const char *p = req->path;
    if (strcmp(m, "POST") == 0 && strcmp(p, "/v1/deployments") == 0) {
        handle_create(req, r);
    } else if (strcmp(m, "GET") == 0 && strcmp(p, "/v1/bids") == 0) {
        handle_bids(req, r);
    } else if (strcmp(m, "POST") == 0 && strcmp(p, "/v1/leases") == 0) {
        handle_lease(req, r);
    } else if (strcmp(m, "GET") == 0 && strcmp(p, "/v1/deployments") == 0) {
        handle_list(req, r);
    } else if (strncmp(p, "/v1/deployments/", 16) == 0) {
        struct fdep *d = con_find(p + 16);
        if (d == NULL) {
            reply_error(r, 404, "not_found", "deployment not found");
        } else if (strcmp(m, "GET") == 0) {
            if (d->leased)
                d->status_polls++;
            reply_json(r, 200, wrap(deployment_json(d, true)));
        } else if (strcmp(m, "DELETE") == 0) {
            d->active = false;
            cJSON *ok = cJSON_CreateObject();
            cJSON_AddBoolToObject(ok, "success", true);
            reply_json(r, 200, wrap(ok));
        } else {
            reply_error(r, 404, "not_found", "no route");
        }
    } else if (strcmp(m, "GET") == 0 && strcmp(p, "/v1/providers") == 0) {
        r->status = 200;
        r->body = sw_xstrdup(PROVIDERS_JSON);
    } else if (strcmp(m, "GET") == 0 && strcmp(p, "/v1/balances") == 0) {
        cJSON *data = cJSON_CreateObject();
        cJSON_AddNumberToObject(data, "balance", F.con.balance);
        cJSON_AddNumberToObject(data, "deployments", 0);
        cJSON_AddNumberToObject(data, "total", F.con.balance);
        reply_json(r, 200, wrap(data));
    } else if (strcmp(m, "POST") == 0 && strcmp(p, "/v1/deposit-deployment") == 0) {
        cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
        const cJSON *dseq = cJSON_GetObjectItemCaseSensitive(data, "dseq");
        const cJSON *deposit = cJSON_GetObjectItemCaseSensitive(data, "deposit");
        struct fdep *d = cJSON_IsString(dseq) ? con_find(dseq->valuestring) : NULL;
        if (d == NULL || !cJSON_IsNumber(deposit)) {
            reply_error(r, 400, "bad_request", "bad deposit");
        } else {
            d->funds_uact += deposit->valuedouble * 1e6;
            reply_json(r, 200, wrap(deployment_json(d, false)));
        }
        cJSON_Delete(root);
    } else {
        reply_error(r, 404, "not_found", "no route");
    }
}

static void console_handler(void *ud, struct sw_http_exchange *ex,
                            const struct sw_http_request *req)
{
    (void)ud;
    char target[160];
    snprintf(target, sizeof(target), "%s%s%s", req->path, req->query[0] ? "?" : "", req->query);
    const char *key = sw_http_request_header(req, "x-api-key");
    if (F.con.log_count < MAX_LOG) {
        struct req_log *l = &F.con.log[F.con.log_count++];
        snprintf(l->method, sizeof(l->method), "%s", req->method);
        snprintf(l->target, sizeof(l->target), "%s", target);
        l->body = sw_xstrndup(req->body, req->body_len);
        l->key_sent = key != NULL;
        l->key_ok = key != NULL && strcmp(key, API_KEY) == 0;
        l->at_hr_ms = hr_ms();
    }
    struct reply r = {0};
    struct rule *rule = NULL;
    for (size_t i = 0; i < F.con.rule_count && rule == NULL; i++) {
        struct rule *x = &F.con.rules[i];
        if (x->times > 0 && strcmp(x->method, req->method) == 0 &&
            strncmp(target, x->prefix, strlen(x->prefix)) == 0)
            rule = x;
    }
    if (rule != NULL)
        rule->times--;
    bool public = strcmp(req->path, "/v1/providers") == 0;
    if (rule == NULL || rule->after_action) {
        if (!public && (key == NULL || strcmp(key, API_KEY) != 0))
            reply_error(&r, 401, "unauthorized", "missing or bad x-api-key");
        else
            handle_default(req, &r);
    }
    if (rule != NULL) {
        if (rule->hang) {
            free(r.body);
            return; /* dropped when the server closes */
        }
        if (rule->drop) {
            free(r.body);
            sw_http_exchange_drop(ex);
            return;
        }
        free(r.body);
        r.status = rule->status;
        r.body = sw_xstrdup(rule->body ? rule->body : "");
    }
    const char *headers[1];
    size_t header_count = 0;
    char retry[64];
    if (rule != NULL && rule->retry_after != NULL) {
        snprintf(retry, sizeof(retry), "Retry-After: %s", rule->retry_after);
        headers[header_count++] = retry;
    }
    sw_http_respond(ex, r.status, "application/json", headers, header_count, r.body,
                    strlen(r.body));
    free(r.body);
}

/* ---- plugin services ----------------------------------------------------------------------- */

static int64_t svc_now(void *ud)
{
    (void)ud;
    return sw_clock_now(F.clock);
}

static uint64_t svc_timer_start(void *ud, struct sw_plugin *plugin, uint64_t delay_ms,
                                swp_timer_cb cb, void *cb_ud)
{
    return sw_clock_timer_start(F.clock, delay_ms, cb, cb_ud);
}

static void svc_timer_stop(void *ud, struct sw_plugin *plugin, uint64_t id)
{
    sw_clock_timer_stop(F.clock, id);
}

struct trampoline {
    swp_http_cb cb;
    void *ud;
};

static void http_done(void *ud, int status, const struct swp_http_resp *resp,
                      const char *error_text)
{
    struct trampoline *t = ud;
    swp_http_cb cb = t->cb;
    void *cb_ud = t->ud;
    free(t);
    cb(cb_ud, status, resp);
}

static uint64_t svc_http_request(void *ud, struct sw_plugin *plugin, const struct swp_http_req *req,
                                 swp_http_cb cb, void *cb_ud)
{
    if (F.sent_count < MAX_LOG) {
        size_t base = strlen(F.base);
        const char *path = strncmp(req->url, F.base, base) == 0 ? req->url + base : req->url;
        snprintf(F.sent[F.sent_count].method, sizeof(F.sent[0].method), "%s", req->method);
        snprintf(F.sent[F.sent_count].path, sizeof(F.sent[0].path), "%s", path);
        F.sent[F.sent_count].idempotent = req->idempotent;
        F.sent_count++;
    }
    struct trampoline *t = sw_xmalloc(sizeof(*t));
    t->cb = cb;
    t->ud = cb_ud;
    uint64_t id = sw_http_client_request(F.http, req, http_done, t);
    if (id == 0)
        free(t);
    return id;
}

static void svc_http_cancel(void *ud, struct sw_plugin *plugin, uint64_t id)
{
    sw_http_client_cancel(F.http, id);
}

static struct kv_entry *kv_find(const char *key)
{
    for (struct kv_entry *e = F.kv; e != NULL; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static int svc_kv_get(void *ud, struct sw_plugin *plugin, const char *key, char **value_out)
{
    struct kv_entry *e = kv_find(key);
    if (e == NULL)
        return SW_ENOENT;
    *value_out = sw_xstrdup(e->value);
    return 0;
}

static int svc_kv_set(void *ud, struct sw_plugin *plugin, const char *key, const char *value)
{
    struct kv_entry *e = kv_find(key);
    if (e == NULL) {
        e = sw_xcalloc(1, sizeof(*e));
        e->key = sw_xstrdup(key);
        e->next = F.kv;
        F.kv = e;
    }
    free(e->value);
    e->value = sw_xstrdup(value);
    return 0;
}

static int svc_kv_del(void *ud, struct sw_plugin *plugin, const char *key)
{
    for (struct kv_entry **link = &F.kv; *link != NULL; link = &(*link)->next) {
        struct kv_entry *e = *link;
        if (strcmp(e->key, key) == 0) {
            *link = e->next;
            free(e->key);
            free(e->value);
            free(e);
            return 0;
        }
    }
    return SW_ENOENT;
}

static void svc_emit(void *ud, struct sw_plugin *plugin, const struct swp_event *ev)
{
    if (F.event_count == MAX_EVENTS)
        return;
    struct event_rec *e = &F.events[F.event_count++];
    e->type = sw_xstrdup(ev->type);
    e->market_id = sw_xstrdup(ev->market_id);
    e->reason = sw_xstrdup(ev->reason);
    e->data = sw_xstrdup(ev->data_json);
}

static const struct sw_plugin_services services = {
    .now_ms = svc_now,
    .timer_start = svc_timer_start,
    .timer_stop = svc_timer_stop,
    .http_request = svc_http_request,
    .http_cancel = svc_http_cancel,
    .kv_get = svc_kv_get,
    .kv_set = svc_kv_set,
    .kv_del = svc_kv_del,
    .emit_event = svc_emit,
};

static const struct event_rec *find_event(const char *type, const char *reason)
{
    for (size_t i = 0; i < F.event_count; i++)
        if (strcmp(F.events[i].type, type) == 0 &&
            (reason == NULL || (F.events[i].reason && strcmp(F.events[i].reason, reason) == 0)))
            return &F.events[i];
    return NULL;
}

/* ---- fixture ------------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *timer)
{
    (void)timer;
}

static void fixture_cleanup(void);

static void fixture_start(void)
{
    if (F.active)
        fixture_cleanup(); /* a previous test failed half-way */
    memset(&F, 0, sizeof(F));
    F.active = true;
    unsetenv("http_proxy");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
    unsetenv("all_proxy");
    setenv(KEY_ENV, API_KEY, 1);
    F.log_stream = open_memstream(&F.log_data, &F.log_size);
    sw_log_configure(F.log_stream, SW_LOG_FORMAT_TEXT, SW_LOG_DEBUG);
    uv_loop_init(&F.loop);
    uv_timer_init(&F.loop, &F.tick);
    uv_timer_start(&F.tick, on_tick, 5, 5);
    F.clock = sw_clock_live_new(&F.loop, 1.0);
    struct sw_http_server_opts opts = {.host = "127.0.0.1", .port = 0};
    struct sw_error err = {0};
    F.server = sw_http_server_start(&F.loop, &opts, console_handler, NULL, &err);
    if (F.server == NULL) {
        fprintf(stderr, "server: %s\n", err.msg);
        abort();
    }
    snprintf(F.base, sizeof(F.base), "http://127.0.0.1:%d", sw_http_server_port(F.server));
    F.http = sw_http_client_new(&F.loop);
    F.host = sw_plugin_host_new(&services, INSTANCE, 7);
    F.con.balance = 1000;
    F.con.ready_after_polls = 2;
    F.con.services = 1;
    F.con.default_funds_uact = 5e6;
}

static const char *plugin_path(void)
{
    static char path[512];
    const char *dir = getenv("SW_PLUGIN_DIR");
    snprintf(path, sizeof(path), "%s/swp_market_akash.so", dir ? dir : SW_BUILD_PLUGIN_DIR);
    return path;
}

/* Load the plugin with the test's base URL and fast timings; extra members (JSON object
 * members without braces) override them. */
static struct sw_plugin *load_plugin(const char *extra, struct sw_error *err)
{
    char *base = sw_xasprintf(
        "{\"base_url\": \"%s/\", \"api_key_env\": \"" KEY_ENV "\", \"bid_window\": \"150ms\","
        " \"poll_interval\": \"20ms\", \"ready_timeout\": \"3s\", \"backoff_base\": \"10ms\","
        " \"backoff_max\": \"40ms\", \"request_timeout\": \"2s\", \"watch_interval\": \"1h\","
        " \"auditors\": [\"akash1auditor\"]}",
        F.base);
    char *more = sw_xasprintf("{%s}", extra ? extra : "");
    cJSON *config = cJSON_Parse(base);
    cJSON *overrides = cJSON_Parse(more);
    for (cJSON *item = overrides ? overrides->child : NULL; item != NULL; item = item->next) {
        cJSON_DeleteItemFromObjectCaseSensitive(config, item->string);
        cJSON_AddItemToObject(config, item->string, cJSON_Duplicate(item, 1));
    }
    char *text = cJSON_PrintUnformatted(config);
    cJSON_Delete(config);
    cJSON_Delete(overrides);
    free(base);
    free(more);
    struct sw_plugin *p =
        sw_plugin_host_load(F.host, plugin_path(), text, "test.json:plugins.market_akash", err);
    cJSON_free(text);
    /* From here on the host would redact the key; the tests check the plugin itself. */
    sw_log_clear_secrets();
    if (p != NULL) {
        F.plugin = p;
        F.ops = sw_plugin_market(p);
        F.state = sw_plugin_state(p);
    }
    return p;
}

static void load_ok(const char *extra)
{
    struct sw_error err = {0};
    if (load_plugin(extra, &err) == NULL) {
        fprintf(stderr, "    load: %s\n", err.msg);
        SW_ASSERT(!"plugin failed to load");
    }
}

static void unload_plugin(void)
{
    if (F.plugin != NULL)
        sw_plugin_host_unload(F.host, F.plugin);
    F.plugin = NULL;
    F.ops = NULL;
    F.state = NULL;
}

static bool run_until(bool (*done)(void *), void *arg, uint64_t timeout_ms)
{
    uint64_t start = hr_ms();
    while (!done(arg)) {
        if (hr_ms() - start > timeout_ms)
            return false;
        uv_run(&F.loop, UV_RUN_ONCE);
    }
    return true;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void run_for(uint64_t ms)
{
    run_until(never, NULL, ms);
}

static void fixture_cleanup(void)
{
    unload_plugin();
    sw_plugin_host_free(F.host);
    sw_http_client_close(F.http);
    sw_http_server_close(F.server);
    sw_clock_free(F.clock);
    uv_close((uv_handle_t *)&F.tick, NULL);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&F.loop);
    if (rc != 0)
        fprintf(stderr, "    uv_loop_close: %d\n", rc);
    sw_log_configure(NULL, SW_LOG_FORMAT_TEXT, SW_LOG_WARN);
    if (F.log_stream)
        fclose(F.log_stream);
    free(F.log_data);
    for (size_t i = 0; i < F.con.dep_count; i++) {
        free(F.con.deps[i].sdl);
        free(F.con.deps[i].manifest);
    }
    for (size_t i = 0; i < F.con.log_count; i++)
        free(F.con.log[i].body);
    free(F.con.last_lease_body);
    while (F.kv != NULL) {
        struct kv_entry *e = F.kv;
        F.kv = e->next;
        free(e->key);
        free(e->value);
        free(e);
    }
    for (size_t i = 0; i < F.event_count; i++) {
        free(F.events[i].type);
        free(F.events[i].market_id);
        free(F.events[i].reason);
        free(F.events[i].data);
    }
    F.active = false;
}

/* Every test ends here: the key never reached a log line, the KV or an event, and the loop
 * closes clean. */
static void fixture_finish(void)
{
    unload_plugin();
    fflush(F.log_stream);
    SW_ASSERT(F.log_data != NULL && strstr(F.log_data, API_KEY) == NULL);
    for (struct kv_entry *e = F.kv; e != NULL; e = e->next)
        SW_ASSERT(strstr(e->value, API_KEY) == NULL);
    for (size_t i = 0; i < F.event_count; i++)
        SW_ASSERT(F.events[i].data == NULL || strstr(F.events[i].data, API_KEY) == NULL);
    sw_plugin_host_free(F.host);
    F.host = NULL;
    sw_http_client_close(F.http);
    sw_http_server_close(F.server);
    sw_clock_free(F.clock);
    uv_close((uv_handle_t *)&F.tick, NULL);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    SW_ASSERT_EQ(uv_loop_close(&F.loop), 0);
    F.host = sw_plugin_host_new(NULL, INSTANCE, 1); /* for cleanup's free */
    F.http = NULL;
    F.server = NULL;
    F.clock = NULL;
    uv_loop_init(&F.loop);
    uv_timer_init(&F.loop, &F.tick);
    fixture_cleanup();
}

/* ---- acquire helpers ----------------------------------------------------------------------- */

struct rec {
    int progress_count;
    int states[8];
    char created_id[32];
    int done_count;
    int done_status;
    int done_state;
    char msg[256];
    char market_id[32];
    char provider[64];
    char key[64];
    char tag[64];
    char uris[4][96];
    size_t uri_count;
    double price;
    int release_on_state;
    int release_status;
    bool release_done;
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    r->release_on_state = -1;
}

static void rec_unit(struct rec *r, const struct swp_unit *u)
{
    if (u == NULL)
        return;
    snprintf(r->market_id, sizeof(r->market_id), "%s", u->market_id ? u->market_id : "");
    snprintf(r->provider, sizeof(r->provider), "%s", u->provider ? u->provider : "");
    snprintf(r->key, sizeof(r->key), "%s", u->key ? u->key : "");
    snprintf(r->tag, sizeof(r->tag), "%s", u->tag ? u->tag : "");
    r->uri_count = u->uri_count;
    for (size_t i = 0; i < u->uri_count && i < 4; i++)
        snprintf(r->uris[i], sizeof(r->uris[i]), "%s", u->uris[i]);
    r->price = u->price_usd_hour;
}

static void on_release_done(void *ud, int status, const struct swp_error *err)
{
    struct rec *r = ud;
    r->release_status = status;
    r->release_done = true;
}

static void on_progress(void *ud, int status, const struct swp_unit *u, const struct swp_error *err)
{
    struct rec *r = ud;
    if (r->progress_count < 8)
        r->states[r->progress_count] = u->state;
    r->progress_count++;
    rec_unit(r, u);
    if (u->state == SWP_UNIT_CREATED)
        snprintf(r->created_id, sizeof(r->created_id), "%s", u->market_id);
    if (r->release_on_state == u->state)
        F.ops->release(F.state, u->market_id, on_release_done, r);
}

static void on_done(void *ud, int status, const struct swp_unit *u, const struct swp_error *err)
{
    struct rec *r = ud;
    r->done_count++;
    r->done_status = status;
    r->done_state = u ? u->state : -1;
    snprintf(r->msg, sizeof(r->msg), "%s", err ? err->msg : "");
    rec_unit(r, u);
}

static bool rec_finished(void *arg)
{
    return ((struct rec *)arg)->done_count > 0;
}

static bool release_finished(void *arg)
{
    return ((struct rec *)arg)->release_done;
}

struct acq_opts {
    const char *key;
    const char *region;
    double max_price;
    const char *const *avoid;
    size_t avoid_count;
    const char *const *prefer;
    size_t prefer_count;
    uint64_t deadline_ms;
    const char *sdl;
    const char *const *only;
    size_t only_count;
};

static int acquire(struct rec *r, struct acq_opts o)
{
    rec_init(r);
    struct swp_acquire_req req = {
        .size = sizeof(req),
        .key = o.key ? o.key : "steward-test-u1",
        .group = "web",
        .region = o.region ? o.region : "eu-west",
        .profile_json = PROFILE,
        .sdl_template = o.sdl ? o.sdl : TEMPLATE,
        .max_price_usd_hour = o.max_price,
        .avoid_providers = o.avoid,
        .avoid_count = o.avoid_count,
        .prefer_providers = o.prefer,
        .prefer_count = o.prefer_count,
        .deadline_ms = o.deadline_ms ? o.deadline_ms : 20000,
        .only_providers = o.only,
        .only_count = o.only_count,
    };
    return F.ops->acquire(F.state, &req, on_progress, on_done, r);
}

/* Acquire and wait for done. */
static void acquire_wait(struct rec *r, struct acq_opts o)
{
    SW_ASSERT_EQ(acquire(r, o), 0);
    SW_ASSERT(run_until(rec_finished, r, 15000));
    SW_ASSERT_EQ(r->done_count, 1);
}

static void set_bids(const struct bid_spec *bids, size_t count)
{
    for (size_t i = 0; i < count; i++)
        F.con.bids[i] = bids[i];
    F.con.bid_count = count;
}

static const struct bid_spec STANDARD_BIDS[] = {
    {"akash1mid", "120.000000000000000000", "1005", NULL, 0},
    {"akash1tie", "100.000000000000000000", "1000", NULL, 0},  /* later height, string-wise less */
    {"akash1cheap", "100.000000000000000000", "999", NULL, 0}, /* earliest of the tie */
    {"akash1dear", "150.500000000000000000", "990", NULL, 0},
    {"akash1gone", "50.000000000000000000", "980", "closed", 0}, /* cheapest but not open */
};

static void run_quiet(uint64_t ms)
{
    run_for(ms);
}

/* ---- tests ----------------------------------------------------------------------------------- */

SW_TEST(descriptor_and_config_errors)
{
    fixture_start();
    struct sw_error err = {0};
    SW_ASSERT(load_plugin("\"deposit_usd\": 0.2", &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "deposit_usd");
    SW_ASSERT(load_plugin("\"bid_window\": \"12m\"", &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "bid_window");
    SW_ASSERT(load_plugin("\"allow_providers\": [\"akash1a\", 3]", &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "allow_providers[1]");
    SW_ASSERT(load_plugin("\"sdl_template\": \"/nonexistent/web.sdl.yaml\"", &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "sdl_template");
    unsetenv(KEY_ENV);
    SW_ASSERT(load_plugin(NULL, &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, KEY_ENV);
    setenv(KEY_ENV, API_KEY, 1);
    load_ok(NULL);
    const struct swp_plugin *desc = sw_plugin_desc(F.plugin);
    SW_ASSERT_STREQ(desc->name, "market_akash");
    SW_ASSERT(desc->kinds == SWP_KIND_MARKET);
    SW_ASSERT(F.ops->acquire && F.ops->release && F.ops->list && F.ops->offers);
    /* A request the ABI says is invalid is refused at once. */
    struct rec r;
    rec_init(&r);
    struct swp_acquire_req bad = {.size = sizeof(bad), .key = "k", .group = "web"};
    SW_ASSERT_EQ(F.ops->acquire(F.state, &bad, on_progress, on_done, &r), SWP_EINVAL);
    SW_ASSERT_EQ(F.ops->release(F.state, "12ab", on_release_done, &r), SWP_EINVAL);
    fixture_finish();
}

SW_TEST(lowest_price_earliest_tie_lease_and_ready)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    F.con.services = 2;
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "steward-test-u1", .max_price = 0.5});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_EQ(r.done_state, SWP_UNIT_READY);
    /* CREATED (market_id = dseq string), LEASED, then done READY. */
    SW_ASSERT_EQ(r.progress_count, 2);
    SW_ASSERT_EQ(r.states[0], SWP_UNIT_CREATED);
    SW_ASSERT_EQ(r.states[1], SWP_UNIT_LEASED);
    SW_ASSERT_EQ(F.con.dep_count, 1);
    SW_ASSERT_STREQ(r.created_id, F.con.deps[0].dseq);
    SW_ASSERT_STREQ(r.market_id, F.con.deps[0].dseq);
    /* Tie at 100: created_at "999" < "1000" as integers (string order says otherwise). */
    SW_ASSERT_STREQ(r.provider, "akash1cheap");
    SW_ASSERT_NEAR(r.price, 100.0 * 600 / 1e6, 1e-12);
    SW_ASSERT_STREQ(r.key, "steward-test-u1");
    SW_ASSERT_STREQ(r.tag, INSTANCE);
    SW_ASSERT_EQ(r.uri_count, 2);
    char web[96], api[96];
    snprintf(web, sizeof(web), "web-%s.ingress.example", F.con.deps[0].dseq);
    snprintf(api, sizeof(api), "api-%s.ingress.example", F.con.deps[0].dseq);
    SW_ASSERT(strcmp(r.uris[0], web) == 0 || strcmp(r.uris[1], web) == 0);
    SW_ASSERT(strcmp(r.uris[0], api) == 0 || strcmp(r.uris[1], api) == 0);

    /* The create: wrapped, deposit always sent, the SDL pinned and stamped. */
    const struct req_log *create = con_request_at("POST", "/v1/deployments", 0);
    SW_ASSERT(create != NULL && create->key_ok);
    cJSON *body = cJSON_Parse(create->body);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data");
    SW_ASSERT_NEAR(cJSON_GetObjectItemCaseSensitive(data, "deposit")->valuedouble, 5.0, 1e-9);
    const char *sdl = cJSON_GetObjectItemCaseSensitive(data, "sdl")->valuestring;
    SW_ASSERT_CONTAINS(sdl, "location-region: eu-west");
    SW_ASSERT_CONTAINS(sdl, "STEWARD_UNIT_KEY=steward-test-u1");
    SW_ASSERT_CONTAINS(sdl, "STEWARD_TAG=" INSTANCE);
    SW_ASSERT_CONTAINS(sdl, "anyOf: [\"akash1auditor\"]");
    SW_ASSERT_CONTAINS(sdl, "amount: 833.333333"); /* 0.5 USD/h in uact per block */
    SW_ASSERT_CONTAINS(sdl, "units: 0.5");
    SW_ASSERT_CONTAINS(sdl, "size: 512Mi");
    SW_ASSERT_CONTAINS(sdl, "count: 1");
    SW_ASSERT(strstr(sdl, "{{") == NULL);
    cJSON_Delete(body);

    /* The lease: not wrapped, manifest byte for byte (the server compares it too). */
    SW_ASSERT_EQ(con_requests("POST", "/v1/leases"), 1);
    cJSON *lease = cJSON_Parse(F.con.last_lease_body);
    SW_ASSERT(cJSON_GetObjectItemCaseSensitive(lease, "data") == NULL);
    SW_ASSERT_STREQ(cJSON_GetObjectItemCaseSensitive(lease, "manifest")->valuestring,
                    F.con.deps[0].manifest);
    const cJSON *l0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(lease, "leases"), 0);
    SW_ASSERT_STREQ(cJSON_GetObjectItemCaseSensitive(l0, "dseq")->valuestring, F.con.deps[0].dseq);
    SW_ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(l0, "gseq")->valueint, 1);
    SW_ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(l0, "oseq")->valueint, 1);
    SW_ASSERT_STREQ(cJSON_GetObjectItemCaseSensitive(l0, "provider")->valuestring, "akash1cheap");
    cJSON_Delete(lease);
    /* min_bids 0 waits for the whole window: only its end is polled. Readiness polled
     * until up. */
    SW_ASSERT_EQ(con_requests("GET", "/v1/bids?dseq="), 1);
    SW_ASSERT(con_requests("GET", "/v1/deployments/") >= 3);
    /* Every call to the Console but /v1/providers carried the key. */
    for (size_t i = 0; i < F.con.log_count; i++)
        SW_ASSERT(F.con.log[i].key_ok);
    /* The choice is journaled with every bid and its verdict. */
    const struct event_rec *chosen = find_event("bid_chosen", NULL);
    SW_ASSERT(chosen != NULL);
    SW_ASSERT_STREQ(chosen->reason, "earliest_on_tie");
    SW_ASSERT_CONTAINS(chosen->data, "akash1gone");
    SW_ASSERT_CONTAINS(chosen->data, "not open");
    /* The KV knows the deployment, its key and manifest. */
    char kvkey[48];
    snprintf(kvkey, sizeof(kvkey), "dep/%s", F.con.deps[0].dseq);
    SW_ASSERT(kv_find(kvkey) != NULL);
    SW_ASSERT_CONTAINS(kv_find(kvkey)->value, "\"state\":\"ready\"");
    SW_ASSERT_CONTAINS(kv_find(kvkey)->value, "\"key\":\"steward-test-u1\"");
    /* The manifest is stored once, apart, byte for byte: the record rewritten at every
     * state change does not carry it. */
    SW_ASSERT(strstr(kv_find(kvkey)->value, "manifest") == NULL);
    snprintf(kvkey, sizeof(kvkey), "dep/%s/manifest", F.con.deps[0].dseq);
    SW_ASSERT(kv_find(kvkey) != NULL);
    SW_ASSERT_STREQ(kv_find(kvkey)->value, F.con.deps[0].manifest);
    SW_ASSERT(kv_find("pending") == NULL);
    fixture_finish();
}

SW_TEST(preferred_provider_breaks_a_price_tie)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    static const char *const prefer[] = {"akash1tie"};
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.prefer = prefer, .prefer_count = 1});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_STREQ(r.provider, "akash1tie");
    SW_ASSERT_STREQ(find_event("bid_chosen", NULL)->reason, "preferred_on_tie");
    fixture_finish();
}

static void filter_case(const char *config, struct acq_opts o, const char *expect_provider)
{
    load_ok(config);
    struct rec r;
    acquire_wait(&r, o);
    if (expect_provider == NULL) {
        SW_ASSERT_EQ(r.done_status, SWP_EMARKET);
        SW_ASSERT_CONTAINS(r.msg, "no acceptable bid");
    } else {
        SW_ASSERT_EQ(r.done_status, 0);
        SW_ASSERT_STREQ(r.provider, expect_provider);
    }
    unload_plugin();
}

SW_TEST(filters_choose_among_acceptable_bids)
{
    fixture_start();
    set_bids(STANDARD_BIDS, 5);
    static const char *const avoid[] = {"akash1cheap"};
    /* max price 0.066 USD/h = 110 uact/block: 120 and 150.5 are out. */
    filter_case(NULL, (struct acq_opts){.key = "f1", .max_price = 0.066}, "akash1cheap");
    filter_case(NULL, (struct acq_opts){.key = "f2", .avoid = avoid, .avoid_count = 1},
                "akash1tie");
    filter_case("\"deny_providers\": [\"akash1cheap\", \"akash1tie\"]",
                (struct acq_opts){.key = "f3"}, "akash1mid");
    filter_case("\"allow_providers\": [\"akash1dear\"]", (struct acq_opts){.key = "f4"},
                "akash1dear");
    /* audited: mid, tie, dear; the cheapest audited is tie at 100. */
    filter_case("\"audited_only\": true", (struct acq_opts){.key = "f5"}, "akash1tie");
    filter_case("\"required_attributes\": {\"tier\": \"premium\"}", (struct acq_opts){.key = "f6"},
                "akash1mid");
    /* Nothing passes: the deployment is closed. */
    filter_case("\"required_attributes\": {\"tier\": \"gold\"}", (struct acq_opts){.key = "f7"},
                NULL);
    SW_ASSERT_EQ(con_requests("GET", "/v1/providers"), 3); /* cached per plugin instance */
    for (size_t i = 0; i < F.con.log_count; i++)
        if (strcmp(F.con.log[i].target, "/v1/providers") == 0)
            SW_ASSERT(!F.con.log[i].key_sent); /* public endpoint: no key sent */
    SW_ASSERT_EQ(con_active(), 6);
    fixture_finish();
}

SW_TEST(no_acceptable_bid_closes_the_deployment)
{
    fixture_start();
    load_ok(NULL);
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "nobid"});
    SW_ASSERT_EQ(r.done_status, SWP_EMARKET);
    SW_ASSERT_CONTAINS(r.msg, "no acceptable bid for eu-west within 150ms");
    SW_ASSERT_CONTAINS(r.msg, "closed");
    SW_ASSERT_EQ(r.done_state, SWP_UNIT_CLOSED);
    SW_ASSERT_STREQ(r.market_id, F.con.deps[0].dseq);
    SW_ASSERT_EQ(con_requests("DELETE", "/v1/deployments/"), 1);
    SW_ASSERT_EQ(con_active(), 0);
    SW_ASSERT_EQ(con_requests("POST", "/v1/leases"), 0);
    SW_ASSERT(kv_find("index") != NULL && strcmp(kv_find("index")->value, "[]") == 0);
    fixture_finish();
}

SW_TEST(refused_lease_takes_the_next_bid)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    F.con.reject_lease_provider = "akash1cheap";
    F.con.reject_lease_times = 100;
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "refused"});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_STREQ(r.provider, "akash1tie");
    SW_ASSERT_EQ(con_requests("POST", "/v1/leases"), 2);
    fixture_finish();
}

SW_TEST(retries_429_and_5xx_with_backoff)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    con_rule((struct rule){.method = "POST",
                           .prefix = "/v1/deployments",
                           .times = 2,
                           .status = 429,
                           .body = "{\"error\":\"TooMany\",\"message\":\"slow down\","
                                   "\"code\":\"rate_limited\",\"type\":\"client_error\"}"});
    con_rule((struct rule){.method = "GET",
                           .prefix = "/v1/bids",
                           .times = 2,
                           .status = 503,
                           .body = "{\"error\":\"x\"}"});
    con_rule((struct rule){
        .method = "POST", .prefix = "/v1/leases", .times = 1, .status = 502, .body = ""});
    con_rule(
        (struct rule){.method = "GET", .prefix = "/v1/deployments/", .times = 1, .drop = true});
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "retry"});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_EQ(con_requests("POST", "/v1/deployments"), 3);
    SW_ASSERT_EQ(con_requests("POST", "/v1/leases"), 2);
    SW_ASSERT_EQ(F.con.dep_count, 1); /* 429 never creates: no reconciling list needed */
    SW_ASSERT_EQ(con_requests("GET", "/v1/deployments?"), 0);
    /* Backoff: attempts spaced by at least half the growing step (10 ms, then 20 ms). */
    const struct req_log *a0 = con_request_at("POST", "/v1/deployments", 0);
    const struct req_log *a1 = con_request_at("POST", "/v1/deployments", 1);
    const struct req_log *a2 = con_request_at("POST", "/v1/deployments", 2);
    SW_ASSERT(a1->at_hr_ms - a0->at_hr_ms >= 5);
    SW_ASSERT(a2->at_hr_ms - a1->at_hr_ms >= 10);
    unload_plugin();

    /* Retry-After is honoured even above backoff_max. */
    load_ok(NULL);
    con_rule((struct rule){.method = "GET",
                           .prefix = "/v1/bids",
                           .times = 1,
                           .status = 429,
                           .body = "{}",
                           .retry_after = "1"});
    acquire_wait(&r, (struct acq_opts){.key = "retry-after"});
    SW_ASSERT_EQ(r.done_status, 0);
    const struct req_log *first = NULL, *second = NULL;
    for (size_t i = 0, n = 0; i < F.con.log_count; i++) {
        if (strncmp(F.con.log[i].target, "/v1/bids?dseq=", 14) != 0 ||
            strcmp(F.con.log[i].target + 14, r.market_id) != 0)
            continue;
        if (n == 0)
            first = &F.con.log[i];
        else if (n == 1)
            second = &F.con.log[i];
        n++;
    }
    SW_ASSERT(first != NULL && second != NULL);
    SW_ASSERT(second->at_hr_ms - first->at_hr_ms >= 950);
    unload_plugin();

    /* Timeouts: a GET is retried; a create that timed out is checked for a deployment it
     * may have made (here it did: closed), then sent again. */
    load_ok("\"request_timeout\": \"250ms\"");
    size_t creates = con_requests("POST", "/v1/deployments");
    size_t before = F.con.dep_count;
    con_rule((struct rule){.method = "GET", .prefix = "/v1/bids", .times = 1, .hang = true});
    con_rule((struct rule){.method = "POST",
                           .prefix = "/v1/deployments",
                           .times = 1,
                           .after_action = true,
                           .hang = true});
    acquire_wait(&r, (struct acq_opts){.key = "timeouts"});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_EQ(con_requests("POST", "/v1/deployments"), creates + 2);
    SW_ASSERT_EQ(F.con.dep_count, before + 2);
    SW_ASSERT(!F.con.deps[before].active);
    SW_ASSERT(F.con.deps[before + 1].active);
    SW_ASSERT_STREQ(r.market_id, F.con.deps[before + 1].dseq);
    fixture_finish();
}

SW_TEST(retries_are_bounded_and_clean_up)
{
    fixture_start();
    load_ok("\"max_retries\": 2");
    set_bids(STANDARD_BIDS, 5);
    con_rule((struct rule){.method = "GET",
                           .prefix = "/v1/bids",
                           .times = 100,
                           .status = 500,
                           .body = "{\"error\":\"Internal\",\"message\":\"boom\","
                                   "\"code\":\"unknown_error\",\"type\":\"server_error\"}"});
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "bounded"});
    SW_ASSERT_EQ(r.done_status, SWP_EMARKET);
    SW_ASSERT_CONTAINS(r.msg, "HTTP 500 after 3 attempts");
    SW_ASSERT_CONTAINS(r.msg, "unknown_error: boom");
    SW_ASSERT_EQ(con_requests("GET", "/v1/bids"), 3);
    SW_ASSERT_EQ(con_requests("DELETE", "/v1/deployments/"), 1);
    SW_ASSERT_EQ(con_active(), 0);
    fixture_finish();
}

SW_TEST(uncertain_create_is_reconciled_never_bought_twice)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    /* The Console creates the deployment, then answers 503. */
    con_rule((struct rule){.method = "POST",
                           .prefix = "/v1/deployments",
                           .times = 1,
                           .status = 503,
                           .body = "{\"error\":\"gateway\"}",
                           .after_action = true});
    /* A deployment someone else made long ago: outside the window, never touched. */
    struct fdep *foreign = con_add("1600000000000");
    (void)foreign;
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "uncertain"});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_EQ(con_requests("POST", "/v1/deployments"), 2);
    SW_ASSERT(con_requests("GET", "/v1/deployments?skip=0&limit=100") >= 1);
    /* The lost one was closed, the foreign one kept: one unit bought. */
    SW_ASSERT_EQ(F.con.dep_count, 3);
    SW_ASSERT(!F.con.deps[1].active);
    SW_ASSERT(F.con.deps[0].active);
    SW_ASSERT(F.con.deps[2].active);
    SW_ASSERT_STREQ(r.market_id, F.con.deps[2].dseq);
    SW_ASSERT_EQ(con_requests("DELETE", "/v1/deployments/1600000000000"), 0);
    /* The record stays so the watch keeps looking until its window ends (a slow
     * marketplace may create the first attempt's deployment after the check); those looks
     * find nothing new here and close nothing. */
    SW_ASSERT(kv_find("pending") != NULL);
    unload_plugin();
    size_t lists = con_requests("GET", "/v1/deployments?");
    load_ok("\"watch_interval\": \"50ms\"");
    run_quiet(300);
    SW_ASSERT(con_requests("GET", "/v1/deployments?") > lists);
    SW_ASSERT(kv_find("pending") != NULL);
    SW_ASSERT_EQ(con_active(), 2);
    SW_ASSERT_EQ(con_requests("DELETE", "/v1/deployments/"), 1);
    /* A dropped connection on create is handled the same way. */
    con_rule((struct rule){.method = "POST",
                           .prefix = "/v1/deployments",
                           .times = 1,
                           .after_action = true,
                           .drop = true});
    acquire_wait(&r, (struct acq_opts){.key = "dropped"});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_EQ(con_active(), 3);
    fixture_finish();
}

struct malformed_case {
    const char *method;
    const char *prefix;
    const char *body;
    const char *expect;
    bool created; /* the deployment exists on the Console and must be closed */
    int times;    /* how many replies are bad (0: one); unparsable GETs are asked again */
};

SW_TEST(malformed_replies_are_clear_errors_with_cleanup)
{
    static const struct malformed_case cases[] = {
        {"POST", "/v1/deployments", "{\"data\": {\"dseq\": \"17", "malformed JSON", true, 0},
        {"POST", "/v1/deployments", "{\"data\": {\"dseq\": 1723456789012, \"manifest\": \"m\"}}",
         "data.dseq: expected a string of digits", true, 0},
        {"POST", "/v1/deployments", "{\"data\": {\"dseq\": \"1723456789012\"}}",
         "data.manifest: missing", true, 0},
        {"GET", "/v1/bids", "{\"data\": [ {\"bid\": ", "malformed JSON", true, 100},
        {"GET", "/v1/bids",
         "{\"data\": [{\"bid\": {\"id\": {\"provider\": \"akash1x\", \"dseq\": \"DSEQ\","
         " \"gseq\": 1, \"oseq\": 1, \"bseq\": 1}, \"state\": \"open\", \"price\": {\"denom\":"
         " \"uact\", \"amount\": 12.5}, \"created_at\": \"10\"}}]}",
         "data[0].bid.price.amount: expected a decimal string, got number", true, 0},
        {"GET", "/v1/bids",
         "{\"data\": [{\"bid\": {\"id\": {\"provider\": \"akash1x\", \"dseq\": \"DSEQ\","
         " \"gseq\": 1, \"oseq\": 1, \"bseq\": 1}, \"state\": \"open\", \"price\": {\"denom\":"
         " \"uact\", \"amount\": \"12.5\"}, \"created_at\": 10}}]}",
         "data[0].bid.created_at: expected an integer string", true, 0},
        {"GET", "/v1/bids", "{\"data\": {\"bids\": []}}", "data: expected array, got object", true,
         0},
        {"POST", "/v1/leases", "[1, 2", "POST /v1/leases: malformed JSON", true, 100},
        {"GET", "/v1/deployments/", "{\"data\": {\"deployment\": {\"id\": {}}}}",
         "data.deployment.id.dseq: missing", true, 0},
        {"GET", "/v1/deployments/", "", "empty reply", true, 0},
    };
    fixture_start();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct malformed_case *c = &cases[i];
        load_ok(NULL);
        set_bids(STANDARD_BIDS, 5);
        /* A bid body must name the deployment being asked about. */
        char *body = NULL;
        if (strstr(c->body, "DSEQ") != NULL) {
            char next[24];
            snprintf(next, sizeof(next), "%lld",
                     (long long)(F.con.next_dseq > sw_clock_now(F.clock) ? F.con.next_dseq
                                                                         : sw_clock_now(F.clock)));
            body = sw_xstrdup(c->body);
            char *at = strstr(body, "DSEQ");
            char *fixed = sw_xasprintf("%.*s%s%s", (int)(at - body), body, next, at + 4);
            free(body);
            body = fixed;
            /* The dseq is the creation time: make sure this one is taken by the create. */
            F.con.next_dseq = strtoll(next, NULL, 10);
        }
        F.con.rule_count = 0;
        con_rule((struct rule){.method = c->method,
                               .prefix = c->prefix,
                               .times = c->times > 0 ? c->times : 1,
                               .status = 200,
                               .body = body ? body : c->body,
                               .after_action = true});
        if (strcmp(c->method, "POST") == 0 && strcmp(c->prefix, "/v1/deployments") == 0)
            F.con.rules[0].status = 201;
        size_t before = F.con.dep_count;
        char key[32];
        snprintf(key, sizeof(key), "bad-%zu", i);
        struct rec r;
        acquire_wait(&r, (struct acq_opts){.key = key});
        if (r.done_status != SWP_EMARKET || strstr(r.msg, c->expect) == NULL)
            fprintf(stderr, "    case %zu: status %d: %s\n", i, r.done_status, r.msg);
        SW_ASSERT_EQ(r.done_status, SWP_EMARKET);
        SW_ASSERT_CONTAINS(r.msg, c->expect);
        if (F.con.dep_count != before + 1 || F.con.deps[before].active)
            fprintf(stderr, "    case %zu: %zu deployments, first active %d: %s\n", i,
                    F.con.dep_count - before, F.con.deps[before].active, r.msg);
        SW_ASSERT_EQ(F.con.dep_count, before + 1); /* never created twice */
        SW_ASSERT(!F.con.deps[before].active);     /* and what was created is closed */
        SW_ASSERT_EQ(con_active(), 0);
        free(body);
        unload_plugin();
    }
    fixture_finish();
}

SW_TEST(api_key_never_leaks)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    /* A server that echoes the key back in its error. */
    con_rule((struct rule){
        .method = "GET",
        .prefix = "/v1/bids",
        .times = 1,
        .status = 401,
        .body = "{\"error\":\"Unauthorized\",\"message\":\"key " API_KEY
                " is not valid\",\"code\":\"unauthorized\",\"type\":\"client_error\"}"});
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "redact"});
    SW_ASSERT_EQ(r.done_status, SWP_EMARKET);
    SW_ASSERT_CONTAINS(r.msg, "HTTP 401");
    SW_ASSERT_CONTAINS(r.msg, "[REDACTED]");
    SW_ASSERT(strstr(r.msg, API_KEY) == NULL);
    SW_ASSERT_EQ(con_active(), 0);
    /* Non-JSON error text too. */
    con_rule((struct rule){.method = "POST",
                           .prefix = "/v1/deployments",
                           .times = 1,
                           .status = 400,
                           .body = "bad key " API_KEY "!"});
    acquire_wait(&r, (struct acq_opts){.key = "redact2"});
    SW_ASSERT_EQ(r.done_status, SWP_EMARKET);
    SW_ASSERT(strstr(r.msg, API_KEY) == NULL);
    SW_ASSERT_CONTAINS(r.msg, "[REDACTED]");
    /* The key went out only as the header. */
    for (size_t i = 0; i < F.con.log_count; i++)
        SW_ASSERT(strstr(F.con.log[i].body, API_KEY) == NULL);
    fixture_finish(); /* asserts logs, KV and events */
}

static bool rec_created(void *arg)
{
    return ((struct rec *)arg)->progress_count >= 1 || ((struct rec *)arg)->done_count > 0;
}

static bool rec_leased(void *arg)
{
    return ((struct rec *)arg)->progress_count >= 2 || ((struct rec *)arg)->done_count > 0;
}

/* The lease is not written to the KV (one write per acquire fewer): a restart between the
 * lease and readiness finds "created", and the resume re-derives the lease from the
 * marketplace (sent again, idempotent) instead of buying again. */
SW_TEST(restart_after_the_lease_resumes_from_the_marketplace)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    F.con.ready_after_polls = 1000000;
    struct rec r;
    SW_ASSERT_EQ(acquire(&r, (struct acq_opts){.key = "leased"}), 0);
    SW_ASSERT(run_until(rec_leased, &r, 15000));
    SW_ASSERT_EQ(r.progress_count, 2);
    SW_ASSERT_EQ(r.states[1], SWP_UNIT_LEASED);
    char dseq[32], kvkey[48];
    snprintf(dseq, sizeof(dseq), "%s", r.created_id);
    snprintf(kvkey, sizeof(kvkey), "dep/%s", dseq);
    SW_ASSERT(con_find(dseq)->leased);
    SW_ASSERT_CONTAINS(kv_find(kvkey)->value, "\"state\":\"created\"");
    unload_plugin();
    size_t leases_before = con_requests("POST", "/v1/leases");
    F.con.ready_after_polls = 0;
    load_ok(NULL);
    acquire_wait(&r, (struct acq_opts){.key = "leased"});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_STREQ(r.market_id, dseq);
    SW_ASSERT_STREQ(r.provider, "akash1cheap");
    SW_ASSERT_EQ(con_requests("POST", "/v1/deployments"), 1);
    SW_ASSERT_EQ(con_requests("POST", "/v1/leases"), leases_before + 1);
    SW_ASSERT_EQ(con_active(), 1);
    SW_ASSERT_CONTAINS(kv_find(kvkey)->value, "\"state\":\"ready\"");
    SW_ASSERT_CONTAINS(kv_find(kvkey)->value, "\"provider\":\"akash1cheap\"");
    fixture_finish();
}

SW_TEST(acquire_with_an_existing_key_resumes)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "same"});
    SW_ASSERT_EQ(r.done_status, 0);
    char dseq[32];
    snprintf(dseq, sizeof(dseq), "%s", r.market_id);
    /* A restart, then the same key: replayed, nothing bought. */
    unload_plugin();
    load_ok(NULL);
    acquire_wait(&r, (struct acq_opts){.key = "same"});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_STREQ(r.market_id, dseq);
    SW_ASSERT_EQ(r.progress_count, 2);
    SW_ASSERT_EQ(r.uri_count, 1);
    SW_ASSERT_STREQ(r.provider, "akash1cheap");
    SW_ASSERT_EQ(con_requests("POST", "/v1/deployments"), 1);
    /* Two at once with one key: the second is refused while the first runs. */
    struct rec r2, r3;
    SW_ASSERT_EQ(acquire(&r2, (struct acq_opts){.key = "twice"}), 0);
    SW_ASSERT_EQ(acquire(&r3, (struct acq_opts){.key = "twice"}), SWP_EEXIST);
    SW_ASSERT(run_until(rec_finished, &r2, 15000));
    SW_ASSERT_EQ(r2.done_status, 0);
    SW_ASSERT_EQ(con_requests("POST", "/v1/deployments"), 2);

    /* Interrupted after CREATED (steward stops): the next start resumes the deployment. */
    struct rec r4;
    SW_ASSERT_EQ(acquire(&r4, (struct acq_opts){.key = "interrupted"}), 0);
    SW_ASSERT(run_until(rec_created, &r4, 5000));
    SW_ASSERT_EQ(r4.progress_count, 1);
    snprintf(dseq, sizeof(dseq), "%s", r4.created_id);
    unload_plugin();
    SW_ASSERT_EQ(r4.done_status, SWP_ECANCELED);
    load_ok(NULL);
    acquire_wait(&r4, (struct acq_opts){.key = "interrupted"});
    SW_ASSERT_EQ(r4.done_status, 0);
    SW_ASSERT_STREQ(r4.market_id, dseq);
    SW_ASSERT_EQ(con_requests("POST", "/v1/deployments"), 3);

    /* Interrupted between the lease and its answer: resumed as leased, the manifest sent
     * again (the lease call is idempotent), no new deployment. */
    struct rec r5;
    con_rule((struct rule){
        .method = "POST", .prefix = "/v1/leases", .times = 1, .after_action = true, .drop = true});
    con_rule((struct rule){
        .method = "POST", .prefix = "/v1/leases", .times = 1, .after_action = true, .drop = true});
    con_rule((struct rule){
        .method = "POST", .prefix = "/v1/leases", .times = 100, .status = 503, .body = "{}"});
    SW_ASSERT_EQ(acquire(&r5, (struct acq_opts){.key = "mid-lease"}), 0);
    SW_ASSERT(run_until(rec_created, &r5, 5000));
    size_t leases_before = con_requests("POST", "/v1/leases");
    while (con_requests("POST", "/v1/leases") == leases_before)
        uv_run(&F.loop, UV_RUN_ONCE);
    unload_plugin();
    F.con.rule_count = 0;
    snprintf(dseq, sizeof(dseq), "%s", r5.created_id);
    SW_ASSERT(con_find(dseq)->leased);
    load_ok(NULL);
    acquire_wait(&r5, (struct acq_opts){.key = "mid-lease"});
    SW_ASSERT_EQ(r5.done_status, 0);
    SW_ASSERT_STREQ(r5.market_id, dseq);
    SW_ASSERT_EQ(con_requests("POST", "/v1/deployments"), 4);
    SW_ASSERT_EQ(con_active(), 4);
    fixture_finish();
}

/* The create went out, the Console made the deployment, steward died before recording it. */
static void seed_lost_create(const char *key, char *lost_dseq, size_t size)
{
    int64_t now = sw_clock_now(F.clock);
    snprintf(lost_dseq, size, "%lld", (long long)now - 3000);
    con_add(lost_dseq);
    char pending[320];
    snprintf(pending, sizeof(pending),
             "[{\"key\":\"%s\",\"tag\":\"" INSTANCE "\",\"group\":\"web\","
             "\"region\":\"eu-west\",\"started_ms\":%lld,\"until_ms\":%lld}]",
             key, (long long)now - 3500, (long long)now - 2500);
    svc_kv_set(NULL, NULL, "pending", pending);
}

SW_TEST(crash_before_the_create_was_recorded)
{
    fixture_start();
    set_bids(STANDARD_BIDS, 5);
    /* Someone else's deployment from long before: never touched. */
    con_add("1600000000000");
    char lost[24];
    seed_lost_create("k-crash", lost, sizeof(lost));
    load_ok(NULL);
    /* The runtime resumes the interrupted acquire with its key: the lost deployment (no
     * manifest: it can never be leased) is closed, then exactly one new one is bought. */
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "k-crash"});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT(!con_find(lost)->active);
    SW_ASSERT(con_find("1600000000000")->active);
    SW_ASSERT_EQ(con_requests("POST", "/v1/deployments"), 1);
    SW_ASSERT_EQ(con_active(), 2);
    SW_ASSERT(kv_find("pending") == NULL);
    unload_plugin();

    /* Nobody asks again for that key: the watch finds and closes the lost one. */
    char lost2[24];
    seed_lost_create("k-gone", lost2, sizeof(lost2));
    load_ok("\"watch_interval\": \"50ms\"");
    run_quiet(400);
    SW_ASSERT(!con_find(lost2)->active);
    SW_ASSERT(con_find("1600000000000")->active);
    SW_ASSERT(kv_find("pending") == NULL);
    SW_ASSERT_EQ(con_active(), 2);
    fixture_finish();
}

/* only_providers pins the placement: the cheapest bid from anyone else is passed over, and
 * with no pinned provider bidding the acquire fails (and closes its deployment). */
SW_TEST(only_providers_pin_the_choice)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    static const char *const pinned[] = {"akash1dear"};
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "pin-1", .only = pinned, .only_count = 1});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_STREQ(r.provider, "akash1dear");
    const struct event_rec *chosen = find_event("bid_chosen", NULL);
    SW_ASSERT(chosen != NULL);
    SW_ASSERT_CONTAINS(chosen->data, "not a pinned provider");

    static const char *const nobody[] = {"akash1elsewhere"};
    struct rec r2;
    acquire_wait(&r2, (struct acq_opts){.key = "pin-2", .only = nobody, .only_count = 1});
    SW_ASSERT_EQ(r2.done_status, SWP_EMARKET);
    SW_ASSERT_CONTAINS(r2.msg, "no acceptable bid");
    SW_ASSERT_CONTAINS(r2.msg, "not a pinned provider");
    SW_ASSERT_EQ(r2.done_state, SWP_UNIT_CLOSED);
    SW_ASSERT_EQ(con_requests("POST", "/v1/leases"), 1);
    SW_ASSERT_EQ(con_active(), 1);
    fixture_finish();
}

/* Polls follow the marketplace's timing instead of every poll_interval: with bids 400 ms
 * after the create and a 2 s poll_interval, a few polls see them (the gap grows with the
 * wait); three acquires in one region at once share them (one asks, the others wait for
 * its answer), and a later acquire starts from the learned delay. */
SW_TEST(polls_follow_the_marketplace_timing)
{
    fixture_start();
    load_ok("\"bid_window\": \"8s\", \"min_bids\": 1, \"poll_interval\": \"2s\"");
    static const struct bid_spec slow[] = {{"akash1mid", "120.0", "1005", NULL, 400}};
    set_bids(slow, 1);
    /* The fake's readiness counts polls per deployment, not time: the shared polls assume a
     * delay in time, so here a lease is ready at its first poll. */
    F.con.ready_after_polls = 0;
    uint64_t start = hr_ms();
    struct rec r1, r2, r3;
    SW_ASSERT_EQ(acquire(&r1, (struct acq_opts){.key = "t-1"}), 0);
    SW_ASSERT_EQ(acquire(&r2, (struct acq_opts){.key = "t-2"}), 0);
    SW_ASSERT_EQ(acquire(&r3, (struct acq_opts){.key = "t-3"}), 0);
    SW_ASSERT(run_until(rec_finished, &r1, 15000));
    SW_ASSERT(run_until(rec_finished, &r2, 15000));
    SW_ASSERT(run_until(rec_finished, &r3, 15000));
    SW_ASSERT_EQ(r1.done_status, 0);
    SW_ASSERT_EQ(r2.done_status, 0);
    SW_ASSERT_EQ(r3.done_status, 0);
    /* Seen at most half a wait late: 400 ms bids, then readiness. */
    SW_ASSERT(hr_ms() - start < 2500);
    size_t burst = con_requests("GET", "/v1/bids?dseq=");
    /* One acquire alone polls at 250 ms (the floor) and 500 ms; the others ask only once the
     * first has seen bids. Polling every 100 ms as before would be ~15. */
    SW_ASSERT(burst >= 2);
    SW_ASSERT(burst <= 6);
    /* Learned: the next acquire's first poll goes just before the delay. */
    struct rec r4;
    acquire_wait(&r4, (struct acq_opts){.key = "t-4"});
    SW_ASSERT_EQ(r4.done_status, 0);
    SW_ASSERT(con_requests("GET", "/v1/bids?dseq=") - burst <= 2);
    fixture_finish();
}

/* Scopes that have never seen bids (a fresh process: every region is new) share one
 * search for the delay: three regions at once make the quiet polls of one search, then each
 * deployment polls once when bids are there. A search per region would be 2 polls each. */
SW_TEST(cold_scopes_share_one_search)
{
    fixture_start();
    load_ok("\"bid_window\": \"8s\", \"min_bids\": 1, \"poll_interval\": \"2s\"");
    static const struct bid_spec slow[] = {{"akash1mid", "120.0", "1005", NULL, 400}};
    set_bids(slow, 1);
    F.con.ready_after_polls = 0;
    static const char *const regions[] = {"eu-west", "eu-central", "us-east"};
    static const char *const keys[] = {"cold-1", "cold-2", "cold-3"};
    struct rec r[3];
    for (size_t i = 0; i < 3; i++)
        SW_ASSERT_EQ(acquire(&r[i], (struct acq_opts){.key = keys[i], .region = regions[i]}), 0);
    for (size_t i = 0; i < 3; i++) {
        SW_ASSERT(run_until(rec_finished, &r[i], 15000));
        SW_ASSERT_EQ(r[i].done_status, 0);
    }
    size_t polls = con_requests("GET", "/v1/bids?dseq=");
    /* 250 ms quiet (one poll for all), 500 ms seen (one poll each). */
    SW_ASSERT(polls >= 3);
    SW_ASSERT(polls <= 4);
    /* Each region has now seen bids: its own learned delay decides from here on. */
    fixture_finish();
}

/* A record written before "dep/<dseq>/manifest" existed carries the manifest itself: a restart
 * resumes the deployment and leases it with that manifest, which moves to its own key. */
SW_TEST(legacy_record_with_its_manifest_resumes)
{
    fixture_start();
    set_bids(STANDARD_BIDS, 5);
    char dseq[24], record[512], index[64], kvkey[48];
    long long created = (long long)sw_clock_now(F.clock) - 1000;
    snprintf(dseq, sizeof(dseq), "%lld", created);
    struct fdep *d = con_add(dseq);
    d->ours = true;
    d->manifest = sw_xstrdup("legacy \"manifest\" body");
    snprintf(record, sizeof(record),
             "{\"dseq\":\"%s\",\"state\":\"created\",\"created_ms\":%lld,\"key\":\"legacy\","
             "\"tag\":\"" INSTANCE "\",\"group\":\"web\",\"region\":\"eu-west\","
             "\"manifest\":\"legacy \\\"manifest\\\" body\"}",
             dseq, created);
    snprintf(kvkey, sizeof(kvkey), "dep/%s", dseq);
    snprintf(index, sizeof(index), "[\"%s\"]", dseq);
    svc_kv_set(NULL, NULL, kvkey, record);
    svc_kv_set(NULL, NULL, "index", index);
    load_ok(NULL);
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "legacy"});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_STREQ(r.market_id, dseq);
    SW_ASSERT(con_find(dseq)->leased);
    SW_ASSERT_EQ(con_requests("POST", "/v1/deployments"), 0);
    SW_ASSERT(strstr(kv_find(kvkey)->value, "manifest") == NULL);
    snprintf(kvkey, sizeof(kvkey), "dep/%s/manifest", dseq);
    SW_ASSERT(kv_find(kvkey) != NULL);
    SW_ASSERT_STREQ(kv_find(kvkey)->value, "legacy \"manifest\" body");
    fixture_finish();
}

/* More acquires polling at once than the plugin lets on the wire (32): the rest wait their
 * turn, and every one of them still finishes. (The fake's readiness counts each
 * deployment's polls, so a short poll_interval makes every deployment ask.) */
SW_TEST(polls_beyond_the_concurrency_wait_their_turn)
{
    fixture_start();
    load_ok("\"bid_window\": \"8s\", \"min_bids\": 1, \"poll_interval\": \"300ms\","
            " \"ready_timeout\": \"10s\"");
    static const struct bid_spec slow[] = {{"akash1mid", "120.0", "1005", NULL, 300}};
    set_bids(slow, 1);
    F.con.ready_after_polls = 0;
    enum { N = 80 };
    static struct rec r[N];
    char keys[N][16];
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "herd-%zu", i);
        SW_ASSERT_EQ(acquire(&r[i], (struct acq_opts){.key = keys[i]}), 0);
    }
    for (size_t i = 0; i < N; i++) {
        SW_ASSERT(run_until(rec_finished, &r[i], 15000));
        SW_ASSERT_EQ(r[i].done_status, 0);
    }
    SW_ASSERT_EQ(con_active(), N);
    fixture_finish();
}

SW_TEST(min_bids_chooses_early)
{
    fixture_start();
    load_ok("\"bid_window\": \"5s\", \"min_bids\": 2");
    static const struct bid_spec late[] = {
        {"akash1mid", "120.0", "1005", NULL, 0},
        {"akash1tie", "110.0", "1006", NULL, 60},
        {"akash1cheap", "10.0", "1100", NULL, 3000}, /* too late to matter */
    };
    set_bids(late, 3);
    uint64_t start = hr_ms();
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "early"});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_STREQ(r.provider, "akash1tie");
    SW_ASSERT(hr_ms() - start < 2500);
    fixture_finish();
}

struct list_rec {
    int calls;
    int status;
    size_t count;
    char msg[256];
    size_t ours;
    size_t ready;
    size_t with_key;
    char first_key[64];
    char first_uri[96];
    char listed[330][24];
};

static void on_list(void *ud, int status, const struct swp_unit *units, size_t count,
                    const struct swp_error *err)
{
    struct list_rec *l = ud;
    l->calls++;
    l->status = status;
    l->count = count;
    snprintf(l->msg, sizeof(l->msg), "%s", err ? err->msg : "");
    for (size_t i = 0; i < count; i++) {
        const struct swp_unit *u = &units[i];
        if (i < 330)
            snprintf(l->listed[i], sizeof(l->listed[i]), "%s", u->market_id);
        if (u->tag && strcmp(u->tag, INSTANCE) == 0)
            l->ours++;
        if (u->key) {
            l->with_key++;
            if (l->first_key[0] == '\0')
                snprintf(l->first_key, sizeof(l->first_key), "%s", u->key);
        }
        if (u->state == SWP_UNIT_READY) {
            l->ready++;
            if (u->uri_count > 0)
                snprintf(l->first_uri, sizeof(l->first_uri), "%s", u->uris[0]);
        }
    }
}

static bool list_finished(void *arg)
{
    return ((struct list_rec *)arg)->calls > 0;
}

static bool listed(const struct list_rec *l, const char *dseq)
{
    for (size_t i = 0; i < l->count && i < 330; i++)
        if (strcmp(l->listed[i], dseq) == 0)
            return true;
    return false;
}

SW_TEST(list_pages_and_recovers_keys_and_tags)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "listed-ready"});
    SW_ASSERT_EQ(r.done_status, 0);
    char ready_dseq[32];
    snprintf(ready_dseq, sizeof(ready_dseq), "%s", r.market_id);
    /* 240 foreign deployments, one of them leased by someone else. */
    for (int i = 0; i < 240; i++) {
        char dseq[24];
        snprintf(dseq, sizeof(dseq), "%lld", 1600000000000LL + i);
        struct fdep *d = con_add(dseq);
        if (i == 7) {
            d->leased = true;
            snprintf(d->provider, sizeof(d->provider), "akash1other");
            snprintf(d->amount, sizeof(d->amount), "10.0");
            snprintf(d->lease_state, sizeof(d->lease_state), "active");
        }
    }
    /* A crash between the create and its record: the pending window finds it. */
    int64_t now = sw_clock_now(F.clock);
    char lost[24];
    snprintf(lost, sizeof(lost), "%lld", (long long)now + 500);
    con_add(lost);
    char pending[256];
    snprintf(pending, sizeof(pending),
             "[{\"key\":\"crashed\",\"tag\":\"" INSTANCE "\",\"group\":\"web\","
             "\"region\":\"eu-west\",\"started_ms\":%lld,\"until_ms\":%lld}]",
             (long long)now, (long long)now + 2000);
    unload_plugin();
    svc_kv_set(NULL, NULL, "pending", pending);
    load_ok(NULL);

    struct list_rec l = {0};
    SW_ASSERT_EQ(F.ops->list(F.state, on_list, &l), 0);
    SW_ASSERT(run_until(list_finished, &l, 10000));
    SW_ASSERT_EQ(l.status, 0);
    SW_ASSERT_EQ(con_requests("GET", "/v1/deployments?skip="), 3); /* 242 in pages of 100 */
    SW_ASSERT(con_request_at("GET", "/v1/deployments?skip=200&limit=100", 0) != NULL);
    SW_ASSERT_EQ(l.count, 241); /* the lost create is not reported: it is being closed */
    SW_ASSERT(!listed(&l, lost));
    SW_ASSERT(listed(&l, ready_dseq));
    SW_ASSERT_EQ(l.ours, 1);
    SW_ASSERT_EQ(l.with_key, 1);
    SW_ASSERT_STREQ(l.first_key, "listed-ready");
    SW_ASSERT_EQ(l.ready, 1);
    SW_ASSERT_CONTAINS(l.first_uri, ready_dseq);
    run_quiet(300);
    SW_ASSERT(!con_find(lost)->active);
    SW_ASSERT_EQ(con_active(), 241);
    SW_ASSERT(kv_find("pending") == NULL);

    /* A record that says "created" for a deployment that is leased (a crash right after
     * the lease): list checks it in detail, reports it ready, and updates the record. */
    unload_plugin();
    char kvkey[48];
    snprintf(kvkey, sizeof(kvkey), "dep/%s", ready_dseq);
    cJSON *record = cJSON_Parse(kv_find(kvkey)->value);
    cJSON_ReplaceItemInObjectCaseSensitive(record, "state", cJSON_CreateString("created"));
    cJSON_ReplaceItemInObjectCaseSensitive(record, "uris", cJSON_CreateArray());
    char *text = cJSON_PrintUnformatted(record);
    cJSON_Delete(record);
    svc_kv_set(NULL, NULL, kvkey, text);
    cJSON_free(text);
    load_ok(NULL);
    size_t details_before = con_requests("GET", "/v1/deployments/");
    struct list_rec l2 = {0};
    SW_ASSERT_EQ(F.ops->list(F.state, on_list, &l2), 0);
    SW_ASSERT(run_until(list_finished, &l2, 10000));
    SW_ASSERT_EQ(l2.status, 0);
    SW_ASSERT_EQ(con_requests("GET", "/v1/deployments/"), details_before + 1);
    SW_ASSERT_EQ(l2.ours, 1);
    SW_ASSERT_EQ(l2.ready, 1);
    SW_ASSERT_CONTAINS(l2.first_uri, ready_dseq);
    SW_ASSERT_CONTAINS(kv_find(kvkey)->value, "\"state\":\"ready\"");
    fixture_finish();
}

SW_TEST(list_errors_are_reported)
{
    fixture_start();
    load_ok(NULL);
    con_rule((struct rule){.method = "GET",
                           .prefix = "/v1/deployments?",
                           .times = 1,
                           .status = 200,
                           .body = "{\"data\": {\"deployments\": [], \"pagination\": {\"hasMore\": "
                                   "\"yes\"}}}"});
    struct list_rec l = {0};
    SW_ASSERT_EQ(F.ops->list(F.state, on_list, &l), 0);
    SW_ASSERT(run_until(list_finished, &l, 5000));
    SW_ASSERT_EQ(l.status, SWP_EMARKET);
    SW_ASSERT_CONTAINS(l.msg, "data.pagination.hasMore: expected boolean");
    /* A server whose hasMore never ends is stopped. */
    con_rule((struct rule){.method = "GET",
                           .prefix = "/v1/deployments?",
                           .times = 1,
                           .status = 200,
                           .body = "{\"data\": {\"deployments\": [], \"pagination\": {\"hasMore\": "
                                   "true}}}"});
    memset(&l, 0, sizeof(l));
    SW_ASSERT_EQ(F.ops->list(F.state, on_list, &l), 0);
    SW_ASSERT(run_until(list_finished, &l, 5000));
    SW_ASSERT_EQ(l.status, SWP_EMARKET);
    SW_ASSERT_CONTAINS(l.msg, "does not advance");
    fixture_finish();
}

/* steward market serve's rate_malformed: a GET (or the idempotent lease call) whose 2xx body
 * is cut short is asked again instead of failing the acquire or the recovery listing. */
SW_TEST(malformed_reply_to_an_idempotent_call_is_retried)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    con_rule((struct rule){
        .method = "GET", .prefix = "/v1/bids", .times = 1, .status = 200, .body = "{\"data\": ["});
    con_rule((struct rule){.method = "POST",
                           .prefix = "/v1/leases",
                           .times = 1,
                           .status = 200,
                           .body = "<html>502</html>",
                           .after_action = true});
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "cut"});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_EQ(F.con.dep_count, 1);
    SW_ASSERT_EQ(con_active(), 1);
    SW_ASSERT_EQ(con_requests("POST", "/v1/leases"), 2);
    con_rule((struct rule){.method = "GET",
                           .prefix = "/v1/deployments?",
                           .times = 1,
                           .status = 200,
                           .body = "{\"data\": {\"deploy"});
    struct list_rec l = {0};
    SW_ASSERT_EQ(F.ops->list(F.state, on_list, &l), 0);
    SW_ASSERT(run_until(list_finished, &l, 5000));
    SW_ASSERT_EQ(l.status, 0);
    SW_ASSERT_EQ(l.count, 1);
    SW_ASSERT_EQ(con_requests("GET", "/v1/deployments?"), 2);
    fixture_finish();
}

SW_TEST(watch_reports_a_closed_lease_and_closes_it)
{
    fixture_start();
    load_ok("\"watch_interval\": \"50ms\"");
    set_bids(STANDARD_BIDS, 5);
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "lost"});
    SW_ASSERT_EQ(r.done_status, 0);
    struct fdep *d = con_find(r.market_id);
    snprintf(d->lease_state, sizeof(d->lease_state), "closed");
    snprintf(d->lease_reason, sizeof(d->lease_reason), "lease_closed_reason_unstable");
    run_quiet(400);
    const struct event_rec *ev = find_event("unit_lost", NULL);
    SW_ASSERT(ev != NULL);
    SW_ASSERT_STREQ(ev->market_id, r.market_id);
    SW_ASSERT_STREQ(ev->reason, "lease_closed_reason_unstable");
    SW_ASSERT_CONTAINS(ev->data, "akash1cheap");
    SW_ASSERT_EQ(F.event_count, 2); /* bid_chosen + one unit_lost, not one per pass */
    SW_ASSERT(!d->active);          /* closed to get the escrow back */
    char kvkey[48];
    snprintf(kvkey, sizeof(kvkey), "dep/%s", r.market_id);
    SW_ASSERT(kv_find(kvkey) == NULL);

    /* Escrow ran dry: the marketplace closed the deployment itself. */
    acquire_wait(&r, (struct acq_opts){.key = "dry"});
    SW_ASSERT_EQ(r.done_status, 0);
    d = con_find(r.market_id);
    d->active = false;
    snprintf(d->lease_reason, sizeof(d->lease_reason), "lease_closed_reason_insufficient_funds");
    run_quiet(400);
    const struct event_rec *dry = NULL;
    for (size_t i = 0; i < F.event_count; i++)
        if (strcmp(F.events[i].type, "unit_lost") == 0 &&
            strcmp(F.events[i].market_id, r.market_id) == 0)
            dry = &F.events[i];
    SW_ASSERT(dry != NULL);
    SW_ASSERT_STREQ(dry->reason, "lease_closed_reason_insufficient_funds");
    unload_plugin();

    /* A deployment still waiting for bids that nobody drives any more (20 minutes old). */
    char old_dseq[24], record[256];
    long long old_ms = (long long)sw_clock_now(F.clock) - 20 * 60 * 1000;
    snprintf(old_dseq, sizeof(old_dseq), "%lld", old_ms);
    con_add(old_dseq);
    snprintf(record, sizeof(record),
             "{\"dseq\":\"%s\",\"state\":\"created\",\"created_ms\":%lld,\"key\":\"old\","
             "\"tag\":\"" INSTANCE "\",\"manifest\":\"m\"}",
             old_dseq, old_ms);
    char index[64];
    snprintf(kvkey, sizeof(kvkey), "dep/%s", old_dseq);
    snprintf(index, sizeof(index), "[\"%s\"]", old_dseq);
    svc_kv_set(NULL, NULL, kvkey, record);
    svc_kv_set(NULL, NULL, "index", index);
    load_ok("\"watch_interval\": \"50ms\"");
    run_quiet(300);
    SW_ASSERT(!con_find(old_dseq)->active);
    const struct event_rec *abandoned = NULL;
    for (size_t i = 0; i < F.event_count; i++)
        if (F.events[i].market_id && strcmp(F.events[i].market_id, old_dseq) == 0)
            abandoned = &F.events[i];
    SW_ASSERT(abandoned != NULL);
    SW_ASSERT_STREQ(abandoned->reason, "lease_missing");
    SW_ASSERT(kv_find(kvkey) == NULL);
    fixture_finish();
}

SW_TEST(escrow_low_alerts_and_tops_up)
{
    fixture_start();
    /* 100 uact/block = 60000 uact/h; 30000 uact of funds is half an hour. */
    F.con.default_funds_uact = 30000;
    load_ok("\"watch_interval\": \"50ms\", \"topup_below_hours\": 2, \"deposit_usd\": 1");
    set_bids(STANDARD_BIDS, 5);
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "escrow"});
    SW_ASSERT_EQ(r.done_status, 0);
    run_quiet(400);
    const struct event_rec *ev = find_event("alert", "escrow_low");
    SW_ASSERT(ev != NULL);
    SW_ASSERT_STREQ(ev->market_id, r.market_id);
    SW_ASSERT_CONTAINS(ev->data, "\"runway_hours\":0.5");
    SW_ASSERT_EQ(con_requests("POST", "/v1/deposit-deployment"), 1);
    const struct req_log *topup = con_request_at("POST", "/v1/deposit-deployment", 0);
    char expect[96];
    snprintf(expect, sizeof(expect), "{\"data\":{\"dseq\":\"%s\",\"deposit\":1}}", r.market_id);
    SW_ASSERT_STREQ(topup->body, expect);
    SW_ASSERT_NEAR(con_find(r.market_id)->funds_uact, 1030000, 1e-6);
    fixture_finish();
}

/* The host may send a request marked idempotent twice (on a kept connection that died):
 * only the lease POST, which is harmless to repeat, is marked among the POSTs; a create and
 * a deposit never are. */
SW_TEST(only_repeatable_posts_are_marked_idempotent)
{
    fixture_start();
    F.con.default_funds_uact = 30000;
    load_ok("\"watch_interval\": \"50ms\", \"topup_below_hours\": 2, \"deposit_usd\": 1");
    set_bids(STANDARD_BIDS, 5);
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "idem"});
    SW_ASSERT_EQ(r.done_status, 0);
    run_quiet(400);
    int creates = 0, leases = 0, deposits = 0;
    for (size_t i = 0; i < F.sent_count; i++) {
        bool post = strcmp(F.sent[i].method, "POST") == 0;
        bool lease = post && strncmp(F.sent[i].path, "/v1/leases", 10) == 0;
        if (post && strcmp(F.sent[i].path, "/v1/deployments") == 0)
            creates++;
        if (post && strcmp(F.sent[i].path, "/v1/deposit-deployment") == 0)
            deposits++;
        leases += lease;
        if (post)
            SW_ASSERT_EQ(F.sent[i].idempotent, lease);
    }
    SW_ASSERT_EQ(creates, 1);
    SW_ASSERT_EQ(leases, 1);
    SW_ASSERT_EQ(deposits, 1);
    fixture_finish();
}

SW_TEST(insufficient_funds_stops_buying_until_the_balance_covers_it)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    F.con.balance = 1;
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "poor"});
    SW_ASSERT_EQ(r.done_status, SWP_EFUNDS);
    SW_ASSERT_CONTAINS(r.msg, "HTTP 402");
    const struct event_rec *alert = find_event("alert", "insufficient_funds");
    SW_ASSERT(alert != NULL);
    SW_ASSERT(kv_find("funds_blocked") != NULL);
    /* Still poor: two acquires at once are refused after balance checks, no create. */
    struct rec r2;
    SW_ASSERT_EQ(acquire(&r, (struct acq_opts){.key = "poor2"}), 0);
    SW_ASSERT_EQ(acquire(&r2, (struct acq_opts){.key = "poor3"}), 0);
    SW_ASSERT(run_until(rec_finished, &r, 5000));
    SW_ASSERT(run_until(rec_finished, &r2, 5000));
    SW_ASSERT_EQ(r.done_status, SWP_EFUNDS);
    SW_ASSERT_EQ(r2.done_status, SWP_EFUNDS);
    SW_ASSERT_CONTAINS(r.msg, "cannot cover the 5.00 USD deposit");
    SW_ASSERT_EQ(con_requests("POST", "/v1/deployments"), 1);
    SW_ASSERT_EQ(con_requests("GET", "/v1/balances"), 2);
    /* The block survives a restart; money arrives; buying resumes. */
    unload_plugin();
    load_ok(NULL);
    F.con.balance = 100;
    acquire_wait(&r, (struct acq_opts){.key = "rich"});
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_EQ(con_requests("GET", "/v1/balances"), 3);
    SW_ASSERT(kv_find("funds_blocked") == NULL);
    fixture_finish();
}

SW_TEST(readiness_timeout_and_deadline_close)
{
    fixture_start();
    load_ok("\"ready_timeout\": \"300ms\"");
    set_bids(STANDARD_BIDS, 5);
    F.con.ready_after_polls = 1000000;
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "slow"});
    SW_ASSERT_EQ(r.done_status, SWP_ETIMEDOUT);
    SW_ASSERT_CONTAINS(r.msg, "was not ready within 300ms");
    SW_ASSERT_EQ(con_active(), 0);
    /* The request's own deadline, while bids are still being collected. */
    acquire_wait(&r, (struct acq_opts){.key = "late", .deadline_ms = 60});
    SW_ASSERT_EQ(r.done_status, SWP_ETIMEDOUT);
    SW_ASSERT_CONTAINS(r.msg, "within 60ms");
    SW_ASSERT_EQ(con_active(), 0);
    SW_ASSERT_EQ(con_requests("DELETE", "/v1/deployments/"), 2);
    fixture_finish();
}

SW_TEST(release_is_idempotent)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "rel"});
    SW_ASSERT_EQ(r.done_status, 0);
    char dseq[32];
    snprintf(dseq, sizeof(dseq), "%s", r.market_id);
    r.release_done = false;
    SW_ASSERT_EQ(F.ops->release(F.state, dseq, on_release_done, &r), 0);
    SW_ASSERT(run_until(release_finished, &r, 5000));
    SW_ASSERT_EQ(r.release_status, 0);
    SW_ASSERT(!con_find(dseq)->active);
    /* Again: the Console says 404 (here: unknown to it too) and that is success. */
    r.release_done = false;
    SW_ASSERT_EQ(F.ops->release(F.state, "1500000000000", on_release_done, &r), 0);
    SW_ASSERT(run_until(release_finished, &r, 5000));
    SW_ASSERT_EQ(r.release_status, 0);
    r.release_done = false;
    SW_ASSERT_EQ(F.ops->release(F.state, dseq, on_release_done, &r), 0);
    SW_ASSERT(run_until(release_finished, &r, 5000));
    SW_ASSERT_EQ(r.release_status, 0);
    /* Released from inside the CREATED progress: the acquire ends cancelled, closed. */
    struct rec r2;
    SW_ASSERT_EQ(acquire(&r2, (struct acq_opts){.key = "rel2"}), 0);
    r2.release_on_state = SWP_UNIT_CREATED;
    SW_ASSERT(run_until(release_finished, &r2, 5000));
    SW_ASSERT_EQ(r2.done_count, 1);
    SW_ASSERT_EQ(r2.done_status, SWP_ECANCELED);
    SW_ASSERT_EQ(r2.release_status, 0);
    SW_ASSERT_EQ(con_active(), 0);
    /* A failing DELETE is an error, not a success. */
    acquire_wait(&r, (struct acq_opts){.key = "rel3"});
    con_rule((struct rule){.method = "DELETE",
                           .prefix = "/v1/deployments/",
                           .times = 1,
                           .status = 403,
                           .body = "{\"error\":\"Forbidden\",\"message\":\"not yours\","
                                   "\"code\":\"forbidden\",\"type\":\"client_error\"}"});
    r.release_done = false;
    SW_ASSERT_EQ(F.ops->release(F.state, r.market_id, on_release_done, &r), 0);
    SW_ASSERT(run_until(release_finished, &r, 5000));
    SW_ASSERT_EQ(r.release_status, SWP_EMARKET);
    SW_ASSERT(con_find(r.market_id)->active);
    fixture_finish();
}

struct offers_rec {
    int calls;
    int status;
    size_t count;
    char provider[4][64];
    char region[4][32];
    double price[4];
    bool audited[4];
};

static void on_offers(void *ud, int status, const struct swp_offer *offers, size_t count,
                      const struct swp_error *err)
{
    struct offers_rec *o = ud;
    o->calls++;
    o->status = status;
    o->count = count;
    for (size_t i = 0; i < count && i < 4; i++) {
        snprintf(o->provider[i], sizeof(o->provider[i]), "%s", offers[i].provider);
        snprintf(o->region[i], sizeof(o->region[i]), "%s", offers[i].region);
        o->price[i] = offers[i].price_usd_hour;
        o->audited[i] = offers[i].audited;
    }
}

static bool offers_finished(void *arg)
{
    return ((struct offers_rec *)arg)->calls > 0;
}

static const struct offers_rec *offer_of(const struct offers_rec *o, const char *provider,
                                         size_t *index)
{
    for (size_t i = 0; i < o->count && i < 4; i++) {
        if (strcmp(o->provider[i], provider) == 0) {
            *index = i;
            return o;
        }
    }
    return NULL;
}

SW_TEST(offers_from_providers_and_seen_bids)
{
    fixture_start();
    load_ok("\"deny_providers\": [\"akash1dear\"]");
    struct offers_rec o = {0};
    SW_ASSERT_EQ(F.ops->offers(F.state, on_offers, &o), 0);
    SW_ASSERT(run_until(offers_finished, &o, 5000));
    SW_ASSERT_EQ(o.status, 0);
    SW_ASSERT_EQ(o.count, 0); /* no bid seen yet: no price to offer */
    set_bids(STANDARD_BIDS, 5);
    struct rec r;
    acquire_wait(&r, (struct acq_opts){.key = "priced"});
    SW_ASSERT_EQ(r.done_status, 0);
    /* Prices survive a restart (KV). */
    unload_plugin();
    load_ok("\"deny_providers\": [\"akash1dear\"]");
    memset(&o, 0, sizeof(o));
    SW_ASSERT_EQ(F.ops->offers(F.state, on_offers, &o), 0);
    SW_ASSERT(run_until(offers_finished, &o, 5000));
    SW_ASSERT_EQ(o.status, 0);
    /* cheap, tie, mid seen open; dear denied; gone never open. */
    SW_ASSERT_EQ(o.count, 3);
    size_t i = 0;
    SW_ASSERT(offer_of(&o, "akash1mid", &i) != NULL);
    SW_ASSERT_NEAR(o.price[i], 120.0 * 600 / 1e6, 1e-9);
    SW_ASSERT_STREQ(o.region[i], "eu-west");
    SW_ASSERT(o.audited[i]);
    SW_ASSERT(offer_of(&o, "akash1cheap", &i) != NULL);
    SW_ASSERT(!o.audited[i]);
    SW_ASSERT(offer_of(&o, "akash1dear", &i) == NULL);
    /* New prices reach the KV within a second without a restart too. */
    struct rec r2;
    acquire_wait(&r2, (struct acq_opts){.key = "priced-2", .region = "eu-central"});
    SW_ASSERT_EQ(r2.done_status, 0);
    run_quiet(1200);
    SW_ASSERT(kv_find("prices") != NULL);
    SW_ASSERT_CONTAINS(kv_find("prices")->value, "eu-central");
    /* A malformed providers list is an error. */
    unload_plugin();
    load_ok(NULL);
    con_rule((struct rule){.method = "GET",
                           .prefix = "/v1/providers",
                           .times = 1,
                           .status = 200,
                           .body = "[{\"owner\": 5}]"});
    memset(&o, 0, sizeof(o));
    SW_ASSERT_EQ(F.ops->offers(F.state, on_offers, &o), 0);
    SW_ASSERT(run_until(offers_finished, &o, 5000));
    SW_ASSERT_EQ(o.status, SWP_EMARKET);
    fixture_finish();
}

SW_TEST(shutdown_cancels_everything_in_flight)
{
    fixture_start();
    load_ok(NULL);
    set_bids(STANDARD_BIDS, 5);
    struct rec a, b, c;
    SW_ASSERT_EQ(acquire(&a, (struct acq_opts){.key = "s1"}), 0);
    SW_ASSERT_EQ(acquire(&b, (struct acq_opts){.key = "s2"}), 0); /* queued behind s1 */
    SW_ASSERT_EQ(acquire(&c, (struct acq_opts){.key = "s3"}), 0);
    struct list_rec l = {0};
    SW_ASSERT_EQ(F.ops->list(F.state, on_list, &l), 0);
    SW_ASSERT(run_until(rec_created, &a, 5000));
    unload_plugin();
    SW_ASSERT_EQ(a.done_count, 1);
    SW_ASSERT_EQ(a.done_status, SWP_ECANCELED);
    SW_ASSERT_EQ(b.done_count, 1);
    SW_ASSERT_EQ(b.done_status, SWP_ECANCELED);
    SW_ASSERT_EQ(c.done_count, 1);
    SW_ASSERT_EQ(l.calls, 1);
    /* Nothing was closed on the way out: a restart resumes. */
    SW_ASSERT_EQ(con_requests("DELETE", "/v1/deployments/"), 0);
    fixture_finish();
}

SW_TEST(example_template_renders)
{
    fixture_start();
    char *path =
        sw_xasprintf("\"sdl_template\": \"%s/examples/akash/web.sdl.yaml\"", SW_SOURCE_DIR);
    load_ok(path);
    free(path);
    set_bids(STANDARD_BIDS, 5);
    struct rec r;
    rec_init(&r);
    struct swp_acquire_req req = {
        .size = sizeof(req),
        .key = "example-u1",
        .group = "web",
        .region = "eu-central",
        .profile_json = PROFILE,
        .max_price_usd_hour = 0.25,
        .deadline_ms = 20000,
    };
    SW_ASSERT_EQ(F.ops->acquire(F.state, &req, on_progress, on_done, &r), 0);
    SW_ASSERT(run_until(rec_finished, &r, 15000));
    SW_ASSERT_EQ(r.done_status, 0);
    const char *sdl = F.con.deps[0].sdl;
    SW_ASSERT_CONTAINS(sdl, "location-region: eu-central");
    SW_ASSERT_CONTAINS(sdl, "STEWARD_UNIT_KEY=example-u1");
    SW_ASSERT_CONTAINS(sdl, "amount: 416.666667");
    SW_ASSERT(strstr(sdl, "{{") == NULL);
    /* A template with an unknown placeholder is a clear configuration error. */
    acquire_wait(&r, (struct acq_opts){.key = "badtmpl", .sdl = "image: {{imagee}}\n"});
    SW_ASSERT_EQ(r.done_status, SWP_ECONFIG);
    SW_ASSERT_CONTAINS(r.msg, "unknown placeholder {{imagee}}");
    fixture_finish();
}

SW_TEST_MAIN()
