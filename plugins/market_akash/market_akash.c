/* market_akash — buys units of capacity on Akash through the Console managed-wallet API
 * (kind MARKET). The contract is marketplace-api.md; docs/market_akash.md is the user's guide.
 *
 * One unit is one deployment (dseq) whose SDL pins one placement to a region. acquire renders
 * the SDL, creates the deployment with a deposit (progress CREATED, market_id = dseq), polls
 * bids for bid_window, chooses the lowest price (preferred providers first, then the earliest
 * bid on a tie) among the open bids that pass the filters, creates the lease with the
 * manifest exactly as the create returned it (progress LEASED) and polls the deployment until
 * every service is available (done READY with the uris). Whatever it created and cannot use
 * is closed before done reports the error.
 *
 * Everything goes through the host: HTTP (TLS verified there), timers, the clock, randomness
 * for jitter, and the KV space that makes acquires idempotent across restarts:
 *
 *   "index"          JSON array of the dseqs this instance owns (the KV has no listing)
 *   "dep/<dseq>"     one deployment: key, tag, group, region, state, provider, price, uris;
 *                    written as soon as the create answers, before progress CREATED, and
 *                    rewritten at every state change but the lease (the record says
 *                    "created" until ready: what a restart needs of a lease, the
 *                    marketplace shows) (so it stays small: no manifest)
 *   "dep/<dseq>/manifest"  the manifest exactly as the create returned it (raw text),
 *                    written once with the first "dep/<dseq>" and read back only to send a
 *                    lease after a restart; dropped with the deployment. It sorts next to
 *                    "dep/<dseq>", so the create's journal commit touches one page for both.
 *                    Records written before this key existed carry the manifest in
 *                    "dep/<dseq>"; loading moves it.
 *   "pending"        creates in flight: {key, tag, group, region, started_ms, until_ms},
 *                    written before each attempt is sent. A crash between the marketplace
 *                    creating a deployment and "dep/<dseq>" being written leaves a record
 *                    whose window the new dseq (a millisecond timestamp) falls into; such a
 *                    deployment has no manifest, so it can never be leased: it is closed.
 *   "prices"         the latest open bid price seen per provider and region (for offers)
 *   "funds_blocked"  present after a 402 until GET /v1/balances shows enough for a deposit
 *
 * Creates are sent one at a time. A create that fails without a definite answer (5xx,
 * timeout, an unreadable 201) may still have made a deployment; before trying again the
 * plugin lists the account's deployments and closes any unknown one whose dseq falls in the
 * attempt's window. One create at a time is what makes that window unambiguous.
 *
 * The API key is only ever placed in the x-api-key request header. Server texts are
 * sanitized (the key redacted) before they reach a log line, an error or an event, and the KV
 * never holds it.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akash.h"

#define INDEX_KEY "index"
#define PENDING_KEY "pending"
#define PRICES_KEY "prices"
#define FUNDS_KEY "funds_blocked"

#define PAGE_LIMIT 100
#define MAX_PAGES 10000
#define CHECK_CONCURRENCY 8
#define PROVIDERS_TTL_MS 300000
/* New prices reach the KV at most this long after they were seen: a burst of acquires
 * notes a price per provider and region, and the record holds all of them. */
#define PRICES_FLUSH_MS 1000
/* Allowed difference between steward's clock and the marketplace's (dseq is its clock). */
#define CLOCK_SKEW_MS 10000
#define PRICES_MAX 4096
#define MAX_LEASE_ATTEMPTS 8
#define EVENT_BIDS_MAX 50
#define TEMPLATE_MAX ((long)1 << 20)
/* The marketplace closes a deployment that gets no lease within ~10 minutes. */
#define MAX_BID_WINDOW_MS ((int64_t)9 * 60 * 1000)
#define ABANDONED_AFTER_MS ((int64_t)15 * 60 * 1000)
/* Polls of bids and readiness follow the marketplace's own timing (see poll_delay): the
 * shortest gap, and the weight of a new observation in the learned delays. */
#define POLL_FLOOR_MS 250
#define HINT_WEIGHT 0.25
#define SCOPES_MAX 1024
/* Bid and readiness polls on the wire at once. Shared polls end together (a scope's thing
 * was seen: every deployment of it asks now), and a herd of a hundred requests costs a
 * connection, buffers and an easy handle each at once (the resident size of a steward
 * tracking a thousand deployments); the host keeps 32 connections, so more in flight
 * would also open connections only to close them. The rest wait their turn (FIFO). */
#define POLL_CONCURRENCY 32

struct market;
struct acq;

/* Unit states double as deployment states; SWP_UNIT_CLOSED means "being closed". */

typedef void (*close_cb)(void *ud, int status, const char *dseq, const struct swp_error *err);

struct close_waiter {
    close_cb cb;
    void *ud;
    struct close_waiter *next;
};

struct dep {
    struct market *m;
    char *dseq;
    int64_t created_ms;
    char *key;
    char *tag;
    char *group;
    char *region;
    int state;
    /* In memory from the create until the unit is ready; "dep/<dseq>/manifest" holds it for
     * a lease after a restart. NULL when not in memory or unknown (a deployment found in a
     * create's window has none). */
    char *manifest;
    char *provider;
    int64_t gseq;
    int64_t oseq;
    char *price_amount;
    double price_uact;
    double price_usd_hour;
    char **uris;
    size_t uri_count;
    int64_t leased_ms;
    char *close_reason;
    struct acq *acq;
    struct akash_call *close_call;
    struct close_waiter *close_waiters;
    struct akash_call *topup_call;
    int64_t topup_ms;
    bool watch_busy;
    bool escrow_alerted;
    double runway_hours; /* < 0: unknown */
};

struct pending {
    char *key;
    char *tag;
    char *group;
    char *region;
    int64_t started_ms;
    int64_t until_ms;
    bool live; /* a create of this process is using it */
};

/* What the polls of one scope (bids: a region; readiness: a provider) have learned: the
 * delay it takes (hint) and the longest wait after which one of its deployments still had
 * nothing (quiet), so other deployments of the scope need not ask earlier (poll_skip).
 * Scopes that have never seen their thing (no hint) also share one "cold" scope per kind,
 * see poll_decide. */
enum scope_kind { SCOPE_BIDS = 0, SCOPE_READY = 1 };

struct poll_scope {
    int kind;
    char *name;
    double hint_ms;
    int64_t quiet_elapsed_ms;
    int64_t quiet_at_ms; /* when quiet was seen; 0: nothing current */
    int64_t used_ms;
    /* the poll of the scope on the wire, which others of about the same age wait for */
    struct acq *prober;
    int64_t probe_age_ms;
    int64_t probe_sent_ms;
    int64_t rtt_ms; /* of the last probe */
};

struct price_seen {
    char *provider;
    char *region;
    double usd_hour;
    int64_t at_ms;
};

struct provider_info {
    char *owner;
    char *region;
    bool audited;
    bool online;
    char **attr_keys;
    char **attr_values;
    size_t attr_count;
};

struct waiter {
    void (*cb)(void *ud, int status, const struct swp_error *err);
    void *ud;
    struct waiter *prev;
    struct waiter *next;
    bool linked;
};

struct pager;
/* The pager is valid during the call; its owner may take p->items (then set them NULL/0). */
typedef void (*pager_cb)(void *ud, int status, struct pager *p, const struct swp_error *err);

struct pager {
    struct market *m;
    struct pager *prev;
    struct pager *next;
    struct akash_call *call;
    size_t skip;
    int pages;
    struct akash_deployment *items;
    size_t count;
    pager_cb cb;
    void *ud;
};

enum acq_stage {
    ST_START = 0,
    ST_QUEUED,
    ST_BALANCE,
    ST_CREATE,
    ST_CREATE_WAIT, /* backoff before the next create attempt */
    ST_PROBE,
    ST_REPLAY,
    ST_RESUME,
    ST_BIDS,
    ST_LEASE,
    ST_READY,
    ST_CLOSE,
};

struct acq {
    struct market *m;
    struct acq *prev;
    struct acq *next;
    struct acq *queue_next;
    char *key;
    char *group;
    char *region;
    char *sdl;
    double max_price;
    char **avoid;
    size_t avoid_count;
    char **prefer;
    size_t prefer_count;
    char **only; /* only_providers: the placement pinned to these (none: any) */
    size_t only_count;
    uint64_t deadline_ms;
    int64_t started_ms;
    swp_unit_cb progress;
    swp_unit_cb done;
    void *ud;
    struct dep *dep;
    int stage;
    struct akash_call *call;
    struct pager *pager;
    uint64_t timer;
    uint64_t deadline_timer;
    uint64_t ready_timer;
    int64_t window_end_ms;
    struct pending *pend;
    bool unsure;        /* a create attempt may have made a deployment not yet accounted for */
    bool had_uncertain; /* some attempt ended without a definite answer */
    int create_attempts;
    struct swp_error create_err;
    bool create_final;   /* the last create answered 2xx garbage: no retry */
    size_t probe_closes; /* closes of lost deployments the acquire waits for */
    char *closed_dseq;   /* the deployment closed on failure, for the final report */
    bool expired;
    bool choose_now;
    int lease_attempts;
    char **rejected;
    size_t rejected_count;
    struct akash_bid *bids;
    size_t bid_count;
    struct waiter providers_wait;
    int replayed; /* highest state reported by progress so far */
    int fail_code;
    char fail_msg[256];
    /* the bid being leased */
    char *lease_provider;
    char *lease_amount;
    double lease_price_uact;
    int64_t lease_gseq;
    int64_t lease_oseq;
    /* the poll schedule of the current stage (bids or readiness) */
    int64_t poll_from_ms;        /* when the awaited delay started (create or lease) */
    int64_t poll_quiet_ms;       /* elapsed at the last poll that did not see it yet (QUIET_*) */
    int64_t poll_retry_after_ms; /* the last poll reply's Retry-After */
    int64_t poll_sent_ms;        /* when the last poll request of the stage went out */
    int64_t poll_due_ms;         /* when the readiness poll timer (timer) is due */
    struct poll_scope *probing;  /* the scope whose prober this acquire is */
    struct poll_scope *probing_cold; /* the cold scope, when it probes for that too */
    bool poll_out;               /* holds one of the POLL_CONCURRENCY slots */
    bool poll_queued;            /* waits for one (poll_cb runs when it is free) */
    swp_timer_cb poll_cb;
    struct acq *poll_next;
    bool bid_learned;
    int in_cb;
    bool finished;
};

struct listop {
    struct market *m;
    struct listop *prev;
    struct listop *next;
    swp_units_cb done;
    void *ud;
    struct pager *pager;
    struct akash_deployment *items;
    size_t count;
    bool *skip;
    bool *need_check;
    size_t next_check;
    size_t checks_running;
    struct akash_call **calls;
    struct list_check *checks;
};

struct list_check {
    struct listop *l;
    size_t index;
};

struct offersop {
    struct market *m;
    struct offersop *prev;
    struct offersop *next;
    swp_offers_cb done;
    void *ud;
    struct waiter wait;
};

struct relop {
    struct market *m;
    struct relop *prev;
    struct relop *next;
    char *dseq;
    swp_done_cb done;
    void *ud;
    struct akash_call *call; /* a DELETE for a dseq the plugin does not hold */
};

struct wcheck {
    struct market *m;
    struct wcheck *prev;
    struct wcheck *next;
    char *dseq;
    struct akash_call *call;
};

struct market {
    const struct swp_host *host;
    struct akash_client client;
    const char *tag;
    /* configuration */
    double deposit_usd;
    char *sdl_template;
    char **auditors;
    size_t auditor_count;
    uint64_t bid_window_ms;
    int64_t min_bids;
    uint64_t poll_interval_ms;
    uint64_t ready_timeout_ms;
    uint64_t watch_interval_ms;
    char **allow;
    size_t allow_count;
    char **deny;
    size_t deny_count;
    bool audited_only;
    char **req_keys;
    char **req_values;
    size_t req_count;
    double topup_below_hours;
    double default_max_price_uact;
    /* state */
    struct dep **deps;
    size_t dep_count;
    size_t dep_cap;
    struct pending **pending;
    size_t pending_count;
    struct price_seen *prices;
    size_t price_count;
    struct provider_info *providers;
    size_t provider_count;
    int64_t providers_at_ms;
    bool providers_valid;
    struct akash_call *providers_call;
    struct waiter *providers_waiters;
    struct acq *acqs;
    struct acq *creator; /* holds the create slot */
    struct acq *queue_head;
    struct acq *queue_tail;
    uint64_t slot_timer;
    uint64_t prices_timer; /* a flush of the prices is due */
    bool pending_dirty;    /* "pending" in the KV still lists a settled create */
    struct listop *lists;
    struct offersop *offers;
    struct relop *releases;
    struct wcheck *checks;
    size_t checks_running;
    struct pager *pagers;
    struct pager *sweep;
    char **check_queue;
    size_t check_queue_count;
    uint64_t watch_timer;
    bool funds_blocked;
    bool destroying;
    /* learned delays (ms, 0: none yet): create → min_bids acceptable bids, lease → ready */
    double bid_hint_ms;
    double ready_hint_ms;
    struct poll_scope cold[2]; /* by scope_kind: what scopes without a hint share */
    size_t polls_in_flight;
    struct acq *poll_wait_head;
    struct acq *poll_wait_tail;
    struct poll_scope **scopes;
    size_t scope_count;
};

/* ---- small helpers --------------------------------------------------------------------- */

#define LOG(m, level, ...) (m)->host->log((m)->host, (level), __VA_ARGS__)

static int64_t now_ms(const struct market *m)
{
    return m->host->now_ms(m->host);
}

static bool in_list(char *const *list, size_t count, const char *value)
{
    for (size_t i = 0; value != NULL && i < count; i++)
        if (strcmp(list[i], value) == 0)
            return true;
    return false;
}

static char **copy_list(const char *const *list, size_t count)
{
    if (count == 0 || list == NULL)
        return NULL;
    char **copy = swp_xcalloc(count, sizeof(*copy));
    for (size_t i = 0; i < count; i++)
        copy[i] = swp_xstrdup(list[i] ? list[i] : "");
    return copy;
}

static void free_list(char **list, size_t count)
{
    for (size_t i = 0; list != NULL && i < count; i++)
        free(list[i]);
    free(list);
}

static void list_push(char ***list, size_t *count, const char *value)
{
    char **grown = swp_xrealloc(*list, (*count + 1) * sizeof(*grown));
    grown[(*count)++] = swp_xstrdup(value);
    *list = grown;
}

static void replace_str(char **slot, const char *value)
{
    char *copy = swp_xstrdup(value);
    free(*slot);
    *slot = copy;
}

static const char *fmt_duration(uint64_t ms, char *buf, size_t len)
{
    unsigned long long v = (unsigned long long)ms;
    if (v >= 3600000 && v % 3600000 == 0)
        snprintf(buf, len, "%lluh", v / 3600000);
    else if (v >= 60000 && v % 60000 == 0)
        snprintf(buf, len, "%llum", v / 60000);
    else if (v % 1000 == 0)
        snprintf(buf, len, "%llus", v / 1000);
    else
        snprintf(buf, len, "%llums", v);
    return buf;
}

static double usd_hour(double uact_per_block)
{
    return uact_per_block * AKASH_BLOCKS_PER_HOUR / AKASH_UACT_PER_USD;
}

static const char *state_name(int state)
{
    switch (state) {
    case SWP_UNIT_CREATED:
        return "created";
    case SWP_UNIT_LEASED:
        return "leased";
    case SWP_UNIT_READY:
        return "ready";
    case SWP_UNIT_CLOSED:
        return "closing";
    default:
        return "ordered";
    }
}

static int state_parse(const char *name)
{
    static const int states[] = {SWP_UNIT_CREATED, SWP_UNIT_LEASED, SWP_UNIT_READY,
                                 SWP_UNIT_CLOSED};
    for (size_t i = 0; name != NULL && i < sizeof(states) / sizeof(states[0]); i++)
        if (strcmp(state_name(states[i]), name) == 0)
            return states[i];
    return -1;
}

static int64_t dseq_ms(const char *dseq)
{
    return dseq ? (int64_t)strtoll(dseq, NULL, 10) : 0;
}

static uint64_t timer_arm(struct market *m, uint64_t delay_ms, swp_timer_cb cb, void *ud)
{
    return m->host->timer_start(m->host, delay_ms, cb, ud);
}

/* A poll timer whose end is rounded up to a grid: the timers of a burst's acquires (created
 * milliseconds apart, following schedules of about the same length) then fire in one
 * wake-up of the loop instead of one each, most of which only decide to skip or defer. The
 * grain is the largest of a few fixed ones (so that schedules of similar lengths share a
 * grid) that is at most a quarter of the delay: a poll is never later by more than that.
 * (An eighth woke the loop a third more often over bench_market.sh's burst, 170 blocking
 * waits instead of 130, for all 50 ready about 150 ms sooner, 3.0 s instead of 3.15 s
 * against a target of 5 s; each wake-up is two context switches of steward's CPU.) */
static uint64_t poll_timer_arm(struct market *m, uint64_t delay_ms, swp_timer_cb cb, void *ud)
{
    static const uint64_t grains[] = {50, 25, 10, 5, 2};
    uint64_t grain = 1;
    for (size_t i = 0; i < sizeof(grains) / sizeof(grains[0]) && grain == 1; i++)
        if (grains[i] <= delay_ms / 4)
            grain = grains[i];
    int64_t now = now_ms(m);
    if (grain > 1 && now >= 0) {
        uint64_t due = (uint64_t)now + delay_ms;
        delay_ms += (grain - due % grain) % grain;
    }
    return timer_arm(m, delay_ms, cb, ud);
}

static void timer_disarm(struct market *m, uint64_t *id)
{
    if (*id != 0)
        m->host->timer_stop(m->host, *id);
    *id = 0;
}

static void json_add_str(cJSON *obj, const char *name, const char *value)
{
    if (value != NULL)
        cJSON_AddStringToObject(obj, name, value);
    else
        cJSON_AddNullToObject(obj, name);
}

static const char *json_str(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static double json_num(const cJSON *obj, const char *name, double fallback)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(item) ? item->valuedouble : fallback;
}

/* ---- events ------------------------------------------------------------------------------- */

/* data_json: the event's data as JSON text, or NULL. */
static void emit_text(struct market *m, const char *type, const char *market_id,
                      const char *reason, const char *data_json)
{
    struct swp_event ev = {
        .size = sizeof(ev),
        .type = type,
        .market_id = market_id,
        .reason = reason,
        .data_json = data_json,
    };
    m->host->emit_event(m->host, &ev);
}

static void emit(struct market *m, const char *type, const char *market_id, const char *reason,
                 cJSON *data)
{
    char *text = data ? cJSON_PrintUnformatted(data) : NULL;
    emit_text(m, type, market_id, reason, text);
    free(text);
    cJSON_Delete(data);
}

/* ---- persistence ----------------------------------------------------------------------------- */

/* text: JSON, consumed. */
static void kv_put_text(struct market *m, const char *key, char *text)
{
    int rc = m->host->kv_set(m->host, key, text);
    if (rc < 0)
        LOG(m, SWP_LOG_WARN, "cannot save %s (error %d)", key, rc);
    free(text);
}

static void kv_put(struct market *m, const char *key, cJSON *value)
{
    char *text = cJSON_PrintUnformatted(value);
    cJSON_Delete(value);
    if (text == NULL) {
        LOG(m, SWP_LOG_WARN, "cannot save %s (error %d)", key, SWP_ENOMEM);
        return;
    }
    kv_put_text(m, key, text);
}

