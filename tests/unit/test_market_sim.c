/* test_market_sim.c — plugins/market_sim driven through its ABI on a fake host.
 *
 * Times below are offsets from FAKE_EPOCH_MS; create_delay is the default 200 ms, so a
 * deployment acquired at 0 is created at 200 and its dseq is "1700000000200".
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sw_test.h"
#include "swp_fake_host.h"

/* eu-west: three providers of different price and speed. us-east: a price tie. sa-brazil:
 * one provider with a single slot. as-east: a provider that always bids too late. */
#define PROVIDERS                                                                                  \
    "[{\"owner\": \"akash1cheap\", \"host_uri\": \"https://p1.eu-west.example:8443\","             \
    "  \"attributes\": {\"location-region\": \"eu-west\", \"tier\": \"community\"},"               \
    "  \"price_uact_per_block\": 100, \"bid_delay\": \"3s\", \"ready_delay\": \"15s\","            \
    "  \"capacity\": 2},"                                                                          \
    " {\"owner\": \"akash1mid\", \"region\": \"eu-west\", \"price_uact_per_block\": 150,"          \
    "  \"bid_delay\": \"1s\", \"ready_delay\": \"10s\", \"capacity\": 5},"                         \
    " {\"owner\": \"akash1dear\", \"region\": \"eu-west\", \"price_uact_per_block\": 200,"         \
    "  \"bid_delay\": 2, \"ready_delay\": \"5s\", \"capacity\": 5, \"audited\": true},"            \
    " {\"owner\": \"akash1tiea\", \"region\": \"us-east\", \"price_uact_per_block\": 120.5,"       \
    "  \"bid_delay\": \"2s\", \"ready_delay\": \"10s\", \"capacity\": 3, \"audited\": true},"      \
    " {\"owner\": \"akash1tieb\", \"region\": \"us-east\", \"price_uact_per_block\": 120.5,"       \
    "  \"bid_delay\": \"1s\", \"ready_delay\": \"60s\", \"capacity\": 1},"                         \
    " {\"owner\": \"akash1solo\", \"region\": \"sa-brazil\", \"price_uact_per_block\": 90,"        \
    "  \"bid_delay\": \"1s\", \"ready_delay\": \"5s\", \"capacity\": 1},"                          \
    " {\"owner\": \"akash1late\", \"region\": \"as-east\", \"price_uact_per_block\": 60,"          \
    "  \"bid_delay\": \"10s\", \"ready_delay\": \"5s\", \"capacity\": 4}]"

#define CONFIG "{\"providers\": " PROVIDERS "}"

static const struct swp_plugin *plugin(void)
{
    static const struct swp_plugin *loaded;
    if (loaded == NULL)
        loaded = fake_load_plugin("market_sim");
    return loaded;
}

/* ---- recording callbacks ---- */

struct rec {
    struct fake_host *h;
    const char *name;
    int progress_count;
    int states[8];
    int64_t state_at[8];
    int done_count;
    int done_status;
    int done_state;
    int64_t done_at;
    char msg[256];
    char market_id[32];
    char provider[64];
    char key[64];
    char tag[64];
    char group[64];
    char region[64];
    char uri[160];
    size_t uri_count;
    double price;
    int64_t created_ms;
    int release_on_state; /* release the unit from inside the progress callback */
    int release_status;
};

static void rec_unit(struct rec *r, const struct swp_unit *u)
{
    if (u == NULL)
        return;
    snprintf(r->market_id, sizeof(r->market_id), "%s", u->market_id ? u->market_id : "");
    snprintf(r->provider, sizeof(r->provider), "%s", u->provider ? u->provider : "");
    snprintf(r->key, sizeof(r->key), "%s", u->key ? u->key : "");
    snprintf(r->tag, sizeof(r->tag), "%s", u->tag ? u->tag : "");
    snprintf(r->group, sizeof(r->group), "%s", u->group ? u->group : "");
    snprintf(r->region, sizeof(r->region), "%s", u->region ? u->region : "");
    snprintf(r->uri, sizeof(r->uri), "%s", u->uri_count ? u->uris[0] : "");
    r->uri_count = u->uri_count;
    r->price = u->price_usd_hour;
    r->created_ms = u->created_ms;
}

static void on_release_done(void *ud, int status, const struct swp_error *err)
{
    struct rec *r = ud;
    r->release_status = status;
}

static void on_progress(void *ud, int status, const struct swp_unit *u, const struct swp_error *err)
{
    struct rec *r = ud;
    if (r->progress_count < 8) {
        r->states[r->progress_count] = u->state;
        r->state_at[r->progress_count] = r->h->now - FAKE_EPOCH_MS;
    }
    r->progress_count++;
    rec_unit(r, u);
    fake_note(r->h, "progress %s %s %s %s %.4f", r->name, u->market_id,
              u->state == SWP_UNIT_CREATED ? "CREATED" : "LEASED", u->provider ? u->provider : "-",
              u->price_usd_hour);
    if (r->release_on_state == u->state) {
        r->release_status = 1;
        int rc = r->h->plugin->market->release(r->h->state, u->market_id, on_release_done, r);
        if (rc < 0)
            r->release_status = rc;
    }
}

static void on_done(void *ud, int status, const struct swp_unit *u, const struct swp_error *err)
{
    struct rec *r = ud;
    r->done_count++;
    r->done_status = status;
    r->done_at = r->h->now - FAKE_EPOCH_MS;
    r->done_state = u ? u->state : -1;
    snprintf(r->msg, sizeof(r->msg), "%s", err ? err->msg : "");
    rec_unit(r, u);
    fake_note(r->h, "done %s status %d state %d %s %s", r->name, status, r->done_state,
              u && u->uri_count ? u->uris[0] : "-", err ? err->msg : "");
}

struct req_opts {
    const char *key;
    const char *group;
    const char *region;
    double max_price;
    const char *const *avoid;
    size_t avoid_count;
    const char *const *prefer;
    size_t prefer_count;
    uint64_t deadline_ms;
    const char *const *only;
    size_t only_count;
    uint32_t size; /* 0: sizeof(struct swp_acquire_req) */
};

static int acquire(struct fake_host *h, struct rec *r, struct req_opts o)
{
    memset(r, 0, sizeof(*r));
    r->h = h;
    r->name = o.key ? o.key : "nokey";
    r->release_on_state = -1;
    struct swp_acquire_req req = {
        .size = sizeof(req),
        .key = o.key,
        .group = o.group ? o.group : "web",
        .region = o.region,
        .profile_json = "{\"cpu\": 1}",
        .max_price_usd_hour = o.max_price,
        .avoid_providers = o.avoid,
        .avoid_count = o.avoid_count,
        .prefer_providers = o.prefer,
        .prefer_count = o.prefer_count,
        .deadline_ms = o.deadline_ms,
        .only_providers = o.only,
        .only_count = o.only_count,
    };
    if (o.size != 0)
        req.size = o.size;
    return h->plugin->market->acquire(h->state, &req, on_progress, on_done, r);
}

struct release_rec {
    int calls;
    int status;
    char msg[256];
};

static void on_release(void *ud, int status, const struct swp_error *err)
{
    struct release_rec *r = ud;
    r->calls++;
    r->status = status;
    snprintf(r->msg, sizeof(r->msg), "%s", err ? err->msg : "");
}

/* Releases and returns the callback status (or the op's own error). */
static int release(struct fake_host *h, const char *market_id, struct release_rec *out)
{
    memset(out, 0, sizeof(*out));
    int rc = h->plugin->market->release(h->state, market_id, on_release, out);
    if (rc < 0)
        return rc;
    return out->calls == 1 ? out->status : 9999;
}

struct listed {
    size_t count;
    char market_id[8][32];
    char key[8][64];
    char group[8][64];
    char region[8][64];
    char provider[8][64];
    char tag[8][64];
    char uri[8][160];
    int state[8];
    double price[8];
    int64_t created_ms[8];
};

