#include "report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* ---- report.json ------------------------------------------------------------------------ */

static cJSON *num(double v, int decimals)
{
    if (!isfinite(v))
        return cJSON_CreateNull();
    double scale = pow(10.0, decimals);
    double r = round(v * scale) / scale;
    if (r == 0)
        r = 0; /* no "-0" */
    return cJSON_CreateNumber(r);
}

static void add_num(cJSON *obj, const char *name, double v, int decimals)
{
    cJSON_AddItemToObject(obj, name, num(v, decimals));
}

static void add_count(cJSON *obj, const char *name, uint64_t v)
{
    cJSON_AddNumberToObject(obj, name, (double)v);
}

static cJSON *percentiles(double p50, double p95, double p99, bool with_p99)
{
    cJSON *o = cJSON_CreateObject();
    add_num(o, "p50", p50, 3);
    add_num(o, "p95", p95, 3);
    if (with_p99)
        add_num(o, "p99", p99, 3);
    return o;
}

static cJSON *run_json(const struct sw_sim_result *r)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "format", 1);
    cJSON_AddStringToObject(root, "config", r->config_path);
    cJSON_AddStringToObject(root, "policies", r->policy_names);
    cJSON_AddNumberToObject(root, "seed", (double)r->seed);
    cJSON *window = cJSON_AddObjectToObject(root, "window");
    add_num(window, "from_s", r->start_s, 3);
    add_num(window, "to_s", r->end_s, 3);

    cJSON *model = cJSON_AddObjectToObject(root, "model");
    add_num(model, "rps_per_unit", r->rps_per_unit, 6);
    add_num(model, "slo_p95_ms", r->slo_p95_ms, 6);
    add_num(model, "service_ms", r->service_ms, 6);
    if (r->web_group != NULL)
        cJSON_AddStringToObject(model, "group", r->web_group);
    else
        cJSON_AddNullToObject(model, "group");
    if (r->job_group != NULL)
        cJSON_AddStringToObject(model, "job_group", r->job_group);
    else
        cJSON_AddNullToObject(model, "job_group");

    cJSON *s = cJSON_AddObjectToObject(root, "summary");
    add_num(s, "cost_usd", r->cost_usd, 6);
    add_num(s, "lease_hours", r->lease_hours, 6);
    add_count(s, "leases_acquired", r->leases_acquired);
    add_count(s, "leases_released", r->leases_released);
    add_count(s, "provider_closures", r->provider_closures);
    add_num(s, "availability", r->availability, 6);
    add_count(s, "actions", r->actions);
    add_count(s, "evaluations", r->evaluations);
    add_count(s, "policy_errors", r->policy_errors);
    add_count(s, "refused_actions", r->refused);
    cJSON_AddItemToObject(s, "latency_ms",
                          percentiles(r->latency_p50, r->latency_p95, r->latency_p99, true));
    add_num(s, "slo_violation_minutes", r->slo_violation_minutes, 3);
    add_num(s, "demand_requests", r->demand_requests, 3);
    add_num(s, "served_requests", r->served_requests, 3);
    add_num(s, "dropped_requests", r->dropped_requests, 3);
    add_count(s, "jobs_submitted", r->jobs.submitted);
    add_count(s, "jobs_completed", r->jobs.completed);
    add_count(s, "jobs_restarted", r->jobs.restarted);
    add_count(s, "jobs_waiting", r->jobs.waiting);
    cJSON_AddItemToObject(s, "job_wait_s",
                          percentiles(r->jobs.wait_p50_s, r->jobs.wait_p95_s, NAN, false));
    add_num(s, "worker_hours", r->jobs.worker_hours, 6);
    add_num(s, "idle_worker_hours", r->jobs.idle_worker_hours, 6);
    add_num(s, "gpu_hours", r->jobs.gpu_hours, 6);
    add_num(s, "sim_s", r->sim_s, 3);

    cJSON *regions = cJSON_AddObjectToObject(root, "regions");
    for (size_t i = 0; i < r->region_count; i++) {
        const struct sw_sim_region *g = &r->regions[i];
        cJSON *o = cJSON_AddObjectToObject(regions, g->name);
        add_num(o, "demand_requests", g->demand_requests, 3);
        add_num(o, "served_requests", g->served_requests, 3);
        add_num(o, "dropped_requests", g->dropped_requests, 3);
        add_num(o, "served_here_requests", g->served_here_requests, 3);
        cJSON_AddItemToObject(o, "latency_ms",
                              percentiles(g->latency_p50, g->latency_p95, g->latency_p99, true));
        add_num(o, "cost_usd", g->cost_usd, 6);
        add_num(o, "lease_hours", g->lease_hours, 6);
        add_count(o, "leases_acquired", g->leases_acquired);
        cJSON_AddNumberToObject(o, "peak_ready_units", g->peak_ready);
    }
    cJSON *groups = cJSON_AddObjectToObject(root, "groups");
    for (size_t i = 0; i < r->group_count; i++) {
        const struct sw_sim_group *g = &r->groups[i];
        cJSON *o = cJSON_AddObjectToObject(groups, g->name);
        add_num(o, "cost_usd", g->cost_usd, 6);
        add_num(o, "lease_hours", g->lease_hours, 6);
        add_count(o, "leases_acquired", g->leases_acquired);
        add_count(o, "leases_released", g->leases_released);
        add_count(o, "provider_closures", g->provider_closures);
        cJSON_AddNumberToObject(o, "peak_ready_units", g->peak_ready);
        cJSON_AddNumberToObject(o, "min", g->min);
        add_num(o, "availability", g->availability, 6);
    }
    return root;
}

