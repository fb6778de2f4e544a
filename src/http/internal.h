/* Private to src/http: the connection state machine (conn.c), the libuv
 * server around it (server.c), the router (router.c) and the counters
 * (metrics.c).
 *
 * conn.c knows nothing about sockets: bytes come in through
 * http_conn_input(), responses accumulate in conn->out, and everything that
 * touches the network (flush, close, pause reading, timers) goes through
 * struct http_conn_io. server.c implements that table with libuv; the unit
 * tests and the fuzz target implement it with plain buffers. */
#ifndef HTTP_INTERNAL_H
#define HTTP_INTERNAL_H

/* http-parser names its method enum `http_method`, as does http.h. */
#define http_method http_parser_method
#include <http_parser.h>
#undef http_method

#include <stdatomic.h>
#include <uv.h>

#include "core/timefmt.h"
#include "http/http.h"

struct http_limits {
    int max_header_bytes;
    int max_headers;
    int max_request_line;
    long long max_body_bytes;
    int header_timeout_ms;
    int idle_timeout_ms;
    int body_timeout_ms;
    /* longest wait for a client to take more of a file response: one that
     * stops reading is dropped after it (body_timeout_ms until the config
     * table has a setting of its own) */
    int send_timeout_ms;
    bool access_log;
};

void http_limits_from_config(struct http_limits *lim, const struct config *cfg);

/* ---- metrics (metrics.c) ---- */

enum { HTTP_METRIC_ROUTES = 128, HTTP_METRIC_STATUSES = 24, HTTP_METRIC_BUCKETS = 16 };

/* One per loop, so each counter has a single writer and no line is shared. */
struct http_metrics_slot {
    _Atomic uint64_t requests[HTTP_METRIC_ROUTES][HTTP_METRIC_STATUSES];
    _Atomic uint64_t buckets[HTTP_METRIC_BUCKETS + 1];
    _Atomic uint64_t duration_ns_sum;
    _Atomic uint64_t count;
} __attribute__((aligned(64)));

struct http_metrics_slot *http_metrics_slot_claim(void);
/* route_id 0 labels errors answered before routing. */
unsigned http_metrics_route_id(const char *name);
void http_metrics_record(struct http_metrics_slot *slot, unsigned route_id, int status,
                         uint64_t duration_ns);
extern _Atomic long http_metrics_open_connections;

/* ---- routing (router.c) ---- */

enum { HTTP_ROUTE_ID_ERROR = 0, HTTP_ROUTE_ID_FALLBACK = 1 };

struct http_route {
    enum http_method method; /* HTTP_M_OTHER: any */
    http_handler_fn fn;
    unsigned flags;
    unsigned metric_id;
    char *name;
    struct http_route *next; /* same pattern, another method */
};

/* Finds the route for method and path, filling req->params (decoded into
 * req->pool). Returns the route, or NULL with *status 404 or 405. */
const struct http_route *http_router_match(const struct http_router *r, struct http_request *req,
                                           int *status);
http_handler_fn http_router_fallback(const struct http_router *r);
/* Percent-decodes s into pool; plus_space maps '+' to ' '. Invalid escapes
 * are kept as they are. NUL-terminated. */
struct slice http_percent_decode(struct arena *pool, struct slice s, bool plus_space);

/* ---- loops (server.c; tests may build a bare one) ---- */

struct http_post {
    void (*fn)(void *arg);
    void *arg;
};

/* Per loop: at most 64 x 4 KiB request arenas and 64 buffers of up to 8 KiB. */
enum { HTTP_SPARES = 64, HTTP_SPARE_BUF_MAX = 8 * 1024 };
/* Addresses one server listens on (the `http` setting's list). */
enum { HTTP_MAX_LISTENERS = 8 };

struct http_loop {
    uv_loop_t uv;
    struct http_server *srv;
    char date[TIMEFMT_HTTP_LEN + 1]; /* refreshed once a second */
    struct http_metrics_slot *metrics;
    bool draining;
    /* true: the io layer's flush also sends c->file once c->out is out, then
     * calls http_conn_file_done(); false (bare test loops): conn.c reads the
     * file into c->out. */
    bool sends_files;
    /* true: now_ns is cleared by time_reset before each poll (a server
     * loop); false (bare test loops): every http_loop_now_ns reads the clock. */
    bool caches_time;
    uint64_t now_ns; /* 0: not read since the last poll */
    uv_prepare_t time_reset;
    /* What finished requests leave for the next ones (HTTP_SPARES of each):
     * emptied arenas with their first block and buffers with their room, so
     * a keep-alive request allocates nothing on the common path. */
    struct arena spare_pools[HTTP_SPARES];
    size_t nspare_pools;
    struct buf spare_bufs[HTTP_SPARES];
    size_t nspare_bufs;
    struct buf logline;
    void *user;
    void (*user_free)(void *user);
    struct http_cconn *cconns; /* upstream connections (client.c) */

    uv_tcp_t listeners[HTTP_MAX_LISTENERS]; /* one per listening address */
    int nlisteners;
    uv_async_t async;
    uv_timer_t date_timer;
    uv_thread_t thread;
    char *rdbuf; /* shared read buffer, used by connections with nothing pending */
    struct http_conn *conns;
    size_t nconns;
    uv_check_t flush_check; /* runs the flush_soon queues */
    struct http_conn *flushq;
    struct http_cconn *cflushq; /* upstream connections with bytes to send */
    atomic_bool want_drain, want_stop;
    bool drain_reported, listener_closed, stopped;

    uv_mutex_t qmu;
    struct http_post *queue, *spare;
    size_t qlen, qcap, spare_cap;
    bool closed; /* under qmu: posts are dropped */
};

/* Frees what the loop keeps for reuse (it is stopping). */
void http_loop_spares_free(struct http_loop *l);

