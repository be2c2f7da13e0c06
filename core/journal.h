/* journal.h — the SQLite (WAL) journal: intents before actions, outcomes after, every
 * evaluation, policy state, plugin KV and events.
 *
 * Intent before action: sw_journal_intent_begin commits (durably) before the caller may
 * send anything to a marketplace. On start, sw_journal_intents_pending lists what was
 * begun and never finished, to be resolved before any new decision.
 * Evaluations are buffered in an open transaction and committed by sw_journal_flush (or by
 * the next intent), which is what makes 20k+ records/s possible.
 * Schema migrations use PRAGMA user_version.
 * "Commits"/"durable" below means: on return the write survives the steward process being
 * killed (WAL, synchronous=NORMAL; journal.c explains why not FULL). "Buffered" means: in
 * the open transaction, visible to this connection at once, to other connections and to a
 * restart only after the next commit; lost if the process dies first. A buffered write
 * also commits by itself once 1000 records are pending.
 * Calls without a struct sw_error log store failures and keep the message for
 * sw_journal_last_error.
 * Context: loop thread only; one connection.
 */
#ifndef SW_JOURNAL_H
#define SW_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "model.h"

struct sw_journal;

enum sw_intent_state {
    SW_INTENT_PENDING = 0,
    SW_INTENT_DONE = 1,
    SW_INTENT_FAILED = 2,
    SW_INTENT_ABANDONED = 3, /* resolved by recovery: nothing to finish */
};

struct sw_intent {
    int64_t id;
    char *key;        /* idempotency key (for acquire, the unit key) */
    int kind;         /* enum sw_action_kind */
    char *group;
    char *region;
    char *unit_key;   /* release: the unit */
    char *market_id;  /* set once the marketplace answered */
    int state;        /* enum sw_intent_state */
    int64_t created_ms;
    int64_t updated_ms;
    char *reason;     /* why it was planned */
    char *outcome;    /* what happened */
};

/* Frees the strings and zeroes in (NULL ok); in itself is not freed. */
void sw_intent_clear(struct sw_intent *in);

struct sw_evaluation {
    const char *policy;
    int64_t at_ms;
    const char *inputs_digest;   /* hex digest of the inputs */
    const char *inputs_json;     /* the inputs themselves (for replay); may be NULL */
    const char *desired_json;
    const char *actions_json;    /* planned and executed */
    const char *refused_json;    /* refused by the guard, with reasons */
    const char *explain_json;    /* the policy's ctx.explain notes */
    const char *error;           /* policy error, or NULL */
    double duration_ms;
    /* history: the part of inputs_json that rarely changes between ticks (the runtime: its
     * units and offers), inputs_json[inputs_shared_at, inputs_shared_at + inputs_shared_len).
     * The journal stores each distinct such text once (table eval_inputs) and the row keeps
     * the rest; reading splices it back, byte for byte. inputs_shared_len 0: stored whole. */
    size_t inputs_shared_at;
    size_t inputs_shared_len;
    /* snapshots: the policy's ctx.state as JSON right after this evaluation, stored with
     * it (table eval_snapshots, same transaction) so replay can start here; NULL: none. */
    const char *snapshot_json;
};

struct sw_event_record {
    int64_t id;
    int64_t at_ms;
    char *type;
    char *data_json;
};

/* Open (creating and migrating) the journal at path. ":memory:" works for tests.
 * Owned; close with sw_journal_close. NULL with err (SW_ESTORE + sqlite message) when the
 * file cannot be opened, is not a database, or has a schema version newer than this code
 * ("journal <path> has schema version N, this steward knows up to M: upgrade steward"). */
struct sw_journal *sw_journal_open(const char *path, struct sw_error *err);
/* Commits buffered records and closes. NULL is a no-op. */
void sw_journal_close(struct sw_journal *j);
/* Message of the last failure ("what: sqlite message"), "" if none yet. Borrowed until the
 * next call on j. Useful after the calls that take no struct sw_error. */
const char *sw_journal_last_error(const struct sw_journal *j);

