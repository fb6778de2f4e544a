/* `cruder gateway --config FILE`: the reverse proxy in front of upstream
 * pools (gateway/gateway.h has the file's format). The HTTP server runs as
 * for `cruder serve`, one loop per core, with the proxy as its only route.
 * SIGHUP reloads the file's upstreams, routes and gateway settings without
 * dropping a connection. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "gateway/gateway.h"
#include "http/http.h"
#include "roles/roles.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: cruder gateway --config FILE [options]\n\n"
                 "Runs the reverse proxy: routes requests by host and path prefix to upstream\n"
                 "pools named in FILE, one line each:\n\n"
                 "  upstream NAME ADDR:PORT [ADDR:PORT ...]\n"
                 "  route [HOST]/PREFIX NAME\n"
                 "  connect_timeout_ms = 2000         first_byte_timeout_ms = 30000\n"
                 "  upstream_idle_timeout_ms = 60000  keepalive_idle_ms = 20000\n"
                 "  keepalive_max = 64                eject_ms = 1000\n"
                 "  tunnel_idle_timeout_ms = 600000 (upgraded connections, WebSocket)\n"
                 "  eject_max_ms = 30000              eject_5xx = 5\n"
                 "  panic_percent = 50                hash_load_pct = 125\n"
                 "  health_interval_ms = 2000 (0: off) health_timeout_ms = 1000\n"
                 "  health_rise = 2                   health_fall = 2\n"
                 "  health_path = /api/health         metrics_path = /metrics\n"
                 "  cache_max_bytes = 0 (off; 64m)    cache_max_object_bytes = max/8\n"
                 "  cache_policy = s3fifo|lru         cache_tag_field = Cache-Tag\n"
                 "  cache_targeted_field = Cruder-Cache-Control\n"
                 "  cache_disk_dir = PATH (a disk tier; its files are removed at start and exit)\n"
                 "  cache_disk_max_bytes = 0 (no disk tier; 1g)\n"
                 "  cache_purge_token = SECRET: PURGE /path, POST /_gateway/purge?tag=T|url=U\n"
                 "  upstream options: balance=p2c|round_robin|least_outstanding|hash,\n"
                 "  hash=header:NAME|query:NAME|path:N\n"
                 "  kill -HUP reloads FILE\n"
                 "  any option below as 'name = value'\n"
                 "  every setting and its meaning: docs/gateway.md\n\n"
                 "options:\n");
    config_print_help(CONFIG_ROLE_SERVE, out);
}

static void on_sighup(int sig)
{
    (void)sig;
    gateway_reload();
}

int role_gateway(int argc, char **argv)
{
    if (roles_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    /* --config names the gateway's own file, so it is taken out before the
     * shared loader sees the flags (and the environment). */
    const char *file = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    int nrest = 0;
    if (!rest)
        return 1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            file = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9))
            file = argv[i] + 9;
        else
            rest[nrest++] = argv[i];
    }
    if (!file) {
        fprintf(stderr, "cruder gateway: --config FILE is required\n\n");
        usage(stderr);
        free(rest);
        return 2;
    }
    struct config cfg;
    struct gateway_config gc;
    char err[512];
    config_defaults(&cfg);
    if (gateway_config_load(&gc, &cfg, file, err, sizeof(err))) {
        fprintf(stderr, "cruder gateway: %s\n", err);
        config_free(&cfg);
        free(rest);
        return 2;
    }
    int npos = 0;
    if (config_load(&cfg, CONFIG_ROLE_SERVE, nrest, rest, &npos, err, sizeof(err)) ||
        log_set_level(cfg.log_level) || npos) {
        fprintf(stderr, "cruder gateway: %s\n",
                npos     ? "unexpected argument"
                : err[0] ? err
                         : "bad log_level");
        gateway_config_free(&gc);
        config_free(&cfg);
        free(rest);
        return 2;
    }
    free(rest);

    /* gateway_new takes gc's contents: keep what the messages need. */
    size_t nupstreams = gc.nupstreams, nroutes = gc.nroutes;
    char *disk_dir = gc.cache_disk_dir ? strdup(gc.cache_disk_dir) : NULL;
    struct gateway *gw = gateway_new(&gc, gateway_file_source(file));
    if (gw == NULL) {
        fprintf(stderr, "cruder gateway: cache_disk_dir %s: %s\n", disk_dir ? disk_dir : "",
                strerror(errno));
        free(disk_dir);
        config_free(&cfg);
        return 1;
    }
    free(disk_dir);
    struct http_router *router = http_router_new();
    gateway_register(router, gw);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sighup;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    gateway_start(gw);
    struct http_server *srv;
    int status = 0;
    if (http_server_start(&cfg, router, &srv, err, sizeof(err))) {
        fprintf(stderr, "cruder: cannot listen on %s: %s\n", cfg.http, err);
        status = 1;
    } else {
        log_info("cruder %s gateway on %s (%zu upstreams, %zu routes)", CRUDER_VERSION, cfg.http,
                 nupstreams, nroutes);
        http_server_wait(srv);
        http_server_free(srv);
        log_info("stopped");
    }
    http_router_free(router);
    gateway_free(gw);
    config_free(&cfg);
    return status;
}
