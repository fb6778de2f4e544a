/* The HTTP/1.1 server: libuv loops, one per core, each with its own
 * SO_REUSEPORT listener; http-parser for framing; keep-alive; pipelining with
 * responses batched into one write; chunked and streamed request bodies; limits
 * on every dimension of a request; protocol upgrades for routes that take
 * them (a tunnel of raw bytes after the 101); graceful shutdown.
 *
 * Threading: every callback into a handler runs on the loop that owns the
 * connection. A handler that hands work to another thread gets back onto its
 * loop with http_loop_post(). Requests on one connection are handled one at a
 * time, in order; later pipelined requests wait, already buffered, until the
 * current one is answered.
 *
 * Contract: every request handed to a handler is answered exactly once, with
 * http_respond*() (possibly later, from a posted callback). If the client has
 * gone meanwhile, the answer is discarded and the request is freed then. */
#ifndef HTTP_HTTP_H
#define HTTP_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/slice.h"

enum http_method {
    HTTP_M_OTHER = 0,
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_PATCH,
    HTTP_M_DELETE,
    HTTP_M_OPTIONS,
};

struct http_header {
    struct slice name;
    struct slice value;
};

struct http_loop;
struct http_conn;
struct http_route;

enum { HTTP_MAX_ROUTE_PARAMS = 4 };

struct http_request {
    struct arena pool; /* per-request memory; freed after the response is sent */
    struct http_loop *loop;
    struct http_conn *conn; /* private to the http layer */

    enum http_method method;
    struct slice method_name;
    struct slice target; /* raw request-target */
    struct slice path;   /* target before '?', still percent-encoded */
    struct slice query;  /* target after '?', still percent-encoded */
    struct http_header *headers;
    size_t nheaders;
    long long content_length; /* -1 when chunked */
    bool keep_alive;
    /* The client asks to switch protocols (Upgrade and "Connection: upgrade",
     * HTTP/1.1, no body). Only routes flagged HTTP_ROUTE_UPGRADE see it; the
     * handler accepts with http_respond_upgrade() or answers as usual, after
     * which the connection closes. */
    bool upgrade;

    /* Filled by the router. */
    const struct http_route *route;
    struct slice params[HTTP_MAX_ROUTE_PARAMS]; /* decoded ":name" segments */
    size_t nparams;

    /* The whole body, for routes that buffer it (the default); NUL-terminated. */
    struct slice body;

    /* Streaming routes (HTTP_ROUTE_STREAM_BODY) set these in their handler.
     * on_body gets each piece of the body as it arrives (the slice is only valid
     * during the call); returning non-zero aborts the request, which the
     * handler must then still answer. on_body_end gets 0 when the body is
     * complete, or a negative code if the client stopped sending (-ECONNRESET),
     * timed out (-ETIMEDOUT) or broke the framing (-EBADMSG); it is called
     * once, and not at all after an abort. max_body_bytes does not apply to
     * streaming routes: they enforce their own limit through on_body. */
    int (*on_body)(struct http_request *req, struct slice chunk);
    void (*on_body_end)(struct http_request *req, int status);

    /* Streamed responses (http_respond_start): on_drain is called when the
     * connection's output has gone out after http_respond_write() returned
     * false; on_gone when the client goes after its whole body was read
     * (before that, on_body_end tells it). The handler must still end the
     * request with http_respond_end(); its bytes are discarded. */
    void (*on_drain)(struct http_request *req);
    void (*on_gone)(struct http_request *req);

    void *user;              /* the handler's own state */
    uint64_t start_ns;       /* http_loop_now_ns() when its first bytes were parsed */
    int status;              /* of the response, once answered */
    struct buf resp_headers; /* extra response header lines, "Name: value\r\n" */
};

typedef void (*http_handler_fn)(struct http_request *req);

enum http_route_flags {
    HTTP_ROUTE_STREAM_BODY = 1, /* hand the body to on_body instead of buffering it */
    /* The route takes protocol upgrades (req->upgrade). Elsewhere a request
     * asking for one is refused with 400. A lone "h2c" is ignored on every
     * route, as RFC 9110 7.8 allows: the answer is plain HTTP/1.1. */
    HTTP_ROUTE_UPGRADE = 2,
};

