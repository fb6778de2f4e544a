/* The filter and sort compilers: exact SQL and parameters for each form,
 * every error with its position, the limits, and the SQL run against SQLite
 * to prove which rows each filter matches. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "domain/filter.h"

static struct field fields[] = {
    {.name = "id", .type = FIELD_TEXT, .system = true, .opt.text.primary_key = true},
    {.name = "title", .type = FIELD_TEXT},
    {.name = "count", .type = FIELD_NUMBER},
    {.name = "active", .type = FIELD_BOOL},
    {.name = "tags", .type = FIELD_SELECT, .opt.select.max_select = 3},
    {.name = "status", .type = FIELD_SELECT, .opt.select.max_select = 1},
    {.name = "data", .type = FIELD_JSON},
    {.name = "created", .type = FIELD_AUTODATE},
    {.name = "secret", .type = FIELD_TEXT, .hidden = true},
    {.name = "value", .type = FIELD_TEXT}, /* json_each's column name: must not be shadowed */
    {.name = "key", .type = FIELD_SELECT, .opt.select.max_select = 5},
};
static struct collection posts = {.name = "posts",
                                  .type = COLLECTION_BASE,
                                  .fields = fields,
                                  .nfields = sizeof fields / sizeof fields[0]};

static struct field user_fields[] = {
    {.name = "id", .type = FIELD_TEXT, .system = true},
    {.name = "email", .type = FIELD_EMAIL, .system = true},
    {.name = "emailVisibility", .type = FIELD_BOOL, .system = true},
    {.name = "password", .type = FIELD_PASSWORD, .system = true, .hidden = true},
};
static struct collection users = {.name = "users",
                                  .type = COLLECTION_AUTH,
                                  .fields = user_fields,
                                  .nfields = sizeof user_fields / sizeof user_fields[0]};

/* 2023-11-14 22:13:20.123Z, a Tuesday. */
static const int64_t NOW = 1700000000123LL;

#define EACH_SRC(c)                                                                 \
    "(SELECT \"__mm e\".value AS \"__mm v\" FROM (SELECT CASE WHEN json_valid(\"" c \
    "\") THEN CASE WHEN json_type(\"" c "\") = 'array' AND json_array_length(\"" c  \
    "\") = 0 THEN '[null]' ELSE \"" c "\" END ELSE json_array(\"" c                 \
    "\") END AS \"__mm j\") AS \"__mm s\", json_each(\"__mm s\".\"__mm j\") AS \"__mm e\")"
#define ANY(c, cond) "EXISTS (SELECT 1 FROM " EACH_SRC(c) " WHERE " cond ")"
#define EVERY(c, cond) "NOT EXISTS (SELECT 1 FROM " EACH_SRC(c) " WHERE (" cond ") IS NOT 1)"

struct ok_case {
    const char *expr, *sql, *params;
};

