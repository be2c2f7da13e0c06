/* test_plugin_host.c — loading, refusals, config validation and the swp_host table, driven
 * through the fixture plugins in $SW_FIXTURE_DIR.
 *
 * The services are fakes kept in this file: a list-based virtual clock (clock_sim.c is
 * another module's), recorded HTTP requests the test completes by hand, an in-memory KV
 * and a list of emitted events.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "mem.h"
#include "plugin_host.h"
#include "sw_test.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define HOST_ABI STR(SWP_ABI_MAJOR) "." STR(SWP_ABI_MINOR)
#define START_MS 1700000000000LL

/* ---- fake services --------------------------------------------------------------------- */

struct fake_timer {
    uint64_t id;
    int64_t due;
    struct sw_plugin *plugin;
    swp_timer_cb cb;
    void *ud;
    struct fake_timer *next;
};

struct fake_request {
    uint64_t id;
    struct sw_plugin *plugin;
    char *method;
    char *url;
    char *body;
    char *headers; /* joined with '\n' */
    swp_http_cb cb;
    void *ud;
    struct fake_request *next;
};

struct fake_kv {
    char *ns;
    char *key;
    char *value;
    struct fake_kv *next;
};

struct fake_event {
    char *plugin;
    char *type;
    char *reason;
    char *data_json;
};

struct fake_env {
    int64_t now;
    uint64_t next_id;
    struct fake_timer *timers; /* in start order */
    struct fake_request *requests;
    struct fake_kv *kv;
    struct fake_event events[32];
    size_t event_count;
    size_t timer_stops;
    bool lazy_cancel; /* a broken service whose cancel does not fire the callback */
};

static struct fake_env env;

static int64_t fake_now(void *ud)
{
    return ((struct fake_env *)ud)->now;
}

static uint64_t fake_timer_start(void *ud, struct sw_plugin *plugin, uint64_t delay_ms,
                                 swp_timer_cb cb, void *cb_ud)
{
    struct fake_env *e = ud;
    struct fake_timer *t = sw_xcalloc(1, sizeof(*t));
    t->id = ++e->next_id;
    t->due = e->now + (int64_t)delay_ms;
    t->plugin = plugin;
    t->cb = cb;
    t->ud = cb_ud;
    struct fake_timer **tail = &e->timers;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = t;
    return t->id;
}

static void fake_timer_stop(void *ud, struct sw_plugin *plugin, uint64_t id)
{
    struct fake_env *e = ud;
    for (struct fake_timer **p = &e->timers; *p != NULL; p = &(*p)->next)
        if ((*p)->id == id) {
            struct fake_timer *t = *p;
            *p = t->next;
            free(t);
            e->timer_stops++;
            return;
        }
}

static size_t fake_timer_count(void)
{
    size_t n = 0;
    for (struct fake_timer *t = env.timers; t != NULL; t = t->next)
        n++;
    return n;
}

/* Fire due timers in (due, start order) until none is due by until_ms. */
static int fake_run(int64_t until_ms)
{
    int fired = 0;
    for (;;) {
        struct fake_timer **best = NULL;
        for (struct fake_timer **p = &env.timers; *p != NULL; p = &(*p)->next)
            if ((*p)->due <= until_ms && (best == NULL || (*p)->due < (*best)->due))
                best = p;
        if (best == NULL)
            break;
        struct fake_timer *t = *best;
        *best = t->next;
        env.now = t->due > env.now ? t->due : env.now;
        swp_timer_cb cb = t->cb;
        void *cb_ud = t->ud;
        free(t);
        cb(cb_ud);
        fired++;
    }
    if (until_ms > env.now)
        env.now = until_ms;
    return fired;
}

static uint64_t fake_http_request(void *ud, struct sw_plugin *plugin,
                                  const struct swp_http_req *req, swp_http_cb cb, void *cb_ud)
{
    struct fake_env *e = ud;
    struct fake_request *r = sw_xcalloc(1, sizeof(*r));
    r->id = ++e->next_id;
    r->plugin = plugin;
    r->method = sw_xstrdup(req->method);
    r->url = sw_xstrdup(req->url);
    r->body = req->body != NULL ? sw_xstrndup(req->body, req->body_len) : NULL;
    r->headers = sw_xstrdup("");
    for (size_t i = 0; i < req->header_count; i++) {
        char *joined = sw_xasprintf("%s%s\n", r->headers, req->headers[i]);
        free(r->headers);
        r->headers = joined;
    }
    r->cb = cb;
    r->ud = cb_ud;
    r->next = e->requests;
    e->requests = r;
    return r->id;
}

static void request_free(struct fake_request *r)
{
    free(r->method);
    free(r->url);
    free(r->body);
    free(r->headers);
    free(r);
}

static struct fake_request *take_request(uint64_t id)
{
    for (struct fake_request **p = &env.requests; *p != NULL; p = &(*p)->next)
        if (id == 0 || (*p)->id == id) {
            struct fake_request *r = *p;
            *p = r->next;
            return r;
        }
    return NULL;
}

static size_t fake_request_count(void)
{
    size_t n = 0;
    for (struct fake_request *r = env.requests; r != NULL; r = r->next)
        n++;
    return n;
}

static void fake_http_cancel(void *ud, struct sw_plugin *plugin, uint64_t id)
{
    struct fake_env *e = ud;
    if (e->lazy_cancel)
        return;
    struct fake_request *r = take_request(id);
    if (r == NULL)
        return;
    struct swp_http_resp resp = {0};
    resp.body = "";
    r->cb(r->ud, SWP_ECANCELED, &resp);
    request_free(r);
}

/* Complete a recorded request (0: the most recent) with an HTTP status and body. */
static void fake_http_complete(uint64_t id, long status, const char *body)
{
    struct fake_request *r = take_request(id);
    SW_ASSERT(r != NULL);
    struct swp_http_resp resp = {0};
    resp.status = status;
    resp.body = body;
    resp.body_len = strlen(body);
    r->cb(r->ud, 0, &resp);
    request_free(r);
}

static struct fake_kv *kv_find(struct sw_plugin *plugin, const char *key)
{
    for (struct fake_kv *kv = env.kv; kv != NULL; kv = kv->next)
        if (strcmp(kv->ns, sw_plugin_name(plugin)) == 0 && strcmp(kv->key, key) == 0)
            return kv;
    return NULL;
}

static int fake_kv_get(void *ud, struct sw_plugin *plugin, const char *key, char **value_out)
{
    struct fake_kv *kv = kv_find(plugin, key);
    if (kv == NULL)
        return SW_ENOENT;
    *value_out = sw_xstrdup(kv->value);
    return 0;
}

static int fake_kv_set(void *ud, struct sw_plugin *plugin, const char *key, const char *value)
{
    struct fake_kv *kv = kv_find(plugin, key);
    if (kv == NULL) {
        kv = sw_xcalloc(1, sizeof(*kv));
        kv->ns = sw_xstrdup(sw_plugin_name(plugin));
        kv->key = sw_xstrdup(key);
        kv->next = env.kv;
        env.kv = kv;
    }
    free(kv->value);
    kv->value = sw_xstrdup(value);
    return 0;
}

static int fake_kv_del(void *ud, struct sw_plugin *plugin, const char *key)
{
    for (struct fake_kv **p = &env.kv; *p != NULL; p = &(*p)->next)
        if (strcmp((*p)->ns, sw_plugin_name(plugin)) == 0 && strcmp((*p)->key, key) == 0) {
            struct fake_kv *kv = *p;
            *p = kv->next;
            free(kv->ns);
            free(kv->key);
            free(kv->value);
            free(kv);
            return 0;
        }
    return SW_ENOENT;
}

/* The value stored under ns/key, or NULL (borrowed). */
static const char *kv_value(const char *ns, const char *key)
{
    for (struct fake_kv *kv = env.kv; kv != NULL; kv = kv->next)
        if (strcmp(kv->ns, ns) == 0 && strcmp(kv->key, key) == 0)
            return kv->value;
    return NULL;
}

