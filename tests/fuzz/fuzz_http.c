/* Feeds one request stream to the connection state machine, split into
 * pieces whose sizes come from the input's first byte, with routes that
 * answer at once, later (async), by streaming the body, and by taking a
 * protocol upgrade: the tunnel then echoes what comes, and closes on 'Q'. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

static void f_flush(struct http_conn *c)
{
    buf_reset(&c->out);
}
static void f_close(struct http_conn *c)
{
    (void)c;
}
static void f_read(struct http_conn *c, bool on)
{
    (void)c;
    (void)on;
}
static void f_timer(struct http_conn *c, uint64_t ms)
{
    (void)c;
    (void)ms;
}
static const struct http_conn_io io = {
    .flush = f_flush, .close = f_close, .read = f_read, .timer = f_timer};

static struct http_request *pending;

static void h_echo(struct http_request *req)
{
    struct slice v;
    http_request_query(req, "q", &v);
    http_request_header(req, "content-type");
    http_respond(req, 200, SLICE_LIT("text/plain"), req->body);
}
static void h_async(struct http_request *req)
{
    pending = req;
}
static int s_body(struct http_request *req, struct slice chunk)
{
    (void)req;
    return chunk.len > 100;
}
static void s_end(struct http_request *req, int status)
{
    (void)status;
    http_respond(req, 201, SLICE_NULL, SLICE_NULL);
}
static void h_stream(struct http_request *req)
{
    req->on_body = s_body;
    req->on_body_end = s_end;
}

static struct http_request *pending_ws;
static struct http_tunnel *tun;

static void t_data(void *ud, struct slice d)
{
    (void)ud;
    if (!tun)
        return;
    if (d.len && d.ptr[0] == 'Q') {
        http_tunnel_close(tun);
        tun = NULL;
        return;
    }
    if (!http_tunnel_write(tun, d) && tun)
        http_tunnel_pause(tun, true);
}
static void t_drain(void *ud)
{
    (void)ud;
}
static void t_close(void *ud, int status)
{
    (void)ud;
    (void)status;
    tun = NULL;
}
static const struct http_tunnel_cbs tcbs = {t_data, t_drain, t_close};

static void h_ws(struct http_request *req)
{
    pending_ws = req;
}

/* Answers the held /ws request once it is complete (or its client gone). */
static void answer_ws(struct http_conn *c, bool last)
{
    struct http_request *r = pending_ws;
    if (!r || (r->conn && c->phase != CONN_WAIT && !last))
        return;
    pending_ws = NULL;
    if (r->upgrade && (!r->conn || c->phase == CONN_WAIT)) {
        struct buf early = BUF_INIT;
        http_response_header(r, SLICE_LIT("Upgrade"), SLICE_LIT("websocket"));
        tun = http_respond_upgrade(r, &tcbs, NULL, 1000, &early);
        if (early.len)
            t_data(NULL, buf_slice(&early));
        buf_free(&early);
    } else {
        http_respond(r, 200, SLICE_NULL, SLICE_LIT("plain"));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_router *router;
    static struct http_loop loop;
    static const struct http_limits lim = {512, 10, 128, 256, 1000, 1000, 1000, false};
    if (!router) {
        router = http_router_new();
        http_router_add(router, HTTP_M_OTHER, "/e/:a/:b", h_echo, 0, "echo");
        http_router_add(router, HTTP_M_GET, "/async", h_async, 0, "async");
        http_router_add(router, HTTP_M_POST, "/s/:x", h_stream, HTTP_ROUTE_STREAM_BODY, "stream");
        http_router_add(router, HTTP_M_OTHER, "/ws", h_ws,
                        HTTP_ROUTE_STREAM_BODY | HTTP_ROUTE_UPGRADE, "ws");
        memset(loop.date, 'D', TIMEFMT_HTTP_LEN);
    }
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    data++, size--;
    struct http_conn *c = calloc(1, sizeof(*c));
    http_conn_init(c, &loop, &io, &lim, router);
    for (size_t i = 0; i < size; i += step) {
        size_t n = size - i < step ? size - i : step;
        /* Copied so a read past the piece is a read past an allocation. */
        char *piece = malloc(n);
        memcpy(piece, data + i, n);
        http_conn_input(c, piece, n);
        free(piece);
        if (pending) {
            struct http_request *r = pending;
            pending = NULL;
            http_respond(r, 202, SLICE_NULL, SLICE_LIT("x"));
        }
        answer_ws(c, false);
    }
    answer_ws(c, true);
    http_conn_timeout(c);
    http_conn_gone(c, -1);
    if (pending) {
        http_respond(pending, 200, SLICE_NULL, SLICE_NULL);
        pending = NULL;
    }
    buf_free(&c->out);
    buf_free(&c->wout);
    free(c);
    return 0;
}
