/* ha.c's etcd JSON gateway parsing against replies captured from etcd 3.4.23 (Debian 12's
 * etcd-server): omitted false/zero fields, int64 as strings past 2^53, error shapes of
 * unary calls and of the keepalive stream, trailing bytes; the unit record round trip;
 * and the "ha" config block's validation (base64 itself: test_base64.c). */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "ha.h"
#include "sw_test.h"

#define HDR "\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":" \
            "\"13668033151171901709\",\"revision\":\"5\",\"raft_term\":\"2\"}"

static int parse_grant(const char *body, long status, int64_t *id, int64_t *ttl, char *msg)
{
    return sw_ha_parse_grant(status, body, strlen(body), id, ttl, msg);
}

SW_TEST(grant_keeps_ids_past_2_53_exact)
{
    char msg[128];
    int64_t id = 0, ttl = 0;
    SW_ASSERT_EQ(parse_grant("{" HDR ",\"ID\":\"4111120159185312005\",\"TTL\":\"5\"}", 200, &id,
                             &ttl, msg), 0);
    /* 4111120159185312005 is not representable in a double (it would read ...2000). */
    SW_ASSERT(id == INT64_C(4111120159185312005));
    SW_ASSERT_EQ(ttl, 5);
}

SW_TEST(grant_errors)
{
    char msg[128];
    int64_t id = 0, ttl = 0;
    /* A bad request: 400 with the gateway's error object. */
    SW_ASSERT_EQ(parse_grant("{\"error\":\"invalid character 'a' looking for beginning of value\","
                             "\"message\":\"invalid character 'a' looking for beginning of value\","
                             "\"code\":3}", 400, &id, &ttl, msg), SW_EHTTP);
    SW_ASSERT_CONTAINS(msg, "invalid character");
    SW_ASSERT_CONTAINS(msg, "code 3");
    /* No ID (zero is omitted) is not a lease. */
    SW_ASSERT_EQ(parse_grant("{" HDR ",\"TTL\":\"5\"}", 200, &id, &ttl, msg), SW_EHTTP);
    /* A number too large for a double to hold exactly is refused, not rounded. */
    SW_ASSERT_EQ(parse_grant("{" HDR ",\"ID\":4111120159185312005,\"TTL\":5}", 200, &id, &ttl,
                             msg), SW_EHTTP);
    SW_ASSERT_EQ(parse_grant("{" HDR ",\"ID\":\"12x\",\"TTL\":\"5\"}", 200, &id, &ttl, msg),
                 SW_EHTTP);
    SW_ASSERT_EQ(parse_grant("<html>bad gateway</html>", 502, &id, &ttl, msg), SW_EHTTP);
    SW_ASSERT_EQ(parse_grant("", 200, &id, &ttl, msg), SW_EHTTP);
}

SW_TEST(keepalive_alive_expired_and_stream_error)
{
    char msg[128];
    int64_t ttl = -1;
    const char *alive = "{\"result\":{" HDR ",\"ID\":\"4111120159185312007\",\"TTL\":\"5\"}}";
    SW_ASSERT_EQ(sw_ha_parse_keepalive(200, alive, strlen(alive), &ttl, msg), 0);
    SW_ASSERT_EQ(ttl, 5);
    /* An unknown or expired lease: the TTL is omitted, i.e. 0. */
    const char *gone = "{\"result\":{" HDR ",\"ID\":\"12345\"}}";
    SW_ASSERT_EQ(sw_ha_parse_keepalive(200, gone, strlen(gone), &ttl, msg), 0);
    SW_ASSERT_EQ(ttl, 0);
    /* The stream's error shape. */
    const char *err = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
                      "\"etcdserver: no leader\",\"http_status\":\"Service Unavailable\"}}";
    SW_ASSERT_EQ(sw_ha_parse_keepalive(200, err, strlen(err), &ttl, msg), SW_EHTTP);
    SW_ASSERT_CONTAINS(msg, "no leader");
    SW_ASSERT_CONTAINS(msg, "code 14");
    /* Only the first message counts; what follows (chunk trailers) is ignored. */
    char two[512];
    snprintf(two, sizeof(two), "%s\n{\"result\":{\"TTL\":\"9\"}}", alive);
    SW_ASSERT_EQ(sw_ha_parse_keepalive(200, two, strlen(two), &ttl, msg), 0);
    SW_ASSERT_EQ(ttl, 5);
    const char *no_result = "{" HDR "}";
    SW_ASSERT_EQ(sw_ha_parse_keepalive(200, no_result, strlen(no_result), &ttl, msg), SW_EHTTP);
}

