/* test_model.c — the plain data containers the decision pipeline shares. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "mem.h"
#include "model.h"
#include "sw_test.h"

static struct sw_unit *make_unit(const char *key, const char *group, const char *region, int state,
                                 double price)
{
    struct sw_unit *u = sw_unit_new(key, group, region);
    u->state = state;
    u->price_usd_hour = price;
    return u;
}

SW_TEST(desired_set_get_sorted)
{
    struct sw_desired d;
    sw_desired_init(&d);
    sw_desired_set(&d, "web", "us-east", 2);
    sw_desired_set(&d, "batch", "eu", 1);
    sw_desired_set(&d, "web", "eu-west", 3);
    sw_desired_set(&d, "web", "ap", 0);
    SW_ASSERT_EQ(d.count, 4);
    SW_ASSERT_STREQ(d.entries[0].group, "batch");
    SW_ASSERT_STREQ(d.entries[1].region, "ap");
    SW_ASSERT_STREQ(d.entries[2].region, "eu-west");
    SW_ASSERT_STREQ(d.entries[3].region, "us-east");
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "eu-west"), 3);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "nowhere"), 0);
    SW_ASSERT(sw_desired_has(&d, "web", "ap"));
    SW_ASSERT(!sw_desired_has(&d, "web", "nowhere"));
    SW_ASSERT_EQ(sw_desired_group_total(&d, "web"), 5);
    SW_ASSERT_EQ(sw_desired_group_total(&d, "none"), 0);
    sw_desired_set(&d, "web", "eu-west", 7);
    SW_ASSERT_EQ(d.count, 4);
    SW_ASSERT_EQ(sw_desired_get(&d, "web", "eu-west"), 7);
    sw_desired_clear(&d);
    SW_ASSERT_EQ(d.count, 0);
    sw_desired_set(&d, "web", "a", 1); /* usable after clear */
    SW_ASSERT_EQ(d.count, 1);
    sw_desired_clear(&d);
}

SW_TEST(desired_grows_past_initial_capacity)
{
    struct sw_desired d;
    sw_desired_init(&d);
    char region[16];
    for (int i = 99; i >= 0; i--) {
        snprintf(region, sizeof(region), "r%03d", i);
        sw_desired_set(&d, "g", region, i);
    }
    SW_ASSERT_EQ(d.count, 100);
    for (size_t i = 1; i < d.count; i++)
        SW_ASSERT(strcmp(d.entries[i - 1].region, d.entries[i].region) < 0);
    SW_ASSERT_EQ(sw_desired_get(&d, "g", "r042"), 42);
    SW_ASSERT_EQ(sw_desired_group_total(&d, "g"), 4950);
    sw_desired_clear(&d);
}

SW_TEST(desired_copy_equal_json_roundtrip)
{
    struct sw_desired a, b;
    sw_desired_init(&a);
    sw_desired_init(&b);
    sw_desired_set(&a, "web", "eu", 2);
    sw_desired_set(&a, "web", "us", 0);
    sw_desired_set(&a, "batch", "eu", 5);
    sw_desired_copy(&b, &a);
    SW_ASSERT(sw_desired_equal(&a, &b));
    sw_desired_copy(&b, &b);
    SW_ASSERT(sw_desired_equal(&a, &b));
    sw_desired_set(&b, "web", "us", 1);
    SW_ASSERT(!sw_desired_equal(&a, &b));

    char *json = sw_desired_to_json(&a);
    SW_ASSERT_STREQ(json, "{\"batch\":{\"eu\":5},\"web\":{\"eu\":2,\"us\":0}}");
    SW_ASSERT_EQ(sw_desired_from_json(&b, json), 0);
    SW_ASSERT(sw_desired_equal(&a, &b));
    free(json);

    struct sw_desired empty;
    sw_desired_init(&empty);
    json = sw_desired_to_json(&empty);
    SW_ASSERT_STREQ(json, "{}");
    free(json);
    sw_desired_clear(&a);
    sw_desired_clear(&b);
}

/* Bug found in review: a group holding an array made from_json call sw_desired_set with a
 * NULL region (a crash), fractional or negative counts were taken silently, and a
 * refused document had already wiped the destination. */
