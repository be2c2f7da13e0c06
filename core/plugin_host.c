/* plugin_host.c — dlopen, validate and own C plugins; fill each one's swp_host table.
 *
 * The host never trusts the plugin's idea of struct sizes: descriptor fields are read only
 * when desc->size covers them, and every vtable is copied into a host-sized table with the
 * ops past the plugin's own `size` left NULL, so callers see one shape whatever minor the
 * plugin was built against.
 */
#include "plugin_host.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "mem.h"

#define NAME_MAX_LEN 64
#define CONFIG_MAX_BYTES (1024 * 1024)

/* A descriptor field exists when the plugin's struct was at least big enough to hold it. */
#define DESC_HAS(desc, field)                                                                      \
    ((desc)->size >= offsetof(struct swp_plugin, field) + sizeof((desc)->field))

/* ---- tracked timers and HTTP requests ------------------------------------------------- */

/* One timer or request a plugin started through its table. It is linked into the plugin's
 * list until it fires, completes, is stopped or cancelled, so unloading can stop exactly
 * what that plugin still has pending and nothing of anyone else's. */
struct tracker {
    struct tracker *prev;
    struct tracker *next;
    struct sw_plugin *plugin; /* NULL once orphaned (see orphan_http) */
    struct sw_plugin_host *host;
    uint64_t id;
    bool starting; /* inside the service's start call */
    bool fired;    /* the callback ran while starting */
    swp_timer_cb timer_cb;
    swp_http_cb http_cb;
    swp_net_cb net_cb; /* net exchanges (tracked in sw_plugin.exchanges) */
    void *ud;
};

struct tracker_list {
    struct tracker *head;
};

static void tracker_link(struct tracker_list *list, struct tracker *t)
{
    t->prev = NULL;
    t->next = list->head;
    if (list->head != NULL)
        list->head->prev = t;
    list->head = t;
}

