/* test_history.c — the journal's evaluation history: inputs split into a shared part stored
 * once (eval_inputs_shared) and read back byte for byte, journals of schema 2 migrating with
 * their rows intact, retention (sw_journal_history_prune) deleting only old evaluations and
 * unreferenced shared parts in bounded batches, and the "history" config key.
 * snapshots: ctx.state snapshots written by a run (first evaluation, then every 10 minutes),
 * replay from any point seeded by them, retention cutting each policy's history at one,
 * journals of schema 3 migrating.
 */
#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "journal.h"
#include "mem.h"
#include "replay.h"
#include "sim.h"
#include "sw_test.h"
#include "sw_test_db.h"

/* ---- helpers ------------------------------------------------------------------------- */

static void tmp_db_make(struct tmp_db *t)
{
    tmp_db_make_named(t, "sw_history");
}

static struct sw_journal *open_ok(const char *path)
{
    struct sw_error err = {0};
    struct sw_journal *j = sw_journal_open(path, &err);
    if (j == NULL)
        fprintf(stderr, "    open %s: %s\n", path, err.msg);
    return j;
}

/* Inputs shaped as the runtime writes them: now_ms, then the units and offers (the shared
 * part, with the comma before it), then metrics that change every tick. */
struct inputs {
    char *text;
    size_t shared_at, shared_len;
};

static struct inputs make_inputs(int64_t now_ms, int units_version, int unit_count)
{
    struct inputs in = {0};
    char *head = sw_xasprintf("{\"now_ms\":%lld", (long long)now_ms);
    char *shared = sw_xstrdup(",\"units\":[");
    for (int i = 0; i < unit_count; i++) {
        char *more = sw_xasprintf("%s%s{\"key\":\"u-%d\",\"group\":\"web\",\"region\":\"eu\","
                                  "\"price_usd_hour\":0.%d,\"state\":\"ready\"}",
                                  shared, i > 0 ? "," : "", i, 41 + units_version);
        free(shared);
        shared = more;
    }
    char *more = sw_xasprintf("%s],\"offers\":[{\"provider\":\"p1\",\"region\":\"eu\","
                              "\"price_usd_hour\":0.5,\"audited\":true}]",
                              shared);
    free(shared);
    shared = more;
    char *tail = sw_xasprintf(",\"metrics\":{\"rps\":{\"at_ms\":%lld,\"samples\":[{\"labels\":{},"
                              "\"value\":%lld}]}},\"budget_usd_hour\":10,\"spend_usd_hour\":1}",
                              (long long)now_ms, (long long)(now_ms % 997));
    in.text = sw_xasprintf("%s%s%s", head, shared, tail);
    in.shared_at = strlen(head);
    in.shared_len = strlen(shared);
    free(head);
    free(shared);
    free(tail);
    return in;
}

static struct sw_evaluation eval_of(const struct inputs *in, int64_t at_ms)
{
    return (struct sw_evaluation){
        .policy = "autoscale",
        .at_ms = at_ms,
        .inputs_digest = "0123456789abcdef",
        .inputs_json = in->text,
        .desired_json = "{\"policy\":{\"web\":{\"eu\":2}},\"effective\":{\"web\":{\"eu\":2}}}",
        .actions_json = "[]",
        .refused_json = "[]",
        .explain_json = "[]",
        .duration_ms = 0.5,
        .inputs_shared_at = in->shared_at,
        .inputs_shared_len = in->shared_len,
    };
}

/* A fresh journal in t with the evaluation of in at at_ms recorded; open, owned by the
 * caller. */
static struct sw_journal *journal_with(struct tmp_db *t, const struct inputs *in, int64_t at_ms)
{
    tmp_db_make(t);
    struct sw_journal *j = open_ok(t->path);
    SW_ASSERT(j != NULL);
    struct sw_error err = {0};
    struct sw_evaluation ev = eval_of(in, at_ms);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    return j;
}

/* The inputs of row id, owned (or NULL). */
static char *inputs_of(struct sw_journal *j, int64_t id)
{
    char *text = NULL;
    struct sw_error err = {0};
    if (sw_journal_eval_inputs(j, id, &text, &err) < 0)
        fprintf(stderr, "    eval_inputs %lld: %s\n", (long long)id, err.msg);
    return text;
}

/* The id of the newest row (ids of deleted rows at the end are used again). */
static int64_t last_id(struct sw_journal *j, const char *path)
{
    struct sw_error err = {0};
    if (sw_journal_flush(j, &err) < 0)
        fprintf(stderr, "    flush: %s\n", err.msg);
    return raw_int(path, "SELECT max(id) FROM evaluations");
}

/* ---- split inputs -------------------------------------------------------------------- */

