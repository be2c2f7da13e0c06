#include "runtime.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "guard.h"
#include "ha.h"
#include "http_client.h"
#include "dns_sync.h"
#include "journal.h"
#include "json_writer.h"
#include "log.h"
#include "mem.h"
#include "name_index.h"
#include "net.h"
#include "planner.h"
#include "plugin_host.h"
#include "policy.h"
#include "spread.h"
#include "track_record.h"
#include "event_json.h" /* event_json */

#define DEFAULT_OP_GRACE_MS 30000
#define DEFAULT_OFFERS_EVERY_MS 30000
#define DEFAULT_WATCH_EVERY_MS 30000
#define RELEASE_DEADLINE_MS 120000

/* One marketplace operation in flight. It lives until the plugin calls done (the ABI
 * promises exactly once, SW_ECANCELED on destroy), even when the runtime stopped
 * waiting for it, so a late completion never touches freed memory. */
struct market_op {
    struct market_op *next;
    struct sw_runtime *rt;
    int kind;             /* SW_ACTION_ACQUIRE / SW_ACTION_RELEASE */
    char *unit_key;
    char *intent_key;
    uint64_t deadline_timer;
    bool abandoned;       /* the runtime gave up waiting (deadline) or is shutting down */
    bool finished;
};

struct policy_slot {
    struct sw_runtime *rt;
    struct sw_policy *policy;
    const struct sw_policy_config *config;
    uint64_t timer;
    int64_t interval_ms;
    bool paused;
    /* admin API counters (see the end of this file) */
    uint64_t evaluations;
    uint64_t errors;
    int64_t last_eval_ms;
    double last_duration_ms;
    char *last_error;
    struct sw_runtime_hist duration;
    struct sw_policy_result res; /* reused by every tick (sw_policy_result_reset) */
    /* snapshots: the time of the last ctx.state snapshot journaled since start */
    bool snapshot_taken;
    int64_t snapshot_ms;
};

struct metric_slot {
    struct sw_runtime *rt;
    const struct sw_metric_config *config;
    struct sw_plugin *plugin;
    uint64_t timer;
    int64_t every_ms;
    bool in_flight;
};

/* A plugin event waiting to be handled outside the plugin's call stack. */
struct pending_event {
    struct pending_event *next;
    char *type;
    char *market_id;
    char *reason;
    char *data_json;
};

/* dns: a release held back until its unit left DNS and drained (intent already begun). */
struct deferred_release {
    struct deferred_release *next;
    char *unit_key;
    char *intent_key;
};

struct sw_runtime {
    struct sw_runtime_opts opts;
    const struct sw_config *config;
    struct sw_clock *clock;
    struct sw_journal *journal;
    struct sw_plugin_host *plugins;
    struct sw_plugin *market;
    const struct swp_market_ops *market_ops;
    struct sw_guard *guard;
    struct sw_http_client *http; /* created lazily: libcurl and TLS cost memory */

    struct policy_slot *policies;
    size_t policy_count;
    struct metric_slot *metrics_slots;
    size_t metric_count;

    struct sw_units units;
    struct sw_offers offers;
    struct sw_metric_set metrics;
    struct sw_desired desired; /* merged over policies, after the guard's clamp */
    struct sw_planner_memo plan_memo; /* the last empty plan's inputs */
    /* the watch pass's indexes, emptied and refilled on each pass (their slots are
     * kept: four tables allocated per pass were a tenth of a simulation). Between passes
     * they hold stale borrowed names and are never read. */
    struct sw_name_index watch_ix[4];
    /* which entries of the listing being synced sync_units paired with a unit (it
     * compared their market id or key): close_orphans knows those already. */
    bool *listed_matched;
    size_t listed_matched_count;
    size_t listed_matched_cap;
    /* the market's list_version read before the watch pass's list call (0: none
     * or not a watch pass): equal when the answer arrives, units paired under it keep
     * their pairing (struct sw_unit watch_*) and the listing is indexed only for others. */
    uint64_t watch_version_before;

    struct market_op *ops;
    size_t ops_in_flight;
    struct pending_event *events_head;
    struct pending_event *events_tail;
    uint64_t events_timer;

    uint64_t offers_timer;
    uint64_t watch_timer;
    uint64_t unit_seq;
    bool running;
    bool stopping;
    bool recovered;
    bool offers_in_flight;
    bool watch_in_flight;
    struct sw_runtime_stats stats;
    /* admin API state (see the end of this file) */
    uint64_t refused_by_kind[2];
    struct admin_override *overrides;
    size_t override_count;
    uint64_t override_timer;
    struct sw_runtime_http_stats *http_stats;
    size_t http_stat_count;
    bool quiesced; /* sw_runtime_quiesce: finishing, no longer deciding */
    /* dns: the net service (created lazily, like http), the DNS sync and the releases it
     * holds back until their unit is withdrawn from DNS and drained. */
    struct sw_net *net;
    struct sw_dns_sync *dns;
    struct deferred_release *deferred;

    /* probes (geo): the scheduler at the end of this file */
    struct sw_plugin *probe_plugin;       /* NULL without "probes" in the config */
    uint64_t probe_timer;
    struct probe_round *probe_round;      /* in flight, or NULL */
    struct sw_probe_status *probe_results; /* the last finished round: ctx.probes */
    size_t probe_result_count;

    /* ---- resilience (spread.c, track_record.c; code at the end of this file) ---- */
    struct sw_track_record *track;
    struct sw_names avoid;       /* behind the last acquire request's avoid_providers */
    struct sw_names lost_groups; /* groups that lost units since the last repair evaluation */
    int lost_count;
    uint64_t repair_timer;

    /* ---- ha (ha.c; code at the end of this file) ---- */
    struct sw_ha *ha;         /* NULL without "ha" in the config (or without a loop) */
    bool ha_merging;          /* takeover: the records being merged are already in etcd */
    uint64_t ha_refused;      /* marketplace actions the fence refused */
    char ha_leader_buf[512];  /* sw_runtime_leader_json's last answer */
    char *ha_metrics_text;    /* sw_runtime_leader_metrics's last answer */
    struct ha_held *ha_held;  /* plugin requests waiting at the gate, or sent from it */
    uint64_t ha_held_seq;     /* the last held request's id, without HA_HELD_ID_BIT */
    bool ha_gate_passing;     /* a held request is being sent: do not hold it again */

    /* ---- journal coalescing (issue 3 perf; code at the end of this file) ---- */
    uint64_t journal_timer; /* end of the loop turn: commit the waiting durable writes */

    /* ---- history (evaluation retention; code at the end of this file) ---- */
    uint64_t history_timer;
};

/* probes (geo): defined at the end of this file. */
static int probes_load(struct sw_runtime *rt, struct sw_error *err);
static void probes_schedule(struct sw_runtime *rt);
static void probes_free(struct sw_runtime *rt);

static const char *LOG = "runtime";

/* admin API hooks, defined at the end of this file */
static void apply_overrides(struct sw_runtime *rt, const struct sw_desired *named);
static void note_evaluation(struct policy_slot *slot, int rc, double duration_ms,
                            const char *error);
static void note_policy_error(struct policy_slot *slot, const char *error);
static bool saved_pause(struct sw_runtime *rt, const char *policy);
static size_t http_stats_index(struct sw_runtime *rt, const char *plugin);
static void http_stats_note(struct sw_runtime *rt, size_t index, int status, uint64_t started_ns);
static void admin_free(struct sw_runtime *rt);
/* Resilience hooks, defined at the end of this file. */
static int resil_init(struct sw_runtime *rt, struct sw_error *err);
static void resil_stop(struct sw_runtime *rt);
static void resil_free(struct sw_runtime *rt);
static void resil_unit_ready(struct sw_runtime *rt, const struct sw_unit *u);
static void resil_unit_closed(struct sw_runtime *rt, const struct sw_unit *u, int how);
static void resil_fill_avoid(struct sw_runtime *rt, const struct sw_unit *u,
                             struct swp_acquire_req *req);
static void resil_plan(struct sw_runtime *rt, struct sw_actions *actions);
static void resil_fill_input(struct sw_runtime *rt, struct sw_policy_input *in);

/* ha: defined at the end of this file. */
static int ha_setup(struct sw_runtime *rt, struct sw_error *err);
static void ha_record_unit(struct sw_runtime *rt, const struct sw_unit *u);
static void fenced_send_acquire(struct sw_runtime *rt, struct sw_unit *u, const char *intent_key,
                                int64_t already_spent_ms);
static void fenced_send_release(struct sw_runtime *rt, struct sw_unit *u, const char *intent_key);
static void ha_free(struct sw_runtime *rt);
static uint64_t ha_gate_http(struct sw_runtime *rt, struct sw_plugin *plugin,
                             const struct swp_http_req *req, swp_http_cb cb, void *cb_ud);
static uint64_t ha_gate_net(struct sw_runtime *rt, struct sw_plugin *plugin,
                            const struct swp_net_req *req, swp_net_cb cb, void *cb_ud,
                            void *complete_ud);
static bool ha_gate_cancel(struct sw_runtime *rt, uint64_t *id);
/* journal coalescing: defined at the end of this file. */
static void coalesce_start(struct sw_runtime *rt);
static void coalesce_stop(struct sw_runtime *rt);
static bool coalesce_barrier(struct sw_runtime *rt, struct sw_plugin *plugin);
/* history: defined at the end of this file. */
static void history_start(struct sw_runtime *rt);

static int64_t now_ms(struct sw_runtime *rt)
{
    return sw_clock_now(rt->clock);
}

/* ---- plugin services ------------------------------------------------------------------ */

static int64_t svc_now(void *ud)
{
    return now_ms(ud);
}

static uint64_t svc_timer_start(void *ud, struct sw_plugin *plugin, uint64_t delay_ms,
                                swp_timer_cb cb, void *cb_ud)
{
    struct sw_runtime *rt = ud;
    return sw_clock_timer_start(rt->clock, delay_ms, cb, cb_ud);
}

static void svc_timer_stop(void *ud, struct sw_plugin *plugin, uint64_t timer_id)
{
    struct sw_runtime *rt = ud;
    sw_clock_timer_stop(rt->clock, timer_id);
}

struct http_trampoline {
    swp_http_cb cb;
    void *ud;
    struct sw_runtime *rt;   /* admin API: latency per plugin */
    size_t stat_index;
    uint64_t started_ns;
};

static void http_done(void *ud, int status, const struct swp_http_resp *resp,
                      const char *error_text)
{
    struct http_trampoline *t = ud;
    swp_http_cb cb = t->cb;
    void *cb_ud = t->ud;
    http_stats_note(t->rt, t->stat_index, status, t->started_ns);
    free(t);
    cb(cb_ud, status, resp);
}

static uint64_t svc_http_request(void *ud, struct sw_plugin *plugin,
                                 const struct swp_http_req *req, swp_http_cb cb, void *cb_ud)
{
    struct sw_runtime *rt = ud;
    if (rt->opts.loop == NULL)
        return 0;
    if (sw_ha_fenced_out(rt->ha)) { /* ha: an ex-leader's plugins send nothing more */
        rt->ha_refused++;
        sw_log(SW_LOG_WARN, LOG, "ha: fence refused an HTTP request of plugin '%s': this "
               "replica's leadership lapsed", sw_plugin_name(plugin));
        return 0;
    }
    uint64_t held = ha_gate_http(rt, plugin, req, cb, cb_ud); /* ha: after earlier etcd writes */
    if (held != 0)
        return held;
    if (!coalesce_barrier(rt, plugin)) /* journal: what the request relies on, committed */
        return 0;
    if (rt->http == NULL)
        rt->http = sw_http_client_new(rt->opts.loop);
    struct http_trampoline *t = sw_xmalloc(sizeof(*t));
    t->cb = cb;
    t->ud = cb_ud;
    t->rt = rt;
    t->stat_index = http_stats_index(rt, sw_plugin_name(plugin));
    t->started_ns = uv_hrtime();
    uint64_t id = sw_http_client_request(rt->http, req, http_done, t);
    if (id == 0)
        free(t);
    return id;
}

static void svc_http_cancel(void *ud, struct sw_plugin *plugin, uint64_t request_id)
{
    struct sw_runtime *rt = ud;
    if (ha_gate_cancel(rt, &request_id)) /* ha: held at the gate */
        return;
    if (rt->http != NULL)
        sw_http_client_cancel(rt->http, request_id);
}

static uint64_t svc_net_exchange(void *ud, struct sw_plugin *plugin,
                                 const struct swp_net_req *req, swp_net_cb cb, void *cb_ud,
                                 void *complete_ud)
{
    struct sw_runtime *rt = ud;
    if (rt->opts.loop == NULL || !coalesce_barrier(rt, plugin)) /* journal: as for HTTP */
        return 0;
    uint64_t held = ha_gate_net(rt, plugin, req, cb, cb_ud, complete_ud); /* ha */
    if (held != 0)
        return held;
    if (rt->net == NULL)
        rt->net = sw_net_new(rt->opts.loop);
    return sw_net_exchange(rt->net, req, complete_ud, cb, cb_ud);
}

static void svc_net_cancel(void *ud, struct sw_plugin *plugin, uint64_t exchange_id)
{
    struct sw_runtime *rt = ud;
    if (ha_gate_cancel(rt, &exchange_id)) /* ha: held at the gate */
        return;
    sw_net_cancel(rt->net, exchange_id);
}

static int svc_kv_get(void *ud, struct sw_plugin *plugin, const char *key, char **value_out)
{
    struct sw_runtime *rt = ud;
    return sw_journal_kv_get(rt->journal, sw_plugin_name(plugin), key, value_out);
}

static int svc_kv_set(void *ud, struct sw_plugin *plugin, const char *key, const char *value)
{
    struct sw_runtime *rt = ud;
    int rc = sw_journal_kv_set(rt->journal, sw_plugin_name(plugin), key, value);
    if (rc == 0 && sw_ha_is_leader(rt->ha)) /* ha: the next leader's plugin needs it too */
        sw_ha_kv_put(rt->ha, sw_plugin_name(plugin), key, value);
    return rc;
}

static int svc_kv_del(void *ud, struct sw_plugin *plugin, const char *key)
{
    struct sw_runtime *rt = ud;
    int rc = sw_journal_kv_del(rt->journal, sw_plugin_name(plugin), key);
    if (rc == 0 && sw_ha_is_leader(rt->ha)) /* ha */
        sw_ha_kv_put(rt->ha, sw_plugin_name(plugin), key, NULL);
    return rc;
}

static void drain_events(void *ud);

static void svc_emit_event(void *ud, struct sw_plugin *plugin, const struct swp_event *ev)
{
    struct sw_runtime *rt = ud;
    if (ev == NULL || ev->type == NULL || rt->stopping)
        return;
    struct pending_event *pe = sw_xcalloc(1, sizeof(*pe));
    pe->type = sw_xstrdup(ev->type);
    pe->market_id = sw_xstrdup(ev->market_id);
    pe->reason = sw_xstrdup(ev->reason);
    pe->data_json = sw_xstrdup(ev->data_json);
    if (rt->events_tail != NULL)
        rt->events_tail->next = pe;
    else
        rt->events_head = pe;
    rt->events_tail = pe;
    /* Handled on the next turn: the plugin may be in the middle of its own bookkeeping. */
    if (rt->events_timer == 0)
        rt->events_timer = sw_clock_timer_start(rt->clock, 0, drain_events, rt);
}

/* ---- small helpers -------------------------------------------------------------------- */

static void save_unit(struct sw_runtime *rt, const struct sw_unit *u)
{
    struct sw_error err = {0};
    if (sw_journal_unit_save(rt->journal, u, &err) < 0)
        sw_log(SW_LOG_ERROR, LOG, "journal: cannot save unit %s: %s", u->key, err.msg);
    if (rt->opts.on_unit != NULL)
        rt->opts.on_unit(rt->opts.observe_ud, u);
    sw_dns_sync_kick(rt->dns); /* dns: every unit change may change the records */
    ha_record_unit(rt, u);     /* ha: the replicated owned-units set follows */
}

static void finish_intent(struct sw_runtime *rt, const char *key, int state, const char *outcome)
{
    struct sw_error err = {0};
    if (sw_journal_intent_finish(rt->journal, key, state, outcome, now_ms(rt), &err) < 0)
        sw_log(SW_LOG_ERROR, LOG, "journal: cannot finish intent %s: %s", key, err.msg);
}

static void record_event(struct sw_runtime *rt, const char *type, cJSON *data)
{
    char *text = cJSON_PrintUnformatted(data);
    sw_journal_event(rt->journal, now_ms(rt), type, text);
    cJSON_free(text);
    cJSON_Delete(data);
}

static cJSON *unit_event_data(const struct sw_unit *u)
{
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "unit", u->key);
    cJSON_AddStringToObject(data, "group", u->group ? u->group : "");
    cJSON_AddStringToObject(data, "region", u->region ? u->region : "");
    if (u->market_id != NULL)
        cJSON_AddStringToObject(data, "market_id", u->market_id);
    if (u->provider != NULL)
        cJSON_AddStringToObject(data, "provider", u->provider);
    cJSON_AddNumberToObject(data, "price_usd_hour", u->price_usd_hour);
    return data;
}

static char *next_unit_key(struct sw_runtime *rt)
{
    rt->unit_seq++;
    char seq[32];
    snprintf(seq, sizeof(seq), "%" PRIu64, rt->unit_seq);
    sw_journal_meta_set(rt->journal, "unit_seq", seq);
    return sw_xasprintf("%s-u%" PRIu64, rt->config->instance_id, rt->unit_seq);
}

static void op_unlink_and_free(struct sw_runtime *rt, struct market_op *op)
{
    for (struct market_op **pp = &rt->ops; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    }
    if (op->deadline_timer != 0)
        sw_clock_timer_stop(rt->clock, op->deadline_timer);
    if (!op->abandoned && rt->ops_in_flight > 0)
        rt->ops_in_flight--;
    free(op->unit_key);
    free(op->intent_key);
    free(op);
}

static struct market_op *op_new(struct sw_runtime *rt, int kind, const char *unit_key,
                                const char *intent_key)
{
    struct market_op *op = sw_xcalloc(1, sizeof(*op));
    op->rt = rt;
    op->kind = kind;
    op->unit_key = sw_xstrdup(unit_key);
    op->intent_key = sw_xstrdup(intent_key);
    op->next = rt->ops;
    rt->ops = op;
    rt->ops_in_flight++;
    return op;
}

/* ---- release -------------------------------------------------------------------------- */

static void release_done(void *ud, int status, const struct swp_error *perr)
{
    struct market_op *op = ud;
    struct sw_runtime *rt = op->rt;
    if (op->abandoned || status == SW_ECANCELED) {
        op_unlink_and_free(rt, op);
        return;
    }
    struct sw_unit *u = sw_units_find_key(&rt->units, op->unit_key);
    if (status == 0) {
        rt->stats.releases_done++;
        if (u != NULL) {
            u->state = SW_UNIT_CLOSED;
            u->closed_ms = now_ms(rt);
            free(u->close_reason);
            u->close_reason = sw_xstrdup("released");
            save_unit(rt, u);
            sw_log(SW_LOG_INFO, LOG, "released %s/%s unit %s (%s), saving %.3f USD/h", u->group,
                   u->region, u->key, u->market_id ? u->market_id : "-", u->price_usd_hour);
            record_event(rt, "unit_released", unit_event_data(u));
            resil_unit_closed(rt, u, SW_TRACK_RELEASED);
        }
        finish_intent(rt, op->intent_key, SW_INTENT_DONE, "released");
    } else {
        rt->stats.releases_failed++;
        const char *msg = perr != NULL && perr->msg[0] ? perr->msg : sw_strerror(status);
        if (u != NULL && u->state == SW_UNIT_RELEASING) {
            u->state = u->ready_ms > 0 ? SW_UNIT_READY : SW_UNIT_LEASED;
            save_unit(rt, u);
        }
        sw_log(SW_LOG_WARN, LOG, "release of unit %s failed: %s (will retry when planned again)",
               op->unit_key, msg);
        finish_intent(rt, op->intent_key, SW_INTENT_FAILED, msg);
    }
    op_unlink_and_free(rt, op);
}