static void on_list(void *ud, int status, const struct swp_unit *units, size_t count,
                    const struct swp_error *err)
{
    struct listed *l = ud;
    l->count = count;
    for (size_t i = 0; i < count && i < 8; i++) {
        const struct swp_unit *u = &units[i];
        snprintf(l->market_id[i], 32, "%s", u->market_id ? u->market_id : "");
        snprintf(l->key[i], 64, "%s", u->key ? u->key : "");
        snprintf(l->group[i], 64, "%s", u->group ? u->group : "");
        snprintf(l->region[i], 64, "%s", u->region ? u->region : "");
        snprintf(l->provider[i], 64, "%s", u->provider ? u->provider : "");
        snprintf(l->tag[i], 64, "%s", u->tag ? u->tag : "");
        snprintf(l->uri[i], 160, "%s", u->uri_count ? u->uris[0] : "");
        l->state[i] = u->state;
        l->price[i] = u->price_usd_hour;
        l->created_ms[i] = u->created_ms;
    }
}

static struct listed list(struct fake_host *h)
{
    struct listed l;
    memset(&l, 0, sizeof(l));
    l.count = 999;
    h->plugin->market->list(h->state, on_list, &l);
    return l;
}

struct offered {
    size_t count;
    char provider[64][64];
    char region[64][64];
    double price[64];
    bool audited[64];
};

static void on_offers(void *ud, int status, const struct swp_offer *offers, size_t count,
                      const struct swp_error *err)
{
    struct offered *o = ud;
    o->count = count;
    for (size_t i = 0; i < count && i < 64; i++) {
        snprintf(o->provider[i], 64, "%s", offers[i].provider);
        snprintf(o->region[i], 64, "%s", offers[i].region);
        o->price[i] = offers[i].price_usd_hour;
        o->audited[i] = offers[i].audited;
    }
}

static struct offered *offers(struct fake_host *h)
{
    static struct offered o;
    memset(&o, 0, sizeof(o));
    o.count = 999;
    h->plugin->market->offers(h->state, on_offers, &o);
    return &o;
}

static int offer_index(const struct offered *o, const char *provider)
{
    for (size_t i = 0; i < o->count; i++)
        if (strcmp(o->provider[i], provider) == 0)
            return (int)i;
    return -1;
}

static struct fake_host *start(const char *config, uint64_t seed)
{
    const struct swp_plugin *p = plugin();
    if (p == NULL)
        return NULL;
    struct fake_host *h = fake_host_new(p, seed);
    struct swp_error err;
    if (fake_configure(h, config) < 0 || fake_init(h, &err) < 0) {
        fprintf(stderr, "    init failed: %s\n", err.msg);
        fake_host_free(h);
        return NULL;
    }
    return h;
}

/* Destroys the instance, checks it left no timer behind, frees the host. */
static bool finish(struct fake_host *h)
{
    fake_destroy(h);
    bool clean = fake_timer_count(h) == 0;
    fake_host_free(h);
    return clean;
}

static int init_error(const char *config, char *msg, size_t len);

/* ---- tests ---- */

SW_TEST(descriptor)
{
    const struct swp_plugin *p = plugin();
    SW_ASSERT(p != NULL);
    SW_ASSERT_EQ(p->abi_major, SWP_ABI_MAJOR);
    SW_ASSERT_EQ(p->size, sizeof(struct swp_plugin));
    SW_ASSERT_STREQ(p->name, "market_sim");
    SW_ASSERT_EQ(p->kinds, SWP_KIND_MARKET);
    SW_ASSERT(p->market && p->market->acquire && p->market->release && p->market->list &&
              p->market->offers);
    const char *names[] = {"providers_file", "providers", "create_delay",     "bid_window",
                           "closure_scale",  "persist",   "close_provider_at"};
    SW_ASSERT_EQ(p->config_count, 7);
    for (size_t i = 0; i < 7; i++) {
        SW_ASSERT_STREQ(p->config[i].name, names[i]);
        SW_ASSERT(p->config[i].description && strlen(p->config[i].description) > 10);
    }
    SW_ASSERT_EQ(p->config[2].type, SWP_CFG_DURATION);
    SW_ASSERT_STREQ(p->config[2].default_value, "\"200ms\"");
    SW_ASSERT_STREQ(p->config[3].default_value, "\"5s\"");
    SW_ASSERT_EQ(p->config[4].type, SWP_CFG_DOUBLE);
    SW_ASSERT_EQ(p->config[5].type, SWP_CFG_BOOL);
    SW_ASSERT_EQ(p->config[6].type, SWP_CFG_OBJECT);
}

SW_TEST(lowest_price_wins)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "k1", .region = "eu-west"}), 0);
    SW_ASSERT_EQ(r.progress_count, 0);
    fake_advance_to(h, 199);
    SW_ASSERT_EQ(r.progress_count, 0);
    fake_advance_to(h, 200);
    SW_ASSERT_EQ(r.progress_count, 1);
    SW_ASSERT_EQ(r.states[0], SWP_UNIT_CREATED);
    SW_ASSERT_STREQ(r.market_id, "1700000000200");
    SW_ASSERT_EQ(r.created_ms, FAKE_EPOCH_MS + 200);
    SW_ASSERT_STREQ(r.tag, "stw-test-1");
    SW_ASSERT_STREQ(r.key, "k1");
    SW_ASSERT_STREQ(r.group, "web");
    SW_ASSERT_STREQ(r.region, "eu-west");
    /* Every eligible provider has bid at 3.2 s, well inside the 5 s window. */
    fake_advance_to(h, 3199);
    SW_ASSERT_EQ(r.progress_count, 1);
    fake_advance_to(h, 3200);
    SW_ASSERT_EQ(r.progress_count, 2);
    SW_ASSERT_EQ(r.states[1], SWP_UNIT_LEASED);
    SW_ASSERT_STREQ(r.provider, "akash1cheap");
    SW_ASSERT_NEAR(r.price, 100 * 600 / 1e6, 1e-12);
    SW_ASSERT_EQ(fake_count(h, "chose akash1cheap at 100 uact/block (0.0600 USD/h), lowest of "
                               "3 bids from 3 eligible"),
                 1);
    fake_advance_to(h, 18199);
    SW_ASSERT_EQ(r.done_count, 0);
    fake_advance_to(h, 18200);
    SW_ASSERT_EQ(r.done_count, 1);
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_EQ(r.done_state, SWP_UNIT_READY);
    SW_ASSERT_EQ(r.uri_count, 1);
    SW_ASSERT_STREQ(r.uri, "web-1700000000200.eu-west.sim.steward.test");
    SW_ASSERT_STREQ(r.provider, "akash1cheap");
    fake_advance_to(h, 100000);
    SW_ASSERT_EQ(r.done_count, 1);
    SW_ASSERT_EQ(r.progress_count, 2);
    SW_ASSERT(finish(h));
}

SW_TEST(tie_goes_to_earliest_bid_then_preferred)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    /* Same price: a preferred provider wins the tie even though it bid later. */
    const char *prefer[] = {"akash1tiea"};
    struct rec r;
    SW_ASSERT_EQ(
        acquire(h, &r,
                (struct req_opts){
                    .key = "t1", .region = "us-east", .prefer = prefer, .prefer_count = 1}),
        0);
    fake_advance_to(h, 2200);
    SW_ASSERT_EQ(r.progress_count, 2);
    SW_ASSERT_STREQ(r.provider, "akash1tiea");
    SW_ASSERT_NEAR(r.price, 0.0723, 1e-12);

    /* Without a preference the earliest bid wins: tieb at 1 s, tiea at 2 s. */
    struct rec r2;
    SW_ASSERT_EQ(acquire(h, &r2, (struct req_opts){.key = "t2", .region = "us-east"}), 0);
    fake_advance(h, 2200);
    SW_ASSERT_EQ(r2.progress_count, 2);
    SW_ASSERT_STREQ(r2.provider, "akash1tieb");
    SW_ASSERT_EQ(r2.state_at[1], 4400);

    /* Preference never beats a lower price. */
    const char *prefer_dear[] = {"akash1dear", "akash1mid"};
    struct rec r3;
    SW_ASSERT_EQ(
        acquire(h, &r3,
                (struct req_opts){
                    .key = "t3", .region = "eu-west", .prefer = prefer_dear, .prefer_count = 2}),
        0);
    fake_advance(h, 5200);
    SW_ASSERT_STREQ(r3.provider, "akash1cheap");
    SW_ASSERT(finish(h));
}

