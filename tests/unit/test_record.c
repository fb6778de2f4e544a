/* Record validation: every field type with valid, invalid and coerced input,
 * zero values, select modifiers, ids, autodates and auth records, asserting
 * PocketBase's exact error objects. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "core/id.h"
#include "domain/collection.h"

static const int64_t NOW = 1700000000123; /* 2023-11-14 22:13:20.123Z */

static void expect_json(json_t *got, const char *want)
{
    json_error_t e;
    json_t *w = json_loads(want, JSON_DECODE_ANY, &e);
    cr_assert(w, "bad expected JSON: %s (%s)", e.text, want);
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *ws = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    cr_assert(json_equal(got, w), "got  %s\nwant %s", g, ws);
    free(g);
    free(ws);
    json_decref(w);
}

static struct collection *coll(const char *body)
{
    json_t *b = json_loads(body, 0, NULL), *errors = NULL;
    struct collection *c = collection_from_json(b, NULL, &errors);
    cr_assert(c, "collection refused");
    json_decref(b);
    return c;
}

static struct collection *things(void)
{
    return coll(
        "{\"name\":\"things\",\"fields\":["
        "{\"name\":\"title\",\"type\":\"text\",\"min\":2,\"max\":5,\"pattern\":\"^[a-z]+$\"},"
        "{\"name\":\"n\",\"type\":\"number\",\"min\":1,\"max\":10,\"onlyInt\":true},"
        "{\"name\":\"b\",\"type\":\"bool\"},"
        "{\"name\":\"e\",\"type\":\"email\",\"exceptDomains\":[\"bad.com\"]},"
        "{\"name\":\"u\",\"type\":\"url\",\"onlyDomains\":[\"ok.com\"]},"
        "{\"name\":\"d\",\"type\":\"date\",\"max\":\"2030-01-01 00:00:00.000Z\"},"
        "{\"name\":\"s\",\"type\":\"select\",\"values\":[\"a\",\"b\",\"c\"]},"
        "{\"name\":\"m\",\"type\":\"select\",\"values\":[\"a\",\"b\",\"c\"],\"maxSelect\":2},"
        "{\"name\":\"j\",\"type\":\"json\",\"maxSize\":20},"
        "{\"name\":\"created\",\"type\":\"autodate\",\"onCreate\":true},"
        "{\"name\":\"updated\",\"type\":\"autodate\",\"onCreate\":true,\"onUpdate\":true}]}");
}

/* Validates input text; on success strips the random id and returns the record. */
static json_t *ok(const struct collection *c, const char *input, json_t *prev)
{
    json_t *in = json_loads(input, 0, NULL), *out = NULL, *errors = NULL;
    cr_assert(in, "bad input %s", input);
    int rc = record_validate(c, in, prev, NOW, &out, &errors);
    char *e = errors ? json_dumps(errors, JSON_COMPACT) : NULL;
    cr_assert_eq(rc, 0, "errors: %s", e ? e : "");
    json_decref(in);
    return out;
}

static void bad(const struct collection *c, const char *input, json_t *prev, const char *want)
{
    json_t *in = json_loads(input, 0, NULL), *out = NULL, *errors = NULL;
    cr_assert(in, "bad input %s", input);
    cr_assert_eq(record_validate(c, in, prev, NOW, &out, &errors), -1, "accepted %s", input);
    expect_json(errors, want);
    json_decref(errors);
    json_decref(in);
}

Test(record, zero_values_on_create)
{
    struct collection *c = things();
    json_t *r = ok(c, "{\"unknown\":1}", NULL);
    const char *id = json_string_value(json_object_get(r, "id"));
    cr_assert(id && id_valid(slice_cstr(id)));
    json_object_del(r, "id");
    expect_json(r,
                "{\"title\":\"\",\"n\":0,\"b\":false,\"e\":\"\",\"u\":\"\",\"d\":\"\",\"s\":\"\","
                "\"m\":[],\"j\":null,\"created\":\"2023-11-14 22:13:20.123Z\","
                "\"updated\":\"2023-11-14 22:13:20.123Z\"}");
    json_decref(r);
    collection_release(c);
}

