#include "model.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json_writer.h"
#include "mem.h"
#include "name_index.h"

/* ---- desired ------------------------------------------------------------------------- */

void sw_desired_init(struct sw_desired *d)
{
    memset(d, 0, sizeof(*d));
}

void sw_desired_clear(struct sw_desired *d)
{
    /* The names are interned (sw_name_intern): nothing to free but the array. */
    free(d->entries);
    sw_desired_init(d);
}

static int entry_cmp(const char *group, const char *region, const struct sw_desired_entry *e)
{
    int c = group == e->group ? 0 : strcmp(group, e->group);
    return c != 0 ? c : region == e->region ? 0 : strcmp(region, e->region);
}

/* Index of (group, region), or the insertion point encoded as -(pos + 1). */
static long desired_find(const struct sw_desired *d, const char *group, const char *region)
{
    size_t lo = 0, hi = d->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = entry_cmp(group, region, &d->entries[mid]);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -(long)lo - 1;
}

void sw_desired_set(struct sw_desired *d, const char *group, const char *region, int count)
{
    /* Built in order (a copy, a sorted conversion): append without a search. */
    long at = d->count == 0 || entry_cmp(group, region, &d->entries[d->count - 1]) > 0
                  ? -(long)d->count - 1
                  : desired_find(d, group, region);
    if (at >= 0) {
        d->entries[at].count = count;
        return;
    }
    size_t pos = (size_t)(-at - 1);
    if (d->count == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->entries = sw_xrealloc(d->entries, d->cap * sizeof(*d->entries));
    }
    memmove(&d->entries[pos + 1], &d->entries[pos], (d->count - pos) * sizeof(*d->entries));
    d->entries[pos] = (struct sw_desired_entry){(char *)sw_name_intern(group),
                                                (char *)sw_name_intern(region), count};
    d->count++;
}

int sw_desired_get(const struct sw_desired *d, const char *group, const char *region)
{
    long at = desired_find(d, group, region);
    return at >= 0 ? d->entries[at].count : 0;
}

bool sw_desired_has(const struct sw_desired *d, const char *group, const char *region)
{
    return desired_find(d, group, region) >= 0;
}

int sw_desired_group_total(const struct sw_desired *d, const char *group)
{
    int total = 0;
    for (size_t i = 0; i < d->count; i++)
        if (sw_name_eq(d->entries[i].group, group))
            total += d->entries[i].count;
    return total;
}

static bool same_keys(const struct sw_desired *a, const struct sw_desired *b)
{
    if (a->count != b->count)
        return false;
    for (size_t i = 0; i < a->count; i++)
        if (!sw_name_eq(a->entries[i].group, b->entries[i].group) ||
            !sw_name_eq(a->entries[i].region, b->entries[i].region))
            return false;
    return true;
}

void sw_desired_copy(struct sw_desired *dst, const struct sw_desired *src)
{
    if (dst == src)
        return;
    /* Ticks mostly change counts, not keys: keep dst's strings then (no allocation). */
    if (same_keys(dst, src)) {
        for (size_t i = 0; i < src->count; i++)
            dst->entries[i].count = src->entries[i].count;
        return;
    }
    sw_desired_clear(dst);
    /* src is sorted already: append in order, no search. */
    dst->cap = src->count;
    dst->entries = src->count ? sw_xcalloc(src->count, sizeof(*dst->entries)) : NULL;
    for (size_t i = 0; i < src->count; i++)
        dst->entries[i] = (struct sw_desired_entry){(char *)sw_name_intern(src->entries[i].group),
                                                    (char *)sw_name_intern(src->entries[i].region),
                                                    src->entries[i].count};
    dst->count = src->count;
}

void sw_desired_assign_sorted(struct sw_desired *d, const struct sw_desired_entry *entries,
                              size_t count)
{
    struct sw_desired view = {(struct sw_desired_entry *)entries, count, count};
    sw_desired_copy(d, &view);
}

