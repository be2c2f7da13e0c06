/* dns_wire.h — DNS messages on the wire for dns_rfc2136: names (with compression on
 * decode), the RR types steward publishes (A, AAAA, CNAME, TXT, SOA; NS too), dynamic
 * update messages with prerequisites (RFC 2136), queries (SOA, AXFR) and TSIG signing and
 * verification with hmac-sha256 (RFC 8945).
 *
 * Everything here is a pure function of its buffers: no I/O, no globals, no allocation
 * except struct dns_buf and struct dns_msg (freed with their *_free). Parsers never read
 * past `len` and reject malformed input with -1; they are fuzzed by tests/fuzz/.
 * Text forms are RFC 1035 presentation format: names fully qualified with the trailing dot,
 * TXT as quoted strings ("a b" "c"), unknown types as RFC 3597 "\# len hex".
 */
#ifndef SWP_DNS_WIRE_H
#define SWP_DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_TYPE_A 1
#define DNS_TYPE_NS 2
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_SOA 6
#define DNS_TYPE_TXT 16
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_OPT 41
#define DNS_TYPE_TSIG 250
#define DNS_TYPE_AXFR 252
#define DNS_TYPE_ANY 255

#define DNS_CLASS_IN 1
#define DNS_CLASS_NONE 254
#define DNS_CLASS_ANY 255

#define DNS_OPCODE_QUERY 0
#define DNS_OPCODE_UPDATE 5

#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_FORMERR 1
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_NOTIMP 4
#define DNS_RCODE_REFUSED 5
#define DNS_RCODE_YXDOMAIN 6
#define DNS_RCODE_YXRRSET 7
#define DNS_RCODE_NXRRSET 8
#define DNS_RCODE_NOTAUTH 9
#define DNS_RCODE_NOTZONE 10
#define DNS_RCODE_BADSIG 16 /* TSIG error field values (RFC 8945 section 5.2) */
#define DNS_RCODE_BADKEY 17
#define DNS_RCODE_BADTIME 18
#define DNS_RCODE_BADTRUNC 22

#define DNS_HEADER_LEN 12
#define DNS_NAME_WIRE_MAX 255
#define DNS_NAME_TEXT_MAX 1024 /* 255 wire bytes, every byte escaped as \DDD, plus NUL */
#define DNS_MSG_MAX 65535
#define DNS_TSIG_MAC_LEN 32

/* "NOERROR", "BADSIG", ...; "RCODE<n>" in buf for others. */
const char *dns_rcode_name(int rcode, char buf[16]);
/* "A", "TXT", ...; "TYPE<n>" in buf for others. */
const char *dns_type_name(int type, char buf[16]);
/* The type code of "A", "aaaa", "TYPE65", ...; -1 if unknown. */
int dns_type_from_name(const char *name);

/* ---- names -------------------------------------------------------------------------- */

/* Presentation name ("www.example.test." or without the final dot; "." is the root;
 * \. and \DDD escapes are accepted) to uncompressed wire form, lowercased when lower is
 * set (TSIG's canonical form). Returns the wire length, or -1 for an invalid name. */
int dns_name_to_wire(const char *text, uint8_t out[DNS_NAME_WIRE_MAX], bool lower);
/* Decode the name at *offset in msg (following compression pointers, which must point
 * backwards), write its presentation form with the trailing dot, and move *offset past
 * the name's bytes in place. Returns 0, or -1 for a malformed name. */
int dns_name_from_wire(const uint8_t *msg, size_t len, size_t *offset,
                       char out[DNS_NAME_TEXT_MAX]);
/* Case-insensitive equality of two presentation names, ignoring a trailing dot. */
bool dns_name_equal(const char *a, const char *b);

/* ---- a growable output buffer -------------------------------------------------------- */

struct dns_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool failed; /* an append would have passed DNS_MSG_MAX: the content is unusable */
};

void dns_buf_init(struct dns_buf *b);
void dns_buf_free(struct dns_buf *b);
void dns_buf_put(struct dns_buf *b, const void *data, size_t len);
void dns_buf_u16(struct dns_buf *b, uint16_t v);
void dns_buf_u32(struct dns_buf *b, uint32_t v);

/* ---- RDATA ---------------------------------------------------------------------------- */

/* Presentation text of one record of type to wire RDATA appended to out. Supports A, AAAA,
 * CNAME, NS, TXT and SOA. Returns 0, or -1 when the text is not valid for the type. */
int dns_rdata_from_text(int type, const char *text, struct dns_buf *out);
/* The RDATA at rdata_offset (rdata_len bytes) of msg in presentation form. msg is the
 * whole message so compressed names inside CNAME/NS/SOA resolve. Returns 0, or -1 when
 * malformed or longer than out_size. */
int dns_rdata_to_text(const uint8_t *msg, size_t len, int type, size_t rdata_offset,
                      size_t rdata_len, char *out, size_t out_size);

/* ---- messages ------------------------------------------------------------------------- */

enum dns_section {
    DNS_SECTION_QUESTION = 0, /* UPDATE: zone */
    DNS_SECTION_ANSWER = 1,   /* UPDATE: prerequisites */
    DNS_SECTION_AUTHORITY = 2,/* UPDATE: updates */
    DNS_SECTION_ADDITIONAL = 3,
};