static void kv_drop(struct market *m, const char *key)
{
    int rc = m->host->kv_del(m->host, key);
    if (rc < 0 && rc != SWP_ENOENT)
        LOG(m, SWP_LOG_WARN, "cannot delete %s (error %d)", key, rc);
}

/* The records are written with akash_jw (akash.h says why), read back with cJSON. */
static void persist_index(struct market *m)
{
    struct akash_jw w = {0};
    akash_jw_open(&w, '[');
    for (size_t i = 0; i < m->dep_count; i++)
        akash_jw_str(&w, m->deps[i]->dseq);
    akash_jw_close(&w, ']');
    kv_put_text(m, INDEX_KEY, akash_jw_take(&w));
}

static void persist_dep(struct dep *d)
{
    struct akash_jw w = {0};
    akash_jw_open(&w, '{');
    akash_jw_kstr(&w, "dseq", d->dseq);
    akash_jw_kstr(&w, "state", state_name(d->state));
    akash_jw_kint(&w, "created_ms", d->created_ms);
    akash_jw_kstr(&w, "key", d->key);
    akash_jw_kstr(&w, "tag", d->tag);
    akash_jw_kstr(&w, "group", d->group);
    akash_jw_kstr(&w, "region", d->region);
    akash_jw_kstr(&w, "provider", d->provider);
    akash_jw_kint(&w, "gseq", d->gseq);
    akash_jw_kint(&w, "oseq", d->oseq);
    akash_jw_kstr(&w, "price_amount", d->price_amount);
    akash_jw_kint(&w, "leased_ms", d->leased_ms);
    akash_jw_kstr(&w, "close_reason", d->close_reason);
    akash_jw_key(&w, "uris");
    akash_jw_open(&w, '[');
    for (size_t i = 0; i < d->uri_count; i++)
        akash_jw_str(&w, d->uris[i]);
    akash_jw_close(&w, ']');
    akash_jw_close(&w, '}');
    char key[48];
    snprintf(key, sizeof(key), "dep/%s", d->dseq);
    kv_put_text(d->m, key, akash_jw_take(&w));
}

/* Raw text, not JSON: written once, sent back byte for byte. */
static void persist_manifest(struct dep *d)
{
    char key[48];
    snprintf(key, sizeof(key), "dep/%s/manifest", d->dseq);
    int rc = d->manifest ? d->m->host->kv_set(d->m->host, key, d->manifest) : SWP_EINVAL;
    if (rc < 0)
        LOG(d->m, SWP_LOG_WARN, "cannot save %s (error %d)", key, rc);
}

/* The manifest to send with a lease: in memory, or the stored copy (after a restart). */
static const char *dep_manifest(struct dep *d)
{
    if (d->manifest != NULL)
        return d->manifest;
    char key[48], *value = NULL;
    snprintf(key, sizeof(key), "dep/%s/manifest", d->dseq);
    if (d->m->host->kv_get(d->m->host, key, &value) < 0)
        return NULL;
    d->manifest = swp_xstrdup(value);
    d->m->host->free(value);
    return d->manifest;
}

static void persist_pending(struct market *m)
{
    m->pending_dirty = false;
    if (m->pending_count == 0) {
        kv_drop(m, PENDING_KEY);
        return;
    }
    struct akash_jw w = {0};
    akash_jw_open(&w, '[');
    for (size_t i = 0; i < m->pending_count; i++) {
        const struct pending *p = m->pending[i];
        akash_jw_open(&w, '{');
        akash_jw_kstr(&w, "key", p->key);
        akash_jw_kstr(&w, "tag", p->tag);
        akash_jw_kstr(&w, "group", p->group);
        akash_jw_kstr(&w, "region", p->region);
        akash_jw_kint(&w, "started_ms", p->started_ms);
        akash_jw_kint(&w, "until_ms", p->until_ms);
        akash_jw_close(&w, '}');
    }
    akash_jw_close(&w, ']');
    kv_put_text(m, PENDING_KEY, akash_jw_take(&w));
}

static void persist_prices(struct market *m)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < m->price_count; i++) {
        const struct price_seen *p = &m->prices[i];
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "provider", p->provider);
        cJSON_AddStringToObject(item, "region", p->region);
        cJSON_AddNumberToObject(item, "usd_hour", p->usd_hour);
        cJSON_AddNumberToObject(item, "at_ms", (double)p->at_ms);
        char name[320];
        snprintf(name, sizeof(name), "%s@%s", p->provider, p->region);
        cJSON_AddItemToObject(o, name, item);
    }
    kv_put(m, PRICES_KEY, o);
}

static void on_prices_timer(void *ud)
{
    struct market *m = ud;
    m->prices_timer = 0;
    persist_prices(m);
}

/* The prices are a cache for offers (what a policy sees before buying): losing the last
 * second of them to a crash costs nothing, rewriting the whole record per new price does. */
static void prices_changed(struct market *m)
{
    if (m->prices_timer == 0 && !m->destroying)
        m->prices_timer = timer_arm(m, PRICES_FLUSH_MS, on_prices_timer, m);
    if (m->prices_timer == 0)
        persist_prices(m);
}

static void persist_funds(struct market *m)
{
    if (m->funds_blocked)
        m->host->kv_set(m->host, FUNDS_KEY, "true");
    else
        kv_drop(m, FUNDS_KEY);
}

/* ---- deployments --------------------------------------------------------------------------- */

static struct dep *dep_find(const struct market *m, const char *dseq)
{
    for (size_t i = 0; dseq != NULL && i < m->dep_count; i++)
        if (strcmp(m->deps[i]->dseq, dseq) == 0)
            return m->deps[i];
    return NULL;
}

static struct dep *dep_find_key(const struct market *m, const char *key)
{
    for (size_t i = 0; key != NULL && i < m->dep_count; i++)
        if (m->deps[i]->key != NULL && strcmp(m->deps[i]->key, key) == 0)
            return m->deps[i];
    return NULL;
}

static void dep_set_uris(struct dep *d, char *const *uris, size_t count)
{
    free_list(d->uris, d->uri_count);
    d->uris = NULL;
    d->uri_count = 0;
    for (size_t i = 0; i < count; i++)
        list_push(&d->uris, &d->uri_count, uris[i]);
}

static struct dep *dep_add(struct market *m, const char *dseq)
{
    struct dep *d = swp_xcalloc(1, sizeof(*d));
    d->m = m;
    d->dseq = swp_xstrdup(dseq);
    d->created_ms = dseq_ms(dseq);
    d->state = SWP_UNIT_CREATED;
    d->runway_hours = -1;
    if (m->dep_count == m->dep_cap) {
        size_t cap = m->dep_cap ? m->dep_cap * 2 : 16;
        struct dep **grown = swp_xrealloc(m->deps, cap * sizeof(*grown));
        m->deps = grown;
        m->dep_cap = cap;
    }
    m->deps[m->dep_count++] = d;
    return d;
}

static void dep_free(struct dep *d)
{
    while (d->close_waiters != NULL) {
        struct close_waiter *w = d->close_waiters;
        d->close_waiters = w->next;
        free(w);
    }
    free(d->dseq);
    free(d->key);
    free(d->tag);
    free(d->group);
    free(d->region);
    free(d->manifest);
    free(d->provider);
    free(d->price_amount);
    free(d->close_reason);
    free_list(d->uris, d->uri_count);
    free(d);
}

/* Forget a deployment (it is closed or gone): memory, index and KV record. */
static void dep_remove(struct dep *d)
{
    struct market *m = d->m;
    akash_call_cancel(d->close_call);
    d->close_call = NULL;
    akash_call_cancel(d->topup_call);
    d->topup_call = NULL;
    for (size_t i = 0; i < m->dep_count; i++) {
        if (m->deps[i] != d)
            continue;
        memmove(&m->deps[i], &m->deps[i + 1], (m->dep_count - i - 1) * sizeof(*m->deps));
        m->dep_count--;
        break;
    }
    /* Index first: a crash in between leaves an unreferenced record, never a dangling
     * index entry. */
    persist_index(m);
    char key[48];
    snprintf(key, sizeof(key), "dep/%s", d->dseq);
    kv_drop(m, key);
    snprintf(key, sizeof(key), "dep/%s/manifest", d->dseq);
    kv_drop(m, key);
    dep_free(d);
}

static void dep_fill_unit(const struct dep *d, struct swp_unit *u)
{
    memset(u, 0, sizeof(*u));
    u->size = sizeof(*u);
    u->key = d->key;
    u->market_id = d->dseq;
    u->group = d->group;
    u->region = d->region;
    u->provider = d->state >= SWP_UNIT_LEASED ? d->provider : NULL;
    u->price_usd_hour = d->state >= SWP_UNIT_LEASED ? d->price_usd_hour : 0;
    u->uris = d->state == SWP_UNIT_READY ? (const char *const *)d->uris : NULL;
    u->uri_count = d->state == SWP_UNIT_READY ? d->uri_count : 0;
    u->state = d->state;
    u->reason = d->state == SWP_UNIT_CLOSED ? d->close_reason : NULL;
    u->created_ms = d->created_ms;
    u->tag = d->tag;
}

/* ---- pending creates --------------------------------------------------------------------- */

static struct pending *pending_add(struct market *m, const struct acq *a, int64_t now)
{
    struct pending *p = swp_xcalloc(1, sizeof(*p));
    p->key = swp_xstrdup(a->key);
    p->tag = swp_xstrdup(m->tag);
    p->group = swp_xstrdup(a->group);
    p->region = swp_xstrdup(a->region);
    p->started_ms = now;
    p->until_ms = now;
    p->live = true;
    struct pending **grown = swp_xrealloc(m->pending, (m->pending_count + 1) * sizeof(*grown));
    m->pending = grown;
    m->pending[m->pending_count++] = p;
    return p;
}

static void pending_remove(struct market *m, struct pending *p)
{
    for (size_t i = 0; i < m->pending_count; i++) {
        if (m->pending[i] != p)
            continue;
        memmove(&m->pending[i], &m->pending[i + 1],
                (m->pending_count - i - 1) * sizeof(*m->pending));
        m->pending_count--;
        break;
    }
    free(p->key);
    free(p->tag);
    free(p->group);
    free(p->region);
    free(p);
}

static bool pending_has_stale(const struct market *m)
{
    for (size_t i = 0; i < m->pending_count; i++)
        if (!m->pending[i]->live)
            return true;
    return false;
}

/* ---- prices seen in bids ------------------------------------------------------------------- */

/* Returns whether the KV copy is worth rewriting: a new or changed price, or one whose
 * stored time is over PROVIDERS_TTL_MS old (every bid poll would otherwise rewrite the whole
 * table just to move timestamps: a journal transaction per poll). */
static bool price_note(struct market *m, const char *provider, const char *region, double usd,
                       int64_t now)
{
    for (size_t i = 0; i < m->price_count; i++) {
        struct price_seen *p = &m->prices[i];
        if (strcmp(p->provider, provider) == 0 && strcmp(p->region, region) == 0) {
            bool changed = p->usd_hour != usd || now - p->at_ms > PROVIDERS_TTL_MS;
            p->usd_hour = usd;
            if (changed)
                p->at_ms = now;
            return changed;
        }
    }
    if (m->price_count == PRICES_MAX) {
        /* Forget the stalest price to make room. */
        size_t oldest = 0;
        for (size_t i = 1; i < m->price_count; i++)
            if (m->prices[i].at_ms < m->prices[oldest].at_ms)
                oldest = i;
        free(m->prices[oldest].provider);
        free(m->prices[oldest].region);
        m->prices[oldest] = m->prices[--m->price_count];
    }
    struct price_seen *grown = swp_xrealloc(m->prices, (m->price_count + 1) * sizeof(*grown));
    m->prices = grown;
    m->prices[m->price_count++] = (struct price_seen){
        .provider = swp_xstrdup(provider),
        .region = swp_xstrdup(region),
        .usd_hour = usd,
        .at_ms = now,
    };
    return true;
}

static void funds_block(struct market *m, const char *why)
{
    if (m->funds_blocked)
        return;
    m->funds_blocked = true;
    persist_funds(m);
    LOG(m, SWP_LOG_WARN, "buying stopped: %s; the next acquire checks the balance first", why);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "deposit_usd", m->deposit_usd);
    cJSON_AddStringToObject(data, "message", why);
    emit(m, "alert", NULL, "insufficient_funds", data);
}

/* ---- providers (GET /v1/providers, cached) ----------------------------------------------------
 */

static void providers_clear(struct market *m)
{
    for (size_t i = 0; i < m->provider_count; i++) {
        struct provider_info *p = &m->providers[i];
        free(p->owner);
        free(p->region);
        free_list(p->attr_keys, p->attr_count);
        free_list(p->attr_values, p->attr_count);
    }
    free(m->providers);
    m->providers = NULL;
    m->provider_count = 0;
}

static const struct provider_info *provider_find(const struct market *m, const char *owner)
{
    for (size_t i = 0; owner != NULL && i < m->provider_count; i++)
        if (strcmp(m->providers[i].owner, owner) == 0)
            return &m->providers[i];
    return NULL;
}

static int providers_parse(struct market *m, const cJSON *root, struct swp_error *err)
{
    struct akash_jctx c = {.err = err};
    if (!cJSON_IsArray(root)) {
        akash_jfail(&c, "", "", "expected an array of providers, got %s", akash_json_type(root));
        return SWP_EMARKET;
    }
    size_t total = (size_t)cJSON_GetArraySize(root);
    struct provider_info *list = swp_xcalloc(total, sizeof(*list));
    size_t n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        char where[32];
        snprintf(where, sizeof(where), "[%zu]", n);
        struct provider_info *p = &list[n++];
        const char *owner = akash_jstr(&c, item, where, "owner");
        const char *region = akash_jstr_opt(&c, item, where, "locationRegion");
        const cJSON *online = cJSON_GetObjectItemCaseSensitive(item, "isOnline");
        const cJSON *audited = cJSON_GetObjectItemCaseSensitive(item, "isAudited");
        const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(item, "attributes");
        if (!c.failed && online != NULL && !cJSON_IsBool(online) && !cJSON_IsNull(online))
            akash_jfail(&c, where, "isOnline", "expected boolean, got %s", akash_json_type(online));
        if (!c.failed && audited != NULL && !cJSON_IsBool(audited) && !cJSON_IsNull(audited))
            akash_jfail(&c, where, "isAudited", "expected boolean, got %s",
                        akash_json_type(audited));
        if (!c.failed && attrs != NULL && !cJSON_IsArray(attrs) && !cJSON_IsNull(attrs))
            akash_jfail(&c, where, "attributes", "expected array, got %s", akash_json_type(attrs));
        if (c.failed)
            break;
        p->owner = swp_xstrdup(owner);
        p->online = online == NULL || cJSON_IsNull(online) || cJSON_IsTrue(online);
        p->audited = cJSON_IsTrue(audited);
        const cJSON *attr;
        const cJSON *attr_list = cJSON_IsArray(attrs) ? attrs : NULL;
        size_t index = 0;
        cJSON_ArrayForEach(attr, attr_list)
        {
            char apath[64];
            snprintf(apath, sizeof(apath), "%s.attributes[%zu]", where, index++);
            const char *key = akash_jstr(&c, attr, apath, "key");
            const char *value = akash_jstr(&c, attr, apath, "value");
            if (c.failed)
                break;
            list_push(&p->attr_keys, &p->attr_count, key);
            p->attr_count--;
            list_push(&p->attr_values, &p->attr_count, value);
            if (strcmp(key, "location-region") == 0 && p->region == NULL)
                p->region = swp_xstrdup(value);
        }
        if (c.failed)
            break;
        if (p->region == NULL && region != NULL)
            p->region = swp_xstrdup(region);
    }
    m->providers_valid = false;
    providers_clear(m);
    m->providers = list;
    m->provider_count = n;
    if (c.failed) {
        providers_clear(m);
        return SWP_EMARKET;
    }
    m->providers_valid = true;
    return 0;
}

static void waiter_unlink(struct market *m, struct waiter *w)
{
    if (!w->linked)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        m->providers_waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->linked = false;
}

static void on_providers(void *ud, const struct akash_reply *r)
{
    struct market *m = ud;
    m->providers_call = NULL;
    struct swp_error err = {0};
    int status = 0;
    const char *what = "GET /v1/providers";
    if (!akash_reply_2xx(r)) {
        status = akash_reply_error(&m->client, r, what, &err);
    } else {
        const cJSON *root = akash_reply_json(r, what, &err);
        status = root ? providers_parse(m, root, &err) : SWP_EMARKET;
        if (root != NULL && status < 0)
            akash_error_prefix(&err, what);
    }
    if (status == 0) {
        m->providers_at_ms = now_ms(m);
        LOG(m, SWP_LOG_DEBUG, "%zu providers listed", m->provider_count);
    } else if (status != SWP_ECANCELED) {
        LOG(m, SWP_LOG_WARN, "%s", err.msg);
    }
    while (m->providers_waiters != NULL) {
        struct waiter *w = m->providers_waiters;
        waiter_unlink(m, w);
        w->cb(w->ud, status, status < 0 ? &err : NULL);
    }
}

/* 1: the cache is fresh, use it now. 0: w is called when the fetch completes. < 0: the
 * fetch could not start. */
static int providers_ensure(struct market *m, struct waiter *w, int64_t max_age_ms)
{
    if (m->providers_valid && now_ms(m) - m->providers_at_ms <= max_age_ms)
        return 1;
    if (m->providers_call == NULL) {
        m->providers_call = akash_call_start(&m->client, "GET", "/v1/providers", NULL, false,
                                             AKASH_RETRY_SAFE, on_providers, m);
        if (m->providers_call == NULL)
            return SWP_ECANCELED;
    }
    w->prev = NULL;
    w->next = m->providers_waiters;
    if (m->providers_waiters)
        m->providers_waiters->prev = w;
    m->providers_waiters = w;
    w->linked = true;
    return 0;
}

/* ---- paging through GET /v1/deployments ------------------------------------------------------ */

static void pager_page(struct pager *p);

static void pager_free(struct pager *p)
{
    struct market *m = p->m;
    if (p->prev)
        p->prev->next = p->next;
    else if (m->pagers == p)
        m->pagers = p->next;
    if (p->next)
        p->next->prev = p->prev;
    for (size_t i = 0; i < p->count; i++)
        akash_deployment_clear(&p->items[i]);
    free(p->items);
    free(p);
}

static void pager_finish(struct pager *p, int status, const struct swp_error *err)
{
    p->cb(p->ud, status, p, err);
}

static void on_page(void *ud, const struct akash_reply *r)
{
    struct pager *p = ud;
    p->call = NULL;
    struct swp_error err = {0};
    char what[80];
    snprintf(what, sizeof(what), "GET /v1/deployments?skip=%zu&limit=%d", p->skip, PAGE_LIMIT);
    if (!akash_reply_2xx(r)) {
        int status = akash_reply_error(&p->m->client, r, what, &err);
        pager_finish(p, status, &err);
        pager_free(p);
        return;
    }
    const cJSON *root = akash_reply_json(r, what, &err);
    bool more = false;
    size_t before = p->count;
    if (root == NULL || akash_parse_page(root, &p->items, &p->count, &more, &err) < 0) {
        if (root != NULL)
            akash_error_prefix(&err, what);
        pager_finish(p, SWP_EMARKET, &err);
        pager_free(p);
        return;
    }
    p->pages++;
    if (more && (p->count == before || p->pages >= MAX_PAGES)) {
        akash_set_error(&err, SWP_EMARKET,
                        "%s: hasMore is true but the listing does not "
                        "advance (%d pages read)",
                        what, p->pages);
        pager_finish(p, SWP_EMARKET, &err);
        pager_free(p);
        return;
    }
    if (!more) {
        pager_finish(p, 0, NULL);
        pager_free(p);
        return;
    }
    p->skip = p->count;
    pager_page(p);
}

