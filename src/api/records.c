/* /api/collections/{collection}/records: list, view, create, update and
 * delete records, PocketBase's shapes, plus validators beyond PocketBase:
 * every record answer carries an ETag made of (id, version), If-None-Match
 * gives 304, and If-Match makes an update or delete a compare-and-set (412).
 *
 * Rules in this issue: a null rule admits superusers only, "" admits everyone;
 * a rule expression admits superusers only until the rules engine lands (it
 * fails closed, never open). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/form.h"
#include "api/internal.h"
#include "core/alloc.h"
#include "core/id.h"
#include "core/timefmt.h"
#include "core/workpool.h"
#include "domain/filter.h"

#include <sodium.h>

static const struct slice cache_private = SLICE_LIT("private, no-cache");

/* Per-request state of a records call; lives in the request's pool. */
struct rec_call {
    struct http_request *req;
    struct collection *collection; /* retained; released when answered */
    enum collection_rule rule;
    struct slice id;
    int64_t if_match;   /* -1 when absent */
    json_t *input;      /* create/update: decoded body */
    struct buf where;   /* list: compiled filter */
    json_t *params;
    struct buf order;
    long long page, per_page;
    bool skip_total;
    struct slice fields; /* the ?fields= selector, empty for all */
};

static void rec_call_end(struct rec_call *rc)
{
    collection_release(rc->collection);
    rc->collection = NULL;
    json_decref(rc->input);
    rc->input = NULL;
    json_decref(rc->params);
    rc->params = NULL;
    buf_free(&rc->where);
    buf_free(&rc->order);
}

/* ---- validators ---- */

static void etag_of(struct slice id, int64_t version, char out[96])
{
    snprintf(out, 96, "\"%.*s.%" PRId64 "\"", (int)(id.len < 64 ? id.len : 64), id.ptr, version);
}

/* True if an If-None-Match header lists `etag` (or is "*"). */
static bool etag_listed(struct slice header, const char *etag)
{
    size_t n = strlen(etag);
    for (size_t i = 0; i < header.len;) {
        while (i < header.len && (header.ptr[i] == ' ' || header.ptr[i] == ','))
            i++;
        size_t start = i;
        while (i < header.len && header.ptr[i] != ',')
            i++;
        struct slice tag = slice_trim(slice_make(header.ptr + start, i - start));
        if (slice_eq_cstr(tag, "*"))
            return true;
        if (tag.len >= 2 && tag.ptr[0] == 'W' && tag.ptr[1] == '/')
            tag = slice_make(tag.ptr + 2, tag.len - 2);
        if (tag.len == n && memcmp(tag.ptr, etag, n) == 0)
            return true;
    }
    return false;
}

/* Parses If-Match for record `id`: -1 if absent or "*", the version if it
 * names this record, -2 if it names another record or is malformed (then
 * nothing can match and the answer is 412). */
static int64_t parse_if_match(struct http_request *req, struct slice id)
{
    struct slice h = slice_trim(http_request_header(req, "If-Match"));
    if (!h.ptr || slice_eq_cstr(h, "*"))
        return -1;
    if (h.len < 4 || h.ptr[0] != '"' || h.ptr[h.len - 1] != '"')
        return -2;
    struct slice inner = slice_make(h.ptr + 1, h.len - 2);
    const char *dot = memrchr(inner.ptr, '.', inner.len);
    if (!dot || !slice_eq(slice_make(inner.ptr, (size_t)(dot - inner.ptr)), id))
        return -2;
    long long v = slice_to_uint(slice_make(dot + 1, inner.len - (size_t)(dot - inner.ptr) - 1));
    return v < 0 ? -2 : v;
}

static void answer_record(struct http_request *req, int status, struct slice id,
                          const struct store_result *res)
{
    char etag[96];
    etag_of(id, res->version, etag);
    http_response_header(req, SLICE_LIT("ETag"), slice_cstr(etag));
    http_response_header(req, SLICE_LIT("Cache-Control"), cache_private);
    struct slice inm = http_request_header(req, "If-None-Match");
    if (status == 200 && req->method == HTTP_M_GET && inm.ptr && etag_listed(inm, etag)) {
        http_respond(req, 304, SLICE_NULL, SLICE_NULL);
        return;
    }
    api_json_text(req, status, buf_slice(&res->json));
}

