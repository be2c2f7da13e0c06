/* test_journal.c — the SQLite journal: schema and migrations, intents, units, buffered
 * evaluations and their visibility to other connections, kv, events, state, meta, and
 * durability across a kill -9.
 */
#include <cjson/cJSON.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "mem.h"
#include "sw_test.h"
#include "sw_test_db.h"

/* ---- helpers ------------------------------------------------------------------------- */

static void tmp_db_make(struct tmp_db *t)
{
    tmp_db_make_named(t, "sw_journal");
}

static struct sw_evaluation sample_eval(const char *policy, int64_t at_ms)
{
    return (struct sw_evaluation){
        .policy = policy,
        .at_ms = at_ms,
        .inputs_digest = "ab12cd34",
        .inputs_json = "{\"metrics\":{\"rps\":120}}",
        .desired_json = "{\"web\":{\"eu-west\":3}}",
        .actions_json = "[{\"kind\":\"acquire\",\"group\":\"web\",\"region\":\"eu-west\"}]",
        .refused_json = "[]",
        .explain_json = "[\"rps above target\"]",
        .error = NULL,
        .duration_ms = 1.25,
    };
}

static struct sw_journal *open_ok(const char *path)
{
    struct sw_error err = {0};
    struct sw_journal *j = sw_journal_open(path, &err);
    if (j == NULL)
        fprintf(stderr, "    open %s: %s\n", path, err.msg);
    return j;
}

/* ---- schema -------------------------------------------------------------------------- */

