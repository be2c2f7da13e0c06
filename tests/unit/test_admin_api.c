/* test_admin_api.c — the admin API against a real runtime (market_sim, a one-line policy,
 * a live clock sped up 10x) on one uv loop, with requests from core/http_client.h on the
 * same loop and slow raw-socket clients in threads. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "admin_api.h"
#include "clock.h"
#include "config.h"
#include "http_client.h"
#include "journal.h"
#include "log.h"
#include "mem.h"
#include "runtime.h"
#include "sw_test.h"

#define SPEED 10.0
#define TOKEN "t0ken-for-the-admin-api-test"

struct fx {
    uv_loop_t loop;
    struct sw_clock *clock;
    struct sw_config *config;
    struct sw_runtime *rt;
    struct sw_admin_api *api;
    struct sw_http_client *http;
    char dir[64];
    int port;
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

/* Policy "pin" wants 1 unit in eu-west; "other" wants nothing and fails when asked to. */
static const char *const CONFIG_TEXT =
    "{\"id\": \"admintest\", \"state\": \":memory:\", \"market\": \"market_sim\",\n"
    " \"plugin_dirs\": [\"" SW_BUILD_PLUGIN_DIR "\"], \"lua_path\": \"" SW_SOURCE_DIR "/lua\",\n"
    " \"plugins\": {\"market_sim\": {\"persist\": false, \"create_delay\": \"50ms\",\n"
    "   \"bid_window\": \"300ms\", \"providers\": [\n"
    "   {\"owner\": \"akash1west\", \"region\": \"eu-west\", \"price_uact_per_block\": 100,\n"
    "    \"bid_delay\": \"100ms\", \"ready_delay\": \"200ms\", \"capacity\": 20},\n"
    "   {\"owner\": \"akash1east\", \"region\": \"as-east\", \"price_uact_per_block\": 150,\n"
    "    \"bid_delay\": \"100ms\", \"ready_delay\": \"200ms\", \"capacity\": 20}]}},\n"
    " \"guard\": {\"budget_usd_hour\": 5},\n"
    " \"groups\": {\"web\": {\"min\": 0, \"max\": 6, \"regions\": [\"eu-west\", \"as-east\"]}},\n"
    " \"policies\": [{\"name\": \"pin\", \"file\": \"pin.lua\", \"interval\": \"1s\"},\n"
    "              {\"name\": \"other\", \"file\": \"other.lua\", \"interval\": \"1s\"}]}\n";

