/* test_metrics_prometheus.c — plugins/metrics_prometheus loaded by the real plugin host,
 * querying a fake Prometheus (core/http_server.h) over loopback through the real HTTP
 * client: vectors, scalars, range queries, Prometheus errors, NaN, empty results,
 * malformed replies, timeouts, and the bearer token (sent, never logged). */
#include <math.h>
#include <stdlib.h>

#include "sw_test.h"
#include "sw_plugin_harness.h"

#define TOKEN "s3cr3t-t0ken-abcdef"
#define PROMQL "sum by (region) (rate(http_requests_total{job=\"web\",code=~\"2..\"}[1m]))"

struct fake_prom {
    int requests;
    char path[64];
    char query[512];
    char time[64];
    char start[64];
    char end[64];
    char step[64];
    char auth[128];
};

static void copy_param(const struct sw_http_request *req, const char *name, char *out, size_t cap)
{
    char *value = sw_http_request_query_param(req, name);
    snprintf(out, cap, "%s", value ? value : "");
    free(value);
}

static void reply_json(struct sw_http_exchange *ex, int status, const char *body)
{
    sw_http_respond(ex, status, "application/json", NULL, 0, body, strlen(body));
}

static void prom_handler(void *ud, struct sw_http_exchange *ex, const struct sw_http_request *req)
{
    struct fake_prom *fp = ud;
    fp->requests++;
    snprintf(fp->path, sizeof(fp->path), "%s", req->path);
    copy_param(req, "query", fp->query, sizeof(fp->query));
    copy_param(req, "time", fp->time, sizeof(fp->time));
    copy_param(req, "start", fp->start, sizeof(fp->start));
    copy_param(req, "end", fp->end, sizeof(fp->end));
    copy_param(req, "step", fp->step, sizeof(fp->step));
    const char *auth = sw_http_request_header(req, "authorization");
    snprintf(fp->auth, sizeof(fp->auth), "%s", auth ? auth : "");
    const char *q = fp->query;

    if (strcmp(req->path, "/api/v1/query_range") == 0) {
        reply_json(ex, 200,
                   "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
                   "{\"metric\":{\"region\":\"eu-west\"},\"values\":[[1700000000,\"1\"],"
                   "[1700000030,\"2\"],[1700000060,\"3.5\"]]},"
                   "{\"metric\":{\"region\":\"us-east\"},\"values\":[[1700000060,\"NaN\"]]},"
                   "{\"metric\":{\"region\":\"as-east\"},\"values\":[]}]}}");
    } else if (strcmp(req->path, "/api/v1/query") != 0) {
        reply_json(ex, 404, "404 page not found");
    } else if (strcmp(q, PROMQL) == 0 || strcmp(q, "rps") == 0) {
        reply_json(ex, 200,
                   "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
                   "{\"metric\":{\"__name__\":\"rps\",\"region\":\"eu-west\",\"job\":\"web\"},"
                   "\"value\":[1700000000.123,\"12.5\"]},"
                   "{\"metric\":{\"region\":\"as-east\"},\"value\":[1700000000.123,\"3\"]}]}}");
    } else if (strcmp(q, "scalar(42)") == 0) {
        reply_json(ex, 200, "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
                            "\"result\":[1700000000,\"42\"]}}");
    } else if (strcmp(q, "bad{") == 0) {
        reply_json(ex, 400, "{\"status\":\"error\",\"errorType\":\"bad_data\","
                            "\"error\":\"1:5: parse error: unexpected end of input\"}");
    } else if (strcmp(q, "overloaded") == 0) {
        reply_json(ex, 503, "{\"status\":\"error\",\"errorType\":\"timeout\","
                            "\"error\":\"query timed out in expression evaluation\"}");
    } else if (strcmp(q, "all_nan") == 0) {
        reply_json(ex, 200,
                   "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
                   "{\"metric\":{\"region\":\"a\"},\"value\":[1,\"NaN\"]},"
                   "{\"metric\":{\"region\":\"b\"},\"value\":[1,\"+Inf\"]}]}}");
    } else if (strcmp(q, "some_nan") == 0) {
        reply_json(ex, 200,
                   "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
                   "{\"metric\":{\"region\":\"a\"},\"value\":[1,\"NaN\"]},"
                   "{\"metric\":{\"region\":\"b\"},\"value\":[1,\"7\"]},"
                   "{\"metric\":{\"region\":\"c\"},\"value\":[1,\"-Inf\"]}]}}");
    } else if (strcmp(q, "empty") == 0) {
        reply_json(ex, 200, "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\","
                            "\"result\":[]}}");
    } else if (strcmp(q, "garbage") == 0) {
        reply_json(ex, 200, "{\"status\":\"success\",\"data\":{\"resultType\":");
    } else if (strcmp(q, "not_a_number") == 0) {
        reply_json(ex, 200,
                   "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
                   "{\"metric\":{},\"value\":[1,\"twelve\"]}]}}");
    } else if (strcmp(q, "string") == 0) {
        reply_json(ex, 200, "{\"status\":\"success\",\"data\":{\"resultType\":\"string\","
                            "\"result\":[1,\"hello\"]}}");
    } else if (strcmp(q, "gateway") == 0) {
        sw_http_respond(ex, 502, "text/html", NULL, 0, "<html>502 Bad Gateway</html>", 28);
    } else if (strcmp(q, "slow") == 0) {
        /* never answered: the plugin's timeout must fire */
    } else {
        reply_json(ex, 422, "{\"status\":\"error\",\"errorType\":\"execution\","
                            "\"error\":\"unknown test query\"}");
    }
}