SW_TEST(schema_created_and_reopen_keeps_data)
{
    struct tmp_db t;
    tmp_db_make(&t);
    struct sw_error err = {0};
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    SW_ASSERT_EQ(raw_int(t.path, "PRAGMA user_version"), 4);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                 "name IN ('intents', 'units', 'evaluations', 'policy_state', "
                                 "'kv', 'events', 'meta')"),
                 7);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                                 "name = 'evaluations_policy_at'"),
                 1);

    int64_t id = 0;
    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "k1", "web", "eu", NULL, "scale",
                                         1000, &id, &err),
                 0);
    SW_ASSERT_EQ(sw_journal_meta_set(j, "seed", "42"), 0);
    SW_ASSERT_EQ(sw_journal_kv_set(j, "market_sim", "wallet", "akash1xyz"), 0);
    struct sw_evaluation ev = sample_eval("autoscale", 1000);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    SW_ASSERT_EQ(sw_journal_state_set(j, "autoscale", "{\"n\":1}", &err), 0);
    /* close commits what is buffered */
    sw_journal_close(j);

    j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    /* The file is in WAL mode (persistent), which is what makes readers not block. */
    struct sw_intent in;
    SW_ASSERT_EQ(sw_journal_intent_get(j, "k1", &in, &err), 0);
    SW_ASSERT_EQ(in.id, id);
    SW_ASSERT_STREQ(in.group, "web");
    sw_intent_clear(&in);
    char *value = NULL;
    SW_ASSERT_EQ(sw_journal_meta_get(j, "seed", &value), 0);
    SW_ASSERT_STREQ(value, "42");
    free(value);
    SW_ASSERT_EQ(sw_journal_kv_get(j, "market_sim", "wallet", &value), 0);
    SW_ASSERT_STREQ(value, "akash1xyz");
    free(value);
    SW_ASSERT_EQ(sw_journal_eval_count(j), 1);
    SW_ASSERT_EQ(sw_journal_state_get(j, "autoscale", &value, &err), 0);
    SW_ASSERT_STREQ(value, "{\"n\":1}");
    free(value);
    SW_ASSERT_EQ(raw_int(t.path, "PRAGMA user_version"), 4);
    sw_journal_close(j);

    /* journal_mode is stored in the file header once set to WAL */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    SW_ASSERT_EQ(sqlite3_open(t.path, &db), SQLITE_OK);
    SW_ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    SW_ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    SW_ASSERT_STREQ((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    tmp_db_remove(&t);
}

SW_TEST(newer_schema_version_is_refused)
{
    struct tmp_db t;
    tmp_db_make(&t);
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    sw_journal_close(j);
    SW_ASSERT_EQ(raw_exec(t.path, "PRAGMA user_version = 7"), SQLITE_OK);

    struct sw_error err = {0};
    j = sw_journal_open(t.path, &err);
    SW_ASSERT(j == NULL);
    SW_ASSERT_EQ(err.code, SW_ESTORE);
    char expected[256];
    snprintf(expected, sizeof(expected),
             "journal %s has schema version 7, this steward knows up to 4: upgrade steward",
             t.path);
    SW_ASSERT_STREQ(err.msg, expected);
    /* refused without touching it */
    SW_ASSERT_EQ(raw_int(t.path, "PRAGMA user_version"), 7);
    tmp_db_remove(&t);
}

SW_TEST(corrupt_file_is_a_clean_error)
{
    struct tmp_db t;
    tmp_db_make(&t);
    FILE *f = fopen(t.path, "w");
    SW_ASSERT(f != NULL);
    for (int i = 0; i < 512; i++)
        fputs("this is not an sqlite file\n", f);
    fclose(f);

    struct sw_error err = {0};
    struct sw_journal *j = sw_journal_open(t.path, &err);
    SW_ASSERT(j == NULL);
    SW_ASSERT_EQ(err.code, SW_ESTORE);
    SW_ASSERT_CONTAINS(err.msg, t.path);
    SW_ASSERT_CONTAINS(err.msg, "not a database");

    /* the bytes are untouched: a wrong path never destroys someone's file */
    f = fopen(t.path, "r");
    SW_ASSERT(f != NULL);
    char head[32] = {0};
    SW_ASSERT(fgets(head, sizeof(head), f) != NULL);
    fclose(f);
    SW_ASSERT_STREQ(head, "this is not an sqlite file\n");
    tmp_db_remove(&t);

    /* a directory that does not exist */
    err = (struct sw_error){0};
    j = sw_journal_open("/nonexistent-dir-for-steward/x/steward.db", &err);
    SW_ASSERT(j == NULL);
    SW_ASSERT_EQ(err.code, SW_ESTORE);
    SW_ASSERT_CONTAINS(err.msg, "cannot open");
}

/* ---- intents ------------------------------------------------------------------------- */

SW_TEST(intent_lifecycle)
{
    struct sw_error err = {0};
    struct sw_journal *j = open_ok(":memory:");
    SW_ASSERT(j != NULL);
    int64_t id_a = 0, id_b = 0, id_c = 0, id_dup = -5;
    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "acq-a", "web", "eu-west", NULL,
                                         "below desired", 1000, &id_a, &err),
                 0);
    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_RELEASE, "rel-b", "web", "us-east", "unit-9",
                                         "above desired", 1001, &id_b, &err),
                 0);
    SW_ASSERT(id_b > id_a);

    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "acq-a", "web", "eu-west", NULL,
                                         "again", 1002, &id_dup, &err),
                 SW_EEXIST);
    SW_ASSERT_EQ(err.code, SW_EEXIST);
    SW_ASSERT_CONTAINS(err.msg, "acq-a");
    SW_ASSERT_EQ(id_dup, -5);
    SW_ASSERT_EQ(sw_journal_intent_count(j, "acq-a"), 1);
    SW_ASSERT_EQ(sw_journal_intent_count(j, "never"), 0);

    SW_ASSERT_EQ(sw_journal_intent_set_market_id(j, "acq-a", "dseq-77", 1100, &err), 0);
    SW_ASSERT_EQ(sw_journal_intent_finish(j, "rel-b", SW_INTENT_DONE, "closed", 1200, &err), 0);
    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "acq-c", "api", "eu-west", NULL,
                                         NULL, 1300, &id_c, &err),
                 0);

    struct sw_intent *pending = NULL;
    size_t count = 0;
    SW_ASSERT_EQ(sw_journal_intents_pending(j, &pending, &count, &err), 0);
    SW_ASSERT_EQ(count, 2);
    SW_ASSERT_STREQ(pending[0].key, "acq-a");
    SW_ASSERT_STREQ(pending[0].market_id, "dseq-77");
    SW_ASSERT_STREQ(pending[1].key, "acq-c");
    SW_ASSERT(pending[1].reason == NULL);
    for (size_t i = 0; i < count; i++)
        sw_intent_clear(&pending[i]);
    free(pending);

    struct sw_intent in;
    SW_ASSERT_EQ(sw_journal_intent_get(j, "acq-a", &in, &err), 0);
    SW_ASSERT_EQ(in.id, id_a);
    SW_ASSERT_EQ(in.kind, SW_ACTION_ACQUIRE);
    SW_ASSERT_STREQ(in.group, "web");
    SW_ASSERT_STREQ(in.region, "eu-west");
    SW_ASSERT(in.unit_key == NULL);
    SW_ASSERT_STREQ(in.market_id, "dseq-77");
    SW_ASSERT_EQ(in.state, SW_INTENT_PENDING);
    SW_ASSERT_EQ(in.created_ms, 1000);
    SW_ASSERT_EQ(in.updated_ms, 1100);
    SW_ASSERT_STREQ(in.reason, "below desired");
    SW_ASSERT(in.outcome == NULL);
    sw_intent_clear(&in);

    SW_ASSERT_EQ(sw_journal_intent_get(j, "rel-b", &in, &err), 0);
    SW_ASSERT_EQ(in.kind, SW_ACTION_RELEASE);
    SW_ASSERT_STREQ(in.unit_key, "unit-9");
    SW_ASSERT_EQ(in.state, SW_INTENT_DONE);
    SW_ASSERT_STREQ(in.outcome, "closed");
    SW_ASSERT_EQ(in.updated_ms, 1200);
    sw_intent_clear(&in);

    SW_ASSERT_EQ(sw_journal_intent_get(j, "missing", &in, &err), SW_ENOENT);
    SW_ASSERT(in.key == NULL);
    SW_ASSERT_EQ(sw_journal_intent_finish(j, "missing", SW_INTENT_FAILED, "x", 1, &err), SW_ENOENT);
    SW_ASSERT_EQ(sw_journal_intent_set_market_id(j, "missing", "m", 1, &err), SW_ENOENT);
    SW_ASSERT_EQ(sw_journal_intent_finish(j, "acq-a", SW_INTENT_PENDING, "x", 1, &err), SW_EINVAL);

    SW_ASSERT_EQ(sw_journal_intent_finish(j, "acq-a", SW_INTENT_FAILED, "402", 1400, &err), 0);
    SW_ASSERT_EQ(sw_journal_intent_finish(j, "acq-c", SW_INTENT_ABANDONED, "recovery", 1400, &err),
                 0);
    SW_ASSERT_EQ(sw_journal_intents_pending(j, &pending, &count, &err), 0);
    SW_ASSERT_EQ(count, 0);
    SW_ASSERT(pending == NULL);
    sw_journal_close(j);
}