/* ---- upstream connections (client.c) ---- */

struct http_cconn;
/* Starts the loop's check phase run of both flush queues. */
void http_loop_want_flush(struct http_loop *l);
/* Sends what the queued upstream connections hold (the check phase). */
void http_client_flush_queued(struct http_loop *l);
/* Closes every upstream connection of the loop (the loop is stopping):
 * exchanges still running end with -ECANCELED. */
void http_client_loop_stop(struct http_loop *l);

/* ---- connections (conn.c) ---- */

enum http_conn_phase {
    CONN_IDLE,   /* between requests */
    CONN_HEAD,   /* reading a request head */
    CONN_BODY,   /* reading a body */
    CONN_WAIT,   /* body read; the handler has the request */
    CONN_TUNNEL, /* upgraded: raw bytes to and from tunnel_cbs */
};

enum http_timer_kind {
    TIMER_NONE,
    TIMER_IDLE,
    TIMER_HEAD,
    TIMER_BODY,
    TIMER_SEND,
    TIMER_LINGER,
    TIMER_TUNNEL
};

struct http_conn;

struct http_conn_io {
    void (*flush)(struct http_conn *c); /* start sending c->out */
    /* Sends c->out before the loop next waits for events, so the pieces one
     * read produces (a streamed head and its body) leave in one write.
     * NULL: flush at once. */
    void (*flush_soon)(struct http_conn *c);
    void (*close)(struct http_conn *c); /* close once c->out is sent */
    void (*read)(struct http_conn *c, bool on);
    void (*timer)(struct http_conn *c, uint64_t ms); /* 0 stops it */
};

/* A file body queued behind the head in c->out (http_respond_file). */
struct http_conn_file {
    bool active;
    int fd;
    uint64_t offset, left;
};

struct http_xreq;

struct http_conn {
    struct http_loop *loop;
    const struct http_conn_io *io;
    const struct http_limits *lim;
    const struct http_router *router;
    http_parser hp;

    /* Bytes are addressed by their offset in the connection's stream, so
     * header positions survive moving bytes between the loop's shared read
     * buffer and rbuf. rbuf holds the unparsed (or current head's) bytes
     * starting at rbuf_abs. */
    struct buf rbuf;
    uint64_t rbuf_abs;
    const char *view;
    uint64_t view_abs;
    size_t view_len;
    uint64_t pos_abs;
    uint64_t head_abs;

    enum http_conn_phase phase;
    struct http_xreq *req;
    int pause_reason;
    int error; /* status a parser callback asked for */
    const char *error_msg;

    struct buf out;  /* responses not yet handed to the socket */
    struct buf wout; /* the write in flight */
    enum http_timer_kind timer_kind;
    bool closing; /* no more requests; close once out is sent */
    bool in_process;
    bool reading;
    bool writing;
    bool want_close;
    bool body_paused; /* http_request_pause_body */
    bool lingering;
    bool counted; /* holds a slot of max_connections */
    bool closed_handle;
    /* The client half-closed while its request was being answered: the
     * answer goes out, then the connection closes. */
    bool peer_eof;
    bool flush_queued;
    struct http_conn *flush_next;
    int pending_close;
    uint64_t deadline, timer_due; /* loop ms; the timer may fire early and re-arm */
    char remote[48];

    /* CONN_TUNNEL: the handler's side of the tunnel (http_respond_upgrade);
     * tunnel_cbs is NULL once either side has ended it. */
    const struct http_tunnel_cbs *tunnel_cbs;
    void *tunnel_ud;
    int tunnel_idle_ms;
    bool tunnel_paused;

    struct http_conn_file file;
    int poll_fd; /* a dup of the socket, watched while a file waits for room */
    bool poll_inited;
    uv_poll_t poll;

    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct http_conn *prev, *next;
};

/* Sets up c (zeroed by the caller) for a new connection. */
void http_conn_init(struct http_conn *c, struct http_loop *loop, const struct http_conn_io *io,
                    const struct http_limits *lim, const struct http_router *router);
/* Feeds received bytes (copied if they must outlive the call). */
void http_conn_input(struct http_conn *c, const char *p, size_t n);
/* The same for n bytes the caller already appended to c->rbuf. */
void http_conn_input_rbuf(struct http_conn *c, size_t n);
void http_conn_timeout(struct http_conn *c);
/* The peer closed or failed: any request a handler holds is detached (its
 * answer will be discarded); the rest is freed. c's buffers are freed. */
void http_conn_gone(struct http_conn *c, int reason);
/* The output drained below the high-water mark; reading may resume. */
void http_conn_drained(struct http_conn *c);
/* The client sent EOF. Returns true when a request is being answered: the
 * answer still goes out, then the connection closes. false: nothing is owed,
 * so the caller closes as for any EOF. */
bool http_conn_peer_eof(struct http_conn *c);
/* Answers with the layer's own JSON error and closes the connection (used
 * for the 503 of a connection over max_connections). */
void http_conn_fail(struct http_conn *c, int status, const char *msg);
/* The queued file is sent (or failed: sent=false closes the connection);
 * closes its fd and resumes the requests waiting behind it. */
void http_conn_file_done(struct http_conn *c, bool sent);
/* Called by the loop when shutdown starts. */
void http_conn_drain(struct http_conn *c);

enum { HTTP_OUT_HIGH_WATER = 256 * 1024, HTTP_READ_CHUNK = 64 * 1024 };

/* Appends the PocketBase error body {"status":..,"message":..,"data":{}}. */
void http_error_body(struct buf *out, int status, const char *msg);
const char *http_status_reason(int status);
/* Appends s as a JSON string literal, quotes included. */
void http_json_string(struct buf *out, struct slice s);

#endif
