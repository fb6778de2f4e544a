/* Streamed responses and request-body pausing (the proxy's side of the http
 * layer), on the socketless connection with a fake io table. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake_conn.h"
#include "http/internal.h"

static int drains;
static struct http_request *held;
static struct buf body;

static void on_drain(struct http_request *req)
{
    (void)req;
    drains++;
}

static int s_body(struct http_request *req, struct slice chunk)
{
    buf_append_slice(&body, chunk);
    http_request_pause_body(req, true);
    return 0;
}

static void s_end(struct http_request *req, int status)
{
    cr_assert_eq(status, 0);
    http_response_header(req, SLICE_LIT("X-A"), SLICE_LIT("1"));
    http_respond_start(req, 200, -1, false);
    http_respond_write(req, SLICE_LIT("hello"));
    http_respond_write(req, SLICE_LIT(" world"));
    http_respond_end(req, true);
}

static void h_stream(struct http_request *req)
{
    held = req;
    req->on_body = s_body;
    req->on_body_end = s_end;
    req->on_drain = on_drain;
}

static void h_hold(struct http_request *req)
{
    held = req;
    req->on_drain = on_drain;
}

static void setup(void)
{
    fake_setup();
    http_router_add(router, HTTP_M_POST, "/s", h_stream, HTTP_ROUTE_STREAM_BODY, "s");
    http_router_add(router, HTTP_M_OTHER, "/hold", h_hold, HTTP_ROUTE_STREAM_BODY, "hold");
    held = NULL;
    drains = 0;
    buf_reset(&body);
}

static void teardown(void)
{
    fake_teardown();
    buf_free(&body);
}

TestSuite(http_stream, .init = setup, .fini = teardown);

Test(http_stream, chunked_response_and_paused_body)
{
    struct http_conn *c = conn_new();
    feed(c, "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab");
    /* The handler paused the body: no reading, no body timer. */
    cr_assert_not(f_reading);
    cr_assert_eq(f_timer_ms, 0);
    cr_assert_str_eq(body.ptr, "ab");
    http_request_pause_body(held, false);
    cr_assert(f_reading);
    cr_assert_eq(f_timer_ms, 2000);
    feed(c, "cd");
    cr_assert_str_eq(body.ptr, "abcd");
    /* paused again by the handler: the end of the body waits too */
    cr_assert_eq(c->out.len, 0);
    http_request_pause_body(held, false);
    cr_assert_str_eq(c->out.ptr, "HTTP/1.1 200 OK\r\n"
                                 "Transfer-Encoding: chunked\r\n"
                                 "Connection: keep-alive\r\n"
                                 "X-A: 1\r\n"
                                 "\r\n"
                                 "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    cr_assert_not(c->closing);
    conn_free(c);
}

/* Pausing holds back the rest of a read already taken from the socket, so
 * a handler handing each piece to another thread gets the next one only
 * once it resumes. */
Test(http_stream, pause_holds_bytes_already_read)
{
    struct http_conn *c = conn_new();
    feed(c, "POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "2\r\nab\r\n2\r\ncd\r\n1\r\ne\r\n0\r\n\r\n"
            "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_str_eq(body.ptr, "ab");
    cr_assert_not(f_reading);
    cr_assert_eq(c->out.len, 0);
    http_request_pause_body(held, false);
    cr_assert_str_eq(body.ptr, "abcd");
    cr_assert_eq(c->out.len, 0);
    http_request_pause_body(held, false);
    cr_assert_str_eq(body.ptr, "abcde");
    cr_assert_eq(c->out.len, 0);
    http_request_pause_body(held, false);
    /* the body ended, the answer went out, and the pipelined request after
     * it was parsed from the held bytes */
    cr_assert(strstr(c->out.ptr, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
    cr_assert(strstr(c->out.ptr, "HTTP/1.1 404 Not Found\r\n"), "%s", c->out.ptr);
    conn_free(c);
}

Test(http_stream, http10_gets_a_close_delimited_body_and_head_gets_none)
{
    struct http_conn *c = conn_new();
    feed(c, "GET /hold HTTP/1.0\r\n\r\n");
    cr_assert_not_null(held);
    http_respond_start(held, 200, -1, true);
    http_respond_write(held, SLICE_LIT("abc"));
    http_respond_end(held, true);
    cr_assert_str_eq(c->out.ptr, "HTTP/1.1 200 OK\r\n"
                                 "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                                 "Connection: close\r\n"
                                 "\r\n"
                                 "abc");
    cr_assert(c->closing);
    conn_free(c);

    c = conn_new();
    feed(c, "HEAD /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    http_respond_start(held, 200, 1234, false);
    http_respond_write(held, SLICE_LIT("ignored"));
    http_respond_end(held, true);
    cr_assert_str_eq(c->out.ptr, "HTTP/1.1 200 OK\r\n"
                                 "Content-Length: 1234\r\n"
                                 "Connection: keep-alive\r\n"
                                 "\r\n");
    conn_free(c);
}

Test(http_stream, back_pressure_and_truncation)
{
    struct http_conn *c = conn_new();
    feed(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_request *req = held;
    http_respond_start(req, 200, 1 << 20, false);
    static char big[64 * 1024];
    int accepted = 0;
    while (http_respond_write(req, slice_make(big, sizeof(big))))
        accepted++;
    /* Refused once the unsent output passes the high-water mark. */
    cr_assert_eq(accepted, HTTP_OUT_HIGH_WATER / (int)sizeof(big) - 1);
    buf_reset(&c->out);
    http_conn_drained(c);
    cr_assert_eq(drains, 1);
    /* Cut short: the connection closes and the pipelined request is dropped. */
    held = NULL;
    http_respond_end(req, false);
    cr_assert(c->closing);
    cr_assert_null(held);
    conn_free(c);
}

static int gone;

static void on_gone(struct http_request *req)
{
    gone++;
    /* Writes to a detached request are dropped; ending frees it. */
    cr_assert(http_respond_write(req, SLICE_LIT("x")));
    http_respond_end(req, true);
}

Test(http_stream, client_gone_while_streaming_calls_on_gone)
{
    struct http_conn *c = conn_new();
    feed(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    gone = 0;
    held->on_gone = on_gone;
    http_respond_start(held, 200, -1, false);
    http_conn_gone(c, -ECONNRESET);
    cr_assert_eq(gone, 1);
    buf_free(&c->out);
    free(c);
}
