/* jobs_http — the job list of an ML training master, polled over HTTP (kind METRICS).
 *
 * Every poll_interval it GETs `url` and reads the jobs out of the JSON reply with JSON
 * pointers (RFC 6901), so it fits a real master. The default shape is
 *
 *   {"jobs": [{"id": "j1", "state": "queued|running|done|failed", "workers": 4,
 *              "gpus_per_worker": 1, "progress": 0.3}]}
 *
 * (jobs_pointer "" reads a bare array; state_map translates a master's own state names).
 * It keeps the last good list and answers queries from it:
 *
 *   "jobs"           one sample per job, labels {id, state[, priority]}, value = workers
 *   "jobs_gpus"      the same samples, value = workers × gpus_per_worker
 *   "jobs_progress"  the same samples for jobs that report progress, value = progress
 *
 * On every change of a job's state it emits an event "job_started" (now running),
 * "job_done", "job_failed" or "job_queued", data {"id", "state", "workers",
 * "gpus_per_worker"[, "progress", "priority"]}; the runtime hands events to the policies'
 * on_event. Jobs already finished at the first poll raise no event: a master keeps its
 * history, and a policy reads their state from the "jobs" query.
 *
 * Without a good poll for stale_after the list is stale and queries fail, so a policy sees
 * "no signal" instead of a list the master may have changed since. Time only through
 * host->now_ms and host timers; HTTP only through host->http_request.
 *
 * In simulation there is no network: `steward simulate` sets reply_kv, and its job model
 * (core/sim_master.c) publishes the reply a master would give in this plugin's key-value
 * space under that key. A poll then reads the key instead of sending a GET; everything
 * after the reply (parsing, diffing, events, queries) is the same code as live.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "steward/swp_plugin.h"
#include "steward/swp_util.h"

#define JH_MAX_JOBS 10000
#define JH_MAX_REPLY_BYTES ((size_t)4 << 20)
#define JH_MAX_WORKERS 100000
#define JH_WARN_EVERY 12 /* a failing master is reported on the 1st, 13th, 25th... poll */

enum job_state { JOB_QUEUED = 0, JOB_RUNNING = 1, JOB_DONE = 2, JOB_FAILED = 3 };

static const char *const state_names[] = {"queued", "running", "done", "failed"};
static const char *const event_types[] = {"job_queued", "job_started", "job_done", "job_failed"};
static const char *const label_names[] = {"id", "state", "priority"};

struct job {
    char *id;
    char *priority; /* NULL when the master gives none */
    int state;      /* enum job_state */
    int64_t workers;
    int64_t gpus_per_worker;
    double progress;
    bool has_progress;
};

struct jobs_http {
    const struct swp_host *host;
    const char *url;      /* borrowed from the host's configuration until destroy */
    const char *reply_kv; /* read the reply from this key-value key instead (simulation) */
    char *kv_name;        /* "kv:<reply_kv>", what logs call the source then */
    char *auth_header;
    const char *jobs_ptr;
    const char *id_ptr;
    const char *state_ptr;
    const char *workers_ptr;
    const char *gpus_ptr;
    const char *progress_ptr;
    const char *priority_ptr;
    cJSON *state_map; /* the master's state name → ours; NULL: built-in names only */
    int64_t default_gpus;
    uint64_t poll_ms;
    uint32_t timeout_ms;
    int64_t stale_ms; /* 0: never stale */

    struct job *jobs; /* the last good list, in the master's order */
    size_t job_count;
    bool have_list;
    int64_t list_at_ms;

    uint64_t timer;
    uint64_t request;
    bool in_flight;
    unsigned failures; /* consecutive failed polls */
    char last_error[200];
    char last_skipped[200]; /* what the previous poll skipped, to warn once per change */
};

/* ---- small helpers ----------------------------------------------------------------- */

static void jobs_free(struct job *jobs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(jobs[i].id);
        free(jobs[i].priority);
    }
    free(jobs);
}

