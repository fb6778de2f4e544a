/* One HTTP/1.1 connection as a state machine over a byte stream, with no
 * socket in sight (see internal.h). Every request on a keep-alive connection
 * passes through here, so the hot path is: one http_parser_execute over
 * everything one read brought, one copy of each head into its request's
 * arena, the response appended to c->out, and one flush per read. Reading
 * stays on while a handler works (no epoll_ctl a request), and a streamed
 * response's pieces are flushed once the loop has run its callbacks
 * (flush_soon), so a proxied head and body leave in one write.
 *
 * Framing rules beyond http-parser 2.9 (which Debian builds non-strict):
 * - a lone LF as line end is rejected (400): front ends disagree on it, which
 *   is what request smuggling feeds on;
 * - obs-fold, NUL, and a header name that is not a token ("Host : x") are 400;
 * - two Content-Length headers are rejected even when equal (http-parser does);
 * - Transfer-Encoding must be exactly one "chunked", never beside
 *   Content-Length and never in HTTP/1.0 (RFC 9112 6.1);
 * - HTTP/1.1 needs exactly one Host; HTTP/1.0 at most one.
 * Every such error is answered in PocketBase's JSON shape and closes the
 * connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "http/internal.h"

struct hdr_off {
    uint64_t name_abs, val_abs;
    size_t name_len, val_len;
};

/* The request as the layer sees it; the handler sees only `pub`. */
struct http_xreq {
    struct http_request pub; /* first: handlers' pointers convert back */
    struct hdr_off *hoff;
    size_t nhoff, capoff;
    uint64_t url_abs;
    size_t url_len;
    bool in_value;
    bool dispatched, stream, body_done, aborted, end_called;
    bool http10;
    /* A streamed response (http_respond_start) in progress. */
    bool responding, send_body, chunked_out, keep_out;
    uint64_t sent;
    const struct http_route *route;
    char *body;
    size_t body_len, body_cap;
};

enum { PAUSE_HEAD = 1, PAUSE_DONE = 2, PAUSE_BODY = 3 };

struct buf http_loop_buf_take(struct http_loop *l)
{
    return l->nspare_bufs ? l->spare_bufs[--l->nspare_bufs] : BUF_INIT;
}

void http_loop_buf_give(struct http_loop *l, struct buf *b)
{
    if (b->cap && b->cap <= HTTP_SPARE_BUF_MAX && l->nspare_bufs < HTTP_SPARES) {
        buf_reset(b);
        l->spare_bufs[l->nspare_bufs++] = *b;
    } else {
        buf_free(b);
    }
    *b = BUF_INIT;
}

void http_loop_spares_free(struct http_loop *l)
{
    while (l->nspare_pools)
        arena_reset(&l->spare_pools[--l->nspare_pools]);
    while (l->nspare_bufs)
        buf_free(&l->spare_bufs[--l->nspare_bufs]);
}

static struct http_xreq *xreq_new(struct http_conn *c)
{
    struct http_loop *l = c->loop;
    struct arena a = l->nspare_pools ? l->spare_pools[--l->nspare_pools] : ARENA_INIT;
    struct http_xreq *r = arena_zalloc(&a, sizeof(*r));
    r->pub.pool = a;
    r->pub.loop = l;
    r->pub.conn = c;
    r->pub.start_ns = http_loop_now_ns(l);
    r->pub.resp_headers = http_loop_buf_take(l);
    return r;
}

static void xreq_free(struct http_xreq *r)
{
    struct http_loop *l = r->pub.loop;
    http_loop_buf_give(l, &r->pub.resp_headers);
    /* The arena holds r itself, so it is emptied from a copy. */
    struct arena a = r->pub.pool;
    if (l->nspare_pools < HTTP_SPARES && arena_clear(&a))
        l->spare_pools[l->nspare_pools++] = a;
    else
        arena_reset(&a);
}

static uint64_t abs_of(const struct http_conn *c, const char *at)
{
    return c->view_abs + (uint64_t)(at - c->view);
}

static int cb_fail(struct http_conn *c, int status, const char *msg)
{
    c->error = status;
    c->error_msg = msg;
    return -1;
}

static int check_head_size(struct http_conn *c, uint64_t end_abs)
{
    if (end_abs - c->head_abs > (uint64_t)c->lim->max_header_bytes)
        return cb_fail(c, 431, "Request header fields too large.");
    return 0;
}

static int on_message_begin(http_parser *hp)
{
    struct http_conn *c = hp->data;
    if (!c->req)
        c->req = xreq_new(c);
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct http_conn *c = hp->data;
    struct http_xreq *r = c->req;
    uint64_t a = abs_of(c, at);
    if (!r->url_len)
        r->url_abs = a;
    r->url_len += len;
    if (a + len - c->head_abs > (uint64_t)c->lim->max_request_line)
        return cb_fail(c, 414, "Request URI too long.");
    return check_head_size(c, a + len);
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct http_conn *c = hp->data;
    struct http_xreq *r = c->req;
    if (c->phase != CONN_HEAD)
        return 0; /* chunked trailers, bounded by http-parser, are ignored */
    uint64_t a = abs_of(c, at);
    if (r->nhoff == 0 || r->in_value) {
        if (r->nhoff >= (size_t)c->lim->max_headers)
            return cb_fail(c, 431, "Too many request headers.");
        if (r->nhoff == r->capoff) {
            size_t cap = r->capoff ? r->capoff * 2 : 16;
            struct hdr_off *n = arena_alloc(&r->pub.pool, cap * sizeof(*n));
            if (r->nhoff)
                memcpy(n, r->hoff, r->nhoff * sizeof(*n));
            r->hoff = n;
            r->capoff = cap;
        }
        r->hoff[r->nhoff++] = (struct hdr_off){a, a + len, len, 0};
        r->in_value = false;
    } else {
        r->hoff[r->nhoff - 1].name_len += len;
    }
    return check_head_size(c, a + len);
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct http_conn *c = hp->data;
    struct http_xreq *r = c->req;
    if (c->phase != CONN_HEAD)
        return 0;
    struct hdr_off *h = &r->hoff[r->nhoff - 1];
    uint64_t a = abs_of(c, at);
    if (!r->in_value) {
        h->val_abs = a;
        h->val_len = len;
        r->in_value = true;
    } else if (a != h->val_abs + h->val_len) {
        /* http-parser joins folded lines by calling again from further on. */
        return cb_fail(c, 400, "Obsolete line folding is not allowed.");
    } else {
        h->val_len += len;
    }
    return check_head_size(c, a + len);
}

