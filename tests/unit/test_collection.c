/* Collections: create, update, round trip, every validation error with its
 * exact PocketBase code and path, the index parser and the schema snapshot.
 * Expected ids are PocketBase's own (type + CRC-32 of the name). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "domain/collection.h"
#include "domain/collection_internal.h"
#include "domain/schema.h"

static void expect_json(json_t *got, const char *want)
{
    json_error_t e;
    json_t *w = json_loads(want, JSON_DECODE_ANY, &e);
    cr_assert(w, "bad expected JSON: %s (%s)", e.text, want);
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
    char *ws = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert(json_equal(got, w), "got  %s\nwant %s", g, ws);
    free(g);
    free(ws);
    json_decref(w);
}

static struct collection *build_ok(const char *body, const struct collection *prev)
{
    json_t *b = json_loads(body, 0, NULL), *errors = NULL;
    cr_assert(b, "bad body %s", body);
    struct collection *c = collection_from_json(b, prev, &errors);
    char *e = errors ? json_dumps(errors, JSON_COMPACT) : NULL;
    cr_assert(c, "unexpected errors %s", e ? e : "");
    json_decref(b);
    return c;
}

static void build_err(const char *body, const struct collection *prev, const char *want)
{
    json_t *b = json_loads(body, 0, NULL), *errors = NULL;
    cr_assert(b, "bad body %s", body);
    struct collection *c = collection_from_json(b, prev, &errors);
    cr_assert_null(c, "accepted %s", body);
    expect_json(errors, want);
    json_decref(errors);
    json_decref(b);
}

static json_t *shape(const struct collection *c)
{
    json_t *j = collection_to_json(c);
    json_object_del(j, "created");
    json_object_del(j, "updated");
    return j;
}

#define ID_FIELD                                                                                 \
    "{\"id\":\"text3208210256\",\"name\":\"id\",\"type\":\"text\",\"system\":true,\"hidden\":"   \
    "false,"                                                                                     \
    "\"presentable\":false,\"required\":true,\"min\":15,\"max\":15,\"pattern\":\"^[a-z0-9]+$\"," \
    "\"autogeneratePattern\":\"[a-z0-9]{15}\",\"primaryKey\":true}"

Test(collection, create_base_minimal)
{
    struct collection *c = build_ok("{\"name\":\"posts\"}", NULL);
    json_t *j = shape(c);
    expect_json(j,
                "{\"id\":\"pbc_1125843985\",\"name\":\"posts\",\"type\":\"base\",\"system\":false,"
                "\"fields\":[" ID_FIELD "],\"indexes\":[],\"listRule\":null,\"viewRule\":null,"
                "\"createRule\":null,\"updateRule\":null,\"deleteRule\":null}");
    cr_assert_eq(strlen(c->created), 24);
    cr_assert_eq(c->created[23], 'Z');
    json_decref(j);
    collection_release(c);
}

Test(collection, create_base_every_field_type)
{
    struct collection *c =
        build_ok("{\"name\":\"things\",\"listRule\":\"\",\"viewRule\":\"title != ''\",\"fields\":["
                 "{\"name\":\"title\",\"type\":\"text\",\"required\":true,\"max\":10},"
                 "{\"name\":\"n\",\"type\":\"number\",\"min\":1.5,\"onlyInt\":false},"
                 "{\"name\":\"b\",\"type\":\"bool\"},"
                 "{\"name\":\"e\",\"type\":\"email\",\"onlyDomains\":[\"x.com\"]},"
                 "{\"name\":\"u\",\"type\":\"url\"},"
                 "{\"name\":\"d\",\"type\":\"date\",\"min\":\"2024-01-02 03:04:05.000Z\"},"
                 "{\"name\":\"s\",\"type\":\"select\",\"values\":[\"a\",\"b\"],\"maxSelect\":2},"
                 "{\"name\":\"j\",\"type\":\"json\",\"maxSize\":100},"
                 "{\"name\":\"created\",\"type\":\"autodate\",\"onCreate\":true}]}",
                 NULL);
    json_t *j = shape(c);
    expect_json(
        json_object_get(j, "fields"),
        "[" ID_FIELD ","
        "{\"id\":\"text724990059\",\"name\":\"title\",\"type\":\"text\",\"system\":false,"
        "\"hidden\":false,"
        "\"presentable\":false,\"required\":true,\"min\":0,\"max\":10,\"pattern\":\"\","
        "\"autogeneratePattern\":\"\",\"primaryKey\":false},"
        "{\"id\":\"number2013832146\",\"name\":\"n\",\"type\":\"number\",\"system\":false,"
        "\"hidden\":false,"
        "\"presentable\":false,\"required\":false,\"min\":1.5,\"max\":null,\"onlyInt\":false},"
        "{\"id\":\"bool1908338681\",\"name\":\"b\",\"type\":\"bool\",\"system\":false,\"hidden\":"
        "false,"
        "\"presentable\":false,\"required\":false},"
        "{\"id\":\"email4024072794\",\"name\":\"e\",\"type\":\"email\",\"system\":false,\"hidden\":"
        "false,"
        "\"presentable\":false,\"required\":false,\"onlyDomains\":[\"x.com\"],\"exceptDomains\":"
        "null},"
        "{\"id\":\"url4067256894\",\"name\":\"u\",\"type\":\"url\",\"system\":false,\"hidden\":"
        "false,"
        "\"presentable\":false,\"required\":false,\"onlyDomains\":null,\"exceptDomains\":null},"
        "{\"id\":\"date2564639436\",\"name\":\"d\",\"type\":\"date\",\"system\":false,\"hidden\":"
        "false,"
        "\"presentable\":false,\"required\":false,\"min\":\"2024-01-02 "
        "03:04:05.000Z\",\"max\":\"\"},"
        "{\"id\":\"select453955339\",\"name\":\"s\",\"type\":\"select\",\"system\":false,"
        "\"hidden\":false,"
        "\"presentable\":false,\"required\":false,\"values\":[\"a\",\"b\"],\"maxSelect\":2},"
        "{\"id\":\"json2137352139\",\"name\":\"j\",\"type\":\"json\",\"system\":false,\"hidden\":"
        "false,"
        "\"presentable\":false,\"required\":false,\"maxSize\":100},"
        "{\"id\":\"autodate2990389176\",\"name\":\"created\",\"type\":\"autodate\",\"system\":"
        "false,"
        "\"hidden\":false,\"presentable\":false,\"onCreate\":true,\"onUpdate\":false}]");
    expect_json(json_object_get(j, "listRule"), "\"\"");
    expect_json(json_object_get(j, "viewRule"), "\"title != ''\"");
    cr_assert_str_eq(c->rules[RULE_VIEW], "title != ''");
    cr_assert_null(c->rules[RULE_CREATE]);
    json_decref(j);
    collection_release(c);
}

Test(collection, create_auth_defaults)
{
    struct collection *c = build_ok("{\"name\":\"users\",\"type\":\"auth\"}", NULL);
    cr_assert_str_eq(c->id, "pbc_1736455494");
    const char *names[] = {"id", "password", "tokenKey", "email", "emailVisibility", "verified"};
    cr_assert_eq(c->nfields, 6);
    for (size_t i = 0; i < 6; i++)
        cr_assert_str_eq(c->fields[i].name, names[i]);
    json_t *j = shape(c);
    json_t *fields = json_object_get(j, "fields");
    expect_json(
        json_array_get(fields, 1),
        "{\"id\":\"password901924565\",\"name\":\"password\",\"type\":\"password\",\"system\":true,"
        "\"hidden\":true,\"presentable\":false,\"required\":true,\"min\":8,\"max\":0,\"cost\":0,"
        "\"pattern\":\"\"}");
    expect_json(
        json_array_get(fields, 2),
        "{\"id\":\"text2504183744\",\"name\":\"tokenKey\",\"type\":\"text\",\"system\":true,"
        "\"hidden\":true,\"presentable\":false,\"required\":true,\"min\":30,\"max\":60,"
        "\"pattern\":\"\",\"autogeneratePattern\":\"[a-zA-Z0-9]{50}\",\"primaryKey\":false}");
    expect_json(json_array_get(fields, 3),
                "{\"id\":\"email3885137012\",\"name\":\"email\",\"type\":\"email\",\"system\":true,"
                "\"hidden\":false,\"presentable\":false,\"required\":true,\"onlyDomains\":null,"
                "\"exceptDomains\":null}");
    expect_json(
        json_array_get(fields, 4),
        "{\"id\":\"bool1547992806\",\"name\":\"emailVisibility\",\"type\":\"bool\",\"system\":true,"
        "\"hidden\":false,\"presentable\":false,\"required\":false}");
    expect_json(json_object_get(j, "indexes"),
                "[\"CREATE UNIQUE INDEX `idx_tokenKey_pbc_1736455494` ON `users` (`tokenKey`)\","
                "\"CREATE UNIQUE INDEX `idx_email_pbc_1736455494` ON `users` (`email`) WHERE "
                "`email` != ''\"]");
    cr_assert_str_eq(c->indexes[1].where, "\"email\" != ''");
    expect_json(json_object_get(j, "authRule"), "\"\"");
    expect_json(json_object_get(j, "manageRule"), "null");
    expect_json(json_object_get(j, "authToken"), "{\"duration\":604800}");
    expect_json(json_object_get(j, "passwordAuth"),
                "{\"enabled\":true,\"identityFields\":[\"email\"]}");
    json_t *stored = collection_to_json_stored(c);
    cr_assert_eq(
        json_string_length(json_object_get(json_object_get(stored, "authToken"), "secret")), 50);
    json_decref(stored);
    json_decref(j);
    collection_release(c);
}

Test(collection, round_trip_stored)
{
    struct collection *c = build_ok(
        "{\"name\":\"users\",\"type\":\"auth\",\"listRule\":\"id = @request.auth.id\",\"fields\":["
        "{\"name\":\"nick\",\"type\":\"text\",\"pattern\":\"^[a-z]+$\"},"
        "{\"name\":\"tags\",\"type\":\"select\",\"values\":[\"x\",\"y\"],\"maxSelect\":2}],"
        "\"indexes\":[\"CREATE INDEX idx_nick ON users (nick COLLATE NOCASE DESC)\"],"
        "\"authToken\":{\"duration\":1000}}",
        NULL);
    json_t *j1 = collection_to_json_stored(c), *errors = NULL;
    struct collection *c2 = collection_from_json_system(j1, NULL, &errors);
    cr_assert(c2);
    json_t *j2 = collection_to_json_stored(c2);
    cr_assert(json_equal(j1, j2));
    cr_assert(c2->indexes[0].nocase[0] && c2->indexes[0].desc[0]);
    json_decref(j1);
    json_decref(j2);
    collection_release(c);
    collection_release(c2);
}

Test(collection, system_entry_for_superusers)
{
    json_t *b = json_loads("{\"name\":\"_superusers\",\"type\":\"auth\",\"system\":true}", 0, NULL);
    json_t *errors = NULL;
    struct collection *c = collection_from_json_system(b, NULL, &errors);
    cr_assert(c);
    cr_assert(c->system);
    collection_release(c);
    json_decref(b);
    build_err(
        "{\"name\":\"_superusers\",\"type\":\"auth\"}", NULL,
        "{\"name\":{\"code\":\"validation_collection_name_invalid\","
        "\"message\":\"Names starting with \\\"_\\\" are reserved for system collections.\"}}");
}

Test(collection, update_patch_keeps_and_renames)
{
    struct collection *c =
        build_ok("{\"name\":\"posts\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"}]}", NULL);
    struct collection *u = build_ok("{\"listRule\":\"\"}", c);
    cr_assert_eq(u->nfields, 2);
    cr_assert_str_eq(u->fields[1].id, "text724990059");
    cr_assert_str_eq(u->rules[RULE_LIST], "");
    cr_assert_str_eq(u->id, c->id);
    cr_assert_str_eq(u->created, c->created);
    struct collection *r =
        build_ok("{\"name\":\"articles\",\"fields\":[{\"id\":\"text3208210256\",\"name\":\"id\","
                 "\"type\":\"text\"},"
                 "{\"id\":\"text724990059\",\"name\":\"headline\",\"type\":\"text\"}]}",
                 u);
    cr_assert_str_eq(r->name, "articles");
    cr_assert_str_eq(r->fields[1].name, "headline");
    cr_assert_str_eq(r->fields[1].id, "text724990059");
    cr_assert_str_eq(r->id, c->id);
    collection_release(c);
    collection_release(u);
    collection_release(r);
}

Test(collection, update_errors)
{
    struct collection *c =
        build_ok("{\"name\":\"posts\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"}]}", NULL);
    build_err("{\"fields\":[{\"id\":\"text3208210256\",\"name\":\"id\",\"type\":\"text\"},"
              "{\"id\":\"text724990059\",\"name\":\"title\",\"type\":\"number\"}]}",
              c,
              "{\"fields\":{\"1\":{\"code\":\"validation_field_type_change\","
              "\"message\":\"Field type cannot be changed.\"}}}");
    build_err("{\"type\":\"auth\"}", c,
              "{\"type\":{\"code\":\"validation_collection_type_change\","
              "\"message\":\"Collection type cannot be changed.\"}}");
    build_err(
        "{\"id\":\"other\"}", c,
        "{\"id\":{\"code\":\"validation_values_mismatch\",\"message\":\"Values don't match.\"}}");
    build_err("{\"system\":true}", c,
              "{\"system\":{\"code\":\"validation_collection_system_flag_change\","
              "\"message\":\"System collection state cannot be changed.\"}}");
    collection_release(c);

    struct collection *a = build_ok("{\"name\":\"users\",\"type\":\"auth\"}", NULL);
    build_err("{\"fields\":[{\"id\":\"email3885137012\",\"name\":\"mail\",\"type\":\"email\"}]}", a,
              "{\"fields\":{\"code\":\"validation_system_field_change\","
              "\"message\":\"System fields cannot be deleted or renamed.\"}}");
    collection_release(a);
}

Test(collection, name_errors)
{
    build_err("{}", NULL,
              "{\"name\":{\"code\":\"validation_required\",\"message\":\"Cannot be blank.\"}}");
    build_err("{\"name\":\"bad name\"}", NULL,
              "{\"name\":{\"code\":\"validation_match_invalid\",\"message\":\"Must be in a valid "
              "format.\"}}");
    build_err("{\"name\":\"x\\\"; DROP TABLE users; --\"}", NULL,
              "{\"name\":{\"code\":\"validation_match_invalid\",\"message\":\"Must be in a valid "
              "format.\"}}");
    build_err("{\"name\":\"1abc\"}", NULL,
              "{\"name\":{\"code\":\"validation_match_invalid\",\"message\":\"Must be in a valid "
              "format.\"}}");
    build_err("{\"name\":\"a_via_b\"}", NULL,
              "{\"name\":{\"code\":\"validation_found_via\","
              "\"message\":\"The value cannot contain \\\"_via_\\\".\"}}");
    build_err(
        "{\"name\":"
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        NULL,
        "{\"name\":{\"code\":\"validation_length_out_of_range\","
        "\"message\":\"The length must be between 1 and 64.\",\"params\":{\"min\":1,\"max\":64}}}");
    build_err("{\"name\":\"v\",\"type\":\"view\"}", NULL,
              "{\"type\":{\"code\":\"validation_view_not_supported\","
              "\"message\":\"View collections are not supported yet.\"}}");
    build_err(
        "{\"name\":\"v\",\"type\":\"nope\"}", NULL,
        "{\"type\":{\"code\":\"validation_in_invalid\",\"message\":\"Must be a valid value.\"}}");
    build_err("{\"name\":\"v\",\"id\":\"a-b\"}", NULL,
              "{\"id\":{\"code\":\"validation_match_invalid\",\"message\":\"Must be in a valid "
              "format.\"}}");
    build_err("{\"name\":\"u\",\"type\":\"auth\",\"manageRule\":\"\"}", NULL,
              "{\"manageRule\":{\"code\":\"validation_nil_or_not_empty_required\","
              "\"message\":\"Cannot be blank.\"}}");
}

Test(collection, field_errors)
{
    /* Positions count the id field PocketBase prepends. */
    build_err("{\"name\":\"p\",\"fields\":[{\"name\":\"Title\",\"type\":\"text\"},"
              "{\"name\":\"title\",\"type\":\"text\"}]}",
              NULL,
              "{\"fields\":{\"2\":{\"name\":{\"code\":\"validation_duplicated_field_name\","
              "\"message\":\"Duplicated or invalid field name "
              "title.\",\"params\":{\"fieldName\":\"title\"}}}}}");
    build_err("{\"name\":\"p\",\"fields\":[{\"id\":\"x1\",\"name\":\"a\",\"type\":\"text\"},"
              "{\"id\":\"x1\",\"name\":\"b\",\"type\":\"text\"}]}",
              NULL,
              "{\"fields\":{\"2\":{\"id\":{\"code\":\"validation_duplicated_field_id\","
              "\"message\":\"Duplicated or invalid field id \\\"x1\\\".\"}}}}");
    build_err("{\"name\":\"p\",\"fields\":[{\"name\":\"a\",\"type\":\"blob\"}]}", NULL,
              "{\"fields\":{\"0\":{\"type\":{\"code\":\"validation_invalid_field_type\","
              "\"message\":\"Missing or unknown field type.\"}}}}");
    build_err(
        "{\"name\":\"p\",\"fields\":[{\"name\":\"a\",\"type\":\"text\",\"min\":10,\"max\":5}]}",
        NULL,
        "{\"fields\":{\"1\":{\"max\":{\"code\":\"validation_min_greater_equal_than_required\","
        "\"message\":\"Must be no less than 10.\",\"params\":{\"threshold\":10}}}}}");
    build_err(
        "{\"name\":\"p\",\"fields\":[{\"name\":\"a\",\"type\":\"text\",\"pattern\":\"[a-\"}]}",
        NULL,
        "{\"fields\":{\"1\":{\"pattern\":{\"code\":\"validation_invalid_regex\","
        "\"message\":\"Invalid regular expression - Unmatched [, [^, [:, [., or [=.\"}}}}");
    build_err("{\"name\":\"p\",\"fields\":[{\"name\":\"s\",\"type\":\"select\",\"maxSelect\":2}]}",
              NULL,
              "{\"fields\":{\"1\":{\"values\":{\"code\":\"validation_required\",\"message\":"
              "\"Cannot be blank.\"},"
              "\"maxSelect\":{\"code\":\"validation_max_less_equal_than_required\","
              "\"message\":\"Must be no greater than 1.\",\"params\":{\"threshold\":1}}}}}");
    build_err(
        "{\"name\":\"p\",\"fields\":[{\"name\":\"n\",\"type\":\"number\",\"min\":5,\"max\":1}]}",
        NULL,
        "{\"fields\":{\"1\":{\"max\":{\"code\":\"validation_min_greater_equal_than_required\","
        "\"message\":\"Must be no less than 5.\",\"params\":{\"threshold\":5}}}}}");
    build_err("{\"name\":\"p\",\"fields\":[{\"name\":\"bad-name\",\"type\":\"bool\"}]}", NULL,
              "{\"fields\":{\"1\":{\"name\":{\"code\":\"validation_match_invalid\","
              "\"message\":\"Must be in a valid format.\"}}}}");
    build_err("{\"name\":\"p\",\"fields\":[{\"name\":\"expand\",\"type\":\"bool\"}]}", NULL,
              "{\"fields\":{\"1\":{\"name\":{\"code\":\"validation_not_in_invalid\","
              "\"message\":\"Must not be in list.\"}}}}");
    build_err("{\"name\":\"p\",\"fields\":[{\"name\":\"t\",\"type\":\"autodate\"}]}", NULL,
              "{\"fields\":{\"1\":{\"onCreate\":{\"code\":\"validation_required\","
              "\"message\":\"Either onCreate or onUpdate must be enabled.\"},"
              "\"onUpdate\":{\"code\":\"validation_required\","
              "\"message\":\"Either onCreate or onUpdate must be enabled.\"}}}}");
    build_err("{\"name\":\"p\",\"fields\":[{\"name\":\"id\",\"type\":\"number\"}]}", NULL,
              "{\"fields\":{\"1\":{\"name\":{\"code\":\"validation_duplicated_field_name\","
              "\"message\":\"Duplicated or invalid field name "
              "id.\",\"params\":{\"fieldName\":\"id\"}}}}}");
    build_err("{\"name\":\"u\",\"type\":\"auth\",\"fields\":[{\"name\":\"passwordConfirm\","
              "\"type\":\"text\"}]}",
              NULL,
              "{\"fields\":{\"1\":{\"name\":{\"code\":\"validation_reserved_field_name\","
              "\"message\":\"The field name is reserved and cannot be used.\"}}}}");
    /* The sample in the message is random: check the code only. */
    json_t *b = json_loads("{\"name\":\"p\",\"fields\":[{\"name\":\"t\",\"type\":\"text\","
                           "\"max\":3,\"autogeneratePattern\":\"[a-z]{5}\"}]}",
                           0, NULL);
    json_t *errors = NULL;
    cr_assert_null(collection_from_json(b, NULL, &errors));
    json_t *e = json_object_get(json_object_get(json_object_get(errors, "fields"), "1"),
                                "autogeneratePattern");
    cr_assert_str_eq(json_string_value(json_object_get(e, "code")),
                     "validation_invalid_autogenerate_pattern_value");
    json_decref(errors);
    json_decref(b);
}

