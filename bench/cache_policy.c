/* Hit ratio of the cache's eviction policies, LRU against S3-FIFO, on the
 * same Zipf-distributed trace at the same byte bound, through the cache's
 * whole public API (lookups, fills, stores, evictions). Run by
 * bench/cache_policy.sh; tests/unit/test_cache_policy.c includes this file
 * (CACHE_POLICY_NO_MAIN) to check that the default stays the better one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/cache.h"

static int64_t bench_clock(void *arg)
{
    (void)arg;
    return 1700000000;
}

/* xorshift64*: deterministic, so both policies see the same trace. */
static uint64_t bench_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* Hit ratio of `policy` on `requests` draws over `objects` keys with Zipf
 * exponent alpha, in a cache of cache_pct percent of the objects' bytes. */
static double bench_hit_ratio(int policy, size_t objects, size_t requests, double alpha,
                              double cache_pct, uint64_t seed)
{
    double *cdf = malloc(objects * sizeof(*cdf));
    double sum = 0;
    for (size_t i = 0; i < objects; i++)
        cdf[i] = (sum += 1.0 / pow((double)(i + 1), alpha));
    char body[512];
    memset(body, 'b', sizeof(body));
    /* Bytes per stored object, measured, so the bound is a share of the set. */
    size_t per_object = sizeof(body) + 512;
    struct cache_options o = {
        .max_bytes = (size_t)((double)(objects * per_object) * cache_pct / 100.0),
        .policy = policy,
        .clock = bench_clock,
    };
    struct cache *c = cache_new(&o);
    struct http_header rh[] = {{{"Cache-Control", 13}, {"max-age=100000", 14}}};
    uint64_t hits = 0, s = seed;
    for (size_t r = 0; r < requests; r++) {
        double u = (double)(bench_rand(&s) >> 11) / 9007199254740992.0 * sum;
        size_t lo = 0, hi = objects - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        char target[32];
        /* Ranks are scattered over the key space so hashing sees no order. */
        int tl = snprintf(target, sizeof(target), "/k/%llu",
                          (unsigned long long)((lo * 2654435761ULL) % 1000000007ULL));
        struct cache_req rq = {{"GET", 3}, {"h", 1}, {target, (size_t)tl}, NULL, 0};
        struct cache_lookup lk;
        cache_lookup(c, &rq, &lk, NULL, NULL);
        if (lk.outcome == CACHE_HIT)
            hits++;
        if (lk.fill) {
            struct cache_entry *e = NULL;
            struct cache_resp resp = {200, rh, 1};
            cache_fill_response(lk.fill, &resp, &e);
            cache_fill_body(lk.fill, (struct slice){body, sizeof(body)});
            cache_fill_end(lk.fill, true);
        }
        cache_entry_release(lk.entry);
    }
    cache_free(c);
    free(cdf);
    return (double)hits / (double)requests;
}

#ifndef CACHE_POLICY_NO_MAIN
int main(int argc, char **argv)
{
    size_t objects = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t requests = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000000;
    const double alphas[] = {0.8, 1.0, 1.2};
    const double sizes[] = {1, 5, 10, 25};
    printf("%-6s %-7s %-9s %-9s %s\n", "alpha", "cache%", "lru", "s3fifo", "s3fifo/lru");
    for (size_t a = 0; a < 3; a++) {
        for (size_t k = 0; k < 4; k++) {
            double lru =
                bench_hit_ratio(CACHE_POLICY_LRU, objects, requests, alphas[a], sizes[k], 42);
            double s3 =
                bench_hit_ratio(CACHE_POLICY_S3FIFO, objects, requests, alphas[a], sizes[k], 42);
            printf("%-6.1f %-7.0f %-9.4f %-9.4f %.3f\n", alphas[a], sizes[k], lru, s3, s3 / lru);
        }
    }
    return 0;
}
#endif
