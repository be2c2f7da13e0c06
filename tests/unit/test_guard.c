/* test_guard.c — clamp (min/max/regions/absent groups) and filter (self, cooldowns, max
 * leases, budget with pending units, action rate), each rule and tie-break exactly. */
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "mem.h"
#include "model.h"
#include "planner.h"
#include "sw_test.h"

static char *allowed_ab[] = {"a", "b"};
static char *allowed_za[] = {"z", "a"};

static struct sw_group_config group(const char *name, int min, int max)
{
    struct sw_group_config g;
    memset(&g, 0, sizeof(g));
    g.name = (char *)name;
    g.min = min;
    g.max = max;
    return g;
}

static struct sw_guard_config guard_config(void)
{
    struct sw_guard_config c;
    memset(&c, 0, sizeof(c));
    c.action_window_ms = 60000;
    c.unhealthy_after = 3;
    return c;
}

static struct sw_unit *add_unit(struct sw_units *us, const char *key, const char *grp,
                                const char *region, int state, double price)
{
    struct sw_unit *u = sw_unit_new(key, grp, region);
    u->state = state;
    u->price_usd_hour = price;
    sw_units_add(us, u);
    return u;
}

static void assert_notes(const struct sw_guard_notes *notes, const char *const *want, size_t count)
{
    for (size_t i = 0; i < notes->count; i++)
        if (i >= count || strcmp(notes->items[i], want[i]) != 0)
            fprintf(stderr, "    note %zu: %s\n", i, notes->items[i]);
    SW_ASSERT_EQ(notes->count, count);
    for (size_t i = 0; i < count; i++)
        SW_ASSERT_STREQ(notes->items[i], want[i]);
}

/* ---- clamp --------------------------------------------------------------------------- */

SW_TEST(clamp_absent_group_keeps_current_units)
{
    struct sw_group_config groups[] = {group("web", 0, 10), group("batch", 0, 5)};
    struct sw_guard_config cfg = guard_config();
    struct sw_guard *guard = sw_guard_new(&cfg, groups, 2);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "w1", "web", "eu", SW_UNIT_READY, 1);
    add_unit(&us, "w2", "web", "eu", SW_UNIT_ORDERED, 1);
    add_unit(&us, "w3", "web", "us", SW_UNIT_LEASED, 1);
    add_unit(&us, "w4", "web", "ap", SW_UNIT_CLOSED, 1);    /* gone: not kept */
    add_unit(&us, "w5", "web", "ap", SW_UNIT_RELEASING, 1); /* going: not kept */
    /* Unhealthy units are kept in the count so the planner orders their replacement. */
    add_unit(&us, "w6", "web", "us", SW_UNIT_READY, 1)->unhealthy = true;
    struct sw_desired d;
    sw_desired_init(&d);
    sw_desired_set(&d, "batch", "eu", 2);
    struct sw_guard_notes notes = {0};
    sw_guard_clamp(guard, &us, &d, &notes);
    SW_ASSERT_EQ(notes.count, 0);
    SW_ASSERT_EQ(d.count, 3);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "eu"), 2);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "us"), 2);
    SW_ASSERT(!sw_desired_has(&d, "web", "ap"));
    SW_ASSERT_EQ(sw_desired_get(&d, "batch", "eu"), 2);
    sw_desired_clear(&d);
    sw_units_clear(&us);
    sw_guard_free(guard);
}

SW_TEST(clamp_absent_group_with_nothing_is_raised_to_min)
{
    struct sw_group_config groups[] = {group("web", 2, 10)};
    groups[0].regions = allowed_za;
    groups[0].region_count = 2;
    struct sw_guard_config cfg = guard_config();
    struct sw_guard *guard = sw_guard_new(&cfg, groups, 1);
    struct sw_units us;
    sw_units_init(&us);
    struct sw_desired d;
    sw_desired_init(&d);
    struct sw_guard_notes notes = {0};
    sw_guard_clamp(guard, &us, &d, &notes);
    /* The first allowed region as listed, not the alphabetically first. */
    SW_ASSERT_EQ(d.count, 1);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "z"), 2);
    const char *want[] = {"web: desired 0 < min 2, raised in z"};
    assert_notes(&notes, want, 1);
    sw_guard_notes_clear(&notes);
    SW_ASSERT_EQ(notes.count, 0);
    SW_ASSERT(notes.items == NULL);
    sw_desired_clear(&d);
    sw_guard_free(guard);
}

