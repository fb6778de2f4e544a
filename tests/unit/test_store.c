/* The SQLite store adapter against a real database in a temp directory:
 * collection DDL, record reads and writes, group commit, durability across a
 * reopen, and the JSON rendering of rows. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/id.h"
#include "domain/schema.h"
#include "store/sqlite_int.h"
#include "store/store.h"

/* ---- collections by hand ----
 *
 * The store only needs collection_to_json_stored / collection_from_json_system
 * to round-trip what it saves. These weak stand-ins keep this test independent of
 * collection.c: the linker takes no archive member for symbols already
 * defined, so they are what runs here. */

static const char *const kind_names[] = {"text",     "number",   "bool",     "email",
                                         "url",      "date",     "select",   "json",
                                         "autodate", "password", "relation", "file"};

__attribute__((weak)) json_t *collection_to_json_stored(const struct collection *c)
{
    json_t *fields = json_array();
    for (size_t i = 0; i < c->nfields; i++) {
        const struct field *f = &c->fields[i];
        json_array_append_new(fields,
                              json_pack("{s:s,s:s,s:s,s:b,s:I}", "id", f->id, "name", f->name,
                                        "type", kind_names[f->type], "hidden", f->hidden,
                                        "maxSelect", (json_int_t)f->opt.select.max_select));
    }
    return json_pack("{s:s,s:s,s:o}", "id", c->id, "name", c->name, "fields", fields);
}

static struct collection *coll_new(const char *id, const char *name)
{
    struct collection *c = xcalloc(1, sizeof(*c));
    c->id = xstrdup(id);
    c->name = xstrdup(name);
    c->refcount = 1;
    return c;
}

static struct field *coll_add(struct collection *c, const char *id, const char *name,
                              enum field_type t)
{
    c->fields = xrealloc(c->fields, (c->nfields + 1) * sizeof(*c->fields));
    struct field *f = &c->fields[c->nfields++];
    memset(f, 0, sizeof(*f));
    f->id = xstrdup(id);
    f->name = xstrdup(name);
    f->type = t;
    return f;
}

static void coll_index(struct collection *c, const char *name, bool unique, const char *col)
{
    c->indexes = xrealloc(c->indexes, (c->nindexes + 1) * sizeof(*c->indexes));
    struct collection_index *ix = &c->indexes[c->nindexes++];
    memset(ix, 0, sizeof(*ix));
    ix->name = xstrdup(name);
    ix->unique = unique;
    ix->columns = xcalloc(1, sizeof(char *));
    ix->columns[0] = xstrdup(col);
    ix->ncolumns = 1;
}

__attribute__((weak)) void collection_retain(struct collection *c)
{
    c->refcount++;
}

__attribute__((weak)) bool field_is_multiple(const struct field *f)
{
    return f->type == FIELD_RELATION ? f->opt.relation.max_select > 1
                                     : f->opt.select.max_select > 1;
}

__attribute__((weak)) void collection_release(struct collection *c)
{
    if (!c || --c->refcount)
        return;
    for (size_t i = 0; i < c->nfields; i++) {
        free(c->fields[i].id);
        free(c->fields[i].name);
        if (c->fields[i].type == FIELD_RELATION)
            free(c->fields[i].opt.relation.collection_id);
    }
    for (size_t i = 0; i < c->nindexes; i++) {
        free(c->indexes[i].name);
        free(c->indexes[i].columns[0]);
        free(c->indexes[i].columns);
    }
    free(c->indexes);
    free(c->fields);
    free(c->id);
    free(c->name);
    free(c);
}

__attribute__((weak)) struct collection *
collection_from_json_system(json_t *body, const struct collection *prev, json_t **errors)
{
    struct collection *c = coll_new(json_string_value(json_object_get(body, "id")),
                                    json_string_value(json_object_get(body, "name")));
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(body, "fields"), i, f)
    {
        const char *type = json_string_value(json_object_get(f, "type"));
        enum field_type t = FIELD_TEXT;
        for (size_t k = 0; k < sizeof(kind_names) / sizeof(*kind_names); k++)
            if (strcmp(type, kind_names[k]) == 0)
                t = (enum field_type)k;
        struct field *nf = coll_add(c, json_string_value(json_object_get(f, "id")),
                                    json_string_value(json_object_get(f, "name")), t);
        nf->hidden = json_is_true(json_object_get(f, "hidden"));
        nf->opt.select.max_select = json_integer_value(json_object_get(f, "maxSelect"));
    }
    return c;
}

/* posts: id, title (unique unless plain), views, done, tags (multi select), meta,
 * secret (hidden) */
static struct collection *posts_coll(bool unique_title)
{
    struct collection *c = coll_new("pbc_1", "posts");
    coll_add(c, "text_id", "id", FIELD_TEXT)->opt.text.primary_key = true;
    coll_add(c, "f_title", "title", FIELD_TEXT);
    coll_add(c, "f_views", "views", FIELD_NUMBER);
    coll_add(c, "f_done", "done", FIELD_BOOL);
    coll_add(c, "f_tags", "tags", FIELD_SELECT)->opt.select.max_select = 3;
    coll_add(c, "f_meta", "meta", FIELD_JSON);
    coll_add(c, "f_secret", "secret", FIELD_TEXT)->hidden = true;
    coll_index(c, "idx_title", unique_title, "title");
    return c;
}

static struct collection *posts_v1(void)
{
    return posts_coll(true);
}

/* ---- the caller's loop: post() queues, the test thread drains ---- */

struct task {
    struct task *next;
    void (*fn)(void *);
    void *arg;
};

static pthread_mutex_t loop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t loop_cv = PTHREAD_COND_INITIALIZER;
static struct task *loop_head, *loop_tail;

static void test_post(void *target, void (*fn)(void *), void *arg)
{
    struct task *t = xcalloc(1, sizeof(*t));
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&loop_mu);
    if (loop_tail)
        loop_tail->next = t;
    else
        loop_head = t;
    loop_tail = t;
    pthread_cond_signal(&loop_cv);
    pthread_mutex_unlock(&loop_mu);
}

