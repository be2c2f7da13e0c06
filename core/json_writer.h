/* json_writer.h — JSON text written straight into a growing buffer: no cJSON tree, and no
 * printf for integers. What it writes is byte for byte what cJSON_PrintUnformatted prints
 * for the same document (cJSON's string escapes and number format), so a record moved from
 * cJSON to the writer keeps its bytes, and the digests the journal takes of them.
 *
 * Members are written in call order; sw_jw_key and the value functions put the commas.
 * One writer per document, one thread; allocation failure exits (see mem.h).
 */
#ifndef SW_JSON_WRITER_H
#define SW_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>

struct sw_jw {
    char *text; /* NUL-terminated after every call; owned by the writer until taken */
    size_t len;
    size_t cap;
    bool first; /* no comma before the next member */
};

/* An empty writer (no allocation yet). */
void sw_jw_init(struct sw_jw *w);

/* Frees what the writer holds; the writer is empty again. */
void sw_jw_free(struct sw_jw *w);

/* The text written so far, owned by the caller (free with free()); "" when nothing was
 * written, never NULL. The writer is empty again. */
char *sw_jw_take(struct sw_jw *w);

/* Room for `more` bytes (and the NUL) without another allocation. */
void sw_jw_reserve(struct sw_jw *w, size_t more);

/* Appends len bytes of data (borrowed) as they are: JSON text already, or any text when the
 * writer serves as a plain growable buffer (the admin API's documents). */
void sw_jw_raw(struct sw_jw *w, const char *data, size_t len);

/* Opens an object ('{') or an array ('['), as the member key (NULL: an array element or
 * the document itself). */
void sw_jw_open(struct sw_jw *w, const char *key, char bracket);

/* Closes what sw_jw_open opened: bracket is '}' or ']'. */
void sw_jw_close(struct sw_jw *w, char bracket);

/* A member or element (key NULL). value NULL writes `null`. Strings are borrowed. */
void sw_jw_string(struct sw_jw *w, const char *key, const char *value);

/* A number as cJSON prints it: "%1.15g" unless that does not read back within DBL_EPSILON,
 * then "%1.17g"; NaN and the infinities as `null`. Integral values below 1e15 are written
 * without printf (the same digits). */
void sw_jw_number(struct sw_jw *w, const char *key, double value);

void sw_jw_bool(struct sw_jw *w, const char *key, bool value);

#endif /* SW_JSON_WRITER_H */
