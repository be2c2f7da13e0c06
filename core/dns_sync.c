/* dns_sync.c — DNS records for live units, with ownership and make-before-break
 * (see dns_sync.h for the contract). */
#include "dns_sync.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "log.h"
#include "mem.h"

#define DEFAULT_RETRY_MIN_MS 1000
#define DEFAULT_RETRY_MAX_MS 60000
#define OWNER_PREFIX "sw-"

static const char *LOG = "dns";

/* ---- small string sets -------------------------------------------------------------- */

struct strs {
    char **items;
    size_t count;
};

static bool strs_has(const struct strs *s, const char *v)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->items[i], v) == 0)
            return true;
    return false;
}

static void strs_add(struct strs *s, const char *v)
{
    if (strs_has(s, v))
        return;
    s->items = sw_xrealloc(s->items, (s->count + 1) * sizeof(char *));
    s->items[s->count++] = sw_xstrdup(v);
}

static void strs_clear(struct strs *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->items[i]);
    free(s->items);
    s->items = NULL;
    s->count = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- records and names ------------------------------------------------------------------ */

bool sw_dns_uri_host(const char *uri, char *out, size_t size)
{
    if (uri == NULL || size == 0)
        return false;
    const char *p = strstr(uri, "://");
    p = p != NULL ? p + 3 : uri;
    const char *at = strchr(p, '@');
    const char *slash = strchr(p, '/');
    if (at != NULL && (slash == NULL || at < slash))
        p = at + 1;
    const char *end;
    if (*p == '[') {
        p++;
        end = strchr(p, ']');
        if (end == NULL)
            return false;
    } else {
        end = p + strcspn(p, ":/?#");
    }
    size_t n = (size_t)(end - p);
    if (n == 0 || n >= size)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

char *sw_dns_owner_name(const char *name, const char *type)
{
    char lower[16];
    size_t i = 0;
    for (; type[i] != '\0' && i + 1 < sizeof(lower); i++)
        lower[i] = (char)tolower((unsigned char)type[i]);
    lower[i] = '\0';
    return sw_xasprintf(OWNER_PREFIX "%s-%s", lower, name);
}

/* The (name, type) an ownership record's name stands for, or false. */
static bool parse_owner_name(const char *owner, char *name, size_t name_size, char *type,
                             size_t type_size)
{
    if (strncasecmp(owner, OWNER_PREFIX, strlen(OWNER_PREFIX)) != 0)
        return false;
    const char *t = owner + strlen(OWNER_PREFIX);
    const char *dash = strchr(t, '-');
    const char *dot = strchr(t, '.');
    if (dash == NULL || (dot != NULL && dot < dash) || (size_t)(dash - t) >= type_size ||
        dash == t)
        return false;
    size_t n = (size_t)(dash - t);
    for (size_t i = 0; i < n; i++)
        type[i] = (char)toupper((unsigned char)t[i]);
    type[n] = '\0';
    if (strcmp(type, "A") != 0 && strcmp(type, "AAAA") != 0 && strcmp(type, "CNAME") != 0)
        return false;
    if (strlen(dash + 1) >= name_size || dash[1] == '.' || dash[1] == '\0')
        return false;
    strcpy(name, dash + 1);
    return true;
}

/* Names compare without case and without regard to a trailing dot. */
static bool same_name(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

/* A record in a form two servers' spellings of it agree on. Owned. */
static char *canonical_record(const char *type, const char *text)
{
    unsigned char bin[16];
    char buf[INET6_ADDRSTRLEN];
    if (strcasecmp(type, "A") == 0 && inet_pton(AF_INET, text, bin) == 1)
        return sw_xstrdup(inet_ntop(AF_INET, bin, buf, sizeof(buf)));
    if (strcasecmp(type, "AAAA") == 0 && inet_pton(AF_INET6, text, bin) == 1)
        return sw_xstrdup(inet_ntop(AF_INET6, bin, buf, sizeof(buf)));
    if (strcasecmp(type, "CNAME") == 0) {
        size_t n = strlen(text);
        char *out = sw_xasprintf("%s%s", text, n > 0 && text[n - 1] == '.' ? "" : ".");
        for (char *c = out; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        return out;
    }
    return sw_xstrdup(text);
}

static bool same_records(const char *type, const char *const *a, size_t an,
                         const char *const *b, size_t bn)
{
    if (an != bn)
        return false;
    bool same = true;
    for (size_t i = 0; i < an && same; i++) {
        char *ca = canonical_record(type, a[i]);
        bool found = false;
        for (size_t j = 0; j < bn && !found; j++) {
            char *cb = canonical_record(type, b[j]);
            found = strcmp(ca, cb) == 0;
            free(cb);
        }
        free(ca);
        same = found;
    }
    return same;
}

/* How a target is compared with what DNS holds: addresses normalised, names lowercased
 * without the final dot. Owned. */
static char *target_key(const char *host)
{
    unsigned char bin[16];
    char buf[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, host, bin) == 1)
        return sw_xstrdup(inet_ntop(AF_INET, bin, buf, sizeof(buf)));
    if (inet_pton(AF_INET6, host, bin) == 1)
        return sw_xstrdup(inet_ntop(AF_INET6, bin, buf, sizeof(buf)));
    char *out = sw_xstrdup(host);
    size_t n = strlen(out);
    if (n > 1 && out[n - 1] == '.')
        out[n - 1] = '\0';
    for (char *c = out; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return out;
}

/* The text of a TXT record without quoting: "a" "b" → ab. Owned. */
static char *txt_unquote(const char *text)
{
    char *out = sw_xmalloc(strlen(text) + 1);
    size_t n = 0;
    bool quoted = false;
    for (const char *p = text; *p; p++) {
        if (*p == '"') {
            quoted = !quoted;
            continue;
        }
        if (*p == '\\' && p[1] != '\0') {
            out[n++] = *++p;
            continue;
        }
        if (!quoted && isspace((unsigned char)*p))
            continue;
        out[n++] = *p;
    }
    out[n] = '\0';
    return out;
}

/* The value of key in "k=v,k2=v2", copied into out; false when absent. */
static bool txt_field(const char *text, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);
    const char *p = text;
    while (p != NULL && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = len - klen - 1;
            if (vlen >= size)
                return false;
            memcpy(out, p + klen + 1, vlen);
            out[vlen] = '\0';
            return true;
        }
        p = comma != NULL ? comma + 1 : NULL;
    }
    return false;
}

enum owner_kind { OWNER_NONE, OWNER_US, OWNER_OTHER };

static int owner_of(const struct swp_rrset *txt, const char *owner_id, char *group,
                    size_t group_size)
{
    if (txt == NULL)
        return OWNER_NONE;
    for (size_t i = 0; i < txt->record_count; i++) {
        char *plain = txt_unquote(txt->records[i]);
        char heritage[32], owner[80];
        bool steward = txt_field(plain, "heritage", heritage, sizeof(heritage)) &&
                       strcmp(heritage, "steward") == 0;
        bool ours = steward && txt_field(plain, "steward/owner", owner, sizeof(owner)) &&
                    strcmp(owner, owner_id) == 0;
        if (ours && group != NULL && !txt_field(plain, "steward/group", group, group_size))
            group[0] = '\0';
        free(plain);
        if (ours)
            return OWNER_US;
    }
    return OWNER_OTHER;
}

/* ---- the sync ----------------------------------------------------------------------------- */

struct want {
    char *name;
    char *type;
    char *group;
    struct strs records;
};

enum { CHANGE_WRITE, CHANGE_DELETE };

struct change {
    int action;
    char *name;
    char *type;
    char *group;
    struct strs records;  /* desired; empty for a delete */
    struct strs expected; /* the server's copy when listed; empty: absent */
};

struct deferred {
    struct deferred *next;
    struct sw_dns_sync *s;
    char *unit_key;
    struct strs targets;
    uint64_t need_pass;   /* the first pass that excludes the unit */
    bool was_published;   /* its targets were in our records when that pass listed */
    bool withdrawn;
    uint64_t timer;
    sw_dns_release_cb resume;
    void *ud;
};

struct sw_dns_sync {
    struct sw_dns_sync_opts opts;
    const struct sw_dns_config *config;
    char *plugin_name;
    bool running;
    bool in_flight;
    bool dirty;
    bool has_listing;     /* a pass has completed: live_targets means something */
    uint64_t pass_seq;    /* passes started */
    uint64_t kick_timer;
    uint64_t resync_timer;
    uint64_t retry_timer;
    uint64_t backoff_ms;
    struct change *changes;
    size_t change_count;
    size_t change_next;
    struct strs live_targets;    /* hosts in records we own (listed, plus written) */
    struct strs conflicts;       /* "name/type" reported in the previous pass */
    struct strs pass_conflicts;  /* this pass */
    struct deferred *deferred;
    struct sw_dns_sync_stats stats;
};

static int64_t now_ms(struct sw_dns_sync *s)
{
    return sw_clock_now(s->opts.clock);
}

static void emit(struct sw_dns_sync *s, const char *type, cJSON *data)
{
    if (s->opts.on_event != NULL) {
        char *text = cJSON_PrintUnformatted(data);
        s->opts.on_event(s->opts.event_ud, type, text);
        cJSON_free(text);
    }
    cJSON_Delete(data);
}

static void stop_timer(struct sw_dns_sync *s, uint64_t *timer)
{
    if (*timer != 0)
        sw_clock_timer_stop(s->opts.clock, *timer);
    *timer = 0;
}

static void change_clear(struct change *c)
{
    free(c->name);
    free(c->type);
    free(c->group);
    strs_clear(&c->records);
    strs_clear(&c->expected);
}

static void changes_clear(struct sw_dns_sync *s)
{
    for (size_t i = 0; i < s->change_count; i++)
        change_clear(&s->changes[i]);
    free(s->changes);
    s->changes = NULL;
    s->change_count = 0;
    s->change_next = 0;
}

static struct change *change_add(struct sw_dns_sync *s, int action, const char *name,
                                 const char *type, const char *group,
                                 const struct swp_rrset *current)
{
    s->changes = sw_xrealloc(s->changes, (s->change_count + 1) * sizeof(*s->changes));
    struct change *c = &s->changes[s->change_count++];
    memset(c, 0, sizeof(*c));
    c->action = action;
    c->name = sw_xstrdup(name);
    c->type = sw_xstrdup(type);
    c->group = sw_xstrdup(group);
    for (size_t i = 0; current != NULL && i < current->record_count; i++)
        strs_add(&c->expected, current->records[i]);
    return c;
}

struct sw_dns_sync *sw_dns_sync_new(const struct sw_dns_sync_opts *opts)
{
    struct sw_dns_sync *s = sw_xcalloc(1, sizeof(*s));
    s->opts = *opts;
    s->config = opts->config;
    s->plugin_name = sw_xstrdup(opts->plugin_name != NULL ? opts->plugin_name : "dns");
    if (s->opts.retry_min_ms == 0)
        s->opts.retry_min_ms = DEFAULT_RETRY_MIN_MS;
    if (s->opts.retry_max_ms == 0)
        s->opts.retry_max_ms = DEFAULT_RETRY_MAX_MS;
    s->backoff_ms = s->opts.retry_min_ms;
    return s;
}

static void pass_start(struct sw_dns_sync *s);

static void kick_fire(void *ud)
{
    struct sw_dns_sync *s = ud;
    s->kick_timer = 0;
    pass_start(s);
}

static void retry_fire(void *ud)
{
    struct sw_dns_sync *s = ud;
    s->retry_timer = 0;
    pass_start(s);
}

static void resync_fire(void *ud)
{
    struct sw_dns_sync *s = ud;
    s->resync_timer = 0;
    if (!s->running)
        return;
    sw_dns_sync_kick(s);
    s->resync_timer =
        sw_clock_timer_start(s->opts.clock, (uint64_t)s->config->resync_ms, resync_fire, s);
}

void sw_dns_sync_start(struct sw_dns_sync *s)
{
    if (s->running)
        return;
    s->running = true;
    sw_dns_sync_kick(s);
    s->resync_timer =
        sw_clock_timer_start(s->opts.clock, (uint64_t)s->config->resync_ms, resync_fire, s);
}

static void deferred_free(struct deferred *d)
{
    strs_clear(&d->targets);
    free(d->unit_key);
    free(d);
}

void sw_dns_sync_stop(struct sw_dns_sync *s)
{
    if (s == NULL)
        return;
    s->running = false;
    stop_timer(s, &s->kick_timer);
    stop_timer(s, &s->resync_timer);
    stop_timer(s, &s->retry_timer);
    while (s->deferred != NULL) {
        struct deferred *d = s->deferred;
        s->deferred = d->next;
        stop_timer(s, &d->timer);
        deferred_free(d);
    }
}

void sw_dns_sync_free(struct sw_dns_sync *s)
{
    if (s == NULL)
        return;
    sw_dns_sync_stop(s);
    changes_clear(s);
    strs_clear(&s->live_targets);
    strs_clear(&s->conflicts);
    strs_clear(&s->pass_conflicts);
    free(s->plugin_name);
    free(s);
}

void sw_dns_sync_kick(struct sw_dns_sync *s)
{
    if (s == NULL || !s->running)
        return;
    s->dirty = true;
    /* A failing server is not hammered: the retry timer runs the next pass. */
    if (s->in_flight || s->kick_timer != 0 || s->retry_timer != 0)
        return;
    s->kick_timer = sw_clock_timer_start(s->opts.clock, 0, kick_fire, s);
}

/* ---- desired records ------------------------------------------------------------------ */

struct wants {
    struct want *items;
    size_t count;
};

static void wants_clear(struct wants *w)
{
    for (size_t i = 0; i < w->count; i++) {
        free(w->items[i].name);
        free(w->items[i].type);
        free(w->items[i].group);
        strs_clear(&w->items[i].records);
    }
    free(w->items);
}

static struct want *want_add(struct wants *w, const char *name, const char *type,
                             const char *group)
{
    w->items = sw_xrealloc(w->items, (w->count + 1) * sizeof(*w->items));
    struct want *x = &w->items[w->count++];
    memset(x, 0, sizeof(*x));
    x->name = sw_xstrdup(name);
    x->type = sw_xstrdup(type);
    x->group = sw_xstrdup(group);
    return x;
}

static const struct want *want_find(const struct wants *w, const char *name, const char *type)
{
    for (size_t i = 0; i < w->count; i++)
        if (strcasecmp(w->items[i].type, type) == 0 && same_name(w->items[i].name, name))
            return &w->items[i];
    return NULL;
}

static int cmp_unit_age(const void *a, const void *b)
{
    const struct sw_unit *ua = *(const struct sw_unit *const *)a;
    const struct sw_unit *ub = *(const struct sw_unit *const *)b;
    if (ua->ready_ms != ub->ready_ms)
        return ua->ready_ms < ub->ready_ms ? -1 : 1;
    return strcmp(ua->key, ub->key);
}

/* A/AAAA for the IP targets; a CNAME to the longest-ready unit's host when no target is
 * an IP (a CNAME cannot have siblings, so only one). */
static void want_targets(struct wants *w, const char *name, const char *group,
                         const struct sw_unit *const *units, size_t count)
{
    struct strs v4 = {0}, v6 = {0}, hosts = {0};
    for (size_t i = 0; i < count; i++) {
        for (size_t j = 0; j < units[i]->uri_count; j++) {
            char host[256];
            unsigned char bin[16];
            char norm[INET6_ADDRSTRLEN];
            if (!sw_dns_uri_host(units[i]->uris[j], host, sizeof(host)))
                continue;
            if (inet_pton(AF_INET, host, bin) == 1)
                strs_add(&v4, inet_ntop(AF_INET, bin, norm, sizeof(norm)));
            else if (inet_pton(AF_INET6, host, bin) == 1)
                strs_add(&v6, inet_ntop(AF_INET6, bin, norm, sizeof(norm)));
            else
                strs_add(&hosts, host);
        }
    }
    if (v4.count > 0 || v6.count > 0) {
        if (v4.count > 0) {
            qsort(v4.items, v4.count, sizeof(char *), cmp_str);
            want_add(w, name, "A", group)->records = v4;
            v4.items = NULL;
            v4.count = 0;
        }
        if (v6.count > 0) {
            qsort(v6.items, v6.count, sizeof(char *), cmp_str);
            want_add(w, name, "AAAA", group)->records = v6;
            v6.items = NULL;
            v6.count = 0;
        }
    } else if (hosts.count > 0) {
        char *target = canonical_record("CNAME", hosts.items[0]);
        strs_add(&want_add(w, name, "CNAME", group)->records, target);
        free(target);
    }
    strs_clear(&v4);
    strs_clear(&v6);
    strs_clear(&hosts);
}

static void region_label(const char *region, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = region; *p && n + 1 < size && n < 54; p++) {
        char c = (char)tolower((unsigned char)*p);
        out[n++] = (isalnum((unsigned char)c) || c == '-') ? c : '-';
    }
    out[n] = '\0';
}