SW_TEST(clamp_disallowed_regions_and_unknown_groups)
{
    struct sw_group_config groups[] = {group("web", 0, 10)};
    groups[0].regions = allowed_ab;
    groups[0].region_count = 2;
    struct sw_guard_config cfg = guard_config();
    struct sw_guard *guard = sw_guard_new(&cfg, groups, 1);
    struct sw_units us;
    sw_units_init(&us);
    struct sw_desired d;
    sw_desired_init(&d);
    sw_desired_set(&d, "web", "a", 1);
    sw_desired_set(&d, "web", "mars", 3);
    sw_desired_set(&d, "web", "venus", 0); /* already 0: nothing to note */
    sw_desired_set(&d, "cache", "a", 2);
    sw_desired_set(&d, "cache", "b", 1);
    sw_desired_set(&d, "zzz", "a", 1);
    struct sw_guard_notes notes = {0};
    sw_guard_clamp(guard, &us, &d, &notes);
    const char *want[] = {"cache: not a configured group, ignored",
                          "zzz: not a configured group, ignored",
                          "web/mars: region not allowed (allowed: a, b)"};
    assert_notes(&notes, want, 3);
    SW_ASSERT_EQ(d.count, 3);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "a"), 1);
    SW_ASSERT(sw_desired_has(&d, "web", "mars"));
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "mars"), 0);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "venus"), 0);
    SW_ASSERT_EQ(sw_desired_group_total(&d, "cache"), 0);
    SW_ASSERT(!sw_desired_has(&d, "cache", "a"));
    sw_guard_notes_clear(&notes);
    sw_desired_clear(&d);
    sw_guard_free(guard);
}

SW_TEST(clamp_absent_group_in_disallowed_region_is_zeroed)
{
    struct sw_group_config groups[] = {group("web", 0, 10)};
    groups[0].regions = allowed_ab;
    groups[0].region_count = 2;
    struct sw_guard_config cfg = guard_config();
    struct sw_guard *guard = sw_guard_new(&cfg, groups, 1);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "w1", "web", "mars", SW_UNIT_READY, 1);
    add_unit(&us, "w2", "web", "a", SW_UNIT_READY, 1);
    struct sw_desired d;
    sw_desired_init(&d);
    struct sw_guard_notes notes = {0};
    sw_guard_clamp(guard, &us, &d, &notes);
    const char *want[] = {"web/mars: region not allowed (allowed: a, b)"};
    assert_notes(&notes, want, 1);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "a"), 1);
    SW_ASSERT(sw_desired_has(&d, "web", "mars"));
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "mars"), 0);
    sw_guard_notes_clear(&notes);
    sw_desired_clear(&d);
    sw_units_clear(&us);
    sw_guard_free(guard);
}

static void clamp_one(int min, int max, const char *const *regions, const int *counts, size_t n,
                      const struct sw_units *us, struct sw_desired *d, struct sw_guard_notes *notes)
{
    struct sw_group_config groups[] = {group("web", min, max)};
    struct sw_guard_config cfg = guard_config();
    struct sw_guard *guard = sw_guard_new(&cfg, groups, 1);
    sw_desired_init(d);
    for (size_t i = 0; i < n; i++)
        sw_desired_set(d, "web", regions[i], counts[i]);
    sw_guard_clamp(guard, us, d, notes);
    sw_guard_free(guard);
}

SW_TEST(clamp_max_takes_from_largest_ties_greatest_region)
{
    struct sw_units us;
    sw_units_init(&us);
    struct sw_desired d;
    struct sw_guard_notes notes = {0};

    const char *r3[] = {"a", "b", "c"};
    int c1[] = {5, 5, 2};
    clamp_one(0, 11, r3, c1, 3, &us, &d, &notes);
    const char *want1[] = {"web: desired 12 > max 11, clamped"};
    assert_notes(&notes, want1, 1);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "a"), 5);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "b"), 4);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "c"), 2);
    sw_desired_clear(&d);
    sw_guard_notes_clear(&notes);

    int c2[] = {6, 4, 4};
    clamp_one(0, 12, r3, c2, 3, &us, &d, &notes);
    const char *want2[] = {"web: desired 14 > max 12, clamped"};
    assert_notes(&notes, want2, 1);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "a"), 4);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "b"), 4);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "c"), 4);
    sw_desired_clear(&d);
    sw_guard_notes_clear(&notes);

    /* Exactly at max: untouched, no note. */
    clamp_one(0, 12, r3, c1, 3, &us, &d, &notes);
    SW_ASSERT_EQ(notes.count, 0);
    SW_ASSERT_EQ(sw_desired_group_total(&d, "web"), 12);
    sw_desired_clear(&d);
    sw_guard_notes_clear(&notes);
    sw_units_clear(&us);
}

SW_TEST(clamp_max_example_from_docs)
{
    struct sw_units us;
    sw_units_init(&us);
    struct sw_desired d;
    struct sw_guard_notes notes = {0};
    const char *r4[] = {"a", "b", "c", "d"};
    int c[] = {7, 7, 7, 2}; /* 23 → 10: three levels down, then one more from c */
    clamp_one(0, 10, r4, c, 4, &us, &d, &notes);
    const char *want[] = {"web: desired 23 > max 10, clamped"};
    assert_notes(&notes, want, 1);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "a"), 3);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "b"), 3);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "c"), 2);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "d"), 2);
    sw_desired_clear(&d);
    sw_guard_notes_clear(&notes);

    const char *r2[] = {"eu", "us"};
    int c14[] = {9, 5};
    clamp_one(0, 12, r2, c14, 2, &us, &d, &notes);
    const char *want14[] = {"web: desired 14 > max 12, clamped"};
    assert_notes(&notes, want14, 1);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "eu"), 7);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "us"), 5);
    sw_desired_clear(&d);
    sw_guard_notes_clear(&notes);

    int zero_max[] = {3, 1};
    clamp_one(0, 0, r2, zero_max, 2, &us, &d, &notes);
    SW_ASSERT_EQ(sw_desired_group_total(&d, "web"), 0);
    SW_ASSERT_EQ(d.count, 2);
    sw_desired_clear(&d);
    sw_guard_notes_clear(&notes);
}

