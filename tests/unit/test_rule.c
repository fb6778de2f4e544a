/* The rule compiler: @request.* values bound as parameters, paths through
 * single and multiple relations, back-relations and @collection joins with
 * PocketBase's shared joins and multi-match semantics, the limits, exact SQL,
 * and the compiled rules run against real SQLite tables. */
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

static struct collection *teams, *users, *posts, *comments;
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
                 "{\"name\":\"author\",\"type\":\"relation\",\"collectionId\":\"pbc_u\"},"
                 "{\"name\":\"editors\",\"type\":\"relation\",\"collectionId\":\"pbc_u\","
                 "\"maxSelect\":9}]}");
    comments = coll("{\"id\":\"pbc_c\",\"name\":\"comments\",\"fields\":["
                    "{\"name\":\"post\",\"type\":\"relation\",\"collectionId\":\"pbc_p\"},"
                    "{\"name\":\"text\",\"type\":\"text\"},"
                    "{\"name\":\"score\",\"type\":\"number\"}]}");
    struct collection *all[] = {teams, users, posts, comments};
    schema_publish(all, 4);
    schema = schema_current();
}

static void teardown(void)
{
    schema_release(schema);
    schema_publish(NULL, 0);
    collection_release(teams);
    collection_release(users);
    collection_release(posts);
    collection_release(comments);
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

Test(rule, relation_paths_share_left_joins)
{
    json_t *auth = auth_u1();
    struct rule_request rq = {.auth = auth, .method = "GET"};
    expect_sql("author.team = @request.auth.team", &rq,
               "EXISTS (SELECT 1 FROM (SELECT 1) AS \"__j\" LEFT JOIN \"users\" AS \"__j0\" ON "
               "\"__j0\".\"id\" = \"posts\".\"author\" WHERE \"__j0\".\"team\" = ?)",
               "[\"t1\"]");
    /* the two terms name one join; own columns are qualified inside it */
    expect_sql("author.team.name = 'red' && author.id != '' && title = 'x'", &rq,
               "EXISTS (SELECT 1 FROM (SELECT 1) AS \"__j\" LEFT JOIN \"users\" AS \"__j0\" ON "
               "\"__j0\".\"id\" = \"posts\".\"author\" LEFT JOIN \"teams\" AS \"__j1\" ON "
               "\"__j1\".\"id\" = \"__j0\".\"team\" WHERE (\"__j1\".\"name\" = ? AND "
               "(\"posts\".\"author\" IS NOT '' AND \"posts\".\"author\" IS NOT NULL) AND "
               "\"posts\".\"title\" = ?))",
               "[\"red\",\"x\"]");
    json_decref(auth);
}

Test(rule, multi_valued_paths_get_a_multi_match_subquery)
{
    struct rule_request rq = {.method = "GET"};
    const char *src =
        "CASE WHEN json_valid(\"posts\".\"editors\") THEN (CASE WHEN "
        "json_type(\"posts\".\"editors\") = 'array' THEN \"posts\".\"editors\" ELSE "
        "json_array(\"posts\".\"editors\") END) ELSE json_array(\"posts\".\"editors\") "
        "END";
    const char *msrc = "CASE WHEN json_valid(\"__m1\".\"editors\") THEN (CASE WHEN "
                       "json_type(\"__m1\".\"editors\") = 'array' THEN \"__m1\".\"editors\" ELSE "
                       "json_array(\"__m1\".\"editors\") END) ELSE "
                       "json_array(\"__m1\".\"editors\") END";
    char want[4096];
    /* any-of: the shared row only */
    snprintf(want, sizeof want,
             "EXISTS (SELECT 1 FROM (SELECT 1) AS \"__j\" LEFT JOIN json_each(%s) AS \"__j0\" "
             "LEFT JOIN \"users\" AS \"__j1\" ON \"__j1\".\"id\" = \"__j0\".value WHERE "
             "\"__j1\".\"team\" = ?)",
             src);
    expect_sql("editors.team ?= 't1'", &rq, want, "[\"t1\"]");
    /* plain operator: the shared row and every value */
    snprintf(want, sizeof want,
             "EXISTS (SELECT 1 FROM (SELECT 1) AS \"__j\" LEFT JOIN json_each(%s) AS \"__j0\" "
             "LEFT JOIN \"users\" AS \"__j1\" ON \"__j1\".\"id\" = \"__j0\".value WHERE "
             "(\"__j1\".\"team\" = ? AND NOT EXISTS (SELECT 1 FROM (SELECT \"__m2\".\"team\" AS "
             "\"__mm v\" FROM \"posts\" AS \"__m1\" LEFT JOIN json_each(%s) AS \"__m3\" LEFT "
             "JOIN \"users\" AS \"__m2\" ON \"__m2\".\"id\" = \"__m3\".value WHERE "
             "\"__m1\".\"id\" = \"posts\".\"id\") AS \"__sm4\" WHERE NOT (\"__sm4\".\"__mm v\" = "
             "?))))",
             src, msrc);
    expect_sql("editors.team = 't1'", &rq, want, "[\"t1\",\"t1\"]");
    expect_sql("comments_via_post.text ?= 'x'", &rq,
               "EXISTS (SELECT 1 FROM (SELECT 1) AS \"__j\" LEFT JOIN \"comments\" AS \"__j0\" ON "
               "\"posts\".\"id\" IN (SELECT \"__m3\".value FROM json_each(CASE WHEN "
               "json_valid(\"__j0\".\"post\") THEN (CASE WHEN json_type(\"__j0\".\"post\") = "
               "'array' THEN \"__j0\".\"post\" ELSE json_array(\"__j0\".\"post\") END) ELSE "
               "json_array(\"__j0\".\"post\") END) AS \"__m3\") WHERE \"__j0\".\"text\" = ?)",
               "[\"x\"]");
    expect_sql("@collection.teams.name ?= 'red'", &rq,
               "EXISTS (SELECT 1 FROM (SELECT 1) AS \"__j\" LEFT JOIN \"teams\" AS \"__j0\" ON 1 "
               "WHERE \"__j0\".\"name\" = ?)",
               "[\"red\"]");
}

Test(rule, refusals_and_limits)
{
    expect_fail("@request.auth.password = 'x'", "non-filterable field \"password\"");
    expect_fail("@request.auth.tokenKey = 'x'", "non-filterable field \"tokenKey\"");
    expect_fail("author.password = 'x'", "non-filterable field \"password\"");
    expect_fail("author.tokenKey = 'x'", "non-filterable field \"tokenKey\"");
    expect_fail("author.nope = 'x'", "unknown field \"nope\"");
    expect_fail("title.x = 'x'", "field \"title\" has no subfields");
    expect_fail("author:lower.team = 'x'", "unknown modifier \":lower.team\"");
    expect_fail("editors:each.team = 'x'", "unknown modifier \":each.team\"");
    expect_fail("nope_via_post.text = 'x'", "unknown back-relation collection \"nope\"");
    expect_fail("comments_via_text.text = 'x'", "invalid back-relation \"comments_via_text\"");
    expect_fail("author.friends:isset = 'x'", "unsupported modifier \":isset\"");
    expect_fail("@request.nope = 1", "unknown request field \"@request.nope\"");
    expect_fail("@collection.nope.id = 'x'", "unknown collection \"nope\"");
    expect_fail("@collection.users = 'x'", "invalid @collection field \"@collection.users\"");
    /* PocketBase's maxNestedRels: at most 6 hops in one path */
    expect_fail("author.friends.friends.friends.friends.friends.friends.team = ''",
                "max nested relations reached (max 6)");
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
        "NULL DEFAULT '', editors JSON NOT NULL DEFAULT '[]');"
        "CREATE TABLE comments (id TEXT PRIMARY KEY, post TEXT NOT NULL DEFAULT '', text TEXT NOT "
        "NULL DEFAULT '', score NUMERIC NOT NULL DEFAULT 0);"
        "INSERT INTO teams VALUES ('t1','red'),('t2','blue');"
        "INSERT INTO users (id, team, friends) VALUES ('u1','t1','[\"u2\",\"u3\"]'),"
        "('u2','t2','[\"u1\"]'),('u3','','[]');"
        "INSERT INTO posts VALUES ('p1','a','u1','[\"u1\",\"u2\"]'),('p2','b','u2','[\"u2\"]'),"
        "('p3','c','u3','[]'),('p4','d','','[\"u3\"]');"
        "INSERT INTO comments VALUES ('c1','p1','x',1),('c2','p1','y',5),('c3','p2','x',3);";
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
    /* multiple relations: any-of needs one value, plain operators all of them */
    expect_rows(db, "editors.team ?= 't1'", &me, "p1");
    expect_rows(db, "editors.team = 't2'", &me, "p2");
    expect_rows(db, "editors.team != 't2'", &me, "p3,p4"); /* none of none is t2 */
    expect_rows(db, "editors.id ?= 'u3'", &me, "p4");
    /* one shared row for both terms: no editor is in both teams */
    expect_rows(db, "editors.team.name ?= 'blue' && editors.team.name ?= 'red'", &me, "");
    expect_rows(db, "editors.team.name ?= 'blue' || editors.team.name ?= 'red'", &me, "p1,p2");
    expect_rows(db, "editors:length = 2 && editors:each ?= 'u2'", &me, "p1");
    expect_rows(db, "editors.friends:length > 1", &me, "");
    expect_rows(db, "editors.friends:length ?> 1", &me, "p1");
    expect_rows(db, "editors.friends:each ?= 'u1'", &me, "p1,p2");
    expect_rows(db, "editors.team:lower ?= 't2' && editors.team:lower ?= 't1'", &me, "");
    /* back-relations */
    expect_rows(db, "comments_via_post.text ?= 'x'", &me, "p1,p2");
    expect_rows(db, "comments_via_post.score > 2", &me, "p2");
    expect_rows(db, "comments_via_post.score ?> 2 && comments_via_post.text ?= 'x'", &me, "p2");
    expect_rows(db, "comments_via_post.id = ''", &me, "p3,p4");
    expect_rows(db, "author.posts_via_author.title ?= 'a'", &me, "p1");
    /* @collection joins */
    expect_rows(db, "@collection.teams.name ?= 'red' && author.team ?= @collection.teams.id", &me,
                "p1");
    /* a plain operator over @collection means every row of it */
    expect_rows(db, "author.team = @collection.teams.id", &me, "");
    expect_rows(db, "@collection.teams.name = 'red'", &me, "");
    expect_rows(db,
                "@collection.teams:a.name ?= 'red' && @collection.teams:b.name ?= 'blue' && "
                "author.team ?= @collection.teams:b.id",
                &me, "p2");
    /* the caller's own relations */
    expect_rows(db, "@request.auth.friends.team ?= 't2'", &me, "p1,p2,p3,p4");
    expect_rows(db, "@request.auth.friends.team ?= 't2'", &anon, "");
    expect_rows(db, "author.friends.id ?= @request.auth.id", &me, "p2");
    sqlite3_close(db);
    json_decref(auth);
}

Test(rule, body_modifiers)
{
    sqlite3 *db = db_with_data();
    json_t *body = json_pack("{s:s,s:[s]}", "title", "a", "editors", "u3");
    struct rule_request rq = {.body = body, .method = "PATCH"};
    expect_rows(db, "@request.body.title:changed = false", &rq, "p1");
    expect_rows(db, "@request.body.title:changed = true", &rq, "p2,p3,p4");
    expect_rows(db, "@request.body.author:changed = false", &rq, "p1,p2,p3,p4");
    expect_rows(db, "@request.body.editors:each ?= 'u3' && editors:each ?= 'u3'", &rq, "p4");
    json_array_append_new(json_object_get(body, "editors"), json_string("u1"));
    expect_rows(db, "@request.body.editors:each = 'u3'", &rq, "");
    expect_rows(db, "@request.body.editors:each ?= 'u1'", &rq, "p1,p2,p3,p4");
    json_decref(body);
    sqlite3_close(db);
}

/* ---- property: SQL never returns a row the in-memory evaluator rejects ----
 *
 * Random data over teams/users/posts/comments and random rules over paths of
 * every kind; the evaluator below restates PocketBase's semantics directly:
 * each multi-valued hop is a variable shared by the terms naming it, a row
 * passes when some assignment makes the rule TRUE (three-valued logic), and
 * a plain operator over a multi-valued path also needs no value for which
 * the comparison is FALSE. */

enum { P_TEAMS = 3, P_USERS = 4, P_POSTS = 4, P_COMMENTS = 5, P_NULL = -1 };

struct pdata {
    int nteams, ncomments;
    const char *team_name[P_TEAMS];
    int user_team[P_USERS]; /* team index, P_NULL for '' */
    bool friends[P_USERS][P_USERS];
    const char *title[P_POSTS];
    int author[P_POSTS]; /* user index or P_NULL */
    bool editors[P_POSTS][P_USERS];
    int cpost[P_COMMENTS];
    const char *ctext[P_COMMENTS];
    int cscore[P_COMMENTS];
};

static const char *const words[] = {"", "a", "x", "red", "blue"};

static unsigned prng(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

static void pdata_random(struct pdata *d, unsigned *s)
{
    memset(d, 0, sizeof *d);
    d->nteams = (int)(prng(s) % (P_TEAMS + 1));
    for (int i = 0; i < d->nteams; i++)
        d->team_name[i] = words[prng(s) % 5];
    for (int u = 0; u < P_USERS; u++) {
        d->user_team[u] = (int)(prng(s) % (P_TEAMS + 1)) - 1;
        for (int v = 0; v < P_USERS; v++)
            d->friends[u][v] = prng(s) % 3 == 0;
    }
    for (int p = 0; p < P_POSTS; p++) {
        d->title[p] = words[prng(s) % 5];
        d->author[p] = (int)(prng(s) % (P_USERS + 1)) - 1;
        for (int u = 0; u < P_USERS; u++)
            d->editors[p][u] = prng(s) % 3 == 0;
    }
    d->ncomments = (int)(prng(s) % (P_COMMENTS + 1));
    for (int c = 0; c < d->ncomments; c++) {
        d->cpost[c] = (int)(prng(s) % P_POSTS);
        d->ctext[c] = words[prng(s) % 5];
        d->cscore[c] = (int)(prng(s) % 5);
    }
}

static void ids_json(struct buf *b, const bool *set, char prefix)
{
    int n = 0;
    buf_append_char(b, '[');
    for (int i = 0; i < P_USERS; i++)
        if (set[i])
            buf_appendf(b, "%s\"%c%d\"", n++ ? "," : "", prefix, i);
    buf_append_char(b, ']');
}

static sqlite3 *pdata_db(const struct pdata *d)
{
    sqlite3 *db = db_with_data();
    struct buf q = BUF_INIT;
    buf_append_cstr(&q, "DELETE FROM teams; DELETE FROM users; DELETE FROM posts; DELETE FROM "
                        "comments;");
    for (int i = 0; i < d->nteams; i++)
        buf_appendf(&q, "INSERT INTO teams VALUES ('t%d','%s');", i, d->team_name[i]);
    for (int u = 0; u < P_USERS; u++) {
        buf_appendf(&q, "INSERT INTO users (id, team, friends) VALUES ('u%d',", u);
        if (d->user_team[u] == P_NULL)
            buf_append_cstr(&q, "'',");
        else
            buf_appendf(&q, "'t%d',", d->user_team[u]);
        buf_append_char(&q, '\'');
        ids_json(&q, d->friends[u], 'u');
        buf_append_cstr(&q, "');");
    }
    for (int p = 0; p < P_POSTS; p++) {
        buf_appendf(&q, "INSERT INTO posts VALUES ('p%d','%s',", p, d->title[p]);
        if (d->author[p] == P_NULL)
            buf_append_cstr(&q, "'',");
        else
            buf_appendf(&q, "'u%d',", d->author[p]);
        buf_append_char(&q, '\'');
        ids_json(&q, d->editors[p], 'u');
        buf_append_cstr(&q, "');");
    }
    for (int c = 0; c < d->ncomments; c++)
        buf_appendf(&q, "INSERT INTO comments VALUES ('c%d','p%d','%s',%d);", c, d->cpost[c],
                    d->ctext[c], d->cscore[c]);
    cr_assert_eq(sqlite3_exec(db, q.ptr, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    buf_free(&q);
    return db;
}

/* A value: NULL, text or integer. */
struct pval {
    int kind; /* 0 NULL, 1 text, 2 integer */
    const char *s;
    int i;
};

static struct pval ptext(const char *s)
{
    return (struct pval){.kind = 1, .s = s};
}

static const struct pval pnull = {0};

/* The paths the generator uses; var names the multi-valued hop they share. */
enum { V_NONE = -1, V_EDITORS, V_COMMENTS, V_FRIENDS, V_TEAMS, V_COUNT };
static const struct {
    const char *path;
    int var;
    bool number;
} ppaths[] = {
    {"title", V_NONE, false},
    {"author.team", V_NONE, false},
    {"author.team.name", V_NONE, false},
    {"editors.team", V_EDITORS, false},
    {"editors.team.name", V_EDITORS, false},
    {"comments_via_post.text", V_COMMENTS, false},
    {"comments_via_post.score", V_COMMENTS, true},
    {"author.friends.team", V_FRIENDS, false},
    {"@collection.teams.name", V_TEAMS, false},
};

/* The members of post p's variable (users, comments or teams), at most 8. */
static int pvar_members(const struct pdata *d, int p, int var, int out[8])
{
    int n = 0;
    for (int i = 0; i < 8; i++) {
        bool in = var == V_EDITORS    ? i < P_USERS && d->editors[p][i]
                  : var == V_COMMENTS ? i < d->ncomments && d->cpost[i] == p
                  : var == V_FRIENDS
                      ? i < P_USERS && d->author[p] != P_NULL && d->friends[d->author[p]][i]
                      : i < d->nteams;
        if (in)
            out[n++] = i;
    }
    return n;
}

static struct pval team_id(int t)
{
    static const char *const ids[] = {"t0", "t1", "t2"};
    return t == P_NULL ? ptext("") : ptext(ids[t]);
}

static struct pval team_name(const struct pdata *d, int t)
{
    return t == P_NULL || t >= d->nteams ? pnull : ptext(d->team_name[t]);
}

/* Path k's value for post p with its variable bound to member m (P_NULL: the
 * LEFT JOIN found nothing). */
static struct pval pvalue(const struct pdata *d, int p, int k, int m)
{
    int a = d->author[p];
    switch (k) {
    case 0:
        return ptext(d->title[p]);
    case 1:
        return a == P_NULL ? pnull : team_id(d->user_team[a]);
    case 2:
        return a == P_NULL ? pnull : team_name(d, d->user_team[a]);
    case 3:
    case 7:
        return m == P_NULL ? pnull : team_id(d->user_team[m]);
    case 4:
        return m == P_NULL ? pnull : team_name(d, d->user_team[m]);
    case 5:
        return m == P_NULL ? pnull : ptext(d->ctext[m]);
    case 6:
        return m == P_NULL ? pnull : (struct pval){.kind = 2, .i = d->cscore[m]};
    default:
        return m == P_NULL ? pnull : ptext(d->team_name[m]);
    }
}

/* Three-valued: 0 false, 1 true, 2 unknown (NULL). */
static int pcompare(struct pval v, const char *op, struct pval lit)
{
    bool eq = strcmp(op, "=") == 0, neq = strcmp(op, "!=") == 0;
    bool lit_empty = lit.kind == 1 && !*lit.s;
    if (eq || neq) {
        bool same;
        if (lit_empty)
            same = v.kind == 0 || (v.kind == 1 && !*v.s);
        else if (v.kind == 0)
            return neq ? 1 : 2; /* "v = ?" is NULL, "v IS NOT ?" is true */
        else
            same = v.kind == lit.kind && (v.kind == 1 ? strcmp(v.s, lit.s) == 0 : v.i == lit.i);
        return same == eq;
    }
    if (v.kind == 0)
        return 2;
    int c = v.kind == 1 ? strcmp(v.s, lit.s) : (v.i > lit.i) - (v.i < lit.i);
    return strcmp(op, ">") == 0 ? c > 0 : c < 0;
}

struct pterm {
    int path;
    char op[4]; /* with the leading ? of the any-of forms */
    struct pval lit;
    char lit_text[16];
};

static int pterm_eval(const struct pdata *d, int p, const struct pterm *t, const int *bind)
{
    bool any = t->op[0] == '?';
    const char *op = t->op + any;
    int var = ppaths[t->path].var;
    int r = pcompare(pvalue(d, p, t->path, var == V_NONE ? 0 : bind[var]), op, t->lit);
    if (any || var == V_NONE || r != 1)
        return r;
    int m[8], n = pvar_members(d, p, var, m);
    if (n == 0)
        return pcompare(pvalue(d, p, t->path, P_NULL), op, t->lit) == 0 ? 0 : r;
    for (int i = 0; i < n; i++)
        if (pcompare(pvalue(d, p, t->path, m[i]), op, t->lit) == 0)
            return 0;
    return r;
}

static int and3(int a, int b)
{
    return a == 0 || b == 0 ? 0 : a == 1 && b == 1 ? 1 : 2;
}

static int or3(int a, int b)
{
    return a == 1 || b == 1 ? 1 : a == 0 && b == 0 ? 0 : 2;
}

/* terms joined as (t0 j0 t1) j1 t2 with explicit grouping in the text. */
static bool prow_passes(const struct pdata *d, int p, const struct pterm *t, int nt,
                        const bool *ands)
{
    int dom[V_COUNT][8], nd[V_COUNT];
    for (int v = 0; v < V_COUNT; v++) {
        nd[v] = pvar_members(d, p, v, dom[v]);
        if (nd[v] == 0) {
            dom[v][0] = P_NULL;
            nd[v] = 1;
        }
    }
    int idx[V_COUNT] = {0};
    for (;;) {
        int bind[V_COUNT];
        for (int v = 0; v < V_COUNT; v++)
            bind[v] = dom[v][idx[v]];
        int r = pterm_eval(d, p, &t[0], bind);
        for (int i = 1; i < nt; i++) {
            int x = pterm_eval(d, p, &t[i], bind);
            r = ands[i - 1] ? and3(r, x) : or3(r, x);
        }
        if (r == 1)
            return true;
        int v = 0;
        while (v < V_COUNT && ++idx[v] == nd[v])
            idx[v++] = 0;
        if (v == V_COUNT)
            return false;
    }
}

Test(rule, sql_never_returns_a_row_the_evaluator_rejects)
{
    static const char *const ops[] = {"=", "!=", ">", "<", "?=", "?!=", "?>", "?<"};
    unsigned seed = 4242;
    int agreed = 0;
    enum { CASES = 300 };
    for (int n = 0; n < CASES; n++) {
        struct pdata d;
        pdata_random(&d, &seed);
        struct pterm t[3];
        bool ands[2];
        int nt = 1 + (int)(prng(&seed) % 3);
        struct buf rule = BUF_INIT;
        for (int i = 0; i < nt; i++) {
            t[i].path = (int)(prng(&seed) % (sizeof ppaths / sizeof ppaths[0]));
            snprintf(t[i].op, sizeof t[i].op, "%s", ops[prng(&seed) % 8]);
            if (ppaths[t[i].path].number) {
                t[i].lit = (struct pval){.kind = 2, .i = (int)(prng(&seed) % 5)};
                snprintf(t[i].lit_text, sizeof t[i].lit_text, "%d", t[i].lit.i);
            } else {
                static const char *const lits[] = {"", "a", "x", "red", "blue", "t0", "t1"};
                const char *w = lits[prng(&seed) % 7];
                t[i].lit = ptext(w);
                snprintf(t[i].lit_text, sizeof t[i].lit_text, "'%s'", w);
            }
            if (i) {
                /* left-associative, as the evaluator folds: ((t0) j0 t1) j1 t2 */
                ands[i - 1] = prng(&seed) % 2;
                struct buf g = BUF_INIT;
                buf_appendf(&g, "(%s)%s", rule.ptr, ands[i - 1] ? " && " : " || ");
                buf_free(&rule);
                rule = g;
            }
            buf_appendf(&rule, "%s %s %s", ppaths[t[i].path].path, t[i].op, t[i].lit_text);
        }
        sqlite3 *db = pdata_db(&d);
        struct buf sql = BUF_INIT;
        json_t *params = json_array();
        struct filter_error err = {0};
        struct rule_request rq = {.method = "GET"};
        buf_append_cstr(&sql, "SELECT id FROM posts WHERE ");
        cr_assert_eq(
            rule_compile(schema, posts, slice_make(rule.ptr, rule.len), &rq, 0, &sql, params, &err),
            0, "%s: %s", rule.ptr, err.message);
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
        bool in_sql[P_POSTS] = {0};
        while (sqlite3_step(st) == SQLITE_ROW) {
            int p = ((const char *)sqlite3_column_text(st, 0))[1] - '0';
            in_sql[p] = true;
            cr_assert(prow_passes(&d, p, t, nt, ands), "case %d: %s returned p%d", n, rule.ptr, p);
        }
        bool same = true;
        for (int p = 0; p < P_POSTS; p++)
            same &= in_sql[p] == prow_passes(&d, p, t, nt, ands);
        agreed += same;
        sqlite3_finalize(st);
        sqlite3_close(db);
        json_decref(params);
        buf_free(&sql);
        buf_free(&rule);
    }
    cr_log_info("%d of %d cases agreed row for row", agreed, CASES);
}

/* ---- a rule and the caller's filter in one query ---- */

static void ruled_rows(sqlite3 *db, const char *rule, const char *filter,
                       const struct rule_request *rq, const char *want)
{
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    struct filter_error err = {0};
    struct filter_options opts = {0};
    buf_append_cstr(&sql, "SELECT group_concat(id, ',') FROM (SELECT id FROM posts WHERE ");
    size_t where = sql.len;
    cr_assert_eq(filter_compile_ruled(schema, posts, slice_cstr(rule), rq, slice_cstr(filter),
                                      &opts, 0, &sql, params, &err),
                 0, "%s", err.message);
    if (sql.len == where)
        buf_append_cstr(&sql, "1");
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
    cr_assert_str_eq(got ? got : "", want, "(%s) && (%s)", rule, filter);
    sqlite3_finalize(st);
    json_decref(params);
    buf_free(&sql);
}

static int ruled_fail(const char *rule, const char *filter, const struct filter_options *opts,
                      struct filter_error *err)
{
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    struct rule_request rq = {.method = "GET"};
    int rc = filter_compile_ruled(schema, posts, slice_cstr(rule), &rq, slice_cstr(filter), opts, 0,
                                  &sql, params, err);
    json_decref(params);
    buf_free(&sql);
    return rc;
}

Test(rule, rule_and_filter_share_their_joins)
{
    sqlite3 *db = db_with_data();
    json_t *auth = auth_u1();
    struct rule_request me = {.auth = auth, .method = "GET"};
    /* p1's editors are u1 (red) and u2 (blue): no one editor is in both */
    ruled_rows(db, "editors.team.name ?= 'blue'", "editors.team.name ?= 'red'", &me, "");
    ruled_rows(db, "editors.team.name ?= 'blue'", "editors.team.name ?= 'blue'", &me, "p1,p2");
    /* compiled apart, the same two terms would each find their own editor */
    expect_rows(db, "(editors.team.name ?= 'blue') && (editors.team.name ?= 'red')", &me, "");
    ruled_rows(db, "comments_via_post.score ?> 4", "comments_via_post.text ?= 'x'", &me, "");
    ruled_rows(db, "comments_via_post.score ?> 4", "comments_via_post.text ?= 'y'", &me, "p1");
    ruled_rows(db, "comments_via_post.score ?> 2", "comments_via_post.text ?= 'x'", &me, "p2");
    ruled_rows(db, "author = @request.auth.id", "", &me, "p1");
    ruled_rows(db, "", "title != 'a'", &me, "p2,p3,p4");
    ruled_rows(db, "", "", &me, "p1,p2,p3,p4");
    /* each part is parsed whole: the filter's || cannot reach past the rule */
    ruled_rows(db, "author = @request.auth.id || title = 'b'", "title = 'b' || title = 'c'", &me,
               "p2");
    sqlite3_close(db);
    json_decref(auth);
}

Test(rule, rule_and_filter_exact_sql)
{
    json_t *auth = auth_u1();
    struct rule_request rq = {.auth = auth, .method = "GET"};
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    struct filter_error err = {0};
    cr_assert_eq(filter_compile_ruled(schema, posts, slice_cstr("author.team = @request.auth.team"),
                                      &rq, slice_cstr("author.id != '' || title = 'x'"), NULL, 0,
                                      &sql, params, &err),
                 0, "%s", err.message);
    cr_assert_str_eq(sql.ptr,
                     "EXISTS (SELECT 1 FROM (SELECT 1) AS \"__j\" LEFT JOIN \"users\" AS \"__j0\" "
                     "ON \"__j0\".\"id\" = \"posts\".\"author\" WHERE \"__j0\".\"team\" = ? AND "
                     "((\"posts\".\"author\" IS NOT '' AND \"posts\".\"author\" IS NOT NULL) OR "
                     "\"posts\".\"title\" = ?))");
    char *p = json_dumps(params, JSON_COMPACT);
    cr_assert_str_eq(p, "[\"t1\",\"x\"]");
    free(p);
    /* without joins each part is still its own group */
    buf_reset(&sql);
    json_array_clear(params);
    cr_assert_eq(filter_compile_ruled(schema, posts, slice_cstr("title = 'a' || title = 'b'"), &rq,
                                      slice_cstr("author = 'u1'"), NULL, 0, &sql, params, &err),
                 0);
    cr_assert_str_eq(sql.ptr, "(\"title\" = ? OR \"title\" = ?) AND \"author\" = ?");
    json_decref(params);
    buf_free(&sql);
    json_decref(auth);
}

Test(rule, rule_and_filter_errors_say_whose)
{
    struct filter_error err = {0};
    struct filter_options opts = {0};
    cr_assert_eq(ruled_fail("titel = 1", "title = 1", &opts, &err), -1);
    cr_assert(err.in_rule);
    cr_assert_str_eq(err.message, "unknown field \"titel\"");
    cr_assert_eq(ruled_fail("title = 1", "title = 'b') || (title = 'a'", &opts, &err), -1);
    cr_assert_not(err.in_rule);
    cr_assert_eq(err.position, 11);
    /* @request.* in the filter: superusers only */
    cr_assert_eq(ruled_fail("", "@request.auth.id = ''", &opts, &err), -1);
    cr_assert_not(err.in_rule);
    cr_assert_str_eq(err.message, "@request.* fields are only allowed in API rules");
    opts.allow_request = true;
    cr_assert_eq(ruled_fail("", "@request.auth.id = ''", &opts, &err), 0);
    /* the filter may not name what the rule may */
    opts.allow_request = false;
    cr_assert_eq(ruled_fail("editors.tokenKey ?= 'a'", "", &opts, &err), -1);
    cr_assert_eq(ruled_fail("", "author.email = 'a@x.io'", &opts, &err), 0);
}
