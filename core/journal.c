/* journal.c — the SQLite journal (see journal.h for the contract).
 *
 * Durability model. The connection runs in WAL mode with synchronous=NORMAL. A COMMIT then
 * appends the transaction's frames to the -wal file with write(2) before returning, so the
 * commit is in the kernel's page cache and survives the steward process dying in any way
 * (kill -9, OOM killer, a crash in a plugin). What NORMAL gives up, compared with FULL, is
 * the fsync of the WAL on every commit: after an OS crash or power loss the last few
 * commits may roll back (the database is never corrupted, WAL keeps it consistent). FULL
 * would cost one fsync per intent (milliseconds on cloud block storage, on the loop
 * thread), and the loss it prevents is already covered: startup reconciliation compares
 * the journal with what the marketplace reports and adopts or closes any lease the journal
 * does not know, so an intent lost to a power cut cannot turn into a double buy that goes
 * unnoticed or a forgotten lease.
 *
 * Transactions. At most one transaction is open. Buffered writes (evaluations, policy
 * state, events) open it with BEGIN and leave it open; durable writes (intents, units, kv,
 * meta) open it with BEGIN IMMEDIATE if none is open, add their row and COMMIT, which
 * commits whatever was buffered before them in the same fsync-free write.
 *
 * Coalescing (sw_journal_set_coalesce, the live runtime). Each COMMIT appends the touched
 * pages to the WAL: one acquire makes about a dozen durable writes (intent, unit states,
 * the plugin's KV records), a dozen page writes and write(2) calls for what one would do.
 * With coalescing on, a durable write stays in the open transaction and the owner commits
 * them together with sw_journal_barrier: before anything that depends on them leaves the
 * process (a request to a marketplace) and at the end of the loop turn. A kill -9 before
 * that commit loses only writes whose effects never left the process, which is the state
 * a kill just before them would have left. If SQLite rolls the transaction back under
 * durable writes (SQLITE_FULL, IOERR), the next barrier reports it, so the request they
 * guard is refused instead of going out without its record.
 */
#include "journal.h"

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "mem.h"
#include "wal_batch.h"

/* Buffered records after which the open transaction commits on its own, so a runtime that
 * forgets to flush still bounds what a crash can lose and how large the WAL grows. */
#define AUTOFLUSH_RECORDS 1000
/* Another process (an operator's sqlite3 shell, a backup) may hold the write lock briefly. */
#define BUSY_TIMEOUT_MS 5000

/* Migration N (1-based) brings user_version from N-1 to N. Append only: a released step is
 * never edited, since journals in the field already ran it. */
static const char *const migrations[] = {
    /* 1: initial schema */
    "CREATE TABLE intents ("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL UNIQUE,"
    "  kind INTEGER NOT NULL,"
    "  group_name TEXT,"
    "  region TEXT,"
    "  unit_key TEXT,"
    "  market_id TEXT,"
    "  state INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  reason TEXT,"
    "  outcome TEXT);"
    /* Recovery asks for pending intents on every start; the partial index stays tiny. */
    "CREATE INDEX intents_pending ON intents (id) WHERE state = 0;"
    "CREATE TABLE units ("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  market_id TEXT,"
    "  group_name TEXT,"
    "  region TEXT,"
    "  provider TEXT,"
    "  price_usd_hour REAL NOT NULL DEFAULT 0,"
    "  state INTEGER NOT NULL,"
    "  self INTEGER NOT NULL DEFAULT 0,"
    "  unhealthy INTEGER NOT NULL DEFAULT 0,"
    "  probe_failures INTEGER NOT NULL DEFAULT 0,"
    "  ordered_ms INTEGER NOT NULL DEFAULT 0,"
    "  ready_ms INTEGER NOT NULL DEFAULT 0,"
    "  closed_ms INTEGER NOT NULL DEFAULT 0,"
    "  uris TEXT NOT NULL DEFAULT '[]',"
    "  close_reason TEXT);"
    "CREATE TABLE evaluations ("
    "  id INTEGER PRIMARY KEY,"
    "  policy TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL,"
    "  inputs_digest TEXT,"
    "  inputs_json TEXT,"
    "  desired_json TEXT,"
    "  actions_json TEXT,"
    "  refused_json TEXT,"
    "  explain_json TEXT,"
    "  error TEXT,"
    "  duration_ms REAL NOT NULL DEFAULT 0);"
    "CREATE INDEX evaluations_policy_at ON evaluations (policy, at_ms);"
    /* updated counts the saves (a revision number): the journal has no clock of its own. */
    "CREATE TABLE policy_state ("
    "  policy TEXT PRIMARY KEY NOT NULL,"
    "  json TEXT NOT NULL,"
    "  updated INTEGER NOT NULL);"
    "CREATE TABLE kv ("
    "  ns TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (ns, key)) WITHOUT ROWID;"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  at_ms INTEGER NOT NULL,"
    "  type TEXT NOT NULL,"
    "  data_json TEXT);"
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT NOT NULL) WITHOUT ROWID;",
    /* 2: provider track record (track_record.c) */
    "CREATE TABLE provider_stats ("
    "  provider TEXT PRIMARY KEY NOT NULL,"
    "  bids INTEGER NOT NULL DEFAULT 0,"
    "  acquires INTEGER NOT NULL DEFAULT 0,"
    "  ready_ms_sum REAL NOT NULL DEFAULT 0,"
    "  closures INTEGER NOT NULL DEFAULT 0,"
    "  lease_hours REAL NOT NULL DEFAULT 0,"
    "  probe_failures INTEGER NOT NULL DEFAULT 0,"
    "  backoff_until_ms INTEGER NOT NULL DEFAULT 0,"
    "  backoff_strikes INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;",
    /* 3: history. The units and offers part of an evaluation's inputs is stored once per
     * distinct text (eval_inputs_shared, found by its digest); eval_inputs holds the rest of
     * a row's inputs and where the shared part goes back in. Rows of version 2 keep their
     * inputs inline in evaluations.inputs_json. Side tables rather than new columns, and IF
     * NOT EXISTS, so the step also runs again on a journal whose user_version was set back
     * by hand. at_ms alone is indexed for retention and time-window reads. */
    "CREATE TABLE IF NOT EXISTS eval_inputs_shared ("
    "  id INTEGER PRIMARY KEY,"
    "  digest TEXT NOT NULL UNIQUE,"
    "  json TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS eval_inputs ("
    "  eval_id INTEGER PRIMARY KEY,"
    "  shared_id INTEGER NOT NULL,"
    "  shared_at INTEGER NOT NULL,"
    "  rest TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS eval_inputs_shared_id ON eval_inputs (shared_id);"
    "CREATE INDEX IF NOT EXISTS evaluations_at ON evaluations (at_ms);",
    /* 4: snapshots. ctx.state of a policy right after one of its evaluations (the runtime
     * writes one at the first evaluation after a start, then at most every 10 minutes), so
     * replay can start at any point and retention can keep a history that starts at one.
     * IF NOT EXISTS for the same reason as step 3. */
    "CREATE TABLE IF NOT EXISTS eval_snapshots ("
    "  eval_id INTEGER PRIMARY KEY,"
    "  policy TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL,"
    "  json TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS eval_snapshots_policy_at ON eval_snapshots"
    " (policy, at_ms, eval_id);",
};

#define SCHEMA_VERSION ((int)SW_ARRAY_LEN(migrations))

#define INTENT_COLS                                                                                \
    "id, key, kind, group_name, region, unit_key, market_id, state, created_ms, "                  \
    "updated_ms, reason, outcome"
#define UNIT_COLS                                                                                  \
    "key, market_id, group_name, region, provider, price_usd_hour, state, self, "                  \
    "unhealthy, probe_failures, ordered_ms, ready_ms, closed_ms, uris, close_reason"
#define PROVIDER_COLS                                                                              \
    "provider, bids, acquires, ready_ms_sum, closures, lease_hours, probe_failures, "              \
    "backoff_until_ms, backoff_strikes"
/* Columns 11-13 (history): the split inputs' rest, where the shared part goes, and the
 * shared part (NULL when its row is gone). */
#define EVAL_COLS                                                                                  \
    "e.id, e.policy, e.at_ms, e.inputs_digest, e.inputs_json, e.desired_json, e.actions_json, "    \
    "e.refused_json, e.explain_json, e.error, e.duration_ms, i.rest, i.shared_at, s.json"
#define EVAL_FROM                                                                                  \
    " FROM evaluations e LEFT JOIN eval_inputs i ON i.eval_id = e.id"                              \
    " LEFT JOIN eval_inputs_shared s ON s.id = i.shared_id"
/* The key of the oldest kept history in meta (history_prune). */
#define META_PRUNED_BEFORE "history_pruned_before_ms"