SW_TEST(avoid_list_is_respected)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    const char *avoid[] = {"akash1cheap", "akash1nobody"};
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r,
                         (struct req_opts){
                             .key = "a1", .region = "eu-west", .avoid = avoid, .avoid_count = 2}),
                 0);
    fake_advance_to(h, 2200); /* mid and dear have both bid: chosen at once */
    SW_ASSERT_EQ(r.progress_count, 2);
    SW_ASSERT_STREQ(r.provider, "akash1mid");
    SW_ASSERT_EQ(fake_count(h, "2 of 3 providers in the region eligible (1 avoided"), 1);
    SW_ASSERT(finish(h));
}

SW_TEST(only_providers_pin_placement)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    /* Pinned to the dearest provider (the master's data center): the cheaper bids are not
     * even solicited, so dear alone bids (at 2.2 s) and wins. */
    const char *only[] = {"akash1dear", "akash1elsewhere"};
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r,
                         (struct req_opts){
                             .key = "p1", .region = "eu-west", .only = only, .only_count = 2}),
                 0);
    fake_advance_to(h, 2200);
    SW_ASSERT_EQ(r.progress_count, 2);
    SW_ASSERT_STREQ(r.provider, "akash1dear");
    SW_ASSERT_EQ(fake_count(h, "1 of 3 providers in the region eligible (2 not pinned, 0 avoided, "
                               "0 over max price, 0 full)"),
                 1);
    fake_advance_to(h, 7200);
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_STREQ(r.provider, "akash1dear");

    /* Pinned to a provider of another region: nobody is eligible, the acquire fails after
     * the bid window rather than placing the unit elsewhere. */
    const char *other_region[] = {"akash1tiea"};
    struct rec r2;
    SW_ASSERT_EQ(acquire(h, &r2,
                         (struct req_opts){.key = "p2",
                                           .region = "eu-west",
                                           .only = other_region,
                                           .only_count = 1}),
                 0);
    fake_advance(h, 5300);
    SW_ASSERT_EQ(r2.done_count, 1);
    SW_ASSERT_EQ(r2.done_status, SWP_EMARKET);
    SW_ASSERT_STREQ(r2.msg, "no acceptable bid for eu-west within 5s (0 providers match)");
    SW_ASSERT_EQ(fake_count(h, "(3 not pinned, "), 1);

    /* Pinned and full: the pinned provider's single slot is taken, the second unit fails. */
    const char *solo[] = {"akash1solo"};
    struct rec a, b;
    SW_ASSERT_EQ(acquire(h, &a,
                         (struct req_opts){
                             .key = "p3", .region = "sa-brazil", .only = solo, .only_count = 1}),
                 0);
    SW_ASSERT_EQ(acquire(h, &b,
                         (struct req_opts){
                             .key = "p4", .region = "sa-brazil", .only = solo, .only_count = 1}),
                 0);
    fake_advance(h, 6000);
    SW_ASSERT_EQ(a.done_status, 0);
    SW_ASSERT_STREQ(a.provider, "akash1solo");
    SW_ASSERT_EQ(b.done_status, SWP_EMARKET);
    SW_ASSERT(finish(h));
}

SW_TEST(only_providers_ignored_from_older_hosts)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    /* A host built before only_providers passes a request that ends at deadline_ms: what
     * lies beyond is not the request's and must not be read. */
    const char *only[] = {"akash1dear"};
    uint32_t old_size = (uint32_t)offsetof(struct swp_acquire_req, only_providers);
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r,
                         (struct req_opts){.key = "o1",
                                           .region = "eu-west",
                                           .only = only,
                                           .only_count = 1,
                                           .size = old_size}),
                 0);
    fake_advance_to(h, 3200);
    SW_ASSERT_STREQ(r.provider, "akash1cheap");
    SW_ASSERT_EQ(fake_count(h, "not pinned"), 0);

    struct rec r2;
    SW_ASSERT_EQ(acquire(h, &r2,
                         (struct req_opts){.key = "o2",
                                           .region = "eu-west",
                                           .size = (uint32_t)offsetof(struct swp_acquire_req,
                                                                      deadline_ms)}),
                 SWP_EINVAL);
    SW_ASSERT(finish(h));
}

SW_TEST(max_price_filters_providers)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    /* 0.095 USD/h admits cheap (0.06) and mid (0.09), not dear (0.12). */
    const char *avoid[] = {"akash1cheap"};
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r,
                         (struct req_opts){.key = "m1",
                                           .region = "eu-west",
                                           .max_price = 0.095,
                                           .avoid = avoid,
                                           .avoid_count = 1}),
                 0);
    fake_advance_to(h, 1200); /* mid alone is eligible and has bid */
    SW_ASSERT_EQ(r.progress_count, 2);
    SW_ASSERT_STREQ(r.provider, "akash1mid");
    SW_ASSERT_EQ(fake_count(h, "(1 avoided, 1 over max price, 0 full)"), 1);

    /* A cap equal to a price admits it. */
    struct rec r2;
    SW_ASSERT_EQ(
        acquire(h, &r2, (struct req_opts){.key = "m2", .region = "eu-west", .max_price = 0.06}), 0);
    fake_advance(h, 5200);
    SW_ASSERT_STREQ(r2.provider, "akash1cheap");

    /* Below every price: no bid. */
    struct rec r3;
    SW_ASSERT_EQ(
        acquire(h, &r3, (struct req_opts){.key = "m3", .region = "eu-west", .max_price = 0.05}), 0);
    fake_advance(h, 5200);
    SW_ASSERT_EQ(r3.done_count, 1);
    SW_ASSERT_EQ(r3.done_status, SWP_EMARKET);
    SW_ASSERT_STREQ(r3.msg, "no acceptable bid for eu-west within 5s (0 providers match)");
    SW_ASSERT(finish(h));
}

SW_TEST(capacity_exhaustion)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    SW_ASSERT(offer_index(offers(h), "akash1solo") >= 0);
    struct rec a, b;
    /* Both are created together and both get solo's bid; the first choice takes the only
     * slot and the second finds it gone. */
    SW_ASSERT_EQ(acquire(h, &a, (struct req_opts){.key = "c1", .region = "sa-brazil"}), 0);
    SW_ASSERT_EQ(acquire(h, &b, (struct req_opts){.key = "c2", .region = "sa-brazil"}), 0);
    fake_advance_to(h, 200);
    SW_ASSERT_STREQ(a.market_id, "1700000000200");
    SW_ASSERT_STREQ(b.market_id, "1700000000201"); /* same ms: bumped until unique */
    fake_advance_to(h, 1200);
    SW_ASSERT_STREQ(a.provider, "akash1solo");
    SW_ASSERT_EQ(a.progress_count, 2);
    SW_ASSERT_EQ(b.done_count, 1);
    SW_ASSERT_EQ(b.done_status, SWP_EMARKET);
    SW_ASSERT_STREQ(b.msg, "no acceptable bid for sa-brazil within 5s (1 providers match)");
    SW_ASSERT_EQ(offer_index(offers(h), "akash1solo"), -1);
    fake_advance_to(h, 6200);
    SW_ASSERT_EQ(a.done_status, 0);

    /* Full from the start: nobody is eligible. */
    struct rec c;
    SW_ASSERT_EQ(acquire(h, &c, (struct req_opts){.key = "c3", .region = "sa-brazil"}), 0);
    fake_advance(h, 5200);
    SW_ASSERT_EQ(c.done_status, SWP_EMARKET);
    SW_ASSERT_CONTAINS(c.msg, "(0 providers match)");
    SW_ASSERT_EQ(fake_count(h, "(0 avoided, 0 over max price, 1 full)"), 1);

    /* Releasing gives the slot back. */
    struct release_rec rr;
    SW_ASSERT_EQ(release(h, a.market_id, &rr), 0);
    SW_ASSERT(offer_index(offers(h), "akash1solo") >= 0);
    struct rec d;
    SW_ASSERT_EQ(acquire(h, &d, (struct req_opts){.key = "c4", .region = "sa-brazil"}), 0);
    fake_advance(h, 10000);
    SW_ASSERT_EQ(d.done_status, 0);
    SW_ASSERT_STREQ(d.provider, "akash1solo");
    SW_ASSERT(finish(h));
}