bool sw_desired_equal(const struct sw_desired *a, const struct sw_desired *b)
{
    if (a->count != b->count)
        return false;
    for (size_t i = 0; i < a->count; i++) {
        const struct sw_desired_entry *x = &a->entries[i], *y = &b->entries[i];
        if (x->count != y->count || strcmp(x->group, y->group) != 0 ||
            strcmp(x->region, y->region) != 0)
            return false;
    }
    return true;
}

char *sw_desired_to_json(const struct sw_desired *d)
{
    struct sw_jw w;
    sw_jw_init(&w);
    sw_jw_open(&w, NULL, '{');
    const char *group_name = NULL;
    for (size_t i = 0; i < d->count; i++) {
        const struct sw_desired_entry *e = &d->entries[i];
        if (group_name == NULL || strcmp(group_name, e->group) != 0) {
            if (group_name != NULL)
                sw_jw_close(&w, '}');
            sw_jw_open(&w, e->group, '{');
            group_name = e->group;
        }
        sw_jw_number(&w, e->region, e->count);
    }
    if (group_name != NULL)
        sw_jw_close(&w, '}');
    sw_jw_close(&w, '}');
    return sw_jw_take(&w);
}

int sw_desired_from_json(struct sw_desired *d, const char *json)
{
    cJSON *root = json != NULL ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return SW_EINVAL;
    }
    /* Parse into a scratch copy so a refused document leaves d as it was. */
    struct sw_desired parsed;
    sw_desired_init(&parsed);
    const cJSON *group;
    cJSON_ArrayForEach(group, root)
    {
        if (!cJSON_IsObject(group))
            goto invalid;
        const cJSON *region;
        cJSON_ArrayForEach(region, group)
        {
            double count = cJSON_IsNumber(region) ? region->valuedouble : -1;
            if (!(count >= 0 && count <= INT_MAX && floor(count) == count))
                goto invalid;
            sw_desired_set(&parsed, group->string, region->string, (int)count);
        }
    }
    cJSON_Delete(root);
    sw_desired_clear(d);
    *d = parsed;
    return 0;
invalid:
    cJSON_Delete(root);
    sw_desired_clear(&parsed);
    return SW_EINVAL;
}

/* ---- units --------------------------------------------------------------------------- */

static const char *unit_state_names[] = {"ordered", "created", "leased", "ready", "closed",
                                         "releasing"};

const char *sw_unit_state_name(int state)
{
    if (state < 0 || state >= (int)SW_ARRAY_LEN(unit_state_names))
        return "unknown";
    return unit_state_names[state];
}

int sw_unit_state_parse(const char *name)
{
    for (int i = 0; name != NULL && i < (int)SW_ARRAY_LEN(unit_state_names); i++)
        if (strcmp(name, unit_state_names[i]) == 0)
            return i;
    return -1;
}

/* Never 0 (the serial of a unit not made by sw_unit_new), never reused. */
static uint64_t next_serial(void)
{
    static _Atomic uint64_t last;
    return ++last;
}

struct sw_unit *sw_unit_new(const char *key, const char *group, const char *region)
{
    struct sw_unit *u = sw_xcalloc(1, sizeof(*u));
    u->key = sw_xstrdup(key);
    u->group = (char *)sw_name_intern(group);
    u->region = (char *)sw_name_intern(region);
    u->serial = next_serial();
    return u;
}

static void free_uris(struct sw_unit *u)
{
    for (size_t i = 0; i < u->uri_count; i++)
        free(u->uris[i]);
    free(u->uris);
    u->uris = NULL;
    u->uri_count = 0;
}

void sw_unit_free(struct sw_unit *u)
{
    if (u == NULL)
        return;
    free(u->key);
    free(u->market_id);
    free(u->provider);
    free(u->close_reason);
    free_uris(u);
    free(u);
}