static const struct job *job_find(const struct job *jobs, size_t count, const char *id)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(jobs[i].id, id) == 0)
            return &jobs[i];
    return NULL;
}

static const char *json_kind(const cJSON *item)
{
    if (item == NULL)
        return "nothing";
    if (cJSON_IsString(item))
        return "string";
    if (cJSON_IsNumber(item))
        return "number";
    if (cJSON_IsBool(item))
        return "boolean";
    if (cJSON_IsNull(item))
        return "null";
    if (cJSON_IsObject(item))
        return "object";
    if (cJSON_IsArray(item))
        return "array";
    return "invalid JSON";
}

/* ---- JSON pointers (RFC 6901) -------------------------------------------------------- */

static bool pointer_valid(const char *ptr)
{
    if (ptr == NULL || (ptr[0] != '\0' && ptr[0] != '/'))
        return false;
    for (const char *p = ptr; *p; p++)
        if (*p == '~' && p[1] != '0' && p[1] != '1')
            return false;
    return true;
}

/* "" is the whole document; "/a/0/b~1c" walks object keys (~1 is '/', ~0 is '~') and array
 * indexes. NULL when the path does not exist. */
static const cJSON *pointer_get(const cJSON *doc, const char *ptr)
{
    const cJSON *node = doc;
    const char *p = ptr;
    char token[256];
    while (node != NULL && *p != '\0') {
        if (*p != '/')
            return NULL;
        p++;
        size_t n = 0;
        while (*p != '\0' && *p != '/') {
            char c = *p++;
            if (c == '~') {
                c = *p == '0' ? '~' : '/';
                p++;
            }
            if (n + 1 >= sizeof(token))
                return NULL;
            token[n++] = c;
        }
        token[n] = '\0';
        if (cJSON_IsObject(node)) {
            node = cJSON_GetObjectItemCaseSensitive(node, token);
        } else if (cJSON_IsArray(node)) {
            /* Digits only, no leading zero: "01" and "-" name nothing. */
            if (n == 0 || n > 9 || (n > 1 && token[0] == '0'))
                return NULL;
            for (size_t i = 0; i < n; i++)
                if (!isdigit((unsigned char)token[i]))
                    return NULL;
            node = cJSON_GetArrayItem(node, atoi(token));
        } else {
            return NULL;
        }
    }
    return node;
}

/* ---- reading one job ----------------------------------------------------------------- */

static int state_parse(const struct jobs_http *jh, const char *name)
{
    if (jh->state_map != NULL) {
        const cJSON *mapped = cJSON_GetObjectItemCaseSensitive(jh->state_map, name);
        if (cJSON_IsString(mapped))
            name = mapped->valuestring;
    }
    static const struct {
        const char *name;
        int state;
    } known[] = {
        {"queued", JOB_QUEUED},    {"pending", JOB_QUEUED},   {"waiting", JOB_QUEUED},
        {"scheduled", JOB_QUEUED}, {"running", JOB_RUNNING},  {"started", JOB_RUNNING},
        {"active", JOB_RUNNING},   {"done", JOB_DONE},        {"succeeded", JOB_DONE},
        {"success", JOB_DONE},     {"completed", JOB_DONE},   {"complete", JOB_DONE},
        {"finished", JOB_DONE},    {"failed", JOB_FAILED},    {"failure", JOB_FAILED},
        {"error", JOB_FAILED},     {"errored", JOB_FAILED},   {"cancelled", JOB_FAILED},
        {"canceled", JOB_FAILED},  {"killed", JOB_FAILED},    {"aborted", JOB_FAILED},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcasecmp(name, known[i].name) == 0)
            return known[i].state;
    return -1;
}

/* A count from a JSON number: integral, 0..max. Absent (or null) gives fallback. */
static bool count_get(const cJSON *item, int64_t fallback, int64_t max, int64_t *out)
{
    if (item == NULL || cJSON_IsNull(item)) {
        *out = fallback;
        return true;
    }
    if (!cJSON_IsNumber(item))
        return false;
    double v = item->valuedouble;
    if (!isfinite(v) || v < 0 || v > (double)max || floor(v) != v)
        return false;
    *out = (int64_t)v;
    return true;
}

