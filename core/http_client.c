/* http_client.c — libcurl multi on libuv, after curl's docs/examples/multi-uv.c.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one uv_poll_t context
 * per socket) and when to wake it (CURLMOPT_TIMERFUNCTION: one non-repeating uv timer).
 * Every poll event and timer expiry goes through client_drive, which calls
 * curl_multi_socket_action and then drains curl_multi_info_read.
 *
 * A timeout of 0 ("act now": every new request asks for it) stays 0, unlike multi-uv.c,
 * which makes it 1 ms: a uv timer never fires inside uv_timer_start, so curl is not
 * re-entered either way, and 1 ms made the loop sleep and wake once more per request
 * before sending it (a context switch each, a sixth of the wake-ups of an acquire burst).
 * What multi-uv.c's 1 ms also prevents is a spin: libuv runs a 0 ms timer started from a
 * timer callback in the same pass, so a curl that kept asking for 0 from its own timeout
 * would never let the loop poll. A 0 asked for while the timeout is being driven is
 * therefore still made 1 ms.
 *
 * Socket watches live as long as the socket (curl's pooled keep-alive connections included):
 * CURL_POLL_REMOVE only means "not needed by a transfer now". A uv_poll_start costs two
 * epoll_ctl calls in libuv (it stops, then re-adds), so the watched events change only when
 * they really change, and a pooled connection's socket stays watched for readability (its
 * peer closing it; the first such event stops the watch). The watch is closed when curl
 * closes the socket, which goes through CURLOPT_CLOSESOCKETFUNCTION for every connection
 * socket (opened through CURLOPT_OPENSOCKETFUNCTION, so we know which they are); any other
 * socket (a resolver's socketpair, closed by curl itself) is unwatched at its REMOVE.
 *
 * User callbacks run only from client_drive's drain, from cancel and from close — never
 * from inside a curl callback — so they may start, cancel, or close freely. A close from
 * inside a drain is finished when the drive unwinds (the multi handle must outlive the
 * info_read loop).
 */
#include "http_client.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "mem.h"

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_MAX_RESPONSE_BYTES (8u * 1024 * 1024)
#define IDLE_CONNECTIONS 32
/* Finished easy handles kept for the next requests: curl_easy_init allocates and frees
 * its buffers every time, a large share of a request's CPU on loopback. A kept handle also
 * keeps the options every request of the client sets alike (primed once): curl_easy_reset
 * and setting them again (protocol lists parsed from text, the user agent copied) were
 * another tenth of a request's own CPU. What differs per request is set on every request
 * (sw_http_client_request) and the pointers into a finished request are cleared when the
 * handle goes back (request_free), so nothing of one request reaches the next. */
#define SPARE_HANDLES 16
/* A spare handle keeps its request's receive buffer up to this size, so the next reply of
 * the usual size is read without an allocation (a 4 KiB malloc is also what makes glibc
 * consolidate the small chunks cJSON trees leave behind). */
#define SPARE_BUFFER_MAX (64u * 1024)

struct spare {
    CURL *easy;
    char *buf; /* may be NULL */
    size_t cap;
    bool primed; /* carries the client-wide options (prime_handle) */
};

struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct sw_http_client *client;
    int events;  /* UV_READABLE|UV_WRITABLE the handle watches now; 0: stopped */
    bool wanted; /* a transfer uses the socket (between curl's first action and REMOVE) */
};

/* What we know of one descriptor number. */
struct fd_slot {
    struct poll_ctx *ctx; /* its watch, or NULL */
    bool conn;            /* a connection socket: curl closes it through on_close_socket */
};

struct http_request {
    struct sw_http_client *client;
    struct http_request *prev;
    struct http_request *next;
    CURL *easy;
    bool primed;
    uint64_t id;
    sw_http_cb cb;
    void *ud;
    struct curl_slist *headers;
    char *body;
    char *resp;
    size_t resp_len;
    size_t resp_cap;
    size_t max_bytes;
    bool too_big;
    char errbuf[CURL_ERROR_SIZE];
};