static void pager_page(struct pager *p)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/deployments?skip=%zu&limit=%d", p->skip, PAGE_LIMIT);
    p->call =
        akash_call_start(&p->m->client, "GET", path, NULL, true, AKASH_RETRY_SAFE, on_page, p);
    if (p->call == NULL) {
        struct swp_error err;
        akash_set_error(&err, SWP_ECANCELED, "GET %s: the host refused the request", path);
        pager_finish(p, SWP_ECANCELED, &err);
        pager_free(p);
    }
}

/* Read every page; cb fires once (possibly before this returns if the first request cannot
 * start). Returns the pager so its owner can cancel it. */
static struct pager *pager_start(struct market *m, pager_cb cb, void *ud)
{
    struct pager *p = swp_xcalloc(1, sizeof(*p));
    p->m = m;
    p->cb = cb;
    p->ud = ud;
    p->next = m->pagers;
    if (m->pagers)
        m->pagers->prev = p;
    m->pagers = p;
    pager_page(p);
    return p;
}

static void pager_cancel(struct pager *p)
{
    if (p == NULL)
        return;
    akash_call_cancel(p->call);
    p->call = NULL;
    pager_free(p);
}

/* ---- closing a deployment ---------------------------------------------------------------- */

static void on_close(void *ud, const struct akash_reply *r);

/* DELETE succeeded, or says the deployment is already gone/closed. */
static bool close_ok(const struct akash_reply *r)
{
    if (akash_reply_2xx(r) || (r->status == 0 && r->http_status == 404))
        return true;
    if (r->status != 0 || r->http_status < 400 || r->http_status >= 500 || r->http_status == 401 ||
        r->http_status == 403 || r->http_status == 429)
        return false;
    /* A 4xx whose error says the deployment is closed already: idempotent success. */
    const char *code = json_str(r->root, "code");
    const char *message = json_str(r->root, "message");
    return (code && strcmp(code, "not_found") == 0) ||
           (message && (strstr(message, "closed") || strstr(message, "not found")));
}

/* Start (or join) closing d. cb (may be NULL) fires once with the outcome; on success d is
 * already forgotten when it fires. Returns < 0 when no request could start (cb never
 * fires; d stays "closing" for the watch to retry). */
static int dep_close_start(struct dep *d, const char *reason, close_cb cb, void *ud)
{
    struct market *m = d->m;
    if (d->state != SWP_UNIT_CLOSED || (reason && d->close_reason == NULL)) {
        d->state = SWP_UNIT_CLOSED;
        if (reason != NULL)
            replace_str(&d->close_reason, reason);
        persist_dep(d);
    }
    if (d->close_call == NULL) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/deployments/%s", d->dseq);
        d->close_call =
            akash_call_start(&m->client, "DELETE", path, NULL, true, AKASH_RETRY_SAFE, on_close, d);
        if (d->close_call == NULL)
            return SWP_ECANCELED;
        LOG(m, SWP_LOG_INFO, "closing deployment %s (%s)", d->dseq,
            d->close_reason ? d->close_reason : "-");
    }
    if (cb != NULL) {
        struct close_waiter *w = swp_xcalloc(1, sizeof(*w));
        w->cb = cb;
        w->ud = ud;
        w->next = d->close_waiters;
        d->close_waiters = w;
    }
    return 0;
}

/* Stop waiting for d's close (the waiter is finishing for another reason). */
static void dep_unwait(struct dep *d, void *ud)
{
    for (struct close_waiter **link = &d->close_waiters; *link != NULL;) {
        struct close_waiter *w = *link;
        if (w->ud == ud) {
            *link = w->next;
            free(w);
            continue;
        }
        link = &w->next;
    }
}

static void on_close(void *ud, const struct akash_reply *r)
{
    struct dep *d = ud;
    struct market *m = d->m;
    d->close_call = NULL;
    struct swp_error err = {0};
    int status = 0;
    char what[64];
    snprintf(what, sizeof(what), "DELETE /v1/deployments/%s", d->dseq);
    if (!close_ok(r))
        status = akash_reply_error(&m->client, r, what, &err);
    struct close_waiter *waiters = d->close_waiters;
    d->close_waiters = NULL;
    char *dseq = swp_xstrdup(d->dseq);
    if (status == 0) {
        LOG(m, SWP_LOG_INFO, "deployment %s closed%s", dseq,
            r->http_status == 404 ? " (it was already gone)" : "");
        dep_remove(d);
    } else if (status != SWP_ECANCELED) {
        LOG(m, SWP_LOG_WARN, "%s; the watch will try again", err.msg);
    }
    while (waiters != NULL) {
        struct close_waiter *w = waiters;
        waiters = w->next;
        w->cb(w->ud, status, dseq, status < 0 ? &err : NULL);
        free(w);
    }
    free(dseq);
}

/* ---- matching creates that lost their answer ---------------------------------------------- */

/* Does listed deployment d belong to pending create p? The markers decide when the server
 * returns the SDL; otherwise the dseq (the marketplace's creation time in ms) must fall in
 * the window of the create's attempts. */
static bool pending_matches(const struct market *m, const struct pending *p,
                            const struct akash_deployment *d)
{
    if (d->marker_key != NULL)
        return p->key != NULL && strcmp(d->marker_key, p->key) == 0 &&
               (d->marker_tag == NULL || (p->tag && strcmp(d->marker_tag, p->tag) == 0));
    if (d->marker_tag != NULL && (m->tag == NULL || strcmp(d->marker_tag, m->tag) != 0))
        return false;
    int64_t created = dseq_ms(d->dseq);
    return created >= p->started_ms - CLOCK_SKEW_MS && created <= p->until_ms + CLOCK_SKEW_MS;
}

/* Close every listed deployment that one of the pending creates (only, or every stale one)
 * made without the plugin learning its dseq. Such a deployment has no known manifest, so it
 * can never be leased. Marks the items it took in skip (may be NULL). cb (may be NULL) is
 * told when each close started here completes. Returns how many closes started. */
static size_t reconcile_pending(struct market *m, struct akash_deployment *items, size_t count,
                                bool *skip, struct pending *only, close_cb cb, void *ud)
{
    size_t closed = 0;
    int64_t now = now_ms(m);
    bool changed = false;
    for (size_t pi = 0; pi < m->pending_count;) {
        struct pending *p = m->pending[pi];
        if ((only != NULL && p != only) || (only == NULL && p->live)) {
            pi++;
            continue;
        }
        size_t matched = 0;
        for (size_t i = 0; i < count; i++) {
            struct akash_deployment *d = &items[i];
            if ((skip && skip[i]) || strcmp(d->state, "active") != 0 ||
                dep_find(m, d->dseq) != NULL || !pending_matches(m, p, d))
                continue;
            matched++;
            if (skip)
                skip[i] = true;
            LOG(m, SWP_LOG_WARN,
                "deployment %s was created for unit %s by a create whose answer was lost; "
                "without its manifest it cannot be leased: closing it",
                d->dseq, p->key ? p->key : "-");
            struct dep *dep = dep_add(m, d->dseq);
            dep->key = swp_xstrdup(p->key);
            dep->tag = swp_xstrdup(p->tag);
            dep->group = swp_xstrdup(p->group);
            dep->region = swp_xstrdup(p->region);
            persist_index(m);
            if (dep_close_start(dep, "create answer lost", cb, ud) == 0)
                closed++;
        }
        if (only == NULL && (matched > 0 || now > p->until_ms + CLOCK_SKEW_MS)) {
            if (matched == 0)
                LOG(m, SWP_LOG_INFO, "the interrupted create of unit %s made no deployment",
                    p->key ? p->key : "-");
            pending_remove(m, p);
            changed = true;
            continue;
        }
        pi++;
    }
    if (changed)
        persist_pending(m);
    return closed;
}

/* ---- acquire: bookkeeping ------------------------------------------------------------------ */

static void acq_free(struct acq *a)
{
    free(a->key);
    free(a->group);
    free(a->region);
    free(a->sdl);
    free_list(a->avoid, a->avoid_count);
    free_list(a->prefer, a->prefer_count);
    free_list(a->only, a->only_count);
    free_list(a->rejected, a->rejected_count);
    akash_bids_free(a->bids, a->bid_count);
    free(a->lease_provider);
    free(a->lease_amount);
    free(a->closed_dseq);
    free(a);
}

static void start_create(struct acq *a);

static void on_slot_timer(void *ud)
{
    struct market *m = ud;
    m->slot_timer = 0;
    if (m->creator != NULL || m->queue_head == NULL || m->destroying)
        return;
    struct acq *next = m->queue_head;
    m->queue_head = next->queue_next;
    if (m->queue_head == NULL)
        m->queue_tail = NULL;
    next->queue_next = NULL;
    m->creator = next;
    start_create(next);
}

static void slot_release(struct acq *a)
{
    struct market *m = a->m;
    if (m->creator != a)
        return;
    m->creator = NULL;
    if (m->queue_head != NULL && m->slot_timer == 0 && !m->destroying)
        m->slot_timer = timer_arm(m, 0, on_slot_timer, m);
}

/* The next queued create goes out from this turn rather than from the slot timer: the
 * barrier before it then commits this turn's records (the answered create's deployment
 * record, its progress) together with its own, one journal commit instead of two. Only
 * from a reply callback, where no plugin op is on the stack. */
static void slot_pass_now(struct market *m)
{
    if (m->slot_timer == 0)
        return;
    timer_disarm(m, &m->slot_timer);
    on_slot_timer(m);
}

static void queue_remove(struct acq *a)
{
    struct market *m = a->m;
    struct acq **link = &m->queue_head;
    struct acq *prev = NULL;
    while (*link != NULL && *link != a) {
        prev = *link;
        link = &(*link)->queue_next;
    }
    if (*link == NULL)
        return;
    *link = a->queue_next;
    if (m->queue_tail == a)
        m->queue_tail = prev;
    a->queue_next = NULL;
}

/* The create record of a finishing acquire: kept (as stale, for the watch to reconcile) if
 * an attempt may have made a deployment that was never accounted for; dropped otherwise.
 * lazy: the drop reaches the KV with the next write of the records (pending_flush). */
static void pending_settle_as(struct acq *a, bool lazy)
{
    struct market *m = a->m;
    if (a->pend == NULL)
        return;
    if (a->unsure || a->had_uncertain) {
        /* The check right after the failure may have come before a slow marketplace made
         * the deployment: the watch looks once more, within the record's window. */
        a->pend->live = false;
        LOG(m, a->unsure ? SWP_LOG_WARN : SWP_LOG_DEBUG,
            "unit %s: a create may have made a deployment steward has not seen; the watch "
            "will look for it",
            a->key ? a->key : "-");
    } else {
        pending_remove(m, a->pend);
        if (lazy)
            m->pending_dirty = true;
        else
            persist_pending(m);
    }
    a->pend = NULL;
}

static void pending_settle(struct acq *a)
{
    pending_settle_as(a, false);
}

static void pending_flush(struct market *m)
{
    if (m->pending_dirty)
        persist_pending(m);
}

static void probe_end(struct acq *a);

static void acq_stop_work(struct acq *a)
{
    struct market *m = a->m;
    probe_end(a);
    timer_disarm(m, &a->timer);
    timer_disarm(m, &a->ready_timer);
    akash_call_cancel(a->call);
    a->call = NULL;
    pager_cancel(a->pager);
    a->pager = NULL;
    waiter_unlink(m, &a->providers_wait);
}

static void acq_finish(struct acq *a, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void acq_finish(struct acq *a, int status, const char *fmt, ...)
{
    struct market *m = a->m;
    if (a->finished)
        return;
    a->finished = true;
    acq_stop_work(a);
    timer_disarm(m, &a->deadline_timer);
    queue_remove(a);
    pending_settle(a);
    slot_release(a);
    if (a->prev)
        a->prev->next = a->next;
    else if (m->acqs == a)
        m->acqs = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;

    struct swp_error err = {.code = status};
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
        va_end(ap);
    }
    struct swp_unit unit;
    struct dep *d = a->dep;
    for (size_t i = 0; i < m->dep_count; i++)
        dep_unwait(m->deps[i], a);
    if (d != NULL) {
        d->acq = NULL;
        dep_fill_unit(d, &unit);
        unit.key = a->key;
    } else if (a->closed_dseq != NULL) {
        memset(&unit, 0, sizeof(unit));
        unit.size = sizeof(unit);
        unit.key = a->key;
        unit.market_id = a->closed_dseq;
        unit.group = a->group;
        unit.region = a->region;
        unit.tag = a->m->tag;
    }
    if (status < 0 && status != SWP_ECANCELED && (d != NULL || a->closed_dseq != NULL)) {
        unit.state = SWP_UNIT_CLOSED;
        unit.reason = err.msg;
        unit.uris = NULL;
        unit.uri_count = 0;
    }
    if (status < 0 && status != SWP_ECANCELED)
        LOG(m, SWP_LOG_WARN, "acquire %s in %s failed: %s", a->key ? a->key : "-", a->region,
            err.msg);
    else if (status == 0)
        LOG(m, SWP_LOG_DEBUG, "unit %s ready: deployment %s on %s at %.4f USD/h%s%s",
            a->key ? a->key : "-", d->dseq, d->provider, d->price_usd_hour,
            d->uri_count ? ", serving " : "", d->uri_count ? d->uris[0] : "");
    a->done(a->ud, status, d || a->closed_dseq ? &unit : NULL, status < 0 ? &err : NULL);
    if (a->in_cb == 0)
        acq_free(a);
}

/* Report progress; false when the acquire finished inside the callback (it may then be freed:
 * the caller returns at once). */
static bool acq_progress(struct acq *a, int state)
{
    struct swp_unit unit;
    dep_fill_unit(a->dep, &unit);
    unit.key = a->key;
    unit.state = state;
    if (state == SWP_UNIT_CREATED) {
        unit.provider = NULL;
        unit.price_usd_hour = 0;
    }
    unit.uris = NULL;
    unit.uri_count = 0;
    a->replayed = state;
    a->in_cb++;
    a->progress(a->ud, 0, &unit, NULL);
    a->in_cb--;
    if (a->finished) {
        if (a->in_cb == 0)
            acq_free(a);
        return false;
    }
    return true;
}

static void on_fail_closed(void *ud, int status, const char *dseq, const struct swp_error *err)
{
    struct acq *a = ud;
    a->dep = NULL; /* forgotten on success; on failure the watch owns it now */
    replace_str(&a->closed_dseq, dseq);
    if (status == 0)
        acq_finish(a, a->fail_code, "%s; deployment %s closed", a->fail_msg, dseq);
    else
        acq_finish(a, a->fail_code, "%s; closing deployment %s failed (%s), the watch retries",
                   a->fail_msg, dseq, err ? err->msg : "?");
}

/* Fail the acquire, closing what it created first (except on shutdown: a restart resumes). */
static void acq_fail(struct acq *a, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void acq_fail(struct acq *a, int code, const char *fmt, ...)
{
    if (a->finished)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->fail_msg, sizeof(a->fail_msg), fmt, ap);
    va_end(ap);
    a->fail_code = code;
    struct dep *d = a->dep;
    if (d == NULL || code == SWP_ECANCELED) {
        acq_finish(a, code, "%s", a->fail_msg);
        return;
    }
    acq_stop_work(a);
    timer_disarm(a->m, &a->deadline_timer);
    a->stage = ST_CLOSE;
    d->acq = NULL;
    if (dep_close_start(d, "acquire failed", on_fail_closed, a) < 0) {
        a->dep = NULL;
        replace_str(&a->closed_dseq, d->dseq);
        acq_finish(a, code, "%s; deployment %s left for the watch to close", a->fail_msg, d->dseq);
    }
}

static void acq_fail_err(struct acq *a, const struct swp_error *err)
{
    acq_fail(a, err->code ? err->code : SWP_EMARKET, "%s", err->msg);
}

/* A timer could not be armed: the host is going away. */
static void acq_no_timer(struct acq *a)
{
    acq_fail(a, SWP_ECANCELED, "the host could not start a timer");
}

/* ---- acquire: funds, create and the check after an uncertain create ----------------------- */

static void on_create(void *ud, const struct akash_reply *r);
static void start_bidding(struct acq *a, int64_t first_delay, bool resumed);
static void start_resume(struct acq *a);

static void take_slot(struct acq *a)
{
    struct market *m = a->m;
    if (m->creator == NULL || m->creator == a) {
        m->creator = a;
        start_create(a);
        return;
    }
    a->stage = ST_QUEUED;
    if (m->queue_tail)
        m->queue_tail->queue_next = a;
    else
        m->queue_head = a;
    m->queue_tail = a;
    LOG(m, SWP_LOG_DEBUG, "acquire %s waits for the create slot", a->key ? a->key : "-");
}

static void on_balance(void *ud, const struct akash_reply *r)
{
    struct acq *a = ud;
    struct market *m = a->m;
    a->call = NULL;
    struct swp_error err = {0};
    const char *what = "GET /v1/balances";
    if (!akash_reply_2xx(r)) {
        akash_reply_error(&m->client, r, what, &err);
        acq_fail_err(a, &err);
        return;
    }
    const cJSON *root = akash_reply_json(r, what, &err);
    struct akash_jctx c = {.err = &err};
    const cJSON *data = root ? akash_jobj(&c, root, "", "data") : NULL;
    const cJSON *balance = data ? cJSON_GetObjectItemCaseSensitive(data, "balance") : NULL;
    if (root != NULL && !c.failed && !cJSON_IsNumber(balance))
        akash_jfail(&c, "data", "balance", "expected number (USD), got %s",
                    akash_json_type(balance));
    if (root == NULL || c.failed) {
        if (root != NULL)
            akash_error_prefix(&err, what);
        acq_fail(a, SWP_EMARKET, "%s", err.msg);
        return;
    }
    if (balance->valuedouble < m->deposit_usd) {
        acq_finish(a, SWP_EFUNDS,
                   "the wallet balance (%.2f USD) cannot cover the %.2f USD deposit; not "
                   "buying until it can",
                   balance->valuedouble, m->deposit_usd);
        return;
    }
    m->funds_blocked = false;
    persist_funds(m);
    LOG(m, SWP_LOG_INFO, "wallet balance %.2f USD covers the deposit again: buying resumes",
        balance->valuedouble);
    take_slot(a);
}

static void start_funds_check(struct acq *a)
{
    struct market *m = a->m;
    a->stage = ST_BALANCE;
    a->call = akash_call_start(&m->client, "GET", "/v1/balances", NULL, true, AKASH_RETRY_SAFE,
                               on_balance, a);
    if (a->call == NULL)
        acq_fail(a, SWP_ECANCELED, "GET /v1/balances: the host refused the request");
}

