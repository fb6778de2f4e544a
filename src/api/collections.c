/* /api/collections: list, view, create, update and delete collections
 * (superusers only). A change runs the store's migration first and publishes
 * the new schema only once that is committed; changes are serialised so that
 * each one starts from the schema the previous one left. */
#include <pthread.h>
#include <stdlib.h>
#include <strings.h>

#include "api/internal.h"
#include "core/alloc.h"

/* ---- serialising schema changes ---- */

struct pending_change {
    struct pending_change *next;
    struct http_request *req;
    http_handler_fn fn;
};

static struct {
    pthread_mutex_t lock;
    bool busy;
    struct pending_change *head, *tail;
} changes = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void run_pending(void *arg)
{
    struct pending_change *p = arg;
    http_handler_fn fn = p->fn;
    struct http_request *req = p->req;
    free(p);
    fn(req);
}

void api_schema_change_begin(struct http_request *req, http_handler_fn fn)
{
    pthread_mutex_lock(&changes.lock);
    if (!changes.busy) {
        changes.busy = true;
        pthread_mutex_unlock(&changes.lock);
        fn(req);
        return;
    }
    struct pending_change *p = xcalloc(1, sizeof(*p));
    p->req = req;
    p->fn = fn;
    if (changes.tail)
        changes.tail->next = p;
    else
        changes.head = p;
    changes.tail = p;
    pthread_mutex_unlock(&changes.lock);
}

void api_schema_change_done(void)
{
    pthread_mutex_lock(&changes.lock);
    struct pending_change *p = changes.head;
    if (p) {
        changes.head = p->next;
        if (!changes.head)
            changes.tail = NULL;
    } else {
        changes.busy = false;
    }
    pthread_mutex_unlock(&changes.lock);
    if (p)
        http_loop_post(p->req->loop, run_pending, p);
}

/* ---- helpers ---- */

/* Runs next(req) if the caller is a superuser; answers 401/403 otherwise. */
static bool require_superuser(struct http_request *req, const struct api_auth *auth)
{
    if (auth->superuser)
        return true;
    if (auth->record_id[0])
        api_error(req, 403, "The authorized record is not allowed to perform this action.", NULL);
    else
        api_error(req, 401, "The request requires valid record authorization token.", NULL);
    return false;
}

/* The schema with `next` in place of `prev` (either may be NULL). They are
 * matched by id, not pointer: the collections watch may have republished
 * the schema meanwhile (a copy of prev as it was, or next already read back
 * from the store), and a stale copy left beside next would shadow it. */
static void publish_replacing(const struct collection *prev, struct collection *next)
{
    struct schema *s = schema_current();
    struct collection **list = xcalloc(s->ncollections + 1, sizeof(*list));
    size_t n = 0;
    for (size_t i = 0; i < s->ncollections; i++) {
        const char *id = s->collections[i]->id;
        if ((prev && strcmp(id, prev->id) == 0) || (next && strcmp(id, next->id) == 0))
            continue;
        list[n++] = s->collections[i];
    }
    if (next)
        list[n++] = next;
    schema_publish(list, n);
    free(list);
    schema_release(s);
}

static json_t *field_error(const char *code, const char *message)
{
    return json_pack("{s:s,s:s}", "code", code, "message", message);
}

/* Every rule of next must compile against the schema as it will be (next in
 * place of self), as PocketBase checks on save: NULL if they all do, else
 * {"<rule key>": {"code": "validation_invalid_rule", "message": ...}} for the
 * first that does not (caller owns it). */
static json_t *rule_errors(const struct schema *s, const struct collection *next,
                           const struct collection *self)
{
    static const char *const keys[] = {"listRule",   "viewRule", "createRule", "updateRule",
                                       "deleteRule", "authRule", "manageRule"};
    struct collection **list = xmalloc((s->ncollections + 1) * sizeof *list);
    struct schema draft = {.collections = list};
    for (size_t i = 0; i < s->ncollections; i++)
        if (s->collections[i] != self)
            list[draft.ncollections++] = s->collections[i];
    list[draft.ncollections++] = (struct collection *)next;
    json_t *errors = NULL;
    static const struct rule_request rq = {.method = "GET", .context = "default"};
    for (size_t r = 0; r < sizeof keys / sizeof keys[0] && !errors; r++) {
        if (!next->rules[r] || !next->rules[r][0])
            continue;
        struct buf sql = BUF_INIT;
        json_t *params = json_array();
        struct filter_error fe = {0};
        if (rule_compile(&draft, next, slice_cstr(next->rules[r]), &rq, 0, &sql, params, &fe)) {
            char msg[256];
            snprintf(msg, sizeof msg, "Invalid rule. Raw error: %s.", fe.message);
            errors = json_pack("{s:o}", keys[r], field_error("validation_invalid_rule", msg));
        }
        buf_free(&sql);
        json_decref(params);
    }
    free(list);
    return errors;
}

