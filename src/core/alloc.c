#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Noreturn void oom(size_t n, const char *file, int line)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
    abort();
}

void *core_xmalloc(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n, file, line);
    return p;
}

void *core_xcalloc(size_t count, size_t n, const char *file, int line)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n, file, line);
    return p;
}

void *core_xrealloc(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n, file, line);
    return q;
}

char *core_xstrndup(const char *s, size_t n, const char *file, int line)
{
    char *d = core_xmalloc(n + 1, file, line);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void core_assert_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "fatal: assertion failed: %s at %s:%d\n", what, file, line);
    abort();
}
