/* test_net.c — the net_exchange service on a real loop against servers in the test:
 * UDP request/reply, TCP with each framing (close, 2-byte length, custom), timeouts,
 * refused connections, size caps, cancellation, bad requests, close with exchanges in
 * flight. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "error.h"
#include "net.h"
#include "sw_test.h"

/* ---- servers ---- */

static uv_udp_t udp_echo;   /* answers "re:" + datagram */
static uv_udp_t udp_silent; /* never answers */
static uv_tcp_t tcp_server;
static int tcp_mode;        /* 0: LEN16 echo, 1: reply then close, 2: big reply then close */
static int udp_echo_port, udp_silent_port, tcp_port;

struct udp_reply {
    uv_udp_send_t req;
    char data[600];
};

static void udp_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    static char slab[70000];
    *buf = uv_buf_init(slab, sizeof(slab));
}

static void udp_sent(uv_udp_send_t *req, int status)
{
    free(req);
}

static void udp_on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *addr,
                        unsigned flags)
{
    if (n <= 0 || addr == NULL || h == &udp_silent)
        return;
    struct udp_reply *r = malloc(sizeof(*r));
    memcpy(r->data, "re:", 3);
    size_t len = (size_t)n < 500 ? (size_t)n : 500;
    memcpy(r->data + 3, buf->base, len);
    uv_buf_t out = uv_buf_init(r->data, (unsigned)(len + 3));
    uv_udp_send(&r->req, h, &out, 1, addr, udp_sent);
}

static int bound_port(uv_handle_t *h, bool udp)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (udp)
        uv_udp_getsockname((uv_udp_t *)h, (struct sockaddr *)&ss, &len);
    else
        uv_tcp_getsockname((uv_tcp_t *)h, (struct sockaddr *)&ss, &len);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

struct conn {
    uv_tcp_t tcp;
    char buf[4096];
    size_t len;
    uv_write_t wr;
    char out[300000];
};

static void conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void conn_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (tcp_mode != 0 && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void conn_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct conn *c = h->data;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, conn_closed);
        return;
    }
    c->len += (size_t)n;
    if (c->len < 2 || c->len < 2 + ((size_t)(uint8_t)c->buf[0] << 8 | (uint8_t)c->buf[1]))
        return;
    size_t body = c->len - 2;
    size_t out_len;
    if (tcp_mode == 2) {
        out_len = sizeof(c->out);
        memset(c->out, 'x', out_len);
    } else {
        /* A LEN16 frame "re:" + body, sent in two writes' worth of bytes as one buffer. */
        out_len = 2 + 3 + body;
        c->out[0] = (char)((3 + body) >> 8);
        c->out[1] = (char)(3 + body);
        memcpy(c->out + 2, "re:", 3);
        memcpy(c->out + 5, c->buf + 2, body);
    }
    c->wr.data = c;
    uv_buf_t out = uv_buf_init(c->out, (unsigned)out_len);
    uv_write(&c->wr, s, &out, 1, conn_written);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct conn *c = calloc(1, sizeof(*c));
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    uv_accept(server, (uv_stream_t *)&c->tcp);
    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
}

static void servers_start(uv_loop_t *loop)
{
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_udp_init(loop, &udp_echo);
    uv_udp_bind(&udp_echo, (const struct sockaddr *)&addr, 0);
    uv_udp_recv_start(&udp_echo, udp_alloc, udp_on_recv);
    udp_echo_port = bound_port((uv_handle_t *)&udp_echo, true);
    uv_udp_init(loop, &udp_silent);
    uv_udp_bind(&udp_silent, (const struct sockaddr *)&addr, 0);
    uv_udp_recv_start(&udp_silent, udp_alloc, udp_on_recv);
    udp_silent_port = bound_port((uv_handle_t *)&udp_silent, true);
    uv_tcp_init(loop, &tcp_server);
    uv_tcp_bind(&tcp_server, (const struct sockaddr *)&addr, 0);
    uv_listen((uv_stream_t *)&tcp_server, 16, on_connection);
    tcp_port = bound_port((uv_handle_t *)&tcp_server, false);
}

