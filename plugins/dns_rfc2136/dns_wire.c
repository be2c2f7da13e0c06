/* dns_wire.c — DNS wire format, RFC 2136 updates and TSIG (see dns_wire.h). */
#include "dns_wire.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sha256.h"

#define MAX_RRS 4096
#define MAX_POINTER_HOPS 128

/* hmac-sha256. in canonical wire form (RFC 8945 section 6). */
static const uint8_t HMAC_SHA256_NAME[] = {11, 'h', 'm', 'a', 'c', '-', 's', 'h',
                                           'a', '2', '5', '6', 0};

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

const char *dns_rcode_name(int rcode, char buf[16])
{
    static const char *const names[] = {"NOERROR", "FORMERR",  "SERVFAIL", "NXDOMAIN",
                                        "NOTIMP",  "REFUSED",  "YXDOMAIN", "YXRRSET",
                                        "NXRRSET", "NOTAUTH",  "NOTZONE"};
    if (rcode >= 0 && rcode < (int)(sizeof(names) / sizeof(names[0])))
        return names[rcode];
    switch (rcode) {
    case DNS_RCODE_BADSIG: return "BADSIG";
    case DNS_RCODE_BADKEY: return "BADKEY";
    case DNS_RCODE_BADTIME: return "BADTIME";
    case DNS_RCODE_BADTRUNC: return "BADTRUNC";
    default: break;
    }
    snprintf(buf, 16, "RCODE%d", rcode);
    return buf;
}

static const struct {
    const char *name;
    int type;
} TYPES[] = {
    {"A", DNS_TYPE_A},       {"NS", DNS_TYPE_NS},     {"CNAME", DNS_TYPE_CNAME},
    {"SOA", DNS_TYPE_SOA},   {"TXT", DNS_TYPE_TXT},   {"AAAA", DNS_TYPE_AAAA},
    {"OPT", DNS_TYPE_OPT},   {"TSIG", DNS_TYPE_TSIG}, {"AXFR", DNS_TYPE_AXFR},
    {"ANY", DNS_TYPE_ANY},
};

const char *dns_type_name(int type, char buf[16])
{
    for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++)
        if (TYPES[i].type == type)
            return TYPES[i].name;
    snprintf(buf, 16, "TYPE%d", type);
    return buf;
}

int dns_type_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++)
        if (strcasecmp(TYPES[i].name, name) == 0)
            return TYPES[i].type;
    if (strncasecmp(name, "TYPE", 4) == 0 && name[4] != '\0') {
        char *end = NULL;
        long v = strtol(name + 4, &end, 10);
        if (*end == '\0' && v > 0 && v <= 65535)
            return (int)v;
    }
    return -1;
}

/* ---- text output with bounds ------------------------------------------------------------ */

struct text {
    char *out;
    size_t size;
    size_t len;
    bool overflow;
};

static void text_putc(struct text *t, char ch)
{
    if (t->len + 1 >= t->size) {
        t->overflow = true;
        return;
    }
    t->out[t->len++] = ch;
    t->out[t->len] = '\0';
}

static void text_puts(struct text *t, const char *s)
{
    while (*s)
        text_putc(t, *s++);
}

/* One byte of a label or character-string: specials escaped, the rest \DDD if not
 * printable (RFC 1035 section 5.1). */
static void text_put_escaped(struct text *t, uint8_t ch, const char *specials)
{
    if (ch > 0x20 && ch < 0x7f && ch != '\\' && strchr(specials, ch) == NULL) {
        text_putc(t, (char)ch);
    } else if (ch > 0x20 && ch < 0x7f) {
        text_putc(t, '\\');
        text_putc(t, (char)ch);
    } else if (ch == ' ' && strchr(specials, ' ') == NULL) {
        text_putc(t, ' ');
    } else {
        char esc[5];
        snprintf(esc, sizeof(esc), "\\%03u", ch);
        text_puts(t, esc);
    }
}

/* ---- names ------------------------------------------------------------------------------ */

