/* test_http_client.c — the curl-on-libuv client against steward's own server (same loop),
 * a raw socket server for responses without Content-Length, and `openssl s_server` with
 * a self-signed certificate to prove TLS verification is on. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "http_client.h"
#include "http_server.h"
#include "mem.h"
#include "sw_test.h"

extern char **environ;

/* ---- fixture: server + client on one loop --------------------------------------------- */

struct slow_reply {
    uv_timer_t timer;
    struct sw_http_exchange *ex;
    struct slow_reply *next;
    bool fired;
};

struct fixture {
    uv_loop_t loop;
    /* Keeps every UV_RUN_ONCE short: in libuv 1.44 a callback fired from the timer phase
     * (curl's timer) does not stop that iteration from then blocking in poll. */
    uv_timer_t tick;
    struct sw_http_server *server;
    struct sw_http_client *client;
    int port;
    char base[64];
    struct slow_reply *slow;
    int requests;
};

static void slow_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void slow_fire(uv_timer_t *timer)
{
    struct slow_reply *s = timer->data;
    s->fired = true;
    sw_http_respond(s->ex, 200, "text/plain", NULL, 0, "slow", 4);
}

static char big_body[100000];

static void handler(void *ud, struct sw_http_exchange *ex, const struct sw_http_request *req)
{
    struct fixture *fx = ud;
    fx->requests++;
    if (strcmp(req->path, "/hello") == 0) {
        sw_http_respond(ex, 200, "text/plain", NULL, 0, "hello world", 11);
    } else if (strcmp(req->path, "/echo") == 0) {
        const char *key = sw_http_request_header(req, "x-api-key");
        const char *ct = sw_http_request_header(req, "content-type");
        char head[256];
        int n = snprintf(head, sizeof(head), "%s key=%s ct=%s len=%zu body=", req->method,
                         key ? key : "-", ct ? ct : "-", req->body_len);
        char *out = sw_xmalloc((size_t)n + req->body_len);
        memcpy(out, head, (size_t)n);
        memcpy(out + n, req->body, req->body_len);
        const char *headers[] = {"X-Echo: 1"};
        sw_http_respond(ex, 200, "application/octet-stream", headers, 1, out,
                        (size_t)n + req->body_len);
        free(out);
    } else if (strcmp(req->path, "/slow") == 0) {
        struct slow_reply *s = sw_xcalloc(1, sizeof(*s));
        s->ex = ex;
        s->next = fx->slow;
        fx->slow = s;
        uv_timer_init(&fx->loop, &s->timer);
        s->timer.data = s;
        uv_timer_start(&s->timer, slow_fire, 500, 0);
    } else if (strcmp(req->path, "/big") == 0) {
        sw_http_respond(ex, 200, "text/plain", NULL, 0, big_body, sizeof(big_body));
    } else {
        sw_http_respond(ex, 404, "text/plain", NULL, 0, "nope", 4);
    }
}

static void on_tick(uv_timer_t *timer)
{
    (void)timer;
}

static void fixture_start(struct fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    memset(big_body, 'b', sizeof(big_body));
    /* Requests to 127.0.0.1 must not be sent to a proxy from the environment. */
    unsetenv("http_proxy");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
    unsetenv("all_proxy");
    uv_loop_init(&fx->loop);
    uv_timer_init(&fx->loop, &fx->tick);
    uv_timer_start(&fx->tick, on_tick, 5, 5);
    struct sw_http_server_opts opts = {.host = "127.0.0.1", .port = 0};
    struct sw_error err = {0};
    fx->server = sw_http_server_start(&fx->loop, &opts, handler, fx, &err);
    if (fx->server == NULL) {
        fprintf(stderr, "    server: %s\n", err.msg);
        abort();
    }
    fx->port = sw_http_server_port(fx->server);
    snprintf(fx->base, sizeof(fx->base), "http://127.0.0.1:%d", fx->port);
    fx->client = sw_http_client_new(&fx->loop);
    if (fx->client == NULL)
        abort();
}

/* Close everything, let the loop release it, and report uv_loop_close. */
static int fixture_finish(struct fixture *fx)
{
    if (fx->client != NULL)
        sw_http_client_close(fx->client);
    sw_http_server_close(fx->server);
    uv_close((uv_handle_t *)&fx->tick, NULL);
    for (struct slow_reply *s = fx->slow, *next; s != NULL; s = next) {
        next = s->next;
        uv_timer_stop(&s->timer);
        uv_close((uv_handle_t *)&s->timer, slow_closed);
    }
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    return uv_loop_close(&fx->loop);
}

struct result {
    int calls;
    int status;
    long http_status;
    char *body;
    size_t body_len;
    char error[512];
    double connect_s, first_byte_s, total_s;
    bool c_string; /* resp->body is NUL-terminated at body_len */
};

