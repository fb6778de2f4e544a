/* libFuzzer target for rule_compile: any input either fails with an error or
 * compiles to SQL that SQLite prepares against the collections' tables, with
 * exactly as many parameters as it binds. */
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "domain/filter.h"
#include "domain/schema.h"

static struct schema *schema;
static struct collection *posts;
static sqlite3 *db;
static json_t *auth, *body;

static struct collection *coll(const char *text)
{
    json_t *b = json_loads(text, 0, NULL), *errors = NULL;
    struct collection *c = collection_from_json(b, NULL, &errors);
    json_decref(b);
    if (!c)
        abort();
    return c;
}

static void init(void)
{
    struct collection *teams = coll("{\"id\":\"pbc_t\",\"name\":\"teams\",\"fields\":[{\"name\":"
                                    "\"name\",\"type\":\"text\"}]}");
    struct collection *users =
        coll("{\"id\":\"pbc_u\",\"name\":\"users\",\"fields\":[{\"name\":\"team\",\"type\":"
             "\"relation\",\"collectionId\":\"pbc_t\"},{\"name\":\"n\",\"type\":\"number\"},"
             "{\"name\":\"friends\",\"type\":\"relation\",\"collectionId\":\"pbc_u\","
             "\"maxSelect\":5}]}");
    posts = coll("{\"id\":\"pbc_p\",\"name\":\"posts\",\"fields\":[{\"name\":\"title\","
                 "\"type\":\"text\"},{\"name\":\"author\",\"type\":\"relation\","
                 "\"collectionId\":\"pbc_u\"},{\"name\":\"tags\",\"type\":\"select\","
                 "\"values\":[\"a\",\"b\"],\"maxSelect\":2},{\"name\":\"meta\",\"type\":"
                 "\"json\"},{\"name\":\"views\",\"type\":\"number\"},{\"name\":\"editors\","
                 "\"type\":\"relation\",\"collectionId\":\"pbc_u\",\"maxSelect\":5}]}");
    struct collection *all[] = {teams, users, posts};
    schema_publish(all, 3);
    schema = schema_current();
    sqlite3_open(":memory:", &db);
    sqlite3_exec(db,
                 "CREATE TABLE teams (id TEXT, name TEXT);"
                 "CREATE TABLE users (id TEXT, team TEXT, n NUMERIC, friends JSON);"
                 "CREATE TABLE posts (id TEXT, title TEXT, author TEXT, tags JSON, meta JSON, "
                 "views NUMERIC, editors JSON);",
                 NULL, NULL, NULL);
    auth =
        json_pack("{s:s,s:s,s:s,s:i}", "id", "u1", "collectionName", "users", "team", "t1", "n", 3);
    body = json_pack("{s:s,s:[s]}", "title", "x", "tags", "a");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!db)
        init();
    struct rule_request rq = {.auth = auth, .body = body, .method = "POST", .context = "default"};
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    struct filter_error err;
    buf_append_cstr(&sql, "SELECT 1 FROM \"posts\" WHERE ");
    if (rule_compile(schema, posts, slice_make((const char *)data, size), &rq, 0, &sql, params,
                     &err) == 0) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql.ptr, (int)sql.len, &st, NULL) != SQLITE_OK)
            abort();
        if ((size_t)sqlite3_bind_parameter_count(st) != json_array_size(params))
            abort();
        sqlite3_finalize(st);
    }
    json_decref(params);
    buf_free(&sql);
    return 0;
}
