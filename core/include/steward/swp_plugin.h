/* swp_plugin.h — the descriptor a steward plugin exports, and one vtable per kind.
 *
 * A plugin is a shared object exporting exactly one symbol:
 *
 *     SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void);
 *
 * The host refuses a plugin whose abi_major differs from SWP_ABI_MAJOR, whose abi_minor is
 * newer than the host's, or whose size is below the 1.0 size. See docs/plugins.md.
 *
 * Every op is asynchronous: op(state, args..., done, ud). If it returns < 0 the callback
 * never fires; if it returns 0 the callback fires exactly once, possibly before the op
 * returns, and with SWP_ECANCELED when the plugin is destroyed first. A NULL op means
 * "unsupported" and the host answers SWP_ENOTSUP for it.
 */
#ifndef SWP_PLUGIN_H
#define SWP_PLUGIN_H

#include "swp_host.h"
#include "swp_types.h"

#if defined(__GNUC__)
#define SWP_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define SWP_PLUGIN_EXPORT
#endif

enum swp_kind {
    SWP_KIND_MARKET = 1u << 0,
    SWP_KIND_DNS = 1u << 1,
    SWP_KIND_METRICS = 1u << 2,
    SWP_KIND_PROBE = 1u << 3,
    SWP_KIND_NOTIFY = 1u << 4,
};

/* Types of plugin configuration values (validated by the host before init). */
enum swp_cfg_type {
    SWP_CFG_STRING = 1,
    SWP_CFG_INT = 2,
    SWP_CFG_DOUBLE = 3, /* an integer literal is accepted too */
    SWP_CFG_BOOL = 4,
    SWP_CFG_OBJECT = 5,
    SWP_CFG_ARRAY = 6,
    SWP_CFG_SECRET_ENV = 7, /* the value names an environment variable holding a secret */
    SWP_CFG_DURATION = 8,   /* "500ms", "10s", "5m", "1h" or a number of seconds; cfg_int
                               returns milliseconds */
    SWP_CFG_PATH = 9,       /* a file path; cfg_str returns it resolved against the directory
                               of the configuration file that set it */
};

struct swp_config_entry {
    const char *name;
    int type;                  /* enum swp_cfg_type */
    const char *default_value; /* JSON text of the default, or NULL */
    bool required;
    const char *description;
};

/* ---- market ------------------------------------------------------------------------ */

struct swp_acquire_req {
    uint32_t size;
    const char *key;             /* idempotency key: acquiring twice with one key buys once */
    const char *group;
    const char *region;          /* location-region to pin the placement to */
    const char *profile_json;    /* the group's resources/profile object as JSON text */
    const char *sdl_template;    /* the group's SDL template text, or NULL */
    double max_price_usd_hour;   /* 0: no cap */
    const char *const *avoid_providers; /* providers not to choose (track record, spread) */
    size_t avoid_count;
    const char *const *prefer_providers; /* tie-breaker hints from the policy */
    size_t prefer_count;
    uint64_t deadline_ms;        /* give up (and close what was created) after this long */
    /* since 1.0 — placement pinning: only these providers may be chosen (e.g. the data
     * center of an ML job's master). None listed (only_count 0) means any. A hard
     * constraint, unlike prefer_providers: with no eligible provider the acquire fails.
     * Read only when size covers the field (hosts built before it pass a smaller size). */
    const char *const *only_providers;
    size_t only_count;
};

/* progress may fire several times (CREATED, LEASED) before done; both borrow unit. */
typedef void (*swp_unit_cb)(void *ud, int status, const struct swp_unit *unit,
                            const struct swp_error *err);
typedef void (*swp_done_cb)(void *ud, int status, const struct swp_error *err);
typedef void (*swp_units_cb)(void *ud, int status, const struct swp_unit *units, size_t count,
                             const struct swp_error *err);
typedef void (*swp_offers_cb)(void *ud, int status, const struct swp_offer *offers,
                              size_t count, const struct swp_error *err);

struct swp_market_ops {
    uint32_t size;
    /* Acquire one unit. progress reports CREATED (market_id known: the core journals it
     * at once) and LEASED; done reports READY, or an error after the plugin closed
     * whatever it had created. */
    int (*acquire)(void *state, const struct swp_acquire_req *req, swp_unit_cb progress,
                   swp_unit_cb done, void *ud);
    /* Release (close) a unit. Idempotent: releasing a closed unit succeeds. */
    int (*release)(void *state, const char *market_id, swp_done_cb done, void *ud);
    /* Every open unit the account owns, including ones this process does not know. */
    int (*list)(void *state, swp_units_cb done, void *ud);
    /* Current asking prices per region (for ctx.offers and the budget guard). */
    int (*offers)(void *state, swp_offers_cb done, void *ud);
    /* since 1.0 — optional (NULL: not offered). A number that changes whenever what list
     * would answer may change (a unit added or closed, any listed field set); equal numbers
     * read before a list call and when its answer arrives promise that answer lists the
     * same units, in the same order, with the same values, as the last answer read under
     * that number. Never 0. Lets the core skip re-pairing its units with an unchanged
     * listing (a simulated marketplace is listed every 30 simulated seconds). */
    uint64_t (*list_version)(void *state);
};