SW_TEST(no_bid_closes_the_deployment)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "n1", .region = "mars"}), 0);
    fake_advance_to(h, 200);
    SW_ASSERT_EQ(r.progress_count, 1);
    SW_ASSERT_EQ(list(h).count, 1);
    SW_ASSERT(fake_kv_value(h, "dep/1700000000200") != NULL);
    SW_ASSERT_STREQ(fake_kv_value(h, "index"), "[\"1700000000200\"]");
    /* Nobody will bid, but the window runs its full length as it would live. */
    fake_advance_to(h, 5199);
    SW_ASSERT_EQ(r.done_count, 0);
    fake_advance_to(h, 5200);
    SW_ASSERT_EQ(r.done_count, 1);
    SW_ASSERT_EQ(r.done_status, SWP_EMARKET);
    SW_ASSERT_STREQ(r.msg, "no acceptable bid for mars within 5s (0 providers match)");
    SW_ASSERT_EQ(r.done_state, SWP_UNIT_CLOSED);
    SW_ASSERT_STREQ(r.market_id, "1700000000200");
    SW_ASSERT_EQ(list(h).count, 0);
    SW_ASSERT(fake_kv_value(h, "dep/1700000000200") == NULL);
    SW_ASSERT_STREQ(fake_kv_value(h, "index"), "[]");

    /* A bid that would come after the window does not count. */
    struct rec late;
    SW_ASSERT_EQ(acquire(h, &late, (struct req_opts){.key = "n2", .region = "as-east"}), 0);
    fake_advance(h, 20000);
    SW_ASSERT_EQ(late.done_status, SWP_EMARKET);
    SW_ASSERT_CONTAINS(late.msg, "within 5s (1 providers match)");
    SW_ASSERT_EQ(late.progress_count, 1);

    struct release_rec rr;
    SW_ASSERT_EQ(release(h, r.market_id, &rr), 0); /* closed: still succeeds */
    SW_ASSERT(finish(h));
}

SW_TEST(deadline_closes_and_times_out)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    struct rec r;
    SW_ASSERT_EQ(
        acquire(h, &r, (struct req_opts){.key = "d1", .region = "sa-brazil", .deadline_ms = 3000}),
        0);
    fake_advance_to(h, 1200);
    SW_ASSERT_EQ(r.progress_count, 2); /* leased, ready would come at 6.2 s */
    SW_ASSERT_EQ(offer_index(offers(h), "akash1solo"), -1);
    fake_advance_to(h, 2999);
    SW_ASSERT_EQ(r.done_count, 0);
    fake_advance_to(h, 3000);
    SW_ASSERT_EQ(r.done_count, 1);
    SW_ASSERT_EQ(r.done_status, SWP_ETIMEDOUT);
    SW_ASSERT_STREQ(r.msg, "no ready unit for sa-brazil within 3s (still leased)");
    SW_ASSERT_EQ(r.done_state, SWP_UNIT_CLOSED);
    SW_ASSERT_EQ(list(h).count, 0);
    SW_ASSERT(offer_index(offers(h), "akash1solo") >= 0); /* capacity back */
    fake_advance_to(h, 60000);
    SW_ASSERT_EQ(r.done_count, 1);

    /* A deadline shorter than create_delay: nothing was created, nothing to close. */
    struct rec early;
    SW_ASSERT_EQ(
        acquire(h, &early, (struct req_opts){.key = "d2", .region = "eu-west", .deadline_ms = 100}),
        0);
    fake_advance(h, 10000);
    SW_ASSERT_EQ(early.done_count, 1);
    SW_ASSERT_EQ(early.done_status, SWP_ETIMEDOUT);
    SW_ASSERT_EQ(early.progress_count, 0);
    SW_ASSERT_EQ(early.done_state, -1);
    SW_ASSERT_EQ(list(h).count, 0);
    SW_ASSERT(finish(h));
}

SW_TEST(release_is_idempotent_and_unknown_is_enoent)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "r1", .region = "eu-west"}), 0);
    fake_advance(h, 30000);
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_EQ(list(h).count, 1);
    struct release_rec rr;
    SW_ASSERT_EQ(release(h, r.market_id, &rr), 0);
    SW_ASSERT_EQ(rr.calls, 1);
    SW_ASSERT_EQ(list(h).count, 0);
    SW_ASSERT(fake_kv_value(h, "dep/1700000000200") == NULL);
    SW_ASSERT_EQ(release(h, r.market_id, &rr), 0);
    SW_ASSERT_EQ(rr.calls, 1);
    SW_ASSERT_EQ(release(h, "42", &rr), SWP_ENOENT);
    SW_ASSERT_STREQ(rr.msg, "market_sim: no deployment 42");
    SW_ASSERT_EQ(h->plugin->market->release(h->state, NULL, on_release, &rr), SWP_EINVAL);
    SW_ASSERT_EQ(r.done_count, 1);
    SW_ASSERT(finish(h));
}

SW_TEST(release_during_acquire_cancels_it)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    /* From inside the CREATED callback. */
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "x1", .region = "eu-west"}), 0);
    r.release_on_state = SWP_UNIT_CREATED;
    fake_advance_to(h, 200);
    SW_ASSERT_EQ(r.release_status, 0);
    SW_ASSERT_EQ(r.progress_count, 1);
    SW_ASSERT_EQ(r.done_count, 1);
    SW_ASSERT_EQ(r.done_status, SWP_ECANCELED);
    SW_ASSERT_EQ(r.done_state, SWP_UNIT_CLOSED);
    SW_ASSERT_CONTAINS(r.msg, "released before it was ready");
    fake_advance_to(h, 60000);
    SW_ASSERT_EQ(r.progress_count, 1);
    SW_ASSERT_EQ(r.done_count, 1);
    SW_ASSERT_EQ(list(h).count, 0);
    SW_ASSERT_EQ(fake_timer_count(h), 0);

    /* From outside, once leased: the slot comes back. */
    struct rec s;
    SW_ASSERT_EQ(acquire(h, &s, (struct req_opts){.key = "x2", .region = "sa-brazil"}), 0);
    fake_advance(h, 1200);
    SW_ASSERT_EQ(s.progress_count, 2);
    SW_ASSERT_EQ(offer_index(offers(h), "akash1solo"), -1);
    struct release_rec rr;
    SW_ASSERT_EQ(release(h, s.market_id, &rr), 0);
    SW_ASSERT_EQ(s.done_count, 1);
    SW_ASSERT_EQ(s.done_status, SWP_ECANCELED);
    SW_ASSERT(offer_index(offers(h), "akash1solo") >= 0);
    SW_ASSERT_EQ(fake_timer_count(h), 0);
    fake_advance(h, 60000);
    SW_ASSERT_EQ(s.done_count, 1);
    SW_ASSERT(finish(h));
}

SW_TEST(list_and_offers_contents)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    struct offered *o = offers(h);
    SW_ASSERT_EQ(o->count, 7);
    int tiea = offer_index(o, "akash1tiea");
    SW_ASSERT(tiea >= 0);
    SW_ASSERT_STREQ(o->region[tiea], "us-east");
    SW_ASSERT_NEAR(o->price[tiea], 120.5 * 600 / 1e6, 1e-12);
    SW_ASSERT(o->audited[tiea]);
    int cheap = offer_index(o, "akash1cheap");
    SW_ASSERT_STREQ(o->region[cheap], "eu-west"); /* from attributes.location-region */
    SW_ASSERT(!o->audited[cheap]);

    struct rec a, b, c;
    SW_ASSERT_EQ(
        acquire(h, &a, (struct req_opts){.key = "l1", .group = "api", .region = "eu-west"}), 0);
    fake_advance_to(h, 1000);
    SW_ASSERT_EQ(acquire(h, &b, (struct req_opts){.key = "l2", .region = "us-east"}), 0);
    fake_advance_to(h, 20000);
    SW_ASSERT_EQ(acquire(h, &c, (struct req_opts){.key = "l3", .region = "sa-brazil"}), 0);
    fake_advance_to(h, 20500);
    struct listed l = list(h);
    SW_ASSERT_EQ(l.count, 3);
    SW_ASSERT_STREQ(l.market_id[0], "1700000000200");
    SW_ASSERT_STREQ(l.key[0], "l1");
    SW_ASSERT_STREQ(l.group[0], "api");
    SW_ASSERT_STREQ(l.region[0], "eu-west");
    SW_ASSERT_STREQ(l.provider[0], "akash1cheap");
    SW_ASSERT_EQ(l.state[0], SWP_UNIT_READY);
    SW_ASSERT_NEAR(l.price[0], 0.06, 1e-12);
    SW_ASSERT_STREQ(l.tag[0], "stw-test-1");
    SW_ASSERT_STREQ(l.uri[0], "api-1700000000200.eu-west.sim.steward.test");
    SW_ASSERT_EQ(l.created_ms[0], FAKE_EPOCH_MS + 200);
    SW_ASSERT_STREQ(l.market_id[1], "1700000001200");
    SW_ASSERT_STREQ(l.provider[1], "akash1tieb");
    SW_ASSERT_EQ(l.state[1], SWP_UNIT_LEASED); /* tieb takes 60 s */
    SW_ASSERT_STREQ(l.uri[1], "");
    SW_ASSERT_STREQ(l.market_id[2], "1700000020200");
    SW_ASSERT_EQ(l.state[2], SWP_UNIT_CREATED);
    SW_ASSERT_STREQ(l.provider[2], "");
    SW_ASSERT_NEAR(l.price[2], 0, 1e-12);

    /* tieb (capacity 1) is now full and leaves the offers. */
    o = offers(h);
    SW_ASSERT_EQ(o->count, 6);
    SW_ASSERT_EQ(offer_index(o, "akash1tieb"), -1);
    SW_ASSERT(finish(h));
}

