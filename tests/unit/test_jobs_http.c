/* test_jobs_http.c — plugins/jobs_http driven through its ABI on a fake host whose HTTP
 * service is scripted by the test: each poll is held until the test answers it.
 */
#include <stdio.h>
#include <string.h>

#include "sw_test.h"
#include "swp_fake_host.h"

/* The one request the plugin has in flight (it never has more than one). */
struct fake_http {
    int calls;
    int cancels;
    bool refuse; /* http_request returns 0, as without a loop */
    bool pending;
    char url[256];
    char method[16];
    char headers[4][256];
    size_t header_count;
    uint32_t timeout_ms;
    size_t max_bytes;
    int64_t at;
    swp_http_cb cb;
    void *ud;
    uint64_t id;
};

static struct fake_http http;

static uint64_t scripted_request(const struct swp_host *table, const struct swp_http_req *req,
                                 swp_http_cb cb, void *ud)
{
    if (http.refuse)
        return 0;
    http.calls++;
    http.pending = true;
    snprintf(http.url, sizeof(http.url), "%s", req->url);
    snprintf(http.method, sizeof(http.method), "%s", req->method);
    http.header_count = req->header_count;
    for (size_t i = 0; i < req->header_count && i < 4; i++)
        snprintf(http.headers[i], sizeof(http.headers[i]), "%s", req->headers[i]);
    http.timeout_ms = req->timeout_ms;
    http.max_bytes = req->max_response_bytes;
    http.at = fake_of(table)->now - FAKE_EPOCH_MS;
    http.cb = cb;
    http.ud = ud;
    http.id = 1000 + (uint64_t)http.calls;
    return http.id;
}

static void scripted_cancel(const struct swp_host *table, uint64_t id)
{
    if (!http.pending || id != http.id)
        return;
    http.pending = false;
    http.cancels++;
    http.cb(http.ud, SWP_ECANCELED, NULL);
}

/* Answers the pending poll with an HTTP status and body (status < 0: transport error). */
static bool reply(int status, long http_status, const char *body)
{
    if (!http.pending)
        return false;
    http.pending = false;
    struct swp_http_resp resp = {
        .status = http_status,
        .body = body ? body : "",
        .body_len = body ? strlen(body) : 0,
    };
    http.cb(http.ud, status, status < 0 ? NULL : &resp);
    return true;
}

static const struct swp_plugin *plugin(void)
{
    static const struct swp_plugin *loaded;
    if (loaded == NULL)
        loaded = fake_load_plugin("jobs_http");
    return loaded;
}

static struct fake_host *start_err(const char *config, struct swp_error *err)
{
    memset(&http, 0, sizeof(http));
    const struct swp_plugin *p = plugin();
    if (p == NULL)
        return NULL;
    struct fake_host *h = fake_host_new(p, 1);
    h->table.http_request = scripted_request;
    h->table.http_cancel = scripted_cancel;
    if (fake_configure(h, config) < 0 || fake_init(h, err) < 0) {
        fake_host_free(h);
        return NULL;
    }
    return h;
}

static struct fake_host *start(const char *config)
{
    struct swp_error err;
    struct fake_host *h = start_err(config, &err);
    if (h == NULL)
        fprintf(stderr, "    init failed: %s\n", err.msg);
    return h;
}

static bool finish(struct fake_host *h)
{
    fake_destroy(h);
    bool clean = fake_timer_count(h) == 0 && !http.pending;
    fake_host_free(h);
    return clean;
}

struct sample_rec {
    char id[64];
    char state[16];
    char priority[16];
    size_t label_count;
    double value;
};

struct result {
    int calls;
    int status;
    char msg[256];
    size_t count;
    struct sample_rec s[8];
};

