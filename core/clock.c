/* clock.c — the clock interface's dispatch, the live clock (one uv timer per steward
 * timer) and the id map both clocks use. */
#include "clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock_internal.h"
#include "log.h"
#include "mem.h"

/* ---- interface ------------------------------------------------------------------------ */

int64_t sw_clock_now(struct sw_clock *clock)
{
    return clock->ops->now_ms(clock);
}

uint64_t sw_clock_timer_start(struct sw_clock *clock, uint64_t delay_ms, sw_timer_cb cb, void *ud)
{
    if (clock == NULL || cb == NULL)
        return 0;
    return clock->ops->timer_start(clock, delay_ms, cb, ud);
}

void sw_clock_timer_stop(struct sw_clock *clock, uint64_t timer_id)
{
    if (clock == NULL || timer_id == 0)
        return;
    clock->ops->timer_stop(clock, timer_id);
}

void sw_clock_free(struct sw_clock *clock)
{
    if (clock == NULL)
        return;
    clock->ops->free(clock);
}

/* ---- id map --------------------------------------------------------------------------- */

/* Fibonacci hashing spreads the sequential ids over the table. */
static size_t map_home(const struct sw__clock_map *map, uint64_t key)
{
    return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (map->cap - 1);
}

static void map_insert_raw(struct sw__clock_map *map, uint64_t key, uint64_t value)
{
    size_t mask = map->cap - 1;
    size_t i = map_home(map, key);
    while (map->keys[i] != 0)
        i = (i + 1) & mask;
    map->keys[i] = key;
    map->values[i] = value;
    map->count++;
}

static void map_grow(struct sw__clock_map *map)
{
    uint64_t *old_keys = map->keys;
    uint64_t *old_values = map->values;
    size_t old_cap = map->cap;

    map->cap = old_cap ? old_cap * 2 : 64;
    map->keys = sw_xcalloc(map->cap, sizeof(*map->keys));
    map->values = sw_xmalloc(map->cap * sizeof(*map->values));
    map->count = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old_keys[i] != 0)
            map_insert_raw(map, old_keys[i], old_values[i]);
    free(old_keys);
    free(old_values);
}

void sw__clock_map_free(struct sw__clock_map *map)
{
    free(map->keys);
    free(map->values);
    memset(map, 0, sizeof(*map));
}

void sw__clock_map_put(struct sw__clock_map *map, uint64_t key, uint64_t value)
{
    /* Keep the load at or below one half: probes stay short. */
    if ((map->count + 1) * 2 > map->cap)
        map_grow(map);
    map_insert_raw(map, key, value);
}

static bool map_find(const struct sw__clock_map *map, uint64_t key, size_t *slot)
{
    if (map->cap == 0)
        return false;
    size_t mask = map->cap - 1;
    for (size_t i = map_home(map, key); map->keys[i] != 0; i = (i + 1) & mask) {
        if (map->keys[i] == key) {
            *slot = i;
            return true;
        }
    }
    return false;
}

bool sw__clock_map_get(const struct sw__clock_map *map, uint64_t key, uint64_t *value)
{
    size_t slot;
    if (!map_find(map, key, &slot))
        return false;
    *value = map->values[slot];
    return true;
}

bool sw__clock_map_del(struct sw__clock_map *map, uint64_t key, uint64_t *value)
{
    size_t hole;
    if (!map_find(map, key, &hole))
        return false;
    if (value != NULL)
        *value = map->values[hole];

    /* Backward shift: pull later entries of the probe run into the hole unless that
     * would move one before its home slot. */
    size_t mask = map->cap - 1;
    for (size_t j = (hole + 1) & mask; map->keys[j] != 0; j = (j + 1) & mask) {
        size_t home = map_home(map, map->keys[j]);
        bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            map->keys[hole] = map->keys[j];
            map->values[hole] = map->values[j];
            hole = j;
        }
    }
    map->keys[hole] = 0;
    map->count--;
    return true;
}

/* ---- live clock ----------------------------------------------------------------------- */

struct live_clock;

struct live_timer {
    uv_timer_t handle; /* handle.data points back here */
    struct live_clock *clock;
    uint64_t id;
    int64_t due_ms; /* on the clock's own time */
    sw_timer_cb cb;
    void *ud;
};

struct live_clock {
    struct sw_clock base;
    uv_loop_t *loop;
    double speed;
    int64_t epoch_ms_at_start; /* wall clock, read once */
    uint64_t hrtime_at_start;  /* monotonic ns at the same moment */
    uint64_t next_id;
    struct sw__clock_map timers; /* id → (uintptr_t)struct live_timer * */
};

static void live_timer_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static int64_t live_now_ms(struct sw_clock *clock)
{
    struct live_clock *live = (struct live_clock *)clock;
    uint64_t elapsed_ns = uv_hrtime() - live->hrtime_at_start;

    if (live->speed == 1.0)
        return live->epoch_ms_at_start + (int64_t)(elapsed_ns / 1000000);
    return live->epoch_ms_at_start + (int64_t)((double)elapsed_ns * live->speed / 1e6);
}

/* Real milliseconds for a span of clock time: divided by speed, rounded up so a sped-up
 * timer never fires before its clock due time. */
static uint64_t live_real_delay(const struct live_clock *live, uint64_t delay_ms)
{
    if (live->speed == 1.0)
        return delay_ms;
    double scaled = ceil((double)delay_ms / live->speed);
    return scaled >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)scaled;
}

