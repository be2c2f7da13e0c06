/* test_dns_wire.c — the RFC 2136 plugin's own DNS code: SHA-256/HMAC against FIPS 180 and
 * RFC 4231 vectors, names (compression, loops, limits), RDATA text <-> wire, update
 * messages, and TSIG signing (against a vector computed independently with Python's hmac)
 * and verification (good, tampered, wrong key, stale, server errors, unsigned).
 *
 * The plugin cannot link the core and the unit harness links only the core, so the
 * plugin's sources are compiled into this test directly. */
#include "../../plugins/dns_rfc2136/dns_wire.c"
#include "../../plugins/dns_rfc2136/sha256.c"

#include "sw_test.h"

static void hex(const uint8_t *data, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        sprintf(out + 2 * i, "%02x", data[i]);
    out[2 * len] = '\0';
}

static void sha_hex(const void *data, size_t len, char out[65])
{
    struct sha256_ctx c;
    uint8_t d[32];
    sha256_init(&c);
    sha256_update(&c, data, len);
    sha256_final(&c, d);
    hex(d, 32, out);
}

static void hmac_hex(const uint8_t *key, size_t key_len, const char *data, char out[65])
{
    struct hmac_sha256_ctx c;
    uint8_t d[32];
    hmac_sha256_init(&c, key, key_len);
    hmac_sha256_update(&c, data, strlen(data));
    hmac_sha256_final(&c, d);
    hex(d, 32, out);
}

