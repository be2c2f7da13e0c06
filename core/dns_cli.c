/* dns_cli.c — `steward dns list|upsert|remove` (see dns_cli.h). */
#include "dns_cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "clock.h"
#include "error.h"
#include "http_client.h"
#include "log.h"
#include "mem.h"
#include "net.h"
#include "plugin_host.h"

struct cli {
    uv_loop_t loop;
    struct sw_clock *clock;
    struct sw_http_client *http;
    struct sw_net *net;
    bool done;
    int status;
    char error[256];
};

static int64_t svc_now(void *ud)
{
    struct cli *c = ud;
    return sw_clock_now(c->clock);
}

static uint64_t svc_timer_start(void *ud, struct sw_plugin *plugin, uint64_t delay_ms,
                                swp_timer_cb cb, void *cb_ud)
{
    struct cli *c = ud;
    return sw_clock_timer_start(c->clock, delay_ms, cb, cb_ud);
}

static void svc_timer_stop(void *ud, struct sw_plugin *plugin, uint64_t id)
{
    struct cli *c = ud;
    sw_clock_timer_stop(c->clock, id);
}

struct http_tramp {
    swp_http_cb cb;
    void *ud;
};

static void http_done(void *ud, int status, const struct swp_http_resp *resp, const char *text)
{
    struct http_tramp *t = ud;
    swp_http_cb cb = t->cb;
    void *cb_ud = t->ud;
    free(t);
    cb(cb_ud, status, resp);
}

static uint64_t svc_http(void *ud, struct sw_plugin *plugin, const struct swp_http_req *req,
                         swp_http_cb cb, void *cb_ud)
{
    struct cli *c = ud;
    if (c->http == NULL)
        c->http = sw_http_client_new(&c->loop);
    struct http_tramp *t = sw_xmalloc(sizeof(*t));
    t->cb = cb;
    t->ud = cb_ud;
    uint64_t id = sw_http_client_request(c->http, req, http_done, t);
    if (id == 0)
        free(t);
    return id;
}

static void svc_http_cancel(void *ud, struct sw_plugin *plugin, uint64_t id)
{
    struct cli *c = ud;
    sw_http_client_cancel(c->http, id);
}

static uint64_t svc_net(void *ud, struct sw_plugin *plugin, const struct swp_net_req *req,
                        swp_net_cb cb, void *cb_ud, void *complete_ud)
{
    struct cli *c = ud;
    if (c->net == NULL)
        c->net = sw_net_new(&c->loop);
    return sw_net_exchange(c->net, req, complete_ud, cb, cb_ud);
}

static void svc_net_cancel(void *ud, struct sw_plugin *plugin, uint64_t id)
{
    struct cli *c = ud;
    sw_net_cancel(c->net, id);
}

static void op_done(void *ud, int status, const struct swp_error *err)
{
    struct cli *c = ud;
    c->done = true;
    c->status = status;
    snprintf(c->error, sizeof(c->error), "%s",
             err != NULL && err->msg[0] ? err->msg : sw_strerror(status));
}

static void list_done(void *ud, int status, const struct swp_rrset *sets, size_t count,
                      const struct swp_error *err)
{
    for (size_t i = 0; status == 0 && i < count; i++)
        for (size_t r = 0; r < sets[i].record_count; r++)
            printf("%s\t%u\t%s\t%s\n", sets[i].name, sets[i].ttl, sets[i].type,
                   sets[i].records[r]);
    op_done(ud, status, err);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: steward dns list -c FILE\n"
                 "       steward dns upsert -c FILE NAME TYPE TTL VALUE...\n"
                 "       steward dns remove -c FILE NAME TYPE\n\n"
                 "Run one operation of the dns plugin configured in FILE's \"dns\" section\n"
                 "against its server. NAME without a final dot is relative to the zone.\n"
                 "VALUE is in zone-file form: 192.0.2.1, host.example., \"text\".\n");
}

/* NAME relative to the zone unless it ends with a dot. Owned. */
static char *absolute(const char *name, const char *zone)
{
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        return sw_xstrdup(name);
    return sw_xasprintf("%s.%s", name, zone);
}

