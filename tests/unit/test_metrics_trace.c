/* test_metrics_trace.c — plugins/metrics_trace driven through its ABI on a fake host: the
 * step function over time, origin and scale, sorted regions, and refused files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sw_test.h"
#include "swp_fake_host.h"

static char path[64];

static void cleanup(void)
{
    unlink(path);
}

static void write_trace(const char *text)
{
    if (path[0] == '\0') {
        snprintf(path, sizeof(path), "/tmp/sw_test_metrics_trace_XXXXXX");
        int fd = mkstemp(path);
        if (fd < 0)
            abort();
        close(fd);
        atexit(cleanup);
    }
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

struct result {
    int status;
    size_t count;
    char region[4][32];
    double value[4];
    char msg[256];
};

static void on_samples(void *ud, int status, const struct swp_sample *samples, size_t count,
                       const struct swp_error *err)
{
    struct result *r = ud;
    r->status = status;
    r->count = count;
    snprintf(r->msg, sizeof(r->msg), "%s", err ? err->msg : "");
    for (size_t i = 0; i < count && i < 4; i++) {
        snprintf(r->region[i], 32, "%s", samples[i].label_values[0]);
        r->value[i] = samples[i].value;
    }
}

static struct fake_host *start(const char *extra, struct swp_error *err)
{
    const struct swp_plugin *p = fake_load_plugin("metrics_trace");
    if (p == NULL)
        return NULL;
    struct fake_host *h = fake_host_new(p, 1);
    char config[256];
    snprintf(config, sizeof(config), "{\"file\": \"%s\"%s}", path, extra);
    if (fake_configure(h, config) < 0 || fake_init(h, err) < 0) {
        fake_host_free(h);
        return NULL;
    }
    return h;
}

static struct result query(struct fake_host *h, int64_t now_ms)
{
    struct result r;
    memset(&r, 0, sizeof(r));
    h->now = now_ms;
    int rc = h->plugin->metrics->query(h->state, "rps", on_samples, &r);
    if (rc < 0)
        r.status = rc;
    return r;
}

SW_TEST(step_function_with_origin_and_scale)
{
    write_trace("time_s,region,rps\n0,eu-west,100\n0,as-east,7\n60,eu-west,250\n");
    struct swp_error err = {0};
    struct fake_host *h = start(", \"origin\": 1000, \"scale\": 2", &err);
    SW_ASSERT(h != NULL);
    struct result r = query(h, 999000); /* before the origin: nothing yet */
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.count, 2);
    SW_ASSERT_STREQ(r.region[0], "as-east"); /* sorted by name */
    SW_ASSERT_NEAR(r.value[0], 0, 0);
    r = query(h, 1000000 + 59999);
    SW_ASSERT_NEAR(r.value[0], 14, 1e-12);
    SW_ASSERT_NEAR(r.value[1], 200, 1e-12);
    r = query(h, 1000000 + 60000);
    SW_ASSERT_NEAR(r.value[1], 500, 1e-12);
    r = query(h, 1000000 + 30000); /* back in time */
    SW_ASSERT_NEAR(r.value[1], 200, 1e-12);
    struct result bad;
    memset(&bad, 0, sizeof(bad));
    SW_ASSERT_EQ(h->plugin->metrics->query(h->state, "latency", on_samples, &bad), 0);
    SW_ASSERT_EQ(bad.status, SWP_EINVAL);
    SW_ASSERT_CONTAINS(bad.msg, "unknown query 'latency' (known: rps)");
    fake_host_free(h);
}

SW_TEST(refuses_malformed_files)
{
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"time_s,region,rps\n60,eu-west,1\n30,eu-west,1\n", ":3: time_s goes back"},
        {"time_s,region,rps\n0,eu-west,-1\n", ":2: expected time_s >= 0, a region and rps >= 0"},
        {"time_s,region,rps\n0,eu-west\n", ":2: expected 3 fields"},
        {"when,region,rps\n", ":1: expected the header time_s,region,rps"},
        {"time_s,region,rps\n", "no rows"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_trace(cases[i].text);
        struct swp_error err = {0};
        struct fake_host *h = start("", &err);
        SW_ASSERT(h == NULL);
        SW_ASSERT_CONTAINS(err.msg, cases[i].msg);
    }
}

SW_TEST_MAIN()
