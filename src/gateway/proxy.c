/* The proxy handler: every request the gateway accepts passes through here.
 * The http layer has already refused ambiguous framing (see http/conn.c), so
 * what reaches this file has one meaning, and the head sent upstream states
 * the body's framing afresh.
 *
 * Per loop (no locks): a client pool per upstream target, a round-robin
 * cursor per upstream, and each target's ejection state. A target whose
 * connect fails is skipped for eject_ms, doubling on each failure up to 30 s;
 * when every target of an upstream is ejected they are all tried anyway, as a
 * fleet that is wholly down is less likely than checks that are wrong.
 *
 * Retries: a request whose connection could not be established is tried on
 * the next target whatever its method, since nothing reached an upstream; an
 * idempotent one that failed after that, before any response byte, is
 * retried once on another target. Bodies up to RETRY_BODY_MAX are kept for
 * this; a larger body makes its request unretriable. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/id.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "gateway/gateway.h"
#include "http/client.h"

enum { RETRY_BODY_MAX = 64 * 1024, EJECT_MAX_MS = 30000, REQUEST_ID_MAX = 128 };

struct target_state {
    struct http_client_pool *pool;
    uint64_t down_until_ms;
    int backoff_ms;
};

struct loop_state {
    const struct gateway_config *gc;
    struct target_state **targets; /* [upstream][target] */
    uint32_t *rr;                  /* [upstream] */
    uint32_t id_prefix;
    uint64_t id_seq;
};

struct proxy {
    struct http_request *req;
    struct loop_state *ls;
    size_t upstream, target;
    unsigned attempts, retries;
    struct http_client *x;
    struct buf head;
    struct buf body; /* kept for a retry while it fits RETRY_BODY_MAX */
    bool body_kept_whole;
    bool body_done, started, client_paused;
    struct slice request_id;
};

static uint64_t now_ms(void)
{
    return time_mono_ns() / 1000000u;
}

/* ---- per-loop state ---- */

static void loop_state_free(void *arg)
{
    struct loop_state *ls = arg;
    for (size_t u = 0; u < ls->gc->nupstreams; u++) {
        for (size_t t = 0; t < ls->gc->upstreams[u].ntargets; t++)
            http_client_pool_free(ls->targets[u][t].pool);
        free(ls->targets[u]);
    }
    free(ls->targets);
    free(ls->rr);
    free(ls);
}

static struct loop_state *loop_state(struct http_loop *loop, const struct gateway_config *gc)
{
    struct loop_state *ls = http_loop_user(loop);
    if (ls)
        return ls;
    ls = xcalloc(1, sizeof(*ls));
    ls->gc = gc;
    struct http_client_opts opts = {
        .connect_timeout_ms = gc->connect_timeout_ms,
        .first_byte_timeout_ms = gc->first_byte_timeout_ms,
        .idle_timeout_ms = gc->upstream_idle_timeout_ms,
        .pool_idle_ms = gc->keepalive_idle_ms,
        .max_idle = gc->keepalive_max,
    };
    ls->targets = xcalloc(gc->nupstreams, sizeof(*ls->targets));
    ls->rr = xcalloc(gc->nupstreams, sizeof(*ls->rr));
    for (size_t u = 0; u < gc->nupstreams; u++) {
        ls->targets[u] = xcalloc(gc->upstreams[u].ntargets, sizeof(**ls->targets));
        for (size_t t = 0; t < gc->upstreams[u].ntargets; t++) {
            /* The config parser accepted only addresses the pool parses. */
            ls->targets[u][t].pool = http_client_pool_new(loop, gc->upstreams[u].targets[t], &opts);
            core_assert(ls->targets[u][t].pool);
        }
    }
    /* Loops start their cursors apart so they do not all hit target 0 first. */
    id_random_bytes(&ls->id_prefix, sizeof(ls->id_prefix));
    for (size_t u = 0; u < gc->nupstreams; u++)
        ls->rr[u] = ls->id_prefix % (uint32_t)gc->upstreams[u].ntargets;
    http_loop_set_user(loop, ls, loop_state_free);
    return ls;
}

/* Round robin over the targets not ejected, skipping `avoid` (a target that
 * just failed) when there is another; all of them if all are ejected. */
