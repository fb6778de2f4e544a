/* What the API hands to rules and what a record answer may show: the query
 * and header objects built from a request, and email/secret redaction.
 * Includes rules.c to reach its statics. */
#include "api/rules.c"

#include <criterion/criterion.h>

static struct http_request request_with(const char *query, struct http_header *h, size_t nh)
{
    struct http_request req = {0};
    req.query = slice_cstr(query);
    req.headers = h;
    req.nheaders = nh;
    return req;
}

Test(api_rules, query_object_decodes_and_keeps_the_first_value)
{
    struct http_request req = request_with("a=1&b=x%20y+z&a=2&empty&%zz=%4&=v&c=%C3%A9", NULL, 0);
    json_t *q = query_object(&req);
    char *text = json_dumps(q, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert_str_eq(
        text, "{\"%zz\":\"%4\",\"a\":\"1\",\"b\":\"x y z\",\"c\":\"\xc3\xa9\",\"empty\":\"\"}");
    free(text);
    json_decref(q);
}

Test(api_rules, query_value_that_is_not_utf8_becomes_empty)
{
    struct http_request req = request_with("bad=%FF%FE", NULL, 0);
    json_t *q = query_object(&req);
    cr_assert_str_eq(json_string_value(json_object_get(q, "bad")), "");
    json_decref(q);
}

Test(api_rules, header_names_are_lowercase_with_underscores)
{
    struct http_header h[] = {
        {SLICE_LIT("X-Custom-Thing"), SLICE_LIT("v1")},
        {SLICE_LIT("x-custom-thing"), SLICE_LIT("second")},
        {SLICE_LIT("Content-Type"), SLICE_LIT("application/json")},
    };
    struct http_request req = request_with("", h, 3);
    json_t *o = headers_object(&req);
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert_str_eq(text, "{\"content_type\":\"application/json\",\"x_custom_thing\":\"v1\"}");
    free(text);
    json_decref(o);
}

static struct collection *users(void)
{
    json_t *errors = NULL;
    json_t *body = json_pack("{s:s,s:s}", "name", "users", "type", "auth");
    struct collection *c = collection_from_json(body, NULL, &errors);
    json_decref(body);
    cr_assert_not_null(c);
    return c;
}

static json_t *record(const char *id, bool visible)
{
    return json_pack("{s:s,s:s,s:b,s:s,s:s}", "id", id, "email", "a@example.com", "emailVisibility",
                     visible, "password", "$argon2id$x", "tokenKey", "k");
}

Test(api_rules, redact_hides_secrets_always_and_email_from_others)
{
    struct collection *c = users();
    struct api_auth anon = {0}, owner = {0}, su = {.superuser = true};
    snprintf(owner.record_id, sizeof(owner.record_id), "u1");
    snprintf(owner.collection_id, sizeof(owner.collection_id), "%s", c->id);
    struct {
        const struct api_auth *auth;
        bool visible;
        bool email;
    } cases[] = {
        {&anon, false, false},
        {&anon, true, true},
        {&owner, false, true},
        {&su, false, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *r = record("u1", cases[i].visible);
        api_record_redact(c, cases[i].auth, r);
        cr_assert_null(json_object_get(r, "password"), "case %zu", i);
        cr_assert_null(json_object_get(r, "tokenKey"), "case %zu", i);
        cr_assert_eq(json_object_get(r, "email") != NULL, cases[i].email, "case %zu", i);
        json_decref(r);
    }
    /* The same record id in another collection is not the owner. */
    struct api_auth stranger = owner;
    snprintf(stranger.collection_id, sizeof(stranger.collection_id), "pbc_other");
    json_t *r = record("u1", false);
    api_record_redact(c, &stranger, r);
    cr_assert_null(json_object_get(r, "email"));
    json_decref(r);
    collection_release(c);
}
