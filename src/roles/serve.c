/* `cruder serve`: the embedded deployment, everything in one process — the
 * HTTP server on one loop per core, the API, the SQLite store with its writer
 * and readers, and the work pool for password hashing. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "api/files.h"
#include "blob/blob.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "core/workpool.h"
#include "domain/auth.h"
#include "domain/schema.h"
#include "http/http.h"
#include "roles/roles.h"

/* Store completions go to the loop that asked; start-up calls, made before any
 * loop runs, pass no loop and complete on the store's thread. */
static void serve_post(void *target, void (*fn)(void *arg), void *arg)
{
    if (target)
        http_loop_post_any(target, fn, arg);
    else
        fn(arg);
}

/* Whether the store holds any superuser; a failed read counts as yes, so
 * a broken store never offers an install link. Runs before the loops. */
static bool has_superuser(struct store *store)
{
    struct schema *s = schema_current();
    struct collection *c = schema_find(s, SLICE_LIT("_superusers"));
    bool found = true;
    if (c) {
        struct store_sync *sync = store_sync_new();
        struct store_list_query q = {.collection = c, .page = 1, .per_page = 1, .skip_total = true};
        store->ops->record_list(store, &q, NULL, store_sync_cb, sync);
        struct store_result *res = store_sync_wait(sync);
        found = res->status != STORE_OK || res->json.len > 2;
        store_sync_free(sync);
    }
    schema_release(s);
    return found;
}

/* PocketBase's installer: a fresh server prints a one-time link; the
 * console at /_/ creates the first superuser with the token it carries
 * (see auth_install_claim). A wildcard listen address is shown as
 * loopback, where a browser on this machine reaches it. */
static void print_install_link(const char *http)
{
    char token[AUTH_INSTALL_TOKEN_LEN + 1];
    auth_install_token_new(time_now_ms(), token);
    /* The first listen address, when there are several. */
    size_t len = strcspn(http, ",");
    const char *host = http, *port = memrchr(http, ':', len);
    int hlen = port ? (int)(port - http) : (int)len;
    int plen = port ? (int)(http + len - port) : 0;
    if (strncmp(http, "0.0.0.0:", 8) == 0 || strncmp(http, ":", 1) == 0) {
        host = "127.0.0.1";
        hlen = 9;
    } else if (strncmp(http, "[::]:", 5) == 0) {
        host = "[::1]";
        hlen = 5;
    }
    fprintf(stderr,
            "\n(!) There is no superuser yet. Open this link within %d minutes to create the "
            "first one (it works once):\n\n    http://%.*s%.*s/_/#/install?token=%s\n\n",
            AUTH_INSTALL_TTL_MS / 60000, hlen, host, plen, port ? port : "", token);
    sodium_memzero(token, sizeof token);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: cruder serve [options]\n\n"
                 "Runs Cruder embedded: HTTP API, SQLite store and files in one process.\n\n"
                 "options:\n");
    config_print_help(CONFIG_ROLE_SERVE, out);
}

int role_serve(int argc, char **argv)
{
    if (roles_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    struct config cfg;
    int npos;
    if (roles_load_config(&cfg, CONFIG_ROLE_SERVE, argc, argv, &npos))
        return 2;
    if (npos) {
        fprintf(stderr, "cruder serve: unexpected argument '%s'\n", argv[0]);
        config_free(&cfg);
        return 2;
    }
    struct store *store;
    if (roles_open_store(&cfg, serve_post, &store)) {
        config_free(&cfg);
        return 1;
    }
    char err[512];
    struct blob_store *blobs = blob_local_open(cfg.dir, err, sizeof(err));
    if (!blobs) {
        fprintf(stderr, "cruder: cannot open the file storage: %s\n", err);
        store->ops->close(store);
        config_free(&cfg);
        return 1;
    }
    files_set_store(blobs);
    /* Before any request: files an interrupted upload or a crash between a
     * record change and its file cleanup left behind. */
    size_t swept = 0;
    if (files_sweep(store, &swept) != 0)
        log_warn("file storage sweep incomplete");
    else if (swept)
        log_info("file storage sweep removed %zu orphaned files", swept);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    workpool_start(ncpu > 0 ? (int)ncpu : 2, 4096);
    /* Other processes on the same data (scripts/cluster.sh) change
     * collections too. A look is one indexed row unless something changed,
     * so it is cheap to look often; a request naming a collection unknown
     * here looks at once, so one another process has just created is found. */
    struct collections_watch *watch = roles_watch_collections(store, 200);

    struct http_router *router = http_router_new();
    api_register(router, store, &cfg);
    api_set_recheck(roles_watch_look_since, watch);
    struct http_server *srv;
    int status = 0;
    if (http_server_start(&cfg, router, &srv, err, sizeof(err))) {
        fprintf(stderr, "cruder: cannot listen on %s: %s\n", cfg.http, err);
        status = 1;
    } else {
        log_info("cruder %s serving on %s (data in %s)", CRUDER_VERSION, cfg.http, cfg.dir);
        if (!has_superuser(store))
            print_install_link(cfg.http);
        http_server_wait(srv);
        roles_watch_stop(watch);
        watch = NULL;
        /* The work pool and the store drain into loops that still run. */
        workpool_stop();
        store->ops->close(store);
        http_server_free(srv);
        log_info("stopped");
        store = NULL;
    }
    if (watch)
        roles_watch_stop(watch);
    if (store) {
        workpool_stop();
        store->ops->close(store);
    }
    http_router_free(router);
    blobs->ops->free(blobs);
    config_free(&cfg);
    return status;
}
