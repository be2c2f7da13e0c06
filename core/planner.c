#include "planner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "name_index.h"
#include "spread.h"

/* The three runs of the output, appended to `out` in this order at the end. */
struct plan {
    struct sw_actions repairs; /* releases of unhealthy units */
    struct sw_actions acquires;
    struct sw_actions releases; /* scale-down */
};

/* Release order: unhealthy first; then units still being bought (they serve nobody yet,
 * and cancelling them keeps the ready ones serving); then the most expensive, then the
 * newest, then key. */
static int release_order(const void *pa, const void *pb)
{
    const struct sw_unit *a = *(const struct sw_unit *const *)pa;
    const struct sw_unit *b = *(const struct sw_unit *const *)pb;
    if (a->unhealthy != b->unhealthy)
        return a->unhealthy ? -1 : 1;
    bool a_pending = sw_unit_is_pending(a), b_pending = sw_unit_is_pending(b);
    if (a_pending != b_pending)
        return a_pending ? -1 : 1;
    if (a->price_usd_hour != b->price_usd_hour)
        return a->price_usd_hour > b->price_usd_hour ? -1 : 1;
    if (a->ready_ms != b->ready_ms)
        return a->ready_ms > b->ready_ms ? -1 : 1;
    return strcmp(a->key != NULL ? a->key : "", b->key != NULL ? b->key : "");
}

/* Picks the next unit to give up for a spread group among candidates[from..count) (sorted
 * by release_order, unhealthy ones already taken): units still being bought first, as
 * usual; then a ready unit on the provider holding most of the group now, so a scale-down
 * never breaks the spread that a release elsewhere would keep. Moves it to from. */
static void pick_spread_release(const struct sw_unit **candidates, size_t from, size_t count,
                                struct sw_provider_counts *held)
{
    size_t best = from;
    for (size_t i = from + 1; i < count; i++) {
        const struct sw_unit *a = candidates[i], *b = candidates[best];
        bool a_pending = sw_unit_is_pending(a), b_pending = sw_unit_is_pending(b);
        if (a_pending || b_pending) {
            if (a_pending && !b_pending)
                best = i;
            continue; /* among pending units release_order already decided */
        }
        int a_held = sw_provider_counts_get(held, a->provider);
        int b_held = sw_provider_counts_get(held, b->provider);
        if (a_held > b_held)
            best = i;
    }
    const struct sw_unit *chosen = candidates[best];
    memmove(&candidates[from + 1], &candidates[from], (best - from) * sizeof(*candidates));
    candidates[from] = chosen;
    sw_provider_counts_add(held, chosen->provider, -1);
}

/* The planner's reason for every action in a region. Formatted only when the region has an
 * action: most regions, most ticks, have none. */
static const char *region_reason(char *reason, size_t size, const char *group, const char *region,
                                 int want, int ready, int pending, int unhealthy)
{
    if (reason[0] != '\0')
        return reason;
    if (unhealthy > 0)
        snprintf(reason, size, "%s/%s: desired %d, have %d ready + %d pending (%d unhealthy)",
                 group, region, want, ready, pending, unhealthy);
    else
        snprintf(reason, size, "%s/%s: desired %d, have %d ready + %d pending", group, region, want,
                 ready, pending);
    return reason;
}

/* units: the group's open units in this region (count of them), in unit-set order;
 * candidates: scratch for as many. */