struct result {
    bool done;
    int calls;
    int status;
    char msg[256];
    size_t count;
    char labels[4][256]; /* "name=value,name=value" per sample */
    double value[4];
};

static void on_samples(void *ud, int status, const struct swp_sample *samples, size_t count,
                       const struct swp_error *err)
{
    struct result *r = ud;
    r->calls++;
    r->done = true;
    r->status = status;
    r->count = count;
    snprintf(r->msg, sizeof(r->msg), "%s", err ? err->msg : "");
    for (size_t i = 0; i < count && i < 4; i++) {
        size_t used = 0;
        r->labels[i][0] = '\0';
        for (size_t l = 0; l < samples[i].label_count; l++)
            used += (size_t)snprintf(r->labels[i] + used, sizeof(r->labels[i]) - used, "%s%s=%s",
                                     l ? "," : "", samples[i].label_names[l],
                                     samples[i].label_values[l]);
        r->value[i] = samples[i].value;
    }
}

struct fixture {
    struct harness h;
    struct fake_prom fp;
    const struct swp_metrics_ops *ops;
};

static bool setup(struct fixture *fx, const char *extra_config)
{
    memset(&fx->fp, 0, sizeof(fx->fp));
    harness_start(&fx->h, prom_handler, &fx->fp);
    char config[512];
    snprintf(config, sizeof(config), "{\"base_url\": \"%s/\"%s%s}", fx->h.base,
             extra_config[0] ? ", " : "", extra_config);
    struct sw_error err = {0};
    if (harness_load(&fx->h, "metrics_prometheus", config, &err) == NULL) {
        fprintf(stderr, "    load: %s\n", err.msg);
        return false;
    }
    fx->ops = sw_plugin_metrics(fx->h.plugin);
    return fx->ops != NULL && fx->ops->query != NULL;
}

static struct result run_query(struct fixture *fx, const char *q)
{
    struct result r;
    memset(&r, 0, sizeof(r));
    int rc = fx->ops->query(sw_plugin_state(fx->h.plugin), q, on_samples, &r);
    if (rc < 0) {
        r.status = rc;
        return r;
    }
    harness_run_until(&fx->h, &r.done, 5000);
    return r;
}

SW_TEST(descriptor_and_config_map)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, ""));
    const struct swp_plugin *d = sw_plugin_desc(fx.h.plugin);
    SW_ASSERT_STREQ(d->name, "metrics_prometheus");
    SW_ASSERT_EQ(d->kinds, SWP_KIND_METRICS);
    SW_ASSERT_STREQ(d->config[0].name, "base_url");
    SW_ASSERT(d->config[0].required);
    SW_ASSERT_STREQ(d->config[1].name, "bearer_token_env");
    SW_ASSERT_EQ(d->config[1].type, SWP_CFG_SECRET_ENV);
    SW_ASSERT_STREQ(d->config[2].default_value, "\"10s\"");
    SW_ASSERT_STREQ(d->config[3].name, "range");
    SW_ASSERT_STREQ(d->config[3].default_value, "false");
    SW_ASSERT_EQ(harness_finish(&fx.h), 0);
}

SW_TEST(instant_vector_with_every_label)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, ""));
    int64_t now = sw_clock_now(fx.h.clock);
    struct result r = run_query(&fx, PROMQL);
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.count, 2);
    SW_ASSERT_STREQ(r.labels[0], "__name__=rps,region=eu-west,job=web");
    SW_ASSERT_NEAR(r.value[0], 12.5, 1e-12);
    SW_ASSERT_STREQ(r.labels[1], "region=as-east");
    SW_ASSERT_NEAR(r.value[1], 3, 1e-12);
    /* The PromQL arrived intact (percent-encoded on the way) at the instant endpoint, at
     * the host clock's time. */
    SW_ASSERT_STREQ(fx.fp.path, "/api/v1/query");
    SW_ASSERT_STREQ(fx.fp.query, PROMQL);
    SW_ASSERT(strchr(fx.fp.time, '.') != NULL);
    SW_ASSERT_NEAR(strtod(fx.fp.time, NULL), (double)now / 1000.0, 2.0);
    SW_ASSERT_STREQ(fx.fp.auth, "");
    SW_ASSERT_EQ(harness_finish(&fx.h), 0);
}