/* An id or a priority: a non-empty string, or a number printed the way JSON wrote it. */
static char *scalar_text(const cJSON *item)
{
    if (cJSON_IsString(item) && item->valuestring[0] != '\0')
        return swp_xstrdup(item->valuestring);
    if (cJSON_IsNumber(item) && isfinite(item->valuedouble)) {
        char buf[40];
        double v = item->valuedouble;
        if (floor(v) == v && fabs(v) < 1e15)
            snprintf(buf, sizeof(buf), "%.0f", v);
        else
            snprintf(buf, sizeof(buf), "%.17g", v);
        return swp_xstrdup(buf);
    }
    return NULL;
}

/* Fills job from one element of the jobs array; on false, why says what was wrong. */
static bool job_read(const struct jobs_http *jh, const cJSON *item, struct job *job, char *why,
                     size_t why_len)
{
    memset(job, 0, sizeof(*job));
    const cJSON *id = pointer_get(item, jh->id_ptr);
    job->id = scalar_text(id);
    if (job->id == NULL) {
        snprintf(why, why_len, "id (%s) is %s, expected a string or number", jh->id_ptr,
                 json_kind(id));
        return false;
    }
    const cJSON *state = pointer_get(item, jh->state_ptr);
    job->state = cJSON_IsString(state) ? state_parse(jh, state->valuestring) : -1;
    if (job->state < 0) {
        if (cJSON_IsString(state))
            snprintf(why, why_len, "job %.40s: unknown state \"%.40s\" (map it with state_map)",
                     job->id, state->valuestring);
        else
            snprintf(why, why_len, "job %.40s: state (%s) is %s, expected a string", job->id,
                     jh->state_ptr, json_kind(state));
        return false;
    }
    if (!count_get(pointer_get(item, jh->workers_ptr), 0, JH_MAX_WORKERS, &job->workers)) {
        snprintf(why, why_len, "job %.40s: workers (%s) must be an integer 0..%d", job->id,
                 jh->workers_ptr, JH_MAX_WORKERS);
        return false;
    }
    if (!count_get(pointer_get(item, jh->gpus_ptr), jh->default_gpus, 1024,
                   &job->gpus_per_worker)) {
        snprintf(why, why_len, "job %.40s: gpus_per_worker (%s) must be an integer 0..1024",
                 job->id, jh->gpus_ptr);
        return false;
    }
    const cJSON *progress = pointer_get(item, jh->progress_ptr);
    if (cJSON_IsNumber(progress) && isfinite(progress->valuedouble)) {
        job->progress = progress->valuedouble;
        job->has_progress = true;
    }
    job->priority = scalar_text(pointer_get(item, jh->priority_ptr));
    return true;
}

/* ---- events -------------------------------------------------------------------------- */

static void emit_job_event(struct jobs_http *jh, const struct job *job, const char *reason)
{
    cJSON *data = cJSON_CreateObject();
    char *text = NULL;
    if (data != NULL) {
        cJSON_AddStringToObject(data, "id", job->id);
        cJSON_AddStringToObject(data, "state", state_names[job->state]);
        cJSON_AddNumberToObject(data, "workers", (double)job->workers);
        cJSON_AddNumberToObject(data, "gpus_per_worker", (double)job->gpus_per_worker);
        if (job->has_progress)
            cJSON_AddNumberToObject(data, "progress", job->progress);
        if (job->priority != NULL)
            cJSON_AddStringToObject(data, "priority", job->priority);
        text = cJSON_PrintUnformatted(data);
        cJSON_Delete(data);
    }
    struct swp_event ev = {
        .size = sizeof(ev),
        .type = event_types[job->state],
        .market_id = NULL,
        .reason = reason,
        .data_json = text,
    };
    jh->host->emit_event(jh->host, &ev);
    free(text);
}