enum stmt_id {
    ST_BEGIN,
    ST_BEGIN_IMMEDIATE,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_INTENT_INSERT,
    ST_INTENT_SET_MARKET_ID,
    ST_INTENT_FINISH,
    ST_INTENT_GET,
    ST_INTENT_PENDING,
    ST_INTENT_COUNT,
    ST_UNIT_SAVE,
    ST_UNIT_LOAD,
    ST_UNIT_COUNT_STATE,
    ST_UNIT_COUNT_OPEN,
    ST_EVAL_INSERT,
    ST_EVAL_SELECT_POLICY,
    ST_EVAL_SELECT_ALL,
    ST_EVAL_COUNT,
    ST_EVAL_INPUTS,
    ST_SHARED_FIND,
    ST_SHARED_INSERT,
    ST_SPLIT_INSERT,
    ST_PRUNE_SPLIT,
    ST_PRUNE_EVALS,
    ST_PRUNE_SHARED,
    ST_PRUNE_POLICIES, /* snapshots */
    ST_PRUNE_CUT,
    ST_PRUNE_SNAPSHOTS,
    ST_SNAPSHOT_INSERT,
    ST_SNAPSHOT_FIND,
    ST_PRUNE_MARK,
    ST_HISTORY_SPAN,
    ST_STATE_GET,
    ST_STATE_SET,
    ST_KV_GET,
    ST_KV_SET,
    ST_KV_DEL,
    ST_EVENT_INSERT,
    ST_EVENT_SELECT,
    ST_META_GET,
    ST_META_SET,
    ST_PROVIDER_SAVE,
    ST_PROVIDER_LOAD,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN",
    [ST_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_INTENT_INSERT] = "INSERT INTO intents (key, kind, group_name, region, unit_key, state,"
                         " created_ms, updated_ms, reason) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
    [ST_INTENT_SET_MARKET_ID] = "UPDATE intents SET market_id = ?, updated_ms = ? WHERE key = ?",
    [ST_INTENT_FINISH] = "UPDATE intents SET state = ?, outcome = ?, updated_ms = ? WHERE key = ?",
    [ST_INTENT_GET] = "SELECT " INTENT_COLS " FROM intents WHERE key = ?",
    [ST_INTENT_PENDING] = "SELECT " INTENT_COLS " FROM intents WHERE state = 0 ORDER BY id",
    [ST_INTENT_COUNT] = "SELECT count(*) FROM intents WHERE key = ?",
    [ST_UNIT_SAVE] =
        "INSERT INTO units (" UNIT_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET market_id = excluded.market_id,"
        " group_name = excluded.group_name, region = excluded.region,"
        " provider = excluded.provider, price_usd_hour = excluded.price_usd_hour,"
        " state = excluded.state, self = excluded.self, unhealthy = excluded.unhealthy,"
        " probe_failures = excluded.probe_failures, ordered_ms = excluded.ordered_ms,"
        " ready_ms = excluded.ready_ms, closed_ms = excluded.closed_ms,"
        " uris = excluded.uris, close_reason = excluded.close_reason",
    [ST_UNIT_LOAD] = "SELECT " UNIT_COLS " FROM units WHERE state != ? ORDER BY ordered_ms, key",
    [ST_UNIT_COUNT_STATE] = "SELECT count(*) FROM units WHERE state = ?",
    [ST_UNIT_COUNT_OPEN] = "SELECT count(*) FROM units WHERE state != ?",
    [ST_EVAL_INSERT] = "INSERT INTO evaluations (policy, at_ms, inputs_digest, inputs_json,"
                       " desired_json, actions_json, refused_json, explain_json, error,"
                       " duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_EVAL_SELECT_POLICY] = "SELECT " EVAL_COLS EVAL_FROM " WHERE e.policy = ?"
                              " AND e.at_ms BETWEEN ? AND ? ORDER BY e.at_ms, e.id LIMIT ?",
    [ST_EVAL_SELECT_ALL] = "SELECT " EVAL_COLS EVAL_FROM
                           " WHERE e.at_ms BETWEEN ? AND ? ORDER BY e.at_ms, e.id LIMIT ?",
    [ST_EVAL_COUNT] = "SELECT count(*) FROM evaluations",
    [ST_EVAL_INPUTS] = "SELECT " EVAL_COLS EVAL_FROM " WHERE e.id = ?",
    [ST_SHARED_FIND] = "SELECT id, json FROM eval_inputs_shared WHERE digest = ?",
    [ST_SHARED_INSERT] = "INSERT INTO eval_inputs_shared (digest, json) VALUES (?, ?)",
    [ST_SPLIT_INSERT] = "INSERT INTO eval_inputs (eval_id, shared_id, shared_at, rest)"
                        " VALUES (?, ?, ?, ?)",
    /* snapshots: the same oldest rows of one policy, those before (?2, ?3) in journal
     * order, through evaluations_policy_at, for both deletes: a batch reads only what it
     * deletes. */
    [ST_PRUNE_SPLIT] = "DELETE FROM eval_inputs WHERE eval_id IN (SELECT id FROM evaluations"
                       " WHERE policy = ?1 AND (at_ms < ?2 OR (at_ms = ?2 AND id < ?3))"
                       " ORDER BY at_ms, id LIMIT ?4)",
    [ST_PRUNE_EVALS] = "DELETE FROM evaluations WHERE id IN (SELECT id FROM evaluations"
                       " WHERE policy = ?1 AND (at_ms < ?2 OR (at_ms = ?2 AND id < ?3))"
                       " ORDER BY at_ms, id LIMIT ?4)",
    [ST_PRUNE_SHARED] = "DELETE FROM eval_inputs_shared WHERE id IN (SELECT s.id FROM"
                        " eval_inputs_shared s WHERE NOT EXISTS (SELECT 1 FROM eval_inputs i"
                        " WHERE i.shared_id = s.id) ORDER BY s.id LIMIT ?)",
    /* snapshots: the distinct policies, one index seek each (a skip scan). */
    [ST_PRUNE_POLICIES] = "WITH RECURSIVE p(name) AS (SELECT min(policy) FROM evaluations"
                          " UNION ALL SELECT (SELECT min(policy) FROM evaluations"
                          " WHERE policy > p.name) FROM p WHERE p.name IS NOT NULL)"
                          " SELECT name FROM p WHERE name IS NOT NULL",
    [ST_PRUNE_CUT] = "SELECT eval_id, at_ms FROM eval_snapshots WHERE policy = ? AND at_ms <= ?"
                     " ORDER BY at_ms DESC, eval_id DESC LIMIT 1",
    [ST_PRUNE_SNAPSHOTS] = "DELETE FROM eval_snapshots WHERE eval_id IN (SELECT s.eval_id FROM"
                           " eval_snapshots s WHERE s.policy = ?1 AND (s.at_ms < ?2 OR"
                           " (s.at_ms = ?2 AND s.eval_id < ?3)) AND NOT EXISTS (SELECT 1 FROM"
                           " evaluations e WHERE e.id = s.eval_id) LIMIT ?4)",
    [ST_SNAPSHOT_INSERT] = "INSERT OR REPLACE INTO eval_snapshots (eval_id, policy, at_ms, json)"
                           " VALUES (?, ?, ?, ?)",
    [ST_SNAPSHOT_FIND] = "SELECT eval_id, at_ms, json FROM eval_snapshots WHERE policy = ?1 AND"
                         " (at_ms < ?2 OR (at_ms = ?2 AND eval_id <= ?3))"
                         " ORDER BY at_ms DESC, eval_id DESC LIMIT 1",
    [ST_PRUNE_MARK] = "INSERT INTO meta (key, value) VALUES ('" META_PRUNED_BEFORE "', ?)"
                      " ON CONFLICT (key) DO UPDATE SET value ="
                      " max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
    [ST_HISTORY_SPAN] = "SELECT (SELECT min(at_ms) FROM evaluations),"
                        " (SELECT max(at_ms) FROM evaluations),"
                        " (SELECT CAST(value AS INTEGER) FROM meta"
                        " WHERE key = '" META_PRUNED_BEFORE "')",
    [ST_STATE_GET] = "SELECT json FROM policy_state WHERE policy = ?",
    [ST_STATE_SET] = "INSERT INTO policy_state (policy, json, updated) VALUES (?, ?, 1)"
                     " ON CONFLICT (policy) DO UPDATE SET json = excluded.json,"
                     " updated = updated + 1",
    [ST_KV_GET] = "SELECT value FROM kv WHERE ns = ? AND key = ?",
    [ST_KV_SET] = "INSERT INTO kv (ns, key, value) VALUES (?, ?, ?)"
                  " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
    [ST_KV_DEL] = "DELETE FROM kv WHERE ns = ? AND key = ?",
    [ST_EVENT_INSERT] = "INSERT INTO events (at_ms, type, data_json) VALUES (?, ?, ?)",
    [ST_EVENT_SELECT] =
        "SELECT id, at_ms, type, data_json FROM events WHERE id > ? ORDER BY id LIMIT ?",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?",
    [ST_META_SET] = "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [ST_PROVIDER_SAVE] = "INSERT OR REPLACE INTO provider_stats (" PROVIDER_COLS ")"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_PROVIDER_LOAD] = "SELECT " PROVIDER_COLS " FROM provider_stats ORDER BY provider",
};

struct sw_journal {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmts[ST_COUNT];
    bool in_txn;     /* a transaction we opened is still open */
    size_t buffered; /* records written into it by buffered calls (and coalesced durable) */
    /* coalescing (see the top of this file) */
    void (*on_pending)(void *ud); /* NULL: durable writes commit on return */
    void *pending_ud;
    bool durable_pending; /* durable writes in the open transaction, not yet committed */
    bool durable_lost;    /* ... and SQLite rolled them back: the next barrier fails */
    char last_error[256];
    /* history: the shared inputs part last written and its eval_inputs id (0: none known),
     * so a tick whose units and offers did not change costs one memcmp; splice is the
     * buffer the rest of the inputs (and reassembled inputs on reading) is built in. */
    char *shared_last;
    size_t shared_last_len;
    int64_t shared_last_id;
    char *splice;
    size_t splice_cap;
};

