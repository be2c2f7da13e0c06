/* market_sim — the embedded simulated marketplace (kind MARKET).
 *
 * It follows Akash semantics (see docs/marketplace.md): a deployment (dseq) is created,
 * providers whose attributes match bid, the lowest price wins (earliest bid on a tie), the
 * lease turns READY once the provider has started the workload, and providers sometimes close
 * leases on their own. It is the default market of `make run` and the market model of
 * `steward simulate`, so it reads time only through host->now_ms / host->timer_start and
 * randomness only through host->random_u64: the same seed replays the same run on a live or
 * a simulated clock.
 *
 * Providers file format (shared with `steward market serve` and `steward simulate`):
 *
 *   {"providers": [
 *     {"owner": "akash1...",                         required, unique
 *      "host_uri": "https://p1.eu-west.example:8443", optional string
 *      "region": "eu-west",                          default: attributes["location-region"]
 *      "attributes": {"location-region": "eu-west", ...},  optional, string values
 *      "price_uact_per_block": 120.5,                required, >= 0, uact per block per unit
 *      "bid_delay": "2s",                            default "1s": creation → bid
 *      "ready_delay": "15s",                         default "10s": lease → READY
 *      "capacity": 20,                               default 10: max concurrent units
 *      "audited": true,                              default false
 *      "closures_per_hour": 0.01}                    default 0: provider-closed leases/hour
 *   ]}
 *
 * Durations are "250ms", "2s", "5m", "1h", "1d" or a number of seconds. USD/hour = price ×
 * 600 / 1e6 (600 blocks of ~6 s per hour, 1e6 uact ≈ 1 USD). Unknown keys are ignored so
 * the market server can add its own (failure behaviour) to the same file. The inline config
 * key "providers" takes the array itself.
 *
 * Persistence (persist=true): each open deployment is the JSON value of KV key "dep/<dseq>",
 * and KV key "index" holds the JSON array of open dseqs (the KV has no listing).
 *
 * Test hook "close_provider_at": {"provider": owner, "after": duration, "every": duration}
 * makes that provider close all its leases at once, `after` from the plugin's start and
 * again every `every` (optional): a provider outage, as when an Akash provider loses a node
 * or its RPC and closes dozens of leases in one go. {"busiest": true} instead of "provider"
 * picks, each time, the provider holding the most leases then (ties: the first listed).
 * Each closed lease emits unit_lost (and fails its acquire if it was not ready yet), exactly
 * as a random closure does. The provider keeps bidding afterwards: avoiding it is the
 * client's job.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "steward/swp_plugin.h"
#include "steward/swp_util.h"

/* Closed deployments kept so that releasing one again still succeeds. Past this many the
 * oldest is forgotten (then it answers SWP_ENOENT, as after a restart). */
#define MS_CLOSED_KEEP 4096
#define MS_FILE_MAX ((long)4 << 20)
#define MS_INDEX_KEY "index"

struct provider {
    char *owner;
    char *region;
    double price_uact;
    double price_usd_hour;
    uint64_t bid_delay_ms;
    uint64_t ready_delay_ms;
    int64_t capacity;
    int64_t used;
    bool audited;
    double closures_per_hour;
};

struct market;
struct acquire;

struct deployment {
    struct market *m;
    char dseq[24];
    int64_t dseq_num; /* dseq as a number when it is one's canonical text, else -1 */
    int64_t created_ms;
    char *key;
    char *group;
    char *region;
    char *tag;
    int state; /* enum swp_unit_state, CREATED..CLOSED */
    char *provider;
    struct provider *prov; /* NULL when the owner is no longer in the providers list */
    double price_uact;
    double price_usd_hour;
    char *uri;
    const char *uris[1];
    int64_t ready_at_ms;   /* while LEASED: when the provider reports it up */
    int64_t closure_at_ms; /* 0: the provider never closes this lease */
    const char *reason;    /* static text: why it closed */
    uint64_t closed_seq;   /* order of closing, for forgetting the oldest first */
    uint64_t ready_timer;
    uint64_t closure_timer;
    struct acquire *acq; /* the acquire waiting on it, or NULL */
};

struct bid {
    struct acquire *a;
    struct provider *prov;
    uint64_t timer;
    bool answered;
    bool offered;
    int64_t at_ms;
    uint64_t seq;
};

struct acquire {
    struct market *m;
    struct acquire *prev;
    struct acquire *next;
    char *key;
    char *group;
    char *region;
    double max_price;
    char **avoid;
    size_t avoid_count;
    char **prefer;
    size_t prefer_count;
    char **only; /* placement pinning: when set, no other provider is eligible */
    size_t only_count;
    uint64_t deadline_ms;
    swp_unit_cb progress;
    swp_unit_cb done;
    void *ud;
    struct deployment *dep;
    uint64_t create_timer;
    uint64_t window_timer;
    uint64_t deadline_timer;
    uint64_t replay_timer;
    struct bid *bids;
    size_t bid_count;
    size_t answered;
    int in_cb;     /* > 0 while a progress callback runs: finishing then defers the free */
    bool finished; /* done has fired */
};

struct market {
    const struct swp_host *host;
    struct provider *providers;
    size_t provider_count;
    uint64_t create_delay_ms;
    uint64_t bid_window_ms;
    double closure_scale;
    bool persist;
    struct deployment **deps; /* creation order, open and closed */
    size_t dep_count;
    size_t dep_cap;
    /* the open ones alone, in creation order (what ms_list answers: a watch lists
     * every 30 simulated seconds, and up to MS_CLOSED_KEEP closed ones are kept), and
     * whether deps is sorted by dseq_num with every dseq canonical, so dep_find can bisect. */
    struct deployment **open;
    size_t open_count;
    size_t open_cap;
    bool deps_sorted;
    /* list_version's answer: bumped wherever a listed deployment appears, closes
     * or has a listed field set (dep_append, dep_close, lease, on_ready, reload_dep). */
    uint64_t list_version;
    size_t closed_count;
    uint64_t close_seq;
    bool reloading;           /* the index is written once at the end of a reload */
    struct acquire *acquires; /* in flight */
    uint64_t bid_seq;
    char *outage_provider;    /* close_provider_at: NULL when not configured or busiest */
    bool outage_busiest;
    uint64_t outage_every_ms; /* 0: once */
    uint64_t outage_timer;
    /* ms_list's answer, kept between calls (a watch lists every 30 simulated seconds:
     * allocating it each time was most of a listing). listing: a callback is reading it. */
    struct swp_unit *list_buf;
    size_t list_cap;
    bool listing;
    /* the list_version list_buf was filled under: an unchanged version lists the same
     * units with the same values (the deployments' strings it points to included), so the
     * buffer answers again as it is. */
    bool list_buf_filled;
    uint64_t list_buf_version;
    struct swp_offer *offer_buf; /* ms_offers' answer, likewise */
    size_t offer_cap;
    bool offering;
};

/* ---- small helpers ----------------------------------------------------------------- */

static const char *state_name(int state)
{
    switch (state) {
    case SWP_UNIT_CREATED:
        return "created";
    case SWP_UNIT_LEASED:
        return "leased";
    case SWP_UNIT_READY:
        return "ready";
    case SWP_UNIT_CLOSED:
        return "closed";
    default:
        return "ordered";
    }
}

static double usd_per_hour(double uact_per_block)
{
    return uact_per_block * 600.0 / 1e6;
}

/* "5s", "200ms", "2m": what a person would write for the configured durations. */
static const char *fmt_duration(uint64_t ms, char *buf, size_t len)
{
    unsigned long long v = (unsigned long long)ms;
    if (v >= 3600000 && v % 3600000 == 0)
        snprintf(buf, len, "%lluh", v / 3600000);
    else if (v >= 60000 && v % 60000 == 0)
        snprintf(buf, len, "%llum", v / 60000);
    else if (v % 1000 == 0)
        snprintf(buf, len, "%llus", v / 1000);
    else
        snprintf(buf, len, "%llums", v);
    return buf;
}

