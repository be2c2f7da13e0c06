/* test_planner.c — desired state to actions: shortfalls, excess, release order and its
 * tie-breaks, unhealthy replacement, pending units, self, and output order. */
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "model.h"
#include "planner.h"
#include "sw_test.h"

struct world {
    struct sw_group_config groups[3];
    size_t group_count;
    struct sw_desired desired;
    struct sw_units units;
    struct sw_offers offers;
    struct sw_actions out;
};

static void world_init(struct world *w)
{
    memset(w, 0, sizeof(*w));
    static const char *const names[] = {"web", "batch", "cache"};
    for (size_t i = 0; i < 3; i++) {
        w->groups[i].name = (char *)names[i];
        w->groups[i].max = 100;
    }
    w->group_count = 3;
    sw_desired_init(&w->desired);
    sw_units_init(&w->units);
    sw_offers_init(&w->offers);
    sw_actions_init(&w->out);
}

static void world_free(struct world *w)
{
    sw_desired_clear(&w->desired);
    sw_units_clear(&w->units);
    sw_offers_clear(&w->offers);
    sw_actions_clear(&w->out);
}

static struct sw_unit *unit(struct world *w, const char *key, const char *group, const char *region,
                            int state, double price, int64_t ready_ms)
{
    struct sw_unit *u = sw_unit_new(key, group, region);
    u->state = state;
    u->price_usd_hour = price;
    u->ready_ms = ready_ms;
    sw_units_add(&w->units, u);
    return u;
}

static void plan(struct world *w)
{
    sw_planner_plan(&w->desired, &w->units, &w->offers, w->groups, w->group_count, &w->out);
}

static void assert_action(const struct sw_action *a, int kind, const char *group,
                          const char *region, const char *key, const char *reason)
{
    SW_ASSERT_EQ(a->kind, kind);
    SW_ASSERT_STREQ(a->group, group);
    SW_ASSERT_STREQ(a->region, region);
    if (key == NULL)
        SW_ASSERT(a->unit_key == NULL);
    else
        SW_ASSERT_STREQ(a->unit_key, key);
    SW_ASSERT_STREQ(a->reason, reason);
}

SW_TEST(shortfall_acquires_at_best_price)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu-west", 3);
    unit(&w, "r1", "web", "eu-west", SW_UNIT_READY, 0.5, 10);
    unit(&w, "p1", "web", "eu-west", SW_UNIT_CREATED, 0.5, 0);
    sw_offers_add(&w.offers, "p-a", "eu-west", 0.9, true);
    sw_offers_add(&w.offers, "p-b", "eu-west", 0.6, false);
    sw_offers_add(&w.offers, "p-c", "us-east", 0.1, false);
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 1);
    assert_action(&w.out.items[0], SW_ACTION_ACQUIRE, "web", "eu-west", NULL,
                  "web/eu-west: desired 3, have 1 ready + 1 pending");
    SW_ASSERT_NEAR(w.out.items[0].price_usd_hour, 0.6, 0);
    world_free(&w);
}

SW_TEST(unknown_price_is_zero)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "mars", 2);
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_action(&w.out.items[i], SW_ACTION_ACQUIRE, "web", "mars", NULL,
                      "web/mars: desired 2, have 0 ready + 0 pending");
        SW_ASSERT_NEAR(w.out.items[i].price_usd_hour, 0, 0);
    }
    world_free(&w);
}

SW_TEST(slow_marketplace_no_buying_storm)
{
    /* Three orders are still waiting for bids: nothing more is bought. */
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu", 3);
    unit(&w, "p1", "web", "eu", SW_UNIT_ORDERED, 0.5, 0);
    unit(&w, "p2", "web", "eu", SW_UNIT_CREATED, 0.5, 0);
    unit(&w, "p3", "web", "eu", SW_UNIT_LEASED, 0.5, 0);
    sw_offers_add(&w.offers, "p", "eu", 0.4, true);
    for (int tick = 0; tick < 5; tick++) {
        plan(&w);
        SW_ASSERT_EQ(w.out.count, 0);
    }
    world_free(&w);
}