struct sw_http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char *ca_file;
    uint64_t next_id;
    struct http_request *requests;
    size_t in_flight;
    struct fd_slot *fds; /* indexed by descriptor */
    size_t fd_cap;
    struct sw_http_client_stats stats;
    struct spare spare[SPARE_HANDLES];
    size_t spare_count;
    int open_handles; /* the timer plus every poll handle, until their close callbacks */
    int depth;        /* client_drive frames on the stack */
    bool in_timeout;  /* curl is handling its timeout (curl_multi_socket_action) */
    bool closing;
    bool torn_down;
};

static bool curl_ready;

/* ---- handle lifetime ------------------------------------------------------------------ */

static void client_handle_closed(struct sw_http_client *client)
{
    if (--client->open_handles == 0 && client->torn_down) {
        free(client->fds);
        free(client->ca_file);
        free(client);
    }
}

static void on_timer_closed(uv_handle_t *handle)
{
    client_handle_closed(handle->data);
}

static void on_poll_closed(uv_handle_t *handle)
{
    struct poll_ctx *ctx = handle->data;
    struct sw_http_client *client = ctx->client;
    free(ctx);
    client_handle_closed(client);
}

static struct fd_slot *fd_slot(struct sw_http_client *client, curl_socket_t fd, bool grow)
{
    if (fd < 0)
        return NULL;
    size_t index = (size_t)fd;
    if (index >= client->fd_cap) {
        if (!grow)
            return NULL;
        size_t cap = client->fd_cap ? client->fd_cap : 64;
        while (cap <= index)
            cap *= 2;
        client->fds = sw_xrealloc(client->fds, cap * sizeof(*client->fds));
        memset(client->fds + client->fd_cap, 0, (cap - client->fd_cap) * sizeof(*client->fds));
        client->fd_cap = cap;
    }
    return &client->fds[index];
}

/* Closing the handle also takes the descriptor out of epoll, so it must come before the
 * descriptor itself is closed. */
static void poll_ctx_close(struct poll_ctx *ctx)
{
    struct sw_http_client *client = ctx->client;
    struct fd_slot *slot = fd_slot(client, ctx->fd, false);
    if (slot != NULL && slot->ctx == ctx)
        slot->ctx = NULL;
    client->stats.watches_closed++;
    uv_close((uv_handle_t *)&ctx->poll, on_poll_closed);
}

/* Watch exactly these events; a no-op when they are what is watched already. */
static void poll_ctx_set(struct poll_ctx *ctx, int events, uv_poll_cb cb)
{
    if (events == ctx->events)
        return;
    ctx->client->stats.watch_changes++;
    if (events == 0)
        uv_poll_stop(&ctx->poll);
    else
        uv_poll_start(&ctx->poll, events, cb);
    ctx->events = events;
}

/* ---- requests ------------------------------------------------------------------------- */

static void request_unlink(struct http_request *req)
{
    struct sw_http_client *client = req->client;
    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        client->requests = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    client->in_flight--;
    curl_multi_remove_handle(client->multi, req->easy);
}