struct dns_rr {
    int section;            /* enum dns_section (never QUESTION) */
    char name[DNS_NAME_TEXT_MAX];
    uint16_t type;
    uint16_t klass;
    uint32_t ttl;
    size_t offset;          /* where the RR starts in the message */
    size_t rdata_offset;
    uint16_t rdata_len;
};

struct dns_msg {
    uint16_t id;
    uint16_t flags;
    bool qr;
    bool tc;
    int opcode;
    int rcode;
    uint16_t count[4];      /* per section, as the header says */
    char qname[DNS_NAME_TEXT_MAX]; /* the first question, or "" */
    uint16_t qtype;
    struct dns_rr *rrs;     /* answer, authority and additional RRs in order; owned */
    size_t rr_count;
};

/* Parse a whole message. Every RR's name is decompressed; RDATA is left in place (read it
 * with dns_rdata_to_text). Returns 0 (msg filled, free with dns_msg_free) or -1 (nothing
 * to free). At most 4096 RRs. */
int dns_msg_parse(const uint8_t *data, size_t len, struct dns_msg *msg);
void dns_msg_free(struct dns_msg *msg);

/* A query with one question (SOA, AXFR, ...), class IN, no recursion desired. */
int dns_query_build(struct dns_buf *out, uint16_t id, const char *name, int type);

/* An RFC 2136 UPDATE message. Sections must be filled in order: prerequisites, then
 * updates; an out-of-order call fails. Each call returns 0 or -1 (bad name or RDATA, or
 * the message grew past 64 KiB). */
struct dns_update {
    struct dns_buf buf;
    uint16_t count[4];
    int section;
};

void dns_update_begin(struct dns_update *u, uint16_t id, const char *zone);
/* Prerequisite "RRset does not exist" (class NONE, RFC 2136 section 2.4.3). */
int dns_update_require_absent(struct dns_update *u, const char *name, int type);
/* Prerequisite "RRset exists (value dependent)": call once per record; together they
 * must equal the whole RRset on the server (class IN, TTL 0, section 2.4.2). */
int dns_update_require_value(struct dns_update *u, const char *name, int type,
                             const char *rdata_text);
/* Update "delete an RRset" (class ANY, section 2.5.2). */
int dns_update_delete_rrset(struct dns_update *u, const char *name, int type);
/* Update "add to an RRset" (class IN, section 2.5.1). */
int dns_update_add(struct dns_update *u, const char *name, int type, uint32_t ttl,
                   const char *rdata_text);
/* Writes the section counts into the header; the message is u->buf. */
int dns_update_finish(struct dns_update *u);
void dns_update_free(struct dns_update *u);

/* ---- TSIG (RFC 8945, hmac-sha256 only) ------------------------------------------------- */

struct dns_tsig_key {
    uint8_t name_wire[DNS_NAME_WIRE_MAX]; /* canonical (lowercase) wire form */
    int name_len;
    uint8_t secret[256];
    size_t secret_len;
};

/* name: the key's name; secret_base64: its secret as written in BIND/Knot configuration.
 * Returns 0, or -1 for a bad name, bad base64, or an empty or over-long secret. */
int dns_tsig_key_init(struct dns_tsig_key *key, const char *name, const char *secret_base64);

/* Sign the complete message in msg (its ID is the TSIG original ID): append a TSIG RR
 * and increment ARCOUNT. mac_out receives the MAC, needed to verify the reply. Returns 0
 * or -1 (the message is malformed or too large). */
int dns_tsig_sign(struct dns_buf *msg, const struct dns_tsig_key *key, uint64_t now_s,
                  uint16_t fudge, uint8_t mac_out[DNS_TSIG_MAC_LEN]);

enum dns_tsig_result {
    DNS_TSIG_OK = 0,
    DNS_TSIG_UNSIGNED = -1,    /* no TSIG RR (or not last in the additional section) */
    DNS_TSIG_MALFORMED = -2,   /* the message or its TSIG RR does not parse */
    DNS_TSIG_WRONG_KEY = -3,   /* signed with another key name or algorithm */
    DNS_TSIG_BAD_MAC = -4,     /* the MAC does not verify */
    DNS_TSIG_BAD_TIME = -5,    /* outside the fudge window */
    DNS_TSIG_SERVER_ERROR = -6,/* the server's TSIG carries an error (see *server_error) */
};

/* Verify the TSIG of a reply to a request whose MAC was request_mac (RFC 8945 section
 * 5.3): with timers_only, the digest covers only the timers, as for the second and later
 * messages of a zone transfer, where request_mac is the previous message's MAC.
 * *server_error gets the TSIG error field (BADSIG, BADKEY, BADTIME) when one is present.
 * mac_out, when not NULL, receives this message's MAC for chaining. The MAC comparison is
 * constant-time. Returns an enum dns_tsig_result. */
int dns_tsig_verify(const uint8_t *msg, size_t len, const struct dns_tsig_key *key,
                    const uint8_t *request_mac, size_t request_mac_len, bool timers_only,
                    uint64_t now_s, int *server_error, uint8_t mac_out[DNS_TSIG_MAC_LEN]);

#endif /* SWP_DNS_WIRE_H */
