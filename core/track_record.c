#include "track_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"

#define MS_PER_HOUR 3600000.0
/* A zero denominator (min_lease_hours 0, no lease-hours yet) must still give a rate. */
#define MIN_DENOMINATOR_HOURS 1e-9

struct sw_track_record {
    struct sw_journal *journal; /* borrowed; NULL: memory only */
    const struct sw_provider_backoff_config *config;
    struct sw_provider_row *rows; /* sorted by provider */
    size_t count;
    size_t cap;
    struct sw_provider_record *view; /* what sw_track_record_view returned last */
};

static const char *LOG = "track_record";

struct sw_track_record *sw_track_record_new(struct sw_journal *journal,
                                            const struct sw_provider_backoff_config *config,
                                            struct sw_error *err)
{
    struct sw_track_record *tr = sw_xcalloc(1, sizeof(*tr));
    tr->journal = journal;
    tr->config = config;
    if (journal != NULL && sw_journal_providers_load(journal, &tr->rows, &tr->count, err) < 0) {
        free(tr);
        return NULL;
    }
    tr->cap = tr->count;
    return tr;
}

void sw_track_record_free(struct sw_track_record *tr)
{
    if (tr == NULL)
        return;
    sw_provider_rows_free(tr->rows, tr->count);
    free(tr->view);
    free(tr);
}

static struct sw_provider_row *find(const struct sw_track_record *tr, const char *provider)
{
    for (size_t i = 0; provider != NULL && i < tr->count; i++)
        if (strcmp(tr->rows[i].provider, provider) == 0)
            return &tr->rows[i];
    return NULL;
}

const struct sw_provider_row *sw_track_record_find(const struct sw_track_record *tr,
                                                   const char *provider)
{
    return find(tr, provider);
}

/* The provider's row, created (in name order) on first sight. */
static struct sw_provider_row *row_for(struct sw_track_record *tr, const char *provider)
{
    struct sw_provider_row *row = find(tr, provider);
    if (row != NULL)
        return row;
    if (tr->count == tr->cap) {
        tr->cap = tr->cap ? tr->cap * 2 : 8;
        tr->rows = sw_xrealloc(tr->rows, tr->cap * sizeof(*tr->rows));
    }
    size_t at = 0;
    while (at < tr->count && strcmp(tr->rows[at].provider, provider) < 0)
        at++;
    memmove(&tr->rows[at + 1], &tr->rows[at], (tr->count - at) * sizeof(*tr->rows));
    tr->rows[at] = (struct sw_provider_row){.provider = sw_xstrdup(provider)};
    tr->count++;
    return &tr->rows[at];
}

static void save(struct sw_track_record *tr, const struct sw_provider_row *row)
{
    if (tr->journal == NULL)
        return;
    struct sw_error err = {0};
    if (sw_journal_provider_save(tr->journal, row, &err) < 0)
        sw_log(SW_LOG_ERROR, LOG, "cannot save the record of %s: %s", row->provider, err.msg);
}

static double hours_between(int64_t from_ms, int64_t to_ms)
{
    return from_ms > 0 && to_ms > from_ms ? (double)(to_ms - from_ms) / MS_PER_HOUR : 0;
}

/* Ready time so far of provider's open leases; except is the unit being closed (its
 * hours are in the row already). */
static double open_hours(const struct sw_units *units, const char *provider,
                         const struct sw_unit *except, int64_t now_ms)
{
    double hours = 0;
    for (size_t i = 0; units != NULL && i < units->count; i++) {
        const struct sw_unit *u = units->items[i];
        if (u == except || u->provider == NULL || strcmp(u->provider, provider) != 0)
            continue;
        if (u->state == SW_UNIT_READY || u->state == SW_UNIT_RELEASING)
            hours += hours_between(u->ready_ms, now_ms);
    }
    return hours;
}

void sw_track_record_ready(struct sw_track_record *tr, const struct sw_unit *u, int64_t now_ms)
{
    if (u->provider == NULL)
        return;
    struct sw_provider_row *row = row_for(tr, u->provider);
    row->bids++;
    row->acquires++;
    if (u->ordered_ms > 0 && now_ms >= u->ordered_ms)
        row->ready_ms_sum += (double)(now_ms - u->ordered_ms);
    save(tr, row);
}

static void format_duration(int64_t ms, char *buf, size_t size)
{
    int64_t secs = (ms + 999) / 1000;
    if (secs >= 3600 && secs % 3600 == 0)
        snprintf(buf, size, "%" PRId64 "h", secs / 3600);
    else if (secs >= 60 && secs % 60 == 0)
        snprintf(buf, size, "%" PRId64 "m", secs / 60);
    else
        snprintf(buf, size, "%" PRId64 "s", secs);
}