/* Compaction keeps what a running steward reads back (pending intents, open units, policy
 * state) and drops the rest; the journal stays usable afterwards. */
SW_TEST(compact_keeps_pending_intents_and_open_units)
{
    struct sw_error err = {0};
    struct sw_journal *j = open_ok(":memory:");
    SW_ASSERT(j != NULL);
    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "acq-open", "web", "eu", NULL, NULL,
                                         1000, NULL, &err),
                 0);
    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "acq-done", "web", "eu", NULL, NULL,
                                         1000, NULL, &err),
                 0);
    SW_ASSERT_EQ(sw_journal_intent_finish(j, "acq-done", SW_INTENT_DONE, "ok", 1100, &err), 0);
    struct sw_unit *open = sw_unit_new("u-open", "web", "eu");
    open->state = SW_UNIT_READY;
    struct sw_unit *closed = sw_unit_new("u-closed", "web", "eu");
    closed->state = SW_UNIT_CLOSED;
    SW_ASSERT_EQ(sw_journal_unit_save(j, open, &err), 0);
    SW_ASSERT_EQ(sw_journal_unit_save(j, closed, &err), 0);
    SW_ASSERT_EQ(sw_journal_event(j, 1200, "unit_ready", "{}"), 0);
    SW_ASSERT_EQ(sw_journal_state_set(j, "p", "{\"n\":1}", &err), 0);
    SW_ASSERT_EQ(sw_journal_flush(j, &err), 0);

    SW_ASSERT_EQ(sw_journal_compact(j, &err), 0);
    SW_ASSERT_EQ(sw_journal_intent_count(j, "acq-open"), 1);
    SW_ASSERT_EQ(sw_journal_intent_count(j, "acq-done"), 0);
    SW_ASSERT_EQ(sw_journal_unit_count(j, SW_UNIT_CLOSED), 0);
    SW_ASSERT_EQ(sw_journal_unit_count(j, -1), 1);
    struct sw_event_record *events = NULL;
    size_t count = 5;
    SW_ASSERT_EQ(sw_journal_events(j, 0, 10, &events, &count), 0);
    SW_ASSERT_EQ(count, 0);
    sw_journal_events_free(events, count);
    char *state = NULL;
    SW_ASSERT_EQ(sw_journal_state_get(j, "p", &state, &err), 0);
    SW_ASSERT_STREQ(state, "{\"n\":1}");
    free(state);
    /* Still writable: the pending intent finishes, a new one begins. */
    SW_ASSERT_EQ(sw_journal_intent_finish(j, "acq-open", SW_INTENT_DONE, "ok", 1300, &err), 0);
    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_RELEASE, "rel-1", "web", "eu", "u-open", NULL,
                                         1400, NULL, &err),
                 0);
    sw_unit_free(open);
    sw_unit_free(closed);
    sw_journal_close(j);
}

/* ---- units --------------------------------------------------------------------------- */

