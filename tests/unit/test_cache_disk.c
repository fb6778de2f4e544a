/* The shared cache's disk tier (gateway/cache.c): what memory evicts goes to
 * files and comes back on a hit, bounded, removed by purges, and never
 * outliving the cache. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/timefmt.h"
#include "gateway/cache.h"
#include "gateway/gateway.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/cruder-cache-disk-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *de; (de = readdir(d)) != NULL;) {
            if (de->d_name[0] == '.')
                continue;
            char p[sizeof(dir) + sizeof(de->d_name) + 1];
            snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

TestSuite(cache_disk, .init = make_dir, .fini = remove_dir);

static struct cache *mk(enum cache_policy policy, size_t mem, size_t disk)
{
    struct cache_options o = {
        .max_bytes = mem,
        .max_object_bytes = mem / 2,
        .policy = policy,
        .tag_field = "Cache-Tag",
        .disk_dir = dir,
        .disk_max_bytes = disk,
    };
    struct cache *c = cache_new(&o);
    cr_assert_not_null(c);
    return c;
}

/* Waits for the disk thread to finish what was queued. */
static void drain(struct cache *c)
{
    for (int i = 0; i < 5000; i++) {
        struct cache_stats st;
        cache_stats(c, &st);
        if (st.disk_pending == 0)
            return;
        usleep(1000);
    }
    cr_assert_fail("the disk thread is stuck");
}

struct waitbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;
};