SW_TEST(range_with_and_without_keys)
{
    char msg[128];
    int64_t rev = 0;
    struct sw_ha_kvs kvs = {0};
    const char *one = "{" HDR ",\"kvs\":[{\"key\":\"L3N0ZXdhcmQveC9sZWFkZXI=\",\"create_revision\":"
                      "\"2\",\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"cjE=\",\"lease\":"
                      "\"4111120159185312007\"}],\"count\":\"1\"}";
    SW_ASSERT_EQ(sw_ha_parse_range(200, one, strlen(one), &kvs, &rev, msg), 0);
    SW_ASSERT_EQ(rev, 5);
    SW_ASSERT_EQ(kvs.count, 1);
    SW_ASSERT_STREQ(kvs.items[0].key, "/steward/x/leader");
    SW_ASSERT_STREQ(kvs.items[0].value, "r1");
    SW_ASSERT_EQ(kvs.items[0].create_revision, 2);
    SW_ASSERT(kvs.items[0].lease == INT64_C(4111120159185312007));
    sw_ha_kvs_clear(&kvs);
    /* No key: kvs and count are omitted. A key without a lease or value omits those. */
    const char *none = "{" HDR "}";
    SW_ASSERT_EQ(sw_ha_parse_range(200, none, strlen(none), &kvs, &rev, msg), 0);
    SW_ASSERT_EQ(kvs.count, 0);
    const char *bare = "{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"3\","
                       "\"mod_revision\":\"3\",\"version\":\"1\"}],\"count\":\"1\"}";
    SW_ASSERT_EQ(sw_ha_parse_range(200, bare, strlen(bare), &kvs, &rev, msg), 0);
    SW_ASSERT_STREQ(kvs.items[0].value, "");
    SW_ASSERT_EQ(kvs.items[0].lease, 0);
    sw_ha_kvs_clear(&kvs);
    const char *bad = "{" HDR ",\"kvs\":[{\"key\":\"not base64!\"}]}";
    SW_ASSERT_EQ(sw_ha_parse_range(200, bad, strlen(bad), &kvs, &rev, msg), SW_EHTTP);
    SW_ASSERT_EQ(kvs.count, 0);
    const char *no_header = "{\"kvs\":[]}";
    SW_ASSERT_EQ(sw_ha_parse_range(200, no_header, strlen(no_header), &kvs, &rev, msg), SW_EHTTP);
}

SW_TEST(txn_succeeded_failed_and_ranges)
{
    char msg[128];
    int64_t rev = 0;
    bool ok = false;
    struct sw_ha_kvs kvs = {0};
    const char *won = "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":"
                      "{\"revision\":\"2\"}}}]}";
    SW_ASSERT_EQ(sw_ha_parse_txn(200, won, strlen(won), &ok, &rev, &kvs, msg), 0);
    SW_ASSERT(ok);
    SW_ASSERT_EQ(rev, 5);
    SW_ASSERT_EQ(kvs.count, 0);
    /* A failed compare without a failure branch: only the header ("succeeded" omitted). */
    const char *lost = "{" HDR "}";
    ok = true;
    SW_ASSERT_EQ(sw_ha_parse_txn(200, lost, strlen(lost), &ok, &rev, &kvs, msg), 0);
    SW_ASSERT(!ok);
    /* A failed campaign with its failure range: who leads. */
    const char *other = "{" HDR ",\"responses\":[{\"response_range\":{\"header\":{\"revision\":"
                        "\"2\"},\"kvs\":[{\"key\":\"L3N0ZXdhcmQveC9sZWFkZXI=\",\"create_revision\":"
                        "\"2\",\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"cjE=\",\"lease\":"
                        "\"4111120159185312007\"}],\"count\":\"1\"}}]}";
    SW_ASSERT_EQ(sw_ha_parse_txn(200, other, strlen(other), &ok, &rev, &kvs, msg), 0);
    SW_ASSERT(!ok);
    SW_ASSERT_EQ(kvs.count, 1);
    SW_ASSERT_STREQ(kvs.items[0].value, "r1");
    sw_ha_kvs_clear(&kvs);
    /* A delete's response and an empty range next to each other. */
    const char *mixed = "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_delete_range\":"
                        "{\"header\":{\"revision\":\"4\"},\"deleted\":\"1\"}},{\"response_range\":"
                        "{\"header\":{\"revision\":\"4\"}}}]}";
    SW_ASSERT_EQ(sw_ha_parse_txn(200, mixed, strlen(mixed), &ok, &rev, &kvs, msg), 0);
    SW_ASSERT(ok);
    SW_ASSERT_EQ(kvs.count, 0);
    /* A put with an unknown lease: 404 with a trailer after the JSON. */
    const char *nolease = "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
                          "\"etcdserver: requested lease not found\",\"code\":5}"
                          "Grpc-Trailer-Content-Type: application/grpc\r\n";
    SW_ASSERT_EQ(sw_ha_parse_txn(404, nolease, strlen(nolease), &ok, &rev, &kvs, msg), SW_EHTTP);
    SW_ASSERT_CONTAINS(msg, "requested lease not found");
    const char *weird = "{" HDR ",\"succeeded\":\"yes\"}";
    SW_ASSERT_EQ(sw_ha_parse_txn(200, weird, strlen(weird), &ok, &rev, &kvs, msg), SW_EHTTP);
}