/* ---- helpers ------------------------------------------------------------------------- */

/* Records the connection's current error as "what: sqlite message" and fills err. Must run
 * right after the failing call, before anything else touches the connection. */
static int store_error(struct sw_journal *j, struct sw_error *err, const char *what)
{
    snprintf(j->last_error, sizeof(j->last_error), "%s: %s", what, sqlite3_errmsg(j->db));
    return sw_error_set(err, SW_ESTORE, "journal: %s", j->last_error);
}

/* For the calls without a struct sw_error: keep the message and log it. */
static int store_error_log(struct sw_journal *j, const char *what)
{
    int code = store_error(j, NULL, what);
    sw_log(SW_LOG_ERROR, "journal", "%s: %s", j->path, j->last_error);
    return code;
}

static int invalid(struct sw_journal *j, struct sw_error *err, const char *what)
{
    snprintf(j->last_error, sizeof(j->last_error), "%s: missing argument", what);
    return sw_error_set(err, SW_EINVAL, "journal: %s", j->last_error);
}

/* Binds parameters 1..n described by types: 's' text (NULL binds NULL), 'I' int64_t,
 * 'i' int, 'd' double. Text is bound SQLITE_STATIC: every caller steps and resets the
 * statement before its arguments go out of scope. */
static int bind_params(sqlite3_stmt *st, const char *types, ...)
{
    va_list ap;
    int rc = SQLITE_OK;
    va_start(ap, types);
    for (int i = 0; types[i] != '\0' && rc == SQLITE_OK; i++) {
        int idx = i + 1;
        switch (types[i]) {
        case 's': {
            const char *text = va_arg(ap, const char *);
            rc = text != NULL ? sqlite3_bind_text(st, idx, text, -1, SQLITE_STATIC)
                              : sqlite3_bind_null(st, idx);
            break;
        }
        case 'I':
            rc = sqlite3_bind_int64(st, idx, va_arg(ap, int64_t));
            break;
        case 'i':
            rc = sqlite3_bind_int(st, idx, va_arg(ap, int));
            break;
        case 'd':
            rc = sqlite3_bind_double(st, idx, va_arg(ap, double));
            break;
        default:
            rc = SQLITE_MISUSE;
            break;
        }
    }
    va_end(ap);
    return rc;
}

/* Returns the cached statement ready to bind. */
static sqlite3_stmt *stmt_get(struct sw_journal *j, enum stmt_id id)
{
    return j->stmts[id];
}

/* Resets after use so the statement holds no read snapshot and no borrowed text. The rc
 * of reset only repeats the error of the last step, which the caller already handled. */
static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Binds, steps once and resets: for writes. Returns the sqlite rc of the first failure or
 * SQLITE_DONE. */
static int bind_and_step(sqlite3_stmt *st, int bind_rc)
{
    int rc = bind_rc == SQLITE_OK ? sqlite3_step(st) : bind_rc;
    stmt_done(st);
    return rc;
}

static char *col_str(sqlite3_stmt *st, int col)
{
    return sw_xstrdup((const char *)sqlite3_column_text(st, col));
}

/* Runs a one-row count query (parameters already bound). */
static int64_t count_query(struct sw_journal *j, sqlite3_stmt *st, int bind_rc, const char *what)
{
    int rc = bind_rc == SQLITE_OK ? sqlite3_step(st) : bind_rc;
    int64_t result = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc != SQLITE_ROW)
        result = store_error_log(j, what);
    stmt_done(st);
    return result;
}

/* Limit 0 means no limit; SQLite reads a negative LIMIT the same way. */
static int64_t sql_limit(size_t limit)
{
    return limit == 0 || limit > (size_t)INT64_MAX ? -1 : (int64_t)limit;
}

/* ---- transactions -------------------------------------------------------------------- */