/* One event per job whose state differs from the previous list (reason: the state it left,
 * or "new"). */
static void emit_changes(struct jobs_http *jh, const struct job *old, size_t old_count, bool first)
{
    for (size_t i = 0; i < jh->job_count; i++) {
        const struct job *job = &jh->jobs[i];
        const struct job *before = job_find(old, old_count, job->id);
        if (before != NULL && before->state == job->state)
            continue;
        if (before == NULL && first && (job->state == JOB_DONE || job->state == JOB_FAILED))
            continue;
        jh->host->log(jh->host, SWP_LOG_INFO, "job %s: %s -> %s (%lld workers x %lld GPUs)",
                      job->id, before ? state_names[before->state] : "new",
                      state_names[job->state], (long long)job->workers,
                      (long long)job->gpus_per_worker);
        emit_job_event(jh, job, before ? state_names[before->state] : "new");
    }
}

/* ---- polling ----------------------------------------------------------------------- */

static void poll_failed(struct jobs_http *jh, const char *why)
{
    jh->failures++;
    snprintf(jh->last_error, sizeof(jh->last_error), "%s", why);
    if (jh->failures == 1 || jh->failures % JH_WARN_EVERY == 1)
        jh->host->log(jh->host, SWP_LOG_WARN, "poll of %s failed (%u in a row): %s", jh->url,
                      jh->failures, why);
}

/* Parses a reply into a new list; false with why on a reply that is not a job list. Jobs
 * that cannot be read are skipped (and reported), so one bad entry does not hide the rest. */
static bool parse_reply(struct jobs_http *jh, const char *body, size_t len, struct job **out,
                        size_t *out_count, char *why, size_t why_len)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (root == NULL) {
        snprintf(why, why_len, "reply is not JSON (%zu bytes)", len);
        return false;
    }
    const cJSON *list = pointer_get(root, jh->jobs_ptr);
    if (!cJSON_IsArray(list)) {
        snprintf(why, why_len, "jobs_pointer \"%s\" is %s in the reply, expected an array",
                 jh->jobs_ptr, json_kind(list));
        cJSON_Delete(root);
        return false;
    }
    int size = cJSON_GetArraySize(list);
    if (size > JH_MAX_JOBS) {
        snprintf(why, why_len, "%d jobs in the reply, more than %d", size, JH_MAX_JOBS);
        cJSON_Delete(root);
        return false;
    }
    struct job *jobs = swp_xcalloc((size_t)size, sizeof(*jobs));
    size_t count = 0, skipped = 0;
    char first_skip[160] = "";
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        struct job job;
        char reason[160];
        bool ok = job_read(jh, item, &job, reason, sizeof(reason));
        if (ok && job_find(jobs, count, job.id) != NULL) {
            snprintf(reason, sizeof(reason), "job %.40s listed twice (the first one counts)",
                     job.id);
            ok = false;
        }
        if (!ok) {
            if (skipped++ == 0)
                snprintf(first_skip, sizeof(first_skip), "%s", reason);
            free(job.id);
            free(job.priority);
            continue;
        }
        jobs[count++] = job;
    }
    cJSON_Delete(root);
    char summary[200] = "";
    if (skipped > 0)
        snprintf(summary, sizeof(summary), "%zu skipped: %s", skipped, first_skip);
    if (strcmp(summary, jh->last_skipped) != 0 && skipped > 0)
        jh->host->log(jh->host, SWP_LOG_WARN, "job list from %s: %s", jh->url, summary);
    snprintf(jh->last_skipped, sizeof(jh->last_skipped), "%s", summary);
    *out = jobs;
    *out_count = count;
    return true;
}

static const char *transport_error(int status)
{
    switch (status) {
    case SWP_ETIMEDOUT:
        return "timed out";
    case SWP_ETOOBIG:
        return "reply larger than 4 MiB";
    case SWP_EHTTP:
        return "connection failed";
    default:
        return "transport error";
    }
}

