/* metrics_prometheus — PromQL queries against a Prometheus HTTP API (kind METRICS).
 *
 * Each query is one GET through the host's HTTP client:
 *   instant: /api/v1/query?query=<q>&time=<now>
 *   range:   /api/v1/query_range?query=<q>&start=<now - range_window>&end=<now>&step=<step>
 *            (the LAST point of each series becomes the sample: "the latest value over a
 *            window", robust to a scrape that has not landed yet)
 * with now taken from host->now_ms, so a simulated clock queries simulated time.
 *
 * Vector, matrix and scalar results become samples with every label of the series
 * (__name__ included when Prometheus returns it). Anything that is not a usable number is
 * an error the policy sees as `nil, err` — never a silent zero:
 *   - Prometheus `status: "error"` (errorType and error quoted),
 *   - a transport failure or timeout, a non-2xx status without a Prometheus error body,
 *   - a reply that is not the JSON the API documents,
 *   - no samples at all (SWP_ENOENT "query returned no samples"),
 *   - only NaN/±Inf values (they are skipped individually; if none is left it is an error).
 * The bearer token (bearer_token_env) goes only into the Authorization header; it is never
 * formatted into a log line or an error message.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "steward/swp_plugin.h"
#include "steward/swp_util.h"

#define MAX_BASE_URL 2048
#define MAX_ERROR_BODY 160

struct query_op;

struct prom {
    const struct swp_host *host;
    char *base_url;     /* without trailing '/' */
    char *auth_header;  /* "Authorization: Bearer ..." or NULL; never logged */
    uint32_t timeout_ms;
    bool range;
    int64_t range_window_ms;
    int64_t step_ms;
    struct query_op *ops; /* in flight */
};

struct query_op {
    struct query_op *next;
    struct prom *pm;
    uint64_t request_id;
    char *query;
    swp_samples_cb done;
    void *ud;
};

/* ---- URL building ----------------------------------------------------------------------- */

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

static void buf_add(struct buf *b, const char *text, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *grown = swp_xrealloc(b->data, cap);
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, text, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *text)
{
    buf_add(b, text, strlen(text));
}

/* RFC 3986 percent-encoding of everything but the unreserved characters: PromQL is full of
 * characters ({}, =~, ", [], +) that mean something else in a query string. */
static void buf_urlencode(struct buf *b, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            buf_add(b, (const char *)p, 1);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_add(b, esc, 3);
        }
    }
}

/* Seconds with milliseconds, as the API takes them (a float Unix time). */
static void buf_seconds(struct buf *b, int64_t ms)
{
    char text[48];
    const char *sign = ms < 0 ? "-" : "";
    int64_t abs_ms = ms < 0 ? -ms : ms;
    snprintf(text, sizeof(text), "%s%lld.%03lld", sign, (long long)(abs_ms / 1000),
             (long long)(abs_ms % 1000));
    buf_str(b, text);
}

static char *query_url(const struct prom *pm, const char *query, int64_t now_ms)
{
    struct buf b = {0};
    buf_str(&b, pm->base_url);
    buf_str(&b, pm->range ? "/api/v1/query_range?query=" : "/api/v1/query?query=");
    buf_urlencode(&b, query);
    if (pm->range) {
        buf_str(&b, "&start=");
        buf_seconds(&b, now_ms - pm->range_window_ms);
        buf_str(&b, "&end=");
        buf_seconds(&b, now_ms);
        buf_str(&b, "&step=");
        buf_seconds(&b, pm->step_ms);
    } else {
        buf_str(&b, "&time=");
        buf_seconds(&b, now_ms);
    }
    return b.data;
}

/* ---- reply parsing ----------------------------------------------------------------------- */

/* A sample value as Prometheus writes it: a JSON string ("1.5", "NaN", "+Inf"). Returns
 * false when it is not a number at all (a malformed reply); *finite says whether it can be
 * used. */
