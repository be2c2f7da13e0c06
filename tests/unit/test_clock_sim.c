/* test_clock_sim.c — the virtual clock: order, ties, re-entrancy, run/stop, determinism,
 * a randomized comparison against a naive model, and a million-event run. */
#include <stdint.h>
#include <time.h>

#include "clock_sim.h"
#include "sw_test.h"

#define T0 INT64_C(1700000000000)

struct trace {
    struct sw_clock *clock;
    int tags[64];
    int64_t times[64];
    size_t pending[64];
    int count;
};

struct tagged {
    struct trace *trace;
    int tag;
};

static void trace_fire(void *ud)
{
    struct tagged *t = ud;
    struct trace *tr = t->trace;
    if (tr->count < 64) {
        tr->tags[tr->count] = t->tag;
        tr->times[tr->count] = sw_clock_now(tr->clock);
        tr->pending[tr->count] = sw_clock_pending(tr->clock);
    }
    tr->count++;
}

SW_TEST(sim_orders_by_due_then_start_sequence)
{
    struct trace tr = {0};
    tr.clock = sw_clock_sim_new(T0);
    SW_ASSERT(tr.clock->simulated);
    SW_ASSERT_EQ(sw_clock_now(tr.clock), T0);

    struct tagged a = {&tr, 1}, b = {&tr, 2}, c = {&tr, 3}, d = {&tr, 4}, e = {&tr, 5};
    uint64_t ida = sw_clock_timer_start(tr.clock, 30, trace_fire, &a);
    sw_clock_timer_start(tr.clock, 10, trace_fire, &b);
    sw_clock_timer_start(tr.clock, 20, trace_fire, &c);
    sw_clock_timer_start(tr.clock, 10, trace_fire, &d); /* ties with b, started later */
    sw_clock_timer_start(tr.clock, 0, trace_fire, &e);  /* 0: fires first, not inside start */
    SW_ASSERT_EQ(ida, 1);
    SW_ASSERT_EQ(tr.count, 0);
    SW_ASSERT_EQ(sw_clock_pending(tr.clock), 5);
    SW_ASSERT_EQ(sw_clock_sim_next_due(tr.clock), T0);
    /* Time does not move until something fires. */
    SW_ASSERT_EQ(sw_clock_now(tr.clock), T0);

    SW_ASSERT_EQ(sw_clock_sim_run(tr.clock, INT64_MAX), 5);
    int want_tags[] = {5, 2, 4, 3, 1};
    int64_t want_times[] = {0, 10, 10, 20, 30};
    SW_ASSERT_EQ(tr.count, 5);
    for (int i = 0; i < 5; i++) {
        SW_ASSERT_EQ(tr.tags[i], want_tags[i]);
        SW_ASSERT_EQ(tr.times[i], T0 + want_times[i]);
        SW_ASSERT_EQ(tr.pending[i], 4 - i);
    }
    /* Running dry leaves now at the last event. */
    SW_ASSERT_EQ(sw_clock_now(tr.clock), T0 + 30);
    SW_ASSERT_EQ(sw_clock_sim_next_due(tr.clock), INT64_MAX);
    SW_ASSERT(!sw_clock_sim_step(tr.clock));
    SW_ASSERT_EQ(sw_clock_now(tr.clock), T0 + 30);
    sw_clock_free(tr.clock);
}

struct chain {
    struct sw_clock *clock;
    int remaining;
    int64_t times[16];
    int count;
};

static void chain_fire(void *ud)
{
    struct chain *ch = ud;
    ch->times[ch->count++] = sw_clock_now(ch->clock);
    if (--ch->remaining > 0) {
        /* Re-arm from inside the callback with a delay that grows each time. */
        sw_clock_timer_start(ch->clock, (uint64_t)ch->count * 5, chain_fire, ch);
    }
}

SW_TEST(sim_callbacks_schedule_more_events)
{
    struct chain ch = {.remaining = 4};
    ch.clock = sw_clock_sim_new(0);
    sw_clock_timer_start(ch.clock, 1, chain_fire, &ch);
    SW_ASSERT_EQ(sw_clock_sim_run(ch.clock, INT64_MAX), 4);
    SW_ASSERT_EQ(ch.count, 4);
    SW_ASSERT_EQ(ch.times[0], 1);
    SW_ASSERT_EQ(ch.times[1], 6);
    SW_ASSERT_EQ(ch.times[2], 16);
    SW_ASSERT_EQ(ch.times[3], 31);
    SW_ASSERT_EQ(sw_clock_pending(ch.clock), 0);
    sw_clock_free(ch.clock);
}