/* What the rest of the schema refuses in next (self is the collection it
 * replaces, or NULL): another collection with its name or id, a relation to
 * a collection that does not exist. NULL if none. */
static json_t *uniqueness_errors(const struct collection *next, const struct collection *self)
{
    json_t *errors = NULL;
    struct schema *s = schema_current();
    for (size_t i = 0; i < s->ncollections; i++) {
        const struct collection *o = s->collections[i];
        if (o == self)
            continue;
        if (!strcasecmp(o->name, next->name)) {
            errors = json_pack("{s:o}", "name",
                               field_error("validation_collection_name_exists",
                                           "Collection name must be unique (case insensitive)."));
            break;
        }
        if (!strcmp(o->id, next->id)) {
            errors = json_pack("{s:o}", "id",
                               field_error("validation_invalid_id", "The id is already in use."));
            break;
        }
    }
    if (!errors && collection_check_relations(s, next, self, &errors) == 0)
        errors = NULL;
    if (!errors)
        errors = rule_errors(s, next, self);
    schema_release(s);
    return errors;
}

/* Auth collections sign tokens with a per-collection secret; give a new one
 * a random secret if the client did not set one. */
static void ensure_auth_secret(struct collection *c)
{
    if (c->type != COLLECTION_AUTH)
        return;
    if (!c->auth_options)
        c->auth_options = json_object();
    json_t *tok = json_object_get(c->auth_options, "authToken");
    if (!json_is_object(tok)) {
        tok = json_object();
        json_object_set_new(c->auth_options, "authToken", tok);
    }
    const char *secret = json_string_value(json_object_get(tok, "secret"));
    if (secret && *secret)
        return;
    char key[AUTH_TOKEN_KEY_LEN + 1];
    auth_token_key_generate(key);
    json_object_set_new(tok, "secret", json_string(key));
}

/* The collection named in the path, retained; answers 404 if absent. */
static struct collection *path_collection(struct http_request *req)
{
    struct collection *c = api_collection_find(req);
    if (!c)
        api_error(req, 404, "The requested resource wasn't found.", NULL);
    return c;
}

/* ---- list and view ---- */

static void list_authed(struct http_request *req, struct api_auth *auth)
{
    if (!require_superuser(req, auth))
        return;
    long long page, per_page;
    if (!api_query_int(req, "page", 1, 1, 1LL << 40, &page) ||
        !api_query_int(req, "perPage", 30, 1, 500, &per_page))
        return;
    struct slice skip;
    bool skip_total = http_request_query(req, "skipTotal", &skip) &&
                      (slice_eq_cstr(skip, "1") || slice_eq_cstr(skip, "true"));
    struct schema *s = schema_current();
    json_t *items = json_array();
    long long from = (page - 1) * per_page;
    for (long long i = from; i < (long long)s->ncollections && i < from + per_page; i++)
        json_array_append_new(items, collection_to_json(s->collections[i]));
    long long total = (long long)s->ncollections;
    schema_release(s);
    json_t *body = json_pack("{s:I, s:I, s:I, s:I, s:o}", "page", page, "perPage", per_page,
                             "totalItems", skip_total ? -1 : total, "totalPages",
                             skip_total ? -1 : (total + per_page - 1) / per_page, "items", items);
    api_json(req, 200, body);
}

static void view_authed(struct http_request *req, struct api_auth *auth)
{
    if (!require_superuser(req, auth))
        return;
    struct collection *c = path_collection(req);
    if (!c)
        return;
    api_json(req, 200, collection_to_json(c));
    collection_release(c);
}

static void handle_list(struct http_request *req)
{
    api_authenticate(req, list_authed);
}

static void handle_view(struct http_request *req)
{
    api_authenticate(req, view_authed);
}

/* ---- create, update, delete ---- */

struct change {
    struct http_request *req;
    struct collection *prev; /* retained; NULL on create */
    struct collection *next; /* owned until published; NULL on delete */
};