static int txn_exec(struct sw_journal *j, enum stmt_id id)
{
    sqlite3_stmt *st = stmt_get(j, id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Some errors (SQLITE_FULL, IOERR, NOMEM, BUSY mid-write) make SQLite roll the whole
 * transaction back rather than one statement; find out so the next write opens a new one. */
static void txn_check_lost(struct sw_journal *j)
{
    if (!j->in_txn || !sqlite3_get_autocommit(j->db))
        return;
    if (j->buffered > 0)
        sw_log(SW_LOG_WARN, "journal",
               "%s: SQLite rolled back the transaction, %zu buffered records lost", j->path,
               j->buffered);
    if (j->durable_pending)
        j->durable_lost = true;
    j->shared_last_id = 0; /* history: its row may have gone with the transaction */
    j->in_txn = false;
    j->buffered = 0;
    j->durable_pending = false;
}

static int txn_open(struct sw_journal *j, bool immediate, struct sw_error *err)
{
    if (j->in_txn)
        return 0;
    if (txn_exec(j, immediate ? ST_BEGIN_IMMEDIATE : ST_BEGIN) != SQLITE_OK)
        return store_error(j, err, immediate ? "begin immediate" : "begin");
    j->in_txn = true;
    j->buffered = 0;
    return 0;
}

static int txn_commit(struct sw_journal *j, struct sw_error *err)
{
    if (!j->in_txn)
        return 0;
    j->durable_pending = false;
    if (txn_exec(j, ST_COMMIT) == SQLITE_OK) {
        j->in_txn = false;
        j->buffered = 0;
        return 0;
    }
    int code = store_error(j, err, "commit");
    if (j->buffered > 0)
        sw_log(SW_LOG_WARN, "journal", "%s: commit failed, %zu buffered records lost", j->path,
               j->buffered);
    /* A COMMIT that failed may leave the transaction open; roll it back so the next write
     * starts clean instead of piling onto a transaction that cannot commit. */
    if (!sqlite3_get_autocommit(j->db) && txn_exec(j, ST_ROLLBACK) != SQLITE_OK)
        sw_log(SW_LOG_ERROR, "journal", "%s: rollback: %s", j->path, sqlite3_errmsg(j->db));
    j->shared_last_id = 0; /* history: as in txn_check_lost */
    j->in_txn = false;
    j->buffered = 0;
    return code;
}

/* Ends a durable call. The write's own failure (code < 0) only rolled back its statement,
 * so the records buffered before it are still committed. */
static int durable_end(struct sw_journal *j, int code, struct sw_error *err)
{
    txn_check_lost(j);
    if (j->on_pending != NULL && j->in_txn) {
        /* Coalescing: the barrier commits it. A failed statement (code < 0) leaves the
         * earlier writes in place, as without coalescing. */
        if (code == 0 && ++j->buffered >= AUTOFLUSH_RECORDS)
            return txn_commit(j, err);
        if (code == 0 && !j->durable_pending) {
            j->durable_pending = true;
            j->on_pending(j->pending_ud);
        }
        return code;
    }
    int rc = txn_commit(j, code < 0 ? NULL : err);
    return code < 0 ? code : rc;
}

/* Ends a buffered call: count the record and commit past the threshold. */
static int buffered_end(struct sw_journal *j, int code, struct sw_error *err)
{
    if (code < 0) {
        txn_check_lost(j);
        return code;
    }
    if (++j->buffered >= AUTOFLUSH_RECORDS)
        return txn_commit(j, err);
    return 0;
}

/* ---- open, migrate, close ------------------------------------------------------------ */

static int open_error(struct sw_journal *j, struct sw_error *err, const char *what)
{
    return sw_error_set(err, SW_ESTORE, "journal %s: %s: %s", j->path, what, sqlite3_errmsg(j->db));
}

static int exec_sql(struct sw_journal *j, const char *sql, const char *what, struct sw_error *err)
{
    if (sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return open_error(j, err, what);
    return 0;
}

static int read_user_version(struct sw_journal *j, int *version, struct sw_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    int code = rc == SQLITE_ROW ? 0 : open_error(j, err, "cannot read schema version");
    sqlite3_finalize(st);
    return code;
}

static int check_version(struct sw_journal *j, int version, struct sw_error *err)
{
    if (version <= SCHEMA_VERSION)
        return 0;
    return sw_error_set(err, SW_ESTORE,
                        "journal %s has schema version %d, this steward knows up to %d: "
                        "upgrade steward",
                        j->path, version, SCHEMA_VERSION);
}

static int configure(struct sw_journal *j, struct sw_error *err)
{
    if (sqlite3_busy_timeout(j->db, BUSY_TIMEOUT_MS) != SQLITE_OK)
        return open_error(j, err, "busy_timeout");
    /* First read of the file: a non-database fails here, and a newer schema is refused
     * before this steward changes anything in it (not even the journal mode). */
    int version = 0;
    int code = read_user_version(j, &version, err);
    if (code == 0)
        code = check_version(j, version, err);
    if (code < 0)
        return code;

    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        code = open_error(j, err, "journal_mode=WAL");
        sqlite3_finalize(st);
        return code;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    /* ":memory:" answers "memory"; anything else means the filesystem refused WAL (no
     * shared memory), which still works, just with readers blocking the writer. */
    if (mode == NULL || (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0))
        sw_log(SW_LOG_WARN, "journal", "%s: WAL unavailable, journal_mode is %s", j->path,
               mode != NULL ? mode : "unknown");
    sqlite3_finalize(st);

    code = exec_sql(j, "PRAGMA synchronous=NORMAL", "synchronous=NORMAL", err);
    if (code == 0)
        code = exec_sql(j, "PRAGMA foreign_keys=ON", "foreign_keys=ON", err);
    /* The journal is append-mostly: a 512 KiB page cache keeps steward small inside a
     * lease (SQLite's default is 2 MiB) without slowing the batched writes measurably. */
    if (code == 0)
        code = exec_sql(j, "PRAGMA cache_size=-512", "cache_size", err);
    return code;
}

static int migrate(struct sw_journal *j, struct sw_error *err)
{
    for (;;) {
        int code = exec_sql(j, "BEGIN IMMEDIATE", "migration: begin", err);
        if (code < 0)
            return code;
        /* Re-read under the write lock: another process may have migrated meanwhile. */
        int version = 0;
        code = read_user_version(j, &version, err);
        if (code == 0)
            code = check_version(j, version, err);
        if (code == 0 && version == SCHEMA_VERSION)
            return exec_sql(j, "COMMIT", "migration: commit", err);
        if (code == 0)
            code = exec_sql(j, migrations[version], "migration", err);
        if (code == 0) {
            char pragma[64];
            snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version + 1);
            code = exec_sql(j, pragma, "migration: user_version", err);
        }
        if (code == 0)
            code = exec_sql(j, "COMMIT", "migration: commit", err);
        if (code < 0) {
            if (!sqlite3_get_autocommit(j->db) &&
                sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
                sw_log(SW_LOG_ERROR, "journal", "%s: migration rollback: %s", j->path,
                       sqlite3_errmsg(j->db));
            return code;
        }
        sw_log(SW_LOG_INFO, "journal", "%s: schema migrated to version %d", j->path, version + 1);
    }
}

static int prepare_all(struct sw_journal *j, struct sw_error *err)
{
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(j->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &j->stmts[i],
                               NULL) != SQLITE_OK)
            return open_error(j, err, "prepare");
    }
    return 0;
}

static void journal_free(struct sw_journal *j)
{
    /* finalize's rc repeats the statement's last step error, already reported. */
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(j->stmts[i]);
    if (j->db != NULL && sqlite3_close(j->db) != SQLITE_OK)
        sw_log(SW_LOG_ERROR, "journal", "%s: close: %s", j->path, sqlite3_errmsg(j->db));
    free(j->path);
    free(j->shared_last);
    free(j->splice);
    free(j);
}

struct sw_journal *sw_journal_open(const char *path, struct sw_error *err)
{
    if (path == NULL) {
        sw_error_set(err, SW_EINVAL, "journal: no path given");
        return NULL;
    }
    struct sw_journal *j = sw_xcalloc(1, sizeof(*j));
    j->path = sw_xstrdup(path);
    int rc = sqlite3_open_v2(path, &j->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                 SQLITE_OPEN_EXRESCODE,
                             sw_wal_batch_vfs());
    if (rc != SQLITE_OK) {
        if (j->db != NULL)
            open_error(j, err, "cannot open");
        else
            sw_error_set(err, SW_ESTORE, "journal %s: cannot open: %s", path, sqlite3_errstr(rc));
        goto fail;
    }
    if (configure(j, err) < 0 || migrate(j, err) < 0 || prepare_all(j, err) < 0)
        goto fail;
    return j;

fail:
    journal_free(j);
    return NULL;
}

void sw_journal_close(struct sw_journal *j)
{
    if (j == NULL)
        return;
    struct sw_error err = {0};
    if (txn_commit(j, &err) < 0)
        sw_log(SW_LOG_ERROR, "journal", "%s: closing: %s", j->path, err.msg);
    journal_free(j);
}

const char *sw_journal_last_error(const struct sw_journal *j)
{
    return j->last_error;
}

/* ---- intents ------------------------------------------------------------------------- */

void sw_intent_clear(struct sw_intent *in)
{
    if (in == NULL)
        return;
    free(in->key);
    free(in->group);
    free(in->region);
    free(in->unit_key);
    free(in->market_id);
    free(in->reason);
    free(in->outcome);
    memset(in, 0, sizeof(*in));
}

static void intent_from_row(sqlite3_stmt *st, struct sw_intent *in)
{
    in->id = sqlite3_column_int64(st, 0);
    in->key = col_str(st, 1);
    in->kind = sqlite3_column_int(st, 2);
    in->group = col_str(st, 3);
    in->region = col_str(st, 4);
    in->unit_key = col_str(st, 5);
    in->market_id = col_str(st, 6);
    in->state = sqlite3_column_int(st, 7);
    in->created_ms = sqlite3_column_int64(st, 8);
    in->updated_ms = sqlite3_column_int64(st, 9);
    in->reason = col_str(st, 10);
    in->outcome = col_str(st, 11);
}

int sw_journal_intent_begin(struct sw_journal *j, int kind, const char *key, const char *group,
                            const char *region, const char *unit_key, const char *reason,
                            int64_t now_ms, int64_t *id_out, struct sw_error *err)
{
    if (key == NULL)
        return invalid(j, err, "intent_begin");
    int code = txn_open(j, true, err);
    if (code < 0)
        return code;
    sqlite3_stmt *st = stmt_get(j, ST_INTENT_INSERT);
    int rc =
        bind_params(st, "sisssIIs", key, kind, group, region, unit_key, now_ms, now_ms, reason);
    rc = rc == SQLITE_OK ? sqlite3_step(st) : rc;
    if (rc == SQLITE_DONE) {
        if (id_out != NULL)
            *id_out = sqlite3_last_insert_rowid(j->db);
    } else if (rc == SQLITE_CONSTRAINT_UNIQUE) {
        snprintf(j->last_error, sizeof(j->last_error), "intent %s already exists", key);
        code = sw_error_set(err, SW_EEXIST, "journal: %s", j->last_error);
    } else {
        code = store_error(j, err, "intent_begin");
    }
    stmt_done(st);
    return durable_end(j, code, err);
}

int sw_journal_intent_set_market_id(struct sw_journal *j, const char *key, const char *market_id,
                                    int64_t now_ms, struct sw_error *err)
{
    if (key == NULL)
        return invalid(j, err, "intent_set_market_id");
    int code = txn_open(j, true, err);
    if (code < 0)
        return code;
    sqlite3_stmt *st = stmt_get(j, ST_INTENT_SET_MARKET_ID);
    int rc = bind_and_step(st, bind_params(st, "sIs", market_id, now_ms, key));
    if (rc != SQLITE_DONE) {
        code = store_error(j, err, "intent_set_market_id");
    } else if (sqlite3_changes(j->db) == 0) {
        snprintf(j->last_error, sizeof(j->last_error), "no intent with key %s", key);
        code = sw_error_set(err, SW_ENOENT, "journal: %s", j->last_error);
    }
    return durable_end(j, code, err);
}

int sw_journal_intent_finish(struct sw_journal *j, const char *key, int state, const char *outcome,
                             int64_t now_ms, struct sw_error *err)
{
    if (key == NULL)
        return invalid(j, err, "intent_finish");
    if (state != SW_INTENT_DONE && state != SW_INTENT_FAILED && state != SW_INTENT_ABANDONED) {
        snprintf(j->last_error, sizeof(j->last_error), "intent %s: %d is not a final state", key,
                 state);
        return sw_error_set(err, SW_EINVAL, "journal: %s", j->last_error);
    }
    int code = txn_open(j, true, err);
    if (code < 0)
        return code;
    sqlite3_stmt *st = stmt_get(j, ST_INTENT_FINISH);
    int rc = bind_and_step(st, bind_params(st, "isIs", state, outcome, now_ms, key));
    if (rc != SQLITE_DONE) {
        code = store_error(j, err, "intent_finish");
    } else if (sqlite3_changes(j->db) == 0) {
        snprintf(j->last_error, sizeof(j->last_error), "no intent with key %s", key);
        code = sw_error_set(err, SW_ENOENT, "journal: %s", j->last_error);
    }
    return durable_end(j, code, err);
}

int sw_journal_intent_get(struct sw_journal *j, const char *key, struct sw_intent *out,
                          struct sw_error *err)
{
    memset(out, 0, sizeof(*out));
    if (key == NULL)
        return invalid(j, err, "intent_get");
    sqlite3_stmt *st = stmt_get(j, ST_INTENT_GET);
    int rc = bind_params(st, "s", key);
    rc = rc == SQLITE_OK ? sqlite3_step(st) : rc;
    int code = 0;
    if (rc == SQLITE_ROW) {
        intent_from_row(st, out);
    } else if (rc == SQLITE_DONE) {
        snprintf(j->last_error, sizeof(j->last_error), "no intent with key %s", key);
        code = sw_error_set(err, SW_ENOENT, "journal: %s", j->last_error);
    } else {
        code = store_error(j, err, "intent_get");
    }
    stmt_done(st);
    return code;
}

int sw_journal_intents_pending(struct sw_journal *j, struct sw_intent **out, size_t *count,
                               struct sw_error *err)
{
    *out = NULL;
    *count = 0;
    struct sw_intent *items = NULL;
    size_t used = 0, cap = 0;
    sqlite3_stmt *st = stmt_get(j, ST_INTENT_PENDING);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (used == cap) {
            cap = cap ? cap * 2 : 8;
            items = sw_xrealloc(items, cap * sizeof(*items));
        }
        intent_from_row(st, &items[used++]);
    }
    int code = rc == SQLITE_DONE ? 0 : store_error(j, err, "intents_pending");
    stmt_done(st);
    if (code < 0) {
        for (size_t i = 0; i < used; i++)
            sw_intent_clear(&items[i]);
        free(items);
        return code;
    }
    *out = items;
    *count = used;
    return 0;
}