static const struct ok_case ok_cases[] = {
    /* equality and the empty value */
    {"title = 'abc'", "\"title\" = ?", "[\"abc\"]"},
    {"title = \"abc\"", "\"title\" = ?", "[\"abc\"]"},
    {"title != 'abc'", "\"title\" IS NOT ?", "[\"abc\"]"},
    {"title = ''", "(\"title\" = '' OR \"title\" IS NULL)", "[]"},
    {"title != ''", "(\"title\" IS NOT '' AND \"title\" IS NOT NULL)", "[]"},
    {"title = null", "(\"title\" = '' OR \"title\" IS NULL)", "[]"},
    {"title != NULL", "(\"title\" IS NOT '' AND \"title\" IS NOT NULL)", "[]"},
    {"'' = title", "('' = \"title\" OR \"title\" IS NULL)", "[]"},
    {"null = ''", "'' = ''", "[]"},
    {"null != null", "'' IS NOT ''", "[]"},
    {"title = id", "COALESCE(\"title\", '') = COALESCE(\"id\", '')", "[]"},
    {"title != id", "COALESCE(\"title\", '') IS NOT COALESCE(\"id\", '')", "[]"},
    {"'abc' = title", "? = \"title\"", "[\"abc\"]"},
    {"1 = 1", "? = ?", "[1,1]"},
    /* ordering */
    {"count > 5", "\"count\" > ?", "[5]"},
    {"count >= -1.5", "\"count\" >= ?", "[-1.5]"},
    {"count < 10", "\"count\" < ?", "[10]"},
    {"count <= 0.25", "\"count\" <= ?", "[0.25]"},
    {"count = 007", "\"count\" = ?", "[7]"},
    {"count = 0", "\"count\" = ?", "[0]"},
    {"count > -0", "\"count\" > ?", "[0]"},
    {"count = 9223372036854775808", "\"count\" = ?", "[9.2233720368547758e18]"},
    /* LIKE */
    {"title ~ 'abc'", "\"title\" LIKE ? ESCAPE '\\'", "[\"%abc%\"]"},
    {"title !~ 'abc'", "\"title\" NOT LIKE ? ESCAPE '\\'", "[\"%abc%\"]"},
    {"title ~ 'a%c'", "\"title\" LIKE ? ESCAPE '\\'", "[\"a%c\"]"},
    {"title ~ 'a_b\\c'", "\"title\" LIKE ? ESCAPE '\\'", "[\"%a\\\\_b\\\\\\\\c%\"]"},
    {"title ~ 'a\\%b'", "\"title\" LIKE ? ESCAPE '\\'", "[\"%a\\\\%b%\"]"},
    {"title ~ '__'", "\"title\" LIKE ? ESCAPE '\\'", "[\"%\\\\_\\\\_%\"]"},
    {"title ~ ''", "\"title\" LIKE ? ESCAPE '\\'", "[\"%%\"]"},
    {"title ~ id", "\"title\" LIKE ('%' || \"id\" || '%') ESCAPE '\\'", "[]"},
    {"title !~ id", "\"title\" NOT LIKE ('%' || \"id\" || '%') ESCAPE '\\'", "[]"},
    {"count ~ 5", "\"count\" LIKE ? ESCAPE '\\'", "[\"%5%\"]"},
    {"count ~ 1.5", "\"count\" LIKE ? ESCAPE '\\'", "[\"%1.5%\"]"},
    /* booleans */
    {"active = true", "\"active\" = 1", "[]"},
    {"active = false", "\"active\" = 0", "[]"},
    {"active != TRUE", "\"active\" IS NOT 1", "[]"},
    /* quotes and escapes */
    {"title = 'it\\'s'", "\"title\" = ?", "[\"it's\"]"},
    {"title = \"say \\\"hi\\\"\"", "\"title\" = ?", "[\"say \\\"hi\\\"\"]"},
    {"title = 'a\\b'", "\"title\" = ?", "[\"a\\\\b\"]"},
    {"title = \"it's\"", "\"title\" = ?", "[\"it's\"]"},
    {"title = 'x && y || (z)'", "\"title\" = ?", "[\"x && y || (z)\"]"},
    {"title = 'Ünïcode'", "\"title\" = ?", "[\"Ünïcode\"]"},
    /* json */
    {"data = 5", "json_extract(\"data\", '$') IS ?", "[5]"},
    {"data != null", "json_extract(\"data\", '$') IS NOT NULL", "[]"},
    {"data.a.b = 'x'", "json_extract(\"data\", ?) IS ?", "[\"$.a.b\",\"x\"]"},
    {"data.items.0.name != null", "json_extract(\"data\", ?) IS NOT NULL", "[\"$.items[0].name\"]"},
    {"data.0 > 1", "json_extract(\"data\", ?) > ?", "[\"$[0]\",1]"},
    {"data.a ~ 'x'", "json_extract(\"data\", ?) LIKE ? ESCAPE '\\'", "[\"$.a\",\"%x%\"]"},
    {"title = data.a", "\"title\" IS json_extract(\"data\", ?)", "[\"$.a\"]"},
    /* multi-valued */
    {"tags = 'a'", "\"tags\" = ?", "[\"a\"]"},
    {"tags ~ 'a'", "\"tags\" LIKE ? ESCAPE '\\'", "[\"%a%\"]"},
    {"tags ?= 'a'", ANY("tags", "\"__mm v\" = ?"), "[\"a\"]"},
    {"tags ?!= 'a'", ANY("tags", "\"__mm v\" IS NOT ?"), "[\"a\"]"},
    {"tags ?~ 'a'", ANY("tags", "\"__mm v\" LIKE ? ESCAPE '\\'"), "[\"%a%\"]"},
    {"tags ?!~ 'a'", ANY("tags", "\"__mm v\" NOT LIKE ? ESCAPE '\\'"), "[\"%a%\"]"},
    {"tags ?> 'b'", ANY("tags", "\"__mm v\" > ?"), "[\"b\"]"},
    {"tags ?>= 'b'", ANY("tags", "\"__mm v\" >= ?"), "[\"b\"]"},
    {"tags ?< 'b'", ANY("tags", "\"__mm v\" < ?"), "[\"b\"]"},
    {"tags ?<= 'b'", ANY("tags", "\"__mm v\" <= ?"), "[\"b\"]"},
    {"tags ?= ''", ANY("tags", "(\"__mm v\" = '' OR \"__mm v\" IS NULL)"), "[]"},
    {"'a' ?= tags", ANY("tags", "? = \"__mm v\""), "[\"a\"]"},
    {"tags ?= value", ANY("tags", "COALESCE(\"__mm v\", '') = COALESCE(\"value\", '')"), "[]"},
    {"tags:each = 'a'", EVERY("tags", "\"__mm v\" = ?"), "[\"a\"]"},
    {"tags:each != 'a'", EVERY("tags", "\"__mm v\" IS NOT ?"), "[\"a\"]"},
    {"tags:each ?> 'b'", ANY("tags", "\"__mm v\" > ?"), "[\"b\"]"},
    {"key ?= 'k'", ANY("key", "\"__mm v\" = ?"), "[\"k\"]"},
    {"tags:length > 1",
     "json_array_length(CASE WHEN json_valid(\"tags\") THEN \"tags\" ELSE (CASE WHEN \"tags\" = "
     "'' OR \"tags\" IS NULL THEN json_array() ELSE json_array(\"tags\") END) END) > ?",
     "[1]"},
    {"status ?= 'a'", "\"status\" = ?", "[\"a\"]"},
    {"status:each = 'a'", "\"status\" = ?", "[\"a\"]"},
    {"title ?= 'a'", "\"title\" = ?", "[\"a\"]"},
    /* modifiers */
    {"title:lower = 'abc'", "LOWER(\"title\") = ?", "[\"abc\"]"},
    {"title:lower ~ 'AbC'", "LOWER(\"title\") LIKE ? ESCAPE '\\'", "[\"%AbC%\"]"},
    /* macros */
    {"created > @now", "\"created\" > ?", "[\"2023-11-14 22:13:20.123Z\"]"},
    {"created >= @todayStart && created <= @todayEnd", "(\"created\" >= ? AND \"created\" <= ?)",
     "[\"2023-11-14 00:00:00.000Z\",\"2023-11-14 23:59:59.999Z\"]"},
    {"created > @monthStart || created < @monthEnd", "(\"created\" > ? OR \"created\" < ?)",
     "[\"2023-11-01 00:00:00.000Z\",\"2023-11-30 23:59:59.999Z\"]"},
    {"created > @yearStart && created < @yearEnd", "(\"created\" > ? AND \"created\" < ?)",
     "[\"2023-01-01 00:00:00.000Z\",\"2023-12-31 23:59:59.999Z\"]"},
    {"created > @yesterday && created < @tomorrow", "(\"created\" > ? AND \"created\" < ?)",
     "[\"2023-11-13 22:13:20.123Z\",\"2023-11-15 22:13:20.123Z\"]"},
    {"@second = 20 && @minute = 13 && @hour = 22 && @day = 14",
     "(? = ? AND ? = ? AND ? = ? AND ? = ?)", "[20,20,13,13,22,22,14,14]"},
    {"@month = 11 && @year = 2023 && @weekday = 2", "(? = ? AND ? = ? AND ? = ?)",
     "[11,11,2023,2023,2,2]"},
    /* precedence, groups, comments, whitespace */
    {"title = 'a' || title = 'b' && count > 1",
     "(\"title\" = ? OR \"title\" = ? AND \"count\" > ?)", "[\"a\",\"b\",1]"},
    {"(title = 'a' || title = 'b') && count > 1",
     "((\"title\" = ? OR \"title\" = ?) AND \"count\" > ?)", "[\"a\",\"b\",1]"},
    {"title = 'a' && (count > 1 || (active = true && id != ''))",
     "(\"title\" = ? AND (\"count\" > ? OR (\"active\" = 1 AND (\"id\" IS NOT '' AND \"id\" IS "
     "NOT NULL))))",
     "[\"a\",1]"},
    {"((title = 'a'))", "\"title\" = ?", "[\"a\"]"},
    {"title='a'&&count>1", "(\"title\" = ? AND \"count\" > ?)", "[\"a\",1]"},
    {"title = 'a' // trailing comment", "\"title\" = ?", "[\"a\"]"},
    {"// leading\n\ttitle = 'a'\r\n", "\"title\" = ?", "[\"a\"]"},
    {"title = 'a' || // why\n count = 1", "(\"title\" = ? OR \"count\" = ?)", "[\"a\",1]"},
};

