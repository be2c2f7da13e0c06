/* sha256.h — SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) for TSIG signing.
 *
 * Compiled into swp_dns_rfc2136.so (a plugin may not link the core, and this keeps the
 * plugin free of a libcrypto dependency); checked against the FIPS and RFC 4231 vectors in
 * tests/unit/test_dns_wire.c. Not constant-time beyond what HMAC verification needs (the
 * MAC comparison is, see dns_wire.c).
 */
#ifndef SWP_DNS_SHA256_H
#define SWP_DNS_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_BLOCK_LEN 64

struct sha256_ctx {
    uint32_t state[8];
    uint64_t total_len;
    uint8_t block[SHA256_BLOCK_LEN];
    size_t block_len;
};

void sha256_init(struct sha256_ctx *ctx);
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len);
void sha256_final(struct sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_LEN]);

struct hmac_sha256_ctx {
    struct sha256_ctx inner;
    struct sha256_ctx outer;
};

/* Keys longer than the block size are hashed first, as RFC 2104 says. */
void hmac_sha256_init(struct hmac_sha256_ctx *ctx, const uint8_t *key, size_t key_len);
void hmac_sha256_update(struct hmac_sha256_ctx *ctx, const void *data, size_t len);
void hmac_sha256_final(struct hmac_sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_LEN]);

#endif /* SWP_DNS_SHA256_H */