static void loop_run_one(void)
{
    pthread_mutex_lock(&loop_mu);
    while (!loop_head)
        pthread_cond_wait(&loop_cv, &loop_mu);
    struct task *t = loop_head;
    loop_head = t->next;
    if (!loop_head)
        loop_tail = NULL;
    pthread_mutex_unlock(&loop_mu);
    t->fn(t->arg);
    free(t);
}

struct got {
    int done;
    int status;
    char *json;
    char *errors;
    int64_t version, total;
};

static void on_result(void *arg, struct store_result *r)
{
    struct got *g = arg;
    g->status = r->status;
    g->json = xstrdup(r->json.ptr ? r->json.ptr : "");
    g->errors = r->errors ? json_dumps(r->errors, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    g->version = r->version;
    g->total = r->total;
    g->done++;
}

static void got_wait(struct got *g)
{
    while (!g->done)
        loop_run_one();
}

static void got_free(struct got *g)
{
    free(g->json);
    free(g->errors);
    memset(g, 0, sizeof(*g));
}

/* ---- fixture ---- */

static char dir[64];
static struct store *st;
static struct config cfg;

static void open_store(void)
{
    char err[256] = "";
    int rc = store_sqlite_open(&cfg, test_post, &st, err, sizeof(err));
    cr_assert_eq(rc, 0, "open: %s", err);
}

static void setup(void)
{
    strcpy(dir, "/tmp/cruder_store_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    memset(&cfg, 0, sizeof(cfg));
    cfg.dir = dir;
    cfg.durability = DURABILITY_NORMAL;
    cfg.partitions = 16;
    cfg.store_readers = 2;
    cfg.max_write_batch = 1024;
    cfg.max_write_queue = 4096;
    open_store();
}

static void teardown(void)
{
    if (st)
        st->ops->close(st);
    st = NULL;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 30);

/* ---- synchronous helpers ---- */

static int save(const struct collection *prev, const struct collection *next)
{
    struct got g = {0};
    st->ops->collection_save(st, prev, next, NULL, on_result, &g);
    got_wait(&g);
    int s = g.status;
    got_free(&g);
    return s;
}

static int merge_set(void *arg, json_t *prev, json_t **out, json_t **errors)
{
    *out = prev ? json_deep_copy(prev) : json_object();
    json_object_update(*out, arg);
    return 0;
}

static int merge_reject(void *arg, json_t *prev, json_t **out, json_t **errors)
{
    *errors = json_pack("{s:{s:s,s:s}}", "title", "code", "validation_required", "message",
                        "Missing required value.");
    return -1;
}

static void write_rec(const struct collection *c, const char *id, bool create, int64_t if_match,
                      const char *body, struct got *g)
{
    json_t *patch = json_loads(body, 0, NULL);
    cr_assert_not_null(patch, "bad test JSON %s", body);
    st->ops->record_write(st, c, slice_cstr(id), create, if_match, NULL, STORE_FIELDS_PUBLIC,
                          merge_set, patch, NULL, on_result, g);
    got_wait(g);
    json_decref(patch);
}

static void get_rec(const struct collection *c, const char *id, bool hidden, struct got *g)
{
    st->ops->record_get(st, c, slice_cstr(id), hidden ? STORE_FIELDS_ALL : STORE_FIELDS_PUBLIC,
                        NULL, on_result, g);
    got_wait(g);
}

static void list_rec(struct store_list_query *q, struct got *g)
{
    st->ops->record_list(st, q, NULL, on_result, g);
    got_wait(g);
}

static void expect_get(const struct collection *c, const char *id, const char *json)
{
    struct got g = {0};
    get_rec(c, id, false, &g);
    cr_assert_eq(g.status, STORE_OK, "get %s: %d", id, g.status);
    cr_assert_str_eq(g.json, json);
    got_free(&g);
}

static void create_ok(const struct collection *c, const char *body)
{
    struct got g = {0};
    write_rec(c, NULL, true, -1, body, &g);
    cr_assert_eq(g.status, STORE_OK, "create %s: %d %s", body, g.status, g.errors);
    got_free(&g);
}

/* ---- tests ---- */

Test(store, create_and_get_renders_exact_json)
{
    struct collection *c = posts_v1();
    cr_assert_eq(save(NULL, c), STORE_OK);
    struct got g = {0};
    write_rec(c, NULL, true, -1,
              "{\"id\":\"aaaaaaaaaaaaaa1\",\"title\":\"he said \\\"hi\\\"\\n\",\"views\":3.0,"
              "\"done\":true,\"tags\":[\"a\",\"b\"],\"meta\":{\"k\":[1,2.5]},\"secret\":\"s3\"}",
              &g);
    cr_assert_eq(g.status, STORE_OK, "%s", g.errors);
    cr_assert_eq(g.version, 1);
    const char *pub = "{\"collectionId\":\"pbc_1\",\"collectionName\":\"posts\","
                      "\"id\":\"aaaaaaaaaaaaaa1\",\"title\":\"he said \\\"hi\\\"\\n\","
                      "\"views\":3,\"done\":true,\"tags\":[\"a\",\"b\"],"
                      "\"meta\":{\"k\":[1,2.5]}}";
    cr_assert_str_eq(g.json, pub);
    got_free(&g);
    expect_get(c, "aaaaaaaaaaaaaa1", pub);

    get_rec(c, "aaaaaaaaaaaaaa1", true, &g);
    cr_assert_str_eq(g.json, "{\"collectionId\":\"pbc_1\",\"collectionName\":\"posts\","
                             "\"id\":\"aaaaaaaaaaaaaa1\",\"title\":\"he said \\\"hi\\\"\\n\","
                             "\"views\":3,\"done\":true,\"tags\":[\"a\",\"b\"],"
                             "\"meta\":{\"k\":[1,2.5]},\"secret\":\"s3\"}");
    got_free(&g);

    /* defaults: missing values take the column's default, json stays null */
    write_rec(c, NULL, true, -1, "{\"id\":\"aaaaaaaaaaaaaa2\",\"views\":0.25}", &g);
    cr_assert_eq(g.status, STORE_OK);
    cr_assert_str_eq(g.json, "{\"collectionId\":\"pbc_1\",\"collectionName\":\"posts\","
                             "\"id\":\"aaaaaaaaaaaaaa2\",\"title\":\"\",\"views\":0.25,"
                             "\"done\":false,\"tags\":[],\"meta\":null}");
    got_free(&g);

    get_rec(c, "nosuchid0000000", false, &g);
    cr_assert_eq(g.status, STORE_NOT_FOUND);
    got_free(&g);
    cr_assert_eq(save(c, NULL), STORE_OK);
    collection_release(c);
}

Test(store, create_generates_id_and_sets_partition)
{
    struct collection *c = posts_v1();
    cr_assert_eq(save(NULL, c), STORE_OK);
    struct got g = {0};
    write_rec(c, NULL, true, -1, "{\"title\":\"x\"}", &g);
    cr_assert_eq(g.status, STORE_OK);
    json_t *rec = json_loads(g.json, 0, NULL);
    const char *id = json_string_value(json_object_get(rec, "id"));
    cr_assert(id_valid(slice_cstr(id)));
    got_free(&g);

    char path[128];
    snprintf(path, sizeof(path), "%s/data.db", dir);
    sqlite3 *db;
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(
        sqlite3_prepare_v2(db, "SELECT _partition, _version FROM posts WHERE id = ?", -1, &s, NULL),
        SQLITE_OK);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int64(s, 0), id_partition(slice_cstr(id), 16));
    cr_assert_eq(sqlite3_column_int64(s, 1), 1);
    sqlite3_finalize(s);
    sqlite3_close(db);
    json_decref(rec);
    collection_release(c);
}

Test(store, update_if_match_not_found_invalid)
{
    struct collection *c = posts_v1();
    cr_assert_eq(save(NULL, c), STORE_OK);
    create_ok(c, "{\"id\":\"bbbbbbbbbbbbbb1\",\"title\":\"one\",\"views\":1}");
    struct got g = {0};

    write_rec(c, "bbbbbbbbbbbbbb1", false, -1, "{\"views\":2}", &g);
    cr_assert_eq(g.status, STORE_OK);
    cr_assert_eq(g.version, 2);
    cr_assert_str_eq(g.json, "{\"collectionId\":\"pbc_1\",\"collectionName\":\"posts\","
                             "\"id\":\"bbbbbbbbbbbbbb1\",\"title\":\"one\",\"views\":2,"
                             "\"done\":false,\"tags\":[],\"meta\":null}");
    got_free(&g);

    write_rec(c, "bbbbbbbbbbbbbb1", false, 1, "{\"views\":99}", &g);
    cr_assert_eq(g.status, STORE_PRECONDITION);
    cr_assert_eq(g.version, 2);
    got_free(&g);

    write_rec(c, "bbbbbbbbbbbbbb1", false, 2, "{\"views\":3}", &g);
    cr_assert_eq(g.status, STORE_OK);
    cr_assert_eq(g.version, 3);
    got_free(&g);

    write_rec(c, "zzzzzzzzzzzzzz9", false, -1, "{\"views\":1}", &g);
    cr_assert_eq(g.status, STORE_NOT_FOUND);
    got_free(&g);

    st->ops->record_write(st, c, slice_cstr("bbbbbbbbbbbbbb1"), false, -1, NULL,
                          STORE_FIELDS_PUBLIC, merge_reject, NULL, NULL, on_result, &g);
    got_wait(&g);
    cr_assert_eq(g.status, STORE_INVALID);
    cr_assert_str_eq(g.errors, "{\"title\":{\"code\":\"validation_required\","
                               "\"message\":\"Missing required value.\"}}");
    got_free(&g);

    get_rec(c, "bbbbbbbbbbbbbb1", false, &g);
    cr_assert_eq(g.version, 3);
    cr_assert(strstr(g.json, "\"views\":3,"));
    got_free(&g);
    collection_release(c);
}

Test(store, unique_violations)
{
    struct collection *c = posts_v1();
    cr_assert_eq(save(NULL, c), STORE_OK);
    create_ok(c, "{\"id\":\"ccccccccccccc01\",\"title\":\"same\"}");
    create_ok(c, "{\"id\":\"ccccccccccccc02\",\"title\":\"other\"}");
    struct got g = {0};

    write_rec(c, NULL, true, -1, "{\"id\":\"ccccccccccccc03\",\"title\":\"same\"}", &g);
    cr_assert_eq(g.status, STORE_UNIQUE);
    cr_assert_str_eq(g.errors, "{\"title\":{\"code\":\"validation_not_unique\","
                               "\"message\":\"Value must be unique.\"}}");
    got_free(&g);

    write_rec(c, NULL, true, -1, "{\"id\":\"ccccccccccccc01\",\"title\":\"new\"}", &g);
    cr_assert_eq(g.status, STORE_UNIQUE);
    cr_assert_str_eq(g.errors, "{\"id\":{\"code\":\"validation_not_unique\","
                               "\"message\":\"Value must be unique.\"}}");
    got_free(&g);

    write_rec(c, "ccccccccccccc02", false, -1, "{\"title\":\"same\"}", &g);
    cr_assert_eq(g.status, STORE_UNIQUE);
    got_free(&g);
    expect_get(c, "ccccccccccccc02",
               "{\"collectionId\":\"pbc_1\",\"collectionName\":\"posts\","
               "\"id\":\"ccccccccccccc02\",\"title\":\"other\",\"views\":0,"
               "\"done\":false,\"tags\":[],\"meta\":null}");
    get_rec(c, "ccccccccccccc03", false, &g);
    cr_assert_eq(g.status, STORE_NOT_FOUND);
    got_free(&g);
    collection_release(c);
}

Test(store, delete_with_if_match)
{
    struct collection *c = posts_v1();
    cr_assert_eq(save(NULL, c), STORE_OK);
    create_ok(c, "{\"id\":\"ddddddddddddd01\"}");
    struct got g = {0};
    st->ops->record_delete(st, c, slice_cstr("ddddddddddddd01"), 7, NULL, NULL, on_result, &g);
    got_wait(&g);
    cr_assert_eq(g.status, STORE_PRECONDITION);
    got_free(&g);
    st->ops->record_delete(st, c, slice_cstr("ddddddddddddd01"), 1, NULL, NULL, on_result, &g);
    got_wait(&g);
    cr_assert_eq(g.status, STORE_OK);
    got_free(&g);
    st->ops->record_delete(st, c, slice_cstr("ddddddddddddd01"), -1, NULL, NULL, on_result, &g);
    got_wait(&g);
    cr_assert_eq(g.status, STORE_NOT_FOUND);
    got_free(&g);
    get_rec(c, "ddddddddddddd01", false, &g);
    cr_assert_eq(g.status, STORE_NOT_FOUND);
    got_free(&g);
    collection_release(c);
}

Test(store, list_paging_total_where_order)
{
    struct collection *c = posts_coll(false);
    cr_assert_eq(save(NULL, c), STORE_OK);
    char body[128];
    for (int i = 1; i <= 7; i++) {
        snprintf(body, sizeof(body),
                 "{\"id\":\"eeeeeeeeeeeee%02d\",\"views\":%d,\"title\":\"t%d\"}", i, i * 10, i % 2);
        create_ok(c, body);
    }
    struct got g = {0};
    struct store_list_query q = {.collection = c, .page = 2, .per_page = 3};
    list_rec(&q, &g);
    cr_assert_eq(g.status, STORE_OK);
    cr_assert_eq(g.total, 7);
    json_t *arr = json_loads(g.json, 0, NULL);
    cr_assert_eq(json_array_size(arr), 3);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "id")),
                     "eeeeeeeeeeeee04");
    json_decref(arr);
    got_free(&g);

    q.page = 3;
    q.skip_total = true;
    list_rec(&q, &g);
    cr_assert_eq(g.total, -1);
    cr_assert_str_eq(g.json, "[{\"collectionId\":\"pbc_1\",\"collectionName\":\"posts\","
                             "\"id\":\"eeeeeeeeeeeee07\",\"title\":\"t1\",\"views\":70,"
                             "\"done\":false,\"tags\":[],\"meta\":null}]");
    got_free(&g);

    q.page = 9;
    list_rec(&q, &g);
    cr_assert_str_eq(g.json, "[]");
    got_free(&g);

    json_t *params = json_pack("[s,i]", "t1", 20);
    q = (struct store_list_query){.collection = c,
                                  .where_sql = "(\"title\" = ? AND \"views\" > ?)",
                                  .params = params,
                                  .order_sql = "\"views\" DESC",
                                  .page = 1,
                                  .per_page = 2};
    list_rec(&q, &g);
    cr_assert_eq(g.total, 3); /* 30, 50, 70 */
    arr = json_loads(g.json, 0, NULL);
    cr_assert_eq(json_array_size(arr), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(arr, 0), "views")), 70);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(arr, 1), "views")), 50);
    json_decref(arr);
    got_free(&g);
    json_decref(params);

    /* A name that is no column is an error, not SQLite's legacy string of
     * that name (which would match every row whose title is "nosuch"). */
    q = (struct store_list_query){
        .collection = c, .where_sql = "(\"nosuch\" = 'nosuch')", .page = 1, .per_page = 9};
    list_rec(&q, &g);
    cr_assert_eq(g.status, STORE_IO);
    got_free(&g);
    collection_release(c);
}

