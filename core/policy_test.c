/* policy_test.c — `steward test-policy SPEC`: runs a Lua spec inside the real sandbox.
 *
 * The spec uses steward.testing (lua/steward/testing.lua) for describe/it/expect and
 * for fake inputs; the natives below give it what Lua alone cannot: a real ctx built by
 * lua_ctx.c from a Lua description, the production desired-state check, and policy files
 * loaded from disk. Each `it` runs in its own budgeted call.
 */
#include "policy.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_convert.h"
#include "lua_ctx.h"
#include "lua_sandbox.h"
#include "mem.h"
#include "track_record.h"

#define FAKE_INPUT_META "steward.fake_input"
#define NATIVE_MODULE "steward._native"
#define DEFAULT_NOW_MS INT64_C(1700000000000)
#define SPEC_PARAMS_MAX (256u * 1024u)

/* A fake sw_policy_input and everything it points to, owned by a Lua userdata. */
struct fake_input {
    struct sw_policy_input in;
    struct sw_units units;
    struct sw_offers offers;
    struct sw_metric_set metrics;
    struct sw_group_config *groups;
    size_t group_count;
    struct sw_probe_status *probes;
    size_t probe_count;
    struct sw_provider_record *providers; /* provider strings owned here */
    size_t provider_count;
};

static void free_groups(struct fake_input *f)
{
    for (size_t i = 0; i < f->group_count; i++) {
        free(f->groups[i].name);
        for (size_t r = 0; r < f->groups[i].region_count; r++)
            free(f->groups[i].regions[r]);
        free(f->groups[i].regions);
    }
    free(f->groups);
    f->groups = NULL;
    f->group_count = 0;
}

static int fake_input_gc(lua_State *L)
{
    struct fake_input *f = luaL_checkudata(L, 1, FAKE_INPUT_META);
    sw_units_clear(&f->units);
    sw_offers_clear(&f->offers);
    sw_metric_set_clear(&f->metrics);
    free_groups(f);
    for (size_t i = 0; i < f->probe_count; i++) {
        free(f->probes[i].target);
        free(f->probes[i].unit);
        free(f->probes[i].group);
        free(f->probes[i].region);
        free(f->probes[i].error);
    }
    free(f->probes);
    for (size_t i = 0; i < f->provider_count; i++)
        free((char *)f->providers[i].provider);
    free(f->providers);
    return 0;
}

/* ---- reading the description ----------------------------------------------------------- */

static void check_keys(lua_State *L, int t, const char *where, const char *const *known)
{
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        bool ok = false;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (size_t i = 0; known[i] != NULL && !ok; i++)
                ok = strcmp(known[i], lua_tostring(L, -1)) == 0;
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (size_t i = 0; known[i] != NULL; i++) {
                luaL_addstring(&b, i ? ", " : "");
                luaL_addstring(&b, known[i]);
            }
            luaL_pushresult(&b);
            const char *known_list = lua_tostring(L, -1);
            const char *key = luaL_tolstring(L, -2, NULL);
            luaL_error(L, "testing.ctx: %s: unknown field %s (known: %s)", where, key, known_list);
        }
    }
}

static bool get_field(lua_State *L, int t, const char *key, int type, const char *where)
{
    int got = lua_getfield(L, t, key);
    if (got == LUA_TNIL) {
        lua_pop(L, 1);
        return false;
    }
    if (got != type)
        luaL_error(L, "testing.ctx: %s.%s: expected %s, got %s", where, key, lua_typename(L, type),
                   lua_typename(L, got));
    return true;
}

