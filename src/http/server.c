/* The HTTP server's sockets and threads: one libuv loop per thread, each with
 * its own SO_REUSEPORT listener on every listen address so the kernel spreads
 * connections, the connection io table (internal.h) on libuv streams,
 * cross-thread posts, timers, the flush_soon queue (a uv_check run after each
 * poll), and the drain on SIGTERM/SIGINT.
 *
 * Memory per idle keep-alive connection: struct http_conn (about 1 KiB with
 * its libuv handles) plus its small output buffers; reads go into the loop's
 * shared buffer and only bytes still needed are copied into the connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "http/internal.h"

struct http_server {
    struct http_limits lim;
    struct http_router *router;
    int nloops;
    struct http_loop *loops;
    atomic_int nconns;
    int max_conns;
    int port;
    int shutdown_timeout_ms;
    uv_loop_t ctl;
    uv_signal_t sigterm, sigint;
    uv_mutex_t mu;
    uv_cond_t cv;
    int ndrained;
};

enum { LINGER_MS = 2000, KEEP_BUF_CAP = 16 * 1024, BACKLOG = 4096, FILE_SLICE = 4 << 20 };

void http_limits_from_config(struct http_limits *lim, const struct config *cfg)
{
    lim->max_header_bytes = cfg->max_header_bytes;
    lim->max_headers = cfg->max_headers;
    lim->max_request_line = cfg->max_request_line;
    lim->max_body_bytes = cfg->max_body_bytes;
    lim->header_timeout_ms = cfg->header_timeout_ms;
    lim->idle_timeout_ms = cfg->idle_timeout_ms;
    lim->body_timeout_ms = cfg->body_timeout_ms;
    lim->send_timeout_ms = cfg->body_timeout_ms;
    lim->access_log = cfg->access_log;
}

/* ---- connection io on libuv ---- */

static void conn_abort(struct http_conn *c);
static void start_shutdown(struct http_conn *c);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct http_conn *c = h->data;
    if (c->lingering || c->rbuf.len == 0) {
        *b = uv_buf_init(c->loop->rdbuf, HTTP_READ_CHUNK);
        return;
    }
    buf_reserve(&c->rbuf, HTTP_READ_CHUNK / 4);
    *b = uv_buf_init(c->rbuf.ptr + c->rbuf.len, (unsigned)(c->rbuf.cap - c->rbuf.len - 1));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct http_conn *c = s->data;
    if (n > 0) {
        if (c->lingering)
            return;
        if (b->base == c->loop->rdbuf)
            http_conn_input(c, b->base, (size_t)n);
        else
            http_conn_input_rbuf(c, (size_t)n);
    } else if (n < 0) {
        c->reading = false;
        if (n == UV_EOF && !c->lingering && http_conn_peer_eof(c))
            return;
        if (n != UV_EOF || c->lingering || (!c->writing && c->out.len == 0)) {
            conn_abort(c);
            return;
        }
        /* The client half-closed: what is queued still goes out. */
        http_conn_gone(c, -ECONNRESET);
        c->io->close(c);
    }
}