/* The level-based reduction must equal taking one unit at a time from the largest count,
 * ties to the greatest region name. */
SW_TEST(clamp_max_matches_one_at_a_time_reference)
{
    static const char *const names[] = {"a", "b", "c", "d", "e"};
    struct sw_units us;
    sw_units_init(&us);
    unsigned seed = 12345;
    for (int round = 0; round < 500; round++) {
        int counts[5], ref[5], total = 0;
        size_t n = 1 + (size_t)(round % 5);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            counts[i] = ref[i] = (int)((seed >> 16) % 9);
            total += counts[i];
        }
        seed = seed * 1103515245u + 12345u;
        int max = total > 0 ? (int)((seed >> 16) % (unsigned)total) : 0;
        for (int excess = total - max; excess > 0; excess--) {
            size_t pick = 0;
            for (size_t i = 1; i < n; i++)
                if (ref[i] >= ref[pick])
                    pick = i;
            ref[pick]--;
        }
        struct sw_desired d;
        struct sw_guard_notes notes = {0};
        clamp_one(0, max, (const char *const *)names, counts, n, &us, &d, &notes);
        for (size_t i = 0; i < n; i++)
            SW_ASSERT_EQ(sw_desired_get(&d, "web", names[i]), ref[i]);
        sw_desired_clear(&d);
        sw_guard_notes_clear(&notes);
    }
}

SW_TEST(clamp_min_adds_to_largest_ties_smallest_region)
{
    struct sw_units us;
    sw_units_init(&us);
    struct sw_desired d;
    struct sw_guard_notes notes = {0};
    const char *r3[] = {"a", "b", "c"};
    int c1[] = {1, 2, 2};
    clamp_one(8, 20, r3, c1, 3, &us, &d, &notes);
    const char *want[] = {"web: desired 5 < min 8, raised in b"};
    assert_notes(&notes, want, 1);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "a"), 1);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "b"), 5);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "c"), 2);
    sw_desired_clear(&d);
    sw_guard_notes_clear(&notes);
}

SW_TEST(clamp_min_without_allowed_list_uses_region_with_most_units)
{
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "1", "web", "us", SW_UNIT_READY, 1);
    add_unit(&us, "2", "web", "eu", SW_UNIT_READY, 1);
    add_unit(&us, "3", "web", "us", SW_UNIT_ORDERED, 1);
    add_unit(&us, "4", "web", "ap", SW_UNIT_READY, 1);
    add_unit(&us, "5", "web", "ap", SW_UNIT_READY, 1);
    add_unit(&us, "6", "web", "zz", SW_UNIT_CLOSED, 1); /* closed units are not holdings */
    add_unit(&us, "7", "web", "zz", SW_UNIT_CLOSED, 1);
    add_unit(&us, "8", "web", "zz", SW_UNIT_CLOSED, 1);
    add_unit(&us, "9", "other", "xx", SW_UNIT_READY, 1);
    struct sw_desired d;
    struct sw_guard_notes notes = {0};
    const char *r2[] = {"eu", "us"};
    int zero[] = {0, 0};
    /* ap and us hold two units each: the tie goes to the smaller name. */
    clamp_one(3, 9, r2, zero, 2, &us, &d, &notes);
    const char *want[] = {"web: desired 0 < min 3, raised in ap"};
    assert_notes(&notes, want, 1);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "ap"), 3);
    SW_ASSERT_EQ(sw_desired_group_total(&d, "web"), 3);
    sw_desired_clear(&d);
    sw_guard_notes_clear(&notes);
    sw_units_clear(&us);

    /* Nothing anywhere and no allowed list: min cannot be placed. */
    clamp_one(2, 9, r2, zero, 2, &us, &d, &notes);
    const char *want2[] = {"web: desired 0 < min 2, but no region is known to place it in"};
    assert_notes(&notes, want2, 1);
    SW_ASSERT_EQ(sw_desired_group_total(&d, "web"), 0);
    sw_desired_clear(&d);
    sw_guard_notes_clear(&notes);
}

SW_TEST(clamp_negative_counts_become_zero)
{
    struct sw_units us;
    sw_units_init(&us);
    struct sw_desired d;
    struct sw_guard_notes notes = {0};
    const char *r2[] = {"eu", "us"};
    int c[] = {-2, 1};
    clamp_one(0, 5, r2, c, 2, &us, &d, &notes);
    const char *want[] = {"web/eu: desired -2 < 0, set to 0"};
    assert_notes(&notes, want, 1);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "eu"), 0);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "us"), 1);
    sw_desired_clear(&d);
    sw_guard_notes_clear(&notes);
    sw_guard_notes_clear(NULL);
}

/* ---- filter -------------------------------------------------------------------------- */

struct fixture {
    struct sw_group_config groups[2];
    struct sw_guard_config cfg;
    struct sw_guard *guard;
    struct sw_units units;
    struct sw_actions actions;
    struct sw_actions refused;
};

