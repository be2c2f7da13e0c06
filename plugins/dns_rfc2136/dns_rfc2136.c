/* dns_rfc2136 — DNS records through standard dynamic update (kind DNS).
 *
 * Updates are RFC 2136 UPDATE messages signed with TSIG hmac-sha256 (RFC 8945); the zone
 * is listed with a (signed) AXFR. Works with BIND 9, Knot and PowerDNS (any server that
 * accepts TSIG-signed updates and transfers for the zone). update_if turns the expected
 * RRset into prerequisites ("RRset does not exist" or "RRset exists, value dependent"), so
 * the check and the change are one atomic transaction on the server: a concurrent change
 * makes the server answer NXRRSET/YXRRSET and the op fails with SWP_EAGAIN.
 *
 * Transport: UDP when the signed message fits udp_max bytes, TCP otherwise; a truncated
 * (TC) or lost UDP reply is retried once over TCP. All socket work goes through the host's
 * net_exchange service (the plugin never touches libuv), and every reply must carry a
 * valid TSIG when a key is configured.
 *
 * Config:
 *   server            numeric IPv4/IPv6 address of the primary        (required)
 *   port              default 53
 *   tsig_key          TSIG key name; absent: unsigned updates (only for servers that
 *                     allow them by address, which is weaker)
 *   tsig_secret_env   environment variable holding the base64 secret (SECRET_ENV)
 *   timeout           per exchange, default "5s"
 *   udp_max           largest message sent over UDP, default 512 (RFC 1035 without EDNS)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns_wire.h"
#include "steward/swp_plugin.h"
#include "steward/swp_util.h"

#define TSIG_FUDGE 300
#define MAX_TRANSFER_BYTES (16u * 1024 * 1024)

enum op_kind { OP_LIST, OP_WRITE };

struct plugin;

struct op {
    struct op *next;
    struct plugin *p;
    int kind;
    char *zone;
    char *what;               /* "update of www.example.test./A", for messages */
    struct dns_buf unsigned_msg; /* the request before signing (re-signed per attempt) */
    uint16_t id;
    uint8_t mac[DNS_TSIG_MAC_LEN];
    bool tcp;
    uint64_t exchange;
    /* AXFR framing: frames already scanned and SOAs seen in them. */
    size_t scanned;
    int soa_seen;
    swp_done_cb done;
    swp_rrsets_cb list_done;
    void *ud;
};

struct plugin {
    const struct swp_host *host;
    char *server;
    uint16_t port;
    bool signed_updates;
    char *key_name;
    struct dns_tsig_key key;
    uint32_t timeout_ms;
    size_t udp_max;
    struct op *ops;
};

/* ---- op lifecycle ----------------------------------------------------------------------- */

static struct op *op_new(struct plugin *p, int kind, const char *zone, const char *what)
{
    struct op *op = swp_xcalloc(1, sizeof(*op));
    op->p = p;
    op->kind = kind;
    op->zone = swp_xstrdup(zone);
    op->what = swp_xstrdup(what);
    dns_buf_init(&op->unsigned_msg);
    op->next = p->ops;
    p->ops = op;
    return op;
}

static void op_free(struct op *op)
{
    struct plugin *p = op->p;
    for (struct op **pp = &p->ops; *pp != NULL; pp = &(*pp)->next)
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    dns_buf_free(&op->unsigned_msg);
    free(op->zone);
    free(op->what);
    free(op);
}

static void op_fail(struct op *op, int code, const struct swp_error *err)
{
    if (op->kind == OP_LIST)
        op->list_done(op->ud, code, NULL, 0, err);
    else
        op->done(op->ud, code, err);
    op_free(op);
}

