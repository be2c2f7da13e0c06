#include "mem.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SW_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

static void die_oom(size_t size)
{
    fprintf(stderr, "steward: out of memory allocating %zu bytes\n", size);
    exit(70);
}

void *sw_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        die_oom(size);
    return p;
}

void *sw_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        die_oom(count * size);
    return p;
}

void *sw_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        die_oom(size);
    return p;
}

char *sw_xstrdup(const char *s)
{
    return s == NULL ? NULL : sw_xstrndup(s, strlen(s));
}

char *sw_xstrndup(const char *s, size_t len)
{
    if (s == NULL)
        return NULL;
    char *p = sw_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *sw_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = sw_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

#ifdef SW_HAVE_JEMALLOC
/* Whether malloc() itself is jemalloc's: linking the library does not guarantee it (a
 * preloaded allocator comes first), so watch jemalloc's count of this thread's bytes. */
static bool malloc_is_jemalloc(void)
{
    uint64_t before = 0, after = 0;
    size_t len = sizeof(before);
    if (mallctl("thread.allocated", &before, &len, NULL, 0) != 0)
        return false;
    void *volatile probe = malloc(4096);
    len = sizeof(after);
    int rc = mallctl("thread.allocated", &after, &len, NULL, 0);
    free(probe);
    return rc == 0 && after >= before + 4096;
}
#endif

const char *sw_mem_allocator(void)
{
#ifdef SW_HAVE_JEMALLOC
    static char name[96];
    const char *version = NULL;
    size_t len = sizeof(version);
    if (!malloc_is_jemalloc())
        return "libc malloc (jemalloc linked but not in use)";
    if (name[0] == '\0' && mallctl("version", &version, &len, NULL, 0) == 0 && version)
        snprintf(name, sizeof(name), "jemalloc %s", version);
    return name[0] != '\0' ? name : "jemalloc";
#else
    return "libc malloc";
#endif
}
