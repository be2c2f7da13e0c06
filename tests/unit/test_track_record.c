/* test_track_record.c — the provider track record: what each lifecycle event counts, the
 * back-off threshold (with its min_lease_hours floor and open leases), the doubling and its
 * cap, one incident per back-off, the reset after a quiet period, the view policies get, and
 * persistence in the journal across a reopen (migration 2: provider_stats). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"
#include "mem.h"
#include "model.h"
#include "spread.h"
#include "sw_test.h"
#include "track_record.h"

#define MIN_MS INT64_C(60000)
#define HOUR_MS INT64_C(3600000)
#define T0 INT64_C(1700000000000)

static struct sw_provider_backoff_config defaults(void)
{
    return (struct sw_provider_backoff_config){
        .closures_per_lease_hour = 0.2,
        .min_lease_hours = 1,
        .backoff_ms = 10 * MIN_MS,
        .max_backoff_ms = 4 * HOUR_MS,
    };
}

/* A unit on provider, ordered at ordered_ms and ready at ready_ms (0: never). Owned by the
 * caller (free with sw_unit_free) unless added to a set. */
static struct sw_unit *unit_on(const char *key, const char *provider, int64_t ordered_ms,
                               int64_t ready_ms)
{
    struct sw_unit *u = sw_unit_new(key, "web", "eu");
    if (provider != NULL)
        u->provider = sw_xstrdup(provider);
    u->ordered_ms = ordered_ms;
    u->ready_ms = ready_ms;
    u->state = ready_ms > 0 ? SW_UNIT_READY : SW_UNIT_LEASED;
    return u;
}

/* Ready at at_ms after ordering at at_ms - 20 s, then lost at lost_ms. */
static bool lose(struct sw_track_record *tr, const char *provider, int64_t ready_ms,
                 int64_t lost_ms)
{
    struct sw_unit *u = unit_on("k", provider, ready_ms - 20000, ready_ms);
    sw_track_record_ready(tr, u, ready_ms);
    u->state = SW_UNIT_CLOSED;
    bool started = sw_track_record_closed(tr, u, SW_TRACK_LOST, NULL, lost_ms);
    sw_unit_free(u);
    return started;
}

SW_TEST(lifecycle_counts)
{
    struct sw_provider_backoff_config cfg = defaults();
    cfg.closures_per_lease_hour = 0; /* threshold off: counting only */
    struct sw_track_record *tr = sw_track_record_new(NULL, &cfg, NULL);
    SW_ASSERT(tr != NULL);
    struct sw_unit *a = unit_on("a", "A", T0, 0);
    sw_track_record_ready(tr, a, T0 + 30000); /* 30 s bid-to-ready */
    a->ready_ms = T0 + 30000;
    struct sw_unit *b = unit_on("b", "A", T0, 0);
    sw_track_record_ready(tr, b, T0 + 10000);
    b->ready_ms = T0 + 10000;
    SW_ASSERT(!sw_track_record_closed(tr, a, SW_TRACK_RELEASED, NULL, T0 + 30000 + 2 * HOUR_MS));
    SW_ASSERT(!sw_track_record_closed(tr, b, SW_TRACK_LOST, NULL, T0 + 10000 + HOUR_MS / 2));
    struct sw_unit *c = unit_on("c", "A", T0, 0);
    SW_ASSERT(!sw_track_record_closed(tr, c, SW_TRACK_FAILED, NULL, T0 + 50000));
    struct sw_unit *nobody = unit_on("d", NULL, T0, 0);
    sw_track_record_ready(tr, nobody, T0 + 1000); /* no provider: nothing to record */
    SW_ASSERT(!sw_track_record_closed(tr, nobody, SW_TRACK_FAILED, NULL, T0 + 2000));
    sw_track_record_probe_failed(tr, "B");
    sw_track_record_probe_failed(tr, NULL);

    const struct sw_provider_row *row = sw_track_record_find(tr, "A");
    SW_ASSERT(row != NULL);
    SW_ASSERT_EQ(row->bids, 3); /* two ready, one failed once leased */
    SW_ASSERT_EQ(row->acquires, 2);
    SW_ASSERT_NEAR(row->ready_ms_sum, 40000, 0);
    SW_ASSERT_EQ(row->closures, 2); /* lost + failed; the release is voluntary */
    SW_ASSERT_NEAR(row->lease_hours, 2.5, 1e-9);
    SW_ASSERT_EQ(row->backoff_until_ms, 0);
    SW_ASSERT_EQ(sw_track_record_find(tr, "B")->probe_failures, 1);
    SW_ASSERT(sw_track_record_find(tr, "nobody") == NULL);

    size_t count = 0;
    const struct sw_provider_record *view = sw_track_record_view(tr, NULL, T0, &count);
    SW_ASSERT_EQ(count, 2);
    SW_ASSERT_STREQ(view[0].provider, "A"); /* by name */
    SW_ASSERT_NEAR(view[0].mean_ready_s, 20, 1e-9);
    SW_ASSERT_NEAR(view[0].lease_hours, 2.5, 1e-9);
    SW_ASSERT_EQ(view[0].closures, 2);
    SW_ASSERT_STREQ(view[1].provider, "B");
    SW_ASSERT(view[1].mean_ready_s < 0); /* nothing ready yet */
    sw_unit_free(a);
    sw_unit_free(b);
    sw_unit_free(c);
    sw_unit_free(nobody);
    sw_track_record_free(tr);
}

