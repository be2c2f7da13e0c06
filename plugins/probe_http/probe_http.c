/* probe_http — active HTTP(S) health probes (kind PROBE).
 *
 * probe(state, url) sends one GET through the host's HTTP client (libcurl multi on the
 * loop: any number of probes are in flight at once on the one thread) and reports
 * whether the answer is healthy, with curl's timings in milliseconds from the start of
 * the request: connect (TCP connected, DNS included), tls (TLS handshake done; 0 for
 * plain HTTP), first_byte and total. Redirects are not followed, so a 3xx counts as an
 * answer of its own.
 *
 * Healthy means: a response arrived within `timeout` and its status is in
 * `expected_status` (default: any 2xx or 3xx). The probe's done callback reports status 0
 * with the result whenever the target was probed, healthy or not (a timeout or a refused
 * connection is an unhealthy result, not a failed probe), and SWP_ECANCELED when the
 * plugin is destroyed first.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "steward/swp_plugin.h"
#include "steward/swp_util.h"

#define MAX_EXPECTED 32
/* Health endpoints answer small bodies; a large page is still an answer, so the cap is
 * generous and exceeding it is reported as such rather than as a dead target. */
#define MAX_BODY_BYTES (1u << 20)

struct probe_op;

struct prober {
    const struct swp_host *host;
    uint32_t timeout_ms;
    long expected[MAX_EXPECTED];
    size_t expected_count;       /* 0: 200..399 */
    char *user_agent_header;
    struct probe_op *ops;        /* in flight */
    uint64_t probes;
    uint64_t failures;
};

/* In flight: on a list with both links, so that each answer unlinks its op in constant
 * time (with a singly linked list, a round of 500 probes cost 125,000 steps to unlink). */
struct probe_op {
    struct probe_op *next;
    struct probe_op *prev;
    struct prober *pr;
    uint64_t request_id;
    char *target;
    swp_probe_cb done;
    void *ud;
};

static bool status_expected(const struct prober *pr, long status)
{
    if (pr->expected_count == 0)
        return status >= 200 && status <= 399;
    for (size_t i = 0; i < pr->expected_count; i++)
        if (pr->expected[i] == status)
            return true;
    return false;
}

static void op_link(struct probe_op *op)
{
    struct prober *pr = op->pr;
    op->prev = NULL;
    op->next = pr->ops;
    if (pr->ops != NULL)
        pr->ops->prev = op;
    pr->ops = op;
}

static void op_unlink(struct probe_op *op)
{
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        op->pr->ops = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    op->next = op->prev = NULL;
}

static void op_free(struct probe_op *op)
{
    free(op->target);
    free(op);
}

static void on_reply(void *ud, int status, const struct swp_http_resp *resp)
{
    struct probe_op *op = ud;
    struct prober *pr = op->pr;
    op_unlink(op);
    char error[160] = "";
    struct swp_probe_result result = {.target = op->target};
    if (resp != NULL) {
        result.http_status = resp->status;
        result.connect_ms = resp->connect_s * 1000.0;
        result.tls_ms = resp->tls_s * 1000.0;
        result.first_byte_ms = resp->first_byte_s * 1000.0;
        result.total_ms = resp->total_s * 1000.0;
    }
    int rc = 0;
    if (status == SWP_ECANCELED) {
        rc = SWP_ECANCELED;
        snprintf(error, sizeof(error), "probe canceled");
    } else if (status == SWP_ETIMEDOUT) {
        snprintf(error, sizeof(error), "no answer within %u ms", pr->timeout_ms);
    } else if (status == SWP_ETOOBIG) {
        snprintf(error, sizeof(error), "answer larger than %u bytes", MAX_BODY_BYTES);
    } else if (status < 0 || resp == NULL) {
        snprintf(error, sizeof(error), "connection failed (refused, unresolvable or TLS)");
    } else if (!status_expected(pr, resp->status)) {
        snprintf(error, sizeof(error), "HTTP %ld", resp->status);
    } else {
        result.ok = true;
    }
    result.error = result.ok ? NULL : error;
    if (rc == 0) {
        pr->probes++;
        if (!result.ok)
            pr->failures++;
    }
    op->done(op->ud, rc, &result);
    op_free(op);
}

static int pr_probe(void *state, const char *target, swp_probe_cb done, void *ud)
{
    struct prober *pr = state;
    if (target == NULL || done == NULL)
        return SWP_EINVAL;
    if (strncmp(target, "http://", 7) != 0 && strncmp(target, "https://", 8) != 0)
        return SWP_EINVAL;
    struct probe_op *op = swp_xcalloc(1, sizeof(*op));
    op->pr = pr;
    op->target = swp_xstrdup(target);
    op->done = done;
    op->ud = ud;
    const char *headers[] = {pr->user_agent_header};
    struct swp_http_req req = {
        .size = sizeof(req),
        .method = "GET",
        .url = target,
        .headers = headers,
        .header_count = 1,
        .timeout_ms = pr->timeout_ms,
        .max_response_bytes = MAX_BODY_BYTES,
    };
    op_link(op);
    op->request_id = pr->host->http_request(pr->host, &req, on_reply, op);
    if (op->request_id == 0) {
        op_unlink(op);
        op_free(op);
        /* No HTTP here (a simulation without a loop) or a URL curl refuses. */
        return SWP_ENOTSUP;
    }
    return 0;
}