static void compute_wants(struct sw_dns_sync *s, struct wants *w)
{
    const struct sw_units *units = s->opts.units;
    const struct sw_unit **pick = sw_xcalloc(units->count + 1, sizeof(*pick));
    for (size_t r = 0; r < s->config->record_count; r++) {
        const struct sw_dns_record_config *rc = &s->config->records[r];
        size_t n = 0;
        for (size_t i = 0; i < units->count; i++) {
            const struct sw_unit *u = units->items[i];
            if (u->state == SW_UNIT_READY && !u->unhealthy && strcmp(u->group, rc->group) == 0)
                pick[n++] = u;
        }
        if (n == 0)
            continue;
        qsort(pick, n, sizeof(*pick), cmp_unit_age);
        want_targets(w, rc->name, rc->group, pick, n);
        if (!rc->per_region)
            continue;
        struct strs regions = {0};
        for (size_t i = 0; i < n; i++)
            strs_add(&regions, pick[i]->region);
        for (size_t g = 0; g < regions.count; g++) {
            const struct sw_unit **in_region = sw_xcalloc(n, sizeof(*in_region));
            size_t m = 0;
            for (size_t i = 0; i < n; i++)
                if (strcmp(pick[i]->region, regions.items[g]) == 0)
                    in_region[m++] = pick[i];
            char label[64];
            region_label(regions.items[g], label, sizeof(label));
            if (label[0] != '\0') {
                char *name = sw_xasprintf("%s.%s", label, rc->name);
                want_targets(w, name, rc->group, in_region, m);
                free(name);
            }
            free(in_region);
        }
        strs_clear(&regions);
    }
    free(pick);
}

