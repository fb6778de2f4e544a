/* Answers in PocketBase's shapes, shared by every handler. */
#include <stdlib.h>

#include "api/internal.h"
#include "core/log.h"

struct api_context api_ctx;

static const struct slice json_content_type = SLICE_LIT("application/json");

void api_json_text(struct http_request *req, int status, struct slice body)
{
    http_respond(req, status, json_content_type, body);
}

void api_json(struct http_request *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    api_json_text(req, status, slice_cstr(text));
    free(text);
}

void api_error(struct http_request *req, int status, const char *message, json_t *data)
{
    json_t *body = json_pack("{s:i, s:s, s:o}", "status", status, "message", message, "data",
                             data ? data : json_object());
    if (status == 503 || status == 429)
        http_response_header(req, SLICE_LIT("Retry-After"), SLICE_LIT("1"));
    api_json(req, status, body);
}

void api_store_error(struct http_request *req, const struct store_result *res)
{
    switch (res->status) {
    case STORE_NOT_FOUND:
        api_error(req, 404, "The requested resource wasn't found.", NULL);
        return;
    case STORE_PRECONDITION:
        api_error(req, 412, "The record was changed since the version given in If-Match.", NULL);
        return;
    case STORE_INVALID:
    case STORE_UNIQUE:
        api_error(req, 400, "Failed to save the record.",
                  res->errors ? json_incref(res->errors) : NULL);
        return;
    case STORE_BUSY:
        api_error(req, 503, "The server is busy, try again later.", NULL);
        return;
    default:
        log_error("store failure: %s", res->message);
        api_error(req, 500, "Something went wrong while processing your request.", NULL);
        return;
    }
}

json_t *api_body_object(struct http_request *req)
{
    json_error_t jerr;
    json_t *v = req->body.len ? json_loadb(req->body.ptr, req->body.len, 0, &jerr) : json_object();
    if (!v || !json_is_object(v)) {
        json_decref(v);
        api_error(req, 400, "Failed to load the submitted data due to invalid formatting.", NULL);
        return NULL;
    }
    return v;
}

bool api_query_int(struct http_request *req, const char *name, long long def, long long min,
                   long long max, long long *out)
{
    struct slice v;
    if (!http_request_query(req, name, &v) || v.len == 0) {
        *out = def;
        return true;
    }
    long long n = slice_to_uint(v);
    if (n < 0) {
        json_t *data = json_pack("{s:{s:s,s:s}}", name, "code", "validation_invalid_value",
                                 "message", "Must be a non-negative whole number.");
        api_error(req, 400, "Invalid query parameter.", data);
        return false;
    }
    *out = n < min ? min : n > max ? max : n;
    return true;
}
