/* libFuzzer target for the cache's field parsers: Cache-Control, targeted
 * fields (RFC 8941 dictionaries), HTTP-dates, delta-seconds and Vary. The
 * first byte picks the parser; the rest is the field value. A last pass
 * stores a response carrying the value as each field, through the whole
 * cache. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/cache.h"
#include "gateway/cache_internal.h"

static int64_t clk(void *arg)
{
    (void)arg;
    return 1700000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* A copy of exactly the value's size, so a read past it faults. */
    size_t n = size - 1;
    char *v = malloc(n ? n : 1);
    memcpy(v, data + 1, n);
    struct slice s = slice_make(v, n);
    struct cache_cc cc;
    int64_t t;
    switch (data[0] % 4) {
    case 0:
        cache_cc_init(&cc);
        cache_cc_parse(&cc, s);
        break;
    case 1:
        cache_cc_parse_targeted(&cc, s);
        break;
    case 2:
        cache_http_date(s, &t);
        cache_delta_seconds(s);
        break;
    default: {
        cache_vary_check(s);
        struct http_header h = {SLICE_LIT("Accept-Encoding"), s};
        struct buf out = BUF_INIT;
        cache_vary_value(&h, 1, SLICE_LIT("accept-encoding"), &out);
        buf_free(&out);
        break;
    }
    }

    struct cache_options o = {.max_bytes = 64 * 1024,
                              .clock = clk,
                              .targeted_field = "Cruder-Cache-Control",
                              .tag_field = "Cache-Tag"};
    struct cache *c = cache_new(&o);
    struct http_header rh[] = {
        {SLICE_LIT("Cache-Control"), s}, {SLICE_LIT("CDN-Cache-Control"), s},
        {SLICE_LIT("Expires"), s},       {SLICE_LIT("Date"), s},
        {SLICE_LIT("Age"), s},           {SLICE_LIT("Vary"), s},
        {SLICE_LIT("ETag"), s},          {SLICE_LIT("Last-Modified"), s},
        {SLICE_LIT("Cache-Tag"), s},     {SLICE_LIT("Location"), s},
    };
    struct http_header qh[] = {{SLICE_LIT("Cache-Control"), s}, {SLICE_LIT("Accept-Encoding"), s}};
    struct cache_req rq = {SLICE_LIT("GET"), SLICE_LIT("h"), SLICE_LIT("/x"), qh, 2};
    for (int round = 0; round < 2; round++) {
        struct cache_lookup lk;
        cache_lookup(c, &rq, &lk, NULL, NULL);
        if (lk.fill) {
            struct cache_entry *e = NULL;
            struct cache_resp resp = {round ? 304 : 200, rh, sizeof(rh) / sizeof(rh[0])};
            if (cache_fill_response(lk.fill, &resp, &e) <= CACHE_FILL_PASS) {
                cache_fill_body(lk.fill, s);
                cache_fill_end(lk.fill, true);
            }
            cache_entry_release(e);
        }
        if (lk.entry) {
            struct buf out = BUF_INIT;
            cache_entry_head(c, lk.entry, &out);
            cache_entry_not_modified(lk.entry, &rq);
            buf_free(&out);
        }
        cache_entry_release(lk.entry);
    }
    struct cache_req post = {SLICE_LIT("POST"), SLICE_LIT("h"), SLICE_LIT("/x/y"), NULL, 0};
    cache_invalidate(c, &post, &(struct cache_resp){201, rh, sizeof(rh) / sizeof(rh[0])});
    cache_purge_tag(c, s);
    cache_free(c);
    free(v);
    return 0;
}
