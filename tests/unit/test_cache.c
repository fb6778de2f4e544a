/* The shared cache against the text of RFC 9111 (and 5861, 8246, 9211,
 * 9213): one test per directive or behaviour, driven through the public
 * API with a fake clock and a scripted upstream. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/timefmt.h"
#include "gateway/cache.h"
#include "gateway/cache_internal.h"

static int64_t fake_now = 1700000000;
static int upstream_calls;
static int wakes;

static int64_t clk(void *arg)
{
    (void)arg;
    return fake_now;
}

static struct cache *mk(size_t max_bytes)
{
    fake_now = 1700000000;
    upstream_calls = 0;
    wakes = 0;
    struct cache_options o = {
        .max_bytes = max_bytes,
        .clock = clk,
        .targeted_field = "Cruder-Cache-Control",
        .tag_field = "Cache-Tag",
    };
    return cache_new(&o);
}

/* Header lines "Name: value\n..." parsed into an array. */
struct hs {
    struct http_header h[24];
    size_t n;
    char mem[2048];
};

static void hs_parse(struct hs *hs, const char *text)
{
    hs->n = 0;
    snprintf(hs->mem, sizeof(hs->mem), "%s", text ? text : "");
    char *p = hs->mem;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        char *colon = strchr(p, ':');
        cr_assert(colon);
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        hs->h[hs->n].name = slice_make(p, (size_t)(colon - p));
        hs->h[hs->n].value = slice_cstr(v);
        hs->n++;
        if (!nl)
            break;
        p = nl + 1;
    }
}

static char now_date[TIMEFMT_HTTP_LEN + 1];

/* The upstream's answer, with a Date of now unless the script gives one. */
struct upstream {
    int status;
    const char *headers;
    const char *body;
};

struct result {
    enum cache_outcome outcome;
    enum cache_fill_action action;
    bool from_cache;
    int status;
    char body[256];
    char head[1024];
    char cond[256];
    char cache_status[256];
};

static void wake(void *arg)
{
    (void)arg;
    wakes++;
}

static void respond(struct cache *c, struct cache_fill *f, const struct upstream *up,
                    struct result *r)
{
    struct hs rh;
    char text[1024];
    time_format_http((time_t)fake_now, now_date);
    snprintf(text, sizeof(text), "%s%s%s", up->headers ? up->headers : "",
             up->headers && *up->headers ? "\n" : "", "");
    if (!up->headers || !strstr(up->headers, "Date:")) {
        size_t l = strlen(text);
        snprintf(text + l, sizeof(text) - l, "Date: %s", now_date);
    } else if (text[strlen(text) - 1] == '\n') {
        text[strlen(text) - 1] = '\0';
    }
    hs_parse(&rh, text);
    upstream_calls++;
    struct cache_resp resp = {up->status, rh.h, rh.n};
    struct cache_entry *e = NULL;
    r->action = cache_fill_response(f, &resp, &e);
    if (e) {
        r->from_cache = true;
        r->status = cache_entry_status(e);
        struct slice b = cache_entry_body(e);
        snprintf(r->body, sizeof(r->body), "%.*s", SLICE_FMT(b));
        struct buf h = BUF_INIT;
        cache_entry_head(c, e, &h);
        snprintf(r->head, sizeof(r->head), "%s", h.ptr ? h.ptr : "");
        buf_free(&h);
        cache_entry_release(e);
        return;
    }
    r->status = up->status;
    snprintf(r->body, sizeof(r->body), "%s", up->body ? up->body : "");
    if (up->body)
        cache_fill_body(f, slice_cstr(up->body));
    cache_fill_end(f, true);
}

static struct result fetch_as(struct cache *c, const char *method, const char *target,
                              const char *reqh, struct upstream up)
{
    struct result r;
    memset(&r, 0, sizeof(r));
    struct hs qh;
    hs_parse(&qh, reqh);
    struct cache_req rq = {slice_cstr(method), SLICE_LIT("example.com"), slice_cstr(target), qh.h,
                           qh.n};
    struct cache_lookup lk;
    cache_lookup(c, &rq, &lk, wake, NULL);
    r.outcome = lk.outcome;
    snprintf(r.cond, sizeof(r.cond), "%.*s", SLICE_FMT(lk.conditional));
    if (lk.outcome == CACHE_HIT || lk.outcome == CACHE_STALE) {
        r.from_cache = true;
        r.status = cache_entry_status(lk.entry);
        struct slice b = cache_entry_body(lk.entry);
        snprintf(r.body, sizeof(r.body), "%.*s", SLICE_FMT(b));
        struct buf h = BUF_INIT;
        cache_entry_head(c, lk.entry, &h);
        snprintf(r.head, sizeof(r.head), "%s", h.ptr ? h.ptr : "");
        buf_free(&h);
        if (lk.fill) {
            struct result bg;
            respond(c, lk.fill, &up, &bg);
        }
    } else if (lk.outcome == CACHE_MISS || lk.outcome == CACHE_REVALIDATE) {
        respond(c, lk.fill, &up, &r);
        lk.status.fwd_status = up.status;
        lk.status.stored = r.action == CACHE_FILL_STORE;
    } else if (lk.outcome == CACHE_PASS) {
        upstream_calls++;
        r.status = up.status;
        struct hs rh;
        hs_parse(&rh, up.headers);
        struct cache_resp resp = {up.status, rh.h, rh.n};
        cache_invalidate(c, &rq, &resp);
    }
    struct buf cs = BUF_INIT;
    cache_status_format(c, &lk.status, &cs);
    snprintf(r.cache_status, sizeof(r.cache_status), "%s", cs.ptr ? cs.ptr : "");
    buf_free(&cs);
    cache_entry_release(lk.entry);
    return r;
}

