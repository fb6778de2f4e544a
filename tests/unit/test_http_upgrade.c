/* Protocol upgrades in the http layer, on the socketless connection with a
 * fake io table: who may take an upgrade, the 101 written, the bytes that
 * follow the head, the tunnel's data, back-pressure, timeout and close. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake_conn.h"
#include "http/internal.h"

static struct http_request *held;
static bool saw_upgrade;

/* What the tunnel's callbacks saw. */
static struct buf tdata;
static int tdrains, tclosed, tclose_status;

static void t_data(void *ud, struct slice data)
{
    cr_assert_eq(ud, &tdata);
    buf_append_slice(&tdata, data);
}
static void t_drain(void *ud)
{
    (void)ud;
    tdrains++;
}
static void t_close(void *ud, int status)
{
    (void)ud;
    tclosed++;
    tclose_status = status;
}
static const struct http_tunnel_cbs tcbs = {t_data, t_drain, t_close};

static void h_plain(struct http_request *req)
{
    saw_upgrade = req->upgrade;
    http_respond(req, 200, SLICE_LIT("text/plain"), SLICE_LIT("A"));
}

static void h_hold(struct http_request *req)
{
    saw_upgrade = req->upgrade;
    held = req;
}

static void setup(void)
{
    fake_setup();
    http_router_add(router, HTTP_M_GET, "/plain", h_plain, 0, "plain");
    http_router_add(router, HTTP_M_OTHER, "/ws", h_hold,
                    HTTP_ROUTE_STREAM_BODY | HTTP_ROUTE_UPGRADE, "ws");
    held = NULL;
    saw_upgrade = false;
    buf_reset(&tdata);
    tdrains = tclosed = 0;
    tclose_status = 99;
}

static void teardown(void)
{
    fake_teardown();
    buf_free(&tdata);
}

TestSuite(http_upgrade, .init = setup, .fini = teardown);

static bool out_has(struct http_conn *c, const char *s)
{
    return c->out.len && strstr(c->out.ptr, s) != NULL;
}

#define WS_HEAD(path)                                                         \
    "GET " path " HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n" \
    "Upgrade: websocket\r\n\r\n"

Test(http_upgrade, refused_with_400_where_the_route_does_not_take_it)
{
    struct http_conn *c = conn_new();
    feed(c, WS_HEAD("/plain"));
    cr_assert(out_has(c, "HTTP/1.1 400 Bad Request\r\n"));
    cr_assert(out_has(c, "Protocol upgrades are not supported."));
    cr_assert(c->closing);
    cr_assert_not(saw_upgrade);
    conn_free(c);
}