static bool parse_value(const cJSON *pair, double *out, bool *finite)
{
    if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2)
        return false;
    const cJSON *v = cJSON_GetArrayItem(pair, 1);
    if (!cJSON_IsString(v) || v->valuestring == NULL || v->valuestring[0] == '\0')
        return false;
    char *end = NULL;
    double value = strtod(v->valuestring, &end);
    if (end == v->valuestring || *end != '\0')
        return false;
    *out = value;
    *finite = isfinite(value);
    return true;
}

struct parsed {
    struct swp_sample *samples;
    const char **strings; /* label names and values, borrowed from the cJSON tree */
    size_t count;
    size_t nonfinite;
};

static void parsed_free(struct parsed *p)
{
    free(p->samples);
    free(p->strings);
}

/* Labels of one series: every member of its "metric" object, in the order given. */
static bool add_series(struct parsed *p, const cJSON *metric, double value, const char **strings,
                       size_t *used)
{
    if (metric != NULL && !cJSON_IsObject(metric))
        return false;
    size_t label_count = metric != NULL ? (size_t)cJSON_GetArraySize(metric) : 0;
    const char **names = strings + *used;
    const char **values = names + label_count;
    size_t i = 0;
    const cJSON *label;
    cJSON_ArrayForEach(label, metric)
    {
        if (!cJSON_IsString(label) || label->string == NULL)
            return false;
        names[i] = label->string;
        values[i] = label->valuestring;
        i++;
    }
    *used += 2 * label_count;
    p->samples[p->count++] = (struct swp_sample){
        .label_names = names,
        .label_values = values,
        .label_count = label_count,
        .value = value,
    };
    return true;
}

/* data.result of a vector or matrix reply → samples (matrix: the last point of each). */
static int parse_series(const cJSON *result, bool matrix, struct parsed *p, struct swp_error *err)
{
    size_t series = (size_t)cJSON_GetArraySize(result);
    size_t label_total = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, result)
    {
        const cJSON *metric = cJSON_GetObjectItemCaseSensitive(item, "metric");
        label_total += cJSON_IsObject(metric) ? (size_t)cJSON_GetArraySize(metric) : 0;
    }
    p->samples = swp_xcalloc(series, sizeof(*p->samples));
    p->strings = swp_xcalloc(2 * label_total, sizeof(*p->strings));
    size_t used = 0;
    cJSON_ArrayForEach(item, result)
    {
        const cJSON *metric = cJSON_GetObjectItemCaseSensitive(item, "metric");
        const cJSON *pair = NULL;
        if (matrix) {
            const cJSON *values = cJSON_GetObjectItemCaseSensitive(item, "values");
            if (!cJSON_IsArray(values))
                goto malformed;
            int points = cJSON_GetArraySize(values);
            if (points == 0)
                continue;
            pair = cJSON_GetArrayItem(values, points - 1);
        } else {
            pair = cJSON_GetObjectItemCaseSensitive(item, "value");
        }
        double value = 0;
        bool finite = false;
        if (!cJSON_IsObject(item) || !parse_value(pair, &value, &finite))
            goto malformed;
        if (!finite) {
            p->nonfinite++;
            continue;
        }
        if (!add_series(p, metric, value, p->strings, &used))
            goto malformed;
    }
    return 0;
malformed:
    swp_set_error(err, SWP_EIO,
                  "prometheus: malformed reply: a %s series without a "
                  "[time, \"value\"] %s or with non-string labels",
                  matrix ? "matrix" : "vector", matrix ? "point" : "pair");
    return SWP_EIO;
}

