/* Start-up steps shared by the roles: settings and the store with its system
 * collections. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
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

static int create_superusers(struct store *store, struct collection **out)
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
        log_error("cannot create _superusers: %s", res->message);
    store_sync_free(sync);
    if (rc) {
        collection_release(c);
        return -1;
    }
    *out = c;
    return 0;
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
        list = realloc(list, (n + 1) * sizeof(*list));
        if (!list || create_superusers(store, &list[n])) {
            fprintf(stderr, "cruder: cannot create the _superusers collection\n");
            store->ops->close(store);
            return -1;
        }
        n++;
    }
    schema_publish(list, n);
    for (size_t i = 0; i < n; i++)
        collection_release(list[i]);
    free(list);
    *out = store;
    return 0;
}