Test(store, alter_add_rename_drop_keeps_data)
{
    struct collection *v1 = posts_v1();
    cr_assert_eq(save(NULL, v1), STORE_OK);
    create_ok(v1, "{\"id\":\"fffffffffffff01\",\"title\":\"keep\",\"views\":5,\"done\":true}");

    /* rename title→headline and views→done, done→views (a swap), drop meta, add body */
    struct collection *v2 = coll_new("pbc_1", "articles");
    coll_add(v2, "text_id", "id", FIELD_TEXT);
    coll_add(v2, "f_title", "headline", FIELD_TEXT);
    coll_add(v2, "f_views", "done", FIELD_NUMBER);
    coll_add(v2, "f_done", "views", FIELD_BOOL);
    coll_add(v2, "f_tags", "tags", FIELD_SELECT)->opt.select.max_select = 3;
    coll_add(v2, "f_secret", "secret", FIELD_TEXT)->hidden = true;
    coll_add(v2, "f_body", "body", FIELD_TEXT);
    coll_index(v2, "idx_headline", true, "headline");
    cr_assert_eq(save(v1, v2), STORE_OK);

    expect_get(v2, "fffffffffffff01",
               "{\"collectionId\":\"pbc_1\",\"collectionName\":\"articles\","
               "\"id\":\"fffffffffffff01\",\"headline\":\"keep\",\"done\":5,\"views\":true,"
               "\"tags\":[],\"body\":\"\"}");
    create_ok(v2, "{\"id\":\"fffffffffffff02\",\"headline\":\"x\",\"body\":\"b\"}");
    struct got g = {0};
    write_rec(v2, NULL, true, -1, "{\"id\":\"fffffffffffff03\",\"headline\":\"keep\"}", &g);
    cr_assert_eq(g.status, STORE_UNIQUE);
    cr_assert(strstr(g.errors, "\"headline\""));
    got_free(&g);

    /* the old name is gone */
    struct collection *v3 = coll_new("pbc_9", "posts");
    coll_add(v3, "text_id", "id", FIELD_TEXT);
    cr_assert_eq(save(NULL, v3), STORE_OK);
    /* and the new one is taken, case-insensitively */
    struct collection *v4 = coll_new("pbc_8", "ARTICLES");
    cr_assert_eq(save(NULL, v4), STORE_UNIQUE);

    cr_assert_eq(save(v2, NULL), STORE_OK);
    get_rec(v2, "fffffffffffff01", false, &g);
    cr_assert_eq(g.status, STORE_IO);
    got_free(&g);
    struct collection *v5 = coll_new("pbc_7", "articles");
    coll_add(v5, "text_id", "id", FIELD_TEXT);
    cr_assert_eq(save(NULL, v5), STORE_OK);
    get_rec(v5, "fffffffffffff01", false, &g);
    cr_assert_eq(g.status, STORE_NOT_FOUND);
    got_free(&g);

    struct collection *bad = coll_new("pbc_6", "_cruder_meta");
    cr_assert_eq(save(NULL, bad), STORE_INVALID);
    collection_release(bad);
    collection_release(v1);
    collection_release(v2);
    collection_release(v3);
    collection_release(v4);
    collection_release(v5);
}

