/* The gateway without sockets: its configuration file, route lookup, and the
 * request head it sends upstream. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/config.h"
#include "gateway/gateway.h"

static int parse(struct gateway_config *gc, struct config *shared, const char *text, char *err)
{
    return gateway_config_parse(gc, shared, slice_cstr(text), err, 256);
}

Test(gateway_config, parses_upstreams_routes_and_settings)
{
    struct config cfg;
    config_defaults(&cfg);
    struct gateway_config gc;
    char err[256] = "";
    int rc = parse(&gc, &cfg,
                   "# comment\n"
                   "http = 127.0.0.1:9999   # trailing\n"
                   "route /api/files/ files\n"
                   "upstream api 127.0.0.1:8091 [::1]:8092\n"
                   "upstream files 10.0.0.3:80\n"
                   "route Example.com/ files\n"
                   "\tconnect_timeout_ms = 150\n"
                   "route / api\n",
                   err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(cfg.http, "127.0.0.1:9999");
    cr_assert_eq(gc.connect_timeout_ms, 150);
    cr_assert_eq(gc.first_byte_timeout_ms, 30000);
    cr_assert_eq(gc.nupstreams, 2);
    cr_assert_eq(gc.upstreams[0].ntargets, 2);
    cr_assert_str_eq(gc.upstreams[0].targets[1], "[::1]:8092");
    cr_assert_eq(gc.nroutes, 3);
    cr_assert_eq(gc.routes[0].upstream, 1);
    cr_assert_null(gc.routes[0].host);
    cr_assert_str_eq(gc.routes[1].host, "Example.com");
    cr_assert_str_eq(gc.routes[1].prefix, "/");
    cr_assert_eq(gc.routes[2].upstream, 0);

    const struct gateway_route *r;
    r = gateway_route_match(&gc, SLICE_LIT("x"), SLICE_LIT("/api/files/a/b"));
    cr_assert_eq(r, &gc.routes[0]);
    r = gateway_route_match(&gc, SLICE_LIT("x"), SLICE_LIT("/api/filesystem"));
    cr_assert_eq(r, &gc.routes[2]);
    r = gateway_route_match(&gc, SLICE_LIT("example.COM:8080"), SLICE_LIT("/api/files/a"));
    cr_assert_eq(r, &gc.routes[1]);
    r = gateway_route_match(&gc, SLICE_NULL, SLICE_LIT("/"));
    cr_assert_eq(r, &gc.routes[2]);
    gateway_config_free(&gc);
    config_free(&cfg);
}

Test(gateway_config, route_lookup_keeps_ipv6_brackets_and_may_find_nothing)
{
    struct gateway_config gc;
    char err[256] = "";
    cr_assert_eq(parse(&gc, NULL, "upstream a 127.0.0.1:1\nroute [::1]/x a\n", err), 0, "%s", err);
    cr_assert_eq(gateway_route_match(&gc, SLICE_LIT("[::1]:80"), SLICE_LIT("/x/y")), &gc.routes[0]);
    cr_assert_null(gateway_route_match(&gc, SLICE_LIT("[::1]:80"), SLICE_LIT("/y")));
    cr_assert_null(gateway_route_match(&gc, SLICE_LIT("other"), SLICE_LIT("/x")));
    gateway_config_free(&gc);
}

Test(gateway_config, rejects_bad_files_with_the_line)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"upstream a 127.0.0.1:1\n", "no route: add at least one 'route /PREFIX UPSTREAM' line"},
        {"upstream a localhost:80\nroute / a\n",
         "line 1: 'localhost:80' is not a numeric ADDR:PORT"},
        {"upstream a 127.0.0.1:0\nroute / a\n", "line 1: '127.0.0.1:0' is not a numeric ADDR:PORT"},
        {"upstream a 127.0.0.1:70000\n", "line 1: '127.0.0.1:70000' is not a numeric ADDR:PORT"},
        {"upstream a\n", "line 1: upstream a has no ADDR:PORT"},
        {"upstream a 1.2.3.4:5\nupstream a 1.2.3.4:6\n",
         "line 2: upstream needs a new name of [A-Za-z0-9_.-]"},
        {"\nroute / b\n", "line 2: no upstream named 'b'"},
        {"route api a\n", "line 1: want 'route [HOST]/PREFIX UPSTREAM'"},
        {"route / a b\n", "line 1: want 'route [HOST]/PREFIX UPSTREAM'"},
        {"bogus line\n", "line 1: want 'upstream', 'route' or 'name = value'"},
        {"connect_timeout_ms = 0\n", "line 1: connect_timeout_ms: expected a whole number from 1 "
                                     "to 600000"},
        {"nope = 1\n", "line 1: unknown setting"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gateway_config gc;
        char err[256] = "";
        cr_assert_eq(parse(&gc, NULL, cases[i].text, err), -1, "case %zu", i);
        cr_assert_str_eq(err, cases[i].err, "case %zu", i);
        cr_assert_eq(gc.nupstreams, 0);
        cr_assert_eq(gc.nroutes, 0);
    }
}

Test(gateway_config, shared_settings_are_checked_by_the_shared_table)
{
    struct config cfg;
    config_defaults(&cfg);
    struct gateway_config gc;
    char err[256] = "";
    cr_assert_eq(parse(&gc, &cfg, "loops = many\n", err), -1);
    cr_assert_str_eq(err, "line 1: loops: expected a whole number from 0 to 256, got 'many'");
    cr_assert_eq(parse(&gc, &cfg, "config = /etc/x\n", err), -1);
    cr_assert_str_eq(err, "line 1: config cannot be nested");
    config_free(&cfg);
}

Test(gateway_proxy, hop_headers)
{
    cr_assert(gateway_is_hop_header(SLICE_LIT("Keep-Alive"), SLICE_NULL));
    cr_assert(gateway_is_hop_header(SLICE_LIT("transfer-encoding"), SLICE_NULL));
    cr_assert(gateway_is_hop_header(SLICE_LIT("X-Secret"), SLICE_LIT("close, x-secret")));
    cr_assert_not(gateway_is_hop_header(SLICE_LIT("X-Secret"), SLICE_LIT("close, x-secrets")));
    cr_assert_not(gateway_is_hop_header(SLICE_LIT("Host"), SLICE_LIT("close")));
}

static struct http_header hdrs[] = {
    {SLICE_LIT("Host"), SLICE_LIT("h.example")},
    {SLICE_LIT("Connection"), SLICE_LIT("keep-alive, X-Drop")},
    {SLICE_LIT("X-Drop"), SLICE_LIT("1")},
    {SLICE_LIT("Content-Length"), SLICE_LIT("0")},
    {SLICE_LIT("X-Forwarded-For"), SLICE_LIT("10.0.0.1")},
    {SLICE_LIT("x-forwarded-for"), SLICE_LIT("10.0.0.2")},
    {SLICE_LIT("X-Forwarded-Proto"), SLICE_LIT("https")},
    {SLICE_LIT("Expect"), SLICE_LIT("100-continue")},
    {SLICE_LIT("Accept"), SLICE_LIT("*/*")},
};