/* Same grammar as the host's DURATION: "<number><ms|s|m|h|d>" or a number of seconds. */
static int parse_duration(const cJSON *item, uint64_t *ms_out)
{
    double seconds;
    if (cJSON_IsNumber(item)) {
        seconds = item->valuedouble;
    } else if (cJSON_IsString(item)) {
        const char *text = item->valuestring;
        char *end = NULL;
        double value = strtod(text, &end);
        if (end == text)
            return SWP_EINVAL;
        double scale;
        if (strcmp(end, "ms") == 0)
            scale = 0.001;
        else if (strcmp(end, "s") == 0 || *end == '\0')
            scale = 1;
        else if (strcmp(end, "m") == 0)
            scale = 60;
        else if (strcmp(end, "h") == 0)
            scale = 3600;
        else if (strcmp(end, "d") == 0)
            scale = 86400;
        else
            return SWP_EINVAL;
        seconds = value * scale;
    } else {
        return SWP_EINVAL;
    }
    if (!(seconds >= 0) || seconds > 1e12)
        return SWP_EINVAL;
    *ms_out = (uint64_t)llround(seconds * 1000.0);
    return 0;
}

static bool in_list(char *const *list, size_t count, const char *value)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(list[i], value) == 0)
            return true;
    return false;
}

static char **copy_list(const char *const *list, size_t count)
{
    if (count == 0 || list == NULL)
        return NULL;
    char **copy = swp_xcalloc(count, sizeof(*copy));
    for (size_t i = 0; i < count; i++)
        copy[i] = swp_xstrdup(list[i] ? list[i] : "");
    return copy;
}

static void free_list(char **list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(list[i]);
    free(list);
}

static bool has_capacity(const struct provider *p)
{
    return p->used < p->capacity;
}

static uint64_t timer_arm(struct market *m, uint64_t delay_ms, swp_timer_cb cb, void *ud)
{
    uint64_t id = m->host->timer_start(m->host, delay_ms, cb, ud);
    if (id == 0)
        m->host->log(m->host, SWP_LOG_ERROR, "timer_start failed (delay %llu ms)",
                     (unsigned long long)delay_ms);
    return id;
}

static void timer_disarm(struct market *m, uint64_t *id)
{
    if (*id != 0)
        m->host->timer_stop(m->host, *id);
    *id = 0;
}

/* ---- providers ----------------------------------------------------------------------- */

static void providers_free(struct market *m)
{
    for (size_t i = 0; i < m->provider_count; i++) {
        free(m->providers[i].owner);
        free(m->providers[i].region);
    }
    free(m->providers);
    m->providers = NULL;
    m->provider_count = 0;
}

static struct provider *provider_find(struct market *m, const char *owner)
{
    for (size_t i = 0; owner && i < m->provider_count; i++)
        if (strcmp(m->providers[i].owner, owner) == 0)
            return &m->providers[i];
    return NULL;
}

/* Fills one provider from providers[index]; messages name origin and the JSON path. */
static int provider_parse(struct provider *p, const cJSON *obj, const char *origin, int index,
                          struct swp_error *err)
{
    if (!cJSON_IsObject(obj)) {
        swp_set_error(err, SWP_ECONFIG, "%s: providers[%d]: expected object", origin, index);
        return SWP_ECONFIG;
    }
    const cJSON *owner = cJSON_GetObjectItemCaseSensitive(obj, "owner");
    if (!cJSON_IsString(owner) || owner->valuestring[0] == '\0') {
        swp_set_error(err, SWP_ECONFIG, "%s: providers[%d].owner: expected non-empty string",
                      origin, index);
        return SWP_ECONFIG;
    }
    p->owner = swp_xstrdup(owner->valuestring);

    const cJSON *host_uri = cJSON_GetObjectItemCaseSensitive(obj, "host_uri");
    if (host_uri && !cJSON_IsString(host_uri)) {
        swp_set_error(err, SWP_ECONFIG, "%s: providers[%d].host_uri: expected string", origin,
                      index);
        return SWP_ECONFIG;
    }
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(obj, "attributes");
    const cJSON *attr_region = NULL;
    if (attrs) {
        if (!cJSON_IsObject(attrs)) {
            swp_set_error(err, SWP_ECONFIG, "%s: providers[%d].attributes: expected object", origin,
                          index);
            return SWP_ECONFIG;
        }
        const cJSON *attr;
        cJSON_ArrayForEach(attr, attrs)
        {
            if (!cJSON_IsString(attr)) {
                swp_set_error(err, SWP_ECONFIG, "%s: providers[%d].attributes.%s: expected string",
                              origin, index, attr->string);
                return SWP_ECONFIG;
            }
        }
        attr_region = cJSON_GetObjectItemCaseSensitive(attrs, "location-region");
    }
    const cJSON *region = cJSON_GetObjectItemCaseSensitive(obj, "region");
    if (region == NULL)
        region = attr_region;
    if (!cJSON_IsString(region) || region->valuestring[0] == '\0') {
        swp_set_error(err, SWP_ECONFIG,
                      "%s: providers[%d].region: expected non-empty string (or "
                      "attributes.location-region)",
                      origin, index);
        return SWP_ECONFIG;
    }
    p->region = swp_xstrdup(region->valuestring);

    const cJSON *price = cJSON_GetObjectItemCaseSensitive(obj, "price_uact_per_block");
    if (!cJSON_IsNumber(price) || !(price->valuedouble >= 0)) {
        swp_set_error(err, SWP_ECONFIG,
                      "%s: providers[%d].price_uact_per_block: expected number >= 0", origin,
                      index);
        return SWP_ECONFIG;
    }
    p->price_uact = price->valuedouble;
    p->price_usd_hour = usd_per_hour(p->price_uact);

    static const struct {
        const char *name;
        uint64_t fallback;
        size_t offset;
    } delays[] = {
        {"bid_delay", 1000, offsetof(struct provider, bid_delay_ms)},
        {"ready_delay", 10000, offsetof(struct provider, ready_delay_ms)},
    };
    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, delays[i].name);
        uint64_t *slot = (uint64_t *)((char *)p + delays[i].offset);
        *slot = delays[i].fallback;
        if (item && parse_duration(item, slot) < 0) {
            swp_set_error(err, SWP_ECONFIG,
                          "%s: providers[%d].%s: expected duration (\"2s\", \"500ms\", seconds)",
                          origin, index, delays[i].name);
            return SWP_ECONFIG;
        }
    }

    const cJSON *capacity = cJSON_GetObjectItemCaseSensitive(obj, "capacity");
    p->capacity = 10;
    if (capacity) {
        if (!cJSON_IsNumber(capacity) || capacity->valuedouble < 0 ||
            capacity->valuedouble != floor(capacity->valuedouble) || capacity->valuedouble > 1e9) {
            swp_set_error(err, SWP_ECONFIG, "%s: providers[%d].capacity: expected integer >= 0",
                          origin, index);
            return SWP_ECONFIG;
        }
        p->capacity = (int64_t)capacity->valuedouble;
    }

    const cJSON *audited = cJSON_GetObjectItemCaseSensitive(obj, "audited");
    if (audited && !cJSON_IsBool(audited)) {
        swp_set_error(err, SWP_ECONFIG, "%s: providers[%d].audited: expected boolean", origin,
                      index);
        return SWP_ECONFIG;
    }
    p->audited = cJSON_IsTrue(audited);

    const cJSON *closures = cJSON_GetObjectItemCaseSensitive(obj, "closures_per_hour");
    if (closures && (!cJSON_IsNumber(closures) || !(closures->valuedouble >= 0))) {
        swp_set_error(err, SWP_ECONFIG, "%s: providers[%d].closures_per_hour: expected number >= 0",
                      origin, index);
        return SWP_ECONFIG;
    }
    p->closures_per_hour = closures ? closures->valuedouble : 0.0;
    return 0;
}

