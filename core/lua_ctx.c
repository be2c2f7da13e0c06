#include "lua_ctx.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "lua_convert.h"
#include "lua_sandbox.h"
#include "mem.h"
#include "name_index.h"
#include "track_record.h"

#define HANDLE_META "steward.ctx"

/* User values of the handle. */
enum {
    UV_DATA = 1,          /* the table behind the ctx proxy */
    UV_BUDGET = 2,        /* the table behind ctx.budget */
    UV_PROXY = 3,         /* what policies see */
    UV_OWNER = 4,         /* anything the ctx must keep alive (fake input in specs) */
    UV_CACHED_LEASES = 5, /* ctx.leases as last built */
    UV_CACHED_OFFERS = 6,
    UV_CACHED_GROUPS = 7,
    UV_SUMBY_KEYS = 8, /* sumby[i]'s key table at [i + 1] */
    UV_CAP_NAMES = 9,  /* the strings cap_memo holds, as keys: alive while they are there */
    UV_COUNT = 9,
};

/* ctx.capacity(group, region) and ctx.ready by the addresses of their argument strings: a
 * policy asks about the same pairs with the same Lua strings tick after tick, and hashing
 * and comparing their text was most of each call. The memo maps the strings' addresses to
 * the interned names and the cell hash of their text; a Lua string's text never changes
 * and the strings are anchored (UV_CAP_NAMES) while the memo holds them, so an address
 * seen again is the same text. */
#define CAP_MEMO_SLOTS 64 /* 2^6 (cap_memo_slot); at most half used */
struct cap_memo {
    const char *lua_group; /* NULL: empty slot */
    const char *lua_region; /* NULL: the whole group */
    const char *group;      /* interned */
    const char *region;     /* interned, or NULL */
    uint64_t hash;          /* cell_hash of the text */
};

struct sw_lua_ctx {
    const struct sw_policy_input *in; /* borrowed during a call, NULL otherwise */
    struct sw_explanation *explanations;
    size_t explanation_count;
    size_t explanation_cap;
    bool explanations_dropped;
    /* Copies of what the cached leases/offers/groups were built from. Inputs rarely change
     * between ticks, so a call whose input equals the copy reuses the Lua tables and only
     * refreshes age_s: converting 10 leases costs tens of microseconds, comparing them
     * well under one. */
    struct sw_units lease_snap;
    bool leases_cached;
    struct sw_offers offer_snap;
    bool offers_cached;
    uint64_t offer_snap_names; /* the input's names_serial when offer_snap was taken */
    struct sw_group_config *group_snap;
    size_t group_snap_count;
    bool groups_cached;
    /* What the data table holds from the last call, so a refresh writes only what may
     * differ: lazy fields built (bit i: lazy_fields[i]) and the budget figures. */
    unsigned lazy_built;
    bool budget_set;
    double budget_usd_hour;
    double spend_usd_hour;
    /* ctx.capacity/ctx.ready and ctx.price answered from tables built on the first such
     * call of each evaluate (the input does not change during it): a policy asking for
     * every region otherwise scans every unit or offer per region. */
    struct count_cell *counts; /* open addressing, counts_cap slots, at most half full */
    size_t counts_cap;
    size_t counts_used;
    bool counts_built;
    /* What the counts were built from, unit by unit: when the next evaluate's units are
     * the same (serial, state, unhealthy), the table is reused without hashing a name.
     * Only units made by sw_unit_new (serial != 0, interned names that outlive the input)
     * qualify. */
    struct count_key *count_keys;
    size_t count_key_count;
    size_t count_key_cap;
    bool counts_keyed;
    struct cap_memo cap_memo[CAP_MEMO_SLOTS];
    size_t cap_memo_used;
    struct sw_name_index prices_ix; /* region → index in prices */
    double *prices;
    size_t prices_cap;
    bool prices_built;
    /* metrics.sum_by's key per sample (its label value as a Lua string, in the
     * UV_SUMBY_KEYS table) for the last few (series, label) pairs: pushing each key again
     * hashed it and searched the labels every call, while a metric's labels change far less
     * often than its values. serial 0: the slot is empty (or its filling failed). */
    struct {
        uint64_t serial;
        char *label;
        size_t *key_of; /* per sample: its key's position (sw_lua_push_sum_by_keyed) */
        size_t key_of_cap;
        size_t distinct;
    } sumby[4];
    unsigned sumby_next;
    double *sumby_sums; /* scratch */
    size_t sumby_sums_cap;
};

struct count_key {
    uint64_t serial;
    int state;
    bool unhealthy;
};

struct count_cell {
    const char *group;  /* NULL: empty slot */
    const char *region; /* NULL: the whole group */
    uint64_t hash;
    int capacity;
    int ready;
};

/* Built on first access during a call; the order is what pairs(ctx) materializes. */
static const char *const lazy_fields[] = {"leases", "offers", "groups", "probes",
                                          "providers"};