static char *print_owned(cJSON *root)
{
    char *text = cJSON_Print(root);
    char *owned = sw_xasprintf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(root);
    return owned;
}

char *sw_report_json(const struct sw_sim_result *const *runs, size_t count)
{
    cJSON *root = run_json(runs[0]);
    if (count > 1) {
        cJSON *compare = cJSON_AddArrayToObject(root, "compare");
        for (size_t i = 1; i < count; i++)
            cJSON_AddItemToArray(compare, run_json(runs[i]));
    }
    return print_owned(root);
}

char *sw_report_run_json(const struct sw_sim_result *const *runs, size_t count)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "runs");
    for (size_t i = 0; i < count; i++) {
        const struct sw_sim_result *r = runs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "config", r->config_path);
        add_num(o, "wall_s", r->wall_s, 6);
        add_num(o, "sim_s", r->sim_s, 3);
        add_count(o, "evaluations", r->evaluations);
        add_num(o, "evaluations_per_s", r->wall_s > 0 ? (double)r->evaluations / r->wall_s : NAN,
                1);
        add_num(o, "sim_days_per_wall_s", r->wall_s > 0 ? r->sim_s / 86400.0 / r->wall_s : NAN, 3);
        cJSON_AddItemToArray(arr, o);
    }
    return print_owned(root);
}

int sw_report_write_file(const char *path, const char *text, struct sw_error *err)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return sw_error_set(err, SW_EIO, "%s: cannot write: %s", path, strerror(errno));
    size_t len = strlen(text);
    bool ok = fwrite(text, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    if (!ok)
        return sw_error_set(err, SW_EIO, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

/* ---- the table ------------------------------------------------------------------------ */

static void fmt_num(char *buf, size_t len, double v, int decimals)
{
    if (!isfinite(v))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.*f", decimals, v);
}

void sw_report_print_table(FILE *out, const struct sw_sim_result *const *runs, size_t count)
{
    enum { WIDTH = 16 };
    fprintf(out, "%-24s", "");
    for (size_t i = 0; i < count; i++) {
        const char *path = runs[i]->config_path;
        const char *base = strrchr(path, '/');
        base = base != NULL ? base + 1 : path;
        fprintf(out, " %*.*s", WIDTH, WIDTH, base);
    }
    fputc('\n', out);
#define ROW(label, expr, decimals)                                                                 \
    do {                                                                                           \
        fprintf(out, "%-24s", label);                                                              \
        for (size_t i = 0; i < count; i++) {                                                       \
            const struct sw_sim_result *r = runs[i];                                               \
            char cell[64];                                                                         \
            fmt_num(cell, sizeof(cell), (double)(expr), decimals);                                 \
            fprintf(out, " %*s", WIDTH, cell);                                                     \
        }                                                                                          \
        fputc('\n', out);                                                                          \
    } while (0)
    ROW("simulated days", r->sim_s / 86400.0, 2);
    ROW("cost_usd", r->cost_usd, 2);
    ROW("lease_hours", r->lease_hours, 1);
    ROW("leases_acquired", r->leases_acquired, 0);
    ROW("leases_released", r->leases_released, 0);
    ROW("provider_closures", r->provider_closures, 0);
    ROW("availability %", 100 * r->availability, 3);
    ROW("actions", r->actions, 0);
    ROW("evaluations", r->evaluations, 0);
    ROW("policy_errors", r->policy_errors, 0);
    bool demand = false, jobs = false;
    for (size_t i = 0; i < count; i++) {
        demand = demand || runs[i]->has_demand;
        jobs = jobs || runs[i]->has_jobs;
    }
    if (demand) {
        ROW("latency p50 ms", r->latency_p50, 2);
        ROW("latency p95 ms", r->latency_p95, 2);
        ROW("latency p99 ms", r->latency_p99, 2);
        ROW("slo_violation_minutes", r->slo_violation_minutes, 1);
        ROW("dropped_requests", r->dropped_requests, 0);
        ROW("dropped %",
            r->demand_requests > 0 ? 100 * r->dropped_requests / r->demand_requests : NAN, 3);
    }
    if (jobs) {
        ROW("jobs_completed", r->jobs.completed, 0);
        ROW("job wait p50 s", r->jobs.wait_p50_s, 1);
        ROW("job wait p95 s", r->jobs.wait_p95_s, 1);
        ROW("worker_hours", r->jobs.worker_hours, 1);
        ROW("idle_worker_hours", r->jobs.idle_worker_hours, 1);
    }
    ROW("wall_s", r->wall_s, 3);
#undef ROW
}

/* ---- report.html ---------------------------------------------------------------------- */

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 256);
        b->data = sw_xrealloc(b->data, b->cap);
    }
}