/* the listing comes from the open deployments alone and a dseq is found by
 * bisection while every dseq is canonical and increasing: same-millisecond creations
 * (bumped dseqs), a release in the middle, text that only reads as a number. */
SW_TEST(list_order_and_lookup_after_closes)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    struct rec r[4];
    const char *keys[4] = {"o1", "o2", "o3", "o4"};
    for (int i = 0; i < 3; i++)
        SW_ASSERT_EQ(acquire(h, &r[i], (struct req_opts){.key = keys[i], .region = "eu-west"}), 0);
    fake_advance_to(h, 30000);
    SW_ASSERT_EQ(acquire(h, &r[3], (struct req_opts){.key = keys[3], .region = "eu-west"}), 0);
    fake_advance_to(h, 60000);
    struct listed l = list(h);
    SW_ASSERT_EQ(l.count, 4);
    SW_ASSERT_STREQ(l.market_id[0], "1700000000200");
    SW_ASSERT_STREQ(l.market_id[1], "1700000000201");
    SW_ASSERT_STREQ(l.market_id[2], "1700000000202");
    SW_ASSERT_STREQ(l.market_id[3], "1700000030200");
    struct release_rec rr;
    SW_ASSERT_EQ(release(h, "1700000000201", &rr), 0);
    SW_ASSERT_EQ(rr.calls, 1);
    l = list(h);
    SW_ASSERT_EQ(l.count, 3);
    SW_ASSERT_STREQ(l.key[0], "o1");
    SW_ASSERT_STREQ(l.key[1], "o3");
    SW_ASSERT_STREQ(l.key[2], "o4");
    /* A closed one is still known (released again: no error); near misses are not. */
    SW_ASSERT_EQ(release(h, "1700000000201", &rr), 0);
    SW_ASSERT_EQ(release(h, "01700000000202", &rr), SWP_ENOENT);
    SW_ASSERT_EQ(release(h, "1700000000202 ", &rr), SWP_ENOENT);
    SW_ASSERT_EQ(release(h, "1700000000203", &rr), SWP_ENOENT);
    SW_ASSERT_EQ(release(h, "-1", &rr), SWP_ENOENT);
    SW_ASSERT_EQ(release(h, "1700000030200", &rr), 0);
    SW_ASSERT_EQ(release(h, "1700000000200", &rr), 0);
    l = list(h);
    SW_ASSERT_EQ(l.count, 1);
    SW_ASSERT_STREQ(l.market_id[0], "1700000000202");
    SW_ASSERT(finish(h));
}

#define CLOSURE_CONFIG                                                                             \
    "{\"closure_scale\": %s, \"providers\": [{\"owner\": \"akash1flaky\", "                        \
    "\"region\": \"eu-west\", \"price_uact_per_block\": 100, \"bid_delay\": \"1s\", "              \
    "\"ready_delay\": \"5s\", \"capacity\": 10, \"closures_per_hour\": 0.05}]}"

static struct fake_host *start_closures(const char *scale, uint64_t seed)
{
    char config[512];
    snprintf(config, sizeof(config), CLOSURE_CONFIG, scale);
    return start(config, seed);
}

SW_TEST(closures_emit_unit_lost)
{
    /* 0.05/h × 20 = one closure per hour on average. */
    struct fake_host *h = start_closures("20", 3);
    SW_ASSERT(h != NULL);
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "f1", .region = "eu-west"}), 0);
    fake_advance_to(h, 6200);
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_EQ(h->event_count, 0);
    SW_ASSERT_EQ(fake_timer_count(h), 1); /* the closure */
    fake_advance(h, 24 * 3600 * 1000LL);
    SW_ASSERT_EQ(h->event_count, 1);
    char expect[256];
    snprintf(expect, sizeof(expect),
             "event unit_lost %s lease_closed_reason_unstable {\"provider\":\"akash1flaky\","
             "\"region\":\"eu-west\",\"group\":\"web\",\"key\":\"f1\"}",
             r.market_id);
    SW_ASSERT_EQ(fake_count(h, expect), 1);
    SW_ASSERT_EQ(list(h).count, 0);
    SW_ASSERT(fake_kv_value(h, "index") && strcmp(fake_kv_value(h, "index"), "[]") == 0);
    struct release_rec rr;
    SW_ASSERT_EQ(release(h, r.market_id, &rr), 0); /* the core's release after the loss */
    SW_ASSERT_EQ(r.done_count, 1);
    SW_ASSERT(finish(h));

    /* Closure scale 0: no closure is ever drawn. */
    h = start_closures("0", 3);
    SW_ASSERT(h != NULL);
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "f2", .region = "eu-west"}), 0);
    fake_advance(h, 10000);
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_EQ(fake_timer_count(h), 0);
    fake_advance(h, 1000 * 3600 * 1000LL);
    SW_ASSERT_EQ(h->event_count, 0);
    SW_ASSERT_EQ(list(h).count, 1);
    SW_ASSERT(finish(h));
}

/* list_version changes with every change a listing would show (the core keeps its
 * pairing of units with the listing while it does not), and only then. */
static uint64_t version(struct fake_host *h)
{
    return h->plugin->market->list_version(h->state);
}

SW_TEST(list_version_follows_the_listing)
{
    struct fake_host *h = start_closures("20", 3);
    SW_ASSERT(h != NULL);
    SW_ASSERT(h->plugin->market->list_version != NULL);
    uint64_t v = version(h);
    SW_ASSERT(v != 0);
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "v1", .region = "eu-west"}), 0);
    SW_ASSERT_EQ(version(h), v); /* nothing listed yet */
    fake_advance_to(h, 200);     /* created */
    SW_ASSERT(version(h) != v);
    v = version(h);
    (void)list(h);
    (void)offers(h);
    SW_ASSERT_EQ(version(h), v); /* reading changes nothing */
    fake_advance_to(h, 1200);    /* leased: provider and price */
    SW_ASSERT_EQ(list(h).state[0], SWP_UNIT_LEASED);
    SW_ASSERT(version(h) != v);
    v = version(h);
    fake_advance_to(h, 6200); /* ready: the uri */
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT(version(h) != v);
    v = version(h);
    fake_advance(h, 24 * 3600 * 1000LL); /* the provider closes it */
    SW_ASSERT_EQ(list(h).count, 0);
    SW_ASSERT(version(h) != v);
    v = version(h);
    struct release_rec rr;
    SW_ASSERT_EQ(release(h, r.market_id, &rr), 0); /* already closed: no change */
    SW_ASSERT_EQ(version(h), v);
    SW_ASSERT(finish(h));

    /* A release closes it too. */
    h = start_closures("0", 3);
    SW_ASSERT(h != NULL);
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "v2", .region = "eu-west"}), 0);
    fake_advance(h, 10000);
    v = version(h);
    SW_ASSERT_EQ(release(h, r.market_id, &rr), 0);
    SW_ASSERT(version(h) != v);
    SW_ASSERT(finish(h));
}