Test(collection, index_errors)
{
    build_err("{\"name\":\"p\",\"indexes\":[\"CREATE INDEX oops\"]}", NULL,
              "{\"indexes\":{\"0\":{\"code\":\"validation_invalid_index_expression\","
              "\"message\":\"Invalid CREATE INDEX expression.\"}}}");
    build_err("{\"name\":\"p\",\"indexes\":[\"CREATE INDEX i1 ON p (nope)\"]}", NULL,
              "{\"indexes\":{\"0\":{\"code\":\"validation_invalid_index_expression\","
              "\"message\":\"Unknown field \\\"nope\\\" in the "
              "index.\",\"params\":{\"fieldName\":\"nope\"}}}}");
    build_err("{\"name\":\"p\",\"indexes\":[\"CREATE INDEX i1 ON p (id)\",\"CREATE UNIQUE INDEX I1 "
              "ON p (id)\"]}",
              NULL,
              "{\"indexes\":{\"1\":{\"code\":\"validation_duplicated_index_name\","
              "\"message\":\"The index name already exists.\"}}}");
    build_err("{\"name\":\"p\",\"indexes\":[\"CREATE INDEX i1 ON p (id)\",\"CREATE INDEX i2 ON p "
              "(`id`)\"]}",
              NULL,
              "{\"indexes\":{\"1\":{\"code\":\"validation_duplicated_index_definition\","
              "\"message\":\"The index definition already exists.\"}}}");
    build_err("{\"name\":\"p\",\"indexes\":[\"CREATE INDEX i1 ON p (id) WHERE id > 5\"]}", NULL,
              "{\"indexes\":{\"0\":{\"code\":\"validation_invalid_index_expression\","
              "\"message\":\"Partial indexes are not supported yet.\"}}}");
}

