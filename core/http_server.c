/* http_server.c — HTTP/1.1 on libuv with http_parser.
 *
 * A connection moves through READING (waiting for or receiving a request; the idle
 * timer bounds the whole request, it is not reset by each byte, so a client trickling
 * bytes cannot hold the slot), HANDLING (the handler owns the exchange; the socket is not
 * read, which is the backpressure that keeps one request per connection in memory, and
 * the timer is stopped because the handler may answer late), WRITING (the timer bounds a
 * slow reader), then back to READING on keep-alive or LINGERING: after a response with
 * "Connection: close" (or an error status) the server shuts down its side and drains
 * input until EOF, because closing with unread input would make the kernel send RST and
 * the client could lose the response (Apache's lingering close).
 *
 * Pipelined bytes read past a request are kept in a per-connection stash; the parser is
 * paused at each message end and resumed only after the response is written, so answers
 * leave in request order.
 */
#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"

#define DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define DEFAULT_IDLE_TIMEOUT_MS 30000
#define DEFAULT_MAX_CONNECTIONS 256
/* Per header line: ": " and CRLF, counted with the name and value against the limit. */
#define HEADER_LINE_OVERHEAD 4
#define LINGER_MAX_MS 2000
#define LISTEN_BACKLOG 511
#define READ_BUFFER_SIZE (64 * 1024)

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

enum conn_state {
    CONN_READING,
    CONN_HANDLING,
    CONN_WRITING,
    CONN_LINGERING,
    CONN_CLOSING,
};

enum write_kind {
    WRITE_INTERIM,        /* 100 Continue: nothing follows its completion */
    WRITE_RESPONSE_KEEP,  /* then read the next request */
    WRITE_RESPONSE_CLOSE, /* then linger and close */
};

struct conn {
    struct sw_http_server *server;
    struct conn *prev;
    struct conn *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int open_handles;
    int state;
    bool reading;
    http_parser parser;

    /* The request being parsed. */
    struct buf url;
    struct buf field;
    struct buf value;
    bool in_value;
    char **names;
    char **values;
    size_t header_count;
    size_t header_cap;
    struct buf body;
    size_t header_bytes;
    int error_status; /* set by a callback that stops the parser on a limit */
    bool request_ready;
    bool peer_eof; /* the client finished sending while a refusal was being written */
    bool dispatching; /* inside the handler call: its loop picks up the stash afterwards */

    struct sw_http_exchange *exchange; /* with the handler, or NULL */
    struct buf stash;                  /* read but not yet parsed */
    size_t stash_off;
};

struct sw_http_exchange {
    struct sw_http_server *server;
    struct sw_http_exchange *prev;
    struct sw_http_exchange *next;
    struct conn *conn; /* NULL once orphaned: the connection died first */
    struct sw_http_request req;
    char *path;
    char *query;
    char *body;
    char **names;
    char **values;
    size_t header_count;
    bool keep_alive;
    bool head;
};

struct sw_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct sw_http_server_opts opts;
    char *host;
    sw_http_handler handler;
    void *ud;
    int port;
    bool closing;
    size_t refs; /* the listener handle plus every connection not yet freed */
    struct conn *conns;
    size_t conn_count;
    struct sw_http_exchange *exchanges;
    /* Shared by all connections: libuv hands a buffer to exactly one read callback at a
     * time, and that callback copies what it keeps. */
    char read_buffer[READ_BUFFER_SIZE];
};

struct write_req {
    uv_write_t req;
    struct conn *conn;
    char *data;
    int kind;
};

static void conn_close(struct conn *conn);
static void conn_drain_input(struct conn *conn);
static void conn_arm_timer(struct conn *conn, uint64_t timeout_ms);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);

/* ---- small buffers -------------------------------------------------------------------- */

