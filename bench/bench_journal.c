/* bench_journal.c — journal throughput on a real file in /tmp.
 *
 * journal.eval_record: evaluation records with realistic JSON (~300 bytes each of inputs,
 * desired and actions), committed every 100 records (the runtime flushes per tick batch)
 * and every 1,000. Target: >= 20,000 records/s.
 * journal.intent: begin+finish pairs, each a durable commit (WAL, synchronous=NORMAL).
 *
 * Usage: bench_journal [records] [intent_pairs]   (defaults 200000 and 5000)
 *
 * history mode: journal growth and recording cost of evaluations shaped as the runtime
 * writes them (core/runtime.c inputs_to_json: now_ms, the open units, the offers, metrics
 * that change every tick). The units and offers change every `change` ticks (a unit changes
 * state, an offer its price); at the usual 10 s interval 6 ticks is one change a minute.
 *   bench_journal --history UNITS [--ticks N] [--change K] [--mode split|inline|both]
 * split: the runtime's path (units and offers stored once per distinct content); inline:
 * the inputs whole in the row, as before schema 3. Prints bytes per row, growth per day at
 * one evaluation every 10 s, and CPU time per recorded evaluation (eval_record plus the
 * per-tick flush), then the time of one retention batch over a day of backlog.
 * Monotonic wall time here only measures the benchmark; nothing in steward reads it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "json_writer.h"
#include "log.h"

#define TARGET_RECORDS_PER_S 20000.0

struct bench_dir {
    char dir[64];
    char path[128];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A scratch directory for the bench's journal (d->path inside it); -1 after a message. */
static int bench_dir_make(struct bench_dir *d)
{
    snprintf(d->dir, sizeof(d->dir), "/tmp/sw_bench_journal_XXXXXX");
    if (mkdtemp(d->dir) == NULL) {
        perror("bench_journal: mkdtemp");
        return -1;
    }
    snprintf(d->path, sizeof(d->path), "%s/steward.db", d->dir);
    return 0;
}

static void remove_db(const struct bench_dir *d)
{
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char file[160];
        snprintf(file, sizeof(file), "%s%s", d->path, suffixes[i]);
        unlink(file);
    }
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

static struct sw_journal *open_or_die(const char *path)
{
    struct sw_error err = {0};
    struct sw_journal *j = sw_journal_open(path, &err);
    if (j == NULL) {
        fprintf(stderr, "bench_journal: %s\n", err.msg);
        exit(1);
    }
    return j;
}

/* Fills the three ~300-byte documents of record i; they change with i, as live ones do. */
static void make_record(long i, char *inputs, char *desired, char *actions, size_t cap)
{
    snprintf(inputs, cap,
             "{\"metrics\":{\"rps\":{\"value\":%ld.5,\"at_ms\":%ld},\"p95_ms\":{\"value\":%ld,"
             "\"at_ms\":%ld},\"queue_depth\":{\"value\":%ld,\"at_ms\":%ld}},\"units\":{\"web\":"
             "{\"eu-west\":{\"ready\":3,\"pending\":1},\"us-east\":{\"ready\":2,\"pending\":0}}},"
             "\"offers\":{\"eu-west\":0.41,\"us-east\":0.38},\"budget_usd_hour\":12.5}",
             1000 + i % 977, 1700000000000 + i * 1000, 40 + i % 61, 1700000000000 + i * 1000,
             i % 313, 1700000000000 + i * 1000);
    snprintf(desired, cap,
             "{\"web\":{\"eu-west\":%ld,\"us-east\":%ld,\"ap-south\":%ld},\"api\":{\"eu-west\":"
             "%ld,\"us-east\":%ld},\"batch\":{\"eu-west\":%ld},\"hints\":{\"max_price_usd_hour\""
             ":0.55,\"preferred_providers\":[\"akash1provideraaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
             "\"akash1providerbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"],\"note\":\"tick %ld\"}}",
             3 + i % 4, 2 + i % 3, i % 2, 2 + i % 2, 1 + i % 3, i % 5, i);
    snprintf(actions, cap,
             "[{\"kind\":\"acquire\",\"group\":\"web\",\"region\":\"eu-west\",\"unit\":"
             "\"acq-%ld-0\",\"price_usd_hour\":0.41,\"reason\":\"desired 4 > capacity 3\"},"
             "{\"kind\":\"release\",\"group\":\"batch\",\"region\":\"eu-west\",\"unit\":"
             "\"acq-%ld-1\",\"price_usd_hour\":0.52,\"reason\":\"desired 0 < capacity 1\"}]",
             i, i - 7);
}

