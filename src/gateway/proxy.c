/* The proxy handler: every request the gateway accepts passes through here.
 * Load: the pass-through path (no cache hit) costs two reads and two writes
 * a request and allocates the upstream head, the response fields and, per
 * new URL, the cache's fill; requests for a URL whose answer could not be
 * stored skip the cache for PASS_MEMO_MS (the pass memo).
 * The http layer has already refused ambiguous framing (see http/conn.c), so
 * what reaches this file has one meaning, and the head sent upstream states
 * the body's framing afresh.
 *
 * Per loop (no locks): a client pool per upstream target and its balancer
 * state (balance.h: the policies, passive ejection with back-off and a trial
 * request, the panic threshold); the active checks' verdicts arrive through
 * an atomic word per target (runtime.c). Each request holds the loop's view
 * of the configuration it started on, so a reload (SIGHUP) drains removed
 * targets: their requests finish, new ones go elsewhere.
 *
 * Retries: a request whose connection was refused is tried on the next
 * target whatever its method, since nothing reached an upstream; an
 * idempotent one that failed otherwise, before any response byte, is
 * retried once on another target. Bodies up to RETRY_BODY_MAX are kept for
 * this; a larger body makes its request unretriable.
 *
 * The shared cache (cache.h), when configured, sits before the balancer: a
 * request it can answer never reaches an upstream; a miss forwards with the
 * cache's validators and feeds the answer to the fill; a miss behind another
 * request's fill waits for it (the wake is posted back to this request's
 * loop). A stale-while-revalidate refresh runs detached from the client
 * (struct refresh). Every answer of a cached route says how in Cache-Status. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/id.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "gateway/internal.h"
#include "http/client.h"

enum {
    RETRY_BODY_MAX = 64 * 1024,
    REQUEST_ID_MAX = 128,
    /* The pass memo (struct loop_state): slots, and how long a URL whose
     * answer could not be stored skips the cache's lookup. Short, so an
     * upstream that starts allowing storage is cached again within it. */
    PASS_MEMO_SLOTS = 256,
    PASS_MEMO_MS = 1000,
};

static struct gateway *the_gateway;

/* A target as one loop sees it: its connection pool and balancer state.
 * Shared by successive views while the target stays configured, so a reload
 * keeps its pooled connections and its ejection state. */
struct ltarget {
    unsigned refs;
    char *key; /* "UPSTREAM ADDR" */
    struct http_client_pool *pool;
    struct lb_target lb;
    struct gw_stat *stat;
};

struct lupstream {
    struct lb_set set;
    struct ltarget **t;
    struct lb_target **lbt;
};

/* One configuration as one loop serves it; each request holds a reference,
 * so a reload never pulls a target from under a request in flight. */
struct lview {
    unsigned refs;
    struct gw_topo *topo;
    struct lupstream *ups;
};

struct loop_state {
    struct gateway *gw;
    struct http_loop *loop;
    struct lview *view;
    uint32_t id_prefix;
    uint64_t id_seq;
    struct buf scratch; /* a Cache-Status value being formatted */
    /* URLs (hash of host and target) whose last answer here could not be
     * stored: until `until_ms` their GETs go upstream without a cache
     * lookup and fill (a lock, a key and a fill's allocations each). */
    struct {
        uint64_t hash, until_ms;
    } pass_memo[PASS_MEMO_SLOTS];
};

struct proxy {
    struct http_request *req;
    struct loop_state *ls;
    struct lview *view;
    struct gw_stat *route_stat;
    size_t upstream, target;
    unsigned attempts, retries;
    struct http_client *x;
    struct buf head;
    struct buf body; /* kept for a retry while it fits RETRY_BODY_MAX */
    bool body_kept_whole;
    bool body_done, started, client_paused;
    bool in_attempt; /* lb_begin called, lb_end not yet */
    struct lb_attempt lb_attempt;
    int up_status;
    uint64_t attempt_ns;
    double head_ms;
    uint64_t key_hash;
    bool has_key;
    struct slice request_id;
    /* The cache's part; cache NULL when it is off. */
    struct cache *cache;
    struct cache_fill *fill;
    struct cache_entry *serve; /* answer with this once the exchange ends */
    struct cache_status cst;
    bool cst_on;     /* add Cache-Status to the answer */
    bool collapsed;  /* waited for another request's fill */
    bool waiting;    /* CACHE_WAIT: parked until the wake is posted back */
    bool gone;       /* the client went while waiting */
    bool cond_added; /* the cache's validators replaced the client's own */
    bool refetching; /* a 304 the cache could not use: asking again, unconditionally */
    bool skip_body;  /* the exchange's body is not the answer (serve, refetch) */
    bool memo_miss;  /* a plain miss that may enter the pass memo */
    uint64_t memo_hash;
    /* Upgrade requests: p is on the heap, as it outlives req once the
     * upstream's 101 turns the exchange into a tunnel (see tunnel_end). */
    bool on_heap;
    bool tunnel;     /* switched: req is gone, tun and x carry raw bytes */
    bool tun_paused; /* the client's reading held back by the upstream */
    bool up_paused;  /* the upstream's reading held back by the client */
    bool dead;       /* ended while a callback was on the stack */
    unsigned busy;   /* callbacks of p on the stack */
    struct http_tunnel *tun;
};

/* The loop's time (one clock read per loop iteration, http_loop_now_ns). */
static uint64_t now_ns(const struct proxy *p)
{
    return http_loop_now_ns(p->ls->loop);
}

static uint64_t now_ms(const struct proxy *p)
{
    return now_ns(p) / 1000000u;
}

/* ---- per-loop state ---- */

static void ltarget_release(struct ltarget *t)
{
    if (--t->refs)
        return;
    http_client_pool_free(t->pool);
    free(t->key);
    free(t);
}

static void view_release(struct lview *v)
{
    if (!v || --v->refs)
        return;
    const struct gateway_config *gc = &v->topo->gc;
    for (size_t u = 0; u < gc->nupstreams; u++) {
        lb_set_free(&v->ups[u].set);
        for (size_t k = 0; k < gc->upstreams[u].ntargets; k++)
            ltarget_release(v->ups[u].t[k]);
        free(v->ups[u].t);
        free(v->ups[u].lbt);
    }
    free(v->ups);
    gw_topo_release(v->topo);
    free(v);
}

