/* admin_api.h — the admin HTTP API and Prometheus /metrics, served on the runtime's loop by
 * core/http_server.h. Reads are open to whoever reaches the socket (127.0.0.1 unless
 * configured); mutations (pause/resume a policy, reload, override a group's count) need
 * `Authorization: Bearer <token>`, the token coming from an environment variable. The
 * token is compared in constant time and never logged. Handlers answer at once from
 * in-memory state or the journal; nothing blocks the loop. The routes and their JSON are
 * documented in docs/operations.md.
 * Context: loop thread only.
 */
#ifndef SW_ADMIN_API_H
#define SW_ADMIN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "clock.h"
#include "config.h"
#include "error.h"
#include "runtime.h"

struct sw_admin_api;

struct sw_admin_api_opts {
    uv_loop_t *loop;             /* borrowed */
    struct sw_runtime *runtime;  /* borrowed; must outlive the API */
    struct sw_clock *clock;      /* borrowed: uptime, relative times in queries */
    const char *host;            /* NULL: "127.0.0.1" */
    int port;                    /* 0: a free port (sw_admin_api_port) */
    const char *token;           /* bearer token for mutations (copied); NULL or "": every
                                    mutation answers 403 */
    /* Request limits handed to the HTTP server; 0 picks the default in brackets. */
    size_t max_header_bytes;     /* [8 KiB] */
    size_t max_body_bytes;       /* [64 KiB] */
    uint64_t idle_timeout_ms;    /* [10 s]: bounds a whole request, so a client trickling
                                    bytes loses its connection */
    size_t max_connections;      /* [256] */
};

/* Listen and serve. Owned; close with sw_admin_api_close. NULL with err (SW_EINVAL for a
 * bad host, SW_EEXIST when the port is taken, SW_EIO). */
struct sw_admin_api *sw_admin_api_start(const struct sw_admin_api_opts *opts,
                                        struct sw_error *err);

/* Start from config->admin for `steward run`: the token is read from the variable named by
 * admin.token_env and registered as a log secret. Returns NULL with err->code == 0 when
 * the config has no "admin" section; NULL with SW_ECONFIG when token_env names a variable
 * that is unset or empty; otherwise as sw_admin_api_start. Logs the address it serves. */
struct sw_admin_api *sw_admin_api_start_from_config(uv_loop_t *loop, struct sw_runtime *rt,
                                                    struct sw_clock *clock,
                                                    const struct sw_config *config,
                                                    struct sw_error *err);

/* The bound port (useful with port 0), or -1. */
int sw_admin_api_port(const struct sw_admin_api *api);

/* Stop listening and drop every connection; freed once the loop turns. NULL is a no-op.
 * Call before the runtime is freed. */
void sw_admin_api_close(struct sw_admin_api *api);

/* ---- the documents, for the handlers and for tests ---- */

/* GET /v1/status as JSON text (owned, free()). now_ms from the runtime's clock. */
char *sw_admin_status_json(struct sw_runtime *rt, int64_t now_ms);
/* GET /v1/status as api serves it (owned, free()): the same text as sw_admin_status_json,
 * with the sections whose inputs did not change since the last request copied from the
 * API's cache instead of written again. */
char *sw_admin_api_status_json(struct sw_admin_api *api, int64_t now_ms);
/* How many cached /v1/status sections were reused (hits) and written (writes) since the
 * API started: for tests and benchmarks. */
void sw_admin_api_status_cache_stats(const struct sw_admin_api *api, uint64_t *hits,
                                     uint64_t *writes);
/* GET /v1/leases as JSON text (owned): {"leases": [...]}. */
char *sw_admin_leases_json(struct sw_runtime *rt);
/* GET /metrics in the Prometheus text exposition format 0.0.4 (owned). */
char *sw_admin_metrics_text(struct sw_runtime *rt, int64_t now_ms);

/* Constant-time equality of two NUL-terminated strings: the time depends on the length of
 * `given` only, never on where the first difference is. NULLs are never equal. */
bool sw_admin_token_equal(const char *expected, const char *given);

#endif /* SW_ADMIN_API_H */