SW_TEST(excess_releases_most_expensive_then_newest_then_key)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu", 1);
    unit(&w, "cheap", "web", "eu", SW_UNIT_READY, 0.2, 500);
    unit(&w, "b-old", "web", "eu", SW_UNIT_READY, 0.7, 100);
    unit(&w, "b-new", "web", "eu", SW_UNIT_READY, 0.7, 300);
    unit(&w, "dear", "web", "eu", SW_UNIT_READY, 0.9, 50);
    unit(&w, "k2", "web", "eu", SW_UNIT_READY, 0.3, 200);
    unit(&w, "k1", "web", "eu", SW_UNIT_READY, 0.3, 200);
    plan(&w);
    const char *reason = "web/eu: desired 1, have 6 ready + 0 pending";
    SW_ASSERT_EQ(w.out.count, 5);
    assert_action(&w.out.items[0], SW_ACTION_RELEASE, "web", "eu", "dear", reason);
    SW_ASSERT_NEAR(w.out.items[0].price_usd_hour, 0.9, 0);
    assert_action(&w.out.items[1], SW_ACTION_RELEASE, "web", "eu", "b-new", reason);
    assert_action(&w.out.items[2], SW_ACTION_RELEASE, "web", "eu", "b-old", reason);
    assert_action(&w.out.items[3], SW_ACTION_RELEASE, "web", "eu", "k1", reason);
    assert_action(&w.out.items[4], SW_ACTION_RELEASE, "web", "eu", "k2", reason);
    world_free(&w);
}

SW_TEST(pending_units_with_a_market_id_are_cancelled_before_ready_ones)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu", 1);
    unit(&w, "r1", "web", "eu", SW_UNIT_READY, 0.9, 10);
    unit(&w, "r2", "web", "eu", SW_UNIT_READY, 0.1, 20);
    struct sw_unit *p1 = unit(&w, "p1", "web", "eu", SW_UNIT_CREATED, 0.5, 0);
    p1->market_id = sw_xstrdup("1700000000001");
    unit(&w, "p2", "web", "eu", SW_UNIT_ORDERED, 0.5, 0); /* no market id: nothing to close */
    plan(&w);
    /* have 4, want 1: cancel p1 first, then the ready units dearest first; p2 cannot be
     * cancelled and is the one that stays. */
    SW_ASSERT_EQ(w.out.count, 3);
    const char *reason = "web/eu: desired 1, have 2 ready + 2 pending";
    assert_action(&w.out.items[0], SW_ACTION_RELEASE, "web", "eu", "p1", reason);
    assert_action(&w.out.items[1], SW_ACTION_RELEASE, "web", "eu", "r1", reason);
    assert_action(&w.out.items[2], SW_ACTION_RELEASE, "web", "eu", "r2", reason);
    world_free(&w);
}

SW_TEST(pinned_group_is_priced_at_its_providers_offer)
{
    struct world w;
    world_init(&w);
    static char *pinned[] = {"akash1master"};
    w.groups[0].providers = pinned;
    w.groups[0].provider_count = 1;
    sw_offers_add(&w.offers, "akash1cheap", "eu", 0.5, false);
    sw_offers_add(&w.offers, "akash1master", "eu", 1.44, true);
    sw_desired_set(&w.desired, "web", "eu", 1);
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 1);
    SW_ASSERT_NEAR(w.out.items[0].price_usd_hour, 1.44, 1e-12);
    world_free(&w);
}

SW_TEST(pending_units_without_market_id_are_never_released)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu", 0);
    unit(&w, "p1", "web", "eu", SW_UNIT_ORDERED, 0.9, 0);
    unit(&w, "p2", "web", "eu", SW_UNIT_LEASED, 0.9, 0);
    unit(&w, "r1", "web", "eu", SW_UNIT_READY, 0.1, 10);
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 1);
    assert_action(&w.out.items[0], SW_ACTION_RELEASE, "web", "eu", "r1",
                  "web/eu: desired 0, have 1 ready + 2 pending");
    world_free(&w);
}

