#include "sim.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "clock_sim.h"
#include "config.h"
#include "journal.h"
#include "log.h"
#include "mem.h"
#include "model.h"
#include "paths.h"
#include "report.h"
#include "runtime.h"
#include "sim_master.h" /* ml */

static const char *LOG = "sim";

/* ---- latency histogram ------------------------------------------------------------------ */

#define HIST_FINE 10000   /* [0, 100) ms by 0.01 */
#define HIST_MID 9000     /* [100, 1000) ms by 0.1 */
#define HIST_COARSE 59000 /* [1000, 60000) ms by 1 */
#define SW_HIST_BINS (HIST_FINE + HIST_MID + HIST_COARSE)

static size_t hist_index(double v)
{
    if (!(v > 0))
        return 0;
    if (v < 100)
        return (size_t)llround(v / 0.01);
    if (v < 1000)
        return HIST_FINE + (size_t)llround((v - 100) / 0.1);
    if (v < 60000) {
        size_t i = HIST_FINE + HIST_MID + (size_t)llround(v - 1000);
        return i < SW_HIST_BINS ? i : SW_HIST_BINS - 1;
    }
    return SW_HIST_BINS - 1;
}

static double hist_value(size_t i)
{
    if (i < HIST_FINE)
        return (double)i * 0.01;
    if (i < HIST_FINE + HIST_MID)
        return 100 + (double)(i - HIST_FINE) * 0.1;
    return 1000 + (double)(i - HIST_FINE - HIST_MID);
}

void sw_hist_init(struct sw_hist *h)
{
    h->weight = NULL;
    h->total = 0;
}

void sw_hist_clear(struct sw_hist *h)
{
    free(h->weight);
    sw_hist_init(h);
}

/* sw_hist_add once the value's bin is known (weight > 0, value not NaN). */
static void hist_add_bin(struct sw_hist *h, size_t bin, double weight)
{
    /* Allocated on first use: regions without users never pay for one. */
    if (h->weight == NULL)
        h->weight = sw_xcalloc(SW_HIST_BINS, sizeof(double));
    h->weight[bin] += weight;
    h->total += weight;
}

void sw_hist_add(struct sw_hist *h, double value_ms, double weight)
{
    if (!(weight > 0) || isnan(value_ms))
        return;
    hist_add_bin(h, hist_index(value_ms), weight);
}

void sw_hist_merge(struct sw_hist *into, const struct sw_hist *from)
{
    if (from->weight == NULL)
        return;
    if (into->weight == NULL)
        into->weight = sw_xcalloc(SW_HIST_BINS, sizeof(double));
    for (size_t i = 0; i < SW_HIST_BINS; i++)
        into->weight[i] += from->weight[i];
    into->total += from->total;
}

/* Cumulative sums drift by a few ulps over millions of additions: a rank is reached
 * when within a relative 1e-12 of the target. */
static bool reached(double cum, double target, double total)
{
    return cum >= target - total * 1e-12;
}

double sw_hist_percentile(const struct sw_hist *h, double p)
{
    if (h->weight == NULL || !(h->total > 0))
        return NAN;
    double target = h->total * p / 100.0;
    double cum = 0;
    for (size_t i = 0; i < SW_HIST_BINS; i++) {
        if (h->weight[i] <= 0)
            continue;
        cum += h->weight[i];
        if (reached(cum, target, h->total))
            return hist_value(i);
    }
    return hist_value(SW_HIST_BINS - 1);
}

static int cmp_weighted(const void *a, const void *b)
{
    double x = ((const struct sw_weighted *)a)->value;
    double y = ((const struct sw_weighted *)b)->value;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* glibc's qsort on these arrays, step for step (its merge sort: halves of n / 2 and the
 * rest, the left item first unless cmp_weighted says it is greater), without the calls
 * through a comparator pointer: the same order to the item, NaNs included. tmp holds
 * count items. */
static void weighted_sort(struct sw_weighted *items, struct sw_weighted *tmp, size_t count)
{
    if (count <= 1)
        return;
    size_t n1 = count / 2, n2 = count - n1;
    struct sw_weighted *b1 = items, *b2 = items + n1;
    weighted_sort(b1, tmp, n1);
    weighted_sort(b2, tmp, n2);
    struct sw_weighted *out = tmp;
    while (n1 > 0 && n2 > 0) {
        if (!(b1->value > b2->value)) {
            *out++ = *b1++;
            n1--;
        } else {
            *out++ = *b2++;
            n2--;
        }
    }
    if (n1 > 0)
        memcpy(out, b1, n1 * sizeof(*out));
    memcpy(items, tmp, (count - n2) * sizeof(*items));
}

/* weighted_sort's order by insertion for a few items: both are stable sorts by value, and
 * without NaN (for which `>` is no order) a stable sort's result is unique, so the same to
 * the item. Past a few dozen items, or with a NaN, the merge sort itself. */
#define WEIGHTED_INSERTION_MAX 32

static void weighted_sort_small(struct sw_weighted *items, struct sw_weighted *tmp, size_t count)
{
    bool nan_seen = false;
    for (size_t i = 0; i < count; i++)
        nan_seen |= isnan(items[i].value);
    if (count > WEIGHTED_INSERTION_MAX || nan_seen) {
        weighted_sort(items, tmp, count);
        return;
    }
    for (size_t i = 1; i < count; i++) {
        struct sw_weighted v = items[i];
        size_t k = i;
        for (; k > 0 && items[k - 1].value > v.value; k--)
            items[k] = items[k - 1];
        items[k] = v;
    }
}

static double positive_total(const struct sw_weighted *items, size_t count)
{
    double total = 0;
    for (size_t i = 0; i < count; i++)
        total += items[i].weight > 0 ? items[i].weight : 0;
    return total;
}

/* The rank walk of sw_weighted_percentile over items already sorted, total given. */
static double sorted_percentile(const struct sw_weighted *items, size_t count, double total,
                                double p)
{
    if (!(total > 0))
        return NAN;
    double target = total * p / 100.0;
    double cum = 0;
    for (size_t i = 0; i < count; i++) {
        if (!(items[i].weight > 0))
            continue;
        cum += items[i].weight;
        if (reached(cum, target, total))
            return items[i].value;
    }
    return items[count - 1].value;
}

double sw_weighted_percentile(struct sw_weighted *items, size_t count, double p)
{
    double total = positive_total(items, count);
    if (!(total > 0))
        return NAN;
    qsort(items, count, sizeof(*items), cmp_weighted);
    return sorted_percentile(items, count, total, p);
}

/* ---- web model ------------------------------------------------------------------------ */

static const double *order_rtt;

static int cmp_pair(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    double rx = order_rtt[x], ry = order_rtt[y];
    if (rx != ry)
        return rx < ry ? -1 : 1;
    return x < y ? -1 : x > y ? 1 : 0; /* row-major index: lower user, then lower server */
}

void sw_web_model_init(struct sw_web_model *m, size_t users, size_t servers, const double *rtt_ms,
                       size_t *order, double service_ms)
{
    m->users = users;
    m->servers = servers;
    m->rtt_ms = rtt_ms;
    m->order = order;
    m->service_ms = service_ms;
    m->order_user = NULL;
    m->order_server = NULL;
    for (size_t i = 0; i < users * servers; i++)
        order[i] = i;
    order_rtt = rtt_ms;
    qsort(order, users * servers, sizeof(size_t), cmp_pair);
    order_rtt = NULL;
}

static void sort_pairs(size_t *pairs, size_t count)
{
    for (size_t i = 1; i < count; i++) {
        size_t v = pairs[i], k = i;
        for (; k > 0 && pairs[k - 1] > v; k--)
            pairs[k] = pairs[k - 1];
        pairs[k] = v;
    }
}

static double pair_latency(const struct sw_web_model *m, const double *capacity, const double *load,
                           size_t pair, size_t s)
{
    double rho = capacity[s] > 0 ? load[s] / capacity[s] : 1.0;
    if (rho > SW_SIM_RHO_CAP)
        rho = SW_SIM_RHO_CAP;
    return m->rtt_ms[pair] + m->service_ms * rho / (1.0 - rho);
}

size_t sw_web_model_assign(const struct sw_web_model *m, const double *demand,
                           const double *capacity, double *served, double *dropped, double *latency,
                           double *load, size_t *served_pairs)
{
    size_t n = m->users * m->servers;
    /* Users with demand left and servers with room left, counted by the very tests the
     * walk makes: once either is none, no further pair takes anything and the walk
     * stops early. */
    size_t users_left = 0, servers_left = 0, taken = 0;
    for (size_t u = 0; u < m->users; u++) {
        dropped[u] = demand[u] > 0 ? demand[u] : 0;
        users_left += !(dropped[u] <= 0);
    }
    for (size_t s = 0; s < m->servers; s++) {
        load[s] = 0;
        servers_left += !(capacity[s] - load[s] <= 0);
    }
    memset(served, 0, n * sizeof(*served));
    for (size_t k = 0; k < n && users_left > 0 && servers_left > 0; k++) {
        size_t pair = m->order[k];
        size_t u = m->order_user != NULL ? m->order_user[k] : pair / m->servers;
        size_t s = m->order_server != NULL ? m->order_server[k] : pair % m->servers;
        double room = capacity[s] - load[s];
        if (dropped[u] <= 0 || room <= 0)
            continue;
        double take = dropped[u] < room ? dropped[u] : room;
        served[pair] = take;
        if (served_pairs != NULL) /* each pair is visited once */
            served_pairs[taken] = pair;
        taken++;
        load[s] += take;
        dropped[u] -= take;
        users_left -= dropped[u] <= 0;
        servers_left -= capacity[s] - load[s] <= 0;
    }
    if (served_pairs != NULL) {
        /* Only the pairs the walk wrote can have served > 0: the rest read NaN. A sample
         * serves about users + servers pairs, few enough to sort by insertion. */
        sort_pairs(served_pairs, taken);
        for (size_t pair = 0; pair < n; pair++)
            latency[pair] = NAN;
        for (size_t i = 0; i < taken; i++) {
            size_t pair = served_pairs[i];
            if (served[pair] > 0)
                latency[pair] = pair_latency(m, capacity, load, pair, pair % m->servers);
        }
        return taken;
    }
    for (size_t pair = 0, s = 0; pair < n; pair++, s = s + 1 == m->servers ? 0 : s + 1)
        latency[pair] = served[pair] > 0 ? pair_latency(m, capacity, load, pair, s) : NAN;
    return taken;
}

/* ---- job model ------------------------------------------------------------------------ */

