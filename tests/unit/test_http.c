/* The HTTP layer without sockets: the router, the request accessors, and the
 * connection state machine fed byte strings split at every position, with a
 * fake io table that records what the server would do. Plus one real server
 * on 127.0.0.1:0 spoken to over a socket. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "fake_conn.h"
#include "http/internal.h"

static struct http_request *pending; /* held by the async route */
static struct buf streamed;
static int stream_end = 99;

static void h_text(struct http_request *req)
{
    http_respond(req, 200, SLICE_LIT("text/plain"), SLICE_LIT("A"));
}

static void h_echo(struct http_request *req)
{
    http_respond(req, 200, SLICE_LIT("text/plain"), req->body);
}

static void h_params(struct http_request *req)
{
    char out[256];
    int n = snprintf(out, sizeof(out), "%.*s|%.*s", SLICE_FMT(req->params[0]),
                     SLICE_FMT(req->params[1]));
    http_respond(req, 200, SLICE_NULL, slice_make(out, (size_t)n));
}

static void h_async(struct http_request *req)
{
    pending = req;
}

static int s_body(struct http_request *req, struct slice chunk)
{
    (void)req;
    buf_append_slice(&streamed, chunk);
    return 0;
}

static void s_end(struct http_request *req, int status)
{
    stream_end = status;
    http_respond(req, 201, SLICE_NULL, buf_slice(&streamed));
}

static void h_stream(struct http_request *req)
{
    req->on_body = s_body;
    req->on_body_end = s_end;
}

static void setup(void)
{
    fake_setup();
    http_router_add(router, HTTP_M_GET, "/a", h_text, 0, "a");
    http_router_add(router, HTTP_M_POST, "/echo", h_echo, 0, "echo");
    http_router_add(router, HTTP_M_GET, "/p/:x/y/:z", h_params, 0, "params");
    http_router_add(router, HTTP_M_GET, "/async", h_async, 0, "async");
    http_router_add(router, HTTP_M_POST, "/stream", h_stream, HTTP_ROUTE_STREAM_BODY, "stream");
    pending = NULL;
    buf_reset(&streamed);
    stream_end = 99;
}

static void teardown(void)
{
    fake_teardown();
}

TestSuite(http, .init = setup, .fini = teardown);

/* "200 404" from every status line in out. */
static void statuses(const struct buf *out, char *dst, size_t cap)
{
    size_t n = 0;
    dst[0] = '\0';
    for (const char *p = out->ptr; p && (p = strstr(p, "HTTP/1.1 ")); p += 9)
        n += (size_t)snprintf(dst + n, cap - n, "%s%.3s", n ? " " : "", p + 9);
}

/* Feeds s in two pieces split at `split`; returns the statuses. */
static void run_split(const char *s, size_t len, size_t split, char *st, size_t cap,
                      struct buf *out)
{
    struct http_conn *c = conn_new();
    http_conn_input(c, s, split);
    http_conn_input(c, s + split, len - split);
    statuses(&c->out, st, cap);
    if (out)
        buf_append_slice(out, buf_slice(&c->out));
    conn_free(c);
}

/* Every split position must give the same statuses and close decision. */
static void expect(const char *s, size_t len, const char *want, bool closes)
{
    char st[128];
    for (size_t split = 0; split <= len; split++) {
        run_split(s, len, split, st, sizeof(st), NULL);
        cr_assert_str_eq(st, want, "input %.*s split at %zu", (int)len, s, split);
        cr_assert_eq(f_closed, closes, "close flag at split %zu for %.*s", split, (int)len, s);
    }
    /* And one byte at a time. */
    struct http_conn *c = conn_new();
    for (size_t i = 0; i < len; i++)
        http_conn_input(c, s + i, 1);
    statuses(&c->out, st, sizeof(st));
    cr_assert_str_eq(st, want, "byte-at-a-time %.*s", (int)len, s);
    conn_free(c);
}

#define EXPECT(lit, want, closes) expect((lit), sizeof(lit) - 1, (want), (closes))

