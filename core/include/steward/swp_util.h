/* swp_util.h — small helpers every plugin wants: allocation that never returns NULL and
 * filling a struct swp_error.
 *
 * Header-only (static inline): nothing here is part of the binary ABI, so a plugin built
 * against one version of this file keeps working with any host of the same ABI major.
 * Out of memory aborts the process, as the core's own allocators do: a control plane that
 * cannot allocate cannot keep its journal consistent either.
 */
#ifndef SWP_UTIL_H
#define SWP_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swp_types.h"

static inline void swp_oom(void)
{
    fputs("steward plugin: out of memory\n", stderr);
    abort();
}

/* calloc that never returns NULL (a zero count or size still gives a distinct block).
 * The caller frees with free(). */
static inline void *swp_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        swp_oom();
    return p;
}

/* realloc that never returns NULL. */
static inline void *swp_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL)
        swp_oom();
    return q;
}

/* A copy of s (NULL gives NULL). The caller frees with free(). */
static inline char *swp_xstrdup(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *copy = swp_xcalloc(1, n);
    memcpy(copy, s, n);
    return copy;
}

static inline char *swp_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A formatted string. The caller frees with free(). */
static inline char *swp_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *out = swp_xcalloc(1, n > 0 ? (size_t)n + 1 : 1);
    va_start(ap, fmt);
    vsnprintf(out, n > 0 ? (size_t)n + 1 : 1, fmt, ap);
    va_end(ap);
    return out;
}

static inline void swp_set_error(struct swp_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fill *err (the host's error out-parameter; NULL is allowed and ignored): code and a
 * message truncated to fit. */
static inline void swp_set_error(struct swp_error *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

#endif