static void fx_start(struct fx *fx, const char *token, uint64_t idle_timeout_ms)
{
    memset(fx, 0, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/sw_test_admin_XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        abort();
    char *pin = sw_xasprintf("%s/pin.lua", fx->dir);
    write_file(pin, "return { name = 'pin', evaluate = function(ctx)\n"
                    "  return { web = { ['eu-west'] = 1 } } end }\n");
    char *other = sw_xasprintf("%s/other.lua", fx->dir);
    /* Fails every time, with characters JSON must escape in its message. */
    write_file(other, "return { name = 'other', evaluate = function(ctx)\n"
                      "  error('bad \"quote\"\\n\\tand \\\\ slash') end }\n");
    char *cfg = sw_xasprintf("%s/steward.json", fx->dir);
    write_file(cfg, CONFIG_TEXT);
    struct sw_error err = {0};
    fx->config = sw_config_load(cfg, &err);
    if (fx->config == NULL) {
        fprintf(stderr, "    config: %s\n", err.msg);
        abort();
    }
    free(pin);
    free(other);
    free(cfg);
    uv_loop_init(&fx->loop);
    fx->clock = sw_clock_live_new(&fx->loop, SPEED);
    struct sw_runtime_opts opts = {
        .config = fx->config,
        .clock = fx->clock,
        .loop = &fx->loop,
        .plugin_dirs = (const char *const *)fx->config->plugin_dirs,
        .plugin_dir_count = fx->config->plugin_dir_count,
        .lua_path = fx->config->lua_path,
        .offers_every_ms = 1000,
        .watch_every_ms = 1000,
    };
    fx->rt = sw_runtime_new(&opts, &err);
    if (fx->rt == NULL) {
        fprintf(stderr, "    runtime: %s\n", err.msg);
        abort();
    }
    struct sw_admin_api_opts aopts = {
        .loop = &fx->loop,
        .runtime = fx->rt,
        .clock = fx->clock,
        .port = 0,
        .token = token,
        .idle_timeout_ms = idle_timeout_ms,
    };
    fx->api = sw_admin_api_start(&aopts, &err);
    if (fx->api == NULL) {
        fprintf(stderr, "    admin api: %s\n", err.msg);
        abort();
    }
    fx->port = sw_admin_api_port(fx->api);
    fx->http = sw_http_client_new(&fx->loop);
}

static void walk_close(uv_handle_t *handle, void *arg)
{
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

static int fx_finish(struct fx *fx)
{
    sw_http_client_close(fx->http);
    sw_admin_api_close(fx->api);
    sw_runtime_free(fx->rt);
    sw_clock_free(fx->clock);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    uv_walk(&fx->loop, walk_close, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    sw_config_free(fx->config);
    char *cmd = sw_xasprintf("rm -rf %s", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "    could not remove %s\n", fx->dir);
    free(cmd);
    return uv_loop_close(&fx->loop);
}

/* ---- driving the loop ------------------------------------------------------------------ */

static void flag_set(uv_timer_t *timer)
{
    *(bool *)timer->data = true;
}

/* Runs the loop for ms of wall time (the runtime keeps ticking meanwhile). */
static void run_for(struct fx *fx, uint64_t ms)
{
    bool done = false;
    uv_timer_t timer;
    uv_timer_init(&fx->loop, &timer);
    timer.data = &done;
    uv_timer_start(&timer, flag_set, ms, 0);
    while (!done)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

struct got {
    bool done;
    int status;
    long code;
    char *body;
};

static void got_cb(void *ud, int status, const struct swp_http_resp *resp, const char *error_text)
{
    struct got *g = ud;
    g->done = true;
    g->status = status;
    if (status == 0) {
        g->code = resp->status;
        g->body = sw_xstrndup(resp->body ? resp->body : "", resp->body_len);
    }
}

/* HTTP status of method path (body optional); *body_out owned when not NULL. */
static long fetch(struct fx *fx, const char *method, const char *path, const char *auth,
                  const char *body, char **body_out)
{
    char *url = sw_xasprintf("http://127.0.0.1:%d%s", fx->port, path);
    char *auth_header = auth ? sw_xasprintf("Authorization: %s", auth) : NULL;
    const char *headers[] = {auth_header};
    struct swp_http_req req = {
        .size = sizeof(req),
        .method = method,
        .url = url,
        .headers = headers,
        .header_count = auth_header ? 1 : 0,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .timeout_ms = 5000,
    };
    struct got g = {0};
    if (sw_http_client_request(fx->http, &req, got_cb, &g) == 0)
        abort();
    while (!g.done)
        uv_run(&fx->loop, UV_RUN_ONCE);
    free(url);
    free(auth_header);
    if (body_out != NULL)
        *body_out = g.body;
    else
        free(g.body);
    return g.status == 0 ? g.code : g.status;
}

static cJSON *fetch_json(struct fx *fx, const char *path)
{
    char *body = NULL;
    long code = fetch(fx, "GET", path, NULL, NULL, &body);
    if (code != 200)
        fprintf(stderr, "    GET %s: %ld %s\n", path, code, body ? body : "");
    cJSON *root = code == 200 ? cJSON_Parse(body) : NULL;
    free(body);
    return root;
}

static double jnum(const cJSON *obj, const char *path)
{
    /* "a.b.c" through objects only */
    char *copy = sw_xstrdup(path);
    const cJSON *cur = obj;
    char *save = NULL;
    for (char *part = strtok_r(copy, ".", &save); part && cur; part = strtok_r(NULL, ".", &save))
        cur = cJSON_GetObjectItemCaseSensitive(cur, part);
    free(copy);
    return cJSON_IsNumber(cur) ? cur->valuedouble : -1;
}

static double policy_field(struct fx *fx, const char *policy, const char *field)
{
    cJSON *st = fetch_json(fx, "/v1/status");
    double value = -1;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(st, "policies"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(p, "name");
        if (cJSON_IsString(name) && strcmp(name->valuestring, policy) == 0) {
            const cJSON *item = cJSON_GetObjectItemCaseSensitive(p, field);
            value = cJSON_IsBool(item) ? cJSON_IsTrue(item) : jnum(p, field);
        }
    }
    cJSON_Delete(st);
    return value;
}

/* Desired and ready of web/eu-west from /v1/status. */
static void eu_west(struct fx *fx, double *desired, double *ready)
{
    cJSON *st = fetch_json(fx, "/v1/status");
    *desired = *ready = -1;
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "groups"), 0);
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(g, "regions"))
    {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(r, "region")->valuestring, "eu-west") == 0) {
            *desired = jnum(r, "desired");
            *ready = jnum(r, "ready");
        }
    }
    cJSON_Delete(st);
}

static void start_and_wait_ready(struct fx *fx)
{
    struct sw_error err = {0};
    SW_ASSERT_EQ(fetch(fx, "GET", "/readyz", NULL, NULL, NULL), 503);
    SW_ASSERT_EQ(sw_runtime_start(fx->rt, &err), 0);
    for (int i = 0; i < 100 && !sw_runtime_ready(fx->rt); i++)
        run_for(fx, 20);
    SW_ASSERT(sw_runtime_ready(fx->rt));
}

/* ---- tests -------------------------------------------------------------------------------- */