static void wake_box(void *arg)
{
    struct waitbox *b = arg;
    pthread_mutex_lock(&b->mu);
    b->woken = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* cache_lookup as the proxy does it: a WAIT (a read back from disk) parks
 * until the wake, then looks up again. */
static void lookup(struct cache *c, const struct cache_req *rq, struct cache_lookup *lk)
{
    for (;;) {
        struct waitbox b = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
        cache_lookup(c, rq, lk, wake_box, &b);
        if (lk->outcome != CACHE_WAIT)
            return;
        pthread_mutex_lock(&b.mu);
        while (!b.woken)
            pthread_cond_wait(&b.cv, &b.mu);
        pthread_mutex_unlock(&b.mu);
    }
}

static size_t files_in_dir(void)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static struct cache_req req(const char *target, const struct http_header *h, size_t n)
{
    return (struct cache_req){SLICE_LIT("GET"), SLICE_LIT("example.com"), slice_cstr(target), h, n};
}

/* The body a target's response carries: its name repeated to len bytes. */
static void body_of(const char *target, size_t len, char *out)
{
    size_t tl = strlen(target);
    for (size_t i = 0; i < len; i++)
        out[i] = target[i % tl];
}

/* A miss for target, filled with a fresh 200 of len bytes. */
static void store(struct cache *c, const char *target, size_t len, const char *tag)
{
    struct cache_req rq = req(target, NULL, 0);
    struct cache_lookup lk;
    cache_lookup(c, &rq, &lk, NULL, NULL);
    cr_assert_eq(lk.outcome, CACHE_MISS, "%s", target);
    char date[TIMEFMT_HTTP_LEN + 1];
    time_format_http(time(NULL), date);
    struct http_header h[3] = {
        {SLICE_LIT("Cache-Control"), SLICE_LIT("max-age=600")},
        {SLICE_LIT("Date"), slice_cstr(date)},
        {SLICE_LIT("Cache-Tag"), slice_cstr(tag ? tag : "none")},
    };
    struct cache_resp resp = {200, h, 3};
    struct cache_entry *e;
    cr_assert_eq(cache_fill_response(lk.fill, &resp, &e), CACHE_FILL_STORE);
    char *body = malloc(len);
    body_of(target, len, body);
    cache_fill_body(lk.fill, slice_make(body, len));
    free(body);
    cache_fill_end(lk.fill, true);
    drain(c); /* one store at a time: what goes to disk does not depend on timing */
}

/* Looks target up; on a hit checks the body is the one stored. Returns the
 * outcome, finishing any fill as an error. */
static enum cache_outcome get(struct cache *c, const char *target, size_t len)
{
    struct cache_req rq = req(target, NULL, 0);
    struct cache_lookup lk;
    lookup(c, &rq, &lk);
    if (lk.outcome == CACHE_HIT) {
        struct slice b = cache_entry_body(lk.entry);
        char *want = malloc(len);
        body_of(target, len, want);
        cr_assert_eq(b.len, len, "%s", target);
        cr_assert(memcmp(b.ptr, want, len) == 0, "%s", target);
        free(want);
        struct buf head = BUF_INIT;
        cache_entry_head(c, lk.entry, &head);
        cr_assert(strstr(head.ptr, "Cache-Control: max-age=600\r\n"), "%s", head.ptr);
        buf_free(&head);
    }
    if (lk.fill)
        cache_entry_release(cache_fill_error(lk.fill));
    cache_entry_release(lk.entry);
    return lk.outcome;
}

/* The stats once the disk thread is idle. */
static struct cache_stats stats(struct cache *c)
{
    drain(c);
    struct cache_stats st;
    cache_stats(c, &st);
    return st;
}

Test(cache_disk, evicted_responses_go_to_disk_and_come_back_as_hits)
{
    struct cache *c = mk(CACHE_POLICY_LRU, 64 * 1024, 1 << 20);
    char t[32];
    for (int i = 0; i < 100; i++) {
        snprintf(t, sizeof(t), "/r/%d", i);
        store(c, t, 4000, NULL);
    }
    struct cache_stats st = stats(c);
    cr_assert_leq(st.bytes, 64 * 1024);
    cr_assert_gt(st.demotions, 80);
    cr_assert_eq(st.disk_entries + st.entries, 100);
    cr_assert_eq(files_in_dir(), st.disk_entries);
    /* Every response is a hit, from memory or read back from disk. */
    for (int i = 0; i < 100; i++) {
        snprintf(t, sizeof(t), "/r/%d", i);
        cr_assert_eq(get(c, t, 4000), CACHE_HIT, "%s", t);
    }
    st = stats(c);
    cr_assert_gt(st.disk_hits, 80);
    cr_assert_eq(st.disk_errors, 0);
    cr_assert_leq(st.bytes, 64 * 1024);
    cr_assert_eq(files_in_dir(), st.disk_entries);
    cache_free(c);
    cr_assert_eq(files_in_dir(), 0, "the tier does not outlive the cache");
}

Test(cache_disk, one_hit_wonders_are_not_written_under_s3fifo)
{
    struct cache *c = mk(CACHE_POLICY_S3FIFO, 64 * 1024, 1 << 20);
    char t[32];
    /* Read twice: these reach S3-FIFO's main queue. */
    for (int i = 0; i < 10; i++) {
        snprintf(t, sizeof(t), "/hot/%d", i);
        store(c, t, 2000, NULL);
        cr_assert_eq(get(c, t, 2000), CACHE_HIT);
    }
    /* A scan of responses read once pushes everything out of memory. */
    for (int i = 0; i < 300; i++) {
        snprintf(t, sizeof(t), "/cold/%d", i);
        store(c, t, 2000, NULL);
    }
    struct cache_stats st = stats(c);
    cr_assert_gt(st.evictions, 250);
    cr_assert_leq(st.demotions, 10, "only the hot responses are written: %llu",
                  (unsigned long long)st.demotions);
    for (int i = 0; i < 10; i++) {
        snprintf(t, sizeof(t), "/hot/%d", i);
        cr_assert_eq(get(c, t, 2000), CACHE_HIT, "%s", t);
    }
    cache_free(c);
}

Test(cache_disk, the_disk_bound_holds_and_the_oldest_leave_first)
{
    size_t bound = 100 * 1024;
    struct cache *c = mk(CACHE_POLICY_LRU, 32 * 1024, bound);
    char t[32];
    for (int i = 0; i < 200; i++) {
        snprintf(t, sizeof(t), "/b/%d", i);
        store(c, t, 3000, NULL);
        cr_assert_leq(stats(c).disk_bytes, bound);
    }
    struct cache_stats st = stats(c);
    cr_assert_gt(st.disk_evictions, 100);
    cr_assert_eq(files_in_dir(), st.disk_entries);
    cr_assert_eq(get(c, "/b/0", 3000), CACHE_MISS, "the oldest was evicted from disk too");
    cr_assert_eq(get(c, "/b/199", 3000), CACHE_HIT);
    cache_free(c);
}

Test(cache_disk, purges_and_invalidations_remove_disk_responses_and_their_files)
{
    struct cache *c = mk(CACHE_POLICY_LRU, 32 * 1024, 1 << 20);
    store(c, "/p/url", 3000, NULL);
    store(c, "/p/tagged", 3000, "posts");
    store(c, "/p/unsafe", 3000, NULL);
    char t[32];
    for (int i = 0; i < 30; i++) { /* push the three to disk */
        snprintf(t, sizeof(t), "/fill/%d", i);
        store(c, t, 3000, NULL);
    }
    cr_assert_geq(stats(c).disk_entries, 3);
    size_t before = files_in_dir();
    cr_assert_eq(cache_purge_url(c, SLICE_LIT("example.com"), SLICE_LIT("/p/url")), 1);
    cr_assert_eq(cache_purge_tag(c, SLICE_LIT("posts")), 1);
    struct cache_req rq = {SLICE_LIT("DELETE"), SLICE_LIT("example.com"), SLICE_LIT("/p/unsafe"),
                           NULL, 0};
    struct cache_resp resp = {204, NULL, 0};
    cache_invalidate(c, &rq, &resp);
    drain(c);
    cr_assert_eq(files_in_dir(), before - 3);
    cr_assert_eq(get(c, "/p/url", 3000), CACHE_MISS);
    cr_assert_eq(get(c, "/p/tagged", 3000), CACHE_MISS);
    cr_assert_eq(get(c, "/p/unsafe", 3000), CACHE_MISS);
    cache_free(c);
}

Test(cache_disk, variants_come_back_as_the_variant_asked_for)
{
    struct cache *c = mk(CACHE_POLICY_LRU, 32 * 1024, 1 << 20);
    const char *langs[] = {"en", "fr"};
    char date[TIMEFMT_HTTP_LEN + 1];
    time_format_http(time(NULL), date);
    for (int i = 0; i < 2; i++) {
        struct http_header qh = {SLICE_LIT("Accept-Language"), slice_cstr(langs[i])};
        struct cache_req rq = req("/v", &qh, 1);
        struct cache_lookup lk;
        cache_lookup(c, &rq, &lk, NULL, NULL);
        cr_assert_eq(lk.outcome, CACHE_MISS);
        struct http_header h[3] = {{SLICE_LIT("Cache-Control"), SLICE_LIT("max-age=600")},
                                   {SLICE_LIT("Date"), slice_cstr(date)},
                                   {SLICE_LIT("Vary"), SLICE_LIT("Accept-Language")}};
        struct cache_resp resp = {200, h, 3};
        struct cache_entry *e;
        cr_assert_eq(cache_fill_response(lk.fill, &resp, &e), CACHE_FILL_STORE);
        cache_fill_body(lk.fill, slice_cstr(langs[i]));
        cache_fill_end(lk.fill, true);
    }
    char t[32];
    for (int i = 0; i < 30; i++) {
        snprintf(t, sizeof(t), "/fill/%d", i);
        store(c, t, 3000, NULL);
    }
    uint64_t read_back = stats(c).disk_hits;
    for (int i = 1; i >= 0; i--) {
        struct http_header qh = {SLICE_LIT("Accept-Language"), slice_cstr(langs[i])};
        struct cache_req rq = req("/v", &qh, 1);
        struct cache_lookup lk;
        lookup(c, &rq, &lk);
        cr_assert_eq(lk.outcome, CACHE_HIT);
        struct slice b = cache_entry_body(lk.entry);
        cr_assert(slice_eq_cstr(b, langs[i]), "%.*s", SLICE_FMT(b));
        cache_entry_release(lk.entry);
    }
    cr_assert_eq(stats(c).disk_hits, read_back + 2, "both variants came from disk");
    cache_free(c);
}

Test(cache_disk, a_file_lost_behind_the_cache_is_a_miss)
{
    struct cache *c = mk(CACHE_POLICY_LRU, 32 * 1024, 1 << 20);
    store(c, "/lost", 3000, NULL);
    char t[32];
    for (int i = 0; i < 30; i++) {
        snprintf(t, sizeof(t), "/fill/%d", i);
        store(c, t, 3000, NULL);
    }
    remove_dir(); /* every file, and the directory */
    cr_assert_eq(get(c, "/lost", 3000), CACHE_MISS);
    cr_assert_geq(stats(c).disk_errors, 1);
    cache_free(c);
    make_dir();
}

Test(cache_disk, start_removes_old_tier_files_only)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/00000000000000ff", dir);
    FILE *f = fopen(p, "w");
    fputs("left by a crash", f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/keep.txt", dir);
    f = fopen(p, "w");
    fputs("not ours", f);
    fclose(f);
    struct cache *c = mk(CACHE_POLICY_LRU, 32 * 1024, 1 << 20);
    cr_assert_eq(files_in_dir(), 1);
    cr_assert_eq(access(p, F_OK), 0);
    cache_free(c);
}

Test(cache_disk, an_unusable_directory_is_an_error)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/file", dir);
    FILE *f = fopen(p, "w");
    fclose(f);
    snprintf(p, sizeof(p), "%s/file/sub", dir);
    struct cache_options o = {.max_bytes = 1 << 20, .disk_dir = p, .disk_max_bytes = 1 << 20};
    cr_assert_null(cache_new(&o));
    o.disk_max_bytes = 0; /* no tier: the directory is not used */
    struct cache *c = cache_new(&o);
    cr_assert_not_null(c);
    cache_free(c);
}

