#include "guard.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "name_index.h"

/* Spend sums are floating point; a few cents of rounding must not refuse an exact fit. */
#define BUDGET_EPSILON 1e-9
#define NEVER INT64_MIN

struct sw_guard {
    const struct sw_guard_config *config;
    const struct sw_group_config *groups;
    size_t group_count;
    int64_t *last_acquire_ms; /* per configured group; NEVER when none was recorded */
    int64_t *last_release_ms;
    int *lost; /* per configured group: units lost since a replacement was last ordered */
    int64_t *recent_ms; /* times of recorded actions still inside the action window */
    size_t recent_count;
    size_t recent_cap;
    int *credits; /* sw_guard_filter's scratch, one slot per group: no allocation a tick */
    bool *planned;
    const char **names; /* groups[i].name interned, as the desired state's names */
};

struct sw_guard *sw_guard_new(const struct sw_guard_config *config,
                              const struct sw_group_config *groups, size_t group_count)
{
    struct sw_guard *guard = sw_xcalloc(1, sizeof(*guard));
    guard->config = config;
    guard->groups = groups;
    guard->group_count = group_count;
    size_t slots = group_count ? group_count : 1;
    guard->last_acquire_ms = sw_xcalloc(slots, sizeof(int64_t));
    guard->last_release_ms = sw_xcalloc(slots, sizeof(int64_t));
    guard->lost = sw_xcalloc(slots, sizeof(int));
    guard->credits = sw_xcalloc(slots, sizeof(int));
    guard->planned = sw_xcalloc(slots, sizeof(bool));
    guard->names = sw_xcalloc(slots, sizeof(char *));
    for (size_t i = 0; i < group_count; i++) {
        guard->last_acquire_ms[i] = guard->last_release_ms[i] = NEVER;
        guard->names[i] = sw_name_intern(groups[i].name);
    }
    return guard;
}

void sw_guard_free(struct sw_guard *guard)
{
    if (guard == NULL)
        return;
    free(guard->last_acquire_ms);
    free(guard->last_release_ms);
    free(guard->lost);
    free(guard->credits);
    free(guard->names);
    free(guard->planned);
    free(guard->recent_ms);
    free(guard);
}

void sw_guard_notes_clear(struct sw_guard_notes *notes)
{
    if (notes == NULL)
        return;
    for (size_t i = 0; i < notes->count; i++)
        free(notes->items[i]);
    free(notes->items);
    notes->items = NULL;
    notes->count = 0;
}

static void add_note(struct sw_guard_notes *notes, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_note(struct sw_guard_notes *notes, const char *fmt, ...)
{
    if (notes == NULL)
        return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    notes->items = sw_xrealloc(notes->items, (notes->count + 1) * sizeof(char *));
    notes->items[notes->count++] = sw_xstrdup(text);
}

static long group_index(const struct sw_guard *guard, const char *name)
{
    for (size_t i = 0; name != NULL && i < guard->group_count; i++)
        if (sw_name_eq(guard->names[i], name))
            return (long)i;
    return -1;
}

static bool group_in_desired(const struct sw_desired *desired, const char *group)
{
    for (size_t i = 0; i < desired->count; i++)
        if (sw_name_eq(desired->entries[i].group, group))
            return true;
    return false;
}

static bool region_allowed(const struct sw_group_config *g, const char *region)
{
    if (g->region_count == 0)
        return true;
    for (size_t i = 0; i < g->region_count; i++)
        if (strcmp(g->regions[i], region) == 0)
            return true;
    return false;
}

/* ---- clamp --------------------------------------------------------------------------- */

static void drop_unconfigured(const struct sw_guard *guard, struct sw_desired *desired,
                              struct sw_guard_notes *notes)
{
    /* Entries are sorted by group: one lookup per group, and nothing rebuilt when every
     * group is configured (every tick, normally). */
    bool all_configured = true;
    for (size_t i = 0; all_configured && i < desired->count; i++)
        if (i == 0 || desired->entries[i].group != desired->entries[i - 1].group) /* interned */
            all_configured = group_index(guard, desired->entries[i].group) >= 0;
    if (all_configured)
        return;
    struct sw_desired kept;
    sw_desired_init(&kept);
    const char *noted = NULL;
    bool dropped = false;
    for (size_t i = 0; i < desired->count; i++) {
        const struct sw_desired_entry *e = &desired->entries[i];
        if (group_index(guard, e->group) >= 0) {
            sw_desired_set(&kept, e->group, e->region, e->count);
            continue;
        }
        dropped = true;
        if (noted == NULL || strcmp(noted, e->group) != 0)
            add_note(notes, "%s: not a configured group, ignored", e->group);
        noted = e->group;
    }
    if (dropped) {
        sw_desired_clear(desired);
        *desired = kept;
    } else {
        sw_desired_clear(&kept);
    }
}

/* A group the policy did not mention keeps what it has. Unhealthy units are counted too:
 * the planner releases them, and counting them here makes it order their replacements, so
 * "keep what exists" really keeps the group's size. */
static void fill_from_units(const struct sw_group_config *g, const struct sw_units *units,
                            struct sw_desired *desired)
{
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (u->group == NULL || u->region == NULL || strcmp(u->group, g->name) != 0)
            continue;
        if (!sw_unit_is_pending(u) && u->state != SW_UNIT_READY)
            continue;
        sw_desired_set(desired, g->name, u->region,
                       sw_desired_get(desired, g->name, u->region) + 1);
    }
}