static void start_create(struct acq *a)
{
    struct market *m = a->m;
    if (a->expired) {
        acq_finish(a, SWP_ETIMEDOUT, "no deployment created for %s within the deadline", a->region);
        return;
    }
    /* After a 402 nothing is created until the balance covers a deposit again; the check
     * runs while holding the slot, so queued acquires wait for its outcome. */
    if (m->funds_blocked) {
        start_funds_check(a);
        return;
    }
    a->stage = ST_CREATE;
    int64_t now = now_ms(m);
    if (a->pend == NULL)
        a->pend = pending_add(m, a, now);
    /* The window of this attempt ends when its answer can no longer arrive. */
    a->pend->until_ms = now + (int64_t)m->client.timeout_ms + 1000;
    persist_pending(m);

    struct akash_jw w = {0};
    akash_jw_open(&w, '{');
    akash_jw_key(&w, "data");
    akash_jw_open(&w, '{');
    akash_jw_kstr(&w, "sdl", a->sdl);
    akash_jw_knum(&w, "deposit", m->deposit_usd);
    akash_jw_close(&w, '}');
    akash_jw_close(&w, '}');
    char *text = akash_jw_take(&w);
    a->create_attempts++;
    a->unsure = true;
    a->call = akash_call_start(&m->client, "POST", "/v1/deployments", text, true, AKASH_RETRY_NONE,
                               on_create, a);
    free(text);
    if (a->call == NULL) {
        a->unsure = false;
        acq_fail(a, SWP_ECANCELED, "POST /v1/deployments: the host refused the request");
        return;
    }
    LOG(m, SWP_LOG_DEBUG, "acquire %s: creating a deployment in %s (attempt %d)",
        a->key ? a->key : "-", a->region, a->create_attempts);
}

static void on_create_retry(void *ud)
{
    struct acq *a = ud;
    a->timer = 0;
    start_create(a);
}

/* After a create attempt without a definite answer: retry, or give up. */
static void create_next(struct acq *a, int64_t retry_after_ms)
{
    struct market *m = a->m;
    if (a->expired) {
        acq_finish(a, SWP_ETIMEDOUT, "%s; the deadline passed", a->create_err.msg);
        return;
    }
    if (a->create_attempts > m->client.max_retries) {
        acq_finish(a, a->create_err.code ? a->create_err.code : SWP_EMARKET, "%s",
                   a->create_err.msg);
        return;
    }
    uint64_t delay = akash_backoff_ms(&m->client, a->create_attempts, retry_after_ms);
    LOG(m, SWP_LOG_INFO, "%s; retry %d/%d in %llu ms", a->create_err.msg, a->create_attempts,
        m->client.max_retries, (unsigned long long)delay);
    a->stage = ST_CREATE_WAIT;
    a->timer = timer_arm(m, delay, on_create_retry, a);
    if (a->timer == 0)
        acq_no_timer(a);
}

static void probe_done(struct acq *a);

static void on_probe_closed(void *ud, int status, const char *dseq, const struct swp_error *err)
{
    struct acq *a = ud;
    size_t len = strlen(a->create_err.msg);
    if (status == 0)
        snprintf(a->create_err.msg + len, sizeof(a->create_err.msg) - len,
                 "; the deployment it made (%s) was found and closed", dseq);
    else
        snprintf(a->create_err.msg + len, sizeof(a->create_err.msg) - len,
                 "; the deployment it made (%s) is being closed by the watch", dseq);
    if (--a->probe_closes == 0)
        probe_done(a);
}

static void on_probe(void *ud, int status, struct pager *p, const struct swp_error *err)
{
    struct acq *a = ud;
    a->pager = NULL;
    if (status < 0) {
        /* The record stays (stale) and the watch repeats the check. */
        if (status == SWP_ECANCELED) {
            acq_finish(a, SWP_ECANCELED, "%s", err ? err->msg : "cancelled");
            return;
        }
        acq_finish(a, a->create_err.code ? a->create_err.code : SWP_EMARKET,
                   "%s; checking whether it made a deployment failed too (%s)", a->create_err.msg,
                   err ? err->msg : "?");
        return;
    }
    a->probe_closes =
        reconcile_pending(a->m, p->items, p->count, NULL, a->pend, on_probe_closed, a);
    a->unsure = false;
    if (a->probe_closes == 0)
        probe_done(a);
}

/* Every deployment the lost create made is closed (or left to the watch): go on. */
static void probe_done(struct acq *a)
{
    if (a->create_final) {
        /* A 2xx the plugin could not read: the marketplace answers garbage, stop here. */
        acq_finish(a, SWP_EMARKET, "%s", a->create_err.msg);
        return;
    }
    create_next(a, 0);
}

static void start_probe(struct acq *a)
{
    a->stage = ST_PROBE;
    a->pager = pager_start(a->m, on_probe, a);
}

static void on_create(void *ud, const struct akash_reply *r)
{
    struct acq *a = ud;
    struct market *m = a->m;
    a->call = NULL;
    const char *what = "POST /v1/deployments";
    struct swp_error err = {0};
    if (r->status == SWP_ECANCELED) {
        acq_finish(a, SWP_ECANCELED, "%s: cancelled", what);
        return;
    }
    if (akash_reply_2xx(r)) {
        const cJSON *root = akash_reply_json(r, what, &err);
        struct akash_jctx c = {.err = &err};
        const cJSON *data = root ? akash_jobj(&c, root, "", "data") : NULL;
        const char *dseq = akash_jdseq(&c, data, "data", "dseq");
        const char *manifest = akash_jstr(&c, data, "data", "manifest");
        if (root == NULL || c.failed) {
            /* It was created (2xx) but the reply cannot be used: find it and close it. */
            if (root != NULL)
                akash_error_prefix(&err, what);
            a->create_err = err;
            a->create_err.code = SWP_EMARKET;
            a->create_final = true;
            a->had_uncertain = true;
            start_probe(a);
            return;
        }
        if (dep_find(m, dseq) != NULL) {
            a->unsure = false;
            acq_finish(a, SWP_EMARKET, "%s: answered dseq %s, which is already another unit's",
                       what, dseq);
            return;
        }
        struct dep *d = dep_add(m, dseq);
        int64_t now = now_ms(m);
        /* dseq is the marketplace's creation time in ms; trust it within a day of ours. */
        if (d->created_ms < now - 86400000 || d->created_ms > now + 86400000)
            d->created_ms = now;
        d->key = swp_xstrdup(a->key);
        d->tag = swp_xstrdup(m->tag);
        d->group = swp_xstrdup(a->group);
        d->region = swp_xstrdup(a->region);
        d->manifest = swp_xstrdup(manifest);
        d->acq = a;
        a->dep = d;
        /* Manifest, record, then index: whatever a crash leaves in between is unreferenced
         * (and the create's pending record still covers the deployment). */
        persist_manifest(d);
        persist_dep(d);
        persist_index(m);
        a->unsure = false;
        /* In a burst the next create's own write of the records (slot_pass_now) drops this
         * one: one KV write, not two. Until then a leftover entry is harmless: its
         * deployment's record is written above, and recovery skips a known dseq. */
        pending_settle_as(a, true);
        slot_release(a);
        LOG(m, SWP_LOG_DEBUG, "unit %s: deployment %s created in %s (deposit %.2f USD)",
            a->key ? a->key : "-", dseq, a->region, m->deposit_usd);
        if (a->expired) {
            pending_flush(m);
            acq_fail(a, SWP_ETIMEDOUT, "deployment %s was created after the deadline", dseq);
            return;
        }
        if (!acq_progress(a, SWP_UNIT_CREATED)) {
            pending_flush(m);
            return;
        }
        start_bidding(a, -1, false);
        slot_pass_now(m);
        pending_flush(m);
        return;
    }
    if (r->status == 0 && r->http_status == 402) {
        a->unsure = false;
        akash_reply_error(&m->client, r, what, &err);
        funds_block(m, err.msg);
        acq_finish(a, SWP_EFUNDS, "%s", err.msg);
        return;
    }
    akash_reply_error(&m->client, r, what, &err);
    a->create_err = err;
    if (r->status == 0 && r->http_status == 429) {
        a->unsure = false;
        create_next(a, r->retry_after_ms);
        return;
    }
    if (r->uncertain) {
        a->had_uncertain = true;
        start_probe(a);
        return;
    }
    a->unsure = false;
    acq_finish(a, err.code ? err.code : SWP_EMARKET, "%s", err.msg);
}

/* ---- acquire: bids ------------------------------------------------------------------------- */

/* The wait before the next poll for something the marketplace delivers after its own delay
 * (bids after the create, readiness after the lease), `elapsed` ms into that delay. Polling
 * every poll_interval costs a request per interval on every pending acquire; instead:
 * - with a learned delay (hint: earlier acquires' observations), the first poll goes just
 *   before it, so a steady marketplace is seen in one or two polls;
 * - otherwise, and after that, the gap grows with the time already waited (half of it): the
 *   thing is seen at most 50% late, in O(log) polls;
 * - with nothing learned at all (hint 0: a fresh process) a quarter of it, at most 25% late:
 *   all scopes without a hint then share one search (poll_decide), whose polls are few;
 * - never under POLL_FLOOR_MS (or poll_interval if smaller), never over poll_interval, and
 *   never sooner than the server's Retry-After. */
static int64_t poll_delay(const struct market *m, int64_t elapsed, double hint_ms,
                          int64_t retry_after_ms)
{
    int64_t cap = (int64_t)m->poll_interval_ms;
    int64_t floor = cap < POLL_FLOOR_MS ? cap : POLL_FLOOR_MS;
    if (elapsed < 0)
        elapsed = 0;
    int64_t delay = hint_ms > 0 ? elapsed / 2 : elapsed / 4;
    int64_t lead = (int64_t)(hint_ms * 0.9);
    if (hint_ms > 0 && elapsed < lead)
        delay = lead - elapsed;
    if (delay < floor)
        delay = floor;
    if (delay > cap)
        delay = cap;
    if (retry_after_ms > delay)
        delay = retry_after_ms;
    return delay;
}

/* poll_quiet_ms of a schedule that starts with the first poll (-1) or that resumed after a
 * restart (the delay started before this process: nothing to learn until a quiet poll). */
#define QUIET_NONE (-1)
#define QUIET_RESUMED (-2)

/* A poll `elapsed` ms in saw what quiet (the last poll that did not; QUIET_NONE: this was
 * the first poll) had not: the delay lies between the two; fold the midpoint into *hint. */
static void hint_learn(double *hint, int64_t quiet, int64_t elapsed)
{
    if (quiet == QUIET_RESUMED)
        return;
    double seen = (double)((quiet >= 0 ? quiet : 0) + elapsed) / 2;
    *hint = *hint > 0 ? *hint + HINT_WEIGHT * (seen - *hint) : seen;
}

static struct poll_scope *scope_get(struct market *m, int kind, const char *name)
{
    if (name == NULL)
        name = "";
    int64_t now = now_ms(m);
    size_t oldest = 0;
    for (size_t i = 0; i < m->scope_count; i++) {
        struct poll_scope *sc = m->scopes[i];
        if (sc->kind == kind && strcmp(sc->name, name) == 0) {
            sc->used_ms = now;
            return sc;
        }
        if (sc->prober == NULL &&
            (m->scopes[oldest]->prober != NULL || sc->used_ms < m->scopes[oldest]->used_ms))
            oldest = i;
    }
    struct poll_scope *sc;
    if (m->scope_count == SCOPES_MAX && m->scopes[oldest]->prober == NULL) {
        sc = m->scopes[oldest];
        free(sc->name);
    } else {
        struct poll_scope **grown = swp_xrealloc(m->scopes, (m->scope_count + 1) * sizeof(*grown));
        m->scopes = grown;
        sc = swp_xcalloc(1, sizeof(*sc));
        m->scopes[m->scope_count++] = sc;
    }
    *sc = (struct poll_scope){.kind = kind, .name = swp_xstrdup(name), .used_ms = now};
    return sc;
}

static double scope_hint(const struct market *m, const struct poll_scope *sc)
{
    if (sc->hint_ms > 0)
        return sc->hint_ms;
    return sc->kind == SCOPE_BIDS ? m->bid_hint_ms : m->ready_hint_ms;
}

static bool scope_cold(const struct poll_scope *sc)
{
    return sc->hint_ms <= 0;
}

static void quiet_note(const struct market *m, struct poll_scope *sc, int64_t elapsed)
{
    int64_t now = now_ms(m);
    if (sc->quiet_at_ms == 0 || elapsed > sc->quiet_elapsed_ms ||
        now - sc->quiet_at_ms > (int64_t)m->poll_interval_ms) {
        sc->quiet_elapsed_ms = elapsed;
        sc->quiet_at_ms = now;
    }
}

/* A poll `elapsed` ms in still saw nothing. */
static void scope_quiet(struct market *m, struct poll_scope *sc, int64_t elapsed)
{
    quiet_note(m, sc, elapsed);
    if (scope_cold(sc))
        quiet_note(m, &m->cold[sc->kind], elapsed);
}

/* A poll `elapsed` ms in saw it (quiet: this acquire's last quiet poll, QUIET_*). */
static void scope_seen(struct market *m, struct poll_scope *sc, int64_t quiet, int64_t elapsed)
{
    hint_learn(&sc->hint_ms, quiet, elapsed);
    hint_learn(sc->kind == SCOPE_BIDS ? &m->bid_hint_ms : &m->ready_hint_ms, quiet, elapsed);
    sc->quiet_at_ms = 0;
    /* Something of the kind was seen: another scope's quiet poll no longer says much. */
    m->cold[sc->kind].quiet_at_ms = 0;
}

enum poll_action { POLL_SEND, POLL_SKIP, POLL_DEFER };

/* Many acquires of one scope wait for the same delay (a burst in a region, units on one
 * provider), and their timers fire together. One poll answers for all of them:
 * - POLL_DEFER: a poll of the scope about as far into its wait is on the wire; ask again
 *   when its answer is in (about one round trip);
 * - POLL_SKIP: another deployment of the scope was just seen without it at least as far
 *   into its wait, so this one would see nothing either;
 * - POLL_SEND otherwise; the first sender becomes the scope's prober.
 * "As far": deployments of a burst reach an age a few ms apart and timers fire late, so a
 * quarter of the wait short counts (the schedule already accepts seeing the thing up to
 * half a wait late). An acquire still asks at least every poll_interval, so a scope whose
 * deployments differ costs latency only that long.
 * A scope that has never seen its thing (no hint: a fresh process, a new region or
 * provider) searches for the delay with polls whose gaps grow by half (poll_delay); the
 * cold scopes of a kind share that search (the cold scope), so a burst over ten providers
 * makes one search, not ten. Providers whose delays differ cost the same bounded latency as
 * above, and only until their scope has seen the thing once. *via is the scope that
 * decided (for defer_ms). */
static enum poll_action decide_in(const struct market *m, const struct poll_scope *sc,
                                  const struct acq *a, int64_t elapsed, int64_t slack)
{
    int64_t now = now_ms(m);
    int64_t cap = (int64_t)m->poll_interval_ms;
    if (sc->prober != NULL && sc->prober != a && sc->probe_age_ms + slack >= elapsed)
        return POLL_DEFER;
    /* Only another deployment's quiet poll, further in than a's own last one, says
     * anything: a's own is what its schedule (poll_delay) already stepped from, and with
     * the hint's wider slack it would skip every step of a search begun cold (a burst's
     * first units, a second late). */
    if (sc->quiet_at_ms != 0 && now - sc->quiet_at_ms <= cap &&
        sc->quiet_elapsed_ms + slack >= elapsed && sc->quiet_elapsed_ms > a->poll_quiet_ms)
        return POLL_SKIP;
    return POLL_SEND;
}

static enum poll_action poll_decide(const struct market *m, const struct poll_scope *sc,
                                    const struct acq *a, int64_t elapsed,
                                    const struct poll_scope **via)
{
    *via = sc;
    if (now_ms(m) - a->poll_sent_ms >= (int64_t)m->poll_interval_ms)
        return POLL_SEND;
    /* The finer steps of a search with nothing learned (poll_delay) need a finer "as far":
     * an eighth, below their quarter. */
    int64_t slack = scope_hint(m, sc) > 0 ? elapsed / 4 : elapsed / 8;
    enum poll_action act = decide_in(m, sc, a, elapsed, slack);
    if (act == POLL_SEND && scope_cold(sc)) {
        *via = &m->cold[sc->kind];
        act = decide_in(m, *via, a, elapsed, slack);
    }
    return act;
}

static void probe_take(struct acq *a, struct poll_scope *sc, int64_t elapsed,
                       struct poll_scope **slot)
{
    if (sc->prober != NULL)
        return;
    sc->prober = a;
    sc->probe_age_ms = elapsed;
    sc->probe_sent_ms = a->poll_sent_ms;
    *slot = sc;
}

static void probe_begin(struct acq *a, struct poll_scope *sc, int64_t elapsed)
{
    a->poll_sent_ms = now_ms(a->m);
    probe_take(a, sc, elapsed, &a->probing);
    if (scope_cold(sc))
        probe_take(a, &a->m->cold[sc->kind], elapsed, &a->probing_cold);
}

static void probe_drop(struct acq *a, struct poll_scope **slot)
{
    struct poll_scope *sc = *slot;
    if (sc == NULL)
        return;
    sc->rtt_ms = now_ms(a->m) - a->poll_sent_ms;
    sc->prober = NULL;
    *slot = NULL;
}

/* true: a may send its poll now. false: it waits in line; cb(a) runs when a slot frees. */
static bool poll_slot_take(struct acq *a, swp_timer_cb cb)
{
    struct market *m = a->m;
    if (m->polls_in_flight < POLL_CONCURRENCY) {
        m->polls_in_flight++;
        a->poll_out = true;
        return true;
    }
    a->poll_cb = cb;
    a->poll_queued = true;
    a->poll_next = NULL;
    if (m->poll_wait_tail != NULL)
        m->poll_wait_tail->poll_next = a;
    else
        m->poll_wait_head = a;
    m->poll_wait_tail = a;
    return false;
}

static void poll_unqueue(struct acq *a)
{
    struct market *m = a->m;
    struct acq *prev = NULL;
    for (struct acq *w = m->poll_wait_head; w != NULL; prev = w, w = w->poll_next) {
        if (w != a)
            continue;
        if (prev != NULL)
            prev->poll_next = a->poll_next;
        else
            m->poll_wait_head = a->poll_next;
        if (m->poll_wait_tail == a)
            m->poll_wait_tail = prev;
        break;
    }
    a->poll_next = NULL;
    a->poll_queued = false;
}

/* a's poll is answered (or a stopped): its slot goes to the first in line. */
static void poll_slot_release(struct acq *a)
{
    struct market *m = a->m;
    if (a->poll_queued)
        poll_unqueue(a);
    if (!a->poll_out)
        return;
    a->poll_out = false;
    m->polls_in_flight--;
    struct acq *w = m->poll_wait_head;
    if (w == NULL || m->destroying)
        return;
    poll_unqueue(w);
    /* From a timer, not from here: the caller is in the middle of a's own callback. */
    w->timer = timer_arm(m, 0, w->poll_cb, w);
    if (w->timer == 0)
        acq_no_timer(w);
}

/* The prober's answer is in (or it stopped): the deferred polls go on. */
static void probe_end(struct acq *a)
{
    probe_drop(a, &a->probing);
    probe_drop(a, &a->probing_cold);
    poll_slot_release(a);
}

/* How long a deferred poll waits before it looks again: about a round trip, longer while
 * the prober's answer is late (it may be waiting out a 429 or 5xx backoff). */
static uint64_t defer_ms(const struct market *m, const struct poll_scope *sc)
{
    int64_t d = sc->rtt_ms + 1;
    int64_t out = (now_ms(m) - sc->probe_sent_ms) / 2;
    if (d < out)
        d = out;
    return (uint64_t)(d < 2 ? 2 : d > 1000 ? 1000 : d);
}

static void on_bids_timer(void *ud);

static void schedule_poll(struct acq *a, int64_t delay)
{
    a->stage = ST_BIDS;
    a->timer = poll_timer_arm(a->m, delay > 0 ? (uint64_t)delay : 0, on_bids_timer, a);
    if (a->timer == 0)
        acq_no_timer(a);
}

/* The next bid poll, when the bids seen so far do not settle the choice. With min_bids 0
 * the whole window is waited for anyway, so only its end is polled. */