static int on_headers_complete(http_parser *hp)
{
    struct http_conn *c = hp->data;
    c->pause_reason = PAUSE_HEAD;
    http_parser_pause(hp, 1);
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    struct http_conn *c = hp->data;
    struct http_xreq *r = c->req;
    if (!r || c->closing)
        return -1;
    if (r->stream) {
        if (r->aborted || !r->pub.on_body)
            return 0;
        int refused = r->pub.on_body(&r->pub, slice_make(at, len));
        /* The handler may have answered (and freed r) from on_body: an answer
         * before the body's end closes the connection, so r is only touched
         * while it is not closing. */
        if (c->closing)
            return -1;
        if (refused)
            r->aborted = true;
        /* Paused: the bytes after this piece wait in rbuf until resumed. */
        if (c->body_paused && c->req == r) {
            c->pause_reason = PAUSE_BODY;
            http_parser_pause(hp, 1);
        }
        return 0;
    }
    if (len > (size_t)c->lim->max_body_bytes - r->body_len)
        return cb_fail(c, 413, "Request body too large.");
    if (r->body_len + len > r->body_cap) {
        /* Only chunked bodies grow; Content-Length ones are sized up front. */
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len)
            cap *= 2;
        if (cap > (size_t)c->lim->max_body_bytes)
            cap = (size_t)c->lim->max_body_bytes;
        char *n = arena_alloc(&r->pub.pool, cap + 1);
        if (r->body_len)
            memcpy(n, r->body, r->body_len);
        r->body = n;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct http_conn *c = hp->data;
    c->pause_reason = PAUSE_DONE;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void http_conn_init(struct http_conn *c, struct http_loop *loop, const struct http_conn_io *io,
                    const struct http_limits *lim, const struct http_router *router)
{
    c->loop = loop;
    c->io = io;
    c->lim = lim;
    c->router = router;
    http_parser_init(&c->hp, HTTP_REQUEST);
    c->hp.data = c;
    c->phase = CONN_IDLE;
    /* A new connection's first head is due header_timeout_ms after accept. */
    c->timer_kind = TIMER_HEAD;
    io->timer(c, (uint64_t)lim->header_timeout_ms);
}

/* ---- responses ---- */

static char *put(char *p, const char *s, size_t n)
{
    if (n) /* s may be NULL when empty */
        memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, s) put((p), (s), sizeof(s) - 1)

static char *put_u64(char *p, uint64_t v)
{
    char t[20];
    const char *digits = u64_to_dec(v, t);
    return put(p, digits, (size_t)(t + 20 - digits));
}

/* body.len bytes are sent; clen is the Content-Length announced. */
static void write_response(struct http_conn *c, int status, bool keep, bool send_body,
                           struct slice extra, struct slice ctype, struct slice body, uint64_t clen)
{
    const char *reason = http_status_reason(status);
    size_t rlen = strlen(reason);
    bool bodyless = status < 200 || status == 204 || status == 304;
    buf_reserve(&c->out, 160 + rlen + extra.len + ctype.len + body.len);
    char *p = c->out.ptr + c->out.len;
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, reason, rlen);
    p = PUT_LIT(p, "\r\nDate: ");
    p = put(p, c->loop->date, TIMEFMT_HTTP_LEN);
    p = PUT_LIT(p, "\r\n");
    if (!bodyless) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put_u64(p, clen);
        p = PUT_LIT(p, "\r\n");
    }
    if (keep)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    else
        p = PUT_LIT(p, "Connection: close\r\n");
    if (extra.len)
        p = put(p, extra.ptr, extra.len);
    if (ctype.len) {
        p = PUT_LIT(p, "Content-Type: ");
        p = put(p, ctype.ptr, ctype.len);
        p = PUT_LIT(p, "\r\n");
    }
    p = PUT_LIT(p, "\r\n");
    if (send_body && !bodyless && body.len)
        p = put(p, body.ptr, body.len);
    c->out.len = (size_t)(p - c->out.ptr);
    *p = '\0';
}

