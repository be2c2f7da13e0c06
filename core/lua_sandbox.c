#include "lua_sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "log.h"
#include "lua_pattern.h"
#include "mem.h"

#define HOOK_EVERY 1000
#define WARN_BUF 1024
#define LOG_LINE_MAX 4096

enum trip {
    TRIP_NONE = 0,
    TRIP_INSTRUCTIONS,
    TRIP_TIME,
};

struct module_src {
    char *name; /* "steward.smooth" */
    char *path;
    char *text;
    size_t len;
};

struct sw_lua_sandbox {
    lua_State *L;
    char *name;
    char *lua_path;
    bool with_testing;
    struct sw_clock *clock;
    int64_t fixed_now_ms;
    uint64_t seed;
    /* allocator */
    size_t used;
    size_t limit;
    bool capped;
    /* budget */
    int64_t max_instructions;
    int64_t time_limit_ms;
    bool active;
    int trip;
    uint64_t count_k;
    uint64_t charged; /* work reported by C functions, below one thousand */
    uint64_t deadline_ns;
    size_t string_cap;
    /* output */
    void (*log_fn)(void *ud, int level, const char *msg);
    void *log_ud;
    char warn_buf[WARN_BUF];
    size_t warn_len;
    char *last_error; /* NULL when the last call succeeded */
    /* modules read at creation, compiled into package.preload */
    struct module_src *modules;
    size_t module_count;
};

/* ---- allocator ------------------------------------------------------------------------ */

/* Lua passes the object type in osize when ptr is NULL; only a real block's osize counts.
 * Refusing growth past the cap makes Lua raise LUA_ERRMEM inside the running pcall. */
static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct sw_lua_sandbox *sb = ud;
    size_t old = ptr != NULL ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        sb->used -= old;
        return NULL;
    }
    if (sb->capped && nsize > old && sb->used - old + nsize > sb->limit)
        return NULL;
    void *block = realloc(ptr, nsize);
    if (block == NULL)
        return NULL;
    sb->used = sb->used - old + nsize;
    return block;
}

struct sw_lua_sandbox *sw_lua_sandbox_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static int panic_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    sw_log(SW_LOG_ERROR, "lua", "unprotected Lua error: %s", msg ? msg : "?");
    abort();
}

/* ---- budget hook ------------------------------------------------------------------------ */

static void budget_hook(lua_State *L, lua_Debug *ar);

/* Count thousands of instructions' worth of work and check both limits. */
static bool over_budget(struct sw_lua_sandbox *sb, uint64_t thousands)
{
    if (sb->trip != TRIP_NONE)
        return true;
    sb->count_k += thousands;
    if (sb->count_k > (uint64_t)sb->max_instructions / HOOK_EVERY)
        sb->trip = TRIP_INSTRUCTIONS;
    else if (uv_hrtime() > sb->deadline_ns)
        sb->trip = TRIP_TIME;
    return sb->trip != TRIP_NONE;
}

static int raise_overrun(lua_State *L, struct sw_lua_sandbox *sb, int level)
{
    /* From now on every instruction raises, so a pcall in the policy cannot swallow the
     * overrun and keep going: the error reaches our pcall. */
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    luaL_where(L, level);
    if (sb->trip == TRIP_INSTRUCTIONS)
        lua_pushfstring(L, "instruction budget exceeded (%I instructions)",
                        (lua_Integer)sb->max_instructions);
    else
        lua_pushfstring(L, "time budget exceeded (%I ms)", (lua_Integer)sb->time_limit_ms);
    lua_concat(L, 2);
    return lua_error(L);
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct sw_lua_sandbox *sb = sw_lua_sandbox_of(L);
    if (!sb->active)
        return;
    if (sb->trip == TRIP_NONE && lua_gethookcount(L) != HOOK_EVERY) {
        /* A coroutine left at every-instruction by an earlier overrun. */
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
        return;
    }
    if (over_budget(sb, 1))
        raise_overrun(L, sb, 0); /* level 0: in a hook, the running Lua function */
}

