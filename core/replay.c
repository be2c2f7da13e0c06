#define _GNU_SOURCE /* strptime, timegm */
#include "replay.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clock.h"
#include "clock_sim.h"
#include "config.h"
#include "journal.h"
#include "log.h"
#include "mem.h"
#include "paths.h"
#include "model.h"
#include "policy.h"
#include "sim.h"

#define PAGE 512

/* Where one policy's replay starts. Records at or before skip_* are not run (the state
 * after them is the seed); those before report_* warm the policy up silently; the rest are
 * compared. Plugin events after events_after_ms reach it. */
struct policy_start {
    int64_t skip_ms, skip_id;
    int64_t report_ms, report_id;
    int64_t events_after_ms;
};

struct replay {
    const struct sw_replay_opts *opts;
    struct sw_config *config;
    struct sw_journal *journal;
    struct sw_clock *clock;
    struct sw_policy **policies; /* parallel to config->policies */
    struct policy_start *starts; /* likewise */
    int64_t from_ms;             /* the first time reported */
    struct sw_replay_result *res;
    cJSON *diffs; /* JSON mode */
    int64_t first_ms;
    /* plugin events not yet handed to the policies */
    struct sw_event_record *events;
    size_t event_count;
    size_t event_next;
    int64_t event_after_id;
    bool events_done;
};

static const char *json_str(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static double json_num(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(item) ? item->valuedouble : 0.0;
}

/* The recorded inputs back into the structures the policy reads. */
static void inputs_from_json(const cJSON *in, struct sw_units *units, struct sw_offers *offers,
                             struct sw_metric_set *metrics)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(in, "units"))
    {
        struct sw_unit *u =
            sw_unit_new(json_str(item, "key"), json_str(item, "group"), json_str(item, "region"));
        u->market_id = sw_xstrdup(json_str(item, "market_id"));
        u->provider = sw_xstrdup(json_str(item, "provider"));
        u->price_usd_hour = json_num(item, "price_usd_hour");
        const char *state = json_str(item, "state");
        int st = state != NULL ? sw_unit_state_parse(state) : -1;
        u->state = st >= 0 ? st : SW_UNIT_ORDERED;
        u->unhealthy = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item, "unhealthy"));
        u->ordered_ms = (int64_t)json_num(item, "ordered_ms");
        sw_units_add(units, u);
    }
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(in, "offers"))
    {
        sw_offers_add(offers, json_str(item, "provider"), json_str(item, "region"),
                      json_num(item, "price_usd_hour"),
                      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item, "audited")));
    }
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(in, "metrics"))
    {
        int64_t at = (int64_t)json_num(item, "at_ms");
        const char *error = json_str(item, "error");
        if (error != NULL) {
            sw_metric_set_put_error(metrics, item->string, at, SW_EIO, error);
            continue;
        }
        const cJSON *samples = cJSON_GetObjectItemCaseSensitive(item, "samples");
        size_t n = (size_t)cJSON_GetArraySize(samples);
        struct swp_sample *out = sw_xcalloc(n ? n : 1, sizeof(*out));
        const char **strings = NULL;
        size_t string_count = 0;
        size_t i = 0;
        const cJSON *sample;
        cJSON_ArrayForEach(sample, samples)
        {
            const cJSON *labels = cJSON_GetObjectItemCaseSensitive(sample, "labels");
            size_t nl = (size_t)cJSON_GetArraySize(labels);
            strings = sw_xrealloc(strings, (string_count + 2 * nl + 2) * sizeof(char *));
            const char **names = &strings[string_count];
            const char **values = &strings[string_count + nl];
            size_t l = 0;
            const cJSON *label;
            cJSON_ArrayForEach(label, labels)
            {
                names[l] = label->string;
                values[l] = cJSON_IsString(label) ? label->valuestring : "";
                l++;
            }
            string_count += 2 * nl;
            out[i].label_count = nl;
            out[i].value = json_num(sample, "value");
            i++;
        }
        /* Pointers into strings are only stable once it stopped growing. */
        size_t offset = 0;
        for (size_t k = 0; k < n; k++) {
            out[k].label_names = &strings[offset];
            out[k].label_values = &strings[offset + out[k].label_count];
            offset += 2 * out[k].label_count;
        }
        sw_metric_set_put(metrics, item->string, at, out, n);
        free(out);
        free(strings);
    }
}