/* One closure after half an hour of leases: 1 / max(0.5, 1) = 1 closure per lease-hour,
 * above 0.2. The floor of one lease-hour is what keeps a single closure after a minute
 * from reading as 60 per hour, but it does not let it pass. */
SW_TEST(threshold_crossed_backs_off_for_the_first_period)
{
    struct sw_provider_backoff_config cfg = defaults();
    struct sw_track_record *tr = sw_track_record_new(NULL, &cfg, NULL);
    SW_ASSERT(lose(tr, "A", T0, T0 + 30 * MIN_MS));
    int64_t lost = T0 + 30 * MIN_MS;
    SW_ASSERT_EQ(sw_track_record_find(tr, "A")->backoff_until_ms, lost + 10 * MIN_MS);
    SW_ASSERT(sw_track_record_backed_off(tr, "A", lost + 10 * MIN_MS - 1));
    SW_ASSERT(!sw_track_record_backed_off(tr, "A", lost + 10 * MIN_MS));
    SW_ASSERT(!sw_track_record_backed_off(tr, "B", lost));
    struct sw_names names = {0};
    sw_track_record_backed_off_list(tr, lost + MIN_MS, &names);
    SW_ASSERT_EQ(names.count, 1);
    SW_ASSERT_STREQ(names.items[0], "A");
    sw_names_clear(&names);
    sw_track_record_backed_off_list(tr, lost + 11 * MIN_MS, &names);
    SW_ASSERT_EQ(names.count, 0);
    size_t count = 0;
    const struct sw_provider_record *view = sw_track_record_view(tr, NULL, lost, &count);
    SW_ASSERT_EQ(view[0].backed_off_until_ms, lost + 10 * MIN_MS);
    view = sw_track_record_view(tr, NULL, lost + 10 * MIN_MS, &count);
    SW_ASSERT_EQ(view[0].backed_off_until_ms, 0);
    sw_track_record_free(tr);
}

SW_TEST(threshold_not_crossed_with_a_long_record)
{
    struct sw_provider_backoff_config cfg = defaults();
    struct sw_track_record *tr = sw_track_record_new(NULL, &cfg, NULL);
    /* 20 lease-hours, then one closure: 0.05/h. */
    struct sw_unit *u = unit_on("a", "A", T0, T0);
    sw_track_record_closed(tr, u, SW_TRACK_RELEASED, NULL, T0 + 20 * HOUR_MS);
    SW_ASSERT(!lose(tr, "A", T0 + 20 * HOUR_MS, T0 + 20 * HOUR_MS + MIN_MS));
    /* Five closures in 20 h: 0.25/h, over. */
    for (int i = 0; i < 3; i++)
        SW_ASSERT(!lose(tr, "A", T0 + 21 * HOUR_MS, T0 + 21 * HOUR_MS + MIN_MS));
    SW_ASSERT(lose(tr, "A", T0 + 22 * HOUR_MS, T0 + 22 * HOUR_MS + MIN_MS));
    sw_unit_free(u);
    sw_track_record_free(tr);
}

SW_TEST(open_leases_count_in_the_rate)
{
    struct sw_provider_backoff_config cfg = defaults();
    struct sw_track_record *tr = sw_track_record_new(NULL, &cfg, NULL);
    struct sw_units open;
    sw_units_init(&open);
    /* Ten hours on an open lease of B: a closure right after a new one is 0.1/h. */
    sw_units_add(&open, unit_on("long", "B", T0, T0));
    struct sw_unit *u = unit_on("short", "B", T0 + 10 * HOUR_MS, T0 + 10 * HOUR_MS);
    u->state = SW_UNIT_CLOSED;
    SW_ASSERT(!sw_track_record_closed(tr, u, SW_TRACK_LOST, &open, T0 + 10 * HOUR_MS + MIN_MS));
    size_t count = 0;
    const struct sw_provider_record *view =
        sw_track_record_view(tr, &open, T0 + 10 * HOUR_MS, &count);
    SW_ASSERT_NEAR(view[0].lease_hours, 10 + 1.0 / 60, 1e-9); /* open 10 h + ended 1 min */
    /* Without it the same closure would be judged over the floor: 1/h. */
    struct sw_track_record *alone = sw_track_record_new(NULL, &cfg, NULL);
    SW_ASSERT(sw_track_record_closed(alone, u, SW_TRACK_LOST, NULL, T0 + 10 * HOUR_MS + MIN_MS));
    sw_track_record_free(alone);
    sw_unit_free(u);
    sw_units_clear(&open);
    sw_track_record_free(tr);
}