/* ---- fields= ---- */

/* Applies PocketBase's `fields` selector ("id,title,body:excerpt(20,true)",
 * "*") to one record object in place. */
static void pick_fields(json_t *record, struct slice spec)
{
    json_t *keep = json_object();
    size_t i = 0;
    while (i <= spec.len) {
        size_t start = i;
        int depth = 0;
        while (i < spec.len && (spec.ptr[i] != ',' || depth)) {
            depth += spec.ptr[i] == '(' ? 1 : spec.ptr[i] == ')' ? -1 : 0;
            i++;
        }
        struct slice item = slice_trim(slice_make(spec.ptr + start, i - start));
        i++;
        if (!item.len)
            continue;
        const char *colon = memchr(item.ptr, ':', item.len);
        struct slice name = colon ? slice_make(item.ptr, (size_t)(colon - item.ptr)) : item;
        if (slice_eq_cstr(name, "*")) {
            json_object_update(keep, record);
            continue;
        }
        char key[128];
        snprintf(key, sizeof(key), "%.*s", SLICE_FMT(name));
        json_t *v = json_object_get(record, key);
        if (!v)
            continue;
        long max_len = -1;
        int ellipsis = 0;
        if (colon && json_is_string(v) &&
            sscanf(colon + 1, "excerpt(%ld,%d)", &max_len, &ellipsis) >= 1 && max_len >= 0) {
            const char *s = json_string_value(v);
            size_t n = strlen(s);
            if ((size_t)max_len < n) {
                /* Cut on a UTF-8 character boundary. */
                size_t cut = (size_t)max_len;
                while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
                    cut--;
                struct buf b = BUF_INIT;
                buf_append(&b, s, cut);
                if (ellipsis || strstr(colon, "true"))
                    buf_append_cstr(&b, "...");
                json_object_set_new(keep, key, json_stringn(b.ptr, b.len));
                buf_free(&b);
                continue;
            }
        }
        json_object_set(keep, key, v);
    }
    json_object_clear(record);
    json_object_update(record, keep);
    json_decref(keep);
}

/* ---- access ---- */

/* Whether auth may perform `rule` on c at all; answers 403 and returns false
 * otherwise. */
static bool rule_admits(struct http_request *req, const struct collection *c,
                        enum collection_rule rule, const struct api_auth *auth)
{
    if (auth->superuser)
        return true;
    const char *expr = c->rules[rule];
    if (expr && !*expr)
        return true;
    api_error(req, 403, "Only superusers can perform this action.", NULL);
    return false;
}

/* ---- list ---- */

static uint64_t fnv1a(struct slice s, uint64_t h)
{
    for (size_t i = 0; i < s.len; i++) {
        h ^= (unsigned char)s.ptr[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void list_done(void *arg, struct store_result *res)
{
    struct rec_call *rc = arg;
    struct http_request *req = rc->req;
    if (res->status != STORE_OK) {
        api_store_error(req, res);
        rec_call_end(rc);
        return;
    }
    struct buf body = BUF_INIT;
    long long total = res->total;
    long long pages = total < 0 ? -1 : (total + rc->per_page - 1) / rc->per_page;
    buf_appendf(&body, "{\"page\":%lld,\"perPage\":%lld,\"totalItems\":%lld,\"totalPages\":%lld,"
                       "\"items\":",
                rc->page, rc->per_page, total, pages);
    if (rc->fields.len) {
        json_t *items = json_loadb(res->json.ptr, res->json.len, 0, NULL);
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it) pick_fields(it, rc->fields);
        char *text = json_dumps(items, JSON_COMPACT);
        buf_append_cstr(&body, text ? text : "[]");
        free(text);
        json_decref(items);
    } else {
        buf_append_slice(&body, buf_slice(&res->json));
    }
    buf_append_char(&body, '}');
    char etag[40];
    snprintf(etag, sizeof(etag), "W/\"%016" PRIx64 "\"",
             fnv1a(buf_slice(&body), 0xcbf29ce484222325ULL));
    http_response_header(req, SLICE_LIT("ETag"), slice_cstr(etag));
    http_response_header(req, SLICE_LIT("Cache-Control"), cache_private);
    struct slice inm = http_request_header(req, "If-None-Match");
    if (inm.ptr && etag_listed(inm, etag + 2))
        http_respond(req, 304, SLICE_NULL, SLICE_NULL);
    else
        api_json_text(req, 200, buf_slice(&body));
    buf_free(&body);
    rec_call_end(rc);
}

static void filter_failed(struct http_request *req, const char *what,
                          const struct filter_error *fe)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "Invalid %s: %s (at %zu).", what, fe->message, fe->position);
    api_error(req, 400, msg, NULL);
}

