/* test_spread.c — the spread constraint: allowed share, avoid lists (pending units with a
 * known provider, the batch's units still waiting for a bid, min_providers, back-off,
 * relaxing when nobody else offers), the heavy provider and rebalancing. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "spread.h"
#include "sw_test.h"

static struct sw_group_config spread_group(const char *name, double share, int min_providers)
{
    struct sw_group_config g;
    memset(&g, 0, sizeof(g));
    g.name = (char *)name;
    g.max = 100;
    g.spread_max_share = share;
    g.spread_min_providers = min_providers;
    return g;
}

static struct sw_unit *add_unit(struct sw_units *us, const char *key, const char *region, int state,
                                const char *provider, int64_t ordered_ms)
{
    struct sw_unit *u = sw_unit_new(key, "web", region);
    u->state = state;
    u->ordered_ms = ordered_ms;
    if (provider != NULL)
        u->provider = strdup(provider);
    sw_units_add(us, u);
    return u;
}

/* eu: A cheapest, then B, then C. us: D alone. */
static void three_providers(struct sw_offers *o)
{
    sw_offers_init(o);
    sw_offers_add(o, "A", "eu", 0.10, false);
    sw_offers_add(o, "B", "eu", 0.20, false);
    sw_offers_add(o, "C", "eu", 0.30, false);
    sw_offers_add(o, "D", "us", 0.15, false);
}

/* The avoid list as one comma-joined string ("" when empty), for exact asserts. */
static const char *joined(const struct sw_names *n)
{
    static char buf[256];
    buf[0] = '\0';
    for (size_t i = 0; i < n->count; i++) {
        strcat(buf, i ? "," : "");
        strcat(buf, n->items[i]);
    }
    return buf;
}

static int avoid(const struct sw_group_config *g, const struct sw_units *us,
                 const struct sw_offers *o, int total, const struct sw_names *backed_off,
                 const struct sw_unit *unit, struct sw_names *out)
{
    struct sw_spread_input in = {
        .group = g, .units = us, .offers = o, .target_total = total, .backed_off = backed_off};
    return sw_spread_avoid(&in, unit, out);
}

SW_TEST(names_copy_and_ignore_duplicates)
{
    struct sw_names n = {0};
    char name[] = "A";
    sw_names_add(&n, name);
    name[0] = 'B'; /* a copy was kept */
    sw_names_add(&n, "A");
    sw_names_add(&n, NULL);
    SW_ASSERT_EQ(n.count, 1);
    SW_ASSERT(sw_names_has(&n, "A"));
    SW_ASSERT(!sw_names_has(&n, "B"));
    SW_ASSERT(!sw_names_has(NULL, "A"));
    sw_names_clear(&n);
    SW_ASSERT_EQ(n.count, 0);
    sw_names_add(&n, "C"); /* usable after clear */
    SW_ASSERT_EQ(n.count, 1);
    sw_names_clear(&n);
}

SW_TEST(allowed_share_rounds_down_but_never_below_one)
{
    struct sw_group_config half = spread_group("web", 0.5, 0);
    SW_ASSERT_EQ(sw_spread_allowed(&half, 4), 2);
    SW_ASSERT_EQ(sw_spread_allowed(&half, 5), 2);
    SW_ASSERT_EQ(sw_spread_allowed(&half, 3), 1); /* 2 of 3 would be 67% */
    SW_ASSERT_EQ(sw_spread_allowed(&half, 1), 1);
    SW_ASSERT_EQ(sw_spread_allowed(&half, 0), 1);
    struct sw_group_config third = spread_group("web", 0.3, 0);
    SW_ASSERT_EQ(sw_spread_allowed(&third, 10), 3); /* 0.3 × 10 is 2.9999… in binary */
    struct sw_group_config none = spread_group("web", 0, 2);
    SW_ASSERT_EQ(sw_spread_allowed(&none, 4), INT_MAX);
    struct sw_group_config whole = spread_group("web", 1, 0);
    SW_ASSERT_EQ(sw_spread_allowed(&whole, 4), INT_MAX);
    SW_ASSERT(!sw_spread_enabled(&whole));
    SW_ASSERT(sw_spread_enabled(&half));
    SW_ASSERT(sw_spread_enabled(&none));
    struct sw_group_config one = spread_group("web", 0, 1);
    SW_ASSERT(!sw_spread_enabled(&one));
}

