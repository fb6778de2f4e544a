/* Shared between the gateway's files: configuration snapshots, the counters
 * /metrics reads, and the handful of calls proxy.c makes into runtime.c. */
#ifndef GATEWAY_INTERNAL_H
#define GATEWAY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "gateway/gateway.h"

enum {
    GW_CLASSES = 6, /* 1xx..5xx, then "no response" */
    GW_BUCKETS = 12
};

/* Counters of one (upstream, target) or one route, kept for the process's
 * life so they survive reloads; written from every loop with relaxed atomics. */
struct gw_stat {
    char *labels;         /* Prometheus labels: upstream="api",target="127.0.0.1:1" */
    atomic_int health;    /* enum lb_health, written by the health checker */
    atomic_bool listed;   /* in the current configuration */
    atomic_uint up_epoch; /* counts the checker's transitions to up */
    int passes, fails;    /* health checker only, as are: */
    uint64_t next_check_ms;
    bool checking; /* a check of it is running */
    atomic_ullong requests[GW_CLASSES];
    atomic_ullong latency[GW_BUCKETS + 1];
    atomic_ullong latency_sum_us;
    atomic_ullong retries, ejections;
    atomic_llong in_flight;
    struct gw_stat *next;
};

/* One configuration, reference counted: each loop holds the one it serves
 * with, and a loop's view is released only when its last request ends. */
struct gw_topo {
    atomic_int refs;
    uint64_t gen;
    struct gateway_config gc;
    struct gw_stat ***targets; /* [upstream][target] */
    struct gw_stat **routes;   /* [route] */
};

struct gateway {
    struct gateway_source src;
    pthread_mutex_t mu; /* guards current and the stat lists' growth */
    struct gw_topo *current;
    atomic_ullong gen;
    struct gw_stat *target_stats, *route_stats;
    /* The shared cache, sized at start-up (NULL: off); the options' field
     * names point at the two strings after it. */
    struct cache *cache;
    char *cache_targeted_field, *cache_tag_field;
    pthread_t thread;
    bool started;
    atomic_bool stop;
};

/* The current configuration, with a reference for the caller. */
struct gw_topo *gw_topo_acquire(struct gateway *gw);
void gw_topo_release(struct gw_topo *t);
/* Records one finished response (status 0: none came) taking latency_ms. */
void gw_stat_record(struct gw_stat *s, int status, double latency_ms);

#endif