Test(record, coercions_from_form_strings)
{
    struct collection *c = things();
    json_t *r =
        ok(c,
           "{\"id\":\"abcdefghij12345\",\"title\":\"abc\",\"n\":\"7\",\"b\":\"on\","
           "\"e\":\"a@x.com\",\"u\":\"https://ok.com/p?q=1\",\"d\":\"2024-05-06\","
           "\"s\":\"b\",\"m\":\"[\\\"a\\\",\\\"c\\\",\\\"a\\\"]\",\"j\":\"{\\\"k\\\":[1,2]}\"}",
           NULL);
    expect_json(
        r, "{\"id\":\"abcdefghij12345\",\"title\":\"abc\",\"n\":7,\"b\":true,\"e\":\"a@x.com\","
           "\"u\":\"https://ok.com/p?q=1\",\"d\":\"2024-05-06 00:00:00.000Z\",\"s\":\"b\","
           "\"m\":[\"a\",\"c\"],\"j\":{\"k\":[1,2]},\"created\":\"2023-11-14 22:13:20.123Z\","
           "\"updated\":\"2023-11-14 22:13:20.123Z\"}");
    json_decref(r);

    static const struct {
        const char *in, *field, *want;
    } table[] = {
        {"{\"b\":\"1\"}", "b", "true"},
        {"{\"b\":\"true\"}", "b", "true"},
        {"{\"b\":\"0\"}", "b", "false"},
        {"{\"b\":\"no\"}", "b", "false"},
        {"{\"b\":1}", "b", "true"},
        {"{\"n\":\"\"}", "n", "0"},
        {"{\"n\":3.0}", "n", "3"},
        {"{\"id\":123456789012345}", "id", "\"123456789012345\""},
        {"{\"j\":\"plain\"}", "j", "\"plain\""},
        {"{\"j\":\"12\"}", "j", "12"},
        {"{\"j\":\"true\"}", "j", "true"},
        {"{\"j\":\"\"}", "j", "\"\""},
        {"{\"j\":[1]}", "j", "[1]"},
        {"{\"s\":[\"a\",\"c\"]}", "s", "\"c\""},
        {"{\"m\":[\"b\",\"\",\"b\"]}", "m", "[\"b\"]"},
        {"{\"m\":\"c\"}", "m", "[\"c\"]"},
        {"{\"d\":\"2024-01-02T03:04:05Z\"}", "d", "\"2024-01-02 03:04:05.000Z\""},
        {"{\"d\":0}", "d", "\"1970-01-01 00:00:00.000Z\""},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        r = ok(c, table[i].in, NULL);
        expect_json(json_object_get(r, table[i].field), table[i].want);
        json_decref(r);
    }
    collection_release(c);
}