static void op_failf(struct op *op, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void op_failf(struct op *op, int code, const char *fmt, ...)
{
    struct swp_error err = {code, ""};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
    va_end(ap);
    op->p->host->log(op->p->host, SWP_LOG_WARN, "%s", err.msg);
    op_fail(op, code, &err);
}

/* ---- sending ---------------------------------------------------------------------------- */

static void on_reply(void *ud, int status, const uint8_t *reply, size_t len);

/* The TSIG time is checked by the server against its own wall clock, so it must be the
 * real time even when steward's clock is compressed (--speed): a protocol field, not a
 * decision. */
static uint64_t wall_seconds(void)
{
    return (uint64_t)time(NULL);
}

static long axfr_complete(void *ud, const uint8_t *data, size_t len);

/* Sign a fresh copy of the request and send it; 0 or a negative code (nothing sent). */
static int send_attempt(struct op *op, bool tcp)
{
    struct plugin *p = op->p;
    struct dns_buf body, msg;
    dns_buf_init(&body);
    dns_buf_init(&msg);
    dns_buf_put(&body, op->unsigned_msg.data, op->unsigned_msg.len);
    if (body.failed || body.len < DNS_HEADER_LEN) {
        dns_buf_free(&body);
        return SWP_EINVAL;
    }
    op->id = (uint16_t)p->host->random_u64(p->host);
    body.data[0] = (uint8_t)(op->id >> 8);
    body.data[1] = (uint8_t)op->id;
    if (p->signed_updates &&
        dns_tsig_sign(&body, &p->key, wall_seconds(), TSIG_FUDGE, op->mac) < 0) {
        dns_buf_free(&body);
        return SWP_ETOOBIG;
    }
    if (tcp)
        dns_buf_u16(&msg, (uint16_t)body.len); /* the RFC 1035 TCP length prefix */
    dns_buf_put(&msg, body.data, body.len);
    dns_buf_free(&body);
    if (msg.failed) {
        dns_buf_free(&msg);
        return SWP_ETOOBIG;
    }
    struct swp_net_req req = {
        .size = sizeof(req),
        .transport = tcp ? SWP_NET_TCP : SWP_NET_UDP,
        .address = p->server,
        .port = p->port,
        .data = msg.data,
        .len = msg.len,
        .framing = op->kind == OP_LIST ? SWP_NET_FRAME_CUSTOM : SWP_NET_FRAME_LEN16,
        .complete = op->kind == OP_LIST ? axfr_complete : NULL,
        .timeout_ms = p->timeout_ms,
        .max_reply_bytes = op->kind == OP_LIST ? MAX_TRANSFER_BYTES : 0,
    };
    op->tcp = tcp;
    op->scanned = 0;
    op->soa_seen = 0;
    op->exchange = p->host->net_exchange(p->host, &req, on_reply, op);
    dns_buf_free(&msg);
    return op->exchange != 0 ? 0 : SWP_ENOTSUP;
}

static int start(struct op *op)
{
    struct plugin *p = op->p;
    bool tcp = op->kind == OP_LIST ||
               op->unsigned_msg.len + (p->signed_updates ? 100 + (size_t)p->key.name_len : 0) >
                   p->udp_max;
    int rc = send_attempt(op, tcp);
    if (rc < 0) {
        if (rc == SWP_ENOTSUP)
            p->host->log(p->host, SWP_LOG_ERROR,
                         "the host offers no network exchange (simulation?): cannot reach %s",
                         p->server);
        op_free(op);
    }
    return rc;
}

/* ---- replies ---------------------------------------------------------------------------- */

/* Checks the reply's TSIG. Returns 0, or fails op and returns -1. */
static int check_tsig(struct op *op, const uint8_t *msg, size_t len, int rcode,
                      const uint8_t *request_mac, bool timers_only, uint8_t *mac_out)
{
    struct plugin *p = op->p;
    if (!p->signed_updates)
        return 0;
    int server_error = 0;
    int rc = dns_tsig_verify(msg, len, &p->key, request_mac, DNS_TSIG_MAC_LEN, timers_only,
                             wall_seconds(), &server_error, mac_out);
    char buf[16];
    switch (rc) {
    case DNS_TSIG_OK:
        return 0;
    case DNS_TSIG_SERVER_ERROR:
        if (server_error == DNS_RCODE_BADSIG)
            op_failf(op, SWP_EIO, "%s: %s refused the TSIG signature (BADSIG): the secret of "
                     "key '%s' does not match the server's", op->what, p->server, p->key_name);
        else if (server_error == DNS_RCODE_BADKEY)
            op_failf(op, SWP_EIO, "%s: %s does not know TSIG key '%s' with hmac-sha256 "
                     "(BADKEY)", op->what, p->server, p->key_name);
        else if (server_error == DNS_RCODE_BADTIME)
            op_failf(op, SWP_EIO, "%s: %s refused the TSIG time (BADTIME): the clocks differ "
                     "by more than %d s", op->what, p->server, TSIG_FUDGE);
        else
            op_failf(op, SWP_EIO, "%s: %s answered TSIG error %s", op->what, p->server,
                     dns_rcode_name(server_error, buf));
        return -1;
    case DNS_TSIG_UNSIGNED:
        if (rcode != DNS_RCODE_NOERROR) {
            op_failf(op, SWP_EIO, "%s: %s refused it (%s, unsigned reply)", op->what,
                     p->server, dns_rcode_name(rcode, buf));
            return -1;
        }
        op_failf(op, SWP_EIO, "%s: the reply from %s is not signed with key '%s'; ignoring it",
                 op->what, p->server, p->key_name);
        return -1;
    case DNS_TSIG_WRONG_KEY:
        op_failf(op, SWP_EIO, "%s: the reply from %s is signed with another key", op->what,
                 p->server);
        return -1;
    case DNS_TSIG_BAD_TIME:
        op_failf(op, SWP_EIO, "%s: the reply from %s has a TSIG time outside %d s of ours",
                 op->what, p->server, TSIG_FUDGE);
        return -1;
    case DNS_TSIG_BAD_MAC:
        op_failf(op, SWP_EIO, "%s: the reply from %s does not verify with key '%s' (forged "
                 "or corrupted)", op->what, p->server, p->key_name);
        return -1;
    default:
        op_failf(op, SWP_EIO, "%s: the reply from %s has a malformed TSIG", op->what,
                 p->server);
        return -1;
    }
}

static void write_reply(struct op *op, const uint8_t *msg, size_t len)
{
    struct plugin *p = op->p;
    struct dns_msg m;
    if (dns_msg_parse(msg, len, &m) < 0) {
        op_failf(op, SWP_EIO, "%s: malformed reply from %s", op->what, p->server);
        return;
    }
    bool matches = m.qr && m.id == op->id && m.opcode == DNS_OPCODE_UPDATE;
    int rcode = m.rcode;
    bool truncated = m.tc;
    dns_msg_free(&m);
    if (!matches) {
        op_failf(op, SWP_EIO, "%s: the reply from %s does not answer our update", op->what,
                 p->server);
        return;
    }
    if (truncated && !op->tcp) {
        int rc = send_attempt(op, true);
        if (rc < 0)
            op_failf(op, rc, "%s: cannot retry over TCP", op->what);
        return;
    }
    if (check_tsig(op, msg, len, rcode, op->mac, false, NULL) < 0)
        return;
    char buf[16];
    switch (rcode) {
    case DNS_RCODE_NOERROR:
        op->done(op->ud, SWP_OK, NULL);
        op_free(op);
        return;
    case DNS_RCODE_NXRRSET:
    case DNS_RCODE_YXRRSET:
    case DNS_RCODE_NXDOMAIN:
    case DNS_RCODE_YXDOMAIN:
        op_failf(op, SWP_EAGAIN, "%s: the records changed on %s since they were listed (%s): "
                 "concurrent change", op->what, p->server, dns_rcode_name(rcode, buf));
        return;
    case DNS_RCODE_REFUSED:
        op_failf(op, SWP_EIO, "%s: %s refused the update (REFUSED): is the key allowed to "
                 "update zone %s?", op->what, p->server, op->zone);
        return;
    case DNS_RCODE_NOTAUTH:
        op_failf(op, SWP_EIO, "%s: %s refused it (NOTAUTH): not authorized%s, or not "
                 "authoritative for %s", op->what, p->server,
                 p->signed_updates ? "" : " without a TSIG key", op->zone);
        return;
    case DNS_RCODE_NOTZONE:
        op_failf(op, SWP_EIO, "%s: %s says the name is outside zone %s (NOTZONE)", op->what,
                 p->server, op->zone);
        return;
    default:
        op_failf(op, SWP_EIO, "%s: %s answered %s", op->what, p->server,
                 dns_rcode_name(rcode, buf));
        return;
    }
}

/* ---- AXFR (list) ------------------------------------------------------------------------- */

/* Complete when a frame carries an error or the closing SOA has arrived. */
static long axfr_complete(void *ud, const uint8_t *data, size_t len)
{
    struct op *op = ud;
    while (op->scanned + 2 <= len) {
        size_t frame = (size_t)data[op->scanned] << 8 | data[op->scanned + 1];
        if (op->scanned + 2 + frame > len)
            return 0;
        struct dns_msg m;
        if (dns_msg_parse(data + op->scanned + 2, frame, &m) < 0)
            return -1;
        int rcode = m.rcode;
        for (size_t i = 0; i < m.rr_count; i++)
            if (m.rrs[i].section == DNS_SECTION_ANSWER && m.rrs[i].type == DNS_TYPE_SOA)
                op->soa_seen++;
        dns_msg_free(&m);
        op->scanned += 2 + frame;
        if (rcode != DNS_RCODE_NOERROR || op->soa_seen >= 2)
            return (long)op->scanned;
    }
    return 0;
}

struct rrset_acc {
    struct swp_rrset *sets;
    char ***records; /* per set, owned strings */
    size_t count;
    size_t cap;
};

static void acc_add(struct rrset_acc *acc, const char *name, const char *type, uint32_t ttl,
                    const char *text)
{
    size_t i = 0;
    for (; i < acc->count; i++)
        if (strcmp(acc->sets[i].type, type) == 0 && dns_name_equal(acc->sets[i].name, name))
            break;
    if (i == acc->count) {
        if (acc->count == acc->cap) {
            acc->cap = acc->cap ? acc->cap * 2 : 16;
            acc->sets = realloc(acc->sets, acc->cap * sizeof(*acc->sets));
            acc->records = realloc(acc->records, acc->cap * sizeof(*acc->records));
            if (acc->sets == NULL || acc->records == NULL)
                abort();
        }
        memset(&acc->sets[i], 0, sizeof(acc->sets[i]));
        acc->sets[i].name = swp_xstrdup(name);
        acc->sets[i].type = swp_xstrdup(type);
        acc->sets[i].ttl = ttl;
        acc->records[i] = NULL;
        acc->count++;
    }
    struct swp_rrset *set = &acc->sets[i];
    for (size_t r = 0; r < set->record_count; r++)
        if (strcmp(set->records[r], text) == 0)
            return; /* the closing SOA repeats the opening one */
    acc->records[i] = realloc(acc->records[i], (set->record_count + 1) * sizeof(char *));
    if (acc->records[i] == NULL)
        abort();
    acc->records[i][set->record_count] = swp_xstrdup(text);
    set->record_count++;
    set->records = (const char *const *)acc->records[i];
}

static void acc_free(struct rrset_acc *acc)
{
    for (size_t i = 0; i < acc->count; i++) {
        for (size_t r = 0; r < acc->sets[i].record_count; r++)
            free(acc->records[i][r]);
        free(acc->records[i]);
        free((char *)acc->sets[i].name);
        free((char *)acc->sets[i].type);
    }
    free(acc->sets);
    free(acc->records);
}

static void list_reply(struct op *op, const uint8_t *data, size_t len)
{
    struct plugin *p = op->p;
    struct rrset_acc acc = {0};
    uint8_t prev_mac[DNS_TSIG_MAC_LEN];
    memcpy(prev_mac, op->mac, sizeof(prev_mac));
    size_t pos = 0;
    int index = 0;
    char buf[16];
    while (pos + 2 <= len) {
        size_t frame = (size_t)data[pos] << 8 | data[pos + 1];
        const uint8_t *msg = data + pos + 2;
        pos += 2 + frame;
        struct dns_msg m;
        if (pos > len || dns_msg_parse(msg, frame, &m) < 0) {
            acc_free(&acc);
            op_failf(op, SWP_EIO, "%s: malformed transfer message from %s", op->what,
                     p->server);
            return;
        }
        if (!m.qr || m.id != op->id) {
            dns_msg_free(&m);
            acc_free(&acc);
            op_failf(op, SWP_EIO, "%s: the transfer from %s does not answer our query",
                     op->what, p->server);
            return;
        }
        int rcode = m.rcode;
        /* RFC 8945 section 5.3.1: the first message is verified against the request MAC,
         * each later one against the previous message's MAC, timers only. */
        if (check_tsig(op, msg, frame, rcode, prev_mac, index > 0, prev_mac) < 0) {
            dns_msg_free(&m);
            acc_free(&acc);
            return;
        }
        if (rcode != DNS_RCODE_NOERROR) {
            dns_msg_free(&m);
            acc_free(&acc);
            op_failf(op, SWP_EIO, "%s: %s refused the zone transfer (%s): is the key allowed to transfer "
                     "%s?", op->what, p->server, dns_rcode_name(rcode, buf), op->zone);
            return;
        }
        for (size_t i = 0; i < m.rr_count; i++) {
            const struct dns_rr *rr = &m.rrs[i];
            if (rr->section != DNS_SECTION_ANSWER || rr->klass != DNS_CLASS_IN)
                continue;
            char text[4096];
            if (dns_rdata_to_text(msg, frame, rr->type, rr->rdata_offset, rr->rdata_len, text,
                                  sizeof(text)) < 0)
                continue; /* a record we cannot show is one we never manage */
            acc_add(&acc, rr->name, dns_type_name(rr->type, buf), rr->ttl, text);
        }
        dns_msg_free(&m);
        index++;
    }
    op->list_done(op->ud, SWP_OK, acc.sets, acc.count, NULL);
    acc_free(&acc);
    op_free(op);
}

static void on_reply(void *ud, int status, const uint8_t *reply, size_t len)
{
    struct op *op = ud;
    struct plugin *p = op->p;
    op->exchange = 0;
    if (status == SWP_ECANCELED) {
        struct swp_error err = {SWP_ECANCELED, "cancelled"};
        op_fail(op, SWP_ECANCELED, &err);
        return;
    }
    if (status < 0) {
        if (!op->tcp && (status == SWP_ETIMEDOUT || status == SWP_ETOOBIG)) {
            p->host->log(p->host, SWP_LOG_INFO, "%s: no usable UDP reply from %s; trying TCP",
                         op->what, p->server);
            int rc = send_attempt(op, true);
            if (rc < 0)
                op_failf(op, rc, "%s: cannot retry over TCP", op->what);
            return;
        }
        op_failf(op, status == SWP_ETIMEDOUT ? SWP_ETIMEDOUT : SWP_EIO,
                 "%s: no reply from %s port %u over %s: %s", op->what, p->server, p->port,
                 op->tcp ? "TCP" : "UDP",
                 status == SWP_ETIMEDOUT ? "timed out" : "connection failed");
        return;
    }
    if (op->kind == OP_LIST) {
        list_reply(op, reply, len);
        return;
    }
    if (op->tcp) {
        if (len < 2) {
            op_failf(op, SWP_EIO, "%s: short TCP reply from %s", op->what, p->server);
            return;
        }
        reply += 2;
        len -= 2;
    }
    write_reply(op, reply, len);
}

/* ---- ops -------------------------------------------------------------------------------- */

static int type_code(const char *type)
{
    int t = dns_type_from_name(type);
    return t == DNS_TYPE_A || t == DNS_TYPE_AAAA || t == DNS_TYPE_CNAME || t == DNS_TYPE_TXT ||
                   t == DNS_TYPE_NS
               ? t
               : -1;
}

static int dns_list(void *state, const char *zone, swp_rrsets_cb done, void *ud)
{
    struct plugin *p = state;
    if (zone == NULL || done == NULL)
        return SWP_EINVAL;
    char what[300];
    snprintf(what, sizeof(what), "transfer of %s", zone);
    struct op *op = op_new(p, OP_LIST, zone, what);
    op->list_done = done;
    op->ud = ud;
    struct dns_buf q;
    if (dns_query_build(&q, 0, zone, DNS_TYPE_AXFR) < 0) {
        dns_buf_free(&q);
        op_free(op);
        return SWP_EINVAL;
    }
    op->unsigned_msg = q;
    return start(op);
}

/* Build and send an update; expected NULL means no prerequisite. */
static int write_op(struct plugin *p, const char *zone, const struct swp_rrset *expected,
                    const char *name, const char *type, uint32_t ttl,
                    const char *const *records, size_t record_count, const char *verb,
                    swp_done_cb done, void *ud)
{
    int t = type_code(type);
    if (zone == NULL || name == NULL || done == NULL || t < 0)
        return SWP_EINVAL;
    char what[400];
    snprintf(what, sizeof(what), "%s of %s/%s", verb, name, type);
    struct op *op = op_new(p, OP_WRITE, zone, what);
    op->done = done;
    op->ud = ud;
    struct dns_update u;
    dns_update_begin(&u, 0, zone);
    int rc = 0;
    if (expected != NULL) {
        if (expected->record_count == 0)
            rc = dns_update_require_absent(&u, name, t);
        for (size_t i = 0; i < expected->record_count && rc == 0; i++)
            rc = dns_update_require_value(&u, name, t, expected->records[i]);
    }
    if (rc == 0)
        rc = dns_update_delete_rrset(&u, name, t);
    for (size_t i = 0; i < record_count && rc == 0; i++)
        rc = dns_update_add(&u, name, t, ttl, records[i]);
    if (rc == 0)
        rc = dns_update_finish(&u);
    if (rc < 0) {
        p->host->log(p->host, SWP_LOG_WARN, "%s: a name or record is not valid for %s", what,
                     type);
        dns_update_free(&u);
        op_free(op);
        return SWP_EINVAL;
    }
    op->unsigned_msg = u.buf;
    return start(op);
}

static int dns_upsert(void *state, const char *zone, const struct swp_rrset *rrset,
                      swp_done_cb done, void *ud)
{
    if (rrset == NULL || rrset->record_count == 0)
        return SWP_EINVAL;
    return write_op(state, zone, NULL, rrset->name, rrset->type, rrset->ttl, rrset->records,
                    rrset->record_count, "update", done, ud);
}

static int dns_remove(void *state, const char *zone, const char *name, const char *type,
                      swp_done_cb done, void *ud)
{
    return write_op(state, zone, NULL, name, type, 0, NULL, 0, "removal", done, ud);
}

static int dns_update_if(void *state, const char *zone, const struct swp_rrset *expected,
                         const struct swp_rrset *desired, swp_done_cb done, void *ud)
{
    if (expected == NULL || desired == NULL || desired->name == NULL || desired->type == NULL)
        return SWP_EINVAL;
    return write_op(state, zone, expected, desired->name, desired->type, desired->ttl,
                    desired->records, desired->record_count,
                    desired->record_count ? "update" : "removal", done, ud);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static int rfc2136_init(const struct swp_host *host, void **state, struct swp_error *err)
{
    if (host->size < offsetof(struct swp_host, net_cancel) + sizeof(host->net_cancel)) {
        swp_set_error(err, SWP_EABI,
                      "this steward has no network exchange service (host ABI %u.%u)",
                      host->abi_major, host->abi_minor);
        return SWP_EABI;
    }
    struct plugin *p = swp_xcalloc(1, sizeof(*p));
    p->host = host;
    p->server = swp_xstrdup(host->cfg_str(host, "server"));
    int64_t port = host->cfg_int(host, "port");
    int64_t udp_max = host->cfg_int(host, "udp_max");
    p->timeout_ms = (uint32_t)host->cfg_int(host, "timeout");
    const char *key_name = host->cfg_str(host, "tsig_key");
    const char *secret = host->cfg_str(host, "tsig_secret_env");
    int rc = SWP_ECONFIG;
    if (port < 1 || port > 65535) {
        swp_set_error(err, rc, "port: expected 1..65535, got %lld", (long long)port);
        goto fail;
    }
    p->port = (uint16_t)port;
    if (udp_max < 64 || udp_max > 65535) {
        swp_set_error(err, rc, "udp_max: expected 64..65535, got %lld", (long long)udp_max);
        goto fail;
    }
    p->udp_max = (size_t)udp_max;
    if (p->timeout_ms == 0)
        p->timeout_ms = 5000;
    if (key_name != NULL) {
        if (secret == NULL || secret[0] == '\0') {
            swp_set_error(err, rc,
                          "tsig_secret_env: the environment variable holding key '%s''s "
                          "secret is not set",
                          key_name);
            goto fail;
        }
        if (dns_tsig_key_init(&p->key, key_name, secret) < 0) {
            swp_set_error(err, rc, "tsig_key '%s': invalid key name, or the secret is not base64",
                          key_name);
            goto fail;
        }
        p->signed_updates = true;
        p->key_name = swp_xstrdup(key_name);
    } else {
        host->log(host, SWP_LOG_WARN, "no tsig_key: updates to %s are unsigned", p->server);
    }
    *state = p;
    return SWP_OK;
fail:
    free(p->server);
    free(p);
    return rc;
}

static void rfc2136_destroy(void *state)
{
    struct plugin *p = state;
    while (p->ops != NULL) {
        struct op *op = p->ops;
        if (op->exchange != 0) {
            /* Cancelling completes the op through on_reply. */
            p->host->net_cancel(p->host, op->exchange);
            if (p->ops == op) {
                struct swp_error err = {SWP_ECANCELED, "cancelled"};
                op_fail(op, SWP_ECANCELED, &err);
            }
        } else {
            struct swp_error err = {SWP_ECANCELED, "cancelled"};
            op_fail(op, SWP_ECANCELED, &err);
        }
    }
    memset(&p->key, 0, sizeof(p->key));
    free(p->server);
    free(p->key_name);
    free(p);
}

static const struct swp_config_entry CONFIG[] = {
    {"server", SWP_CFG_STRING, NULL, true, "numeric IPv4/IPv6 address of the primary server"},
    {"port", SWP_CFG_INT, "53", false, "server port"},
    {"tsig_key", SWP_CFG_STRING, NULL, false,
     "TSIG key name (hmac-sha256); absent: unsigned updates"},
    {"tsig_secret_env", SWP_CFG_SECRET_ENV, NULL, false,
     "environment variable holding the key's base64 secret"},
    {"timeout", SWP_CFG_DURATION, "\"5s\"", false, "per exchange"},
    {"udp_max", SWP_CFG_INT, "512", false, "largest message sent over UDP; larger goes TCP"},
};

static const struct swp_dns_ops DNS_OPS = {
    .size = sizeof(struct swp_dns_ops),
    .list = dns_list,
    .upsert = dns_upsert,
    .remove = dns_remove,
    .update_if = dns_update_if,
};

static const struct swp_plugin PLUGIN = {
    .abi_major = SWP_ABI_MAJOR,
    .abi_minor = SWP_ABI_MINOR,
    .size = sizeof(struct swp_plugin),
    .name = "dns_rfc2136",
    .version = "1.0.0",
    .description = "DNS records by RFC 2136 dynamic update signed with TSIG hmac-sha256 "
                   "(BIND 9, Knot, PowerDNS); zone listed by AXFR",
    .kinds = SWP_KIND_DNS,
    .config = CONFIG,
    .config_count = sizeof(CONFIG) / sizeof(CONFIG[0]),
    .init = rfc2136_init,
    .destroy = rfc2136_destroy,
    .dns = &DNS_OPS,
};

SWP_PLUGIN_EXPORT const struct swp_plugin *swp_plugin_entry(void)
{
    return &PLUGIN;
}
