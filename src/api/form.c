/* Request body decoding for record writes. The multipart parser works on a
 * fully buffered body (bounded by max_body_bytes); the files issue replaces
 * it with a streaming one for uploads. */
#include "api/form.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool ci_prefix(struct slice s, const char *p)
{
    size_t n = strlen(p);
    return s.len >= n && strncasecmp(s.ptr, p, n) == 0;
}

/* Finds needle in hay; returns its offset or -1. */
static long find(struct slice hay, struct slice needle)
{
    if (needle.len == 0 || hay.len < needle.len)
        return -1;
    const char *p = memmem(hay.ptr, hay.len, needle.ptr, needle.len);
    return p ? (long)(p - hay.ptr) : -1;
}

/* The value of parameter `name` in a header value such as
 * `form-data; name="title"; filename="a.txt"`. Quoted values may contain ';'
 * and backslash-escaped quotes (left escaped: names never need them). */
static bool header_param(struct slice v, const char *name, struct slice *out)
{
    size_t n = strlen(name);
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && v.ptr[i] != ';') {
            if (v.ptr[i] == '"') {
                for (i++; i < v.len && v.ptr[i] != '"'; i++)
                    if (v.ptr[i] == '\\')
                        i++;
            }
            i++;
        }
        if (i >= v.len)
            return false;
        i++;
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t'))
            i++;
        if (v.len - i > n && strncasecmp(v.ptr + i, name, n) == 0 && v.ptr[i + n] == '=') {
            i += n + 1;
            if (i < v.len && v.ptr[i] == '"') {
                size_t start = ++i;
                while (i < v.len && v.ptr[i] != '"') {
                    if (v.ptr[i] == '\\')
                        i++;
                    i++;
                }
                if (i > v.len)
                    return false;
                *out = slice_make(v.ptr + start, (i < v.len ? i : v.len) - start);
                return i < v.len;
            }
            size_t start = i;
            while (i < v.len && v.ptr[i] != ';' && v.ptr[i] != ' ')
                i++;
            *out = slice_make(v.ptr + start, i - start);
            return out->len > 0;
        }
    }
    return false;
}

bool form_multipart_boundary(struct slice content_type, struct slice *boundary)
{
    if (!ci_prefix(content_type, "multipart/form-data"))
        return false;
    /* RFC 2046: 1 to 70 characters. */
    return header_param(content_type, "boundary", boundary) && boundary->len >= 1 &&
           boundary->len <= 70;
}

static void add_value(json_t *obj, struct slice name, json_t *value)
{
    char key[256];
    snprintf(key, sizeof(key), "%.*s", SLICE_FMT(name));
    json_t *old = json_object_get(obj, key);
    if (!old) {
        json_object_set_new(obj, key, value);
    } else if (json_is_array(old)) {
        json_array_append_new(old, value);
    } else {
        json_t *arr = json_pack("[O]", old);
        json_array_append_new(arr, value);
        json_object_set_new(obj, key, arr);
    }
}

static json_t *fail(struct form_error *err, json_t *partial, const char *message)
{
    json_decref(partial);
    snprintf(err->message, sizeof(err->message), "%s", message);
    return NULL;
}

static json_t *fail_multipart(struct form_error *err, json_t *partial, json_t *payload,
                              const char *message)
{
    json_decref(payload);
    return fail(err, partial, message);
}

static json_t *decode_multipart(struct slice boundary, struct slice body, struct form_error *err)
{
    char delim_buf[80];
    int dn = snprintf(delim_buf, sizeof(delim_buf), "--%.*s", SLICE_FMT(boundary));
    struct slice delim = slice_make(delim_buf, (size_t)dn);
    json_t *obj = json_object();
    json_t *payload = NULL;

    long at = find(body, delim);
    if (at < 0)
        return fail_multipart(err, obj, payload, "The multipart body has no boundary line.");
    size_t pos = (size_t)at + delim.len;
    int parts = 0;
    for (;;) {
        struct slice rest = slice_make(body.ptr + pos, body.len - pos);
        if (slice_starts_with(rest, SLICE_LIT("--")))
            break; /* closing delimiter */
        if (!slice_starts_with(rest, SLICE_LIT("\r\n")))
            return fail_multipart(err, obj, payload, "Malformed multipart boundary line.");
        if (++parts > FORM_MAX_PARTS)
            return fail_multipart(err, obj, payload, "Too many multipart parts.");
        pos += 2;
        rest = slice_make(body.ptr + pos, body.len - pos);
        long head_end = find(rest, SLICE_LIT("\r\n\r\n"));
        if (head_end < 0)
            return fail_multipart(err, obj, payload, "A multipart part has no end of headers.");
        struct slice head = slice_make(rest.ptr, (size_t)head_end);
        struct slice name = SLICE_NULL, filename = SLICE_NULL;
        bool has_filename = false, disposition = false;
        size_t h = 0;
        while (h < head.len) {
            const char *eol = memmem(head.ptr + h, head.len - h, "\r\n", 2);
            size_t line_len = eol ? (size_t)(eol - head.ptr) - h : head.len - h;
            struct slice line = slice_make(head.ptr + h, line_len);
            if (ci_prefix(line, "content-disposition:")) {
                struct slice v = slice_trim(slice_make(line.ptr + 20, line.len - 20));
                if (!ci_prefix(v, "form-data"))
                    return fail_multipart(err, obj, payload, "A multipart part is not form-data.");
                disposition = header_param(v, "name", &name);
                has_filename = header_param(v, "filename", &filename);
            }
            h += line_len + 2;
        }
        if (!disposition || name.len == 0 || name.len > 255)
            return fail_multipart(err, obj, payload, "A multipart part has no field name.");
        pos += (size_t)head_end + 4;
        rest = slice_make(body.ptr + pos, body.len - pos);
        char next_buf[84];
        int nn = snprintf(next_buf, sizeof(next_buf), "\r\n%.*s", SLICE_FMT(delim));
        long end = find(rest, slice_make(next_buf, (size_t)nn));
        if (end < 0)
            return fail_multipart(err, obj, payload, "The multipart body is truncated.");
        struct slice value = slice_make(rest.ptr, (size_t)end);
        if (has_filename)
            return fail_multipart(err, obj, payload, "File uploads are not supported yet.");
        if (slice_eq_cstr(name, "@jsonPayload")) {
            json_decref(payload);
            payload = json_loadb(value.ptr, value.len, 0, NULL);
            if (!json_is_object(payload))
                return fail_multipart(err, obj, payload, "@jsonPayload must be a JSON object.");
        } else {
            add_value(obj, name, json_stringn(value.ptr, value.len));
        }
        pos += (size_t)end + (size_t)nn;
    }
    if (payload) {
        json_object_update(obj, payload);
        json_decref(payload);
    }
    return obj;
}

json_t *form_decode(struct slice content_type, struct slice body, struct form_error *err)
{
    struct slice boundary;
    if (ci_prefix(content_type, "multipart/")) {
        if (!form_multipart_boundary(content_type, &boundary))
            return fail(err, NULL, "The multipart content type has no valid boundary.");
        return decode_multipart(boundary, body, err);
    }
    if (body.len == 0)
        return json_object();
    json_t *v = json_loadb(body.ptr, body.len, 0, NULL);
    if (!json_is_object(v))
        return fail(err, v, "Failed to load the submitted data due to invalid formatting.");
    return v;
}
