/* test_metrics_synthetic.c — plugins/metrics_synthetic driven through its ABI on a fake host.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sw_test.h"
#include "swp_fake_host.h"

#define DAY_MS INT64_C(86400000)
#define HOUR_MS INT64_C(3600000)
/* Midnight UTC of the fake epoch's day: phase 0. */
#define MIDNIGHT (FAKE_EPOCH_MS - FAKE_EPOCH_MS % DAY_MS)

#define REGIONS                                                                                    \
    "\"regions\": {\"eu-west\": {\"base\": 20, \"peak\": 400, \"peak_hour_utc\": 13},"             \
    " \"as-east\": {\"base\": 5, \"peak\": 105, \"peak_hour_utc\": 3}}"

static const struct swp_plugin *plugin(void)
{
    static const struct swp_plugin *loaded;
    if (loaded == NULL)
        loaded = fake_load_plugin("metrics_synthetic");
    return loaded;
}

struct result {
    int calls;
    int status;
    char msg[256];
    size_t count;
    char label_name[4][32];
    char region[4][32];
    size_t label_count[4];
    double value[4];
};

static void on_samples(void *ud, int status, const struct swp_sample *samples, size_t count,
                       const struct swp_error *err)
{
    struct result *r = ud;
    r->calls++;
    r->status = status;
    r->count = count;
    snprintf(r->msg, sizeof(r->msg), "%s", err ? err->msg : "");
    for (size_t i = 0; i < count && i < 4; i++) {
        r->label_count[i] = samples[i].label_count;
        snprintf(r->label_name[i], 32, "%s", samples[i].label_names[0]);
        snprintf(r->region[i], 32, "%s", samples[i].label_values[0]);
        r->value[i] = samples[i].value;
    }
}

static struct result query(struct fake_host *h, const char *q)
{
    struct result r;
    memset(&r, 0, sizeof(r));
    int rc = h->plugin->metrics->query(h->state, q, on_samples, &r);
    if (rc < 0)
        r.status = rc;
    return r;
}

static struct fake_host *start(const char *config, uint64_t seed)
{
    const struct swp_plugin *p = plugin();
    if (p == NULL)
        return NULL;
    struct fake_host *h = fake_host_new(p, seed);
    struct swp_error err;
    if (fake_configure(h, config) < 0 || fake_init(h, &err) < 0) {
        fprintf(stderr, "    init failed: %s\n", err.msg);
        fake_host_free(h);
        return NULL;
    }
    return h;
}

static double expected(double base, double peak, double peak_hour, double phase)
{
    double shape = (1 + cos(2 * M_PI * (phase - peak_hour / 24))) / 2;
    return base + (peak - base) * shape * shape;
}

SW_TEST(descriptor)
{
    const struct swp_plugin *p = plugin();
    SW_ASSERT(p != NULL);
    SW_ASSERT_STREQ(p->name, "metrics_synthetic");
    SW_ASSERT_EQ(p->kinds, SWP_KIND_METRICS);
    SW_ASSERT(p->metrics && p->metrics->query);
    SW_ASSERT(p->market == NULL);
    SW_ASSERT_EQ(p->config_count, 3);
    SW_ASSERT_STREQ(p->config[0].name, "regions");
    SW_ASSERT(p->config[0].required);
    SW_ASSERT_EQ(p->config[0].type, SWP_CFG_OBJECT);
    SW_ASSERT_STREQ(p->config[1].name, "period");
    SW_ASSERT_STREQ(p->config[1].default_value, "\"1d\"");
    SW_ASSERT_STREQ(p->config[2].name, "noise");
    SW_ASSERT_STREQ(p->config[2].default_value, "0.0");
}

SW_TEST(peak_at_peak_hour_base_at_opposite_phase)
{
    struct fake_host *h = start("{" REGIONS "}", 1);
    SW_ASSERT(h != NULL);
    h->now = MIDNIGHT + 13 * HOUR_MS;
    struct result r = query(h, "rps");
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.count, 2);
    SW_ASSERT_EQ(r.label_count[0], 1);
    SW_ASSERT_STREQ(r.label_name[0], "region");
    SW_ASSERT_STREQ(r.region[0], "eu-west");
    SW_ASSERT_STREQ(r.region[1], "as-east");
    SW_ASSERT_NEAR(r.value[0], 400, 1e-9);
    SW_ASSERT_NEAR(r.value[1], expected(5, 105, 3, 13.0 / 24), 1e-9);
    /* as-east peaks at 03:00: ten hours earlier, i.e. well down its curve by 13:00. */
    SW_ASSERT(r.value[1] < 20);

    h->now = MIDNIGHT + 1 * HOUR_MS; /* 13 + 12: the opposite phase */
    r = query(h, "rps");
    SW_ASSERT_NEAR(r.value[0], 20, 1e-9);

    h->now = MIDNIGHT + 19 * HOUR_MS; /* a quarter period away: shape 1/2, squared 1/4 */
    r = query(h, "rps");
    SW_ASSERT_NEAR(r.value[0], 20 + 380 * 0.25, 1e-9);

    h->now = MIDNIGHT + 3 * HOUR_MS + 5 * DAY_MS; /* any day: the curve repeats */
    r = query(h, "rps");
    SW_ASSERT_NEAR(r.value[1], 105, 1e-9);
    SW_ASSERT_NEAR(r.value[0], expected(20, 400, 13, 3.0 / 24), 1e-9);
    fake_host_free(h);
}

