/* /api/collections/{collection}/records: list, view, create, update and
 * delete records, PocketBase's shapes, plus validators beyond PocketBase:
 * every record answer carries an ETag made of (id, version), If-None-Match
 * gives 304, and If-Match makes an update or delete a compare-and-set (412).
 *
 * API rules as PocketBase applies them (apis/record_crud.go): superusers
 * pass every rule; otherwise a null rule is 403, "" admits everyone, and an
 * expression is compiled against the request: a list rule joins the user's
 * filter (rows it refuses are simply absent), a view rule hides the record
 * (404), a create rule is checked on the row as the write leaves it (400),
 * update and delete rules on the stored row (404), the last three inside the
 * write's transaction (store_guard) so that no concurrent change slips
 * between the check and the write. An auth collection's manageRule gives
 * its callers a superuser's hand over email, verified and password: on
 * update against the stored row, on create against the new row (with
 * verified read as false), inside the create's guard too.
 *
 * Answers tell caches what they may keep and writes what they made stale
 * (cache_fields, docs/caching.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/files.h"
#include "api/form.h"
#include "api/internal.h"
#include "core/alloc.h"
#include "core/id.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "core/workpool.h"
#include "domain/filter.h"

#include <sodium.h>

static const struct slice cache_private = SLICE_LIT("private, no-cache");
static const struct slice cache_public = SLICE_LIT("public, no-cache");

/* Per-request state of a records call; malloc'd, freed by rec_call_end. */
struct rec_call {
    struct http_request *req;
    struct collection *collection; /* retained; released when answered */
    enum collection_rule rule;
    struct slice id;
    int64_t if_match; /* -1 when absent */
    json_t *input;    /* create/update: decoded body */
    struct buf where; /* list: compiled filter */
    json_t *params;
    struct buf order;
    long long page, per_page;
    bool skip_total;
    struct slice fields; /* the ?fields= selector, empty for all */
    struct slice expand; /* the ?expand= list, empty for none */
    json_t *items;       /* list/view with expand: the records being expanded */
    json_t *managed;     /* ids (keys) of items whose manageRule admits the caller, or NULL */
    void (*items_ready)(struct rec_call *rc);
    long long total;
    int64_t version;
    struct api_auth *auth;
    bool guarded; /* write/delete: where + params hold the rule */
    bool manager; /* write: superuser, or the auth record's manageRule admits the caller */
    /* create: where/params end with the manageRule's check (guard_manage);
     * manage_at/manage_nparams are their lengths before it */
    bool manage_guard;
    size_t manage_at, manage_nparams;
    bool install;   /* creating the first superuser with the install token (claimed) */
    char *old_hash; /* own password change: the hash oldPassword matched */
    /* create/update: the body streams in while the caller is authenticated;
     * the write goes on when both are done (pending reaches 0). */
    int pending;
    struct buf body;             /* a non-multipart body, buffered */
    struct files_upload *upload; /* a multipart body, files streamed to disk */
    int body_status;             /* a failed body: the answer's status */
    const char *body_message;    /* ... and message */
    bool uploaded;               /* the upload's files are committed */
    char record_id[64];          /* where the files went */
    struct merge_arg *merge;     /* the write's, in the request's pool */
    bool missing;                /* no such collection: 404 once the body is read */
};

static void rec_call_end(struct rec_call *rc)
{
    collection_release(rc->collection);
    json_decref(rc->input);
    json_decref(rc->managed);
    if (rc->install)
        auth_install_release(false);
    json_decref(rc->params);
    buf_free(&rc->where);
    buf_free(&rc->order);
    json_decref(rc->items);
    if (rc->old_hash)
        sodium_memzero(rc->old_hash, strlen(rc->old_hash));
    free(rc->old_hash);
    buf_free(&rc->body);
    files_upload_free(rc->upload);
    free(rc);
}

/* ---- validators ---- */

