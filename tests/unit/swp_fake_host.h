/* swp_fake_host.h — a fake struct swp_host for driving a plugin through its ABI in a test.
 *
 * Virtual time (a sorted timer list fired in order by fake_advance), an in-memory KV that
 * outlives plugin instances (so a test can destroy and re-init over the same store), a
 * fixed random stream (splitmix64 from a seed), config from a cJSON object with the
 * descriptor's defaults applied as the real host would, and a transcript of every log
 * line, event and note with its virtual time (for determinism checks).
 *
 * Not the real host (core/plugin_host.c): only what plugin tests need. Header-only.
 */
#ifndef SWP_FAKE_HOST_H
#define SWP_FAKE_HOST_H

#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "steward/swp_plugin.h"

#define FAKE_FN static inline __attribute__((unused))

/* 2023-11-14T22:13:20Z: a round epoch so dseqs in assertions are readable. */
#define FAKE_EPOCH_MS INT64_C(1700000000000)

struct fake_timer {
    uint64_t id;
    int64_t due;
    uint64_t seq;
    swp_timer_cb cb;
    void *ud;
    struct fake_timer *next;
};

struct fake_kv {
    char *key;
    char *value;
    struct fake_kv *next;
};

struct fake_host {
    struct swp_host table; /* first, so the pointer the plugin passes back is ours */
    const struct swp_plugin *plugin;
    void *state;
    int64_t now;
    uint64_t next_timer_id;
    uint64_t timer_seq;
    struct fake_timer *timers; /* sorted by (due, seq) */
    struct fake_kv *kv;
    uint64_t rng;
    cJSON *config;
    char **json_cache; /* cfg_json results, borrowed by the plugin until destroy */
    size_t json_cache_count;
    const char *instance;
    size_t event_count;
    size_t log_count;
    size_t kv_writes;
    char *transcript;
    size_t transcript_len;
    size_t transcript_cap;
};

static inline struct fake_host *fake_of(const struct swp_host *h)
{
    return (struct fake_host *)(uintptr_t)h;
}

static inline char *fake_strdup(const char *s)
{
    size_t len = strlen(s);
    char *copy = malloc(len + 1);
    if (copy == NULL)
        abort();
    memcpy(copy, s, len + 1);
    return copy;
}

