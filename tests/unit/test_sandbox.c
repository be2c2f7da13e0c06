/* test_sandbox.c — every way out of the policy sandbox is refused with a clear error, and
 * the engine keeps working: the next evaluate succeeds, the failed one leaves the last
 * good desired state in place and counts one error. */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "mem.h"
#include "policy.h"
#include "sw_test.h"

/* clock.c belongs to another module; weak so the real one wins once it is linked. */
__attribute__((weak)) int64_t sw_clock_now(struct sw_clock *clock)
{
    return clock->ops->now_ms(clock);
}

static char tmp_dir[] = "/tmp/sw_sandbox_XXXXXX";

__attribute__((destructor)) static void remove_tmp_dir(void)
{
    DIR *dir = opendir(tmp_dir);
    if (dir == NULL)
        return;
    struct dirent *ent;
    char path[600];
    while ((ent = readdir(dir)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmp_dir, ent->d_name);
        unlink(path);
    }
    closedir(dir);
    rmdir(tmp_dir);
}

static const char *write_policy(const char *text)
{
    static char path[512];
    /* A flag, not a look at the template: mkdtemp may put an 'X' back where one was. */
    static bool tmp_made;
    if (!tmp_made && mkdtemp(tmp_dir) == NULL)
        abort();
    tmp_made = true;
    snprintf(path, sizeof(path), "%s/escape.lua", tmp_dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static struct sw_group_config groups[2] = {
    {.name = "web", .max = 10},
    {.name = "batch", .max = 10},
};

static struct sw_units units;

static struct sw_policy_input input(void)
{
    if (units.count == 0) {
        struct sw_unit *u = sw_unit_new("k1", "web", "eu-west");
        u->state = SW_UNIT_READY;
        sw_units_add(&units, u);
    }
    return (struct sw_policy_input){
        .now_ms = 1700000000000,
        .units = &units,
        .groups = groups,
        .group_count = 2,
    };
}

__attribute__((destructor)) static void free_units(void)
{
    sw_units_clear(&units);
}

/* The escape runs on the second call only; the line of ESCAPE in the file is 5. */
#define TEMPLATE                                                                                   \
    "local calls = 0\n"                                                                            \
    "return {name = 'escape', evaluate = function(ctx)\n"                                          \
    "  calls = calls + 1\n"                                                                        \
    "  if calls == 2 then\n"                                                                       \
    "%s\n"                                                                                         \
    "  end\n"                                                                                      \
    "  return {web = {eu = calls}}\n"                                                              \
    "end}\n"

static struct sw_policy *new_policy(const char *escape, size_t memory_limit, int64_t time_limit_ms,
                                    int64_t max_instructions)
{
    char text[4096];
    snprintf(text, sizeof(text), TEMPLATE, escape);
    struct sw_policy_opts opts = {
        .file = write_policy(text),
        .lua_path = SW_SOURCE_DIR "/lua",
        .seed = 7,
        .memory_limit = memory_limit,
        .time_limit_ms = time_limit_ms,
        .max_instructions = max_instructions,
    };
    struct sw_error err = {0};
    struct sw_policy *p = sw_policy_new(&opts, &err);
    if (p == NULL)
        fprintf(stderr, "    sw_policy_new: %s\n", err.msg);
    return p;
}

/* Good call, escape (refused with expect in the message), good call again. Returns the
 * full error text of the refused call (owned). */
static char *check_escape_with(const char *escape, const char *expect, size_t memory_limit,
                               int64_t time_limit_ms)
{
    /* An expected instruction overrun needs strict mode: an instruction budget set. */
    int64_t max_instructions = strstr(expect, "instruction budget") != NULL ? 10000000 : 0;
    struct sw_policy *p = new_policy(escape, memory_limit, time_limit_ms, max_instructions);
    SW_ASSERT(p != NULL);
    struct sw_policy_input in = input();
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};

    SW_ASSERT_EQ(sw_policy_eval(p, &in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "eu"), 1);

    int rc = sw_policy_eval(p, &in, &out, &err);
    if (rc == 0)
        fprintf(stderr, "    escape was not refused: %s\n", escape);
    SW_ASSERT_EQ(rc, SW_EPOLICY);
    SW_ASSERT_EQ(err.code, SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, expect);
    SW_ASSERT_EQ(sw_policy_error_count(p), 1);
    /* The failed call hands back the last good desired state. */
    SW_ASSERT_EQ(out.desired.count, 1);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "eu"), 1);
    SW_ASSERT_EQ(sw_desired_get(sw_policy_last_good(p), "web", "eu"), 1);
    char *full = sw_xstrdup(sw_policy_last_error(p));

    SW_ASSERT_EQ(sw_policy_eval(p, &in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "eu"), 3);
    SW_ASSERT_EQ(sw_desired_get(sw_policy_last_good(p), "web", "eu"), 3);
    SW_ASSERT_EQ(sw_policy_error_count(p), 1);
    SW_ASSERT_STREQ(sw_policy_last_error(p), "");
    sw_policy_result_clear(&out);
    sw_policy_free(p);
    return full;
}