static void tracker_unlink(struct tracker_list *list, struct tracker *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        list->head = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static struct tracker *tracker_find(struct tracker_list *list, uint64_t id)
{
    for (struct tracker *t = list->head; t != NULL; t = t->next)
        if (t->id == id && id != 0)
            return t;
    return NULL;
}

/* ---- validated configuration --------------------------------------------------------- */

struct cfg_value {
    const char *key; /* the plugin's entry->name: valid while the .so is loaded */
    int type;
    bool present;
    char *json; /* the value as JSON text */
    char *str;  /* STRING: the string; SECRET_ENV: the variable's value */
    int64_t i;  /* INT; DURATION in ms; BOOL as 0/1 */
    double d;
    bool b;
};

/* ---- the registry and its instances -------------------------------------------------- */

struct sw_plugin {
    struct swp_host table; /* handed to the plugin; sw_plugin_from_host_table inverts it */
    struct sw_plugin_host *host;
    void *dl;
    const struct swp_plugin *desc;
    char *name;
    char *path;
    void *state;
    bool closing; /* unloading: refuse new timers and requests */
    uint64_t rng;
    struct cfg_value *cfg;
    size_t cfg_count;
    struct tracker_list timers;
    struct tracker_list requests;
    struct tracker_list exchanges; /* net_exchange ids in flight */
    bool has_market, has_dns, has_metrics, has_probe, has_notify;
    struct swp_market_ops market;
    struct swp_dns_ops dns;
    struct swp_metrics_ops metrics;
    struct swp_probe_ops probe;
    struct swp_notify_ops notify;
};

struct sw_plugin_host {
    struct sw_plugin_services services;
    char *instance_id;
    uint64_t seed;
    char *base_dir;             /* relative SWP_CFG_PATH values resolve against it */
    struct sw_plugin **plugins; /* load order */
    size_t count;
    size_t cap;
    /* Requests whose service did not honour "cancel fires the callback before returning";
     * kept so a late completion lands on live memory and is dropped. */
    struct tracker_list orphans;
};

/* ---- small helpers -------------------------------------------------------------------- */

static bool valid_name(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return false;
    size_t len = 0;
    for (const char *p = name; *p; p++, len++) {
        if (len >= NAME_MAX_LEN)
            return false;
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    }
    return true;
}

static bool valid_env_name(const char *name)
{
    if (name == NULL || name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static const char *type_name(int type)
{
    switch (type) {
    case SWP_CFG_STRING:
        return "string";
    case SWP_CFG_INT:
        return "integer";
    case SWP_CFG_DOUBLE:
        return "number";
    case SWP_CFG_BOOL:
        return "boolean";
    case SWP_CFG_OBJECT:
        return "object";
    case SWP_CFG_ARRAY:
        return "array";
    case SWP_CFG_SECRET_ENV:
        return "secret_env";
    case SWP_CFG_DURATION:
        return "duration";
    case SWP_CFG_PATH:
        return "path";
    default:
        return NULL;
    }
}

/* "string \"ten\"", "number 1.5", "boolean true", "null", "object", "array". */
static void describe_json(const cJSON *item, char *buf, size_t len)
{
    if (cJSON_IsString(item)) {
        const char *s = item->valuestring;
        if (strlen(s) > 40)
            snprintf(buf, len, "string \"%.37s...\"", s);
        else
            snprintf(buf, len, "string \"%s\"", s);
    } else if (cJSON_IsNumber(item)) {
        snprintf(buf, len, "number %.17g", item->valuedouble);
    } else if (cJSON_IsBool(item)) {
        snprintf(buf, len, "boolean %s", cJSON_IsTrue(item) ? "true" : "false");
    } else if (cJSON_IsNull(item)) {
        snprintf(buf, len, "null");
    } else if (cJSON_IsObject(item)) {
        snprintf(buf, len, "object");
    } else if (cJSON_IsArray(item)) {
        snprintf(buf, len, "array");
    } else {
        snprintf(buf, len, "invalid JSON");
    }
}

/* ---- opening a .so and checking its descriptor --------------------------------------- */

/* The name, for messages only, when the descriptor is big enough to hold it and it reads
 * as a plugin name; otherwise NULL. Across majors the first four fields are the only
 * layout the host relies on. */
static const char *message_name(const struct swp_plugin *desc)
{
    if (!DESC_HAS(desc, name) || !valid_name(desc->name))
        return NULL;
    return desc->name;
}

/* Open path and check everything that does not need the registry: the entry symbol, the
 * ABI version, the size and the name. On success *dl_out is open and *desc_out valid.
 * On failure err is filled and, when the descriptor was obtained, *dl_out stays open and
 * *desc_out set so probe can report the versions; the caller dlcloses *dl_out. */
static int open_plugin(const char *path, void **dl_out, const struct swp_plugin **desc_out,
                       struct sw_error *err)
{
    *dl_out = NULL;
    *desc_out = NULL;
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *why = dlerror();
        size_t path_len = strlen(path);
        if (why == NULL)
            why = "unknown dlopen error";
        /* glibc prefixes the path; we already lead with it. */
        if (strncmp(why, path, path_len) == 0 && strncmp(why + path_len, ": ", 2) == 0)
            why += path_len + 2;
        return sw_error_set(err, SW_EIO,
                            "%s: cannot load plugin: %s (host ABI %u.%u); check the file "
                            "exists and is a plugin built for this platform",
                            path, why, SWP_ABI_MAJOR, SWP_ABI_MINOR);
    }
    *dl_out = dl;
    dlerror();
    void *sym = dlsym(dl, SWP_PLUGIN_ENTRY_SYMBOL);
    if (sym == NULL)
        return sw_error_set(err, SW_EABI,
                            "%s: not a steward plugin: no " SWP_PLUGIN_ENTRY_SYMBOL
                            " symbol (host ABI %u.%u); export it with SWP_PLUGIN_EXPORT, "
                            "see docs/plugins.md",
                            path, SWP_ABI_MAJOR, SWP_ABI_MINOR);
    swp_plugin_entry_fn entry;
    /* POSIX blesses this object-to-function pointer conversion for dlsym results. */
    memcpy(&entry, &sym, sizeof(entry));
    const struct swp_plugin *desc = entry();
    if (desc == NULL)
        return sw_error_set(err, SW_EABI,
                            "%s: " SWP_PLUGIN_ENTRY_SYMBOL " returned NULL, plugin ABI "
                            "unknown (host ABI %u.%u); return a pointer to a static struct "
                            "swp_plugin, see docs/plugins.md",
                            path, SWP_ABI_MAJOR, SWP_ABI_MINOR);
    *desc_out = desc;
    const char *name = message_name(desc);
    char quoted[NAME_MAX_LEN + 4] = "";
    if (name != NULL)
        snprintf(quoted, sizeof(quoted), "'%s' ", name);
    if (desc->abi_major != SWP_ABI_MAJOR)
        return sw_error_set(err, SW_EABI,
                            "%s: plugin %swas built for ABI %u.%u, host speaks ABI %u.%u: "
                            "rebuild the plugin against this steward's core/include/steward "
                            "headers",
                            path, quoted, desc->abi_major, desc->abi_minor, SWP_ABI_MAJOR,
                            SWP_ABI_MINOR);
    if (desc->abi_minor > SWP_ABI_MINOR)
        return sw_error_set(err, SW_EABI,
                            "%s: plugin %swas built for ABI %u.%u, newer than host ABI %u.%u: "
                            "upgrade steward or rebuild the plugin against ABI %u.%u",
                            path, quoted, desc->abi_major, desc->abi_minor, SWP_ABI_MAJOR,
                            SWP_ABI_MINOR, SWP_ABI_MAJOR, SWP_ABI_MINOR);
    if (desc->size < SWP_PLUGIN_SIZE_V1_0)
        return sw_error_set(err, SW_EABI,
                            "%s: plugin %s(ABI %u.%u) has a %u-byte descriptor, smaller than "
                            "the %zu bytes of ABI 1.0 (host ABI %u.%u): set .size = "
                            "sizeof(struct swp_plugin) and rebuild",
                            path, quoted, desc->abi_major, desc->abi_minor, desc->size,
                            (size_t)SWP_PLUGIN_SIZE_V1_0, SWP_ABI_MAJOR, SWP_ABI_MINOR);
    if (desc->name == NULL || desc->name[0] == '\0')
        return sw_error_set(err, SW_EABI,
                            "%s: plugin has no name (ABI %u.%u, host ABI %u.%u): set .name "
                            "to a unique name of [a-z0-9_]+",
                            path, desc->abi_major, desc->abi_minor, SWP_ABI_MAJOR, SWP_ABI_MINOR);
    if (!valid_name(desc->name))
        return sw_error_set(err, SW_EABI,
                            "%s: plugin name '%.64s' is invalid (ABI %u.%u, host ABI %u.%u): "
                            "use 1 to %d characters of [a-z0-9_]",
                            path, desc->name, desc->abi_major, desc->abi_minor, SWP_ABI_MAJOR,
                            SWP_ABI_MINOR, NAME_MAX_LEN);
    return 0;
}

/* ---- config validation ---------------------------------------------------------------- */

static void cfg_free(struct cfg_value *cfg, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(cfg[i].json);
        free(cfg[i].str);
    }
    free(cfg);
}

/* The declared map is the plugin's own data: a bad one is the plugin's bug, not the
 * user's, so it is an ABI-style refusal naming the file and the versions. */
static int check_config_map(const char *path, const struct swp_plugin *desc, struct sw_error *err)
{
    if (desc->config_count > 0 && desc->config == NULL)
        return sw_error_set(err, SW_EABI,
                            "%s: plugin '%s' (ABI %u.%u, host ABI %u.%u) declares %zu config "
                            "keys but no config map: set .config or .config_count = 0",
                            path, desc->name, desc->abi_major, desc->abi_minor, SWP_ABI_MAJOR,
                            SWP_ABI_MINOR, desc->config_count);
    for (size_t i = 0; i < desc->config_count; i++) {
        const struct swp_config_entry *entry = &desc->config[i];
        if (entry->name == NULL || entry->name[0] == '\0' || type_name(entry->type) == NULL)
            return sw_error_set(err, SW_EABI,
                                "%s: plugin '%s' (ABI %u.%u, host ABI %u.%u) has an invalid "
                                "config entry #%zu: give it a name and a SWP_CFG_* type",
                                path, desc->name, desc->abi_major, desc->abi_minor, SWP_ABI_MAJOR,
                                SWP_ABI_MINOR, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(desc->config[j].name, entry->name) == 0)
                return sw_error_set(err, SW_EABI,
                                    "%s: plugin '%s' (ABI %u.%u, host ABI %u.%u) declares "
                                    "config key '%s' twice: remove one",
                                    path, desc->name, desc->abi_major, desc->abi_minor,
                                    SWP_ABI_MAJOR, SWP_ABI_MINOR, entry->name);
    }
    return 0;
}

/* Check one value against its declared type and fill out. where is the JSON path used in
 * messages ("<origin>.<key>"). */
static int check_value(const char *where, const struct swp_config_entry *entry, const cJSON *item,
                       const char *base_dir, struct cfg_value *out, struct sw_error *err)
{
    char got[96];
    describe_json(item, got, sizeof(got));
    switch (entry->type) {
    case SWP_CFG_STRING:
        if (!cJSON_IsString(item))
            return sw_error_set(err, SW_ECONFIG, "%s: expected string, got %s", where, got);
        out->str = sw_xstrdup(item->valuestring);
        break;
    case SWP_CFG_INT: {
        double v = item->valuedouble;
        if (!cJSON_IsNumber(item) || v != floor(v) || v < -9223372036854775808.0 ||
            v >= 9223372036854775808.0)
            return sw_error_set(err, SW_ECONFIG, "%s: expected integer, got %s", where, got);
        out->i = (int64_t)v;
        out->d = v;
        break;
    }
    case SWP_CFG_DOUBLE:
        if (!cJSON_IsNumber(item))
            return sw_error_set(err, SW_ECONFIG, "%s: expected number, got %s", where, got);
        out->d = item->valuedouble;
        break;
    case SWP_CFG_BOOL:
        if (!cJSON_IsBool(item))
            return sw_error_set(err, SW_ECONFIG, "%s: expected boolean, got %s", where, got);
        out->b = cJSON_IsTrue(item);
        out->i = out->b;
        break;
    case SWP_CFG_OBJECT:
        if (!cJSON_IsObject(item))
            return sw_error_set(err, SW_ECONFIG, "%s: expected object, got %s", where, got);
        break;
    case SWP_CFG_ARRAY:
        if (!cJSON_IsArray(item))
            return sw_error_set(err, SW_ECONFIG, "%s: expected array, got %s", where, got);
        break;
    case SWP_CFG_PATH:
        if (!cJSON_IsString(item) || item->valuestring[0] == '\0')
            return sw_error_set(err, SW_ECONFIG, "%s: expected a file path, got %s", where, got);
        if (item->valuestring[0] == '/' || base_dir == NULL)
            out->str = sw_xstrdup(item->valuestring);
        else
            out->str = sw_xasprintf("%s/%s", base_dir, item->valuestring);
        break;
    case SWP_CFG_SECRET_ENV: {
        if (!cJSON_IsString(item))
            return sw_error_set(err, SW_ECONFIG,
                                "%s: expected string naming an environment variable, got %s", where,
                                got);
        const char *var = item->valuestring;
        /* Never echo a malformed value: it may be the secret pasted in by mistake. */
        if (!valid_env_name(var))
            return sw_error_set(err, SW_ECONFIG,
                                "%s: expected the name of an environment variable "
                                "([A-Za-z_][A-Za-z0-9_]*), not the secret itself",
                                where);
        const char *value = getenv(var);
        if (value == NULL)
            return sw_error_set(err, SW_ECONFIG,
                                "%s: environment variable %s is not set (it must hold the "
                                "secret)",
                                where, var);
        if (value[0] == '\0')
            return sw_error_set(err, SW_ECONFIG,
                                "%s: environment variable %s is empty (it must hold the "
                                "secret)",
                                where, var);
        sw_log_add_secret(value);
        out->str = sw_xstrdup(value);
        break;
    }
    case SWP_CFG_DURATION:
        if (cJSON_IsNumber(item)) {
            double ms = item->valuedouble * 1000.0;
            if (item->valuedouble < 0 || ms >= 9223372036854775807.0)
                return sw_error_set(err, SW_ECONFIG,
                                    "%s: expected a duration (\"250ms\", \"10s\", \"5m\", "
                                    "\"2h\", \"1d\") or a number of seconds >= 0, got %s",
                                    where, got);
            out->i = (int64_t)llround(ms);
        } else if (!cJSON_IsString(item) || sw_duration_parse(item->valuestring, &out->i) < 0) {
            return sw_error_set(err, SW_ECONFIG,
                                "%s: expected a duration (\"250ms\", \"10s\", \"5m\", \"2h\", "
                                "\"1d\") or a number of seconds >= 0, got %s",
                                where, got);
        }
        out->d = (double)out->i;
        break;
    default:
        return sw_error_set(err, SW_EABI, "%s: unknown config type %d", where, entry->type);
    }
    out->json = cJSON_PrintUnformatted(item);
    if (out->json == NULL)
        return sw_error_set(err, SW_ENOMEM, "%s: out of memory", where);
    out->present = true;
    return 0;
}

static int validate_config(struct sw_plugin *plugin, const char *config_json, const char *origin,
                           struct sw_error *err)
{
    const struct swp_plugin *desc = plugin->desc;
    int rc = check_config_map(plugin->path, desc, err);
    if (rc < 0)
        return rc;

    char *default_origin = NULL;
    if (origin == NULL)
        origin = default_origin = sw_xasprintf("plugins.%s", plugin->name);
    cJSON *root = NULL;
    char *where = NULL;
    size_t text_len = config_json != NULL ? strlen(config_json) : 0;
    if (text_len > CONFIG_MAX_BYTES) {
        rc = sw_error_set(err, SW_ECONFIG, "%s: configuration is larger than %d bytes", origin,
                          CONFIG_MAX_BYTES);
        goto out;
    }
    root =
        config_json != NULL ? cJSON_ParseWithLength(config_json, text_len) : cJSON_CreateObject();
    if (root == NULL) {
        rc = sw_error_set(err, SW_ECONFIG, "%s: expected a JSON object, got invalid JSON", origin);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        char got[96];
        describe_json(root, got, sizeof(got));
        rc = sw_error_set(err, SW_ECONFIG, "%s: expected object, got %s", origin, got);
        goto out;
    }

    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        bool known = false;
        for (size_t i = 0; i < desc->config_count && !known; i++)
            known = strcmp(desc->config[i].name, item->string) == 0;
        if (!known) {
            char list[160] = "";
            size_t used = 0;
            for (size_t i = 0; i < desc->config_count && used < sizeof(list); i++)
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                         i > 0 ? ", " : "", desc->config[i].name);
            rc = sw_error_set(err, SW_ECONFIG, "%s.%s: unknown key for plugin '%s' (known: %s)",
                              origin, item->string, plugin->name,
                              desc->config_count > 0 ? list : "none");
            goto out;
        }
        for (const cJSON *prev = root->child; prev != item; prev = prev->next)
            if (strcmp(prev->string, item->string) == 0) {
                rc = sw_error_set(err, SW_ECONFIG, "%s.%s: duplicate key", origin, item->string);
                goto out;
            }
    }

    plugin->cfg = sw_xcalloc(desc->config_count, sizeof(*plugin->cfg));
    plugin->cfg_count = desc->config_count;
    for (size_t i = 0; i < desc->config_count; i++) {
        const struct swp_config_entry *entry = &desc->config[i];
        struct cfg_value *value = &plugin->cfg[i];
        value->key = entry->name;
        value->type = entry->type;
        free(where);
        where = sw_xasprintf("%s.%s", origin, entry->name);
        item = cJSON_GetObjectItemCaseSensitive(root, entry->name);
        if (item != NULL) {
            rc = check_value(where, entry, item, plugin->host->base_dir, value, err);
            if (rc < 0)
                goto out;
            continue;
        }
        if (entry->required) {
            rc = sw_error_set(err, SW_ECONFIG, "%s: required", where);
            goto out;
        }
        if (entry->default_value == NULL)
            continue;
        cJSON *def = cJSON_Parse(entry->default_value);
        bool user_fixable = def != NULL && entry->type == SWP_CFG_SECRET_ENV &&
                            cJSON_IsString(def) && valid_env_name(def->valuestring);
        if (def == NULL) {
            rc = SW_EINVAL;
        } else {
            rc = check_value(where, entry, def, plugin->host->base_dir, value, err);
            cJSON_Delete(def);
        }
        /* A well-formed default naming an unset variable is the user's to fix; any other
         * bad default is the plugin's. */
        if (rc < 0 && !user_fixable) {
            rc = sw_error_set(err, SW_EABI,
                              "%s: plugin '%s' (ABI %u.%u, host ABI %u.%u) declares an invalid "
                              "default for '%s': fix its config map",
                              plugin->path, plugin->name, desc->abi_major, desc->abi_minor,
                              SWP_ABI_MAJOR, SWP_ABI_MINOR, entry->name);
        }
        if (rc < 0)
            goto out;
    }
    rc = 0;
