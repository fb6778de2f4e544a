/* The console's static assets under /_/, embedded at build time
 * (tools/embed-web.sh). Every page load of the console comes through here,
 * so a hit is a binary search, a few header lines and one copy of the bytes
 * into the response; revalidations end at the ETag comparison.
 *
 * Fingerprinted assets are immutable for a year; the HTML pages are
 * revalidated on every use (no-cache) so a new build's fingerprints are
 * picked up at once. Each encoding of an asset is its own representation
 * with its own strong ETag, and every answer for an asset that has variants
 * says Vary: Accept-Encoding so shared caches keep them apart. */
#include "api/files.h"

#include <stdio.h>
#include <string.h>

#include "api/internal.h"

static const char *const enc_name[FILES_ENC_COUNT] = {"", "gzip", "br"};
static const char *const enc_suffix[FILES_ENC_COUNT] = {"", "-gz", "-br"};

static int cmp_path(struct slice p, const char *name)
{
    size_t n = strlen(name);
    int c = memcmp(p.ptr, name, p.len < n ? p.len : n);
    if (c)
        return c;
    return p.len < n ? -1 : p.len > n ? 1 : 0;
}

static const struct files_asset *find_asset(struct slice path)
{
    size_t lo = 0, hi = files_nassets;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_path(path, files_assets[mid].path);
        if (c == 0)
            return &files_assets[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* q-value in thousandths; -1 if malformed. */
static int parse_q(struct slice v)
{
    if (v.len == 0 || v.len > 5 || (v.ptr[0] != '0' && v.ptr[0] != '1'))
        return -1;
    int q = (v.ptr[0] - '0') * 1000;
    if (v.len == 1)
        return q;
    if (v.ptr[1] != '.')
        return -1;
    int scale = 100;
    for (size_t i = 2; i < v.len; i++, scale /= 10) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return -1;
        q += (v.ptr[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

enum files_encoding files_pick_encoding(struct slice accept, const struct files_asset *a)
{
    /* -1: not mentioned. */
    int q[FILES_ENC_COUNT] = {-1, -1, -1};
    int star = -1;
    const char *p = accept.ptr, *end = p ? p + accept.len : NULL;
    while (p && p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        if (!comma)
            comma = end;
        struct slice item = slice_make(p, (size_t)(comma - p));
        p = comma + 1;
        const char *semi = memchr(item.ptr, ';', item.len);
        struct slice coding =
            slice_trim(semi ? slice_make(item.ptr, (size_t)(semi - item.ptr)) : item);
        int qv = 1000;
        while (semi) {
            const char *pend = item.ptr + item.len;
            const char *next = memchr(semi + 1, ';', (size_t)(pend - semi - 1));
            struct slice param =
                slice_trim(slice_make(semi + 1, (size_t)((next ? next : pend) - semi - 1)));
            if (param.len >= 2 && (param.ptr[0] == 'q' || param.ptr[0] == 'Q') &&
                param.ptr[1] == '=')
                qv = parse_q(slice_trim(slice_make(param.ptr + 2, param.len - 2)));
            semi = next;
        }
        if (qv < 0)
            continue;
        if (slice_case_eq(coding, SLICE_LIT("br")))
            q[FILES_ENC_BR] = qv;
        else if (slice_case_eq(coding, SLICE_LIT("gzip")) ||
                 slice_case_eq(coding, SLICE_LIT("x-gzip")))
            q[FILES_ENC_GZIP] = qv;
        else if (slice_case_eq(coding, SLICE_LIT("identity")))
            q[FILES_ENC_IDENTITY] = qv;
        else if (slice_eq(coding, SLICE_LIT("*")))
            star = qv;
    }
    for (int e = 0; e < FILES_ENC_COUNT; e++)
        if (q[e] < 0)
            q[e] = e == FILES_ENC_IDENTITY ? (star == 0 ? 0 : 1) : (star < 0 ? 0 : star);
    enum files_encoding best = FILES_ENC_IDENTITY;
    int best_q = 0;
    for (int e = FILES_ENC_BR; e >= FILES_ENC_IDENTITY; e--) {
        if (!a->data[e] || q[e] <= best_q)
            continue;
        best = (enum files_encoding)e;
        best_q = q[e];
    }
    return best;
}

static struct slice next_tag(const char **pp, const char *end)
{
    const char *p = *pp;
    while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
        p++;
    const char *s = p;
    if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
        p += 2;
    if (p < end && *p == '"') {
        const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
        p = q ? q + 1 : end;
    } else {
        while (p < end && *p != ',')
            p++;
    }
    *pp = p;
    return slice_make(s, (size_t)(p - s));
}

static struct slice strip_weak(struct slice t)
{
    if (t.len >= 2 && t.ptr[0] == 'W' && t.ptr[1] == '/')
        return slice_make(t.ptr + 2, t.len - 2);
    return t;
}

bool files_etag_match(struct slice inm, struct slice etag)
{
    if (!inm.ptr)
        return false;
    const char *p = inm.ptr, *end = p + inm.len;
    struct slice want = strip_weak(etag);
    while (p < end) {
        struct slice t = slice_trim(next_tag(&p, end));
        if (slice_eq(t, SLICE_LIT("*")) || (t.len && slice_eq(strip_weak(t), want)))
            return true;
    }
    return false;
}

static void serve(struct http_request *req, const struct files_asset *a)
{
    enum files_encoding enc = files_pick_encoding(http_request_header(req, "Accept-Encoding"), a);
    char etag[80];
    int n = snprintf(etag, sizeof(etag), "\"%s%s\"", a->hash, enc_suffix[enc]);
    struct slice tag = slice_make(etag, (size_t)n);
    if (a->data[FILES_ENC_GZIP] || a->data[FILES_ENC_BR])
        http_response_header(req, SLICE_LIT("Vary"), SLICE_LIT("Accept-Encoding"));
    http_response_header(req, SLICE_LIT("ETag"), tag);
    http_response_header(req, SLICE_LIT("Cache-Control"),
                         a->immutable ? SLICE_LIT("public, max-age=31536000, immutable")
                                      : SLICE_LIT("no-cache"));
    if (files_etag_match(http_request_header(req, "If-None-Match"), tag)) {
        http_respond(req, 304, SLICE_NULL, SLICE_NULL);
        return;
    }
    if (enc != FILES_ENC_IDENTITY)
        http_response_header(req, SLICE_LIT("Content-Encoding"), slice_cstr(enc_name[enc]));
    http_respond(req, 200, slice_cstr(a->content_type),
                 slice_make((const char *)a->data[enc], a->len[enc]));
}

/* No NUL, backslash or ".." segment: such a path names no asset, and must
 * not fall back to the index page either. */
static bool plain_path(struct slice p)
{
    if (memchr(p.ptr, '\0', p.len) || memchr(p.ptr, '\\', p.len))
        return false;
    for (size_t i = 0; i + 1 < p.len; i++)
        if (p.ptr[i] == '.' && p.ptr[i + 1] == '.' && (i == 0 || p.ptr[i - 1] == '/') &&
            (i + 2 == p.len || p.ptr[i + 2] == '/'))
            return false;
    return true;
}

static void handle_static(struct http_request *req)
{
    struct slice path = req->nparams ? req->params[req->nparams - 1] : SLICE_NULL;
    const struct files_asset *a = path.len ? find_asset(path) : find_asset(SLICE_LIT("index.html"));
    if (!a && !plain_path(path)) {
        api_error(req, 404, "The requested resource wasn't found.", NULL);
        return;
    }
    if (!a) {
        /* The console routes on the client: a path without an extension is
         * one of its pages. A missing asset stays a 404, so an old
         * fingerprint is never cached as HTML. */
        const char *slash = memrchr(path.ptr, '/', path.len);
        struct slice last =
            slash ? slice_make(slash + 1, (size_t)(path.ptr + path.len - slash - 1)) : path;
        if (!memchr(last.ptr, '.', last.len))
            a = find_asset(SLICE_LIT("index.html"));
    }
    if (!a) {
        api_error(req, 404, "The requested resource wasn't found.", NULL);
        return;
    }
    serve(req, a);
}

static void handle_redirect(struct http_request *req)
{
    http_response_header(req, SLICE_LIT("Location"), SLICE_LIT("/_/"));
    http_respond(req, 301, SLICE_NULL, SLICE_NULL);
}

void files_register_static(struct http_router *r)
{
    http_router_add(r, HTTP_M_GET, "/_/*", handle_static, 0, "static");
    http_router_add(r, HTTP_M_GET, "/_", handle_redirect, 0, "static");
}
