/* test_trace.c — the simulator's CSV inputs: what loads, and the exact FILE:LINE:COLUMN
 * message of every malformed file (unsorted times, unknown region, negative numbers,
 * ragged rows, a missing round-trip pair). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem.h"
#include "sw_test.h"
#include "trace.h"

static char dir[64];

static void cleanup(void)
{
    static const char *const names[] = {"t.csv", "rtt.csv"};
    for (size_t i = 0; i < SW_ARRAY_LEN(names); i++) {
        char *p = sw_xasprintf("%s/%s", dir, names[i]);
        unlink(p);
        free(p);
    }
    rmdir(dir);
}

/* Writes text to <dir>/name and returns the path (owned). */
static char *write_csv(const char *name, const char *text)
{
    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/sw_test_trace_XXXXXX");
        if (mkdtemp(dir) == NULL)
            abort();
        atexit(cleanup);
    }
    char *path = sw_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

#define EXPECT_DEMAND_ERROR(text, suffix)                                                          \
    do {                                                                                           \
        char *path_ = write_csv("t.csv", (text));                                                  \
        struct sw_error err_ = {0};                                                                \
        struct sw_demand *d_ = sw_demand_load(path_, &err_);                                       \
        char *want_ = sw_xasprintf("%s%s", path_, (suffix));                                       \
        if (d_ != NULL || strcmp(err_.msg, want_) != 0)                                            \
            fprintf(stderr, "    got: %s\n    want: %s\n", err_.msg, want_);                       \
        SW_ASSERT(d_ == NULL);                                                                     \
        SW_ASSERT_EQ(err_.code, SW_EINVAL);                                                        \
        SW_ASSERT_STREQ(err_.msg, want_);                                                          \
        free(want_);                                                                               \
        free(path_);                                                                               \
    } while (0)

SW_TEST(demand_loads_sorted_regions_and_steps)
{
    char *path = write_csv("t.csv", "# comment\n"
                                    "time_s, region ,rps\r\n"
                                    "0,eu-west,150\n"
                                    "\n"
                                    "0,as-east,10\n"
                                    "60,eu-west,200.5\n"
                                    "120,as-east,0\n");
    struct sw_error err = {0};
    struct sw_demand *d = sw_demand_load(path, &err);
    SW_ASSERT(d != NULL);
    SW_ASSERT_EQ(d->region_count, 2);
    SW_ASSERT_STREQ(d->regions[0], "as-east");
    SW_ASSERT_STREQ(d->regions[1], "eu-west");
    SW_ASSERT_EQ(d->row_count, 4);
    SW_ASSERT_NEAR(d->start_s, 0, 0);
    SW_ASSERT_NEAR(d->end_s, 120, 0);
    int eu = sw_demand_region(d, "eu-west");
    SW_ASSERT_EQ(eu, 1);
    SW_ASSERT_EQ(sw_demand_region(d, "mars"), -1);
    size_t cursor = 0;
    SW_ASSERT_NEAR(sw_demand_rps_at(d, 1, 0, &cursor), 150, 0);
    SW_ASSERT_NEAR(sw_demand_rps_at(d, 1, 59.9, &cursor), 150, 0);
    SW_ASSERT_NEAR(sw_demand_rps_at(d, 1, 60, &cursor), 200.5, 0);
    SW_ASSERT_NEAR(sw_demand_rps_at(d, 1, 1e6, &cursor), 200.5, 0);
    /* Going back in time still answers right. */
    SW_ASSERT_NEAR(sw_demand_rps_at(d, 1, 30, &cursor), 150, 0);
    SW_ASSERT_NEAR(sw_demand_rps_at(d, 0, 119, NULL), 10, 0);
    SW_ASSERT_NEAR(sw_demand_rps_at(d, 0, 120, NULL), 0, 0);
    SW_ASSERT_NEAR(sw_demand_rps_at(d, 0, -5, NULL), 0, 0);
    sw_demand_free(d);
    free(path);
}