SW_TEST(units_roundtrip_every_field)
{
    struct sw_error err = {0};
    struct sw_journal *j = open_ok(":memory:");
    SW_ASSERT(j != NULL);
    struct sw_unit *u = sw_unit_new("acq-1", "web", "eu-west");
    u->market_id = sw_xstrdup("dseq-100");
    u->provider = sw_xstrdup("akash1provider");
    u->price_usd_hour = 0.375;
    u->state = SW_UNIT_READY;
    u->self = true;
    u->unhealthy = true;
    u->probe_failures = 4;
    u->ordered_ms = 1000;
    u->ready_ms = 5000;
    u->closed_ms = 0;
    const char *uris[] = {"https://a.example:443", "http://b.example/\"quoted\""};
    sw_unit_set_uris(u, uris, 2);
    u->close_reason = sw_xstrdup("not yet");
    SW_ASSERT_EQ(sw_journal_unit_save(j, u, &err), 0);

    struct sw_unit *plain = sw_unit_new("acq-2", "api", "us-east");
    plain->ordered_ms = 2000;
    SW_ASSERT_EQ(sw_journal_unit_save(j, plain, &err), 0);

    struct sw_units loaded;
    sw_units_init(&loaded);
    SW_ASSERT_EQ(sw_journal_units_load(j, &loaded, &err), 0);
    SW_ASSERT_EQ(loaded.count, 2);
    const struct sw_unit *got = sw_units_find_key(&loaded, "acq-1");
    SW_ASSERT(got != NULL);
    SW_ASSERT_STREQ(got->market_id, "dseq-100");
    SW_ASSERT_STREQ(got->group, "web");
    SW_ASSERT_STREQ(got->region, "eu-west");
    SW_ASSERT_STREQ(got->provider, "akash1provider");
    SW_ASSERT_NEAR(got->price_usd_hour, 0.375, 1e-12);
    SW_ASSERT_EQ(got->state, SW_UNIT_READY);
    SW_ASSERT(got->self);
    SW_ASSERT(got->unhealthy);
    SW_ASSERT_EQ(got->probe_failures, 4);
    SW_ASSERT_EQ(got->ordered_ms, 1000);
    SW_ASSERT_EQ(got->ready_ms, 5000);
    SW_ASSERT_EQ(got->closed_ms, 0);
    SW_ASSERT_EQ(got->uri_count, 2);
    SW_ASSERT_STREQ(got->uris[0], uris[0]);
    SW_ASSERT_STREQ(got->uris[1], uris[1]);
    SW_ASSERT_STREQ(got->close_reason, "not yet");

    got = sw_units_find_key(&loaded, "acq-2");
    SW_ASSERT(got != NULL);
    SW_ASSERT(got->market_id == NULL);
    SW_ASSERT(got->provider == NULL);
    SW_ASSERT(!got->self);
    SW_ASSERT(!got->unhealthy);
    SW_ASSERT_EQ(got->uri_count, 0);
    SW_ASSERT(got->uris == NULL);
    SW_ASSERT_EQ(got->state, SW_UNIT_ORDERED);
    /* oldest first */
    SW_ASSERT_STREQ(loaded.items[0]->key, "acq-1");
    sw_units_clear(&loaded);

    /* saving again replaces the row, it does not add one */
    u->unhealthy = false;
    u->probe_failures = 0;
    sw_unit_set_uris(u, NULL, 0);
    SW_ASSERT_EQ(sw_journal_unit_save(j, u, &err), 0);
    SW_ASSERT_EQ(sw_journal_unit_count(j, -1), 2);
    sw_units_init(&loaded);
    SW_ASSERT_EQ(sw_journal_units_load(j, &loaded, &err), 0);
    got = sw_units_find_key(&loaded, "acq-1");
    SW_ASSERT(got != NULL);
    SW_ASSERT(!got->unhealthy);
    SW_ASSERT(got->self);
    SW_ASSERT_EQ(got->uri_count, 0);
    sw_units_clear(&loaded);

    sw_unit_free(u);
    sw_unit_free(plain);
    sw_journal_close(j);
}

SW_TEST(closed_units_are_not_loaded)
{
    struct sw_error err = {0};
    struct sw_journal *j = open_ok(":memory:");
    SW_ASSERT(j != NULL);
    const char *keys[] = {"u1", "u2", "u3", "u4"};
    const int states[] = {SW_UNIT_READY, SW_UNIT_CLOSED, SW_UNIT_RELEASING, SW_UNIT_CLOSED};
    for (size_t i = 0; i < SW_ARRAY_LEN(keys); i++) {
        struct sw_unit *u = sw_unit_new(keys[i], "web", "eu");
        u->state = states[i];
        u->ordered_ms = (int64_t)i;
        SW_ASSERT_EQ(sw_journal_unit_save(j, u, &err), 0);
        sw_unit_free(u);
    }
    struct sw_units loaded;
    sw_units_init(&loaded);
    /* appended to what the caller already holds */
    sw_units_add(&loaded, sw_unit_new("existing", "web", "eu"));
    SW_ASSERT_EQ(sw_journal_units_load(j, &loaded, &err), 0);
    SW_ASSERT_EQ(loaded.count, 3);
    SW_ASSERT_STREQ(loaded.items[0]->key, "existing");
    SW_ASSERT_STREQ(loaded.items[1]->key, "u1");
    SW_ASSERT_STREQ(loaded.items[2]->key, "u3");
    SW_ASSERT_EQ(loaded.items[2]->state, SW_UNIT_RELEASING);
    sw_units_clear(&loaded);
    SW_ASSERT_EQ(sw_journal_unit_count(j, SW_UNIT_CLOSED), 2);
    SW_ASSERT_EQ(sw_journal_unit_count(j, SW_UNIT_READY), 1);
    SW_ASSERT_EQ(sw_journal_unit_count(j, -1), 2);
    sw_journal_close(j);
}

/* ---- buffering ----------------------------------------------------------------------- */