void sw_lua_sandbox_charge(lua_State *L, uint64_t work)
{
    struct sw_lua_sandbox *sb = sw_lua_sandbox_of(L);
    if (!sb->active)
        return;
    if (work > UINT64_MAX / 4)
        work = UINT64_MAX / 4; /* still far over any budget; keeps the sums from wrapping */
    sb->charged += work;
    if (sb->charged < HOOK_EVERY && sb->trip == TRIP_NONE)
        return;
    uint64_t thousands = sb->charged / HOOK_EVERY;
    sb->charged %= HOOK_EVERY;
    if (over_budget(sb, thousands))
        raise_overrun(L, sb, 1);
}

/* ---- message handler -------------------------------------------------------------------- */

static int l_msgh(lua_State *L)
{
    struct sw_lua_sandbox *sb = sw_lua_sandbox_of(L);
    /* The traceback is bounded (luaL_traceback elides deep stacks); building it must not
     * fail because the policy ran out of memory, or the original error would be lost. */
    bool was_capped = sb->capped;
    sb->capped = false;
    const char *msg = NULL;
    if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER) {
        msg = lua_tostring(L, 1);
    } else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
        msg = lua_tostring(L, -1);
    } else {
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    sb->capped = was_capped;
    return 1;
}

/* Drop the "[C]: in ..." frames: they are the sandbox's own plumbing and would crowd the
 * 256-byte sw_error. The header line goes when no Lua frame is left. */
static char *compact_traceback(const char *text)
{
    size_t len = strlen(text);
    char *out = sw_xmalloc(len + 1);
    size_t n = 0;
    const char *line = text;
    bool any_frame = false;
    const char *header = strstr(text, "\nstack traceback:");
    size_t header_at = 0;
    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        size_t line_len = end ? (size_t)(end - line) : strlen(line);
        bool in_trace = header != NULL && line > header;
        bool drop = in_trace && strncmp(line, "\t[C]:", 5) == 0;
        if (in_trace && line == header + 1)
            header_at = n;
        else if (in_trace && !drop)
            any_frame = true;
        if (!drop) {
            if (n > 0)
                out[n++] = '\n';
            memcpy(out + n, line, line_len);
            n += line_len;
        }
        if (end == NULL)
            break;
        line = end + 1;
    }
    out[n] = '\0';
    if (header != NULL && !any_frame && header_at > 0)
        out[header_at] = '\0';
    return out;
}

/* ---- restricted library -------------------------------------------------------------------- */

static int l_unavailable(lua_State *L)
{
    return luaL_error(L, "steward: %s is not available in policies",
                      lua_tostring(L, lua_upvalueindex(1)));
}

/* __index of io/os/debug/package: names not kept raise on access, so `io.open(...)` says
 * what is wrong instead of "attempt to call a nil value". */
static int l_unavailable_field(lua_State *L)
{
    const char *lib = lua_tostring(L, lua_upvalueindex(1));
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "steward: %s.%s is not available in policies", lib,
                          lua_tostring(L, 2));
    return luaL_error(L, "steward: %s[%s] is not available in policies", lib, luaL_typename(L, 2));
}

static void push_stub(lua_State *L, const char *name)
{
    lua_pushstring(L, name);
    lua_pushcclosure(L, l_unavailable, 1);
}

/* Leaves a table on the stack whose missing fields raise. */
static void push_guarded_lib(lua_State *L, const char *lib)
{
    lua_newtable(L);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, lib);
    lua_pushcclosure(L, l_unavailable_field, 1);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
}

/* Replace every field of the table at idx not in keep with a function that refuses,
 * named "<lib>.<key>" in its message. */