SW_TEST(backoff_doubles_on_repeat_up_to_the_cap)
{
    struct sw_provider_backoff_config cfg = defaults();
    struct sw_track_record *tr = sw_track_record_new(NULL, &cfg, NULL);
    const int64_t want_min[] = {10, 20, 40, 80, 160, 240, 240};
    int64_t now = T0;
    for (size_t i = 0; i < SW_ARRAY_LEN(want_min); i++) {
        SW_ASSERT(lose(tr, "A", now, now));
        const struct sw_provider_row *row = sw_track_record_find(tr, "A");
        SW_ASSERT_EQ(row->backoff_until_ms - now, want_min[i] * MIN_MS);
        SW_ASSERT_EQ(row->backoff_strikes, (int)i + 1);
        now = row->backoff_until_ms; /* the next closure comes right as it ends */
    }
    sw_track_record_free(tr);
}

SW_TEST(closures_during_a_backoff_are_one_incident)
{
    struct sw_provider_backoff_config cfg = defaults();
    struct sw_track_record *tr = sw_track_record_new(NULL, &cfg, NULL);
    /* A provider closing five leases at once: one back-off, not five doublings. */
    SW_ASSERT(lose(tr, "A", T0, T0 + MIN_MS));
    for (int i = 0; i < 4; i++)
        SW_ASSERT(!lose(tr, "A", T0, T0 + MIN_MS));
    const struct sw_provider_row *row = sw_track_record_find(tr, "A");
    SW_ASSERT_EQ(row->closures, 5);
    SW_ASSERT_EQ(row->backoff_strikes, 1);
    SW_ASSERT_EQ(row->backoff_until_ms, T0 + 11 * MIN_MS);
    /* Later within the same back-off: still not lengthened. */
    SW_ASSERT(!lose(tr, "A", T0, T0 + 9 * MIN_MS));
    SW_ASSERT_EQ(sw_track_record_find(tr, "A")->backoff_until_ms, T0 + 11 * MIN_MS);
    sw_track_record_free(tr);
}

SW_TEST(quiet_for_max_backoff_starts_the_doubling_again)
{
    struct sw_provider_backoff_config cfg = defaults();
    struct sw_track_record *tr = sw_track_record_new(NULL, &cfg, NULL);
    SW_ASSERT(lose(tr, "A", T0, T0));               /* 10 m, until T0 + 10 m */
    SW_ASSERT(lose(tr, "A", T0, T0 + 10 * MIN_MS)); /* 20 m, until T0 + 30 m */
    int64_t quiet_end = T0 + 30 * MIN_MS + 4 * HOUR_MS;
    SW_ASSERT(lose(tr, "A", T0, quiet_end - 1)); /* not quiet long enough: 40 m */
    SW_ASSERT_EQ(sw_track_record_find(tr, "A")->backoff_until_ms, quiet_end - 1 + 40 * MIN_MS);
    int64_t later = quiet_end - 1 + 40 * MIN_MS + 4 * HOUR_MS;
    SW_ASSERT(lose(tr, "A", T0, later)); /* four quiet hours: forgiven, 10 m again */
    SW_ASSERT_EQ(sw_track_record_find(tr, "A")->backoff_until_ms, later + 10 * MIN_MS);
    SW_ASSERT_EQ(sw_track_record_find(tr, "A")->backoff_strikes, 1);
    sw_track_record_free(tr);
}

SW_TEST(threshold_zero_disables_backoff)
{
    struct sw_provider_backoff_config cfg = defaults();
    cfg.closures_per_lease_hour = 0;
    struct sw_track_record *tr = sw_track_record_new(NULL, &cfg, NULL);
    for (int i = 0; i < 10; i++)
        SW_ASSERT(!lose(tr, "A", T0, T0 + MIN_MS));
    SW_ASSERT_EQ(sw_track_record_find(tr, "A")->closures, 10);
    SW_ASSERT(!sw_track_record_backed_off(tr, "A", T0 + MIN_MS));
    sw_track_record_free(tr);
}

