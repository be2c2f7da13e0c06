/* net.c — request/reply exchanges over UDP and TCP on libuv (swp_host.net_exchange).
 *
 * One socket and one timer per exchange: exchanges are rare (a DNS update per change) and
 * independent sockets keep a late reply of one from ever being read by another. UDP sockets
 * are connected, so only the server's datagrams arrive and an ICMP port-unreachable shows
 * up as ECONNREFUSED at once instead of a timeout.
 */
#include "net.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mem.h"

#define DEFAULT_TIMEOUT_MS 10000
#define UDP_MAX_REPLY 65535
#define TCP_DEFAULT_MAX_REPLY (4u * 1024 * 1024)
#define TCP_READ_CHUNK 65536

struct xchg {
    struct xchg *prev;
    struct xchg *next;
    struct sw_net *net;
    uint64_t id;
    int transport;
    int framing;
    swp_net_complete_fn complete;
    void *complete_ud;
    sw_net_cb cb;
    void *ud;
    uint8_t *tx;
    size_t tx_len;
    uint8_t *rx;
    size_t rx_len;
    size_t rx_cap;
    size_t max_reply;
    struct sockaddr_storage addr;
    union {
        uv_handle_t handle;
        uv_udp_t udp;
        uv_tcp_t tcp;
    } sock;
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_udp_send_t send_req;
    int open_handles;
    int early_status; /* a setup failure, reported from the timer on the next turn */
    bool sock_open;   /* the socket handle was initialised (and must be closed) */
    bool done;
};

struct sw_net {
    uv_loop_t *loop;
    struct xchg *head;
    size_t in_flight;
    size_t live; /* exchanges whose handles are not closed yet */
    uint64_t next_id;
    bool closing;
};

static int map_uv(int uv_status)
{
    if (uv_status == UV_ETIMEDOUT)
        return SW_ETIMEDOUT;
    if (uv_status == UV_ECANCELED)
        return SW_ECANCELED;
    return SW_EIO;
}

static void net_maybe_free(struct sw_net *net)
{
    if (net->closing && net->live == 0)
        free(net);
}

static void on_handle_closed(uv_handle_t *handle)
{
    struct xchg *x = handle->data;
    if (--x->open_handles > 0)
        return;
    struct sw_net *net = x->net;
    free(x->tx);
    free(x->rx);
    free(x);
    net->live--;
    net_maybe_free(net);
}

/* Report once, then close: callbacks of requests still queued on the socket (connect,
 * write, send) run with UV_ECANCELED before the close callback and find x->done set. */
static void finish(struct xchg *x, int status, const uint8_t *reply, size_t len)
{
    if (x->done)
        return;
    x->done = true;
    struct sw_net *net = x->net;
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        net->head = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    net->in_flight--;
    uv_timer_stop(&x->timer);
    if (x->sock_open && x->transport == SWP_NET_UDP)
        uv_udp_recv_stop(&x->sock.udp);
    else if (x->sock_open)
        uv_read_stop((uv_stream_t *)&x->sock.tcp);
    x->cb(x->ud, status, status == 0 ? reply : NULL, status == 0 ? len : 0);
    uv_close((uv_handle_t *)&x->timer, on_handle_closed);
    if (x->sock_open)
        uv_close(&x->sock.handle, on_handle_closed);
}

static void on_timeout(uv_timer_t *timer)
{
    struct xchg *x = timer->data;
    finish(x, x->early_status != 0 ? x->early_status : SW_ETIMEDOUT, NULL, 0);
}

/* ---- UDP -------------------------------------------------------------------------------- */

static void udp_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct xchg *x = handle->data;
    if (x->rx == NULL) {
        x->rx_cap = UDP_MAX_REPLY + 1;
        x->rx = sw_xmalloc(x->rx_cap);
    }
    *buf = uv_buf_init((char *)x->rx, (unsigned int)x->rx_cap);
}