/* ---- one pass ------------------------------------------------------------------------- */

static const struct swp_rrset *find_rrset(const struct swp_rrset *sets, size_t count,
                                          const char *name, const char *type)
{
    for (size_t i = 0; i < count; i++)
        if (sets[i].name != NULL && sets[i].type != NULL &&
            strcasecmp(sets[i].type, type) == 0 && same_name(sets[i].name, name))
            return &sets[i];
    return NULL;
}

static void conflict(struct sw_dns_sync *s, const char *name, const char *type,
                     const char *reason)
{
    char *key = sw_xasprintf("%s/%s", name, type);
    bool known = strs_has(&s->conflicts, key);
    strs_add(&s->pass_conflicts, key);
    free(key);
    if (known)
        return; /* reported when it appeared; not again at every pass */
    s->stats.conflicts++;
    sw_log(SW_LOG_WARN, LOG, "%s %s: %s; left untouched", name, type, reason);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "name", name);
    cJSON_AddStringToObject(data, "type", type);
    cJSON_AddStringToObject(data, "reason", reason);
    emit(s, "dns_conflict", data);
}

static void add_targets_of(struct strs *out, const char *type, const struct swp_rrset *set)
{
    for (size_t i = 0; set != NULL && i < set->record_count; i++) {
        char *c = canonical_record(type, set->records[i]);
        size_t n = strlen(c);
        if (strcasecmp(type, "CNAME") == 0 && n > 1)
            c[n - 1] = '\0'; /* targets are host names without the final dot */
        strs_add(out, c);
        free(c);
    }
}