/* The string stays anchored by the table t, which the caller holds. */
static const char *opt_string(lua_State *L, int t, const char *key, const char *def,
                              const char *where)
{
    if (!get_field(L, t, key, LUA_TSTRING, where))
        return def;
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

static double opt_number(lua_State *L, int t, const char *key, double def, const char *where)
{
    if (!get_field(L, t, key, LUA_TNUMBER, where))
        return def;
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static bool opt_bool(lua_State *L, int t, const char *key, bool def, const char *where)
{
    if (!get_field(L, t, key, LUA_TBOOLEAN, where))
        return def;
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Copy an array of strings at the top of the stack into scratch owned by Lua. */
static const char **string_array(lua_State *L, int t, size_t *count, const char *where)
{
    size_t n = lua_rawlen(L, t);
    const char **items = lua_newuserdatauv(L, (n ? n : 1) * sizeof(char *), 0);
    for (size_t i = 0; i < n; i++) {
        if (lua_rawgeti(L, t, (lua_Integer)i + 1) != LUA_TSTRING)
            luaL_error(L, "testing.ctx: %s[%d]: expected string", where, (int)i + 1);
        items[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    *count = n;
    return items;
}

static void read_leases(lua_State *L, int desc, struct fake_input *f)
{
    static const char *const known[] = {"key",      "market_id",      "group", "region",
                                        "provider", "price_usd_hour", "state", "healthy",
                                        "age_s",    "uris",           NULL};
    if (!get_field(L, desc, "leases", LUA_TTABLE, "desc"))
        return;
    int list = lua_gettop(L);
    for (lua_Integer i = 1; lua_rawgeti(L, list, i) != LUA_TNIL; i++) {
        int t = lua_gettop(L);
        char where[48];
        snprintf(where, sizeof(where), "leases[%lld]", (long long)i);
        if (!lua_istable(L, t))
            luaL_error(L, "testing.ctx: %s: expected a table", where);
        check_keys(L, t, where, known);
        const char *group = opt_string(L, t, "group", NULL, where);
        const char *region = opt_string(L, t, "region", NULL, where);
        if (group == NULL || region == NULL)
            luaL_error(L, "testing.ctx: %s: group and region are required", where);
        const char *state_name = opt_string(L, t, "state", "ready", where);
        int state = sw_unit_state_parse(state_name);
        if (state < 0)
            luaL_error(L, "testing.ctx: %s.state: unknown state '%s'", where, state_name);
        char default_key[32];
        snprintf(default_key, sizeof(default_key), "unit-%lld", (long long)i);
        const char *key = opt_string(L, t, "key", default_key, where);
        const char *market_id = opt_string(L, t, "market_id", NULL, where);
        const char *provider = opt_string(L, t, "provider", NULL, where);
        double price = opt_number(L, t, "price_usd_hour", 0, where);
        bool healthy = opt_bool(L, t, "healthy", true, where);
        double age_s = opt_number(L, t, "age_s", 0, where);
        size_t uri_count = 0;
        const char **uris = NULL;
        if (get_field(L, t, "uris", LUA_TTABLE, where))
            uris = string_array(L, lua_gettop(L), &uri_count, where);
        /* Everything that can raise is done: build the C unit. */
        struct sw_unit *u = sw_unit_new(key, group, region);
        u->market_id = sw_xstrdup(market_id);
        u->provider = sw_xstrdup(provider);
        u->price_usd_hour = price;
        u->state = state;
        u->unhealthy = !healthy;
        u->ordered_ms = f->in.now_ms - (int64_t)(age_s * 1000);
        if (state == SW_UNIT_READY)
            u->ready_ms = u->ordered_ms;
        sw_unit_set_uris(u, uris, uri_count);
        sw_units_add(&f->units, u);
        lua_settop(L, list);
    }
    lua_settop(L, list - 1);
}

static void read_offers(lua_State *L, int desc, struct fake_input *f)
{
    static const char *const known[] = {"provider", "region", "price_usd_hour", "audited", NULL};
    if (!get_field(L, desc, "offers", LUA_TTABLE, "desc"))
        return;
    int list = lua_gettop(L);
    for (lua_Integer i = 1; lua_rawgeti(L, list, i) != LUA_TNIL; i++) {
        int t = lua_gettop(L);
        char where[48];
        snprintf(where, sizeof(where), "offers[%lld]", (long long)i);
        if (!lua_istable(L, t))
            luaL_error(L, "testing.ctx: %s: expected a table", where);
        check_keys(L, t, where, known);
        const char *region = opt_string(L, t, "region", NULL, where);
        if (region == NULL)
            luaL_error(L, "testing.ctx: %s: region is required", where);
        const char *provider = opt_string(L, t, "provider", "provider", where);
        double price = opt_number(L, t, "price_usd_hour", 0, where);
        bool audited = opt_bool(L, t, "audited", false, where);
        sw_offers_add(&f->offers, provider, region, price, audited);
        lua_settop(L, list);
    }
    lua_settop(L, list - 1);
}

/* probes = {{target, unit, group, region, ok, status, connect_ms, tls_ms, first_byte_ms,
 * total_ms, error}, ...}: ctx.probes as the runtime's probe scheduler fills it. */
static void read_probes(lua_State *L, int desc, struct fake_input *f)
{
    static const char *const known[] = {"target",        "unit",     "group",  "region",
                                        "ok",            "status",   "connect_ms", "tls_ms",
                                        "first_byte_ms", "total_ms", "error",  NULL};
    if (!get_field(L, desc, "probes", LUA_TTABLE, "desc"))
        return;
    int list = lua_gettop(L);
    size_t count = lua_rawlen(L, list);
    /* Owned by the userdata from here on, so a raise below frees what was copied. */
    f->probes = sw_xcalloc(count ? count : 1, sizeof(*f->probes));
    for (size_t i = 0; i < count; i++) {
        lua_rawgeti(L, list, (lua_Integer)i + 1);
        int t = lua_gettop(L);
        char where[48];
        snprintf(where, sizeof(where), "probes[%zu]", i + 1);
        if (!lua_istable(L, t))
            luaL_error(L, "testing.ctx: %s: expected a table", where);
        check_keys(L, t, where, known);
        const char *target = opt_string(L, t, "target", NULL, where);
        if (target == NULL)
            luaL_error(L, "testing.ctx: %s: target is required", where);
        bool ok = opt_bool(L, t, "ok", true, where);
        double status = opt_number(L, t, "status", ok ? 200 : 0, where);
        double connect = opt_number(L, t, "connect_ms", 0, where);
        double tls = opt_number(L, t, "tls_ms", 0, where);
        double first_byte = opt_number(L, t, "first_byte_ms", 0, where);
        double total = opt_number(L, t, "total_ms", 0, where);
        const char *unit = opt_string(L, t, "unit", NULL, where);
        const char *group = opt_string(L, t, "group", NULL, where);
        const char *region = opt_string(L, t, "region", NULL, where);
        const char *error = opt_string(L, t, "error", NULL, where);
        f->probes[f->probe_count++] = (struct sw_probe_status){
            .target = sw_xstrdup(target),
            .unit = sw_xstrdup(unit),
            .group = sw_xstrdup(group),
            .region = sw_xstrdup(region),
            .ok = ok,
            .http_status = (long)status,
            .connect_ms = connect,
            .tls_ms = tls,
            .first_byte_ms = first_byte,
            .total_ms = total,
            .error = sw_xstrdup(error),
        };
        lua_settop(L, list);
    }
    lua_settop(L, list - 1);
}

/* providers = {{provider, closures, lease_hours, mean_ready_s, backed_off_until}} */
static void read_providers(lua_State *L, int desc, struct fake_input *f)
{
    static const char *const known[] = {"provider",     "closures",         "lease_hours",
                                        "mean_ready_s", "backed_off_until", NULL};
    if (!get_field(L, desc, "providers", LUA_TTABLE, "desc"))
        return;
    int list = lua_gettop(L);
    size_t count = lua_rawlen(L, list);
    f->providers = sw_xcalloc(count ? count : 1, sizeof(*f->providers));
    for (size_t i = 0; i < count; i++) {
        lua_rawgeti(L, list, (lua_Integer)i + 1);
        int t = lua_gettop(L);
        char where[48];
        snprintf(where, sizeof(where), "providers[%zu]", i + 1);
        if (!lua_istable(L, t))
            luaL_error(L, "testing.ctx: %s: expected a table", where);
        check_keys(L, t, where, known);
        const char *provider = opt_string(L, t, "provider", NULL, where);
        if (provider == NULL)
            luaL_error(L, "testing.ctx: %s: provider is required", where);
        struct sw_provider_record *p = &f->providers[f->provider_count];
        p->provider = sw_xstrdup(provider);
        f->provider_count++;
        p->closures = (int64_t)opt_number(L, t, "closures", 0, where);
        p->lease_hours = opt_number(L, t, "lease_hours", 0, where);
        p->mean_ready_s = opt_number(L, t, "mean_ready_s", -1, where);
        p->backed_off_until_ms = (int64_t)(opt_number(L, t, "backed_off_until", 0, where) * 1000);
        lua_settop(L, list);
    }
    lua_settop(L, list - 1);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* groups = {web = {min = 1, max = 5, regions = {...}, ...}, ...} or {"web", "batch"}. */
static void read_groups(lua_State *L, int desc, struct fake_input *f)
{
    static const char *const known[] = {"min",
                                        "max",
                                        "regions",
                                        "max_price_usd_hour",
                                        "scale_up_cooldown_s",
                                        "scale_down_cooldown_s",
                                        NULL};
    if (!get_field(L, desc, "groups", LUA_TTABLE, "desc"))
        return;
    int groups = lua_gettop(L);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, groups) != 0) {
        n++;
        lua_pop(L, 1);
    }
    const char **names = lua_newuserdatauv(L, (n ? n : 1) * sizeof(char *), 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, groups) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1))
            names[i++] = lua_tostring(L, -2);
        else if (lua_isinteger(L, -2) && lua_type(L, -1) == LUA_TSTRING)
            names[i++] = lua_tostring(L, -1);
        else
            luaL_error(L, "testing.ctx: groups: expected {name = {...}} or {\"name\", ...}");
        lua_pop(L, 1);
    }
    qsort(names, n, sizeof(char *), cmp_cstr);
    int base = lua_gettop(L);
    /* Validate and gather everything before touching C memory. */
    for (i = 0; i < n; i++) {
        char where[96];
        snprintf(where, sizeof(where), "groups.%s", names[i]);
        if (lua_getfield(L, groups, names[i]) == LUA_TTABLE) {
            int t = lua_gettop(L);
            check_keys(L, t, where, known);
            opt_number(L, t, "min", 0, where);
            opt_number(L, t, "max", 0, where);
            opt_number(L, t, "max_price_usd_hour", 0, where);
            opt_number(L, t, "scale_up_cooldown_s", 0, where);
            opt_number(L, t, "scale_down_cooldown_s", 0, where);
            if (get_field(L, t, "regions", LUA_TTABLE, where)) {
                size_t count;
                string_array(L, lua_gettop(L), &count, where);
            }
        }
        lua_settop(L, base);
    }
    f->groups = sw_xcalloc(n ? n : 1, sizeof(*f->groups));
    f->group_count = n;
    for (i = 0; i < n; i++) {
        struct sw_group_config *g = &f->groups[i];
        g->name = sw_xstrdup(names[i]);
        g->max = SW_LUA_MAX_COUNT;
        if (lua_getfield(L, groups, names[i]) == LUA_TTABLE) {
            int t = lua_gettop(L);
            g->min = (int)opt_number(L, t, "min", 0, "");
            g->max = (int)opt_number(L, t, "max", SW_LUA_MAX_COUNT, "");
            g->max_price_usd_hour = opt_number(L, t, "max_price_usd_hour", 0, "");
            g->scale_up_cooldown_ms =
                (int64_t)(opt_number(L, t, "scale_up_cooldown_s", 0, "") * 1000);
            g->scale_down_cooldown_ms =
                (int64_t)(opt_number(L, t, "scale_down_cooldown_s", 0, "") * 1000);
            if (lua_getfield(L, t, "regions") == LUA_TTABLE) {
                size_t count = lua_rawlen(L, -1);
                g->regions = sw_xcalloc(count ? count : 1, sizeof(char *));
                for (size_t r = 0; r < count; r++) {
                    lua_rawgeti(L, -1, (lua_Integer)r + 1);
                    g->regions[r] = sw_xstrdup(lua_tostring(L, -1));
                    lua_pop(L, 1);
                }
                g->region_count = count;
            }
        }
        lua_settop(L, base);
    }
    lua_settop(L, groups - 1);
}

/* Lua-owned scratch (freed by the GC even if a later check raises), kept alive by the
 * anchor table at index anchor until the data is copied to C. */
static void *scratch(lua_State *L, int anchor, size_t size)
{
    void *block = lua_newuserdatauv(L, size ? size : 1, 0);
    lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
    return block;
}

static void read_sample(lua_State *L, int s, int anchor, const char *where, struct swp_sample *out)
{
    static const char *const known[] = {"labels", "value", NULL};
    check_keys(L, s, where, known);
    *out = (struct swp_sample){NULL, NULL, 0, opt_number(L, s, "value", 0, where)};
    if (!get_field(L, s, "labels", LUA_TTABLE, where))
        return;
    int labels = lua_gettop(L);
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, labels) != 0) {
        count++;
        lua_pop(L, 1);
    }
    const char **names = scratch(L, anchor, count * sizeof(char *));
    const char **values = scratch(L, anchor, count * sizeof(char *));
    size_t j = 0;
    lua_pushnil(L);
    while (lua_next(L, labels) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "testing.ctx: %s.labels: expected {name = \"value\"}", where);
        names[j] = lua_tostring(L, -2);
        values[j] = lua_tostring(L, -1);
        j++;
        lua_pop(L, 1);
    }
    out->label_names = names;
    out->label_values = values;
    out->label_count = count;
    lua_settop(L, labels - 1);
}