static void op_deadline(void *ud)
{
    struct market_op *op = ud;
    struct sw_runtime *rt = op->rt;
    op->deadline_timer = 0;
    if (op->abandoned)
        return;
    op->abandoned = true;
    rt->ops_in_flight--;
    struct sw_unit *u = sw_units_find_key(&rt->units, op->unit_key);
    sw_log(SW_LOG_ERROR, LOG,
           "plugin '%s' did not complete %s of unit %s before its deadline; giving up on it",
           sw_plugin_name(rt->market), sw_action_kind_name(op->kind), op->unit_key);
    finish_intent(rt, op->intent_key, SW_INTENT_FAILED, "plugin missed its deadline");
    if (u == NULL)
        return;
    if (op->kind == SW_ACTION_ACQUIRE) {
        rt->stats.acquires_failed++;
        /* It may exist on the marketplace: the watch pass adopts or closes it. */
        u->state = u->market_id != NULL ? u->state : SW_UNIT_CLOSED;
        if (u->market_id == NULL) {
            u->closed_ms = now_ms(rt);
            u->close_reason = sw_xstrdup("acquire deadline");
        }
        save_unit(rt, u);
    } else if (u->state == SW_UNIT_RELEASING) {
        rt->stats.releases_failed++;
        u->state = u->ready_ms > 0 ? SW_UNIT_READY : SW_UNIT_LEASED;
        save_unit(rt, u);
    }
}

static void send_release(struct sw_runtime *rt, struct sw_unit *u, const char *intent_key);
static void dns_release_resume(void *ud, const char *unit_key);

static int start_release(struct sw_runtime *rt, struct sw_unit *u, const char *reason)
{
    if (u->self || u->market_id == NULL)
        return SW_EINVAL;
    char *intent_key = sw_xasprintf("%s-release-%" PRId64, u->key, now_ms(rt));
    struct sw_error err = {0};
    int64_t id = 0;
    int rc = sw_journal_intent_begin(rt->journal, SW_ACTION_RELEASE, intent_key, u->group,
                                     u->region, u->key, reason, now_ms(rt), &id, &err);
    if (rc == 0 && u->market_id != NULL)
        rc = sw_journal_intent_set_market_id(rt->journal, intent_key, u->market_id,
                                             now_ms(rt), &err);
    if (rc < 0) {
        sw_log(SW_LOG_ERROR, LOG, "journal refused release intent for %s: %s", u->key, err.msg);
        free(intent_key);
        return rc;
    }
    if (rt->opts.dry_run) {
        sw_log(SW_LOG_INFO, LOG, "dry-run: would release %s/%s unit %s (%.3f USD/h): %s",
               u->group, u->region, u->key, u->price_usd_hour, reason);
        finish_intent(rt, intent_key, SW_INTENT_ABANDONED, "dry-run");
        free(intent_key);
        return 0;
    }
    sw_log(SW_LOG_INFO, LOG, "release %s/%s unit %s (%s, %.3f USD/h): %s", u->group, u->region,
           u->key, u->market_id, u->price_usd_hour, reason);
    u->state = SW_UNIT_RELEASING;
    save_unit(rt, u);
    rt->stats.releases_started++;
    /* dns: make-before-break. The unit leaves DNS first; the release goes to the
     * marketplace once the withdrawal reached the server and the drain time passed. */
    if (sw_dns_sync_before_release(rt->dns, u, dns_release_resume, rt) > 0) {
        struct deferred_release *d = sw_xcalloc(1, sizeof(*d));
        d->unit_key = sw_xstrdup(u->key);
        d->intent_key = intent_key;
        d->next = rt->deferred;
        rt->deferred = d;
        return 0;
    }
    fenced_send_release(rt, u, intent_key); /* ha: fenced when replicated */
    free(intent_key);
    return 0;
}

/* Hand a release to the market plugin (start_release's second half). */
static void send_release(struct sw_runtime *rt, struct sw_unit *u, const char *intent_key)
{
    int rc;
    struct market_op *op = op_new(rt, SW_ACTION_RELEASE, u->key, intent_key);
    op->deadline_timer = sw_clock_timer_start(rt->clock, RELEASE_DEADLINE_MS, op_deadline, op);
    rc = SW_ENOTSUP;
    if (rt->market_ops->release != NULL)
        rc = rt->market_ops->release(sw_plugin_state(rt->market), u->market_id, release_done,
                                     op);
    if (rc < 0) {
        struct swp_error perr = {rc, ""};
        snprintf(perr.msg, sizeof(perr.msg), "plugin refused release: %s", sw_strerror(rc));
        release_done(op, rc, &perr);
    }
}

/* dns: the unit is out of DNS and drained; send its held-back release. */
static void dns_release_resume(void *ud, const char *unit_key)
{
    struct sw_runtime *rt = ud;
    struct deferred_release *d = NULL;
    for (struct deferred_release **pp = &rt->deferred; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->unit_key, unit_key) == 0) {
            d = *pp;
            *pp = d->next;
            break;
        }
    if (d == NULL)
        return;
    struct sw_unit *u = sw_units_find_key(&rt->units, unit_key);
    if (rt->running && u != NULL && u->state == SW_UNIT_RELEASING)
        fenced_send_release(rt, u, d->intent_key);
    else
        finish_intent(rt, d->intent_key, SW_INTENT_ABANDONED,
                      "the unit closed while it drained from DNS");
    free(d->unit_key);
    free(d->intent_key);
    free(d);
}

/* ---- acquire -------------------------------------------------------------------------- */

static void apply_unit_report(struct sw_unit *u, const struct swp_unit *report)
{
    if (report == NULL)
        return;
    u->watch_applied = false; /* sync_units sets it again after a listing's report */
    if (report->market_id != NULL && u->market_id == NULL)
        u->market_id = sw_xstrdup(report->market_id);
    if (report->provider != NULL &&
        (u->provider == NULL || strcmp(u->provider, report->provider) != 0)) {
        free(u->provider);
        u->provider = sw_xstrdup(report->provider);
    }
    if (report->price_usd_hour > 0)
        u->price_usd_hour = report->price_usd_hour;
    if (report->uri_count > 0)
        sw_unit_set_uris(u, report->uris, report->uri_count);
}

static void acquire_progress(void *ud, int status, const struct swp_unit *report,
                             const struct swp_error *perr)
{
    struct market_op *op = ud;
    struct sw_runtime *rt = op->rt;
    if (op->abandoned || op->finished || report == NULL)
        return;
    struct sw_unit *u = sw_units_find_key(&rt->units, op->unit_key);
    if (u == NULL)
        return;
    bool had_market_id = u->market_id != NULL;
    apply_unit_report(u, report);
    if (report->state > u->state && report->state < SW_UNIT_READY)
        u->state = report->state;
    if (!had_market_id && u->market_id != NULL) {
        struct sw_error err = {0};
        if (sw_journal_intent_set_market_id(rt->journal, op->intent_key, u->market_id,
                                            now_ms(rt), &err) < 0)
            sw_log(SW_LOG_ERROR, LOG, "journal: %s", err.msg);
        sw_log(SW_LOG_INFO, LOG, "unit %s %s/%s: created on the marketplace as %s", u->key,
               u->group, u->region, u->market_id);
    }
    if (report->state == SWP_UNIT_LEASED)
        sw_log(SW_LOG_INFO, LOG, "unit %s %s/%s: leased from %s at %.3f USD/h", u->key, u->group,
               u->region, u->provider ? u->provider : "?", u->price_usd_hour);
    save_unit(rt, u);
}

static void acquire_done(void *ud, int status, const struct swp_unit *report,
                         const struct swp_error *perr)
{
    struct market_op *op = ud;
    struct sw_runtime *rt = op->rt;
    op->finished = true;
    if (op->abandoned || (status == SW_ECANCELED && rt->stopping)) {
        /* Shutdown: the intent stays pending and recovery resumes it. */
        op_unlink_and_free(rt, op);
        return;
    }
    struct sw_unit *u = sw_units_find_key(&rt->units, op->unit_key);
    if (u == NULL) {
        op_unlink_and_free(rt, op);
        return;
    }
    if (status == SW_ECANCELED) {
        /* Cancelled by our own release of the still-pending unit: the release path owns
         * the unit's state from here. */
        rt->stats.acquires_failed++;
        finish_intent(rt, op->intent_key, SW_INTENT_FAILED, "cancelled by a release");
        op_unlink_and_free(rt, op);
        return;
    }
    apply_unit_report(u, report);
    if (status == 0) {
        rt->stats.acquires_ready++;
        if (u->state != SW_UNIT_RELEASING) /* a release already on its way wins */
            u->state = SW_UNIT_READY;
        u->ready_ms = now_ms(rt);
        save_unit(rt, u);
        sw_log(SW_LOG_INFO, LOG, "unit %s %s/%s: ready after %.1fs on %s at %.3f USD/h%s%s",
               u->key, u->group, u->region, (double)(u->ready_ms - u->ordered_ms) / 1000.0,
               u->provider ? u->provider : "?", u->price_usd_hour,
               u->uri_count ? ", serving " : "", u->uri_count ? u->uris[0] : "");
        finish_intent(rt, op->intent_key, SW_INTENT_DONE, "ready");
        record_event(rt, "unit_ready", unit_event_data(u));
        resil_unit_ready(rt, u);
    } else {
        rt->stats.acquires_failed++;
        const char *msg = perr != NULL && perr->msg[0] ? perr->msg : sw_strerror(status);
        u->state = SW_UNIT_CLOSED;
        u->closed_ms = now_ms(rt);
        free(u->close_reason);
        u->close_reason = sw_xstrdup(msg);
        save_unit(rt, u);
        sw_log(SW_LOG_WARN, LOG, "unit %s %s/%s: acquire failed: %s", u->key, u->group,
               u->region, msg);
        finish_intent(rt, op->intent_key, SW_INTENT_FAILED, msg);
        cJSON *data = unit_event_data(u);
        cJSON_AddStringToObject(data, "error", msg);
        record_event(rt, "acquire_failed", data);
        resil_unit_closed(rt, u, SW_TRACK_FAILED);
    }
    op_unlink_and_free(rt, op);
}

static void fill_acquire_req(struct sw_runtime *rt, const struct sw_unit *u,
                             struct swp_acquire_req *req)
{
    const struct sw_group_config *g = sw_config_group(rt->config, u->group);
    memset(req, 0, sizeof(*req));
    req->size = sizeof(*req);
    req->key = u->key;
    req->group = u->group;
    req->region = u->region;
    req->profile_json = g != NULL ? g->profile_json : NULL;
    req->sdl_template = g != NULL ? g->sdl_template : NULL;
    req->max_price_usd_hour = g != NULL ? g->max_price_usd_hour : 0;
    req->deadline_ms = g != NULL ? (uint64_t)g->acquire_deadline_ms : 480000;
    /* ML batch: the group's placement pinning (e.g. the job master's provider). */
    req->only_providers = g != NULL ? (const char *const *)g->providers : NULL;
    req->only_count = g != NULL ? g->provider_count : 0;
    resil_fill_avoid(rt, u, req);
}

/* Hand a unit's acquire to the market plugin. Also used by recovery to resume an acquire
 * interrupted by a restart: the idempotency key makes the plugin join what it created
 * instead of buying again. already_spent_ms shortens the deadline accordingly. */
static void send_acquire(struct sw_runtime *rt, struct sw_unit *u, const char *intent_key,
                         int64_t already_spent_ms)
{
    struct market_op *op = op_new(rt, SW_ACTION_ACQUIRE, u->key, intent_key);
    struct swp_acquire_req req;
    fill_acquire_req(rt, u, &req);
    if (already_spent_ms > 0)
        req.deadline_ms = (uint64_t)already_spent_ms < req.deadline_ms
                              ? req.deadline_ms - (uint64_t)already_spent_ms
                              : 1;
    uint64_t grace = rt->opts.op_grace_ms ? rt->opts.op_grace_ms : DEFAULT_OP_GRACE_MS;
    op->deadline_timer = sw_clock_timer_start(rt->clock, req.deadline_ms + grace, op_deadline, op);
    int rc = SW_ENOTSUP;
    if (rt->market_ops->acquire != NULL)
        rc = rt->market_ops->acquire(sw_plugin_state(rt->market), &req, acquire_progress,
                                     acquire_done, op);
    if (rc < 0) {
        struct swp_error perr = {rc, ""};
        snprintf(perr.msg, sizeof(perr.msg), "plugin refused acquire: %s", sw_strerror(rc));
        acquire_done(op, rc, NULL, &perr);
    }
}

static int start_acquire(struct sw_runtime *rt, const struct sw_action *action)
{
    char *key = next_unit_key(rt);
    struct sw_error err = {0};
    int64_t id = 0;
    int rc = sw_journal_intent_begin(rt->journal, SW_ACTION_ACQUIRE, key, action->group,
                                     action->region, NULL, action->reason, now_ms(rt), &id,
                                     &err);
    if (rc < 0) {
        sw_log(SW_LOG_ERROR, LOG, "journal refused acquire intent: %s", err.msg);
        free(key);
        return rc;
    }
    if (rt->opts.dry_run) {
        sw_log(SW_LOG_INFO, LOG, "dry-run: would acquire %s/%s at ~%.3f USD/h: %s",
               action->group, action->region, action->price_usd_hour, action->reason);
        finish_intent(rt, key, SW_INTENT_ABANDONED, "dry-run");
        free(key);
        return 0;
    }
    struct sw_unit *u = sw_unit_new(key, action->group, action->region);
    u->state = SW_UNIT_ORDERED;
    u->ordered_ms = now_ms(rt);
    u->price_usd_hour = action->price_usd_hour; /* planned: counts against the budget */
    sw_units_add(&rt->units, u);
    save_unit(rt, u);
    sw_log(SW_LOG_INFO, LOG, "acquire %s/%s as unit %s (best offer %.3f USD/h): %s",
           action->group, action->region, key, action->price_usd_hour, action->reason);
    rt->stats.acquires_started++;

    fenced_send_acquire(rt, u, key, 0); /* ha: fenced when replicated */
    free(key);
    return 0;
}

/* ---- events from plugins -------------------------------------------------------------- */

static void run_policy_event(struct sw_runtime *rt, const char *ev_json);
static void fill_policy_input(struct sw_runtime *rt, struct sw_policy_input *in);

static void handle_unit_lost(struct sw_runtime *rt, const struct pending_event *ev)
{
    struct sw_unit *u = sw_units_find_market_id(&rt->units, ev->market_id);
    if (u == NULL || u->state == SW_UNIT_CLOSED)
        return;
    rt->stats.units_lost++;
    u->state = SW_UNIT_CLOSED;
    u->closed_ms = now_ms(rt);
    free(u->close_reason);
    u->close_reason = sw_xstrdup(ev->reason ? ev->reason : "lost");
    save_unit(rt, u);
    sw_log(SW_LOG_WARN, LOG, "unit %s %s/%s on %s was closed by the marketplace (%s); it will "
           "be replaced on the next evaluation", u->key, u->group, u->region,
           u->provider ? u->provider : "?", u->close_reason);
    resil_unit_closed(rt, u, SW_TRACK_LOST);
}

static void drain_events(void *ud)
{
    struct sw_runtime *rt = ud;
    rt->events_timer = 0;
    while (rt->events_head != NULL) {
        struct pending_event *ev = rt->events_head;
        rt->events_head = ev->next;
        if (rt->events_head == NULL)
            rt->events_tail = NULL;
        if (strcmp(ev->type, "unit_lost") == 0 && ev->market_id != NULL)
            handle_unit_lost(rt, ev);
        else if (strcmp(ev->type, "alert") == 0)
            sw_log(SW_LOG_WARN, LOG, "alert: %s", ev->reason ? ev->reason : "(no reason)");

        /* event_json: the text cJSON printed, copied from data_json when it can be. */
        char *text = sw_event_json_build(ev->type, ev->market_id, ev->reason, ev->data_json);
        sw_journal_event(rt->journal, now_ms(rt), ev->type, text);
        if (rt->recovered)
            run_policy_event(rt, text);
        free(text);
        free(ev->type);
        free(ev->market_id);
        free(ev->reason);
        free(ev->data_json);
        free(ev);
    }
}

/* ---- inputs --------------------------------------------------------------------------- */

static void drop_closed_units(struct sw_runtime *rt)
{
    for (size_t i = 0; i < rt->units.count;) {
        if (rt->units.items[i]->state == SW_UNIT_CLOSED)
            sw_units_remove_at(&rt->units, i);
        else
            i++;
    }
}

static void fill_policy_input(struct sw_runtime *rt, struct sw_policy_input *in)
{
    memset(in, 0, sizeof(*in));
    in->now_ms = now_ms(rt);
    in->units = &rt->units;
    in->offers = &rt->offers;
    in->metrics = &rt->metrics;
    in->groups = rt->config->groups;
    in->group_count = rt->config->group_count;
    in->budget_usd_hour = rt->config->guard.budget_usd_hour;
    in->spend_usd_hour = sw_units_spend_usd_hour(&rt->units);
    in->probes = rt->probe_results;
    in->probe_count = rt->probe_result_count;
    resil_fill_input(rt, in);
}

/* Everything a policy can see, so `steward replay` can feed it back later. Written as text
 * directly (json_writer: cJSON's exact bytes, without a tree), as every tick of a busy
 * runtime records it. Returns the text, owned by the caller (free with free()).
 * history: *shared_at and *shared_len get the bytes of the units and offers (with the
 * comma before them), which rarely change between ticks: the journal stores them once. */
static char *inputs_to_json(const struct sw_policy_input *in, size_t *shared_at,
                            size_t *shared_len)
{
    struct sw_jw w;
    sw_jw_init(&w);
    sw_jw_open(&w, NULL, '{');
    sw_jw_number(&w, "now_ms", (double)in->now_ms);
    *shared_at = w.len; /* history */
    sw_jw_open(&w, "units", '[');
    for (size_t i = 0; i < in->units->count; i++) {
        const struct sw_unit *u = in->units->items[i];
        if (u->state == SW_UNIT_CLOSED)
            continue;
        sw_jw_open(&w, NULL, '{');
        sw_jw_string(&w, "key", u->key);
        if (u->market_id)
            sw_jw_string(&w, "market_id", u->market_id);
        sw_jw_string(&w, "group", u->group);
        sw_jw_string(&w, "region", u->region);
        if (u->provider)
            sw_jw_string(&w, "provider", u->provider);
        sw_jw_number(&w, "price_usd_hour", u->price_usd_hour);
        sw_jw_string(&w, "state", sw_unit_state_name(u->state));
        sw_jw_bool(&w, "unhealthy", u->unhealthy);
        sw_jw_number(&w, "ordered_ms", (double)u->ordered_ms);
        sw_jw_close(&w, '}');
    }
    sw_jw_close(&w, ']');
    sw_jw_open(&w, "offers", '[');
    for (size_t i = 0; i < in->offers->count; i++) {
        const struct sw_offer *o = &in->offers->items[i];
        sw_jw_open(&w, NULL, '{');
        sw_jw_string(&w, "provider", o->provider);
        sw_jw_string(&w, "region", o->region);
        sw_jw_number(&w, "price_usd_hour", o->price_usd_hour);
        sw_jw_bool(&w, "audited", o->audited);
        sw_jw_close(&w, '}');
    }
    sw_jw_close(&w, ']');
    *shared_len = w.len - *shared_at; /* history */
    sw_jw_open(&w, "metrics", '{');
    for (size_t i = 0; i < in->metrics->count; i++) {
        const struct sw_metric *m = &in->metrics->items[i];
        sw_jw_open(&w, m->name, '{');
        sw_jw_number(&w, "at_ms", (double)m->at_ms);
        if (m->status < 0) {
            sw_jw_string(&w, "error", m->error ? m->error : "");
            sw_jw_close(&w, '}');
            continue;
        }
        sw_jw_open(&w, "samples", '[');
        for (size_t s = 0; s < m->sample_count; s++) {
            sw_jw_open(&w, NULL, '{');
            sw_jw_open(&w, "labels", '{');
            for (size_t l = 0; l < m->samples[s].label_count; l++)
                sw_jw_string(&w, m->samples[s].label_names[l], m->samples[s].label_values[l]);
            sw_jw_close(&w, '}');
            sw_jw_number(&w, "value", m->samples[s].value);
            sw_jw_close(&w, '}');
        }
        sw_jw_close(&w, ']');
        sw_jw_close(&w, '}');
    }
    sw_jw_close(&w, '}');
    sw_jw_number(&w, "budget_usd_hour", in->budget_usd_hour);
    sw_jw_number(&w, "spend_usd_hour", in->spend_usd_hour);
    sw_jw_close(&w, '}');
    return sw_jw_take(&w);
}