struct stress {
    struct cache *c;
    unsigned seed;
};

static void *stress_thread(void *arg)
{
    struct stress *s = arg;
    char t[32], date[TIMEFMT_HTTP_LEN + 1];
    time_format_http(time(NULL), date);
    for (int i = 0; i < 3000; i++) {
        snprintf(t, sizeof(t), "/s/%d", rand_r(&s->seed) % 150);
        if (rand_r(&s->seed) % 50 == 0) {
            cache_purge_url(s->c, SLICE_LIT("example.com"), slice_cstr(t));
            continue;
        }
        struct cache_req rq = req(t, NULL, 0);
        struct cache_lookup lk;
        lookup(s->c, &rq, &lk);
        if (lk.outcome == CACHE_HIT) {
            struct slice b = cache_entry_body(lk.entry);
            char want[1500];
            body_of(t, sizeof(want), want);
            cr_assert(b.len == sizeof(want) && memcmp(b.ptr, want, b.len) == 0);
        } else if (lk.fill) {
            struct http_header h[2] = {{SLICE_LIT("Cache-Control"), SLICE_LIT("max-age=600")},
                                       {SLICE_LIT("Date"), slice_cstr(date)}};
            struct cache_resp resp = {200, h, 2};
            struct cache_entry *e;
            if (cache_fill_response(lk.fill, &resp, &e) == CACHE_FILL_STORE) {
                char body[1500];
                body_of(t, sizeof(body), body);
                cache_fill_body(lk.fill, slice_make(body, sizeof(body)));
            }
            cache_entry_release(e);
            cache_fill_end(lk.fill, true);
        }
        cache_entry_release(lk.entry);
        struct cache_stats st;
        cache_stats(s->c, &st); /* no drain: responses on their way to disk count too */
        cr_assert_leq(st.bytes, 24 * 1024);
    }
    return NULL;
}

