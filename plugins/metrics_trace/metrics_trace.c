/* metrics_trace — a recorded demand trace served as a metric (kind METRICS).
 *
 * `steward simulate` points the configuration's demand metric at this plugin, so a policy
 * reads simulated demand through the same ctx.metrics path it uses live. It also works in
 * `steward run`, to rehearse a policy against yesterday's traffic on a compressed clock.
 *
 * The file is the simulator's demand trace (docs/simulation.md): CSV with the header
 * time_s,region,rps (any column order), rows sorted by time_s, seconds from the trace's
 * origin. Query "rps" answers one sample per region of the file, labelled region=<name>
 * and sorted by name, whose value is the rate of the region's last row at or before now
 * (0 before its first row):
 *
 *   t = now_ms / 1000 - origin,   value = scale × rps(region, last row with time_s <= t)
 *
 * origin is epoch seconds (the simulator sets its start there); "relative": true starts
 * the trace when the plugin starts instead.
 * The simulator validates the file first with file:line:column messages (core/trace.c);
 * this reader checks the same rules so a live configuration fails as clearly. A plugin
 * cannot link the core, hence the second, small parser.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steward/swp_plugin.h"
#include "steward/swp_util.h"

#define MT_MAX_BYTES ((long)1 << 30)

struct series {
    char *region;
    double *time_s;
    double *rps;
    size_t count;
    size_t cap;
    size_t cursor; /* last index served: queries mostly move forward in time */
};

struct trace {
    const struct swp_host *host;
    struct series *series;
    size_t series_count;
    const char **label_values; /* series[i].region, typed for swp_sample */
    struct swp_sample *samples;
    double origin_s;
    double scale;
};

static const char *const region_label[] = {"region"};