static void fnv1a_hex(const char *text, char out[17])
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

static void policy_log(void *ud, int level, const char *msg)
{
    struct policy_slot *slot = ud;
    char component[96];
    snprintf(component, sizeof(component), "policy:%s", slot->config->name);
    sw_log(level, component, "%s", msg);
}

/* ---- the tick ------------------------------------------------------------------------- */

static char *explanations_json(const struct sw_policy_result *res)
{
    struct sw_jw w;
    sw_jw_init(&w);
    sw_jw_open(&w, NULL, '[');
    for (size_t i = 0; i < res->explanation_count; i++) {
        const struct sw_explanation *e = &res->explanations[i];
        sw_jw_open(&w, NULL, '{');
        sw_jw_string(&w, "group", e->group ? e->group : "");
        if (e->region)
            sw_jw_string(&w, "region", e->region);
        sw_jw_string(&w, "text", e->text ? e->text : "");
        sw_jw_close(&w, '}');
    }
    sw_jw_close(&w, ']');
    return sw_jw_take(&w);
}

/* {"policy": what evaluate returned, "effective": after merging and the guard's clamp}:
 * replay compares the first, operators read the second. */
static char *desired_record_json(const struct sw_desired *policy,
                                 const struct sw_desired *effective)
{
    char *p = sw_desired_to_json(policy);
    char *e = sw_desired_to_json(effective);
    char *text = sw_xasprintf("{\"policy\":%s,\"effective\":%s}", p, e);
    free(p);
    free(e);
    return text;
}

static void log_desired_change(const char *policy, const struct sw_desired *before,
                               const struct sw_desired *after)
{
    if (sw_desired_equal(before, after))
        return;
    char *text = sw_desired_to_json(after);
    sw_log(SW_LOG_INFO, LOG, "policy %s wants %s", policy, text);
    free(text);
}

static bool desired_names_group(const struct sw_desired *d, const char *group)
{
    for (size_t i = 0; i < d->count; i++)
        if (sw_name_eq(d->entries[i].group, group)) /* interned names (model.h) */
            return true;
    return false;
}

/* Merge a policy's desired state into the runtime's: the groups it names are replaced,
 * the others (owned by other policies, or nobody) stay as they were. */
static void merge_desired(struct sw_desired *into, const struct sw_desired *from)
{
    /* when from names every group into has (one policy, the usual case), the
     * merge is from itself; the copy then allocates nothing if only counts changed.
     * Entries are sorted by group, so each group is looked up once. */
    bool covered = true;
    for (size_t i = 0; covered && i < into->count; i++)
        if (i == 0 || into->entries[i].group != into->entries[i - 1].group) /* interned */
            covered = desired_names_group(from, into->entries[i].group);
    if (covered) {
        sw_desired_copy(into, from);
        return;
    }
    struct sw_desired merged;
    sw_desired_init(&merged);
    for (size_t i = 0; i < into->count; i++) {
        const struct sw_desired_entry *e = &into->entries[i];
        if (!desired_names_group(from, e->group))
            sw_desired_set(&merged, e->group, e->region, e->count);
    }
    for (size_t i = 0; i < from->count; i++)
        sw_desired_set(&merged, from->entries[i].group, from->entries[i].region,
                       from->entries[i].count);
    sw_desired_copy(into, &merged);
    sw_desired_clear(&merged);
}

/* The policy's own words for a region, appended to the planner's reason so the log line
 * of an action says both what changed and why the policy wanted it. */
static void attach_explanations(struct sw_actions *actions, const struct sw_policy_result *res)
{
    for (size_t i = 0; i < actions->count; i++) {
        struct sw_action *a = &actions->items[i];
        for (size_t j = 0; j < res->explanation_count; j++) {
            const struct sw_explanation *e = &res->explanations[j];
            if (e->group == NULL || strcmp(e->group, a->group) != 0 || e->region == NULL ||
                a->region == NULL || strcmp(e->region, a->region) != 0)
                continue;
            /* "%s (policy: %s)" put together by copying: explanations run long, and
             * printf would scan each twice */
            const char *head = a->reason ? a->reason : "", *mid = " (policy: ";
            size_t head_len = strlen(head), mid_len = strlen(mid), text_len = strlen(e->text);
            char *reason = sw_xmalloc(head_len + mid_len + text_len + 2);
            memcpy(reason, head, head_len);
            memcpy(reason + head_len, mid, mid_len);
            memcpy(reason + head_len + mid_len, e->text, text_len);
            memcpy(reason + head_len + mid_len + text_len, ")", 2);
            free(a->reason);
            a->reason = reason;
            break;
        }
    }
}

static void execute_actions(struct sw_runtime *rt, struct sw_actions *actions)
{
    for (size_t i = 0; i < actions->count; i++) {
        struct sw_action *a = &actions->items[i];
        if (a->kind == SW_ACTION_ACQUIRE) {
            if (start_acquire(rt, a) == 0)
                sw_guard_record(rt->guard, a, now_ms(rt));
        } else {
            struct sw_unit *u = sw_units_find_key(&rt->units, a->unit_key);
            if (u != NULL && start_release(rt, u, a->reason) == 0)
                sw_guard_record(rt->guard, a, now_ms(rt));
        }
    }
}

static void log_refused(struct sw_runtime *rt, const struct sw_actions *refused)
{
    for (size_t i = 0; i < refused->count; i++) {
        const struct sw_action *a = &refused->items[i];
        rt->stats.refused++;
        rt->refused_by_kind[a->kind == SW_ACTION_ACQUIRE ? 0 : 1]++;
        sw_log(SW_LOG_INFO, LOG, "guard refused %s %s/%s: %s", sw_action_kind_name(a->kind),
               a->group, a->region, a->reason);
    }
}

/* snapshots: a replay starting at any time warms up over at most this much of a policy's
 * evaluations; one snapshot per interval costs a few hundred bytes (docs/operations.md).
 * Tests that need several compress the live clock (`steward run --speed`). */
#define SNAPSHOT_EVERY_MS (10 * 60 * 1000)

static void evaluate_policy(struct sw_runtime *rt, struct policy_slot *slot)
{
    if (sw_policy_file_changed(slot->policy)) {
        struct sw_error rerr = {0};
        if (sw_policy_reload(slot->policy, &rerr) == 0)
            sw_log(SW_LOG_INFO, LOG, "policy %s reloaded from %s", slot->config->name,
                   slot->config->file);
        else
            sw_log(SW_LOG_ERROR, LOG, "policy %s: reload failed, keeping the old version: %s",
                   slot->config->name, rerr.msg);
    }
    drop_closed_units(rt);
    uint64_t started = uv_hrtime();
    struct sw_policy_input in;
    fill_policy_input(rt, &in);
    struct sw_policy_result res = slot->res; /* written back at the end */
    struct sw_error err; /* an empty message without zeroing 256 bytes every tick */
    err.code = 0;
    err.msg[0] = '\0';
    int rc = sw_policy_eval(slot->policy, &in, &res, &err);
    rt->stats.evaluations++;
    if (rt->stats.first_eval_ms == 0)
        rt->stats.first_eval_ms = now_ms(rt);
    if (rc < 0) {
        rt->stats.policy_errors++;
        sw_log(SW_LOG_ERROR, LOG, "policy %s failed, keeping its last good desired state: %s",
               slot->config->name, err.msg);
    }

    struct sw_desired before;
    sw_desired_init(&before);
    /* the copy only feeds an info line; skipped when info is not logged. */
    bool log_change = sw_log_min_level() <= SW_LOG_INFO;
    if (log_change)
        sw_desired_copy(&before, &rt->desired);
    merge_desired(&rt->desired, &res.desired);
    apply_overrides(rt, &res.desired);
    struct sw_guard_notes notes = {0};
    sw_guard_clamp(rt->guard, &rt->units, &rt->desired, &notes);
    for (size_t i = 0; i < notes.count; i++)
        sw_log(SW_LOG_INFO, LOG, "guard: %s", notes.items[i]);
    if (log_change)
        log_desired_change(slot->config->name, &before, &rt->desired);
    sw_desired_clear(&before);

    struct sw_actions actions, refused;
    sw_actions_init(&actions);
    sw_actions_init(&refused);
    /* nothing is planned again when nothing the last empty plan read changed. */
    sw_planner_plan_memo(&rt->plan_memo, &rt->desired, &rt->units, &rt->offers, rt->config->groups,
                         rt->config->group_count, &actions);
    resil_plan(rt, &actions);
    sw_guard_filter(rt->guard, now_ms(rt), &rt->units, &actions, &refused);
    attach_explanations(&actions, &res);
    log_refused(rt, &refused);

    /* Journal the decision before acting on it: the intents that follow commit it. */
    char *inputs_text = NULL;
    char digest[17] = "";
    bool record = !rt->opts.skip_records;
    size_t shared_at = 0, shared_len = 0; /* history: see inputs_to_json */
    if (record && !rt->opts.skip_inputs) {
        inputs_text = inputs_to_json(&in, &shared_at, &shared_len);
        fnv1a_hex(inputs_text, digest);
    }
    char *desired_text = record ? desired_record_json(&res.desired, &rt->desired) : NULL;
    char *actions_text = record ? sw_actions_to_json(&actions) : NULL;
    char *refused_text = record ? sw_actions_to_json(&refused) : NULL;
    char *explain_text = record ? explanations_json(&res) : NULL;
    struct sw_evaluation ev = {
        .policy = slot->config->name,
        .at_ms = now_ms(rt),
        .inputs_digest = inputs_text != NULL ? digest : NULL,
        .inputs_json = inputs_text,
        .desired_json = desired_text,
        .actions_json = actions_text,
        .refused_json = refused_text,
        .explain_json = explain_text,
        .error = rc < 0 ? err.msg : NULL,
        .duration_ms = (double)(uv_hrtime() - started) / 1e6,
        .inputs_shared_at = shared_at, /* history */
        .inputs_shared_len = shared_len,
    };
    struct sw_error jerr;
    jerr.code = 0;
    jerr.msg[0] = '\0';
    /* snapshots: ctx.state goes with the first good evaluation after start, then at most
     * every SNAPSHOT_EVERY_MS of this policy's clock, so replay and retention can start a
     * history there; serialised once for the snapshot and policy_state alike. */
    char *state = NULL;
    struct sw_error serr;
    serr.code = 0;
    serr.msg[0] = '\0';
    bool state_ok = rc == 0 && record && sw_policy_state_save(slot->policy, &state, &serr) == 0;
    if (rc == 0 && record && !state_ok)
        sw_log(SW_LOG_ERROR, LOG, "policy %s: %s", slot->config->name, serr.msg);
    bool snapshot =
        state_ok && (!slot->snapshot_taken || ev.at_ms - slot->snapshot_ms >= SNAPSHOT_EVERY_MS);
    ev.snapshot_json = snapshot ? (state != NULL ? state : "{}") : NULL;
    if (record && sw_journal_eval_record(rt->journal, &ev, &jerr) < 0) {
        sw_log(SW_LOG_ERROR, LOG, "journal: cannot record evaluation: %s", jerr.msg);
    } else if (snapshot) {
        slot->snapshot_taken = true;
        slot->snapshot_ms = ev.at_ms;
    }
    note_evaluation(slot, rc, ev.duration_ms, rc < 0 ? err.msg : NULL);
    if (state != NULL)
        sw_journal_state_set(rt->journal, slot->config->name, state, &jerr);
    free(state);
    free(inputs_text);
    free(desired_text);
    free(actions_text);
    free(refused_text);
    free(explain_text);

    execute_actions(rt, &actions);
    sw_journal_flush(rt->journal, &jerr);
    if (rt->opts.on_evaluation != NULL)
        rt->opts.on_evaluation(rt->opts.observe_ud, slot->config->name);
    sw_actions_clear(&actions);
    sw_actions_clear(&refused);
    sw_guard_notes_clear(&notes);
    sw_policy_result_reset(&res);
    slot->res = res;
}

static void policy_tick(void *ud);

/* Move the policy's next tick to now; several requests in one turn make one evaluation. */
static void evaluate_soon(struct sw_runtime *rt, struct policy_slot *slot)
{
    if (!rt->running)
        return;
    if (slot->timer != 0)
        sw_clock_timer_stop(rt->clock, slot->timer);
    slot->timer = sw_clock_timer_start(rt->clock, 0, policy_tick, slot);
}

static void run_policy_event(struct sw_runtime *rt, const char *ev_json)
{
    struct sw_policy_input in;
    fill_policy_input(rt, &in);
    for (size_t i = 0; i < rt->policy_count; i++) {
        struct sw_error err = {0};
        if (rt->policies[i].paused)
            continue;
        if (sw_policy_on_event(rt->policies[i].policy, &in, ev_json, &err) < 0) {
            rt->stats.policy_errors++;
            note_policy_error(&rt->policies[i], err.msg);
            sw_log(SW_LOG_ERROR, LOG, "policy %s: on_event failed: %s",
                   rt->policies[i].config->name, err.msg);
        } else if (sw_policy_event_wants_eval(rt->policies[i].policy)) {
            evaluate_soon(rt, &rt->policies[i]);
        }
    }
}

static void policy_tick(void *ud)
{
    struct policy_slot *slot = ud;
    struct sw_runtime *rt = slot->rt;
    slot->timer = 0;
    if (!rt->running)
        return;
    if (!slot->paused)
        evaluate_policy(rt, slot);
    slot->timer = sw_clock_timer_start(rt->clock, (uint64_t)slot->interval_ms, policy_tick, slot);
}

/* ---- metrics and offers ----------------------------------------------------------------- */

static void metric_schedule(struct metric_slot *slot);

static void metric_done(void *ud, int status, const struct swp_sample *samples, size_t count,
                        const struct swp_error *perr)
{
    struct metric_slot *slot = ud;
    struct sw_runtime *rt = slot->rt;
    slot->in_flight = false;
    if (status == SW_ECANCELED)
        return;
    if (status == 0) {
        sw_metric_set_put(&rt->metrics, slot->config->name, now_ms(rt), samples, count);
    } else {
        const char *msg = perr != NULL && perr->msg[0] ? perr->msg : sw_strerror(status);
        sw_metric_set_put_error(&rt->metrics, slot->config->name, now_ms(rt), status, msg);
        sw_log(SW_LOG_WARN, LOG, "metric %s: query failed: %s", slot->config->name, msg);
    }
}

static void metric_fetch(struct metric_slot *slot)
{
    struct sw_runtime *rt = slot->rt;
    const struct swp_metrics_ops *ops = sw_plugin_metrics(slot->plugin);
    if (slot->in_flight || ops == NULL || ops->query == NULL)
        return;
    slot->in_flight = true;
    int rc = ops->query(sw_plugin_state(slot->plugin), slot->config->query, metric_done, slot);
    if (rc < 0) {
        slot->in_flight = false;
        sw_metric_set_put_error(&rt->metrics, slot->config->name, now_ms(rt), rc,
                                sw_strerror(rc));
    }
}

static void metric_tick(void *ud)
{
    struct metric_slot *slot = ud;
    slot->timer = 0;
    if (!slot->rt->running)
        return;
    metric_fetch(slot);
    metric_schedule(slot);
}

static void metric_schedule(struct metric_slot *slot)
{
    slot->timer = sw_clock_timer_start(slot->rt->clock, (uint64_t)slot->every_ms, metric_tick,
                                       slot);
}

static void offers_done(void *ud, int status, const struct swp_offer *offers, size_t count,
                        const struct swp_error *perr)
{
    struct sw_runtime *rt = ud;
    rt->offers_in_flight = false;
    if (status == SW_ECANCELED)
        return;
    if (status < 0) {
        sw_log(SW_LOG_WARN, LOG, "marketplace offers: %s",
               perr != NULL && perr->msg[0] ? perr->msg : sw_strerror(status));
        return;
    }
    sw_offers_replace(&rt->offers, offers, count); /* reuses unchanged strings */
}

static void offers_fetch(struct sw_runtime *rt)
{
    if (rt->offers_in_flight || rt->market_ops->offers == NULL)
        return;
    rt->offers_in_flight = true;
    if (rt->market_ops->offers(sw_plugin_state(rt->market), offers_done, rt) < 0)
        rt->offers_in_flight = false;
}

static void offers_tick(void *ud)
{
    struct sw_runtime *rt = ud;
    rt->offers_timer = 0;
    if (!rt->running)
        return;
    offers_fetch(rt);
    int64_t every = rt->opts.offers_every_ms ? rt->opts.offers_every_ms : DEFAULT_OFFERS_EVERY_MS;
    rt->offers_timer = sw_clock_timer_start(rt->clock, (uint64_t)every, offers_tick, rt);
}

/* ---- watch and recovery ----------------------------------------------------------------- */

static bool is_ours(const struct sw_runtime *rt, const struct swp_unit *mu)
{
    return mu->tag != NULL && strcmp(mu->tag, rt->config->instance_id) == 0;
}

static const struct swp_unit *find_listed(const struct swp_unit *listed, size_t count,
                                          const char *key, const char *market_id)
{
    for (size_t i = 0; i < count; i++) {
        if (market_id != NULL && listed[i].market_id != NULL &&
            strcmp(listed[i].market_id, market_id) == 0)
            return &listed[i];
        if (key != NULL && listed[i].key != NULL && strcmp(listed[i].key, key) == 0)
            return &listed[i];
    }
    return NULL;
}

/* past a few dozen units the listing is indexed by market id and by key (first
 * occurrence of each), so find_listed is two lookups instead of a scan per unit; below,
 * scanning is cheaper than hashing. */
#define LISTED_INDEX_FROM 32

struct listed_index {
    bool used;
    size_t count;
    struct sw_name_index *by_market_id; /* rt->watch_ix */
    struct sw_name_index *by_key;
    /* below LISTED_INDEX_FROM, each listed unit's market id and key hashes
     * (sw_name_hash), so a scan compares integers and calls strcmp only on a match. */
    uint64_t id_hash[LISTED_INDEX_FROM];
    uint64_t key_hash[LISTED_INDEX_FROM];
};

static void listed_index_init(struct sw_runtime *rt, struct listed_index *ix,
                              const struct swp_unit *listed, size_t count)
{
    ix->count = count;
    ix->used = count >= LISTED_INDEX_FROM;
    ix->by_market_id = &rt->watch_ix[0];
    ix->by_key = &rt->watch_ix[1];
    if (!ix->used) {
        for (size_t i = 0; i < count; i++) {
            ix->id_hash[i] = sw_name_hash(listed[i].market_id);
            ix->key_hash[i] = sw_name_hash(listed[i].key);
        }
        return;
    }
    sw_name_index_reset(ix->by_market_id, count);
    sw_name_index_reset(ix->by_key, count);
    for (size_t i = 0; i < count; i++) {
        sw_name_index_add(ix->by_market_id, listed[i].market_id, i);
        sw_name_index_add(ix->by_key, listed[i].key, i);
    }
}

/* find_listed through the index: the first listed unit matching by market id or by key. */
static const struct swp_unit *find_listed_indexed(const struct swp_unit *listed,
                                                  const struct listed_index *ix, const char *key,
                                                  const char *market_id)
{
    if (!ix->used) { /* find_listed, hashes first */
        uint64_t id_hash = sw_name_hash(market_id), key_hash = sw_name_hash(key);
        for (size_t i = 0; i < ix->count; i++) {
            if (market_id != NULL && listed[i].market_id != NULL && ix->id_hash[i] == id_hash &&
                strcmp(listed[i].market_id, market_id) == 0)
                return &listed[i];
            if (key != NULL && listed[i].key != NULL && ix->key_hash[i] == key_hash &&
                strcmp(listed[i].key, key) == 0)
                return &listed[i];
        }
        return NULL;
    }
    size_t by_id = SIZE_MAX, by_key = SIZE_MAX;
    if (!sw_name_index_get(ix->by_market_id, market_id, &by_id))
        by_id = SIZE_MAX;
    if (!sw_name_index_get(ix->by_key, key, &by_key))
        by_key = SIZE_MAX;
    size_t first = by_id < by_key ? by_id : by_key;
    return first != SIZE_MAX ? &listed[first] : NULL;
}

