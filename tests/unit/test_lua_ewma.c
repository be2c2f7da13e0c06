/* test_lua_ewma.c — steward.ewma.update gives the numbers of the Lua loop it replaces, bit
 * for bit and type for type (integers where Lua keeps integers), on hand-picked and
 * generated tables; counts, the bands' moved list, skipped "" keys and errors; and a policy
 * in the sandbox can require it. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "lua_ewma.h"
#include "lua_sandbox.h"
#include "sw_test.h"

/* clock.c belongs to another module; weak so the real one wins once it is linked. */
__attribute__((weak)) int64_t sw_clock_now(struct sw_clock *clock)
{
    return clock->ops->now_ms(clock);
}

/* The reference: the loop geo_latency.lua ran before steward.ewma, with its band check.
 * compare(avg_a, avg_b) says where two tables differ (value, math.type or key set). */
static const char *prelude =
    "ewma = require 'steward.ewma'\n"
    "function reference(avg, raw, alpha, lo, hi)\n"
    "  local seen, fresh, moved = 0, 0, {}\n"
    "  for k, x in pairs(raw) do\n"
    "    if k ~= '' then\n"
    "      local a = avg[k]\n"
    "      if a ~= nil then seen = seen + 1 else a, fresh = 0, fresh + 1 end\n"
    "      local v = a + alpha * (x - a)\n"
    "      avg[k] = v\n"
    "      if lo and not (lo[k] and hi[k] and v >= lo[k] and v <= hi[k]) then\n"
    "        moved[#moved + 1] = k\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  return seen, fresh, moved\n"
    "end\n"
    "function copy(t) local c = {} for k, v in pairs(t) do c[k] = v end return c end\n"
    "function same(x, y)\n"
    "  if math.type(x) ~= math.type(y) then return false end\n"
    "  if x ~= x then return y ~= y end\n"
    "  return x == y and (x ~= 0 or 1 / x == 1 / y)\n"
    "end\n"
    "function compare(a, b, what)\n"
    "  for k, v in pairs(a) do\n"
    "    if not same(v, b[k]) then\n"
    "      return string.format('%s[%s]: %s %s vs %s %s', what, tostring(k), math.type(v),\n"
    "        string.format('%.17g', v), math.type(b[k]), tostring(b[k] and\n"
    "        string.format('%.17g', b[k])))\n"
    "    end\n"
    "  end\n"
    "  for k in pairs(b) do if a[k] == nil then return what .. ': extra ' .. k end end\n"
    "end\n"
    "function check(avg, raw, alpha, lo, hi)\n"
    "  local mine, theirs = copy(avg), copy(avg)\n"
    "  local s1, f1, m1 = reference(theirs, raw, alpha, lo, hi)\n"
    "  local moved = {}\n"
    "  local s2, f2, n2 = ewma.update(mine, raw, alpha, lo, hi, lo and moved)\n"
    "  local d = compare(mine, theirs, 'avg')\n"
    "  if d then return d end\n"
    "  if s1 ~= s2 or f1 ~= f2 then\n"
    "    return string.format('counts %d/%d vs %d/%d', s2, f2, s1, f1)\n"
    "  end\n"
    "  if lo then\n"
    "    if n2 ~= #m1 then return string.format('moved %d vs %d', n2, #m1) end\n"
    "    for i = 1, n2 do if moved[i] ~= m1[i] then return 'moved order at ' .. i end end\n"
    "  elseif n2 ~= 0 then return 'moved without bands' end\n"
    "end\n";

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, sw_lua_ewma_open);
    lua_setfield(L, -2, "steward.ewma");
    lua_pop(L, 1);
    if (luaL_dostring(L, prelude) != LUA_OK) {
        fprintf(stderr, "    prelude: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    return L;
}

/* Runs text, which returns nil (fine) or what went wrong. */
static void expect_nil(lua_State *L, const char *text)
{
    if (luaL_dostring(L, text) != LUA_OK)
        SW_FAIL_AT("error: %s", lua_tostring(L, -1));
    if (!lua_isnil(L, -1))
        SW_FAIL_AT("%s", luaL_tolstring(L, -1, NULL));
    lua_settop(L, 0);
}

SW_TEST(same_numbers_as_the_lua_loop)
{
    lua_State *L = new_state();
    SW_ASSERT(L != NULL);
    /* first tick (alpha integer 1), integers restored from JSON, a fresh key, a key left
     * out of raw, "" skipped, NaN and infinities, wrapping integers */
    expect_nil(L, "return check({}, {a = 5.5, b = 7.25, [''] = 3}, 1)");
    expect_nil(L, "return check({}, {a = 5, b = 7}, 1)");
    expect_nil(L, "return check({a = 4, b = 3}, {a = 5, b = 7}, 1)");
    expect_nil(L, "return check({a = 4, b = 3}, {a = 5, b = 7, c = 1}, 0.10910128185966073)");
    expect_nil(L, "return check({a = 4.5, z = 9}, {a = 5, b = 7.5}, 0.25)");
    expect_nil(L, "return check({a = 0/0}, {a = 1, b = 1/0, c = -1/0}, 0.5)");
    expect_nil(L, "return check({a = math.maxinteger}, {a = math.mininteger}, 3)");
    expect_nil(L, "return check({a = 1}, {a = 2, [7] = 3.5}, 0.5)");
    expect_nil(L, "return check({a = -0.0}, {a = -0.0}, 0.5)");
    /* generated: random averages and samples, some integers, over many ticks */
    expect_nil(L,
               "math.randomseed(7)\n"
               "local names = {'eu', 'us', 'as', 'oc', 'sa', 'af', ''}\n"
               "for round = 1, 2000 do\n"
               "  local avg, raw, lo, hi = {}, {}, {}, {}\n"
               "  for _, n in ipairs(names) do\n"
               "    local r = math.random(6)\n"
               "    if r == 1 then avg[n] = math.random(0, 1000)\n"
               "    elseif r <= 4 then avg[n] = math.random() * 1000 end\n"
               "    r = math.random(6)\n"
               "    if r == 1 then raw[n] = math.random(0, 1000)\n"
               "    elseif r <= 5 then raw[n] = math.random() * 1000 end\n"
               "    if math.random(4) > 1 then\n"
               "      local c = math.random() * 1000\n"
               "      lo[n], hi[n] = c - math.random() * 50, c + math.random() * 50\n"
               "    end\n"
               "  end\n"
               "  avg[''] = nil\n"
               "  local alpha = ({1, 0.5, 0.10910128185966073, math.random()})[math.random(4)]\n"
               "  local d = check(avg, raw, alpha) or check(avg, raw, alpha, lo, hi)\n"
               "  if d then return 'round ' .. round .. ': ' .. d end\n"
               "end\n");
    lua_close(L);
}

SW_TEST(bands_report_what_left_them)
{
    lua_State *L = new_state();
    SW_ASSERT(L != NULL);
    expect_nil(L, "local avg, moved = {a = 10, b = 10, c = 10}, {'stale', 'stale', 'stale'}\n"
                  "local s, f, n = ewma.update(avg, {a = 10, b = 30, c = 10, d = 2}, 0.5,\n"
                  "  {a = 5, b = 5, c = 11}, {a = 15, b = 15}, moved)\n"
                  "if s ~= 3 or f ~= 1 or n ~= 3 then return 'counts ' .. s .. f .. n end\n"
                  "table.sort(moved, function(x, y) return x < y end)\n"
                  "local got = table.concat(moved, ',', 1, n)\n"
                  "if got ~= 'b,c,d' then return got end\n"
                  "if avg.b ~= 20 or avg.d ~= 1 then return 'values' end\n");
    lua_close(L);
}

SW_TEST(errors_name_the_field)
{
    lua_State *L = new_state();
    SW_ASSERT(L != NULL);
    const char *cases[][2] = {
        {"ewma.update({}, {eu = 'x'}, 0.5)", "samples[eu] is a string"},
        {"ewma.update({eu = {}}, {eu = 1}, 0.5)", "avg[eu] is a table"},
        {"ewma.update({}, {}, 'x')", "number expected"},
        {"ewma.update({}, {}, 0.5, {}, {})", "table expected"},
        {"ewma.update(nil, {}, 0.5)", "table expected"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        SW_ASSERT(luaL_dostring(L, cases[i][0]) != LUA_OK);
        SW_ASSERT_CONTAINS(lua_tostring(L, -1), cases[i][1]);
        lua_settop(L, 0);
    }
    lua_close(L);
}

static int run_required(lua_State *L)
{
    const char *text = "local ewma = require 'steward.ewma'\n"
                       "local avg = {}\n"
                       "ewma.update(avg, {eu = 4.0}, 1)\n"
                       "assert(avg.eu == 4.0 and math.type(avg.eu) == 'float')\n";
    sw_lua_sandbox_load(L, text, strlen(text), "=test");
    lua_call(L, 0, 0);
    return 0;
}

SW_TEST(policies_can_require_it)
{
    struct sw_lua_sandbox_opts opts = {
        .name = "test", .lua_path = SW_SOURCE_DIR "/lua", .seed = 1, .time_limit_ms = 5000};
    struct sw_error err = {0};
    struct sw_lua_sandbox *sb = sw_lua_sandbox_new(&opts, &err);
    SW_ASSERT(sb != NULL);
    int rc = sw_lua_sandbox_call(sb, run_required, NULL, true, &err);
    if (rc != 0)
        SW_FAIL_AT("sandbox call: %s", err.msg);
    sw_lua_sandbox_free(sb);
}

SW_TEST_MAIN()