static void io_read(struct http_conn *c, bool on)
{
    if (c->lingering || c->closed_handle || on == c->reading)
        return;
    if (on) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_timer(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    uint64_t now = uv_now(&c->loop->uv);
    if (c->lingering) {
        conn_abort(c);
        return;
    }
    if (c->deadline > now) {
        c->timer_due = c->deadline;
        uv_timer_start(&c->timer, on_timer, c->deadline - now, 0);
        return;
    }
    c->deadline = 0;
    http_conn_timeout(c);
}

static void io_timer(struct http_conn *c, uint64_t ms)
{
    if (c->closed_handle || c->lingering)
        return;
    if (ms == 0) {
        /* Left armed: a request's wait would otherwise cost a heap removal
         * and the next deadline an insertion. Firing with no deadline due,
         * it finds nothing to time out (timer_kind is TIMER_NONE). */
        c->deadline = UINT64_MAX;
        return;
    }
    uint64_t due = uv_now(&c->loop->uv) + ms;
    c->deadline = due;
    /* A later deadline needs no heap operation: the armed timer fires first
     * and re-arms for the rest. */
    if (uv_is_active((uv_handle_t *)&c->timer) && c->timer_due <= due)
        return;
    c->timer_due = due;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void out_done(struct buf *b)
{
    if (b->cap > KEEP_BUF_CAP)
        buf_free(b);
    else
        buf_reset(b);
}

static void io_flush(struct http_conn *c);
static void send_file(struct http_conn *c);

static void after_write(struct http_conn *c)
{
    if (c->out.len) {
        io_flush(c);
    } else if (c->file.active) {
        send_file(c);
    } else if (c->want_close) {
        start_shutdown(c);
    } else {
        if (c->out.cap > KEEP_BUF_CAP)
            buf_free(&c->out);
        http_conn_drained(c);
    }
}

static void on_write(uv_write_t *w, int status)
{
    struct http_conn *c = w->data;
    c->writing = false;
    out_done(&c->wout);
    if (status == UV_ECANCELED || c->closed_handle)
        return;
    if (status < 0) {
        conn_abort(c);
        return;
    }
    after_write(c);
}

static void io_flush(struct http_conn *c)
{
    if (c->writing || c->out.len == 0 || c->closed_handle)
        return;
    uv_buf_t b = uv_buf_init(c->out.ptr, (unsigned)c->out.len);
    /* Most responses fit the socket buffer: one write(2), no callback. */
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)c->out.len) {
        buf_reset(&c->out);
        after_write(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_abort(c);
        return;
    }
    if (n > 0)
        buf_consume(&c->out, (size_t)n);
    struct buf t = c->wout;
    c->wout = c->out;
    c->out = t;
    b = uv_buf_init(c->wout.ptr, (unsigned)c->wout.len);
    c->wreq.data = c;
    c->writing = true;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        c->writing = false;
        conn_abort(c);
    }
}

static void on_writable(uv_poll_t *p, int status, int events)
{
    struct http_conn *c = p->data;
    uv_poll_stop(p);
    if (status < 0) {
        conn_abort(c);
        return;
    }
    send_file(c);
}

/* libuv lets one handle watch an fd, and the tcp handle has this one; a dup
 * is the same socket under another number, so a poll handle can wait on it
 * for room without copying bytes through a uv_write. */
static void wait_writable(struct http_conn *c, int sock)
{
    if (!c->poll_inited) {
        c->poll_fd = dup(sock);
        if (c->poll_fd < 0) {
            conn_abort(c);
            return;
        }
        if (uv_poll_init(&c->loop->uv, &c->poll, c->poll_fd) != 0) {
            close(c->poll_fd);
            conn_abort(c);
            return;
        }
        c->poll.data = c;
        c->poll_inited = true;
    }
    if (uv_poll_start(&c->poll, UV_WRITABLE, on_writable) != 0)
        conn_abort(c);
}

/* Sends the queued file with sendfile(2) until the socket is full, at most
 * FILE_SLICE bytes a turn so one fast download does not starve the loop's
 * other connections. */