SW_TEST(split_inputs_read_back_byte_identical_and_shared_part_stored_once)
{
    struct tmp_db t;
    tmp_db_make(&t);
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    struct sw_error err = {0};
    char *written[6];
    for (int i = 0; i < 6; i++) {
        /* rows 1-4 share their units, rows 5 and 6 have a changed unit */
        struct inputs in = make_inputs(1000 + i * 10, i < 4 ? 0 : 1, 3);
        struct sw_evaluation ev = eval_of(&in, 1000 + i * 10);
        SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
        written[i] = in.text;
    }
    /* Visible before the flush (buffered), identical byte for byte. */
    for (int i = 0; i < 6; i++) {
        char *back = inputs_of(j, i + 1);
        SW_ASSERT(back != NULL);
        SW_ASSERT_STREQ(back, written[i]);
        free(back);
    }
    SW_ASSERT_EQ(sw_journal_flush(j, &err), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM eval_inputs_shared"), 2);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM eval_inputs"), 6);
    /* The rows hold the rest only: no units in them, inputs_json left NULL. */
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM eval_inputs WHERE rest LIKE '%\"units\"%'"),
                 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM evaluations WHERE inputs_json IS NULL"), 6);

    /* evals_json returns the same document (cJSON prints it back to the same bytes). */
    char *all = sw_journal_evals_json(j, NULL, 0, INT64_MAX, 0, &err);
    SW_ASSERT(all != NULL);
    cJSON *arr = cJSON_Parse(all);
    free(all);
    SW_ASSERT_EQ(cJSON_GetArraySize(arr), 6);
    for (int i = 0; i < 6; i++) {
        char *printed = cJSON_PrintUnformatted(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, i), "inputs"));
        SW_ASSERT_STREQ(printed, written[i]);
        cJSON_free(printed);
    }
    cJSON_Delete(arr);

    /* After a restart (no in-memory last part) the same units are found by digest. */
    sw_journal_close(j);
    j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    struct inputs in = make_inputs(2000, 1, 3);
    struct sw_evaluation ev = eval_of(&in, 2000);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    SW_ASSERT_EQ(sw_journal_flush(j, &err), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM eval_inputs_shared"), 2);
    char *back = inputs_of(j, 7);
    SW_ASSERT_STREQ(back, in.text);
    free(back);
    free(in.text);
    for (int i = 0; i < 6; i++)
        free(written[i]);
    sw_journal_close(j);
    tmp_db_remove(&t);
}

SW_TEST(unsplit_and_missing_inputs)
{
    struct tmp_db t;
    tmp_db_make(&t);
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    struct sw_error err = {0};
    /* No split given: stored whole, as before. */
    struct inputs in = make_inputs(1000, 0, 2);
    struct sw_evaluation ev = eval_of(&in, 1000);
    ev.inputs_shared_len = 0;
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    /* No inputs at all (skip_inputs, override passes). */
    ev = eval_of(&in, 1001);
    ev.inputs_json = NULL;
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    /* A split outside the text is a caller's error, not a truncated record. */
    ev = eval_of(&in, 1002);
    ev.inputs_shared_len = strlen(in.text);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), SW_EINVAL);
    SW_ASSERT_EQ(sw_journal_flush(j, &err), 0);
    SW_ASSERT_EQ(sw_journal_eval_count(j), 2);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM eval_inputs_shared"), 0);
    char *back = inputs_of(j, 1);
    SW_ASSERT_STREQ(back, in.text);
    free(back);
    back = (char *)"x";
    SW_ASSERT_EQ(sw_journal_eval_inputs(j, 2, &back, &err), 0);
    SW_ASSERT(back == NULL);
    SW_ASSERT_EQ(sw_journal_eval_inputs(j, 99, &back, &err), SW_ENOENT);

    /* A shared part whose row is gone reads as "no inputs", never as a partial text. */
    ev = eval_of(&in, 1003);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    SW_ASSERT_EQ(sw_journal_flush(j, &err), 0);
    sw_journal_close(j);
    SW_ASSERT_EQ(raw_exec(t.path, "DELETE FROM eval_inputs_shared"), SQLITE_OK);
    j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    SW_ASSERT_EQ(sw_journal_eval_inputs(j, 3, &back, &err), 0);
    SW_ASSERT(back == NULL);
    char *all = sw_journal_evals_json(j, NULL, 1003, 1003, 0, &err);
    SW_ASSERT_CONTAINS(all, "\"inputs\":null");
    free(all);
    free(in.text);
    sw_journal_close(j);
    tmp_db_remove(&t);
}