SW_TEST(desired_from_json_rejects_what_to_json_never_writes)
{
    struct sw_desired d;
    sw_desired_init(&d);
    sw_desired_set(&d, "keep", "me", 4);
    static const char *const bad[] = {"[1]",
                                      "not json",
                                      "{\"web\":[1,2]}",
                                      "{\"web\":3}",
                                      "{\"web\":{\"eu\":1.5}}",
                                      "{\"web\":{\"eu\":-1}}",
                                      "{\"web\":{\"eu\":\"2\"}}",
                                      "{\"web\":{\"eu\":1e12}}"};
    for (size_t i = 0; i < SW_ARRAY_LEN(bad); i++) {
        SW_ASSERT_EQ(sw_desired_from_json(&d, bad[i]), SW_EINVAL);
        SW_ASSERT_EQ(d.count, 1);
        SW_ASSERT_EQ(sw_desired_get(&d, "keep", "me"), 4);
    }
    SW_ASSERT_EQ(sw_desired_from_json(&d, NULL), SW_EINVAL);
    SW_ASSERT_EQ(sw_desired_from_json(&d, "{\"web\":{}}"), 0);
    SW_ASSERT_EQ(d.count, 0);
    sw_desired_clear(&d);
}

SW_TEST(unit_state_names)
{
    static const char *const names[] = {"ordered", "created", "leased",
                                        "ready",   "closed",  "releasing"};
    for (int i = 0; i < 6; i++) {
        SW_ASSERT_STREQ(sw_unit_state_name(i), names[i]);
        SW_ASSERT_EQ(sw_unit_state_parse(names[i]), i);
    }
    SW_ASSERT_EQ(SW_UNIT_RELEASING, 5);
    SW_ASSERT_STREQ(sw_unit_state_name(6), "unknown");
    SW_ASSERT_STREQ(sw_unit_state_name(-1), "unknown");
    SW_ASSERT_EQ(sw_unit_state_parse("bogus"), -1);
    SW_ASSERT_EQ(sw_unit_state_parse(NULL), -1);
}

SW_TEST(unit_pending_and_counts)
{
    struct sw_unit *u = sw_unit_new("k", "web", "eu");
    static const struct {
        int state;
        bool pending;
        bool counts;
    } cases[] = {{SW_UNIT_ORDERED, true, true},  {SW_UNIT_CREATED, true, true},
                 {SW_UNIT_LEASED, true, true},   {SW_UNIT_READY, false, true},
                 {SW_UNIT_CLOSED, false, false}, {SW_UNIT_RELEASING, false, false}};
    for (size_t i = 0; i < SW_ARRAY_LEN(cases); i++) {
        u->state = cases[i].state;
        u->unhealthy = false;
        SW_ASSERT_EQ(sw_unit_is_pending(u), cases[i].pending);
        SW_ASSERT_EQ(sw_unit_counts(u), cases[i].counts);
        u->unhealthy = true;
        SW_ASSERT(!sw_unit_counts(u));
    }
    sw_unit_free(u);
    sw_unit_free(NULL);
}

SW_TEST(unit_clone_is_deep)
{
    struct sw_unit *u = make_unit("k1", "web", "eu", SW_UNIT_READY, 0.5);
    u->market_id = sw_xstrdup("123");
    u->provider = sw_xstrdup("akash1p");
    u->close_reason = sw_xstrdup("gone");
    u->self = true;
    u->probe_failures = 2;
    u->ready_ms = 99;
    const char *uris[] = {"https://a", "https://b"};
    sw_unit_set_uris(u, uris, 2);
    u->watch_version = 7; /* paired and applied by a watch pass */
    u->watch_applied = true;
    struct sw_unit *c = sw_unit_clone(u);
    SW_ASSERT_EQ(c->watch_version, 0); /* a clone pairs, and applies its entry, anew */
    SW_ASSERT(!c->watch_applied);
    SW_ASSERT(c->key != u->key);
    SW_ASSERT_STREQ(c->key, "k1");
    SW_ASSERT_STREQ(c->market_id, "123");
    SW_ASSERT_STREQ(c->provider, "akash1p");
    SW_ASSERT_STREQ(c->close_reason, "gone");
    SW_ASSERT(c->self);
    SW_ASSERT_EQ(c->probe_failures, 2);
    SW_ASSERT_EQ(c->ready_ms, 99);
    SW_ASSERT_EQ(c->uri_count, 2);
    SW_ASSERT(c->uris != u->uris);
    SW_ASSERT_STREQ(c->uris[1], "https://b");
    sw_unit_free(u);
    SW_ASSERT_STREQ(c->uris[0], "https://a"); /* survives the original */
    sw_unit_set_uris(c, NULL, 0);
    SW_ASSERT_EQ(c->uri_count, 0);
    SW_ASSERT(c->uris == NULL);
    sw_unit_free(c);
}

