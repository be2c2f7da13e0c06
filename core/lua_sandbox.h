/* lua_sandbox.h — one lua_State that untrusted policy code can run in.
 *
 * A counting allocator with a memory cap, an allow-listed standard library (removed names
 * raise "steward: <name> is not available in policies"), text-only load, require limited
 * to package.preload (filled from <lua_path>/steward/x.lua), and budgets on every call made
 * through sw_lua_sandbox_call. By default no hook runs: a watchdog thread (one per process,
 * started with the first such sandbox) signals the thread of a call past its wall-time budget
 * with a real-time signal, whose handler makes the call raise. With max_instructions set, a
 * count hook enforces both budgets instead (deterministic, about 2.4x slower Lua).
 * Context: one thread at a time per sandbox (the loop thread in steward); that thread must
 * not block the first free real-time signal from SIGRTMIN + 4.
 */
#ifndef SW_LUA_SANDBOX_H
#define SW_LUA_SANDBOX_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "error.h"

#define SW_LUA_DEFAULT_MEMORY_LIMIT (32u * 1024u * 1024u)
#define SW_LUA_DEFAULT_TIME_LIMIT_MS 1000
/* Largest Lua source file (policy, module or spec) the sandbox reads. */
#define SW_LUA_MAX_SOURCE_BYTES (1024u * 1024u)

struct sw_lua_sandbox;

struct sw_lua_sandbox_opts {
    const char *name;         /* for log lines; borrowed for the call */
    const char *lua_path;     /* directory holding steward/x.lua; NULL = built-in default */
    bool with_testing;        /* also preload steward.testing (the spec runner only) */
    struct sw_clock *clock;   /* borrowed, may be NULL: os.time() then follows
                               * sw_lua_sandbox_set_now */
    uint64_t seed;            /* math.random seed */
    int64_t max_instructions; /* per call; 0 = none (watchdog mode), > 0 = strict mode */
    size_t memory_limit;      /* bytes; 0 = SW_LUA_DEFAULT_MEMORY_LIMIT */
    int64_t time_limit_ms;    /* monotonic time per call; 0 = SW_LUA_DEFAULT_TIME_LIMIT_MS */
    void (*log_fn)(void *ud, int level, const char *msg); /* NULL = sw_log */
    void *log_ud;
};

/* Create the state, open and restrict the libraries, preload the steward modules.
 * Returns an owned sandbox (sw_lua_sandbox_free) or NULL with err: SW_EIO when lua_path
 * or a module cannot be read, SW_EPOLICY when a module does not compile, SW_ENOMEM when
 * the state cannot be created. */
struct sw_lua_sandbox *sw_lua_sandbox_new(const struct sw_lua_sandbox_opts *opts,
                                          struct sw_error *err);
/* Closes the state. NULL is a no-op. */
void sw_lua_sandbox_free(struct sw_lua_sandbox *sb);

/* The state, owned by sb. Only touch it from inside sw_lua_sandbox_call: outside a
 * protected call a memory error would abort the process. */
lua_State *sw_lua_sandbox_state(struct sw_lua_sandbox *sb);
/* The sandbox a state belongs to (any thread of it). */
struct sw_lua_sandbox *sw_lua_sandbox_of(lua_State *L);

/* Run fn(L) under lua_pcall with a luaL_traceback message handler. fn finds ud as a light
 * userdata at index 1 and must leave nothing it needs on the stack. With budget, the
 * instruction counter (strict mode) and the time budget start afresh; a budget overrun
 * fails the call even if the Lua code caught the error.
 * Returns 0, or SW_EPOLICY with the message (and traceback, [C] frames dropped) in err,
 * truncated to fit; sw_lua_sandbox_last_error has the full text. */
int sw_lua_sandbox_call(struct sw_lua_sandbox *sb, lua_CFunction fn, void *ud, bool budget,
                        struct sw_error *err);
/* Full text of the last failure of sw_lua_sandbox_call; borrowed until the next call,
 * "" when the last call succeeded. */
const char *sw_lua_sandbox_last_error(const struct sw_lua_sandbox *sb);

/* Compile Lua source (text only, never bytecode) with the sandbox's globals as its
 * environment and push the function. chunkname follows lua_load ("@file" for files).
 * On a syntax error pushes nothing and raises the message: call inside
 * sw_lua_sandbox_call. */
void sw_lua_sandbox_load(lua_State *L, const char *text, size_t len, const char *chunkname);

/* Read a whole file of at most max_bytes into an owned NUL-terminated buffer (free()).
 * Returns NULL with err: SW_EIO when unreadable, SW_ETOOBIG when larger than max_bytes. */
char *sw_lua_sandbox_read_file(const char *path, size_t max_bytes, size_t *len_out,
                               struct sw_error *err);

/* For C functions whose work the hooks cannot see (pattern matching): count work as that
 * many VM instructions against the running call's budget (strict mode) and raise
 * "instruction budget exceeded" / "time budget exceeded" (with the caller's position)
 * when over; in watchdog mode only the second, once the watchdog stopped the call. Call it
 * at least every few thousand steps of a loop. A no-op outside a budgeted call. L must
 * belong to a sandbox. */
void sw_lua_sandbox_charge(lua_State *L, uint64_t work);

/* Instructions counted by the hook during the last budgeted call, in units of 1000; 0 when
 * not measured (no instruction budget: watchdog mode counts nothing). */
uint64_t sw_lua_sandbox_instructions(const struct sw_lua_sandbox *sb);
/* Bytes the Lua heap holds now. */
size_t sw_lua_sandbox_memory(const struct sw_lua_sandbox *sb);

/* Epoch ms as os.time() sees it: the clock's, or the value set here when there is no
 * clock (the spec runner drives it from fake ctx times). */
int64_t sw_lua_sandbox_now_ms(struct sw_lua_sandbox *sb);
void sw_lua_sandbox_set_now(struct sw_lua_sandbox *sb, int64_t now_ms);

/* Send one line to the sandbox's log_fn (or sw_log) at level (SW_LOG_*). */
void sw_lua_sandbox_log(struct sw_lua_sandbox *sb, int level, const char *msg);

/* The lua_path in use (opts->lua_path or the default); "" when none was found. */
const char *sw_lua_sandbox_lua_path(const struct sw_lua_sandbox *sb);

#endif /* SW_LUA_SANDBOX_H */