static int providers_load(struct market *m, const cJSON *array, const char *origin,
                          struct swp_error *err)
{
    if (!cJSON_IsArray(array)) {
        swp_set_error(err, SWP_ECONFIG, "%s: providers: expected array", origin);
        return SWP_ECONFIG;
    }
    int count = cJSON_GetArraySize(array);
    if (count == 0) {
        swp_set_error(err, SWP_ECONFIG, "%s: providers: expected at least one provider", origin);
        return SWP_ECONFIG;
    }
    m->providers = swp_xcalloc((size_t)count, sizeof(*m->providers));
    const cJSON *item;
    int index = 0;
    cJSON_ArrayForEach(item, array)
    {
        /* Counted first so providers_free sees the partly filled entry on failure. */
        m->provider_count = (size_t)index + 1;
        int rc = provider_parse(&m->providers[index], item, origin, index, err);
        if (rc < 0)
            return rc;
        for (int j = 0; j < index; j++) {
            if (strcmp(m->providers[j].owner, m->providers[index].owner) == 0) {
                swp_set_error(err, SWP_ECONFIG,
                              "%s: providers[%d].owner: \"%s\" already used by providers[%d]",
                              origin, index, m->providers[index].owner, j);
                return SWP_ECONFIG;
            }
        }
        index++;
    }
    return 0;
}

static int providers_from_file(struct market *m, const char *path, struct swp_error *err)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        swp_set_error(err, SWP_ECONFIG, "providers_file: cannot open %s", path);
        return SWP_ECONFIG;
    }
    char *text = swp_xcalloc(1, (size_t)MS_FILE_MAX + 1);
    size_t len = fread(text, 1, (size_t)MS_FILE_MAX + 1, file);
    bool failed = ferror(file) != 0;
    fclose(file);
    int rc = SWP_ECONFIG;
    cJSON *root = NULL;
    if (failed) {
        swp_set_error(err, SWP_ECONFIG, "providers_file: cannot read %s", path);
        goto out;
    }
    if (len > (size_t)MS_FILE_MAX) {
        swp_set_error(err, SWP_ECONFIG, "%s: larger than %ld bytes", path, MS_FILE_MAX);
        goto out;
    }
    root = cJSON_ParseWithLength(text, len);
    if (root == NULL) {
        const char *where = cJSON_GetErrorPtr();
        long offset = where && where >= text && where <= text + len ? (long)(where - text) : -1;
        swp_set_error(err, SWP_ECONFIG, "%s: invalid JSON near byte %ld", path, offset);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        swp_set_error(err, SWP_ECONFIG, "%s: expected {\"providers\": [...]}", path);
        goto out;
    }
    rc = providers_load(m, cJSON_GetObjectItemCaseSensitive(root, "providers"), path, err);
out:
    cJSON_Delete(root);
    free(text);
    return rc;
}

/* ---- deployments and persistence ----------------------------------------------------- */

static void dep_free(struct deployment *d)
{
    if (d == NULL)
        return;
    free(d->key);
    free(d->group);
    free(d->region);
    free(d->tag);
    free(d->provider);
    free(d->uri);
    free(d);
}

/* A dseq's number when the text is its canonical decimal form ("0012" and "12x" are not),
 * else -1. */