/* the model's group and region names are interned (equal names, one pointer) and
 * every unit gets a serial of its own that its clone keeps. */
SW_TEST(names_interned_and_serials_unique)
{
    char group[8], region[8];
    snprintf(group, sizeof(group), "web");
    snprintf(region, sizeof(region), "eu");
    struct sw_unit *u = sw_unit_new("k1", group, region);
    struct sw_unit *v = sw_unit_new("k2", "web", "eu");
    SW_ASSERT(u->group == v->group);
    SW_ASSERT(u->region == v->region);
    SW_ASSERT(u->region != region);
    SW_ASSERT(u->serial != 0 && v->serial != 0 && u->serial != v->serial);
    struct sw_unit *c = sw_unit_clone(u);
    SW_ASSERT_EQ(c->serial, u->serial);
    SW_ASSERT(c->region == u->region);
    struct sw_desired d;
    sw_desired_init(&d);
    sw_desired_set(&d, group, region, 2);
    SW_ASSERT(d.entries[0].group == u->group);
    SW_ASSERT(d.entries[0].region == u->region);
    struct sw_desired_entry view[] = {{group, (char *)"us", 1}};
    sw_desired_assign_sorted(&d, view, 1);
    SW_ASSERT(d.entries[0].group == u->group);
    SW_ASSERT(d.entries[0].region != view[0].region);
    SW_ASSERT_STREQ(d.entries[0].region, "us");
    sw_desired_clear(&d);
    sw_unit_free(c);
    sw_unit_free(v);
    sw_unit_free(u);
}

SW_TEST(units_container_counts_and_spend)
{
    struct sw_units us;
    sw_units_init(&us);
    sw_units_add(&us, make_unit("a", "web", "eu", SW_UNIT_READY, 1.0));
    sw_units_add(&us, make_unit("b", "web", "eu", SW_UNIT_ORDERED, 0.5));
    sw_units_add(&us, make_unit("c", "web", "us", SW_UNIT_RELEASING, 2.0));
    sw_units_add(&us, make_unit("d", "web", "eu", SW_UNIT_CLOSED, 4.0));
    struct sw_unit *sick = make_unit("e", "web", "eu", SW_UNIT_READY, 0.25);
    sick->unhealthy = true;
    sw_units_add(&us, sick);
    sw_units_add(&us, make_unit("f", "batch", "eu", SW_UNIT_LEASED, 0.125));
    struct sw_unit *found = make_unit("g", NULL, NULL, SW_UNIT_READY, 0);
    found->market_id = sw_xstrdup("777");
    sw_units_add(&us, found);
    for (int i = 0; i < 20; i++) { /* past the initial capacity */
        char key[16];
        snprintf(key, sizeof(key), "x%d", i);
        sw_units_add(&us, make_unit(key, "bulk", "eu", SW_UNIT_CLOSED, 9));
    }

    SW_ASSERT_EQ(sw_units_count_capacity(&us, "web", "eu"), 2);
    SW_ASSERT_EQ(sw_units_count_capacity(&us, "web", "us"), 0);
    SW_ASSERT_EQ(sw_units_count_capacity(&us, "web", NULL), 2);
    SW_ASSERT_EQ(sw_units_count_capacity(&us, "batch", NULL), 1);
    SW_ASSERT_EQ(sw_units_count_capacity(&us, "bulk", NULL), 0);
    SW_ASSERT_EQ(sw_units_count_open(&us), 6);
    SW_ASSERT_NEAR(sw_units_spend_usd_hour(&us), 1.0 + 0.5 + 2.0 + 0.25 + 0.125, 1e-12);

    SW_ASSERT(sw_units_find_key(&us, "c") == us.items[2]);
    SW_ASSERT(sw_units_find_key(&us, "zz") == NULL);
    SW_ASSERT(sw_units_find_key(&us, NULL) == NULL);
    SW_ASSERT(sw_units_find_market_id(&us, "777") == found);
    SW_ASSERT(sw_units_find_market_id(&us, "1") == NULL);
    SW_ASSERT(sw_units_find_market_id(&us, NULL) == NULL);

    sw_units_remove_at(&us, 1);
    SW_ASSERT_EQ(us.count, 26);
    SW_ASSERT_STREQ(us.items[1]->key, "c");
    sw_units_remove_at(&us, 1000); /* out of range: no-op */
    SW_ASSERT_EQ(us.count, 26);
    sw_units_clear(&us);
    SW_ASSERT_EQ(us.count, 0);
    SW_ASSERT_EQ(sw_units_count_open(&us), 0);
}