struct stopper {
    struct sw_clock *clock;
    uint64_t self_id;
    uint64_t victim_id;
    int fired;
    int victim_fired;
};

static void victim_fire(void *ud)
{
    ((struct stopper *)ud)->victim_fired++;
}

static void stopper_fire(void *ud)
{
    struct stopper *st = ud;
    st->fired++;
    size_t before = sw_clock_pending(st->clock);
    sw_clock_timer_stop(st->clock, st->self_id); /* already firing: no-op */
    SW_ASSERT_EQ(sw_clock_pending(st->clock), before);
    sw_clock_timer_stop(st->clock, st->victim_id);
}

SW_TEST(sim_stop_pending_fired_and_unknown)
{
    struct trace tr = {0};
    tr.clock = sw_clock_sim_new(T0);
    struct tagged a = {&tr, 1}, b = {&tr, 2}, c = {&tr, 3};
    uint64_t ida = sw_clock_timer_start(tr.clock, 10, trace_fire, &a);
    uint64_t idb = sw_clock_timer_start(tr.clock, 20, trace_fire, &b);
    uint64_t idc = sw_clock_timer_start(tr.clock, 30, trace_fire, &c);
    SW_ASSERT(ida < idb && idb < idc);

    sw_clock_timer_stop(tr.clock, idb);
    SW_ASSERT_EQ(sw_clock_pending(tr.clock), 2);
    sw_clock_timer_stop(tr.clock, idb);
    sw_clock_timer_stop(tr.clock, 12345);
    sw_clock_timer_stop(tr.clock, 0);
    SW_ASSERT_EQ(sw_clock_pending(tr.clock), 2);

    SW_ASSERT(sw_clock_sim_step(tr.clock));
    sw_clock_timer_stop(tr.clock, ida); /* fired: no-op */
    SW_ASSERT_EQ(sw_clock_pending(tr.clock), 1);
    SW_ASSERT_EQ(sw_clock_sim_run(tr.clock, INT64_MAX), 1);
    SW_ASSERT_EQ(tr.count, 2);
    SW_ASSERT_EQ(tr.tags[0], 1);
    SW_ASSERT_EQ(tr.tags[1], 3);

    /* Stopping the heap's top and the last entry keep the heap consistent. */
    uint64_t x = sw_clock_timer_start(tr.clock, 5, trace_fire, &a);
    sw_clock_timer_start(tr.clock, 6, trace_fire, &b);
    uint64_t z = sw_clock_timer_start(tr.clock, 7, trace_fire, &c);
    sw_clock_timer_stop(tr.clock, x);
    sw_clock_timer_stop(tr.clock, z);
    SW_ASSERT_EQ(sw_clock_sim_next_due(tr.clock), T0 + 30 + 6);
    SW_ASSERT_EQ(sw_clock_sim_run(tr.clock, INT64_MAX), 1);
    SW_ASSERT_EQ(tr.tags[2], 2);
    sw_clock_free(tr.clock);

    struct stopper st = {0};
    st.clock = sw_clock_sim_new(0);
    st.self_id = sw_clock_timer_start(st.clock, 5, stopper_fire, &st);
    st.victim_id = sw_clock_timer_start(st.clock, 5, victim_fire, &st); /* same due time */
    SW_ASSERT_EQ(sw_clock_sim_run(st.clock, INT64_MAX), 1);
    SW_ASSERT_EQ(st.fired, 1);
    SW_ASSERT_EQ(st.victim_fired, 0);
    sw_clock_free(st.clock);
}

SW_TEST(sim_run_until_and_stop)
{
    struct trace tr = {0};
    tr.clock = sw_clock_sim_new(T0);
    struct tagged a = {&tr, 1}, b = {&tr, 2}, c = {&tr, 3};
    sw_clock_timer_start(tr.clock, 10, trace_fire, &a);
    sw_clock_timer_start(tr.clock, 20, trace_fire, &b);
    sw_clock_timer_start(tr.clock, 30, trace_fire, &c);

    SW_ASSERT_EQ(sw_clock_sim_run(tr.clock, T0 + 25), 2);
    SW_ASSERT_EQ(sw_clock_now(tr.clock), T0 + 25);
    SW_ASSERT_EQ(sw_clock_sim_next_due(tr.clock), T0 + 30);
    /* An event due exactly at until_ms fires. */
    SW_ASSERT_EQ(sw_clock_sim_run(tr.clock, T0 + 30), 1);
    SW_ASSERT_EQ(sw_clock_now(tr.clock), T0 + 30);
    /* until_ms in the past never moves time backwards. */
    sw_clock_timer_start(tr.clock, 10, trace_fire, &a);
    SW_ASSERT_EQ(sw_clock_sim_run(tr.clock, T0), 0);
    SW_ASSERT_EQ(sw_clock_now(tr.clock), T0 + 30);
    sw_clock_free(tr.clock);
}

