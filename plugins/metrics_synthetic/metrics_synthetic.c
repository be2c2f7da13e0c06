/* metrics_synthetic — a synthetic daily demand curve per region (kind METRICS).
 *
 * Feeds the demo and the tests with traffic that rises and falls like real users do: each
 * region peaks at its own hour of the (possibly compressed) day. Query "rps" answers one
 * sample per region, labelled region=<name>:
 *
 *   value = base + (peak - base) * ((1 + cos(2π (phase - peak_phase))) / 2)^2
 *   phase = (now mod period) / period,  peak_phase = peak_hour_utc / 24
 *
 * Squaring the raised cosine keeps the curve near base for most of the day with a clear
 * daytime hump, closer to real diurnal traffic than a plain sine. Time comes only from
 * host->now_ms and noise only from host->random_u64, so a simulation replays exactly.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "steward/swp_plugin.h"
#include "steward/swp_util.h"

#define MS_PI 3.14159265358979323846

struct region {
    double base;
    double peak;
    double peak_hour_utc;
};

struct metrics {
    const struct swp_host *host;
    struct region *regions;
    char **names;              /* owned, parallel to regions */
    const char **label_values; /* the same strings, typed for swp_sample */
    size_t region_count;
    uint64_t period_ms;
    double noise;
};

static const char *const region_label[] = {"region"};

static void metrics_free(struct metrics *mt)
{
    for (size_t i = 0; i < mt->region_count; i++)
        free(mt->names[i]);
    free(mt->names);
    free(mt->label_values);
    free(mt->regions);
    free(mt);
}

static int region_number(const cJSON *obj, const char *region, const char *field, bool required,
                         double fallback, double *out, struct swp_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (item == NULL && !required) {
        *out = fallback;
        return 0;
    }
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)) {
        swp_set_error(err, SWP_ECONFIG, "regions.%s.%s: expected number", region, field);
        return SWP_ECONFIG;
    }
    *out = item->valuedouble;
    return 0;
}