static void on_samples(void *ud, int status, const struct swp_sample *samples, size_t count,
                       const struct swp_error *err)
{
    struct result *r = ud;
    r->calls++;
    r->status = status;
    r->count = count;
    snprintf(r->msg, sizeof(r->msg), "%s", err ? err->msg : "");
    for (size_t i = 0; i < count && i < 8; i++) {
        struct sample_rec *s = &r->s[i];
        s->label_count = samples[i].label_count;
        for (size_t l = 0; l < samples[i].label_count; l++) {
            const char *name = samples[i].label_names[l];
            const char *value = samples[i].label_values[l];
            if (strcmp(name, "id") == 0)
                snprintf(s->id, sizeof(s->id), "%s", value);
            else if (strcmp(name, "state") == 0)
                snprintf(s->state, sizeof(s->state), "%s", value);
            else if (strcmp(name, "priority") == 0)
                snprintf(s->priority, sizeof(s->priority), "%s", value);
        }
        s->value = samples[i].value;
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

#define URL "{\"url\": \"http://127.0.0.1:9/jobs\""

/* ---- tests ---- */

SW_TEST(descriptor_and_defaults)
{
    const struct swp_plugin *p = plugin();
    SW_ASSERT(p != NULL);
    SW_ASSERT_STREQ(p->name, "jobs_http");
    SW_ASSERT_EQ(p->kinds, SWP_KIND_METRICS);
    SW_ASSERT(p->metrics != NULL && p->metrics->query != NULL);
    struct fake_host *h = start(URL "}");
    SW_ASSERT(h != NULL);
    /* The first poll goes out on the next turn, then every 5 s from its start. */
    SW_ASSERT_EQ(http.calls, 0);
    fake_advance(h, 0);
    SW_ASSERT_EQ(http.calls, 1);
    SW_ASSERT_STREQ(http.method, "GET");
    SW_ASSERT_STREQ(http.url, "http://127.0.0.1:9/jobs");
    SW_ASSERT_EQ(http.header_count, 1);
    SW_ASSERT_STREQ(http.headers[0], "Accept: application/json");
    SW_ASSERT_EQ(http.timeout_ms, 3000);
    SW_ASSERT_EQ(http.max_bytes, (size_t)4 << 20);
    SW_ASSERT(reply(0, 200, "{\"jobs\": []}"));
    fake_advance(h, 4999);
    SW_ASSERT_EQ(http.calls, 1);
    fake_advance(h, 1);
    SW_ASSERT_EQ(http.calls, 2);
    SW_ASSERT_EQ(http.at, 5000);
    SW_ASSERT(finish(h));
}

SW_TEST(default_shape_answers_three_queries)
{
    struct fake_host *h = start(URL ", \"default_gpus_per_worker\": 2}");
    SW_ASSERT(h != NULL);
    fake_advance(h, 0);
    SW_ASSERT(reply(0, 200,
                    "{\"jobs\": [{\"id\": \"train-a\", \"state\": \"running\", \"workers\": 4,"
                    " \"gpus_per_worker\": 8, \"progress\": 0.25},"
                    " {\"id\": 17, \"state\": \"queued\", \"workers\": 2, \"priority\": 5}]}"));
    struct result r = query(h, "jobs");
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.count, 2);
    SW_ASSERT_STREQ(r.s[0].id, "train-a");
    SW_ASSERT_STREQ(r.s[0].state, "running");
    SW_ASSERT_EQ(r.s[0].label_count, 2);
    SW_ASSERT_NEAR(r.s[0].value, 4, 1e-9);
    SW_ASSERT_STREQ(r.s[1].id, "17");
    SW_ASSERT_STREQ(r.s[1].state, "queued");
    SW_ASSERT_EQ(r.s[1].label_count, 3);
    SW_ASSERT_STREQ(r.s[1].priority, "5");
    SW_ASSERT_NEAR(r.s[1].value, 2, 1e-9);

    r = query(h, "jobs_gpus");
    SW_ASSERT_EQ(r.count, 2);
    SW_ASSERT_NEAR(r.s[0].value, 32, 1e-9);
    SW_ASSERT_NEAR(r.s[1].value, 4, 1e-9); /* no gpus_per_worker: the default 2 */

    r = query(h, "jobs_progress");
    SW_ASSERT_EQ(r.count, 1);
    SW_ASSERT_STREQ(r.s[0].id, "train-a");
    SW_ASSERT_NEAR(r.s[0].value, 0.25, 1e-9);

    r = query(h, "queue_depth");
    SW_ASSERT_EQ(r.status, SWP_EINVAL);
    SW_ASSERT_STREQ(r.msg, "jobs_http: unknown query 'queue_depth' (known: jobs, jobs_gpus, "
                           "jobs_progress)");
    SW_ASSERT(finish(h));
}

SW_TEST(events_on_every_state_change)
{
    struct fake_host *h = start(URL "}");
    SW_ASSERT(h != NULL);
    fake_advance(h, 0);
    /* First poll: the finished job is history and raises nothing. */
    SW_ASSERT(reply(0, 200,
                    "{\"jobs\": [{\"id\": \"a\", \"state\": \"running\", \"workers\": 4},"
                    " {\"id\": \"b\", \"state\": \"queued\", \"workers\": 2,"
                    "  \"gpus_per_worker\": 4},"
                    " {\"id\": \"old\", \"state\": \"done\", \"workers\": 8}]}"));
    SW_ASSERT_EQ(h->event_count, 2);
    SW_ASSERT_EQ(fake_count(h, "event job_started - new {\"id\":\"a\",\"state\":\"running\","
                               "\"workers\":4,\"gpus_per_worker\":1}"),
                 1);
    SW_ASSERT_EQ(fake_count(h, "event job_queued - new {\"id\":\"b\",\"state\":\"queued\","
                               "\"workers\":2,\"gpus_per_worker\":4}"),
                 1);
    SW_ASSERT_EQ(fake_count(h, "\"id\":\"old\""), 0);

    /* Same list again: nothing changed, nothing emitted. */
    fake_advance(h, 5000);
    SW_ASSERT(reply(0, 200,
                    "{\"jobs\": [{\"id\": \"a\", \"state\": \"running\", \"workers\": 4},"
                    " {\"id\": \"b\", \"state\": \"queued\", \"workers\": 2,"
                    "  \"gpus_per_worker\": 4},"
                    " {\"id\": \"old\", \"state\": \"done\", \"workers\": 8}]}"));
    SW_ASSERT_EQ(h->event_count, 2);

    /* a finished, b started, c appeared and failed between two polls. */
    fake_advance(h, 5000);
    SW_ASSERT(reply(0, 200,
                    "{\"jobs\": [{\"id\": \"a\", \"state\": \"done\", \"workers\": 4,"
                    "  \"progress\": 1},"
                    " {\"id\": \"b\", \"state\": \"running\", \"workers\": 2,"
                    "  \"gpus_per_worker\": 4},"
                    " {\"id\": \"c\", \"state\": \"failed\", \"workers\": 1}]}"));
    SW_ASSERT_EQ(h->event_count, 5);
    SW_ASSERT_EQ(fake_count(h, "event job_done - running {\"id\":\"a\",\"state\":\"done\","
                               "\"workers\":4,\"gpus_per_worker\":1,\"progress\":1}"),
                 1);
    SW_ASSERT_EQ(fake_count(h, "event job_started - queued {\"id\":\"b\""), 1);
    SW_ASSERT_EQ(fake_count(h, "event job_failed - new {\"id\":\"c\""), 1);
    SW_ASSERT_EQ(fake_count(h, "job a: running -> done (4 workers x 1 GPUs)"), 1);

    /* A job that vanishes raises nothing: the policy's idle timeout handles it. */
    fake_advance(h, 5000);
    SW_ASSERT(reply(0, 200, "{\"jobs\": []}"));
    SW_ASSERT_EQ(h->event_count, 5);
    SW_ASSERT_EQ(query(h, "jobs").count, 0);
    SW_ASSERT(finish(h));
}

SW_TEST(json_pointers_and_state_map_fit_another_master)
{
    struct fake_host *h =
        start(URL ", \"jobs_pointer\": \"/data/items\", \"id_pointer\": \"/meta/name\","
                  " \"state_pointer\": \"/status\", \"workers_pointer\": \"/spec/replicas\","
                  " \"gpus_pointer\": \"/spec/resources/nvidia.com~1gpu\","
                  " \"progress_pointer\": \"/stats/0/done\","
                  " \"state_map\": {\"PROVISIONING\": \"queued\", \"TRAINING\": \"running\"}}");
    SW_ASSERT(h != NULL);
    fake_advance(h, 0);
    SW_ASSERT(reply(0, 200,
                    "{\"data\": {\"items\": ["
                    " {\"meta\": {\"name\": \"bert\"}, \"status\": \"TRAINING\","
                    "  \"spec\": {\"replicas\": 3, \"resources\": {\"nvidia.com/gpu\": 8}},"
                    "  \"stats\": [{\"done\": 0.5}]},"
                    " {\"meta\": {\"name\": \"gpt\"}, \"status\": \"PROVISIONING\","
                    "  \"spec\": {\"replicas\": 2}},"
                    " {\"meta\": {\"name\": \"t5\"}, \"status\": \"Succeeded\","
                    "  \"spec\": {\"replicas\": 1}}]}}"));
    struct result r = query(h, "jobs_gpus");
    SW_ASSERT_EQ(r.count, 3);
    SW_ASSERT_STREQ(r.s[0].id, "bert");
    SW_ASSERT_STREQ(r.s[0].state, "running");
    SW_ASSERT_NEAR(r.s[0].value, 24, 1e-9);
    SW_ASSERT_STREQ(r.s[1].state, "queued");
    SW_ASSERT_NEAR(r.s[1].value, 2, 1e-9);
    SW_ASSERT_STREQ(r.s[2].state, "done"); /* a built-in synonym, case-insensitive */
    r = query(h, "jobs_progress");
    SW_ASSERT_EQ(r.count, 1);
    SW_ASSERT_NEAR(r.s[0].value, 0.5, 1e-9);
    SW_ASSERT(finish(h));

    /* A master that answers with a bare array. */
    h = start(URL ", \"jobs_pointer\": \"\"}");
    SW_ASSERT(h != NULL);
    fake_advance(h, 0);
    SW_ASSERT(reply(0, 200, "[{\"id\": \"x\", \"state\": \"running\", \"workers\": 1}]"));
    r = query(h, "jobs");
    SW_ASSERT_EQ(r.count, 1);
    SW_ASSERT_STREQ(r.s[0].id, "x");
    SW_ASSERT(finish(h));
}

SW_TEST(bad_entries_are_skipped_and_reported_once)
{
    struct fake_host *h = start(URL "}");
    SW_ASSERT(h != NULL);
    const char *body = "{\"jobs\": [{\"id\": \"ok\", \"state\": \"running\", \"workers\": 2},"
                       " {\"id\": \"weird\", \"state\": \"hibernating\", \"workers\": 2},"
                       " {\"id\": \"neg\", \"state\": \"running\", \"workers\": -1},"
                       " {\"state\": \"running\", \"workers\": 1},"
                       " {\"id\": \"ok\", \"state\": \"done\", \"workers\": 9}]}";
    fake_advance(h, 0);
    SW_ASSERT(reply(0, 200, body));
    struct result r = query(h, "jobs");
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.count, 1);
    SW_ASSERT_STREQ(r.s[0].id, "ok");
    SW_ASSERT_STREQ(r.s[0].state, "running"); /* the first of a duplicated id counts */
    SW_ASSERT_EQ(fake_count(h, "4 skipped: job weird: unknown state \"hibernating\" (map it "
                               "with state_map)"),
                 1);
    fake_advance(h, 5000);
    SW_ASSERT(reply(0, 200, body));
    SW_ASSERT_EQ(fake_count(h, "4 skipped"), 1);
    SW_ASSERT(finish(h));
}