static void servers_stop(void)
{
    uv_close((uv_handle_t *)&udp_echo, NULL);
    uv_close((uv_handle_t *)&udp_silent, NULL);
    uv_close((uv_handle_t *)&tcp_server, NULL);
}

/* ---- client side ---- */

struct result {
    int calls;
    int status;
    char reply[400];
    size_t len;
};

static void on_done(void *ud, int status, const uint8_t *reply, size_t len)
{
    struct result *r = ud;
    r->calls++;
    r->status = status;
    r->len = len;
    if (reply != NULL)
        memcpy(r->reply, reply, len < sizeof(r->reply) ? len : sizeof(r->reply));
}

static void run_until(uv_loop_t *loop, const struct result *r)
{
    while (r->calls == 0)
        uv_run(loop, UV_RUN_ONCE);
}

static struct swp_net_req req_of(int transport, int port, const char *data, int framing)
{
    struct swp_net_req req = {
        .size = sizeof(req),
        .transport = transport,
        .address = "127.0.0.1",
        .port = (uint16_t)port,
        .data = (const uint8_t *)data,
        .len = strlen(data),
        .framing = framing,
        .timeout_ms = 2000,
    };
    return req;
}

/* Frames: a 1-byte length then that many bytes; complete once a frame starting 'E' ends. */
static long custom_complete(void *ud, const uint8_t *data, size_t len)
{
    int *calls = ud;
    (*calls)++;
    return len >= 5 ? 5 : 0;
}

SW_TEST(exchanges_over_udp_and_tcp)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    servers_start(&loop);
    struct sw_net *net = sw_net_new(&loop);

    struct result r = {0};
    struct swp_net_req req = req_of(SWP_NET_UDP, udp_echo_port, "ping", 0);
    SW_ASSERT(sw_net_exchange(net, &req, NULL, on_done, &r) > 0);
    SW_ASSERT_EQ(r.calls, 0); /* never inside the call */
    run_until(&loop, &r);
    SW_ASSERT_EQ(r.status, 0);
    SW_ASSERT_EQ(r.len, 7);
    SW_ASSERT(memcmp(r.reply, "re:ping", 7) == 0);

    tcp_mode = 0;
    struct result t = {0};
    req = req_of(SWP_NET_TCP, tcp_port, "\0\4ping", SWP_NET_FRAME_LEN16);
    req.len = 6;
    SW_ASSERT(sw_net_exchange(net, &req, NULL, on_done, &t) > 0);
    run_until(&loop, &t);
    SW_ASSERT_EQ(t.status, 0);
    SW_ASSERT_EQ(t.len, 9);
    SW_ASSERT(memcmp(t.reply, "\0\7re:ping", 9) == 0);

    tcp_mode = 1;
    struct result c = {0};
    req = req_of(SWP_NET_TCP, tcp_port, "\0\2hi", SWP_NET_FRAME_CLOSE);
    req.len = 4;
    SW_ASSERT(sw_net_exchange(net, &req, NULL, on_done, &c) > 0);
    run_until(&loop, &c);
    SW_ASSERT_EQ(c.status, 0);
    SW_ASSERT_EQ(c.len, 7);

    int complete_calls = 0;
    struct result k = {0};
    req = req_of(SWP_NET_TCP, tcp_port, "\0\2hi", SWP_NET_FRAME_CUSTOM);
    req.len = 4;
    req.complete = custom_complete;
    SW_ASSERT(sw_net_exchange(net, &req, &complete_calls, on_done, &k) > 0);
    run_until(&loop, &k);
    SW_ASSERT_EQ(k.status, 0);
    SW_ASSERT_EQ(k.len, 5);
    SW_ASSERT(complete_calls >= 1);

    tcp_mode = 2; /* 300 KB reply against a 1 KB cap */
    struct result big = {0};
    req = req_of(SWP_NET_TCP, tcp_port, "\0\2hi", SWP_NET_FRAME_CLOSE);
    req.len = 4;
    req.max_reply_bytes = 1024;
    SW_ASSERT(sw_net_exchange(net, &req, NULL, on_done, &big) > 0);
    run_until(&loop, &big);
    SW_ASSERT_EQ(big.status, SW_ETOOBIG);

    sw_net_close(net);
    servers_stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    SW_ASSERT_EQ(uv_loop_close(&loop), 0);
}