static struct sw_lua_ctx *upvalue_ctx(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static const struct sw_policy_input *need_input(lua_State *L, const char *what)
{
    const struct sw_lua_ctx *ctx = upvalue_ctx(L);
    if (ctx->in == NULL)
        luaL_error(L, "ctx.%s is only available while evaluate or on_event runs", what);
    return ctx->in;
}

static void free_explanations(struct sw_lua_ctx *ctx)
{
    for (size_t i = 0; i < ctx->explanation_count; i++) {
        free(ctx->explanations[i].group);
        free(ctx->explanations[i].region);
        free(ctx->explanations[i].text);
    }
    free(ctx->explanations);
    ctx->explanations = NULL;
    ctx->explanation_count = 0;
    ctx->explanation_cap = 0;
    ctx->explanations_dropped = false;
}

static void free_group_snap(struct sw_lua_ctx *ctx)
{
    for (size_t i = 0; i < ctx->group_snap_count; i++) {
        struct sw_group_config *g = &ctx->group_snap[i];
        free(g->name);
        for (size_t r = 0; r < g->region_count; r++)
            free(g->regions[r]);
        free(g->regions);
    }
    free(ctx->group_snap);
    ctx->group_snap = NULL;
    ctx->group_snap_count = 0;
    ctx->groups_cached = false;
}

static void forget_indexes(struct sw_lua_ctx *ctx)
{
    ctx->counts_built = false;
    if (ctx->prices_built)
        sw_name_index_free(&ctx->prices_ix);
    ctx->prices_built = false;
}

static int handle_gc(lua_State *L)
{
    struct sw_lua_ctx *ctx = luaL_checkudata(L, 1, HANDLE_META);
    forget_indexes(ctx);
    free(ctx->counts);
    ctx->counts = NULL;
    free(ctx->count_keys);
    ctx->count_keys = NULL;
    ctx->count_key_count = ctx->count_key_cap = 0;
    ctx->counts_keyed = false;
    ctx->counts_cap = 0;
    ctx->counts_used = 0;
    free(ctx->prices);
    ctx->prices = NULL;
    ctx->prices_cap = 0;
    for (size_t i = 0; i < SW_ARRAY_LEN(ctx->sumby); i++) {
        free(ctx->sumby[i].label);
        ctx->sumby[i].label = NULL;
        ctx->sumby[i].serial = 0;
        free(ctx->sumby[i].key_of);
        ctx->sumby[i].key_of = NULL;
        ctx->sumby[i].key_of_cap = 0;
    }
    free(ctx->sumby_sums);
    ctx->sumby_sums = NULL;
    ctx->sumby_sums_cap = 0;
    free_explanations(ctx);
    sw_units_clear(&ctx->lease_snap);
    sw_offers_clear(&ctx->offer_snap);
    free_group_snap(ctx);
    ctx->leases_cached = ctx->offers_cached = false;
    ctx->in = NULL;
    return 0;
}

/* ---- conversion cache ------------------------------------------------------------------- */

static bool str_same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool unit_same(const struct sw_unit *a, const struct sw_unit *b)
{
    if (a->state != b->state || a->unhealthy != b->unhealthy ||
        a->price_usd_hour != b->price_usd_hour || a->ordered_ms != b->ordered_ms ||
        a->uri_count != b->uri_count || !str_same(a->key, b->key) ||
        !str_same(a->market_id, b->market_id) || !str_same(a->group, b->group) ||
        !str_same(a->region, b->region) || !str_same(a->provider, b->provider))
        return false;
    for (size_t i = 0; i < a->uri_count; i++)
        if (!str_same(a->uris[i], b->uris[i]))
            return false;
    return true;
}

static bool leases_unchanged(const struct sw_lua_ctx *ctx, const struct sw_units *units)
{
    if (!ctx->leases_cached)
        return false;
    size_t n = 0;
    for (size_t i = 0; units != NULL && i < units->count; i++) {
        if (units->items[i]->state == SW_UNIT_CLOSED)
            continue;
        if (n >= ctx->lease_snap.count || !unit_same(units->items[i], ctx->lease_snap.items[n]))
            return false;
        n++;
    }
    return n == ctx->lease_snap.count;
}

static bool offers_unchanged(const struct sw_lua_ctx *ctx, const struct sw_offers *offers)
{
    size_t count = offers != NULL ? offers->count : 0;
    if (!ctx->offers_cached || count != ctx->offer_snap.count)
        return false;
    /* the same names serial as at the snapshot: the names are the same. */
    bool names_same =
        count > 0 && offers->names_serial != 0 && offers->names_serial == ctx->offer_snap_names;
    for (size_t i = 0; i < count; i++) {
        const struct sw_offer *a = &offers->items[i], *b = &ctx->offer_snap.items[i];
        if (a->price_usd_hour != b->price_usd_hour || a->audited != b->audited ||
            (!names_same &&
             (!str_same(a->provider, b->provider) || !str_same(a->region, b->region))))
            return false;
    }
    return true;
}

static bool group_same(const struct sw_group_config *a, const struct sw_group_config *b)
{
    if (a->min != b->min || a->max != b->max || a->max_price_usd_hour != b->max_price_usd_hour ||
        a->scale_up_cooldown_ms != b->scale_up_cooldown_ms ||
        a->scale_down_cooldown_ms != b->scale_down_cooldown_ms ||
        a->region_count != b->region_count || !str_same(a->name, b->name))
        return false;
    for (size_t i = 0; i < a->region_count; i++)
        if (!str_same(a->regions[i], b->regions[i]))
            return false;
    return true;
}

static bool groups_unchanged(const struct sw_lua_ctx *ctx, const struct sw_group_config *groups,
                             size_t count)
{
    if (!ctx->groups_cached || count != ctx->group_snap_count)
        return false;
    for (size_t i = 0; i < count; i++)
        if (!group_same(&groups[i], &ctx->group_snap[i]))
            return false;
    return true;
}

static void snapshot_leases(struct sw_lua_ctx *ctx, const struct sw_units *units)
{
    sw_units_clear(&ctx->lease_snap);
    for (size_t i = 0; units != NULL && i < units->count; i++)
        if (units->items[i]->state != SW_UNIT_CLOSED)
            sw_units_add(&ctx->lease_snap, sw_unit_clone(units->items[i]));
    ctx->leases_cached = true;
}

static void snapshot_offers(struct sw_lua_ctx *ctx, const struct sw_offers *offers)
{
    sw_offers_clear(&ctx->offer_snap);
    for (size_t i = 0; offers != NULL && i < offers->count; i++) {
        const struct sw_offer *o = &offers->items[i];
        sw_offers_add(&ctx->offer_snap, o->provider, o->region, o->price_usd_hour, o->audited);
    }
    ctx->offer_snap_names = offers != NULL ? offers->names_serial : 0;
    ctx->offers_cached = true;
}

static void snapshot_groups(struct sw_lua_ctx *ctx, const struct sw_group_config *groups,
                            size_t count)
{
    free_group_snap(ctx);
    ctx->group_snap = sw_xcalloc(count ? count : 1, sizeof(*ctx->group_snap));
    ctx->group_snap_count = count;
    for (size_t i = 0; i < count; i++) {
        struct sw_group_config *g = &ctx->group_snap[i];
        *g = (struct sw_group_config){
            .name = sw_xstrdup(groups[i].name),
            .min = groups[i].min,
            .max = groups[i].max,
            .max_price_usd_hour = groups[i].max_price_usd_hour,
            .scale_up_cooldown_ms = groups[i].scale_up_cooldown_ms,
            .scale_down_cooldown_ms = groups[i].scale_down_cooldown_ms,
            .region_count = groups[i].region_count,
        };
        g->regions = sw_xcalloc(g->region_count ? g->region_count : 1, sizeof(char *));
        for (size_t r = 0; r < g->region_count; r++)
            g->regions[r] = sw_xstrdup(groups[i].regions[r]);
    }
    ctx->groups_cached = true;
}

/* Cached ctx.leases with age_s moved to now. Leaves the proxy on the stack. */
static void push_cached_leases(lua_State *L, int handle, const struct sw_lua_ctx *ctx,
                               int64_t now_ms)
{
    lua_getiuservalue(L, handle, UV_CACHED_LEASES);
    sw_lua_readonly_data(L, -1);
    int list = lua_gettop(L);
    for (size_t i = 0; i < ctx->lease_snap.count; i++) {
        lua_rawgeti(L, list, (lua_Integer)i + 1);
        sw_lua_readonly_data(L, -1);
        lua_pushnumber(L, sw_lua_lease_age_s(ctx->lease_snap.items[i], now_ms));
        lua_setfield(L, -2, "age_s");
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
}

/* ctx.probes: read-only array of the last probe round's results. Rebuilt for each call
 * that reads it (a round changes every result; there is nothing to cache). */
static void push_probes(lua_State *L, const struct sw_policy_input *in)
{
    lua_createtable(L, (int)in->probe_count, 0);
    char path[48];
    for (size_t i = 0; in->probes != NULL && i < in->probe_count; i++) {
        const struct sw_probe_status *p = &in->probes[i];
        lua_createtable(L, 0, 11);
        const struct {
            const char *key;
            const char *value;
        } strings[] = {{"target", p->target}, {"unit", p->unit},   {"group", p->group},
                       {"region", p->region}, {"error", p->error}};
        for (size_t s = 0; s < SW_ARRAY_LEN(strings); s++) {
            if (strings[s].value == NULL)
                continue;
            lua_pushstring(L, strings[s].value);
            lua_setfield(L, -2, strings[s].key);
        }
        lua_pushboolean(L, p->ok);
        lua_setfield(L, -2, "ok");
        lua_pushinteger(L, (lua_Integer)p->http_status);
        lua_setfield(L, -2, "status");
        const struct {
            const char *key;
            double value;
        } numbers[] = {{"connect_ms", p->connect_ms},
                       {"tls_ms", p->tls_ms},
                       {"first_byte_ms", p->first_byte_ms},
                       {"total_ms", p->total_ms}};
        for (size_t n = 0; n < SW_ARRAY_LEN(numbers); n++) {
            lua_pushnumber(L, numbers[n].value);
            lua_setfield(L, -2, numbers[n].key);
        }
        snprintf(path, sizeof(path), "ctx.probes[%zu]", i + 1);
        sw_lua_push_readonly(L, -1, path);
        lua_remove(L, -2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    sw_lua_push_readonly(L, -1, "ctx.probes");
    lua_remove(L, -2);
}

/* ctx.providers: the provider track record (track_record.h), one read-only table per
 * provider. A handful of rows, built afresh on each call's first access. */
static void push_providers(lua_State *L, const struct sw_policy_input *in)
{
    const struct sw_provider_record *records = in->providers;
    size_t count = records != NULL ? in->provider_count : 0;
    if (records == NULL && in->providers_fn != NULL)
        records = in->providers_fn(in->providers_ud, &count);
    if (records == NULL)
        count = 0;
    lua_createtable(L, (int)count, 0);
    for (size_t i = 0; i < count; i++) {
        const struct sw_provider_record *p = &records[i];
        lua_createtable(L, 0, 5);
        lua_pushstring(L, p->provider);
        lua_setfield(L, -2, "provider");
        lua_pushinteger(L, (lua_Integer)p->closures);
        lua_setfield(L, -2, "closures");
        lua_pushnumber(L, p->lease_hours);
        lua_setfield(L, -2, "lease_hours");
        if (p->mean_ready_s >= 0) {
            lua_pushnumber(L, p->mean_ready_s);
            lua_setfield(L, -2, "mean_ready_s");
        }
        if (p->backed_off_until_ms > 0) {
            lua_pushnumber(L, (lua_Number)p->backed_off_until_ms / 1000.0);
            lua_setfield(L, -2, "backed_off_until");
        }
        char path[48];
        snprintf(path, sizeof(path), "ctx.providers[%zu]", i + 1);
        sw_lua_push_readonly(L, -1, path);
        lua_remove(L, -2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    sw_lua_push_readonly(L, -1, "ctx.providers");
    lua_remove(L, -2);
}

/* Push ctx.<lazy_fields[field]>, from the cache when the input is the same as last time.
 * handle is the ctx handle's (pseudo-)index. */
static bool push_lazy(lua_State *L, int handle, struct sw_lua_ctx *ctx, size_t field)
{
    const struct sw_policy_input *in = ctx->in;
    const char *key = field < SW_ARRAY_LEN(lazy_fields) ? lazy_fields[field] : "";
    int slot;
    if (key == lazy_fields[0]) { /* leases */
        if (leases_unchanged(ctx, in->units)) {
            push_cached_leases(L, handle, ctx, in->now_ms);
            return true;
        }
        ctx->leases_cached = false;
        sw_lua_push_leases(L, in->units, in->now_ms);
        snapshot_leases(ctx, in->units);
        slot = UV_CACHED_LEASES;
    } else if (key == lazy_fields[1]) { /* offers */
        if (offers_unchanged(ctx, in->offers)) {
            lua_getiuservalue(L, handle, UV_CACHED_OFFERS);
            return true;
        }
        ctx->offers_cached = false;
        sw_lua_push_offers(L, in->offers);
        snapshot_offers(ctx, in->offers);
        slot = UV_CACHED_OFFERS;
    } else if (key == lazy_fields[2]) { /* groups */
        if (groups_unchanged(ctx, in->groups, in->group_count)) {
            lua_getiuservalue(L, handle, UV_CACHED_GROUPS);
            return true;
        }
        ctx->groups_cached = false;
        sw_lua_push_groups(L, in->groups, in->group_count);
        snapshot_groups(ctx, in->groups, in->group_count);
        slot = UV_CACHED_GROUPS;
    } else if (key == lazy_fields[3]) { /* probes */
        push_probes(L, in);
        return true;
    } else if (key == lazy_fields[4]) { /* providers */
        push_providers(L, in);
        return true;
    } else {
        return false;
    }
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, handle, slot);
    return true;
}

/* ---- per-call indexes ----------------------------------------------------------------- */

static uint64_t hash_str(const char *s, uint64_t h)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL; /* FNV-1a */
    }
    return h;
}

static uint64_t cell_hash(const char *group, const char *region)
{
    uint64_t h = hash_str(group, 1469598103934665603ULL);
    h ^= 0xff; /* separator: ("ab", "c") and ("a", "bc") differ */
    h *= 1099511628211ULL;
    return region != NULL ? hash_str(region, h) : h ^ 0x9e3779b97f4a7c15ULL;
}

static bool same_name(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static struct count_cell *count_slot(struct count_cell *cells, size_t cap, const char *group,
                                     const char *region, uint64_t h)
{
    size_t i = (size_t)h & (cap - 1);
    while (cells[i].group != NULL && (cells[i].hash != h || strcmp(cells[i].group, group) != 0 ||
                                      !same_name(cells[i].region, region)))
        i = (i + 1) & (cap - 1);
    return &cells[i];
}

static struct count_cell *count_cell(struct sw_lua_ctx *ctx, const char *group, const char *region,
                                     bool add)
{
    uint64_t h = cell_hash(group, region);
    struct count_cell *c = count_slot(ctx->counts, ctx->counts_cap, group, region, h);
    if (c->group != NULL || !add)
        return c->group != NULL ? c : NULL;
    if ((ctx->counts_used + 1) * 2 > ctx->counts_cap) {
        size_t cap = ctx->counts_cap * 2;
        struct count_cell *cells = sw_xcalloc(cap, sizeof(*cells));
        for (size_t i = 0; i < ctx->counts_cap; i++)
            if (ctx->counts[i].group != NULL)
                *count_slot(cells, cap, ctx->counts[i].group, ctx->counts[i].region,
                            ctx->counts[i].hash) = ctx->counts[i];
        free(ctx->counts);
        ctx->counts = cells;
        ctx->counts_cap = cap;
        c = count_slot(ctx->counts, ctx->counts_cap, group, region, h);
    }
    *c = (struct count_cell){group, region, h, 0, 0};
    ctx->counts_used++;
    return c;
}

/* Capacity (sw_unit_counts) and ready units per (group, region) and per group, as the
 * scans of sw_units_count_capacity and ctx.ready count them. The table is sized by the
 * distinct cells (groups × regions in use), not by the units, and kept between calls. */
static void build_counts(struct sw_lua_ctx *ctx, const struct sw_units *units)
{
    size_t n = units != NULL ? units->count : 0;
    if (ctx->counts == NULL) {
        ctx->counts_cap = 64;
        ctx->counts = sw_xmalloc(ctx->counts_cap * sizeof(*ctx->counts));
    }
    memset(ctx->counts, 0, ctx->counts_cap * sizeof(*ctx->counts));
    ctx->counts_used = 0;

    for (size_t i = 0; i < n; i++) {
        const struct sw_unit *u = units->items[i];
        if (u->group == NULL)
            continue;
        bool counts = sw_unit_counts(u);
        bool ready = u->state == SW_UNIT_READY && !u->unhealthy;
        struct count_cell *whole = count_cell(ctx, u->group, NULL, true);
        whole->capacity += counts;
        whole->ready += ready;
        if (u->region == NULL)
            continue;
        struct count_cell *here = count_cell(ctx, u->group, u->region, true);
        here->capacity += counts;
        here->ready += ready;
    }
    ctx->counts_built = true;
    ctx->counts_keyed = true;
    if (n > ctx->count_key_cap) {
        ctx->count_key_cap = n;
        ctx->count_keys = sw_xrealloc(ctx->count_keys, n * sizeof(*ctx->count_keys));
    }
    for (size_t i = 0; i < n && ctx->counts_keyed; i++) {
        const struct sw_unit *u = units->items[i];
        ctx->count_keys[i] = (struct count_key){u->serial, u->state, u->unhealthy};
        ctx->counts_keyed = u->serial != 0;
    }
    ctx->count_key_count = n;
}

static bool counts_still_valid(const struct sw_lua_ctx *ctx, const struct sw_units *units)
{
    size_t n = units != NULL ? units->count : 0;
    if (!ctx->counts_keyed || n != ctx->count_key_count)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct sw_unit *u = units->items[i];
        const struct count_key *k = &ctx->count_keys[i];
        if (u->serial != k->serial || u->state != k->state || u->unhealthy != k->unhealthy)
            return false;
    }
    return true;
}

static void ensure_counts(struct sw_lua_ctx *ctx)
{
    if (!ctx->counts_built) {
        if (counts_still_valid(ctx, ctx->in->units))
            ctx->counts_built = true;
        else
            build_counts(ctx, ctx->in->units);
    }
}

/* Best asking price per region, by the rule of sw_offers_best_price applied to the offers
 * in order. */
static void build_prices(struct sw_lua_ctx *ctx, const struct sw_offers *offers)
{
    size_t n = offers != NULL ? offers->count : 0;
    sw_name_index_init(&ctx->prices_ix, n);
    if (n > ctx->prices_cap) {
        ctx->prices = sw_xrealloc(ctx->prices, n * sizeof(*ctx->prices));
        ctx->prices_cap = n;
    }
    size_t regions = 0;
    for (size_t i = 0; i < n; i++) {
        const struct sw_offer *o = &offers->items[i];
        if (o->region == NULL)
            continue;
        size_t at;
        if (!sw_name_index_get(&ctx->prices_ix, o->region, &at)) {
            at = regions++;
            sw_name_index_add(&ctx->prices_ix, o->region, at);
            ctx->prices[at] = -1;
        }
        if (ctx->prices[at] < 0 || o->price_usd_hour < ctx->prices[at])
            ctx->prices[at] = o->price_usd_hour;
    }
    ctx->prices_built = true;
}

static struct cap_memo *cap_memo_slot(struct sw_lua_ctx *ctx, const char *lua_group,
                                      const char *lua_region)
{
    uint64_t h = (uint64_t)(uintptr_t)lua_group * 0x9e3779b97f4a7c15ULL ^
                 (uint64_t)(uintptr_t)lua_region * 0xc2b2ae3d27d4eb4fULL;
    size_t i = (size_t)(h >> 58); /* the best-mixed bits, 6 of them for 64 slots */
    while (ctx->cap_memo[i].lua_group != NULL &&
           (ctx->cap_memo[i].lua_group != lua_group || ctx->cap_memo[i].lua_region != lua_region))
        i = (i + 1) & (CAP_MEMO_SLOTS - 1);
    return &ctx->cap_memo[i];
}

/* The memo entry for the strings at stack 1 and 2 (2 a string or absent), made when new:
 * anchored first, so a memory error leaves the memo without them. */
static const struct cap_memo *cap_memo_get(lua_State *L, struct sw_lua_ctx *ctx,
                                           const char *lua_group, const char *lua_region)
{
    struct cap_memo *m = cap_memo_slot(ctx, lua_group, lua_region);
    if (m->lua_group != NULL)
        return m;
    if (ctx->cap_memo_used + 1 > CAP_MEMO_SLOTS / 2) {
        memset(ctx->cap_memo, 0, sizeof(ctx->cap_memo));
        ctx->cap_memo_used = 0;
        lua_pushnil(L); /* the old anchors go with the entries */
        lua_setiuservalue(L, lua_upvalueindex(1), UV_CAP_NAMES);
    }
    if (lua_getiuservalue(L, lua_upvalueindex(1), UV_CAP_NAMES) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, CAP_MEMO_SLOTS);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, lua_upvalueindex(1), UV_CAP_NAMES);
    }
    for (int arg = 1; arg <= (lua_region != NULL ? 2 : 1); arg++) {
        lua_pushvalue(L, arg);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    lua_pop(L, 1);
    m = cap_memo_slot(ctx, lua_group, lua_region); /* the memo may have emptied */
    *m = (struct cap_memo){lua_group, lua_region, sw_name_intern(lua_group),
                           sw_name_intern(lua_region), cell_hash(lua_group, lua_region)};
    ctx->cap_memo_used++;
    return m;
}

/* ctx.capacity and ctx.ready: *capacity and *ready for (group[, region]). */
static void capacity_and_ready(lua_State *L, const char *what, int *capacity, int *ready)
{
    struct sw_lua_ctx *ctx = upvalue_ctx(L);
    if (ctx->in == NULL)
        need_input(L, what); /* raises */
    /* Strings as they are (a number would be converted, nil is the whole group) may take
     * the memo; anything else is checked and looked up by its text. */
    int region_type = lua_type(L, 2);
    bool memo = lua_type(L, 1) == LUA_TSTRING &&
                (region_type == LUA_TSTRING || region_type == LUA_TNIL ||
                 region_type == LUA_TNONE);
    const char *group, *region;
    if (memo) {
        group = lua_tostring(L, 1);
        region = region_type == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    } else {
        group = luaL_checkstring(L, 1);
        region = luaL_optstring(L, 2, NULL);
    }
    *capacity = *ready = 0;
    if (ctx->in->units == NULL)
        return;
    ensure_counts(ctx);
    const struct count_cell *c = NULL;
    if (memo && ctx->counts_keyed) {
        /* Keyed counts hold interned names only (sw_unit_new's): compared by address. */
        const struct cap_memo *m = cap_memo_get(L, ctx, group, region);
        struct count_cell *cells = ctx->counts;
        size_t i = (size_t)m->hash & (ctx->counts_cap - 1);
        while (cells[i].group != NULL && (cells[i].hash != m->hash || cells[i].group != m->group ||
                                          cells[i].region != m->region))
            i = (i + 1) & (ctx->counts_cap - 1);
        c = cells[i].group != NULL ? &cells[i] : NULL;
    } else {
        c = count_cell(ctx, group, region, false);
    }
    if (c != NULL) {
        *capacity = c->capacity;
        *ready = c->ready;
    }
}

/* ---- ctx functions ------------------------------------------------------------------------ */

static int l_ctx_capacity(lua_State *L)
{
    int capacity = 0, ready = 0;
    capacity_and_ready(L, "capacity", &capacity, &ready);
    lua_pushinteger(L, capacity);
    return 1;
}

static int l_ctx_ready(lua_State *L)
{
    int capacity = 0, ready = 0;
    capacity_and_ready(L, "ready", &capacity, &ready);
    lua_pushinteger(L, ready);
    return 1;
}

static int l_ctx_price(lua_State *L)
{
    const struct sw_policy_input *in = need_input(L, "price");
    const char *region = luaL_checkstring(L, 1);
    struct sw_lua_ctx *ctx = upvalue_ctx(L);
    double best = -1;
    size_t at;
    if (in->offers != NULL) {
        if (!ctx->prices_built)
            build_prices(ctx, in->offers);
        if (sw_name_index_get(&ctx->prices_ix, region, &at))
            best = ctx->prices[at];
    }
    if (best < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, best);
    return 1;
}

static int l_ctx_regions(lua_State *L)
{
    const struct sw_policy_input *in = need_input(L, "regions");
    sw_lua_push_offer_regions(L, in->offers);
    return 1;
}

/* Never a silent zero: a missing or failed metric is nil plus the reason. */
static const struct sw_metric *metric_or_error(lua_State *L, const char *what)
{
    const struct sw_policy_input *in = need_input(L, what);
    const char *name = luaL_checkstring(L, 1);
    const struct sw_metric *metric = in->metrics ? sw_metric_set_get(in->metrics, name) : NULL;
    if (metric == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "metric '%s' is not available (not configured, or no data yet)", name);
        return NULL;
    }
    if (metric->status < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "metric '%s': %s", name, metric->error ? metric->error : "query failed");
        return NULL;
    }
    return metric;
}