static uint64_t fnv1a(struct slice s, uint64_t h)
{
    for (size_t i = 0; i < s.len; i++) {
        h ^= (unsigned char)s.ptr[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* A record's ETag: "<id>.<version>", and for a view that expands relations
 * "<id>.<version>-<hash of the body>", so that a change of an expanded
 * record is a new representation too (a revalidation must not keep it). */
static void etag_of(struct slice id, int64_t version, struct slice expanded_body, char out[128])
{
    int n =
        snprintf(out, 128, "\"%.*s.%" PRId64, (int)(id.len < 64 ? id.len : 64), id.ptr, version);
    if (expanded_body.len)
        n += snprintf(out + n, (size_t)(128 - n), "-%016" PRIx64,
                      fnv1a(expanded_body, 0xcbf29ce484222325ULL));
    snprintf(out + n, (size_t)(128 - n), "\"");
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
    struct slice version = slice_make(dot + 1, inner.len - (size_t)(dot - inner.ptr) - 1);
    /* an expanded answer's ETag names the same version: the write's
     * compare-and-set is on the record alone */
    const char *dash = memchr(version.ptr, '-', version.len);
    if (dash)
        version.len = (size_t)(dash - version.ptr);
    long long v = slice_to_uint(version);
    return v < 0 ? -2 : v;
}

/* ---- shared caches ---- */

/* Whether id may go into a Cache-Tag as it is: the field is a
 * comma-separated list, and a tag must name one record only. */
static bool tag_safe(struct slice id)
{
    if (!id.len || id.len > 64)
        return false;
    for (size_t i = 0; i < id.len; i++) {
        char ch = id.ptr[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static void append_tag(struct buf *tags, const char *cid, struct slice suffix)
{
    if (tags->len)
        buf_append_cstr(tags, ", ");
    buf_append_cstr(tags, cid);
    buf_append_slice(tags, suffix);
}

void api_collection_tags(const char *cid, struct buf *tags)
{
    append_tag(tags, cid, SLICE_NULL);
    append_tag(tags, cid, SLICE_LIT("/*"));
}

/* The record's own view: "<cid>/<id>", for an id a tag can carry. */
static void append_record_tag(struct buf *tags, const char *cid, struct slice id)
{
    if (tag_safe(id)) {
        append_tag(tags, cid, SLICE_LIT("/"));
        buf_append_slice(tags, id);
    }
}

/* Appends the tags a write of record id of collection cid invalidates: the
 * collection's lists and anything expanding it ("<cid>"), and the record's
 * own view. */
static void write_tags(const char *cid, struct slice id, struct buf *tags)
{
    append_tag(tags, cid, SLICE_NULL);
    append_record_tag(tags, cid, id);
}

/* A delete's cascade: the records it deleted or updated, one collection
 * after another as the store lists them. Each collection is named once; past
 * 15 of its records, or once the field holds 4 KiB (it must fit the
 * gateway's header limit however wide the cascade), a collection is tagged
 * whole instead of record by record. */
struct cascade_tags {
    struct buf *tags;
    char cid[64];
    size_t n;
    bool whole;
};

enum { CASCADE_TAGS_PER_COLLECTION = 16, CASCADE_TAG_BYTES = 4096 };

static void add_cascaded(const char *cid, const char *rid, unsigned flags, void *arg)
{
    (void)flags;
    struct cascade_tags *ct = arg;
    if (strcmp(ct->cid, cid) != 0) {
        snprintf(ct->cid, sizeof(ct->cid), "%s", cid);
        ct->n = 0;
        ct->whole = false;
        append_tag(ct->tags, cid, SLICE_NULL);
    }
    if (ct->whole)
        return;
    if (++ct->n < CASCADE_TAGS_PER_COLLECTION && ct->tags->len < CASCADE_TAG_BYTES) {
        append_record_tag(ct->tags, cid, slice_cstr(rid));
    } else {
        append_tag(ct->tags, cid, SLICE_LIT("/*"));
        ct->whole = true;
    }
}

/* The caching fields of an answer (docs/caching.md). A GET (or HEAD) view or list
 * whose answer cannot depend on its caller is public: no Authorization
 * (superusers may filter on hidden fields, users see their own email and
 * what rules give them), its rule is ""
 * (nothing of the request reaches the query), not an auth collection, and
 * every expanded collection public the same way. Browsers revalidate it
 * (no-cache, with the ETag); the gateway keeps it records_shared_max_age
 * seconds (its targeted field, RFC 9213) under tags that writes through it
 * purge, and Vary: Authorization keeps a signed-in request from being served
 * the stored anonymous answer. Anything else is private. A successful write
 * names the tags it makes stale, a delete's those of its cascade too
 * (deleted: its result). */
static void cache_fields(const struct rec_call *rc, int status, const struct store_result *deleted)
{
    struct http_request *req = rc->req;
    const struct collection *c = rc->collection;
    int max_age = api_ctx.cfg->records_shared_max_age;
    bool list = req->nparams < 2;
    const char *rule = c->rules[list ? RULE_LIST : RULE_VIEW];
    struct buf tags = BUF_INIT;
    if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD) {
        http_response_header(req, SLICE_LIT("Cache-Control"), cache_private);
        if (max_age > 0 && status < 300) {
            write_tags(c->id, rc->id, &tags);
            if (deleted) {
                struct cascade_tags ct = {.tags = &tags};
                store_cascaded_foreach(deleted, add_cascaded, &ct);
            }
            http_response_header(req, SLICE_LIT("Cache-Tag"), buf_slice(&tags));
        }
        buf_free(&tags);
        return;
    }
    bool shared = max_age > 0 && !http_request_header(req, "Authorization").ptr &&
                  c->type != COLLECTION_AUTH && rule && !*rule && (list || tag_safe(rc->id));
    if (shared) {
        if (list) {
            append_tag(&tags, c->id, SLICE_NULL);
        } else {
            append_record_tag(&tags, c->id, rc->id);
            append_tag(&tags, c->id, SLICE_LIT("/*"));
        }
        shared = !rc->expand.len || api_expand_public(&req->pool, c, rc->expand, &tags);
    }
    if (shared) {
        char fresh[32];
        snprintf(fresh, sizeof(fresh), "max-age=%d", max_age);
        http_response_header(req, SLICE_LIT("Cache-Control"), cache_public);
        http_response_header(req, SLICE_LIT("Cruder-Cache-Control"), slice_cstr(fresh));
        http_response_header(req, SLICE_LIT("Cache-Tag"), buf_slice(&tags));
        http_response_header(req, SLICE_LIT("Vary"), SLICE_LIT("Authorization"));
    } else {
        http_response_header(req, SLICE_LIT("Cache-Control"), cache_private);
    }
    buf_free(&tags);
}

static void answer_record(const struct rec_call *rc, int status, const struct store_result *res)
{
    struct http_request *req = rc->req;
    char etag[128];
    /* a write's answer names the version written, expanded or not */
    bool expanded = rc->expand.len && (req->method == HTTP_M_GET || req->method == HTTP_M_HEAD);
    etag_of(rc->id, res->version, expanded ? buf_slice(&res->json) : SLICE_NULL, etag);
    http_response_header(req, SLICE_LIT("ETag"), slice_cstr(etag));
    cache_fields(rc, status, NULL);
    struct slice inm = http_request_header(req, "If-None-Match");
    if (status == 200 && req->method == HTTP_M_GET && inm.ptr && etag_listed(inm, etag)) {
        http_respond(req, 304, SLICE_NULL, SLICE_NULL);
        return;
    }
    api_json_text(req, status, buf_slice(&res->json));
}

/* ---- fields= ---- */

static void pick_fields(json_t *record, struct slice spec);

/* Applies the selectors below `head` (subs: head -> "a.b,c" text) to what
 * keep holds there: an object, or each object of an array. */
static void pick_nested(json_t *keep, json_t *subs)
{
    const char *head;
    json_t *sub;
    json_object_foreach(subs, head, sub)
    {
        json_t *v = json_object_get(keep, head);
        struct slice spec = slice_make(json_string_value(sub), json_string_length(sub));
        if (json_is_object(v))
            pick_fields(v, spec);
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) if (json_is_object(x)) pick_fields(x, spec);
    }
}

/* Applies PocketBase's `fields` selector ("id,title,body:excerpt(20,true)",
 * "*", "expand.author.name") to one record object in place; a dotted item
 * selects inside an object (or each object of an array) of the record. */
static void pick_fields(json_t *record, struct slice spec)
{
    json_t *keep = json_object();
    json_t *subs = json_object();
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
        const char *dot = memchr(name.ptr, '.', name.len);
        if (dot && dot > name.ptr && (size_t)(dot - name.ptr) < 128) {
            char head[128];
            snprintf(head, sizeof(head), "%.*s", (int)(dot - name.ptr), name.ptr);
            json_t *v = json_object_get(record, head);
            if (!v)
                continue;
            json_object_set(keep, head, v);
            struct slice rest = slice_make(dot + 1, item.len - (size_t)(dot + 1 - item.ptr));
            json_t *prev = json_object_get(subs, head);
            struct buf b = BUF_INIT;
            if (prev) {
                buf_append_cstr(&b, json_string_value(prev));
                buf_append_char(&b, ',');
            }
            buf_append_slice(&b, rest);
            json_t *joined = json_stringn(b.ptr, b.len);
            if (joined)
                json_object_set_new(subs, head, joined);
            buf_free(&b);
            continue;
        }
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
    pick_nested(keep, subs);
    json_decref(subs);
    json_object_clear(record);
    json_object_update(record, keep);
    json_decref(keep);
}

/* ---- access ---- */

/* Whether auth may attempt `rule` on c at all; answers 403 and returns false
 * for a null rule and a caller who is not a superuser. */
static bool rule_admits(struct http_request *req, const struct collection *c,
                        enum collection_rule rule, const struct api_auth *auth)
{
    if (auth->superuser || c->rules[rule])
        return true;
    api_error(req, 403, "Only superusers can perform this action.", NULL);
    return false;
}

/* The rule expression that restricts this call, NULL if none does. */
static const char *rule_expr(const struct rec_call *rc, enum collection_rule rule)
{
    const char *expr = rc->collection->rules[rule];
    return rc->auth->superuser || !expr || !*expr ? NULL : expr;
}

/* A stored rule that does not compile: logged, and refused (fail closed). */
static void rule_failed(struct rec_call *rc, const struct filter_error *fe)
{
    log_warn("rule of %s does not compile: %s (at %zu)", rc->collection->name, fe->message,
             fe->position);
    api_error(rc->req, 403, "The rule of this action cannot be evaluated.", NULL);
}

/* Compiles the call's rule into rc->where/params (appending); answers and
 * returns false if it cannot compile. */

static bool compile_rule(struct rec_call *rc, const char *expr, json_t *body)
{
    struct filter_error fe = {0};
    if (!rc->params)
        rc->params = json_array();
    buf_append_char(&rc->where, '(');
    if (api_rule_compile(rc->req, rc->auth, rc->collection, expr, body, "default", &rc->where,
                         rc->params, &fe)) {
        rule_failed(rc, &fe);
        return false;
    }
    buf_append_char(&rc->where, ')');
    return true;
}

/* Whether answers must be rewritten for the caller rather than passed on as
 * the store rendered them. */
static bool needs_rewrite(const struct rec_call *rc)
{
    return rc->fields.len || rc->expand.len ||
           (rc->collection->type == COLLECTION_AUTH && !rc->auth->superuser);
}

/* Redacts and applies fields= to one record, in place. */
static void shape_record(const struct rec_call *rc, json_t *record)
{
    const char *id = json_string_value(json_object_get(record, "id"));
    json_t *email = json_incref(json_object_get(record, "email"));
    api_record_redact(rc->collection, rc->auth, record);
    /* a manager sees the emails of the records it manages */
    if (email && id && rc->managed && json_object_get(rc->managed, id))
        json_object_set(record, "email", email);
    json_decref(email);
    if (rc->fields.len)
        pick_fields(record, rc->fields);
}

/* Rewrites res->json (one record object) for the caller. */
static void shape_result(const struct rec_call *rc, struct store_result *res)
{
    if (!needs_rewrite(rc))
        return;
    json_t *rec = json_loadb(res->json.ptr, res->json.len, 0, NULL);
    if (!rec)
        return;
    shape_record(rc, rec);
    char *text = json_dumps(rec, JSON_COMPACT);
    buf_reset(&res->json);
    buf_append_cstr(&res->json, text ? text : "{}");
    free(text);
    json_decref(rec);
}

/* ---- manageRule: who sees hidden emails ---- */

/* The items whose email the caller could see only as their manager. */
static json_t *unmanaged_hidden(const struct rec_call *rc)
{
    const struct collection *c = rc->collection;
    const char *manage = c->rules[RULE_MANAGE];
    if (c->type != COLLECTION_AUTH || rc->auth->superuser || !manage || !*manage)
        return NULL;
    json_t *ids = NULL;
    size_t i;
    json_t *it;
    json_array_foreach(rc->items, i, it)
    {
        json_t *id = json_object_get(it, "id");
        if (!json_is_string(id) || !json_object_get(it, "email") ||
            json_is_true(json_object_get(it, "emailVisibility")) ||
            (rc->managed && json_object_get(rc->managed, json_string_value(id))) ||
            (strcmp(json_string_value(id), rc->auth->record_id) == 0 &&
             strcmp(c->id, rc->auth->collection_id) == 0))
            continue;
        if (!ids)
            ids = json_array();
        json_array_append(ids, id);
    }
    return ids;
}

static void managed_listed(void *arg, struct store_result *res)
{
    struct rec_call *rc = arg;
    json_t *rows =
        res->status == STORE_OK ? json_loadb(res->json.ptr, res->json.len, 0, NULL) : NULL;
    if (!rc->managed)
        rc->managed = json_object();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        if (id)
            json_object_set_new(rc->managed, id, json_true());
    }
    json_decref(rows);
    rc->items_ready(rc);
}

/* Finds which of rc->items the caller manages (PocketBase lets a manager
 * see hidden emails), then runs ready(rc). One store read, and only when an
 * item's email would otherwise be hidden. A manageRule that cannot compile
 * or a failed read manages nothing. */
static void check_managed(struct rec_call *rc, void (*ready)(struct rec_call *rc))
{
    json_t *ids = unmanaged_hidden(rc);
    if (!ids) {
        ready(rc);
        return;
    }
    rc->items_ready = ready;
    struct buf where = BUF_INIT;
    json_t *params = json_array();
    buf_append_sql_ident(&where, rc->collection->name);
    buf_append_cstr(&where, ".\"id\" IN (");
    for (size_t i = 0; i < json_array_size(ids); i++)
        buf_append_cstr(&where, i ? ",?" : "?");
    buf_append_cstr(&where, ") AND (");
    json_array_extend(params, ids);
    struct filter_error fe;
    if (api_rule_compile(rc->req, rc->auth, rc->collection, rc->collection->rules[RULE_MANAGE],
                         NULL, "default", &where, params, &fe)) {
        buf_free(&where);
        json_decref(params);
        json_decref(ids);
        ready(rc);
        return;
    }
    buf_append_char(&where, ')');
    struct store_list_query q = {
        .collection = rc->collection,
        .where_sql = where.ptr,
        .params = params,
        .page = 1,
        .per_page = (int64_t)json_array_size(ids),
        .skip_total = true,
    };
    api_ctx.store->ops->record_list(api_ctx.store, &q, rc->req->loop, managed_listed, rc);
    buf_free(&where);
    json_decref(params);
    json_decref(ids);
}

/* ---- list ---- */

/* Answers the page; items is the records as JSON (NULL: res_json as is). */
static void list_answer(struct rec_call *rc, json_t *items, struct slice res_json)
{
    struct http_request *req = rc->req;
    struct buf body = BUF_INIT;
    long long total = rc->total;
    long long pages = total < 0 ? -1 : (total + rc->per_page - 1) / rc->per_page;
    buf_appendf(&body,
                "{\"page\":%lld,\"perPage\":%lld,\"totalItems\":%lld,\"totalPages\":%lld,"
                "\"items\":",
                rc->page, rc->per_page, total, pages);
    if (items) {
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it) shape_record(rc, it);
        char *text = json_dumps(items, JSON_COMPACT);
        buf_append_cstr(&body, text ? text : "[]");
        free(text);
    } else {
        buf_append_slice(&body, res_json);
    }
    buf_append_char(&body, '}');
    char etag[40];
    snprintf(etag, sizeof(etag), "W/\"%016" PRIx64 "\"",
             fnv1a(buf_slice(&body), 0xcbf29ce484222325ULL));
    http_response_header(req, SLICE_LIT("ETag"), slice_cstr(etag));
    cache_fields(rc, 200, NULL);
    struct slice inm = http_request_header(req, "If-None-Match");
    if (inm.ptr && etag_listed(inm, etag + 2))
        http_respond(req, 304, SLICE_NULL, SLICE_NULL);
    else
        api_json_text(req, 200, buf_slice(&body));
    buf_free(&body);
    rec_call_end(rc);
}

static void list_expanded(void *arg)
{
    struct rec_call *rc = arg;
    list_answer(rc, rc->items, SLICE_NULL);
}

static void list_items_ready(struct rec_call *rc)
{
    if (rc->expand.len && json_array_size(rc->items))
        api_expand(rc->req, rc->auth, rc->collection, rc->items, rc->expand, list_expanded, rc);
    else
        list_answer(rc, rc->items, SLICE_NULL);
}

static void list_done(void *arg, struct store_result *res)
{
    struct rec_call *rc = arg;
    if (res->status != STORE_OK) {
        api_store_error(rc->req, res);
        rec_call_end(rc);
        return;
    }
    rc->total = res->total;
    if (!rc->expand.len && !needs_rewrite(rc)) {
        list_answer(rc, NULL, buf_slice(&res->json));
        return;
    }
    rc->items = json_loadb(res->json.ptr, res->json.len, 0, NULL);
    if (!rc->items)
        rc->items = json_array();
    check_managed(rc, list_items_ready);
}

static void filter_failed(struct http_request *req, const char *what, const struct filter_error *fe)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "Invalid %s: %s (at %zu).", what, fe->message, fe->position);
    api_error(req, 400, msg, NULL);
}