static void check_ok(const struct ok_case *c)
{
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    struct filter_error err = {0};
    int rc = filter_compile(&posts, slice_cstr(c->expr), NOW, &sql, params, &err);
    cr_assert_eq(rc, 0, "%s: error at %zu: %s", c->expr, err.position, err.message);
    cr_assert_str_eq(sql.ptr, c->sql, "%s", c->expr);
    char *p = json_dumps(params, JSON_COMPACT);
    cr_assert_str_eq(p, c->params, "%s", c->expr);
    free(p);
    json_decref(params);
    buf_free(&sql);
}

Test(filter, compiles_each_form_to_exact_sql_and_params)
{
    cr_assert_geq(sizeof ok_cases / sizeof ok_cases[0], 60);
    for (size_t i = 0; i < sizeof ok_cases / sizeof ok_cases[0]; i++)
        check_ok(&ok_cases[i]);
}

Test(filter, appends_to_existing_sql_and_params)
{
    struct buf sql = BUF_INIT;
    buf_append_cstr(&sql, "x AND ");
    json_t *params = json_pack("[s]", "first");
    struct filter_error err;
    cr_assert_eq(
        filter_compile(&posts, SLICE_LIT("title = 'a' || count = 2"), NOW, &sql, params, &err), 0);
    cr_assert_str_eq(sql.ptr, "x AND (\"title\" = ? OR \"count\" = ?)");
    char *p = json_dumps(params, JSON_COMPACT);
    cr_assert_str_eq(p, "[\"first\",\"a\",2]");
    free(p);
    json_decref(params);
    buf_free(&sql);
}