static void fake_emit(void *ud, struct sw_plugin *plugin, const struct swp_event *ev)
{
    struct fake_env *e = ud;
    if (ev->size != sizeof(struct swp_event) || e->event_count == SW_ARRAY_LEN(e->events))
        return;
    struct fake_event *rec = &e->events[e->event_count++];
    rec->plugin = sw_xstrdup(sw_plugin_name(plugin));
    rec->type = sw_xstrdup(ev->type);
    rec->reason = sw_xstrdup(ev->reason);
    rec->data_json = sw_xstrdup(ev->data_json);
}

static const struct fake_event *find_event(const char *type)
{
    for (size_t i = 0; i < env.event_count; i++)
        if (strcmp(env.events[i].type, type) == 0)
            return &env.events[i];
    return NULL;
}

static void env_reset(void)
{
    while (env.timers != NULL) {
        struct fake_timer *t = env.timers;
        env.timers = t->next;
        free(t);
    }
    while (env.requests != NULL)
        request_free(take_request(0));
    while (env.kv != NULL) {
        struct fake_kv *kv = env.kv;
        env.kv = kv->next;
        free(kv->ns);
        free(kv->key);
        free(kv->value);
        free(kv);
    }
    for (size_t i = 0; i < env.event_count; i++) {
        free(env.events[i].plugin);
        free(env.events[i].type);
        free(env.events[i].reason);
        free(env.events[i].data_json);
    }
    memset(&env, 0, sizeof(env));
    env.now = START_MS;
}

static const struct sw_plugin_services services = {
    .ud = &env,
    .now_ms = fake_now,
    .timer_start = fake_timer_start,
    .timer_stop = fake_timer_stop,
    .http_request = fake_http_request,
    .http_cancel = fake_http_cancel,
    .kv_get = fake_kv_get,
    .kv_set = fake_kv_set,
    .kv_del = fake_kv_del,
    .emit_event = fake_emit,
};

static struct sw_plugin_host *new_host(uint64_t seed)
{
    env_reset();
    return sw_plugin_host_new(&services, "steward-test", seed);
}

/* ---- helpers ----------------------------------------------------------------------------- */

static char path_buf[8][512];
static int path_next;

/* $SW_FIXTURE_DIR/<name>.so in a rotating static buffer. */
static const char *fixture(const char *name)
{
    const char *dir = getenv("SW_FIXTURE_DIR");
    if (dir == NULL) {
        fprintf(stderr, "SW_FIXTURE_DIR is not set (run through ctest)\n");
        exit(1);
    }
    char *buf = path_buf[path_next++ % 8];
    snprintf(buf, sizeof(path_buf[0]), "%s/%s.so", dir, name);
    return buf;
}

/* Log capture: lines go to a memory stream until log_end, which returns them (owned). */
static FILE *log_stream;
static char *log_data;
static size_t log_size;

static void log_begin(void)
{
    log_stream = open_memstream(&log_data, &log_size);
    sw_log_configure(log_stream, SW_LOG_FORMAT_TEXT, SW_LOG_DEBUG);
}

static char *log_end(void)
{
    sw_log_configure(NULL, SW_LOG_FORMAT_TEXT, SW_LOG_WARN);
    fclose(log_stream);
    log_stream = NULL;
    char *out = log_data;
    log_data = NULL;
    return out;
}

/* Load fixture name and expect a refusal; returns err.msg in a static buffer. */
static struct sw_error refusal;

static int expect_refusal(struct sw_plugin_host *host, const char *path, const char *config)
{
    sw_error_clear(&refusal);
    struct sw_plugin *p = sw_plugin_host_load(host, path, config, "test.json:plugins.fx", &refusal);
    if (p != NULL)
        return 0;
    return refusal.code;
}

static const char *ok_config = "{\"endpoint\":\"http://127.0.0.1:1\"}";

static struct sw_plugin *load_ok(struct sw_plugin_host *host, const char *config)
{
    struct sw_error err = {0};
    struct sw_plugin *p =
        sw_plugin_host_load(host, fixture("ok"), config, "test.json:plugins.fx", &err);
    if (p == NULL)
        fprintf(stderr, "    load failed: %s\n", err.msg);
    return p;
}

/* ---- refusals ------------------------------------------------------------------------------ */

SW_TEST(refuses_missing_file)
{
    struct sw_plugin_host *host = new_host(1);
    const char *path = "/nonexistent/swp_ghost.so";
    SW_ASSERT_EQ(expect_refusal(host, path, NULL), SW_EIO);
    SW_ASSERT_STREQ(refusal.msg,
                    "/nonexistent/swp_ghost.so: cannot load plugin: cannot open shared object "
                    "file: No such file or directory (host ABI " HOST_ABI "); check the file "
                    "exists and is a plugin built for this platform");
    SW_ASSERT_EQ(sw_plugin_host_count(host), 0);
    sw_plugin_host_free(host);
}

SW_TEST(refuses_missing_entry_symbol)
{
    struct sw_plugin_host *host = new_host(1);
    const char *path = fixture("no_entry_symbol");
    char want[512];
    snprintf(want, sizeof(want),
             "%s: not a steward plugin: no swp_plugin_entry symbol (host ABI " HOST_ABI
             "); export it with SWP_PLUGIN_EXPORT, see docs/plugins.md",
             path);
    SW_ASSERT_EQ(expect_refusal(host, path, NULL), SW_EABI);
    SW_ASSERT_STREQ(refusal.msg, want);
    SW_ASSERT_EQ(sw_plugin_host_count(host), 0);
    sw_plugin_host_free(host);
}

SW_TEST(refuses_null_entry)
{
    struct sw_plugin_host *host = new_host(1);
    const char *path = fixture("null_entry");
    char want[512];
    snprintf(want, sizeof(want),
             "%s: swp_plugin_entry returned NULL, plugin ABI unknown (host ABI " HOST_ABI
             "); return a pointer to a static struct swp_plugin, see docs/plugins.md",
             path);
    SW_ASSERT_EQ(expect_refusal(host, path, NULL), SW_EABI);
    SW_ASSERT_STREQ(refusal.msg, want);
    sw_plugin_host_free(host);
}

SW_TEST(refuses_abi_major_mismatch)
{
    struct sw_plugin_host *host = new_host(1);
    const char *path = fixture("abi_major_mismatch");
    char want[512];
    snprintf(want, sizeof(want),
             "%s: plugin 'fixture_major' was built for ABI 2.0, host speaks ABI " HOST_ABI
             ": rebuild the plugin against this steward's core/include/steward headers",
             path);
    SW_ASSERT_EQ(expect_refusal(host, path, NULL), SW_EABI);
    SW_ASSERT_STREQ(refusal.msg, want);
    SW_ASSERT(sw_plugin_host_get(host, "fixture_major") == NULL);
    sw_plugin_host_free(host);
}

SW_TEST(refuses_abi_minor_newer)
{
    struct sw_plugin_host *host = new_host(1);
    const char *path = fixture("abi_minor_newer");
    char want[512];
    snprintf(want, sizeof(want),
             "%s: plugin 'fixture_minor' was built for ABI %d.%d, newer than host ABI " HOST_ABI
             ": upgrade steward or rebuild the plugin against ABI " HOST_ABI,
             path, SWP_ABI_MAJOR, SWP_ABI_MINOR + 1);
    SW_ASSERT_EQ(expect_refusal(host, path, NULL), SW_EABI);
    SW_ASSERT_STREQ(refusal.msg, want);
    sw_plugin_host_free(host);
}

SW_TEST(refuses_descriptor_too_small)
{
    struct sw_plugin_host *host = new_host(1);
    const char *path = fixture("too_small");
    char want[512];
    snprintf(want, sizeof(want),
             "%s: plugin 'fixture_small' (ABI " HOST_ABI ") has a %zu-byte descriptor, smaller "
             "than the %zu bytes of ABI 1.0 (host ABI " HOST_ABI "): set .size = "
             "sizeof(struct swp_plugin) and rebuild",
             path, offsetof(struct swp_plugin, market), (size_t)SWP_PLUGIN_SIZE_V1_0);
    SW_ASSERT_EQ(expect_refusal(host, path, NULL), SW_EABI);
    SW_ASSERT_STREQ(refusal.msg, want);
    sw_plugin_host_free(host);
}