static void on_reply(void *ud, int status, const struct swp_http_resp *resp)
{
    struct jobs_http *jh = ud;
    jh->in_flight = false;
    jh->request = 0;
    if (status == SWP_ECANCELED)
        return;
    char why[200];
    if (status < 0 || resp == NULL) {
        snprintf(why, sizeof(why), "%s (%d)", transport_error(status), status);
        poll_failed(jh, why);
        return;
    }
    if (resp->status < 200 || resp->status > 299) {
        snprintf(why, sizeof(why), "HTTP %ld", resp->status);
        poll_failed(jh, why);
        return;
    }
    struct job *jobs = NULL;
    size_t count = 0;
    if (!parse_reply(jh, resp->body ? resp->body : "", resp->body_len, &jobs, &count, why,
                     sizeof(why))) {
        poll_failed(jh, why);
        return;
    }
    if (jh->failures > 0)
        jh->host->log(jh->host, SWP_LOG_INFO, "%s answers again after %u failed polls", jh->url,
                      jh->failures);
    jh->failures = 0;
    jh->last_error[0] = '\0';
    struct job *old = jh->jobs;
    size_t old_count = jh->job_count;
    bool first = !jh->have_list;
    jh->jobs = jobs;
    jh->job_count = count;
    jh->have_list = true;
    jh->list_at_ms = jh->host->now_ms(jh->host);
    if (first)
        jh->host->log(jh->host, SWP_LOG_INFO, "first job list from %s: %zu jobs", jh->url, count);
    emit_changes(jh, old, old_count, first);
    jobs_free(old, old_count);
}

static void poll_kv(struct jobs_http *jh)
{
    char *value = NULL;
    int rc = jh->host->kv_get(jh->host, jh->reply_kv, &value);
    if (rc < 0 || value == NULL) {
        poll_failed(jh, rc == SWP_ENOENT ? "no reply published yet" : "key-value read failed");
        return;
    }
    struct swp_http_resp resp = {.status = 200, .body = value, .body_len = strlen(value)};
    jh->in_flight = true;
    on_reply(jh, 0, &resp);
    jh->host->free(value);
}

static void poll_tick(void *ud)
{
    struct jobs_http *jh = ud;
    /* Fixed cadence from the start of each poll: a job start is seen within one interval
     * however long the master takes to answer. A poll still in flight skips a turn. */
    jh->timer = jh->host->timer_start(jh->host, jh->poll_ms, poll_tick, jh);
    if (jh->in_flight)
        return;
    if (jh->reply_kv != NULL) {
        poll_kv(jh);
        return;
    }
    const char *headers[2];
    size_t header_count = 0;
    headers[header_count++] = "Accept: application/json";
    if (jh->auth_header != NULL)
        headers[header_count++] = jh->auth_header;
    struct swp_http_req req = {
        .size = sizeof(req),
        .method = "GET",
        .url = jh->url,
        .headers = headers,
        .header_count = header_count,
        .timeout_ms = jh->timeout_ms,
        .max_response_bytes = JH_MAX_REPLY_BYTES,
    };
    jh->in_flight = true;
    uint64_t id = jh->host->http_request(jh->host, &req, on_reply, jh);
    if (id == 0) {
        jh->in_flight = false;
        poll_failed(jh, "the host refused the HTTP request (no network in simulation)");
        return;
    }
    /* The callback may already have run (and cleared in_flight). */
    if (jh->in_flight)
        jh->request = id;
}

/* ---- queries ----------------------------------------------------------------------- */

