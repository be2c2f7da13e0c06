/* guard.h — limits no policy can bypass.
 *
 * Two steps around the planner:
 *   1. sw_guard_clamp: desired counts forced into each group's [min, max] and allowed
 *      regions (groups absent from desired keep their current capacity, floored at min).
 *   2. sw_guard_filter: planned actions checked against max leases, budget (USD/hour,
 *      counting pending units at their planned price), scale-up and scale-down cooldowns
 *      per group, max actions per window, and the never-release-self rule. Refused actions
 *      move to `refused` with the reason. Replacements of lost or unhealthy units go first
 *      and skip the scale-up cooldown.
 * The guard remembers what was executed (sw_guard_record) for cooldowns and rate.
 * Context: loop thread only. Pure logic: time comes in as now_ms.
 */
#ifndef SW_GUARD_H
#define SW_GUARD_H

#include <stdint.h>

#include "config.h"
#include "model.h"

struct sw_guard;

/* Notes about what clamping changed, for the decision journal. */
struct sw_guard_notes {
    char **items; /* owned strings */
    size_t count;
};
void sw_guard_notes_clear(struct sw_guard_notes *notes);

/* config and groups are borrowed and must outlive the guard. */
struct sw_guard *sw_guard_new(const struct sw_guard_config *config,
                              const struct sw_group_config *groups, size_t group_count);
void sw_guard_free(struct sw_guard *guard);

/* Clamps desired in place, in this order: entries of unconfigured groups are dropped; a
 * configured group with no entry gets one per region holding its open pending or ready
 * units (unhealthy ones included, so the planner replaces them rather than shrinking the
 * group); counts < 0 become 0; counts in regions outside a non-empty allowed list become
 * 0; a total above max loses units from the largest counts (ties: greatest region name
 * first); a total below min is added to the largest count (ties: smallest name), else the
 * first allowed region, else the region holding the most capacity. Each change appends a
 * note ("web: desired 14 > max 12, clamped"); notes may be NULL. units is borrowed. */
void sw_guard_clamp(const struct sw_guard *guard, const struct sw_units *units,
                    struct sw_desired *desired, struct sw_guard_notes *notes);

/* Filters actions in place. First they are reordered (stably): releases of unhealthy
 * units, then repairs, then the rest. A repair is an acquire for a group that lost units
 * (sw_guard_note_lost) or holds unhealthy ones, up to that many per group and batch: it
 * is exempt from the scale-up cooldown (a replacement is not a scale-up; its reason then
 * says so) but not from any other limit. Losses of a group the batch plans no acquire for
 * are forgotten. Then each action is checked in order. Acquires are priced with each action's
 * price_usd_hour (the planner fills it from offers). Limits count the whole batch: each
 * accepted acquire adds to open units and spend, each accepted action to the rate; an
 * accepted release does not lower the spend (it may fail). Releases of unknown units and
 * acquires for unconfigured groups are refused too. Refused actions are appended to
 * refused with the reason ("max leases 20 reached"). */
void sw_guard_filter(struct sw_guard *guard, int64_t now_ms, const struct sw_units *units,
                     struct sw_actions *actions, struct sw_actions *refused);

/* Record an action that was executed (for cooldowns and the action rate). An acquire
 * also uses up one of its group's lost units. */
void sw_guard_record(struct sw_guard *guard, const struct sw_action *action, int64_t now_ms);

/* count units of group were lost (closed by the marketplace or its provider, or failed
 * once leased): that many acquires of the group are repairs until recorded, see
 * sw_guard_filter. Unknown groups are ignored. */
void sw_guard_note_lost(struct sw_guard *guard, const char *group, int count);

#endif /* SW_GUARD_H */
