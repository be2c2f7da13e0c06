/* clock_sim.h — the virtual clock: a binary heap of timers ordered by (due time,
 * start sequence), so equal-time events fire in the order they were scheduled and a run
 * is deterministic. Time only moves when an event fires.
 * Context: single thread.
 */
#ifndef SW_CLOCK_SIM_H
#define SW_CLOCK_SIM_H

#include "clock.h"

/* A simulated clock starting at start_ms (epoch ms). Owned by the caller, free with
 * sw_clock_free. */
struct sw_clock *sw_clock_sim_new(int64_t start_ms);

/* Fire the earliest pending timer, advancing now to its due time. Returns false when
 * nothing is pending. */
bool sw_clock_sim_step(struct sw_clock *clock);

/* Fire timers in order until none is pending, the next one is due after until_ms, or
 * sw_clock_sim_stop was called. If it stops for until_ms, now is set to until_ms.
 * Returns the number of timers fired. */
uint64_t sw_clock_sim_run(struct sw_clock *clock, int64_t until_ms);

/* Make the current sw_clock_sim_run return after the callback in progress. */
void sw_clock_sim_stop(struct sw_clock *clock);

/* Due time of the earliest pending timer, or INT64_MAX. */
int64_t sw_clock_sim_next_due(struct sw_clock *clock);

#endif /* SW_CLOCK_SIM_H */
