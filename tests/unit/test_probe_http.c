/* test_probe_http.c — plugins/probe_http loaded by the real plugin host, probing a local
 * server (core/http_server.h) over loopback through the real HTTP client: healthy and
 * unhealthy answers, redirects, timeouts, refused connections, configured statuses, and
 * many probes in flight at once on the one loop thread. */
#include <stdlib.h>

#include "sw_test.h"
#include "sw_plugin_harness.h"

#define DELAY_MS 200

struct delayed {
    uv_timer_t timer;
    struct sw_http_exchange *ex;
    struct delayed *next;
};

struct server_state {
    uv_loop_t *loop;
    struct delayed *delayed;
    int requests;
    int in_flight;
    int max_in_flight;
    char user_agent[128];
};

static void delayed_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void delayed_fire(uv_timer_t *timer)
{
    struct delayed *d = timer->data;
    struct server_state *st = d->timer.loop->data;
    st->in_flight--;
    sw_http_respond(d->ex, 200, "text/plain", NULL, 0, "late ok", 7);
    d->ex = NULL;
}

static void handler(void *ud, struct sw_http_exchange *ex, const struct sw_http_request *req)
{
    struct server_state *st = ud;
    st->requests++;
    const char *agent = sw_http_request_header(req, "user-agent");
    snprintf(st->user_agent, sizeof(st->user_agent), "%s", agent ? agent : "");
    if (strcmp(req->path, "/ok") == 0) {
        sw_http_respond(ex, 200, "text/plain", NULL, 0, "ok", 2);
    } else if (strcmp(req->path, "/nocontent") == 0) {
        sw_http_respond(ex, 204, "text/plain", NULL, 0, "", 0);
    } else if (strcmp(req->path, "/moved") == 0) {
        const char *headers[] = {"Location: /ok"};
        sw_http_respond(ex, 302, "text/plain", headers, 1, "", 0);
    } else if (strcmp(req->path, "/fail") == 0) {
        sw_http_respond(ex, 503, "text/plain", NULL, 0, "down", 4);
    } else if (strcmp(req->path, "/delay") == 0) {
        struct delayed *d = sw_xcalloc(1, sizeof(*d));
        d->ex = ex;
        d->next = st->delayed;
        st->delayed = d;
        uv_timer_init(st->loop, &d->timer);
        d->timer.data = d;
        st->in_flight++;
        if (st->in_flight > st->max_in_flight)
            st->max_in_flight = st->in_flight;
        uv_timer_start(&d->timer, delayed_fire, DELAY_MS, 0);
    } else if (strcmp(req->path, "/hang") == 0) {
        /* never answered */
    } else {
        sw_http_respond(ex, 404, "text/plain", NULL, 0, "nope", 4);
    }
}

struct probe_result {
    bool done;
    int calls;
    int status;
    bool ok;
    long http_status;
    double connect_ms, tls_ms, first_byte_ms, total_ms;
    char target[256];
    char error[160];
};

static void on_probe(void *ud, int status, const struct swp_probe_result *r)
{
    struct probe_result *out = ud;
    out->calls++;
    out->done = true;
    out->status = status;
    if (r == NULL)
        return;
    out->ok = r->ok;
    out->http_status = r->http_status;
    out->connect_ms = r->connect_ms;
    out->tls_ms = r->tls_ms;
    out->first_byte_ms = r->first_byte_ms;
    out->total_ms = r->total_ms;
    snprintf(out->target, sizeof(out->target), "%s", r->target ? r->target : "");
    snprintf(out->error, sizeof(out->error), "%s", r->error ? r->error : "");
}

struct fixture {
    struct harness h;
    struct server_state st;
    const struct swp_probe_ops *ops;
};

static bool setup(struct fixture *fx, const char *config)
{
    memset(&fx->st, 0, sizeof(fx->st));
    harness_start(&fx->h, handler, &fx->st);
    fx->st.loop = &fx->h.loop;
    fx->h.loop.data = &fx->st;
    struct sw_error err = {0};
    if (harness_load(&fx->h, "probe_http", config, &err) == NULL) {
        fprintf(stderr, "    load: %s\n", err.msg);
        return false;
    }
    fx->ops = sw_plugin_probe(fx->h.plugin);
    return fx->ops != NULL && fx->ops->probe != NULL;
}

