/* test_http_server.c — the HTTP/1.1 server against a blocking-socket client running a
 * scripted conversation in a thread while the loop runs in the test's thread. */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "http_server.h"
#include "mem.h"
#include "sw_test.h"

/* ---- server side ---------------------------------------------------------------------- */

struct deferred {
    uv_timer_t timer;
    struct sw_http_exchange *ex;
    struct fixture *fx;
};

struct fixture {
    uv_loop_t loop;
    /* Keeps every UV_RUN_ONCE short: in libuv 1.44 a callback fired from the timer phase
     * does not stop that iteration from then blocking in poll. */
    uv_timer_t tick;
    struct sw_http_server *server;
    int port;
    int requests;
    int deferred_answered;
    struct sw_http_exchange *held; /* never answered: left for server close */
};

static void deferred_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void deferred_fire(uv_timer_t *timer)
{
    struct deferred *d = timer->data;
    sw_http_respond(d->ex, 200, "text/plain", NULL, 0, "deferred", 8);
    d->fx->deferred_answered++;
    uv_close((uv_handle_t *)timer, deferred_closed);
}

static void handler(void *ud, struct sw_http_exchange *ex, const struct sw_http_request *req)
{
    struct fixture *fx = ud;
    fx->requests++;

    if (strcmp(req->path, "/hello") == 0) {
        sw_http_respond(ex, 200, "text/plain", NULL, 0, "hello", 5);
    } else if (strcmp(req->path, "/echo") == 0) {
        /* Header names arrive lowercased; lookup ignores case. */
        bool lower = true;
        for (size_t i = 0; i < req->header_count; i++)
            for (const char *c = req->header_names[i]; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    lower = false;
        const char *xt = sw_http_request_header(req, "X-TEST");
        char *body =
            sw_xasprintf("%s %s ?%s x-test=%s lower=%d len=%zu body=%s", req->method, req->path,
                         req->query, xt ? xt : "-", lower, req->body_len, req->body);
        const char *headers[] = {"X-Reply: yes", "Bad: a\r\nInjected: 1"};
        sw_http_respond(ex, 200, "text/plain", headers, 2, body, strlen(body));
        free(body);
    } else if (strcmp(req->path, "/defer") == 0) {
        struct deferred *d = sw_xcalloc(1, sizeof(*d));
        d->ex = ex;
        d->fx = fx;
        uv_timer_init(&fx->loop, &d->timer);
        d->timer.data = d;
        uv_timer_start(&d->timer, deferred_fire, 50, 0);
    } else if (strcmp(req->path, "/query") == 0) {
        char *q = sw_http_request_query_param(req, "q");
        sw_http_respond(ex, 200, "text/plain", NULL, 0, q ? q : "(none)", q ? strlen(q) : 6);
        free(q);
    } else if (strcmp(req->path, "/drop") == 0) {
        sw_http_exchange_drop(ex);
    } else if (strcmp(req->path, "/hold") == 0) {
        fx->held = ex;
    } else {
        sw_http_respond(ex, 404, "text/plain", NULL, 0, "not found", 9);
    }
}

static void on_tick(uv_timer_t *timer)
{
    (void)timer;
}

static void fixture_start(struct fixture *fx, const struct sw_http_server_opts *extra)
{
    memset(fx, 0, sizeof(*fx));
    uv_loop_init(&fx->loop);
    uv_timer_init(&fx->loop, &fx->tick);
    uv_timer_start(&fx->tick, on_tick, 5, 5);
    struct sw_http_server_opts opts = {.host = "127.0.0.1", .port = 0};
    if (extra != NULL) {
        opts = *extra;
        opts.host = "127.0.0.1";
    }
    struct sw_error err = {0};
    fx->server = sw_http_server_start(&fx->loop, &opts, handler, fx, &err);
    if (fx->server == NULL) {
        fprintf(stderr, "    server start failed: %s\n", err.msg);
        abort();
    }
    fx->port = sw_http_server_port(fx->server);
}

/* Close the server, let the loop release everything, and check nothing is left. */
static int fixture_finish(struct fixture *fx)
{
    sw_http_server_close(fx->server);
    uv_close((uv_handle_t *)&fx->tick, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    return uv_loop_close(&fx->loop);
}

/* ---- client side: a scripted blocking conversation ------------------------------------- */

enum step_kind {
    STEP_SEND,
    STEP_RESPONSE,
    STEP_HEAD_RESPONSE,
    STEP_EOF,
    STEP_SLEEP,
    STEP_CLOSE,
    STEP_SHUT_WR,
};

struct step {
    int kind;
    const char *data;
    size_t len; /* 0: strlen(data) */
    int ms;
};

struct response {
    int status;
    char headers[2048];
    char body[4096];
    size_t body_len;
    double after_ms; /* since the previous send */
};

struct script {
    int port;
    struct step steps[24];
    int step_count;
    struct response responses[8];
    int response_count;
    bool eof_seen;
    double eof_after_ms; /* since connect */
    char failure[256];
    bool send_failed;
    /* conversation plumbing */
    int fd;
    char pending[65536];
    size_t pending_len;
    uv_async_t async;
    atomic_int done;
};

static double ms_since(const struct timeval *start)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - start->tv_sec) * 1000.0 +
           (double)(now.tv_usec - start->tv_usec) / 1000.0;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool fill(struct script *sc)
{
    if (sc->pending_len >= sizeof(sc->pending))
        return false;
    ssize_t n =
        recv(sc->fd, sc->pending + sc->pending_len, sizeof(sc->pending) - sc->pending_len, 0);
    if (n <= 0)
        return false;
    sc->pending_len += (size_t)n;
    return true;
}

static void consume(struct script *sc, size_t n)
{
    memmove(sc->pending, sc->pending + n, sc->pending_len - n);
    sc->pending_len -= n;
}

/* One response; a reply to HEAD (head_only) announces a length but carries no body. */
static bool read_response_ex(struct script *sc, struct response *r, bool head_only)
{
    char *end;
    for (;;) {
        sc->pending[sc->pending_len < sizeof(sc->pending) ? sc->pending_len : 0] = '\0';
        end = strstr(sc->pending, "\r\n\r\n");
        if (end != NULL)
            break;
        if (!fill(sc))
            return false;
    }
    size_t head_len = (size_t)(end - sc->pending) + 4;
    if (sscanf(sc->pending, "HTTP/1.%*d %d", &r->status) != 1)
        return false;
    size_t copy = head_len < sizeof(r->headers) - 1 ? head_len : sizeof(r->headers) - 1;
    memcpy(r->headers, sc->pending, copy);
    r->headers[copy] = '\0';
    size_t body_len = 0;
    const char *cl = strcasestr(r->headers, "\r\nContent-Length:");
    if (cl != NULL)
        body_len = strtoul(cl + strlen("\r\nContent-Length:"), NULL, 10);
    consume(sc, head_len);
    r->body_len = body_len;
    if (head_only)
        body_len = 0;
    while (sc->pending_len < body_len)
        if (!fill(sc))
            return false;
    size_t keep = body_len < sizeof(r->body) - 1 ? body_len : sizeof(r->body) - 1;
    memcpy(r->body, sc->pending, keep);
    r->body[keep] = '\0';
    consume(sc, body_len);
    return true;
}

static bool read_response(struct script *sc, struct response *r)
{
    return read_response_ex(sc, r, false);
}

static void *script_thread(void *arg)
{
    struct script *sc = arg;
    struct timeval connected, last_send;
    sc->fd = connect_to(sc->port);
    gettimeofday(&connected, NULL);
    last_send = connected;
    if (sc->fd < 0) {
        snprintf(sc->failure, sizeof(sc->failure), "connect: %s", strerror(errno));
        goto out;
    }
    for (int i = 0; i < sc->step_count; i++) {
        struct step *st = &sc->steps[i];
        if (st->kind == STEP_SEND) {
            size_t len = st->len ? st->len : strlen(st->data);
            /* A failed send is recorded, not fatal: a later step says what was expected
             * (a peer that closed on us shows as EOF there). */
            if (send(sc->fd, st->data, len, MSG_NOSIGNAL) != (ssize_t)len)
                sc->send_failed = true;
            gettimeofday(&last_send, NULL);
        } else if (st->kind == STEP_RESPONSE || st->kind == STEP_HEAD_RESPONSE) {
            struct response *r = &sc->responses[sc->response_count];
            if (!read_response_ex(sc, r, st->kind == STEP_HEAD_RESPONSE)) {
                snprintf(sc->failure, sizeof(sc->failure), "step %d: no response", i);
                goto out;
            }
            r->after_ms = ms_since(&last_send);
            sc->response_count++;
        } else if (st->kind == STEP_EOF) {
            sc->pending_len = 0;
            while (fill(sc))
                sc->pending_len = 0;
            /* recv returned 0 (orderly close) or an error; a timeout is not an EOF. */
            char probe;
            ssize_t n = recv(sc->fd, &probe, 1, MSG_DONTWAIT);
            sc->eof_seen = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
            sc->eof_after_ms = ms_since(&connected);
        } else if (st->kind == STEP_SLEEP) {
            usleep((useconds_t)st->ms * 1000);
        } else if (st->kind == STEP_SHUT_WR) {
            shutdown(sc->fd, SHUT_WR);
        } else if (st->kind == STEP_CLOSE) {
            close(sc->fd);
            sc->fd = -1;
        }
    }
out:
    if (sc->fd >= 0)
        close(sc->fd);
    atomic_store(&sc->done, 1);
    uv_async_send(&sc->async);
    return NULL;
}

static void on_async(uv_async_t *async)
{
    (void)async;
}

/* Run the script against the fixture's server until the client thread finishes. */
static void run_script(struct fixture *fx, struct script *sc)
{
    pthread_t thread;
    sc->port = fx->port;
    atomic_store(&sc->done, 0);
    uv_async_init(&fx->loop, &sc->async, on_async);
    pthread_create(&thread, NULL, script_thread, sc);
    while (!atomic_load(&sc->done))
        uv_run(&fx->loop, UV_RUN_ONCE);
    pthread_join(thread, NULL);
    uv_close((uv_handle_t *)&sc->async, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

#define SEND(s) ((struct step){STEP_SEND, (s), 0, 0})
#define SEND_N(s, n) ((struct step){STEP_SEND, (s), (n), 0})
#define RESPONSE() ((struct step){STEP_RESPONSE, NULL, 0, 0})
#define HEAD_RESPONSE() ((struct step){STEP_HEAD_RESPONSE, NULL, 0, 0})
#define EXPECT_EOF() ((struct step){STEP_EOF, NULL, 0, 0})
#define SLEEP(ms) ((struct step){STEP_SLEEP, NULL, 0, (ms)})
#define CLOSE() ((struct step){STEP_CLOSE, NULL, 0, 0})
#define HALF_CLOSE() ((struct step){STEP_SHUT_WR, NULL, 0, 0})

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

/* ---- tests ---------------------------------------------------------------------------- */

SW_TEST(server_keep_alive_then_connection_close)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    SW_ASSERT(fx.port > 0);
    sc.steps[sc.step_count++] = SEND(GET("/hello"));
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = SEND(GET("/hello"));
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = SEND("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = EXPECT_EOF();
    run_script(&fx, &sc);

    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.response_count, 3);
    SW_ASSERT_EQ(fx.requests, 3);
    for (int i = 0; i < 3; i++) {
        SW_ASSERT_EQ(sc.responses[i].status, 200);
        SW_ASSERT_STREQ(sc.responses[i].body, "hello");
        SW_ASSERT_CONTAINS(sc.responses[i].headers, "Content-Length: 5\r\n");
        SW_ASSERT_CONTAINS(sc.responses[i].headers, "Content-Type: text/plain\r\n");
    }
    SW_ASSERT_CONTAINS(sc.responses[0].headers, "Connection: keep-alive");
    SW_ASSERT_CONTAINS(sc.responses[1].headers, "Connection: keep-alive");
    SW_ASSERT_CONTAINS(sc.responses[2].headers, "Connection: close");
    SW_ASSERT(sc.eof_seen);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_http10_closes_by_default)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    sc.steps[sc.step_count++] = SEND("GET /hello HTTP/1.0\r\n\r\n");
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = EXPECT_EOF();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.responses[0].status, 200);
    SW_ASSERT_CONTAINS(sc.responses[0].headers, "Connection: close");
    SW_ASSERT(sc.eof_seen);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_pipelined_requests_answered_in_order)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    /* The middle one is answered 50 ms late; the third must still come after it. */
    sc.steps[sc.step_count++] = SEND(GET("/echo?n=1") GET("/defer")
                                         GET("/echo?n=3") "POST /echo?n=4 HTTP/1.1\r\nHost: t\r\n"
                                                          "Content-Length: 4\r\n\r\nbody");
    for (int i = 0; i < 4; i++)
        sc.steps[sc.step_count++] = RESPONSE();
    run_script(&fx, &sc);

    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.response_count, 4);
    SW_ASSERT_CONTAINS(sc.responses[0].body, "GET /echo ?n=1");
    SW_ASSERT_STREQ(sc.responses[1].body, "deferred");
    SW_ASSERT_CONTAINS(sc.responses[2].body, "GET /echo ?n=3");
    SW_ASSERT_CONTAINS(sc.responses[3].body, "POST /echo ?n=4");
    SW_ASSERT_CONTAINS(sc.responses[3].body, "len=4 body=body");
    SW_ASSERT_EQ(fx.deferred_answered, 1);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