static void apply_allow_list(lua_State *L, int idx, const char *lib, const char *const *keep)
{
    idx = lua_absindex(L, idx);
    lua_newtable(L); /* names to refuse, collected first: no writes during lua_next */
    int names = lua_gettop(L);
    int count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        bool kept = false;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *key = lua_tostring(L, -1);
            for (size_t i = 0; keep[i] != NULL && !kept; i++)
                kept = strcmp(keep[i], key) == 0;
        }
        if (!kept) {
            lua_pushvalue(L, -1);
            lua_rawseti(L, names, ++count);
        }
    }
    for (int i = 1; i <= count; i++) {
        lua_rawgeti(L, names, i);
        const char *key = lua_tostring(L, -1);
        if (lib != NULL)
            lua_pushfstring(L, "%s.%s", lib, key);
        else
            lua_pushstring(L, key);
        lua_pushcclosure(L, l_unavailable, 1);
        lua_rawset(L, idx);
    }
    lua_pop(L, 1);
}

static int l_load(lua_State *L)
{
    size_t len = 0;
    const char *chunk = lua_tolstring(L, 1, &len);
    if (chunk != NULL && len > 0 && chunk[0] == LUA_SIGNATURE[0]) {
        lua_pushnil(L);
        lua_pushliteral(L, "steward: binary chunks are not available in policies "
                           "(load accepts text only)");
        return 2;
    }
    int nargs = lua_gettop(L);
    /* Keep "env absent" distinct from "env = nil": only force the mode argument. */
    if (nargs < 3)
        lua_settop(L, 3);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    nargs = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, nargs, LUA_MULTRET);
    return lua_gettop(L);
}

static int l_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    sw_lua_sandbox_log(sw_lua_sandbox_of(L), SW_LOG_INFO, lua_tostring(L, -1));
    return 0;
}

static void warn_fn(void *ud, const char *msg, int tocont)
{
    struct sw_lua_sandbox *sb = ud;
    if (sb->warn_len == 0 && !tocont && msg[0] == '@')
        return; /* control message ("@on"/"@off"): warnings always go to the log */
    size_t len = strlen(msg);
    size_t room = WARN_BUF - 1 - sb->warn_len;
    if (len > room)
        len = room;
    memcpy(sb->warn_buf + sb->warn_len, msg, len);
    sb->warn_len += len;
    sb->warn_buf[sb->warn_len] = '\0';
    if (!tocont) {
        sw_lua_sandbox_log(sb, SW_LOG_WARN, sb->warn_buf);
        sb->warn_len = 0;
    }
}

static int l_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") != 0)
        return luaL_error(L,
                          "steward: collectgarbage(\"%s\") is not available in policies "
                          "(only \"count\")",
                          opt);
    int kib = lua_gc(L, LUA_GCCOUNT, 0);
    int bytes = lua_gc(L, LUA_GCCOUNTB, 0);
    lua_pushnumber(L, (lua_Number)kib + ((lua_Number)bytes / 1024));
    return 1;
}

/* require sees package.loaded (the registry's) and package.preload, nothing else. */
static int l_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, 2, name);
    if (lua_toboolean(L, -1))
        return 1;
    lua_pop(L, 1);
    lua_getfield(L, lua_upvalueindex(1), name);
    if (!lua_isfunction(L, -1)) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        lua_pushnil(L);
        bool first = true;
        while (lua_next(L, lua_upvalueindex(1)) != 0) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING) {
                if (!first)
                    luaL_addstring(&b, ", ");
                luaL_addstring(&b, lua_tostring(L, -1));
                first = false;
            }
        }
        luaL_pushresult(&b);
        return luaL_error(L,
                          "steward: module '%s' is not available in policies (require finds "
                          "only package.preload: %s)",
                          name, first ? "none" : lua_tostring(L, -1));
    }
    lua_pushvalue(L, 1);
    lua_pushliteral(L, ":preload:");
    lua_call(L, 2, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, 2, name);
    return 1;
}

