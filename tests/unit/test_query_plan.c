/* Compiled filters and sorts use the collection's indexes: the SQL they make
 * is planned by SQLite, on a table the store created, with the index the
 * collection declares. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "domain/filter.h"
#include "roles/roles.h"

static char dir[] = "/tmp/cruder-plan-XXXXXX";

/* Creates the collection through the store and returns it. */
static struct collection *make_collection(void)
{
    cr_assert_not_null(mkdtemp(dir));
    struct config cfg;
    config_defaults(&cfg);
    free(cfg.dir);
    cfg.dir = strdup(dir);
    cfg.store_readers = 1;
    struct store *st;
    char err[256];
    cr_assert_eq(store_sqlite_open(&cfg, store_sync_post, &st, err, sizeof(err)), 0, "%s", err);
    json_t *def = json_loads("{\"name\":\"posts\",\"type\":\"base\",\"fields\":["
                             "{\"name\":\"title\",\"type\":\"text\"},"
                             "{\"name\":\"score\",\"type\":\"number\"}],"
                             "\"indexes\":[\"CREATE INDEX idx_posts_score ON posts (score)\"]}",
                             0, NULL);
    json_t *errors = NULL;
    struct collection *c = collection_from_json(def, NULL, &errors);
    json_decref(def);
    cr_assert_not_null(c);
    struct store_sync *sync = store_sync_new();
    st->ops->collection_save(st, NULL, c, NULL, store_sync_cb, sync);
    cr_assert_eq(store_sync_wait(sync)->status, STORE_OK);
    store_sync_free(sync);
    st->ops->close(st);
    config_free(&cfg);
    return c;
}

/* The query plan of SELECT ... WHERE <filter> ORDER BY <sort>, one line. */
static void plan(const struct collection *c, const char *filter, const char *sort, struct buf *out)
{
    struct buf where = BUF_INIT, order = BUF_INIT, sql = BUF_INIT;
    json_t *params = json_array();
    struct filter_error fe;
    cr_assert_eq(filter_compile(c, slice_cstr(filter), 0, &where, params, &fe), 0, "%s",
                 fe.message);
    cr_assert_eq(sort_compile(c, slice_cstr(sort), &order, &fe), 0, "%s", fe.message);
    buf_appendf(&sql, "EXPLAIN QUERY PLAN SELECT \"id\" FROM \"posts\" WHERE %s ORDER BY %s",
                where.ptr, order.ptr);
    char path[256];
    snprintf(path, sizeof(path), "%s/data.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_prepare_v2(db, sql.ptr, -1, &s, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(db));
    for (size_t i = 0; i < json_array_size(params); i++) {
        json_t *v = json_array_get(params, i);
        if (json_is_integer(v))
            sqlite3_bind_int64(s, (int)i + 1, json_integer_value(v));
        else if (json_is_real(v))
            sqlite3_bind_double(s, (int)i + 1, json_real_value(v));
        else if (json_is_string(v))
            sqlite3_bind_text(s, (int)i + 1, json_string_value(v), -1, SQLITE_TRANSIENT);
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
        buf_append_cstr(out, (const char *)sqlite3_column_text(s, 3));
        buf_append_char(out, ';');
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    json_decref(params);
    buf_free(&where);
    buf_free(&order);
    buf_free(&sql);
}

Test(query_plan, equality_and_ranges_search_the_index)
{
    struct collection *c = make_collection();
    struct buf p = BUF_INIT;
    plan(c, "score = 5", "id", &p);
    cr_assert(strstr(p.ptr, "SEARCH posts USING INDEX idx_posts_score (score=?)"), "%s", p.ptr);
    buf_reset(&p);
    plan(c, "score > 100 && score <= 200", "score", &p);
    cr_assert(strstr(p.ptr, "USING INDEX idx_posts_score (score>? AND score<?)"), "%s", p.ptr);
    cr_assert_null(strstr(p.ptr, "TEMP B-TREE"), "the index gives the order too: %s", p.ptr);
    buf_free(&p);
    collection_release(c);
}

Test(query_plan, sorting_on_an_indexed_field_needs_no_sort_step)
{
    struct collection *c = make_collection();
    struct buf p = BUF_INIT;
    plan(c, "title != ''", "-score", &p);
    cr_assert(strstr(p.ptr, "idx_posts_score"), "%s", p.ptr);
    cr_assert_null(strstr(p.ptr, "TEMP B-TREE"), "%s", p.ptr);
    buf_free(&p);
    collection_release(c);
}