struct err_case {
    const char *expr;
    size_t pos;
    const char *message;
};

static const struct err_case err_cases[] = {
    {"", 0, "empty filter expression"},
    {"   // only a comment", 20, "empty filter expression"},
    {"titel = 'a'", 0, "unknown field \"titel\""},
    {"title = 'a' && nope.x = 1", 15, "unknown field \"nope\""},
    {"title = 'abc", 8, "unterminated string"},
    {"title = \"abc\\\"", 8, "unterminated string"},
    {"title 'a'", 6, "expected an operator"},
    {"title", 5, "expected an operator"},
    {"title =", 7, "unexpected end of filter, expected an operand"},
    {"title = && x", 8, "expected an operand, got \"&&\""},
    {"title = 'a' count = 1", 12, "expected && or ||, got \"count\""},
    {"title = 'a' &", 12, "invalid operator \"&\""},
    {"title = 'a' &&& x = 1", 12, "invalid operator \"&&&\""},
    {"title == 'a'", 6, "invalid operator \"==\""},
    {"title =! 'a'", 6, "invalid operator \"=!\""},
    {"title = 'a' $", 12, "unexpected character '$'"},
    {"title = \x01", 8, "unexpected byte 0x01"},
    {"title = 'a' / x", 12, "invalid comment (expected //)"},
    {"count = -", 8, "invalid number \"-\""},
    {"count = 1.", 8, "invalid number \"1.\""},
    {"count = --1", 8, "invalid number \"-\""},
    {"title. = 1", 0, "invalid identifier \"title.\""},
    {"title: = 1", 0, "invalid identifier \"title:\""},
    {"@ = 1", 0, "invalid identifier \"@\""},
    {"_ = 1", 0, "invalid identifier \"_\""},
    {"(title = 'a'", 0, "missing closing parenthesis"},
    {"title = 'a' && (count = 1 || (id = 'x')", 15, "missing closing parenthesis"},
    {"title = 'a')", 11, "unexpected ')'"},
    {"title = 'a' && ()", 15, "empty group"},
    {"( // c\n )", 0, "empty group"},
    {"@request.auth.id != ''", 0, "@request.* fields are only allowed in API rules"},
    {"title = @collection.posts.title", 8, "unknown collection \"posts\""},
    {"created > @nope", 10, "unknown macro \"@nope\""},
    {"title = lower(title)", 8, "functions are not supported yet"},
    {"secret = 'x'", 0, "non-filterable field \"secret\""},
    {"title.a = 1", 0, "field \"title\" has no subfields"},
    {"data..a = 1", 0, "invalid json path \"data..a\""},
    {"title:each = 'a'", 0, "field \"title\" doesn't support :each"},
    {"data.a:length = 1", 0, "field \"data\" doesn't support :length"},
    {"title:upper = 'a'", 0, "unknown modifier \":upper\""},
    {"tags ?= key", 5, "comparing two multi-valued fields is not supported"},
    {"true.x = 1", 0, "unknown field \"true\""},
    {"title = 'a' || title = 'b\xc2.'", 23, "invalid UTF-8 in text"},
};

