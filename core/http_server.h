/* http_server.h — a small HTTP/1.1 server on libuv with a maintained parser
 * (http_parser). Used by the admin API, /metrics and `steward market serve`.
 * Keep-alive, request size limits (headers and body), an idle timeout so a slow client
 * cannot hold a connection, and no blocking work: handlers answer at once or later via
 * sw_http_respond.
 * Context: loop thread only.
 */
#ifndef SW_HTTP_SERVER_H
#define SW_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "error.h"

struct sw_http_server;
struct sw_http_exchange; /* one request awaiting its response */

struct sw_http_request {
    const char *method;     /* "GET", ... */
    const char *path;       /* without the query string, percent-decoding not applied */
    const char *query;      /* after '?', or "" */
    const char *body;       /* NUL-terminated */
    size_t body_len;
    const char *const *header_names;  /* lowercased */
    const char *const *header_values;
    size_t header_count;
};

/* Header lookup, case-insensitive; NULL when absent. */
const char *sw_http_request_header(const struct sw_http_request *req, const char *name);
/* Value of one query parameter (percent-decoded), owned, or NULL. */
char *sw_http_request_query_param(const struct sw_http_request *req, const char *name);

/* Called once per request. req is borrowed until sw_http_respond is called for ex (which
 * may happen inside the handler or later, from another callback). */
typedef void (*sw_http_handler)(void *ud, struct sw_http_exchange *ex,
                                const struct sw_http_request *req);

struct sw_http_server_opts {
    const char *host;          /* "127.0.0.1" unless configured */
    int port;                  /* 0: pick a free port (see sw_http_server_port) */
    size_t max_header_bytes;   /* default 16 KiB */
    size_t max_body_bytes;     /* default 1 MiB; larger → 413 */
    uint64_t idle_timeout_ms;  /* default 30 s; also bounds a slow request */
    size_t max_connections;    /* default 256; excess connections are closed at once */
};

/* Listen on host:port. Owned; close with sw_http_server_close. NULL with err. */
struct sw_http_server *sw_http_server_start(uv_loop_t *loop,
                                            const struct sw_http_server_opts *opts,
                                            sw_http_handler handler, void *ud,
                                            struct sw_error *err);
int sw_http_server_port(const struct sw_http_server *server);
/* Closes the listener and every connection (exchanges still open are dropped without a
 * response; their handlers must not respond after this). Freed after the loop turns. */
void sw_http_server_close(struct sw_http_server *server);

/* Send the response for ex and release ex. headers are "Name: value" strings; a
 * Content-Length is added. Exactly once per exchange. */
void sw_http_respond(struct sw_http_exchange *ex, int status, const char *content_type,
                     const char *const *headers, size_t header_count, const char *body,
                     size_t body_len);
/* Drop the connection without answering (fault injection: a dropped connection). */
void sw_http_exchange_drop(struct sw_http_exchange *ex);

#endif /* SW_HTTP_SERVER_H */