SW_TEST(evals_invisible_to_others_until_flush)
{
    struct tmp_db t;
    tmp_db_make(&t);
    struct sw_error err = {0};
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    const char *count_sql = "SELECT count(*) FROM evaluations";

    for (int i = 0; i < 5; i++) {
        struct sw_evaluation ev = sample_eval("autoscale", 1000 + i);
        SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    }
    SW_ASSERT_EQ(sw_journal_state_set(j, "autoscale", "{\"k\":2}", &err), 0);
    SW_ASSERT_EQ(sw_journal_event(j, 1000, "policy.error", "{}"), 0);
    /* this connection sees its own open transaction, another does not */
    SW_ASSERT_EQ(sw_journal_eval_count(j), 5);
    SW_ASSERT_EQ(raw_int(t.path, count_sql), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM policy_state"), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM events"), 0);

    SW_ASSERT_EQ(sw_journal_flush(j, &err), 0);
    SW_ASSERT_EQ(raw_int(t.path, count_sql), 5);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM policy_state"), 1);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM events"), 1);
    /* flushing with nothing buffered is fine */
    SW_ASSERT_EQ(sw_journal_flush(j, &err), 0);

    /* an intent commits the batch that precedes it */
    for (int i = 0; i < 3; i++) {
        struct sw_evaluation ev = sample_eval("autoscale", 2000 + i);
        SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    }
    SW_ASSERT_EQ(raw_int(t.path, count_sql), 5);
    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "i1", "web", "eu", NULL, NULL, 2003,
                                         NULL, &err),
                 0);
    SW_ASSERT_EQ(raw_int(t.path, count_sql), 8);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM intents"), 1);

    /* so does a refused one (the batch is good data; only the duplicate row is refused) */
    struct sw_evaluation ev = sample_eval("autoscale", 3000);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "i1", "web", "eu", NULL, NULL, 3001,
                                         NULL, &err),
                 SW_EEXIST);
    SW_ASSERT_EQ(raw_int(t.path, count_sql), 9);

    /* and the other durable writes */
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    SW_ASSERT_EQ(sw_journal_kv_set(j, "ns", "k", "v"), 0);
    SW_ASSERT_EQ(raw_int(t.path, count_sql), 10);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    SW_ASSERT_EQ(sw_journal_meta_set(j, "instance", "abc"), 0);
    SW_ASSERT_EQ(raw_int(t.path, count_sql), 11);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    struct sw_unit *u = sw_unit_new("u", "web", "eu");
    SW_ASSERT_EQ(sw_journal_unit_save(j, u, &err), 0);
    sw_unit_free(u);
    SW_ASSERT_EQ(raw_int(t.path, count_sql), 12);
    sw_journal_close(j);
    tmp_db_remove(&t);
}

SW_TEST(buffer_commits_itself_at_1000_records)
{
    struct tmp_db t;
    tmp_db_make(&t);
    struct sw_error err = {0};
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    struct sw_evaluation ev = sample_eval("p", 1);
    for (int i = 0; i < 999; i++)
        SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM evaluations"), 0);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM evaluations"), 1000);
    /* the count restarts after each commit */
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM evaluations"), 1000);
    sw_journal_close(j);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM evaluations"), 1001);
    tmp_db_remove(&t);
}

/* A child records an intent, buffers evaluations and dies by SIGKILL: the intent must be
 * there and pending after a reopen; the evaluations buffered after it are lost, which is
 * the documented price of buffering (the runtime flushes per tick). */
SW_TEST(intent_survives_kill_9_and_unflushed_evals_do_not)
{
    struct tmp_db t;
    tmp_db_make(&t);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    SW_ASSERT(pid >= 0);
    if (pid == 0) {
        struct sw_journal *j = sw_journal_open(t.path, NULL);
        if (j == NULL)
            _exit(10);
        struct sw_evaluation ev = sample_eval("autoscale", 100);
        for (int i = 0; i < 3; i++)
            if (sw_journal_eval_record(j, &ev, NULL) != 0)
                _exit(11);
        if (sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "acq-crash", "web", "eu", NULL,
                                    "scale out", 200, NULL, NULL) != 0)
            _exit(12);
        if (sw_journal_intent_set_market_id(j, "acq-crash", "dseq-5", 250, NULL) != 0)
            _exit(13);
        /* the last durable write before the kill is a begin: it must stand on its own */
        if (sw_journal_intent_begin(j, SW_ACTION_RELEASE, "rel-crash", "web", "eu", "u-1",
                                    "scale in", 260, NULL, NULL) != 0)
            _exit(17);
        for (int i = 0; i < 5; i++)
            if (sw_journal_eval_record(j, &ev, NULL) != 0)
                _exit(14);
        if (sw_journal_event(j, 300, "lost.event", NULL) != 0)
            _exit(15);
        raise(SIGKILL);
        _exit(16);
    }
    int status = 0;
    SW_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status))
        SW_FAIL_AT("child exited with %d instead of dying by SIGKILL", WEXITSTATUS(status));
    SW_ASSERT(WIFSIGNALED(status));
    SW_ASSERT_EQ(WTERMSIG(status), SIGKILL);

    struct sw_error err = {0};
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    struct sw_intent *pending = NULL;
    size_t count = 0;
    SW_ASSERT_EQ(sw_journal_intents_pending(j, &pending, &count, &err), 0);
    SW_ASSERT_EQ(count, 2);
    SW_ASSERT_STREQ(pending[0].key, "acq-crash");
    SW_ASSERT_STREQ(pending[0].market_id, "dseq-5");
    SW_ASSERT_EQ(pending[0].state, SW_INTENT_PENDING);
    SW_ASSERT_STREQ(pending[1].key, "rel-crash");
    SW_ASSERT_STREQ(pending[1].unit_key, "u-1");
    for (size_t i = 0; i < count; i++)
        sw_intent_clear(&pending[i]);
    free(pending);
    /* 3 evaluations went out with the intent's commit; the 5 after it and the event died
     * with the process */
    SW_ASSERT_EQ(sw_journal_eval_count(j), 3);
    struct sw_event_record *events = NULL;
    SW_ASSERT_EQ(sw_journal_events(j, 0, 0, &events, &count), 0);
    SW_ASSERT_EQ(count, 0);
    sw_journal_close(j);
    tmp_db_remove(&t);
}

/* ---- evaluations as JSON ------------------------------------------------------------- */

