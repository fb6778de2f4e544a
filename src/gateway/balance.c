/* Target choice for the gateway (balance.h). Runs on every proxied request,
 * over a handful of targets: linear scans, no allocation; the hash ring is
 * built once per configuration and searched by bisection.
 *
 * Costs follow Finagle's and Linkerd's p2c: (outstanding + 1) x latency EWMA,
 * with an unmeasured target costed at the mean of the measured ones so a new
 * target is neither flooded nor starved, and a latency fading while no
 * answer refreshes it (as Finagle's peak EWMA decays) so a target that was
 * slow once is tried again. Bounded loads follow Mirrokni,
 * Thorup and Zadimoghaddam: a key walks the ring past targets already
 * carrying more than hash_load_pct of the mean load. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/id.h"
#include "gateway/balance.h"

enum { RING_POINTS = 160 };

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t next_rand(struct lb_set *s)
{
    s->rng += 0x9e3779b97f4a7c15ULL;
    return mix64(s->rng);
}

uint64_t lb_key_hash(struct slice key)
{
    return mix64(id_hash(key));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void lb_set_init(struct lb_set *set, struct lb_target **targets, const char *const *names, size_t n,
                 const struct lb_params *params, uint64_t seed)
{
    core_assert(n <= 0xffff);
    memset(set, 0, sizeof(*set));
    set->targets = targets;
    set->n = n;
    set->params = *params;
    set->rng = seed;
    set->rr = n ? (uint32_t)(seed % n) : 0;
    if (params->policy != GATEWAY_BALANCE_HASH || !n)
        return;
    set->ring = xmalloc(n * RING_POINTS * sizeof(*set->ring));
    for (size_t t = 0; t < n; t++) {
        uint64_t h = lb_key_hash(slice_cstr(names[t]));
        for (size_t k = 0; k < RING_POINTS; k++) {
            h = mix64(h + k + 1);
            set->ring[set->ring_len++] = (h << 16) | t;
        }
    }
    qsort(set->ring, set->ring_len, sizeof(*set->ring), cmp_u64);
}

void lb_set_free(struct lb_set *set)
{
    free(set->ring);
    set->ring = NULL;
    set->ring_len = 0;
}

static int health_of(const struct lb_target *t)
{
    return t->health ? atomic_load_explicit(t->health, memory_order_relaxed) : LB_HEALTH_UP;
}

bool lb_usable(const struct lb_target *t, uint64_t now_ms)
{
    if (health_of(t) != LB_HEALTH_UP)
        return false;
    if (t->backoff_ms == 0)
        return true;
    return t->down_until_ms <= now_ms && !t->trial;
}

/* Which targets may be chosen: the usable ones, or in panic every one not
 * draining (every one at all if all are draining). `avoid` is left out
 * while anything else qualifies. Returns how many are allowed. */
static size_t allowed_mask(const struct lb_set *s, uint64_t now, size_t avoid, bool *allow,
                           bool *panic)
{
    size_t usable = 0, live = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct lb_target *t = s->targets[i];
        unsigned epoch = t->up_epoch ? atomic_load_explicit(t->up_epoch, memory_order_relaxed) : 0;
        if (epoch != t->seen_epoch) {
            t->seen_epoch = epoch;
            t->backoff_ms = 0;
            t->down_until_ms = 0;
            t->fails_5xx = 0;
            /* The latency it had while failing says nothing about it now, and
             * P2C would never pick it again to learn better: it starts over,
             * costed at the mean like a new target. */
            t->ewma_ms = 0;
        }
        allow[i] = lb_usable(s->targets[i], now);
        usable += allow[i];
        live += health_of(s->targets[i]) != LB_HEALTH_DRAINING;
    }
    *panic = false;
    if (usable == 0 || usable * 100 < (size_t)s->params.panic_percent * (live ? live : s->n)) {
        *panic = true;
        usable = 0;
        for (size_t i = 0; i < s->n; i++) {
            allow[i] = !live || health_of(s->targets[i]) != LB_HEALTH_DRAINING;
            usable += allow[i];
        }
    }
    if (avoid < s->n && allow[avoid] && usable > 1) {
        allow[avoid] = false;
        usable--;
    }
    return usable;
}

static double mean_ewma(const struct lb_set *s)
{
    double sum = 0;
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->targets[i]->ewma_ms > 0) {
            sum += s->targets[i]->ewma_ms;
            k++;
        }
    return k ? sum / (double)k : 1.0;
}

/* t's latency EWMA as of now: it fades while no answer refreshes it. */
static double faded_ewma(const struct lb_target *t, int fade_ms, uint64_t now)
{
    if (fade_ms > 0 && now > t->sampled_ms)
        return t->ewma_ms * exp(-(double)(now - t->sampled_ms) / fade_ms);
    return t->ewma_ms;
}

static double cost(const struct lb_set *s, const struct lb_target *t, double mean, uint64_t now)
{
    double lat = t->ewma_ms > 0 ? faded_ewma(t, s->params.ewma_fade_ms, now) : mean;
    return (t->outstanding + 1) * (lat + 0.001);
}

static size_t nth_allowed(const bool *allow, size_t n, size_t k)
{
    for (size_t i = 0; i < n; i++)
        if (allow[i] && k-- == 0)
            return i;
    return SIZE_MAX;
}