static void plan_region(const struct sw_units *all_units, const struct sw_unit *const *units,
                        size_t count, const struct sw_offers *offers,
                        const struct sw_group_config *g, const char *region, int want,
                        const char *heavy, const struct sw_unit **candidates, struct plan *plan)
{
    const char *group = g->name;
    if (want < 0)
        want = 0;
    int ready = 0, pending = 0, unhealthy = 0;
    size_t candidate_count = 0;
    for (size_t i = 0; i < count; i++) {
        const struct sw_unit *u = units[i];
        if (u->unhealthy && (u->state == SW_UNIT_READY || sw_unit_is_pending(u)))
            unhealthy++;
        else if (u->state == SW_UNIT_READY)
            ready++;
        else if (sw_unit_is_pending(u))
            pending++;
        /* A pending unit can be cancelled once the marketplace knows it (market_id);
         * before that there is nothing to close yet. Releasing ones are already going.
         * While the group is over its spread, healthy pending units are the replacements
         * that fix it: they stay. */
        bool cancellable = sw_unit_is_pending(u) && u->market_id != NULL &&
                           (heavy == NULL || u->unhealthy);
        if ((u->state == SW_UNIT_READY || cancellable) && !u->self)
            candidates[candidate_count++] = u;
    }
    int have = ready + pending;
    /* Over its spread, only ready units beyond desired go (the pending ones stay, below),
     * which is how a rebalance ends: the replacement is ready before the heavy unit goes. */
    int excess = heavy != NULL ? ready - want : have - want;
    if (unhealthy == 0 && want <= have && (excess <= 0 || candidate_count == 0))
        return; /* nothing to do here: the usual case */
    qsort(candidates, candidate_count, sizeof(*candidates), release_order);

    char reason[256]; /* formatted on first use (region_reason) */
    reason[0] = '\0';
    size_t next = 0;
    for (; next < candidate_count && candidates[next]->unhealthy; next++) {
        char why[64];
        snprintf(why, sizeof(why), "unhealthy: %d failed probes", candidates[next]->probe_failures);
        sw_actions_add(&plan->repairs, SW_ACTION_RELEASE, group, region, candidates[next]->key,
                       candidates[next]->price_usd_hour, why);
    }

    if (want > have) {
        /* A group pinned to providers pays their price, not the region's cheapest. */
        double price = sw_offers_best_price_among(offers, region,
                                                  (const char *const *)g->providers,
                                                  g->provider_count);
        if (price < 0)
            price = 0;
        region_reason(reason, sizeof(reason), group, region, want, ready, pending, unhealthy);
        for (int i = have; i < want; i++)
            sw_actions_add(&plan->acquires, SW_ACTION_ACQUIRE, group, region, NULL, price, reason);
    }
    if (excess <= 0 || next >= candidate_count)
        return;
    region_reason(reason, sizeof(reason), group, region, want, ready, pending, unhealthy);
    struct sw_provider_counts held = {0};
    if (sw_spread_enabled(g))
        sw_spread_count(group, all_units, NULL, &held);
    for (; excess > 0 && next < candidate_count; excess--, next++) {
        if (sw_spread_enabled(g))
            pick_spread_release(candidates, next, candidate_count, &held);
        sw_actions_add(&plan->releases, SW_ACTION_RELEASE, group, region, candidates[next]->key,
                       candidates[next]->price_usd_hour, reason);
    }
    sw_provider_counts_clear(&held);
}

/* Units by region name, then by position in the unit set (a stable order). */
struct placed {
    const struct sw_unit *unit;
    size_t index;
};

static bool placed_before(const struct placed *a, const struct placed *b)
{
    int c = a->unit->region == b->unit->region ? 0 : strcmp(a->unit->region, b->unit->region);
    return c < 0 || (c == 0 && a->index < b->index);
}

/* Merge sort into tmp and back (stable by construction). glibc's qsort would allocate its
 * own buffer past a kilobyte, every tick. */
static void placed_sort(struct placed *items, struct placed *tmp, size_t count)
{
    if (count < 2)
        return;
    size_t half = count / 2;
    placed_sort(items, tmp, half);
    placed_sort(items + half, tmp, count - half);
    if (!placed_before(&items[half], &items[half - 1]))
        return; /* already in order: the usual case for a unit set that rarely changes */
    size_t i = 0, j = half, k = 0;
    while (i < half && j < count)
        tmp[k++] = placed_before(&items[j], &items[i]) ? items[j++] : items[i++];
    while (i < half)
        tmp[k++] = items[i++];
    while (j < count)
        tmp[k++] = items[j++];
    memcpy(items, tmp, count * sizeof(*items));
}

