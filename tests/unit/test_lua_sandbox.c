/* test_lua_sandbox.c — the budgets of the Lua sandbox: by default no hook runs and the
 * watchdog stops a call past its time budget wherever it loops (VM, pcall, coroutines,
 * __close handlers, the pattern matcher, table shifts); strict mode counts instructions;
 * the memory cap holds; normal calls, however many, are never interrupted. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "lua_sandbox.h"
#include "sw_test.h"

/* clock.c belongs to another module; weak so the real one wins once it is linked. */
__attribute__((weak)) int64_t sw_clock_now(struct sw_clock *clock)
{
    return clock->ops->now_ms(clock);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static struct sw_lua_sandbox *new_sandbox(int64_t time_limit_ms, int64_t max_instructions,
                                          size_t memory_limit)
{
    struct sw_lua_sandbox_opts opts = {
        .name = "test",
        .lua_path = SW_SOURCE_DIR "/lua",
        .seed = 1,
        .max_instructions = max_instructions,
        .memory_limit = memory_limit,
        .time_limit_ms = time_limit_ms,
    };
    struct sw_error err = {0};
    struct sw_lua_sandbox *sb = sw_lua_sandbox_new(&opts, &err);
    if (sb == NULL)
        fprintf(stderr, "    sw_lua_sandbox_new: %s\n", err.msg);
    return sb;
}

struct chunk {
    const char *text;
    bool hooked; /* out: a hook was set on the main thread when the call began */
};

static int run_chunk(lua_State *L)
{
    struct chunk *c = lua_touserdata(L, 1);
    c->hooked = lua_gethook(L) != NULL;
    sw_lua_sandbox_load(L, c->text, strlen(c->text), "=test");
    lua_call(L, 0, 0);
    return 0;
}

/* Runs text as a budgeted call; *elapsed_ms (optional) is how long the call took. */
static int run(struct sw_lua_sandbox *sb, const char *text, double *elapsed_ms,
               struct sw_error *err)
{
    struct chunk c = {.text = text};
    double t0 = now_ms();
    int rc = sw_lua_sandbox_call(sb, run_chunk, &c, true, err);
    if (elapsed_ms != NULL)
        *elapsed_ms = now_ms() - t0;
    return rc;
}

/* Busy-loop iterations that take about target_ms here and now (measured unbudgeted). */
static long calibrate(struct sw_lua_sandbox *sb, double target_ms)
{
    struct sw_error err = {0};
    struct chunk c = {.text = "local n = 0 for i = 1, 2000000 do n = n + i end"};
    double t0 = now_ms();
    if (sw_lua_sandbox_call(sb, run_chunk, &c, false, &err) < 0)
        return 0;
    double elapsed = now_ms() - t0;
    if (elapsed < 0.1)
        elapsed = 0.1;
    return (long)(2000000.0 * target_ms / elapsed);
}

/* A 100 ms budget, the watchdog wakes every 25 ms: stopped within about 125 ms plus the
 * signal's latency. The upper bound leaves room for a loaded machine and the sanitizers. */
static void expect_stopped(const char *text, const char *where)
{
    struct sw_lua_sandbox *sb = new_sandbox(100, 0, 0);
    SW_ASSERT(sb != NULL);
    struct sw_error err = {0};
    double elapsed = 0;
    SW_ASSERT_EQ(run(sb, text, &elapsed, &err), SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, "time budget exceeded (100 ms)");
    if (where != NULL)
        SW_ASSERT_CONTAINS(err.msg, where);
    fprintf(stderr, "    stopped after %.1f ms\n", elapsed);
    SW_ASSERT(elapsed >= 99.0);
    SW_ASSERT(elapsed < 1500.0);
    /* The sandbox works afterwards, with no hook left behind. */
    struct chunk c = {.text = "local t = {} for i = 1, 1000 do t[i] = i end"};
    SW_ASSERT_EQ(sw_lua_sandbox_call(sb, run_chunk, &c, true, &err), 0);
    SW_ASSERT(!c.hooked);
    SW_ASSERT_EQ(sw_lua_sandbox_instructions(sb), 0);
    sw_lua_sandbox_free(sb);
}

SW_TEST(default_mode_runs_without_a_hook)
{
    struct sw_lua_sandbox *sb = new_sandbox(100, 0, 0);
    SW_ASSERT(sb != NULL);
    struct chunk c = {.text = "local n = 0 for i = 1, 1000 do n = n + i end"};
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_lua_sandbox_call(sb, run_chunk, &c, true, &err), 0);
    SW_ASSERT(!c.hooked);
    /* Not measured: 0, not a guess. */
    SW_ASSERT_EQ(sw_lua_sandbox_instructions(sb), 0);
    sw_lua_sandbox_free(sb);
}