static int load_events(struct replay *r)
{
    sw_journal_events_free(r->events, r->event_count);
    r->events = NULL;
    r->event_count = 0;
    r->event_next = 0;
    if (sw_journal_events(r->journal, r->event_after_id, PAGE, &r->events, &r->event_count) < 0)
        return SW_ESTORE;
    if (r->event_count == 0)
        r->events_done = true;
    else
        r->event_after_id = r->events[r->event_count - 1].id;
    return 0;
}

/* Plugin events journaled up to at_ms go to on_event first. The runtime hands a policy
 * the events it drained from plugins (their record carries "type"), not its own
 * bookkeeping records (unit_ready, unit_released, acquire_failed). */
static void deliver_events(struct replay *r, int64_t at_ms, const struct sw_policy_input *in)
{
    for (;;) {
        if (r->event_next >= r->event_count) {
            if (r->events_done || load_events(r) < 0 || r->event_count == 0)
                return;
        }
        const struct sw_event_record *ev = &r->events[r->event_next];
        if (ev->at_ms > at_ms)
            return;
        r->event_next++;
        cJSON *data = ev->data_json != NULL ? cJSON_Parse(ev->data_json) : NULL;
        bool for_policies = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(data, "type"));
        cJSON_Delete(data);
        if (!for_policies)
            continue;
        if (ev->at_ms >= r->from_ms)
            r->res->events++;
        /* A policy seeded from a snapshot already holds what earlier events did. */
        for (size_t i = 0; i < r->config->policy_count; i++) {
            if (ev->at_ms <= r->starts[i].events_after_ms)
                continue;
            struct sw_error err = {0};
            sw_policy_on_event(r->policies[i], in, ev->data_json, &err);
        }
    }
}

static void report_difference(struct replay *r, const cJSON *rec, const char *policy, int64_t at_ms,
                              const char *recorded, const char *replayed, const char *note)
{
    r->res->differences++;
    FILE *out = r->opts->out;
    int64_t id = (int64_t)json_num(rec, "id");
    if (r->opts->json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "id", (double)id);
        cJSON_AddNumberToObject(d, "at_ms", (double)at_ms);
        cJSON_AddStringToObject(d, "policy", policy);
        cJSON_AddItemToObject(d, "recorded", cJSON_Parse(recorded));
        cJSON_AddItemToObject(d, "replayed", cJSON_Parse(replayed));
        if (note != NULL)
            cJSON_AddStringToObject(d, "note", note);
        cJSON_AddItemToArray(r->diffs, d);
        return;
    }
    if (out == NULL)
        return;
    time_t secs = (time_t)(at_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(out, "eval %" PRId64 " at %s.%03dZ (+%.1fs) %s: recorded %s, replayed %s%s%s\n", id,
            when, (int)(at_ms % 1000), (double)(at_ms - r->first_ms) / 1000.0, policy, recorded,
            replayed, note != NULL ? " — " : "", note != NULL ? note : "");
}

/* (a_ms, a_id) before (b_ms, b_id) in journal order */
static bool before(int64_t a_ms, int64_t a_id, int64_t b_ms, int64_t b_id)
{
    return a_ms < b_ms || (a_ms == b_ms && a_id < b_id);
}

