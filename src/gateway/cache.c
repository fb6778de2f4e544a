/* The shared cache's store and decisions (see cache.h for the life of a
 * request). Load: one lookup per proxied request from every loop, so the
 * lock is held for a hash probe and a few comparisons only; bodies are
 * copied into entries while no lock is held, and served from immutable,
 * reference-counted entries.
 *
 * Keys are the lowercased Host and the request-target. Variants (Vary) of a
 * key share its hash chain. A fill in flight is registered under its key so
 * later misses wait for it instead of going upstream; a key whose last
 * answer could not be stored is marked for hit_for_miss_s so its requests
 * stop waiting on each other (Varnish's hit-for-miss).
 *
 * The disk tier keeps one file per response (head then body) and, in
 * memory, what a lookup or a purge needs to find it: key, Vary, validators,
 * tags, freshness. No event loop touches the disk: under the lock,
 * evictions, removals and disk hits only queue work for the cache's disk
 * thread, which writes, reads and removes the files with no lock held. A
 * request that finds its response on disk waits (CACHE_WAIT) until the
 * thread has moved it back to memory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include "core/alloc.h"
#include "gateway/cache.h"
#include "gateway/cache_internal.h"

enum { HFM_SLOTS = 1024, FILL_BUCKETS = 256, TAG_SLOTS = 16384 };

enum entry_flag {
    E_MUST_REVALIDATE = 1, /* must-revalidate, proxy-revalidate or s-maxage */
    E_NO_CACHE = 2,        /* unqualified no-cache: validate every use */
    E_IMMUTABLE = 4,
};

struct waiter {
    void (*fn)(void *arg);
    void *arg;
    struct waiter *next;
};

struct cache_entry {
    struct cache_pnode node; /* first: the policy hands back nodes */
    struct cache_entry *hnext;
    int refs;
    bool linked;
    char *key;
    size_t keylen;
    int status;
    struct buf head; /* stored field lines */
    struct buf body;
    struct buf vary; /* per Vary field: "name\n" then "1value\n" or "0\n" */
    struct buf no_cache_fields, tags, etag, last_modified;
    int64_t response_time, date_value, corrected_initial_age;
    int64_t lifetime, swr, sie;
    unsigned flags;
    size_t bytes;
    /* In the disk tier: the file's number (0: in memory) and the lengths of
     * the head and body it holds; head and body are then empty here. */
    uint64_t disk_file;
    size_t disk_head_len, disk_body_len;
    /* On its way to disk, it was purged or invalidated: the copy is dropped. */
    bool doomed;
    /* Its tags' slots in c->tag_bumped, and the tag clock when its request
     * was forwarded: a tag bumped since makes it stale (tags_stale). */
    uint16_t *tag_slots;
    size_t ntag_slots;
    uint64_t tag_since;
    struct cache_entry *qnext; /* in the disk thread's queues */
    bool reading;              /* a disk entry queued to be read back */
    struct waiter *readers;    /* lookups waiting for that read */
    struct cache_entry *moved; /* the disk thread's copy in the other tier, while it links it */
};

struct cache_fill {
    struct cache *c;
    struct cache_fill *next; /* in its fill bucket, when registered */
    bool registered, doomed, req_no_store, authorization, head_only, background;
    enum cache_fill_action action;
    uint64_t hash;
    char *key;
    size_t keylen;
    struct waiter *waiters;
    struct cache_entry *stale; /* the stored response being revalidated */
    struct cache_entry *building;
    struct buf cond;
    struct http_header *hdrs; /* a copy of the request's fields, for Vary */
    size_t nhdrs;
    char *hdr_mem;
    int64_t request_time, req_sie;
    uint64_t tag_since; /* c->tag_clock when the request was forwarded */
};

struct hfm {
    uint64_t hash;
    int64_t until;
};

struct cache {
    struct cache_options o;
    struct buf status_key; /* o.status_name as Cache-Status' key: a token or quoted */
    pthread_mutex_t mu;
    /* Tag invalidation without a scan: an unsafe request's answer stamps
     * the slot of each of its tags with the next tick of tag_clock, and a
     * lookup drops an entry whose tags were stamped after its request. Two
     * tags sharing a slot only cost an extra miss. */
    uint64_t tag_clock;
    uint64_t tag_bumped[TAG_SLOTS];
    struct cache_entry **buckets;
    size_t nbuckets, count;
    struct cache_fill *fills[FILL_BUCKETS];
    struct hfm hfm[HFM_SLOTS];
    struct cache_policy_state policy;
    struct cache_stats st;
    /* The disk tier; dirfd < 0 when there is none. Its thread's queues, each
     * entry holding a reference, linked by qnext: */
    int dirfd;
    uint64_t next_file;
    struct cache_policy_state disk;
    struct cache_entry *demote_q; /* evicted from memory, to be written */
    struct cache_entry *read_q;   /* on disk, to be read back */
    uint64_t *unlink_q;           /* file numbers to remove */
    size_t n_unlink, cap_unlink;
    /* With a disk tier, a fifth of max_bytes is kept for responses on their
     * way to disk (demote_bytes of them now), so that stored and in transit
     * together stay within max_bytes. */
    size_t transit_max, demote_bytes;
    uint64_t disk_pending;
    pthread_t disk_thread;
    pthread_cond_t disk_cv;
    bool disk_stop;
    struct cache_entry *writing; /* the demotions the disk thread is writing */
};

static int64_t default_clock(void *arg)
{
    (void)arg;
    return (int64_t)time(NULL);
}

static int64_t now_s(const struct cache *c)
{
    return c->o.clock(c->o.clock_arg);
}

static uint64_t hash_key(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static char *make_key(struct slice host, struct slice target, size_t *len)
{
    char *k = xmalloc(host.len + target.len + 2);
    for (size_t i = 0; i < host.len; i++) {
        char ch = host.ptr[i];
        k[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    k[host.len] = '\n';
    memcpy(k + host.len + 1, target.ptr, target.len);
    *len = host.len + 1 + target.len;
    k[*len] = '\0';
    return k;
}

/* A disk tier file's name: its number in hex, 16 digits. */
static void disk_name(uint64_t n, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, n);
}

/* Removes the tier's files (names of 16 hex digits) from a previous run or
 * at the end of this one; anything else in the directory stays. */
static void disk_sweep(int dirfd)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d); /* the duplicate shares dirfd's offset, left at the end by a sweep */
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        size_t n = strlen(de->d_name);
        if (n == 16 && strspn(de->d_name, "0123456789abcdef") == 16)
            unlinkat(dirfd, de->d_name, 0);
    }
    closedir(d);
}

static void *disk_main(void *arg);

struct cache *cache_new(const struct cache_options *opts)
{
    int dirfd = -1;
    if (opts->disk_dir && opts->disk_max_bytes) {
        if (mkdir(opts->disk_dir, 0700) != 0 && errno != EEXIST)
            return NULL;
        dirfd = open(opts->disk_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
            return NULL;
        disk_sweep(dirfd);
    }
    struct cache *c = xcalloc(1, sizeof(*c));
    c->dirfd = dirfd;
    c->next_file = 1;
    c->o = *opts;
    if (c->o.max_object_bytes == 0)
        c->o.max_object_bytes = c->o.max_bytes / 8;
    if (c->o.heuristic_max_s == 0)
        c->o.heuristic_max_s = 86400;
    if (c->o.hit_for_miss_s == 0)
        c->o.hit_for_miss_s = 10;
    if (c->o.status_name == NULL)
        c->o.status_name = "cruder";
    if (cache_is_token(slice_cstr(c->o.status_name)))
        buf_append_cstr(&c->status_key, c->o.status_name);
    else
        buf_appendf(&c->status_key, "\"%s\"", c->o.status_name);
    if (c->o.clock == NULL)
        c->o.clock = default_clock;
    pthread_mutex_init(&c->mu, NULL);
    c->nbuckets = 1024;
    c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
    c->transit_max = dirfd >= 0 ? c->o.max_bytes / 5 : 0;
    cache_policy_init(&c->policy, c->o.policy, c->o.max_bytes - c->transit_max);
    /* A disk hit moves the response back to memory, so disk order is
     * insertion order and LRU's list is the FIFO wanted. */
    cache_policy_init(&c->disk, CACHE_POLICY_LRU, c->o.disk_max_bytes);
    c->st.max_bytes = c->o.max_bytes;
    c->st.disk_max_bytes = dirfd >= 0 ? c->o.disk_max_bytes : 0;
    pthread_cond_init(&c->disk_cv, NULL);
    if (dirfd >= 0 && pthread_create(&c->disk_thread, NULL, disk_main, c) != 0)
        core_assert(!"cannot start the cache's disk thread");
    return c;
}

static void entry_free(struct cache_entry *e)
{
    free(e->key);
    buf_free(&e->head);
    buf_free(&e->body);
    buf_free(&e->vary);
    buf_free(&e->no_cache_fields);
    buf_free(&e->tags);
    buf_free(&e->etag);
    buf_free(&e->last_modified);
    free(e->tag_slots);
    for (struct waiter *w = e->readers, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    free(e);
}

void cache_entry_release(struct cache_entry *e)
{
    if (e && __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0)
        entry_free(e);
}

static struct cache_entry *entry_ref(struct cache_entry *e)
{
    __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
    return e;
}

void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    if (c->dirfd >= 0) {
        pthread_mutex_lock(&c->mu);
        c->disk_stop = true;
        pthread_cond_signal(&c->disk_cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->disk_thread, NULL);
        /* Work the thread did not get to: no loop is left to wake. */
        struct cache_entry *queues[] = {c->demote_q, c->read_q};
        for (size_t i = 0; i < 2; i++) {
            for (struct cache_entry *e = queues[i], *next; e; e = next) {
                next = e->qnext;
                cache_entry_release(e);
            }
        }
    }
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (struct cache_entry *e = c->buckets[i], *next; e; e = next) {
            next = e->hnext;
            cache_entry_release(e);
        }
    }
    free(c->buckets);
    cache_policy_free(&c->policy);
    cache_policy_free(&c->disk);
    pthread_cond_destroy(&c->disk_cv);
    free(c->unlink_q);
    if (c->dirfd >= 0) {
        disk_sweep(c->dirfd);
        close(c->dirfd);
    }
    pthread_mutex_destroy(&c->mu);
    buf_free(&c->status_key);
    free(c);
}

