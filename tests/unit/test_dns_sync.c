/* test_dns_sync.c — the DNS sync on a simulated clock against an in-memory zone with the
 * dns ops semantics (update_if as compare-and-set): A/AAAA/CNAME choice, per-region names,
 * ownership records, foreign records left alone, upsert-only, make-before-break timing,
 * unplanned losses withdrawn at once, a DNS outage holding releases back with backoff and
 * alerts, and a concurrent change detected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock_sim.h"
#include "dns_sync.h"
#include "mem.h"
#include "sw_test.h"

#define T0 INT64_C(1700000000000)

/* ---- an in-memory zone ---- */

struct rr {
    char *name;
    char *type;
    uint32_t ttl;
    char *records[8];
    size_t count;
};

struct zone {
    struct rr sets[64];
    size_t count;
    bool down;       /* every op fails with SW_EIO */
    int writes;
    int deletes;
    int concurrent;  /* > 0: the next write sees a change made behind our back */
};

static struct zone Z;

static struct rr *zfind(const char *name, const char *type)
{
    for (size_t i = 0; i < Z.count; i++)
        if (strcasecmp(Z.sets[i].name, name) == 0 && strcmp(Z.sets[i].type, type) == 0)
            return &Z.sets[i];
    return NULL;
}

static void zdel(struct rr *r)
{
    for (size_t i = 0; i < r->count; i++)
        free(r->records[i]);
    free(r->name);
    free(r->type);
    *r = Z.sets[--Z.count];
}

static void zset(const char *name, const char *type, uint32_t ttl, const char *const *recs,
                 size_t n)
{
    struct rr *r = zfind(name, type);
    if (r != NULL)
        zdel(r);
    if (n == 0)
        return;
    r = &Z.sets[Z.count++];
    memset(r, 0, sizeof(*r));
    r->name = sw_xstrdup(name);
    r->type = sw_xstrdup(type);
    r->ttl = ttl;
    for (size_t i = 0; i < n; i++)
        r->records[r->count++] = sw_xstrdup(recs[i]);
}

static void zclear(void)
{
    while (Z.count > 0)
        zdel(&Z.sets[0]);
    memset(&Z, 0, sizeof(Z));
}

static const char *zget(const char *name, const char *type)
{
    struct rr *r = zfind(name, type);
    return r != NULL && r->count > 0 ? r->records[0] : NULL;
}

static int op_list(void *state, const char *zone, swp_rrsets_cb done, void *ud)
{
    if (Z.down) {
        struct swp_error err = {SWP_EIO, "server down"};
        done(ud, SWP_EIO, NULL, 0, &err);
        return 0;
    }
    struct swp_rrset sets[64];
    for (size_t i = 0; i < Z.count; i++) {
        sets[i].name = Z.sets[i].name;
        sets[i].type = Z.sets[i].type;
        sets[i].ttl = Z.sets[i].ttl;
        sets[i].records = (const char *const *)Z.sets[i].records;
        sets[i].record_count = Z.sets[i].count;
    }
    done(ud, 0, sets, Z.count, NULL);
    return 0;
}

static int op_update_if(void *state, const char *zone, const struct swp_rrset *expected,
                        const struct swp_rrset *desired, swp_done_cb done, void *ud)
{
    if (Z.down) {
        struct swp_error err = {SWP_EIO, "server down"};
        done(ud, SWP_EIO, &err);
        return 0;
    }
    if (Z.concurrent > 0) {
        Z.concurrent--;
        const char *other[] = {"203.0.113.99"};
        zset(desired->name, desired->type, 60, other, 1);
    }
    struct rr *cur = zfind(desired->name, desired->type);
    bool same = cur == NULL ? expected->record_count == 0 : cur->count == expected->record_count;
    for (size_t i = 0; same && cur != NULL && i < expected->record_count; i++)
        same = strcmp(cur->records[i], expected->records[i]) == 0 ||
               (i < cur->count && strcmp(cur->records[cur->count - 1 - i],
                                         expected->records[i]) == 0);
    if (!same) {
        struct swp_error err = {SWP_EAGAIN, "changed"};
        done(ud, SWP_EAGAIN, &err);
        return 0;
    }
    if (desired->record_count == 0)
        Z.deletes++;
    else
        Z.writes++;
    zset(desired->name, desired->type, desired->ttl, desired->records, desired->record_count);
    done(ud, 0, NULL);
    return 0;
}

static const struct swp_dns_ops OPS = {
    .size = sizeof(struct swp_dns_ops),
    .list = op_list,
    .update_if = op_update_if,
};

/* ---- fixtures ---- */

struct events {
    char log[8192];
    int alerts;
    int conflicts;
    int withdrawn;
};

