/* replay.h — `steward replay`: re-run policies over the evaluation inputs a live journal
 * recorded and report every evaluation whose desired state differs ("what would v2 have
 * done yesterday?"). The unchanged policy reproduces the recorded decisions exactly, from
 * any starting point: each policy (seed config.seed + its index, as the runtime does) starts
 * from the journal's latest ctx.state snapshot before the first evaluation reported (table
 * eval_snapshots; an empty state at its very first evaluation, or in a journal written before
 * snapshots), replays the evaluations between silently to warm up, sees the recorded inputs
 * at the recorded time, and is compared on what evaluate returned (desired_json.policy),
 * before the guard. Another policy version (-c CONFIG) is seeded with the recorded state,
 * as an upgrade in production would be.
 * Context: one thread.
 */
#ifndef SW_REPLAY_H
#define SW_REPLAY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

struct sw_replay_opts {
    const char *state_path;  /* the journal (steward.db) */
    const char *config_path; /* names the policy files, params and seed */
    const char *lua_path;
    bool has_from, has_to;
    int64_t from_ms, to_ms; /* epoch ms, inclusive */
    FILE *out;              /* one line per difference; NULL: silent */
    bool json;              /* differences as a JSON array on out instead */
};

struct sw_replay_result {
    uint64_t evaluations; /* records in the window */
    uint64_t replayed;    /* with inputs and a policy of that name in the config */
    uint64_t differences;
    uint64_t without_inputs; /* recorded with skip_inputs: cannot be replayed */
    uint64_t unknown_policy; /* the config has no policy of the record's name */
    uint64_t events;         /* plugin events handed to on_event */
    /* in evaluations: a snapshot's own evaluation that starts a policy's history (cut by
     * retention): its recorded state after it seeds the policy, so it is not replayed */
    uint64_t seeded;
};

/* 0 with *result filled (differences may be > 0), or < 0 with err: SW_ECONFIG/SW_EPOLICY
 * for the configuration, SW_ENOENT/SW_ESTORE for the journal. */
int sw_replay_run(const struct sw_replay_opts *opts, struct sw_replay_result *result,
                  struct sw_error *err);

/* `steward replay --state FILE [-c CONFIG] [--from T] [--to T] [--json]` (argv[0] is
 * "replay"). Exit code: 0 no difference, 1 some differ (or a runtime failure), 2 usage,
 * configuration or journal problems. */
int sw_replay_main(int argc, char **argv);

#endif /* SW_REPLAY_H */