static void list_authed(struct http_request *req, struct api_auth *auth)
{
    struct rec_call *rc = req->user;
    const struct collection *c = rc->collection;
    rc->auth = auth;
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
    if (!api_filter_admits(req, auth)) {
        rec_call_end(rc);
        return;
    }
    struct slice filter = SLICE_NULL;
    if (http_request_query(req, "filter", &v))
        filter = slice_trim(v);
    rc->params = json_array();
    if (api_filter_compile(req, auth, c, rule_expr(rc, RULE_LIST), filter, &rc->where, rc->params,
                           &fe)) {
        if (fe.in_rule)
            rule_failed(rc, &fe);
        else
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
    if (http_request_query(req, "expand", &v))
        rc->expand = slice_trim(v);
    struct store_list_query q = {
        .collection = c,
        .where_sql = rc->where.len ? rc->where.ptr : NULL,
        .params = rc->params,
        .order_sql = rc->order.len ? rc->order.ptr : NULL,
        .page = rc->page,
        .per_page = rc->per_page,
        .skip_total = rc->skip_total,
        .fields = api_fields_for(rc->auth),
    };
    api_ctx.store->ops->record_list(api_ctx.store, &q, req->loop, list_done, rc);
}

/* ---- view ---- */

static void view_expanded(void *arg)
{
    struct rec_call *rc = arg;
    json_t *rec = json_array_get(rc->items, 0);
    shape_record(rc, rec);
    char *text = json_dumps(rec, JSON_COMPACT);
    struct store_result res = {.status = STORE_OK, .version = rc->version};
    buf_append_cstr(&res.json, text ? text : "{}");
    free(text);
    answer_record(rc, 200, &res);
    buf_free(&res.json);
    rec_call_end(rc);
}

static void view_items_ready(struct rec_call *rc)
{
    if (rc->expand.len)
        api_expand(rc->req, rc->auth, rc->collection, rc->items, rc->expand, view_expanded, rc);
    else
        view_expanded(rc);
}

static void view_done(void *arg, struct store_result *res)
{
    struct rec_call *rc = arg;
    json_t *rec;
    bool manageable = rc->collection->type == COLLECTION_AUTH && !rc->auth->superuser &&
                      rc->collection->rules[RULE_MANAGE] && *rc->collection->rules[RULE_MANAGE];
    if (res->status != STORE_OK) {
        api_store_error(rc->req, res);
    } else if ((rc->expand.len || manageable) &&
               (rec = json_loadb(res->json.ptr, res->json.len, 0, NULL))) {
        rc->items = json_pack("[o]", rec);
        rc->version = res->version;
        check_managed(rc, view_items_ready);
        return;
    } else {
        shape_result(rc, res);
        answer_record(rc, 200, res);
    }
    rec_call_end(rc);
}

static void view_get(struct rec_call *rc)
{
    api_ctx.store->ops->record_get(api_ctx.store, rc->collection, rc->id, api_fields_for(rc->auth),
                                   rc->req->loop, view_done, rc);
}

/* The view rule's read: the record it admits, or none (404). The store
 * gives a list the version of its last row, so this one-row read under the
 * rule is the only hop, ETag included. */
static void view_checked(void *arg, struct store_result *res)
{
    struct rec_call *rc = arg;
    if (res->status != STORE_OK) {
        api_store_error(rc->req, res);
        rec_call_end(rc);
        return;
    }
    /* "[{...}]": the record's object is the array's only element. */
    if (res->json.len <= 2) {
        api_error(rc->req, 404, "The requested resource wasn't found.", NULL);
        rec_call_end(rc);
        return;
    }
    struct store_result one = {.status = STORE_OK, .version = res->version};
    buf_append(&one.json, res->json.ptr + 1, res->json.len - 2);
    view_done(rc, &one);
    buf_free(&one.json);
}

/* Whether id can be bound as text at all (valid UTF-8); no record has
 * another. */
static bool id_is_text(struct slice id)
{
    json_t *v = json_stringn(id.ptr, id.len);
    json_decref(v);
    return v != NULL;
}

/* Appends `"<table>"."id" = ? AND ` binding id; false (nothing appended) if
 * the id is not even text, so no record can have it. */
static bool where_id(struct rec_call *rc)
{
    json_t *id = json_stringn(rc->id.ptr, rc->id.len);
    if (!id)
        return false;
    buf_append_sql_ident(&rc->where, rc->collection->name);
    buf_append_cstr(&rc->where, ".\"id\" = ? AND ");
    json_array_append_new(rc->params, id);
    return true;
}

static void view_authed(struct http_request *req, struct api_auth *auth)
{
    struct rec_call *rc = req->user;
    rc->auth = auth;
    if (!rule_admits(req, rc->collection, RULE_VIEW, auth)) {
        rec_call_end(rc);
        return;
    }
    struct slice v;
    if (http_request_query(req, "fields", &v))
        rc->fields = v;
    if (http_request_query(req, "expand", &v))
        rc->expand = slice_trim(v);
    const char *rule = rule_expr(rc, RULE_VIEW);
    if (!rule) {
        view_get(rc);
        return;
    }
    rc->params = json_array();
    if (!where_id(rc)) {
        api_error(req, 404, "The requested resource wasn't found.", NULL);
        rec_call_end(rc);
        return;
    }
    struct filter_error fe = {0};
    buf_append_char(&rc->where, '(');
    if (api_filter_compile(req, auth, rc->collection, rule, SLICE_NULL, &rc->where, rc->params,
                           &fe)) {
        rule_failed(rc, &fe);
        rec_call_end(rc);
        return;
    }
    buf_append_char(&rc->where, ')');
    struct store_list_query q = {
        .collection = rc->collection,
        .where_sql = rc->where.ptr,
        .params = rc->params,
        .page = 1,
        .per_page = 1,
        .skip_total = true,
        .fields = api_fields_for(auth),
    };
    api_ctx.store->ops->record_list(api_ctx.store, &q, req->loop, view_checked, rc);
}

/* ---- create and update ---- */

struct merge_arg {
    struct collection *collection;
    json_t *input;
    int64_t now_ms;
    const char *old_hash; /* own password change: the stored hash must still be this */
    const char *password_field;
    json_t *uploaded; /* stored names of this request's files (borrowed), or NULL */
    json_t *dropped;  /* set by the merge: stored files the write leaves unreferenced */
    bool manager;     /* superuser or manageRule: email and verified may change */
};

/* PocketBase's error for a missing or wrong oldPassword: {"code","message"}. */
static json_t *old_password_error(void)
{
    return json_pack("{s:s,s:s}", "code", "validation_invalid_old_password", "message",
                     "Missing or invalid old password.");
}

static bool names_have(json_t *names, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) if (strcmp(json_string_value(v), name) == 0) return true;
    return false;
}