static void check_escape(const char *escape, const char *expect)
{
    /* Under ASan on a loaded machine 10M instructions can outlast the default 1 s: give
     * the instruction budget room to be the limit that trips. A time overrun gets 100 ms. */
    bool instructions = strstr(expect, "instruction budget") != NULL;
    bool time = strstr(expect, "time budget") != NULL;
    free(check_escape_with(escape, expect, 0, instructions ? 60000 : time ? 100 : 0));
}

SW_TEST(io_open_refused)
{
    check_escape("io.open('/etc/passwd')", "steward: io.open is not available in policies");
}

SW_TEST(io_lines_and_write_refused)
{
    check_escape("io.write('x')", "steward: io.write is not available in policies");
}

SW_TEST(os_execute_refused)
{
    check_escape("os.execute('touch /tmp/sw_pwned')",
                 "steward: os.execute is not available in policies");
    SW_ASSERT(access("/tmp/sw_pwned", F_OK) != 0);
}

SW_TEST(os_exit_and_getenv_refused)
{
    check_escape("os.exit(1)", "steward: os.exit is not available in policies");
    check_escape("os.getenv('HOME')", "steward: os.getenv is not available in policies");
}

SW_TEST(require_os_refused)
{
    check_escape("require 'os'", "steward: module 'os' is not available in policies");
}

SW_TEST(require_io_refused)
{
    check_escape("require 'io'", "steward: module 'io' is not available in policies");
}

SW_TEST(require_error_lists_what_is_available)
{
    check_escape("require 'socket'", "steward.smooth");
}

SW_TEST(load_bytecode_string_refused)
{
    check_escape("local f, e = load('\\27LuaT\\0\\25\\147\\r\\n\\26\\n') assert(f, e)",
                 "steward: binary chunks are not available in policies");
}

SW_TEST(load_bytecode_reader_refused)
{
    /* A reader function bypasses the first-byte check; the forced "t" mode still holds. */
    check_escape("local done = false\n"
                 "local f, e = load(function() if done then return nil end done = true\n"
                 "  return '\\27LuaT\\0' end, 'chunk', 'b') assert(f, e)",
                 "attempt to load a binary chunk (mode is 't')");
}

SW_TEST(load_text_still_works_in_sandbox_env)
{
    /* Text chunks load, see the sandbox globals, and get no io either. */
    check_escape("local f = assert(load('return io.open')) f()",
                 "steward: io.open is not available in policies");
}

SW_TEST(string_dump_refused)
{
    check_escape("local s = string.dump(function() end)",
                 "steward: string.dump is not available in policies");
}

SW_TEST(debug_sethook_refused)
{
    check_escape("debug.sethook()", "steward: debug.sethook is not available in policies");
}