Test(gateway_proxy, upstream_head_is_rewritten_exactly)
{
    struct http_request req;
    memset(&req, 0, sizeof(req));
    req.method = HTTP_M_POST;
    req.method_name = SLICE_LIT("POST");
    req.target = SLICE_LIT("/api/x?y=1");
    req.headers = hdrs;
    req.nheaders = sizeof(hdrs) / sizeof(hdrs[0]);
    req.content_length = 0;
    struct buf out = BUF_INIT;
    gateway_upstream_head(&out, &req, SLICE_LIT("rid1"));
    cr_assert_str_eq(out.ptr, "POST /api/x?y=1 HTTP/1.1\r\n"
                              "Host: h.example\r\n"
                              "Accept: */*\r\n"
                              "X-Forwarded-For: 10.0.0.1, 10.0.0.2, unknown\r\n"
                              "X-Forwarded-Proto: http\r\n"
                              "X-Forwarded-Host: h.example\r\n"
                              "Forwarded: for=unknown;host=\"h.example\";proto=http\r\n"
                              "X-Request-Id: rid1\r\n"
                              "Content-Length: 0\r\n"
                              "\r\n");
    buf_reset(&out);
    req.content_length = -1;
    req.nheaders = 1;
    gateway_upstream_head(&out, &req, SLICE_LIT("r"));
    cr_assert(strstr(out.ptr, "\r\nTransfer-Encoding: chunked\r\n\r\n") != NULL);
    cr_assert(strstr(out.ptr, "Content-Length") == NULL);
    buf_free(&out);
}

