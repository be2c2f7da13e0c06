/* swp_host.h — the services steward offers a plugin.
 *
 * The host hands each plugin instance its own table. A plugin calls the host only through
 * it, never by core symbol (a plugin is linked with -Wl,--no-undefined against nothing
 * but libc). The table is append-only: a plugin checks host->size before using a field
 * marked newer than the minor it was built against.
 *
 * Context: every function here is loop thread only, and so is every callback the host
 * invokes.
 */
#ifndef SWP_HOST_H
#define SWP_HOST_H

#include "swp_types.h"

struct swp_host;

typedef void (*swp_timer_cb)(void *ud);
/* status is 0 when a response arrived (any HTTP status), < 0 on a transport error
 * (SWP_ETIMEDOUT, SWP_ETOOBIG, SWP_EHTTP, SWP_ECANCELED). resp is borrowed for the call. */
typedef void (*swp_http_cb)(void *ud, int status, const struct swp_http_resp *resp);
/* since 1.0 — status is 0 when a complete reply arrived (reply/len borrowed for the call),
 * < 0 otherwise: SWP_ETIMEDOUT, SWP_EIO (refused, reset, unreachable, closed early),
 * SWP_ETOOBIG, SWP_EINVAL (bad address), SWP_ECANCELED. */
typedef void (*swp_net_cb)(void *ud, int status, const uint8_t *reply, size_t len);

struct swp_host {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t size; /* sizeof(struct swp_host) in the host that filled it */

    /* since 1.0 — logging, prefixed with the plugin name. Values registered as secrets
     * are redacted before the line is written. */
    void (*log)(const struct swp_host *h, int level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* since 1.0 — time on the current clock (live or simulated). Never read time any
     * other way: simulation swaps the clock. Milliseconds since the Unix epoch. */
    int64_t (*now_ms)(const struct swp_host *h);

    /* since 1.0 — one-shot timer on the current clock. Returns an id > 0, or 0 on failure.
     * The callback fires once unless stopped first. Timers still pending when the plugin
     * is destroyed are stopped by the host. */
    uint64_t (*timer_start)(const struct swp_host *h, uint64_t delay_ms, swp_timer_cb cb,
                            void *ud);
    void (*timer_stop)(const struct swp_host *h, uint64_t timer_id);

    /* since 1.0 — asynchronous HTTP(S) with TLS verification on. Returns a request id > 0
     * and then calls cb exactly once, or returns 0 (cb never fires). */
    uint64_t (*http_request)(const struct swp_host *h, const struct swp_http_req *req,
                             swp_http_cb cb, void *ud);
    /* Cancel a request in flight: its cb fires with SWP_ECANCELED before this returns. */
    void (*http_cancel)(const struct swp_host *h, uint64_t request_id);

    /* since 1.0 — the plugin's own durable key-value space in the journal.
     * kv_get: *value_out is owned by the caller, free with h->free; SWP_ENOENT if absent. */
    int (*kv_get)(const struct swp_host *h, const char *key, char **value_out);
    int (*kv_set)(const struct swp_host *h, const char *key, const char *value);
    int (*kv_del)(const struct swp_host *h, const char *key);

    /* since 1.0 — tell the core something happened (a lease was lost, an alert). */
    void (*emit_event)(const struct swp_host *h, const struct swp_event *ev);

    /* since 1.0 — memory the host may free (kv_get values). */
    void *(*alloc)(size_t size);
    void (*free)(void *ptr);

    /* since 1.0 — validated plugin configuration, defaults applied. Returned strings are
     * borrowed until destroy. cfg_str returns NULL when the key is absent and has no
     * default. cfg_json returns the value as JSON text (for objects and arrays). For a
     * key of type SWP_CFG_SECRET_ENV, cfg_str returns the environment variable's value
     * and the host redacts it from every log line. */
    const char *(*cfg_str)(const struct swp_host *h, const char *key);
    int64_t (*cfg_int)(const struct swp_host *h, const char *key);
    double (*cfg_double)(const struct swp_host *h, const char *key);
    bool (*cfg_bool)(const struct swp_host *h, const char *key);
    const char *(*cfg_json)(const struct swp_host *h, const char *key);

    /* since 1.0 — the steward instance id (stamp it on what you create so recovery can
     * tell steward's units from foreign ones). */
    const char *(*instance_id)(const struct swp_host *h);

    /* since 1.0 — deterministic randomness: a per-plugin stream seeded from the run's
     * recorded seed, so a simulation replays exactly. Never use rand() or /dev/urandom
     * for anything that changes behaviour. */
    uint64_t (*random_u64)(const struct swp_host *h);

    /* since 1.0 — one request/reply exchange with a server over UDP or TCP on the loop
     * (what DNS updates, and any other binary protocol a plugin speaks, need without
     * touching libuv). Returns an id > 0 and then calls cb exactly once, or 0 (bad
     * request, or no network in this run: simulation) and cb never fires. Exchanges still
     * in flight when the plugin is destroyed are cancelled by the host. */
    uint64_t (*net_exchange)(const struct swp_host *h, const struct swp_net_req *req,
                             swp_net_cb cb, void *ud);
    /* since 1.0 — cb fires with SWP_ECANCELED before this returns; unknown ids are ignored. */
    void (*net_cancel)(const struct swp_host *h, uint64_t exchange_id);
};

#endif /* SWP_HOST_H */
