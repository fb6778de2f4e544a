/* API rules as the handlers apply them: the request turned into the values a
 * rule may name (@request.auth/body/query/headers/method), compiled with the
 * domain's rule compiler, and what a record answer may show its caller. Runs
 * on the loops, once per ruled request: small allocations only. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "core/timefmt.h"

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)tolower((unsigned char)ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decodes s ('+' as space) into a new JSON string. */
static json_t *url_decoded(struct slice s)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < s.len; i++) {
        char ch = s.ptr[i];
        int hi, lo;
        if (ch == '%' && i + 2 < s.len && (hi = hex_value(s.ptr[i + 1])) >= 0 &&
            (lo = hex_value(s.ptr[i + 2])) >= 0) {
            buf_append_char(&b, (char)(hi * 16 + lo));
            i += 2;
        } else {
            buf_append_char(&b, ch == '+' ? ' ' : ch);
        }
    }
    json_t *v = json_stringn(b.ptr ? b.ptr : "", b.len);
    buf_free(&b);
    /* Bytes that are not UTF-8 cannot be a JSON string: such a value is "". */
    return v ? v : json_string("");
}

static json_t *query_object(const struct http_request *req)
{
    json_t *o = json_object();
    struct slice q = req->query;
    size_t i = 0;
    while (i < q.len) {
        size_t start = i;
        while (i < q.len && q.ptr[i] != '&')
            i++;
        struct slice pair = slice_make(q.ptr + start, i - start);
        i++;
        if (!pair.len)
            continue;
        const char *eq = memchr(pair.ptr, '=', pair.len);
        struct slice name = eq ? slice_make(pair.ptr, (size_t)(eq - pair.ptr)) : pair;
        struct slice value = eq ? slice_make(eq + 1, pair.len - name.len - 1) : SLICE_NULL;
        json_t *key = url_decoded(name);
        if (json_string_length(key) && !json_object_get(o, json_string_value(key)))
            json_object_set_new(o, json_string_value(key), url_decoded(value));
        json_decref(key);
    }
    return o;
}

/* Header names as rules spell them: lowercase, '-' as '_'. */
static json_t *headers_object(const struct http_request *req)
{
    json_t *o = json_object();
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        char name[128];
        if (!h->name.len || h->name.len >= sizeof(name))
            continue;
        for (size_t k = 0; k < h->name.len; k++) {
            char ch = (char)tolower((unsigned char)h->name.ptr[k]);
            name[k] = ch == '-' ? '_' : ch;
        }
        name[h->name.len] = 0;
        json_t *v = json_stringn(h->value.ptr, h->value.len);
        if (v && !json_object_get(o, name))
            json_object_set_new(o, name, v);
        else
            json_decref(v);
    }
    return o;
}

/* The request as rules see it; release with request_free. */
static void request_make(struct http_request *req, const struct api_auth *auth, json_t *body,
                         const char *context, char method[16], struct rule_request *rq)
{
    size_t mlen = req->method_name.len < 16 ? req->method_name.len : 0;
    memcpy(method, req->method_name.ptr, mlen);
    method[mlen] = 0;
    *rq = (struct rule_request){
        .auth = auth->record.len ? json_loadb(auth->record.ptr, auth->record.len, 0, NULL) : NULL,
        .body = body,
        .query = query_object(req),
        .headers = headers_object(req),
        .method = method,
        .context = context,
    };
}

static void request_free(struct rule_request *rq)
{
    json_decref(rq->auth);
    json_decref(rq->query);
    json_decref(rq->headers);
}

int api_rule_compile(struct http_request *req, const struct api_auth *auth,
                     const struct collection *c, const char *expr, json_t *body,
                     const char *context, struct buf *sql, json_t *params, struct filter_error *err)
{
    char method[16];
    struct rule_request rq;
    request_make(req, auth, body, context, method, &rq);
    struct schema *s = schema_current();
    int rc = rule_compile(s, c, slice_cstr(expr), &rq, time_now_ms(), sql, params, err);
    schema_release(s);
    request_free(&rq);
    return rc;
}

int api_filter_compile(struct http_request *req, const struct api_auth *auth,
                       const struct collection *c, const char *rule, struct slice filter,
                       struct buf *sql, json_t *params, struct filter_error *err)
{
    char method[16];
    struct rule_request rq;
    request_make(req, auth, NULL, "default", method, &rq);
    struct filter_options opts = {.allow_hidden = auth->superuser,
                                  .allow_request = auth->superuser};
    struct schema *s = schema_current();
    int rc = filter_compile_ruled(s, c, slice_cstr(rule ? rule : ""), &rq, filter, &opts,
                                  time_now_ms(), sql, params, err);
    schema_release(s);
    request_free(&rq);
    return rc;
}

bool api_filter_admits(struct http_request *req, const struct api_auth *auth)
{
    static const char *const params[] = {"filter", "sort"};
    static const char *const fields[] = {"@collection.", "@request."};
    if (auth->superuser)
        return true;
    for (size_t i = 0; i < 2; i++) {
        struct slice v;
        if (!http_request_query(req, params[i], &v))
            continue;
        for (size_t k = 0; k < 2; k++) {
            if (memmem(v.ptr, v.len, fields[k], strlen(fields[k]))) {
                char msg[64];
                snprintf(msg, sizeof(msg), "Only superusers can filter by %s", fields[k]);
                api_error(req, 403, msg, NULL);
                return false;
            }
        }
    }
    return true;
}

enum store_fields api_fields_for(const struct api_auth *auth)
{
    return auth->superuser ? STORE_FIELDS_HIDDEN : STORE_FIELDS_PUBLIC;
}

void api_record_redact(const struct collection *c, const struct api_auth *auth, json_t *record)
{
    for (size_t i = 0; i < c->nfields; i++) {
        const struct field *f = &c->fields[i];
        if (field_is_secret(c, f) || (f->hidden && !auth->superuser))
            json_object_del(record, f->name);
    }
    if (c->type != COLLECTION_AUTH || auth->superuser ||
        json_is_true(json_object_get(record, "emailVisibility")))
        return;
    const char *id = json_string_value(json_object_get(record, "id"));
    if (id && strcmp(id, auth->record_id) == 0 && strcmp(c->id, auth->collection_id) == 0)
        return;
    json_object_del(record, "email");
}