static void replay_one(struct replay *r, const cJSON *rec)
{
    const char *policy = json_str(rec, "policy");
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(rec, "inputs");
    int64_t at_ms = (int64_t)json_num(rec, "at_ms");
    int64_t id = (int64_t)json_num(rec, "id");
    bool in_window = at_ms >= r->from_ms;
    size_t index = 0;
    while (index < r->config->policy_count &&
           strcmp(r->config->policies[index].name, policy ? policy : "") != 0)
        index++;
    if (index == r->config->policy_count) {
        if (in_window) {
            r->res->evaluations++;
            r->res->unknown_policy++;
        }
        return;
    }
    const struct policy_start *start = &r->starts[index];
    if (!before(start->skip_ms, start->skip_id, at_ms, id)) {
        if (in_window) { /* the snapshot's own evaluation: its state is the seed */
            r->res->evaluations++;
            r->res->seeded++;
        }
        return;
    }
    bool report = !before(at_ms, id, start->report_ms, start->report_id);
    if (report)
        r->res->evaluations++;
    if (!cJSON_IsObject(inputs)) {
        if (report)
            r->res->without_inputs++;
        return;
    }
    int64_t now = (int64_t)json_num(inputs, "now_ms");
    if (r->first_ms == 0 && report)
        r->first_ms = now;
    if (now > sw_clock_now(r->clock))
        sw_clock_sim_run(r->clock, now);

    struct sw_units units;
    struct sw_offers offers;
    struct sw_metric_set metrics;
    sw_units_init(&units);
    sw_offers_init(&offers);
    sw_metric_set_init(&metrics);
    inputs_from_json(inputs, &units, &offers, &metrics);
    struct sw_policy_input in = {
        .now_ms = now,
        .units = &units,
        .offers = &offers,
        .metrics = &metrics,
        .groups = r->config->groups,
        .group_count = r->config->group_count,
        .budget_usd_hour = json_num(inputs, "budget_usd_hour"),
        .spend_usd_hour = json_num(inputs, "spend_usd_hour"),
    };
    deliver_events(r, at_ms, &in);

    struct sw_policy_result res;
    sw_policy_result_init(&res);
    struct sw_error err = {0};
    int rc = sw_policy_eval(r->policies[index], &in, &res, &err);
    if (!report) { /* warming up between the snapshot and the window */
        sw_policy_result_clear(&res);
        sw_units_clear(&units);
        sw_offers_clear(&offers);
        sw_metric_set_clear(&metrics);
        return;
    }
    r->res->replayed++;

    /* What evaluate returned is what replay compares; older records hold it directly. */
    const cJSON *desired = cJSON_GetObjectItemCaseSensitive(rec, "desired");
    const cJSON *recorded_policy = cJSON_GetObjectItemCaseSensitive(desired, "policy");
    if (recorded_policy == NULL)
        recorded_policy = desired;
    char *recorded_text = recorded_policy != NULL ? cJSON_PrintUnformatted(recorded_policy) : NULL;
    struct sw_desired recorded;
    sw_desired_init(&recorded);
    bool parsed = recorded_text != NULL && sw_desired_from_json(&recorded, recorded_text) == 0;
    char *replayed_text = sw_desired_to_json(&res.desired);
    char *canonical = parsed ? sw_desired_to_json(&recorded) : sw_xstrdup("null");
    bool recorded_failed = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(rec, "error"));
    const char *note = NULL;
    if (!parsed)
        note = "the recorded desired state is unreadable";
    else if (recorded_failed && rc == 0)
        note = "the recorded evaluation failed, the replayed one succeeded";
    else if (!recorded_failed && rc < 0)
        note = err.msg;
    if (note != NULL || !sw_desired_equal(&recorded, &res.desired))
        report_difference(r, rec, policy, at_ms, canonical, replayed_text, note);
    free(canonical);
    free(replayed_text);
    cJSON_free(recorded_text);
    sw_desired_clear(&recorded);
    sw_policy_result_clear(&res);
    sw_units_clear(&units);
    sw_offers_clear(&offers);
    sw_metric_set_clear(&metrics);
}

/* The id and time of policy's first evaluation in [from_ms, to_ms]: 0, SW_ENOENT, or < 0
 * with err. */
static int first_eval(struct replay *r, const char *policy, int64_t from_ms, int64_t to_ms,
                      int64_t *at_ms, int64_t *id, struct sw_error *err)
{
    char *text = sw_journal_evals_json(r->journal, policy, from_ms, to_ms, 1, err);
    if (text == NULL)
        return err->code ? err->code : SW_ESTORE;
    cJSON *page = cJSON_Parse(text);
    free(text);
    const cJSON *rec = cJSON_GetArrayItem(page, 0);
    int code = rec != NULL ? 0 : SW_ENOENT;
    *at_ms = (int64_t)json_num(rec, "at_ms");
    *id = (int64_t)json_num(rec, "id");
    cJSON_Delete(page);
    return code;
}

