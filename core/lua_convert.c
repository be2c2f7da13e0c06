#include "lua_convert.h"

#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define PATH_MAX_LEN 200
#define MAX_EXACT_INT 9007199254740992.0 /* 2^53: doubles hold integers exactly up to here */

/* ---- paths ---------------------------------------------------------------------------- */

static bool is_identifier(const char *s)
{
    if (s[0] == '\0' || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return false;
    return true;
}

void sw_lua_path_append_key(char *buf, size_t cap, const char *key)
{
    size_t len = strlen(buf);
    if (len >= cap)
        return;
    if (is_identifier(key))
        snprintf(buf + len, cap - len, ".%s", key);
    else
        snprintf(buf + len, cap - len, "[\"%s\"]", key);
}

void sw_lua_path_append_index(char *buf, size_t cap, lua_Integer index)
{
    size_t len = strlen(buf);
    if (len < cap)
        snprintf(buf + len, cap - len, "[%lld]", (long long)index);
}

/* ---- read-only proxies ---------------------------------------------------------------- */

static int ro_newindex(lua_State *L)
{
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__path");
    return luaL_error(L, "%s is read-only", lua_tostring(L, -1));
}

static int ro_len(lua_State *L)
{
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__index");
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

/* The iterator keeps the data table in an upvalue: handing it out as pairs' state value
 * would let `local _, data = pairs(t)` write behind the proxy. */
static int ro_next(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1)) != 0)
        return 2;
    lua_pushnil(L);
    return 1;
}

void sw_lua_push_pairs(lua_State *L, int data_idx)
{
    lua_pushvalue(L, data_idx);
    lua_pushcclosure(L, ro_next, 1);
    lua_pushnil(L);
    lua_pushnil(L);
}

static int ro_pairs(lua_State *L)
{
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__index");
    sw_lua_push_pairs(L, lua_gettop(L));
    return 3;
}

void sw_lua_push_readonly(lua_State *L, int data_idx, const char *path)
{
    data_idx = lua_absindex(L, data_idx);
    lua_createtable(L, 0, 0);
    lua_createtable(L, 0, 6);
    lua_pushvalue(L, data_idx);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, ro_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, ro_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, "read-only");
    lua_setfield(L, -2, "__metatable");
    lua_pushstring(L, path);
    lua_setfield(L, -2, "__path");
    lua_setmetatable(L, -2);
}

void sw_lua_readonly_data(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx)) {
        lua_pushnil(L);
        return;
    }
    lua_getfield(L, -1, "__newindex");
    bool ours = lua_tocfunction(L, -1) == ro_newindex;
    lua_pop(L, 1);
    if (!ours) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return;
    }
    lua_getfield(L, -1, "__index");
    lua_remove(L, -2);
}

/* Wrap the data table on top of the stack into a proxy, replacing it. */
static void seal_top(lua_State *L, const char *path)
{
    sw_lua_push_readonly(L, -1, path);
    lua_remove(L, -2);
}

