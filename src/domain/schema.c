/* The published schema snapshot. Readers take a reference under a short
 * mutex (a pointer copy and an increment) and then read without locks; a
 * publish swaps the pointer and the old snapshot dies with its last reader.
 * Publishes are rare (collection changes); reads happen on every request. */
#include "domain/schema.h"

#include <pthread.h>
#include <stdlib.h>
#include <strings.h>

#include "core/alloc.h"

static pthread_mutex_t schema_lock = PTHREAD_MUTEX_INITIALIZER;
static struct schema *schema_now;
static uint64_t schema_version;

static void schema_free(struct schema *s)
{
    for (size_t i = 0; i < s->ncollections; i++)
        collection_release(s->collections[i]);
    free(s->collections);
    free(s);
}

struct schema *schema_current(void)
{
    pthread_mutex_lock(&schema_lock);
    if (!schema_now) {
        schema_now = xcalloc(1, sizeof(*schema_now));
        schema_now->refcount = 1;
    }
    struct schema *s = schema_now;
    s->refcount++;
    pthread_mutex_unlock(&schema_lock);
    return s;
}

void schema_release(struct schema *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&schema_lock);
    bool last = --s->refcount == 0;
    pthread_mutex_unlock(&schema_lock);
    if (last)
        schema_free(s);
}

static int by_name(const void *a, const void *b)
{
    const struct collection *x = *(struct collection *const *)a;
    const struct collection *y = *(struct collection *const *)b;
    return strcasecmp(x->name, y->name);
}

static bool publish(bool check, uint64_t expect, struct collection *const *list, size_t n)
{
    struct schema *s = xcalloc(1, sizeof(*s));
    s->collections = xcalloc(n ? n : 1, sizeof(*s->collections));
    for (size_t i = 0; i < n; i++) {
        collection_retain(list[i]);
        s->collections[i] = list[i];
    }
    s->ncollections = n;
    qsort(s->collections, n, sizeof(*s->collections), by_name);
    s->refcount = 1; /* the published slot's own reference */

    pthread_mutex_lock(&schema_lock);
    struct schema *old = schema_now;
    if (check && (old ? old->version : 0) != expect) {
        pthread_mutex_unlock(&schema_lock);
        schema_free(s);
        return false;
    }
    s->version = ++schema_version;
    schema_now = s;
    bool last = old && --old->refcount == 0;
    pthread_mutex_unlock(&schema_lock);
    if (last)
        schema_free(old);
    return true;
}

void schema_publish(struct collection *const *list, size_t n)
{
    publish(false, 0, list, n);
}

bool schema_publish_if(uint64_t expect, struct collection *const *list, size_t n)
{
    return publish(true, expect, list, n);
}

struct collection *schema_find(const struct schema *s, struct slice id_or_name)
{
    for (size_t i = 0; i < s->ncollections; i++)
        if (slice_eq_cstr(id_or_name, s->collections[i]->id))
            return s->collections[i];
    for (size_t i = 0; i < s->ncollections; i++)
        if (slice_case_eq(id_or_name, slice_cstr(s->collections[i]->name)))
            return s->collections[i];
    return NULL;
}
