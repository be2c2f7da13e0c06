/* admin_cli.c — `steward status|leases|decisions|pause|resume`: one HTTP request to the
 * admin API on a private uv loop, then a table on stdout (or the document with --json). */
#include "admin_cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "clock.h"
#include "error.h"
#include "http_client.h"
#include "mem.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define DEFAULT_API "http://127.0.0.1:9464"
#define TOKEN_ENV "STEWARD_ADMIN_TOKEN"
#define REQUEST_TIMEOUT_MS 10000

static const char *const verbs[] = {"status", "leases", "decisions", "pause", "resume"};

bool sw_admin_cli_is_verb(const char *verb)
{
    for (size_t i = 0; verb != NULL && i < SW_ARRAY_LEN(verbs); i++)
        if (strcmp(verb, verbs[i]) == 0)
            return true;
    return false;
}

/* ---- one request on a private loop ---------------------------------------------------------- */

struct reply {
    bool done;
    int status;      /* < 0: no response */
    long http_status;
    char *body;
    char error[256];
};

static void on_reply(void *ud, int status, const struct swp_http_resp *resp,
                     const char *error_text)
{
    struct reply *r = ud;
    r->done = true;
    r->status = status;
    if (status == 0 && resp != NULL) {
        r->http_status = resp->status;
        r->body = sw_xstrndup(resp->body ? resp->body : "", resp->body_len);
    } else {
        snprintf(r->error, sizeof(r->error), "%s",
                 error_text != NULL && error_text[0] ? error_text : sw_strerror(status));
    }
}

/* Performs method url; fills r. The token, when given, goes in an Authorization header
 * built here and wiped after the request. */
static void request(const char *method, const char *url, const char *token, const char *body,
                    struct reply *r)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sw_http_client *client = sw_http_client_new(&loop);
    char *auth = token != NULL ? sw_xasprintf("Authorization: Bearer %s", token) : NULL;
    const char *headers[2];
    size_t header_count = 0;
    if (auth != NULL)
        headers[header_count++] = auth;
    if (body != NULL)
        headers[header_count++] = "Content-Type: application/json";
    struct swp_http_req req = {
        .size = sizeof(req),
        .method = method,
        .url = url,
        .headers = headers,
        .header_count = header_count,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .timeout_ms = REQUEST_TIMEOUT_MS,
    };
    memset(r, 0, sizeof(*r));
    if (sw_http_client_request(client, &req, on_reply, r) == 0) {
        r->done = true;
        r->status = SW_EINVAL;
        snprintf(r->error, sizeof(r->error), "invalid request for %s", url);
    }
    while (!r->done && uv_run(&loop, UV_RUN_ONCE) != 0)
        ;
    sw_http_client_close(client);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (auth != NULL) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
}

/* ---- formatting ----------------------------------------------------------------------------- */

static double num(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(item) ? item->valuedouble : 0;
}

static const char *str(const cJSON *obj, const char *name, const char *fallback)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(item) ? item->valuestring : fallback;
}

static void format_duration(double seconds, char *buf, size_t size)
{
    long s = (long)llround(seconds);
    if (s < 60)
        snprintf(buf, size, "%lds", s);
    else if (s < 3600)
        snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(buf, size, "%ldh%02ldm", s / 3600, s % 3600 / 60);
}