/* ---- intents ---- */
/* Durably record an intent (commits, together with anything buffered). Fails with
 * SW_EEXIST if key exists (the buffered records are committed anyway), SW_EINVAL without a
 * key, SW_ESTORE. *id_out (may be NULL) gets the row id. Strings are borrowed. */
int sw_journal_intent_begin(struct sw_journal *j, int kind, const char *key,
                            const char *group, const char *region, const char *unit_key,
                            const char *reason, int64_t now_ms, int64_t *id_out,
                            struct sw_error *err);
/* Record the marketplace id as soon as it is known (commits). SW_ENOENT if no such key. */
int sw_journal_intent_set_market_id(struct sw_journal *j, const char *key,
                                    const char *market_id, int64_t now_ms,
                                    struct sw_error *err);
/* Finish an intent with state DONE/FAILED/ABANDONED and a short outcome (commits).
 * SW_EINVAL for any other state, SW_ENOENT if no such key. Finishing again overwrites. */
int sw_journal_intent_finish(struct sw_journal *j, const char *key, int state,
                             const char *outcome, int64_t now_ms, struct sw_error *err);
/* Look one up by key: 0, SW_ENOENT, or SW_ESTORE. out is filled (clear with
 * sw_intent_clear). */
int sw_journal_intent_get(struct sw_journal *j, const char *key, struct sw_intent *out,
                          struct sw_error *err);
/* All PENDING intents, oldest first. *out is an owned array (sw_intent_clear each, then
 * free). */
int sw_journal_intents_pending(struct sw_journal *j, struct sw_intent **out, size_t *count,
                               struct sw_error *err);
/* How many intents ever used this key (for tests and recovery assertions); SW_ESTORE
 * (< 0) on failure. */
int64_t sw_journal_intent_count(struct sw_journal *j, const char *key);

/* ---- units (the owned set) ---- */
/* Insert or replace the unit's row, keyed by u->key (commits). u is borrowed. */
int sw_journal_unit_save(struct sw_journal *j, const struct sw_unit *u, struct sw_error *err);
/* Every unit not closed, every field restored (units_out is appended to; caller owns
 * them), ordered by ordered_ms then key. On failure units_out is left unchanged. */
int sw_journal_units_load(struct sw_journal *j, struct sw_units *units_out,
                          struct sw_error *err);
/* Count of units in the journal by state (state < 0: all not closed); SW_ESTORE (< 0) on
 * failure. */
int64_t sw_journal_unit_count(struct sw_journal *j, int state);

/* ---- evaluations ---- */
/* Buffered: stays in the open transaction until sw_journal_flush or the next commit.
 * ev and its strings are borrowed; policy is required (SW_EINVAL), the rest may be NULL. */
int sw_journal_eval_record(struct sw_journal *j, const struct sw_evaluation *ev,
                           struct sw_error *err);
/* Commit what is buffered (a no-op when nothing is). The runtime calls it once per tick
 * batch. On SW_ESTORE the buffered records are lost (rolled back). */
int sw_journal_flush(struct sw_journal *j, struct sw_error *err);
/* Coalescing of durable writes (see journal.c). With on_pending set, a durable call no
 * longer commits on return: its row stays in the open transaction, and on_pending(ud) is
 * called once when the first such row is waiting. The owner must then call
 * sw_journal_barrier before anything that depends on those rows leaves the process, and
 * soon after on_pending (the live runtime: at the end of the loop turn). NULL turns
 * coalescing off and commits what is waiting. on_pending must not call the journal. */
void sw_journal_set_coalesce(struct sw_journal *j, void (*on_pending)(void *ud), void *ud);
/* Commit the durable writes waiting under coalescing (a no-op when none wait; buffered
 * records go with them). SW_ESTORE when the commit failed or SQLite had already rolled
 * them back: the caller must not act on them. */
int sw_journal_barrier(struct sw_journal *j, struct sw_error *err);
/* Evaluations of a policy (NULL = all) with at_ms in [from_ms, to_ms], oldest first, up to
 * limit (0 = no limit), as a JSON array text (owned, free()). Each object has id, policy,
 * at_ms, inputs_digest, inputs, desired, actions, refused, explain (parsed JSON, null when
 * not recorded), error (string or null) and duration_ms. Buffered records are included.
 * NULL with err on failure. */