static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->groups[0] = group("web", 0, 20);
    f->groups[1] = group("batch", 0, 20);
    f->cfg = guard_config();
    sw_units_init(&f->units);
    sw_actions_init(&f->actions);
    sw_actions_init(&f->refused);
}

static void fixture_start(struct fixture *f)
{
    f->guard = sw_guard_new(&f->cfg, f->groups, 2);
}

static void fixture_free(struct fixture *f)
{
    sw_guard_free(f->guard);
    sw_units_clear(&f->units);
    sw_actions_clear(&f->actions);
    sw_actions_clear(&f->refused);
}

static void acquire(struct fixture *f, const char *grp, double price)
{
    sw_actions_add(&f->actions, SW_ACTION_ACQUIRE, grp, "eu", NULL, price, "planned");
}

static void release(struct fixture *f, const char *key)
{
    const struct sw_unit *u = sw_units_find_key(&f->units, key);
    sw_actions_add(&f->actions, SW_ACTION_RELEASE, u ? u->group : "web", "eu", key,
                   u ? u->price_usd_hour : 0, "planned");
}

static void record(struct fixture *f, int kind, const char *grp, int64_t at_ms)
{
    struct sw_action act = {.kind = kind, .group = (char *)grp, .region = "eu"};
    sw_guard_record(f->guard, &act, at_ms);
}

SW_TEST(filter_never_releases_self)
{
    struct fixture f;
    fixture_init(&f);
    fixture_start(&f);
    add_unit(&f.units, "me", "web", "eu", SW_UNIT_READY, 1)->self = true;
    add_unit(&f.units, "other", "web", "eu", SW_UNIT_READY, 1);
    release(&f, "me");
    release(&f, "other");
    release(&f, "ghost");
    sw_guard_filter(f.guard, 0, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 1);
    SW_ASSERT_STREQ(f.actions.items[0].unit_key, "other");
    SW_ASSERT_STREQ(f.actions.items[0].reason, "planned");
    SW_ASSERT_EQ(f.refused.count, 2);
    SW_ASSERT_STREQ(f.refused.items[0].unit_key, "me");
    SW_ASSERT_STREQ(f.refused.items[0].reason, "never release the unit steward runs in");
    SW_ASSERT_STREQ(f.refused.items[1].reason, "unit ghost is not known");
    fixture_free(&f);
}

SW_TEST(filter_self_even_when_unhealthy)
{
    struct fixture f;
    fixture_init(&f);
    fixture_start(&f);
    struct sw_unit *me = add_unit(&f.units, "me", "web", "eu", SW_UNIT_READY, 1);
    me->self = true;
    me->unhealthy = true;
    release(&f, "me");
    sw_guard_filter(f.guard, 0, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 0);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "never release the unit steward runs in");
    fixture_free(&f);
}

SW_TEST(filter_scale_down_cooldown_and_repair_bypass)
{
    struct fixture f;
    fixture_init(&f);
    f.groups[0].scale_down_cooldown_ms = 60000;
    fixture_start(&f);
    add_unit(&f.units, "w1", "web", "eu", SW_UNIT_READY, 1);
    add_unit(&f.units, "w2", "web", "eu", SW_UNIT_READY, 1)->unhealthy = true;
    add_unit(&f.units, "b1", "batch", "eu", SW_UNIT_READY, 1);

    /* No release recorded yet: several releases in one batch pass. */
    release(&f, "w1");
    release(&f, "w2");
    sw_guard_filter(f.guard, 1000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 2);
    sw_actions_clear(&f.actions);

    record(&f, SW_ACTION_RELEASE, "web", 100000);
    release(&f, "w1"); /* healthy: waits */
    release(&f, "w2"); /* unhealthy: a repair, bypasses the cooldown */
    release(&f, "b1"); /* another group: its own cooldown (none) */
    sw_guard_filter(f.guard, 120000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 2);
    SW_ASSERT_STREQ(f.actions.items[0].unit_key, "w2");
    SW_ASSERT_STREQ(f.actions.items[1].unit_key, "b1");
    SW_ASSERT_EQ(f.refused.count, 1);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "scale-down cooldown for web: 40s left");
    sw_actions_clear(&f.actions);
    sw_actions_clear(&f.refused);

    /* Partial seconds round up; at exactly last + cooldown it is over. */
    release(&f, "w1");
    sw_guard_filter(f.guard, 159001, &f.units, &f.actions, &f.refused);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "scale-down cooldown for web: 1s left");
    sw_actions_clear(&f.refused);
    release(&f, "w1");
    sw_guard_filter(f.guard, 160000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 1);
    SW_ASSERT_EQ(f.refused.count, 0);
    fixture_free(&f);
}