static void print_status(const cJSON *root)
{
    char up[32];
    format_duration(num(root, "uptime_s"), up, sizeof(up));
    /* ha: "leader" is an object; a follower names who leads, the leader says "self". */
    const cJSON *leader = cJSON_GetObjectItemCaseSensitive(root, "leader");
    bool is_self = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(leader, "self"));
    printf("steward %s (%s): %s, leader %s, up %s, market %s\n", str(root, "id", "?"),
           str(root, "version", "?"),
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "ready")) ? "ready" : "NOT READY",
           is_self ? "self" : str(leader, "who", "none known"), up, str(root, "market", "?"));

    printf("\n%-24s %-8s %10s %7s %9s  %s\n", "POLICY", "STATE", "EVALS", "ERRORS", "LAST(ms)",
           "LAST ERROR");
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(root, "policies"))
    {
        bool paused = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "paused"));
        printf("%-24s %-8s %10.0f %7.0f %9.1f  %s\n", str(p, "name", "?"),
               paused ? "paused" : "running", num(p, "evaluations"), num(p, "errors"),
               num(p, "last_duration_ms"), str(p, "last_error", "-"));
    }

    printf("\n%-16s %-16s %8s %6s %8s %10s\n", "GROUP", "REGION", "DESIRED", "READY", "PENDING",
           "RELEASING");
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(root, "groups"))
    {
        const cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(g, "regions"))
        {
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "desired");
            char desired[16] = "-";
            if (cJSON_IsNumber(d))
                snprintf(desired, sizeof(desired), "%.0f", d->valuedouble);
            printf("%-16s %-16s %8s %6.0f %8.0f %10.0f\n", str(g, "name", "?"),
                   str(r, "region", "?"), desired, num(r, "ready"), num(r, "pending"),
                   num(r, "releasing"));
        }
        printf("%-16s %-16s %8.0f %6.0f %8.0f %10.0f   (min %.0f, max %.0f)\n",
               str(g, "name", "?"), "(total)", num(g, "desired"), num(g, "ready"),
               num(g, "pending"), num(g, "releasing"), num(g, "min"), num(g, "max"));
        const cJSON *ov;
        cJSON_ArrayForEach(ov, cJSON_GetObjectItemCaseSensitive(g, "overrides"))
        {
            char left[32];
            format_duration(num(ov, "remaining_s"), left, sizeof(left));
            printf("%-16s override: %s pinned to %.0f, %s left\n", "",
                   str(ov, "region", "(group total)"), num(ov, "count"), left);
        }
    }

    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "budget");
    const cJSON *limit = cJSON_GetObjectItemCaseSensitive(b, "limit_usd_hour");
    char limit_text[32] = "no limit";
    if (cJSON_IsNumber(limit))
        snprintf(limit_text, sizeof(limit_text), "%.3f", limit->valuedouble);
    printf("\nspend %.3f USD/h of %s (ready units %.3f USD/h), %.0f units open\n",
           num(b, "spend_usd_hour"), limit_text, num(b, "ready_spend_usd_hour"),
           num(b, "open_units"));
    const cJSON *runway =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "escrow"),
                                         "runway_hours");
    if (cJSON_IsNumber(runway))
        printf("escrow runway %.1f h\n", runway->valuedouble);
    else
        printf("escrow runway unknown (the market plugin does not report it)\n");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "counters");
    printf("acquires %.0f started, %.0f ready, %.0f failed; releases %.0f started, %.0f done, "
           "%.0f failed; %.0f refused by the guard; %.0f in flight\n",
           num(c, "acquires_started"), num(c, "acquires_ready"), num(c, "acquires_failed"),
           num(c, "releases_started"), num(c, "releases_done"), num(c, "releases_failed"),
           num(c, "refused"), num(c, "ops_in_flight"));
}

static void print_leases(const cJSON *root)
{
    printf("%-22s %-16s %-12s %-14s %-9s %9s  %s\n", "UNIT", "MARKET ID", "GROUP", "REGION",
           "STATE", "USD/H", "PROVIDER");
    const cJSON *u;
    int count = 0;
    cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(root, "leases"))
    {
        bool self = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(u, "self"));
        printf("%-22s %-16s %-12s %-14s %-9s %9.4f  %s%s\n", str(u, "key", "?"),
               str(u, "market_id", "-"), str(u, "group", "?"), str(u, "region", "?"),
               str(u, "state", "?"), num(u, "price_usd_hour"), str(u, "provider", "-"),
               self ? "  (steward runs here)" : "");
        count++;
    }
    printf("%d unit%s\n", count, count == 1 ? "" : "s");
}

