/* swp_types.h — plain data shared by steward and its plugins.
 *
 * Part of the plugin ABI: everything here is append-only within a major version.
 * Strings in these structs are borrowed for the duration of the call that hands them
 * over; a plugin copies what it keeps.
 */
#ifndef SWP_TYPES_H
#define SWP_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SWP_ABI_MAJOR 1
#define SWP_ABI_MINOR 0
/* Combined like UV_VERSION_HEX: 0xMMMMmmmm. */
#define SWP_ABI_VERSION (((uint32_t)SWP_ABI_MAJOR << 16) | (uint32_t)SWP_ABI_MINOR)

/* Return codes: 0 is success, negative is an error. Negated errno values where one fits,
 * then project codes below -1000. The core's SW_E* constants have the same values. */
#define SWP_OK 0
#define SWP_ENOMEM (-12)
#define SWP_EINVAL (-22)
#define SWP_ENOENT (-2)
#define SWP_EEXIST (-17)
#define SWP_EAGAIN (-11)
#define SWP_ENOTSUP (-95)
#define SWP_ETIMEDOUT (-110)
#define SWP_ECANCELED (-125)
#define SWP_EIO (-5)
#define SWP_EABI (-1001)     /* plugin ABI mismatch */
#define SWP_EBUDGET (-1002)  /* a guard limit refused the action */
#define SWP_EPOLICY (-1003)  /* a Lua policy failed */
#define SWP_EMARKET (-1004)  /* the marketplace refused or answered garbage */
#define SWP_ESTORE (-1005)   /* SQLite journal failure */
#define SWP_ECONFIG (-1006)  /* invalid configuration */
#define SWP_EHTTP (-1007)    /* transport-level HTTP failure */
#define SWP_EFUNDS (-1008)   /* the wallet cannot cover the deposit (HTTP 402) */
#define SWP_ETOOBIG (-1009)  /* a reply exceeded its size cap */

/* An error with a human-readable message. Never format a secret into msg. */
struct swp_error {
    int code;
    char msg[256];
};

enum swp_log_level {
    SWP_LOG_DEBUG = 0,
    SWP_LOG_INFO = 1,
    SWP_LOG_WARN = 2,
    SWP_LOG_ERROR = 3,
};

/* Lifecycle of one unit of capacity on a marketplace (one Akash deployment). */
enum swp_unit_state {
    SWP_UNIT_ORDERED = 0, /* the request left steward; no marketplace id yet */
    SWP_UNIT_CREATED = 1, /* the marketplace knows it (market_id set), waiting for bids */
    SWP_UNIT_LEASED = 2,  /* a bid was accepted; provider and price are known */
    SWP_UNIT_READY = 3,   /* every service is up; uris are set */
    SWP_UNIT_CLOSED = 4,  /* released, lost, or given up */
};

/* A unit as a market plugin reports it. */
struct swp_unit {
    uint32_t size;          /* sizeof(struct swp_unit) as the reporter built it */
    const char *key;        /* the core's idempotency key (NULL for units found by list) */
    const char *market_id;  /* e.g. the Akash dseq, as a string; NULL before CREATED */
    const char *group;      /* may be NULL for units found by list */
    const char *region;     /* location-region attribute, e.g. "eu-west" */
    const char *provider;   /* NULL before LEASED */
    double price_usd_hour;  /* lease price converted to USD/hour; 0 before LEASED */
    const char *const *uris;
    size_t uri_count;
    int state;              /* enum swp_unit_state */
    const char *reason;     /* why it closed, e.g. "lease_closed_reason_unstable"; or NULL */
    int64_t created_ms;     /* when the marketplace created it (dseq time on Akash); 0 unknown */
    const char *tag;        /* owner tag the plugin stamped at creation (steward id); or NULL */
};

/* One price a provider asks for a unit in a region. */
struct swp_offer {
    const char *provider;
    const char *region;
    double price_usd_hour;
    bool audited;
};

