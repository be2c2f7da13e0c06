/* planner.h — turns desired state into actions.
 *
 * For each (group, region): capacity = units that count (pending + ready, healthy, not
 * releasing). Shortfall → ACQUIRE actions priced at the region's best offer; excess →
 * RELEASE actions choosing, in order: unhealthy first (they do not count, so they are
 * always released once their replacement is planned), then units still being acquired
 * that the marketplace already knows (market_id set: cancelling them keeps ready units
 * serving), then the most expensive ready unit, then the newest. A unit ordered but not
 * yet created cannot be released (nothing to close); `self` units are never chosen.
 * Unhealthy units are released regardless of desired counts.
 * Groups with a "spread" (spread.h): among ready units, the one on the provider holding
 * most of the group goes first (then the order above). While a group holds too much on one
 * provider (sw_spread_heavy), its healthy pending units are never cancelled and only ready
 * units beyond desired are released: a rebalance's replacement is ready before the unit
 * on the heavy provider goes.
 * Output order: releases of unhealthy units, acquires, then other releases; deterministic.
 */
#ifndef SW_PLANNER_H
#define SW_PLANNER_H

#include "config.h"
#include "model.h"

/* Appends to out. groups/offers are borrowed. Each action's reason says what difference
 * caused it ("web/eu-west: desired 3, have 1 ready + 1 pending"; releases of unhealthy
 * units: "unhealthy: N failed probes"). Only configured groups present in desired are
 * planned, in config order, regions in name order; a region a group holds units in but
 * that desired omits counts as 0. An acquire is priced at the region's best offer, or 0
 * when nobody offers there. */
void sw_planner_plan(const struct sw_desired *desired, const struct sw_units *units,
                     const struct sw_offers *offers, const struct sw_group_config *groups,
                     size_t group_count, struct sw_actions *out);

/* ---- skipping a plan whose inputs did not change ------------------------------
 * Most ticks plan nothing and the next tick's inputs are the same: same desired state,
 * same units in the same states. A memo keeps what an empty plan was made from; the next
 * plan with equal inputs is known to be empty without walking the units. Only what the
 * "nothing to do" decision reads is compared: per unit its serial (model.h: group and
 * region never change for one), state, health, whether the marketplace knows it and
 * `self`; the desired entries (interned names: pointers) and counts; the groups array.
 * Offers only price acquires, prices and keys only order releases: an empty plan reads
 * neither. Groups with a spread, units without a serial, and plans with actions are not
 * memoized. */
struct sw_planner_unit_key {
    uint64_t serial;
    /* state (as 32 bits), then unhealthy, known (market_id set) and self as bits 32..34:
     * one integer compare per unit. */
    uint64_t flags;
};

struct sw_planner_memo {
    bool valid;
    const struct sw_group_config *groups;
    size_t group_count;
    struct sw_desired desired;
    struct sw_planner_unit_key *units; /* owned */
    size_t unit_count;
    size_t unit_cap;
};

/* A zeroed memo is empty and valid to use; sw_planner_memo_free releases it. */
void sw_planner_memo_free(struct sw_planner_memo *memo);
/* sw_planner_plan, or nothing appended when memo says the same inputs planned nothing
 * last time. memo is updated. Same ownership and context as sw_planner_plan. */
void sw_planner_plan_memo(struct sw_planner_memo *memo, const struct sw_desired *desired,
                          const struct sw_units *units, const struct sw_offers *offers,
                          const struct sw_group_config *groups, size_t group_count,
                          struct sw_actions *out);

#endif /* SW_PLANNER_H */
