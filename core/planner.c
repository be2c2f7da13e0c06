#include "planner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* The three runs of the output, appended to `out` in this order at the end. */
struct plan {
    struct sw_actions repairs; /* releases of unhealthy units */
    struct sw_actions acquires;
    struct sw_actions releases; /* scale-down */
};

static bool in_group_region(const struct sw_unit *u, const char *group, const char *region)
{
    return u->group != NULL && u->region != NULL && strcmp(u->group, group) == 0 &&
           strcmp(u->region, region) == 0;
}

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

static int string_order(const void *pa, const void *pb)
{
    return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

/* Regions the group has in desired or in any open unit, sorted, without duplicates.
 * The strings are borrowed from desired and units. */
static const char **group_regions(const struct sw_desired *desired, const struct sw_units *units,
                                  const char *group, size_t *count)
{
    const char **regions = sw_xcalloc(desired->count + units->count + 1, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; i < desired->count; i++)
        if (strcmp(desired->entries[i].group, group) == 0)
            regions[n++] = desired->entries[i].region;
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (u->group != NULL && u->region != NULL && u->state != SW_UNIT_CLOSED &&
            strcmp(u->group, group) == 0)
            regions[n++] = u->region;
    }
    qsort(regions, n, sizeof(char *), string_order);
    size_t unique = 0;
    for (size_t i = 0; i < n; i++)
        if (unique == 0 || strcmp(regions[unique - 1], regions[i]) != 0)
            regions[unique++] = regions[i];
    *count = unique;
    return regions;
}

static void plan_region(const struct sw_desired *desired, const struct sw_units *units,
                        const struct sw_offers *offers, const struct sw_group_config *gc,
                        const char *region, struct plan *plan)
{
    const char *group = gc->name;
    int want = sw_desired_get(desired, group, region);
    if (want < 0)
        want = 0;
    int ready = 0, pending = 0, unhealthy = 0;
    size_t candidate_count = 0;
    const struct sw_unit **candidates = sw_xcalloc(units->count + 1, sizeof(*candidates));
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (!in_group_region(u, group, region))
            continue;
        if (u->unhealthy && (u->state == SW_UNIT_READY || sw_unit_is_pending(u)))
            unhealthy++;
        else if (u->state == SW_UNIT_READY)
            ready++;
        else if (sw_unit_is_pending(u))
            pending++;
        /* A pending unit can be cancelled once the marketplace knows it (market_id);
         * before that there is nothing to close yet. Releasing ones are already going. */
        bool cancellable = sw_unit_is_pending(u) && u->market_id != NULL;
        if ((u->state == SW_UNIT_READY || cancellable) && !u->self)
            candidates[candidate_count++] = u;
    }
    qsort(candidates, candidate_count, sizeof(*candidates), release_order);

    char reason[256];
    if (unhealthy > 0)
        snprintf(reason, sizeof(reason),
                 "%s/%s: desired %d, have %d ready + %d pending (%d unhealthy)", group, region,
                 want, ready, pending, unhealthy);
    else
        snprintf(reason, sizeof(reason), "%s/%s: desired %d, have %d ready + %d pending", group,
                 region, want, ready, pending);

    size_t next = 0;
    for (; next < candidate_count && candidates[next]->unhealthy; next++) {
        char why[64];
        snprintf(why, sizeof(why), "unhealthy: %d failed probes", candidates[next]->probe_failures);
        sw_actions_add(&plan->repairs, SW_ACTION_RELEASE, group, region, candidates[next]->key,
                       candidates[next]->price_usd_hour, why);
    }

    int have = ready + pending;
    if (want > have) {
        /* A group pinned to providers pays their price, not the region's cheapest. */
        double price = sw_offers_best_price_among(offers, region,
                                                  (const char *const *)gc->providers,
                                                  gc->provider_count);
        if (price < 0)
            price = 0;
        for (int i = have; i < want; i++)
            sw_actions_add(&plan->acquires, SW_ACTION_ACQUIRE, group, region, NULL, price, reason);
    }
    for (int excess = have - want; excess > 0 && next < candidate_count; excess--, next++)
        sw_actions_add(&plan->releases, SW_ACTION_RELEASE, group, region, candidates[next]->key,
                       candidates[next]->price_usd_hour, reason);
    free(candidates);
}

static bool group_in_desired(const struct sw_desired *desired, const char *group)
{
    for (size_t i = 0; i < desired->count; i++)
        if (strcmp(desired->entries[i].group, group) == 0)
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
        const char *group = groups[gi].name;
        if (!group_in_desired(desired, group))
            continue;
        size_t region_count = 0;
        const char **regions = group_regions(desired, units, group, &region_count);
        for (size_t r = 0; r < region_count; r++)
            plan_region(desired, units, offers, &groups[gi], regions[r], &plan);
        free(regions);
    }
    append_all(&plan.repairs, out);
    append_all(&plan.acquires, out);
    append_all(&plan.releases, out);
}