/* Scratch arrays for one group's units: on the stack up to this many units, so a tick
 * does not allocate (blocks over a kilobyte make glibc consolidate its fast bins). */
#define PLAN_INLINE_UNITS 128

/* Regions are visited in name order over the union of the group's desired regions and the
 * regions of its open units: both lists are sorted, so one merge walk replaces a scan of
 * every unit per region. */
static void plan_group(const struct sw_desired *desired, const struct sw_units *units,
                       const struct sw_offers *offers, const struct sw_group_config *g,
                       struct plan *plan)
{
    /* Units' and desired entries' names are interned (model.h): this group's name is
     * compared by pointer against them. */
    const char *group = sw_name_intern(g->name);
    const char *heavy = sw_spread_enabled(g)
                            ? sw_spread_heavy(g, units, sw_desired_group_total(desired, group))
                            : NULL;
    struct placed placed_inline[PLAN_INLINE_UNITS], tmp_inline[PLAN_INLINE_UNITS];
    const struct sw_unit *slice_inline[PLAN_INLINE_UNITS], *candidates_inline[PLAN_INLINE_UNITS];
    bool heap = units->count > PLAN_INLINE_UNITS;
    struct placed *placed = heap ? sw_xcalloc(units->count, sizeof(*placed)) : placed_inline;
    struct placed *tmp = heap ? sw_xcalloc(units->count, sizeof(*tmp)) : tmp_inline;
    const struct sw_unit **slice = heap ? sw_xcalloc(units->count, sizeof(*slice)) : slice_inline;
    const struct sw_unit **candidates =
        heap ? sw_xcalloc(units->count, sizeof(*candidates)) : candidates_inline;
    size_t placed_count = 0;
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (u->group != NULL && u->region != NULL && u->state != SW_UNIT_CLOSED &&
            sw_name_eq(u->group, group))
            placed[placed_count++] = (struct placed){u, i};
    }
    placed_sort(placed, tmp, placed_count);

    /* This group's entries: a contiguous run, desired being sorted by (group, region). */
    size_t d = 0;
    while (d < desired->count && desired->entries[d].group != group)
        d++;
    size_t d_end = d;
    while (d_end < desired->count && desired->entries[d_end].group == group)
        d_end++;

    size_t p = 0;
    while (d < d_end || p < placed_count) {
        const char *region;
        int want = 0;
        const char *placed_region = p < placed_count ? placed[p].unit->region : NULL;
        int c = d >= d_end          ? 1
                : p >= placed_count ? -1
                : desired->entries[d].region == placed_region
                    ? 0
                    : strcmp(desired->entries[d].region, placed_region);
        if (c <= 0) {
            region = desired->entries[d].region;
            want = desired->entries[d].count;
            d++;
        } else {
            region = placed[p].unit->region;
        }
        size_t count = 0;
        if (c >= 0)
            while (p < placed_count && sw_name_eq(placed[p].unit->region, region))
                slice[count++] = placed[p++].unit;
        plan_region(units, slice, count, offers, g, region, want, heavy, candidates, plan);
    }
    if (heap) {
        free(candidates);
        free(slice);
        free(tmp);
        free(placed);
    }
}

static bool group_in_desired(const struct sw_desired *desired, const char *group)
{
    for (size_t i = 0; i < desired->count; i++)
        if (sw_name_eq(desired->entries[i].group, group))
            return true;
    return false;
}

static void append_all(struct sw_actions *from, struct sw_actions *to)
{
    for (size_t i = 0; i < from->count; i++) {
        const struct sw_action *a = &from->items[i];
        sw_actions_add(to, a->kind, a->group, a->region, a->unit_key, a->price_usd_hour, a->reason);
    }
    sw_actions_clear(from);
}