void sw_unit_set_uris(struct sw_unit *u, const char *const *uris, size_t count)
{
    /* Every listing reports them again: keep the copies when nothing changed. */
    bool same = count == u->uri_count;
    for (size_t i = 0; same && i < count; i++)
        same = strcmp(u->uris[i], uris[i]) == 0;
    if (same)
        return;
    free_uris(u);
    if (count == 0)
        return;
    u->uris = sw_xcalloc(count, sizeof(char *));
    for (size_t i = 0; i < count; i++)
        u->uris[i] = sw_xstrdup(uris[i]);
    u->uri_count = count;
}

void sw_unit_set_uris_json(struct sw_unit *u, const void *array)
{
    const cJSON *arr = array;
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    const char **list = n > 0 ? sw_xcalloc((size_t)n, sizeof(*list)) : NULL;
    size_t count = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, arr)
    {
        if (cJSON_IsString(item))
            list[count++] = item->valuestring;
    }
    sw_unit_set_uris(u, list, count);
    free(list);
}

struct sw_unit *sw_unit_clone(const struct sw_unit *u)
{
    struct sw_unit *c = sw_xcalloc(1, sizeof(*c));
    *c = *u;
    c->key = sw_xstrdup(u->key);
    c->market_id = sw_xstrdup(u->market_id);
    c->group = (char *)sw_name_intern(u->group);
    c->region = (char *)sw_name_intern(u->region);
    c->provider = sw_xstrdup(u->provider);
    c->close_reason = sw_xstrdup(u->close_reason);
    c->uris = NULL;
    c->uri_count = 0;
    c->watch_version = 0; /* pairs anew */
    c->watch_applied = false;
    sw_unit_set_uris(c, (const char *const *)u->uris, u->uri_count);
    return c;
}

bool sw_unit_is_pending(const struct sw_unit *u)
{
    return u->state == SW_UNIT_ORDERED || u->state == SW_UNIT_CREATED ||
           u->state == SW_UNIT_LEASED;
}

bool sw_unit_counts(const struct sw_unit *u)
{
    return (sw_unit_is_pending(u) || u->state == SW_UNIT_READY) && !u->unhealthy;
}

void sw_units_init(struct sw_units *us)
{
    memset(us, 0, sizeof(*us));
}

void sw_units_clear(struct sw_units *us)
{
    for (size_t i = 0; i < us->count; i++)
        sw_unit_free(us->items[i]);
    free(us->items);
    sw_units_init(us);
}

void sw_units_add(struct sw_units *us, struct sw_unit *u)
{
    if (us->count == us->cap) {
        us->cap = us->cap ? us->cap * 2 : 16;
        us->items = sw_xrealloc(us->items, us->cap * sizeof(*us->items));
    }
    us->items[us->count++] = u;
}

void sw_units_remove_at(struct sw_units *us, size_t i)
{
    if (i >= us->count)
        return;
    sw_unit_free(us->items[i]);
    memmove(&us->items[i], &us->items[i + 1], (us->count - i - 1) * sizeof(*us->items));
    us->count--;
}

struct sw_unit *sw_units_find_key(const struct sw_units *us, const char *key)
{
    for (size_t i = 0; key != NULL && i < us->count; i++)
        if (us->items[i]->key != NULL && strcmp(us->items[i]->key, key) == 0)
            return us->items[i];
    return NULL;
}

struct sw_unit *sw_units_find_market_id(const struct sw_units *us, const char *market_id)
{
    for (size_t i = 0; market_id != NULL && i < us->count; i++)
        if (us->items[i]->market_id != NULL && strcmp(us->items[i]->market_id, market_id) == 0)
            return us->items[i];
    return NULL;
}

int sw_units_count_capacity(const struct sw_units *us, const char *group, const char *region)
{
    int n = 0;
    for (size_t i = 0; i < us->count; i++) {
        const struct sw_unit *u = us->items[i];
        if (u->group == NULL || strcmp(u->group, group) != 0)
            continue;
        if (region != NULL && (u->region == NULL || strcmp(u->region, region) != 0))
            continue;
        if (sw_unit_counts(u))
            n++;
    }
    return n;
}

