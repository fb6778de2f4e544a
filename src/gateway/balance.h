/* The gateway's load balancer, without I/O: target state (requests
 * outstanding, latency EWMA, passive ejection with back-off and a trial
 * request, the shared health state the active checks write) and the four
 * policies that pick a target. Private to src/gateway; the unit tests drive
 * it with a clock of their own.
 *
 * Threading: a balancer set and its targets belong to one loop; only the
 * health word is shared, written by the health checker and read here. */
#ifndef GATEWAY_BALANCE_H
#define GATEWAY_BALANCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/slice.h"

enum gateway_balance {
    GATEWAY_BALANCE_P2C = 0, /* power of two choices over outstanding x latency EWMA */
    GATEWAY_BALANCE_ROUND_ROBIN,
    GATEWAY_BALANCE_LEAST,
    GATEWAY_BALANCE_HASH, /* consistent hashing with bounded loads */
};

/* What the active checks last concluded about a target. */
enum lb_health {
    LB_HEALTH_UP = 0, /* also before the first check: a new target serves at once */
    LB_HEALTH_DOWN,
    LB_HEALTH_DRAINING, /* answered 503, or left the configuration */
};

/* How one attempt on a target ended, for the passive checks. */
enum lb_outcome {
    LB_OK,           /* a response other than 5xx */
    LB_5XX,          /* a 5xx response */
    LB_CONNECT_FAIL, /* the connection could not be made */
    LB_TIMEOUT,      /* connected, then no answer in time */
    LB_ABORTED,      /* reset or cancelled: says nothing sure about the target */
};

struct lb_target {
    const atomic_int *health; /* enum lb_health; NULL: always up */
    /* Bumped by the health checker each time the target comes up: a
     * passing active check ends a passive ejection at once. */
    const atomic_uint *up_epoch;
    unsigned seen_epoch;
    unsigned outstanding;
    double ewma_ms;      /* 0 until the first response */
    uint64_t sampled_ms; /* when ewma_ms last took a response's latency */
    uint64_t down_until_ms;
    int backoff_ms;     /* 0: not ejected */
    int fails_5xx;      /* consecutive */
    bool trial;         /* the one request let through after a back-off is running */
    unsigned ejections; /* bumped by each ejection: tells attempts older than it */
};

/* One attempt on a target, from lb_begin to lb_end: its outcome counts for
 * the passive checks only if it began after the target's last ejection,
 * and only the trial's outcome decides an ejected target's fate. */
struct lb_attempt {
    unsigned ejections; /* the target's count when the attempt began */
    bool trial;
};

struct lb_params {
    enum gateway_balance policy;
    int panic_percent; /* below this share of usable targets, use all */
    int hash_load_pct; /* bounded loads: at most this % of the mean per target */
    int eject_ms;      /* first back-off */
    int eject_max_ms;  /* back-off cap */
    int eject_5xx;     /* consecutive 5xx that eject; 0: never */
    double ewma_decay; /* weight of the newest sample, 0 < d <= 1 */
    /* Time constant over which a target's latency fades while no answer
     * refreshes it: P2C never picks the slowest target, so without fading
     * one slow answer would keep a target out for good. 0: never fades. */
    int ewma_fade_ms;
};

/* A set of targets for one upstream on one loop. targets point at the
 * caller's; the ring is owned here. */
struct lb_set {
    struct lb_target **targets;
    size_t n;
    struct lb_params params;
    uint32_t rr;
    uint64_t rng;
    uint64_t *ring; /* sorted (hash << 16 | target index) points */
    size_t ring_len;
};

/* Prepares set over targets (n <= 65535; seed varies the cursor and the
 * random choices per loop); builds the hash ring from names (the target
 * addresses) when the policy is hashing. Free with lb_set_free. */
void lb_set_init(struct lb_set *set, struct lb_target **targets, const char *const *names, size_t n,
                 const struct lb_params *params, uint64_t seed);
void lb_set_free(struct lb_set *set);

/* Picks a target index for a request: key_hash is used by the hash policy
 * (has_key false: it falls back to p2c); `avoid` (SIZE_MAX for none) is a
 * target that just failed this request, skipped while another is usable.
 * *panic is set when too few targets were usable and health was ignored.
 * Returns SIZE_MAX only when n is 0. */
size_t lb_pick(struct lb_set *set, uint64_t now_ms, uint64_t key_hash, bool has_key, size_t avoid,
               bool *panic);

/* An attempt starts on t (after lb_pick chose it); the caller keeps what
 * this returns for lb_end. */
struct lb_attempt lb_begin(struct lb_target *t, uint64_t now_ms);
/* The attempt a ended: updates the EWMA (for LB_OK and LB_5XX) and the
 * passive state. Only an attempt begun after the target's last ejection
 * counts, and while the target is ejected only its trial: the trial's
 * answer ends the ejection, its failure doubles the back-off. Returns true
 * when this outcome ejected the target. */
bool lb_end(struct lb_target *t, const struct lb_params *params, struct lb_attempt a,
            enum lb_outcome outcome, double latency_ms, uint64_t now_ms);
/* True if t may take a new request now, health and ejection considered. */
bool lb_usable(const struct lb_target *t, uint64_t now_ms);

/* The hash of a request's balancing key (stable across processes). */
uint64_t lb_key_hash(struct slice key);

#endif