static bool op_in_flight_for(const struct sw_runtime *rt, const char *unit_key)
{
    for (const struct market_op *op = rt->ops; op != NULL; op = op->next)
        if (!op->abandoned && strcmp(op->unit_key, unit_key) == 0)
            return true;
    return false;
}

/* Bring the in-memory units in line with what the marketplace lists. */
static void sync_units(struct sw_runtime *rt, const struct swp_unit *listed, size_t count)
{
    /* the listing version this answer is known to be under (0: unknown); the index
     * is built when the first unit without a pairing under it needs a lookup. */
    uint64_t version = 0;
    if (rt->watch_version_before != 0 &&
        rt->market_ops->list_version(sw_plugin_state(rt->market)) == rt->watch_version_before)
        version = rt->watch_version_before;
    struct listed_index ix;
    bool ix_built = false;
    if (count > rt->listed_matched_cap) {
        rt->listed_matched_cap = count;
        rt->listed_matched = sw_xrealloc(rt->listed_matched, count * sizeof(*rt->listed_matched));
    }
    if (count > 0)
        memset(rt->listed_matched, 0, count * sizeof(*rt->listed_matched));
    rt->listed_matched_count = count;
    for (size_t i = 0; i < rt->units.count; i++) {
        struct sw_unit *u = rt->units.items[i];
        if (u->state == SW_UNIT_CLOSED || op_in_flight_for(rt, u->key))
            continue;
        const struct swp_unit *mu = NULL;
        bool has_id = u->market_id != NULL, applied = false;
        if (version != 0 && u->watch_version == version && u->watch_had_id == has_id &&
            u->watch_pos < count) {
            mu = &listed[u->watch_pos]; /* paired under this version already */
            applied = u->watch_applied;
        } else {
            if (!ix_built) {
                listed_index_init(rt, &ix, listed, count);
                ix_built = true;
            }
            mu = find_listed_indexed(listed, &ix, u->key, u->market_id);
            u->watch_version = 0;
            if (mu != NULL && version != 0) {
                u->watch_version = version;
                u->watch_pos = (size_t)(mu - listed);
                u->watch_had_id = has_id;
            }
        }
        if (mu == NULL) {
            if (u->state == SW_UNIT_ORDERED && u->market_id == NULL)
                continue; /* never reached the marketplace; recovery decides */
            u->state = SW_UNIT_CLOSED;
            u->closed_ms = now_ms(rt);
            free(u->close_reason);
            u->close_reason = sw_xstrdup("no longer listed by the marketplace");
            rt->stats.units_lost++;
            save_unit(rt, u);
            sw_log(SW_LOG_WARN, LOG, "unit %s %s/%s (%s) is gone from the marketplace", u->key,
                   u->group, u->region, u->market_id ? u->market_id : "-");
            resil_unit_closed(rt, u, SW_TRACK_LOST);
            continue;
        }
        rt->listed_matched[mu - listed] = true;
        int before = u->state;
        /* an entry applied under this version already is the same report again: the
         * unit's report fields hold it (see struct sw_unit watch_applied). */
        if (!applied) {
            apply_unit_report(u, mu);
            u->watch_applied = u->watch_version != 0;
        }
        if (mu->state == SWP_UNIT_READY && u->state != SW_UNIT_READY &&
            u->state != SW_UNIT_RELEASING) {
            u->state = SW_UNIT_READY;
            u->ready_ms = now_ms(rt);
        } else if (mu->state > u->state && mu->state < SWP_UNIT_READY) {
            u->state = mu->state;
        }
        if (before != u->state) {
            save_unit(rt, u);
            sw_log(SW_LOG_INFO, LOG, "unit %s %s/%s: now %s (from the marketplace's list)",
                   u->key, u->group, u->region, sw_unit_state_name(u->state));
        }
    }
}

/* below LISTED_INDEX_FROM units, the units' market id and key hashes (the first
 * `hashed` units; any added since are compared by content): sw_units_find_market_id and
 * sw_units_find_key with integer compares first. */
struct known_hashes {
    size_t hashed;
    uint64_t id_hash[LISTED_INDEX_FROM];
    uint64_t key_hash[LISTED_INDEX_FROM];
};

static bool known_by(const struct sw_runtime *rt, const struct known_hashes *kh, bool by_id,
                     const char *name)
{
    uint64_t h = sw_name_hash(name);
    for (size_t i = 0; name != NULL && i < rt->units.count; i++) {
        const struct sw_unit *u = rt->units.items[i];
        const char *have = by_id ? u->market_id : u->key;
        if (have == NULL)
            continue;
        if (i < kh->hashed && (by_id ? kh->id_hash[i] : kh->key_hash[i]) != h)
            continue;
        if (strcmp(have, name) == 0)
            return true;
    }
    return false;
}

/* A unit steward created but lost track of still costs money: close it. */
static void close_orphans(struct sw_runtime *rt, const struct swp_unit *listed, size_t count)
{
    /* a listed unit sync_units paired with one of ours is known (they share a
     * market id or a key): only the others are looked up, and the lookup tables are built
     * when the first of those comes (on most passes, never). */
    const bool *matched = rt->listed_matched_count == count ? rt->listed_matched : NULL;
    /* many known units are indexed once, not scanned per listed unit. */
    bool indexed = false, built = false;
    struct sw_name_index *known_ids = &rt->watch_ix[2], *known_keys = &rt->watch_ix[3];
    struct known_hashes kh; /* the hash arrays are read only below `hashed` */
    kh.hashed = 0;
    for (size_t i = 0; i < count; i++) {
        const struct swp_unit *mu = &listed[i];
        if ((matched != NULL && matched[i]) || !is_ours(rt, mu) || mu->market_id == NULL)
            continue;
        if (!built) {
            built = true;
            indexed = rt->units.count >= LISTED_INDEX_FROM;
            if (!indexed) {
                kh.hashed = rt->units.count;
                for (size_t k = 0; k < kh.hashed; k++) {
                    kh.id_hash[k] = sw_name_hash(rt->units.items[k]->market_id);
                    kh.key_hash[k] = sw_name_hash(rt->units.items[k]->key);
                }
            } else {
                sw_name_index_reset(known_ids, rt->units.count);
                sw_name_index_reset(known_keys, rt->units.count);
                for (size_t k = 0; k < rt->units.count; k++) {
                    sw_name_index_add(known_ids, rt->units.items[k]->market_id, k);
                    sw_name_index_add(known_keys, rt->units.items[k]->key, k);
                }
            }
        }
        if (rt->config->self_market_id != NULL &&
            strcmp(rt->config->self_market_id, mu->market_id) == 0)
            continue;
        if (indexed ? sw_name_index_get(known_ids, mu->market_id, NULL)
                    : known_by(rt, &kh, true, mu->market_id))
            continue;
        if (mu->key != NULL && (indexed ? sw_name_index_get(known_keys, mu->key, NULL)
                                        : known_by(rt, &kh, false, mu->key)))
            continue;
        /* Track it so the release has a unit to act on, then close it. */
        char *key = mu->key != NULL ? sw_xstrdup(mu->key)
                                    : sw_xasprintf("orphan-%s", mu->market_id);
        struct sw_unit *u = sw_unit_new(key, mu->group ? mu->group : "?",
                                        mu->region ? mu->region : "?");
        free(key);
        apply_unit_report(u, mu);
        u->state = mu->state == SWP_UNIT_READY ? SW_UNIT_READY : SW_UNIT_LEASED;
        u->ordered_ms = now_ms(rt);
        sw_units_add(&rt->units, u);
        if (indexed) {
            sw_name_index_add(known_ids, u->market_id, rt->units.count - 1);
            sw_name_index_add(known_keys, u->key, rt->units.count - 1);
        }
        save_unit(rt, u);
        rt->stats.recovered_closed_orphans++;
        sw_log(SW_LOG_WARN, LOG, "found %s on the marketplace, created by this steward but "
               "unknown to its journal: closing it", mu->market_id);
        start_release(rt, u, "orphan: created by this steward, not in its journal");
    }
    rt->listed_matched_count = 0; /* used: the next pass pairs its own listing */
}

