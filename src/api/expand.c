/* ?expand=a,b.c,comments_via_post: related records fetched and placed under
 * each record's "expand" object, as PocketBase does, nested up to
 * EXPAND_MAX_DEPTH levels. Every fetch runs the related collection's view
 * rule for the caller (superusers excepted; a null rule expands nothing), so
 * an expand shows no record that a direct view would hide, and every
 * expanded record is redacted like a direct answer (emails included: see
 * job_check_managers).
 *
 * One store list per (level, relation) over all records of that level at
 * once, so a page of 30 records expanding two relations costs two queries
 * per level, not sixty. Runs on the request's loop. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/alloc.h"

enum { EXPAND_MAX_DEPTH = 6, EXPAND_MAX_PATHS = 32, EXPAND_MAX_IDS = 1000 };

struct xnode {
    char name[128];
    struct xnode *children[EXPAND_MAX_PATHS];
    size_t nchildren;
};

struct xrun {
    struct http_request *req;
    const struct api_auth *auth;
    size_t pending;
    api_expand_cb done;
    void *arg;
};

struct xjob {
    struct xrun *run;
    const struct xnode *node;
    struct collection *target; /* retained */
    const struct field *field; /* the relation field, of the parent or of target */
    bool back;                 /* a <collection>_via_<field> back-relation */
    json_t *parents;           /* the records being expanded (reference held) */
    struct buf where;
    json_t *params;
    json_t *found; /* the related records fetched, while their managers are looked up */
};

static void expand_level(struct xrun *run, const struct collection *c, json_t *records,
                         const struct xnode *parent);

static void run_release(struct xrun *run)
{
    if (--run->pending == 0)
        run->done(run->arg);
}

/* Adds path (dot-separated, already trimmed) to the tree under root; false
 * if it is too deep or the tree too wide. */
static bool tree_add(struct arena *pool, struct xnode *root, struct slice path, int depth)
{
    if (!path.len)
        return true;
    if (depth >= EXPAND_MAX_DEPTH)
        return false;
    const char *dot = memchr(path.ptr, '.', path.len);
    struct slice head = dot ? slice_make(path.ptr, (size_t)(dot - path.ptr)) : path;
    struct slice rest = dot ? slice_make(dot + 1, path.len - head.len - 1) : SLICE_NULL;
    if (!head.len || head.len >= sizeof(root->name))
        return false;
    struct xnode *n = NULL;
    for (size_t i = 0; i < root->nchildren; i++)
        if (slice_eq_cstr(head, root->children[i]->name))
            n = root->children[i];
    if (!n) {
        if (root->nchildren == EXPAND_MAX_PATHS)
            return false;
        n = arena_zalloc(pool, sizeof(*n));
        memcpy(n->name, head.ptr, head.len);
        root->children[root->nchildren++] = n;
    }
    return tree_add(pool, n, rest, depth + 1);
}

static bool value_in(json_t *v, const char *id)
{
    if (json_is_string(v))
        return strcmp(json_string_value(v), id) == 0;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) if (json_is_string(x) &&
                                    strcmp(json_string_value(x), id) == 0) return true;
    return false;
}

static json_t *expand_slot(json_t *record)
{
    json_t *e = json_object_get(record, "expand");
    if (!json_is_object(e)) {
        e = json_object();
        json_object_set_new(record, "expand", e);
    }
    return e;
}

static void job_free(struct xjob *j)
{
    collection_release(j->target);
    json_decref(j->found);
    json_decref(j->parents);
    json_decref(j->params);
    buf_free(&j->where);
    free(j);
}

/* Redacts j->found for the caller, keeping the email of each record whose
 * id `managed` holds (an object keyed by id; may be NULL), places each
 * record under its parents and expands the next level. Ends the job. */
static void job_place(struct xjob *j, json_t *managed)
{
    struct xrun *run = j->run;
    json_t *found = j->found;
    size_t i, k;
    json_t *rec, *parent;
    json_array_foreach(found, i, rec)
    {
        json_t *email = json_incref(json_object_get(rec, "email"));
        api_record_redact(j->target, run->auth, rec);
        const char *id = json_string_value(json_object_get(rec, "id"));
        if (email && id && json_object_get(managed, id))
            json_object_set(rec, "email", email);
        json_decref(email);
    }
    json_array_foreach(j->parents, i, parent)
    {
        if (j->back) {
            const char *pid = json_string_value(json_object_get(parent, "id"));
            json_t *list = json_array();
            json_array_foreach(found, k,
                               rec) if (pid && value_in(json_object_get(rec, j->field->name), pid))
                json_array_append(list, rec);
            if (json_array_size(list))
                json_object_set_new(expand_slot(parent), j->node->name, list);
            else
                json_decref(list);
            continue;
        }
        json_t *v = json_object_get(parent, j->field->name);
        json_t *list = json_array();
        size_t n;
        json_t *id;
        json_t *ids = json_is_array(v) ? json_incref(v) : json_pack("[O]", v ? v : json_null());
        json_array_foreach(ids, n, id)
        {
            json_array_foreach(found, k, rec) if (json_is_string(id) &&
                                                  json_equal(json_object_get(rec, "id"), id))
                json_array_append(list, rec);
        }
        json_decref(ids);
        if (json_array_size(list))
            json_object_set(expand_slot(parent), j->node->name,
                            field_is_multiple(j->field) ? list : json_array_get(list, 0));
        json_decref(list);
    }
    if (json_array_size(found) && j->node->nchildren)
        expand_level(run, j->target, found, j->node);
    job_free(j);
    run_release(run);
}