static double bench_evals(const struct bench_dir *d, long records, long batch)
{
    remove_db(d);
    struct sw_journal *j = open_or_die(d->path);
    char inputs[512], desired[512], actions[512], digest[24];
    struct sw_error err = {0};
    double start = now_s();
    for (long i = 0; i < records; i++) {
        make_record(i, inputs, desired, actions, sizeof(inputs));
        snprintf(digest, sizeof(digest), "%016lx", (unsigned long)i * 2654435761u);
        struct sw_evaluation ev = {
            .policy = i % 4 == 0 ? "batch" : "autoscale",
            .at_ms = 1700000000000 + i * 250,
            .inputs_digest = digest,
            .inputs_json = inputs,
            .desired_json = desired,
            .actions_json = actions,
            .refused_json = "[]",
            .explain_json = "[\"rps above target for 3 ticks\"]",
            .error = NULL,
            .duration_ms = 0.8,
        };
        if (sw_journal_eval_record(j, &ev, &err) < 0 ||
            ((i + 1) % batch == 0 && sw_journal_flush(j, &err) < 0)) {
            fprintf(stderr, "bench_journal: %s\n", err.msg);
            exit(1);
        }
    }
    if (sw_journal_flush(j, &err) < 0) {
        fprintf(stderr, "bench_journal: %s\n", err.msg);
        exit(1);
    }
    double elapsed = now_s() - start;
    long long bytes = file_size(d->path);
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", d->path);
    bytes += file_size(wal);
    if (sw_journal_eval_count(j) != records) {
        fprintf(stderr, "bench_journal: expected %ld records in the journal\n", records);
        exit(1);
    }
    sw_journal_close(j);
    double rate = (double)records / elapsed;
    printf("journal.eval_record: %.0f records/s (batch %ld; %ld records in %.2f s, "
           "%.0f bytes/record on disk)\n",
           rate, batch, records, elapsed, (double)bytes / (double)records);
    return rate;
}

static void bench_intents(const struct bench_dir *d, long pairs)
{
    remove_db(d);
    struct sw_journal *j = open_or_die(d->path);
    struct sw_error err = {0};
    char key[48];
    double start = now_s();
    for (long i = 0; i < pairs; i++) {
        snprintf(key, sizeof(key), "acq-%ld", i);
        if (sw_journal_intent_begin(j, 1, key, "web", "eu-west", NULL, "desired 4 > capacity 3",
                                    1700000000000 + i, NULL, &err) < 0 ||
            sw_journal_intent_finish(j, key, SW_INTENT_DONE, "leased", 1700000000000 + i, &err) <
                0) {
            fprintf(stderr, "bench_journal: %s\n", err.msg);
            exit(1);
        }
    }
    double elapsed = now_s() - start;
    sw_journal_close(j);
    printf("journal.intent: %.0f intents/s (begin+finish pairs, 2 durable commits each; "
           "%ld pairs in %.2f s, %.1f us/commit)\n",
           (double)pairs / elapsed, pairs, elapsed, elapsed * 1e6 / (double)(2 * pairs));
}

/* ---- history mode ---------------------------------------------------------------------- */