static int64_t dseq_number(const char *dseq)
{
    if (dseq[0] < '0' || dseq[0] > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(dseq, &end, 10);
    char canon[24];
    if (errno != 0 || *end != '\0' || v < 0)
        return -1;
    snprintf(canon, sizeof(canon), "%lld", v);
    return strcmp(canon, dseq) == 0 ? (int64_t)v : -1;
}

static struct deployment *dep_find(struct market *m, const char *dseq)
{
    if (m->deps_sorted) {
        /* Every dseq is canonical and they increase: text that is not canonical names none,
         * and a number is found by bisection. */
        int64_t num = dseq_number(dseq);
        if (num < 0)
            return NULL;
        size_t lo = 0, hi = m->dep_count;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (m->deps[mid]->dseq_num < num)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo < m->dep_count && m->deps[lo]->dseq_num == num ? m->deps[lo] : NULL;
    }
    for (size_t i = m->dep_count; i-- > 0;)
        if (strcmp(m->deps[i]->dseq, dseq) == 0)
            return m->deps[i];
    return NULL;
}

static struct deployment *dep_find_open_by_key(struct market *m, const char *key)
{
    for (size_t i = m->open_count; key && i-- > 0;) {
        struct deployment *d = m->open[i];
        if (d->key && strcmp(d->key, key) == 0)
            return d;
    }
    return NULL;
}

static void dep_append(struct market *m, struct deployment *d)
{
    if (m->dep_count == m->dep_cap) {
        size_t cap = m->dep_cap ? m->dep_cap * 2 : 16;
        struct deployment **grown = swp_xrealloc(m->deps, cap * sizeof(*grown));
        m->deps = grown;
        m->dep_cap = cap;
    }
    d->dseq_num = dseq_number(d->dseq);
    if (m->dep_count == 0)
        m->deps_sorted = true;
    if (d->dseq_num < 0 || (m->dep_count > 0 && m->deps[m->dep_count - 1]->dseq_num >= d->dseq_num))
        m->deps_sorted = false;
    m->deps[m->dep_count++] = d;
    m->list_version++;
    if (d->state != SWP_UNIT_CLOSED) {
        if (m->open_count == m->open_cap) {
            m->open_cap = m->open_cap ? m->open_cap * 2 : 16;
            m->open = swp_xrealloc(m->open, m->open_cap * sizeof(*m->open));
        }
        m->open[m->open_count++] = d;
    }
}

/* d leaves the open list (it is closing); the others keep their order. */
static void open_remove(struct market *m, const struct deployment *d)
{
    for (size_t i = m->open_count; i-- > 0;)
        if (m->open[i] == d) {
            memmove(&m->open[i], &m->open[i + 1], (m->open_count - i - 1) * sizeof(*m->open));
            m->open_count--;
            return;
        }
}

/* Forget the deployment closed longest ago once too many are kept. One a callback is looking
 * at was closed recently, so it outlives thousands of further closes. */
static void deps_prune(struct market *m)
{
    if (m->closed_count <= MS_CLOSED_KEEP)
        return;
    size_t oldest = m->dep_count;
    for (size_t i = 0; i < m->dep_count; i++) {
        const struct deployment *d = m->deps[i];
        if (d->state == SWP_UNIT_CLOSED &&
            (oldest == m->dep_count || d->closed_seq < m->deps[oldest]->closed_seq))
            oldest = i;
    }
    if (oldest == m->dep_count)
        return;
    dep_free(m->deps[oldest]);
    memmove(&m->deps[oldest], &m->deps[oldest + 1], (m->dep_count - oldest - 1) * sizeof(*m->deps));
    m->dep_count--;
    m->closed_count--;
}

static void kv_add_str(cJSON *obj, const char *name, const char *value)
{
    if (value)
        cJSON_AddStringToObject(obj, name, value);
    else
        cJSON_AddNullToObject(obj, name);
}

static void persist_index(struct market *m)
{
    if (!m->persist)
        return;
    cJSON *array = cJSON_CreateArray();
    for (size_t i = 0; array && i < m->dep_count; i++)
        if (m->deps[i]->state != SWP_UNIT_CLOSED)
            cJSON_AddItemToArray(array, cJSON_CreateString(m->deps[i]->dseq));
    char *text = array ? cJSON_PrintUnformatted(array) : NULL;
    int rc = text ? m->host->kv_set(m->host, MS_INDEX_KEY, text) : SWP_ENOMEM;
    if (rc < 0)
        m->host->log(m->host, SWP_LOG_WARN, "cannot save the deployment index (error %d)", rc);
    free(text);
    cJSON_Delete(array);
}

static void persist_dep(struct deployment *d)
{
    struct market *m = d->m;
    if (!m->persist)
        return;
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (o) {
        cJSON_AddStringToObject(o, "dseq", d->dseq);
        cJSON_AddStringToObject(o, "state", state_name(d->state));
        kv_add_str(o, "key", d->key);
        kv_add_str(o, "group", d->group);
        kv_add_str(o, "region", d->region);
        kv_add_str(o, "tag", d->tag);
        kv_add_str(o, "provider", d->provider);
        kv_add_str(o, "uri", d->uri);
        cJSON_AddNumberToObject(o, "created_ms", (double)d->created_ms);
        cJSON_AddNumberToObject(o, "price_uact_per_block", d->price_uact);
        cJSON_AddNumberToObject(o, "price_usd_hour", d->price_usd_hour);
        cJSON_AddNumberToObject(o, "ready_at_ms", (double)d->ready_at_ms);
        cJSON_AddNumberToObject(o, "closure_at_ms", (double)d->closure_at_ms);
        text = cJSON_PrintUnformatted(o);
    }
    char key[40];
    snprintf(key, sizeof(key), "dep/%s", d->dseq);
    int rc = text ? m->host->kv_set(m->host, key, text) : SWP_ENOMEM;
    if (rc < 0)
        m->host->log(m->host, SWP_LOG_WARN, "cannot save deployment %s (error %d)", d->dseq, rc);
    free(text);
    cJSON_Delete(o);
}

static void unpersist_dep(struct deployment *d)
{
    struct market *m = d->m;
    if (!m->persist)
        return;
    /* Index first: a crash in between leaves an unreferenced key, never a dangling entry. */
    if (!m->reloading)
        persist_index(m);
    char key[40];
    snprintf(key, sizeof(key), "dep/%s", d->dseq);
    int rc = m->host->kv_del(m->host, key);
    if (rc < 0 && rc != SWP_ENOENT)
        m->host->log(m->host, SWP_LOG_WARN, "cannot delete deployment %s (error %d)", d->dseq, rc);
}

/* Closes an open deployment: timers stop, capacity goes back, the KV forgets it. The
 * acquire waiting on it (if any) is the caller's to finish. */
static void dep_close(struct deployment *d, const char *reason)
{
    struct market *m = d->m;
    if (d->state == SWP_UNIT_CLOSED)
        return;
    timer_disarm(m, &d->ready_timer);
    timer_disarm(m, &d->closure_timer);
    if ((d->state == SWP_UNIT_LEASED || d->state == SWP_UNIT_READY) && d->prov && d->prov->used > 0)
        d->prov->used--;
    d->state = SWP_UNIT_CLOSED;
    open_remove(m, d);
    m->list_version++;
    d->reason = reason;
    d->closed_seq = ++m->close_seq;
    unpersist_dep(d);
    m->closed_count++;
    deps_prune(m);
}

static void unit_fill(const struct deployment *d, struct swp_unit *u)
{
    memset(u, 0, sizeof(*u));
    u->size = sizeof(*u);
    u->key = d->key;
    u->market_id = d->dseq;
    u->group = d->group;
    u->region = d->region;
    u->provider = d->provider;
    u->price_usd_hour = d->price_usd_hour;
    u->uris = d->uri ? d->uris : NULL;
    u->uri_count = d->uri ? 1 : 0;
    u->state = d->state;
    u->reason = d->state == SWP_UNIT_CLOSED ? d->reason : NULL;
    u->created_ms = d->created_ms;
    u->tag = d->tag;
}

/* ---- acquire bookkeeping ------------------------------------------------------------- */

static void acq_free(struct acquire *a)
{
    free(a->key);
    free(a->group);
    free(a->region);
    free_list(a->avoid, a->avoid_count);
    free_list(a->prefer, a->prefer_count);
    free_list(a->only, a->only_count);
    free(a->bids);
    free(a);
}

static void acq_stop_bids(struct acquire *a)
{
    for (size_t i = 0; i < a->bid_count; i++)
        timer_disarm(a->m, &a->bids[i].timer);
}

/* Completes an acquire exactly once. Every timer stops and the deployment forgets it first,
 * so the callback may release, acquire or list freely. */
static void acq_finish(struct acquire *a, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void acq_finish(struct acquire *a, int status, const char *fmt, ...)
{
    struct market *m = a->m;
    if (a->finished)
        return;
    a->finished = true;
    timer_disarm(m, &a->create_timer);
    timer_disarm(m, &a->window_timer);
    timer_disarm(m, &a->deadline_timer);
    timer_disarm(m, &a->replay_timer);
    acq_stop_bids(a);
    if (a->prev)
        a->prev->next = a->next;
    else
        m->acquires = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;

    struct swp_error err = {.code = status, .msg = ""};
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
        va_end(ap);
    }
    struct swp_unit unit;
    struct deployment *d = a->dep;
    if (d) {
        d->acq = NULL;
        unit_fill(d, &unit);
        unit.key = a->key;
    }
    if (status < 0)
        m->host->log(m->host, SWP_LOG_INFO, "acquire %s in %s failed: %s",
                     a->key ? a->key : "(no key)", a->region, err.msg);
    a->done(a->ud, status, d ? &unit : NULL, status < 0 ? &err : NULL);
    if (a->in_cb == 0)
        acq_free(a);
}

/* Reports progress as state (the deployment's own, or CREATED when replaying the story to
 * an acquire that joined later); returns false when the acquire finished inside the callback
 * (it is then freed and the caller must not touch it). */
static bool acq_progress(struct acquire *a, int state)
{
    struct swp_unit unit;
    unit_fill(a->dep, &unit);
    unit.key = a->key;
    if (unit.state != state) {
        unit.state = state;
        unit.uris = NULL;
        unit.uri_count = 0;
        if (state == SWP_UNIT_CREATED) {
            unit.provider = NULL;
            unit.price_usd_hour = 0;
        }
    }
    a->in_cb++;
    a->progress(a->ud, 0, &unit, NULL);
    a->in_cb--;
    if (a->finished) {
        if (a->in_cb == 0)
            acq_free(a);
        return false;
    }
    return true;
}

/* A timer could not be armed: give the deployment up rather than leave it waiting forever. */
static void acq_fail_timer(struct acquire *a)
{
    if (a->dep)
        dep_close(a->dep, "timer_failed");
    acq_finish(a, SWP_EIO, "market_sim: the host could not start a timer");
}

/* ---- the acquire state machine -------------------------------------------------------- */

static void on_ready(void *ud);
static void on_closure(void *ud);

/* Draws the provider-initiated closure of a lease that just became active: exponential
 * with rate closures_per_hour × closure_scale, from the plugin's seeded stream. */
static void arm_closure(struct deployment *d, int64_t now)
{
    struct market *m = d->m;
    d->closure_at_ms = 0;
    if (d->prov == NULL)
        return;
    double rate_per_hour = d->prov->closures_per_hour * m->closure_scale;
    if (!(rate_per_hour > 0))
        return;
    double uniform = (double)(m->host->random_u64(m->host) >> 11) * 0x1.0p-53; /* [0, 1) */
    double delay_ms = -log1p(-uniform) / rate_per_hour * 3600000.0;
    if (!(delay_ms < 1e15)) /* beyond any run: never */
        return;
    uint64_t delay = (uint64_t)llround(delay_ms);
    d->closure_at_ms = now + (int64_t)delay;
    d->closure_timer = timer_arm(m, delay, on_closure, d);
}

static void lease(struct acquire *a, struct bid *best, size_t offered)
{
    struct market *m = a->m;
    struct deployment *d = a->dep;
    struct provider *p = best->prov;
    int64_t now = m->host->now_ms(m->host);
    p->used++;
    m->list_version++;
    d->state = SWP_UNIT_LEASED;
    d->prov = p;
    d->provider = swp_xstrdup(p->owner);
    d->price_uact = p->price_uact;
    d->price_usd_hour = p->price_usd_hour;
    d->ready_at_ms = now + (int64_t)p->ready_delay_ms;
    char ready_in[32];
    m->host->log(m->host, SWP_LOG_INFO,
                 "deployment %s (%s, %s): chose %s at %g uact/block (%.4f USD/h), lowest of "
                 "%zu bid%s from %zu eligible; ready in %s",
                 d->dseq, d->group ? d->group : "-", d->region, p->owner, p->price_uact,
                 p->price_usd_hour, offered, offered == 1 ? "" : "s", a->bid_count,
                 fmt_duration(p->ready_delay_ms, ready_in, sizeof(ready_in)));
    d->ready_timer = timer_arm(m, p->ready_delay_ms, on_ready, d);
    if (d->ready_timer == 0) {
        acq_fail_timer(a);
        return;
    }
    arm_closure(d, now);
    persist_dep(d);
    acq_progress(a, SWP_UNIT_LEASED);
}

/* Better bid: lower price, then a preferred provider, then the earlier bid. */
static bool bid_better(const struct acquire *a, const struct bid *x, const struct bid *y)
{
    if (x->prov->price_uact != y->prov->price_uact)
        return x->prov->price_uact < y->prov->price_uact;
    bool x_pref = in_list(a->prefer, a->prefer_count, x->prov->owner);
    bool y_pref = in_list(a->prefer, a->prefer_count, y->prov->owner);
    if (x_pref != y_pref)
        return x_pref;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms;
    return x->seq < y->seq;
}

static void choose(struct acquire *a)
{
    struct market *m = a->m;
    struct deployment *d = a->dep;
    timer_disarm(m, &a->window_timer);
    acq_stop_bids(a);
    struct bid *best = NULL;
    size_t offered = 0;
    for (size_t i = 0; i < a->bid_count; i++) {
        struct bid *b = &a->bids[i];
        /* A bid from a provider that filled up since is void, as when Akash's bid expires. */
        if (!b->offered || !has_capacity(b->prov))
            continue;
        offered++;
        if (best == NULL || bid_better(a, b, best))
            best = b;
    }
    if (best == NULL) {
        char window[32];
        fmt_duration(m->bid_window_ms, window, sizeof(window));
        m->host->log(m->host, SWP_LOG_INFO,
                     "deployment %s (%s, %s): no acceptable bid within %s, closing it", d->dseq,
                     d->group ? d->group : "-", d->region, window);
        dep_close(d, "no_acceptable_bid");
        acq_finish(a, SWP_EMARKET, "no acceptable bid for %s within %s (%zu providers match)",
                   a->region, window, a->bid_count);
        return;
    }
    lease(a, best, offered);
}

static void on_bid(void *ud)
{
    struct bid *b = ud;
    struct acquire *a = b->a;
    struct market *m = a->m;
    b->timer = 0;
    b->answered = true;
    a->answered++;
    if (has_capacity(b->prov)) {
        b->offered = true;
        b->at_ms = m->host->now_ms(m->host);
        b->seq = ++m->bid_seq;
        m->host->log(m->host, SWP_LOG_DEBUG, "deployment %s: bid from %s at %g uact/block",
                     a->dep->dseq, b->prov->owner, b->prov->price_uact);
    } else {
        m->host->log(m->host, SWP_LOG_DEBUG, "deployment %s: %s is full, no bid", a->dep->dseq,
                     b->prov->owner);
    }
    if (a->answered == a->bid_count)
        choose(a);
}

static void on_window(void *ud)
{
    struct acquire *a = ud;
    a->window_timer = 0;
    choose(a);
}

static void on_create(void *ud)
{
    struct acquire *a = ud;
    struct market *m = a->m;
    a->create_timer = 0;
    int64_t now = m->host->now_ms(m->host);

    /* dseq is the creation time in ms, as Akash clients choose it; bumped until unique. */
    int64_t dseq = now;
    char text[24];
    for (;;) {
        snprintf(text, sizeof(text), "%lld", (long long)dseq);
        if (dep_find(m, text) == NULL)
            break;
        dseq++;
    }
    struct deployment *d = swp_xcalloc(1, sizeof(*d));
    d->m = m;
    memcpy(d->dseq, text, sizeof(text));
    d->created_ms = dseq;
    d->key = swp_xstrdup(a->key);
    d->group = swp_xstrdup(a->group);
    d->region = swp_xstrdup(a->region);
    const char *tag = m->host->instance_id(m->host);
    d->tag = swp_xstrdup(tag);
    d->state = SWP_UNIT_CREATED;
    d->acq = a;
    a->dep = d;
    dep_append(m, d);

    size_t in_region = 0, avoided = 0, too_dear = 0, full = 0, unpinned = 0;
    a->bids = swp_xcalloc(m->provider_count, sizeof(*a->bids));
    for (size_t i = 0; i < m->provider_count; i++) {
        struct provider *p = &m->providers[i];
        if (strcmp(p->region, a->region) != 0)
            continue;
        in_region++;
        if (a->only_count > 0 && !in_list(a->only, a->only_count, p->owner)) {
            unpinned++;
            continue;
        }
        if (in_list(a->avoid, a->avoid_count, p->owner)) {
            avoided++;
            continue;
        }
        if (a->max_price > 0 && p->price_usd_hour > a->max_price * (1 + 1e-12)) {
            too_dear++;
            continue;
        }
        if (!has_capacity(p)) {
            full++;
            continue;
        }
        struct bid *b = &a->bids[a->bid_count++];
        b->a = a;
        b->prov = p;
    }
    char pinned[48] = "";
    if (a->only_count > 0)
        snprintf(pinned, sizeof(pinned), "%zu not pinned, ", unpinned);
    m->host->log(m->host, SWP_LOG_INFO,
                 "deployment %s created for %s in %s (key %s): %zu of %zu providers in the "
                 "region eligible (%s%zu avoided, %zu over max price, %zu full)",
                 d->dseq, d->group ? d->group : "-", d->region, d->key ? d->key : "-", a->bid_count,
                 in_region, pinned, avoided, too_dear, full);
    for (size_t i = 0; i < a->bid_count; i++) {
        a->bids[i].timer = timer_arm(m, a->bids[i].prov->bid_delay_ms, on_bid, &a->bids[i]);
        if (a->bids[i].timer == 0) {
            acq_fail_timer(a);
            return;
        }
    }
    /* With nobody eligible the window still runs: a real client cannot know that no bid
     * will come, and the simulator should spend the same time a live run would. */
    a->window_timer = timer_arm(m, m->bid_window_ms, on_window, a);
    if (a->window_timer == 0) {
        acq_fail_timer(a);
        return;
    }
    persist_dep(d);
    persist_index(m);
    acq_progress(a, SWP_UNIT_CREATED);
}

static void on_ready(void *ud)
{
    struct deployment *d = ud;
    struct market *m = d->m;
    d->ready_timer = 0;
    m->list_version++;
    d->state = SWP_UNIT_READY;
    d->ready_at_ms = 0;
    size_t len = strlen(d->group ? d->group : "unit") + strlen(d->dseq) + strlen(d->region) + 32;
    d->uri = swp_xcalloc(1, len);
    snprintf(d->uri, len, "%s-%s.%s.sim.steward.test", d->group ? d->group : "unit", d->dseq,
             d->region);
    d->uris[0] = d->uri;
    persist_dep(d);
    m->host->log(m->host, SWP_LOG_INFO, "deployment %s (%s, %s) ready on %s at %s", d->dseq,
                 d->group ? d->group : "-", d->region, d->provider, d->uri);
    if (d->acq)
        acq_finish(d->acq, 0, NULL);
}

/* The provider closes an open lease: unit_lost for the client, and the acquire still
 * waiting on it (not ready yet) fails. */
static void provider_closes(struct deployment *d)
{
    struct market *m = d->m;
    struct acquire *a = d->acq;
    m->host->log(m->host, SWP_LOG_INFO,
                 "deployment %s (%s, %s): provider %s closed the lease "
                 "(lease_closed_reason_unstable)",
                 d->dseq, d->group ? d->group : "-", d->region, d->provider);
    dep_close(d, "lease_closed_reason_unstable");

    cJSON *data = cJSON_CreateObject();
    char *data_text = NULL;
    if (data) {
        kv_add_str(data, "provider", d->provider);
        kv_add_str(data, "region", d->region);
        kv_add_str(data, "group", d->group);
        kv_add_str(data, "key", d->key);
        data_text = cJSON_PrintUnformatted(data);
        cJSON_Delete(data);
    }
    struct swp_event ev = {
        .size = sizeof(ev),
        .type = "unit_lost",
        .market_id = d->dseq,
        .reason = "lease_closed_reason_unstable",
        .data_json = data_text,
    };
    m->host->emit_event(m->host, &ev);
    free(data_text);
    if (a)
        acq_finish(a, SWP_EMARKET,
                   "provider %s closed the lease before it was ready "
                   "(lease_closed_reason_unstable)",
                   d->provider);
}

static void on_closure(void *ud)
{
    struct deployment *d = ud;
    d->closure_timer = 0;
    provider_closes(d);
}

static bool holds_lease(const struct deployment *d, const char *owner)
{
    return (d->state == SWP_UNIT_LEASED || d->state == SWP_UNIT_READY) && d->provider &&
           strcmp(d->provider, owner) == 0;
}

/* The provider holding the most leases now (ties: the first listed); NULL when none does. */
static const char *busiest_provider(const struct market *m)
{
    const char *best = NULL;
    size_t best_count = 0;
    for (size_t p = 0; p < m->provider_count; p++) {
        size_t n = 0;
        for (size_t i = 0; i < m->dep_count; i++)
            n += holds_lease(m->deps[i], m->providers[p].owner);
        if (n > best_count) {
            best = m->providers[p].owner;
            best_count = n;
        }
    }
    return best;
}

static void on_outage(void *ud)
{
    struct market *m = ud;
    m->outage_timer = 0;
    const char *owner = m->outage_busiest ? busiest_provider(m) : m->outage_provider;
    /* dseqs first: closing runs client callbacks, which may acquire or release and so
     * reshape the deployment list under the loop. */
    size_t count = 0;
    char(*dseqs)[24] = swp_xcalloc(m->dep_count, sizeof(*dseqs));
    for (size_t i = 0; i < m->dep_count; i++) {
        const struct deployment *d = m->deps[i];
        if (owner && holds_lease(d, owner))
            memcpy(dseqs[count++], d->dseq, sizeof(dseqs[0]));
    }
    m->host->log(m->host, SWP_LOG_INFO, "close_provider_at: provider %s closes all its %zu lease%s",
                 owner ? owner : "(none holds a lease)", count, count == 1 ? "" : "s");
    for (size_t i = 0; i < count; i++) {
        struct deployment *d = dep_find(m, dseqs[i]);
        if (d && d->state != SWP_UNIT_CLOSED)
            provider_closes(d);
    }
    free(dseqs);
    if (m->outage_every_ms > 0)
        m->outage_timer = timer_arm(m, m->outage_every_ms, on_outage, m);
}

/* close_provider_at: {"provider": owner | "busiest": true, "after": duration,
 * "every": duration?}. */
static int outage_parse(struct market *m, const char *json, struct swp_error *err)
{
    cJSON *o = cJSON_Parse(json);
    const cJSON *provider = cJSON_GetObjectItemCaseSensitive(o, "provider");
    m->outage_busiest = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "busiest"));
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(o, "after");
    const cJSON *every = cJSON_GetObjectItemCaseSensitive(o, "every");
    uint64_t after_ms = 0;
    int rc = SWP_ECONFIG;
    if (m->outage_busiest == (provider != NULL))
        swp_set_error(err, SWP_ECONFIG,
                      "close_provider_at: set either \"provider\" or "
                      "\"busiest\": true");
    else if (provider && (!cJSON_IsString(provider) ||
                          provider_find(m, provider->valuestring) == NULL))
        swp_set_error(err, SWP_ECONFIG,
                      "close_provider_at.provider: expected the owner of a "
                      "configured provider");
    else if (after == NULL || parse_duration(after, &after_ms) < 0)
        swp_set_error(err, SWP_ECONFIG, "close_provider_at.after: expected duration (\"5s\")");
    else if (every != NULL && (parse_duration(every, &m->outage_every_ms) < 0 ||
                               m->outage_every_ms == 0))
        swp_set_error(err, SWP_ECONFIG, "close_provider_at.every: expected duration > 0");
    else
        rc = 0;
    if (rc == 0) {
        m->outage_provider = provider ? swp_xstrdup(provider->valuestring) : NULL;
        m->outage_timer = timer_arm(m, after_ms, on_outage, m);
        if (m->outage_timer == 0) {
            swp_set_error(err, SWP_EIO, "close_provider_at: the host could not start a timer");
            rc = SWP_ECONFIG;
        }
    }
    cJSON_Delete(o);
    return rc;
}