SW_TEST(scalar_becomes_one_unlabelled_sample)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, ""));
    struct result r = run_query(&fx, "scalar(42)");
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.count, 1);
    SW_ASSERT_STREQ(r.labels[0], "");
    SW_ASSERT_NEAR(r.value[0], 42, 1e-12);
    SW_ASSERT_EQ(harness_finish(&fx.h), 0);
}

SW_TEST(range_query_returns_last_value_of_each_series)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, "\"range\": true, \"range_window\": \"2m\", \"step\": \"15s\""));
    int64_t now = sw_clock_now(fx.h.clock);
    struct result r = run_query(&fx, "rps");
    SW_ASSERT_EQ(r.status, 0);
    /* us-east's last point is NaN (skipped), as-east has no points. */
    SW_ASSERT_EQ(r.count, 1);
    SW_ASSERT_STREQ(r.labels[0], "region=eu-west");
    SW_ASSERT_NEAR(r.value[0], 3.5, 1e-12);
    SW_ASSERT_STREQ(fx.fp.path, "/api/v1/query_range");
    SW_ASSERT_STREQ(fx.fp.step, "15.000");
    double start = strtod(fx.fp.start, NULL), end = strtod(fx.fp.end, NULL);
    SW_ASSERT_NEAR(end - start, 120.0, 1e-9);
    SW_ASSERT_NEAR(end, (double)now / 1000.0, 2.0);
    SW_ASSERT_EQ(harness_finish(&fx.h), 0);
}

SW_TEST(prometheus_error_status_is_an_error_with_its_message)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, ""));
    struct result r = run_query(&fx, "bad{");
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, SWP_EINVAL);
    SW_ASSERT_EQ(r.count, 0);
    SW_ASSERT_STREQ(r.msg, "prometheus: bad_data: 1:5: parse error: unexpected end of input "
                           "(HTTP 400)");
    r = run_query(&fx, "overloaded");
    SW_ASSERT_EQ(r.status, SWP_EIO);
    SW_ASSERT_CONTAINS(r.msg, "timeout: query timed out in expression evaluation (HTTP 503)");
    SW_ASSERT_EQ(harness_finish(&fx.h), 0);
}

SW_TEST(nan_values_are_skipped_and_all_nan_is_an_error)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, ""));
    struct result r = run_query(&fx, "some_nan");
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.count, 1);
    SW_ASSERT_STREQ(r.labels[0], "region=b");
    SW_ASSERT_NEAR(r.value[0], 7, 1e-12);
    r = run_query(&fx, "all_nan");
    SW_ASSERT(r.status < 0);
    SW_ASSERT_EQ(r.count, 0);
    SW_ASSERT_STREQ(r.msg, "prometheus: every value is NaN or infinite (2 samples)");
    SW_ASSERT_EQ(harness_finish(&fx.h), 0);
}

SW_TEST(empty_result_is_enoent_never_zero)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, ""));
    struct result r = run_query(&fx, "empty");
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, SWP_ENOENT);
    SW_ASSERT_EQ(r.count, 0);
    SW_ASSERT_STREQ(r.msg, "prometheus: query returned no samples");
    SW_ASSERT_EQ(harness_finish(&fx.h), 0);
}

SW_TEST(malformed_replies_are_errors)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, ""));
    struct result r = run_query(&fx, "garbage");
    SW_ASSERT_EQ(r.status, SWP_EIO);
    SW_ASSERT_STREQ(r.msg, "prometheus: malformed reply: not JSON");
    r = run_query(&fx, "not_a_number");
    SW_ASSERT_EQ(r.status, SWP_EIO);
    SW_ASSERT_CONTAINS(r.msg, "prometheus: malformed reply: a vector series");
    r = run_query(&fx, "string");
    SW_ASSERT_EQ(r.status, SWP_EINVAL);
    SW_ASSERT_CONTAINS(r.msg, "returned a string");
    r = run_query(&fx, "gateway");
    SW_ASSERT_EQ(r.status, SWP_EIO);
    SW_ASSERT_STREQ(r.msg, "prometheus: HTTP 502: <html>502 Bad Gateway</html>");
    SW_ASSERT_EQ(harness_finish(&fx.h), 0);
}