static void log_request(struct http_loop *loop, const struct http_limits *lim,
                        const struct http_xreq *r, const char *remote, int status, size_t bytes)
{
    uint64_t dur = r ? http_loop_now_ns(loop) - r->pub.start_ns : 0;
    unsigned id = r && r->route        ? r->route->metric_id
                  : r && r->dispatched ? HTTP_ROUTE_ID_FALLBACK
                                       : HTTP_ROUTE_ID_ERROR;
    http_metrics_record(loop->metrics, id, status, dur);
    if (!lim || !lim->access_log)
        return;
    struct buf *b = &loop->logline;
    buf_reset(b);
    char when[TIMEFMT_PB_LEN + 1];
    time_format_pb(time_now_ms(), when);
    buf_appendf(b, "{\"time\":\"%s\",\"method\":", when);
    http_json_string(b, r && r->pub.method_name.len ? r->pub.method_name : SLICE_LIT("-"));
    buf_append_cstr(b, ",\"path\":");
    http_json_string(b, r && r->pub.target.ptr ? r->pub.target : SLICE_LIT("-"));
    buf_appendf(b, ",\"status\":%d,\"bytes\":%zu,\"duration_us\":%llu,\"remote\":", status, bytes,
                (unsigned long long)(dur / 1000));
    http_json_string(b, slice_cstr(remote ? remote : ""));
    buf_append_char(b, '}');
    log_access(b->ptr, b->len);
}

/* Gives the request to its handler's side for good: the connection forgets
 * it, and the handler's answer will be discarded. */
static void detach(struct http_conn *c, struct http_xreq *r, int reason)
{
    r->pub.conn = NULL;
    c->req = NULL;
    if (r->stream && !r->end_called && !r->aborted && r->pub.on_body_end) {
        r->end_called = true;
        r->pub.on_body_end(&r->pub, reason); /* may answer, and free r */
    } else if (r->pub.on_gone) {
        r->pub.on_gone(&r->pub); /* may answer, and free r */
    }
}

static void after_batch(struct http_conn *c);

static void conn_fail(struct http_conn *c, int status, const char *msg)
{
    if (c->closing)
        return;
    struct http_xreq *r = c->req;
    if (r) {
        if (r->dispatched) {
            log_request(c->loop, c->lim, NULL, c->remote, status, 0);
            detach(c, r, status == 408 ? -ETIMEDOUT : -EBADMSG);
        } else {
            log_request(c->loop, c->lim, r, c->remote, status, 0);
            c->req = NULL;
            xreq_free(r);
        }
    } else {
        log_request(c->loop, c->lim, NULL, c->remote, status, 0);
    }
    struct buf body = BUF_INIT;
    http_error_body(&body, status, msg);
    write_response(c, status, false, true,
                   status == 503 ? SLICE_LIT("Retry-After: 1\r\n") : SLICE_NULL,
                   SLICE_LIT("application/json"), buf_slice(&body), body.len);
    buf_free(&body);
    c->closing = true;
    c->phase = CONN_IDLE;
}

void http_conn_fail(struct http_conn *c, int status, const char *msg)
{
    conn_fail(c, status, msg);
    after_batch(c);
}

/* ---- requests ---- */

static enum http_method map_method(unsigned m)
{
    switch (m) {
    case HTTP_GET:
        return HTTP_M_GET;
    case HTTP_HEAD:
        return HTTP_M_HEAD;
    case HTTP_POST:
        return HTTP_M_POST;
    case HTTP_PUT:
        return HTTP_M_PUT;
    case HTTP_PATCH:
        return HTTP_M_PATCH;
    case HTTP_DELETE:
        return HTTP_M_DELETE;
    case HTTP_OPTIONS:
        return HTTP_M_OPTIONS;
    default:
        return HTTP_M_OTHER;
    }
}

static bool is_tchar(unsigned char ch)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') ||
           (ch && memchr(extra, ch, sizeof(extra) - 1));
}

/* Checks the raw head for what http-parser lets through; NULL if fine. */
static const char *raw_head_error(const char *h, size_t n)
{
    if (memchr(h, '\0', n))
        return "NUL byte in request head.";
    size_t i = 0;
    while (i < n && (h[i] == '\r' || h[i] == '\n'))
        i++;
    for (const char *p = h + i, *end = h + n; p < end;) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (!lf)
            break;
        if (lf == h + i || lf[-1] != '\r')
            return "Bare LF line endings are not allowed.";
        if (lf + 1 < end && (lf[1] == ' ' || lf[1] == '\t'))
            return "Obsolete line folding is not allowed.";
        p = lf + 1;
    }
    return NULL;
}

static void dispatch(struct http_conn *c, struct http_xreq *r)
{
    r->dispatched = true;
    http_handler_fn fn = r->route ? r->route->fn : http_router_fallback(c->router);
    fn(&r->pub);
}

