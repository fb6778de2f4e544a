/* The HTTP/1.1 client side of the http layer, for the gateway: per-loop pools
 * of keep-alive connections to one upstream address each, and exchanges that
 * stream the request body up and the response body down with back-pressure
 * both ways.
 *
 * Threading: a pool belongs to one loop and is used only from that loop's
 * thread (its callbacks run there too), so the hot path takes no lock. Each
 * loop keeps its own pools; nothing is shared between loops.
 *
 * An exchange never calls back from inside the call that started or steered
 * it (http_client_send, _write, _finish, _pause); callbacks come from the
 * loop. After on_end, or after http_client_abort(), the handle is gone. */
#ifndef HTTP_CLIENT_H
#define HTTP_CLIENT_H

#include <stdbool.h>

#include "http/http.h"

struct http_client_opts {
    int connect_timeout_ms;    /* TCP connect */
    int first_byte_timeout_ms; /* request sent -> response head begins */
    int idle_timeout_ms;       /* longest silence while an exchange runs */
    int pool_idle_ms;          /* a kept-alive connection is closed after this */
    int max_idle;              /* kept-alive connections kept per pool */
};

struct http_client_pool;
struct http_client;

struct http_client_response {
    int status;
    struct http_header *headers; /* valid during on_head only */
    size_t nheaders;
    long long content_length; /* -1: chunked or until the connection closes */
};

struct http_client_cbs {
    /* The response head. Return non-zero to abort the exchange (on_end is
     * then not called). 1xx interim responses are skipped, except the 101
     * an HTTP_CLIENT_UPGRADE exchange asked for. */
    int (*on_head)(void *ud, const struct http_client_response *res);
    /* A piece of the (de-chunked) response body, valid during the call.
     * Non-zero aborts as above. */
    int (*on_body)(void *ud, struct slice chunk);
    /* The exchange is over: 0 when the response is complete, else
     * -ECONNREFUSED or another connect error, -ETIMEDOUT, -ECONNRESET,
     * -EBADMSG (unparseable response), -ECANCELED (the loop stops).
     * connected: the TCP connection was up, so the request may have reached
     * the upstream; false means it certainly did not. */
    void (*on_end)(void *ud, int status, bool connected);
    /* The request body queue went out after http_client_write returned false. */
    void (*on_drain)(void *ud);
};

/* Creates an empty pool for addr ("127.0.0.1:8091", "[::1]:8091") on loop.
 * Returns NULL if the address is not numeric IPv4/IPv6 with a port. The
 * caller owns it; free it on the loop's thread. */
struct http_client_pool *http_client_pool_new(struct http_loop *loop, const char *addr,
                                              const struct http_client_opts *opts);
/* Closes the pool's idle connections; exchanges still running keep their
 * connection, which closes when they end. Accepts NULL. */
void http_client_pool_free(struct http_client_pool *pool);
/* Exchanges running on the pool's connections now. */
unsigned http_client_pool_active(const struct http_client_pool *pool);

enum http_client_flags {
    /* Body pieces given to http_client_write are chunk-encoded; without it
     * they go as they are and the head must announce their length. */
    HTTP_CLIENT_CHUNKED = 1,
    HTTP_CLIENT_HEAD = 2, /* a HEAD request: the response has no body */
    /* The head asks to switch protocols. A 101 answer reaches on_head and
     * turns the exchange into a tunnel: on_body gets the upstream's raw
     * bytes, http_client_write sends raw bytes, on_end reports the close (0
     * for a clean one), and no timeout applies (the caller keeps its own).
     * The connection never returns to the pool. Without this flag a 101 is
     * a broken response (-EBADMSG). */
    HTTP_CLIENT_UPGRADE = 4,
};

/* Sends `head` (a complete request head, CRLF CRLF included; copied) on an
 * idle connection or a new one, as flags say (enum http_client_flags).
 * Never fails at once: errors arrive through on_end. */
struct http_client *http_client_send(struct http_client_pool *pool, struct slice head,
                                     unsigned flags, const struct http_client_cbs *cbs, void *ud);
/* Queues request body bytes (copied). Returns false once more than the
 * high-water mark waits to be sent: stop until on_drain. */
bool http_client_write(struct http_client *x, struct slice chunk);
/* The request body is complete (writes the last chunk if chunked). */
void http_client_finish(struct http_client *x);
/* Stops or resumes reading the response (a slow client downstream). */
void http_client_pause(struct http_client *x, bool pause);
/* Ends the exchange without further callbacks; its connection is closed. */
void http_client_abort(struct http_client *x);

#endif
