/* test_lua_pattern.c — the budgeted pattern functions give the same results and the same
 * errors as Lua's own string.find/match/gmatch/gsub, on hand-picked and generated cases,
 * and stop at the budget inside a sandbox. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "lua_pattern.h"
#include "sw_test.h"

/* clock.c belongs to another module; weak so the real one wins once it is linked. The
 * sandbox (linked in through sw_lua_sandbox_charge) refers to it. */
__attribute__((weak)) int64_t sw_clock_now(struct sw_clock *clock)
{
    return clock->ops->now_ms(clock);
}

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Compares stock (string.*) and ours (ours.*) on one call; returns a mismatch report or
 * nil. Error messages are compared after removing the function name luaL_argerror looks
 * up (it differs only because ours is not in package.loaded). */
static const char *driver =
    "local stock, ours = ...\n"
    "local function value(v)\n"
    "  if type(v) == 'string' then return string.format('%q', v) end\n"
    "  return (math.type(v) or type(v)) .. ':' .. tostring(v)\n"
    "end\n"
    "local function pack(ok, ...)\n"
    "  local out = {tostring(ok)}\n"
    "  for i = 1, select('#', ...) do\n"
    "    local v = select(i, ...)\n"
    "    if not ok then v = tostring(v):gsub(\"to '[^']*'\", 'to ?') end\n"
    "    out[#out + 1] = value(v)\n"
    "  end\n"
    "  return table.concat(out, ' ')\n"
    "end\n"
    "local function collect(gmatch, s, p, init)\n"
    "  local out, n = {}, 0\n"
    "  for a, b, c in gmatch(s, p, init) do\n"
    "    n = n + 1\n"
    "    if n > 200 then error('runaway gmatch') end\n"
    "    out[#out + 1] = pack(true, a, b, c)\n"
    "  end\n"
    "  return table.concat(out, ' | ')\n"
    "end\n"
    "local repls = {\n"
    "  '%0<%1>', '[%%]', 'x', '%2', '%', '%x', 7,\n"
    "  {a = 'A', ab = false, ['1'] = 'one'},\n"
    "  function(...) return select('#', ...) .. '' end,\n"
    "  function() return false end,\n"
    "  function() return {} end,\n"
    "}\n"
    "return function(s, p, init, repl_index, max_n)\n"
    "  local checks = {\n"
    "    {'find', pack(pcall(stock.find, s, p, init)), pack(pcall(ours.find, s, p, init))},\n"
    "    {'find plain', pack(pcall(stock.find, s, p, init, true)),\n"
    "      pack(pcall(ours.find, s, p, init, true))},\n"
    "    {'match', pack(pcall(stock.match, s, p, init)), pack(pcall(ours.match, s, p, init))},\n"
    "    {'gmatch', pack(pcall(collect, stock.gmatch, s, p, init)),\n"
    "      pack(pcall(collect, ours.gmatch, s, p, init))},\n"
    "    {'gsub', pack(pcall(stock.gsub, s, p, repls[repl_index], max_n)),\n"
    "      pack(pcall(ours.gsub, s, p, repls[repl_index], max_n))},\n"
    "  }\n"
    "  for _, c in ipairs(checks) do\n"
    "    if c[2] ~= c[3] then\n"
    "      return string.format('%s(%q, %q, %s, repl %d)\\n      stock: %s\\n      ours:  %s',\n"
    "        c[1], s, p, tostring(init), repl_index, c[2], c[3])\n"
    "    end\n"
    "  end\n"
    "end\n";

static lua_State *L;
static int compare_ref = LUA_NOREF;

static void setup(void)
{
    if (L != NULL)
        return;
    L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadstring(L, driver) != LUA_OK)
        abort();
    lua_getglobal(L, "string");
    lua_newtable(L);
    sw_lua_pattern_install(L, -1, false);
    lua_call(L, 2, 1);
    compare_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

__attribute__((destructor)) static void teardown(void)
{
    if (L != NULL)
        lua_close(L);
}