static void head_done(struct http_conn *c)
{
    struct http_xreq *r = c->req;
    struct http_request *q = &r->pub;
    http_parser *hp = &c->hp;
    /* Paused in on_headers_complete, the parser stands on the head's last LF. */
    uint64_t end_abs = c->pos_abs + 1;
    if (end_abs - c->head_abs > (uint64_t)c->lim->max_header_bytes) {
        conn_fail(c, 431, "Request header fields too large.");
        return;
    }
    size_t hlen = (size_t)(end_abs - c->head_abs);
    const char *raw = c->view + (c->head_abs - c->view_abs);
    const char *bad = raw_head_error(raw, hlen);
    if (bad) {
        conn_fail(c, 400, bad);
        return;
    }
    char *copy = arena_alloc(&q->pool, hlen + 1);
    memcpy(copy, raw, hlen);
    copy[hlen] = '\0';
#define AT(a) (copy + ((a)-c->head_abs))

    q->method = map_method(hp->method);
    q->method_name = slice_cstr(http_method_str((enum http_parser_method)hp->method));
    q->target = slice_make(AT(r->url_abs), r->url_len);
    const char *qm = memchr(q->target.ptr, '?', q->target.len);
    q->path = slice_make(q->target.ptr, qm ? (size_t)(qm - q->target.ptr) : q->target.len);
    q->query = qm ? slice_make(qm + 1, q->target.len - q->path.len - 1) : slice_make(NULL, 0);
    q->headers = arena_alloc(&q->pool, (r->nhoff ? r->nhoff : 1) * sizeof(*q->headers));
    q->nheaders = r->nhoff;
    int nhost = 0, nte = 0;
    struct slice te = SLICE_NULL, expect = SLICE_NULL, upgrade = SLICE_NULL;
    for (size_t i = 0; i < r->nhoff; i++) {
        struct hdr_off *h = &r->hoff[i];
        struct http_header *o = &q->headers[i];
        o->name = slice_make(AT(h->name_abs), h->name_len);
        o->value = slice_trim(slice_make(AT(h->val_abs), h->val_len));
        if (o->name.len == 0) {
            conn_fail(c, 400, "Empty header name.");
            return;
        }
        for (size_t k = 0; k < o->name.len; k++)
            if (!is_tchar((unsigned char)o->name.ptr[k])) {
                conn_fail(c, 400, "Invalid character in header name.");
                return;
            }
        if (slice_case_eq(o->name, SLICE_LIT("host")))
            nhost++;
        else if (slice_case_eq(o->name, SLICE_LIT("transfer-encoding")))
            nte++, te = o->value;
        else if (slice_case_eq(o->name, SLICE_LIT("expect")))
            expect = o->value;
        else if (slice_case_eq(o->name, SLICE_LIT("upgrade")))
            upgrade = o->value;
    }
#undef AT
    if (hp->http_major != 1) {
        conn_fail(c, 505, "HTTP version not supported.");
        return;
    }
    if ((hp->http_minor >= 1 && nhost != 1) || nhost > 1) {
        conn_fail(c, 400, "Exactly one Host header is required.");
        return;
    }
    if (nte > 1 || (nte == 1 && !slice_case_eq(te, SLICE_LIT("chunked")))) {
        conn_fail(c, 400, "Unsupported Transfer-Encoding.");
        return;
    }
    /* RFC 9112 6.1: an HTTP/1.0 message's framing is faulty with it. */
    if (nte && hp->http_minor == 0) {
        conn_fail(c, 400, "Transfer-Encoding is not allowed in HTTP/1.0.");
        return;
    }
    if (q->path.len == 0 || q->path.ptr[0] != '/') {
        conn_fail(c, 400, "The request target must be an absolute path.");
        return;
    }
    bool chunked = (hp->flags & F_CHUNKED) != 0;
    q->content_length = chunked                            ? -1
                        : hp->content_length == UINT64_MAX ? 0
                                                           : (long long)hp->content_length;
    q->keep_alive = http_should_keep_alive(hp) != 0;
    r->http10 = hp->http_minor == 0;

    int status;
    r->route = http_router_match(c->router, q, &status);
    q->route = r->route;
    if (!r->route)
        q->status = status;
    r->stream = r->route && (r->route->flags & HTTP_ROUTE_STREAM_BODY);
    if (!r->stream && q->content_length > c->lim->max_body_bytes) {
        conn_fail(c, 413, "Request body too large.");
        return;
    }
    bool has_body = chunked || q->content_length > 0;
    /* http-parser stops at the end of an upgrade request's head: what follows
     * is another protocol, so either the handler takes the connection over
     * or the request is refused here. */
    if (hp->upgrade) {
        /* h2c is ignored everywhere (RFC 9113 retired it): the request is
         * answered in HTTP/1.1, and a proxy forwards it without the offer. */
        bool h2c = slice_case_eq(upgrade, SLICE_LIT("h2c"));
        bool takes =
            r->route && (r->route->flags & HTTP_ROUTE_UPGRADE) && hp->http_minor >= 1 && !h2c;
        if (hp->method == HTTP_CONNECT) {
            conn_fail(c, 400, "CONNECT is not supported.");
            return;
        }
        if (takes && has_body) {
            conn_fail(c, 400, "An upgrade request cannot carry a body.");
            return;
        }
        if (takes) {
            q->upgrade = true;
            /* A refused upgrade leaves the client unsure of the protocol. */
            q->keep_alive = false;
        } else if (!h2c) {
            conn_fail(c, 400, "Protocol upgrades are not supported.");
            return;
        }
    }
    bool cont = false;
    if (expect.ptr) {
        if (!slice_case_eq(expect, SLICE_LIT("100-continue"))) {
            conn_fail(c, 417, "Unsupported expectation.");
            return;
        }
        cont = has_body && hp->http_minor >= 1;
    }
    c->phase = CONN_BODY;
    if (r->stream) {
        r->body_done = !has_body;
        dispatch(c, r);
        if (c->req != r)
            return;
    } else if (q->content_length > 0) {
        r->body_cap = (size_t)q->content_length;
        r->body = arena_alloc(&q->pool, r->body_cap + 1);
    }
    if (cont)
        buf_append(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

static void message_done(struct http_conn *c)
{
    struct http_xreq *r = c->req;
    if (!r) {
        /* A streaming handler answered before its empty body "ended". */
        c->phase = CONN_IDLE;
        return;
    }
    r->body_done = true;
    c->phase = CONN_WAIT;
    if (r->stream) {
        r->end_called = true;
        if (!r->aborted && r->pub.on_body_end)
            r->pub.on_body_end(&r->pub, 0);
        return;
    }
    if (!r->body)
        r->body = arena_zalloc(&r->pub.pool, 1);
    r->body[r->body_len] = '\0';
    r->pub.body = slice_make(r->body, r->body_len);
    dispatch(c, r);
}

/* Whether the head being parsed starts as a request line with a method
 * http-parser does not know: a token, then a space (RFC 9110 9.1), or a
 * token so far when the parser gave up before the space arrived. */
static bool unknown_method(const struct http_conn *c)
{
    if (c->head_abs < c->view_abs)
        return false;
    const char *p = c->view + (c->head_abs - c->view_abs), *end = c->view + c->view_len;
    const char *start = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    return p > start && (p == end || *p == ' ');
}

static void parser_failed(struct http_conn *c, enum http_errno e)
{
    if (e == HPE_HEADER_OVERFLOW)
        conn_fail(c, 431, http_errno_description(e));
    else if (e == HPE_INVALID_METHOD && unknown_method(c))
        conn_fail(c, 501, "The request method is not implemented.");
    else
        conn_fail(c, 400, http_errno_description(e));
}

static void process(struct http_conn *c)
{
    c->in_process = true;
    while (!c->closing && !c->file.active && !(c->req && c->phase == CONN_WAIT) &&
           !(c->phase == CONN_BODY && c->body_paused) && c->phase != CONN_TUNNEL) {
        size_t done = (size_t)(c->pos_abs - c->view_abs);
        size_t avail = c->view_len - done;
        if (!avail)
            break;
        if (c->phase == CONN_IDLE) {
            c->phase = CONN_HEAD;
            c->head_abs = c->pos_abs;
        }
        c->pause_reason = 0;
        c->error = 0;
        size_t n = http_parser_execute(&c->hp, &parser_settings, c->view + done, avail);
        c->pos_abs += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->hp);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->hp, 0);
            if (c->pause_reason == PAUSE_HEAD)
                head_done(c);
            else if (c->pause_reason == PAUSE_DONE)
                message_done(c);
            continue;
        }
        if (e != HPE_OK) {
            if (c->error)
                conn_fail(c, c->error, c->error_msg);
            else
                parser_failed(c, e);
            break;
        }
        if (n < avail) {
            conn_fail(c, 400, "Protocol upgrades are not supported.");
            break;
        }
    }
    if (!c->closing && c->phase == CONN_HEAD &&
        c->pos_abs - c->head_abs > (uint64_t)c->lim->max_header_bytes)
        conn_fail(c, 431, "Request header fields too large.");
    c->in_process = false;
}

