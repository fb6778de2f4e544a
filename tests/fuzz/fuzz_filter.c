/* Arbitrary bytes as a filter and as a sort against a fixed collection: no
 * crash, and whatever compiles must prepare as valid SQL on a matching table
 * with exactly as many ?s as parameters. */
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>

#include "domain/filter.h"

static struct field fields[] = {
    {.name = "id", .type = FIELD_TEXT, .system = true},
    {.name = "title", .type = FIELD_TEXT},
    {.name = "count", .type = FIELD_NUMBER},
    {.name = "active", .type = FIELD_BOOL},
    {.name = "tags", .type = FIELD_SELECT, .opt.select.max_select = 3},
    {.name = "status", .type = FIELD_SELECT, .opt.select.max_select = 1},
    {.name = "data", .type = FIELD_JSON},
    {.name = "created", .type = FIELD_AUTODATE},
    {.name = "email", .type = FIELD_EMAIL},
    {.name = "emailVisibility", .type = FIELD_BOOL},
    {.name = "value", .type = FIELD_TEXT},
    {.name = "key", .type = FIELD_SELECT, .opt.select.max_select = 2},
};
static struct collection coll = {.name = "t",
                                 .type = COLLECTION_AUTH,
                                 .fields = fields,
                                 .nfields = sizeof fields / sizeof fields[0]};

static sqlite3 *db;

static void prepare(const char *sql, int nparams)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK || !st)
        abort();
    if (sqlite3_bind_parameter_count(st) != nparams)
        abort();
    sqlite3_finalize(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!db) {
        if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
            sqlite3_exec(db,
                         "CREATE TABLE t (id TEXT PRIMARY KEY, title TEXT, count NUMERIC,"
                         " active BOOLEAN, tags JSON, status TEXT, data JSON, created TEXT,"
                         " email TEXT, emailVisibility BOOLEAN, value TEXT, key JSON)",
                         NULL, NULL, NULL) != SQLITE_OK)
            abort();
    }
    struct slice in = slice_make((const char *)data, size);
    struct filter_error err;

    struct buf sql = BUF_INIT;
    buf_append_cstr(&sql, "SELECT id FROM t WHERE ");
    json_t *params = json_array();
    if (filter_compile(&coll, in, 1700000000123LL, &sql, params, &err) == 0)
        prepare(sql.ptr, (int)json_array_size(params));
    else if (err.position > size || err.message[0] == '\0')
        abort();
    json_decref(params);

    buf_reset(&sql);
    buf_append_cstr(&sql, "SELECT id FROM t ORDER BY ");
    if (sort_compile(&coll, in, &sql, &err) == 0)
        prepare(sql.ptr, 0);
    else if (err.position > size || err.message[0] == '\0')
        abort();
    buf_free(&sql);
    return 0;
}
