/* lua_convert.h — every conversion between steward's C data and Lua values.
 *
 * Pushers build the tables policies see (read-only proxies for ctx data), checkers
 * validate what policies hand back field by field and name the Lua path in errors
 * (`desired.web["eu-west"]: expected integer >= 0, got -1`). After Neovim's converter.c.
 * Context: the pushers allocate Lua memory and may raise: call them inside
 * sw_lua_sandbox_call. The checkers never raise.
 */
#ifndef SW_LUA_CONVERT_H
#define SW_LUA_CONVERT_H

#include <cjson/cJSON.h>
#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "model.h"

/* Highest replica count a policy may ask for in one region. */
#define SW_LUA_MAX_COUNT 10000
/* Deepest JSON/Lua nesting converted either way. */
#define SW_LUA_MAX_DEPTH 32

/* ---- read-only proxies ---------------------------------------------------------------- */

/* Push an empty proxy for the table at data_idx: reads, pairs, ipairs and # see the data,
 * writes raise "<path> is read-only". path is copied. The metatable is protected
 * (getmetatable returns "read-only"). */
void sw_lua_push_readonly(lua_State *L, int data_idx, const char *path);
/* Push the data table behind a proxy made by sw_lua_push_readonly, or nil if the value at
 * idx is not one. */
void sw_lua_readonly_data(lua_State *L, int idx);
/* Push the three values a __pairs metamethod returns to iterate the table at data_idx
 * without exposing it. */
void sw_lua_push_pairs(lua_State *L, int data_idx);
/* Append a Lua path element to buf (".name" for identifiers, else ["key"]); truncates. */
void sw_lua_path_append_key(char *buf, size_t cap, const char *key);
void sw_lua_path_append_index(char *buf, size_t cap, lua_Integer index);

/* ---- C → Lua ---------------------------------------------------------------------------- */

/* ctx.leases[i].age_s: seconds since the unit was ordered (0 if unknown or future). */
double sw_lua_lease_age_s(const struct sw_unit *u, int64_t now_ms);
/* ctx.leases[i] for one unit: {key, market_id, group, region, provider, price_usd_hour,
 * state, ready, pending, healthy, age_s, uris}, read-only. */
void sw_lua_push_lease(lua_State *L, const struct sw_unit *u, int64_t now_ms, lua_Integer index);
/* ctx.leases: read-only array of the units that are not closed (units may be NULL). */
void sw_lua_push_leases(lua_State *L, const struct sw_units *units, int64_t now_ms);
/* ctx.offers: read-only array of {provider, region, price_usd_hour, audited}. */
void sw_lua_push_offers(lua_State *L, const struct sw_offers *offers);
/* ctx.groups: read-only map name → {name, min, max, regions, max_price_usd_hour,
 * scale_up_cooldown_s, scale_down_cooldown_s}. */
void sw_lua_push_groups(lua_State *L, const struct sw_group_config *groups, size_t count);
/* Sorted plain array of the distinct regions that have offers. */
void sw_lua_push_offer_regions(lua_State *L, const struct sw_offers *offers);
/* Plain array of {labels = {k = v}, value = n} for one metric's samples. */
void sw_lua_push_samples(lua_State *L, const struct sw_metric *metric);
/* Plain map label value → sum of values; samples without the label sum under "" (as
 * Prometheus' `sum by` does). */
void sw_lua_push_sum_by(lua_State *L, const struct sw_metric *metric, const char *label);
/* sw_lua_push_sum_by from a kept grouping of the samples: the distinct keys (label
 * values, or "") in order of first appearance at keys[1..*distinct] of the plain table at
 * keys_idx (an absolute index), and key_of[i] the 0-based position of sample i's key there.
 * fill: work both out first (key_of has sample_count entries). sums: scratch of
 * sample_count doubles. Same sums, added in the same order, and the same keys inserted in
 * the same order as sw_lua_push_sum_by. */
void sw_lua_push_sum_by_keyed(lua_State *L, const struct sw_metric *metric, const char *label,
                              int keys_idx, bool fill, size_t *key_of, size_t *distinct,
                              double *sums);

/* Push a JSON value as plain Lua data: objects → tables with string keys, arrays →
 * sequences (a null leaves a hole), integral numbers up to 2^53 → integers, null → nil.
 * Raises when nested deeper than SW_LUA_MAX_DEPTH. */