static void put_escaped(struct buf *b, const char *text)
{
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case '<':
            put(b, "&lt;");
            break;
        case '>':
            put(b, "&gt;");
            break;
        case '&':
            put(b, "&amp;");
            break;
        case '"':
            put(b, "&quot;");
            break;
        default:
            put(b, "%c", *p);
        }
    }
}

/* Colour-blind-safe (Okabe–Ito), one per run. */
static const char *const COLOURS[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000", "#F0E442"};
#define COLOUR(i) COLOURS[(i) % SW_ARRAY_LEN(COLOURS)]

enum { CHART_W = 900, CHART_H = 160, PAD_L = 60, PAD_R = 30, PAD_T = 10, PAD_B = 22 };

struct chart {
    double x0, x1; /* days */
    double ymax;
    int height;
};

static double chart_x(const struct chart *c, double x)
{
    return PAD_L + (x - c->x0) / (c->x1 - c->x0) * (CHART_W - PAD_L - PAD_R);
}

static double chart_y(const struct chart *c, double y)
{
    double ymax = c->ymax > 0 ? c->ymax : 1;
    return c->height - PAD_B - y / ymax * (c->height - PAD_T - PAD_B);
}

static double nice_max(double v)
{
    if (!(v > 0))
        return 1;
    double p = pow(10, floor(log10(v)));
    double steps[] = {1, 2, 2.5, 5, 10};
    for (size_t i = 0; i < SW_ARRAY_LEN(steps); i++)
        if (steps[i] * p >= v)
            return steps[i] * p;
    return 10 * p;
}

static void chart_open(struct buf *b, struct chart *c, const char *title, const char *unit)
{
    c->ymax = nice_max(c->ymax);
    put(b, "<figure><figcaption>");
    put_escaped(b, title);
    put(b,
        "</figcaption>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
        "viewBox=\"0 0 %d %d\" role=\"img\">\n",
        CHART_W, c->height, CHART_W, c->height);
    /* Axes: three y labels, day ticks on x. */
    for (int i = 0; i <= 2; i++) {
        double y = c->ymax * i / 2.0;
        double py = chart_y(c, y);
        put(b,
            "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"grid\"/>"
            "<text x=\"%d\" y=\"%.1f\" class=\"yl\">%g%s</text>\n",
            PAD_L, py, CHART_W - PAD_R, py, PAD_L - 4, py + 4, y, unit);
    }
    double span = c->x1 - c->x0;
    double step = span <= 2 ? 0.25 : span <= 10 ? 1 : span <= 60 ? 7 : 30;
    for (double d = ceil(c->x0 / step) * step; d <= c->x1 + 1e-9; d += step) {
        double px = chart_x(c, d);
        put(b, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">%s%g</text>\n", px, c->height - 6,
            step < 1 ? "d" : "day ", step < 1 ? d : d);
    }
}

static void chart_close(struct buf *b)
{
    put(b, "</svg></figure>\n");
}

/* A polyline over bucket midpoints; NaN breaks the line. */
static void polyline(struct buf *b, const struct chart *c, const struct sw_sim_result *r,
                     const double *values, const char *attrs)
{
    const struct sw_sim_series *se = &r->series;
    bool open = false;
    for (size_t i = 0; i < se->buckets; i++) {
        double v = values[i];
        if (!isfinite(v)) {
            if (open)
                put(b, "\"/>\n");
            open = false;
            continue;
        }
        double day = (r->start_s + ((double)i + 0.5) * se->bucket_s) / 86400.0;
        if (!open) {
            put(b, "<polyline %s points=\"", attrs);
            open = true;
        }
        put(b, "%.1f,%.1f ", chart_x(c, day), chart_y(c, v));
    }
    if (open)
        put(b, "\"/>\n");
}

static double series_max(const double *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]) && v[i] > m)
            m = v[i];
    return m;
}