#define TICK_MS 10000
#define TICKS_PER_DAY (86400000 / TICK_MS)
#define T0_MS 1763800000000LL
#define HISTORY_BATCH 16 /* as core/runtime.c */

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Inputs as inputs_to_json writes them; version picks the units' and offers' content. */
static char *history_inputs(int units, long tick, long version, size_t *shared_at,
                            size_t *shared_len)
{
    static const char *const regions[] = {"eu-west", "eu-central", "na-us-east", "na-us-west",
                                          "as-east", "oc-aus"};
    struct sw_jw w;
    sw_jw_init(&w);
    sw_jw_open(&w, NULL, '{');
    sw_jw_number(&w, "now_ms", (double)(T0_MS + tick * TICK_MS));
    *shared_at = w.len;
    sw_jw_open(&w, "units", '[');
    char text[96];
    for (int i = 0; i < units; i++) {
        sw_jw_open(&w, NULL, '{');
        snprintf(text, sizeof(text), "acq-%06d", i);
        sw_jw_string(&w, "key", text);
        snprintf(text, sizeof(text), "%d/1/1", 18000000 + i);
        sw_jw_string(&w, "market_id", text);
        sw_jw_string(&w, "group", "web");
        sw_jw_string(&w, "region", regions[i % 6]);
        snprintf(text, sizeof(text), "akash1provider%02dq8v7x0d5l3zk9n4m2j6h8g5f3s1a", i % 40);
        sw_jw_string(&w, "provider", text);
        sw_jw_number(&w, "price_usd_hour", 0.11 + (double)(i % 9) / 100);
        /* one unit's state moves with the version: the content changes */
        sw_jw_string(&w, "state", i == (int)(version % units) ? "pending" : "ready");
        sw_jw_bool(&w, "unhealthy", false);
        /* and unit 0's order time: every version is a distinct content */
        sw_jw_number(&w, "ordered_ms",
                     (double)(T0_MS - 3600000 + i * 1000 + (i == 0 ? version : 0)));
        sw_jw_close(&w, '}');
    }
    sw_jw_close(&w, ']');
    sw_jw_open(&w, "offers", '[');
    int offers = 10 + units / 50;
    for (int i = 0; i < offers; i++) {
        sw_jw_open(&w, NULL, '{');
        snprintf(text, sizeof(text), "akash1provider%02dq8v7x0d5l3zk9n4m2j6h8g5f3s1a", i % 40);
        sw_jw_string(&w, "provider", text);
        sw_jw_string(&w, "region", regions[i % 6]);
        sw_jw_number(&w, "price_usd_hour", 0.1 + (double)((i + version) % 13) / 100);
        sw_jw_bool(&w, "audited", i % 3 != 0);
        sw_jw_close(&w, '}');
    }
    sw_jw_close(&w, ']');
    *shared_len = w.len - *shared_at;
    sw_jw_open(&w, "metrics", '{');
    sw_jw_open(&w, "rps", '{');
    sw_jw_number(&w, "at_ms", (double)(T0_MS + tick * TICK_MS - 2000));
    sw_jw_open(&w, "samples", '[');
    for (int r = 0; r < 6; r++) {
        sw_jw_open(&w, NULL, '{');
        sw_jw_open(&w, "labels", '{');
        sw_jw_string(&w, "region", regions[r]);
        sw_jw_close(&w, '}');
        sw_jw_number(&w, "value", 100.0 + (double)((tick * 7919 + r * 131) % 4000) / 10.0);
        sw_jw_close(&w, '}');
    }
    sw_jw_close(&w, ']');
    sw_jw_close(&w, '}');
    sw_jw_close(&w, '}');
    sw_jw_number(&w, "budget_usd_hour", 250);
    sw_jw_number(&w, "spend_usd_hour", 0.13 * units);
    sw_jw_close(&w, '}');
    return sw_jw_take(&w);
}