int64_t sw_journal_intent_count(struct sw_journal *j, const char *key)
{
    if (key == NULL)
        return invalid(j, NULL, "intent_count");
    sqlite3_stmt *st = stmt_get(j, ST_INTENT_COUNT);
    return count_query(j, st, bind_params(st, "s", key), "intent_count");
}

/* ---- units --------------------------------------------------------------------------- */

static char *uris_to_json(const struct sw_unit *u)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < u->uri_count; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(u->uris[i] != NULL ? u->uris[i] : ""));
    char *text = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    char *owned = sw_xstrdup(text != NULL ? text : "[]");
    cJSON_free(text);
    return owned;
}

/* A malformed uris column is logged and read as no uris rather than failing the load:
 * refusing to load the owned set would leave its leases untracked, and the reconciler
 * refreshes uris from the marketplace anyway. */
static void uris_from_json(struct sw_unit *u, const char *path, const char *text)
{
    cJSON *arr = text != NULL ? cJSON_Parse(text) : NULL;
    if (!cJSON_IsArray(arr)) {
        sw_log(SW_LOG_WARN, "journal", "%s: unit %s: malformed uris column, ignored", path, u->key);
        cJSON_Delete(arr);
        return;
    }
    sw_unit_set_uris_json(u, arr);
    cJSON_Delete(arr);
}

int sw_journal_unit_save(struct sw_journal *j, const struct sw_unit *u, struct sw_error *err)
{
    if (u == NULL || u->key == NULL)
        return invalid(j, err, "unit_save");
    int code = txn_open(j, true, err);
    if (code < 0)
        return code;
    /* Most saves are of a unit not serving yet: "[]" without building a cJSON array. */
    char *uris = u->uri_count > 0 ? uris_to_json(u) : NULL;
    sqlite3_stmt *st = stmt_get(j, ST_UNIT_SAVE);
    int rc = bind_params(st, "sssssdiiiiIIIss", u->key, u->market_id, u->group, u->region,
                         u->provider, u->price_usd_hour, u->state, u->self ? 1 : 0,
                         u->unhealthy ? 1 : 0, u->probe_failures, u->ordered_ms, u->ready_ms,
                         u->closed_ms, uris != NULL ? uris : "[]", u->close_reason);
    rc = bind_and_step(st, rc);
    free(uris);
    if (rc != SQLITE_DONE)
        code = store_error(j, err, "unit_save");
    return durable_end(j, code, err);
}

int sw_journal_units_load(struct sw_journal *j, struct sw_units *units_out, struct sw_error *err)
{
    struct sw_units loaded;
    sw_units_init(&loaded);
    sqlite3_stmt *st = stmt_get(j, ST_UNIT_LOAD);
    int rc = bind_params(st, "i", (int)SW_UNIT_CLOSED);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        struct sw_unit *u = sw_unit_new((const char *)sqlite3_column_text(st, 0),
                                        (const char *)sqlite3_column_text(st, 2),
                                        (const char *)sqlite3_column_text(st, 3));
        u->market_id = col_str(st, 1);
        u->provider = col_str(st, 4);
        u->price_usd_hour = sqlite3_column_double(st, 5);
        u->state = sqlite3_column_int(st, 6);
        u->self = sqlite3_column_int(st, 7) != 0;
        u->unhealthy = sqlite3_column_int(st, 8) != 0;
        u->probe_failures = sqlite3_column_int(st, 9);
        u->ordered_ms = sqlite3_column_int64(st, 10);
        u->ready_ms = sqlite3_column_int64(st, 11);
        u->closed_ms = sqlite3_column_int64(st, 12);
        uris_from_json(u, j->path, (const char *)sqlite3_column_text(st, 13));
        u->close_reason = col_str(st, 14);
        sw_units_add(&loaded, u);
    }
    int code = rc == SQLITE_DONE ? 0 : store_error(j, err, "units_load");
    stmt_done(st);
    if (code < 0) {
        sw_units_clear(&loaded);
        return code;
    }
    for (size_t i = 0; i < loaded.count; i++)
        sw_units_add(units_out, loaded.items[i]);
    free(loaded.items);
    return 0;
}

int64_t sw_journal_unit_count(struct sw_journal *j, int state)
{
    sqlite3_stmt *st = stmt_get(j, state < 0 ? ST_UNIT_COUNT_OPEN : ST_UNIT_COUNT_STATE);
    int bind_rc = bind_params(st, "i", state < 0 ? (int)SW_UNIT_CLOSED : state);
    return count_query(j, st, bind_rc, "unit_count");
}

/* ---- evaluations --------------------------------------------------------------------- */

/* The journal's scratch buffer with room for len bytes and a NUL (borrowed until the next
 * call that uses it). */
static char *splice_reserve(struct sw_journal *j, size_t len)
{
    if (len + 1 > j->splice_cap) {
        j->splice_cap = len + 1 > 2 * j->splice_cap ? len + 1 : 2 * j->splice_cap;
        j->splice = sw_xrealloc(j->splice, j->splice_cap);
    }
    return j->splice;
}

/* history: the content rows are found by this digest and then compared whole, so a
 * collision of the 64-bit hash costs a row stored inline, never wrong inputs. FNV-1a's
 * step over 8-byte words rather than bytes: the text is up to hundreds of KB when many
 * units are open, and it is hashed on the loop thread whenever they change. */