static void summary_table(struct buf *b, const struct sw_sim_result *const *runs, size_t count)
{
    put(b, "<table><tr><th></th>");
    for (size_t i = 0; i < count; i++) {
        put(b, "<th><span class=\"sw\" style=\"background:%s\"></span>", COLOUR(i));
        put_escaped(b, runs[i]->config_path);
        put(b, "</th>");
    }
    put(b, "</tr>\n");
#define HROW(label, expr, decimals)                                                                \
    do {                                                                                           \
        put(b, "<tr><td>%s</td>", label);                                                          \
        for (size_t i = 0; i < count; i++) {                                                       \
            const struct sw_sim_result *r = runs[i];                                               \
            char cell[64];                                                                         \
            fmt_num(cell, sizeof(cell), (double)(expr), decimals);                                 \
            put(b, "<td>%s</td>", cell);                                                           \
        }                                                                                          \
        put(b, "</tr>\n");                                                                         \
    } while (0)
    HROW("cost (USD)", r->cost_usd, 2);
    HROW("lease hours", r->lease_hours, 1);
    HROW("leases acquired", r->leases_acquired, 0);
    HROW("leases released", r->leases_released, 0);
    HROW("provider closures", r->provider_closures, 0);
    HROW("availability (%)", 100 * r->availability, 3);
    HROW("actions", r->actions, 0);
    HROW("evaluations", r->evaluations, 0);
    HROW("latency p50 (ms)", r->latency_p50, 2);
    HROW("latency p95 (ms)", r->latency_p95, 2);
    HROW("latency p99 (ms)", r->latency_p99, 2);
    HROW("minutes over the p95 SLO", r->slo_violation_minutes, 1);
    HROW("dropped requests", r->dropped_requests, 0);
    bool jobs = false;
    for (size_t i = 0; i < count; i++)
        jobs = jobs || runs[i]->has_jobs;
    if (jobs) {
        HROW("jobs completed", r->jobs.completed, 0);
        HROW("job wait p95 (s)", r->jobs.wait_p95_s, 1);
        HROW("worker hours", r->jobs.worker_hours, 1);
        HROW("idle worker hours", r->jobs.idle_worker_hours, 1);
    }
#undef HROW
    put(b, "</table>\n");
}