SW_TEST(endless_loop_stops_at_the_time_budget)
{
    expect_stopped("while true do end", "test:1: time budget exceeded");
}

SW_TEST(pcall_cannot_swallow_the_stop)
{
    expect_stopped("while true do pcall(function() while true do end end) end", NULL);
    expect_stopped("while true do pcall(error, 'x') end", NULL);
}

SW_TEST(loop_in_a_coroutine_is_stopped)
{
    expect_stopped("coroutine.wrap(function() while true do end end)()", NULL);
    /* resume catches the error inside the coroutine; the call fails anyway. */
    expect_stopped("local co = coroutine.create(function() while true do end end)\n"
                   "local ok = coroutine.resume(co)\n",
                   NULL);
    /* Time spent across threads that take turns. */
    expect_stopped("local co = coroutine.wrap(function()\n"
                   "  while true do for i = 1, 100 do end coroutine.yield() end end)\n"
                   "while true do co() end",
                   NULL);
    /* Nested coroutines. */
    expect_stopped("coroutine.wrap(function()\n"
                   "  coroutine.wrap(function() while true do end end)() end)()",
                   NULL);
}

SW_TEST(close_handlers_in_a_coroutine_are_stopped)
{
    expect_stopped("local co = coroutine.create(function()\n"
                   "  local x <close> = setmetatable({}, {__close = function()\n"
                   "    while true do end end})\n"
                   "  coroutine.yield() end)\n"
                   "coroutine.resume(co) coroutine.close(co)",
                   NULL);
    expect_stopped("coroutine.wrap(function()\n"
                   "  local x <close> = setmetatable({}, {__close = function()\n"
                   "    while true do end end})\n"
                   "  error('boom') end)()",
                   NULL);
}

SW_TEST(pattern_matching_is_stopped)
{
    /* Exponential backtracking inside one C call. */
    expect_stopped("string.find(string.rep('a', 3000), string.rep('a-', 30) .. 'b')",
                   "test:1: time budget exceeded");
    expect_stopped("pcall(string.gsub, string.rep('a', 3000), string.rep('a?', 25) .. 'b', 'x')\n"
                   "while true do end",
                   NULL);
    expect_stopped("local s = string.rep('ab', 100000)\n"
                   "while true do s = s:gsub('a', 'a') end",
                   NULL);
}

SW_TEST(table_shifts_are_stopped)
{
    expect_stopped("table.move({}, 1, 1e15, 2)", "test:1: time budget exceeded");
    expect_stopped("local t = setmetatable({}, {__len = function() return 1e15 end})\n"
                   "table.insert(t, 1, 'x')",
                   NULL);
    expect_stopped("local t = setmetatable({}, {__len = function() return 1e15 end})\n"
                   "table.remove(t, 1)",
                   NULL);
}