Test(filter, reports_each_error_with_its_position)
{
    for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
        const struct err_case *c = &err_cases[i];
        struct buf sql = BUF_INIT;
        json_t *params = json_array();
        struct filter_error err = {0};
        int rc = filter_compile(&posts, slice_cstr(c->expr), NOW, &sql, params, &err);
        cr_assert_eq(rc, -1, "%s: compiled to %s", c->expr, sql.ptr);
        cr_assert_str_eq(err.message, c->message, "%s", c->expr);
        cr_assert_eq(err.position, c->pos, "%s: position %zu", c->expr, err.position);
        json_decref(params);
        buf_free(&sql);
    }
}

Test(filter, auth_email_needs_visibility_and_password_is_never_filterable)
{
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    struct filter_error err;
    cr_assert_eq(filter_compile(&users, SLICE_LIT("email = 'a@b.c'"), NOW, &sql, params, &err), 0);
    cr_assert_str_eq(sql.ptr, "(\"email\" = ? AND \"emailVisibility\" = TRUE)");
    buf_reset(&sql);
    struct filter_options su = {.allow_hidden = true};
    cr_assert_eq(
        filter_compile_opts(&users, SLICE_LIT("email = 'a@b.c'"), NOW, &su, &sql, params, &err), 0);
    cr_assert_str_eq(sql.ptr, "\"email\" = ?");
    cr_assert_eq(
        filter_compile_opts(&users, SLICE_LIT("password != ''"), NOW, &su, &sql, params, &err), -1);
    cr_assert_str_eq(err.message, "non-filterable field \"password\"");
    buf_reset(&sql);
    cr_assert_eq(
        filter_compile_opts(&posts, SLICE_LIT("secret = 'x'"), NOW, &su, &sql, params, &err), 0);
    cr_assert_str_eq(sql.ptr, "\"secret\" = ?");
    json_decref(params);
    buf_free(&sql);
}