/* A listing asked for again while nothing changed is answered from the last one: it must
 * still be right at every step, before and after each change. */
SW_TEST(repeated_listings_follow_every_change)
{
    struct fake_host *h = start_closures("0", 3);
    SW_ASSERT(h != NULL);
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "k1", .region = "eu-west"}), 0);
    SW_ASSERT_EQ(list(h).count, 0);
    fake_advance_to(h, 200); /* created */
    for (int again = 0; again < 2; again++) {
        struct listed l = list(h);
        SW_ASSERT_EQ(l.count, 1);
        SW_ASSERT_EQ(l.state[0], SWP_UNIT_CREATED);
        SW_ASSERT_STREQ(l.key[0], "k1");
        SW_ASSERT_STREQ(l.provider[0], "");
    }
    fake_advance_to(h, 1200); /* leased */
    for (int again = 0; again < 2; again++) {
        struct listed l = list(h);
        SW_ASSERT_EQ(l.state[0], SWP_UNIT_LEASED);
        SW_ASSERT(l.provider[0][0] != '\0');
        SW_ASSERT(l.price[0] > 0);
        SW_ASSERT_STREQ(l.uri[0], "");
    }
    fake_advance_to(h, 6200); /* ready */
    for (int again = 0; again < 2; again++) {
        struct listed l = list(h);
        SW_ASSERT_EQ(l.state[0], SWP_UNIT_READY);
        SW_ASSERT(l.uri[0][0] != '\0');
    }
    struct rec r2;
    SW_ASSERT_EQ(acquire(h, &r2, (struct req_opts){.key = "k2", .region = "eu-west"}), 0);
    fake_advance(h, 10000);
    SW_ASSERT_EQ(list(h).count, 2);
    SW_ASSERT_EQ(list(h).count, 2);
    struct release_rec rr;
    SW_ASSERT_EQ(release(h, r.market_id, &rr), 0);
    for (int again = 0; again < 2; again++) {
        struct listed l = list(h);
        SW_ASSERT_EQ(l.count, 1);
        SW_ASSERT_STREQ(l.key[0], "k2");
    }
    SW_ASSERT(finish(h));
}

SW_TEST(closure_before_ready_fails_the_acquire)
{
    /* 0.05/h × 1e6: closures within a fraction of a second, long before ready. */
    struct fake_host *h = start_closures("1e6", 5);
    SW_ASSERT(h != NULL);
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "g1", .region = "eu-west"}), 0);
    fake_advance(h, 60000);
    SW_ASSERT_EQ(r.progress_count, 2);
    SW_ASSERT_EQ(r.done_count, 1);
    SW_ASSERT_EQ(r.done_status, SWP_EMARKET);
    SW_ASSERT_CONTAINS(r.msg, "closed the lease before it was ready");
    SW_ASSERT_EQ(h->event_count, 1);
    SW_ASSERT_EQ(list(h).count, 0);
    SW_ASSERT(finish(h));
}

#define OUTAGE_PROVIDERS                                                                           \
    "[{\"owner\": \"akash1cheap\", \"region\": \"eu-west\", \"price_uact_per_block\": 100,"         \
    "  \"bid_delay\": \"1s\", \"ready_delay\": \"5s\", \"capacity\": 10},"                         \
    " {\"owner\": \"akash1mid\", \"region\": \"eu-west\", \"price_uact_per_block\": 150,"          \
    "  \"bid_delay\": \"1s\", \"ready_delay\": \"5s\", \"capacity\": 10}]"

SW_TEST(close_provider_at_closes_all_its_leases_at_once)
{
    struct fake_host *h = start("{\"bid_window\": \"2s\", \"close_provider_at\": {\"provider\": "
                                "\"akash1cheap\", \"after\": \"20s\", \"every\": \"30s\"}, "
                                "\"providers\": " OUTAGE_PROVIDERS "}",
                                1);
    SW_ASSERT(h != NULL);
    const char *avoid[] = {"akash1cheap"};
    struct rec r1, r2, r3, r4;
    SW_ASSERT_EQ(acquire(h, &r1, (struct req_opts){.key = "k1", .region = "eu-west"}), 0);
    SW_ASSERT_EQ(acquire(h, &r2, (struct req_opts){.key = "k2", .region = "eu-west"}), 0);
    SW_ASSERT_EQ(acquire(h, &r3,
                         (struct req_opts){
                             .key = "k3", .region = "eu-west", .avoid = avoid, .avoid_count = 1}),
                 0);
    fake_advance_to(h, 15000);
    SW_ASSERT_EQ(r1.done_status, 0);
    SW_ASSERT_STREQ(r1.provider, "akash1cheap");
    SW_ASSERT_STREQ(r2.provider, "akash1cheap");
    SW_ASSERT_STREQ(r3.provider, "akash1mid");
    /* Leased at 16.2 s, ready only at 21.2 s: the outage at 20 s catches it pending. */
    SW_ASSERT_EQ(acquire(h, &r4, (struct req_opts){.key = "k4", .region = "eu-west"}), 0);
    fake_advance_to(h, 19999);
    SW_ASSERT_EQ(h->event_count, 0);
    fake_advance_to(h, 20000);
    SW_ASSERT_EQ(h->event_count, 3);
    SW_ASSERT_EQ(fake_count(h, "close_provider_at: provider akash1cheap closes all its 3 leases"),
                 1);
    SW_ASSERT_EQ(fake_count(h, "event unit_lost"), 3);
    SW_ASSERT_EQ(fake_count(h, "\"key\":\"k1\"}"), 1);
    SW_ASSERT_EQ(fake_count(h, "\"key\":\"k2\"}"), 1);
    SW_ASSERT_EQ(fake_count(h, "\"key\":\"k4\"}"), 1);
    SW_ASSERT_EQ(r4.done_count, 1);
    SW_ASSERT_EQ(r4.done_status, SWP_EMARKET);
    SW_ASSERT_CONTAINS(r4.msg, "closed the lease before it was ready");
    struct listed l = list(h);
    SW_ASSERT_EQ(l.count, 1); /* the other provider's lease is untouched */
    SW_ASSERT_STREQ(l.provider[0], "akash1mid");

    /* It keeps bidding (and, cheapest, winning) after the outage; `every` repeats it. */
    struct rec r5;
    SW_ASSERT_EQ(acquire(h, &r5, (struct req_opts){.key = "k5", .region = "eu-west"}), 0);
    fake_advance_to(h, 49999);
    SW_ASSERT_EQ(r5.done_status, 0);
    SW_ASSERT_STREQ(r5.provider, "akash1cheap");
    SW_ASSERT_EQ(h->event_count, 3);
    fake_advance_to(h, 50000);
    SW_ASSERT_EQ(h->event_count, 4);
    SW_ASSERT_EQ(fake_count(h, "\"key\":\"k5\"}"), 1);
    SW_ASSERT(finish(h));
}

SW_TEST(close_provider_at_config_errors)
{
    SW_ASSERT(plugin() != NULL);
    char msg[256];
    SW_ASSERT_EQ(init_error("{\"close_provider_at\": {\"provider\": \"akash1nobody\", \"after\": "
                            "\"5s\"}, \"providers\": " OUTAGE_PROVIDERS "}",
                            msg, sizeof(msg)),
                 SWP_ECONFIG);
    SW_ASSERT_STREQ(msg, "close_provider_at.provider: expected the owner of a configured provider");
    SW_ASSERT_EQ(init_error("{\"close_provider_at\": {\"provider\": \"akash1mid\"}, \"providers\": "
                            OUTAGE_PROVIDERS "}",
                            msg, sizeof(msg)),
                 SWP_ECONFIG);
    SW_ASSERT_STREQ(msg, "close_provider_at.after: expected duration (\"5s\")");
    SW_ASSERT_EQ(init_error("{\"close_provider_at\": {\"provider\": \"akash1mid\", \"after\": 1, "
                            "\"every\": 0}, \"providers\": " OUTAGE_PROVIDERS "}",
                            msg, sizeof(msg)),
                 SWP_ECONFIG);
    SW_ASSERT_STREQ(msg, "close_provider_at.every: expected duration > 0");
    SW_ASSERT_EQ(init_error("{\"close_provider_at\": {\"provider\": \"akash1mid\", \"busiest\": "
                            "true, \"after\": 1}, \"providers\": " OUTAGE_PROVIDERS "}",
                            msg, sizeof(msg)),
                 SWP_ECONFIG);
    SW_ASSERT_STREQ(msg, "close_provider_at: set either \"provider\" or \"busiest\": true");
    SW_ASSERT_EQ(init_error("{\"close_provider_at\": {\"after\": 1}, \"providers\": "
                            OUTAGE_PROVIDERS "}",
                            msg, sizeof(msg)),
                 SWP_ECONFIG);
}