SW_TEST(table_functions_behave_as_stock)
{
    struct sw_lua_sandbox *sb = new_sandbox(1000, 0, 0);
    SW_ASSERT(sb != NULL);
    struct sw_error err = {0};
    int rc = run(sb,
                 "local t = {1, 2, 3}\n"
                 "table.insert(t, 4) table.insert(t, 1, 0) table.insert(t, 3, 9)\n"
                 "assert(table.concat(t, ',') == '0,1,9,2,3,4', table.concat(t, ','))\n"
                 "assert(table.remove(t) == 4 and table.remove(t, 1) == 0)\n"
                 "assert(table.concat(t, ',') == '1,9,2,3', table.concat(t, ','))\n"
                 "assert(table.remove({}) == nil and table.remove(t, #t + 1) == nil)\n"
                 "local m = table.move({1, 2, 3, 4}, 1, 3, 2)\n"
                 "assert(table.concat(m, ',') == '1,1,2,3', table.concat(m, ','))\n"
                 "m = table.move({1, 2, 3, 4}, 2, 4, 1)\n"
                 "assert(table.concat(m, ',') == '2,3,4,4', table.concat(m, ','))\n"
                 "local dst = table.move({1, 2}, 1, 2, 3, {7, 8})\n"
                 "assert(table.concat(dst, ',') == '7,8,1,2')\n"
                 "assert(not pcall(table.insert, t, 9, 1))\n"
                 "assert(not pcall(table.insert, t, 1, 2, 3))\n"
                 "assert(not pcall(table.remove, t, 9))\n"
                 "assert(not pcall(table.move, {}, -1, math.maxinteger, 1))\n",
                 NULL, &err);
    if (rc < 0)
        fprintf(stderr, "    %s\n", err.msg);
    SW_ASSERT_EQ(rc, 0);
    sw_lua_sandbox_free(sb);
}

SW_TEST(strict_mode_counts_instructions)
{
    struct sw_lua_sandbox *sb = new_sandbox(60000, 1000000, 0);
    SW_ASSERT(sb != NULL);
    struct sw_error err = {0};
    SW_ASSERT_EQ(run(sb, "local n = 0 for i = 1, 100000 do n = n + i end", NULL, &err), 0);
    /* Two VM instructions per iteration. */
    SW_ASSERT(sw_lua_sandbox_instructions(sb) >= 150);
    SW_ASSERT(sw_lua_sandbox_instructions(sb) <= 300);
    SW_ASSERT_EQ(run(sb, "while true do end", NULL, &err), SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, "instruction budget exceeded (1000000 instructions)");
    SW_ASSERT_EQ(run(sb, "while true do pcall(function() while true do end end) end", NULL, &err),
                 SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, "instruction budget exceeded");
    SW_ASSERT_EQ(run(sb, "table.move({}, 1, 1e15, 2)", NULL, &err), SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, "instruction budget exceeded");
    struct chunk c = {.text = "return"};
    SW_ASSERT_EQ(sw_lua_sandbox_call(sb, run_chunk, &c, true, &err), 0);
    SW_ASSERT(c.hooked);
    sw_lua_sandbox_free(sb);
}

SW_TEST(memory_budget_unchanged)
{
    struct sw_lua_sandbox *sb = new_sandbox(60000, 0, 4u << 20);
    SW_ASSERT(sb != NULL);
    struct sw_error err = {0};
    SW_ASSERT_EQ(run(sb, "local t = {} while true do t[#t + 1] = {} end", NULL, &err), SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, "memory limit exceeded (4194304 bytes)");
    SW_ASSERT_EQ(run(sb, "local t = {} for i = 1, 100 do t[i] = {} end", NULL, &err), 0);
    sw_lua_sandbox_free(sb);
}

/* Generational collection: garbage far past the cap, made across many calls and within
 * one, is collected (young or by the full collection a refused allocation triggers), and
 * data kept across calls survives. */
SW_TEST(garbage_never_counts_against_the_cap)
{
    struct sw_lua_sandbox *sb = new_sandbox(60000, 0, 4u << 20);
    SW_ASSERT(sb != NULL);
    struct sw_error err = {0};
    SW_ASSERT_EQ(run(sb, "kept = {} for i = 1, 1000 do kept[i] = string.rep('k', 100) .. i end",
                     NULL, &err),
                 0);
    for (int call = 0; call < 50; call++)
        SW_ASSERT_EQ(run(sb, "for i = 1, 2000 do local t = {string.rep('x', 200) .. i} end", NULL,
                         &err),
                     0);
    SW_ASSERT_EQ(run(sb, "for i = 1, 200000 do local t = {i, string.rep('y', 64) .. i} end "
                         "assert(#kept == 1000 and kept[1000] == string.rep('k', 100) .. 1000)",
                     NULL, &err),
                 0);
    SW_ASSERT(lua_gc(sw_lua_sandbox_state(sb), LUA_GCCOUNT, 0) < 4096);
    sw_lua_sandbox_free(sb);
}