static void list_authed(struct http_request *req, struct api_auth *auth)
{
    struct rec_call *rc = req->user;
    const struct collection *c = rc->collection;
    if (!rule_admits(req, c, RULE_LIST, auth) ||
        !api_query_int(req, "page", 1, 1, 1LL << 40, &rc->page) ||
        !api_query_int(req, "perPage", 30, 1, 500, &rc->per_page)) {
        rec_call_end(rc);
        return;
    }
    struct slice v;
    rc->skip_total = http_request_query(req, "skipTotal", &v) &&
                     (slice_eq_cstr(v, "1") || slice_eq_cstr(v, "true"));
    struct filter_error fe = {0};
    struct filter_options fopts = {.allow_hidden = auth->superuser};
    rc->params = json_array();
    if (http_request_query(req, "filter", &v) && slice_trim(v).len &&
        filter_compile_opts(c, v, time_now_ms(), &fopts, &rc->where, rc->params, &fe)) {
        filter_failed(req, "filter", &fe);
        rec_call_end(rc);
        return;
    }
    if (http_request_query(req, "sort", &v) && slice_trim(v).len &&
        sort_compile_opts(c, v, &fopts, &rc->order, &fe)) {
        filter_failed(req, "sort", &fe);
        rec_call_end(rc);
        return;
    }
    if (http_request_query(req, "fields", &v))
        rc->fields = v;
    struct store_list_query q = {
        .collection = c,
        .where_sql = rc->where.len ? rc->where.ptr : NULL,
        .params = rc->params,
        .order_sql = rc->order.len ? rc->order.ptr : NULL,
        .page = rc->page,
        .per_page = rc->per_page,
        .skip_total = rc->skip_total,
    };
    api_ctx.store->ops->record_list(api_ctx.store, &q, req->loop, list_done, rc);
}

/* ---- view ---- */

static void view_done(void *arg, struct store_result *res)
{
    struct rec_call *rc = arg;
    if (res->status != STORE_OK) {
        api_store_error(rc->req, res);
    } else if (rc->fields.len) {
        json_t *rec = json_loadb(res->json.ptr, res->json.len, 0, NULL);
        pick_fields(rec, rc->fields);
        char *text = json_dumps(rec, JSON_COMPACT);
        buf_reset(&res->json);
        buf_append_cstr(&res->json, text);
        free(text);
        json_decref(rec);
        answer_record(rc->req, 200, rc->id, res);
    } else {
        answer_record(rc->req, 200, rc->id, res);
    }
    rec_call_end(rc);
}

static void view_authed(struct http_request *req, struct api_auth *auth)
{
    struct rec_call *rc = req->user;
    if (!rule_admits(req, rc->collection, RULE_VIEW, auth)) {
        rec_call_end(rc);
        return;
    }
    struct slice v;
    if (http_request_query(req, "fields", &v))
        rc->fields = v;
    api_ctx.store->ops->record_get(api_ctx.store, rc->collection, rc->id, false, req->loop,
                                   view_done, rc);
}

/* ---- create and update ---- */

struct merge_arg {
    struct collection *collection;
    json_t *input;
    int64_t now_ms;
};

/* Runs on the store's writer, inside the write's transaction. */
static int merge_record(void *arg, json_t *prev, json_t **out, json_t **errors)
{
    struct merge_arg *m = arg;
    return record_validate(m->collection, m->input, prev, m->now_ms, out, errors);
}