SW_TEST(self_is_never_chosen)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu", 0);
    unit(&w, "me", "web", "eu", SW_UNIT_READY, 5.0, 999)->self = true;
    unit(&w, "other", "web", "eu", SW_UNIT_READY, 0.1, 1);
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 1);
    assert_action(&w.out.items[0], SW_ACTION_RELEASE, "web", "eu", "other",
                  "web/eu: desired 0, have 2 ready + 0 pending");
    world_free(&w);
}

SW_TEST(releasing_and_closed_units_neither_count_nor_go_twice)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu", 1);
    unit(&w, "going", "web", "eu", SW_UNIT_RELEASING, 0.5, 1);
    unit(&w, "gone", "web", "eu", SW_UNIT_CLOSED, 0.5, 1);
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 1);
    assert_action(&w.out.items[0], SW_ACTION_ACQUIRE, "web", "eu", NULL,
                  "web/eu: desired 1, have 0 ready + 0 pending");
    world_free(&w);
}

SW_TEST(unhealthy_units_are_replaced)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu", 2);
    unit(&w, "ok", "web", "eu", SW_UNIT_READY, 0.5, 1);
    struct sw_unit *sick = unit(&w, "sick", "web", "eu", SW_UNIT_READY, 0.5, 2);
    sick->unhealthy = true;
    sick->probe_failures = 4;
    sw_offers_add(&w.offers, "p", "eu", 0.45, true);
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 2);
    assert_action(&w.out.items[0], SW_ACTION_RELEASE, "web", "eu", "sick",
                  "unhealthy: 4 failed probes");
    SW_ASSERT_NEAR(w.out.items[0].price_usd_hour, 0.5, 0);
    assert_action(&w.out.items[1], SW_ACTION_ACQUIRE, "web", "eu", NULL,
                  "web/eu: desired 2, have 1 ready + 0 pending (1 unhealthy)");
    SW_ASSERT_NEAR(w.out.items[1].price_usd_hour, 0.45, 0);
    world_free(&w);
}

SW_TEST(unhealthy_released_even_when_desired_is_met)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu", 1);
    unit(&w, "ok", "web", "eu", SW_UNIT_READY, 0.5, 1);
    unit(&w, "sick-cheap", "web", "eu", SW_UNIT_READY, 0.1, 2)->unhealthy = true;
    struct sw_unit *dear = unit(&w, "sick-dear", "web", "eu", SW_UNIT_READY, 0.8, 1);
    dear->unhealthy = true;
    dear->probe_failures = 7;
    plan(&w);
    /* Both go (most expensive first); the healthy unit meets desired, nothing else. */
    SW_ASSERT_EQ(w.out.count, 2);
    assert_action(&w.out.items[0], SW_ACTION_RELEASE, "web", "eu", "sick-dear",
                  "unhealthy: 7 failed probes");
    assert_action(&w.out.items[1], SW_ACTION_RELEASE, "web", "eu", "sick-cheap",
                  "unhealthy: 0 failed probes");
    world_free(&w);
}

SW_TEST(unhealthy_pending_and_self_units_stay)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu", 1);
    unit(&w, "p", "web", "eu", SW_UNIT_LEASED, 0.5, 0)->unhealthy = true;
    struct sw_unit *me = unit(&w, "me", "web", "eu", SW_UNIT_READY, 0.5, 0);
    me->self = true;
    me->unhealthy = true;
    plan(&w);
    /* Neither counts as capacity, neither is released: one replacement is bought. */
    SW_ASSERT_EQ(w.out.count, 1);
    assert_action(&w.out.items[0], SW_ACTION_ACQUIRE, "web", "eu", NULL,
                  "web/eu: desired 1, have 0 ready + 0 pending (2 unhealthy)");
    world_free(&w);
}

SW_TEST(regions_missing_from_desired_are_emptied)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu", 1);
    unit(&w, "e1", "web", "eu", SW_UNIT_READY, 0.5, 1);
    unit(&w, "u1", "web", "us", SW_UNIT_READY, 0.5, 1);
    unit(&w, "u2", "web", "us", SW_UNIT_ORDERED, 0.5, 0);
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 1);
    assert_action(&w.out.items[0], SW_ACTION_RELEASE, "web", "us", "u1",
                  "web/us: desired 0, have 1 ready + 1 pending");
    world_free(&w);
}

