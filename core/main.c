/* main.c — the steward command line: run, check, plugins, plugin describe, test-policy,
 * version. Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "admin_api.h"
#include "admin_cli.h"
#include "clock.h"
#include "config.h"
#include "http_client.h"
#include "dns_cli.h"
#include "log.h"
#include "market_server.h"
#include "mem.h"
#include "paths.h"
#include "plugin_host.h"
#include "policy.h"
#include "replay.h"
#include "runtime.h"
#include "sim.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
/* SIGTERM waits this long (clock time) for marketplace operations in flight; below the
 * usual 30 s container stop grace period. What is left stays pending for recovery. */
#define DRAIN_MAX_MS 10000

/* The plugin directories of a command, as one value to pass around. */
struct search_paths {
    char **items;
    size_t count;
};

static void plugin_search_paths(const struct sw_config *config, struct search_paths *out)
{
    out->items = sw_paths_plugin_dirs(config, &out->count);
}

static void paths_free(struct search_paths *p)
{
    sw_paths_free(p->items, p->count);
    p->items = NULL;
    p->count = 0;
}

/* ---- shared option handling ------------------------------------------------------------- */

struct common_opts {
    const char *config_path;
    const char *log_format;
    const char *log_level;
};

static int setup_logging(const struct sw_config *config, const struct common_opts *co)
{
    int format = config != NULL ? config->log_format : SW_LOG_FORMAT_TEXT;
    int level = config != NULL ? config->log_level : SW_LOG_INFO;
    if (co->log_format != NULL) {
        if (strcmp(co->log_format, "json") == 0)
            format = SW_LOG_FORMAT_JSON;
        else if (strcmp(co->log_format, "text") == 0)
            format = SW_LOG_FORMAT_TEXT;
        else {
            fprintf(stderr, "steward: --log-format: expected text or json, got \"%s\"\n",
                    co->log_format);
            return -1;
        }
    }
    if (co->log_level != NULL) {
        level = sw_log_level_parse(co->log_level);
        if (level < 0) {
            fprintf(stderr, "steward: --log-level: expected debug, info, warn or error, got "
                    "\"%s\"\n", co->log_level);
            return -1;
        }
    }
    sw_log_configure(stderr, format, level);
    return 0;
}

static struct sw_config *load_config_or_report(const char *path)
{
    struct sw_error err = {0};
    struct sw_config *config = sw_config_load(path, &err);
    if (config == NULL)
        fprintf(stderr, "steward: %s\n", err.msg);
    return config;
}

/* ---- steward run ------------------------------------------------------------------------ */

struct run_ctx {
    uv_loop_t *loop;
    struct sw_clock *clock;
    struct sw_runtime *runtime;
    struct sw_admin_api *admin;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_signal_t sighup;
    uint64_t for_timer;
    int exit_code;
    bool stopping;
    bool draining;
    uint64_t drain_timer;
    int64_t drain_deadline_ms;
    const char *drain_why;
};

static void run_shutdown(struct run_ctx *rc, int exit_code, const char *why)
{
    if (rc->stopping)
        return;
    rc->stopping = true;
    rc->exit_code = exit_code;
    sw_log(SW_LOG_INFO, "steward", "stopping: %s", why);
    if (rc->drain_timer != 0)
        sw_clock_timer_stop(rc->clock, rc->drain_timer);
    rc->drain_timer = 0;
    sw_runtime_stop(rc->runtime);
    uv_signal_stop(&rc->sigint);
    uv_signal_stop(&rc->sigterm);
    uv_signal_stop(&rc->sighup);
    uv_stop(rc->loop);
}

static void drain_check(void *ud)
{
    struct run_ctx *rc = ud;
    rc->drain_timer = 0;
    size_t left = sw_runtime_ops_in_flight(rc->runtime);
    if (left == 0) {
        run_shutdown(rc, 0, rc->drain_why);
    } else if (sw_clock_now(rc->clock) >= rc->drain_deadline_ms) {
        sw_log(SW_LOG_WARN, "steward", "drain deadline: %zu marketplace operation%s still in "
               "flight stay journaled as pending; the next start resumes them", left,
               left == 1 ? "" : "s");
        run_shutdown(rc, 0, rc->drain_why);
    } else {
        rc->drain_timer = sw_clock_timer_start(rc->clock, 100, drain_check, rc);
    }
}