static struct ltarget *find_ltarget(struct lview *old, const char *key)
{
    if (!old)
        return NULL;
    const struct gateway_config *gc = &old->topo->gc;
    for (size_t u = 0; u < gc->nupstreams; u++)
        for (size_t k = 0; k < gc->upstreams[u].ntargets; k++)
            if (!strcmp(old->ups[u].t[k]->key, key))
                return old->ups[u].t[k];
    return NULL;
}

static struct lview *view_new(struct loop_state *ls, struct gw_topo *topo, struct lview *old)
{
    const struct gateway_config *gc = &topo->gc;
    struct http_client_opts opts = {
        .connect_timeout_ms = gc->connect_timeout_ms,
        .first_byte_timeout_ms = gc->first_byte_timeout_ms,
        .idle_timeout_ms = gc->upstream_idle_timeout_ms,
        .pool_idle_ms = gc->keepalive_idle_ms,
        .max_idle = gc->keepalive_max,
    };
    struct lb_params params = {
        .panic_percent = gc->panic_percent,
        .hash_load_pct = gc->hash_load_pct,
        .eject_ms = gc->eject_ms,
        .eject_max_ms = gc->eject_max_ms,
        .eject_5xx = gc->eject_5xx,
        .ewma_decay = 0.3,
        .ewma_fade_ms = 1000,
    };
    struct lview *v = xcalloc(1, sizeof(*v));
    v->refs = 1;
    v->topo = topo;
    v->ups = xcalloc(gc->nupstreams ? gc->nupstreams : 1, sizeof(*v->ups));
    for (size_t u = 0; u < gc->nupstreams; u++) {
        const struct gateway_upstream *up = &gc->upstreams[u];
        struct lupstream *lu = &v->ups[u];
        lu->t = xcalloc(up->ntargets, sizeof(*lu->t));
        lu->lbt = xcalloc(up->ntargets, sizeof(*lu->lbt));
        for (size_t k = 0; k < up->ntargets; k++) {
            char key[160];
            snprintf(key, sizeof(key), "%s %s", up->name, up->targets[k]);
            struct ltarget *t = find_ltarget(old, key);
            if (t) {
                t->refs++;
            } else {
                t = xcalloc(1, sizeof(*t));
                t->refs = 1;
                t->key = xstrdup(key);
                /* The config parser accepted only addresses the pool parses. */
                t->pool = http_client_pool_new(ls->loop, up->targets[k], &opts);
                core_assert(t->pool);
                t->lb.seen_epoch = atomic_load(&topo->targets[u][k]->up_epoch);
            }
            t->stat = topo->targets[u][k];
            t->lb.health = &t->stat->health;
            t->lb.up_epoch = &t->stat->up_epoch;
            lu->t[k] = t;
            lu->lbt[k] = &t->lb;
        }
        params.policy = up->balance;
        lb_set_init(&lu->set, lu->lbt, (const char *const *)up->targets, up->ntargets, &params,
                    (uint64_t)ls->id_prefix << 20 | u);
    }
    return v;
}

/* The loop's view of the current configuration, rebuilt after a reload. */
static struct lview *current_view(struct loop_state *ls)
{
    if (ls->view && ls->view->topo->gen == atomic_load_explicit(&ls->gw->gen, memory_order_acquire))
        return ls->view;
    struct lview *old = ls->view;
    ls->view = view_new(ls, gw_topo_acquire(ls->gw), old);
    view_release(old);
    return ls->view;
}

static void loop_state_free(void *arg)
{
    struct loop_state *ls = arg;
    view_release(ls->view);
    buf_free(&ls->scratch);
    free(ls);
}

static struct loop_state *loop_state(struct http_loop *loop, struct gateway *gw)
{
    struct loop_state *ls = http_loop_user(loop);
    if (ls)
        return ls;
    ls = xcalloc(1, sizeof(*ls));
    ls->gw = gw;
    ls->loop = loop;
    /* Loops start their cursors and random streams apart. */
    id_random_bytes(&ls->id_prefix, sizeof(ls->id_prefix));
    http_loop_set_user(loop, ls, loop_state_free);
    return ls;
}

/* ---- the upstream request head ---- */

static bool token_in_list(struct slice list, struct slice name)
{
    const char *p = list.ptr, *end = list.ptr + list.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        struct slice item = slice_trim(slice_make(p, (size_t)((comma ? comma : end) - p)));
        if (slice_case_eq(item, name))
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

bool gateway_is_hop_header(struct slice name, struct slice connection)
{
    static const struct slice hop[] = {
        SLICE_LIT("connection"),
        SLICE_LIT("keep-alive"),
        SLICE_LIT("proxy-connection"),
        SLICE_LIT("te"),
        SLICE_LIT("trailer"),
        SLICE_LIT("upgrade"),
        SLICE_LIT("transfer-encoding"),
        SLICE_LIT("proxy-authorization"),
        SLICE_LIT("proxy-authenticate"),
    };
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (slice_case_eq(name, hop[i]))
            return true;
    return connection.len && token_in_list(connection, name);
}

/* Every Connection header's value, joined: the value itself when there is
 * one (the usual case, copied nowhere), else a copy in pool. */
static struct slice connection_tokens(struct arena *pool, const struct http_header *h, size_t n)
{
    struct slice one = SLICE_NULL;
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (slice_case_eq(h[i].name, SLICE_LIT("connection")) && count++ == 0)
            one = h[i].value;
    if (count < 2)
        return one;
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < n; i++)
        if (slice_case_eq(h[i].name, SLICE_LIT("connection"))) {
            if (b.len)
                buf_append_char(&b, ',');
            buf_append_slice(&b, h[i].value);
        }
    struct slice s = arena_slice_dup(pool, buf_slice(&b));
    buf_free(&b);
    return s;
}

static void append_u64(struct buf *b, uint64_t v)
{
    char t[20];
    const char *digits = u64_to_dec(v, t);
    buf_append(b, digits, (size_t)(t + 20 - digits));
}

static bool is_rewritten(struct slice name)
{
    static const struct slice names[] = {
        SLICE_LIT("content-length"),    SLICE_LIT("expect"),           SLICE_LIT("x-forwarded-for"),
        SLICE_LIT("x-forwarded-proto"), SLICE_LIT("x-forwarded-host"), SLICE_LIT("forwarded"),
        SLICE_LIT("x-request-id")};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (slice_case_eq(name, names[i]))
            return true;
    return false;
}

