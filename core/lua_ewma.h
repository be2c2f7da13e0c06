/* lua_ewma.h — steward.ewma: exponentially weighted moving averages over a whole table of
 * series in one call (a policy smoothing the demand of every region every tick otherwise
 * spends most of its time interpreting the same few lines per region).
 *
 * The arithmetic is Lua's own, operation by operation (integers stay integers where Lua
 * keeps them, floats round as Lua's do), so a policy moving a loop into ewma.update gets
 * the same numbers bit for bit: its ctx.state, journaled after every tick, is unchanged.
 */
#ifndef SW_LUA_EWMA_H
#define SW_LUA_EWMA_H

#include <lua.h>

/* The module table {update = ...} (docs/policies.md, "steward.ewma"): a lua_CFunction for
 * package.preload. Pushes one table; may raise (out of memory). */
int sw_lua_ewma_open(lua_State *L);

#endif /* SW_LUA_EWMA_H */