/* metrics = {name = {{labels = {k = v}, value = n}, ...} or {error = "why"}}. */
static void read_metrics(lua_State *L, int desc, struct fake_input *f)
{
    if (!get_field(L, desc, "metrics", LUA_TTABLE, "desc"))
        return;
    int metrics = lua_gettop(L);
    lua_newtable(L);
    int anchor = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, metrics) != 0) {
        int t = lua_gettop(L);
        if (lua_type(L, t - 1) != LUA_TSTRING || !lua_istable(L, t))
            luaL_error(L, "testing.ctx: metrics: expected {name = {samples...}}");
        const char *name = lua_tostring(L, t - 1);
        char where[96];
        snprintf(where, sizeof(where), "metrics.%s", name);
        const char *error = opt_string(L, t, "error", NULL, where);
        if (error != NULL) {
            sw_metric_set_put_error(&f->metrics, name, f->in.now_ms, SW_EIO, error);
            lua_settop(L, t - 1);
            continue;
        }
        size_t n = lua_rawlen(L, t);
        struct swp_sample *samples = scratch(L, anchor, n * sizeof(*samples));
        for (size_t i = 0; i < n; i++) {
            char swhere[128];
            snprintf(swhere, sizeof(swhere), "%s[%zu]", where, i + 1);
            if (lua_rawgeti(L, t, (lua_Integer)i + 1) != LUA_TTABLE)
                luaL_error(L, "testing.ctx: %s: expected {labels = {...}, value = n}", swhere);
            read_sample(L, lua_gettop(L), anchor, swhere, &samples[i]);
            lua_settop(L, t);
        }
        sw_metric_set_put(&f->metrics, name, f->in.now_ms, samples, n);
        lua_settop(L, t - 1);
    }
    lua_settop(L, metrics - 1);
}