static void append_joined(struct buf *b, const struct http_request *req, struct slice name)
{
    bool first = true;
    for (size_t i = 0; i < req->nheaders; i++)
        if (slice_case_eq(req->headers[i].name, name) && req->headers[i].value.len) {
            if (!first)
                buf_append(b, ", ", 2);
            buf_append_slice(b, req->headers[i].value);
            first = false;
        }
    if (!first)
        buf_append(b, ", ", 2);
}

void gateway_upstream_head(struct buf *out, const struct http_request *req, struct slice request_id)
{
    struct arena scratch = ARENA_INIT;
    struct slice conn = connection_tokens(&scratch, req->headers, req->nheaders);
    /* One allocation for the whole head: the client's fields and ours. */
    size_t need = req->method_name.len + req->target.len + 256 + 2 * request_id.len;
    for (size_t i = 0; i < req->nheaders; i++)
        need += req->headers[i].name.len + req->headers[i].value.len + 4;
    buf_reserve(out, 2 * need);
    buf_append_slice(out, req->method_name);
    buf_append_char(out, ' ');
    buf_append_slice(out, req->target);
    buf_append(out, " HTTP/1.1\r\n", 11);
    bool had_length = false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        had_length |= slice_case_eq(h->name, SLICE_LIT("content-length"));
        /* Upgrade is hop-by-hop, but an upgrade must carry it to the next hop. */
        bool pass = req->upgrade && slice_case_eq(h->name, SLICE_LIT("upgrade"));
        if (!pass && (gateway_is_hop_header(h->name, conn) || is_rewritten(h->name)))
            continue;
        buf_append_slice(out, h->name);
        buf_append(out, ": ", 2);
        buf_append_slice(out, h->value);
        buf_append(out, "\r\n", 2);
    }
    struct slice remote = http_request_remote(req);
    if (!remote.len)
        remote = SLICE_LIT("unknown");
    bool v6 = memchr(remote.ptr, ':', remote.len) != NULL;
    struct slice host = http_request_header(req, "host");

    buf_append_cstr(out, "X-Forwarded-For: ");
    append_joined(out, req, SLICE_LIT("x-forwarded-for"));
    buf_append_slice(out, remote);
    buf_append_cstr(out, "\r\nX-Forwarded-Proto: http\r\n");
    if (host.len) {
        buf_append_cstr(out, "X-Forwarded-Host: ");
        buf_append_slice(out, host);
        buf_append(out, "\r\n", 2);
    }
    buf_append_cstr(out, "Forwarded: ");
    append_joined(out, req, SLICE_LIT("forwarded"));
    buf_append_cstr(out, v6 ? "for=\"[" : "for=");
    buf_append_slice(out, remote);
    if (v6)
        buf_append_cstr(out, "]\"");
    /* A host that would need escaping inside a quoted-string is left out. */
    if (host.len && !memchr(host.ptr, '"', host.len) && !memchr(host.ptr, '\\', host.len)) {
        buf_append_cstr(out, ";host=\"");
        buf_append_slice(out, host);
        buf_append_char(out, '"');
    }
    buf_append_cstr(out, ";proto=http\r\nX-Request-Id: ");
    buf_append_slice(out, request_id);
    buf_append(out, "\r\n", 2);
    if (req->upgrade)
        buf_append_cstr(out, "Connection: Upgrade\r\n");
    if (req->content_length < 0)
        buf_append_cstr(out, "Transfer-Encoding: chunked\r\n");
    else if (req->content_length > 0 || had_length) {
        buf_append_cstr(out, "Content-Length: ");
        append_u64(out, (uint64_t)req->content_length);
        buf_append(out, "\r\n", 2);
    }
    buf_append(out, "\r\n", 2);
    arena_reset(&scratch);
}