void sw_lua_push_json(lua_State *L, const cJSON *item);
/* Same, with every table a read-only proxy named by path ("ctx.params"). */
void sw_lua_push_json_readonly(lua_State *L, const cJSON *item, const char *path);
/* Parse JSON text (at most max_bytes) and push it as sw_lua_push_json does; raises a Lua
 * error naming what on bad input. NULL text pushes an empty table. */
void sw_lua_push_json_text(lua_State *L, const char *text, size_t max_bytes, bool readonly,
                           const char *what);

/* ---- Lua → C ---------------------------------------------------------------------------- */

/* Validate evaluate's return value at idx and make out hold it (its old contents are
 * replaced, reusing their storage when the keys did not change; left empty on error).
 * Returns 0 or SW_EPOLICY with the Lua path of the first problem in err:
 *   evaluate returned number, expected a table {group = {region = count}}
 *   desired.foo: unknown group (configured: web, batch)
 *   desired.web["eu-west"]: expected integer >= 0, got -1
 * Uses raw access only (no metamethods run) and never raises. */
int sw_lua_check_desired(lua_State *L, int idx, const struct sw_group_config *groups,
                         size_t group_count, struct sw_desired *out, struct sw_error *err);

/* Where each entry of the last converted table went in the sorted desired state, in the
 * order lua_next visited them. A policy returning the same groups and regions as last
 * tick (in a table built the same way, so visited in the same order) is then checked
 * against it entry by entry instead of being sorted again. Only a hint: every entry is
 * still compared by name. Zero it to start; sw_lua_desired_hint_free releases it. */
struct sw_lua_desired_hint {
    size_t *slot;
    size_t count;
    size_t cap;
    /* per entry (lua_next order) the group and region strings Lua handed over last
     * time (short strings only, kept alive by a table in the state's registry) and the
     * interned names of the desired entry they matched: the same Lua string against the
     * same entry name needs no strcmp. state: the main thread they belong to. */
    const char **lua_names;   /* 2 per entry: group, region; NULL: compare by content */
    const char **entry_names; /* 2 per entry */
    const void *state;
};
void sw_lua_desired_hint_free(struct sw_lua_desired_hint *hint);

/* sw_lua_check_desired with a hint kept by the caller across calls (NULL: none). out
 * should be what the previous call with this hint filled, for the hint to help. */
int sw_lua_check_desired_hinted(lua_State *L, int idx, const struct sw_group_config *groups,
                                size_t group_count, struct sw_desired *out,
                                struct sw_lua_desired_hint *hint, struct sw_error *err);

/* What a policy file's returned table declares besides its functions. */
struct sw_lua_policy_info {
    int64_t interval_ms; /* 0 when absent */
    char *name;          /* owned (free()), NULL when absent */
};

/* Validate the table a policy file returned (at idx): a table with an evaluate function,
 * an optional on_event function, optional string name and optional interval ("10s" or
 * seconds). Fills info on success. Returns 0 or SW_EPOLICY naming file in err. Call
 * inside sw_lua_sandbox_call (field reads may run metamethods). */
int sw_lua_check_policy_table(lua_State *L, int idx, const char *file,
                              struct sw_lua_policy_info *info, struct sw_error *err);
/* "250ms", "10s", "5m", "2h", "1d" or a plain number of seconds; > 0. */
bool sw_lua_parse_duration(const char *text, int64_t *ms_out);

/* Convert plain data at idx (tables with string keys or with integer keys >= 1, strings,
 * numbers, booleans) to JSON. Objects get sorted keys, so the text is deterministic.
 * A read-only proxy (a ctx table) converts as the data behind it.
 * With out == NULL only validates (cheaply; size is estimated). path names the root in
 * messages ("ctx.state"). Returns 0, SW_EINVAL (a function, userdata, cycle, NaN, mixed
 * keys, ...) or SW_ETOOBIG (over max_bytes) with err filled. On success *out is owned
 * by the caller (cJSON_Delete). Raw access only, allocates no Lua memory, never raises. */
int sw_lua_to_json(lua_State *L, int idx, const char *path, size_t max_bytes, cJSON **out,
                   struct sw_error *err);

/* Replace the contents of the table at idx with the fields of the JSON object or the
 * elements of the array (as sw_lua_push_json converts them), keeping the table's
 * identity. Raises on deep input. */
void sw_lua_fill_from_json(lua_State *L, int idx, const cJSON *object);

#endif /* SW_LUA_CONVERT_H */