SW_TEST(digest_collision_stores_inputs_whole)
{
    struct tmp_db t;
    struct sw_error err = {0};
    struct inputs in = make_inputs(1000, 0, 2);
    struct sw_journal *j = journal_with(&t, &in, 1000);
    struct sw_evaluation ev;
    sw_journal_close(j);
    /* Another text now holds the digest of these units and offers (the first row's inputs
     * are spoilt by it; only the second row is read back). */
    SW_ASSERT_EQ(raw_exec(t.path, "UPDATE eval_inputs_shared SET json = ',\"units\":[]'"),
                 SQLITE_OK);
    j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    ev = eval_of(&in, 2000);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    SW_ASSERT_EQ(sw_journal_flush(j, &err), 0);
    char *back = inputs_of(j, 2);
    SW_ASSERT_STREQ(back, in.text);
    free(back);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM eval_inputs"), 1);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM eval_inputs_shared"), 1);
    free(in.text);
    sw_journal_close(j);
    tmp_db_remove(&t);
}

/* ---- migration from schema 2 --------------------------------------------------------- */

SW_TEST(schema_2_journal_migrates_and_old_rows_read_back)
{
    struct tmp_db t;
    tmp_db_make(&t);
    /* Schema 2 as released: a current file with version 3's and 4's objects removed. */
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    sw_journal_close(j);
    SW_ASSERT_EQ(raw_exec(t.path, "DROP TABLE eval_inputs; DROP TABLE eval_inputs_shared;"
                                  " DROP INDEX evaluations_at; DROP TABLE eval_snapshots;"
                                  " PRAGMA user_version = 2;"),
                 SQLITE_OK);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM sqlite_master WHERE name IN ('eval_inputs',"
                                 " 'eval_inputs_shared', 'evaluations_at')"),
                 0);
    /* Rows as version 2 wrote them: inputs inline. */
    struct inputs old[3];
    for (int i = 0; i < 3; i++) {
        old[i] = make_inputs(500 + i, 0, 3);
        char *sql = sw_xasprintf(
            "INSERT INTO evaluations (policy, at_ms, inputs_digest, inputs_json, desired_json,"
            " actions_json, refused_json, explain_json, duration_ms) VALUES ('autoscale', %d,"
            " 'd%d', '%s', '{\"policy\":{}}', '[]', '[]', '[]', 0.25)",
            500 + i, i, old[i].text);
        SW_ASSERT_EQ(raw_exec(t.path, sql), SQLITE_OK);
        free(sql);
    }
    j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    SW_ASSERT_EQ(raw_int(t.path, "PRAGMA user_version"), 4);
    for (int i = 0; i < 3; i++) {
        char *back = inputs_of(j, i + 1);
        SW_ASSERT_STREQ(back, old[i].text);
        free(back);
    }
    /* New rows, split, next to the old ones; the same units as the old rows are stored
     * once more (old rows keep theirs inline) and every row reads back. */
    struct sw_error err = {0};
    struct inputs in = make_inputs(600, 0, 3);
    struct sw_evaluation ev = eval_of(&in, 600);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    SW_ASSERT_EQ(sw_journal_flush(j, &err), 0);
    char *all = sw_journal_evals_json(j, NULL, 0, INT64_MAX, 0, &err);
    cJSON *arr = cJSON_Parse(all);
    free(all);
    SW_ASSERT_EQ(cJSON_GetArraySize(arr), 4);
    for (int i = 0; i < 4; i++) {
        char *printed = cJSON_PrintUnformatted(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, i), "inputs"));
        SW_ASSERT_STREQ(printed, i < 3 ? old[i].text : in.text);
        cJSON_free(printed);
    }
    cJSON_Delete(arr);
    for (int i = 0; i < 3; i++)
        free(old[i].text);
    free(in.text);
    sw_journal_close(j);
    tmp_db_remove(&t);
}

/* ---- retention ----------------------------------------------------------------------- */

static int64_t table_count(const char *path, const char *table)
{
    char *sql = sw_xasprintf("SELECT count(*) FROM %s", table);
    int64_t n = raw_int(path, sql);
    free(sql);
    return n;
}