static void resolve_pending_intents(struct sw_runtime *rt, const struct swp_unit *listed,
                                    size_t count)
{
    struct sw_intent *pending = NULL;
    size_t pending_count = 0;
    struct sw_error err = {0};
    if (sw_journal_intents_pending(rt->journal, &pending, &pending_count, &err) < 0) {
        sw_log(SW_LOG_ERROR, LOG, "recovery: cannot list pending intents: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < pending_count; i++) {
        struct sw_intent *in = &pending[i];
        if (in->kind == SW_ACTION_ACQUIRE) {
            const struct swp_unit *mu = find_listed(listed, count, in->key, in->market_id);
            struct sw_unit *u = sw_units_find_key(&rt->units, in->key);
            if (mu != NULL && is_ours(rt, mu)) {
                if (u == NULL) {
                    u = sw_unit_new(in->key, in->group, in->region);
                    u->ordered_ms = in->created_ms;
                    sw_units_add(&rt->units, u);
                }
                apply_unit_report(u, mu);
                u->state = mu->state == SWP_UNIT_READY ? SW_UNIT_READY
                           : mu->state > SW_UNIT_ORDERED ? mu->state : SW_UNIT_CREATED;
                if (u->state == SW_UNIT_READY && u->ready_ms == 0)
                    u->ready_ms = now_ms(rt);
                save_unit(rt, u);
                if (in->market_id == NULL)
                    sw_journal_intent_set_market_id(rt->journal, in->key, mu->market_id,
                                                    now_ms(rt), &err);
                rt->stats.recovered_adopted++;
                sw_log(SW_LOG_INFO, LOG, "recovery: adopted %s/%s unit %s (%s, %s)", u->group,
                       u->region, u->key, u->market_id, sw_unit_state_name(u->state));
                if (u->state == SW_UNIT_READY)
                    finish_intent(rt, in->key, SW_INTENT_DONE, "recovered: ready after restart");
                else
                    fenced_send_acquire(rt, u, in->key, now_ms(rt) - in->created_ms);
            } else {
                if (u != NULL && u->state != SW_UNIT_CLOSED) {
                    u->state = SW_UNIT_CLOSED;
                    u->closed_ms = now_ms(rt);
                    free(u->close_reason);
                    u->close_reason = sw_xstrdup("never created (recovered after restart)");
                    save_unit(rt, u);
                }
                finish_intent(rt, in->key, SW_INTENT_ABANDONED,
                              "recovered: the marketplace has no such unit");
                rt->stats.recovered_abandoned++;
                sw_log(SW_LOG_INFO, LOG, "recovery: acquire %s of %s/%s never completed on the "
                       "marketplace; abandoned", in->key, in->group, in->region);
            }
        } else {
            struct sw_unit *u = sw_units_find_key(&rt->units, in->unit_key);
            const struct swp_unit *mu = find_listed(listed, count, in->unit_key, in->market_id);
            finish_intent(rt, in->key, SW_INTENT_ABANDONED,
                          mu != NULL ? "recovered: re-planned after restart"
                                     : "recovered: already closed");
            if (u != NULL && mu == NULL) {
                u->state = SW_UNIT_CLOSED;
                u->closed_ms = now_ms(rt);
                save_unit(rt, u);
            } else if (u != NULL && u->state == SW_UNIT_RELEASING) {
                /* The release may not have reached the marketplace: send it again. */
                u->state = SW_UNIT_READY;
                start_release(rt, u, "release interrupted by a restart");
            }
        }
        sw_intent_clear(in);
    }
    free(pending);
}

static void start_schedules(struct sw_runtime *rt);

static void recovery_listed(void *ud, int status, const struct swp_unit *listed, size_t count,
                            const struct swp_error *perr)
{
    struct sw_runtime *rt = ud;
    rt->watch_in_flight = false;
    if (status == SW_ECANCELED)
        return;
    if (status < 0) {
        struct sw_error err;
        sw_error_set(&err, status, "recovery: the market plugin cannot list units: %s",
                     perr != NULL && perr->msg[0] ? perr->msg : sw_strerror(status));
        sw_log(SW_LOG_ERROR, LOG, "%s", err.msg);
        if (rt->opts.on_fatal != NULL)
            rt->opts.on_fatal(rt->opts.fatal_ud, &err);
        return;
    }
    resolve_pending_intents(rt, listed, count);
    sync_units(rt, listed, count);
    close_orphans(rt, listed, count);
    struct sw_error err = {0};
    sw_journal_flush(rt->journal, &err);
    rt->recovered = true;
    sw_log(SW_LOG_INFO, LOG, "recovery done: %zu units open, %" PRIu64 " adopted, %" PRIu64
           " abandoned, %" PRIu64 " orphans closed", (size_t)sw_units_count_open(&rt->units),
           rt->stats.recovered_adopted, rt->stats.recovered_abandoned,
           rt->stats.recovered_closed_orphans);
    start_schedules(rt);
}

static void watch_listed(void *ud, int status, const struct swp_unit *listed, size_t count,
                         const struct swp_error *perr)
{
    struct sw_runtime *rt = ud;
    rt->watch_in_flight = false;
    if (status == SW_ECANCELED || !rt->running)
        return;
    if (status < 0) {
        sw_log(SW_LOG_WARN, LOG, "watch: cannot list units: %s",
               perr != NULL && perr->msg[0] ? perr->msg : sw_strerror(status));
        return;
    }
    sync_units(rt, listed, count);
    close_orphans(rt, listed, count);
    rt->watch_version_before = 0; /* read again before the next list call */
}

static void watch_tick(void *ud)
{
    struct sw_runtime *rt = ud;
    rt->watch_timer = 0;
    if (!rt->running)
        return;
    if (!rt->watch_in_flight && rt->market_ops->list != NULL) {
        rt->watch_in_flight = true;
        rt->watch_version_before = rt->market_ops->list_version != NULL
                                       ? rt->market_ops->list_version(sw_plugin_state(rt->market))
                                       : 0;
        if (rt->market_ops->list(sw_plugin_state(rt->market), watch_listed, rt) < 0)
            rt->watch_in_flight = false;
    }
    int64_t every = rt->opts.watch_every_ms ? rt->opts.watch_every_ms : DEFAULT_WATCH_EVERY_MS;
    rt->watch_timer = sw_clock_timer_start(rt->clock, (uint64_t)every, watch_tick, rt);
}

static void start_schedules(struct sw_runtime *rt)
{
    if (!rt->running || rt->quiesced)
        return;
    /* Inputs first so the first evaluation (scheduled on the next turn) sees them when the
     * plugins answer at once, as embedded ones do. */
    offers_fetch(rt);
    for (size_t i = 0; i < rt->metric_count; i++) {
        metric_fetch(&rt->metrics_slots[i]);
        metric_schedule(&rt->metrics_slots[i]);
    }
    int64_t offers_every =
        rt->opts.offers_every_ms ? rt->opts.offers_every_ms : DEFAULT_OFFERS_EVERY_MS;
    rt->offers_timer = sw_clock_timer_start(rt->clock, (uint64_t)offers_every, offers_tick, rt);
    int64_t watch_every =
        rt->opts.watch_every_ms ? rt->opts.watch_every_ms : DEFAULT_WATCH_EVERY_MS;
    rt->watch_timer = sw_clock_timer_start(rt->clock, (uint64_t)watch_every, watch_tick, rt);
    for (size_t i = 0; i < rt->policy_count; i++)
        rt->policies[i].timer = sw_clock_timer_start(rt->clock, 0, policy_tick, &rt->policies[i]);
    probes_schedule(rt);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static struct sw_plugin *load_plugin(struct sw_runtime *rt, const char *name,
                                     struct sw_error *err)
{
    struct sw_plugin *loaded = sw_plugin_host_get(rt->plugins, name);
    if (loaded != NULL)
        return loaded;
    char *path = sw_plugin_host_find(rt->opts.plugin_dirs, rt->opts.plugin_dir_count, name);
    if (path == NULL) {
        sw_error_set(err, SW_ECONFIG, "%s: plugin '%s' not found (looked for swp_%s.so in %zu "
                     "plugin directories; run `steward plugins` to list what is installed)",
                     rt->config->path, name, name, rt->opts.plugin_dir_count);
        return NULL;
    }
    const struct sw_plugin_config *pc = sw_config_plugin(rt->config, name);
    char *origin = sw_xasprintf("%s:plugins.%s", rt->config->path, name);
    struct sw_plugin *plugin = sw_plugin_host_load(rt->plugins, path,
                                                   pc != NULL ? pc->config_json : NULL, origin,
                                                   err);
    free(origin);
    free(path);
    return plugin;
}

static int load_plugins(struct sw_runtime *rt, struct sw_error *err)
{
    rt->market = load_plugin(rt, rt->config->market_plugin, err);
    if (rt->market == NULL)
        return err->code ? err->code : SW_ECONFIG;
    rt->market_ops = sw_plugin_market(rt->market);
    if (rt->market_ops == NULL)
        return sw_error_set(err, SW_ECONFIG, "%s:market: plugin '%s' is not a market plugin",
                            rt->config->path, rt->config->market_plugin);
    for (size_t i = 0; i < rt->config->plugin_count; i++)
        if (load_plugin(rt, rt->config->plugins[i].name, err) == NULL)
            return err->code ? err->code : SW_ECONFIG;

    int64_t shortest = 0;
    for (size_t i = 0; i < rt->config->policy_count; i++)
        if (shortest == 0 || rt->config->policies[i].interval_ms < shortest)
            shortest = rt->config->policies[i].interval_ms;
    rt->metric_count = rt->config->metric_count;
    rt->metrics_slots = sw_xcalloc(rt->metric_count ? rt->metric_count : 1,
                                   sizeof(*rt->metrics_slots));
    for (size_t i = 0; i < rt->metric_count; i++) {
        const struct sw_metric_config *mc = &rt->config->metrics[i];
        struct metric_slot *slot = &rt->metrics_slots[i];
        slot->rt = rt;
        slot->config = mc;
        slot->plugin = load_plugin(rt, mc->plugin, err);
        if (slot->plugin == NULL)
            return err->code ? err->code : SW_ECONFIG;
        if (sw_plugin_metrics(slot->plugin) == NULL)
            return sw_error_set(err, SW_ECONFIG, "%s:metrics.%s.plugin: '%s' is not a metrics "
                                "plugin", rt->config->path, mc->name, mc->plugin);
        slot->every_ms = mc->every_ms > 0 ? mc->every_ms : (shortest > 0 ? shortest : 10000);
    }
    return probes_load(rt, err);
}

static int load_policies(struct sw_runtime *rt, struct sw_error *err)
{
    rt->policy_count = rt->config->policy_count;
    rt->policies = sw_xcalloc(rt->policy_count ? rt->policy_count : 1, sizeof(*rt->policies));
    for (size_t i = 0; i < rt->policy_count; i++) {
        const struct sw_policy_config *pc = &rt->config->policies[i];
        struct policy_slot *slot = &rt->policies[i];
        slot->rt = rt;
        slot->config = pc;
        slot->interval_ms = pc->interval_ms;
        slot->paused = saved_pause(rt, pc->name);
        struct sw_policy_opts popts = {
            .name = pc->name,
            .file = pc->file,
            .lua_path = rt->opts.lua_path,
            .params_json = pc->params_json,
            .clock = rt->clock,
            .seed = rt->config->seed + i,
            .max_instructions = pc->max_instructions,
            .memory_limit = pc->memory_limit,
            .time_limit_ms = pc->time_limit_ms,
            .log_fn = policy_log,
            .log_ud = slot,
        };
        slot->policy = sw_policy_new(&popts, err);
        if (slot->policy == NULL)
            return err->code ? err->code : SW_EPOLICY;
        char *state = NULL;
        struct sw_error serr = {0};
        if (sw_journal_state_get(rt->journal, pc->name, &state, &serr) == 0 && state != NULL) {
            if (sw_policy_state_load(slot->policy, state) < 0)
                sw_log(SW_LOG_WARN, LOG, "policy %s: saved state unreadable; starting empty",
                       pc->name);
        }
        free(state);
    }
    return 0;
}

static void mark_self(struct sw_runtime *rt)
{
    if (rt->config->self_market_id == NULL)
        return;
    struct sw_unit *u = sw_units_find_market_id(&rt->units, rt->config->self_market_id);
    if (u != NULL)
        u->self = true;
    sw_log(SW_LOG_INFO, LOG, "running inside %s: it will never be released",
           rt->config->self_market_id);
}

/* dns: journal what the DNS sync reports (changes, conflicts, withdrawals, alerts). */
static void dns_event(void *ud, const char *type, const char *data_json)
{
    struct sw_runtime *rt = ud;
    sw_journal_event(rt->journal, now_ms(rt), type, data_json);
}

static int setup_dns(struct sw_runtime *rt, struct sw_error *err)
{
    const struct sw_dns_config *dc = rt->config->dns;
    /* A dry run writes nothing anywhere, and a run without a loop (simulation) has no
     * network: a sync that can never list would hold every release back forever. */
    if (rt->opts.dry_run || rt->opts.loop == NULL) {
        sw_log(SW_LOG_INFO, LOG, "dns: sync of %s disabled (%s)", dc->zone,
               rt->opts.dry_run ? "dry run" : "no network in this run");
        return 0;
    }
    struct sw_plugin *plugin = load_plugin(rt, dc->plugin, err);
    if (plugin == NULL)
        return err->code ? err->code : SW_ECONFIG;
    const struct swp_dns_ops *ops = sw_plugin_dns(plugin);
    if (ops == NULL)
        return sw_error_set(err, SW_ECONFIG, "%s:dns.plugin: '%s' is not a dns plugin",
                            rt->config->path, dc->plugin);
    struct sw_dns_sync_opts dopts = {
        .config = dc,
        .clock = rt->clock,
        .ops = ops,
        .plugin_state = sw_plugin_state(plugin),
        .plugin_name = dc->plugin,
        .units = &rt->units,
        .on_event = dns_event,
        .event_ud = rt,
    };
    rt->dns = sw_dns_sync_new(&dopts);
    return 0;
}

/* The plugins reach the runtime only through these services. */
static struct sw_plugin_host *new_plugin_host(struct sw_runtime *rt)
{
    struct sw_plugin_services services = {
        .ud = rt,
        .now_ms = svc_now,
        .timer_start = svc_timer_start,
        .timer_stop = svc_timer_stop,
        .http_request = svc_http_request,
        .http_cancel = svc_http_cancel,
        .kv_get = svc_kv_get,
        .kv_set = svc_kv_set,
        .kv_del = svc_kv_del,
        .emit_event = svc_emit_event,
        .net_exchange = svc_net_exchange,
        .net_cancel = svc_net_cancel,
    };
    struct sw_plugin_host *host =
        sw_plugin_host_new(&services, rt->config->instance_id, rt->config->seed);
    sw_plugin_host_set_base_dir(host, rt->config->dir);
    return host;
}

struct sw_runtime *sw_runtime_new(const struct sw_runtime_opts *opts, struct sw_error *err)
{
    struct sw_runtime *rt = sw_xcalloc(1, sizeof(*rt));
    rt->opts = *opts;
    rt->config = opts->config;
    rt->clock = opts->clock;
    sw_units_init(&rt->units);
    sw_offers_init(&rt->offers);
    sw_metric_set_init(&rt->metrics);
    sw_desired_init(&rt->desired);

    rt->journal = sw_journal_open(rt->config->state_path, err);
    if (rt->journal == NULL)
        goto fail;
    char *seq = NULL;
    if (sw_journal_meta_get(rt->journal, "unit_seq", &seq) == 0 && seq != NULL)
        rt->unit_seq = strtoull(seq, NULL, 10);
    free(seq);
    char *owner = NULL;
    if (sw_journal_meta_get(rt->journal, "instance_id", &owner) == 0 && owner != NULL &&
        strcmp(owner, rt->config->instance_id) != 0) {
        sw_error_set(err, SW_ECONFIG, "%s: journal %s belongs to steward id '%s', not '%s': "
                     "use another \"state\" file or the same \"id\"", rt->config->path,
                     rt->config->state_path, owner, rt->config->instance_id);
        free(owner);
        goto fail;
    }
    free(owner);
    sw_journal_meta_set(rt->journal, "instance_id", rt->config->instance_id);
    if (sw_journal_units_load(rt->journal, &rt->units, err) < 0)
        goto fail;
    mark_self(rt);

    rt->plugins = new_plugin_host(rt);
    if (load_plugins(rt, err) < 0)
        goto fail;
    rt->guard = sw_guard_new(&rt->config->guard, rt->config->groups, rt->config->group_count);
    if (resil_init(rt, err) < 0)
        goto fail;
    if (load_policies(rt, err) < 0)
        goto fail;
    if (rt->config->dns != NULL && setup_dns(rt, err) < 0)
        goto fail;
    if (rt->config->ha != NULL && ha_setup(rt, err) < 0)
        goto fail;
    return rt;
fail:
    sw_runtime_free(rt);
    return NULL;
}

/* Recovery, then the schedules: what a replica does once it may act. */
static int start_acting(struct sw_runtime *rt, struct sw_error *err)
{
    if (rt->dns != NULL)
        sw_dns_sync_start(rt->dns); /* before recovery: its releases are held back too */
    if (rt->market_ops->list == NULL) {
        rt->recovered = true;
        start_schedules(rt);
        return 0;
    }
    rt->watch_in_flight = true;
    int rc = rt->market_ops->list(sw_plugin_state(rt->market), recovery_listed, rt);
    if (rc < 0) {
        rt->watch_in_flight = false;
        rt->running = false;
        return sw_error_set(err, rc, "recovery: the market plugin refused to list units: %s",
                            sw_strerror(rc));
    }
    return 0;
}

int sw_runtime_start(struct sw_runtime *rt, struct sw_error *err)
{
    rt->running = true;
    rt->stats.started_ms = now_ms(rt);
    coalesce_start(rt); /* journal coalescing */
    history_start(rt);  /* history */
    if (rt->ha != NULL) { /* ha: nothing acts before this replica is elected (ha_elected) */
        sw_ha_start(rt->ha);
        return 0;
    }
    return start_acting(rt, err);
}

static void stop_timer(struct sw_runtime *rt, uint64_t *timer)
{
    if (*timer != 0)
        sw_clock_timer_stop(rt->clock, *timer);
    *timer = 0;
}

void sw_runtime_stop(struct sw_runtime *rt)
{
    if (rt == NULL || !rt->running)
        return;
    rt->running = false;
    rt->stopping = true;
    for (size_t i = 0; i < rt->policy_count; i++)
        stop_timer(rt, &rt->policies[i].timer);
    for (size_t i = 0; i < rt->metric_count; i++)
        stop_timer(rt, &rt->metrics_slots[i].timer);
    stop_timer(rt, &rt->offers_timer);
    stop_timer(rt, &rt->watch_timer);
    stop_timer(rt, &rt->override_timer);
    /* dns: held-back releases stay pending in the journal; recovery re-plans them. */
    sw_dns_sync_stop(rt->dns);
    while (rt->deferred != NULL) {
        struct deferred_release *d = rt->deferred;
        rt->deferred = d->next;
        free(d->unit_key);
        free(d->intent_key);
        free(d);
    }
    stop_timer(rt, &rt->probe_timer);
    resil_stop(rt);
    /* Operations still in flight stay pending in the journal: recovery resolves them. */
    for (struct market_op *op = rt->ops; op != NULL; op = op->next) {
        if (!op->abandoned) {
            op->abandoned = true;
            rt->ops_in_flight--;
        }
        stop_timer(rt, &op->deadline_timer);
    }
    struct sw_error err = {0};
    sw_journal_flush(rt->journal, &err);
    stop_timer(rt, &rt->history_timer); /* history */
    coalesce_stop(rt); /* journal coalescing: plugins' last writes commit on return */
}

void sw_runtime_reload(struct sw_runtime *rt)
{
    for (size_t i = 0; i < rt->policy_count; i++) {
        struct sw_error err = {0};
        if (sw_policy_reload(rt->policies[i].policy, &err) == 0)
            sw_log(SW_LOG_INFO, LOG, "policy %s reloaded", rt->policies[i].config->name);
        else
            sw_log(SW_LOG_ERROR, LOG, "policy %s: reload failed, keeping the old version: %s",
                   rt->policies[i].config->name, err.msg);
    }
}

void sw_runtime_free(struct sw_runtime *rt)
{
    if (rt == NULL)
        return;
    sw_runtime_stop(rt);
    rt->stopping = true;
    ha_free(rt); /* ha: waiting fences complete with SW_ECANCELED (intents stay pending) */
    stop_timer(rt, &rt->events_timer);
    /* Destroying plugins completes their pending ops with SW_ECANCELED, which frees them. */
    sw_plugin_host_free(rt->plugins);
    probes_free(rt);
    sw_http_client_close(rt->http);
    sw_net_close(rt->net);
    sw_dns_sync_free(rt->dns); /* after the plugins: their cancelled ops called back into it */
    while (rt->ops != NULL)
        op_unlink_and_free(rt, rt->ops);
    while (rt->events_head != NULL) {
        struct pending_event *ev = rt->events_head;
        rt->events_head = ev->next;
        free(ev->type);
        free(ev->market_id);
        free(ev->reason);
        free(ev->data_json);
        free(ev);
    }
    admin_free(rt);
    for (size_t i = 0; i < rt->policy_count; i++) {
        sw_policy_free(rt->policies[i].policy);
        sw_policy_result_clear(&rt->policies[i].res);
    }
    free(rt->policies);
    free(rt->metrics_slots);
    sw_guard_free(rt->guard);
    resil_free(rt);
    sw_journal_close(rt->journal);
    sw_units_clear(&rt->units);
    sw_offers_clear(&rt->offers);
    sw_metric_set_clear(&rt->metrics);
    sw_desired_clear(&rt->desired);
    sw_planner_memo_free(&rt->plan_memo);
    for (size_t i = 0; i < SW_ARRAY_LEN(rt->watch_ix); i++)
        sw_name_index_free(&rt->watch_ix[i]);
    free(rt->listed_matched);
    free(rt);
}

const struct sw_runtime_stats *sw_runtime_stats(const struct sw_runtime *rt)
{
    return &rt->stats;
}

const struct sw_units *sw_runtime_units(const struct sw_runtime *rt)
{
    return &rt->units;
}

const struct sw_desired *sw_runtime_desired(const struct sw_runtime *rt)
{
    return &rt->desired;
}

struct sw_journal *sw_runtime_journal(struct sw_runtime *rt)
{
    return rt->journal;
}

bool sw_runtime_ready(const struct sw_runtime *rt)
{
    return rt->recovered && rt->stats.evaluations > 0;
}

size_t sw_runtime_ops_in_flight(const struct sw_runtime *rt)
{
    return rt->ops_in_flight;
}

/* ---- admin API hooks (admin_api.c) ------------------------------------------------------ */

const double sw_runtime_hist_bounds[SW_RUNTIME_HIST_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
};

struct admin_override {
    struct sw_runtime_override pub; /* pub.group and pub.region are owned here */
    /* The group's entries as the policies want them, restored when the override ends.
     * Refreshed whenever a policy names the group, so a policy that changed its mind
     * during the override is not forgotten. */
    struct sw_desired base;
};

static void hist_observe(struct sw_runtime_hist *h, double seconds)
{
    size_t i = 0;
    while (i < SW_RUNTIME_HIST_BUCKETS && seconds > sw_runtime_hist_bounds[i])
        i++;
    h->buckets[i]++;
    h->count++;
    h->sum_s += seconds;
}

static void note_evaluation(struct policy_slot *slot, int rc, double duration_ms,
                            const char *error)
{
    slot->evaluations++;
    slot->last_eval_ms = now_ms(slot->rt);
    slot->last_duration_ms = duration_ms;
    hist_observe(&slot->duration, duration_ms / 1000.0);
    if (rc < 0) {
        note_policy_error(slot, error);
    } else {
        free(slot->last_error);
        slot->last_error = NULL;
    }
}

static void note_policy_error(struct policy_slot *slot, const char *error)
{
    slot->errors++;
    free(slot->last_error);
    slot->last_error = sw_xstrdup(error != NULL ? error : "");
}

size_t sw_runtime_policy_count(const struct sw_runtime *rt)
{
    return rt->policy_count;
}

void sw_runtime_policy_info(const struct sw_runtime *rt, size_t i,
                            struct sw_runtime_policy_info *out)
{
    const struct policy_slot *slot = &rt->policies[i];
    memset(out, 0, sizeof(*out));
    out->name = slot->config->name;
    out->file = slot->config->file;
    out->interval_ms = slot->interval_ms;
    out->paused = slot->paused;
    out->evaluations = slot->evaluations;
    out->errors = slot->errors;
    out->last_eval_ms = slot->last_eval_ms;
    out->last_duration_ms = slot->last_duration_ms;
    out->last_error = slot->last_error;
    out->duration = slot->duration;
}

static char *pause_key(const char *policy)
{
    return sw_xasprintf("paused/%s", policy);
}

static bool saved_pause(struct sw_runtime *rt, const char *policy)
{
    char *key = pause_key(policy);
    char *value = NULL;
    bool paused = sw_journal_meta_get(rt->journal, key, &value) == 0 && value != NULL &&
                  strcmp(value, "1") == 0;
    free(value);
    free(key);
    if (paused)
        sw_log(SW_LOG_WARN, LOG, "policy %s is paused (since an earlier run); `steward resume "
               "%s` resumes it", policy, policy);
    return paused;
}

int sw_runtime_policy_set_paused(struct sw_runtime *rt, const char *name, bool paused)
{
    struct policy_slot *slot = NULL;
    for (size_t i = 0; name != NULL && i < rt->policy_count && slot == NULL; i++)
        if (strcmp(rt->policies[i].config->name, name) == 0)
            slot = &rt->policies[i];
    if (slot == NULL)
        return SW_ENOENT;
    bool was = slot->paused;
    slot->paused = paused;
    char *key = pause_key(name);
    if (sw_journal_meta_set(rt->journal, key, paused ? "1" : "0") < 0)
        sw_log(SW_LOG_ERROR, LOG, "journal: cannot record that policy %s is %s: %s", name,
               paused ? "paused" : "resumed", sw_journal_last_error(rt->journal));
    free(key);
    if (was == paused)
        return 0;
    sw_log(SW_LOG_INFO, LOG, "policy %s %s", name,
           paused ? "paused: its groups keep their last desired counts" : "resumed");
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "policy", name);
    record_event(rt, paused ? "policy_paused" : "policy_resumed", data);
    struct sw_error err = {0};
    sw_journal_flush(rt->journal, &err);
    /* Resume means now, not at the end of an interval that started while paused. */
    if (!paused && rt->running && slot->timer != 0) {
        sw_clock_timer_stop(rt->clock, slot->timer);
        slot->timer = sw_clock_timer_start(rt->clock, 0, policy_tick, slot);
    }
    return 0;
}

uint64_t sw_runtime_refused_count(const struct sw_runtime *rt, int action_kind)
{
    return rt->refused_by_kind[action_kind == SW_ACTION_ACQUIRE ? 0 : 1];
}

/* ---- overrides ---- */

static void group_entries(const struct sw_desired *d, const char *group, struct sw_desired *out)
{
    sw_desired_clear(out);
    for (size_t i = 0; i < d->count; i++)
        if (strcmp(d->entries[i].group, group) == 0)
            sw_desired_set(out, group, d->entries[i].region, d->entries[i].count);
}

/* d with group's entries replaced by those of entries. */
static void replace_group(struct sw_desired *d, const char *group,
                          const struct sw_desired *entries)
{
    struct sw_desired out;
    sw_desired_init(&out);
    for (size_t i = 0; i < d->count; i++)
        if (strcmp(d->entries[i].group, group) != 0)
            sw_desired_set(&out, d->entries[i].group, d->entries[i].region, d->entries[i].count);
    for (size_t i = 0; i < entries->count; i++)
        sw_desired_set(&out, group, entries->entries[i].region, entries->entries[i].count);
    sw_desired_copy(d, &out);
    sw_desired_clear(&out);
}

/* The group's total pinned to count, spread in proportion to what is desired now (largest
 * remainder, ties to the first region in order), or evenly when nothing is. */
static void pin_group_total(struct sw_runtime *rt, const struct sw_group_config *g, int count)
{
    struct sw_desired current;
    sw_desired_init(&current);
    group_entries(&rt->desired, g->name, &current);
    if (current.count == 0)
        for (size_t i = 0; i < g->region_count; i++)
            sw_desired_set(&current, g->name, g->regions[i], 0);
    size_t n = current.count;
    if (n == 0) {
        sw_desired_clear(&current);
        return;
    }
    long total = 0;
    for (size_t i = 0; i < n; i++)
        total += current.entries[i].count > 0 ? current.entries[i].count : 0;
    int *share = sw_xcalloc(n, sizeof(int));
    double *frac = sw_xcalloc(n, sizeof(double));
    int given = 0;
    for (size_t i = 0; i < n; i++) {
        int w = current.entries[i].count > 0 ? current.entries[i].count : 0;
        double exact = total > 0 ? (double)count * w / (double)total : (double)count / (double)n;
        share[i] = (int)exact;
        frac[i] = exact - share[i];
        given += share[i];
    }
    while (given < count) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (frac[i] > frac[best])
                best = i;
        share[best]++;
        frac[best] = -1;
        given++;
    }
    for (size_t i = 0; i < n; i++)
        sw_desired_set(&rt->desired, g->name, current.entries[i].region, share[i]);
    free(share);
    free(frac);
    sw_desired_clear(&current);
}

static void apply_overrides(struct sw_runtime *rt, const struct sw_desired *named)
{
    /* Bases first: with two overrides on one group the second must not see the first's
     * pin as what the policy wants. */
    for (size_t i = 0; i < rt->override_count; i++) {
        struct admin_override *ov = &rt->overrides[i];
        if (desired_names_group(named, ov->pub.group))
            group_entries(&rt->desired, ov->pub.group, &ov->base);
    }
    for (size_t i = 0; i < rt->override_count; i++) {
        const struct sw_runtime_override *ov = &rt->overrides[i].pub;
        if (ov->region != NULL)
            sw_desired_set(&rt->desired, ov->group, ov->region, ov->count);
        else
            pin_group_total(rt, sw_config_group(rt->config, ov->group), ov->count);
    }
}

/* One planning pass without a policy: overrides changed. Journaled as policy "admin". */
static void admin_replan(struct sw_runtime *rt, const char *group, const char *why)
{
    if (!rt->running || !rt->recovered || rt->quiesced)
        return;
    uint64_t started = uv_hrtime();
    struct sw_desired none;
    sw_desired_init(&none);
    apply_overrides(rt, &none);
    drop_closed_units(rt);
    struct sw_guard_notes notes = {0};
    sw_guard_clamp(rt->guard, &rt->units, &rt->desired, &notes);
    for (size_t i = 0; i < notes.count; i++)
        sw_log(SW_LOG_INFO, LOG, "guard: %s", notes.items[i]);
    struct sw_actions actions, refused;
    sw_actions_init(&actions);
    sw_actions_init(&refused);
    sw_planner_plan(&rt->desired, &rt->units, &rt->offers, rt->config->groups,
                    rt->config->group_count, &actions);
    sw_guard_filter(rt->guard, now_ms(rt), &rt->units, &actions, &refused);
    log_refused(rt, &refused);

    char *desired_text = desired_record_json(&none, &rt->desired);
    char *actions_text = sw_actions_to_json(&actions);
    char *refused_text = sw_actions_to_json(&refused);
    cJSON *explain = cJSON_CreateArray();
    cJSON *note = cJSON_CreateObject();
    cJSON_AddStringToObject(note, "group", group);
    cJSON_AddStringToObject(note, "text", why);
    cJSON_AddItemToArray(explain, note);
    char *explain_text = cJSON_PrintUnformatted(explain);
    cJSON_Delete(explain);
    struct sw_evaluation ev = {
        .policy = "admin",
        .at_ms = now_ms(rt),
        .desired_json = desired_text,
        .actions_json = actions_text,
        .refused_json = refused_text,
        .explain_json = explain_text,
        .duration_ms = (double)(uv_hrtime() - started) / 1e6,
    };
    struct sw_error jerr;
    jerr.code = 0;
    jerr.msg[0] = '\0';
    if (sw_journal_eval_record(rt->journal, &ev, &jerr) < 0)
        sw_log(SW_LOG_ERROR, LOG, "journal: cannot record the override pass: %s", jerr.msg);
    free(desired_text);
    free(actions_text);
    free(refused_text);
    cJSON_free(explain_text);
    execute_actions(rt, &actions);
    sw_journal_flush(rt->journal, &jerr);
    sw_actions_clear(&actions);
    sw_actions_clear(&refused);
    sw_guard_notes_clear(&notes);
    sw_desired_clear(&none);
}