Test(store, partial_nocase_unique_index)
{
    struct collection *c = posts_coll(false);
    struct collection_index *ix = &c->indexes[0];
    ix->unique = true;
    ix->nocase = xcalloc(1, sizeof(bool));
    ix->nocase[0] = true;
    ix->where = xstrdup("\"title\" != ''");
    cr_assert_eq(save(NULL, c), STORE_OK);
    create_ok(c, "{\"id\":\"hhhhhhhhhhhhh01\"}");
    create_ok(c, "{\"id\":\"hhhhhhhhhhhhh02\"}"); /* empty titles stay out of the index */
    create_ok(c, "{\"id\":\"hhhhhhhhhhhhh03\",\"title\":\"Abc\"}");
    struct got g = {0};
    write_rec(c, NULL, true, -1, "{\"id\":\"hhhhhhhhhhhhh04\",\"title\":\"aBC\"}", &g);
    cr_assert_eq(g.status, STORE_UNIQUE);
    got_free(&g);

    struct collection *bad = posts_coll(false);
    free(bad->name);
    bad->name = xstrdup("other");
    free(bad->indexes[0].name);
    bad->indexes[0].name = xstrdup("idx_other");
    bad->indexes[0].where = xstrdup("1=1) ; DROP TABLE posts; --");
    cr_assert_eq(save(NULL, bad), STORE_INVALID);
    free(bad->indexes[0].where);
    bad->indexes[0].where = NULL;
    free(ix->nocase);
    ix->nocase = NULL;
    free(ix->where);
    ix->where = NULL;
    collection_release(bad);
    collection_release(c);
}

