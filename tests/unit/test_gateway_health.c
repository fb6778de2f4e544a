/* The gateway's active health checks (gateway/runtime.c): the rise/fall
 * state machine in health_vote, the status-line verdicts of probe_step over
 * a socket pair, whole check rounds against real loopback sockets, and how
 * the verdicts reach the balancer (draining, the end of a passive ejection).
 * runtime.c is included for its static functions. */
#include "gateway/runtime.c"

#include <criterion/criterion.h>
#include <pthread.h>

static void quiet(void)
{
    log_set_level("error");
}

/* ---- health_vote: the rise/fall thresholds ---- */

struct votes {
    struct gw_stat s;
    struct gateway_config gc;
};

static void votes_init(struct votes *v, int rise, int fall)
{
    memset(&v->s, 0, sizeof(v->s));
    static char labels[] = "upstream=\"api\",target=\"127.0.0.1:1\"";
    v->s.labels = labels;
    atomic_init(&v->s.health, LB_HEALTH_UP);
    atomic_init(&v->s.up_epoch, 0);
    gateway_config_defaults(&v->gc);
    v->gc.health_rise = rise;
    v->gc.health_fall = fall;
}

/* Casts one vote per character (u: pass, d: fail, 5: a 503) and returns the
 * state after the last. */
static int cast(struct votes *v, const char *seq)
{
    for (; *seq; seq++)
        health_vote(&v->s,
                    *seq == 'u'   ? LB_HEALTH_UP
                    : *seq == 'd' ? LB_HEALTH_DOWN
                                  : LB_HEALTH_DRAINING,
                    &v->gc);
    return atomic_load(&v->s.health);
}

Test(gateway_health, exactly_fall_consecutive_failures_take_a_target_down, .init = quiet)
{
    for (int fall = 1; fall <= 5; fall++) {
        struct votes v;
        votes_init(&v, 2, fall);
        for (int i = 1; i < fall; i++)
            cr_assert_eq(cast(&v, "d"), LB_HEALTH_UP, "fall=%d: down after %d failures", fall, i);
        cr_assert_eq(cast(&v, "d"), LB_HEALTH_DOWN, "fall=%d: still up after %d failures", fall,
                     fall);
        cr_assert_eq(atomic_load(&v.s.up_epoch), 0);
    }
}

Test(gateway_health, exactly_rise_consecutive_passes_bring_it_up, .init = quiet)
{
    for (int rise = 1; rise <= 5; rise++) {
        struct votes v;
        votes_init(&v, rise, 1);
        cr_assert_eq(cast(&v, "d"), LB_HEALTH_DOWN);
        for (int i = 1; i < rise; i++)
            cr_assert_eq(cast(&v, "u"), LB_HEALTH_DOWN, "rise=%d: up after %d passes", rise, i);
        cr_assert_eq(cast(&v, "u"), LB_HEALTH_UP, "rise=%d: still down after %d passes", rise,
                     rise);
        /* The balancer ends a passive ejection when it sees this move. */
        cr_assert_eq(atomic_load(&v.s.up_epoch), 1);
    }
}

Test(gateway_health, a_pass_between_failures_restarts_the_fall_count, .init = quiet)
{
    struct votes v;
    votes_init(&v, 2, 3);
    cr_assert_eq(cast(&v, "ddudd"), LB_HEALTH_UP);
    cr_assert_eq(cast(&v, "udd"), LB_HEALTH_UP);
    cr_assert_eq(cast(&v, "d"), LB_HEALTH_DOWN);
}

Test(gateway_health, a_failure_between_passes_restarts_the_rise_count, .init = quiet)
{
    struct votes v;
    votes_init(&v, 3, 1);
    cr_assert_eq(cast(&v, "d"), LB_HEALTH_DOWN);
    cr_assert_eq(cast(&v, "uud"), LB_HEALTH_DOWN);
    cr_assert_eq(cast(&v, "uu"), LB_HEALTH_DOWN);
    cr_assert_eq(cast(&v, "u"), LB_HEALTH_UP);
    cr_assert_eq(atomic_load(&v.s.up_epoch), 1);
}