SW_TEST(demand_errors_name_line_and_column)
{
    EXPECT_DEMAND_ERROR("time_s,region,rps\n60,eu-west,1\n30,eu-west,2\n",
                        ":3:1: time_s 30 is before the previous row's 60 (rows must be sorted "
                        "by time)");
    EXPECT_DEMAND_ERROR("time_s,region,rps\n0,eu-west,-5\n",
                        ":2:11: rps: expected a number >= 0, got -5");
    EXPECT_DEMAND_ERROR("time_s,region,rps\n-1,eu-west,5\n",
                        ":2:1: time_s: expected a number >= 0, got -1");
    EXPECT_DEMAND_ERROR("time_s,region,rps\n0,eu-west,many\n",
                        ":2:11: rps: expected a number, got 'many'");
    EXPECT_DEMAND_ERROR("time_s,region,rps\n0,eu-west\n",
                        ":2:10: expected 3 fields like the header, got 2");
    EXPECT_DEMAND_ERROR("time_s,region,rps\n0,eu-west,1,2\n",
                        ":2:13: expected 3 fields like the header, got 4");
    EXPECT_DEMAND_ERROR("time_s,region,rps\n0,eu west,1\n",
                        ":2:3: region: expected a region name of [A-Za-z0-9._-], got 'eu west'");
    EXPECT_DEMAND_ERROR("time_s,region,rps\n0,eu-west,1\n0,eu-west,2\n",
                        ":3:1: region 'eu-west' already has a row at time_s 0");
    EXPECT_DEMAND_ERROR("time,region,rps\n", ":1:1: unknown column 'time' (expected "
                                             "time_s,region,rps)");
    EXPECT_DEMAND_ERROR("time_s,region\n", ":1:1: missing column 'rps' (expected "
                                           "time_s,region,rps)");
    EXPECT_DEMAND_ERROR("time_s,region,rps\n", ":1:1: no rows after the header");
    EXPECT_DEMAND_ERROR("", ":1:1: empty file: expected the header row time_s,region,rps");
}

SW_TEST(unreadable_file_is_eio)
{
    struct sw_error err = {0};
    SW_ASSERT(sw_demand_load("/nonexistent/demand.csv", &err) == NULL);
    SW_ASSERT_EQ(err.code, SW_EIO);
    SW_ASSERT_CONTAINS(err.msg, "/nonexistent/demand.csv: cannot open");
}

SW_TEST(kind_from_header)
{
    char *path = write_csv("t.csv", "region,rps,time_s\n0,eu-west,1\n");
    struct sw_error err = {0};
    SW_ASSERT_EQ(sw_trace_kind(path, &err), SW_TRACE_DEMAND);
    free(path);
    path = write_csv("t.csv", "submit_s,duration_s,workers,gpus_per_worker\n");
    SW_ASSERT_EQ(sw_trace_kind(path, &err), SW_TRACE_JOBS);
    free(path);
    path = write_csv("t.csv", "from,to,rtt_ms\n");
    SW_ASSERT_EQ(sw_trace_kind(path, &err), SW_TRACE_RTT);
    free(path);
    path = write_csv("t.csv", "a,b\n");
    SW_ASSERT_EQ(sw_trace_kind(path, &err), SW_EINVAL);
    SW_ASSERT_CONTAINS(err.msg, "t.csv:1:1: header is neither time_s,region,rps");
    free(path);
}