/* A file field can only hold files it held before and files of this
 * request: other names (a client's JSON naming files it never uploaded) are
 * dropped, as PocketBase drops them. Collects into m->dropped the stored
 * files the record no longer references. */
static void keep_known_files(struct merge_arg *m, json_t *prev, json_t *out)
{
    const struct collection *c = m->collection;
    json_decref(m->dropped);
    m->dropped = json_array();
    for (size_t i = 0; i < c->nfields; i++) {
        const struct field *f = &c->fields[i];
        if (f->type != FIELD_FILE)
            continue;
        json_t *old = json_object_get(prev, f->name), *val = json_object_get(out, f->name);
        json_t *old_list = json_is_array(old) ? json_incref(old) : json_array();
        if (json_is_string(old) && json_string_length(old))
            json_array_append(old_list, old);
        json_t *kept = json_array();
        json_t *new_list = json_is_array(val) ? json_incref(val) : json_array();
        if (json_is_string(val) && json_string_length(val))
            json_array_append(new_list, val);
        size_t j;
        json_t *v;
        json_array_foreach(new_list, j, v)
        {
            const char *name = json_string_value(v);
            if (names_have(old_list, name) || (m->uploaded && names_have(m->uploaded, name)))
                json_array_append(kept, v);
        }
        json_array_foreach(old_list, j, v) if (!names_have(kept, json_string_value(v)))
            json_array_append(m->dropped, v);
        if (json_is_array(val))
            json_object_set(out, f->name, kept);
        else
            json_object_set_new(out, f->name,
                                json_array_size(kept) ? json_incref(json_array_get(kept, 0))
                                                      : json_string(""));
        json_decref(kept);
        json_decref(new_list);
        json_decref(old_list);
    }
}

