/* base64.c: RFC 4648 §10's vectors, round trips of text and of binary bytes (NUL, 0xff),
 * the caller-buffer form against the owned one, and what decode refuses. */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "sw_test.h"

SW_TEST(rfc4648_vectors)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        char *enc = sw_base64_encode(plain[i], strlen(plain[i]));
        SW_ASSERT_STREQ(enc, coded[i]);
        SW_ASSERT_EQ(strlen(enc), SW_BASE64_ENCODED_LEN(strlen(plain[i])));
        size_t len = 99;
        char *dec = sw_base64_decode(coded[i], strlen(coded[i]), &len);
        SW_ASSERT(dec != NULL);
        SW_ASSERT_EQ(len, strlen(plain[i]));
        SW_ASSERT_STREQ(dec, plain[i]);
        free(enc);
        free(dec);
    }
}

SW_TEST(text_round_trip)
{
    const char *samples[] = {"", "a", "ab", "abc", "/steward/e2etag/units/e2etag-u12",
                             "{\"k\":\"\\u00e9\"}"};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        char *enc = sw_base64_encode(samples[i], strlen(samples[i]));
        size_t len = 0;
        char *dec = sw_base64_decode(enc, strlen(enc), &len);
        SW_ASSERT(dec != NULL);
        SW_ASSERT_EQ(len, strlen(samples[i]));
        SW_ASSERT_STREQ(dec, samples[i]);
        free(enc);
        free(dec);
    }
    char *enc = sw_base64_encode("r1", 2);
    SW_ASSERT_STREQ(enc, "cjE=");
    free(enc);
}

SW_TEST(binary_round_trip_and_caller_buffer)
{
    unsigned char bytes[32];
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (unsigned char)(i * 37 + 200); /* holds 0x00 and 0xff among others */
    bytes[5] = 0;
    for (size_t len = 0; len <= sizeof(bytes); len++) {
        char buf[SW_BASE64_ENCODED_LEN(sizeof(bytes)) + 1];
        memset(buf, 'x', sizeof(buf));
        sw_base64_encode_to(bytes, len, buf);
        SW_ASSERT_EQ(strlen(buf), SW_BASE64_ENCODED_LEN(len));
        char *owned = sw_base64_encode(bytes, len);
        SW_ASSERT_STREQ(buf, owned);
        size_t out_len = 0;
        char *dec = sw_base64_decode(buf, strlen(buf), &out_len);
        SW_ASSERT(dec != NULL);
        SW_ASSERT_EQ(out_len, len);
        SW_ASSERT(memcmp(dec, bytes, len) == 0);
        SW_ASSERT_EQ(dec[len], '\0');
        free(owned);
        free(dec);
    }
    /* The marketplace's manifest hash: 32 bytes are 44 characters, one '='. */
    char hash[SW_BASE64_ENCODED_LEN(32) + 1];
    sw_base64_encode_to(bytes, 32, hash);
    SW_ASSERT_EQ(strlen(hash), 44);
    SW_ASSERT_EQ(hash[43], '=');
    SW_ASSERT(hash[42] != '=');
}

SW_TEST(decode_refuses_malformed)
{
    SW_ASSERT(sw_base64_decode("cjE", 3, NULL) == NULL);     /* not a multiple of 4 */
    SW_ASSERT(sw_base64_decode("c=E=", 4, NULL) == NULL);    /* data after padding */
    SW_ASSERT(sw_base64_decode("cj*=", 4, NULL) == NULL);    /* outside the alphabet */
    SW_ASSERT(sw_base64_decode("c===", 4, NULL) == NULL);    /* three pads */
    SW_ASSERT(sw_base64_decode("cj==Zg==", 8, NULL) == NULL); /* padding mid-text */
    SW_ASSERT(sw_base64_decode("Zm9v\0Zm9", 8, NULL) == NULL); /* an embedded NUL */
    SW_ASSERT(sw_base64_decode("Zm9v-_==", 8, NULL) == NULL); /* the URL alphabet */
    /* Only len characters are read: the rest of the buffer may be anything. */
    char *dec = sw_base64_decode("Zm9v!!!!", 4, NULL);
    SW_ASSERT_STREQ(dec, "foo");
    free(dec);
}

SW_TEST_MAIN()