Test(cache_disk, threads_storing_reading_and_purging_agree)
{
    struct cache *c = mk(CACHE_POLICY_LRU, 24 * 1024, 96 * 1024);
    pthread_t th[4];
    struct stress s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (struct stress){c, (unsigned)i + 1};
        pthread_create(&th[i], NULL, stress_thread, &s[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    struct cache_stats st = stats(c);
    cr_assert_gt(st.demotions, 0);
    cr_assert_leq(st.disk_bytes, 96 * 1024);
    cr_assert_leq(st.bytes, 24 * 1024);
    cr_assert_eq(files_in_dir(), st.disk_entries);
    cache_free(c);
}

Test(cache_disk, gateway_settings_name_the_directory_and_the_bound)
{
    struct gateway_config gc;
    char err[256];
    cr_assert_eq(gateway_config_parse(&gc, NULL,
                                      SLICE_LIT("upstream api 127.0.0.1:8091\n"
                                                "route / api\n"
                                                "cache_max_bytes = 64m\n"
                                                "cache_disk_dir = /var/cache/cruder\n"
                                                "cache_disk_max_bytes = 2g\n"),
                                      err, sizeof(err)),
                 0, "%s", err);
    cr_assert_str_eq(gc.cache_disk_dir, "/var/cache/cruder");
    cr_assert_eq(gc.cache_disk_max_bytes, (size_t)2 << 30);
    gateway_config_free(&gc);
    cr_assert_eq(gateway_config_parse(&gc, NULL, SLICE_LIT("cache_disk_max_bytes = lots\n"), err,
                                      sizeof(err)),
                 -1);
    cr_assert(strstr(err, "cache_disk_max_bytes"), "%s", err);
}

Test(cache_disk, a_resize_evicts_down_to_the_new_bounds_at_once)
{
    struct cache *c = mk(CACHE_POLICY_LRU, 64 * 1024, 1 << 20);
    char t[32];
    for (int i = 0; i < 60; i++) {
        snprintf(t, sizeof(t), "/z/%d", i);
        store(c, t, 3000, NULL);
    }
    struct cache_stats st = stats(c);
    cr_assert_gt(st.bytes, 48 * 1024);
    cr_assert_gt(st.disk_bytes, 64 * 1024);
    cache_resize(c, 16 * 1024, 0, 32 * 1024);
    st = stats(c);
    cr_assert_leq(st.bytes, 16 * 1024);
    cr_assert_leq(st.disk_bytes, 32 * 1024);
    cr_assert_eq(st.max_bytes, 16 * 1024);
    cr_assert_eq(st.disk_max_bytes, 32 * 1024);
    cr_assert_eq(files_in_dir(), st.disk_entries);
    cr_assert_eq(get(c, "/z/59", 3000), CACHE_HIT, "the newest stays");
    /* max_object_bytes followed max_bytes / 8: 3000 bytes no longer fit. */
    struct cache_req rq = req("/big", NULL, 0);
    struct cache_lookup lk;
    cache_lookup(c, &rq, &lk, NULL, NULL);
    struct http_header h[2] = {{SLICE_LIT("Cache-Control"), SLICE_LIT("max-age=600")},
                               {SLICE_LIT("Content-Length"), SLICE_LIT("3000")}};
    struct cache_resp resp = {200, h, 2};
    struct cache_entry *e;
    cr_assert_eq(cache_fill_response(lk.fill, &resp, &e), CACHE_FILL_PASS);
    cache_fill_end(lk.fill, true);
    cache_free(c);
}