static char *owner_text(const struct sw_dns_sync *s, const char *group)
{
    return sw_xasprintf("\"heritage=steward,steward/owner=%s,steward/group=%s\"",
                        s->config->owner_id, group);
}

/* Plan the pass from the listing. */
static void plan(struct sw_dns_sync *s, const struct swp_rrset *sets, size_t count,
                 const struct wants *w)
{
    bool sync_mode = s->config->mode == SW_DNS_MODE_SYNC;
    struct strs listed_targets = {0};
    struct change *deletes = NULL;
    size_t delete_count = 0;

    /* What we own now: every ownership record of ours names a (name, type). */
    for (size_t i = 0; i < count; i++) {
        char name[512], type[16], group[128];
        if (sets[i].type == NULL || strcasecmp(sets[i].type, "TXT") != 0 ||
            !parse_owner_name(sets[i].name, name, sizeof(name), type, sizeof(type)))
            continue;
        if (owner_of(&sets[i], s->config->owner_id, group, sizeof(group)) != OWNER_US)
            continue;
        const struct swp_rrset *cur = find_rrset(sets, count, name, type);
        add_targets_of(&listed_targets, type, cur);
        if (want_find(w, name, type) != NULL || !sync_mode)
            continue;
        /* Ours and no longer wanted: the record first, then its ownership record. */
        deletes = sw_xrealloc(deletes, (delete_count + 2) * sizeof(*deletes));
        if (cur != NULL) {
            struct change *c = &deletes[delete_count++];
            memset(c, 0, sizeof(*c));
            c->action = CHANGE_DELETE;
            c->name = sw_xstrdup(cur->name);
            c->type = sw_xstrdup(type);
            c->group = sw_xstrdup(group);
            for (size_t r = 0; r < cur->record_count; r++)
                strs_add(&c->expected, cur->records[r]);
        }
        struct change *t = &deletes[delete_count++];
        memset(t, 0, sizeof(*t));
        t->action = CHANGE_DELETE;
        t->name = sw_xstrdup(sets[i].name);
        t->type = sw_xstrdup("TXT");
        t->group = sw_xstrdup(group);
        for (size_t r = 0; r < sets[i].record_count; r++)
            strs_add(&t->expected, sets[i].records[r]);
    }
    for (size_t i = 0; i < delete_count; i++) {
        s->changes = sw_xrealloc(s->changes, (s->change_count + 1) * sizeof(*s->changes));
        s->changes[s->change_count++] = deletes[i];
    }
    free(deletes);

    for (size_t i = 0; i < w->count; i++) {
        const struct want *x = &w->items[i];
        char *owner = sw_dns_owner_name(x->name, x->type);
        const struct swp_rrset *cur = find_rrset(sets, count, x->name, x->type);
        const struct swp_rrset *txt = find_rrset(sets, count, owner, "TXT");
        char group[128] = "";
        int who = owner_of(txt, s->config->owner_id, group, sizeof(group));
        bool blocked = false;
        if (who == OWNER_OTHER) {
            conflict(s, x->name, x->type, "its ownership record belongs to someone else");
            blocked = true;
        } else if (cur != NULL && who != OWNER_US) {
            conflict(s, x->name, x->type, "a record steward does not own exists");
            blocked = true;
        } else {
            /* CNAME excludes every other type at the name and vice versa (RFC 1034 3.6.2):
             * another RRset there must be ours and on its way out. */
            for (size_t j = 0; j < count && !blocked; j++) {
                if (!same_name(sets[j].name, x->name) || strcasecmp(sets[j].type, x->type) == 0)
                    continue;
                bool cname_clash = strcasecmp(x->type, "CNAME") == 0 ||
                                   strcasecmp(sets[j].type, "CNAME") == 0;
                if (!cname_clash)
                    continue;
                char *other_owner = sw_dns_owner_name(x->name, sets[j].type);
                const struct swp_rrset *other_txt = find_rrset(sets, count, other_owner, "TXT");
                bool leaving = owner_of(other_txt, s->config->owner_id, NULL, 0) == OWNER_US &&
                               sync_mode && want_find(w, x->name, sets[j].type) == NULL;
                free(other_owner);
                if (!leaving) {
                    conflict(s, x->name, x->type,
                             "another record type at this name excludes a CNAME");
                    blocked = true;
                }
            }
        }
        if (!blocked) {
            char *text = owner_text(s, x->group);
            const char *const want_txt[] = {text};
            if (txt == NULL ||
                !same_records("TXT", txt->records, txt->record_count, want_txt, 1)) {
                struct change *c = change_add(s, CHANGE_WRITE, owner, "TXT", x->group, txt);
                strs_add(&c->records, text);
            }
            free(text);
            if (cur == NULL || cur->ttl != s->config->ttl ||
                !same_records(x->type, cur->records, cur->record_count,
                              (const char *const *)x->records.items, x->records.count)) {
                struct change *c = change_add(s, CHANGE_WRITE, x->name, x->type, x->group, cur);
                for (size_t r = 0; r < x->records.count; r++)
                    strs_add(&c->records, x->records.items[r]);
            }
            add_targets_of(&listed_targets, x->type, cur);
            struct swp_rrset written = {.name = x->name,
                                        .type = x->type,
                                        .records = (const char *const *)x->records.items,
                                        .record_count = x->records.count};
            add_targets_of(&listed_targets, x->type, &written);
        }
        free(owner);
    }
    strs_clear(&s->live_targets);
    s->live_targets = listed_targets;
}