out:
    free(where);
    free(default_origin);
    cJSON_Delete(root);
    return rc;
}

static const struct cfg_value *cfg_lookup(const struct swp_host *h, const char *key)
{
    const struct sw_plugin *plugin = sw_plugin_from_host_table(h);
    if (key == NULL)
        return NULL;
    for (size_t i = 0; i < plugin->cfg_count; i++)
        if (strcmp(plugin->cfg[i].key, key) == 0)
            return plugin->cfg[i].present ? &plugin->cfg[i] : NULL;
    return NULL;
}

/* ---- the swp_host table --------------------------------------------------------------- */

static struct sw_plugin *self(const struct swp_host *h)
{
    return sw_plugin_from_host_table(h);
}

static void host_log(const struct swp_host *h, int level, const char *fmt, ...)
{
    struct sw_plugin *plugin = self(h);
    if (fmt == NULL)
        return;
    if (level < SW_LOG_DEBUG)
        level = SW_LOG_DEBUG;
    if (level > SW_LOG_ERROR)
        level = SW_LOG_ERROR;
    va_list ap;
    va_start(ap, fmt);
    sw_logv(level, plugin->name, fmt, ap);
    va_end(ap);
}

static int64_t host_now_ms(const struct swp_host *h)
{
    const struct sw_plugin_services *svc = &self(h)->host->services;
    return svc->now_ms != NULL ? svc->now_ms(svc->ud) : 0;
}

