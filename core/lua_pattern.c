#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "lua_pattern.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stddef.h>
#include <string.h>

#include "lua_sandbox.h"

/* As the stock library (LUA_MAXCAPTURES in lstrlib.c). */
#define MAX_CAPTURES 32
/* Recursion allowed per match, as the stock matcher: deeper patterns are "too complex". */
#define MAX_DEPTH 200
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define ESC '%'
#define SPECIALS "^$*+?.([%-"
/* Steps are charged to the budget in batches: one step is about one VM instruction. */
#define CHARGE_EVERY 1024

struct capture {
    const char *init;
    ptrdiff_t len; /* or CAP_UNFINISHED / CAP_POSITION */
};

struct matcher {
    lua_State *L;
    const char *src_init;
    const char *src_end;
    const char *pat_end;
    int depth_left;
    int level; /* captures opened so far */
    bool budgeted;
    unsigned steps;
    struct capture capture[MAX_CAPTURES];
};

static void matcher_init(struct matcher *m, lua_State *L, const char *s, size_t ls, const char *p,
                         size_t lp, bool budgeted)
{
    m->L = L;
    m->src_init = s;
    m->src_end = s + ls;
    m->pat_end = p + lp;
    m->budgeted = budgeted;
    m->steps = 0;
}

static void matcher_reset(struct matcher *m)
{
    m->level = 0;
    m->depth_left = MAX_DEPTH;
}

static void step(struct matcher *m)
{
    if (++m->steps < CHARGE_EVERY)
        return;
    if (m->budgeted)
        sw_lua_sandbox_charge(m->L, m->steps);
    m->steps = 0;
}

/* ---- single characters ---------------------------------------------------------------- */

/* %a %c %d %g %l %p %s %u %w %x (%z), upper case for the complement; any other
 * character after % stands for itself. */
static bool class_match(int c, int cl)
{
    bool res;
    switch (tolower(cl)) {
    case 'a':
        res = isalpha(c);
        break;
    case 'c':
        res = iscntrl(c);
        break;
    case 'd':
        res = isdigit(c);
        break;
    case 'g':
        res = isgraph(c);
        break;
    case 'l':
        res = islower(c);
        break;
    case 'p':
        res = ispunct(c);
        break;
    case 's':
        res = isspace(c);
        break;
    case 'u':
        res = isupper(c);
        break;
    case 'w':
        res = isalnum(c);
        break;
    case 'x':
        res = isxdigit(c);
        break;
    case 'z': /* deprecated, still accepted by Lua 5.4: the NUL byte */
        res = c == 0;
        break;
    default:
        return cl == c;
    }
    return isupper(cl) ? !res : res;
}

/* One past the single-character class starting at p (x, %x or [set]). A ']' right after
 * '[' or '[^' belongs to the set. */
static const char *class_end(struct matcher *m, const char *p)
{
    char c = *p++;
    if (c == ESC) {
        if (p == m->pat_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c != '[')
        return p;
    if (*p == '^')
        p++;
    do {
        if (p == m->pat_end)
            luaL_error(m->L, "malformed pattern (missing ']')");
        c = *p++;
        if (c == ESC && p < m->pat_end)
            p++;
    } while (*p != ']');
    return p + 1;
}

/* c against the set from '[' at p to the closing ']' at close. */
static bool set_match(int c, const char *p, const char *close)
{
    bool found_means = true;
    if (p[1] == '^') {
        found_means = false;
        p++;
    }
    for (p++; p < close; p++) {
        if (*p == ESC) {
            p++;
            if (class_match(c, (unsigned char)*p))
                return found_means;
        } else if (p[1] == '-' && p + 2 < close) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return found_means;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return found_means;
        }
    }
    return !found_means;
}

static bool single_match(struct matcher *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->src_end)
        return false;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return true;
    case ESC:
        return class_match(c, (unsigned char)p[1]);
    case '[':
        return set_match(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

/* ---- matching ------------------------------------------------------------------------------ */

static const char *match(struct matcher *m, const char *s, const char *p);

/* %bxy at p (pointing at x): a balanced run starting at s. */
static const char *match_balance(struct matcher *m, const char *s, const char *p)
{
    if (p + 1 >= m->pat_end)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != p[0])
        return NULL;
    int open = 1;
    while (++s < m->src_end) {
        step(m);
        if (*s == p[1]) {
            if (--open == 0)
                return s + 1;
        } else if (*s == p[0]) {
            open++;
        }
    }
    return NULL;
}

/* Greedy: as many as possible, then give back one at a time. */
static const char *max_expand(struct matcher *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t count = 0;
    while (single_match(m, s + count, p, ep)) {
        count++;
        step(m);
    }
    for (; count >= 0; count--) {
        const char *end = match(m, s + count, ep + 1);
        if (end != NULL)
            return end;
    }
    return NULL;
}