int sw_units_count_open(const struct sw_units *us)
{
    int n = 0;
    for (size_t i = 0; i < us->count; i++)
        if (us->items[i]->state != SW_UNIT_CLOSED)
            n++;
    return n;
}

double sw_units_spend_usd_hour(const struct sw_units *us)
{
    double total = 0;
    for (size_t i = 0; i < us->count; i++)
        if (us->items[i]->state != SW_UNIT_CLOSED)
            total += us->items[i]->price_usd_hour;
    return total;
}

/* ---- offers -------------------------------------------------------------------------- */

void sw_offers_init(struct sw_offers *o)
{
    memset(o, 0, sizeof(*o));
}

void sw_offers_clear(struct sw_offers *o)
{
    for (size_t i = 0; i < o->count; i++) {
        free(o->items[i].provider);
        free(o->items[i].region);
    }
    free(o->items);
    sw_offers_init(o);
}

void sw_offers_add(struct sw_offers *o, const char *provider, const char *region,
                   double price_usd_hour, bool audited)
{
    if (o->count == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        o->items = sw_xrealloc(o->items, o->cap * sizeof(*o->items));
    }
    o->items[o->count++] =
        (struct sw_offer){sw_xstrdup(provider), sw_xstrdup(region), price_usd_hour, audited};
    static _Atomic uint64_t last_names_serial; /* atomic: compared runs use threads */
    o->names_serial = ++last_names_serial;
}

void sw_offers_replace(struct sw_offers *o, const struct swp_offer *offers, size_t count)
{
    /* Offers are polled every 30 s and mostly repeat: when the same providers offer in the
     * same regions, in the same order, only prices and audit flags are written. */
    size_t kept = 0;
    bool same = true;
    for (size_t i = 0; i < count && same; i++) {
        if (offers[i].provider == NULL || offers[i].region == NULL)
            continue;
        same = kept < o->count && strcmp(o->items[kept].provider, offers[i].provider) == 0 &&
               strcmp(o->items[kept].region, offers[i].region) == 0;
        kept++;
    }
    if (same && kept == o->count) {
        kept = 0;
        for (size_t i = 0; i < count; i++) {
            if (offers[i].provider == NULL || offers[i].region == NULL)
                continue;
            o->items[kept].price_usd_hour = offers[i].price_usd_hour;
            o->items[kept].audited = offers[i].audited;
            kept++;
        }
        return;
    }
    sw_offers_clear(o);
    for (size_t i = 0; i < count; i++)
        if (offers[i].provider != NULL && offers[i].region != NULL)
            sw_offers_add(o, offers[i].provider, offers[i].region, offers[i].price_usd_hour,
                          offers[i].audited);
}

double sw_offers_best_price(const struct sw_offers *o, const char *region)
{
    return sw_offers_best_price_among(o, region, NULL, 0);
}

static bool provider_listed(const char *provider, const char *const *providers, size_t count)
{
    for (size_t i = 0; provider != NULL && i < count; i++)
        if (strcmp(providers[i], provider) == 0)
            return true;
    return false;
}

double sw_offers_best_price_among(const struct sw_offers *o, const char *region,
                                  const char *const *providers, size_t provider_count)
{
    double best = -1;
    for (size_t i = 0; region != NULL && i < o->count; i++) {
        /* Plugins may report offers without a region; they never match one. */
        if (o->items[i].region == NULL || strcmp(o->items[i].region, region) != 0)
            continue;
        if (provider_count > 0 &&
            !provider_listed(o->items[i].provider, providers, provider_count))
            continue;
        if (best < 0 || o->items[i].price_usd_hour < best)
            best = o->items[i].price_usd_hour;
    }
    return best;
}

/* ---- metrics ------------------------------------------------------------------------- */

void sw_metric_set_init(struct sw_metric_set *m)
{
    memset(m, 0, sizeof(*m));
}