static int l_metrics_query(lua_State *L)
{
    const struct sw_metric *metric = metric_or_error(L, "metrics.query");
    if (metric == NULL)
        return 2;
    sw_lua_push_samples(L, metric);
    return 1;
}

static int l_metrics_sum_by(lua_State *L)
{
    const char *label = luaL_checkstring(L, 2);
    const struct sw_metric *metric = metric_or_error(L, "metrics.sum_by");
    if (metric == NULL)
        return 2;
    if (metric->series_serial == 0) {
        sw_lua_push_sum_by(L, metric, label);
        return 1;
    }
    struct sw_lua_ctx *ctx = upvalue_ctx(L);
    size_t slot = SW_ARRAY_LEN(ctx->sumby);
    for (size_t i = 0; i < SW_ARRAY_LEN(ctx->sumby); i++)
        if (ctx->sumby[i].serial == metric->series_serial &&
            strcmp(ctx->sumby[i].label, label) == 0)
            slot = i;
    bool fill = slot == SW_ARRAY_LEN(ctx->sumby);
    if (fill) {
        slot = ctx->sumby_next++ % SW_ARRAY_LEN(ctx->sumby);
        ctx->sumby[slot].serial = 0; /* until the keys are all in (a memory error stops it) */
        free(ctx->sumby[slot].label);
        ctx->sumby[slot].label = sw_xstrdup(label);
        if (metric->sample_count > ctx->sumby[slot].key_of_cap) {
            ctx->sumby[slot].key_of_cap = metric->sample_count;
            ctx->sumby[slot].key_of =
                sw_xrealloc(ctx->sumby[slot].key_of, metric->sample_count * sizeof(size_t));
        }
    }
    if (metric->sample_count > ctx->sumby_sums_cap) {
        ctx->sumby_sums_cap = metric->sample_count;
        ctx->sumby_sums = sw_xrealloc(ctx->sumby_sums, metric->sample_count * sizeof(double));
    }
    if (lua_getiuservalue(L, lua_upvalueindex(1), UV_SUMBY_KEYS) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, (int)SW_ARRAY_LEN(ctx->sumby), 0);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, lua_upvalueindex(1), UV_SUMBY_KEYS);
    }
    if (fill) {
        lua_createtable(L, metric->sample_count > 4096 ? 4096 : (int)metric->sample_count, 0);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, (lua_Integer)slot + 1);
    } else {
        lua_rawgeti(L, -1, (lua_Integer)slot + 1);
    }
    sw_lua_push_sum_by_keyed(L, metric, label, lua_gettop(L), fill, ctx->sumby[slot].key_of,
                             &ctx->sumby[slot].distinct, ctx->sumby_sums);
    if (fill)
        ctx->sumby[slot].serial = metric->series_serial;
    return 1;
}