static int finish(struct fixture *fx)
{
    for (struct delayed *d = fx->st.delayed, *next; d != NULL; d = next) {
        next = d->next;
        uv_timer_stop(&d->timer);
        uv_close((uv_handle_t *)&d->timer, delayed_closed);
    }
    return harness_finish(&fx->h);
}

static struct probe_result probe(struct fixture *fx, const char *path)
{
    struct probe_result r;
    memset(&r, 0, sizeof(r));
    char url[256];
    snprintf(url, sizeof(url), "%s%s", fx->h.base, path);
    int rc = fx->ops->probe(sw_plugin_state(fx->h.plugin), url, on_probe, &r);
    if (rc < 0) {
        r.status = rc;
        return r;
    }
    harness_run_until(&fx->h, &r.done, 5000);
    return r;
}

SW_TEST(healthy_answer_with_timings)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, "{}"));
    struct probe_result r = probe(&fx, "/ok");
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT(r.ok);
    SW_ASSERT_EQ(r.http_status, 200);
    SW_ASSERT_STREQ(r.error, "");
    SW_ASSERT_CONTAINS(r.target, "/ok");
    SW_ASSERT(r.connect_ms > 0);
    SW_ASSERT(r.first_byte_ms >= r.connect_ms);
    SW_ASSERT(r.total_ms >= r.first_byte_ms);
    SW_ASSERT(r.total_ms < 1000);
    SW_ASSERT(r.tls_ms == 0); /* plain HTTP: no handshake */
    SW_ASSERT_STREQ(fx.st.user_agent, "steward-probe/1.0");
    SW_ASSERT_EQ(finish(&fx), 0);
}

SW_TEST(redirect_is_healthy_and_not_followed)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, "{}"));
    struct probe_result r = probe(&fx, "/moved");
    SW_ASSERT(r.ok);
    SW_ASSERT_EQ(r.http_status, 302);
    SW_ASSERT_EQ(fx.st.requests, 1);
    SW_ASSERT_EQ(finish(&fx), 0);
}

SW_TEST(error_status_is_unhealthy)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, "{}"));
    struct probe_result r = probe(&fx, "/fail");
    SW_ASSERT_EQ(r.status, 0); /* probed: the target is what failed */
    SW_ASSERT(!r.ok);
    SW_ASSERT_EQ(r.http_status, 503);
    SW_ASSERT_STREQ(r.error, "HTTP 503");
    r = probe(&fx, "/missing");
    SW_ASSERT(!r.ok);
    SW_ASSERT_STREQ(r.error, "HTTP 404");
    SW_ASSERT_EQ(finish(&fx), 0);
}

SW_TEST(hanging_target_times_out)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, "{\"timeout\": \"300ms\"}"));
    uint64_t started = uv_hrtime();
    struct probe_result r = probe(&fx, "/hang");
    double waited_ms = (double)(uv_hrtime() - started) / 1e6;
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT(!r.ok);
    SW_ASSERT_EQ(r.http_status, 0);
    SW_ASSERT_STREQ(r.error, "no answer within 300 ms");
    SW_ASSERT(waited_ms >= 250 && waited_ms < 3000);
    SW_ASSERT_EQ(finish(&fx), 0);
}

SW_TEST(refused_connection_is_unhealthy)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, "{}"));
    int port = fx.h.port;
    SW_ASSERT_EQ(finish(&fx), 0);
    /* The port is closed now. */
    struct harness h;
    harness_start(&h, NULL, NULL);
    struct sw_error err = {0};
    SW_ASSERT(harness_load(&h, "probe_http", "{}", &err) != NULL);
    struct probe_result r = {0};
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", port);
    SW_ASSERT_EQ(sw_plugin_probe(h.plugin)->probe(sw_plugin_state(h.plugin), url, on_probe, &r),
                 0);
    harness_run_until(&h, &r.done, 5000);
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT(!r.ok);
    SW_ASSERT_CONTAINS(r.error, "connection failed");
    SW_ASSERT_EQ(harness_finish(&h), 0);
}