static void on_deadline(void *ud)
{
    struct acquire *a = ud;
    struct market *m = a->m;
    a->deadline_timer = 0;
    char window[32];
    fmt_duration(a->deadline_ms, window, sizeof(window));
    const char *stage = a->dep ? state_name(a->dep->state) : "ordered";
    if (a->dep) {
        m->host->log(m->host, SWP_LOG_INFO,
                     "deployment %s (%s, %s): deadline of %s passed while %s, closing it",
                     a->dep->dseq, a->group ? a->group : "-", a->region, window, stage);
        dep_close(a->dep, "deadline");
    }
    acq_finish(a, SWP_ETIMEDOUT, "no ready unit for %s within %s (still %s)", a->region, window,
               stage);
}

/* An acquire that attached to an existing deployment (same key, e.g. after a restart)
 * learns its story so far from here. */
static void on_replay(void *ud)
{
    struct acquire *a = ud;
    a->replay_timer = 0;
    struct deployment *d = a->dep;
    if (!acq_progress(a, SWP_UNIT_CREATED))
        return;
    if (d->state == SWP_UNIT_LEASED || d->state == SWP_UNIT_READY) {
        if (!acq_progress(a, SWP_UNIT_LEASED))
            return;
    }
    if (d->state == SWP_UNIT_READY)
        acq_finish(a, 0, NULL);
}