char *sw_journal_evals_json(struct sw_journal *j, const char *policy, int64_t from_ms,
                            int64_t to_ms, size_t limit, struct sw_error *err);
/* Rows in evaluations, buffered ones included; SW_ESTORE (< 0) on failure. */
int64_t sw_journal_eval_count(struct sw_journal *j);

/* ---- history (evaluation retention) ---- */
/* The inputs of evaluation id exactly as recorded (the shared part spliced back): 0 with
 * *inputs_out owned (free()), NULL when recorded without inputs or when its shared part is
 * gone; SW_ENOENT when no such row; SW_ESTORE. Buffered records included. */
int sw_journal_eval_inputs(struct sw_journal *j, int64_t id, char **inputs_out,
                           struct sw_error *err);
/* Deletes up to batch evaluations older than before_ms (oldest first per policy), then up
 * to batch rows of shared inputs no evaluation references any more, and commits (what is
 * buffered goes with it). snapshots: per policy, only evaluations ordered before its latest
 * snapshot at or before before_ms go (that snapshot's evaluation and all after it stay, so
 * its kept history starts at a snapshot), and up to batch of its older snapshots whose
 * evaluation is gone; a policy without such a snapshot loses those with at_ms < before_ms.
 * Touches no other table, except the meta entry marking the kept history (see
 * sw_history_span) when evaluations were deleted. All or nothing. *more_out: a batch was
 * full, so another call has more to delete. batch bounds the time the call blocks. 0,
 * SW_EINVAL (batch 0), SW_ESTORE. */
int sw_journal_history_prune(struct sw_journal *j, int64_t before_ms, size_t batch,
                             bool *more_out, struct sw_error *err);
struct sw_history_span {
    bool any;                 /* the journal holds evaluations */
    int64_t oldest_ms;        /* at_ms of the oldest and the newest (when any) */
    int64_t newest_ms;
    /* Retention deleted evaluations before it and none at or after it; 0: never. With
     * snapshots each policy was cut at its own snapshot, the newest of which is this, so an
     * older policy's kept history may start before it. */
    int64_t pruned_before_ms;
};
/* What sw_journal_history_prune left: 0 with *out filled, or SW_ESTORE. */
int sw_journal_history_span(struct sw_journal *j, struct sw_history_span *out,
                            struct sw_error *err);
/* For a reader asking for evaluations from from_ms on: when retention deleted some of that
 * span, writes into buf (size bytes) a sentence saying so and naming the span the journal
 * still holds (UTC times), and returns true; false (buf untouched) when nothing asked for
 * was deleted. Pure: no journal access. */
bool sw_journal_history_gap(const struct sw_history_span *span, int64_t from_ms, char *buf,
                            size_t size);

/* ---- snapshots (ctx.state after an evaluation, for replay) ---- */
struct sw_snapshot {
    int64_t eval_id;  /* the evaluation it follows */
    int64_t at_ms;    /* and its time */
    char *state_json; /* owned; "{}" for an empty ctx.state */
};
/* Frees the text and zeroes s (NULL ok). */
void sw_snapshot_clear(struct sw_snapshot *s);
/* The latest snapshot of policy whose evaluation is at or before (at_ms, eval_id) in journal
 * order (at_ms, then id): 0 with *out filled (clear with sw_snapshot_clear), SW_ENOENT when
 * there is none, SW_EINVAL without a policy, SW_ESTORE. Buffered records included. */
int sw_journal_snapshot_find(struct sw_journal *j, const char *policy, int64_t at_ms,
                             int64_t eval_id, struct sw_snapshot *out, struct sw_error *err);

/* ---- policy state ---- */
/* value_out owned, NULL if never saved (still 0). SW_ESTORE on failure. */
int sw_journal_state_get(struct sw_journal *j, const char *policy, char **value_out,
                         struct sw_error *err);
/* Buffered like evaluations. json is required. */
int sw_journal_state_set(struct sw_journal *j, const char *policy, const char *json,
                         struct sw_error *err);