static void schedule_next_bids_poll(struct acq *a)
{
    struct market *m = a->m;
    int64_t now = now_ms(m);
    int64_t wait = a->window_end_ms - now;
    if (wait < 0)
        wait = 0;
    a->poll_quiet_ms = now - a->poll_from_ms;
    int64_t delay = wait;
    if (m->min_bids > 0 || a->choose_now) {
        delay =
            poll_delay(m, now - a->poll_from_ms, scope_hint(m, scope_get(m, SCOPE_BIDS, a->region)),
                       a->poll_retry_after_ms);
        if (delay > wait)
            delay = wait;
    } else if (delay < a->poll_retry_after_ms) {
        delay = a->poll_retry_after_ms;
    }
    a->poll_retry_after_ms = 0;
    schedule_poll(a, delay);
}

/* resumed: after a restart the window runs from the creation, with at least one poll.
 * first_delay < 0: the first poll follows the schedule (poll_delay). */
static void start_bidding(struct acq *a, int64_t first_delay, bool resumed)
{
    struct market *m = a->m;
    int64_t now = now_ms(m);
    a->window_end_ms = now + (int64_t)m->bid_window_ms;
    a->poll_from_ms = resumed ? a->dep->created_ms : now;
    a->poll_sent_ms = now;
    a->poll_quiet_ms = resumed ? QUIET_RESUMED : QUIET_NONE;
    if (resumed) {
        int64_t end = a->dep->created_ms + (int64_t)m->bid_window_ms;
        if (end < now + first_delay)
            end = now + first_delay;
        if (end < a->window_end_ms)
            a->window_end_ms = end;
    }
    if (first_delay < 0) {
        schedule_next_bids_poll(a);
        a->poll_quiet_ms = QUIET_NONE;
        return;
    }
    schedule_poll(a, first_delay);
}

enum verdict {
    V_OK = 0,
    V_NOT_OPEN,
    V_DENOM,
    V_PRICE,
    V_AVOID,
    V_DENY,
    V_ALLOW,
    V_ONLY,
    V_AUDIT,
    V_ATTR,
    V_REJECTED,
    V_COUNT,
};

static const char *const verdict_names[V_COUNT] = {
    "acceptable",
    "not open",
    "not priced in uact",
    "over max price",
    "avoided",
    "denied",
    "not in allow list",
    "not a pinned provider",
    "not audited",
    "missing required attributes",
    "lease refused",
};

static bool needs_providers(const struct market *m)
{
    return m->audited_only || m->req_count > 0;
}

static enum verdict bid_verdict_opt(const struct acq *a, const struct akash_bid *b,
                                    bool with_providers)
{
    const struct market *m = a->m;
    if (strcmp(b->state, "open") != 0)
        return V_NOT_OPEN;
    if (strcmp(b->price.denom, "uact") != 0)
        return V_DENOM;
    if (a->max_price > 0 && usd_hour(b->price.value) > a->max_price * (1 + 1e-12))
        return V_PRICE;
    if (in_list(a->avoid, a->avoid_count, b->provider))
        return V_AVOID;
    if (in_list(m->deny, m->deny_count, b->provider))
        return V_DENY;
    if (m->allow_count > 0 && !in_list(m->allow, m->allow_count, b->provider))
        return V_ALLOW;
    if (a->only_count > 0 && !in_list(a->only, a->only_count, b->provider))
        return V_ONLY;
    char id[256];
    snprintf(id, sizeof(id), "%s/%s", b->provider, b->bseq);
    if (in_list(a->rejected, a->rejected_count, id))
        return V_REJECTED;
    if (with_providers && needs_providers(m)) {
        const struct provider_info *p = provider_find(m, b->provider);
        if (m->audited_only && (p == NULL || !p->audited))
            return V_AUDIT;
        for (size_t i = 0; i < m->req_count; i++) {
            bool found = false;
            for (size_t j = 0; p != NULL && j < p->attr_count && !found; j++)
                found = strcmp(p->attr_keys[j], m->req_keys[i]) == 0 &&
                        strcmp(p->attr_values[j], m->req_values[i]) == 0;
            if (!found)
                return V_ATTR;
        }
    }
    return V_OK;
}

static enum verdict bid_verdict(const struct acq *a, const struct akash_bid *b)
{
    return bid_verdict_opt(a, b, true);
}

/* The marketplace rule: lower price; on a tie a preferred provider, then the earlier bid
 * (created_at is a block height, compared as an integer), then the provider address so the
 * choice never depends on the reply's order. */
static bool bid_better(const struct acq *a, const struct akash_bid *x, const struct akash_bid *y)
{
    if (x->price.value != y->price.value)
        return x->price.value < y->price.value;
    bool xp = in_list(a->prefer, a->prefer_count, x->provider);
    bool yp = in_list(a->prefer, a->prefer_count, y->provider);
    if (xp != yp)
        return xp;
    if (x->created_at != y->created_at)
        return x->created_at < y->created_at;
    return strcmp(x->provider, y->provider) < 0;
}

static void start_lease(struct acq *a);

/* Journal every bid and why the winner won (the core records events). */
static void emit_choice(struct acq *a, const struct akash_bid *best, const char *rule)
{
    struct market *m = a->m;
    struct akash_jw w = {0};
    akash_jw_open(&w, '{');
    akash_jw_kstr(&w, "provider", best->provider);
    akash_jw_kstr(&w, "price_uact", best->price.amount);
    akash_jw_knum(&w, "price_usd_hour", usd_hour(best->price.value));
    akash_jw_kstr(&w, "rule", rule);
    akash_jw_kstr(&w, "key", a->key);
    akash_jw_kstr(&w, "region", a->region);
    akash_jw_key(&w, "bids");
    akash_jw_open(&w, '[');
    for (size_t i = 0; i < a->bid_count && i < EVENT_BIDS_MAX; i++) {
        const struct akash_bid *b = &a->bids[i];
        akash_jw_open(&w, '{');
        akash_jw_kstr(&w, "provider", b->provider);
        akash_jw_kstr(&w, "state", b->state);
        akash_jw_kstr(&w, "price_uact", b->price.amount);
        akash_jw_knum(&w, "created_at", (double)b->created_at);
        akash_jw_kstr(&w, "verdict", verdict_names[bid_verdict(a, b)]);
        akash_jw_close(&w, '}');
    }
    akash_jw_close(&w, ']');
    akash_jw_close(&w, '}');
    char *text = akash_jw_take(&w);
    emit_text(m, "bid_chosen", a->dep->dseq, rule, text);
    free(text);
}

static void choose(struct acq *a)
{
    struct market *m = a->m;
    const struct akash_bid *best = NULL;
    size_t counts[V_COUNT] = {0};
    for (size_t i = 0; i < a->bid_count; i++) {
        const struct akash_bid *b = &a->bids[i];
        enum verdict v = bid_verdict(a, b);
        counts[v]++;
        if (v == V_OK && (best == NULL || bid_better(a, b, best)))
            best = b;
    }
    int64_t now = now_ms(m);
    if (best == NULL) {
        if (now < a->window_end_ms) {
            a->choose_now = false;
            schedule_next_bids_poll(a);
            return;
        }
        char window[32], reasons[160] = "";
        size_t used = 0;
        for (int v = V_NOT_OPEN; v < V_COUNT; v++) {
            if (counts[v] == 0 || used >= sizeof(reasons))
                continue;
            int n = snprintf(reasons + used, sizeof(reasons) - used, "%s%zu %s", used ? ", " : "",
                             counts[v], verdict_names[v]);
            if (n > 0)
                used += (size_t)n;
        }
        acq_fail(a, SWP_EMARKET, "no acceptable bid for %s within %s (%zu bid%s%s%s)", a->region,
                 fmt_duration(m->bid_window_ms, window, sizeof(window)), a->bid_count,
                 a->bid_count == 1 ? "" : "s", used ? ": " : "", reasons);
        return;
    }
    /* Which rule decided, for the journal. */
    const char *rule = "lowest_price";
    for (size_t i = 0; i < a->bid_count; i++) {
        const struct akash_bid *b = &a->bids[i];
        if (b == best || bid_verdict(a, b) != V_OK || b->price.value != best->price.value)
            continue;
        bool bp = in_list(a->prefer, a->prefer_count, best->provider);
        bool op = in_list(a->prefer, a->prefer_count, b->provider);
        rule = bp && !op ? "preferred_on_tie" : "earliest_on_tie";
        if (bp && !op)
            break;
    }
    replace_str(&a->lease_provider, best->provider);
    replace_str(&a->lease_amount, best->price.amount);
    a->lease_price_uact = best->price.value;
    a->lease_gseq = best->gseq;
    a->lease_oseq = best->oseq;
    LOG(m, SWP_LOG_DEBUG,
        "unit %s: deployment %s chooses %s at %s uact/block (%.4f USD/h, %s) among %zu "
        "acceptable of %zu bids",
        a->key ? a->key : "-", a->dep->dseq, best->provider, best->price.amount,
        usd_hour(best->price.value), rule, counts[V_OK], a->bid_count);
    emit_choice(a, best, rule);
    start_lease(a);
}

static void on_providers_for_bids(void *ud, int status, const struct swp_error *err)
{
    struct acq *a = ud;
    if (status < 0) {
        acq_fail(a, status == SWP_ECANCELED ? SWP_ECANCELED : SWP_EMARKET,
                 "cannot apply the provider filters: %s", err ? err->msg : "?");
        return;
    }
    choose(a);
}

static void evaluate_bids(struct acq *a)
{
    struct market *m = a->m;
    int64_t now = now_ms(m);
    size_t open = 0, passing = 0;
    for (size_t i = 0; i < a->bid_count; i++) {
        open += strcmp(a->bids[i].state, "open") == 0;
        passing += bid_verdict_opt(a, &a->bids[i], false) == V_OK;
    }
    bool enough = m->min_bids > 0 && passing >= (size_t)m->min_bids;
    struct poll_scope *sc = scope_get(m, SCOPE_BIDS, a->region);
    if (!a->choose_now && !enough && now < a->window_end_ms) {
        if (m->min_bids > 0)
            scope_quiet(m, sc, now - a->poll_from_ms);
        schedule_next_bids_poll(a);
        return;
    }
    if (enough && !a->bid_learned) {
        a->bid_learned = true;
        scope_seen(m, sc, a->poll_quiet_ms, now - a->poll_from_ms);
    }
    if (needs_providers(m) && open > 0) {
        a->providers_wait.cb = on_providers_for_bids;
        a->providers_wait.ud = a;
        int rc = providers_ensure(m, &a->providers_wait, PROVIDERS_TTL_MS);
        if (rc == 0)
            return;
        if (rc < 0) {
            acq_fail(a, rc, "GET /v1/providers: the host refused the request");
            return;
        }
    }
    choose(a);
}

static void on_bids(void *ud, const struct akash_reply *r)
{
    struct acq *a = ud;
    struct market *m = a->m;
    a->call = NULL;
    probe_end(a);
    char what[64];
    snprintf(what, sizeof(what), "GET /v1/bids?dseq=%s", a->dep->dseq);
    struct swp_error err = {0};
    if (!akash_reply_2xx(r)) {
        akash_reply_error(&m->client, r, what, &err);
        acq_fail_err(a, &err);
        return;
    }
    const cJSON *root = akash_reply_json(r, what, &err);
    struct akash_bid *bids = NULL;
    size_t count = 0;
    if (root == NULL || akash_parse_bids(root, a->dep->dseq, &bids, &count, &err) < 0) {
        if (root != NULL)
            akash_error_prefix(&err, what);
        acq_fail(a, SWP_EMARKET, "%s", err.msg);
        return;
    }
    akash_bids_free(a->bids, a->bid_count);
    a->bids = bids;
    a->bid_count = count;
    a->poll_retry_after_ms = r->retry_after_ms;
    int64_t now = now_ms(m);
    bool noted = false;
    for (size_t i = 0; i < count; i++) {
        if (strcmp(bids[i].state, "open") != 0 || strcmp(bids[i].price.denom, "uact") != 0)
            continue;
        if (price_note(m, bids[i].provider, a->region, usd_hour(bids[i].price.value), now))
            noted = true;
    }
    if (noted)
        prices_changed(m);
    evaluate_bids(a);
}

static void on_bids_timer(void *ud)
{
    struct acq *a = ud;
    struct market *m = a->m;
    a->timer = 0;
    int64_t now = now_ms(m);
    if (m->min_bids > 0 && !a->choose_now && now < a->window_end_ms) {
        struct poll_scope *sc = scope_get(m, SCOPE_BIDS, a->region);
        const struct poll_scope *via;
        int64_t elapsed = now - a->poll_from_ms;
        enum poll_action act = poll_decide(m, sc, a, elapsed, &via);
        if (act == POLL_DEFER) {
            schedule_poll(a, (int64_t)defer_ms(m, via));
            return;
        }
        if (act == POLL_SKIP) {
            int64_t quiet = a->poll_quiet_ms;
            schedule_next_bids_poll(a);
            a->poll_quiet_ms = quiet; /* nothing was observed */
            return;
        }
        if (!poll_slot_take(a, on_bids_timer))
            return;
        probe_begin(a, sc, elapsed);
    } else {
        if (!poll_slot_take(a, on_bids_timer))
            return;
        a->poll_sent_ms = now;
    }
    char path[64];
    snprintf(path, sizeof(path), "/v1/bids?dseq=%s", a->dep->dseq);
    a->call = akash_call_start(&m->client, "GET", path, NULL, true, AKASH_RETRY_SAFE, on_bids, a);
    if (a->call == NULL)
        acq_fail(a, SWP_ECANCELED, "GET %s: the host refused the request", path);
}

/* ---- acquire: lease and readiness --------------------------------------------------------- */

static void on_ready_timer(void *ud);
static void on_ready_timeout(void *ud);

static void schedule_ready_poll(struct acq *a, uint64_t delay)
{
    a->stage = ST_READY;
    a->poll_due_ms = now_ms(a->m) + (int64_t)delay;
    a->timer = poll_timer_arm(a->m, delay, on_ready_timer, a);
    if (a->timer == 0)
        acq_no_timer(a);
}

/* a's deployment was seen ready `elapsed` ms after its lease. The other deployments of its
 * scope (and those of cold scopes, which go by the hint just learned) wait for the same
 * delay, but their timers were set by the schedule before anything was known: one leased a
 * little later than the shared poll's took a 50% step and would poll up to half a wait late
 * (a burst's last units, a second more). Each poll due later than the moment its own
 * deployment is as old as this one is brought forward to that moment: the poll it would
 * have sent anyway, sent when its thing is likely there. */
static void ready_peers_forward(struct acq *a, const struct poll_scope *sc, int64_t elapsed)
{
    struct market *m = a->m;
    int64_t now = now_ms(m);
    for (struct acq *o = m->acqs; o != NULL; o = o->next) {
        if (o == a || o->stage != ST_READY || o->timer == 0 || o->dep == NULL ||
            o->poll_out || o->poll_queued)
            continue;
        int64_t at = o->poll_from_ms + elapsed;
        if (at < now)
            at = now;
        if (at + 5 >= o->poll_due_ms)
            continue;
        const struct poll_scope *osc = scope_get(m, SCOPE_READY, o->dep->provider);
        if (osc != sc && !scope_cold(osc))
            continue;
        timer_disarm(m, &o->timer);
        schedule_ready_poll(o, (uint64_t)(at - now));
    }
}

/* first_delay < 0: the first poll follows the schedule (poll_delay). */
static void start_readiness(struct acq *a, int64_t first_delay)
{
    struct market *m = a->m;
    int64_t now = now_ms(m);
    a->poll_from_ms = a->dep->leased_ms;
    a->poll_sent_ms = now;
    a->poll_quiet_ms = first_delay < 0 ? QUIET_NONE : QUIET_RESUMED;
    if (first_delay < 0)
        first_delay = poll_delay(m, now - a->poll_from_ms,
                                 scope_hint(m, scope_get(m, SCOPE_READY, a->dep->provider)), 0);
    int64_t until = a->dep->leased_ms + (int64_t)m->ready_timeout_ms;
    int64_t left = until - now;
    if (left < (int64_t)first_delay + 1)
        left = (int64_t)first_delay + 1;
    timer_disarm(m, &a->ready_timer);
    a->ready_timer = timer_arm(m, (uint64_t)left, on_ready_timeout, a);
    if (a->ready_timer == 0) {
        acq_no_timer(a);
        return;
    }
    schedule_ready_poll(a, (uint64_t)first_delay);
}

static void on_lease(void *ud, const struct akash_reply *r)
{
    struct acq *a = ud;
    struct market *m = a->m;
    struct dep *d = a->dep;
    a->call = NULL;
    const char *what = "POST /v1/leases";
    struct swp_error err = {0};
    if (akash_reply_2xx(r)) {
        const cJSON *root = akash_reply_json(r, what, &err);
        struct akash_jctx c = {.err = &err};
        if (root != NULL)
            akash_jobj(&c, root, "", "data");
        if (root == NULL || c.failed) {
            if (root != NULL)
                akash_error_prefix(&err, what);
            acq_fail(a, SWP_EMARKET, "%s", err.msg);
            return;
        }
        d->state = SWP_UNIT_LEASED;
        replace_str(&d->provider, a->lease_provider);
        replace_str(&d->price_amount, a->lease_amount);
        d->price_uact = a->lease_price_uact;
        d->price_usd_hour = usd_hour(a->lease_price_uact);
        d->gseq = a->lease_gseq;
        d->oseq = a->lease_oseq;
        d->leased_ms = now_ms(m);
        /* Not written here: the record says "created" until the unit is ready (one KV
         * write per acquire fewer). A restart in between re-derives the lease from the
         * marketplace: the resume's GET of the deployment shows it, and the lease is sent
         * again (idempotent) with the stored manifest; a listing updates the record. */
        LOG(m, SWP_LOG_DEBUG, "unit %s: deployment %s leased from %s at %.4f USD/h",
            a->key ? a->key : "-", d->dseq, d->provider, d->price_usd_hour);
        if (!acq_progress(a, SWP_UNIT_LEASED))
            return;
        start_readiness(a, -1);
        return;
    }
    akash_reply_error(&m->client, r, what, &err);
    bool refused = r->status == 0 && r->http_status >= 400 && r->http_status < 500 &&
                   r->http_status != 401 && r->http_status != 402 && r->http_status != 403 &&
                   r->http_status != 429;
    if (!refused) {
        acq_fail_err(a, &err);
        return;
    }
    /* The bid expired or was taken: choose the next one from a fresh look at the bids. */
    char id[256];
    for (size_t i = 0; i < a->bid_count; i++) {
        if (strcmp(a->bids[i].provider, a->lease_provider) == 0 &&
            a->bids[i].gseq == a->lease_gseq && a->bids[i].oseq == a->lease_oseq) {
            snprintf(id, sizeof(id), "%s/%s", a->bids[i].provider, a->bids[i].bseq);
            list_push(&a->rejected, &a->rejected_count, id);
        }
    }
    a->lease_attempts++;
    LOG(m, SWP_LOG_INFO, "unit %s: lease with %s refused (%s); choosing the next bid",
        a->key ? a->key : "-", a->lease_provider, err.msg);
    if (a->lease_attempts >= MAX_LEASE_ATTEMPTS) {
        acq_fail(a, SWP_EMARKET, "%d leases refused, the last: %s", a->lease_attempts, err.msg);
        return;
    }
    a->choose_now = true;
    schedule_poll(a, 0);
}