static int parse_reply(const char *body, size_t len, long http_status, struct parsed *p,
                       cJSON **tree_out, struct swp_error *err)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    *tree_out = root;
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(root, "status");
    if (!cJSON_IsObject(root) || !cJSON_IsString(status)) {
        if (http_status < 200 || http_status > 299) {
            /* A proxy or load balancer answered, not Prometheus: show what it said. */
            char excerpt[MAX_ERROR_BODY + 1];
            size_t n = len < MAX_ERROR_BODY ? len : MAX_ERROR_BODY;
            for (size_t i = 0; i < n; i++)
                excerpt[i] = (body[i] >= 0x20 && body[i] < 0x7f) ? body[i] : ' ';
            excerpt[n] = '\0';
            swp_set_error(err, SWP_EIO, "prometheus: HTTP %ld: %s", http_status,
                          n ? excerpt : "(empty body)");
            return SWP_EIO;
        }
        swp_set_error(err, SWP_EIO, "prometheus: malformed reply: %s",
                      root == NULL ? "not JSON" : "no \"status\" field");
        return SWP_EIO;
    }
    if (strcmp(status->valuestring, "success") != 0) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "errorType");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "error");
        const char *type_text = cJSON_IsString(type) ? type->valuestring : "error";
        swp_set_error(err, strcmp(type_text, "bad_data") == 0 ? SWP_EINVAL : SWP_EIO,
                      "prometheus: %s: %s (HTTP %ld)", type_text,
                      cJSON_IsString(msg) ? msg->valuestring : "no message", http_status);
        return err->code;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(data, "resultType");
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(data, "result");
    if (!cJSON_IsString(type) || result == NULL) {
        swp_set_error(err, SWP_EIO, "prometheus: malformed reply: no data.resultType/data.result");
        return SWP_EIO;
    }
    const char *kind = type->valuestring;
    if (strcmp(kind, "scalar") == 0) {
        double value = 0;
        bool finite = false;
        if (!parse_value(result, &value, &finite)) {
            swp_set_error(err, SWP_EIO,
                          "prometheus: malformed reply: scalar result is not "
                          "[time, \"value\"]");
            return SWP_EIO;
        }
        p->samples = swp_xcalloc(1, sizeof(*p->samples));
        if (finite)
            p->samples[p->count++] = (struct swp_sample){.value = value};
        else
            p->nonfinite++;
        return 0;
    }
    bool matrix = strcmp(kind, "matrix") == 0;
    if (!matrix && strcmp(kind, "vector") != 0) {
        swp_set_error(err, SWP_EINVAL,
                      "prometheus: the query returned a %s; expected a vector, "
                      "matrix or scalar",
                      kind);
        return SWP_EINVAL;
    }
    if (!cJSON_IsArray(result)) {
        swp_set_error(err, SWP_EIO, "prometheus: malformed reply: data.result is not an array");
        return SWP_EIO;
    }
    return parse_series(result, matrix, p, err);
}

/* ---- ops ------------------------------------------------------------------------------------ */

static void op_unlink(struct query_op *op)
{
    for (struct query_op **pp = &op->pm->ops; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == op) {
            *pp = op->next;
            return;
        }
    }
}

static void op_free(struct query_op *op)
{
    free(op->query);
    free(op);
}