static void pass_done(struct sw_dns_sync *s);
static void pass_failed(struct sw_dns_sync *s, int code, const char *msg, bool soon);
static void apply_next(struct sw_dns_sync *s);

static void change_done(void *ud, int status, const struct swp_error *perr)
{
    struct sw_dns_sync *s = ud;
    if (!s->running || status == SW_ECANCELED) {
        s->in_flight = false;
        return;
    }
    struct change *c = &s->changes[s->change_next];
    if (status < 0) {
        const char *msg = perr != NULL && perr->msg[0] ? perr->msg : sw_strerror(status);
        char *text = sw_xasprintf("%s %s/%s: %s", c->action == CHANGE_DELETE ? "delete" : "write",
                                  c->name, c->type, msg);
        pass_failed(s, status, text, status == SW_EAGAIN);
        free(text);
        return;
    }
    s->stats.changes++;
    sw_log(SW_LOG_INFO, LOG, "%s %s %s%s%s", c->action == CHANGE_DELETE ? "deleted" : "wrote",
           c->name, c->type, c->records.count ? " " : "",
           c->records.count ? c->records.items[0] : "");
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "action", c->action == CHANGE_DELETE ? "delete" : "write");
    cJSON_AddStringToObject(data, "name", c->name);
    cJSON_AddStringToObject(data, "type", c->type);
    if (c->group != NULL)
        cJSON_AddStringToObject(data, "group", c->group);
    cJSON *records = cJSON_AddArrayToObject(data, "records");
    for (size_t i = 0; i < c->records.count; i++)
        cJSON_AddItemToArray(records, cJSON_CreateString(c->records.items[i]));
    emit(s, "dns_change", data);
    s->change_next++;
    apply_next(s);
}

