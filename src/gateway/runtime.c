/* The gateway's control side: configuration snapshots and their reload, the
 * active health checks, and the counters behind /metrics.
 *
 * One control thread wakes every TICK_MS: it reloads when asked (SIGHUP),
 * starts the health checks that are due and advances the running ones, all
 * with non-blocking sockets and poll(2); each check votes when it has its
 * answer or its deadline passes, so one slow target never delays the others'
 * checks or verdicts. Loops see a new configuration on their next request by
 * comparing a generation number; nothing on the request path takes the mutex
 * except that switch. */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "gateway/internal.h"

enum { TICK_MS = 50, HEALTH_MAX = 512 };

static volatile sig_atomic_t reload_wanted;

static uint64_t mono_ms(void)
{
    return time_mono_ns() / 1000000u;
}

/* ---- counters ---- */

/* Upper bounds of the latency buckets, in seconds. */
static const double bucket_le[GW_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,   0.25,   0.5,   1,    2.5,   10};

void gw_stat_record(struct gw_stat *s, int status, double latency_ms)
{
    int cls = status >= 100 && status < 600 ? status / 100 - 1 : GW_CLASSES - 1;
    atomic_fetch_add_explicit(&s->requests[cls], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < GW_BUCKETS && latency_ms / 1000.0 > bucket_le[b])
        b++;
    atomic_fetch_add_explicit(&s->latency[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->latency_sum_us, (unsigned long long)(latency_ms * 1000.0),
                              memory_order_relaxed);
}

/* Finds or adds the stat with these labels; called with gw->mu held. */
static struct gw_stat *stat_get(struct gw_stat **list, const char *labels)
{
    for (struct gw_stat *s = *list; s; s = s->next)
        if (!strcmp(s->labels, labels))
            return s;
    struct gw_stat *s = xcalloc(1, sizeof(*s));
    s->labels = xstrdup(labels);
    s->next = *list;
    *list = s;
    return s;
}

/* Label values come from the configuration file, whose names and targets
 * hold no quote or backslash; route prefixes may, so they are escaped. */
static void label_escape(struct buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            buf_append_char(b, '\\');
        if (*v == '\n')
            buf_append_cstr(b, "\\n");
        else
            buf_append_char(b, *v);
    }
}