static int compile_str(const char *expr, size_t len, struct filter_error *err)
{
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    int rc = filter_compile(&posts, slice_make(expr, len), NOW, &sql, params, err);
    json_decref(params);
    buf_free(&sql);
    return rc;
}

Test(filter, limits_length_depth_and_terms)
{
    struct filter_error err;
    struct buf b = BUF_INIT;

    /* exactly FILTER_MAX_LEN bytes is fine, one more is not */
    buf_append_cstr(&b, "title = '");
    while (b.len < FILTER_MAX_LEN - 1)
        buf_append_char(&b, 'x');
    buf_append_char(&b, '\'');
    cr_assert_eq(compile_str(b.ptr, b.len, &err), 0, "%s", err.message);
    buf_append_char(&b, ' ');
    cr_assert_eq(compile_str(b.ptr, b.len, &err), -1);
    cr_assert_str_eq(err.message, "filter is too long (max 4096 bytes)");
    cr_assert_eq(err.position, FILTER_MAX_LEN);

    buf_reset(&b);
    for (int i = 0; i < FILTER_MAX_DEPTH; i++)
        buf_append_char(&b, '(');
    buf_append_cstr(&b, "id = 1");
    for (int i = 0; i < FILTER_MAX_DEPTH; i++)
        buf_append_char(&b, ')');
    cr_assert_eq(compile_str(b.ptr, b.len, &err), 0, "%s", err.message);
    buf_reset(&b);
    for (int i = 0; i <= FILTER_MAX_DEPTH; i++)
        buf_append_char(&b, '(');
    buf_append_cstr(&b, "id = 1");
    cr_assert_eq(compile_str(b.ptr, b.len, &err), -1);
    cr_assert_str_eq(err.message, "filter is nested too deeply (max 32)");
    cr_assert_eq(err.position, FILTER_MAX_DEPTH);

    /* hostile nesting far beyond the limit stops at the limit */
    buf_reset(&b);
    for (int i = 0; i < FILTER_MAX_LEN; i++)
        buf_append_char(&b, '(');
    cr_assert_eq(compile_str(b.ptr, b.len, &err), -1);
    cr_assert_eq(err.position, FILTER_MAX_DEPTH);

    buf_reset(&b);
    for (int i = 0; i < FILTER_MAX_TERMS; i++)
        buf_appendf(&b, "%sid=1", i ? "||" : "");
    cr_assert_eq(compile_str(b.ptr, b.len, &err), 0, "%s", err.message);
    size_t at = b.len + 2;
    buf_append_cstr(&b, "||id=1");
    cr_assert_eq(compile_str(b.ptr, b.len, &err), -1);
    cr_assert_str_eq(err.message, "too many conditions (max 256)");
    cr_assert_eq(err.position, at);
    buf_free(&b);
}

/* ---- sort ---- */