static void timer_fired(void *ud)
{
    struct tracker *t = ud;
    swp_timer_cb cb = t->timer_cb;
    void *cb_ud = t->ud;
    if (t->starting) {
        t->fired = true;
    } else {
        tracker_unlink(&t->plugin->timers, t);
        free(t);
    }
    cb(cb_ud);
}

static uint64_t host_timer_start(const struct swp_host *h, uint64_t delay_ms, swp_timer_cb cb,
                                 void *ud)
{
    struct sw_plugin *plugin = self(h);
    const struct sw_plugin_services *svc = &plugin->host->services;
    if (cb == NULL || plugin->closing || svc->timer_start == NULL)
        return 0;
    struct tracker *t = sw_xcalloc(1, sizeof(*t));
    t->plugin = plugin;
    t->timer_cb = cb;
    t->ud = ud;
    t->starting = true;
    tracker_link(&plugin->timers, t);
    uint64_t id = svc->timer_start(svc->ud, plugin, delay_ms, timer_fired, t);
    t->starting = false;
    if (id == 0 || t->fired) {
        tracker_unlink(&plugin->timers, t);
        free(t);
        return id;
    }
    t->id = id;
    return id;
}

static void host_timer_stop(const struct swp_host *h, uint64_t timer_id)
{
    struct sw_plugin *plugin = self(h);
    const struct sw_plugin_services *svc = &plugin->host->services;
    /* Only ids this plugin holds: a plugin cannot stop another plugin's timers. */
    struct tracker *t = tracker_find(&plugin->timers, timer_id);
    if (t == NULL)
        return;
    tracker_unlink(&plugin->timers, t);
    free(t);
    if (svc->timer_stop != NULL)
        svc->timer_stop(svc->ud, plugin, timer_id);
}

static void http_done(void *ud, int status, const struct swp_http_resp *resp)
{
    struct tracker *t = ud;
    swp_http_cb cb = t->http_cb;
    void *cb_ud = t->ud;
    if (t->plugin == NULL) {
        /* Orphan: the host already reported SWP_ECANCELED for it. */
        tracker_unlink(&t->host->orphans, t);
        free(t);
        return;
    }
    if (t->starting) {
        t->fired = true;
    } else {
        tracker_unlink(&t->plugin->requests, t);
        free(t);
    }
    cb(cb_ud, status, resp);
}


/* The service answered a start: an id of 0 or a completion inside the call leaves nothing
 * to track; otherwise the tracker stays on list under the id. */
static uint64_t tracker_started(struct tracker_list *list, struct tracker *t, uint64_t id)
{
    t->starting = false;
    if (id == 0 || t->fired) {
        tracker_unlink(list, t);
        free(t);
        return id;
    }
    t->id = id;
    return id;
}

/* Move a tracker whose service broke "cancel fires the callback before returning" to the
 * host's orphans, so a late completion lands on live memory and is dropped. */
static void park_orphan(struct sw_plugin *plugin, struct tracker_list *list, struct tracker *t,
                        const char *what)
{
    struct sw_plugin_host *host = plugin->host;
    tracker_unlink(list, t);
    t->plugin = NULL;
    t->host = host;
    tracker_link(&host->orphans, t);
    sw_log(SW_LOG_ERROR, "plugin_host",
           "%s %llu of plugin '%s' did not complete on cancel; reported as cancelled", what,
           (unsigned long long)t->id, plugin->name);
}

static uint64_t host_http_request(const struct swp_host *h, const struct swp_http_req *req,
                                  swp_http_cb cb, void *ud)
{
    struct sw_plugin *plugin = self(h);
    const struct sw_plugin_services *svc = &plugin->host->services;
    if (req == NULL || cb == NULL || plugin->closing || svc->http_request == NULL)
        return 0;
    /* Hand the runtime a host-sized request whatever minor the plugin was built with. */
    struct swp_http_req full = {0};
    if (req->size < offsetof(struct swp_http_req, url) + sizeof(req->url))
        return 0;
    memcpy(&full, req, req->size < sizeof(full) ? req->size : sizeof(full));
    full.size = sizeof(full);
    if (full.method == NULL || full.url == NULL)
        return 0;

    struct tracker *t = sw_xcalloc(1, sizeof(*t));
    t->plugin = plugin;
    t->http_cb = cb;
    t->ud = ud;
    t->starting = true;
    tracker_link(&plugin->requests, t);
    uint64_t id = svc->http_request(svc->ud, plugin, &full, http_done, t);
    return tracker_started(&plugin->requests, t, id);
}

/* The service broke "cancel fires the callback before returning": report the cancellation
 * ourselves so the plugin sees exactly one completion, and park the tracker so a late
 * completion from the service is dropped instead of touching freed memory. */
static void orphan_http(struct sw_plugin *plugin, struct tracker *t)
{
    swp_http_cb cb = t->http_cb;
    void *cb_ud = t->ud;
    park_orphan(plugin, &plugin->requests, t, "HTTP request");
    struct swp_http_resp none = {0};
    none.body = "";
    cb(cb_ud, SWP_ECANCELED, &none);
}

static void host_http_cancel(const struct swp_host *h, uint64_t request_id)
{
    struct sw_plugin *plugin = self(h);
    const struct sw_plugin_services *svc = &plugin->host->services;
    struct tracker *t = tracker_find(&plugin->requests, request_id);
    if (t == NULL)
        return;
    if (svc->http_cancel != NULL)
        svc->http_cancel(svc->ud, plugin, request_id);
    if (tracker_find(&plugin->requests, request_id) == t)
        orphan_http(plugin, t);
}

