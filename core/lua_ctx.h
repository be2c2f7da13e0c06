/* lua_ctx.h — the ctx table a policy's evaluate(ctx) and on_event(ctx, ev) receive.
 *
 * Built once per policy and refreshed before each call: now/now_ms/budget are updated in
 * place, leases/offers/groups are converted lazily on first access in a call. The ctx and
 * its data tables are read-only proxies; ctx.state is the policy's own plain table.
 * Fields: now, now_ms, params, state, groups, leases, capacity, ready, offers, price,
 * regions, metrics {query, sum_by}, budget {usd_per_hour, spend_usd_per_hour}, probes, log,
 * warn, explain. docs/policies.md and lua/steward/meta.lua describe them.
 * regions, metrics {query, sum_by}, budget {usd_per_hour, spend_usd_per_hour}, providers,
 * log, warn, explain. docs/policies.md and lua/steward/meta.lua describe them.
 * Context: call everything inside sw_lua_sandbox_call (these push and may raise).
 */
#ifndef SW_LUA_CTX_H
#define SW_LUA_CTX_H

#include <lua.h>
#include <stddef.h>

#include "policy.h"

/* Lives in a Lua full userdata (the ctx handle); owned by the Lua state. */
struct sw_lua_ctx;

/* Most explanations kept per call, and the longest text kept (longer is truncated). */
#define SW_LUA_CTX_MAX_EXPLANATIONS 256
#define SW_LUA_CTX_MAX_EXPLANATION_LEN 1024

/* Build a ctx and push its handle (a userdata; keep it referenced while the ctx is in
 * use). params_idx: the ctx.params value (usually a read-only proxy); state_idx: the
 * ctx.state table. Returns the handle's C side, valid as long as the handle lives. */
struct sw_lua_ctx *sw_lua_ctx_new(lua_State *L, int params_idx, int state_idx);

/* The handle at idx as C, or NULL if it is not one. */
struct sw_lua_ctx *sw_lua_ctx_check(lua_State *L, int idx);

/* Push the ctx proxy policies see, for the handle at handle_idx. */
void sw_lua_ctx_push(lua_State *L, int handle_idx);
/* Push ctx.state (the plain table) for the handle at handle_idx. */
void sw_lua_ctx_push_state(lua_State *L, int handle_idx);
/* Keep the value at owner_idx alive as long as the handle (the spec runner anchors the
 * fake input the ctx points to). */
void sw_lua_ctx_set_owner(lua_State *L, int handle_idx, int owner_idx);
/* Push what sw_lua_ctx_set_owner stored (nil if nothing). */
void sw_lua_ctx_push_owner(lua_State *L, int handle_idx);

/* Point the ctx at in (borrowed until sw_lua_ctx_release): updates now, now_ms and
 * budget, drops leases/offers/groups converted for an earlier call, and forgets
 * explanations not taken. */
void sw_lua_ctx_refresh(lua_State *L, int handle_idx, const struct sw_policy_input *in);
/* Forget in after the call: ctx functions used later raise instead of reading freed
 * data. Never raises. */
void sw_lua_ctx_release(struct sw_lua_ctx *ctx);

/* Move the explanations recorded since the last refresh to the caller (owned: free each
 * field and the array, or hand them to a struct sw_policy_result). Never raises. */
void sw_lua_ctx_take_explanations(struct sw_lua_ctx *ctx, struct sw_explanation **out,
                                  size_t *count);

/* The explanations recorded since the last refresh, borrowed until the next ctx call or
 * refresh; *count receives their number. Never raises. */
const struct sw_explanation *sw_lua_ctx_explanations(const struct sw_lua_ctx *ctx, size_t *count);

#endif /* SW_LUA_CTX_H */