static struct result fetch(struct cache *c, const char *target, const char *reqh,
                           struct upstream up)
{
    return fetch_as(c, "GET", target, reqh, up);
}

#define OK200(h) ((struct upstream){200, (h), "body"})

/* ---- storing and freshness (RFC 9111 3, 4.2) ---- */

Test(cache, max_age_response_is_stored_and_served_fresh)
{
    struct cache *c = mk(1 << 20);
    struct result r = fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60"));
    cr_assert_eq(r.outcome, CACHE_MISS);
    cr_assert_eq(r.action, CACHE_FILL_STORE);
    fake_now += 59;
    r = fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60"));
    cr_assert_eq(r.outcome, CACHE_HIT);
    cr_assert_str_eq(r.body, "body");
    cr_assert_eq(upstream_calls, 1);
    cr_assert(strstr(r.head, "Age: 59\r\n"), "%s", r.head);
    cache_free(c);
}

Test(cache, response_is_stale_once_age_reaches_max_age)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60"));
    fake_now += 60;
    struct result r = fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60"));
    cr_assert_eq(r.outcome, CACHE_MISS);
    cr_assert_str_eq(r.cache_status, "cruder; fwd=stale; fwd-status=200; ttl=0; stored");
    cache_free(c);
}

Test(cache, s_maxage_overrides_max_age_in_a_shared_cache)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=1, s-maxage=100"));
    fake_now += 50;
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_HIT);
    cache_free(c);
}

Test(cache, expires_minus_date_is_the_lifetime)
{
    struct cache *c = mk(1 << 20);
    char h[256], d1[30], d2[30];
    time_format_http((time_t)fake_now, d1);
    time_format_http((time_t)fake_now + 30, d2);
    snprintf(h, sizeof(h), "Date: %s\nExpires: %s", d1, d2);
    fetch(c, "/a", NULL, OK200(h));
    fake_now += 29;
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_HIT);
    fake_now += 1;
    cr_assert_neq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_HIT);
    cache_free(c);
}

Test(cache, max_age_wins_over_expires)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL,
          OK200("Expires: Thu, 01 Jan 1970 00:00:00 GMT\nCache-Control: max-age=60"));
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_HIT);
    cache_free(c);
}

Test(cache, malformed_expires_means_already_expired)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Expires: 0\nETag: \"v1\""));
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_REVALIDATE);
    cache_free(c);
}

Test(cache, malformed_date_means_stale)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Date: yesterday\nCache-Control: max-age=60\nETag: \"v1\""));
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_REVALIDATE);
    cache_free(c);
}

Test(cache, malformed_age_means_stale)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Age: 1x\nCache-Control: max-age=60\nETag: \"v1\""));
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_REVALIDATE);
    cache_free(c);
}

Test(cache, received_age_counts_towards_current_age)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Age: 50\nCache-Control: max-age=60"));
    struct result r = fetch(c, "/a", NULL, OK200(""));
    cr_assert_eq(r.outcome, CACHE_HIT);
    cr_assert(strstr(r.head, "Age: 50\r\n"), "%s", r.head);
    fake_now += 10;
    cr_assert_neq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_HIT);
    cache_free(c);
}

Test(cache, invalid_max_age_value_means_stale)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=abc\nETag: \"v\""));
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_REVALIDATE);
    cache_free(c);
}

Test(cache, conflicting_max_age_values_mean_stale)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL,
          OK200("Cache-Control: max-age=60\nCache-Control: max-age=30\nETag: \"v\""));
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_REVALIDATE);
    cache_free(c);
}

Test(cache, heuristic_freshness_is_a_tenth_of_the_last_modified_age)
{
    struct cache *c = mk(1 << 20);
    char h[128], lm[30];
    time_format_http((time_t)fake_now - 1000, lm);
    snprintf(h, sizeof(h), "Last-Modified: %s", lm);
    fetch(c, "/a", NULL, OK200(h));
    fake_now += 99;
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_HIT);
    fake_now += 1;
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_REVALIDATE);
    cache_free(c);
}

Test(cache, no_heuristic_freshness_for_a_302)
{
    struct cache *c = mk(1 << 20);
    struct result r =
        fetch(c, "/a", NULL,
              (struct upstream){302, "Last-Modified: Mon, 01 Jan 2001 00:00:00 GMT", NULL});
    cr_assert_eq(r.action, CACHE_FILL_PASS);
    cache_free(c);
}

Test(cache, public_allows_heuristics_for_any_status)
{
    struct cache *c = mk(1 << 20);
    struct result r = fetch(
        c, "/a", NULL,
        (struct upstream){
            302, "Cache-Control: public\nLast-Modified: Mon, 01 Jan 2001 00:00:00 GMT", NULL});
    cr_assert_eq(r.action, CACHE_FILL_STORE);
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_HIT);
    cache_free(c);
}

Test(cache, status_206_and_304_are_never_stored)
{
    struct cache *c = mk(1 << 20);
    cr_assert_eq(
        fetch(c, "/a", NULL, (struct upstream){206, "Cache-Control: max-age=60", NULL}).action,
        CACHE_FILL_PASS);
    cr_assert_eq(
        fetch(c, "/b", NULL, (struct upstream){304, "Cache-Control: max-age=60", NULL}).action,
        CACHE_FILL_PASS);
    cache_free(c);
}

Test(cache, unsafe_and_other_methods_pass)
{
    struct cache *c = mk(1 << 20);
    struct result r = fetch_as(c, "POST", "/a", NULL, OK200("Cache-Control: max-age=60"));
    cr_assert_eq(r.outcome, CACHE_PASS);
    cr_assert_str_eq(r.cache_status, "cruder; fwd=method");
    cache_free(c);
}

/* ---- response directives (RFC 9111 5.2.2) ---- */