static void on_reply(void *ud, int status, const struct swp_http_resp *resp)
{
    struct query_op *op = ud;
    struct prom *pm = op->pm;
    op_unlink(op);
    struct swp_error err = {0};
    struct parsed parsed = {0};
    cJSON *tree = NULL;
    int rc = 0;
    if (status == SWP_ECANCELED) {
        swp_set_error(&err, SWP_ECANCELED, "prometheus: query canceled");
        rc = SWP_ECANCELED;
    } else if (status == SWP_ETIMEDOUT) {
        swp_set_error(&err, SWP_ETIMEDOUT, "prometheus: no answer from %s within %u ms",
                      pm->base_url, pm->timeout_ms);
        rc = SWP_ETIMEDOUT;
    } else if (status == SWP_ETOOBIG) {
        swp_set_error(&err, SWP_ETOOBIG, "prometheus: the reply to '%.80s' is too large",
                      op->query);
        rc = SWP_ETOOBIG;
    } else if (status < 0 || resp == NULL) {
        swp_set_error(&err, status < 0 ? status : SWP_EHTTP,
                      "prometheus: cannot reach %s (connection failed)", pm->base_url);
        rc = err.code;
    } else {
        rc = parse_reply(resp->body, resp->body_len, resp->status, &parsed, &tree, &err);
        if (rc == 0 && parsed.count == 0) {
            if (parsed.nonfinite > 0)
                swp_set_error(&err, SWP_EINVAL,
                              "prometheus: every value is NaN or infinite "
                              "(%zu samples)",
                              parsed.nonfinite);
            else
                swp_set_error(&err, SWP_ENOENT, "prometheus: query returned no samples");
            rc = err.code;
        }
    }
    if (rc == 0 && parsed.nonfinite > 0)
        pm->host->log(pm->host, SWP_LOG_DEBUG, "'%.120s': skipped %zu NaN/Inf samples",
                      op->query, parsed.nonfinite);
    if (rc < 0 && rc != SWP_ECANCELED)
        pm->host->log(pm->host, SWP_LOG_DEBUG, "'%.120s': %s", op->query, err.msg);
    if (rc == 0)
        op->done(op->ud, 0, parsed.samples, parsed.count, NULL);
    else
        op->done(op->ud, rc, NULL, 0, &err);
    parsed_free(&parsed);
    cJSON_Delete(tree);
    op_free(op);
}