static void on_event(void *ud, const char *type, const char *json)
{
    struct events *ev = ud;
    size_t used = strlen(ev->log);
    snprintf(ev->log + used, sizeof(ev->log) - used, "%s %s\n", type, json);
    ev->alerts += strcmp(type, "alert") == 0;
    ev->conflicts += strcmp(type, "dns_conflict") == 0;
    ev->withdrawn += strcmp(type, "dns_withdrawn") == 0;
}

struct fixture {
    struct sw_clock *clock;
    struct sw_units units;
    struct sw_dns_record_config record;
    struct sw_dns_config config;
    struct sw_dns_sync *sync;
    struct events ev;
};

static void setup(struct fixture *f, int mode)
{
    memset(f, 0, sizeof(*f));
    zclear();
    f->clock = sw_clock_sim_new(T0);
    sw_units_init(&f->units);
    f->record.group = "web";
    f->record.name = "www.example.test.";
    f->record.per_region = true;
    f->config.plugin = "mem";
    f->config.zone = "example.test.";
    f->config.ttl = 60;
    f->config.owner_id = "blue";
    f->config.mode = mode;
    f->config.drain_ms = 120000;
    f->config.resync_ms = 60000;
    f->config.records = &f->record;
    f->config.record_count = 1;
    struct sw_dns_sync_opts opts = {
        .config = &f->config,
        .clock = f->clock,
        .ops = &OPS,
        .plugin_name = "mem",
        .units = &f->units,
        .on_event = on_event,
        .event_ud = &f->ev,
    };
    f->sync = sw_dns_sync_new(&opts);
}

static void teardown(struct fixture *f)
{
    sw_dns_sync_free(f->sync);
    sw_units_clear(&f->units);
    sw_clock_free(f->clock);
    zclear();
}

static struct sw_unit *add_unit(struct fixture *f, const char *key, const char *region,
                                const char *uri, int64_t ready_ms)
{
    struct sw_unit *u = sw_unit_new(key, "web", region);
    u->state = SW_UNIT_READY;
    u->ready_ms = ready_ms;
    const char *uris[] = {uri};
    sw_unit_set_uris(u, uris, 1);
    sw_units_add(&f->units, u);
    sw_dns_sync_kick(f->sync);
    return u;
}

static void run_for(struct fixture *f, int64_t ms)
{
    sw_clock_sim_run(f->clock, sw_clock_now(f->clock) + ms);
}

static const char *OWNER_TXT = "\"heritage=steward,steward/owner=blue,steward/group=web\"";

SW_TEST(uri_hosts_and_owner_names)
{
    char host[64];
    SW_ASSERT(sw_dns_uri_host("https://[2001:db8::1]:8443/x", host, sizeof(host)));
    SW_ASSERT_STREQ(host, "2001:db8::1");
    SW_ASSERT(sw_dns_uri_host("web-1.example:80", host, sizeof(host)));
    SW_ASSERT_STREQ(host, "web-1.example");
    SW_ASSERT(sw_dns_uri_host("http://user@192.0.2.1/p", host, sizeof(host)));
    SW_ASSERT_STREQ(host, "192.0.2.1");
    SW_ASSERT(!sw_dns_uri_host("http://", host, sizeof(host)));
    char *owner = sw_dns_owner_name("eu-west.www.example.test.", "CNAME");
    SW_ASSERT_STREQ(owner, "sw-cname-eu-west.www.example.test.");
    free(owner);
}

SW_TEST(ips_become_a_and_aaaa_with_ownership)
{
    struct fixture f;
    setup(&f, SW_DNS_MODE_SYNC);
    sw_dns_sync_start(f.sync);
    add_unit(&f, "u1", "eu-west", "http://192.0.2.1:8080", T0);
    add_unit(&f, "u2", "US_East", "https://[2001:DB8::2]:443", T0);
    run_for(&f, 100);
    SW_ASSERT(sw_dns_sync_settled(f.sync));
    SW_ASSERT_STREQ(zget("www.example.test.", "A"), "192.0.2.1");
    SW_ASSERT_STREQ(zget("www.example.test.", "AAAA"), "2001:db8::2");
    SW_ASSERT_STREQ(zget("sw-a-www.example.test.", "TXT"), OWNER_TXT);
    SW_ASSERT_STREQ(zget("sw-aaaa-www.example.test.", "TXT"), OWNER_TXT);
    SW_ASSERT_STREQ(zget("eu-west.www.example.test.", "A"), "192.0.2.1");
    SW_ASSERT_STREQ(zget("us-east.www.example.test.", "AAAA"), "2001:db8::2");
    SW_ASSERT(zget("eu-west.www.example.test.", "AAAA") == NULL);
    /* A second pass finds nothing to do. */
    int writes = Z.writes;
    sw_dns_sync_kick(f.sync);
    run_for(&f, 100);
    SW_ASSERT_EQ(Z.writes, writes);
    teardown(&f);
}