/* Where policy i starts (see struct policy_start), its ctx.state seeded from the latest
 * snapshot before the first evaluation to report, so a stateful policy decides as it did
 * live. Lowers *pass_ms to where the pass over the journal must begin for it. */
static int plan_start(struct replay *r, size_t i, int64_t to_ms, bool never_pruned,
                      int64_t *pass_ms, struct sw_error *err)
{
    struct policy_start *start = &r->starts[i];
    const char *name = r->config->policies[i].name;
    start->events_after_ms = r->opts->has_from ? r->from_ms - 1 : INT64_MIN;
    int64_t first_ms = 0, first_id = 0;
    int code = first_eval(r, name, r->from_ms, to_ms, &first_ms, &first_id, err);
    if (code == SW_ENOENT) { /* nothing of it to report */
        start->skip_ms = start->skip_id = start->report_ms = start->report_id = INT64_MAX;
        return 0;
    }
    if (code < 0)
        return code;
    start->report_ms = first_ms;
    start->report_id = first_id;
    start->skip_ms = first_ms;
    start->skip_id = first_id - 1;
    struct sw_snapshot snap;
    code = sw_journal_snapshot_find(r->journal, name, first_ms, first_id - 1, &snap, err);
    if (code == SW_ENOENT) {
        /* None before it. From the policy's very first evaluation an empty state is what it
         * had live; a history cut at that evaluation's snapshot starts after it. */
        int64_t oldest_ms = 0, oldest_id = 0;
        code = first_eval(r, name, INT64_MIN / 2, INT64_MAX / 2, &oldest_ms, &oldest_id, err);
        if (code < 0)
            return code;
        if (never_pruned && oldest_id == first_id)
            return 0;
        code = sw_journal_snapshot_find(r->journal, name, first_ms, first_id, &snap, err);
        if (code == SW_ENOENT) {
            char when[SW_UTC_TEXT_LEN];
            sw_clock_utc_text(first_ms, when);
            sw_log(SW_LOG_WARN, "replay",
                   "policy %s: no ctx.state snapshot at or before %s (a journal written before "
                   "snapshots): replaying from an empty state, a stateful policy may differ "
                   "until its state catches up",
                   name, when);
            return 0;
        }
    }
    if (code < 0)
        return code;
    if (sw_policy_state_load(r->policies[i], snap.state_json) < 0)
        sw_log(SW_LOG_WARN, "replay",
               "policy %s: the snapshot after evaluation %" PRId64
               " is unreadable: replaying from an empty state",
               name, snap.eval_id);
    start->skip_ms = snap.at_ms;
    start->skip_id = snap.eval_id;
    start->events_after_ms = snap.at_ms;
    if (snap.at_ms < *pass_ms)
        *pass_ms = snap.at_ms;
    sw_snapshot_clear(&snap);
    return 0;
}

static void policy_log_quiet(void *ud, int level, const char *msg)
{
    if (level >= SW_LOG_WARN)
        sw_log(level, "replay", "%s", msg);
}

