/* The schema: every collection, as an immutable snapshot swapped atomically on
 * change, so request threads read it without locks and a change is all or
 * nothing (copy-on-write, like an RCU-published pointer). */
#ifndef DOMAIN_SCHEMA_H
#define DOMAIN_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "core/slice.h"
#include "domain/collection.h"

struct schema {
    struct collection **collections; /* sorted by name */
    size_t ncollections;
    uint64_t version; /* grows with every publish */
    uint32_t refcount;
};

/* The current snapshot, retained: release it with schema_release(). */
struct schema *schema_current(void);
void schema_release(struct schema *s);
/* Publishes a new snapshot made of `list` (each collection retained by the
 * snapshot); the previous one lives until its last reader releases it. */
void schema_publish(struct collection *const *list, size_t n);
/* schema_publish, unless the current snapshot is no longer version
 * `expect` (someone published meanwhile); returns whether it published. */
bool schema_publish_if(uint64_t expect, struct collection *const *list, size_t n);
/* Finds by id or by name (names case-insensitively, as PocketBase); NULL if absent. */
struct collection *schema_find(const struct schema *s, struct slice id_or_name);

#endif
