#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_sigqueue */
#endif
#include "lua_sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "log.h"
#include "lua_ewma.h"
#include "lua_pattern.h"
#include "mem.h"

#define HOOK_EVERY 1000
#define WARN_BUF 1024
#define LOG_LINE_MAX 4096

/* Watchdog ticks: a quarter of the time budget, within these bounds. */
#define WATCH_TICK_MIN_NS (5u * 1000000u)
#define WATCH_TICK_MAX_NS (250u * 1000000u)
/* Empty scans in a row before the watchdog sleeps until a call starts. */
#define WATCH_IDLE_SCANS 2
/* C loops that move table elements poll the stop flag this often. */
#define POLL_EVERY 1024

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

struct watch_slot;

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
    bool counting; /* strict mode: an instruction budget, enforced by the count hook */
    bool hooked;   /* the count hook enforces the budgets (strict mode or no watchdog) */
    bool active;
    int trip;
    uint64_t count_k;
    uint64_t charged; /* work reported by C functions, below one thousand */
    uint64_t deadline_ns;
    /* watchdog mode: the slot the watchdog reads, and what its signal handler touches */
    struct watch_slot *slot;
    uint64_t gen;                 /* this sandbox's copy of slot->gen */
    atomic_int stop;              /* set by the signal handler: the call is over time */
    _Atomic(lua_State *) current; /* the thread (main or coroutine) running Lua code now */
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

/* ---- budget: count hook (strict mode) ---------------------------------------------------- */

static void budget_hook(lua_State *L, lua_Debug *ar);
static void stop_hook(lua_State *L, lua_Debug *ar);

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

/* The hook a thread of sb carries between overruns: the count hook in hooked mode, none
 * otherwise (a hook of any count makes Lua 5.4 trace every instruction). */
static void set_base_hook(lua_State *L, const struct sw_lua_sandbox *sb)
{
    if (sb->hooked)
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
    else
        lua_sethook(L, NULL, 0, 0);
}

static int raise_overrun(lua_State *L, struct sw_lua_sandbox *sb, int level)
{
    /* From now on every instruction raises, so a pcall in the policy cannot swallow the
     * overrun and keep going: the error reaches our pcall. */
    lua_sethook(L, sb->hooked ? budget_hook : stop_hook, LUA_MASKCOUNT, 1);
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

/* ---- budget: watchdog (default mode) ------------------------------------------------------ *
 *
 * Without an instruction budget no hook runs while a policy does: one thread per process
 * watches every sandbox's running call through its slot and, once a call is past its time
 * budget, sends a real-time signal to the thread running it. The handler, on that thread,
 * sets a stop flag (polled by long C loops: the pattern matcher, table.move/insert/remove)
 * and installs stop_hook on the running Lua thread, which raises at the next instruction.
 *
 * Why a signal and not lua_sethook from the watchdog: Lua allows lua_sethook asynchronously
 * only from a signal handler interrupting the thread that runs the state (ldebug.c: the
 * mask is a single byte, pointers are written whole, the hook is checked before each call,
 * a wrong count costs at most one extra hook call), which is how lua.c stops a script on
 * SIGINT. From another thread the same plain stores would race with the running VM, with
 * no ordering between the mask, the hook and the frames' trap flags. The handler also runs
 * on the thread that runs the call, so once it has seen that the call it was sent for is
 * still running (slot->gen), that call cannot end, nor its sandbox go away, under it. */

struct watch_slot {
    _Atomic uint64_t gen;         /* odd while a budgeted call runs; never reused */
    _Atomic uint64_t start_ns;    /* uv_hrtime() at the start of the running call */
    _Atomic uint64_t budget_ns;   /* 0: the slot is free */
    _Atomic uint64_t kill_gen;    /* the call the watchdog signalled */
    _Atomic unsigned long thread; /* pthread_t of the running call's thread */
    _Atomic(struct sw_lua_sandbox *) sb;
    struct watch_slot *next; /* slots are never freed: a late signal finds valid memory */
};

_Static_assert(sizeof(pthread_t) == sizeof(unsigned long), "pthread_t fits an unsigned long");

static struct {
    pthread_once_t once;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    _Atomic(struct watch_slot *) slots; /* grows at the head only, under lock */
    atomic_bool idle;                   /* the watchdog sleeps until wd_wake */
    int signo;                          /* 0: no watchdog (the count hook takes over) */
} wd = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

static unsigned long thread_id(void)
{
    pthread_t self = pthread_self();
    unsigned long id;
    memcpy(&id, &self, sizeof(id));
    return id;
}

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct sw_lua_sandbox *sb = sw_lua_sandbox_of(L);
    if (sb->active && sb->trip == TRIP_NONE &&
        atomic_load_explicit(&sb->stop, memory_order_relaxed))
        sb->trip = TRIP_TIME;
    if (!sb->active || sb->trip == TRIP_NONE) {
        /* A coroutine still carrying the hook of an earlier call's overrun. */
        set_base_hook(L, sb);
        /* The signal may have come in the middle of that lua_sethook and had its hook
         * overwritten; it set stop first, so looking again is enough. */
        if (!sb->active || !atomic_load(&sb->stop))
            return;
        sb->trip = TRIP_TIME;
    }
    raise_overrun(L, sb, 0);
}