/* ---- group commit ---- */

static struct collection *gc_coll;
static atomic_int gc_merged;

static int merge_slow_first(void *arg, json_t *prev, json_t **out, json_t **errors)
{
    /* The first write holds the writer so that the others pile up behind it. */
    if (atomic_fetch_add(&gc_merged, 1) == 0)
        usleep(100 * 1000);
    *out = json_pack("{s:i}", "views", (int)(intptr_t)arg);
    return 0;
}

struct gc_state {
    pthread_mutex_t mu;
    int done, ok;
};

static void gc_done(void *arg, struct store_result *r)
{
    struct gc_state *s = arg;
    s->done++;
    if (r->status == STORE_OK)
        s->ok++;
}

static struct gc_state gc;

static void *gc_thread(void *p)
{
    intptr_t base = (intptr_t)p;
    for (intptr_t i = 0; i < 50; i++)
        st->ops->record_write(st, gc_coll, SLICE_NULL, true, -1, NULL, STORE_FIELDS_PUBLIC,
                              merge_slow_first, (void *)(base + i), NULL, gc_done, &gc);
    return NULL;
}

/* The value of the sample line starting with name (not its # HELP line). */
static uint64_t metric(const char *text, const char *name)
{
    char line[160];
    snprintf(line, sizeof(line), "\n%s", name);
    const char *p = strstr(text, line);
    cr_assert_not_null(p, "no %s", name);
    return strtoull(p + strlen(line), NULL, 10);
}

Test(store, group_commit_200_concurrent_writes)
{
    cfg.durability = DURABILITY_FULL;
    st->ops->close(st);
    open_store();
    gc_coll = posts_coll(false);
    cr_assert_eq(save(NULL, gc_coll), STORE_OK);
    pthread_t th[4];
    for (intptr_t i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, gc_thread, (void *)(i * 1000));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    while (gc.done < 200)
        loop_run_one();
    cr_assert_eq(gc.ok, 200);

    struct buf m = BUF_INIT;
    st->ops->metrics(st, &m);
    uint64_t writes = metric(m.ptr, "cruder_store_writes_total ");
    uint64_t commits = metric(m.ptr, "cruder_store_commits_total ");
    uint64_t ones = metric(m.ptr, "cruder_store_commit_batch_size_bucket{le=\"1\"} ");
    uint64_t count = metric(m.ptr, "cruder_store_commit_batch_size_count ");
    cr_assert_eq(writes, 200);
    cr_assert_eq(count, commits);
    cr_assert_lt(commits, 200, "no batching: %s", m.ptr);
    cr_assert_lt(ones, count, "every batch had one write");
    cr_assert_eq(metric(m.ptr, "cruder_store_write_queue_depth "), 0);
    cr_assert(strstr(m.ptr, "# TYPE cruder_store_commit_batch_size histogram\n"));
    buf_free(&m);

    struct got g = {0};
    struct store_list_query q = {.collection = gc_coll, .page = 1, .per_page = 1};
    list_rec(&q, &g);
    cr_assert_eq(g.total, 200);
    got_free(&g);
    collection_release(gc_coll);
}

static atomic_int busy_started;

static int merge_block(void *arg, json_t *prev, json_t **out, json_t **errors)
{
    atomic_store(&busy_started, 1);
    usleep(200 * 1000);
    *out = json_object();
    return 0;
}

