#include <criterion/criterion.h>
#include <string.h>

#include "api/form.h"

static json_t *decode(const char *ct, const char *body, struct form_error *err)
{
    return form_decode(slice_cstr(ct), slice_make(body, strlen(body)), err);
}

static void expect_json(json_t *got, const char *want)
{
    json_t *w = json_loads(want, 0, NULL);
    cr_assert_not_null(got);
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert(json_equal(got, w), "got %s, want %s", g, want);
    free(g);
    json_decref(w);
    json_decref(got);
}

Test(form, json_object)
{
    struct form_error err;
    expect_json(decode("application/json", "{\"a\":1}", &err), "{\"a\":1}");
    expect_json(decode("application/json", "", &err), "{}");
}

Test(form, json_not_an_object)
{
    struct form_error err;
    cr_assert_null(decode("application/json", "[1]", &err));
    cr_assert_null(decode("application/json", "{\"a\":", &err));
    cr_assert_str_eq(err.message, "Failed to load the submitted data due to invalid formatting.");
}

Test(form, multipart_fields_repeat_and_payload)
{
    struct form_error err;
    const char *body = "--XYZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n"
                       "--XYZ\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\na\r\n"
                       "--XYZ\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\nb\r\n"
                       "--XYZ\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n"
                       "{\"n\":2,\"title\":\"over\"}\r\n--XYZ--\r\n";
    expect_json(decode("multipart/form-data; boundary=XYZ", body, &err),
                "{\"title\":\"over\",\"tags\":[\"a\",\"b\"],\"n\":2}");
}

Test(form, multipart_quoted_boundary_and_empty_value)
{
    struct form_error err;
    const char *body = "--a;b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n\r\n--a;b--";
    expect_json(decode("multipart/form-data; boundary=\"a;b\"", body, &err), "{\"x\":\"\"}");
}

Test(form, multipart_errors)
{
    struct form_error err;
    cr_assert_null(decode("multipart/form-data", "--x\r\n", &err));
    cr_assert_str_eq(err.message, "The multipart content type has no valid boundary.");
    cr_assert_null(decode("multipart/form-data; boundary=B",
                          "--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nnever ends",
                          &err));
    cr_assert_str_eq(err.message, "The multipart body is truncated.");
    cr_assert_null(decode("multipart/form-data; boundary=B", "no delimiter at all", &err));
    cr_assert_null(decode("multipart/form-data; boundary=B",
                          "--B\r\nContent-Disposition: form-data\r\n\r\nv\r\n--B--", &err));
    cr_assert_str_eq(err.message, "A multipart part has no field name.");
    cr_assert_null(decode("multipart/form-data; boundary=B",
                          "--B\r\nContent-Disposition: form-data; name=\"f\"; "
                          "filename=\"a.txt\"\r\n\r\nabc\r\n--B--",
                          &err));
    cr_assert_str_eq(err.message, "File uploads are not supported yet.");
    cr_assert_null(decode("multipart/form-data; boundary=B",
                          "--B\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n"
                          "[1]\r\n--B--",
                          &err));
}

Test(form, too_many_parts)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i <= FORM_MAX_PARTS; i++)
        buf_append_cstr(&b, "--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n");
    buf_append_cstr(&b, "--B--");
    struct form_error err;
    cr_assert_null(form_decode(SLICE_LIT("multipart/form-data; boundary=B"), buf_slice(&b), &err));
    cr_assert_str_eq(err.message, "Too many multipart parts.");
    buf_free(&b);
}