SW_TEST(package_loadlib_refused)
{
    check_escape("package.loadlib('libc.so.6', 'system')",
                 "steward: package.loadlib is not available in policies");
}

SW_TEST(dofile_refused)
{
    check_escape("dofile('/etc/passwd')", "steward: dofile is not available in policies");
}

SW_TEST(loadfile_refused)
{
    check_escape("loadfile('/etc/passwd')", "steward: loadfile is not available in policies");
}

SW_TEST(collectgarbage_only_count)
{
    check_escape("assert(collectgarbage('count') > 0) collectgarbage('collect')",
                 "steward: collectgarbage(\"collect\") is not available in policies");
}

SW_TEST(gc_metamethod_refused)
{
    check_escape("setmetatable({}, {__gc = function() while true do end end})",
                 "steward: __gc metamethods are not available in policies");
    check_escape("local mt = setmetatable({}, {__index = function() return nil end})\n"
                 "rawset(mt, '__gc', false) setmetatable({}, mt)",
                 "steward: __gc metamethods are not available in policies");
}

SW_TEST(endless_loop_hits_instruction_budget)
{
    check_escape("while true do end", "instruction budget exceeded");
}

/* Without limits.instructions the watchdog stops what the hook stopped in strict mode. */
SW_TEST(endless_loops_hit_the_time_budget_by_default)
{
    check_escape("while true do end", "escape.lua:5: time budget exceeded (100 ms)");
    check_escape("coroutine.wrap(function() while true do end end)()", "time budget exceeded");
    check_escape("local co = coroutine.create(function() while true do end end)\n"
                 "local ok = coroutine.resume(co)\n"
                 "return {web = {eu = 99}}",
                 "time budget exceeded");
    check_escape("while true do pcall(function() while true do end end) end",
                 "time budget exceeded");
    check_escape("string.find(string.rep('a', 3000), string.rep('a-', 30) .. 'b')",
                 "escape.lua:5: time budget exceeded");
    check_escape("table.move({}, 1, 1e15, 2)", "time budget exceeded");
}

SW_TEST(endless_loop_in_coroutine_hits_budget)
{
    check_escape("coroutine.wrap(function() while true do end end)()",
                 "instruction budget exceeded");
}

SW_TEST(caught_coroutine_overrun_still_fails)
{
    /* resume catches the error inside the coroutine; the call must fail anyway. */
    check_escape("local co = coroutine.create(function() while true do end end)\n"
                 "local ok = coroutine.resume(co)\n"
                 "return {web = {eu = 99}}",
                 "instruction budget exceeded");
}

SW_TEST(pcall_cannot_swallow_the_budget)
{
    check_escape("while true do pcall(function() while true do end end) end",
                 "instruction budget exceeded");
}

SW_TEST(wall_time_budget)
{
    /* An instruction budget too large to hit in 50 ms: the deadline stops it. */
    struct sw_policy *p = NULL;
    char text[1024];
    snprintf(text, sizeof(text), TEMPLATE, "while true do end");
    struct sw_policy_opts opts = {
        .file = write_policy(text),
        .lua_path = SW_SOURCE_DIR "/lua",
        .max_instructions = INT64_MAX / 2,
        .time_limit_ms = 50,
    };
    struct sw_error err = {0};
    p = sw_policy_new(&opts, &err);
    SW_ASSERT(p != NULL);
    struct sw_policy_input in = input();
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    SW_ASSERT_EQ(sw_policy_eval(p, &in, &out, &err), 0);
    SW_ASSERT_EQ(sw_policy_eval(p, &in, &out, &err), SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, "time budget exceeded (50 ms)");
    SW_ASSERT_EQ(sw_policy_eval(p, &in, &out, &err), 0);
    SW_ASSERT_EQ(sw_desired_get(&out.desired, "web", "eu"), 3);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
}