/* After an involuntary closure: start a back-off when the rate crosses the threshold. */
static bool maybe_back_off(struct sw_track_record *tr, struct sw_provider_row *row,
                           const struct sw_unit *closed, const struct sw_units *units,
                           int64_t now_ms)
{
    const struct sw_provider_backoff_config *cfg = tr->config;
    if (cfg == NULL || cfg->closures_per_lease_hour <= 0 || cfg->backoff_ms <= 0)
        return false;
    if (row->backoff_until_ms > now_ms)
        return false; /* the same incident */
    if (row->backoff_strikes > 0 && now_ms >= row->backoff_until_ms + cfg->max_backoff_ms)
        row->backoff_strikes = 0;
    double hours = row->lease_hours + open_hours(units, row->provider, closed, now_ms);
    double denominator = hours > cfg->min_lease_hours ? hours : cfg->min_lease_hours;
    if (denominator < MIN_DENOMINATOR_HOURS)
        denominator = MIN_DENOMINATOR_HOURS;
    double rate = (double)row->closures / denominator;
    if (!(rate > cfg->closures_per_lease_hour))
        return false;
    int64_t duration = cfg->backoff_ms;
    int64_t cap = cfg->max_backoff_ms > cfg->backoff_ms ? cfg->max_backoff_ms : cfg->backoff_ms;
    for (int i = 0; i < row->backoff_strikes && duration < cap; i++)
        duration = duration > cap / 2 ? cap : duration * 2;
    row->backoff_until_ms = now_ms + duration;
    row->backoff_strikes++;
    char shown[32];
    format_duration(duration, shown, sizeof(shown));
    sw_log(SW_LOG_WARN, LOG,
           "provider %s: %" PRId64 " involuntary closures in %.2f lease-hours (%.2f/h > %.2f/h): "
           "avoided for %s (back-off #%d)",
           row->provider, row->closures, hours, rate, cfg->closures_per_lease_hour, shown,
           row->backoff_strikes);
    return true;
}

bool sw_track_record_closed(struct sw_track_record *tr, const struct sw_unit *u, int how,
                            const struct sw_units *units, int64_t now_ms)
{
    if (u->provider == NULL)
        return false;
    struct sw_provider_row *row = row_for(tr, u->provider);
    bool started = false;
    switch (how) {
    case SW_TRACK_RELEASED:
        row->lease_hours += hours_between(u->ready_ms, now_ms);
        break;
    case SW_TRACK_LOST:
        row->lease_hours += hours_between(u->ready_ms, now_ms);
        row->closures++;
        started = maybe_back_off(tr, row, u, units, now_ms);
        break;
    case SW_TRACK_FAILED:
        row->bids++;
        row->closures++;
        started = maybe_back_off(tr, row, u, units, now_ms);
        break;
    default:
        return false;
    }
    save(tr, row);
    return started;
}

void sw_track_record_probe_failed(struct sw_track_record *tr, const char *provider)
{
    if (provider == NULL)
        return;
    struct sw_provider_row *row = row_for(tr, provider);
    row->probe_failures++;
    save(tr, row);
}

bool sw_track_record_backed_off(const struct sw_track_record *tr, const char *provider,
                                int64_t now_ms)
{
    const struct sw_provider_row *row = find(tr, provider);
    return row != NULL && row->backoff_until_ms > now_ms;
}

void sw_track_record_backed_off_list(const struct sw_track_record *tr, int64_t now_ms,
                                     struct sw_names *out)
{
    for (size_t i = 0; i < tr->count; i++)
        if (tr->rows[i].backoff_until_ms > now_ms)
            sw_names_add(out, tr->rows[i].provider);
}

const struct sw_provider_record *sw_track_record_view(struct sw_track_record *tr,
                                                      const struct sw_units *units, int64_t now_ms,
                                                      size_t *count)
{
    free(tr->view);
    tr->view = sw_xcalloc(tr->count ? tr->count : 1, sizeof(*tr->view));
    for (size_t i = 0; i < tr->count; i++) {
        const struct sw_provider_row *row = &tr->rows[i];
        tr->view[i] = (struct sw_provider_record){
            .provider = row->provider,
            .bids = row->bids,
            .acquires = row->acquires,
            .closures = row->closures,
            .probe_failures = row->probe_failures,
            .lease_hours = row->lease_hours + open_hours(units, row->provider, NULL, now_ms),
            .mean_ready_s =
                row->acquires > 0 ? row->ready_ms_sum / (double)row->acquires / 1000.0 : -1,
            .backed_off_until_ms = row->backoff_until_ms > now_ms ? row->backoff_until_ms : 0,
        };
    }
    *count = tr->count;
    return tr->view;
}