static bool valid_request_id(struct slice s)
{
    if (s.len == 0 || s.len > REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* ---- one proxied request ---- */

static void respond_error(struct http_request *req, int status, const char *msg)
{
    char body[256];
    int n =
        snprintf(body, sizeof(body), "{\"status\":%d,\"message\":\"%s\",\"data\":{}}", status, msg);
    http_respond(req, status, SLICE_LIT("application/json"),
                 arena_slice_dup(&req->pool, slice_make(body, (size_t)n)));
}

static void proxy_free(struct proxy *p)
{
    http_loop_buf_give(p->ls->loop, &p->head);
    buf_free(&p->body);
    if (p->fill) {
        /* Not complete: nothing is stored, and the waiters look up again. */
        cache_fill_end(p->fill, false);
        p->fill = NULL;
    }
    cache_entry_release(p->serve);
    p->serve = NULL;
}

/* ---- the cache's side ---- */

static struct cache_req cache_req_of(const struct http_request *req)
{
    return (struct cache_req){req->method_name, http_request_header(req, "host"), req->target,
                              req->headers, req->nheaders};
}

static bool is_header_line(struct slice line, struct slice name)
{
    return line.len > name.len && line.ptr[name.len] == ':' &&
           slice_case_eq(slice_make(line.ptr, name.len), name);
}

/* Rewrites the request head in out: the client's own If-None-Match and
 * If-Modified-Since give way to the cache's validators `cond`. */
static void head_set_conditional(struct buf *out, struct slice cond)
{
    struct buf b = BUF_INIT;
    const char *p = out->ptr, *end = out->ptr + out->len;
    bool first = true;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        eol = eol ? eol + 1 : end;
        struct slice line = slice_make(p, (size_t)(eol - p));
        if (!first && line.len <= 2)
            buf_append_slice(&b, cond);
        if (first || !(is_header_line(line, SLICE_LIT("if-none-match")) ||
                       is_header_line(line, SLICE_LIT("if-modified-since"))))
            buf_append_slice(&b, line);
        first = false;
        p = eol;
    }
    buf_free(out);
    *out = b;
}

static void add_cache_status(struct proxy *p)
{
    if (!p->cst_on)
        return;
    struct buf *b = &p->ls->scratch;
    buf_reset(b);
    p->cst.collapsed |= p->collapsed;
    cache_status_format(p->cache, &p->cst, b);
    http_response_header(p->req, SLICE_LIT("Cache-Status"), buf_slice(b));
}

/* Answers req from a stored response: its stored head, Age, Cache-Status;
 * a 304 when the client's own validators match it. Takes e. */
static void respond_entry(struct proxy *p, struct cache_entry *e)
{
    struct http_request *req = p->req;
    struct buf h = BUF_INIT;
    cache_entry_head(p->cache, e, &h);
    const char *s = h.ptr, *end = h.ptr + h.len;
    while (s < end) {
        const char *colon = memchr(s, ':', (size_t)(end - s));
        const char *eol = memchr(s, '\r', (size_t)(end - s));
        if (!colon || !eol || colon > eol)
            break;
        const char *v = colon + 1;
        while (v < eol && *v == ' ')
            v++;
        http_response_header(req, slice_make(s, (size_t)(colon - s)),
                             slice_make(v, (size_t)(eol - v)));
        s = eol + 2;
    }
    buf_free(&h);
    add_cache_status(p);
    struct cache_req rq = cache_req_of(req);
    struct slice body = cache_entry_body(e);
    if (cache_entry_not_modified(e, &rq)) {
        http_respond_start(req, 304, -1, false);
    } else {
        http_respond_start(req, cache_entry_status(e), (long long)body.len, false);
        http_respond_write(req, body);
    }
    cache_entry_release(e);
    http_respond_end(req, true);
}

static const char *const class_of[] = {"ok", "5xx", "connect", "timeout", "aborted"};

/* Closes the running attempt's books: balancer state, counters, ejection. */
static void attempt_end(struct proxy *p, enum lb_outcome outcome)
{
    if (!p->in_attempt)
        return;
    p->in_attempt = false;
    struct ltarget *t = p->view->ups[p->upstream].t[p->target];
    double ms = (double)(now_ns(p) - p->attempt_ns) / 1e6;
    atomic_fetch_sub_explicit(&t->stat->in_flight, 1, memory_order_relaxed);
    gw_stat_record(t->stat, outcome == LB_OK || outcome == LB_5XX ? p->up_status : 0, ms);
    if (lb_end(&t->lb, &p->view->ups[p->upstream].set.params, p->lb_attempt, outcome,
               p->up_status ? p->head_ms : ms, now_ms(p))) {
        atomic_fetch_add_explicit(&t->stat->ejections, 1, memory_order_relaxed);
        log_warn("gateway: ejecting %s for %d ms (%s)", t->key, t->lb.backoff_ms,
                 class_of[outcome]);
    }
}

/* The request is over on our side: answer it (discarded if the client went). */
static void finish(struct proxy *p, int status, const char *msg, bool complete)
{
    struct http_request *req = p->req;
    if (p->x) {
        http_client_abort(p->x);
        p->x = NULL;
    }
    attempt_end(p, LB_ABORTED);
    struct cache_entry *serve = p->serve;
    p->serve = NULL;
    gw_stat_record(p->route_stat,
                   p->started ? p->up_status
                   : serve    ? cache_entry_status(serve)
                              : status,
                   (double)(now_ns(p) - req->start_ns) / 1e6);
    view_release(p->view);
    proxy_free(p);
    p->serve = serve;
    req->on_body = NULL;
    req->on_body_end = NULL;
    req->on_drain = NULL;
    req->on_gone = NULL;
    /* p lives in req's pool unless on the heap: read it before answering. */
    struct proxy *heap = p->on_heap ? p : NULL;
    if (p->started) {
        http_respond_end(req, complete);
    } else if (p->serve) {
        struct cache_entry *e = p->serve;
        p->serve = NULL;
        respond_entry(p, e);
    } else {
        add_cache_status(p);
        respond_error(req, status, msg);
    }
    free(heap);
}

/* ---- the pass memo (struct loop_state) ---- */

/* A GET or HEAD whose cache handling depends on its URL alone. One with
 * request directives (only-if-cached, no-cache, max-stale...) or credentials
 * (whose answer may be private while the anonymous one is stored) always
 * gets the cache's full lookup. Computes p->memo_hash. */
static bool pass_memo_eligible(struct proxy *p)
{
    const struct http_request *req = p->req;
    if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD)
        return false;
    static const char *const skip[] = {"cache-control", "pragma", "authorization", "cookie"};
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (http_request_header(req, skip[i]).ptr)
            return false;
    p->memo_hash = lb_key_hash(http_request_header(req, "host")) * 31 + lb_key_hash(req->target);
    return true;
}

static bool pass_memo_hit(struct proxy *p)
{
    const struct loop_state *ls = p->ls;
    size_t slot = (size_t)(p->memo_hash % PASS_MEMO_SLOTS);
    return ls->pass_memo[slot].hash == p->memo_hash && ls->pass_memo[slot].until_ms > now_ms(p);
}

static void pass_memo_set(struct proxy *p)
{
    size_t slot = (size_t)(p->memo_hash % PASS_MEMO_SLOTS);
    p->ls->pass_memo[slot].hash = p->memo_hash;
    p->ls->pass_memo[slot].until_ms = now_ms(p) + PASS_MEMO_MS;
}

/* ---- upgraded connections ---- */

/* An upgrade request (WebSocket...) is forwarded with its Upgrade field and
 * no cache. After a 101 the proxy carries a tunnel: the client's bytes to the upstream
 * exchange and the upstream's to the client, each direction paused while the
 * other side's queue is over its high-water mark, so a tunnel holds at most
 * two bounded queues. Either side's close (or the idle timeout) closes both;
 * the connection never returns to a pool. */

static void tunnel_free_if_done(struct proxy *p)
{
    if (!p->dead || p->busy)
        return;
    view_release(p->view);
    free(p);
}

static void tunnel_end(struct proxy *p)
{
    if (p->x) {
        http_client_abort(p->x);
        p->x = NULL;
    }
    if (p->tun) {
        struct http_tunnel *t = p->tun;
        p->tun = NULL;
        http_tunnel_close(t);
    }
    p->dead = true;
    tunnel_free_if_done(p);
}

static void tunnel_data(void *ud, struct slice data)
{
    struct proxy *p = ud;
    if (p->x && !http_client_write(p->x, data) && p->tun) {
        p->tun_paused = true;
        http_tunnel_pause(p->tun, true);
    }
}