Test(http_upgrade, a_lone_h2c_is_ignored_and_answered_in_http11)
{
    struct http_conn *c = conn_new();
    feed(c, "GET /plain HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
            "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_not(saw_upgrade);
    cr_assert_not(c->closing);
    /* Both requests answered: the one after the ignored upgrade is HTTP too. */
    const char *first = strstr(c->out.ptr, "HTTP/1.1 200 OK");
    cr_assert_not_null(first);
    cr_assert_not_null(strstr(first + 1, "HTTP/1.1 200 OK"));
    conn_free(c);
}

Test(http_upgrade, connect_and_upgrades_with_a_body_are_refused)
{
    struct http_conn *c = conn_new();
    feed(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            "Content-Length: 3\r\n\r\nabc");
    cr_assert(out_has(c, "An upgrade request cannot carry a body."));
    cr_assert_null(held);
    conn_free(c);

    c = conn_new();
    feed(c, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    cr_assert(out_has(c, "HTTP/1.1 400 "));
    cr_assert(c->closing);
    conn_free(c);
}

Test(http_upgrade, accepted_101_then_raw_bytes_both_ways)
{
    struct http_conn *c = conn_new();
    feed(c, WS_HEAD("/ws") "early");
    cr_assert_not_null(held);
    cr_assert(saw_upgrade);
    cr_assert_not(held->keep_alive);
    /* Bytes that come while the handler decides wait, unparsed. */
    feed(c, " more");
    http_response_header(held, SLICE_LIT("Upgrade"), SLICE_LIT("websocket"));
    struct buf early = BUF_INIT;
    struct http_tunnel *t = http_respond_upgrade(held, &tcbs, &tdata, 1234, &early);
    cr_assert_not_null(t);
    cr_assert_str_eq(c->out.ptr, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                 "Upgrade: websocket\r\n\r\n");
    cr_assert_eq(early.len, 10);
    cr_assert_eq(memcmp(early.ptr, "early more", 10), 0);
    buf_free(&early);
    cr_assert(f_reading);
    cr_assert_eq(f_timer_ms, 1234);

    /* Anything, even what looks like HTTP, is the tunnel's now. */
    buf_reset(&c->out);
    feed(c, "GET / HTTP/1.1\r\n\r\n\x00\xff");
    http_conn_input(c, "\x00\xff", 2);
    cr_assert_eq(tdata.len, 20);
    cr_assert_eq(memcmp(tdata.ptr, "GET / HTTP/1.1\r\n\r\n\x00\xff", 20), 0);
    cr_assert_eq(c->out.len, 0);

    cr_assert(http_tunnel_write(t, SLICE_LIT("back")));
    cr_assert_eq(c->out.len, 4);
    http_tunnel_pause(t, true);
    cr_assert_not(f_reading);
    http_tunnel_pause(t, false);
    cr_assert(f_reading);

    /* Closing from the handler's side calls nothing back. */
    http_tunnel_close(t);
    cr_assert(c->closing);
    cr_assert_eq(tclosed, 0);
    conn_free(c);
    cr_assert_eq(tclosed, 0);
}

Test(http_upgrade, a_non_101_answer_closes_the_connection)
{
    struct http_conn *c = conn_new();
    feed(c, WS_HEAD("/ws") WS_HEAD("/ws"));
    struct http_request *req = held;
    held = NULL;
    http_respond(req, 403, SLICE_NULL, SLICE_LIT("no"));
    cr_assert(out_has(c, "HTTP/1.1 403 Forbidden\r\n"));
    cr_assert(out_has(c, "Connection: close\r\n"));
    cr_assert(c->closing);
    /* The bytes after the refused upgrade are never parsed as a request. */
    cr_assert_null(held);
    conn_free(c);
}

Test(http_upgrade, back_pressure_drain_timeout_and_gone)
{
    struct http_conn *c = conn_new();
    feed(c, WS_HEAD("/ws"));
    struct buf early = BUF_INIT;
    struct http_tunnel *t = http_respond_upgrade(held, &tcbs, &tdata, 500, &early);
    cr_assert_eq(early.len, 0);
    static char big[64 * 1024];
    int accepted = 0;
    while (http_tunnel_write(t, slice_make(big, sizeof(big))))
        accepted++;
    cr_assert_eq(accepted, HTTP_OUT_HIGH_WATER / (int)sizeof(big) - 1);
    buf_reset(&c->out);
    http_conn_drained(c);
    cr_assert_eq(tdrains, 1);

    http_conn_timeout(c);
    cr_assert_eq(tclosed, 1);
    cr_assert_eq(tclose_status, -ETIMEDOUT);
    cr_assert(c->closing);
    conn_free(c);
    cr_assert_eq(tclosed, 1);

    c = conn_new();
    feed(c, WS_HEAD("/ws"));
    t = http_respond_upgrade(held, &tcbs, &tdata, 500, &early);
    cr_assert_not_null(t);
    http_conn_gone(c, -ECONNRESET);
    cr_assert_eq(tclosed, 2);
    cr_assert_eq(tclose_status, -ECONNRESET);
    buf_free(&c->out);
    free(c);
    buf_free(&early);
}

Test(http_upgrade, answered_after_the_client_went)
{
    struct http_conn *c = conn_new();
    feed(c, WS_HEAD("/ws"));
    struct http_request *req = held;
    http_conn_gone(c, -ECONNRESET);
    struct buf early = BUF_INIT;
    cr_assert_null(http_respond_upgrade(req, &tcbs, &tdata, 500, &early));
    cr_assert_eq(tclosed, 0);
    buf_free(&c->out);
    free(c);
}

Test(http_upgrade, h2c_is_ignored_even_where_upgrades_are_taken)
{
    struct http_conn *c = conn_new();
    feed(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n");
    cr_assert_not_null(held);
    cr_assert_not(saw_upgrade);
    cr_assert(held->keep_alive);
    http_respond(held, 200, SLICE_NULL, SLICE_LIT("plain"));
    cr_assert(out_has(c, "Connection: keep-alive\r\n"));
    cr_assert_not(c->closing);
    conn_free(c);
}
