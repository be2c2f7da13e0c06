/* plugin_host.h — finds, loads, validates and owns C plugins (.so, dlopen).
 *
 * Loading follows Redis moduleLoad: dlopen(RTLD_NOW|RTLD_LOCAL), dlsym(swp_plugin_entry),
 * check ABI major/minor/size, refuse a duplicate name, validate the plugin's config against
 * its declared map, then init. Each refusal is one message naming the file, the plugin's
 * ABI, the host's ABI and the fix; everything done so far is undone and the .so dlclosed.
 *
 * The host table's clock, HTTP, KV and event services come from the runtime through
 * struct sw_plugin_services, so this module has no opinion on live vs simulated time.
 * Context: loop thread only.
 */
#ifndef SW_PLUGIN_HOST_H
#define SW_PLUGIN_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "steward/swp_plugin.h"

struct sw_plugin;      /* one loaded plugin instance */
struct sw_plugin_host; /* the registry */

/* Services the runtime provides to every plugin. `plugin` is the calling instance (use
 * sw_plugin_name for prefixes and sw_plugin_id for KV namespaces). */
struct sw_plugin_services {
    void *ud;
    int64_t (*now_ms)(void *ud);
    uint64_t (*timer_start)(void *ud, struct sw_plugin *plugin, uint64_t delay_ms,
                            swp_timer_cb cb, void *cb_ud);
    void (*timer_stop)(void *ud, struct sw_plugin *plugin, uint64_t timer_id);
    uint64_t (*http_request)(void *ud, struct sw_plugin *plugin,
                             const struct swp_http_req *req, swp_http_cb cb, void *cb_ud);
    void (*http_cancel)(void *ud, struct sw_plugin *plugin, uint64_t request_id);
    int (*kv_get)(void *ud, struct sw_plugin *plugin, const char *key, char **value_out);
    int (*kv_set)(void *ud, struct sw_plugin *plugin, const char *key, const char *value);
    int (*kv_del)(void *ud, struct sw_plugin *plugin, const char *key);
    void (*emit_event)(void *ud, struct sw_plugin *plugin, const struct swp_event *ev);
    /* dns: swp_host.net_exchange. Same contract as http_request/http_cancel; the service
     * calls req->complete (FRAME_CUSTOM) with complete_ud, the plugin's own ud. */
    uint64_t (*net_exchange)(void *ud, struct sw_plugin *plugin, const struct swp_net_req *req,
                             swp_net_cb cb, void *cb_ud, void *complete_ud);
    void (*net_cancel)(void *ud, struct sw_plugin *plugin, uint64_t exchange_id);
};

/* Metadata of a plugin found on disk (for `steward plugins`). */
struct sw_plugin_info {
    char *name;
    char *version;
    char *description;
    uint32_t kinds;
    uint32_t abi_major;
    uint32_t abi_minor;
    char *path;
    char *error; /* non-NULL when the file could not be used; then other fields may be NULL */
};

/* services is copied; instance_id and the seed feed swp_host.instance_id/random_u64.
 * Owned by the caller, free with sw_plugin_host_free (which destroys every plugin).
 *
 * Contract for the services (NULL services or NULL members are allowed: the host answers
 * 0 / SWP_ENOTSUP / no-op for them):
 * - timer_start returns an id > 0 or 0, and never fires cb inside the call; after
 *   timer_stop the cb never fires.
 * - http_request returns an id > 0 and later calls cb exactly once, or returns 0 and never
 *   calls it; http_cancel fires cb with SWP_ECANCELED before it returns.
 * - kv_get's *value_out must come from malloc (the plugin frees it with swp_host.free).
 * - req and ev are host-sized copies (size = sizeof), borrowed for the call.
 * The host wraps every cb: it tracks each plugin's pending timers and requests, and a
 * plugin can only stop or cancel its own ids.
 *
 * Each plugin gets its own swp_host table. Its config getters read the validated config:
 * cfg_str gives STRING values and, for SECRET_ENV, the variable's value (NULL for other
 * types); cfg_int gives INT, BOOL as 0/1, DURATION in ms, DOUBLE truncated; cfg_double gives
 * DOUBLE, INT, DURATION in ms; cfg_bool gives BOOL; cfg_json gives any present value as
 * JSON text (for SECRET_ENV: the variable's name, not the secret). random_u64 is
 * splitmix64 seeded with seed XOR FNV-1a-64(plugin name), so each plugin's stream depends
 * on the run's seed and its name only. */
struct sw_plugin_host *sw_plugin_host_new(const struct sw_plugin_services *services,
                                          const char *instance_id, uint64_t seed);
void sw_plugin_host_free(struct sw_plugin_host *host);
/* Directory that relative SWP_CFG_PATH values resolve against (the config file's); copied.
 * NULL leaves them relative to the working directory. */
