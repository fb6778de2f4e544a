/* The gateway's shared HTTP cache (RFC 9111 as a shared cache, with RFC 5861
 * stale-while-revalidate / stale-if-error, RFC 8246 immutable, RFC 9213
 * targeted CDN-Cache-Control and RFC 9211 Cache-Status).
 *
 * The cache knows nothing of sockets: the proxy describes each request
 * (struct cache_req) and each upstream response (struct cache_resp), and the
 * cache says what to do. One cache is shared by every loop of the gateway;
 * one mutex guards its index, and stored entries are reference counted and
 * immutable, so a hit is served without holding the lock.
 *
 * A request's life:
 *   cache_lookup()            HIT / STALE: serve the entry (cache_entry_*)
 *                             MISS / REVALIDATE: forward (for REVALIDATE add
 *                               the conditional headers given), then
 *                               cache_fill_response() on the response head,
 *                               cache_fill_body() per piece, cache_fill_end()
 *                             WAIT: another request is filling this key, or
 *                               the response is being read back from disk;
 *                               the wake callback fires (on the filler's or
 *                               the disk thread) when it is done: look up
 *                               again
 *                             PASS: forward, don't store; for unsafe methods
 *                               call cache_invalidate() on the response
 *                             GATEWAY_TIMEOUT: only-if-cached and nothing
 *                               usable: answer 504 without forwarding
 * Storage is bounded in bytes; the default eviction policy is S3-FIFO, which
 * beat LRU on a Zipf trace (bench/cache_policy.c). An optional disk tier
 * takes what memory evicts from its main queue (responses read at least
 * twice; one-hit wonders are not worth a write) up to its own bound; a
 * lookup that finds a response there waits while the cache's disk thread
 * reads it back into memory. */
#ifndef GATEWAY_CACHE_H
#define GATEWAY_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/slice.h"
#include "http/http.h"

enum cache_policy { CACHE_POLICY_S3FIFO = 0, CACHE_POLICY_LRU };

struct cache_options {
    size_t max_bytes;        /* total bytes of stored entries (bodies, headers, bookkeeping) */
    size_t max_object_bytes; /* larger responses are not stored; 0: max_bytes / 8 */
    enum cache_policy policy;
    /* The gateway-specific targeted field (RFC 9213), checked before
     * CDN-Cache-Control, e.g. "Cruder-Cache-Control"; NULL for none. It is
     * removed from stored and forwarded responses. */
    const char *targeted_field;
    const char *tag_field;   /* response field listing purge tags, e.g. "Cache-Tag"; NULL none */
    const char *status_name; /* the cache's name in Cache-Status; NULL: "cruder" */
    int64_t heuristic_max_s; /* cap on heuristic freshness; 0: 86400 */
    int64_t hit_for_miss_s;  /* how long an unstorable answer stops coalescing; 0: 10 */
    /* The disk tier: a directory the cache owns (its files are removed at
     * start, as the tier does not outlive the process) and its bound in
     * bytes. NULL or 0: memory only. */
    const char *disk_dir;
    size_t disk_max_bytes;
    /* Seconds of the wall clock; NULL: time(). Tests drive a fake clock. */
    int64_t (*clock)(void *arg);
    void *clock_arg;
};

/* A request as the cache sees it; every slice is borrowed for the call. */
struct cache_req {
    struct slice method; /* the method name as received */
    struct slice host;   /* Host, port included; compared case-insensitively */
    struct slice target; /* the origin-form request-target */
    const struct http_header *headers;
    size_t nheaders;
};

/* A response head from the upstream; borrowed for the call. */
struct cache_resp {
    int status;
    const struct http_header *headers;
    size_t nheaders;
};

enum cache_outcome {
    CACHE_HIT,
    CACHE_STALE,
    CACHE_MISS,
    CACHE_REVALIDATE,
    CACHE_WAIT,
    CACHE_PASS,
    CACHE_GATEWAY_TIMEOUT,
};

/* What Cache-Status (RFC 9211) will say about one request. */
struct cache_status {
    bool hit;
    bool stored;
    bool collapsed;
    bool has_ttl;
    int64_t ttl;     /* seconds of freshness left; negative when stale */
    const char *fwd; /* "uri-miss", "vary-miss", "miss", "request", "stale", "method", "bypass" */
    int fwd_status;  /* status the upstream answered, 0 if none */
    const char *detail;
};

struct cache;
struct cache_entry;
struct cache_fill;

struct cache_lookup {
    enum cache_outcome outcome;
    /* HIT, STALE, REVALIDATE: the stored response (a reference; release it
     * with cache_entry_release). NULL otherwise. */
    struct cache_entry *entry;
    /* MISS, REVALIDATE, and STALE under stale-while-revalidate (a background
     * refresh): the fill this request owns. The caller must finish it with
     * cache_fill_end() or cache_fill_error() exactly once. NULL otherwise. */
    struct cache_fill *fill;
    /* REVALIDATE and background refreshes: conditional header lines to add
     * to the forwarded request ("If-None-Match: ...\r\n"), owned by the
     * fill. Forwarded requests must drop the client's own If-None-Match and
     * If-Modified-Since when these are non-empty. */
    struct slice conditional;
    struct cache_status status;
};