/* ---- market ops ------------------------------------------------------------------------ */

static int ms_acquire(void *state, const struct swp_acquire_req *req, swp_unit_cb progress,
                      swp_unit_cb done, void *ud)
{
    struct market *m = state;
    /* Hosts built before only_providers pass a smaller request: accept it, unpinned. */
    size_t min_size = offsetof(struct swp_acquire_req, deadline_ms) + sizeof(req->deadline_ms);
    if (req == NULL || req->size < min_size || progress == NULL || done == NULL)
        return SWP_EINVAL;
    bool has_only = req->size >= offsetof(struct swp_acquire_req, only_count) +
                                     sizeof(req->only_count);
    if (req->region == NULL || req->region[0] == '\0') {
        m->host->log(m->host, SWP_LOG_WARN, "acquire %s refused: no region",
                     req->key ? req->key : "(no key)");
        return SWP_EINVAL;
    }
    if (!(req->max_price_usd_hour >= 0))
        return SWP_EINVAL;
    struct deployment *existing = NULL;
    if (req->key) {
        for (struct acquire *other = m->acquires; other; other = other->next) {
            if (other->key && strcmp(other->key, req->key) == 0) {
                m->host->log(m->host, SWP_LOG_WARN, "acquire %s refused: already in flight",
                             req->key);
                return SWP_EEXIST;
            }
        }
        existing = dep_find_open_by_key(m, req->key);
    }

    struct acquire *a = swp_xcalloc(1, sizeof(*a));
    a->m = m;
    a->key = swp_xstrdup(req->key);
    a->group = swp_xstrdup(req->group);
    a->region = swp_xstrdup(req->region);
    a->max_price = req->max_price_usd_hour;
    a->avoid = copy_list(req->avoid_providers, req->avoid_count);
    a->avoid_count = a->avoid ? req->avoid_count : 0;
    a->prefer = copy_list(req->prefer_providers, req->prefer_count);
    a->prefer_count = a->prefer ? req->prefer_count : 0;
    if (has_only) {
        a->only = copy_list(req->only_providers, req->only_count);
        a->only_count = a->only ? req->only_count : 0;
    }
    a->deadline_ms = req->deadline_ms;
    a->progress = progress;
    a->done = done;
    a->ud = ud;

    if (existing) {
        a->dep = existing;
        a->replay_timer = timer_arm(m, 0, on_replay, a);
    } else {
        a->create_timer = timer_arm(m, m->create_delay_ms, on_create, a);
    }
    if (a->replay_timer == 0 && a->create_timer == 0) {
        acq_free(a);
        return SWP_EIO;
    }
    if (a->deadline_ms > 0) {
        a->deadline_timer = timer_arm(m, a->deadline_ms, on_deadline, a);
        if (a->deadline_timer == 0) {
            timer_disarm(m, &a->replay_timer);
            timer_disarm(m, &a->create_timer);
            acq_free(a);
            return SWP_EIO;
        }
    }
    if (existing) {
        existing->acq = a;
        m->host->log(m->host, SWP_LOG_INFO, "acquire %s joins deployment %s (%s)", a->key,
                     existing->dseq, state_name(existing->state));
    }
    a->next = m->acquires;
    if (m->acquires)
        m->acquires->prev = a;
    m->acquires = a;
    return 0;
}