static void request_free(struct http_request *req)
{
    struct sw_http_client *client = req->client;
    if (!client->closing && client->spare_count < SPARE_HANDLES) {
        /* Nothing may point into this request once it is freed: its headers, body, error
         * buffer and itself. The next request sets all of them (and the rest of what
         * differs) again. POSTFIELDS NULL leaves the method at POST: set_method_and_body
         * starts every request from a GET. */
        curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(req->easy, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(req->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
        curl_easy_setopt(req->easy, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(req->easy, CURLOPT_WRITEDATA, NULL);
        curl_easy_setopt(req->easy, CURLOPT_PRIVATE, NULL);
        struct spare *sp = &client->spare[client->spare_count++];
        sp->easy = req->easy;
        sp->primed = req->primed;
        sp->buf = NULL;
        sp->cap = 0;
        if (req->resp_cap <= SPARE_BUFFER_MAX) {
            sp->buf = req->resp;
            sp->cap = req->resp_cap;
            req->resp = NULL;
        }
    } else {
        curl_easy_cleanup(req->easy);
    }
    curl_slist_free_all(req->headers);
    free(req->body);
    free(req->resp);
    free(req);
}

static void request_abort(struct http_request *req, int status, const char *text)
{
    struct swp_http_resp resp = {.status = 0, .body = "", .body_len = 0};
    request_unlink(req);
    req->cb(req->ud, status, &resp, text);
    request_free(req);
}

static void request_finish(struct http_request *req, CURLcode result)
{
    struct swp_http_resp resp = {0};
    int status = 0;
    char text[CURL_ERROR_SIZE + 64];
    const char *error_text = NULL;

    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &resp.status);
    curl_easy_getinfo(req->easy, CURLINFO_CONNECT_TIME, &resp.connect_s);
    curl_easy_getinfo(req->easy, CURLINFO_APPCONNECT_TIME, &resp.tls_s);
    curl_easy_getinfo(req->easy, CURLINFO_STARTTRANSFER_TIME, &resp.first_byte_s);
    curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME, &resp.total_s);
    curl_off_t retry_after_s = 0;
    if (curl_easy_getinfo(req->easy, CURLINFO_RETRY_AFTER, &retry_after_s) == CURLE_OK &&
        retry_after_s > 0)
        resp.retry_after_ms = (int64_t)retry_after_s * 1000;

    /* curl's messages name the host and what failed, never the request headers (which
     * may carry API keys), so they can be passed on as they are. */
    const char *curl_text = req->errbuf[0] != '\0' ? req->errbuf : curl_easy_strerror(result);
    if (req->too_big || result == CURLE_FILESIZE_EXCEEDED) {
        status = SW_ETOOBIG;
        snprintf(text, sizeof(text), "response body exceeds %zu bytes", req->max_bytes);
        error_text = text;
    } else if (result == CURLE_OPERATION_TIMEDOUT) {
        status = SW_ETIMEDOUT;
        snprintf(text, sizeof(text), "%s", curl_text);
        error_text = text;
    } else if (result != CURLE_OK) {
        status = SW_EHTTP;
        snprintf(text, sizeof(text), "%s", curl_text);
        error_text = text;
    }
    if (status == 0) {
        /* A reused buffer still holds an earlier reply past resp_len. */
        resp.body = req->resp_len > 0 ? req->resp : "";
        resp.body_len = req->resp_len;
    } else {
        resp.body = "";
        resp.body_len = 0;
    }

    request_unlink(req);
    req->cb(req->ud, status, &resp, error_text);
    request_free(req);
}

static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct http_request *req = userdata;
    size_t len = size * nmemb;

    if (len > req->max_bytes - req->resp_len) {
        /* Returning short makes curl abort the transfer with CURLE_WRITE_ERROR. */
        req->too_big = true;
        return 0;
    }
    if (req->resp_len + len + 1 > req->resp_cap) {
        size_t cap = req->resp_cap ? req->resp_cap : 4096;
        while (cap < req->resp_len + len + 1)
            cap *= 2;
        if (cap > req->max_bytes + 1)
            cap = req->max_bytes + 1;
        req->resp = sw_xrealloc(req->resp, cap);
        req->resp_cap = cap;
    }
    memcpy(req->resp + req->resp_len, data, len);
    req->resp_len += len;
    req->resp[req->resp_len] = '\0';
    return len;
}

/* ---- driving curl --------------------------------------------------------------------- */

static void client_teardown(struct sw_http_client *client)
{
    client->torn_down = true;
    /* Order matters: the multi handle first (its cleanup may still call the socket and
     * timer callbacks, which need the uv handles open), then the handles. */
    curl_multi_cleanup(client->multi);
    client->multi = NULL;
    while (client->spare_count > 0) {
        struct spare *sp = &client->spare[--client->spare_count];
        curl_easy_cleanup(sp->easy);
        free(sp->buf);
    }
    uv_timer_stop(&client->timer);
    uv_close((uv_handle_t *)&client->timer, on_timer_closed);
    for (size_t i = 0; i < client->fd_cap; i++)
        if (client->fds[i].ctx != NULL)
            poll_ctx_close(client->fds[i].ctx);
}