static int load_expected(struct prober *pr, const char *json, struct swp_error *err)
{
    if (json == NULL)
        return 0;
    cJSON *root = cJSON_Parse(json);
    int rc = 0;
    if (!cJSON_IsArray(root) || cJSON_GetArraySize(root) > MAX_EXPECTED) {
        rc = SWP_ECONFIG;
        goto out;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        if (!cJSON_IsNumber(item) || item->valuedouble < 100 || item->valuedouble > 599 ||
            item->valuedouble != (double)(long)item->valuedouble) {
            rc = SWP_ECONFIG;
            goto out;
        }
        pr->expected[pr->expected_count++] = (long)item->valuedouble;
    }
out:
    if (rc < 0)
        swp_set_error(err, rc,
                      "expected_status: expected an array of up to %d HTTP status codes "
                      "(100..599), e.g. [200, 204]",
                      MAX_EXPECTED);
    cJSON_Delete(root);
    return rc;
}

static void pr_free(struct prober *pr)
{
    free(pr->user_agent_header);
    free(pr);
}

static int pr_init(const struct swp_host *host, void **state, struct swp_error *err)
{
    struct prober *pr = swp_xcalloc(1, sizeof(*pr));
    pr->host = host;
    int64_t timeout = host->cfg_int(host, "timeout");
    if (timeout <= 0 || timeout > 120000) {
        swp_set_error(err, SWP_ECONFIG, "timeout: expected a duration between 1ms and 2m");
        pr_free(pr);
        return SWP_ECONFIG;
    }
    pr->timeout_ms = (uint32_t)timeout;
    if (load_expected(pr, host->cfg_json(host, "expected_status"), err) < 0) {
        pr_free(pr);
        return SWP_ECONFIG;
    }
    const char *agent = host->cfg_str(host, "user_agent");
    if (agent == NULL || strpbrk(agent, "\r\n") != NULL || strlen(agent) > 200) {
        swp_set_error(err, SWP_ECONFIG, "user_agent: expected one line of at most 200 characters");
        pr_free(pr);
        return SWP_ECONFIG;
    }
    size_t size = strlen("User-Agent: ") + strlen(agent) + 1;
    pr->user_agent_header = swp_xcalloc(1, size);
    snprintf(pr->user_agent_header, size, "User-Agent: %s", agent);
    host->log(host, SWP_LOG_INFO, "timeout %u ms, healthy statuses %s", pr->timeout_ms,
              pr->expected_count ? "as configured" : "200..399");
    *state = pr;
    return 0;
}

static void pr_destroy(void *state)
{
    struct prober *pr = state;
    if (pr == NULL)
        return;
    /* The host cancelled our requests before destroy (on_reply ran for each); anything
     * still listed never reached its HTTP client. */
    while (pr->ops != NULL) {
        struct probe_op *op = pr->ops;
        op_unlink(op);
        struct swp_probe_result result = {.target = op->target, .error = "probe canceled"};
        op->done(op->ud, SWP_ECANCELED, &result);
        op_free(op);
    }
    pr->host->log(pr->host, SWP_LOG_DEBUG, "%llu probes, %llu unhealthy answers",
                  (unsigned long long)pr->probes, (unsigned long long)pr->failures);
    pr_free(pr);
}

static const struct swp_config_entry pr_config[] = {
    {"timeout", SWP_CFG_DURATION, "\"5s\"", false,
     "A target that has not answered after this long is unhealthy."},
    {"expected_status", SWP_CFG_ARRAY, NULL, false,
     "HTTP statuses that count as healthy, e.g. [200, 204]; default any 2xx or 3xx."},
    {"user_agent", SWP_CFG_STRING, "\"steward-probe/1.0\"", false,
     "User-Agent header of the probes (to tell them apart in access logs)."},
};

static const struct swp_probe_ops pr_probe_ops = {
    .size = sizeof(struct swp_probe_ops),
    .probe = pr_probe,
};

static const struct swp_plugin pr_plugin = {
    .abi_major = SWP_ABI_MAJOR,
    .abi_minor = SWP_ABI_MINOR,
    .size = sizeof(struct swp_plugin),
    .name = "probe_http",
    .version = "1.0.0",
    .description = "HTTP(S) health probes with connect/TLS/first-byte/total timings",
    .kinds = SWP_KIND_PROBE,
    .config = pr_config,
    .config_count = sizeof(pr_config) / sizeof(pr_config[0]),
    .init = pr_init,
    .destroy = pr_destroy,
    .probe = &pr_probe_ops,
};

SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void)
{
    return &pr_plugin;
}