static void join_regions(const struct sw_group_config *g, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < g->region_count && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", g->regions[i]);
}

/* Removes `excess` units, always from the largest counts; among equal counts the
 * lexicographically greatest region gives first. Equivalent to removing one at a time,
 * without looping once per unit. */
static void reduce_largest(struct sw_desired *desired, const char *group, int excess)
{
    while (excess > 0) {
        int top = 0, second = 0, at_top = 0;
        for (size_t i = 0; i < desired->count; i++) {
            const struct sw_desired_entry *e = &desired->entries[i];
            if (strcmp(e->group, group) != 0)
                continue;
            if (e->count > top) {
                second = top;
                top = e->count;
                at_top = 1;
            } else if (e->count == top) {
                at_top++;
            } else if (e->count > second) {
                second = e->count;
            }
        }
        if (top <= 0)
            return;
        long level_drop = (long)(top - second) * at_top;
        int per_entry, extra;
        if (level_drop <= excess) {
            per_entry = top - second;
            extra = 0;
        } else {
            per_entry = excess / at_top;
            extra = excess % at_top;
        }
        /* Entries are sorted by region, so walking backwards meets the greatest names
         * first: those give the extra unit. */
        for (size_t i = desired->count; i-- > 0;) {
            struct sw_desired_entry *e = &desired->entries[i];
            if (strcmp(e->group, group) != 0 || e->count != top)
                continue;
            e->count -= per_entry;
            excess -= per_entry;
            if (extra > 0) {
                e->count--;
                excess--;
                extra--;
            }
        }
    }
}

/* Where to put units that min requires: see guard.h. NULL when nowhere is known. */
static const char *min_target(const struct sw_group_config *g, const struct sw_units *units,
                              const struct sw_desired *desired)
{
    const char *best = NULL;
    int best_count = 0;
    for (size_t i = 0; i < desired->count; i++) {
        const struct sw_desired_entry *e = &desired->entries[i];
        if (strcmp(e->group, g->name) == 0 && e->count > best_count) {
            best = e->region;
            best_count = e->count;
        }
    }
    if (best != NULL)
        return best;
    if (g->region_count > 0)
        return g->regions[0];
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (u->group == NULL || u->region == NULL || strcmp(u->group, g->name) != 0)
            continue;
        int n = sw_units_count_capacity(units, g->name, u->region);
        if (n > best_count || (n == best_count && n > 0 && strcmp(u->region, best) < 0)) {
            best = u->region;
            best_count = n;
        }
    }
    return best;
}

static void clamp_group(const struct sw_group_config *g, const char *group,
                        const struct sw_units *units, struct sw_desired *desired,
                        struct sw_guard_notes *notes)
{
    /* group: g->name interned, as the desired state's names: compared by pointer. */
    if (!group_in_desired(desired, group))
        fill_from_units(g, units, desired);

    for (size_t i = 0; i < desired->count; i++) {
        struct sw_desired_entry *e = &desired->entries[i];
        if (e->group != group)
            continue;
        if (e->count < 0) {
            add_note(notes, "%s/%s: desired %d < 0, set to 0", e->group, e->region, e->count);
            e->count = 0;
        }
        if (e->count > 0 && !region_allowed(g, e->region)) {
            char allowed[256];
            join_regions(g, allowed, sizeof(allowed));
            add_note(notes, "%s/%s: region not allowed (allowed: %s)", e->group, e->region,
                     allowed);
            e->count = 0;
        }
    }

