/* Routing and request accessors: a trie of path segments, static segments
 * tried before ":param" ones, built once at startup and read by every loop
 * without locks. A lookup walks the path in place and allocates only the
 * decoded parameters, in the request's pool. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "http/internal.h"

struct rnode {
    char *seg;
    size_t seglen;
    struct rnode **kids;
    size_t nkids;
    struct rnode *param;
    struct rnode *wild; /* a trailing "*": the rest of the path */
    struct http_route *routes;
};

struct http_router {
    struct rnode root;
    http_handler_fn fallback;
};

static void default_fallback(struct http_request *req)
{
    struct buf b = BUF_INIT;
    http_error_body(&b, req->status,
                    req->status == 405 ? "Method Not Allowed."
                                       : "The requested resource wasn't found.");
    struct slice body = arena_slice_dup(&req->pool, buf_slice(&b));
    buf_free(&b);
    http_respond(req, req->status, SLICE_LIT("application/json"), body);
}

struct http_router *http_router_new(void)
{
    struct http_router *r = xcalloc(1, sizeof(*r));
    r->fallback = default_fallback;
    return r;
}

static void rnode_free(struct rnode *n)
{
    for (size_t i = 0; i < n->nkids; i++) {
        rnode_free(n->kids[i]);
        free(n->kids[i]);
    }
    free(n->kids);
    if (n->param) {
        rnode_free(n->param);
        free(n->param);
    }
    if (n->wild) {
        rnode_free(n->wild);
        free(n->wild);
    }
    struct http_route *rt = n->routes;
    while (rt) {
        struct http_route *next = rt->next;
        free(rt->name);
        free(rt);
        rt = next;
    }
    free(n->seg);
}

void http_router_free(struct http_router *r)
{
    if (!r)
        return;
    rnode_free(&r->root);
    free(r);
}

void http_router_add(struct http_router *r, enum http_method method, const char *pattern,
                     http_handler_fn fn, unsigned flags, const char *name)
{
    core_assert(pattern[0] == '/' && fn);
    struct rnode *n = &r->root;
    const char *p = pattern;
    size_t nparams = 0;
    while (*p == '/') {
        const char *s = p + 1;
        const char *e = strchr(s, '/');
        if (!e)
            e = s + strlen(s);
        if (*s == '*') {
            core_assert(e - s == 1 && *e == '\0' && ++nparams <= HTTP_MAX_ROUTE_PARAMS);
            if (!n->wild)
                n->wild = xcalloc(1, sizeof(*n->wild));
            n = n->wild;
        } else if (*s == ':') {
            core_assert(e - s > 1 && ++nparams <= HTTP_MAX_ROUTE_PARAMS);
            if (!n->param)
                n->param = xcalloc(1, sizeof(*n->param));
            n = n->param;
        } else {
            struct rnode *kid = NULL;
            for (size_t i = 0; i < n->nkids && !kid; i++)
                if (n->kids[i]->seglen == (size_t)(e - s) &&
                    memcmp(n->kids[i]->seg, s, (size_t)(e - s)) == 0)
                    kid = n->kids[i];
            if (!kid) {
                kid = xcalloc(1, sizeof(*kid));
                kid->seg = xstrndup(s, (size_t)(e - s));
                kid->seglen = (size_t)(e - s);
                n->kids = xrealloc(n->kids, (n->nkids + 1) * sizeof(*n->kids));
                n->kids[n->nkids++] = kid;
            }
            n = kid;
        }
        p = e;
    }
    struct http_route *rt = xcalloc(1, sizeof(*rt));
    rt->method = method;
    rt->fn = fn;
    rt->flags = flags;
    rt->name = xstrdup(name ? name : pattern);
    rt->metric_id = http_metrics_route_id(rt->name);
    /* Appended, so the first route added for a method wins. */
    struct http_route **tail = &n->routes;
    while (*tail)
        tail = &(*tail)->next;
    *tail = rt;
}

void http_router_set_fallback(struct http_router *r, http_handler_fn fn)
{
    r->fallback = fn ? fn : default_fallback;
}

http_handler_fn http_router_fallback(const struct http_router *r)
{
    return r->fallback;
}

const char *http_route_name(const struct http_route *route)
{
    return route ? route->name : "";
}