/* Stop deciding at once; let operations already sent to the marketplace finish (bounded)
 * so their outcome is journaled now rather than reconciled at the next start. */
static void start_drain(struct run_ctx *rc, const char *why)
{
    if (rc->stopping)
        return;
    if (rc->draining) {
        run_shutdown(rc, 0, "second signal: not waiting for operations in flight");
        return;
    }
    size_t in_flight = sw_runtime_ops_in_flight(rc->runtime);
    if (in_flight == 0) {
        run_shutdown(rc, 0, why);
        return;
    }
    rc->draining = true;
    rc->drain_why = why;
    sw_runtime_quiesce(rc->runtime);
    sw_log(SW_LOG_INFO, "steward", "%s: no new decisions; waiting up to %ds for %zu marketplace "
           "operation%s in flight (a second signal stops at once)", why, DRAIN_MAX_MS / 1000,
           in_flight, in_flight == 1 ? "" : "s");
    rc->drain_deadline_ms = sw_clock_now(rc->clock) + DRAIN_MAX_MS;
    rc->drain_timer = sw_clock_timer_start(rc->clock, 100, drain_check, rc);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    struct run_ctx *rc = handle->data;
    if (signum == SIGHUP) {
        sw_log(SW_LOG_INFO, "steward", "SIGHUP: reloading policies");
        sw_runtime_reload(rc->runtime);
        return;
    }
    start_drain(rc, signum == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)");
}

static void on_run_for_elapsed(void *ud)
{
    struct run_ctx *rc = ud;
    rc->for_timer = 0;
    run_shutdown(rc, 0, "--for duration elapsed");
}

static void on_runtime_fatal(void *ud, const struct sw_error *err)
{
    run_shutdown(ud, EXIT_RUNTIME, err->msg);
}

static int64_t clock_now_for_log(void *ud)
{
    return sw_clock_now(ud);
}

static void print_run_summary(struct sw_runtime *rt)
{
    const struct sw_runtime_stats *st = sw_runtime_stats(rt);
    const struct sw_units *units = sw_runtime_units(rt);
    sw_log(SW_LOG_INFO, "steward",
           "summary: %" PRIu64 " evaluations (%" PRIu64 " policy errors), %" PRIu64
           " acquires (%" PRIu64 " ready, %" PRIu64 " failed), %" PRIu64 " releases, %" PRIu64
           " refused by the guard, %" PRIu64 " units lost; %d units open at %.3f USD/h",
           st->evaluations, st->policy_errors, st->acquires_started, st->acquires_ready,
           st->acquires_failed, st->releases_done, st->refused, st->units_lost,
           sw_units_count_open(units), sw_units_spend_usd_hour(units));
}