static size_t pick_target(struct loop_state *ls, size_t u, size_t avoid)
{
    size_t n = ls->gc->upstreams[u].ntargets;
    uint64_t now = now_ms();
    size_t fallback = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t t = ls->rr[u]++ % n;
        if (t == avoid && n > 1)
            continue;
        if (ls->targets[u][t].down_until_ms <= now)
            return t;
        if (fallback == SIZE_MAX)
            fallback = t;
    }
    return fallback != SIZE_MAX ? fallback : avoid;
}

static void target_failed(struct loop_state *ls, size_t u, size_t t)
{
    struct target_state *s = &ls->targets[u][t];
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : ls->gc->eject_ms;
    if (s->backoff_ms > EJECT_MAX_MS)
        s->backoff_ms = EJECT_MAX_MS;
    s->down_until_ms = now_ms() + (uint64_t)s->backoff_ms;
}

static void target_ok(struct loop_state *ls, size_t u, size_t t)
{
    ls->targets[u][t].backoff_ms = 0;
    ls->targets[u][t].down_until_ms = 0;
}

/* ---- the upstream request head ---- */

static bool token_in_list(struct slice list, struct slice name)
{
    const char *p = list.ptr, *end = list.ptr + list.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        struct slice item = slice_trim(slice_make(p, (size_t)((comma ? comma : end) - p)));
        if (slice_case_eq(item, name))
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

bool gateway_is_hop_header(struct slice name, struct slice connection)
{
    static const char *const hop[] = {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "transfer-encoding",
        "proxy-authorization",
        "proxy-authenticate",
    };
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (slice_case_eq(name, slice_cstr(hop[i])))
            return true;
    return connection.len && token_in_list(connection, name);
}

/* Every Connection header's value, joined, in pool. */
static struct slice connection_tokens(struct arena *pool, const struct http_header *h, size_t n)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < n; i++)
        if (slice_case_eq(h[i].name, SLICE_LIT("connection"))) {
            if (b.len)
                buf_append_char(&b, ',');
            buf_append_slice(&b, h[i].value);
        }
    struct slice s = b.len ? arena_slice_dup(pool, buf_slice(&b)) : SLICE_NULL;
    buf_free(&b);
    return s;
}

static bool is_rewritten(struct slice name)
{
    static const char *const names[] = {"content-length",    "expect",           "x-forwarded-for",
                                        "x-forwarded-proto", "x-forwarded-host", "forwarded",
                                        "x-request-id"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (slice_case_eq(name, slice_cstr(names[i])))
            return true;
    return false;
}

static void append_joined(struct buf *b, const struct http_request *req, const char *name)
{
    bool first = true;
    for (size_t i = 0; i < req->nheaders; i++)
        if (slice_case_eq(req->headers[i].name, slice_cstr(name)) && req->headers[i].value.len) {
            if (!first)
                buf_append(b, ", ", 2);
            buf_append_slice(b, req->headers[i].value);
            first = false;
        }
    if (!first)
        buf_append(b, ", ", 2);
}

void gateway_upstream_head(struct buf *out, const struct http_request *req, struct slice request_id)
{
    struct arena scratch = ARENA_INIT;
    struct slice conn = connection_tokens(&scratch, req->headers, req->nheaders);
    buf_append_slice(out, req->method_name);
    buf_append_char(out, ' ');
    buf_append_slice(out, req->target);
    buf_append(out, " HTTP/1.1\r\n", 11);
    bool had_length = false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        had_length |= slice_case_eq(h->name, SLICE_LIT("content-length"));
        if (gateway_is_hop_header(h->name, conn) || is_rewritten(h->name))
            continue;
        buf_append_slice(out, h->name);
        buf_append(out, ": ", 2);
        buf_append_slice(out, h->value);
        buf_append(out, "\r\n", 2);
    }
    struct slice remote = http_request_remote(req);
    if (!remote.len)
        remote = SLICE_LIT("unknown");
    bool v6 = memchr(remote.ptr, ':', remote.len) != NULL;
    struct slice host = http_request_header(req, "host");

    buf_append_cstr(out, "X-Forwarded-For: ");
    append_joined(out, req, "x-forwarded-for");
    buf_append_slice(out, remote);
    buf_append_cstr(out, "\r\nX-Forwarded-Proto: http\r\n");
    if (host.len) {
        buf_append_cstr(out, "X-Forwarded-Host: ");
        buf_append_slice(out, host);
        buf_append(out, "\r\n", 2);
    }
    buf_append_cstr(out, "Forwarded: ");
    append_joined(out, req, "forwarded");
    buf_appendf(out, "for=%s%.*s%s", v6 ? "\"[" : "", SLICE_FMT(remote), v6 ? "]\"" : "");
    /* A host that would need escaping inside a quoted-string is left out. */
    if (host.len && !memchr(host.ptr, '"', host.len) && !memchr(host.ptr, '\\', host.len))
        buf_appendf(out, ";host=\"%.*s\"", SLICE_FMT(host));
    buf_append_cstr(out, ";proto=http\r\nX-Request-Id: ");
    buf_append_slice(out, request_id);
    buf_append(out, "\r\n", 2);
    if (req->content_length < 0)
        buf_append_cstr(out, "Transfer-Encoding: chunked\r\n");
    else if (req->content_length > 0 || had_length)
        buf_appendf(out, "Content-Length: %lld\r\n", req->content_length);
    buf_append(out, "\r\n", 2);
    arena_reset(&scratch);
}