/* Lazy: as few as possible, taking one more at a time. */
static const char *min_expand(struct matcher *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *end = match(m, s, ep + 1);
        if (end != NULL)
            return end;
        if (!single_match(m, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *start_capture(struct matcher *m, const char *s, const char *p, int what)
{
    if (m->level >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->capture[m->level].init = s;
    m->capture[m->level].len = what;
    m->level++;
    const char *end = match(m, s, p);
    if (end == NULL)
        m->level--;
    return end;
}

static const char *end_capture(struct matcher *m, const char *s, const char *p)
{
    int open = -1;
    for (int i = m->level - 1; i >= 0 && open < 0; i--)
        if (m->capture[i].len == CAP_UNFINISHED)
            open = i;
    if (open < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->capture[open].len = s - m->capture[open].init;
    const char *end = match(m, s, p);
    if (end == NULL)
        m->capture[open].len = CAP_UNFINISHED;
    return end;
}

/* %1..%9: the text of a closed capture again. */
static const char *match_backref(struct matcher *m, const char *s, int digit)
{
    int i = digit - '1';
    if (i < 0 || i >= m->level || m->capture[i].len == CAP_UNFINISHED)
        luaL_error(m->L, "invalid capture index %%%d", i + 1);
    ptrdiff_t len = m->capture[i].len;
    if (len < 0 || m->src_end - s < len || memcmp(m->capture[i].init, s, (size_t)len) != 0)
        return NULL; /* a position capture never matches text */
    return s + len;
}

/* End of the match of pattern p at s, or NULL. Patterns are NUL-terminated Lua strings,
 * so reading *pat_end (or *src_end) yields '\0' as the stock matcher assumes. */
static const char *match(struct matcher *m, const char *s, const char *p)
{
    if (m->depth_left-- == 0)
        luaL_error(m->L, "pattern too complex");
    step(m);
    while (p != m->pat_end) {
        switch (*p) {
        case '(':
            s = p[1] == ')' ? start_capture(m, s, p + 2, CAP_POSITION)
                            : start_capture(m, s, p + 1, CAP_UNFINISHED);
            goto out;
        case ')':
            s = end_capture(m, s, p + 1);
            goto out;
        case '$':
            if (p + 1 == m->pat_end) {
                if (s != m->src_end)
                    s = NULL;
                goto out;
            }
            break; /* a literal '$' */
        case ESC:
            if (p[1] == 'b') {
                s = match_balance(m, s, p + 2);
                if (s == NULL)
                    goto out;
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p += 2;
                if (*p != '[')
                    luaL_error(m->L, "missing '[' after '%%f' in pattern");
                const char *ep = class_end(m, p);
                int before = s == m->src_init ? 0 : (unsigned char)s[-1];
                int here = (unsigned char)*s;
                if (set_match(before, p, ep - 1) || !set_match(here, p, ep - 1)) {
                    s = NULL;
                    goto out;
                }
                p = ep;
                continue;
            }
            if (isdigit((unsigned char)p[1])) {
                s = match_backref(m, s, (unsigned char)p[1]);
                if (s == NULL)
                    goto out;
                p += 2;
                continue;
            }
            break; /* a class such as %d */
        default:
            break;
        }
        const char *ep = class_end(m, p);
        if (!single_match(m, s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') {
                p = ep + 1; /* zero repetitions are fine */
                continue;
            }
            s = NULL;
            goto out;
        }
        switch (*ep) {
        case '?': {
            const char *end = match(m, s + 1, ep + 1);
            if (end != NULL) {
                s = end;
                goto out;
            }
            p = ep + 1;
            continue;
        }
        case '+':
            s = max_expand(m, s + 1, p, ep);
            goto out;
        case '*':
            s = max_expand(m, s, p, ep);
            goto out;
        case '-':
            s = min_expand(m, s, p, ep);
            goto out;
        default:
            s++;
            p = ep;
            continue;
        }
    }
out:
    m->depth_left++;
    return s;
}

/* ---- captures -------------------------------------------------------------------------- */

/* Capture i of the match [s, e); with no captures, capture 0 is the whole match. */
static void push_capture(struct matcher *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->capture[i].len;
    if (len == CAP_UNFINISHED)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(m->L, (lua_Integer)(m->capture[i].init - m->src_init) + 1);
    else
        lua_pushlstring(m->L, m->capture[i].init, (size_t)len);
}

/* All captures (the whole match when there are none and s is not NULL). */
static int push_captures(struct matcher *m, const char *s, const char *e)
{
    int n = m->level == 0 && s != NULL ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* ---- library functions ---------------------------------------------------------------- */

/* 1-based, possibly negative init → 0-based offset (may be > len). */
static size_t start_offset(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos - 1;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 0;
    return len + (size_t)pos;
}

static bool has_specials(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++)
        if (p[i] != '\0' && strchr(SPECIALS, p[i]) != NULL)
            return true;
    return false;
}

static bool budgeted(lua_State *L)
{
    return lua_toboolean(L, lua_upvalueindex(1));
}

static int find_or_match(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        /* Plain search is linear (two-way): nothing to charge. */
        const char *hit = memmem(s + init, ls - init, p, lp);
        if (hit != NULL) {
            lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    bool anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    struct matcher m;
    matcher_init(&m, L, s, ls, p, lp, budgeted(L));
    const char *from = s + init;
    do {
        matcher_reset(&m);
        const char *end = match(&m, from, p);
        if (end != NULL) {
            if (!find)
                return push_captures(&m, from, end);
            lua_pushinteger(L, (lua_Integer)(from - s) + 1);
            lua_pushinteger(L, (lua_Integer)(end - s));
            return push_captures(&m, NULL, NULL) + 2;
        }
    } while (from++ < m.src_end && !anchor);
    luaL_pushfail(L);
    return 1;
}

static int l_find(lua_State *L)
{
    return find_or_match(L, true);
}

static int l_match(lua_State *L)
{
    return find_or_match(L, false);
}

struct gmatch_state {
    const char *next;      /* where the next search starts */
    const char *lastmatch; /* end of the last match: an empty match there is skipped */
    const char *p;
    struct matcher m;
};

static int gmatch_next(lua_State *L)
{
    struct gmatch_state *gm = lua_touserdata(L, lua_upvalueindex(3));
    gm->m.L = L; /* the iterator may run in another coroutine than gmatch did */
    for (const char *from = gm->next; from <= gm->m.src_end; from++) {
        matcher_reset(&gm->m);
        const char *end = match(&gm->m, from, gm->p);
        if (end != NULL && end != gm->lastmatch) {
            gm->next = gm->lastmatch = end;
            return push_captures(&gm->m, from, end);
        }
    }
    return 0;
}

/* gmatch(s, pattern [, init]); a leading '^' is an ordinary character here. */
static int l_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    bool charge = budgeted(L);
    lua_settop(L, 2); /* s and p stay alive as the iterator's upvalues */
    struct gmatch_state *gm = lua_newuserdatauv(L, sizeof(*gm), 0);
    if (init > ls)
        init = ls + 1; /* past the end: no match at all */
    matcher_init(&gm->m, L, s, ls, p, lp, charge);
    gm->next = s + init;
    gm->lastmatch = NULL;
    gm->p = p;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* A replacement string: %0 is the whole match, %1..%9 captures, %% a percent sign. */
static void add_template(struct matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = m->L;
    size_t len;
    const char *repl = lua_tolstring(L, 3, &len);
    const char *esc;
    while ((esc = memchr(repl, ESC, len)) != NULL) {
        luaL_addlstring(b, repl, (size_t)(esc - repl));
        char c = esc[1]; /* '\0' past the end: Lua strings are NUL-terminated */
        if (c == ESC) {
            luaL_addchar(b, ESC);
        } else if (c == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit((unsigned char)c)) {
            push_capture(m, c - '1', s, e);
            luaL_tolstring(L, -1, NULL);
            lua_remove(L, -2);
            luaL_addvalue(b);
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", ESC);
        }
        len -= (size_t)(esc + 2 - repl);
        repl = esc + 2;
    }
    luaL_addlstring(b, repl, len);
}

/* Append the replacement of match [s, e); false when the match was kept as it was. */
static bool add_replacement(struct matcher *m, luaL_Buffer *b, const char *s, const char *e,
                            int repl_type)
{
    lua_State *L = m->L;
    if (repl_type == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (repl_type == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_template(m, b, s, e);
        return true;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return false;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return true;
}

static int l_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int repl_type = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L,
                     repl_type == LUA_TNUMBER || repl_type == LUA_TSTRING ||
                         repl_type == LUA_TFUNCTION || repl_type == LUA_TTABLE,
                     3, "string/function/table");
    bool anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    struct matcher m;
    matcher_init(&m, L, src, ls, p, lp, budgeted(L));
    const char *lastmatch = NULL;
    lua_Integer n = 0;
    bool changed = false;
    while (n < max_n) {
        matcher_reset(&m);
        const char *end = match(&m, src, p);
        if (end != NULL && end != lastmatch) {
            n++;
            if (add_replacement(&m, &b, src, end, repl_type))
                changed = true;
            src = lastmatch = end;
        } else if (src < m.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(m.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void sw_lua_pattern_install(lua_State *L, int idx, bool charge)
{
    static const luaL_Reg functions[] = {
        {"find", l_find},
        {"match", l_match},
        {"gmatch", l_gmatch},
        {"gsub", l_gsub},
    };
    idx = lua_absindex(L, idx);
    for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++) {
        lua_pushboolean(L, charge);
        lua_pushcclosure(L, functions[i].func, 1);
        lua_setfield(L, idx, functions[i].name);
    }
}