Test(cache, no_store_response_is_not_stored)
{
    struct cache *c = mk(1 << 20);
    cr_assert_eq(fetch(c, "/a", NULL, OK200("Cache-Control: no-store, max-age=60")).action,
                 CACHE_FILL_PASS);
    cr_assert_neq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_HIT);
    cache_free(c);
}

Test(cache, private_response_is_not_stored_by_a_shared_cache)
{
    struct cache *c = mk(1 << 20);
    cr_assert_eq(fetch(c, "/a", NULL, OK200("Cache-Control: private, max-age=60")).action,
                 CACHE_FILL_PASS);
    cache_free(c);
}

Test(cache, qualified_private_strips_the_named_fields)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: private=\"X-User\", max-age=60\nX-User: ann"));
    struct result r = fetch(c, "/a", NULL, OK200(""));
    cr_assert_eq(r.outcome, CACHE_HIT);
    cr_assert_null(strstr(r.head, "X-User: ann"), "%s", r.head);
    cache_free(c);
}

Test(cache, no_cache_response_is_stored_but_validated_each_time)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: no-cache, max-age=60\nETag: \"v1\""));
    struct result r =
        fetch(c, "/a", NULL, (struct upstream){304, "Cache-Control: no-cache, max-age=60", NULL});
    cr_assert_eq(r.outcome, CACHE_REVALIDATE);
    cr_assert_str_eq(r.cond, "If-None-Match: \"v1\"\r\n");
    cr_assert_eq(r.action, CACHE_FILL_USE_STORED);
    cr_assert_str_eq(r.body, "body");
    cache_free(c);
}

Test(cache, qualified_no_cache_serves_without_the_named_fields)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL,
          OK200("Cache-Control: no-cache=\"Set-Cookie2, X-Token\", s-maxage=60\nX-Token: "
                "t\nX-Keep: k"));
    struct result r = fetch(c, "/a", NULL, OK200(""));
    cr_assert_eq(r.outcome, CACHE_HIT);
    cr_assert_null(strstr(r.head, "X-Token: t"));
    cr_assert(strstr(r.head, "X-Keep: k\r\n"));
    cache_free(c);
}

Test(cache, must_revalidate_forbids_serving_stale)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=1, must-revalidate, stale-if-error=600"));
    fake_now += 10;
    struct result r =
        fetch(c, "/a", "Cache-Control: max-stale=600", (struct upstream){503, "", "down"});
    cr_assert_eq(r.outcome, CACHE_MISS);
    cr_assert_eq(r.action, CACHE_FILL_PASS);
    cr_assert_eq(r.status, 503);
    cache_free(c);
}

Test(cache, proxy_revalidate_forbids_serving_stale_in_a_shared_cache)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=1, proxy-revalidate"));
    fake_now += 10;
    cr_assert_neq(fetch(c, "/a", "Cache-Control: max-stale", OK200("")).outcome, CACHE_STALE);
    cache_free(c);
}

Test(cache, s_maxage_also_forbids_serving_stale)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: s-maxage=1"));
    fake_now += 10;
    cr_assert_neq(fetch(c, "/a", "Cache-Control: max-stale", OK200("")).outcome, CACHE_STALE);
    cache_free(c);
}

Test(cache, must_understand_overrides_no_store_for_understood_codes)
{
    struct cache *c = mk(1 << 20);
    cr_assert_eq(
        fetch(c, "/a", NULL, OK200("Cache-Control: must-understand, no-store, max-age=60")).action,
        CACHE_FILL_STORE);
    cr_assert_eq(
        fetch(c, "/b", NULL,
              (struct upstream){299, "Cache-Control: must-understand, no-store, max-age=60", NULL})
            .action,
        CACHE_FILL_PASS);
    cache_free(c);
}

Test(cache, authorization_requests_are_stored_only_when_explicitly_shared)
{
    struct cache *c = mk(1 << 20);
    const char *auth = "Authorization: Bearer x";
    cr_assert_eq(fetch(c, "/a", auth, OK200("Cache-Control: max-age=60")).action, CACHE_FILL_PASS);
    cr_assert_eq(fetch(c, "/b", auth, OK200("Cache-Control: public, max-age=60")).action,
                 CACHE_FILL_STORE);
    cr_assert_eq(fetch(c, "/c", auth, OK200("Cache-Control: s-maxage=60")).action,
                 CACHE_FILL_STORE);
    cr_assert_eq(fetch(c, "/d", auth, OK200("Cache-Control: max-age=60, must-revalidate")).action,
                 CACHE_FILL_STORE);
    cache_free(c);
}

Test(cache, set_cookie_responses_are_stored_only_when_public)
{
    struct cache *c = mk(1 << 20);
    cr_assert_eq(fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60\nSet-Cookie: s=1")).action,
                 CACHE_FILL_PASS);
    cr_assert_eq(
        fetch(c, "/b", NULL, OK200("Cache-Control: public, max-age=60\nSet-Cookie: s=1")).action,
        CACHE_FILL_STORE);
    cache_free(c);
}

Test(cache, immutable_ignores_a_reload_but_not_a_forced_one)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=600, immutable\nETag: \"i\""));
    fake_now += 5;
    cr_assert_eq(fetch(c, "/a", "Cache-Control: max-age=0", OK200("")).outcome, CACHE_HIT);
    cr_assert_eq(fetch(c, "/a", "Cache-Control: no-cache", OK200("")).outcome, CACHE_REVALIDATE);
    cache_free(c);
}

Test(cache, hop_by_hop_and_framing_fields_are_not_stored)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL,
          OK200("Cache-Control: max-age=60\nConnection: X-Hop\nX-Hop: 1\nKeep-Alive: t=5\n"
                "Content-Length: 4\nX-End: 1"));
    struct result r = fetch(c, "/a", NULL, OK200(""));
    cr_assert_eq(r.outcome, CACHE_HIT);
    cr_assert_null(strstr(r.head, "X-Hop"));
    cr_assert_null(strstr(r.head, "Keep-Alive"));
    cr_assert_null(strstr(r.head, "Content-Length"));
    cr_assert(strstr(r.head, "X-End: 1\r\n"));
    cache_free(c);
}