struct stop_after {
    struct sw_clock *clock;
    int fired;
};

static void stop_after_two(void *ud)
{
    struct stop_after *st = ud;
    if (++st->fired == 2)
        sw_clock_sim_stop(st->clock);
}

SW_TEST(sim_stop_ends_run_after_current_callback)
{
    struct stop_after st = {0};
    st.clock = sw_clock_sim_new(0);
    for (int i = 1; i <= 5; i++)
        sw_clock_timer_start(st.clock, (uint64_t)i, stop_after_two, &st);
    SW_ASSERT_EQ(sw_clock_sim_run(st.clock, INT64_MAX), 2);
    SW_ASSERT_EQ(sw_clock_now(st.clock), 2);
    SW_ASSERT_EQ(sw_clock_pending(st.clock), 3);
    /* The stop request does not leak into the next run. */
    SW_ASSERT_EQ(sw_clock_sim_run(st.clock, INT64_MAX), 3);
    SW_ASSERT_EQ(st.fired, 5);
    sw_clock_free(st.clock);
}

static void count_fire(void *ud)
{
    (*(int *)ud)++;
}

SW_TEST(sim_delay_saturates_at_end_of_time)
{
    struct sw_clock *clock = sw_clock_sim_new(T0);
    int fired = 0;
    sw_clock_timer_start(clock, UINT64_MAX, count_fire, &fired);
    SW_ASSERT_EQ(sw_clock_sim_next_due(clock), INT64_MAX);
    SW_ASSERT_EQ(sw_clock_sim_run(clock, INT64_MAX - 1), 0);
    SW_ASSERT_EQ(sw_clock_now(clock), INT64_MAX - 1);
    sw_clock_free(clock); /* frees the pending timer without firing it */
    SW_ASSERT_EQ(fired, 0);
}

/* ---- randomized: the heap against a naive list, and run-to-run determinism ------------- */