static int jh_query(void *state, const char *query, swp_samples_cb done, void *ud)
{
    struct jobs_http *jh = state;
    if (query == NULL || done == NULL)
        return SWP_EINVAL;
    struct swp_error err;
    int which;
    if (strcmp(query, "jobs") == 0) {
        which = 0;
    } else if (strcmp(query, "jobs_gpus") == 0) {
        which = 1;
    } else if (strcmp(query, "jobs_progress") == 0) {
        which = 2;
    } else {
        swp_set_error(&err, SWP_EINVAL,
                      "jobs_http: unknown query '%.60s' (known: jobs, jobs_gpus, jobs_progress)",
                      query);
        done(ud, SWP_EINVAL, NULL, 0, &err);
        return 0;
    }
    if (!jh->have_list) {
        swp_set_error(&err, SWP_EAGAIN, "no job list from %.80s yet (%s)", jh->url,
                      jh->last_error[0] ? jh->last_error : "first poll pending");
        done(ud, SWP_EAGAIN, NULL, 0, &err);
        return 0;
    }
    int64_t age = jh->host->now_ms(jh->host) - jh->list_at_ms;
    if (jh->stale_ms > 0 && age > jh->stale_ms) {
        swp_set_error(&err, SWP_ETIMEDOUT, "job list from %.80s is %llds old (last poll: %s)",
                      jh->url, (long long)(age / 1000),
                      jh->last_error[0] ? jh->last_error : "none since");
        done(ud, SWP_ETIMEDOUT, NULL, 0, &err);
        return 0;
    }
    struct swp_sample *samples = swp_xcalloc(jh->job_count, sizeof(*samples));
    const char **values = swp_xcalloc(jh->job_count * 3, sizeof(*values));
    size_t n = 0;
    for (size_t i = 0; i < jh->job_count; i++) {
        const struct job *job = &jh->jobs[i];
        if (which == 2 && !job->has_progress)
            continue;
        const char **v = &values[n * 3];
        v[0] = job->id;
        v[1] = state_names[job->state];
        v[2] = job->priority;
        double value = which == 0   ? (double)job->workers
                       : which == 1 ? (double)job->workers * (double)job->gpus_per_worker
                                    : job->progress;
        samples[n++] = (struct swp_sample){
            .label_names = label_names,
            .label_values = v,
            .label_count = job->priority != NULL ? 3 : 2,
            .value = value,
        };
    }
    done(ud, 0, samples, n, NULL);
    free(values);
    free(samples);
    return 0;
}

/* ---- lifecycle ----------------------------------------------------------------------- */

static void jh_free(struct jobs_http *jh)
{
    jobs_free(jh->jobs, jh->job_count);
    cJSON_Delete(jh->state_map);
    free(jh->auth_header);
    free(jh->kv_name);
    free(jh);
}

static int load_state_map(struct jobs_http *jh, const char *json, struct swp_error *err)
{
    if (json == NULL)
        return 0;
    jh->state_map = cJSON_Parse(json);
    if (!cJSON_IsObject(jh->state_map)) {
        swp_set_error(err, SWP_ECONFIG,
                      "state_map: expected an object {\"MASTER_STATE\": "
                      "\"queued|running|done|failed\"}");
        return SWP_ECONFIG;
    }
    const cJSON *entry;
    cJSON_ArrayForEach(entry, jh->state_map)
    {
        bool ok = false;
        for (size_t i = 0; cJSON_IsString(entry) && i < 4; i++)
            ok = ok || strcmp(entry->valuestring, state_names[i]) == 0;
        if (!ok) {
            swp_set_error(
                err, SWP_ECONFIG,
                "state_map.%.60s: expected \"queued\", \"running\", \"done\" or \"failed\"",
                entry->string);
            return SWP_ECONFIG;
        }
    }
    return 0;
}