void sw_plugin_host_set_base_dir(struct sw_plugin_host *host, const char *dir);

/* Look for swp_<name>.so in each dir in order (the first hit wins). Returns the owned path
 * or NULL. */
char *sw_plugin_host_find(const char *const *dirs, size_t dir_count, const char *name);

/* Load the .so at path and init it with config_json (a JSON object text, NULL = {}).
 * Config errors read "<origin>.<key>: <problem>"; SECRET_ENV values are registered with
 * sw_log_add_secret before init, so not even init's own log lines show them.
 * config_origin names where the config came from for messages, e.g.
 * "steward.json:plugins.market_sim". Returns the instance (owned by the host) or NULL
 * with err filled: SW_EABI for ABI refusals (including a missing swp_plugin_entry symbol, a
 * NULL descriptor, a bad name or a bad config map), SW_ECONFIG for config errors, SW_EEXIST
 * for a duplicate name, SW_EIO when dlopen fails, or the init's own code. */
struct sw_plugin *sw_plugin_host_load(struct sw_plugin_host *host, const char *path,
                                      const char *config_json, const char *config_origin,
                                      struct sw_error *err);

/* Unload one plugin: cancel its HTTP requests in flight (their callbacks fire with
 * SWP_ECANCELED while the plugin is still alive), stop its pending timers, call destroy,
 * dlclose and free the instance (plugin is invalid afterwards). The caller must not have
 * ops of this plugin in flight: destroy completes them with SWP_ECANCELED. A plugin not
 * held by host is ignored. Not from inside one of this plugin's own callbacks. */
void sw_plugin_host_unload(struct sw_plugin_host *host, struct sw_plugin *plugin);

/* Read a plugin's descriptor without initialising it. Owned by the caller, free with
 * sw_plugin_info_free. Never NULL: a bad file gets info->error set. */
struct sw_plugin_info *sw_plugin_host_probe(const char *path);
void sw_plugin_info_free(struct sw_plugin_info *info);
/* Every swp_*.so in the dirs, sorted by name; *count_out set. Owned array of owned infos:
 * free each with sw_plugin_info_free, then free() the array. */
struct sw_plugin_info **sw_plugin_host_scan(const char *const *dirs, size_t dir_count,
                                            size_t *count_out);
/* Human-readable help for a plugin's config map (for `steward plugin describe`): name,
 * version, ABI, kinds, description, then one line per key with its type,
 * required/default and description. Owned by the caller, free(). */
char *sw_plugin_describe(const struct swp_plugin *desc);
/* Open the .so at path without init (same checks as load up to the name) and describe it.
 * Returns owned text, or NULL with err filled as sw_plugin_host_load would. */
char *sw_plugin_host_describe_path(const char *path, struct sw_error *err);

struct sw_plugin *sw_plugin_host_get(struct sw_plugin_host *host, const char *name);
size_t sw_plugin_host_count(const struct sw_plugin_host *host);
struct sw_plugin *sw_plugin_host_at(struct sw_plugin_host *host, size_t index);

const char *sw_plugin_name(const struct sw_plugin *plugin);
const char *sw_plugin_path(const struct sw_plugin *plugin);
const struct swp_plugin *sw_plugin_desc(const struct sw_plugin *plugin);
void *sw_plugin_state(const struct sw_plugin *plugin);
/* The ops table of a kind, or NULL when the plugin does not provide it. The table is the
 * host's copy with size = sizeof(the host's struct): ops the plugin left NULL or that lie
 * past the plugin's own `size` are NULL, and the caller answers SW_ENOTSUP for them.
 * Borrowed until the plugin is unloaded. */
const struct swp_market_ops *sw_plugin_market(const struct sw_plugin *plugin);
const struct swp_dns_ops *sw_plugin_dns(const struct sw_plugin *plugin);
const struct swp_metrics_ops *sw_plugin_metrics(const struct sw_plugin *plugin);
const struct swp_probe_ops *sw_plugin_probe(const struct sw_plugin *plugin);
const struct swp_notify_ops *sw_plugin_notify(const struct sw_plugin *plugin);
/* The swp_host table handed to this plugin (for tests and in-process callers). */
const struct swp_host *sw_plugin_host_table(const struct sw_plugin *plugin);
/* Recover the instance from the table pointer a plugin passes back. */
struct sw_plugin *sw_plugin_from_host_table(const struct swp_host *table);

/* Timers / HTTP requests the plugin started through its table that have not fired,
 * completed, been stopped or cancelled yet (for tests and diagnostics). */
size_t sw_plugin_pending_timers(const struct sw_plugin *plugin);
size_t sw_plugin_pending_requests(const struct sw_plugin *plugin);

#endif /* SW_PLUGIN_HOST_H */