static size_t pick_p2c(struct lb_set *s, const bool *allow, size_t count, uint64_t now)
{
    if (count == 1)
        return nth_allowed(allow, s->n, 0);
    uint64_t r = next_rand(s);
    size_t a = (size_t)(r % count), b = (size_t)((r >> 32) % (count - 1));
    if (b >= a)
        b++;
    size_t ia = nth_allowed(allow, s->n, a), ib = nth_allowed(allow, s->n, b);
    double mean = mean_ewma(s);
    return cost(s, s->targets[ib], mean, now) < cost(s, s->targets[ia], mean, now) ? ib : ia;
}

static size_t pick_rr(struct lb_set *s, const bool *allow)
{
    for (size_t i = 0; i < s->n; i++) {
        size_t t = s->rr++ % s->n;
        if (allow[t])
            return t;
    }
    return SIZE_MAX;
}

static size_t pick_least(struct lb_set *s, const bool *allow)
{
    size_t best = SIZE_MAX;
    uint32_t start = s->rr++;
    for (size_t i = 0; i < s->n; i++) {
        size_t t = (start + i) % s->n;
        if (allow[t] &&
            (best == SIZE_MAX || s->targets[t]->outstanding < s->targets[best]->outstanding))
            best = t;
    }
    return best;
}

static size_t pick_hash(struct lb_set *s, const bool *allow, size_t count, uint64_t key)
{
    unsigned total = 1;
    for (size_t i = 0; i < s->n; i++)
        if (allow[i])
            total += s->targets[i]->outstanding;
    /* ceil(c * (total load + this request) / targets) */
    unsigned cap =
        (unsigned)(((uint64_t)total * (uint64_t)s->params.hash_load_pct + 100 * count - 1) /
                   (100 * count));
    if (cap < 1)
        cap = 1;
    uint64_t point = key << 16;
    size_t lo = 0, hi = s->ring_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->ring[mid] < point)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t first = SIZE_MAX;
    for (size_t k = 0; k < s->ring_len; k++) {
        size_t t = (size_t)(s->ring[(lo + k) % s->ring_len] & 0xffff);
        if (!allow[t])
            continue;
        if (first == SIZE_MAX)
            first = t;
        if (s->targets[t]->outstanding < cap)
            return t;
    }
    return first;
}

size_t lb_pick(struct lb_set *s, uint64_t now_ms, uint64_t key_hash, bool has_key, size_t avoid,
               bool *panic)
{
    *panic = false;
    if (s->n == 0)
        return SIZE_MAX;
    bool stack_allow[64];
    bool *allow = s->n <= 64 ? stack_allow : xmalloc(s->n * sizeof(bool));
    size_t count = allowed_mask(s, now_ms, avoid, allow, panic);
    size_t t;
    if (count == 0)
        t = avoid < s->n ? avoid : 0;
    else if (s->params.policy == GATEWAY_BALANCE_ROUND_ROBIN)
        t = pick_rr(s, allow);
    else if (s->params.policy == GATEWAY_BALANCE_LEAST)
        t = pick_least(s, allow);
    else if (s->params.policy == GATEWAY_BALANCE_HASH && has_key && s->ring_len)
        t = pick_hash(s, allow, count, key_hash);
    else
        t = pick_p2c(s, allow, count, now_ms);
    if (allow != stack_allow)
        free(allow);
    return t;
}

struct lb_attempt lb_begin(struct lb_target *t, uint64_t now_ms)
{
    t->outstanding++;
    struct lb_attempt a = {t->ejections, false};
    if (t->backoff_ms && t->down_until_ms <= now_ms && !t->trial)
        a.trial = t->trial = true;
    return a;
}

static void eject(struct lb_target *t, const struct lb_params *p, uint64_t now)
{
    t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : p->eject_ms;
    if (t->backoff_ms > p->eject_max_ms)
        t->backoff_ms = p->eject_max_ms;
    t->down_until_ms = now + (uint64_t)t->backoff_ms;
    t->fails_5xx = 0;
    t->ejections++;
}

bool lb_end(struct lb_target *t, const struct lb_params *p, struct lb_attempt a,
            enum lb_outcome outcome, double latency_ms, uint64_t now_ms)
{
    core_assert(t->outstanding > 0);
    t->outstanding--;
    if (a.trial)
        t->trial = false;
    if (outcome == LB_OK || outcome == LB_5XX) {
        /* A new sample blends into the latency as faded so far, as the
         * balancer saw it, not into the stale one it was measured against. */
        double cur = faded_ewma(t, p->ewma_fade_ms, now_ms);
        t->ewma_ms = cur > 0 ? cur + p->ewma_decay * (latency_ms - cur) : latency_ms;
        t->sampled_ms = now_ms;
    }
    /* Requests in flight when the target was ejected end late: they say
     * nothing of it since. While it is ejected only the trial counts (others
     * reach it in panic only). */
    if (a.ejections != t->ejections || (t->backoff_ms && !a.trial))
        return false;
    switch (outcome) {
    case LB_OK:
        t->fails_5xx = 0;
        t->backoff_ms = 0;
        t->down_until_ms = 0;
        return false;
    case LB_5XX:
        if (p->eject_5xx && (++t->fails_5xx >= p->eject_5xx || a.trial)) {
            eject(t, p, now_ms);
            return true;
        }
        return false;
    case LB_CONNECT_FAIL:
    case LB_TIMEOUT:
        eject(t, p, now_ms);
        return true;
    case LB_ABORTED:
        return false;
    }
    return false;
}
