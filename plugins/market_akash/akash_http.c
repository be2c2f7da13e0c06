/* akash_http.c — one Console call through the host's HTTP client, with bounded retries.
 *
 * 429 is always retried (a rate-limited request was not processed). 5xx, timeouts and
 * transport errors (and 2xx bodies that are not JSON) are retried only for idempotent
 * requests: a POST that created a deployment and then failed on the way back must not be
 * sent again blindly (the caller reconciles first). Waits grow exponentially from
 * backoff_base to backoff_max with equal jitter from host->random_u64 (so a simulation
 * replays), and never undercut the server's Retry-After. The API key travels only in the
 * request header: nothing here logs headers, and server texts are sanitized before they
 * reach a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akash.h"

/* A Retry-After beyond this is treated as this: a marketplace asking for an hour's pause
 * should surface as an error on the action, not as an acquire stuck until its deadline. */
#define RETRY_AFTER_CAP_MS ((uint64_t)15 * 60 * 1000)
#define MAX_RESPONSE_BYTES ((size_t)16 << 20)

struct akash_call {
    struct akash_client *client;
    struct akash_call *prev;
    struct akash_call *next;
    char *method;
    char *path;
    char *url;
    char *body;
    bool auth;
    enum akash_retry retry;
    akash_call_cb cb;
    void *ud;
    uint64_t request_id;
    uint64_t timer_id;
    int attempts;
    bool cancelling;
};