struct running_job {
    size_t job;
    int64_t started_ms;
    int64_t end_ms;
};

struct sw_jobsim {
    const struct sw_job *jobs;
    size_t count;
    int64_t origin_ms;
    size_t next_submit; /* index of the next job to submit */
    size_t *queue;      /* waiting jobs, head first */
    size_t queue_len;
    struct running_job *running; /* in start order */
    size_t running_len;
    int ready;
    int busy;
    int busy_gpus;
    int64_t last_ms;
    double worker_ms, busy_ms, gpu_ms;
    double *waits_s; /* per started job (first start) */
    size_t waits_len;
    bool *started_once;
    uint64_t submitted, started, completed, restarted;
};

static int64_t submit_ms(const struct sw_jobsim *js, size_t i)
{
    return js->origin_ms + (int64_t)llround(js->jobs[i].submit_s * 1000.0);
}

struct sw_jobsim *sw_jobsim_new(const struct sw_job *jobs, size_t count, int64_t origin_ms,
                                int64_t start_ms)
{
    struct sw_jobsim *js = sw_xcalloc(1, sizeof(*js));
    js->jobs = jobs;
    js->count = count;
    js->origin_ms = origin_ms;
    js->last_ms = start_ms;
    js->queue = sw_xcalloc(count ? count : 1, sizeof(size_t));
    js->running = sw_xcalloc(count ? count : 1, sizeof(*js->running));
    js->waits_s = sw_xcalloc(count ? count : 1, sizeof(double));
    js->started_once = sw_xcalloc(count ? count : 1, sizeof(bool));
    /* Jobs submitted before the window are outside the simulation. */
    while (js->next_submit < count && submit_ms(js, js->next_submit) < start_ms)
        js->next_submit++;
    return js;
}

void sw_jobsim_free(struct sw_jobsim *js)
{
    if (js == NULL)
        return;
    free(js->queue);
    free(js->running);
    free(js->waits_s);
    free(js->started_once);
    free(js);
}

static void jobs_integrate(struct sw_jobsim *js, int64_t t)
{
    if (t <= js->last_ms)
        return;
    double dt = (double)(t - js->last_ms);
    js->worker_ms += js->ready * dt;
    js->busy_ms += js->busy * dt;
    js->gpu_ms += js->busy_gpus * dt;
    js->last_ms = t;
}

static void jobs_try_start(struct sw_jobsim *js, int64_t now)
{
    while (js->queue_len > 0) {
        size_t j = js->queue[0];
        const struct sw_job *job = &js->jobs[j];
        if (js->ready - js->busy < job->workers)
            return; /* first in, first out: the head blocks the rest */
        memmove(js->queue, js->queue + 1, (js->queue_len - 1) * sizeof(size_t));
        js->queue_len--;
        js->busy += job->workers;
        js->busy_gpus += job->workers * job->gpus_per_worker;
        js->running[js->running_len++] = (struct running_job){
            .job = j,
            .started_ms = now,
            .end_ms = now + (int64_t)llround(job->duration_s * 1000.0),
        };
        js->started++;
        if (!js->started_once[j]) {
            js->started_once[j] = true;
            js->waits_s[js->waits_len++] = (double)(now - submit_ms(js, j)) / 1000.0;
        }
    }
}

int64_t sw_jobsim_next_ms(const struct sw_jobsim *js)
{
    int64_t next = INT64_MAX;
    if (js->next_submit < js->count)
        next = submit_ms(js, js->next_submit);
    for (size_t i = 0; i < js->running_len; i++)
        if (js->running[i].end_ms < next)
            next = js->running[i].end_ms;
    return next;
}

void sw_jobsim_advance(struct sw_jobsim *js, int64_t now_ms)
{
    for (;;) {
        int64_t next = sw_jobsim_next_ms(js);
        if (next > now_ms)
            break;
        jobs_integrate(js, next);
        /* Completions first: the workers they free can start a job submitted now. */
        for (size_t i = 0; i < js->running_len;) {
            if (js->running[i].end_ms <= next) {
                const struct sw_job *job = &js->jobs[js->running[i].job];
                js->busy -= job->workers;
                js->busy_gpus -= job->workers * job->gpus_per_worker;
                js->completed++;
                memmove(&js->running[i], &js->running[i + 1],
                        (js->running_len - i - 1) * sizeof(*js->running));
                js->running_len--;
            } else {
                i++;
            }
        }
        while (js->next_submit < js->count && submit_ms(js, js->next_submit) <= next) {
            js->queue[js->queue_len++] = js->next_submit++;
            js->submitted++;
        }
        jobs_try_start(js, next);
    }
    jobs_integrate(js, now_ms);
}