SW_TEST(filter_cooldown_text_in_minutes)
{
    struct fixture f;
    fixture_init(&f);
    f.groups[0].scale_up_cooldown_ms = 5 * 60000;
    f.groups[1].scale_up_cooldown_ms = 2 * 3600000;
    fixture_start(&f);
    record(&f, SW_ACTION_ACQUIRE, "web", 0);
    record(&f, SW_ACTION_ACQUIRE, "batch", 0);
    acquire(&f, "web", 0);
    acquire(&f, "batch", 0);
    sw_guard_filter(f.guard, 10000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.refused.count, 2);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "scale-up cooldown for web: 4m50s left");
    SW_ASSERT_STREQ(f.refused.items[1].reason, "scale-up cooldown for batch: 1h59m50s left");
    fixture_free(&f);
}

SW_TEST(filter_scale_up_cooldown_starts_when_recorded)
{
    struct fixture f;
    fixture_init(&f);
    f.groups[0].scale_up_cooldown_ms = 30000;
    fixture_start(&f);
    /* Several acquires for one group in one batch are allowed. */
    acquire(&f, "web", 1);
    acquire(&f, "web", 1);
    acquire(&f, "web", 1);
    sw_guard_filter(f.guard, 0, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 3);
    for (size_t i = 0; i < f.actions.count; i++)
        record(&f, SW_ACTION_ACQUIRE, "web", 5000);
    sw_actions_clear(&f.actions);

    acquire(&f, "web", 1);
    acquire(&f, "batch", 1);
    sw_guard_filter(f.guard, 15000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 1);
    SW_ASSERT_STREQ(f.actions.items[0].group, "batch");
    SW_ASSERT_STREQ(f.refused.items[0].reason, "scale-up cooldown for web: 20s left");
    sw_actions_clear(&f.actions);
    sw_actions_clear(&f.refused);

    /* A release does not start the scale-up cooldown, nor an acquire the scale-down one. */
    f.groups[1].scale_down_cooldown_ms = 30000;
    add_unit(&f.units, "b1", "batch", "eu", SW_UNIT_READY, 1);
    record(&f, SW_ACTION_RELEASE, "web", 20000);
    record(&f, SW_ACTION_ACQUIRE, "batch", 20000);
    acquire(&f, "web", 1);
    release(&f, "b1");
    sw_guard_filter(f.guard, 35000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 2);
    SW_ASSERT_EQ(f.refused.count, 0);
    fixture_free(&f);
}

SW_TEST(filter_max_leases_counts_open_units_and_batch)
{
    struct fixture f;
    fixture_init(&f);
    f.cfg.max_leases = 4;
    fixture_start(&f);
    add_unit(&f.units, "1", "web", "eu", SW_UNIT_READY, 0);
    add_unit(&f.units, "2", "web", "eu", SW_UNIT_ORDERED, 0);   /* pending: open */
    add_unit(&f.units, "3", "web", "eu", SW_UNIT_RELEASING, 0); /* still open */
    add_unit(&f.units, "4", "web", "eu", SW_UNIT_CLOSED, 0);    /* not open */
    add_unit(&f.units, "5", "batch", "eu", SW_UNIT_CLOSED, 0);
    acquire(&f, "web", 0);
    release(&f, "1"); /* accepted releases do not free a slot within the batch */
    acquire(&f, "batch", 0);
    acquire(&f, "web", 0);
    sw_guard_filter(f.guard, 0, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 2);
    SW_ASSERT_EQ(f.actions.items[0].kind, SW_ACTION_ACQUIRE);
    SW_ASSERT_EQ(f.actions.items[1].kind, SW_ACTION_RELEASE);
    SW_ASSERT_EQ(f.refused.count, 2);
    SW_ASSERT_STREQ(f.refused.items[0].group, "batch");
    SW_ASSERT_STREQ(f.refused.items[0].reason, "max leases 4 reached");
    SW_ASSERT_STREQ(f.refused.items[1].reason, "max leases 4 reached");
    fixture_free(&f);
}

SW_TEST(filter_budget_counts_pending_units_at_planned_price)
{
    struct fixture f;
    fixture_init(&f);
    f.cfg.budget_usd_hour = 5.0;
    fixture_start(&f);
    add_unit(&f.units, "r", "web", "eu", SW_UNIT_READY, 2.0);
    add_unit(&f.units, "p", "web", "eu", SW_UNIT_ORDERED, 1.5);   /* pending at planned price */
    add_unit(&f.units, "x", "web", "eu", SW_UNIT_RELEASING, 0.2); /* costs until closed */
    add_unit(&f.units, "c", "web", "eu", SW_UNIT_CLOSED, 10.0);   /* costs nothing */
    acquire(&f, "web", 1.0);                                      /* 4.7 */
    release(&f, "r");          /* may fail: its 2.0 still counts */
    acquire(&f, "web", 0.5);   /* 5.2 > 5.0 */
    acquire(&f, "batch", 0.3); /* 5.0: an exact fit passes */
    acquire(&f, "web", 0.01);  /* 5.01 */
    sw_guard_filter(f.guard, 0, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 3);
    SW_ASSERT_NEAR(f.actions.items[0].price_usd_hour, 1.0, 0);
    SW_ASSERT_EQ(f.actions.items[1].kind, SW_ACTION_RELEASE);
    SW_ASSERT_STREQ(f.actions.items[2].group, "batch");
    SW_ASSERT_EQ(f.refused.count, 2);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "budget: 5.20 USD/h would exceed 5.00 USD/h");
    SW_ASSERT_STREQ(f.refused.items[1].reason, "budget: 5.01 USD/h would exceed 5.00 USD/h");
    fixture_free(&f);
}