SW_TEST(failures_keep_the_last_list_until_it_is_stale)
{
    struct fake_host *h = start(URL ", \"stale_after\": \"20s\"}");
    SW_ASSERT(h != NULL);
    struct result r = query(h, "jobs");
    SW_ASSERT_EQ(r.status, SWP_EAGAIN);
    SW_ASSERT_STREQ(r.msg, "no job list from http://127.0.0.1:9/jobs yet (first poll pending)");
    fake_advance(h, 0);
    SW_ASSERT(reply(SWP_EHTTP, 0, NULL));
    r = query(h, "jobs");
    SW_ASSERT_EQ(r.status, SWP_EAGAIN);
    SW_ASSERT_CONTAINS(r.msg, "(connection failed (-1007))");
    SW_ASSERT_EQ(fake_count(h, "poll of http://127.0.0.1:9/jobs failed (1 in a row)"), 1);

    fake_advance(h, 5000);
    SW_ASSERT(reply(0, 200, "{\"jobs\": [{\"id\": \"a\", \"state\": \"running\", \"workers\": 3}]}"));
    SW_ASSERT_EQ(fake_count(h, "answers again after 1 failed polls"), 1);
    /* Errors of every kind keep the last list... */
    fake_advance(h, 5000);
    SW_ASSERT(reply(0, 503, "busy"));
    fake_advance(h, 5000);
    SW_ASSERT(reply(0, 200, "<html>"));
    fake_advance(h, 5000);
    SW_ASSERT(reply(0, 200, "{\"jobs\": {\"a\": 1}}"));
    SW_ASSERT_EQ(fake_count(h, "jobs_pointer \"/jobs\" is object in the reply, expected an array"),
                 0); /* the third failure in a row is not repeated in the log */
    r = query(h, "jobs");
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.count, 1);
    SW_ASSERT_NEAR(r.s[0].value, 3, 1e-9);
    /* ...until the good one is older than stale_after (20 s; it came at 5 s). */
    fake_advance_to(h, 25000);
    SW_ASSERT(reply(SWP_ETIMEDOUT, 0, NULL));
    r = query(h, "jobs");
    SW_ASSERT_EQ(r.status, 0);
    fake_advance_to(h, 25001);
    r = query(h, "jobs");
    SW_ASSERT_EQ(r.status, SWP_ETIMEDOUT);
    SW_ASSERT_STREQ(r.msg, "job list from http://127.0.0.1:9/jobs is 20s old (last poll: timed "
                           "out (-110))");
    SW_ASSERT(finish(h));
}