SW_TEST(backtracking_pattern_hits_the_budget)
{
    /* Exponential backtracking inside one C call: the matcher charges its steps. */
    check_escape("string.find(string.rep('a', 3000), string.rep('a-', 30) .. 'b')",
                 "instruction budget exceeded");
    check_escape("pcall(string.match, string.rep('a', 3000), string.rep('a*', 20) .. 'b')\n"
                 "return {web = {eu = 99}}",
                 "instruction budget exceeded");
    check_escape("for w in string.gmatch(string.rep('a', 3000), string.rep('a-', 25) .. 'b') "
                 "do end",
                 "instruction budget exceeded");
    check_escape("string.gsub(string.rep('a', 3000), string.rep('a?', 25) .. 'b', 'x')",
                 "instruction budget exceeded");
}

SW_TEST(backtracking_pattern_hits_the_time_budget)
{
    char text[1024];
    snprintf(text, sizeof(text), TEMPLATE,
             "string.find(string.rep('a', 3000), string.rep('a-', 30) .. 'b')");
    struct sw_policy_opts opts = {
        .file = write_policy(text),
        .lua_path = SW_SOURCE_DIR "/lua",
        .max_instructions = INT64_MAX / 2,
        .time_limit_ms = 50,
    };
    struct sw_error err = {0};
    struct sw_policy *p = sw_policy_new(&opts, &err);
    SW_ASSERT(p != NULL);
    struct sw_policy_input in = input();
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    SW_ASSERT_EQ(sw_policy_eval(p, &in, &out, &err), 0);
    SW_ASSERT_EQ(sw_policy_eval(p, &in, &out, &err), SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, "escape.lua:5: time budget exceeded (50 ms)");
    SW_ASSERT_EQ(sw_policy_eval(p, &in, &out, &err), 0);
    sw_policy_result_clear(&out);
    sw_policy_free(p);
}

SW_TEST(table_move_is_charged)
{
    check_escape("table.move({}, 1, 1e15, 2)", "instruction budget exceeded");
    check_escape("local t = table.move({1, 2, 3}, 1, 3, 2) error(table.concat(t, ','))", "1,1,2,3");
}

SW_TEST(patterns_work_in_the_sandbox)
{
    check_escape("local a, b = ('eu-west-1'):match('^(%w+)-(%w+)')\n"
                 "local n = select(2, ('a,b,c'):gsub(',', ';'))\n"
                 "local words = {} for w in ('x y z'):gmatch('%a') do words[#words + 1] = w end\n"
                 "error(a .. b .. n .. #words .. ('hello'):find('l+'))",
                 "euwest233");
}

SW_TEST(string_rep_capped)
{
    check_escape("local s = string.rep('x', 1e10)", "string.rep: result of 10000000000 bytes");
    check_escape("local s = ('x'):rep(1 << 40, ',')", "exceeds the");
}

SW_TEST(table_growing_forever_hits_memory_cap)
{
    free(check_escape_with("local t = {} local i = 0\n"
                           "while true do i = i + 1 t[i] = {i, tostring(i)} end",
                           "memory limit exceeded (8388608 bytes)", 8u << 20, 0));
}

SW_TEST(string_concat_growth_hits_memory_cap)
{
    check_escape("local s = 'x' while true do s = s .. s end", "memory limit exceeded");
}

SW_TEST(error_has_traceback_with_file_and_line)
{
    char *full = check_escape_with("error('boom')", "escape.lua:5: boom", 0, 0);
    SW_ASSERT_CONTAINS(full, "escape.lua:5: boom");
    SW_ASSERT_CONTAINS(full, "stack traceback:");
    SW_ASSERT_CONTAINS(full, "escape.lua:5: in function");
    /* The sandbox's own C frames are left out. */
    SW_ASSERT(strstr(full, "[C]") == NULL);
    free(full);
}