static void tunnel_drain(void *ud)
{
    struct proxy *p = ud;
    if (p->up_paused && p->x) {
        p->up_paused = false;
        http_client_pause(p->x, false);
    }
}

static void tunnel_close(void *ud, int status)
{
    (void)status;
    struct proxy *p = ud;
    p->tun = NULL;
    tunnel_end(p);
}

static const struct http_tunnel_cbs tunnel_cbs = {tunnel_data, tunnel_drain, tunnel_close};

static int tunnel_from_upstream(struct proxy *p, struct slice chunk)
{
    p->busy++;
    /* A failed send ends the tunnel from inside the write. */
    if (p->tun && !http_tunnel_write(p->tun, chunk) && p->tun && p->x) {
        p->up_paused = true;
        http_client_pause(p->x, true);
    }
    p->busy--;
    bool dead = p->dead;
    tunnel_free_if_done(p);
    return dead ? -1 : 0;
}

/* The upstream switched protocols: answer the client's upgrade with its 101
 * and join the two connections. */
static int tunnel_start(struct proxy *p, const struct http_client_response *res)
{
    struct http_request *req = p->req;
    struct slice upgrade = SLICE_NULL;
    for (size_t i = 0; i < res->nheaders; i++)
        if (slice_case_eq(res->headers[i].name, SLICE_LIT("upgrade")))
            upgrade = res->headers[i].value;
    if (!req->upgrade || !upgrade.len) {
        /* A 101 nobody asked for, or naming no protocol: the upstream is broken. */
        p->up_status = 0;
        p->x = NULL;
        attempt_end(p, LB_ABORTED);
        finish(p, 502, "The upstream switched protocols without an Upgrade.", false);
        return -1;
    }
    struct arena scratch = ARENA_INIT;
    struct slice conn = connection_tokens(&scratch, res->headers, res->nheaders);
    bool has_id = false;
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct http_header *h = &res->headers[i];
        if (gateway_is_hop_header(h->name, conn))
            continue;
        has_id |= slice_case_eq(h->name, SLICE_LIT("x-request-id"));
        http_response_header(req, h->name, h->value);
    }
    arena_reset(&scratch);
    if (!has_id)
        http_response_header(req, SLICE_LIT("X-Request-Id"), p->request_id);
    http_response_header(req, SLICE_LIT("Upgrade"), upgrade);
    attempt_end(p, LB_OK);
    gw_stat_record(p->route_stat, 101, (double)(now_ns(p) - req->start_ns) / 1e6);
    req->on_body = NULL;
    req->on_body_end = NULL;
    req->on_drain = NULL;
    req->on_gone = NULL;
    p->tunnel = true;
    p->req = NULL;
    p->busy++;
    struct buf early = BUF_INIT;
    struct http_tunnel *t =
        http_respond_upgrade(req, &tunnel_cbs, p, p->view->topo->gc.tunnel_idle_timeout_ms, &early);
    if (t && !p->dead)
        p->tun = t;
    if (!t)
        p->dead = true;
    if (early.len && p->x)
        tunnel_data(p, buf_slice(&early));
    buf_free(&early);
    http_loop_buf_give(p->ls->loop, &p->head);
    buf_free(&p->body);
    p->busy--;
    bool dead = p->dead;
    if (dead)
        tunnel_end(p);
    return dead ? -1 : 0;
}

static bool is_event_stream(const struct http_client_response *res)
{
    for (size_t i = 0; i < res->nheaders; i++)
        if (slice_case_eq(res->headers[i].name, SLICE_LIT("content-type"))) {
            struct slice v = res->headers[i].value;
            struct slice type = SLICE_LIT("text/event-stream");
            return v.len >= type.len && slice_case_eq(slice_make(v.ptr, type.len), type) &&
                   (v.len == type.len || v.ptr[type.len] == ';' || v.ptr[type.len] == ' ');
        }
    return false;
}

/* The cache's verdict on the upstream's head. Returns true when the head is
 * forwarded to the client as it is. */
static bool cache_on_head(struct proxy *p, const struct http_client_response *res)
{
    struct cache_resp r = {res->status, res->headers, res->nheaders};
    p->cst.fwd_status = res->status;
    if (!p->fill) {
        struct cache_req rq = cache_req_of(p->req);
        cache_invalidate(p->cache, &rq, &r);
        return true;
    }
    if (is_event_stream(res)) {
        /* An event stream may last for ever: it is never stored, and the
         * requests collapsed behind it go on at once. */
        cache_fill_end(p->fill, false);
        p->fill = NULL;
        return true;
    }
    struct cache_entry *e;
    switch (cache_fill_response(p->fill, &r, &e)) {
    case CACHE_FILL_STORE:
        p->cst.stored = true;
        return true;
    case CACHE_FILL_PASS:
        /* A 304 that does not match the stored response answers only the
         * cache's validators: ask again with the client's own head. The
         * fill takes that second answer. */
        if (res->status == 304 && p->cond_added && !p->refetching) {
            p->refetching = true;
            p->skip_body = true;
            return false;
        }
        /* Nothing will be stored (no-store, private...): the fill ends at
         * the head, so no body byte is copied and its waiters go on now. */
        cache_fill_end(p->fill, true);
        p->fill = NULL;
        if (p->memo_miss)
            pass_memo_set(p);
        return true;
    case CACHE_FILL_USE_STORED:
    case CACHE_FILL_STALE:
        /* The fill is finished: the exchange's body is drained and the
         * stored response served when it ends. */
        p->fill = NULL;
        p->serve = e;
        p->skip_body = true;
        p->cst.hit = true;
        if (res->status != 304)
            p->cst.detail = "stale-if-error";
        return false;
    }
    return true;
}