FAKE_FN void fake_note(struct fake_host *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
FAKE_FN void fake_note(struct fake_host *h, const char *fmt, ...)
{
    char line[1024];
    int head = snprintf(line, sizeof(line), "[%lld] ", (long long)(h->now - FAKE_EPOCH_MS));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + head, sizeof(line) - (size_t)head, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    if (h->transcript_len + len + 2 > h->transcript_cap) {
        size_t cap = h->transcript_cap ? h->transcript_cap * 2 : 4096;
        while (cap < h->transcript_len + len + 2)
            cap *= 2;
        h->transcript = realloc(h->transcript, cap);
        if (h->transcript == NULL)
            abort();
        h->transcript_cap = cap;
    }
    memcpy(h->transcript + h->transcript_len, line, len);
    h->transcript_len += len;
    h->transcript[h->transcript_len++] = '\n';
    h->transcript[h->transcript_len] = '\0';
    if (getenv("SW_TEST_VERBOSE"))
        fprintf(stderr, "      %s\n", line);
}

/* Number of transcript lines containing needle. */
FAKE_FN size_t fake_count(const struct fake_host *h, const char *needle)
{
    size_t count = 0;
    const char *p = h->transcript;
    while (p && (p = strstr(p, needle)) != NULL) {
        count++;
        p += strlen(needle);
    }
    return count;
}

/* ---- host services ---- */

static void fake_log(const struct swp_host *table, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fake_log(const struct swp_host *table, int level, const char *fmt, ...)
{
    struct fake_host *h = fake_of(table);
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char text[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    h->log_count++;
    fake_note(h, "log %s %s", level >= 0 && level <= 3 ? names[level] : "?", text);
}

static int64_t fake_now_ms(const struct swp_host *table)
{
    return fake_of(table)->now;
}

static uint64_t fake_timer_start(const struct swp_host *table, uint64_t delay_ms, swp_timer_cb cb,
                                 void *ud)
{
    struct fake_host *h = fake_of(table);
    struct fake_timer *t = calloc(1, sizeof(*t));
    if (t == NULL)
        abort();
    t->id = ++h->next_timer_id;
    t->due = h->now + (int64_t)delay_ms;
    t->seq = ++h->timer_seq;
    t->cb = cb;
    t->ud = ud;
    struct fake_timer **at = &h->timers;
    while (*at && ((*at)->due < t->due || ((*at)->due == t->due && (*at)->seq < t->seq)))
        at = &(*at)->next;
    t->next = *at;
    *at = t;
    return t->id;
}

static void fake_timer_stop(const struct swp_host *table, uint64_t id)
{
    struct fake_host *h = fake_of(table);
    for (struct fake_timer **at = &h->timers; *at; at = &(*at)->next) {
        if ((*at)->id == id) {
            struct fake_timer *t = *at;
            *at = t->next;
            free(t);
            return;
        }
    }
}

static uint64_t fake_http_request(const struct swp_host *table, const struct swp_http_req *req,
                                  swp_http_cb cb, void *ud)
{
    return 0; /* no network in unit tests */
}

static void fake_http_cancel(const struct swp_host *table, uint64_t id)
{
}

static struct fake_kv **fake_kv_find(struct fake_host *h, const char *key)
{
    struct fake_kv **at = &h->kv;
    while (*at && strcmp((*at)->key, key) != 0)
        at = &(*at)->next;
    return at;
}

static int fake_kv_get(const struct swp_host *table, const char *key, char **value_out)
{
    struct fake_kv **at = fake_kv_find(fake_of(table), key);
    if (*at == NULL)
        return SWP_ENOENT;
    *value_out = fake_strdup((*at)->value);
    return 0;
}

static int fake_kv_set(const struct swp_host *table, const char *key, const char *value)
{
    struct fake_host *h = fake_of(table);
    struct fake_kv **at = fake_kv_find(h, key);
    h->kv_writes++;
    if (*at) {
        free((*at)->value);
        (*at)->value = fake_strdup(value);
        return 0;
    }
    struct fake_kv *kv = calloc(1, sizeof(*kv));
    if (kv == NULL)
        abort();
    kv->key = fake_strdup(key);
    kv->value = fake_strdup(value);
    *at = kv;
    return 0;
}

static int fake_kv_del(const struct swp_host *table, const char *key)
{
    struct fake_host *h = fake_of(table);
    struct fake_kv **at = fake_kv_find(h, key);
    h->kv_writes++;
    if (*at == NULL)
        return SWP_ENOENT;
    struct fake_kv *kv = *at;
    *at = kv->next;
    free(kv->key);
    free(kv->value);
    free(kv);
    return 0;
}

static void fake_emit_event(const struct swp_host *table, const struct swp_event *ev)
{
    struct fake_host *h = fake_of(table);
    h->event_count++;
    fake_note(h, "event %s %s %s %s", ev->type, ev->market_id ? ev->market_id : "-",
              ev->reason ? ev->reason : "-", ev->data_json ? ev->data_json : "-");
}

static void *fake_alloc(size_t size)
{
    return malloc(size);
}

static void fake_free(void *ptr)
{
    free(ptr);
}

static const cJSON *fake_cfg_item(const struct swp_host *table, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(fake_of(table)->config, key);
}

static int fake_cfg_type(const struct swp_host *table, const char *key)
{
    const struct swp_plugin *p = fake_of(table)->plugin;
    for (size_t i = 0; i < p->config_count; i++)
        if (strcmp(p->config[i].name, key) == 0)
            return p->config[i].type;
    return 0;
}

/* The host's DURATION grammar: "<n>ms|s|m|h|d" or a number of seconds. */
FAKE_FN int64_t fake_duration_ms(const cJSON *item)
{
    if (cJSON_IsNumber(item))
        return (int64_t)(item->valuedouble * 1000.0 + 0.5);
    if (!cJSON_IsString(item))
        return -1;
    char *end = NULL;
    double value = strtod(item->valuestring, &end);
    double scale = strcmp(end, "ms") == 0  ? 1
                   : strcmp(end, "s") == 0 ? 1000
                   : strcmp(end, "m") == 0 ? 60000
                   : strcmp(end, "h") == 0 ? 3600000
                   : strcmp(end, "d") == 0 ? 86400000
                   : *end == '\0'          ? 1000
                                           : -1;
    return scale < 0 ? -1 : (int64_t)(value * scale + 0.5);
}

static const char *fake_cfg_str(const struct swp_host *table, const char *key)
{
    const cJSON *item = fake_cfg_item(table, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static int64_t fake_cfg_int(const struct swp_host *table, const char *key)
{
    const cJSON *item = fake_cfg_item(table, key);
    if (fake_cfg_type(table, key) == SWP_CFG_DURATION)
        return fake_duration_ms(item);
    return cJSON_IsNumber(item) ? (int64_t)item->valuedouble : 0;
}

static double fake_cfg_double(const struct swp_host *table, const char *key)
{
    const cJSON *item = fake_cfg_item(table, key);
    return cJSON_IsNumber(item) ? item->valuedouble : 0.0;
}

static bool fake_cfg_bool(const struct swp_host *table, const char *key)
{
    return cJSON_IsTrue(fake_cfg_item(table, key));
}

static const char *fake_cfg_json(const struct swp_host *table, const char *key)
{
    struct fake_host *h = fake_of(table);
    const cJSON *item = fake_cfg_item(table, key);
    if (item == NULL)
        return NULL;
    char *text = cJSON_PrintUnformatted(item);
    h->json_cache = realloc(h->json_cache, (h->json_cache_count + 1) * sizeof(char *));
    if (h->json_cache == NULL || text == NULL)
        abort();
    h->json_cache[h->json_cache_count++] = text;
    return text;
}

static const char *fake_instance_id(const struct swp_host *table)
{
    return fake_of(table)->instance;
}

static uint64_t fake_random_u64(const struct swp_host *table)
{
    struct fake_host *h = fake_of(table);
    uint64_t z = (h->rng += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* ---- test-side API ---- */

/* dlopen swp_<name>.so from $SW_PLUGIN_DIR (ctest sets it) or the build tree. The handle
 * stays open for the life of the test binary. */
FAKE_FN const struct swp_plugin *fake_load_plugin(const char *name)
{
    const char *dir = getenv("SW_PLUGIN_DIR");
    if (dir == NULL || dir[0] == '\0')
        dir = SW_BUILD_PLUGIN_DIR;
    char path[4096];
    snprintf(path, sizeof(path), "%s/swp_%s.so", dir, name);
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
        return NULL;
    }
    swp_plugin_entry_fn entry = (swp_plugin_entry_fn)dlsym(handle, SWP_PLUGIN_ENTRY_SYMBOL);
    return entry ? entry() : NULL;
}

FAKE_FN struct fake_host *fake_host_new(const struct swp_plugin *plugin, uint64_t seed)
{
    struct fake_host *h = calloc(1, sizeof(*h));
    if (h == NULL)
        abort();
    h->table = (struct swp_host){
        .abi_major = SWP_ABI_MAJOR,
        .abi_minor = SWP_ABI_MINOR,
        .size = sizeof(struct swp_host),
        .log = fake_log,
        .now_ms = fake_now_ms,
        .timer_start = fake_timer_start,
        .timer_stop = fake_timer_stop,
        .http_request = fake_http_request,
        .http_cancel = fake_http_cancel,
        .kv_get = fake_kv_get,
        .kv_set = fake_kv_set,
        .kv_del = fake_kv_del,
        .emit_event = fake_emit_event,
        .alloc = fake_alloc,
        .free = fake_free,
        .cfg_str = fake_cfg_str,
        .cfg_int = fake_cfg_int,
        .cfg_double = fake_cfg_double,
        .cfg_bool = fake_cfg_bool,
        .cfg_json = fake_cfg_json,
        .instance_id = fake_instance_id,
        .random_u64 = fake_random_u64,
    };
    h->plugin = plugin;
    h->now = FAKE_EPOCH_MS;
    h->rng = seed;
    h->instance = "stw-test-1";
    return h;
}

/* Sets the config from JSON text and applies the descriptor's defaults. Returns 0, or -1
 * when the text does not parse. */
FAKE_FN int fake_configure(struct fake_host *h, const char *json)
{
    cJSON_Delete(h->config);
    h->config = cJSON_Parse(json);
    if (!cJSON_IsObject(h->config))
        return -1;
    for (size_t i = 0; i < h->plugin->config_count; i++) {
        const struct swp_config_entry *e = &h->plugin->config[i];
        if (e->default_value && !cJSON_HasObjectItem(h->config, e->name))
            cJSON_AddItemToObject(h->config, e->name, cJSON_Parse(e->default_value));
    }
    return 0;
}

FAKE_FN int fake_init(struct fake_host *h, struct swp_error *err)
{
    memset(err, 0, sizeof(*err));
    h->state = NULL;
    return h->plugin->init(&h->table, &h->state, err);
}

FAKE_FN void fake_destroy(struct fake_host *h)
{
    if (h->state)
        h->plugin->destroy(h->state);
    h->state = NULL;
    for (size_t i = 0; i < h->json_cache_count; i++)
        free(h->json_cache[i]);
    free(h->json_cache);
    h->json_cache = NULL;
    h->json_cache_count = 0;
}

FAKE_FN size_t fake_timer_count(const struct fake_host *h)
{
    size_t count = 0;
    for (const struct fake_timer *t = h->timers; t; t = t->next)
        count++;
    return count;
}

/* Moves virtual time forward by ms, firing every timer due on the way in order. */
FAKE_FN void fake_advance(struct fake_host *h, int64_t ms)
{
    int64_t target = h->now + ms;
    while (h->timers && h->timers->due <= target) {
        struct fake_timer *t = h->timers;
        h->timers = t->next;
        if (t->due > h->now)
            h->now = t->due;
        swp_timer_cb cb = t->cb;
        void *ud = t->ud;
        free(t);
        cb(ud);
    }
    h->now = target;
}

/* Advances to an absolute offset from FAKE_EPOCH_MS. */
FAKE_FN void fake_advance_to(struct fake_host *h, int64_t offset_ms)
{
    fake_advance(h, FAKE_EPOCH_MS + offset_ms - h->now);
}

FAKE_FN const char *fake_kv_value(struct fake_host *h, const char *key)
{
    struct fake_kv **at = fake_kv_find(h, key);
    return *at ? (*at)->value : NULL;
}

FAKE_FN void fake_host_free(struct fake_host *h)
{
    fake_destroy(h);
    while (h->timers) {
        struct fake_timer *t = h->timers;
        h->timers = t->next;
        free(t);
    }
    while (h->kv) {
        struct fake_kv *kv = h->kv;
        h->kv = kv->next;
        free(kv->key);
        free(kv->value);
        free(kv);
    }
    cJSON_Delete(h->config);
    free(h->transcript);
    free(h);
}

#endif /* SWP_FAKE_HOST_H */