SW_TEST(a_slow_master_skips_polls_instead_of_piling_them_up)
{
    struct fake_host *h = start(URL ", \"poll_interval\": \"1s\", \"timeout\": \"5s\"}");
    SW_ASSERT(h != NULL);
    fake_advance(h, 0);
    SW_ASSERT_EQ(http.calls, 1);
    fake_advance(h, 3500); /* unanswered: the polls at 1, 2 and 3 s are skipped */
    SW_ASSERT_EQ(http.calls, 1);
    SW_ASSERT(reply(0, 200, "{\"jobs\": []}"));
    fake_advance(h, 500);
    SW_ASSERT_EQ(http.calls, 2);
    SW_ASSERT_EQ(http.at, 4000);
    SW_ASSERT(finish(h)); /* destroy cancels the poll in flight */
    SW_ASSERT_EQ(http.cancels, 1);
}

SW_TEST(bearer_token_header)
{
    /* The fake host hands cfg_str the configured text as is; the real one resolves the
     * SECRET_ENV variable first. Either way the plugin sends what cfg_str returns. */
    struct fake_host *h = start(URL ", \"bearer_token_env\": \"t0k3n\"}");
    SW_ASSERT(h != NULL);
    fake_advance(h, 0);
    SW_ASSERT_EQ(http.header_count, 2);
    SW_ASSERT_STREQ(http.headers[1], "Authorization: Bearer t0k3n");
    SW_ASSERT_EQ(fake_count(h, "t0k3n"), 0); /* never logged */
    SW_ASSERT(finish(h));
}