static int regions_load(struct metrics *mt, const char *json, struct swp_error *err)
{
    int rc = SWP_ECONFIG;
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(root) || cJSON_GetArraySize(root) == 0) {
        swp_set_error(err, SWP_ECONFIG,
                      "regions: expected an object such as {\"eu-west\": {\"base\": 20, "
                      "\"peak\": 400, \"peak_hour_utc\": 13}}");
        goto out;
    }
    size_t count = (size_t)cJSON_GetArraySize(root);
    mt->regions = swp_xcalloc(count, sizeof(*mt->regions));
    mt->names = swp_xcalloc(count, sizeof(*mt->names));
    mt->label_values = swp_xcalloc(count, sizeof(*mt->label_values));
    const cJSON *entry;
    cJSON_ArrayForEach(entry, root)
    {
        const char *name = entry->string;
        if (!cJSON_IsObject(entry)) {
            swp_set_error(err, SWP_ECONFIG, "regions.%s: expected object with base and peak", name);
            goto out;
        }
        struct region *r = &mt->regions[mt->region_count];
        if (region_number(entry, name, "base", true, 0, &r->base, err) < 0 ||
            region_number(entry, name, "peak", true, 0, &r->peak, err) < 0 ||
            region_number(entry, name, "peak_hour_utc", false, 12, &r->peak_hour_utc, err) < 0)
            goto out;
        if (r->base < 0 || r->peak < 0) {
            swp_set_error(err, SWP_ECONFIG, "regions.%s: base and peak must be >= 0", name);
            goto out;
        }
        if (r->peak_hour_utc < 0 || r->peak_hour_utc > 24) {
            swp_set_error(err, SWP_ECONFIG, "regions.%s.peak_hour_utc: expected 0..24", name);
            goto out;
        }
        size_t len = strlen(name);
        mt->names[mt->region_count] = swp_xcalloc(1, len + 1);
        memcpy(mt->names[mt->region_count], name, len);
        mt->label_values[mt->region_count] = mt->names[mt->region_count];
        mt->region_count++;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

static int mt_init(const struct swp_host *host, void **state, struct swp_error *err)
{
    struct metrics *mt = swp_xcalloc(1, sizeof(*mt));
    mt->host = host;
    int64_t period = host->cfg_int(host, "period");
    mt->noise = host->cfg_double(host, "noise");
    if (period <= 0) {
        swp_set_error(err, SWP_ECONFIG, "period: expected a duration > 0");
        goto fail;
    }
    if (!(mt->noise >= 0 && mt->noise <= 1)) {
        swp_set_error(err, SWP_ECONFIG, "noise: expected a number in 0..1");
        goto fail;
    }
    mt->period_ms = (uint64_t)period;
    if (regions_load(mt, host->cfg_json(host, "regions"), err) < 0)
        goto fail;
    host->log(host, SWP_LOG_INFO, "%zu regions, period %lld ms, noise %g", mt->region_count,
              (long long)period, mt->noise);
    *state = mt;
    return 0;
fail:
    metrics_free(mt);
    return SWP_ECONFIG;
}

static void mt_destroy(void *state)
{
    if (state)
        metrics_free(state);
}

static double demand(const struct metrics *mt, const struct region *r, int64_t now)
{
    int64_t period = (int64_t)mt->period_ms;
    int64_t offset = ((now % period) + period) % period;
    double phase = (double)offset / (double)period;
    double shape = (1.0 + cos(2.0 * MS_PI * (phase - r->peak_hour_utc / 24.0))) / 2.0;
    return r->base + (r->peak - r->base) * shape * shape;
}

static int mt_query(void *state, const char *query, swp_samples_cb done, void *ud)
{
    struct metrics *mt = state;
    if (query == NULL || done == NULL)
        return SWP_EINVAL;
    if (strcmp(query, "rps") != 0) {
        struct swp_error err;
        swp_set_error(&err, SWP_EINVAL, "metrics_synthetic: unknown query '%s' (known: rps)",
                      query);
        done(ud, SWP_EINVAL, NULL, 0, &err);
        return 0;
    }
    int64_t now = mt->host->now_ms(mt->host);
    struct swp_sample *samples = swp_xcalloc(mt->region_count, sizeof(*samples));
    for (size_t i = 0; i < mt->region_count; i++) {
        double value = demand(mt, &mt->regions[i], now);
        if (mt->noise > 0) {
            double uniform = (double)(mt->host->random_u64(mt->host) >> 11) * 0x1.0p-53;
            value *= 1.0 + mt->noise * (2.0 * uniform - 1.0);
        }
        samples[i] = (struct swp_sample){
            .label_names = region_label,
            .label_values = &mt->label_values[i],
            .label_count = 1,
            .value = value,
        };
    }
    done(ud, 0, samples, mt->region_count, NULL);
    free(samples);
    return 0;
}

static const struct swp_config_entry mt_config[] = {
    {"regions", SWP_CFG_OBJECT, NULL, true,
     "Per region {\"base\": rps at the quietest hour, \"peak\": rps at the busiest, "
     "\"peak_hour_utc\": 0..24 (default 12)}."},
    {"period", SWP_CFG_DURATION, "\"1d\"", false,
     "Length of one simulated day; the demo compresses it (e.g. \"10m\")."},
    {"noise", SWP_CFG_DOUBLE, "0.0", false,
     "Relative noise: each value is multiplied by 1 ± noise (uniform, seeded)."},
};

static const struct swp_metrics_ops mt_metrics_ops = {
    .size = sizeof(struct swp_metrics_ops),
    .query = mt_query,
};

static const struct swp_plugin mt_plugin = {
    .abi_major = SWP_ABI_MAJOR,
    .abi_minor = SWP_ABI_MINOR,
    .size = sizeof(struct swp_plugin),
    .name = "metrics_synthetic",
    .version = "1.0.0",
    .description = "Synthetic daily demand curve per region (query \"rps\")",
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
