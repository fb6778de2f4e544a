/* The streaming multipart parser: every input is fed whole, split at every
 * position, and one byte at a time, and must give the same events; inputs
 * sit against an unreadable page so a read past the end faults. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http/multipart.h"

struct rec {
    struct buf ev;
    bool in_data;
    int stop_at_part; /* abort on this part (1-based); 0: never */
    int parts;
};

static int on_part(void *ud, const struct http_mp_part *p)
{
    struct rec *r = ud;
    r->in_data = false;
    buf_appendf(&r->ev, "P(%.*s|%s%.*s|%s%.*s)", SLICE_FMT(p->name), p->filename.ptr ? "" : "-",
                SLICE_FMT(p->filename), p->content_type.ptr ? "" : "-", SLICE_FMT(p->content_type));
    return ++r->parts == r->stop_at_part;
}

static int on_data(void *ud, struct slice d)
{
    struct rec *r = ud;
    cr_assert(d.len > 0, "no empty data callbacks");
    if (!r->in_data)
        buf_append_cstr(&r->ev, "D:");
    r->in_data = true;
    buf_append_slice(&r->ev, d);
    return 0;
}

static int on_end(void *ud)
{
    struct rec *r = ud;
    r->in_data = false;
    buf_append_cstr(&r->ev, ";E");
    return 0;
}

static const struct http_mp_callbacks cbs = {on_part, on_data, on_end};

/* Copies s to the end of a page followed by a PROT_NONE page. */
static char *guarded(const char *s, size_t n, void **map, size_t *maplen)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (n + pg - 1) / pg + 1;
    *maplen = (data_pages + 1) * pg;
    char *m = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(m != MAP_FAILED);
    mprotect(m + data_pages * pg, pg, PROT_NONE);
    char *p = m + data_pages * pg - n;
    memcpy(p, s, n);
    *map = m;
    return p;
}

/* Runs the parser over `in` cut at the given points; returns the events
 * followed by "=rc" (feed or finish). */
static char *run_split(const char *boundary, const char *in, size_t n, const size_t *cuts,
                       size_t ncuts, const struct http_mp_limits *lim, int stop_at_part)
{
    struct rec r = {BUF_INIT, false, stop_at_part, 0};
    struct http_multipart *mp = http_multipart_new(slice_cstr(boundary), lim, &cbs, &r);
    cr_assert(mp);
    void *map;
    size_t maplen;
    char *g = guarded(in, n, &map, &maplen);
    size_t at = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && !rc; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        rc = http_multipart_feed(mp, slice_make(g + at, to - at));
        at = to;
    }
    if (!rc)
        rc = http_multipart_finish(mp);
    buf_appendf(&r.ev, "=%d", rc);
    http_multipart_free(mp);
    munmap(map, maplen);
    return buf_steal(&r.ev);
}

/* Checks the whole, every single split, and byte-by-byte feeding agree on want. */
static void check_lim(const char *boundary, const char *in, const char *want,
                      const struct http_mp_limits *lim)
{
    size_t n = strlen(in);
    char *got = run_split(boundary, in, n, NULL, 0, lim, 0);
    cr_assert_str_eq(got, want, "whole input");
    free(got);
    for (size_t cut = 0; cut <= n; cut++) {
        got = run_split(boundary, in, n, &cut, 1, lim, 0);
        cr_assert_str_eq(got, want, "split at %zu", cut);
        free(got);
    }
    size_t *cuts = malloc((n + 1) * sizeof(*cuts));
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    got = run_split(boundary, in, n, cuts, n ? n - 1 : 0, lim, 0);
    cr_assert_str_eq(got, want, "byte by byte");
    free(got);
    free(cuts);
}

static void check(const char *boundary, const char *in, const char *want)
{
    check_lim(boundary, in, want, NULL);
}

Test(multipart, fields_and_a_file)
{
    check("XyZ",
          "--XyZ\r\n"
          "Content-Disposition: form-data; name=\"title\"\r\n\r\n"
          "hello\r\n"
          "--XyZ\r\n"
          "content-disposition: form-data; name=\"doc\"; filename=\"a b.txt\"\r\n"
          "Content-Type: text/plain\r\n\r\n"
          "line1\r\nline2 \r\r\n--XyY-no\r\n--Xy\r\n"
          "--XyZ--\r\n",
          "P(title|-|-)D:hello;EP(doc|a b.txt|text/plain)D:line1\r\nline2 "
          "\r\r\n--XyY-no\r\n--Xy;E=0");
}

Test(multipart, preamble_padding_epilogue_empty_parts)
{
    check("b",
          "ignored preamble\r\n--b  \t\r\nContent-Disposition: form-data; name=e\r\n\r\n\r\n--b\r\n"
          "Content-Disposition: form-data; name=\"q\\\"x\"; filename=\"\"\r\n\r\n\r\n--b--epilogue "
          "--b\r\n",
          "P(e|-|-);EP(q\"x||-);E=0");
}

