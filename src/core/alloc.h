/* Allocation that never returns NULL: running out of memory is not a condition
 * Cruder can serve through, so every allocation failure aborts with the caller's
 * file and line (Redis zmalloc, SQLite's mallocFailed both end the same way for us). */
#ifndef CORE_ALLOC_H
#define CORE_ALLOC_H

#include <stddef.h>

void *core_xmalloc(size_t n, const char *file, int line);
void *core_xcalloc(size_t count, size_t n, const char *file, int line);
void *core_xrealloc(void *p, size_t n, const char *file, int line);
char *core_xstrndup(const char *s, size_t n, const char *file, int line);

#define xmalloc(n) core_xmalloc((n), __FILE__, __LINE__)
#define xcalloc(c, n) core_xcalloc((c), (n), __FILE__, __LINE__)
#define xrealloc(p, n) core_xrealloc((p), (n), __FILE__, __LINE__)
#define xstrndup(s, n) core_xstrndup((s), (n), __FILE__, __LINE__)
#define xstrdup(s) core_xstrndup((s), strlen(s), __FILE__, __LINE__)

/* An invariant of the program itself, kept in release builds. Never use it on
 * anything a client, a file or the network can influence. */
#define core_assert(cond) ((cond) ? (void)0 : core_assert_fail(#cond, __FILE__, __LINE__))
_Noreturn void core_assert_fail(const char *what, const char *file, int line);

#endif