static void apply_next(struct sw_dns_sync *s)
{
    if (s->change_next == s->change_count) {
        pass_done(s);
        return;
    }
    const struct swp_dns_ops *ops = s->opts.ops;
    struct change *c = &s->changes[s->change_next];
    struct swp_rrset desired = {
        .name = c->name,
        .type = c->type,
        .ttl = s->config->ttl,
        .records = (const char *const *)c->records.items,
        .record_count = c->records.count,
    };
    struct swp_rrset expected = {
        .name = c->name,
        .type = c->type,
        .records = (const char *const *)c->expected.items,
        .record_count = c->expected.count,
    };
    int rc = SW_ENOTSUP;
    if (ops->update_if != NULL)
        rc = ops->update_if(s->opts.plugin_state, s->config->zone, &expected, &desired,
                            change_done, s);
    else if (c->records.count > 0 && ops->upsert != NULL)
        rc = ops->upsert(s->opts.plugin_state, s->config->zone, &desired, change_done, s);
    else if (c->records.count == 0 && ops->remove != NULL)
        rc = ops->remove(s->opts.plugin_state, s->config->zone, c->name, c->type, change_done,
                         s);
    if (rc < 0) {
        char *text = sw_xasprintf("plugin '%s' refused to write %s/%s: %s", s->plugin_name,
                                  c->name, c->type, sw_strerror(rc));
        pass_failed(s, rc, text, false);
        free(text);
    }
}

