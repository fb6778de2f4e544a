#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

struct arena_block {
    struct arena_block *next;
    size_t used;
    size_t size;
    _Alignas(16) unsigned char data[];
};

enum { ARENA_FIRST_BLOCK = 4096, ARENA_MAX_BLOCK = 1 << 20 };

void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arena_block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = a->next_block_size ? a->next_block_size : ARENA_FIRST_BLOCK;
        if (a->next_block_size < ARENA_MAX_BLOCK)
            a->next_block_size = size * 2;
        if (size < n)
            size = n;
        b = xmalloc(sizeof(*b) + size);
        b->used = 0;
        b->size = size;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void *arena_zalloc(struct arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

struct slice arena_slice_dup(struct arena *a, struct slice s)
{
    return slice_make(arena_strndup(a, s.ptr, s.len), s.len);
}

void arena_reset(struct arena *a)
{
    struct arena_block *b = a->head;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    *a = ARENA_INIT;
}

bool arena_clear(struct arena *a)
{
    struct arena_block *b = a->head;
    while (b && b->next) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    if (!b || b->size != ARENA_FIRST_BLOCK) {
        free(b);
        *a = ARENA_INIT;
        return false;
    }
    b->used = 0;
    a->head = b;
    a->next_block_size = 2 * ARENA_FIRST_BLOCK;
    return true;
}