static void write_done(void *arg, struct store_result *res)
{
    struct rec_call *rc = arg;
    if (res->status == STORE_OK && rc->collection->type == COLLECTION_AUTH)
        api_auth_changed();
    if (res->status == STORE_OK) {
        json_t *rec = json_loadb(res->json.ptr, res->json.len, 0, NULL);
        const char *id = json_string_value(json_object_get(rec, "id"));
        answer_record(rc->req, 200, slice_cstr(id ? id : ""), res);
        json_decref(rec);
    } else if (res->status == STORE_INVALID || res->status == STORE_UNIQUE) {
        api_error(rc->req, 400,
                  rc->req->method == HTTP_M_POST ? "Failed to create record."
                                                 : "Failed to update record.",
                  res->errors ? json_incref(res->errors) : NULL);
    } else {
        api_store_error(rc->req, res);
    }
    rec_call_end(rc);
}

static void submit_write(struct rec_call *rc)
{
    struct http_request *req = rc->req;
    struct merge_arg *m = arena_zalloc(&req->pool, sizeof(*m));
    m->collection = rc->collection;
    m->input = rc->input;
    m->now_ms = time_now_ms();
    bool create = req->method == HTTP_M_POST;
    api_ctx.store->ops->record_write(api_ctx.store, rc->collection, rc->id, create,
                                     rc->if_match, NULL, merge_record, m, req->loop, write_done, rc);
}

/* Password fields arrive as plain text and leave as Argon2id hashes; hashing
 * runs on the work pool. */
struct hashing {
    struct rec_call *rc;
    const char *name;
    char *plain;
    char hash[AUTH_HASH_MAX];
    int rc_hash;
};

static void hash_work(void *arg)
{
    struct hashing *h = arg;
    h->rc_hash = auth_password_hash(slice_cstr(h->plain), h->hash);
    sodium_memzero(h->plain, strlen(h->plain));
}

static void hash_done(void *arg)
{
    struct hashing *h = arg;
    struct rec_call *rc = h->rc;
    free(h->plain);
    if (h->rc_hash) {
        api_error(rc->req, 500, "Something went wrong while processing your request.", NULL);
        rec_call_end(rc);
        return;
    }
    json_object_set_new(rc->input, h->name, json_string(h->hash));
    submit_write(rc);
}

static void write_authed(struct http_request *req, struct api_auth *auth)
{
    struct rec_call *rc = req->user;
    const struct collection *c = rc->collection;
    if (!rule_admits(req, c, rc->rule, auth)) {
        rec_call_end(rc);
        return;
    }
    struct form_error fe = {0};
    rc->input = form_decode(http_request_header(req, "Content-Type"), req->body, &fe);
    if (!rc->input) {
        api_error(req, 400, fe.message, NULL);
        rec_call_end(rc);
        return;
    }
    /* The one password field of an auth collection: checked in plain text,
     * confirmed, then hashed off the loop before the write. */
    const struct field *pw = NULL;
    for (size_t i = 0; i < c->nfields; i++)
        if (c->fields[i].type == FIELD_PASSWORD)
            pw = &c->fields[i];
    json_t *plain = pw ? json_object_get(rc->input, pw->name) : NULL;
    if (!plain || (json_is_string(plain) && !*json_string_value(plain))) {
        if (plain)
            json_object_del(rc->input, pw->name);
        submit_write(rc);
        return;
    }
    json_t *errors = json_object();
    json_t *err = json_is_string(plain)
                      ? record_password_check(pw, slice_cstr(json_string_value(plain)))
                      : json_pack("{s:s,s:s}", "code", "validation_invalid_value", "message",
                                  "Invalid value.");
    if (err)
        json_object_set_new(errors, pw->name, err);
    json_t *confirm = json_object_get(rc->input, "passwordConfirm");
    if (!err && (!json_is_string(confirm) ||
                 strcmp(json_string_value(confirm), json_string_value(plain)) != 0))
        json_object_set_new(errors, "passwordConfirm",
                            json_pack("{s:s,s:s}", "code", "validation_values_mismatch",
                                      "message", "Values don't match."));
    if (json_object_size(errors)) {
        api_error(req, 400,
                  req->method == HTTP_M_POST ? "Failed to create record."
                                             : "Failed to update record.",
                  errors);
        rec_call_end(rc);
        return;
    }
    json_decref(errors);
    json_object_del(rc->input, "passwordConfirm");
    struct hashing *h = arena_zalloc(&req->pool, sizeof(*h));
    h->rc = rc;
    h->name = pw->name;
    h->plain = xstrdup(json_string_value(plain));
    if (workpool_submit(hash_work, hash_done, h, http_loop_post_any, req->loop)) {
        free(h->plain);
        api_error(req, 503, "The server is busy, try again later.", NULL);
        rec_call_end(rc);
    }
}