static void set_string(lua_State *L, const char *key, const char *value)
{
    if (value == NULL)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

static void set_number(lua_State *L, const char *key, double value)
{
    lua_pushnumber(L, value);
    lua_setfield(L, -2, key);
}

static void set_integer(lua_State *L, const char *key, lua_Integer value)
{
    lua_pushinteger(L, value);
    lua_setfield(L, -2, key);
}

static void set_bool(lua_State *L, const char *key, bool value)
{
    lua_pushboolean(L, value);
    lua_setfield(L, -2, key);
}

/* ---- C → Lua ------------------------------------------------------------------------------ */

double sw_lua_lease_age_s(const struct sw_unit *u, int64_t now_ms)
{
    if (u->ordered_ms <= 0 || now_ms <= u->ordered_ms)
        return 0.0;
    return (double)(now_ms - u->ordered_ms) / 1000.0;
}

void sw_lua_push_lease(lua_State *L, const struct sw_unit *u, int64_t now_ms, lua_Integer index)
{
    char path[PATH_MAX_LEN] = "ctx.leases";
    sw_lua_path_append_index(path, sizeof(path), index);
    lua_createtable(L, 0, 12);
    set_string(L, "key", u->key);
    set_string(L, "market_id", u->market_id);
    set_string(L, "group", u->group);
    set_string(L, "region", u->region);
    set_string(L, "provider", u->provider);
    set_number(L, "price_usd_hour", u->price_usd_hour);
    set_string(L, "state", sw_unit_state_name(u->state));
    set_bool(L, "ready", u->state == SW_UNIT_READY);
    set_bool(L, "pending", sw_unit_is_pending(u));
    set_bool(L, "healthy", !u->unhealthy);
    set_number(L, "age_s", sw_lua_lease_age_s(u, now_ms));
    lua_createtable(L, (int)u->uri_count, 0);
    for (size_t i = 0; i < u->uri_count; i++) {
        lua_pushstring(L, u->uris[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    size_t len = strlen(path);
    snprintf(path + len, sizeof(path) - len, ".uris");
    seal_top(L, path);
    lua_setfield(L, -2, "uris");
    path[len] = '\0';
    seal_top(L, path);
}

void sw_lua_push_leases(lua_State *L, const struct sw_units *units, int64_t now_ms)
{
    size_t count = units != NULL ? units->count : 0;
    lua_createtable(L, (int)count, 0);
    lua_Integer n = 0;
    for (size_t i = 0; i < count; i++) {
        const struct sw_unit *u = units->items[i];
        if (u->state == SW_UNIT_CLOSED)
            continue;
        sw_lua_push_lease(L, u, now_ms, n + 1);
        lua_rawseti(L, -2, ++n);
    }
    seal_top(L, "ctx.leases");
}

void sw_lua_push_offers(lua_State *L, const struct sw_offers *offers)
{
    size_t count = offers != NULL ? offers->count : 0;
    lua_createtable(L, (int)count, 0);
    char path[PATH_MAX_LEN];
    for (size_t i = 0; i < count; i++) {
        const struct sw_offer *o = &offers->items[i];
        lua_createtable(L, 0, 4);
        set_string(L, "provider", o->provider);
        set_string(L, "region", o->region);
        set_number(L, "price_usd_hour", o->price_usd_hour);
        set_bool(L, "audited", o->audited);
        snprintf(path, sizeof(path), "ctx.offers[%zu]", i + 1);
        seal_top(L, path);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    seal_top(L, "ctx.offers");
}

void sw_lua_push_groups(lua_State *L, const struct sw_group_config *groups, size_t count)
{
    lua_createtable(L, 0, (int)count);
    char path[PATH_MAX_LEN];
    for (size_t i = 0; i < count; i++) {
        const struct sw_group_config *g = &groups[i];
        if (g->name == NULL)
            continue;
        snprintf(path, sizeof(path), "ctx.groups");
        sw_lua_path_append_key(path, sizeof(path), g->name);
        lua_createtable(L, 0, 7);
        set_string(L, "name", g->name);
        set_integer(L, "min", g->min);
        set_integer(L, "max", g->max);
        set_number(L, "max_price_usd_hour", g->max_price_usd_hour);
        set_number(L, "scale_up_cooldown_s", (double)g->scale_up_cooldown_ms / 1000.0);
        set_number(L, "scale_down_cooldown_s", (double)g->scale_down_cooldown_ms / 1000.0);
        lua_createtable(L, (int)g->region_count, 0);
        for (size_t r = 0; r < g->region_count; r++) {
            lua_pushstring(L, g->regions[r]);
            lua_rawseti(L, -2, (lua_Integer)r + 1);
        }
        size_t len = strlen(path);
        snprintf(path + len, sizeof(path) - len, ".regions");
        seal_top(L, path);
        lua_setfield(L, -2, "regions");
        path[len] = '\0';
        seal_top(L, path);
        lua_setfield(L, -2, g->name);
    }
    seal_top(L, "ctx.groups");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void sw_lua_push_offer_regions(lua_State *L, const struct sw_offers *offers)
{
    size_t count = offers != NULL ? offers->count : 0;
    /* Scratch space owned by Lua, so a memory error while pushing cannot leak it. */
    const char **regions = lua_newuserdatauv(L, (count ? count : 1) * sizeof(char *), 0);
    size_t n_regions = 0;
    for (size_t i = 0; i < count; i++)
        if (offers->items[i].region != NULL)
            regions[n_regions++] = offers->items[i].region;
    count = n_regions;
    if (count > 1)
        qsort(regions, count, sizeof(char *), cmp_str);
    lua_createtable(L, (int)count, 0);
    lua_Integer n = 0;
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && strcmp(regions[i], regions[i - 1]) == 0)
            continue;
        lua_pushstring(L, regions[i]);
        lua_rawseti(L, -2, ++n);
    }
    lua_remove(L, -2);
}

void sw_lua_push_samples(lua_State *L, const struct sw_metric *metric)
{
    lua_createtable(L, (int)metric->sample_count, 0);
    for (size_t i = 0; i < metric->sample_count; i++) {
        const struct sw_sample *s = &metric->samples[i];
        lua_createtable(L, 0, 2);
        lua_createtable(L, 0, (int)s->label_count);
        for (size_t j = 0; j < s->label_count; j++) {
            if (s->label_names[j] == NULL)
                continue;
            lua_pushstring(L, s->label_values[j]);
            lua_setfield(L, -2, s->label_names[j]);
        }
        lua_setfield(L, -2, "labels");
        set_number(L, "value", s->value);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* The value of label `name` on a sample; "" when it has none (the last one when repeated).
 * Borrowed from the sample. */
static const char *sample_label(const struct sw_sample *s, const char *name)
{
    const char *value = "";
    for (size_t j = 0; j < s->label_count; j++)
        if (s->label_names[j] != NULL && s->label_values[j] != NULL &&
            strcmp(s->label_names[j], name) == 0)
            value = s->label_values[j];
    return value;
}

void sw_lua_push_sum_by(lua_State *L, const struct sw_metric *metric, const char *label)
{
    /* Sized for a distinct label value per sample (the usual case: one series per region),
     * so no insert rehashes the table (growing it from 4 was most of the call). Only the
     * order pairs visits the keys in can differ from a table grown key by key, and that
     * order already changes from run to run (Lua seeds its string hashes per state). The
     * key is made once per sample; raw access skips metamethod lookups on a plain table. */
    size_t size = metric->sample_count < 4      ? 4
                  : metric->sample_count > 4096 ? 4096
                                                : metric->sample_count;
    lua_createtable(L, 0, (int)size);
    int sums = lua_gettop(L);
    for (size_t i = 0; i < metric->sample_count; i++) {
        const struct sw_sample *s = &metric->samples[i];
        lua_pushstring(L, sample_label(s, label));
        lua_pushvalue(L, -1);
        lua_rawget(L, sums);
        double sum = lua_tonumber(L, -1) + s->value;
        lua_pop(L, 1);
        lua_pushnumber(L, sum);
        lua_rawset(L, sums);
    }
}

void sw_lua_push_sum_by_keyed(lua_State *L, const struct sw_metric *metric, const char *label,
                              int keys_idx, bool fill, size_t *key_of, size_t *distinct,
                              double *sums)
{
    if (fill) {
        lua_createtable(L, 0, 4); /* key → 1-based position in keys */
        int seen = lua_gettop(L);
        size_t d = 0;
        for (size_t i = 0; i < metric->sample_count; i++) {
            lua_pushstring(L, sample_label(&metric->samples[i], label));
            lua_pushvalue(L, -1);
            if (lua_rawget(L, seen) == LUA_TNUMBER) {
                key_of[i] = (size_t)lua_tointeger(L, -1) - 1;
                lua_pop(L, 2);
                continue;
            }
            lua_pop(L, 1);
            key_of[i] = d++;
            lua_pushvalue(L, -1);
            lua_rawseti(L, keys_idx, (lua_Integer)d);
            lua_pushinteger(L, (lua_Integer)d);
            lua_rawset(L, seen);
        }
        lua_pop(L, 1);
        *distinct = d;
    }
    /* Each key's sum starts at 0 and takes its samples in order, as the table's did
     * (nil read as 0, then + value); each key goes in once, at its first sample's turn. */
    for (size_t k = 0; k < *distinct; k++)
        sums[k] = 0;
    for (size_t i = 0; i < metric->sample_count; i++)
        sums[key_of[i]] += metric->samples[i].value;
    size_t size = metric->sample_count < 4      ? 4
                  : metric->sample_count > 4096 ? 4096
                                                : metric->sample_count;
    lua_createtable(L, 0, (int)size);
    for (size_t k = 0; k < *distinct; k++) {
        lua_rawgeti(L, keys_idx, (lua_Integer)k + 1);
        lua_pushnumber(L, sums[k]);
        lua_rawset(L, -3);
    }
}

static void push_json_number(lua_State *L, double d)
{
    if (isfinite(d) && floor(d) == d && fabs(d) <= MAX_EXACT_INT)
        lua_pushinteger(L, (lua_Integer)d);
    else
        lua_pushnumber(L, d);
}

static void push_json(lua_State *L, const cJSON *item, int depth, char *path, size_t cap)
{
    if (depth > SW_LUA_MAX_DEPTH)
        luaL_error(L, "%s: JSON nested deeper than %d levels", path ? path : "JSON",
                   SW_LUA_MAX_DEPTH);
    luaL_checkstack(L, 4, "JSON nesting");
    if (cJSON_IsString(item)) {
        lua_pushstring(L, item->valuestring);
    } else if (cJSON_IsNumber(item)) {
        push_json_number(L, item->valuedouble);
    } else if (cJSON_IsBool(item)) {
        lua_pushboolean(L, cJSON_IsTrue(item));
    } else if (cJSON_IsArray(item) || cJSON_IsObject(item)) {
        bool array = cJSON_IsArray(item);
        int n = cJSON_GetArraySize(item);
        lua_createtable(L, array ? n : 0, array ? 0 : n);
        size_t len = path ? strlen(path) : 0;
        lua_Integer index = 0;
        const cJSON *child;
        cJSON_ArrayForEach(child, item)
        {
            index++;
            if (cJSON_IsNull(child))
                continue;
            if (path != NULL) {
                if (array)
                    sw_lua_path_append_index(path, cap, index);
                else
                    sw_lua_path_append_key(path, cap, child->string);
            }
            push_json(L, child, depth + 1, path, cap);
            if (path != NULL)
                path[len] = '\0';
            if (array)
                lua_rawseti(L, -2, index);
            else
                lua_setfield(L, -2, child->string);
        }
        if (path != NULL)
            seal_top(L, path);
    } else {
        lua_pushnil(L);
    }
}

void sw_lua_push_json(lua_State *L, const cJSON *item)
{
    push_json(L, item, 0, NULL, 0);
}

void sw_lua_push_json_readonly(lua_State *L, const cJSON *item, const char *path)
{
    char buf[PATH_MAX_LEN];
    snprintf(buf, sizeof(buf), "%s", path);
    push_json(L, item, 0, buf, sizeof(buf));
}

/* The tree is parsed into a full userdata whose __gc frees it, so a Lua error while
 * pushing (memory) cannot leak it. */
static int json_tree_gc(lua_State *L)
{
    cJSON **tree = lua_touserdata(L, 1);
    cJSON_Delete(*tree);
    *tree = NULL;
    return 0;
}

void sw_lua_push_json_text(lua_State *L, const char *text, size_t max_bytes, bool readonly,
                           const char *what)
{
    if (text == NULL) {
        lua_newtable(L);
        if (readonly)
            seal_top(L, what);
        return;
    }
    size_t len = strlen(text);
    if (len > max_bytes)
        luaL_error(L, "%s: JSON larger than %d bytes", what, (int)max_bytes);
    cJSON **tree = lua_newuserdatauv(L, sizeof(cJSON *), 0);
    *tree = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, json_tree_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    *tree = cJSON_ParseWithLength(text, len);
    if (*tree == NULL)
        luaL_error(L, "%s: invalid JSON", what);
    if (readonly)
        sw_lua_push_json_readonly(L, *tree, what);
    else
        sw_lua_push_json(L, *tree);
    cJSON_Delete(*tree);
    *tree = NULL;
    lua_remove(L, -2);
}

void sw_lua_fill_from_json(lua_State *L, int idx, const cJSON *object)
{
    idx = lua_absindex(L, idx);
    /* Clearing fields that exist while traversing is allowed by lua_next. */
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, idx);
    }
    bool array = cJSON_IsArray(object);
    lua_Integer index = 0;
    const cJSON *child;
    cJSON_ArrayForEach(child, object)
    {
        index++;
        if (cJSON_IsNull(child) || (!array && child->string == NULL))
            continue;
        if (array)
            lua_pushinteger(L, index);
        else
            lua_pushstring(L, child->string);
        push_json(L, child, 1, NULL, 0);
        lua_rawset(L, idx);
    }
}

/* ---- Lua → C: desired ------------------------------------------------------------------- */

static void describe_value(lua_State *L, int idx, char *buf, size_t cap)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        if (lua_isinteger(L, idx))
            snprintf(buf, cap, "%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(buf, cap, "%.14g", (double)lua_tonumber(L, idx));
    } else {
        snprintf(buf, cap, "%s", luaL_typename(L, idx));
    }
}

static const struct sw_group_config *find_group(const struct sw_group_config *groups, size_t count,
                                                const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (groups[i].name != NULL && strcmp(groups[i].name, name) == 0)
            return &groups[i];
    return NULL;
}

/* Paths are only formatted when something is wrong: validation runs every tick. */
static const char *desired_path(char *buf, size_t cap, const char *group, const char *region)
{
    snprintf(buf, cap, "desired");
    sw_lua_path_append_key(buf, cap, group);
    if (region != NULL)
        sw_lua_path_append_key(buf, cap, region);
    return buf;
}

static int unknown_group(const struct sw_group_config *groups, size_t count, const char *group,
                         struct sw_error *err)
{
    char names[160] = "";
    size_t len = 0;
    for (size_t i = 0; i < count && len < sizeof(names); i++)
        len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "",
                                groups[i].name);
    char path[PATH_MAX_LEN];
    return sw_error_set(err, SW_EPOLICY, "%s: unknown group (configured: %s)",
                        desired_path(path, sizeof(path), group, NULL), count ? names : "none");
}

/* Validated entries, kept until the whole table passed and then handed to the desired
 * state sorted (sw_desired_assign_sorted: no searching, and no allocation when the keys
 * are the same as last tick). The strings are the Lua table's keys or the configuration's
 * names: both outlive the check. Up to PENDING_INLINE entries live on the C stack: a
 * per-tick heap block of a kilobyte or more makes glibc consolidate its fast bins. */
#define PENDING_INLINE 128

struct pending_entry {
    struct sw_desired_entry e;
    size_t seen; /* position in lua_next order */
};

struct pending {
    struct pending_entry *items;
    size_t count;
    size_t cap;
    struct pending_entry inline_items[PENDING_INLINE];
};

static void pending_add(struct pending *p, const char *group, const char *region, int count)
{
    if (p->count == p->cap) {
        size_t cap = p->cap * 2;
        if (p->items == p->inline_items) {
            p->items = sw_xmalloc(cap * sizeof(*p->items));
            memcpy(p->items, p->inline_items, p->count * sizeof(*p->items));
        } else {
            p->items = sw_xrealloc(p->items, cap * sizeof(*p->items));
        }
        p->cap = cap;
    }
    p->items[p->count] = (struct pending_entry){{(char *)group, (char *)region, count}, p->count};
    p->count++;
}

static bool pending_before(const struct pending_entry *a, const struct pending_entry *b)
{
    /* One group's keys are one Lua string: equal pointers, no compare. */
    int c = a->e.group == b->e.group ? 0 : strcmp(a->e.group, b->e.group);
    return (c != 0 ? c : strcmp(a->e.region, b->e.region)) < 0;
}

/* Merge sort through tmp (glibc's qsort allocates its own buffer past a kilobyte). */
static void pending_sort(struct pending_entry *items, struct pending_entry *tmp, size_t count)
{
    if (count < 2)
        return;
    size_t half = count / 2;
    pending_sort(items, tmp, half);
    pending_sort(items + half, tmp, count - half);
    if (!pending_before(&items[half], &items[half - 1]))
        return;
    size_t i = 0, j = half, k = 0;
    while (i < half && j < count)
        tmp[k++] = pending_before(&items[j], &items[i]) ? items[j++] : items[i++];
    while (i < half)
        tmp[k++] = items[i++];
    while (j < count)
        tmp[k++] = items[j++];
    memcpy(items, tmp, count * sizeof(*items));
}

void sw_lua_desired_hint_free(struct sw_lua_desired_hint *hint)
{
    if (hint == NULL)
        return;
    free(hint->slot);
    free(hint->lua_names);
    free(hint->entry_names);
    memset(hint, 0, sizeof(*hint));
}

static const void *main_thread(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    const void *main = lua_tothread(L, -1);
    lua_pop(L, 1);
    return main;
}

/* Same content as the entry name `have`, where `lua` is the string Lua gave at position
 * `at` (0 group, 1 region) of entry k. */
static bool same_name(const struct sw_lua_desired_hint *hint, bool by_pointer, size_t k, int at,
                      const char *have, const char *lua)
{
    if (by_pointer && hint->lua_names[2 * k + at] == lua && hint->entry_names[2 * k + at] == have)
        return true;
    return strcmp(have, lua) == 0;
}

/* The entries, in lua_next order, are out's entries where the hint says: only the counts
 * may have changed, and they are written. */
static bool apply_same_keys(lua_State *L, struct pending *p, struct sw_desired *out,
                            const struct sw_lua_desired_hint *hint)
{
    if (hint == NULL || hint->count != p->count || out->count != p->count)
        return false;
    bool by_pointer = hint->lua_names != NULL && hint->state == main_thread(L);
    for (size_t k = 0; k < p->count; k++) {
        const struct sw_desired_entry *have = &out->entries[hint->slot[k]];
        if (!same_name(hint, by_pointer, k, 1, have->region, p->items[k].e.region) ||
            !same_name(hint, by_pointer, k, 0, have->group, p->items[k].e.group))
            return false;
    }
    for (size_t k = 0; k < p->count; k++)
        out->entries[hint->slot[k]].count = p->items[k].e.count;
    return true;
}

/* Records the Lua strings of p's entries (lua_next order) and the entry names they landed
 * on. C only: anchor_names makes them usable. */
static void remember_names(const struct pending *p, const struct sw_desired *out,
                           struct sw_lua_desired_hint *hint)
{
    size_t n = 2 * p->count;
    hint->state = NULL; /* until anchored */
    hint->lua_names = sw_xrealloc(hint->lua_names, (n ? n : 1) * sizeof(char *));
    hint->entry_names = sw_xrealloc(hint->entry_names, (n ? n : 1) * sizeof(char *));
    for (size_t i = 0; i < p->count; i++) {
        size_t k = p->items[i].seen;
        const struct sw_desired_entry *e = &out->entries[hint->slot[k]];
        hint->lua_names[2 * k] = p->items[i].e.group;
        hint->lua_names[2 * k + 1] = p->items[i].e.region;
        hint->entry_names[2 * k] = e->group;
        hint->entry_names[2 * k + 1] = e->region;
    }
}

/* Keeps the recorded strings alive in a registry table (keyed by the hint), so that while
 * it holds them no other string can take their addresses. Short strings only: Lua interns
 * those, so pushing the text again finds the very string (still a key of the table being
 * checked); any other is recorded as NULL and compared by content. May raise a memory
 * error: the hint is unusable (state NULL) until this completes. Nothing C-allocated is
 * live on the C stack when it runs. */
static void anchor_names(lua_State *L, struct sw_lua_desired_hint *hint)
{
    size_t n = 2 * hint->count;
    if (!lua_checkstack(L, 3))
        return;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const char *name = hint->lua_names[i];
        size_t len = strlen(name);
        const char *found = NULL;
        if (len <= 40) { /* LUAI_MAXSHORTLEN */
            found = lua_pushlstring(L, name, len);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        if (found != name)
            hint->lua_names[i] = NULL;
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, hint);
    hint->state = main_thread(L);
}

/* True when the keys were new (the hint was rebuilt and needs anchor_names). */
static bool assign_pending(lua_State *L, struct pending *p, struct sw_desired *out,
                           struct sw_lua_desired_hint *hint)
{
    if (apply_same_keys(L, p, out, hint))
        return false;
    struct pending_entry tmp_inline[PENDING_INLINE];
    struct pending_entry *tmp =
        p->count > PENDING_INLINE ? sw_xmalloc(p->count * sizeof(*tmp)) : tmp_inline;
    pending_sort(p->items, tmp, p->count);
    /* The sorted entries as a desired state's entries (borrowed strings), reusing tmp. */
    struct sw_desired_entry *sorted = (struct sw_desired_entry *)tmp;
    for (size_t i = 0; i < p->count; i++)
        sorted[i] = p->items[i].e;
    sw_desired_assign_sorted(out, sorted, p->count);
    if (hint != NULL) {
        if (hint->cap < p->count) {
            hint->cap = p->count;
            hint->slot = sw_xrealloc(hint->slot, hint->cap * sizeof(*hint->slot));
        }
        for (size_t i = 0; i < p->count; i++)
            hint->slot[p->items[i].seen] = i;
        hint->count = p->count;
        remember_names(p, out, hint);
    }
    if (tmp != tmp_inline)
        free(tmp);
    return hint != NULL;
}

static int check_regions(lua_State *L, int idx, const char *group, struct pending *out,
                         struct sw_error *err)
{
    char path[PATH_MAX_LEN];
    char got[64];
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            describe_value(L, -2, got, sizeof(got));
            lua_pop(L, 2);
            return sw_error_set(err, SW_EPOLICY, "%s[%s]: region names must be strings",
                                desired_path(path, sizeof(path), group, NULL), got);
        }
        const char *region = lua_tostring(L, -2);
        if (region[0] == '\0') {
            lua_pop(L, 2);
            return sw_error_set(err, SW_EPOLICY, "%s: region names must not be empty",
                                desired_path(path, sizeof(path), group, region));
        }
        /* An integer is read as one; a float (`x // 1` gives floats) as a float, which is
         * exact for the counts allowed, instead of by lua_tointegerx (three times the cost
         * on a float). Anything else gets lua_tointegerx's verdict, as the messages below
         * report it. */
        int is_int = 0;
        lua_Integer count = 0;
        if (lua_isinteger(L, -1)) {
            count = lua_tointeger(L, -1);
            is_int = 1;
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
            lua_Number d = lua_tonumberx(L, -1, NULL);
            if (d >= 0 && d <= SW_LUA_MAX_COUNT && (lua_Number)(int)d == d) {
                count = (lua_Integer)d;
                is_int = 1;
            } else {
                count = lua_tointegerx(L, -1, &is_int);
            }
        }
        if (!is_int || count < 0) {
            describe_value(L, -1, got, sizeof(got));
            desired_path(path, sizeof(path), group, region);
            lua_pop(L, 2);
            return sw_error_set(err, SW_EPOLICY, "%s: expected integer >= 0, got %s", path, got);
        }
        if (count > SW_LUA_MAX_COUNT) {
            desired_path(path, sizeof(path), group, region);
            lua_pop(L, 2);
            return sw_error_set(err, SW_EPOLICY, "%s: expected integer <= %d, got %lld", path,
                                SW_LUA_MAX_COUNT, (long long)count);
        }
        pending_add(out, group, region, (int)count);
        lua_pop(L, 1);
    }
    return 0;
}