Test(gateway_health, counts_do_not_carry_over_a_transition, .init = quiet)
{
    struct votes v;
    votes_init(&v, 2, 2);
    /* Failures while down, then a rise: the next fall needs `fall` fresh
     * failures, not one more than those seen while down. */
    cr_assert_eq(cast(&v, "dd"), LB_HEALTH_DOWN);
    cr_assert_eq(cast(&v, "dddd"), LB_HEALTH_DOWN);
    cr_assert_eq(cast(&v, "uu"), LB_HEALTH_UP);
    cr_assert_eq(cast(&v, "d"), LB_HEALTH_UP);
    cr_assert_eq(cast(&v, "d"), LB_HEALTH_DOWN);
    /* Passes while up, then a fall: the rise starts from nothing. */
    cr_assert_eq(cast(&v, "u"), LB_HEALTH_DOWN);
    cr_assert_eq(cast(&v, "u"), LB_HEALTH_UP);
    cr_assert_eq(cast(&v, "uuuudd"), LB_HEALTH_DOWN);
    cr_assert_eq(cast(&v, "u"), LB_HEALTH_DOWN);
    cr_assert_eq(atomic_load(&v.s.up_epoch), 2);
}

Test(gateway_health, a_503_drains_at_once_and_rise_passes_bring_it_back, .init = quiet)
{
    struct votes v;
    votes_init(&v, 3, 5);
    cr_assert_eq(cast(&v, "dddd"), LB_HEALTH_UP);
    /* No threshold: the upstream said so itself. The pending failures are
     * forgotten with it. */
    cr_assert_eq(cast(&v, "5"), LB_HEALTH_DRAINING);
    cr_assert_eq(cast(&v, "d"), LB_HEALTH_DRAINING,
                 "the fifth failure counted from before the 503");
    cr_assert_eq(cast(&v, "5"), LB_HEALTH_DRAINING);
    cr_assert_eq(cast(&v, "uu"), LB_HEALTH_DRAINING);
    cr_assert_eq(cast(&v, "u"), LB_HEALTH_UP);
    cr_assert_eq(atomic_load(&v.s.up_epoch), 1);
    /* A 503 in the middle of a rise starts it again. */
    cr_assert_eq(cast(&v, "5uu5uu"), LB_HEALTH_DRAINING);
    cr_assert_eq(cast(&v, "u"), LB_HEALTH_UP);
    /* A down target that answers 503 drains too. */
    cr_assert_eq(cast(&v, "ddddd"), LB_HEALTH_DOWN);
    cr_assert_eq(cast(&v, "5"), LB_HEALTH_DRAINING);
    /* Failures while draining take it down after `fall` of them. */
    cr_assert_eq(cast(&v, "dddd"), LB_HEALTH_DRAINING);
    cr_assert_eq(cast(&v, "d"), LB_HEALTH_DOWN);
}

/* ---- the verdicts as the balancer sees them ---- */

static const struct lb_params params = {
    .policy = GATEWAY_BALANCE_ROUND_ROBIN,
    .panic_percent = 0,
    .hash_load_pct = 125,
    .eject_ms = 1000,
    .eject_max_ms = 8000,
    .eject_5xx = 3,
    .ewma_decay = 0.5,
};

static const char *const names[] = {"127.0.0.1:1", "127.0.0.1:2"};

Test(gateway_health, draining_takes_no_new_requests_and_lets_in_flight_ones_finish, .init = quiet)
{
    struct votes v[2];
    struct lb_target t[2];
    struct lb_target *tp[2] = {&t[0], &t[1]};
    memset(t, 0, sizeof(t));
    for (int i = 0; i < 2; i++) {
        votes_init(&v[i], 2, 2);
        t[i].health = &v[i].s.health;
        t[i].up_epoch = &v[i].s.up_epoch;
    }
    struct lb_set set;
    lb_set_init(&set, tp, names, 2, &params, 0);
    bool panic;
    size_t first = lb_pick(&set, 0, 0, false, SIZE_MAX, &panic);
    size_t second = lb_pick(&set, 0, 0, false, SIZE_MAX, &panic);
    cr_assert_neq(first, second);
    struct lb_attempt a1 = lb_begin(&t[1], 0);
    struct lb_attempt a2 = lb_begin(&t[1], 0);
    cr_assert_eq(cast(&v[1], "5"), LB_HEALTH_DRAINING);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(lb_pick(&set, 10, 0, false, SIZE_MAX, &panic), 0);
        cr_assert_not(panic);
    }
    /* The two requests already on it end normally, and change nothing. */
    cr_assert_not(lb_end(&t[1], &params, a1, LB_OK, 5, 20));
    cr_assert_not(lb_end(&t[1], &params, a2, LB_OK, 5, 20));
    cr_assert_eq(t[1].outstanding, 0);
    cr_assert_eq(lb_pick(&set, 30, 0, false, SIZE_MAX, &panic), 0);
    /* Back after `rise` passes. */
    cast(&v[1], "u");
    cr_assert_eq(lb_pick(&set, 40, 0, false, SIZE_MAX, &panic), 0);
    cr_assert_eq(lb_pick(&set, 40, 0, false, SIZE_MAX, &panic), 0);
    cast(&v[1], "u");
    size_t a = lb_pick(&set, 50, 0, false, SIZE_MAX, &panic);
    size_t b = lb_pick(&set, 50, 0, false, SIZE_MAX, &panic);
    cr_assert_eq(a + b, 1, "round robin over both again: %zu %zu", a, b);
    lb_set_free(&set);
}

