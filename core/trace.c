#include "trace.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* Traces of a year at one-minute resolution over dozens of regions fit well below this. */
#define TRACE_MAX_BYTES ((size_t)1 << 30)
#define CSV_MAX_FIELDS 8

/* ---- a plain CSV reader that knows where each field starts --------------------------- */

struct csv {
    const char *path;
    char *text;
    size_t len;
    size_t pos;
    int line;                     /* of the current row, 1-based */
    char *fields[CSV_MAX_FIELDS]; /* point into text (NUL-terminated in place) */
    int cols[CSV_MAX_FIELDS];     /* 1-based column of each field's first character */
    int field_count;
    int end_col; /* column just past the row's last character */
    int header_count;
    int map[CSV_MAX_FIELDS]; /* wanted column i → field index */
};

static int csv_open(struct csv *c, const char *path, struct sw_error *err)
{
    memset(c, 0, sizeof(*c));
    c->path = path;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return sw_error_set(err, SW_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16;
    c->text = sw_xmalloc(cap + 1);
    size_t n;
    while ((n = fread(c->text + c->len, 1, cap - c->len, f)) > 0) {
        c->len += n;
        if (c->len == cap) {
            if (cap >= TRACE_MAX_BYTES) {
                fclose(f);
                return sw_error_set(err, SW_ETOOBIG, "%s: larger than %zu MiB", path,
                                    TRACE_MAX_BYTES >> 20);
            }
            cap *= 2;
            c->text = sw_xrealloc(c->text, cap + 1);
        }
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed)
        return sw_error_set(err, SW_EIO, "%s: cannot read: %s", path, strerror(errno));
    c->text[c->len] = '\0';
    return 0;
}

static void csv_close(struct csv *c)
{
    free(c->text);
    c->text = NULL;
}

static int csv_fail(const struct csv *c, int col, struct sw_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int csv_fail(const struct csv *c, int col, struct sw_error *err, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return sw_error_set(err, SW_EINVAL, "%s:%d:%d: %s", c->path, c->line, col, msg);
}

static char *trim(char *start, char *end, char **start_out)
{
    while (start < end && (*start == ' ' || *start == '\t'))
        start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    *start_out = start;
    return start;
}

/* Next data row (skipping blank and '#' lines). 1 with fields set, 0 at the end, < 0 for
 * a row with too many fields for any trace. */
static int csv_next(struct csv *c, struct sw_error *err)
{
    while (c->pos < c->len) {
        char *line = c->text + c->pos;
        char *nl = memchr(line, '\n', c->len - c->pos);
        char *end = nl != NULL ? nl : c->text + c->len;
        c->pos = (size_t)(end - c->text) + (nl != NULL ? 1 : 0);
        c->line++;
        if (end > line && end[-1] == '\r')
            end--;
        char *p = line;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end || *p == '#')
            continue;
        c->field_count = 0;
        c->end_col = (int)(end - line) + 1;
        char *field = line;
        for (;;) {
            char *comma = memchr(field, ',', (size_t)(end - field));
            char *stop = comma != NULL ? comma : end;
            if (c->field_count == CSV_MAX_FIELDS)
                return csv_fail(c, (int)(field - line) + 1, err, "more than %d fields",
                                CSV_MAX_FIELDS);
            char *start;
            trim(field, stop, &start);
            c->cols[c->field_count] = (int)(start - line) + 1;
            c->fields[c->field_count++] = start;
            if (comma == NULL)
                break;
            field = comma + 1;
        }
        return 1;
    }
    return 0;
}

/* Reads the header and maps the wanted columns. */
static int csv_header(struct csv *c, const char *const *want, int want_count, struct sw_error *err)
{
    int rc = csv_next(c, err);
    if (rc < 0)
        return rc;
    char expected[128] = "";
    for (int i = 0; i < want_count; i++)
        snprintf(expected + strlen(expected), sizeof(expected) - strlen(expected), "%s%s",
                 i ? "," : "", want[i]);
    if (rc == 0) {
        c->line = c->line ? c->line : 1;
        return csv_fail(c, 1, err, "empty file: expected the header row %s", expected);
    }
    for (int i = 0; i < want_count; i++)
        c->map[i] = -1;
    for (int f = 0; f < c->field_count; f++) {
        int found = -1;
        for (int i = 0; i < want_count; i++)
            if (strcmp(c->fields[f], want[i]) == 0)
                found = i;
        if (found < 0)
            return csv_fail(c, c->cols[f], err, "unknown column '%s' (expected %s)", c->fields[f],
                            expected);
        if (c->map[found] >= 0)
            return csv_fail(c, c->cols[f], err, "column '%s' appears twice", c->fields[f]);
        c->map[found] = f;
    }
    for (int i = 0; i < want_count; i++)
        if (c->map[i] < 0)
            return csv_fail(c, 1, err, "missing column '%s' (expected %s)", want[i], expected);
    c->header_count = c->field_count;
    return 0;
}

/* Next row with exactly the header's field count: 1, 0 at the end, or < 0. */
static int csv_row(struct csv *c, struct sw_error *err)
{
    int rc = csv_next(c, err);
    if (rc <= 0)
        return rc;
    if (c->field_count != c->header_count)
        return csv_fail(c, c->field_count < c->header_count ? c->end_col : c->cols[c->header_count],
                        err, "expected %d fields like the header, got %d", c->header_count,
                        c->field_count);
    return 1;
}

static const char *field(const struct csv *c, int i)
{
    return c->fields[c->map[i]];
}

static int col(const struct csv *c, int i)
{
    return c->cols[c->map[i]];
}

/* A finite number >= min. */
static int number(const struct csv *c, int i, double min, const char *what, double *out,
                  struct sw_error *err)
{
    const char *text = field(c, i);
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (text[0] == '\0' || end == text || *end != '\0' || !isfinite(v) || errno == ERANGE)
        return csv_fail(c, col(c, i), err, "%s: expected a number, got '%s'", what, text);
    if (v < min)
        return csv_fail(c, col(c, i), err, "%s: expected a number >= %g, got %s", what, min, text);
    *out = v;
    return 0;
}

static int integer(const struct csv *c, int i, int min, const char *what, int *out,
                   struct sw_error *err)
{
    double v;
    int rc = number(c, i, -INFINITY, what, &v, err);
    if (rc < 0)
        return rc;
    if (v != floor(v) || v < min || v > 1e6)
        return csv_fail(c, col(c, i), err, "%s: expected an integer >= %d, got %s", what, min,
                        field(c, i));
    *out = (int)v;
    return 0;
}

static int region_name(const struct csv *c, int i, const char *what, struct sw_error *err)
{
    const char *text = field(c, i);
    if (text[0] == '\0')
        return csv_fail(c, col(c, i), err, "%s: expected a region name, got nothing", what);
    for (const char *p = text; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return csv_fail(c, col(c, i), err,
                            "%s: expected a region name of [A-Za-z0-9._-], got '%s'", what, text);
    return 0;
}

/* ---- kind ----------------------------------------------------------------------------- */

static const char *const demand_cols[] = {"time_s", "region", "rps"};
static const char *const jobs_cols[] = {"submit_s", "duration_s", "workers", "gpus_per_worker"};
static const char *const rtt_cols[] = {"from", "to", "rtt_ms"};

static bool header_is(const struct csv *c, const char *const *cols, int count)
{
    if (c->field_count != count)
        return false;
    for (int i = 0; i < count; i++) {
        bool found = false;
        for (int f = 0; f < c->field_count; f++)
            found = found || strcmp(c->fields[f], cols[i]) == 0;
        if (!found)
            return false;
    }
    return true;
}

int sw_trace_kind(const char *path, struct sw_error *err)
{
    struct csv c;
    int rc = csv_open(&c, path, err);
    if (rc == 0)
        rc = csv_next(&c, err);
    if (rc == 0) {
        c.line = 1;
        rc = csv_fail(&c, 1, err, "empty file: expected a header row");
    } else if (rc > 0) {
        if (header_is(&c, demand_cols, 3))
            rc = SW_TRACE_DEMAND;
        else if (header_is(&c, jobs_cols, 4))
            rc = SW_TRACE_JOBS;
        else if (header_is(&c, rtt_cols, 3))
            rc = SW_TRACE_RTT;
        else
            rc = csv_fail(&c, 1, err,
                          "header is neither time_s,region,rps (demand) nor "
                          "submit_s,duration_s,workers,gpus_per_worker (jobs)");
    }
    csv_close(&c);
    return rc;
}

/* ---- demand --------------------------------------------------------------------------- */

static void series_push(struct sw_demand_series *s, size_t *cap, double t, double rps)
{
    if (s->count == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        s->time_s = sw_xrealloc(s->time_s, *cap * sizeof(double));
        s->rps = sw_xrealloc(s->rps, *cap * sizeof(double));
    }
    s->time_s[s->count] = t;
    s->rps[s->count] = rps;
    s->count++;
}

static int cmp_index_by_name(const void *a, const void *b, void *names)
{
    char **n = names;
    return strcmp(n[*(const size_t *)a], n[*(const size_t *)b]);
}

/* qsort_r is a GNU extension; a small insertion sort keeps this portable and the region
 * counts are small. */
static void sort_indices(size_t *idx, size_t count, char **names)
{
    for (size_t i = 1; i < count; i++) {
        size_t v = idx[i];
        size_t j = i;
        while (j > 0 && cmp_index_by_name(&idx[j - 1], &v, names) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

void sw_demand_free(struct sw_demand *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->region_count; i++) {
        free(d->regions[i]);
        free(d->series[i].time_s);
        free(d->series[i].rps);
    }
    free(d->regions);
    free(d->series);
    free(d->path);
    free(d);
}

struct sw_demand *sw_demand_load(const char *path, struct sw_error *err)
{
    struct csv c;
    struct sw_demand *d = sw_xcalloc(1, sizeof(*d));
    d->path = sw_xstrdup(path);
    size_t *caps = NULL;
    size_t region_cap = 0;
    size_t last = 0;
    double prev_t = -INFINITY;
    int rc = csv_open(&c, path, err);
    if (rc == 0)
        rc = csv_header(&c, demand_cols, 3, err);
    while (rc == 0 && (rc = csv_row(&c, err)) > 0) {
        rc = 0;
        double t, rps;
        if ((rc = number(&c, 0, 0, "time_s", &t, err)) < 0 ||
            (rc = region_name(&c, 1, "region", err)) < 0 ||
            (rc = number(&c, 2, 0, "rps", &rps, err)) < 0)
            break;
        if (t < prev_t) {
            rc = csv_fail(&c, col(&c, 0), err,
                          "time_s %s is before the previous row's %g "
                          "(rows must be sorted by time)",
                          field(&c, 0), prev_t);
            break;
        }
        prev_t = t;
        const char *name = field(&c, 1);
        size_t r = last;
        if (r >= d->region_count || strcmp(d->regions[r], name) != 0) {
            for (r = 0; r < d->region_count && strcmp(d->regions[r], name) != 0; r++)
                ;
        }
        if (r == d->region_count) {
            if (d->region_count == region_cap) {
                region_cap = region_cap ? region_cap * 2 : 16;
                d->regions = sw_xrealloc(d->regions, region_cap * sizeof(char *));
                d->series = sw_xrealloc(d->series, region_cap * sizeof(*d->series));
                caps = sw_xrealloc(caps, region_cap * sizeof(size_t));
            }
            d->regions[r] = sw_xstrdup(name);
            memset(&d->series[r], 0, sizeof(d->series[r]));
            d->series[r].first_line = c.line;
            d->series[r].first_col = col(&c, 1);
            caps[r] = 0;
            d->region_count++;
        }
        last = r;
        struct sw_demand_series *s = &d->series[r];
        if (s->count > 0 && s->time_s[s->count - 1] == t) {
            rc = csv_fail(&c, col(&c, 0), err, "region '%s' already has a row at time_s %s", name,
                          field(&c, 0));
            break;
        }
        series_push(s, &caps[r], t, rps);
        if (d->row_count == 0)
            d->start_s = t;
        d->end_s = t;
        d->row_count++;
    }
    if (rc == 0 && d->row_count == 0) {
        rc = csv_fail(&c, 1, err, "no rows after the header");
    }
    csv_close(&c);
    free(caps);
    if (rc < 0) {
        sw_demand_free(d);
        return NULL;
    }
    /* Sorted region order makes every report and sample list independent of row order. */
    size_t *idx = sw_xcalloc(d->region_count, sizeof(size_t));
    for (size_t i = 0; i < d->region_count; i++)
        idx[i] = i;
    sort_indices(idx, d->region_count, d->regions);
    char **names = sw_xcalloc(d->region_count, sizeof(char *));
    struct sw_demand_series *series = sw_xcalloc(d->region_count, sizeof(*series));
    for (size_t i = 0; i < d->region_count; i++) {
        names[i] = d->regions[idx[i]];
        series[i] = d->series[idx[i]];
    }
    free(d->regions);
    free(d->series);
    free(idx);
    d->regions = names;
    d->series = series;
    return d;
}

int sw_demand_region(const struct sw_demand *d, const char *region)
{
    for (size_t i = 0; region != NULL && i < d->region_count; i++)
        if (strcmp(d->regions[i], region) == 0)
            return (int)i;
    return -1;
}

double sw_demand_rps_at(const struct sw_demand *d, size_t r, double t_s, size_t *cursor)
{
    const struct sw_demand_series *s = &d->series[r];
    if (s->count == 0 || t_s < s->time_s[0])
        return 0.0;
    size_t i = cursor != NULL && *cursor < s->count ? *cursor : 0;
    if (s->time_s[i] > t_s) {
        /* Time went back: binary search for the last row at or before t_s. */
        size_t lo = 0, hi = s->count;
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->time_s[mid] <= t_s)
                lo = mid;
            else
                hi = mid;
        }
        i = lo;
    }
    while (i + 1 < s->count && s->time_s[i + 1] <= t_s)
        i++;
    if (cursor != NULL)
        *cursor = i;
    return s->rps[i];
}

/* ---- rtt ------------------------------------------------------------------------------ */

void sw_rtt_free(struct sw_rtt *rtt)
{
    if (rtt == NULL)
        return;
    for (size_t i = 0; i < rtt->region_count; i++)
        free(rtt->regions[i]);
    free(rtt->regions);
    free(rtt->ms);
    free(rtt->path);
    free(rtt);
}

int sw_rtt_region(const struct sw_rtt *rtt, const char *region)
{
    for (size_t i = 0; region != NULL && i < rtt->region_count; i++)
        if (strcmp(rtt->regions[i], region) == 0)
            return (int)i;
    return -1;
}

double sw_rtt_ms(const struct sw_rtt *rtt, int from, int to)
{
    if (from < 0 || to < 0)
        return NAN;
    return rtt->ms[(size_t)from * rtt->region_count + (size_t)to];
}

struct rtt_row {
    size_t from;
    size_t to;
    double ms;
    int line;
};

static size_t name_index(char ***names, size_t *count, size_t *cap, const char *name)
{
    for (size_t i = 0; i < *count; i++)
        if (strcmp((*names)[i], name) == 0)
            return i;
    if (*count == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *names = sw_xrealloc(*names, *cap * sizeof(char *));
    }
    (*names)[*count] = sw_xstrdup(name);
    return (*count)++;
}

struct sw_rtt *sw_rtt_load(const char *path, struct sw_error *err)
{
    struct csv c;
    struct sw_rtt *rtt = sw_xcalloc(1, sizeof(*rtt));
    rtt->path = sw_xstrdup(path);
    struct rtt_row *rows = NULL;
    size_t row_count = 0, row_cap = 0, name_cap = 0;
    int rc = csv_open(&c, path, err);
    if (rc == 0)
        rc = csv_header(&c, rtt_cols, 3, err);
    while (rc == 0 && (rc = csv_row(&c, err)) > 0) {
        rc = 0;
        double ms;
        if ((rc = region_name(&c, 0, "from", err)) < 0 ||
            (rc = region_name(&c, 1, "to", err)) < 0 ||
            (rc = number(&c, 2, 0, "rtt_ms", &ms, err)) < 0)
            break;
        if (row_count == row_cap) {
            row_cap = row_cap ? row_cap * 2 : 64;
            rows = sw_xrealloc(rows, row_cap * sizeof(*rows));
        }
        struct rtt_row *row = &rows[row_count++];
        row->from = name_index(&rtt->regions, &rtt->region_count, &name_cap, field(&c, 0));
        row->to = name_index(&rtt->regions, &rtt->region_count, &name_cap, field(&c, 1));
        row->ms = ms;
        row->line = c.line;
        for (size_t i = 0; i + 1 < row_count; i++) {
            if (rows[i].from == row->from && rows[i].to == row->to) {
                rc = csv_fail(&c, col(&c, 0), err, "pair %s → %s already given on line %d",
                              field(&c, 0), field(&c, 1), rows[i].line);
                break;
            }
        }
    }
    if (rc == 0 && row_count == 0)
        rc = csv_fail(&c, 1, err, "no rows after the header");
    csv_close(&c);
    if (rc < 0) {
        free(rows);
        sw_rtt_free(rtt);
        return NULL;
    }
    size_t n = rtt->region_count;
    size_t *idx = sw_xcalloc(n, sizeof(size_t));
    size_t *rank = sw_xcalloc(n, sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    sort_indices(idx, n, rtt->regions);
    char **names = sw_xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        names[i] = rtt->regions[idx[i]];
        rank[idx[i]] = i;
    }
    free(rtt->regions);
    rtt->regions = names;
    rtt->ms = sw_xmalloc(n * n * sizeof(double));
    for (size_t i = 0; i < n * n; i++)
        rtt->ms[i] = NAN;
    for (size_t i = 0; i < row_count; i++)
        rtt->ms[rank[rows[i].from] * n + rank[rows[i].to]] = rows[i].ms;
    free(idx);
    free(rank);
    free(rows);
    return rtt;
}

int sw_trace_check_regions(const struct sw_demand *d, const struct sw_rtt *rtt,
                           const char *const *serving, size_t serving_count, struct sw_error *err)
{
    for (size_t s = 0; s < serving_count; s++)
        if (sw_rtt_region(rtt, serving[s]) < 0)
            return sw_error_set(err, SW_EINVAL,
                                "%s: no round-trip times for region '%s', "
                                "where capacity may run (add rows from each user region to "
                                "'%s')",
                                rtt->path, serving[s], serving[s]);
    for (size_t r = 0; r < d->region_count; r++) {
        const struct sw_demand_series *s = &d->series[r];
        int from = sw_rtt_region(rtt, d->regions[r]);
        if (from < 0)
            return sw_error_set(err, SW_EINVAL, "%s:%d:%d: unknown region '%s' (not in %s)",
                                d->path, s->first_line, s->first_col, d->regions[r], rtt->path);
        for (size_t k = 0; k < serving_count; k++) {
            int to = sw_rtt_region(rtt, serving[k]);
            if (isnan(sw_rtt_ms(rtt, from, to)))
                return sw_error_set(err, SW_EINVAL,
                                    "%s:%d:%d: no round-trip time from '%s' "
                                    "to '%s' in %s",
                                    d->path, s->first_line, s->first_col, d->regions[r], serving[k],
                                    rtt->path);
        }
    }
    return 0;
}

/* ---- jobs ----------------------------------------------------------------------------- */

void sw_jobs_free(struct sw_jobs *jobs)
{
    if (jobs == NULL)
        return;
    free(jobs->items);
    free(jobs->path);
    free(jobs);
}

struct sw_jobs *sw_jobs_load(const char *path, struct sw_error *err)
{
    struct csv c;
    struct sw_jobs *jobs = sw_xcalloc(1, sizeof(*jobs));
    jobs->path = sw_xstrdup(path);
    size_t cap = 0;
    double prev = -INFINITY;
    int rc = csv_open(&c, path, err);
    if (rc == 0)
        rc = csv_header(&c, jobs_cols, 4, err);
    while (rc == 0 && (rc = csv_row(&c, err)) > 0) {
        rc = 0;
        struct sw_job job = {0};
        if ((rc = number(&c, 0, 0, "submit_s", &job.submit_s, err)) < 0 ||
            (rc = number(&c, 1, 0, "duration_s", &job.duration_s, err)) < 0 ||
            (rc = integer(&c, 2, 1, "workers", &job.workers, err)) < 0 ||
            (rc = integer(&c, 3, 0, "gpus_per_worker", &job.gpus_per_worker, err)) < 0)
            break;
        if (job.submit_s < prev) {
            rc = csv_fail(&c, col(&c, 0), err,
                          "submit_s %s is before the previous row's %g "
                          "(rows must be sorted by submit time)",
                          field(&c, 0), prev);
            break;
        }
        prev = job.submit_s;
        job.line = c.line;
        if (jobs->count == cap) {
            cap = cap ? cap * 2 : 32;
            jobs->items = sw_xrealloc(jobs->items, cap * sizeof(*jobs->items));
        }
        jobs->items[jobs->count++] = job;
    }
    csv_close(&c);
    if (rc < 0) {
        sw_jobs_free(jobs);
        return NULL;
    }
    return jobs;
}