/* native.ctx(desc) → ctx, handle */
static int l_native_ctx(lua_State *L)
{
    static const char *const known[] = {"now",    "now_ms", "params",  "state",  "groups",
                                        "leases", "offers", "metrics", "budget", "probes",
                                        "providers", NULL};
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_keys(L, 1, "desc", known);
    struct fake_input *f = lua_newuserdatauv(L, sizeof(*f), 0);
    memset(f, 0, sizeof(*f));
    luaL_setmetatable(L, FAKE_INPUT_META);
    int owner = lua_gettop(L);
    f->in.now_ms = DEFAULT_NOW_MS;
    if (get_field(L, 1, "now_ms", LUA_TNUMBER, "desc")) {
        f->in.now_ms = (int64_t)lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    if (get_field(L, 1, "now", LUA_TNUMBER, "desc")) {
        f->in.now_ms = (int64_t)(lua_tonumber(L, -1) * 1000);
        lua_pop(L, 1);
    }
    read_leases(L, 1, f);
    read_offers(L, 1, f);
    read_groups(L, 1, f);
    read_metrics(L, 1, f);
    read_probes(L, 1, f);
    f->in.probes = f->probes;
    f->in.probe_count = f->probe_count;
    read_providers(L, 1, f);
    f->in.providers = f->providers;
    f->in.provider_count = f->provider_count;
    f->in.units = &f->units;
    f->in.offers = &f->offers;
    f->in.metrics = &f->metrics;
    f->in.groups = f->groups;
    f->in.group_count = f->group_count;
    f->in.spend_usd_hour = sw_units_spend_usd_hour(&f->units);
    if (get_field(L, 1, "budget", LUA_TTABLE, "desc")) {
        int t = lua_gettop(L);
        static const char *const budget_keys[] = {"usd_per_hour", "spend_usd_per_hour", NULL};
        check_keys(L, t, "budget", budget_keys);
        f->in.budget_usd_hour = opt_number(L, t, "usd_per_hour", 0, "budget");
        f->in.spend_usd_hour =
            opt_number(L, t, "spend_usd_per_hour", f->in.spend_usd_hour, "budget");
        lua_pop(L, 1);
    }
    /* params go through JSON like production's params_json, with the same conversion. */
    if (get_field(L, 1, "params", LUA_TTABLE, "desc")) {
        cJSON *tree = NULL;
        struct sw_error err = {0};
        if (sw_lua_to_json(L, -1, "params", SPEC_PARAMS_MAX, &tree, &err) < 0)
            luaL_error(L, "testing.ctx: %s", err.msg);
        lua_pop(L, 1);
        char *text = cJSON_PrintUnformatted(tree);
        cJSON_Delete(tree);
        lua_pushstring(L, text);
        cJSON_free(text);
        sw_lua_push_json_text(L, lua_tostring(L, -1), SPEC_PARAMS_MAX, true, "ctx.params");
        lua_remove(L, -2);
    } else {
        sw_lua_push_json_text(L, NULL, 0, true, "ctx.params");
    }
    int params = lua_gettop(L);
    if (!get_field(L, 1, "state", LUA_TTABLE, "desc"))
        lua_newtable(L);
    int state = lua_gettop(L);
    sw_lua_ctx_new(L, params, state);
    int handle = lua_gettop(L);
    sw_lua_ctx_set_owner(L, handle, owner);
    sw_lua_ctx_refresh(L, handle, &f->in);
    sw_lua_ctx_push(L, handle);
    lua_pushvalue(L, handle);
    return 2;
}

/* native.load_policy(path) → module, {name = ..., interval_s = ...} */
static int l_native_load_policy(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct sw_error err = {0};
    size_t len = 0;
    char *text = sw_lua_sandbox_read_file(path, SW_LUA_MAX_SOURCE_BYTES, &len, &err);
    if (text == NULL)
        return luaL_error(L, "%s", err.msg);
    lua_pushfstring(L, "@%s", path);
    if (luaL_loadbufferx(L, text, len, lua_tostring(L, -1), "t") != LUA_OK) {
        free(text);
        return lua_error(L);
    }
    free(text);
    lua_call(L, 0, 1);
    struct sw_lua_policy_info info;
    if (sw_lua_check_policy_table(L, -1, path, &info, &err) < 0) {
        lua_pushstring(L, err.msg);
        return lua_error(L);
    }
    lua_createtable(L, 0, 2);
    lua_pushstring(L, info.name);
    free(info.name);
    lua_setfield(L, -2, "name");
    lua_pushnumber(L, (lua_Number)info.interval_ms / 1000.0);
    lua_setfield(L, -2, "interval_s");
    return 2;
}

static struct sw_lua_ctx *check_handle(lua_State *L, int idx)
{
    struct sw_lua_ctx *ctx = sw_lua_ctx_check(L, idx);
    if (ctx == NULL)
        luaL_error(L, "testing: expected a ctx handle");
    return ctx;
}

/* The input a handle points to, through its owner. */
static const struct sw_policy_input *handle_input(lua_State *L, int idx)
{
    check_handle(L, idx);
    sw_lua_ctx_push_owner(L, idx);
    struct fake_input *f = luaL_testudata(L, -1, FAKE_INPUT_META);
    lua_pop(L, 1);
    if (f == NULL)
        luaL_error(L, "testing: this ctx has no fake input");
    return &f->in;
}

/* native.check_desired(desired, handle) → normalized copy, or raises the production
 * message. */
static int l_native_check_desired(lua_State *L)
{
    const struct sw_policy_input *in = handle_input(L, 2);
    struct sw_desired desired;
    sw_desired_init(&desired);
    struct sw_error err = {0};
    int rc = sw_lua_check_desired(L, 1, in->groups, in->group_count, &desired, &err);
    if (rc < 0) {
        lua_pushstring(L, err.msg);
        return lua_error(L);
    }
    /* Copy into Lua scratch first so nothing leaks if building the result raises. */
    char *json = sw_desired_to_json(&desired);
    sw_desired_clear(&desired);
    lua_pushstring(L, json);
    free(json);
    sw_lua_push_json_text(L, lua_tostring(L, -1), SIZE_MAX, false, "desired");
    return 1;
}

/* native.explanations(handle) → {{group =, region =, text =}, ...} recorded so far */
static int l_native_explanations(lua_State *L)
{
    struct sw_lua_ctx *ctx = check_handle(L, 1);
    size_t count = 0;
    const struct sw_explanation *list = sw_lua_ctx_explanations(ctx, &count);
    lua_createtable(L, (int)count, 0);
    for (size_t i = 0; i < count; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, list[i].group);
        lua_setfield(L, -2, "group");
        if (list[i].region != NULL) {
            lua_pushstring(L, list[i].region);
            lua_setfield(L, -2, "region");
        }
        lua_pushstring(L, list[i].text);
        lua_setfield(L, -2, "text");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* native.check_state(t): raises what a policy call would fail with for this ctx.state. */
static int l_native_check_state(lua_State *L)
{
    struct sw_error err = {0};
    if (sw_lua_to_json(L, 1, "ctx.state", SW_POLICY_STATE_MAX_BYTES, NULL, &err) < 0) {
        lua_pushstring(L, err.msg);
        return lua_error(L);
    }
    return 0;
}

/* native.roundtrip(t) → t through JSON, as ctx.state goes to the journal and back. */
static int l_native_roundtrip(lua_State *L)
{
    struct sw_error err = {0};
    cJSON *tree = NULL;
    if (sw_lua_to_json(L, 1, "value", SW_POLICY_STATE_MAX_BYTES, &tree, &err) < 0) {
        lua_pushstring(L, err.msg);
        return lua_error(L);
    }
    char *text = cJSON_PrintUnformatted(tree);
    cJSON_Delete(tree);
    lua_pushstring(L, text);
    cJSON_free(text);
    sw_lua_push_json_text(L, lua_tostring(L, -1), SIZE_MAX, false, "value");
    return 1;
}

static int l_native_set_now(lua_State *L)
{
    sw_lua_sandbox_set_now(sw_lua_sandbox_of(L), (int64_t)luaL_checknumber(L, 1));
    return 0;
}

static int l_native_read_file(lua_State *L)
{
    struct sw_error err = {0};
    size_t len = 0;
    char *text =
        sw_lua_sandbox_read_file(luaL_checkstring(L, 1), SW_LUA_MAX_SOURCE_BYTES, &len, &err);
    if (text == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushlstring(L, text, len);
    free(text);
    return 1;
}

static int l_native_lua_path(lua_State *L)
{
    lua_pushstring(L, sw_lua_sandbox_lua_path(sw_lua_sandbox_of(L)));
    return 1;
}

/* ---- runner ---------------------------------------------------------------------------- */

struct runner {
    const char *spec;
    const char *text;
    size_t len;
    lua_Integer test_count;
    lua_Integer index;
    char *test_name;
};

static void runner_log(void *ud, int level, const char *msg)
{
    (void)ud;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    printf("    [%s] %s\n", level >= 0 && level < 4 ? names[level] : "log", msg);
}

static int setup_trampoline(lua_State *L)
{
    struct runner *r = lua_touserdata(L, 1);
    luaL_newmetatable(L, FAKE_INPUT_META);
    lua_pushcfunction(L, fake_input_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    static const luaL_Reg natives[] = {
        {"ctx", l_native_ctx},
        {"load_policy", l_native_load_policy},
        {"check_desired", l_native_check_desired},
        {"explanations", l_native_explanations},
        {"check_state", l_native_check_state},
        {"roundtrip", l_native_roundtrip},
        {"set_now", l_native_set_now},
        {"read_file", l_native_read_file},
        {"lua_path", l_native_lua_path},
        {NULL, NULL},
    };
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    luaL_newlib(L, natives);
    lua_setfield(L, -2, NATIVE_MODULE);
    lua_pop(L, 1);
    /* describe/it/expect as globals, busted-style. */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "steward.testing");
    lua_call(L, 1, 1);
    static const char *const globals[] = {"describe", "it", "expect"};
    for (size_t i = 0; i < SW_ARRAY_LEN(globals); i++) {
        lua_getfield(L, -1, globals[i]);
        lua_setglobal(L, globals[i]);
    }
    lua_getfield(L, -1, "_tests");
    r->test_count = (lua_Integer)lua_rawlen(L, -1);
    lua_pop(L, 2);
    lua_pushfstring(L, "@%s", r->spec);
    sw_lua_sandbox_load(L, r->text, r->len, lua_tostring(L, -1));
    lua_call(L, 0, 0);
    return 0;
}

static int count_trampoline(lua_State *L)
{
    struct runner *r = lua_touserdata(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "steward.testing");
    lua_getfield(L, -1, "_tests");
    r->test_count = (lua_Integer)lua_rawlen(L, -1);
    lua_pop(L, 3);
    return 0;
}

static int run_trampoline(lua_State *L)
{
    struct runner *r = lua_touserdata(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "steward.testing");
    int testing = lua_gettop(L);
    lua_getfield(L, testing, "_tests");
    lua_rawgeti(L, -1, r->index);
    lua_getfield(L, -1, "name");
    free(r->test_name);
    r->test_name = sw_xstrdup(lua_tostring(L, -1));
    lua_settop(L, testing);
    lua_getfield(L, testing, "_run");
    lua_pushinteger(L, r->index);
    lua_call(L, 1, 0);
    return 0;
}

static void print_failure(const char *name, const char *msg)
{
    printf("FAIL %s\n", name);
    const char *line = msg;
    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        int len = end ? (int)(end - line) : (int)strlen(line);
        printf("    %.*s\n", len, line);
        if (end == NULL)
            break;
        line = end + 1;
    }
}

int sw_policy_test_main(const char *spec_path, const char *lua_path)
{
    struct sw_error err = {0};
    size_t len = 0;
    char *text = sw_lua_sandbox_read_file(spec_path, SW_LUA_MAX_SOURCE_BYTES, &len, &err);
    if (text == NULL) {
        printf("test-policy: %s\n", err.msg);
        return 2;
    }
    /* Specs drive whole simulated days: budgets per test, larger than a policy call's. */
    struct sw_lua_sandbox_opts opts = {
        .name = "test-policy",
        .lua_path = lua_path,
        .with_testing = true,
        .seed = 1,
        .max_instructions = 100000000,
        .memory_limit = 256u * 1024u * 1024u,
        .time_limit_ms = 30000,
        .log_fn = runner_log,
    };
    struct sw_lua_sandbox *sb = sw_lua_sandbox_new(&opts, &err);
    if (sb == NULL) {
        printf("test-policy: %s\n", err.msg);
        free(text);
        return 2;
    }
    sw_lua_sandbox_set_now(sb, DEFAULT_NOW_MS);
    struct runner r = {.spec = spec_path, .text = text, .len = len};
    int passed = 0, failed = 0;
    if (sw_lua_sandbox_call(sb, setup_trampoline, &r, true, &err) < 0) {
        print_failure(spec_path, sw_lua_sandbox_last_error(sb));
        failed++;
    }
    if (sw_lua_sandbox_call(sb, count_trampoline, &r, false, &err) < 0)
        r.test_count = 0;
    for (r.index = 1; r.index <= r.test_count; r.index++) {
        int rc = sw_lua_sandbox_call(sb, run_trampoline, &r, true, &err);
        const char *name = r.test_name ? r.test_name : "?";
        if (rc == 0) {
            printf("ok   %s\n", name);
            passed++;
        } else {
            print_failure(name, sw_lua_sandbox_last_error(sb));
            failed++;
        }
        fflush(stdout);
    }
    if (passed + failed == 0) {
        printf("FAIL %s: no tests (use describe/it)\n", spec_path);
        failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    free(r.test_name);
    free(text);
    sw_lua_sandbox_free(sb);
    return failed > 0 ? 1 : 0;
}