SW_TEST(close_provider_at_busiest_picks_the_largest_holder_each_time)
{
    struct fake_host *h = start("{\"bid_window\": \"2s\", \"close_provider_at\": {\"busiest\": "
                                "true, \"after\": \"20s\", \"every\": \"20s\"}, "
                                "\"providers\": " OUTAGE_PROVIDERS "}",
                                1);
    SW_ASSERT(h != NULL);
    const char *avoid[] = {"akash1cheap"};
    struct rec r1, r2, r3;
    SW_ASSERT_EQ(acquire(h, &r1, (struct req_opts){.key = "k1", .region = "eu-west"}), 0);
    SW_ASSERT_EQ(acquire(h, &r2, (struct req_opts){.key = "k2", .region = "eu-west", .avoid = avoid,
                                                   .avoid_count = 1}),
                 0);
    SW_ASSERT_EQ(acquire(h, &r3, (struct req_opts){.key = "k3", .region = "eu-west", .avoid = avoid,
                                                   .avoid_count = 1}),
                 0);
    fake_advance_to(h, 20000);
    SW_ASSERT_EQ(fake_count(h, "close_provider_at: provider akash1mid closes all its 2 leases"), 1);
    SW_ASSERT_EQ(list(h).count, 1);
    fake_advance_to(h, 40000);
    SW_ASSERT_EQ(fake_count(h, "close_provider_at: provider akash1cheap closes all its 1 lease"), 1);
    fake_advance_to(h, 60000);
    SW_ASSERT_EQ(fake_count(h, "close_provider_at: provider (none holds a lease) closes all its 0 "
                               "leases"),
                 1);
    SW_ASSERT_EQ(h->event_count, 3);
    SW_ASSERT(finish(h));
}

SW_TEST(persistence_across_restart)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    struct rec a, b, c;
    SW_ASSERT_EQ(acquire(h, &a, (struct req_opts){.key = "p1", .region = "eu-west"}), 0);
    SW_ASSERT_EQ(acquire(h, &b, (struct req_opts){.key = "p2", .region = "us-east"}), 0);
    fake_advance_to(h, 20000);
    SW_ASSERT_EQ(acquire(h, &c, (struct req_opts){.key = "p3", .region = "eu-west"}), 0);
    fake_advance_to(h, 21000);
    SW_ASSERT_EQ(a.done_status, 0);    /* READY at 18.2 s */
    SW_ASSERT_EQ(b.progress_count, 2); /* LEASED at 2.2 s on tieb, ready at 62.2 s */
    SW_ASSERT_EQ(c.progress_count, 1); /* CREATED at 20.2 s, collecting bids */
    SW_ASSERT_STREQ(b.provider, "akash1tieb");
    SW_ASSERT_STREQ(fake_kv_value(h, "index"),
                    "[\"1700000000200\",\"1700000000201\",\"1700000020200\"]");
    SW_ASSERT_CONTAINS(fake_kv_value(h, "dep/1700000000201"), "\"state\":\"leased\"");

    /* Stop: in-flight acquires are cancelled, the KV is left as it is. */
    fake_destroy(h);
    SW_ASSERT_EQ(fake_timer_count(h), 0);
    SW_ASSERT_EQ(b.done_count, 1);
    SW_ASSERT_EQ(b.done_status, SWP_ECANCELED);
    SW_ASSERT_EQ(c.done_status, SWP_ECANCELED);
    SW_ASSERT(fake_kv_value(h, "dep/1700000020200") != NULL);

    /* Down for 10 s, then a new instance over the same KV. */
    fake_advance_to(h, 31000);
    struct swp_error err;
    SW_ASSERT_EQ(fake_init(h, &err), 0);
    SW_ASSERT_EQ(fake_count(h, "restored 2 open deployments"), 1);
    struct listed l = list(h);
    SW_ASSERT_EQ(l.count, 2);
    SW_ASSERT_STREQ(l.market_id[0], "1700000000200");
    SW_ASSERT_EQ(l.state[0], SWP_UNIT_READY);
    SW_ASSERT_STREQ(l.uri[0], "web-1700000000200.eu-west.sim.steward.test");
    SW_ASSERT_STREQ(l.key[0], "p1");
    SW_ASSERT_STREQ(l.tag[0], "stw-test-1");
    SW_ASSERT_EQ(l.created_ms[0], FAKE_EPOCH_MS + 200);
    SW_ASSERT_STREQ(l.market_id[1], "1700000000201");
    SW_ASSERT_EQ(l.state[1], SWP_UNIT_LEASED);
    SW_ASSERT_STREQ(l.provider[1], "akash1tieb");
    SW_ASSERT_NEAR(l.price[1], 0.0723, 1e-12);
    /* The one still collecting bids was closed on reload. */
    SW_ASSERT(fake_kv_value(h, "dep/1700000020200") == NULL);
    SW_ASSERT_STREQ(fake_kv_value(h, "index"), "[\"1700000000200\",\"1700000000201\"]");
    struct release_rec rr;
    SW_ASSERT_EQ(release(h, "1700000020200", &rr), 0);
    /* Capacity is accounted for restored leases: tieb's only slot is taken. */
    SW_ASSERT_EQ(offer_index(offers(h), "akash1tieb"), -1);

    /* Acquiring with the same key joins the restored deployment instead of buying again. */
    struct rec again;
    SW_ASSERT_EQ(acquire(h, &again, (struct req_opts){.key = "p2", .region = "us-east"}), 0);
    SW_ASSERT_EQ(acquire(h, &c, (struct req_opts){.key = "p2", .region = "us-east"}), SWP_EEXIST);
    fake_advance_to(h, 31000);
    SW_ASSERT_EQ(again.progress_count, 2);
    SW_ASSERT_EQ(again.states[0], SWP_UNIT_CREATED);
    SW_ASSERT_EQ(again.states[1], SWP_UNIT_LEASED);
    SW_ASSERT_STREQ(again.market_id, "1700000000201");

    /* The ready timer resumed from the remaining time: READY at 62.2 s as planned. */
    fake_advance_to(h, 62199);
    SW_ASSERT_EQ(list(h).state[1], SWP_UNIT_LEASED);
    SW_ASSERT_EQ(again.done_count, 0);
    fake_advance_to(h, 62200);
    l = list(h);
    SW_ASSERT_EQ(l.state[1], SWP_UNIT_READY);
    SW_ASSERT_STREQ(l.uri[1], "web-1700000000201.us-east.sim.steward.test");
    SW_ASSERT_EQ(again.done_count, 1);
    SW_ASSERT_EQ(again.done_status, 0);
    SW_ASSERT_STREQ(again.uri, "web-1700000000201.us-east.sim.steward.test");
    SW_ASSERT_CONTAINS(fake_kv_value(h, "dep/1700000000201"), "\"state\":\"ready\"");

    /* A READY unit with the same key answers at once. */
    struct rec ready;
    SW_ASSERT_EQ(acquire(h, &ready, (struct req_opts){.key = "p1", .region = "eu-west"}), 0);
    fake_advance(h, 0);
    SW_ASSERT_EQ(ready.done_count, 1);
    SW_ASSERT_EQ(ready.done_status, 0);
    SW_ASSERT_STREQ(ready.market_id, "1700000000200");
    SW_ASSERT(finish(h));
}

SW_TEST(persist_false_keeps_nothing)
{
    struct fake_host *h = start("{\"persist\": false, \"providers\": " PROVIDERS "}", 1);
    SW_ASSERT(h != NULL);
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "q1", .region = "eu-west"}), 0);
    fake_advance(h, 30000);
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_EQ(h->kv_writes, 0);
    fake_destroy(h);
    struct swp_error err;
    SW_ASSERT_EQ(fake_init(h, &err), 0);
    SW_ASSERT_EQ(list(h).count, 0);
    SW_ASSERT(finish(h));
}