static void start_lease(struct acq *a)
{
    struct market *m = a->m;
    struct dep *d = a->dep;
    const char *manifest = dep_manifest(d);
    if (manifest == NULL) {
        acq_fail(a, SWP_EMARKET,
                 "deployment %s has no manifest to send (its create answer "
                 "was lost)",
                 d->dseq);
        return;
    }
    /* Not wrapped in {"data": ...}, and the manifest exactly as the create returned it. */
    struct akash_jw w = {0};
    akash_jw_open(&w, '{');
    akash_jw_kstr(&w, "manifest", manifest);
    akash_jw_key(&w, "leases");
    akash_jw_open(&w, '[');
    akash_jw_open(&w, '{');
    akash_jw_kstr(&w, "dseq", d->dseq);
    akash_jw_kint(&w, "gseq", a->lease_gseq);
    akash_jw_kint(&w, "oseq", a->lease_oseq);
    akash_jw_kstr(&w, "provider", a->lease_provider);
    akash_jw_close(&w, '}');
    akash_jw_close(&w, ']');
    akash_jw_close(&w, '}');
    char *text = akash_jw_take(&w);
    a->stage = ST_LEASE;
    a->call = akash_call_start(&m->client, "POST", "/v1/leases", text, true, AKASH_RETRY_SAFE,
                               on_lease, a);
    free(text);
    if (a->call == NULL)
        acq_fail(a, SWP_ECANCELED, "POST /v1/leases: the host refused the request");
}

/* The answer to GET /v1/deployments/{dseq} for an acquire in progress: true with *dr filled
 * (the caller clears it) when the deployment is active; otherwise the acquire has failed
 * (gone, the server's error, a parse error, or closed_fmt with the dseq for its %s). */
static bool read_active_deployment(struct acq *a, const struct akash_reply *r,
                                   const char *closed_fmt, struct akash_deployment *dr)
{
    struct market *m = a->m;
    struct dep *d = a->dep;
    char what[64];
    snprintf(what, sizeof(what), "GET /v1/deployments/%s", d->dseq);
    struct swp_error err = {0};
    memset(dr, 0, sizeof(*dr));
    if (r->status == 0 && r->http_status == 404) {
        acq_fail(a, SWP_EMARKET, "%s: the deployment is gone", what);
        return false;
    }
    if (!akash_reply_2xx(r)) {
        akash_reply_error(&m->client, r, what, &err);
        acq_fail_err(a, &err);
        return false;
    }
    const cJSON *root = akash_reply_json(r, what, &err);
    struct akash_jctx c = {.err = &err};
    const cJSON *data = root ? akash_jobj(&c, root, "", "data") : NULL;
    if (root == NULL || c.failed || akash_parse_deployment(data, "data", true, dr, &err) < 0) {
        akash_deployment_clear(dr);
        if (root != NULL)
            akash_error_prefix(&err, what);
        acq_fail(a, SWP_EMARKET, "%s", err.msg);
        return false;
    }
    if (strcmp(dr->state, "active") != 0) {
        akash_deployment_clear(dr);
        acq_fail(a, SWP_EMARKET, closed_fmt, d->dseq);
        return false;
    }
    return true;
}

static void on_status(void *ud, const struct akash_reply *r)
{
    struct acq *a = ud;
    struct market *m = a->m;
    struct dep *d = a->dep;
    a->call = NULL;
    probe_end(a);
    struct akash_deployment dr;
    if (!read_active_deployment(
            a, r, "deployment %s was closed by the marketplace before it was ready", &dr))
        return;
    const struct akash_lease *lease = akash_active_lease(&dr, d->provider);
    if (lease == NULL) {
        for (size_t i = 0; i < dr.lease_count; i++) {
            const struct akash_lease *l = &dr.leases[i];
            if (strcmp(l->provider, d->provider) != 0)
                continue;
            char reason[96];
            snprintf(reason, sizeof(reason), "%s", l->reason ? l->reason : l->state);
            akash_deployment_clear(&dr);
            acq_fail(a, SWP_EMARKET, "the lease with %s closed before it was ready (%s)",
                     d->provider, reason);
            return;
        }
    } else if (lease->ready) {
        struct poll_scope *seen_sc = scope_get(m, SCOPE_READY, d->provider);
        int64_t seen_elapsed = now_ms(m) - a->poll_from_ms;
        scope_seen(m, seen_sc, a->poll_quiet_ms, seen_elapsed);
        ready_peers_forward(a, seen_sc, seen_elapsed);
        dep_set_uris(d, lease->uris, lease->uri_count);
        d->state = SWP_UNIT_READY;
        /* No lease call follows for this deployment in this process. */
        free(d->manifest);
        d->manifest = NULL;
        persist_dep(d);
        akash_deployment_clear(&dr);
        acq_finish(a, 0, NULL);
        return;
    }
    akash_deployment_clear(&dr);
    int64_t elapsed = now_ms(m) - a->poll_from_ms;
    a->poll_quiet_ms = elapsed;
    struct poll_scope *sc = scope_get(m, SCOPE_READY, d->provider);
    scope_quiet(m, sc, elapsed);
    schedule_ready_poll(a, (uint64_t)poll_delay(m, elapsed, scope_hint(m, sc), r->retry_after_ms));
}

static void on_ready_timer(void *ud)
{
    struct acq *a = ud;
    struct market *m = a->m;
    a->timer = 0;
    int64_t elapsed = now_ms(m) - a->poll_from_ms;
    struct poll_scope *sc = scope_get(m, SCOPE_READY, a->dep->provider);
    const struct poll_scope *via;
    enum poll_action act = poll_decide(m, sc, a, elapsed, &via);
    if (act == POLL_DEFER) {
        schedule_ready_poll(a, defer_ms(m, via));
        return;
    }
    if (act == POLL_SKIP) {
        schedule_ready_poll(a, (uint64_t)poll_delay(m, elapsed, scope_hint(m, sc), 0));
        return;
    }
    if (!poll_slot_take(a, on_ready_timer))
        return;
    probe_begin(a, sc, elapsed);
    char path[64];
    snprintf(path, sizeof(path), "/v1/deployments/%s", a->dep->dseq);
    a->call = akash_call_start(&m->client, "GET", path, NULL, true, AKASH_RETRY_SAFE, on_status, a);
    if (a->call == NULL)
        acq_fail(a, SWP_ECANCELED, "GET %s: the host refused the request", path);
}

static void on_ready_timeout(void *ud)
{
    struct acq *a = ud;
    char window[32];
    a->ready_timer = 0;
    acq_fail(a, SWP_ETIMEDOUT, "deployment %s on %s was not ready within %s", a->dep->dseq,
             a->dep->provider ? a->dep->provider : "?",
             fmt_duration(a->m->ready_timeout_ms, window, sizeof(window)));
}

static void on_deadline(void *ud)
{
    struct acq *a = ud;
    char window[32];
    a->deadline_timer = 0;
    a->expired = true;
    fmt_duration(a->deadline_ms, window, sizeof(window));
    /* A create on the wire or being checked finishes first: its deployment must be known to
     * be closed. */
    if (a->stage == ST_PROBE || (a->stage == ST_CREATE && akash_call_on_wire(a->call))) {
        LOG(a->m, SWP_LOG_INFO,
            "acquire %s: deadline of %s passed during the create; "
            "finishing it first",
            a->key ? a->key : "-", window);
        return;
    }
    const char *stage = a->dep ? state_name(a->dep->state) : "ordered";
    acq_fail(a, SWP_ETIMEDOUT, "no ready unit for %s within %s (still %s)", a->region, window,
             stage);
}

/* ---- acquire: resuming a deployment the KV knows (same key) ------------------------------- */

static void on_resume(void *ud, const struct akash_reply *r)
{
    struct acq *a = ud;
    struct market *m = a->m;
    struct dep *d = a->dep;
    a->call = NULL;
    struct akash_deployment dr;
    if (!read_active_deployment(a, r, "deployment %s was closed while steward was away", &dr))
        return;
    const struct akash_lease *lease = akash_active_lease(&dr, NULL);
    if (lease == NULL) {
        akash_deployment_clear(&dr);
        LOG(m, SWP_LOG_INFO, "unit %s: deployment %s resumes waiting for bids",
            a->key ? a->key : "-", d->dseq);
        start_bidding(a, 0, true);
        return;
    }
    /* Leased just before the restart: send the manifest again (the lease call is
     * idempotent) and continue as leased. */
    replace_str(&a->lease_provider, lease->provider);
    replace_str(&a->lease_amount, lease->price.amount);
    a->lease_price_uact = lease->price.value;
    a->lease_gseq = lease->gseq;
    a->lease_oseq = lease->oseq;
    akash_deployment_clear(&dr);
    LOG(m, SWP_LOG_INFO, "unit %s: deployment %s was leased from %s before the restart",
        a->key ? a->key : "-", d->dseq, a->lease_provider);
    start_lease(a);
}

static void on_replay(void *ud)
{
    struct acq *a = ud;
    struct dep *d = a->dep;
    a->timer = 0;
    if (!acq_progress(a, SWP_UNIT_CREATED))
        return;
    if (d->state == SWP_UNIT_LEASED || d->state == SWP_UNIT_READY) {
        if (!acq_progress(a, SWP_UNIT_LEASED))
            return;
    }
    if (d->state == SWP_UNIT_READY) {
        acq_finish(a, 0, NULL);
        return;
    }
    if (d->state == SWP_UNIT_LEASED) {
        start_readiness(a, 0);
        return;
    }
    start_resume(a);
}

static void start_resume(struct acq *a)
{
    struct market *m = a->m;
    char path[64];
    snprintf(path, sizeof(path), "/v1/deployments/%s", a->dep->dseq);
    a->stage = ST_RESUME;
    a->call = akash_call_start(&m->client, "GET", path, NULL, true, AKASH_RETRY_SAFE, on_resume, a);
    if (a->call == NULL)
        acq_fail(a, SWP_ECANCELED, "GET %s: the host refused the request", path);
}

/* ---- acquire: a stale create record for this key ------------------------------------------ */

/* Each close of a deployment the interrupted create made; the last one lets the new create
 * go (a failed close is the watch's to retry: it can never be leased either way). */
static void on_key_closed(void *ud, int status, const char *dseq, const struct swp_error *err)
{
    struct acq *a = ud;
    if (--a->probe_closes > 0)
        return;
    take_slot(a);
}

static void on_key_check(void *ud, int status, struct pager *pg, const struct swp_error *err)
{
    struct acq *a = ud;
    struct market *m = a->m;
    a->pager = NULL;
    if (status < 0) {
        acq_finish(a, status == SWP_ECANCELED ? SWP_ECANCELED : SWP_EMARKET,
                   "cannot check for a deployment an interrupted create made: %s",
                   err ? err->msg : "?");
        return;
    }
    /* Settle the stale record of this key now; the new create gets a fresh window. */
    a->probe_closes = 1; /* held until the loop is done */
    for (size_t i = 0; i < m->pending_count;) {
        struct pending *p = m->pending[i];
        if (!p->live && p->key && a->key && strcmp(p->key, a->key) == 0) {
            a->probe_closes +=
                reconcile_pending(m, pg->items, pg->count, NULL, p, on_key_closed, a);
            pending_remove(m, p);
            persist_pending(m);
            continue;
        }
        i++;
    }
    on_key_closed(a, 0, NULL, NULL);
}

/* ---- market ops -------------------------------------------------------------------------- */

static bool is_stale_key(const struct market *m, const char *key)
{
    for (size_t i = 0; key != NULL && i < m->pending_count; i++)
        if (!m->pending[i]->live && m->pending[i]->key && strcmp(m->pending[i]->key, key) == 0)
            return true;
    return false;
}

static int ak_acquire(void *state, const struct swp_acquire_req *req, swp_unit_cb progress,
                      swp_unit_cb done, void *ud)
{
    struct market *m = state;
    if (req == NULL || req->size < sizeof(*req) || progress == NULL || done == NULL)
        return SWP_EINVAL;
    if (req->region == NULL || req->region[0] == '\0' || !(req->max_price_usd_hour >= 0))
        return SWP_EINVAL;
    if (req->key != NULL) {
        for (struct acq *other = m->acqs; other; other = other->next) {
            if (other->key && strcmp(other->key, req->key) == 0) {
                LOG(m, SWP_LOG_WARN, "acquire %s refused: already in flight", req->key);
                return SWP_EEXIST;
            }
        }
    }
    struct dep *existing = dep_find_key(m, req->key);

    struct acq *a = swp_xcalloc(1, sizeof(*a));
    a->m = m;
    a->key = swp_xstrdup(req->key);
    a->group = swp_xstrdup(req->group);
    a->region = swp_xstrdup(req->region);
    a->max_price = req->max_price_usd_hour;
    a->avoid = copy_list(req->avoid_providers, req->avoid_count);
    a->avoid_count = a->avoid ? req->avoid_count : 0;
    a->prefer = copy_list(req->prefer_providers, req->prefer_count);
    a->prefer_count = a->prefer ? req->prefer_count : 0;
    /* A hard constraint (the ML batch policy pins workers to the master's provider): a bid
     * from anyone else is never chosen, and with none from them the acquire fails. */
    a->only = copy_list(req->only_providers, req->only_count);
    a->only_count = a->only ? req->only_count : 0;
    a->deadline_ms = req->deadline_ms;
    a->started_ms = now_ms(m);
    a->progress = progress;
    a->done = done;
    a->ud = ud;
    a->next = m->acqs;
    if (m->acqs)
        m->acqs->prev = a;
    m->acqs = a;
    if (a->deadline_ms > 0) {
        a->deadline_timer = timer_arm(m, a->deadline_ms, on_deadline, a);
        if (a->deadline_timer == 0) {
            acq_finish(a, SWP_EIO, "the host could not start a timer");
            return 0;
        }
    }

    if (existing != NULL) {
        if (existing->state == SWP_UNIT_CLOSED) {
            acq_finish(a, SWP_EMARKET, "unit %s: deployment %s is being closed", req->key,
                       existing->dseq);
            return 0;
        }
        a->dep = existing;
        existing->acq = a;
        a->stage = ST_REPLAY;
        LOG(m, SWP_LOG_INFO, "acquire %s joins deployment %s (%s)", req->key, existing->dseq,
            state_name(existing->state));
        a->timer = timer_arm(m, 0, on_replay, a);
        if (a->timer == 0)
            acq_finish(a, SWP_EIO, "the host could not start a timer");
        return 0;
    }

    const char *tmpl = req->sdl_template ? req->sdl_template : m->sdl_template;
    if (tmpl == NULL) {
        acq_finish(a, SWP_ECONFIG,
                   "no SDL template for group %s: set groups.%s.sdl or "
                   "plugins.market_akash.sdl_template",
                   req->group ? req->group : "-", req->group ? req->group : "<group>");
        return 0;
    }
    struct akash_sdl_vars vars = {
        .region = req->region,
        .group = req->group,
        .key = req->key,
        .tag = m->tag,
        .max_price_uact = req->max_price_usd_hour > 0
                              ? req->max_price_usd_hour * AKASH_UACT_PER_USD / AKASH_BLOCKS_PER_HOUR
                              : m->default_max_price_uact,
        .auditors = (const char *const *)m->auditors,
        .auditor_count = m->auditor_count,
        .profile_json = req->profile_json,
    };
    struct swp_error err = {0};
    a->sdl = akash_sdl_render(tmpl, &vars, &err);
    if (a->sdl == NULL) {
        acq_finish(a, err.code ? err.code : SWP_ECONFIG, "%s", err.msg);
        return 0;
    }
    if (is_stale_key(m, req->key)) {
        /* This key's create was interrupted (a restart): whatever it made is found and
         * closed before a new create is sent. */
        a->stage = ST_PROBE;
        a->pager = pager_start(m, on_key_check, a);
        return 0;
    }
    take_slot(a);
    return 0;
}

/* ---- release ------------------------------------------------------------------------------- */

static void relop_finish(struct relop *r, int status, const struct swp_error *err)
{
    struct market *m = r->m;
    if (r->prev)
        r->prev->next = r->next;
    else if (m->releases == r)
        m->releases = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->done(r->ud, status, status < 0 ? err : NULL);
    free(r->dseq);
    free(r);
}

static void on_release_closed(void *ud, int status, const char *dseq, const struct swp_error *err)
{
    relop_finish(ud, status, err);
}

static void on_release_raw(void *ud, const struct akash_reply *reply)
{
    struct relop *r = ud;
    r->call = NULL;
    struct swp_error err = {0};
    int status = 0;
    if (!close_ok(reply)) {
        char what[64];
        snprintf(what, sizeof(what), "DELETE /v1/deployments/%s", r->dseq);
        status = akash_reply_error(&r->m->client, reply, what, &err);
    } else {
        LOG(r->m, SWP_LOG_INFO, "deployment %s closed", r->dseq);
    }
    relop_finish(r, status, &err);
}