/* Thousands of pipelined requests sent at once, more than one read and more than the
 * socket buffers hold: answers written at once go back to the stash in a loop (not by
 * recursion), a full socket buffer falls back to a queued write that stops reading, and
 * every answer still leaves in request order. */

struct deep_pipeline {
    int count;
    const char *expect_fmt; /* the start of answer i's body */
    bool exact;             /* ... and all of it */
    int reader_delay_ms;
    int port;
    int fd;
    char *requests;
    size_t requests_len;
    int in_order;
    char failure[128];
    uv_async_t async;
    atomic_int done;
};

static void *deep_writer(void *arg)
{
    struct deep_pipeline *dp = arg;
    size_t off = 0;
    while (off < dp->requests_len) {
        ssize_t n = send(dp->fd, dp->requests + off, dp->requests_len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    return NULL;
}

/* Reads the answers into one large buffer and checks them in order. */
static void *deep_reader(void *arg)
{
    struct deep_pipeline *dp = arg;
    pthread_t writer;
    size_t cap = dp->requests_len * 2 + (size_t)dp->count * 1024, len = 0, at = 0;
    char *in = sw_xmalloc(cap + 1);
    dp->fd = connect_to(dp->port);
    if (dp->fd < 0) {
        snprintf(dp->failure, sizeof(dp->failure), "connect failed");
        goto out;
    }
    pthread_create(&writer, NULL, deep_writer, dp);
    if (dp->reader_delay_ms > 0)
        usleep((useconds_t)dp->reader_delay_ms * 1000); /* answers pile up meanwhile */
    while (dp->in_order < dp->count) {
        in[len] = '\0';
        char *head_end = strstr(in + at, "\r\n\r\n");
        const char *cl = head_end ? strcasestr(in + at, "\r\nContent-Length:") : NULL;
        size_t body_len = cl ? strtoul(cl + strlen("\r\nContent-Length:"), NULL, 10) : 0;
        if (head_end == NULL || (size_t)(head_end + 4 - in) + body_len > len) {
            ssize_t n = len < cap ? recv(dp->fd, in + len, cap - len, 0) : 0;
            if (n <= 0) {
                snprintf(dp->failure, sizeof(dp->failure), "response %d missing", dp->in_order);
                break;
            }
            len += (size_t)n;
            continue;
        }
        char want[64];
        snprintf(want, sizeof(want), dp->expect_fmt, dp->in_order);
        char *body = head_end + 4;
        char saved = body[body_len];
        body[body_len] = '\0';
        bool ok = strncmp(in + at, "HTTP/1.1 200", 12) == 0 &&
                  (dp->exact ? strcmp(body, want) == 0 : strncmp(body, want, strlen(want)) == 0);
        body[body_len] = saved;
        if (!ok) {
            snprintf(dp->failure, sizeof(dp->failure), "response %d out of order: %.40s",
                     dp->in_order, body);
            break;
        }
        at = (size_t)(body + body_len - in);
        dp->in_order++;
    }
    shutdown(dp->fd, SHUT_RDWR);
    pthread_join(writer, NULL);
    close(dp->fd);
out:
    free(in);
    atomic_store(&dp->done, 1);
    uv_async_send(&dp->async);
    return NULL;
}

static void run_deep_pipeline(struct fixture *fx, struct deep_pipeline *dp)
{
    dp->port = fx->port;
    uv_async_init(&fx->loop, &dp->async, on_async);
    pthread_t reader;
    pthread_create(&reader, NULL, deep_reader, dp);
    while (!atomic_load(&dp->done))
        uv_run(&fx->loop, UV_RUN_ONCE);
    pthread_join(reader, NULL);
    uv_close((uv_handle_t *)&dp->async, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

SW_TEST(server_deep_pipeline_answered_in_order)
{
    static struct fixture fx;
    static struct deep_pipeline dp;
    memset(&dp, 0, sizeof(dp));
    fixture_start(&fx, NULL);
    dp.count = 3000;
    dp.expect_fmt = "%d";
    dp.exact = true;
    size_t cap = (size_t)dp.count * 64;
    dp.requests = sw_xmalloc(cap);
    for (int i = 0; i < dp.count; i++)
        dp.requests_len += (size_t)snprintf(dp.requests + dp.requests_len, cap - dp.requests_len,
                                            "GET /query?q=%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
    run_deep_pipeline(&fx, &dp);
    free(dp.requests);
    SW_ASSERT_STREQ(dp.failure, "");
    SW_ASSERT_EQ(dp.in_order, dp.count);
    SW_ASSERT_EQ(fx.requests, dp.count);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

/* Answers larger than the socket buffers hold while the client is not reading yet: a
 * write the kernel takes only in part is finished by a queued write, reading stops
 * meanwhile, and the next request is served once the answer is out. */
SW_TEST(server_large_pipelined_answers_queue_in_order)
{
    static struct fixture fx;
    static struct deep_pipeline dp;
    memset(&dp, 0, sizeof(dp));
    fixture_start(&fx, NULL);
    dp.count = 40;
    dp.expect_fmt = "POST /echo ?n=%d ";
    dp.reader_delay_ms = 200;
    size_t body_len = 256 * 1024;
    char *body = sw_xmalloc(body_len + 1);
    memset(body, 'b', body_len);
    body[body_len] = '\0';
    size_t cap = (size_t)dp.count * (body_len + 128);
    dp.requests = sw_xmalloc(cap);
    for (int i = 0; i < dp.count; i++)
        dp.requests_len += (size_t)snprintf(dp.requests + dp.requests_len, cap - dp.requests_len,
                                            "POST /echo?n=%d HTTP/1.1\r\nHost: t\r\n"
                                            "Content-Length: %zu\r\n\r\n%s",
                                            i, body_len, body);
    free(body);
    run_deep_pipeline(&fx, &dp);
    free(dp.requests);
    SW_ASSERT_STREQ(dp.failure, "");
    SW_ASSERT_EQ(dp.in_order, dp.count);
    SW_ASSERT_EQ(fx.requests, dp.count);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_echo_headers_body_and_response_headers)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    sc.steps[sc.step_count++] =
        SEND("PUT /echo?a=b HTTP/1.1\r\nHost: t\r\nX-Test:  Mixed Case  \r\n"
             "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = SEND("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    sc.steps[sc.step_count++] = SEND(GET("/nowhere"));
    sc.steps[sc.step_count++] = HEAD_RESPONSE();
    sc.steps[sc.step_count++] = RESPONSE();
    run_script(&fx, &sc);

    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.response_count, 3);
    SW_ASSERT_STREQ(sc.responses[0].body,
                    "PUT /echo ?a=b x-test=Mixed Case lower=1 len=5 body=abcde");
    SW_ASSERT_CONTAINS(sc.responses[0].headers, "X-Reply: yes\r\n");
    SW_ASSERT(strstr(sc.responses[0].headers, "Injected") == NULL);
    /* HEAD: the would-be body's length, no body bytes (else the 404 would not parse). */
    SW_ASSERT_EQ(sc.responses[1].status, 200);
    SW_ASSERT_EQ(sc.responses[1].body_len, 5);
    SW_ASSERT_EQ(sc.responses[2].status, 404);
    SW_ASSERT_STREQ(sc.responses[2].body, "not found");
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_expect_continue)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    sc.steps[sc.step_count++] = SEND("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                                     "Expect: 100-continue\r\n\r\n");
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = SEND("xyz");
    sc.steps[sc.step_count++] = RESPONSE();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.responses[0].status, 100);
    SW_ASSERT_EQ(sc.responses[1].status, 200);
    SW_ASSERT_CONTAINS(sc.responses[1].body, "body=xyz");

    /* Too big for the limit: refused at once, no invitation to send the body. */
    memset(&sc, 0, sizeof(sc));
    sc.steps[sc.step_count++] = SEND("POST /echo HTTP/1.1\r\nHost: t\r\n"
                                     "Content-Length: 9999999\r\nExpect: 100-continue\r\n\r\n");
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = EXPECT_EOF();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.responses[0].status, 413);
    SW_ASSERT(sc.eof_seen);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_413_for_announced_big_body)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    static char chunk[8192];
    memset(chunk, 'z', sizeof(chunk));
    sc.steps[sc.step_count++] =
        SEND("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n");
    sc.steps[sc.step_count++] = SEND_N(chunk, sizeof(chunk));
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = EXPECT_EOF();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.responses[0].status, 413);
    SW_ASSERT_CONTAINS(sc.responses[0].headers, "Connection: close");
    SW_ASSERT(sc.eof_seen);
    SW_ASSERT_EQ(fx.requests, 0);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_refusal_reaches_a_half_closed_client)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    sc.steps[sc.step_count++] =
        SEND("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\nabc");
    sc.steps[sc.step_count++] = HALF_CLOSE();
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = EXPECT_EOF();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.responses[0].status, 413);
    SW_ASSERT(sc.eof_seen);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_413_for_chunked_body_over_limit)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    struct sw_http_server_opts opts = {.max_body_bytes = 1000};
    fixture_start(&fx, &opts);
    static char req[4096];
    int n = snprintf(req, sizeof(req),
                     "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "258\r\n%0600d\r\n258\r\n%0600d\r\n0\r\n\r\n",
                     0, 0);
    sc.steps[sc.step_count++] = SEND_N(req, (size_t)n);
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = EXPECT_EOF();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.responses[0].status, 413);
    SW_ASSERT(sc.eof_seen);
    SW_ASSERT_EQ(fx.requests, 0);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_431_for_huge_headers)
{
    static struct fixture fx;
    static struct script sc;
    static char req[24 * 1024];
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    int n = snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(req + n, 'a', 20000);
    n += 20000;
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n\r\n");
    sc.steps[sc.step_count++] = SEND_N(req, (size_t)n);
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = EXPECT_EOF();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.responses[0].status, 431);
    SW_ASSERT(sc.eof_seen);
    SW_ASSERT_EQ(fx.requests, 0);

    /* Many small headers add up the same way. */
    memset(&sc, 0, sizeof(sc));
    n = snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 2000; i++)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "X%d: v\r\n", i);
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    sc.steps[sc.step_count++] = SEND_N(req, (size_t)n);
    sc.steps[sc.step_count++] = RESPONSE();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.responses[0].status, 431);
    SW_ASSERT_EQ(fx.requests, 0);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_400_for_garbage)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    sc.steps[sc.step_count++] = SEND("BL\001AH nonsense\r\n\r\n");
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = EXPECT_EOF();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.responses[0].status, 400);
    SW_ASSERT(sc.eof_seen);

    /* A good request followed by garbage on the same connection: the first is still
     * answered, then the garbage is refused. */
    memset(&sc, 0, sizeof(sc));
    sc.steps[sc.step_count++] = SEND(GET("/hello") "GET / HTTP/9Z\r\n\r\n");
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = RESPONSE();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.responses[0].status, 200);
    SW_ASSERT_EQ(sc.responses[1].status, 400);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_idle_timeout_closes_silent_and_slow_clients)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    struct sw_http_server_opts opts = {.idle_timeout_ms = 150};
    fixture_start(&fx, &opts);
    sc.steps[sc.step_count++] = EXPECT_EOF();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT(sc.eof_seen);
    SW_ASSERT(sc.eof_after_ms >= 100);
    SW_ASSERT(sc.eof_after_ms < 3000);

    /* A client trickling a request byte by byte does not extend its time. */
    memset(&sc, 0, sizeof(sc));
    sc.steps[sc.step_count++] = SEND("GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 6; i++) {
        sc.steps[sc.step_count++] = SLEEP(100);
        sc.steps[sc.step_count++] = SEND("X");
    }
    sc.steps[sc.step_count++] = EXPECT_EOF();
    run_script(&fx, &sc);
    SW_ASSERT(sc.eof_seen);
    /* Closed at ~150 ms, mid-trickle, so later sends hit a reset connection; a timer reset
     * by every byte (one per 100 ms) would have kept it open until after the last one. */
    SW_ASSERT(sc.send_failed);
    SW_ASSERT_EQ(fx.requests, 0);

    /* Idle time between keep-alive requests counts too. */
    memset(&sc, 0, sizeof(sc));
    sc.steps[sc.step_count++] = SEND(GET("/hello"));
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = EXPECT_EOF();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.responses[0].status, 200);
    SW_ASSERT(sc.eof_seen);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_deferred_response)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    /* The idle timeout is shorter than the handler's delay: a request with the handler
     * is not idle. */
    struct sw_http_server_opts opts = {.idle_timeout_ms = 30};
    fixture_start(&fx, &opts);
    sc.steps[sc.step_count++] = SEND(GET("/defer"));
    sc.steps[sc.step_count++] = RESPONSE();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_EQ(sc.responses[0].status, 200);
    SW_ASSERT_STREQ(sc.responses[0].body, "deferred");
    SW_ASSERT(sc.responses[0].after_ms >= 45);
    SW_ASSERT_EQ(fx.deferred_answered, 1);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_answer_after_client_left)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    sc.steps[sc.step_count++] = SEND(GET("/defer"));
    sc.steps[sc.step_count++] = CLOSE();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    /* Let the handler answer into the dead connection, and the server notice. */
    uint64_t start = uv_hrtime();
    while (fx.deferred_answered == 0 && uv_hrtime() - start < 5000000000ull)
        uv_run(&fx.loop, UV_RUN_ONCE);
    SW_ASSERT_EQ(fx.deferred_answered, 1);
    uv_run(&fx.loop, UV_RUN_NOWAIT);

    /* The server still serves others afterwards. */
    memset(&sc, 0, sizeof(sc));
    sc.steps[sc.step_count++] = SEND(GET("/hello"));
    sc.steps[sc.step_count++] = RESPONSE();
    run_script(&fx, &sc);
    SW_ASSERT_EQ(sc.responses[0].status, 200);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_close_with_exchange_pending)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    sc.steps[sc.step_count++] = SEND(GET("/hold"));
    sc.steps[sc.step_count++] = EXPECT_EOF();
    /* The client waits for EOF, which only comes when the server closes; close from a
     * timer while the script runs. */
    pthread_t thread;
    sc.port = fx.port;
    uv_async_init(&fx.loop, &sc.async, on_async);
    pthread_create(&thread, NULL, script_thread, &sc);
    while (fx.held == NULL)
        uv_run(&fx.loop, UV_RUN_ONCE);
    /* Dropped without a response; freed by the server (LeakSanitizer checks). */
    sw_http_server_close(fx.server);
    while (!atomic_load(&sc.done))
        uv_run(&fx.loop, UV_RUN_ONCE);
    pthread_join(thread, NULL);
    uv_close((uv_handle_t *)&sc.async, NULL);
    uv_close((uv_handle_t *)&fx.tick, NULL);
    SW_ASSERT(sc.eof_seen);
    SW_ASSERT_EQ(sc.response_count, 0);
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    SW_ASSERT_EQ(uv_loop_close(&fx.loop), 0);
}

