/* Invalidation by tag: a successful unsafe request whose answer lists tags in
 * the cache's tag field drops every stored response stored with one of them
 * (the records API tags a write with its collection and record). */
#include <criterion/criterion.h>
#include <string.h>

#include "core/timefmt.h"
#include "gateway/cache.h"

static int64_t clk(void *arg)
{
    (void)arg;
    return 1700000000;
}

static struct cache *mk(const char *tag_field)
{
    struct cache_options o = {
        .max_bytes = 1 << 20,
        .clock = clk,
        .targeted_field = "Cruder-Cache-Control",
        .tag_field = tag_field,
    };
    return cache_new(&o);
}

static struct cache_req req(const char *method, const char *target)
{
    return (struct cache_req){slice_cstr(method), SLICE_LIT("example.com"), slice_cstr(target),
                              NULL, 0};
}

/* Stores a fresh 200 for target, tagged with tags (one field line each). */
static void store(struct cache *c, const char *target, const char *tag1, const char *tag2)
{
    char date[TIMEFMT_HTTP_LEN + 1];
    time_format_http((time_t)clk(NULL), date);
    struct http_header h[4] = {
        {SLICE_LIT("Date"), slice_cstr(date)},
        {SLICE_LIT("Cruder-Cache-Control"), SLICE_LIT("max-age=60")},
        {SLICE_LIT("Cache-Tag"), slice_cstr(tag1)},
        {SLICE_LIT("Cache-Tag"), slice_cstr(tag2 ? tag2 : "")},
    };
    struct cache_req rq = req("GET", target);
    struct cache_lookup lk;
    cache_lookup(c, &rq, &lk, NULL, NULL);
    cr_assert_eq(lk.outcome, CACHE_MISS, "%s", target);
    struct cache_resp resp = {200, h, tag2 ? 4 : 3};
    struct cache_entry *e = NULL;
    cr_assert_eq(cache_fill_response(lk.fill, &resp, &e), CACHE_FILL_STORE);
    cache_fill_body(lk.fill, SLICE_LIT("{}"));
    cache_fill_end(lk.fill, true);
}

/* Whether a GET of target is served from the cache. */
static bool cached(struct cache *c, const char *target)
{
    struct cache_req rq = req("GET", target);
    struct cache_lookup lk;
    cache_lookup(c, &rq, &lk, NULL, NULL);
    bool hit = lk.outcome == CACHE_HIT;
    cache_entry_release(lk.entry);
    if (lk.fill)
        cache_fill_end(lk.fill, false);
    return hit;
}

/* The upstream's answer to an unsafe request, with up to two tag lines. */
static void answer(struct cache *c, const char *method, const char *target, int status,
                   const char *tag1, const char *tag2)
{
    struct http_header h[2] = {
        {SLICE_LIT("Cache-Tag"), slice_cstr(tag1)},
        {SLICE_LIT("cache-tag"), slice_cstr(tag2 ? tag2 : "")},
    };
    struct cache_req rq = req(method, target);
    struct cache_resp resp = {status, h, tag2 ? 2 : 1};
    cache_invalidate(c, &rq, &resp);
}

static void store_records(struct cache *c)
{
    store(c, "/api/collections/posts/records", "pbc_1", NULL);
    store(c, "/api/collections/posts/records/a", "pbc_1/a", NULL);
    store(c, "/api/collections/posts/records/b", "pbc_1/b", NULL);
    store(c, "/api/collections/notes/records?expand=post", "pbc_2", "pbc_1");
    store(c, "/api/collections/tags/records", "pbc_3", NULL);
}

Test(cache_tags, a_write_drops_every_response_sharing_one_of_its_tags)
{
    struct cache *c = mk("Cache-Tag");
    store_records(c);
    answer(c, "PATCH", "/api/collections/posts/records/a", 200, "pbc_1, pbc_1/a", NULL);
    cr_assert(!cached(c, "/api/collections/posts/records"));
    cr_assert(!cached(c, "/api/collections/posts/records/a"));
    /* a list of another collection that expanded this one goes too */
    cr_assert(!cached(c, "/api/collections/notes/records?expand=post"));
    cr_assert(cached(c, "/api/collections/posts/records/b"));
    cr_assert(cached(c, "/api/collections/tags/records"));
    struct cache_stats st;
    cache_stats(c, &st);
    cr_assert_eq(st.invalidations, 3);
    cache_free(c);
}