/* ---- plugin key-value space ---- */
/* ns is the plugin's name. *value_out owned (free()), NULL unless 0 is returned. */
int sw_journal_kv_get(struct sw_journal *j, const char *ns, const char *key,
                      char **value_out); /* 0, SW_ENOENT, SW_ESTORE */
/* Insert or overwrite (commits). 0, SW_EINVAL, SW_ESTORE. */
int sw_journal_kv_set(struct sw_journal *j, const char *ns, const char *key,
                      const char *value);
/* Delete (commits). 0, SW_ENOENT if the key was absent, SW_ESTORE. */
int sw_journal_kv_del(struct sw_journal *j, const char *ns, const char *key);
/* ha: every entry as "<ns>/<key>" (owned array of owned strings: free each, then the array;
 * NULL when *count_out is 0). 0 or SW_ESTORE. */
int sw_journal_kv_list(struct sw_journal *j, char ***entries_out, size_t *count_out);

/* ---- compaction ---- */
/* Deletes what a running steward never reads back: finished intents (recovery looks only
 * at pending ones), closed units (loaded only to be skipped) and events (read by the
 * admin API and replay, not by the runtime). For a journal nobody keeps (a simulation's
 * in-memory one), so its memory stops growing with the actions taken; a live journal is
 * the record and is never compacted. Commits. 0 or SW_ESTORE. */
int sw_journal_compact(struct sw_journal *j, struct sw_error *err);

/* ---- events ---- */
/* Buffered. type is required; data_json may be NULL. */
int sw_journal_event(struct sw_journal *j, int64_t at_ms, const char *type,
                     const char *data_json);
/* Events with id > after_id, oldest first, up to limit (0 = no limit); owned array (free
 * each type and data_json, then the array, or call sw_journal_events_free). *out is NULL
 * when *count is 0. 0 or SW_ESTORE. Page with after_id = the last id seen. */
int sw_journal_events(struct sw_journal *j, int64_t after_id, size_t limit,
                      struct sw_event_record **out, size_t *count);
/* Frees what sw_journal_events returned (NULL ok). */
void sw_journal_events_free(struct sw_event_record *events, size_t count);

/* ---- meta ---- */
/* Process-level facts: the run seed, the instance id. *value_out owned (free()).
 * 0, SW_ENOENT, SW_ESTORE. */
int sw_journal_meta_get(struct sw_journal *j, const char *key, char **value_out);
/* Insert or overwrite (commits). 0, SW_EINVAL, SW_ESTORE. */
int sw_journal_meta_set(struct sw_journal *j, const char *key, const char *value);

/* ---- provider track record (track_record.c owns the meaning of the fields) ---- */
struct sw_provider_row {
    char *provider;           /* owned */
    int64_t bids;             /* leases won: the marketplace chose this provider */
    int64_t acquires;         /* of those, units that reached READY */
    double ready_ms_sum;      /* bid-to-ready (ordered → ready) summed over acquires */
    int64_t closures;         /* involuntary: closed by the provider, or failed once leased */
    double lease_hours;       /* READY time of leases that ended */
    int64_t probe_failures;
    int64_t backoff_until_ms; /* clock time the back-off ends; 0: never backed off */
    int backoff_strikes;      /* back-offs so far: the doubling's exponent */
};
/* Frees rows as returned by sw_journal_providers_load (NULL ok). */
void sw_provider_rows_free(struct sw_provider_row *rows, size_t count);
/* Insert or replace the row of row->provider. Buffered, like evaluations. row is borrowed.
 * SW_EINVAL without a provider, SW_ESTORE. */
int sw_journal_provider_save(struct sw_journal *j, const struct sw_provider_row *row,
                             struct sw_error *err);
/* Every row, by provider name (buffered saves included). *out is owned (free with
 * sw_provider_rows_free), NULL when *count is 0. 0 or SW_ESTORE. */
int sw_journal_providers_load(struct sw_journal *j, struct sw_provider_row **out, size_t *count,
                              struct sw_error *err);

#endif /* SW_JOURNAL_H */