static void close_walk_cb(uv_handle_t *handle, void *arg)
{
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

static int cmd_run_loop(struct sw_config *config, bool dry_run, int64_t for_ms, double speed,
                        const struct search_paths *plugin_dirs, const char *lua_path)
{
    struct run_ctx rc = {0};
    uv_loop_t loop;
    uv_loop_init(&loop);
    rc.loop = &loop;
    rc.clock = sw_clock_live_new(&loop, speed);
    sw_log_set_time_source(clock_now_for_log, rc.clock);

    struct sw_runtime_opts opts = {
        .config = config,
        .clock = rc.clock,
        .loop = &loop,
        .dry_run = dry_run,
        .plugin_dirs = (const char *const *)plugin_dirs->items,
        .plugin_dir_count = plugin_dirs->count,
        .lua_path = lua_path,
        .on_fatal = on_runtime_fatal,
        .fatal_ud = &rc,
    };
    struct sw_error err = {0};
    uint64_t started = uv_hrtime();
    rc.runtime = sw_runtime_new(&opts, &err);
    if (rc.runtime == NULL) {
        fprintf(stderr, "steward: %s\n", err.msg);
        rc.exit_code = err.code == SW_ECONFIG || err.code == SW_EABI || err.code == SW_EPOLICY
                           ? EXIT_USAGE
                           : EXIT_RUNTIME;
        goto out;
    }
    rc.admin = sw_admin_api_start_from_config(&loop, rc.runtime, rc.clock, config, &err);
    if (rc.admin == NULL && err.code != 0) {
        fprintf(stderr, "steward: %s\n", err.msg);
        rc.exit_code = err.code == SW_ECONFIG ? EXIT_USAGE : EXIT_RUNTIME;
        goto out;
    }
    sw_log(SW_LOG_INFO, "steward", "steward %s started (id %s, %zu policies, market %s%s%s)",
           SW_VERSION, config->instance_id, config->policy_count, config->market_plugin,
           dry_run ? ", DRY RUN: no marketplace writes" : "",
           speed > 1 ? ", time compressed" : "");
    uv_signal_init(&loop, &rc.sigint);
    uv_signal_init(&loop, &rc.sigterm);
    uv_signal_init(&loop, &rc.sighup);
    rc.sigint.data = rc.sigterm.data = rc.sighup.data = &rc;
    uv_signal_start(&rc.sigint, on_signal, SIGINT);
    uv_signal_start(&rc.sigterm, on_signal, SIGTERM);
    uv_signal_start(&rc.sighup, on_signal, SIGHUP);
    if (for_ms > 0)
        rc.for_timer = sw_clock_timer_start(rc.clock, (uint64_t)for_ms, on_run_for_elapsed, &rc);
    if (sw_runtime_start(rc.runtime, &err) < 0) {
        fprintf(stderr, "steward: %s\n", err.msg);
        rc.exit_code = EXIT_RUNTIME;
        goto out;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    sw_log(SW_LOG_DEBUG, "steward", "ran %.1f s", (double)(uv_hrtime() - started) / 1e9);
    print_run_summary(rc.runtime);
out:
    if (rc.for_timer != 0)
        sw_clock_timer_stop(rc.clock, rc.for_timer);
    if (rc.drain_timer != 0)
        sw_clock_timer_stop(rc.clock, rc.drain_timer);
    sw_admin_api_close(rc.admin);
    sw_runtime_free(rc.runtime);
    sw_log_set_time_source(NULL, NULL);
    sw_clock_free(rc.clock);
    uv_walk(&loop, close_walk_cb, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        sw_log(SW_LOG_WARN, "steward", "event loop closed with handles still open");
    return rc.exit_code;
}

static void usage_run(FILE *out)
{
    fprintf(out,
            "usage: steward run -c FILE [--dry-run] [--for DURATION] [--speed N]\n"
            "                   [--log-format text|json] [--log-level LEVEL]\n"
            "\n"
            "Run the control loop on the live clock until SIGINT/SIGTERM (SIGHUP reloads\n"
            "policies).\n"
            "  -c, --config FILE    configuration (JSON with comments)\n"
            "      --dry-run        evaluate, plan and journal; call no marketplace write op\n"
            "      --for DURATION   stop after this long (e.g. 60s, 5m)\n"
            "      --speed N        compress time N-fold (demos, rehearsals; default 1)\n"
            "      --log-format F   text (default) or json lines\n"
            "      --log-level L    debug, info (default), warn, error\n");
}

static const struct option common_long[] = {
    {"config", required_argument, NULL, 'c'},
    {"log-format", required_argument, NULL, 'F'},
    {"log-level", required_argument, NULL, 'L'},
    {"dry-run", no_argument, NULL, 'n'},
    {"for", required_argument, NULL, 'f'},
    {"speed", required_argument, NULL, 's'},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct parsed_args {
    struct common_opts common;
    bool dry_run;
    bool json;
    bool help;
    const char *for_text;
    const char *speed_text;
};

static int parse_args(int argc, char **argv, struct parsed_args *pa)
{
    memset(pa, 0, sizeof(*pa));
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", common_long, NULL)) != -1) {
        switch (ch) {
        case 'c': pa->common.config_path = optarg; break;
        case 'F': pa->common.log_format = optarg; break;
        case 'L': pa->common.log_level = optarg; break;
        case 'n': pa->dry_run = true; break;
        case 'f': pa->for_text = optarg; break;
        case 's': pa->speed_text = optarg; break;
        case 'j': pa->json = true; break;
        case 'h': pa->help = true; break;
        default:
            fprintf(stderr, "steward %s: unknown or incomplete option '%s'\n", argv[0],
                    argv[optind - 1]);
            return -1;
        }
    }
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    struct parsed_args pa;
    if (parse_args(argc, argv, &pa) < 0) {
        usage_run(stderr);
        return EXIT_USAGE;
    }
    if (pa.help) {
        usage_run(stdout);
        return 0;
    }
    if (pa.common.config_path == NULL) {
        fprintf(stderr, "steward run: -c FILE is required\n");
        usage_run(stderr);
        return EXIT_USAGE;
    }
    int64_t for_ms = 0;
    if (pa.for_text != NULL && (sw_duration_parse(pa.for_text, &for_ms) < 0 || for_ms <= 0)) {
        fprintf(stderr, "steward run: --for: expected a duration like 60s or 5m, got \"%s\"\n",
                pa.for_text);
        return EXIT_USAGE;
    }
    double speed = 1.0;
    if (pa.speed_text != NULL) {
        char *end = NULL;
        speed = strtod(pa.speed_text, &end);
        if (end == pa.speed_text || *end != '\0' || speed < 1 || speed > 100000) {
            fprintf(stderr, "steward run: --speed: expected a number from 1 to 100000, got "
                    "\"%s\"\n", pa.speed_text);
            return EXIT_USAGE;
        }
    }
    struct sw_config *config = load_config_or_report(pa.common.config_path);
    if (config == NULL)
        return EXIT_USAGE;
    if (setup_logging(config, &pa.common) < 0) {
        sw_config_free(config);
        return EXIT_USAGE;
    }
    struct search_paths dirs = {0};
    plugin_search_paths(config, &dirs);
    char *lua_path = sw_paths_lua(config);
    int rc = cmd_run_loop(config, pa.dry_run, for_ms, speed, &dirs, lua_path);
    free(lua_path);
    paths_free(&dirs);
    sw_config_free(config);
    sw_log_clear_secrets();
    return rc;
}

/* ---- steward check ---------------------------------------------------------------------- */

static void usage_check(FILE *out)
{
    fprintf(out, "usage: steward check -c FILE\n\n"
                 "Validate the configuration, load every plugin it names (with its config)\n"
                 "and compile every policy, against a throw-away in-memory journal.\n"
                 "Exits 0 when everything is usable, 2 otherwise.\n");
}

static int cmd_check(int argc, char **argv)
{
    struct parsed_args pa;
    if (parse_args(argc, argv, &pa) < 0) {
        usage_check(stderr);
        return EXIT_USAGE;
    }
    if (pa.help) {
        usage_check(stdout);
        return 0;
    }
    if (pa.common.config_path == NULL) {
        fprintf(stderr, "steward check: -c FILE is required\n");
        return EXIT_USAGE;
    }
    struct sw_config *config = load_config_or_report(pa.common.config_path);
    if (config == NULL)
        return EXIT_USAGE;
    sw_log_configure(stderr, SW_LOG_FORMAT_TEXT, SW_LOG_WARN);
    free(config->state_path);
    config->state_path = sw_xstrdup(":memory:");
    struct search_paths dirs = {0};
    plugin_search_paths(config, &dirs);
    char *lua_path = sw_paths_lua(config);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sw_clock *clock = sw_clock_live_new(&loop, 1.0);
    struct sw_runtime_opts opts = {
        .config = config,
        .clock = clock,
        .plugin_dirs = (const char *const *)dirs.items,
        .plugin_dir_count = dirs.count,
        .lua_path = lua_path,
    };
    struct sw_error err = {0};
    struct sw_runtime *rt = sw_runtime_new(&opts, &err);
    int rc = 0;
    if (rt == NULL) {
        fprintf(stderr, "steward: %s\n", err.msg);
        rc = EXIT_USAGE;
    } else {
        printf("%s: ok (%zu groups, %zu policies, market %s, %zu plugins loaded)\n",
               pa.common.config_path, config->group_count, config->policy_count,
               config->market_plugin, 1 + config->plugin_count);
    }
    sw_runtime_free(rt);
    sw_clock_free(clock);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(lua_path);
    paths_free(&dirs);
    sw_config_free(config);
    sw_log_clear_secrets();
    return rc;
}

/* ---- steward plugins / plugin describe ------------------------------------------------- */

static void kinds_text(uint32_t kinds, char *buf, size_t len)
{
    static const char *names[] = {"market", "dns", "metrics", "probe", "notify"};
    buf[0] = '\0';
    for (size_t i = 0; i < SW_ARRAY_LEN(names); i++) {
        if (!(kinds & (1u << i)))
            continue;
        if (buf[0] != '\0')
            strncat(buf, ",", len - strlen(buf) - 1);
        strncat(buf, names[i], len - strlen(buf) - 1);
    }
}

static int cmd_plugins(int argc, char **argv)
{
    struct parsed_args pa;
    if (parse_args(argc, argv, &pa) < 0 || pa.help) {
        fprintf(pa.help ? stdout : stderr,
                "usage: steward plugins [--json] [-c FILE]\n\nList every plugin found in "
                "the plugin directories (the config's plugin_dirs first, then\n"
                "$STEWARD_PLUGIN_PATH, then the built-in locations).\n");
        return pa.help ? 0 : EXIT_USAGE;
    }
    struct sw_config *config = NULL;
    if (pa.common.config_path != NULL && (config = load_config_or_report(pa.common.config_path)) == NULL)
        return EXIT_USAGE;
    struct search_paths dirs = {0};
    plugin_search_paths(config, &dirs);
    size_t count = 0;
    struct sw_plugin_info **infos =
        sw_plugin_host_scan((const char *const *)dirs.items, dirs.count, &count);
    cJSON *arr = pa.json ? cJSON_CreateArray() : NULL;
    if (!pa.json)
        printf("%-20s %-16s %-5s %-9s %s\n", "NAME", "KINDS", "ABI", "VERSION", "PATH");
    for (size_t i = 0; i < count; i++) {
        const struct sw_plugin_info *info = infos[i];
        char kinds[64];
        kinds_text(info->kinds, kinds, sizeof(kinds));
        char abi[32];
        snprintf(abi, sizeof(abi), "%u.%u", info->abi_major, info->abi_minor);
        if (pa.json) {
            cJSON *item = cJSON_CreateObject();
            cJSON_AddStringToObject(item, "name", info->name ? info->name : "");
            cJSON_AddStringToObject(item, "kinds", kinds);
            cJSON_AddStringToObject(item, "abi", abi);
            cJSON_AddStringToObject(item, "version", info->version ? info->version : "");
            cJSON_AddStringToObject(item, "description",
                                    info->description ? info->description : "");
            cJSON_AddStringToObject(item, "path", info->path ? info->path : "");
            if (info->error != NULL)
                cJSON_AddStringToObject(item, "error", info->error);
            cJSON_AddItemToArray(arr, item);
        } else if (info->error != NULL) {
            printf("%-20s %-16s %-5s %-9s %s\n  ! %s\n", info->name ? info->name : "?", "-",
                   "-", "-", info->path ? info->path : "", info->error);
        } else {
            printf("%-20s %-16s %-5s %-9s %s\n", info->name, kinds, abi,
                   info->version ? info->version : "", info->path);
        }
        sw_plugin_info_free(infos[i]);
    }
    free(infos);
    if (pa.json) {
        char *text = cJSON_Print(arr);
        printf("%s\n", text);
        cJSON_free(text);
        cJSON_Delete(arr);
    }
    paths_free(&dirs);
    sw_config_free(config);
    return 0;
}

static int cmd_plugin(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "describe") != 0) {
        fprintf(stderr, "usage: steward plugin describe NAME\n\nPrint a plugin's kinds, "
                        "version and every configuration key it accepts.\n");
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : EXIT_USAGE;
    }
    struct search_paths dirs = {0};
    plugin_search_paths(NULL, &dirs);
    char *path = sw_plugin_host_find((const char *const *)dirs.items, dirs.count, argv[2]);
    int rc = 0;
    if (path == NULL) {
        fprintf(stderr, "steward: plugin '%s' not found in %zu plugin directories\n", argv[2],
                dirs.count);
        rc = EXIT_USAGE;
    } else {
        struct sw_error err = {0};
        char *text = sw_plugin_host_describe_path(path, &err);
        if (text == NULL) {
            fprintf(stderr, "steward: %s\n", err.msg);
            rc = EXIT_USAGE;
        } else {
            fputs(text, stdout);
        }
        free(text);
    }
    free(path);
    paths_free(&dirs);
    return rc;
}

/* ---- steward test-policy ---------------------------------------------------------------- */

static int cmd_test_policy(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: steward test-policy SPEC.lua\n\nRun a policy spec inside the real "
                "sandbox (describe/it/expect from steward.testing).\n");
        return argc < 2 ? EXIT_USAGE : 0;
    }
    sw_log_configure(stderr, SW_LOG_FORMAT_TEXT, SW_LOG_WARN);
    char *lua_path = sw_paths_lua(NULL);
    int rc = sw_policy_test_main(argv[1], lua_path);
    free(lua_path);
    return rc;
}