static void send_file(struct http_conn *c)
{
    int sock;
    /* !file.active: the send timed out while the poll waited for room. */
    if (c->closed_handle || !c->file.active || uv_fileno((uv_handle_t *)&c->tcp, &sock) != 0)
        return;
    uint64_t budget = FILE_SLICE;
    if (c->timer_kind == TIMER_SEND)
        io_timer(c, (uint64_t)c->lim->send_timeout_ms); /* progress pushes the deadline back */
    while (c->file.left && budget) {
        size_t want = (size_t)(c->file.left < budget ? c->file.left : budget);
        off_t off = (off_t)c->file.offset;
        ssize_t n = sendfile(sock, c->file.fd, &off, want);
        if (n > 0) {
            c->file.offset += (uint64_t)n;
            c->file.left -= (uint64_t)n;
            budget -= (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        /* n == 0: the file shrank below the Content-Length sent. */
        conn_abort(c);
        return;
    }
    if (c->file.left) {
        wait_writable(c, sock);
        return;
    }
    http_conn_file_done(c, true);
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
    (void)s;
    (void)status;
}

/* Sends FIN, then reads and discards for a while before closing: closing
 * with unread input makes the kernel send RST, which can destroy the
 * response (a 413, say) before the client reads it. */
static void start_shutdown(struct http_conn *c)
{
    if (c->lingering || c->closed_handle)
        return;
    c->lingering = true;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_abort(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

static void io_close(struct http_conn *c)
{
    c->want_close = true;
    if (!c->writing && c->out.len == 0 && !c->file.active)
        start_shutdown(c);
}

static void on_flush_check(uv_check_t *h)
{
    struct http_loop *l = h->data;
    /* A flush may queue another (an upstream's failure answers a client). */
    while (l->flushq || l->cflushq) {
        while (l->flushq) {
            struct http_conn *c = l->flushq;
            l->flushq = c->flush_next;
            c->flush_next = NULL;
            c->flush_queued = false;
            io_flush(c);
        }
        http_client_flush_queued(l);
    }
    uv_check_stop(h);
}

void http_loop_want_flush(struct http_loop *l)
{
    uv_check_start(&l->flush_check, on_flush_check);
}

static void io_flush_soon(struct http_conn *c)
{
    if (c->flush_queued || c->closed_handle)
        return;
    struct http_loop *l = c->loop;
    c->flush_queued = true;
    c->flush_next = l->flushq;
    l->flushq = c;
    http_loop_want_flush(l);
}

static const struct http_conn_io uv_io = {
    .flush = io_flush,
    .flush_soon = io_flush_soon,
    .close = io_close,
    .read = io_read,
    .timer = io_timer,
};

static void report_drained(struct http_loop *l)
{
    if (!l->draining || l->drain_reported || l->nconns)
        return;
    l->drain_reported = true;
    struct http_server *srv = l->srv;
    uv_mutex_lock(&srv->mu);
    srv->ndrained++;
    uv_cond_signal(&srv->cv);
    uv_mutex_unlock(&srv->mu);
}

static void on_conn_close(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    if (--c->pending_close)
        return;
    struct http_loop *l = c->loop;
    /* The queue is emptied before close callbacks run; this is a guard. */
    for (struct http_conn **pp = &l->flushq; c->flush_queued && *pp; pp = &(*pp)->flush_next)
        if (*pp == c) {
            *pp = c->flush_next;
            break;
        }
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    l->nconns--;
    if (c->counted)
        atomic_fetch_sub(&l->srv->nconns, 1);
    atomic_fetch_sub(&http_metrics_open_connections, 1);
    buf_free(&c->out);
    buf_free(&c->wout);
    buf_free(&c->rbuf);
    if (c->poll_inited)
        close(c->poll_fd);
    free(c);
    report_drained(l);
}

static void conn_abort(struct http_conn *c)
{
    if (c->closed_handle)
        return;
    http_conn_gone(c, -ECONNRESET);
    c->closed_handle = true;
    c->pending_close = 2 + c->poll_inited;
    if (c->poll_inited)
        uv_close((uv_handle_t *)&c->poll, on_conn_close);
    uv_close((uv_handle_t *)&c->timer, on_conn_close);
    uv_close((uv_handle_t *)&c->tcp, on_conn_close);
}

static void remote_name(struct http_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, c->remote, sizeof(c->remote));
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, c->remote, sizeof(c->remote));
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct http_loop *l = listener->data;
    struct http_server *srv = l->srv;
    if (status < 0 || l->draining)
        return;
    struct http_conn *c = xcalloc(1, sizeof(*c));
    uv_tcp_init(&l->uv, &c->tcp);
    uv_timer_init(&l->uv, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->loop = l;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    atomic_fetch_add(&http_metrics_open_connections, 1);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->closed_handle = true;
        c->pending_close = 2;
        uv_close((uv_handle_t *)&c->timer, on_conn_close);
        uv_close((uv_handle_t *)&c->tcp, on_conn_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    /* Always: a proxy handler needs it for X-Forwarded-For. */
    remote_name(c);
    http_conn_init(c, l, &uv_io, &srv->lim, srv->router);
    if (atomic_fetch_add(&srv->nconns, 1) >= srv->max_conns) {
        atomic_fetch_sub(&srv->nconns, 1);
        http_conn_fail(c, 503, "Too many connections, please retry later.");
        return;
    }
    c->counted = true;
    io_read(c, true);
}

/* ---- loops ---- */

static void update_date(struct http_loop *l)
{
    time_format_http(time(NULL), l->date);
}

static void on_date(uv_timer_t *t)
{
    update_date(t->data);
}

static void on_time_reset(uv_prepare_t *h)
{
    ((struct http_loop *)h->data)->now_ns = 0;
}

uint64_t http_loop_now_ns(struct http_loop *l)
{
    if (!l->caches_time)
        return time_mono_ns();
    if (!l->now_ns)
        l->now_ns = time_mono_ns();
    return l->now_ns;
}

static void close_if_open(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void run_posts(struct http_loop *l)
{
    for (;;) {
        uv_mutex_lock(&l->qmu);
        struct http_post *items = l->queue;
        size_t n = l->qlen, cap = l->qcap;
        l->queue = l->spare;
        l->qcap = l->spare_cap;
        l->qlen = 0;
        l->spare = items;
        l->spare_cap = cap;
        uv_mutex_unlock(&l->qmu);
        if (!n)
            return;
        for (size_t i = 0; i < n; i++)
            items[i].fn(items[i].arg);
    }
}

static void close_listeners(struct http_loop *l)
{
    if (l->listener_closed)
        return;
    l->listener_closed = true;
    for (int i = 0; i < l->nlisteners; i++)
        uv_close((uv_handle_t *)&l->listeners[i], NULL);
}

static void on_async(uv_async_t *a)
{
    struct http_loop *l = a->data;
    run_posts(l);
    if (atomic_load(&l->want_drain) && !l->draining) {
        l->draining = true;
        close_listeners(l);
        for (struct http_conn *c = l->conns, *next; c; c = next) {
            next = c->next;
            http_conn_drain(c);
        }
        report_drained(l);
    }
    if (atomic_load(&l->want_stop) && !l->stopped) {
        l->stopped = true;
        for (struct http_conn *c = l->conns, *next; c; c = next) {
            next = c->next;
            conn_abort(c);
        }
        /* Upstream exchanges of the requests just aborted are gone with them;
         * what is left are idle pooled connections. */
        http_client_loop_stop(l);
        if (l->user_free)
            l->user_free(l->user);
        l->user = NULL;
        l->user_free = NULL;
        close_listeners(l);
        close_if_open((uv_handle_t *)&l->date_timer);
        close_if_open((uv_handle_t *)&l->flush_check);
        close_if_open((uv_handle_t *)&l->time_reset);
        uv_mutex_lock(&l->qmu);
        l->closed = true;
        uv_mutex_unlock(&l->qmu);
        /* Answers already posted still run, so their requests are freed. */
        run_posts(l);
        close_if_open((uv_handle_t *)&l->async);
    }
}

void http_loop_post(struct http_loop *loop, void (*fn)(void *arg), void *arg)
{
    uv_mutex_lock(&loop->qmu);
    if (loop->closed) {
        uv_mutex_unlock(&loop->qmu);
        log_warn("post to a stopped loop dropped");
        return;
    }
    if (loop->qlen == loop->qcap) {
        loop->qcap = loop->qcap ? loop->qcap * 2 : 64;
        loop->queue = xrealloc(loop->queue, loop->qcap * sizeof(*loop->queue));
    }
    loop->queue[loop->qlen++] = (struct http_post){fn, arg};
    uv_mutex_unlock(&loop->qmu);
    uv_async_send(&loop->async);
}

void *http_loop_user(struct http_loop *loop)
{
    return loop->user;
}

void http_loop_set_user(struct http_loop *loop, void *user, void (*free_fn)(void *user))
{
    loop->user = user;
    loop->user_free = free_fn;
}

void http_loop_post_any(void *loop, void (*fn)(void *arg), void *arg)
{
    http_loop_post(loop, fn, arg);
}

static void loop_main(void *arg)
{
    struct http_loop *l = arg;
    uv_run(&l->uv, UV_RUN_DEFAULT);
    uv_loop_close(&l->uv);
}

/* Takes the listening sockets fds[0..nfds). */
static int loop_init(struct http_loop *l, struct http_server *srv, const int *fds, int nfds)
{
    uv_loop_init(&l->uv);
    l->srv = srv;
    l->sends_files = true;
    l->metrics = http_metrics_slot_claim();
    l->rdbuf = xmalloc(HTTP_READ_CHUNK);
    uv_mutex_init(&l->qmu);
    update_date(l);
    l->nlisteners = nfds;
    for (int i = 0; i < nfds; i++) {
        uv_tcp_init(&l->uv, &l->listeners[i]);
        l->listeners[i].data = l;
    }
    uv_async_init(&l->uv, &l->async, on_async);
    l->async.data = l;
    uv_timer_init(&l->uv, &l->date_timer);
    l->date_timer.data = l;
    uv_timer_start(&l->date_timer, on_date, 1000, 1000);
    uv_check_init(&l->uv, &l->flush_check);
    l->flush_check.data = l;
    /* Unreferenced: it must not keep a stopping loop alive. */
    uv_prepare_init(&l->uv, &l->time_reset);
    l->time_reset.data = l;
    uv_prepare_start(&l->time_reset, on_time_reset);
    uv_unref((uv_handle_t *)&l->time_reset);
    l->caches_time = true;
    int rc = 0;
    for (int i = 0; i < nfds; i++) {
        /* A socket no handle took is closed here: closing the handle would not. */
        if (rc != 0 || uv_tcp_open(&l->listeners[i], fds[i]) != 0) {
            close(fds[i]);
            rc = -1;
        } else {
            rc = uv_listen((uv_stream_t *)&l->listeners[i], BACKLOG, on_connection);
        }
    }
    return rc;
}

/* ---- the server ---- */

static int parse_addr(const char *spec, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    const char *colon = strrchr(spec, ':');
    char host[64];
    if (!colon || colon == spec || !colon[1])
        goto bad;
    long port = strtol(colon + 1, NULL, 10);
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9')
            goto bad;
    if (port < 0 || port > 65535)
        goto bad;
    if (spec[0] == '[') {
        size_t n = (size_t)(colon - spec);
        if (n < 3 || spec[n - 1] != ']' || n - 2 >= sizeof(host))
            goto bad;
        memcpy(host, spec + 1, n - 2);
        host[n - 2] = '\0';
        if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) != 0)
            goto bad;
        return 0;
    }
    if ((size_t)(colon - spec) >= sizeof(host))
        goto bad;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) != 0)
        goto bad;
    return 0;
bad:
    snprintf(err, errlen, "http: cannot parse listen address \"%s\" (want ADDR:PORT or [V6]:PORT)",
             spec);
    return -1;
}

static int open_listener(struct sockaddr_storage *ss, char *err, size_t errlen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (ss->ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
        goto fail;
    socklen_t len =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)ss, len) != 0 || listen(fd, BACKLOG) != 0)
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "http: cannot listen: %s", strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(s->loop);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    close_if_open(h);
}