/* NULL when both agree, else the report (valid until the next call). */
static const char *compare(const char *s, size_t ls, const char *p, size_t lp, long long init,
                           int repl, long long max_n)
{
    static char report[2048];
    setup();
    lua_rawgeti(L, LUA_REGISTRYINDEX, compare_ref);
    lua_pushlstring(L, s, ls);
    lua_pushlstring(L, p, lp);
    if (init == 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, init);
    lua_pushinteger(L, repl);
    if (max_n < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, max_n);
    if (lua_pcall(L, 5, 1, 0) != LUA_OK) {
        snprintf(report, sizeof(report), "driver error: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return report;
    }
    const char *r = lua_tostring(L, -1);
    if (r == NULL) {
        lua_pop(L, 1);
        return NULL;
    }
    snprintf(report, sizeof(report), "%s", r);
    lua_pop(L, 1);
    return report;
}

static const char *const subjects[] = {
    "",
    "hello world",
    "eu-west-1, us-east-2",
    "key = value; other=1",
    "  padded  ",
    "(nested (parens) here) and (more)",
    "THE (quick) brown fox",
    "aaa",
    "abcabcabc",
    "x=1, y=22, z=333",
    "%d %% 100%",
    "THE END$",
    "[brackets] and ]odd[",
    "tab\there\nnewline",
    "caf\xc3\xa9 \xff\x01",
};

static const char *const patterns[] = {
    "",
    "o",
    "l+",
    "l*",
    "l-",
    "l?o",
    "^h",
    "d$",
    "^$",
    ".",
    ".-",
    ".*",
    "(%w+)",
    "(%w+)=(%w+)",
    "%s*(%S+)%s*",
    "%a+",
    "%A+",
    "%d+",
    "%D",
    "%l%u",
    "%p",
    "%c",
    "%x+",
    "%g",
    "[aeiou]",
    "[^aeiou ]+",
    "[a-f]+",
    "[%a_][%w_]*",
    "[]]",
    "[^]]",
    "[%]]",
    "[a-]",
    "[-a]",
    "%b()",
    "%b[]",
    "%bxy",
    "%f[%w]%w+",
    "%f[%W]",
    "%f[%a]",
    "()",
    "()a()",
    "(a)%1",
    "(a*)%1",
    "((a)(b))",
    "(h)(e)(l)(l)(o)",
    "%(",
    "%.",
    "%%",
    "$",
    "^",
    "a$b",
    "(()",
    "(",
    ")",
    "%",
    "[",
    "[a",
    "[^",
    "%b",
    "%b(",
    "%f",
    "%fa",
    "%1",
    "(a)%2",
    "%0",
    "x*y*z*",
    "^(%w+)-(%w+)-(%d)$",
    "(%w+)%-(%w+)",
    "%$",
    "END%$$",
    "\xc3\xa9",
    "[\xc3\xa9]+",
    "%z",
    "a-b",
    "a-$",
    "%w-%s",
    "(.)(.)%2%1",
    "^(.-)%s*$",
    "(%d+)%s*,?%s*",
    "x=(%d+)",
};

SW_TEST(hand_picked_cases_agree)
{
    static const long long inits[] = {0, 1, 2, 5, -3, -100, 100};
    int mismatches = 0;
    for (size_t si = 0; si < ARRAY_LEN(subjects); si++) {
        for (size_t pi = 0; pi < ARRAY_LEN(patterns); pi++) {
            for (size_t ii = 0; ii < ARRAY_LEN(inits); ii++) {
                int repl = (int)((si + pi + ii) % 11) + 1;
                long long max_n = (pi % 5 == 0) ? 1 : -1;
                const char *r = compare(subjects[si], strlen(subjects[si]), patterns[pi],
                                        strlen(patterns[pi]), inits[ii], repl, max_n);
                if (r != NULL && mismatches++ < 5)
                    fprintf(stderr, "    %s\n", r);
            }
        }
    }
    SW_ASSERT_EQ(mismatches, 0);
}

SW_TEST(embedded_zeros_agree)
{
    static const char s[] = "a\0b\0\0c";
    static const char *const pats[] = {"%z", "\0", "a%zb", "[\0b]+", ".-\0c", "%Z+"};
    static const size_t lens[] = {2, 1, 4, 5, 4, 3};
    int mismatches = 0;
    for (size_t i = 0; i < ARRAY_LEN(pats); i++) {
        const char *r = compare(s, sizeof(s) - 1, pats[i], lens[i], 0, 1, -1);
        if (r != NULL && mismatches++ < 5)
            fprintf(stderr, "    %s\n", r);
    }
    SW_ASSERT_EQ(mismatches, 0);
}

/* Random patterns from pattern pieces, including malformed ones, on random subjects. */
SW_TEST(generated_cases_agree)
{
    static const char *const pieces[] = {
        "a",  "b",  "c",    "1",    " ",     ".",      "%a",   "%d",   "%s",     "%w",
        "%p", "%S", "[ab]", "[^a]", "[a-c]", "[%d%s]", "%%",   "(",    ")",      "()",
        "*",  "+",  "-",    "?",    "^",     "$",      "%b()", "%bab", "%f[%w]", "%f[%s]",
        "%1", "%2", "[",    "]",    "%",     "%(",     "[]",   "[^]",
    };
    static const char subject_chars[] = "aab bc1()a%[]";
    unsigned seed = 12345;
    int mismatches = 0;
    char pattern[64], subject[40];
    for (int iter = 0; iter < 30000; iter++) {
        seed = seed * 1103515245u + 12345u;
        int npieces = (int)((seed >> 16) % 10);
        size_t lp = 0;
        for (int k = 0; k < npieces; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *piece = pieces[(seed >> 16) % ARRAY_LEN(pieces)];
            size_t len = strlen(piece);
            if (lp + len >= sizeof(pattern))
                break;
            memcpy(pattern + lp, piece, len);
            lp += len;
        }
        pattern[lp] = '\0';
        seed = seed * 1103515245u + 12345u;
        size_t ls = (seed >> 16) % 32;
        for (size_t k = 0; k < ls; k++) {
            seed = seed * 1103515245u + 12345u;
            subject[k] = subject_chars[(seed >> 16) % (sizeof(subject_chars) - 1)];
        }
        subject[ls] = '\0';
        seed = seed * 1103515245u + 12345u;
        long long init = (long long)((seed >> 16) % 7) - 2;
        const char *r = compare(subject, ls, pattern, lp, init, (int)(seed >> 20) % 11 + 1,
                                (seed >> 24) % 4 == 0 ? 1 : -1);
        if (r != NULL && mismatches++ < 5)
            fprintf(stderr, "    %s\n", r);
    }
    SW_ASSERT_EQ(mismatches, 0);
}

SW_TEST_MAIN()