static void override_remove_at(struct sw_runtime *rt, size_t i)
{
    struct admin_override *ov = &rt->overrides[i];
    free((char *)ov->pub.group);
    free((char *)ov->pub.region);
    sw_desired_clear(&ov->base);
    memmove(&rt->overrides[i], &rt->overrides[i + 1],
            (rt->override_count - i - 1) * sizeof(*ov));
    rt->override_count--;
}

static cJSON *override_event_data(const struct sw_runtime_override *ov)
{
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "group", ov->group);
    if (ov->region != NULL)
        cJSON_AddStringToObject(data, "region", ov->region);
    cJSON_AddNumberToObject(data, "count", ov->count);
    cJSON_AddNumberToObject(data, "until_ms", (double)ov->until_ms);
    return data;
}

static void override_timer_fired(void *ud);

static void override_schedule(struct sw_runtime *rt)
{
    if (rt->override_timer != 0)
        sw_clock_timer_stop(rt->clock, rt->override_timer);
    rt->override_timer = 0;
    if (rt->override_count == 0 || rt->stopping)
        return;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < rt->override_count; i++)
        if (rt->overrides[i].pub.until_ms < next)
            next = rt->overrides[i].pub.until_ms;
    int64_t delay = next - now_ms(rt);
    rt->override_timer = sw_clock_timer_start(rt->clock, delay > 0 ? (uint64_t)delay : 0,
                                              override_timer_fired, rt);
}

/* Ends the overrides of group for which ends(ov) holds; the group's wanted entries come
 * back. Returns how many ended. */
static size_t override_end(struct sw_runtime *rt, const char *group, int64_t expired_by,
                           const char *event_type)
{
    size_t ended = 0;
    for (size_t i = 0; i < rt->override_count;) {
        struct admin_override *ov = &rt->overrides[i];
        bool match = group != NULL ? strcmp(ov->pub.group, group) == 0
                                   : ov->pub.until_ms <= expired_by;
        if (!match) {
            i++;
            continue;
        }
        replace_group(&rt->desired, ov->pub.group, &ov->base);
        sw_log(SW_LOG_INFO, LOG, "override of %s%s%s (%d) %s", ov->pub.group,
               ov->pub.region ? "/" : "", ov->pub.region ? ov->pub.region : "", ov->pub.count,
               group != NULL ? "cleared" : "expired");
        record_event(rt, event_type, override_event_data(&ov->pub));
        override_remove_at(rt, i);
        ended++;
    }
    return ended;
}

static void override_timer_fired(void *ud)
{
    struct sw_runtime *rt = ud;
    rt->override_timer = 0;
    if (override_end(rt, NULL, now_ms(rt), "override_expired") > 0)
        admin_replan(rt, "*", "override expired: back to the policies' desired state");
    override_schedule(rt);
}

int sw_runtime_override_set(struct sw_runtime *rt, const char *group, const char *region,
                            int count, int64_t duration_ms, struct sw_error *err)
{
    const struct sw_group_config *g = sw_config_group(rt->config, group);
    if (g == NULL)
        return sw_error_set(err, SW_ENOENT, "no group named '%s'", group ? group : "");
    if (count < 0 || count > g->max)
        return sw_error_set(err, SW_EINVAL, "count %d is outside group %s's limits [0, %d]",
                            count, group, g->max);
    if (duration_ms <= 0)
        return sw_error_set(err, SW_EINVAL, "the override needs a duration > 0");
    if (region != NULL && g->region_count > 0) {
        bool allowed = false;
        for (size_t i = 0; i < g->region_count && !allowed; i++)
            allowed = strcmp(g->regions[i], region) == 0;
        if (!allowed)
            return sw_error_set(err, SW_EINVAL, "group %s may not use region '%s'", group,
                                region);
    }
    struct sw_desired base;
    sw_desired_init(&base);
    bool inherited = false;
    for (size_t i = 0; i < rt->override_count && !inherited; i++) {
        if (strcmp(rt->overrides[i].pub.group, group) == 0) {
            sw_desired_copy(&base, &rt->overrides[i].base);
            inherited = true;
        }
    }
    if (!inherited)
        group_entries(&rt->desired, group, &base);
    if (region == NULL && base.count == 0 && g->region_count == 0) {
        sw_desired_clear(&base);
        return sw_error_set(err, SW_EINVAL, "group %s has no region to spread a total over "
                            "(no desired state yet and no regions listed): name a region",
                            group);
    }
    /* Replace: group-wide replaces all; regional replaces group-wide and the same region. */
    for (size_t i = 0; i < rt->override_count;) {
        const struct sw_runtime_override *ov = &rt->overrides[i].pub;
        if (strcmp(ov->group, group) == 0 &&
            (region == NULL || ov->region == NULL || strcmp(ov->region, region) == 0))
            override_remove_at(rt, i);
        else
            i++;
    }
    rt->overrides = sw_xrealloc(rt->overrides, (rt->override_count + 1) * sizeof(*rt->overrides));
    struct admin_override *ov = &rt->overrides[rt->override_count++];
    memset(ov, 0, sizeof(*ov));
    ov->pub.group = sw_xstrdup(group);
    ov->pub.region = sw_xstrdup(region);
    ov->pub.count = count;
    ov->pub.set_ms = now_ms(rt);
    ov->pub.until_ms = ov->pub.set_ms + duration_ms;
    ov->base = base; /* moved */
    /* A regional override on top of group-wide ones changed the group: start from what
     * the policies want. */
    replace_group(&rt->desired, group, &ov->base);
    sw_log(SW_LOG_INFO, LOG, "override: %s%s%s pinned to %d for %.0fs", group,
           region ? "/" : "", region ? region : "", count, (double)duration_ms / 1000.0);
    record_event(rt, "override_set", override_event_data(&ov->pub));
    char *why = sw_xasprintf("override: %s%s%s pinned to %d", group, region ? "/" : "",
                             region ? region : "", count);
    admin_replan(rt, group, why);
    free(why);
    override_schedule(rt);
    return 0;
}

int sw_runtime_override_clear(struct sw_runtime *rt, const char *group)
{
    if (group == NULL || override_end(rt, group, 0, "override_cleared") == 0)
        return SW_ENOENT;
    admin_replan(rt, group, "override cleared: back to the policies' desired state");
    override_schedule(rt);
    return 0;
}

size_t sw_runtime_override_count(const struct sw_runtime *rt)
{
    return rt->override_count;
}

const struct sw_runtime_override *sw_runtime_override_at(const struct sw_runtime *rt, size_t i)
{
    return i < rt->override_count ? &rt->overrides[i].pub : NULL;
}

/* ---- plugin HTTP ---- */

static size_t http_stats_index(struct sw_runtime *rt, const char *plugin)
{
    for (size_t i = 0; i < rt->http_stat_count; i++)
        if (strcmp(rt->http_stats[i].plugin, plugin) == 0)
            return i;
    rt->http_stats =
        sw_xrealloc(rt->http_stats, (rt->http_stat_count + 1) * sizeof(*rt->http_stats));
    struct sw_runtime_http_stats *st = &rt->http_stats[rt->http_stat_count];
    memset(st, 0, sizeof(*st));
    st->plugin = sw_xstrdup(plugin);
    return rt->http_stat_count++;
}

static void http_stats_note(struct sw_runtime *rt, size_t index, int status, uint64_t started_ns)
{
    if (status == SW_ECANCELED || index >= rt->http_stat_count)
        return;
    struct sw_runtime_http_stats *st = &rt->http_stats[index];
    if (status < 0) {
        st->errors++;
        return;
    }
    st->ok++;
    hist_observe(&st->duration, (double)(uv_hrtime() - started_ns) / 1e9);
}

size_t sw_runtime_http_stats_count(const struct sw_runtime *rt)
{
    return rt->http_stat_count;
}

const struct sw_runtime_http_stats *sw_runtime_http_stats_at(const struct sw_runtime *rt,
                                                             size_t i)
{
    return i < rt->http_stat_count ? &rt->http_stats[i] : NULL;
}

const struct sw_config *sw_runtime_config(const struct sw_runtime *rt)
{
    return rt->config;
}

void sw_runtime_quiesce(struct sw_runtime *rt)
{
    if (rt == NULL || !rt->running)
        return;
    for (size_t i = 0; i < rt->policy_count; i++)
        stop_timer(rt, &rt->policies[i].timer);
    for (size_t i = 0; i < rt->metric_count; i++)
        stop_timer(rt, &rt->metrics_slots[i].timer);
    stop_timer(rt, &rt->offers_timer);
    stop_timer(rt, &rt->watch_timer);
    stop_timer(rt, &rt->override_timer);
    rt->quiesced = true; /* a recovery still listing must not start the schedules */
    struct sw_error err = {0};
    sw_journal_flush(rt->journal, &err);
}

static void admin_free(struct sw_runtime *rt)
{
    if (rt->override_timer != 0)
        sw_clock_timer_stop(rt->clock, rt->override_timer);
    rt->override_timer = 0;
    while (rt->override_count > 0)
        override_remove_at(rt, rt->override_count - 1);
    free(rt->overrides);
    rt->overrides = NULL;
    for (size_t i = 0; i < rt->http_stat_count; i++)
        free((char *)rt->http_stats[i].plugin);
    free(rt->http_stats);
    rt->http_stats = NULL;
    rt->http_stat_count = 0;
    for (size_t i = 0; i < rt->policy_count; i++) {
        free(rt->policies[i].last_error);
        rt->policies[i].last_error = NULL;
    }
}

/* ---- dns -------------------------------------------------------------------------------- */

struct sw_dns_sync *sw_runtime_dns(struct sw_runtime *rt)
{
    return rt->dns;
}

/* ---- probes (geo) -----------------------------------------------------------------------
 *
 * Every probes.every, one round: each READY unit's endpoints (its uris, https://<uri><path>
 * unless a uri has a scheme; or probes.target_template expanded for the unit) and the
 * configured probes.targets go to the probe plugin at once. When the whole round has
 * answered, its results become ctx.probes and each probed unit's health is updated: a unit
 * with a failed endpoint in a round counts one failure, guard.unhealthy_after failures in a
 * row make it unhealthy (the planner replaces unhealthy units), and a round where all its
 * endpoints answered resets the count and makes it healthy again. A round still running
 * when the next is due delays the next (a slow target never stacks rounds). A probe the
 * plugin refuses to start (no HTTP in a simulation) leaves the unit's health as it was. */

struct probe_entry {
    struct probe_round *round;
    char *target;
    char *unit_key;  /* NULL for configured targets */
    char *group;
    char *region;
    bool started;    /* the plugin accepted it */
    bool answered;   /* a result arrived (not canceled) */
    bool ok;
    long http_status;
    double connect_ms, tls_ms, first_byte_ms, total_ms;
    char *error;
};

struct probe_round {
    struct sw_runtime *rt;
    struct probe_entry *entries;
    size_t count;
    size_t cap;
    size_t pending;  /* entries not completed, plus one while the round is being started */
};

static void probe_round_add(struct probe_round *round, char *target, const struct sw_unit *u)
{
    if (round->count == round->cap) {
        round->cap = round->cap ? round->cap * 2 : 16;
        round->entries = sw_xrealloc(round->entries, round->cap * sizeof(*round->entries));
    }
    round->entries[round->count++] = (struct probe_entry){
        .round = round,
        .target = target,
        .unit_key = u != NULL ? sw_xstrdup(u->key) : NULL,
        .group = u != NULL ? sw_xstrdup(u->group) : NULL,
        .region = u != NULL ? sw_xstrdup(u->region) : NULL,
    };
}

static void probe_round_free(struct probe_round *round)
{
    for (size_t i = 0; i < round->count; i++) {
        free(round->entries[i].target);
        free(round->entries[i].unit_key);
        free(round->entries[i].group);
        free(round->entries[i].region);
        free(round->entries[i].error);
    }
    free(round->entries);
    free(round);
}

static void probe_results_clear(struct sw_runtime *rt)
{
    for (size_t i = 0; i < rt->probe_result_count; i++) {
        struct sw_probe_status *p = &rt->probe_results[i];
        free(p->target);
        free(p->unit);
        free(p->group);
        free(p->region);
        free(p->error);
    }
    free(rt->probe_results);
    rt->probe_results = NULL;
    rt->probe_result_count = 0;
}

/* probes.target_template for one unit: {market_id} {key} {group} {region} {provider} {uri}
 * (its first uri) are replaced; other text is kept as is. */
static char *expand_template(const char *template, const struct sw_unit *u)
{
    const struct {
        const char *name;
        const char *value;
    } vars[] = {
        {"{market_id}", u->market_id}, {"{key}", u->key},           {"{group}", u->group},
        {"{region}", u->region},       {"{provider}", u->provider},
        {"{uri}", u->uri_count > 0 ? u->uris[0] : NULL},
    };
    size_t cap = strlen(template) + 1, len = 0;
    for (size_t v = 0; v < SW_ARRAY_LEN(vars); v++)
        for (const char *p = strstr(template, vars[v].name); p != NULL;
             p = strstr(p + 1, vars[v].name))
            cap += vars[v].value != NULL ? strlen(vars[v].value) : 0;
    char *out = sw_xmalloc(cap);
    for (const char *p = template; *p != '\0';) {
        bool replaced = false;
        for (size_t v = 0; v < SW_ARRAY_LEN(vars) && *p == '{'; v++) {
            size_t name_len = strlen(vars[v].name);
            if (strncmp(p, vars[v].name, name_len) != 0)
                continue;
            const char *value = vars[v].value != NULL ? vars[v].value : "";
            memcpy(out + len, value, strlen(value));
            len += strlen(value);
            p += name_len;
            replaced = true;
            break;
        }
        if (!replaced)
            out[len++] = *p++;
    }
    out[len] = '\0';
    return out;
}

/* A unit's endpoints, added to the round. */
static void probe_round_add_unit(struct probe_round *round, const struct sw_probes_config *pc,
                                 const struct sw_unit *u)
{
    if (pc->target_template != NULL) {
        probe_round_add(round, expand_template(pc->target_template, u), u);
        return;
    }
    for (size_t i = 0; i < u->uri_count; i++) {
        const char *uri = u->uris[i];
        if (uri == NULL || uri[0] == '\0')
            continue;
        if (strstr(uri, "://") != NULL)
            probe_round_add(round, sw_xstrdup(uri), u);
        else
            probe_round_add(round, sw_xasprintf("https://%s%s", uri, pc->path ? pc->path : "/"),
                            u);
    }
}

/* The whole round answered: publish ctx.probes and update each unit's health. */
static void probe_round_apply(struct sw_runtime *rt, struct probe_round *round)
{
    probe_results_clear(rt);
    rt->probe_results = sw_xcalloc(round->count ? round->count : 1, sizeof(*rt->probe_results));
    for (size_t i = 0; i < round->count; i++) {
        struct probe_entry *e = &round->entries[i];
        if (!e->answered)
            continue;
        rt->probe_results[rt->probe_result_count++] = (struct sw_probe_status){
            .target = sw_xstrdup(e->target),
            .unit = sw_xstrdup(e->unit_key),
            .group = sw_xstrdup(e->group),
            .region = sw_xstrdup(e->region),
            .ok = e->ok,
            .http_status = e->http_status,
            .connect_ms = e->connect_ms,
            .tls_ms = e->tls_ms,
            .first_byte_ms = e->first_byte_ms,
            .total_ms = e->total_ms,
            .error = sw_xstrdup(e->error),
        };
    }
    int threshold = rt->config->guard.unhealthy_after > 0 ? rt->config->guard.unhealthy_after : 3;
    for (size_t i = 0; i < round->count; i++) {
        struct probe_entry *e = &round->entries[i];
        if (e->unit_key == NULL || !e->answered)
            continue;
        /* The first answered entry of each unit decides for all of its endpoints. */
        bool first = true;
        for (size_t j = 0; j < i && first; j++)
            first = !(round->entries[j].answered && round->entries[j].unit_key != NULL &&
                      strcmp(round->entries[j].unit_key, e->unit_key) == 0);
        if (!first)
            continue;
        const struct probe_entry *failed = NULL;
        for (size_t j = i; j < round->count && failed == NULL; j++)
            if (round->entries[j].answered && !round->entries[j].ok &&
                round->entries[j].unit_key != NULL &&
                strcmp(round->entries[j].unit_key, e->unit_key) == 0)
                failed = &round->entries[j];
        struct sw_unit *u = sw_units_find_key(&rt->units, e->unit_key);
        if (u == NULL || u->state != SW_UNIT_READY)
            continue; /* released or lost while the round ran */
        if (failed == NULL) {
            if (u->probe_failures > 0 || u->unhealthy) {
                sw_log(SW_LOG_INFO, LOG, "unit %s %s/%s answers probes again%s", u->key,
                       u->group, u->region, u->unhealthy ? ": healthy" : "");
                u->probe_failures = 0;
                u->unhealthy = false;
                save_unit(rt, u);
            }
            continue;
        }
        u->probe_failures++;
        sw_log(SW_LOG_WARN, LOG, "unit %s %s/%s: probe of %s failed (%s), %d in a row", u->key,
               u->group, u->region, failed->target, failed->error ? failed->error : "?",
               u->probe_failures);
        if (!u->unhealthy && u->probe_failures >= threshold) {
            u->unhealthy = true;
            sw_log(SW_LOG_WARN, LOG, "unit %s %s/%s is unhealthy after %d failed probes; it "
                   "will be replaced", u->key, u->group, u->region, u->probe_failures);
            cJSON *data = unit_event_data(u);
            cJSON_AddNumberToObject(data, "probe_failures", u->probe_failures);
            cJSON_AddStringToObject(data, "target", failed->target);
            cJSON_AddStringToObject(data, "error", failed->error ? failed->error : "");
            record_event(rt, "unit_unhealthy", data);
        }
        save_unit(rt, u);
    }
}

static void probe_round_release(struct probe_round *round)
{
    struct sw_runtime *rt = round->rt;
    if (--round->pending > 0)
        return;
    if (rt->probe_round == round)
        rt->probe_round = NULL;
    if (rt->running && !rt->stopping)
        probe_round_apply(rt, round);
    probe_round_free(round);
}

static void probe_done(void *ud, int status, const struct swp_probe_result *result)
{
    struct probe_entry *e = ud;
    if (status == 0 && result != NULL) {
        e->answered = true;
        e->ok = result->ok;
        e->http_status = result->http_status;
        e->connect_ms = result->connect_ms;
        e->tls_ms = result->tls_ms;
        e->first_byte_ms = result->first_byte_ms;
        e->total_ms = result->total_ms;
        e->error = result->ok ? NULL : sw_xstrdup(result->error ? result->error : "failed");
    }
    probe_round_release(e->round);
}