static int jh_init(const struct swp_host *host, void **state, struct swp_error *err)
{
    struct jobs_http *jh = swp_xcalloc(1, sizeof(*jh));
    jh->host = host;
    jh->url = host->cfg_str(host, "url");
    jh->reply_kv = host->cfg_str(host, "reply_kv");
    if (jh->reply_kv != NULL && jh->url == NULL) {
        if (jh->reply_kv[0] == '\0') {
            swp_set_error(err, SWP_ECONFIG, "reply_kv: expected a key name");
            goto fail;
        }
        size_t len = strlen(jh->reply_kv) + 4;
        jh->kv_name = swp_xcalloc(1, len);
        snprintf(jh->kv_name, len, "kv:%s", jh->reply_kv);
        jh->url = jh->kv_name;
    } else if (jh->reply_kv != NULL) {
        swp_set_error(err, SWP_ECONFIG, "reply_kv: set either url or reply_kv, not both");
        goto fail;
    } else if (jh->url == NULL ||
               (strncmp(jh->url, "http://", 7) != 0 && strncmp(jh->url, "https://", 8) != 0)) {
        swp_set_error(err, SWP_ECONFIG, "url: expected an http:// or https:// URL");
        goto fail;
    }
    int64_t poll = host->cfg_int(host, "poll_interval");
    int64_t timeout = host->cfg_int(host, "timeout");
    jh->stale_ms = host->cfg_int(host, "stale_after");
    jh->default_gpus = host->cfg_int(host, "default_gpus_per_worker");
    if (poll < 100) {
        swp_set_error(err, SWP_ECONFIG, "poll_interval: expected a duration >= 100ms");
        goto fail;
    }
    if (timeout < 1 || timeout > 600000) {
        swp_set_error(err, SWP_ECONFIG, "timeout: expected a duration from 1ms to 10m");
        goto fail;
    }
    if (jh->stale_ms < 0) {
        swp_set_error(err, SWP_ECONFIG, "stale_after: expected a duration >= 0");
        goto fail;
    }
    if (jh->default_gpus < 0 || jh->default_gpus > 1024) {
        swp_set_error(err, SWP_ECONFIG, "default_gpus_per_worker: expected an integer 0..1024");
        goto fail;
    }
    jh->poll_ms = (uint64_t)poll;
    jh->timeout_ms = (uint32_t)timeout;
    static const struct {
        const char *key;
        size_t offset;
    } pointers[] = {
        {"jobs_pointer", offsetof(struct jobs_http, jobs_ptr)},
        {"id_pointer", offsetof(struct jobs_http, id_ptr)},
        {"state_pointer", offsetof(struct jobs_http, state_ptr)},
        {"workers_pointer", offsetof(struct jobs_http, workers_ptr)},
        {"gpus_pointer", offsetof(struct jobs_http, gpus_ptr)},
        {"progress_pointer", offsetof(struct jobs_http, progress_ptr)},
        {"priority_pointer", offsetof(struct jobs_http, priority_ptr)},
    };
    for (size_t i = 0; i < sizeof(pointers) / sizeof(pointers[0]); i++) {
        const char *ptr = host->cfg_str(host, pointers[i].key);
        if (!pointer_valid(ptr)) {
            swp_set_error(err, SWP_ECONFIG,
                          "%s: expected a JSON pointer (\"\" or \"/key/0/...\", ~0 for '~' and ~1 "
                          "for '/')",
                          pointers[i].key);
            goto fail;
        }
        *(const char **)((char *)jh + pointers[i].offset) = ptr;
    }
    if (load_state_map(jh, host->cfg_json(host, "state_map"), err) < 0)
        goto fail;
    const char *token = host->cfg_str(host, "bearer_token_env");
    if (token != NULL) {
        size_t len = strlen(token) + 32;
        jh->auth_header = swp_xcalloc(1, len);
        snprintf(jh->auth_header, len, "Authorization: Bearer %s", token);
    }
    jh->timer = host->timer_start(host, 0, poll_tick, jh);
    if (jh->timer == 0) {
        swp_set_error(err, SWP_EIO, "the host could not start the poll timer");
        goto fail;
    }
    char every[32];
    snprintf(every, sizeof(every), "%llu ms", (unsigned long long)jh->poll_ms);
    host->log(host, SWP_LOG_INFO, "polling %s every %s for jobs at \"%s\"%s", jh->url, every,
              jh->jobs_ptr, jh->auth_header ? " (bearer token)" : "");
    *state = jh;
    return 0;
fail:
    if (err != NULL && err->code == 0)
        err->code = SWP_ECONFIG;
    jh_free(jh);
    return err != NULL ? err->code : SWP_ECONFIG;
}

