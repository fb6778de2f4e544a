/* Record ids and logical partitions.
 *
 * An id is 15 characters of [a-z0-9] (PocketBase's shape). Its partition is
 * FNV-1a-64(id) mod P, where P is fixed when the data directory or cluster is
 * created; the hash is part of the on-disk format and must never change. */
#ifndef CORE_ID_H
#define CORE_ID_H

#include <stdbool.h>
#include <stdint.h>

#include "core/slice.h"

enum { ID_LEN = 15 };

/* Writes ID_LEN random characters and a NUL into out. */
void id_generate(char out[ID_LEN + 1]);
/* True if s is exactly ID_LEN characters of [a-z0-9]. */
bool id_valid(struct slice s);
uint64_t id_hash(struct slice s);
/* The logical partition of an id; partitions must be > 0. */
static inline uint32_t id_partition(struct slice id, uint32_t partitions)
{
    return (uint32_t)(id_hash(id) % partitions);
}
/* Fills out with n random bytes from the kernel; aborts if none can be had. */
void id_random_bytes(void *out, size_t n);

#endif