/* Async-signal-safe: atomics and lua_sethook only. */
static void on_stop_signal(int signo, siginfo_t *info, void *context)
{
    (void)signo;
    (void)context;
    int saved_errno = errno;
    const struct watch_slot *target = info->si_code == SI_QUEUE ? info->si_value.sival_ptr : NULL;
    /* Only a slot of ours: anyone allowed to signal the process could queue any pointer. */
    struct watch_slot *slot = atomic_load(&wd.slots);
    while (slot != NULL && slot != target)
        slot = slot->next;
    if (slot != NULL) {
        uint64_t gen = atomic_load(&slot->gen);
        struct sw_lua_sandbox *sb = atomic_load(&slot->sb);
        if ((gen & 1) != 0 && gen == atomic_load(&slot->kill_gen) && sb != NULL &&
            atomic_load(&slot->thread) == thread_id()) {
            atomic_store(&sb->stop, 1);
            lua_sethook(atomic_load(&sb->current), stop_hook, LUA_MASKCOUNT, 1);
        }
    }
    errno = saved_errno;
}

static uint64_t tick_of(uint64_t budget_ns)
{
    uint64_t tick = budget_ns / 4;
    return tick < WATCH_TICK_MIN_NS   ? WATCH_TICK_MIN_NS
           : tick > WATCH_TICK_MAX_NS ? WATCH_TICK_MAX_NS
                                      : tick;
}

/* One pass over the slots: signal the calls past their budget. Returns whether a call is
 * running; *gen_sum changes whenever a call started or ended; *wake_ns is when to look
 * again. Called with wd.lock held. */
static bool scan_slots(uint64_t now, uint64_t *gen_sum, uint64_t *wake_ns)
{
    bool running = false;
    uint64_t sum = 0;
    uint64_t wake = now + WATCH_TICK_MAX_NS;
    for (struct watch_slot *s = atomic_load(&wd.slots); s != NULL; s = s->next) {
        uint64_t budget = atomic_load(&s->budget_ns);
        if (budget == 0)
            continue;
        if (now + tick_of(budget) < wake)
            wake = now + tick_of(budget);
        uint64_t gen = atomic_load(&s->gen);
        sum += gen;
        if ((gen & 1) == 0)
            continue;
        running = true;
        /* start_ns is stored before gen: read after it, it is this call's start or a later
         * one's, so elapsed time is never overestimated. */
        uint64_t deadline = atomic_load(&s->start_ns) + budget;
        if (now < deadline) {
            if (deadline < wake)
                wake = deadline;
        } else if (atomic_load(&s->kill_gen) != gen) {
            atomic_store(&s->kill_gen, gen);
            unsigned long id = atomic_load(&s->thread);
            pthread_t thread;
            memcpy(&thread, &id, sizeof(thread));
            pthread_sigqueue(thread, wd.signo, (union sigval){.sival_ptr = s});
        }
    }
    *gen_sum = sum;
    *wake_ns = wake;
    return running;
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wd.lock);
    uint64_t last_sum = 0;
    int quiet = 0;
    for (;;) {
        uint64_t now = uv_hrtime();
        uint64_t sum = 0, wake = 0;
        bool running = scan_slots(now, &sum, &wake);
        quiet = !running && sum == last_sum ? quiet + 1 : 0;
        last_sum = sum;
        if (quiet >= WATCH_IDLE_SCANS) {
            /* Announce the sleep, then look once more: a call that started before it saw
             * the announcement has its gen visible to this scan (both sides seq_cst). */
            atomic_store(&wd.idle, true);
            uint64_t again = 0;
            if (!scan_slots(uv_hrtime(), &again, &wake) && again == last_sum) {
                while (atomic_load(&wd.idle))
                    pthread_cond_wait(&wd.cond, &wd.lock);
            }
            atomic_store(&wd.idle, false);
            quiet = 0;
            continue;
        }
        struct timespec until = {.tv_sec = (time_t)(wake / 1000000000u),
                                 .tv_nsec = (long)(wake % 1000000000u)};
        pthread_cond_timedwait(&wd.cond, &wd.lock, &until);
    }
    return NULL;
}