SW_TEST(offers_best_price)
{
    struct sw_offers o;
    sw_offers_init(&o);
    SW_ASSERT_NEAR(sw_offers_best_price(&o, "eu"), -1, 0);
    sw_offers_add(&o, "p1", "eu", 0.9, true);
    sw_offers_add(&o, "p2", "eu", 0.4, false);
    sw_offers_add(&o, "p3", "us", 0.1, true);
    for (int i = 0; i < 20; i++)
        sw_offers_add(&o, "p", "ap", 1.0 + i, false);
    SW_ASSERT_NEAR(sw_offers_best_price(&o, "eu"), 0.4, 1e-12);
    SW_ASSERT_NEAR(sw_offers_best_price(&o, "us"), 0.1, 1e-12);
    SW_ASSERT_NEAR(sw_offers_best_price(&o, "ap"), 1.0, 1e-12);
    SW_ASSERT_NEAR(sw_offers_best_price(&o, "mars"), -1, 0);
    SW_ASSERT_EQ(o.count, 23);
    SW_ASSERT(o.items[0].audited);
    sw_offers_clear(&o);
    SW_ASSERT_EQ(o.count, 0);
}

/* Bug found in review: an offer a plugin reported without a region (swp_offer.region may
 * be NULL) crashed sw_offers_best_price in strcmp. */
SW_TEST(offers_without_region_are_skipped)
{
    struct sw_offers o;
    sw_offers_init(&o);
    sw_offers_add(&o, "p0", NULL, 0.01, false);
    sw_offers_add(&o, "p1", "eu", 0.5, false);
    SW_ASSERT_NEAR(sw_offers_best_price(&o, "eu"), 0.5, 1e-12);
    SW_ASSERT_NEAR(sw_offers_best_price(&o, NULL), -1, 0);
    sw_offers_clear(&o);
}

SW_TEST(metric_set_put_replace_and_error)
{
    struct sw_metric_set m;
    sw_metric_set_init(&m);
    const char *names[] = {"region", "job"};
    const char *values_a[] = {"eu", "web"};
    const char *values_b[] = {"us", "web"};
    struct swp_sample samples[] = {{names, values_a, 2, 10.5}, {names, values_b, 2, 3}};
    sw_metric_set_put(&m, "rps", 1000, samples, 2);
    const struct sw_metric *rps = sw_metric_set_get(&m, "rps");
    SW_ASSERT(rps != NULL);
    SW_ASSERT_EQ(rps->status, 0);
    SW_ASSERT_EQ(rps->at_ms, 1000);
    SW_ASSERT_EQ(rps->sample_count, 2);
    SW_ASSERT_STREQ(rps->samples[0].label_values[0], "eu");
    SW_ASSERT_STREQ(rps->samples[1].label_names[1], "job");
    SW_ASSERT_NEAR(rps->samples[0].value, 10.5, 0);

    sw_metric_set_put_error(&m, "rps", 2000, SW_ETIMEDOUT, "timed out");
    rps = sw_metric_set_get(&m, "rps");
    SW_ASSERT_EQ(m.count, 1);
    SW_ASSERT_EQ(rps->status, SW_ETIMEDOUT);
    SW_ASSERT_STREQ(rps->error, "timed out");
    SW_ASSERT_EQ(rps->sample_count, 0);
    SW_ASSERT_EQ(rps->at_ms, 2000);

    /* A good result after an error clears the error. */
    struct swp_sample bare = {NULL, NULL, 0, 7};
    sw_metric_set_put(&m, "rps", 3000, &bare, 1);
    rps = sw_metric_set_get(&m, "rps");
    SW_ASSERT_EQ(rps->status, 0);
    SW_ASSERT(rps->error == NULL);
    SW_ASSERT_EQ(rps->samples[0].label_count, 0);

    sw_metric_set_put_error(&m, "lat", 10, SW_EIO, NULL);
    SW_ASSERT_STREQ(sw_metric_set_get(&m, "lat")->error, "query failed");
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof(name), "m%d", i);
        sw_metric_set_put(&m, name, i, NULL, 0);
    }
    SW_ASSERT_EQ(m.count, 12);
    SW_ASSERT_STREQ(sw_metric_set_get(&m, "rps")->name, "rps");
    SW_ASSERT(sw_metric_set_get(&m, "nope") == NULL);
    sw_metric_set_clear(&m);
    SW_ASSERT_EQ(m.count, 0);
}

