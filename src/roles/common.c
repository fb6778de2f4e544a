/* Start-up steps shared by the roles: settings and the store with its system
 * collections. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "domain/auth.h"
#include "domain/schema.h"
#include "roles/roles.h"

bool roles_wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

int roles_load_config(struct config *cfg, int role, int argc, char **argv, int *npositional)
{
    char err[512];
    config_defaults(cfg);
    if (config_load(cfg, role, argc, argv, npositional, err, sizeof(err))) {
        fprintf(stderr, "cruder: %s\n", err);
        config_free(cfg);
        return -1;
    }
    if (log_set_level(cfg->log_level)) {
        fprintf(stderr, "cruder: log_level: '%s' is not debug, info, warn or error\n",
                cfg->log_level);
        config_free(cfg);
        return -1;
    }
    return 0;
}

/* The superusers' auth collection, as PocketBase has it; the rest of its
 * fields (email, password, tokenKey, ...) are an auth collection's defaults. */
static const char superusers_json[] =
    "{\"name\":\"_superusers\",\"type\":\"auth\",\"system\":true,"
    "\"listRule\":null,\"viewRule\":null,\"createRule\":null,\"updateRule\":null,"
    "\"deleteRule\":null,\"authRule\":\"\",\"manageRule\":null}";

/* Saves the _superusers collection; -1 with the store's reason in why. */
static int create_superusers(struct store *store, struct collection **out, char *why, size_t whylen)
{
    json_t *def = json_loads(superusers_json, 0, NULL);
    json_t *errors = NULL;
    struct collection *c = collection_from_json_system(def, NULL, &errors);
    json_decref(def);
    if (!c) {
        char *text = json_dumps(errors, JSON_COMPACT);
        log_error("cannot define _superusers: %s", text ? text : "?");
        free(text);
        json_decref(errors);
        return -1;
    }
    json_t *tok = json_object_get(c->auth_options, "authToken");
    if (!json_is_object(tok)) {
        tok = json_object();
        json_object_set_new(c->auth_options, "authToken", tok);
    }
    char secret[AUTH_TOKEN_KEY_LEN + 1];
    auth_token_key_generate(secret);
    json_object_set_new(tok, "secret", json_string(secret));

    struct store_sync *sync = store_sync_new();
    store->ops->collection_save(store, NULL, c, NULL, store_sync_cb, sync);
    struct store_result *res = store_sync_wait(sync);
    int rc = res->status == STORE_OK ? 0 : -1;
    if (rc)
        snprintf(why, whylen, "%s", res->message[0] ? res->message : "refused by the store");
    store_sync_free(sync);
    if (rc) {
        collection_release(c);
        return -1;
    }
    *out = c;
    return 0;
}

struct collections_watch {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    struct store *store;
    int interval_ms;
    /* One look at a time, by the watch's thread or a loop's (look_now): the
     * store's version read uses one connection. Under look_mu: */
    pthread_mutex_t look_mu;
    int64_t version; /* what was last published */
    bool warned;
    uint64_t look_began_ns; /* CLOCK_MONOTONIC when the last look began */
};

/* One look at the stored collections; true if it published a change.
 * Call with look_mu held. */
static bool watch_once(struct collections_watch *w)
{
    w->look_began_ns = time_mono_ns();
    int64_t *version = &w->version;
    bool *warned = &w->warned;
    struct schema *s = schema_current();
    uint64_t seen = s->version;
    schema_release(s);
    int64_t was = *version;
    struct collection **list = NULL;
    size_t n = 0;
    char err[512];
    int rc = w->store->ops->collections_reload(w->store, version, &list, &n, err, sizeof(err));
    if (rc < 0 && !*warned)
        log_warn("collections watch: %s", err);
    *warned = rc < 0;
    if (rc <= 0)
        return false;
    /* A save of this process published meanwhile: its snapshot may be newer
     * than what was read, so look again next time. */
    bool published = schema_publish_if(seen, list, n);
    if (!published)
        *version = was;
    for (size_t i = 0; i < n; i++)
        collection_release(list[i]);
    free(list);
    return published;
}

bool roles_watch_look_since(void *arg, uint64_t since_ns)
{
    struct collections_watch *w = arg;
    pthread_mutex_lock(&w->look_mu);
    /* A look that began after the request read what the request may name:
     * concurrent misses share it (a flood of made-up names costs one look
     * at a time, not one each). */
    bool looked = w->look_began_ns > since_ns || watch_once(w);
    pthread_mutex_unlock(&w->look_mu);
    return looked;
}

static void *watch_main(void *arg)
{
    struct collections_watch *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        pthread_mutex_unlock(&w->mu);
        pthread_mutex_lock(&w->look_mu);
        watch_once(w);
        pthread_mutex_unlock(&w->look_mu);
        pthread_mutex_lock(&w->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += w->interval_ms / 1000;
        until.tv_nsec += (long)(w->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct collections_watch *roles_watch_collections(struct store *store, int interval_ms)
{
    struct collections_watch *w = xcalloc(1, sizeof(*w));
    w->store = store;
    w->interval_ms = interval_ms;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_mutex_init(&w->look_mu, NULL);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0)
        core_assert(!"cannot start the collections watch");
    return w;
}

void roles_watch_stop(struct collections_watch *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->look_mu);
    free(w);
}

int roles_open_store(const struct config *cfg, store_post_fn post, struct store **out)
{
    /* The store's system collections need sodium for their token secrets. */
    if (auth_init()) {
        fprintf(stderr, "cruder: libsodium failed to initialise\n");
        return -1;
    }
    char err[512];
    struct store *store;
    if (store_sqlite_open(cfg, post, &store, err, sizeof(err))) {
        fprintf(stderr, "cruder: cannot open the store in %s: %s\n", cfg->dir, err);
        return -1;
    }
    struct collection **list = NULL;
    size_t n = 0;
    if (store->ops->load_collections(store, &list, &n, err, sizeof(err))) {
        fprintf(stderr, "cruder: cannot load collections: %s\n", err);
        store->ops->close(store);
        return -1;
    }
    bool have_superusers = false;
    for (size_t i = 0; i < n; i++)
        have_superusers |= strcmp(list[i]->name, "_superusers") == 0;
    if (!have_superusers) {
        list = xrealloc(list, (n + 1) * sizeof(*list));
        char why[256];
        if (create_superusers(store, &list[n], why, sizeof(why)) == 0) {
            n++;
        } else {
            /* Processes started together on new data race to create it:
             * the one that lost finds the winner's. */
            for (size_t i = 0; i < n; i++)
                collection_release(list[i]);
            free(list);
            list = NULL;
            n = 0;
            if (store->ops->load_collections(store, &list, &n, err, sizeof(err)) == 0)
                for (size_t i = 0; i < n; i++)
                    have_superusers |= strcmp(list[i]->name, "_superusers") == 0;
            if (!have_superusers) {
                fprintf(stderr, "cruder: cannot create the _superusers collection: %s\n", why);
                for (size_t i = 0; i < n; i++)
                    collection_release(list[i]);
                free(list);
                store->ops->close(store);
                return -1;
            }
        }
    }
    schema_publish(list, n);
    for (size_t i = 0; i < n; i++)
        collection_release(list[i]);
    free(list);
    *out = store;
    return 0;
}