static void managers_listed(void *arg, struct store_result *res)
{
    struct xjob *j = arg;
    json_t *rows =
        res->status == STORE_OK ? json_loadb(res->json.ptr, res->json.len, 0, NULL) : NULL;
    json_t *managed = json_object();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        if (id)
            json_object_set_new(managed, id, json_true());
    }
    json_decref(rows);
    job_place(j, managed);
    json_decref(managed);
}

/* An expanded auth record shows its email as a direct view would: to
 * superusers, to itself, where emailVisibility is on, and to a caller its
 * collection's manageRule admits (PocketBase's autoResolveRecordsFlags, in
 * the "expand" context). The last needs one more store read, made only when
 * some email would otherwise be hidden; a manageRule that cannot compile or
 * a failed read manages nothing. Starts it, or places at once. */
static void job_check_managers(struct xjob *j)
{
    const struct api_auth *auth = j->run->auth;
    const struct collection *c = j->target;
    const char *manage = c->rules[RULE_MANAGE];
    json_t *ids = json_array();
    size_t i;
    json_t *rec;
    if (c->type == COLLECTION_AUTH && !auth->superuser && manage && *manage) {
        json_array_foreach(j->found, i, rec)
        {
            json_t *id = json_object_get(rec, "id");
            if (json_is_string(id) && json_object_get(rec, "email") &&
                !json_is_true(json_object_get(rec, "emailVisibility")) &&
                !(strcmp(json_string_value(id), auth->record_id) == 0 &&
                  strcmp(c->id, auth->collection_id) == 0))
                json_array_append(ids, id);
        }
    }
    if (!json_array_size(ids)) {
        json_decref(ids);
        job_place(j, NULL);
        return;
    }
    struct buf where = BUF_INIT;
    json_t *params = json_array();
    buf_append_sql_ident(&where, c->name);
    buf_append_cstr(&where, ".\"id\" IN (");
    for (i = 0; i < json_array_size(ids); i++)
        buf_append_cstr(&where, i ? ",?" : "?");
    buf_append_cstr(&where, ") AND (");
    json_array_extend(params, ids);
    struct filter_error fe;
    if (api_rule_compile(j->run->req, auth, c, manage, NULL, "expand", &where, params, &fe)) {
        buf_free(&where);
        json_decref(params);
        json_decref(ids);
        job_place(j, NULL);
        return;
    }
    buf_append_char(&where, ')');
    struct store_list_query q = {
        .collection = c,
        .where_sql = where.ptr,
        .params = params,
        .page = 1,
        .per_page = (int64_t)json_array_size(ids),
        .skip_total = true,
    };
    api_ctx.store->ops->record_list(api_ctx.store, &q, j->run->req->loop, managers_listed, j);
    buf_free(&where);
    json_decref(params);
    json_decref(ids);
}

static void job_done(void *arg, struct store_result *res)
{
    struct xjob *j = arg;
    j->found = res->status == STORE_OK ? json_loadb(res->json.ptr, res->json.len, 0, NULL) : NULL;
    job_check_managers(j);
}

/* Finds the relation named by node on c: a field of c, or a back-relation
 * "<collection>_via_<field>". Fills j; false if there is none. */
static bool resolve(const struct schema *s, const struct collection *c, const struct xnode *node,
                    struct xjob *j)
{
    const struct field *f = collection_field(c, slice_cstr(node->name));
    if (f && f->type == FIELD_RELATION && f->opt.relation.collection_id) {
        j->target = schema_find(s, slice_cstr(f->opt.relation.collection_id));
        j->field = f;
        return j->target != NULL;
    }
    const char *via = strstr(node->name, "_via_");
    if (!via)
        return false;
    j->target = schema_find(s, slice_make(node->name, (size_t)(via - node->name)));
    f = j->target ? collection_field(j->target, slice_cstr(via + 5)) : NULL;
    if (!f || f->type != FIELD_RELATION || !f->opt.relation.collection_id ||
        strcmp(f->opt.relation.collection_id, c->id) != 0) {
        j->target = NULL;
        return false;
    }
    j->field = f;
    j->back = true;
    return true;
}

/* Appends "(?,?,...)" to out and the keys to match to params: the parents'
 * ids for a back-relation, else the related ids they hold. Returns how many. */