static void render_stats(struct buf *out, const char *prefix, struct gw_stat *list, bool targets)
{
    static const char *const cls[GW_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx", "none"};
    buf_appendf(out, "# TYPE %s_requests_total counter\n", prefix);
    for (struct gw_stat *s = list; s; s = s->next)
        for (int c = 0; c < GW_CLASSES; c++)
            buf_appendf(out, "%s_requests_total{%s,class=\"%s\"} %llu\n", prefix, s->labels, cls[c],
                        atomic_load(&s->requests[c]));
    buf_appendf(out, "# TYPE %s_latency_seconds histogram\n", prefix);
    for (struct gw_stat *s = list; s; s = s->next) {
        unsigned long long cum = 0;
        for (int b = 0; b <= GW_BUCKETS; b++) {
            cum += atomic_load(&s->latency[b]);
            if (b < GW_BUCKETS)
                buf_appendf(out, "%s_latency_seconds_bucket{%s,le=\"%g\"} %llu\n", prefix,
                            s->labels, bucket_le[b], cum);
            else
                buf_appendf(out, "%s_latency_seconds_bucket{%s,le=\"+Inf\"} %llu\n", prefix,
                            s->labels, cum);
        }
        buf_appendf(out, "%s_latency_seconds_sum{%s} %.6f\n", prefix, s->labels,
                    (double)atomic_load(&s->latency_sum_us) / 1e6);
        buf_appendf(out, "%s_latency_seconds_count{%s} %llu\n", prefix, s->labels, cum);
    }
    buf_appendf(out, "# TYPE %s_retries_total counter\n", prefix);
    for (struct gw_stat *s = list; s; s = s->next)
        buf_appendf(out, "%s_retries_total{%s} %llu\n", prefix, s->labels,
                    atomic_load(&s->retries));
    if (!targets)
        return;
    buf_appendf(out, "# TYPE %s_ejections_total counter\n", prefix);
    for (struct gw_stat *s = list; s; s = s->next)
        buf_appendf(out, "%s_ejections_total{%s} %llu\n", prefix, s->labels,
                    atomic_load(&s->ejections));
    buf_appendf(out, "# TYPE %s_in_flight gauge\n", prefix);
    for (struct gw_stat *s = list; s; s = s->next)
        buf_appendf(out, "%s_in_flight{%s} %lld\n", prefix, s->labels, atomic_load(&s->in_flight));
    /* One series per state, 1 for the current one, as Prometheus's own
     * "state set" convention has it. */
    static const char *const states[] = {"up", "down", "draining"};
    buf_appendf(out, "# TYPE %s_health gauge\n", prefix);
    for (struct gw_stat *s = list; s; s = s->next) {
        int h = atomic_load(&s->listed) ? atomic_load(&s->health) : LB_HEALTH_DRAINING;
        for (int k = 0; k < 3; k++)
            buf_appendf(out, "%s_health{%s,state=\"%s\"} %d\n", prefix, s->labels, states[k],
                        h == k);
    }
}

void gateway_metrics_render(struct gateway *gw, struct buf *out)
{
    pthread_mutex_lock(&gw->mu);
    render_stats(out, "cruder_gateway_upstream", gw->target_stats, true);
    render_stats(out, "cruder_gateway_route", gw->route_stats, false);
    buf_appendf(out,
                "# TYPE cruder_gateway_config_generation gauge\n"
                "cruder_gateway_config_generation %llu\n",
                (unsigned long long)gw->current->gen);
    pthread_mutex_unlock(&gw->mu);
    if (gw->cache)
        cache_metrics_render(gw->cache, out);
}

struct cache *gateway_cache(struct gateway *gw)
{
    return gw->cache;
}

/* ---- configuration snapshots ---- */

struct gw_topo *gw_topo_acquire(struct gateway *gw)
{
    pthread_mutex_lock(&gw->mu);
    struct gw_topo *t = gw->current;
    atomic_fetch_add(&t->refs, 1);
    pthread_mutex_unlock(&gw->mu);
    return t;
}

void gw_topo_release(struct gw_topo *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    for (size_t u = 0; u < t->gc.nupstreams; u++)
        free(t->targets[u]);
    free(t->targets);
    free(t->routes);
    gateway_config_free(&t->gc);
    free(t);
}

/* Wraps gc (taken) in a snapshot with its counters; called with gw->mu held. */
static struct gw_topo *topo_new(struct gateway *gw, struct gateway_config *gc, uint64_t gen)
{
    struct gw_topo *t = xcalloc(1, sizeof(*t));
    atomic_init(&t->refs, 1);
    t->gen = gen;
    t->gc = *gc;
    gateway_config_defaults(gc);
    for (struct gw_stat *s = gw->target_stats; s; s = s->next)
        atomic_store(&s->listed, false);
    t->targets = xcalloc(t->gc.nupstreams ? t->gc.nupstreams : 1, sizeof(*t->targets));
    struct buf lb = BUF_INIT;
    for (size_t u = 0; u < t->gc.nupstreams; u++) {
        const struct gateway_upstream *up = &t->gc.upstreams[u];
        t->targets[u] = xcalloc(up->ntargets, sizeof(**t->targets));
        for (size_t k = 0; k < up->ntargets; k++) {
            buf_reset(&lb);
            buf_appendf(&lb, "upstream=\"%s\",target=\"%s\"", up->name, up->targets[k]);
            struct gw_stat *s = stat_get(&gw->target_stats, buf_slice(&lb).ptr);
            atomic_store(&s->listed, true);
            t->targets[u][k] = s;
        }
    }
    t->routes = xcalloc(t->gc.nroutes ? t->gc.nroutes : 1, sizeof(*t->routes));
    for (size_t r = 0; r < t->gc.nroutes; r++) {
        buf_reset(&lb);
        buf_append_cstr(&lb, "route=\"");
        if (t->gc.routes[r].host)
            label_escape(&lb, t->gc.routes[r].host);
        label_escape(&lb, t->gc.routes[r].prefix);
        buf_appendf(&lb, "\",upstream=\"%s\"", t->gc.upstreams[t->gc.routes[r].upstream].name);
        t->routes[r] = stat_get(&gw->route_stats, buf_slice(&lb).ptr);
    }
    buf_free(&lb);
    return t;
}

struct gateway *gateway_new(struct gateway_config *gc, struct gateway_source src)
{
    struct gateway *gw = xcalloc(1, sizeof(*gw));
    gw->src = src;
    pthread_mutex_init(&gw->mu, NULL);
    atomic_init(&gw->gen, 1);
    if (gc->cache_max_bytes) {
        gw->cache_targeted_field =
            gc->cache_targeted_field ? xstrdup(gc->cache_targeted_field) : NULL;
        gw->cache_tag_field = gc->cache_tag_field ? xstrdup(gc->cache_tag_field) : NULL;
        struct cache_options co = {
            .max_bytes = gc->cache_max_bytes,
            .max_object_bytes = gc->cache_max_object_bytes,
            .policy = gc->cache_policy,
            .targeted_field = gw->cache_targeted_field,
            .tag_field = gw->cache_tag_field,
            .disk_dir = gc->cache_disk_dir,
            .disk_max_bytes = gc->cache_disk_max_bytes,
        };
        gw->cache = cache_new(&co);
        if (gw->cache == NULL) {
            int saved = errno;
            free(gw->cache_targeted_field);
            free(gw->cache_tag_field);
            pthread_mutex_destroy(&gw->mu);
            free(gw);
            gateway_config_free(gc);
            errno = saved;
            return NULL;
        }
    }
    gw->current = topo_new(gw, gc, 1);
    return gw;
}

static void do_reload(struct gateway *gw)
{
    struct gateway_config gc;
    char err[512];
    if (!gw->src.load || gw->src.load(gw->src.ctx, &gc, err, sizeof(err)) != 0) {
        log_error("gateway: reload failed, keeping the current configuration: %s",
                  gw->src.load ? err : "no source");
        return;
    }
    if (gw->cache && gc.cache_max_bytes)
        cache_resize(gw->cache, gc.cache_max_bytes, gc.cache_max_object_bytes,
                     gc.cache_disk_max_bytes);
    else if (!gw->cache != !gc.cache_max_bytes)
        log_warn("gateway: turning the cache on or off takes a restart");
    pthread_mutex_lock(&gw->mu);
    struct gw_topo *old = gw->current;
    uint64_t gen = old->gen + 1;
    gw->current = topo_new(gw, &gc, gen);
    atomic_store(&gw->gen, gen);
    pthread_mutex_unlock(&gw->mu);
    log_info("gateway: configuration %llu loaded (%zu upstreams, %zu routes)",
             (unsigned long long)gen, gw->current->gc.nupstreams, gw->current->gc.nroutes);
    gw_topo_release(old);
}

void gateway_reload(void)
{
    reload_wanted = 1;
}

/* ---- active health checks ---- */

struct probe {
    struct gw_stat *stat;
    int fd;
    bool sent;
    char buf[32];
    size_t got;
    int verdict; /* -1 running, else an enum lb_health vote */
    uint64_t deadline_ms;
};

/* The checks in flight, kept across ticks: each runs until its verdict or
 * its own deadline and votes then, so a silent target delays neither the
 * others' checks nor their verdicts. */
struct health_checks {
    struct probe probes[HEALTH_MAX];
    struct pollfd pfds[HEALTH_MAX];
    size_t n;
};

static int probe_open(const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char host[64];
    const char *colon = strrchr(addr, ':');
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof(host))
        return -1;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    int port = atoi(colon + 1);
    memset(&ss, 0, sizeof(ss));
    if (host[0] == '[') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        host[hl - 1] = '\0';
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
            return -1;
        len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return -1;
        len = sizeof(*a4);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&ss, len) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Advances one probe on readiness; sets its verdict when it knows. */