SW_TEST(groups_absent_from_desired_get_no_actions)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu", 1);
    unit(&w, "e1", "web", "eu", SW_UNIT_READY, 0.5, 1);
    unit(&w, "b1", "batch", "eu", SW_UNIT_READY, 0.5, 1)->unhealthy = true;
    unit(&w, "b2", "batch", "us", SW_UNIT_READY, 0.5, 1);
    /* Units of a group the config does not know, and one found without a group. */
    unit(&w, "x1", "legacy", "eu", SW_UNIT_READY, 0.5, 1);
    unit(&w, "x2", NULL, NULL, SW_UNIT_READY, 0.5, 1);
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 0);

    /* Desired entries for unconfigured groups plan nothing either. */
    sw_desired_set(&w.desired, "legacy", "eu", 5);
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 0);
    world_free(&w);
}

SW_TEST(output_order_repairs_acquires_releases)
{
    struct world w;
    world_init(&w);
    /* Config order web, batch, cache; regions sorted within a group. */
    sw_desired_set(&w.desired, "cache", "eu", 1);
    sw_desired_set(&w.desired, "batch", "us", 0);
    sw_desired_set(&w.desired, "batch", "eu", 1);
    sw_desired_set(&w.desired, "web", "us", 1);
    sw_desired_set(&w.desired, "web", "eu", 0);
    unit(&w, "w-eu", "web", "eu", SW_UNIT_READY, 0.5, 1);
    unit(&w, "b-us", "batch", "us", SW_UNIT_READY, 0.5, 1);
    struct sw_unit *sick = unit(&w, "b-sick", "batch", "eu", SW_UNIT_READY, 0.5, 1);
    sick->unhealthy = true;
    sick->probe_failures = 3;
    unit(&w, "c-sick", "cache", "eu", SW_UNIT_READY, 0.5, 1)->unhealthy = true;
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 7);
    assert_action(&w.out.items[0], SW_ACTION_RELEASE, "batch", "eu", "b-sick",
                  "unhealthy: 3 failed probes");
    assert_action(&w.out.items[1], SW_ACTION_RELEASE, "cache", "eu", "c-sick",
                  "unhealthy: 0 failed probes");
    assert_action(&w.out.items[2], SW_ACTION_ACQUIRE, "web", "us", NULL,
                  "web/us: desired 1, have 0 ready + 0 pending");
    assert_action(&w.out.items[3], SW_ACTION_ACQUIRE, "batch", "eu", NULL,
                  "batch/eu: desired 1, have 0 ready + 0 pending (1 unhealthy)");
    assert_action(&w.out.items[4], SW_ACTION_ACQUIRE, "cache", "eu", NULL,
                  "cache/eu: desired 1, have 0 ready + 0 pending (1 unhealthy)");
    assert_action(&w.out.items[5], SW_ACTION_RELEASE, "web", "eu", "w-eu",
                  "web/eu: desired 0, have 1 ready + 0 pending");
    assert_action(&w.out.items[6], SW_ACTION_RELEASE, "batch", "us", "b-us",
                  "batch/us: desired 0, have 1 ready + 0 pending");
    world_free(&w);
}

SW_TEST(appends_to_existing_output_and_is_deterministic)
{
    struct world w;
    world_init(&w);
    sw_actions_add(&w.out, SW_ACTION_ACQUIRE, "prior", "x", NULL, 0, "already there");
    sw_desired_set(&w.desired, "web", "eu", 2);
    sw_desired_set(&w.desired, "web", "us", 0);
    unit(&w, "u2", "web", "us", SW_UNIT_READY, 0.5, 1);
    unit(&w, "u1", "web", "us", SW_UNIT_READY, 0.5, 1);
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 5);
    SW_ASSERT_STREQ(w.out.items[0].group, "prior");
    char *first = sw_actions_to_json(&w.out);
    sw_actions_clear(&w.out);
    sw_actions_add(&w.out, SW_ACTION_ACQUIRE, "prior", "x", NULL, 0, "already there");
    plan(&w);
    char *second = sw_actions_to_json(&w.out);
    SW_ASSERT_STREQ(first, second);
    SW_ASSERT_CONTAINS(first, "\"unit\":\"u1\"");
    free(first);
    free(second);
    SW_ASSERT_STREQ(w.out.items[3].unit_key, "u1");
    SW_ASSERT_STREQ(w.out.items[4].unit_key, "u2");
    world_free(&w);
}