SW_TEST(avoid_provider_at_its_share)
{
    struct sw_group_config g = spread_group("web", 0.5, 0);
    struct sw_offers o;
    three_providers(&o);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "u1", "eu", SW_UNIT_READY, "A", 1);
    add_unit(&us, "u2", "eu", SW_UNIT_READY, "A", 2);
    add_unit(&us, "u3", "eu", SW_UNIT_READY, "B", 3);
    add_unit(&us, "x1", "eu", SW_UNIT_CLOSED, "B", 3);    /* gone: not counted */
    add_unit(&us, "x2", "eu", SW_UNIT_RELEASING, "B", 3); /* going: not counted */
    struct sw_unit *x3 = add_unit(&us, "x3", "eu", SW_UNIT_READY, "B", 3);
    x3->unhealthy = true; /* about to be replaced: not counted */
    struct sw_unit *next = add_unit(&us, "u4", "eu", SW_UNIT_ORDERED, NULL, 4);
    struct sw_names out = {0};
    SW_ASSERT_EQ(avoid(&g, &us, &o, 4, NULL, next, &out), SW_SPREAD_KEPT);
    SW_ASSERT_STREQ(joined(&out), "A");
    /* A group of 6 allows 3 per provider: A may take another. */
    SW_ASSERT_EQ(avoid(&g, &us, &o, 6, NULL, next, &out), SW_SPREAD_KEPT);
    SW_ASSERT_STREQ(joined(&out), "");
    sw_names_clear(&out);
    sw_units_clear(&us);
    sw_offers_clear(&o);
}

SW_TEST(avoid_counts_pending_units_whose_provider_is_known)
{
    struct sw_group_config g = spread_group("web", 0.5, 0);
    struct sw_offers o;
    three_providers(&o);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "u1", "eu", SW_UNIT_READY, "A", 1);
    add_unit(&us, "u2", "eu", SW_UNIT_LEASED, "A", 2); /* won by A, not ready yet */
    struct sw_unit *next = add_unit(&us, "u3", "eu", SW_UNIT_ORDERED, NULL, 3);
    struct sw_names out = {0};
    SW_ASSERT_EQ(avoid(&g, &us, &o, 4, NULL, next, &out), SW_SPREAD_KEPT);
    SW_ASSERT_STREQ(joined(&out), "A");
    sw_names_clear(&out);
    sw_units_clear(&us);
    sw_offers_clear(&o);
}

/* A batch of four sent one by one before any bid comes back: each acquire sees the earlier
 * ones as waiting and places them where the marketplace will (the cheapest allowed). */
SW_TEST(avoid_places_the_batch_still_waiting_for_bids)
{
    struct sw_group_config g = spread_group("web", 0.5, 0);
    struct sw_offers o;
    three_providers(&o);
    struct sw_units us;
    sw_units_init(&us);
    struct sw_names out = {0};
    const char *want[] = {"", "", "A", "A"};
    for (int i = 0; i < 4; i++) {
        char key[8];
        snprintf(key, sizeof(key), "u%d", i + 1);
        struct sw_unit *u = add_unit(&us, key, "eu", SW_UNIT_ORDERED, NULL, 10 + i);
        SW_ASSERT_EQ(avoid(&g, &us, &o, 4, NULL, u, &out), SW_SPREAD_KEPT);
        SW_ASSERT_STREQ(joined(&out), want[i]);
    }
    /* The marketplace answered for u1 and u3 (B, not as guessed): the rest follow. */
    us.items[0]->provider = strdup("B");
    us.items[2]->provider = strdup("B");
    struct sw_unit *u5 = add_unit(&us, "u5", "eu", SW_UNIT_ORDERED, NULL, 20);
    SW_ASSERT_EQ(avoid(&g, &us, &o, 4, NULL, u5, &out), SW_SPREAD_KEPT);
    SW_ASSERT_STREQ(joined(&out), "A,B"); /* B holds 2; u2 and u4 guessed on A */
    sw_names_clear(&out);
    sw_units_clear(&us);
    sw_offers_clear(&o);
}