static int ms_release(void *state, const char *market_id, swp_done_cb done, void *ud)
{
    struct market *m = state;
    if (market_id == NULL || done == NULL)
        return SWP_EINVAL;
    struct deployment *d = dep_find(m, market_id);
    if (d == NULL) {
        struct swp_error err;
        swp_set_error(&err, SWP_ENOENT, "market_sim: no deployment %s", market_id);
        done(ud, SWP_ENOENT, &err);
        return 0;
    }
    if (d->state == SWP_UNIT_CLOSED) {
        m->host->log(m->host, SWP_LOG_DEBUG, "deployment %s already closed (%s)", d->dseq,
                     d->reason ? d->reason : "-");
        done(ud, 0, NULL);
        return 0;
    }
    struct acquire *a = d->acq;
    m->host->log(m->host, SWP_LOG_INFO, "deployment %s (%s, %s) released while %s%s%s", d->dseq,
                 d->group ? d->group : "-", d->region, state_name(d->state),
                 d->provider ? ", provider " : "", d->provider ? d->provider : "");
    dep_close(d, "released");
    if (a)
        acq_finish(a, SWP_ECANCELED, "deployment %s was released before it was ready", d->dseq);
    done(ud, 0, NULL);
    return 0;
}

/* Room for `need` items of `size` bytes to answer in: the kept buffer (grown when too
 * small), or, when `own` (an answer asked for from inside an answer's callback, while the
 * kept one is in use), a new one the caller frees. */
static void *answer_buffer(void **kept, size_t *cap, size_t need, size_t size, bool own)
{
    if (own)
        return swp_xcalloc(need ? need : 1, size);
    if (need > *cap) {
        free(*kept);
        *cap = need;
        *kept = swp_xcalloc(need, size);
    }
    return *kept;
}

static int ms_list(void *state, swp_units_cb done, void *ud)
{
    struct market *m = state;
    if (done == NULL)
        return SWP_EINVAL;
    /* A listing asked for from inside a listing's callback gets its own buffer. */
    bool own = m->listing;
    struct swp_unit *units =
        answer_buffer((void **)&m->list_buf, &m->list_cap, m->open_count, sizeof(*units), own);
    size_t n = m->open_count;
    if (own || !m->list_buf_filled || m->list_buf_version != m->list_version) {
        for (size_t i = 0; i < n; i++)
            unit_fill(m->open[i], &units[i]);
    }
    if (own) {
        done(ud, 0, units, n, NULL);
        free(units);
        return 0;
    }
    m->list_buf_filled = true;
    m->list_buf_version = m->list_version;
    m->listing = true;
    done(ud, 0, units, n, NULL);
    m->listing = false;
    return 0;
}

static uint64_t ms_list_version(void *state)
{
    const struct market *m = state;
    return m->list_version;
}

static int ms_offers(void *state, swp_offers_cb done, void *ud)
{
    struct market *m = state;
    if (done == NULL)
        return SWP_EINVAL;
    bool own = m->offering; /* asked from inside an answer's callback: its own buffer */
    struct swp_offer *offers = answer_buffer((void **)&m->offer_buf, &m->offer_cap,
                                             m->provider_count, sizeof(*offers), own);
    size_t n = 0;
    for (size_t i = 0; i < m->provider_count; i++) {
        const struct provider *p = &m->providers[i];
        if (!has_capacity(p))
            continue;
        offers[n++] = (struct swp_offer){
            .provider = p->owner,
            .region = p->region,
            .price_usd_hour = p->price_usd_hour,
            .audited = p->audited,
        };
    }
    if (own) {
        done(ud, 0, offers, n, NULL);
        free(offers);
        return 0;
    }
    m->offering = true;
    done(ud, 0, offers, n, NULL);
    m->offering = false;
    return 0;
}

/* ---- reload --------------------------------------------------------------------------- */