static void shared_digest(const char *text, size_t len, char out[17])
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t word;
        memcpy(&word, text + i, 8);
        h = (h ^ word) * 1099511628211ULL;
    }
    for (; i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 1099511628211ULL;
    h ^= h >> 29; /* the high bits of the last words reach the low bits shown */
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* The eval_inputs id of text (len bytes), inserted when new: 0 with *id_out set (0 when a
 * different text holds its digest: store inline), or SW_ESTORE. Inside the open
 * transaction. */
static int shared_id(struct sw_journal *j, const char *text, size_t len, int64_t *id_out,
                     struct sw_error *err)
{
    *id_out = 0;
    if (j->shared_last_id != 0 && j->shared_last_len == len &&
        memcmp(j->shared_last, text, len) == 0) {
        *id_out = j->shared_last_id;
        return 0;
    }
    char digest[17];
    shared_digest(text, len, digest);
    sqlite3_stmt *st = stmt_get(j, ST_SHARED_FIND);
    int rc = bind_params(st, "s", digest);
    rc = rc == SQLITE_OK ? sqlite3_step(st) : rc;
    int64_t id = 0;
    bool collision = false;
    if (rc == SQLITE_ROW) {
        const void *stored = sqlite3_column_text(st, 1);
        size_t stored_len = (size_t)sqlite3_column_bytes(st, 1);
        if (stored != NULL && stored_len == len && memcmp(stored, text, len) == 0)
            id = sqlite3_column_int64(st, 0);
        else
            collision = true;
    }
    stmt_done(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_error(j, err, "eval_record: shared inputs");
    if (collision)
        return 0;
    if (id == 0) {
        st = stmt_get(j, ST_SHARED_INSERT);
        rc = bind_params(st, "s", digest);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(st, 2, text, (int)len, SQLITE_STATIC);
        if (bind_and_step(st, rc) != SQLITE_DONE)
            return store_error(j, err, "eval_record: shared inputs");
        id = sqlite3_last_insert_rowid(j->db);
    }
    if (len > j->shared_last_len || j->shared_last == NULL)
        j->shared_last = sw_xrealloc(j->shared_last, len + 1);
    memcpy(j->shared_last, text, len);
    j->shared_last_len = len;
    j->shared_last_id = id;
    *id_out = id;
    return 0;
}

int sw_journal_eval_record(struct sw_journal *j, const struct sw_evaluation *ev,
                           struct sw_error *err)
{
    if (ev == NULL || ev->policy == NULL)
        return invalid(j, err, "eval_record");
    int code = txn_open(j, false, err);
    if (code < 0)
        return code;
    /* history: with a split, the shared part goes to eval_inputs_shared and the rest to
     * eval_inputs, after the row: a failure there leaves a row without inputs, never one
     * with a partial text. */
    const char *inputs = ev->inputs_json;
    size_t len = 0;
    int64_t shared = 0;
    if (inputs != NULL && ev->inputs_shared_len > 0) {
        len = strlen(inputs);
        if (ev->inputs_shared_at > len || ev->inputs_shared_len > len - ev->inputs_shared_at)
            return buffered_end(j, invalid(j, err, "eval_record: inputs_shared outside inputs"),
                                err);
        code = shared_id(j, inputs + ev->inputs_shared_at, ev->inputs_shared_len, &shared, err);
        if (code < 0)
            return buffered_end(j, code, err);
    }
    sqlite3_stmt *st = stmt_get(j, ST_EVAL_INSERT);
    int rc = bind_params(st, "sIsssssssd", ev->policy, ev->at_ms, ev->inputs_digest,
                         shared != 0 ? NULL : inputs, ev->desired_json, ev->actions_json,
                         ev->refused_json, ev->explain_json, ev->error, ev->duration_ms);
    if (bind_and_step(st, rc) != SQLITE_DONE)
        return buffered_end(j, store_error(j, err, "eval_record"), err);
    int64_t eval_id = sqlite3_last_insert_rowid(j->db); /* snapshots */
    if (shared != 0) {
        size_t at = ev->inputs_shared_at, shared_len = ev->inputs_shared_len;
        char *rest = splice_reserve(j, len - shared_len);
        memcpy(rest, inputs, at);
        memcpy(rest + at, inputs + at + shared_len, len - at - shared_len);
        rest[len - shared_len] = '\0';
        st = stmt_get(j, ST_SPLIT_INSERT);
        rc = bind_params(st, "IIIs", eval_id, shared, (int64_t)at, rest);
        if (bind_and_step(st, rc) != SQLITE_DONE)
            code = store_error(j, err, "eval_record: inputs");
    }
    /* snapshots: in the row's transaction, so a snapshot never names a lost evaluation. */
    if (code == 0 && ev->snapshot_json != NULL) {
        st = stmt_get(j, ST_SNAPSHOT_INSERT);
        rc = bind_params(st, "IsIs", eval_id, ev->policy, ev->at_ms, ev->snapshot_json);
        if (bind_and_step(st, rc) != SQLITE_DONE)
            code = store_error(j, err, "eval_record: snapshot");
    }
    return buffered_end(j, code, err);
}

int sw_journal_flush(struct sw_journal *j, struct sw_error *err)
{
    if (j->durable_lost) {
        j->durable_lost = false;
        txn_commit(j, NULL);
        snprintf(j->last_error, sizeof(j->last_error),
                 "SQLite rolled back a transaction holding durable writes");
        return sw_error_set(err, SW_ESTORE, "journal: %s", j->last_error);
    }
    return txn_commit(j, err);
}

void sw_journal_set_coalesce(struct sw_journal *j, void (*on_pending)(void *ud), void *ud)
{
    if (on_pending == NULL && j->durable_pending) {
        struct sw_error err = {0};
        if (txn_commit(j, &err) < 0)
            sw_log(SW_LOG_ERROR, "journal", "%s: %s", j->path, err.msg);
    }
    j->on_pending = on_pending;
    j->pending_ud = ud;
}

int sw_journal_barrier(struct sw_journal *j, struct sw_error *err)
{
    if (!j->durable_pending && !j->durable_lost)
        return 0;
    return sw_journal_flush(j, err);
}

/* Stored JSON comes back parsed; text that does not parse (a writer bypassing the runtime)
 * is returned as a string rather than dropped. */
static void add_json_column(cJSON *obj, const char *name, sqlite3_stmt *st, int col)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    if (text == NULL) {
        cJSON_AddNullToObject(obj, name);
        return;
    }
    cJSON *parsed = cJSON_ParseWithLength(text, (size_t)sqlite3_column_bytes(st, col));
    if (parsed != NULL)
        cJSON_AddItemToObject(obj, name, parsed);
    else
        cJSON_AddStringToObject(obj, name, text);
}

static void add_text_column(cJSON *obj, const char *name, sqlite3_stmt *st, int col)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    if (text != NULL)
        cJSON_AddStringToObject(obj, name, text);
    else
        cJSON_AddNullToObject(obj, name);
}

/* history: the inputs of the row under st (EVAL_COLS) as the runtime wrote them, the
 * shared part spliced back; NULL when not recorded or when the shared row is missing (a
 * partial text would read as inputs without units). Borrowed until the next step or
 * splice; *len_out its length. */
static const char *row_inputs(struct sw_journal *j, sqlite3_stmt *st, size_t *len_out)
{
    const char *rest = (const char *)sqlite3_column_text(st, 11);
    if (rest == NULL) { /* written whole (schema 2, a digest collision), or not at all */
        *len_out = (size_t)sqlite3_column_bytes(st, 4);
        return (const char *)sqlite3_column_text(st, 4);
    }
    size_t rest_len = (size_t)sqlite3_column_bytes(st, 11);
    const char *shared = (const char *)sqlite3_column_text(st, 13);
    if (shared == NULL)
        return NULL;
    size_t shared_len = (size_t)sqlite3_column_bytes(st, 13);
    int64_t at_col = sqlite3_column_int64(st, 12);
    size_t at = at_col < 0 ? 0 : (size_t)at_col > rest_len ? rest_len : (size_t)at_col;
    char *text = splice_reserve(j, rest_len + shared_len);
    memcpy(text, rest, at);
    memcpy(text + at, shared, shared_len);
    memcpy(text + at + shared_len, rest + at, rest_len - at);
    text[rest_len + shared_len] = '\0';
    *len_out = rest_len + shared_len;
    return text;
}

static void add_inputs(struct sw_journal *j, cJSON *obj, sqlite3_stmt *st)
{
    size_t len = 0;
    const char *text = row_inputs(j, st, &len);
    cJSON *parsed = text != NULL ? cJSON_ParseWithLength(text, len) : NULL;
    if (parsed != NULL)
        cJSON_AddItemToObject(obj, "inputs", parsed);
    else if (text != NULL)
        cJSON_AddStringToObject(obj, "inputs", text);
    else
        cJSON_AddNullToObject(obj, "inputs");
}

char *sw_journal_evals_json(struct sw_journal *j, const char *policy, int64_t from_ms,
                            int64_t to_ms, size_t limit, struct sw_error *err)
{
    sqlite3_stmt *st = stmt_get(j, policy != NULL ? ST_EVAL_SELECT_POLICY : ST_EVAL_SELECT_ALL);
    int rc = policy != NULL ? bind_params(st, "sIII", policy, from_ms, to_ms, sql_limit(limit))
                            : bind_params(st, "III", from_ms, to_ms, sql_limit(limit));
    cJSON *arr = cJSON_CreateArray();
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddNumberToObject(obj, "id", (double)sqlite3_column_int64(st, 0));
        add_text_column(obj, "policy", st, 1);
        cJSON_AddNumberToObject(obj, "at_ms", (double)sqlite3_column_int64(st, 2));
        add_text_column(obj, "inputs_digest", st, 3);
        add_inputs(j, obj, st);
        add_json_column(obj, "desired", st, 5);
        add_json_column(obj, "actions", st, 6);
        add_json_column(obj, "refused", st, 7);
        add_json_column(obj, "explain", st, 8);
        add_text_column(obj, "error", st, 9);
        cJSON_AddNumberToObject(obj, "duration_ms", sqlite3_column_double(st, 10));
        cJSON_AddItemToArray(arr, obj);
    }
    int code = rc == SQLITE_DONE ? 0 : store_error(j, err, "evals_json");
    stmt_done(st);
    char *owned = NULL;
    if (code == 0) {
        char *text = cJSON_PrintUnformatted(arr);
        owned = sw_xstrdup(text);
        cJSON_free(text);
    }
    cJSON_Delete(arr);
    return owned;
}

int64_t sw_journal_eval_count(struct sw_journal *j)
{
    return count_query(j, stmt_get(j, ST_EVAL_COUNT), SQLITE_OK, "eval_count");
}

/* ---- history ------------------------------------------------------------------------- */

int sw_journal_eval_inputs(struct sw_journal *j, int64_t id, char **inputs_out,
                           struct sw_error *err)
{
    *inputs_out = NULL;
    sqlite3_stmt *st = stmt_get(j, ST_EVAL_INPUTS);
    int rc = bind_params(st, "I", id);
    rc = rc == SQLITE_OK ? sqlite3_step(st) : rc;
    int code = 0;
    if (rc == SQLITE_ROW) {
        size_t len = 0;
        const char *text = row_inputs(j, st, &len);
        if (text != NULL)
            *inputs_out = sw_xstrndup(text, len);
    } else if (rc == SQLITE_DONE) {
        code = SW_ENOENT;
    } else {
        code = store_error(j, err, "eval_inputs");
    }
    stmt_done(st);
    return code;
}

/* snapshots: the point before which policy's evaluations may go: the latest snapshot at or
 * before before_ms (its evaluation and everything after it stay, so replay can start
 * there), or, when the policy has none that old (history written before snapshots, or a
 * policy that never evaluated successfully), before_ms itself, as retention did before. */