Test(http, simple_and_pipelined)
{
    EXPECT("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "200", false);
    EXPECT("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n", "200 404",
           false);
    EXPECT("DELETE /a HTTP/1.1\r\nHost: x\r\n\r\n", "405", false);
    EXPECT("GET /a HTTP/1.0\r\n\r\n", "200", true);
    EXPECT("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /a HTTP/1.1\r\n", "200",
           true);
}

Test(http, exact_response)
{
    struct buf out = BUF_INIT;
    char st[64];
    const char in[] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    run_split(in, sizeof(in) - 1, 10, st, sizeof(st), &out);
    cr_assert_str_eq(out.ptr, "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                              "Content-Length: 5\r\nConnection: keep-alive\r\n"
                              "Content-Type: text/plain\r\n\r\nhello");
    buf_reset(&out);
    const char head[] = "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n";
    run_split(head, sizeof(head) - 1, 3, st, sizeof(st), &out);
    cr_assert_str_eq(out.ptr, "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                              "Content-Length: 1\r\nConnection: keep-alive\r\n"
                              "Content-Type: text/plain\r\n\r\n");
    buf_reset(&out);
    const char nf[] = "GET /zz HTTP/1.1\r\nHost: x\r\n\r\n";
    run_split(nf, sizeof(nf) - 1, 0, st, sizeof(st), &out);
    cr_assert(strstr(out.ptr, "\r\n\r\n{\"status\":404,\"message\":\"The requested resource "
                              "wasn't found.\",\"data\":{}}"));
    cr_assert(strstr(out.ptr, "Content-Type: application/json\r\n"));
    buf_free(&out);
}

Test(http, chunked_bodies)
{
    struct buf out = BUF_INIT;
    char st[64];
    const char in[] = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n";
    for (size_t split = 0; split < sizeof(in); split++) {
        buf_reset(&out);
        run_split(in, sizeof(in) - 1, split, st, sizeof(st), &out);
        cr_assert_str_eq(st, "200");
        cr_assert(strstr(out.ptr, "\r\n\r\nabcde") != NULL, "split %zu: %s", split, out.ptr);
    }
    buf_free(&out);
    /* 64 bytes pass, 65 do not. */
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n0\r\n\r\n",
           "200", false);
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n1\r\nx\r\n0\r"
           "\n\r\n",
           "413", true);
}

Test(http, limits)
{
    char big[700];
    int n = snprintf(big, sizeof(big), "GET /a HTTP/1.1\r\nHost: x\r\nX-Big: %0500d\r\n\r\n", 0);
    expect(big, (size_t)n, "431", true);
    EXPECT("GET /a HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\n"
           "H: 1\r\nI: 1\r\nJ: 1\r\n\r\n",
           "431", true);
    EXPECT("GET /a HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\n"
           "H: 1\r\nI: 1\r\n\r\n",
           "200", false);
    n = snprintf(big, sizeof(big), "GET /a?%0150d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    expect(big, (size_t)n, "414", true);
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n", "413", true);
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n", "413", true);
}

Test(http, ambiguous_framing)
{
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
           "400", true);
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
           "400", true);
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: "
           "chunked\r\n\r\n0\r\n\r\n",
           "400", true);
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: "
           "1\r\n\r\n0\r\n\r\n",
           "400", true);
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "400", true);
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
           "400", true);
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
           "chunked\r\n\r\n0\r\n\r\n",
           "400", true);
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", "400",
           true);
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
           "chunked\r\n\r\nfffffffffffffffffff\r\n",
           "400", true);
    EXPECT("GET /a HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", "400", true);
    EXPECT("GET /a HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n", "400", true);
    EXPECT("GET /a HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", "400", true);
    EXPECT("GET /a HTTP/1.1\r\nHost: x\r\nX\0: a\r\n\r\n", "400", true);
    EXPECT("GET /a HTTP/1.1\r\n\r\n", "400", true);
    EXPECT("GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "400", true);
    EXPECT("GET /a HTTP/1.1\nHost: x\n\n", "400", true);
    EXPECT("GET /a HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", "400", true);
    EXPECT("GET /a HTTP/1.1\r\nHost : x\r\n\r\n", "400", true);
    EXPECT("GET /a HTTP/2.0\r\nHost: x\r\n\r\n", "505", true);
    EXPECT("CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n", "400", true);
}

/* RFC 9110 9.1: a method the server does not recognise is 501; bytes that
 * are no request line at all stay a 400. */