Test(multipart, data_that_looks_like_a_delimiter_prefix)
{
    check("abc",
          "--abc\r\nContent-Disposition: form-data; "
          "name=f\r\n\r\n\r\r\n\r\n-\r\n--\r\n--ab\r\n--abc--",
          "P(f|-|-)D:\r\r\n\r\n-\r\n--\r\n--ab;E=0");
}

Test(multipart, boundary_from_content_type)
{
    struct slice b;
    cr_assert_eq(
        http_multipart_boundary(SLICE_LIT("multipart/form-data; boundary=----WebKitX1"), &b), 0);
    cr_assert(slice_eq_cstr(b, "----WebKitX1"));
    cr_assert_eq(http_multipart_boundary(
                     SLICE_LIT("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b\""), &b),
                 0);
    cr_assert(slice_eq_cstr(b, "a b"));
    cr_assert_eq(http_multipart_boundary(SLICE_LIT("multipart/form-data"), &b), HTTP_MP_EBOUNDARY);
    cr_assert_eq(http_multipart_boundary(SLICE_LIT("multipart/form-data; boundary="), &b),
                 HTTP_MP_EBOUNDARY);
    cr_assert_eq(http_multipart_boundary(SLICE_LIT("multipart/mixed; boundary=x"), &b),
                 HTTP_MP_EBOUNDARY);
    cr_assert_eq(http_multipart_boundary(SLICE_NULL, &b), HTTP_MP_EBOUNDARY);
}

Test(multipart, bad_boundaries_refused)
{
    char big[72];
    memset(big, 'a', 71);
    big[71] = '\0';
    cr_assert_null(http_multipart_new(slice_cstr(big), NULL, &cbs, NULL));
    cr_assert_null(http_multipart_new(SLICE_LIT(""), NULL, &cbs, NULL));
    cr_assert_null(http_multipart_new(SLICE_LIT("a\rb"), NULL, &cbs, NULL));
    cr_assert_null(http_multipart_new(SLICE_LIT("ab "), NULL, &cbs, NULL));
    big[70] = '\0';
    struct http_multipart *mp = http_multipart_new(slice_cstr(big), NULL, &cbs, NULL);
    cr_assert_not_null(mp);
    http_multipart_free(mp);
}

Test(multipart, errors)
{
    const char *h = "Content-Disposition: form-data; name=f\r\n\r\n";
    char in[256];
    /* truncated in data, in headers, right after a delimiter */
    snprintf(in, sizeof(in), "--b\r\n%sabc", h);
    check("b", in, "P(f|-|-)D:abc=-6");
    check("b", "--b\r\nContent-Disp", "=-6");
    check("b", "--b", "=-6");
    check("b", "", "=-2");
    /* a body without the delimiter */
    check("b", "no delimiter here", "=-2");
    /* malformed headers: no disposition, not form-data, bare LF, obs-fold, no name */
    check("b", "--b\r\n\r\nx\r\n--b--", "=-3");
    check("b", "--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--", "=-3");
    check("b", "--b\r\nContent-Disposition: form-data; name=a\n\r\n", "=-3");
    check("b", "--b\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\n", "=-3");
    check("b", "--b\r\nContent-Disposition: form-data; filename=a\r\n\r\n", "=-3");
    check("b", "--bX\r\n", "=-3");
    check("b", "--b-x", "=-3");
}

Test(multipart, limits)
{
    struct http_mp_limits lim = http_mp_default_limits;
    lim.max_parts = 2;
    const char *part = "--b\r\nContent-Disposition: form-data; name=f\r\n\r\nv\r\n";
    char in[512];
    snprintf(in, sizeof(in), "%s%s--b--", part, part);
    check_lim("b", in, "P(f|-|-)D:v;EP(f|-|-)D:v;E=0", &lim);
    snprintf(in, sizeof(in), "%s%s%s--b--", part, part, part);
    check_lim("b", in, "P(f|-|-)D:v;EP(f|-|-)D:v;E=-5", &lim);
    lim = http_mp_default_limits;
    lim.max_header_bytes = 50;
    check_lim("b", "--b\r\nContent-Disposition: form-data; name=\"ffffffffffff\"\r\n\r\n", "=-4",
              &lim);
    lim.max_preamble = 8;
    check_lim("b", "0123456789012345\r\n--b--", "=-2", &lim);
    check_lim("b", "01234567\r\n--b--", "=0", &lim);
}

Test(multipart, callback_abort_is_sticky)
{
    const char *in = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n"
                     "--b\r\nContent-Disposition: form-data; name=b\r\n\r\ny\r\n--b--";
    char *got = run_split("b", in, strlen(in), NULL, 0, NULL, 2);
    cr_assert_str_eq(got, "P(a|-|-)D:x;EP(b|-|-)=-7");
    free(got);
    cr_assert_str_eq(http_multipart_strerror(HTTP_MP_ETRUNCATED),
                     "The multipart body ended before its closing boundary.");
}