void sw_jobsim_set_workers(struct sw_jobsim *js, int64_t now_ms, int ready)
{
    sw_jobsim_advance(js, now_ms);
    js->ready = ready < 0 ? 0 : ready;
    /* Lost workers interrupt the job started last; it starts over from the queue's head. */
    while (js->busy > js->ready && js->running_len > 0) {
        struct running_job r = js->running[--js->running_len];
        const struct sw_job *job = &js->jobs[r.job];
        js->busy -= job->workers;
        js->busy_gpus -= job->workers * job->gpus_per_worker;
        memmove(js->queue + 1, js->queue, js->queue_len * sizeof(size_t));
        js->queue[0] = r.job;
        js->queue_len++;
        js->restarted++;
    }
    jobs_try_start(js, now_ms);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static double nearest_rank(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return NAN;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    return sorted[(rank > n ? n : rank) - 1];
}

void sw_jobsim_finish(struct sw_jobsim *js, int64_t end_ms, struct sw_jobsim_stats *out)
{
    sw_jobsim_advance(js, end_ms);
    memset(out, 0, sizeof(*out));
    out->submitted = js->submitted;
    out->started = js->started;
    out->completed = js->completed;
    out->restarted = js->restarted;
    out->waiting = js->queue_len;
    double *sorted = sw_xcalloc(js->waits_len ? js->waits_len : 1, sizeof(double));
    memcpy(sorted, js->waits_s, js->waits_len * sizeof(double));
    qsort(sorted, js->waits_len, sizeof(double), cmp_double);
    out->wait_p50_s = nearest_rank(sorted, js->waits_len, 50);
    out->wait_p95_s = nearest_rank(sorted, js->waits_len, 95);
    free(sorted);
    out->worker_hours = js->worker_ms / 3.6e6;
    out->idle_worker_hours = (js->worker_ms - js->busy_ms) / 3.6e6;
    out->gpu_hours = js->gpu_ms / 3.6e6;
}

/* ml: the jobs the simulated training master lists (core/sim_master.c). */
size_t sw_jobsim_active(const struct sw_jobsim *js, sw_jobsim_active_fn fn, void *ud)
{
    for (size_t i = 0; i < js->running_len; i++)
        fn(ud, js->running[i].job, js->running[i].started_ms);
    for (size_t i = 0; i < js->queue_len; i++)
        fn(ud, js->queue[i], -1);
    return js->next_submit;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- one run --------------------------------------------------------------------------- */

/* 2024-01-01T00:00:00Z: trace second 0 unless simulation.origin says otherwise. */
#define DEFAULT_ORIGIN_S 1704067200.0
#define SERIES_MAX_BUCKETS 720

struct tracked {
    char *key;
    int group;  /* index in config groups, -1 unknown */
    int region; /* index in the report's regions, -1 unknown */
    double price;
    int64_t leased_ms; /* 0: never leased */
    bool ready;
    bool closed;
};

/* A growable text buffer kept across timeline rows (see on_evaluation). */
struct strbuf {
    char *text;
    size_t len;
    size_t cap;
};

struct sim {
    const struct sw_sim_opts *opts;
    struct sw_config *config;
    struct sw_demand *demand;
    struct sw_jobs *jobs;
    struct sw_rtt *rtt;
    struct sw_sim_result *res;

    /* parameters */
    double rps_per_unit, slo_p95_ms, service_ms, origin_s;
    int64_t sample_every_ms, offers_every_ms, watch_every_ms;
    char *providers_path;   /* resolved, or NULL when the providers are inline */
    char *providers_inline; /* JSON array text when inline */
    char *rtt_path;
    char **demand_metrics;
    size_t demand_metric_count;
    int web_group; /* config group index, -1 none */
    int job_group;

    /* regions of the report (sorted): demand ∪ provider regions */
    char **regions;
    size_t region_count;
    size_t *users;   /* demand region i → report region */
    size_t *servers; /* serving region j → report region */
    size_t server_count;
    double *rtt_us; /* users × servers */
    size_t *order;
    struct sw_web_model web;
    double *demand_now, *capacity_now, *served, *dropped, *latency, *load;
    struct sw_weighted *wbuf;
    struct sw_weighted *wsort_tmp; /* weighted_sort's scratch, as many items as wbuf */
    size_t *served_pairs;          /* sw_web_model_assign's served pairs, users × servers */
    size_t *cursors;
    struct sw_hist hist_all;
    struct sw_hist *hist_user; /* per report region */

    /* units */
    struct tracked **tracked; /* open-addressing table keyed by unit key */
    size_t tracked_cap;
    size_t tracked_count;
    int *ready;          /* group_count × region_count */
    int *scratch_counts; /* same shape, for the timeline */
    struct strbuf row, ready_text, pending_text; /* the timeline row being built */
    double spend_rate;   /* USD/h of leases open now */
    double cost_accum;   /* integral of spend_rate up to cost_last_ms */
    int64_t cost_last_ms;

    /* time */
    struct sw_clock *clock;
    struct sw_runtime *rt;
    int64_t origin_ms, start_ms, end_ms;
    uint64_t sample_timer;
    uint64_t job_timer;
    int64_t job_timer_due;
    int64_t next_progress_ms;
    int64_t next_compact_ms; /* in-memory journal: when to drop what nobody reads back */
    struct sw_jobsim *jobsim;
    struct sw_sim_master *master; /* ml: the job master jobs_http reads, or NULL */
    bool observing;
    bool failed;
    struct sw_error fatal;
};

static int64_t sim_now(struct sim *s)
{
    return sw_clock_now(s->clock);
}

static int region_index(const struct sim *s, const char *name)
{
    size_t lo = 0, hi = s->region_count;
    while (name != NULL && lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->regions[mid], name);
        if (c == 0)
            return (int)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int group_index(const struct sim *s, const char *name)
{
    for (size_t i = 0; name != NULL && i < s->config->group_count; i++)
        if (strcmp(s->config->groups[i].name, name) == 0)
            return (int)i;
    return -1;
}

static size_t bucket_of(const struct sim *s, int64_t at_ms)
{
    const struct sw_sim_series *se = &s->res->series;
    double t = (double)(at_ms - s->start_ms) / 1000.0;
    if (t < 0)
        t = 0;
    size_t b = (size_t)(t / se->bucket_s);
    return b < se->buckets ? b : se->buckets - 1;
}

/* ---- unit accounting ---- */

static uint64_t hash_key(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

static struct tracked *tracked_get(struct sim *s, const struct sw_unit *u)
{
    if (s->tracked_count * 2 >= s->tracked_cap) {
        size_t cap = s->tracked_cap ? s->tracked_cap * 2 : 256;
        struct tracked **table = sw_xcalloc(cap, sizeof(*table));
        for (size_t i = 0; i < s->tracked_cap; i++) {
            struct tracked *t = s->tracked[i];
            if (t == NULL)
                continue;
            size_t j = hash_key(t->key) & (cap - 1);
            while (table[j] != NULL)
                j = (j + 1) & (cap - 1);
            table[j] = t;
        }
        free(s->tracked);
        s->tracked = table;
        s->tracked_cap = cap;
    }
    size_t j = hash_key(u->key) & (s->tracked_cap - 1);
    while (s->tracked[j] != NULL) {
        if (strcmp(s->tracked[j]->key, u->key) == 0)
            return s->tracked[j];
        j = (j + 1) & (s->tracked_cap - 1);
    }
    struct tracked *t = sw_xcalloc(1, sizeof(*t));
    t->key = sw_xstrdup(u->key);
    t->group = group_index(s, u->group);
    t->region = region_index(s, u->region);
    s->tracked[j] = t;
    s->tracked_count++;
    return t;
}

static void cost_advance(struct sim *s, int64_t now)
{
    if (now > s->cost_last_ms) {
        s->cost_accum += s->spend_rate * (double)(now - s->cost_last_ms) / 3.6e6;
        s->cost_last_ms = now;
    }
}

static double cost_at(const struct sim *s, int64_t at)
{
    return s->cost_accum + s->spend_rate * (double)(at - s->cost_last_ms) / 3.6e6;
}

static int ready_in_group(const struct sim *s, int group)
{
    int total = 0;
    for (size_t r = 0; r < s->region_count; r++)
        total += s->ready[(size_t)group * s->region_count + r];
    return total;
}

static void arm_job_timer(struct sim *s);

/* Ends a lease's accounting at at_ms: its cost goes to the totals, its region, its group. */
static void lease_close(struct sim *s, struct tracked *t, int64_t at_ms)
{
    double hours = (double)(at_ms - t->leased_ms) / 3.6e6;
    double cost = t->price * hours;
    struct sw_sim_result *res = s->res;
    res->cost_usd += cost;
    res->lease_hours += hours;
    if (t->region >= 0) {
        res->regions[t->region].cost_usd += cost;
        res->regions[t->region].lease_hours += hours;
    }
    if (t->group >= 0) {
        res->groups[t->group].cost_usd += cost;
        res->groups[t->group].lease_hours += hours;
    }
}

static void set_ready(struct sim *s, struct tracked *t, bool ready, int64_t now)
{
    if (t->ready == ready)
        return;
    t->ready = ready;
    if (t->group < 0 || t->region < 0)
        return;
    int *cell = &s->ready[(size_t)t->group * s->region_count + (size_t)t->region];
    *cell += ready ? 1 : -1;
    int in_group = ready_in_group(s, t->group);
    if (in_group > s->res->groups[t->group].peak_ready)
        s->res->groups[t->group].peak_ready = in_group;
    int in_region = 0;
    for (size_t g = 0; g < s->config->group_count; g++)
        in_region += s->ready[g * s->region_count + (size_t)t->region];
    if (in_region > s->res->regions[t->region].peak_ready)
        s->res->regions[t->region].peak_ready = in_region;
    if (s->jobsim != NULL && t->group == s->job_group) {
        sw_jobsim_set_workers(s->jobsim, now, in_group);
        arm_job_timer(s);
    }
}

static void on_unit(void *ud, const struct sw_unit *u)
{
    struct sim *s = ud;
    if (!s->observing || u->key == NULL)
        return;
    int64_t now = sim_now(s);
    struct tracked *t = tracked_get(s, u);
    if (t->closed)
        return;
    struct sw_sim_result *res = s->res;
    bool leased_now =
        u->state == SW_UNIT_LEASED || u->state == SW_UNIT_READY || u->state == SW_UNIT_RELEASING;
    if (leased_now && t->leased_ms == 0) {
        cost_advance(s, now);
        t->leased_ms = now;
        t->price = u->price_usd_hour;
        s->spend_rate += t->price;
        res->leases_acquired++;
        if (t->region >= 0)
            res->regions[t->region].leases_acquired++;
        if (t->group >= 0)
            res->groups[t->group].leases_acquired++;
        res->series.acquired[bucket_of(s, now)] += 1;
    } else if (t->leased_ms != 0 && leased_now && u->price_usd_hour > 0 &&
               u->price_usd_hour != t->price) {
        /* The marketplace reported a different price (e.g. planned → actual): bill the
         * time so far at the old one. */
        cost_advance(s, now);
        lease_close(s, t, now);
        s->spend_rate += u->price_usd_hour - t->price;
        t->price = u->price_usd_hour;
        t->leased_ms = now;
    }
    set_ready(s, t, u->state == SW_UNIT_READY && !u->unhealthy, now);
    if (u->state == SW_UNIT_CLOSED) {
        t->closed = true;
        if (t->leased_ms != 0) {
            cost_advance(s, now);
            s->spend_rate -= t->price;
            lease_close(s, t, now);
            bool released = u->close_reason != NULL && strcmp(u->close_reason, "released") == 0;
            size_t b = bucket_of(s, now);
            if (released) {
                res->leases_released++;
                if (t->group >= 0)
                    res->groups[t->group].leases_released++;
                res->series.released[b] += 1;
            } else {
                res->provider_closures++;
                if (t->group >= 0)
                    res->groups[t->group].provider_closures++;
                res->series.lost[b] += 1;
            }
        }
    }
}

/* ---- timeline ---- */

static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < *cap - *len) {
            *len += (size_t)n;
            return;
        }
        *cap = *cap * 2 + (size_t)(n > 0 ? n : 64);
        *buf = sw_xrealloc(*buf, *cap);
    }
}

/* A row of the timeline is built for every evaluation: buffers kept across rows, strings
 * and integers written without printf (only the two decimals use it). */
static void sb_reserve(struct strbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->text = sw_xrealloc(b->text, cap);
    b->cap = cap;
}

static void sb_put(struct strbuf *b, const char *str)
{
    size_t n = strlen(str);
    sb_reserve(b, n);
    memcpy(b->text + b->len, str, n + 1);
    b->len += n;
}

static void sb_putc(struct strbuf *b, char c)
{
    sb_reserve(b, 1);
    b->text[b->len++] = c;
    b->text[b->len] = '\0';
}

/* What "%d" prints. */
static void sb_int(struct strbuf *b, int value)
{
    char digits[16];
    size_t n = 0;
    unsigned magnitude = value < 0 ? 0u - (unsigned)value : (unsigned)value;
    do {
        digits[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude > 0);
    sb_reserve(b, n + 1);
    if (value < 0)
        b->text[b->len++] = '-';
    while (n > 0)
        b->text[b->len++] = digits[--n];
    b->text[b->len] = '\0';
}

/* What "%.3f" prints for ms / 1000.0: the double nearest a whole number of milliseconds is
 * never near a rounding boundary of the third decimal, so the digits are the integer's. */
static void sb_ms_as_seconds(struct strbuf *b, int64_t ms)
{
    uint64_t magnitude = ms < 0 ? 0u - (uint64_t)ms : (uint64_t)ms;
    char text[32];
    snprintf(text, sizeof(text), "%s%" PRIu64 ".%03u", ms < 0 ? "-" : "", magnitude / 1000,
             (unsigned)(magnitude % 1000));
    sb_put(b, text);
}

static void sb_fixed(struct strbuf *b, const char *fmt, double value)
{
    char text[64];
    snprintf(text, sizeof(text), fmt, value);
    sb_put(b, text);
}

/* "group/region=n" for every non-zero cell, space-separated, into b (cleared first). */
static void counts_text(const struct sim *s, const int *counts, struct strbuf *b, int *total)
{
    b->len = 0;
    sb_reserve(b, 0);
    b->text[0] = '\0';
    *total = 0;
    bool first = true;
    for (size_t g = 0; g < s->config->group_count; g++)
        for (size_t r = 0; r < s->region_count; r++) {
            int n = counts[g * s->region_count + r];
            if (n == 0)
                continue;
            if (!first)
                sb_putc(b, ' ');
            sb_put(b, s->config->groups[g].name);
            sb_putc(b, '/');
            sb_put(b, s->regions[r]);
            sb_putc(b, '=');
            sb_int(b, n);
            first = false;
            *total += n;
        }
}

static void on_evaluation(void *ud, const char *policy)
{
    struct sim *s = ud;
    if (!s->observing || s->opts->timeline == NULL)
        return;
    const struct sw_desired *d = sw_runtime_desired(s->rt);
    const struct sw_units *units = sw_runtime_units(s->rt);
    size_t cells = s->config->group_count * s->region_count;
    memset(s->scratch_counts, 0, cells * sizeof(int));
    for (size_t i = 0; i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (!sw_unit_is_pending(u))
            continue; /* most units are ready: no name lookups for them */
        int g = group_index(s, u->group), r = region_index(s, u->region);
        if (g >= 0 && r >= 0)
            s->scratch_counts[(size_t)g * s->region_count + (size_t)r]++;
    }
    int desired_total = 0;
    for (size_t i = 0; i < d->count; i++)
        desired_total += d->entries[i].count;
    int64_t now = sim_now(s);
    int ready_total = 0, pending_total = 0;
    counts_text(s, s->ready, &s->ready_text, &ready_total);
    counts_text(s, s->scratch_counts, &s->pending_text, &pending_total);
    /* Fields hold no commas: region and group names are [A-Za-z0-9._-]. */
    struct strbuf *row = &s->row;
    row->len = 0;
    sb_int(row, s->opts->run_index);
    sb_putc(row, ',');
    sb_ms_as_seconds(row, now - s->origin_ms);
    sb_putc(row, ',');
    sb_put(row, policy);
    sb_putc(row, ',');
    sb_int(row, desired_total);
    sb_putc(row, ',');
    sb_int(row, ready_total);
    sb_putc(row, ',');
    sb_int(row, pending_total);
    sb_putc(row, ',');
    sb_fixed(row, "%.4f", sw_units_spend_usd_hour(units));
    sb_putc(row, ',');
    for (size_t i = 0; i < d->count; i++) {
        if (i > 0)
            sb_putc(row, ' ');
        sb_put(row, d->entries[i].group);
        sb_putc(row, '/');
        sb_put(row, d->entries[i].region);
        sb_putc(row, '=');
        sb_int(row, d->entries[i].count);
    }
    sb_putc(row, ',');
    sb_put(row, s->ready_text.text);
    sb_putc(row, ',');
    sb_put(row, s->pending_text.text);
    sb_putc(row, '\n');
    fwrite(row->text, 1, row->len, s->opts->timeline);
}

/* ---- sampling ---- */

static void web_sample(struct sim *s, int64_t now, double dur_s)
{
    struct sw_sim_result *res = s->res;
    struct sw_sim_series *se = &res->series;
    size_t users = s->demand->region_count, servers = s->server_count;
    double t_s = (double)(now - s->origin_ms) / 1000.0;
    for (size_t u = 0; u < users; u++)
        s->demand_now[u] = sw_demand_rps_at(s->demand, u, t_s, &s->cursors[u]);
    for (size_t j = 0; j < servers; j++) {
        int units = s->web_group >= 0
                        ? s->ready[(size_t)s->web_group * s->region_count + s->servers[j]]
                        : 0;
        s->capacity_now[j] = units * s->rps_per_unit;
    }
    size_t taken = sw_web_model_assign(&s->web, s->demand_now, s->capacity_now, s->served,
                                       s->dropped, s->latency, s->load, s->served_pairs);
    size_t b = bucket_of(s, now);
    size_t nserved = 0, next = 0;
    double served_total = 0, dropped_total = 0;
    for (size_t u = 0; u < users; u++) {
        struct sw_sim_region *ru = &res->regions[s->users[u]];
        ru->demand_requests += s->demand_now[u] * dur_s;
        ru->dropped_requests += s->dropped[u] * dur_s;
        dropped_total += s->dropped[u];
        se->demand_rps[s->users[u] * se->buckets + b] += s->demand_now[u] * dur_s;
        /* user u's served pairs, by server: the walk's pairs in ascending order are the
         * row-major scan of served[] without the pairs that took nothing. */
        for (; next < taken && s->served_pairs[next] / servers == u; next++) {
            size_t pair = s->served_pairs[next], j = pair - u * servers;
            double x = s->served[pair];
            if (!(x > 0))
                continue;
            ru->served_requests += x * dur_s;
            res->regions[s->servers[j]].served_here_requests += x * dur_s;
            /* sw_hist_add into both, the value's bin found once */
            double weight = x * dur_s;
            if (weight > 0 && !isnan(s->latency[pair])) {
                size_t bin = hist_index(s->latency[pair]);
                hist_add_bin(&s->hist_all, bin, weight);
                hist_add_bin(&s->hist_user[s->users[u]], bin, weight);
            }
            s->wbuf[nserved++] = (struct sw_weighted){s->latency[pair], x};
            served_total += x;
        }
    }
    for (size_t j = 0; j < servers; j++)
        se->capacity_rps[s->servers[j] * se->buckets + b] += s->capacity_now[j] * dur_s;
    res->served_requests += served_total * dur_s;
    res->dropped_requests += dropped_total * dur_s;
    res->demand_requests += (served_total + dropped_total) * dur_s;
    /* One sort serves every percentile below. The sort is stable (glibc's merge sort) and
     * the totals are summed in the order each used to be (the first over the unsorted
     * pairs, the rest over the sorted ones), so the figures are the same to the bit as
     * sorting before each. */
    bool sorted = false;
    if (nserved > 0) {
        double unsorted_total = positive_total(s->wbuf, nserved);
        weighted_sort_small(s->wbuf, s->wsort_tmp, nserved);
        sorted = true;
        double total = positive_total(s->wbuf, nserved);
        se->p50[b] += sorted_percentile(s->wbuf, nserved, unsorted_total, 50) * dur_s;
        se->p95[b] += sorted_percentile(s->wbuf, nserved, total, 95) * dur_s;
        se->p99[b] += sorted_percentile(s->wbuf, nserved, total, 99) * dur_s;
        se->lat_samples[b] += dur_s;
    }
    /* The SLO counts dropped requests as infinitely slow: a minute that drops more than
     * 5% of its requests violates a p95 objective whatever the served latency. */
    if (served_total + dropped_total > 0) {
        size_t n = nserved;
        if (dropped_total > 0)
            s->wbuf[n++] = (struct sw_weighted){INFINITY, dropped_total};
        double p95;
        if (sorted) /* the dropped requests, slowest of all, sort last */
            p95 = sorted_percentile(s->wbuf, n, positive_total(s->wbuf, n), 95);
        else
            p95 = sw_weighted_percentile(s->wbuf, n, 95);
        if (p95 > s->slo_p95_ms)
            res->slo_violation_minutes += dur_s / 60.0;
    }
}

/* A group is available while its ready units reach its min; the run is while all are. */
static void availability_sample(struct sim *s, double dur_s)
{
    struct sw_sim_result *res = s->res;
    bool all = true;
    for (size_t g = 0; g < res->group_count; g++) {
        struct sw_sim_group *sg = &res->groups[g];
        sg->sampled_s += dur_s;
        if (ready_in_group(s, (int)g) >= sg->min)
            sg->available_s += dur_s;
        else
            all = false;
    }
    res->sampled_s += dur_s;
    if (all)
        res->available_s += dur_s;
}

static void on_sample(void *ud)
{
    struct sim *s = ud;
    s->sample_timer = 0;
    int64_t now = sim_now(s);
    int64_t span = s->end_ms - now;
    double dur_s = (double)(span < s->sample_every_ms ? span : s->sample_every_ms) / 1000.0;
    struct sw_sim_series *se = &s->res->series;
    size_t b = bucket_of(s, now);
    se->samples[b] += dur_s;
    availability_sample(s, dur_s);
    if (s->demand != NULL)
        web_sample(s, now, dur_s);
    se->cost_usd[b] = cost_at(s, now + (int64_t)(dur_s * 1000));
    /* The in-memory journal would otherwise keep every intent, unit and event of the run
     * (about 0.7 KB an action: tens of MB over a month of a busy policy). */
    if (s->opts->journal_path == NULL && now >= s->next_compact_ms) {
        s->next_compact_ms = now + 86400000;
        struct sw_error jerr = {0};
        if (sw_journal_compact(sw_runtime_journal(s->rt), &jerr) < 0)
            sw_log(SW_LOG_WARN, LOG, "in-memory journal: %s", jerr.msg);
    }
    if (s->opts->progress != NULL && now >= s->next_progress_ms) {
        s->next_progress_ms = now + 3600000;
        s->opts->progress(s->opts->progress_ud,
                          (double)(now - s->start_ms) / (double)(s->end_ms - s->start_ms));
    }
    if (now + s->sample_every_ms < s->end_ms)
        s->sample_timer =
            sw_clock_timer_start(s->clock, (uint64_t)s->sample_every_ms, on_sample, s);
}

static void on_job_timer(void *ud)
{
    struct sim *s = ud;
    s->job_timer = 0;
    s->job_timer_due = INT64_MAX;
    sw_jobsim_advance(s->jobsim, sim_now(s));
    arm_job_timer(s);
}

static void arm_job_timer(struct sim *s)
{
    /* ml: every job model change reaches the simulated master (sim_master.c). */
    if (s->master != NULL)
        sw_sim_master_publish(s->master, s->jobsim, sim_now(s), sw_runtime_journal(s->rt));
    int64_t next = sw_jobsim_next_ms(s->jobsim);
    if (next == s->job_timer_due && s->job_timer != 0)
        return;
    if (s->job_timer != 0)
        sw_clock_timer_stop(s->clock, s->job_timer);
    s->job_timer = 0;
    s->job_timer_due = INT64_MAX;
    if (next > s->end_ms || next == INT64_MAX)
        return;
    int64_t now = sim_now(s);
    s->job_timer =
        sw_clock_timer_start(s->clock, (uint64_t)(next > now ? next - now : 0), on_job_timer, s);
    s->job_timer_due = next;
}

static void on_fatal(void *ud, const struct sw_error *err)
{
    struct sim *s = ud;
    s->failed = true;
    s->fatal = *err;
    sw_clock_sim_stop(s->clock);
}

/* ---- preparing the configuration ---- */

static int simulation_params(struct sim *s, struct sw_error *err)
{
    static const char *const keys[] = {
        "rps_per_unit",  "slo_p95_ms",  "service_ms", "group", "job_group",
        "demand_metric", "origin",      "providers",  "rtt",   "sample_every",
        "offers_every",  "watch_every", NULL};
    const struct sw_config *c = s->config;
    s->rps_per_unit = 100;
    s->slo_p95_ms = 80;
    s->service_ms = 5;
    s->origin_s = DEFAULT_ORIGIN_S;
    s->sample_every_ms = 60000;
    cJSON *root = c->simulation_json != NULL ? cJSON_Parse(c->simulation_json) : NULL;
    const char *group = NULL, *job_group = NULL;
    int rc = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        size_t k = 0;
        while (keys[k] != NULL && strcmp(keys[k], item->string) != 0)
            k++;
        if (keys[k] == NULL) {
            rc = sw_error_set(err, SW_ECONFIG,
                              "%s:simulation: unknown key '%s' (known: "
                              "rps_per_unit, slo_p95_ms, service_ms, group, job_group, "
                              "demand_metric, origin, providers, rtt, sample_every, "
                              "offers_every, watch_every)",
                              c->path, item->string);
            goto out;
        }
        const char *name = item->string;
        double *number = strcmp(name, "rps_per_unit") == 0 ? &s->rps_per_unit
                         : strcmp(name, "slo_p95_ms") == 0 ? &s->slo_p95_ms
                         : strcmp(name, "service_ms") == 0 ? &s->service_ms
                         : strcmp(name, "origin") == 0     ? &s->origin_s
                                                           : NULL;
        int64_t *duration = strcmp(name, "sample_every") == 0   ? &s->sample_every_ms
                            : strcmp(name, "offers_every") == 0 ? &s->offers_every_ms
                            : strcmp(name, "watch_every") == 0  ? &s->watch_every_ms
                                                                : NULL;
        if (number != NULL) {
            bool positive = strcmp(name, "rps_per_unit") == 0;
            bool ok = cJSON_IsNumber(item) && isfinite(item->valuedouble) &&
                      (strcmp(name, "origin") == 0 || item->valuedouble >= 0) &&
                      (!positive || item->valuedouble > 0);
            if (!ok) {
                rc = sw_error_set(err, SW_ECONFIG, "%s:simulation.%s: expected a number %s",
                                  c->path, name, positive ? "> 0" : ">= 0");
                goto out;
            }
            *number = item->valuedouble;
        } else if (duration != NULL) {
            if (sw_duration_from_json(item, duration) < 0 || *duration < 1000) {
                rc = sw_error_set(err, SW_ECONFIG,
                                  "%s:simulation.%s: expected a duration of "
                                  "at least 1s",
                                  c->path, name);
                goto out;
            }
        } else if (strcmp(name, "demand_metric") == 0) {
            bool ok = cJSON_IsString(item) || cJSON_IsArray(item);
            const cJSON *m;
            if (cJSON_IsArray(item)) {
                cJSON_ArrayForEach(m, item) ok = ok && cJSON_IsString(m);
            }
            if (!ok) {
                rc = sw_error_set(err, SW_ECONFIG,
                                  "%s:simulation.demand_metric: expected a "
                                  "metric name or an array of them",
                                  c->path);
                goto out;
            }
            if (cJSON_IsString(item)) {
                s->demand_metrics = sw_xcalloc(1, sizeof(char *));
                s->demand_metrics[s->demand_metric_count++] = sw_xstrdup(item->valuestring);
            } else {
                s->demand_metrics =
                    sw_xcalloc((size_t)cJSON_GetArraySize(item) + 1, sizeof(char *));
                cJSON_ArrayForEach(m, item) s->demand_metrics[s->demand_metric_count++] =
                    sw_xstrdup(m->valuestring);
            }
        } else {
            if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
                rc = sw_error_set(err, SW_ECONFIG,
                                  "%s:simulation.%s: expected a non-empty "
                                  "string",
                                  c->path, name);
                goto out;
            }
            const char *v = item->valuestring;
            if (strcmp(name, "group") == 0)
                group = v;
            else if (strcmp(name, "job_group") == 0)
                job_group = v;
            else {
                char *resolved = v[0] == '/' ? sw_xstrdup(v) : sw_xasprintf("%s/%s", c->dir, v);
                char **slot = strcmp(name, "providers") == 0 ? &s->providers_path : &s->rtt_path;
                free(*slot);
                *slot = resolved;
            }
        }
    }
    if (s->demand_metric_count == 0) {
        s->demand_metrics = sw_xcalloc(1, sizeof(char *));
        s->demand_metrics[s->demand_metric_count++] = sw_xstrdup("rps");
    }
    if (group != NULL) {
        s->web_group = group_index(s, group);
        if (s->web_group < 0) {
            rc =
                sw_error_set(err, SW_ECONFIG, "%s:simulation.group: no group '%s'", c->path, group);
            goto out;
        }
    } else {
        s->web_group = group_index(s, "web");
        if (s->web_group < 0 && c->group_count > 0)
            s->web_group = 0;
    }
    s->job_group = -1;
    if (job_group != NULL && (s->job_group = group_index(s, job_group)) < 0) {
        rc = sw_error_set(err, SW_ECONFIG, "%s:simulation.job_group: no group '%s'", c->path,
                          job_group);
        goto out;
    }
out:
    cJSON_Delete(root);
    return rc;
}