SW_TEST(prune_deletes_old_evaluations_in_batches_and_nothing_else)
{
    struct tmp_db t;
    tmp_db_make(&t);
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    struct sw_error err = {0};
    /* Every other table gets a row. */
    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "k1", "web", "eu", NULL, "r", 1,
                                         NULL, &err),
                 0);
    SW_ASSERT_EQ(sw_journal_intent_begin(j, SW_ACTION_ACQUIRE, "k2", "web", "eu", NULL, "r", 1,
                                         NULL, &err),
                 0);
    SW_ASSERT_EQ(sw_journal_intent_finish(j, "k2", SW_INTENT_DONE, "ok", 2, &err), 0);
    struct sw_unit *u = sw_unit_new("k1", "web", "eu");
    u->state = SW_UNIT_CLOSED;
    SW_ASSERT_EQ(sw_journal_unit_save(j, u, &err), 0);
    sw_unit_free(u);
    SW_ASSERT_EQ(sw_journal_event(j, 1, "unit_lost", "{}"), 0);
    SW_ASSERT_EQ(sw_journal_kv_set(j, "market_sim", "k", "v"), 0);
    SW_ASSERT_EQ(sw_journal_state_set(j, "autoscale", "{\"n\":1}", &err), 0);
    SW_ASSERT_EQ(sw_journal_meta_set(j, "seed", "1"), 0);
    struct sw_provider_row row = {.provider = "p1", .bids = 2};
    SW_ASSERT_EQ(sw_journal_provider_save(j, &row, &err), 0);

    /* 10 evaluations at 1000..10000: units version 0 up to 4000, 1 up to 8000, 2 after. */
    for (int i = 1; i <= 10; i++) {
        struct inputs in = make_inputs(i * 1000, i <= 4 ? 0 : i <= 8 ? 1 : 2, 3);
        struct sw_evaluation ev = eval_of(&in, i * 1000);
        SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
        free(in.text);
    }
    /* An old row without inputs is deleted like the others. */
    struct inputs in = make_inputs(500, 0, 3);
    struct sw_evaluation ev = eval_of(&in, 500);
    ev.inputs_json = NULL;
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    free(in.text);
    SW_ASSERT_EQ(sw_journal_flush(j, &err), 0);
    SW_ASSERT_EQ(table_count(t.path, "eval_inputs_shared"), 3);
    struct sw_history_span span;
    SW_ASSERT_EQ(sw_journal_history_span(j, &span, &err), 0);
    SW_ASSERT(span.any);
    SW_ASSERT_EQ(span.oldest_ms, 500);
    SW_ASSERT_EQ(span.newest_ms, 10000);
    SW_ASSERT_EQ(span.pruned_before_ms, 0);

    const char *others[] = {"intents", "units", "events", "kv", "policy_state", "meta",
                            "provider_stats"};
    int64_t before[SW_ARRAY_LEN(others)];
    for (size_t i = 0; i < SW_ARRAY_LEN(others); i++)
        before[i] = table_count(t.path, others[i]);

    /* Keep from 6000 on: rows 500, 1000..5000 (6) go, 2 per call. */
    bool more = false;
    int64_t count = sw_journal_eval_count(j);
    int calls = 0;
    do {
        SW_ASSERT_EQ(sw_journal_history_prune(j, 6000, 2, &more, &err), 0);
        int64_t now = sw_journal_eval_count(j);
        SW_ASSERT(count - now <= 2); /* the batch bound */
        count = now;
        calls++;
        SW_ASSERT(calls < 10);
    } while (more);
    SW_ASSERT_EQ(sw_journal_eval_count(j), 5);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT min(at_ms) FROM evaluations"), 6000);
    /* Version 0 is used by no row any more; 1 (6000-8000) and 2 are. */
    SW_ASSERT_EQ(table_count(t.path, "eval_inputs_shared"), 2);
    SW_ASSERT_EQ(table_count(t.path, "eval_inputs"), 5);
    for (size_t i = 0; i < SW_ARRAY_LEN(others); i++) {
        int64_t expected = before[i] + (strcmp(others[i], "meta") == 0 ? 1 : 0); /* the mark */
        SW_ASSERT_EQ(table_count(t.path, others[i]), expected);
    }
    /* The remaining rows read back whole. */
    for (int i = 6; i <= 10; i++) {
        struct inputs want = make_inputs(i * 1000, i <= 8 ? 1 : 2, 3);
        char *back = inputs_of(j, i);
        SW_ASSERT_STREQ(back, want.text);
        free(back);
        free(want.text);
    }
    SW_ASSERT_EQ(sw_journal_history_span(j, &span, &err), 0);
    SW_ASSERT_EQ(span.oldest_ms, 6000);
    SW_ASSERT_EQ(span.pruned_before_ms, 6000);

    /* The in-memory last part (version 2) may have been deleted under it: a later write of
     * version 0's units stores them again, a write of version 2 reuses its row. */
    SW_ASSERT_EQ(sw_journal_history_prune(j, 9500, 100, &more, &err), 0);
    SW_ASSERT(!more);
    SW_ASSERT_EQ(table_count(t.path, "eval_inputs_shared"), 1);
    in = make_inputs(11000, 0, 3);
    ev = eval_of(&in, 11000);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    char *back = inputs_of(j, last_id(j, t.path));
    SW_ASSERT_STREQ(back, in.text);
    free(back);
    free(in.text);
    SW_ASSERT_EQ(sw_journal_flush(j, &err), 0);
    SW_ASSERT_EQ(table_count(t.path, "eval_inputs_shared"), 2);
    /* A prune that deletes nothing keeps the mark where it was (9500, not lowered). */
    SW_ASSERT_EQ(sw_journal_history_prune(j, 100, 100, &more, &err), 0);
    SW_ASSERT_EQ(sw_journal_history_span(j, &span, &err), 0);
    SW_ASSERT_EQ(span.pruned_before_ms, 9500);
    SW_ASSERT_EQ(sw_journal_history_prune(j, 100, 0, &more, &err), SW_EINVAL);
    sw_journal_close(j);
    tmp_db_remove(&t);
}