SW_TEST(filter_refuses_acquire_priced_above_group_max)
{
    struct fixture f;
    fixture_init(&f);
    f.groups[0].max_price_usd_hour = 0.25;
    fixture_start(&f);
    acquire(&f, "web", 0.288); /* the best offer is too dear: the market would find no bid */
    acquire(&f, "web", 0.25);  /* exactly the cap passes */
    acquire(&f, "web", 0);     /* no offer known: the marketplace decides */
    sw_guard_filter(f.guard, 0, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 2);
    SW_ASSERT_EQ(f.refused.count, 1);
    SW_ASSERT_STREQ(f.refused.items[0].reason,
                    "best offer in eu is 0.288 USD/h, above the group's max 0.250 USD/h");
    fixture_free(&f);
}

SW_TEST(filter_no_limits_accepts_everything)
{
    struct fixture f;
    fixture_init(&f);
    fixture_start(&f);
    add_unit(&f.units, "1", "web", "eu", SW_UNIT_READY, 100);
    for (int i = 0; i < 50; i++)
        acquire(&f, "web", 99);
    release(&f, "1");
    sw_guard_filter(f.guard, 0, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 51);
    SW_ASSERT_EQ(f.refused.count, 0);
    fixture_free(&f);
}

SW_TEST(filter_action_rate_window)
{
    struct fixture f;
    fixture_init(&f);
    f.cfg.max_actions = 3;
    f.cfg.action_window_ms = 60000;
    fixture_start(&f);
    add_unit(&f.units, "b1", "batch", "eu", SW_UNIT_READY, 1);
    record(&f, SW_ACTION_ACQUIRE, "web", 0);
    record(&f, SW_ACTION_RELEASE, "other", 10000); /* unconfigured groups count for rate */
    acquire(&f, "web", 0);
    release(&f, "b1");
    acquire(&f, "web", 0);
    sw_guard_filter(f.guard, 30000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 1);
    SW_ASSERT_EQ(f.actions.items[0].kind, SW_ACTION_ACQUIRE);
    SW_ASSERT_EQ(f.refused.count, 2);
    SW_ASSERT_EQ(f.refused.items[0].kind, SW_ACTION_RELEASE);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "max 3 actions per 1m reached");
    SW_ASSERT_STREQ(f.refused.items[1].reason, "max 3 actions per 1m reached");
    sw_actions_clear(&f.actions);
    sw_actions_clear(&f.refused);

    /* At exactly 60 s the record from t=0 has left the window: two slots are free. */
    acquire(&f, "web", 0);
    acquire(&f, "web", 0);
    acquire(&f, "web", 0);
    sw_guard_filter(f.guard, 60000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 2);
    SW_ASSERT_EQ(f.refused.count, 1);
    sw_actions_clear(&f.actions);
    sw_actions_clear(&f.refused);

    /* Recording prunes old entries but keeps the ones still inside the window. */
    record(&f, SW_ACTION_ACQUIRE, "web", 65000);
    record(&f, SW_ACTION_ACQUIRE, "web", 66000);
    acquire(&f, "web", 0);
    sw_guard_filter(f.guard, 66000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.refused.count, 1); /* 10000, 65000, 66000 */
    sw_actions_clear(&f.refused);
    acquire(&f, "web", 0);
    sw_guard_filter(f.guard, 70001, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 1); /* 10000 expired at 70000 */
    fixture_free(&f);
}

SW_TEST(filter_window_text_for_odd_windows)
{
    struct fixture f;
    fixture_init(&f);
    f.cfg.max_actions = 1;
    f.cfg.action_window_ms = 1500;
    fixture_start(&f);
    acquire(&f, "web", 0);
    acquire(&f, "web", 0);
    sw_guard_filter(f.guard, 0, &f.units, &f.actions, &f.refused);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "max 1 actions per 1500ms reached");
    fixture_free(&f);
}

SW_TEST(filter_check_order_for_acquire)
{
    /* Everything refuses at once: max leases is reported first, then budget, then the
     * cooldown, then the rate. */
    struct fixture f;
    fixture_init(&f);
    f.cfg.max_leases = 1;
    f.cfg.budget_usd_hour = 1;
    f.cfg.max_actions = 1;
    f.groups[0].scale_up_cooldown_ms = 10000;
    fixture_start(&f);
    record(&f, SW_ACTION_ACQUIRE, "web", 0);
    add_unit(&f.units, "1", "web", "eu", SW_UNIT_READY, 1);
    acquire(&f, "web", 5);
    sw_guard_filter(f.guard, 1000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "max leases 1 reached");
    sw_actions_clear(&f.refused);
    f.cfg.max_leases = 0;
    acquire(&f, "web", 5);
    sw_guard_filter(f.guard, 1000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "budget: 6.00 USD/h would exceed 1.00 USD/h");
    sw_actions_clear(&f.refused);
    f.cfg.budget_usd_hour = 0;
    acquire(&f, "web", 5);
    sw_guard_filter(f.guard, 1000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "scale-up cooldown for web: 9s left");
    sw_actions_clear(&f.refused);
    acquire(&f, "web", 5);
    sw_guard_filter(f.guard, 10000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "max 1 actions per 1m reached");
    fixture_free(&f);
}

