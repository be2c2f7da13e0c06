/* bench_akash_parse.c — the marketplace replies (tests/unit/akash_replies) parsed and deleted
 * by cJSON_ParseWithLength and by market_akash's akash_json_parse: ns per reply for each.
 *
 *   build/bench/bench_akash_parse [rounds]
 *
 * Wall time drifts on a shared machine; instructions do not. For those, run it under
 * callgrind and read the inclusive cost of the two loops:
 *   valgrind --tool=callgrind --callgrind-out-file=/tmp/parse.cg build/bench/bench_akash_parse 200
 *   callgrind_annotate --inclusive=yes /tmp/parse.cg | grep -E 'run_(cjson|akash)'
 * and divide by rounds x replies (both printed).
 */
#include <dirent.h>
#include <time.h>

#include "../plugins/market_akash/akash_parse.c"

#define REPLY_DIR SW_SOURCE_DIR "/tests/unit/akash_replies"
#define MAX_REPLIES 64

static char *texts[MAX_REPLIES];
static size_t lens[MAX_REPLIES];
static size_t count;

static void load(void)
{
    DIR *d = opendir(REPLY_DIR);
    if (d == NULL) {
        perror(REPLY_DIR);
        exit(1);
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && count < MAX_REPLIES) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", REPLY_DIR, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        char *text = malloc(1 << 16);
        size_t len = fread(text, 1, 1 << 16, f);
        fclose(f);
        texts[count] = text;
        lens[count] = len;
        count++;
    }
    closedir(d);
}

/* Not inlined, so callgrind shows each loop's inclusive cost on its own line. */
__attribute__((noinline)) static size_t run_cjson(int rounds)
{
    size_t nodes = 0;
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < count; i++) {
            cJSON *root = cJSON_ParseWithLength(texts[i], lens[i]);
            nodes += root != NULL;
            cJSON_Delete(root);
        }
    }
    return nodes;
}

__attribute__((noinline)) static size_t run_akash(int rounds)
{
    size_t nodes = 0;
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < count; i++) {
            cJSON *root = akash_json_parse(texts[i], lens[i]);
            nodes += root != NULL;
            cJSON_Delete(root);
        }
    }
    return nodes;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 2000;
    if (rounds <= 0)
        rounds = 1;
    load();
    size_t bytes = 0;
    for (size_t i = 0; i < count; i++)
        bytes += lens[i];
    double t0 = now_ns();
    size_t a = run_cjson(rounds);
    double t1 = now_ns();
    size_t b = run_akash(rounds);
    double t2 = now_ns();
    double per = (double)rounds * (double)count;
    printf("replies %zu (%zu bytes), rounds %d\n", count, bytes, rounds);
    printf("cJSON_ParseWithLength + cJSON_Delete  %8.0f ns per reply\n", (t1 - t0) / per);
    printf("akash_json_parse + cJSON_Delete       %8.0f ns per reply\n", (t2 - t1) / per);
    for (size_t i = 0; i < count; i++)
        free(texts[i]);
    return a == b ? 0 : 1;
}