static int l_string_rep(lua_State *L)
{
    struct sw_lua_sandbox *sb = sw_lua_sandbox_of(L);
    size_t len = 0, sep_len = 0;
    luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &sep_len);
    if (n > 0) {
        double total = (double)len * (double)n + (double)sep_len * (double)(n - 1);
        if (total > (double)sb->string_cap) {
            char bytes[64];
            snprintf(bytes, sizeof(bytes), "%.0f", total);
            return luaL_error(L,
                              "string.rep: result of %s bytes exceeds the %I-byte limit for "
                              "strings in policies",
                              bytes, (lua_Integer)sb->string_cap);
        }
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* table.move copies element by element inside one C call, and moving nils allocates
 * nothing: table.move({}, 1, 1e15, 2) would spin for days. Charge the count first. */
static int l_table_move(lua_State *L)
{
    lua_Integer first = luaL_checkinteger(L, 2);
    lua_Integer last = luaL_checkinteger(L, 3);
    if (last >= first)
        sw_lua_sandbox_charge(L, (uint64_t)last - (uint64_t)first + 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Without arguments math.randomseed would seed from the time: reseed from the recorded
 * seed instead, so a simulation replays exactly. */
static int l_math_randomseed(lua_State *L)
{
    struct sw_lua_sandbox *sb = sw_lua_sandbox_of(L);
    if (lua_gettop(L) == 0)
        lua_pushinteger(L, (lua_Integer)sb->seed);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
}

static int l_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        /* Raw, as the collector looks: any non-nil __gc (even false, replaced later) marks
         * the object, and a finalizer could run Lua code at any allocation, outside the
         * budgeted call. */
        lua_pushliteral(L, "__gc");
        bool has_gc = lua_rawget(L, 2) != LUA_TNIL;
        lua_pop(L, 1);
        if (has_gc)
            return luaL_error(L, "steward: __gc metamethods are not available in policies");
    }
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/* ---- coroutines: every new thread gets the budget hook ------------------------------------ */

static void hook_thread(lua_State *co)
{
    struct sw_lua_sandbox *sb = sw_lua_sandbox_of(co);
    lua_sethook(co, budget_hook, LUA_MASKCOUNT, sb->trip != TRIP_NONE ? 1 : HOOK_EVERY);
}

static int l_coroutine_create(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    hook_thread(co);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    return 1;
}

static int auxresume(lua_State *L, lua_State *co, int narg)
{
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    lua_xmove(L, co, narg);
    int nres = 0;
    int status = lua_resume(co, L, narg, &nres);
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    return -1;
}

/* coroutine.wrap as in lcorolib.c, built on l_coroutine_create's hooked thread. */
static int l_coroutine_wrapped(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int r = auxresume(L, co, lua_gettop(L));
    if (r >= 0)
        return r;
    int status = lua_status(co);
    if (status != LUA_OK && status != LUA_YIELD) {
#if LUA_VERSION_RELEASE_NUM >= 50406
        status = lua_closethread(co, L);
#else
        status = lua_resetthread(co);
#endif
        lua_xmove(co, L, 1);
    }
    if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int l_coroutine_wrap(lua_State *L)
{
    l_coroutine_create(L);
    lua_pushcclosure(L, l_coroutine_wrapped, 1);
    return 1;
}

/* ---- os.time on sw_clock ---------------------------------------------------------------- */

/* Days from 1970-01-01 to y-m-1 in the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil); m in 1..12. */
static int64_t days_from_civil(int64_t y, int64_t m)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static lua_Integer date_field(lua_State *L, const char *key, lua_Integer def, bool required)
{
    int type = lua_getfield(L, 1, key);
    int is_int = 0;
    lua_Integer value = lua_tointegerx(L, -1, &is_int);
    lua_pop(L, 1);
    if (is_int) {
        if (value < -1000000000 || value > 1000000000)
            return luaL_error(L, "field '%s' is out-of-bound", key);
        return value;
    }
    if (type != LUA_TNIL)
        return luaL_error(L, "field '%s' is not an integer", key);
    if (required)
        return luaL_error(L, "field '%s' missing in date table", key);
    return def;
}

/* os.time() is the sw_clock's now in whole seconds; os.time{...} is pure date arithmetic
 * in UTC (no time zone, so results do not depend on the host). */
static int l_os_time(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        int64_t now_ms = sw_lua_sandbox_now_ms(sw_lua_sandbox_of(L));
        int64_t secs = now_ms >= 0 ? now_ms / 1000 : -((-now_ms + 999) / 1000);
        lua_pushinteger(L, (lua_Integer)secs);
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer year = date_field(L, "year", 0, true);
    lua_Integer month = date_field(L, "month", 0, true);
    lua_Integer day = date_field(L, "day", 0, true);
    lua_Integer hour = date_field(L, "hour", 12, false);
    lua_Integer min = date_field(L, "min", 0, false);
    lua_Integer sec = date_field(L, "sec", 0, false);
    int64_t m0 = month - 1;
    int64_t y = year + (m0 >= 0 ? m0 / 12 : -((-m0 + 11) / 12));
    m0 -= (y - year) * 12;
    int64_t days = days_from_civil(y, m0 + 1) + (day - 1);
    lua_pushinteger(L, (lua_Integer)(days * 86400 + hour * 3600 + min * 60 + sec));
    return 1;
}

static int l_os_difftime(lua_State *L)
{
    lua_Number t1 = luaL_checknumber(L, 1);
    lua_Number t2 = luaL_optnumber(L, 2, 0);
    lua_pushnumber(L, t1 - t2);
    return 1;
}

/* ---- state setup -------------------------------------------------------------------- */

/* Globals a policy keeps. load, setmetatable, print and collectgarbage are replaced by the
 * wrappers above before the list is applied; warn reaches the log through lua_setwarnf. */
static const char *const keep_globals[] = {
    "assert",       "error",    "getmetatable",   "ipairs", "next",      "pairs",
    "pcall",        "rawequal", "rawlen",         "rawget", "rawset",    "select",
    "tonumber",     "tostring", "type",           "xpcall", "_G",        "_VERSION",
    "string",       "table",    "math",           "utf8",   "coroutine", "load",
    "setmetatable", "print",    "collectgarbage", "warn",   NULL,
};
static const char *const keep_string[] = {
    "byte", "char",    "find", "format", "gmatch", "gsub",     "len",    "lower", "match",
    "rep",  "reverse", "sub",  "upper",  "pack",   "packsize", "unpack", NULL,
};

static void wrap_field(lua_State *L, int table, const char *field, lua_CFunction fn)
{
    lua_getfield(L, table, field);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, table, field);
}

static int init_libs(lua_State *L)
{
    struct sw_lua_sandbox *sb = lua_touserdata(L, 1);
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},        {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},  {LUA_COLIBNAME, luaopen_coroutine},
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(libs); i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    lua_pushglobaltable(L);
    int g = lua_gettop(L);

    /* Wrapped originals first: they need the real functions as upvalues. */
    wrap_field(L, g, "load", l_load);
    wrap_field(L, g, "setmetatable", l_setmetatable);
    lua_pushcfunction(L, l_print);
    lua_setfield(L, g, "print");
    lua_pushcfunction(L, l_collectgarbage);
    lua_setfield(L, g, "collectgarbage");
    lua_getfield(L, g, "string");
    wrap_field(L, lua_gettop(L), "rep", l_string_rep);
    sw_lua_pattern_install(L, -1, true);
    apply_allow_list(L, -1, "string", keep_string);
    lua_pop(L, 1);
    lua_getfield(L, g, "math");
    lua_getfield(L, -1, "randomseed");
    lua_pushinteger(L, (lua_Integer)sb->seed);
    lua_call(L, 1, 0);
    wrap_field(L, lua_gettop(L), "randomseed", l_math_randomseed);
    lua_pop(L, 1);
    lua_getfield(L, g, "table");
    wrap_field(L, lua_gettop(L), "move", l_table_move);
    lua_pop(L, 1);
    lua_getfield(L, g, "coroutine");
    lua_pushcfunction(L, l_coroutine_create);
    lua_setfield(L, -2, "create");
    lua_pushcfunction(L, l_coroutine_wrap);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);

    apply_allow_list(L, g, NULL, keep_globals);

    /* io, debug: only the guarded shell; os: just time and difftime. */
    push_guarded_lib(L, "io");
    lua_setfield(L, g, "io");
    push_guarded_lib(L, "debug");
    lua_setfield(L, g, "debug");
    push_guarded_lib(L, "os");
    lua_pushcfunction(L, l_os_time);
    lua_setfield(L, -2, "time");
    lua_pushcfunction(L, l_os_difftime);
    lua_setfield(L, -2, "difftime");
    lua_setfield(L, g, "os");
    push_stub(L, "dofile");
    lua_setfield(L, g, "dofile");
    push_stub(L, "loadfile");
    lua_setfield(L, g, "loadfile");

    /* package: preload and loaded only; require reads preload through an upvalue so a
     * policy replacing package.preload cannot reach anything new anyway. */
    push_guarded_lib(L, "package");
    int pkg = lua_gettop(L);
    lua_newtable(L);
    int preload = lua_gettop(L);
    for (size_t i = 0; i < sb->module_count; i++) {
        struct module_src *m = &sb->modules[i];
        char *chunkname = sw_xasprintf("@%s", m->path);
        int rc = luaL_loadbufferx(L, m->text, m->len, chunkname, "t");
        free(chunkname);
        if (rc != LUA_OK)
            return lua_error(L);
        lua_setfield(L, preload, m->name);
    }
    lua_pushvalue(L, preload);
    lua_setfield(L, pkg, "preload");
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_setfield(L, pkg, "loaded");
    lua_pushvalue(L, preload);
    lua_pushcclosure(L, l_require, 1);
    lua_setfield(L, g, "require");
    lua_settop(L, pkg);
    lua_setfield(L, g, "package");
    return 0;
}