/* ---- the index (callers hold c->mu) ---- */

static bool key_eq(const struct cache_entry *e, uint64_t h, const char *k, size_t n)
{
    return e->node.hash == h && e->keylen == n && memcmp(e->key, k, n) == 0;
}

/* The disk tier file n is to be removed once the lock is released. */
static void queue_unlink(struct cache *c, uint64_t n)
{
    if (c->n_unlink == c->cap_unlink) {
        c->cap_unlink = c->cap_unlink ? c->cap_unlink * 2 : 16;
        c->unlink_q = xrealloc(c->unlink_q, c->cap_unlink * sizeof(*c->unlink_q));
    }
    c->unlink_q[c->n_unlink++] = n;
    c->disk_pending++;
    pthread_cond_signal(&c->disk_cv);
}

/* Marks the responses on their way to disk that match(v, arg) so that their
 * copies are dropped: a removal must reach them too. */
static void doom_in_transit(struct cache *c,
                            bool (*match)(const struct cache *c, const struct cache_entry *v,
                                          const void *arg),
                            const void *arg)
{
    for (int q = 0; q < 2; q++)
        for (struct cache_entry *v = q ? c->writing : c->demote_q; v; v = v->qnext)
            if (match(c, v, arg))
                v->doomed = true;
}

struct key_ref {
    uint64_t h;
    const char *k;
    size_t n;
};

static bool has_key(const struct cache *c, const struct cache_entry *v, const void *arg)
{
    (void)c;
    const struct key_ref *r = arg;
    return key_eq(v, r->h, r->k, r->n);
}