Test(record, errors_per_type)
{
    struct collection *c = things();
    bad(c, "{\"title\":\"a\"}", NULL,
        "{\"title\":{\"code\":\"validation_min_text_constraint\",\"message\":\"Must be at least 2 "
        "character(s).\","
        "\"params\":{\"min\":2}}}");
    bad(c, "{\"title\":\"abcdef\"}", NULL,
        "{\"title\":{\"code\":\"validation_max_text_constraint\",\"message\":\"Must be no more "
        "than 5 character(s).\","
        "\"params\":{\"max\":5}}}");
    bad(c, "{\"title\":\"AB\"}", NULL,
        "{\"title\":{\"code\":\"validation_invalid_format\",\"message\":\"Invalid value "
        "format.\"}}");
    bad(c, "{\"n\":0.5}", NULL,
        "{\"n\":{\"code\":\"validation_only_int_constraint\",\"message\":\"Decimal numbers are not "
        "allowed.\"}}");
    bad(c, "{\"n\":-3}", NULL,
        "{\"n\":{\"code\":\"validation_min_number_constraint\",\"message\":\"Must be larger than "
        "1.000000.\"}}");
    bad(c, "{\"n\":\"11\"}", NULL,
        "{\"n\":{\"code\":\"validation_max_number_constraint\",\"message\":\"Must be less than "
        "10.000000.\"}}");
    bad(c, "{\"n\":\"abc\"}", NULL,
        "{\"n\":{\"code\":\"validation_not_a_number\","
        "\"message\":\"The submitted number is not properly formatted.\"}}");
    bad(c, "{\"n\":\"NaN\"}", NULL,
        "{\"n\":{\"code\":\"validation_not_a_number\","
        "\"message\":\"The submitted number is not properly formatted.\"}}");
    bad(c, "{\"n\":\"1e999\"}", NULL,
        "{\"n\":{\"code\":\"validation_not_a_number\","
        "\"message\":\"The submitted number is not properly formatted.\"}}");
    bad(c, "{\"e\":\"not-an-email\"}", NULL,
        "{\"e\":{\"code\":\"validation_is_email\",\"message\":\"Must be a valid email "
        "address.\"}}");
    bad(c, "{\"e\":\"x@bad.com\"}", NULL,
        "{\"e\":{\"code\":\"validation_email_domain_not_allowed\",\"message\":\"Email domain is "
        "not allowed.\"}}");
    bad(c, "{\"u\":\"not a url\"}", NULL,
        "{\"u\":{\"code\":\"validation_invalid_url\",\"message\":\"Must be a valid url.\"}}");
    bad(c, "{\"u\":\"https://other.com\"}", NULL,
        "{\"u\":{\"code\":\"validation_url_domain_not_allowed\",\"message\":\"Url domain is not "
        "allowed.\"}}");
    bad(c, "{\"d\":\"tomorrow\"}", NULL,
        "{\"d\":{\"code\":\"validation_invalid_date\",\"message\":\"Must be a valid date.\"}}");
    bad(c, "{\"d\":\"2031-01-01\"}", NULL,
        "{\"d\":{\"code\":\"validation_max_less_equal_than_required\","
        "\"message\":\"Must be no greater than 2030-01-01 00:00:00.000Z.\","
        "\"params\":{\"threshold\":\"2030-01-01 00:00:00.000Z\"}}}");
    bad(c, "{\"s\":\"z\"}", NULL,
        "{\"s\":{\"code\":\"validation_invalid_value\",\"message\":\"Invalid value "
        "z.\",\"params\":{\"value\":\"z\"}}}");
    bad(c, "{\"m\":[\"a\",\"b\",\"c\"]}", NULL,
        "{\"m\":{\"code\":\"validation_too_many_values\",\"message\":\"Select no more than 2.\","
        "\"params\":{\"maxSelect\":2}}}");
    bad(c, "{\"j\":\"[1,2,3,4,5,6,7,8,9,10,11]\"}", NULL,
        "{\"j\":{\"code\":\"validation_json_size_limit\",\"message\":\"The maximum allowed JSON "
        "size is 20 bytes.\","
        "\"params\":{\"maxSize\":20}}}");
    bad(c, "{\"id\":\"short\"}", NULL,
        "{\"id\":{\"code\":\"validation_min_text_constraint\",\"message\":\"Must be at least 15 "
        "character(s).\","
        "\"params\":{\"min\":15}}}");
    bad(c, "{\"id\":\"ABCDEFGHIJ12345\"}", NULL,
        "{\"id\":{\"code\":\"validation_invalid_format\",\"message\":\"Invalid value format.\"}}");
    bad(c, "{\"id\":\"abcdefghij/2345\"}", NULL,
        "{\"id\":{\"code\":\"validation_pk_forbidden\","
        "\"message\":\"The record primary key contains forbidden "
        "characters.\",\"params\":{\"forbidden\":\"/\"}}}");
    bad(c, "[1]", NULL, "{}");
    collection_release(c);
}