SW_TEST(avoid_guess_respects_max_price_and_region)
{
    struct sw_group_config g = spread_group("web", 0.5, 0);
    g.max_price_usd_hour = 0.25; /* C is too dear */
    struct sw_offers o;
    three_providers(&o);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "u1", "eu", SW_UNIT_ORDERED, NULL, 1);
    add_unit(&us, "u2", "eu", SW_UNIT_ORDERED, NULL, 2);
    add_unit(&us, "u3", "us", SW_UNIT_ORDERED, NULL, 3); /* guessed D: the only one in us */
    struct sw_unit *next = add_unit(&us, "u4", "eu", SW_UNIT_ORDERED, NULL, 4);
    struct sw_names out = {0};
    /* A group of 4 allows 2 each: u1 and u2 are guessed on A, which is then full. */
    SW_ASSERT_EQ(avoid(&g, &us, &o, 4, NULL, next, &out), SW_SPREAD_KEPT);
    SW_ASSERT_STREQ(joined(&out), "A");
    /* A group of 2 allows 1 each: A and B are at it; C is too dear, so nobody eligible is
     * left in eu and the spread gives way. */
    SW_ASSERT_EQ(avoid(&g, &us, &o, 2, NULL, next, &out), SW_SPREAD_SPREAD_DROPPED);
    SW_ASSERT_STREQ(joined(&out), "");
    sw_names_clear(&out);
    sw_units_clear(&us);
    sw_offers_clear(&o);
}

SW_TEST(avoid_min_providers_forces_a_new_provider_only_when_needed)
{
    struct sw_group_config g = spread_group("web", 0, 2); /* no share limit */
    struct sw_offers o;
    three_providers(&o);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "u1", "eu", SW_UNIT_READY, "A", 1);
    add_unit(&us, "u2", "eu", SW_UNIT_READY, "A", 2);
    struct sw_unit *next = add_unit(&us, "u3", "eu", SW_UNIT_ORDERED, NULL, 3);
    struct sw_names out = {0};
    /* Third of three, all others on A: the last chance to reach 2 providers. */
    SW_ASSERT_EQ(avoid(&g, &us, &o, 3, NULL, next, &out), SW_SPREAD_KEPT);
    SW_ASSERT_STREQ(joined(&out), "A");
    /* Third of four: one more unit will follow, it can still bring the second provider. */
    SW_ASSERT_EQ(avoid(&g, &us, &o, 4, NULL, next, &out), SW_SPREAD_KEPT);
    SW_ASSERT_STREQ(joined(&out), "");
    /* A group smaller than min_providers is not held to it. */
    struct sw_group_config three = spread_group("web", 0, 4);
    SW_ASSERT_EQ(avoid(&three, &us, &o, 3, NULL, next, &out), SW_SPREAD_KEPT);
    SW_ASSERT_STREQ(joined(&out), "");
    sw_names_clear(&out);
    sw_units_clear(&us);
    sw_offers_clear(&o);
}

SW_TEST(avoid_backed_off_providers_and_relax_in_order)
{
    struct sw_group_config g = spread_group("web", 0.5, 0);
    struct sw_offers o;
    sw_offers_init(&o);
    sw_offers_add(&o, "A", "eu", 0.10, false);
    sw_offers_add(&o, "B", "eu", 0.20, false);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "u1", "eu", SW_UNIT_READY, "B", 1);
    struct sw_unit *next = add_unit(&us, "u2", "eu", SW_UNIT_ORDERED, NULL, 2);
    struct sw_names backed_off = {0};
    sw_names_add(&backed_off, "Z"); /* offers nowhere: avoided all the same */
    struct sw_names out = {0};
    SW_ASSERT_EQ(avoid(&g, &us, &o, 2, &backed_off, next, &out), SW_SPREAD_KEPT);
    SW_ASSERT_STREQ(joined(&out), "B,Z");
    /* A backed off and B at its share: the spread gives way first. */
    sw_names_add(&backed_off, "A");
    SW_ASSERT_EQ(avoid(&g, &us, &o, 2, &backed_off, next, &out), SW_SPREAD_SPREAD_DROPPED);
    SW_ASSERT_STREQ(joined(&out), "A,Z");
    /* Everyone backed off: capacity first, nothing avoided. */
    sw_names_add(&backed_off, "B");
    SW_ASSERT_EQ(avoid(&g, &us, &o, 2, &backed_off, next, &out), SW_SPREAD_ALL_DROPPED);
    SW_ASSERT_STREQ(joined(&out), "");
    /* A group without spread still avoids backed-off providers. */
    struct sw_group_config plain = spread_group("web", 0, 0);
    struct sw_names only_a = {0};
    sw_names_add(&only_a, "A");
    SW_ASSERT_EQ(avoid(&plain, &us, &o, 2, &only_a, next, &out), SW_SPREAD_KEPT);
    SW_ASSERT_STREQ(joined(&out), "A");
    /* Offers unknown: nothing to relax against, the list stands. */
    SW_ASSERT_EQ(avoid(&g, &us, NULL, 2, &backed_off, next, &out), SW_SPREAD_KEPT);
    SW_ASSERT_STREQ(joined(&out), "A,B,Z");
    sw_names_clear(&only_a);
    sw_names_clear(&backed_off);
    sw_names_clear(&out);
    sw_units_clear(&us);
    sw_offers_clear(&o);
}