static const char *json_str(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static double json_num(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(item) ? item->valuedouble : 0.0;
}

/* Rebuilds one deployment from its KV value. A lease resumes its timers from the remaining
 * time; a deployment still waiting for bids had its bidding interrupted and is closed. */
static void reload_dep(struct market *m, const char *dseq, int64_t now)
{
    char key[40];
    snprintf(key, sizeof(key), "dep/%s", dseq);
    char *value = NULL;
    int rc = m->host->kv_get(m->host, key, &value);
    if (rc < 0) {
        m->host->log(m->host, SWP_LOG_WARN, "deployment %s is in the index but not stored", dseq);
        return;
    }
    cJSON *o = cJSON_Parse(value);
    m->host->free(value);
    const char *state = json_str(o, "state");
    const char *region = json_str(o, "region");
    const char *stored_dseq = json_str(o, "dseq");
    int st = -1;
    if (state && strcmp(state, "created") == 0)
        st = SWP_UNIT_CREATED;
    else if (state && strcmp(state, "leased") == 0)
        st = SWP_UNIT_LEASED;
    else if (state && strcmp(state, "ready") == 0)
        st = SWP_UNIT_READY;
    const char *provider = json_str(o, "provider");
    if (!cJSON_IsObject(o) || st < 0 || region == NULL || stored_dseq == NULL ||
        strcmp(stored_dseq, dseq) != 0 || strlen(dseq) >= sizeof(((struct deployment *)0)->dseq) ||
        (st != SWP_UNIT_CREATED && provider == NULL) || dep_find(m, dseq) != NULL) {
        m->host->log(m->host, SWP_LOG_WARN, "deployment %s: unreadable stored state, dropped",
                     dseq);
        m->host->kv_del(m->host, key);
        cJSON_Delete(o);
        return;
    }
    struct deployment *d = swp_xcalloc(1, sizeof(*d));
    d->m = m;
    snprintf(d->dseq, sizeof(d->dseq), "%s", dseq);
    d->created_ms = (int64_t)json_num(o, "created_ms");
    d->key = swp_xstrdup(json_str(o, "key"));
    d->group = swp_xstrdup(json_str(o, "group"));
    d->region = swp_xstrdup(region);
    d->tag = swp_xstrdup(json_str(o, "tag"));
    d->state = st;
    dep_append(m, d);
    if (st == SWP_UNIT_CREATED) {
        m->host->log(m->host, SWP_LOG_INFO,
                     "deployment %s (%s, %s) was still waiting for bids when the market "
                     "stopped: closed",
                     d->dseq, d->group ? d->group : "-", d->region);
        dep_close(d, "bidding_interrupted");
        cJSON_Delete(o);
        return;
    }
    d->provider = swp_xstrdup(provider);
    d->prov = provider_find(m, provider);
    d->price_uact = json_num(o, "price_uact_per_block");
    d->price_usd_hour = json_num(o, "price_usd_hour");
    d->uri = swp_xstrdup(json_str(o, "uri"));
    d->uris[0] = d->uri;
    d->ready_at_ms = (int64_t)json_num(o, "ready_at_ms");
    d->closure_at_ms = (int64_t)json_num(o, "closure_at_ms");
    cJSON_Delete(o);
    if (d->prov)
        d->prov->used++;
    else
        m->host->log(m->host, SWP_LOG_WARN,
                     "deployment %s: provider %s is not in the providers list any more", d->dseq,
                     d->provider);
    if (st == SWP_UNIT_READY && d->uri == NULL) {
        st = d->state = SWP_UNIT_LEASED;
        d->ready_at_ms = now;
    }
    if (st == SWP_UNIT_LEASED) {
        int64_t left = d->ready_at_ms > now ? d->ready_at_ms - now : 0;
        d->ready_timer = timer_arm(m, (uint64_t)left, on_ready, d);
    }
    if (d->closure_at_ms > 0) {
        int64_t left = d->closure_at_ms > now ? d->closure_at_ms - now : 0;
        d->closure_timer = timer_arm(m, (uint64_t)left, on_closure, d);
    }
    m->list_version++; /* its provider, price and uri were set after dep_append */
    m->host->log(m->host, SWP_LOG_INFO, "deployment %s (%s, %s) restored: %s on %s at %.4f USD/h%s",
                 d->dseq, d->group ? d->group : "-", d->region, state_name(d->state), d->provider,
                 d->price_usd_hour, st == SWP_UNIT_LEASED ? ", ready timer resumed" : "");
}

static void reload(struct market *m)
{
    char *value = NULL;
    int rc = m->host->kv_get(m->host, MS_INDEX_KEY, &value);
    if (rc == SWP_ENOENT)
        return;
    if (rc < 0) {
        m->host->log(m->host, SWP_LOG_WARN, "cannot read the deployment index (error %d)", rc);
        return;
    }
    cJSON *index = cJSON_Parse(value);
    m->host->free(value);
    if (!cJSON_IsArray(index)) {
        m->host->log(m->host, SWP_LOG_WARN, "deployment index unreadable, starting empty");
        cJSON_Delete(index);
        return;
    }
    int64_t now = m->host->now_ms(m->host);
    const cJSON *item;
    m->reloading = true;
    cJSON_ArrayForEach(item, index)
    {
        if (cJSON_IsString(item))
            reload_dep(m, item->valuestring, now);
    }
    m->reloading = false;
    cJSON_Delete(index);
    persist_index(m);
    size_t open = 0;
    for (size_t i = 0; i < m->dep_count; i++)
        open += m->deps[i]->state != SWP_UNIT_CLOSED;
    m->host->log(m->host, SWP_LOG_INFO, "restored %zu open deployment%s", open,
                 open == 1 ? "" : "s");
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void market_free(struct market *m)
{
    timer_disarm(m, &m->outage_timer);
    free(m->outage_provider);
    for (size_t i = 0; i < m->dep_count; i++) {
        timer_disarm(m, &m->deps[i]->ready_timer);
        timer_disarm(m, &m->deps[i]->closure_timer);
        dep_free(m->deps[i]);
    }
    free(m->deps);
    free(m->open);
    free(m->list_buf);
    free(m->offer_buf);
    providers_free(m);
    free(m);
}

static int ms_init(const struct swp_host *host, void **state, struct swp_error *err)
{
    struct market *m = swp_xcalloc(1, sizeof(*m));
    m->list_version = 1; /* never 0 */
    m->host = host;
    int rc = SWP_ECONFIG;
    const char *file = host->cfg_str(host, "providers_file");
    const char *inline_json = host->cfg_json(host, "providers");
    int64_t create_delay = host->cfg_int(host, "create_delay");
    int64_t bid_window = host->cfg_int(host, "bid_window");
    m->closure_scale = host->cfg_double(host, "closure_scale");
    m->persist = host->cfg_bool(host, "persist");
    if (create_delay < 0 || bid_window < 0) {
        swp_set_error(err, SWP_ECONFIG, "create_delay and bid_window must be >= 0");
        goto fail;
    }
    if (!(m->closure_scale >= 0)) {
        swp_set_error(err, SWP_ECONFIG, "closure_scale: expected number >= 0");
        goto fail;
    }
    m->create_delay_ms = (uint64_t)create_delay;
    m->bid_window_ms = (uint64_t)bid_window;
    if ((file == NULL) == (inline_json == NULL)) {
        swp_set_error(err, SWP_ECONFIG,
                      file ? "set either providers_file or providers, not both"
                           : "providers_file or providers is required (the providers JSON file, "
                             "or the array inline)");
        goto fail;
    }
    if (file) {
        rc = providers_from_file(m, file, err);
    } else {
        cJSON *array = cJSON_Parse(inline_json);
        rc = providers_load(m, array, "providers", err);
        if (array == NULL)
            swp_set_error(err, SWP_ECONFIG, "providers: invalid JSON");
        cJSON_Delete(array);
    }
    if (rc < 0)
        goto fail;
    const char *outage = host->cfg_json(host, "close_provider_at");
    if (outage != NULL && (rc = outage_parse(m, outage, err)) < 0)
        goto fail;
    if (m->persist)
        reload(m);
    size_t regions = 0;
    for (size_t i = 0; i < m->provider_count; i++) {
        size_t j = 0;
        while (j < i && strcmp(m->providers[j].region, m->providers[i].region) != 0)
            j++;
        regions += j == i;
    }
    char window[32];
    host->log(host, SWP_LOG_INFO,
              "%zu providers in %zu regions from %s; bid window %s, closure scale %g, %s",
              m->provider_count, regions, file ? file : "inline config",
              fmt_duration(m->bid_window_ms, window, sizeof(window)), m->closure_scale,
              m->persist ? "persistent" : "in memory");
    *state = m;
    return 0;
fail:
    if (err)
        err->code = SWP_ECONFIG;
    market_free(m);
    return SWP_ECONFIG;
}

static void ms_destroy(void *state)
{
    struct market *m = state;
    if (m == NULL)
        return;
    /* Deployments stay in the KV as they are: a restart finds them (that is the point). */
    while (m->acquires)
        acq_finish(m->acquires, SWP_ECANCELED, "interrupted by shutdown; the deployment is kept and a restart resumes it");
    market_free(m);
}

static const struct swp_config_entry ms_config[] = {
    {"providers_file", SWP_CFG_PATH, NULL, false,
     "Path of the providers JSON file ({\"providers\": [...]}; format at the top of "
     "plugins/market_sim/market_sim.c). Set this or \"providers\"."},
    {"providers", SWP_CFG_ARRAY, NULL, false,
     "The providers array inline, same shape as the file's \"providers\". Set this or "
     "\"providers_file\"."},
    {"create_delay", SWP_CFG_DURATION, "\"200ms\"", false,
     "Time from acquire until the deployment exists (dseq known, progress CREATED)."},
    {"bid_window", SWP_CFG_DURATION, "\"5s\"", false,
     "How long bids are collected after creation; the choice comes earlier once every "
     "eligible provider has answered."},
    {"closure_scale", SWP_CFG_DOUBLE, "1.0", false,
     "Multiplies every provider's closures_per_hour (0 disables provider-closed leases)."},
    {"persist", SWP_CFG_BOOL, "true", false,
     "Keep deployments in the plugin's KV space so a restarted steward finds them."},
    {"close_provider_at", SWP_CFG_OBJECT, NULL, false,
     "Test hook: {\"provider\": owner, \"after\": \"5s\", \"every\": \"1d\"} makes that "
     "provider close all its leases at once (a provider outage), after the given time from "
     "start and then every `every` (optional); {\"busiest\": true} instead of \"provider\" "
     "picks the provider holding the most leases each time."},
};

static const struct swp_market_ops ms_market_ops = {
    .size = sizeof(struct swp_market_ops),
    .acquire = ms_acquire,
    .release = ms_release,
    .list = ms_list,
    .offers = ms_offers,
    .list_version = ms_list_version,
};

static const struct swp_plugin ms_plugin = {
    .abi_major = SWP_ABI_MAJOR,
    .abi_minor = SWP_ABI_MINOR,
    .size = sizeof(struct swp_plugin),
    .name = "market_sim",
    .version = "1.0.0",
    .description = "Simulated Akash-like marketplace: providers bid, lowest price wins, "
                   "leases turn ready and are sometimes closed by the provider",
    .kinds = SWP_KIND_MARKET,
    .config = ms_config,
    .config_count = sizeof(ms_config) / sizeof(ms_config[0]),
    .init = ms_init,
    .destroy = ms_destroy,
    .market = &ms_market_ops,
};

SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void);

SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void)
{
    return &ms_plugin;
}