/* Keeps what later parsing needs (the current head, unparsed bytes) in rbuf. */
static void keep_unparsed(struct http_conn *c, bool view_is_rbuf)
{
    uint64_t end = c->view_abs + c->view_len;
    if (c->closing) {
        buf_free(&c->rbuf);
        c->rbuf_abs = end;
        return;
    }
    uint64_t keep = c->phase == CONN_HEAD ? c->head_abs : c->pos_abs;
    if (view_is_rbuf)
        buf_consume(&c->rbuf, (size_t)(keep - c->rbuf_abs));
    else if (keep < end)
        buf_append(&c->rbuf, c->view + (keep - c->view_abs), (size_t)(end - keep));
    c->rbuf_abs = keep;
    c->view = NULL;
}

static void set_timer(struct http_conn *c, enum http_timer_kind kind)
{
    /* The head deadline covers the whole head, so it is not pushed back by
     * each read; the idle and body deadlines are, and the io layer makes
     * pushing a deadline back cheap. */
    if (kind == c->timer_kind && (kind == TIMER_HEAD || kind == TIMER_NONE))
        return;
    c->timer_kind = kind;
    uint64_t ms = kind == TIMER_IDLE     ? (uint64_t)c->lim->idle_timeout_ms
                  : kind == TIMER_HEAD   ? (uint64_t)c->lim->header_timeout_ms
                  : kind == TIMER_BODY   ? (uint64_t)c->lim->body_timeout_ms
                  : kind == TIMER_SEND   ? (uint64_t)c->lim->send_timeout_ms
                  : kind == TIMER_TUNNEL ? (uint64_t)c->tunnel_idle_ms
                                         : 0;
    c->io->timer(c, ms);
}

static void after_batch(struct http_conn *c)
{
    if (!c->closing && c->phase == CONN_IDLE && !c->req && c->loop->draining)
        c->closing = true;
    if (c->closing) {
        set_timer(c, TIMER_NONE);
        c->io->read(c, false);
        c->io->flush(c);
        c->io->close(c);
        return;
    }
    switch (c->phase) {
    /* A file being sent is not idle time, but it must keep moving. */
    case CONN_IDLE:
        set_timer(c, c->file.active ? TIMER_SEND : TIMER_IDLE);
        break;
    case CONN_HEAD:
        set_timer(c, TIMER_HEAD);
        break;
    case CONN_BODY:
        set_timer(c, c->body_paused ? TIMER_NONE : TIMER_BODY);
        break;
    case CONN_WAIT:
        set_timer(c, TIMER_NONE);
        break;
    case CONN_TUNNEL:
        set_timer(c, TIMER_TUNNEL);
        break;
    }
    /* A tunnel's two directions are held back separately: its input by the
     * handler's pause, its output by http_tunnel_write's answer. */
    if (c->phase == CONN_TUNNEL)
        c->io->read(c, !c->tunnel_paused);
    else
        /* Reading goes on while a request is handled, as stopping and
         * restarting costs two epoll_ctl calls a request; what a client
         * pipelines meanwhile waits in rbuf, up to one read chunk. */
        c->io->read(c, !c->file.active && !c->body_paused && !c->peer_eof &&
                           c->out.len < HTTP_OUT_HIGH_WATER &&
                           (c->phase != CONN_WAIT || c->rbuf.len < HTTP_READ_CHUNK));
    c->io->flush(c);
    if (c->phase == CONN_IDLE && c->rbuf.len == 0 && c->rbuf.cap)
        buf_free(&c->rbuf);
}