SW_TEST(host_names_become_one_cname_to_the_longest_ready)
{
    struct fixture f;
    setup(&f, SW_DNS_MODE_SYNC);
    sw_dns_sync_start(f.sync);
    add_unit(&f, "u2", "eu-west", "web-2.p.test", T0 + 5);
    add_unit(&f, "u1", "eu-west", "web-1.p.test:443", T0);
    run_for(&f, 100);
    SW_ASSERT_STREQ(zget("www.example.test.", "CNAME"), "web-1.p.test.");
    SW_ASSERT_STREQ(zget("sw-cname-www.example.test.", "TXT"), OWNER_TXT);
    /* u1 gone (unplanned): the CNAME moves to u2 at once, no drain. */
    f.units.items[1]->state = SW_UNIT_CLOSED;
    sw_dns_sync_kick(f.sync);
    run_for(&f, 10);
    SW_ASSERT_STREQ(zget("www.example.test.", "CNAME"), "web-2.p.test.");
    teardown(&f);
}

SW_TEST(foreign_records_are_reported_not_touched)
{
    struct fixture f;
    setup(&f, SW_DNS_MODE_SYNC);
    const char *foreign[] = {"198.51.100.7"};
    zset("www.example.test.", "A", 300, foreign, 1);
    const char *theirs[] = {"\"heritage=steward,steward/owner=green,steward/group=web\""};
    zset("sw-a-eu-west.www.example.test.", "TXT", 300, theirs, 1);
    sw_dns_sync_start(f.sync);
    add_unit(&f, "u1", "eu-west", "192.0.2.1", T0);
    run_for(&f, 100);
    SW_ASSERT_STREQ(zget("www.example.test.", "A"), "198.51.100.7");
    SW_ASSERT(zget("sw-a-www.example.test.", "TXT") == NULL);
    SW_ASSERT(zget("eu-west.www.example.test.", "A") == NULL);
    SW_ASSERT_EQ(f.ev.conflicts, 2);
    SW_ASSERT_CONTAINS(f.ev.log, "a record steward does not own exists");
    SW_ASSERT_CONTAINS(f.ev.log, "its ownership record belongs to someone else");
    /* Reported once, not at every pass. */
    run_for(&f, 130000);
    SW_ASSERT_EQ(f.ev.conflicts, 2);
    /* Releasing a unit DNS never pointed at waits for nothing. */
    f.units.items[0]->state = SW_UNIT_RELEASING;
    SW_ASSERT_EQ(sw_dns_sync_before_release(f.sync, f.units.items[0], NULL, NULL), 0);
    teardown(&f);
}

static int released;
static int64_t released_at;
static struct sw_clock *release_clock;

static void on_release(void *ud, const char *key)
{
    released++;
    released_at = sw_clock_now(release_clock);
}

SW_TEST(make_before_break_waits_for_withdrawal_and_drain)
{
    struct fixture f;
    setup(&f, SW_DNS_MODE_SYNC);
    release_clock = f.clock;
    released = 0;
    sw_dns_sync_start(f.sync);
    add_unit(&f, "u1", "eu-west", "192.0.2.1", T0);
    struct sw_unit *u2 = add_unit(&f, "u2", "as-east", "192.0.2.2", T0);
    run_for(&f, 100);
    SW_ASSERT_STREQ(zget("as-east.www.example.test.", "A"), "192.0.2.2");
    u2->state = SW_UNIT_RELEASING;
    sw_dns_sync_kick(f.sync);
    int64_t asked = sw_clock_now(f.clock);
    SW_ASSERT_EQ(sw_dns_sync_before_release(f.sync, u2, on_release, NULL), 1);
    SW_ASSERT_EQ(sw_dns_sync_deferred(f.sync), 1);
    run_for(&f, 100);
    SW_ASSERT(zget("as-east.www.example.test.", "A") == NULL);
    SW_ASSERT(zget("sw-a-as-east.www.example.test.", "TXT") == NULL);
    SW_ASSERT_STREQ(zget("www.example.test.", "A"), "192.0.2.1");
    SW_ASSERT_EQ(f.ev.withdrawn, 1);
    SW_ASSERT_EQ(released, 0);
    run_for(&f, 119000);
    SW_ASSERT_EQ(released, 0);
    run_for(&f, 2000);
    SW_ASSERT_EQ(released, 1);
    SW_ASSERT(released_at - asked >= 120000);
    SW_ASSERT_EQ(sw_dns_sync_stats(f.sync)->withdrawals, 1);
    teardown(&f);
}