SW_TEST(normal_calls_are_never_interrupted)
{
    /* Calls of about a fifth of the budget, next to a sandbox with a far smaller one: each
     * slot is judged by its own budget. */
    struct sw_lua_sandbox *tight = new_sandbox(20, 0, 0);
    struct sw_lua_sandbox *sb = new_sandbox(250, 0, 0);
    SW_ASSERT(tight != NULL && sb != NULL);
    long loops = calibrate(sb, 50.0);
    SW_ASSERT(loops > 0);
    char text[128];
    snprintf(text, sizeof(text), "local n = 0 for i = 1, %ld do n = n + i end", loops);
    struct sw_error err = {0};
    for (int i = 0; i < 10; i++) {
        double elapsed = 0;
        int rc = run(sb, text, &elapsed, &err);
        if (rc < 0)
            fprintf(stderr, "    call %d (%.1f ms): %s\n", i, elapsed, err.msg);
        SW_ASSERT_EQ(rc, 0);
        SW_ASSERT_EQ(run(tight, "return", NULL, &err), 0);
    }
    sw_lua_sandbox_free(tight);
    sw_lua_sandbox_free(sb);
}

static int call_f(lua_State *L)
{
    lua_getglobal(L, "f");
    lua_call(L, 0, 0);
    return 0;
}

SW_TEST(many_short_calls_in_a_row)
{
    struct sw_lua_sandbox *sb = new_sandbox(50, 0, 0);
    SW_ASSERT(sb != NULL);
    struct sw_error err = {0};
    SW_ASSERT_EQ(run(sb,
                     "function f()\n"
                     "  local x = 0 for i = 1, 20 do x = x + i end\n"
                     "  local co = coroutine.wrap(function() coroutine.yield(x) end) co()\n"
                     "end",
                     NULL, &err),
                 0);
    int failures = 0;
    for (int i = 0; i < 100000; i++) {
        if (sw_lua_sandbox_call(sb, call_f, NULL, true, &err) < 0) {
            if (failures++ == 0)
                fprintf(stderr, "    call %d: %s\n", i, err.msg);
        }
    }
    SW_ASSERT_EQ(failures, 0);
    sw_lua_sandbox_free(sb);
}

SW_TEST(watchdog_wakes_after_idling)
{
    struct sw_lua_sandbox *sb = new_sandbox(50, 0, 0);
    SW_ASSERT(sb != NULL);
    struct sw_error err = {0};
    for (int round = 0; round < 3; round++) {
        /* Long enough for the watchdog to find nothing running and sleep. */
        usleep(300 * 1000);
        double elapsed = 0;
        SW_ASSERT_EQ(run(sb, "while true do end", &elapsed, &err), SW_EPOLICY);
        SW_ASSERT_CONTAINS(err.msg, "time budget exceeded (50 ms)");
        SW_ASSERT(elapsed < 1500.0);
    }
    sw_lua_sandbox_free(sb);
}

SW_TEST(slots_are_reused)
{
    for (int i = 0; i < 50; i++)
        sw_lua_sandbox_free(new_sandbox(100, 0, 0));
    expect_stopped("while true do end", NULL);
}

SW_TEST(unbudgeted_calls_are_not_stopped)
{
    struct sw_lua_sandbox *sb = new_sandbox(20, 0, 0);
    SW_ASSERT(sb != NULL);
    long loops = calibrate(sb, 60.0);
    char text[128];
    snprintf(text, sizeof(text), "local n = 0 for i = 1, %ld do n = n + i end", loops);
    struct chunk c = {.text = text};
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_lua_sandbox_call(sb, run_chunk, &c, false, &err), 0);
    sw_lua_sandbox_free(sb);
}

SW_TEST_MAIN()