/* ---- routing ---- */

struct http_router;

struct http_router *http_router_new(void);
void http_router_free(struct http_router *r);
/* pattern: "/api/collections/:collection/records/:id"; a ":name" segment
 * matches one non-empty path segment, percent-decoded into req->params in
 * order. A last segment "*" matches the rest of the path, possibly empty or
 * holding slashes, and fills the next param the same way. `name` labels the route in metrics and logs. method HTTP_M_OTHER
 * matches any method. */
void http_router_add(struct http_router *r, enum http_method method, const char *pattern,
                     http_handler_fn fn, unsigned flags, const char *name);
/* Called when no route matches the path (404) or the path matches with
 * another method (405); defaults answer in PocketBase's error shape. */
void http_router_set_fallback(struct http_router *r, http_handler_fn fn);
const char *http_route_name(const struct http_route *route);

/* ---- requests and responses ---- */

/* Case-insensitive header lookup; SLICE_NULL (ptr == NULL) if absent. */
struct slice http_request_header(const struct http_request *req, const char *name);
/* Finds a query parameter and percent-decodes it ('+' as space) into the
 * request's pool; returns false if absent. */
bool http_request_query(struct http_request *req, const char *name, struct slice *value);

/* The client's address ("127.0.0.1", "::1") while it is connected;
 * SLICE_NULL once it has gone. Valid until the request is answered. */
struct slice http_request_remote(const struct http_request *req);

/* Adds a response header line; both are copied. */
void http_response_header(struct http_request *req, struct slice name, struct slice value);
/* Answers the request: status line, Date, Content-Length, the added headers,
 * Content-Type (if content_type.len), then body (copied). For HEAD the body is
 * counted but not sent. The request must not be touched afterwards. */
void http_respond(struct http_request *req, int status, struct slice content_type,
                  struct slice body);

/* Answers with `length` bytes of the open file `fd` from `offset` as the
 * body, after the same head http_respond writes (Content-Length: length).
 * The bytes go out with sendfile(2) from the loop, never copied through user
 * space and never blocking it: when the socket is full, the loop waits for
 * it to drain, serving other connections meanwhile. Later pipelined requests
 * on the connection wait until the file is sent. Takes ownership of fd: it
 * is closed once sent, at once for HEAD or a bodyless status, or when the
 * client goes. If the file shrinks meanwhile the connection is closed, as
 * the promised length can no longer be sent. */
void http_respond_file(struct http_request *req, int status, struct slice content_type, int fd,
                       uint64_t offset, uint64_t length);

/* ---- streamed responses ---- */

/* Starts a response whose body follows in pieces: status line, Date (if
 * add_date), Connection, the added headers, then the framing: Content-Length
 * when length >= 0, else chunked (HTTP/1.1 clients) or close-delimited
 * (HTTP/1.0). For HEAD and bodyless statuses the body is discarded and a
 * known length is still announced. Continue with http_respond_write() and
 * finish with http_respond_end(). */
void http_respond_start(struct http_request *req, int status, long long length, bool add_date);
/* Queues body bytes (copied). Returns false once the connection holds more
 * than its high-water mark of unsent output: stop producing until
 * req->on_drain is called. Bytes for a client that has gone are dropped. */
bool http_respond_write(struct http_request *req, struct slice chunk);
/* Ends a started response and frees the request. complete=false means the
 * body was cut short: what is queued still goes out, then the connection
 * closes, so the client sees a truncated message, never a wrong one. */
void http_respond_end(struct http_request *req, bool complete);

/* For streaming routes: stops (pause=true) or resumes reading the request
 * body from the client, so a producer faster than its consumer is held back
 * by TCP instead of buffered. The body timeout does not run while paused. */
void http_request_pause_body(struct http_request *req, bool pause);

/* ---- protocol upgrades ---- */

/* After a 101 the connection is a tunnel: raw bytes both ways, no more
 * requests. The handle is the connection's; it stays valid until on_close
 * is called or http_tunnel_close() returns. */
struct http_tunnel;

