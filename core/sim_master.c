/* sim_master — see sim_master.h. The reply has jobs_http's default shape:
 *
 *   {"jobs": [{"id": "job-12", "state": "running", "workers": 4, "gpus_per_worker": 1}]}
 *
 * Job ids are "job-<row>", the job's 1-based row in the jobs trace (sw_jobs_load keeps the
 * file's order), so an id names the same job in every run of the same trace. */
#include "sim_master.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "error.h"
#include "journal.h"
#include "log.h"
#include "mem.h"
#include "sim.h"
#include "trace.h"

#define LOG "sim"
/* How long a done job stays listed: a master keeps history, and a poll that missed the
 * change still reads "done" rather than a job that vanished. */
#define DONE_LISTED_MS (3600 * 1000)

struct sw_sim_master {
    const struct sw_job *jobs;
    size_t count;
    uint32_t *seen; /* per job: the publish round that last saw it submitted and not done */
    uint32_t round;
    bool started;
    size_t scanned; /* jobs below this index were submitted (or are before the window) */
    size_t *active; /* this round's submitted, not completed jobs */
    size_t active_len;
    size_t *previous; /* the previous round's */
    size_t previous_len;
    size_t *done;     /* completed jobs still listed, in completion order */
    int64_t *done_at; /* per job */
    size_t done_len;
    char *buf;
    size_t buf_len, buf_cap;
    char *last; /* the reply last written */
};

bool sw_sim_master_configure(struct sw_config *config)
{
    for (size_t i = 0; i < config->plugin_count; i++) {
        struct sw_plugin_config *p = &config->plugins[i];
        if (p->name == NULL || strcmp(p->name, SW_SIM_MASTER_PLUGIN) != 0)
            continue;
        cJSON *root = cJSON_Parse(p->config_json ? p->config_json : "{}");
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            root = cJSON_CreateObject();
        }
        cJSON_DeleteItemFromObjectCaseSensitive(root, "url");
        cJSON_DeleteItemFromObjectCaseSensitive(root, "reply_kv");
        cJSON_DeleteItemFromObjectCaseSensitive(root, "bearer_token_env");
        cJSON_AddStringToObject(root, "reply_kv", SW_SIM_MASTER_KEY);
        char *text = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        free(p->config_json);
        p->config_json = sw_xstrdup(text);
        cJSON_free(text);
        sw_log(SW_LOG_INFO, LOG, "%s reads the simulated master (the jobs trace)",
               SW_SIM_MASTER_PLUGIN);
        return true;
    }
    return false;
}

struct sw_sim_master *sw_sim_master_new(const struct sw_job *jobs, size_t count)
{
    struct sw_sim_master *m = sw_xcalloc(1, sizeof(*m));
    size_t n = count ? count : 1;
    m->jobs = jobs;
    m->count = count;
    m->seen = sw_xcalloc(n, sizeof(*m->seen));
    m->active = sw_xcalloc(n, sizeof(size_t));
    m->previous = sw_xcalloc(n, sizeof(size_t));
    m->done = sw_xcalloc(n, sizeof(size_t));
    m->done_at = sw_xcalloc(n, sizeof(int64_t));
    return m;
}

void sw_sim_master_free(struct sw_sim_master *m)
{
    if (m == NULL)
        return;
    free(m->seen);
    free(m->active);
    free(m->previous);
    free(m->done);
    free(m->done_at);
    free(m->buf);
    free(m->last);
    free(m);
}

static void collect(void *ud, size_t job, int64_t started_ms)
{
    (void)started_ms;
    struct sw_sim_master *m = ud;
    if (job >= m->count || m->seen[job] == m->round)
        return;
    m->seen[job] = m->round;
    m->active[m->active_len++] = job;
}

static int by_index(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static void mark_done(struct sw_sim_master *m, size_t job, int64_t now_ms)
{
    m->done_at[job] = now_ms;
    m->done[m->done_len++] = job;
}

static void put(struct sw_sim_master *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(struct sw_sim_master *m, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(m->buf + m->buf_len, m->buf_cap - m->buf_len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < m->buf_cap - m->buf_len) {
            m->buf_len += (size_t)n;
            return;
        }
        m->buf_cap = m->buf_cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        m->buf = sw_xrealloc(m->buf, m->buf_cap);
    }
}

static void put_job(struct sw_sim_master *m, size_t job, const char *state, bool *first)
{
    const struct sw_job *j = &m->jobs[job];
    put(m, "%s{\"id\":\"job-%zu\",\"state\":\"%s\",\"workers\":%d,\"gpus_per_worker\":%d}",
        *first ? "" : ",", job + 1, state, j->workers, j->gpus_per_worker);
    *first = false;
}

int sw_sim_master_publish(struct sw_sim_master *m, const struct sw_jobsim *js, int64_t now_ms,
                          struct sw_journal *journal)
{
    m->round++;
    size_t *swap = m->previous;
    m->previous = m->active;
    m->previous_len = m->active_len;
    m->active = swap;
    m->active_len = 0;
    size_t submitted = sw_jobsim_active(js, collect, m);
    if (submitted > m->count)
        submitted = m->count;
    if (!m->started) {
        /* Jobs submitted before the window are outside the simulation. */
        m->started = true;
        m->scanned = submitted;
    }
    /* Completed since the last round: listed then, or submitted and finished in between. */
    for (size_t i = 0; i < m->previous_len; i++)
        if (m->seen[m->previous[i]] != m->round)
            mark_done(m, m->previous[i], now_ms);
    for (; m->scanned < submitted; m->scanned++)
        if (m->seen[m->scanned] != m->round)
            mark_done(m, m->scanned, now_ms);
    size_t kept = 0;
    for (size_t i = 0; i < m->done_len; i++)
        if (now_ms - m->done_at[m->done[i]] < DONE_LISTED_MS)
            m->done[kept++] = m->done[i];
    m->done_len = kept;
    qsort(m->active, m->active_len, sizeof(size_t), by_index);

    m->buf_len = 0;
    put(m, "{\"jobs\":[");
    bool first = true;
    for (size_t i = 0; i < m->done_len; i++)
        put_job(m, m->done[i], "done", &first);
    for (size_t i = 0; i < m->active_len; i++)
        put_job(m, m->active[i], "running", &first);
    put(m, "]}");
    if (m->last != NULL && strcmp(m->last, m->buf) == 0)
        return 0;
    free(m->last);
    m->last = sw_xstrdup(m->buf);
    int rc = sw_journal_kv_set(journal, SW_SIM_MASTER_PLUGIN, SW_SIM_MASTER_KEY, m->buf);
    if (rc < 0)
        sw_log(SW_LOG_ERROR, LOG, "cannot publish the simulated master's job list: %s",
               sw_strerror(rc));
    return rc;
}