int sw_lua_check_desired(lua_State *L, int idx, const struct sw_group_config *groups,
                         size_t group_count, struct sw_desired *out, struct sw_error *err)
{
    return sw_lua_check_desired_hinted(L, idx, groups, group_count, out, NULL, err);
}

int sw_lua_check_desired_hinted(lua_State *L, int idx, const struct sw_group_config *groups,
                                size_t group_count, struct sw_desired *out,
                                struct sw_lua_desired_hint *hint, struct sw_error *err)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) {
        sw_desired_clear(out);
        return sw_error_set(err, SW_EPOLICY,
                            "evaluate returned %s, expected a table {group = {region = count}}",
                            luaL_typename(L, idx));
    }
    if (!lua_checkstack(L, 4)) {
        sw_desired_clear(out);
        return sw_error_set(err, SW_EPOLICY, "desired: Lua stack exhausted");
    }
    char path[PATH_MAX_LEN];
    char got[64];
    int rc = 0;
    struct pending entries;
    entries.items = entries.inline_items;
    entries.count = 0;
    entries.cap = PENDING_INLINE;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            describe_value(L, -2, got, sizeof(got));
            lua_pop(L, 2);
            rc = sw_error_set(err, SW_EPOLICY, "desired[%s]: group names must be strings", got);
            break;
        }
        const char *group = lua_tostring(L, -2);
        const struct sw_group_config *gc = find_group(groups, group_count, group);
        if (gc == NULL) {
            rc = unknown_group(groups, group_count, group, err);
            lua_pop(L, 2);
            break;
        }
        if (lua_type(L, -1) != LUA_TTABLE) {
            describe_value(L, -1, got, sizeof(got));
            rc = sw_error_set(err, SW_EPOLICY, "%s: expected a table {region = count}, got %s",
                              desired_path(path, sizeof(path), group, NULL), got);
            lua_pop(L, 2);
            break;
        }
        size_t before = entries.count;
        rc = check_regions(L, lua_gettop(L), group, &entries, err);
        if (rc < 0) {
            lua_pop(L, 2);
            break;
        }
        /* `web = {}` means "none anywhere": without an entry the group would look unnamed
         * and keep its units, so spell the zeros out over its allowed regions. */
        if (entries.count == before)
            for (size_t r = 0; r < gc->region_count; r++)
                pending_add(&entries, gc->name, gc->regions[r], 0);
        lua_pop(L, 1);
    }
    bool anchor = false;
    if (rc == 0)
        anchor = assign_pending(L, &entries, out, hint);
    else
        sw_desired_clear(out);
    if (entries.items != entries.inline_items)
        free(entries.items);
    if (anchor)
        anchor_names(L, hint);
    return rc;
}