SW_TEST(unit_record_round_trip)
{
    struct sw_unit *u = sw_unit_new("e2etag-u7", "web", "eu-west");
    u->state = SW_UNIT_LEASED;
    u->market_id = strdup("1795310151697");
    u->provider = strdup("akash1provider");
    u->price_usd_hour = 0.048;
    u->ordered_ms = INT64_C(1795310151000);
    const char *uris[] = {"http://a.example:80"};
    sw_unit_set_uris(u, uris, 1);
    char *json = sw_ha_unit_record(u);
    struct sw_unit *back = sw_ha_unit_from_record(json, strlen(json));
    SW_ASSERT(back != NULL);
    SW_ASSERT_STREQ(back->key, "e2etag-u7");
    SW_ASSERT_STREQ(back->region, "eu-west");
    SW_ASSERT_EQ(back->state, SW_UNIT_LEASED);
    SW_ASSERT_STREQ(back->market_id, "1795310151697");
    SW_ASSERT_STREQ(back->provider, "akash1provider");
    SW_ASSERT_NEAR(back->price_usd_hour, 0.048, 1e-12);
    SW_ASSERT(back->ordered_ms == INT64_C(1795310151000));
    SW_ASSERT_EQ(back->ready_ms, 0);
    SW_ASSERT_EQ(back->uri_count, 1);
    free(json);
    sw_unit_free(u);
    sw_unit_free(back);
    const char *bad[] = {"{}", "[]", "{\"key\":\"k\",\"group\":\"g\",\"region\":\"r\",\"state\":"
                         "\"exploded\"}", "not json"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        SW_ASSERT(sw_ha_unit_from_record(bad[i], strlen(bad[i])) == NULL);
}

static const char *BASE = "{\"market\":\"market_sim\",\"groups\":{\"web\":{\"max\":3}},%s}";

static struct sw_config *parse_ha(const char *ha_json, struct sw_error *err)
{
    char text[1024];
    snprintf(text, sizeof(text), BASE, ha_json);
    return sw_config_parse(text, strlen(text), "/tmp/steward.json", err);
}

SW_TEST(config_defaults_and_errors)
{
    struct sw_error err = {0};
    struct sw_config *c = parse_ha("\"id\":\"prod\",\"ha\":{\"etcd\":[\"http://127.0.0.1:2379/\"]}",
                                   &err);
    SW_ASSERT(c != NULL);
    SW_ASSERT(c->ha != NULL);
    SW_ASSERT_EQ(c->ha->ttl_ms, 5000);
    SW_ASSERT_STREQ(c->ha->prefix, "/steward/prod");
    SW_ASSERT_STREQ(c->ha->endpoints[0], "http://127.0.0.1:2379");
    SW_ASSERT(c->ha->replica == NULL);
    sw_config_free(c);
    c = parse_ha("\"id\":\"prod\"", &err);
    SW_ASSERT(c != NULL && c->ha == NULL);
    sw_config_free(c);

    struct {
        const char *json, *want;
    } cases[] = {
        {"\"ha\":{\"etcd\":[]}", "/tmp/steward.json:ha.etcd: expected non-empty array of etcd URLs"},
        {"\"ha\":{}", "ha.etcd: expected non-empty array"},
        {"\"ha\":{\"etcd\":[\"127.0.0.1:2379\"]}", "ha.etcd[0]: expected URL like"},
        {"\"ha\":{\"etcd\":[\"http://e:2379\"],\"ttl\":\"1s\"}", "ha.ttl: expected duration of at "
                                                              "least \"2s\", got"},
        {"\"ha\":{\"etcd\":[\"http://e:2379\"],\"ttl\":\"2500ms\"}", "ha.ttl: expected whole "
                                                                   "number of seconds"},
        {"\"ha\":{\"etcd\":[\"http://e:2379\"],\"prefix\":\"steward\"}", "ha.prefix: expected key "
                                                                       "prefix starting with '/'"},
        {"\"ha\":{\"etcd\":[\"http://e:2379\"],\"replica\":\"a b\"}", "ha.replica: expected "
                                                                    "string matching"},
        {"\"ha\":{\"etcd\":[\"http://e:2379\"],\"leader\":true}", "ha"},
        {"\"ha\":[]", "ha: expected object, got array"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&err, 0, sizeof(err));
        c = parse_ha(cases[i].json, &err);
        if (c != NULL)
            SW_FAIL_AT("accepted %s", cases[i].json);
        SW_ASSERT_EQ(err.code, SW_ECONFIG);
        SW_ASSERT_CONTAINS(err.msg, cases[i].want);
    }
}

/* ---- sw_ha against a stand-in etcd ------------------------------------------------------
 * A blocking one-connection-at-a-time server on its own thread (so sw_ha_resign, which
 * blocks the loop thread, can reach it). It answers like etcd 3.4's gateway: no leader key,
 * a lease, every txn succeeds (after TXN_DELAY_US: the acknowledgement the barrier must
 * wait for), revoke. */

#define TXN_DELAY_US 150000

struct fake_etcd {
    int listen_fd;
    int port;
    pthread_t thread;
    atomic_int txns_answered; /* counted before the reply is written */
    atomic_int revokes;
    atomic_bool stop;
};

static void fake_reply(int fd, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     strlen(body));
    if (write(fd, head, (size_t)n) < 0 || write(fd, body, strlen(body)) < 0)
        return;
}