static void call_unlink(struct akash_call *call)
{
    struct akash_client *c = call->client;
    if (call->prev)
        call->prev->next = call->next;
    else if (c->calls == call)
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

static void call_free(struct akash_call *call)
{
    free(call->method);
    free(call->path);
    free(call->url);
    free(call->body);
    free(call);
}

static void call_deliver(struct akash_call *call, struct akash_reply *reply)
{
    call_unlink(call);
    reply->attempts = call->attempts;
    call->cb(call->ud, reply);
    cJSON_Delete(reply->root);
    call_free(call);
}

uint64_t akash_backoff_ms(const struct akash_client *c, int attempt, int64_t retry_after_ms)
{
    uint64_t delay = c->backoff_base_ms ? c->backoff_base_ms : 1;
    for (int i = 1; i < attempt && delay < c->backoff_max_ms; i++)
        delay *= 2;
    if (c->backoff_max_ms > 0 && delay > c->backoff_max_ms)
        delay = c->backoff_max_ms;
    /* Equal jitter: half fixed, half random, so retries from many acquires spread out
     * but each still waits at least half the exponential step. */
    uint64_t half = delay / 2;
    uint64_t jittered = half + c->host->random_u64(c->host) % (delay - half + 1);
    if (retry_after_ms > 0) {
        uint64_t asked = (uint64_t)retry_after_ms;
        if (asked > RETRY_AFTER_CAP_MS)
            asked = RETRY_AFTER_CAP_MS;
        if (jittered < asked)
            jittered = asked;
    }
    return jittered;
}

static void on_http(void *ud, int status, const struct swp_http_resp *resp);

static bool call_send(struct akash_call *call)
{
    const struct akash_client *c = call->client;
    const char *headers[3];
    size_t count = 0;
    headers[count++] = "accept: application/json";
    if (call->body != NULL)
        headers[count++] = "content-type: application/json";
    if (call->auth)
        headers[count++] = c->auth_header;
    struct swp_http_req req = {
        .size = sizeof(req),
        .method = call->method,
        .url = call->url,
        .headers = headers,
        .header_count = count,
        .body = call->body,
        .body_len = call->body ? strlen(call->body) : 0,
        .timeout_ms = c->timeout_ms,
        .max_response_bytes = MAX_RESPONSE_BYTES,
        /* What we retry ourselves may also be re-sent by the host's client: a POST on a
         * kept connection (the lease call, which only re-sends the manifest when repeated)
         * instead of a new connection each. A create or a deposit stays off. */
        .idempotent = call->retry == AKASH_RETRY_SAFE,
    };
    call->attempts++;
    call->request_id = c->host->http_request(c->host, &req, on_http, call);
    return call->request_id != 0;
}

static void on_retry_timer(void *ud)
{
    struct akash_call *call = ud;
    call->timer_id = 0;
    if (!call_send(call)) {
        struct akash_reply reply = {.status = SWP_EIO};
        snprintf(reply.msg, sizeof(reply.msg), "%s %s: the host refused the request", call->method,
                 call->path);
        call_deliver(call, &reply);
    }
}

/* Schedule another attempt; false when the budget is spent or no timer could be armed. */
static bool call_retry(struct akash_call *call, const char *why, int64_t retry_after_ms)
{
    struct akash_client *c = call->client;
    if (call->attempts > c->max_retries)
        return false;
    uint64_t delay = akash_backoff_ms(c, call->attempts, retry_after_ms);
    c->host->log(c->host, SWP_LOG_INFO, "%s %s: %s; retry %d/%d in %llu ms", call->method,
                 call->path, why, call->attempts, c->max_retries, (unsigned long long)delay);
    call->timer_id = c->host->timer_start(c->host, delay, on_retry_timer, call);
    return call->timer_id != 0;
}

static void on_http(void *ud, int status, const struct swp_http_resp *resp)
{
    struct akash_call *call = ud;
    call->request_id = 0;
    if (call->cancelling) {
        call_unlink(call);
        call_free(call);
        return;
    }
    struct akash_reply reply = {.status = status};
    char why[96];
    if (status < 0) {
        const char *text = status == SWP_ETIMEDOUT   ? "timed out"
                           : status == SWP_ETOOBIG   ? "reply too large"
                           : status == SWP_ECANCELED ? "cancelled"
                                                     : "transport error";
        bool retryable =
            call->retry == AKASH_RETRY_SAFE && (status == SWP_ETIMEDOUT || status == SWP_EHTTP);
        snprintf(why, sizeof(why), "%s", text);
        if (retryable && call_retry(call, why, 0))
            return;
        reply.uncertain = call->retry != AKASH_RETRY_SAFE &&
                          (status == SWP_ETIMEDOUT || status == SWP_EHTTP || status == SWP_ETOOBIG);
        snprintf(reply.msg, sizeof(reply.msg), "%s %s: %s (after %d attempt%s)", call->method,
                 call->path, text, call->attempts, call->attempts == 1 ? "" : "s");
        call_deliver(call, &reply);
        return;
    }
    long http = resp ? resp->status : 0;
    int64_t retry_after = resp ? resp->retry_after_ms : 0;
    bool server_error = http >= 500 && http <= 599;
    if ((http == 429 && call->retry != AKASH_RETRY_NONE) ||
        (server_error && call->retry == AKASH_RETRY_SAFE)) {
        snprintf(why, sizeof(why), "HTTP %ld", http);
        if (call_retry(call, why, retry_after))
            return;
    }
    reply.http_status = http;
    reply.body = resp && resp->body ? resp->body : "";
    reply.body_len = resp ? resp->body_len : 0;
    reply.uncertain = server_error && call->retry != AKASH_RETRY_SAFE;
    reply.retry_after_ms = retry_after;
    if (reply.body_len > 0)
        reply.root = akash_json_parse(reply.body, reply.body_len);
    /* A 2xx body cut short or replaced by a proxy's page is a transport accident: asking an
     * idempotent call again is safe, and failing instead would fail the whole action (at
     * start, the recovery listing, which stops steward). */
    if (reply.root == NULL && reply.body_len > 0 && http >= 200 && http <= 299 &&
        call->retry == AKASH_RETRY_SAFE) {
        snprintf(why, sizeof(why), "malformed JSON reply (HTTP %ld)", http);
        if (call_retry(call, why, 0))
            return;
    }
    call_deliver(call, &reply);
}

struct akash_call *akash_call_start(struct akash_client *client, const char *method,
                                    const char *path, const char *body, bool auth,
                                    enum akash_retry retry, akash_call_cb cb, void *ud)
{
    struct akash_call *call = swp_xcalloc(1, sizeof(*call));
    call->client = client;
    call->method = swp_xstrdup(method);
    call->path = swp_xstrdup(path);
    call->url = swp_xasprintf("%s%s", client->base_url, path);
    call->body = swp_xstrdup(body);
    call->auth = auth;
    call->retry = retry;
    call->cb = cb;
    call->ud = ud;
    call->next = client->calls;
    if (client->calls)
        client->calls->prev = call;
    client->calls = call;
    if (!call_send(call)) {
        call_unlink(call);
        call_free(call);
        return NULL;
    }
    return call;
}

void akash_call_cancel(struct akash_call *call)
{
    if (call == NULL)
        return;
    const struct swp_host *host = call->client->host;
    if (call->request_id != 0) {
        /* The host fires on_http with SWP_ECANCELED before returning; it frees the call. */
        call->cancelling = true;
        host->http_cancel(host, call->request_id);
        return;
    }
    if (call->timer_id != 0)
        host->timer_stop(host, call->timer_id);
    call_unlink(call);
    call_free(call);
}

bool akash_call_on_wire(const struct akash_call *call)
{
    return call != NULL && call->request_id != 0;
}

void akash_client_drop_all(struct akash_client *client)
{
    while (client->calls != NULL) {
        struct akash_call *call = client->calls;
        call_unlink(call);
        call_free(call);
    }
}

bool akash_reply_2xx(const struct akash_reply *reply)
{
    return reply->status == 0 && reply->http_status >= 200 && reply->http_status <= 299;
}

int akash_reply_error(const struct akash_client *client, const struct akash_reply *reply,
                      const char *what, struct swp_error *err)
{
    if (reply->status < 0) {
        akash_set_error(err, reply->status, "%s", reply->msg);
        return reply->status;
    }
    long http = reply->http_status;
    char *server = akash_error_text(reply->root, client->secret);
    if (server == NULL && reply->body_len > 0 && reply->root == NULL)
        server = akash_sanitize(reply->body, reply->body_len, 80, client->secret);
    const char *detail = server && server[0] ? server : "no details";
    int code = http == 402 ? SWP_EFUNDS : SWP_EMARKET;
    if (http == 401 || http == 403)
        akash_set_error(err, code,
                        "%s: HTTP %ld, the API key was refused (check the "
                        "variable named by api_key_env): %s",
                        what, http, detail);
    else if (http == 402)
        akash_set_error(err, code, "%s: HTTP 402, the wallet cannot cover the deposit: %s", what,
                        detail);
    else if (http == 429 || http >= 500)
        akash_set_error(err, code, "%s: HTTP %ld after %d attempt%s: %s", what, http,
                        reply->attempts, reply->attempts == 1 ? "" : "s", detail);
    else
        akash_set_error(err, code, "%s: HTTP %ld: %s", what, http, detail);
    free(server);
    return code;
}

const cJSON *akash_reply_json(const struct akash_reply *reply, const char *what,
                              struct swp_error *err)
{
    if (reply->root != NULL)
        return reply->root;
    if (reply->body_len == 0)
        akash_set_error(err, SWP_EMARKET, "%s: empty reply (HTTP %ld), expected JSON", what,
                        reply->http_status);
    else
        akash_set_error(err, SWP_EMARKET, "%s: malformed JSON reply (HTTP %ld, %zu bytes)", what,
                        reply->http_status, reply->body_len);
    return NULL;
}
