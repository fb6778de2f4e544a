#include "core/slice.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"

bool slice_starts_with(struct slice s, struct slice prefix)
{
    return s.len >= prefix.len && memcmp(s.ptr, prefix.ptr, prefix.len) == 0;
}

struct slice slice_trim(struct slice s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

long long slice_to_uint(struct slice s)
{
    if (s.len == 0 || s.len > 18)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return -1;
        v = v * 10 + (s.ptr[i] - '0');
    }
    return v;
}

char *u64_to_dec(uint64_t v, char out[20])
{
    char *p = out + 20;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

void buf_grow(struct buf *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->ptr = xrealloc(b->ptr, cap);
    b->cap = cap;
}

void buf_append_char(struct buf *b, char c)
{
    buf_append(b, &c, 1);
}

void buf_vappendf(struct buf *b, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    buf_reserve(b, 64);
    int n = vsnprintf(b->ptr + b->len, b->cap - b->len, fmt, ap);
    core_assert(n >= 0);
    if ((size_t)n >= b->cap - b->len) {
        buf_reserve(b, (size_t)n);
        vsnprintf(b->ptr + b->len, b->cap - b->len, fmt, copy);
    }
    va_end(copy);
    b->len += (size_t)n;
}

void buf_appendf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vappendf(b, fmt, ap);
    va_end(ap);
}

void buf_append_sql_ident(struct buf *b, const char *name)
{
    buf_append_char(b, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            buf_append_char(b, '"');
        buf_append_char(b, *p);
    }
    buf_append_char(b, '"');
}

void buf_consume(struct buf *b, size_t n)
{
    core_assert(n <= b->len);
    if (n == 0)
        return;
    memmove(b->ptr, b->ptr + n, b->len - n);
    b->len -= n;
    if (b->cap)
        b->ptr[b->len] = '\0';
}

void buf_free(struct buf *b)
{
    free(b->ptr);
    *b = BUF_INIT;
}

char *buf_steal(struct buf *b)
{
    if (!b->ptr)
        buf_reserve(b, 0);
    char *p = b->ptr;
    *b = BUF_INIT;
    return p;
}