static void history_run(const struct bench_dir *d, int units, long ticks, long change, bool split)
{
    remove_db(d);
    struct sw_journal *j = open_or_die(d->path);
    struct sw_error err = {0};
    char desired[160];
    double inputs_bytes = 0, cpu = 0;
    for (long tick = 0; tick < ticks; tick++) {
        size_t at = 0, len = 0;
        char *inputs = history_inputs(units, tick, tick / change, &at, &len);
        inputs_bytes += (double)strlen(inputs);
        snprintf(desired, sizeof(desired),
                 "{\"policy\":{\"web\":{\"eu-west\":%d}},\"effective\":{\"web\":"
                 "{\"eu-west\":%d}}}",
                 units, units);
        struct sw_evaluation ev = {
            .policy = "follow-demand",
            .at_ms = T0_MS + tick * TICK_MS,
            .inputs_digest = "0123456789abcdef",
            .inputs_json = inputs,
            .desired_json = desired,
            .actions_json = "[]",
            .refused_json = "[]",
            .explain_json = "[{\"group\":\"web\",\"text\":\"demand steady\"}]",
            .duration_ms = 0.4,
            .inputs_shared_at = split ? at : 0,
            .inputs_shared_len = split ? len : 0,
        };
        double started = cpu_s();
        if (sw_journal_eval_record(j, &ev, &err) < 0 || sw_journal_flush(j, &err) < 0) {
            fprintf(stderr, "bench_journal: %s\n", err.msg);
            exit(1);
        }
        cpu += cpu_s() - started;
        free(inputs);
    }
    sw_journal_close(j); /* checkpoints the WAL into the file */
    long long bytes = file_size(d->path);
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", d->path);
    bytes += file_size(wal);
    double per_row = (double)bytes / (double)ticks;
    printf("journal.history %s: %d units, content changes every %ld ticks: inputs %.1f KB, "
           "%.0f bytes/row on disk, %.1f MB/day at one evaluation per 10 s, %.1f us CPU per "
           "recorded evaluation (eval_record + flush; %ld ticks)\n",
           split ? "split " : "inline", units, change, inputs_bytes / (double)ticks / 1000.0,
           per_row, per_row * TICKS_PER_DAY / 1e6, cpu * 1e6 / (double)ticks, ticks);

    /* Retention: one batch of the runtime's size over this journal when all of it is old. */
    j = open_or_die(d->path);
    bool more = false;
    double started = now_s();
    if (sw_journal_history_prune(j, T0_MS + ticks * TICK_MS, HISTORY_BATCH, &more, &err) < 0) {
        fprintf(stderr, "bench_journal: %s\n", err.msg);
        exit(1);
    }
    printf("journal.history %s: one retention batch (%d rows) took %.1f ms\n",
           split ? "split " : "inline", HISTORY_BATCH, (now_s() - started) * 1e3);
    sw_journal_close(j);
}

static int history_main(int argc, char **argv, const struct bench_dir *d)
{
    int units = 0;
    long ticks = 2000, change = 6;
    const char *mode = "both";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--history") == 0 && i + 1 < argc)
            units = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ticks") == 0 && i + 1 < argc)
            ticks = atol(argv[++i]);
        else if (strcmp(argv[i], "--change") == 0 && i + 1 < argc)
            change = atol(argv[++i]);
        else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
            mode = argv[++i];
        else
            units = -1;
    }
    if (units <= 0 || ticks <= 0 || change <= 0 ||
        (strcmp(mode, "split") != 0 && strcmp(mode, "inline") != 0 && strcmp(mode, "both") != 0)) {
        fprintf(stderr, "usage: bench_journal --history UNITS [--ticks N] [--change K] "
                        "[--mode split|inline|both]\n");
        return 2;
    }
    if (strcmp(mode, "split") != 0)
        history_run(d, units, ticks, change, false);
    if (strcmp(mode, "inline") != 0)
        history_run(d, units, ticks, change, true);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--history") == 0) {
        sw_log_configure(stderr, SW_LOG_FORMAT_TEXT, SW_LOG_WARN);
        struct bench_dir d;
        if (bench_dir_make(&d) < 0)
            return 1;
        int rc = history_main(argc, argv, &d);
        remove_db(&d);
        rmdir(d.dir);
        return rc;
    }
    long records = argc > 1 ? atol(argv[1]) : 200000;
    long pairs = argc > 2 ? atol(argv[2]) : 5000;
    if (records <= 0 || pairs <= 0) {
        fprintf(stderr, "usage: bench_journal [records] [intent_pairs]\n");
        return 2;
    }
    sw_log_configure(stderr, SW_LOG_FORMAT_TEXT, SW_LOG_WARN);
    struct bench_dir d;
    if (bench_dir_make(&d) < 0)
        return 1;

    double rate100 = bench_evals(&d, records, 100);
    double rate1000 = bench_evals(&d, records, 1000);
    bench_intents(&d, pairs);

    remove_db(&d);
    rmdir(d.dir);
    double worst = rate100 < rate1000 ? rate100 : rate1000;
    printf("journal.eval_record target %.0f records/s: %s\n", TARGET_RECORDS_PER_S,
           worst >= TARGET_RECORDS_PER_S ? "met" : "MISSED");
    return 0;
}