SW_TEST(filter_refuses_acquire_for_unconfigured_group)
{
    struct fixture f;
    fixture_init(&f);
    fixture_start(&f);
    acquire(&f, "cache", 0);
    sw_guard_filter(f.guard, 0, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 0);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "cache: not a configured group");
    fixture_free(&f);
}

/* ---- with the planner ---------------------------------------------------------------- */

SW_TEST(pipeline_absent_group_replaces_unhealthy_unit)
{
    /* No policy mentions web: steward keeps what exists, so an unhealthy unit is released
     * and a replacement acquired. */
    struct sw_group_config groups[] = {group("web", 0, 10)};
    struct sw_guard_config cfg = guard_config();
    struct sw_guard *guard = sw_guard_new(&cfg, groups, 1);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "ok", "web", "eu", SW_UNIT_READY, 1);
    struct sw_unit *sick = add_unit(&us, "sick", "web", "eu", SW_UNIT_READY, 1);
    sick->unhealthy = true;
    sick->probe_failures = 3;
    struct sw_offers offers;
    sw_offers_init(&offers);
    sw_offers_add(&offers, "p", "eu", 0.8, true);
    struct sw_desired d;
    sw_desired_init(&d);
    struct sw_guard_notes notes = {0};
    sw_guard_clamp(guard, &us, &d, &notes);
    struct sw_actions actions, refused;
    sw_actions_init(&actions);
    sw_actions_init(&refused);
    sw_planner_plan(&d, &us, &offers, groups, 1, &actions);
    sw_guard_filter(guard, 0, &us, &actions, &refused);
    SW_ASSERT_EQ(actions.count, 2);
    SW_ASSERT_EQ(actions.items[0].kind, SW_ACTION_RELEASE);
    SW_ASSERT_STREQ(actions.items[0].unit_key, "sick");
    SW_ASSERT_STREQ(actions.items[0].reason, "unhealthy: 3 failed probes");
    SW_ASSERT_EQ(actions.items[1].kind, SW_ACTION_ACQUIRE);
    SW_ASSERT_NEAR(actions.items[1].price_usd_hour, 0.8, 0);
    SW_ASSERT_STREQ(actions.items[1].reason,
                    "web/eu: desired 2, have 1 ready + 0 pending (1 unhealthy)");
    SW_ASSERT_EQ(refused.count, 0);
    sw_actions_clear(&actions);
    sw_actions_clear(&refused);
    sw_offers_clear(&offers);
    sw_desired_clear(&d);
    sw_units_clear(&us);
    sw_guard_free(guard);
}


/* ---- repairs: replacements of lost units ---------------------------------------------- */

/* Choice documented in guard.h: the runtime tells the guard how many units a group lost
 * (sw_guard_note_lost); that many acquires of the group are repairs, exempt from the
 * scale-up cooldown, until recorded. */
SW_TEST(repairs_skip_the_scale_up_cooldown_up_to_the_units_lost)
{
    struct fixture f;
    fixture_init(&f);
    f.groups[0].scale_up_cooldown_ms = 60000;
    fixture_start(&f);
    record(&f, SW_ACTION_ACQUIRE, "web", 0); /* a scale-up just happened */
    sw_guard_note_lost(f.guard, "web", 2);
    sw_guard_note_lost(f.guard, "nope", 5); /* unknown groups are ignored */
    acquire(&f, "web", 1);
    acquire(&f, "web", 1);
    acquire(&f, "web", 1); /* a third one is a scale-up again */
    sw_guard_filter(f.guard, 10000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 2);
    SW_ASSERT_STREQ(f.actions.items[0].reason,
                    "planned (replaces a lost or unhealthy unit: no scale-up cooldown)");
    SW_ASSERT_EQ(f.refused.count, 1);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "scale-up cooldown for web: 50s left");
    for (size_t i = 0; i < f.actions.count; i++)
        record(&f, SW_ACTION_ACQUIRE, "web", 10000);
    sw_actions_clear(&f.actions);
    sw_actions_clear(&f.refused);
    /* Recorded replacements used the losses up: the cooldown is back. */
    acquire(&f, "web", 1);
    sw_guard_filter(f.guard, 20000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 0);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "scale-up cooldown for web: 50s left");
    fixture_free(&f);
}