SW_TEST(prune_after_a_shared_row_was_deleted_under_the_cache)
{
    /* The last shared part is remembered in memory; once retention deletes its row, a tick
     * with the same units must insert it again rather than reference a deleted row. */
    struct tmp_db t;
    struct sw_error err = {0};
    struct inputs in = make_inputs(1000, 0, 3);
    struct sw_journal *j = journal_with(&t, &in, 1000);
    struct sw_evaluation ev;
    bool more = true;
    SW_ASSERT_EQ(sw_journal_history_prune(j, 5000, 10, &more, &err), 0);
    SW_ASSERT(!more);
    SW_ASSERT_EQ(table_count(t.path, "eval_inputs_shared"), 0);
    ev = eval_of(&in, 6000);
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    char *back = inputs_of(j, last_id(j, t.path));
    SW_ASSERT_STREQ(back, in.text);
    free(back);
    free(in.text);
    sw_journal_close(j);
    SW_ASSERT_EQ(table_count(t.path, "eval_inputs_shared"), 1);
    tmp_db_remove(&t);
}

/* ---- config -------------------------------------------------------------------------- */

static struct sw_config *parse_history(const char *history, struct sw_error *err)
{
    char *text = sw_xasprintf("{\"market\": \"sim\", \"groups\": {\"web\": {\"max\": 3}}%s%s}",
                              history != NULL ? ", \"history\": " : "",
                              history != NULL ? history : "");
    struct sw_config *c = sw_config_parse(text, strlen(text), "/etc/steward.jsonc", err);
    free(text);
    return c;
}

static int64_t keep_of(const char *history)
{
    struct sw_error err = {0};
    struct sw_config *c = parse_history(history, &err);
    if (c == NULL) {
        fprintf(stderr, "    %s: %s\n", history, err.msg);
        return -1;
    }
    int64_t keep = c->history_keep_ms;
    sw_config_free(c);
    return keep;
}

static void expect_history_error(const char *history, const char *want)
{
    struct sw_error err = {0};
    struct sw_config *c = parse_history(history, &err);
    if (c != NULL || strcmp(err.msg, want) != 0)
        fprintf(stderr, "    %s\n    got:  %s\n    want: %s\n", history, err.msg, want);
    SW_ASSERT(c == NULL);
    SW_ASSERT_EQ(err.code, SW_ECONFIG);
    SW_ASSERT_STREQ(err.msg, want);
}

SW_TEST(config_history_keep)
{
    SW_ASSERT_EQ(keep_of(NULL), 7 * 86400000LL);
    SW_ASSERT_EQ(keep_of("{}"), 7 * 86400000LL);
    SW_ASSERT_EQ(keep_of("{\"keep\": \"30d\"}"), 30 * 86400000LL);
    SW_ASSERT_EQ(keep_of("{\"keep\": \"12h\"}"), 12 * 3600000LL);
    SW_ASSERT_EQ(keep_of("{\"keep\": 3600}"), 3600000);
    SW_ASSERT_EQ(keep_of("{\"keep\": \"forever\"}"), 0);
    SW_ASSERT_EQ(keep_of("{\"keep\": 0}"), 0);
    SW_ASSERT_EQ(keep_of("{\"keep\": \"0s\"}"), 0);
    expect_history_error("\"7d\"",
                         "/etc/steward.jsonc:history: expected object, got string \"7d\"");
    expect_history_error("{\"keep\": true}", "/etc/steward.jsonc:history.keep: expected duration "
                                             "like \"7d\" (at least 1s), 0 or \"forever\", got "
                                             "true");
    expect_history_error("{\"keep\": -1}", "/etc/steward.jsonc:history.keep: expected duration "
                                           "like \"7d\" (at least 1s), 0 or \"forever\", got "
                                           "-1");
    expect_history_error("{\"keep\": \"7 days\"}",
                         "/etc/steward.jsonc:history.keep: expected duration like \"7d\" (at "
                         "least 1s), 0 or \"forever\", got string \"7 days\"");
    expect_history_error("{\"keep\": \"500ms\"}",
                         "/etc/steward.jsonc:history.keep: expected duration like \"7d\" (at "
                         "least 1s), 0 or \"forever\", got string \"500ms\"");
    expect_history_error("{\"kep\": \"7d\"}",
                         "/etc/steward.jsonc:history: unknown key 'kep' (known: keep)");
}

/* ---- snapshots ----------------------------------------------------------------------- */