static void udp_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf,
                     const struct sockaddr *addr, unsigned flags)
{
    struct xchg *x = udp->data;
    if (x->done || (nread == 0 && addr == NULL))
        return;
    if (nread < 0) {
        finish(x, map_uv((int)nread), NULL, 0);
        return;
    }
    if ((flags & UV_UDP_PARTIAL) || (size_t)nread > x->max_reply) {
        finish(x, SW_ETOOBIG, NULL, 0);
        return;
    }
    finish(x, 0, x->rx, (size_t)nread);
}

static void udp_sent(uv_udp_send_t *req, int status)
{
    struct xchg *x = req->data;
    if (!x->done && status < 0)
        finish(x, map_uv(status), NULL, 0);
}

static int udp_start(struct xchg *x)
{
    int rc = uv_udp_init(x->net->loop, &x->sock.udp);
    if (rc < 0)
        return rc;
    x->sock.udp.data = x;
    x->sock_open = true;
    x->open_handles++;
    if ((rc = uv_udp_connect(&x->sock.udp, (const struct sockaddr *)&x->addr)) < 0)
        return rc;
    if ((rc = uv_udp_recv_start(&x->sock.udp, udp_alloc, udp_recv)) < 0)
        return rc;
    uv_buf_t buf = uv_buf_init((char *)x->tx, (unsigned int)x->tx_len);
    x->send_req.data = x;
    return uv_udp_send(&x->send_req, &x->sock.udp, &buf, 1, NULL, udp_sent);
}

/* ---- TCP -------------------------------------------------------------------------------- */

static void tcp_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct xchg *x = handle->data;
    if (x->rx_cap - x->rx_len < TCP_READ_CHUNK) {
        x->rx_cap = x->rx_len + TCP_READ_CHUNK;
        x->rx = sw_xrealloc(x->rx, x->rx_cap);
    }
    *buf = uv_buf_init((char *)x->rx + x->rx_len, (unsigned int)(x->rx_cap - x->rx_len));
}

/* Length of a complete reply at the start of rx, 0 if more is needed, < 0 on a bad stream. */
static long tcp_reply_length(struct xchg *x)
{
    if (x->framing == SWP_NET_FRAME_LEN16) {
        if (x->rx_len < 2)
            return 0;
        size_t need = 2 + ((size_t)x->rx[0] << 8 | x->rx[1]);
        return x->rx_len >= need ? (long)need : 0;
    }
    if (x->framing == SWP_NET_FRAME_CUSTOM) {
        long n = x->complete(x->complete_ud, x->rx, x->rx_len);
        return n > (long)x->rx_len ? -1 : n;
    }
    return 0;
}

static void tcp_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct xchg *x = stream->data;
    if (x->done)
        return;
    if (nread == UV_EOF) {
        if (x->framing == SWP_NET_FRAME_CLOSE)
            finish(x, 0, x->rx, x->rx_len);
        else
            finish(x, SW_EIO, NULL, 0); /* closed before a complete reply */
        return;
    }
    if (nread < 0) {
        finish(x, map_uv((int)nread), NULL, 0);
        return;
    }
    x->rx_len += (size_t)nread;
    long n = tcp_reply_length(x);
    if (n < 0) {
        finish(x, SW_EIO, NULL, 0);
        return;
    }
    if (n > 0 && (size_t)n <= x->max_reply) {
        finish(x, 0, x->rx, (size_t)n);
        return;
    }
    if (x->rx_len > x->max_reply)
        finish(x, SW_ETOOBIG, NULL, 0);
}

static void tcp_written(uv_write_t *req, int status)
{
    struct xchg *x = req->data;
    if (!x->done && status < 0)
        finish(x, map_uv(status), NULL, 0);
}

static void tcp_connected(uv_connect_t *req, int status)
{
    struct xchg *x = req->data;
    if (x->done)
        return;
    if (status < 0) {
        finish(x, map_uv(status), NULL, 0);
        return;
    }
    uv_stream_t *stream = (uv_stream_t *)&x->sock.tcp;
    int rc = uv_read_start(stream, tcp_alloc, tcp_read);
    if (rc == 0) {
        uv_buf_t buf = uv_buf_init((char *)x->tx, (unsigned int)x->tx_len);
        x->write_req.data = x;
        rc = uv_write(&x->write_req, stream, &buf, 1, tcp_written);
    }
    if (rc < 0)
        finish(x, map_uv(rc), NULL, 0);
}