SW_TEST(sha256_fips_vectors)
{
    char out[65];
    sha_hex("", 0, out);
    SW_ASSERT_STREQ(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_hex("abc", 3, out);
    SW_ASSERT_STREQ(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(two, strlen(two), out);
    SW_ASSERT_STREQ(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* Fed in odd pieces: the block buffering must not matter. */
    struct sha256_ctx c;
    uint8_t d[32];
    sha256_init(&c);
    for (size_t i = 0; i < strlen(two); i += 7)
        sha256_update(&c, two + i, strlen(two) - i < 7 ? strlen(two) - i : 7);
    sha256_final(&c, d);
    hex(d, 32, out);
    SW_ASSERT_STREQ(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

SW_TEST(hmac_sha256_rfc4231_vectors)
{
    char out[65];
    uint8_t key1[20];
    memset(key1, 0x0b, sizeof(key1));
    hmac_hex(key1, sizeof(key1), "Hi There", out);
    SW_ASSERT_STREQ(out, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    hmac_hex((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", out);
    SW_ASSERT_STREQ(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    uint8_t key6[131];
    memset(key6, 0xaa, sizeof(key6));
    hmac_hex(key6, sizeof(key6), "Test Using Larger Than Block-Size Key - Hash Key First", out);
    SW_ASSERT_STREQ(out, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

SW_TEST(names_to_wire_and_back)
{
    uint8_t wire[DNS_NAME_WIRE_MAX];
    SW_ASSERT_EQ(dns_name_to_wire("www.Example.test.", wire, false), 18);
    SW_ASSERT(memcmp(wire, "\3www\7Example\4test\0", 18) == 0);
    SW_ASSERT_EQ(dns_name_to_wire("www.Example.test", wire, true), 18);
    SW_ASSERT(memcmp(wire, "\3www\7example\4test\0", 18) == 0);
    SW_ASSERT_EQ(dns_name_to_wire(".", wire, false), 1);
    SW_ASSERT_EQ(dns_name_to_wire("a\\.b.c.", wire, false), 7);
    SW_ASSERT(memcmp(wire, "\3a.b\1c\0", 7) == 0);
    SW_ASSERT_EQ(dns_name_to_wire("a\\032b.", wire, false), 5);
    SW_ASSERT_EQ(dns_name_to_wire("", wire, false), -1);
    SW_ASSERT_EQ(dns_name_to_wire("a..b", wire, false), -1);
    SW_ASSERT_EQ(dns_name_to_wire(".a", wire, false), -1);
    SW_ASSERT_EQ(dns_name_to_wire("a\\", wire, false), -1);
    char label64[80];
    memset(label64, 'x', 64);
    strcpy(label64 + 64, ".test.");
    SW_ASSERT_EQ(dns_name_to_wire(label64, wire, false), -1);
    strcpy(label64 + 63, ".test.");
    SW_ASSERT(dns_name_to_wire(label64, wire, false) > 0);
    /* 4 labels of 63 = 256 wire bytes with the root: too long; 3 of 63 + 61 fits 255. */
    char longname[300] = "";
    for (int i = 0; i < 4; i++) {
        char label[65];
        memset(label, 'a' + i, 63);
        label[63] = '.';
        label[64] = '\0';
        strcat(longname, label);
    }
    SW_ASSERT_EQ(dns_name_to_wire(longname, wire, false), -1);
    longname[64 * 3 + 61] = '\0';
    SW_ASSERT_EQ(dns_name_to_wire(longname, wire, false), 255);

    SW_ASSERT(dns_name_equal("WWW.example.test", "www.EXAMPLE.test."));
    SW_ASSERT(!dns_name_equal("www.example.test", "ww.example.test."));
    SW_ASSERT(!dns_name_equal("a..b", "a..b"));
}

SW_TEST(name_decompression_and_hostile_pointers)
{
    /* header, then "example.test." at 12, then "www" + pointer to 12 at 26. */
    uint8_t msg[64] = {0};
    size_t n = 12;
    memcpy(msg + n, "\7example\4test\0", 14);
    n += 14;
    memcpy(msg + n, "\3www\xc0\x0c", 6);
    n += 6;
    char out[DNS_NAME_TEXT_MAX];
    size_t off = 26;
    SW_ASSERT_EQ(dns_name_from_wire(msg, n, &off, out), 0);
    SW_ASSERT_STREQ(out, "www.example.test.");
    SW_ASSERT_EQ(off, 32); /* past the pointer, not past the target */

    /* A pointer to itself, forwards, or a label that walks back onto its own pointer. */
    uint8_t loop[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 12};
    off = 12;
    SW_ASSERT_EQ(dns_name_from_wire(loop, sizeof(loop), &off, out), -1);
    uint8_t fwd[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 14, 0};
    off = 12;
    SW_ASSERT_EQ(dns_name_from_wire(fwd, sizeof(fwd), &off, out), -1);
    uint8_t walk[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 0xc0, 12};
    off = 14;
    SW_ASSERT_EQ(dns_name_from_wire(walk, sizeof(walk), &off, out), -1);
    /* Truncated label, extended label type, missing terminator. */
    uint8_t trunc[] = {5, 'a', 'b'};
    off = 0;
    SW_ASSERT_EQ(dns_name_from_wire(trunc, sizeof(trunc), &off, out), -1);
    uint8_t ext[] = {0x41, 0};
    off = 0;
    SW_ASSERT_EQ(dns_name_from_wire(ext, sizeof(ext), &off, out), -1);
    uint8_t noend[] = {1, 'a'};
    off = 0;
    SW_ASSERT_EQ(dns_name_from_wire(noend, sizeof(noend), &off, out), -1);
    /* Odd bytes come back escaped. */
    uint8_t odd[] = {3, 'a', '.', 0x07, 0};
    off = 0;
    SW_ASSERT_EQ(dns_name_from_wire(odd, sizeof(odd), &off, out), 0);
    SW_ASSERT_STREQ(out, "a\\.\\007.");
}

/* Text -> wire -> text through a parsed update message. */
static void roundtrip(int type, const char *in, const char *want)
{
    struct dns_update u;
    dns_update_begin(&u, 7, "example.test.");
    SW_ASSERT_EQ(dns_update_add(&u, "x.example.test.", type, 60, in), 0);
    SW_ASSERT_EQ(dns_update_finish(&u), 0);
    struct dns_msg m;
    SW_ASSERT_EQ(dns_msg_parse(u.buf.data, u.buf.len, &m), 0);
    SW_ASSERT_EQ(m.rr_count, 1);
    char text[1024];
    SW_ASSERT_EQ(dns_rdata_to_text(u.buf.data, u.buf.len, type, m.rrs[0].rdata_offset,
                                   m.rrs[0].rdata_len, text, sizeof(text)),
                 0);
    SW_ASSERT_STREQ(text, want);
    dns_msg_free(&m);
    dns_update_free(&u);
}

SW_TEST(rdata_text_roundtrips)
{
    roundtrip(DNS_TYPE_A, "192.0.2.10", "192.0.2.10");
    roundtrip(DNS_TYPE_AAAA, "2001:DB8:0:0::1", "2001:db8::1");
    roundtrip(DNS_TYPE_CNAME, "web-1.eu-west.sim.steward.test.", "web-1.eu-west.sim.steward.test.");
    roundtrip(DNS_TYPE_TXT, "\"heritage=steward,steward/owner=a\"",
              "\"heritage=steward,steward/owner=a\"");
    roundtrip(DNS_TYPE_TXT, "\"a b\" c \"q\\\"\\\\\" \"\\255\"", "\"a b\" \"c\" \"q\\\"\\\\\" \"\\255\"");
    roundtrip(DNS_TYPE_SOA, "ns1.example.test. admin.example.test. 7 3600 600 86400 60",
              "ns1.example.test. admin.example.test. 7 3600 600 86400 60");

    struct dns_buf b;
    dns_buf_init(&b);
    SW_ASSERT_EQ(dns_rdata_from_text(DNS_TYPE_A, "192.0.2", &b), -1);
    SW_ASSERT_EQ(dns_rdata_from_text(DNS_TYPE_AAAA, "192.0.2.1", &b), -1);
    SW_ASSERT_EQ(dns_rdata_from_text(DNS_TYPE_TXT, "\"unterminated", &b), -1);
    SW_ASSERT_EQ(dns_rdata_from_text(DNS_TYPE_TXT, "", &b), -1);
    SW_ASSERT_EQ(dns_rdata_from_text(DNS_TYPE_SOA, "a. b. 1 2 3 4", &b), -1);
    SW_ASSERT_EQ(dns_rdata_from_text(DNS_TYPE_SOA, "a. b. 1 2 3 4 5 6", &b), -1);
    SW_ASSERT_EQ(dns_rdata_from_text(DNS_TYPE_CNAME, "a..b", &b), -1);
    SW_ASSERT_EQ(dns_rdata_from_text(99, "x", &b), -1);
    SW_ASSERT_EQ(b.len, 0); /* failures leave nothing behind */
    char big[300];
    memset(big, 'x', 256);
    big[256] = '\0';
    SW_ASSERT_EQ(dns_rdata_from_text(DNS_TYPE_TXT, big, &b), -1);
    dns_buf_free(&b);

    /* Unknown types come back in RFC 3597 form. */
    uint8_t rd[] = {0xde, 0xad};
    char text[64];
    SW_ASSERT_EQ(dns_rdata_to_text(rd, 2, 99, 0, 2, text, sizeof(text)), 0);
    SW_ASSERT_STREQ(text, "\\# 2 dead");
    SW_ASSERT_EQ(dns_rdata_to_text(rd, 2, DNS_TYPE_A, 0, 2, text, sizeof(text)), -1);
    SW_ASSERT_EQ(dns_rdata_to_text(rd, 2, 99, 0, 2, text, 4), -1); /* too small */
}

SW_TEST(update_message_layout)
{
    struct dns_update u;
    dns_update_begin(&u, 0x1234, "example.test.");
    SW_ASSERT_EQ(dns_update_require_absent(&u, "www.example.test.", DNS_TYPE_CNAME), 0);
    SW_ASSERT_EQ(dns_update_require_value(&u, "www.example.test.", DNS_TYPE_A, "192.0.2.1"), 0);
    SW_ASSERT_EQ(dns_update_delete_rrset(&u, "www.example.test.", DNS_TYPE_A), 0);
    SW_ASSERT_EQ(dns_update_add(&u, "www.example.test.", DNS_TYPE_A, 60, "192.0.2.2"), 0);
    /* Sections only move forward. */
    SW_ASSERT_EQ(dns_update_require_absent(&u, "late.example.test.", DNS_TYPE_A), -1);
    SW_ASSERT_EQ(dns_update_add(&u, "bad..name", DNS_TYPE_A, 60, "192.0.2.3"), -1);
    SW_ASSERT_EQ(dns_update_add(&u, "x.example.test.", DNS_TYPE_A, 60, "nope"), -1);
    SW_ASSERT_EQ(dns_update_finish(&u), 0);
    struct dns_msg m;
    SW_ASSERT_EQ(dns_msg_parse(u.buf.data, u.buf.len, &m), 0);
    SW_ASSERT_EQ(m.id, 0x1234);
    SW_ASSERT_EQ(m.opcode, DNS_OPCODE_UPDATE);
    SW_ASSERT_EQ(m.count[0], 1);
    SW_ASSERT_EQ(m.count[1], 2);
    SW_ASSERT_EQ(m.count[2], 2);
    SW_ASSERT_STREQ(m.qname, "example.test.");
    SW_ASSERT_EQ(m.qtype, DNS_TYPE_SOA);
    SW_ASSERT_EQ(m.rrs[0].klass, DNS_CLASS_NONE);
    SW_ASSERT_EQ(m.rrs[0].rdata_len, 0);
    SW_ASSERT_EQ(m.rrs[1].klass, DNS_CLASS_IN);
    SW_ASSERT_EQ(m.rrs[1].ttl, 0);
    SW_ASSERT_EQ(m.rrs[2].klass, DNS_CLASS_ANY);
    SW_ASSERT_EQ(m.rrs[3].ttl, 60);
    SW_ASSERT_EQ(m.rrs[3].section, DNS_SECTION_AUTHORITY);
    dns_msg_free(&m);
    dns_update_free(&u);

    /* Header counts the message cannot hold, and trailing bytes, are refused. */
    uint8_t lie[12] = {0, 1, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0};
    SW_ASSERT_EQ(dns_msg_parse(lie, sizeof(lie), &m), -1);
    uint8_t trailing[13] = {0};
    SW_ASSERT_EQ(dns_msg_parse(trailing, sizeof(trailing), &m), -1);
    SW_ASSERT_EQ(dns_msg_parse(trailing, 11, &m), -1);
}

static const char *SECRET_B64 = "c3Rld2FyZC10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";

SW_TEST(tsig_sign_matches_independent_vector)
{
    struct dns_tsig_key key;
    SW_ASSERT_EQ(dns_tsig_key_init(&key, "Steward-Key.", SECRET_B64), 0);
    SW_ASSERT_EQ(key.secret_len, 36);
    struct dns_update u;
    dns_update_begin(&u, 0x1234, "example.test.");
    SW_ASSERT_EQ(dns_update_add(&u, "www.example.test.", DNS_TYPE_A, 60, "192.0.2.1"), 0);
    SW_ASSERT_EQ(dns_update_finish(&u), 0);
    char text[512];
    hex(u.buf.data, u.buf.len, text);
    SW_ASSERT_STREQ(text, "123428000001000000010000076578616d706c650474657374000006000103777777"
                          "076578616d706c65047465737400000100010000003c0004c0000201");
    uint8_t mac[32];
    SW_ASSERT_EQ(dns_tsig_sign(&u.buf, &key, 1700000000, 300, mac), 0);
    hex(mac, 32, text);
    /* hmac.new(secret, msg + name + class/ttl + alg + time + fudge/error/otherlen). */
    SW_ASSERT_STREQ(text, "dfb4dc90be60b39b4e80b5f790232c36bcb19ea352acb598947ebefc66598b77");
    struct dns_msg m;
    SW_ASSERT_EQ(dns_msg_parse(u.buf.data, u.buf.len, &m), 0);
    SW_ASSERT_EQ(m.count[3], 1);
    SW_ASSERT_EQ(m.rrs[1].type, DNS_TYPE_TSIG);
    SW_ASSERT_STREQ(m.rrs[1].name, "steward-key.");
    dns_msg_free(&m);
    dns_update_free(&u);

    SW_ASSERT_EQ(dns_tsig_key_init(&key, "k.", "not base64!"), -1);
    SW_ASSERT_EQ(dns_tsig_key_init(&key, "k.", ""), -1);
    SW_ASSERT_EQ(dns_tsig_key_init(&key, "k..", SECRET_B64), -1);
}

/* What a server does to sign its reply (RFC 8945 section 5.3), written out independently of
 * dns_tsig_verify: request MAC, the reply without TSIG, then the variables. */
static void server_sign(struct dns_buf *reply, const struct dns_tsig_key *key,
                        const uint8_t *request_mac, uint64_t when, uint16_t error,
                        bool with_mac)
{
    uint8_t mac[32] = {0};
    struct hmac_sha256_ctx h;
    hmac_sha256_init(&h, key->secret, key->secret_len);
    uint8_t len2[2] = {0, 32};
    hmac_sha256_update(&h, len2, 2);
    hmac_sha256_update(&h, request_mac, 32);
    hmac_sha256_update(&h, reply->data, reply->len);
    hmac_sha256_update(&h, key->name_wire, (size_t)key->name_len);
    uint8_t vars[] = {0, 255, 0, 0, 0, 0};
    hmac_sha256_update(&h, vars, sizeof(vars));
    hmac_sha256_update(&h, HMAC_SHA256_NAME, sizeof(HMAC_SHA256_NAME));
    uint8_t t[6];
    put48(t, when);
    hmac_sha256_update(&h, t, 6);
    uint8_t tail[6] = {1, 44, (uint8_t)(error >> 8), (uint8_t)error, 0, 0};
    hmac_sha256_update(&h, tail, 6);
    hmac_sha256_final(&h, mac);
    uint16_t id = get16(reply->data);
    uint16_t ar = get16(reply->data + 10);
    dns_buf_put(reply, key->name_wire, (size_t)key->name_len);
    dns_buf_u16(reply, DNS_TYPE_TSIG);
    dns_buf_u16(reply, DNS_CLASS_ANY);
    dns_buf_u32(reply, 0);
    size_t mac_len = with_mac ? 32 : 0;
    dns_buf_u16(reply, (uint16_t)(sizeof(HMAC_SHA256_NAME) + 16 + mac_len));
    dns_buf_put(reply, HMAC_SHA256_NAME, sizeof(HMAC_SHA256_NAME));
    dns_buf_put(reply, t, 6);
    dns_buf_u16(reply, 300);
    dns_buf_u16(reply, (uint16_t)mac_len);
    dns_buf_put(reply, mac, mac_len);
    dns_buf_u16(reply, id);
    dns_buf_u16(reply, error);
    dns_buf_u16(reply, 0);
    put16(reply->data + 10, (uint16_t)(ar + 1));
}

static void make_reply(struct dns_buf *reply, int rcode)
{
    dns_buf_init(reply);
    put_header(reply, 0x4321, (uint16_t)(0x8000 | DNS_OPCODE_UPDATE << 11 | rcode));
    put_name(reply, "example.test.");
    dns_buf_u16(reply, DNS_TYPE_SOA);
    dns_buf_u16(reply, DNS_CLASS_IN);
    put16(reply->data + 4, 1);
}

SW_TEST(tsig_verify_outcomes)
{
    struct dns_tsig_key key, other;
    SW_ASSERT_EQ(dns_tsig_key_init(&key, "steward-key.", SECRET_B64), 0);
    SW_ASSERT_EQ(dns_tsig_key_init(&other, "steward-key.", "b3RoZXItc2VjcmV0"), 0);
    uint8_t request_mac[32];
    for (int i = 0; i < 32; i++)
        request_mac[i] = (uint8_t)i;
    const uint64_t now = 1700000000;
    int server_error = -1;
    uint8_t mac[32];

    struct dns_buf reply;
    make_reply(&reply, 0);
    server_sign(&reply, &key, request_mac, now + 10, 0, true);
    SW_ASSERT_EQ(dns_tsig_verify(reply.data, reply.len, &key, request_mac, 32, false, now,
                                 &server_error, mac),
                 DNS_TSIG_OK);
    SW_ASSERT_EQ(server_error, 0);
    /* Another secret, another request MAC, a stale clock, a flipped byte. */
    SW_ASSERT_EQ(dns_tsig_verify(reply.data, reply.len, &other, request_mac, 32, false, now,
                                 NULL, NULL),
                 DNS_TSIG_BAD_MAC);
    uint8_t wrong_mac[32] = {0};
    SW_ASSERT_EQ(dns_tsig_verify(reply.data, reply.len, &key, wrong_mac, 32, false, now, NULL,
                                 NULL),
                 DNS_TSIG_BAD_MAC);
    SW_ASSERT_EQ(dns_tsig_verify(reply.data, reply.len, &key, request_mac, 32, false,
                                 now + 1000, NULL, NULL),
                 DNS_TSIG_BAD_TIME);
    reply.data[3] ^= 0x01;
    SW_ASSERT_EQ(dns_tsig_verify(reply.data, reply.len, &key, request_mac, 32, false, now, NULL,
                                 NULL),
                 DNS_TSIG_BAD_MAC);
    dns_buf_free(&reply);

    /* Signed with a key of another name. */
    struct dns_tsig_key renamed;
    SW_ASSERT_EQ(dns_tsig_key_init(&renamed, "other-key.", SECRET_B64), 0);
    make_reply(&reply, 0);
    server_sign(&reply, &renamed, request_mac, now, 0, true);
    SW_ASSERT_EQ(dns_tsig_verify(reply.data, reply.len, &key, request_mac, 32, false, now, NULL,
                                 NULL),
                 DNS_TSIG_WRONG_KEY);
    dns_buf_free(&reply);

    /* The server could not verify us: NOTAUTH with TSIG error BADSIG and no MAC. */
    make_reply(&reply, DNS_RCODE_NOTAUTH);
    server_sign(&reply, &key, request_mac, now, DNS_RCODE_BADSIG, false);
    SW_ASSERT_EQ(dns_tsig_verify(reply.data, reply.len, &key, request_mac, 32, false, now,
                                 &server_error, NULL),
                 DNS_TSIG_SERVER_ERROR);
    SW_ASSERT_EQ(server_error, DNS_RCODE_BADSIG);
    dns_buf_free(&reply);

    /* No TSIG at all, and garbage. */
    make_reply(&reply, DNS_RCODE_REFUSED);
    SW_ASSERT_EQ(dns_tsig_verify(reply.data, reply.len, &key, request_mac, 32, false, now, NULL,
                                 NULL),
                 DNS_TSIG_UNSIGNED);
    SW_ASSERT_EQ(dns_tsig_verify(reply.data, 5, &key, request_mac, 32, false, now, NULL, NULL),
                 DNS_TSIG_MALFORMED);
    dns_buf_free(&reply);
}

SW_TEST(names_of_codes)
{
    char buf[16];
    SW_ASSERT_STREQ(dns_rcode_name(DNS_RCODE_NXRRSET, buf), "NXRRSET");
    SW_ASSERT_STREQ(dns_rcode_name(DNS_RCODE_BADSIG, buf), "BADSIG");
    SW_ASSERT_STREQ(dns_rcode_name(12, buf), "RCODE12");
    SW_ASSERT_STREQ(dns_type_name(DNS_TYPE_AAAA, buf), "AAAA");
    SW_ASSERT_STREQ(dns_type_name(99, buf), "TYPE99");
    SW_ASSERT_EQ(dns_type_from_name("cname"), DNS_TYPE_CNAME);
    SW_ASSERT_EQ(dns_type_from_name("TYPE99"), 99);
    SW_ASSERT_EQ(dns_type_from_name("MX2"), -1);
}

SW_TEST_MAIN()