static char *read_text(const char *path, size_t max, struct sw_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        sw_error_set(err, SW_EIO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = sw_xmalloc(max + 1);
    size_t len = fread(text, 1, max + 1, f);
    fclose(f);
    if (len > max) {
        free(text);
        sw_error_set(err, SW_ETOOBIG, "%s: larger than %zu bytes", path, max);
        return NULL;
    }
    text[len] = '\0';
    return text;
}

static void names_add(char ***names, size_t *count, const char *name)
{
    for (size_t i = 0; i < *count; i++)
        if (strcmp((*names)[i], name) == 0)
            return;
    *names = sw_xrealloc(*names, (*count + 1) * sizeof(char *));
    (*names)[(*count)++] = sw_xstrdup(name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regions market_sim will offer, read from the same providers JSON it loads. */
static int provider_regions(struct sim *s, char ***out, size_t *count, struct sw_error *err)
{
    cJSON *root = NULL, *array = NULL;
    const char *origin = s->providers_path != NULL ? s->providers_path : "market_sim providers";
    if (s->providers_path != NULL) {
        char *text = read_text(s->providers_path, (size_t)4 << 20, err);
        if (text == NULL)
            return err->code;
        root = cJSON_Parse(text);
        free(text);
        array = cJSON_GetObjectItemCaseSensitive(root, "providers");
    } else {
        root = cJSON_Parse(s->providers_inline);
        array = root;
    }
    int rc = 0;
    if (!cJSON_IsArray(array)) {
        rc = sw_error_set(err, SW_ECONFIG, "%s: expected {\"providers\": [...]}", origin);
        goto out;
    }
    const cJSON *p;
    cJSON_ArrayForEach(p, array)
    {
        const cJSON *region = cJSON_GetObjectItemCaseSensitive(p, "region");
        if (region == NULL)
            region = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(p, "attributes"), "location-region");
        if (cJSON_IsString(region))
            names_add(out, count, region->valuestring);
    }
out:
    cJSON_Delete(root);
    return rc;
}

static struct sw_plugin_config *config_plugin(struct sw_config *c, const char *name)
{
    for (size_t i = 0; i < c->plugin_count; i++)
        if (strcmp(c->plugins[i].name, name) == 0)
            return &c->plugins[i];
    return NULL;
}

static char *absolute(const char *path)
{
    char buf[PATH_MAX];
    if (realpath(path, buf) != NULL)
        return sw_xstrdup(buf);
    return sw_xstrdup(path);
}

/* Swap the market for market_sim and the demand metrics for metrics_trace; drop every
 * other plugin no remaining metric uses (DNS and notifications do not run offline). */
static int swap_plugins(struct sim *s, const char *demand_path, struct sw_error *err)
{
    struct sw_config *c = s->config;
    /* The market: providers from --providers, simulation.providers, or market_sim's own. */
    struct sw_plugin_config *own =
        strcmp(c->market_plugin, "market_sim") == 0 ? config_plugin(c, "market_sim") : NULL;
    cJSON *market = own != NULL ? cJSON_Parse(own->config_json) : cJSON_CreateObject();
    if (s->providers_path == NULL && own != NULL) {
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(market, "providers_file");
        const cJSON *inl = cJSON_GetObjectItemCaseSensitive(market, "providers");
        if (cJSON_IsString(file))
            s->providers_path = file->valuestring[0] == '/'
                                    ? sw_xstrdup(file->valuestring)
                                    : sw_xasprintf("%s/%s", c->dir, file->valuestring);
        else if (cJSON_IsArray(inl))
            s->providers_inline = cJSON_PrintUnformatted(inl);
    }
    if (s->providers_path == NULL && s->providers_inline == NULL) {
        cJSON_Delete(market);
        return sw_error_set(err, SW_ECONFIG,
                            "%s: no providers for the simulated marketplace: "
                            "pass --providers FILE or set simulation.providers",
                            c->path);
    }
    if (s->providers_path != NULL) {
        char *abs = absolute(s->providers_path);
        free(s->providers_path);
        s->providers_path = abs;
        cJSON_DeleteItemFromObjectCaseSensitive(market, "providers");
        cJSON_DeleteItemFromObjectCaseSensitive(market, "providers_file");
        cJSON_AddStringToObject(market, "providers_file", s->providers_path);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(market, "persist");
    cJSON_AddFalseToObject(market, "persist");

    /* Demand metrics. */
    bool fed = false;
    for (size_t i = 0; i < c->metric_count; i++) {
        struct sw_metric_config *m = &c->metrics[i];
        bool demand = false;
        for (size_t k = 0; k < s->demand_metric_count; k++)
            demand = demand || strcmp(s->demand_metrics[k], m->name) == 0;
        if (!demand || demand_path == NULL)
            continue;
        free(m->plugin);
        free(m->query);
        m->plugin = sw_xstrdup("metrics_trace");
        m->query = sw_xstrdup("rps");
        fed = true;
    }
    if (demand_path != NULL && !fed) {
        cJSON_Delete(market);
        return sw_error_set(err, SW_ECONFIG,
                            "%s: no metric named '%s' to feed the demand "
                            "trace into (name the policy's demand metric in "
                            "simulation.demand_metric)",
                            c->path, s->demand_metrics[0]);
    }

    struct sw_plugin_config *plugins = sw_xcalloc(c->plugin_count + 2, sizeof(*plugins));
    size_t count = 0;
    char *text = cJSON_PrintUnformatted(market);
    plugins[count].name = sw_xstrdup("market_sim");
    plugins[count++].config_json = sw_xstrdup(text);
    cJSON_free(text);
    cJSON_Delete(market);
    if (fed) {
        cJSON *trace = cJSON_CreateObject();
        char *abs = absolute(demand_path);
        cJSON_AddStringToObject(trace, "file", abs);
        free(abs);
        cJSON_AddNumberToObject(trace, "origin", s->origin_s);
        text = cJSON_PrintUnformatted(trace);
        plugins[count].name = sw_xstrdup("metrics_trace");
        plugins[count++].config_json = sw_xstrdup(text);
        cJSON_free(text);
        cJSON_Delete(trace);
    }
    for (size_t i = 0; i < c->plugin_count; i++) {
        struct sw_plugin_config *p = &c->plugins[i];
        bool used = false;
        for (size_t k = 0; k < c->metric_count; k++)
            used = used || strcmp(c->metrics[k].plugin, p->name) == 0;
        if (used && strcmp(p->name, "market_sim") != 0 && strcmp(p->name, "metrics_trace") != 0) {
            plugins[count++] = *p;
            p->name = NULL;
            p->config_json = NULL;
        } else if (!used && strcmp(p->name, "market_sim") != 0) {
            sw_log(SW_LOG_INFO, LOG, "plugin %s does not run in simulation", p->name);
        }
        free(p->name);
        free(p->config_json);
    }
    free(c->plugins);
    c->plugins = plugins;
    c->plugin_count = count;
    free(c->market_plugin);
    c->market_plugin = sw_xstrdup("market_sim");
    return 0;
}

static int load_traces(struct sim *s, struct sw_error *err)
{
    for (size_t i = 0; i < s->opts->trace_count; i++) {
        const char *path = s->opts->traces[i];
        int kind = sw_trace_kind(path, err);
        if (kind < 0)
            return kind;
        if (kind == SW_TRACE_DEMAND) {
            if (s->demand != NULL)
                return sw_error_set(err, SW_EINVAL,
                                    "%s: a second demand trace (the first is "
                                    "%s): merge them into one file",
                                    path, s->demand->path);
            if ((s->demand = sw_demand_load(path, err)) == NULL)
                return err->code;
        } else if (kind == SW_TRACE_JOBS) {
            if (s->jobs != NULL)
                return sw_error_set(err, SW_EINVAL, "%s: a second jobs trace (the first is %s)",
                                    path, s->jobs->path);
            if ((s->jobs = sw_jobs_load(path, err)) == NULL)
                return err->code;
        } else {
            return sw_error_set(err, SW_EINVAL,
                                "%s: this is a round-trip-time table: pass it "
                                "with --rtt",
                                path);
        }
    }
    if (s->jobs != NULL && s->job_group < 0)
        return sw_error_set(err, SW_ECONFIG,
                            "%s: a jobs trace needs simulation.job_group "
                            "naming the group whose units run the jobs",
                            s->config->path);
    return 0;
}

/* Regions, serving set, RTT submatrix and the window. */
static int prepare_model(struct sim *s, struct sw_error *err)
{
    struct sw_config *c = s->config;
    char **provider = NULL;
    size_t provider_count = 0;
    int rc = provider_regions(s, &provider, &provider_count, err);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < provider_count; i++)
        names_add(&s->regions, &s->region_count, provider[i]);
    for (size_t i = 0; s->demand != NULL && i < s->demand->region_count; i++)
        names_add(&s->regions, &s->region_count, s->demand->regions[i]);
    qsort(s->regions, s->region_count, sizeof(char *), cmp_str);

    /* Where web capacity can run: the group's allowed regions that have providers. */
    char **serving = NULL;
    size_t serving_count = 0;
    const struct sw_group_config *g = s->web_group >= 0 ? &c->groups[s->web_group] : NULL;
    for (size_t i = 0; i < provider_count; i++) {
        bool allowed = g == NULL || g->region_count == 0;
        for (size_t k = 0; g != NULL && k < g->region_count; k++)
            allowed = allowed || strcmp(g->regions[k], provider[i]) == 0;
        if (allowed)
            names_add(&serving, &serving_count, provider[i]);
    }
    qsort(serving, serving_count, sizeof(char *), cmp_str);

    if (s->demand != NULL) {
        if (s->rtt_path == NULL) {
            rc = sw_error_set(err, SW_ECONFIG,
                              "%s: a demand trace needs round-trip times: "
                              "pass --rtt FILE or set simulation.rtt",
                              c->path);
            goto out_serving;
        }
        if ((s->rtt = sw_rtt_load(s->rtt_path, err)) == NULL) {
            rc = err->code;
            goto out_serving;
        }
        if ((rc = sw_trace_check_regions(s->demand, s->rtt, (const char *const *)serving,
                                         serving_count, err)) < 0)
            goto out_serving;
        size_t users = s->demand->region_count;
        s->server_count = serving_count;
        s->users = sw_xcalloc(users, sizeof(size_t));
        s->servers = sw_xcalloc(serving_count ? serving_count : 1, sizeof(size_t));
        s->rtt_us = sw_xcalloc(users * serving_count + 1, sizeof(double));
        s->order = sw_xcalloc(users * serving_count + 1, sizeof(size_t));
        for (size_t u = 0; u < users; u++)
            s->users[u] = (size_t)region_index(s, s->demand->regions[u]);
        for (size_t j = 0; j < serving_count; j++)
            s->servers[j] = (size_t)region_index(s, serving[j]);
        for (size_t u = 0; u < users; u++)
            for (size_t j = 0; j < serving_count; j++)
                s->rtt_us[u * serving_count + j] =
                    sw_rtt_ms(s->rtt, sw_rtt_region(s->rtt, s->demand->regions[u]),
                              sw_rtt_region(s->rtt, serving[j]));
        sw_web_model_init(&s->web, users, serving_count, s->rtt_us, s->order, s->service_ms);
        s->web.order_user = sw_xcalloc(users * serving_count + 1, sizeof(uint32_t));
        s->web.order_server = sw_xcalloc(users * serving_count + 1, sizeof(uint32_t));
        for (size_t k = 0; k < users * serving_count; k++) {
            s->web.order_user[k] = (uint32_t)(s->order[k] / serving_count);
            s->web.order_server[k] = (uint32_t)(s->order[k] % serving_count);
        }
        s->demand_now = sw_xcalloc(users, sizeof(double));
        s->dropped = sw_xcalloc(users, sizeof(double));
        s->capacity_now = sw_xcalloc(serving_count + 1, sizeof(double));
        s->load = sw_xcalloc(serving_count + 1, sizeof(double));
        s->served = sw_xcalloc(users * serving_count + 1, sizeof(double));
        s->latency = sw_xcalloc(users * serving_count + 1, sizeof(double));
        s->wbuf = sw_xcalloc(users * serving_count + 1, sizeof(*s->wbuf));
        s->wsort_tmp = sw_xcalloc(users * serving_count + 1, sizeof(*s->wsort_tmp));
        s->served_pairs = sw_xcalloc(users * serving_count + 1, sizeof(size_t));
        s->cursors = sw_xcalloc(users, sizeof(size_t));
    }

    /* The window, in trace seconds. */
    double from = 0, to = 0;
    if (s->demand != NULL) {
        from = s->demand->start_s;
        to = s->demand->end_s;
    } else if (s->jobs != NULL && s->jobs->count > 0) {
        from = s->jobs->items[0].submit_s;
        for (size_t i = 0; i < s->jobs->count; i++)
            if (s->jobs->items[i].submit_s + s->jobs->items[i].duration_s > to)
                to = s->jobs->items[i].submit_s + s->jobs->items[i].duration_s;
    }
    if (s->opts->has_from)
        from = s->opts->from_s;
    if (s->opts->has_to)
        to = s->opts->to_s;
    if (!(to > from)) {
        rc = sw_error_set(err, SW_EINVAL,
                          "the simulated window is empty (from %gs to %gs): "
                          "check --from/--to and the traces",
                          from, to);
        goto out_serving;
    }
    s->origin_ms = (int64_t)llround(s->origin_s * 1000.0);
    s->start_ms = s->origin_ms + (int64_t)llround(from * 1000.0);
    s->end_ms = s->origin_ms + (int64_t)llround(to * 1000.0);
out_serving:
    sw_paths_free(serving, serving_count);
out:
    sw_paths_free(provider, provider_count);
    return rc;
}

static void result_init(struct sim *s)
{
    struct sw_sim_result *res = s->res;
    const struct sw_config *c = s->config;
    res->config_path = sw_xstrdup(s->opts->config_path);
    size_t cap = 64, len = 0;
    char *names = sw_xmalloc(cap);
    names[0] = '\0';
    for (size_t i = 0; i < c->policy_count; i++)
        append(&names, &len, &cap, "%s%s", i ? ", " : "", c->policies[i].name);
    res->policy_names = names;
    res->seed = c->seed;
    res->start_s = (double)(s->start_ms - s->origin_ms) / 1000.0;
    res->end_s = (double)(s->end_ms - s->origin_ms) / 1000.0;
    res->sim_s = res->end_s - res->start_s;
    res->rps_per_unit = s->rps_per_unit;
    res->slo_p95_ms = s->slo_p95_ms;
    res->service_ms = s->service_ms;
    res->has_demand = s->demand != NULL;
    res->has_jobs = s->jobs != NULL;
    res->web_group = s->web_group >= 0 ? sw_xstrdup(c->groups[s->web_group].name) : NULL;
    res->job_group = s->job_group >= 0 ? sw_xstrdup(c->groups[s->job_group].name) : NULL;
    res->region_count = s->region_count;
    res->regions = sw_xcalloc(s->region_count + 1, sizeof(*res->regions));
    for (size_t r = 0; r < s->region_count; r++) {
        res->regions[r].name = sw_xstrdup(s->regions[r]);
        res->regions[r].latency_p50 = res->regions[r].latency_p95 = res->regions[r].latency_p99 =
            NAN;
    }
    res->group_count = c->group_count;
    res->groups = sw_xcalloc(c->group_count + 1, sizeof(*res->groups));
    for (size_t g = 0; g < c->group_count; g++) {
        res->groups[g].name = sw_xstrdup(c->groups[g].name);
        res->groups[g].min = c->groups[g].min;
    }
    res->latency_p50 = res->latency_p95 = res->latency_p99 = NAN;

    struct sw_sim_series *se = &res->series;
    double minutes = ceil(res->sim_s / 60.0);
    double per_bucket = ceil(minutes / SERIES_MAX_BUCKETS);
    se->bucket_s = (per_bucket < 1 ? 1 : per_bucket) * 60.0;
    se->buckets = (size_t)ceil(res->sim_s / se->bucket_s);
    if (se->buckets == 0)
        se->buckets = 1;
    size_t nb = se->buckets, nr = s->region_count ? s->region_count : 1;
    se->demand_rps = sw_xcalloc(nr * nb, sizeof(double));
    se->capacity_rps = sw_xcalloc(nr * nb, sizeof(double));
    double **per_bucket_arrays[] = {&se->p50,      &se->p95,      &se->p99,
                                    &se->cost_usd, &se->acquired, &se->released,
                                    &se->lost,     &se->samples,  &se->lat_samples};
    for (size_t i = 0; i < SW_ARRAY_LEN(per_bucket_arrays); i++)
        *per_bucket_arrays[i] = sw_xcalloc(nb, sizeof(double));
}

static void res_availability(struct sw_sim_result *res)
{
    res->availability = res->sampled_s > 0 ? res->available_s / res->sampled_s : NAN;
    for (size_t g = 0; g < res->group_count; g++) {
        struct sw_sim_group *sg = &res->groups[g];
        sg->availability = sg->sampled_s > 0 ? sg->available_s / sg->sampled_s : NAN;
    }
}

/* Means out of the sums the samples accumulated. */
static void series_finish(struct sim *s)
{
    struct sw_sim_series *se = &s->res->series;
    double last_cost = 0;
    for (size_t b = 0; b < se->buckets; b++) {
        double n = se->samples[b];
        for (size_t r = 0; r < s->region_count; r++) {
            se->demand_rps[r * se->buckets + b] =
                n > 0 ? se->demand_rps[r * se->buckets + b] / n : 0;
            se->capacity_rps[r * se->buckets + b] =
                n > 0 ? se->capacity_rps[r * se->buckets + b] / n : 0;
        }
        double m = se->lat_samples[b];
        se->p50[b] = m > 0 ? se->p50[b] / m : NAN;
        se->p95[b] = m > 0 ? se->p95[b] / m : NAN;
        se->p99[b] = m > 0 ? se->p99[b] / m : NAN;
        if (n > 0)
            last_cost = se->cost_usd[b];
        else
            se->cost_usd[b] = last_cost;
    }
    if (se->buckets > 0)
        se->cost_usd[se->buckets - 1] = s->res->cost_usd;
}

static void sim_free(struct sim *s)
{
    for (size_t i = 0; i < s->tracked_cap; i++) {
        if (s->tracked[i] != NULL) {
            free(s->tracked[i]->key);
            free(s->tracked[i]);
        }
    }
    free(s->tracked);
    sw_hist_clear(&s->hist_all);
    for (size_t r = 0; s->hist_user != NULL && r < s->region_count; r++)
        sw_hist_clear(&s->hist_user[r]);
    free(s->hist_user);
    sw_paths_free(s->regions, s->region_count);
    sw_paths_free(s->demand_metrics, s->demand_metric_count);
    free(s->users);
    free(s->servers);
    free(s->rtt_us);
    free(s->order);
    free(s->web.order_user);
    free(s->web.order_server);
    free(s->demand_now);
    free(s->capacity_now);
    free(s->served);
    free(s->dropped);
    free(s->latency);
    free(s->load);
    free(s->wbuf);
    free(s->wsort_tmp);
    free(s->served_pairs);
    free(s->cursors);
    free(s->ready);
    free(s->scratch_counts);
    free(s->row.text);
    free(s->ready_text.text);
    free(s->pending_text.text);
    free(s->providers_path);
    cJSON_free(s->providers_inline);
    free(s->rtt_path);
    sw_jobsim_free(s->jobsim);
    sw_sim_master_free(s->master);
    sw_demand_free(s->demand);
    sw_jobs_free(s->jobs);
    sw_rtt_free(s->rtt);
    sw_config_free(s->config);
}

void sw_sim_result_free(struct sw_sim_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->region_count; i++)
        free(r->regions[i].name);
    free(r->regions);
    for (size_t i = 0; i < r->group_count; i++)
        free(r->groups[i].name);
    free(r->groups);
    struct sw_sim_series *se = &r->series;
    double *arrays[] = {se->demand_rps, se->capacity_rps, se->p50,        se->p95,
                        se->p99,        se->cost_usd,     se->acquired,   se->released,
                        se->lost,       se->samples,      se->lat_samples};
    for (size_t i = 0; i < SW_ARRAY_LEN(arrays); i++)
        free(arrays[i]);
    free(r->config_path);
    free(r->policy_names);
    free(r->web_group);
    free(r->job_group);
    free(r);
}

static int64_t log_now(void *ud)
{
    return sw_clock_now(ud);
}

static void finish_accounting(struct sim *s)
{
    struct sw_sim_result *res = s->res;
    /* Leases still open at the end cost until the end. */
    for (size_t i = 0; i < s->tracked_cap; i++) {
        struct tracked *t = s->tracked[i];
        if (t != NULL && !t->closed && t->leased_ms != 0)
            lease_close(s, t, s->end_ms);
    }
    cost_advance(s, s->end_ms);
    const struct sw_runtime_stats *st = sw_runtime_stats(s->rt);
    res->evaluations = st->evaluations;
    res->actions = st->acquires_started + st->releases_started;
    res->policy_errors = st->policy_errors;
    res->refused = st->refused;
    res->latency_p50 = sw_hist_percentile(&s->hist_all, 50);
    res->latency_p95 = sw_hist_percentile(&s->hist_all, 95);
    res->latency_p99 = sw_hist_percentile(&s->hist_all, 99);
    for (size_t r = 0; r < s->region_count; r++) {
        res->regions[r].latency_p50 = sw_hist_percentile(&s->hist_user[r], 50);
        res->regions[r].latency_p95 = sw_hist_percentile(&s->hist_user[r], 95);
        res->regions[r].latency_p99 = sw_hist_percentile(&s->hist_user[r], 99);
    }
    if (s->jobsim != NULL)
        sw_jobsim_finish(s->jobsim, s->end_ms, &res->jobs);
    else
        res->jobs.wait_p50_s = res->jobs.wait_p95_s = NAN;
    series_finish(s);
    res_availability(s->res);
}

static void write_timeline_header(FILE *f)
{
    fputs("run,time_s,policy,desired_total,ready_total,pending_total,spend_usd_hour,desired,"
          "ready,pending\n",
          f);
}

int sw_sim_run(const struct sw_sim_opts *opts, struct sw_sim_result **out, struct sw_error *err)
{
    struct sim sim = {0};
    struct sim *s = &sim;
    s->opts = opts;
    *out = NULL;
    int rc = 0;
    sw_hist_init(&s->hist_all);
    s->config = sw_config_load(opts->config_path, err);
    if (s->config == NULL)
        return err->code ? err->code : SW_ECONFIG;
    if (opts->has_seed)
        s->config->seed = opts->seed;
    free(s->config->state_path);
    s->config->state_path = sw_xstrdup(opts->journal_path ? opts->journal_path : ":memory:");
    if (opts->rtt_path != NULL) {
        s->rtt_path = sw_xstrdup(opts->rtt_path);
    }
    if ((rc = simulation_params(s, err)) < 0)
        goto out;
    if (opts->rtt_path != NULL) {
        free(s->rtt_path);
        s->rtt_path = sw_xstrdup(opts->rtt_path);
    }
    if (opts->providers_path != NULL) {
        free(s->providers_path);
        s->providers_path = sw_xstrdup(opts->providers_path);
    }
    if ((rc = load_traces(s, err)) < 0 ||
        (rc = swap_plugins(s, s->demand != NULL ? s->demand->path : NULL, err)) < 0 ||
        (rc = prepare_model(s, err)) < 0)
        goto out;

    s->res = sw_xcalloc(1, sizeof(*s->res));
    result_init(s);
    s->hist_user = sw_xcalloc(s->region_count + 1, sizeof(struct sw_hist));
    size_t cells = s->config->group_count * s->region_count + 1;
    s->ready = sw_xcalloc(cells, sizeof(int));
    s->scratch_counts = sw_xcalloc(cells, sizeof(int));
    if (s->jobs != NULL)
        s->jobsim = sw_jobsim_new(s->jobs->items, s->jobs->count, s->origin_ms, s->start_ms);
    /* ml: a configured jobs_http reads the jobs trace's master instead of HTTP. */
    if (s->jobs != NULL && sw_sim_master_configure(s->config))
        s->master = sw_sim_master_new(s->jobs->items, s->jobs->count);

    s->clock = sw_clock_sim_new(s->start_ms);
    s->cost_last_ms = s->start_ms;
    s->next_progress_ms = s->start_ms;
    s->next_compact_ms = s->start_ms + 86400000;
    sw_log_set_time_source(log_now, s->clock);
    struct sw_runtime_opts ropts = {
        .config = s->config,
        .clock = s->clock,
        .plugin_dirs = opts->plugin_dirs,
        .plugin_dir_count = opts->plugin_dir_count,
        .lua_path = opts->lua_path,
        .offers_every_ms = s->offers_every_ms,
        .watch_every_ms = s->watch_every_ms,
        /* A kept journal is a full one (replayable with `steward replay`); otherwise
         * nothing per tick is journaled, so memory does not grow with the run. */
        .skip_inputs = opts->journal_path == NULL,
        .skip_records = opts->journal_path == NULL,
        .on_fatal = on_fatal,
        .fatal_ud = s,
        .on_unit = on_unit,
        .on_evaluation = on_evaluation,
        .observe_ud = s,
    };
    s->rt = sw_runtime_new(&ropts, err);
    if (s->rt == NULL) {
        rc = err->code ? err->code : SW_ECONFIG;
        goto out_clock;
    }
    if (opts->timeline != NULL && opts->timeline_header)
        write_timeline_header(opts->timeline);
    s->observing = true;
    if ((rc = sw_runtime_start(s->rt, err)) < 0)
        goto out_runtime;
    s->sample_timer = sw_clock_timer_start(s->clock, 0, on_sample, s);
    if (s->jobsim != NULL) {
        s->job_timer_due = INT64_MAX;
        arm_job_timer(s);
    }
    sw_clock_sim_run(s->clock, s->end_ms);
    if (s->failed) {
        rc = sw_error_set(err, s->fatal.code ? s->fatal.code : SW_EIO, "%s", s->fatal.msg);
        goto out_runtime;
    }
    finish_accounting(s);
    s->observing = false;
    sw_runtime_stop(s->rt);
    *out = s->res;
    s->res = NULL;
out_runtime:
    s->observing = false;
    if (s->sample_timer != 0)
        sw_clock_timer_stop(s->clock, s->sample_timer);
    if (s->job_timer != 0)
        sw_clock_timer_stop(s->clock, s->job_timer);
    sw_runtime_free(s->rt);
out_clock:
    sw_log_set_time_source(NULL, NULL);
    sw_clock_free(s->clock);
out:
    sw_sim_result_free(s->res);
    sim_free(s);
    return rc;
}

/* ---- the CLI ------------------------------------------------------------------------ */

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static void usage_simulate(FILE *out)
{
    fprintf(out,
            "usage: steward simulate -c CONFIG --trace FILE [--trace FILE] [--providers FILE]\n"
            "                        [--rtt FILE] [--from T] [--to T] [--seed N] [--out DIR]\n"
            "                        [--compare CONFIG2 ...] [--keep-journal] [--quiet|--json]\n"
            "\n"
            "Run the configuration's policies, guard, planner and journal under a virtual\n"
            "clock over recorded traces, with the simulated marketplace (market_sim) and the\n"
            "demand trace as the demand metric (metrics_trace). See docs/simulation.md.\n"
            "  -c, --config FILE     the configuration to simulate\n"
            "      --trace FILE      demand (time_s,region,rps) or jobs\n"
            "                        (submit_s,duration_s,workers,gpus_per_worker) CSV\n"
            "      --providers FILE  providers JSON (default: simulation.providers or the\n"
            "                        config's market_sim providers)\n"
            "      --rtt FILE        round-trip times CSV from,to,rtt_ms (default:\n"
            "                        simulation.rtt)\n"
            "      --from T, --to T  window in trace time (\"2d\", \"36h\", seconds)\n"
            "      --seed N          override the config's seed\n"
            "      --out DIR         write report.json, report.html, timeline.csv, run.json\n"
            "      --compare CONFIG  also simulate CONFIG on the same traces (repeatable;\n"
            "                        further bare arguments are compared too)\n"
            "      --keep-journal    keep each run's journal as DIR/sim.db (DIR/sim-N.db)\n"
            "      --quiet           print nothing but errors\n"
            "      --json            print report.json on stdout instead of the table\n"
            "      --verbose         the runtime's info log on stderr\n");
}

struct progress_ctx {
    uint64_t started_ns;
    uint64_t last_ns;
    size_t run;
    size_t runs;
    bool shown;
};

static void draw_progress(void *ud, double fraction)
{
    struct progress_ctx *p = ud;
    uint64_t now = uv_hrtime();
    /* Only runs longer than a second get a bar; redraw at most ten times a second. */
    if (now - p->started_ns < 1000000000ull || now - p->last_ns < 100000000ull)
        return;
    p->last_ns = now;
    p->shown = true;
    double total = ((double)p->run + fraction) / (double)p->runs;
    int filled = (int)(total * 30);
    char bar[31];
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '#' : '-';
    bar[30] = '\0';
    fprintf(stderr, "\r[%s] %3.0f%%  run %zu/%zu", bar, total * 100, p->run + 1, p->runs);
    fflush(stderr);
}

static int parse_time_arg(const char *name, const char *text, double *out)
{
    int64_t ms = 0;
    if (sw_duration_parse(text, &ms) < 0) {
        fprintf(stderr,
                "steward simulate: %s: expected a trace time like 36h, 2d or seconds, "
                "got \"%s\"\n",
                name, text);
        return -1;
    }
    *out = (double)ms / 1000.0;
    return 0;
}

static int mkdir_p(const char *dir)
{
    char *copy = sw_xstrdup(dir);
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(copy, 0755);
        *p = '/';
    }
    int rc = mkdir(copy, 0755) == 0 || errno == EEXIST ? 0 : -1;
    free(copy);
    return rc == 0 && is_dir(dir) ? 0 : -1;
}