Test(gateway_health, coming_up_ends_a_passive_ejection_at_once, .init = quiet)
{
    struct votes v;
    votes_init(&v, 2, 1);
    struct lb_target t = {.health = &v.s.health, .up_epoch = &v.s.up_epoch};
    struct lb_target u = {0};
    struct lb_target *tp[2] = {&t, &u};
    struct lb_set set;
    lb_set_init(&set, tp, names, 2, &params, 0);
    bool panic;
    struct lb_attempt at = lb_begin(&t, 0);
    cr_assert(lb_end(&t, &params, at, LB_CONNECT_FAIL, 0, 0));
    cr_assert_eq(lb_pick(&set, 100, 0, false, SIZE_MAX, &panic), 1);
    cr_assert_eq(lb_pick(&set, 100, 0, false, SIZE_MAX, &panic), 1);
    /* Passing checks while already up say nothing new: the back-off stays. */
    cast(&v, "uuu");
    cr_assert_eq(lb_pick(&set, 200, 0, false, SIZE_MAX, &panic), 1);
    cr_assert_eq(lb_pick(&set, 200, 0, false, SIZE_MAX, &panic), 1);
    /* Down, then up by the checks, long before the 1000 ms back-off ends. */
    cr_assert_eq(cast(&v, "d"), LB_HEALTH_DOWN);
    cr_assert_eq(cast(&v, "uu"), LB_HEALTH_UP);
    size_t a = lb_pick(&set, 300, 0, false, SIZE_MAX, &panic);
    size_t b = lb_pick(&set, 300, 0, false, SIZE_MAX, &panic);
    cr_assert_eq(a + b, 1, "both targets usable again: %zu %zu", a, b);
    cr_assert_eq(t.backoff_ms, 0);
    lb_set_free(&set);
}

/* ---- probe_step: the status line ---- */

static const char probe_req[] = "GET /api/health HTTP/1.1\r\nHost: gateway\r\n\r\n";

struct pair {
    struct probe p;
    int peer;
};

/* A probe on one end of a socket pair, its request already sent and read by
 * the peer. */
static void pair_open(struct pair *x)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    x->p = (struct probe){.fd = sv[0], .verdict = -1};
    x->peer = sv[1];
    probe_step(&x->p, probe_req, sizeof(probe_req) - 1);
    cr_assert(x->p.sent);
    cr_assert_eq(x->p.verdict, -1);
    char got[128];
    ssize_t n = recv(x->peer, got, sizeof(got), 0);
    cr_assert_eq(n, (ssize_t)sizeof(probe_req) - 1);
    cr_assert_arr_eq(got, probe_req, sizeof(probe_req) - 1);
}

static void pair_close(struct pair *x)
{
    close(x->p.fd);
    if (x->peer >= 0)
        close(x->peer);
}

