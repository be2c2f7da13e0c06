#include "base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void sw_base64_encode_to(const void *data, size_t len, char *out)
{
    const unsigned char *in = data;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = B64[(v >> 18) & 63];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? B64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? B64[v & 63] : '=';
    }
    out[o] = '\0';
}

char *sw_base64_encode(const void *data, size_t len)
{
    char *out = sw_xmalloc(SW_BASE64_ENCODED_LEN(len) + 1);
    sw_base64_encode_to(data, len, out);
    return out;
}

static int b64_value(char c)
{
    const char *p = c != '\0' ? strchr(B64, c) : NULL;
    return p != NULL ? (int)(p - B64) : -1;
}

char *sw_base64_decode(const char *text, size_t len, size_t *len_out)
{
    if (len % 4 != 0)
        return NULL;
    char *out = sw_xmalloc(len / 4 * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = text[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad > 0 || (v[k] = b64_value(c)) < 0) {
                free(out);
                return NULL;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        out[o++] = (char)(w >> 16);
        if (pad < 2)
            out[o++] = (char)(w >> 8 & 0xff);
        if (pad < 1)
            out[o++] = (char)(w & 0xff);
    }
    out[o] = '\0';
    if (len_out != NULL)
        *len_out = o;
    return out;
}