/* ---- Lua → JSON: plain data --------------------------------------------------------------- */

struct to_json {
    lua_State *L;
    bool build;
    size_t max_bytes;
    size_t bytes;
    const void *stack[SW_LUA_MAX_DEPTH + 1];
    int depth;
    struct sw_error *err;
    const char *root;
    /* Where the walk is: formatted only for an error message. */
    struct {
        const char *key; /* NULL: index */
        lua_Integer index;
    } seg[SW_LUA_MAX_DEPTH + 2];
    int nseg;
    char path[PATH_MAX_LEN];
};

static const char *path_of(struct to_json *c)
{
    snprintf(c->path, sizeof(c->path), "%s", c->root);
    for (int i = 0; i < c->nseg; i++) {
        if (c->seg[i].key != NULL)
            sw_lua_path_append_key(c->path, sizeof(c->path), c->seg[i].key);
        else
            sw_lua_path_append_index(c->path, sizeof(c->path), c->seg[i].index);
    }
    return c->path;
}

static int value_to_json(struct to_json *c, int idx, cJSON **out);

static int plain_data_error(struct to_json *c, const char *what)
{
    return sw_error_set(c->err, SW_EINVAL,
                        "%s: %s cannot be stored (plain data only: tables, strings, numbers, "
                        "booleans)",
                        path_of(c), what);
}

