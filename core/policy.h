/* policy.h — one sandboxed Lua 5.4 policy: load, evaluate, react to events, hot-reload.
 *
 * A policy file returns a table {name, interval?, evaluate(ctx), on_event(ctx, ev)?}.
 * evaluate runs under lua_pcall with an instruction budget, a wall-time budget and a
 * memory cap; any failure keeps the last good desired state and returns SW_EPOLICY with a
 * traceback in err. See docs/policies.md for the ctx API.
 * Context: loop thread only.
 */
#ifndef SW_POLICY_H
#define SW_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "config.h"
#include "error.h"
#include "model.h"

struct sw_policy;
struct sw_provider_record;

/* Largest ctx.state, as JSON. */
#define SW_POLICY_STATE_MAX_BYTES (256u * 1024u)

struct sw_policy_opts {
    const char *name;           /* from config; the file's `name` field is informative */
    const char *file;           /* path of the .lua file */
    const char *lua_path;       /* directory holding steward/x.lua (require "steward.x") */
    const char *params_json;    /* ctx.params, a JSON object text; NULL = {} */
    struct sw_clock *clock;     /* borrowed: os.time() and the time budget's notion of now */
    uint64_t seed;              /* math.random seed */
    int64_t max_instructions;   /* per call; 0 = none: no hook, a watchdog keeps time */
    size_t memory_limit;        /* bytes; 0 = default 32 MiB */
    int64_t time_limit_ms;      /* real (monotonic) time per call; 0 = default 1000 */
    /* Where print/ctx.log go: the runtime logs with the policy's name. NULL = sw_log. */
    void (*log_fn)(void *ud, int level, const char *msg);
    void *log_ud;
};

/* One probe result as ctx.probes shows it (the runtime's probe scheduler fills these). */
struct sw_probe_status {
    char *target;        /* the URL probed */
    char *unit;          /* the unit's key; NULL for a target configured under probes.targets */
    char *group;         /* the unit's group and region, or NULL */
    char *region;
    bool ok;
    long http_status;    /* 0 when no response arrived */
    double connect_ms;   /* curl's timings, from the start of the request */
    double tls_ms;
    double first_byte_ms;
    double total_ms;
    char *error;         /* why it is not ok, or NULL */
};

/* What evaluate sees as ctx, borrowed for the call. */
struct sw_policy_input {
    int64_t now_ms;
    const struct sw_units *units;          /* ctx.leases (all units not closed) */
    const struct sw_offers *offers;        /* ctx.offers / ctx.price(region) */
    const struct sw_metric_set *metrics;   /* ctx.metrics.query(name) */
    const struct sw_group_config *groups;  /* ctx.groups */
    size_t group_count;
    double budget_usd_hour;                /* ctx.budget.usd_per_hour (0 = none) */
    double spend_usd_hour;                 /* ctx.budget.spend_usd_per_hour */
    const struct sw_probe_status *probes;  /* ctx.probes: the last round's results (geo) */
    size_t probe_count;
    /* ---- resilience (track_record.h) ---- */
    const struct sw_provider_record *providers; /* ctx.providers; NULL: none known */
    size_t provider_count;
    /* When providers is NULL and this is set, ctx.providers comes from it on first read
     * (the runtime's track record costs a pass over the units per provider: most policies
     * never look). Returns an array borrowed until the next call, count in *count. */
    const struct sw_provider_record *(*providers_fn)(void *ud, size_t *count);
    void *providers_ud;
};

/* A reason the policy attached with ctx.explain(group, region, text). */
struct sw_explanation {
    char *group;
    char *region; /* may be NULL: about the whole group */
    char *text;
};

struct sw_policy_result {
    struct sw_desired desired;          /* validated */
    struct sw_explanation *explanations; /* owned */
    size_t explanation_count;
    uint64_t instructions;              /* in units of 1000; 0 = not measured (no budget) */
    size_t memory_bytes;                /* Lua heap after the call */
};

void sw_policy_result_init(struct sw_policy_result *r);
void sw_policy_result_clear(struct sw_policy_result *r);
/* Frees the explanations and zeroes the counters but keeps the desired state, whose
 * storage the next sw_policy_eval into r reuses: a caller evaluating every tick keeps one
 * result instead of allocating one per tick. sw_policy_result_clear still frees it all. */