SW_TEST(dns_down_holds_releases_retries_with_backoff_and_alerts)
{
    struct fixture f;
    setup(&f, SW_DNS_MODE_SYNC);
    release_clock = f.clock;
    released = 0;
    sw_dns_sync_start(f.sync);
    struct sw_unit *u1 = add_unit(&f, "u1", "eu-west", "192.0.2.1", T0);
    run_for(&f, 100);
    Z.down = true;
    u1->state = SW_UNIT_RELEASING;
    sw_dns_sync_kick(f.sync);
    SW_ASSERT_EQ(sw_dns_sync_before_release(f.sync, u1, on_release, NULL), 1);
    run_for(&f, 600000);
    SW_ASSERT_EQ(released, 0); /* the old lease stays while DNS may still point at it */
    const struct sw_dns_sync_stats *st = sw_dns_sync_stats(f.sync);
    /* 1+2+4+...+60 s capped: about 14 attempts in 10 minutes, not hundreds. */
    SW_ASSERT(st->passes_failed >= 8 && st->passes_failed <= 20);
    SW_ASSERT_EQ(f.ev.alerts, st->passes_failed >= 10 ? 2 : 1);
    SW_ASSERT_CONTAINS(f.ev.log, "dns_unavailable");
    Z.down = false;
    run_for(&f, 61000);
    SW_ASSERT(zget("www.example.test.", "A") == NULL);
    SW_ASSERT_EQ(released, 0);
    run_for(&f, 121000);
    SW_ASSERT_EQ(released, 1);
    SW_ASSERT_EQ(st->consecutive_failures, 0);
    teardown(&f);
}

SW_TEST(upsert_only_never_deletes)
{
    struct fixture f;
    setup(&f, SW_DNS_MODE_UPSERT_ONLY);
    sw_dns_sync_start(f.sync);
    struct sw_unit *u1 = add_unit(&f, "u1", "eu-west", "192.0.2.1", T0);
    add_unit(&f, "u2", "eu-west", "192.0.2.2", T0);
    run_for(&f, 100);
    struct rr *www = zfind("www.example.test.", "A");
    SW_ASSERT(www != NULL && www->count == 2);
    u1->state = SW_UNIT_CLOSED;
    sw_dns_sync_kick(f.sync);
    run_for(&f, 100);
    SW_ASSERT_STREQ(zget("www.example.test.", "A"), "192.0.2.2"); /* replaced, not deleted */
    f.units.items[1]->state = SW_UNIT_CLOSED;
    sw_dns_sync_kick(f.sync);
    run_for(&f, 100);
    SW_ASSERT_EQ(Z.deletes, 0);
    SW_ASSERT_STREQ(zget("www.example.test.", "A"), "192.0.2.2");
    SW_ASSERT(zget("sw-a-www.example.test.", "TXT") != NULL);
    teardown(&f);
}

SW_TEST(sync_mode_deletes_what_it_owns_and_nothing_else)
{
    struct fixture f;
    setup(&f, SW_DNS_MODE_SYNC);
    const char *other[] = {"192.0.2.200"};
    zset("mail.example.test.", "A", 60, other, 1);
    sw_dns_sync_start(f.sync);
    struct sw_unit *u1 = add_unit(&f, "u1", "eu-west", "192.0.2.1", T0);
    run_for(&f, 100);
    u1->state = SW_UNIT_CLOSED;
    sw_dns_sync_kick(f.sync);
    run_for(&f, 100);
    SW_ASSERT(zget("www.example.test.", "A") == NULL);
    SW_ASSERT(zget("sw-a-www.example.test.", "TXT") == NULL);
    SW_ASSERT(zget("eu-west.www.example.test.", "A") == NULL);
    SW_ASSERT_STREQ(zget("mail.example.test.", "A"), "192.0.2.200");
    SW_ASSERT_EQ(Z.count, 1);
    teardown(&f);
}

SW_TEST(concurrent_change_is_detected_and_not_overwritten)
{
    struct fixture f;
    setup(&f, SW_DNS_MODE_SYNC);
    sw_dns_sync_start(f.sync);
    Z.concurrent = 1; /* someone writes www A between our list and our write */
    add_unit(&f, "u1", "eu-west", "192.0.2.1", T0);
    run_for(&f, 5000);
    /* The first write (the ownership record) failed its compare-and-set; the next pass
     * saw the other writer's record and left it, and everything under it, alone. */
    SW_ASSERT_STREQ(zget("sw-a-www.example.test.", "TXT"), "203.0.113.99");
    SW_ASSERT(zget("www.example.test.", "A") == NULL);
    SW_ASSERT_EQ(f.ev.conflicts, 1);
    SW_ASSERT_CONTAINS(f.ev.log, "its ownership record belongs to someone else");
    SW_ASSERT_STREQ(zget("eu-west.www.example.test.", "A"), "192.0.2.1");
    teardown(&f);
}

SW_TEST_MAIN()