SW_TEST(persists_across_reopen)
{
    char path[] = "/tmp/sw_test_track_XXXXXX";
    int fd = mkstemp(path);
    SW_ASSERT(fd >= 0);
    close(fd);
    unlink(path);
    struct sw_provider_backoff_config cfg = defaults();
    struct sw_error err = {0};
    struct sw_journal *j = sw_journal_open(path, &err);
    SW_ASSERT(j != NULL);
    struct sw_track_record *tr = sw_track_record_new(j, &cfg, &err);
    SW_ASSERT(tr != NULL);
    SW_ASSERT(lose(tr, "akash1flaky", T0, T0 + MIN_MS));
    struct sw_unit *u = unit_on("ok", "akash1good", T0, 0);
    sw_track_record_ready(tr, u, T0 + 42000);
    sw_track_record_probe_failed(tr, "akash1good");
    sw_track_record_free(tr);
    sw_journal_close(j); /* commits the buffered rows */

    j = sw_journal_open(path, &err);
    SW_ASSERT(j != NULL);
    tr = sw_track_record_new(j, &cfg, &err);
    SW_ASSERT(tr != NULL);
    const struct sw_provider_row *flaky = sw_track_record_find(tr, "akash1flaky");
    SW_ASSERT(flaky != NULL);
    SW_ASSERT_EQ(flaky->closures, 1);
    SW_ASSERT_EQ(flaky->backoff_strikes, 1);
    SW_ASSERT_EQ(flaky->backoff_until_ms, T0 + 11 * MIN_MS);
    SW_ASSERT(sw_track_record_backed_off(tr, "akash1flaky", T0 + 5 * MIN_MS));
    const struct sw_provider_row *good = sw_track_record_find(tr, "akash1good");
    SW_ASSERT_EQ(good->bids, 1);
    SW_ASSERT_EQ(good->acquires, 1);
    SW_ASSERT_NEAR(good->ready_ms_sum, 42000, 0);
    SW_ASSERT_EQ(good->probe_failures, 1);
    /* A later back-off doubles from the persisted strikes, as if there was no restart. */
    SW_ASSERT(lose(tr, "akash1flaky", T0, T0 + 11 * MIN_MS));
    SW_ASSERT_EQ(sw_track_record_find(tr, "akash1flaky")->backoff_until_ms, T0 + 31 * MIN_MS);
    sw_track_record_free(tr);
    sw_journal_close(j);

    /* The table is schema version 2's. */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    SW_ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    SW_ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM provider_stats", -1, &st, NULL),
                 SQLITE_OK);
    SW_ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    SW_ASSERT_EQ(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
    sw_unit_free(u);
    char side[64];
    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
}

SW_TEST(journal_migrates_a_version_1_file)
{
    /* A journal written before the track record existed gains provider_stats on open. */
    char path[] = "/tmp/sw_test_track_v1_XXXXXX";
    int fd = mkstemp(path);
    SW_ASSERT(fd >= 0);
    close(fd);
    unlink(path);
    struct sw_error err = {0};
    struct sw_journal *j = sw_journal_open(path, &err);
    SW_ASSERT(j != NULL);
    sw_journal_close(j);
    /* Back to what version 1 wrote: everything but provider_stats. */
    sqlite3 *db = NULL;
    SW_ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    SW_ASSERT_EQ(
        sqlite3_exec(db, "DROP TABLE provider_stats; PRAGMA user_version = 1;", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    j = sw_journal_open(path, &err);
    SW_ASSERT(j != NULL);
    struct sw_provider_row row = {.provider = "p", .closures = 3, .lease_hours = 1.5};
    SW_ASSERT_EQ(sw_journal_provider_save(j, &row, &err), 0);
    struct sw_provider_row *rows = NULL;
    size_t count = 0;
    SW_ASSERT_EQ(sw_journal_providers_load(j, &rows, &count, &err), 0);
    SW_ASSERT_EQ(count, 1);
    SW_ASSERT_EQ(rows[0].closures, 3);
    SW_ASSERT_NEAR(rows[0].lease_hours, 1.5, 0);
    sw_provider_rows_free(rows, count);
    struct sw_provider_row nameless = {0};
    SW_ASSERT_EQ(sw_journal_provider_save(j, &nameless, &err), SW_EINVAL);
    sw_journal_close(j);
    unlink(path);
    char side[64];
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
}

/* Back-off warnings are expected here: keep the output to the test lines. */
__attribute__((constructor)) static void quiet_logs(void)
{
    sw_log_configure(NULL, SW_LOG_FORMAT_TEXT, SW_LOG_ERROR);
}

SW_TEST_MAIN()