static int parse(const char *sql, struct collection_index *ix)
{
    json_t *err = NULL;
    int rc = coll_index_parse(slice_cstr(sql), ix, &err);
    json_decref(err);
    return rc;
}

Test(collection, index_parse_table)
{
    static const struct {
        const char *sql;
        int rc;
        const char *name;
        bool unique;
        size_t ncol;
    } cases[] = {
        {"CREATE INDEX `idx_a` ON `t` (`a`)", 0, "idx_a", false, 1},
        {"create unique index if not exists \"x\" on [t] ([a] asc, b DESC);", 0, "x", true, 2},
        {"CREATE INDEX if ON t (a)", 0, "if", false, 1},
        {"CREATE INDEX i ON t (a COLLATE NOCASE)", 0, "i", false, 1},
        {"  CREATE\n\tINDEX i ON t(a,b,c)  ", 0, "i", false, 3},
        {"CREATE INDEX i ON t (a) WHERE a != ''", 0, "i", false, 1},
        {"CREATE INDEX i ON t (lower(a))", -1, NULL, false, 0},
        {"CREATE INDEX i ON t (a); DROP TABLE t", -1, NULL, false, 0},
        {"CREATE INDEX i ON t (a) -- x", -1, NULL, false, 0},
        {"CREATE INDEX `i``x` ON t (a)", -1, NULL, false, 0},
        {"CREATE INDEX \"a\"\"b\" ON t (a)", -1, NULL, false, 0},
        {"CREATE INDEX i ON t (\"a b\")", -1, NULL, false, 0},
        {"CREATE INDEX i ON t (a COLLATE evil)", -1, NULL, false, 0},
        {"CREATE INDEX s.i ON t (a)", -1, NULL, false, 0},
        {"CREATE INDEX i ON t ()", -1, NULL, false, 0},
        {"CREATE INDEX i ON t (a", -1, NULL, false, 0},
        {"CREATE INDEX i ON t (a) WHERE 1=1", -1, NULL, false, 0},
        {"CREATE TABLE x (a)", -1, NULL, false, 0},
        {"", -1, NULL, false, 0},
        {"CREATE INDEX `", -1, NULL, false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct collection_index ix = {0};
        int rc = parse(cases[i].sql, &ix);
        cr_assert_eq(rc, cases[i].rc, "case %zu: %s", i, cases[i].sql);
        if (rc == 0) {
            cr_assert_str_eq(ix.name, cases[i].name, "case %zu", i);
            cr_assert_eq(ix.unique, cases[i].unique, "case %zu", i);
            cr_assert_eq(ix.ncolumns, cases[i].ncol, "case %zu", i);
            coll_index_free(&ix);
        }
    }
    struct collection_index ix = {0};
    cr_assert_eq(parse("CREATE UNIQUE INDEX x ON t (a ASC, b COLLATE nocase DESC)", &ix), 0);
    cr_assert_str_eq(ix.columns[0], "a");
    cr_assert_str_eq(ix.columns[1], "b");
    cr_assert(!ix.desc[0] && ix.desc[1] && !ix.nocase[0] && ix.nocase[1]);
    cr_assert_null(ix.where);
    coll_index_free(&ix);
}

Test(collection, lookups_and_refcount)
{
    struct collection *c =
        build_ok("{\"name\":\"posts\",\"fields\":[{\"name\":\"title\",\"type\":\"text\"}]}", NULL);
    cr_assert_eq(collection_field(c, SLICE_LIT("title")), &c->fields[1]);
    cr_assert_null(collection_field(c, SLICE_LIT("Title")));
    cr_assert_eq(collection_field_by_id(c, SLICE_LIT("text3208210256")), &c->fields[0]);
    cr_assert(collection_name_valid(SLICE_LIT("_a1")));
    cr_assert(!collection_name_valid(SLICE_LIT("a b")));
    cr_assert_str_eq(field_type_name(FIELD_AUTODATE), "autodate");
    collection_retain(c);
    collection_release(c);
    cr_assert_eq(c->refcount, 1);
    collection_release(c);
    collection_release(NULL);
}

Test(schema, publish_find_release)
{
    struct collection *a = build_ok("{\"name\":\"posts\"}", NULL);
    struct collection *b = build_ok("{\"name\":\"Authors\"}", NULL);
    struct collection *list[] = {a, b};
    struct schema *before = schema_current();
    schema_publish(list, 2);
    struct schema *s = schema_current();
    cr_assert_gt(s->version, before->version);
    cr_assert_eq(s->ncollections, 2);
    cr_assert_str_eq(s->collections[0]->name, "Authors");
    cr_assert_eq(schema_find(s, SLICE_LIT("POSTS")), a);
    cr_assert_eq(schema_find(s, slice_cstr(b->id)), b);
    cr_assert_null(schema_find(s, SLICE_LIT("nope")));
    cr_assert_eq(a->refcount, 2);
    schema_release(before);
    schema_publish(NULL, 0);
    cr_assert_eq(a->refcount, 2, "the old snapshot still has a reader");
    schema_release(s);
    cr_assert_eq(a->refcount, 1);
    collection_release(a);
    collection_release(b);
}

Test(collection, relation_and_file_fields)
{
    struct collection *users = build_ok("{\"name\":\"users\",\"id\":\"pbc_users\"}", NULL);
    struct collection *c = build_ok(
        "{\"name\":\"posts\",\"id\":\"pbc_posts\",\"fields\":["
        "{\"id\":\"r1\",\"name\":\"author\",\"type\":\"relation\",\"collectionId\":\"pbc_users\","
        "\"cascadeDelete\":true,\"minSelect\":1,\"maxSelect\":3,\"required\":true},"
        "{\"id\":\"f1\",\"name\":\"pics\",\"type\":\"file\",\"maxSelect\":2,\"maxSize\":1000,"
        "\"mimeTypes\":[\"image/png\"],\"thumbs\":[\"100x100\",\"0x50t\"],\"protected\":true}]}",
        NULL);
    json_t *j = shape(c);
    expect_json(json_array_get(json_object_get(j, "fields"), 1),
                "{\"id\":\"r1\",\"name\":\"author\",\"type\":\"relation\",\"system\":false,"
                "\"hidden\":false,\"presentable\":false,\"required\":true,"
                "\"collectionId\":\"pbc_users\",\"cascadeDelete\":true,\"minSelect\":1,"
                "\"maxSelect\":3}");
    expect_json(json_array_get(json_object_get(j, "fields"), 2),
                "{\"id\":\"f1\",\"name\":\"pics\",\"type\":\"file\",\"system\":false,"
                "\"hidden\":false,\"presentable\":false,\"required\":false,\"maxSelect\":2,"
                "\"maxSize\":1000,\"mimeTypes\":[\"image/png\"],\"thumbs\":[\"100x100\",\"0x50t\"],"
                "\"protected\":true}");
    json_decref(j);
    cr_assert(field_is_multiple(&c->fields[1]));
    cr_assert(field_is_multiple(&c->fields[2]));

    /* collectionId must exist in the schema, or be the collection itself */
    json_t *errors = NULL;
    struct collection *list[] = {users};
    schema_publish(list, 1);
    struct schema *s = schema_current();
    cr_assert_eq(collection_check_relations(s, c, NULL, &errors), 0);
    struct collection *dangling = build_ok(
        "{\"name\":\"x\",\"id\":\"pbc_x\",\"fields\":[{\"name\":\"me\",\"type\":\"relation\","
        "\"collectionId\":\"pbc_x\"},{\"name\":\"other\",\"type\":\"relation\","
        "\"collectionId\":\"pbc_nope\"}]}",
        NULL);
    cr_assert_eq(collection_check_relations(s, dangling, NULL, &errors), -1);
    expect_json(errors, "{\"fields\":{\"2\":{\"collectionId\":{\"code\":"
                        "\"validation_field_invalid_relation\",\"message\":"
                        "\"The relation collection doesn't exist.\"}}}}");
    json_decref(errors);
    /* an existing relation may not point elsewhere */
    struct collection *moved = build_ok("{\"fields\":[{\"id\":\"r1\",\"name\":\"author\","
                                        "\"type\":\"relation\",\"collectionId\":\"pbc_posts\"}]}",
                                        c);
    cr_assert_eq(collection_check_relations(s, moved, c, &errors), -1);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(json_object_get(errors, "fields"), "1"),
                                         "collectionId"),
                         "code")),
                     "validation_field_relation_change");
    json_decref(errors);
    schema_release(s);
    schema_publish(NULL, 0);

    build_err("{\"name\":\"y\",\"fields\":[{\"name\":\"r\",\"type\":\"relation\","
              "\"minSelect\":2,\"maxSelect\":1}]}",
              NULL,
              "{\"fields\":{\"1\":{\"collectionId\":{\"code\":\"validation_required\","
              "\"message\":\"Cannot be blank.\"},\"maxSelect\":{\"code\":"
              "\"validation_min_greater_equal_than_required\",\"message\":"
              "\"Must be no less than 2.\",\"params\":{\"threshold\":2}}}}}");
    build_err("{\"name\":\"y\",\"fields\":[{\"name\":\"f\",\"type\":\"file\","
              "\"thumbs\":[\"axb\"]}]}",
              NULL,
              "{\"fields\":{\"1\":{\"thumbs\":{\"code\":\"validation_invalid_thumb_size\","
              "\"message\":\"Invalid thumb size format.\",\"params\":{\"index\":0}}}}}");
    collection_release(moved);
    collection_release(dangling);
    collection_release(c);
    collection_release(users);
}