/* ---- request directives (RFC 9111 5.2.1) ---- */

Test(cache, request_no_store_is_not_stored_but_may_hit)
{
    struct cache *c = mk(1 << 20);
    cr_assert_eq(
        fetch(c, "/a", "Cache-Control: no-store", OK200("Cache-Control: max-age=60")).action,
        CACHE_FILL_PASS);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60"));
    cr_assert_eq(fetch(c, "/a", "Cache-Control: no-store", OK200("")).outcome, CACHE_HIT);
    cache_free(c);
}

Test(cache, request_no_cache_forwards_with_validators)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL,
          OK200("Cache-Control: max-age=60\nETag: \"e\"\nLast-Modified: Mon, 01 Jan 2001 00:00:00 "
                "GMT"));
    struct result r = fetch(c, "/a", "Cache-Control: no-cache", (struct upstream){304, "", NULL});
    cr_assert_eq(r.outcome, CACHE_REVALIDATE);
    cr_assert_str_eq(
        r.cond, "If-None-Match: \"e\"\r\nIf-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n");
    cr_assert_eq(r.action, CACHE_FILL_USE_STORED);
    cache_free(c);
}

Test(cache, request_max_age_limits_the_acceptable_age)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=600"));
    fake_now += 30;
    cr_assert_eq(fetch(c, "/a", "Cache-Control: max-age=40", OK200("")).outcome, CACHE_HIT);
    struct result r =
        fetch(c, "/a", "Cache-Control: max-age=20", OK200("Cache-Control: max-age=600"));
    cr_assert_eq(r.outcome, CACHE_MISS);
    cr_assert(strstr(r.cache_status, "fwd=request"), "%s", r.cache_status);
    cache_free(c);
}

Test(cache, request_min_fresh_needs_that_much_freshness_left)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=100"));
    fake_now += 50;
    cr_assert_eq(fetch(c, "/a", "Cache-Control: min-fresh=40", OK200("")).outcome, CACHE_HIT);
    cr_assert_eq(fetch(c, "/a", "Cache-Control: min-fresh=60", OK200("")).outcome, CACHE_MISS);
    cache_free(c);
}

Test(cache, request_max_stale_accepts_bounded_staleness)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=10"));
    fake_now += 40;
    struct result r = fetch(c, "/a", "Cache-Control: max-stale=30", OK200(""));
    cr_assert_eq(r.outcome, CACHE_STALE);
    cr_assert_str_eq(r.cache_status, "cruder; hit; ttl=-30");
    cr_assert_eq(fetch(c, "/a", "Cache-Control: max-stale=29", OK200("")).outcome, CACHE_MISS);
    cache_free(c);
}

Test(cache, request_max_stale_without_value_accepts_any_staleness)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=10"));
    fake_now += 100000;
    cr_assert_eq(fetch(c, "/a", "Cache-Control: max-stale", OK200("")).outcome, CACHE_STALE);
    cache_free(c);
}

Test(cache, only_if_cached_answers_504_without_a_stored_response)
{
    struct cache *c = mk(1 << 20);
    struct result r = fetch(c, "/a", "Cache-Control: only-if-cached", OK200(""));
    cr_assert_eq(r.outcome, CACHE_GATEWAY_TIMEOUT);
    cr_assert_eq(upstream_calls, 0);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60"));
    cr_assert_eq(fetch(c, "/a", "Cache-Control: only-if-cached", OK200("")).outcome, CACHE_HIT);
    cache_free(c);
}

/* ---- Vary (RFC 9111 4.1) ---- */

Test(cache, vary_selects_by_the_request_fields)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", "Accept-Encoding: gzip",
          OK200("Cache-Control: max-age=60\nVary: Accept-Encoding"));
    struct result r = fetch(c, "/a", "Accept-Encoding: br",
                            OK200("Cache-Control: max-age=60\nVary: accept-encoding"));
    cr_assert_eq(r.outcome, CACHE_MISS);
    cr_assert(strstr(r.cache_status, "fwd=vary-miss"), "%s", r.cache_status);
    cr_assert_eq(fetch(c, "/a", "Accept-Encoding: gzip", OK200("")).outcome, CACHE_HIT);
    cr_assert_eq(fetch(c, "/a", "Accept-Encoding: br", OK200("")).outcome, CACHE_HIT);
    cache_free(c);
}

Test(cache, vary_values_are_normalised)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", "Accept-Encoding: gzip, br",
          OK200("Cache-Control: max-age=60\nVary: Accept-Encoding"));
    cr_assert_eq(fetch(c, "/a", "Accept-Encoding: BR,gzip", OK200("")).outcome, CACHE_HIT);
    cr_assert_eq(fetch(c, "/a", "Accept-Encoding: br\nAccept-Encoding: gzip", OK200("")).outcome,
                 CACHE_HIT);
    cache_free(c);
}

Test(cache, vary_absent_field_matches_only_absent)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60\nVary: X-Mode"));
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_HIT);
    cr_assert_eq(fetch(c, "/a", "X-Mode: ", OK200("")).outcome, CACHE_MISS);
    cache_free(c);
}

Test(cache, vary_star_is_never_stored)
{
    struct cache *c = mk(1 << 20);
    cr_assert_eq(fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60\nVary: Accept, *")).action,
                 CACHE_FILL_PASS);
    cache_free(c);
}

/* ---- validation (RFC 9111 4.3) ---- */