/* ---- delete ---- */

static void delete_done(void *arg, struct store_result *res)
{
    struct rec_call *rc = arg;
    if (res->status == STORE_OK && rc->collection->type == COLLECTION_AUTH)
        api_auth_changed();
    if (res->status == STORE_OK)
        http_respond(rc->req, 204, SLICE_NULL, SLICE_NULL);
    else
        api_store_error(rc->req, res);
    rec_call_end(rc);
}

static void delete_authed(struct http_request *req, struct api_auth *auth)
{
    struct rec_call *rc = req->user;
    if (!rule_admits(req, rc->collection, RULE_DELETE, auth)) {
        rec_call_end(rc);
        return;
    }
    api_ctx.store->ops->record_delete(api_ctx.store, rc->collection, rc->id, rc->if_match,
                                      NULL, req->loop, delete_done, rc);
}

/* ---- entry points ---- */

/* Sets up the call for the collection in the path; answers 404 and returns
 * NULL if there is no such collection. */
static struct rec_call *begin(struct http_request *req, enum collection_rule rule)
{
    struct schema *s = schema_current();
    struct collection *c = schema_find(s, req->params[0]);
    if (c)
        collection_retain(c);
    schema_release(s);
    if (!c) {
        api_error(req, 404, "Missing collection context.", NULL);
        return NULL;
    }
    struct rec_call *rc = arena_zalloc(&req->pool, sizeof(*rc));
    rc->req = req;
    rc->collection = c;
    rc->rule = rule;
    rc->if_match = -1;
    if (req->nparams > 1) {
        rc->id = req->params[1];
        rc->if_match = parse_if_match(req, rc->id);
        if (rc->if_match == -2) {
            api_error(req, 412, "The record was changed since the version given in If-Match.",
                      NULL);
            rec_call_end(rc);
            return NULL;
        }
    }
    req->user = rc;
    return rc;
}

static void handle_list(struct http_request *req)
{
    if (begin(req, RULE_LIST))
        api_authenticate(req, list_authed);
}

static void handle_view(struct http_request *req)
{
    if (begin(req, RULE_VIEW))
        api_authenticate(req, view_authed);
}

static void handle_create(struct http_request *req)
{
    if (begin(req, RULE_CREATE))
        api_authenticate(req, write_authed);
}

static void handle_update(struct http_request *req)
{
    if (begin(req, RULE_UPDATE))
        api_authenticate(req, write_authed);
}

static void handle_delete(struct http_request *req)
{
    if (begin(req, RULE_DELETE))
        api_authenticate(req, delete_authed);
}

void api_register_records(struct http_router *r)
{
    http_router_add(r, HTTP_M_GET, "/api/collections/:collection/records", handle_list, 0,
                    "records_list");
    http_router_add(r, HTTP_M_POST, "/api/collections/:collection/records", handle_create, 0,
                    "records_create");
    http_router_add(r, HTTP_M_GET, "/api/collections/:collection/records/:id", handle_view, 0,
                    "records_view");
    http_router_add(r, HTTP_M_PATCH, "/api/collections/:collection/records/:id", handle_update,
                    0, "records_update");
    http_router_add(r, HTTP_M_DELETE, "/api/collections/:collection/records/:id",
                    handle_delete, 0, "records_delete");
}