static void client_drain(struct sw_http_client *client)
{
    CURLMsg *msg;
    int left;
    while (!client->closing && (msg = curl_multi_info_read(client->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct http_request *req = NULL;
        CURLcode result = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
        request_finish(req, result);
    }
}

static void client_drive(struct sw_http_client *client, curl_socket_t fd, int flags)
{
    int running;
    client->depth++;
    /* Only curl's own request for 0 while it handles its timeout can spin; a request the
     * drain's callbacks start below may go out at once. */
    client->in_timeout = fd == CURL_SOCKET_TIMEOUT;
    CURLMcode mc = curl_multi_socket_action(client->multi, fd, flags, &running);
    client->in_timeout = false;
    if (mc != CURLM_OK)
        sw_log(SW_LOG_ERROR, "http_client", "curl_multi_socket_action: %s",
               curl_multi_strerror(mc));
    client_drain(client);
    client->depth--;
    if (client->depth == 0 && client->closing && !client->torn_down)
        client_teardown(client);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct poll_ctx *ctx = handle->data;
    if (!ctx->wanted) {
        /* An idle pooled connection became readable: its peer closed it (or sent what no
         * request asked for). Stop watching, or a level-triggered poll would spin; curl's
         * own liveness check drops the connection before reusing it. */
        poll_ctx_set(ctx, 0, on_poll);
        return;
    }
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    client_drive(ctx->client, ctx->fd, flags);
}

static void on_uv_timeout(uv_timer_t *timer)
{
    client_drive(timer->data, CURL_SOCKET_TIMEOUT, 0);
}

/* curl forgets a socket's socketp at every REMOVE, so the watch is found by descriptor
 * (fd_slot) rather than through curl_multi_assign. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    struct sw_http_client *client = userp;
    struct fd_slot *slot = fd_slot(client, fd, action != CURL_POLL_REMOVE);
    struct poll_ctx *ctx = slot != NULL ? slot->ctx : NULL;

    if (action == CURL_POLL_REMOVE) {
        if (ctx == NULL)
            return 0;
        if (!slot->conn) {
            /* Not ours to see closed (curl closes it itself, maybe right after this). */
            poll_ctx_close(ctx);
            return 0;
        }
        /* Pooled for reuse: keep a read watch (the next request on it waits for exactly
         * that), drop a write watch, which would fire at once and forever. An idle watch
         * must not keep the loop running. */
        ctx->wanted = false;
        if (ctx->events != UV_READABLE)
            poll_ctx_set(ctx, 0, on_poll);
        uv_unref((uv_handle_t *)&ctx->poll);
        return 0;
    }
    if (ctx == NULL) {
        ctx = sw_xcalloc(1, sizeof(*ctx));
        int rc = uv_poll_init_socket(client->loop, &ctx->poll, fd);
        if (rc != 0) {
            sw_log(SW_LOG_ERROR, "http_client", "uv_poll_init_socket(%d): %s", (int)fd,
                   uv_strerror(rc));
            free(ctx);
            return -1;
        }
        ctx->poll.data = ctx;
        ctx->fd = fd;
        ctx->client = client;
        slot->ctx = ctx;
        client->open_handles++;
        client->stats.watches_opened++;
    }
    if (!ctx->wanted) {
        ctx->wanted = true;
        uv_ref((uv_handle_t *)&ctx->poll);
    }
    int events = 0;
    if (action & CURL_POLL_IN)
        events |= UV_READABLE;
    if (action & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    poll_ctx_set(ctx, events, on_poll);
    return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: a connection socket, which curl will close through
 * on_close_socket (CURLOPT_CLOSESOCKETFUNCTION is kept by the connection, whichever
 * request made it). */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *address)
{
    struct sw_http_client *client = clientp;
    (void)purpose;
    curl_socket_t fd = socket(address->family, address->socktype, address->protocol);
    if (fd == CURL_SOCKET_BAD)
        return CURL_SOCKET_BAD;
    struct fd_slot *slot = fd_slot(client, fd, true);
    /* The number is new again, so any watch still filed under it is of a socket closed
     * without us; it must not be taken for this one's. */
    if (slot->ctx != NULL)
        poll_ctx_close(slot->ctx);
    slot->conn = true;
    client->stats.sockets_opened++;
    return fd;
}