static int host_kv_get(const struct swp_host *h, const char *key, char **value_out)
{
    struct sw_plugin *plugin = self(h);
    const struct sw_plugin_services *svc = &plugin->host->services;
    if (value_out != NULL)
        *value_out = NULL;
    if (key == NULL || value_out == NULL)
        return SWP_EINVAL;
    if (svc->kv_get == NULL)
        return SWP_ENOTSUP;
    return svc->kv_get(svc->ud, plugin, key, value_out);
}

static int host_kv_set(const struct swp_host *h, const char *key, const char *value)
{
    struct sw_plugin *plugin = self(h);
    const struct sw_plugin_services *svc = &plugin->host->services;
    if (key == NULL || value == NULL)
        return SWP_EINVAL;
    if (svc->kv_set == NULL)
        return SWP_ENOTSUP;
    return svc->kv_set(svc->ud, plugin, key, value);
}

static int host_kv_del(const struct swp_host *h, const char *key)
{
    struct sw_plugin *plugin = self(h);
    const struct sw_plugin_services *svc = &plugin->host->services;
    if (key == NULL)
        return SWP_EINVAL;
    if (svc->kv_del == NULL)
        return SWP_ENOTSUP;
    return svc->kv_del(svc->ud, plugin, key);
}

static void host_emit_event(const struct swp_host *h, const struct swp_event *ev)
{
    struct sw_plugin *plugin = self(h);
    const struct sw_plugin_services *svc = &plugin->host->services;
    if (ev == NULL || svc->emit_event == NULL)
        return;
    struct swp_event full = {0};
    if (ev->size < offsetof(struct swp_event, type) + sizeof(ev->type)) {
        sw_log(SW_LOG_WARN, plugin->name, "event dropped: size %u is too small", ev->size);
        return;
    }
    memcpy(&full, ev, ev->size < sizeof(full) ? ev->size : sizeof(full));
    full.size = sizeof(full);
    if (full.type == NULL) {
        sw_log(SW_LOG_WARN, plugin->name, "event dropped: no type");
        return;
    }
    svc->emit_event(svc->ud, plugin, &full);
}

/* ---- net exchanges (the same tracking as HTTP requests) ------------------------------- */

static void net_done(void *ud, int status, const uint8_t *reply, size_t len)
{
    struct tracker *t = ud;
    swp_net_cb cb = t->net_cb;
    void *cb_ud = t->ud;
    if (t->plugin == NULL) {
        tracker_unlink(&t->host->orphans, t);
        free(t);
        return;
    }
    if (t->starting) {
        t->fired = true;
    } else {
        tracker_unlink(&t->plugin->exchanges, t);
        free(t);
    }
    cb(cb_ud, status, reply, len);
}

static uint64_t host_net_exchange(const struct swp_host *h, const struct swp_net_req *req,
                                  swp_net_cb cb, void *ud)
{
    struct sw_plugin *plugin = self(h);
    const struct sw_plugin_services *svc = &plugin->host->services;
    if (req == NULL || cb == NULL || plugin->closing || svc->net_exchange == NULL)
        return 0;
    struct swp_net_req full = {0};
    if (req->size < offsetof(struct swp_net_req, max_reply_bytes) + sizeof(req->max_reply_bytes))
        return 0;
    memcpy(&full, req, req->size < sizeof(full) ? req->size : sizeof(full));
    full.size = sizeof(full);
    struct tracker *t = sw_xcalloc(1, sizeof(*t));
    t->plugin = plugin;
    t->net_cb = cb;
    t->ud = ud;
    t->starting = true;
    tracker_link(&plugin->exchanges, t);
    uint64_t id = svc->net_exchange(svc->ud, plugin, &full, net_done, t, ud);
    return tracker_started(&plugin->exchanges, t, id);
}

/* As orphan_http, for a service that did not honour "cancel fires the callback". */
static void orphan_net(struct sw_plugin *plugin, struct tracker *t)
{
    swp_net_cb cb = t->net_cb;
    void *cb_ud = t->ud;
    park_orphan(plugin, &plugin->exchanges, t, "net exchange");
    cb(cb_ud, SWP_ECANCELED, NULL, 0);
}

static void host_net_cancel(const struct swp_host *h, uint64_t exchange_id)
{
    struct sw_plugin *plugin = self(h);
    const struct sw_plugin_services *svc = &plugin->host->services;
    struct tracker *t = tracker_find(&plugin->exchanges, exchange_id);
    if (t == NULL)
        return;
    if (svc->net_cancel != NULL)
        svc->net_cancel(svc->ud, plugin, exchange_id);
    if (tracker_find(&plugin->exchanges, exchange_id) == t)
        orphan_net(plugin, t);
}

static void *host_alloc(size_t size)
{
    return malloc(size);
}

static void host_free(void *ptr)
{
    free(ptr);
}

static const char *host_cfg_str(const struct swp_host *h, const char *key)
{
    const struct cfg_value *v = cfg_lookup(h, key);
    return v != NULL ? v->str : NULL;
}

static int64_t host_cfg_int(const struct swp_host *h, const char *key)
{
    const struct cfg_value *v = cfg_lookup(h, key);
    if (v == NULL)
        return 0;
    if (v->type == SWP_CFG_DOUBLE) {
        if (v->d >= 9223372036854775807.0)
            return INT64_MAX;
        if (v->d <= -9223372036854775808.0)
            return INT64_MIN;
        return (int64_t)v->d;
    }
    return v->i;
}

static double host_cfg_double(const struct swp_host *h, const char *key)
{
    const struct cfg_value *v = cfg_lookup(h, key);
    return v != NULL ? v->d : 0.0;
}

static bool host_cfg_bool(const struct swp_host *h, const char *key)
{
    const struct cfg_value *v = cfg_lookup(h, key);
    return v != NULL && v->b;
}

static const char *host_cfg_json(const struct swp_host *h, const char *key)
{
    const struct cfg_value *v = cfg_lookup(h, key);
    return v != NULL ? v->json : NULL;
}

static const char *host_instance_id(const struct swp_host *h)
{
    return self(h)->host->instance_id;
}

static uint64_t host_random_u64(const struct swp_host *h)
{
    return splitmix64(&self(h)->rng);
}

static void fill_table(struct sw_plugin *plugin)
{
    struct swp_host *t = &plugin->table;
    t->abi_major = SWP_ABI_MAJOR;
    t->abi_minor = SWP_ABI_MINOR;
    t->size = sizeof(*t);
    t->log = host_log;
    t->now_ms = host_now_ms;
    t->timer_start = host_timer_start;
    t->timer_stop = host_timer_stop;
    t->http_request = host_http_request;
    t->http_cancel = host_http_cancel;
    t->kv_get = host_kv_get;
    t->kv_set = host_kv_set;
    t->kv_del = host_kv_del;
    t->emit_event = host_emit_event;
    t->alloc = host_alloc;
    t->free = host_free;
    t->cfg_str = host_cfg_str;
    t->cfg_int = host_cfg_int;
    t->cfg_double = host_cfg_double;
    t->cfg_bool = host_cfg_bool;
    t->cfg_json = host_cfg_json;
    t->instance_id = host_instance_id;
    t->random_u64 = host_random_u64;
    t->net_exchange = host_net_exchange;
    t->net_cancel = host_net_cancel;
}