SW_TEST(token_compare)
{
    SW_ASSERT(sw_admin_token_equal("abc123", "abc123"));
    SW_ASSERT(!sw_admin_token_equal("abc123", "abc124"));
    SW_ASSERT(!sw_admin_token_equal("abc123", "abc1234"));
    SW_ASSERT(!sw_admin_token_equal("abc123", "abc12"));
    SW_ASSERT(!sw_admin_token_equal("abc123", ""));
    SW_ASSERT(!sw_admin_token_equal("abc123", "abc123abc123")); /* cyclic walk must not match */
    SW_ASSERT(!sw_admin_token_equal("abc123", NULL));
    SW_ASSERT(!sw_admin_token_equal(NULL, "abc123"));
    SW_ASSERT(!sw_admin_token_equal("", ""));
}

SW_TEST(read_endpoints_shapes)
{
    struct fx fx;
    fx_start(&fx, TOKEN, 0);
    char *body = NULL;
    SW_ASSERT_EQ(fetch(&fx, "GET", "/healthz", NULL, NULL, &body), 200);
    SW_ASSERT_STREQ(body, "ok\n");
    free(body);
    start_and_wait_ready(&fx);
    SW_ASSERT_EQ(fetch(&fx, "GET", "/readyz", NULL, NULL, NULL), 200);
    /* Let the unit be bought and become ready (~0.5 s clock = 50 ms wall, plus ticks). */
    double desired = 0, ready = 0;
    for (int i = 0; i < 100 && ready < 1; i++) {
        run_for(&fx, 30);
        eu_west(&fx, &desired, &ready);
    }
    SW_ASSERT_EQ(desired, 1);
    SW_ASSERT_EQ(ready, 1);

    cJSON *st = fetch_json(&fx, "/v1/status");
    SW_ASSERT(st != NULL);
    SW_ASSERT_STREQ(cJSON_GetObjectItemCaseSensitive(st, "id")->valuestring, "admintest");
    /* ha: without an "ha" section this replica is the leader, as a "leader" object */
    const cJSON *leader = cJSON_GetObjectItemCaseSensitive(st, "leader");
    SW_ASSERT_STREQ(cJSON_GetObjectItemCaseSensitive(leader, "who")->valuestring, "self");
    SW_ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(leader, "self")));
    SW_ASSERT(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(leader, "ha")));
    SW_ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "ready")));
    SW_ASSERT(jnum(st, "uptime_s") >= 0);
    SW_ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "policies")), 2);
    SW_ASSERT(jnum(st, "budget.limit_usd_hour") == 5);
    SW_ASSERT(jnum(st, "budget.spend_usd_hour") > 0);
    SW_ASSERT(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(st, "escrow"), "runway_hours")));
    SW_ASSERT(jnum(st, "counters.acquires_ready") >= 1);
    const cJSON *other = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "policies"), 1);
    SW_ASSERT_STREQ(cJSON_GetObjectItemCaseSensitive(other, "name")->valuestring, "other");
    SW_ASSERT(jnum(other, "errors") >= 1);
    SW_ASSERT_CONTAINS(cJSON_GetObjectItemCaseSensitive(other, "last_error")->valuestring,
                       "bad \"quote\"\n\tand \\ slash");
    const cJSON *pin = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "policies"), 0);
    SW_ASSERT(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(pin, "last_error")));
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "groups"), 0);
    SW_ASSERT_STREQ(cJSON_GetObjectItemCaseSensitive(g, "name")->valuestring, "web");
    SW_ASSERT_EQ(jnum(g, "max"), 6);
    SW_ASSERT(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(g, "overrides")));
    cJSON_Delete(st);

    cJSON *leases = fetch_json(&fx, "/v1/leases");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(leases, "leases");
    SW_ASSERT_EQ(cJSON_GetArraySize(arr), 1);
    const cJSON *u = cJSON_GetArrayItem(arr, 0);
    SW_ASSERT_STREQ(cJSON_GetObjectItemCaseSensitive(u, "state")->valuestring, "ready");
    SW_ASSERT_STREQ(cJSON_GetObjectItemCaseSensitive(u, "provider")->valuestring, "akash1west");
    SW_ASSERT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(u, "market_id")));
    SW_ASSERT(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(u, "self")));
    cJSON_Delete(leases);

    cJSON *dec = fetch_json(&fx, "/v1/decisions?policy=pin&limit=3");
    SW_ASSERT(dec != NULL);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(dec, "decisions");
    SW_ASSERT(cJSON_GetArraySize(list) >= 1 && cJSON_GetArraySize(list) <= 3);
    const cJSON *d0 = cJSON_GetArrayItem(list, 0);
    SW_ASSERT_STREQ(cJSON_GetObjectItemCaseSensitive(d0, "policy")->valuestring, "pin");
    SW_ASSERT(cJSON_GetObjectItemCaseSensitive(d0, "inputs") == NULL); /* only with inputs=1 */
    SW_ASSERT(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(d0, "desired")));
    cJSON_Delete(dec);
    dec = fetch_json(&fx, "/v1/decisions?since=0&limit=1&inputs=1");
    d0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(dec, "decisions"), 0);
    SW_ASSERT(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(d0, "inputs")));
    cJSON_Delete(dec);
    dec = fetch_json(&fx, "/v1/decisions?since=10m&policy=nosuch");
    SW_ASSERT_EQ(jnum(dec, "count"), 0);
    cJSON_Delete(dec);
    SW_ASSERT_EQ(fetch(&fx, "GET", "/v1/decisions?limit=0", NULL, NULL, NULL), 400);
    SW_ASSERT_EQ(fetch(&fx, "GET", "/v1/decisions?since=yesterday", NULL, NULL, NULL), 400);

    cJSON *ev = fetch_json(&fx, "/v1/events?after=0&limit=50");
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(ev, "events");
    SW_ASSERT(cJSON_GetArraySize(events) >= 1);
    bool saw_ready = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, events) saw_ready |=
        strcmp(cJSON_GetObjectItemCaseSensitive(e, "type")->valuestring, "unit_ready") == 0;
    SW_ASSERT(saw_ready);
    double next = jnum(ev, "next_after");
    SW_ASSERT(next >= 1);
    cJSON_Delete(ev);
    char *path = sw_xasprintf("/v1/events?after=%.0f", next);
    ev = fetch_json(&fx, path);
    free(path);
    SW_ASSERT_EQ(jnum(ev, "next_after"), next); /* nothing newer yet: stays put */
    cJSON_Delete(ev);

    SW_ASSERT_EQ(fetch(&fx, "GET", "/v1/nothing", NULL, NULL, NULL), 404);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/status", NULL, "{}", NULL), 405);
    SW_ASSERT_EQ(fetch(&fx, "GET", "/v1/reload", NULL, NULL, NULL), 405);
    SW_ASSERT_EQ(fx_finish(&fx), 0);
}