/* A put with the same labels keeps the series (only values change); any label that
 * differs makes a new one, whether the samples share one array of names or not, and
 * whatever the plugin did with its buffers between answers. */
SW_TEST(metric_set_put_keeps_a_series_only_while_its_labels_match)
{
    struct sw_metric_set m;
    sw_metric_set_init(&m);
    const char *region[] = {"region"};
    const char *zone[] = {"zone"};
    const char *eu[] = {"eu"}, *us[] = {"us"};
    struct swp_sample shared[] = {{region, eu, 1, 1}, {region, us, 1, 2}};
    sw_metric_set_put(&m, "rps", 1, shared, 2);
    uint64_t serial = sw_metric_set_get(&m, "rps")->series_serial;
    SW_ASSERT(serial != 0);

    /* The same text through other buffers: the same series, new values. */
    char name_buf[16] = "region", value_buf[2][8] = {"eu", "us"};
    const char *names2[] = {name_buf};
    const char *v0[] = {value_buf[0]}, *v1[] = {value_buf[1]};
    struct swp_sample again[] = {{names2, v0, 1, 5}, {names2, v1, 1, 6}};
    sw_metric_set_put(&m, "rps", 2, again, 2);
    const struct sw_metric *rps = sw_metric_set_get(&m, "rps");
    SW_ASSERT_EQ(rps->series_serial, serial);
    SW_ASSERT_NEAR(rps->samples[1].value, 6, 0);

    /* The plugin rewrote its names buffer: a new series with the new name. */
    snprintf(name_buf, sizeof(name_buf), "zone");
    sw_metric_set_put(&m, "rps", 3, again, 2);
    rps = sw_metric_set_get(&m, "rps");
    SW_ASSERT(rps->series_serial != serial);
    serial = rps->series_serial;
    SW_ASSERT_STREQ(rps->samples[0].label_names[0], "zone");
    SW_ASSERT_STREQ(rps->samples[1].label_names[0], "zone");

    /* Stored names differ between samples; the answer shares one array: compared. */
    struct swp_sample mixed[] = {{region, eu, 1, 1}, {zone, us, 1, 2}};
    sw_metric_set_put(&m, "rps", 4, mixed, 2);
    serial = sw_metric_set_get(&m, "rps")->series_serial;
    struct swp_sample one_array[] = {{region, eu, 1, 1}, {region, us, 1, 2}};
    sw_metric_set_put(&m, "rps", 5, one_array, 2);
    rps = sw_metric_set_get(&m, "rps");
    SW_ASSERT(rps->series_serial != serial);
    SW_ASSERT_STREQ(rps->samples[1].label_names[0], "region");
    /* And back: the second sample's own array again. */
    serial = rps->series_serial;
    sw_metric_set_put(&m, "rps", 6, mixed, 2);
    rps = sw_metric_set_get(&m, "rps");
    SW_ASSERT(rps->series_serial != serial);
    SW_ASSERT_STREQ(rps->samples[1].label_names[0], "zone");

    /* A changed value is a new series too. */
    serial = rps->series_serial;
    const char *other[] = {"ap"};
    struct swp_sample moved[] = {{region, eu, 1, 1}, {zone, other, 1, 2}};
    sw_metric_set_put(&m, "rps", 7, moved, 2);
    SW_ASSERT(sw_metric_set_get(&m, "rps")->series_serial != serial);
    sw_metric_set_clear(&m);
}