static void print_decisions(const cJSON *root)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(root, "decisions"))
    {
        char when[SW_UTC_TEXT_LEN];
        sw_clock_utc_text((int64_t)num(d, "at_ms"), when);
        const cJSON *desired = cJSON_GetObjectItemCaseSensitive(d, "desired");
        const cJSON *effective = cJSON_GetObjectItemCaseSensitive(desired, "effective");
        char *eff = effective ? cJSON_PrintUnformatted(effective) : NULL;
        printf("%s %-20s %6.1fms wants %s\n", when, str(d, "policy", "?"),
               num(d, "duration_ms"), eff ? eff : "-");
        cJSON_free(eff);
        const char *error = str(d, "error", NULL);
        if (error != NULL)
            printf("    error: %s\n", error);
        static const char *const lists[] = {"actions", "refused"};
        for (size_t l = 0; l < SW_ARRAY_LEN(lists); l++) {
            const cJSON *a;
            cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(d, lists[l]))
            {
                printf("    %s %s %s/%s: %s\n", l == 0 ? "->" : "refused", str(a, "kind", "?"),
                       str(a, "group", "?"), str(a, "region", "?"), str(a, "reason", ""));
            }
        }
    }
    printf("%.0f decision%s\n", num(root, "count"), num(root, "count") == 1 ? "" : "s");
    /* history: a --since older than the journal keeps; said after the list, where it is read */
    const char *note = str(root, "note", NULL);
    if (note != NULL)
        printf("note: %s\n", note);
}

/* ---- the verbs ------------------------------------------------------------------------------ */

static void usage(FILE *out, const char *verb)
{
    if (strcmp(verb, "decisions") == 0)
        fprintf(out, "usage: steward decisions [--policy P] [--since T] [--limit N] [--api URL] "
                     "[--json]\n\nRecent evaluations from the journal: what each policy "
                     "wanted, what was done\nand what the guard refused. T is epoch "
                     "milliseconds or a duration back from now\n(15m); without --since, the "
                     "newest N (default 100).\n");
    else if (strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0)
        fprintf(out, "usage: steward %s POLICY [--api URL] [--json]\n\n%s a policy of a running "
                     "steward (it persists across restarts).\nNeeds the admin token in $"
                     TOKEN_ENV ".\n", verb, strcmp(verb, "pause") == 0 ? "Pause" : "Resume");
    else
        fprintf(out, "usage: steward %s [--api URL] [--json]\n\n%s of a running steward.\n",
                verb, strcmp(verb, "status") == 0
                          ? "Policies, groups (desired vs actual), budget and counters"
                          : "The units (leases) held");
    fprintf(out, "\n  --api URL   the admin API (default " DEFAULT_API ", or $STEWARD_API)\n"
                 "  --json      print the API's JSON document\n");
}

static char *url_escape(const char *s)
{
    size_t len = strlen(s);
    char *out = sw_xmalloc(len * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            snprintf(out + o, 4, "%%%02X", c);
            o += 3;
        }
    }
    out[o] = '\0';
    return out;
}