static int ak_release(void *state, const char *market_id, swp_done_cb done, void *ud)
{
    struct market *m = state;
    if (market_id == NULL || done == NULL || !akash_is_dseq(market_id))
        return SWP_EINVAL;
    struct relop *r = swp_xcalloc(1, sizeof(*r));
    r->m = m;
    r->dseq = swp_xstrdup(market_id);
    r->done = done;
    r->ud = ud;
    r->next = m->releases;
    if (m->releases)
        m->releases->prev = r;
    m->releases = r;
    struct dep *d = dep_find(m, market_id);
    if (d != NULL) {
        if (d->acq != NULL)
            acq_finish(d->acq, SWP_ECANCELED, "deployment %s was released before it was ready",
                       d->dseq);
        LOG(m, SWP_LOG_INFO, "release deployment %s (unit %s, %s)", d->dseq, d->key ? d->key : "-",
            state_name(d->state));
        if (dep_close_start(d, "released", on_release_closed, r) < 0) {
            struct swp_error err;
            akash_set_error(&err, SWP_ECANCELED,
                            "DELETE /v1/deployments/%s: the host refused "
                            "the request",
                            market_id);
            relop_finish(r, SWP_ECANCELED, &err);
        }
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/v1/deployments/%s", market_id);
    LOG(m, SWP_LOG_INFO, "release deployment %s (not in this plugin's records)", market_id);
    r->call = akash_call_start(&m->client, "DELETE", path, NULL, true, AKASH_RETRY_SAFE,
                               on_release_raw, r);
    if (r->call == NULL) {
        struct swp_error err;
        akash_set_error(&err, SWP_ECANCELED, "DELETE %s: the host refused the request", path);
        relop_finish(r, SWP_ECANCELED, &err);
    }
    return 0;
}

/* ---- list -------------------------------------------------------------------------------- */

static void listop_free(struct listop *l)
{
    struct market *m = l->m;
    if (l->prev)
        l->prev->next = l->next;
    else if (m->lists == l)
        m->lists = l->next;
    if (l->next)
        l->next->prev = l->prev;
    for (size_t i = 0; l->calls != NULL && i < l->count; i++)
        akash_call_cancel(l->calls[i]);
    pager_cancel(l->pager);
    for (size_t i = 0; i < l->count; i++)
        akash_deployment_clear(&l->items[i]);
    free(l->items);
    free(l->skip);
    free(l->need_check);
    free(l->calls);
    free(l->checks);
    free(l);
}

static void list_report(struct listop *l)
{
    struct market *m = l->m;
    struct swp_unit *units = swp_xcalloc(l->count, sizeof(*units));
    size_t n = 0;
    for (size_t i = 0; i < l->count; i++) {
        if (l->skip[i])
            continue;
        const struct akash_deployment *item = &l->items[i];
        const struct dep *d = dep_find(m, item->dseq);
        const struct akash_lease *lease = akash_active_lease(item, d ? d->provider : NULL);
        if (lease == NULL)
            lease = akash_active_lease(item, NULL);
        struct swp_unit *u = &units[n++];
        u->size = sizeof(*u);
        u->market_id = item->dseq;
        u->key = d ? d->key : item->marker_key;
        u->tag = d ? d->tag : item->marker_tag;
        u->group = d ? d->group : NULL;
        u->region = d ? d->region : NULL;
        u->created_ms = d ? d->created_ms : dseq_ms(item->dseq);
        if (d != NULL && item->marker_key != NULL && d->key != NULL &&
            strcmp(d->key, item->marker_key) != 0)
            LOG(m, SWP_LOG_WARN,
                "deployment %s: the KV says unit %s, its SDL says %s; "
                "using the KV",
                item->dseq, d->key, item->marker_key);
        if (lease == NULL) {
            u->state = SWP_UNIT_CREATED;
            continue;
        }
        u->provider = lease->provider;
        u->price_usd_hour = usd_hour(lease->price.value);
        bool ready = lease->ready || (d != NULL && d->state == SWP_UNIT_READY);
        u->state = ready ? SWP_UNIT_READY : SWP_UNIT_LEASED;
        if (ready && lease->uri_count > 0) {
            u->uris = (const char *const *)lease->uris;
            u->uri_count = lease->uri_count;
        } else if (ready && d != NULL) {
            u->uris = (const char *const *)d->uris;
            u->uri_count = d->uri_count;
        }
    }
    LOG(m, SWP_LOG_DEBUG, "listed %zu open deployments (%zu of them this instance's)", n,
        (size_t)m->dep_count);
    l->done(l->ud, 0, units, n, NULL);
    free(units);
}

static void list_pump(struct listop *l);

static void on_list_check(void *ud, const struct akash_reply *r);

static void list_done_ok(struct listop *l)
{
    /* Unlinked first: the callback may list again, and destroy must not see it. */
    struct market *m = l->m;
    if (l->prev)
        l->prev->next = l->next;
    else if (m->lists == l)
        m->lists = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
    list_report(l);
    listop_free(l);
}

static void list_pump(struct listop *l)
{
    struct market *m = l->m;
    while (l->checks_running < CHECK_CONCURRENCY && l->next_check < l->count) {
        size_t i = l->next_check++;
        if (!l->need_check[i])
            continue;
        char path[64];
        snprintf(path, sizeof(path), "/v1/deployments/%s", l->items[i].dseq);
        l->checks[i].l = l;
        l->checks[i].index = i;
        l->calls[i] = akash_call_start(&m->client, "GET", path, NULL, true, AKASH_RETRY_SAFE,
                                       on_list_check, &l->checks[i]);
        if (l->calls[i] == NULL)
            continue;
        l->checks_running++;
    }
    if (l->checks_running == 0 && l->next_check >= l->count)
        list_done_ok(l);
}

static void on_list_check(void *ud, const struct akash_reply *r)
{
    const struct list_check *check = ud;
    struct listop *l = check->l;
    size_t i = check->index;
    struct market *m = l->m;
    l->calls[i] = NULL;
    l->checks_running--;
    if (r->status == SWP_ECANCELED) {
        struct swp_error err;
        akash_set_error(&err, SWP_ECANCELED, "list cancelled");
        swp_units_cb done = l->done;
        void *done_ud = l->ud;
        listop_free(l);
        done(done_ud, SWP_ECANCELED, NULL, 0, &err);
        return;
    }
    struct swp_error err = {0};
    const cJSON *data =
        akash_reply_2xx(r) && r->root ? cJSON_GetObjectItemCaseSensitive(r->root, "data") : NULL;
    struct akash_deployment dr;
    memset(&dr, 0, sizeof(dr));
    if (data != NULL && akash_parse_deployment(data, "data", true, &dr, &err) == 0 &&
        strcmp(dr.dseq, l->items[i].dseq) == 0) {
        akash_deployment_clear(&l->items[i]);
        l->items[i] = dr;
        struct dep *d = dep_find(m, dr.dseq);
        const struct akash_lease *lease = akash_active_lease(&dr, NULL);
        /* Bring the record up to date when no acquire is driving it. */
        if (d != NULL && d->acq == NULL && d->state != SWP_UNIT_CLOSED && lease != NULL) {
            bool changed = false;
            if (d->state == SWP_UNIT_CREATED || d->provider == NULL) {
                d->state = SWP_UNIT_LEASED;
                replace_str(&d->provider, lease->provider);
                replace_str(&d->price_amount, lease->price.amount);
                d->price_uact = lease->price.value;
                d->price_usd_hour = usd_hour(lease->price.value);
                d->gseq = lease->gseq;
                d->oseq = lease->oseq;
                d->leased_ms = now_ms(m);
                changed = true;
            }
            if (lease->ready && d->state != SWP_UNIT_READY) {
                d->state = SWP_UNIT_READY;
                dep_set_uris(d, lease->uris, lease->uri_count);
                changed = true;
            }
            if (changed)
                persist_dep(d);
        }
    } else {
        akash_deployment_clear(&dr);
        LOG(m, SWP_LOG_DEBUG, "list: details of deployment %s unavailable (%s)", l->items[i].dseq,
            err.msg[0] ? err.msg : "no usable reply");
    }
    list_pump(l);
}

static void on_list_pages(void *ud, int status, struct pager *p, const struct swp_error *err)
{
    struct listop *l = ud;
    struct market *m = l->m;
    l->pager = NULL;
    if (status < 0) {
        swp_units_cb done = l->done;
        void *done_ud = l->ud;
        struct swp_error copy = *err;
        listop_free(l);
        done(done_ud, status, NULL, 0, &copy);
        return;
    }
    /* Take the items from the pager. */
    struct akash_deployment *items = p->items;
    size_t count = p->count;
    l->items = items;
    l->count = count;
    p->items = NULL;
    p->count = 0;
    l->skip = swp_xcalloc(count, sizeof(bool));
    l->need_check = swp_xcalloc(count, sizeof(bool));
    l->calls = swp_xcalloc(count, sizeof(*l->calls));
    l->checks = swp_xcalloc(count, sizeof(*l->checks));
    for (size_t i = 0; i < count; i++) {
        const struct akash_deployment *item = &items[i];
        const struct dep *d = dep_find(m, item->dseq);
        if (strcmp(item->state, "active") != 0 || (d != NULL && d->state == SWP_UNIT_CLOSED)) {
            l->skip[i] = true;
            continue;
        }
        /* Details (lease status) only for this instance's leased deployments whose
         * readiness the records do not already know. */
        l->need_check[i] = d != NULL && d->acq == NULL && d->state != SWP_UNIT_READY &&
                           akash_active_lease(item, NULL) != NULL;
    }
    /* A create that lost its answer (a crash) made a deployment nobody can lease: close it.
     * Only while no create is running, so a fresh dseq is never mistaken for a lost one. */
    if (m->creator == NULL && pending_has_stale(m))
        reconcile_pending(m, l->items, l->count, l->skip, NULL, NULL, NULL);
    list_pump(l);
}

static int ak_list(void *state, swp_units_cb done, void *ud)
{
    struct market *m = state;
    if (done == NULL)
        return SWP_EINVAL;
    struct listop *l = swp_xcalloc(1, sizeof(*l));
    l->m = m;
    l->done = done;
    l->ud = ud;
    l->next = m->lists;
    if (m->lists)
        m->lists->prev = l;
    m->lists = l;
    l->pager = pager_start(m, on_list_pages, l);
    return 0;
}

/* ---- offers ------------------------------------------------------------------------------- */

static void offersop_free(struct offersop *o)
{
    struct market *m = o->m;
    waiter_unlink(m, &o->wait);
    if (o->prev)
        o->prev->next = o->next;
    else if (m->offers == o)
        m->offers = o->next;
    if (o->next)
        o->next->prev = o->prev;
    free(o);
}

static bool provider_acceptable(const struct market *m, const struct provider_info *p)
{
    if (!p->online || p->region == NULL)
        return false;
    if (in_list(m->deny, m->deny_count, p->owner))
        return false;
    if (m->allow_count > 0 && !in_list(m->allow, m->allow_count, p->owner))
        return false;
    if (m->audited_only && !p->audited)
        return false;
    for (size_t i = 0; i < m->req_count; i++) {
        bool found = false;
        for (size_t j = 0; j < p->attr_count && !found; j++)
            found = strcmp(p->attr_keys[j], m->req_keys[i]) == 0 &&
                    strcmp(p->attr_values[j], m->req_values[i]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static void offers_report(struct offersop *o)
{
    struct market *m = o->m;
    struct swp_offer *offers = swp_xcalloc(m->price_count, sizeof(*offers));
    size_t n = 0;
    for (size_t i = 0; i < m->price_count; i++) {
        const struct price_seen *seen = &m->prices[i];
        const struct provider_info *p = provider_find(m, seen->provider);
        if (p == NULL || !provider_acceptable(m, p))
            continue;
        offers[n++] = (struct swp_offer){
            .provider = seen->provider,
            .region = seen->region,
            .price_usd_hour = seen->usd_hour,
            .audited = p->audited,
        };
    }
    swp_offers_cb done = o->done;
    void *ud = o->ud;
    offersop_free(o);
    done(ud, 0, offers, n, NULL);
    free(offers);
}

static void on_offers_providers(void *ud, int status, const struct swp_error *err)
{
    struct offersop *o = ud;
    if (status < 0) {
        swp_offers_cb done = o->done;
        void *done_ud = o->ud;
        struct swp_error copy = *err;
        offersop_free(o);
        done(done_ud, status, NULL, 0, &copy);
        return;
    }
    offers_report(o);
}

static int ak_offers(void *state, swp_offers_cb done, void *ud)
{
    struct market *m = state;
    if (done == NULL)
        return SWP_EINVAL;
    struct offersop *o = swp_xcalloc(1, sizeof(*o));
    o->m = m;
    o->done = done;
    o->ud = ud;
    o->wait.cb = on_offers_providers;
    o->wait.ud = o;
    o->next = m->offers;
    if (m->offers)
        m->offers->prev = o;
    m->offers = o;
    int rc = providers_ensure(m, &o->wait, PROVIDERS_TTL_MS);
    if (rc == 1) {
        offers_report(o);
    } else if (rc < 0) {
        offersop_free(o);
        return rc;
    }
    return 0;
}

/* ---- watch --------------------------------------------------------------------------------- */

static void wcheck_free(struct wcheck *w)
{
    struct market *m = w->m;
    if (w->prev)
        w->prev->next = w->next;
    else if (m->checks == w)
        m->checks = w->next;
    if (w->next)
        w->next->prev = w->prev;
    free(w->dseq);
    free(w);
}

static void unit_lost(struct dep *d, const char *reason)
{
    struct market *m = d->m;
    LOG(m, SWP_LOG_WARN, "unit %s: deployment %s on %s was lost (%s)", d->key ? d->key : "-",
        d->dseq, d->provider ? d->provider : "-", reason);
    cJSON *data = cJSON_CreateObject();
    json_add_str(data, "provider", d->provider);
    json_add_str(data, "region", d->region);
    json_add_str(data, "group", d->group);
    json_add_str(data, "key", d->key);
    emit(m, "unit_lost", d->dseq, reason, data);
}

static void on_topup(void *ud, const struct akash_reply *r)
{
    struct dep *d = ud;
    struct market *m = d->m;
    d->topup_call = NULL;
    if (akash_reply_2xx(r)) {
        LOG(m, SWP_LOG_INFO, "deployment %s: escrow topped up with %.2f USD", d->dseq,
            m->deposit_usd);
        return;
    }
    struct swp_error err = {0};
    akash_reply_error(&m->client, r, "POST /v1/deposit-deployment", &err);
    if (err.code == SWP_EFUNDS)
        funds_block(m, err.msg);
    else if (err.code != SWP_ECANCELED)
        LOG(m, SWP_LOG_WARN, "deployment %s: top-up failed: %s", d->dseq, err.msg);
}

static void escrow_check(struct dep *d, const struct akash_deployment *dr)
{
    struct market *m = d->m;
    if (!dr->has_escrow || !(d->price_uact > 0))
        return;
    double burn_uact_hour = d->price_uact * AKASH_BLOCKS_PER_HOUR;
    d->runway_hours = dr->escrow_uact / burn_uact_hour;
    if (!(m->topup_below_hours > 0))
        return;
    if (d->runway_hours >= m->topup_below_hours) {
        d->escrow_alerted = false;
        return;
    }
    if (!d->escrow_alerted) {
        d->escrow_alerted = true;
        cJSON *data = cJSON_CreateObject();
        cJSON_AddNumberToObject(data, "runway_hours", d->runway_hours);
        cJSON_AddNumberToObject(data, "funds_usd", dr->escrow_uact / AKASH_UACT_PER_USD);
        cJSON_AddNumberToObject(data, "burn_usd_hour", d->price_usd_hour);
        json_add_str(data, "key", d->key);
        emit(m, "alert", d->dseq, "escrow_low", data);
        LOG(m, SWP_LOG_WARN, "deployment %s: escrow runway %.2f h is below %.2f h", d->dseq,
            d->runway_hours, m->topup_below_hours);
    }
    int64_t now = now_ms(m);
    int64_t spacing = 10 * (int64_t)m->watch_interval_ms;
    if (d->topup_call != NULL || (d->topup_ms != 0 && now - d->topup_ms < spacing) ||
        m->funds_blocked)
        return;
    d->topup_ms = now;
    cJSON *body = cJSON_CreateObject();
    cJSON *data = cJSON_AddObjectToObject(body, "data");
    cJSON_AddStringToObject(data, "dseq", d->dseq);
    cJSON_AddNumberToObject(data, "deposit", m->deposit_usd);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    d->topup_call = akash_call_start(&m->client, "POST", "/v1/deposit-deployment", text, true,
                                     AKASH_RETRY_RATE_ONLY, on_topup, d);
    free(text);
}

static void watch_pump(struct market *m);

static void on_wcheck(void *ud, const struct akash_reply *r)
{
    struct wcheck *w = ud;
    struct market *m = w->m;
    w->call = NULL;
    m->checks_running--;
    struct dep *d = dep_find(m, w->dseq);
    if (d != NULL)
        d->watch_busy = false;
    if (r->status == SWP_ECANCELED || d == NULL || d->acq != NULL || d->state == SWP_UNIT_CLOSED) {
        wcheck_free(w);
        if (r->status != SWP_ECANCELED)
            watch_pump(m);
        return;
    }
    char what[64];
    snprintf(what, sizeof(what), "GET /v1/deployments/%s", d->dseq);
    struct swp_error err = {0};
    if (r->status == 0 && r->http_status == 404) {
        unit_lost(d, "deployment_not_found");
        dep_remove(d);
    } else if (!akash_reply_2xx(r)) {
        akash_reply_error(&m->client, r, what, &err);
        LOG(m, SWP_LOG_DEBUG, "watch: %s", err.msg);
    } else {
        const cJSON *root = akash_reply_json(r, what, &err);
        struct akash_jctx c = {.err = &err};
        const cJSON *data = root ? akash_jobj(&c, root, "", "data") : NULL;
        struct akash_deployment dr;
        memset(&dr, 0, sizeof(dr));
        if (root == NULL || c.failed || akash_parse_deployment(data, "data", true, &dr, &err) < 0) {
            if (root != NULL)
                akash_error_prefix(&err, what);
            LOG(m, SWP_LOG_WARN, "watch: %s", err.msg);
        } else {
            const struct akash_lease *mine = NULL;
            for (size_t i = 0; i < dr.lease_count; i++) {
                const struct akash_lease *l = &dr.leases[i];
                if (d->provider && strcmp(l->provider, d->provider) != 0)
                    continue;
                if (mine == NULL || strcmp(l->state, "active") == 0)
                    mine = l;
            }
            if (strcmp(dr.state, "active") != 0) {
                unit_lost(d, mine && mine->reason ? mine->reason : "deployment_closed");
                dep_remove(d);
            } else if (mine == NULL || strcmp(mine->state, "active") != 0) {
                char reason[96];
                snprintf(reason, sizeof(reason), "%s",
                         mine == NULL   ? "lease_missing"
                         : mine->reason ? mine->reason
                                        : mine->state);
                unit_lost(d, reason);
                /* The group is paused for good: close the deployment to get the rest of
                 * the escrow back. */
                dep_close_start(d, reason, NULL, NULL);
            } else {
                if (mine->ready && d->state == SWP_UNIT_LEASED) {
                    d->state = SWP_UNIT_READY;
                    dep_set_uris(d, mine->uris, mine->uri_count);
                    persist_dep(d);
                }
                escrow_check(d, &dr);
            }
        }
        akash_deployment_clear(&dr);
    }
    wcheck_free(w);
    watch_pump(m);
}

static void watch_pump(struct market *m)
{
    while (m->checks_running < CHECK_CONCURRENCY && m->check_queue_count > 0) {
        char *dseq = m->check_queue[--m->check_queue_count];
        struct dep *d = dep_find(m, dseq);
        if (d == NULL || d->acq != NULL || d->watch_busy || d->state == SWP_UNIT_CLOSED) {
            free(dseq);
            continue;
        }
        struct wcheck *w = swp_xcalloc(1, sizeof(*w));
        w->m = m;
        w->dseq = dseq;
        w->next = m->checks;
        if (m->checks)
            m->checks->prev = w;
        m->checks = w;
        char path[64];
        snprintf(path, sizeof(path), "/v1/deployments/%s", dseq);
        w->call =
            akash_call_start(&m->client, "GET", path, NULL, true, AKASH_RETRY_SAFE, on_wcheck, w);
        if (w->call == NULL) {
            wcheck_free(w);
            continue;
        }
        d->watch_busy = true;
        m->checks_running++;
    }
}

static void on_sweep(void *ud, int status, struct pager *p, const struct swp_error *err)
{
    struct market *m = ud;
    m->sweep = NULL;
    if (status < 0) {
        if (status != SWP_ECANCELED)
            LOG(m, SWP_LOG_WARN, "watch: cannot look for lost creates: %s", err ? err->msg : "?");
        return;
    }
    if (m->creator == NULL)
        reconcile_pending(m, p->items, p->count, NULL, NULL, NULL, NULL);
}

static void on_watch(void *ud)
{
    struct market *m = ud;
    m->watch_timer = timer_arm(m, m->watch_interval_ms, on_watch, m);
    for (size_t i = 0; i < m->dep_count; i++) {
        struct dep *d = m->deps[i];
        if (d->acq != NULL)
            continue;
        if (d->state == SWP_UNIT_CLOSED) {
            if (d->close_call == NULL)
                dep_close_start(d, NULL, NULL, NULL);
            continue;
        }
        /* A deployment waiting for bids that no acquire drives any more (steward restarted
         * and nobody asked again) is checked once the marketplace would have closed it. */
        bool abandoned =
            d->state == SWP_UNIT_CREATED && now_ms(m) - d->created_ms > ABANDONED_AFTER_MS;
        if ((d->state == SWP_UNIT_CREATED && !abandoned) || d->watch_busy ||
            in_list(m->check_queue, m->check_queue_count, d->dseq))
            continue;
        list_push(&m->check_queue, &m->check_queue_count, d->dseq);
    }
    watch_pump(m);
    if (m->sweep == NULL && m->creator == NULL && pending_has_stale(m))
        m->sweep = pager_start(m, on_sweep, m);
}

/* ---- configuration and lifecycle --------------------------------------------------------- */

static int cfg_strings(struct market *m, const char *name, char ***out, size_t *count,
                       struct swp_error *err)
{
    const char *text = m->host->cfg_json(m->host, name);
    *out = NULL;
    *count = 0;
    if (text == NULL)
        return 0;
    cJSON *array = cJSON_Parse(text);
    const cJSON *items = cJSON_IsArray(array) ? array : NULL;
    int rc = 0;
    const cJSON *item;
    size_t index = 0;
    cJSON_ArrayForEach(item, items)
    {
        if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
            rc = akash_set_error(err, SWP_ECONFIG,
                                 "%s[%zu]: expected a non-empty string, "
                                 "got %s",
                                 name, index, akash_json_type(item));
            break;
        }
        list_push(out, count, item->valuestring);
        index++;
    }
    cJSON_Delete(array);
    return rc;
}

static int cfg_attributes(struct market *m, struct swp_error *err)
{
    const char *text = m->host->cfg_json(m->host, "required_attributes");
    if (text == NULL)
        return 0;
    cJSON *obj = cJSON_Parse(text);
    const cJSON *members = cJSON_IsObject(obj) ? obj : NULL;
    int rc = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, members)
    {
        if (!cJSON_IsString(item)) {
            rc = akash_set_error(err, SWP_ECONFIG,
                                 "required_attributes.%s: expected string, "
                                 "got %s",
                                 item->string, akash_json_type(item));
            break;
        }
        list_push(&m->req_keys, &m->req_count, item->string);
        m->req_count--;
        list_push(&m->req_values, &m->req_count, item->valuestring);
    }
    cJSON_Delete(obj);
    return rc;
}

static int read_template(struct market *m, const char *path, struct swp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return akash_set_error(err, SWP_ECONFIG, "sdl_template: cannot open %s", path);
    char *text = swp_xcalloc(1, (size_t)TEMPLATE_MAX + 1);
    size_t len = fread(text, 1, (size_t)TEMPLATE_MAX + 1, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || len > (size_t)TEMPLATE_MAX) {
        free(text);
        return akash_set_error(err, SWP_ECONFIG,
                               "sdl_template: %s is unreadable or larger "
                               "than %ld bytes",
                               path, TEMPLATE_MAX);
    }
    text[len] = '\0';
    m->sdl_template = text;
    return 0;
}

static void load_deps(struct market *m)
{
    char *value = NULL;
    if (m->host->kv_get(m->host, INDEX_KEY, &value) < 0)
        return;
    cJSON *index = cJSON_Parse(value);
    m->host->free(value);
    const cJSON *entries = cJSON_IsArray(index) ? index : NULL;
    const cJSON *item;
    cJSON_ArrayForEach(item, entries)
    {
        if (!cJSON_IsString(item) || !akash_is_dseq(item->valuestring) ||
            dep_find(m, item->valuestring) != NULL)
            continue;
        char key[48];
        snprintf(key, sizeof(key), "dep/%s", item->valuestring);
        char *text = NULL;
        if (m->host->kv_get(m->host, key, &text) < 0) {
            LOG(m, SWP_LOG_WARN, "deployment %s is in the index but not stored", item->valuestring);
            continue;
        }
        cJSON *o = cJSON_Parse(text);
        m->host->free(text);
        int state = state_parse(json_str(o, "state"));
        const char *dseq = json_str(o, "dseq");
        if (state < 0 || dseq == NULL || strcmp(dseq, item->valuestring) != 0) {
            LOG(m, SWP_LOG_WARN, "deployment %s: unreadable record, ignored", item->valuestring);
            cJSON_Delete(o);
            continue;
        }
        struct dep *d = dep_add(m, dseq);
        d->state = state;
        d->created_ms = (int64_t)json_num(o, "created_ms", (double)d->created_ms);
        d->key = swp_xstrdup(json_str(o, "key"));
        d->tag = swp_xstrdup(json_str(o, "tag"));
        d->group = swp_xstrdup(json_str(o, "group"));
        d->region = swp_xstrdup(json_str(o, "region"));
        const char *legacy = json_str(o, "manifest");
        if (legacy != NULL && d->state < SWP_UNIT_READY) {
            /* A record from before "dep/<dseq>/manifest" that may still need a lease: move the
             * manifest there (the record loses it at its next rewrite). */
            d->manifest = swp_xstrdup(legacy);
            persist_manifest(d);
        }
        d->provider = swp_xstrdup(json_str(o, "provider"));
        d->gseq = (int64_t)json_num(o, "gseq", 1);
        d->oseq = (int64_t)json_num(o, "oseq", 1);
        d->price_amount = swp_xstrdup(json_str(o, "price_amount"));
        d->leased_ms = (int64_t)json_num(o, "leased_ms", 0);
        d->close_reason = swp_xstrdup(json_str(o, "close_reason"));
        if (d->price_amount != NULL && akash_parse_decimal(d->price_amount, &d->price_uact))
            d->price_usd_hour = usd_hour(d->price_uact);
        const cJSON *uri;
        cJSON_ArrayForEach(uri, cJSON_GetObjectItemCaseSensitive(o, "uris"))
        {
            if (cJSON_IsString(uri))
                list_push(&d->uris, &d->uri_count, uri->valuestring);
        }
        if (d->state >= SWP_UNIT_LEASED && d->state != SWP_UNIT_CLOSED && d->provider == NULL)
            d->state = SWP_UNIT_CREATED;
        cJSON_Delete(o);
    }
    cJSON_Delete(index);
}

static void load_state(struct market *m)
{
    load_deps(m);
    char *value = NULL;
    if (m->host->kv_get(m->host, PENDING_KEY, &value) == 0) {
        cJSON *array = cJSON_Parse(value);
        m->host->free(value);
        const cJSON *records = cJSON_IsArray(array) ? array : NULL;
        const cJSON *item;
        cJSON_ArrayForEach(item, records)
        {
            struct pending *p = swp_xcalloc(1, sizeof(*p));
            p->key = swp_xstrdup(json_str(item, "key"));
            p->tag = swp_xstrdup(json_str(item, "tag"));
            p->group = swp_xstrdup(json_str(item, "group"));
            p->region = swp_xstrdup(json_str(item, "region"));
            p->started_ms = (int64_t)json_num(item, "started_ms", 0);
            p->until_ms = (int64_t)json_num(item, "until_ms", 0);
            struct pending **grown =
                swp_xrealloc(m->pending, (m->pending_count + 1) * sizeof(*grown));
            m->pending = grown;
            m->pending[m->pending_count++] = p;
        }
        cJSON_Delete(array);
    }
    if (m->host->kv_get(m->host, PRICES_KEY, &value) == 0) {
        cJSON *obj = cJSON_Parse(value);
        m->host->free(value);
        const cJSON *seen = cJSON_IsObject(obj) ? obj : NULL;
        const cJSON *item;
        cJSON_ArrayForEach(item, seen)
        {
            const char *provider = json_str(item, "provider");
            const char *region = json_str(item, "region");
            if (provider && region)
                price_note(m, provider, region, json_num(item, "usd_hour", 0),
                           (int64_t)json_num(item, "at_ms", 0));
        }
        cJSON_Delete(obj);
    }
    if (m->host->kv_get(m->host, FUNDS_KEY, &value) == 0) {
        m->funds_blocked = true;
        m->host->free(value);
    }
}

static void market_free(struct market *m)
{
    for (size_t i = 0; i < m->dep_count; i++)
        dep_free(m->deps[i]);
    free(m->deps);
    for (size_t i = 0; i < m->pending_count; i++) {
        free(m->pending[i]->key);
        free(m->pending[i]->tag);
        free(m->pending[i]->group);
        free(m->pending[i]->region);
        free(m->pending[i]);
    }
    free(m->pending);
    for (size_t i = 0; i < m->price_count; i++) {
        free(m->prices[i].provider);
        free(m->prices[i].region);
    }
    free(m->prices);
    for (size_t i = 0; i < m->scope_count; i++) {
        free(m->scopes[i]->name);
        free(m->scopes[i]);
    }
    free(m->scopes);
    providers_clear(m);
    free_list(m->check_queue, m->check_queue_count);
    free_list(m->auditors, m->auditor_count);
    free_list(m->allow, m->allow_count);
    free_list(m->deny, m->deny_count);
    free_list(m->req_keys, m->req_count);
    free_list(m->req_values, m->req_count);
    free(m->sdl_template);
    free(m->client.base_url);
    if (m->client.auth_header != NULL) {
        memset(m->client.auth_header, 0, strlen(m->client.auth_header));
        free(m->client.auth_header);
    }
    free(m);
}

static int ak_init(const struct swp_host *host, void **state, struct swp_error *err)
{
    struct market *m = swp_xcalloc(1, sizeof(*m));
    m->host = host;
    m->tag = host->instance_id(host);
    m->client.host = host;
    m->cold[SCOPE_BIDS].kind = SCOPE_BIDS;
    m->cold[SCOPE_READY].kind = SCOPE_READY;
    const char *base = host->cfg_str(host, "base_url");
    const char *key = host->cfg_str(host, "api_key_env");
    const char *tmpl_path = host->cfg_str(host, "sdl_template");
    int64_t max_retries = host->cfg_int(host, "max_retries");
    int64_t request_timeout = host->cfg_int(host, "request_timeout");
    int64_t bid_window = host->cfg_int(host, "bid_window");
    int64_t poll = host->cfg_int(host, "poll_interval");
    int64_t ready_timeout = host->cfg_int(host, "ready_timeout");
    int64_t watch = host->cfg_int(host, "watch_interval");
    int64_t backoff_base = host->cfg_int(host, "backoff_base");
    int64_t backoff_max = host->cfg_int(host, "backoff_max");
    m->min_bids = host->cfg_int(host, "min_bids");
    m->deposit_usd = host->cfg_double(host, "deposit_usd");
    m->audited_only = host->cfg_bool(host, "audited_only");
    m->topup_below_hours = host->cfg_double(host, "topup_below_hours");
    m->default_max_price_uact = host->cfg_double(host, "default_max_price_uact");

    int rc = SWP_ECONFIG;
    if (base == NULL || (strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0)) {
        akash_set_error(err, SWP_ECONFIG, "base_url: expected an http(s):// URL");
        goto fail;
    }
    if (key == NULL || key[0] == '\0') {
        akash_set_error(err, SWP_ECONFIG,
                        "api_key_env: the variable holding the API key is "
                        "not set");
        goto fail;
    }
    for (const char *p = key; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            akash_set_error(err, SWP_ECONFIG,
                            "api_key_env: the API key contains control "
                            "characters");
            goto fail;
        }
    }
    if (!(m->deposit_usd >= 0.5)) {
        akash_set_error(err, SWP_ECONFIG,
                        "deposit_usd: expected a number >= 0.5 (the "
                        "Console's minimum deposit), got %g",
                        m->deposit_usd);
        goto fail;
    }
    if (max_retries < 0 || max_retries > 20) {
        akash_set_error(err, SWP_ECONFIG, "max_retries: expected 0 to 20");
        goto fail;
    }
    if (request_timeout < 1 || request_timeout > 600000) {
        akash_set_error(err, SWP_ECONFIG, "request_timeout: expected 1ms to 10m");
        goto fail;
    }
    if (bid_window < 0 || bid_window > MAX_BID_WINDOW_MS) {
        akash_set_error(err, SWP_ECONFIG,
                        "bid_window: expected at most 9m (the marketplace "
                        "closes a deployment without a lease after ~10 min)");
        goto fail;
    }
    if (poll < 1 || ready_timeout < 1 || watch < 1 || backoff_base < 1 ||
        backoff_max < backoff_base) {
        akash_set_error(err, SWP_ECONFIG,
                        "poll_interval, ready_timeout, watch_interval and "
                        "backoff_base must be > 0, and backoff_max >= backoff_base");
        goto fail;
    }
    if (m->min_bids < 0 || !(m->topup_below_hours >= 0) || !(m->default_max_price_uact > 0)) {
        akash_set_error(err, SWP_ECONFIG,
                        "min_bids and topup_below_hours must be >= 0, "
                        "default_max_price_uact > 0");
        goto fail;
    }
    size_t base_len = strlen(base);
    while (base_len > 0 && base[base_len - 1] == '/')
        base_len--;
    m->client.base_url = swp_xcalloc(1, base_len + 1);
    memcpy(m->client.base_url, base, base_len);
    m->client.auth_header = swp_xasprintf("x-api-key: %s", key);
    m->client.secret = key;
    m->client.timeout_ms = (uint32_t)request_timeout;
    m->client.max_retries = (int)max_retries;
    m->client.backoff_base_ms = (uint64_t)backoff_base;
    m->client.backoff_max_ms = (uint64_t)backoff_max;
    m->bid_window_ms = (uint64_t)bid_window;
    m->poll_interval_ms = (uint64_t)poll;
    m->ready_timeout_ms = (uint64_t)ready_timeout;
    m->watch_interval_ms = (uint64_t)watch;
    if (cfg_strings(m, "auditors", &m->auditors, &m->auditor_count, err) < 0 ||
        cfg_strings(m, "allow_providers", &m->allow, &m->allow_count, err) < 0 ||
        cfg_strings(m, "deny_providers", &m->deny, &m->deny_count, err) < 0 ||
        cfg_attributes(m, err) < 0)
        goto fail;
    if (tmpl_path != NULL && read_template(m, tmpl_path, err) < 0)
        goto fail;
    load_state(m);
    m->watch_timer = timer_arm(m, m->watch_interval_ms, on_watch, m);
    if (m->watch_timer == 0) {
        akash_set_error(err, SWP_EIO, "the host could not start the watch timer");
        rc = SWP_EIO;
        goto fail;
    }
    char window[32], ready[32];
    LOG(m, SWP_LOG_INFO,
        "Console at %s; deposit %.2f USD, bid window %s, ready timeout %s; "
        "%zu deployments and %zu interrupted creates on record%s",
        m->client.base_url, m->deposit_usd, fmt_duration(m->bid_window_ms, window, sizeof(window)),
        fmt_duration(m->ready_timeout_ms, ready, sizeof(ready)), m->dep_count, m->pending_count,
        m->funds_blocked ? "; buying stopped until the balance covers a "
                           "deposit"
                         : "");
    *state = m;
    return 0;
fail:
    if (err != NULL && err->code == 0)
        err->code = rc;
    market_free(m);
    return rc;
}

static void ak_destroy(void *state)
{
    struct market *m = state;
    if (m == NULL)
        return;
    m->destroying = true;
    timer_disarm(m, &m->watch_timer);
    timer_disarm(m, &m->slot_timer);
    if (m->prices_timer != 0) {
        timer_disarm(m, &m->prices_timer);
        persist_prices(m);
    }
    /* Deployments stay in the KV as they are: the next start resumes them. */
    while (m->acqs != NULL)
        acq_finish(m->acqs, SWP_ECANCELED, "market_akash is shutting down");
    struct swp_error cancelled;
    akash_set_error(&cancelled, SWP_ECANCELED, "market_akash is shutting down");
    while (m->lists != NULL) {
        struct listop *l = m->lists;
        swp_units_cb done = l->done;
        void *ud = l->ud;
        listop_free(l);
        done(ud, SWP_ECANCELED, NULL, 0, &cancelled);
    }
    while (m->offers != NULL) {
        struct offersop *o = m->offers;
        swp_offers_cb done = o->done;
        void *ud = o->ud;
        offersop_free(o);
        done(ud, SWP_ECANCELED, NULL, 0, &cancelled);
    }
    for (size_t i = 0; i < m->dep_count; i++) {
        struct dep *d = m->deps[i];
        while (d->close_waiters != NULL) {
            struct close_waiter *w = d->close_waiters;
            d->close_waiters = w->next;
            w->cb(w->ud, SWP_ECANCELED, d->dseq, &cancelled);
            free(w);
        }
    }
    while (m->releases != NULL)
        relop_finish(m->releases, SWP_ECANCELED, &cancelled);
    while (m->checks != NULL)
        wcheck_free(m->checks);
    while (m->pagers != NULL)
        pager_free(m->pagers);
    akash_client_drop_all(&m->client);
    market_free(m);
}

static const struct swp_config_entry ak_config[] = {
    {"base_url", SWP_CFG_STRING, "\"https://console-api.akash.network\"", false,
     "Console API base URL (sandbox: https://console-api-sandbox.akash.network)."},
    {"api_key_env", SWP_CFG_SECRET_ENV, NULL, true,
     "Name of the environment variable holding the Console API key (sent as x-api-key, "
     "never logged)."},
    {"deposit_usd", SWP_CFG_DOUBLE, "5", false,
     "Escrow deposit per deployment in USD (>= 0.5); also the top-up amount."},
    {"sdl_template", SWP_CFG_PATH, NULL, false,
     "Default SDL template file; a group's own \"sdl\" wins. Placeholders in "
     "docs/market_akash.md."},
    {"auditors", SWP_CFG_ARRAY, "[]", false,
     "Auditor addresses for the placement's signedBy.anyOf ({{auditors}})."},
    {"default_max_price_uact", SWP_CFG_DOUBLE, "10000", false,
     "{{max_price_uact}} when the group sets no max_price_usd_hour (uact per block)."},
    {"bid_window", SWP_CFG_DURATION, "\"30s\"", false,
     "How long bids are collected after the deployment is created (at most 9m)."},
    {"min_bids", SWP_CFG_INT, "0", false,
     "Choose as soon as this many open bids are in (0: always wait the whole bid_window)."},
    {"poll_interval", SWP_CFG_DURATION, "\"3s\"", false,
     "Interval between polls of bids and of a lease's readiness."},
    {"ready_timeout", SWP_CFG_DURATION, "\"5m\"", false,
     "Give up (and close the deployment) when a lease is not ready this long after it "
     "was created."},
    {"max_retries", SWP_CFG_INT, "5", false,
     "Retries of a request after 429, 5xx or a timeout (0 to 20)."},
    {"backoff_base", SWP_CFG_DURATION, "\"500ms\"", false,
     "First retry delay; doubles per retry, with jitter."},
    {"backoff_max", SWP_CFG_DURATION, "\"30s\"", false,
     "Largest retry delay (a server's Retry-After may ask for more)."},
    {"allow_providers", SWP_CFG_ARRAY, "[]", false,
     "Only lease from these provider addresses (empty: any)."},
    {"deny_providers", SWP_CFG_ARRAY, "[]", false, "Never lease from these provider addresses."},
    {"audited_only", SWP_CFG_BOOL, "false", false,
     "Only lease from providers GET /v1/providers reports as audited."},
    {"required_attributes", SWP_CFG_OBJECT, "{}", false,
     "Provider attributes a bid's provider must have, e.g. {\"tier\": \"community\"}."},
    {"topup_below_hours", SWP_CFG_DOUBLE, "0", false,
     "Alert escrow_low and deposit deposit_usd again when a deployment's escrow runway "
     "falls below this many hours (0: off)."},
    {"request_timeout", SWP_CFG_DURATION, "\"30s\"", false, "Timeout of one HTTP request."},
    {"watch_interval", SWP_CFG_DURATION, "\"30s\"", false,
     "Interval between checks of owned deployments (lost leases, escrow, lost creates)."},
};

static const struct swp_market_ops ak_market_ops = {
    .size = sizeof(struct swp_market_ops),
    .acquire = ak_acquire,
    .release = ak_release,
    .list = ak_list,
    .offers = ak_offers,
};

static const struct swp_plugin ak_plugin = {
    .abi_major = SWP_ABI_MAJOR,
    .abi_minor = SWP_ABI_MINOR,
    .size = sizeof(struct swp_plugin),
    .name = "market_akash",
    .version = "1.0.0",
    .description = "Akash Network through the Console managed-wallet API: deployments, bids, "
                   "leases, escrow top-ups",
    .kinds = SWP_KIND_MARKET,
    .config = ak_config,
    .config_count = sizeof(ak_config) / sizeof(ak_config[0]),
    .init = ak_init,
    .destroy = ak_destroy,
    .market = &ak_market_ops,
};

SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void)
{
    return &ak_plugin;
}
