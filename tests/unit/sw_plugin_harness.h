/* sw_plugin_harness.h — a plugin loaded by the REAL plugin host (core/plugin_host.c) with
 * the real HTTP client and a live clock on one uv loop, plus a local HTTP server
 * (core/http_server.h) the test answers from. For plugins whose job is HTTP
 * (metrics_prometheus, probe_http): their requests go over loopback exactly as in
 * `steward run`. Header-only; include after sw_test.h.
 */
#ifndef SW_PLUGIN_HARNESS_H
#define SW_PLUGIN_HARNESS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "clock.h"
#include "http_client.h"
#include "http_server.h"
#include "log.h"
#include "mem.h"
#include "plugin_host.h"

#define HARNESS_FN static inline __attribute__((unused))

struct harness {
    uv_loop_t loop;
    /* Keeps each UV_RUN_ONCE short: a callback fired from the timer phase does not stop
     * that iteration from then blocking in poll (see test_http_client.c). */
    uv_timer_t tick;
    struct sw_clock *clock;
    struct sw_http_client *http;
    struct sw_plugin_host *host;
    struct sw_plugin *plugin;
    struct sw_http_server *server;
    int port;
    char base[64];
    FILE *log;              /* everything sw_log wrote during the test */
};

struct harness_trampoline {
    swp_http_cb cb;
    void *ud;
};

HARNESS_FN int64_t harness_now(void *ud)
{
    struct harness *h = ud;
    return sw_clock_now(h->clock);
}

HARNESS_FN uint64_t harness_timer_start(void *ud, struct sw_plugin *plugin, uint64_t delay_ms,
                                        swp_timer_cb cb, void *cb_ud)
{
    struct harness *h = ud;
    (void)plugin;
    return sw_clock_timer_start(h->clock, delay_ms, cb, cb_ud);
}

HARNESS_FN void harness_timer_stop(void *ud, struct sw_plugin *plugin, uint64_t id)
{
    struct harness *h = ud;
    (void)plugin;
    sw_clock_timer_stop(h->clock, id);
}

HARNESS_FN void harness_http_done(void *ud, int status, const struct swp_http_resp *resp,
                                  const char *error_text)
{
    struct harness_trampoline *t = ud;
    swp_http_cb cb = t->cb;
    void *cb_ud = t->ud;
    (void)error_text;
    free(t);
    cb(cb_ud, status, resp);
}

HARNESS_FN uint64_t harness_http_request(void *ud, struct sw_plugin *plugin,
                                         const struct swp_http_req *req, swp_http_cb cb,
                                         void *cb_ud)
{
    struct harness *h = ud;
    (void)plugin;
    struct harness_trampoline *t = sw_xmalloc(sizeof(*t));
    t->cb = cb;
    t->ud = cb_ud;
    uint64_t id = sw_http_client_request(h->http, req, harness_http_done, t);
    if (id == 0)
        free(t);
    return id;
}

HARNESS_FN void harness_http_cancel(void *ud, struct sw_plugin *plugin, uint64_t id)
{
    struct harness *h = ud;
    (void)plugin;
    sw_http_client_cancel(h->http, id);
}

HARNESS_FN void harness_on_tick(uv_timer_t *timer)
{
    (void)timer;
}

/* Start the loop, clock, client and a server answering with handler. */
HARNESS_FN void harness_start(struct harness *h, sw_http_handler handler, void *handler_ud)
{
    memset(h, 0, sizeof(*h));
    /* Requests to 127.0.0.1 must not be sent to a proxy from the environment. */
    unsetenv("http_proxy");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("HTTP_PROXY");
    unsetenv("ALL_PROXY");
    unsetenv("all_proxy");
    h->log = tmpfile();
    sw_log_configure(h->log, SW_LOG_FORMAT_TEXT, SW_LOG_DEBUG);
    uv_loop_init(&h->loop);
    uv_timer_init(&h->loop, &h->tick);
    uv_timer_start(&h->tick, harness_on_tick, 5, 5);
    h->clock = sw_clock_live_new(&h->loop, 1.0);
    h->http = sw_http_client_new(&h->loop);
    struct sw_plugin_services services = {
        .ud = h,
        .now_ms = harness_now,
        .timer_start = harness_timer_start,
        .timer_stop = harness_timer_stop,
        .http_request = harness_http_request,
        .http_cancel = harness_http_cancel,
    };
    h->host = sw_plugin_host_new(&services, "harness", 1);
    if (handler != NULL) {
        struct sw_http_server_opts opts = {.host = "127.0.0.1", .port = 0};
        struct sw_error err = {0};
        h->server = sw_http_server_start(&h->loop, &opts, handler, handler_ud, &err);
        if (h->server == NULL) {
            fprintf(stderr, "    server: %s\n", err.msg);
            abort();
        }
        h->port = sw_http_server_port(h->server);
        snprintf(h->base, sizeof(h->base), "http://127.0.0.1:%d", h->port);
    }
}

/* Load build/plugins/swp_<name>.so with config_json; NULL with err on refusal. */
HARNESS_FN struct sw_plugin *harness_load(struct harness *h, const char *name,
                                          const char *config_json, struct sw_error *err)
{
    const char *dir = getenv("SW_PLUGIN_DIR");
    if (dir == NULL) {
        sw_error_set(err, SW_EIO, "SW_PLUGIN_DIR is not set (run through ctest)");
        return NULL;
    }
    const char *dirs[] = {dir};
    char *path = sw_plugin_host_find(dirs, 1, name);
    if (path == NULL) {
        sw_error_set(err, SW_EIO, "swp_%s.so not found in %s", name, dir);
        return NULL;
    }
    char origin[128];
    snprintf(origin, sizeof(origin), "test.jsonc:plugins.%s", name);
    h->plugin = sw_plugin_host_load(h->host, path, config_json, origin, err);
    free(path);
    return h->plugin;
}

/* Turn the loop until *flag is true or timeout_ms of real time passed. */
HARNESS_FN bool harness_run_until(struct harness *h, const bool *flag, uint64_t timeout_ms)
{
    uint64_t deadline = uv_hrtime() + timeout_ms * 1000000u;
    while (!*flag && uv_hrtime() < deadline)
        uv_run(&h->loop, UV_RUN_ONCE);
    return *flag;
}

/* Turn the loop for ms of real time. */
HARNESS_FN void harness_run_for(struct harness *h, uint64_t ms)
{
    bool never = false;
    harness_run_until(h, &never, ms);
}

/* Everything logged so far (owned). */
HARNESS_FN char *harness_log_text(struct harness *h)
{
    fflush(h->log);
    long size = ftell(h->log);
    char *text = sw_xcalloc(1, (size_t)(size > 0 ? size : 0) + 1);
    rewind(h->log);
    size_t got = size > 0 ? fread(text, 1, (size_t)size, h->log) : 0;
    text[got] = '\0';
    fseek(h->log, 0, SEEK_END);
    return text;
}

/* Unload the plugin (its requests are cancelled), close everything, and return
 * uv_loop_close's result (0 when nothing leaked a handle). */
HARNESS_FN int harness_finish(struct harness *h)
{
    sw_plugin_host_free(h->host);
    sw_http_client_close(h->http);
    if (h->server != NULL)
        sw_http_server_close(h->server);
    sw_clock_free(h->clock);
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    sw_log_configure(NULL, SW_LOG_FORMAT_TEXT, SW_LOG_INFO);
    sw_log_clear_secrets();
    fclose(h->log);
    return uv_loop_close(&h->loop);
}

#endif /* SW_PLUGIN_HARNESS_H */