#define SNAPSHOT_EVERY_MS (10 * 60 * 1000) /* runtime.c */

SW_TEST(schema_3_journal_migrates_to_snapshots)
{
    struct tmp_db t;
    struct sw_error err = {0};
    struct inputs in = make_inputs(1000, 0, 3);
    struct sw_journal *j = journal_with(&t, &in, 1000);
    struct sw_evaluation ev;
    sw_journal_close(j);
    /* Schema 3 as released: the current file without version 4's objects. */
    SW_ASSERT_EQ(raw_exec(t.path, "DROP TABLE eval_snapshots; PRAGMA user_version = 3;"),
                 SQLITE_OK);
    j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    SW_ASSERT_EQ(raw_int(t.path, "PRAGMA user_version"), 4);
    SW_ASSERT_EQ(table_count(t.path, "eval_snapshots"), 0);
    char *back = inputs_of(j, 1);
    SW_ASSERT_STREQ(back, in.text);
    free(back);
    ev = eval_of(&in, 2000);
    ev.snapshot_json = "{\"n\":1}";
    SW_ASSERT_EQ(sw_journal_eval_record(j, &ev, &err), 0);
    sw_journal_close(j);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT eval_id FROM eval_snapshots WHERE at_ms = 2000"), 2);
    /* The step runs again on a journal whose version was set back by hand. */
    SW_ASSERT_EQ(raw_exec(t.path, "PRAGMA user_version = 3;"), SQLITE_OK);
    j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    SW_ASSERT_EQ(raw_int(t.path, "PRAGMA user_version"), 4);
    SW_ASSERT_EQ(table_count(t.path, "eval_snapshots"), 1);
    sw_journal_close(j);
    free(in.text);
    tmp_db_remove(&t);
}

/* Records an evaluation of policy at at_ms, with a snapshot when state is not NULL; its id. */
static int64_t record(struct sw_journal *j, const char *path, const char *policy, int64_t at_ms,
                      const char *state)
{
    struct inputs in = make_inputs(at_ms, (int)(at_ms / 100000), 2);
    struct sw_evaluation ev = eval_of(&in, at_ms);
    ev.policy = policy;
    ev.snapshot_json = state;
    struct sw_error err = {0};
    int rc = sw_journal_eval_record(j, &ev, &err);
    free(in.text);
    sw_journal_flush(j, &err);
    return rc == 0 ? last_id(j, path) : -1;
}

