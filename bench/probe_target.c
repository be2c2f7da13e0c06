/* probe_target.c — the loopback HTTP target of bench_probe.sh: LISTENERS servers on
 * 127.0.0.1 (one loop, core/http_server.h) answering 200 "ok" to a GET on any path, so
 * 500 endpoints can be 500 paths of one server or each its own host:port. It counts the requests it
 * answered: GET /__count answers the count so far (without counting itself), and the final count
 * goes to stdout when SIGTERM or SIGINT stops it.
 *
 * Usage: probe_target PORT_FILE [LISTENERS]   (default 1; free ports, one line each in
 *        PORT_FILE, written once all listen)
 * Not a benchmark itself: its name keeps `make bench` from running it alone.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "http_server.h"
#include "log.h"

struct target {
    struct sw_http_server **servers;
    size_t server_count;
    uint64_t answered;
    uv_signal_t sigterm;
    uv_signal_t sigint;
};

static void handle(void *ud, struct sw_http_exchange *ex, const struct sw_http_request *req)
{
    struct target *t = ud;
    if (strcmp(req->path, "/__count") == 0) {
        char text[32];
        int len = snprintf(text, sizeof(text), "%" PRIu64 "\n", t->answered);
        sw_http_respond(ex, 200, "text/plain", NULL, 0, text, (size_t)len);
        return;
    }
    t->answered++;
    sw_http_respond(ex, 200, "text/plain", NULL, 0, "ok\n", 3);
}

static void on_stop(uv_signal_t *sig, int signum)
{
    (void)signum;
    struct target *t = sig->data;
    for (size_t i = 0; i < t->server_count; i++)
        sw_http_server_close(t->servers[i]);
    uv_close((uv_handle_t *)&t->sigterm, NULL);
    uv_close((uv_handle_t *)&t->sigint, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: probe_target PORT_FILE [LISTENERS]\n");
        return 2;
    }
    long listeners = argc == 3 ? strtol(argv[2], NULL, 10) : 1;
    if (listeners < 1 || listeners > 5000) {
        fprintf(stderr, "probe_target: LISTENERS must be 1..5000\n");
        return 2;
    }
    sw_log_configure(stderr, SW_LOG_FORMAT_TEXT, SW_LOG_WARN);
    uv_loop_t *loop = uv_default_loop();
    struct target t = {0};
    t.servers = calloc((size_t)listeners, sizeof(*t.servers));
    if (t.servers == NULL)
        return 1;
    /* Probes of 500 endpoints may all be in flight at once, each on its own connection
     * when the client does not share them: room for all, kept open between rounds. */
    struct sw_http_server_opts opts = {
        .host = "127.0.0.1",
        .port = 0,
        .max_connections = 4096,
        .idle_timeout_ms = 60000,
    };
    FILE *f = fopen(argv[1], "w");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    for (long i = 0; i < listeners; i++) {
        struct sw_error err = {0};
        t.servers[i] = sw_http_server_start(loop, &opts, handle, &t, &err);
        if (t.servers[i] == NULL) {
            fprintf(stderr, "probe_target: %s\n", err.msg);
            return 1;
        }
        t.server_count++;
        fprintf(f, "%d\n", sw_http_server_port(t.servers[i]));
    }
    fclose(f);
    uv_signal_init(loop, &t.sigterm);
    uv_signal_init(loop, &t.sigint);
    t.sigterm.data = t.sigint.data = &t;
    uv_signal_start(&t.sigterm, on_stop, SIGTERM);
    uv_signal_start(&t.sigint, on_stop, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    printf("%" PRIu64 "\n", t.answered);
    free(t.servers);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