SW_TEST(server_drop_closes_without_answer)
{
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    sc.steps[sc.step_count++] = SEND(GET("/drop"));
    sc.steps[sc.step_count++] = EXPECT_EOF();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT(sc.eof_seen);
    SW_ASSERT_EQ(sc.response_count, 0);
    SW_ASSERT_EQ(fx.requests, 1);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

struct limit_run {
    int port;
    int statuses[3];
    bool third_closed;
    uv_async_t async;
    atomic_int done;
};

static void *limit_thread(void *arg)
{
    struct limit_run *lr = arg;
    static struct script a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    struct response r;
    const char *req = GET("/hello");

    a.fd = connect_to(lr->port);
    send(a.fd, req, strlen(req), MSG_NOSIGNAL);
    lr->statuses[0] = read_response(&a, &r) ? r.status : -1;
    b.fd = connect_to(lr->port);
    send(b.fd, req, strlen(req), MSG_NOSIGNAL);
    lr->statuses[1] = read_response(&b, &r) ? r.status : -1;
    /* The third is accepted by the kernel, then closed by the server at once. */
    int c = connect_to(lr->port);
    char byte;
    lr->third_closed = c >= 0 && recv(c, &byte, 1, 0) <= 0;
    if (c >= 0)
        close(c);
    /* The first two still work. */
    send(a.fd, req, strlen(req), MSG_NOSIGNAL);
    lr->statuses[2] = read_response(&a, &r) ? r.status : -1;
    close(a.fd);
    close(b.fd);
    atomic_store(&lr->done, 1);
    uv_async_send(&lr->async);
    return NULL;
}

SW_TEST(server_max_connections)
{
    static struct fixture fx;
    struct sw_http_server_opts opts = {.max_connections = 2};
    fixture_start(&fx, &opts);
    struct limit_run lr = {.port = fx.port};
    pthread_t thread;
    uv_async_init(&fx.loop, &lr.async, on_async);
    pthread_create(&thread, NULL, limit_thread, &lr);
    while (!atomic_load(&lr.done))
        uv_run(&fx.loop, UV_RUN_ONCE);
    pthread_join(thread, NULL);
    uv_close((uv_handle_t *)&lr.async, NULL);
    SW_ASSERT_EQ(lr.statuses[0], 200);
    SW_ASSERT_EQ(lr.statuses[1], 200);
    SW_ASSERT(lr.third_closed);
    SW_ASSERT_EQ(lr.statuses[2], 200);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(server_query_param_decoding)
{
    const char *names[] = {"content-type"};
    const char *values[] = {"text/plain"};
    struct sw_http_request req = {
        .method = "GET",
        .path = "/",
        .query = "a=1&b=hello%20world&c=x+y&d=%zz%4&e&f=%00&sp%61ce=ok&a=2&g=%2B%26%3D",
        .body = "",
        .header_names = names,
        .header_values = values,
        .header_count = 1,
    };
    char *v;
    SW_ASSERT_STREQ(v = sw_http_request_query_param(&req, "a"), "1");
    free(v);
    SW_ASSERT_STREQ(v = sw_http_request_query_param(&req, "b"), "hello world");
    free(v);
    SW_ASSERT_STREQ(v = sw_http_request_query_param(&req, "c"), "x y");
    free(v);
    SW_ASSERT_STREQ(v = sw_http_request_query_param(&req, "d"), "%zz%4");
    free(v);
    SW_ASSERT_STREQ(v = sw_http_request_query_param(&req, "e"), "");
    free(v);
    SW_ASSERT_STREQ(v = sw_http_request_query_param(&req, "f"), "%00");
    free(v);
    SW_ASSERT_STREQ(v = sw_http_request_query_param(&req, "space"), "ok");
    free(v);
    SW_ASSERT_STREQ(v = sw_http_request_query_param(&req, "g"), "+&=");
    free(v);
    SW_ASSERT(sw_http_request_query_param(&req, "missing") == NULL);
    SW_ASSERT(sw_http_request_query_param(&req, "") == NULL);
    SW_ASSERT_STREQ(sw_http_request_header(&req, "Content-Type"), "text/plain");
    SW_ASSERT(sw_http_request_header(&req, "content-length") == NULL);
    req.query = "";
    SW_ASSERT(sw_http_request_query_param(&req, "a") == NULL);

    /* Through a real request. */
    static struct fixture fx;
    static struct script sc;
    memset(&sc, 0, sizeof(sc));
    fixture_start(&fx, NULL);
    sc.steps[sc.step_count++] = SEND(GET("/query?x=1&q=a%20b%2Bc+d"));
    sc.steps[sc.step_count++] = RESPONSE();
    sc.steps[sc.step_count++] = SEND(GET("http://t/query?q=absolute"));
    sc.steps[sc.step_count++] = RESPONSE();
    run_script(&fx, &sc);
    SW_ASSERT_STREQ(sc.failure, "");
    SW_ASSERT_STREQ(sc.responses[0].body, "a b+c d");
    SW_ASSERT_STREQ(sc.responses[1].body, "absolute");
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

static void never_called(void *ud, struct sw_http_exchange *ex, const struct sw_http_request *r)
{
    abort();
}

SW_TEST(server_start_errors)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sw_error err = {0};
    struct sw_http_server_opts opts = {.host = NULL};
    SW_ASSERT(sw_http_server_start(&loop, &opts, never_called, NULL, &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_EINVAL);
    opts.host = "not-an-ip";
    SW_ASSERT(sw_http_server_start(&loop, &opts, never_called, NULL, &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_EINVAL);
    SW_ASSERT_CONTAINS(err.msg, "not-an-ip");

    opts.host = "127.0.0.1";
    struct sw_http_server *first = sw_http_server_start(&loop, &opts, never_called, NULL, &err);
    SW_ASSERT(first != NULL);
    opts.port = sw_http_server_port(first);
    SW_ASSERT(sw_http_server_start(&loop, &opts, never_called, NULL, &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_EEXIST);
    SW_ASSERT_CONTAINS(err.msg, "127.0.0.1");
    sw_http_server_close(first);
    uv_run(&loop, UV_RUN_DEFAULT);
    SW_ASSERT_EQ(uv_loop_close(&loop), 0);
}

SW_TEST_MAIN()