/* Form bodies carry "true"/"false" text: a JSON true or its text counts. */
static bool value_truthy(json_t *v)
{
    return json_is_true(v) || (json_is_string(v) && (strcmp(json_string_value(v), "true") == 0 ||
                                                     strcmp(json_string_value(v), "1") == 0));
}

/* PocketBase's auth upsert rules for a caller without manage access: the
 * email stays as stored (any value on create) and verified as stored (false
 * on create). Checked against prev inside the transaction, so no concurrent
 * change slips between. 1 with *errors set if the input breaks them. */
static int manager_only(const struct merge_arg *m, json_t *prev, json_t **errors)
{
    json_t *bad = json_object();
    json_t *email = json_object_get(m->input, "email");
    if (prev && email && !json_equal(email, json_object_get(prev, "email")))
        json_object_set_new(bad, "email",
                            json_pack("{s:s,s:s}", "code", "validation_values_mismatch", "message",
                                      "Values don't match."));
    json_t *verified = json_object_get(m->input, "verified");
    bool was = prev && json_is_true(json_object_get(prev, "verified"));
    if (verified && !json_is_null(verified) && value_truthy(verified) != was)
        json_object_set_new(bad, "verified",
                            json_pack("{s:s,s:s}", "code", "validation_values_mismatch", "message",
                                      "Values don't match."));
    if (!json_object_size(bad)) {
        json_decref(bad);
        return 0;
    }
    *errors = bad;
    return 1;
}

/* Runs on the store's writer, inside the write's transaction. */
static int merge_record(void *arg, json_t *prev, json_t **out, json_t **errors)
{
    struct merge_arg *m = arg;
    if (m->old_hash) {
        /* oldPassword was checked against a read made before this
         * transaction; a password changed since then voids that check. */
        const char *now = json_string_value(json_object_get(prev, m->password_field));
        if (!now || strcmp(now, m->old_hash) != 0) {
            *errors = json_pack("{s:o}", "oldPassword", old_password_error());
            return -1;
        }
    }
    if (!m->manager && m->collection->type == COLLECTION_AUTH && manager_only(m, prev, errors))
        return -1;
    if (record_validate(m->collection, m->input, prev, m->now_ms, out, errors))
        return -1;
    keep_known_files(m, prev, *out);
    return 0;
}

/* After the write: the files it left unreferenced go (those it replaced or
 * removed, and uploads it did not keep); all of this request's uploads go
 * if it failed. */
static void drop_files(struct rec_call *rc, json_t *rec, bool ok)
{
    struct merge_arg *m = rc->merge;
    json_t *gone = json_array();
    if (ok && m->dropped)
        json_array_extend(gone, m->dropped);
    if (rc->uploaded) {
        json_t *names = files_upload_names(rc->upload);
        size_t i;
        json_t *v;
        json_array_foreach(names, i, v)
        {
            bool kept = false;
            for (size_t k = 0; ok && k < rc->collection->nfields; k++) {
                const struct field *f = &rc->collection->fields[k];
                json_t *val = json_object_get(rec, f->name);
                if (f->type == FIELD_FILE &&
                    (json_is_array(val) ? names_have(val, json_string_value(v))
                                        : json_is_string(val) && strcmp(json_string_value(val),
                                                                        json_string_value(v)) == 0))
                    kept = true;
            }
            if (!kept)
                json_array_append(gone, v);
        }
    }
    const char *id =
        rc->record_id[0] ? rc->record_id : json_string_value(json_object_get(rec, "id"));
    if (id)
        files_remove_later(rc->collection->id, id, gone);
    else
        json_decref(gone);
    if (m) {
        json_decref(m->dropped);
        m->dropped = NULL;
    }
}

/* Takes the manageRule's check back out of a create's guard. */
static void drop_manage_guard(struct rec_call *rc)
{
    rc->where.len = rc->manage_at;
    if (rc->where.cap)
        rc->where.ptr[rc->where.len] = '\0';
    while (json_array_size(rc->params) > rc->manage_nparams)
        json_array_remove(rc->params, json_array_size(rc->params) - 1);
    rc->guarded = rc->where.len > 0;
    rc->manage_guard = false;
    rc->manager = false;
}

static void submit_write(struct rec_call *rc);