SW_TEST(snapshot_find_and_prune_per_policy_at_a_snapshot)
{
    struct tmp_db t;
    tmp_db_make(&t);
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    struct sw_error err = {0};
    /* "a": one evaluation a second over 0..59 s, snapshots after 0, 20 and 40 s; "b" (a
     * history written before snapshots): every 2 s, none. */
    int64_t snap_id[3] = {0};
    for (int s = 0; s < 60; s++) {
        static const char *const states[] = {"{\"s\":0}", "{\"s\":20}", "{\"s\":40}"};
        const char *state = s % 20 == 0 ? states[s / 20] : NULL;
        int64_t id = record(j, t.path, "a", s * 1000, state);
        SW_ASSERT(id > 0);
        if (state != NULL)
            snap_id[s / 20] = id;
        if (s % 2 == 0)
            SW_ASSERT(record(j, t.path, "b", s * 1000 + 1, NULL) > 0);
    }
    SW_ASSERT_EQ(table_count(t.path, "eval_snapshots"), 3);
    /* The latest at or before a point, in journal order. */
    struct sw_snapshot snap;
    SW_ASSERT_EQ(sw_journal_snapshot_find(j, "a", 39000, INT64_MAX, &snap, &err), 0);
    SW_ASSERT_EQ(snap.eval_id, snap_id[1]);
    SW_ASSERT_EQ(snap.at_ms, 20000);
    SW_ASSERT_STREQ(snap.state_json, "{\"s\":20}");
    sw_snapshot_clear(&snap);
    SW_ASSERT_EQ(sw_journal_snapshot_find(j, "a", 40000, snap_id[2], &snap, &err), 0);
    SW_ASSERT_EQ(snap.eval_id, snap_id[2]);
    sw_snapshot_clear(&snap);
    SW_ASSERT_EQ(sw_journal_snapshot_find(j, "a", 40000, snap_id[2] - 1, &snap, &err), 0);
    SW_ASSERT_EQ(snap.eval_id, snap_id[1]);
    sw_snapshot_clear(&snap);
    SW_ASSERT_EQ(sw_journal_snapshot_find(j, "b", 59000, INT64_MAX, &snap, &err), SW_ENOENT);
    SW_ASSERT_EQ(sw_journal_snapshot_find(j, NULL, 0, 0, &snap, &err), SW_EINVAL);

    /* Keep from 35 s: "a" is cut at its snapshot at 20 s (the one at or before 35 s), "b"
     * (no snapshot) at 35 s; 5 rows a call at most. */
    int64_t count = sw_journal_eval_count(j);
    bool more = false;
    int calls = 0;
    do {
        SW_ASSERT_EQ(sw_journal_history_prune(j, 35000, 5, &more, &err), 0);
        int64_t now = sw_journal_eval_count(j);
        SW_ASSERT(count - now <= 5); /* the batch bound */
        count = now;
        SW_ASSERT(++calls < 20);
    } while (more);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT min(at_ms) FROM evaluations WHERE policy = 'a'"), 20000);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT min(id) FROM evaluations WHERE policy = 'a'"), snap_id[1]);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM evaluations WHERE policy = 'a'"), 40);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT min(at_ms) FROM evaluations WHERE policy = 'b'"), 36001);
    /* The snapshot at 0 s went with its evaluation; 20 s (the cut) and 40 s stay. */
    SW_ASSERT_EQ(table_count(t.path, "eval_snapshots"), 2);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT min(at_ms) FROM eval_snapshots"), 20000);
    SW_ASSERT_EQ(table_count(t.path, "eval_inputs"), sw_journal_eval_count(j));
    /* The mark is the newest cut: nothing at or after it was deleted. */
    struct sw_history_span span;
    SW_ASSERT_EQ(sw_journal_history_span(j, &span, &err), 0);
    SW_ASSERT_EQ(span.pruned_before_ms, 35000);
    SW_ASSERT_EQ(span.oldest_ms, 20000);

    /* Later, from 50 s: "a" is cut at 40 s, the snapshot at 20 s goes. */
    do
        SW_ASSERT_EQ(sw_journal_history_prune(j, 50000, 100, &more, &err), 0);
    while (more);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT min(at_ms) FROM evaluations WHERE policy = 'a'"), 40000);
    SW_ASSERT_EQ(table_count(t.path, "eval_snapshots"), 1);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT eval_id FROM eval_snapshots"), snap_id[2]);
    SW_ASSERT_EQ(sw_journal_history_span(j, &span, &err), 0);
    SW_ASSERT_EQ(span.pruned_before_ms, 50000);
    /* A window past every snapshot keeps "a" from its last one on. */
    SW_ASSERT_EQ(sw_journal_history_prune(j, 90000, 100, &more, &err), 0);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT min(at_ms) FROM evaluations WHERE policy = 'a'"), 40000);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM evaluations WHERE policy = 'b'"), 0);
    SW_ASSERT_EQ(table_count(t.path, "eval_snapshots"), 1);
    sw_journal_close(j);
    tmp_db_remove(&t);
}

/* The example simulation (follow-demand, every 10 s) over the hand-computable 3-hour trace,
 * recorded into path: the live runtime's evaluate path with a simulated clock. */
static int simulate_into(const char *path)
{
    const char *env = getenv("SW_PLUGIN_DIR");
    const char *dirs[] = {env != NULL && env[0] ? env : SW_BUILD_PLUGIN_DIR};
    const char *traces[] = {SW_SOURCE_DIR "/examples/traces/demand_small.csv"};
    struct sw_sim_opts opts = {
        .config_path = SW_SOURCE_DIR "/examples/sim/steward.jsonc",
        .traces = traces,
        .trace_count = 1,
        .journal_path = path,
        .plugin_dirs = dirs,
        .plugin_dir_count = 1,
        .lua_path = SW_SOURCE_DIR "/lua",
    };
    struct sw_sim_result *res = NULL;
    struct sw_error err = {0};
    int rc = sw_sim_run(&opts, &res, &err);
    if (rc < 0)
        fprintf(stderr, "    simulate: %s\n", err.msg);
    sw_sim_result_free(res);
    return rc;
}

static struct sw_replay_result replay(const char *path, bool has_from, int64_t from_ms)
{
    struct sw_replay_opts opts = {
        .state_path = path,
        .config_path = SW_SOURCE_DIR "/examples/sim/steward.jsonc",
        .lua_path = SW_SOURCE_DIR "/lua",
        .has_from = has_from,
        .from_ms = from_ms,
    };
    struct sw_replay_result res;
    struct sw_error err = {0};
    if (sw_replay_run(&opts, &res, &err) < 0) {
        fprintf(stderr, "    replay: %s\n", err.msg);
        memset(&res, 0xff, sizeof(res));
    }
    return res;
}

