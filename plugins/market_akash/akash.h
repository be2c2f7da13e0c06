/* akash.h — internals shared by the files of the market_akash plugin (no ABI: every symbol
 * here is hidden in swp_market_akash.so).
 *
 * akash_parse.c turns a reply's body into a cJSON tree, akash_json.c reads the Console's
 * replies field by field (marketplace-api.md), akash_sdl.c renders SDL templates,
 * akash_http.c makes calls through the host with retries, backoff and jitter, and
 * market_akash.c is the plugin: acquire/release/list/offers, the watch and the
 * state kept in the host's KV space.
 * Context: loop thread only (the host calls plugins on its loop thread).
 */
#ifndef AKASH_H
#define AKASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "steward/swp_plugin.h"
#include "steward/swp_util.h"

/* ~6 s blocks: the contract's conversion of a per-block price into a price per hour. */
#define AKASH_BLOCKS_PER_HOUR 600.0
/* 1 ACT = 1e6 uact ≈ 1 USD. */
#define AKASH_UACT_PER_USD 1e6

/* ---- memory and errors (akash_json.c) -------------------------------------------------- */

/* Allocation: swp_xcalloc, swp_xstrdup, swp_xasprintf (steward/swp_util.h). */
/* Fill err (may be NULL) with code and the formatted message; returns code. */
int akash_set_error(struct swp_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix err->msg with "<prefix>: " (truncating at the end if needed). */
void akash_error_prefix(struct swp_error *err, const char *prefix);
/* Copy of text with every occurrence of secret (when >= 4 bytes) replaced by "[REDACTED]"
 * and control characters turned into spaces; at most max_len bytes of the input are kept.
 * Owned, free(). Used on anything the server says before it reaches a log line or an
 * error message: a server may echo the API key back. */
char *akash_sanitize(const char *text, size_t len, size_t max_len, const char *secret);

/* ---- JSON writing (akash_json.c) ---------------------------------------------------------- */

/* Text the plugin writes itself: its KV records and its request bodies. Building a cJSON
 * tree only to print it costs an allocation per member plus cJSON's two-pass escaping of
 * every string (the SDL and the manifest are ~1 KB each), a large share of an acquire's CPU.
 * The output is what cJSON_PrintUnformatted would print for the same tree.
 * Start from {0}; akash_jw_take hands the text over (owned, free()). */
struct akash_jw {
    char *text;
    size_t len;
    size_t cap;
    bool more; /* a value was written at this level: the next one needs a comma */
};

/* Structure: open '{' or '[', close '}' or ']'. In an object, key() names the next value. */
void akash_jw_open(struct akash_jw *w, char bracket);
void akash_jw_close(struct akash_jw *w, char bracket);
void akash_jw_key(struct akash_jw *w, const char *name);
/* Values: a JSON string (NULL writes null), an integer, a number as cJSON prints a double,
 * and text that is JSON already. */
void akash_jw_str(struct akash_jw *w, const char *value);
void akash_jw_int(struct akash_jw *w, int64_t value);
void akash_jw_num(struct akash_jw *w, double value);
void akash_jw_raw(struct akash_jw *w, const char *json);
/* Members of an object: key + value. */
void akash_jw_kstr(struct akash_jw *w, const char *name, const char *value);
void akash_jw_kint(struct akash_jw *w, const char *name, int64_t value);
void akash_jw_knum(struct akash_jw *w, const char *name, double value);
char *akash_jw_take(struct akash_jw *w);

/* ---- JSON field access (akash_json.c) --------------------------------------------------- */

/* A parse in progress: getters record the first failure in err, naming the JSON path, and
 * return NULL/false from then on so a reader can chain them and check `failed` once. */
struct akash_jctx {
    struct swp_error *err;
    bool failed;
};

const char *akash_json_type(const cJSON *item);
/* Required members. where is the parent's path ("data[2].bid"), "" at the root. */
const cJSON *akash_jobj(struct akash_jctx *c, const cJSON *parent, const char *where,
                        const char *name);
const cJSON *akash_jarr(struct akash_jctx *c, const cJSON *parent, const char *where,
                        const char *name);
const char *akash_jstr(struct akash_jctx *c, const cJSON *parent, const char *where,
                       const char *name);
/* Optional string: absent or null gives NULL, any other type is an error. */
const char *akash_jstr_opt(struct akash_jctx *c, const cJSON *parent, const char *where,
                           const char *name);
/* A chain integer, which the contract sends as a decimal string ("2345690"): a JSON number
 * is refused (precision is lost past 2^53). */
bool akash_jintstr(struct akash_jctx *c, const cJSON *parent, const char *where, const char *name,
                   int64_t *out);
/* A small count that may come as a number or an integer string (gseq, available, ...). */
bool akash_jcount(struct akash_jctx *c, const cJSON *parent, const char *where, const char *name,
                  int64_t *out);
/* A dseq: a string of 1..19 digits. */
const char *akash_jdseq(struct akash_jctx *c, const cJSON *parent, const char *where,
                        const char *name);
/* Record a failure at where.name ("expected X, got Y" or any text). */
void akash_jfail(struct akash_jctx *c, const char *where, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

bool akash_is_dseq(const char *text);
/* A DecCoin amount: digits with an optional fraction ("12.500000000000000000"). */
bool akash_parse_decimal(const char *text, double *out);

/* ---- JSON reading (akash_parse.c) -------------------------------------------------------- */

/* Parse len bytes of text (no NUL needed) as cJSON_ParseWithLength does: the same inputs
 * accepted and refused and the same tree, about a third of the instructions. Returns the
 * tree (owned, free with cJSON_Delete) or NULL when the text is not JSON or memory ran
 * out. Any thread (no state). */
cJSON *akash_json_parse(const char *text, size_t len);

/* ---- contract objects (akash_json.c) ---------------------------------------------------- */

struct akash_coin {
    char *denom;
    char *amount; /* the decimal string as received */
    double value; /* amount parsed */
};

struct akash_bid {
    char *provider;
    char *bseq; /* as text (number or string upstream), for logs and identity */
    int64_t gseq;
    int64_t oseq;
    char *state; /* "open", "active", "lost", "closed" */
    struct akash_coin price;
    int64_t created_at; /* block height */
};

struct akash_lease {
    char *provider;
    int64_t gseq;
    int64_t oseq;
    char *state;  /* "active", "insufficient_funds", "closed" */
    char *reason; /* or NULL */
    struct akash_coin price;
    bool has_status; /* status was an object (null: the provider is unreachable) */
    bool ready;      /* every service available == total (and at least one service) */
    size_t service_count;
    char **uris;
    size_t uri_count;
};

struct akash_deployment {
    char *dseq;
    char *state; /* "active", "closed" */
    struct akash_lease *leases;
    size_t lease_count;
    bool has_escrow;    /* escrow_account.state.funds was readable */
    double escrow_uact; /* sum of the uact funds */
    char *marker_key;   /* STEWARD_UNIT_KEY=... found in an "sdl"/"manifest" text, or NULL */
    char *marker_tag;   /* STEWARD_TAG=... likewise */
};

/* GET /v1/bids: data is an array of {bid: {...}, escrow_account}. Every bid must name dseq.
 * Owned array, free with akash_bids_free. Returns 0 or SWP_EMARKET with err naming the
 * field. */
int akash_parse_bids(const cJSON *root, const char *dseq, struct akash_bid **out, size_t *count,
                     struct swp_error *err);
void akash_bids_free(struct akash_bid *bids, size_t count);

/* One DeploymentResponse at where (e.g. "data" or "data.deployments[3]"). with_status also
 * reads each lease's status (readiness and uris). Returns 0 or SWP_EMARKET. out is cleared
 * first; release it with akash_deployment_clear either way. */
int akash_parse_deployment(const cJSON *dr, const char *where, bool with_status,
                           struct akash_deployment *out, struct swp_error *err);
void akash_deployment_clear(struct akash_deployment *d);
/* The active lease (preferring provider when given), or NULL. */
const struct akash_lease *akash_active_lease(const struct akash_deployment *d,
                                             const char *provider);

/* GET /v1/deployments?skip=&limit=: appends the page's deployments to *items (grown with
 * realloc; *count updated) and sets *has_more. Returns 0 or SWP_EMARKET. */
int akash_parse_page(const cJSON *root, struct akash_deployment **items, size_t *count,
                     bool *has_more, struct swp_error *err);

/* The error shape {"error", "message", "code", ...}: "code: message" sanitized (secret
 * redacted), or NULL when body is not that shape. Owned, free(). */
char *akash_error_text(const cJSON *root, const char *secret);

/* ---- SDL templates (akash_sdl.c) --------------------------------------------------------- */

struct akash_sdl_vars {
    const char *region;
    const char *group;
    const char *key;
    const char *tag;
    double max_price_uact; /* per block */
    const char *const *auditors;
    size_t auditor_count;
    const char *profile_json; /* the group's profile object, or NULL */
};

/* Render a template: {{ name }} placeholders (see docs/market_akash.md) are replaced; an
 * unknown placeholder, a value the profile lacks or a value unsafe in YAML is an error
 * (SWP_ECONFIG) naming it. Owned, free(); NULL on error. */
char *akash_sdl_render(const char *tmpl, const struct akash_sdl_vars *vars, struct swp_error *err);
/* Find "NAME=value" in text (value: [A-Za-z0-9._:@/-]+). Owned copy or NULL. */
char *akash_marker_find(const char *text, const char *name);

/* ---- HTTP calls with retries (akash_http.c) --------------------------------------------- */

enum akash_retry {
    /* Idempotent request: 429, 5xx, timeouts and transport errors are retried. */
    AKASH_RETRY_SAFE = 0,
    /* Not idempotent (creating a deployment, a deposit): only 429 is retried, since a
     * rate-limited request was not processed; anything else may have been applied and is
     * returned with reply->uncertain set. */
    AKASH_RETRY_RATE_ONLY = 1,
    /* No retry at all: the caller runs its own loop (creating a deployment, where each
     * attempt must be recorded before it is sent). */
    AKASH_RETRY_NONE = 2,
};

struct akash_client {
    const struct swp_host *host;
    char *base_url;     /* without the trailing slash */
    char *auth_header;  /* "x-api-key: <key>": secret */
    const char *secret; /* the key itself, for redaction; borrowed from the host */
    uint32_t timeout_ms;
    int max_retries;
    uint64_t backoff_base_ms;
    uint64_t backoff_max_ms;
    struct akash_call *calls; /* every live call */
};

struct akash_reply {
    /* 0: an HTTP response arrived (http_status says which; 429/5xx after the retries ran
     * out). < 0: no response (SWP_ETIMEDOUT, SWP_EHTTP, SWP_ETOOBIG, SWP_ECANCELED,
     * SWP_EIO) and msg says why. */
    int status;
    long http_status;
    const char *body;
    size_t body_len;
    cJSON *root; /* the body parsed as JSON, or NULL; owned by the call */
    int attempts;
    bool uncertain;         /* a non-idempotent request may have been applied */
    int64_t retry_after_ms; /* the server's Retry-After, 0 when absent */
    char msg[256];
};

struct akash_call;
typedef void (*akash_call_cb)(void *ud, const struct akash_reply *reply);

/* Start method path (path includes the query string) with body (NULL: none). auth sends the
 * API key. Returns the call, whose cb fires exactly once (after the retries), or NULL when
 * the host refused to start it (cb never fires). */
struct akash_call *akash_call_start(struct akash_client *client, const char *method,
                                    const char *path, const char *body, bool auth,
                                    enum akash_retry retry, akash_call_cb cb, void *ud);
/* The wait before attempt number `attempt` + 1 (attempt >= 1): exponential from
 * backoff_base, capped at backoff_max, equal jitter from host->random_u64, never below the
 * server's Retry-After (itself capped at 15 minutes). */
uint64_t akash_backoff_ms(const struct akash_client *client, int attempt, int64_t retry_after_ms);
/* Cancel: cb never fires. The call must not be inside its own cb. */
void akash_call_cancel(struct akash_call *call);
/* True while a request of the call is on the wire (false while waiting to retry). */
bool akash_call_on_wire(const struct akash_call *call);
/* Free every call without firing its cb (destroy: the host already cancelled requests). */
void akash_client_drop_all(struct akash_client *client);
/* The error for a reply that is not a 2xx: SWP_EFUNDS for 402, SWP_EMARKET for other
 * statuses, the transport code otherwise; msg "<what>: ...". Returns the code. */
int akash_reply_error(const struct akash_client *client, const struct akash_reply *reply,
                      const char *what, struct swp_error *err);
/* A 2xx reply's root, or NULL with err "<what>: malformed JSON reply (...)". */
const cJSON *akash_reply_json(const struct akash_reply *reply, const char *what,
                              struct swp_error *err);
bool akash_reply_2xx(const struct akash_reply *reply);

#endif /* AKASH_H */