/* ctx.log(fmt, ...) formats like string.format when given more than one argument. */
static int log_at(lua_State *L, int level)
{
    int nargs = lua_gettop(L);
    const char *msg;
    if (nargs > 1) {
        lua_pushvalue(L, lua_upvalueindex(2));
        lua_insert(L, 1);
        lua_call(L, nargs, 1);
        msg = lua_tostring(L, -1);
    } else if (nargs == 1) {
        msg = luaL_tolstring(L, 1, NULL);
    } else {
        msg = "";
    }
    sw_lua_sandbox_log(sw_lua_sandbox_of(L), level, msg);
    return 0;
}

static int l_ctx_log(lua_State *L)
{
    return log_at(L, SW_LOG_INFO);
}

static int l_ctx_warn(lua_State *L)
{
    return log_at(L, SW_LOG_WARN);
}

static char *bounded_copy(const char *s)
{
    size_t len = strlen(s);
    return sw_xstrndup(s,
                       len > SW_LUA_CTX_MAX_EXPLANATION_LEN ? SW_LUA_CTX_MAX_EXPLANATION_LEN : len);
}

static int l_ctx_explain(lua_State *L)
{
    struct sw_lua_ctx *ctx = upvalue_ctx(L);
    need_input(L, "explain");
    const char *group = luaL_checkstring(L, 1);
    const char *region = lua_isnoneornil(L, 2) ? NULL : luaL_checkstring(L, 2);
    const char *text = luaL_checkstring(L, 3);
    /* C memory is outside the Lua cap: bound it. */
    if (ctx->explanation_count >= SW_LUA_CTX_MAX_EXPLANATIONS) {
        if (!ctx->explanations_dropped) {
            char msg[128];
            snprintf(msg, sizeof(msg),
                     "ctx.explain: more than %d explanations in one call; dropping the rest",
                     SW_LUA_CTX_MAX_EXPLANATIONS);
            sw_lua_sandbox_log(sw_lua_sandbox_of(L), SW_LOG_WARN, msg);
        }
        ctx->explanations_dropped = true;
        return 0;
    }
    if (ctx->explanation_count == ctx->explanation_cap) {
        ctx->explanation_cap = ctx->explanation_cap ? ctx->explanation_cap * 2 : 8;
        ctx->explanations =
            sw_xrealloc(ctx->explanations, ctx->explanation_cap * sizeof(*ctx->explanations));
    }
    ctx->explanations[ctx->explanation_count++] = (struct sw_explanation){
        sw_xstrdup(group), region ? sw_xstrdup(region) : NULL, bounded_copy(text)};
    return 0;
}