/* Creates an empty cache (aborts on OOM). Returns NULL, with errno set, only
 * when the disk tier's directory can be neither created nor opened. */
struct cache *cache_new(const struct cache_options *opts);
/* Frees the cache. Entries still referenced stay valid until released; no
 * fill may be outstanding. Accepts NULL. */
void cache_free(struct cache *c);

/* Decides how to answer rq (see the file comment). For WAIT, wake(arg) is
 * called once, from the thread that finishes the fill or the disk read,
 * after which the caller looks up again; for other outcomes wake is never
 * called. With wake NULL a lookup never waits: a response on disk is then
 * treated as absent. out is fully written. */
void cache_lookup(struct cache *c, const struct cache_req *rq, struct cache_lookup *out,
                  void (*wake)(void *arg), void *arg);

enum cache_fill_action {
    CACHE_FILL_STORE,      /* storable: forward it, feed the body, then cache_fill_end */
    CACHE_FILL_PASS,       /* forward as is, nothing stored; still call cache_fill_end */
    CACHE_FILL_USE_STORED, /* a 304 freshened the stored response: serve *entry instead */
    CACHE_FILL_STALE,      /* an error where stale-if-error allows the stale *entry */
};

/* Tells the fill the upstream's response head. For USE_STORED and STALE,
 * *entry gets a reference to serve (release it) and the fill is finished:
 * do not call cache_fill_end. Otherwise *entry is NULL. After a PASS for a
 * 304 it could not use, the fill may be told the head of an unconditional
 * retry instead (the proxy does so). */
enum cache_fill_action cache_fill_response(struct cache_fill *f, const struct cache_resp *resp,
                                           struct cache_entry **entry);
/* Appends a piece of the response body (copied). A body beyond
 * max_object_bytes silently stops the storing. */
void cache_fill_body(struct cache_fill *f, struct slice chunk);
/* Finishes a fill: stores the response if it was STORE and complete, wakes
 * the waiters, frees f. */
void cache_fill_end(struct cache_fill *f, bool complete);
/* The upstream could not be reached or gave no response. Returns a stale
 * entry to serve if stale-if-error (or a background refresh) allows it, else
 * NULL (answer 502/504). Finishes and frees f either way. */
struct cache_entry *cache_fill_error(struct cache_fill *f);
/* Whether f was to revalidate or replace a stored response of its key: if
 * the upstream fails and cache_fill_error gives nothing to serve, that one
 * could not be reused (RFC 9111 4.2.4, 5.2.2.2). */
bool cache_fill_has_stored(const struct cache_fill *f);

/* Invalidation for an unsafe method's response (RFC 9111 4.4): on a 2xx or
 * 3xx answer, drops the stored responses for the target URI and for the
 * same-host Location and Content-Location, and every stored response
 * sharing a tag (in the tag field) with the response. Safe methods do
 * nothing. */
void cache_invalidate(struct cache *c, const struct cache_req *rq, const struct cache_resp *resp);

/* Purges every stored response for host and target (all variants); returns
 * how many were removed. */
size_t cache_purge_url(struct cache *c, struct slice host, struct slice target);
/* Purges every stored response whose tag field listed tag; returns the count. */
size_t cache_purge_tag(struct cache *c, struct slice tag);

/* Changes the bounds (on a reload): a smaller max_bytes evicts at once, to
 * the disk tier as usual; max_object_bytes 0 means max_bytes / 8. A cache
 * made without a disk tier ignores disk_max_bytes (the tier's directory is
 * fixed at start; a bound of 0 then empties it). */
void cache_resize(struct cache *c, size_t max_bytes, size_t max_object_bytes,
                  size_t disk_max_bytes);

/* ---- stored responses ---- */

int cache_entry_status(const struct cache_entry *e);
/* The stored body; valid while the reference is held. */
struct slice cache_entry_body(const struct cache_entry *e);
/* Appends the stored header lines ("Name: value\r\n", without framing or
 * hop-by-hop fields, which the sender adds) and the current Age. Fields
 * named by a qualified no-cache are left out. */
void cache_entry_head(struct cache *c, const struct cache_entry *e, struct buf *out);
/* True if the client's own conditional headers in rq (If-None-Match, else
 * If-Modified-Since) match the entry, so a 304 can be answered from it. */
bool cache_entry_not_modified(const struct cache_entry *e, const struct cache_req *rq);
void cache_entry_release(struct cache_entry *e);

/* Appends a Cache-Status field value ("cruder; hit; ttl=30"). */
void cache_status_format(const struct cache *c, const struct cache_status *st, struct buf *out);

struct cache_stats {
    uint64_t hits, misses, stale, coalesced, stores, evictions, purges, invalidations;
    uint64_t bytes, entries, max_bytes;
    /* The disk tier: responses moved there from memory, read back (a disk
     * hit moves the response back to memory), dropped from disk, and writes
     * or reads that failed. */
    uint64_t demotions, disk_hits, disk_evictions, disk_errors;
    uint64_t disk_bytes, disk_entries, disk_max_bytes;
    uint64_t disk_pending; /* disk tier writes, reads and removals queued or running */
};
void cache_stats(struct cache *c, struct cache_stats *out);
/* Appends the stats in Prometheus text format (cruder_gateway_cache_*). */
void cache_metrics_render(struct cache *c, struct buf *out);

#endif