int sw_sim_main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"trace", required_argument, NULL, 't'},
        {"providers", required_argument, NULL, 'p'},
        {"rtt", required_argument, NULL, 'r'},
        {"from", required_argument, NULL, 'F'},
        {"to", required_argument, NULL, 'T'},
        {"seed", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"compare", required_argument, NULL, 'C'},
        {"keep-journal", no_argument, NULL, 'k'},
        {"quiet", no_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'j'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sw_sim_opts opts = {0};
    const char **traces = sw_xcalloc((size_t)argc + 1, sizeof(char *));
    const char **configs = sw_xcalloc((size_t)argc + 2, sizeof(char *));
    size_t trace_count = 0, config_count = 1;
    const char *out_dir = NULL;
    bool keep = false, quiet = false, json = false, verbose = false;
    int exit_code = 0;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", long_opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            configs[0] = optarg;
            break;
        case 't':
            traces[trace_count++] = optarg;
            break;
        case 'p':
            opts.providers_path = optarg;
            break;
        case 'r':
            opts.rtt_path = optarg;
            break;
        case 'F':
            if (parse_time_arg("--from", optarg, &opts.from_s) < 0)
                exit_code = EXIT_USAGE;
            opts.has_from = true;
            break;
        case 'T':
            if (parse_time_arg("--to", optarg, &opts.to_s) < 0)
                exit_code = EXIT_USAGE;
            opts.has_to = true;
            break;
        case 's': {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (end == optarg || *end != '\0' || errno != 0 || optarg[0] == '-') {
                fprintf(stderr,
                        "steward simulate: --seed: expected an integer >= 0, got "
                        "\"%s\"\n",
                        optarg);
                exit_code = EXIT_USAGE;
            }
            opts.seed = v;
            opts.has_seed = true;
            break;
        }
        case 'o':
            out_dir = optarg;
            break;
        case 'C':
            configs[config_count++] = optarg;
            break;
        case 'k':
            keep = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'j':
            json = true;
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            usage_simulate(stdout);
            goto done;
        default:
            fprintf(stderr, "steward simulate: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage_simulate(stderr);
            exit_code = EXIT_USAGE;
            goto done;
        }
    }
    /* `--compare a.jsonc b.jsonc`: the bare arguments after it are configurations too. */
    for (int i = optind; i < argc; i++) {
        if (config_count == 1) {
            fprintf(stderr, "steward simulate: unexpected argument '%s'\n", argv[i]);
            exit_code = EXIT_USAGE;
            goto done;
        }
        configs[config_count++] = argv[i];
    }
    if (exit_code != 0)
        goto done;
    if (configs[0] == NULL || trace_count == 0) {
        fprintf(stderr, "steward simulate: -c CONFIG and at least one --trace FILE are "
                        "required\n");
        usage_simulate(stderr);
        exit_code = EXIT_USAGE;
        goto done;
    }
    if (keep && out_dir == NULL) {
        fprintf(stderr, "steward simulate: --keep-journal needs --out DIR\n");
        exit_code = EXIT_USAGE;
        goto done;
    }
    if (out_dir != NULL && mkdir_p(out_dir) < 0) {
        fprintf(stderr, "steward simulate: cannot create %s: %s\n", out_dir, strerror(errno));
        exit_code = EXIT_RUNTIME;
        goto done;
    }
    sw_log_configure(stderr, SW_LOG_FORMAT_TEXT, verbose ? SW_LOG_INFO : SW_LOG_WARN);

    FILE *timeline = NULL;
    char *timeline_path = NULL;
    if (out_dir != NULL) {
        timeline_path = sw_xasprintf("%s/timeline.csv", out_dir);
        timeline = fopen(timeline_path, "w");
        if (timeline == NULL) {
            fprintf(stderr, "steward simulate: %s: %s\n", timeline_path, strerror(errno));
            free(timeline_path);
            exit_code = EXIT_RUNTIME;
            goto done;
        }
    }
    struct sw_sim_result **runs = sw_xcalloc(config_count, sizeof(*runs));
    struct progress_ctx progress = {uv_hrtime(), 0, 0, config_count, false};
    bool show_progress = !quiet && !json && isatty(STDERR_FILENO);
    opts.traces = traces;
    opts.trace_count = trace_count;
    opts.verbose = verbose;
    opts.timeline = timeline;
    size_t done_runs = 0;
    for (size_t i = 0; i < config_count; i++) {
        struct sw_config *probe = sw_config_load(configs[i], &(struct sw_error){0});
        size_t dir_count = 0;
        char **dirs = sw_paths_plugin_dirs(probe, &dir_count);
        char *lua = sw_paths_lua(probe);
        sw_config_free(probe);
        char *journal = NULL;
        if (keep) {
            journal = i == 0 ? sw_xasprintf("%s/sim.db", out_dir)
                             : sw_xasprintf("%s/sim-%zu.db", out_dir, i + 1);
            static const char *const suffixes[] = {"", "-wal", "-shm"};
            for (size_t k = 0; k < SW_ARRAY_LEN(suffixes); k++) {
                char *p = sw_xasprintf("%s%s", journal, suffixes[k]);
                unlink(p);
                free(p);
            }
        }
        opts.config_path = configs[i];
        opts.plugin_dirs = (const char *const *)dirs;
        opts.plugin_dir_count = dir_count;
        opts.lua_path = lua;
        opts.journal_path = journal;
        opts.run_index = (int)i + 1;
        opts.timeline_header = i == 0;
        opts.progress = show_progress ? draw_progress : NULL;
        opts.progress_ud = &progress;
        progress.run = i;
        struct sw_error err = {0};
        uint64_t started = uv_hrtime();
        int rc = sw_sim_run(&opts, &runs[i], &err);
        free(journal);
        free(lua);
        sw_paths_free(dirs, dir_count);
        if (rc < 0) {
            if (progress.shown)
                fputs("\r\033[K", stderr);
            fprintf(stderr, "steward simulate: %s\n", err.msg);
            exit_code = rc == SW_ECONFIG || rc == SW_EINVAL || rc == SW_EPOLICY || rc == SW_EABI ||
                                rc == SW_EIO || rc == SW_ETOOBIG
                            ? EXIT_USAGE
                            : EXIT_RUNTIME;
            break;
        }
        runs[i]->wall_s = (double)(uv_hrtime() - started) / 1e9;
        done_runs++;
    }
    if (progress.shown)
        fputs("\r\033[K", stderr);
    if (timeline != NULL && fclose(timeline) != 0 && exit_code == 0) {
        fprintf(stderr, "steward simulate: %s: %s\n", timeline_path, strerror(errno));
        exit_code = EXIT_RUNTIME;
    }
    if (exit_code == 0) {
        const struct sw_sim_result *const *all = (const struct sw_sim_result *const *)runs;
        char *report = sw_report_json(all, done_runs);
        if (out_dir != NULL) {
            struct sw_error err = {0};
            char *html = sw_report_html(all, done_runs);
            char *run = sw_report_run_json(all, done_runs);
            char *paths[] = {sw_xasprintf("%s/report.json", out_dir),
                             sw_xasprintf("%s/report.html", out_dir),
                             sw_xasprintf("%s/run.json", out_dir)};
            const char *texts[] = {report, html, run};
            for (size_t k = 0; k < SW_ARRAY_LEN(paths); k++) {
                if (exit_code == 0 && sw_report_write_file(paths[k], texts[k], &err) < 0) {
                    fprintf(stderr, "steward simulate: %s\n", err.msg);
                    exit_code = EXIT_RUNTIME;
                }
                free(paths[k]);
            }
            free(html);
            free(run);
        }
        if (json) {
            fputs(report, stdout);
        } else if (!quiet) {
            sw_report_print_table(stdout, all, done_runs);
            for (size_t i = 0; i < done_runs; i++)
                printf("%s: %.3f s wall, %.0f evaluations/s, %.1f simulated days per wall "
                       "second\n",
                       runs[i]->config_path, runs[i]->wall_s,
                       runs[i]->wall_s > 0 ? (double)runs[i]->evaluations / runs[i]->wall_s : 0,
                       runs[i]->wall_s > 0 ? runs[i]->sim_s / 86400.0 / runs[i]->wall_s : 0);
            if (out_dir != NULL)
                printf("wrote %s/report.json, report.html, timeline.csv, run.json\n", out_dir);
        }
        free(report);
    }
    for (size_t i = 0; i < config_count; i++)
        sw_sim_result_free(runs[i]);
    free(runs);
    free(timeline_path);
done:
    free(traces);
    free(configs);
    return exit_code;
}