SW_TEST(heavy_provider)
{
    struct sw_group_config g = spread_group("web", 0.5, 0);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "u1", "eu", SW_UNIT_READY, "B", 1);
    add_unit(&us, "u2", "eu", SW_UNIT_READY, "B", 2);
    add_unit(&us, "u3", "eu", SW_UNIT_READY, "A", 3);
    add_unit(&us, "u4", "eu", SW_UNIT_READY, "A", 4);
    SW_ASSERT(sw_spread_heavy(&g, &us, 4) == NULL);
    /* Shrinking to 3 allows 1 each: the largest holder, ties to the smallest name. */
    SW_ASSERT_STREQ(sw_spread_heavy(&g, &us, 3), "A");
    add_unit(&us, "u5", "eu", SW_UNIT_LEASED, "B", 5); /* pending with a known provider */
    SW_ASSERT_STREQ(sw_spread_heavy(&g, &us, 4), "B");
    struct sw_group_config plain = spread_group("web", 0, 0);
    SW_ASSERT(sw_spread_heavy(&plain, &us, 4) == NULL);
    sw_units_clear(&us);

    struct sw_group_config two = spread_group("web", 0, 2);
    add_unit(&us, "v1", "eu", SW_UNIT_READY, "A", 1);
    add_unit(&us, "v2", "eu", SW_UNIT_ORDERED, NULL, 2);
    SW_ASSERT(sw_spread_heavy(&two, &us, 2) == NULL); /* the second may still land elsewhere */
    us.items[1]->provider = strdup("A");
    SW_ASSERT_STREQ(sw_spread_heavy(&two, &us, 2), "A");
    SW_ASSERT(sw_spread_heavy(&two, &us, 1) == NULL); /* below min_providers units */
    sw_units_clear(&us);
}

static void desired_eu(struct sw_desired *d, int n)
{
    sw_desired_init(d);
    sw_desired_set(d, "web", "eu", n);
}

SW_TEST(rebalance_adds_one_unit_on_a_provider_with_room)
{
    struct sw_group_config g = spread_group("web", 0.5, 0);
    struct sw_offers o;
    three_providers(&o);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "u1", "eu", SW_UNIT_READY, "A", 1);
    add_unit(&us, "u2", "eu", SW_UNIT_READY, "A", 2);
    add_unit(&us, "u3", "eu", SW_UNIT_READY, "A", 3);
    add_unit(&us, "u4", "eu", SW_UNIT_READY, "B", 4);
    struct sw_desired d;
    desired_eu(&d, 4);
    struct sw_actions out;
    sw_actions_init(&out);
    sw_spread_rebalance(&d, &us, &o, &g, 1, NULL, &out);
    SW_ASSERT_EQ(out.count, 1);
    SW_ASSERT_EQ(out.items[0].kind, SW_ACTION_ACQUIRE);
    SW_ASSERT_STREQ(out.items[0].region, "eu");
    SW_ASSERT_NEAR(out.items[0].price_usd_hour, 0.20, 1e-12); /* B has room for one more */
    SW_ASSERT_STREQ(out.items[0].reason, "spread: A holds 3 of web's 4 units (at most 2 per "
                                         "provider); adding one elsewhere, then releasing one "
                                         "there");
    sw_actions_clear(&out);
    /* B in back-off: C it is. */
    struct sw_names backed_off = {0};
    sw_names_add(&backed_off, "B");
    sw_spread_rebalance(&d, &us, &o, &g, 1, &backed_off, &out);
    SW_ASSERT_EQ(out.count, 1);
    SW_ASSERT_NEAR(out.items[0].price_usd_hour, 0.30, 1e-12);
    sw_actions_clear(&out);
    sw_names_clear(&backed_off);
    sw_desired_clear(&d);
    sw_units_clear(&us);
    sw_offers_clear(&o);
}

