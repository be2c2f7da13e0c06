/* lua_pattern.h — Lua 5.4 patterns (string.find, match, gmatch, gsub) with a work budget.
 *
 * Hooks only see VM instructions; the stock matcher backtracks inside one C call, so
 * `("a"):rep(3000):find(("a-"):rep(30) .. "b")` would hold the loop thread for hours. This
 * matcher implements the same pattern language (Lua 5.4 manual §6.4.1) and charges its
 * steps to the sandbox every 1024 (which also polls the watchdog's stop flag), so such a
 * call ends at the policy's instruction or time budget like any loop. Results and error
 * messages match the stock functions (tests/unit/test_lua_pattern.c compares them on
 * generated cases).
 */
#ifndef SW_LUA_PATTERN_H
#define SW_LUA_PATTERN_H

#include <lua.h>
#include <stdbool.h>

/* Set find, match, gmatch and gsub in the table at idx (the string library). With
 * budgeted, matching work goes through sw_lua_sandbox_charge, so L must belong to a
 * sandbox; without it nothing is charged (a plain lua_State, as in tests). Pushes and
 * may raise: call inside a protected call. */
void sw_lua_pattern_install(lua_State *L, int idx, bool budgeted);

#endif /* SW_LUA_PATTERN_H */