static void index_unlink(struct cache *c, struct cache_entry *e)
{
    struct cache_entry **pp = &c->buckets[e->node.hash & (c->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    e->hnext = NULL;
    e->linked = false;
    c->count--;
    if (e->disk_file) {
        cache_policy_remove(&c->disk, &e->node);
        c->st.disk_bytes -= e->bytes;
        c->st.disk_entries--;
        queue_unlink(c, e->disk_file);
    } else {
        cache_policy_remove(&c->policy, &e->node);
        c->st.bytes -= e->bytes;
        c->st.entries--;
    }
    cache_entry_release(e);
}

static void index_grow(struct cache *c)
{
    size_t n = c->nbuckets * 2;
    struct cache_entry **b = xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (struct cache_entry *e = c->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->node.hash & (n - 1)];
            b[e->node.hash & (n - 1)] = e;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

static size_t remove_key(struct cache *c, uint64_t h, const char *k, size_t n)
{
    size_t removed = 0;
    struct cache_entry *e = c->buckets[h & (c->nbuckets - 1)];
    while (e) {
        struct cache_entry *next = e->hnext;
        if (key_eq(e, h, k, n)) {
            index_unlink(c, e);
            removed++;
        }
        e = next;
    }
    doom_in_transit(c, has_key, &(struct key_ref){h, k, n});
    for (struct cache_fill *f = c->fills[h % FILL_BUCKETS]; f; f = f->next)
        if (f->hash == h && f->keylen == n && memcmp(f->key, k, n) == 0)
            f->doomed = true; /* its answer predates the change */
    return removed;
}

static bool vary_matches(const struct cache_entry *e, const struct http_header *h, size_t n)
{
    const char *p = e->vary.ptr, *end = e->vary.ptr ? e->vary.ptr + e->vary.len : NULL;
    bool ok = true;
    struct buf v = BUF_INIT;
    while (ok && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        struct slice name = slice_make(p, (size_t)(nl - p));
        p = nl + 1;
        bool present = *p == '1';
        nl = memchr(p, '\n', (size_t)(end - p));
        struct slice stored = slice_make(p + 1, (size_t)(nl - p - 1));
        p = nl + 1;
        buf_reset(&v);
        bool have = cache_vary_value(h, n, name, &v);
        ok = have == present && (!have || slice_eq(buf_slice(&v), stored));
    }
    buf_free(&v);
    return ok;
}

/* The newest stored variant of the key matching the request's Vary fields;
 * *key_seen says whether any variant of the key exists. */
static struct cache_entry *find(struct cache *c, uint64_t h, const char *k, size_t n,
                                const struct http_header *hdrs, size_t nh, bool *key_seen)
{
    struct cache_entry *best = NULL;
    *key_seen = false;
    for (struct cache_entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext) {
        if (!key_eq(e, h, k, n))
            continue;
        *key_seen = true;
        if (vary_matches(e, hdrs, nh) && (!best || e->date_value > best->date_value))
            best = e;
    }
    return best;
}

static void index_link(struct cache *c, struct cache_entry *e)
{
    if (c->count >= c->nbuckets)
        index_grow(c);
    struct cache_entry **b = &c->buckets[e->node.hash & (c->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    e->linked = true;
    c->count++;
}

static void evict_to_bound(struct cache *c);

/* Links memory entry e (the index takes a reference); hot: read back from
 * disk, so popular already. */
static void index_store(struct cache *c, struct cache_entry *e, bool hot)
{
    index_link(c, e);
    entry_ref(e);
    c->st.bytes += e->bytes;
    c->st.entries++;
    if (hot)
        cache_policy_insert_hot(&c->policy, &e->node);
    else
        cache_policy_insert(&c->policy, &e->node);
    evict_to_bound(c);
}

/* Stores a new response, replacing the variant it was selected as (RFC 9111
 * 4) for the request fields hdrs. */
static void index_insert(struct cache *c, struct cache_entry *e, const struct http_header *hdrs,
                         size_t nh)
{
    uint64_t h = e->node.hash;
    for (struct cache_entry *o = c->buckets[h & (c->nbuckets - 1)], *next; o; o = next) {
        next = o->hnext;
        if (key_eq(o, h, e->key, e->keylen) && vary_matches(o, hdrs, nh))
            index_unlink(c, o);
    }
    c->st.stores++;
    index_store(c, e, false);
}

/* Evicts from memory down to max_bytes; the disk tier takes what S3-FIFO's
 * main queue lets go (what was read at least twice), or everything under
 * LRU. */
static void evict_to_bound(struct cache *c)
{
    while (cache_policy_bytes(&c->policy) > c->policy.max_bytes) {
        struct cache_pnode *v = cache_policy_victim(&c->policy);
        if (v == NULL)
            break;
        struct cache_entry *victim = (struct cache_entry *)(void *)v;
        /* When the disk falls behind, victims beyond transit_max just go. */
        bool to_disk = c->dirfd >= 0 && c->o.disk_max_bytes > 0 &&
                       (c->policy.kind == CACHE_POLICY_LRU || v->queue == 1) &&
                       c->demote_bytes + victim->bytes <= c->transit_max;
        if (to_disk)
            entry_ref(victim);
        index_unlink(c, victim);
        if (to_disk) {
            victim->qnext = c->demote_q;
            c->demote_q = victim;
            c->demote_bytes += victim->bytes;
            c->disk_pending++;
            pthread_cond_signal(&c->disk_cv);
        }
        c->st.evictions++;
    }
}

static struct hfm *hfm_slot(struct cache *c, uint64_t h)
{
    return &c->hfm[h % HFM_SLOTS];
}

/* ---- reading fields ---- */

static struct slice header(const struct http_header *h, size_t n, const char *name, int *count)
{
    struct slice v = SLICE_NULL;
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (slice_case_eq(h[i].name, slice_cstr(name))) {
            if (k++ == 0)
                v = h[i].value;
        }
    }
    if (count)
        *count = k;
    return v;
}

static void parse_cc_lines(const struct http_header *h, size_t n, struct cache_cc *cc)
{
    cache_cc_init(cc);
    for (size_t i = 0; i < n; i++)
        if (slice_case_eq(h[i].name, SLICE_LIT("cache-control")))
            cache_cc_parse(cc, h[i].value);
}

/* A time field given once and well formed; -1 if malformed or repeated. */
static int date_field(const struct http_header *h, size_t n, const char *name, int64_t *out,
                      bool *present)
{
    int count;
    struct slice v = header(h, n, name, &count);
    *present = count > 0;
    if (count == 0)
        return 0;
    if (count > 1)
        return -1;
    return cache_http_date(slice_trim(v), out);
}

static bool list_has(struct slice list, struct slice name)
{
    struct slice rest = list, e = SLICE_NULL;
    while (cache_list_next(&rest, &e))
        if (slice_case_eq(e, name))
            return true;
    return false;
}

static bool is_hop(struct slice name, const struct http_header *h, size_t n)
{
    static const char *const hop[] = {"connection",
                                      "keep-alive",
                                      "proxy-connection",
                                      "te",
                                      "trailer",
                                      "transfer-encoding",
                                      "upgrade",
                                      "proxy-authenticate",
                                      "proxy-authorization",
                                      "content-length",
                                      "age"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (slice_case_eq(name, slice_cstr(hop[i])))
            return true;
    for (size_t i = 0; i < n; i++)
        if (slice_case_eq(h[i].name, SLICE_LIT("connection")) && list_has(h[i].value, name))
            return true;
    return false;
}

static bool heuristic_status(int s)
{
    switch (s) {
    case 200:
    case 203:
    case 204:
    case 206:
    case 300:
    case 301:
    case 308:
    case 404:
    case 405:
    case 410:
    case 414:
    case 501:
        return true;
    default:
        return false;
    }
}

/* Status codes whose caching semantics this cache implements (must-understand). */
static bool understood_status(int s)
{
    return heuristic_status(s) || s == 302 || s == 303 || s == 307;
}

/* The cache policy of a response: a targeted field (RFC 9213) when one has
 * a valid value, else Cache-Control. *targeted says which. */
static void response_cc(const struct cache *c, const struct http_header *h, size_t n,
                        struct cache_cc *cc, bool *targeted)
{
    const char *names[] = {c->o.targeted_field, "cdn-cache-control"};
    for (size_t i = 0; i < 2; i++) {
        if (names[i] == NULL)
            continue;
        int count;
        struct slice v = header(h, n, names[i], &count);
        /* Several lines form one dictionary; joining them is not worth it
         * for a field that origins send once, so more than one is ignored. */
        if (count == 1 && cache_cc_parse_targeted(cc, v) == 0) {
            *targeted = true;
            return;
        }
    }
    *targeted = false;
    parse_cc_lines(h, n, cc);
}

/* Freshness and age bookkeeping of a response received at response_time for
 * a request sent at request_time (RFC 9111 4.2). Returns the lifetime; the
 * other results go to e. A malformed Date, Age or Expires means stale. */
static void compute_freshness(const struct cache *c, struct cache_entry *e,
                              const struct cache_cc *cc, bool targeted, const struct http_header *h,
                              size_t n, int64_t request_time)
{
    bool malformed = false, present;
    int64_t date = e->response_time, expires = 0, lm = 0;
    if (date_field(h, n, "date", &date, &present) < 0) {
        malformed = true;
        date = e->response_time;
    }
    e->date_value = date;
    int count;
    struct slice agev = header(h, n, "age", &count);
    int64_t age = 0;
    if (count > 1 || (count == 1 && (age = cache_delta_seconds(slice_trim(agev))) < 0)) {
        malformed = true;
        age = 0;
    }
    int64_t apparent = e->response_time - date > 0 ? e->response_time - date : 0;
    int64_t corrected = age + (e->response_time - request_time);
    e->corrected_initial_age = apparent > corrected ? apparent : corrected;

    int64_t life = -1;
    if (cc->s_maxage != CACHE_CC_ABSENT)
        life = cc->s_maxage;
    else if (cc->max_age != CACHE_CC_ABSENT)
        life = cc->max_age;
    if (life == CACHE_CC_INVALID) {
        life = 0;
    } else if (life < 0 && !targeted) {
        int rc = date_field(h, n, "expires", &expires, &present);
        if (present)
            life = rc < 0 ? 0 : (expires > date ? expires - date : 0);
    }
    if (life < 0) {
        life = 0;
        bool lm_present;
        if ((heuristic_status(e->status) || (cc->flags & CACHE_CC_PUBLIC)) &&
            date_field(h, n, "last-modified", &lm, &lm_present) == 0 && lm_present && lm < date) {
            /* RFC 9111 4.2.2: a tenth of the time since last modification. */
            life = (date - lm) / 10;
            if (life > c->o.heuristic_max_s)
                life = c->o.heuristic_max_s;
        }
    }
    e->lifetime = malformed ? 0 : life;
}

static int64_t current_age(const struct cache_entry *e, int64_t now)
{
    int64_t resident = now - e->response_time;
    return e->corrected_initial_age + (resident > 0 ? resident : 0);
}

/* ---- building entries ---- */

static void fields_lower(struct buf *out, struct slice list)
{
    struct slice rest = list, e = SLICE_NULL;
    while (cache_list_next(&rest, &e)) {
        if (e.len == 0)
            continue;
        buf_append_char(out, ',');
        for (size_t i = 0; i < e.len; i++) {
            char ch = e.ptr[i];
            buf_append_char(out, (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch);
        }
    }
    if (out->len)
        buf_append_char(out, ',');
}

/* ",a,b," contains name (lowercase compare). */
static bool lowered_has(const struct buf *list, struct slice name)
{
    if (list->len == 0)
        return false;
    for (const char *p = list->ptr + 1; p < list->ptr + list->len;) {
        const char *comma = memchr(p, ',', (size_t)(list->ptr + list->len - p));
        if (slice_case_eq(slice_make(p, (size_t)(comma - p)), name))
            return true;
        p = comma + 1;
    }
    return false;
}

static size_t tag_slot(struct slice lowered_tag)
{
    return (size_t)(hash_key(lowered_tag.ptr, lowered_tag.len) % TAG_SLOTS);
}

/* Fills e->tag_slots from e->tags (",a,b,"). */
static void tag_slots_of(struct cache_entry *e)
{
    for (size_t i = 0; i < e->tags.len; i++)
        e->ntag_slots += e->tags.ptr[i] == ',';
    if (e->ntag_slots == 0)
        return;
    e->tag_slots = xmalloc(e->ntag_slots * sizeof(*e->tag_slots));
    size_t n = 0;
    for (const char *p = e->tags.ptr + 1; p < e->tags.ptr + e->tags.len;) {
        const char *comma = memchr(p, ',', (size_t)(e->tags.ptr + e->tags.len - p));
        if (comma > p)
            e->tag_slots[n++] = (uint16_t)tag_slot(slice_make(p, (size_t)(comma - p)));
        p = comma + 1;
    }
    e->ntag_slots = n;
}

/* Whether one of e's tags was invalidated after e's request was forwarded. */
static bool tags_stale(const struct cache *c, const struct cache_entry *e)
{
    for (size_t i = 0; i < e->ntag_slots; i++)
        if (c->tag_bumped[e->tag_slots[i]] > e->tag_since)
            return true;
    return false;
}

/* Decides whether the response to f's request may be stored (RFC 9111 3)
 * and if so returns a new entry (one reference, no body yet). */
static struct cache_entry *entry_build(struct cache *c, struct cache_fill *f, int status,
                                       const struct http_header *h, size_t n, int64_t now)
{
    struct cache_cc cc;
    bool targeted;
    response_cc(c, h, n, &cc, &targeted);
    if (f->head_only || f->req_no_store || f->doomed)
        return NULL;
    if (status < 200 || status == 206 || status == 304)
        return NULL;
    if (cc.flags & CACHE_CC_MUST_UNDERSTAND) {
        if (!understood_status(status))
            return NULL;
        /* must-understand overrides no-store for understood codes (5.2.2.3). */
        cc.flags &= ~(unsigned)CACHE_CC_NO_STORE;
    }
    if (cc.flags & (CACHE_CC_NO_STORE | CACHE_CC_PRIVATE))
        return NULL;
    bool explicit_shared = (cc.flags & CACHE_CC_PUBLIC) || cc.s_maxage != CACHE_CC_ABSENT;
    if (f->authorization && !explicit_shared && !(cc.flags & CACHE_CC_MUST_REVALIDATE))
        return NULL;
    /* Not in RFC 9111: a response setting a cookie is only shared when the
     * origin says so explicitly, as one user's session must never reach
     * another through the cache (the default of Varnish and most CDNs). */
    if (header(h, n, "set-cookie", NULL).ptr && !explicit_shared)
        return NULL;
    int vcount;
    header(h, n, "vary", &vcount);
    for (size_t i = 0; i < n; i++)
        if (slice_case_eq(h[i].name, SLICE_LIT("vary")) && cache_vary_check(h[i].value) != 0)
            return NULL;
    int expires_count;
    header(h, n, "expires", &expires_count);
    if (!(cc.flags & CACHE_CC_PUBLIC) && cc.max_age == CACHE_CC_ABSENT &&
        cc.s_maxage == CACHE_CC_ABSENT && (targeted || expires_count == 0) &&
        !heuristic_status(status))
        return NULL;
    struct slice cl = header(h, n, "content-length", NULL);
    if (cl.ptr) {
        long long len = slice_to_uint(slice_trim(cl));
        if (len < 0 ||
            (unsigned long long)len > __atomic_load_n(&c->o.max_object_bytes, __ATOMIC_RELAXED))
            return NULL;
    }

    struct cache_entry *e = xcalloc(1, sizeof(*e));
    e->refs = 1;
    e->status = status;
    e->response_time = now;
    e->key = xstrndup(f->key, f->keylen);
    e->keylen = f->keylen;
    e->node.hash = f->hash;
    compute_freshness(c, e, &cc, targeted, h, n, f->request_time);
    e->swr = cc.swr >= 0 ? cc.swr : -1;
    e->sie = cc.sie >= 0 ? cc.sie : -1;
    if ((cc.flags & (CACHE_CC_MUST_REVALIDATE | CACHE_CC_PROXY_REVALIDATE)) ||
        cc.s_maxage != CACHE_CC_ABSENT)
        e->flags |= E_MUST_REVALIDATE;
    if (cc.flags & CACHE_CC_NO_CACHE)
        e->flags |= E_NO_CACHE;
    if (cc.flags & CACHE_CC_IMMUTABLE)
        e->flags |= E_IMMUTABLE;
    fields_lower(&e->no_cache_fields, cc.no_cache_fields);
    struct buf private_fields = BUF_INIT;
    fields_lower(&private_fields, cc.private_fields);

    for (size_t i = 0; i < n; i++) {
        struct slice name = h[i].name, value = h[i].value;
        if (is_hop(name, h, n) || lowered_has(&private_fields, name) ||
            (c->o.targeted_field && slice_case_eq(name, slice_cstr(c->o.targeted_field))))
            continue;
        buf_append_slice(&e->head, name);
        buf_append(&e->head, ": ", 2);
        buf_append_slice(&e->head, value);
        buf_append(&e->head, "\r\n", 2);
        if (slice_case_eq(name, SLICE_LIT("etag")))
            buf_append_slice(&e->etag, slice_trim(value));
        else if (slice_case_eq(name, SLICE_LIT("last-modified")))
            buf_append_slice(&e->last_modified, slice_trim(value));
        else if (c->o.tag_field && slice_case_eq(name, slice_cstr(c->o.tag_field)))
            fields_lower(&e->tags, value);
        else if (slice_case_eq(name, SLICE_LIT("vary"))) {
            struct slice rest = value, v = SLICE_NULL;
            while (cache_list_next(&rest, &v)) {
                if (v.len == 0)
                    continue;
                buf_append_slice(&e->vary, v);
                buf_append_char(&e->vary, '\n');
                size_t mark = e->vary.len;
                buf_append_char(&e->vary, '1');
                if (!cache_vary_value(f->hdrs, f->nhdrs, v, &e->vary)) {
                    e->vary.len = mark;
                    buf_append_char(&e->vary, '0');
                }
                buf_append_char(&e->vary, '\n');
            }
        }
    }
    buf_free(&private_fields);
    tag_slots_of(e);
    e->tag_since = f->tag_since;
    /* Nothing fresh and nothing to validate with: storing it is useless. */
    if (e->lifetime == 0 && e->etag.len == 0 && e->last_modified.len == 0) {
        entry_free(e);
        return NULL;
    }
    return e;
}

static void entry_account(struct cache_entry *e)
{
    e->bytes = sizeof(*e) + e->keylen + e->head.cap + e->body.cap + e->vary.cap +
               e->no_cache_fields.cap + e->tags.cap + e->etag.cap + e->last_modified.cap;
    e->node.bytes = e->bytes;
}

/* ---- the disk tier ---- */

/* A new entry with e's key, validators, tags and freshness, and no head or
 * body. */
static struct cache_entry *entry_clone_meta(const struct cache_entry *e)
{
    struct cache_entry *d = xcalloc(1, sizeof(*d));
    d->refs = 1;
    d->node.hash = e->node.hash;
    d->key = xstrndup(e->key, e->keylen);
    d->keylen = e->keylen;
    d->status = e->status;
    const struct buf *from[] = {&e->vary, &e->no_cache_fields, &e->tags, &e->etag,
                                &e->last_modified};
    struct buf *to[] = {&d->vary, &d->no_cache_fields, &d->tags, &d->etag, &d->last_modified};
    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++)
        if (from[i]->len)
            buf_append(to[i], from[i]->ptr, from[i]->len);
    d->response_time = e->response_time;
    d->date_value = e->date_value;
    d->corrected_initial_age = e->corrected_initial_age;
    d->lifetime = e->lifetime;
    d->swr = e->swr;
    d->sie = e->sie;
    d->flags = e->flags;
    d->tag_since = e->tag_since;
    d->ntag_slots = e->ntag_slots;
    if (e->ntag_slots) {
        d->tag_slots = xmalloc(e->ntag_slots * sizeof(*d->tag_slots));
        memcpy(d->tag_slots, e->tag_slots, e->ntag_slots * sizeof(*d->tag_slots));
    }
    return d;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes e's head and body to a new file (no lock held). Returns the disk
 * entry describing it, or NULL if the write failed (nothing is left). No
 * fsync: the tier does not outlive the process. */
static struct cache_entry *disk_write(struct cache *c, const struct cache_entry *e)
{
    uint64_t n = __atomic_fetch_add(&c->next_file, 1, __ATOMIC_RELAXED);
    char name[17];
    disk_name(n, name);
    int fd = openat(c->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return NULL;
    int rc = write_all(fd, e->head.ptr, e->head.len);
    if (rc == 0)
        rc = write_all(fd, e->body.ptr, e->body.len);
    if (close(fd) != 0)
        rc = -1;
    if (rc != 0) {
        unlinkat(c->dirfd, name, 0);
        return NULL;
    }
    struct cache_entry *d = entry_clone_meta(e);
    d->disk_file = n;
    d->disk_head_len = e->head.len;
    d->disk_body_len = e->body.len;
    d->bytes = sizeof(*d) + d->keylen + d->vary.cap + d->no_cache_fields.cap + d->tags.cap +
               d->etag.cap + d->last_modified.cap + d->disk_head_len + d->disk_body_len;
    d->node.bytes = d->bytes;
    return d;
}

/* Reads a disk entry's file back into a new memory entry (no lock held);
 * NULL if the file is gone (removed meanwhile) or short. */
static struct cache_entry *disk_read(struct cache *c, const struct cache_entry *d)
{
    char name[17];
    disk_name(d->disk_file, name);
    int fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct cache_entry *m = entry_clone_meta(d);
    buf_reserve(&m->head, d->disk_head_len + 1);
    buf_reserve(&m->body, d->disk_body_len + 1);
    size_t want[2] = {d->disk_head_len, d->disk_body_len};
    struct buf *into[2] = {&m->head, &m->body};
    bool ok = true;
    for (int i = 0; i < 2 && ok; i++) {
        while (into[i]->len < want[i]) {
            ssize_t r = read(fd, into[i]->ptr + into[i]->len, want[i] - into[i]->len);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                ok = false;
                break;
            }
            into[i]->len += (size_t)r;
        }
    }
    close(fd);
    if (!ok) {
        entry_free(m);
        return NULL;
    }
    entry_account(m);
    return m;
}

static void disk_evict_to_bound(struct cache *c);

/* Links the disk copy d of v unless, since v was evicted, v was purged or
 * invalidated or a response for its variant was stored. Takes d's
 * reference. */
static void disk_insert(struct cache *c, const struct cache_entry *v, struct cache_entry *d)
{
    bool current = !v->doomed;
    for (struct cache_entry *o = c->buckets[d->node.hash & (c->nbuckets - 1)]; o && current;
         o = o->hnext)
        if (key_eq(o, d->node.hash, d->key, d->keylen) && o->vary.len == d->vary.len &&
            (d->vary.len == 0 || memcmp(o->vary.ptr, d->vary.ptr, d->vary.len) == 0))
            current = false;
    if (!current) {
        queue_unlink(c, d->disk_file);
        entry_free(d);
        return;
    }
    index_link(c, d);
    c->st.disk_entries++;
    c->st.disk_bytes += d->bytes;
    c->st.demotions++;
    cache_policy_insert(&c->disk, &d->node);
    disk_evict_to_bound(c);
}

static void disk_evict_to_bound(struct cache *c)
{
    while (cache_policy_bytes(&c->disk) > c->o.disk_max_bytes) {
        struct cache_pnode *v = cache_policy_victim(&c->disk);
        if (v == NULL)
            break;
        index_unlink(c, (struct cache_entry *)(void *)v);
        c->st.disk_evictions++;
    }
}

/* A read back from disk is done: the response returns to memory (S3-FIFO's
 * main queue) unless it was removed meanwhile. Returns the lookups waiting
 * for it, to be woken once c->mu is released. */
static struct waiter *disk_read_done(struct cache *c, struct cache_entry *d, struct cache_entry *m)
{
    if (d->linked) {
        index_unlink(c, d);
        if (m) {
            index_store(c, m, true);
            c->st.disk_hits++;
        } else {
            c->st.disk_errors++;
        }
    }
    struct waiter *w = d->readers;
    d->readers = NULL;
    d->reading = false;
    return w;
}

static void wake_all(struct waiter *w)
{
    while (w) {
        struct waiter *next = w->next;
        w->fn(w->arg);
        free(w);
        w = next;
    }
}

/* The disk thread: takes the queues under the lock, does their I/O without
 * it, and links the results under it again. */
static void *disk_main(void *arg)
{
    struct cache *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->disk_stop && !c->demote_q && !c->read_q && !c->n_unlink)
            pthread_cond_wait(&c->disk_cv, &c->mu);
        if (c->disk_stop)
            break;
        struct cache_entry *victims = c->demote_q, *reads = c->read_q;
        uint64_t *files = c->unlink_q;
        size_t nfiles = c->n_unlink;
        c->writing = victims;
        c->demote_q = c->read_q = NULL;
        c->unlink_q = NULL;
        c->n_unlink = c->cap_unlink = 0;
        pthread_mutex_unlock(&c->mu);

        for (size_t i = 0; i < nfiles; i++) {
            char name[17];
            disk_name(files[i], name);
            unlinkat(c->dirfd, name, 0);
        }
        free(files);
        uint64_t ops = nfiles;
        for (struct cache_entry *v = victims; v; v = v->qnext, ops++)
            v->moved = disk_write(c, v);
        for (struct cache_entry *d = reads; d; d = d->qnext, ops++)
            d->moved = disk_read(c, d);

        pthread_mutex_lock(&c->mu);
        c->disk_pending -= ops;
        c->writing = NULL;
        for (struct cache_entry *v = victims; v; v = v->qnext) {
            c->demote_bytes -= v->bytes;
            if (v->moved)
                disk_insert(c, v, v->moved);
            else
                c->st.disk_errors++;
            v->moved = NULL;
        }
        struct waiter *wake = NULL;
        for (struct cache_entry *d = reads; d; d = d->qnext) {
            struct waiter *w = disk_read_done(c, d, d->moved);
            while (w) {
                struct waiter *next = w->next;
                w->next = wake;
                wake = w;
                w = next;
            }
        }
        pthread_mutex_unlock(&c->mu);
        wake_all(wake);
        while (victims) {
            struct cache_entry *v = victims;
            victims = v->qnext;
            cache_entry_release(v);
        }
        while (reads) {
            struct cache_entry *d = reads;
            reads = d->qnext;
            cache_entry_release(d->moved);
            d->moved = NULL;
            cache_entry_release(d);
        }
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- lookup ---- */

static bool safe_method(struct slice m)
{
    return slice_eq_cstr(m, "GET") || slice_eq_cstr(m, "HEAD") || slice_eq_cstr(m, "OPTIONS") ||
           slice_eq_cstr(m, "TRACE");
}

static struct cache_fill *fill_new(struct cache *c, const struct cache_req *rq, char *key,
                                   size_t keylen, uint64_t h, int64_t now)
{
    struct cache_fill *f = xcalloc(1, sizeof(*f));
    f->c = c;
    f->key = key;
    f->keylen = keylen;
    f->hash = h;
    f->request_time = now;
    f->tag_since = c->tag_clock;
    f->req_sie = -1;
    f->action = CACHE_FILL_PASS;
    size_t mem = 0;
    for (size_t i = 0; i < rq->nheaders; i++)
        mem += rq->headers[i].name.len + rq->headers[i].value.len;
    f->hdr_mem = xmalloc(mem + 1);
    f->hdrs = xcalloc(rq->nheaders + 1, sizeof(*f->hdrs));
    char *p = f->hdr_mem;
    for (size_t i = 0; i < rq->nheaders; i++) {
        const struct http_header *src = &rq->headers[i];
        memcpy(p, src->name.ptr, src->name.len);
        f->hdrs[i].name = slice_make(p, src->name.len);
        p += src->name.len;
        if (src->value.len)
            memcpy(p, src->value.ptr, src->value.len);
        f->hdrs[i].value = slice_make(p, src->value.len);
        p += src->value.len;
    }
    f->nhdrs = rq->nheaders;
    f->authorization = header(rq->headers, rq->nheaders, "authorization", NULL).ptr != NULL;
    return f;
}

static void fill_register(struct cache *c, struct cache_fill *f)
{
    struct cache_fill **b = &c->fills[f->hash % FILL_BUCKETS];
    f->next = *b;
    *b = f;
    f->registered = true;
}

static struct cache_fill *fill_find(struct cache *c, uint64_t h, const char *k, size_t n)
{
    for (struct cache_fill *f = c->fills[h % FILL_BUCKETS]; f; f = f->next)
        if (f->hash == h && f->keylen == n && memcmp(f->key, k, n) == 0)
            return f;
    return NULL;
}

static void add_conditional(struct cache_fill *f, const struct cache_entry *e)
{
    if (e->etag.len) {
        buf_append_cstr(&f->cond, "If-None-Match: ");
        buf_append(&f->cond, e->etag.ptr, e->etag.len);
        buf_append(&f->cond, "\r\n", 2);
    }
    if (e->last_modified.len) {
        buf_append_cstr(&f->cond, "If-Modified-Since: ");
        buf_append(&f->cond, e->last_modified.ptr, e->last_modified.len);
        buf_append(&f->cond, "\r\n", 2);
    }
}

void cache_lookup(struct cache *c, const struct cache_req *rq, struct cache_lookup *out,
                  void (*wake)(void *arg), void *arg)
{
    memset(out, 0, sizeof(*out));
    bool is_get = slice_eq_cstr(rq->method, "GET"), is_head = slice_eq_cstr(rq->method, "HEAD");
    if (!is_get && !is_head) {
        out->outcome = CACHE_PASS;
        out->status.fwd = "method";
        return;
    }
    int64_t now = now_s(c);
    struct cache_cc rcc;
    parse_cc_lines(rq->headers, rq->nheaders, &rcc);
    size_t keylen;
    char *key = make_key(rq->host, rq->target, &keylen);
    uint64_t h = hash_key(key, keylen);

    pthread_mutex_lock(&c->mu);
    bool seen;
    struct cache_entry *e = find(c, h, key, keylen, rq->headers, rq->nheaders, &seen);
    while (e && tags_stale(c, e)) {
        index_unlink(c, e);
        c->st.invalidations++;
        e = find(c, h, key, keylen, rq->headers, rq->nheaders, &seen);
    }
    if (e && e->disk_file && wake) {
        struct waiter *w = xmalloc(sizeof(*w));
        w->fn = wake;
        w->arg = arg;
        w->next = e->readers;
        e->readers = w;
        if (!e->reading) {
            e->reading = true;
            e->qnext = c->read_q;
            c->read_q = entry_ref(e);
            c->disk_pending++;
            pthread_cond_signal(&c->disk_cv);
        }
        out->outcome = CACHE_WAIT;
        out->status.fwd = NULL;
        pthread_mutex_unlock(&c->mu);
        free(key);
        return;
    }
    if (e && e->disk_file)
        e = NULL; /* a caller that cannot wait: its fill will replace it */
    out->status.fwd = seen ? "vary-miss" : "uri-miss";
    bool want_refresh = false;
    if (e) {
        int64_t age = current_age(e, now), ttl = e->lifetime - age;
        bool fresh = ttl > 0;
        out->status.has_ttl = true;
        out->status.ttl = ttl;
        bool usable = fresh;
        const char *why = NULL;
        if (rcc.flags & CACHE_CC_NO_CACHE) {
            usable = false;
            why = "request";
        } else if (e->flags & E_NO_CACHE) {
            usable = false;
            why = "stale";
        } else if (rcc.max_age != CACHE_CC_ABSENT && !(fresh && (e->flags & E_IMMUTABLE)) &&
                   (rcc.max_age < 0 || age > rcc.max_age)) {
            /* A reload's max-age=0 leaves an immutable fresh response alone
             * (RFC 8246 2); an invalid value is read as 0. */
            usable = false;
            why = "request";
        } else if (rcc.min_fresh != CACHE_CC_ABSENT && (rcc.min_fresh < 0 || ttl < rcc.min_fresh)) {
            usable = false;
            why = "request";
        } else if (!fresh) {
            why = "stale";
            int64_t staleness = -ttl;
            bool may_stale = !(e->flags & E_MUST_REVALIDATE);
            if (may_stale && ((rcc.flags & CACHE_CC_MAX_STALE_ANY) ||
                              (rcc.max_stale >= 0 && staleness <= rcc.max_stale))) {
                out->outcome = CACHE_STALE;
            } else if (may_stale && e->swr >= 0 && staleness <= e->swr) {
                out->outcome = CACHE_STALE;
                want_refresh = true;
            }
        }
        if (usable) {
            out->outcome = CACHE_HIT;
            out->status.hit = true;
            out->entry = entry_ref(e);
            cache_policy_hit(&c->policy, &e->node);
            c->st.hits++;
            pthread_mutex_unlock(&c->mu);
            free(key);
            return;
        }
        if (out->outcome == CACHE_STALE) {
            out->status.hit = true;
            out->status.fwd = NULL;
            out->entry = entry_ref(e);
            cache_policy_hit(&c->policy, &e->node);
            c->st.stale++;
            if (want_refresh && is_get && !fill_find(c, h, key, keylen)) {
                struct cache_fill *f = fill_new(c, rq, key, keylen, h, now);
                key = NULL;
                f->background = true;
                f->stale = entry_ref(e);
                add_conditional(f, e);
                fill_register(c, f);
                out->fill = f;
                out->conditional = buf_slice(&f->cond);
            }
            pthread_mutex_unlock(&c->mu);
            free(key);
            return;
        }
        out->status.fwd = why;
    }
    if (rcc.flags & CACHE_CC_ONLY_IF_CACHED) {
        out->outcome = CACHE_GATEWAY_TIMEOUT;
        out->status.fwd = NULL;
        out->status.detail = "only-if-cached";
        pthread_mutex_unlock(&c->mu);
        free(key);
        return;
    }
    c->st.misses++;
    if (is_head) {
        /* A HEAD response can neither fill nor revalidate the GET it would
         * be served from. */
        out->outcome = CACHE_PASS;
        out->status.fwd = "miss";
        pthread_mutex_unlock(&c->mu);
        free(key);
        return;
    }
    struct hfm *m = hfm_slot(c, h);
    bool hit_for_miss = m->hash == h && m->until > now;
    struct cache_fill *leader = hit_for_miss ? NULL : fill_find(c, h, key, keylen);
    if (leader && !leader->background && wake) {
        struct waiter *w = xmalloc(sizeof(*w));
        w->fn = wake;
        w->arg = arg;
        w->next = leader->waiters;
        leader->waiters = w;
        c->st.coalesced++;
        out->outcome = CACHE_WAIT;
        out->status.collapsed = true;
        pthread_mutex_unlock(&c->mu);
        free(key);
        return;
    }
    struct cache_fill *f = fill_new(c, rq, key, keylen, h, now);
    f->req_no_store = (rcc.flags & CACHE_CC_NO_STORE) != 0;
    f->head_only = is_head;
    f->req_sie = rcc.sie;
    if (e) {
        f->stale = entry_ref(e);
        add_conditional(f, e);
    }
    if (!hit_for_miss && !leader)
        fill_register(c, f);
    pthread_mutex_unlock(&c->mu);
    out->fill = f;
    out->conditional = buf_slice(&f->cond);
    out->outcome = f->cond.len ? CACHE_REVALIDATE : CACHE_MISS;
    if (f->cond.len)
        out->entry = entry_ref(e);
}

/* ---- fills ---- */

static void fill_finish(struct cache_fill *f, struct cache_entry *store)
{
    struct cache *c = f->c;
    pthread_mutex_lock(&c->mu);
    if (f->registered) {
        struct cache_fill **pp = &c->fills[f->hash % FILL_BUCKETS];
        while (*pp != f)
            pp = &(*pp)->next;
        *pp = f->next;
    }
    if (store && !f->doomed)
        index_insert(c, store, f->hdrs, f->nhdrs);
    else if (f->registered && !store && f->action == CACHE_FILL_PASS) {
        struct hfm *m = hfm_slot(c, f->hash);
        m->hash = f->hash;
        m->until = now_s(c) + c->o.hit_for_miss_s;
    }
    struct waiter *w = f->waiters;
    pthread_mutex_unlock(&c->mu);
    while (w) {
        struct waiter *next = w->next;
        w->fn(w->arg);
        free(w);
        w = next;
    }
    cache_entry_release(store);
    cache_entry_release(f->stale);
    cache_entry_release(f->building);
    buf_free(&f->cond);
    free(f->hdrs);
    free(f->hdr_mem);
    free(f->key);
    free(f);
}

static bool stale_if_error_ok(const struct cache *c, const struct cache_fill *f)
{
    const struct cache_entry *e = f->stale;
    if (e == NULL || (e->flags & (E_MUST_REVALIDATE | E_NO_CACHE)))
        return false;
    int64_t staleness = current_age(e, now_s(c)) - e->lifetime;
    if (f->background)
        return true;
    int64_t allowed = f->req_sie >= 0 ? f->req_sie : e->sie;
    return allowed >= 0 && staleness <= allowed;
}

static bool etag_weak_eq(struct slice a, struct slice b)
{
    if (a.len >= 2 && a.ptr[0] == 'W' && a.ptr[1] == '/')
        a = slice_make(a.ptr + 2, a.len - 2);
    if (b.len >= 2 && b.ptr[0] == 'W' && b.ptr[1] == '/')
        b = slice_make(b.ptr + 2, b.len - 2);
    return slice_eq(a, b);
}

/* A 304 updates the stored response's fields (RFC 9111 3.2, 4.3.4): each
 * field of the 304 replaces the stored ones of its name. */
static struct cache_entry *freshen(struct cache_fill *f, const struct cache_resp *r, int64_t now)
{
    struct cache_entry *old = f->stale;
    struct slice etag = header(r->headers, r->nheaders, "etag", NULL);
    if (etag.ptr && old->etag.len && !etag_weak_eq(slice_trim(etag), buf_slice(&old->etag)))
        return NULL;
    size_t cap = r->nheaders + 1;
    for (const char *p = old->head.ptr; p && p < old->head.ptr + old->head.len; p++)
        cap += *p == '\n';
    struct http_header *merged = xcalloc(cap, sizeof(*merged));
    size_t n = 0;
    const char *p = old->head.ptr, *end = old->head.ptr ? old->head.ptr + old->head.len : NULL;
    while (p < end) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *eol = memchr(colon, '\r', (size_t)(end - colon));
        struct slice name = slice_make(p, (size_t)(colon - p));
        bool replaced = false;
        for (size_t i = 0; i < r->nheaders; i++)
            if (slice_case_eq(r->headers[i].name, name) &&
                !slice_case_eq(name, SLICE_LIT("content-length")))
                replaced = true;
        if (!replaced)
            merged[n++] =
                (struct http_header){name, slice_make(colon + 2, (size_t)(eol - colon - 2))};
        p = eol + 2;
    }
    for (size_t i = 0; i < r->nheaders; i++)
        if (!slice_case_eq(r->headers[i].name, SLICE_LIT("content-length")))
            merged[n++] = r->headers[i];
    struct cache_entry *e = entry_build(f->c, f, old->status, merged, n, now);
    free(merged);
    if (e == NULL)
        return NULL;
    buf_append(&e->body, old->body.ptr, old->body.len);
    entry_account(e);
    return e;
}

enum cache_fill_action cache_fill_response(struct cache_fill *f, const struct cache_resp *resp,
                                           struct cache_entry **entry)
{
    struct cache *c = f->c;
    int64_t now = now_s(c);
    *entry = NULL;
    if (resp->status == 304 && f->stale) {
        struct cache_entry *e = freshen(f, resp, now);
        if (e) {
            *entry = entry_ref(e);
            f->action = CACHE_FILL_USE_STORED;
            fill_finish(f, e);
            return CACHE_FILL_USE_STORED;
        }
        f->action = CACHE_FILL_PASS;
        return CACHE_FILL_PASS;
    }
    if ((resp->status == 500 || resp->status == 502 || resp->status == 503 ||
         resp->status == 504) &&
        stale_if_error_ok(c, f)) {
        *entry = entry_ref(f->stale);
        f->action = CACHE_FILL_STALE;
        pthread_mutex_lock(&c->mu);
        c->st.stale++;
        pthread_mutex_unlock(&c->mu);
        fill_finish(f, NULL);
        return CACHE_FILL_STALE;
    }
    f->building = entry_build(c, f, resp->status, resp->headers, resp->nheaders, now);
    if (f->building == NULL && f->stale && resp->status < 500) {
        /* The origin answered afresh and this answer cannot be stored: the
         * old one no longer represents the resource. */
        pthread_mutex_lock(&c->mu);
        if (f->stale->linked)
            index_unlink(c, f->stale);
        f->stale->doomed = true; /* in case it is on its way to disk */
        pthread_mutex_unlock(&c->mu);
    }
    f->action = f->building ? CACHE_FILL_STORE : CACHE_FILL_PASS;
    return f->action;
}

void cache_fill_body(struct cache_fill *f, struct slice chunk)
{
    struct cache_entry *e = f->building;
    if (e == NULL || chunk.len == 0)
        return;
    if (e->body.len + chunk.len > __atomic_load_n(&f->c->o.max_object_bytes, __ATOMIC_RELAXED)) {
        cache_entry_release(e);
        f->building = NULL;
        return;
    }
    buf_append_slice(&e->body, chunk);
}

void cache_fill_end(struct cache_fill *f, bool complete)
{
    struct cache_entry *e = f->building;
    f->building = NULL;
    if (e && !complete) {
        cache_entry_release(e);
        e = NULL;
    }
    if (e) {
        /* Stored bodies live long: give back the growth slack. */
        if (e->body.cap > e->body.len + 1) {
            e->body.ptr = xrealloc(e->body.ptr, e->body.len + 1);
            e->body.cap = e->body.len + 1;
        }
        entry_account(e);
    }
    fill_finish(f, e);
}

bool cache_fill_has_stored(const struct cache_fill *f)
{
    return f->stale != NULL;
}

struct cache_entry *cache_fill_error(struct cache_fill *f)
{
    struct cache_entry *e = NULL;
    if (stale_if_error_ok(f->c, f)) {
        e = entry_ref(f->stale);
        pthread_mutex_lock(&f->c->mu);
        f->c->st.stale++;
        pthread_mutex_unlock(&f->c->mu);
    }
    /* No hit-for-miss mark: an unreachable upstream says nothing of the key. */
    f->action = CACHE_FILL_STALE;
    fill_finish(f, NULL);
    return e;
}

/* ---- invalidation and purge ---- */

/* Resolves a Location or Content-Location value against the request, dot
 * segments left in; false unless it names the same host. */
static bool resolve_same_host(struct slice host, struct slice target, struct slice v,
                              struct buf *out)
{
    v = slice_trim(v);
    if (v.len == 0)
        return false;
    if (slice_starts_with(v, SLICE_LIT("http://")) || slice_starts_with(v, SLICE_LIT("https://"))) {
        size_t skip = v.ptr[4] == 's' ? 8 : 7;
        struct slice rest = slice_make(v.ptr + skip, v.len - skip);
        const char *slash = memchr(rest.ptr, '/', rest.len);
        struct slice vh = slice_make(rest.ptr, slash ? (size_t)(slash - rest.ptr) : rest.len);
        if (!slice_case_eq(vh, host))
            return false;
        if (slash)
            buf_append(out, slash, (size_t)(rest.ptr + rest.len - slash));
        else
            buf_append_char(out, '/');
        return true;
    }
    if (v.ptr[0] == '/') {
        if (v.len > 1 && v.ptr[1] == '/')
            return false; /* a network-path reference names a host: not ours to judge */
        buf_append_slice(out, v);
        return true;
    }
    if (memchr(v.ptr, ':', v.len) && !memchr(v.ptr, '/', v.len))
        return false;
    const char *q = memchr(target.ptr, '?', target.len);
    size_t plen = q ? (size_t)(q - target.ptr) : target.len;
    while (plen > 0 && target.ptr[plen - 1] != '/')
        plen--;
    buf_append(out, target.ptr, plen);
    buf_append_slice(out, v);
    return true;
}

/* RFC 3986 5.2.4 on the path of out (its query left as it is): "." and
 * ".." segments go, as a client resolving the reference would drop them. */
static void remove_dot_segments(struct buf *out)
{
    char *q = memchr(out->ptr, '?', out->len);
    char *in = out->ptr, *end = q ? q : out->ptr + out->len;
    struct buf res = BUF_INIT;
    while (in < end) {
        size_t n = (size_t)(end - in);
        if (n >= 3 && !memcmp(in, "../", 3)) {
            in += 3;
        } else if (n >= 2 && !memcmp(in, "./", 2)) {
            in += 2;
        } else if (n >= 3 && !memcmp(in, "/./", 3)) {
            in += 2;
        } else if (n == 2 && !memcmp(in, "/.", 2)) {
            *++in = '/';
        } else if ((n >= 4 && !memcmp(in, "/../", 4)) || (n == 3 && !memcmp(in, "/..", 3))) {
            if (n == 3)
                *(in += 2) = '/';
            else
                in += 3;
            while (res.len && res.ptr[res.len - 1] != '/')
                res.len--;
            if (res.len)
                res.len--;
        } else if ((n == 1 && in[0] == '.') || (n == 2 && !memcmp(in, "..", 2))) {
            in = end;
        } else {
            char *seg = memchr(in + 1, '/', n - 1);
            if (!seg)
                seg = end;
            buf_append(&res, in, (size_t)(seg - in));
            in = seg;
        }
    }
    buf_append(&res, end, (size_t)(out->ptr + out->len - end));
    buf_free(out);
    *out = res;
}

/* Resolves a Location or Content-Location value against the request; false
 * unless it names the same host (RFC 9111 4.4 forbids other origins). */
static bool same_host_target(struct slice host, struct slice target, struct slice v,
                             struct buf *out)
{
    if (!resolve_same_host(host, target, v, out))
        return false;
    remove_dot_segments(out);
    return true;
}

static size_t purge_locked(struct cache *c, struct slice host, struct slice target)
{
    size_t n;
    char *k = make_key(host, target, &n);
    size_t removed = remove_key(c, hash_key(k, n), k, n);
    free(k);
    return removed;
}

/* Stamps every tag an unsafe request's answer lists: the upstream names
 * there what the change made stale beyond the target URI (a record's
 * collection lists, say). The stored responses with those tags, in memory,
 * on disk or on their way there, are dropped when a lookup finds them. */
static void invalidate_tags_locked(struct cache *c, const struct cache_resp *resp)
{
    if (!c->o.tag_field)
        return;
    struct buf lowered = BUF_INIT;
    for (size_t i = 0; i < resp->nheaders; i++)
        if (slice_case_eq(resp->headers[i].name, slice_cstr(c->o.tag_field)))
            fields_lower(&lowered, resp->headers[i].value);
    if (lowered.len == 0)
        return;
    c->tag_clock++;
    for (const char *p = lowered.ptr + 1; p < lowered.ptr + lowered.len;) {
        const char *comma = memchr(p, ',', (size_t)(lowered.ptr + lowered.len - p));
        if (comma > p)
            c->tag_bumped[tag_slot(slice_make(p, (size_t)(comma - p)))] = c->tag_clock;
        p = comma + 1;
    }
    buf_free(&lowered);
}

void cache_invalidate(struct cache *c, const struct cache_req *rq, const struct cache_resp *resp)
{
    if (safe_method(rq->method) || resp->status < 200 || resp->status > 399)
        return;
    pthread_mutex_lock(&c->mu);
    c->st.invalidations += purge_locked(c, rq->host, rq->target);
    invalidate_tags_locked(c, resp);
    const char *names[] = {"location", "content-location"};
    for (size_t i = 0; i < 2; i++) {
        struct slice v = header(resp->headers, resp->nheaders, names[i], NULL);
        struct buf t = BUF_INIT;
        if (v.ptr && same_host_target(rq->host, rq->target, v, &t))
            c->st.invalidations += purge_locked(c, rq->host, buf_slice(&t));
        buf_free(&t);
    }
    pthread_mutex_unlock(&c->mu);
}

size_t cache_purge_url(struct cache *c, struct slice host, struct slice target)
{
    pthread_mutex_lock(&c->mu);
    size_t n = purge_locked(c, host, target);
    c->st.purges += n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static bool has_tag(const struct cache *c, const struct cache_entry *v, const void *arg)
{
    (void)c;
    return lowered_has(&v->tags, *(const struct slice *)arg);
}

size_t cache_purge_tag(struct cache *c, struct slice tag)
{
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    /* A scan: purges are rare next to lookups, which an index of tags
     * would slow down on every store. */
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (struct cache_entry *e = c->buckets[i], *next; e; e = next) {
            next = e->hnext;
            if (lowered_has(&e->tags, tag)) {
                index_unlink(c, e);
                n++;
            }
        }
    }
    doom_in_transit(c, has_tag, &tag);
    c->st.purges += n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ---- serving ---- */

int cache_entry_status(const struct cache_entry *e)
{
    return e->status;
}

struct slice cache_entry_body(const struct cache_entry *e)
{
    return buf_slice(&e->body);
}

void cache_entry_head(struct cache *c, const struct cache_entry *e, struct buf *out)
{
    const char *p = e->head.ptr, *end = e->head.ptr ? e->head.ptr + e->head.len : NULL;
    if (e->no_cache_fields.len == 0 && p) {
        buf_append(out, p, e->head.len);
        p = end;
    }
    while (p < end) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *eol = memchr(colon, '\n', (size_t)(end - colon)) + 1;
        if (!lowered_has(&e->no_cache_fields, slice_make(p, (size_t)(colon - p))))
            buf_append(out, p, (size_t)(eol - p));
        p = eol;
    }
    int64_t age = current_age(e, now_s(c));
    buf_appendf(out, "Age: %lld\r\n", (long long)(age < CACHE_DELTA_MAX ? age : CACHE_DELTA_MAX));
}

bool cache_entry_not_modified(const struct cache_entry *e, const struct cache_req *rq)
{
    if (e->status != 200)
        return false;
    struct slice inm = header(rq->headers, rq->nheaders, "if-none-match", NULL);
    if (inm.ptr) {
        if (e->etag.len == 0)
            return false;
        struct slice rest = inm, t = SLICE_NULL;
        while (cache_list_next(&rest, &t))
            if (slice_eq_cstr(t, "*") || etag_weak_eq(t, buf_slice(&e->etag)))
                return true;
        return false;
    }
    struct slice ims = header(rq->headers, rq->nheaders, "if-modified-since", NULL);
    int64_t since, lm;
    if (!ims.ptr || e->last_modified.len == 0 || cache_http_date(slice_trim(ims), &since) < 0 ||
        cache_http_date(buf_slice(&e->last_modified), &lm) < 0)
        return false;
    return lm <= since;
}

static void append_param(struct buf *out, struct slice name, const char *value)
{
    buf_append_slice(out, name);
    buf_append_cstr(out, value);
}

static void append_int_param(struct buf *out, struct slice name, int64_t v)
{
    char t[20];
    buf_append_slice(out, name);
    if (v < 0)
        buf_append_char(out, '-');
    const char *digits = u64_to_dec(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, t);
    buf_append(out, digits, (size_t)(t + 20 - digits));
}

/* Without printf: it runs for every response the gateway sends. */
void cache_status_format(const struct cache *c, const struct cache_status *st, struct buf *out)
{
    buf_append_slice(out, buf_slice(&c->status_key));
    if (st->hit)
        buf_append_slice(out, SLICE_LIT("; hit"));
    else if (st->fwd)
        append_param(out, SLICE_LIT("; fwd="), st->fwd);
    if (st->fwd_status)
        append_int_param(out, SLICE_LIT("; fwd-status="), st->fwd_status);
    if (st->has_ttl)
        append_int_param(out, SLICE_LIT("; ttl="), st->ttl);
    if (st->stored)
        buf_append_slice(out, SLICE_LIT("; stored"));
    if (st->collapsed)
        buf_append_slice(out, SLICE_LIT("; collapsed"));
    if (st->detail)
        append_param(out, SLICE_LIT("; detail="), st->detail);
}

void cache_resize(struct cache *c, size_t max_bytes, size_t max_object_bytes, size_t disk_max_bytes)
{
    pthread_mutex_lock(&c->mu);
    c->o.max_bytes = max_bytes;
    c->transit_max = c->dirfd >= 0 ? max_bytes / 5 : 0;
    c->policy.max_bytes = max_bytes - c->transit_max;
    c->st.max_bytes = max_bytes;
    __atomic_store_n(&c->o.max_object_bytes, max_object_bytes ? max_object_bytes : max_bytes / 8,
                     __ATOMIC_RELAXED);
    evict_to_bound(c);
    if (c->dirfd >= 0) {
        c->o.disk_max_bytes = disk_max_bytes;
        c->disk.max_bytes = disk_max_bytes;
        c->st.disk_max_bytes = disk_max_bytes;
        disk_evict_to_bound(c);
    }
    pthread_mutex_unlock(&c->mu);
}

void cache_stats(struct cache *c, struct cache_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    out->bytes += c->demote_bytes;
    out->disk_pending = c->disk_pending;
    pthread_mutex_unlock(&c->mu);
}

void cache_metrics_render(struct cache *c, struct buf *out)
{
    struct cache_stats s;
    cache_stats(c, &s);
    const struct {
        const char *name, *type, *help;
        uint64_t v;
    } rows[] = {
        {"hits_total", "counter", "Requests answered from a fresh stored response.", s.hits},
        {"misses_total", "counter", "Requests forwarded for want of a usable response.", s.misses},
        {"stale_total", "counter", "Stale responses served (max-stale, stale-*).", s.stale},
        {"coalesced_total", "counter", "Misses that waited for another request's fill.",
         s.coalesced},
        {"stores_total", "counter", "Responses stored.", s.stores},
        {"evictions_total", "counter", "Responses evicted to stay within the byte bound.",
         s.evictions},
        {"purges_total", "counter", "Responses removed by the purge API.", s.purges},
        {"invalidations_total", "counter", "Responses removed after unsafe requests.",
         s.invalidations},
        {"bytes", "gauge",
         "Bytes held in memory by stored responses (and those on their way to disk).", s.bytes},
        {"max_bytes", "gauge", "The configured bound on stored bytes.", s.max_bytes},
        {"entries", "gauge", "Stored responses in memory.", s.entries},
        {"disk_demotions_total", "counter", "Responses moved from memory to the disk tier.",
         s.demotions},
        {"disk_hits_total", "counter", "Responses read back from the disk tier.", s.disk_hits},
        {"disk_evictions_total", "counter", "Responses evicted from the disk tier.",
         s.disk_evictions},
        {"disk_errors_total", "counter", "Disk tier writes or reads that failed.", s.disk_errors},
        {"disk_bytes", "gauge", "Bytes held by the disk tier (files and their index).",
         s.disk_bytes},
        {"disk_max_bytes", "gauge", "The configured bound on the disk tier; 0: none.",
         s.disk_max_bytes},
        {"disk_entries", "gauge", "Stored responses in the disk tier.", s.disk_entries},
        {"disk_pending", "gauge", "Disk tier writes, reads and removals queued or running.",
         s.disk_pending},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        buf_appendf(out,
                    "# HELP cruder_gateway_cache_%s %s\n# TYPE cruder_gateway_cache_%s %s\n"
                    "cruder_gateway_cache_%s %llu\n",
                    rows[i].name, rows[i].help, rows[i].name, rows[i].type, rows[i].name,
                    (unsigned long long)rows[i].v);
    uint64_t total = s.hits + s.stale + s.misses;
    buf_appendf(out,
                "# HELP cruder_gateway_cache_hit_ratio Hits and stale serves over cacheable "
                "lookups.\n# TYPE cruder_gateway_cache_hit_ratio gauge\n"
                "cruder_gateway_cache_hit_ratio %.4f\n",
                total ? (double)(s.hits + s.stale) / (double)total : 0.0);
}
