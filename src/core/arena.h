/* Per-request memory: many small allocations, one free at the end (H2O's pool).
 * Blocks grow geometrically; an allocation larger than a block gets its own. */
#ifndef CORE_ARENA_H
#define CORE_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include "core/slice.h"

struct arena_block;

struct arena {
    struct arena_block *head;
    size_t next_block_size;
};

#define ARENA_INIT ((struct arena){NULL, 0})

/* Returns 16-byte aligned memory owned by the arena; never NULL (aborts on OOM). */
void *arena_alloc(struct arena *a, size_t n);
void *arena_zalloc(struct arena *a, size_t n);
char *arena_strndup(struct arena *a, const char *s, size_t n);
struct slice arena_slice_dup(struct arena *a, struct slice s);
/* Frees every block; the arena is empty and reusable. Accepts an empty arena. */
void arena_reset(struct arena *a);
/* Empties the arena but keeps its first block when that has the usual first
 * size, so the arena's next user allocates nothing until it outgrows it.
 * Returns whether a block was kept (false: the arena is as after reset). */
bool arena_clear(struct arena *a);

#endif