SW_TEST(mutations_need_the_token)
{
    struct fx fx;
    fx_start(&fx, TOKEN, 0);
    start_and_wait_ready(&fx);
    char *body = NULL;
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/policies/pin/pause", NULL, "{}", &body), 401);
    SW_ASSERT_CONTAINS(body, "unauthorized");
    free(body);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/policies/pin/pause", "Bearer wrong", "{}", NULL), 401);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/policies/pin/pause", "Bearer " TOKEN "x", "{}", NULL),
                 401);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/policies/pin/pause", "Basic " TOKEN, "{}", NULL), 401);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/reload", NULL, "{}", NULL), 401);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/groups/web/override", "Bearer nope",
                       "{\"count\": 1, \"for\": \"1m\"}", NULL),
                 401);
    SW_ASSERT_EQ(policy_field(&fx, "pin", "paused"), 0);
    /* Unknown names are only revealed to the token holder. */
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/policies/nosuch/pause", NULL, "{}", NULL), 401);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/policies/nosuch/pause", "Bearer " TOKEN, "{}", NULL),
                 404);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/reload", "bearer " TOKEN, "{}", NULL), 200);
    SW_ASSERT_EQ(fx_finish(&fx), 0);

    /* Without a token configured nothing can be changed. */
    fx_start(&fx, NULL, 0);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/policies/pin/pause", "Bearer anything", "{}", &body),
                 403);
    SW_ASSERT_CONTAINS(body, "token_env");
    free(body);
    SW_ASSERT_EQ(fx_finish(&fx), 0);
}

/* The API reuses /v1/status sections whose inputs did not change; whatever changes the
 * runtime (evaluations, units bought and made ready, a pause, an override and its
 * countdown), the served text must be the one a fresh rendering gives at the same
 * instant. The changes here come straight from the runtime, not through the API's
 * handlers, so nothing tells the cache about them. */