static void jh_destroy(void *state)
{
    struct jobs_http *jh = state;
    if (jh == NULL)
        return;
    if (jh->timer != 0)
        jh->host->timer_stop(jh->host, jh->timer);
    /* The host cancels requests before destroy; this covers a host that does not. */
    if (jh->in_flight && jh->request != 0)
        jh->host->http_cancel(jh->host, jh->request);
    jh_free(jh);
}

static const struct swp_config_entry jh_config[] = {
    {"url", SWP_CFG_STRING, NULL, false,
     "The master's job status endpoint, e.g. \"http://master:8080/api/jobs\" (required "
     "unless reply_kv is set)."},
    {"poll_interval", SWP_CFG_DURATION, "\"5s\"", false,
     "How often to poll: a job start reaches the policy within one interval."},
    {"timeout", SWP_CFG_DURATION, "\"3s\"", false, "Per-request timeout."},
    {"bearer_token_env", SWP_CFG_SECRET_ENV, NULL, false,
     "Environment variable holding a bearer token sent as \"Authorization: Bearer ...\"."},
    {"jobs_pointer", SWP_CFG_STRING, "\"/jobs\"", false,
     "JSON pointer to the array of jobs in the reply (\"\" when the reply is the array)."},
    {"id_pointer", SWP_CFG_STRING, "\"/id\"", false,
     "JSON pointer, within one job, to its id (string or number)."},
    {"state_pointer", SWP_CFG_STRING, "\"/state\"", false,
     "JSON pointer, within one job, to its state: queued, running, done or failed (common "
     "synonyms such as pending, succeeded, cancelled are understood; see state_map)."},
    {"workers_pointer", SWP_CFG_STRING, "\"/workers\"", false,
     "JSON pointer, within one job, to its worker count (absent: 0)."},
    {"gpus_pointer", SWP_CFG_STRING, "\"/gpus_per_worker\"", false,
     "JSON pointer, within one job, to its GPUs per worker (absent: default_gpus_per_worker)."},
    {"progress_pointer", SWP_CFG_STRING, "\"/progress\"", false,
     "JSON pointer, within one job, to its progress (optional number)."},
    {"priority_pointer", SWP_CFG_STRING, "\"/priority\"", false,
     "JSON pointer, within one job, to its priority (optional; becomes the label priority)."},
    {"state_map", SWP_CFG_OBJECT, NULL, false,
     "The master's own state names mapped to queued|running|done|failed, e.g. "
     "{\"PROVISIONING\": \"queued\"}."},
    {"default_gpus_per_worker", SWP_CFG_INT, "1", false,
     "GPUs per worker for jobs that do not say."},
    {"stale_after", SWP_CFG_DURATION, "\"1m\"", false,
     "Queries fail once the last good poll is older than this (0: never)."},
    {"reply_kv", SWP_CFG_STRING, NULL, false,
     "Read each poll's reply from this key of the plugin's key-value space instead of "
     "GETting url: how `steward simulate` serves its job model (docs/simulation.md)."},
};

static const struct swp_metrics_ops jh_metrics_ops = {
    .size = sizeof(struct swp_metrics_ops),
    .query = jh_query,
};

static const struct swp_plugin jh_plugin = {
    .abi_major = SWP_ABI_MAJOR,
    .abi_minor = SWP_ABI_MINOR,
    .size = sizeof(struct swp_plugin),
    .name = "jobs_http",
    .version = "1.0.0",
    .description = "Jobs of an ML training master polled over HTTP (queries jobs, jobs_gpus, "
                   "jobs_progress; job_started/job_done/job_failed/job_queued events)",
    .kinds = SWP_KIND_METRICS,
    .config = jh_config,
    .config_count = sizeof(jh_config) / sizeof(jh_config[0]),
    .init = jh_init,
    .destroy = jh_destroy,
    .metrics = &jh_metrics_ops,
};

SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void)
{
    return &jh_plugin;
}