/* What a plugin tells the core without being asked. */
struct swp_event {
    uint32_t size;
    const char *type;      /* "unit_lost", "alert", "job_started", ... */
    const char *market_id; /* the unit it concerns, or NULL */
    const char *reason;    /* short machine-readable reason, or NULL */
    const char *data_json; /* extra fields as a JSON object text, or NULL */
};

/* One sample of a metric vector: labels as parallel name/value arrays. */
struct swp_sample {
    const char *const *label_names;
    const char *const *label_values;
    size_t label_count;
    double value;
};

/* An HTTP request made through the host. Headers are "Name: value" strings. */
struct swp_http_req {
    uint32_t size;
    const char *method;               /* "GET", "POST", ... */
    const char *url;
    const char *const *headers;
    size_t header_count;
    const char *body;                 /* may be NULL */
    size_t body_len;
    uint32_t timeout_ms;              /* 0: host default (30 s) */
    size_t max_response_bytes;        /* 0: host default (8 MiB) */
    /* since 1.0 — true: sending this request twice does no harm (the second one changes
     * nothing), so the host may send a POST or PATCH on a reused keep-alive connection.
     * There, if the connection turns out dead before any reply byte, libcurl sends the
     * request again on a new one. false (the default, and what a plugin built before the
     * field gets): a POST or PATCH always opens a fresh connection, which is never re-sent.
     * Other methods are idempotent by HTTP and reuse connections whatever this says. Read
     * only when size covers the field. */
    bool idempotent;
};

struct swp_http_resp {
    long status;          /* HTTP status; 0 when no response arrived */
    const char *body;     /* NUL-terminated for convenience; body_len excludes the NUL */
    size_t body_len;
    double connect_s;     /* timings from the transfer start */
    double tls_s;
    double first_byte_s;
    double total_s;
    /* since 1.0 — the reply's Retry-After (delta-seconds or HTTP date) in milliseconds;
     * 0 when absent. Lets a plugin honour a 429/503's requested pause. */
    int64_t retry_after_ms;
};

/* ---- since 1.0: one request/reply exchange over UDP or TCP (swp_host.net_exchange) ----- */

enum swp_net_transport {
    SWP_NET_UDP = 1, /* one datagram out, the first datagram back from that address */
    SWP_NET_TCP = 2, /* connect, write the request, read until the reply is complete */
};

/* How a TCP reply ends. The host never adds or strips bytes: the plugin sends exactly
 * `data` and receives the raw bytes of the reply. */
enum swp_net_framing {
    SWP_NET_FRAME_CLOSE = 0,  /* the server closes the connection */
    SWP_NET_FRAME_LEN16 = 1,  /* a 2-byte big-endian length, then that many bytes (DNS over
                                 TCP, RFC 1035 section 4.2.2) */
    SWP_NET_FRAME_CUSTOM = 2, /* req->complete says when the bytes so far hold a reply */
};

/* For SWP_NET_FRAME_CUSTOM: called on the loop thread with the bytes received so far.
 * Return the length of a complete reply at the start of data, 0 when more bytes are
 * needed, or < 0 to reject the stream (the exchange then fails with SWP_EIO). */
typedef long (*swp_net_complete_fn)(void *ud, const uint8_t *data, size_t len);

struct swp_net_req {
    uint32_t size;                /* sizeof(struct swp_net_req) */
    int transport;                /* enum swp_net_transport */
    const char *address;          /* numeric IPv4 or IPv6 address: no name resolution */
    uint16_t port;
    const uint8_t *data;          /* the request, copied by the host */
    size_t len;
    int framing;                  /* enum swp_net_framing; TCP only */
    swp_net_complete_fn complete; /* FRAME_CUSTOM only; gets the same ud as the callback */
    uint32_t timeout_ms;          /* the whole exchange, connect included; 0: 10 s */
    size_t max_reply_bytes;       /* 0: 65535 for UDP, 4 MiB for TCP; more: SWP_ETOOBIG */
};

#endif /* SWP_TYPES_H */