Test(record, required_fields)
{
    struct collection *c =
        coll("{\"name\":\"r\",\"fields\":["
             "{\"name\":\"t\",\"type\":\"text\",\"required\":true},"
             "{\"name\":\"n\",\"type\":\"number\",\"required\":true},"
             "{\"name\":\"b\",\"type\":\"bool\",\"required\":true},"
             "{\"name\":\"s\",\"type\":\"select\",\"values\":[\"a\"],\"required\":true},"
             "{\"name\":\"j\",\"type\":\"json\",\"required\":true}]}");
    const char *blank = "{\"code\":\"validation_required\",\"message\":\"Cannot be blank.\"}";
    char want[512];
    snprintf(want, sizeof(want), "{\"t\":%s,\"n\":%s,\"b\":%s,\"s\":%s,\"j\":%s}", blank, blank,
             blank, blank, blank);
    bad(c, "{\"j\":{}}", NULL, want);
    collection_release(c);
}

Test(record, update_modifiers_and_autodate)
{
    struct collection *c = things();
    json_t *prev = ok(c, "{\"id\":\"abcdefghij12345\",\"m\":[\"a\"],\"n\":5}", NULL);
    json_object_set_new(prev, "created", json_string("2020-01-01 00:00:00.000Z"));
    json_object_set_new(prev, "updated", json_string("2020-01-01 00:00:00.000Z"));
    json_t *r = ok(c, "{\"m+\":\"b\",\"n+\":2,\"title\":\"xy\"}", prev);
    expect_json(json_object_get(r, "m"), "[\"a\",\"b\"]");
    expect_json(json_object_get(r, "n"), "7");
    expect_json(json_object_get(r, "title"), "\"xy\"");
    expect_json(json_object_get(r, "id"), "\"abcdefghij12345\"");
    expect_json(json_object_get(r, "created"), "\"2020-01-01 00:00:00.000Z\"");
    expect_json(json_object_get(r, "updated"), "\"2023-11-14 22:13:20.123Z\"");
    json_decref(r);
    r = ok(c, "{\"+m\":\"c\",\"n-\":\"1\"}", prev);
    expect_json(json_object_get(r, "m"), "[\"c\",\"a\"]");
    expect_json(json_object_get(r, "n"), "4");
    json_decref(r);
    r = ok(c, "{\"m-\":[\"a\"]}", prev);
    expect_json(json_object_get(r, "m"), "[]");
    json_decref(r);
    bad(c, "{\"m+\":[\"b\",\"c\"]}", prev,
        "{\"m\":{\"code\":\"validation_too_many_values\",\"message\":\"Select no more than 2.\","
        "\"params\":{\"maxSelect\":2}}}");
    bad(c, "{\"id\":\"zzzzzzzzzzzzzzz\"}", prev,
        "{\"id\":{\"code\":\"validation_pk_change\",\"message\":\"The record primary key cannot be "
        "changed.\"}}");
    json_decref(prev);
    collection_release(c);
}

Test(record, auth_token_key_and_password)
{
    struct collection *c = coll("{\"name\":\"users\",\"type\":\"auth\"}");
    bad(c, "{}", NULL,
        "{\"password\":{\"code\":\"validation_required\",\"message\":\"Cannot be blank.\"},"
        "\"email\":{\"code\":\"validation_required\",\"message\":\"Cannot be blank.\"}}");
    json_t *r =
        ok(c, "{\"email\":\"a@b.co\",\"password\":\"$argon2id$hash\",\"tokenKey\":\"mine\"}", NULL);
    const char *tk = json_string_value(json_object_get(r, "tokenKey"));
    cr_assert_eq(strlen(tk), 50);
    char first[51];
    strcpy(first, tk);
    expect_json(json_object_get(r, "verified"), "false");
    expect_json(json_object_get(r, "emailVisibility"), "false");
    json_t *same = ok(c, "{\"verified\":true}", r);
    cr_assert_str_eq(json_string_value(json_object_get(same, "tokenKey")), first);
    expect_json(json_object_get(same, "verified"), "true");
    json_t *changed = ok(c, "{\"password\":\"$argon2id$other\"}", r);
    cr_assert_str_neq(json_string_value(json_object_get(changed, "tokenKey")), first);
    expect_json(json_object_get(changed, "password"), "\"$argon2id$other\"");
    json_decref(same);
    json_decref(changed);
    json_decref(r);

    const struct field *pw = collection_field(c, SLICE_LIT("password"));
    json_t *e = record_password_check(pw, SLICE_LIT("short"));
    expect_json(e, "{\"code\":\"validation_min_text_constraint\",\"message\":\"Must be at least 8 "
                   "character(s).\"}");
    json_decref(e);
    cr_assert_null(record_password_check(pw, SLICE_LIT("long enough")));
    char big[80];
    memset(big, 'x', 72);
    big[72] = '\0';
    e = record_password_check(pw, slice_cstr(big));
    expect_json(e, "{\"code\":\"validation_max_text_constraint\",\"message\":\"Must be less than "
                   "71 character(s).\"}");
    json_decref(e);
    collection_release(c);
}

