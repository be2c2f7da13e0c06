/* test_clock.c — the live clock on a real libuv loop. */
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "clock.h"
#include "sw_test.h"

struct fire_log {
    struct sw_clock *clock;
    int order[16];
    int count;
    int64_t now_at_fire[16];
    uint64_t hr_at_fire[16];
    size_t pending_at_fire[16];
};

struct fire_arg {
    struct fire_log *log;
    int tag;
};

static void record_fire(void *ud)
{
    struct fire_arg *arg = ud;
    struct fire_log *log = arg->log;
    if (log->count < 16) {
        log->order[log->count] = arg->tag;
        log->now_at_fire[log->count] = sw_clock_now(log->clock);
        log->hr_at_fire[log->count] = uv_hrtime();
        log->pending_at_fire[log->count] = sw_clock_pending(log->clock);
    }
    log->count++;
}

static void count_fire(void *ud)
{
    (*(int *)ud)++;
}

SW_TEST(live_timers_fire_in_due_order)
{
    uv_loop_t loop;
    SW_ASSERT_EQ(uv_loop_init(&loop), 0);
    struct sw_clock *clock = sw_clock_live_new(&loop, 1.0);
    SW_ASSERT(clock != NULL);
    SW_ASSERT(!clock->simulated);

    struct fire_log log = {.clock = clock};
    struct fire_arg args[3] = {{&log, 30}, {&log, 10}, {&log, 20}};
    uint64_t id30 = sw_clock_timer_start(clock, 30, record_fire, &args[0]);
    uint64_t id10 = sw_clock_timer_start(clock, 10, record_fire, &args[1]);
    uint64_t id20 = sw_clock_timer_start(clock, 20, record_fire, &args[2]);
    /* Ids start at 1 and increase. */
    SW_ASSERT_EQ(id30, 1);
    SW_ASSERT_EQ(id10, 2);
    SW_ASSERT_EQ(id20, 3);
    SW_ASSERT_EQ(sw_clock_pending(clock), 3);

    SW_ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    SW_ASSERT_EQ(log.count, 3);
    SW_ASSERT_EQ(log.order[0], 10);
    SW_ASSERT_EQ(log.order[1], 20);
    SW_ASSERT_EQ(log.order[2], 30);
    /* The firing timer no longer counts as pending inside its own callback. */
    SW_ASSERT_EQ(log.pending_at_fire[0], 2);
    SW_ASSERT_EQ(log.pending_at_fire[1], 1);
    SW_ASSERT_EQ(log.pending_at_fire[2], 0);
    SW_ASSERT(log.now_at_fire[0] <= log.now_at_fire[1]);
    SW_ASSERT(log.now_at_fire[1] <= log.now_at_fire[2]);
    SW_ASSERT_EQ(sw_clock_pending(clock), 0);

    sw_clock_free(clock);
    SW_ASSERT_EQ(uv_loop_close(&loop), 0);
}