/* dns: `steward dns ...` lives in core/dns_cli.c; it needs the plugin search path. */
static void dns_plugin_dirs(const struct sw_config *config, char ***dirs, size_t *count)
{
    struct search_paths p = {0};
    plugin_search_paths(config, &p);
    *dirs = p.items;
    *count = p.count;
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "steward %s — a self-managing control plane for decentralized-cloud deployments\n"
            "\n"
            "usage: steward <command> [options]\n"
            "\n"
            "commands:\n"
            "  run -c FILE            run the control loop (--dry-run, --for, --speed)\n"
            "  check -c FILE          validate config, load plugins, compile policies\n"
            "  plugins [--json]       list installed plugins\n"
            "  plugin describe NAME   show a plugin's configuration keys\n"
            "  test-policy SPEC       run a Lua policy spec in the sandbox\n"
            "  simulate -c FILE --trace CSV  replay traces through the policies offline\n"
            "  replay --state DB [-c FILE]   re-run policies over a journal's recorded inputs\n"
            "  status | leases | decisions | pause POLICY | resume POLICY\n"
            "                         ask a running steward through its admin API\n"
            "  dns list|upsert|remove run one operation of the configured dns plugin\n"
            "  market serve ...       run the local marketplace (Akash Console API)\n"
            "  version                print the version and plugin ABI\n"
            "\n"
            "`steward <command> --help` describes each command.\n",
            SW_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "plugins") == 0)
        return cmd_plugins(argc - 1, argv + 1);
    if (strcmp(cmd, "plugin") == 0)
        return cmd_plugin(argc - 1, argv + 1);
    if (strcmp(cmd, "test-policy") == 0)
        return cmd_test_policy(argc - 1, argv + 1);
    if (strcmp(cmd, "simulate") == 0)
        return sw_sim_main(argc - 1, argv + 1);
    if (strcmp(cmd, "replay") == 0)
        return sw_replay_main(argc - 1, argv + 1);
    if (sw_admin_cli_is_verb(cmd))
        return sw_admin_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "dns") == 0)
        return sw_dns_cli_main(argc - 1, argv + 1, dns_plugin_dirs);
    if (strcmp(cmd, "market") == 0)
        return sw_market_server_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("steward %s (plugin ABI %d.%d)\nallocator: %s\n", SW_VERSION, SWP_ABI_MAJOR,
               SWP_ABI_MINOR, sw_mem_allocator());
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "steward: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