SW_TEST(negative_desired_treated_as_zero)
{
    struct world w;
    world_init(&w);
    sw_desired_set(&w.desired, "web", "eu", -3);
    unit(&w, "e1", "web", "eu", SW_UNIT_READY, 0.5, 1);
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 1);
    assert_action(&w.out.items[0], SW_ACTION_RELEASE, "web", "eu", "e1",
                  "web/eu: desired 0, have 1 ready + 0 pending");
    world_free(&w);
}


/* ---- spread groups -------------------------------------------------------------------- */

static struct sw_unit *on(struct sw_unit *u, const char *provider)
{
    u->provider = sw_xstrdup(provider);
    return u;
}

/* A scale-down keeps the spread: the unit goes from the provider holding most, even when
 * another is dearer. Without the spread the dearest would go. */
SW_TEST(spread_scale_down_releases_from_the_largest_holder)
{
    struct world w;
    world_init(&w);
    w.groups[0].spread_min_providers = 3;
    sw_desired_set(&w.desired, "web", "eu", 3);
    on(unit(&w, "a1", "web", "eu", SW_UNIT_READY, 0.1, 1), "A");
    on(unit(&w, "a2", "web", "eu", SW_UNIT_READY, 0.1, 2), "A");
    on(unit(&w, "b1", "web", "eu", SW_UNIT_READY, 0.2, 3), "B");
    on(unit(&w, "c1", "web", "eu", SW_UNIT_READY, 0.5, 4), "C");
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 1);
    assert_action(&w.out.items[0], SW_ACTION_RELEASE, "web", "eu", "a2",
                  "web/eu: desired 3, have 4 ready + 0 pending");
    sw_actions_clear(&w.out);
    w.groups[0].spread_min_providers = 0;
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 1);
    SW_ASSERT_STREQ(w.out.items[0].unit_key, "c1");
    world_free(&w);
}

/* Several releases at once follow the counts as they drop: A and B tie at 3, so the usual
 * order picks (the dearer B, its newest unit); then A holds most. */
SW_TEST(spread_releases_recount_after_each_pick)
{
    struct world w;
    world_init(&w);
    w.groups[0].spread_max_share = 0.5;
    sw_desired_set(&w.desired, "web", "eu", 4);
    on(unit(&w, "a1", "web", "eu", SW_UNIT_READY, 0.1, 1), "A");
    on(unit(&w, "a2", "web", "eu", SW_UNIT_READY, 0.1, 2), "A");
    on(unit(&w, "a3", "web", "eu", SW_UNIT_READY, 0.1, 3), "A");
    on(unit(&w, "b1", "web", "eu", SW_UNIT_READY, 0.3, 4), "B");
    on(unit(&w, "b2", "web", "eu", SW_UNIT_READY, 0.3, 5), "B");
    on(unit(&w, "b3", "web", "eu", SW_UNIT_READY, 0.3, 6), "B");
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 2);
    SW_ASSERT_STREQ(w.out.items[0].unit_key, "b3");
    SW_ASSERT_STREQ(w.out.items[1].unit_key, "a3");
    world_free(&w);
}

/* A rebalance: the group holds 3 of 4 on A (at most 2). The extra unit on its way is kept
 * (never cancelled as excess); once ready, a unit on A goes, not the newcomer. */