static void server_free(struct http_server *srv, int nstarted)
{
    for (int i = 0; i < srv->nloops; i++) {
        struct http_loop *l = &srv->loops[i];
        if (i >= nstarted && l->rdbuf) {
            /* Never ran: close its handles here. */
            uv_walk(&l->uv, walk_close, NULL);
            uv_run(&l->uv, UV_RUN_DEFAULT);
            uv_loop_close(&l->uv);
        }
        if (l->rdbuf)
            uv_mutex_destroy(&l->qmu);
        free(l->rdbuf);
        free(l->queue);
        free(l->spare);
        http_loop_spares_free(l);
        buf_free(&l->logline);
    }
    free(srv->loops);
    close_if_open((uv_handle_t *)&srv->sigterm);
    close_if_open((uv_handle_t *)&srv->sigint);
    uv_run(&srv->ctl, UV_RUN_DEFAULT);
    uv_loop_close(&srv->ctl);
    uv_cond_destroy(&srv->cv);
    uv_mutex_destroy(&srv->mu);
    free(srv);
}

/* Splits the `http` setting, "ADDR:PORT[,ADDR:PORT...]", into addresses. */
static int parse_addrs(const char *spec, struct sockaddr_storage *ss, int *n, char *err,
                       size_t errlen)
{
    *n = 0;
    const char *p = spec;
    for (;;) {
        const char *comma = strchr(p, ',');
        struct slice item = slice_trim(slice_make(p, comma ? (size_t)(comma - p) : strlen(p)));
        char one[96];
        if (*n == HTTP_MAX_LISTENERS) {
            snprintf(err, errlen, "http: at most %d listen addresses", HTTP_MAX_LISTENERS);
            return -1;
        }
        if (item.len >= sizeof(one)) {
            snprintf(err, errlen, "http: listen address too long in \"%s\"", spec);
            return -1;
        }
        memcpy(one, item.ptr, item.len);
        one[item.len] = '\0';
        memset(&ss[*n], 0, sizeof(ss[*n]));
        if (parse_addr(one, &ss[*n], err, errlen) != 0)
            return -1;
        ++*n;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static void set_port(struct sockaddr_storage *ss, uint16_t port_be)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = port_be;
    else
        ((struct sockaddr_in *)ss)->sin_port = port_be;
}

int http_server_start(const struct config *cfg, struct http_router *router,
                      struct http_server **out, char *err, size_t errlen)
{
    struct sockaddr_storage ss[HTTP_MAX_LISTENERS];
    int naddrs;
    if (parse_addrs(cfg->http, ss, &naddrs, err, errlen) != 0)
        return -1;
    /* libuv writes with write(2): a peer that has gone must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if ((uint32_t)cfg->max_header_bytes > 80 * 1024)
        http_parser_set_max_header_size((uint32_t)cfg->max_header_bytes * 2);

    struct http_server *srv = xcalloc(1, sizeof(*srv));
    http_limits_from_config(&srv->lim, cfg);
    srv->router = router;
    srv->max_conns = cfg->max_connections;
    srv->shutdown_timeout_ms = cfg->shutdown_timeout_ms;
    long n = cfg->loops > 0 ? cfg->loops : sysconf(_SC_NPROCESSORS_ONLN);
    srv->nloops = n > 0 ? (int)n : 1;
    srv->loops = xcalloc((size_t)srv->nloops, sizeof(*srv->loops));
    uv_mutex_init(&srv->mu);
    uv_cond_init(&srv->cv);
    uv_loop_init(&srv->ctl);
    uv_signal_init(&srv->ctl, &srv->sigterm);
    uv_signal_init(&srv->ctl, &srv->sigint);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);

    for (int i = 0; i < srv->nloops; i++) {
        int fds[HTTP_MAX_LISTENERS];
        for (int a = 0; a < naddrs; a++) {
            fds[a] = open_listener(&ss[a], err, errlen);
            if (fds[a] < 0) {
                while (a > 0)
                    close(fds[--a]);
                goto fail;
            }
            if (i == 0) {
                /* With port 0 every other loop must bind the port the first got. */
                struct sockaddr_storage bound;
                socklen_t len = sizeof(bound);
                getsockname(fds[a], (struct sockaddr *)&bound, &len);
                uint16_t port = bound.ss_family == AF_INET6
                                    ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                    : ((struct sockaddr_in *)&bound)->sin_port;
                set_port(&ss[a], port);
                if (a == 0)
                    srv->port = ntohs(port);
            }
        }
        if (loop_init(&srv->loops[i], srv, fds, naddrs) != 0) {
            snprintf(err, errlen, "http: cannot listen on %s", cfg->http);
            goto fail;
        }
    }
    for (int i = 0; i < srv->nloops; i++)
        if (uv_thread_create(&srv->loops[i].thread, loop_main, &srv->loops[i]) != 0)
            core_assert(!"cannot start an event loop thread");
    *out = srv;
    return 0;