static void *fake_main(void *ud)
{
    struct fake_etcd *f = ud;
    while (!atomic_load(&f->stop)) {
        int fd = accept(f->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        char req[8192];
        size_t len = 0;
        const char *end = NULL;
        ssize_t got;
        /* Headers, then Content-Length bytes of body. */
        while (len < sizeof(req) - 1 && (got = read(fd, req + len, sizeof(req) - 1 - len)) > 0) {
            len += (size_t)got;
            req[len] = '\0';
            if ((end = strstr(req, "\r\n\r\n")) == NULL)
                continue;
            const char *cl = strstr(req, "Content-Length:");
            size_t want = cl != NULL ? strtoul(cl + 15, NULL, 10) : 0;
            if (len >= (size_t)(end + 4 - req) + want)
                break;
        }
        req[len] = '\0';
        const char *hdr = "\"header\":{\"revision\":\"3\"}";
        char body[256];
        if (strncmp(req, "POST /v3/kv/range", 17) == 0) {
            snprintf(body, sizeof(body), "{%s}", hdr);
        } else if (strncmp(req, "POST /v3/lease/grant", 20) == 0) {
            snprintf(body, sizeof(body), "{%s,\"ID\":\"7587862041617357317\",\"TTL\":\"5\"}", hdr);
        } else if (strncmp(req, "POST /v3/lease/keepalive", 24) == 0) {
            snprintf(body, sizeof(body),
                     "{\"result\":{%s,\"ID\":\"7587862041617357317\","
                     "\"TTL\":\"5\"}}",
                     hdr);
        } else if (strncmp(req, "POST /v3/lease/revoke", 21) == 0) {
            if (strstr(req, "7587862041617357317") != NULL)
                atomic_fetch_add(&f->revokes, 1);
            snprintf(body, sizeof(body), "{%s}", hdr);
        } else { /* txn: the campaign or a fenced write */
            usleep(TXN_DELAY_US);
            atomic_fetch_add(&f->txns_answered, 1);
            snprintf(body, sizeof(body), "{%s,\"succeeded\":true}", hdr);
        }
        fake_reply(fd, body);
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake_etcd *f)
{
    memset(f, 0, sizeof(*f));
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(addr);
    if (bind(f->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(f->listen_fd, 16) != 0 ||
        getsockname(f->listen_fd, (struct sockaddr *)&addr, &alen) != 0)
        abort();
    f->port = ntohs(addr.sin_port);
    pthread_create(&f->thread, NULL, fake_main, f);
}

static void fake_stop(struct fake_etcd *f)
{
    atomic_store(&f->stop, true);
    shutdown(f->listen_fd, SHUT_RDWR);
    close(f->listen_fd);
    /* accept() may not return on every kernel after close: poke it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)f->port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    (void)connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    close(fd);
    pthread_join(f->thread, NULL);
}

struct gate_run {
    struct sw_ha *ha;
    struct fake_etcd *etcd;
    uv_loop_t *loop;
    int barrier_rc;
    int barrier_status;
    int answered_at_barrier; /* txns the stand-in had answered when the barrier passed */
    bool elected;
    bool barrier_done;
};

static void gate_barrier_done(void *ud, int status)
{
    struct gate_run *g = ud;
    g->barrier_done = true;
    g->barrier_status = status;
    g->answered_at_barrier = atomic_load(&g->etcd->txns_answered);
    uv_stop(g->loop);
}

static void gate_elected(void *ud)
{
    struct gate_run *g = ud;
    g->elected = true;
    /* The campaign txn was answered (1); the plugin entry's txn is the one to wait for. */
    sw_ha_kv_put(g->ha, "market_akash", "pending", "[{\"key\":\"k-u1\"}]");
    g->barrier_rc = sw_ha_barrier(g->ha, gate_barrier_done, g);
}

static void gate_timeout(void *ud)
{
    uv_stop(((struct gate_run *)ud)->loop);
}

SW_TEST(barrier_waits_for_the_write_ack_and_resign_revokes)
{
    struct fake_etcd etcd;
    fake_start(&etcd);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sw_clock *clock = sw_clock_live_new(&loop, 1);
    char endpoint[64], dead[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", etcd.port);
    snprintf(dead, sizeof(dead), "http://127.0.0.1:1"); /* tried first, refused */
    char *endpoints[] = {dead, endpoint};
    struct sw_ha_config config = {.endpoints = endpoints,
                                  .endpoint_count = 2,
                                  .ttl_ms = 5000,
                                  .prefix = "/steward/t",
                                  .replica = "r1"};
    struct gate_run g = {.etcd = &etcd, .loop = &loop, .barrier_rc = -100};
    struct sw_ha_opts opts = {
        .config = &config, .clock = clock, .loop = &loop, .on_elected = gate_elected, .ud = &g};
    struct sw_error err = {0};
    g.ha = sw_ha_new(&opts, &err);
    SW_ASSERT(g.ha != NULL);
    /* Not leading: nothing outstanding, nothing to revoke (and nothing sent). */
    SW_ASSERT_EQ(sw_ha_barrier(g.ha, gate_barrier_done, &g), 1);
    SW_ASSERT_EQ(sw_ha_resign(g.ha), 0);
    SW_ASSERT_EQ(atomic_load(&etcd.revokes), 0);

    sw_ha_start(g.ha);
    uint64_t guard = sw_clock_timer_start(clock, 10000, gate_timeout, &g);
    uv_run(&loop, UV_RUN_DEFAULT);
    sw_clock_timer_stop(clock, guard);
    SW_ASSERT(g.elected);
    SW_ASSERT_EQ(g.barrier_rc, 0); /* a write was outstanding: held */
    SW_ASSERT(g.barrier_done);
    SW_ASSERT_EQ(g.barrier_status, 0);
    /* The campaign's txn and the entry's txn: acknowledged before the barrier let go. */
    SW_ASSERT_EQ(g.answered_at_barrier, 2);
    SW_ASSERT_EQ(sw_ha_writes_outstanding(g.ha), 0);
    SW_ASSERT_EQ(sw_ha_barrier(g.ha, gate_barrier_done, &g), 1);

    /* A clean stop: the lease is revoked (blocking, the loop is not running), once. */
    SW_ASSERT(sw_ha_is_leader(g.ha));
    SW_ASSERT_EQ(sw_ha_resign(g.ha), 0);
    SW_ASSERT_EQ(atomic_load(&etcd.revokes), 1);
    SW_ASSERT(!sw_ha_is_leader(g.ha));
    SW_ASSERT_EQ(sw_ha_unit_delete(g.ha, "k-u1", NULL, NULL), SW_EAGAIN);
    SW_ASSERT_EQ(sw_ha_resign(g.ha), 0);
    SW_ASSERT_EQ(atomic_load(&etcd.revokes), 1);

    sw_ha_free(g.ha);
    sw_clock_free(clock);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    fake_stop(&etcd);
}

SW_TEST_MAIN()
