/* clock.h — the only source of time and timers in steward.
 *
 * Two implementations behind one interface: live (libuv timers, wall-clock epoch time,
 * optionally sped up) and simulated (clock_sim.h: a discrete-event heap that jumps to the
 * next event). Core and plugins never read time any other way, so the same code runs in
 * both.
 * Context: loop thread only.
 */
#ifndef SW_CLOCK_H
#define SW_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef void (*sw_timer_cb)(void *ud);

struct sw_clock;

struct sw_clock_ops {
    int64_t (*now_ms)(struct sw_clock *clock);
    uint64_t (*timer_start)(struct sw_clock *clock, uint64_t delay_ms, sw_timer_cb cb,
                            void *ud);
    void (*timer_stop)(struct sw_clock *clock, uint64_t timer_id);
    void (*free)(struct sw_clock *clock);
};

/* Implementations embed this as their first member. */
struct sw_clock {
    const struct sw_clock_ops *ops;
    bool simulated;
};

/* Milliseconds since the Unix epoch on this clock. */
int64_t sw_clock_now(struct sw_clock *clock);
/* One-shot timer. Returns an id > 0 (ids are never reused by one clock), 0 on failure.
 * The callback fires exactly once unless stopped first; a delay of 0 fires on the next
 * turn of the loop, never inside this call. */
uint64_t sw_clock_timer_start(struct sw_clock *clock, uint64_t delay_ms, sw_timer_cb cb,
                              void *ud);
/* Stopping an id that already fired or was stopped is a no-op. */
void sw_clock_timer_stop(struct sw_clock *clock, uint64_t timer_id);
/* Stops every pending timer without firing it and frees the clock. NULL is a no-op.
 * A live clock must be freed before its loop is closed; it closes its uv handles and
 * runs the loop once (UV_RUN_NOWAIT) so they are released. */
void sw_clock_free(struct sw_clock *clock);

/* Live clock on loop (borrowed). speed > 1 compresses time: delays are divided by speed
 * and now advances speed times faster than the wall clock, starting at the wall clock's
 * current time. speed must be >= 1. Owned by the caller, free with sw_clock_free. */
struct sw_clock *sw_clock_live_new(uv_loop_t *loop, double speed);

/* Number of timers started and not yet fired or stopped. */
size_t sw_clock_pending(struct sw_clock *clock);

/* Bytes sw_clock_utc_text writes, the NUL included. */
#define SW_UTC_TEXT_LEN 32
/* epoch_ms as UTC text to the second ("2026-11-22T10:00:00Z"; "<ms> ms" when the calendar
 * cannot hold it), for messages and the CLI. Any thread. */
void sw_clock_utc_text(int64_t epoch_ms, char out[SW_UTC_TEXT_LEN]);

#endif /* SW_CLOCK_H */