SW_TEST(refuses_duplicate_name)
{
    struct sw_plugin_host *host = new_host(1);
    struct sw_plugin *ok = load_ok(host, ok_config);
    SW_ASSERT(ok != NULL);
    const char *dup = fixture("ok_dup");
    char want[512];
    snprintf(want, sizeof(want),
             "%s: a plugin named 'fixture_ok' is already loaded from %s (ABI " HOST_ABI
             ", host ABI " HOST_ABI "); remove one of them from the plugin directories",
             dup, fixture("ok"));
    SW_ASSERT_EQ(expect_refusal(host, dup, NULL), SW_EEXIST);
    SW_ASSERT_STREQ(refusal.msg, want);
    /* The same file twice is refused the same way, and the first stays intact. */
    SW_ASSERT_EQ(expect_refusal(host, fixture("ok"), ok_config), SW_EEXIST);
    SW_ASSERT_EQ(sw_plugin_host_count(host), 1);
    SW_ASSERT(sw_plugin_host_get(host, "fixture_ok") == ok);
    SW_ASSERT_STREQ(sw_plugin_path(ok), fixture("ok"));
    sw_plugin_host_free(host);
}

SW_TEST(refuses_failed_init_and_undoes_its_timers_and_requests)
{
    struct sw_plugin_host *host = new_host(1);
    const char *path = fixture("init_fails");
    char want[512];
    snprintf(want, sizeof(want),
             "%s: plugin 'fixture_init_fails' failed to initialise: database unreachable", path);
    log_begin();
    int rc = expect_refusal(host, path, NULL);
    char *log = log_end();
    SW_ASSERT_EQ(rc, SW_EINVAL);
    SW_ASSERT_STREQ(refusal.msg, want);
    /* The request it left in flight was cancelled while the plugin was still loaded. */
    SW_ASSERT_CONTAINS(log, "[fixture_init_fails] probe request finished with status -125");
    SW_ASSERT_EQ(fake_timer_count(), 0);
    SW_ASSERT_EQ(fake_request_count(), 0);
    SW_ASSERT_EQ(env.timer_stops, 1);
    SW_ASSERT_EQ(sw_plugin_host_count(host), 0);
    free(log);
    sw_plugin_host_free(host);
}

/* ---- op callbacks ---- */

struct op_record {
    int progress_calls;
    int progress_state;
    char market_id[32];
    int done_calls;
    int done_status;
    int done_state;
    char uri[64];
    double price;
    size_t count;
    char first[64];
};

static void on_progress(void *ud, int status, const struct swp_unit *unit,
                        const struct swp_error *err)
{
    struct op_record *r = ud;
    r->progress_calls++;
    r->progress_state = unit->state;
    snprintf(r->market_id, sizeof(r->market_id), "%s", unit->market_id);
}

static void on_unit_done(void *ud, int status, const struct swp_unit *unit,
                         const struct swp_error *err)
{
    struct op_record *r = ud;
    r->done_calls++;
    r->done_status = status;
    if (unit != NULL) {
        r->done_state = unit->state;
        r->price = unit->price_usd_hour;
        if (unit->uri_count > 0)
            snprintf(r->uri, sizeof(r->uri), "%s", unit->uris[0]);
    }
}

static void on_done(void *ud, int status, const struct swp_error *err)
{
    struct op_record *r = ud;
    r->done_calls++;
    r->done_status = status;
}

static void on_units(void *ud, int status, const struct swp_unit *units, size_t count,
                     const struct swp_error *err)
{
    struct op_record *r = ud;
    r->done_calls++;
    r->count = count;
    if (count > 0)
        snprintf(r->first, sizeof(r->first), "%s", units[0].market_id);
}

static void on_offers(void *ud, int status, const struct swp_offer *offers, size_t count,
                      const struct swp_error *err)
{
    struct op_record *r = ud;
    r->done_calls++;
    r->count = count;
    if (count > 0) {
        snprintf(r->first, sizeof(r->first), "%s@%s", offers[0].provider, offers[0].region);
        r->price = offers[0].price_usd_hour;
    }
}

static struct swp_acquire_req acquire_req(const char *key)
{
    struct swp_acquire_req req = {0};
    req.size = sizeof(req);
    req.key = key;
    req.group = "web";
    req.region = "eu-west";
    return req;
}

/* ---- configuration --------------------------------------------------------------------- */

SW_TEST(config_defaults_are_applied)
{
    struct sw_plugin_host *host = new_host(1);
    struct sw_plugin *p = load_ok(host, ok_config);
    SW_ASSERT(p != NULL);
    const struct swp_host *h = sw_plugin_host_table(p);
    SW_ASSERT_STREQ(h->cfg_str(h, "endpoint"), "http://127.0.0.1:1");
    SW_ASSERT_STREQ(h->cfg_str(h, "region"), "eu-west");
    SW_ASSERT_EQ(h->cfg_int(h, "max_units"), 4);
    SW_ASSERT_NEAR(h->cfg_double(h, "price_usd_hour"), 0.5, 1e-12);
    SW_ASSERT(!h->cfg_bool(h, "audited_only"));
    SW_ASSERT_STREQ(h->cfg_json(h, "labels"), "{}");
    SW_ASSERT_STREQ(h->cfg_json(h, "regions"), "[\"eu-west\",\"us-east\"]");
    SW_ASSERT_EQ(h->cfg_int(h, "provision_delay"), 2000);
    /* Absent without default, and undeclared keys, read as nothing. */
    SW_ASSERT(h->cfg_str(h, "token_env") == NULL);
    SW_ASSERT(h->cfg_json(h, "token_env") == NULL);
    SW_ASSERT(h->cfg_str(h, "nope") == NULL);
    SW_ASSERT_EQ(h->cfg_int(h, "nope"), 0);
    sw_plugin_host_free(host);
}

SW_TEST(config_accepts_every_type)
{
    struct sw_plugin_host *host = new_host(1);
    struct sw_plugin *p =
        load_ok(host, "{\"endpoint\":\"http://e\",\"region\":\"us-west\","
                      "\"max_units\":-7,\"price_usd_hour\":2,\"audited_only\":true,"
                      "\"labels\":{\"team\":\"ml\"},\"regions\":[1,2],"
                      "\"provision_delay\":\"250ms\"}");
    SW_ASSERT(p != NULL);
    const struct swp_host *h = sw_plugin_host_table(p);
    SW_ASSERT_STREQ(h->cfg_str(h, "region"), "us-west");
    SW_ASSERT_EQ(h->cfg_int(h, "max_units"), -7);
    SW_ASSERT_STREQ(h->cfg_json(h, "max_units"), "-7");
    SW_ASSERT_NEAR(h->cfg_double(h, "price_usd_hour"), 2.0, 1e-12);
    SW_ASSERT(h->cfg_bool(h, "audited_only"));
    SW_ASSERT_STREQ(h->cfg_json(h, "labels"), "{\"team\":\"ml\"}");
    SW_ASSERT_STREQ(h->cfg_json(h, "regions"), "[1,2]");
    SW_ASSERT_EQ(h->cfg_int(h, "provision_delay"), 250);
    SW_ASSERT_STREQ(h->cfg_json(h, "provision_delay"), "\"250ms\"");
    sw_plugin_host_free(host);
}

SW_TEST(config_durations)
{
    static const struct {
        const char *json;
        int64_t ms;
    } cases[] = {
        {"\"250ms\"", 250},   {"\"10s\"", 10000}, {"\"5m\"", 300000}, {"\"2h\"", 7200000},
        {"\"1d\"", 86400000}, {"3", 3000},        {"0.25", 250},      {"\"0s\"", 0},
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(cases); i++) {
        struct sw_plugin_host *host = new_host(1);
        char *config = sw_xasprintf("{\"endpoint\":\"x\",\"provision_delay\":%s}", cases[i].json);
        struct sw_plugin *p = load_ok(host, config);
        free(config);
        SW_ASSERT(p != NULL);
        const struct swp_host *h = sw_plugin_host_table(p);
        SW_ASSERT_EQ(h->cfg_int(h, "provision_delay"), cases[i].ms);
        sw_plugin_host_free(host);
    }
}