SW_TEST(compressed_period)
{
    struct fake_host *h = start("{\"period\": \"10m\", " REGIONS "}", 1);
    SW_ASSERT(h != NULL);
    int64_t period = 600000;
    int64_t start_of_period = FAKE_EPOCH_MS - FAKE_EPOCH_MS % period;
    h->now = start_of_period + period * 13 / 24;
    SW_ASSERT_NEAR(query(h, "rps").value[0], 400, 1e-6);
    h->now = start_of_period + period * 1 / 24;
    SW_ASSERT_NEAR(query(h, "rps").value[0], 20, 1e-6);
    h->now += 7 * period;
    SW_ASSERT_NEAR(query(h, "rps").value[0], 20, 1e-6);
    fake_host_free(h);
}

SW_TEST(unknown_query_is_einval)
{
    struct fake_host *h = start("{" REGIONS "}", 1);
    SW_ASSERT(h != NULL);
    struct result r = query(h, "latency_p99");
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, SWP_EINVAL);
    SW_ASSERT_EQ(r.count, 0);
    SW_ASSERT_STREQ(r.msg, "metrics_synthetic: unknown query 'latency_p99' (known: rps)");
    r = query(h, NULL);
    SW_ASSERT_EQ(r.calls, 0);
    SW_ASSERT_EQ(r.status, SWP_EINVAL);
    fake_host_free(h);
}

static void noisy_values(uint64_t seed, double out[6])
{
    struct fake_host *h = start("{\"noise\": 0.1, " REGIONS "}", seed);
    for (int i = 0; i < 3; i++) {
        h->now = MIDNIGHT + (13 + i) * HOUR_MS;
        struct result r = query(h, "rps");
        out[2 * i] = r.value[0];
        out[2 * i + 1] = r.value[1];
    }
    fake_host_free(h);
}

SW_TEST(noise_is_bounded_and_deterministic)
{
    double a[6], b[6], c[6];
    noisy_values(11, a);
    noisy_values(11, b);
    noisy_values(12, c);
    bool differs = false;
    for (int i = 0; i < 6; i++) {
        SW_ASSERT(a[i] == b[i]);
        differs |= a[i] != c[i];
    }
    SW_ASSERT(differs);
    for (int i = 0; i < 3; i++) {
        double clean = expected(20, 400, 13, (13.0 + i) / 24);
        SW_ASSERT(fabs(a[2 * i] - clean) <= 0.1 * clean + 1e-9);
        SW_ASSERT(a[2 * i] != clean);
    }
}

static int init_error(const char *config, char *msg, size_t len)
{
    struct fake_host *h = fake_host_new(plugin(), 1);
    struct swp_error err;
    int rc = fake_configure(h, config) < 0 ? -9999 : fake_init(h, &err);
    snprintf(msg, len, "%s", rc < 0 ? err.msg : "");
    fake_host_free(h);
    return rc;
}

SW_TEST(config_errors)
{
    SW_ASSERT(plugin() != NULL);
    char msg[256];
    SW_ASSERT_EQ(init_error("{}", msg, sizeof(msg)), SWP_ECONFIG);
    SW_ASSERT_CONTAINS(msg, "regions: expected an object");
    SW_ASSERT_EQ(init_error("{\"regions\": {\"eu-west\": {\"peak\": 3}}}", msg, sizeof(msg)),
                 SWP_ECONFIG);
    SW_ASSERT_STREQ(msg, "regions.eu-west.base: expected number");
    SW_ASSERT_EQ(init_error("{\"regions\": {\"eu-west\": {\"base\": 1, \"peak\": 3, "
                            "\"peak_hour_utc\": 25}}}",
                            msg, sizeof(msg)),
                 SWP_ECONFIG);
    SW_ASSERT_CONTAINS(msg, "peak_hour_utc: expected 0..24");
    SW_ASSERT_EQ(init_error("{\"period\": \"0s\", " REGIONS "}", msg, sizeof(msg)), SWP_ECONFIG);
    SW_ASSERT_CONTAINS(msg, "period");
    SW_ASSERT_EQ(init_error("{\"noise\": -1, " REGIONS "}", msg, sizeof(msg)), SWP_ECONFIG);
    SW_ASSERT_CONTAINS(msg, "noise");

    /* peak_hour_utc may be left out: noon. */
    struct fake_host *h = start("{\"regions\": {\"x\": {\"base\": 1, \"peak\": 9}}}", 1);
    SW_ASSERT(h != NULL);
    h->now = MIDNIGHT + 12 * HOUR_MS;
    SW_ASSERT_NEAR(query(h, "rps").value[0], 9, 1e-9);
    fake_host_free(h);
}

/* SW_TEST_MAIN's counters live across setjmp but are never changed between setjmp and
 * longjmp, so GCC's -Wclobbered (on with -Wextra when optimising) is a false positive. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wclobbered"
#endif
SW_TEST_MAIN()