static void metric_free_contents(struct sw_metric *metric)
{
    for (size_t i = 0; i < metric->sample_count; i++) {
        struct sw_sample *s = &metric->samples[i];
        bool shared = i > 0 && s->label_names == s[-1].label_names;
        for (size_t j = 0; j < s->label_count; j++) {
            if (!shared)
                free(s->label_names[j]);
            free(s->label_values[j]);
        }
        if (!shared)
            free(s->label_names);
        free(s->label_values);
    }
    free(metric->samples);
    free(metric->name);
    free(metric->error);
    memset(metric, 0, sizeof(*metric));
}

void sw_metric_set_clear(struct sw_metric_set *m)
{
    for (size_t i = 0; i < m->count; i++)
        metric_free_contents(&m->items[i]);
    free(m->items);
    sw_metric_set_init(m);
}

static struct sw_metric *metric_slot(struct sw_metric_set *m, const char *name)
{
    for (size_t i = 0; i < m->count; i++) {
        if (strcmp(m->items[i].name, name) == 0) {
            metric_free_contents(&m->items[i]);
            m->items[i].name = sw_xstrdup(name);
            return &m->items[i];
        }
    }
    if (m->count == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->items = sw_xrealloc(m->items, m->cap * sizeof(*m->items));
    }
    struct sw_metric *slot = &m->items[m->count++];
    memset(slot, 0, sizeof(*slot));
    slot->name = sw_xstrdup(name);
    return slot;
}

/* The metric already holds samples with exactly these labels (a scrape of the same
 * series as last time, the usual case): only values change. */
static struct sw_metric *same_series(struct sw_metric_set *m, const char *name,
                                     const struct swp_sample *samples, size_t count)
{
    struct sw_metric *metric = NULL;
    for (size_t i = 0; metric == NULL && i < m->count; i++)
        if (strcmp(m->items[i].name, name) == 0)
            metric = &m->items[i];
    if (metric == NULL || metric->status != 0 || metric->sample_count != count)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        const struct sw_sample *have = &metric->samples[i];
        if (have->label_count != samples[i].label_count)
            return NULL;
        /* Names kept as one array with the previous sample's are the same text; the
         * answer's, when one array too (within one answer, one address is one text), are
         * those the previous sample's matched. */
        bool names_as_before = i > 0 && have->label_names == have[-1].label_names &&
                               samples[i].label_names == samples[i - 1].label_names;
        for (size_t j = 0; j < have->label_count; j++)
            if ((!names_as_before &&
                 strcmp(have->label_names[j], samples[i].label_names[j]) != 0) ||
                strcmp(have->label_values[j], samples[i].label_values[j]) != 0)
                return NULL;
    }
    return metric;
}

void sw_metric_set_put(struct sw_metric_set *m, const char *name, int64_t at_ms,
                       const struct swp_sample *samples, size_t count)
{
    struct sw_metric *same = same_series(m, name, samples, count);
    if (same != NULL) {
        same->at_ms = at_ms;
        for (size_t i = 0; i < count; i++)
            same->samples[i].value = samples[i].value;
        return;
    }
    struct sw_metric *slot = metric_slot(m, name);
    slot->at_ms = at_ms;
    /* atomic: compared runs may put metrics on several threads. */
    static _Atomic uint64_t last_series_serial;
    slot->series_serial = ++last_series_serial;
    slot->samples = count ? sw_xcalloc(count, sizeof(*slot->samples)) : NULL;
    slot->sample_count = count;
    for (size_t i = 0; i < count; i++) {
        struct sw_sample *dst = &slot->samples[i];
        const struct swp_sample *src = &samples[i];
        dst->value = src->value;
        dst->label_count = src->label_count;
        if (src->label_count == 0)
            continue;
        bool share = i > 0 && src->label_names == samples[i - 1].label_names &&
                     src->label_count == samples[i - 1].label_count;
        dst->label_names =
            share ? dst[-1].label_names : sw_xcalloc(src->label_count, sizeof(char *));
        dst->label_values = sw_xcalloc(src->label_count, sizeof(char *));
        for (size_t j = 0; j < src->label_count; j++) {
            if (!share)
                dst->label_names[j] = sw_xstrdup(src->label_names[j]);
            dst->label_values[j] = sw_xstrdup(src->label_values[j]);
        }
    }
}