SW_TEST(no_http_in_simulation_is_reported)
{
    memset(&http, 0, sizeof(http));
    struct fake_host *h = start(URL "}");
    SW_ASSERT(h != NULL);
    http.refuse = true;
    fake_advance(h, 0);
    struct result r = query(h, "jobs");
    SW_ASSERT_EQ(r.status, SWP_EAGAIN);
    SW_ASSERT_CONTAINS(r.msg, "the host refused the HTTP request");
    SW_ASSERT(finish(h));
}

/* steward simulate: the reply comes from the plugin's key-value space (reply_kv), where the
 * simulator's job model publishes it; everything after the reply is the live code. */
SW_TEST(reply_kv_reads_the_published_reply)
{
    memset(&http, 0, sizeof(http));
    struct fake_host *h = start("{\"reply_kv\": \"sim_master_reply\"}");
    SW_ASSERT(h != NULL);
    fake_advance(h, 0);
    struct result r = query(h, "jobs");
    SW_ASSERT_EQ(r.status, SWP_EAGAIN);
    SW_ASSERT_CONTAINS(r.msg, "no job list from kv:sim_master_reply yet (no reply published yet)");
    SW_ASSERT_EQ(h->table.kv_set(&h->table, "sim_master_reply",
                                 "{\"jobs\": [{\"id\": \"job-3\", \"state\": \"running\", "
                                 "\"workers\": 4, \"gpus_per_worker\": 2}]}"),
                 0);
    fake_advance(h, 5000);
    r = query(h, "jobs");
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.count, 1);
    SW_ASSERT_STREQ(r.s[0].id, "job-3");
    SW_ASSERT_STREQ(r.s[0].state, "running");
    SW_ASSERT_EQ(fake_count(h, "event job_started - new {\"id\":\"job-3\""), 1);
    SW_ASSERT_EQ(h->table.kv_set(&h->table, "sim_master_reply",
                                 "{\"jobs\": [{\"id\": \"job-3\", \"state\": \"done\", "
                                 "\"workers\": 4, \"gpus_per_worker\": 2}]}"),
                 0);
    fake_advance(h, 5000);
    SW_ASSERT_EQ(fake_count(h, "event job_done - running {\"id\":\"job-3\""), 1);
    SW_ASSERT_EQ(http.calls, 0); /* no HTTP at all */
    SW_ASSERT(finish(h));
    struct swp_error err;
    SW_ASSERT(start_err(URL ", \"reply_kv\": \"k\"}", &err) == NULL);
    SW_ASSERT_STREQ(err.msg, "reply_kv: set either url or reply_kv, not both");
}