SW_TEST(snapshots_every_10_minutes_seed_an_exact_replay_from_anywhere)
{
    struct tmp_db t;
    tmp_db_make(&t);
    SW_ASSERT_EQ(simulate_into(t.path), 0);
    /* The first evaluation, then the first one 10 minutes or more after the last. */
    int64_t evals = table_count(t.path, "evaluations");
    int64_t snaps = table_count(t.path, "eval_snapshots");
    SW_ASSERT(evals > 1000);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT min(eval_id) FROM eval_snapshots"),
                 raw_int(t.path, "SELECT min(id) FROM evaluations"));
    SW_ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM eval_snapshots s JOIN eval_snapshots n"
                                 " ON n.eval_id = (SELECT min(eval_id) FROM eval_snapshots"
                                 " WHERE eval_id > s.eval_id) WHERE n.at_ms - s.at_ms < 600000"
                                 " OR n.at_ms - s.at_ms > 610000"),
                 0);
    int64_t span_ms = raw_int(t.path, "SELECT max(at_ms) - min(at_ms) FROM evaluations");
    SW_ASSERT_EQ(snaps, span_ms / SNAPSHOT_EVERY_MS + 1);
    /* Each holds what the row's evaluation left in ctx.state: the last one is the saved
     * state when nothing changed it after. */
    SW_ASSERT(raw_int(t.path, "SELECT count(*) FROM eval_snapshots WHERE json LIKE '%\"avg\"%'") ==
              snaps);

    /* From the start, and from a point after the demand step (1 h) where an empty state
     * would smooth from scratch: 0 differ either way. */
    int64_t first = raw_int(t.path, "SELECT min(at_ms) FROM evaluations");
    struct sw_replay_result all = replay(t.path, false, 0);
    SW_ASSERT_EQ(all.differences, 0);
    SW_ASSERT_EQ(all.replayed, (uint64_t)evals);
    SW_ASSERT_EQ(all.seeded, 0);
    for (int64_t at = first + 3600000 + 15000; at < first + 3600000 + 120000; at += 25000) {
        struct sw_replay_result mid = replay(t.path, true, at);
        SW_ASSERT_EQ(mid.differences, 0);
        SW_ASSERT(mid.replayed > 100);
        SW_ASSERT_EQ(mid.replayed, mid.evaluations);
    }
    /* The same journal without snapshots (written before them) differs there: what this
     * change fixes. */
    SW_ASSERT_EQ(raw_exec(t.path, "DELETE FROM eval_snapshots"), SQLITE_OK);
    struct sw_replay_result empty = replay(t.path, true, first + 3600000 + 15000);
    SW_ASSERT(empty.differences > 0);
    tmp_db_remove(&t);
}

SW_TEST(replay_after_retention_starts_at_the_kept_snapshot)
{
    struct tmp_db t;
    tmp_db_make(&t);
    SW_ASSERT_EQ(simulate_into(t.path), 0);
    int64_t first = raw_int(t.path, "SELECT min(at_ms) FROM evaluations");
    struct sw_journal *j = open_ok(t.path);
    SW_ASSERT(j != NULL);
    struct sw_error err = {0};
    bool more = false;
    int64_t cut = first + 3600000 + 5 * 60000; /* 1 h 5 min: the cut is the 1 h snapshot */
    int calls = 0;
    do {
        int64_t before = sw_journal_eval_count(j);
        SW_ASSERT_EQ(sw_journal_history_prune(j, cut, 16, &more, &err), 0);
        SW_ASSERT(before - sw_journal_eval_count(j) <= 16);
        SW_ASSERT(++calls < 1000);
    } while (more);
    sw_journal_close(j);
    int64_t oldest = raw_int(t.path, "SELECT min(at_ms) FROM evaluations");
    SW_ASSERT(oldest >= first + 3600000 && oldest < first + 3600000 + 10000);
    SW_ASSERT_EQ(raw_int(t.path, "SELECT min(eval_id) FROM eval_snapshots"),
                 raw_int(t.path, "SELECT min(id) FROM evaluations"));
    int64_t kept = table_count(t.path, "evaluations");
    /* Right after the demand step, and from the oldest kept on. */
    struct sw_replay_result all = replay(t.path, false, 0);
    SW_ASSERT_EQ(all.differences, 0);
    SW_ASSERT_EQ(all.evaluations, (uint64_t)kept);
    SW_ASSERT_EQ(all.seeded, 1);
    SW_ASSERT_EQ(all.replayed, (uint64_t)kept - 1);
    struct sw_replay_result mid = replay(t.path, true, first + 3600000 + 15000);
    SW_ASSERT_EQ(mid.differences, 0);
    SW_ASSERT_EQ(mid.seeded, 0);
    /* Without the snapshots it would start empty at the oldest kept and differ. */
    SW_ASSERT_EQ(raw_exec(t.path, "DELETE FROM eval_snapshots"), SQLITE_OK);
    struct sw_replay_result empty = replay(t.path, false, 0);
    SW_ASSERT(empty.differences > 0);
    tmp_db_remove(&t);
}

SW_TEST_MAIN()