static void peer_send(struct pair *x, const char *bytes)
{
    size_t len = strlen(bytes);
    cr_assert_eq(send(x->peer, bytes, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* The verdict on a whole answer sent at once, followed by EOF. */
static int verdict_of(const char *answer)
{
    struct pair x;
    pair_open(&x);
    peer_send(&x, answer);
    close(x.peer);
    x.peer = -1;
    probe_step(&x.p, probe_req, sizeof(probe_req) - 1);
    int v = x.p.verdict;
    pair_close(&x);
    return v;
}

Test(gateway_health, probe_status_classes)
{
    static const struct {
        const char *answer;
        int verdict;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", LB_HEALTH_UP},
        {"HTTP/1.1 204 No Content\r\n\r\n", LB_HEALTH_UP},
        {"HTTP/1.1 299 Whatever\r\n\r\n", LB_HEALTH_UP},
        {"HTTP/1.0 200 OK\r\n\r\n", LB_HEALTH_UP},
        {"HTTP/1.1 200\r\n\r\n", LB_HEALTH_UP}, /* the reason phrase may be empty */
        {"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n", LB_HEALTH_DRAINING},
        {"HTTP/1.0 503 Service Unavailable\r\n\r\n", LB_HEALTH_DRAINING},
        {"HTTP/1.1 500 Internal Server Error\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/1.1 502 Bad Gateway\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/1.1 504 Gateway Timeout\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/1.1 404 Not Found\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/1.1 304 Not Modified\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/1.1 100 Continue\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/2 200\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/1.1 abc Nope\r\n\r\n", LB_HEALTH_DOWN},
        {"SSH-2.0-OpenSSH_9.2p1\r\n", LB_HEALTH_DOWN},
        {"\x16\x03\x01\x02\x01\x01\x01\x01\xfc\x03\x03\x01", LB_HEALTH_DOWN},
        {"http/1.1 200 OK\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/1.1 2000 OK\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/1.1  200 OK\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/1.1X200 OK\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/1.x 200 OK\r\n\r\n", LB_HEALTH_DOWN},
        {"HTTP/1.1 2x0 OK\r\n\r\n", LB_HEALTH_DOWN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = verdict_of(cases[i].answer);
        cr_expect_eq(got, cases[i].verdict, "%s: got %d, want %d", cases[i].answer, got,
                     cases[i].verdict);
    }
}

Test(gateway_health, probe_waits_for_a_whole_status_code_across_reads)
{
    struct pair x;
    pair_open(&x);
    /* Nothing to read yet: still running. */
    probe_step(&x.p, probe_req, sizeof(probe_req) - 1);
    cr_assert_eq(x.p.verdict, -1);
    static const char *const pieces[] = {"H", "TTP/", "1.1", " 5", "0"};
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        peer_send(&x, pieces[i]);
        probe_step(&x.p, probe_req, sizeof(probe_req) - 1);
        cr_assert_eq(x.p.verdict, -1, "decided after \"%s\"", pieces[i]);
    }
    cr_assert_eq(x.p.got, 11);
    /* The twelfth byte completes the code, the thirteenth shows it ends
     * there: 503, not a 5xx failure. */
    peer_send(&x, "3");
    probe_step(&x.p, probe_req, sizeof(probe_req) - 1);
    cr_assert_eq(x.p.verdict, -1, "decided before the code's end was seen");
    peer_send(&x, " Service Unavailable\r\n\r\n");
    probe_step(&x.p, probe_req, sizeof(probe_req) - 1);
    cr_assert_eq(x.p.verdict, LB_HEALTH_DRAINING);
    pair_close(&x);
}

Test(gateway_health, probe_cut_off_before_a_whole_status_code_fails)
{
    static const char *const partial[] = {"", "H", "HTTP/1.1", "HTTP/1.1 20", "HTTP/1.1 200"};
    for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
        struct pair x;
        pair_open(&x);
        if (partial[i][0]) {
            peer_send(&x, partial[i]);
            probe_step(&x.p, probe_req, sizeof(probe_req) - 1);
            cr_assert_eq(x.p.verdict, -1, "decided on \"%s\"", partial[i]);
        }
        close(x.peer);
        x.peer = -1;
        probe_step(&x.p, probe_req, sizeof(probe_req) - 1);
        cr_expect_eq(x.p.verdict, LB_HEALTH_DOWN, "\"%s\" then EOF", partial[i]);
        pair_close(&x);
    }
}

/* ---- probe_open and whole rounds on loopback ---- */

/* A loopback socket on a kernel-chosen port: listening (connections queue
 * in the kernel, never accepted) or merely bound (connects are refused). */
static int loopback(bool listening, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (listening)
        cr_assert_eq(listen(fd, 16), 0);
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Runs one probe by hand until it decides or 2 s pass. */
static int probe_run(const char *addr)
{
    struct probe p = {.fd = probe_open(addr), .verdict = -1};
    if (p.fd < 0)
        return LB_HEALTH_DOWN;
    for (int i = 0; i < 40 && p.verdict < 0; i++) {
        struct pollfd pfd = {.fd = p.fd, .events = p.sent ? POLLIN : POLLOUT};
        if (poll(&pfd, 1, 50) > 0)
            probe_step(&p, probe_req, sizeof(probe_req) - 1);
    }
    close(p.fd);
    return p.verdict;
}

Test(gateway_health, probe_open_refused_and_bad_addresses)
{
    int port;
    int bound = loopback(false, &port);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    cr_assert_eq(probe_run(addr), LB_HEALTH_DOWN);
    close(bound);
    cr_assert_eq(probe_open("localhost:80"), -1);
    cr_assert_eq(probe_open("[not-v6]:80"), -1);
    cr_assert_eq(probe_open("999.0.0.1:80"), -1);
}

/* Answers each connection on a listening socket with a fixed reply, until
 * told to stop; records the last request's first line. */
struct responder {
    int fd, port;
    const char *reply;
    pthread_t th;
    atomic_bool stop;
    atomic_int served;
    char first_line[128];
};

static void *responder_main(void *arg)
{
    struct responder *r = arg;
    while (!atomic_load(&r->stop)) {
        struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            continue;
        char req[1024];
        size_t got = 0;
        while (got < sizeof(req) - 1) {
            ssize_t n = recv(c, req + got, sizeof(req) - 1 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
            req[got] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        req[got] = '\0';
        char *eol = strstr(req, "\r\n");
        if (eol)
            *eol = '\0';
        size_t len = strnlen(req, sizeof(r->first_line) - 1);
        memcpy(r->first_line, req, len);
        r->first_line[len] = '\0';
        /* Counted before the reply, which may end the round at once. */
        atomic_fetch_add(&r->served, 1);
        send(c, r->reply, strlen(r->reply), MSG_NOSIGNAL);
        close(c);
    }
    return NULL;
}

static void responder_start(struct responder *r, const char *reply)
{
    memset(r, 0, sizeof(*r));
    r->fd = loopback(true, &r->port);
    r->reply = reply;
    cr_assert_eq(pthread_create(&r->th, NULL, responder_main, r), 0);
}

static void responder_stop(struct responder *r)
{
    atomic_store(&r->stop, true);
    pthread_join(r->th, NULL);
    close(r->fd);
}

static int state_of(struct gateway *gw, size_t k)
{
    return atomic_load(&gw->current->targets[0][k]->health);
}

/* Ticks the checks until done() or a bound; returns the ms it took. */
static uint64_t tick_until(struct gateway *gw, struct health_checks *hc,
                           bool (*done)(struct gateway *, struct health_checks *),
                           uint64_t bound_ms)
{
    uint64_t t0 = mono_ms();
    while (!done(gw, hc) && mono_ms() - t0 < bound_ms)
        health_tick(gw, gw->current, hc);
    return mono_ms() - t0;
}

/* Every check has voted but the silent target's. */
static bool others_decided(struct gateway *gw, struct health_checks *hc)
{
    return hc->n == 1 && hc->probes[0].stat == gw->current->targets[0][0];
}

static bool silent_down(struct gateway *gw, struct health_checks *hc)
{
    (void)hc;
    return state_of(gw, 0) == LB_HEALTH_DOWN;
}

static bool never(struct gateway *gw, struct health_checks *hc)
{
    (void)gw;
    (void)hc;
    return false;
}

Test(gateway_health, checks_run_side_by_side_and_a_silent_target_delays_no_other_verdict,
     .init = quiet)
{
    int silent_port, refused_port;
    int silent = loopback(true, &silent_port);
    int refused = loopback(false, &refused_port);
    struct responder ok, drain;
    responder_start(&ok, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    responder_start(&drain, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    char text[512];
    snprintf(text, sizeof(text),
             "upstream api 127.0.0.1:%d 127.0.0.1:%d 127.0.0.1:%d 127.0.0.1:%d\n"
             "route / api\n"
             "health_interval_ms = 60000\n"
             "health_timeout_ms = 3000\n"
             "health_fall = 1\n"
             "health_path = /healthz\n",
             silent_port, refused_port, ok.port, drain.port);
    struct gateway_config gc;
    char err[256];
    cr_assert_eq(gateway_config_parse(&gc, NULL, slice_cstr(text), err, sizeof(err)), 0, "%s", err);
    struct gateway *gw = gateway_new(&gc, (struct gateway_source){0});
    cr_assert_not_null(gw);
    for (size_t k = 0; k < 4; k++)
        cr_assert_eq(state_of(gw, k), LB_HEALTH_UP, "a new target starts up");
    struct health_checks *hc = xcalloc(1, sizeof(*hc));

    uint64_t t0 = mono_ms();
    uint64_t took = tick_until(gw, hc, others_decided, 2500);
    /* The answering and refusing targets are decided long before the silent
     * one's deadline, which is still running. */
    cr_assert(others_decided(gw, hc), "not decided in %llu ms", (unsigned long long)took);
    cr_assert_eq(state_of(gw, 1), LB_HEALTH_DOWN, "refused");
    cr_assert_eq(state_of(gw, 2), LB_HEALTH_UP, "200");
    cr_assert_eq(state_of(gw, 3), LB_HEALTH_DRAINING, "503");
    cr_assert_eq(state_of(gw, 0), LB_HEALTH_UP, "the silent one's check still runs");
    tick_until(gw, hc, silent_down, 6000);
    took = mono_ms() - t0;
    cr_assert(silent_down(gw, hc));
    cr_assert_geq(took, 2990, "the silent one failed after %llu ms", (unsigned long long)took);
    cr_assert_eq(hc->n, 0);
    cr_assert_eq(atomic_load(&ok.served), 1);
    cr_assert_eq(atomic_load(&drain.served), 1);
    cr_assert_str_eq(ok.first_line, "GET /healthz HTTP/1.1");

    /* Not due again before the interval: ticks probe nothing. */
    tick_until(gw, hc, never, 300);
    cr_assert_eq(atomic_load(&ok.served), 1);
    cr_assert_eq(hc->n, 0);

    struct buf m = BUF_INIT;
    gateway_metrics_render(gw, &m);
    buf_append_char(&m, '\0');
    char line[256];
    static const char *const want[4] = {"down", "down", "up", "draining"};
    const int ports[4] = {silent_port, refused_port, ok.port, drain.port};
    for (size_t k = 0; k < 4; k++) {
        snprintf(line, sizeof(line),
                 "cruder_gateway_upstream_health{upstream=\"api\",target=\"127.0.0.1:%d\","
                 "state=\"%s\"} 1\n",
                 ports[k], want[k]);
        cr_expect_not_null(strstr(m.ptr, line), "missing %s", line);
    }
    buf_free(&m);

    health_checks_close(hc);
    gateway_free(gw);
    responder_stop(&ok);
    responder_stop(&drain);
    close(silent);
    close(refused);
}

static bool up0(struct gateway *gw, struct health_checks *hc)
{
    (void)hc;
    return state_of(gw, 0) == LB_HEALTH_UP;
}

Test(gateway_health, answering_targets_are_decided_without_waiting_for_the_timeout, .init = quiet)
{
    struct responder ok;
    responder_start(&ok, "HTTP/1.0 200 OK\r\n\r\n");
    char text[256];
    snprintf(text, sizeof(text),
             "upstream api 127.0.0.1:%d\nroute / api\n"
             "health_interval_ms = 1\nhealth_timeout_ms = 10000\n"
             "health_rise = 2\nhealth_fall = 2\n",
             ok.port);
    struct gateway_config gc;
    char err[256];
    cr_assert_eq(gateway_config_parse(&gc, NULL, slice_cstr(text), err, sizeof(err)), 0, "%s", err);
    struct gateway *gw = gateway_new(&gc, (struct gateway_source){0});
    atomic_store(&gw->current->targets[0][0]->health, LB_HEALTH_DOWN);
    struct health_checks *hc = xcalloc(1, sizeof(*hc));
    uint64_t took = tick_until(gw, hc, up0, 5000);
    cr_assert(up0(gw, hc), "not up after %llu ms", (unsigned long long)took);
    cr_assert_eq(atomic_load(&ok.served), 2, "two passes bring it up");
    health_checks_close(hc);
    gateway_free(gw);
    responder_stop(&ok);
}