    int total = sw_desired_group_total(desired, group);
    if (total > g->max) {
        add_note(notes, "%s: desired %d > max %d, clamped", g->name, total, g->max);
        reduce_largest(desired, g->name, total - g->max);
    } else if (total < g->min) {
        const char *target = min_target(g, units, desired);
        if (target == NULL) {
            add_note(notes, "%s: desired %d < min %d, but no region is known to place it in",
                     g->name, total, g->min);
            return;
        }
        /* target may point into desired, which the set below can reallocate. */
        char *region = sw_xstrdup(target);
        add_note(notes, "%s: desired %d < min %d, raised in %s", g->name, total, g->min, region);
        sw_desired_set(desired, g->name, region,
                       sw_desired_get(desired, g->name, region) + (g->min - total));
        free(region);
    }
}

void sw_guard_clamp(const struct sw_guard *guard, const struct sw_units *units,
                    struct sw_desired *desired, struct sw_guard_notes *notes)
{
    drop_unconfigured(guard, desired, notes);
    for (size_t i = 0; i < guard->group_count; i++)
        clamp_group(&guard->groups[i], guard->names[i], units, desired, notes);
}

/* ---- filter -------------------------------------------------------------------------- */

/* "40s", "4m10s", "1h2m": whole seconds, rounded up (a cooldown is never shown shorter). */
static void format_seconds(int64_t ms, char *buf, size_t size)
{
    int64_t secs = (ms + 999) / 1000;
    int64_t h = secs / 3600, m = secs % 3600 / 60, s = secs % 60;
    size_t used = 0;
    buf[0] = '\0';
    if (h > 0)
        used += (size_t)snprintf(buf + used, size - used, "%" PRId64 "h", h);
    if (m > 0 && used < size)
        used += (size_t)snprintf(buf + used, size - used, "%" PRId64 "m", m);
    if ((s > 0 || secs == 0) && used < size)
        snprintf(buf + used, size - used, "%" PRId64 "s", s);
}

static void format_window(int64_t ms, char *buf, size_t size)
{
    if (ms % 1000 == 0)
        format_seconds(ms, buf, size);
    else
        snprintf(buf, size, "%" PRId64 "ms", ms);
}

static int64_t cooldown_left(int64_t last_ms, int64_t cooldown_ms, int64_t now_ms)
{
    if (last_ms == NEVER || cooldown_ms <= 0)
        return 0;
    int64_t until = last_ms + cooldown_ms;
    return until > now_ms ? until - now_ms : 0;
}

static int executed_in_window(const struct sw_guard *guard, int64_t now_ms)
{
    int n = 0;
    for (size_t i = 0; i < guard->recent_count; i++)
        if (guard->recent_ms[i] > now_ms - guard->config->action_window_ms)
            n++;
    return n;
}

struct batch {
    int64_t now_ms;
    int open_units;
    double spend;
    int executed;
    int acquires;
    double acquire_spend;
    int accepted;
};

/* Why the guard refuses the action, written to reason; false when it may go ahead. */
static bool refuse_release(const struct sw_guard *guard, const struct batch *b,
                           const struct sw_units *units, const struct sw_action *act, char *reason,
                           size_t size)
{
    const struct sw_unit *unit = sw_units_find_key(units, act->unit_key);
    if (unit == NULL) {
        snprintf(reason, size, "unit %s is not known", act->unit_key ? act->unit_key : "?");
        return true;
    }
    if (unit->self) {
        snprintf(reason, size, "never release the unit steward runs in");
        return true;
    }
    long gi = group_index(guard, act->group);
    /* A broken unit must go even during a cooldown: that is a repair, not a scale-down. */
    if (gi >= 0 && !unit->unhealthy) {
        int64_t left = cooldown_left(guard->last_release_ms[gi],
                                     guard->groups[gi].scale_down_cooldown_ms, b->now_ms);
        if (left > 0) {
            char shown[32];
            format_seconds(left, shown, sizeof(shown));
            snprintf(reason, size, "scale-down cooldown for %s: %s left", act->group, shown);
            return true;
        }
    }
    return false;
}

/* repair: the acquire replaces a lost or unhealthy unit, so the scale-up cooldown (there
 * to damp a policy's swings) does not apply to it. */