int sw_dns_cli_main(int argc, char **argv, sw_dns_cli_dirs_fn dirs_fn)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1];
    const char *config_path = NULL;
    optind = 2;
    int opt;
    while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        if (opt == 'c') {
            config_path = optarg;
        } else {
            usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    int rest = argc - optind;
    char **args = argv + optind;
    bool list = strcmp(verb, "list") == 0 && rest == 0;
    bool upsert = strcmp(verb, "upsert") == 0 && rest >= 4;
    bool remove = strcmp(verb, "remove") == 0 && rest == 2;
    if (config_path == NULL || (!list && !upsert && !remove)) {
        usage(stderr);
        return 2;
    }
    sw_log_configure(stderr, SW_LOG_FORMAT_TEXT, SW_LOG_WARN);
    struct sw_error err = {0};
    struct sw_config *config = sw_config_load(config_path, &err);
    if (config == NULL) {
        fprintf(stderr, "steward dns: %s\n", err.msg);
        return 2;
    }
    if (config->dns == NULL) {
        fprintf(stderr, "steward dns: %s has no \"dns\" section\n", config_path);
        sw_config_free(config);
        return 2;
    }
    const struct sw_dns_config *dc = config->dns;
    int exit_code = 2;
    char **dirs = NULL;
    size_t dir_count = 0;
    dirs_fn(config, &dirs, &dir_count);

    struct cli c = {0};
    uv_loop_init(&c.loop);
    c.clock = sw_clock_live_new(&c.loop, 1.0);
    struct sw_plugin_services services = {
        .ud = &c,
        .now_ms = svc_now,
        .timer_start = svc_timer_start,
        .timer_stop = svc_timer_stop,
        .http_request = svc_http,
        .http_cancel = svc_http_cancel,
        .net_exchange = svc_net,
        .net_cancel = svc_net_cancel,
    };
    struct sw_plugin_host *host = sw_plugin_host_new(&services, config->instance_id, config->seed);
    sw_plugin_host_set_base_dir(host, config->dir);
    char *path = sw_plugin_host_find((const char *const *)dirs, dir_count, dc->plugin);
    struct sw_plugin *plugin = NULL;
    const struct swp_dns_ops *ops = NULL;
    if (path == NULL) {
        fprintf(stderr, "steward dns: plugin '%s' not found (swp_%s.so)\n", dc->plugin,
                dc->plugin);
        goto out;
    }
    const struct sw_plugin_config *pc = sw_config_plugin(config, dc->plugin);
    char *origin = sw_xasprintf("%s:plugins.%s", config->path, dc->plugin);
    plugin = sw_plugin_host_load(host, path, pc != NULL ? pc->config_json : NULL, origin, &err);
    free(origin);
    if (plugin == NULL || (ops = sw_plugin_dns(plugin)) == NULL) {
        fprintf(stderr, "steward dns: %s\n",
                plugin == NULL ? err.msg : "the configured plugin is not a dns plugin");
        goto out;
    }
    exit_code = 1;
    void *state = sw_plugin_state(plugin);
    int rc = SW_ENOTSUP;
    if (list && ops->list != NULL) {
        rc = ops->list(state, dc->zone, list_done, &c);
    } else if (upsert && ops->upsert != NULL) {
        char *name = absolute(args[0], dc->zone);
        char *end = NULL;
        unsigned long ttl = strtoul(args[2], &end, 10);
        struct swp_rrset set = {.name = name,
                                .type = args[1],
                                .ttl = (uint32_t)ttl,
                                .records = (const char *const *)(args + 3),
                                .record_count = (size_t)(rest - 3)};
        rc = *end == '\0' ? ops->upsert(state, dc->zone, &set, op_done, &c) : SW_EINVAL;
        free(name);
    } else if (remove && ops->remove != NULL) {
        char *name = absolute(args[0], dc->zone);
        rc = ops->remove(state, dc->zone, name, args[1], op_done, &c);
        free(name);
    }
    if (rc < 0) {
        fprintf(stderr, "steward dns: the plugin refused the request: %s\n", sw_strerror(rc));
        goto out;
    }
    while (!c.done && uv_run(&c.loop, UV_RUN_ONCE) != 0) {
    }
    if (c.done && c.status == 0)
        exit_code = 0;
    else
        fprintf(stderr, "steward dns: %s\n", c.done ? c.error : "the operation never completed");
out:
    free(path);
    sw_plugin_host_free(host);
    sw_http_client_close(c.http);
    sw_net_close(c.net);
    sw_clock_free(c.clock);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    uv_loop_close(&c.loop);
    for (size_t i = 0; i < dir_count; i++)
        free(dirs[i]);
    free(dirs);
    sw_config_free(config);
    return exit_code;
}
