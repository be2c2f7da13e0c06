/* metrics_static — the smallest complete steward plugin, walked through in docs/plugins.md.
 *
 * A metrics plugin that answers every query with fixed values from its configuration:
 *
 *     "plugins": { "metrics_static": { "label": "region",
 *                                      "values": { "eu-west": 120, "as-east": 30 } } }
 *
 * It includes only the public ABI headers and libc, so it builds outside steward's tree:
 *     cc -shared -fPIC -fvisibility=hidden -I<steward>/core/include \
 *        -o swp_metrics_static.so metrics_static.c
 */
#include <stdlib.h>
#include <string.h>

#include <steward/swp_plugin.h>

#define MAX_VALUES 64

struct state {
    const struct swp_host *host;
    const char *label;                /* borrowed from the host until destroy */
    char *names[MAX_VALUES];          /* owned */
    double values[MAX_VALUES];
    size_t count;
};

/* The config value arrives as JSON text; this plugin parses the flat object
 * {"name": number, ...} by hand to stay dependency-free. */
static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static int parse_values(struct state *st, const char *json, struct swp_error *err)
{
    const char *p = skip_space(json);
    if (*p++ != '{')
        goto bad;
    for (p = skip_space(p); *p != '}'; p = skip_space(p)) {
        if (*p++ != '"')
            goto bad;
        const char *end = strchr(p, '"');
        if (end == NULL || st->count == MAX_VALUES)
            goto bad;
        size_t len = (size_t)(end - p);
        char *name = malloc(len + 1);
        if (name == NULL)
            goto bad;
        memcpy(name, p, len);
        name[len] = '\0';
        st->names[st->count++] = name;
        p = skip_space(end + 1);
        if (*p++ != ':')
            goto bad;
        char *num_end = NULL;
        st->values[st->count - 1] = strtod(p, &num_end);
        if (num_end == p)
            goto bad;
        p = skip_space(num_end);
        if (*p == ',')
            p++;
    }
    return SWP_OK;
bad:
    err->code = SWP_EINVAL;
    strcpy(err->msg, "values: expected an object of numbers, e.g. {\"eu-west\": 120}");
    return SWP_EINVAL;
}

static void destroy(void *opaque)
{
    struct state *st = opaque;
    for (size_t i = 0; i < st->count; i++)
        free(st->names[i]);
    free(st);
}

static int init(const struct swp_host *host, void **out, struct swp_error *err)
{
    struct state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return SWP_ENOMEM;
    st->host = host;
    st->label = host->cfg_str(host, "label");
    if (parse_values(st, host->cfg_json(host, "values"), err) < 0) {
        destroy(st);
        return err->code;
    }
    host->log(host, SWP_LOG_INFO, "serving %zu static values labelled '%s'", st->count,
              st->label);
    *out = st;
    return SWP_OK;
}

/* Ops may complete before returning; the host copes with that. */
static int query(void *opaque, const char *q, swp_samples_cb done, void *ud)
{
    struct state *st = opaque;
    struct swp_sample samples[MAX_VALUES];
    const char *label_names[1] = {st->label};
    for (size_t i = 0; i < st->count; i++) {
        samples[i].label_names = label_names;
        samples[i].label_values = (const char *const *)&st->names[i];
        samples[i].label_count = 1;
        samples[i].value = st->values[i];
    }
    done(ud, SWP_OK, samples, st->count, NULL);
    return SWP_OK;
}

static const struct swp_config_entry config_map[] = {
    {"label", SWP_CFG_STRING, "\"region\"", false, "label name of every sample"},
    {"values", SWP_CFG_OBJECT, NULL, true, "label value -> number"},
};

static const struct swp_metrics_ops metrics_ops = {
    .size = sizeof(struct swp_metrics_ops),
    .query = query,
};

static const struct swp_plugin descriptor = {
    .abi_major = SWP_ABI_MAJOR,
    .abi_minor = SWP_ABI_MINOR,
    .size = sizeof(struct swp_plugin),
    .name = "metrics_static",
    .version = "1.0.0",
    .description = "fixed metric values from configuration (example plugin)",
    .kinds = SWP_KIND_METRICS,
    .config = config_map,
    .config_count = sizeof(config_map) / sizeof(config_map[0]),
    .init = init,
    .destroy = destroy,
    .metrics = &metrics_ops,
};

SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void)
{
    return &descriptor;
}