/* ---- vtables -------------------------------------------------------------------------- */

/* Copy an op only when the plugin's table is big enough to hold it. */
#define COPY_OP(type, dst, src, op)                                                                \
    do {                                                                                           \
        if ((src)->size >= offsetof(type, op) + sizeof((src)->op))                                 \
            (dst)->op = (src)->op;                                                                 \
    } while (0)

static void copy_vtables(struct sw_plugin *plugin)
{
    const struct swp_plugin *desc = plugin->desc;
    if (desc->market != NULL) {
        plugin->has_market = true;
        plugin->market.size = sizeof(plugin->market);
        COPY_OP(struct swp_market_ops, &plugin->market, desc->market, acquire);
        COPY_OP(struct swp_market_ops, &plugin->market, desc->market, release);
        COPY_OP(struct swp_market_ops, &plugin->market, desc->market, list);
        COPY_OP(struct swp_market_ops, &plugin->market, desc->market, offers);
        COPY_OP(struct swp_market_ops, &plugin->market, desc->market, list_version);
    }
    if (desc->dns != NULL) {
        plugin->has_dns = true;
        plugin->dns.size = sizeof(plugin->dns);
        COPY_OP(struct swp_dns_ops, &plugin->dns, desc->dns, list);
        COPY_OP(struct swp_dns_ops, &plugin->dns, desc->dns, upsert);
        COPY_OP(struct swp_dns_ops, &plugin->dns, desc->dns, remove);
        COPY_OP(struct swp_dns_ops, &plugin->dns, desc->dns, update_if);
    }
    if (desc->metrics != NULL) {
        plugin->has_metrics = true;
        plugin->metrics.size = sizeof(plugin->metrics);
        COPY_OP(struct swp_metrics_ops, &plugin->metrics, desc->metrics, query);
    }
    if (desc->probe != NULL) {
        plugin->has_probe = true;
        plugin->probe.size = sizeof(plugin->probe);
        COPY_OP(struct swp_probe_ops, &plugin->probe, desc->probe, probe);
    }
    if (desc->notify != NULL) {
        plugin->has_notify = true;
        plugin->notify.size = sizeof(plugin->notify);
        COPY_OP(struct swp_notify_ops, &plugin->notify, desc->notify, notify);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------ */

struct sw_plugin_host *sw_plugin_host_new(const struct sw_plugin_services *services,
                                          const char *instance_id, uint64_t seed)
{
    struct sw_plugin_host *host = sw_xcalloc(1, sizeof(*host));
    if (services != NULL)
        host->services = *services;
    host->instance_id = sw_xstrdup(instance_id != NULL ? instance_id : "steward");
    host->seed = seed;
    return host;
}

void sw_plugin_host_set_base_dir(struct sw_plugin_host *host, const char *dir)
{
    free(host->base_dir);
    host->base_dir = sw_xstrdup(dir);
}

/* Cancel requests (their callbacks run while the plugin is alive), stop timers, destroy
 * the state if init succeeded; the caller dlcloses. */
static void quiesce(struct sw_plugin *plugin, bool initialised)
{
    const struct sw_plugin_services *svc = &plugin->host->services;
    plugin->closing = true;
    while (plugin->requests.head != NULL) {
        struct tracker *t = plugin->requests.head;
        if (svc->http_cancel != NULL)
            svc->http_cancel(svc->ud, plugin, t->id);
        if (plugin->requests.head == t)
            orphan_http(plugin, t);
    }
    while (plugin->exchanges.head != NULL) {
        struct tracker *t = plugin->exchanges.head;
        if (svc->net_cancel != NULL)
            svc->net_cancel(svc->ud, plugin, t->id);
        if (plugin->exchanges.head == t)
            orphan_net(plugin, t);
    }
    while (plugin->timers.head != NULL) {
        struct tracker *t = plugin->timers.head;
        uint64_t id = t->id;
        tracker_unlink(&plugin->timers, t);
        free(t);
        if (svc->timer_stop != NULL)
            svc->timer_stop(svc->ud, plugin, id);
    }
    if (initialised && plugin->desc->destroy != NULL)
        plugin->desc->destroy(plugin->state);
    plugin->state = NULL;
    /* destroy may have tried again; closing refused it, so both lists stay empty. */
}

static void plugin_free(struct sw_plugin *plugin)
{
    if (plugin == NULL)
        return;
    if (plugin->dl != NULL)
        dlclose(plugin->dl);
    cfg_free(plugin->cfg, plugin->cfg_count);
    free(plugin->name);
    free(plugin->path);
    free(plugin);
}

struct sw_plugin *sw_plugin_host_load(struct sw_plugin_host *host, const char *path,
                                      const char *config_json, const char *config_origin,
                                      struct sw_error *err)
{
    void *dl = NULL;
    const struct swp_plugin *desc = NULL;
    struct sw_plugin *plugin = NULL;
    if (host == NULL || path == NULL) {
        sw_error_set(err, SW_EINVAL, "plugin host: no host or path given");
        return NULL;
    }
    if (open_plugin(path, &dl, &desc, err) < 0)
        goto fail;

    for (size_t i = 0; i < host->count; i++)
        if (strcmp(host->plugins[i]->name, desc->name) == 0) {
            sw_error_set(err, SW_EEXIST,
                         "%s: a plugin named '%s' is already loaded from %s (ABI %u.%u, host "
                         "ABI %u.%u); remove one of them from the plugin directories",
                         path, desc->name, host->plugins[i]->path, desc->abi_major, desc->abi_minor,
                         SWP_ABI_MAJOR, SWP_ABI_MINOR);
            goto fail;
        }

    plugin = sw_xcalloc(1, sizeof(*plugin));
    plugin->host = host;
    plugin->dl = dl;
    dl = NULL;
    plugin->desc = desc;
    plugin->name = sw_xstrdup(desc->name);
    plugin->path = sw_xstrdup(path);
    plugin->rng = host->seed ^ fnv1a64(plugin->name);
    fill_table(plugin);
    copy_vtables(plugin);

    if (validate_config(plugin, config_json, config_origin, err) < 0)
        goto fail;

    if (desc->init != NULL) {
        struct swp_error perr = {0};
        int rc = desc->init(&plugin->table, &plugin->state, &perr);
        if (rc < 0) {
            perr.msg[sizeof(perr.msg) - 1] = '\0';
            /* A plugin might format its token into the message; never pass that on. */
            char *clean = sw_log_redact(perr.msg[0] != '\0' ? perr.msg : sw_strerror(rc));
            sw_error_set(err, rc, "%s: plugin '%s' failed to initialise: %s", path, plugin->name,
                         clean);
            free(clean);
            quiesce(plugin, false);
            goto fail;
        }
    }

    if (host->count == host->cap) {
        host->cap = host->cap ? host->cap * 2 : 4;
        host->plugins = sw_xrealloc(host->plugins, host->cap * sizeof(*host->plugins));
    }
    host->plugins[host->count++] = plugin;
    sw_log(SW_LOG_INFO, "plugin_host", "loaded plugin '%s' %s (ABI %u.%u) from %s", plugin->name,
           desc->version != NULL ? desc->version : "", desc->abi_major, desc->abi_minor, path);
    return plugin;

fail:
    plugin_free(plugin);
    if (dl != NULL)
        dlclose(dl);
    return NULL;
}

void sw_plugin_host_unload(struct sw_plugin_host *host, struct sw_plugin *plugin)
{
    if (host == NULL || plugin == NULL)
        return;
    size_t index = host->count;
    for (size_t i = 0; i < host->count; i++)
        if (host->plugins[i] == plugin)
            index = i;
    if (index == host->count)
        return;
    quiesce(plugin, true);
    sw_log(SW_LOG_INFO, "plugin_host", "unloaded plugin '%s'", plugin->name);
    memmove(&host->plugins[index], &host->plugins[index + 1],
            (host->count - index - 1) * sizeof(*host->plugins));
    host->count--;
    plugin_free(plugin);
}

void sw_plugin_host_free(struct sw_plugin_host *host)
{
    if (host == NULL)
        return;
    while (host->count > 0)
        sw_plugin_host_unload(host, host->plugins[host->count - 1]);
    while (host->orphans.head != NULL) {
        struct tracker *t = host->orphans.head;
        tracker_unlink(&host->orphans, t);
        free(t);
    }
    free(host->plugins);
    free(host->instance_id);
    free(host->base_dir);
    free(host);
}

/* ---- discovery ------------------------------------------------------------------------ */

char *sw_plugin_host_find(const char *const *dirs, size_t dir_count, const char *name)
{
    if (dirs == NULL || !valid_name(name))
        return NULL;
    for (size_t i = 0; i < dir_count; i++) {
        if (dirs[i] == NULL || dirs[i][0] == '\0')
            continue;
        char *path = sw_xasprintf("%s/swp_%s.so", dirs[i], name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            return path;
        free(path);
    }
    return NULL;
}

struct sw_plugin_info *sw_plugin_host_probe(const char *path)
{
    struct sw_plugin_info *info = sw_xcalloc(1, sizeof(*info));
    info->path = sw_xstrdup(path != NULL ? path : "");
    if (path == NULL) {
        info->error = sw_xstrdup("plugin host: no path given");
        return info;
    }
    void *dl = NULL;
    const struct swp_plugin *desc = NULL;
    struct sw_error err = {0};
    int rc = open_plugin(path, &dl, &desc, &err);
    if (desc != NULL) {
        info->abi_major = desc->abi_major;
        info->abi_minor = desc->abi_minor;
        const char *name = message_name(desc);
        info->name = sw_xstrdup(name);
        /* Past the name only a same-major descriptor of at least v1 size is readable. */
        if (desc->abi_major == SWP_ABI_MAJOR && desc->size >= SWP_PLUGIN_SIZE_V1_0) {
            info->version = sw_xstrdup(desc->version);
            info->description = sw_xstrdup(desc->description);
            info->kinds = desc->kinds;
        }
    }
    if (rc < 0)
        info->error = sw_xstrdup(err.msg);
    if (dl != NULL)
        dlclose(dl);
    return info;
}

void sw_plugin_info_free(struct sw_plugin_info *info)
{
    if (info == NULL)
        return;
    free(info->name);
    free(info->version);
    free(info->description);
    free(info->path);
    free(info->error);
    free(info);
}

struct scan_entry {
    struct sw_plugin_info *info;
    char *sort_key; /* the plugin name, or the file's <name> when unreadable */
    size_t seq;     /* discovery order: directory order, then file name */
};

static int compare_names(const void *a, const void *b)
{
    const char *const *x = a;
    const char *const *y = b;
    return strcmp(*x, *y);
}

static int compare_scan(const void *a, const void *b)
{
    const struct scan_entry *x = a;
    const struct scan_entry *y = b;
    int c = strcmp(x->sort_key, y->sort_key);
    if (c != 0)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

struct sw_plugin_info **sw_plugin_host_scan(const char *const *dirs, size_t dir_count,
                                            size_t *count_out)
{
    struct scan_entry *entries = NULL;
    size_t count = 0, cap = 0;
    for (size_t d = 0; dirs != NULL && d < dir_count; d++) {
        if (dirs[d] == NULL || dirs[d][0] == '\0')
            continue;
        DIR *dir = opendir(dirs[d]);
        if (dir == NULL)
            continue;
        char **files = NULL;
        size_t file_count = 0, file_cap = 0;
        struct dirent *ent;
        while ((ent = readdir(dir)) != NULL) {
            size_t len = strlen(ent->d_name);
            if (len <= strlen("swp_.so") || strncmp(ent->d_name, "swp_", 4) != 0 ||
                strcmp(ent->d_name + len - 3, ".so") != 0)
                continue;
            if (file_count == file_cap) {
                file_cap = file_cap ? file_cap * 2 : 8;
                files = sw_xrealloc(files, file_cap * sizeof(*files));
            }
            files[file_count++] = sw_xstrdup(ent->d_name);
        }
        closedir(dir);
        /* readdir order is arbitrary; sort so discovery order is reproducible. */
        if (file_count > 0)
            qsort(files, file_count, sizeof(*files), compare_names);
        for (size_t f = 0; f < file_count; f++) {
            char *path = sw_xasprintf("%s/%s", dirs[d], files[f]);
            struct sw_plugin_info *info = sw_plugin_host_probe(path);
            free(path);
            if (count == cap) {
                cap = cap ? cap * 2 : 8;
                entries = sw_xrealloc(entries, cap * sizeof(*entries));
            }
            size_t stem_len = strlen(files[f]) - strlen("swp_") - strlen(".so");
            entries[count].info = info;
            entries[count].sort_key = info->name != NULL
                                          ? sw_xstrdup(info->name)
                                          : sw_xstrndup(files[f] + strlen("swp_"), stem_len);
            entries[count].seq = count;
            count++;
            free(files[f]);
        }
        free(files);
    }
    if (count > 0)
        qsort(entries, count, sizeof(*entries), compare_scan);

    /* Of several files declaring one name, only the one find() would pick (else the first
     * found) can be loaded: the others are marked, as load would refuse them. */
    for (size_t i = 0; i < count;) {
        size_t end = i + 1;
        while (end < count && strcmp(entries[end].sort_key, entries[i].sort_key) == 0)
            end++;
        size_t usable = 0, winner = end;
        for (size_t k = i; k < end; k++)
            if (entries[k].info->error == NULL) {
                usable++;
                if (winner == end)
                    winner = k;
            }
        if (usable > 1) {
            char *found = sw_plugin_host_find(dirs, dir_count, entries[i].sort_key);
            for (size_t k = i; k < end && found != NULL; k++)
                if (entries[k].info->error == NULL && strcmp(entries[k].info->path, found) == 0)
                    winner = k;
            free(found);
            for (size_t k = i; k < end; k++) {
                struct sw_plugin_info *info = entries[k].info;
                if (k == winner || info->error != NULL)
                    continue;
                info->error = sw_xasprintf("%s: a plugin named '%s' is already provided by "
                                           "%s; remove one of them from the plugin "
                                           "directories",
                                           info->path, info->name, entries[winner].info->path);
            }
        }
        i = end;
    }

    struct sw_plugin_info **out = sw_xcalloc(count + 1, sizeof(*out));
    for (size_t i = 0; i < count; i++) {
        out[i] = entries[i].info;
        free(entries[i].sort_key);
    }
    free(entries);
    if (count_out != NULL)
        *count_out = count;
    return out;
}

/* ---- describe ------------------------------------------------------------------------- */

struct strbuf {
    char *data;
    size_t len;
    size_t cap;
};

static void sb_printf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    if (sb->len + (size_t)n + 1 > sb->cap) {
        sb->cap = (sb->len + (size_t)n + 1) * 2;
        sb->data = sw_xrealloc(sb->data, sb->cap);
    }
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

static const char *kind_names[] = {"market", "dns", "metrics", "probe", "notify"};

char *sw_plugin_describe(const struct swp_plugin *desc)
{
    struct strbuf sb = {sw_xstrdup(""), 0, 1};
    if (desc == NULL || desc->size < SWP_PLUGIN_SIZE_V1_0) {
        sb_printf(&sb, "(no readable plugin descriptor)\n");
        return sb.data;
    }
    sb_printf(&sb, "%s %s (plugin ABI %u.%u, host ABI %u.%u)\n",
              desc->name != NULL ? desc->name : "(unnamed)",
              desc->version != NULL ? desc->version : "(no version)", desc->abi_major,
              desc->abi_minor, SWP_ABI_MAJOR, SWP_ABI_MINOR);
    sb_printf(&sb, "kinds:");
    bool any = false;
    for (size_t i = 0; i < SW_ARRAY_LEN(kind_names); i++)
        if (desc->kinds & (1u << i)) {
            sb_printf(&sb, "%s %s", any ? "," : "", kind_names[i]);
            any = true;
        }
    sb_printf(&sb, "%s\n", any ? "" : " none");
    if (desc->description != NULL && desc->description[0] != '\0')
        sb_printf(&sb, "%s\n", desc->description);

    if (desc->config_count == 0 || desc->config == NULL) {
        sb_printf(&sb, "config: none\n");
        return sb.data;
    }
    /* Column widths from the widest cell, so the table lines up in a terminal. */
    size_t key_w = strlen("key"), type_w = strlen("type"), req_w = strlen("required/default");
    char **req = sw_xcalloc(desc->config_count, sizeof(*req));
    for (size_t i = 0; i < desc->config_count; i++) {
        const struct swp_config_entry *e = &desc->config[i];
        const char *tn = type_name(e->type);
        if (e->required)
            req[i] = sw_xstrdup("required");
        else if (e->default_value != NULL)
            req[i] = sw_xasprintf("default %s", e->default_value);
        else
            req[i] = sw_xstrdup("optional");
        size_t kl = e->name != NULL ? strlen(e->name) : 0;
        key_w = kl > key_w ? kl : key_w;
        type_w = tn != NULL && strlen(tn) > type_w ? strlen(tn) : type_w;
        req_w = strlen(req[i]) > req_w ? strlen(req[i]) : req_w;
    }
    sb_printf(&sb, "config:\n  %-*s  %-*s  %-*s  %s\n", (int)key_w, "key", (int)type_w, "type",
              (int)req_w, "required/default", "description");
    for (size_t i = 0; i < desc->config_count; i++) {
        const struct swp_config_entry *e = &desc->config[i];
        const char *tn = type_name(e->type);
        sb_printf(&sb, "  %-*s  %-*s  %-*s  %s\n", (int)key_w, e->name ? e->name : "?", (int)type_w,
                  tn != NULL ? tn : "?", (int)req_w, req[i],
                  e->description != NULL ? e->description : "");
        free(req[i]);
    }
    free(req);
    return sb.data;
}

char *sw_plugin_host_describe_path(const char *path, struct sw_error *err)
{
    void *dl = NULL;
    const struct swp_plugin *desc = NULL;
    if (path == NULL) {
        sw_error_set(err, SW_EINVAL, "plugin host: no path given");
        return NULL;
    }
    char *text = NULL;
    if (open_plugin(path, &dl, &desc, err) == 0)
        text = sw_plugin_describe(desc);
    if (dl != NULL)
        dlclose(dl);
    return text;
}

/* ---- accessors ------------------------------------------------------------------------ */

struct sw_plugin *sw_plugin_host_get(struct sw_plugin_host *host, const char *name)
{
    if (host == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < host->count; i++)
        if (strcmp(host->plugins[i]->name, name) == 0)
            return host->plugins[i];
    return NULL;
}

size_t sw_plugin_host_count(const struct sw_plugin_host *host)
{
    return host != NULL ? host->count : 0;
}

struct sw_plugin *sw_plugin_host_at(struct sw_plugin_host *host, size_t index)
{
    return host != NULL && index < host->count ? host->plugins[index] : NULL;
}

const char *sw_plugin_name(const struct sw_plugin *plugin)
{
    return plugin->name;
}

const char *sw_plugin_path(const struct sw_plugin *plugin)
{
    return plugin->path;
}

const struct swp_plugin *sw_plugin_desc(const struct sw_plugin *plugin)
{
    return plugin->desc;
}

void *sw_plugin_state(const struct sw_plugin *plugin)
{
    return plugin->state;
}

const struct swp_market_ops *sw_plugin_market(const struct sw_plugin *plugin)
{
    return plugin->has_market ? &plugin->market : NULL;
}

const struct swp_dns_ops *sw_plugin_dns(const struct sw_plugin *plugin)
{
    return plugin->has_dns ? &plugin->dns : NULL;
}

const struct swp_metrics_ops *sw_plugin_metrics(const struct sw_plugin *plugin)
{
    return plugin->has_metrics ? &plugin->metrics : NULL;
}

const struct swp_probe_ops *sw_plugin_probe(const struct sw_plugin *plugin)
{
    return plugin->has_probe ? &plugin->probe : NULL;
}

const struct swp_notify_ops *sw_plugin_notify(const struct sw_plugin *plugin)
{
    return plugin->has_notify ? &plugin->notify : NULL;
}

const struct swp_host *sw_plugin_host_table(const struct sw_plugin *plugin)
{
    return &plugin->table;
}

struct sw_plugin *sw_plugin_from_host_table(const struct swp_host *table)
{
    return (struct sw_plugin *)((const char *)table - offsetof(struct sw_plugin, table));
}

size_t sw_plugin_pending_timers(const struct sw_plugin *plugin)
{
    size_t n = 0;
    for (const struct tracker *t = plugin->timers.head; t != NULL; t = t->next)
        n++;
    return n;
}

size_t sw_plugin_pending_requests(const struct sw_plugin *plugin)
{
    size_t n = 0;
    for (const struct tracker *t = plugin->requests.head; t != NULL; t = t->next)
        n++;
    return n;
}