static void wd_wake(void)
{
    pthread_mutex_lock(&wd.lock);
    if (atomic_load(&wd.idle)) {
        atomic_store(&wd.idle, false);
        pthread_cond_signal(&wd.cond);
    }
    pthread_mutex_unlock(&wd.lock);
}

/* The first free real-time signal from SIGRTMIN + 4: glibc keeps its own below SIGRTMIN,
 * and the lowest few are the ones applications pick first. libuv installs handlers only
 * for the signals it is asked to watch (steward: SIGINT, SIGTERM, SIGHUP). */
static int install_signal(void)
{
    for (int signo = SIGRTMIN + 4; signo <= SIGRTMAX; signo++) {
        struct sigaction old;
        if (sigaction(signo, NULL, &old) != 0)
            continue;
        if ((old.sa_flags & SA_SIGINFO) != 0 || old.sa_handler != SIG_DFL)
            continue;
        struct sigaction sa = {.sa_sigaction = on_stop_signal, .sa_flags = SA_SIGINFO | SA_RESTART};
        sigemptyset(&sa.sa_mask);
        if (sigaction(signo, &sa, NULL) == 0)
            return signo;
    }
    return 0;
}

static void wd_start(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    /* Deadlines are uv_hrtime() values: CLOCK_MONOTONIC. */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wd.cond, &attr);
    pthread_condattr_destroy(&attr);
    int signo = install_signal();
    if (signo == 0) {
        sw_log(SW_LOG_WARN, "lua",
               "no free real-time signal: policies' time budgets fall back to the count hook");
        return;
    }
    /* The watchdog takes no signal: process-directed ones belong to the loop thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t tattr;
    pthread_attr_init(&tattr);
    pthread_attr_setdetachstate(&tattr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create(&thread, &tattr, watchdog_main, NULL);
    pthread_attr_destroy(&tattr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        sw_log(SW_LOG_WARN, "lua",
               "cannot start the policy watchdog (%s): time budgets fall back to the count "
               "hook",
               strerror(rc));
        signal(signo, SIG_DFL);
        return;
    }
    wd.signo = signo;
}

/* Give sb a slot, starting the watchdog on first use. Returns false when there is no
 * watchdog: sb then keeps the count hook for its time budget. */
static bool watch_register(struct sw_lua_sandbox *sb)
{
    pthread_once(&wd.once, wd_start);
    if (wd.signo == 0)
        return false;
    pthread_mutex_lock(&wd.lock);
    struct watch_slot *slot = atomic_load(&wd.slots);
    while (slot != NULL && atomic_load(&slot->budget_ns) != 0)
        slot = slot->next;
    if (slot == NULL) {
        slot = sw_xcalloc(1, sizeof(*slot));
        slot->next = atomic_load(&wd.slots);
        atomic_store(&wd.slots, slot);
    }
    atomic_store(&slot->sb, sb);
    atomic_store(&slot->budget_ns, (uint64_t)sb->time_limit_ms * 1000000u);
    /* A sleeping watchdog chose its wake-up without this budget: let it look again. */
    pthread_cond_signal(&wd.cond);
    pthread_mutex_unlock(&wd.lock);
    sb->slot = slot;
    sb->gen = atomic_load(&slot->gen);
    return true;
}

static void watch_unregister(struct sw_lua_sandbox *sb)
{
    if (sb->slot == NULL)
        return;
    pthread_mutex_lock(&wd.lock);
    atomic_store(&sb->slot->sb, NULL);
    atomic_store(&sb->slot->budget_ns, 0);
    pthread_mutex_unlock(&wd.lock);
    sb->slot = NULL;
}

/* Two stores and a load, no syscall: the watchdog reads the slot when it wakes. */
static void watch_begin(struct sw_lua_sandbox *sb)
{
    struct watch_slot *slot = sb->slot;
    atomic_store_explicit(&sb->stop, 0, memory_order_relaxed);
    atomic_store_explicit(&sb->current, sb->L, memory_order_relaxed);
    atomic_store_explicit(&slot->thread, thread_id(), memory_order_relaxed);
    atomic_store_explicit(&slot->start_ns, uv_hrtime(), memory_order_relaxed);
    sb->gen += 1;
    atomic_store(&slot->gen, sb->gen);
    if (atomic_load(&wd.idle))
        wd_wake();
}