static int prune_cut(struct sw_journal *j, const char *policy, int64_t before_ms, int64_t *cut_ms,
                     int64_t *cut_id, bool *at_snapshot)
{
    sqlite3_stmt *st = stmt_get(j, ST_PRUNE_CUT);
    int rc = bind_params(st, "sI", policy, before_ms);
    rc = rc == SQLITE_OK ? sqlite3_step(st) : rc;
    *at_snapshot = rc == SQLITE_ROW;
    *cut_id = *at_snapshot ? sqlite3_column_int64(st, 0) : INT64_MIN;
    *cut_ms = *at_snapshot ? sqlite3_column_int64(st, 1) : before_ms;
    stmt_done(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* snapshots: one policy's share of a batch: up to *budget of its evaluations before its cut,
 * then the snapshots whose evaluation is gone. -1 on a store error (reported by the caller);
 * *evals_out, *snaps_out count what went, *mark_ms rises to the cut when evaluations did. */
static int prune_policy(struct sw_journal *j, const char *policy, int64_t before_ms,
                        int64_t *budget, size_t batch, int64_t *evals_out, int64_t *snaps_out,
                        int64_t *mark_ms)
{
    int64_t cut_ms = 0, cut_id = 0;
    bool at_snapshot = false;
    if (prune_cut(j, policy, before_ms, &cut_ms, &cut_id, &at_snapshot) < 0)
        return -1;
    if (*budget > 0) {
        sqlite3_stmt *split = stmt_get(j, ST_PRUNE_SPLIT);
        sqlite3_stmt *st = stmt_get(j, ST_PRUNE_EVALS);
        if (bind_and_step(split, bind_params(split, "sIII", policy, cut_ms, cut_id, *budget)) !=
                SQLITE_DONE ||
            bind_and_step(st, bind_params(st, "sIII", policy, cut_ms, cut_id, *budget)) !=
                SQLITE_DONE)
            return -1;
        int64_t gone = sqlite3_changes(j->db);
        *budget -= gone;
        *evals_out += gone;
        if (gone > 0 && cut_ms > *mark_ms)
            *mark_ms = cut_ms;
    }
    if (!at_snapshot || *snaps_out >= (int64_t)batch)
        return 0;
    sqlite3_stmt *st = stmt_get(j, ST_PRUNE_SNAPSHOTS);
    if (bind_and_step(st, bind_params(st, "sIII", policy, cut_ms, cut_id,
                                      (int64_t)batch - *snaps_out)) != SQLITE_DONE)
        return -1;
    *snaps_out += sqlite3_changes(j->db);
    return 0;
}

int sw_journal_history_prune(struct sw_journal *j, int64_t before_ms, size_t batch,
                             bool *more_out, struct sw_error *err)
{
    *more_out = false;
    if (batch == 0)
        return invalid(j, err, "history_prune: batch");
    int code = txn_open(j, false, err);
    if (code < 0)
        return code;
    /* A savepoint makes the batch all or nothing (an evaluation never loses only its split
     * inputs) without undoing what is buffered in the same transaction. */
    if (sqlite3_exec(j->db, "SAVEPOINT history_prune", NULL, NULL, NULL) != SQLITE_OK) {
        code = store_error(j, err, "history_prune");
        txn_check_lost(j);
        return code;
    }
    int64_t limit = sql_limit(batch);
    int64_t evals = 0, shared = 0, snaps = 0, mark_ms = INT64_MIN;
    /* snapshots: per policy, so that each one's kept history starts at a snapshot. The
     * names are copied out first: the deletes must not run under an open read of the same
     * table. */
    char **policies = NULL;
    size_t policy_count = 0;
    sqlite3_stmt *st = stmt_get(j, ST_PRUNE_POLICIES);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        policies = sw_xrealloc(policies, (policy_count + 1) * sizeof(*policies));
        policies[policy_count++] = col_str(st, 0);
    }
    stmt_done(st);
    if (rc != SQLITE_DONE)
        code = store_error(j, err, "history_prune: policies");
    int64_t budget = limit;
    for (size_t i = 0; code == 0 && i < policy_count; i++) {
        if (prune_policy(j, policies[i], before_ms, &budget, batch, &evals, &snaps, &mark_ms) < 0)
            code = store_error(j, err, "history_prune");
    }
    for (size_t i = 0; i < policy_count; i++)
        free(policies[i]);
    free(policies);
    if (code == 0) {
        st = stmt_get(j, ST_PRUNE_SHARED);
        if (bind_and_step(st, bind_params(st, "I", limit)) != SQLITE_DONE)
            code = store_error(j, err, "history_prune: shared inputs");
        else
            shared = sqlite3_changes(j->db);
    }
    /* The mark lets replay and the admin API tell "deleted" from "never recorded". With
     * snapshots it is the newest cut: every deleted evaluation is older than it. */
    if (code == 0 && evals > 0) {
        st = stmt_get(j, ST_PRUNE_MARK);
        char mark[24];
        snprintf(mark, sizeof(mark), "%lld", (long long)mark_ms);
        if (bind_and_step(st, bind_params(st, "s", mark)) != SQLITE_DONE)
            code = store_error(j, err, "history_prune: mark");
    }
    if (shared > 0)
        j->shared_last_id = 0; /* its row may be among them */
    if (code < 0) {
        if (!sqlite3_get_autocommit(j->db) &&
            sqlite3_exec(j->db, "ROLLBACK TO history_prune; RELEASE history_prune", NULL, NULL,
                         NULL) != SQLITE_OK)
            sw_log(SW_LOG_ERROR, "journal", "%s: history_prune: rollback: %s", j->path,
                   sqlite3_errmsg(j->db));
        txn_check_lost(j);
        return code;
    }
    if (sqlite3_exec(j->db, "RELEASE history_prune", NULL, NULL, NULL) != SQLITE_OK) {
        code = store_error(j, err, "history_prune");
        txn_check_lost(j);
        return code;
    }
    *more_out = evals == (int64_t)batch || shared == (int64_t)batch || snaps == (int64_t)batch;
    return txn_commit(j, err);
}

/* snapshots */
void sw_snapshot_clear(struct sw_snapshot *s)
{
    if (s == NULL)
        return;
    free(s->state_json);
    memset(s, 0, sizeof(*s));
}

int sw_journal_snapshot_find(struct sw_journal *j, const char *policy, int64_t at_ms,
                             int64_t eval_id, struct sw_snapshot *out, struct sw_error *err)
{
    memset(out, 0, sizeof(*out));
    if (policy == NULL)
        return invalid(j, err, "snapshot_find");
    sqlite3_stmt *st = stmt_get(j, ST_SNAPSHOT_FIND);
    int rc = bind_params(st, "sII", policy, at_ms, eval_id);
    rc = rc == SQLITE_OK ? sqlite3_step(st) : rc;
    int code = 0;
    if (rc == SQLITE_ROW) {
        out->eval_id = sqlite3_column_int64(st, 0);
        out->at_ms = sqlite3_column_int64(st, 1);
        out->state_json = col_str(st, 2);
    } else if (rc == SQLITE_DONE) {
        code = SW_ENOENT;
    } else {
        code = store_error(j, err, "snapshot_find");
    }
    stmt_done(st);
    return code;
}

int sw_journal_history_span(struct sw_journal *j, struct sw_history_span *out,
                            struct sw_error *err)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = stmt_get(j, ST_HISTORY_SPAN);
    int rc = sqlite3_step(st);
    int code = 0;
    if (rc == SQLITE_ROW) {
        out->any = sqlite3_column_type(st, 0) != SQLITE_NULL;
        out->oldest_ms = sqlite3_column_int64(st, 0);
        out->newest_ms = sqlite3_column_int64(st, 1);
        out->pruned_before_ms = sqlite3_column_int64(st, 2);
    } else {
        code = store_error(j, err, "history_span");
    }
    stmt_done(st);
    return code;
}

bool sw_journal_history_gap(const struct sw_history_span *span, int64_t from_ms, char *buf,
                            size_t size)
{
    if (span->pruned_before_ms == 0 || from_ms >= span->pruned_before_ms)
        return false;
    char cut[SW_UTC_TEXT_LEN], oldest[SW_UTC_TEXT_LEN], newest[SW_UTC_TEXT_LEN];
    sw_clock_utc_text(span->pruned_before_ms, cut);
    sw_clock_utc_text(span->oldest_ms, oldest);
    sw_clock_utc_text(span->newest_ms, newest);
    if (span->any)
        snprintf(buf, size,
                 "evaluations before %s were deleted (history.keep); the journal holds %s to %s",
                 cut, oldest, newest);
    else
        snprintf(buf, size,
                 "evaluations before %s were deleted (history.keep); the journal holds none", cut);
    return true;
}

/* ---- policy state -------------------------------------------------------------------- */

/* One-text-column lookup: 0 with *value_out set, SW_ENOENT, or SW_ESTORE. */
static int text_lookup(struct sw_journal *j, sqlite3_stmt *st, int bind_rc, char **value_out,
                       struct sw_error *err, const char *what)
{
    int rc = bind_rc == SQLITE_OK ? sqlite3_step(st) : bind_rc;
    int code = 0;
    if (rc == SQLITE_ROW)
        *value_out = col_str(st, 0);
    else if (rc == SQLITE_DONE)
        code = SW_ENOENT;
    else
        code = store_error(j, err, what);
    stmt_done(st);
    return code;
}

int sw_journal_state_get(struct sw_journal *j, const char *policy, char **value_out,
                         struct sw_error *err)
{
    *value_out = NULL;
    if (policy == NULL)
        return invalid(j, err, "state_get");
    sqlite3_stmt *st = stmt_get(j, ST_STATE_GET);
    int code = text_lookup(j, st, bind_params(st, "s", policy), value_out, err, "state_get");
    return code == SW_ENOENT ? 0 : code;
}