SW_TEST(status_cache_serves_what_a_fresh_rendering_gives)
{
    struct fx fx;
    fx_start(&fx, NULL, 0);
    start_and_wait_ready(&fx);
    struct sw_error err = {0};
    char *previous = NULL;
    int changes = 0;
    for (int step = 0; step < 120; step++) {
        if (step == 30)
            SW_ASSERT_EQ(sw_runtime_policy_set_paused(fx.rt, "pin", true), 0);
        if (step == 50)
            SW_ASSERT_EQ(sw_runtime_override_set(fx.rt, "web", "as-east", 2, 60000, &err), 0);
        if (step == 80)
            SW_ASSERT_EQ(sw_runtime_override_clear(fx.rt, "web"), 0);
        if (step == 90)
            SW_ASSERT_EQ(sw_runtime_policy_set_paused(fx.rt, "pin", false), 0);
        int64_t now = sw_clock_now(fx.clock);
        char *cached = sw_admin_api_status_json(fx.api, now);
        char *fresh = sw_admin_status_json(fx.rt, now);
        SW_ASSERT_STREQ(cached, fresh);
        /* Asked again with nothing changed: every cached section is reused. */
        uint64_t hits = 0, writes = 0, hits2 = 0, writes2 = 0;
        sw_admin_api_status_cache_stats(fx.api, &hits, &writes);
        char *again = sw_admin_api_status_json(fx.api, now);
        sw_admin_api_status_cache_stats(fx.api, &hits2, &writes2);
        SW_ASSERT_STREQ(again, fresh);
        SW_ASSERT_EQ(writes2, writes);
        SW_ASSERT_EQ(hits2, hits + 4);
        /* The document without its clock fields, to count real changes. */
        cJSON *doc = cJSON_Parse(fresh);
        cJSON_DeleteItemFromObject(doc, "now_ms");
        cJSON_DeleteItemFromObject(doc, "uptime_s");
        char *text = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
        if (previous != NULL && strcmp(previous, text) != 0)
            changes++;
        free(previous);
        previous = text;
        free(cached);
        free(fresh);
        free(again);
        run_for(&fx, 10);
    }
    free(previous);
    /* Evaluations, a unit bought and readied, the pause, the override and its countdown:
     * the test saw the state move, and the cache followed it. */
    SW_ASSERT(changes >= 20);
    uint64_t hits = 0, writes = 0;
    sw_admin_api_status_cache_stats(fx.api, &hits, &writes);
    SW_ASSERT(hits > writes);
    SW_ASSERT_EQ(fx_finish(&fx), 0);
}

SW_TEST(pause_stops_evaluations_resume_restarts)
{
    struct fx fx;
    fx_start(&fx, TOKEN, 0);
    start_and_wait_ready(&fx);
    run_for(&fx, 250);
    char *body = NULL;
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/policies/pin/pause", "Bearer " TOKEN, "{}", &body), 200);
    SW_ASSERT_CONTAINS(body, "\"paused\":true");
    free(body);
    double paused_at = policy_field(&fx, "pin", "evaluations");
    double other_at = policy_field(&fx, "other", "evaluations");
    SW_ASSERT(paused_at >= 1);
    SW_ASSERT_EQ(policy_field(&fx, "pin", "paused"), 1);
    run_for(&fx, 400); /* 4 s of clock: 4 intervals */
    SW_ASSERT_EQ(policy_field(&fx, "pin", "evaluations"), paused_at);
    SW_ASSERT(policy_field(&fx, "other", "evaluations") >= other_at + 2);
    /* The pause is journaled, so it survives a restart. */
    char *paused_meta = NULL;
    SW_ASSERT_EQ(sw_journal_meta_get(sw_runtime_journal(fx.rt), "paused/pin", &paused_meta), 0);
    SW_ASSERT_STREQ(paused_meta, "1");
    free(paused_meta);

    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/policies/pin/resume", "Bearer " TOKEN, "{}", NULL), 200);
    run_for(&fx, 50); /* resume evaluates on the next turn, not after an interval */
    SW_ASSERT(policy_field(&fx, "pin", "evaluations") >= paused_at + 1);
    run_for(&fx, 300);
    SW_ASSERT(policy_field(&fx, "pin", "evaluations") >= paused_at + 3);
    SW_ASSERT_EQ(policy_field(&fx, "pin", "paused"), 0);

    cJSON *ev = fetch_json(&fx, "/v1/events?limit=1000");
    int paused_events = 0, resumed_events = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(ev, "events"))
    {
        const char *type = cJSON_GetObjectItemCaseSensitive(e, "type")->valuestring;
        paused_events += strcmp(type, "policy_paused") == 0;
        resumed_events += strcmp(type, "policy_resumed") == 0;
    }
    cJSON_Delete(ev);
    SW_ASSERT_EQ(paused_events, 1);
    SW_ASSERT_EQ(resumed_events, 1);
    SW_ASSERT_EQ(fx_finish(&fx), 0);
}

