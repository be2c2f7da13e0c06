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

#endif /* SW_PLANNER_H */
