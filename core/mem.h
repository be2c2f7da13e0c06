/* mem.h — allocation that never returns NULL (it logs and exits on OOM, as Neovim and
 * Redis do), plus the small string helpers the core shares. Free everything with free().
 */
#ifndef SW_MEM_H
#define SW_MEM_H

#include <stddef.h>

void *sw_xmalloc(size_t size);
void *sw_xcalloc(size_t count, size_t size);
void *sw_xrealloc(void *ptr, size_t size);
/* NULL in, NULL out. */
char *sw_xstrdup(const char *s);
char *sw_xstrndup(const char *s, size_t len);
/* printf into a new string; owned by the caller. */
char *sw_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The allocator this build links, for `steward version`: "jemalloc 5.3.0-..." or "libc
 * malloc". A static string. */
const char *sw_mem_allocator(void);

#define SW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif /* SW_MEM_H */