static int grow(struct to_json *c, size_t bytes)
{
    c->bytes += bytes;
    if (c->bytes > c->max_bytes)
        return sw_error_set(c->err, SW_ETOOBIG, "%s: larger than the %zu-byte limit", path_of(c),
                            c->max_bytes);
    return 0;
}

static int item_cmp(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* Relink an object's members in key order: lua_next order depends on the state's hash
 * seed, and the journal should not change when the state did not. */
static void sort_object(cJSON *object)
{
    size_t n = 0;
    for (cJSON *item = object->child; item != NULL; item = item->next)
        n++;
    if (n < 2)
        return;
    cJSON **items = sw_xcalloc(n, sizeof(cJSON *));
    size_t i = 0;
    for (cJSON *item = object->child; item != NULL; item = item->next)
        items[i++] = item;
    qsort(items, n, sizeof(cJSON *), item_cmp);
    object->child = NULL;
    for (i = 0; i < n; i++) {
        items[i]->next = items[i]->prev = NULL;
        cJSON_AddItemToArray(object, items[i]);
    }
    free(items);
}

/* If the table at idx is a read-only proxy, push its data table and return true, so
 * `ctx.state.x = ctx.params.y` stores the data rather than an empty proxy. Raw reads of
 * metamethod names: no allocation, no metamethods. */
static bool push_proxy_data(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return false;
    lua_pushliteral(L, "__newindex");
    lua_rawget(L, -2);
    bool proxy = lua_tocfunction(L, -1) == ro_newindex;
    lua_pop(L, 1);
    if (proxy) {
        lua_pushliteral(L, "__index");
        lua_rawget(L, -2);
        proxy = lua_type(L, -1) == LUA_TTABLE;
        lua_remove(L, -2);
        if (!proxy)
            lua_pop(L, 1);
        return proxy;
    }
    lua_pop(L, 1);
    return false;
}

static int table_to_json(struct to_json *c, int idx, cJSON **out)
{
    lua_State *L = c->L;
    if (!lua_checkstack(L, 8))
        return sw_error_set(c->err, SW_EINVAL, "%s: Lua stack exhausted", path_of(c));
    if (push_proxy_data(L, idx)) {
        int rc = table_to_json(c, lua_gettop(L), out);
        lua_pop(L, 1);
        return rc;
    }
    const void *self = lua_topointer(L, idx);
    for (int i = 0; i < c->depth; i++)
        if (c->stack[i] == self)
            return sw_error_set(c->err, SW_EINVAL, "%s: cycle (a table contains itself)",
                                path_of(c));
    if (c->depth >= SW_LUA_MAX_DEPTH)
        return sw_error_set(c->err, SW_EINVAL, "%s: nested deeper than %d levels", path_of(c),
                            SW_LUA_MAX_DEPTH);

    /* First pass: classify keys. */
    size_t string_keys = 0, int_keys = 0;
    lua_Integer max_index = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t key_len = 0;
            const char *key = lua_tolstring(L, -1, &key_len);
            if (strlen(key) != key_len) {
                lua_pop(L, 1);
                return sw_error_set(c->err, SW_EINVAL, "%s: a key with NUL bytes cannot be stored",
                                    path_of(c));
            }
            string_keys++;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            int_keys++;
            if (lua_tointeger(L, -1) > max_index)
                max_index = lua_tointeger(L, -1);
        } else {
            char got[64];
            describe_value(L, -1, got, sizeof(got));
            lua_pop(L, 1);
            return sw_error_set(c->err, SW_EINVAL,
                                "%s: key %s cannot be stored (keys are strings or integers "
                                ">= 1)",
                                path_of(c), got);
        }
    }
    if (string_keys > 0 && int_keys > 0)
        return sw_error_set(c->err, SW_EINVAL,
                            "%s: a table mixing string and integer keys cannot be stored",
                            path_of(c));
    c->stack[c->depth++] = self;
    int rc = 0;
    if (int_keys > 0) {
        /* Holes become nulls (restored as holes): each costs about 5 bytes. */
        if ((rc = grow(c, 2 + (size_t)(max_index - (lua_Integer)int_keys) * 5)) < 0)
            goto out;
        if (c->build)
            *out = cJSON_CreateArray();
        for (lua_Integer i = 1; i <= max_index; i++) {
            if (lua_rawgeti(L, idx, i) == LUA_TNIL) {
                lua_pop(L, 1);
                if (c->build)
                    cJSON_AddItemToArray(*out, cJSON_CreateNull());
                continue;
            }
            c->seg[c->nseg].key = NULL;
            c->seg[c->nseg++].index = i;
            cJSON *child = NULL;
            rc = value_to_json(c, lua_gettop(L), c->build ? &child : NULL);
            lua_pop(L, 1);
            c->nseg--;
            if (rc < 0) {
                cJSON_Delete(child);
                goto out;
            }
            if (c->build)
                cJSON_AddItemToArray(*out, child);
        }
    } else {
        if ((rc = grow(c, 2)) < 0)
            goto out;
        if (c->build)
            *out = cJSON_CreateObject();
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            const char *key = lua_tostring(L, -2);
            if ((rc = grow(c, strlen(key) + 4)) < 0) {
                lua_pop(L, 2);
                break;
            }
            c->seg[c->nseg++].key = key;
            cJSON *child = NULL;
            rc = value_to_json(c, lua_gettop(L), c->build ? &child : NULL);
            c->nseg--;
            if (rc < 0) {
                cJSON_Delete(child);
                lua_pop(L, 2);
                break;
            }
            if (c->build)
                cJSON_AddItemToObject(*out, key, child);
            lua_pop(L, 1);
        }
        if (rc == 0 && c->build)
            sort_object(*out);
    }