static void listed(void *ud, int status, const struct swp_rrset *sets, size_t count,
                   const struct swp_error *perr)
{
    struct sw_dns_sync *s = ud;
    if (!s->running || status == SW_ECANCELED) {
        s->in_flight = false;
        return;
    }
    if (status < 0) {
        const char *msg = perr != NULL && perr->msg[0] ? perr->msg : sw_strerror(status);
        char *text = sw_xasprintf("cannot list zone %s: %s", s->config->zone, msg);
        pass_failed(s, status, text, false);
        free(text);
        return;
    }
    struct wants w = {0};
    compute_wants(s, &w);
    changes_clear(s);
    strs_clear(&s->pass_conflicts);
    /* Which held-back releases this pass withdraws, and whether DNS pointed at them. */
    struct strs before = {0};
    for (size_t i = 0; i < count; i++) {
        char name[512], type[16];
        if (sets[i].type != NULL && strcasecmp(sets[i].type, "TXT") == 0 &&
            parse_owner_name(sets[i].name, name, sizeof(name), type, sizeof(type)) &&
            owner_of(&sets[i], s->config->owner_id, NULL, 0) == OWNER_US)
            add_targets_of(&before, type, find_rrset(sets, count, name, type));
    }
    for (struct deferred *d = s->deferred; d != NULL; d = d->next)
        if (!d->withdrawn && d->need_pass <= s->pass_seq) {
            d->was_published = false;
            for (size_t i = 0; i < d->targets.count && !d->was_published; i++)
                d->was_published = strs_has(&before, d->targets.items[i]);
        }
    strs_clear(&before);
    plan(s, sets, count, &w);
    wants_clear(&w);
    apply_next(s);
}

static void pass_start(struct sw_dns_sync *s)
{
    if (!s->running)
        return;
    if (s->in_flight) {
        s->dirty = true;
        return;
    }
    s->in_flight = true;
    s->dirty = false;
    s->pass_seq++;
    int rc = SW_ENOTSUP;
    if (s->opts.ops->list != NULL)
        rc = s->opts.ops->list(s->opts.plugin_state, s->config->zone, listed, s);
    if (rc < 0) {
        char *text = sw_xasprintf("plugin '%s' refused to list %s: %s", s->plugin_name,
                                  s->config->zone, sw_strerror(rc));
        pass_failed(s, rc, text, false);
        free(text);
    }
}