static bool refuse_acquire(const struct sw_guard *guard, const struct batch *b,
                           const struct sw_action *act, bool repair, char *reason, size_t size)
{
    const struct sw_guard_config *cfg = guard->config;
    long gi = group_index(guard, act->group);
    if (gi < 0) {
        snprintf(reason, size, "%s: not a configured group", act->group ? act->group : "?");
        return true;
    }
    double max_price = guard->groups[gi].max_price_usd_hour;
    if (max_price > 0 && act->price_usd_hour > max_price + BUDGET_EPSILON) {
        snprintf(reason, size, "best offer in %s is %.3f USD/h, above the group's max %.3f USD/h",
                 act->region ? act->region : "?", act->price_usd_hour, max_price);
        return true;
    }
    if (cfg->max_leases > 0 && b->open_units + b->acquires >= cfg->max_leases) {
        snprintf(reason, size, "max leases %d reached", cfg->max_leases);
        return true;
    }
    double price = act->price_usd_hour > 0 ? act->price_usd_hour : 0;
    double total = b->spend + b->acquire_spend + price;
    if (cfg->budget_usd_hour > 0 && total > cfg->budget_usd_hour + BUDGET_EPSILON) {
        snprintf(reason, size, "budget: %.2f USD/h would exceed %.2f USD/h", total,
                 cfg->budget_usd_hour);
        return true;
    }
    int64_t left = cooldown_left(guard->last_acquire_ms[gi], guard->groups[gi].scale_up_cooldown_ms,
                                 b->now_ms);
    if (left > 0 && !repair) {
        char shown[32];
        format_seconds(left, shown, sizeof(shown));
        snprintf(reason, size, "scale-up cooldown for %s: %s left", act->group, shown);
        return true;
    }
    return false;
}

/* ---- repairs ------------------------------------------------------------------------- */

void sw_guard_note_lost(struct sw_guard *guard, const char *group, int count)
{
    long gi = group_index(guard, group);
    if (gi >= 0 && count > 0)
        guard->lost[gi] += count;
}

/* Replacements each group may order as repairs in this batch: its lost units plus its
 * unhealthy ones (still open, about to be released). Fills the guard's scratch array, one
 * slot per group, and returns it. */
static int *repair_credits(const struct sw_guard *guard, const struct sw_units *units)
{
    int *credits = guard->credits;
    for (size_t gi = 0; gi < guard->group_count; gi++)
        credits[gi] = guard->lost[gi];
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (!u->unhealthy || !(u->state == SW_UNIT_READY || sw_unit_is_pending(u)))
            continue; /* most units: no group lookup */
        long gi = group_index(guard, u->group);
        if (gi >= 0)
            credits[gi]++;
    }
    return credits;
}

/* Stable reorder: releases of unhealthy units, then acquires that are repairs (up to each
 * group's credits), then everything else as it came. The budget, the lease cap and the
 * action rate then go to repairs before any scale-up of another group. */
static void repairs_first(const struct sw_guard *guard, const struct sw_units *units,
                          const int *credits, struct sw_actions *actions)
{
    if (actions->count < 2)
        return;
    int *left = sw_xcalloc(guard->group_count ? guard->group_count : 1, sizeof(int));
    memcpy(left, credits, guard->group_count * sizeof(int));
    int *rank = sw_xcalloc(actions->count, sizeof(int));
    for (size_t i = 0; i < actions->count; i++) {
        const struct sw_action *a = &actions->items[i];
        long gi = group_index(guard, a->group);
        const struct sw_unit *u =
            a->kind == SW_ACTION_RELEASE ? sw_units_find_key(units, a->unit_key) : NULL;
        rank[i] = 2;
        if (u != NULL && u->unhealthy) {
            rank[i] = 0;
        } else if (a->kind == SW_ACTION_ACQUIRE && gi >= 0 && left[gi] > 0) {
            rank[i] = 1;
            left[gi]--;
        }
    }
    struct sw_action *sorted = sw_xcalloc(actions->count, sizeof(*sorted));
    size_t n = 0;
    for (int r = 0; r <= 2; r++)
        for (size_t i = 0; i < actions->count; i++)
            if (rank[i] == r)
                sorted[n++] = actions->items[i];
    memcpy(actions->items, sorted, n * sizeof(*sorted));
    free(sorted);
    free(rank);
    free(left);
}

