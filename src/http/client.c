/* The HTTP/1.1 client (client.h): upstream connections on libuv, one
 * exchange at a time on each, responses parsed by http-parser. Load: every
 * proxied request passes through here, so a kept-alive connection is reused
 * LIFO (the warmest first), response reads go through the loop's shared read
 * buffer and only header bytes are copied.
 *
 * Memory per exchange is bounded: the request body queue stops accepting at
 * HTTP_OUT_HIGH_WATER (the caller pauses its producer), the response is
 * forwarded as it is read, and reading pauses when the consumer asks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "http/client.h"
#include "http/internal.h"

enum { MAX_RESP_HEAD = 64 * 1024, MAX_RESP_HEADERS = 200 };

enum cstate { CC_CONNECTING, CC_ACTIVE, CC_IDLE, CC_CLOSING };

struct hoff {
    size_t name_off, name_len, val_off, val_len;
};

/* A connection; while it carries an exchange it is also the exchange handle. */
struct http_cconn {
    struct http_client_pool *pool;
    struct http_loop *loop;
    enum cstate state;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_timer_t timer;
    uv_write_t wreq;
    http_parser hp;
    struct buf out, wout;
    bool writing, connected, reused, reading, paused, want_drain;
    bool chunked, head_method, body_done, resp_done, keep, in_head, got_bytes;
    bool upgrade, switching, tunnel; /* asked for a 101; got its head; raw bytes since */
    bool flush_queued;               /* on the loop's cflushq */
    struct http_cconn *flush_next;
    int deferred_err;
    uint64_t deadline;  /* loop ms */
    uint64_t timer_due; /* when the armed timer fires; it re-arms for a later deadline */
    int pending_close;
    struct http_client_cbs cbs;
    void *ud;
    bool has_ud; /* false once the exchange ended or was aborted */

    struct buf hb; /* response header bytes */
    struct hoff *hoff;
    size_t nh, caph;
    bool in_value;

    struct http_cconn *prev, *next; /* the loop's list */
    struct http_cconn *inext;       /* the pool's idle list */
};

struct http_client_pool {
    struct http_loop *loop;
    struct sockaddr_storage addr;
    struct http_client_opts opts;
    struct http_cconn *idle;
    unsigned nidle, nconns, nactive;
    bool freed;
};

/* ---- pools ---- */

static int parse_addr(const char *spec, struct sockaddr_storage *ss)
{
    const char *colon = strrchr(spec, ':');
    char host[64];
    if (!colon || colon == spec || !colon[1] || strlen(colon + 1) > 5)
        return -1;
    int port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535)
        return -1;
    size_t n = (size_t)(colon - spec);
    if (spec[0] == '[') {
        if (n < 3 || spec[n - 1] != ']' || n - 2 >= sizeof(host))
            return -1;
        memcpy(host, spec + 1, n - 2);
        host[n - 2] = '\0';
        return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0 ? 0 : -1;
    }
    if (n >= sizeof(host))
        return -1;
    memcpy(host, spec, n);
    host[n] = '\0';
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ? 0 : -1;
}

struct http_client_pool *http_client_pool_new(struct http_loop *loop, const char *addr,
                                              const struct http_client_opts *opts)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (parse_addr(addr, &ss) != 0)
        return NULL;
    struct http_client_pool *p = xcalloc(1, sizeof(*p));
    p->loop = loop;
    p->addr = ss;
    p->opts = *opts;
    return p;
}

static void cc_close(struct http_cconn *cc);

void http_client_pool_free(struct http_client_pool *pool)
{
    if (!pool)
        return;
    pool->freed = true;
    while (pool->idle) {
        struct http_cconn *cc = pool->idle;
        pool->idle = cc->inext;
        pool->nidle--;
        cc_close(cc);
    }
    if (pool->nconns == 0)
        free(pool);
}

unsigned http_client_pool_active(const struct http_client_pool *pool)
{
    return pool->nactive;
}

/* ---- connections ---- */

static void on_cc_close(uv_handle_t *h)
{
    struct http_cconn *cc = h->data;
    if (--cc->pending_close)
        return;
    struct http_client_pool *pool = cc->pool;
    buf_free(&cc->out);
    buf_free(&cc->wout);
    buf_free(&cc->hb);
    free(cc->hoff);
    free(cc);
    if (--pool->nconns == 0 && pool->freed)
        free(pool);
}

