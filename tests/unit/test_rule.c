/* The rule compiler: @request.* values bound as parameters, relation
 * traversal through single relations as correlated subqueries, the limits,
 * exact SQL, and the compiled rules run against a real SQLite table. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "domain/filter.h"
#include "domain/schema.h"

static struct collection *coll(const char *body)
{
    json_t *b = json_loads(body, 0, NULL), *errors = NULL;
    cr_assert(b, "bad JSON %s", body);
    struct collection *c = collection_from_json(b, NULL, &errors);
    cr_assert(c, "collection refused");
    json_decref(b);
    return c;
}

static struct collection *teams, *users, *posts;
static struct schema *schema;

static void setup(void)
{
    teams = coll("{\"id\":\"pbc_t\",\"name\":\"teams\",\"fields\":[{\"name\":\"name\","
                 "\"type\":\"text\"}]}");
    users = coll("{\"id\":\"pbc_u\",\"name\":\"users\",\"type\":\"auth\",\"fields\":["
                 "{\"name\":\"team\",\"type\":\"relation\",\"collectionId\":\"pbc_t\"},"
                 "{\"name\":\"friends\",\"type\":\"relation\",\"collectionId\":\"pbc_u\","
                 "\"maxSelect\":9}]}");
    posts = coll("{\"id\":\"pbc_p\",\"name\":\"posts\",\"fields\":["
                 "{\"name\":\"title\",\"type\":\"text\"},"
                 "{\"name\":\"author\",\"type\":\"relation\",\"collectionId\":\"pbc_u\"}]}");
    struct collection *all[] = {teams, users, posts};
    schema_publish(all, 3);
    schema = schema_current();
}

static void teardown(void)
{
    schema_release(schema);
    schema_publish(NULL, 0);
    collection_release(teams);
    collection_release(users);
    collection_release(posts);
}

TestSuite(rule, .init = setup, .fini = teardown);

static json_t *auth_u1(void)
{
    return json_pack("{s:s,s:s,s:s,s:s}", "id", "u1", "collectionName", "users", "team", "t1",
                     "email", "a@x.io");
}

static void expect_sql(const char *rule, const struct rule_request *rq, const char *want_sql,
                       const char *want_params)
{
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    struct filter_error err = {0};
    int rc = rule_compile(schema, posts, slice_cstr(rule), rq, 0, &sql, params, &err);
    cr_assert_eq(rc, 0, "%s: %s", rule, err.message);
    cr_assert_str_eq(sql.ptr, want_sql, "%s => %s", rule, sql.ptr);
    char *p = json_dumps(params, JSON_COMPACT);
    cr_assert_str_eq(p, want_params, "%s", rule);
    free(p);
    json_decref(params);
    buf_free(&sql);
}

static void expect_fail(const char *rule, const char *want_message)
{
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    struct filter_error err = {0};
    struct rule_request rq = {.method = "GET"};
    cr_assert_eq(rule_compile(schema, posts, slice_cstr(rule), &rq, 0, &sql, params, &err), -1,
                 "accepted %s", rule);
    cr_assert_str_eq(err.message, want_message, "%s", rule);
    json_decref(params);
    buf_free(&sql);
}

Test(rule, request_values_are_bound)
{
    json_t *auth = auth_u1();
    json_t *body = json_pack("{s:s,s:[s,s]}", "title", "Hi", "tags", "a", "b");
    json_t *query = json_pack("{s:s}", "page", "2");
    json_t *headers = json_pack("{s:s}", "x_token", "abc");
    struct rule_request rq = {.auth = auth,
                              .body = body,
                              .query = query,
                              .headers = headers,
                              .method = "POST",
                              .context = "default"};
    expect_sql("@request.auth.id != ''", &rq, "? IS NOT ''", "[\"u1\"]");
    expect_sql("author = @request.auth.id", &rq, "\"author\" = ?", "[\"u1\"]");
    expect_sql("@request.body.title:isset = true && @request.body.views:isset = false", &rq,
               "(1 = 1 AND 0 = 0)", "[]");
    expect_sql("@request.body.tags:length > 1", &rq, "? > ?", "[2,1]");
    expect_sql("@request.body.title:lower = 'hi'", &rq, "LOWER(?) = ?", "[\"Hi\",\"hi\"]");
    expect_sql("@request.query.page = '2' && @request.headers.x_token = 'abc'", &rq,
               "(? = ? AND ? = ?)", "[\"2\",\"2\",\"abc\",\"abc\"]");
    expect_sql("@request.method = 'POST' && @request.context != 'expand'", &rq,
               "(? = ? AND ? IS NOT ?)", "[\"POST\",\"POST\",\"default\",\"expand\"]");
    struct rule_request anon = {.method = "GET"};
    expect_sql("@request.auth.id != ''", &anon, "'' IS NOT ''", "[]");
    expect_sql("@request.auth.team = 'x'", &anon, "'' = ?", "[\"x\"]");
    json_decref(auth);
    json_decref(body);
    json_decref(query);
    json_decref(headers);
}

Test(rule, single_relations_traverse_as_subqueries)
{
    json_t *auth = auth_u1();
    struct rule_request rq = {.auth = auth, .method = "GET"};
    expect_sql("author.team = @request.auth.team", &rq,
               "(SELECT \"__rel 1\".\"team\" FROM \"users\" AS \"__rel 1\" WHERE "
               "\"__rel 1\".\"id\" = \"posts\".\"author\") = ?",
               "[\"t1\"]");
    expect_sql("author.team.name = 'red'", &rq,
               "(SELECT \"__rel 2\".\"name\" FROM \"users\" AS \"__rel 1\", \"teams\" AS "
               "\"__rel 2\" WHERE \"__rel 1\".\"id\" = \"posts\".\"author\" AND \"__rel 2\".\"id\" "
               "= \"__rel 1\".\"team\") = ?",
               "[\"red\"]");
    json_decref(auth);
}

Test(rule, refusals_and_limits)
{
    expect_fail("@request.auth.password = 'x'", "non-filterable field \"password\"");
    expect_fail("@request.auth.tokenKey = 'x'", "non-filterable field \"tokenKey\"");
    expect_fail("author.password = 'x'", "unknown or non-filterable field \"password\"");
    expect_fail("author.tokenKey = 'x'", "unknown or non-filterable field \"tokenKey\"");
    expect_fail("author.friends.name = 'x'",
                "multiple relation \"friends\" cannot be traversed yet");
    expect_fail("@request.nope = 1", "unknown request field \"@request.nope\"");
    expect_fail("@collection.users.id = 'x'", "@collection.* fields are not supported yet");
    /* every hop counts towards RULE_MAX_JOINS, across the whole rule */
    char rule[1024] = "";
    for (int i = 0; i <= RULE_MAX_JOINS; i++)
        strcat(rule, i ? " && author.team = ''" : "author.team = ''");
    expect_fail(rule, "too many relation joins (max 8)");
    /* user filters may traverse too, but not reach @request */
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    struct filter_error err = {0};
    cr_assert_eq(
        filter_compile(posts, SLICE_LIT("author.team.name = 'red'"), 0, &sql, params, &err), 0,
        "%s", err.message);
    cr_assert_eq(filter_compile(posts, SLICE_LIT("@request.auth.id = ''"), 0, &sql, params, &err),
                 -1);
    json_decref(params);
    buf_free(&sql);
}