int sw_admin_cli_main(int argc, char **argv)
{
    const char *verb = argv[0];
    static const struct option longopts[] = {
        {"api", required_argument, NULL, 'a'},   {"json", no_argument, NULL, 'j'},
        {"policy", required_argument, NULL, 'p'}, {"since", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *api = getenv("STEWARD_API");
    if (api == NULL || api[0] == '\0')
        api = DEFAULT_API;
    const char *policy = NULL, *since = NULL, *limit = NULL;
    bool json = false;
    bool decisions = strcmp(verb, "decisions") == 0;
    bool mutation = strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'a': api = optarg; break;
        case 'j': json = true; break;
        case 'p': policy = optarg; break;
        case 's': since = optarg; break;
        case 'l': limit = optarg; break;
        case 'h': usage(stdout, verb); return 0;
        default:
            fprintf(stderr, "steward %s: unknown or incomplete option '%s'\n", verb,
                    argv[optind - 1]);
            usage(stderr, verb);
            return EXIT_USAGE;
        }
    }
    if (!decisions && (policy || since || limit)) {
        fprintf(stderr, "steward %s: --policy, --since and --limit belong to `steward "
                        "decisions`\n", verb);
        return EXIT_USAGE;
    }
    const char *target = NULL;
    if (mutation) {
        if (optind != argc - 1) {
            usage(stderr, verb);
            return EXIT_USAGE;
        }
        target = argv[optind];
    } else if (optind != argc) {
        usage(stderr, verb);
        return EXIT_USAGE;
    }
    size_t api_len = strlen(api);
    while (api_len > 0 && api[api_len - 1] == '/')
        api_len--;

    char *url = NULL;
    const char *method = "GET";
    const char *token = NULL;
    if (strcmp(verb, "status") == 0) {
        url = sw_xasprintf("%.*s/v1/status", (int)api_len, api);
    } else if (strcmp(verb, "leases") == 0) {
        url = sw_xasprintf("%.*s/v1/leases", (int)api_len, api);
    } else if (decisions) {
        char *p = policy ? url_escape(policy) : NULL;
        char *s = since ? url_escape(since) : NULL;
        char *l = limit ? url_escape(limit) : NULL;
        url = sw_xasprintf("%.*s/v1/decisions?%s%s%s%s%s%s", (int)api_len, api,
                           p ? "&policy=" : "", p ? p : "", s ? "&since=" : "", s ? s : "",
                           l ? "&limit=" : "", l ? l : "");
        free(p);
        free(s);
        free(l);
    } else {
        char *name = url_escape(target);
        url = sw_xasprintf("%.*s/v1/policies/%s/%s", (int)api_len, api, name, verb);
        free(name);
        method = "POST";
        token = getenv(TOKEN_ENV);
        if (token == NULL || token[0] == '\0') {
            fprintf(stderr, "steward %s: set $" TOKEN_ENV " to the admin API's token\n", verb);
            free(url);
            return EXIT_USAGE;
        }
    }

    struct reply r;
    request(method, url, token, mutation ? "{}" : NULL, &r);
    int rc = 0;
    cJSON *root = NULL;
    if (r.status < 0) {
        fprintf(stderr, "steward %s: cannot reach the admin API at %.*s: %s\n", verb,
                (int)api_len, api, r.error);
        rc = EXIT_FAIL;
        goto out;
    }
    root = cJSON_Parse(r.body);
    if (r.http_status < 200 || r.http_status > 299) {
        const char *msg = str(root, "error", r.body);
        fprintf(stderr, "steward %s: the admin API answered %ld: %s\n", verb, r.http_status,
                msg);
        if (r.http_status == 401)
            fprintf(stderr, "  (is $" TOKEN_ENV " the token the running steward reads?)\n");
        rc = EXIT_FAIL;
        goto out;
    }
    if (root == NULL) {
        fprintf(stderr, "steward %s: the admin API answered something that is not JSON\n",
                verb);
        rc = EXIT_FAIL;
        goto out;
    }
    if (json) {
        char *text = cJSON_Print(root);
        printf("%s\n", text);
        cJSON_free(text);
    } else if (strcmp(verb, "status") == 0) {
        print_status(root);
    } else if (strcmp(verb, "leases") == 0) {
        print_leases(root);
    } else if (decisions) {
        print_decisions(root);
    } else {
        printf("policy %s %s\n", str(root, "policy", target),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "paused")) ? "paused"
                                                                               : "resumed");
    }
out:
    cJSON_Delete(root);
    free(r.body);
    free(url);
    return rc;
}