int sw_replay_run(const struct sw_replay_opts *opts, struct sw_replay_result *result,
                  struct sw_error *err)
{
    struct replay r = {0};
    r.opts = opts;
    r.res = result;
    memset(result, 0, sizeof(*result));
    int rc = 0;
    struct stat st;
    if (stat(opts->state_path, &st) != 0 || !S_ISREG(st.st_mode))
        return sw_error_set(err, SW_ENOENT, "%s: no such journal", opts->state_path);
    r.config = sw_config_load(opts->config_path, err);
    if (r.config == NULL)
        return err->code ? err->code : SW_ECONFIG;
    r.journal = sw_journal_open(opts->state_path, err);
    if (r.journal == NULL) {
        rc = err->code ? err->code : SW_ESTORE;
        goto out;
    }
    r.clock = sw_clock_sim_new(0);
    r.policies = sw_xcalloc(r.config->policy_count + 1, sizeof(*r.policies));
    r.starts = sw_xcalloc(r.config->policy_count + 1, sizeof(*r.starts));
    r.from_ms = opts->has_from ? opts->from_ms : INT64_MIN / 2;
    for (size_t i = 0; i < r.config->policy_count; i++) {
        const struct sw_policy_config *pc = &r.config->policies[i];
        struct sw_policy_opts popts = {
            .name = pc->name,
            .file = pc->file,
            .lua_path = opts->lua_path,
            .params_json = pc->params_json,
            .clock = r.clock,
            .seed = r.config->seed + i, /* as the runtime seeds policy i */
            .max_instructions = pc->max_instructions,
            .memory_limit = pc->memory_limit,
            .time_limit_ms = pc->time_limit_ms,
            .log_fn = policy_log_quiet,
        };
        r.policies[i] = sw_policy_new(&popts, err);
        if (r.policies[i] == NULL) {
            rc = err->code ? err->code : SW_EPOLICY;
            goto out;
        }
    }
    /* history: a window older than what retention kept says so instead of coming back
     * empty or short. */
    struct sw_history_span span;
    char gap[256];
    if (sw_journal_history_span(r.journal, &span, err) < 0) {
        rc = err->code ? err->code : SW_ESTORE;
        goto out;
    }
    if (opts->has_from && sw_journal_history_gap(&span, opts->from_ms, gap, sizeof(gap))) {
        /* Policies are cut at their own snapshots: the oldest kept may predate the mark. */
        if (opts->has_to && (!span.any || opts->to_ms < span.oldest_ms)) {
            rc = sw_error_set(err, SW_ENOENT, "%s: nothing to replay in the window: %s",
                              opts->state_path, gap);
            goto out;
        }
        sw_log(SW_LOG_WARN, "replay", "%s: %s; replaying from there", opts->state_path, gap);
    }
    if (opts->json)
        r.diffs = cJSON_CreateArray();
    int64_t cursor = r.from_ms;
    int64_t to = opts->has_to ? opts->to_ms : INT64_MAX / 2;
    for (size_t i = 0; i < r.config->policy_count; i++) {
        rc = plan_start(&r, i, to, span.pruned_before_ms == 0, &cursor, err);
        if (rc < 0)
            goto out;
    }
    int64_t last_id = -1;
    size_t limit = PAGE;
    for (;;) {
        char *text = sw_journal_evals_json(r.journal, NULL, cursor, to, limit, err);
        if (text == NULL) {
            rc = err->code ? err->code : SW_ESTORE;
            goto out;
        }
        cJSON *page = cJSON_Parse(text);
        free(text);
        size_t count = (size_t)cJSON_GetArraySize(page);
        size_t fresh = 0;
        const cJSON *rec;
        cJSON_ArrayForEach(rec, page)
        {
            int64_t id = (int64_t)json_num(rec, "id");
            int64_t at = (int64_t)json_num(rec, "at_ms");
            /* Pages restart at the last time seen; rows of that time already done. */
            if (at == cursor && id <= last_id)
                continue;
            fresh++;
            replay_one(&r, rec);
            cursor = at;
            last_id = id;
        }
        cJSON_Delete(page);
        if (count < limit)
            break;
        if (fresh == 0)
            limit *= 2; /* more rows at one millisecond than a page holds */
    }
    if (opts->json && opts->out != NULL) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "evaluations", (double)result->evaluations);
        cJSON_AddNumberToObject(root, "replayed", (double)result->replayed);
        cJSON_AddNumberToObject(root, "differences", (double)result->differences);
        cJSON_AddNumberToObject(root, "without_inputs", (double)result->without_inputs);
        cJSON_AddNumberToObject(root, "unknown_policy", (double)result->unknown_policy);
        cJSON_AddNumberToObject(root, "seeded", (double)result->seeded);
        cJSON_AddItemToObject(root, "diffs", r.diffs);
        r.diffs = NULL;
        char *out = cJSON_Print(root);
        fprintf(opts->out, "%s\n", out);
        cJSON_free(out);
        cJSON_Delete(root);
    }
out:
    cJSON_Delete(r.diffs);
    for (size_t i = 0; r.policies != NULL && i < r.config->policy_count; i++)
        sw_policy_free(r.policies[i]);
    free(r.policies);
    free(r.starts);
    sw_journal_events_free(r.events, r.event_count);
    sw_clock_free(r.clock);
    sw_journal_close(r.journal);
    sw_config_free(r.config);
    return rc;
}

/* ---- the CLI ------------------------------------------------------------------------ */

