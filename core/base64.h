/* base64.h — RFC 4648 base64 (standard alphabet, '=' padding) for the core: etcd's JSON
 * gateway carries keys and values in it (ha.c), and the built-in marketplace shows a
 * deployment's manifest hash in it (market_server.c). Pure functions, any thread.
 */
#ifndef SW_BASE64_H
#define SW_BASE64_H

#include <stddef.h>

/* Characters the encoding of len bytes takes, without the NUL. */
#define SW_BASE64_ENCODED_LEN(len) (((len) + 2) / 3 * 4)

/* Encodes len bytes of data into out, which holds SW_BASE64_ENCODED_LEN(len) + 1 bytes (the
 * caller's; a NUL ends it). data is borrowed for the call. */
void sw_base64_encode_to(const void *data, size_t len, char *out);

/* Encodes len bytes of data (borrowed for the call). Returns a NUL-terminated string, owned
 * by the caller (free with free()); never NULL (allocation failure exits, see mem.h). */
char *sw_base64_encode(const void *data, size_t len);

/* Decodes len characters of text (borrowed; need not be NUL-terminated). The length must be
 * a multiple of 4 and '=' may only pad the last group. Returns the bytes with a NUL appended
 * (so text decodes to a C string), owned by the caller (free with free()), and stores their
 * count without that NUL in *len_out when len_out is not NULL; NULL on malformed input. */
char *sw_base64_decode(const char *text, size_t len, size_t *len_out);

#endif /* SW_BASE64_H */