SW_TEST(override_pins_a_count_then_expires)
{
    struct fx fx;
    fx_start(&fx, TOKEN, 0);
    start_and_wait_ready(&fx);
    const char *auth = "Bearer " TOKEN;
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/groups/web/override", auth, "{\"count\": 1}", NULL),
                 400);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/groups/web/override", auth,
                       "{\"count\": -1, \"for\": \"1m\"}", NULL),
                 400);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/groups/web/override", auth,
                       "{\"count\": 7, \"for\": \"1m\"}", NULL),
                 400); /* above max */
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/groups/web/override", auth,
                       "{\"count\": 1, \"region\": \"mars\", \"for\": \"1m\"}", NULL),
                 400);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/groups/nosuch/override", auth,
                       "{\"count\": 1, \"for\": \"1m\"}", NULL),
                 404);
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/groups/web/override", auth, "not json", NULL), 400);

    /* Pin eu-west to 3 for 6 s of clock (0.6 s wall): the policy still says 1. */
    char *body = NULL;
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/groups/web/override", auth,
                       "{\"count\": 3, \"region\": \"eu-west\", \"for\": \"6s\"}", &body),
                 200);
    SW_ASSERT_CONTAINS(body, "\"count\":3");
    free(body);
    double desired = 0, ready = 0;
    eu_west(&fx, &desired, &ready);
    SW_ASSERT_EQ(desired, 3); /* at once, without waiting for a policy tick */
    for (int i = 0; i < 40 && ready < 3; i++) {
        run_for(&fx, 20);
        eu_west(&fx, &desired, &ready);
    }
    SW_ASSERT_EQ(desired, 3);
    SW_ASSERT_EQ(ready, 3);
    cJSON *st = fetch_json(&fx, "/v1/status");
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "groups"), 0);
    const cJSON *ov = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(g, "overrides"), 0);
    SW_ASSERT_STREQ(cJSON_GetObjectItemCaseSensitive(ov, "region")->valuestring, "eu-west");
    SW_ASSERT(jnum(ov, "remaining_s") > 0 && jnum(ov, "remaining_s") <= 6);
    cJSON_Delete(st);

    /* After expiry the policy's 1 is back, and the extra units are released. */
    run_for(&fx, 700);
    eu_west(&fx, &desired, &ready);
    SW_ASSERT_EQ(desired, 1);
    SW_ASSERT_EQ(sw_runtime_override_count(fx.rt), 0);
    for (int i = 0; i < 50 && ready > 1; i++) {
        run_for(&fx, 20);
        eu_west(&fx, &desired, &ready);
    }
    SW_ASSERT_EQ(ready, 1);

    /* A group-wide total spreads over the regions; DELETE ends it early. */
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/groups/web/override", auth,
                       "{\"count\": 4, \"for\": 3600}", NULL),
                 200);
    const struct sw_desired *d = sw_runtime_desired(fx.rt);
    SW_ASSERT_EQ(sw_desired_group_total(d, "web"), 4);
    SW_ASSERT_EQ(sw_desired_get(d, "web", "eu-west"), 4); /* all the wanted units were there */
    SW_ASSERT_EQ(fetch(&fx, "DELETE", "/v1/groups/web/override", auth, NULL, NULL), 200);
    SW_ASSERT_EQ(sw_desired_get(sw_runtime_desired(fx.rt), "web", "eu-west"), 1);
    SW_ASSERT_EQ(fetch(&fx, "DELETE", "/v1/groups/web/override", auth, NULL, NULL), 404);

    /* The override passes are journaled as decisions of "admin". */
    cJSON *dec = fetch_json(&fx, "/v1/decisions?policy=admin&since=0");
    SW_ASSERT(jnum(dec, "count") >= 3);
    cJSON_Delete(dec);
    SW_ASSERT_EQ(fx_finish(&fx), 0);
}

/* ---- metrics ------------------------------------------------------------------------------ */

/* A strict line check of the text exposition format: comments are HELP/TYPE, samples are
 * name{label="value",...} number; every sample's family has a TYPE; histograms are
 * cumulative and end with +Inf == _count. Returns an error message or NULL. */
static const char *check_exposition(const char *text, int *samples_out)
{
    static char msg[256];
    regex_t sample_re, type_re;
    regcomp(&sample_re,
            "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""
            "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\")*)\\})? "
            "(-?[0-9.eE+-]+|\\+Inf|-Inf|NaN)$",
            REG_EXTENDED);
    regcomp(&type_re,
            "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$",
            REG_EXTENDED);
    char *copy = sw_xstrdup(text);
    char types[64][80];
    int type_count = 0, samples = 0;
    const char *error = NULL;
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line && !error;
         line = strtok_r(NULL, "\n", &save)) {
        regmatch_t m[3];
        if (strncmp(line, "# HELP ", 7) == 0)
            continue;
        if (strncmp(line, "# TYPE ", 7) == 0) {
            if (regexec(&type_re, line, 3, m, 0) != 0 || type_count == 64) {
                snprintf(msg, sizeof(msg), "bad TYPE line: %s", line);
                error = msg;
            } else {
                snprintf(types[type_count++], 80, "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
                         line + m[1].rm_so);
            }
            continue;
        }
        if (regexec(&sample_re, line, 2, m, 0) != 0) {
            snprintf(msg, sizeof(msg), "bad sample line: %s", line);
            error = msg;
            continue;
        }
        char name[80];
        snprintf(name, sizeof(name), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
        bool typed = false;
        for (int i = 0; i < type_count && !typed; i++) {
            size_t len = strlen(types[i]);
            typed = strcmp(name, types[i]) == 0 ||
                    (strncmp(name, types[i], len) == 0 &&
                     (strcmp(name + len, "_bucket") == 0 || strcmp(name + len, "_sum") == 0 ||
                      strcmp(name + len, "_count") == 0));
        }
        if (!typed) {
            snprintf(msg, sizeof(msg), "sample without a TYPE: %s", line);
            error = msg;
        }
        samples++;
    }
    free(copy);
    regfree(&sample_re);
    regfree(&type_re);
    *samples_out = samples;
    return error;
}