static void write_done(void *arg, struct store_result *res)
{
    struct rec_call *rc = arg;
    if (res->status == STORE_FORBIDDEN && rc->manage_guard) {
        /* The create rule or the manageRule refused: written again as a
         * non-manager, the outcome is PocketBase's (the create rule's 400,
         * or verified's validation error). Nothing was stored. */
        json_decref(rc->merge->dropped);
        rc->merge->dropped = NULL;
        drop_manage_guard(rc);
        submit_write(rc);
        return;
    }
    if (res->status == STORE_OK && rc->collection->type == COLLECTION_AUTH)
        api_auth_changed();
    if (res->status == STORE_OK && rc->install) {
        auth_install_release(true);
        rc->install = false;
        log_info("the first superuser was created with the install link");
    }
    if (res->status != STORE_OK)
        drop_files(rc, NULL, false);
    if (res->status == STORE_OK) {
        json_t *rec = json_loadb(res->json.ptr, res->json.len, 0, NULL);
        drop_files(rc, rec, true);
        const char *id = json_string_value(json_object_get(rec, "id"));
        rc->id = arena_slice_dup(&rc->req->pool, slice_cstr(id ? id : ""));
        struct slice v;
        if (http_request_query(rc->req, "fields", &v))
            rc->fields = v;
        if (http_request_query(rc->req, "expand", &v))
            rc->expand = slice_trim(v);
        const char *manage = rc->collection->rules[RULE_MANAGE];
        bool manageable =
            rc->collection->type == COLLECTION_AUTH && !rc->auth->superuser && manage && *manage;
        if (rec && (rc->expand.len || manageable)) {
            /* a manager sees the email of what it wrote; anyone else the
             * manageRule admits on the record as written, as on a view */
            if (rc->manager && id) {
                rc->managed = json_object();
                json_object_set_new(rc->managed, id, json_true());
            }
            rc->items = json_pack("[o]", rec);
            rc->version = res->version;
            check_managed(rc, view_items_ready);
            return;
        }
        json_decref(rec);
        shape_result(rc, res);
        answer_record(rc, 200, res);
    } else if (res->status == STORE_FORBIDDEN && rc->req->method == HTTP_M_POST) {
        api_error(rc->req, 400, "Failed to create record.", NULL);
    } else if (res->status == STORE_FORBIDDEN) {
        api_error(rc->req, 404, "The requested resource wasn't found.", NULL);
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

static void commit_files(struct rec_call *rc);

static void submit_write(struct rec_call *rc)
{
    struct http_request *req = rc->req;
    if (rc->upload && !rc->uploaded && json_array_size(files_upload_names(rc->upload))) {
        commit_files(rc);
        return;
    }
    struct merge_arg *m = arena_zalloc(&req->pool, sizeof(*m));
    rc->merge = m;
    m->uploaded = rc->uploaded ? files_upload_names(rc->upload) : NULL;
    m->collection = rc->collection;
    m->input = rc->input;
    m->now_ms = time_now_ms();
    m->old_hash = rc->old_hash;
    m->manager = rc->manager;
    for (size_t i = 0; i < rc->collection->nfields; i++)
        if (rc->collection->fields[i].type == FIELD_PASSWORD)
            m->password_field = rc->collection->fields[i].name;
    bool create = req->method == HTTP_M_POST;
    struct store_guard guard = {rc->where.ptr, rc->params, create};
    api_ctx.store->ops->record_write(api_ctx.store, rc->collection, rc->id, create, rc->if_match,
                                     rc->guarded ? &guard : NULL, api_fields_for(rc->auth),
                                     merge_record, m, req->loop, write_done, rc);
}

static void files_committed(void *arg, int status)
{
    struct rec_call *rc = arg;
    if (status) {
        api_error(rc->req, 500, "Failed to store the uploaded files.", NULL);
        rec_call_end(rc);
        return;
    }
    rc->uploaded = true;
    submit_write(rc);
}

/* Uploaded files are made durable under the record's id before the record
 * is written: a crash in between leaves orphans for the startup sweep, never
 * a record naming a missing file. A create's id is chosen now if the client
 * gave none, so that the files can go under it. */
static void commit_files(struct rec_call *rc)
{
    if (rc->req->method == HTTP_M_POST) {
        json_t *given = json_object_get(rc->input, "id");
        if (json_is_string(given) && json_string_length(given)) {
            snprintf(rc->record_id, sizeof(rc->record_id), "%s", json_string_value(given));
        } else {
            char id[ID_LEN + 1];
            id_generate(id);
            json_object_set_new(rc->input, "id", json_string(id));
            snprintf(rc->record_id, sizeof(rc->record_id), "%s", id);
        }
        if (!blob_plain_name(slice_cstr(rc->record_id))) {
            api_error(rc->req, 400, "Failed to create record.",
                      json_pack("{s:{s:s,s:s}}", "id", "code", "validation_invalid_value",
                                "message", "Invalid value."));
            rec_call_end(rc);
            return;
        }
    } else {
        snprintf(rc->record_id, sizeof(rc->record_id), "%.*s", SLICE_FMT(rc->id));
    }
    files_upload_commit(rc->upload, rc->record_id, rc->req->loop, files_committed, rc);
}

/* Password fields arrive as plain text and leave as Argon2id hashes; hashing
 * runs on the work pool, and so does the oldPassword check of a user changing
 * their own password. */
struct hashing {
    struct rec_call *rc;
    const char *name;
    char *plain;
    char *old_plain; /* NULL unless oldPassword must match old_hash */
    char *old_hash;
    bool old_ok;
    char hash[AUTH_HASH_MAX];
    int rc_hash;
};

static void hash_work(void *arg)
{
    struct hashing *h = arg;
    if (h->old_plain) {
        h->old_ok = h->old_hash && auth_password_verify(slice_cstr(h->old_plain), h->old_hash);
        sodium_memzero(h->old_plain, strlen(h->old_plain));
        if (!h->old_ok)
            goto out;
    }
    h->rc_hash = auth_password_hash(slice_cstr(h->plain), h->hash);
out:
    sodium_memzero(h->plain, strlen(h->plain));
}

static void hashing_free(struct hashing *h)
{
    sodium_memzero(h->hash, sizeof(h->hash));
    free(h->plain);
    free(h->old_plain);
    free(h->old_hash);
    free(h);
}

static void hash_done(void *arg)
{
    struct hashing *h = arg;
    struct rec_call *rc = h->rc;
    bool old_refused = h->old_plain && !h->old_ok;
    bool failed = h->rc_hash != 0;
    if (!old_refused && !failed) {
        json_object_set_new(rc->input, h->name, json_string(h->hash));
        rc->old_hash = h->old_hash;
        h->old_hash = NULL;
    }
    hashing_free(h);
    if (old_refused) {
        api_error(rc->req, 400, "Failed to update record.",
                  json_pack("{s:o}", "oldPassword", old_password_error()));
        rec_call_end(rc);
    } else if (failed) {
        api_error(rc->req, 500, "Something went wrong while processing your request.", NULL);
        rec_call_end(rc);
    } else {
        submit_write(rc);
    }
}

static void hash_submit(struct hashing *h)
{
    struct rec_call *rc = h->rc;
    if (workpool_submit_batch(hash_work, hash_done, h, http_loop_post_any, rc->req->loop)) {
        hashing_free(h);
        api_error(rc->req, 503, "The server is busy, try again later.", NULL);
        rec_call_end(rc);
    }
}

/* The stored record as the update rule admits it, with its password hash. */
static void old_hash_loaded(void *arg, struct store_result *res)
{
    struct hashing *h = arg;
    struct rec_call *rc = h->rc;
    json_t *list =
        res->status == STORE_OK ? json_loadb(res->json.ptr, res->json.len, 0, NULL) : NULL;
    json_t *rec = json_array_get(list, 0);
    if (res->status != STORE_OK || !rec) {
        json_decref(list);
        hashing_free(h);
        if (res->status != STORE_OK)
            api_store_error(rc->req, res);
        else
            api_error(rc->req, 404, "The requested resource wasn't found.", NULL);
        rec_call_end(rc);
        return;
    }
    const char *hash = json_string_value(json_object_get(rec, h->name));
    h->old_hash = hash ? xstrdup(hash) : NULL;
    json_decref(list);
    hash_submit(h);
}

/* A user changing their own password must give the current one
 * (PocketBase's oldPassword); superusers need not. The stored hash is read
 * under the update rule, so the check is no oracle for records the caller
 * may not update. */
static void check_old_password(struct hashing *h, const char *old_plain)
{
    struct rec_call *rc = h->rc;
    h->old_plain = xstrdup(old_plain);
    struct buf where = BUF_INIT;
    json_t *params = json_array();
    json_array_append_new(params, json_stringn(rc->id.ptr, rc->id.len));
    buf_append_sql_ident(&where, rc->collection->name);
    buf_append_cstr(&where, ".\"id\" = ?");
    if (rc->guarded) {
        buf_append_cstr(&where, " AND ");
        buf_append_slice(&where, buf_slice(&rc->where));
        json_array_extend(params, rc->params);
    }
    struct store_list_query q = {
        .collection = rc->collection,
        .where_sql = where.ptr,
        .params = params,
        .page = 1,
        .per_page = 1,
        .skip_total = true,
        .fields = STORE_FIELDS_ALL,
    };
    api_ctx.store->ops->record_list(api_ctx.store, &q, rc->req->loop, old_hash_loaded, h);
    buf_free(&where);
    json_decref(params);
}

static void write_password(struct rec_call *rc);

/* The manageRule's verdict on the record being updated. */
static void manager_checked(void *arg, struct store_result *res)
{
    struct rec_call *rc = arg;
    if (res->status != STORE_OK) {
        api_store_error(rc->req, res);
        rec_call_end(rc);
        return;
    }
    rc->manager = res->json.len > 2;
    write_password(rc);
}

/* Whether the caller manages the record being updated: its manageRule
 * admits the stored record (PocketBase's hasAuthManageAccess). A manager
 * may change email and verified, and the password without oldPassword. */
static void check_manager(struct rec_call *rc)
{
    struct buf where = BUF_INIT;
    json_t *params = json_array();
    json_array_append_new(params, json_stringn(rc->id.ptr, rc->id.len));
    buf_append_sql_ident(&where, rc->collection->name);
    buf_append_cstr(&where, ".\"id\" = ? AND (");
    struct filter_error fe;
    if (api_rule_compile(rc->req, rc->auth, rc->collection, rc->collection->rules[RULE_MANAGE],
                         rc->input, "default", &where, params, &fe)) {
        /* A manageRule that cannot compile grants nothing. */
        buf_reset(&where);
        json_array_clear(params);
        buf_append_cstr(&where, "0");
    } else {
        buf_append_char(&where, ')');
    }
    struct store_list_query q = {
        .collection = rc->collection,
        .where_sql = where.ptr,
        .params = params,
        .page = 1,
        .per_page = 1,
        .skip_total = true,
    };
    api_ctx.store->ops->record_list(api_ctx.store, &q, rc->req->loop, manager_checked, rc);
    buf_free(&where);
    json_decref(params);
}

/* PocketBase's manage check on create, made part of the create's guard: the
 * manageRule must admit the new row as the write leaves it, read with
 * verified forced false so that a rule reading `verified` is not satisfied
 * by the very value being set. The row is read through a derived table named
 * like the collection, which shadows it: the compiled rule's own columns,
 * qualified or not, resolve to the copy. Grants manager access when the
 * rule compiles; write_done drops the check again if the guard refuses. */
static void guard_manage(struct rec_call *rc)
{
    const struct collection *c = rc->collection;
    if (!rc->params)
        rc->params = json_array();
    rc->manage_at = rc->where.len;
    rc->manage_nparams = json_array_size(rc->params);
    if (rc->where.len)
        buf_append_cstr(&rc->where, " AND ");
    buf_append_cstr(&rc->where, "EXISTS (SELECT 1 FROM (SELECT \"__new\".\"id\" AS \"id\"");
    for (size_t i = 0; i < c->nfields; i++) {
        const char *name = c->fields[i].name;
        if (strcmp(name, "id") == 0)
            continue;
        if (strcmp(name, "verified") == 0) {
            buf_append_cstr(&rc->where, ", 0");
        } else {
            buf_append_cstr(&rc->where, ", \"__new\".");
            buf_append_sql_ident(&rc->where, name);
        }
        buf_append_cstr(&rc->where, " AS ");
        buf_append_sql_ident(&rc->where, name);
    }
    buf_append_cstr(&rc->where, " FROM ");
    buf_append_sql_ident(&rc->where, c->name);
    buf_append_cstr(&rc->where, " AS \"__new\" WHERE \"__new\".\"id\" = ");
    buf_append_sql_ident(&rc->where, c->name);
    buf_append_cstr(&rc->where, ".\"id\") AS ");
    buf_append_sql_ident(&rc->where, c->name);
    buf_append_cstr(&rc->where, " WHERE (");
    struct filter_error fe;
    if (api_rule_compile(rc->req, rc->auth, c, c->rules[RULE_MANAGE], rc->input, "default",
                         &rc->where, rc->params, &fe)) {
        /* A manageRule that cannot compile grants nothing. */
        drop_manage_guard(rc);
        return;
    }
    buf_append_cstr(&rc->where, "))");
    rc->manage_guard = true;
    rc->guarded = true;
    rc->manager = true;
}

/* The body is in and the caller known: decode, check, write. */
static void write_go(struct rec_call *rc)
{
    struct http_request *req = rc->req;
    const struct collection *c = rc->collection;
    struct api_auth *auth = rc->auth;
    if (rc->body_status) {
        int status = rc->body_status;
        const char *message = rc->body_message;
        json_t *data = NULL;
        if (rc->upload)
            files_upload_error(rc->upload, &status, &message, &data);
        if (data)
            message = req->method == HTTP_M_POST ? "Failed to create record."
                                                 : "Failed to update record.";
        api_error(req, status, message, data);
        rec_call_end(rc);
        return;
    }
    if (rc->missing) {
        api_error(req, 404, "Missing collection context.", NULL);
        rec_call_end(rc);
        return;
    }
    if (!rule_admits(req, c, rc->rule, auth)) {
        rec_call_end(rc);
        return;
    }
    struct form_error fe = {0};
    rc->input = rc->upload ? files_upload_input(rc->upload)
                           : form_decode(http_request_header(req, "Content-Type"),
                                         buf_slice(&rc->body), &fe);
    if (!rc->input) {
        api_error(req, 400, fe.message, NULL);
        rec_call_end(rc);
        return;
    }
    bool create = req->method == HTTP_M_POST;
    if (!create && !id_is_text(rc->id)) {
        api_error(req, 404, "The requested resource wasn't found.", NULL);
        rec_call_end(rc);
        return;
    }
    const char *rule = rule_expr(rc, rc->rule);
    if (rule) {
        if (!compile_rule(rc, rule, rc->input)) {
            rec_call_end(rc);
            return;
        }
        rc->guarded = true;
    }
    const char *manage = c->rules[RULE_MANAGE];
    rc->manager = auth->superuser;
    bool manageable = !auth->superuser && c->type == COLLECTION_AUTH && manage && *manage;
    if (!create && manageable) {
        check_manager(rc);
        return;
    }
    /* On create, manager access only lets verified be set (the email is
     * free and there is no old password), and PocketBase grants it only to
     * a signed-in caller. */
    if (create && manageable && auth->record.len &&
        value_truthy(json_object_get(rc->input, "verified")))
        guard_manage(rc);
    write_password(rc);
}

/* The password part of a write: checked in plain text, confirmed, then
 * hashed off the loop; a non-manager changing a password must give the
 * current one (oldPassword). */
static void write_password(struct rec_call *rc)
{
    struct http_request *req = rc->req;
    const struct collection *c = rc->collection;
    bool create = req->method == HTTP_M_POST;
    json_t *old = json_incref(json_object_get(rc->input, "oldPassword"));
    json_object_del(rc->input, "oldPassword");
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
        json_decref(old);
        submit_write(rc);
        return;
    }
    bool own_change = !create && !rc->manager;
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
                            json_pack("{s:s,s:s}", "code", "validation_values_mismatch", "message",
                                      "Values don't match."));
    if (own_change && (!json_is_string(old) || !json_string_length(old)))
        json_object_set_new(errors, "oldPassword", old_password_error());
    if (json_object_size(errors)) {
        json_decref(old);
        api_error(req, 400, create ? "Failed to create record." : "Failed to update record.",
                  errors);
        rec_call_end(rc);
        return;
    }
    json_decref(errors);
    json_object_del(rc->input, "passwordConfirm");
    struct hashing *h = xcalloc(1, sizeof(*h));
    h->rc = rc;
    h->name = pw->name;
    h->plain = xstrdup(json_string_value(plain));
    if (own_change)
        check_old_password(h, json_string_value(old));
    else
        hash_submit(h);
    json_decref(old);
}