SW_TEST(error_in_nested_function_traceback)
{
    char *full = check_escape_with("local function inner() local x = nil; return x.field end\n"
                                   "inner()",
                                   "attempt to index a nil value", 0, 0);
    SW_ASSERT_CONTAINS(full, "escape.lua:5: in local 'inner'");
    SW_ASSERT_CONTAINS(full, "escape.lua:6:");
    free(full);
}

SW_TEST(non_table_return)
{
    check_escape("return 42",
                 "evaluate returned number, expected a table {group = {region = count}}");
}

SW_TEST(nil_return)
{
    check_escape("return nil", "evaluate returned nil, expected a table");
}

SW_TEST(negative_replica_count)
{
    check_escape("return {web = {['eu-west'] = -1}}",
                 "desired.web[\"eu-west\"]: expected integer >= 0, got -1");
}

SW_TEST(fractional_and_huge_counts)
{
    check_escape("return {web = {eu = 1.5}}", "desired.web.eu: expected integer >= 0, got 1.5");
    check_escape("return {web = {eu = 20000}}",
                 "desired.web.eu: expected integer <= 10000, got 20000");
    check_escape("return {web = {eu = '3'}}", "desired.web.eu: expected integer >= 0, got string");
}

SW_TEST(unknown_group)
{
    check_escape("return {foo = {eu = 1}}", "desired.foo: unknown group (configured: web, batch)");
}

SW_TEST(region_table_and_keys_checked)
{
    check_escape("return {web = 3}", "desired.web: expected a table {region = count}, got 3");
    check_escape("return {web = {3}}", "desired.web[1]: region names must be strings");
}

SW_TEST(writes_to_ctx_leases_refused)
{
    check_escape("ctx.leases[1] = {}", "ctx.leases is read-only");
    check_escape("ctx.leases = {}", "ctx.leases is read-only");
    check_escape("ctx.leases[1].state = 'closed'", "ctx.leases[1] is read-only");
    check_escape("table.insert(ctx.leases, 1)", "ctx.leases is read-only");
}

SW_TEST(protected_metatables)
{
    check_escape("setmetatable(ctx.leases, nil)", "cannot change a protected metatable");
    check_escape("getmetatable(ctx).__newindex = nil", "attempt to index a string value");
}

SW_TEST(globals_do_not_leak_between_policies)
{
    /* One lua_State per policy: a global set by one is invisible to another. */
    struct sw_policy *a = new_policy("x_global = 1", 0, 0, 0);
    struct sw_policy *b = new_policy("assert(x_global == nil, 'leaked')", 0, 0, 0);
    SW_ASSERT(a != NULL && b != NULL);
    struct sw_policy_input in = input();
    struct sw_policy_result out;
    sw_policy_result_init(&out);
    struct sw_error err = {0};
    for (int i = 0; i < 3; i++) {
        SW_ASSERT_EQ(sw_policy_eval(a, &in, &out, &err), 0);
        SW_ASSERT_EQ(sw_policy_eval(b, &in, &out, &err), 0);
    }
    sw_policy_result_clear(&out);
    sw_policy_free(a);
    sw_policy_free(b);
}

SW_TEST(load_time_loop_is_budgeted)
{
    struct sw_policy_opts opts = {
        .file = write_policy("while true do end\nreturn {evaluate = function() end}\n"),
        .lua_path = SW_SOURCE_DIR "/lua",
    };
    struct sw_error err = {0};
    struct sw_policy *p = sw_policy_new(&opts, &err);
    SW_ASSERT(p == NULL);
    SW_ASSERT_EQ(err.code, SW_EPOLICY);
    SW_ASSERT_CONTAINS(err.msg, "time budget exceeded (1000 ms)");
    opts.max_instructions = 1000000;
    p = sw_policy_new(&opts, &err);
    SW_ASSERT(p == NULL);
    SW_ASSERT_CONTAINS(err.msg, "instruction budget exceeded (1000000 instructions)");
}

SW_TEST_MAIN()
