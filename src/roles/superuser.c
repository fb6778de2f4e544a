/* `cruder superuser upsert EMAIL PASSWORD` and `cruder superuser delete EMAIL`:
 * manage superusers directly in the data directory. Safe while a server runs
 * on the same directory: SQLite's locking orders the writes, a password
 * change rotates the tokenKey, which revokes the old tokens at once, and a
 * delete removes the files of what it deleted only after its commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "domain/auth.h"
#include "domain/schema.h"
#include "roles/roles.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: cruder superuser upsert EMAIL PASSWORD [options]\n"
                 "       cruder superuser delete EMAIL [options]\n\n"
                 "Creates or updates (upsert) or removes (delete) a superuser account.\n\n"
                 "options:\n");
    config_print_help(CONFIG_ROLE_ADMIN, out);
}

struct upsert_arg {
    struct collection *collection;
    json_t *input;
};

static int upsert_merge(void *arg, json_t *prev, json_t **out, json_t **errors)
{
    struct upsert_arg *u = arg;
    return record_validate(u->collection, u->input, prev, time_now_ms(), out, errors);
}

/* The stored superuser with this email, as JSON; NULL if none. */
static json_t *find_by_email(struct store *store, struct collection *c, const char *email)
{
    json_t *params = json_pack("[s]", email);
    struct store_list_query q = {
        .collection = c,
        .where_sql = "\"email\" = ?",
        .params = params,
        .page = 1,
        .per_page = 1,
        .skip_total = true,
    };
    struct store_sync *sync = store_sync_new();
    store->ops->record_list(store, &q, NULL, store_sync_cb, sync);
    struct store_result *res = store_sync_wait(sync);
    json_t *found = NULL;
    if (res->status == STORE_OK) {
        json_t *list = json_loadb(res->json.ptr, res->json.len, 0, NULL);
        if (json_array_size(list))
            found = json_incref(json_array_get(list, 0));
        json_decref(list);
    }
    store_sync_free(sync);
    json_decref(params);
    return found;
}

static void print_errors(const char *what, struct store_result *res)
{
    char *text = res->errors ? json_dumps(res->errors, JSON_COMPACT) : NULL;
    fprintf(stderr, "cruder superuser: %s: %s\n", what, text ? text : res->message);
    free(text);
}

static int upsert(struct store *store, struct collection *c, const char *email,
                  const char *password)
{
    const struct field *pw = collection_field(c, SLICE_LIT("password"));
    json_t *perr = pw ? record_password_check(pw, slice_cstr(password)) : NULL;
    if (perr) {
        fprintf(stderr, "cruder superuser: password: %s\n",
                json_string_value(json_object_get(perr, "message")));
        json_decref(perr);
        return 1;
    }
    char hash[AUTH_HASH_MAX];
    if (auth_password_hash(slice_cstr(password), hash)) {
        fprintf(stderr, "cruder superuser: cannot hash the password\n");
        return 1;
    }
    json_t *existing = find_by_email(store, c, email);
    struct upsert_arg u = {c, json_pack("{s:s, s:s}", "email", email, "password", hash)};
    struct store_sync *sync = store_sync_new();
    const char *id = existing ? json_string_value(json_object_get(existing, "id")) : "";
    store->ops->record_write(store, c, slice_cstr(id), existing == NULL, -1, NULL,
                             STORE_FIELDS_PUBLIC, upsert_merge, &u, NULL, store_sync_cb, sync);
    struct store_result *res = store_sync_wait(sync);
    int status = 0;
    if (res->status != STORE_OK) {
        print_errors("cannot save the superuser", res);
        status = 1;
    } else {
        printf("%s superuser %s\n", existing ? "Updated" : "Created", email);
    }
    store_sync_free(sync);
    json_decref(u.input);
    json_decref(existing);
    return status;
}

/* Deletes, after the commit, the files of the deleted superuser and of the
 * records its delete cascaded to (store_cascaded_foreach), as the records
 * API does. Blocks on the disk, which a command may. What cannot be deleted
 * now is an orphan the server's startup sweep removes. */
static void remove_record_files(const char *cid, const char *rid, unsigned flags, void *arg)
{
    struct blob_store *bs = arg;
    if (flags & STORE_CASCADE_FILES)
        bs->ops->remove_record(bs, cid, rid);
}

static void remove_files(const struct config *cfg, const struct collection *c, const char *id,
                         const struct store_result *res)
{
    bool own = false;
    for (size_t i = 0; i < c->nfields && !own; i++)
        own = c->fields[i].type == FIELD_FILE;
    if (!own && !res->json.len)
        return;
    char err[512];
    struct blob_store *bs = blob_local_open(cfg->dir, err, sizeof(err));
    if (!bs) {
        fprintf(stderr, "cruder superuser: files left for the startup sweep: %s\n", err);
        return;
    }
    if (own)
        bs->ops->remove_record(bs, c->id, id);
    store_cascaded_foreach(res, remove_record_files, bs);
    bs->ops->free(bs);
}

static int delete (const struct config *cfg, struct store *store, struct collection *c,
                   const char *email)
{
    json_t *existing = find_by_email(store, c, email);
    if (!existing) {
        fprintf(stderr, "cruder superuser: no superuser with email %s\n", email);
        return 1;
    }
    const char *id = json_string_value(json_object_get(existing, "id"));
    struct store_sync *sync = store_sync_new();
    store->ops->record_delete(store, c, slice_cstr(id), -1, NULL, NULL, store_sync_cb, sync);
    struct store_result *res = store_sync_wait(sync);
    int status = 0;
    if (res->status != STORE_OK) {
        print_errors("cannot delete the superuser", res);
        status = 1;
    } else {
        remove_files(cfg, c, id, res);
        printf("Deleted superuser %s\n", email);
    }
    store_sync_free(sync);
    json_decref(existing);
    return status;
}

int role_superuser(int argc, char **argv)
{
    if (roles_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    struct config cfg;
    int npos;
    if (roles_load_config(&cfg, CONFIG_ROLE_ADMIN, argc, argv, &npos))
        return 2;
    bool is_upsert = npos == 3 && !strcmp(argv[0], "upsert");
    bool is_delete = npos == 2 && !strcmp(argv[0], "delete");
    if (!is_upsert && !is_delete) {
        usage(stderr);
        config_free(&cfg);
        return 2;
    }
    struct store *store;
    if (roles_open_store(&cfg, store_sync_post, &store)) {
        config_free(&cfg);
        return 1;
    }
    struct schema *s = schema_current();
    struct collection *c = schema_find(s, SLICE_LIT("_superusers"));
    int status = is_upsert ? upsert(store, c, argv[1], argv[2]) : delete (&cfg, store, c, argv[1]);
    schema_release(s);
    store->ops->close(store);
    config_free(&cfg);
    return status;
}