static void unlink_loop(struct http_cconn *cc)
{
    struct http_loop *l = cc->loop;
    if (cc->prev)
        cc->prev->next = cc->next;
    else if (l->cconns == cc)
        l->cconns = cc->next;
    if (cc->next)
        cc->next->prev = cc->prev;
    cc->prev = cc->next = NULL;
}

static void cc_close(struct http_cconn *cc)
{
    if (cc->state == CC_CLOSING)
        return;
    if (cc->has_ud)
        cc->pool->nactive--;
    cc->has_ud = false;
    cc->state = CC_CLOSING;
    unlink_loop(cc);
    cc->pending_close = 2;
    uv_close((uv_handle_t *)&cc->timer, on_cc_close);
    uv_close((uv_handle_t *)&cc->tcp, on_cc_close);
}

static void on_timer(uv_timer_t *t);
static void flush(struct http_cconn *cc);

static void idle_remove(struct http_cconn *cc)
{
    struct http_client_pool *pool = cc->pool;
    for (struct http_cconn **pp = &pool->idle; *pp; pp = &(*pp)->inext)
        if (*pp == cc) {
            *pp = cc->inext;
            pool->nidle--;
            return;
        }
}

static void arm(struct http_cconn *cc, int ms)
{
    if (cc->tunnel)
        return;
    uint64_t due = uv_now(&cc->loop->uv) + (uint64_t)ms;
    cc->deadline = due;
    /* A later deadline needs no heap operation: the armed timer fires first
     * and re-arms for the rest (on_timer). */
    if (uv_is_active((uv_handle_t *)&cc->timer) && cc->timer_due <= due)
        return;
    cc->timer_due = due;
    uv_timer_start(&cc->timer, on_timer, (uint64_t)ms, 0);
}

/* The deadline that applies now: first byte once the whole request is out
 * and nothing came back yet, else the idle limit. */
static void rearm(struct http_cconn *cc)
{
    const struct http_client_opts *o = &cc->pool->opts;
    bool waiting = cc->body_done && !cc->out.len && !cc->writing && !cc->got_bytes;
    arm(cc, waiting ? o->first_byte_timeout_ms : o->idle_timeout_ms);
}

/* Ends the exchange with status and closes the connection. */
static void cc_fail(struct http_cconn *cc, int status)
{
    if (cc->state == CC_CLOSING)
        return;
    bool notify = cc->has_ud, connected = cc->connected;
    struct http_client_cbs cbs = cc->cbs;
    void *ud = cc->ud;
    cc_close(cc);
    if (notify)
        cbs.on_end(ud, status, connected);
}

static void on_timer(uv_timer_t *t)
{
    struct http_cconn *cc = t->data;
    uint64_t now = uv_now(&cc->loop->uv);
    if (cc->state == CC_IDLE) {
        if (cc->deadline > now) {
            cc->timer_due = cc->deadline;
            uv_timer_start(&cc->timer, on_timer, cc->deadline - now, 0);
            return;
        }
        idle_remove(cc);
        cc_close(cc);
        return;
    }
    if (cc->deferred_err) {
        cc_fail(cc, cc->deferred_err);
        return;
    }
    if (cc->tunnel)
        return;
    if (cc->deadline > now) {
        cc->timer_due = cc->deadline;
        uv_timer_start(&cc->timer, on_timer, cc->deadline - now, 0);
        return;
    }
    cc_fail(cc, -ETIMEDOUT);
}

static void on_write(uv_write_t *w, int status)
{
    struct http_cconn *cc = w->data;
    cc->writing = false;
    buf_reset(&cc->wout);
    if (cc->state == CC_CLOSING)
        return;
    if (status < 0) {
        cc_fail(cc, -ECONNRESET);
        return;
    }
    flush(cc);
}

/* Writes what is queued; from the loop only (never inside a caller's API
 * call), as a failure calls back. */
static void flush(struct http_cconn *cc)
{
    if (cc->writing || !cc->connected || cc->state == CC_CLOSING)
        return;
    if (cc->out.len) {
        uv_buf_t b = uv_buf_init(cc->out.ptr, (unsigned)cc->out.len);
        int n = uv_try_write((uv_stream_t *)&cc->tcp, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            cc_fail(cc, -ECONNRESET);
            return;
        }
        if (n > 0)
            buf_consume(&cc->out, (size_t)n);
        if (cc->out.len) {
            struct buf t = cc->wout;
            cc->wout = cc->out;
            cc->out = t;
            b = uv_buf_init(cc->wout.ptr, (unsigned)cc->wout.len);
            cc->wreq.data = cc;
            cc->writing = true;
            if (uv_write(&cc->wreq, (uv_stream_t *)&cc->tcp, &b, 1, on_write) != 0) {
                cc->writing = false;
                cc_fail(cc, -ECONNRESET);
            }
            return;
        }
        if (cc->body_done && !cc->got_bytes)
            rearm(cc);
    }
    if (cc->want_drain && cc->has_ud) {
        cc->want_drain = false;
        if (cc->cbs.on_drain)
            cc->cbs.on_drain(cc->ud);
    }
}