SW_TEST(live_zero_delay_fires_on_a_later_turn)
{
    uv_loop_t loop;
    SW_ASSERT_EQ(uv_loop_init(&loop), 0);
    struct sw_clock *clock = sw_clock_live_new(&loop, 1.0);
    int fired = 0;

    uint64_t id = sw_clock_timer_start(clock, 0, count_fire, &fired);
    SW_ASSERT(id > 0);
    SW_ASSERT_EQ(fired, 0);
    SW_ASSERT_EQ(sw_clock_pending(clock), 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    SW_ASSERT_EQ(fired, 1);
    SW_ASSERT_EQ(sw_clock_pending(clock), 0);

    sw_clock_free(clock);
    SW_ASSERT_EQ(uv_loop_close(&loop), 0);
}

SW_TEST(live_stop_before_fire_and_stale_ids)
{
    uv_loop_t loop;
    SW_ASSERT_EQ(uv_loop_init(&loop), 0);
    struct sw_clock *clock = sw_clock_live_new(&loop, 1.0);
    int stopped_fired = 0, kept_fired = 0;

    uint64_t stopped = sw_clock_timer_start(clock, 5, count_fire, &stopped_fired);
    uint64_t kept = sw_clock_timer_start(clock, 10, count_fire, &kept_fired);
    SW_ASSERT_EQ(sw_clock_pending(clock), 2);
    sw_clock_timer_stop(clock, stopped);
    SW_ASSERT_EQ(sw_clock_pending(clock), 1);
    sw_clock_timer_stop(clock, stopped); /* twice: no-op */
    sw_clock_timer_stop(clock, 9999);    /* unknown: no-op */
    sw_clock_timer_stop(clock, 0);
    SW_ASSERT_EQ(sw_clock_pending(clock), 1);

    uv_run(&loop, UV_RUN_DEFAULT);
    SW_ASSERT_EQ(stopped_fired, 0);
    SW_ASSERT_EQ(kept_fired, 1);
    sw_clock_timer_stop(clock, kept); /* already fired: no-op */
    SW_ASSERT_EQ(sw_clock_pending(clock), 0);

    /* Ids are never reused, even after the earlier ones are gone. */
    uint64_t next = sw_clock_timer_start(clock, 1, count_fire, &kept_fired);
    SW_ASSERT_EQ(next, kept + 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    SW_ASSERT_EQ(kept_fired, 2);

    sw_clock_free(clock);
    SW_ASSERT_EQ(uv_loop_close(&loop), 0);
}

struct rearm_state {
    struct sw_clock *clock;
    int fired;
    uint64_t own_id;
    uint64_t victim_id;
    int victim_fired;
};

static void victim_fire(void *ud)
{
    ((struct rearm_state *)ud)->victim_fired++;
}

static void rearm_fire(void *ud)
{
    struct rearm_state *st = ud;
    st->fired++;
    /* Stopping oneself while firing is a no-op; stopping another pending timer works. */
    sw_clock_timer_stop(st->clock, st->own_id);
    sw_clock_timer_stop(st->clock, st->victim_id);
    if (st->fired < 3)
        st->own_id = sw_clock_timer_start(st->clock, 1, rearm_fire, st);
}

SW_TEST(live_callback_rearms_and_stops_others)
{
    uv_loop_t loop;
    SW_ASSERT_EQ(uv_loop_init(&loop), 0);
    struct rearm_state st = {0};
    st.clock = sw_clock_live_new(&loop, 1.0);
    st.own_id = sw_clock_timer_start(st.clock, 1, rearm_fire, &st);
    st.victim_id = sw_clock_timer_start(st.clock, 50, victim_fire, &st);
    uv_run(&loop, UV_RUN_DEFAULT);
    SW_ASSERT_EQ(st.fired, 3);
    SW_ASSERT_EQ(st.victim_fired, 0);
    SW_ASSERT_EQ(sw_clock_pending(st.clock), 0);
    sw_clock_free(st.clock);
    SW_ASSERT_EQ(uv_loop_close(&loop), 0);
}

SW_TEST(live_many_timers_pending_count_exact)
{
    uv_loop_t loop;
    SW_ASSERT_EQ(uv_loop_init(&loop), 0);
    struct sw_clock *clock = sw_clock_live_new(&loop, 1.0);
    enum { N = 5000 };
    static uint64_t ids[N];
    int fired = 0;

    for (int i = 0; i < N; i++) {
        ids[i] = sw_clock_timer_start(clock, (uint64_t)(i % 7), count_fire, &fired);
        SW_ASSERT(i == 0 || ids[i] > ids[i - 1]);
    }
    SW_ASSERT_EQ(sw_clock_pending(clock), N);
    /* Stop every third one, in an order unlike insertion order. */
    int stopped = 0;
    for (int i = N - 1; i >= 0; i -= 3) {
        sw_clock_timer_stop(clock, ids[i]);
        stopped++;
    }
    SW_ASSERT_EQ(sw_clock_pending(clock), N - stopped);
    uv_run(&loop, UV_RUN_DEFAULT);
    SW_ASSERT_EQ(fired, N - stopped);
    SW_ASSERT_EQ(sw_clock_pending(clock), 0);
    sw_clock_free(clock);
    SW_ASSERT_EQ(uv_loop_close(&loop), 0);
}

SW_TEST(live_now_tracks_the_wall_clock)
{
    uv_loop_t loop;
    SW_ASSERT_EQ(uv_loop_init(&loop), 0);
    struct sw_clock *clock = sw_clock_live_new(&loop, 1.0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    SW_ASSERT_NEAR((double)sw_clock_now(clock), (double)wall_ms, 1000.0);

    struct fire_log log = {.clock = clock};
    struct fire_arg arg = {&log, 1};
    /* Let the loop's cached time go stale, as after a long callback: the delay must still
     * count from the start call. */
    usleep(20000);
    int64_t before = sw_clock_now(clock);
    sw_clock_timer_start(clock, 30, record_fire, &arg);
    uv_run(&loop, UV_RUN_DEFAULT);
    SW_ASSERT_EQ(log.count, 1);
    /* A 30 ms timer never fires early on the clock's own time. */
    SW_ASSERT(log.now_at_fire[0] - before >= 30);
    SW_ASSERT(log.now_at_fire[0] - before < 2000);
    sw_clock_free(clock);
    SW_ASSERT_EQ(uv_loop_close(&loop), 0);
}

SW_TEST(live_speed_compresses_delays_and_now)
{
    uv_loop_t loop;
    SW_ASSERT_EQ(uv_loop_init(&loop), 0);
    struct sw_clock *clock = sw_clock_live_new(&loop, 100.0);
    SW_ASSERT(clock != NULL);
    struct fire_log log = {.clock = clock};
    struct fire_arg arg = {&log, 1};

    int64_t virtual_start = sw_clock_now(clock);
    uint64_t real_start = uv_hrtime();
    sw_clock_timer_start(clock, 1000, record_fire, &arg);
    uv_run(&loop, UV_RUN_DEFAULT);
    SW_ASSERT_EQ(log.count, 1);

    double real_ms = (double)(log.hr_at_fire[0] - real_start) / 1e6;
    int64_t virtual_ms = log.now_at_fire[0] - virtual_start;
    /* 1000 virtual ms at speed 100 is 10 real ms; allow a loaded machine some slack. */
    SW_ASSERT(real_ms >= 9.5);
    SW_ASSERT(real_ms < 500.0);
    SW_ASSERT(virtual_ms >= 1000);
    SW_ASSERT(virtual_ms < 50000);
    /* And now runs about 100 times faster than the wall clock. */
    SW_ASSERT_NEAR((double)virtual_ms / real_ms, 100.0, 15.0);

    sw_clock_free(clock);
    SW_ASSERT_EQ(uv_loop_close(&loop), 0);
}

SW_TEST(live_rejects_bad_arguments)
{
    uv_loop_t loop;
    SW_ASSERT_EQ(uv_loop_init(&loop), 0);
    SW_ASSERT(sw_clock_live_new(&loop, 0.5) == NULL);
    SW_ASSERT(sw_clock_live_new(&loop, 0.0 / 0.0) == NULL);
    SW_ASSERT(sw_clock_live_new(NULL, 1.0) == NULL);
    struct sw_clock *clock = sw_clock_live_new(&loop, 1.0);
    SW_ASSERT_EQ(sw_clock_timer_start(clock, 1, NULL, NULL), 0);
    SW_ASSERT_EQ(sw_clock_pending(clock), 0);
    sw_clock_free(NULL);
    SW_ASSERT_EQ(sw_clock_pending(NULL), 0);
    sw_clock_free(clock);
    SW_ASSERT_EQ(uv_loop_close(&loop), 0);
}

SW_TEST(live_free_with_pending_timers_releases_the_loop)
{
    uv_loop_t loop;
    SW_ASSERT_EQ(uv_loop_init(&loop), 0);
    struct sw_clock *clock = sw_clock_live_new(&loop, 1.0);
    int fired = 0;

    sw_clock_timer_start(clock, 0, count_fire, &fired);
    sw_clock_timer_start(clock, 10, count_fire, &fired);
    uint64_t stopped = sw_clock_timer_start(clock, 10000, count_fire, &fired);
    sw_clock_timer_start(clock, 60000, count_fire, &fired);
    /* One closed-but-not-yet-released handle as well. */
    sw_clock_timer_stop(clock, stopped);
    SW_ASSERT_EQ(sw_clock_pending(clock), 3);

    sw_clock_free(clock);
    SW_ASSERT_EQ(fired, 0);
    SW_ASSERT_EQ(uv_loop_close(&loop), 0);
}

SW_TEST_MAIN()