SW_TEST(evals_json_fields_filters_and_limit)
{
    struct sw_error err = {0};
    struct sw_journal *j = open_ok(":memory:");
    SW_ASSERT(j != NULL);
    struct sw_evaluation ev = sample_eval("autoscale", 1000);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    struct sw_evaluation bare = {.policy = "autoscale",
                                 .at_ms = 2000,
                                 .desired_json = "{}",
                                 .error = "boom at line 3",
                                 .duration_ms = 0.5};
    SW_ASSERT_EQ(sw_journal_eval_record(j, &bare, &err), 0);
    struct sw_evaluation other = sample_eval("batch", 1500);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &other, &err), 0);
    struct sw_evaluation late = sample_eval("autoscale", 9000);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &late, &err), 0);

    char *text = sw_journal_evals_json(j, "autoscale", 0, 5000, 0, &err);
    SW_ASSERT(text != NULL);
    cJSON *arr = cJSON_Parse(text);
    free(text);
    SW_ASSERT(cJSON_IsArray(arr));
    SW_ASSERT_EQ(cJSON_GetArraySize(arr), 2);
    cJSON *first = cJSON_GetArrayItem(arr, 0);
    SW_ASSERT_EQ(cJSON_GetObjectItem(first, "id")->valuedouble, 1);
    SW_ASSERT_STREQ(cJSON_GetObjectItem(first, "policy")->valuestring, "autoscale");
    SW_ASSERT_EQ(cJSON_GetObjectItem(first, "at_ms")->valuedouble, 1000);
    SW_ASSERT_STREQ(cJSON_GetObjectItem(first, "inputs_digest")->valuestring, "ab12cd34");
    cJSON *inputs = cJSON_GetObjectItem(first, "inputs");
    SW_ASSERT(cJSON_IsObject(inputs));
    SW_ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(inputs, "metrics"), "rps")->valueint, 120);
    cJSON *desired = cJSON_GetObjectItem(first, "desired");
    SW_ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(desired, "web"), "eu-west")->valueint, 3);
    SW_ASSERT(cJSON_IsArray(cJSON_GetObjectItem(first, "actions")));
    SW_ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(first, "actions")), 1);
    SW_ASSERT(cJSON_IsArray(cJSON_GetObjectItem(first, "refused")));
    SW_ASSERT_STREQ(cJSON_GetArrayItem(cJSON_GetObjectItem(first, "explain"), 0)->valuestring,
                    "rps above target");
    SW_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(first, "error")));
    SW_ASSERT_NEAR(cJSON_GetObjectItem(first, "duration_ms")->valuedouble, 1.25, 1e-9);

    cJSON *second = cJSON_GetArrayItem(arr, 1);
    SW_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(second, "inputs")));
    SW_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(second, "inputs_digest")));
    SW_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(second, "actions")));
    SW_ASSERT(cJSON_IsObject(cJSON_GetObjectItem(second, "desired")));
    SW_ASSERT_STREQ(cJSON_GetObjectItem(second, "error")->valuestring, "boom at line 3");
    cJSON_Delete(arr);

    /* all policies, ordered by time, and the limit */
    text = sw_journal_evals_json(j, NULL, 0, INT64_MAX, 0, &err);
    arr = cJSON_Parse(text);
    free(text);
    SW_ASSERT_EQ(cJSON_GetArraySize(arr), 4);
    SW_ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 1), "at_ms")->valuedouble, 1500);
    SW_ASSERT_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 1), "policy")->valuestring,
                    "batch");
    cJSON_Delete(arr);
    text = sw_journal_evals_json(j, NULL, 0, INT64_MAX, 2, &err);
    arr = cJSON_Parse(text);
    free(text);
    SW_ASSERT_EQ(cJSON_GetArraySize(arr), 2);
    cJSON_Delete(arr);
    text = sw_journal_evals_json(j, "nobody", 0, INT64_MAX, 0, &err);
    SW_ASSERT_STREQ(text, "[]");
    free(text);

    SW_ASSERT_EQ(sw_journal_eval_count(j), 4);
    struct sw_evaluation nameless = {.at_ms = 1};
    SW_ASSERT_EQ(sw_journal_eval_record(j, &nameless, &err), SW_EINVAL);
    SW_ASSERT_EQ(sw_journal_eval_count(j), 4);
    sw_journal_close(j);
}

/* ---- kv, events, state, meta --------------------------------------------------------- */

SW_TEST(kv_get_set_del)
{
    struct sw_journal *j = open_ok(":memory:");
    SW_ASSERT(j != NULL);
    char *value = (char *)"sentinel";
    SW_ASSERT_EQ(sw_journal_kv_get(j, "akash", "lease", &value), SW_ENOENT);
    SW_ASSERT(value == NULL);
    SW_ASSERT_EQ(sw_journal_kv_set(j, "akash", "lease", "one"), 0);
    SW_ASSERT_EQ(sw_journal_kv_set(j, "other", "lease", "separate"), 0);
    SW_ASSERT_EQ(sw_journal_kv_get(j, "akash", "lease", &value), 0);
    SW_ASSERT_STREQ(value, "one");
    free(value);
    SW_ASSERT_EQ(sw_journal_kv_set(j, "akash", "lease", "two"), 0);
    SW_ASSERT_EQ(sw_journal_kv_get(j, "akash", "lease", &value), 0);
    SW_ASSERT_STREQ(value, "two");
    free(value);
    SW_ASSERT_EQ(sw_journal_kv_del(j, "akash", "lease"), 0);
    SW_ASSERT_EQ(sw_journal_kv_get(j, "akash", "lease", &value), SW_ENOENT);
    SW_ASSERT_EQ(sw_journal_kv_del(j, "akash", "lease"), SW_ENOENT);
    /* the other namespace is untouched */
    SW_ASSERT_EQ(sw_journal_kv_get(j, "other", "lease", &value), 0);
    SW_ASSERT_STREQ(value, "separate");
    free(value);
    SW_ASSERT_EQ(sw_journal_kv_set(j, "akash", NULL, "x"), SW_EINVAL);
    sw_journal_close(j);
}