/* What the caller queued goes out once the loop has run this batch's
 * callbacks: a request whose body the same read shows to be broken is
 * aborted before any byte of it reaches the upstream, and a head leaves with
 * the body's first piece in one write. */
static void flush_soon(struct http_cconn *cc)
{
    if (cc->flush_queued || cc->state == CC_CLOSING)
        return;
    struct http_loop *l = cc->loop;
    cc->flush_queued = true;
    cc->flush_next = l->cflushq;
    l->cflushq = cc;
    http_loop_want_flush(l);
}

/* A connection closed while queued is still allocated here: its handles'
 * close callbacks run after the loop's check phase. */
void http_client_flush_queued(struct http_loop *l)
{
    while (l->cflushq) {
        struct http_cconn *cc = l->cflushq;
        l->cflushq = cc->flush_next;
        cc->flush_next = NULL;
        cc->flush_queued = false;
        flush(cc);
    }
}

/* ---- response parsing ---- */

/* A callback asked to stop: the exchange is over without on_end. */
static void drop_ud(struct http_cconn *cc)
{
    if (cc->has_ud)
        cc->pool->nactive--;
    cc->has_ud = false;
}

static int on_message_begin(http_parser *hp)
{
    struct http_cconn *cc = hp->data;
    buf_reset(&cc->hb);
    cc->nh = 0;
    cc->in_value = false;
    cc->in_head = true;
    return 0;
}

static int add_bytes(struct http_cconn *cc, const char *at, size_t len)
{
    if (cc->hb.len + len > MAX_RESP_HEAD)
        return -1;
    buf_append(&cc->hb, at, len);
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct http_cconn *cc = hp->data;
    if (!cc->in_head)
        return 0; /* trailers */
    if (cc->nh == 0 || cc->in_value) {
        if (cc->nh >= MAX_RESP_HEADERS)
            return -1;
        if (cc->nh == cc->caph) {
            cc->caph = cc->caph ? cc->caph * 2 : 32;
            cc->hoff = xrealloc(cc->hoff, cc->caph * sizeof(*cc->hoff));
        }
        cc->hoff[cc->nh++] = (struct hoff){cc->hb.len, 0, 0, 0};
        cc->in_value = false;
    }
    cc->hoff[cc->nh - 1].name_len += len;
    return add_bytes(cc, at, len);
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct http_cconn *cc = hp->data;
    if (!cc->in_head)
        return 0;
    struct hoff *h = &cc->hoff[cc->nh - 1];
    if (!cc->in_value) {
        h->val_off = cc->hb.len;
        cc->in_value = true;
    }
    h->val_len += len;
    return add_bytes(cc, at, len);
}

