/* The gateway: a reverse proxy in front of named upstream pools, routed by
 * path prefix and host (`cruder gateway --config FILE`).
 *
 * The configuration file is line-based; `#` starts a comment:
 *
 *     http = 127.0.0.1:8080              any shared setting (cruder serve --help)
 *     upstream api 127.0.0.1:8091 127.0.0.1:8092
 *     upstream files 127.0.0.1:8093
 *     route /api/files/ files             longest matching prefix wins
 *     route example.com/api/ api          a host before the prefix: only that Host
 *     route / api
 *     connect_timeout_ms = 2000           gateway settings (see gateway_config_defaults)
 *
 * Routes naming a host are tried before host-less ones. Upstream addresses
 * are numeric (IPv4 or [IPv6]) with a port. The topology is read from a
 * file today; the control plane will later supply the same struct. */
#ifndef GATEWAY_GATEWAY_H
#define GATEWAY_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/slice.h"
#include "http/http.h"

struct gateway_upstream {
    char *name;
    char **targets; /* "ADDR:PORT" */
    size_t ntargets;
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
    int eject_ms;          /* first back-off after a connect failure; doubles up to 30 s */
};

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

/* The route for host (the Host header, port ignored; may be SLICE_NULL) and
 * path: host routes first, then host-less; the longest prefix wins. NULL if
 * none matches. */
const struct gateway_route *gateway_route_match(const struct gateway_config *gc, struct slice host,
                                                struct slice path);

/* Registers the proxy on router as the handler of every request. gc must
 * outlive the router; the gateway keeps per-loop state (connection pools,
 * balancer counters) in each loop's user slot. */
void gateway_register(struct http_router *router, const struct gateway_config *gc);

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