SW_TEST(events_page_by_after_id)
{
    struct sw_journal *j = open_ok(":memory:");
    SW_ASSERT(j != NULL);
    for (int i = 0; i < 25; i++) {
        char data[32];
        snprintf(data, sizeof(data), "{\"n\":%d}", i);
        SW_ASSERT_EQ(
            sw_journal_event(j, 1000 + i, i % 2 ? "unit.ready" : "unit.lost", i == 3 ? NULL : data),
            0);
    }
    int64_t after = 0;
    int seen = 0;
    size_t pages = 0;
    for (;;) {
        struct sw_event_record *events = NULL;
        size_t count = 0;
        SW_ASSERT_EQ(sw_journal_events(j, after, 10, &events, &count), 0);
        if (count == 0) {
            SW_ASSERT(events == NULL);
            break;
        }
        pages++;
        SW_ASSERT(count <= 10);
        for (size_t i = 0; i < count; i++) {
            SW_ASSERT(events[i].id > after);
            after = events[i].id;
            SW_ASSERT_EQ(events[i].at_ms, 1000 + seen);
            SW_ASSERT_STREQ(events[i].type, seen % 2 ? "unit.ready" : "unit.lost");
            if (seen == 3) {
                SW_ASSERT(events[i].data_json == NULL);
            } else {
                char data[32];
                snprintf(data, sizeof(data), "{\"n\":%d}", seen);
                SW_ASSERT_STREQ(events[i].data_json, data);
            }
            seen++;
        }
        sw_journal_events_free(events, count);
    }
    SW_ASSERT_EQ(seen, 25);
    SW_ASSERT_EQ(pages, 3);
    SW_ASSERT_EQ(sw_journal_event(j, 1, NULL, "{}"), SW_EINVAL);
    sw_journal_close(j);
}

SW_TEST(policy_state_get_set)
{
    struct sw_error err = {0};
    struct sw_journal *j = open_ok(":memory:");
    SW_ASSERT(j != NULL);
    char *value = (char *)"sentinel";
    SW_ASSERT_EQ(sw_journal_state_get(j, "autoscale", &value, &err), 0);
    SW_ASSERT(value == NULL);
    SW_ASSERT_EQ(sw_journal_state_set(j, "autoscale", "{\"last\":1}", &err), 0);
    SW_ASSERT_EQ(sw_journal_state_set(j, "batch", "{\"q\":[]}", &err), 0);
    SW_ASSERT_EQ(sw_journal_state_set(j, "autoscale", "{\"last\":2}", &err), 0);
    SW_ASSERT_EQ(sw_journal_state_get(j, "autoscale", &value, &err), 0);
    SW_ASSERT_STREQ(value, "{\"last\":2}");
    free(value);
    SW_ASSERT_EQ(sw_journal_state_get(j, "batch", &value, &err), 0);
    SW_ASSERT_STREQ(value, "{\"q\":[]}");
    free(value);
    SW_ASSERT_EQ(sw_journal_state_set(j, "autoscale", NULL, &err), SW_EINVAL);
    sw_journal_close(j);
}

SW_TEST(meta_get_set)
{
    struct sw_journal *j = open_ok(":memory:");
    SW_ASSERT(j != NULL);
    char *value = NULL;
    SW_ASSERT_EQ(sw_journal_meta_get(j, "seed", &value), SW_ENOENT);
    SW_ASSERT_EQ(sw_journal_meta_set(j, "seed", "12345"), 0);
    SW_ASSERT_EQ(sw_journal_meta_set(j, "instance_id", "st-1"), 0);
    SW_ASSERT_EQ(sw_journal_meta_set(j, "seed", "999"), 0);
    SW_ASSERT_EQ(sw_journal_meta_get(j, "seed", &value), 0);
    SW_ASSERT_STREQ(value, "999");
    free(value);
    SW_ASSERT_EQ(sw_journal_meta_get(j, "instance_id", &value), 0);
    SW_ASSERT_STREQ(value, "st-1");
    free(value);
    sw_journal_close(j);
}

/* A failure inside SQLite becomes SW_ESTORE with its message, also for calls without an
 * err (kept for sw_journal_last_error). Another connection drops a table behind the
 * journal's back, so the cached statements on it fail to re-prepare. */