static void change_saved(void *arg, struct store_result *res)
{
    /* The change lives in the request's pool, which the answer frees. */
    struct change copy = *(struct change *)arg;
    struct change *ch = &copy;
    if (res->status == STORE_OK) {
        if ((ch->prev && ch->prev->type == COLLECTION_AUTH) ||
            (ch->next && ch->next->type == COLLECTION_AUTH))
            api_auth_changed();
        publish_replacing(ch->prev, ch->next);
        if (ch->prev && api_ctx.cfg->records_shared_max_age > 0) {
            /* A rule or a field changed: every public answer about the
             * collection a shared cache keeps may be wrong now. */
            struct buf tags = BUF_INIT;
            api_collection_tags(ch->prev->id, &tags);
            http_response_header(ch->req, SLICE_LIT("Cache-Tag"), buf_slice(&tags));
            buf_free(&tags);
        }
        if (ch->next)
            api_json(ch->req, 200, collection_to_json(ch->next));
        else
            http_respond(ch->req, 204, SLICE_NULL, SLICE_NULL);
    } else if (res->status == STORE_INVALID || res->status == STORE_UNIQUE) {
        api_error(ch->req, 400, "Failed to save the collection.",
                  res->errors ? json_incref(res->errors) : NULL);
    } else {
        api_store_error(ch->req, res);
    }
    collection_release(ch->prev);
    collection_release(ch->next);
    api_schema_change_done();
}

static void save_change(struct http_request *req, struct collection *prev, struct collection *next)
{
    struct change *ch = arena_zalloc(&req->pool, sizeof(*ch));
    *ch = (struct change){req, prev, next};
    api_ctx.store->ops->collection_save(api_ctx.store, prev, next, req->loop, change_saved, ch);
}

static void fail_change(struct http_request *req, struct collection *prev, const char *message,
                        json_t *errors)
{
    collection_release(prev);
    api_error(req, 400, message, errors);
    api_schema_change_done();
}

static void create_run(struct http_request *req)
{
    json_t *body = api_body_object(req);
    if (!body) {
        api_schema_change_done();
        return;
    }
    json_t *errors = NULL;
    struct collection *next = collection_from_json(body, NULL, &errors);
    json_decref(body);
    if (!next || (errors = uniqueness_errors(next, NULL))) {
        collection_release(next);
        fail_change(req, NULL, "Failed to create collection.", errors);
        return;
    }
    ensure_auth_secret(next);
    save_change(req, NULL, next);
}

static void update_run(struct http_request *req)
{
    struct collection *prev = path_collection(req);
    if (!prev) {
        api_schema_change_done();
        return;
    }
    json_t *body = api_body_object(req);
    if (!body) {
        collection_release(prev);
        api_schema_change_done();
        return;
    }
    json_t *errors = NULL;
    struct collection *next = collection_from_json(body, prev, &errors);
    json_decref(body);
    if (!next || (errors = uniqueness_errors(next, prev))) {
        collection_release(next);
        fail_change(req, prev, "Failed to update collection.", errors);
        return;
    }
    ensure_auth_secret(next);
    save_change(req, prev, next);
}

static void delete_run(struct http_request *req)
{
    struct collection *prev = path_collection(req);
    if (!prev) {
        api_schema_change_done();
        return;
    }
    if (prev->system) {
        fail_change(req, prev, "System collections cannot be deleted.", NULL);
        return;
    }
    save_change(req, prev, NULL);
}

static void create_authed(struct http_request *req, struct api_auth *auth)
{
    if (require_superuser(req, auth))
        api_schema_change_begin(req, create_run);
}

static void update_authed(struct http_request *req, struct api_auth *auth)
{
    if (require_superuser(req, auth))
        api_schema_change_begin(req, update_run);
}

static void delete_authed(struct http_request *req, struct api_auth *auth)
{
    if (require_superuser(req, auth))
        api_schema_change_begin(req, delete_run);
}

static void handle_create(struct http_request *req)
{
    api_authenticate(req, create_authed);
}

static void handle_update(struct http_request *req)
{
    api_authenticate(req, update_authed);
}

static void handle_delete(struct http_request *req)
{
    api_authenticate(req, delete_authed);
}

void api_register_collections(struct http_router *r)
{
    http_router_add(r, HTTP_M_GET, "/api/collections", handle_list, 0, "collections_list");
    http_router_add(r, HTTP_M_POST, "/api/collections", handle_create, 0, "collections_create");
    http_router_add(r, HTTP_M_GET, "/api/collections/:collection", handle_view, 0,
                    "collections_view");
    http_router_add(r, HTTP_M_PATCH, "/api/collections/:collection", handle_update, 0,
                    "collections_update");
    http_router_add(r, HTTP_M_DELETE, "/api/collections/:collection", handle_delete, 0,
                    "collections_delete");
}