char *sw_report_html(const struct sw_sim_result *const *runs, size_t count)
{
    struct buf b = {sw_xmalloc(4096), 0, 4096};
    const struct sw_sim_result *first = runs[0];
    put(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            "<title>steward simulation: ");
    put_escaped(&b, first->config_path);
    put(&b, "</title>\n<style>\n"
            "body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:960px}\n"
            "table{border-collapse:collapse;margin:12px 0}td,th{padding:3px 10px;"
            "border-bottom:1px solid #ddd;text-align:right}td:first-child{text-align:left}\n"
            "figure{margin:14px 0}figcaption{font-weight:600;margin-bottom:2px}\n"
            ".grid{stroke:#e4e4e4}.yl{font-size:10px;text-anchor:end;fill:#666}"
            ".xl{font-size:10px;text-anchor:middle;fill:#666}\n"
            "polyline{fill:none}polyline:not([stroke-width]){stroke-width:1.5}.demand{stroke:#999;stroke-width:2.5}"
            ".slo{stroke:#c00;stroke-width:2;stroke-dasharray:8 4}\n"
            ".sw{display:inline-block;width:10px;height:10px;margin-right:5px}\n"
            "</style></head><body>\n<h1>Simulation report</h1>\n<p>");
    put(&b, "%.2f simulated days from trace second %.0f; policies: ", first->sim_s / 86400.0,
        first->start_s);
    put_escaped(&b, first->policy_names);
    put(&b, "; SLO p95 &le; %g ms; one unit serves %g requests/s.</p>\n", first->slo_p95_ms,
        first->rps_per_unit);
    summary_table(&b, runs, count);

    double x0 = first->start_s / 86400.0, x1 = first->end_s / 86400.0;
    if (!(x1 > x0))
        x1 = x0 + 1;

    /* Capacity against demand, per region. */
    if (first->has_demand) {
        put(&b,
            "<h2>Capacity against demand, per region</h2>\n<p>Grey: demand from users "
            "in the region (requests/s). Colour: ready web capacity in the region "
            "(units &times; %g requests/s), one per configuration.</p>\n",
            first->rps_per_unit);
        char empty[1024] = "";
        size_t empty_len = 0;
        for (size_t g = 0; g < first->region_count; g++) {
            const char *region = first->regions[g].name;
            struct chart c = {x0, x1, 0, CHART_H};
            const double *demand = &first->series.demand_rps[g * first->series.buckets];
            c.ymax = series_max(demand, first->series.buckets);
            for (size_t i = 0; i < count; i++) {
                int k = -1;
                for (size_t j = 0; j < runs[i]->region_count; j++)
                    if (strcmp(runs[i]->regions[j].name, region) == 0)
                        k = (int)j;
                if (k >= 0) {
                    double m = series_max(
                        &runs[i]->series.capacity_rps[(size_t)k * runs[i]->series.buckets],
                        runs[i]->series.buckets);
                    c.ymax = m > c.ymax ? m : c.ymax;
                }
            }
            if (!(c.ymax > 0)) {
                /* No users there and no capacity in any run: listed, not drawn. */
                empty_len += (size_t)snprintf(
                    empty + empty_len, empty_len < sizeof(empty) ? sizeof(empty) - empty_len : 0,
                    "%s%s", empty_len ? ", " : "", region);
                continue;
            }
            char title[160];
            snprintf(title, sizeof(title), "%s", region);
            chart_open(&b, &c, title, "");
            put(&b, "<g class=\"series\" data-region=\"");
            put_escaped(&b, region);
            put(&b, "\">\n");
            polyline(&b, &c, first, demand, "class=\"demand\"");
            for (size_t i = 0; i < count; i++) {
                const struct sw_sim_result *r = runs[i];
                for (size_t j = 0; j < r->region_count; j++) {
                    if (strcmp(r->regions[j].name, region) != 0)
                        continue;
                    char attrs[96];
                    snprintf(attrs, sizeof(attrs), "stroke=\"%s\" data-run=\"%zu\"", COLOUR(i),
                             i + 1);
                    polyline(&b, &c, r, &r->series.capacity_rps[j * r->series.buckets], attrs);
                }
            }
            put(&b, "</g>\n");
            chart_close(&b);
        }
        if (empty_len > 0) {
            put(&b, "<p>No demand and no capacity in: ");
            put_escaped(&b, empty_len < sizeof(empty) ? empty : "many regions");
            put(&b, ".</p>\n");
        }

        /* Latency percentiles with the SLO. */
        struct chart c = {x0, x1, first->slo_p95_ms * 1.2, 220};
        for (size_t i = 0; i < count; i++) {
            double m = series_max(runs[i]->series.p99, runs[i]->series.buckets);
            c.ymax = m > c.ymax ? m : c.ymax;
        }
        put(&b, "<h2>Latency</h2>\n<p>Request-weighted p50 (thin), p95 (thick) and p99 "
                "(dotted) per minute, averaged per point; red: the p95 SLO.</p>\n");
        chart_open(&b, &c, "latency (ms)", "");
        for (size_t i = 0; i < count; i++) {
            const struct sw_sim_result *r = runs[i];
            char attrs[128];
            snprintf(attrs, sizeof(attrs),
                     "stroke=\"%s\" stroke-width=\"1\" stroke-opacity=\"0.7\" data-run=\"%zu\"",
                     COLOUR(i), i + 1);
            polyline(&b, &c, r, r->series.p50, attrs);
            snprintf(attrs, sizeof(attrs), "stroke=\"%s\" stroke-width=\"2.5\" data-run=\"%zu\"",
                     COLOUR(i), i + 1);
            polyline(&b, &c, r, r->series.p95, attrs);
            snprintf(
                attrs, sizeof(attrs),
                "stroke=\"%s\" stroke-dasharray=\"2 3\" stroke-opacity=\"0.6\" data-run=\"%zu\"",
                COLOUR(i), i + 1);
            polyline(&b, &c, r, r->series.p99, attrs);
        }
        double slo_y = chart_y(&c, first->slo_p95_ms);
        put(&b, "<line class=\"slo\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", PAD_L, slo_y,
            CHART_W - PAD_R, slo_y);
        chart_close(&b);
    }

    /* Cumulative cost. */
    struct chart cost = {x0, x1, 0, 200};
    for (size_t i = 0; i < count; i++) {
        double m = series_max(runs[i]->series.cost_usd, runs[i]->series.buckets);
        cost.ymax = m > cost.ymax ? m : cost.ymax;
    }
    put(&b, "<h2>Cumulative cost</h2>\n");
    chart_open(&b, &cost, "USD spent so far", "");
    for (size_t i = 0; i < count; i++) {
        char attrs[96];
        snprintf(attrs, sizeof(attrs), "stroke=\"%s\" data-run=\"%zu\"", COLOUR(i), i + 1);
        polyline(&b, &cost, runs[i], runs[i]->series.cost_usd, attrs);
    }
    chart_close(&b);

    /* Lease events: acquired up, released (solid) and lost (hatched) down. */
    struct chart ev = {x0, x1, 0, 200};
    for (size_t i = 0; i < count; i++) {
        const struct sw_sim_series *se = &runs[i]->series;
        for (size_t k = 0; k < se->buckets; k++) {
            double up = se->acquired[k], down = se->released[k] + se->lost[k];
            double m = up > down ? up : down;
            ev.ymax = m > ev.ymax ? m : ev.ymax;
        }
    }
    put(&b, "<h2>Lease events</h2>\n<p>Per point: leases acquired (up), released and closed "
            "by providers (down, lighter).</p>\n");
    double top = nice_max(ev.ymax);
    double mid = ev.height / 2.0;
    double unit = (mid - PAD_T) / top;
    put(&b,
        "<figure><figcaption>lease events</figcaption>\n<svg xmlns=\"http://www.w3.org/2000/"
        "svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n",
        CHART_W, ev.height, CHART_W, ev.height);
    put(&b,
        "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#888\"/>"
        "<text x=\"%d\" y=\"%d\" class=\"yl\">+%g</text>"
        "<text x=\"%d\" y=\"%d\" class=\"yl\">&#8722;%g</text>\n",
        PAD_L, mid, CHART_W - PAD_R, mid, PAD_L - 4, PAD_T + 8, top, PAD_L - 4, ev.height - PAD_T,
        top);
    for (size_t i = 0; i < count; i++) {
        const struct sw_sim_result *r = runs[i];
        const struct sw_sim_series *se = &r->series;
        double w = (CHART_W - PAD_L - PAD_R) / (double)se->buckets / (double)count;
        put(&b, "<g fill=\"%s\" data-run=\"%zu\">\n", COLOUR(i), i + 1);
        for (size_t k = 0; k < se->buckets; k++) {
            double day = (r->start_s + (double)k * se->bucket_s) / 86400.0;
            double px = chart_x(&ev, day) + w * (double)i;
            if (se->acquired[k] > 0)
                put(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>", px,
                    mid - se->acquired[k] * unit, w > 1 ? w : 1, se->acquired[k] * unit);
            double down = se->released[k] + se->lost[k];
            if (down > 0)
                put(&b,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                    "fill-opacity=\"0.5\"/>",
                    px, mid, w > 1 ? w : 1, down * unit);
        }
        put(&b, "\n</g>\n");
    }
    chart_close(&b);
    put(&b, "<p>Written by steward simulate. Times are days of the trace.</p>\n</body></html>\n");
    return b.data;
}