/* ---- delete ---- */

/* The records a delete's cascade removed, as the store lists them after the
 * commit: their files go too, like the deleted record's own. */
static void remove_cascaded(const char *cid, const char *rid, unsigned flags, void *arg)
{
    (void)arg;
    if (flags & STORE_CASCADE_FILES)
        files_remove_later(cid, rid, NULL);
}

static void delete_done(void *arg, struct store_result *res)
{
    struct rec_call *rc = arg;
    if (res->status == STORE_OK && rc->collection->type == COLLECTION_AUTH)
        api_auth_changed();
    if (res->status == STORE_OK && rc->install) {
        auth_install_release(true);
        rc->install = false;
        log_info("the first superuser was created with the install link");
    }
    if (res->status == STORE_OK) {
        for (size_t i = 0; i < rc->collection->nfields; i++)
            if (rc->collection->fields[i].type == FIELD_FILE) {
                files_remove_later(rc->collection->id, rc->record_id, NULL);
                break;
            }
        store_cascaded_foreach(res, remove_cascaded, NULL);
        cache_fields(rc, 204, res);
        http_respond(rc->req, 204, SLICE_NULL, SLICE_NULL);
    } else if (res->status == STORE_FORBIDDEN)
        api_error(rc->req, 404, "The requested resource wasn't found.", NULL);
    else
        api_store_error(rc->req, res);
    rec_call_end(rc);
}