fail:
    server_free(srv, 0);
    return -1;
}

void http_server_wait(struct http_server *srv)
{
    uv_run(&srv->ctl, UV_RUN_DEFAULT);
    log_info("http: draining connections (at most %d ms)", srv->shutdown_timeout_ms);
    for (int i = 0; i < srv->nloops; i++) {
        atomic_store(&srv->loops[i].want_drain, true);
        uv_async_send(&srv->loops[i].async);
    }
    uint64_t deadline = uv_hrtime() + (uint64_t)srv->shutdown_timeout_ms * 1000000u;
    uv_mutex_lock(&srv->mu);
    while (srv->ndrained < srv->nloops) {
        uint64_t now = uv_hrtime();
        if (now >= deadline || uv_cond_timedwait(&srv->cv, &srv->mu, deadline - now) != 0)
            break;
    }
    int drained = srv->ndrained;
    uv_mutex_unlock(&srv->mu);
    if (drained < srv->nloops)
        log_warn("http: shutdown timeout; closing the remaining connections");
}

void http_server_free(struct http_server *srv)
{
    for (int i = 0; i < srv->nloops; i++) {
        atomic_store(&srv->loops[i].want_stop, true);
        uv_async_send(&srv->loops[i].async);
    }
    for (int i = 0; i < srv->nloops; i++)
        uv_thread_join(&srv->loops[i].thread);
    server_free(srv, srv->nloops);
}

int http_server_port(const struct http_server *srv)
{
    return srv->port;
}