SW_TEST(config_rejects_wrong_types)
{
    static const struct {
        const char *json;
        const char *msg;
    } cases[] = {
        {"{\"endpoint\":5}", "test.json:plugins.fx.endpoint: expected string, got number 5"},
        {"{\"endpoint\":\"x\",\"max_units\":\"ten\"}",
         "test.json:plugins.fx.max_units: expected integer, got string \"ten\""},
        {"{\"endpoint\":\"x\",\"max_units\":1.5}",
         "test.json:plugins.fx.max_units: expected integer, got number 1.5"},
        {"{\"endpoint\":\"x\",\"price_usd_hour\":\"cheap\"}",
         "test.json:plugins.fx.price_usd_hour: expected number, got string \"cheap\""},
        {"{\"endpoint\":\"x\",\"audited_only\":1}",
         "test.json:plugins.fx.audited_only: expected boolean, got number 1"},
        {"{\"endpoint\":\"x\",\"labels\":[]}",
         "test.json:plugins.fx.labels: expected object, got array"},
        {"{\"endpoint\":\"x\",\"regions\":{}}",
         "test.json:plugins.fx.regions: expected array, got object"},
        {"{\"endpoint\":null}", "test.json:plugins.fx.endpoint: expected string, got null"},
        {"{\"endpoint\":\"x\",\"token_env\":true}",
         "test.json:plugins.fx.token_env: expected string naming an environment variable, got "
         "boolean true"},
        {"{\"endpoint\":\"x\",\"provision_delay\":\"soon\"}",
         "test.json:plugins.fx.provision_delay: expected a duration (\"250ms\", \"10s\", \"5m\", "
         "\"2h\", \"1d\") or a number of seconds >= 0, got string \"soon\""},
        {"{\"endpoint\":\"x\",\"provision_delay\":\"10x\"}",
         "test.json:plugins.fx.provision_delay: expected a duration (\"250ms\", \"10s\", \"5m\", "
         "\"2h\", \"1d\") or a number of seconds >= 0, got string \"10x\""},
        {"{\"endpoint\":\"x\",\"provision_delay\":-1}",
         "test.json:plugins.fx.provision_delay: expected a duration (\"250ms\", \"10s\", \"5m\", "
         "\"2h\", \"1d\") or a number of seconds >= 0, got number -1"},
        {"{\"endpoint\":\"x\",\"endpoint\":\"y\"}", "test.json:plugins.fx.endpoint: duplicate key"},
        {"[1]", "test.json:plugins.fx: expected object, got array"},
        {"{\"endpoint\":", "test.json:plugins.fx: expected a JSON object, got invalid JSON"},
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(cases); i++) {
        struct sw_plugin_host *host = new_host(1);
        SW_ASSERT_EQ(expect_refusal(host, fixture("ok"), cases[i].json), SW_ECONFIG);
        SW_ASSERT_STREQ(refusal.msg, cases[i].msg);
        /* init never ran: nothing was written, nothing emitted. */
        SW_ASSERT_EQ(env.event_count, 0);
        SW_ASSERT_EQ(sw_plugin_host_count(host), 0);
        sw_plugin_host_free(host);
    }
}

SW_TEST(config_rejects_unknown_key_listing_known_ones)
{
    struct sw_plugin_host *host = new_host(1);
    SW_ASSERT_EQ(expect_refusal(host, fixture("ok"), "{\"endpoint\":\"x\",\"regoin\":\"eu\"}"),
                 SW_ECONFIG);
    SW_ASSERT_STREQ(refusal.msg,
                    "test.json:plugins.fx.regoin: unknown key for plugin 'fixture_ok' (known: "
                    "endpoint, region, max_units, price_usd_hour, audited_only, labels, regions, "
                    "token_env, provision_delay)");
    sw_plugin_host_free(host);
}