Test(gateway_config, cache_settings)
{
    struct gateway_config gc;
    char err[256] = "";
    int rc = parse(&gc, NULL,
                   "upstream a 127.0.0.1:1\nroute / a\n"
                   "cache_max_bytes = 64m\n"
                   "cache_max_object_bytes = 512k\n"
                   "cache_policy = lru\n"
                   "cache_targeted_field = Cruder-Cache-Control\n"
                   "cache_tag_field = Cache-Tag\n"
                   "cache_purge_token = 0123456789abcdef-x\n",
                   err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(gc.cache_max_bytes, (size_t)64 << 20);
    cr_assert_eq(gc.cache_max_object_bytes, (size_t)512 << 10);
    cr_assert_eq(gc.cache_policy, CACHE_POLICY_LRU);
    cr_assert_str_eq(gc.cache_targeted_field, "Cruder-Cache-Control");
    cr_assert_str_eq(gc.cache_tag_field, "Cache-Tag");
    cr_assert_str_eq(gc.cache_purge_token, "0123456789abcdef-x");
    gateway_config_free(&gc);

    cr_assert_eq(parse(&gc, NULL, "upstream a 127.0.0.1:1\nroute / a\n", err), 0);
    cr_assert_eq(gc.cache_max_bytes, 0);
    cr_assert_eq(gc.cache_policy, CACHE_POLICY_S3FIFO);
    cr_assert_null(gc.cache_purge_token);
    gateway_config_free(&gc);
}

Test(gateway_config, rejects_bad_cache_settings)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"cache_max_bytes = -1\n",
         "line 1: cache_max_bytes: expected a byte count such as 1048576, 512k or 64m"},
        {"cache_max_bytes = 10x\n",
         "line 1: cache_max_bytes: expected a byte count such as 1048576, 512k or 64m"},
        {"cache_max_object_bytes = 99999999999999999999g\n",
         "line 1: cache_max_object_bytes: expected a byte count such as 1048576, 512k or 64m"},
        {"cache_policy = fifo\n", "line 1: cache_policy: expected s3fifo or lru"},
        {"cache_tag_field = Cache Tag\n",
         "line 1: cache_tag_field: expected a field name (letters, digits, '-')"},
        {"cache_purge_token = short\n",
         "line 1: cache_purge_token: expected at least 16 visible ASCII characters"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gateway_config gc;
        char err[256] = "";
        cr_assert_eq(parse(&gc, NULL, cases[i].text, err), -1, "case %zu", i);
        cr_assert_str_eq(err, cases[i].err, "case %zu", i);
    }
}

Test(gateway_proxy, an_upgrade_keeps_its_upgrade_header_and_says_connection_upgrade)
{
    static struct http_header up[] = {
        {SLICE_LIT("Host"), SLICE_LIT("h")},
        {SLICE_LIT("Connection"), SLICE_LIT("keep-alive, Upgrade, X-Drop")},
        {SLICE_LIT("Upgrade"), SLICE_LIT("websocket")},
        {SLICE_LIT("X-Drop"), SLICE_LIT("1")},
        {SLICE_LIT("Sec-WebSocket-Key"), SLICE_LIT("k")},
    };
    struct http_request req;
    memset(&req, 0, sizeof(req));
    req.method = HTTP_M_GET;
    req.method_name = SLICE_LIT("GET");
    req.target = SLICE_LIT("/ws");
    req.headers = up;
    req.nheaders = sizeof(up) / sizeof(up[0]);
    req.upgrade = true;
    struct buf out = BUF_INIT;
    gateway_upstream_head(&out, &req, SLICE_LIT("r"));
    cr_assert_str_eq(out.ptr, "GET /ws HTTP/1.1\r\n"
                              "Host: h\r\n"
                              "Upgrade: websocket\r\n"
                              "Sec-WebSocket-Key: k\r\n"
                              "X-Forwarded-For: unknown\r\n"
                              "X-Forwarded-Proto: http\r\n"
                              "X-Forwarded-Host: h\r\n"
                              "Forwarded: for=unknown;host=\"h\";proto=http\r\n"
                              "X-Request-Id: r\r\n"
                              "Connection: Upgrade\r\n"
                              "\r\n");
    /* Without the layer's verdict the header is hop-by-hop as ever. */
    buf_reset(&out);
    req.upgrade = false;
    gateway_upstream_head(&out, &req, SLICE_LIT("r"));
    cr_assert_null(strstr(out.ptr, "Upgrade"));
    buf_free(&out);
}

Test(gateway_config, tunnel_idle_timeout)
{
    struct gateway_config gc;
    char err[256] = "";
    cr_assert_eq(parse(&gc, NULL, "upstream a 127.0.0.1:1\nroute / a\n", err), 0, "%s", err);
    cr_assert_eq(gc.tunnel_idle_timeout_ms, 600000);
    gateway_config_free(&gc);
    cr_assert_eq(
        parse(&gc, NULL, "upstream a 127.0.0.1:1\nroute / a\ntunnel_idle_timeout_ms = 1500\n", err),
        0, "%s", err);
    cr_assert_eq(gc.tunnel_idle_timeout_ms, 1500);
    gateway_config_free(&gc);
    cr_assert_eq(
        parse(&gc, NULL, "upstream a 127.0.0.1:1\nroute / a\ntunnel_idle_timeout_ms = 0\n", err),
        -1);
    cr_assert_str_eq(err, "line 3: tunnel_idle_timeout_ms: expected a whole number from 1 to "
                          "86400000");
}