Test(store, full_write_queue_answers_busy)
{
    cfg.max_write_queue = 1;
    st->ops->close(st);
    open_store();
    struct collection *c = posts_coll(false);
    cr_assert_eq(save(NULL, c), STORE_OK);
    struct got a = {0}, b = {0}, d = {0};
    st->ops->record_write(st, c, SLICE_NULL, true, -1, NULL, STORE_FIELDS_PUBLIC, merge_block, NULL,
                          NULL, on_result, &a);
    while (!atomic_load(&busy_started))
        usleep(1000);
    st->ops->record_write(st, c, SLICE_NULL, true, -1, NULL, STORE_FIELDS_PUBLIC, merge_block, NULL,
                          NULL, on_result, &b);
    st->ops->record_write(st, c, SLICE_NULL, true, -1, NULL, STORE_FIELDS_PUBLIC, merge_block, NULL,
                          NULL, on_result, &d);
    got_wait(&d);
    cr_assert_eq(d.status, STORE_BUSY);
    cr_assert_eq(a.done, 0, "BUSY must not wait for the writer");
    got_wait(&a);
    got_wait(&b);
    cr_assert_eq(a.status, STORE_OK);
    cr_assert_eq(b.status, STORE_OK);
    got_free(&a);
    got_free(&b);
    got_free(&d);
    collection_release(c);
}