static void run_rbuf(struct http_conn *c)
{
    c->view = c->rbuf.ptr;
    c->view_abs = c->rbuf_abs;
    c->view_len = c->rbuf.len;
    process(c);
    keep_unparsed(c, true);
}

/* Tunnel bytes go straight to the handler, from whichever buffer holds them. */
static void tunnel_input(struct http_conn *c, const char *p, size_t n)
{
    if (!c->tunnel_cbs)
        return;
    c->io->timer(c, (uint64_t)c->tunnel_idle_ms);
    c->tunnel_cbs->on_data(c->tunnel_ud, slice_make(p, n));
}

void http_conn_input(struct http_conn *c, const char *p, size_t n)
{
    if (c->closing || n == 0)
        return;
    if (c->phase == CONN_TUNNEL) {
        tunnel_input(c, p, n);
        return;
    }
    if (c->rbuf.len) {
        buf_append(&c->rbuf, p, n);
        run_rbuf(c);
    } else {
        c->view = p;
        c->view_abs = c->rbuf_abs;
        c->view_len = n;
        process(c);
        keep_unparsed(c, false);
    }
    after_batch(c);
}

void http_conn_input_rbuf(struct http_conn *c, size_t n)
{
    c->rbuf.len += n;
    c->rbuf.ptr[c->rbuf.len] = '\0';
    if (c->closing) {
        buf_free(&c->rbuf);
        return;
    }
    if (c->phase == CONN_TUNNEL) {
        struct buf b = c->rbuf;
        c->rbuf = (struct buf)BUF_INIT;
        tunnel_input(c, b.ptr, b.len);
        buf_free(&b);
        return;
    }
    run_rbuf(c);
    after_batch(c);
}

void http_conn_timeout(struct http_conn *c)
{
    enum http_timer_kind kind = c->timer_kind;
    c->timer_kind = TIMER_NONE;
    if (c->closing)
        return;
    if (kind == TIMER_IDLE)
        c->closing = true;
    else if (kind == TIMER_HEAD)
        conn_fail(c, 408, "Timed out reading the request head.");
    else if (kind == TIMER_BODY)
        conn_fail(c, 408, "Timed out reading the request body.");
    else if (kind == TIMER_TUNNEL) {
        const struct http_tunnel_cbs *cbs = c->tunnel_cbs;
        c->tunnel_cbs = NULL;
        c->closing = true;
        if (cbs)
            cbs->on_close(c->tunnel_ud, -ETIMEDOUT);
    } else if (kind == TIMER_SEND && c->file.active) {
        log_info("http: dropped a client that stopped reading a file response");
        http_conn_file_done(c, false);
        return;
    } else
        return;
    after_batch(c);
}

void http_conn_gone(struct http_conn *c, int reason)
{
    struct http_xreq *r = c->req;
    c->closing = true;
    if (c->file.active) {
        close(c->file.fd);
        c->file.active = false;
    }
    if (c->tunnel_cbs) {
        const struct http_tunnel_cbs *cbs = c->tunnel_cbs;
        c->tunnel_cbs = NULL;
        cbs->on_close(c->tunnel_ud, reason);
    }
    if (r) {
        if (r->dispatched) {
            detach(c, r, reason);
        } else {
            c->req = NULL;
            xreq_free(r);
        }
    }
    buf_free(&c->rbuf);
}

void http_conn_drained(struct http_conn *c)
{
    struct http_xreq *r = c->req;
    if (c->phase == CONN_TUNNEL) {
        if (c->tunnel_cbs && !c->closing)
            c->tunnel_cbs->on_drain(c->tunnel_ud);
        return;
    }
    if (r && r->responding && !c->closing) {
        if (r->pub.on_drain)
            r->pub.on_drain(&r->pub);
        return;
    }
    if (!c->closing && !c->body_paused && c->phase != CONN_WAIT && !c->file.active)
        c->io->read(c, true);
}

bool http_conn_peer_eof(struct http_conn *c)
{
    if (c->closing || !c->req || c->phase != CONN_WAIT)
        return false;
    c->peer_eof = true;
    c->io->read(c, false);
    return true;
}

/* Sends c->out before the loop waits again (see http_conn_io). */
static void flush_soon(struct http_conn *c)
{
    if (c->io->flush_soon)
        c->io->flush_soon(c);
    else
        c->io->flush(c);
}

void http_conn_drain(struct http_conn *c)
{
    if (!c->closing && c->phase == CONN_IDLE && !c->req)
        after_batch(c);
}

/* ---- the public request API ---- */

void http_response_header(struct http_request *req, struct slice name, struct slice value)
{
    for (size_t i = 0; i < name.len; i++)
        if (!is_tchar((unsigned char)name.ptr[i])) {
            log_warn("dropped response header with an invalid name");
            return;
        }
    for (size_t i = 0; i < value.len; i++)
        if (value.ptr[i] == '\r' || value.ptr[i] == '\n' || value.ptr[i] == '\0') {
            log_warn("dropped response header %.*s: control character in value", SLICE_FMT(name));
            return;
        }
    struct buf *b = &req->resp_headers;
    buf_reserve(b, name.len + value.len + 4);
    buf_append_slice(b, name);
    buf_append(b, ": ", 2);
    buf_append_slice(b, value);
    buf_append(b, "\r\n", 2);
}