int dns_name_to_wire(const char *text, uint8_t out[DNS_NAME_WIRE_MAX], bool lower)
{
    if (text == NULL || text[0] == '\0')
        return -1;
    if (strcmp(text, ".") == 0) {
        out[0] = 0;
        return 1;
    }
    size_t pos = 1;       /* next byte to write; out[0] is the first label's length */
    size_t label_at = 0;  /* where the current label's length byte lives */
    size_t label_len = 0;
    for (const char *p = text;; p++) {
        if (*p == '\0' || *p == '.') {
            if (label_len == 0) {
                /* Only a final dot may end an empty label, and not after nothing. */
                if (*p == '.' || pos == 1)
                    return -1;
                break;
            }
            out[label_at] = (uint8_t)label_len;
            if (*p == '\0' || p[1] == '\0')
                break;
            label_at = pos;
            if (pos >= DNS_NAME_WIRE_MAX - 1)
                return -1;
            pos++;
            label_len = 0;
            continue;
        }
        unsigned ch = (unsigned char)*p;
        if (ch == '\\') {
            if (isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
                isdigit((unsigned char)p[3])) {
                ch = (unsigned)((p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0'));
                if (ch > 255)
                    return -1;
                p += 3;
            } else if (p[1] != '\0') {
                ch = (unsigned char)p[1];
                p++;
            } else {
                return -1;
            }
        }
        if (label_len == 63 || pos >= DNS_NAME_WIRE_MAX - 1)
            return -1;
        out[pos++] = (uint8_t)(lower ? tolower((int)ch) : (int)ch);
        label_len++;
    }
    if (pos >= DNS_NAME_WIRE_MAX)
        return -1;
    out[pos++] = 0;
    return (int)pos;
}

int dns_name_from_wire(const uint8_t *msg, size_t len, size_t *offset,
                       char out[DNS_NAME_TEXT_MAX])
{
    struct text t = {out, DNS_NAME_TEXT_MAX, 0, false};
    out[0] = '\0';
    size_t pos = *offset;
    size_t end = 0;
    bool jumped = false;
    int hops = 0;
    size_t wire_len = 0;
    for (;;) {
        if (pos >= len)
            return -1;
        uint8_t c = msg[pos];
        if ((c & 0xC0) == 0xC0) {
            if (pos + 1 >= len || ++hops > MAX_POINTER_HOPS)
                return -1;
            size_t target = (size_t)(c & 0x3F) << 8 | msg[pos + 1];
            if (target >= pos)
                return -1; /* only backwards: a pointer can never reach itself */
            if (!jumped) {
                end = pos + 2;
                jumped = true;
            }
            pos = target;
            continue;
        }
        if ((c & 0xC0) != 0)
            return -1; /* extended label types (RFC 6891 deprecated them) */
        if (c == 0) {
            pos++;
            break;
        }
        if (pos + 1 + c > len)
            return -1;
        wire_len += (size_t)c + 1;
        if (wire_len + 1 > DNS_NAME_WIRE_MAX)
            return -1;
        for (size_t i = 0; i < c; i++)
            text_put_escaped(&t, msg[pos + 1 + i], ". \"();");
        text_putc(&t, '.');
        pos += 1 + (size_t)c;
    }
    if (t.len == 0)
        text_putc(&t, '.');
    if (t.overflow)
        return -1;
    *offset = jumped ? end : pos;
    return 0;
}

bool dns_name_equal(const char *a, const char *b)
{
    uint8_t wa[DNS_NAME_WIRE_MAX], wb[DNS_NAME_WIRE_MAX];
    int la = dns_name_to_wire(a, wa, true);
    int lb = dns_name_to_wire(b, wb, true);
    return la > 0 && la == lb && memcmp(wa, wb, (size_t)la) == 0;
}

/* ---- buffer ----------------------------------------------------------------------------- */

void dns_buf_init(struct dns_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void dns_buf_free(struct dns_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void dns_buf_put(struct dns_buf *b, const void *data, size_t len)
{
    if (b->failed)
        return;
    if (b->len + len > DNS_MSG_MAX) {
        b->failed = true;
        return;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *grown = realloc(b->data, cap);
        if (grown == NULL) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
}

void dns_buf_u16(struct dns_buf *b, uint16_t v)
{
    uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    dns_buf_put(b, p, 2);
}

void dns_buf_u32(struct dns_buf *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    dns_buf_put(b, p, 4);
}

static int put_name(struct dns_buf *b, const char *name)
{
    uint8_t wire[DNS_NAME_WIRE_MAX];
    int n = dns_name_to_wire(name, wire, false);
    if (n < 0)
        return -1;
    dns_buf_put(b, wire, (size_t)n);
    return b->failed ? -1 : 0;
}

/* ---- RDATA from text -------------------------------------------------------------------- */

/* One TXT character-string starting at *p (quoted or a bare token); advances *p. */
static int txt_string(const char **p, struct dns_buf *out)
{
    uint8_t bytes[256];
    size_t n = 0;
    const char *s = *p;
    bool quoted = *s == '"';
    if (quoted)
        s++;
    for (;;) {
        unsigned ch = (unsigned char)*s;
        if (ch == '\0') {
            if (quoted)
                return -1; /* unterminated */
            break;
        }
        if (quoted && ch == '"') {
            s++;
            break;
        }
        if (!quoted && isspace((int)ch))
            break;
        if (ch == '\\') {
            if (isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[2]) &&
                isdigit((unsigned char)s[3])) {
                ch = (unsigned)((s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0'));
                if (ch > 255)
                    return -1;
                s += 3;
            } else if (s[1] != '\0') {
                ch = (unsigned char)s[1];
                s++;
            } else {
                return -1;
            }
        }
        if (n == 255)
            return -1;
        bytes[n++] = (uint8_t)ch;
        s++;
    }
    uint8_t len = (uint8_t)n;
    dns_buf_put(out, &len, 1);
    dns_buf_put(out, bytes, n);
    *p = s;
    return 0;
}

static int parse_u32(const char **p, uint32_t *out)
{
    while (isspace((unsigned char)**p))
        (*p)++;
    if (!isdigit((unsigned char)**p))
        return -1;
    uint64_t v = 0;
    while (isdigit((unsigned char)**p)) {
        v = v * 10 + (uint64_t)(**p - '0');
        if (v > UINT32_MAX)
            return -1;
        (*p)++;
    }
    *out = (uint32_t)v;
    return 0;
}

static int next_token(const char **p, char *out, size_t size)
{
    while (isspace((unsigned char)**p))
        (*p)++;
    size_t n = 0;
    while (**p != '\0' && !isspace((unsigned char)**p)) {
        if (n + 1 >= size)
            return -1;
        out[n++] = *(*p)++;
    }
    out[n] = '\0';
    return n > 0 ? 0 : -1;
}

int dns_rdata_from_text(int type, const char *text, struct dns_buf *out)
{
    if (text == NULL)
        return -1;
    size_t start = out->len;
    int rc = -1;
    switch (type) {
    case DNS_TYPE_A: {
        uint8_t addr[4];
        if (inet_pton(AF_INET, text, addr) == 1) {
            dns_buf_put(out, addr, 4);
            rc = 0;
        }
        break;
    }
    case DNS_TYPE_AAAA: {
        uint8_t addr[16];
        if (inet_pton(AF_INET6, text, addr) == 1) {
            dns_buf_put(out, addr, 16);
            rc = 0;
        }
        break;
    }
    case DNS_TYPE_CNAME:
    case DNS_TYPE_NS: {
        char name[DNS_NAME_TEXT_MAX];
        const char *p = text;
        if (next_token(&p, name, sizeof(name)) == 0 && *p == '\0')
            rc = put_name(out, name);
        break;
    }
    case DNS_TYPE_TXT: {
        const char *p = text;
        int strings = 0;
        rc = 0;
        for (;;) {
            while (isspace((unsigned char)*p))
                p++;
            if (*p == '\0')
                break;
            if (txt_string(&p, out) < 0) {
                rc = -1;
                break;
            }
            strings++;
        }
        if (strings == 0)
            rc = -1;
        break;
    }
    case DNS_TYPE_SOA: {
        char mname[DNS_NAME_TEXT_MAX], rname[DNS_NAME_TEXT_MAX];
        const char *p = text;
        uint32_t v[5];
        if (next_token(&p, mname, sizeof(mname)) < 0 ||
            next_token(&p, rname, sizeof(rname)) < 0 || put_name(out, mname) < 0 ||
            put_name(out, rname) < 0)
            break;
        rc = 0;
        for (int i = 0; i < 5 && rc == 0; i++)
            rc = parse_u32(&p, &v[i]);
        while (rc == 0 && isspace((unsigned char)*p))
            p++;
        if (rc == 0 && *p != '\0')
            rc = -1;
        for (int i = 0; i < 5 && rc == 0; i++)
            dns_buf_u32(out, v[i]);
        break;
    }
    default:
        break;
    }
    if (rc < 0 || out->failed) {
        if (!out->failed)
            out->len = start;
        return -1;
    }
    return 0;
}

/* ---- RDATA to text ---------------------------------------------------------------------- */

/* A name inside RDATA: it must end inside the RDATA. */
static int rdata_name(const uint8_t *msg, size_t rdata_end, size_t *pos, struct text *t)
{
    char name[DNS_NAME_TEXT_MAX];
    if (dns_name_from_wire(msg, rdata_end, pos, name) < 0)
        return -1;
    text_puts(t, name);
    return 0;
}

int dns_rdata_to_text(const uint8_t *msg, size_t len, int type, size_t rdata_offset,
                      size_t rdata_len, char *out, size_t out_size)
{
    if (out_size == 0 || rdata_offset > len || rdata_len > len - rdata_offset)
        return -1;
    struct text t = {out, out_size, 0, false};
    out[0] = '\0';
    const uint8_t *rd = msg + rdata_offset;
    size_t end = rdata_offset + rdata_len;
    size_t pos = rdata_offset;
    char addr[INET6_ADDRSTRLEN];
    switch (type) {
    case DNS_TYPE_A:
        if (rdata_len != 4 || inet_ntop(AF_INET, rd, addr, sizeof(addr)) == NULL)
            return -1;
        text_puts(&t, addr);
        break;
    case DNS_TYPE_AAAA:
        if (rdata_len != 16 || inet_ntop(AF_INET6, rd, addr, sizeof(addr)) == NULL)
            return -1;
        text_puts(&t, addr);
        break;
    case DNS_TYPE_CNAME:
    case DNS_TYPE_NS:
        if (rdata_name(msg, end, &pos, &t) < 0 || pos != end)
            return -1;
        break;
    case DNS_TYPE_TXT:
        if (rdata_len == 0)
            return -1;
        while (pos < end) {
            size_t n = msg[pos++];
            if (n > end - pos)
                return -1;
            if (pos - 1 > rdata_offset)
                text_putc(&t, ' ');
            text_putc(&t, '"');
            for (size_t i = 0; i < n; i++)
                text_put_escaped(&t, msg[pos + i], "\"");
            text_putc(&t, '"');
            pos += n;
        }
        break;
    case DNS_TYPE_SOA: {
        if (rdata_name(msg, end, &pos, &t) < 0)
            return -1;
        text_putc(&t, ' ');
        if (rdata_name(msg, end, &pos, &t) < 0 || end - pos != 20)
            return -1;
        for (int i = 0; i < 5; i++) {
            char num[16];
            snprintf(num, sizeof(num), " %u", get32(msg + pos + 4 * (size_t)i));
            text_puts(&t, num);
        }
        break;
    }
    default: {
        char head[32];
        snprintf(head, sizeof(head), "\\# %zu", rdata_len);
        text_puts(&t, head);
        if (rdata_len > 0)
            text_putc(&t, ' ');
        for (size_t i = 0; i < rdata_len; i++) {
            char hex[3];
            snprintf(hex, sizeof(hex), "%02x", rd[i]);
            text_puts(&t, hex);
        }
        break;
    }
    }
    return t.overflow ? -1 : 0;
}

/* ---- messages --------------------------------------------------------------------------- */

int dns_msg_parse(const uint8_t *data, size_t len, struct dns_msg *msg)
{
    memset(msg, 0, sizeof(*msg));
    if (data == NULL || len < DNS_HEADER_LEN || len > DNS_MSG_MAX)
        return -1;
    msg->id = get16(data);
    msg->flags = get16(data + 2);
    msg->qr = (msg->flags & 0x8000) != 0;
    msg->opcode = (msg->flags >> 11) & 0xF;
    msg->tc = (msg->flags & 0x0200) != 0;
    msg->rcode = msg->flags & 0xF;
    for (int i = 0; i < 4; i++)
        msg->count[i] = get16(data + 4 + 2 * i);
    size_t total = (size_t)msg->count[1] + msg->count[2] + msg->count[3];
    /* Every RR takes at least 11 bytes: refuse counts the message cannot hold before
     * allocating for them. */
    if (total > MAX_RRS || total * 11 > len - DNS_HEADER_LEN)
        return -1;
    size_t pos = DNS_HEADER_LEN;
    for (uint16_t i = 0; i < msg->count[0]; i++) {
        char name[DNS_NAME_TEXT_MAX];
        if (dns_name_from_wire(data, len, &pos, name) < 0 || len - pos < 4)
            return -1;
        if (i == 0) {
            memcpy(msg->qname, name, sizeof(name));
            msg->qtype = get16(data + pos);
        }
        pos += 4;
    }
    msg->rrs = total > 0 ? calloc(total, sizeof(*msg->rrs)) : NULL;
    if (total > 0 && msg->rrs == NULL)
        return -1;
    for (int section = 1; section < 4; section++) {
        for (uint16_t i = 0; i < msg->count[section]; i++) {
            struct dns_rr *rr = &msg->rrs[msg->rr_count];
            rr->section = section;
            rr->offset = pos;
            if (dns_name_from_wire(data, len, &pos, rr->name) < 0 || len - pos < 10)
                goto fail;
            rr->type = get16(data + pos);
            rr->klass = get16(data + pos + 2);
            rr->ttl = get32(data + pos + 4);
            rr->rdata_len = get16(data + pos + 8);
            pos += 10;
            if (rr->rdata_len > len - pos)
                goto fail;
            rr->rdata_offset = pos;
            pos += rr->rdata_len;
            msg->rr_count++;
        }
    }
    if (pos != len)
        goto fail; /* trailing garbage */
    return 0;
fail:
    dns_msg_free(msg);
    return -1;
}

void dns_msg_free(struct dns_msg *msg)
{
    free(msg->rrs);
    msg->rrs = NULL;
    msg->rr_count = 0;
}

static void put_header(struct dns_buf *b, uint16_t id, uint16_t flags)
{
    dns_buf_u16(b, id);
    dns_buf_u16(b, flags);
    for (int i = 0; i < 4; i++)
        dns_buf_u16(b, 0);
}

int dns_query_build(struct dns_buf *out, uint16_t id, const char *name, int type)
{
    dns_buf_init(out);
    put_header(out, id, DNS_OPCODE_QUERY << 11);
    if (put_name(out, name) < 0)
        return -1;
    dns_buf_u16(out, (uint16_t)type);
    dns_buf_u16(out, DNS_CLASS_IN);
    if (out->failed)
        return -1;
    put16(out->data + 4, 1);
    return 0;
}

void dns_update_begin(struct dns_update *u, uint16_t id, const char *zone)
{
    memset(u, 0, sizeof(*u));
    dns_buf_init(&u->buf);
    put_header(&u->buf, id, DNS_OPCODE_UPDATE << 11);
    if (put_name(&u->buf, zone) < 0) {
        u->buf.failed = true;
        return;
    }
    dns_buf_u16(&u->buf, DNS_TYPE_SOA);
    dns_buf_u16(&u->buf, DNS_CLASS_IN);
    u->count[0] = 1;
    u->section = DNS_SECTION_ANSWER;
}

/* One RR in the current section; rdata_text NULL means empty RDATA. */
static int update_rr(struct dns_update *u, int section, const char *name, int type, int klass,
                     uint32_t ttl, const char *rdata_text)
{
    if (u->buf.failed || section < u->section || type <= 0 || type > 65535 ||
        u->count[section] == 65535)
        return -1;
    u->section = section;
    size_t start = u->buf.len;
    if (put_name(&u->buf, name) < 0)
        goto fail;
    dns_buf_u16(&u->buf, (uint16_t)type);
    dns_buf_u16(&u->buf, (uint16_t)klass);
    dns_buf_u32(&u->buf, ttl);
    size_t len_at = u->buf.len;
    dns_buf_u16(&u->buf, 0);
    if (rdata_text != NULL && dns_rdata_from_text(type, rdata_text, &u->buf) < 0)
        goto fail;
    if (u->buf.failed)
        return -1;
    put16(u->buf.data + len_at, (uint16_t)(u->buf.len - len_at - 2));
    u->count[section]++;
    return 0;
fail:
    if (!u->buf.failed)
        u->buf.len = start;
    return -1;
}

int dns_update_require_absent(struct dns_update *u, const char *name, int type)
{
    return update_rr(u, DNS_SECTION_ANSWER, name, type, DNS_CLASS_NONE, 0, NULL);
}

int dns_update_require_value(struct dns_update *u, const char *name, int type,
                             const char *rdata_text)
{
    if (rdata_text == NULL)
        return -1;
    return update_rr(u, DNS_SECTION_ANSWER, name, type, DNS_CLASS_IN, 0, rdata_text);
}

int dns_update_delete_rrset(struct dns_update *u, const char *name, int type)
{
    return update_rr(u, DNS_SECTION_AUTHORITY, name, type, DNS_CLASS_ANY, 0, NULL);
}

int dns_update_add(struct dns_update *u, const char *name, int type, uint32_t ttl,
                   const char *rdata_text)
{
    if (rdata_text == NULL)
        return -1;
    return update_rr(u, DNS_SECTION_AUTHORITY, name, type, DNS_CLASS_IN, ttl, rdata_text);
}

int dns_update_finish(struct dns_update *u)
{
    if (u->buf.failed || u->buf.len < DNS_HEADER_LEN)
        return -1;
    for (int i = 0; i < 4; i++)
        put16(u->buf.data + 4 + 2 * i, u->count[i]);
    return 0;
}

void dns_update_free(struct dns_update *u)
{
    dns_buf_free(&u->buf);
}

/* ---- TSIG ------------------------------------------------------------------------------- */

static int b64_value(int ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

int dns_tsig_key_init(struct dns_tsig_key *key, const char *name, const char *secret_base64)
{
    memset(key, 0, sizeof(*key));
    if (name == NULL || secret_base64 == NULL)
        return -1;
    key->name_len = dns_name_to_wire(name, key->name_wire, true);
    if (key->name_len < 0)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    bool padding = false;
    for (const char *p = secret_base64; *p; p++) {
        if (isspace((unsigned char)*p))
            continue;
        if (*p == '=') {
            padding = true;
            continue;
        }
        int v = b64_value((unsigned char)*p);
        if (v < 0 || padding)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (key->secret_len == sizeof(key->secret))
                return -1;
            key->secret[key->secret_len++] = (uint8_t)(acc >> bits);
        }
    }
    return key->secret_len > 0 ? 0 : -1;
}

static void put48(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 6; i++)
        p[i] = (uint8_t)(v >> (40 - 8 * i));
}

int dns_tsig_sign(struct dns_buf *msg, const struct dns_tsig_key *key, uint64_t now_s,
                  uint16_t fudge, uint8_t mac_out[DNS_TSIG_MAC_LEN])
{
    if (msg->failed || msg->len < DNS_HEADER_LEN || key->name_len <= 0)
        return -1;
    uint16_t arcount = get16(msg->data + 10);
    if (arcount == 65535)
        return -1;
    uint16_t original_id = get16(msg->data);
    uint8_t time_signed[6];
    put48(time_signed, now_s);
    uint8_t vars[2 + 4]; /* class ANY, TTL 0 */
    put16(vars, DNS_CLASS_ANY);
    memset(vars + 2, 0, 4);
    uint8_t tail[6]; /* fudge, error 0, other len 0 */
    put16(tail, fudge);
    memset(tail + 2, 0, 4);

    struct hmac_sha256_ctx h;
    hmac_sha256_init(&h, key->secret, key->secret_len);
    hmac_sha256_update(&h, msg->data, msg->len);
    hmac_sha256_update(&h, key->name_wire, (size_t)key->name_len);
    hmac_sha256_update(&h, vars, sizeof(vars));
    hmac_sha256_update(&h, HMAC_SHA256_NAME, sizeof(HMAC_SHA256_NAME));
    hmac_sha256_update(&h, time_signed, sizeof(time_signed));
    hmac_sha256_update(&h, tail, sizeof(tail));
    hmac_sha256_final(&h, mac_out);

    dns_buf_put(msg, key->name_wire, (size_t)key->name_len);
    dns_buf_u16(msg, DNS_TYPE_TSIG);
    dns_buf_u16(msg, DNS_CLASS_ANY);
    dns_buf_u32(msg, 0);
    uint16_t rdlen = (uint16_t)(sizeof(HMAC_SHA256_NAME) + 6 + 2 + 2 + DNS_TSIG_MAC_LEN + 6);
    dns_buf_u16(msg, rdlen);
    dns_buf_put(msg, HMAC_SHA256_NAME, sizeof(HMAC_SHA256_NAME));
    dns_buf_put(msg, time_signed, sizeof(time_signed));
    dns_buf_u16(msg, fudge);
    dns_buf_u16(msg, DNS_TSIG_MAC_LEN);
    dns_buf_put(msg, mac_out, DNS_TSIG_MAC_LEN);
    dns_buf_u16(msg, original_id);
    dns_buf_u16(msg, 0);
    dns_buf_u16(msg, 0);
    if (msg->failed)
        return -1;
    put16(msg->data + 10, (uint16_t)(arcount + 1));
    return 0;
}

static bool mac_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= (uint8_t)(a[i] ^ b[i]);
    return diff == 0;
}

int dns_tsig_verify(const uint8_t *msg, size_t len, const struct dns_tsig_key *key,
                    const uint8_t *request_mac, size_t request_mac_len, bool timers_only,
                    uint64_t now_s, int *server_error, uint8_t mac_out[DNS_TSIG_MAC_LEN])
{
    if (server_error != NULL)
        *server_error = 0;
    struct dns_msg m;
    if (dns_msg_parse(msg, len, &m) < 0)
        return DNS_TSIG_MALFORMED;
    int rc = DNS_TSIG_UNSIGNED;
    const struct dns_rr *rr = m.rr_count > 0 ? &m.rrs[m.rr_count - 1] : NULL;
    for (size_t i = 0; i + 1 < m.rr_count; i++)
        if (m.rrs[i].type == DNS_TYPE_TSIG) {
            rc = DNS_TSIG_MALFORMED; /* a TSIG anywhere but last */
            goto out;
        }
    if (rr == NULL || rr->type != DNS_TYPE_TSIG || rr->section != DNS_SECTION_ADDITIONAL)
        goto out;
    rc = DNS_TSIG_MALFORMED;
    if (rr->klass != DNS_CLASS_ANY)
        goto out;

    /* RDATA: algorithm, time(6), fudge, MAC size, MAC, original id, error, other len,
     * other data; it must end exactly at the RDATA's end. */
    size_t end = rr->rdata_offset + rr->rdata_len;
    size_t pos = rr->rdata_offset;
    char alg[DNS_NAME_TEXT_MAX];
    if (dns_name_from_wire(msg, end, &pos, alg) < 0 || end - pos < 10)
        goto out;
    const uint8_t *time_signed = msg + pos;
    uint64_t when = 0;
    for (int i = 0; i < 6; i++)
        when = when << 8 | time_signed[i];
    uint16_t fudge = get16(msg + pos + 6);
    size_t mac_len = get16(msg + pos + 8);
    pos += 10;
    if (end - pos < mac_len + 6)
        goto out;
    const uint8_t *mac = msg + pos;
    pos += mac_len;
    uint16_t original_id = get16(msg + pos);
    uint16_t error = get16(msg + pos + 2);
    size_t other_len = get16(msg + pos + 4);
    pos += 6;
    if (end - pos != other_len)
        goto out;
    const uint8_t *other = msg + pos;

    uint8_t rr_name[DNS_NAME_WIRE_MAX], alg_wire[DNS_NAME_WIRE_MAX];
    int rr_name_len = dns_name_to_wire(rr->name, rr_name, true);
    int alg_len = dns_name_to_wire(alg, alg_wire, true);
    if (rr_name_len < 0 || alg_len < 0)
        goto out;
    rc = DNS_TSIG_WRONG_KEY;
    if (rr_name_len != key->name_len ||
        memcmp(rr_name, key->name_wire, (size_t)rr_name_len) != 0 ||
        alg_len != (int)sizeof(HMAC_SHA256_NAME) ||
        memcmp(alg_wire, HMAC_SHA256_NAME, sizeof(HMAC_SHA256_NAME)) != 0)
        goto out;
    if (error != 0) {
        if (server_error != NULL)
            *server_error = error;
        rc = DNS_TSIG_SERVER_ERROR;
        goto out;
    }
    rc = DNS_TSIG_BAD_MAC;
    if (mac_len != DNS_TSIG_MAC_LEN)
        goto out;

    /* The digest covers the message as it was before the TSIG was added: original ID,
     * ARCOUNT one less, the bytes up to the TSIG RR. */
    uint8_t header[DNS_HEADER_LEN];
    memcpy(header, msg, DNS_HEADER_LEN);
    put16(header, original_id);
    put16(header + 10, (uint16_t)(get16(msg + 10) - 1));
    struct hmac_sha256_ctx h;
    hmac_sha256_init(&h, key->secret, key->secret_len);
    if (request_mac != NULL && request_mac_len > 0) {
        uint8_t mac_size[2];
        put16(mac_size, (uint16_t)request_mac_len);
        hmac_sha256_update(&h, mac_size, 2);
        hmac_sha256_update(&h, request_mac, request_mac_len);
    }
    hmac_sha256_update(&h, header, DNS_HEADER_LEN);
    hmac_sha256_update(&h, msg + DNS_HEADER_LEN, rr->offset - DNS_HEADER_LEN);
    if (timers_only) {
        hmac_sha256_update(&h, time_signed, 6);
        hmac_sha256_update(&h, time_signed + 6, 2); /* fudge */
    } else {
        uint8_t vars[6];
        put16(vars, DNS_CLASS_ANY);
        vars[2] = (uint8_t)(rr->ttl >> 24);
        vars[3] = (uint8_t)(rr->ttl >> 16);
        vars[4] = (uint8_t)(rr->ttl >> 8);
        vars[5] = (uint8_t)rr->ttl;
        uint8_t tail[6];
        put16(tail, fudge);
        put16(tail + 2, error);
        put16(tail + 4, (uint16_t)other_len);
        hmac_sha256_update(&h, rr_name, (size_t)rr_name_len);
        hmac_sha256_update(&h, vars, sizeof(vars));
        hmac_sha256_update(&h, alg_wire, (size_t)alg_len);
        hmac_sha256_update(&h, time_signed, 6);
        hmac_sha256_update(&h, tail, sizeof(tail));
        hmac_sha256_update(&h, other, other_len);
    }
    uint8_t want[DNS_TSIG_MAC_LEN];
    hmac_sha256_final(&h, want);
    if (!mac_equal(want, mac, DNS_TSIG_MAC_LEN))
        goto out;
    rc = DNS_TSIG_BAD_TIME;
    uint64_t skew = when > now_s ? when - now_s : now_s - when;
    if (skew > fudge)
        goto out;
    if (mac_out != NULL)
        memcpy(mac_out, mac, DNS_TSIG_MAC_LEN);
    rc = DNS_TSIG_OK;
out:
    dns_msg_free(&m);
    return rc;
}