void sw_planner_plan(const struct sw_desired *desired, const struct sw_units *units,
                     const struct sw_offers *offers, const struct sw_group_config *groups,
                     size_t group_count, struct sw_actions *out)
{
    struct plan plan;
    sw_actions_init(&plan.repairs);
    sw_actions_init(&plan.acquires);
    sw_actions_init(&plan.releases);
    /* Config order: the operator lists groups by importance, and the guard spends the
     * budget on the first actions it sees. */
    for (size_t gi = 0; gi < group_count; gi++) {
        const char *group = sw_name_intern(groups[gi].name);
        if (!group_in_desired(desired, group))
            continue;
        plan_group(desired, units, offers, &groups[gi], &plan);
    }
    append_all(&plan.repairs, out);
    append_all(&plan.acquires, out);
    append_all(&plan.releases, out);
}

/* ---- memo ------------------------------------------------------------------------------ */

void sw_planner_memo_free(struct sw_planner_memo *memo)
{
    if (memo == NULL)
        return;
    sw_desired_clear(&memo->desired);
    free(memo->units);
    memset(memo, 0, sizeof(*memo));
}

static struct sw_planner_unit_key unit_key(const struct sw_unit *u)
{
    uint64_t flags = (uint64_t)(uint32_t)u->state | (uint64_t)u->unhealthy << 32 |
                     (uint64_t)(u->market_id != NULL) << 33 | (uint64_t)u->self << 34;
    return (struct sw_planner_unit_key){u->serial, flags};
}

static bool memo_matches(const struct sw_planner_memo *memo, const struct sw_desired *desired,
                         const struct sw_units *units, const struct sw_group_config *groups,
                         size_t group_count)
{
    if (!memo->valid || memo->groups != groups || memo->group_count != group_count ||
        memo->desired.count != desired->count || memo->unit_count != units->count)
        return false;
    for (size_t i = 0; i < desired->count; i++) {
        const struct sw_desired_entry *a = &desired->entries[i], *b = &memo->desired.entries[i];
        if (a->group != b->group || a->region != b->region || a->count != b->count)
            return false;
    }
    /* differences or'ed together: no branch per unit (an unchanged set is the usual case) */
    uint64_t differ = 0;
    for (size_t i = 0; i < units->count; i++) {
        struct sw_planner_unit_key k = unit_key(units->items[i]);
        differ |= (k.serial ^ memo->units[i].serial) | (k.flags ^ memo->units[i].flags);
    }
    return differ == 0;
}

static bool memo_allowed(const struct sw_units *units, const struct sw_group_config *groups,
                         size_t group_count)
{
    for (size_t i = 0; i < group_count; i++)
        if (sw_spread_enabled(&groups[i]))
            return false;
    for (size_t i = 0; i < units->count; i++)
        if (units->items[i]->serial == 0)
            return false;
    return true;
}

void sw_planner_plan_memo(struct sw_planner_memo *memo, const struct sw_desired *desired,
                          const struct sw_units *units, const struct sw_offers *offers,
                          const struct sw_group_config *groups, size_t group_count,
                          struct sw_actions *out)
{
    if (memo_matches(memo, desired, units, groups, group_count))
        return;
    size_t before = out->count;
    sw_planner_plan(desired, units, offers, groups, group_count, out);
    memo->valid = out->count == before && memo_allowed(units, groups, group_count);
    if (!memo->valid)
        return;
    memo->groups = groups;
    memo->group_count = group_count;
    sw_desired_copy(&memo->desired, desired);
    if (units->count > memo->unit_cap) {
        memo->unit_cap = units->count;
        memo->units = sw_xrealloc(memo->units, memo->unit_cap * sizeof(*memo->units));
    }
    for (size_t i = 0; i < units->count; i++)
        memo->units[i] = unit_key(units->items[i]);
    memo->unit_count = units->count;
}