void sw_guard_filter(struct sw_guard *guard, int64_t now_ms, const struct sw_units *units,
                     struct sw_actions *actions, struct sw_actions *refused)
{
    const struct sw_guard_config *cfg = guard->config;
    /* Most ticks plan nothing: with no action, the batch figures and credits below are
     * never read, and every group is unplanned (what the closing loop does). */
    if (actions->count == 0) {
        for (size_t gi = 0; gi < guard->group_count; gi++)
            guard->lost[gi] = 0;
        return;
    }
    struct batch b = {
        .now_ms = now_ms,
        .open_units = sw_units_count_open(units),
        .spend = sw_units_spend_usd_hour(units),
        .executed = executed_in_window(guard, now_ms),
    };
    int *credits = repair_credits(guard, units);
    repairs_first(guard, units, credits, actions);
    bool *planned = guard->planned;
    memset(planned, 0, guard->group_count * sizeof(bool));
    size_t i = 0;
    while (i < actions->count) {
        struct sw_action *act = &actions->items[i];
        long gi = group_index(guard, act->group);
        bool repair = act->kind == SW_ACTION_ACQUIRE && gi >= 0 && credits[gi] > 0;
        if (act->kind == SW_ACTION_ACQUIRE && gi >= 0)
            planned[gi] = true;
        char reason[256];
        bool refuse = true;
        if (act->kind == SW_ACTION_RELEASE)
            refuse = refuse_release(guard, &b, units, act, reason, sizeof(reason));
        else if (act->kind == SW_ACTION_ACQUIRE)
            refuse = refuse_acquire(guard, &b, act, repair, reason, sizeof(reason));
        else
            snprintf(reason, sizeof(reason), "unknown action kind %d", act->kind);
        if (!refuse && cfg->max_actions > 0 && b.executed + b.accepted >= cfg->max_actions) {
            char window[32];
            format_window(cfg->action_window_ms, window, sizeof(window));
            snprintf(reason, sizeof(reason), "max %d actions per %s reached", cfg->max_actions,
                     window);
            refuse = true;
        }
        if (refuse) {
            sw_actions_move(actions, i, refused, reason);
            continue;
        }
        b.accepted++;
        if (act->kind == SW_ACTION_ACQUIRE) {
            b.acquires++;
            b.acquire_spend += act->price_usd_hour > 0 ? act->price_usd_hour : 0;
        }
        if (repair) {
            credits[gi]--;
            if (cooldown_left(guard->last_acquire_ms[gi], guard->groups[gi].scale_up_cooldown_ms,
                              now_ms) > 0) {
                char *text = sw_xasprintf("%s (replaces a lost or unhealthy unit: no scale-up "
                                          "cooldown)", act->reason ? act->reason : "");
                free(act->reason);
                act->reason = text;
            }
        }
        i++;
    }
    /* A loss the plan no longer replaces (the policy shrank the group meanwhile) must not
     * let a later, unrelated scale-up skip its cooldown. */
    for (size_t gi = 0; gi < guard->group_count; gi++)
        if (!planned[gi])
            guard->lost[gi] = 0;
}

void sw_guard_record(struct sw_guard *guard, const struct sw_action *action, int64_t now_ms)
{
    long gi = group_index(guard, action->group);
    if (gi >= 0) {
        if (action->kind == SW_ACTION_ACQUIRE && guard->lost[gi] > 0)
            guard->lost[gi]--;
        if (action->kind == SW_ACTION_ACQUIRE)
            guard->last_acquire_ms[gi] = now_ms;
        else if (action->kind == SW_ACTION_RELEASE)
            guard->last_release_ms[gi] = now_ms;
    }
    /* Forget what fell out of the window so the list stays as short as the rate limit. */
    size_t kept = 0;
    for (size_t i = 0; i < guard->recent_count; i++)
        if (guard->recent_ms[i] > now_ms - guard->config->action_window_ms)
            guard->recent_ms[kept++] = guard->recent_ms[i];
    guard->recent_count = kept;
    if (guard->recent_count == guard->recent_cap) {
        guard->recent_cap = guard->recent_cap ? guard->recent_cap * 2 : 16;
        guard->recent_ms = sw_xrealloc(guard->recent_ms, guard->recent_cap * sizeof(int64_t));
    }
    guard->recent_ms[guard->recent_count++] = now_ms;
}