out:
    c->depth--;
    return rc;
}

static int value_to_json(struct to_json *c, int idx, cJSON **out)
{
    lua_State *L = c->L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len = 0;
        const char *s = lua_tolstring(L, idx, &len);
        if (strlen(s) != len)
            return plain_data_error(c, "a string with NUL bytes");
        if (c->build)
            *out = cJSON_CreateString(s);
        return grow(c, len + 2);
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            lua_Integer v = lua_tointeger(L, idx);
            if ((double)v > MAX_EXACT_INT || (double)v < -MAX_EXACT_INT)
                return sw_error_set(c->err, SW_EINVAL,
                                    "%s: integer %lld is too large to store exactly (|n| <= "
                                    "2^53)",
                                    path_of(c), (long long)v);
            if (c->build)
                *out = cJSON_CreateNumber((double)v);
            return grow(c, 20);
        } else {
            double d = lua_tonumber(L, idx);
            if (!isfinite(d))
                return plain_data_error(c, "NaN or an infinite number");
            if (c->build)
                *out = cJSON_CreateNumber(d);
            return grow(c, 24);
        }
    case LUA_TBOOLEAN:
        if (c->build)
            *out = cJSON_CreateBool(lua_toboolean(L, idx));
        return grow(c, 5);
    case LUA_TTABLE: {
        int rc = table_to_json(c, idx, out);
        if (rc < 0 && out != NULL) {
            cJSON_Delete(*out);
            *out = NULL;
        }
        return rc;
    }
    default: {
        char what[64];
        snprintf(what, sizeof(what), "a %s value", luaL_typename(L, idx));
        return plain_data_error(c, what);
    }
    }
}