Test(store, reopen_finds_everything)
{
    struct collection *c = posts_v1();
    cr_assert_eq(save(NULL, c), STORE_OK);
    create_ok(c, "{\"id\":\"ggggggggggggg01\",\"title\":\"durable\",\"tags\":[\"x\"]}");
    st->ops->close(st);
    collection_release(c);

    cfg.partitions = 99; /* ignored: P was fixed at creation */
    open_store();
    struct collection **list = NULL;
    size_t n = 0;
    char err[256];
    cr_assert_eq(st->ops->load_collections(st, &list, &n, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(list[0]->name, "posts");
    cr_assert_eq(list[0]->nfields, 7);
    expect_get(list[0], "ggggggggggggg01",
               "{\"collectionId\":\"pbc_1\",\"collectionName\":\"posts\","
               "\"id\":\"ggggggggggggg01\",\"title\":\"durable\",\"views\":0,"
               "\"done\":false,\"tags\":[\"x\"],\"meta\":null}");
    create_ok(list[0], "{\"id\":\"ggggggggggggg02\"}");
    struct got g = {0};
    st->ops->record_get(st, list[0], slice_cstr("ggggggggggggg02"), STORE_FIELDS_PUBLIC, NULL,
                        on_result, &g);
    got_wait(&g);
    got_free(&g);
    st->ops->close(st);
    st = NULL;

    char path[128];
    snprintf(path, sizeof(path), "%s/data.db", dir);
    sqlite3 *db;
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT (SELECT value FROM _cruder_meta WHERE key = "
                                    "'partitions'), _partition FROM posts WHERE id = "
                                    "'ggggggggggggg02'",
                                    -1, &s, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int64(s, 0), 16);
    cr_assert_eq(sqlite3_column_int64(s, 1), id_partition(slice_cstr("ggggggggggggg02"), 16));
    sqlite3_finalize(s);
    sqlite3_close(db);
    collection_release(list[0]);
    free(list);
}

/* ---- guards ---- */

static int guarded_write(const struct collection *c, const char *id, bool create,
                         const struct store_guard *gd, const char *body)
{
    json_t *patch = json_loads(body, 0, NULL);
    struct got g = {0};
    st->ops->record_write(st, c, slice_cstr(id), create, -1, gd, STORE_FIELDS_PUBLIC, merge_set,
                          patch, NULL, on_result, &g);
    got_wait(&g);
    json_decref(patch);
    int s = g.status;
    got_free(&g);
    return s;
}

static int guarded_delete(const struct collection *c, const char *id, const struct store_guard *gd)
{
    struct got g = {0};
    st->ops->record_delete(st, c, slice_cstr(id), -1, gd, NULL, on_result, &g);
    got_wait(&g);
    int s = g.status;
    got_free(&g);
    return s;
}

static int64_t views_of(const struct collection *c, const char *id)
{
    struct got g = {0};
    get_rec(c, id, false, &g);
    int64_t v = -1;
    if (g.status == STORE_OK) {
        json_t *rec = json_loads(g.json, 0, NULL);
        v = json_integer_value(json_object_get(rec, "views"));
        json_decref(rec);
    }
    got_free(&g);
    return v;
}

Test(store, guard_update_checks_stored_row)
{
    struct collection *c = posts_v1();
    cr_assert_eq(save(NULL, c), STORE_OK);
    create_ok(c, "{\"id\":\"hhhhhhhhhhhhh01\",\"title\":\"mine\",\"views\":1}");
    json_t *params = json_pack("[s]", "mine");
    struct store_guard gd = {.where_sql = "\"posts\".\"title\" = ?", .params = params};
    /* the guard sees the stored row, not the new one: the write may change the
     * very field the rule tests */
    cr_assert_eq(
        guarded_write(c, "hhhhhhhhhhhhh01", false, &gd, "{\"views\":2,\"title\":\"theirs\"}"),
        STORE_OK);
    cr_assert_eq(views_of(c, "hhhhhhhhhhhhh01"), 2);
    cr_assert_eq(guarded_write(c, "hhhhhhhhhhhhh01", false, &gd, "{\"views\":3}"), STORE_FORBIDDEN);
    cr_assert_eq(views_of(c, "hhhhhhhhhhhhh01"), 2);
    /* a missing record stays NOT_FOUND whatever the guard */
    cr_assert_eq(guarded_write(c, "hhhhhhhhhhhhh99", false, &gd, "{\"views\":3}"), STORE_NOT_FOUND);
    json_decref(params);
    collection_release(c);
}

Test(store, guard_create_checks_new_row_and_rolls_back)
{
    struct collection *c = posts_coll(false);
    cr_assert_eq(save(NULL, c), STORE_OK);
    json_t *params = json_pack("[i]", 10);
    struct store_guard gd = {
        .where_sql = "\"posts\".\"views\" >= ?", .params = params, .after = true};
    cr_assert_eq(guarded_write(c, NULL, true, &gd, "{\"id\":\"iiiiiiiiiiiii01\",\"views\":5}"),
                 STORE_FORBIDDEN);
    struct got g = {0};
    get_rec(c, "iiiiiiiiiiiii01", false, &g);
    cr_assert_eq(g.status, STORE_NOT_FOUND);
    got_free(&g);
    cr_assert_eq(guarded_write(c, NULL, true, &gd, "{\"id\":\"iiiiiiiiiiiii01\",\"views\":15}"),
                 STORE_OK);
    cr_assert_eq(views_of(c, "iiiiiiiiiiiii01"), 15);
    /* a guard that looks at other rows sees the batch's own earlier writes */
    struct store_guard count = {.where_sql = "(SELECT COUNT(*) FROM \"posts\") <= 2",
                                .after = true};
    cr_assert_eq(guarded_write(c, NULL, true, &count, "{\"id\":\"iiiiiiiiiiiii02\"}"), STORE_OK);
    cr_assert_eq(guarded_write(c, NULL, true, &count, "{\"id\":\"iiiiiiiiiiiii03\"}"),
                 STORE_FORBIDDEN);
    json_decref(params);
    collection_release(c);
}

Test(store, guard_delete_and_bad_sql)
{
    struct collection *c = posts_v1();
    cr_assert_eq(save(NULL, c), STORE_OK);
    create_ok(c, "{\"id\":\"jjjjjjjjjjjjj01\",\"views\":1}");
    json_t *params = json_pack("[i]", 2);
    struct store_guard gd = {.where_sql = "\"posts\".\"views\" = ?", .params = params};
    cr_assert_eq(guarded_delete(c, "jjjjjjjjjjjjj01", &gd), STORE_FORBIDDEN);
    cr_assert_eq(views_of(c, "jjjjjjjjjjjjj01"), 1);
    struct store_guard bad = {.where_sql = "no_such_column = 1"};
    cr_assert_eq(guarded_delete(c, "jjjjjjjjjjjjj01", &bad), STORE_IO);
    cr_assert_eq(views_of(c, "jjjjjjjjjjjjj01"), 1);
    struct store_guard any = {.where_sql = NULL};
    cr_assert_eq(guarded_delete(c, "jjjjjjjjjjjjj01", &any), STORE_OK);
    cr_assert_eq(views_of(c, "jjjjjjjjjjjjj01"), -1);
    json_decref(params);
    collection_release(c);
}

/* ---- relations ---- */

static struct field *rel_add(struct collection *c, const char *name, const char *target,
                             int64_t max_select, bool required, bool cascade)
{
    char id[64];
    snprintf(id, sizeof(id), "rel_%s", name);
    struct field *f = coll_add(c, id, name, FIELD_RELATION);
    f->opt.relation.collection_id = xstrdup(target);
    f->opt.relation.max_select = max_select;
    f->required = required;
    f->opt.relation.cascade_delete = cascade;
    return f;
}

static void expect_record(const struct collection *c, const char *id, const char *field,
                          const char *json)
{
    struct got g = {0};
    get_rec(c, id, false, &g);
    cr_assert_eq(g.status, STORE_OK, "get %s", id);
    json_t *rec = json_loads(g.json, 0, NULL);
    char *v = json_dumps(json_object_get(rec, field), JSON_COMPACT | JSON_ENCODE_ANY);
    cr_assert_str_eq(v, json, "%s.%s", id, field);
    free(v);
    json_decref(rec);
    got_free(&g);
}

static void expect_gone(const struct collection *c, const char *id)
{
    struct got g = {0};
    get_rec(c, id, false, &g);
    cr_assert_eq(g.status, STORE_NOT_FOUND, "%s still there", id);
    got_free(&g);
}

/* users <- posts.author (single, required), posts.editors (multiple),
 * comments.post (single, cascade), tags.posts (multiple, cascade) */
Test(store, relations_checked_and_deletes_cascade_or_refuse)
{
    struct collection *users = coll_new("pbc_u", "users");
    coll_add(users, "text_id", "id", FIELD_TEXT)->opt.text.primary_key = true;
    struct collection *posts = coll_new("pbc_p", "posts");
    coll_add(posts, "text_id", "id", FIELD_TEXT)->opt.text.primary_key = true;
    rel_add(posts, "author", "pbc_u", 1, false, false);
    rel_add(posts, "editors", "pbc_u", 5, false, false);
    struct collection *comments = coll_new("pbc_c", "comments");
    coll_add(comments, "text_id", "id", FIELD_TEXT)->opt.text.primary_key = true;
    rel_add(comments, "post", "pbc_p", 1, true, true);
    struct collection *tags = coll_new("pbc_t", "tags");
    coll_add(tags, "text_id", "id", FIELD_TEXT)->opt.text.primary_key = true;
    rel_add(tags, "posts", "pbc_p", 5, true, true);
    struct collection *all[] = {users, posts, comments, tags};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(save(NULL, all[i]), STORE_OK);
    schema_publish(all, 4);

    create_ok(users, "{\"id\":\"u1\"}");
    create_ok(users, "{\"id\":\"u2\"}");
    struct got g = {0};
    write_rec(posts, NULL, true, -1, "{\"id\":\"p0\",\"author\":\"nobody\"}", &g);
    cr_assert_eq(g.status, STORE_INVALID);
    cr_assert_str_eq(g.errors, "{\"author\":{\"code\":\"validation_missing_rel_records\","
                               "\"message\":\"Failed to find all relation records with the "
                               "provided ids.\"}}");
    got_free(&g);
    expect_gone(posts, "p0");
    write_rec(posts, NULL, true, -1, "{\"id\":\"p0\",\"editors\":[\"u1\",\"zz\"]}", &g);
    cr_assert_eq(g.status, STORE_INVALID);
    cr_assert(strstr(g.errors, "\"editors\""));
    got_free(&g);

    create_ok(posts, "{\"id\":\"p1\",\"author\":\"u1\",\"editors\":[\"u1\",\"u2\"]}");
    create_ok(posts, "{\"id\":\"p2\",\"author\":\"u2\",\"editors\":[\"u2\"]}");
    create_ok(comments, "{\"id\":\"c1\",\"post\":\"p1\"}");
    create_ok(comments, "{\"id\":\"c2\",\"post\":\"p2\"}");
    create_ok(tags, "{\"id\":\"t1\",\"posts\":[\"p1\"]}");
    create_ok(tags, "{\"id\":\"t2\",\"posts\":[\"p1\",\"p2\"]}");

    /* u1: p1.author cleared, u1 removed from p1.editors, versions bumped */
    struct got d = {0};
    st->ops->record_delete(st, users, slice_cstr("u1"), -1, NULL, NULL, on_result, &d);
    got_wait(&d);
    cr_assert_eq(d.status, STORE_OK);
    /* every record the cascade changed, for shared caches: one entry a field */
    cr_assert_str_eq(d.json, "[[\"pbc_p\",\"p1\",0],[\"pbc_p\",\"p1\",0]]");
    got_free(&d);
    expect_record(posts, "p1", "author", "\"\"");
    expect_record(posts, "p1", "editors", "[\"u2\"]");
    get_rec(posts, "p1", false, &g);
    cr_assert_eq(g.version, 3); /* one change per referencing field */
    got_free(&g);

    /* p1: c1 cascades, t1 (only p1) cascades, t2 keeps p2 */
    st->ops->record_delete(st, posts, slice_cstr("p1"), -1, NULL, NULL, on_result, &d);
    got_wait(&d);
    cr_assert_eq(d.status, STORE_OK);
    cr_assert_str_eq(d.json, "[[\"pbc_c\",\"c1\",1],[\"pbc_t\",\"t1\",1],"
                             "[\"pbc_t\",\"t2\",0]]");
    got_free(&d);
    expect_gone(posts, "p1");
    expect_gone(comments, "c1");
    expect_gone(tags, "t1");
    expect_record(tags, "t2", "posts", "[\"p2\"]");
    expect_record(comments, "c2", "post", "\"p2\"");

    /* a required, non-cascading reference refuses the delete, nothing changes */
    struct collection *notes = coll_new("pbc_n", "notes");
    coll_add(notes, "text_id", "id", FIELD_TEXT)->opt.text.primary_key = true;
    rel_add(notes, "owner", "pbc_u", 1, true, false);
    cr_assert_eq(save(NULL, notes), STORE_OK);
    struct collection *all2[] = {users, posts, comments, tags, notes};
    schema_publish(all2, 5);
    create_ok(notes, "{\"id\":\"n1\",\"owner\":\"u2\"}");
    st->ops->record_delete(st, users, slice_cstr("u2"), -1, NULL, NULL, on_result, &d);
    got_wait(&d);
    cr_assert_eq(d.status, STORE_INVALID);
    cr_assert_str_eq(d.errors, "{}");
    got_free(&d);
    expect_record(posts, "p2", "author", "\"u2\"");
    expect_record(notes, "n1", "owner", "\"u2\"");

    schema_publish(NULL, 0);
    collection_release(users);
    collection_release(posts);
    collection_release(comments);
    collection_release(tags);
    collection_release(notes);
}

/* ---- rendering ---- */

static void expect_string(const char *in, size_t n, const char *want)
{
    struct buf b = BUF_INIT;
    sq_json_string(&b, in, n);
    cr_assert_str_eq(b.ptr, want);
    buf_free(&b);
}

Test(store_json, strings_escape_controls_and_invalid_utf8)
{
    expect_string("plain", 5, "\"plain\"");
    expect_string("a\"b\\c\n\r\t", 8, "\"a\\\"b\\\\c\\n\\r\\t\"");
    expect_string("\x01\x1f", 2, "\"\\u0001\\u001f\"");
    expect_string("nul\0x", 5, "\"nul\\u0000x\"");
    expect_string("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
                  "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    expect_string("\xff", 1, "\"\xef\xbf\xbd\"");
    expect_string("\xc3", 1, "\"\xef\xbf\xbd\"");                                 /* truncated */
    expect_string("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");                 /* overlong */
    expect_string("\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* surrogate */
}

static void expect_double(double d, const char *want)
{
    struct buf b = BUF_INIT;
    sq_json_double(&b, d);
    cr_assert_str_eq(b.ptr, want);
    buf_free(&b);
}

Test(store_json, numbers)
{
    expect_double(3.0, "3");
    expect_double(-2.0, "-2");
    expect_double(0.1, "0.1");
    expect_double(1.0 / 3.0, "0.33333333333333331");
    expect_double(1e300, "1e+300");
    expect_double(0.0 / 0.0, "0");
}

/* Another process on the same data (a second store here) sees a saved
 * collection through collections_reload; nothing changed means 0. */
Test(store, collections_reload_sees_saves_of_another_store)
{
    struct store *other;
    char err[256] = "";
    cr_assert_eq(store_sqlite_open(&cfg, test_post, &other, err, sizeof(err)), 0, "%s", err);
    int64_t version = 0;
    struct collection **list = NULL;
    size_t n = 99;
    cr_assert_eq(other->ops->collections_reload(other, &version, &list, &n, err, sizeof(err)), 0,
                 "no save yet: %s", err);
    cr_assert_eq(version, 0);

    struct collection *c = posts_v1();
    cr_assert_eq(save(NULL, c), STORE_OK);
    cr_assert_eq(other->ops->collections_reload(other, &version, &list, &n, err, sizeof(err)), 1,
                 "%s", err);
    cr_assert_eq(version, 1);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(list[0]->name, c->name);
    collection_release(list[0]);
    free(list);
    list = NULL;
    cr_assert_eq(other->ops->collections_reload(other, &version, &list, &n, err, sizeof(err)), 0);
    cr_assert_null(list);

    cr_assert_eq(save(c, NULL), STORE_OK);
    cr_assert_eq(other->ops->collections_reload(other, &version, &list, &n, err, sizeof(err)), 1);
    cr_assert_eq(version, 2);
    cr_assert_eq(n, 0);
    free(list);
    other->ops->close(other);
    collection_release(c);
}
