/* http_client.h — asynchronous HTTP(S) on the loop: libcurl multi driven by libuv
 * (after curl's multi-uv.c). One context per socket, one non-repeating uv timer for
 * curl's timeout (0 stays 0, see http_client.c), CURLINFO_PRIVATE carries the request, info_read is
 * drained after every action. TLS verification is always on; bodies are capped.
 * Context: loop thread only.
 */
#ifndef SW_HTTP_CLIENT_H
#define SW_HTTP_CLIENT_H

#include <stdint.h>
#include <uv.h>

#include "steward/swp_types.h"

struct sw_http_client;

/* status 0: a response arrived (any HTTP status); < 0: SW_ETIMEDOUT, SW_ETOOBIG, SW_EHTTP,
 * SW_ECANCELED. resp and its body are borrowed for the call. */
typedef void (*sw_http_cb)(void *ud, int status, const struct swp_http_resp *resp,
                           const char *error_text);

/* loop is borrowed. Owned; free with sw_http_client_close. */
struct sw_http_client *sw_http_client_new(uv_loop_t *loop);
/* Cancels every request in flight (callbacks fire with SW_ECANCELED), then cleans up the
 * multi handle and closes the uv timer and socket handles; the struct is freed once they
 * are closed, which needs one more turn of the loop (uv_run). */
void sw_http_client_close(struct sw_http_client *client);

/* Start a request; everything in req is copied. Returns an id > 0 and later calls cb
 * exactly once, or returns 0 (bad arguments) and never calls cb. */
uint64_t sw_http_client_request(struct sw_http_client *client, const struct swp_http_req *req,
                                sw_http_cb cb, void *ud);
/* cb fires with SW_ECANCELED before this returns; unknown ids are ignored. */
void sw_http_client_cancel(struct sw_http_client *client, uint64_t id);
size_t sw_http_client_in_flight(const struct sw_http_client *client);

/* Counters since sw_http_client_new, for tests and diagnostics. */
struct sw_http_client_stats {
    uint64_t sockets_opened;  /* connection sockets curl opened (one per new connection) */
    uint64_t sockets_closed;  /* ... and closed */
    uint64_t watches_opened;  /* uv_poll handles created: one per socket, for its lifetime */
    uint64_t watches_closed;  /* uv_poll handles closed (a socket's at its close) */
    uint64_t watch_changes;   /* uv_poll_start/stop calls: each costs epoll_ctl calls */
    uint64_t fresh_connects;  /* requests forced onto a new connection (non-idempotent) */
};
/* Fill *out (client may be NULL: all zero). */
void sw_http_client_stats(const struct sw_http_client *client, struct sw_http_client_stats *out);

/* For tests only: trust this CA bundle file (still verifying). NULL = system default. */
void sw_http_client_set_ca_file(struct sw_http_client *client, const char *path);

#endif /* SW_HTTP_CLIENT_H */