static int up_head(void *ud, const struct http_client_response *res)
{
    struct proxy *p = ud;
    struct http_request *req = p->req;
    p->up_status = res->status;
    p->head_ms = (double)(now_ns(p) - p->attempt_ns) / 1e6;
    if (res->status == 101)
        return tunnel_start(p, res);
    if (p->cache && !cache_on_head(p, res))
        return 0;
    struct slice targeted = SLICE_NULL;
    if (p->cache && the_gateway->cache_targeted_field)
        targeted = slice_cstr(the_gateway->cache_targeted_field);
    struct arena scratch = ARENA_INIT;
    struct slice conn = connection_tokens(&scratch, res->headers, res->nheaders);
    bool has_date = false, has_id = false;
    size_t need = 128 + p->request_id.len;
    for (size_t i = 0; i < res->nheaders; i++)
        need += res->headers[i].name.len + res->headers[i].value.len + 4;
    buf_reserve(&req->resp_headers, need);
    for (size_t i = 0; i < res->nheaders; i++) {
        const struct http_header *h = &res->headers[i];
        if (gateway_is_hop_header(h->name, conn) ||
            slice_case_eq(h->name, SLICE_LIT("content-length")) ||
            (targeted.len && slice_case_eq(h->name, targeted)))
            continue;
        has_date |= slice_case_eq(h->name, SLICE_LIT("date"));
        has_id |= slice_case_eq(h->name, SLICE_LIT("x-request-id"));
        http_response_header(req, h->name, h->value);
    }
    arena_reset(&scratch);
    if (!has_id)
        http_response_header(req, SLICE_LIT("X-Request-Id"), p->request_id);
    add_cache_status(p);
    p->started = true;
    http_respond_start(req, res->status, res->content_length, !has_date);
    return 0;
}

static int up_body(void *ud, struct slice chunk)
{
    struct proxy *p = ud;
    if (p->tunnel)
        return tunnel_from_upstream(p, chunk);
    if (p->skip_body)
        return 0;
    if (p->fill)
        cache_fill_body(p->fill, chunk);
    if (!http_respond_write(p->req, chunk))
        http_client_pause(p->x, true);
    return 0;
}

static void up_drain(void *ud)
{
    struct proxy *p = ud;
    if (p->tunnel) {
        if (p->tun_paused && p->tun) {
            p->tun_paused = false;
            http_tunnel_pause(p->tun, false);
        }
        return;
    }
    if (p->client_paused) {
        p->client_paused = false;
        http_request_pause_body(p->req, false);
    }
}

static bool idempotent(enum http_method m)
{
    return m == HTTP_M_GET || m == HTTP_M_HEAD || m == HTTP_M_OPTIONS || m == HTTP_M_PUT ||
           m == HTTP_M_DELETE;
}

static void up_end(void *ud, int status, bool connected);

static const struct http_client_cbs up_cbs = {up_head, up_body, up_end, up_drain};

/* Chooses a target (avoiding `avoid`, one that just failed) and starts an
 * attempt on it. */
static void send_upstream(struct proxy *p, size_t avoid)
{
    struct lupstream *lu = &p->view->ups[p->upstream];
    bool panic;
    uint64_t now = now_ms(p);
    p->target = lb_pick(&lu->set, now, p->key_hash, p->has_key, avoid, &panic);
    struct ltarget *t = lu->t[p->target];
    if (panic)
        log_debug("gateway: too few healthy targets for %s: panic mode",
                  p->view->topo->gc.upstreams[p->upstream].name);
    p->lb_attempt = lb_begin(&t->lb, now);
    atomic_fetch_add_explicit(&t->stat->in_flight, 1, memory_order_relaxed);
    p->in_attempt = true;
    p->up_status = 0;
    p->attempt_ns = now_ns(p);
    p->attempts++;
    unsigned flags = (p->req->content_length < 0 ? HTTP_CLIENT_CHUNKED : 0) |
                     (p->req->method == HTTP_M_HEAD ? HTTP_CLIENT_HEAD : 0) |
                     (p->req->upgrade ? HTTP_CLIENT_UPGRADE : 0);
    p->x = http_client_send(t->pool, buf_slice(&p->head), flags, &up_cbs, p);
    if (p->body.len && !http_client_write(p->x, buf_slice(&p->body)) && !p->client_paused) {
        p->client_paused = true;
        http_request_pause_body(p->req, true);
    }
    if (p->body_done)
        http_client_finish(p->x);
}

static void up_end(void *ud, int status, bool connected)
{
    struct proxy *p = ud;
    p->x = NULL;
    if (p->tunnel) {
        tunnel_end(p);
        return;
    }
    if (status == 0 && p->refetching && p->skip_body && !p->serve) {
        attempt_end(p, LB_OK);
        p->skip_body = false;
        p->cond_added = false;
        buf_reset(&p->head);
        gateway_upstream_head(&p->head, p->req, p->request_id);
        send_upstream(p, SIZE_MAX);
        return;
    }
    if (status == 0 || p->serve) {
        attempt_end(p, status ? LB_ABORTED : p->up_status >= 500 ? LB_5XX : LB_OK);
        if (p->fill) {
            cache_fill_end(p->fill, status == 0);
            p->fill = NULL;
        }
        finish(p, 200, NULL, true);
        return;
    }
    enum lb_outcome outcome = LB_ABORTED;
    if (p->started || status == -ECANCELED)
        outcome = LB_ABORTED;
    else if (!connected)
        outcome = LB_CONNECT_FAIL;
    else if (status == -ETIMEDOUT)
        outcome = LB_TIMEOUT;
    attempt_end(p, outcome);
    size_t ntargets = p->view->topo->gc.upstreams[p->upstream].ntargets;
    if (!p->started && status != -ECANCELED && p->body_kept_whole && ntargets > 1) {
        /* Refused: nothing reached an upstream, so any method may go on to
         * the next target. Otherwise the request may have been acted on:
         * only an idempotent one is tried again, and once. */
        bool refused = !connected && status == -ECONNREFUSED && p->attempts < ntargets;
        bool again = refused || (idempotent(p->req->method) && p->retries == 0);
        if (again) {
            if (!refused)
                p->retries++;
            struct gw_stat *ts = p->view->ups[p->upstream].t[p->target]->stat;
            atomic_fetch_add_explicit(&ts->retries, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&p->route_stat->retries, 1, memory_order_relaxed);
            log_debug("gateway: retrying %.*s on another target (%d)", SLICE_FMT(p->req->target),
                      status);
            send_upstream(p, p->target);
            return;
        }
    }
    bool had_stored = false;
    if (p->fill && !p->started) {
        had_stored = cache_fill_has_stored(p->fill);
        p->serve = cache_fill_error(p->fill);
        p->fill = NULL;
        if (p->serve) {
            p->cst.hit = true;
            p->cst.detail = "stale-if-error";
        }
    }
    if (had_stored)
        /* A stored response that had to be revalidated before reuse, and
         * could not be: RFC 9111 5.2.2.2 asks for a 504. */
        finish(p, 504, "The stored response could not be revalidated.", false);
    else if (status == -ETIMEDOUT)
        finish(p, 504, "The upstream did not answer in time.", false);
    else
        finish(p, 502, "The upstream failed to answer.", false);
}

