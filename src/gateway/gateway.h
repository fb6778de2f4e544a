/* The gateway: a reverse proxy in front of named upstream pools, routed by
 * path prefix and host (`cruder gateway --config FILE`). docs/gateway.md is
 * the reference of the file, its settings and the gateway's behaviour.
 *
 * The configuration file is line-based; `#` starts a comment:
 *
 *     http = 127.0.0.1:8080              any shared setting (cruder serve --help)
 *     upstream api 127.0.0.1:8091 127.0.0.1:8092
 *     upstream files balance=hash hash=path:4 127.0.0.1:8093 127.0.0.1:8094
 *                                         balance=p2c (default) | round_robin |
 *                                         least_outstanding | hash; the hash key
 *                                         is header:NAME, query:NAME or path:N
 *                                         (the Nth segment, from 0)
 *     route /api/files/ files             longest matching prefix wins
 *     route example.com/api/ api          a host before the prefix: only that Host
 *     route / api
 *     connect_timeout_ms = 2000           gateway settings (see gateway_config_defaults)
 *     cache_max_bytes = 256m              the shared cache (gateway/cache.h); 0: off
 *     cache_disk_dir = /var/cache/cruder  its disk tier, with cache_disk_max_bytes
 *
 * A reload applies the cache's sizes and purge token; turning the cache on
 * or off, its policy and its disk tier's directory take a restart. With
 * cache_purge_token set, `PURGE /target` (the request's Host) and
 * `POST /_gateway/purge?tag=a,b` or `?url=/t[&host=h]` with
 * `Authorization: Bearer TOKEN` drop stored responses and answer
 * {"purged":N}.
 *
 * Routes naming a host are tried before host-less ones. Upstream addresses
 * are numeric (IPv4 or [IPv6]) with a port. The topology is read from a
 * file today, through struct gateway_source; the control plane will later
 * supply the same struct through its own source. */
#ifndef GATEWAY_GATEWAY_H
#define GATEWAY_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/slice.h"
#include "gateway/balance.h"
#include "gateway/cache.h"
#include "http/http.h"

enum gateway_hash_from {
    GATEWAY_HASH_NONE,
    GATEWAY_HASH_HEADER,
    GATEWAY_HASH_QUERY,
    GATEWAY_HASH_PATH
};

struct gateway_upstream {
    char *name;
    char **targets; /* "ADDR:PORT" */
    size_t ntargets;
    enum gateway_balance balance;
    enum gateway_hash_from hash_from;
    char *hash_name; /* header or query parameter name */
    int hash_segment;
};

struct gateway_route {
    char *host;   /* NULL: any host */
    char *prefix; /* starts with '/' */
    size_t upstream;
};

struct gateway_config {
    struct gateway_upstream *upstreams;
    size_t nupstreams;
    struct gateway_route *routes;
    size_t nroutes;
    int connect_timeout_ms;
    int first_byte_timeout_ms;
    int upstream_idle_timeout_ms;
    int keepalive_idle_ms; /* pooled upstream connections; keep below the upstream's idle timeout */
    int keepalive_max;     /* idle connections kept per loop and target */
    int tunnel_idle_timeout_ms; /* an upgraded connection with no byte either way closes */
    int eject_ms;               /* first back-off after a failure; doubles up to eject_max_ms */
    int eject_max_ms;
    int eject_5xx;          /* consecutive 5xx answers that eject a target; 0: never */
    int panic_percent;      /* fewer usable targets than this share: use them all */
    int hash_load_pct;      /* bounded loads: a target takes at most this % of the mean */
    int health_interval_ms; /* active checks; 0: none */
    int health_timeout_ms;
    int health_rise; /* consecutive passes that bring a target up */
    int health_fall; /* consecutive failures that take it down */
    char *health_path;
    char *metrics_path;            /* answered by the gateway itself; "" turns it off */
    size_t cache_max_bytes;        /* 0: no cache */
    size_t cache_max_object_bytes; /* 0: cache_max_bytes / 8 */
    enum cache_policy cache_policy;
    char *cache_targeted_field;  /* e.g. "Cruder-Cache-Control"; NULL: none */
    char *cache_tag_field;       /* e.g. "Cache-Tag"; NULL: none */
    char *cache_purge_token;     /* bearer token of the purge API; NULL: purge off */
    char *cache_disk_dir;        /* the cache's disk tier; NULL: memory only */
    size_t cache_disk_max_bytes; /* the disk tier's bound; 0: no disk tier */
};