static void buf_append(struct buf *b, const char *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->data = sw_xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

/* The buffer's string (never NULL), handed to the caller; b is left empty. */
static char *buf_take(struct buf *b)
{
    char *s = b->data != NULL ? b->data : sw_xstrdup("");
    memset(b, 0, sizeof(*b));
    return s;
}

static void buf_free(struct buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* ---- request accessors ---------------------------------------------------------------- */

const char *sw_http_request_header(const struct sw_http_request *req, const char *name)
{
    if (req == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < req->header_count; i++)
        if (strcasecmp(req->header_names[i], name) == 0)
            return req->header_values[i];
    return NULL;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Form-style decoding: '+' is a space, %XX a byte. A malformed escape stays literal, and
 * so does %00, which would silently cut the C string short. */
static char *query_decode(const char *s, size_t len)
{
    char *out = sw_xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < len && hex_value(s[i + 1]) >= 0 &&
                   hex_value(s[i + 2]) >= 0 && (hex_value(s[i + 1]) | hex_value(s[i + 2])) != 0) {
            out[o++] = (char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

char *sw_http_request_query_param(const struct sw_http_request *req, const char *name)
{
    if (req == NULL || req->query == NULL || name == NULL)
        return NULL;
    const char *p = req->query;
    while (*p != '\0') {
        const char *end = strchr(p, '&');
        if (end == NULL)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *key_end = eq != NULL ? eq : end;
        char *key = query_decode(p, (size_t)(key_end - p));
        bool match = strcmp(key, name) == 0;
        free(key);
        if (match)
            return eq != NULL ? query_decode(eq + 1, (size_t)(end - eq - 1)) : sw_xstrdup("");
        p = *end != '\0' ? end + 1 : end;
    }
    return NULL;
}

/* ---- exchanges ------------------------------------------------------------------------ */

static void exchange_free(struct sw_http_exchange *ex)
{
    struct sw_http_server *server = ex->server;
    if (ex->prev != NULL)
        ex->prev->next = ex->next;
    else
        server->exchanges = ex->next;
    if (ex->next != NULL)
        ex->next->prev = ex->prev;
    for (size_t i = 0; i < ex->header_count; i++) {
        free(ex->names[i]);
        free(ex->values[i]);
    }
    free(ex->names);
    free(ex->values);
    free(ex->path);
    free(ex->query);
    free(ex->body);
    free(ex);
}

/* Split a request target into path and query. Origin-form ("/a?b") is the norm; an
 * absolute-form target (what a proxy would get) is reduced to its path and query. */
static void split_target(const char *url, size_t len, bool is_connect, char **path, char **query)
{
    if (len > 0 && url[0] == '/') {
        size_t path_len = strcspn(url, "?#");
        *path = sw_xstrndup(url, path_len);
        if (url[path_len] == '?') {
            const char *q = url + path_len + 1;
            *query = sw_xstrndup(q, strcspn(q, "#"));
        } else {
            *query = sw_xstrdup("");
        }
        return;
    }
    struct http_parser_url parts;
    http_parser_url_init(&parts);
    if (http_parser_parse_url(url, len, is_connect, &parts) == 0 && !is_connect) {
        if (parts.field_set & (1 << UF_PATH))
            *path = sw_xstrndup(url + parts.field_data[UF_PATH].off, parts.field_data[UF_PATH].len);
        else
            *path = sw_xstrdup("/");
        if (parts.field_set & (1 << UF_QUERY))
            *query =
                sw_xstrndup(url + parts.field_data[UF_QUERY].off, parts.field_data[UF_QUERY].len);
        else
            *query = sw_xstrdup("");
        return;
    }
    /* "*" (OPTIONS) or a CONNECT authority: hand it over as is. */
    *path = sw_xstrndup(url, len);
    *query = sw_xstrdup("");
}

/* ---- parser callbacks ----------------------------------------------------------------- */

static void request_reset(struct conn *conn)
{
    for (size_t i = 0; i < conn->header_count; i++) {
        free(conn->names[i]);
        free(conn->values[i]);
    }
    conn->header_count = 0;
    conn->url.len = 0;
    conn->field.len = 0;
    conn->value.len = 0;
    conn->body.len = 0;
    conn->in_value = false;
    conn->header_bytes = 0;
    conn->error_status = 0;
}

static int fail_with(struct conn *conn, int status)
{
    conn->error_status = status;
    return -1;
}

static int count_header_bytes(struct conn *conn, size_t len)
{
    conn->header_bytes += len;
    return conn->header_bytes > conn->server->opts.max_header_bytes ? -1 : 0;
}

static void finish_header(struct conn *conn)
{
    if (conn->header_count == conn->header_cap) {
        conn->header_cap = conn->header_cap ? conn->header_cap * 2 : 16;
        conn->names = sw_xrealloc(conn->names, conn->header_cap * sizeof(char *));
        conn->values = sw_xrealloc(conn->values, conn->header_cap * sizeof(char *));
    }
    char *name = sw_xstrndup(conn->field.data ? conn->field.data : "", conn->field.len);
    for (char *c = name; *c != '\0'; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    size_t vlen = conn->value.len;
    while (vlen > 0 && (conn->value.data[vlen - 1] == ' ' || conn->value.data[vlen - 1] == '\t'))
        vlen--;
    conn->names[conn->header_count] = name;
    conn->values[conn->header_count] = sw_xstrndup(conn->value.data ? conn->value.data : "", vlen);
    conn->header_count++;
    conn->field.len = 0;
    conn->value.len = 0;
    conn->in_value = false;
}

static int on_message_begin(http_parser *parser)
{
    request_reset(parser->data);
    return 0;
}

static int on_url(http_parser *parser, const char *at, size_t len)
{
    struct conn *conn = parser->data;
    if (count_header_bytes(conn, len) != 0)
        return fail_with(conn,
                         conn->url.len + len > conn->server->opts.max_header_bytes ? 414 : 431);
    buf_append(&conn->url, at, len);
    return 0;
}

static int on_header_field(http_parser *parser, const char *at, size_t len)
{
    struct conn *conn = parser->data;
    size_t cost = len;
    if (conn->in_value)
        finish_header(conn);
    if (conn->field.len == 0)
        cost += HEADER_LINE_OVERHEAD;
    if (count_header_bytes(conn, cost) != 0)
        return fail_with(conn, 431);
    buf_append(&conn->field, at, len);
    return 0;
}

static int on_header_value(http_parser *parser, const char *at, size_t len)
{
    struct conn *conn = parser->data;
    if (count_header_bytes(conn, len) != 0)
        return fail_with(conn, 431);
    conn->in_value = true;
    buf_append(&conn->value, at, len);
    return 0;
}

static void send_continue(struct conn *conn);

static int on_headers_complete(http_parser *parser)
{
    struct conn *conn = parser->data;
    if (conn->in_value || conn->field.len > 0)
        finish_header(conn);
    /* Refuse an announced oversized body before reading a byte of it. */
    if ((parser->flags & F_CONTENTLENGTH) &&
        parser->content_length > (uint64_t)conn->server->opts.max_body_bytes)
        return fail_with(conn, 413);
    for (size_t i = 0; i < conn->header_count; i++) {
        if (strcmp(conn->names[i], "expect") == 0) {
            if (strcasecmp(conn->values[i], "100-continue") != 0)
                return fail_with(conn, 417);
            if (parser->http_major == 1 && parser->http_minor >= 1)
                send_continue(conn);
        }
    }
    return 0;
}

static int on_body(http_parser *parser, const char *at, size_t len)
{
    struct conn *conn = parser->data;
    if (conn->body.len + len > conn->server->opts.max_body_bytes)
        return fail_with(conn, 413);
    buf_append(&conn->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *parser)
{
    struct conn *conn = parser->data;
    struct sw_http_server *server = conn->server;
    /* The connection failed under the parser (a 100 Continue that could not be sent). */
    if (conn->state != CONN_READING)
        return -1;

    struct sw_http_exchange *ex = sw_xcalloc(1, sizeof(*ex));

    ex->server = server;
    ex->conn = conn;
    split_target(conn->url.data ? conn->url.data : "", conn->url.len,
                 parser->method == HTTP_CONNECT, &ex->path, &ex->query);
    ex->req.body_len = conn->body.len;
    ex->body = buf_take(&conn->body);
    ex->names = conn->names;
    ex->values = conn->values;
    ex->header_count = conn->header_count;
    conn->names = NULL;
    conn->values = NULL;
    conn->header_count = 0;
    conn->header_cap = 0;
    /* After an upgrade the bytes that follow are another protocol: answer, then close. */
    ex->keep_alive = http_should_keep_alive(parser) && !parser->upgrade;
    ex->head = parser->method == HTTP_HEAD;

    ex->req.method = http_method_str((enum http_method)parser->method);
    ex->req.path = ex->path;
    ex->req.query = ex->query;
    ex->req.body = ex->body;
    ex->req.header_names = (const char *const *)ex->names;
    ex->req.header_values = (const char *const *)ex->values;
    ex->req.header_count = ex->header_count;

    ex->next = server->exchanges;
    if (server->exchanges != NULL)
        server->exchanges->prev = ex;
    server->exchanges = ex;

    conn->exchange = ex;
    conn->request_ready = true;
    /* Stop here: the next pipelined request waits until this one is answered. */
    http_parser_pause(parser, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- writing -------------------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *conn = req->data;
    free(req);
    if (status < 0 && conn->state != CONN_CLOSING)
        conn_close(conn);
}

static void conn_linger(struct conn *conn)
{
    conn->state = CONN_LINGERING;
    uint64_t idle = conn->server->opts.idle_timeout_ms;
    conn_arm_timer(conn, idle < LINGER_MAX_MS ? idle : LINGER_MAX_MS);
    uv_shutdown_t *req = sw_xcalloc(1, sizeof(*req));
    req->data = conn;
    if (uv_shutdown(req, (uv_stream_t *)&conn->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(conn);
        return;
    }
    if (!conn->reading && uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) == 0)
        conn->reading = true;
}

static void conn_resume(struct conn *conn)
{
    conn->state = CONN_READING;
    conn_arm_timer(conn, conn->server->opts.idle_timeout_ms);
    http_parser_pause(&conn->parser, 0);
    /* Answered from inside the handler: the dispatch loop below it parses what is stashed,
     * so pipelined requests are served in a loop rather than by recursion. */
    if (conn->dispatching)
        return;
    conn_drain_input(conn);
    if (conn->state == CONN_READING && !conn->reading) {
        if (uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) != 0) {
            conn_close(conn);
            return;
        }
        conn->reading = true;
    }
}

/* A write is out (status 0) or failed: go on with the connection. */
static void write_finished(struct conn *conn, int kind, int status)
{
    if (conn->state == CONN_CLOSING || kind == WRITE_INTERIM)
        return;
    if (status < 0) {
        sw_log(SW_LOG_DEBUG, "http_server", "write failed: %s", uv_strerror(status));
        conn_close(conn);
    } else if (conn->peer_eof) {
        conn_close(conn);
    } else if (kind == WRITE_RESPONSE_KEEP) {
        conn_resume(conn);
    } else {
        conn_linger(conn);
    }
}

static void on_written(uv_write_t *req, int status)
{
    struct write_req *wr = (struct write_req *)req;
    struct conn *conn = wr->conn;
    int kind = wr->kind;
    free(wr->data);
    free(wr);
    write_finished(conn, kind, status);
}

/* Takes ownership of data. A response normally fits the socket buffer: written at once
 * with uv_try_write, the connection goes back to reading in the same callback, without a
 * write request, a loop turn for its callback, or stopping and restarting the read
 * (two epoll_ctl calls per request). What the kernel did not take goes through uv_write. */
static void conn_write(struct conn *conn, char *data, size_t len, int kind)
{
    uv_buf_t b = uv_buf_init(data, (unsigned int)len);
    int rc = uv_try_write((uv_stream_t *)&conn->tcp, &b, 1);
    if (rc == (int)len) {
        free(data);
        write_finished(conn, kind, 0);
        return;
    }
    if (rc < 0 && rc != UV_EAGAIN) {
        sw_log(SW_LOG_DEBUG, "http_server", "write failed: %s", uv_strerror(rc));
        free(data);
        conn_close(conn);
        return;
    }
    if (rc > 0)
        b = uv_buf_init(data + rc, (unsigned int)(len - (size_t)rc));
    struct write_req *wr = sw_xcalloc(1, sizeof(*wr));
    wr->conn = conn;
    wr->data = data;
    wr->kind = kind;
    rc = uv_write(&wr->req, (uv_stream_t *)&conn->tcp, &b, 1, on_written);
    if (rc != 0) {
        sw_log(SW_LOG_DEBUG, "http_server", "write failed: %s", uv_strerror(rc));
        free(data);
        free(wr);
        conn_close(conn);
        return;
    }
    if (kind != WRITE_INTERIM) {
        conn->state = CONN_WRITING;
        conn_arm_timer(conn, conn->server->opts.idle_timeout_ms);
    }
}

static void send_continue(struct conn *conn)
{
    static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";
    conn_write(conn, sw_xstrdup(interim), sizeof(interim) - 1, WRITE_INTERIM);
}

static const char *reason_phrase(int status)
{
    const char *reason = http_status_str((enum http_status)status);
    return reason != NULL && reason[0] != '<' ? reason : "Status";
}

/* A header the handler may not set: the server owns the message framing. */
static bool header_is_reserved(const char *line)
{
    static const char *const reserved[] = {"content-length:", "transfer-encoding:", "connection:"};
    for (size_t i = 0; i < SW_ARRAY_LEN(reserved); i++)
        if (strncasecmp(line, reserved[i], strlen(reserved[i])) == 0)
            return true;
    return false;
}

static char *put(char *p, const char *s, size_t len)
{
    memcpy(p, s, len);
    return p + len;
}

/* The whole message in one allocation: sized first, then copied. */
static char *build_response(int status, const char *content_type, const char *const *headers,
                            size_t header_count, const char *body, size_t body_len, bool keep_alive,
                            bool head, size_t *out_len)
{
    static const char ct_name[] = "Content-Type: ";
    static const char keep[] = "Connection: keep-alive\r\n\r\n";
    static const char closing[] = "Connection: close\r\n\r\n";
    char status_line[128];
    char length_line[64] = "";
    /* 1xx, 204 and 304 carry no body and no Content-Length (RFC 9110 §8.6). */
    bool bodiless = status < 200 || status == 204 || status == 304;
    bool with_type = content_type != NULL && strpbrk(content_type, "\r\n") == NULL && !bodiless;
    bool with_body = !bodiless && !head && body_len > 0;

    int status_len = snprintf(status_line, sizeof(status_line), "HTTP/1.1 %d %s\r\n", status,
                              reason_phrase(status));
    int length_len = 0;
    if (!bodiless)
        length_len =
            snprintf(length_line, sizeof(length_line), "Content-Length: %zu\r\n", body_len);
    size_t type_len = with_type ? strlen(content_type) : 0;
    size_t size =
        (size_t)status_len + (size_t)length_len + (keep_alive ? sizeof(keep) : sizeof(closing)) - 1;
    if (with_type)
        size += sizeof(ct_name) - 1 + type_len + 2;
    for (size_t i = 0; i < header_count; i++) {
        const char *h = headers[i];
        /* CR or LF in a header would let a value split the response. */
        if (h == NULL || strpbrk(h, "\r\n") != NULL || strchr(h, ':') == NULL ||
            header_is_reserved(h))
            continue;
        size += strlen(h) + 2;
    }
    if (with_body)
        size += body_len;

    char *out = sw_xmalloc(size + 1);
    char *p = put(out, status_line, (size_t)status_len);
    if (with_type) {
        p = put(p, ct_name, sizeof(ct_name) - 1);
        p = put(p, content_type, type_len);
        p = put(p, "\r\n", 2);
    }
    for (size_t i = 0; i < header_count; i++) {
        const char *h = headers[i];
        if (h == NULL || strpbrk(h, "\r\n") != NULL || strchr(h, ':') == NULL ||
            header_is_reserved(h)) {
            sw_log(SW_LOG_WARN, "http_server", "dropping invalid or reserved response header");
            continue;
        }
        p = put(p, h, strlen(h));
        p = put(p, "\r\n", 2);
    }
    p = put(p, length_line, (size_t)length_len);
    p = keep_alive ? put(p, keep, sizeof(keep) - 1) : put(p, closing, sizeof(closing) - 1);
    if (with_body)
        p = put(p, body, body_len);
    *p = '\0';
    *out_len = (size_t)(p - out);
    return out;
}

/* Answer a request the parser refused, then close. */
static void conn_send_error(struct conn *conn, int status)
{
    const char *text = reason_phrase(status);
    char body[128];
    snprintf(body, sizeof(body), "%s\n", text);
    size_t len;
    char *msg =
        build_response(status, "text/plain", NULL, 0, body, strlen(body), false, false, &len);
    sw_log(SW_LOG_DEBUG, "http_server", "refusing request: %d %s", status, text);
    conn_write(conn, msg, len, WRITE_RESPONSE_CLOSE);
}

void sw_http_respond(struct sw_http_exchange *ex, int status, const char *content_type,
                     const char *const *headers, size_t header_count, const char *body,
                     size_t body_len)
{
    if (ex == NULL)
        return;
    struct conn *conn = ex->conn;
    if (conn == NULL || conn->state != CONN_HANDLING) {
        /* Orphaned: the client is gone; the answer has nowhere to go. */
        exchange_free(ex);
        return;
    }
    if (status < 100 || status > 999) {
        sw_log(SW_LOG_ERROR, "http_server", "handler answered invalid status %d", status);
        status = 500;
        header_count = 0;
        body_len = 0;
    }
    if (body == NULL)
        body_len = 0;
    bool keep_alive = ex->keep_alive && !conn->server->closing;
    size_t len;
    char *msg = build_response(status, content_type, headers, header_count, body, body_len,
                               keep_alive, ex->head, &len);
    conn->exchange = NULL;
    exchange_free(ex);
    conn_write(conn, msg, len, keep_alive ? WRITE_RESPONSE_KEEP : WRITE_RESPONSE_CLOSE);
}

void sw_http_exchange_drop(struct sw_http_exchange *ex)
{
    if (ex == NULL)
        return;
    struct conn *conn = ex->conn;
    if (conn != NULL)
        conn->exchange = NULL;
    exchange_free(ex);
    if (conn != NULL)
        conn_close(conn);
}

/* ---- reading -------------------------------------------------------------------------- */

static void conn_dispatch(struct conn *conn)
{
    struct sw_http_server *server = conn->server;
    struct sw_http_exchange *ex = conn->exchange;

    conn->request_ready = false;
    conn->state = CONN_HANDLING;
    uv_timer_stop(&conn->timer);
    conn->dispatching = true;
    server->handler(server->ud, ex, &ex->req);
    conn->dispatching = false;
    /* Answered later, or the answer is still being written: stop reading, which is the
     * backpressure that keeps one request per connection in memory. An answer already out
     * leaves the read running (the common case costs no epoll_ctl). */
    if ((conn->state == CONN_HANDLING || conn->state == CONN_WRITING) && conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = false;
    }
}

/* Feed bytes to the parser. Returns how many it consumed: all of them, unless it paused
 * on a complete request (the rest is the next request). A refused request is answered
 * here and the rest of the input is dropped. */
static size_t conn_parse(struct conn *conn, const char *data, size_t len)
{
    size_t used = http_parser_execute(&conn->parser, &parser_settings, data, len);
    if (conn->request_ready)
        return used;
    enum http_errno err = HTTP_PARSER_ERRNO(&conn->parser);
    if (err != HPE_OK) {
        int status = conn->error_status;
        if (status == 0)
            status = err == HPE_HEADER_OVERFLOW ? 431 : 400;
        if (conn->state == CONN_READING)
            conn_send_error(conn, status);
        return len;
    }
    return len;
}

static void conn_drain_input(struct conn *conn)
{
    while (conn->state == CONN_READING && conn->stash_off < conn->stash.len) {
        const char *data = conn->stash.data + conn->stash_off;
        size_t avail = conn->stash.len - conn->stash_off;
        conn->stash_off += conn_parse(conn, data, avail);
        if (conn->stash_off == conn->stash.len)
            conn->stash.len = conn->stash_off = 0;
        if (conn->request_ready && conn->state == CONN_READING)
            conn_dispatch(conn);
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct conn *conn = handle->data;
    buf->base = conn->server->read_buffer;
    buf->len = sizeof(conn->server->read_buffer);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *conn = stream->data;
    if (nread == 0 || conn->state == CONN_CLOSING)
        return;
    if (nread < 0) {
        conn->reading = false; /* libuv stops reading at EOF and on errors */
        if (nread == UV_EOF && conn->state == CONN_WRITING) {
            /* A client that sent an oversized request and then shut down its side still
             * gets the refusal being written; close once it is out. */
            conn->peer_eof = true;
            return;
        }
        /* Otherwise: a half-closed client with a request in progress cannot finish it,
         * one that already got its answers is done, and a lingering close is over. */
        if (nread != UV_EOF)
            sw_log(SW_LOG_DEBUG, "http_server", "read: %s", uv_strerror((int)nread));
        conn_close(conn);
        return;
    }
    if (conn->state != CONN_READING)
        return; /* lingering or answering a refused request: discard */

    size_t len = (size_t)nread;
    size_t used = conn_parse(conn, buf->base, len);
    if (conn->request_ready && conn->state == CONN_READING) {
        if (used < len)
            buf_append(&conn->stash, buf->base + used, len - used);
        conn_dispatch(conn);
        /* Answered at once: the pipelined requests that came along are next. */
        conn_drain_input(conn);
    }
}

/* ---- connections ---------------------------------------------------------------------- */

static void server_unref(struct sw_http_server *server)
{
    if (--server->refs == 0 && server->closing) {
        free(server->host);
        free(server);
    }
}

static void on_conn_handle_closed(uv_handle_t *handle)
{
    struct conn *conn = handle->data;
    if (--conn->open_handles > 0)
        return;
    struct sw_http_server *server = conn->server;
    request_reset(conn);
    free(conn->names);
    free(conn->values);
    buf_free(&conn->url);
    buf_free(&conn->field);
    buf_free(&conn->value);
    buf_free(&conn->body);
    buf_free(&conn->stash);
    free(conn);
    server_unref(server);
}

static void conn_close(struct conn *conn)
{
    if (conn->state == CONN_CLOSING)
        return;
    struct sw_http_server *server = conn->server;
    conn->state = CONN_CLOSING;
    if (conn->exchange != NULL) {
        conn->exchange->conn = NULL;
        conn->exchange = NULL;
    }
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        server->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    server->conn_count--;
    uv_close((uv_handle_t *)&conn->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&conn->timer, on_conn_handle_closed);
}

static void on_timer(uv_timer_t *timer)
{
    struct conn *conn = timer->data;
    if (conn->state != CONN_LINGERING)
        sw_log(SW_LOG_DEBUG, "http_server", "closing connection: idle timeout");
    conn_close(conn);
}

static void conn_arm_timer(struct conn *conn, uint64_t timeout_ms)
{
    uv_timer_start(&conn->timer, on_timer, timeout_ms, 0);
}

static void on_rejected_closed(uv_handle_t *handle)
{
    free(handle);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct sw_http_server *server = listener->data;
    if (status < 0) {
        sw_log(SW_LOG_WARN, "http_server", "accept: %s", uv_strerror(status));
        return;
    }
    if (server->closing)
        return;

    if (server->conn_count >= server->opts.max_connections) {
        uv_tcp_t *reject = sw_xcalloc(1, sizeof(*reject));
        uv_tcp_init(server->loop, reject);
        if (uv_accept(listener, (uv_stream_t *)reject) == 0)
            sw_log(SW_LOG_WARN, "http_server", "connection limit (%zu) reached; refusing",
                   server->opts.max_connections);
        uv_close((uv_handle_t *)reject, on_rejected_closed);
        return;
    }

    struct conn *conn = sw_xcalloc(1, sizeof(*conn));
    conn->server = server;
    uv_tcp_init(server->loop, &conn->tcp);
    uv_timer_init(server->loop, &conn->timer);
    conn->tcp.data = conn;
    conn->timer.data = conn;
    conn->open_handles = 2;
    conn->state = CONN_READING;
    server->refs++;
    conn->next = server->conns;
    if (server->conns != NULL)
        server->conns->prev = conn;
    server->conns = conn;
    server->conn_count++;

    int rc = uv_accept(listener, (uv_stream_t *)&conn->tcp);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    if (rc != 0) {
        sw_log(SW_LOG_WARN, "http_server", "accept: %s", uv_strerror(rc));
        conn_close(conn);
        return;
    }
    conn->reading = true;
    uv_tcp_nodelay(&conn->tcp, 1);
    http_parser_init(&conn->parser, HTTP_REQUEST);
    conn->parser.data = conn;
    conn_arm_timer(conn, server->opts.idle_timeout_ms);
}

/* ---- server --------------------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *handle)
{
    server_unref(handle->data);
}

/* A bound, listening, non-blocking socket, or -1 with err set. Done with plain sockets so
 * that every failure happens before a uv handle exists (no asynchronous cleanup). */
static int listen_socket(const char *host, int port, struct sw_error *err)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;
    const char *ip = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;

    memset(&addr, 0, sizeof(addr));
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&addr) == 0) {
        addr_len = sizeof(struct sockaddr_in);
    } else if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&addr) == 0) {
        addr_len = sizeof(struct sockaddr_in6);
    } else {
        sw_error_set(err, SW_EINVAL, "http server: host \"%s\" is not an IP address", host);
        return -1;
    }

    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sw_error_set(err, SW_EIO, "http server: socket: %s", strerror(errno));
        return -1;
    }
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, (struct sockaddr *)&addr, addr_len) != 0) {
        sw_error_set(err, errno == EADDRINUSE ? SW_EEXIST : SW_EIO, "http server: bind %s:%d: %s",
                     host, port, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        sw_error_set(err, SW_EIO, "http server: listen %s:%d: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    if (addr.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&addr)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
}

/* A client that disconnects while we write must cost an EPIPE, not the process: libuv
 * writes with plain write(2). Only a default disposition is changed. */
static void ignore_sigpipe(void)
{
    struct sigaction current;
    if (sigaction(SIGPIPE, NULL, &current) == 0 && current.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

struct sw_http_server *sw_http_server_start(uv_loop_t *loop, const struct sw_http_server_opts *opts,
                                            sw_http_handler handler, void *ud, struct sw_error *err)
{
    if (loop == NULL || opts == NULL || opts->host == NULL || handler == NULL) {
        sw_error_set(err, SW_EINVAL, "http server: loop, opts->host and handler are required");
        return NULL;
    }
    if (opts->port < 0 || opts->port > 65535) {
        sw_error_set(err, SW_EINVAL, "http server: port %d out of range", opts->port);
        return NULL;
    }

    int fd = listen_socket(opts->host, opts->port, err);
    if (fd < 0)
        return NULL;
    ignore_sigpipe();

    struct sw_http_server *server = sw_xcalloc(1, sizeof(*server));
    server->loop = loop;
    server->opts = *opts;
    server->host = sw_xstrdup(opts->host);
    server->opts.host = server->host;
    if (server->opts.max_header_bytes == 0)
        server->opts.max_header_bytes = DEFAULT_MAX_HEADER_BYTES;
    if (server->opts.max_body_bytes == 0)
        server->opts.max_body_bytes = DEFAULT_MAX_BODY_BYTES;
    if (server->opts.idle_timeout_ms == 0)
        server->opts.idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    if (server->opts.max_connections == 0)
        server->opts.max_connections = DEFAULT_MAX_CONNECTIONS;
    server->handler = handler;
    server->ud = ud;
    server->port = bound_port(fd);
    server->refs = 1;

    uv_tcp_init(loop, &server->listener);
    server->listener.data = server;
    int rc = uv_tcp_open(&server->listener, fd);
    if (rc != 0)
        close(fd); /* not adopted by the handle */
    else
        rc = uv_listen((uv_stream_t *)&server->listener, LISTEN_BACKLOG, on_connection);
    if (rc != 0) {
        sw_error_set(err, SW_EIO, "http server: listen %s:%d: %s", opts->host, opts->port,
                     uv_strerror(rc));
        /* Closing the handle (which closes an adopted fd) frees the server on the next
         * loop turn: the caller must run the loop before closing it. */
        server->closing = true;
        uv_close((uv_handle_t *)&server->listener, on_listener_closed);
        return NULL;
    }
    sw_log(SW_LOG_DEBUG, "http_server", "listening on %s:%d", server->host, server->port);
    return server;
}

int sw_http_server_port(const struct sw_http_server *server)
{
    return server != NULL ? server->port : -1;
}

void sw_http_server_close(struct sw_http_server *server)
{
    if (server == NULL || server->closing)
        return;
    server->closing = true;
    uv_close((uv_handle_t *)&server->listener, on_listener_closed);
    while (server->conns != NULL)
        conn_close(server->conns);
    while (server->exchanges != NULL)
        exchange_free(server->exchanges);
}