SW_TEST(bad_configuration_is_refused)
{
    struct swp_error err;
    SW_ASSERT(start_err("{\"url\": \"ftp://x/jobs\"}", &err) == NULL);
    SW_ASSERT_EQ(err.code, SWP_ECONFIG);
    SW_ASSERT_STREQ(err.msg, "url: expected an http:// or https:// URL");
    SW_ASSERT(start_err(URL ", \"jobs_pointer\": \"jobs\"}", &err) == NULL);
    SW_ASSERT_STREQ(err.msg, "jobs_pointer: expected a JSON pointer (\"\" or \"/key/0/...\", ~0 "
                             "for '~' and ~1 for '/')");
    SW_ASSERT(start_err(URL ", \"id_pointer\": \"/a~2\"}", &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "id_pointer: expected a JSON pointer");
    SW_ASSERT(start_err(URL ", \"state_map\": {\"X\": \"sleeping\"}}", &err) == NULL);
    SW_ASSERT_STREQ(err.msg, "state_map.X: expected \"queued\", \"running\", \"done\" or "
                             "\"failed\"");
    SW_ASSERT(start_err(URL ", \"poll_interval\": \"10ms\"}", &err) == NULL);
    SW_ASSERT_STREQ(err.msg, "poll_interval: expected a duration >= 100ms");
    SW_ASSERT(start_err(URL ", \"default_gpus_per_worker\": -1}", &err) == NULL);
    SW_ASSERT_STREQ(err.msg, "default_gpus_per_worker: expected an integer 0..1024");
}

SW_TEST_MAIN()