struct http_tunnel_cbs {
    /* Bytes from the client, valid during the call. */
    void (*on_data)(void *ud, struct slice data);
    /* The output queued by http_tunnel_write() has gone out after it
     * returned false. */
    void (*on_drain)(void *ud);
    /* The client's side is over: 0 when it closed, -ETIMEDOUT when the
     * tunnel was idle for idle_timeout_ms, -ECONNRESET on an error. May run
     * inside http_tunnel_write() (a failed send). The handle is gone. */
    void (*on_close)(void *ud, int status);
};

/* Accepts req->upgrade: sends "101 Switching Protocols" with the added
 * headers (the caller adds Upgrade; the layer writes Connection: Upgrade),
 * frees req and turns the connection into a tunnel calling cbs with ud.
 * Bytes the client sent after its head are appended to *early (forward them
 * first). idle_timeout_ms (> 0): the tunnel closes after that long with no
 * byte either way. Returns NULL, with req freed, when the client has gone. */
struct http_tunnel *http_respond_upgrade(struct http_request *req,
                                         const struct http_tunnel_cbs *cbs, void *ud,
                                         int idle_timeout_ms, struct buf *early);
/* Queues bytes for the client (copied). Returns false once more than the
 * high-water mark is unsent: stop producing until on_drain. */
bool http_tunnel_write(struct http_tunnel *t, struct slice data);
/* Stops or resumes reading from the client (back-pressure upstream). */
void http_tunnel_pause(struct http_tunnel *t, bool pause);
/* Ends the tunnel from the server's side: what is queued goes out, then the
 * connection closes. No callback follows; the handle is gone. */
void http_tunnel_close(struct http_tunnel *t);

/* ---- loops ---- */

/* A per-loop slot for one layer above (the gateway's per-loop state), used
 * only from the loop's own thread, so it needs no lock. free_fn (may be NULL)
 * runs on that thread when the loop stops, after every connection is closed. */
void *http_loop_user(struct http_loop *loop);
void http_loop_set_user(struct http_loop *loop, void *user, void (*free_fn)(void *user));

/* CLOCK_MONOTONIC in ns, read once per loop iteration (after the poll
 * returns) and shared by every callback of that iteration, as HAProxy and
 * nginx keep their time: the per-request timestamps of a hot path cost one
 * clock read per batch of events, and are off by at most the time the
 * iteration has run. Loop thread only. */
uint64_t http_loop_now_ns(struct http_loop *loop);

/* An empty buffer from the loop's spares (it may have room already), and
 * its return when done: a handler's per-request buffers on a hot path then
 * cost no malloc. give leaves *b as BUF_INIT. Loop thread only. */
struct buf http_loop_buf_take(struct http_loop *loop);
void http_loop_buf_give(struct http_loop *loop, struct buf *b);

/* Runs fn(arg) on the loop's thread soon. Safe from any thread; never blocks.
 * Posts made after http_server_free() has begun are undefined (the loops are
 * freed): stop the threads that post between http_server_wait() and it. */
void http_loop_post(struct http_loop *loop, void (*fn)(void *arg), void *arg);
/* The same, typed for layers that cannot name http_loop (store, bus). */
void http_loop_post_any(void *loop, void (*fn)(void *arg), void *arg);

/* ---- the server ---- */

struct http_server;

/* Binds the listeners (one SO_REUSEPORT socket per loop and address in
 * cfg->http, "ADDR:PORT[,ADDR:PORT...]"), starts the loops
 * and returns at once. On failure returns -1 with a one-line reason in err. */
int http_server_start(const struct config *cfg, struct http_router *router,
                      struct http_server **out, char *err, size_t errlen);
/* Blocks until SIGTERM or SIGINT, then stops accepting and lets in-flight
 * requests finish for at most cfg->shutdown_timeout_ms. The loops keep running,
 * so work still owed to them (store completions) can land; stop whatever posts
 * to them, then call http_server_free(). */
void http_server_wait(struct http_server *srv);
/* Stops the loops, closes every connection left and frees the server. */
void http_server_free(struct http_server *srv);
/* The port actually bound for the first listen address (useful with port 0). */
int http_server_port(const struct http_server *srv);

/* ---- counters for /metrics ---- */

/* Appends the http layer's metrics in Prometheus text format: requests by
 * route and status, latency histogram, open connections. */
void http_metrics_render(struct buf *out);

#endif