static void delete_authed(struct http_request *req, struct api_auth *auth)
{
    struct rec_call *rc = req->user;
    rc->auth = auth;
    if (!rule_admits(req, rc->collection, RULE_DELETE, auth)) {
        rec_call_end(rc);
        return;
    }
    if (!id_is_text(rc->id)) {
        api_error(req, 404, "The requested resource wasn't found.", NULL);
        rec_call_end(rc);
        return;
    }
    const char *rule = rule_expr(rc, RULE_DELETE);
    if (rule && !compile_rule(rc, rule, NULL)) {
        rec_call_end(rc);
        return;
    }
    snprintf(rc->record_id, sizeof(rc->record_id), "%.*s", SLICE_FMT(rc->id));
    struct store_guard guard = {rc->where.ptr, rc->params, false};
    api_ctx.store->ops->record_delete(api_ctx.store, rc->collection, rc->id, rc->if_match,
                                      rule ? &guard : NULL, req->loop, delete_done, rc);
}

/* ---- entry points ---- */

/* Sets up the call on collection c (retained; the call takes it); answers
 * and returns NULL on a malformed If-Match. */
static struct rec_call *begin_on(struct http_request *req, enum collection_rule rule,
                                 struct collection *c)
{
    /* Not in the request's pool: that is freed when the answer is sent, and
     * the call ends after it. */
    struct rec_call *rc = xcalloc(1, sizeof(*rc));
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

/* Sets up the call for the collection in the path; answers 404 and returns
 * NULL if there is no such collection. */
static struct rec_call *begin(struct http_request *req, enum collection_rule rule)
{
    struct collection *c = api_collection_find(req);
    if (!c) {
        api_error(req, 404, "Missing collection context.", NULL);
        return NULL;
    }
    return begin_on(req, rule, c);
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

/* One of the two things a write waits for (its body, its caller) is done. */
static void write_step(struct rec_call *rc)
{
    if (--rc->pending == 0)
        write_go(rc);
}

static void body_failed(struct rec_call *rc, int status, const char *message)
{
    if (!rc->body_status) {
        rc->body_status = status;
        rc->body_message = message;
    }
}

static int write_body(struct http_request *req, struct slice chunk)
{
    struct rec_call *rc = req->user;
    /* A caller the rule refuses sends no more: the answer is known. */
    if (rc->auth && !rc->auth->superuser && !rc->collection->rules[rc->rule])
        body_failed(rc, 403, "Only superusers can perform this action.");
    else if (rc->upload && files_upload_feed(rc->upload, chunk))
        body_failed(rc, 400, "");
    else if (!rc->upload && chunk.len > (size_t)api_ctx.cfg->max_body_bytes - rc->body.len)
        body_failed(rc, 413, "Request body too large.");
    else if (!rc->upload)
        buf_append_slice(&rc->body, chunk);
    if (!rc->body_status)
        return 0;
    /* Aborting ends the body: on_body_end will not come. */
    write_step(rc);
    return -1;
}

static void write_body_end(struct http_request *req, int status)
{
    struct rec_call *rc = req->user;
    if (status)
        body_failed(rc, 400, "The request body is incomplete.");
    else if (rc->upload && files_upload_finish(rc->upload))
        body_failed(rc, 400, "");
    write_step(rc);
}

static void write_authed(struct http_request *req, struct api_auth *auth)
{
    struct rec_call *rc = req->user;
    rc->auth = auth;
    if (!auth->superuser && req->method == HTTP_M_POST &&
        strcmp(rc->collection->name, "_superusers") == 0 && api_install_claim(req)) {
        rc->install = true;
        auth->superuser = true;
        /* checked inside the write's transaction: the new record must be
         * the only superuser, so the token never adds a second one */
        buf_append_cstr(&rc->where, "(SELECT COUNT(*) FROM \"_superusers\") = 1");
        rc->params = json_array();
        rc->guarded = true;
    }
    write_step(rc);
}

/* Writes stream their body (HTTP_ROUTE_STREAM_BODY): a multipart body's
 * files go to disk as they arrive, anything else is buffered up to
 * max_body_bytes. The caller is authenticated meanwhile. */
static void handle_write(struct http_request *req, enum collection_rule rule)
{
    struct slice ct = http_request_header(req, "Content-Type");
    bool multipart = ct.len >= 10 && slice_case_eq(slice_make(ct.ptr, 10), SLICE_LIT("multipart/"));
    if (!multipart && req->content_length > api_ctx.cfg->max_body_bytes) {
        api_error(req, 413, "Request body too large.", NULL);
        return;
    }
    struct collection *found = api_collection_find(req);
    bool known = found != NULL;
    struct rec_call *rc;
    if (known) {
        if (!(rc = begin_on(req, rule, found)))
            return;
    } else {
        /* Answered after the body, so that a well-framed request on a
         * kept-alive connection does not cost the connection. */
        rc = xcalloc(1, sizeof(*rc));
        rc->req = req;
        rc->rule = rule;
        rc->if_match = -1;
        rc->missing = true;
        req->user = rc;
    }
    if (multipart && known) {
        rc->upload = files_upload_new(rc->collection, ct, (size_t)api_ctx.cfg->max_body_bytes);
        files_upload_attach(rc->upload, req);
    }
    rc->pending = known ? 2 : 1;
    req->on_body = write_body;
    req->on_body_end = write_body_end;
    if (known)
        api_authenticate(req, write_authed);
}

static void handle_create(struct http_request *req)
{
    handle_write(req, RULE_CREATE);
}

static void handle_update(struct http_request *req)
{
    handle_write(req, RULE_UPDATE);
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
    http_router_add(r, HTTP_M_POST, "/api/collections/:collection/records", handle_create,
                    HTTP_ROUTE_STREAM_BODY, "records_create");
    http_router_add(r, HTTP_M_GET, "/api/collections/:collection/records/:id", handle_view, 0,
                    "records_view");
    http_router_add(r, HTTP_M_PATCH, "/api/collections/:collection/records/:id", handle_update,
                    HTTP_ROUTE_STREAM_BODY, "records_update");
    http_router_add(r, HTTP_M_DELETE, "/api/collections/:collection/records/:id", handle_delete, 0,
                    "records_delete");
}