Test(cache, a_304_freshens_and_updates_the_stored_fields)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL,
          OK200("Cache-Control: max-age=10\nETag: \"v1\"\nX-Version: 1\nX-Other: o"));
    fake_now += 20;
    struct result r = fetch(
        c, "/a", NULL,
        (struct upstream){304, "Cache-Control: max-age=100\nETag: \"v1\"\nX-Version: 2", NULL});
    cr_assert_eq(r.outcome, CACHE_REVALIDATE);
    cr_assert_eq(r.action, CACHE_FILL_USE_STORED);
    cr_assert_str_eq(r.body, "body");
    cr_assert(strstr(r.head, "X-Version: 2\r\n"), "%s", r.head);
    cr_assert_null(strstr(r.head, "X-Version: 1"));
    cr_assert(strstr(r.head, "X-Other: o\r\n"));
    fake_now += 50;
    r = fetch(c, "/a", NULL, OK200(""));
    cr_assert_eq(r.outcome, CACHE_HIT);
    cr_assert(strstr(r.head, "X-Version: 2\r\n"));
    cache_free(c);
}

Test(cache, a_200_to_a_revalidation_replaces_the_stored_response)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=10\nETag: \"v1\""));
    fake_now += 20;
    fetch(c, "/a", NULL, (struct upstream){200, "Cache-Control: max-age=10\nETag: \"v2\"", "new"});
    struct result r = fetch(c, "/a", NULL, OK200(""));
    cr_assert_eq(r.outcome, CACHE_HIT);
    cr_assert_str_eq(r.body, "new");
    cache_free(c);
}

Test(cache, client_conditionals_are_answered_from_the_stored_response)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL,
          OK200("Cache-Control: max-age=60\nETag: W/\"v1\"\nLast-Modified: Mon, 01 Jan 2001 "
                "00:00:00 GMT"));
    struct hs qh;
    struct cache_req rq = {SLICE_LIT("GET"), SLICE_LIT("example.com"), SLICE_LIT("/a"), qh.h, 0};
    struct cache_lookup lk;
    cache_lookup(c, &rq, &lk, NULL, NULL);
    cr_assert_eq(lk.outcome, CACHE_HIT);
    hs_parse(&qh, "If-None-Match: \"x\", \"v1\"");
    rq.nheaders = qh.n;
    cr_assert(cache_entry_not_modified(lk.entry, &rq));
    hs_parse(&qh, "If-None-Match: \"x\"");
    cr_assert_not(cache_entry_not_modified(lk.entry, &rq));
    hs_parse(&qh, "If-Modified-Since: Tue, 02 Jan 2001 00:00:00 GMT");
    cr_assert(cache_entry_not_modified(lk.entry, &rq));
    hs_parse(&qh, "If-Modified-Since: Sun, 31 Dec 2000 00:00:00 GMT");
    cr_assert_not(cache_entry_not_modified(lk.entry, &rq));
    cache_entry_release(lk.entry);
    cache_free(c);
}

/* ---- invalidation (RFC 9111 4.4) ---- */

Test(cache, unsafe_method_invalidates_the_target_uri)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/r/1", NULL, OK200("Cache-Control: max-age=60"));
    fetch_as(c, "PATCH", "/r/1", NULL, (struct upstream){200, "", NULL});
    cr_assert_eq(fetch(c, "/r/1", NULL, OK200("")).outcome, CACHE_MISS);
    cache_free(c);
}

Test(cache, unknown_methods_are_unsafe)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/r/1", NULL, OK200("Cache-Control: max-age=60"));
    fetch_as(c, "FROB", "/r/1", NULL, (struct upstream){204, "", NULL});
    cr_assert_eq(fetch(c, "/r/1", NULL, OK200("")).outcome, CACHE_MISS);
    cache_free(c);
}

Test(cache, error_answers_do_not_invalidate)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/r/1", NULL, OK200("Cache-Control: max-age=60"));
    fetch_as(c, "DELETE", "/r/1", NULL, (struct upstream){403, "", NULL});
    cr_assert_eq(fetch(c, "/r/1", NULL, OK200("")).outcome, CACHE_HIT);
    cache_free(c);
}

Test(cache, location_and_content_location_of_the_same_host_are_invalidated)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/r/1", NULL, OK200("Cache-Control: max-age=60"));
    fetch(c, "/r/2", NULL, OK200("Cache-Control: max-age=60"));
    fetch(c, "/r/3", NULL, OK200("Cache-Control: max-age=60"));
    fetch_as(c, "POST", "/r/", NULL,
             (struct upstream){201, "Location: http://EXAMPLE.com/r/1\nContent-Location: 2", NULL});
    cr_assert_eq(fetch(c, "/r/1", NULL, OK200("")).outcome, CACHE_MISS);
    cr_assert_eq(fetch(c, "/r/2", NULL, OK200("")).outcome, CACHE_MISS);
    cr_assert_eq(fetch(c, "/r/3", NULL, OK200("")).outcome, CACHE_HIT);
    fetch_as(c, "POST", "/x", NULL, (struct upstream){201, "Location: http://other.org/r/3", NULL});
    cr_assert_eq(fetch(c, "/r/3", NULL, OK200("")).outcome, CACHE_HIT);
    cache_free(c);
}

/* A reference is resolved as a client would (RFC 3986 5.2), dot segments
 * removed, before its stored response is dropped. */
