/* The cache's eviction policies, over nodes embedded in its entries and
 * weighed in bytes: LRU, and S3-FIFO (Yang et al., SOSP 2023), the default.
 * S3-FIFO admits new objects to a small FIFO (a tenth of the bytes); those
 * read again while there move to the main FIFO, the rest leave and their
 * hash goes to a ghost set, so a second miss soon after goes straight to
 * main. Main re-inserts objects read since their last pass (a 2-bit
 * counter). One-hit wonders, the bulk of a Zipf tail, thus leave after a
 * short stay instead of pushing hot objects out, as they do under LRU.
 * bench/cache_policy.c compares the two. Callers hold the cache's lock. */
#include <stdlib.h>

#include "core/alloc.h"
#include "gateway/cache.h"
#include "gateway/cache_internal.h"

enum { GHOST_MIN = 1024, FREQ_MAX = 3 };

static void list_init(struct cache_plist *l)
{
    l->head.next = l->head.prev = &l->head;
    l->bytes = l->count = 0;
}

static void list_push(struct cache_plist *l, struct cache_pnode *n)
{
    n->next = l->head.next;
    n->prev = &l->head;
    l->head.next->prev = n;
    l->head.next = n;
    l->bytes += n->bytes;
    l->count++;
}

static void list_unlink(struct cache_plist *l, struct cache_pnode *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
    l->bytes -= n->bytes;
    l->count--;
}

static struct cache_pnode *list_tail(struct cache_plist *l)
{
    return l->count ? l->head.prev : NULL;
}

void cache_policy_init(struct cache_policy_state *p, int kind, size_t max_bytes)
{
    p->kind = kind;
    p->max_bytes = max_bytes;
    list_init(&p->a);
    list_init(&p->b);
    p->nghost = 0;
    p->ghost = NULL;
    if (kind == CACHE_POLICY_S3FIFO) {
        p->nghost = GHOST_MIN;
        p->ghost = xcalloc(p->nghost, sizeof(*p->ghost));
    }
}

void cache_policy_free(struct cache_policy_state *p)
{
    free(p->ghost);
    p->ghost = NULL;
}

/* The ghost is direct-mapped: a newer hash overwrites an older one in its
 * slot, an approximate FIFO that needs no links and no allocation. */
static size_t ghost_slot(const struct cache_policy_state *p, uint64_t h)
{
    return (size_t)(h % p->nghost);
}

static bool ghost_take(struct cache_policy_state *p, uint64_t h)
{
    size_t s = ghost_slot(p, h);
    if (p->ghost[s] != (h | 1))
        return false;
    p->ghost[s] = 0;
    return true;
}

static void ghost_grow(struct cache_policy_state *p)
{
    /* Sized as the paper sizes it, like the number of objects cached;
     * growing forgets the ghosts, which only costs a few second chances. */
    size_t count = p->a.count + p->b.count;
    if (count * 2 <= p->nghost)
        return;
    free(p->ghost);
    p->nghost = count * 4;
    p->ghost = xcalloc(p->nghost, sizeof(*p->ghost));
}

void cache_policy_insert(struct cache_policy_state *p, struct cache_pnode *n)
{
    n->freq = 0;
    if (p->kind == CACHE_POLICY_LRU) {
        list_push(&p->a, n);
        return;
    }
    if (ghost_take(p, n->hash)) {
        n->queue = 1;
        list_push(&p->b, n);
    } else {
        n->queue = 0;
        list_push(&p->a, n);
    }
    ghost_grow(p);
}

void cache_policy_insert_hot(struct cache_policy_state *p, struct cache_pnode *n)
{
    if (p->kind == CACHE_POLICY_LRU) {
        cache_policy_insert(p, n);
        return;
    }
    n->freq = 0;
    n->queue = 1;
    list_push(&p->b, n);
}

void cache_policy_hit(struct cache_policy_state *p, struct cache_pnode *n)
{
    if (p->kind == CACHE_POLICY_LRU) {
        list_unlink(&p->a, n);
        list_push(&p->a, n);
        return;
    }
    if (n->freq < FREQ_MAX)
        n->freq++;
}

void cache_policy_remove(struct cache_policy_state *p, struct cache_pnode *n)
{
    list_unlink(n->queue && p->kind == CACHE_POLICY_S3FIFO ? &p->b : &p->a, n);
}

struct cache_pnode *cache_policy_victim(struct cache_policy_state *p)
{
    if (p->kind == CACHE_POLICY_LRU)
        return list_tail(&p->a);
    for (;;) {
        struct cache_pnode *n;
        if (p->a.count && (p->a.bytes > p->max_bytes / 10 || p->b.count == 0)) {
            n = list_tail(&p->a);
            if (n->freq > 0) {
                list_unlink(&p->a, n);
                n->queue = 1;
                n->freq = 0;
                list_push(&p->b, n);
                continue;
            }
            p->ghost[ghost_slot(p, n->hash)] = n->hash | 1;
            return n;
        }
        n = list_tail(&p->b);
        if (n == NULL)
            return NULL;
        if (n->freq > 0) {
            n->freq--;
            list_unlink(&p->b, n);
            list_push(&p->b, n);
            continue;
        }
        return n;
    }
}

size_t cache_policy_bytes(const struct cache_policy_state *p)
{
    return p->a.bytes + p->b.bytes;
}