static void probe_tick(void *ud)
{
    struct sw_runtime *rt = ud;
    rt->probe_timer = 0;
    if (!rt->running)
        return;
    const struct sw_probes_config *pc = &rt->config->probes;
    const struct swp_probe_ops *ops = sw_plugin_probe(rt->probe_plugin);
    if (rt->probe_round != NULL) {
        sw_log(SW_LOG_DEBUG, LOG, "probes: the previous round is still running");
    } else if (ops != NULL && ops->probe != NULL) {
        struct probe_round *round = sw_xcalloc(1, sizeof(*round));
        round->rt = rt;
        for (size_t i = 0; i < rt->units.count; i++)
            if (rt->units.items[i]->state == SW_UNIT_READY)
                probe_round_add_unit(round, pc, rt->units.items[i]);
        for (size_t i = 0; i < pc->target_count; i++)
            probe_round_add(round, sw_xstrdup(pc->targets[i]), NULL);
        /* The extra count keeps the round alive while it starts: the plugin may answer
         * inside the call. */
        round->pending = round->count + 1;
        rt->probe_round = round;
        size_t refused = 0;
        for (size_t i = 0; i < round->count; i++) {
            struct probe_entry *e = &round->entries[i];
            int rc = ops->probe(sw_plugin_state(rt->probe_plugin), e->target, probe_done, e);
            if (rc < 0) {
                refused++;
                round->pending--;
            } else {
                e->started = true;
            }
        }
        if (refused > 0)
            sw_log(SW_LOG_WARN, LOG, "probes: plugin '%s' refused %zu of %zu targets (%s)",
                   rt->config->probes.plugin, refused, round->count,
                   round->count ? round->entries[0].target : "");
        probe_round_release(round);
    }
    rt->probe_timer = sw_clock_timer_start(rt->clock, (uint64_t)pc->every_ms, probe_tick, rt);
}

static int probes_load(struct sw_runtime *rt, struct sw_error *err)
{
    const struct sw_probes_config *pc = &rt->config->probes;
    if (pc->plugin == NULL)
        return 0;
    rt->probe_plugin = load_plugin(rt, pc->plugin, err);
    if (rt->probe_plugin == NULL)
        return err->code ? err->code : SW_ECONFIG;
    if (sw_plugin_probe(rt->probe_plugin) == NULL)
        return sw_error_set(err, SW_ECONFIG, "%s:probes.plugin: '%s' is not a probe plugin",
                            rt->config->path, pc->plugin);
    return 0;
}

static void probes_schedule(struct sw_runtime *rt)
{
    if (rt->probe_plugin == NULL || rt->probe_timer != 0)
        return;
    /* The first round waits one period: units just recovered get a moment to settle. */
    rt->probe_timer = sw_clock_timer_start(rt->clock, (uint64_t)rt->config->probes.every_ms,
                                           probe_tick, rt);
}

/* After the plugins were destroyed (a round in flight was canceled and freed then). */
static void probes_free(struct sw_runtime *rt)
{
    if (rt->probe_round != NULL) {
        /* Only when the plugin broke the exactly-once contract; it is gone now, so nothing
         * can complete these entries any more. */
        probe_round_free(rt->probe_round);
        rt->probe_round = NULL;
    }
    probe_results_clear(rt);
}

/* ---- resilience: spread, provider track record, mass loss --------------------------------
 * spread.c says where a group's units may go and track_record.c what each provider has
 * done; this block feeds them from the unit lifecycle and hands their answers to the market
 * plugin (avoid_providers), the plan (rebalancing) and policies (ctx.providers). A loss
 * orders its replacement at once: the policies owning the group are evaluated on the next
 * turn instead of at their next interval, and the guard treats the replacements as repairs
 * (no scale-up cooldown, ahead of other actions; the budget and other limits still hold). */

static int resil_init(struct sw_runtime *rt, struct sw_error *err)
{
    rt->track = sw_track_record_new(rt->journal, &rt->config->guard.provider_backoff, err);
    return rt->track != NULL ? 0 : (err->code ? err->code : SW_ESTORE);
}

static void resil_stop(struct sw_runtime *rt)
{
    stop_timer(rt, &rt->repair_timer);
}

static void resil_free(struct sw_runtime *rt)
{
    stop_timer(rt, &rt->repair_timer);
    sw_track_record_free(rt->track);
    sw_names_clear(&rt->avoid);
    sw_names_clear(&rt->lost_groups);
}

static void resil_unit_ready(struct sw_runtime *rt, const struct sw_unit *u)
{
    if (rt->track != NULL)
        sw_track_record_ready(rt->track, u, now_ms(rt));
}

static bool slot_owns_lost_group(const struct sw_runtime *rt, const struct policy_slot *slot)
{
    const struct sw_desired *last = sw_policy_last_good(slot->policy);
    for (size_t i = 0; last != NULL && i < last->count; i++)
        if (sw_names_has(&rt->lost_groups, last->entries[i].group))
            return true;
    return false;
}

/* Every evaluation plans all groups, so one is enough for groups no policy names. */
static void repair_tick(void *ud)
{
    struct sw_runtime *rt = ud;
    rt->repair_timer = 0;
    if (!rt->running)
        return;
    bool *chosen = sw_xcalloc(rt->policy_count ? rt->policy_count : 1, sizeof(bool));
    size_t chosen_count = 0;
    for (size_t i = 0; i < rt->policy_count; i++) {
        chosen[i] = !rt->policies[i].paused && slot_owns_lost_group(rt, &rt->policies[i]);
        chosen_count += chosen[i];
    }
    for (size_t i = 0; chosen_count == 0 && i < rt->policy_count; i++) {
        if (!rt->policies[i].paused) {
            chosen[i] = true;
            chosen_count = 1;
        }
    }
    sw_log(SW_LOG_WARN, LOG, "%d unit%s lost at once; evaluating %zu polic%s now to replace "
           "them", rt->lost_count, rt->lost_count == 1 ? "" : "s", chosen_count,
           chosen_count == 1 ? "y" : "ies");
    sw_names_clear(&rt->lost_groups);
    rt->lost_count = 0;
    for (size_t i = 0; i < rt->policy_count && rt->running; i++) {
        if (!chosen[i])
            continue;
        stop_timer(rt, &rt->policies[i].timer);
        policy_tick(&rt->policies[i]); /* evaluates, then schedules the next regular tick */
    }
    free(chosen);
}

static void resil_unit_closed(struct sw_runtime *rt, const struct sw_unit *u, int how)
{
    if (rt->track != NULL)
        sw_track_record_closed(rt->track, u, how, &rt->units, now_ms(rt));
    /* A failed acquire is a loss only once a provider had won it: before that, nothing the
     * group counted on went away. */
    if (how == SW_TRACK_RELEASED || (how == SW_TRACK_FAILED && u->provider == NULL))
        return;
    sw_guard_note_lost(rt->guard, u->group, 1);
    sw_names_add(&rt->lost_groups, u->group);
    rt->lost_count++;
    /* One timer per burst: every loss of this drain (or list) is planned in one batch. */
    if (rt->running && rt->recovered && rt->repair_timer == 0)
        rt->repair_timer = sw_clock_timer_start(rt->clock, 0, repair_tick, rt);
}

static void resil_fill_avoid(struct sw_runtime *rt, const struct sw_unit *u,
                             struct swp_acquire_req *req)
{
    const struct sw_group_config *g = sw_config_group(rt->config, u->group);
    struct sw_names backed_off = {0};
    if (rt->track != NULL)
        sw_track_record_backed_off_list(rt->track, now_ms(rt), &backed_off);
    sw_names_clear(&rt->avoid);
    if (g != NULL) {
        /* The group's size once this batch is done; a group nobody sized keeps its own. */
        int total = sw_desired_group_total(&rt->desired, g->name);
        if (total <= 0)
            total = sw_units_count_capacity(&rt->units, g->name, NULL);
        struct sw_spread_input in = {
            .group = g,
            .units = &rt->units,
            .offers = &rt->offers,
            .target_total = total,
            .backed_off = &backed_off,
        };
        int relaxed = sw_spread_avoid(&in, u, &rt->avoid);
        if (relaxed != SW_SPREAD_KEPT)
            sw_log(SW_LOG_WARN, LOG, "unit %s %s/%s: every provider offering there is %s; "
                   "placing it anyway", u->key, u->group, u->region,
                   relaxed == SW_SPREAD_SPREAD_DROPPED
                       ? "at its spread limit (spread relaxed for this unit)"
                       : "at its spread limit or backed off (nothing avoided)");
    }
    sw_names_clear(&backed_off);
    /* ml: a pinned group (groups.X.providers, e.g. an ML job master's provider) can only
     * land on its pinned providers. When the track record or the spread avoids all of
     * them, avoiding would fail every acquire, and a worker that provider lost could never
     * be replaced: nothing is avoided then. */
    if (g != NULL && g->provider_count > 0 && rt->avoid.count > 0) {
        bool pinned_left = false;
        for (size_t i = 0; i < g->provider_count && !pinned_left; i++)
            pinned_left = !sw_names_has(&rt->avoid, g->providers[i]);
        if (!pinned_left) {
            sw_log(SW_LOG_INFO, LOG, "unit %s %s/%s: every pinned provider is avoided; "
                   "placing it on them anyway", u->key, u->group, u->region);
            sw_names_clear(&rt->avoid);
        }
    }
    if (rt->avoid.count > 0) {
        req->avoid_providers = (const char *const *)rt->avoid.items;
        req->avoid_count = rt->avoid.count;
    }
}

static void resil_plan(struct sw_runtime *rt, struct sw_actions *actions)
{
    struct sw_names backed_off = {0};
    if (rt->track != NULL)
        sw_track_record_backed_off_list(rt->track, now_ms(rt), &backed_off);
    sw_spread_rebalance(&rt->desired, &rt->units, &rt->offers, rt->config->groups,
                        rt->config->group_count, &backed_off, actions);
    sw_names_clear(&backed_off);
}

/* built when the policy reads ctx.providers, not on every tick. */
static const struct sw_provider_record *resil_providers(void *ud, size_t *count)
{
    struct sw_runtime *rt = ud;
    return sw_track_record_view(rt->track, &rt->units, now_ms(rt), count);
}

static void resil_fill_input(struct sw_runtime *rt, struct sw_policy_input *in)
{
    if (rt->track != NULL) {
        in->providers_fn = resil_providers;
        in->providers_ud = rt;
    }
}

/* ---- ha: leader election, fencing and the replicated owned-units set (ha.c) ---------------
 * With an "ha" section the runtime starts as a follower: no recovery, no schedules, no
 * marketplace or DNS writes. Once elected it loads the units every leader recorded in etcd,
 * merges them into its journal (unknown units become owned units; unfinished acquires and
 * releases become pending intents under the same idempotency keys) and only then runs the
 * usual recovery, which resumes or abandons them against the marketplace's list. Every
 * acquire and release waits for a fenced txn recording the unit before it reaches the
 * market plugin; a refused fence means another replica leads: nothing is sent, and the
 * runtime stops (on_fatal) so a supervisor restarts it as a follower. */

struct ha_fence {
    struct sw_runtime *rt;
    int kind;             /* SW_ACTION_ACQUIRE / SW_ACTION_RELEASE */
    char *unit_key;
    char *intent_key;
    int64_t already_spent_ms;
};

static void ha_fence_done(void *ud, int status)
{
    struct ha_fence *f = ud;
    struct sw_runtime *rt = f->rt;
    struct sw_unit *u = sw_units_find_key(&rt->units, f->unit_key);
    if (status == SW_ECANCELED) {
        /* Shutting down: the intent stays pending; the next leader's recovery resolves it. */
    } else if (status == 0 && rt->running && u != NULL && u->state != SW_UNIT_CLOSED) {
        sw_log(SW_LOG_DEBUG, LOG, "ha: fence passed: sending %s of unit %s",
               sw_action_kind_name(f->kind), f->unit_key);
        if (f->kind == SW_ACTION_ACQUIRE)
            send_acquire(rt, u, f->intent_key, f->already_spent_ms);
        else
            send_release(rt, u, f->intent_key);
    } else {
        rt->ha_refused++;
        const char *why = status == SW_EAGAIN ? "this replica is not the leader any more"
                          : status == 0       ? "the runtime stopped or the unit closed"
                                              : sw_strerror(status);
        sw_log(SW_LOG_WARN, LOG, "ha: fence refused %s of unit %s: %s; nothing sent to the "
               "marketplace", sw_action_kind_name(f->kind), f->unit_key, why);
        finish_intent(rt, f->intent_key, SW_INTENT_FAILED, "ha: refused by the fence");
        if (u != NULL && f->kind == SW_ACTION_ACQUIRE && u->state != SW_UNIT_CLOSED) {
            rt->stats.acquires_failed++;
            u->state = SW_UNIT_CLOSED;
            u->closed_ms = now_ms(rt);
            free(u->close_reason);
            u->close_reason = sw_xstrdup("ha: refused by the fence");
            save_unit(rt, u);
        } else if (u != NULL && u->state == SW_UNIT_RELEASING) {
            rt->stats.releases_failed++;
            u->state = u->ready_ms > 0 ? SW_UNIT_READY : SW_UNIT_LEASED;
            save_unit(rt, u);
        }
    }
    free(f->unit_key);
    free(f->intent_key);
    free(f);
}

static void fenced_send(struct sw_runtime *rt, int kind, struct sw_unit *u,
                        const char *intent_key, int64_t already_spent_ms)
{
    struct ha_fence *f = sw_xcalloc(1, sizeof(*f));
    f->rt = rt;
    f->kind = kind;
    f->unit_key = sw_xstrdup(u->key);
    f->intent_key = sw_xstrdup(intent_key);
    f->already_spent_ms = already_spent_ms;
    /* The unit's record (state ORDERED or RELEASING: the intent) is what the fence writes. */
    int rc = sw_ha_unit_put(rt->ha, u, rt->unit_seq, ha_fence_done, f);
    if (rc < 0)
        ha_fence_done(f, rc);
}

static void fenced_send_acquire(struct sw_runtime *rt, struct sw_unit *u, const char *intent_key,
                                int64_t already_spent_ms)
{
    if (rt->ha == NULL)
        send_acquire(rt, u, intent_key, already_spent_ms);
    else
        fenced_send(rt, SW_ACTION_ACQUIRE, u, intent_key, already_spent_ms);
}

static void fenced_send_release(struct sw_runtime *rt, struct sw_unit *u, const char *intent_key)
{
    if (rt->ha == NULL)
        send_release(rt, u, intent_key);
    else
        fenced_send(rt, SW_ACTION_RELEASE, u, intent_key, 0);
}

static void ha_record_unit(struct sw_runtime *rt, const struct sw_unit *u)
{
    if (rt->ha == NULL || rt->ha_merging || u->self || !sw_ha_is_leader(rt->ha))
        return;
    if (u->state == SW_UNIT_CLOSED)
        sw_ha_unit_delete(rt->ha, u->key, NULL, NULL);
    else
        sw_ha_unit_put(rt->ha, u, rt->unit_seq, NULL, NULL);
}

/* The sequence in a key "<id>-u<N>" (0 for any other key): a record's key bounds the
 * sequence even if the unit_seq write was lost. */
static uint64_t unit_key_seq(const struct sw_runtime *rt, const char *key)
{
    size_t id_len = strlen(rt->config->instance_id);
    if (strncmp(key, rt->config->instance_id, id_len) != 0 || strncmp(key + id_len, "-u", 2) != 0)
        return 0;
    char *end = NULL;
    unsigned long long seq = strtoull(key + id_len + 2, &end, 10);
    return end != NULL && *end == '\0' ? (uint64_t)seq : 0;
}

/* Make the journal agree with what the previous leaders recorded (see the block comment). */
static void ha_merge(struct sw_runtime *rt, const struct sw_units *records, uint64_t seq)
{
    size_t added = 0, resumed = 0;
    struct sw_error err = {0};
    rt->ha_merging = true;
    for (size_t i = 0; i < records->count; i++) {
        const struct sw_unit *r = records->items[i];
        struct sw_unit *u = sw_units_find_key(&rt->units, r->key);
        if (u != NULL && u->self)
            continue;
        if (u == NULL) {
            u = sw_unit_clone(r);
            sw_units_add(&rt->units, u);
            added++;
        } else {
            u->state = r->state;
            u->watch_applied = false; /* its report fields are written below */
            if (r->market_id != NULL && u->market_id == NULL)
                u->market_id = sw_xstrdup(r->market_id);
            if (r->provider != NULL) {
                free(u->provider);
                u->provider = sw_xstrdup(r->provider);
            }
            u->price_usd_hour = r->price_usd_hour;
            u->ready_ms = r->ready_ms;
            if (r->uri_count > 0)
                sw_unit_set_uris(u, (const char *const *)r->uris, r->uri_count);
        }
        if (sw_journal_unit_save(rt->journal, u, &err) < 0)
            sw_log(SW_LOG_ERROR, LOG, "ha: journal: cannot save unit %s: %s", u->key, err.msg);
        uint64_t key_seq = unit_key_seq(rt, r->key);
        if (key_seq > seq)
            seq = key_seq;
        int64_t id = 0;
        if (r->state == SW_UNIT_RELEASING) {
            char *key = sw_xasprintf("%s-release-takeover-%" PRId64, r->key, now_ms(rt));
            if (sw_journal_intent_begin(rt->journal, SW_ACTION_RELEASE, key, r->group, r->region,
                                        r->key, "ha: release taken over from the previous "
                                        "leader", now_ms(rt), &id, &err) == 0 &&
                r->market_id != NULL)
                sw_journal_intent_set_market_id(rt->journal, key, r->market_id, now_ms(rt), &err);
            free(key);
            resumed++;
        } else if (r->state != SW_UNIT_READY && r->ready_ms == 0) {
            /* An acquire in flight when the previous leader stopped: same key, so recovery
             * adopts what the marketplace created under it instead of buying again. */
            struct sw_intent existing = {0};
            if (sw_journal_intent_get(rt->journal, r->key, &existing, &err) == SW_ENOENT &&
                sw_journal_intent_begin(rt->journal, SW_ACTION_ACQUIRE, r->key, r->group,
                                        r->region, NULL, "ha: acquire taken over from the "
                                        "previous leader", r->ordered_ms > 0 ? r->ordered_ms
                                        : now_ms(rt), &id, &err) == 0 && r->market_id != NULL)
                sw_journal_intent_set_market_id(rt->journal, r->key, r->market_id, now_ms(rt),
                                                &err);
            sw_intent_clear(&existing);
            resumed++;
        }
    }
    rt->ha_merging = false;
    if (seq > rt->unit_seq) {
        rt->unit_seq = seq;
        char text[32];
        snprintf(text, sizeof(text), "%" PRIu64, seq);
        sw_journal_meta_set(rt->journal, "unit_seq", text);
    }
    sw_journal_flush(rt->journal, &err);
    sw_log(SW_LOG_INFO, LOG, "ha: took over %zu recorded units (%zu new to this journal, %zu "
           "unfinished actions to resume); unit sequence at %" PRIu64, records->count, added,
           resumed, rt->unit_seq);
}

static bool ha_kv_in(const struct sw_ha_kvs *plugin_kv, const char *entry)
{
    for (size_t i = 0; i < plugin_kv->count; i++)
        if (strcmp(plugin_kv->items[i].key, entry) == 0)
            return true;
    return false;
}

/* Entries of this replica's journal that etcd does not hold. Once any leader recorded
 * something, etcd is the plugins' key-value space: an entry only here was written by this
 * replica in an earlier term (or as a follower) and later deleted or never replicated by
 * the leaders since, e.g. a stale market_akash "pending" create that would make the plugin
 * adopt a deployment created in its window. Kept, it would describe deployments this
 * leader does not own; so it is removed. An etcd that holds nothing at all is a first
 * election (a single steward turned HA): then this journal is the only state there is,
 * and it seeds etcd instead. */