SW_TEST(actions_add_move_json)
{
    struct sw_actions a, refused;
    sw_actions_init(&a);
    sw_actions_init(&refused);
    sw_actions_add(&a, SW_ACTION_ACQUIRE, "web", "eu", NULL, 0.5, "short");
    sw_actions_add(&a, SW_ACTION_RELEASE, "web", "us", "k1", 1.25, "excess");
    sw_actions_add(&a, SW_ACTION_ACQUIRE, "web", "ap", NULL, 0, "more");
    SW_ASSERT_EQ(a.count, 3);
    sw_actions_move(&a, 1, &refused, "cooldown");
    SW_ASSERT_EQ(a.count, 2);
    SW_ASSERT_STREQ(a.items[1].region, "ap");
    SW_ASSERT_EQ(refused.count, 1);
    SW_ASSERT_STREQ(refused.items[0].unit_key, "k1");
    SW_ASSERT_STREQ(refused.items[0].reason, "cooldown");
    sw_actions_move(&a, 0, NULL, "dropped");
    SW_ASSERT_EQ(a.count, 1);
    sw_actions_move(&a, 5, &refused, "out of range");
    SW_ASSERT_EQ(a.count, 1);

    char *json = sw_actions_to_json(&refused);
    SW_ASSERT_STREQ(json, "[{\"kind\":\"release\",\"group\":\"web\",\"region\":\"us\",\"unit\":"
                          "\"k1\",\"price_usd_hour\":1.25,\"reason\":\"cooldown\"}]");
    free(json);
    json = sw_actions_to_json(&a);
    SW_ASSERT_STREQ(json, "[{\"kind\":\"acquire\",\"group\":\"web\",\"region\":\"ap\","
                          "\"price_usd_hour\":0,\"reason\":\"more\"}]");
    free(json);
    SW_ASSERT_STREQ(sw_action_kind_name(SW_ACTION_ACQUIRE), "acquire");
    SW_ASSERT_STREQ(sw_action_kind_name(SW_ACTION_RELEASE), "release");
    SW_ASSERT_STREQ(sw_action_kind_name(0), "?");
    sw_actions_clear(&a);
    sw_actions_clear(&refused);
}

/* Bug found in review: moving an action while keeping its own reason
 * (sw_actions_move(a, i, dst, a->items[i].reason)) freed the reason before copying it. */
SW_TEST(actions_move_keeping_own_reason)
{
    struct sw_actions a, dst;
    sw_actions_init(&a);
    sw_actions_init(&dst);
    sw_actions_add(&a, SW_ACTION_ACQUIRE, "web", "eu", NULL, 0.5, "web/eu: desired 2");
    sw_actions_move(&a, 0, &dst, a.items[0].reason);
    SW_ASSERT_EQ(dst.count, 1);
    SW_ASSERT_STREQ(dst.items[0].reason, "web/eu: desired 2");
    sw_actions_clear(&a);
    sw_actions_clear(&dst);
}

/* The records are written without a cJSON tree; replay and the decisions API parse them with
 * cJSON, and the journal digests their bytes: they must stay what cJSON printed. */
SW_TEST(actions_and_desired_json_match_cjson)
{
    struct sw_actions a;
    sw_actions_init(&a);
    sw_actions_add(&a, SW_ACTION_RELEASE, "web", "eu-west", "k\"1", 0.1 + 0.2,
                   "quoted \"reason\"\n\ttab \x01 and caf\xc3\xa9");
    sw_actions_add(&a, SW_ACTION_ACQUIRE, "web", "us", NULL, 1e21, "");
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < a.count; i++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "kind", sw_action_kind_name(a.items[i].kind));
        cJSON_AddStringToObject(item, "group", a.items[i].group);
        cJSON_AddStringToObject(item, "region", a.items[i].region);
        if (a.items[i].unit_key != NULL)
            cJSON_AddStringToObject(item, "unit", a.items[i].unit_key);
        cJSON_AddNumberToObject(item, "price_usd_hour", a.items[i].price_usd_hour);
        cJSON_AddStringToObject(item, "reason", a.items[i].reason);
        cJSON_AddItemToArray(arr, item);
    }
    char *want = cJSON_PrintUnformatted(arr);
    char *got = sw_actions_to_json(&a);
    SW_ASSERT_STREQ(got, want);
    free(got);
    cJSON_free(want);
    cJSON_Delete(arr);
    sw_actions_clear(&a);

    struct sw_desired d;
    sw_desired_init(&d);
    sw_desired_set(&d, "a\"b", "r\\1", 7);
    sw_desired_set(&d, "web", "eu", 123456789);
    sw_desired_set(&d, "web", "us", 0);
    got = sw_desired_to_json(&d);
    SW_ASSERT_STREQ(got, "{\"a\\\"b\":{\"r\\\\1\":7},\"web\":{\"eu\":123456789,\"us\":0}}");
    free(got);
    sw_desired_clear(&d);
}

SW_TEST_MAIN()