/* ---- the ctx table -------------------------------------------------------------------- */

/* __index of the data table: builds lazy fields, refuses unknown names (a typo such as
 * ctx.lease should fail loudly, not read nil). */
static int l_ctx_index(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(L, "ctx[%s]: ctx fields are named by strings", luaL_typename(L, 2));
    const char *key = lua_tostring(L, 2);
    struct sw_lua_ctx *ctx = upvalue_ctx(L);
    size_t field = 0; /* named once, then by index */
    while (field < SW_ARRAY_LEN(lazy_fields) && strcmp(key, lazy_fields[field]) != 0)
        field++;
    if (field == SW_ARRAY_LEN(lazy_fields))
        return luaL_error(L, "ctx.%s: no such field (see docs/policies.md)", key);
    if (ctx->in == NULL)
        return luaL_error(L, "ctx.%s is only available while evaluate or on_event runs", key);
    push_lazy(L, lua_upvalueindex(1), ctx, field);
    ctx->lazy_built |= 1u << field;
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
}

static int l_ctx_newindex(lua_State *L)
{
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    if (strcmp(key, "state") == 0)
        return luaL_error(L, "ctx.state is read-only (change its fields instead)");
    return luaL_error(L, "ctx.%s is read-only", key);
}

static int l_ctx_pairs(lua_State *L)
{
    struct sw_lua_ctx *ctx = upvalue_ctx(L);
    lua_getiuservalue(L, lua_upvalueindex(1), UV_DATA);
    int data = lua_gettop(L);
    for (size_t i = 0; ctx->in != NULL && i < SW_ARRAY_LEN(lazy_fields); i++) {
        if (lua_getfield(L, data, lazy_fields[i]) == LUA_TNIL)
            luaL_error(L, "ctx.%s could not be built", lazy_fields[i]);
        lua_pop(L, 1);
    }
    sw_lua_push_pairs(L, data);
    return 3;
}