/* Where the topology comes from: a file today, the control plane later.
 * load fills gc (which it must leave freed on failure) and returns 0, or -1
 * with a one-line reason in err. It runs on the gateway's control thread. */
struct gateway_source {
    int (*load)(void *ctx, struct gateway_config *gc, char *err, size_t errlen);
    void *ctx;
};
/* A source reading path (which must outlive it) with gateway_config_load;
 * shared settings in the file are checked but not applied on reload. */
struct gateway_source gateway_file_source(const char *path);

struct gateway;

/* Takes the first configuration (gc's contents now belong to the gateway; gc
 * is left empty) and the source later reloads read. Returns NULL, with errno
 * set, only when the cache's disk tier directory can be neither created nor
 * opened. */
struct gateway *gateway_new(struct gateway_config *gc, struct gateway_source src);
/* Starts the control thread: active health checks and reloads. */
void gateway_start(struct gateway *gw);
/* Asks for a reload from the source; async-signal-safe (for SIGHUP). A
 * configuration that fails to load is logged and the current one kept.
 * Requests in flight finish on the configuration they started with; a
 * target no longer listed gets no new requests (it drains). */
void gateway_reload(void);
/* Stops the control thread and frees what no loop still holds; call after
 * the HTTP server (whose loops hold configurations) has been freed. */
void gateway_free(struct gateway *gw);
/* Appends the gateway's metrics in Prometheus text format, the cache's
 * included. */
void gateway_metrics_render(struct gateway *gw, struct buf *out);
/* The gateway's shared cache; NULL when cache_max_bytes was 0 at start. */
struct cache *gateway_cache(struct gateway *gw);

/* Fills gc with no upstreams, no routes and the default timeouts. */
void gateway_config_defaults(struct gateway_config *gc);
/* Parses the text of a configuration file into gc (set to defaults first).
 * Shared settings go to shared through config_set; with shared NULL they are
 * rejected. On error returns -1 with "line N: reason" in err; gc is then
 * freed. */
int gateway_config_parse(struct gateway_config *gc, struct config *shared, struct slice text,
                         char *err, size_t errlen);
/* Reads the file and parses it as above. */
int gateway_config_load(struct gateway_config *gc, struct config *shared, const char *path,
                        char *err, size_t errlen);
void gateway_config_free(struct gateway_config *gc);
/* health_path, or its default "/api/health". */
const char *gateway_health_path(const struct gateway_config *gc);
/* metrics_path, or its default "/metrics"; NULL when set empty (off). */
const char *gateway_metrics_path(const struct gateway_config *gc);

/* The route for host (the Host header, port ignored; may be SLICE_NULL) and
 * path: host routes first, then host-less; the longest prefix wins. NULL if
 * none matches. */
const struct gateway_route *gateway_route_match(const struct gateway_config *gc, struct slice host,
                                                struct slice path);

/* Registers the proxy on router as the handler of every request. gw must
 * outlive the router; the gateway keeps per-loop state (connection pools,
 * balancer counters) in each loop's user slot. */
void gateway_register(struct http_router *router, struct gateway *gw);

/* Appends the request head sent upstream for req: the request line, the
 * client's headers without the hop-by-hop ones (and those named in
 * Connection), X-Forwarded-For/-Proto/-Host, Forwarded, X-Request-Id
 * (request_id) and the body's framing. Exposed for the tests. */
void gateway_upstream_head(struct buf *out, const struct http_request *req,
                           struct slice request_id);
/* True if a header of this name is hop-by-hop per RFC 9110 7.6.1, or named in
 * the message's Connection header value `connection`. */
bool gateway_is_hop_header(struct slice name, struct slice connection);

#endif