SW_TEST(timeout_and_unreachable_server)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, "\"timeout\": \"300ms\""));
    uint64_t started = uv_hrtime();
    struct result r = run_query(&fx, "slow");
    double waited_ms = (double)(uv_hrtime() - started) / 1e6;
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, SWP_ETIMEDOUT);
    SW_ASSERT_CONTAINS(r.msg, "within 300 ms");
    SW_ASSERT(waited_ms >= 250 && waited_ms < 3000);
    SW_ASSERT_EQ(harness_finish(&fx.h), 0);

    /* Nothing listens on the port any more: a transport error, not a hang. */
    struct harness h;
    harness_start(&h, NULL, NULL);
    struct sw_error err = {0};
    char config[128];
    snprintf(config, sizeof(config), "{\"base_url\": \"http://127.0.0.1:%d\"}", fx.h.port);
    SW_ASSERT(harness_load(&h, "metrics_prometheus", config, &err) != NULL);
    struct result r2 = {0};
    SW_ASSERT_EQ(sw_plugin_metrics(h.plugin)->query(sw_plugin_state(h.plugin), "rps", on_samples,
                                                    &r2),
                 0);
    harness_run_until(&h, &r2.done, 5000);
    SW_ASSERT_EQ(r2.calls, 1);
    SW_ASSERT_EQ(r2.status, SWP_EHTTP);
    SW_ASSERT_CONTAINS(r2.msg, "cannot reach http://127.0.0.1:");
    SW_ASSERT_EQ(harness_finish(&h), 0);
}

SW_TEST(bearer_token_is_sent_and_never_logged)
{
    setenv("PROM_TEST_TOKEN", TOKEN, 1);
    struct fixture fx;
    SW_ASSERT(setup(&fx, "\"bearer_token_env\": \"PROM_TEST_TOKEN\""));
    struct result r = run_query(&fx, "rps");
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_STREQ(fx.fp.auth, "Bearer " TOKEN);
    const char *failing[] = {"bad{", "empty", "garbage", "gateway", "all_nan"};
    for (size_t i = 0; i < SW_ARRAY_LEN(failing); i++) {
        r = run_query(&fx, failing[i]);
        SW_ASSERT(r.status < 0);
        SW_ASSERT(strstr(r.msg, TOKEN) == NULL);
        SW_ASSERT_STREQ(fx.fp.auth, "Bearer " TOKEN);
    }
    char *log = harness_log_text(&fx.h);
    SW_ASSERT_CONTAINS(log, "bearer token set");
    SW_ASSERT_CONTAINS(log, "query returned no samples"); /* debug lines were written */
    SW_ASSERT(strstr(log, TOKEN) == NULL);
    free(log);
    SW_ASSERT_EQ(harness_finish(&fx.h), 0);
    unsetenv("PROM_TEST_TOKEN");
}

SW_TEST(config_errors_name_the_key)
{
    struct harness h;
    harness_start(&h, NULL, NULL);
    struct sw_error err = {0};
    SW_ASSERT(harness_load(&h, "metrics_prometheus", "{}", &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "base_url");
    SW_ASSERT(harness_load(&h, "metrics_prometheus", "{\"base_url\": \"prometheus:9090\"}",
                           &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "base_url: expected an http:// or https:// URL");
    SW_ASSERT(harness_load(&h, "metrics_prometheus",
                           "{\"base_url\": \"http://p:9090\", \"range_window\": \"10s\", "
                           "\"step\": \"1m\"}",
                           &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "step <= range_window");
    unsetenv("PROM_MISSING_TOKEN");
    SW_ASSERT(harness_load(&h, "metrics_prometheus",
                           "{\"base_url\": \"http://p:9090\", \"bearer_token_env\": "
                           "\"PROM_MISSING_TOKEN\"}",
                           &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "PROM_MISSING_TOKEN is not set");
    SW_ASSERT_EQ(harness_finish(&h), 0);
}

SW_TEST(unload_with_a_query_in_flight_cancels_it_once)
{
    struct fixture fx;
    SW_ASSERT(setup(&fx, ""));
    struct result r = {0};
    SW_ASSERT_EQ(fx.ops->query(sw_plugin_state(fx.h.plugin), "slow", on_samples, &r), 0);
    harness_run_for(&fx.h, 50);
    SW_ASSERT_EQ(fx.fp.requests, 1);
    SW_ASSERT_EQ(r.calls, 0);
    sw_plugin_host_unload(fx.h.host, fx.h.plugin);
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, SWP_ECANCELED);
    SW_ASSERT_EQ(harness_finish(&fx.h), 0);
}

SW_TEST_MAIN()