struct sw_lua_ctx *sw_lua_ctx_new(lua_State *L, int params_idx, int state_idx)
{
    params_idx = lua_absindex(L, params_idx);
    state_idx = lua_absindex(L, state_idx);
    struct sw_lua_ctx *ctx = lua_newuserdatauv(L, sizeof(*ctx), UV_COUNT);
    memset(ctx, 0, sizeof(*ctx));
    if (luaL_newmetatable(L, HANDLE_META)) {
        lua_pushcfunction(L, handle_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "steward ctx");
        lua_setfield(L, -2, "__metatable");
    }
    lua_setmetatable(L, -2);
    int handle = lua_gettop(L);

    lua_createtable(L, 0, 16);
    int data = lua_gettop(L);
    lua_pushvalue(L, params_idx);
    lua_setfield(L, data, "params");
    lua_pushvalue(L, state_idx);
    lua_setfield(L, data, "state");
    lua_pushinteger(L, 0);
    lua_setfield(L, data, "now_ms");
    lua_pushnumber(L, 0);
    lua_setfield(L, data, "now");

    static const luaL_Reg functions[] = {
        {"capacity", l_ctx_capacity}, {"ready", l_ctx_ready},     {"price", l_ctx_price},
        {"regions", l_ctx_regions},   {"explain", l_ctx_explain},
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(functions); i++) {
        lua_pushvalue(L, handle);
        lua_pushcclosure(L, functions[i].func, 1);
        lua_setfield(L, data, functions[i].name);
    }
    /* log/warn keep the original string.format: a policy redefining it changes nothing. */
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_remove(L, -2);
    int format = lua_gettop(L);
    lua_pushvalue(L, handle);
    lua_pushvalue(L, format);
    lua_pushcclosure(L, l_ctx_log, 2);
    lua_setfield(L, data, "log");
    lua_pushvalue(L, handle);
    lua_pushvalue(L, format);
    lua_pushcclosure(L, l_ctx_warn, 2);
    lua_setfield(L, data, "warn");
    lua_pop(L, 1);