SW_TEST(store_failure_reports_sqlite_message)
{
    struct tmp_db t;
    tmp_db_make(&t);
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    SW_ASSERT_EQ(raw_exec(t.path, "DROP TABLE kv"), SQLITE_OK);
    char *value = NULL;
    SW_ASSERT_EQ(sw_journal_kv_get(j, "ns", "k", &value), SW_ESTORE);
    SW_ASSERT_CONTAINS(sw_journal_last_error(j), "kv_get");
    SW_ASSERT_CONTAINS(sw_journal_last_error(j), "no such table");
    SW_ASSERT_EQ(sw_journal_kv_set(j, "ns", "k", "v"), SW_ESTORE);
    SW_ASSERT_CONTAINS(sw_journal_last_error(j), "kv_set");
    /* the journal keeps working for everything else */
    struct sw_error err = {0};
    SW_ASSERT_EQ(
        sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "k", "g", "r", NULL, NULL, 1, NULL, &err), 0);
    SW_ASSERT_EQ(sw_journal_intent_count(j, "k"), 1);
    sw_journal_close(j);
    tmp_db_remove(&t);
}

/* ---- coalescing ---------------------------------------------------------------------- */

static int pending_calls;
static void count_pending(void *ud)
{
    (void)ud;
    pending_calls++;
}

/* Under coalescing, durable writes wait for the barrier (one commit for the batch), and
 * the owner hears about the first one only; turning it off commits what waits. */
SW_TEST(coalesced_durable_writes_commit_at_the_barrier)
{
    struct tmp_db t;
    tmp_db_make(&t);
    struct sw_error err = {0};
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    pending_calls = 0;
    sw_journal_set_coalesce(j, count_pending, NULL);
    SW_ASSERT_EQ(sw_journal_barrier(j, &err), 0); /* nothing waiting: a no-op */

    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "c1", "web", "eu", NULL, NULL, 1,
                                         NULL, &err),
                 0);
    struct sw_unit *u = sw_unit_new("c1", "web", "eu");
    SW_ASSERT_EQ(sw_journal_unit_save(j, u, &err), 0);
    SW_ASSERT_EQ(sw_journal_kv_set(j, "market_akash", "dep/1", "{}"), 0);
    SW_ASSERT_EQ(pending_calls, 1);
    /* this connection sees them, another does not yet */
    SW_ASSERT_EQ(sw_journal_intent_count(j, "c1"), 1);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM intents"), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM kv"), 0);
    /* a refused row does not undo the batch */
    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "c1", "web", "eu", NULL, NULL, 2,
                                         NULL, &err),
                 SW_EEXIST);

    SW_ASSERT_EQ(sw_journal_barrier(j, &err), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM intents"), 1);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM units"), 1);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM kv"), 1);

    /* a buffered record alone does not make the barrier commit; a durable one does */
    struct sw_evaluation ev = sample_eval("p", 3);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    SW_ASSERT_EQ(sw_journal_barrier(j, &err), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM evaluations"), 0);
    SW_ASSERT_EQ(sw_journal_intent_finish(j, "c1", SW_INTENT_DONE, "ready", 4, &err), 0);
    SW_ASSERT_EQ(pending_calls, 2);
    SW_ASSERT_EQ(sw_journal_barrier(j, &err), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM evaluations"), 1);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT state FROM intents WHERE key = 'c1'"), SW_INTENT_DONE);

    /* off: what waits commits, and durable writes commit on return again */
    u->state = SW_UNIT_READY;
    SW_ASSERT_EQ(sw_journal_unit_save(j, u, &err), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT state FROM units"), 0);
    sw_journal_set_coalesce(j, NULL, NULL);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT state FROM units"), SW_UNIT_READY);
    SW_ASSERT_EQ(sw_journal_kv_set(j, "market_akash", "dep/2", "{}"), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM kv"), 2);
    SW_ASSERT_EQ(pending_calls, 3); /* the unit save before the switch; none since */
    sw_unit_free(u);
    sw_journal_close(j);
    tmp_db_remove(&t);
}

/* A coalesced write survives a kill -9 once the barrier returned; one made after the last
 * barrier is lost with the process, as if the kill had come just before it. */
SW_TEST(coalesced_write_survives_kill_9_after_the_barrier)
{
    struct tmp_db t;
    tmp_db_make(&t);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    SW_ASSERT(pid >= 0);
    if (pid == 0) {
        struct sw_journal *j = sw_journal_open(t.path, NULL);
        if (j == NULL)
            _exit(10);
        sw_journal_set_coalesce(j, count_pending, NULL);
        if (sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "kept", "web", "eu", NULL, NULL, 1,
                                    NULL, NULL) != 0 ||
            sw_journal_kv_set(j, "ns", "guard", "before the request") != 0)
            _exit(11);
        if (sw_journal_barrier(j, NULL) != 0)
            _exit(12);
        if (sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "lost", "web", "eu", NULL, NULL, 2,
                                    NULL, NULL) != 0)
            _exit(13);
        raise(SIGKILL);
        _exit(14);
    }
    int status = 0;
    SW_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status))
        SW_FAIL_AT("child exited with %d instead of dying by SIGKILL", WEXITSTATUS(status));
    SW_ASSERT_EQ(WTERMSIG(status), SIGKILL);
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    SW_ASSERT_EQ(sw_journal_intent_count(j, "kept"), 1);
    SW_ASSERT_EQ(sw_journal_intent_count(j, "lost"), 0);
    char *value = NULL;
    SW_ASSERT_EQ(sw_journal_kv_get(j, "ns", "guard", &value), 0);
    SW_ASSERT_STREQ(value, "before the request");
    free(value);
    sw_journal_close(j);
    tmp_db_remove(&t);
}

SW_TEST_MAIN()