/* After the gen store no signal can act on this call: whatever the handler did, it did
 * before, and stop says so. */
static void watch_end(struct sw_lua_sandbox *sb)
{
    sb->gen += 1;
    atomic_store(&sb->slot->gen, sb->gen);
    if (atomic_load(&sb->stop)) {
        if (sb->trip == TRIP_NONE)
            sb->trip = TRIP_TIME;
        lua_sethook(sb->L, NULL, 0, 0);
    }
}

/* Raise when the watchdog stopped the running call: for C loops the hook cannot see. */
static void poll_stop(lua_State *L, struct sw_lua_sandbox *sb)
{
    if (sb->active && !sb->hooked && atomic_load_explicit(&sb->stop, memory_order_relaxed)) {
        sb->trip = TRIP_TIME;
        raise_overrun(L, sb, 1);
    }
}

void sw_lua_sandbox_charge(lua_State *L, uint64_t work)
{
    struct sw_lua_sandbox *sb = sw_lua_sandbox_of(L);
    if (!sb->active)
        return;
    if (!sb->hooked) {
        poll_stop(L, sb);
        return;
    }
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

/* table.move, insert and remove shift elements one by one inside one C call: moving nils
 * allocates nothing, and a __len that lies makes the shift as long as it says, so
 * table.move({}, 1, 1e15, 2) would spin for days. As in ltablib.c, with the work charged
 * first (the count hook's budget) and the watchdog's stop flag polled along the way. */
static void move_elements(lua_State *L, int from_idx, int to_idx, lua_Integer first,
                          lua_Integer count, lua_Integer dest, bool backwards)
{
    struct sw_lua_sandbox *sb = sw_lua_sandbox_of(L);
    for (lua_Integer k = 0; k < count; k++) {
        lua_Integer i = backwards ? count - 1 - k : k;
        if ((k + 1) % POLL_EVERY == 0)
            poll_stop(L, sb);
        lua_geti(L, from_idx, first + i);
        lua_seti(L, to_idx, dest + i);
    }
}

static void charge_shift(lua_State *L, lua_Integer count)
{
    if (count > 0)
        sw_lua_sandbox_charge(L, (uint64_t)count);
}

static int l_table_move(lua_State *L)
{
    lua_Integer first = luaL_checkinteger(L, 2);
    lua_Integer last = luaL_checkinteger(L, 3);
    lua_Integer dest = luaL_checkinteger(L, 4);
    int to_idx = !lua_isnoneornil(L, 5) ? 5 : 1;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, to_idx, LUA_TTABLE);
    if (last >= first) {
        luaL_argcheck(L, first > 0 || last < LUA_MAXINTEGER + first, 3,
                      "too many elements to move");
        lua_Integer count = last - first + 1;
        luaL_argcheck(L, dest <= LUA_MAXINTEGER - count + 1, 4, "destination wrap around");
        charge_shift(L, count);
        bool forwards =
            dest > last || dest <= first || (to_idx != 1 && !lua_compare(L, 1, to_idx, LUA_OPEQ));
        move_elements(L, 1, to_idx, first, count, dest, !forwards);
    }
    lua_pushvalue(L, to_idx);
    return 1;
}

static int l_table_insert(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer end = luaL_len(L, 1);
    end = (lua_Integer)((lua_Unsigned)end + 1u); /* first empty element */
    lua_Integer pos = end;
    switch (lua_gettop(L)) {
    case 2:
        break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)end, 2, "position out of bounds");
        charge_shift(L, end - pos);
        /* t[i] = t[i - 1] for i = end down to pos + 1 */
        move_elements(L, 1, 1, pos, end - pos, pos + 1, true);
        break;
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

