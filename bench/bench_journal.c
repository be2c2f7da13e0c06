/* bench_journal.c — journal throughput on a real file in /tmp.
 *
 * journal.eval_record: evaluation records with realistic JSON (~300 bytes each of inputs,
 * desired and actions), committed every 100 records (the runtime flushes per tick batch)
 * and every 1,000. Target: >= 20,000 records/s.
 * journal.intent: begin+finish pairs, each a durable commit (WAL, synchronous=NORMAL).
 *
 * Usage: bench_journal [records] [intent_pairs]   (defaults 200000 and 5000)
 * Monotonic wall time here only measures the benchmark; nothing in steward reads it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
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

int main(int argc, char **argv)
{
    long records = argc > 1 ? atol(argv[1]) : 200000;
    long pairs = argc > 2 ? atol(argv[2]) : 5000;
    if (records <= 0 || pairs <= 0) {
        fprintf(stderr, "usage: bench_journal [records] [intent_pairs]\n");
        return 2;
    }
    sw_log_configure(stderr, SW_LOG_FORMAT_TEXT, SW_LOG_WARN);
    struct bench_dir d;
    snprintf(d.dir, sizeof(d.dir), "/tmp/sw_bench_journal_XXXXXX");
    if (mkdtemp(d.dir) == NULL) {
        perror("bench_journal: mkdtemp");
        return 1;
    }
    snprintf(d.path, sizeof(d.path), "%s/steward.db", d.dir);

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