static int req_body(struct http_request *req, struct slice chunk)
{
    struct proxy *p = req->user;
    if (p->body_kept_whole) {
        if (p->body.len + chunk.len <= RETRY_BODY_MAX) {
            buf_append_slice(&p->body, chunk);
        } else {
            p->body_kept_whole = false;
            buf_free(&p->body);
        }
    }
    if (p->x && !http_client_write(p->x, chunk) && !p->client_paused) {
        p->client_paused = true;
        http_request_pause_body(req, true);
    }
    return 0;
}

static void req_body_end(struct http_request *req, int status)
{
    struct proxy *p = req->user;
    if (p->waiting) {
        /* Answered when the wake comes back: the request stays ours. */
        p->body_done = status == 0;
        p->gone |= status != 0;
        return;
    }
    if (status != 0) {
        finish(p, 400, "The request body was cut short.", false);
        return;
    }
    p->body_done = true;
    if (p->x)
        http_client_finish(p->x);
}

static void req_drain(struct http_request *req)
{
    struct proxy *p = req->user;
    if (p->x)
        http_client_pause(p->x, false);
}

static void req_gone(struct http_request *req)
{
    struct proxy *p = req->user;
    if (p->waiting)
        p->gone = true;
    else
        finish(p, 499, "The client went away.", false);
}

/* The balancing key of req for upstream up, if it has one. */
static bool balance_key(struct http_request *req, const struct gateway_upstream *up,
                        struct slice *key)
{
    switch (up->hash_from) {
    case GATEWAY_HASH_NONE:
        return false;
    case GATEWAY_HASH_HEADER:
        *key = http_request_header(req, up->hash_name);
        return key->ptr != NULL;
    case GATEWAY_HASH_QUERY:
        return http_request_query(req, up->hash_name, key);
    case GATEWAY_HASH_PATH: {
        struct slice path = req->path;
        int seg = -1;
        size_t i = 0;
        while (i < path.len) {
            while (i < path.len && path.ptr[i] == '/')
                i++;
            size_t s = i;
            while (i < path.len && path.ptr[i] != '/')
                i++;
            if (i > s && ++seg == up->hash_segment) {
                *key = slice_make(path.ptr + s, i - s);
                return true;
            }
        }
        return false;
    }
    }
    return false;
}

/* ---- stale-while-revalidate refreshes ---- */

/* A refresh runs after its client was answered from the stale response, so
 * it holds only the loop's view (for the pool) and the fill. */
struct refresh {
    struct cache_fill *fill;
    struct lview *view;
};

static int refresh_head(void *ud, const struct http_client_response *res)
{
    struct refresh *r = ud;
    struct cache_resp cr = {res->status, res->headers, res->nheaders};
    struct cache_entry *e;
    enum cache_fill_action a = cache_fill_response(r->fill, &cr, &e);
    if (a == CACHE_FILL_USE_STORED || a == CACHE_FILL_STALE) {
        cache_entry_release(e);
        r->fill = NULL;
    }
    return 0;
}

static int refresh_body(void *ud, struct slice chunk)
{
    struct refresh *r = ud;
    if (r->fill)
        cache_fill_body(r->fill, chunk);
    return 0;
}

static void refresh_end(void *ud, int status, bool connected)
{
    (void)connected;
    struct refresh *r = ud;
    if (r->fill)
        cache_fill_end(r->fill, status == 0);
    view_release(r->view);
    free(r);
}

static void refresh_drain(void *ud)
{
    (void)ud;
}

static const struct http_client_cbs refresh_cbs = {refresh_head, refresh_body, refresh_end,
                                                   refresh_drain};

/* Starts the background refresh of p's stale response, owning fill. */
static void refresh_start(struct proxy *p, struct cache_fill *fill, struct slice cond)
{
    if (p->req->content_length != 0) {
        /* The refresh cannot replay a request body it never kept. */
        cache_fill_end(fill, false);
        return;
    }
    struct refresh *r = xcalloc(1, sizeof(*r));
    r->fill = fill;
    r->view = p->view;
    p->view->refs++;
    struct buf head = BUF_INIT;
    buf_append_slice(&head, buf_slice(&p->head));
    head_set_conditional(&head, cond);
    struct lupstream *lu = &p->view->ups[p->upstream];
    bool panic;
    size_t k = lb_pick(&lu->set, now_ms(p), p->key_hash, p->has_key, SIZE_MAX, &panic);
    struct http_client *x = http_client_send(lu->t[k]->pool, buf_slice(&head), 0, &refresh_cbs, r);
    http_client_finish(x);
    buf_free(&head);
}

/* ---- the lookup ---- */

static void cache_begin(struct proxy *p);

static void cache_resume(void *arg)
{
    struct proxy *p = arg;
    p->waiting = false;
    if (p->gone)
        finish(p, 499, "The client went away.", false);
    else
        cache_begin(p);
}

/* Runs on the thread that finished the fill p waited for. */
static void cache_wake(void *arg)
{
    struct proxy *p = arg;
    http_loop_post(p->req->loop, cache_resume, p);
}

/* Answers p from the cache, parks it behind another fill, or sends it
 * upstream (with the cache's validators, owning a fill on a miss). */
static void cache_begin(struct proxy *p)
{
    struct cache_req rq = cache_req_of(p->req);
    struct cache_lookup lk;
    cache_lookup(p->cache, &rq, &lk, cache_wake, p);
    p->cst = lk.status;
    switch (lk.outcome) {
    case CACHE_WAIT:
        p->waiting = true;
        p->collapsed = true;
        return;
    case CACHE_STALE:
        if (lk.fill)
            refresh_start(p, lk.fill, lk.conditional);
        p->serve = lk.entry;
        finish(p, 200, NULL, true);
        return;
    case CACHE_HIT:
        p->serve = lk.entry;
        finish(p, 200, NULL, true);
        return;
    case CACHE_GATEWAY_TIMEOUT:
        finish(p, 504, "No stored response satisfies only-if-cached.", false);
        return;
    case CACHE_REVALIDATE:
        cache_entry_release(lk.entry);
        p->fill = lk.fill;
        head_set_conditional(&p->head, lk.conditional);
        p->cond_added = true;
        break;
    case CACHE_MISS:
        p->fill = lk.fill;
        /* Nothing at all is stored for the URL (no other variant either):
         * if its answer cannot be stored, the memo skips the next lookups. */
        p->memo_miss = lk.status.fwd && !strcmp(lk.status.fwd, "uri-miss") && pass_memo_eligible(p);
        break;
    case CACHE_PASS:
        break;
    }
    send_upstream(p, SIZE_MAX);
}