Test(cache, location_with_dot_segments_is_resolved_before_invalidating)
{
    struct cache *c = mk(1 << 20);
    const char *paths[] = {"/a/up", "/a/b/c", "/top", "/a/d?q=1"};
    for (size_t i = 0; i < 4; i++)
        fetch(c, paths[i], NULL, OK200("Cache-Control: max-age=60"));
    fetch_as(c, "POST", "/a/b/post", NULL,
             (struct upstream){201, "Location: ../up\nContent-Location: ./x/../c", NULL});
    cr_assert_eq(fetch(c, "/a/up", NULL, OK200("")).outcome, CACHE_MISS);
    cr_assert_eq(fetch(c, "/a/b/c", NULL, OK200("")).outcome, CACHE_MISS);
    fetch_as(
        c, "PUT", "/a/b/post", NULL,
        (struct upstream){200, "Location: /a/../../top\nContent-Location: ../.././a/d?q=1", NULL});
    cr_assert_eq(fetch(c, "/top", NULL, OK200("")).outcome, CACHE_MISS);
    cr_assert_eq(fetch(c, "/a/d?q=1", NULL, OK200("")).outcome, CACHE_MISS);
    cache_free(c);
}

/* ---- HEAD (RFC 9110 9.3.2, RFC 9111 4) ---- */

Test(cache, head_is_answered_from_a_stored_get)
{
    struct cache *c = mk(1 << 20);
    cr_assert_eq(fetch_as(c, "HEAD", "/a", NULL, OK200("Cache-Control: max-age=60")).outcome,
                 CACHE_PASS);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60"));
    cr_assert_eq(fetch_as(c, "HEAD", "/a", NULL, OK200("")).outcome, CACHE_HIT);
    cache_free(c);
}

/* ---- RFC 5861 ---- */

Test(cache, stale_while_revalidate_serves_stale_and_refreshes_once)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL,
          OK200("Cache-Control: max-age=10, stale-while-revalidate=30\nETag: \"1\""));
    fake_now += 20;
    struct result r = fetch(
        c, "/a", NULL, (struct upstream){200, "Cache-Control: max-age=10\nETag: \"2\"", "fresh"});
    cr_assert_eq(r.outcome, CACHE_STALE);
    cr_assert_str_eq(r.body, "body");
    cr_assert_str_eq(r.cond, "If-None-Match: \"1\"\r\n");
    r = fetch(c, "/a", NULL, OK200(""));
    cr_assert_eq(r.outcome, CACHE_HIT);
    cr_assert_str_eq(r.body, "fresh");
    cache_free(c);
}

Test(cache, stale_while_revalidate_window_ends)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL,
          OK200("Cache-Control: max-age=10, stale-while-revalidate=30\nETag: \"1\""));
    fake_now += 41;
    cr_assert_eq(fetch(c, "/a", NULL, (struct upstream){304, "", NULL}).outcome, CACHE_REVALIDATE);
    cache_free(c);
}

Test(cache, stale_if_error_serves_stale_on_5xx)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=10, stale-if-error=60"));
    fake_now += 30;
    struct result r = fetch(c, "/a", NULL, (struct upstream){503, "", "down"});
    cr_assert_eq(r.action, CACHE_FILL_STALE);
    cr_assert_str_eq(r.body, "body");
    fake_now += 100;
    r = fetch(c, "/a", NULL, (struct upstream){503, "", "down"});
    cr_assert_eq(r.action, CACHE_FILL_PASS);
    cr_assert_str_eq(r.body, "down");
    cache_free(c);
}

Test(cache, stale_if_error_in_the_request_and_unreachable_upstream)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=10"));
    fake_now += 30;
    struct hs qh;
    hs_parse(&qh, "Cache-Control: stale-if-error=60");
    struct cache_req rq = {SLICE_LIT("GET"), SLICE_LIT("example.com"), SLICE_LIT("/a"), qh.h, qh.n};
    struct cache_lookup lk;
    cache_lookup(c, &rq, &lk, NULL, NULL);
    cr_assert_eq(lk.outcome, CACHE_MISS);
    struct cache_entry *e = cache_fill_error(lk.fill);
    cr_assert_not_null(e);
    cr_assert_eq(cache_entry_status(e), 200);
    cache_entry_release(e);
    cache_lookup(
        c,
        &(struct cache_req){SLICE_LIT("GET"), SLICE_LIT("example.com"), SLICE_LIT("/a"), NULL, 0},
        &lk, NULL, NULL);
    cr_assert_null(cache_fill_error(lk.fill));
    cache_free(c);
}

/* ---- targeted fields (RFC 9213) ---- */

Test(cache, cdn_cache_control_replaces_cache_control)
{
    struct cache *c = mk(1 << 20);
    cr_assert_eq(
        fetch(c, "/a", NULL, OK200("Cache-Control: no-store\nCDN-Cache-Control: max-age=60"))
            .action,
        CACHE_FILL_STORE);
    cr_assert_eq(
        fetch(c, "/b", NULL, OK200("Cache-Control: max-age=60\nCDN-Cache-Control: no-store"))
            .action,
        CACHE_FILL_PASS);
    cache_free(c);
}

Test(cache, the_gateway_specific_field_comes_first_and_is_not_stored)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("CDN-Cache-Control: no-store\nCruder-Cache-Control: max-age=60"));
    struct result r = fetch(c, "/a", NULL, OK200(""));
    cr_assert_eq(r.outcome, CACHE_HIT);
    cr_assert_null(strstr(r.head, "Cruder-Cache-Control"));
    cr_assert(strstr(r.head, "CDN-Cache-Control: no-store"));
    cache_free(c);
}

Test(cache, an_invalid_targeted_field_is_ignored)
{
    struct cache *c = mk(1 << 20);
    cr_assert_eq(fetch(c, "/a", NULL,
                       OK200("Cache-Control: max-age=60\nCDN-Cache-Control: max-age=\"x, no-store"))
                     .action,
                 CACHE_FILL_STORE);
    cache_free(c);
}

Test(cache, targeted_fields_ignore_expires)
{
    struct cache *c = mk(1 << 20);
    cr_assert_eq(fetch(c, "/a", NULL,
                       OK200("Expires: Thu, 01 Jan 2037 00:00:00 GMT\nCDN-Cache-Control: public"))
                     .action,
                 CACHE_FILL_PASS);
    cache_free(c);
}