    lua_createtable(L, 0, 2);
    lua_pushvalue(L, handle);
    lua_pushcclosure(L, l_metrics_query, 1);
    lua_setfield(L, -2, "query");
    lua_pushvalue(L, handle);
    lua_pushcclosure(L, l_metrics_sum_by, 1);
    lua_setfield(L, -2, "sum_by");
    sw_lua_push_readonly(L, -1, "ctx.metrics");
    lua_setfield(L, data, "metrics");
    lua_pop(L, 1);

    lua_createtable(L, 0, 2);
    lua_pushnumber(L, 0);
    lua_setfield(L, -2, "usd_per_hour");
    lua_pushnumber(L, 0);
    lua_setfield(L, -2, "spend_usd_per_hour");
    sw_lua_push_readonly(L, -1, "ctx.budget");
    lua_setfield(L, data, "budget");
    lua_setiuservalue(L, handle, UV_BUDGET);

    lua_createtable(L, 0, 1);
    lua_pushvalue(L, handle);
    lua_pushcclosure(L, l_ctx_index, 1);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, data);

    sw_lua_push_readonly(L, data, "ctx");
    lua_getmetatable(L, -1);
    lua_pushvalue(L, handle);
    lua_pushcclosure(L, l_ctx_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushcfunction(L, l_ctx_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pop(L, 1);
    lua_setiuservalue(L, handle, UV_PROXY);
    lua_setiuservalue(L, handle, UV_DATA);
    return ctx;
}

struct sw_lua_ctx *sw_lua_ctx_check(lua_State *L, int idx)
{
    return luaL_testudata(L, idx, HANDLE_META);
}

void sw_lua_ctx_push(lua_State *L, int handle_idx)
{
    lua_getiuservalue(L, handle_idx, UV_PROXY);
}

void sw_lua_ctx_push_state(lua_State *L, int handle_idx)
{
    lua_getiuservalue(L, handle_idx, UV_DATA);
    lua_getfield(L, -1, "state");
    lua_remove(L, -2);
}

void sw_lua_ctx_push_owner(lua_State *L, int handle_idx)
{
    lua_getiuservalue(L, handle_idx, UV_OWNER);
}

void sw_lua_ctx_set_owner(lua_State *L, int handle_idx, int owner_idx)
{
    handle_idx = lua_absindex(L, handle_idx);
    lua_pushvalue(L, owner_idx);
    lua_setiuservalue(L, handle_idx, UV_OWNER);
}

void sw_lua_ctx_refresh(lua_State *L, int handle_idx, const struct sw_policy_input *in)
{
    handle_idx = lua_absindex(L, handle_idx);
    struct sw_lua_ctx *ctx = lua_touserdata(L, handle_idx);
    free_explanations(ctx);
    forget_indexes(ctx);
    ctx->in = in;
    lua_getiuservalue(L, handle_idx, UV_DATA);
    lua_pushnumber(L, (lua_Number)in->now_ms / 1000.0);
    lua_setfield(L, -2, "now");
    lua_pushinteger(L, (lua_Integer)in->now_ms);
    lua_setfield(L, -2, "now_ms");
    /* Only the lazy fields the last call built are in the table (the rest are absent and
     * stay so): clearing just those keeps a refresh to a few writes. */
    for (size_t i = 0; i < SW_ARRAY_LEN(lazy_fields); i++) {
        if (!(ctx->lazy_built & (1u << i)))
            continue;
        lua_pushnil(L);
        lua_setfield(L, -2, lazy_fields[i]);
    }
    ctx->lazy_built = 0;
    lua_pop(L, 1);
    if (!ctx->budget_set || ctx->budget_usd_hour != in->budget_usd_hour ||
        ctx->spend_usd_hour != in->spend_usd_hour) {
        lua_getiuservalue(L, handle_idx, UV_BUDGET);
        lua_pushnumber(L, in->budget_usd_hour);
        lua_setfield(L, -2, "usd_per_hour");
        lua_pushnumber(L, in->spend_usd_hour);
        lua_setfield(L, -2, "spend_usd_per_hour");
        lua_pop(L, 1);
        ctx->budget_set = true;
        ctx->budget_usd_hour = in->budget_usd_hour;
        ctx->spend_usd_hour = in->spend_usd_hour;
    }
}

void sw_lua_ctx_release(struct sw_lua_ctx *ctx)
{
    ctx->in = NULL;
    forget_indexes(ctx); /* the prices point into the input; counts are rechecked */
}

void sw_lua_ctx_take_explanations(struct sw_lua_ctx *ctx, struct sw_explanation **out,
                                  size_t *count)
{
    *out = ctx->explanations;
    *count = ctx->explanation_count;
    ctx->explanations = NULL;
    ctx->explanation_count = 0;
    ctx->explanation_cap = 0;
    ctx->explanations_dropped = false;
}

const struct sw_explanation *sw_lua_ctx_explanations(const struct sw_lua_ctx *ctx, size_t *count)
{
    *count = ctx->explanation_count;
    return ctx->explanations;
}