/* ---- the purge API ---- */

static bool token_ok(struct slice auth, const char *token)
{
    struct slice prefix = SLICE_LIT("Bearer ");
    size_t n = strlen(token);
    if (auth.len != prefix.len + n || !slice_case_eq(slice_make(auth.ptr, prefix.len), prefix))
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(auth.ptr[prefix.len + i] ^ token[i]);
    return diff == 0;
}

/* `PURGE /target` drops the stored responses of that URL (for the request's
 * Host); `POST /_gateway/purge?tag=a,b` those tagged so, and `?url=/target`
 * (with `&host=` or the request's Host) a URL. Both want `Authorization:
 * Bearer TOKEN`. Returns false if req is no purge request. */
static bool purge(struct http_request *req, struct cache *c, const char *token)
{
    bool by_method = req->method == HTTP_M_OTHER && slice_eq_cstr(req->method_name, "PURGE");
    bool by_path = slice_eq_cstr(req->path, "/_gateway/purge");
    if (!by_method && !by_path)
        return false;
    if (!token_ok(http_request_header(req, "authorization"), token)) {
        respond_error(req, 401, "The purge token is missing or wrong.");
        return true;
    }
    size_t n = 0;
    struct slice host = http_request_header(req, "host");
    if (by_method) {
        n = cache_purge_url(c, host, req->target);
    } else {
        struct slice tags, url;
        bool has_tags = http_request_query(req, "tag", &tags);
        bool has_url = http_request_query(req, "url", &url);
        if (req->method != HTTP_M_POST || (!has_tags && !has_url)) {
            respond_error(req, 400, "Purge with POST and a tag or url parameter.");
            return true;
        }
        struct slice h;
        if (http_request_query(req, "host", &h))
            host = h;
        if (has_url)
            n += cache_purge_url(c, host, url);
        const char *t = tags.ptr, *end = has_tags ? tags.ptr + tags.len : t;
        while (t < end) {
            const char *comma = memchr(t, ',', (size_t)(end - t));
            struct slice tag = slice_trim(slice_make(t, (size_t)((comma ? comma : end) - t)));
            if (tag.len)
                n += cache_purge_tag(c, tag);
            t = comma ? comma + 1 : end;
        }
    }
    char body[64];
    int len = snprintf(body, sizeof(body), "{\"purged\":%zu}", n);
    http_respond(req, 200, SLICE_LIT("application/json"),
                 arena_slice_dup(&req->pool, slice_make(body, (size_t)len)));
    return true;
}

static void serve_metrics(struct http_request *req)
{
    struct buf b = BUF_INIT;
    gateway_metrics_render(the_gateway, &b);
    http_metrics_render(&b);
    http_respond(req, 200, SLICE_LIT("text/plain; version=0.0.4"), buf_slice(&b));
    buf_free(&b);
}

static void handle(struct http_request *req)
{
    struct loop_state *ls = loop_state(req->loop, the_gateway);
    struct lview *view = current_view(ls);
    const struct gateway_config *gc = &view->topo->gc;
    const char *mpath = gateway_metrics_path(gc);
    if (mpath && slice_eq_cstr(req->path, mpath)) {
        serve_metrics(req);
        return;
    }
    struct cache *cache = gateway_cache(ls->gw);
    if (cache && gc->cache_purge_token && purge(req, cache, gc->cache_purge_token))
        return;
    const struct gateway_route *route =
        gateway_route_match(gc, http_request_header(req, "host"), req->path);
    if (!route) {
        respond_error(req, 404, "No gateway route matches this request.");
        return;
    }
    struct proxy *p = req->upgrade ? xcalloc(1, sizeof(*p)) : arena_zalloc(&req->pool, sizeof(*p));
    p->on_heap = req->upgrade;
    p->req = req;
    p->ls = ls;
    p->view = view;
    view->refs++;
    p->upstream = route->upstream;
    p->route_stat = view->topo->routes[route - gc->routes];
    p->body_kept_whole = true;
    struct slice key;
    if (balance_key(req, &gc->upstreams[p->upstream], &key)) {
        p->has_key = true;
        p->key_hash = lb_key_hash(key);
    }
    struct slice id = http_request_header(req, "x-request-id");
    if (valid_request_id(id)) {
        p->request_id = id;
    } else {
        static const char hex[] = "0123456789abcdef";
        char *gen = arena_alloc(&req->pool, 24);
        uint64_t seq = ++ls->id_seq;
        for (int i = 0; i < 8; i++)
            gen[i] = hex[(ls->id_prefix >> (28 - 4 * i)) & 15];
        for (int i = 0; i < 16; i++)
            gen[8 + i] = hex[(seq >> (60 - 4 * i)) & 15];
        p->request_id = slice_make(gen, 24);
    }
    p->head = http_loop_buf_take(req->loop);
    gateway_upstream_head(&p->head, req, p->request_id);
    req->user = p;
    req->on_body = req_body;
    req->on_body_end = req_body_end;
    req->on_drain = req_drain;
    req->on_gone = req_gone;
    if (cache && !req->upgrade) {
        p->cache = cache;
        p->cst_on = true;
        if (pass_memo_eligible(p) && pass_memo_hit(p)) {
            p->cst.fwd = "bypass";
            send_upstream(p, SIZE_MAX);
            return;
        }
        cache_begin(p);
        return;
    }
    send_upstream(p, SIZE_MAX);
}

void gateway_register(struct http_router *router, struct gateway *gw)
{
    the_gateway = gw;
    http_router_add(router, HTTP_M_OTHER, "/*", handle, HTTP_ROUTE_STREAM_BODY | HTTP_ROUTE_UPGRADE,
                    "proxy");
}