/* ---- modules on disk ------------------------------------------------------------------ */

static int module_cmp(const void *a, const void *b)
{
    return strcmp(((const struct module_src *)a)->name, ((const struct module_src *)b)->name);
}

static void free_modules(struct sw_lua_sandbox *sb)
{
    for (size_t i = 0; i < sb->module_count; i++) {
        free(sb->modules[i].name);
        free(sb->modules[i].path);
        free(sb->modules[i].text);
    }
    free(sb->modules);
    sb->modules = NULL;
    sb->module_count = 0;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *default_lua_path(void)
{
    static const char *const candidates[] = {SW_SOURCE_DIR "/lua", SW_INSTALL_LUA_DIR};
    for (size_t i = 0; i < SW_ARRAY_LEN(candidates); i++) {
        char *dir = sw_xasprintf("%s/steward", candidates[i]);
        bool ok = is_dir(dir);
        free(dir);
        if (ok)
            return sw_xstrdup(candidates[i]);
    }
    return sw_xstrdup("");
}

/* meta.lua is editor-only annotations; testing.lua needs the spec runner's natives. */
static bool wanted_module(const char *base, bool with_testing)
{
    if (strcmp(base, "meta") == 0)
        return false;
    if (strcmp(base, "testing") == 0)
        return with_testing;
    return true;
}

static int read_modules(struct sw_lua_sandbox *sb, struct sw_error *err)
{
    if (sb->lua_path[0] == '\0')
        return 0;
    char *dir_path = sw_xasprintf("%s/steward", sb->lua_path);
    DIR *dir = opendir(dir_path);
    if (dir == NULL) {
        int rc =
            sw_error_set(err, SW_EIO, "lua_path: cannot open %s: %s", dir_path, strerror(errno));
        free(dir_path);
        return rc;
    }
    size_t cap = 0;
    int rc = 0;
    struct dirent *ent;
    while ((ent = readdir(dir)) != NULL) {
        size_t len = strlen(ent->d_name);
        if (len <= 4 || strcmp(ent->d_name + len - 4, ".lua") != 0 || ent->d_name[0] == '.')
            continue;
        char *base = sw_xstrndup(ent->d_name, len - 4);
        if (!wanted_module(base, sb->with_testing)) {
            free(base);
            continue;
        }
        char *path = sw_xasprintf("%s/%s", dir_path, ent->d_name);
        size_t text_len = 0;
        char *text = sw_lua_sandbox_read_file(path, SW_LUA_MAX_SOURCE_BYTES, &text_len, err);
        if (text == NULL) {
            rc = err != NULL ? err->code : SW_EIO;
            free(base);
            free(path);
            break;
        }
        if (sb->module_count == cap) {
            cap = cap ? cap * 2 : 8;
            sb->modules = sw_xrealloc(sb->modules, cap * sizeof(*sb->modules));
        }
        sb->modules[sb->module_count++] =
            (struct module_src){sw_xasprintf("steward.%s", base), path, text, text_len};
        free(base);
    }
    closedir(dir);
    free(dir_path);
    if (rc == 0 && sb->module_count > 1)
        qsort(sb->modules, sb->module_count, sizeof(*sb->modules), module_cmp);
    return rc;
}

/* ---- public --------------------------------------------------------------------------- */

char *sw_lua_sandbox_read_file(const char *path, size_t max_bytes, size_t *len_out,
                               struct sw_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        sw_error_set(err, SW_EIO, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = sw_xmalloc(cap + 1);
    for (;;) {
        if (len == cap) {
            if (cap > max_bytes)
                break;
            cap *= 2;
            buf = sw_xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        free(buf);
        sw_error_set(err, SW_EIO, "%s: read error", path);
        return NULL;
    }
    if (len > max_bytes) {
        free(buf);
        sw_error_set(err, SW_ETOOBIG, "%s: larger than %zu bytes", path, max_bytes);
        return NULL;
    }
    buf[len] = '\0';
    if (len_out != NULL)
        *len_out = len;
    return buf;
}

struct sw_lua_sandbox *sw_lua_sandbox_new(const struct sw_lua_sandbox_opts *opts,
                                          struct sw_error *err)
{
    struct sw_lua_sandbox *sb = sw_xcalloc(1, sizeof(*sb));
    sb->name = sw_xstrdup(opts->name != NULL ? opts->name : "policy");
    sb->lua_path = opts->lua_path != NULL ? sw_xstrdup(opts->lua_path) : default_lua_path();
    sb->with_testing = opts->with_testing;
    sb->clock = opts->clock;
    sb->seed = opts->seed;
    sb->limit = opts->memory_limit ? opts->memory_limit : SW_LUA_DEFAULT_MEMORY_LIMIT;
    sb->max_instructions =
        opts->max_instructions > 0 ? opts->max_instructions : SW_LUA_DEFAULT_MAX_INSTRUCTIONS;
    sb->time_limit_ms =
        opts->time_limit_ms > 0 ? opts->time_limit_ms : SW_LUA_DEFAULT_TIME_LIMIT_MS;
    sb->string_cap = sb->limit / 4;
    sb->log_fn = opts->log_fn;
    sb->log_ud = opts->log_ud;

    if (read_modules(sb, err) < 0)
        goto fail;
    /* The cap is lifted while the libraries load (the mozilla trick): a small cap must not
     * make the sandbox itself unbuildable. */
    sb->capped = false;
    sb->L = lua_newstate(sandbox_alloc, sb);
    if (sb->L == NULL) {
        sw_error_set(err, SW_ENOMEM, "cannot create a Lua state");
        goto fail;
    }
    lua_atpanic(sb->L, panic_handler);
    lua_setwarnf(sb->L, warn_fn, sb);
    if (sw_lua_sandbox_call(sb, init_libs, sb, false, err) < 0)
        goto fail;
    free_modules(sb);
    lua_sethook(sb->L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_gc(sb->L, LUA_GCCOLLECT, 0);
    sb->capped = true;
    return sb;
fail:
    sw_lua_sandbox_free(sb);
    return NULL;
}

void sw_lua_sandbox_free(struct sw_lua_sandbox *sb)
{
    if (sb == NULL)
        return;
    if (sb->L != NULL)
        lua_close(sb->L);
    free_modules(sb);
    free(sb->name);
    free(sb->lua_path);
    free(sb->last_error);
    free(sb);
}

lua_State *sw_lua_sandbox_state(struct sw_lua_sandbox *sb)
{
    return sb->L;
}

void sw_lua_sandbox_load(lua_State *L, const char *text, size_t len, const char *chunkname)
{
    if (luaL_loadbufferx(L, text, len, chunkname, "t") != LUA_OK)
        lua_error(L);
}

int sw_lua_sandbox_call(struct sw_lua_sandbox *sb, lua_CFunction fn, void *ud, bool budget,
                        struct sw_error *err)
{
    lua_State *L = sb->L;
    int base = lua_gettop(L);
    /* Light C functions and a light userdata: pushing them cannot allocate beyond the
     * LUA_MINSTACK slots a C caller is guaranteed, so nothing here can throw. */
    lua_pushcfunction(L, l_msgh);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, ud);
    if (budget) {
        sb->count_k = 0;
        sb->charged = 0;
        sb->trip = TRIP_NONE;
        sb->deadline_ns = uv_hrtime() + (uint64_t)sb->time_limit_ms * 1000000u;
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
        sb->active = true;
    }
    int status = lua_pcall(L, 1, 0, base + 1);
    sb->active = false;
    bool was_capped = sb->capped;
    sb->capped = false; /* room for the message and the cleanup below */
    char *msg = NULL;
    if (status == LUA_OK && budget && sb->trip != TRIP_NONE) {
        /* The policy caught the overrun (pcall around a coroutine, say) and returned. */
        msg = sb->trip == TRIP_INSTRUCTIONS
                  ? sw_xasprintf("instruction budget exceeded (%lld instructions)",
                                 (long long)sb->max_instructions)
                  : sw_xasprintf("time budget exceeded (%lld ms)", (long long)sb->time_limit_ms);
    } else if (status == LUA_ERRMEM) {
        msg = sw_xasprintf("memory limit exceeded (%zu bytes)", sb->limit);
    } else if (status != LUA_OK) {
        const char *text = lua_tostring(L, -1);
        if (status == LUA_ERRERR)
            msg = sw_xasprintf("error in the error handler: %s", text ? text : "?");
        else
            msg = compact_traceback(text != NULL ? text : "(error object is not a string)");
    }
    if (budget)
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_settop(L, base);
    if (msg != NULL)
        lua_gc(L, LUA_GCCOLLECT, 0); /* drop what the failed call left behind */
    sb->capped = was_capped;
    free(sb->last_error);
    sb->last_error = msg; /* NULL after a success: no allocation on the hot path */
    if (msg == NULL)
        return 0;
    return sw_error_set(err, SW_EPOLICY, "%s", msg);
}

const char *sw_lua_sandbox_last_error(const struct sw_lua_sandbox *sb)
{
    return sb->last_error != NULL ? sb->last_error : "";
}

uint64_t sw_lua_sandbox_instructions(const struct sw_lua_sandbox *sb)
{
    return sb->count_k;
}

size_t sw_lua_sandbox_memory(const struct sw_lua_sandbox *sb)
{
    return sb->used;
}

int64_t sw_lua_sandbox_now_ms(struct sw_lua_sandbox *sb)
{
    return sb->clock != NULL ? sw_clock_now(sb->clock) : sb->fixed_now_ms;
}

void sw_lua_sandbox_set_now(struct sw_lua_sandbox *sb, int64_t now_ms)
{
    sb->fixed_now_ms = now_ms;
}

void sw_lua_sandbox_log(struct sw_lua_sandbox *sb, int level, const char *msg)
{
    char line[LOG_LINE_MAX];
    /* Policies can print anything; a bounded line keeps one print from flooding a log. */
    snprintf(line, sizeof(line), "%s", msg != NULL ? msg : "");
    if (sb->log_fn != NULL)
        sb->log_fn(sb->log_ud, level, line);
    else
        sw_log(level, "policy", "%s: %s", sb->name, line);
}

const char *sw_lua_sandbox_lua_path(const struct sw_lua_sandbox *sb)
{
    return sb->lua_path;
}