static void live_timer_fired(uv_timer_t *handle)
{
    struct live_timer *timer = handle->data;
    struct live_clock *live = timer->clock;
    sw_timer_cb cb = timer->cb;
    void *ud = timer->ud;

    /* Safety net behind the 1 ms pad in live_timer_start (libuv's loop time may come from
     * a coarser clock than uv_hrtime): a callback never sees now < due. */
    int64_t now = live_now_ms(&live->base);
    if (now < timer->due_ms) {
        uint64_t rest = live_real_delay(live, (uint64_t)(timer->due_ms - now));
        uv_timer_start(handle, live_timer_fired, rest ? rest : 1, 0);
        return;
    }

    /* Forget the timer before the callback: stopping its own id from inside is then a
     * no-op and pending already excludes it, as on the simulated clock. */
    sw__clock_map_del(&timer->clock->timers, timer->id, NULL);
    uv_close((uv_handle_t *)handle, live_timer_closed);
    cb(ud);
}

static uint64_t live_timer_start(struct sw_clock *clock, uint64_t delay_ms, sw_timer_cb cb,
                                 void *ud)
{
    struct live_clock *live = (struct live_clock *)clock;
    uint64_t real_delay = live_real_delay(live, delay_ms);
    int64_t now = live_now_ms(clock);

    /* libuv compares whole milliseconds of its loop time, so a d ms timer may expire up to
     * 1 ms short of d on a finer clock; one extra millisecond makes "fires after, never
     * before, its due time" hold without re-arming (which could reorder close timers). */
    if (delay_ms > 0 && real_delay < UINT64_MAX)
        real_delay++;

    struct live_timer *timer = sw_xcalloc(1, sizeof(*timer));
    int rc = uv_timer_init(live->loop, &timer->handle);
    if (rc != 0) {
        sw_log(SW_LOG_ERROR, "clock", "uv_timer_init: %s", uv_strerror(rc));
        free(timer);
        return 0;
    }
    timer->handle.data = timer;
    timer->clock = live;
    timer->id = live->next_id++;
    timer->due_ms = delay_ms > (uint64_t)(INT64_MAX - now) ? INT64_MAX : now + (int64_t)delay_ms;
    timer->cb = cb;
    timer->ud = ud;
    /* uv timers never fire inside uv_timer_start, which gives the "0 fires on a later
     * turn, never inside this call" guarantee. The loop's cached time may be stale (it is
     * refreshed once per iteration, and callbacks take time): refresh it so the delay
     * counts from now, not from the start of this iteration. */
    uv_update_time(live->loop);
    rc = uv_timer_start(&timer->handle, live_timer_fired, real_delay, 0);
    if (rc != 0) {
        sw_log(SW_LOG_ERROR, "clock", "uv_timer_start: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&timer->handle, live_timer_closed);
        return 0;
    }
    sw__clock_map_put(&live->timers, timer->id, (uint64_t)(uintptr_t)timer);
    return timer->id;
}

static void live_timer_stop(struct sw_clock *clock, uint64_t timer_id)
{
    struct live_clock *live = (struct live_clock *)clock;
    uint64_t value;

    if (!sw__clock_map_del(&live->timers, timer_id, &value))
        return;
    struct live_timer *timer = (struct live_timer *)(uintptr_t)value;
    uv_timer_stop(&timer->handle);
    uv_close((uv_handle_t *)&timer->handle, live_timer_closed);
}

static void live_free(struct sw_clock *clock)
{
    struct live_clock *live = (struct live_clock *)clock;
    uv_loop_t *loop = live->loop;

    for (size_t i = 0; i < live->timers.cap; i++) {
        if (live->timers.keys[i] == 0)
            continue;
        struct live_timer *timer = (struct live_timer *)(uintptr_t)live->timers.values[i];
        uv_timer_stop(&timer->handle);
        uv_close((uv_handle_t *)&timer->handle, live_timer_closed);
    }
    sw__clock_map_free(&live->timers);
    free(live);
    /* Closed timers (these and any closed earlier this turn) are only released by the
     * loop's close phase; one non-blocking pass runs it, after which uv_loop_close sees no
     * handle of ours. uv_run is not reentrant, so the clock must be freed from outside
     * the loop's callbacks (after uv_run returned), which is where shutdown happens. */
    uv_run(loop, UV_RUN_NOWAIT);
}

static const struct sw_clock_ops live_ops = {
    .now_ms = live_now_ms,
    .timer_start = live_timer_start,
    .timer_stop = live_timer_stop,
    .free = live_free,
};

struct sw_clock *sw_clock_live_new(uv_loop_t *loop, double speed)
{
    if (loop == NULL || !(speed >= 1.0) || isinf(speed)) {
        sw_log(SW_LOG_ERROR, "clock", "live clock needs a loop and a finite speed >= 1");
        return NULL;
    }

    struct timespec wall;
    /* The one place steward reads the wall clock: the live clock's epoch. Everything
     * after is monotonic elapsed time, so a wall-clock step never moves timers. */
    if (clock_gettime(CLOCK_REALTIME, &wall) != 0) {
        sw_log(SW_LOG_ERROR, "clock", "clock_gettime(CLOCK_REALTIME) failed");
        return NULL;
    }

    struct live_clock *live = sw_xcalloc(1, sizeof(*live));
    live->base.ops = &live_ops;
    live->base.simulated = false;
    live->loop = loop;
    live->speed = speed;
    live->hrtime_at_start = uv_hrtime();
    live->epoch_ms_at_start = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    live->next_id = 1;
    return &live->base;
}

size_t sw_clock_pending(struct sw_clock *clock)
{
    if (clock == NULL)
        return 0;
    if (clock->simulated)
        return sw__clock_sim_pending(clock);
    return ((struct live_clock *)clock)->timers.count;
}

void sw_clock_utc_text(int64_t epoch_ms, char out[SW_UTC_TEXT_LEN])
{
    time_t secs = (time_t)(epoch_ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL ||
        strftime(out, SW_UTC_TEXT_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, SW_UTC_TEXT_LEN, "%lld ms", (long long)epoch_ms);
}
