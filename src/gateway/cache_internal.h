/* The cache's parsers and eviction policies, shared by cache.c, the unit
 * tests, the fuzz target and the policy bench. Parsers read borrowed bytes
 * and never copy; anything malformed is reported, never asserted. */
#ifndef GATEWAY_CACHE_INTERNAL_H
#define GATEWAY_CACHE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/slice.h"
#include "http/http.h"

/* RFC 9111 1.2.2: a delta-seconds value too large to represent is this. */
#define CACHE_DELTA_MAX 2147483648LL
/* A directive's value was malformed or given twice with different values:
 * freshness built on it is zero (RFC 9111 4.2.1, "consider it stale"). */
#define CACHE_CC_INVALID (-2)
#define CACHE_CC_ABSENT (-1)

enum cache_cc_flag {
    CACHE_CC_NO_STORE = 1 << 0,
    CACHE_CC_NO_CACHE = 1 << 1, /* unqualified */
    CACHE_CC_PRIVATE = 1 << 2,  /* unqualified */
    CACHE_CC_PUBLIC = 1 << 3,
    CACHE_CC_MUST_REVALIDATE = 1 << 4,
    CACHE_CC_PROXY_REVALIDATE = 1 << 5,
    CACHE_CC_MUST_UNDERSTAND = 1 << 6,
    CACHE_CC_ONLY_IF_CACHED = 1 << 7,
    CACHE_CC_IMMUTABLE = 1 << 8,
    CACHE_CC_MAX_STALE_ANY = 1 << 9,
};

/* Cache-Control directives, request or response. Numbers are CACHE_CC_ABSENT,
 * CACHE_CC_INVALID or 0..CACHE_DELTA_MAX. Field lists point into the parsed
 * value (inside the quotes). */
struct cache_cc {
    unsigned flags;
    int64_t max_age, s_maxage, max_stale, min_fresh, swr, sie;
    struct slice no_cache_fields, private_fields;
    bool present;
};

void cache_cc_init(struct cache_cc *cc);
/* Adds the directives of one Cache-Control field line to cc (RFC 9111 5.2:
 * #( token [ "=" ( token / quoted-string ) ] ), names case-insensitive).
 * Unknown directives are ignored. Returns -1 if the line is not valid list
 * syntax (what was parsed before the error is kept), else 0. */
int cache_cc_parse(struct cache_cc *cc, struct slice value);
/* Parses a targeted field (RFC 9213) as a Structured Field Dictionary into
 * cc. Returns -1 on any syntax error or an empty field, in which case the
 * caller ignores the field; cc is then unspecified. */
int cache_cc_parse_targeted(struct cache_cc *cc, struct slice value);

/* Parses delta-seconds (1*DIGIT), clamping at CACHE_DELTA_MAX; -1 on error. */
int64_t cache_delta_seconds(struct slice s);
/* Parses an HTTP-date in any of its three forms (IMF-fixdate, RFC 850,
 * asctime), exactly; 0 with *out (Unix seconds) or -1. */
int cache_http_date(struct slice s, int64_t *out);

/* Walks a comma-separated list: returns the next trimmed element (possibly
 * empty) and advances *rest; false when the list is done. Quoted commas are
 * not split. */
bool cache_list_next(struct slice *rest, struct slice *elem);
/* True if s is a valid RFC 9110 token. */
bool cache_is_token(struct slice s);
/* Appends the normalised value of request field `name` across every line of
 * headers: lines joined with ',', whitespace around elements dropped, and for
 * fields whose members are case-insensitive and unordered (Accept-Encoding,
 * Accept-Language, Accept-Charset) lowercased and sorted. Returns false if
 * the field is absent. */
bool cache_vary_value(const struct http_header *headers, size_t n, struct slice name,
                      struct buf *out);
/* Checks a Vary value list: 0 when valid, 1 for "*", -1 when malformed. */
int cache_vary_check(struct slice value);

/* ---- eviction policies, over fixed-size nodes embedded in entries ---- */

struct cache_pnode {
    struct cache_pnode *prev, *next;
    uint64_t hash;
    size_t bytes;
    uint8_t freq;
    uint8_t queue; /* S3-FIFO: 0 small, 1 main */
};

struct cache_plist {
    struct cache_pnode head; /* sentinel: head.next is the newest */
    size_t bytes, count;
};

struct cache_policy_state {
    int kind; /* enum cache_policy */
    size_t max_bytes;
    struct cache_plist a, b; /* LRU: a; S3-FIFO: a small, b main */
    uint64_t *ghost;         /* S3-FIFO: hashes recently evicted from the small queue */
    size_t nghost;
};

void cache_policy_init(struct cache_policy_state *p, int kind, size_t max_bytes);
void cache_policy_free(struct cache_policy_state *p);
void cache_policy_insert(struct cache_policy_state *p, struct cache_pnode *n);
/* Inserts a node known to be popular (read back from the disk tier): S3-FIFO
 * puts it straight in its main queue. */
void cache_policy_insert_hot(struct cache_policy_state *p, struct cache_pnode *n);
void cache_policy_hit(struct cache_policy_state *p, struct cache_pnode *n);
void cache_policy_remove(struct cache_policy_state *p, struct cache_pnode *n);
/* The node to evict next (still linked; the caller removes it), or NULL. */
struct cache_pnode *cache_policy_victim(struct cache_policy_state *p);
size_t cache_policy_bytes(const struct cache_policy_state *p);

#endif
