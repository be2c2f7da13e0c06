/* config.h — steward's configuration: JSON with comments, validated field by field.
 *
 * Every error reads `FILE:json.path: expected X, got Y` and carries SW_ECONFIG; the CLI
 * exits 2 on it. Secrets never live in the file: a key ending in "_env" names an
 * environment variable instead. See docs/configuration in README and examples/.
 */
#ifndef SW_CONFIG_H
#define SW_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct sw_group_config {
    char *name;
    int min;
    int max;
    char **regions;              /* allowed regions; none listed means any */
    size_t region_count;
    int64_t scale_up_cooldown_ms;
    int64_t scale_down_cooldown_ms;
    double max_price_usd_hour;   /* 0: no cap */
    char *profile_json;          /* "profile" object as JSON text, or NULL */
    char *sdl_template;          /* text of the "sdl" file (path relative to the config) */
    int64_t acquire_deadline_ms; /* default 8 min: below the marketplace's 10 min cleanup */
    /* ML batch: placement pinning. "providers" plus the value of the environment variable
     * named by "provider_env" (Akash injects AKASH_PROVIDER into a deployment); only these
     * providers may be chosen. None means any. */
    char **providers;
    size_t provider_count;
    /* "spread" (spread.c): the guard keeps the group across providers. */
    double spread_max_share;     /* most of the group's units one provider may hold, in
                                    (0, 1]; 0: no share limit */
    int spread_min_providers;    /* distinct providers once the group has this many units;
                                    0: none */
};

/* guard.provider_backoff (track_record.c): a provider whose involuntary closures per
 * lease-hour cross the threshold is avoided for backoff_ms, doubling on repeat. */
struct sw_provider_backoff_config {
    double closures_per_lease_hour; /* threshold; 0 disables back-off (the record is kept) */
    double min_lease_hours;         /* floor of the rate's denominator: a young record is
                                       judged as if it had this many lease-hours */
    int64_t backoff_ms;             /* first back-off */
    int64_t max_backoff_ms;         /* cap of the doubling */
};

struct sw_guard_config {
    double budget_usd_hour;     /* 0: no budget limit */
    int max_leases;             /* open units overall; 0: no limit */
    int max_actions;            /* per action_window_ms; 0: no limit */
    int64_t action_window_ms;
    int unhealthy_after;        /* consecutive probe failures that make a unit unhealthy */
    struct sw_provider_backoff_config provider_backoff; /* default 0.2/h, 1 h, 10m, 4h */
};

struct sw_policy_config {
    char *name;
    char *file;                 /* resolved against the config's directory */
    int64_t interval_ms;
    char *params_json;          /* "params" object as JSON text ("{}" when absent) */
    int64_t max_instructions;   /* per call; default 0: none (only limits.instructions sets one) */
    size_t memory_limit;        /* bytes; default 32 MiB */
    int64_t time_limit_ms;      /* wall time per call; default 1000 */
};

struct sw_plugin_config {
    char *name;
    char *config_json;          /* the plugin's object as JSON text */
};

struct sw_metric_config {
    char *name;                 /* what ctx.metrics.query(name) answers */
    char *plugin;
    char *query;
    int64_t every_ms;           /* refresh period; default: the shortest policy interval */
};

/* "admin": the admin HTTP API and /metrics (admin_api.h). */
struct sw_admin_config {
    bool enabled;               /* the "admin" object is present */
    char *host;                 /* from "listen"; default "127.0.0.1" */
    int port;                   /* from "listen"; default 9464; 0 picks a free port */
    char *token_env;            /* names the variable holding the bearer token, or NULL */
};

/* dns: the "dns" section, read by core/dns_sync.c (docs/configuration.md#dns). */
enum sw_dns_mode {
    SW_DNS_MODE_SYNC = 0,        /* create, update and delete what steward owns */
    SW_DNS_MODE_UPSERT_ONLY = 1, /* create and update; never delete */
};

struct sw_dns_record_config {
    char *group;     /* a configured group */
    char *name;      /* fully qualified, lowercase, with the trailing dot */
    bool per_region; /* also publish <region>.<name> per region (default true) */
};

struct sw_dns_config {
    char *plugin;       /* a dns plugin */
    char *zone;         /* fully qualified, lowercase, with the trailing dot */
    uint32_t ttl;       /* seconds; default 60 */
    char *owner_id;     /* written into ownership records; default: the steward id */
    int mode;           /* enum sw_dns_mode */
    int64_t drain_ms;   /* wait after a withdrawal before the release; default 2 x ttl */
    int64_t resync_ms;  /* full reconcile period; default 60 s */
    struct sw_dns_record_config *records;
    size_t record_count;
};