static uint64_t rng_next(uint64_t *state)
{
    /* splitmix64 */
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

#define MODEL_MAX 4096

struct model_timer {
    uint64_t id;
    int64_t due;
    bool live;
};

struct fuzz {
    struct sw_clock *clock;
    uint64_t rng;
    struct model_timer model[MODEL_MAX];
    int model_len;
    uint64_t digest;
    int fired;
    int mismatches;
};

static void fuzz_fire(void *ud);

static void fuzz_start(struct fuzz *fz)
{
    if (fz->model_len >= MODEL_MAX)
        return;
    uint64_t delay = rng_next(&fz->rng) % 50;
    uint64_t id = sw_clock_timer_start(fz->clock, delay, fuzz_fire, fz);
    fz->model[fz->model_len++] =
        (struct model_timer){id, sw_clock_now(fz->clock) + (int64_t)delay, true};
}

/* The live model timer that must fire next: smallest (due, id). */
static int model_next(const struct fuzz *fz)
{
    int best = -1;
    for (int i = 0; i < fz->model_len; i++) {
        const struct model_timer *m = &fz->model[i];
        if (!m->live)
            continue;
        if (best < 0 || m->due < fz->model[best].due ||
            (m->due == fz->model[best].due && m->id < fz->model[best].id))
            best = i;
    }
    return best;
}

static size_t model_live(const struct fuzz *fz)
{
    size_t n = 0;
    for (int i = 0; i < fz->model_len; i++)
        n += fz->model[i].live;
    return n;
}

static void fuzz_fire(void *ud)
{
    struct fuzz *fz = ud;
    int expect = model_next(fz);
    if (expect < 0 || fz->model[expect].due != sw_clock_now(fz->clock)) {
        fz->mismatches++;
        return;
    }
    fz->model[expect].live = false;
    fz->fired++;
    fz->digest = fz->digest * 1099511628211u ^ fz->model[expect].id;
    fz->digest = fz->digest * 1099511628211u ^ (uint64_t)sw_clock_now(fz->clock);
    if (sw_clock_pending(fz->clock) != model_live(fz))
        fz->mismatches++;

    uint64_t r = rng_next(&fz->rng) % 10;
    if (r < 6)
        fuzz_start(fz);
    if (r < 2)
        fuzz_start(fz);
    if (r == 9 && fz->model_len > 0) {
        /* Stop a random timer: maybe live, maybe fired, maybe this one. */
        struct model_timer *victim = &fz->model[rng_next(&fz->rng) % (uint64_t)fz->model_len];
        sw_clock_timer_stop(fz->clock, victim->id);
        victim->live = false;
    }
    /* Inside the callback too (the fired timer is retired before its callback runs): the
     * pending count, and on some ticks the next due. */
    if (sw_clock_pending(fz->clock) != model_live(fz))
        fz->mismatches++;
    if (r == 8) {
        int next = model_next(fz);
        if (sw_clock_sim_next_due(fz->clock) != (next < 0 ? INT64_MAX : fz->model[next].due))
            fz->mismatches++;
    }
}

static void fuzz_run(struct fuzz *fz, uint64_t seed)
{
    memset(fz, 0, sizeof(*fz));
    fz->rng = seed;
    fz->clock = sw_clock_sim_new(T0);
    for (int i = 0; i < 200; i++)
        fuzz_start(fz);
    /* Stop some from outside a callback too. */
    for (int i = 0; i < 200; i += 7) {
        sw_clock_timer_stop(fz->clock, fz->model[i].id);
        fz->model[i].live = false;
    }
    sw_clock_sim_run(fz->clock, INT64_MAX);
}

SW_TEST(sim_matches_naive_model_and_is_deterministic)
{
    static struct fuzz first, second;
    fuzz_run(&first, 42);
    SW_ASSERT_EQ(first.mismatches, 0);
    SW_ASSERT(first.fired > 500);
    SW_ASSERT_EQ(model_live(&first), 0);
    SW_ASSERT_EQ(sw_clock_pending(first.clock), 0);

    fuzz_run(&second, 42);
    SW_ASSERT_EQ(second.mismatches, 0);
    SW_ASSERT_EQ(second.fired, first.fired);
    SW_ASSERT_EQ(second.digest, first.digest);
    SW_ASSERT_EQ(sw_clock_now(second.clock), sw_clock_now(first.clock));
    sw_clock_free(first.clock);
    sw_clock_free(second.clock);
}

/* ---- volume --------------------------------------------------------------------------- */

struct ticker {
    struct sw_clock *clock;
    uint64_t *fired;
    uint64_t period;
    int64_t last_now;
    bool went_backwards;
    uint64_t timeout_id; /* a guard timer armed and stopped every tick, like a request */
};

static void never_fire(void *ud)
{
    (void)ud;
    abort();
}

static void ticker_fire(void *ud)
{
    struct ticker *tk = ud;
    int64_t now = sw_clock_now(tk->clock);
    if (now < tk->last_now)
        tk->went_backwards = true;
    tk->last_now = now;
    (*tk->fired)++;
    sw_clock_timer_stop(tk->clock, tk->timeout_id);
    tk->timeout_id = sw_clock_timer_start(tk->clock, 30000, never_fire, NULL);
    sw_clock_timer_start(tk->clock, tk->period, ticker_fire, tk);
}

SW_TEST(sim_million_events)
{
    enum { TICKERS = 1000 };
    static struct ticker tickers[TICKERS];
    uint64_t fired = 0;
    struct sw_clock *clock = sw_clock_sim_new(T0);

    for (int i = 0; i < TICKERS; i++) {
        tickers[i] = (struct ticker){
            .clock = clock, .fired = &fired, .period = 1000 + (uint64_t)i % 17, .last_now = T0};
        sw_clock_timer_start(clock, (uint64_t)i, ticker_fire, &tickers[i]);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t steps = 0;
    while (fired < 1000000 && sw_clock_sim_step(clock))
        steps++;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("    1,000,000 events (+1,000,000 start/stop pairs) in %.3f s\n", secs);

    SW_ASSERT_EQ(fired, 1000000);
    SW_ASSERT_EQ(steps, 1000000);
    for (int i = 0; i < TICKERS; i++)
        SW_ASSERT(!tickers[i].went_backwards);
    /* One tick timer and one guard timer per ticker remain. */
    SW_ASSERT_EQ(sw_clock_pending(clock), 2 * TICKERS);
    sw_clock_free(clock);
}

SW_TEST_MAIN()