SW_TEST(rebalance_waits_for_a_settled_group)
{
    struct sw_group_config g = spread_group("web", 0.5, 0);
    struct sw_offers o;
    three_providers(&o);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "u1", "eu", SW_UNIT_READY, "A", 1);
    add_unit(&us, "u2", "eu", SW_UNIT_READY, "A", 2);
    add_unit(&us, "u3", "eu", SW_UNIT_READY, "A", 3);
    struct sw_unit *u4 = add_unit(&us, "u4", "eu", SW_UNIT_LEASED, "C", 4);
    struct sw_desired d;
    desired_eu(&d, 4);
    struct sw_actions out;
    sw_actions_init(&out);
    sw_spread_rebalance(&d, &us, &o, &g, 1, NULL, &out);
    SW_ASSERT_EQ(out.count, 0); /* a unit is still on its way */
    u4->state = SW_UNIT_READY;
    sw_desired_set(&d, "web", "eu", 5);
    sw_spread_rebalance(&d, &us, &o, &g, 1, NULL, &out);
    SW_ASSERT_EQ(out.count, 0); /* short of desired: the planner's job first */
    sw_desired_set(&d, "web", "eu", 4);
    u4->state = SW_UNIT_RELEASING;
    sw_spread_rebalance(&d, &us, &o, &g, 1, NULL, &out);
    SW_ASSERT_EQ(out.count, 0); /* a release is still going */
    sw_actions_clear(&out);
    sw_desired_clear(&d);
    sw_units_clear(&us);
    sw_offers_clear(&o);
}

SW_TEST(rebalance_never_churns_when_nobody_has_room)
{
    /* 3 units at most 1 per provider, but only A and B offer: B cannot take a second. */
    struct sw_group_config g = spread_group("web", 0.5, 0);
    struct sw_offers o;
    sw_offers_init(&o);
    sw_offers_add(&o, "A", "eu", 0.10, false);
    sw_offers_add(&o, "B", "eu", 0.20, false);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "u1", "eu", SW_UNIT_READY, "A", 1);
    add_unit(&us, "u2", "eu", SW_UNIT_READY, "A", 2);
    add_unit(&us, "u3", "eu", SW_UNIT_READY, "B", 3);
    struct sw_desired d;
    desired_eu(&d, 3);
    struct sw_actions out;
    sw_actions_init(&out);
    sw_spread_rebalance(&d, &us, &o, &g, 1, NULL, &out);
    SW_ASSERT_EQ(out.count, 0);
    sw_actions_clear(&out);
    sw_desired_clear(&d);
    sw_units_clear(&us);
    sw_offers_clear(&o);
}

SW_TEST(rebalance_min_providers_goes_to_a_new_provider)
{
    struct sw_group_config g = spread_group("web", 0, 2);
    struct sw_offers o;
    three_providers(&o);
    struct sw_units us;
    sw_units_init(&us);
    add_unit(&us, "u1", "eu", SW_UNIT_READY, "A", 1);
    add_unit(&us, "u2", "eu", SW_UNIT_READY, "A", 2);
    add_unit(&us, "u3", "us", SW_UNIT_READY, "A", 3);
    struct sw_desired d;
    sw_desired_init(&d);
    sw_desired_set(&d, "web", "eu", 2);
    sw_desired_set(&d, "web", "us", 1);
    struct sw_actions out;
    sw_actions_init(&out);
    sw_spread_rebalance(&d, &us, &o, &g, 1, NULL, &out);
    SW_ASSERT_EQ(out.count, 1);
    SW_ASSERT_STREQ(out.items[0].region, "eu"); /* where A holds most */
    SW_ASSERT_NEAR(out.items[0].price_usd_hour, 0.20, 1e-12);
    SW_ASSERT_STREQ(out.items[0].reason, "spread: web spans 1 provider, needs 2; adding one "
                                         "elsewhere, then releasing one on A");
    sw_actions_clear(&out);
    sw_desired_clear(&d);
    sw_units_clear(&us);
    sw_offers_clear(&o);
}

SW_TEST_MAIN()