static int l_table_remove(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer size = luaL_len(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
    lua_geti(L, 1, pos);
    if (pos < size) {
        charge_shift(L, size - pos);
        /* t[i] = t[i + 1] for i = pos up to size - 1 */
        move_elements(L, 1, 1, pos + 1, size - pos, pos, false);
        pos = size;
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
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

/* ---- coroutines: every thread is budgeted ------------------------------------------------- *
 *
 * Hooks belong to one lua_State. In hooked mode every new thread gets the count hook; in
 * watchdog mode the signal handler hooks the thread running at that moment, so every
 * switch of thread (resume, and close, which runs __close handlers in the coroutine) goes
 * through run_thread to keep sb->current true. */

static void hook_thread(lua_State *co)
{
    struct sw_lua_sandbox *sb = sw_lua_sandbox_of(co);
    if (sb->trip != TRIP_NONE || atomic_load_explicit(&sb->stop, memory_order_relaxed))
        lua_sethook(co, sb->hooked ? budget_hook : stop_hook, LUA_MASKCOUNT, 1);
    else
        set_base_hook(co, sb);
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

enum thread_op { OP_RESUME, OP_CLOSE };

/* Resume or close co with sb->current following; neither lua_resume nor the close
 * longjmps, so current is always restored. Raises when the call was stopped meanwhile. */
static int run_thread(lua_State *L, lua_State *co, enum thread_op op, int narg, int *nres)
{
    struct sw_lua_sandbox *sb = sw_lua_sandbox_of(L);
    poll_stop(L, sb);
    atomic_store_explicit(&sb->current, co, memory_order_relaxed);
    int status;
    if (op == OP_RESUME)
        status = lua_resume(co, L, narg, nres);
    else
#if LUA_VERSION_RELEASE_NUM >= 50406
        status = lua_closethread(co, L);
#else
        status = lua_resetthread(co);
#endif
    atomic_store_explicit(&sb->current, L, memory_order_relaxed);
    poll_stop(L, sb);
    return status;
}

static int auxresume(lua_State *L, lua_State *co, int narg)
{
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    lua_xmove(L, co, narg);
    int nres = 0;
    int status = run_thread(L, co, OP_RESUME, narg, &nres);
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

/* coroutine.resume as in lcorolib.c, through run_thread. */
static int l_coroutine_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co != NULL, 1, "coroutine");
    int r = auxresume(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

/* coroutine.close as in lcorolib.c, through run_thread. */
static int l_coroutine_close(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co != NULL, 1, "coroutine");
    const char *refused = NULL;
    lua_Debug ar;
    if (co == L)
        refused = "running";
    else if (lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar))
        refused = "normal"; /* it resumed another coroutine */
    if (refused != NULL)
        return luaL_error(L, "cannot close a %s coroutine", refused);
    int status = run_thread(L, co, OP_CLOSE, 0, NULL);
    if (status == LUA_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    return 2;
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
        status = run_thread(L, co, OP_CLOSE, 0, NULL);
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
    lua_pushcfunction(L, l_table_move);
    lua_setfield(L, -2, "move");
    lua_pushcfunction(L, l_table_insert);
    lua_setfield(L, -2, "insert");
    lua_pushcfunction(L, l_table_remove);
    lua_setfield(L, -2, "remove");
    lua_pop(L, 1);
    lua_getfield(L, g, "coroutine");
    lua_pushcfunction(L, l_coroutine_create);
    lua_setfield(L, -2, "create");
    lua_pushcfunction(L, l_coroutine_wrap);
    lua_setfield(L, -2, "wrap");
    lua_pushcfunction(L, l_coroutine_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, l_coroutine_close);
    lua_setfield(L, -2, "close");
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
    /* lua_ewma: steward.ewma, written in C (a module of the same name on lua_path is
     * replaced by it). */
    lua_pushcfunction(L, sw_lua_ewma_open);
    lua_setfield(L, preload, "steward.ewma");
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
    /* Without an instruction budget nothing counts instructions: INT64_MAX keeps the count
     * hook, if it has to stand in for a missing watchdog, from ever tripping on them. */
    sb->counting = opts->max_instructions > 0;
    sb->max_instructions = sb->counting ? opts->max_instructions : INT64_MAX;
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
    sb->hooked = sb->counting || !watch_register(sb);
    set_base_hook(sb->L, sb);
    lua_gc(sb->L, LUA_GCCOLLECT, 0);
    /* A policy's garbage is short-lived (one evaluation's scratch) while its module and
     * ctx tables live for the whole run, the case generational collection is for: the
     * 30-day geo simulation spends 6-12% less CPU than with incremental steps that keep
     * re-marking the long-lived tables. The memory cap still holds: an allocation the cap
     * refuses makes Lua run a full emergency collection before it raises the error. */
    lua_gc(sb->L, LUA_GCGEN, 0, 0);
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
    watch_unregister(sb);
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
        if (sb->hooked) {
            sb->deadline_ns = uv_hrtime() + (uint64_t)sb->time_limit_ms * 1000000u;
            lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
        } else {
            watch_begin(sb);
        }
        sb->active = true;
    }
    int status = lua_pcall(L, 1, 0, base + 1);
    sb->active = false;
    if (budget && !sb->hooked)
        watch_end(sb);
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
    if (budget && sb->hooked)
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
    return sb->counting ? sb->count_k : 0;
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