Test(sort, compiles_keys_directions_and_random)
{
    static const char *const cases[][2] = {
        {"-created,title,+id", "\"created\" DESC, \"title\" ASC, \"id\" ASC"},
        {" title , -count ", "\"title\" ASC, \"count\" DESC"},
        {"@random", "RANDOM()"},
        {"-@random,id", "RANDOM(), \"id\" ASC"},
        {"-@rowid", "_rowid_ DESC"},
        {"-data.a.0", "json_extract(\"data\", '$.a[0]') DESC"},
        {"data", "json_extract(\"data\", '$') ASC"},
        {"title:lower", "LOWER(\"title\") ASC"},
        {"tags:length", "json_array_length(CASE WHEN json_valid(\"tags\") THEN \"tags\" ELSE "
                        "(CASE WHEN \"tags\" = '' OR \"tags\" IS NULL THEN json_array() ELSE "
                        "json_array(\"tags\") END) END) ASC"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf sql = BUF_INIT;
        struct filter_error err = {0};
        cr_assert_eq(sort_compile(&posts, slice_cstr(cases[i][0]), &sql, &err), 0, "%s: %s",
                     cases[i][0], err.message);
        cr_assert_str_eq(sql.ptr, cases[i][1], "%s", cases[i][0]);
        buf_free(&sql);
    }
}

Test(sort, rejects_unknown_and_odd_keys_with_position)
{
    static const struct err_case cases[] = {
        {"-created,titel", 9, "unknown field \"titel\""},
        {"title,,id", 6, "empty sort field"},
        {"", 0, "empty sort field"},
        {"title,", 6, "empty sort field"},
        {"title desc", 0, "invalid sort field \"title desc\""},
        {"'title'", 0, "invalid sort field \"'title'\""},
        {"@now", 0, "invalid sort field \"@now\""},
        {"null", 0, "unknown field \"null\""},
        {"secret", 0, "non-filterable field \"secret\""},
        {"tags:each", 0, "invalid sort field \"tags:each\""},
        {"@request.auth.id", 0, "@request.* fields are only allowed in API rules"},
        {"x;DROP", 0, "invalid sort field \"x;DROP\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf sql = BUF_INIT;
        struct filter_error err = {0};
        cr_assert_eq(sort_compile(&posts, slice_cstr(cases[i].expr), &sql, &err), -1, "%s",
                     cases[i].expr);
        cr_assert_str_eq(err.message, cases[i].message, "%s", cases[i].expr);
        cr_assert_eq(err.position, cases[i].pos, "%s: %zu", cases[i].expr, err.position);
        buf_free(&sql);
    }
}

/* ---- the SQL against SQLite ---- */

static sqlite3 *db;

static void db_setup(void)
{
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    const char *ddl =
        "CREATE TABLE posts (id TEXT PRIMARY KEY, title TEXT DEFAULT '', count NUMERIC DEFAULT 0,"
        " active BOOLEAN DEFAULT FALSE, tags JSON DEFAULT '[]', status TEXT DEFAULT '',"
        " data JSON DEFAULT NULL, created TEXT DEFAULT '', secret TEXT, value TEXT,"
        " key JSON DEFAULT '[]');"
        "INSERT INTO posts VALUES ('r1', 'Hello World', 5, 1, '[\"a\",\"b\"]', 'x',"
        " '{\"a\":{\"b\":\"x\"},\"n\":5}', '2023-11-14 10:00:00.000Z', NULL, 'a', '[\"k\"]');"
        "INSERT INTO posts VALUES ('r2', '', 0, 0, '[]', '', NULL, '2023-11-13 10:00:00.000Z',"
        " NULL, 'zz', '[]');"
        "INSERT INTO posts VALUES ('r3', NULL, 10, 0, '[\"a\"]', 'y', '{\"a\":{\"b\":\"y\"}}',"
        " '2023-10-01 00:00:00.000Z', NULL, NULL, '[]');"
        "INSERT INTO posts VALUES ('r4', '50%_off', -2.5, 1, '[\"b\",\"c\"]', 'x', '[1,2]',"
        " '2023-11-15 00:00:00.000Z', NULL, 'c', '[\"k\",\"j\"]');";
    cr_assert_eq(sqlite3_exec(db, ddl, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
}

static void db_teardown(void)
{
    sqlite3_close(db);
}

/* The ids the filter matches, comma-separated in id order. */
static void run(const char *expr, const char *want)
{
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    struct filter_error err = {0};
    buf_append_cstr(&sql, "SELECT id FROM posts WHERE ");
    cr_assert_eq(filter_compile(&posts, slice_cstr(expr), NOW, &sql, params, &err), 0, "%s: %s",
                 expr, err.message);
    buf_append_cstr(&sql, " ORDER BY id");
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql.ptr, -1, &st, NULL), SQLITE_OK, "%s: %s", expr,
                 sqlite3_errmsg(db));
    size_t i;
    json_t *v;
    json_array_foreach(params, i, v)
    {
        int n = (int)i + 1;
        if (json_is_string(v))
            sqlite3_bind_text(st, n, json_string_value(v), (int)json_string_length(v),
                              SQLITE_TRANSIENT);
        else if (json_is_integer(v))
            sqlite3_bind_int64(st, n, json_integer_value(v));
        else if (json_is_real(v))
            sqlite3_bind_double(st, n, json_real_value(v));
        else
            sqlite3_bind_null(st, n);
    }
    struct buf got = BUF_INIT;
    buf_append_cstr(&got, "");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        buf_appendf(&got, "%s%s", got.len ? "," : "", (const char *)sqlite3_column_text(st, 0));
    cr_assert_eq(rc, SQLITE_DONE, "%s: %s", expr, sqlite3_errmsg(db));
    cr_assert_str_eq(got.ptr, want, "%s", expr);
    sqlite3_finalize(st);
    buf_free(&got);
    json_decref(params);
    buf_free(&sql);
}

Test(filter_sqlite, matches_the_rows_pocketbase_would, .init = db_setup, .fini = db_teardown)
{
    run("id = 'r2'", "r2");
    run("title = ''", "r2,r3");
    run("title = null", "r2,r3");
    run("title != ''", "r1,r4");
    run("title != 'Hello World'", "r2,r3,r4");
    run("title ~ 'hello'", "r1");
    run("title ~ '50%'", "r4");
    run("title ~ '_'", "r4");
    run("title ~ 'o_'", "");
    run("title !~ 'o'", "r2");
    run("count > 1", "r1,r3");
    run("count <= 0", "r2,r4");
    run("count = -2.5", "r4");
    run("active = true", "r1,r4");
    run("active != true", "r2,r3");
    run("tags ?= 'a'", "r1,r3");
    run("tags ?= 'c'", "r4");
    run("tags ?!= 'a'", "r1,r2,r4");
    run("tags ?~ 'A'", "r1,r3");
    run("tags ?= ''", "r2");
    run("tags:each = 'a'", "r3");
    run("tags:each != 'a'", "r2,r4");
    run("tags:each ?= 'b'", "r1,r4");
    run("tags:each = ''", "r2");
    run("tags:length = 0", "r2");
    run("tags:length > 1", "r1,r4");
    run("tags ~ '\"b\"'", "r1,r4");
    run("tags ?= value", "r1,r4");
    run("key ?= 'k'", "r1,r4");
    run("key:each = 'k'", "r1");
    run("data.a.b = 'x'", "r1");
    run("data.n > 1", "r1");
    run("data.a.b = null", "r2,r4");
    run("data.0 = 1", "r4");
    run("title:lower = 'hello world'", "r1");
    run("created >= @todayStart && created <= @todayEnd", "r1");
    run("created > @yesterday", "r1,r4");
    run("created < @monthStart", "r3");
    run("status = 'x' || status = 'y' && count > 6", "r1,r3,r4");
    run("(status = 'x' || status = 'y') && count > 6", "r3");
    run("status = 'x' && (count > 6 || active = true) // r1 and r4", "r1,r4");
}