static int on_headers_complete(http_parser *hp)
{
    struct http_cconn *cc = hp->data;
    cc->in_head = false;
    int status = hp->status_code;
    if (status == 101 && !cc->upgrade)
        return -1;
    if (status < 200 && status != 101)
        return 0; /* interim: http-parser ends it with no body */
    if (!cc->has_ud)
        return -1;
    struct http_header stack_hs[32];
    struct http_header *hs = cc->nh <= 32 ? stack_hs : xmalloc(cc->nh * sizeof(*hs));
    for (size_t i = 0; i < cc->nh; i++) {
        struct hoff *o = &cc->hoff[i];
        hs[i].name = slice_make(cc->hb.ptr + o->name_off, o->name_len);
        hs[i].value = slice_trim(slice_make(cc->hb.ptr + o->val_off, o->val_len));
    }
    struct http_client_response res = {
        .status = status,
        .headers = hs,
        .nheaders = cc->nh,
        .content_length = (hp->flags & F_CHUNKED) || hp->content_length == UINT64_MAX
                              ? -1
                              : (long long)hp->content_length,
    };
    int rc = cc->cbs.on_head(cc->ud, &res);
    if (hs != stack_hs)
        free(hs);
    if (rc != 0 || !cc->has_ud) {
        drop_ud(cc);
        return -1;
    }
    cc->switching = status == 101;
    /* 1 tells http-parser the response has no body. */
    return cc->head_method ? 1 : 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    struct http_cconn *cc = hp->data;
    if (!cc->has_ud)
        return -1;
    if (cc->cbs.on_body(cc->ud, slice_make(at, len)) != 0 || !cc->has_ud) {
        drop_ud(cc);
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct http_cconn *cc = hp->data;
    if (cc->switching) {
        /* What follows the 101's head is the new protocol's. */
        cc->tunnel = true;
        http_parser_pause(hp, 1);
        return 0;
    }
    if (hp->status_code < 200)
        return 0;
    cc->resp_done = true;
    cc->keep = http_should_keep_alive(hp) != 0;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void start_reading(struct http_cconn *cc);

static void to_idle(struct http_cconn *cc)
{
    struct http_client_pool *pool = cc->pool;
    if (pool->freed || pool->nidle >= (unsigned)pool->opts.max_idle || cc->loop->draining) {
        cc_close(cc);
        return;
    }
    cc->state = CC_IDLE;
    cc->inext = pool->idle;
    pool->idle = cc;
    pool->nidle++;
    /* Reading stays on while idle, so an upstream closing the connection is
     * seen at once rather than on the next request. */
    cc->paused = false;
    start_reading(cc);
    arm(cc, pool->opts.pool_idle_ms);
}

/* The response is complete: report, then reuse the connection if both
 * directions ended cleanly. */
static void complete(struct http_cconn *cc, bool leftover)
{
    struct http_client_cbs cbs = cc->cbs;
    void *ud = cc->ud;
    bool reuse = cc->keep && cc->body_done && !leftover && cc->out.len == 0 && !cc->writing;
    cc->has_ud = false;
    cc->pool->nactive--;
    if (reuse)
        to_idle(cc);
    else
        cc_close(cc);
    cbs.on_end(ud, 0, true);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct http_cconn *cc = h->data;
    *b = uv_buf_init(cc->loop->rdbuf, HTTP_READ_CHUNK);
}

/* Hands tunnel bytes to on_body; n < 0 ends the tunnel. */
static void tunnel_bytes(struct http_cconn *cc, ssize_t n, const char *p)
{
    if (n < 0) {
        cc_fail(cc, n == UV_EOF ? 0 : -ECONNRESET);
        return;
    }
    int rc = cc->cbs.on_body(cc->ud, slice_make(p, (size_t)n));
    if (cc->state != CC_CLOSING && (rc != 0 || !cc->has_ud))
        cc_close(cc);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct http_cconn *cc = s->data;
    if (cc->state == CC_CLOSING || n == 0)
        return;
    if (cc->tunnel) {
        tunnel_bytes(cc, n, b->base);
        return;
    }
    if (cc->state == CC_IDLE) {
        /* Bytes or EOF on an idle connection: it can no longer be trusted. */
        idle_remove(cc);
        cc_close(cc);
        return;
    }
    size_t len = n > 0 ? (size_t)n : 0;
    if (n > 0) {
        cc->got_bytes = true;
        arm(cc, cc->pool->opts.idle_timeout_ms);
    }
    size_t done = http_parser_execute(&cc->hp, &settings, n > 0 ? b->base : NULL, len);
    if (cc->state == CC_CLOSING)
        return; /* a callback aborted the exchange */
    if (cc->tunnel) {
        uv_timer_stop(&cc->timer);
        cc->deadline = 0;
        if (done < len)
            tunnel_bytes(cc, (ssize_t)(len - done), b->base + done);
        else if (n < 0)
            tunnel_bytes(cc, n, NULL);
        return;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&cc->hp);
    if (cc->resp_done) {
        complete(cc, n < 0 || done < len);
        return;
    }
    if (!cc->has_ud) {
        /* on_head or on_body asked to stop. */
        cc_close(cc);
        return;
    }
    if (e != HPE_OK)
        cc_fail(cc, -EBADMSG);
    else if (n < 0)
        cc_fail(cc, -ECONNRESET);
}

static void start_reading(struct http_cconn *cc)
{
    if (!cc->reading && !cc->paused &&
        uv_read_start((uv_stream_t *)&cc->tcp, on_alloc, on_read) == 0)
        cc->reading = true;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct http_cconn *cc = req->data;
    if (cc->state == CC_CLOSING)
        return;
    if (status < 0) {
        cc_fail(cc, status);
        return;
    }
    cc->connected = true;
    cc->state = CC_ACTIVE;
    uv_tcp_nodelay(&cc->tcp, 1);
    rearm(cc);
    start_reading(cc);
    flush(cc);
}

/* ---- exchanges ---- */

struct http_client *http_client_send(struct http_client_pool *pool, struct slice head,
                                     unsigned flags, const struct http_client_cbs *cbs, void *ud)
{
    core_assert(!pool->freed && cbs->on_head && cbs->on_body && cbs->on_end);
    struct http_cconn *cc = pool->idle;
    if (cc) {
        pool->idle = cc->inext;
        pool->nidle--;
        cc->inext = NULL;
        cc->state = CC_ACTIVE;
        cc->reused = true;
    } else {
        cc = xcalloc(1, sizeof(*cc));
        cc->pool = pool;
        cc->loop = pool->loop;
        cc->state = CC_CONNECTING;
        uv_tcp_init(&pool->loop->uv, &cc->tcp);
        uv_timer_init(&pool->loop->uv, &cc->timer);
        cc->tcp.data = cc;
        cc->timer.data = cc;
        cc->next = pool->loop->cconns;
        if (cc->next)
            cc->next->prev = cc;
        pool->loop->cconns = cc;
        pool->nconns++;
    }
    pool->nactive++;
    cc->cbs = *cbs;
    cc->ud = ud;
    cc->has_ud = true;
    cc->chunked = flags & HTTP_CLIENT_CHUNKED;
    cc->head_method = flags & HTTP_CLIENT_HEAD;
    cc->upgrade = flags & HTTP_CLIENT_UPGRADE;
    cc->switching = cc->tunnel = false;
    cc->body_done = cc->resp_done = cc->keep = cc->paused = cc->want_drain = false;
    cc->got_bytes = false;
    http_parser_init(&cc->hp, HTTP_RESPONSE);
    cc->hp.data = cc;
    buf_reset(&cc->out);
    buf_append_slice(&cc->out, head);
    if (cc->connected) {
        rearm(cc);
        flush_soon(cc);
        return (struct http_client *)cc;
    }
    cc->creq.data = cc;
    int rc = uv_tcp_connect(&cc->creq, &cc->tcp, (const struct sockaddr *)&pool->addr, on_connect);
    if (rc != 0) {
        /* Reported from the loop, never from inside this call. */
        cc->deferred_err = rc;
        arm(cc, 0);
    } else {
        arm(cc, pool->opts.connect_timeout_ms);
    }
    return (struct http_client *)cc;
}

bool http_client_write(struct http_client *x, struct slice chunk)
{
    struct http_cconn *cc = (struct http_cconn *)x;
    if (cc->state == CC_CLOSING || chunk.len == 0)
        return true;
    if (cc->chunked) {
        char size[24];
        int n = snprintf(size, sizeof(size), "%zx\r\n", chunk.len);
        buf_append(&cc->out, size, (size_t)n);
        buf_append_slice(&cc->out, chunk);
        buf_append(&cc->out, "\r\n", 2);
    } else {
        buf_append_slice(&cc->out, chunk);
    }
    flush_soon(cc);
    if (cc->out.len + cc->wout.len >= HTTP_OUT_HIGH_WATER) {
        cc->want_drain = true;
        return false;
    }
    return true;
}

void http_client_finish(struct http_client *x)
{
    struct http_cconn *cc = (struct http_cconn *)x;
    if (cc->state == CC_CLOSING)
        return;
    cc->body_done = true;
    if (cc->chunked)
        buf_append(&cc->out, "0\r\n\r\n", 5);
    flush_soon(cc);
    if (cc->connected && !cc->deferred_err)
        rearm(cc);
}

void http_client_pause(struct http_client *x, bool pause)
{
    struct http_cconn *cc = (struct http_cconn *)x;
    if (cc->state == CC_CLOSING || cc->paused == pause)
        return;
    cc->paused = pause;
    if (!cc->connected)
        return;
    if (pause) {
        uv_read_stop((uv_stream_t *)&cc->tcp);
        cc->reading = false;
    } else {
        rearm(cc);
        start_reading(cc);
    }
}

void http_client_abort(struct http_client *x)
{
    struct http_cconn *cc = (struct http_cconn *)x;
    if (cc->has_ud)
        cc->pool->nactive--;
    cc->has_ud = false;
    cc_close(cc);
}

void http_client_loop_stop(struct http_loop *l)
{
    while (l->cconns) {
        if (l->cconns->state == CC_IDLE)
            idle_remove(l->cconns);
        cc_fail(l->cconns, -ECANCELED);
    }
}