static void usage_replay(FILE *out)
{
    fprintf(out, "usage: steward replay --state FILE [-c CONFIG] [--from T] [--to T] [--json]\n"
                 "\n"
                 "Re-run the configuration's policies (their current files) over the evaluation\n"
                 "inputs recorded in a journal and print every evaluation whose desired state\n"
                 "differs from the recorded one. Exit 0: none differs; 1: some do.\n"
                 "  --state FILE   the journal (the config's \"state\", e.g. steward.db)\n"
                 "  -c CONFIG      policies, params and seed (default: steward.jsonc beside the\n"
                 "                 journal)\n"
                 "  --from T, --to T  window: epoch seconds or YYYY-MM-DDTHH:MM:SSZ\n"
                 "  --json         differences and counts as JSON on stdout\n");
}

static int parse_when(const char *text, int64_t *ms_out)
{
    char *end = NULL;
    double secs = strtod(text, &end);
    if (end != text && *end == '\0' && isfinite(secs)) {
        *ms_out = (int64_t)llround(secs * 1000.0);
        return 0;
    }
    struct tm tm = {0};
    end = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL || (*end != 'Z' && *end != '\0') || (*end == 'Z' && end[1] != '\0'))
        return -1;
    *ms_out = (int64_t)timegm(&tm) * 1000;
    return 0;
}

int sw_replay_main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        {"state", required_argument, NULL, 'S'},
        {"config", required_argument, NULL, 'c'},
        {"from", required_argument, NULL, 'F'},
        {"to", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sw_replay_opts opts = {.out = stdout};
    const char *config = NULL;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", long_opts, NULL)) != -1) {
        switch (ch) {
        case 'S':
            opts.state_path = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'F':
        case 'T': {
            int64_t *slot = ch == 'F' ? &opts.from_ms : &opts.to_ms;
            if (parse_when(optarg, slot) < 0) {
                fprintf(stderr,
                        "steward replay: %s: expected epoch seconds or "
                        "YYYY-MM-DDTHH:MM:SSZ, got \"%s\"\n",
                        ch == 'F' ? "--from" : "--to", optarg);
                return 2;
            }
            if (ch == 'F')
                opts.has_from = true;
            else
                opts.has_to = true;
            break;
        }
        case 'j':
            opts.json = true;
            break;
        case 'h':
            usage_replay(stdout);
            return 0;
        default:
            fprintf(stderr, "steward replay: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage_replay(stderr);
            return 2;
        }
    }
    if (opts.state_path == NULL || optind < argc) {
        fprintf(stderr, "steward replay: --state FILE is required%s\n",
                optind < argc ? " (and takes no other arguments)" : "");
        usage_replay(stderr);
        return 2;
    }
    char *default_config = NULL;
    if (config == NULL) {
        const char *slash = strrchr(opts.state_path, '/');
        default_config = slash != NULL
                             ? sw_xasprintf("%.*s/steward.jsonc", (int)(slash - opts.state_path),
                                            opts.state_path)
                             : sw_xstrdup("steward.jsonc");
        config = default_config;
    }
    opts.config_path = config;
    sw_log_configure(stderr, SW_LOG_FORMAT_TEXT, SW_LOG_WARN);
    struct sw_config *probe = sw_config_load(config, &(struct sw_error){0});
    char *lua = sw_paths_lua(probe);
    sw_config_free(probe);
    opts.lua_path = lua;
    struct sw_replay_result res;
    struct sw_error err = {0};
    int rc = sw_replay_run(&opts, &res, &err);
    free(lua);
    if (rc < 0) {
        fprintf(stderr, "steward replay: %s%s\n", err.msg,
                default_config != NULL && rc == SW_EIO ? " (pass -c CONFIG)" : "");
        free(default_config);
        return 2;
    }
    free(default_config);
    if (!opts.json)
        printf("replayed %" PRIu64 " of %" PRIu64 " evaluations: %" PRIu64 " differ%s%s%s\n",
               res.replayed, res.evaluations, res.differences,
               res.without_inputs ? " (some were recorded without inputs)" : "",
               res.unknown_policy ? " (some name a policy the config does not have)" : "",
               res.seeded ? " (the first of a kept history seeds the state: not replayed)" : "");
    return res.differences > 0 ? 1 : 0;
}