Test(http, unknown_methods_are_not_implemented)
{
    EXPECT("FROBNICATE /a HTTP/1.1\r\nHost: x\r\n\r\n", "501", true);
    EXPECT("GETX /a HTTP/1.1\r\nHost: x\r\n\r\n", "501", true);
    EXPECT("\x16\x03\x01\x02\x00\x01", "400", true);
    EXPECT(" GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "400", true);
    EXPECT("GET\t/a HTTP/1.1\r\nHost: x\r\n\r\n", "400", true);
}

Test(http, expect_continue)
{
    struct buf out = BUF_INIT;
    char st[64];
    const char in[] =
        "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    struct http_conn *c = conn_new();
    http_conn_input(c, in, sizeof(in) - 1);
    cr_assert_str_eq(c->out.ptr, "HTTP/1.1 100 Continue\r\n\r\n");
    http_conn_input(c, "hi", 2);
    statuses(&c->out, st, sizeof(st));
    cr_assert_str_eq(st, "100 200");
    conn_free(c);
    /* Never a 100 for a body that will not be read. */
    EXPECT("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n",
           "413", true);
    EXPECT("GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", "200", false);
    buf_free(&out);
}

Test(http, timeouts)
{
    struct http_conn *c = conn_new();
    cr_assert_eq(f_timer_ms, 1000); /* the first head is due from accept */
    http_conn_input(c, "GET /a HTTP/1.1\r\nHo", 19);
    http_conn_timeout(c);
    char st[64];
    statuses(&c->out, st, sizeof(st));
    cr_assert_str_eq(st, "408");
    cr_assert(f_closed);
    conn_free(c);

    c = conn_new();
    http_conn_input(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 28);
    cr_assert_eq(f_timer_ms, 5000); /* idle */
    size_t len = c->out.len;
    http_conn_timeout(c);
    cr_assert(f_closed);
    cr_assert_eq(c->out.len, len, "idle close sends nothing");
    conn_free(c);

    c = conn_new();
    http_conn_input(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab", 54);
    cr_assert_eq(f_timer_ms, 2000); /* body */
    http_conn_timeout(c);
    statuses(&c->out, st, sizeof(st));
    cr_assert_str_eq(st, "408");
    conn_free(c);
}

Test(http, async_pipelining)
{
    const char in[] = "GET /async HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    struct http_conn *c = conn_new();
    http_conn_input(c, in, sizeof(in) - 1);
    cr_assert_not_null(pending);
    cr_assert_eq(c->out.len, 0);
    /* Reading goes on (no epoll_ctl a request); the pipelined request waits. */
    cr_assert(f_reading);
    http_respond(pending, 202, SLICE_NULL, SLICE_LIT("later"));
    char st[64];
    statuses(&c->out, st, sizeof(st));
    cr_assert_str_eq(st, "202 200");
    cr_assert(f_reading);
    conn_free(c);
}

Test(http, pipelined_bytes_wait_up_to_a_read_chunk_while_a_handler_works)
{
    static const char one[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    struct http_conn *c = conn_new();
    feed(c, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_not_null(pending);
    size_t n = 0;
    while (f_reading) {
        feed(c, one);
        n++;
    }
    cr_assert_eq(n, (HTTP_READ_CHUNK + sizeof(one) - 2) / (sizeof(one) - 1));
    cr_assert_eq(c->out.len, 0);
    http_respond(pending, 202, SLICE_NULL, SLICE_LIT("later"));
    size_t answered = 0;
    for (const char *p = c->out.ptr; (p = strstr(p, "HTTP/1.1 ")); p++)
        answered++;
    cr_assert_eq(answered, n + 1);
    cr_assert_eq(f_reading, c->out.len < HTTP_OUT_HIGH_WATER);
    conn_free(c);
}

Test(http, a_client_half_closing_still_gets_its_answer_then_the_close)
{
    struct http_conn *c = conn_new();
    feed(c, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(http_conn_peer_eof(c));
    cr_assert_not(f_reading);
    http_respond(pending, 200, SLICE_NULL, SLICE_LIT("late"));
    cr_assert_not_null(strstr(c->out.ptr, "Connection: close\r\n"));
    cr_assert(f_closed);
    /* With nothing owed, EOF is the caller's to handle. */
    cr_assert_not(http_conn_peer_eof(c));
    conn_free(c);
}

Test(http, client_gone_before_answer)
{
    struct http_conn *c = conn_new();
    http_conn_input(c, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n", 32);
    cr_assert_not_null(pending);
    conn_free(c);
    cr_assert_null(pending->conn);
    http_respond(pending, 200, SLICE_NULL, SLICE_LIT("discarded"));
}

Test(http, streamed_body)
{
    const char in[] = "POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "50\r\n0123456789012345678901234567890123456789012345678901234567890123456789"
                      "0123456789\r\n0\r\n\r\n";
    struct http_conn *c = conn_new();
    for (size_t i = 0; i < sizeof(in) - 1; i += 7)
        http_conn_input(c, in + i, sizeof(in) - 1 - i < 7 ? sizeof(in) - 1 - i : 7);
    cr_assert_eq(stream_end, 0);
    cr_assert_eq(streamed.len, 80, "beyond max_body_bytes: streaming routes set their own limit");
    char st[64];
    statuses(&c->out, st, sizeof(st));
    cr_assert_str_eq(st, "201");
    cr_assert(!f_closed);
    conn_free(c);
}

Test(http, router_params_and_accessors)
{
    struct buf out = BUF_INIT;
    char st[64];
    const char in[] =
        "GET /p/a%20b/y/%2Fz?q=1&name=J%C3%B6+x&flag HTTP/1.1\r\nHost: x\r\nX-Test: v\r\n\r\n";
    run_split(in, sizeof(in) - 1, 0, st, sizeof(st), &out);
    cr_assert(strstr(out.ptr, "\r\n\r\na b|/z"), "%s", out.ptr);
    buf_free(&out);
    EXPECT("GET /p/a/y/ HTTP/1.1\r\nHost: x\r\n\r\n", "404", false);
    EXPECT("GET /p//y/b HTTP/1.1\r\nHost: x\r\n\r\n", "404", false);

    struct http_request req;
    memset(&req, 0, sizeof(req));
    struct http_header hs[2] = {{SLICE_LIT("Content-Type"), SLICE_LIT("a/b")},
                                {SLICE_LIT("X-Y"), SLICE_LIT("")}};
    req.headers = hs;
    req.nheaders = 2;
    req.query = SLICE_LIT("q=1&na%6De=J%C3%B6+x&flag&e=");
    cr_assert(slice_eq_cstr(http_request_header(&req, "content-type"), "a/b"));
    cr_assert_not_null(http_request_header(&req, "x-y").ptr);
    cr_assert_null(http_request_header(&req, "x-z").ptr);
    struct slice v;
    cr_assert(http_request_query(&req, "name", &v));
    cr_assert_str_eq(v.ptr, "J\xc3\xb6 x");
    cr_assert(http_request_query(&req, "flag", &v));
    cr_assert_eq(v.len, 0);
    cr_assert(http_request_query(&req, "e", &v));
    cr_assert(!http_request_query(&req, "nam", &v));
    cr_assert(!http_request_query(&req, "zz", &v));
    struct slice d = http_percent_decode(&req.pool, SLICE_LIT("%zz%4"), false);
    cr_assert_str_eq(d.ptr, "%zz%4");
    arena_reset(&req.pool);
}

Test(http, metrics_render)
{
    EXPECT("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "200", false);
    struct buf out = BUF_INIT;
    http_metrics_render(&out);
    cr_assert(strstr(out.ptr, "cruder_http_requests_total{route=\"a\",status=\"200\"} "), "%s",
              out.ptr);
    cr_assert(strstr(out.ptr, "cruder_http_request_duration_seconds_bucket{le=\"+Inf\"} "));
    cr_assert(strstr(out.ptr, "cruder_http_open_connections "));
    buf_free(&out);
}

/* ---- a real server ---- */

static void real_health(struct http_request *req)
{
    http_respond(req, 200, SLICE_LIT("application/json"), SLICE_LIT("{\"ok\":true}"));
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    return n;
}

/* Waits (at most 5 s) until the server counts exactly n open connections. */
static void wait_open_connections(long n)
{
    for (int i = 0; i < 500 && atomic_load(&http_metrics_open_connections) != n; i++)
        usleep(10000);
    cr_assert_eq(atomic_load(&http_metrics_open_connections), n);
}

Test(http_server, real_socket_pipelining_and_limits)
{
    struct config cfg;
    config_defaults(&cfg);
    free(cfg.http);
    cfg.http = strdup("127.0.0.1:0");
    cfg.loops = 2;
    cfg.max_connections = 4;
    cfg.access_log = false;
    cfg.shutdown_timeout_ms = 1000;
    struct http_router *r = http_router_new();
    http_router_add(r, HTTP_M_GET, "/api/health", real_health, 0, "health");
    struct http_server *srv;
    char err[128];
    cr_assert_eq(http_server_start(&cfg, r, &srv, err, sizeof(err)), 0, "%s", err);
    int port = http_server_port(srv);
    cr_assert_gt(port, 0);

    int fd = dial(port);
    const char req[] = "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    char buf[4096];
    read_all(fd, buf, sizeof(buf));
    close(fd);
    const char *first = strstr(buf, "HTTP/1.1 200 OK\r\n");
    cr_assert_not_null(first);
    cr_assert_not_null(strstr(first + 1, "HTTP/1.1 200 OK\r\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "Connection: close\r\n"));

    fd = dial(port);
    const char bad[] =
        "POST /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    cr_assert_eq(write(fd, bad, sizeof(bad) - 1), (ssize_t)sizeof(bad) - 1);
    read_all(fd, buf, sizeof(buf));
    close(fd);
    cr_assert(strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26) == 0, "%s", buf);

    /* Excess connections are answered 503 and closed. The connections above
     * must be gone first (an error answer lingers while the client closes). */
    wait_open_connections(0);
    int held[4];
    for (int i = 0; i < 4; i++)
        held[i] = dial(port);
    wait_open_connections(4);
    fd = dial(port);
    read_all(fd, buf, sizeof(buf));
    close(fd);
    cr_assert(strncmp(buf, "HTTP/1.1 503 ", 13) == 0, "%s", buf);
    cr_assert_not_null(strstr(buf, "Retry-After: 1\r\n"));
    for (int i = 0; i < 4; i++)
        close(held[i]);

    kill(getpid(), SIGTERM);
    http_server_wait(srv);
    http_server_free(srv);
    http_router_free(r);
    config_free(&cfg);
}