SW_TEST(config_rejects_missing_required)
{
    struct sw_plugin_host *host = new_host(1);
    SW_ASSERT_EQ(expect_refusal(host, fixture("ok"), "{}"), SW_ECONFIG);
    SW_ASSERT_STREQ(refusal.msg, "test.json:plugins.fx.endpoint: required");
    /* NULL config means {} and a NULL origin falls back to plugins.<name>. */
    struct sw_error err = {0};
    SW_ASSERT(sw_plugin_host_load(host, fixture("ok"), NULL, NULL, &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_ECONFIG);
    SW_ASSERT_STREQ(err.msg, "plugins.fixture_ok.endpoint: required");
    sw_plugin_host_free(host);
}

SW_TEST(config_secret_env)
{
    const char *var = "SW_TEST_FIXTURE_TOKEN";
    const char *secret = "sk-live-0123456789abcdef";
    const char *config = "{\"endpoint\":\"x\",\"token_env\":\"SW_TEST_FIXTURE_TOKEN\"}";

    unsetenv(var);
    struct sw_plugin_host *host = new_host(1);
    SW_ASSERT_EQ(expect_refusal(host, fixture("ok"), config), SW_ECONFIG);
    SW_ASSERT_STREQ(refusal.msg,
                    "test.json:plugins.fx.token_env: environment variable SW_TEST_FIXTURE_TOKEN "
                    "is not set (it must hold the secret)");

    setenv(var, "", 1);
    SW_ASSERT_EQ(expect_refusal(host, fixture("ok"), config), SW_ECONFIG);
    SW_ASSERT_STREQ(refusal.msg,
                    "test.json:plugins.fx.token_env: environment variable SW_TEST_FIXTURE_TOKEN "
                    "is empty (it must hold the secret)");

    /* A value that is not a variable name may be the secret pasted in: never echo it. */
    SW_ASSERT_EQ(expect_refusal(host, fixture("ok"),
                                "{\"endpoint\":\"x\",\"token_env\":\"sk-live-0123456789abcdef\"}"),
                 SW_ECONFIG);
    SW_ASSERT_STREQ(refusal.msg, "test.json:plugins.fx.token_env: expected the name of an "
                                 "environment variable ([A-Za-z_][A-Za-z0-9_]*), not the secret "
                                 "itself");

    setenv(var, secret, 1);
    log_begin();
    struct sw_plugin *p = load_ok(host, config);
    const struct swp_host *h = p != NULL ? sw_plugin_host_table(p) : NULL;
    if (h != NULL)
        h->log(h, SWP_LOG_WARN, "direct line with %s inside", secret);
    char *log = log_end();
    SW_ASSERT(p != NULL);
    SW_ASSERT_STREQ(h->cfg_str(h, "token_env"), secret);
    SW_ASSERT_STREQ(h->cfg_json(h, "token_env"), "\"SW_TEST_FIXTURE_TOKEN\"");
    SW_ASSERT_CONTAINS(log, "[fixture_ok] authenticating with token [REDACTED]");
    SW_ASSERT_CONTAINS(log, "WARN  [fixture_ok] direct line with [REDACTED] inside");
    SW_ASSERT(strstr(log, secret) == NULL);
    free(log);

    /* The plugin puts the token on its requests: the service sees the real value. */
    const struct swp_notify_ops *notify = sw_plugin_notify(p);
    SW_ASSERT(notify != NULL && notify->notify != NULL);
    struct op_record rec = {0};
    SW_ASSERT_EQ(notify->notify(sw_plugin_state(p), "{}", on_done, &rec), 0);
    SW_ASSERT(env.requests != NULL);
    SW_ASSERT_STREQ(env.requests->headers, "Content-Type: application/json\n"
                                           "Authorization: Bearer sk-live-0123456789abcdef\n");
    sw_plugin_host_free(host);
    SW_ASSERT_EQ(rec.done_status, SWP_ECANCELED);
    unsetenv(var);
    sw_log_clear_secrets();
}

/* ---- the host table ---------------------------------------------------------------------- */

static uint64_t expected_first_random(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
        h ^= *c;
        h *= 0x100000001b3ull;
    }
    uint64_t state = seed ^ h;
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

SW_TEST(host_table_is_filled_and_forwards_to_services)
{
    struct sw_plugin_host *host = new_host(42);
    log_begin();
    struct sw_plugin *p = load_ok(host, ok_config);
    char *log = log_end();
    SW_ASSERT(p != NULL);
    const struct swp_host *h = sw_plugin_host_table(p);
    SW_ASSERT_EQ(h->abi_major, SWP_ABI_MAJOR);
    SW_ASSERT_EQ(h->abi_minor, SWP_ABI_MINOR);
    SW_ASSERT_EQ(h->size, sizeof(struct swp_host));
    SW_ASSERT(sw_plugin_from_host_table(h) == p);
    SW_ASSERT_STREQ(sw_plugin_name(p), "fixture_ok");
    SW_ASSERT_STREQ(sw_plugin_desc(p)->version, "1.2.3");
    SW_ASSERT(sw_plugin_state(p) != NULL);
    SW_ASSERT(sw_plugin_host_at(host, 0) == p);
    SW_ASSERT(sw_plugin_host_at(host, 1) == NULL);

    /* init logged with the plugin name as component, wrote KV and emitted an event. */
    SW_ASSERT_CONTAINS(log, "INFO  [fixture_ok] ready: endpoint=http://127.0.0.1:1 region=eu-west "
                            "max_units=4 provision_delay_ms=2000");
    free(log);
    SW_ASSERT_STREQ(kv_value("fixture_ok", "init_count"), "1");
    const struct fake_event *ev = find_event("fixture_started");
    SW_ASSERT(ev != NULL);
    SW_ASSERT_STREQ(ev->plugin, "fixture_ok");
    SW_ASSERT_STREQ(ev->reason, "init");
    char want[160];
    snprintf(want, sizeof(want),
             "{\"nonce\":\"%016llx\",\"instance\":\"steward-test\","
             "\"now_ms\":%lld}",
             (unsigned long long)expected_first_random(42, "fixture_ok"), START_MS);
    SW_ASSERT_STREQ(ev->data_json, want);

    env.now = START_MS + 1234;
    SW_ASSERT_EQ(h->now_ms(h), START_MS + 1234);
    SW_ASSERT_STREQ(h->instance_id(h), "steward-test");
    SW_ASSERT_EQ(h->kv_set(h, "k", "v1"), 0);
    char *value = NULL;
    SW_ASSERT_EQ(h->kv_get(h, "k", &value), 0);
    SW_ASSERT_STREQ(value, "v1");
    h->free(value);
    SW_ASSERT_EQ(h->kv_del(h, "k"), 0);
    SW_ASSERT_EQ(h->kv_get(h, "k", &value), SWP_ENOENT);
    SW_ASSERT(value == NULL);
    SW_ASSERT_EQ(h->kv_set(h, NULL, "v"), SWP_EINVAL);
    void *mem = h->alloc(16);
    SW_ASSERT(mem != NULL);
    h->free(mem);
    /* An event from an older, smaller struct reaches the service host-sized. */
    struct swp_event small = {offsetof(struct swp_event, market_id), "short_event", "m-1", "r",
                              "{}"};
    h->emit_event(h, &small);
    ev = find_event("short_event");
    SW_ASSERT(ev != NULL);
    SW_ASSERT(ev->reason == NULL);
    sw_plugin_host_free(host);
}

SW_TEST(random_stream_is_per_plugin_and_seeded)
{
    struct sw_plugin_host *host = new_host(7);
    struct sw_plugin *p = load_ok(host, ok_config);
    SW_ASSERT(p != NULL);
    const struct swp_host *h = sw_plugin_host_table(p);
    uint64_t second = h->random_u64(h);
    uint64_t third = h->random_u64(h);
    SW_ASSERT(second != third);
    sw_plugin_host_free(host);

    /* Same seed, same stream; another seed, another stream. */
    host = new_host(7);
    p = load_ok(host, ok_config);
    h = sw_plugin_host_table(p);
    SW_ASSERT_EQ(h->random_u64(h), second);
    SW_ASSERT_EQ(h->random_u64(h), third);
    sw_plugin_host_free(host);
    host = new_host(8);
    p = load_ok(host, ok_config);
    h = sw_plugin_host_table(p);
    SW_ASSERT_NE(h->random_u64(h), second);
    sw_plugin_host_free(host);

    /* Another plugin name under the same seed draws a different stream. */
    host = new_host(7);
    struct sw_error err = {0};
    p = sw_plugin_host_load(host, fixture("op_never_completes"), NULL, NULL, &err);
    SW_ASSERT(p != NULL);
    h = sw_plugin_host_table(p);
    SW_ASSERT_EQ(h->random_u64(h), expected_first_random(7, "fixture_never"));
    sw_plugin_host_free(host);
}

static int timer_hits;

static void count_hit(void *ud)
{
    timer_hits += *(int *)ud;
}

SW_TEST(timers_are_tracked_per_plugin)
{
    struct sw_plugin_host *host = new_host(1);
    struct sw_error err = {0};
    struct sw_plugin *ok = load_ok(host, ok_config);
    struct sw_plugin *never =
        sw_plugin_host_load(host, fixture("op_never_completes"), NULL, NULL, &err);
    SW_ASSERT(ok != NULL && never != NULL);
    const struct swp_host *ho = sw_plugin_host_table(ok);
    const struct swp_host *hn = sw_plugin_host_table(never);
    int one = 1, ten = 10;
    timer_hits = 0;
    uint64_t a = hn->timer_start(hn, 100, count_hit, &one);
    uint64_t b = hn->timer_start(hn, 200, count_hit, &ten);
    SW_ASSERT(a != 0 && b != 0);
    SW_ASSERT_EQ(sw_plugin_pending_timers(never), 2);
    SW_ASSERT_EQ(sw_plugin_pending_timers(ok), 0);
    /* A plugin cannot stop another plugin's timer. */
    ho->timer_stop(ho, a);
    SW_ASSERT_EQ(fake_timer_count(), 2);
    hn->timer_stop(hn, b);
    SW_ASSERT_EQ(sw_plugin_pending_timers(never), 1);
    SW_ASSERT_EQ(fake_run(START_MS + 1000), 1);
    SW_ASSERT_EQ(timer_hits, 1);
    SW_ASSERT_EQ(sw_plugin_pending_timers(never), 0);
    /* Stopping a fired id is a no-op. */
    hn->timer_stop(hn, a);
    SW_ASSERT_EQ(hn->timer_start(hn, 1, NULL, NULL), 0);
    sw_plugin_host_free(host);
}

static int http_status_seen;
static long http_code_seen;
static int http_calls;

static void record_http(void *ud, int status, const struct swp_http_resp *resp)
{
    http_calls++;
    http_status_seen = status;
    http_code_seen = resp != NULL ? resp->status : -1;
}

SW_TEST(http_requests_are_tracked_and_cancelled)
{
    struct sw_plugin_host *host = new_host(1);
    struct sw_plugin *p = load_ok(host, ok_config);
    SW_ASSERT(p != NULL);
    const struct swp_host *h = sw_plugin_host_table(p);
    struct swp_http_req req = {.size = sizeof(req), .method = "GET", .url = "http://a/x"};
    http_calls = 0;
    uint64_t id = h->http_request(h, &req, record_http, NULL);
    SW_ASSERT(id != 0);
    SW_ASSERT_EQ(sw_plugin_pending_requests(p), 1);
    fake_http_complete(id, 204, "");
    SW_ASSERT_EQ(http_calls, 1);
    SW_ASSERT_EQ(http_status_seen, 0);
    SW_ASSERT_EQ(http_code_seen, 204);
    SW_ASSERT_EQ(sw_plugin_pending_requests(p), 0);

    id = h->http_request(h, &req, record_http, NULL);
    h->http_cancel(h, id);
    SW_ASSERT_EQ(http_calls, 2);
    SW_ASSERT_EQ(http_status_seen, SWP_ECANCELED);
    SW_ASSERT_EQ(fake_request_count(), 0);
    h->http_cancel(h, id); /* already done: no second callback */
    SW_ASSERT_EQ(http_calls, 2);

    /* A request without method or url never reaches the service. */
    struct swp_http_req bad = {.size = sizeof(bad), .method = "GET"};
    SW_ASSERT_EQ(h->http_request(h, &bad, record_http, NULL), 0);
    SW_ASSERT_EQ(fake_request_count(), 0);

    /* A service that breaks the cancel contract: the host reports the cancellation itself
     * and drops the late completion. */
    env.lazy_cancel = true;
    id = h->http_request(h, &req, record_http, NULL);
    log_begin();
    h->http_cancel(h, id);
    char *log = log_end();
    SW_ASSERT_EQ(http_calls, 3);
    SW_ASSERT_EQ(http_status_seen, SWP_ECANCELED);
    SW_ASSERT_CONTAINS(log, "did not complete on cancel");
    free(log);
    fake_http_complete(id, 200, "late");
    SW_ASSERT_EQ(http_calls, 3);
    sw_plugin_host_free(host);
}

/* ---- ops dispatch ---------------------------------------------------------------------- */

SW_TEST(market_ops_dispatch)
{
    struct sw_plugin_host *host = new_host(1);
    struct sw_plugin *p = load_ok(host, "{\"endpoint\":\"x\",\"price_usd_hour\":1.25,"
                                        "\"provision_delay\":\"30s\"}");
    SW_ASSERT(p != NULL);
    const struct swp_market_ops *m = sw_plugin_market(p);
    SW_ASSERT(m != NULL);
    SW_ASSERT_EQ(m->size, sizeof(struct swp_market_ops));
    SW_ASSERT(m->acquire && m->release && m->list && m->offers);
    SW_ASSERT(sw_plugin_dns(p) == NULL && sw_plugin_metrics(p) == NULL &&
              sw_plugin_probe(p) == NULL);

    struct op_record acq = {0};
    struct swp_acquire_req req = acquire_req("web/eu-west/1");
    SW_ASSERT_EQ(m->acquire(sw_plugin_state(p), &req, on_progress, on_unit_done, &acq), 0);
    SW_ASSERT_EQ(acq.progress_calls + acq.done_calls, 0); /* asynchronous */
    fake_run(START_MS);
    SW_ASSERT_EQ(acq.progress_calls, 1);
    SW_ASSERT_EQ(acq.progress_state, SWP_UNIT_CREATED);
    SW_ASSERT_STREQ(acq.market_id, "fx-1");
    SW_ASSERT_STREQ(kv_value("fixture_ok", "unit:fx-1"), "web/eu-west/1");
    fake_run(START_MS + 29999);
    SW_ASSERT_EQ(acq.done_calls, 0);
    fake_run(START_MS + 30000);
    SW_ASSERT_EQ(acq.done_calls, 1);
    SW_ASSERT_EQ(acq.done_status, 0);
    SW_ASSERT_EQ(acq.done_state, SWP_UNIT_READY);
    SW_ASSERT_STREQ(acq.uri, "https://fx-1.fixture.example");
    SW_ASSERT_NEAR(acq.price, 1.25, 1e-12);
    SW_ASSERT_EQ(sw_plugin_pending_timers(p), 0);

    struct op_record list = {0};
    SW_ASSERT_EQ(m->list(sw_plugin_state(p), on_units, &list), 0);
    SW_ASSERT_EQ(list.count, 1);
    SW_ASSERT_STREQ(list.first, "fx-1");

    struct op_record offers = {0};
    SW_ASSERT_EQ(m->offers(sw_plugin_state(p), on_offers, &offers), 0);
    SW_ASSERT_EQ(offers.count, 2);
    SW_ASSERT_STREQ(offers.first, "fx-provider-a@eu-west");

    struct op_record rel = {0};
    SW_ASSERT_EQ(m->release(sw_plugin_state(p), "fx-1", on_done, &rel), 0);
    SW_ASSERT_EQ(rel.done_calls, 1);
    SW_ASSERT_EQ(rel.done_status, 0);
    SW_ASSERT(kv_value("fixture_ok", "unit:fx-1") == NULL);
    memset(&list, 0, sizeof(list));
    m->list(sw_plugin_state(p), on_units, &list);
    SW_ASSERT_EQ(list.count, 0);

    /* Releasing while provisioning stops the plugin's timer through the host. */
    struct op_record acq2 = {0};
    req = acquire_req("web/eu-west/2");
    SW_ASSERT_EQ(m->acquire(sw_plugin_state(p), &req, on_progress, on_unit_done, &acq2), 0);
    fake_run(env.now);
    SW_ASSERT_EQ(sw_plugin_pending_timers(p), 1);
    memset(&rel, 0, sizeof(rel));
    SW_ASSERT_EQ(m->release(sw_plugin_state(p), acq2.market_id, on_done, &rel), 0);
    SW_ASSERT_EQ(acq2.done_status, SWP_ECANCELED);
    SW_ASSERT_EQ(sw_plugin_pending_timers(p), 0);
    SW_ASSERT_EQ(fake_timer_count(), 0);
    sw_plugin_host_free(host);
}

SW_TEST(notify_goes_through_host_http)
{
    struct sw_plugin_host *host = new_host(1);
    struct sw_plugin *p = load_ok(host, "{\"endpoint\":\"https://hooks.example\"}");
    SW_ASSERT(p != NULL);
    const struct swp_notify_ops *n = sw_plugin_notify(p);
    SW_ASSERT(n != NULL && n->notify != NULL);
    struct op_record rec = {0};
    SW_ASSERT_EQ(n->notify(sw_plugin_state(p), "{\"type\":\"alert\"}", on_done, &rec), 0);
    SW_ASSERT(env.requests != NULL);
    SW_ASSERT_STREQ(env.requests->method, "POST");
    SW_ASSERT_STREQ(env.requests->url, "https://hooks.example/notify");
    SW_ASSERT_STREQ(env.requests->body, "{\"type\":\"alert\"}");
    SW_ASSERT_STREQ(env.requests->headers, "Content-Type: application/json\n");
    SW_ASSERT(sw_plugin_from_host_table(sw_plugin_host_table(env.requests->plugin)) == p);
    fake_http_complete(0, 200, "ok");
    SW_ASSERT_EQ(rec.done_calls, 1);
    SW_ASSERT_EQ(rec.done_status, 0);

    memset(&rec, 0, sizeof(rec));
    n->notify(sw_plugin_state(p), "{}", on_done, &rec);
    fake_http_complete(0, 500, "boom");
    SW_ASSERT_EQ(rec.done_status, SWP_EHTTP);
    sw_plugin_host_free(host);
}

SW_TEST(short_vtable_ops_past_size_are_unsupported)
{
    struct sw_plugin_host *host = new_host(1);
    struct sw_error err = {0};
    struct sw_plugin *p = sw_plugin_host_load(host, fixture("short_vtable"), NULL, NULL, &err);
    SW_ASSERT(p != NULL);
    const struct swp_market_ops *m = sw_plugin_market(p);
    SW_ASSERT(m != NULL);
    SW_ASSERT_EQ(m->size, sizeof(struct swp_market_ops));
    SW_ASSERT(m->acquire != NULL);
    /* The plugin's struct holds a release function past its declared size. */
    SW_ASSERT(sw_plugin_desc(p)->market->release != NULL);
    SW_ASSERT(m->release == NULL);
    SW_ASSERT(m->list == NULL && m->offers == NULL);
    SW_ASSERT(sw_plugin_notify(p) == NULL);
    struct op_record rec = {0};
    struct swp_acquire_req req = acquire_req("k");
    SW_ASSERT_EQ(m->acquire(sw_plugin_state(p), &req, on_progress, on_unit_done, &rec), 0);
    SW_ASSERT_EQ(rec.done_calls, 1);
    SW_ASSERT_EQ(rec.done_state, SWP_UNIT_READY);
    sw_plugin_host_free(host);
}

SW_TEST(never_completing_plugin_loads)
{
    struct sw_plugin_host *host = new_host(1);
    struct sw_error err = {0};
    struct sw_plugin *p =
        sw_plugin_host_load(host, fixture("op_never_completes"), NULL, NULL, &err);
    SW_ASSERT(p != NULL);
    SW_ASSERT_STREQ(sw_plugin_name(p), "fixture_never");
    const struct swp_market_ops *m = sw_plugin_market(p);
    struct op_record rec = {0};
    struct swp_acquire_req req = acquire_req("k");
    SW_ASSERT_EQ(m->acquire(sw_plugin_state(p), &req, on_progress, on_unit_done, &rec), 0);
    SW_ASSERT_EQ(m->release(sw_plugin_state(p), "x", on_done, &rec), 0);
    fake_run(START_MS + 3600000);
    SW_ASSERT_EQ(rec.done_calls + rec.progress_calls, 0);
    SW_ASSERT(m->list == NULL && m->offers == NULL);
    sw_plugin_host_free(host);
}

/* ---- unloading ------------------------------------------------------------------------- */

SW_TEST(unload_cancels_requests_stops_timers_then_destroys)
{
    struct sw_plugin_host *host = new_host(1);
    struct sw_plugin *p = load_ok(host, ok_config);
    SW_ASSERT(p != NULL);
    const struct swp_market_ops *m = sw_plugin_market(p);
    const struct swp_notify_ops *n = sw_plugin_notify(p);
    struct op_record acq = {0}, note = {0};
    struct swp_acquire_req req = acquire_req("web/eu-west/1");
    SW_ASSERT_EQ(m->acquire(sw_plugin_state(p), &req, on_progress, on_unit_done, &acq), 0);
    fake_run(START_MS); /* CREATED; the READY timer is pending */
    SW_ASSERT_EQ(n->notify(sw_plugin_state(p), "{}", on_done, &note), 0);
    SW_ASSERT_EQ(sw_plugin_pending_timers(p), 1);
    SW_ASSERT_EQ(sw_plugin_pending_requests(p), 1);

    sw_plugin_host_unload(host, p);
    SW_ASSERT_EQ(note.done_calls, 1);
    SW_ASSERT_EQ(note.done_status, SWP_ECANCELED);
    SW_ASSERT_EQ(acq.done_calls, 1);
    SW_ASSERT_EQ(acq.done_status, SWP_ECANCELED);
    SW_ASSERT_EQ(fake_timer_count(), 0);
    SW_ASSERT_EQ(fake_request_count(), 0);
    SW_ASSERT_STREQ(kv_value("fixture_ok", "destroyed"), "1");
    const struct fake_event *ev = find_event("fixture_destroyed");
    SW_ASSERT(ev != NULL);
    SW_ASSERT_STREQ(ev->data_json, "{\"cancelled\":1}");
    SW_ASSERT_EQ(sw_plugin_host_count(host), 0);
    SW_ASSERT(sw_plugin_host_get(host, "fixture_ok") == NULL);

    /* The name is free again; the KV survived in the store. */
    p = load_ok(host, ok_config);
    SW_ASSERT(p != NULL);
    SW_ASSERT_STREQ(kv_value("fixture_ok", "init_count"), "2");
    sw_plugin_host_free(host);
}

SW_TEST(host_free_with_pending_work_unloads_in_reverse_order)
{
    struct sw_plugin_host *host = new_host(1);
    struct sw_error err = {0};
    SW_ASSERT(sw_plugin_host_load(host, fixture("op_never_completes"), NULL, NULL, &err));
    struct sw_plugin *p = load_ok(host, ok_config);
    SW_ASSERT(sw_plugin_host_load(host, fixture("short_vtable"), NULL, NULL, &err));
    SW_ASSERT(p != NULL);
    SW_ASSERT_EQ(sw_plugin_host_count(host), 3);
    SW_ASSERT(sw_plugin_host_at(host, 1) == p);
    struct op_record acq = {0}, note = {0};
    struct swp_acquire_req req = acquire_req("a");
    sw_plugin_market(p)->acquire(sw_plugin_state(p), &req, on_progress, on_unit_done, &acq);
    sw_plugin_notify(p)->notify(sw_plugin_state(p), "{}", on_done, &note);
    log_begin();
    sw_plugin_host_free(host);
    char *log = log_end();
    SW_ASSERT_EQ(acq.done_status, SWP_ECANCELED);
    SW_ASSERT_EQ(note.done_status, SWP_ECANCELED);
    SW_ASSERT_EQ(fake_timer_count(), 0);
    SW_ASSERT_EQ(fake_request_count(), 0);
    const char *short_at = strstr(log, "unloaded plugin 'fixture_short'");
    const char *ok_at = strstr(log, "unloaded plugin 'fixture_ok'");
    const char *never_at = strstr(log, "unloaded plugin 'fixture_never'");
    SW_ASSERT(short_at != NULL && ok_at != NULL && never_at != NULL);
    SW_ASSERT(short_at < ok_at && ok_at < never_at);
    free(log);
}

/* ---- discovery --------------------------------------------------------------------------- */

static char scan_dirs[2][64];

static void make_scan_dirs(void)
{
    for (int i = 0; i < 2; i++) {
        snprintf(scan_dirs[i], sizeof(scan_dirs[i]), "/tmp/sw_plugin_host_XXXXXX");
        SW_ASSERT(mkdtemp(scan_dirs[i]) != NULL);
    }
    static const struct {
        int dir;
        const char *link;
        const char *target;
    } links[] = {
        {0, "swp_fixture_ok.so", "ok"},
        {0, "swp_dup.so", "ok_dup"},
        {0, "swp_major.so", "abi_major_mismatch"},
        {0, "swp_minor.so", "abi_minor_newer"},
        {1, "swp_fixture_never.so", "op_never_completes"},
        {1, "swp_fixture_ok.so", "short_vtable"}, /* shadowed by dir 0's file for find */
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(links); i++) {
        char *path = sw_xasprintf("%s/%s", scan_dirs[links[i].dir], links[i].link);
        char *target = realpath(fixture(links[i].target), NULL); /* links need absolute */
        SW_ASSERT(target != NULL);
        SW_ASSERT_EQ(symlink(target, path), 0);
        free(target);
        free(path);
    }
    char *garbage = sw_xasprintf("%s/swp_garbage.so", scan_dirs[0]);
    FILE *f = fopen(garbage, "w");
    fputs("not an ELF file\n", f);
    fclose(f);
    free(garbage);
    char *readme = sw_xasprintf("%s/README.txt", scan_dirs[0]);
    f = fopen(readme, "w");
    fclose(f);
    free(readme);
}

static void remove_scan_dirs(void)
{
    static const char *names[] = {"swp_fixture_ok.so", "swp_dup.so",           "swp_major.so",
                                  "swp_minor.so",      "swp_fixture_never.so", "swp_garbage.so",
                                  "README.txt"};
    for (int d = 0; d < 2; d++) {
        for (size_t i = 0; i < SW_ARRAY_LEN(names); i++) {
            char *path = sw_xasprintf("%s/%s", scan_dirs[d], names[i]);
            unlink(path);
            free(path);
        }
        rmdir(scan_dirs[d]);
    }
}

SW_TEST(find_first_hit_wins)
{
    make_scan_dirs();
    const char *dirs[] = {"/nonexistent", scan_dirs[0], scan_dirs[1]};
    char *path = sw_plugin_host_find(dirs, 3, "fixture_ok");
    char *want = sw_xasprintf("%s/swp_fixture_ok.so", scan_dirs[0]);
    SW_ASSERT_STREQ(path, want);
    free(path);
    free(want);
    path = sw_plugin_host_find(dirs, 3, "fixture_never");
    want = sw_xasprintf("%s/swp_fixture_never.so", scan_dirs[1]);
    SW_ASSERT_STREQ(path, want);
    free(path);
    free(want);
    SW_ASSERT(sw_plugin_host_find(dirs, 3, "absent") == NULL);
    SW_ASSERT(sw_plugin_host_find(dirs, 3, "../etc/x") == NULL);
    SW_ASSERT(sw_plugin_host_find(dirs, 0, "fixture_ok") == NULL);
    remove_scan_dirs();
}

SW_TEST(probe_reads_descriptor_without_init)
{
    struct sw_plugin_host *host = new_host(1);
    log_begin();
    struct sw_plugin_info *info = sw_plugin_host_probe(fixture("ok"));
    char *log = log_end();
    SW_ASSERT(info->error == NULL);
    SW_ASSERT_STREQ(info->name, "fixture_ok");
    SW_ASSERT_STREQ(info->version, "1.2.3");
    SW_ASSERT_STREQ(info->description, "A well-behaved fixture plugin for the plugin host tests.");
    SW_ASSERT_EQ(info->kinds, SWP_KIND_MARKET | SWP_KIND_NOTIFY);
    SW_ASSERT_EQ(info->abi_major, SWP_ABI_MAJOR);
    SW_ASSERT_EQ(info->abi_minor, SWP_ABI_MINOR);
    SW_ASSERT_STREQ(info->path, fixture("ok"));
    SW_ASSERT(strstr(log, "[fixture_ok]") == NULL); /* init would have logged "ready" */
    free(log);
    sw_plugin_info_free(info);

    /* A probe reports the same message a load would. */
    info = sw_plugin_host_probe(fixture("abi_major_mismatch"));
    SW_ASSERT_EQ(expect_refusal(host, fixture("abi_major_mismatch"), NULL), SW_EABI);
    SW_ASSERT_STREQ(info->error, refusal.msg);
    SW_ASSERT_EQ(info->abi_major, 2);
    SW_ASSERT_STREQ(info->name, "fixture_major");
    SW_ASSERT(info->version == NULL);
    sw_plugin_info_free(info);
    info = sw_plugin_host_probe(fixture("no_entry_symbol"));
    SW_ASSERT_CONTAINS(info->error, "no swp_plugin_entry symbol");
    SW_ASSERT(info->name == NULL);
    sw_plugin_info_free(info);
    sw_plugin_host_free(host);
}

SW_TEST(scan_lists_sorted_with_errors)
{
    make_scan_dirs();
    const char *dirs[] = {scan_dirs[0], "/nonexistent", scan_dirs[1]};
    size_t count = 0;
    struct sw_plugin_info **infos = sw_plugin_host_scan(dirs, 3, &count);
    SW_ASSERT_EQ(count, 7);
    /* Sorted by plugin name (file name for unreadable files), then discovery order. */
    SW_ASSERT_STREQ(infos[0]->name, "fixture_major");
    SW_ASSERT_CONTAINS(infos[0]->error, "was built for ABI 2.0, host speaks ABI " HOST_ABI);
    SW_ASSERT_STREQ(infos[1]->name, "fixture_minor");
    SW_ASSERT_CONTAINS(infos[1]->error, "newer than host ABI " HOST_ABI);
    SW_ASSERT_STREQ(infos[2]->name, "fixture_never");
    SW_ASSERT(infos[2]->error == NULL);
    SW_ASSERT_STREQ(infos[3]->name, "fixture_ok");
    SW_ASSERT_STREQ(infos[4]->name, "fixture_ok");
    SW_ASSERT_STREQ(infos[5]->name, "fixture_short");
    SW_ASSERT(infos[5]->error == NULL);
    SW_ASSERT(infos[6]->name == NULL);
    SW_ASSERT_CONTAINS(infos[6]->path, "/swp_garbage.so");
    SW_ASSERT_CONTAINS(infos[6]->error, "swp_garbage.so: cannot load plugin: ");
    SW_ASSERT_CONTAINS(infos[6]->error, "(host ABI " HOST_ABI ")");

    /* Of swp_dup.so and swp_fixture_ok.so (both "fixture_ok"), the file find() picks wins. */
    char *winner = sw_xasprintf("%s/swp_fixture_ok.so", scan_dirs[0]);
    char *loser = sw_xasprintf("%s/swp_dup.so", scan_dirs[0]);
    struct sw_plugin_info *win = strcmp(infos[3]->path, winner) == 0 ? infos[3] : infos[4];
    struct sw_plugin_info *lose = win == infos[3] ? infos[4] : infos[3];
    SW_ASSERT_STREQ(win->path, winner);
    SW_ASSERT(win->error == NULL);
    SW_ASSERT_STREQ(lose->path, loser);
    char *want = sw_xasprintf("%s: a plugin named 'fixture_ok' is already provided by %s; "
                              "remove one of them from the plugin directories",
                              loser, winner);
    SW_ASSERT_STREQ(lose->error, want);
    free(want);
    free(winner);
    free(loser);
    for (size_t i = 0; i < count; i++)
        sw_plugin_info_free(infos[i]);
    free(infos);

    infos = sw_plugin_host_scan(dirs, 0, &count);
    SW_ASSERT_EQ(count, 0);
    free(infos);
    remove_scan_dirs();
}

/* ---- describe ------------------------------------------------------------------------- */

SW_TEST(describe_prints_config_map)
{
    struct sw_plugin_host *host = new_host(1);
    struct sw_plugin *p = load_ok(host, ok_config);
    SW_ASSERT(p != NULL);
    char *text = sw_plugin_describe(sw_plugin_desc(p));
    SW_ASSERT_STREQ(text, "fixture_ok 1.2.3 (plugin ABI " HOST_ABI ", host ABI " HOST_ABI ")\n"
                          "kinds: market, notify\n"
                          "A well-behaved fixture plugin for the plugin host tests.\n"
                          "config:\n"
                          "  key              type        required/default               "
                          "description\n"
                          "  endpoint         string      required                       "
                          "Base URL notifications are POSTed to.\n"
                          "  region           string      default \"eu-west\"              "
                          "Region new units are placed in.\n"
                          "  max_units        integer     default 4                      "
                          "Most units open at once.\n"
                          "  price_usd_hour   number      default 0.5                    "
                          "Price of one unit in USD/hour.\n"
                          "  audited_only     boolean     default false                  "
                          "Offer audited providers only.\n"
                          "  labels           object      default {}                     "
                          "Labels stamped on every unit.\n"
                          "  regions          array       default [\"eu-west\",\"us-east\"]  "
                          "Regions offered.\n"
                          "  token_env        secret_env  optional                       "
                          "Environment variable holding the API token.\n"
                          "  provision_delay  duration    default \"2s\"                   "
                          "Time from CREATED to READY.\n");
    struct sw_error err = {0};
    char *from_path = sw_plugin_host_describe_path(fixture("ok"), &err);
    SW_ASSERT_STREQ(from_path, text);
    free(from_path);
    free(text);

    SW_ASSERT(sw_plugin_host_describe_path(fixture("abi_minor_newer"), &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_EABI);
    SW_ASSERT_CONTAINS(err.msg, "newer than host ABI");

    struct sw_plugin *never =
        sw_plugin_host_load(host, fixture("op_never_completes"), NULL, NULL, &err);
    SW_ASSERT(never != NULL);
    text = sw_plugin_describe(sw_plugin_desc(never));
    SW_ASSERT_STREQ(text, "fixture_never 1.0.0 (plugin ABI " HOST_ABI ", host ABI " HOST_ABI ")\n"
                          "kinds: market\n"
                          "Accepts market ops and never completes them.\n"
                          "config: none\n");
    free(text);
    sw_plugin_host_free(host);
}

static void quiet_log(void) __attribute__((constructor));
static void quiet_log(void)
{
    sw_log_configure(NULL, SW_LOG_FORMAT_TEXT, SW_LOG_WARN);
}

static void cleanup_env(void) __attribute__((destructor));
static void cleanup_env(void)
{
    env_reset();
    sw_log_clear_secrets();
}

SW_TEST_MAIN()