Test(record, relation_and_file_values)
{
    struct collection *c = coll(
        "{\"name\":\"posts\",\"fields\":["
        "{\"name\":\"author\",\"type\":\"relation\",\"collectionId\":\"pbc_u\",\"required\":true},"
        "{\"name\":\"tags\",\"type\":\"relation\",\"collectionId\":\"pbc_t\",\"minSelect\":2,"
        "\"maxSelect\":3},"
        "{\"name\":\"doc\",\"type\":\"file\"},"
        "{\"name\":\"pics\",\"type\":\"file\",\"maxSelect\":2}]}");
    bad(c, "{}", NULL,
        "{\"author\":{\"code\":\"validation_required\",\"message\":\"Cannot be blank.\"}}");
    bad(c, "{\"author\":\"u1\",\"tags\":[\"t1\"]}", NULL,
        "{\"tags\":{\"code\":\"validation_not_enough_values\",\"message\":\"Select at least 2.\","
        "\"params\":{\"minSelect\":2}}}");
    bad(c, "{\"author\":\"u1\",\"tags\":[\"a\",\"b\",\"c\",\"d\"]}", NULL,
        "{\"tags\":{\"code\":\"validation_too_many_values\",\"message\":\"Select no more than 3.\","
        "\"params\":{\"maxSelect\":3}}}");
    bad(c, "{\"author\":\"../etc\"}", NULL,
        "{\"author\":{\"code\":\"validation_invalid_value\",\"message\":\"Invalid value.\"}}");
    bad(c, "{\"author\":\"u1\",\"pics\":[\"a.png\",\"b.png\",\"c.png\"]}", NULL,
        "{\"pics\":{\"code\":\"validation_too_many_values\",\"message\":\"Select no more than 2.\","
        "\"params\":{\"maxSelect\":2}}}");
    bad(c, "{\"author\":\"u1\",\"doc\":\"a/b.txt\"}", NULL,
        "{\"doc\":{\"code\":\"validation_invalid_value\",\"message\":\"Invalid value.\"}}");

    /* a single relation keeps the last id given; duplicates and empties drop */
    json_t *rec = ok(c,
                     "{\"author\":[\"u1\",\"u2\"],\"tags\":[\"t1\",\"t1\",\"\",\"t2\"],"
                     "\"pics\":\"[\\\"a.png\\\"]\"}",
                     NULL);
    json_object_del(rec, "id");
    expect_json(rec, "{\"author\":\"u2\",\"tags\":[\"t1\",\"t2\"],\"doc\":\"\","
                     "\"pics\":[\"a.png\"]}");

    /* modifiers on an update: +field prepends, field+ appends, field- removes */
    json_t *up = ok(c,
                    "{\"+tags\":\"t0\",\"tags+\":[\"t3\"],\"tags-\":\"t1\",\"pics+\":\"b.png\","
                    "\"pics-\":[\"a.png\"]}",
                    rec);
    json_object_del(up, "id");
    expect_json(up, "{\"author\":\"u2\",\"tags\":[\"t0\",\"t2\",\"t3\"],\"doc\":\"\","
                    "\"pics\":[\"b.png\"]}");
    json_decref(up);
    json_decref(rec);
    collection_release(c);
}