static void result_clear(struct result *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static void on_result(void *ud, int status, const struct swp_http_resp *resp,
                      const char *error_text)
{
    struct result *r = ud;
    r->calls++;
    r->status = status;
    r->http_status = resp->status;
    free(r->body);
    r->body = sw_xstrndup(resp->body, resp->body_len);
    r->body_len = resp->body_len;
    r->c_string = strlen(resp->body) == resp->body_len;
    snprintf(r->error, sizeof(r->error), "%s", error_text ? error_text : "");
    r->connect_s = resp->connect_s;
    r->first_byte_s = resp->first_byte_s;
    r->total_s = resp->total_s;
}

/* Run the loop until r has its answer (or 10 s pass). */
static void wait_for(struct fixture *fx, struct result *r)
{
    uint64_t start = uv_hrtime();
    while (r->calls == 0 && uv_hrtime() - start < 10000000000ull)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

static uint64_t simple_request(struct fixture *fx, const char *method, const char *path,
                               struct result *r)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", fx->base, path);
    struct swp_http_req req = {.size = sizeof(req), .method = method, .url = url};
    return sw_http_client_request(fx->client, &req, on_result, r);
}

/* A port nothing listens on: bind an ephemeral one, then release it. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(fd, (struct sockaddr *)&addr, &len);
    close(fd);
    return ntohs(addr.sin_port);
}

/* ---- tests ---------------------------------------------------------------------------- */

SW_TEST(client_get_200_with_body)
{
    static struct fixture fx;
    struct result r = {0};
    fixture_start(&fx);
    uint64_t id = simple_request(&fx, "GET", "/hello", &r);
    SW_ASSERT(id > 0);
    /* Never completes inside the call. */
    SW_ASSERT_EQ(r.calls, 0);
    SW_ASSERT_EQ(sw_http_client_in_flight(fx.client), 1);
    wait_for(&fx, &r);
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.http_status, 200);
    SW_ASSERT_STREQ(r.body, "hello world");
    SW_ASSERT_EQ(r.body_len, 11);
    SW_ASSERT_STREQ(r.error, "");
    SW_ASSERT(r.total_s > 0);
    SW_ASSERT(r.connect_s > 0);
    SW_ASSERT(r.first_byte_s >= r.connect_s);
    SW_ASSERT(r.total_s >= r.first_byte_s);
    SW_ASSERT_EQ(sw_http_client_in_flight(fx.client), 0);

    /* A second request on the same client (reusing the kept-alive connection). */
    uint64_t id2 = simple_request(&fx, "GET", "/hello", &r);
    SW_ASSERT(id2 > id);
    r.calls = 0;
    wait_for(&fx, &r);
    SW_ASSERT_EQ(r.http_status, 200);
    result_clear(&r);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(client_post_echo_with_headers_and_binary_body)
{
    static struct fixture fx;
    struct result r = {0};
    fixture_start(&fx);
    char url[128];
    snprintf(url, sizeof(url), "%s/echo", fx.base);
    const char *headers[] = {"X-Api-Key: k-123", "Content-Type: application/x-test"};
    static const char body[] = {'a', '\0', 'b', '\n', 'c'};
    struct swp_http_req req = {.size = sizeof(req),
                               .method = "POST",
                               .url = url,
                               .headers = headers,
                               .header_count = 2,
                               .body = body,
                               .body_len = sizeof(body)};
    SW_ASSERT(sw_http_client_request(fx.client, &req, on_result, &r) > 0);
    wait_for(&fx, &r);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.http_status, 200);
    const char prefix[] = "POST key=k-123 ct=application/x-test len=5 body=";
    SW_ASSERT_EQ(r.body_len, strlen(prefix) + sizeof(body));
    SW_ASSERT(memcmp(r.body, prefix, strlen(prefix)) == 0);
    SW_ASSERT(memcmp(r.body + strlen(prefix), body, sizeof(body)) == 0);

    /* Other methods, with and without a body. */
    const char *methods[] = {"PUT", "PATCH", "DELETE", "GET"};
    for (size_t i = 0; i < 4; i++) {
        req.method = methods[i];
        req.body = i % 2 == 0 ? "xy" : NULL;
        req.body_len = i % 2 == 0 ? 2 : 0;
        r.calls = 0;
        SW_ASSERT(sw_http_client_request(fx.client, &req, on_result, &r) > 0);
        wait_for(&fx, &r);
        SW_ASSERT_EQ(r.http_status, 200);
        char want[128];
        snprintf(want, sizeof(want), "%s key=k-123 ct=application/x-test len=%zu body=%s",
                 methods[i], req.body_len, req.body ? req.body : "");
        SW_ASSERT_STREQ(r.body, want);
    }

    /* HEAD: status only. */
    r.calls = 0;
    SW_ASSERT(simple_request(&fx, "HEAD", "/hello", &r) > 0);
    wait_for(&fx, &r);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.http_status, 200);
    SW_ASSERT_EQ(r.body_len, 0);
    result_clear(&r);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

/* Finished easy handles are reused: nothing of one request (method, headers, body, timeout)
 * may leak into the next one made with the same handle. */