int sw_journal_state_set(struct sw_journal *j, const char *policy, const char *json,
                         struct sw_error *err)
{
    if (policy == NULL || json == NULL)
        return invalid(j, err, "state_set");
    int code = txn_open(j, false, err);
    if (code < 0)
        return code;
    sqlite3_stmt *st = stmt_get(j, ST_STATE_SET);
    if (bind_and_step(st, bind_params(st, "ss", policy, json)) != SQLITE_DONE)
        code = store_error(j, err, "state_set");
    return buffered_end(j, code, err);
}

/* ---- kv ------------------------------------------------------------------------------ */

/* The calls without a struct sw_error log their store failures (once) on the way out. */
static int log_failure(struct sw_journal *j, int code)
{
    if (code == SW_ESTORE)
        sw_log(SW_LOG_ERROR, "journal", "%s: %s", j->path, j->last_error);
    return code;
}

int sw_journal_kv_get(struct sw_journal *j, const char *ns, const char *key, char **value_out)
{
    *value_out = NULL;
    if (ns == NULL || key == NULL)
        return invalid(j, NULL, "kv_get");
    sqlite3_stmt *st = stmt_get(j, ST_KV_GET);
    return log_failure(
        j, text_lookup(j, st, bind_params(st, "ss", ns, key), value_out, NULL, "kv_get"));
}

int sw_journal_kv_set(struct sw_journal *j, const char *ns, const char *key, const char *value)
{
    if (ns == NULL || key == NULL || value == NULL)
        return invalid(j, NULL, "kv_set");
    int code = txn_open(j, true, NULL);
    if (code < 0)
        return log_failure(j, code);
    sqlite3_stmt *st = stmt_get(j, ST_KV_SET);
    if (bind_and_step(st, bind_params(st, "sss", ns, key, value)) != SQLITE_DONE)
        code = store_error(j, NULL, "kv_set");
    return log_failure(j, durable_end(j, code, NULL));
}

int sw_journal_kv_del(struct sw_journal *j, const char *ns, const char *key)
{
    if (ns == NULL || key == NULL)
        return invalid(j, NULL, "kv_del");
    int code = txn_open(j, true, NULL);
    if (code < 0)
        return log_failure(j, code);
    sqlite3_stmt *st = stmt_get(j, ST_KV_DEL);
    bool absent = false;
    if (bind_and_step(st, bind_params(st, "ss", ns, key)) != SQLITE_DONE)
        code = store_error(j, NULL, "kv_del");
    else
        absent = sqlite3_changes(j->db) == 0;
    code = log_failure(j, durable_end(j, code, NULL));
    return code == 0 && absent ? SW_ENOENT : code;
}

/* ha: the whole key-value space, read once per takeover (so not a cached statement). */
int sw_journal_kv_list(struct sw_journal *j, char ***entries_out, size_t *count_out)
{
    *entries_out = NULL;
    *count_out = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db, "SELECT ns, key FROM kv ORDER BY ns, key", -1, &st, NULL) !=
        SQLITE_OK)
        return log_failure(j, store_error(j, NULL, "kv_list"));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *ns = (const char *)sqlite3_column_text(st, 0);
        const char *key = (const char *)sqlite3_column_text(st, 1);
        *entries_out = sw_xrealloc(*entries_out, (*count_out + 1) * sizeof(**entries_out));
        (*entries_out)[(*count_out)++] =
            sw_xasprintf("%s/%s", ns != NULL ? ns : "", key != NULL ? key : "");
    }
    int code = rc == SQLITE_DONE ? 0 : store_error(j, NULL, "kv_list");
    sqlite3_finalize(st);
    if (code < 0) {
        for (size_t i = 0; i < *count_out; i++)
            free((*entries_out)[i]);
        free(*entries_out);
        *entries_out = NULL;
        *count_out = 0;
    }
    return log_failure(j, code);
}

/* ---- events -------------------------------------------------------------------------- */

int sw_journal_compact(struct sw_journal *j, struct sw_error *err)
{
    int code = txn_open(j, true, err);
    if (code < 0)
        return code;
    char sql[160];
    snprintf(sql, sizeof(sql),
             "DELETE FROM intents WHERE state <> %d; DELETE FROM units WHERE state = %d; "
             "DELETE FROM events;",
             SW_INTENT_PENDING, SW_UNIT_CLOSED);
    if (sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        code = store_error(j, err, "compact");
    return durable_end(j, code, err);
}

int sw_journal_event(struct sw_journal *j, int64_t at_ms, const char *type, const char *data_json)
{
    if (type == NULL)
        return invalid(j, NULL, "event");
    int code = txn_open(j, false, NULL);
    if (code < 0)
        return log_failure(j, code);
    sqlite3_stmt *st = stmt_get(j, ST_EVENT_INSERT);
    if (bind_and_step(st, bind_params(st, "Iss", at_ms, type, data_json)) != SQLITE_DONE)
        code = store_error(j, NULL, "event");
    return log_failure(j, buffered_end(j, code, NULL));
}

void sw_journal_events_free(struct sw_event_record *events, size_t count)
{
    for (size_t i = 0; events != NULL && i < count; i++) {
        free(events[i].type);
        free(events[i].data_json);
    }
    free(events);
}

int sw_journal_events(struct sw_journal *j, int64_t after_id, size_t limit,
                      struct sw_event_record **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    struct sw_event_record *items = NULL;
    size_t used = 0, cap = 0;
    sqlite3_stmt *st = stmt_get(j, ST_EVENT_SELECT);
    int rc = bind_params(st, "II", after_id, sql_limit(limit));
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        if (used == cap) {
            cap = cap ? cap * 2 : 16;
            items = sw_xrealloc(items, cap * sizeof(*items));
        }
        items[used++] = (struct sw_event_record){
            .id = sqlite3_column_int64(st, 0),
            .at_ms = sqlite3_column_int64(st, 1),
            .type = col_str(st, 2),
            .data_json = col_str(st, 3),
        };
    }
    int code = rc == SQLITE_DONE ? 0 : store_error_log(j, "events");
    stmt_done(st);
    if (code < 0) {
        sw_journal_events_free(items, used);
        return code;
    }
    *out = items;
    *count = used;
    return 0;
}

/* ---- meta ---------------------------------------------------------------------------- */

int sw_journal_meta_get(struct sw_journal *j, const char *key, char **value_out)
{
    *value_out = NULL;
    if (key == NULL)
        return invalid(j, NULL, "meta_get");
    sqlite3_stmt *st = stmt_get(j, ST_META_GET);
    return log_failure(j,
                       text_lookup(j, st, bind_params(st, "s", key), value_out, NULL, "meta_get"));
}

int sw_journal_meta_set(struct sw_journal *j, const char *key, const char *value)
{
    if (key == NULL || value == NULL)
        return invalid(j, NULL, "meta_set");
    int code = txn_open(j, true, NULL);
    if (code < 0)
        return log_failure(j, code);
    sqlite3_stmt *st = stmt_get(j, ST_META_SET);
    if (bind_and_step(st, bind_params(st, "ss", key, value)) != SQLITE_DONE)
        code = store_error(j, NULL, "meta_set");
    return log_failure(j, durable_end(j, code, NULL));
}

/* ---- provider track record ------------------------------------------------------------ */

void sw_provider_rows_free(struct sw_provider_row *rows, size_t count)
{
    for (size_t i = 0; rows != NULL && i < count; i++)
        free(rows[i].provider);
    free(rows);
}

int sw_journal_provider_save(struct sw_journal *j, const struct sw_provider_row *row,
                             struct sw_error *err)
{
    if (row == NULL || row->provider == NULL)
        return invalid(j, err, "provider_save");
    int code = txn_open(j, false, err);
    if (code < 0)
        return code;
    sqlite3_stmt *st = stmt_get(j, ST_PROVIDER_SAVE);
    int rc = bind_params(st, "sIIdIdIIi", row->provider, row->bids, row->acquires,
                         row->ready_ms_sum, row->closures, row->lease_hours, row->probe_failures,
                         row->backoff_until_ms, row->backoff_strikes);
    if (bind_and_step(st, rc) != SQLITE_DONE)
        code = store_error(j, err, "provider_save");
    return buffered_end(j, code, err);
}

int sw_journal_providers_load(struct sw_journal *j, struct sw_provider_row **out, size_t *count,
                              struct sw_error *err)
{
    *out = NULL;
    *count = 0;
    struct sw_provider_row *rows = NULL;
    size_t used = 0, cap = 0;
    sqlite3_stmt *st = stmt_get(j, ST_PROVIDER_LOAD);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (used == cap) {
            cap = cap ? cap * 2 : 16;
            rows = sw_xrealloc(rows, cap * sizeof(*rows));
        }
        rows[used++] = (struct sw_provider_row){
            .provider = col_str(st, 0),
            .bids = sqlite3_column_int64(st, 1),
            .acquires = sqlite3_column_int64(st, 2),
            .ready_ms_sum = sqlite3_column_double(st, 3),
            .closures = sqlite3_column_int64(st, 4),
            .lease_hours = sqlite3_column_double(st, 5),
            .probe_failures = sqlite3_column_int64(st, 6),
            .backoff_until_ms = sqlite3_column_int64(st, 7),
            .backoff_strikes = sqlite3_column_int(st, 8),
        };
    }
    int code = rc == SQLITE_DONE ? 0 : store_error(j, err, "providers_load");
    stmt_done(st);
    if (code < 0) {
        sw_provider_rows_free(rows, used);
        return code;
    }
    *out = rows;
    *count = used;
    return 0;
}