void sw_metric_set_put_error(struct sw_metric_set *m, const char *name, int64_t at_ms,
                             int status, const char *error)
{
    struct sw_metric *slot = metric_slot(m, name);
    slot->at_ms = at_ms;
    slot->status = status;
    slot->error = sw_xstrdup(error != NULL ? error : "query failed");
}

const struct sw_metric *sw_metric_set_get(const struct sw_metric_set *m, const char *name)
{
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->items[i].name, name) == 0)
            return &m->items[i];
    return NULL;
}

/* ---- actions ------------------------------------------------------------------------- */

void sw_actions_init(struct sw_actions *a)
{
    memset(a, 0, sizeof(*a));
}

static void action_free_contents(struct sw_action *act)
{
    free(act->group);
    free(act->region);
    free(act->unit_key);
    free(act->reason);
}

void sw_actions_clear(struct sw_actions *a)
{
    for (size_t i = 0; i < a->count; i++)
        action_free_contents(&a->items[i]);
    free(a->items);
    sw_actions_init(a);
}

static struct sw_action *actions_push(struct sw_actions *a)
{
    if (a->count == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 8;
        a->items = sw_xrealloc(a->items, a->cap * sizeof(*a->items));
    }
    struct sw_action *act = &a->items[a->count++];
    memset(act, 0, sizeof(*act));
    return act;
}

struct sw_action *sw_actions_add(struct sw_actions *a, int kind, const char *group,
                                 const char *region, const char *unit_key,
                                 double price_usd_hour, const char *reason)
{
    struct sw_action *act = actions_push(a);
    act->kind = kind;
    act->group = sw_xstrdup(group);
    act->region = sw_xstrdup(region);
    act->unit_key = sw_xstrdup(unit_key);
    act->price_usd_hour = price_usd_hour;
    act->reason = sw_xstrdup(reason);
    return act;
}

void sw_actions_move(struct sw_actions *a, size_t i, struct sw_actions *dst,
                     const char *reason)
{
    if (i >= a->count)
        return;
    struct sw_action moved = a->items[i];
    memmove(&a->items[i], &a->items[i + 1], (a->count - i - 1) * sizeof(*a->items));
    a->count--;
    /* Copy before freeing: callers may pass the action's own reason to keep it. */
    char *new_reason = sw_xstrdup(reason);
    free(moved.reason);
    moved.reason = new_reason;
    if (dst == NULL) {
        action_free_contents(&moved);
        return;
    }
    *actions_push(dst) = moved;
}

const char *sw_action_kind_name(int kind)
{
    return kind == SW_ACTION_ACQUIRE ? "acquire" : kind == SW_ACTION_RELEASE ? "release" : "?";
}

char *sw_actions_to_json(const struct sw_actions *a)
{
    struct sw_jw w;
    sw_jw_init(&w);
    sw_jw_open(&w, NULL, '[');
    for (size_t i = 0; i < a->count; i++) {
        const struct sw_action *act = &a->items[i];
        sw_jw_open(&w, NULL, '{');
        sw_jw_string(&w, "kind", sw_action_kind_name(act->kind));
        sw_jw_string(&w, "group", act->group ? act->group : "");
        sw_jw_string(&w, "region", act->region ? act->region : "");
        if (act->unit_key != NULL)
            sw_jw_string(&w, "unit", act->unit_key);
        sw_jw_number(&w, "price_usd_hour", act->price_usd_hour);
        sw_jw_string(&w, "reason", act->reason ? act->reason : "");
        sw_jw_close(&w, '}');
    }
    sw_jw_close(&w, ']');
    return sw_jw_take(&w);
}
