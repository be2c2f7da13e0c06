/* clock_sim.c — the virtual clock. A binary min-heap of (due, id) entries: ids grow with
 * every start, so the id doubles as the start sequence that breaks ties between equal due
 * times. Timer records live in a slab recycled through a free list, and an id → slot map
 * finds a record for timer_stop, which removes it from the heap at once (pending is
 * exact, and a stopped long timer never lingers in the heap). Nothing is allocated per
 * timer once the slab and heap have grown to the peak number of pending timers.
 */
#include "clock_sim.h"

#include <stdlib.h>

#include "clock_internal.h"
#include "mem.h"

#define NO_SLOT UINT32_MAX

struct sim_entry {
    int64_t due_ms;
    uint64_t id; /* also the start sequence */
    uint32_t slot;
};

struct sim_record {
    sw_timer_cb cb;
    void *ud;
    uint32_t heap_pos;  /* index in heap while pending */
    uint32_t next_free; /* free-list link while unused */
};

struct sim_clock {
    struct sw_clock base;
    int64_t now_ms;
    uint64_t next_id;
    struct sim_entry *heap;
    size_t heap_len;
    size_t heap_cap;
    struct sim_record *records;
    uint32_t record_cap;
    uint32_t free_head;
    struct sw__clock_map ids; /* id → slot */
    bool stop_requested;
};

static struct sim_clock *as_sim(struct sw_clock *clock)
{
    return clock != NULL && clock->simulated ? (struct sim_clock *)clock : NULL;
}

static bool entry_before(const struct sim_entry *a, const struct sim_entry *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->id < b->id);
}

static void heap_place(struct sim_clock *sim, size_t pos, struct sim_entry entry)
{
    sim->heap[pos] = entry;
    sim->records[entry.slot].heap_pos = (uint32_t)pos;
}

static void heap_sift_up(struct sim_clock *sim, size_t pos)
{
    struct sim_entry entry = sim->heap[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!entry_before(&entry, &sim->heap[parent]))
            break;
        heap_place(sim, pos, sim->heap[parent]);
        pos = parent;
    }
    heap_place(sim, pos, entry);
}

static void heap_sift_down(struct sim_clock *sim, size_t pos)
{
    struct sim_entry entry = sim->heap[pos];
    size_t len = sim->heap_len;
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= len)
            break;
        if (child + 1 < len && entry_before(&sim->heap[child + 1], &sim->heap[child]))
            child++;
        if (!entry_before(&sim->heap[child], &entry))
            break;
        heap_place(sim, pos, sim->heap[child]);
        pos = child;
    }
    heap_place(sim, pos, entry);
}

static void heap_remove_at(struct sim_clock *sim, size_t pos)
{
    struct sim_entry last = sim->heap[--sim->heap_len];
    if (pos == sim->heap_len)
        return;
    heap_place(sim, pos, last);
    if (pos > 0 && entry_before(&last, &sim->heap[(pos - 1) / 2]))
        heap_sift_up(sim, pos);
    else
        heap_sift_down(sim, pos);
}

static uint32_t slot_alloc(struct sim_clock *sim)
{
    if (sim->free_head == NO_SLOT) {
        uint32_t old_cap = sim->record_cap;
        if (old_cap >= NO_SLOT / 2)
            return NO_SLOT;
        uint32_t new_cap = old_cap ? old_cap * 2 : 256;
        sim->records = sw_xrealloc(sim->records, (size_t)new_cap * sizeof(*sim->records));
        /* Thread the new records so the lowest slot is handed out first. */
        for (uint32_t i = old_cap; i < new_cap; i++)
            sim->records[i].next_free = i + 1 < new_cap ? i + 1 : NO_SLOT;
        sim->free_head = old_cap;
        sim->record_cap = new_cap;
    }
    uint32_t slot = sim->free_head;
    sim->free_head = sim->records[slot].next_free;
    return slot;
}

static void slot_free(struct sim_clock *sim, uint32_t slot)
{
    sim->records[slot].cb = NULL;
    sim->records[slot].ud = NULL;
    sim->records[slot].next_free = sim->free_head;
    sim->free_head = slot;
}

static int64_t sim_now_ms(struct sw_clock *clock)
{
    return ((struct sim_clock *)clock)->now_ms;
}