static int on_close_socket(void *clientp, curl_socket_t fd)
{
    struct sw_http_client *client = clientp;
    struct fd_slot *slot = fd_slot(client, fd, false);
    if (slot != NULL) {
        if (slot->ctx != NULL)
            poll_ctx_close(slot->ctx);
        slot->conn = false;
    }
    client->stats.sockets_closed++;
    return close(fd) == 0 ? 0 : 1;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct sw_http_client *client = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&client->timer);
    else
        uv_timer_start(&client->timer, on_uv_timeout,
                       timeout_ms == 0 && client->in_timeout ? 1 : (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- public --------------------------------------------------------------------------- */

/* A peer closing mid-write must surface as EPIPE, not kill the process: OpenSSL (with
 * CURLOPT_NOSIGNAL curl no longer masks SIGPIPE around it) and libuv stream writes use
 * plain write(2). Only a default disposition is changed, never an installed handler. */
static void ignore_sigpipe(void)
{
    struct sigaction current;
    if (sigaction(SIGPIPE, NULL, &current) == 0 && current.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

struct sw_http_client *sw_http_client_new(uv_loop_t *loop)
{
    if (loop == NULL)
        return NULL;
    if (!curl_ready) {
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
            sw_log(SW_LOG_ERROR, "http_client", "curl_global_init: %s", curl_easy_strerror(rc));
            return NULL;
        }
        curl_ready = true;
    }
    ignore_sigpipe();

    CURLM *multi = curl_multi_init();
    if (multi == NULL) {
        sw_log(SW_LOG_ERROR, "http_client", "curl_multi_init failed");
        return NULL;
    }
    struct sw_http_client *client = sw_xcalloc(1, sizeof(*client));
    client->loop = loop;
    client->multi = multi;
    client->next_id = 1;
    uv_timer_init(loop, &client->timer);
    client->timer.data = client;
    client->open_handles = 1;
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, client);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, client);
    /* Keep idle connections for reuse. curl's default cache is 4 per easy handle in the
     * multi, so with few requests in flight it shrinks and closes connections a moment
     * later needed again: a connect and a close per poll. */
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)IDLE_CONNECTIONS);
    return client;
}

void sw_http_client_close(struct sw_http_client *client)
{
    if (client == NULL || client->closing)
        return;
    client->closing = true;
    while (client->requests != NULL)
        request_abort(client->requests, SW_ECANCELED, "client closed");
    if (client->depth == 0)
        client_teardown(client);
}

void sw_http_client_set_ca_file(struct sw_http_client *client, const char *path)
{
    if (client == NULL)
        return;
    free(client->ca_file);
    client->ca_file = sw_xstrdup(path);
    /* Kept handles were primed with the old file: back to curl's defaults, primed anew. */
    for (size_t i = 0; i < client->spare_count; i++) {
        curl_easy_reset(client->spare[i].easy);
        client->spare[i].primed = false;
    }
}

size_t sw_http_client_in_flight(const struct sw_http_client *client)
{
    return client != NULL ? client->in_flight : 0;
}

void sw_http_client_stats(const struct sw_http_client *client, struct sw_http_client_stats *out)
{
    if (out == NULL)
        return;
    if (client == NULL)
        memset(out, 0, sizeof(*out));
    else
        *out = client->stats;
}

/* RFC 9110 token: what a method may be made of (no space, no CR/LF smuggling). */
static bool is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && strchr("!#$%&'*+-.^_`|~", c) == NULL)
            return false;
    }
    return true;
}

static bool headers_valid(const struct swp_http_req *req)
{
    if (req->header_count > 0 && req->headers == NULL)
        return false;
    for (size_t i = 0; i < req->header_count; i++) {
        const char *h = req->headers[i];
        if (h == NULL || strchr(h, ':') == NULL || strpbrk(h, "\r\n") != NULL)
            return false;
    }
    return true;
}

