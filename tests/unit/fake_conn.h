/* The HTTP layer's connection state machine without sockets, shared by the
 * http unit tests: a fake io table that records what the server would do,
 * one fake loop, limits small enough to hit, and helpers to make, feed and
 * free connections. Each test file registers its own routes on `router`
 * after fake_setup(). */
#ifndef TESTS_UNIT_FAKE_CONN_H
#define TESTS_UNIT_FAKE_CONN_H

#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

static bool f_closed, f_reading;
static uint64_t f_timer_ms;

static inline void f_flush(struct http_conn *c)
{
    (void)c;
}
static inline void f_close(struct http_conn *c)
{
    (void)c;
    f_closed = true;
}
static inline void f_read(struct http_conn *c, bool on)
{
    (void)c;
    f_reading = on;
}
static inline void f_timer(struct http_conn *c, uint64_t ms)
{
    (void)c;
    f_timer_ms = ms;
}

static const struct http_conn_io fake_io = {
    .flush = f_flush, .close = f_close, .read = f_read, .timer = f_timer};

static struct http_loop floop;
static struct http_limits lim;
static struct http_router *router;

/* A fixed Date, a metrics slot, small limits and an empty router. */
static inline void fake_setup(void)
{
    memcpy(floop.date, "Thu, 01 Jan 1970 00:00:00 GMT", TIMEFMT_HTTP_LEN + 1);
    floop.metrics = http_metrics_slot_claim();
    lim = (struct http_limits){.max_header_bytes = 512,
                               .max_headers = 10,
                               .max_request_line = 128,
                               .max_body_bytes = 64,
                               .header_timeout_ms = 1000,
                               .idle_timeout_ms = 5000,
                               .body_timeout_ms = 2000};
    router = http_router_new();
}

static inline void fake_teardown(void)
{
    http_router_free(router);
    http_loop_spares_free(&floop);
    buf_free(&floop.logline);
}

static inline struct http_conn *conn_new(void)
{
    struct http_conn *c = calloc(1, sizeof(*c));
    f_closed = false;
    f_reading = false;
    http_conn_init(c, &floop, &fake_io, &lim, router);
    return c;
}

static inline void conn_free(struct http_conn *c)
{
    http_conn_gone(c, -1);
    buf_free(&c->out);
    buf_free(&c->wout);
    free(c);
}

static inline void feed(struct http_conn *c, const char *s)
{
    http_conn_input(c, s, strlen(s));
}

#endif
