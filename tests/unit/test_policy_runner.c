/* test_policy_runner.c — sw_policy_test_main (`steward test-policy SPEC`) on passing and
 * failing specs, and on the shipped specs in tests/policy/. */
#include <dirent.h>
#include <fcntl.h>
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

#define LUA_DIR SW_SOURCE_DIR "/lua"

static char tmp_dir[] = "/tmp/sw_runner_XXXXXX";

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

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    /* A flag, not a look at the template: mkdtemp may put an 'X' back where one was. */
    static bool tmp_made;
    if (!tmp_made && mkdtemp(tmp_dir) == NULL)
        abort();
    tmp_made = true;
    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* Run the spec with stdout captured; returns the exit code, output in *out (owned). */
static int run_spec(const char *spec, char **out)
{
    char cap_path[600];
    snprintf(cap_path, sizeof(cap_path), "%s/stdout.txt", tmp_dir);
    fflush(stdout);
    int saved = dup(1);
    int fd = open(cap_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1);
    close(fd);
    int rc = sw_policy_test_main(spec, LUA_DIR);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    FILE *f = fopen(cap_path, "r");
    char *buf = sw_xcalloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    *out = buf;
    return rc;
}

SW_TEST(passing_spec_exits_zero)
{
    write_file("policy_ok.lua", "return {name = 'ok', interval = '10s', evaluate = function(ctx)\n"
                                "  local want = ctx.params.per_region or 1\n"
                                "  ctx.state.n = (ctx.state.n or 0) + 1\n"
                                "  ctx.explain('web', 'eu', 'because')\n"
                                "  return {web = {eu = want}}\n"
                                "end}\n");
    char spec[4096];
    snprintf(spec, sizeof(spec),
             "local t = require 'steward.testing'\n"
             "describe('policy', function()\n"
             "  it('evaluates', function()\n"
             "    local p = t.load_policy('%s/policy_ok.lua', {per_region = 3})\n"
             "    expect(p.name).to_be('ok')\n"
             "    expect(p.interval_s).to_be(10)\n"
             "    local d = p:evaluate{groups = {'web'}}\n"
             "    expect(d).to_equal({web = {eu = 3}})\n"
             "    p:evaluate{groups = {'web'}}\n"
             "    expect(p.state.n).to_be(2)\n"
             "    expect(p.explanations[1].text).to_be('because')\n"
             "  end)\n"
             "  it('reports validation like production', function()\n"
             "    local p = t.load_policy('%s/policy_ok.lua', {per_region = -1})\n"
             "    expect(function() p:evaluate{groups = {'web'}} end)\n"
             "      .to_fail('desired.web.eu: expected integer >= 0, got -1')\n"
             "  end)\n"
             "end)\n",
             tmp_dir, tmp_dir);
    const char *path = write_file("pass_spec.lua", spec);
    char *out = NULL;
    int rc = run_spec(path, &out);
    SW_ASSERT_CONTAINS(out, "ok   policy > evaluates");
    SW_ASSERT_CONTAINS(out, "ok   policy > reports validation like production");
    SW_ASSERT_CONTAINS(out, "2 passed, 0 failed");
    free(out);
    SW_ASSERT_EQ(rc, 0);
}

SW_TEST(failing_spec_exits_one_and_names_the_test)
{
    const char *path =
        write_file("fail_spec.lua", "describe('math', function()\n"
                                    "  it('adds', function() expect(1 + 1).to_be(2) end)\n"
                                    "  it('is wrong', function() expect(1 + 1).to_be(3) end)\n"
                                    "  it('loops', function() while true do end end)\n"
                                    "end)\n");
    char *out = NULL;
    int rc = run_spec(path, &out);
    SW_ASSERT_CONTAINS(out, "ok   math > adds");
    SW_ASSERT_CONTAINS(out, "FAIL math > is wrong");
    SW_ASSERT_CONTAINS(out, "expected 3, got 2");
    SW_ASSERT_CONTAINS(out, "fail_spec.lua:3:");
    SW_ASSERT_CONTAINS(out, "FAIL math > loops");
    SW_ASSERT_CONTAINS(out, "instruction budget exceeded");
    SW_ASSERT_CONTAINS(out, "1 passed, 2 failed");
    free(out);
    SW_ASSERT_EQ(rc, 1);
}