/* ---- Lua → JSON: the quick check ----------------------------------------------------------
 * ctx.state is checked after every policy call, and nearly always passes. This walk only
 * answers "certainly storable": one lua_next pass per table, keys and values together in
 * lua_next order, no path bookkeeping, and it gives up at the first thing the exact walk
 * could reject; the caller then runs the exact walk, whose verdict and message stand. It
 * succeeds only when the exact walk does: the same rules for keys, values, proxies, cycles
 * and depth, and a byte count never below the exact walk's (which only grows, so a total
 * within the limit means it never went over on the way). */

struct quick_check {
    lua_State *L;
    size_t bytes;
    size_t max_bytes;
    const void *stack[SW_LUA_MAX_DEPTH + 1];
};

static bool has_nul(const char *s, size_t len)
{
    return memchr(s, '\0', len) != NULL;
}

/* A string, number or boolean at idx: adds its bytes. One type test and at most one
 * conversion per value: this runs for every entry of the state on every call. LUA_TTABLE
 * for a table (not counted yet), LUA_TNONE when the exact walk must decide. */
static inline int quick_scalar(lua_State *L, int idx, size_t *bytes)
{
    int type = lua_type(L, idx);
    switch (type) {
    case LUA_TNUMBER: {
        /* An integer within 2^53 converts exactly and a finite float passes. Beyond
         * that, whether it is an integer (too large) or a float (fine) is the exact
         * walk's to tell. Every number counts as a float's 24 bytes: over the exact
         * count, never under. */
        lua_Number d = lua_tonumberx(L, idx, NULL);
        *bytes += 24;
        return d <= MAX_EXACT_INT && d >= -MAX_EXACT_INT ? type : LUA_TNONE;
    }
    case LUA_TBOOLEAN:
        *bytes += 5;
        return type;
    case LUA_TSTRING: {
        size_t len = 0;
        const char *s = lua_tolstring(L, idx, &len);
        *bytes += len + 2;
        return has_nul(s, len) ? LUA_TNONE : type;
    }
    case LUA_TTABLE:
        return type;
    default:
        return LUA_TNONE;
    }
}

/* The table at idx (absolute), depth tables around it (table_to_json's c->depth on
 * entry); adds its bytes. */