void sw_policy_result_reset(struct sw_policy_result *r);

/* Compile the file and run its chunk. Returns an owned policy (sw_policy_free) or NULL
 * with err (SW_EPOLICY for Lua errors, SW_EIO for an unreadable file). */
struct sw_policy *sw_policy_new(const struct sw_policy_opts *opts, struct sw_error *err);
void sw_policy_free(struct sw_policy *policy);

/* Run evaluate(ctx). On success fills out (cleared first) and remembers it as the last
 * good desired state. On failure returns SW_EPOLICY with the Lua message and traceback in
 * err, leaves out holding the last good desired state (empty if none), and counts the
 * error. */
int sw_policy_eval(struct sw_policy *policy, const struct sw_policy_input *in,
                   struct sw_policy_result *out, struct sw_error *err);

/* Call on_event(ctx, ev) if the policy defines it. ev_json is an object text whose fields
 * become the Lua table (type, market_id, reason, ...). Errors are SW_EPOLICY as above;
 * SW_EINVAL for ev_json that is not a JSON object (over 64 KiB included). in may be NULL
 * (here and in sw_policy_eval): ctx then has no units, offers, metrics or groups and its
 * now is the clock's. Explanations recorded by on_event are dropped. */
int sw_policy_on_event(struct sw_policy *policy, const struct sw_policy_input *in,
                       const char *ev_json, struct sw_error *err);

/* Events sw_policy_on_event answered without refreshing ctx because the module has no
 * on_event function (looked up without metamethods; a module with a metatable always
 * gets the full call). For the tests. */
uint64_t sw_policy_skipped_events(const struct sw_policy *policy);

/* True when the last successful on_event returned true: the policy asks to be evaluated
 * now rather than at its next interval (e.g. a job just started). */
bool sw_policy_event_wants_eval(const struct sw_policy *policy);

/* Recompile from the file. On failure the old version stays loaded and err says why.
 * On success ctx.state carries over (through JSON; a state that cannot be serialised is
 * dropped with a warning) and the new file's `interval` applies. A failed attempt also
 * counts as "the last (re)load" for sw_policy_file_changed, so a broken file is retried
 * only once it changes again. Reload failures do not count in sw_policy_error_count. */
int sw_policy_reload(struct sw_policy *policy, struct sw_error *err);
/* True when the file's mtime or size changed since the last (re)load. Under a simulated
 * clock the file is looked at once per real second at most (false in between). */
bool sw_policy_file_changed(struct sw_policy *policy);

/* ctx.state as JSON (owned), to persist after a good tick; NULL if empty (or, logged
 * through log_fn, if it cannot be serialised: see sw_policy_state_save). Keys are sorted,
 * so an unchanged state gives the same text. */
char *sw_policy_state_json(struct sw_policy *policy);
/* Same with the reason: 0 with *json_out owned (NULL when empty), SW_EINVAL (functions,
 * userdata, cycles, mixed keys, NaN...) or SW_ETOOBIG (over 256 KiB) with err filled.
 * Every successful evaluate/on_event already checked this, failing the call otherwise. */
int sw_policy_state_save(struct sw_policy *policy, char **json_out, struct sw_error *err);
/* Restore ctx.state from JSON saved earlier (the table keeps its identity; its fields are
 * replaced). SW_EINVAL on bad JSON, SW_ETOOBIG over the cap. */
int sw_policy_state_load(struct sw_policy *policy, const char *json);

const char *sw_policy_name(const struct sw_policy *policy);
int64_t sw_policy_interval_ms(const struct sw_policy *policy); /* `interval` field, 0 if none */
uint64_t sw_policy_error_count(const struct sw_policy *policy);
const struct sw_desired *sw_policy_last_good(const struct sw_policy *policy);
/* Full text (message and Lua traceback) of the last failed evaluate/on_event, which err
 * holds only truncated to 256 bytes; "" after a success. Borrowed until the next call. */
const char *sw_policy_last_error(const struct sw_policy *policy);

/* `steward test-policy SPEC`: run a Lua spec file inside the real sandbox with the
 * test helpers (describe/it/expect, steward.testing.load_policy, fake ctx builders).
 * Prints results; returns the process exit code (0 all passed). */
int sw_policy_test_main(const char *spec_path, const char *lua_path);

#endif /* SW_POLICY_H */