SW_TEST(spec_with_syntax_error_fails)
{
    const char *path = write_file("broken_spec.lua", "describe('x', function(\n");
    char *out = NULL;
    int rc = run_spec(path, &out);
    SW_ASSERT_CONTAINS(out, "FAIL");
    SW_ASSERT_CONTAINS(out, "broken_spec.lua");
    SW_ASSERT_CONTAINS(out, "0 passed, 1 failed");
    free(out);
    SW_ASSERT_EQ(rc, 1);
}

SW_TEST(empty_spec_fails)
{
    const char *path = write_file("empty_spec.lua", "-- nothing\n");
    char *out = NULL;
    int rc = run_spec(path, &out);
    SW_ASSERT_CONTAINS(out, "no tests");
    free(out);
    SW_ASSERT_EQ(rc, 1);
}

SW_TEST(missing_spec_is_a_setup_error)
{
    char *out = NULL;
    int rc = run_spec("/nonexistent/spec.lua", &out);
    SW_ASSERT_CONTAINS(out, "cannot read");
    free(out);
    SW_ASSERT_EQ(rc, 2);
}

SW_TEST(api_surface_spec_passes)
{
    char *out = NULL;
    int rc = run_spec(SW_SOURCE_DIR "/tests/policy/api_surface_spec.lua", &out);
    if (rc != 0)
        fprintf(stderr, "%s", out);
    SW_ASSERT_CONTAINS(out, " 0 failed");
    free(out);
    SW_ASSERT_EQ(rc, 0);
}

SW_TEST(every_shipped_spec_passes)
{
    /* Every spec in tests/policy runs from the source tree, as ctest's policy label does. */
    char cwd[1024];
    SW_ASSERT(getcwd(cwd, sizeof(cwd)) != NULL);
    SW_ASSERT_EQ(chdir(SW_SOURCE_DIR), 0);
    DIR *dir = opendir("tests/policy");
    SW_ASSERT(dir != NULL);
    struct dirent *ent;
    int specs = 0, failed = 0;
    while ((ent = readdir(dir)) != NULL) {
        size_t len = strlen(ent->d_name);
        if (len < 9 || strcmp(ent->d_name + len - 9, "_spec.lua") != 0)
            continue;
        char path[600];
        snprintf(path, sizeof(path), "tests/policy/%s", ent->d_name);
        char *out = NULL;
        int rc = run_spec(path, &out);
        if (rc != 0) {
            fprintf(stderr, "    %s:\n%s", path, out);
            failed++;
        }
        free(out);
        specs++;
    }
    closedir(dir);
    SW_ASSERT_EQ(chdir(cwd), 0);
    SW_ASSERT(specs >= 2);
    SW_ASSERT_EQ(failed, 0);
}

SW_TEST(api_surface_spec_catches_an_extra_field)
{
    /* The same check against a list missing one field must fail: the spec can fail. */
    size_t len = 0;
    FILE *f = fopen(SW_SOURCE_DIR "/tests/policy/api_surface_spec.lua", "r");
    SW_ASSERT(f != NULL);
    char *text = sw_xcalloc(1, 1 << 16);
    len = fread(text, 1, (1 << 16) - 1, f);
    fclose(f);
    text[len] = '\0';
    char *at = strstr(text, "\"explain\", ");
    SW_ASSERT(at != NULL);
    memmove(at, at + strlen("\"explain\", "), strlen(at + strlen("\"explain\", ")) + 1);
    const char *path = write_file("api_surface_minus_explain_spec.lua", text);
    free(text);
    char *out = NULL;
    int rc = run_spec(path, &out);
    SW_ASSERT_CONTAINS(out, "FAIL ctx > has exactly the documented fields");
    SW_ASSERT_CONTAINS(out, "FAIL meta.lua > documents exactly the fields of steward.Ctx");
    free(out);
    SW_ASSERT_EQ(rc, 1);
}

SW_TEST_MAIN()