static bool quick_table(struct quick_check *q, int idx, int depth)
{
    lua_State *L = q->L;
    if (push_proxy_data(L, idx)) {
        bool ok = quick_table(q, lua_gettop(L), depth);
        lua_pop(L, 1);
        return ok;
    }
    const void *self = lua_topointer(L, idx);
    for (int i = 0; i < depth; i++)
        if (q->stack[i] == self)
            return false;
    if (depth >= SW_LUA_MAX_DEPTH)
        return false;
    q->stack[depth] = self;
    bool string_keys = false;
    size_t int_keys = 0;
    lua_Integer max_index = 0;
    int key = lua_gettop(L) + 1, value = key + 1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        bool ok;
        if (lua_type(L, key) == LUA_TSTRING) {
            size_t len = 0;
            const char *name = lua_tolstring(L, key, &len);
            string_keys = true;
            q->bytes += len + 4;
            ok = !has_nul(name, len);
        } else {
            lua_Integer index = lua_isinteger(L, key) ? lua_tointeger(L, key) : 0;
            int_keys++;
            if (index > max_index)
                max_index = index;
            ok = index >= 1;
        }
        if (ok) {
            int type = quick_scalar(L, value, &q->bytes);
            ok = type != LUA_TNONE && (type != LUA_TTABLE || quick_table(q, value, depth + 1)) &&
                 q->bytes <= q->max_bytes;
        }
        if (!ok) {
            lua_settop(L, key - 1);
            return false;
        }
        lua_settop(L, key);
    }
    if (string_keys && int_keys > 0)
        return false;
    /* An array's holes become nulls of about 5 bytes each (table_to_json). */
    size_t holes = (size_t)(max_index - (lua_Integer)int_keys);
    if (holes > q->max_bytes / 5)
        return false;
    q->bytes += 2 + holes * 5;
    return q->bytes <= q->max_bytes;
}

/* True when the value at idx certainly converts within max_bytes; false: run the exact
 * walk to know (and to say why). */
static bool quick_check(lua_State *L, int idx, size_t max_bytes)
{
    /* Each level holds a key and a value, and a proxy's data table: room for all of them
     * at once, instead of a check per table. */
    if (!lua_checkstack(L, 4 * (SW_LUA_MAX_DEPTH + 2)))
        return false;
    struct quick_check q;
    q.L = L;
    q.bytes = 0;
    q.max_bytes = max_bytes;
    int top = lua_gettop(L);
    int type = quick_scalar(L, idx, &q.bytes);
    bool ok = type != LUA_TNONE && (type != LUA_TTABLE || quick_table(&q, idx, 0)) &&
              q.bytes <= max_bytes;
    lua_settop(L, top);
    return ok;
}

int sw_lua_to_json(lua_State *L, int idx, const char *path, size_t max_bytes, cJSON **out,
                   struct sw_error *err)
{
    idx = lua_absindex(L, idx);
    if (out == NULL && quick_check(L, idx, max_bytes))
        return 0;
    /* Fields set one by one: the stack, path and segment arrays (a kilobyte and more) are
     * written before they are read. */
    struct to_json c;
    c.L = L;
    c.build = out != NULL;
    c.max_bytes = max_bytes;
    c.bytes = 0;
    c.depth = 0;
    c.err = err;
    c.root = path;
    c.nseg = 0;
    cJSON *root = NULL;
    int rc = value_to_json(&c, idx, c.build ? &root : NULL);
    if (rc < 0) {
        cJSON_Delete(root);
        return rc;
    }
    if (out != NULL)
        *out = root;
    return 0;
}

/* ---- policy table ------------------------------------------------------------------- */

bool sw_lua_parse_duration(const char *text, int64_t *ms_out)
{
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (end == text || errno != 0 || !isfinite(value) || value <= 0)
        return false;
    double scale;
    if (*end == '\0' || strcmp(end, "s") == 0)
        scale = 1000;
    else if (strcmp(end, "ms") == 0)
        scale = 1;
    else if (strcmp(end, "m") == 0)
        scale = 60000;
    else if (strcmp(end, "h") == 0)
        scale = 3600000;
    else if (strcmp(end, "d") == 0)
        scale = 86400000;
    else
        return false;
    double ms = value * scale;
    if (ms < 1 || ms > 1e15)
        return false;
    *ms_out = (int64_t)llround(ms);
    return true;
}

int sw_lua_check_policy_table(lua_State *L, int idx, const char *file,
                              struct sw_lua_policy_info *info, struct sw_error *err)
{
    idx = lua_absindex(L, idx);
    memset(info, 0, sizeof(*info));
    if (lua_type(L, idx) != LUA_TTABLE)
        return sw_error_set(err, SW_EPOLICY,
                            "%s: a policy file must return a table {name = ..., evaluate = "
                            "function(ctx) ... end}, got %s",
                            file, luaL_typename(L, idx));
    int type = lua_getfield(L, idx, "evaluate");
    lua_pop(L, 1);
    if (type != LUA_TFUNCTION)
        return sw_error_set(err, SW_EPOLICY,
                            "%s: the policy table has no evaluate function (got %s)", file,
                            lua_typename(L, type));
    type = lua_getfield(L, idx, "on_event");
    lua_pop(L, 1);
    if (type != LUA_TNIL && type != LUA_TFUNCTION)
        return sw_error_set(err, SW_EPOLICY, "%s: on_event must be a function, got %s", file,
                            lua_typename(L, type));
    type = lua_getfield(L, idx, "interval");
    int64_t interval_ms = 0;
    bool ok = true;
    if (type == LUA_TNUMBER) {
        double secs = lua_tonumber(L, -1);
        ok = isfinite(secs) && secs * 1000 >= 1 && secs < 1e12;
        if (ok)
            interval_ms = (int64_t)llround(secs * 1000);
    } else if (type == LUA_TSTRING) {
        ok = sw_lua_parse_duration(lua_tostring(L, -1), &interval_ms);
    } else if (type != LUA_TNIL) {
        ok = false;
    }
    if (!ok) {
        char got[64];
        if (type == LUA_TSTRING)
            snprintf(got, sizeof(got), "\"%s\"", lua_tostring(L, -1));
        else
            describe_value(L, -1, got, sizeof(got));
        lua_pop(L, 1);
        return sw_error_set(err, SW_EPOLICY,
                            "%s: interval: expected a duration such as \"10s\" or a number of "
                            "seconds > 0, got %s",
                            file, got);
    }
    lua_pop(L, 1);
    type = lua_getfield(L, idx, "name");
    if (type != LUA_TNIL && type != LUA_TSTRING) {
        lua_pop(L, 1);
        return sw_error_set(err, SW_EPOLICY, "%s: name must be a string, got %s", file,
                            lua_typename(L, type));
    }
    info->name = type == LUA_TSTRING ? sw_xstrdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    info->interval_ms = interval_ms;
    return 0;
}