/* ---- Cache-Status (RFC 9211) ---- */

Test(cache, cache_status_names_hits_and_forwards)
{
    struct cache *c = mk(1 << 20);
    struct result r = fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60"));
    cr_assert_str_eq(r.cache_status, "cruder; fwd=uri-miss; fwd-status=200; stored");
    fake_now += 10;
    r = fetch(c, "/a", NULL, OK200(""));
    cr_assert_str_eq(r.cache_status, "cruder; hit; ttl=50");
    r = fetch(c, "/b", "Cache-Control: only-if-cached", OK200(""));
    cr_assert_str_eq(r.cache_status, "cruder; detail=only-if-cached");
    cache_free(c);
}

/* ---- coalescing, storage bounds, purge ---- */

Test(cache, concurrent_misses_wait_for_one_fill)
{
    struct cache *c = mk(1 << 20);
    struct cache_req rq = {SLICE_LIT("GET"), SLICE_LIT("example.com"), SLICE_LIT("/a"), NULL, 0};
    struct cache_lookup a, b, d;
    cache_lookup(c, &rq, &a, wake, NULL);
    cr_assert_eq(a.outcome, CACHE_MISS);
    cache_lookup(c, &rq, &b, wake, NULL);
    cache_lookup(c, &rq, &d, wake, NULL);
    cr_assert_eq(b.outcome, CACHE_WAIT);
    cr_assert_eq(d.outcome, CACHE_WAIT);
    cr_assert(b.status.collapsed);
    struct hs rh;
    hs_parse(&rh, "Cache-Control: max-age=60");
    struct cache_entry *e;
    cr_assert_eq(cache_fill_response(a.fill, &(struct cache_resp){200, rh.h, rh.n}, &e),
                 CACHE_FILL_STORE);
    cache_fill_body(a.fill, SLICE_LIT("x"));
    cr_assert_eq(wakes, 0);
    cache_fill_end(a.fill, true);
    cr_assert_eq(wakes, 2);
    cache_lookup(c, &rq, &b, wake, NULL);
    cr_assert_eq(b.outcome, CACHE_HIT);
    cache_entry_release(b.entry);
    struct cache_stats st;
    cache_stats(c, &st);
    cr_assert_eq(st.coalesced, 2);
    cache_free(c);
}

Test(cache, an_unstorable_answer_stops_coalescing_for_a_while)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: private"));
    struct cache_req rq = {SLICE_LIT("GET"), SLICE_LIT("example.com"), SLICE_LIT("/a"), NULL, 0};
    struct cache_lookup a, b;
    cache_lookup(c, &rq, &a, wake, NULL);
    cache_lookup(c, &rq, &b, wake, NULL);
    cr_assert_eq(a.outcome, CACHE_MISS);
    cr_assert_eq(b.outcome, CACHE_MISS);
    cache_fill_end(a.fill, false);
    cache_fill_end(b.fill, false);
    cache_free(c);
}

Test(cache, an_incomplete_body_is_not_stored)
{
    struct cache *c = mk(1 << 20);
    struct cache_req rq = {SLICE_LIT("GET"), SLICE_LIT("example.com"), SLICE_LIT("/a"), NULL, 0};
    struct cache_lookup a;
    cache_lookup(c, &rq, &a, wake, NULL);
    struct hs rh;
    hs_parse(&rh, "Cache-Control: max-age=60");
    struct cache_entry *e;
    cache_fill_response(a.fill, &(struct cache_resp){200, rh.h, rh.n}, &e);
    cache_fill_body(a.fill, SLICE_LIT("par"));
    cache_fill_end(a.fill, false);
    cr_assert_eq(fetch(c, "/a", NULL, OK200("")).outcome, CACHE_MISS);
    cache_free(c);
}

Test(cache, storage_stays_within_the_byte_bound)
{
    struct cache *c = mk(64 * 1024);
    char body[1000];
    memset(body, 'x', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    for (int i = 0; i < 500; i++) {
        char t[32];
        snprintf(t, sizeof(t), "/o/%d", i);
        fetch(c, t, NULL, (struct upstream){200, "Cache-Control: max-age=600", body});
        struct cache_stats st;
        cache_stats(c, &st);
        cr_assert_leq(st.bytes, 64 * 1024);
    }
    struct cache_stats st;
    cache_stats(c, &st);
    cr_assert_gt(st.evictions, 400);
    cr_assert_gt(st.entries, 20);
    cache_free(c);
}

Test(cache, objects_over_the_object_limit_are_not_stored)
{
    struct cache *c = mk(8 * 1024);
    char body[2000];
    memset(body, 'x', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    fetch(c, "/big", NULL, (struct upstream){200, "Cache-Control: max-age=600", body});
    cr_assert_eq(fetch(c, "/big", NULL, OK200("")).outcome, CACHE_MISS);
    cache_free(c);
}

Test(cache, purge_by_url_and_by_tag)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", "Accept-Encoding: gzip",
          OK200("Cache-Control: max-age=60\nVary: Accept-Encoding"));
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60\nVary: Accept-Encoding"));
    fetch(c, "/b", NULL, OK200("Cache-Control: max-age=60\nCache-Tag: posts, post-1"));
    fetch(c, "/c", NULL, OK200("Cache-Control: max-age=60\nCache-Tag: Post-2,posts"));
    cr_assert_eq(cache_purge_url(c, SLICE_LIT("Example.com"), SLICE_LIT("/a")), 2);
    cr_assert_eq(cache_purge_tag(c, SLICE_LIT("post-1")), 1);
    cr_assert_eq(fetch(c, "/c", NULL, OK200("")).outcome, CACHE_HIT);
    cr_assert_eq(cache_purge_tag(c, SLICE_LIT("posts")), 1);
    cr_assert_eq(fetch(c, "/c", NULL, OK200("")).outcome, CACHE_MISS);
    cache_free(c);
}

