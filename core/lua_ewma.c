#include "lua_ewma.h"

#include <lauxlib.h>
#include <stdbool.h>
#include <string.h>

/* A Lua number as the VM holds it: the arithmetic below follows lvm.c's rules, so an
 * integer operand stays an integer only when both operands are integers. */
struct num {
    bool is_int;
    lua_Integer i;
    lua_Number f;
};

static lua_Number as_float(struct num n)
{
    return n.is_int ? (lua_Number)n.i : n.f;
}

/* Integer + - * wrap around as in Lua (lvm.c: intop over lua_Unsigned). */
static struct num num_sub(struct num a, struct num b)
{
    if (a.is_int && b.is_int)
        return (struct num){true, (lua_Integer)((lua_Unsigned)a.i - (lua_Unsigned)b.i), 0};
    return (struct num){false, 0, as_float(a) - as_float(b)};
}

static struct num num_add(struct num a, struct num b)
{
    if (a.is_int && b.is_int)
        return (struct num){true, (lua_Integer)((lua_Unsigned)a.i + (lua_Unsigned)b.i), 0};
    return (struct num){false, 0, as_float(a) + as_float(b)};
}

static struct num num_mul(struct num a, struct num b)
{
    if (a.is_int && b.is_int)
        return (struct num){true, (lua_Integer)((lua_Unsigned)a.i * (lua_Unsigned)b.i), 0};
    return (struct num){false, 0, as_float(a) * as_float(b)};
}

static void push_num(lua_State *L, struct num n)
{
    if (n.is_int)
        lua_pushinteger(L, n.i);
    else
        lua_pushnumber(L, n.f);
}

/* Raises "what[key] is a <type>, expected a number" (the key at key_idx). Out of line: the
 * loop below stays small. */
__attribute__((noinline, cold)) static void not_a_number(lua_State *L, int idx, const char *what,
                                                         int key_idx)
{
    luaL_error(L, "ewma.update: %s[%s] is a %s, expected a number", what,
               luaL_tolstring(L, key_idx, NULL), luaL_typename(L, idx));
}

/* The number at idx (an absolute index) of Lua type `type`, or an error naming the field:
 * what[key], the key at key_idx. */
static inline struct num check_num(lua_State *L, int idx, int type, const char *what,
                                   int key_idx)
{
    if (type != LUA_TNUMBER)
        not_a_number(L, idx, what, key_idx);
    if (lua_isinteger(L, idx))
        return (struct num){true, lua_tointeger(L, idx), 0};
    return (struct num){false, 0, lua_tonumber(L, idx)};
}

/* Stack slots of l_ewma_update (absolute: the cheapest for the API to resolve). */
enum { AVG = 1, SAMPLES, ALPHA, LO, HI, MOVED, KEY, SAMPLE, SLOT_A, SLOT_B };

/* seen, fresh, moved_count = ewma.update(avg, samples, alpha [, lo, hi, moved]) */
static int l_ewma_update(lua_State *L)
{
    luaL_checktype(L, AVG, LUA_TTABLE);
    luaL_checktype(L, SAMPLES, LUA_TTABLE);
    luaL_checknumber(L, ALPHA);
    struct num alpha = check_num(L, ALPHA, LUA_TNUMBER, "alpha", ALPHA);
    bool bands = !lua_isnoneornil(L, LO);
    if (bands) {
        luaL_checktype(L, LO, LUA_TTABLE);
        luaL_checktype(L, HI, LUA_TTABLE);
        luaL_checktype(L, MOVED, LUA_TTABLE);
    }
    lua_settop(L, MOVED);
    lua_Integer seen = 0, fresh = 0, moved = 0;
    lua_pushnil(L);
    while (lua_next(L, SAMPLES) != 0) {
        if (lua_type(L, KEY) == LUA_TSTRING && lua_rawlen(L, KEY) == 0) {
            lua_settop(L, KEY); /* "": sum_by's bucket for samples without the label */
            continue;
        }
        struct num x = check_num(L, SAMPLE, lua_type(L, SAMPLE), "samples", KEY);
        lua_pushvalue(L, KEY);
        struct num a = {true, 0, 0};
        int a_type = lua_rawget(L, AVG);
        if (a_type == LUA_TNIL) {
            fresh++;
        } else {
            a = check_num(L, SLOT_A, a_type, "avg", KEY);
            seen++;
        }
        /* a + alpha * (x - a), in Lua's order of operations */
        struct num v = num_add(a, num_mul(alpha, num_sub(x, a)));
        lua_pushvalue(L, KEY);
        push_num(L, v);
        lua_rawset(L, AVG);
        if (bands) {
            lua_Number f = as_float(v);
            lua_pushvalue(L, KEY);
            bool inside = lua_rawget(L, LO) == LUA_TNUMBER && f >= lua_tonumber(L, SLOT_B);
            if (inside) {
                lua_pushvalue(L, KEY);
                inside = lua_rawget(L, HI) == LUA_TNUMBER && f <= lua_tonumber(L, SLOT_B + 1);
            }
            if (!inside) { /* NaN too */
                lua_pushvalue(L, KEY);
                lua_rawseti(L, MOVED, ++moved);
            }
        }
        lua_settop(L, KEY);
    }
    lua_pushinteger(L, seen);
    lua_pushinteger(L, fresh);
    lua_pushinteger(L, moved);
    return 3;
}

int sw_lua_ewma_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"update", l_ewma_update}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