static void drained(void *ud)
{
    struct deferred *d = ud;
    struct sw_dns_sync *s = d->s;
    d->timer = 0;
    for (struct deferred **pp = &s->deferred; *pp != NULL; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    if (d->was_published) {
        s->stats.withdrawals++;
        sw_log(SW_LOG_INFO, LOG, "unit %s drained from DNS; releasing it", d->unit_key);
        cJSON *data = cJSON_CreateObject();
        cJSON_AddStringToObject(data, "unit", d->unit_key);
        emit(s, "dns_drained", data);
    }
    sw_dns_release_cb resume = d->resume;
    void *resume_ud = d->ud;
    char *key = d->unit_key;
    d->unit_key = NULL;
    deferred_free(d);
    resume(resume_ud, key);
    free(key);
}

static void pass_done(struct sw_dns_sync *s)
{
    s->in_flight = false;
    s->has_listing = true;
    s->stats.passes++;
    s->stats.last_ok_ms = now_ms(s);
    if (s->stats.consecutive_failures > 0)
        sw_log(SW_LOG_INFO, LOG, "zone %s in sync again after %d failed passes",
               s->config->zone, s->stats.consecutive_failures);
    s->stats.consecutive_failures = 0;
    s->backoff_ms = s->opts.retry_min_ms;
    strs_clear(&s->conflicts);
    s->conflicts = s->pass_conflicts;
    s->pass_conflicts.items = NULL;
    s->pass_conflicts.count = 0;
    for (struct deferred *d = s->deferred; d != NULL; d = d->next) {
        if (d->withdrawn || d->need_pass > s->pass_seq)
            continue;
        d->withdrawn = true;
        uint64_t wait = d->was_published ? (uint64_t)s->config->drain_ms : 0;
        if (d->was_published) {
            sw_log(SW_LOG_INFO, LOG, "unit %s withdrawn from DNS; release in %.1fs (drain)",
                   d->unit_key, (double)wait / 1000.0);
            cJSON *data = cJSON_CreateObject();
            cJSON_AddStringToObject(data, "unit", d->unit_key);
            cJSON_AddNumberToObject(data, "drain_ms", (double)wait);
            emit(s, "dns_withdrawn", data);
        }
        d->timer = sw_clock_timer_start(s->opts.clock, wait, drained, d);
    }
    if (s->dirty && s->kick_timer == 0)
        s->kick_timer = sw_clock_timer_start(s->opts.clock, 0, kick_fire, s);
}

static void pass_failed(struct sw_dns_sync *s, int code, const char *msg, bool soon)
{
    s->in_flight = false;
    s->dirty = true;
    s->stats.passes_failed++;
    s->stats.consecutive_failures++;
    uint64_t wait = soon ? s->opts.retry_min_ms : s->backoff_ms;
    if (!soon) {
        s->backoff_ms *= 2;
        if (s->backoff_ms > s->opts.retry_max_ms)
            s->backoff_ms = s->opts.retry_max_ms;
    }
    sw_log(soon ? SW_LOG_INFO : SW_LOG_WARN, LOG, "%s (%s; again in %.1fs)", msg,
           soon ? "the zone changed since it was listed" : "DNS not updated, releases wait",
           (double)wait / 1000.0);
    /* One alert when a failure streak starts, then one every 10 failures. */
    if (!soon && (s->stats.consecutive_failures == 1 || s->stats.consecutive_failures % 10 == 0)) {
        cJSON *data = cJSON_CreateObject();
        cJSON_AddStringToObject(data, "reason", "dns_unavailable");
        cJSON_AddStringToObject(data, "message", msg);
        cJSON_AddStringToObject(data, "zone", s->config->zone);
        cJSON_AddNumberToObject(data, "failures", s->stats.consecutive_failures);
        cJSON_AddNumberToObject(data, "deferred_releases", (double)sw_dns_sync_deferred(s));
        emit(s, "alert", data);
    }
    stop_timer(s, &s->kick_timer);
    if (s->running && s->retry_timer == 0)
        s->retry_timer = sw_clock_timer_start(s->opts.clock, wait, retry_fire, s);
}

/* ---- make-before-break ------------------------------------------------------------------ */

int sw_dns_sync_before_release(struct sw_dns_sync *s, const struct sw_unit *u,
                               sw_dns_release_cb resume, void *ud)
{
    if (s == NULL || !s->running || u == NULL || resume == NULL)
        return 0;
    struct strs targets = {0};
    for (size_t i = 0; i < u->uri_count; i++) {
        char host[256];
        if (!sw_dns_uri_host(u->uris[i], host, sizeof(host)))
            continue;
        char *c = target_key(host);
        strs_add(&targets, c);
        free(c);
    }
    bool published = false;
    for (size_t i = 0; i < targets.count && !published; i++)
        published = strs_has(&s->live_targets, targets.items[i]);
    bool managed = false;
    for (size_t r = 0; r < s->config->record_count && !managed; r++)
        managed = strcmp(s->config->records[r].group, u->group) == 0;
    /* Certain it never reached DNS: nothing to drain. */
    if (targets.count == 0 || !managed ||
        (s->has_listing && !s->in_flight && !published)) {
        strs_clear(&targets);
        return 0;
    }
    struct deferred *d = sw_xcalloc(1, sizeof(*d));
    d->s = s;
    d->unit_key = sw_xstrdup(u->key);
    d->targets = targets;
    d->need_pass = s->pass_seq + 1;
    d->resume = resume;
    d->ud = ud;
    d->next = s->deferred;
    s->deferred = d;
    sw_log(SW_LOG_INFO, LOG, "release of unit %s waits for its DNS withdrawal and %.1fs of "
           "drain", u->key, (double)s->config->drain_ms / 1000.0);
    sw_dns_sync_kick(s);
    return 1;
}

size_t sw_dns_sync_deferred(const struct sw_dns_sync *s)
{
    size_t n = 0;
    for (const struct deferred *d = s != NULL ? s->deferred : NULL; d != NULL; d = d->next)
        n++;
    return n;
}

bool sw_dns_sync_settled(const struct sw_dns_sync *s)
{
    return s->has_listing && !s->in_flight && !s->dirty && s->kick_timer == 0 &&
           s->stats.consecutive_failures == 0;
}

const struct sw_dns_sync_stats *sw_dns_sync_stats(const struct sw_dns_sync *s)
{
    return &s->stats;
}