static void ha_reconcile_local_kv(struct sw_runtime *rt, const struct sw_ha_kvs *plugin_kv,
                                  bool etcd_empty)
{
    char **entries = NULL;
    size_t count = 0, changed = 0;
    if (sw_journal_kv_list(rt->journal, &entries, &count) < 0)
        return;
    for (size_t i = 0; i < count; i++) {
        char *slash = strchr(entries[i], '/');
        if (slash == NULL || ha_kv_in(plugin_kv, entries[i])) {
            free(entries[i]);
            continue;
        }
        *slash = '\0';
        if (!etcd_empty) {
            changed += sw_journal_kv_del(rt->journal, entries[i], slash + 1) == 0;
        } else {
            char *value = NULL;
            if (sw_journal_kv_get(rt->journal, entries[i], slash + 1, &value) == 0)
                changed += sw_ha_kv_put(rt->ha, entries[i], slash + 1, value) == 0;
            free(value);
        }
        free(entries[i]);
    }
    free(entries);
    if (etcd_empty) {
        for (size_t i = 0; i < rt->units.count; i++)
            if (rt->units.items[i]->state != SW_UNIT_CLOSED)
                ha_record_unit(rt, rt->units.items[i]);
    }
    if (changed > 0)
        sw_log(SW_LOG_INFO, LOG, "ha: %zu plugin entr%s of this journal %s", changed,
               changed == 1 ? "y" : "ies",
               etcd_empty ? "seeded etcd (first election)"
                          : "not in etcd removed (stale: written in an earlier term)");
}

/* The plugins were initialised from this replica's journal when it started; the market
 * plugin's view of what it owns (its key-value space) is the last leader's now, so they
 * start again from the merged journal. Nothing of theirs ran yet: a follower acts on nothing. */
static int ha_reload_plugins(struct sw_runtime *rt, const struct sw_ha_kvs *plugin_kv,
                             bool etcd_empty, struct sw_error *err)
{
    ha_reconcile_local_kv(rt, plugin_kv, etcd_empty);
    for (size_t i = 0; i < plugin_kv->count; i++) {
        const struct sw_ha_kv *kv = &plugin_kv->items[i];
        const char *slash = strchr(kv->key, '/');
        if (slash == NULL || slash == kv->key || slash[1] == '\0')
            continue;
        char *ns = sw_xstrndup(kv->key, (size_t)(slash - kv->key));
        if (sw_journal_kv_set(rt->journal, ns, slash + 1, kv->value) < 0)
            sw_log(SW_LOG_ERROR, LOG, "ha: journal: cannot store %s's entry %s", ns, slash + 1);
        free(ns);
    }
    sw_plugin_host_free(rt->plugins);
    sw_dns_sync_free(rt->dns); /* after the plugins, as in sw_runtime_free */
    rt->dns = NULL;
    free(rt->metrics_slots);
    rt->metrics_slots = NULL;
    rt->metric_count = 0;
    rt->market = NULL;
    rt->market_ops = NULL;
    rt->probe_plugin = NULL;
    rt->plugins = new_plugin_host(rt);
    int rc = load_plugins(rt, err);
    if (rc == 0 && rt->config->dns != NULL)
        rc = setup_dns(rt, err);
    return rc;
}

static void ha_units_loaded(void *ud, int status, const struct sw_units *units,
                            const struct sw_ha_kvs *plugin_kv, uint64_t seq)
{
    struct sw_runtime *rt = ud;
    if (status < 0 || !rt->running)
        return; /* lost again (on_lost already told) or shutting down */
    ha_merge(rt, units, seq);
    struct sw_error err = {0};
    bool etcd_empty = units->count == 0 && plugin_kv->count == 0 && seq == 0;
    if (ha_reload_plugins(rt, plugin_kv, etcd_empty, &err) < 0 || start_acting(rt, &err) < 0) {
        sw_log(SW_LOG_ERROR, LOG, "ha: %s", err.msg);
        if (rt->opts.on_fatal != NULL)
            rt->opts.on_fatal(rt->opts.fatal_ud, &err);
    }
}

static void ha_elected(void *ud)
{
    struct sw_runtime *rt = ud;
    if (rt->running)
        sw_ha_units_load(rt->ha, ha_units_loaded, rt);
}

static void ha_lost(void *ud, const char *why)
{
    struct sw_runtime *rt = ud;
    /* Stop deciding now; the process exits so it comes back clean as a follower (what
     * Kubernetes' controllers do on a lost lease) rather than half-restarting in place. */
    sw_runtime_quiesce(rt);
    struct sw_error err;
    sw_error_set(&err, SW_EAGAIN, "ha: lost the leadership: %s", why);
    if (rt->opts.on_fatal != NULL)
        rt->opts.on_fatal(rt->opts.fatal_ud, &err);
    else
        sw_runtime_stop(rt);
}

static int ha_setup(struct sw_runtime *rt, struct sw_error *err)
{
    if (rt->opts.loop == NULL) {
        sw_log(SW_LOG_INFO, LOG, "ha: election disabled (no network in this run)");
        return 0;
    }
    struct sw_ha_opts hopts = {
        .config = rt->config->ha,
        .clock = rt->clock,
        .loop = rt->opts.loop,
        .on_elected = ha_elected,
        .on_lost = ha_lost,
        .ud = rt,
    };
    rt->ha = sw_ha_new(&hopts, err);
    return rt->ha != NULL ? 0 : err->code;
}

/* ---- ha: the request gate ------------------------------------------------------------
 * A plugin's key-value write reaches etcd through the fenced write queue, asynchronously,
 * while its HTTP request would go out at once: killed in between, a leader would leave an
 * effect on the marketplace (a deployment created) whose bookkeeping (market_akash's
 * "pending create" entry) the next leader never reads, so a deployment nobody owns. While
 * writes of this replica are outstanding, a plugin's request (HTTP or net) is therefore
 * held, the plugin getting its id at once, until every write queued before it has been
 * acknowledged: entry acknowledged, then request sent. With nothing outstanding (the common
 * case: a follower, or a leader between actions) the request goes straight through. */

#define HA_HELD_ID_BIT (UINT64_C(1) << 63) /* held ids never meet the clients' own */

struct ha_held {
    struct ha_held *prev, *next;
    struct sw_runtime *rt;
    struct sw_plugin *plugin;
    uint64_t id;      /* the id the plugin got */
    uint64_t sent_id; /* the client's id once sent through, 0 before */
    bool waiting;     /* the barrier has not called back yet */
    bool finished;    /* the plugin's callback fired (cancelled while waiting) */
    bool is_net;
    swp_http_cb http_cb;
    swp_net_cb net_cb;
    void *cb_ud;
    void *complete_ud;
    /* Deep copy of the request, as the plugin's buffers are borrowed for its call only. */
    struct swp_http_req http;
    struct swp_net_req net;
    char **headers;
};

static void held_free(struct ha_held *h)
{
    if (h->prev != NULL)
        h->prev->next = h->next;
    else if (h->rt->ha_held == h)
        h->rt->ha_held = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    for (size_t i = 0; i < h->http.header_count; i++)
        free(h->headers[i]);
    free(h->headers);
    free((char *)h->http.method);
    free((char *)h->http.url);
    free((char *)h->http.body);
    free((char *)h->net.address);
    free((uint8_t *)h->net.data);
    free(h);
}

/* The plugin's callback, exactly once: a refusal or a cancellation before sending. */
static void held_fail(struct ha_held *h, int status)
{
    h->finished = true;
    if (h->is_net) {
        h->net_cb(h->cb_ud, status, NULL, 0);
    } else {
        struct swp_http_resp resp = {.status = 0, .body = "", .body_len = 0};
        h->http_cb(h->cb_ud, status, &resp);
    }
}

static void held_http_done(void *ud, int status, const struct swp_http_resp *resp)
{
    struct ha_held *h = ud;
    swp_http_cb cb = h->http_cb;
    void *cb_ud = h->cb_ud;
    held_free(h);
    cb(cb_ud, status, resp);
}

static void held_net_done(void *ud, int status, const uint8_t *reply, size_t len)
{
    struct ha_held *h = ud;
    swp_net_cb cb = h->net_cb;
    void *cb_ud = h->cb_ud;
    held_free(h);
    cb(cb_ud, status, reply, len);
}

static void held_release(void *ud, int status)
{
    struct ha_held *h = ud;
    struct sw_runtime *rt = h->rt;
    h->waiting = false;
    if (h->finished) { /* cancelled while it waited */
        held_free(h);
        return;
    }
    if (status != 0 || !rt->running) {
        sw_log(SW_LOG_WARN, LOG,
               "ha: a request of plugin '%s' was held for earlier etcd writes "
               "that were %s; not sent",
               sw_plugin_name(h->plugin),
               status == SW_ECANCELED || !rt->running ? "cancelled (stopping)" : "refused");
        held_fail(h, SW_ECANCELED);
        held_free(h);
        return;
    }
    /* Through the usual path (stats, the fence's clock check), minus the gate itself. */
    rt->ha_gate_passing = true;
    h->sent_id = h->is_net
                     ? svc_net_exchange(rt, h->plugin, &h->net, held_net_done, h, h->complete_ud)
                     : svc_http_request(rt, h->plugin, &h->http, held_http_done, h);
    rt->ha_gate_passing = false;
    if (h->sent_id == 0) {
        held_fail(h, SW_ECANCELED);
        held_free(h);
    }
}

/* Holds the request when writes are outstanding: returns the id handed to the plugin, or 0
 * when the request should go out now. */
static struct ha_held *held_new(struct sw_runtime *rt, struct sw_plugin *plugin, void *cb_ud)
{
    if (rt->ha == NULL || rt->ha_gate_passing || sw_ha_writes_outstanding(rt->ha) == 0)
        return NULL;
    struct ha_held *h = sw_xcalloc(1, sizeof(*h));
    h->rt = rt;
    h->plugin = plugin;
    h->cb_ud = cb_ud;
    return h;
}

static uint64_t held_start(struct sw_runtime *rt, struct ha_held *h)
{
    h->id = HA_HELD_ID_BIT | ++rt->ha_held_seq;
    h->waiting = true;
    h->next = rt->ha_held;
    if (rt->ha_held != NULL)
        rt->ha_held->prev = h;
    rt->ha_held = h;
    if (sw_ha_barrier(rt->ha, held_release, h) != 0) {
        /* Not reachable with writes outstanding; kept exact in case it ever is. */
        h->waiting = false;
        h->finished = true;
        held_free(h);
        return 0;
    }
    sw_log(SW_LOG_DEBUG, LOG, "ha: a request of plugin '%s' waits for %zu etcd write(s)",
           sw_plugin_name(h->plugin), sw_ha_writes_outstanding(rt->ha));
    return h->id;
}

static uint64_t ha_gate_http(struct sw_runtime *rt, struct sw_plugin *plugin,
                             const struct swp_http_req *req, swp_http_cb cb, void *cb_ud)
{
    struct ha_held *h = held_new(rt, plugin, cb_ud);
    if (h == NULL)
        return 0;
    h->http_cb = cb;
    h->http = *req;
    h->http.method = req->method != NULL ? sw_xstrdup(req->method) : NULL;
    h->http.url = req->url != NULL ? sw_xstrdup(req->url) : NULL;
    if (req->body != NULL) {
        char *body = sw_xmalloc(req->body_len + 1);
        memcpy(body, req->body, req->body_len);
        body[req->body_len] = '\0';
        h->http.body = body;
    }
    h->headers = sw_xcalloc(req->header_count + 1, sizeof(*h->headers));
    for (size_t i = 0; i < req->header_count; i++)
        h->headers[i] = sw_xstrdup(req->headers[i]);
    h->http.headers = (const char *const *)h->headers;
    uint64_t id = held_start(rt, h);
    return id;
}

static uint64_t ha_gate_net(struct sw_runtime *rt, struct sw_plugin *plugin,
                            const struct swp_net_req *req, swp_net_cb cb, void *cb_ud,
                            void *complete_ud)
{
    struct ha_held *h = held_new(rt, plugin, cb_ud);
    if (h == NULL)
        return 0;
    h->is_net = true;
    h->net_cb = cb;
    h->complete_ud = complete_ud;
    h->net = *req;
    h->net.address = req->address != NULL ? sw_xstrdup(req->address) : NULL;
    if (req->data != NULL) {
        uint8_t *data = sw_xmalloc(req->len > 0 ? req->len : 1);
        memcpy(data, req->data, req->len);
        h->net.data = data;
    }
    return held_start(rt, h);
}

/* true: handled (a held request cancelled: its callback fired); false: *id is the client's
 * id to cancel (the one a held request was sent with, or the caller's own). */
static bool ha_gate_cancel(struct sw_runtime *rt, uint64_t *id)
{
    if ((*id & HA_HELD_ID_BIT) == 0)
        return false;
    for (struct ha_held *h = rt->ha_held; h != NULL; h = h->next) {
        if (h->id != *id)
            continue;
        if (h->sent_id != 0) {
            *id = h->sent_id;
            return false;
        }
        if (!h->finished)
            held_fail(h, SW_ECANCELED); /* freed when the barrier calls back */
        return true;
    }
    return true; /* finished already */
}

static void ha_free(struct sw_runtime *rt)
{
    sw_ha_resign(rt->ha); /* ha: a clean stop hands over now, not after the ttl */
    sw_ha_free(rt->ha);
    rt->ha = NULL;
    free(rt->ha_metrics_text);
    rt->ha_metrics_text = NULL;
}

/* Label values from etcd are shown as they are, minus what would break the exposition. */
static void label_safe(char *out, size_t size, const char *text)
{
    size_t i = 0;
    for (; text != NULL && text[i] != '\0' && i + 1 < size; i++)
        out[i] = text[i] == '"' || text[i] == '\\' || (unsigned char)text[i] < 0x20 ? '_'
                                                                                 : text[i];
    out[i] = '\0';
}

/* Written with snprintf, not cJSON: /v1/status is the admin API's hot document. */
const char *sw_runtime_leader_json(struct sw_runtime *rt)
{
    size_t size = sizeof(rt->ha_leader_buf);
    if (rt->ha == NULL) {
        snprintf(rt->ha_leader_buf, size, "{\"ha\":false,\"who\":\"self\",\"self\":true,"
                 "\"since_ms\":%" PRId64 "}", rt->stats.started_ms);
        return rt->ha_leader_buf;
    }
    struct sw_ha_leader_info info;
    sw_ha_leader(rt->ha, &info);
    char who[160] = "null", since[32] = "null", name[128];
    if (info.leader != NULL) {
        label_safe(name, sizeof(name), info.leader);
        snprintf(who, sizeof(who), "\"%s\"", name);
        snprintf(since, sizeof(since), "%" PRId64, info.since_ms);
    }
    label_safe(name, sizeof(name), info.replica);
    snprintf(rt->ha_leader_buf, size, "{\"ha\":true,\"replica\":\"%s\",\"who\":%s,\"self\":%s,"
             "\"since_ms\":%s,\"lease_left_ms\":%" PRId64 ",\"elections_won\":%" PRIu64
             ",\"fence_refused\":%" PRIu64 "}", name, who, info.is_leader ? "true" : "false",
             since, info.lease_left_ms, info.elections_won, rt->ha_refused);
    return rt->ha_leader_buf;
}

const char *sw_runtime_leader_metrics(struct sw_runtime *rt)
{
    bool acting = rt->ha == NULL || sw_ha_is_leader(rt->ha);
    char *text = sw_xasprintf("# HELP steward_leader 1 when this replica acts (the elected "
                              "leader with HA, always without).\n# TYPE steward_leader gauge\n"
                              "steward_leader %d\n", acting ? 1 : 0);
    if (rt->ha != NULL) {
        struct sw_ha_leader_info info;
        sw_ha_leader(rt->ha, &info);
        char replica[128], leader[128];
        label_safe(replica, sizeof(replica), info.replica);
        label_safe(leader, sizeof(leader), info.leader);
        char *more = sw_xasprintf(
            "%s# HELP steward_ha_leader 1 when this replica holds the etcd leadership, 0 "
            "when it follows (label leader: who leads as last seen).\n"
            "# TYPE steward_ha_leader gauge\nsteward_ha_leader{replica=\"%s\",leader=\"%s\"} %d\n"
            "# HELP steward_ha_elections_won_total Elections this replica won.\n"
            "# TYPE steward_ha_elections_won_total counter\nsteward_ha_elections_won_total %" PRIu64
            "\n# HELP steward_ha_fence_refused_total Marketplace actions the fence refused.\n"
            "# TYPE steward_ha_fence_refused_total counter\nsteward_ha_fence_refused_total %"
            PRIu64 "\n",
            text, replica, leader, info.is_leader ? 1 : 0, info.elections_won, rt->ha_refused);
        free(text);
        text = more;
    }
    free(rt->ha_metrics_text);
    rt->ha_metrics_text = text;
    return text;
}

/* ---- journal coalescing (issue 3, "overhead per action <= 1 ms") ----------------------------
 * Live, durable journal writes made in one loop turn share one commit (journal.c explains
 * the cost). The write-ahead rule still holds: a plugin's request or exchange leaves only
 * after everything journaled before it is committed (coalesce_barrier), so an intent or a
 * plugin's KV record is durable before the request it guards. What is left commits at the
 * end of the turn: a 0 ms timer runs before the loop next waits for I/O. Simulation keeps
 * one commit per durable write (no requests leave it). */

static void coalesce_turn_end(void *ud)
{
    struct sw_runtime *rt = ud;
    rt->journal_timer = 0;
    struct sw_error err = {0};
    if (sw_journal_barrier(rt->journal, &err) < 0)
        sw_log(SW_LOG_ERROR, LOG, "journal: cannot commit: %s", err.msg);
}

static void coalesce_pending(void *ud)
{
    struct sw_runtime *rt = ud;
    if (rt->journal_timer == 0)
        rt->journal_timer = sw_clock_timer_start(rt->clock, 0, coalesce_turn_end, rt);
}

static void coalesce_start(struct sw_runtime *rt)
{
    if (rt->opts.loop != NULL)
        sw_journal_set_coalesce(rt->journal, coalesce_pending, rt);
}

static void coalesce_stop(struct sw_runtime *rt)
{
    stop_timer(rt, &rt->journal_timer);
    sw_journal_set_coalesce(rt->journal, NULL, NULL);
}

/* false: the journal could not commit what the plugin's request may rely on; it is not
 * sent (the plugin sees a refused request, as when the HTTP client cannot take it). */
static bool coalesce_barrier(struct sw_runtime *rt, struct sw_plugin *plugin)
{
    struct sw_error err = {0};
    if (sw_journal_barrier(rt->journal, &err) == 0)
        return true;
    sw_log(SW_LOG_ERROR, LOG, "journal: cannot commit before a request of plugin '%s', not "
           "sending it: %s", sw_plugin_name(plugin), err.msg);
    return false;
}

/* ---- history (evaluation retention: "history.keep") ------------------------------------------
 * Each evaluation row holds what the policy saw, so the journal grows with time, and a full
 * disk fails the durable writes that guard every purchase. Evaluations older than the
 * window (and the shared inputs only they used) are deleted in bounded batches, one per
 * timer, so no turn of the loop blocks on a long delete: every second while a backlog lasts
 * (an upgrade, a shortened window), then hourly (a quarter of a window shorter than 4 h).
 * Live only: a simulation's journal is written by one run and kept whole. Nothing but
 * evaluations and the shared inputs only they used is ever deleted here. */

#define HISTORY_BATCH 16
#define HISTORY_FIRST_MS 1000
#define HISTORY_BACKLOG_MS 1000
#define HISTORY_EVERY_MS 3600000

static void history_tick(void *ud)
{
    struct sw_runtime *rt = ud;
    rt->history_timer = 0;
    if (!rt->running)
        return;
    bool more = false;
    struct sw_error err = {0};
    int64_t before = now_ms(rt) - rt->config->history_keep_ms;
    if (sw_journal_history_prune(rt->journal, before, HISTORY_BATCH, &more, &err) < 0)
        sw_log(SW_LOG_ERROR, LOG, "journal: cannot delete old evaluations: %s", err.msg);
    int64_t every = rt->config->history_keep_ms / 4;
    if (every > HISTORY_EVERY_MS)
        every = HISTORY_EVERY_MS;
    if (more || every < HISTORY_BACKLOG_MS)
        every = HISTORY_BACKLOG_MS;
    rt->history_timer = sw_clock_timer_start(rt->clock, (uint64_t)every, history_tick, rt);
}

static void history_start(struct sw_runtime *rt)
{
    if (rt->opts.loop == NULL || rt->opts.skip_records || rt->config->history_keep_ms <= 0)
        return;
    rt->history_timer = sw_clock_timer_start(rt->clock, HISTORY_FIRST_MS, history_tick, rt);
}