SW_TEST(repairs_go_first_and_still_within_the_budget)
{
    struct fixture f;
    fixture_init(&f);
    f.cfg.budget_usd_hour = 2.0;
    fixture_start(&f);
    add_unit(&f.units, "w1", "web", "eu", SW_UNIT_READY, 0.5);
    sw_guard_note_lost(f.guard, "batch", 2);
    acquire(&f, "web", 1.0);   /* a scale-up of the first group */
    acquire(&f, "batch", 0.5); /* two replacements of the second */
    acquire(&f, "batch", 0.5);
    sw_guard_filter(f.guard, 0, &f.units, &f.actions, &f.refused);
    /* The replacements take the budget first; the scale-up would exceed it. */
    SW_ASSERT_EQ(f.actions.count, 2);
    SW_ASSERT_STREQ(f.actions.items[0].group, "batch");
    SW_ASSERT_STREQ(f.actions.items[1].group, "batch");
    SW_ASSERT_EQ(f.refused.count, 1);
    SW_ASSERT_STREQ(f.refused.items[0].group, "web");
    SW_ASSERT_STREQ(f.refused.items[0].reason, "budget: 2.50 USD/h would exceed 2.00 USD/h");
    sw_actions_clear(&f.actions);
    sw_actions_clear(&f.refused);

    /* Over budget, a repair is refused like anything else. */
    sw_guard_note_lost(f.guard, "batch", 1);
    acquire(&f, "batch", 2.0);
    sw_guard_filter(f.guard, 0, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 0);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "budget: 2.50 USD/h would exceed 2.00 USD/h");
    fixture_free(&f);
}

SW_TEST(repairs_order_keeps_unhealthy_releases_first)
{
    struct fixture f;
    fixture_init(&f);
    fixture_start(&f);
    add_unit(&f.units, "ok", "batch", "eu", SW_UNIT_READY, 1);
    add_unit(&f.units, "sick", "web", "eu", SW_UNIT_READY, 1)->unhealthy = true;
    sw_guard_note_lost(f.guard, "batch", 1);
    acquire(&f, "web", 1);   /* the sick unit's replacement: a repair too */
    acquire(&f, "web", 1);   /* a scale-up */
    acquire(&f, "batch", 1); /* the lost unit's replacement */
    release(&f, "ok");
    release(&f, "sick");
    sw_guard_filter(f.guard, 0, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 5);
    SW_ASSERT_STREQ(f.actions.items[0].unit_key, "sick");
    SW_ASSERT_STREQ(f.actions.items[1].group, "web");
    SW_ASSERT_STREQ(f.actions.items[2].group, "batch");
    SW_ASSERT_EQ(f.actions.items[2].kind, SW_ACTION_ACQUIRE);
    SW_ASSERT_STREQ(f.actions.items[3].group, "web"); /* the scale-up, after the repairs */
    SW_ASSERT_STREQ(f.actions.items[4].unit_key, "ok");
    fixture_free(&f);
}

SW_TEST(repairs_unhealthy_units_count_and_unreplaced_losses_are_forgotten)
{
    struct fixture f;
    fixture_init(&f);
    f.groups[0].scale_up_cooldown_ms = 60000;
    fixture_start(&f);
    record(&f, SW_ACTION_ACQUIRE, "web", 0);
    add_unit(&f.units, "sick", "web", "eu", SW_UNIT_READY, 1)->unhealthy = true;
    acquire(&f, "web", 1);
    sw_guard_filter(f.guard, 1000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 1); /* replaces the unhealthy unit */
    sw_actions_clear(&f.actions);

    /* A loss the policy chose not to replace (no acquire planned) is dropped, so a later
     * scale-up keeps its cooldown. */
    sw_units_clear(&f.units);
    sw_guard_note_lost(f.guard, "web", 1);
    release(&f, "none");
    sw_guard_filter(f.guard, 2000, &f.units, &f.actions, &f.refused);
    sw_actions_clear(&f.actions);
    sw_actions_clear(&f.refused);
    acquire(&f, "web", 1);
    sw_guard_filter(f.guard, 3000, &f.units, &f.actions, &f.refused);
    SW_ASSERT_EQ(f.actions.count, 0);
    SW_ASSERT_STREQ(f.refused.items[0].reason, "scale-up cooldown for web: 57s left");
    fixture_free(&f);
}

/* A tick that plans nothing forgets unreplaced losses too (sw_guard_filter returns early
 * on an empty plan): a later scale-up keeps its cooldown. Without that tick the same
 * acquire is a repair and goes ahead. */
SW_TEST(filter_with_nothing_planned_forgets_unreplaced_losses)
{
    for (int with_empty_tick = 0; with_empty_tick <= 1; with_empty_tick++) {
        struct fixture f;
        fixture_init(&f);
        f.groups[0].scale_up_cooldown_ms = 60000;
        fixture_start(&f);
        record(&f, SW_ACTION_ACQUIRE, "web", 0);
        sw_guard_note_lost(f.guard, "web", 1);
        if (with_empty_tick) {
            sw_guard_filter(f.guard, 2000, &f.units, &f.actions, &f.refused);
            SW_ASSERT_EQ(f.actions.count, 0);
            SW_ASSERT_EQ(f.refused.count, 0);
        }
        acquire(&f, "web", 1);
        sw_guard_filter(f.guard, 3000, &f.units, &f.actions, &f.refused);
        if (with_empty_tick) {
            SW_ASSERT_EQ(f.actions.count, 0);
            SW_ASSERT_STREQ(f.refused.items[0].reason, "scale-up cooldown for web: 57s left");
        } else {
            SW_ASSERT_EQ(f.actions.count, 1);
            SW_ASSERT_EQ(f.refused.count, 0);
        }
        fixture_free(&f);
    }
}

SW_TEST_MAIN()