void http_respond(struct http_request *req, int status, struct slice content_type,
                  struct slice body)
{
    core_assert(status >= 100 && status <= 999);
    struct http_xreq *r = (struct http_xreq *)req;
    struct http_conn *c = req->conn;
    req->status = status;
    log_request(req->loop, c ? c->lim : NULL, r, c ? c->remote : NULL, status, body.len);
    if (!c) {
        xreq_free(r);
        return;
    }
    core_assert(c->req == r);
    /* A streaming handler may answer before the body is in: the rest of the
     * body would then be mistaken for the next request, so the connection
     * closes after this response. */
    bool keep =
        req->keep_alive && r->body_done && !c->closing && !c->loop->draining && !c->peer_eof;
    write_response(c, status, keep, req->method != HTTP_M_HEAD, buf_slice(&req->resp_headers),
                   content_type, body, body.len);
    c->req = NULL;
    c->phase = CONN_IDLE;
    c->body_paused = false;
    if (!keep)
        c->closing = true;
    xreq_free(r);
    if (!c->in_process) {
        if (!c->closing)
            run_rbuf(c);
        after_batch(c);
    }
}

void http_conn_file_done(struct http_conn *c, bool sent)
{
    if (!c->file.active)
        return;
    close(c->file.fd);
    c->file.active = false;
    if (!sent) {
        c->closing = true;
        buf_reset(&c->out);
    } else if (!c->closing) {
        run_rbuf(c);
    }
    after_batch(c);
}

/* For io layers without sendfile (tests, fuzzing): the file goes through c->out. */
static bool read_into_out(struct http_conn *c, int fd, uint64_t offset, uint64_t length)
{
    buf_reserve(&c->out, length);
    while (length) {
        ssize_t n = pread(fd, c->out.ptr + c->out.len, length, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        c->out.len += (size_t)n;
        offset += (uint64_t)n;
        length -= (uint64_t)n;
    }
    c->out.ptr[c->out.len] = '\0';
    return true;
}

void http_respond_file(struct http_request *req, int status, struct slice content_type, int fd,
                       uint64_t offset, uint64_t length)
{
    core_assert(status >= 100 && status <= 999 && fd >= 0);
    struct http_xreq *r = (struct http_xreq *)req;
    struct http_conn *c = req->conn;
    req->status = status;
    log_request(req->loop, c ? c->lim : NULL, r, c ? c->remote : NULL, status, length);
    if (!c) {
        close(fd);
        xreq_free(r);
        return;
    }
    core_assert(c->req == r && !c->file.active);
    bool keep =
        req->keep_alive && r->body_done && !c->closing && !c->loop->draining && !c->peer_eof;
    write_response(c, status, keep, false, buf_slice(&req->resp_headers), content_type, SLICE_NULL,
                   length);
    bool bodyless = status < 200 || status == 204 || status == 304;
    if (req->method == HTTP_M_HEAD || bodyless || length == 0) {
        close(fd);
    } else if (c->loop->sends_files) {
        c->file = (struct http_conn_file){true, fd, offset, length};
    } else {
        if (!read_into_out(c, fd, offset, length))
            keep = false;
        close(fd);
    }
    c->req = NULL;
    c->phase = CONN_IDLE;
    c->body_paused = false;
    if (!keep)
        c->closing = true;
    xreq_free(r);
    if (!c->in_process) {
        if (!c->closing)
            run_rbuf(c);
        after_batch(c);
    }
}

struct slice http_request_remote(const struct http_request *req)
{
    return req->conn ? slice_cstr(req->conn->remote) : SLICE_NULL;
}

/* ---- streamed responses ---- */

void http_respond_start(struct http_request *req, int status, long long length, bool add_date)
{
    core_assert(status >= 200 && status <= 999);
    struct http_xreq *r = (struct http_xreq *)req;
    struct http_conn *c = req->conn;
    core_assert(!r->responding);
    req->status = status;
    r->responding = true;
    bool bodyless = status == 204 || status == 304;
    r->send_body = !bodyless && req->method != HTTP_M_HEAD;
    if (!c)
        return;
    core_assert(c->req == r);
    bool keep =
        req->keep_alive && r->body_done && !c->closing && !c->loop->draining && !c->peer_eof;
    bool announce = length >= 0 && status != 204 && !(status == 304 && req->method != HTTP_M_HEAD);
    r->chunked_out = r->send_body && length < 0 && !r->http10;
    if (r->send_body && length < 0 && r->http10)
        keep = false; /* the body ends when the connection does */
    r->keep_out = keep;
    struct slice extra = buf_slice(&req->resp_headers);
    buf_reserve(&c->out, 160 + extra.len);
    char *p = c->out.ptr + c->out.len;
    const char *reason = http_status_reason(status);
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, reason, strlen(reason));
    p = PUT_LIT(p, "\r\n");
    if (add_date) {
        p = PUT_LIT(p, "Date: ");
        p = put(p, c->loop->date, TIMEFMT_HTTP_LEN);
        p = PUT_LIT(p, "\r\n");
    }
    if (announce) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put_u64(p, (uint64_t)length);
        p = PUT_LIT(p, "\r\n");
    } else if (r->chunked_out) {
        p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    }
    p = keep ? PUT_LIT(p, "Connection: keep-alive\r\n") : PUT_LIT(p, "Connection: close\r\n");
    p = put(p, extra.ptr, extra.len);
    p = PUT_LIT(p, "\r\n");
    c->out.len = (size_t)(p - c->out.ptr);
    *p = '\0';
    if (!c->in_process)
        flush_soon(c);
}