Test(cache, metrics_render_counts)
{
    struct cache *c = mk(1 << 20);
    fetch(c, "/a", NULL, OK200("Cache-Control: max-age=60"));
    fetch(c, "/a", NULL, OK200(""));
    struct buf out = BUF_INIT;
    cache_metrics_render(c, &out);
    cr_assert(strstr(out.ptr, "\ncruder_gateway_cache_hits_total 1\n"), "%s", out.ptr);
    cr_assert(strstr(out.ptr, "\ncruder_gateway_cache_misses_total 1\n"));
    cr_assert(strstr(out.ptr, "\ncruder_gateway_cache_hit_ratio 0.5000\n"));
    buf_free(&out);
    cache_free(c);
}

/* ---- parsers ---- */

Test(cache_parse, cache_control_directives)
{
    struct cache_cc cc;
    cache_cc_init(&cc);
    cr_assert_eq(cache_cc_parse(&cc, SLICE_LIT(" Max-Age=\"5\" ,, no-cache=\"a, b\",PUBLIC,x=y")),
                 0);
    cr_assert_eq(cc.max_age, 5);
    cr_assert(cc.flags & CACHE_CC_PUBLIC);
    cr_assert_not(cc.flags & CACHE_CC_NO_CACHE);
    cr_assert_eq(cc.no_cache_fields.len, 4);
    cache_cc_init(&cc);
    cr_assert_eq(cache_cc_parse(&cc, SLICE_LIT("max-age=99999999999999999999")), 0);
    cr_assert_eq(cc.max_age, CACHE_DELTA_MAX);
    cache_cc_init(&cc);
    cr_assert_eq(cache_cc_parse(&cc, SLICE_LIT("max-age=\"5")), -1);
    cache_cc_init(&cc);
    cr_assert_eq(cache_cc_parse(&cc, SLICE_LIT("max-age=-1")), 0);
    cr_assert_eq(cc.max_age, CACHE_CC_INVALID);
    cache_cc_init(&cc);
    cr_assert_eq(cache_cc_parse(&cc, SLICE_LIT("max-age=1 2")), -1);
    cache_cc_init(&cc);
    cache_cc_parse(&cc, SLICE_LIT("max-age"));
    cr_assert_eq(cc.max_age, CACHE_CC_INVALID);
}

Test(cache_parse, http_dates_in_all_three_forms)
{
    int64_t t;
    cr_assert_eq(cache_http_date(SLICE_LIT("Sun, 06 Nov 1994 08:49:37 GMT"), &t), 0);
    cr_assert_eq(t, 784111777);
    cr_assert_eq(cache_http_date(SLICE_LIT("Sunday, 06-Nov-94 08:49:37 GMT"), &t), 0);
    cr_assert_eq(t, 784111777);
    cr_assert_eq(cache_http_date(SLICE_LIT("Sun Nov  6 08:49:37 1994"), &t), 0);
    cr_assert_eq(t, 784111777);
    cr_assert_eq(cache_http_date(SLICE_LIT("Sun, 06 Nov 1994 08:49:37 UTC"), &t), -1);
    cr_assert_eq(cache_http_date(SLICE_LIT("Sun, 31 Feb 1994 08:49:37 GMT"), &t), -1);
    cr_assert_eq(cache_http_date(SLICE_LIT("Sun, 06 Nov 1994 24:49:37 GMT"), &t), -1);
    cr_assert_eq(cache_http_date(SLICE_LIT("0"), &t), -1);
    cr_assert_eq(cache_http_date(SLICE_LIT(""), &t), -1);
}

Test(cache_parse, targeted_field_dictionary)
{
    struct cache_cc cc;
    cr_assert_eq(
        cache_cc_parse_targeted(&cc, SLICE_LIT("max-age=60, stale-if-error=5;x=1, public")), 0);
    cr_assert_eq(cc.max_age, 60);
    cr_assert_eq(cc.sie, 5);
    cr_assert(cc.flags & CACHE_CC_PUBLIC);
    cr_assert_eq(cache_cc_parse_targeted(&cc, SLICE_LIT("Max-Age=60")), -1);
    cr_assert_eq(cache_cc_parse_targeted(&cc, SLICE_LIT("max-age=60,")), -1);
    cr_assert_eq(cache_cc_parse_targeted(&cc, SLICE_LIT("")), -1);
    cr_assert_eq(cache_cc_parse_targeted(&cc, SLICE_LIT("max-age=1.5")), 0);
    cr_assert_eq(cc.max_age, CACHE_CC_INVALID);
    cr_assert_eq(cache_cc_parse_targeted(&cc, SLICE_LIT("no-store=?0, private=\"a\"")), 0);
    cr_assert_not(cc.flags & (CACHE_CC_NO_STORE | CACHE_CC_PRIVATE));
    cr_assert_eq(cc.private_fields.len, 1);
}

Test(cache_parse, vary_checks_and_normalises)
{
    cr_assert_eq(cache_vary_check(SLICE_LIT("Accept, Accept-Encoding")), 0);
    cr_assert_eq(cache_vary_check(SLICE_LIT("accept, *")), 1);
    cr_assert_eq(cache_vary_check(SLICE_LIT("bad header")), -1);
    struct hs h;
    hs_parse(&h, "Accept-Language: EN-us , fr;q=0.5\nX: 1\naccept-language: de");
    struct buf out = BUF_INIT;
    cr_assert(cache_vary_value(h.h, h.n, SLICE_LIT("Accept-Language"), &out));
    cr_assert_str_eq(out.ptr, "de,en-us,fr;q=0.5");
    buf_reset(&out);
    cr_assert_not(cache_vary_value(h.h, h.n, SLICE_LIT("Cookie"), &out));
    buf_free(&out);
}