static int tcp_start(struct xchg *x)
{
    int rc = uv_tcp_init(x->net->loop, &x->sock.tcp);
    if (rc < 0)
        return rc;
    x->sock.tcp.data = x;
    x->sock_open = true;
    x->open_handles++;
    uv_tcp_nodelay(&x->sock.tcp, 1);
    x->connect_req.data = x;
    return uv_tcp_connect(&x->connect_req, &x->sock.tcp, (const struct sockaddr *)&x->addr,
                          tcp_connected);
}

/* ---- public ----------------------------------------------------------------------------- */

struct sw_net *sw_net_new(uv_loop_t *loop)
{
    struct sw_net *net = sw_xcalloc(1, sizeof(*net));
    net->loop = loop;
    return net;
}

void sw_net_close(struct sw_net *net)
{
    if (net == NULL)
        return;
    net->closing = true;
    while (net->head != NULL)
        finish(net->head, SW_ECANCELED, NULL, 0);
    net_maybe_free(net);
}

static bool parse_address(const char *text, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (text == NULL)
        return false;
    if (uv_ip4_addr(text, port, (struct sockaddr_in *)out) == 0)
        return true;
    return uv_ip6_addr(text, port, (struct sockaddr_in6 *)out) == 0;
}

uint64_t sw_net_exchange(struct sw_net *net, const struct swp_net_req *req, void *complete_ud,
                         sw_net_cb cb, void *ud)
{
    if (net == NULL || net->closing || req == NULL || cb == NULL || req->data == NULL ||
        req->len == 0 || req->len > UINT32_MAX)
        return 0;
    if (req->transport != SWP_NET_UDP && req->transport != SWP_NET_TCP)
        return 0;
    if (req->transport == SWP_NET_UDP && req->len > UDP_MAX_REPLY)
        return 0;
    if (req->transport == SWP_NET_TCP &&
        (req->framing < SWP_NET_FRAME_CLOSE || req->framing > SWP_NET_FRAME_CUSTOM ||
         (req->framing == SWP_NET_FRAME_CUSTOM && req->complete == NULL)))
        return 0;
    struct sockaddr_storage addr;
    if (!parse_address(req->address, req->port, &addr))
        return 0;

    struct xchg *x = sw_xcalloc(1, sizeof(*x));
    x->net = net;
    x->id = ++net->next_id;
    x->transport = req->transport;
    x->framing = req->framing;
    x->complete = req->complete;
    x->complete_ud = complete_ud;
    x->cb = cb;
    x->ud = ud;
    x->addr = addr;
    x->tx = sw_xmalloc(req->len);
    memcpy(x->tx, req->data, req->len);
    x->tx_len = req->len;
    size_t default_max = req->transport == SWP_NET_UDP ? UDP_MAX_REPLY : TCP_DEFAULT_MAX_REPLY;
    x->max_reply = req->max_reply_bytes > 0 ? req->max_reply_bytes : default_max;
    if (req->transport == SWP_NET_UDP && x->max_reply > UDP_MAX_REPLY)
        x->max_reply = UDP_MAX_REPLY;

    uv_timer_init(net->loop, &x->timer);
    x->timer.data = x;
    x->open_handles = 1;
    net->live++;
    net->in_flight++;
    x->next = net->head;
    if (net->head != NULL)
        net->head->prev = x;
    net->head = x;

    int rc = x->transport == SWP_NET_UDP ? udp_start(x) : tcp_start(x);
    uint64_t timeout = req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
    if (rc < 0) {
        /* Never call back inside this call: report on the next turn. */
        x->early_status = map_uv(rc);
        timeout = 0;
    }
    uv_timer_start(&x->timer, on_timeout, timeout, 0);
    return x->id;
}

void sw_net_cancel(struct sw_net *net, uint64_t id)
{
    if (net == NULL)
        return;
    for (struct xchg *x = net->head; x != NULL; x = x->next)
        if (x->id == id) {
            finish(x, SW_ECANCELED, NULL, 0);
            return;
        }
}

size_t sw_net_in_flight(const struct sw_net *net)
{
    return net != NULL ? net->in_flight : 0;
}