static double metric_value(const char *text, const char *series)
{
    const char *p = strstr(text, series);
    while (p != NULL && p != text && p[-1] != '\n')
        p = strstr(p + 1, series);
    if (p == NULL || p[strlen(series)] != ' ')
        return -1;
    return strtod(p + strlen(series) + 1, NULL);
}

SW_TEST(metrics_exposition)
{
    struct fx fx;
    fx_start(&fx, TOKEN, 0);
    start_and_wait_ready(&fx);
    run_for(&fx, 300);
    char *text = NULL;
    SW_ASSERT_EQ(fetch(&fx, "GET", "/metrics", NULL, NULL, &text), 200);
    int samples = 0;
    const char *problem = check_exposition(text, &samples);
    if (problem != NULL)
        fprintf(stderr, "    %s\n", problem);
    SW_ASSERT(problem == NULL);
    SW_ASSERT(samples > 20);
    SW_ASSERT(metric_value(text, "steward_evaluations_total{policy=\"pin\"}") >= 2);
    SW_ASSERT_EQ(metric_value(text, "steward_policy_errors_total{policy=\"pin\"}"), 0);
    double count = metric_value(text, "steward_evaluation_duration_seconds_count{policy=\"pin\"}");
    SW_ASSERT(count >= 2);
    SW_ASSERT_EQ(metric_value(text, "steward_evaluation_duration_seconds_bucket{policy=\"pin\","
                                    "le=\"+Inf\"}"),
                 count);
    SW_ASSERT(metric_value(text, "steward_actions_total{kind=\"acquire\",outcome=\"started\"}") >=
              1);
    SW_ASSERT_EQ(metric_value(text, "steward_budget_usd_per_hour"), 5);
    SW_ASSERT(metric_value(text, "steward_spend_usd_per_hour") > 0);
    SW_ASSERT_EQ(metric_value(text, "steward_ready"), 1);
    SW_ASSERT_CONTAINS(text, "steward_leases{group=\"web\",region=\"eu-west\",state=");
    /* No source yet: absent rather than a made-up zero. */
    SW_ASSERT(strstr(text, "steward_escrow_runway_hours") == NULL);
    SW_ASSERT(strstr(text, "steward_dns_sync_errors_total") == NULL);
    free(text);
    SW_ASSERT_EQ(fx_finish(&fx), 0);
}

SW_TEST(metrics_label_escaping)
{
    /* The exposition checker itself must reject what it should. */
    int n = 0;
    SW_ASSERT(check_exposition("# TYPE a counter\na{x=\"1\"} 2\n", &n) == NULL);
    SW_ASSERT(check_exposition("# TYPE a counter\na{x=\"q\\\"uote\\\\\"} 2\n", &n) == NULL);
    SW_ASSERT(check_exposition("# TYPE a counter\na{x=\"q\"uote\"} 2\n", &n) != NULL);
    SW_ASSERT(check_exposition("a 1\n", &n) != NULL);
    SW_ASSERT(check_exposition("# TYPE a gauge\na one\n", &n) != NULL);
}

/* ---- slow and malformed clients --------------------------------------------------------- */

struct slow_client {
    int port;
    int mode; /* 0: trickle a request one byte per 100 ms; 1: garbage; 2: connect, say nothing */
    pthread_t thread;
    atomic_int done;
    double closed_after_ms; /* when the server closed on us; -1 if it never did */
    char reply[256];
};

static double now_ms_wall(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec * 1000.0 + (double)tv.tv_usec / 1000.0;
}

static void *slow_main(void *arg)
{
    struct slow_client *sc = arg;
    sc->closed_after_ms = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sc->port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    double start = now_ms_wall();
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        atomic_store(&sc->done, 1);
        return NULL;
    }
    const char *request = sc->mode == 1 ? "\x01\x02 NOT HTTP AT ALL\r\n\r\n"
                                        : "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Pad: "
                                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    size_t sent = 0, len = strlen(request), got = 0;
    while (now_ms_wall() - start < 3000) {
        if (sc->mode == 0 && sent < len) {
            if (send(fd, request + sent, 1, MSG_NOSIGNAL) != 1)
                break;
            sent++;
        } else if (sc->mode == 1 && sent == 0) {
            send(fd, request, len, MSG_NOSIGNAL);
            sent = len;
        }
        char buf[256];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            sc->closed_after_ms = now_ms_wall() - start;
            break;
        }
        if (n > 0 && got + (size_t)n < sizeof(sc->reply)) {
            memcpy(sc->reply + got, buf, (size_t)n);
            got += (size_t)n;
        }
    }
    close(fd);
    atomic_store(&sc->done, 1);
    return NULL;
}