static void trace_free(struct trace *t)
{
    for (size_t i = 0; i < t->series_count; i++) {
        free(t->series[i].region);
        free(t->series[i].time_s);
        free(t->series[i].rps);
    }
    free(t->series);
    free(t->label_values);
    free(t->samples);
    free(t);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

static struct series *series_for(struct trace *t, const char *region)
{
    for (size_t i = 0; i < t->series_count; i++)
        if (strcmp(t->series[i].region, region) == 0)
            return &t->series[i];
    t->series = swp_xrealloc(t->series, (t->series_count + 1) * sizeof(*t->series));
    struct series *s = &t->series[t->series_count++];
    memset(s, 0, sizeof(*s));
    size_t len = strlen(region);
    s->region = swp_xrealloc(NULL, len + 1);
    memcpy(s->region, region, len + 1);
    return s;
}

static int parse_number(const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (text[0] == '\0' || end == text || *end != '\0' || !isfinite(v) || errno == ERANGE || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* Splits line (modified in place) into exactly 3 trimmed fields. */
static int split3(char *line, char **f)
{
    int n = 0;
    char *p = line;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (n == 3)
            return -1;
        f[n++] = trim(p);
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return n == 3 ? 0 : -1;
}

static int load(struct trace *t, const char *path, struct swp_error *err)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        swp_set_error(err, SWP_ECONFIG, "file: cannot open %s: %s", path, strerror(errno));
        return SWP_ECONFIG;
    }
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t got;
    int line_no = 0, rc = 0;
    int map[3] = {-1, -1, -1}; /* time_s, region, rps → field index */
    bool header = false;
    double prev = -INFINITY;
    long bytes = 0;
    while ((got = getline(&line, &line_cap, file)) > 0) {
        line_no++;
        bytes += got;
        if (bytes > MT_MAX_BYTES) {
            swp_set_error(err, SWP_ECONFIG, "%s: larger than %ld MiB", path, MT_MAX_BYTES >> 20);
            rc = SWP_ECONFIG;
            break;
        }
        if (got > 0 && line[got - 1] == '\n')
            line[got - 1] = '\0';
        char *p = trim(line);
        if (*p == '\0' || *p == '#')
            continue;
        char *f[3];
        if (split3(p, f) < 0) {
            swp_set_error(err, SWP_ECONFIG, "%s:%d: expected 3 fields (time_s,region,rps)", path,
                          line_no);
            rc = SWP_ECONFIG;
            break;
        }
        if (!header) {
            static const char *const names[] = {"time_s", "region", "rps"};
            for (int i = 0; i < 3; i++)
                for (int k = 0; k < 3; k++)
                    if (strcmp(f[k], names[i]) == 0)
                        map[i] = k;
            if (map[0] < 0 || map[1] < 0 || map[2] < 0) {
                swp_set_error(err, SWP_ECONFIG, "%s:%d: expected the header time_s,region,rps",
                              path, line_no);
                rc = SWP_ECONFIG;
                break;
            }
            header = true;
            continue;
        }
        double time_s, rps;
        const char *region = f[map[1]];
        if (parse_number(f[map[0]], &time_s) < 0 || parse_number(f[map[2]], &rps) < 0 ||
            region[0] == '\0') {
            swp_set_error(err, SWP_ECONFIG, "%s:%d: expected time_s >= 0, a region and rps >= 0",
                          path, line_no);
            rc = SWP_ECONFIG;
            break;
        }
        if (time_s < prev) {
            swp_set_error(err, SWP_ECONFIG, "%s:%d: time_s goes back (rows must be sorted by time)",
                          path, line_no);
            rc = SWP_ECONFIG;
            break;
        }
        prev = time_s;
        struct series *s = series_for(t, region);
        if (s->count > 0 && s->time_s[s->count - 1] == time_s) {
            swp_set_error(err, SWP_ECONFIG, "%s:%d: region '%s' already has a row at this time",
                          path, line_no, region);
            rc = SWP_ECONFIG;
            break;
        }
        if (s->count == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            s->time_s = swp_xrealloc(s->time_s, s->cap * sizeof(double));
            s->rps = swp_xrealloc(s->rps, s->cap * sizeof(double));
        }
        s->time_s[s->count] = time_s;
        s->rps[s->count] = rps;
        s->count++;
    }
    if (rc == 0 && ferror(file)) {
        swp_set_error(err, SWP_ECONFIG, "%s: cannot read: %s", path, strerror(errno));
        rc = SWP_ECONFIG;
    }
    if (rc == 0 && t->series_count == 0) {
        swp_set_error(err, SWP_ECONFIG, "%s: no rows (expected time_s,region,rps)", path);
        rc = SWP_ECONFIG;
    }
    free(line);
    fclose(file);
    return rc;
}

static int by_region(const void *a, const void *b)
{
    return strcmp(((const struct series *)a)->region, ((const struct series *)b)->region);
}

static int mt_init(const struct swp_host *host, void **state, struct swp_error *err)
{
    struct trace *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return SWP_ENOMEM;
    t->host = host;
    t->origin_s = host->cfg_double(host, "origin");
    /* A live rehearsal plays the trace from now on. */
    if (host->cfg_bool(host, "relative"))
        t->origin_s = (double)host->now_ms(host) / 1000.0;
    t->scale = host->cfg_double(host, "scale");
    if (!isfinite(t->origin_s)) {
        swp_set_error(err, SWP_ECONFIG, "origin: expected epoch seconds");
        goto fail;
    }
    if (!(t->scale >= 0) || !isfinite(t->scale)) {
        swp_set_error(err, SWP_ECONFIG, "scale: expected a number >= 0");
        goto fail;
    }
    const char *file = host->cfg_str(host, "file");
    if (file == NULL) {
        swp_set_error(err, SWP_ECONFIG, "file: the demand trace (time_s,region,rps) is required");
        goto fail;
    }
    if (load(t, file, err) < 0)
        goto fail;
    qsort(t->series, t->series_count, sizeof(*t->series), by_region);
    t->label_values = swp_xrealloc(NULL, t->series_count * sizeof(char *));
    t->samples = swp_xrealloc(NULL, t->series_count * sizeof(*t->samples));
    for (size_t i = 0; i < t->series_count; i++)
        t->label_values[i] = t->series[i].region;
    host->log(host, SWP_LOG_INFO, "%zu regions from %s, origin %.0f, scale %g", t->series_count,
              file, t->origin_s, t->scale);
    *state = t;
    return 0;
fail:
    if (err != NULL)
        err->code = SWP_ECONFIG;
    trace_free(t);
    return SWP_ECONFIG;
}

static void mt_destroy(void *state)
{
    if (state != NULL)
        trace_free(state);
}

static double value_at(struct series *s, double t_s)
{
    if (s->count == 0 || t_s < s->time_s[0])
        return 0.0;
    size_t i = s->cursor < s->count ? s->cursor : 0;
    if (s->time_s[i] > t_s) {
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
    s->cursor = i;
    return s->rps[i];
}

static int mt_query(void *state, const char *query, swp_samples_cb done, void *ud)
{
    struct trace *t = state;
    if (query == NULL || done == NULL)
        return SWP_EINVAL;
    if (strcmp(query, "rps") != 0) {
        struct swp_error err;
        swp_set_error(&err, SWP_EINVAL, "metrics_trace: unknown query '%s' (known: rps)", query);
        done(ud, SWP_EINVAL, NULL, 0, &err);
        return 0;
    }
    double t_s = (double)t->host->now_ms(t->host) / 1000.0 - t->origin_s;
    for (size_t i = 0; i < t->series_count; i++) {
        t->samples[i] = (struct swp_sample){
            .label_names = region_label,
            .label_values = &t->label_values[i],
            .label_count = 1,
            .value = t->scale * value_at(&t->series[i], t_s),
        };
    }
    done(ud, 0, t->samples, t->series_count, NULL);
    return 0;
}

static const struct swp_config_entry mt_config[] = {
    {"file", SWP_CFG_PATH, NULL, true,
     "The demand trace: CSV time_s,region,rps, sorted by time_s (docs/simulation.md)."},
    {"origin", SWP_CFG_DOUBLE, "0", false,
     "Epoch seconds at which time_s = 0 (the simulator sets its start here)."},
    {"scale", SWP_CFG_DOUBLE, "1.0", false, "Multiplies every rate (what-if: 1.5 = 50% more)."},
    {"relative", SWP_CFG_BOOL, "false", false,
     "Start the trace when the plugin starts (time_s = 0 is now; overrides origin): replay "
     "recorded traffic live, e.g. `steward run --speed 50`."},
};

static const struct swp_metrics_ops mt_metrics_ops = {
    .size = sizeof(struct swp_metrics_ops),
    .query = mt_query,
};

static const struct swp_plugin mt_plugin = {
    .abi_major = SWP_ABI_MAJOR,
    .abi_minor = SWP_ABI_MINOR,
    .size = sizeof(struct swp_plugin),
    .name = "metrics_trace",
    .version = "1.0.0",
    .description = "A recorded demand trace (CSV time_s,region,rps) served as query \"rps\"",
    .kinds = SWP_KIND_METRICS,
    .config = mt_config,
    .config_count = sizeof(mt_config) / sizeof(mt_config[0]),
    .init = mt_init,
    .destroy = mt_destroy,
    .metrics = &mt_metrics_ops,
};

SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void);

SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void)
{
    return &mt_plugin;
}