/* A busy day with closures: everything that happened, as text. */
static char *scenario(uint64_t seed)
{
    struct fake_host *h = start_closures("100", seed);
    if (h == NULL)
        return NULL;
    struct rec recs[6];
    char key[6][8];
    for (int i = 0; i < 6; i++) {
        snprintf(key[i], sizeof(key[i]), "s%d", i);
        acquire(h, &recs[i], (struct req_opts){.key = key[i], .region = "eu-west"});
        fake_advance(h, 700);
    }
    fake_advance(h, 3 * 3600 * 1000LL);
    struct listed l = list(h);
    fake_note(h, "open %zu", l.count);
    char *transcript = fake_strdup(h->transcript);
    finish(h);
    return transcript;
}

SW_TEST(same_seed_same_story)
{
    char *first = scenario(42);
    char *second = scenario(42);
    char *other = scenario(43);
    SW_ASSERT(first && second && other);
    bool same = strcmp(first, second) == 0;
    bool differs = strcmp(first, other) != 0;
    bool has_losses = strstr(first, "event unit_lost") != NULL;
    free(first);
    free(second);
    free(other);
    SW_ASSERT(same);
    SW_ASSERT(differs);
    SW_ASSERT(has_losses);
}

SW_TEST(destroy_cancels_pending_acquires)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    struct rec early, created;
    SW_ASSERT_EQ(acquire(h, &created, (struct req_opts){.key = "z1", .region = "eu-west"}), 0);
    fake_advance(h, 500);
    SW_ASSERT_EQ(acquire(h, &early, (struct req_opts){.key = "z2", .region = "eu-west"}), 0);
    fake_advance(h, 100);
    fake_destroy(h);
    SW_ASSERT_EQ(early.done_count, 1);
    SW_ASSERT_EQ(early.done_status, SWP_ECANCELED);
    SW_ASSERT_EQ(created.done_count, 1);
    SW_ASSERT_EQ(created.done_status, SWP_ECANCELED);
    SW_ASSERT_EQ(fake_timer_count(h), 0);
    fake_host_free(h);
}

SW_TEST(acquire_validation)
{
    struct fake_host *h = start(CONFIG, 1);
    SW_ASSERT(h != NULL);
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "v1"}), SWP_EINVAL);
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "v1", .region = ""}), SWP_EINVAL);
    SW_ASSERT_EQ(
        acquire(h, &r, (struct req_opts){.key = "v1", .region = "eu-west", .max_price = -1}),
        SWP_EINVAL);
    struct swp_acquire_req small = {.size = 8, .region = "eu-west"};
    SW_ASSERT_EQ(h->plugin->market->acquire(h->state, &small, on_progress, on_done, &r),
                 SWP_EINVAL);
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "v2", .region = "eu-west"}), 0);
    struct rec dup;
    SW_ASSERT_EQ(acquire(h, &dup, (struct req_opts){.key = "v2", .region = "eu-west"}), SWP_EEXIST);
    fake_advance(h, 60000);
    SW_ASSERT_EQ(r.done_count, 1);
    SW_ASSERT_EQ(dup.done_count, 0);
    SW_ASSERT_EQ(fake_timer_count(h), 0);
    SW_ASSERT(finish(h));
}

static int init_error(const char *config, char *msg, size_t len)
{
    struct fake_host *h = fake_host_new(plugin(), 1);
    struct swp_error err;
    int rc = fake_configure(h, config) < 0 ? -9999 : fake_init(h, &err);
    snprintf(msg, len, "%s", rc < 0 ? err.msg : "");
    if (rc == 0)
        fake_destroy(h);
    fake_host_free(h);
    return rc;
}

SW_TEST(config_errors)
{
    SW_ASSERT(plugin() != NULL);
    char msg[256];
    SW_ASSERT_EQ(init_error("{}", msg, sizeof(msg)), SWP_ECONFIG);
    SW_ASSERT_CONTAINS(msg, "providers_file or providers is required");
    SW_ASSERT_EQ(
        init_error("{\"providers_file\": \"x.json\", \"providers\": []}", msg, sizeof(msg)),
        SWP_ECONFIG);
    SW_ASSERT_CONTAINS(msg, "not both");
    SW_ASSERT_EQ(init_error("{\"providers\": []}", msg, sizeof(msg)), SWP_ECONFIG);
    SW_ASSERT_CONTAINS(msg, "at least one provider");
    SW_ASSERT_EQ(init_error("{\"providers\": [{\"owner\": \"a\", \"region\": \"eu-west\"}]}", msg,
                            sizeof(msg)),
                 SWP_ECONFIG);
    SW_ASSERT_STREQ(msg, "providers: providers[0].price_uact_per_block: expected number >= 0");
    SW_ASSERT_EQ(init_error("{\"providers\": [{\"owner\": \"a\", \"price_uact_per_block\": 1}]}",
                            msg, sizeof(msg)),
                 SWP_ECONFIG);
    SW_ASSERT_CONTAINS(msg, "providers[0].region: expected non-empty string");
    SW_ASSERT_EQ(init_error("{\"providers\": [{\"owner\": \"a\", \"region\": \"r\", "
                            "\"price_uact_per_block\": 1, \"bid_delay\": \"soon\"}]}",
                            msg, sizeof(msg)),
                 SWP_ECONFIG);
    SW_ASSERT_CONTAINS(msg, "providers[0].bid_delay: expected duration");
    SW_ASSERT_EQ(init_error("{\"providers\": [{\"owner\": \"a\", \"region\": \"r\", "
                            "\"price_uact_per_block\": 1}, {\"owner\": \"a\", \"region\": "
                            "\"r\", \"price_uact_per_block\": 2}]}",
                            msg, sizeof(msg)),
                 SWP_ECONFIG);
    SW_ASSERT_CONTAINS(msg, "providers[1].owner: \"a\" already used by providers[0]");
    SW_ASSERT_EQ(
        init_error("{\"providers_file\": \"/nonexistent/providers.json\"}", msg, sizeof(msg)),
        SWP_ECONFIG);
    SW_ASSERT_STREQ(msg, "providers_file: cannot open /nonexistent/providers.json");

    char path[] = "/tmp/test_market_sim_XXXXXX";
    int fd = mkstemp(path);
    SW_ASSERT(fd >= 0);
    FILE *file = fdopen(fd, "w");
    fputs("{\"providers\": [{\"owner\": \"a\",", file);
    fclose(file);
    char config[256];
    snprintf(config, sizeof(config), "{\"providers_file\": \"%s\"}", path);
    int rc = init_error(config, msg, sizeof(msg));
    remove(path);
    SW_ASSERT_EQ(rc, SWP_ECONFIG);
    SW_ASSERT_CONTAINS(msg, "invalid JSON");
}

SW_TEST(demo_providers_file)
{
    char config[1024];
    snprintf(config, sizeof(config), "{\"providers_file\": \"%s/examples/providers/demo.json\"}",
             SW_SOURCE_DIR);
    struct fake_host *h = start(config, 1);
    SW_ASSERT(h != NULL);
    struct offered *o = offers(h);
    SW_ASSERT(o->count >= 10);
    size_t regions = 0, audited = 0;
    for (size_t i = 0; i < o->count; i++) {
        size_t j = 0;
        while (j < i && strcmp(o->region[j], o->region[i]) != 0)
            j++;
        regions += j == i;
        audited += o->audited[i];
        SW_ASSERT(o->price[i] >= 0.036 - 1e-9 && o->price[i] <= 0.30 + 1e-9);
    }
    SW_ASSERT(regions >= 8);
    SW_ASSERT(audited >= 1 && audited < o->count);
    struct rec r;
    SW_ASSERT_EQ(acquire(h, &r, (struct req_opts){.key = "demo", .region = "eu-west"}), 0);
    fake_advance(h, 30000);
    SW_ASSERT_EQ(r.done_status, 0);
    SW_ASSERT_CONTAINS(r.uri, ".eu-west.sim.steward.test");
    SW_ASSERT(finish(h));
}

/* SW_TEST_MAIN's counters live across setjmp but are never changed between setjmp and
 * longjmp, so GCC's -Wclobbered (on with -Wextra when optimising) is a false positive. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wclobbered"
#endif
SW_TEST_MAIN()