SW_TEST(slow_and_malformed_clients_do_not_stall_the_loop)
{
    struct fx fx;
    fx_start(&fx, TOKEN, 500); /* a whole request must arrive within 500 ms */
    start_and_wait_ready(&fx);
    double before = policy_field(&fx, "pin", "evaluations");
    enum { CLIENTS = 12 };
    struct slow_client clients[CLIENTS];
    memset(clients, 0, sizeof(clients));
    for (int i = 0; i < CLIENTS; i++) {
        clients[i].port = fx.port;
        clients[i].mode = i % 3;
        pthread_create(&clients[i].thread, NULL, slow_main, &clients[i]);
    }
    /* While they trickle, normal requests are answered at once and policies keep ticking. */
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        run_for(&fx, 40);
        double t0 = now_ms_wall();
        SW_ASSERT_EQ(fetch(&fx, "GET", "/healthz", NULL, NULL, NULL), 200);
        double took = now_ms_wall() - t0;
        if (took > worst)
            worst = took;
    }
    bool all_done = false;
    for (int i = 0; i < 200 && !all_done; i++) {
        run_for(&fx, 20);
        all_done = true;
        for (int c = 0; c < CLIENTS; c++)
            all_done &= atomic_load(&clients[c].done) != 0;
    }
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(clients[i].thread, NULL);
    double after = policy_field(&fx, "pin", "evaluations");
    /* ~1.2 s of wall time at 10x with a 1 s interval: about 12 evaluations. */
    SW_ASSERT(after - before >= 8);
    SW_ASSERT(worst < 200);
    for (int i = 0; i < CLIENTS; i++) {
        /* The server cut every slow or silent client near the 500 ms limit, and answered
         * garbage with 400. */
        if (clients[i].closed_after_ms < 0 || clients[i].closed_after_ms > 1500)
            fprintf(stderr, "    client %d (mode %d) closed after %.0f ms\n", i,
                    clients[i].mode, clients[i].closed_after_ms);
        SW_ASSERT(clients[i].closed_after_ms >= 0 && clients[i].closed_after_ms < 1500);
        if (clients[i].mode == 1)
            SW_ASSERT_CONTAINS(clients[i].reply, "400");
    }
    SW_ASSERT_EQ(fx_finish(&fx), 0);
}

SW_TEST(oversized_body_is_refused)
{
    struct fx fx;
    fx_start(&fx, TOKEN, 0);
    char *big = sw_xmalloc(70 * 1024 + 1);
    memset(big, 'x', 70 * 1024);
    big[70 * 1024] = '\0';
    SW_ASSERT_EQ(fetch(&fx, "POST", "/v1/groups/web/override", "Bearer " TOKEN, big, NULL), 413);
    free(big);
    SW_ASSERT_EQ(fx_finish(&fx), 0);
}

SW_TEST(start_from_config)
{
    struct fx fx;
    fx_start(&fx, NULL, 0);
    struct sw_error err = {0};
    /* No "admin" section: nothing started, no error. */
    SW_ASSERT(sw_admin_api_start_from_config(&fx.loop, fx.rt, fx.clock, fx.config, &err) == NULL);
    SW_ASSERT_EQ(err.code, 0);
    fx.config->admin.enabled = true;
    fx.config->admin.host = sw_xstrdup("127.0.0.1");
    fx.config->admin.port = 0;
    fx.config->admin.token_env = sw_xstrdup("SW_TEST_ADMIN_TOKEN_UNSET");
    unsetenv("SW_TEST_ADMIN_TOKEN_UNSET");
    SW_ASSERT(sw_admin_api_start_from_config(&fx.loop, fx.rt, fx.clock, fx.config, &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_ECONFIG);
    SW_ASSERT_CONTAINS(err.msg, "SW_TEST_ADMIN_TOKEN_UNSET is not set");
    setenv("SW_TEST_ADMIN_TOKEN_UNSET", "a-very-secret-value", 1);
    struct sw_admin_api *api =
        sw_admin_api_start_from_config(&fx.loop, fx.rt, fx.clock, fx.config, &err);
    SW_ASSERT(api != NULL);
    SW_ASSERT(sw_admin_api_port(api) > 0);
    /* The token is now a log secret. */
    char *redacted = sw_log_redact("header was a-very-secret-value");
    SW_ASSERT_STREQ(redacted, "header was [REDACTED]");
    free(redacted);
    sw_admin_api_close(api);
    sw_log_clear_secrets();
    unsetenv("SW_TEST_ADMIN_TOKEN_UNSET");
    SW_ASSERT_EQ(fx_finish(&fx), 0);
}

SW_TEST_MAIN()