Test(cache_tags, tags_match_case_insensitively_across_field_lines)
{
    struct cache *c = mk("Cache-Tag");
    store_records(c);
    answer(c, "DELETE", "/elsewhere", 204, "PBC_1/B", "pbc_3");
    cr_assert(!cached(c, "/api/collections/posts/records/b"));
    cr_assert(!cached(c, "/api/collections/tags/records"));
    cr_assert(cached(c, "/api/collections/posts/records"));
    cr_assert(cached(c, "/api/collections/posts/records/a"));
    cache_free(c);
}

Test(cache_tags, failed_writes_and_safe_methods_drop_nothing)
{
    struct cache *c = mk("Cache-Tag");
    store_records(c);
    answer(c, "PATCH", "/x", 400, "pbc_1", NULL);
    answer(c, "POST", "/x", 500, "pbc_1", NULL);
    answer(c, "GET", "/x", 200, "pbc_1", NULL);
    cr_assert(cached(c, "/api/collections/posts/records"));
    cr_assert(cached(c, "/api/collections/notes/records?expand=post"));
    /* a tag only prefixing a stored one is another tag */
    answer(c, "POST", "/x", 200, "pbc", "pbc_1/");
    cr_assert(cached(c, "/api/collections/posts/records"));
    cr_assert(cached(c, "/api/collections/posts/records/a"));
    cache_free(c);
}

Test(cache_tags, without_a_tag_field_tags_are_ignored)
{
    struct cache *c = mk(NULL);
    store(c, "/api/collections/posts/records", "pbc_1", NULL);
    answer(c, "PATCH", "/api/collections/posts/records/a", 200, "pbc_1", NULL);
    cr_assert(cached(c, "/api/collections/posts/records"));
    /* the target URI itself is still invalidated */
    store(c, "/api/collections/posts/records/a", "pbc_1/a", NULL);
    answer(c, "PATCH", "/api/collections/posts/records/a", 200, "", NULL);
    cr_assert(!cached(c, "/api/collections/posts/records/a"));
    cache_free(c);
}

/* A list fetched while a write was committing may predate the write: once
 * stored it is already stale, and the next lookup goes upstream (the write's
 * target URI is another key: only its tag reaches this one). */
Test(cache_tags, a_response_forwarded_before_the_write_is_stale_once_stored)
{
    struct cache *c = mk("Cache-Tag");
    char date[TIMEFMT_HTTP_LEN + 1];
    time_format_http((time_t)clk(NULL), date);
    struct cache_req rq = req("GET", "/api/collections/posts/records?page=2");
    struct cache_lookup lk;
    cache_lookup(c, &rq, &lk, NULL, NULL);
    cr_assert_eq(lk.outcome, CACHE_MISS);
    answer(c, "POST", "/api/collections/posts/records", 200, "pbc_1, pbc_1/new", NULL);
    struct http_header h[3] = {
        {SLICE_LIT("Date"), slice_cstr(date)},
        {SLICE_LIT("Cruder-Cache-Control"), SLICE_LIT("max-age=60")},
        {SLICE_LIT("Cache-Tag"), SLICE_LIT("pbc_1")},
    };
    struct cache_resp resp = {200, h, 3};
    struct cache_entry *e = NULL;
    cr_assert_eq(cache_fill_response(lk.fill, &resp, &e), CACHE_FILL_STORE);
    cache_fill_body(lk.fill, SLICE_LIT("[]"));
    cache_fill_end(lk.fill, true);
    cr_assert(!cached(c, "/api/collections/posts/records?page=2"));
    store(c, "/api/collections/posts/records?page=2", "pbc_1", NULL);
    cr_assert(cached(c, "/api/collections/posts/records?page=2"),
              "a response fetched after it is kept");
    cache_free(c);
}