SW_TEST(spread_rebalance_keeps_the_replacement_then_releases_on_the_heavy_provider)
{
    struct world w;
    world_init(&w);
    w.groups[0].spread_max_share = 0.5;
    sw_desired_set(&w.desired, "web", "eu", 4);
    on(unit(&w, "a1", "web", "eu", SW_UNIT_READY, 0.1, 1), "A");
    on(unit(&w, "a2", "web", "eu", SW_UNIT_READY, 0.1, 2), "A");
    on(unit(&w, "a3", "web", "eu", SW_UNIT_READY, 0.1, 3), "A");
    on(unit(&w, "b1", "web", "eu", SW_UNIT_READY, 0.2, 4), "B");
    struct sw_unit *extra = unit(&w, "x1", "web", "eu", SW_UNIT_LEASED, 0.3, 0);
    extra->market_id = sw_xstrdup("777");
    on(extra, "C");
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 0);
    extra->state = SW_UNIT_READY;
    extra->ready_ms = 9;
    plan(&w);
    SW_ASSERT_EQ(w.out.count, 1);
    assert_action(&w.out.items[0], SW_ACTION_RELEASE, "web", "eu", "a3",
                  "web/eu: desired 4, have 5 ready + 0 pending");
    world_free(&w);
}

/* the memo skips only plans whose inputs are those of the last empty plan. */
SW_TEST(memo_skips_only_unchanged_empty_plans)
{
    struct world w;
    world_init(&w);
    struct sw_planner_memo memo = {0};
    sw_offers_add(&w.offers, "p1", "eu", 0.5, false);
    struct sw_unit *a = unit(&w, "k1", "web", "eu", SW_UNIT_READY, 0.5, 10);
    a->market_id = sw_xstrdup("m1");
    sw_desired_set(&w.desired, "web", "eu", 1);
#define PLAN_MEMO()                                                                                \
    sw_planner_plan_memo(&memo, &w.desired, &w.units, &w.offers, w.groups, w.group_count, &w.out)
    PLAN_MEMO();
    SW_ASSERT_EQ(w.out.count, 0);
    SW_ASSERT(memo.valid);
    PLAN_MEMO();
    SW_ASSERT_EQ(w.out.count, 0);

    /* A count changes: planned again. */
    sw_desired_set(&w.desired, "web", "eu", 2);
    PLAN_MEMO();
    SW_ASSERT_EQ(w.out.count, 1);
    SW_ASSERT_EQ(w.out.items[0].kind, SW_ACTION_ACQUIRE);
    SW_ASSERT(!memo.valid); /* a plan with actions is not remembered */
    PLAN_MEMO();
    SW_ASSERT_EQ(w.out.count, 2); /* and is made again */
    sw_actions_clear(&w.out);
    sw_actions_init(&w.out);

    sw_desired_set(&w.desired, "web", "eu", 1);
    PLAN_MEMO();
    SW_ASSERT_EQ(w.out.count, 0);
    SW_ASSERT(memo.valid);
    /* A unit's health changes, nothing else: planned again (a repair). */
    a->unhealthy = true;
    PLAN_MEMO();
    SW_ASSERT(w.out.count >= 1);
    SW_ASSERT_EQ(w.out.items[0].kind, SW_ACTION_RELEASE);
    sw_actions_clear(&w.out);
    sw_actions_init(&w.out);
    a->unhealthy = false;
    PLAN_MEMO();
    SW_ASSERT_EQ(w.out.count, 0);
    /* A unit's state changes: planned again (a releasing unit leaves a shortfall). */
    a->state = SW_UNIT_RELEASING;
    PLAN_MEMO();
    SW_ASSERT_EQ(w.out.count, 1);
    SW_ASSERT_EQ(w.out.items[0].kind, SW_ACTION_ACQUIRE);
    sw_actions_clear(&w.out);
    sw_actions_init(&w.out);
    a->state = SW_UNIT_READY;
    PLAN_MEMO();
    SW_ASSERT_EQ(w.out.count, 0);
    /* Another unit, same region: planned again (one too many). */
    struct sw_unit *b = unit(&w, "k2", "web", "eu", SW_UNIT_READY, 0.7, 20);
    b->market_id = sw_xstrdup("m2");
    PLAN_MEMO();
    SW_ASSERT_EQ(w.out.count, 1);
    SW_ASSERT_STREQ(w.out.items[0].unit_key, "k2");
#undef PLAN_MEMO
    sw_planner_memo_free(&memo);
    world_free(&w);
}

SW_TEST_MAIN()