/* p is at the '/' before the next segment, or at end. */
static const struct rnode *match(const struct rnode *n, const char *p, const char *end,
                                 struct slice *params, size_t *np)
{
    if (p == end)
        return n->routes ? n : NULL;
    const char *s = p + 1;
    const char *e = memchr(s, '/', (size_t)(end - s));
    if (!e)
        e = end;
    size_t len = (size_t)(e - s);
    for (size_t i = 0; i < n->nkids; i++) {
        const struct rnode *k = n->kids[i];
        if (k->seglen == len && memcmp(k->seg, s, len) == 0) {
            const struct rnode *m = match(k, e, end, params, np);
            if (m)
                return m;
        }
    }
    if (n->param && len > 0 && *np < HTTP_MAX_ROUTE_PARAMS) {
        params[(*np)++] = slice_make(s, len);
        const struct rnode *m = match(n->param, e, end, params, np);
        if (m)
            return m;
        (*np)--;
    }
    if (n->wild && n->wild->routes && *np < HTTP_MAX_ROUTE_PARAMS) {
        params[(*np)++] = slice_make(s, (size_t)(end - s));
        return n->wild;
    }
    return NULL;
}

const struct http_route *http_router_match(const struct http_router *r, struct http_request *req,
                                           int *status)
{
    struct slice raw[HTTP_MAX_ROUTE_PARAMS];
    size_t np = 0;
    req->nparams = 0;
    *status = 404;
    if (req->path.len == 0 || req->path.ptr[0] != '/')
        return NULL;
    const struct rnode *n = match(&r->root, req->path.ptr, req->path.ptr + req->path.len, raw, &np);
    if (!n)
        return NULL;
    const struct http_route *found = NULL, *get = NULL;
    for (const struct http_route *rt = n->routes; rt && !found; rt = rt->next) {
        if (rt->method == req->method || rt->method == HTTP_M_OTHER)
            found = rt;
        else if (rt->method == HTTP_M_GET && !get)
            get = rt;
    }
    if (!found && req->method == HTTP_M_HEAD)
        found = get;
    if (!found) {
        *status = 405;
        return NULL;
    }
    for (size_t i = 0; i < np; i++)
        req->params[i] = http_percent_decode(&req->pool, raw[i], false);
    req->nparams = np;
    return found;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes one character of s at *i, advancing *i. */
static char decode_at(struct slice s, size_t *i, bool plus_space)
{
    char c = s.ptr[*i];
    if (c == '%' && *i + 2 < s.len) {
        int hi = hexval(s.ptr[*i + 1]), lo = hexval(s.ptr[*i + 2]);
        if (hi >= 0 && lo >= 0) {
            *i += 3;
            return (char)(hi << 4 | lo);
        }
    }
    (*i)++;
    return c == '+' && plus_space ? ' ' : c;
}

struct slice http_percent_decode(struct arena *pool, struct slice s, bool plus_space)
{
    char *d = arena_alloc(pool, s.len + 1);
    size_t n = 0;
    for (size_t i = 0; i < s.len;)
        d[n++] = decode_at(s, &i, plus_space);
    d[n] = '\0';
    return slice_make(d, n);
}

struct slice http_request_header(const struct http_request *req, const char *name)
{
    struct slice want = slice_cstr(name);
    for (size_t i = 0; i < req->nheaders; i++)
        if (slice_case_eq(req->headers[i].name, want))
            return req->headers[i].value;
    return SLICE_NULL;
}

/* True if the encoded key decodes to exactly name. */
static bool key_matches(struct slice key, struct slice name)
{
    size_t j = 0;
    for (size_t i = 0; i < key.len;) {
        char c = decode_at(key, &i, true);
        if (j >= name.len || name.ptr[j++] != c)
            return false;
    }
    return j == name.len;
}

bool http_request_query(struct http_request *req, const char *name, struct slice *value)
{
    if (!req->query.ptr)
        return false;
    struct slice want = slice_cstr(name);
    const char *p = req->query.ptr, *end = p + req->query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (!amp)
            amp = end;
        const char *eq = memchr(p, '=', (size_t)(amp - p));
        struct slice key = slice_make(p, (size_t)((eq ? eq : amp) - p));
        if (key_matches(key, want)) {
            struct slice raw = eq ? slice_make(eq + 1, (size_t)(amp - eq - 1)) : slice_make(amp, 0);
            *value = http_percent_decode(&req->pool, raw, true);
            return true;
        }
        p = amp + 1;
    }
    return false;
}