bool http_respond_write(struct http_request *req, struct slice chunk)
{
    struct http_xreq *r = (struct http_xreq *)req;
    struct http_conn *c = req->conn;
    core_assert(r->responding);
    if (!c || c->closing || !r->send_body || chunk.len == 0)
        return true;
    r->sent += chunk.len;
    if (r->chunked_out) {
        char size[24];
        int n = snprintf(size, sizeof(size), "%zx\r\n", chunk.len);
        buf_reserve(&c->out, (size_t)n + chunk.len + 2);
        buf_append(&c->out, size, (size_t)n);
        buf_append_slice(&c->out, chunk);
        buf_append(&c->out, "\r\n", 2);
    } else {
        buf_append_slice(&c->out, chunk);
    }
    if (!c->in_process)
        flush_soon(c);
    /* The flush may have failed and closed the connection meanwhile. */
    return req->conn == NULL || c->out.len < HTTP_OUT_HIGH_WATER;
}

void http_respond_end(struct http_request *req, bool complete)
{
    struct http_xreq *r = (struct http_xreq *)req;
    struct http_conn *c = req->conn;
    core_assert(r->responding);
    log_request(req->loop, c ? c->lim : NULL, r, c ? c->remote : NULL, req->status,
                (size_t)r->sent);
    if (!c) {
        xreq_free(r);
        return;
    }
    core_assert(c->req == r);
    if (complete && r->chunked_out && !c->closing)
        buf_append(&c->out, "0\r\n\r\n", 5);
    c->req = NULL;
    c->phase = CONN_IDLE;
    c->body_paused = false;
    if (!complete || !r->keep_out)
        c->closing = true;
    xreq_free(r);
    if (!c->in_process) {
        if (!c->closing)
            run_rbuf(c);
        after_batch(c);
    }
}

void http_request_pause_body(struct http_request *req, bool pause)
{
    struct http_conn *c = req->conn;
    if (!c || c->body_paused == pause)
        return;
    c->body_paused = pause;
    if (c->closing || c->phase != CONN_BODY || c->in_process)
        return;
    if (!pause)
        run_rbuf(c); /* the bytes read before the pause come first */
    after_batch(c);
}

/* ---- protocol upgrades ---- */

/* The bytes after the current request, wherever they are now. */
static struct slice unparsed(const struct http_conn *c)
{
    if (c->view)
        return slice_make(c->view + (c->pos_abs - c->view_abs),
                          c->view_len - (size_t)(c->pos_abs - c->view_abs));
    return slice_make(c->rbuf.ptr + (c->pos_abs - c->rbuf_abs),
                      c->rbuf.len - (size_t)(c->pos_abs - c->rbuf_abs));
}

struct http_tunnel *http_respond_upgrade(struct http_request *req,
                                         const struct http_tunnel_cbs *cbs, void *ud,
                                         int idle_timeout_ms, struct buf *early)
{
    struct http_xreq *r = (struct http_xreq *)req;
    struct http_conn *c = req->conn;
    core_assert(req->upgrade && !r->responding && idle_timeout_ms > 0);
    req->status = 101;
    log_request(req->loop, c ? c->lim : NULL, r, c ? c->remote : NULL, 101, 0);
    if (!c) {
        xreq_free(r);
        return NULL;
    }
    /* The whole request has been parsed, so pos_abs is where the new
     * protocol's bytes begin. */
    core_assert(c->req == r && c->phase == CONN_WAIT);
    struct slice extra = buf_slice(&req->resp_headers);
    buf_reserve(&c->out, 64 + extra.len);
    buf_append_cstr(&c->out, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n");
    buf_append_slice(&c->out, extra);
    buf_append(&c->out, "\r\n", 2);
    struct slice rest = unparsed(c);
    buf_append_slice(early, rest);
    c->pos_abs += rest.len;
    c->req = NULL;
    xreq_free(r);
    c->phase = CONN_TUNNEL;
    c->tunnel_cbs = cbs;
    c->tunnel_ud = ud;
    c->tunnel_idle_ms = idle_timeout_ms;
    c->tunnel_paused = false;
    if (!c->in_process) {
        c->rbuf_abs = c->pos_abs;
        buf_free(&c->rbuf);
        after_batch(c);
    }
    return (struct http_tunnel *)c;
}

bool http_tunnel_write(struct http_tunnel *t, struct slice data)
{
    struct http_conn *c = (struct http_conn *)t;
    if (c->closing || data.len == 0)
        return true;
    buf_append_slice(&c->out, data);
    c->io->timer(c, (uint64_t)c->tunnel_idle_ms);
    if (!c->in_process)
        flush_soon(c);
    /* The flush may have failed: the connection is then closing. */
    return c->closing || c->out.len < HTTP_OUT_HIGH_WATER;
}

void http_tunnel_pause(struct http_tunnel *t, bool pause)
{
    struct http_conn *c = (struct http_conn *)t;
    c->tunnel_paused = pause;
    if (!c->closing && !c->in_process)
        c->io->read(c, !pause);
}

void http_tunnel_close(struct http_tunnel *t)
{
    struct http_conn *c = (struct http_conn *)t;
    c->tunnel_cbs = NULL;
    if (c->closing)
        return;
    c->closing = true;
    if (!c->in_process)
        after_batch(c);
}