SW_TEST(failures_timeouts_cancel_and_close)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    servers_start(&loop);
    struct sw_net *net = sw_net_new(&loop);

    struct result silent = {0};
    struct swp_net_req req = req_of(SWP_NET_UDP, udp_silent_port, "ping", 0);
    req.timeout_ms = 50;
    SW_ASSERT(sw_net_exchange(net, &req, NULL, on_done, &silent) > 0);
    run_until(&loop, &silent);
    SW_ASSERT_EQ(silent.status, SW_ETIMEDOUT);

    /* A port nobody listens on: TCP is refused at once. */
    uv_tcp_t probe;
    uv_tcp_init(&loop, &probe);
    struct sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    uv_tcp_bind(&probe, (const struct sockaddr *)&any, 0);
    int closed_port = bound_port((uv_handle_t *)&probe, false);
    uv_close((uv_handle_t *)&probe, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    struct result refused = {0};
    req = req_of(SWP_NET_TCP, closed_port, "\0\1x", SWP_NET_FRAME_LEN16);
    req.len = 3;
    SW_ASSERT(sw_net_exchange(net, &req, NULL, on_done, &refused) > 0);
    run_until(&loop, &refused);
    SW_ASSERT_EQ(refused.status, SW_EIO);

    /* Cancel reports before returning; close cancels what is left. */
    struct result cancelled = {0}, closed = {0};
    req = req_of(SWP_NET_UDP, udp_silent_port, "ping", 0);
    uint64_t id = sw_net_exchange(net, &req, NULL, on_done, &cancelled);
    SW_ASSERT(sw_net_exchange(net, &req, NULL, on_done, &closed) > 0);
    SW_ASSERT_EQ(sw_net_in_flight(net), 2);
    sw_net_cancel(net, id);
    SW_ASSERT_EQ(cancelled.calls, 1);
    SW_ASSERT_EQ(cancelled.status, SW_ECANCELED);
    sw_net_cancel(net, id); /* unknown now: ignored */
    SW_ASSERT_EQ(cancelled.calls, 1);

    /* Bad requests never call back. */
    struct result bad = {0};
    req = req_of(SWP_NET_UDP, udp_echo_port, "ping", 0);
    req.address = "localhost";
    SW_ASSERT_EQ(sw_net_exchange(net, &req, NULL, on_done, &bad), 0);
    req = req_of(3, udp_echo_port, "ping", 0);
    SW_ASSERT_EQ(sw_net_exchange(net, &req, NULL, on_done, &bad), 0);
    req = req_of(SWP_NET_TCP, tcp_port, "ping", SWP_NET_FRAME_CUSTOM);
    SW_ASSERT_EQ(sw_net_exchange(net, &req, NULL, on_done, &bad), 0);
    req = req_of(SWP_NET_UDP, udp_echo_port, "", 0);
    SW_ASSERT_EQ(sw_net_exchange(net, &req, NULL, on_done, &bad), 0);
    SW_ASSERT_EQ(bad.calls, 0);

    sw_net_close(net);
    SW_ASSERT_EQ(closed.calls, 1);
    SW_ASSERT_EQ(closed.status, SW_ECANCELED);
    servers_stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    SW_ASSERT_EQ(uv_loop_close(&loop), 0);
}

SW_TEST_MAIN()
