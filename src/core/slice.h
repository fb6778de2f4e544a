/* Byte slices and growable buffers: how bytes travel through Cruder.
 *
 * A `struct slice` borrows bytes it does not own (a parser points into the
 * caller's buffer instead of copying). A `struct buf` owns a growable,
 * always NUL-terminated byte array; appends abort on allocation failure. */
#ifndef CORE_SLICE_H
#define CORE_SLICE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct slice {
    const char *ptr;
    size_t len;
};

#define SLICE_LIT(s) ((struct slice){(s), sizeof(s) - 1})
#define SLICE_NULL ((struct slice){NULL, 0})
/* printf("%.*s", SLICE_FMT(s)) */
#define SLICE_FMT(s) (int)(s).len, (s).ptr

static inline struct slice slice_make(const char *p, size_t n)
{
    return (struct slice){p, n};
}

static inline struct slice slice_cstr(const char *s)
{
    return (struct slice){s, s ? strlen(s) : 0};
}

static inline bool slice_eq(struct slice a, struct slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool slice_eq_cstr(struct slice a, const char *s)
{
    return slice_eq(a, slice_cstr(s));
}

static inline char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* ASCII case-insensitive equality, as HTTP field names and tokens compare;
 * inline, as header filtering calls it for every field of every request. */
static inline bool slice_case_eq(struct slice a, struct slice b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++)
        if (ascii_lower(a.ptr[i]) != ascii_lower(b.ptr[i]))
            return false;
    return true;
}

bool slice_starts_with(struct slice s, struct slice prefix);
struct slice slice_trim(struct slice s);
/* Parses a whole slice as a non-negative decimal; -1 on anything else or overflow. */
long long slice_to_uint(struct slice s);
/* Writes v in decimal at the end of out (no NUL), without printf's cost on
 * hot paths; returns where the digits start (out + 20 - their count). */
char *u64_to_dec(uint64_t v, char out[20]);

struct buf {
    char *ptr; /* NUL-terminated whenever cap > 0 */
    size_t len;
    size_t cap;
};

#define BUF_INIT ((struct buf){NULL, 0, 0})

/* Grows the buffer to hold at least need bytes (buf_reserve's slow path). */
void buf_grow(struct buf *b, size_t need);

/* The appends are inline: they run for every header of every proxied
 * request, and a literal's strlen then folds to a constant. */
static inline void buf_reserve(struct buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need > b->cap)
        buf_grow(b, need);
}

static inline void buf_append(struct buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->ptr + b->len, p, n);
    b->len += n;
    b->ptr[b->len] = '\0';
}

static inline void buf_append_slice(struct buf *b, struct slice s)
{
    buf_append(b, s.ptr, s.len);
}

static inline void buf_append_cstr(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_append_char(struct buf *b, char c);
__attribute__((format(printf, 2, 3))) void buf_appendf(struct buf *b, const char *fmt, ...);
__attribute__((format(printf, 2, 0))) void buf_vappendf(struct buf *b, const char *fmt, va_list ap);
/* Appends name as an SQL identifier: double-quoted, inner quotes doubled. */
void buf_append_sql_ident(struct buf *b, const char *name);
/* Drops the first n bytes, keeping the rest. */
void buf_consume(struct buf *b, size_t n);
static inline void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->cap)
        b->ptr[0] = '\0';
}
static inline struct slice buf_slice(const struct buf *b)
{
    return (struct slice){b->ptr, b->len};
}
/* Frees the storage; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);
/* Hands the storage to the caller (free() it); the buffer is empty afterwards. */
char *buf_steal(struct buf *b);

#endif