SW_TEST(client_reused_handles_carry_nothing_over)
{
    static struct fixture fx;
    struct result r = {0};
    fixture_start(&fx);
    char url[128];
    snprintf(url, sizeof(url), "%s/echo", fx.base);
    const char *headers[] = {"X-Api-Key: k-secret", "Content-Type: application/x-test"};
    for (int round = 0; round < 3; round++) {
        struct swp_http_req post = {.size = sizeof(post),
                                    .method = "POST",
                                    .url = url,
                                    .headers = headers,
                                    .header_count = 2,
                                    .body = "abc",
                                    .body_len = 3,
                                    .timeout_ms = 100};
        r.calls = 0;
        SW_ASSERT(sw_http_client_request(fx.client, &post, on_result, &r) > 0);
        wait_for(&fx, &r);
        SW_ASSERT_STREQ(r.body, "POST key=k-secret ct=application/x-test len=3 body=abc");
        struct swp_http_req get = {.size = sizeof(get), .url = url};
        r.calls = 0;
        SW_ASSERT(sw_http_client_request(fx.client, &get, on_result, &r) > 0);
        wait_for(&fx, &r);
        SW_ASSERT_EQ(r.http_status, 200);
        SW_ASSERT_STREQ(r.body, "GET key=- ct=- len=0 body=");
        /* A kept handle keeps its last method: a body-less DELETE after a POST must not
         * go out as a POST, nor with the POST's body; a PATCH then a HEAD likewise. */
        r.calls = 0;
        SW_ASSERT(sw_http_client_request(fx.client, &post, on_result, &r) > 0);
        wait_for(&fx, &r);
        struct swp_http_req del = {.size = sizeof(del), .method = "DELETE", .url = url};
        r.calls = 0;
        SW_ASSERT(sw_http_client_request(fx.client, &del, on_result, &r) > 0);
        wait_for(&fx, &r);
        SW_ASSERT_STREQ(r.body, "DELETE key=- ct=- len=0 body=");
        struct swp_http_req patch = post;
        patch.method = "PATCH";
        patch.header_count = 0;
        patch.body = "xy";
        patch.body_len = 2;
        r.calls = 0;
        SW_ASSERT(sw_http_client_request(fx.client, &patch, on_result, &r) > 0);
        wait_for(&fx, &r);
        SW_ASSERT_STREQ(r.body, "PATCH key=- ct=application/x-www-form-urlencoded len=2 body=xy");
        struct swp_http_req head = {.size = sizeof(head), .method = "HEAD", .url = url};
        r.calls = 0;
        SW_ASSERT(sw_http_client_request(fx.client, &head, on_result, &r) > 0);
        wait_for(&fx, &r);
        SW_ASSERT_EQ(r.http_status, 200);
        SW_ASSERT_EQ(r.body_len, 0);
        r.calls = 0;
        SW_ASSERT(sw_http_client_request(fx.client, &get, on_result, &r) > 0);
        wait_for(&fx, &r);
        SW_ASSERT_STREQ(r.body, "GET key=- ct=- len=0 body=");
    }
    /* The 100 ms timeout of the POSTs is not the GET's: /slow answers at 500 ms. */
    r.calls = 0;
    SW_ASSERT(simple_request(&fx, "GET", "/slow", &r) > 0);
    wait_for(&fx, &r);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_STREQ(r.body, "slow");
    result_clear(&r);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

/* Receive buffers go back with their handle and serve the next reply: a shorter or empty
 * reply must never show the tail of an earlier one. */
SW_TEST(client_reused_buffer_never_shows_an_earlier_reply)
{
    static struct fixture fx;
    struct result r = {0};
    fixture_start(&fx);
    for (int round = 0; round < 3; round++) {
        const char *paths[] = {"/big", "/hello", "/missing"};
        const char *bodies[] = {NULL, "hello world", "nope"};
        for (int i = 0; i < 3; i++) {
            r.calls = 0;
            SW_ASSERT(simple_request(&fx, "GET", paths[i], &r) > 0);
            wait_for(&fx, &r);
            SW_ASSERT(r.c_string);
            if (bodies[i] != NULL)
                SW_ASSERT_STREQ(r.body, bodies[i]);
            else
                SW_ASSERT_EQ(r.body_len, sizeof(big_body));
        }
        r.calls = 0;
        SW_ASSERT(simple_request(&fx, "HEAD", "/hello", &r) > 0);
        wait_for(&fx, &r);
        SW_ASSERT_EQ(r.http_status, 200);
        SW_ASSERT_EQ(r.body_len, 0);
        SW_ASSERT(r.c_string);
    }
    result_clear(&r);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(client_404_is_a_response)
{
    static struct fixture fx;
    struct result r = {0};
    fixture_start(&fx);
    simple_request(&fx, "GET", "/missing", &r);
    wait_for(&fx, &r);
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.http_status, 404);
    SW_ASSERT_STREQ(r.body, "nope");
    result_clear(&r);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(client_timeout)
{
    static struct fixture fx;
    struct result r = {0};
    fixture_start(&fx);
    char url[128];
    snprintf(url, sizeof(url), "%s/slow", fx.base);
    struct swp_http_req req = {.size = sizeof(req), .url = url, .timeout_ms = 100};
    uint64_t start = uv_hrtime();
    SW_ASSERT(sw_http_client_request(fx.client, &req, on_result, &r) > 0);
    wait_for(&fx, &r);
    double elapsed_ms = (double)(uv_hrtime() - start) / 1e6;
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, SW_ETIMEDOUT);
    SW_ASSERT_CONTAINS(r.error, "timed out");
    SW_ASSERT(elapsed_ms >= 90);
    SW_ASSERT(elapsed_ms < 450); /* the server would answer at 500 ms */
    SW_ASSERT_EQ(r.body_len, 0);
    result_clear(&r);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(client_body_cap_with_content_length)
{
    static struct fixture fx;
    struct result r = {0};
    fixture_start(&fx);
    char url[128];
    snprintf(url, sizeof(url), "%s/big", fx.base);
    struct swp_http_req req = {.size = sizeof(req), .url = url, .max_response_bytes = 10000};
    SW_ASSERT(sw_http_client_request(fx.client, &req, on_result, &r) > 0);
    wait_for(&fx, &r);
    SW_ASSERT_EQ(r.status, SW_ETOOBIG);
    SW_ASSERT_CONTAINS(r.error, "10000");
    SW_ASSERT_EQ(r.body_len, 0);

    /* Exactly at the cap is fine. */
    req.max_response_bytes = sizeof(big_body);
    r.calls = 0;
    SW_ASSERT(sw_http_client_request(fx.client, &req, on_result, &r) > 0);
    wait_for(&fx, &r);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.body_len, sizeof(big_body));
    SW_ASSERT_EQ(r.body[sizeof(big_body) - 1], 'b');
    result_clear(&r);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

/* A server that answers every request with a body delimited by closing the connection
 * (no Content-Length), so only the write callback can enforce the cap. */
struct raw_server {
    uv_tcp_t listener;
    int port;
    size_t payload_len;
    int connections;
};

struct raw_conn {
    uv_tcp_t tcp;
    struct raw_server *server;
    bool answered;
    char buf[4096];
};

static void raw_conn_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void raw_close(struct raw_conn *rc)
{
    if (!uv_is_closing((uv_handle_t *)&rc->tcp))
        uv_close((uv_handle_t *)&rc->tcp, raw_conn_closed);
}

struct raw_write {
    uv_write_t req;
    struct raw_conn *rc;
    char *data;
};

static void raw_written(uv_write_t *req, int status)
{
    struct raw_write *w = (struct raw_write *)req;
    struct raw_conn *rc = w->rc;
    free(w->data);
    free(w);
    raw_close(rc);
}

static void raw_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct raw_conn *rc = handle->data;
    *buf = uv_buf_init(rc->buf, sizeof(rc->buf));
}

static void raw_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct raw_conn *rc = stream->data;
    if (nread < 0) {
        raw_close(rc);
        return;
    }
    if (nread == 0 || rc->answered)
        return;
    rc->answered = true;
    static const char head[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    size_t total = sizeof(head) - 1 + rc->server->payload_len;
    char *data = sw_xmalloc(total);
    memcpy(data, head, sizeof(head) - 1);
    memset(data + sizeof(head) - 1, 'r', rc->server->payload_len);
    struct raw_write *w = sw_xcalloc(1, sizeof(*w));
    w->rc = rc;
    w->data = data;
    uv_buf_t b = uv_buf_init(data, (unsigned int)total);
    if (uv_write(&w->req, stream, &b, 1, raw_written) != 0) {
        free(data);
        free(w);
        raw_close(rc);
    }
}

static void raw_connection(uv_stream_t *listener, int status)
{
    struct raw_server *rs = listener->data;
    struct raw_conn *rc = sw_xcalloc(1, sizeof(*rc));
    rc->server = rs;
    uv_tcp_init(listener->loop, &rc->tcp);
    rc->tcp.data = rc;
    rs->connections++;
    if (status < 0 || uv_accept(listener, (uv_stream_t *)&rc->tcp) != 0) {
        raw_close(rc);
        return;
    }
    uv_read_start((uv_stream_t *)&rc->tcp, raw_alloc, raw_read);
}

SW_TEST(client_body_cap_without_content_length)
{
    static struct fixture fx;
    struct result r = {0};
    fixture_start(&fx);
    static struct raw_server rs;
    memset(&rs, 0, sizeof(rs));
    rs.payload_len = 300000;
    uv_tcp_init(&fx.loop, &rs.listener);
    rs.listener.data = &rs;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    SW_ASSERT_EQ(uv_tcp_bind(&rs.listener, (struct sockaddr *)&addr, 0), 0);
    SW_ASSERT_EQ(uv_listen((uv_stream_t *)&rs.listener, 16, raw_connection), 0);
    int len = sizeof(addr);
    uv_tcp_getsockname(&rs.listener, (struct sockaddr *)&addr, &len);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/stream", ntohs(addr.sin_port));

    struct swp_http_req req = {.size = sizeof(req), .url = url, .max_response_bytes = 10000};
    SW_ASSERT(sw_http_client_request(fx.client, &req, on_result, &r) > 0);
    wait_for(&fx, &r);
    SW_ASSERT_EQ(r.status, SW_ETOOBIG);
    SW_ASSERT_EQ(r.http_status, 200);

    /* Under the cap, the close-delimited body arrives whole. */
    rs.payload_len = 5000;
    r.calls = 0;
    SW_ASSERT(sw_http_client_request(fx.client, &req, on_result, &r) > 0);
    wait_for(&fx, &r);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.body_len, 5000);
    SW_ASSERT_EQ(rs.connections, 2);
    result_clear(&r);
    uv_close((uv_handle_t *)&rs.listener, NULL);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(client_cancel_is_synchronous)
{
    static struct fixture fx;
    struct result r = {0}, other = {0};
    fixture_start(&fx);
    uint64_t id = simple_request(&fx, "GET", "/slow", &r);
    uint64_t other_id = simple_request(&fx, "GET", "/hello", &other);
    SW_ASSERT(id > 0 && other_id > 0);
    SW_ASSERT_EQ(sw_http_client_in_flight(fx.client), 2);
    /* Let the slow one reach the server first. */
    while (fx.requests < 1)
        uv_run(&fx.loop, UV_RUN_ONCE);
    sw_http_client_cancel(fx.client, id);
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, SW_ECANCELED);
    SW_ASSERT_EQ(r.http_status, 0);
    SW_ASSERT_EQ(sw_http_client_in_flight(fx.client), 1);
    sw_http_client_cancel(fx.client, id);    /* already gone: ignored */
    sw_http_client_cancel(fx.client, 99999); /* unknown: ignored */
    SW_ASSERT_EQ(r.calls, 1);
    wait_for(&fx, &other);
    SW_ASSERT_EQ(other.http_status, 200);
    SW_ASSERT_EQ(r.calls, 1);
    result_clear(&r);
    result_clear(&other);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(client_connection_refused)
{
    static struct fixture fx;
    struct result r = {0};
    fixture_start(&fx);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", free_port());
    const char *headers[] = {"Authorization: Bearer very-secret-token"};
    struct swp_http_req req = {
        .size = sizeof(req), .url = url, .headers = headers, .header_count = 1};
    SW_ASSERT(sw_http_client_request(fx.client, &req, on_result, &r) > 0);
    wait_for(&fx, &r);
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, SW_EHTTP);
    SW_ASSERT_EQ(r.http_status, 0);
    SW_ASSERT(strlen(r.error) > 0);
    SW_ASSERT_CONTAINS(r.error, "onnect");
    SW_ASSERT(strstr(r.error, "very-secret-token") == NULL);
    result_clear(&r);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(client_200_concurrent_requests)
{
    static struct fixture fx;
    enum { N = 200 };
    static struct result results[N];
    memset(results, 0, sizeof(results));
    fixture_start(&fx);
    for (int i = 0; i < N; i++)
        SW_ASSERT(simple_request(&fx, "GET", i % 2 ? "/hello" : "/missing", &results[i]) > 0);
    SW_ASSERT_EQ(sw_http_client_in_flight(fx.client), N);
    uint64_t start = uv_hrtime();
    int done = 0;
    while (done < N && uv_hrtime() - start < 15000000000ull) {
        uv_run(&fx.loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++)
            done += results[i].calls;
    }
    SW_ASSERT_EQ(done, N);
    for (int i = 0; i < N; i++) {
        SW_ASSERT_EQ(results[i].calls, 1);
        SW_ASSERT_EQ(results[i].status, 0);
        SW_ASSERT_EQ(results[i].http_status, i % 2 ? 200 : 404);
        SW_ASSERT_STREQ(results[i].body, i % 2 ? "hello world" : "nope");
        result_clear(&results[i]);
    }
    SW_ASSERT_EQ(sw_http_client_in_flight(fx.client), 0);
    SW_ASSERT_EQ(fx.requests, N);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(client_rejects_bad_arguments)
{
    static struct fixture fx;
    struct result r = {0};
    fixture_start(&fx);
    char url[128];
    snprintf(url, sizeof(url), "%s/hello", fx.base);
    struct swp_http_req req = {.size = sizeof(req), .url = url};
    SW_ASSERT_EQ(sw_http_client_request(fx.client, NULL, on_result, &r), 0);
    SW_ASSERT_EQ(sw_http_client_request(fx.client, &req, NULL, &r), 0);
    req.url = NULL;
    SW_ASSERT_EQ(sw_http_client_request(fx.client, &req, on_result, &r), 0);
    req.url = url;
    req.method = "GET /evil HTTP/1.1\r\nX:";
    SW_ASSERT_EQ(sw_http_client_request(fx.client, &req, on_result, &r), 0);
    req.method = "";
    SW_ASSERT_EQ(sw_http_client_request(fx.client, &req, on_result, &r), 0);
    req.method = "GET";
    const char *smuggle[] = {"X-A: 1\r\nX-Injected: 1"};
    req.headers = smuggle;
    req.header_count = 1;
    SW_ASSERT_EQ(sw_http_client_request(fx.client, &req, on_result, &r), 0);
    const char *no_colon[] = {"NoColon"};
    req.headers = no_colon;
    SW_ASSERT_EQ(sw_http_client_request(fx.client, &req, on_result, &r), 0);
    req.headers = NULL;
    req.header_count = 0;
    req.body_len = 4; /* no body pointer */
    SW_ASSERT_EQ(sw_http_client_request(fx.client, &req, on_result, &r), 0);
    SW_ASSERT_EQ(sw_http_client_in_flight(fx.client), 0);
    SW_ASSERT_EQ(r.calls, 0);

    /* A malformed URL is accepted and fails through the callback. */
    req.body_len = 0;
    req.url = "htp:/nonsense";
    SW_ASSERT(sw_http_client_request(fx.client, &req, on_result, &r) > 0);
    wait_for(&fx, &r);
    SW_ASSERT_EQ(r.calls, 1);
    SW_ASSERT_EQ(r.status, SW_EHTTP);
    result_clear(&r);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

SW_TEST(client_close_cancels_in_flight)
{
    static struct fixture fx;
    struct result r[3] = {{0}};
    fixture_start(&fx);
    for (int i = 0; i < 3; i++)
        SW_ASSERT(simple_request(&fx, "GET", "/slow", &r[i]) > 0);
    while (fx.requests < 3)
        uv_run(&fx.loop, UV_RUN_ONCE);
    sw_http_client_close(fx.client);
    fx.client = NULL;
    for (int i = 0; i < 3; i++) {
        SW_ASSERT_EQ(r[i].calls, 1);
        SW_ASSERT_EQ(r[i].status, SW_ECANCELED);
        result_clear(&r[i]);
    }
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

struct chain {
    struct fixture *fx;
    struct result first;
    struct result second;
    struct result third;
    bool close_in_third;
};

static void chain_third(void *ud, int status, const struct swp_http_resp *resp, const char *err)
{
    struct chain *ch = ud;
    on_result(&ch->third, status, resp, err);
}

static void chain_second(void *ud, int status, const struct swp_http_resp *resp, const char *err)
{
    struct chain *ch = ud;
    on_result(&ch->second, status, resp, err);
    /* Start one more, then close the client from inside this callback: the new request
     * is canceled at once and the client finishes its teardown after the drain. */
    char url[128];
    snprintf(url, sizeof(url), "%s/hello", ch->fx->base);
    struct swp_http_req req = {.size = sizeof(req), .url = url};
    SW_ASSERT(sw_http_client_request(ch->fx->client, &req, chain_third, ch) > 0);
    sw_http_client_close(ch->fx->client);
    ch->fx->client = NULL;
}

static void chain_first(void *ud, int status, const struct swp_http_resp *resp, const char *err)
{
    struct chain *ch = ud;
    on_result(&ch->first, status, resp, err);
    char url[128];
    snprintf(url, sizeof(url), "%s/hello", ch->fx->base);
    struct swp_http_req req = {.size = sizeof(req), .url = url};
    sw_http_client_request(ch->fx->client, &req, chain_second, ch);
}

SW_TEST(client_callbacks_may_request_and_close)
{
    static struct fixture fx;
    static struct chain ch;
    memset(&ch, 0, sizeof(ch));
    fixture_start(&fx);
    ch.fx = &fx;
    char url[128];
    snprintf(url, sizeof(url), "%s/hello", fx.base);
    struct swp_http_req req = {.size = sizeof(req), .url = url};
    SW_ASSERT(sw_http_client_request(fx.client, &req, chain_first, &ch) > 0);
    wait_for(&fx, &ch.third);
    SW_ASSERT_EQ(ch.first.http_status, 200);
    SW_ASSERT_EQ(ch.second.http_status, 200);
    SW_ASSERT_EQ(ch.third.calls, 1);
    SW_ASSERT_EQ(ch.third.status, SW_ECANCELED);
    SW_ASSERT(fx.client == NULL);
    result_clear(&ch.first);
    result_clear(&ch.second);
    result_clear(&ch.third);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

/* ---- TLS ------------------------------------------------------------------------------ */

static bool have_openssl(void)
{
    return system("command -v openssl >/dev/null 2>&1") == 0;
}

static pid_t spawn_s_server(const char *dir, int port)
{
    char cert[512], key[512], accept_arg[64];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(accept_arg, sizeof(accept_arg), "127.0.0.1:%d", port);
    char *argv[] = {"openssl", "s_server", "-accept", accept_arg, "-cert", cert,
                    "-key",    key,        "-www",    "-quiet",   NULL};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    if (posix_spawnp(&pid, "openssl", &actions, NULL, argv, environ) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&actions);
    return pid;
}

static bool wait_listening(int port)
{
    for (int i = 0; i < 100; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
        int rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
        close(fd);
        if (rc == 0)
            return true;
        usleep(50000);
    }
    return false;
}

SW_TEST(client_https_verifies_certificates)
{
    if (!have_openssl()) {
        printf("    SKIP client_https_verifies_certificates: openssl binary not found\n");
        return;
    }
    char dir[] = "/tmp/sw_tls_XXXXXX";
    SW_ASSERT(mkdtemp(dir) != NULL);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s/key.pem -out %s/cert.pem -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
             dir, dir);
    SW_ASSERT_EQ(system(cmd), 0);

    int port = free_port();
    pid_t pid = spawn_s_server(dir, port);
    SW_ASSERT(pid > 0);
    bool up = wait_listening(port);

    static struct fixture fx;
    struct result r = {0};
    fixture_start(&fx);
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", port);
    struct swp_http_req req = {.size = sizeof(req), .url = url, .timeout_ms = 10000};
    int refused_status = 1, trusted_status = 1, wrong_name_status = 1;
    long trusted_http = 0;
    char refused_error[512] = "", wrong_name_error[512] = "";

    if (up) {
        /* Self-signed and not trusted: refused. */
        sw_http_client_request(fx.client, &req, on_result, &r);
        wait_for(&fx, &r);
        refused_status = r.status;
        snprintf(refused_error, sizeof(refused_error), "%s", r.error);

        /* Trusted through the CA file: accepted, so verification was what refused it. */
        char ca[512];
        snprintf(ca, sizeof(ca), "%s/cert.pem", dir);
        sw_http_client_set_ca_file(fx.client, ca);
        r.calls = 0;
        sw_http_client_request(fx.client, &req, on_result, &r);
        wait_for(&fx, &r);
        trusted_status = r.status;
        trusted_http = r.http_status;

        /* Trusted CA but a name the certificate does not carry: refused (VERIFYHOST). */
        snprintf(url, sizeof(url), "https://localhost:%d/", port);
        r.calls = 0;
        sw_http_client_request(fx.client, &req, on_result, &r);
        wait_for(&fx, &r);
        wrong_name_status = r.status;
        snprintf(wrong_name_error, sizeof(wrong_name_error), "%s", r.error);
    }
    result_clear(&r);
    int loop_rc = fixture_finish(&fx);

    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    SW_ASSERT_EQ(system(cmd), 0);

    printf("    untrusted: %s\n    wrong name: %s\n", refused_error, wrong_name_error);
    SW_ASSERT(up);
    SW_ASSERT_EQ(refused_status, SW_EHTTP);
    SW_ASSERT_CONTAINS(refused_error, "certificate");
    SW_ASSERT_EQ(trusted_status, 0);
    SW_ASSERT_EQ(trusted_http, 200);
    SW_ASSERT_EQ(wrong_name_status, SW_EHTTP);
    SW_ASSERT_CONTAINS(wrong_name_error, "localhost");
    SW_ASSERT_EQ(loop_rc, 0);
}

/* ---- keep-alive server: connection reuse, resends, socket watches ------------------------ */

/* Answers "ok" with a Content-Length and keeps the connection, and records, for every
 * request, which connection it came on and its position there. drop_second closes a
 * connection on its second request without answering (a keep-alive connection that died
 * just as a request went out on it); close_after closes each connection right after its
 * first answer (a peer dropping an idle kept connection). */
enum { KA_MAX = 32 };
struct ka_server {
    uv_tcp_t listener;
    int port;
    bool drop_second;
    bool close_after;
    int connections;
    int request_count;
    struct {
        char method[8];
        int connection; /* 1-based, in accept order */
        int position;   /* 1: the connection's first request */
    } seen[KA_MAX];
};

struct ka_conn {
    uv_tcp_t tcp;
    struct ka_server *server;
    int number;
    int requests;
    size_t len;
    char buf[8192];
};

static void ka_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void ka_close(struct ka_conn *kc)
{
    if (!uv_is_closing((uv_handle_t *)&kc->tcp))
        uv_close((uv_handle_t *)&kc->tcp, ka_closed);
}

static void ka_written(uv_write_t *req, int status)
{
    struct ka_conn *kc = req->data;
    free(req);
    if (kc->server->close_after || status < 0)
        ka_close(kc);
}

static void ka_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct ka_conn *kc = handle->data;
    (void)suggested;
    *buf = uv_buf_init(kc->buf + kc->len, (unsigned int)(sizeof(kc->buf) - kc->len));
}

/* Requests are complete when the head and Content-Length bytes of body have arrived. */
static void ka_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct ka_conn *kc = stream->data;
    struct ka_server *ks = kc->server;
    (void)buf;
    if (nread < 0 || kc->len + (size_t)nread >= sizeof(kc->buf)) {
        ka_close(kc);
        return;
    }
    kc->len += (size_t)nread;
    kc->buf[kc->len] = '\0';
    char *end;
    while (!uv_is_closing((uv_handle_t *)&kc->tcp) && (end = strstr(kc->buf, "\r\n\r\n"))) {
        size_t head = (size_t)(end - kc->buf) + 4;
        size_t body = 0;
        for (const char *h = kc->buf; h < end; h++)
            if (strncasecmp(h, "\r\ncontent-length:", 17) == 0)
                body = strtoul(h + 17, NULL, 10);
        if (kc->len < head + body)
            return;
        kc->requests++;
        if (ks->request_count < KA_MAX) {
            int i = ks->request_count++;
            snprintf(ks->seen[i].method, sizeof(ks->seen[i].method), "%.*s",
                     (int)strcspn(kc->buf, " "), kc->buf);
            ks->seen[i].connection = kc->number;
            ks->seen[i].position = kc->requests;
        }
        memmove(kc->buf, kc->buf + head + body, kc->len - head - body + 1);
        kc->len -= head + body;
        if (ks->drop_second && kc->requests == 2) {
            ka_close(kc);
            return;
        }
        static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        uv_write_t *w = sw_xcalloc(1, sizeof(*w));
        w->data = kc;
        uv_buf_t b = uv_buf_init((char *)reply, sizeof(reply) - 1);
        if (uv_write(w, stream, &b, 1, ka_written) != 0) {
            free(w);
            ka_close(kc);
        }
    }
}

static void ka_connection(uv_stream_t *listener, int status)
{
    struct ka_server *ks = listener->data;
    struct ka_conn *kc = sw_xcalloc(1, sizeof(*kc));
    kc->server = ks;
    kc->number = ++ks->connections;
    uv_tcp_init(listener->loop, &kc->tcp);
    kc->tcp.data = kc;
    if (status < 0 || uv_accept(listener, (uv_stream_t *)&kc->tcp) != 0) {
        ka_close(kc);
        return;
    }
    uv_read_start((uv_stream_t *)&kc->tcp, ka_alloc, ka_read);
}

static void ka_start(struct fixture *fx, struct ka_server *ks)
{
    uv_tcp_init(&fx->loop, &ks->listener);
    ks->listener.data = ks;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_bind(&ks->listener, (const struct sockaddr *)&addr, 0);
    int len = sizeof(addr);
    uv_tcp_getsockname(&ks->listener, (struct sockaddr *)&addr, &len);
    ks->port = ntohs(addr.sin_port);
    if (uv_listen((uv_stream_t *)&ks->listener, 16, ka_connection) != 0)
        abort();
}

/* Send one request to the keep-alive server and wait for its answer. */
static void ka_request(struct fixture *fx, struct ka_server *ks, const char *method,
                       bool idempotent, struct result *r)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", ks->port);
    struct swp_http_req req = {.size = sizeof(req),
                               .method = method,
                               .url = url,
                               .body = strcmp(method, "GET") == 0 ? NULL : "{}",
                               .body_len = strcmp(method, "GET") == 0 ? 0 : 2,
                               .idempotent = idempotent};
    r->calls = 0;
    if (sw_http_client_request(fx->client, &req, on_result, r) == 0)
        abort();
    wait_for(fx, r);
}

/* A POST not marked idempotent always opens its own connection (it is its connection's
 * first request); a POST marked idempotent, like a GET, goes on a kept one. */
SW_TEST(client_post_reuses_connections_only_when_idempotent)
{
    static struct fixture fx;
    static struct ka_server ks;
    memset(&ks, 0, sizeof(ks));
    struct result r = {0};
    fixture_start(&fx);
    ka_start(&fx, &ks);
    ka_request(&fx, &ks, "GET", false, &r);
    SW_ASSERT_EQ(r.http_status, 200);
    for (int i = 0; i < 3; i++) {
        ka_request(&fx, &ks, "POST", false, &r);
        SW_ASSERT_EQ(r.http_status, 200);
    }
    SW_ASSERT_EQ(ks.connections, 4);
    for (int i = 1; i <= 3; i++) {
        SW_ASSERT_STREQ(ks.seen[i].method, "POST");
        SW_ASSERT_EQ(ks.seen[i].position, 1);
    }
    for (int i = 0; i < 3; i++) {
        ka_request(&fx, &ks, "POST", true, &r);
        SW_ASSERT_EQ(r.http_status, 200);
        ka_request(&fx, &ks, "PATCH", true, &r);
        SW_ASSERT_EQ(r.http_status, 200);
    }
    SW_ASSERT_EQ(ks.connections, 4);
    SW_ASSERT_EQ(ks.request_count, 10);
    for (int i = 4; i < 10; i++)
        SW_ASSERT(ks.seen[i].position > 1);
    struct sw_http_client_stats st;
    sw_http_client_stats(fx.client, &st);
    SW_ASSERT_EQ(st.fresh_connects, 3);
    SW_ASSERT_EQ(st.sockets_opened, 4);
    result_clear(&r);
    uv_close((uv_handle_t *)&ks.listener, NULL);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

/* Why the flag matters: a kept connection that dies as a request goes out on it makes curl
 * send the request again on a new one. A POST not marked idempotent never meets that (it
 * reaches the server exactly once); one marked idempotent may arrive more than once. */
SW_TEST(client_only_idempotent_posts_are_resent)
{
    static struct fixture fx;
    static struct ka_server ks;
    memset(&ks, 0, sizeof(ks));
    ks.drop_second = true;
    struct result r = {0};
    fixture_start(&fx);
    ka_start(&fx, &ks);
    ka_request(&fx, &ks, "GET", false, &r); /* leaves a kept connection */
    SW_ASSERT_EQ(r.http_status, 200);
    ka_request(&fx, &ks, "POST", false, &r);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.http_status, 200);
    SW_ASSERT_EQ(ks.request_count, 2);
    SW_ASSERT_STREQ(ks.seen[1].method, "POST");
    SW_ASSERT_EQ(ks.seen[1].position, 1);

    ka_request(&fx, &ks, "POST", true, &r);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.http_status, 200);
    int posts = 0;
    for (int i = 2; i < ks.request_count; i++)
        posts += strcmp(ks.seen[i].method, "POST") == 0;
    /* Every kept connection it tried died under it: each try reached the server. */
    SW_ASSERT(posts >= 2);
    SW_ASSERT_EQ(ks.seen[2].position, 2);
    result_clear(&r);
    uv_close((uv_handle_t *)&ks.listener, NULL);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

static int open_fd_count(void)
{
    int count = 0;
    for (int fd = 0; fd < 1024; fd++)
        count += fcntl(fd, F_GETFD) != -1;
    return count;
}

/* One socket watch per connection for the connection's life: requests on a kept
 * connection neither re-create it nor restart it. */
SW_TEST(client_socket_watch_survives_connection_reuse)
{
    static struct fixture fx;
    struct result r = {0};
    fixture_start(&fx);
    for (int i = 0; i < 6; i++) {
        SW_ASSERT(simple_request(&fx, "GET", "/hello", &r) > 0);
        r.calls = 0;
        wait_for(&fx, &r);
        SW_ASSERT_EQ(r.http_status, 200);
    }
    struct sw_http_client_stats st;
    sw_http_client_stats(fx.client, &st);
    SW_ASSERT_EQ(st.sockets_opened, 1);
    SW_ASSERT_EQ(st.watches_opened, 1);
    SW_ASSERT_EQ(st.watches_closed, 0);
    /* Connect (write), then read; the five reuses change nothing. */
    SW_ASSERT(st.watch_changes <= 3);
    result_clear(&r);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
}

/* A kept connection its peer closes: the idle watch stops (no spinning on EOF), the next
 * request finds the connection dead and opens another, and each socket's watch is closed
 * exactly once, with its socket. */
SW_TEST(client_socket_watch_closed_once_with_its_socket)
{
    static struct fixture fx;
    static struct ka_server ks;
    memset(&ks, 0, sizeof(ks));
    ks.close_after = true;
    struct result r = {0};
    int fds_before = open_fd_count();
    fixture_start(&fx);
    ka_start(&fx, &ks);
    for (int i = 0; i < 3; i++) {
        ka_request(&fx, &ks, "GET", false, &r);
        SW_ASSERT_EQ(r.http_status, 200);
        /* Let the server's close arrive while the connection is idle in curl's pool. */
        uint64_t until = uv_hrtime() + 50000000ull;
        while (uv_hrtime() < until)
            uv_run(&fx.loop, UV_RUN_ONCE);
    }
    SW_ASSERT_EQ(ks.connections, 3);
    struct sw_http_client_stats st;
    sw_http_client_stats(fx.client, &st);
    SW_ASSERT_EQ(st.sockets_opened, 3);
    SW_ASSERT_EQ(st.sockets_closed, 2);
    SW_ASSERT_EQ(st.watches_opened, 3);
    SW_ASSERT_EQ(st.watches_closed, 2);
    result_clear(&r);
    uv_close((uv_handle_t *)&ks.listener, NULL);
    SW_ASSERT_EQ(fixture_finish(&fx), 0);
    SW_ASSERT_EQ(open_fd_count(), fds_before);
}

SW_TEST_MAIN()