static uint64_t sim_timer_start(struct sw_clock *clock, uint64_t delay_ms, sw_timer_cb cb, void *ud)
{
    struct sim_clock *sim = (struct sim_clock *)clock;
    uint32_t slot = slot_alloc(sim);
    if (slot == NO_SLOT)
        return 0;

    if (sim->heap_len == sim->heap_cap) {
        sim->heap_cap = sim->heap_cap ? sim->heap_cap * 2 : 256;
        sim->heap = sw_xrealloc(sim->heap, sim->heap_cap * sizeof(*sim->heap));
    }

    /* A delay past the end of time saturates rather than wrapping into the past. */
    int64_t due = delay_ms > (uint64_t)(INT64_MAX - sim->now_ms) ? INT64_MAX
                                                                 : sim->now_ms + (int64_t)delay_ms;
    uint64_t id = sim->next_id++;
    sim->records[slot].cb = cb;
    sim->records[slot].ud = ud;
    sw__clock_map_put(&sim->ids, id, slot);
    sim->heap[sim->heap_len] = (struct sim_entry){.due_ms = due, .id = id, .slot = slot};
    sim->heap_len++;
    heap_sift_up(sim, sim->heap_len - 1);
    return id;
}

static void sim_timer_stop(struct sw_clock *clock, uint64_t timer_id)
{
    struct sim_clock *sim = (struct sim_clock *)clock;
    uint64_t slot;
    if (!sw__clock_map_del(&sim->ids, timer_id, &slot))
        return;
    heap_remove_at(sim, sim->records[slot].heap_pos);
    slot_free(sim, (uint32_t)slot);
}

static void sim_free(struct sw_clock *clock)
{
    struct sim_clock *sim = (struct sim_clock *)clock;
    free(sim->heap);
    free(sim->records);
    sw__clock_map_free(&sim->ids);
    free(sim);
}

static const struct sw_clock_ops sim_ops = {
    .now_ms = sim_now_ms,
    .timer_start = sim_timer_start,
    .timer_stop = sim_timer_stop,
    .free = sim_free,
};

struct sw_clock *sw_clock_sim_new(int64_t start_ms)
{
    struct sim_clock *sim = sw_xcalloc(1, sizeof(*sim));
    sim->base.ops = &sim_ops;
    sim->base.simulated = true;
    sim->now_ms = start_ms;
    sim->next_id = 1;
    sim->free_head = NO_SLOT;
    return &sim->base;
}

bool sw_clock_sim_step(struct sw_clock *clock)
{
    struct sim_clock *sim = as_sim(clock);
    if (sim == NULL || sim->heap_len == 0)
        return false;

    struct sim_entry top = sim->heap[0];
    struct sim_record record = sim->records[top.slot];
    /* Retire the timer before its callback runs, so the callback sees an exact pending
     * count, may re-arm (getting a fresh id) and may stop its own id harmlessly. */
    heap_remove_at(sim, 0);
    sw__clock_map_del(&sim->ids, top.id, NULL);
    slot_free(sim, top.slot);
    if (top.due_ms > sim->now_ms)
        sim->now_ms = top.due_ms;
    record.cb(record.ud);
    return true;
}

uint64_t sw_clock_sim_run(struct sw_clock *clock, int64_t until_ms)
{
    struct sim_clock *sim = as_sim(clock);
    uint64_t fired = 0;
    if (sim == NULL)
        return 0;

    sim->stop_requested = false;
    while (!sim->stop_requested && sim->heap_len > 0) {
        if (sim->heap[0].due_ms > until_ms) {
            /* Stopped for until_ms: the quiet stretch up to it has passed. (Running dry or
             * sw_clock_sim_stop leave now at the last event.) */
            if (until_ms > sim->now_ms)
                sim->now_ms = until_ms;
            break;
        }
        sw_clock_sim_step(clock);
        fired++;
    }
    sim->stop_requested = false;
    return fired;
}

void sw_clock_sim_stop(struct sw_clock *clock)
{
    struct sim_clock *sim = as_sim(clock);
    if (sim != NULL)
        sim->stop_requested = true;
}

int64_t sw_clock_sim_next_due(struct sw_clock *clock)
{
    struct sim_clock *sim = as_sim(clock);
    return sim != NULL && sim->heap_len > 0 ? sim->heap[0].due_ms : INT64_MAX;
}

size_t sw__clock_sim_pending(struct sw_clock *clock)
{
    return ((struct sim_clock *)clock)->heap_len;
}