/* ---- end to end ---- */

static sqlite3 *db_with_data(void)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    const char *ddl =
        "CREATE TABLE teams (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '');"
        "CREATE TABLE users (id TEXT PRIMARY KEY, team TEXT NOT NULL DEFAULT '', friends JSON "
        "NOT NULL DEFAULT '[]', email TEXT, emailVisibility BOOLEAN, password TEXT, tokenKey "
        "TEXT, verified BOOLEAN);"
        "CREATE TABLE posts (id TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '', author TEXT NOT "
        "NULL DEFAULT '');"
        "INSERT INTO teams VALUES ('t1','red'),('t2','blue');"
        "INSERT INTO users (id, team) VALUES ('u1','t1'),('u2','t2'),('u3','');"
        "INSERT INTO posts VALUES ('p1','a','u1'),('p2','b','u2'),('p3','c','u3'),('p4','d','');";
    cr_assert_eq(sqlite3_exec(db, ddl, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    return db;
}

static void expect_rows(sqlite3 *db, const char *rule, const struct rule_request *rq,
                        const char *want)
{
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    struct filter_error err = {0};
    buf_append_cstr(&sql, "SELECT group_concat(id, ',') FROM (SELECT id FROM posts WHERE ");
    cr_assert_eq(rule_compile(schema, posts, slice_cstr(rule), rq, 0, &sql, params, &err), 0, "%s",
                 err.message);
    buf_append_cstr(&sql, " ORDER BY id)");
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql.ptr, -1, &st, NULL), SQLITE_OK, "%s: %s", sql.ptr,
                 sqlite3_errmsg(db));
    for (size_t i = 0; i < json_array_size(params); i++) {
        json_t *v = json_array_get(params, i);
        if (json_is_string(v))
            sqlite3_bind_text(st, (int)i + 1, json_string_value(v), -1, SQLITE_TRANSIENT);
        else if (json_is_integer(v))
            sqlite3_bind_int64(st, (int)i + 1, json_integer_value(v));
        else
            sqlite3_bind_null(st, (int)i + 1);
    }
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    const char *got = (const char *)sqlite3_column_text(st, 0);
    cr_assert_str_eq(got ? got : "", want, "%s", rule);
    sqlite3_finalize(st);
    json_decref(params);
    buf_free(&sql);
}

Test(rule, compiled_rules_select_the_right_rows)
{
    sqlite3 *db = db_with_data();
    json_t *auth = auth_u1();
    struct rule_request me = {.auth = auth, .method = "GET"};
    struct rule_request anon = {.method = "GET"};
    expect_rows(db, "author = @request.auth.id", &me, "p1");
    expect_rows(db, "author = @request.auth.id", &anon, "p4");
    expect_rows(db, "@request.auth.id != '' && author = @request.auth.id", &anon, "");
    expect_rows(db, "author.team = @request.auth.team", &me, "p1");
    expect_rows(db, "author.team.name = 'blue'", &me, "p2");
    expect_rows(db, "author.team.name != 'blue'", &me, "p1,p3,p4");
    expect_rows(db, "author.team.name = ''", &me, "p3,p4");
    expect_rows(db, "author.team.name ~ 'e' && title != 'a'", &me, "p2");
    sqlite3_close(db);
    json_decref(auth);
}