SW_TEST(rtt_table_and_region_checks)
{
    char *rtt_path = write_csv("rtt.csv", "from,to,rtt_ms\n"
                                          "eu-west,eu-west,2\n"
                                          "eu-west,as-east,238\n"
                                          "as-east,as-east,2\n"
                                          "as-east,eu-west,240\n"
                                          "oc-aus,as-east,110\n");
    struct sw_error err = {0};
    struct sw_rtt *rtt = sw_rtt_load(rtt_path, &err);
    SW_ASSERT(rtt != NULL);
    SW_ASSERT_EQ(rtt->region_count, 3);
    SW_ASSERT_STREQ(rtt->regions[0], "as-east");
    SW_ASSERT_NEAR(sw_rtt_ms(rtt, sw_rtt_region(rtt, "as-east"), sw_rtt_region(rtt, "eu-west")),
                   240, 0);
    SW_ASSERT(isnan(sw_rtt_ms(rtt, sw_rtt_region(rtt, "eu-west"), sw_rtt_region(rtt, "oc-aus"))));
    SW_ASSERT(isnan(sw_rtt_ms(rtt, -1, 0)));

    char *path = write_csv("t.csv", "time_s,region,rps\n0,eu-west,1\n0,oc-aus,2\n");
    struct sw_demand *d = sw_demand_load(path, &err);
    SW_ASSERT(d != NULL);
    const char *serving[] = {"eu-west", "as-east"};
    SW_ASSERT_EQ(sw_trace_check_regions(d, rtt, serving, 2, &err), SW_EINVAL);
    char *want =
        sw_xasprintf("%s:3:3: no round-trip time from 'oc-aus' to 'eu-west' in %s", path, rtt_path);
    SW_ASSERT_STREQ(err.msg, want);
    free(want);
    const char *only_asia[] = {"as-east"};
    SW_ASSERT_EQ(sw_trace_check_regions(d, rtt, only_asia, 1, &err), 0);
    const char *mars[] = {"mars"};
    SW_ASSERT_EQ(sw_trace_check_regions(d, rtt, mars, 1, &err), SW_EINVAL);
    want = sw_xasprintf("%s: no round-trip times for region 'mars', where capacity may run (add "
                        "rows from each user region to 'mars')",
                        rtt_path);
    SW_ASSERT_STREQ(err.msg, want);
    free(want);
    sw_demand_free(d);
    free(path);

    path = write_csv("t.csv", "time_s,region,rps\n0,eu-west,1\n5,mars,2\n");
    d = sw_demand_load(path, &err);
    SW_ASSERT(d != NULL);
    SW_ASSERT_EQ(sw_trace_check_regions(d, rtt, serving, 2, &err), SW_EINVAL);
    want = sw_xasprintf("%s:3:3: unknown region 'mars' (not in %s)", path, rtt_path);
    SW_ASSERT_STREQ(err.msg, want);
    free(want);
    sw_demand_free(d);
    free(path);
    sw_rtt_free(rtt);
    free(rtt_path);

    rtt_path = write_csv("rtt.csv", "from,to,rtt_ms\na,b,1\na,b,2\n");
    SW_ASSERT(sw_rtt_load(rtt_path, &err) == NULL);
    want = sw_xasprintf("%s:3:1: pair a → b already given on line 2", rtt_path);
    SW_ASSERT_STREQ(err.msg, want);
    free(want);
    free(rtt_path);
    rtt_path = write_csv("rtt.csv", "from,to,rtt_ms\na,b,-1\n");
    SW_ASSERT(sw_rtt_load(rtt_path, &err) == NULL);
    SW_ASSERT_CONTAINS(err.msg, "rtt.csv:2:5: rtt_ms: expected a number >= 0, got -1");
    free(rtt_path);
}

SW_TEST(jobs_load_and_errors)
{
    char *path = write_csv("t.csv", "submit_s,duration_s,workers,gpus_per_worker\n"
                                    "0,60,2,1\n"
                                    "30,10.5,1,0\n");
    struct sw_error err = {0};
    struct sw_jobs *jobs = sw_jobs_load(path, &err);
    SW_ASSERT(jobs != NULL);
    SW_ASSERT_EQ(jobs->count, 2);
    SW_ASSERT_NEAR(jobs->items[1].duration_s, 10.5, 0);
    SW_ASSERT_EQ(jobs->items[0].workers, 2);
    SW_ASSERT_EQ(jobs->items[1].line, 3);
    sw_jobs_free(jobs);
    free(path);

    static const struct {
        const char *row;
        const char *suffix;
    } bad[] = {
        {"0,60,0,1\n", ":2:6: workers: expected an integer >= 1, got 0"},
        {"0,60,1.5,1\n", ":2:6: workers: expected an integer >= 1, got 1.5"},
        {"0,-60,1,1\n", ":2:3: duration_s: expected a number >= 0, got -60"},
        {"0,60,1,-1\n", ":2:8: gpus_per_worker: expected an integer >= 0, got -1"},
        {"10,60,1,1\n5,1,1,1\n", ":3:1: submit_s 5 is before the previous row's 10 (rows must "
                                 "be sorted by submit time)"},
        {"0,60,1\n", ":2:7: expected 4 fields like the header, got 3"},
    };
    for (size_t i = 0; i < SW_ARRAY_LEN(bad); i++) {
        char *text = sw_xasprintf("submit_s,duration_s,workers,gpus_per_worker\n%s", bad[i].row);
        path = write_csv("t.csv", text);
        SW_ASSERT(sw_jobs_load(path, &err) == NULL);
        char *want = sw_xasprintf("%s%s", path, bad[i].suffix);
        if (strcmp(err.msg, want) != 0)
            fprintf(stderr, "    got: %s\n    want: %s\n", err.msg, want);
        SW_ASSERT_STREQ(err.msg, want);
        free(want);
        free(path);
        free(text);
    }
}

SW_TEST_MAIN()