/* ---- dns ---------------------------------------------------------------------------- */

struct swp_rrset {
    const char *name;   /* fully qualified, with the trailing dot */
    const char *type;   /* "A", "AAAA", "CNAME", "TXT" */
    uint32_t ttl;
    const char *const *records;
    size_t record_count;
};

typedef void (*swp_rrsets_cb)(void *ud, int status, const struct swp_rrset *rrsets,
                              size_t count, const struct swp_error *err);

struct swp_dns_ops {
    uint32_t size;
    int (*list)(void *state, const char *zone, swp_rrsets_cb done, void *ud);
    int (*upsert)(void *state, const char *zone, const struct swp_rrset *rrset,
                  swp_done_cb done, void *ud);
    int (*remove)(void *state, const char *zone, const char *name, const char *type,
                  swp_done_cb done, void *ud);
    /* since 1.0 — compare-and-set of one RRset: make (desired->name, desired->type) hold
     * desired's records (none: delete the RRset) only if the server's copy holds exactly
     * expected's records (none: only if the RRset does not exist). Record order and TTL
     * do not matter. done gets SWP_EAGAIN when the server's copy differs (a concurrent
     * change: list again before retrying). RFC 2136 maps this to prerequisites, so the
     * check and the change are one atomic update on the server. NULL: the core uses
     * upsert/remove and cannot detect a concurrent change. */
    int (*update_if)(void *state, const char *zone, const struct swp_rrset *expected,
                     const struct swp_rrset *desired, swp_done_cb done, void *ud);
};

/* ---- metrics ------------------------------------------------------------------------ */

typedef void (*swp_samples_cb)(void *ud, int status, const struct swp_sample *samples,
                               size_t count, const struct swp_error *err);

struct swp_metrics_ops {
    uint32_t size;
    /* Evaluate a query at the current clock time and return a vector. */
    int (*query)(void *state, const char *query, swp_samples_cb done, void *ud);
};

/* ---- probe -------------------------------------------------------------------------- */

struct swp_probe_result {
    const char *target;
    bool ok;
    long http_status;
    double connect_ms;
    double tls_ms;
    double first_byte_ms;
    double total_ms;
    const char *error; /* NULL when ok */
};

typedef void (*swp_probe_cb)(void *ud, int status, const struct swp_probe_result *result);

struct swp_probe_ops {
    uint32_t size;
    int (*probe)(void *state, const char *target, swp_probe_cb done, void *ud);
};

/* ---- notify ------------------------------------------------------------------------- */

struct swp_notify_ops {
    uint32_t size;
    /* event_json: {"type": ..., "severity": ..., "message": ..., ...} */
    int (*notify)(void *state, const char *event_json, swp_done_cb done, void *ud);
};

/* ---- the descriptor ----------------------------------------------------------------- */

struct swp_plugin {
    uint32_t abi_major; /* SWP_ABI_MAJOR at build time */
    uint32_t abi_minor; /* SWP_ABI_MINOR at build time */
    uint32_t size;      /* sizeof(struct swp_plugin) at build time */

    const char *name;        /* unique; [a-z0-9_]+ */
    const char *version;     /* the plugin's own version */
    const char *description;
    uint32_t kinds;          /* enum swp_kind bits */

    const struct swp_config_entry *config; /* the keys the plugin accepts */
    size_t config_count;

    /* Called once after the host validated the configuration. Store the instance in
     * *state. On failure return < 0 and fill err; destroy is not called then. */
    int (*init)(const struct swp_host *host, void **state, struct swp_error *err);
    /* Release everything. Pending ops must complete with SWP_ECANCELED first. */
    void (*destroy)(void *state);

    const struct swp_market_ops *market;
    const struct swp_dns_ops *dns;
    const struct swp_metrics_ops *metrics;
    const struct swp_probe_ops *probe;
    const struct swp_notify_ops *notify;
};

typedef const struct swp_plugin *(*swp_plugin_entry_fn)(void);

/* The one symbol a plugin defines (declared here so plugins get the prototype). */
SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void);

#define SWP_PLUGIN_ENTRY_SYMBOL "swp_plugin_entry"

/* The smallest descriptor a 1.x host accepts: everything up to and including notify. */
#define SWP_PLUGIN_SIZE_V1_0 (offsetof(struct swp_plugin, notify) + sizeof(void *))

#endif /* SWP_PLUGIN_H */