static size_t bind_keys(const struct xjob *j, json_t *records, struct buf *out)
{
    size_t i, k, n = 0;
    json_t *rec, *v;
    buf_append_char(out, '(');
    json_array_foreach(records, i, rec)
    {
        json_t *vals = json_object_get(rec, j->back ? "id" : j->field->name);
        json_t *list =
            json_is_array(vals) ? json_incref(vals) : json_pack("[O]", vals ? vals : json_null());
        json_array_foreach(list, k, v)
        {
            if (!json_is_string(v) || !json_string_length(v) || n >= EXPAND_MAX_IDS)
                continue;
            buf_append_cstr(out, n ? ",?" : "?");
            json_array_append(j->params, v);
            n++;
        }
        json_decref(list);
    }
    buf_append_char(out, ')');
    return n;
}

static void start_job(struct xrun *run, const struct collection *c, json_t *records,
                      const struct xnode *node)
{
    struct schema *s = schema_current();
    struct xjob *j = xcalloc(1, sizeof(*j));
    j->run = run;
    j->node = node;
    bool ok = resolve(s, c, node, j);
    if (ok)
        collection_retain(j->target);
    schema_release(s);
    const char *rule = ok ? j->target->rules[RULE_VIEW] : NULL;
    if (!ok || (!rule && !run->auth->superuser)) {
        collection_release(j->target);
        free(j);
        return;
    }
    j->parents = json_incref(records);
    j->params = json_array();
    struct buf keys = BUF_INIT;
    if (!bind_keys(j, records, &keys)) {
        buf_free(&keys);
        job_free(j);
        return;
    }
    const char *table = j->target->name;
    if (j->back && field_is_multiple(j->field)) {
        buf_append_cstr(&j->where, "EXISTS (SELECT 1 FROM json_each(");
        buf_append_sql_ident(&j->where, table);
        buf_append_char(&j->where, '.');
        buf_append_sql_ident(&j->where, j->field->name);
        buf_append_cstr(&j->where, ") WHERE value IN ");
        buf_append_slice(&j->where, buf_slice(&keys));
        buf_append_char(&j->where, ')');
    } else {
        buf_append_sql_ident(&j->where, table);
        buf_append_char(&j->where, '.');
        buf_append_sql_ident(&j->where, j->back ? j->field->name : "id");
        buf_append_cstr(&j->where, " IN ");
        buf_append_slice(&j->where, buf_slice(&keys));
    }
    buf_free(&keys);
    if (!run->auth->superuser && *rule) {
        struct filter_error fe;
        buf_append_cstr(&j->where, " AND (");
        if (api_rule_compile(run->req, run->auth, j->target, rule, NULL, "expand", &j->where,
                             j->params, &fe)) {
            job_free(j);
            return;
        }
        buf_append_char(&j->where, ')');
    }
    struct store_list_query q = {
        .collection = j->target,
        .where_sql = j->where.ptr,
        .params = j->params,
        .page = 1,
        .per_page = EXPAND_MAX_IDS,
        .skip_total = true,
        .fields = api_fields_for(run->auth),
    };
    run->pending++;
    api_ctx.store->ops->record_list(api_ctx.store, &q, run->req->loop, job_done, j);
}

static void expand_level(struct xrun *run, const struct collection *c, json_t *records,
                         const struct xnode *parent)
{
    for (size_t i = 0; i < parent->nchildren; i++)
        start_job(run, c, records, parent->children[i]);
}

/* The tree of the paths spec names, in pool; paths past the limits are left
 * out, with every path after them. */
static struct xnode *spec_tree(struct arena *pool, struct slice spec)
{
    struct xnode *root = arena_zalloc(pool, sizeof(*root));
    size_t i = 0;
    while (i < spec.len) {
        size_t start = i;
        while (i < spec.len && spec.ptr[i] != ',')
            i++;
        if (!tree_add(pool, root, slice_trim(slice_make(spec.ptr + start, i - start)), 0))
            break;
        i++;
    }
    return root;
}

static bool nodes_public(const struct schema *s, const struct collection *c,
                         const struct xnode *parent, struct buf *tags)
{
    for (size_t i = 0; i < parent->nchildren; i++) {
        struct xjob j = {0};
        if (!resolve(s, c, parent->children[i], &j))
            continue;
        const char *rule = j.target->rules[RULE_VIEW];
        if (j.target->type == COLLECTION_AUTH || !rule || *rule)
            return false;
        buf_append_cstr(tags, ", ");
        buf_append_cstr(tags, j.target->id);
        if (!nodes_public(s, j.target, parent->children[i], tags))
            return false;
    }
    return true;
}

bool api_expand_public(struct arena *pool, const struct collection *c, struct slice spec,
                       struct buf *tags)
{
    struct schema *s = schema_current();
    bool ok = nodes_public(s, c, spec_tree(pool, spec), tags);
    schema_release(s);
    return ok;
}

void api_expand(struct http_request *req, const struct api_auth *auth, const struct collection *c,
                json_t *records, struct slice spec, api_expand_cb done, void *arg)
{
    struct xnode *root = spec_tree(&req->pool, spec);
    struct xrun *run = arena_zalloc(&req->pool, sizeof(*run));
    *run = (struct xrun){req, auth, 1, done, arg};
    expand_level(run, c, records, root);
    run_release(run);
}