static void probe_step(struct probe *p, const char *req, size_t reqlen)
{
    if (!p->sent) {
        int e = 0;
        socklen_t el = sizeof(e);
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e ||
            send(p->fd, req, reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen) {
            p->verdict = LB_HEALTH_DOWN;
            return;
        }
        p->sent = true;
        return;
    }
    ssize_t n = recv(p->fd, p->buf + p->got, sizeof(p->buf) - 1 - p->got, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        p->verdict = LB_HEALTH_DOWN;
        return;
    }
    p->got += (size_t)n;
    /* "HTTP/1.x 200" and the space or CR after the code, no laxer (RFC
     * 9112 4): a longer code or a stray space is no 2xx. What cannot start
     * a status line fails at once. */
    if (memcmp(p->buf, "HTTP/1.", p->got < 7 ? p->got : 7) != 0) {
        p->verdict = LB_HEALTH_DOWN;
        return;
    }
    if (p->got < 13)
        return;
    const char *b = p->buf;
    bool digits = true;
    for (int i = 9; i < 12; i++)
        digits &= b[i] >= '0' && b[i] <= '9';
    int status = 0;
    if (memcmp(b, "HTTP/1.", 7) != 0 || (b[7] != '0' && b[7] != '1') || b[8] != ' ' || !digits ||
        (b[12] != ' ' && b[12] != '\r'))
        p->verdict = LB_HEALTH_DOWN;
    else if ((status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0')) == 503)
        p->verdict = LB_HEALTH_DRAINING;
    else
        p->verdict = status >= 200 && status < 300 ? LB_HEALTH_UP : LB_HEALTH_DOWN;
}

/* Applies a vote with the rise/fall thresholds. A 503 drains at once: the
 * upstream said so itself, there is nothing to confirm. */
static void health_vote(struct gw_stat *s, int vote, const struct gateway_config *gc)
{
    int cur = atomic_load(&s->health);
    if (vote == LB_HEALTH_DRAINING) {
        s->passes = s->fails = 0;
        if (cur != LB_HEALTH_DRAINING)
            log_info("gateway: %s draining (health answered 503)", s->labels);
        atomic_store(&s->health, LB_HEALTH_DRAINING);
        return;
    }
    if (vote == LB_HEALTH_UP) {
        s->fails = 0;
        if (cur != LB_HEALTH_UP && ++s->passes >= gc->health_rise) {
            s->passes = 0;
            log_info("gateway: %s up", s->labels);
            atomic_store(&s->health, LB_HEALTH_UP);
            atomic_fetch_add(&s->up_epoch, 1);
        }
        return;
    }
    s->passes = 0;
    if (cur != LB_HEALTH_DOWN && ++s->fails >= gc->health_fall) {
        s->fails = 0;
        log_warn("gateway: %s down (health check failed)", s->labels);
        atomic_store(&s->health, LB_HEALTH_DOWN);
    }
}

/* Starts the checks that are due. */
static void health_start_due(struct health_checks *hc, struct gw_topo *t, uint64_t now)
{
    const struct gateway_config *gc = &t->gc;
    if (gc->health_interval_ms <= 0)
        return;
    for (size_t u = 0; u < gc->nupstreams; u++)
        for (size_t k = 0; k < gc->upstreams[u].ntargets && hc->n < HEALTH_MAX; k++) {
            struct gw_stat *s = t->targets[u][k];
            /* A target listed twice, or still being checked, is checked once. */
            if (s->checking || s->next_check_ms > now)
                continue;
            s->checking = true;
            s->next_check_ms = now + (uint64_t)gc->health_interval_ms;
            int fd = probe_open(gc->upstreams[u].targets[k]);
            hc->probes[hc->n++] =
                (struct probe){.stat = s,
                               .fd = fd,
                               .verdict = fd < 0 ? LB_HEALTH_DOWN : -1,
                               .deadline_ms = now + (uint64_t)gc->health_timeout_ms};
        }
}

/* One tick of the active checks: starts those due, waits up to TICK_MS for
 * the running ones, and applies each verdict (no answer by its deadline is
 * a failure) as soon as it is known. */
static void health_tick(struct gateway *gw, struct gw_topo *t, struct health_checks *hc)
{
    const struct gateway_config *gc = &t->gc;
    health_start_due(hc, t, mono_ms());
    char req[512];
    /* The target address stands in for Host: cruder serve ignores it. */
    int reqlen = snprintf(req, sizeof(req),
                          "GET %s HTTP/1.1\r\nHost: gateway\r\nUser-Agent: cruder-gateway\r\n"
                          "Connection: close\r\n\r\n",
                          gateway_health_path(gc));
    size_t nw = 0;
    for (size_t i = 0; i < hc->n; i++) {
        if (hc->probes[i].verdict >= 0)
            continue;
        hc->pfds[nw].fd = hc->probes[i].fd;
        hc->pfds[nw].events = hc->probes[i].sent ? POLLIN : POLLOUT;
        hc->pfds[nw].revents = 0;
        nw++;
    }
    if (nw == 0 && hc->n == 0) {
        usleep(TICK_MS * 1000);
        return;
    }
    if (nw && poll(hc->pfds, nw, TICK_MS) > 0) {
        size_t j = 0;
        for (size_t i = 0; i < hc->n; i++) {
            if (hc->probes[i].verdict >= 0)
                continue;
            if (hc->pfds[j].revents)
                probe_step(&hc->probes[i], req, (size_t)reqlen);
            j++;
        }
    }
    uint64_t now = mono_ms();
    for (size_t i = 0; i < hc->n;) {
        struct probe *p = &hc->probes[i];
        if (p->verdict < 0 && now < p->deadline_ms) {
            i++;
            continue;
        }
        if (p->fd >= 0)
            close(p->fd);
        p->stat->checking = false;
        if (!atomic_load(&gw->stop))
            health_vote(p->stat, p->verdict >= 0 ? p->verdict : LB_HEALTH_DOWN, gc);
        *p = hc->probes[--hc->n];
    }
}

static void health_checks_close(struct health_checks *hc)
{
    for (size_t i = 0; i < hc->n; i++)
        if (hc->probes[i].fd >= 0)
            close(hc->probes[i].fd);
    free(hc);
}

static void *control_main(void *arg)
{
    struct gateway *gw = arg;
    struct health_checks *checks = xcalloc(1, sizeof(*checks));
    while (!atomic_load(&gw->stop)) {
        if (reload_wanted) {
            reload_wanted = 0;
            do_reload(gw);
        }
        struct gw_topo *t = gw_topo_acquire(gw);
        health_tick(gw, t, checks);
        gw_topo_release(t);
    }
    health_checks_close(checks);
    return NULL;
}

void gateway_start(struct gateway *gw)
{
    core_assert(!gw->started);
    gw->started = pthread_create(&gw->thread, NULL, control_main, gw) == 0;
    core_assert(gw->started);
}

void gateway_free(struct gateway *gw)
{
    if (!gw)
        return;
    if (gw->started) {
        atomic_store(&gw->stop, true);
        pthread_join(gw->thread, NULL);
    }
    gw_topo_release(gw->current);
    for (struct gw_stat **list = &gw->target_stats; list;
         list = list == &gw->target_stats ? &gw->route_stats : NULL)
        while (*list) {
            struct gw_stat *s = *list;
            *list = s->next;
            free(s->labels);
            free(s);
        }
    cache_free(gw->cache);
    free(gw->cache_targeted_field);
    free(gw->cache_tag_field);
    pthread_mutex_destroy(&gw->mu);
    free(gw);
}

/* ---- the file source ---- */

static int file_load(void *ctx, struct gateway_config *gc, char *err, size_t errlen)
{
    /* Listening addresses and other process settings cannot change while
     * running; they are parsed into a scratch copy, checked and dropped. */
    struct config scratch;
    config_defaults(&scratch);
    int rc = gateway_config_load(gc, &scratch, ctx, err, errlen);
    config_free(&scratch);
    return rc;
}

struct gateway_source gateway_file_source(const char *path)
{
    return (struct gateway_source){file_load, (void *)path};
}
