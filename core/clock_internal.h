/* clock_internal.h — what clock.c and clock_sim.c share and nobody else sees: the
 * id → value map both clocks use to find a timer by id, and the simulated clock's hook for
 * sw_clock_pending (the ops table in clock.h has no pending slot).
 * Context: single thread.
 */
#ifndef SW_CLOCK_INTERNAL_H
#define SW_CLOCK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"

/* Open addressing with linear probing and backward-shift deletion (no tombstones, so a
 * long run of start/stop never degrades it). Key 0 marks an empty slot: timer ids are
 * > 0. Zero-initialise the struct before use; free the arrays with sw__clock_map_free. */
struct sw__clock_map {
    uint64_t *keys;
    uint64_t *values;
    size_t cap; /* power of two, or 0 before the first put */
    size_t count;
};

void sw__clock_map_free(struct sw__clock_map *map);
/* key must be > 0 and not present. */
void sw__clock_map_put(struct sw__clock_map *map, uint64_t key, uint64_t value);
/* True and *value set when key is present. */
bool sw__clock_map_get(const struct sw__clock_map *map, uint64_t key, uint64_t *value);
/* True when key was present (and is now gone); *value gets its value if value != NULL. */
bool sw__clock_map_del(struct sw__clock_map *map, uint64_t key, uint64_t *value);

/* Pending timers of a simulated clock (clock_sim.c). */
size_t sw__clock_sim_pending(struct sw_clock *clock);

#endif /* SW_CLOCK_INTERNAL_H */