SW_TEST(expected_status_overrides_the_default)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, "{\"expected_status\": [204]}"));
    SW_ASSERT(probe(&fx, "/nocontent").ok);
    struct probe_result r = probe(&fx, "/ok");
    SW_ASSERT(!r.ok);
    SW_ASSERT_STREQ(r.error, "HTTP 200");
    SW_ASSERT_EQ(finish(&fx), 0);

    struct harness h;
    harness_start(&h, NULL, NULL);
    struct sw_error err = {0};
    SW_ASSERT(harness_load(&h, "probe_http", "{\"expected_status\": [\"ok\"]}", &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "expected_status: expected an array of up to");
    SW_ASSERT(harness_load(&h, "probe_http", "{\"timeout\": \"0s\"}", &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "timeout");
    SW_ASSERT_EQ(harness_finish(&h), 0);
}

SW_TEST(rejects_targets_that_are_not_http)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, "{}"));
    struct probe_result r = {0};
    void *state = sw_plugin_state(fx.h.plugin);
    SW_ASSERT_EQ(fx.ops->probe(state, "ftp://example.test/", on_probe, &r), SWP_EINVAL);
    SW_ASSERT_EQ(fx.ops->probe(state, "web-1.eu-west.sim.steward.test", on_probe, &r),
                 SWP_EINVAL);
    SW_ASSERT_EQ(r.calls, 0);
    SW_ASSERT_EQ(finish(&fx), 0);
}

SW_TEST(many_probes_in_flight_on_one_thread)
{
    enum { N = 64 };
    struct fixture fx;
    SW_ASSERT(setup(&fx, "{}"));
    static struct probe_result results[N];
    memset(results, 0, sizeof(results));
    char url[128];
    snprintf(url, sizeof(url), "%s/delay", fx.h.base);
    uint64_t started = uv_hrtime();
    for (int i = 0; i < N; i++)
        SW_ASSERT_EQ(fx.ops->probe(sw_plugin_state(fx.h.plugin), url, on_probe, &results[i]), 0);
    uint64_t deadline = uv_hrtime() + 5000000000u;
    int done = 0;
    while (done < N && uv_hrtime() < deadline) {
        uv_run(&fx.h.loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++)
            done += results[i].done;
    }
    double elapsed_ms = (double)(uv_hrtime() - started) / 1e6;
    SW_ASSERT_EQ(done, N);
    for (int i = 0; i < N; i++) {
        SW_ASSERT_EQ(results[i].calls, 1);
        SW_ASSERT(results[i].ok);
        SW_ASSERT(results[i].total_ms >= DELAY_MS * 0.9);
    }
    /* Sequential probing would take N x 200 ms = 12.8 s. */
    SW_ASSERT(elapsed_ms < 2500);
    SW_ASSERT(fx.st.max_in_flight >= N / 2);
    SW_ASSERT_EQ(finish(&fx), 0);
}

SW_TEST(unload_with_probes_in_flight_cancels_each_once)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, "{}"));
    struct probe_result a = {0}, b = {0};
    char url[128];
    snprintf(url, sizeof(url), "%s/hang", fx.h.base);
    SW_ASSERT_EQ(fx.ops->probe(sw_plugin_state(fx.h.plugin), url, on_probe, &a), 0);
    SW_ASSERT_EQ(fx.ops->probe(sw_plugin_state(fx.h.plugin), url, on_probe, &b), 0);
    harness_run_for(&fx.h, 50);
    sw_plugin_host_unload(fx.h.host, fx.h.plugin);
    SW_ASSERT_EQ(a.calls, 1);
    SW_ASSERT_EQ(b.calls, 1);
    SW_ASSERT_EQ(a.status, SWP_ECANCELED);
    SW_ASSERT(!a.ok);
    SW_ASSERT_EQ(finish(&fx), 0);
}

SW_TEST_MAIN()