static bool valid_request_id(struct slice s)
{
    if (s.len == 0 || s.len > REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* ---- one proxied request ---- */

static void respond_error(struct http_request *req, int status, const char *msg)
{
    char body[256];
    int n =
        snprintf(body, sizeof(body), "{\"status\":%d,\"message\":\"%s\",\"data\":{}}", status, msg);
    http_respond(req, status, SLICE_LIT("application/json"),
                 arena_slice_dup(&req->pool, slice_make(body, (size_t)n)));
}

static void proxy_free(struct proxy *p)
{
    buf_free(&p->head);
    buf_free(&p->body);
}

/* The request is over on our side: answer it (discarded if the client went). */
static void finish(struct proxy *p, int status, const char *msg, bool complete)
{
    struct http_request *req = p->req;
    if (p->x) {
        http_client_abort(p->x);
        p->x = NULL;
    }
    proxy_free(p);
    req->on_body = NULL;
    req->on_body_end = NULL;
    req->on_drain = NULL;
    req->on_gone = NULL;
    if (p->started)
        http_respond_end(req, complete);
    else
        respond_error(req, status, msg);
}

static int up_head(void *ud, const struct http_client_response *res)
{
    struct proxy *p = ud;
    struct http_request *req = p->req;
    target_ok(p->ls, p->upstream, p->target);
    struct arena scratch = ARENA_INIT;
    struct slice conn = connection_tokens(&scratch, res->headers, res->nheaders);
    bool has_date = false, has_id = false;
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct http_header *h = &res->headers[i];
        if (gateway_is_hop_header(h->name, conn) ||
            slice_case_eq(h->name, SLICE_LIT("content-length")))
            continue;
        has_date |= slice_case_eq(h->name, SLICE_LIT("date"));
        has_id |= slice_case_eq(h->name, SLICE_LIT("x-request-id"));
        http_response_header(req, h->name, h->value);
    }
    arena_reset(&scratch);
    if (!has_id)
        http_response_header(req, SLICE_LIT("X-Request-Id"), p->request_id);
    p->started = true;
    http_respond_start(req, res->status, res->content_length, !has_date);
    return 0;
}

static int up_body(void *ud, struct slice chunk)
{
    struct proxy *p = ud;
    if (!http_respond_write(p->req, chunk))
        http_client_pause(p->x, true);
    return 0;
}

static void up_drain(void *ud)
{
    struct proxy *p = ud;
    if (p->client_paused) {
        p->client_paused = false;
        http_request_pause_body(p->req, false);
    }
}

static bool idempotent(enum http_method m)
{
    return m == HTTP_M_GET || m == HTTP_M_HEAD || m == HTTP_M_OPTIONS || m == HTTP_M_PUT ||
           m == HTTP_M_DELETE;
}

static void up_end(void *ud, int status, bool connected);

static const struct http_client_cbs up_cbs = {up_head, up_body, up_end, up_drain};

static void send_upstream(struct proxy *p)
{
    const struct gateway_config *gc = p->ls->gc;
    (void)gc;
    struct http_client_pool *pool = p->ls->targets[p->upstream][p->target].pool;
    p->attempts++;
    p->x = http_client_send(pool, buf_slice(&p->head), p->req->content_length < 0,
                            p->req->method == HTTP_M_HEAD, &up_cbs, p);
    if (p->body.len && !http_client_write(p->x, buf_slice(&p->body)) && !p->client_paused) {
        p->client_paused = true;
        http_request_pause_body(p->req, true);
    }
    if (p->body_done)
        http_client_finish(p->x);
}

static void up_end(void *ud, int status, bool connected)
{
    struct proxy *p = ud;
    p->x = NULL;
    if (status == 0) {
        finish(p, 200, NULL, true);
        return;
    }
    size_t ntargets = p->ls->gc->upstreams[p->upstream].ntargets;
    if (!connected && status != -ECANCELED)
        target_failed(p->ls, p->upstream, p->target);
    if (!p->started && status != -ECANCELED && p->body_kept_whole) {
        bool again = !connected ? p->attempts < ntargets
                                : idempotent(p->req->method) && p->retries == 0 && ntargets > 1;
        if (again) {
            if (connected)
                p->retries++;
            log_debug("gateway: retrying %.*s on another target (%d)", SLICE_FMT(p->req->target),
                      status);
            p->target = pick_target(p->ls, p->upstream, p->target);
            send_upstream(p);
            return;
        }
    }
    if (status == -ETIMEDOUT)
        finish(p, 504, "The upstream did not answer in time.", false);
    else
        finish(p, 502, "The upstream failed to answer.", false);
}

static int req_body(struct http_request *req, struct slice chunk)
{
    struct proxy *p = req->user;
    if (p->body_kept_whole) {
        if (p->body.len + chunk.len <= RETRY_BODY_MAX) {
            buf_append_slice(&p->body, chunk);
        } else {
            p->body_kept_whole = false;
            buf_free(&p->body);
        }
    }
    if (p->x && !http_client_write(p->x, chunk) && !p->client_paused) {
        p->client_paused = true;
        http_request_pause_body(req, true);
    }
    return 0;
}

static void req_body_end(struct http_request *req, int status)
{
    struct proxy *p = req->user;
    if (status != 0) {
        finish(p, 400, "The request body was cut short.", false);
        return;
    }
    p->body_done = true;
    if (p->x)
        http_client_finish(p->x);
}

static void req_drain(struct http_request *req)
{
    struct proxy *p = req->user;
    if (p->x)
        http_client_pause(p->x, false);
}

static void req_gone(struct http_request *req)
{
    finish(req->user, 499, "The client went away.", false);
}

static const struct gateway_config *the_config;

static void handle(struct http_request *req)
{
    const struct gateway_config *gc = the_config;
    const struct gateway_route *route =
        gateway_route_match(gc, http_request_header(req, "host"), req->path);
    if (!route) {
        respond_error(req, 404, "No gateway route matches this request.");
        return;
    }
    struct loop_state *ls = loop_state(req->loop, gc);
    struct proxy *p = arena_zalloc(&req->pool, sizeof(*p));
    p->req = req;
    p->ls = ls;
    p->upstream = route->upstream;
    p->body_kept_whole = true;
    struct slice id = http_request_header(req, "x-request-id");
    if (valid_request_id(id)) {
        p->request_id = id;
    } else {
        char gen[32];
        int n = snprintf(gen, sizeof(gen), "%08x%016llx", ls->id_prefix,
                         (unsigned long long)++ls->id_seq);
        p->request_id = arena_slice_dup(&req->pool, slice_make(gen, (size_t)n));
    }
    gateway_upstream_head(&p->head, req, p->request_id);
    req->user = p;
    req->on_body = req_body;
    req->on_body_end = req_body_end;
    req->on_drain = req_drain;
    req->on_gone = req_gone;
    p->target = pick_target(ls, p->upstream, SIZE_MAX);
    send_upstream(p);
}

void gateway_register(struct http_router *router, const struct gateway_config *gc)
{
    the_config = gc;
    http_router_add(router, HTTP_M_OTHER, "/*", handle, HTTP_ROUTE_STREAM_BODY, "proxy");
}