/* "probes": active health checks of ready units (runtime.c's probe scheduler). */
struct sw_probes_config {
    char *plugin;               /* a probe-kind plugin; NULL when "probes" is absent */
    int64_t every_ms;           /* default 15 s */
    char **targets;             /* extra URLs probed every round (results in ctx.probes only) */
    size_t target_count;
    char *path;                 /* appended to a unit uri without a scheme; default "/" */
    char *target_template;      /* "http://host/health/{market_id}": one target per unit
                                   instead of its uris ({market_id} {key} {group} {region}
                                   {provider} {uri}); NULL: the uris */
};

/* ha: "ha": leader election and the replicated owned-units set through etcd (core/ha.h). */
struct sw_ha_config {
    char **endpoints;           /* "etcd": base URLs like "http://127.0.0.1:2379" (>= 1) */
    size_t endpoint_count;
    int64_t ttl_ms;             /* "ttl": the leader lease; default 5 s, whole seconds >= 2 s */
    char *prefix;               /* "prefix": default "/steward/<id>", no trailing '/' */
    char *replica;              /* "replica": this replica's name, or NULL: hostname-pid */
};

struct sw_config {
    char *path;                 /* as given */
    char *dir;                  /* its directory: relative paths resolve against it */
    char *instance_id;          /* "id"; default "steward" */
    char *state_path;           /* "state": journal file; default "<dir>/steward.db" */
    int log_format;             /* enum sw_log_format */
    int log_level;
    char **plugin_dirs;
    size_t plugin_dir_count;
    char *lua_path;             /* directory holding steward/<module>.lua, or NULL: default */
    char *market_plugin;        /* "market": name of the market plugin */
    char *self_market_id;       /* the unit steward runs in (from "self"), or NULL */
    uint64_t seed;              /* "seed"; default 1 */
    struct sw_guard_config guard;
    struct sw_group_config *groups;
    size_t group_count;
    struct sw_policy_config *policies;
    size_t policy_count;
    struct sw_plugin_config *plugins;
    size_t plugin_count;
    struct sw_metric_config *metrics;
    size_t metric_count;
    char *simulation_json;      /* "simulation" object as JSON text (read by `steward
                                   simulate`, see docs/simulation.md), or NULL */
    /* ---- admin API (admin_api.c) ---- */
    struct sw_admin_config admin;
    struct sw_dns_config *dns;  /* dns: the "dns" section, or NULL when absent */
    struct sw_probes_config probes; /* "probes" (geo): last so other fields keep offsets */
    /* ha: the "ha" section (core/ha.c), or NULL when absent: one replica, nothing changes */
    struct sw_ha_config *ha;
    /* history: "history": {"keep": "7d"}: the runtime deletes evaluations older than this
     * from the journal; 0 ("forever" or 0) keeps them all. */
    int64_t history_keep_ms;
};

/* history: the default of "history.keep": 7 days. */
#define SW_HISTORY_KEEP_DEFAULT_MS (7 * 86400000LL)

/* Read and validate a config file. Returns an owned config (free with sw_config_free) or
 * NULL with err filled (SW_ECONFIG, or SW_EIO when unreadable). */
struct sw_config *sw_config_load(const char *path, struct sw_error *err);
/* Same from text; path names the file in messages and anchors relative paths. */
struct sw_config *sw_config_parse(const char *text, size_t len, const char *path,
                                  struct sw_error *err);
void sw_config_free(struct sw_config *config);

const struct sw_group_config *sw_config_group(const struct sw_config *config,
                                              const char *name);
const struct sw_plugin_config *sw_config_plugin(const struct sw_config *config,
                                                const char *name);

/* "250ms", "10s", "5m", "2h", "1d" or a plain number of seconds. 0 or SW_EINVAL. */
int sw_duration_parse(const char *text, int64_t *ms_out);
/* A duration from JSON: a string as above, or a number of seconds. */
int sw_duration_from_json(const cJSON *item, int64_t *ms_out);
/* "string", "number", "integer", "boolean", "null", "object", "array". */
const char *sw_json_type_name(const cJSON *item);
/* Parse JSON text that may hold // and / * * / comments. Comments are blanked to spaces
 * (newlines kept) so syntax errors read "path:line:col: invalid JSON: hint". Size (4 MiB)
 * and nesting depth (64) are capped. Owned by the caller; NULL with err (SW_ECONFIG). */
cJSON *sw_json_parse_relaxed(const char *text, size_t len, const char *path,
                             struct sw_error *err);

#endif /* SW_CONFIG_H */