static int pm_query(void *state, const char *query, swp_samples_cb done, void *ud)
{
    struct prom *pm = state;
    if (query == NULL || query[0] == '\0' || done == NULL)
        return SWP_EINVAL;
    struct query_op *op = swp_xcalloc(1, sizeof(*op));
    op->pm = pm;
    op->query = swp_xstrdup(query);
    op->done = done;
    op->ud = ud;
    char *url = query_url(pm, query, pm->host->now_ms(pm->host));
    const char *headers[2] = {"Accept: application/json", pm->auth_header};
    struct swp_http_req req = {
        .size = sizeof(req),
        .method = "GET",
        .url = url,
        .headers = headers,
        .header_count = pm->auth_header != NULL ? 2 : 1,
        .timeout_ms = pm->timeout_ms,
    };
    op->next = pm->ops;
    pm->ops = op;
    op->request_id = pm->host->http_request(pm->host, &req, on_reply, op);
    free(url);
    if (op->request_id == 0) {
        op_unlink(op);
        op_free(op);
        /* No HTTP (a simulation without a loop) or an unusable URL. */
        return SWP_ENOTSUP;
    }
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static void pm_free(struct prom *pm)
{
    free(pm->base_url);
    if (pm->auth_header != NULL) {
        /* Do not leave the token in freed heap memory. */
        volatile char *p = pm->auth_header;
        while (*p)
            *p++ = '\0';
        free(pm->auth_header);
    }
    free(pm);
}

static int pm_init(const struct swp_host *host, void **state, struct swp_error *err)
{
    const char *base = host->cfg_str(host, "base_url");
    if (base == NULL || (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)) {
        swp_set_error(err, SWP_ECONFIG,
                      "base_url: expected an http:// or https:// URL such as "
                      "\"http://prometheus:9090\"");
        return SWP_ECONFIG;
    }
    size_t len = strlen(base);
    if (len > MAX_BASE_URL || strpbrk(base, "?# \t\r\n") != NULL) {
        swp_set_error(err, SWP_ECONFIG,
                      "base_url: expected a URL without query, fragment or "
                      "spaces, up to %d characters",
                      MAX_BASE_URL);
        return SWP_ECONFIG;
    }
    int64_t timeout = host->cfg_int(host, "timeout");
    int64_t window = host->cfg_int(host, "range_window");
    int64_t step = host->cfg_int(host, "step");
    if (timeout <= 0 || timeout > 600000) {
        swp_set_error(err, SWP_ECONFIG, "timeout: expected a duration between 1ms and 10m");
        return SWP_ECONFIG;
    }
    if (window <= 0 || step <= 0 || step > window) {
        swp_set_error(err, SWP_ECONFIG,
                      "range_window and step: expected durations > 0 with "
                      "step <= range_window");
        return SWP_ECONFIG;
    }
    struct prom *pm = swp_xcalloc(1, sizeof(*pm));
    pm->host = host;
    while (len > 0 && base[len - 1] == '/')
        len--;
    pm->base_url = swp_xcalloc(1, len + 1);
    memcpy(pm->base_url, base, len);
    pm->timeout_ms = (uint32_t)timeout;
    pm->range = host->cfg_bool(host, "range");
    pm->range_window_ms = window;
    pm->step_ms = step;
    const char *token = host->cfg_str(host, "bearer_token_env");
    if (token != NULL) {
        if (strpbrk(token, "\r\n") != NULL) {
            swp_set_error(err, SWP_ECONFIG, "bearer_token_env: the token holds a line break");
            pm_free(pm);
            return SWP_ECONFIG;
        }
        size_t size = strlen("Authorization: Bearer ") + strlen(token) + 1;
        pm->auth_header = swp_xcalloc(1, size);
        snprintf(pm->auth_header, size, "Authorization: Bearer %s", token);
    }
    host->log(host, SWP_LOG_INFO, "%s, %s queries, timeout %lld ms%s", pm->base_url,
              pm->range ? "range" : "instant", (long long)timeout,
              pm->auth_header != NULL ? ", bearer token set" : "");
    *state = pm;
    return 0;
}

static void pm_destroy(void *state)
{
    struct prom *pm = state;
    if (pm == NULL)
        return;
    /* The host cancelled our requests before destroy (on_reply ran for each); anything
     * still listed here never reached the host's HTTP client. */
    while (pm->ops != NULL) {
        struct query_op *op = pm->ops;
        pm->ops = op->next;
        struct swp_error err;
        swp_set_error(&err, SWP_ECANCELED, "prometheus: plugin destroyed");
        op->done(op->ud, SWP_ECANCELED, NULL, 0, &err);
        op_free(op);
    }
    pm_free(pm);
}

static const struct swp_config_entry pm_config[] = {
    {"base_url", SWP_CFG_STRING, NULL, true,
     "Prometheus' base URL, e.g. \"http://prometheus:9090\" (the API is under /api/v1)."},
    {"bearer_token_env", SWP_CFG_SECRET_ENV, NULL, false,
     "Environment variable holding a bearer token sent as \"Authorization: Bearer ...\"."},
    {"timeout", SWP_CFG_DURATION, "\"10s\"", false,
     "Give up on a query after this long (the policy then sees nil and the reason)."},
    {"range", SWP_CFG_BOOL, "false", false,
     "Use /api/v1/query_range over range_window and return each series' last value."},
    {"range_window", SWP_CFG_DURATION, "\"5m\"", false,
     "How far back a range query looks (only with range = true)."},
    {"step", SWP_CFG_DURATION, "\"30s\"", false,
     "Resolution of a range query (only with range = true)."},
};

static const struct swp_metrics_ops pm_metrics_ops = {
    .size = sizeof(struct swp_metrics_ops),
    .query = pm_query,
};

static const struct swp_plugin pm_plugin = {
    .abi_major = SWP_ABI_MAJOR,
    .abi_minor = SWP_ABI_MINOR,
    .size = sizeof(struct swp_plugin),
    .name = "metrics_prometheus",
    .version = "1.0.0",
    .description = "PromQL instant or range queries against a Prometheus HTTP API",
    .kinds = SWP_KIND_METRICS,
    .config = pm_config,
    .config_count = sizeof(pm_config) / sizeof(pm_config[0]),
    .init = pm_init,
    .destroy = pm_destroy,
    .metrics = &pm_metrics_ops,
};

SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void)
{
    return &pm_plugin;
}