/* What every request of the client sets alike, once per handle. */
static void prime_handle(struct sw_http_client *client, CURL *easy)
{
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    if (client->ca_file != NULL)
        curl_easy_setopt(easy, CURLOPT_CAINFO, client->ca_file);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "steward/" SW_VERSION);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, client);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, client);
}

/* From whatever method the handle's last request left: HTTPGET makes it a GET without a
 * body again (and clears NOBODY), CUSTOMREQUEST NULL drops a custom method. */
static void set_method_and_body(CURL *easy, const char *method, struct http_request *r,
                                const struct swp_http_req *req)
{
    bool wants_body = req->body != NULL || strcmp(method, "POST") == 0 ||
                      strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;

    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
        return;
    }
    if (strcmp(method, "GET") == 0 && req->body == NULL)
        return;
    if (wants_body) {
        r->body = sw_xmalloc(req->body_len + 1);
        if (req->body_len > 0)
            memcpy(r->body, req->body, req->body_len);
        r->body[req->body_len] = '\0';
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r->body);
    }
    if (strcmp(method, "POST") != 0)
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
}

uint64_t sw_http_client_request(struct sw_http_client *client, const struct swp_http_req *req,
                                sw_http_cb cb, void *ud)
{
    if (client == NULL || client->closing || req == NULL || req->url == NULL || cb == NULL)
        return 0;
    const char *method = req->method != NULL ? req->method : "GET";
    if (!is_token(method) || !headers_valid(req) || (req->body == NULL && req->body_len > 0))
        return 0;

    struct spare sp = {0};
    if (client->spare_count > 0)
        sp = client->spare[--client->spare_count];
    else
        sp.easy = curl_easy_init();
    if (sp.easy == NULL)
        return 0;
    CURL *easy = sp.easy;
    if (!sp.primed)
        prime_handle(client, easy);
    struct http_request *r = sw_xcalloc(1, sizeof(*r));
    r->client = client;
    r->easy = easy;
    r->primed = true;
    r->resp = sp.buf;
    r->resp_cap = sp.cap;
    r->cb = cb;
    r->ud = ud;
    r->max_bytes = req->max_response_bytes ? req->max_response_bytes : DEFAULT_MAX_RESPONSE_BYTES;
    long timeout_ms = req->timeout_ms ? (long)req->timeout_ms : DEFAULT_TIMEOUT_MS;

    /* Expect: 100-continue would stall bodies over curl's threshold for a second on
     * servers that do not answer it; send bodies straight away. */
    r->headers = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; i < req->header_count; i++)
        r->headers = curl_slist_append(r->headers, req->headers[i]);

    curl_easy_setopt(easy, CURLOPT_URL, req->url);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
    /* Refuse an announced oversized body before reading it; the write callback catches
     * the rest (chunked or lying servers). */
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_bytes);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)r);
    set_method_and_body(easy, method, r, req);
    /* curl silently sends a request again when the reused connection it went out on dies
     * before any reply byte; for a non-idempotent method that can apply it twice (two
     * deployments bought for one POST). A fresh connection is never retried that way. The
     * caller vouches for a POST or PATCH that may be applied twice (req->idempotent). */
    bool idempotent = req->size >= offsetof(struct swp_http_req, idempotent) +
                                       sizeof(req->idempotent) &&
                      req->idempotent;
    bool fresh = (strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0) && !idempotent;
    curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
    if (fresh)
        client->stats.fresh_connects++;

    CURLMcode mc = curl_multi_add_handle(client->multi, easy);
    if (mc != CURLM_OK) {
        sw_log(SW_LOG_ERROR, "http_client", "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        request_free(r);
        return 0;
    }
    r->id = client->next_id++;
    r->next = client->requests;
    if (client->requests != NULL)
        client->requests->prev = r;
    client->requests = r;
    client->in_flight++;
    return r->id;
}

void sw_http_client_cancel(struct sw_http_client *client, uint64_t id)
{
    if (client == NULL)
        return;
    for (struct http_request *r = client->requests; r != NULL; r = r->next) {
        if (r->id == id) {
            request_abort(r, SW_ECANCELED, "request canceled");
            return;
        }
    }
}
