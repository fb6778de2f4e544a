/* Route table of the PocketBase API, plus the public health and metrics
 * endpoints. */
#include "api/api.h"

#include <string.h>

#include "api/files.h"
#include "api/internal.h"
#include "core/timefmt.h"

/* When the API was set up: the process's start, for uptime. */
static int64_t started_ms;

/* api_set_recheck's look. */
static bool (*recheck_look)(void *arg, uint64_t since_ns);
static void *recheck_arg;

void api_set_recheck(bool (*look)(void *arg, uint64_t since_ns), void *arg)
{
    recheck_look = look;
    recheck_arg = arg;
}

struct collection *api_collection_find(const struct http_request *req)
{
    for (int pass = 0;; pass++) {
        struct schema *s = schema_current();
        struct collection *c = schema_find(s, req->params[0]);
        if (c)
            collection_retain(c);
        schema_release(s);
        if (c || pass == 1 || !recheck_look || !recheck_look(recheck_arg, req->start_ns))
            return c;
    }
}

static void handle_health(struct http_request *req)
{
    static const char body[] = "{\"message\":\"API is healthy.\",\"code\":200,\"data\":{}}";
    http_response_header(req, SLICE_LIT("Cache-Control"), SLICE_LIT("no-store"));
    api_json_text(req, 200, SLICE_LIT(body));
}

static void handle_metrics(struct http_request *req)
{
    struct buf out = BUF_INIT;
    buf_appendf(&out,
                "# HELP cruder_build_info The running version.\n"
                "# TYPE cruder_build_info gauge\n"
                "cruder_build_info{version=\"%s\"} 1\n"
                "# HELP process_start_time_seconds Start time of the process since the epoch.\n"
                "# TYPE process_start_time_seconds gauge\n"
                "process_start_time_seconds %.3f\n",
                CRUDER_VERSION, (double)started_ms / 1000.0);
    http_metrics_render(&out);
    api_ctx.store->ops->metrics(api_ctx.store, &out);
    http_response_header(req, SLICE_LIT("Cache-Control"), SLICE_LIT("no-store"));
    http_respond(req, 200, SLICE_LIT("text/plain; version=0.0.4"), buf_slice(&out));
    buf_free(&out);
}

static void deny_non_superuser(struct http_request *req, const struct api_auth *auth)
{
    if (auth->record_id[0])
        api_error(req, 403, "Only superusers can perform this action.", NULL);
    else
        api_error(req, 401, "The request requires valid record authorization token.", NULL);
}

/* GET /api/cruder/info (superusers): what the console's server view shows. */
static void info_authed(struct http_request *req, struct api_auth *auth)
{
    if (!auth->superuser) {
        deny_non_superuser(req, auth);
        return;
    }
    char started[TIMEFMT_PB_LEN + 1];
    time_format_pb(started_ms, started);
    json_t *body = json_pack(
        "{s:s, s:s, s:I, s:s, s:I, s:i, s:s}", "version", CRUDER_VERSION, "startedAt", started,
        "uptimeSeconds", (json_int_t)((time_now_ms() - started_ms) / 1000), "dataDir",
        api_ctx.cfg->dir, "partitions", (json_int_t)api_ctx.store->ops->partitions(api_ctx.store),
        "loops", api_ctx.cfg->loops, "durability",
        api_ctx.cfg->durability == DURABILITY_FULL     ? "full"
        : api_ctx.cfg->durability == DURABILITY_NORMAL ? "normal"
                                                       : "off");
    http_response_header(req, SLICE_LIT("Cache-Control"), SLICE_LIT("no-store"));
    api_json(req, 200, body);
}

static void handle_info(struct http_request *req)
{
    api_authenticate(req, info_authed);
}

/* Whether a rule of this kind sees a submitted body (@request.body.*, the
 * :changed modifier); -1 for an unknown kind. */
static int rule_kind_has_body(const char *kind)
{
    static const char *const kinds[] = {"list",   "view",   "delete", "auth",
                                        "create", "update", "manage"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kind, kinds[i]) == 0)
            return i >= 4;
    return -1;
}

static json_t *invalid_value(const char *message)
{
    return json_pack("{s:s,s:s}", "code", "validation_invalid_value", "message", message);
}

/* The collection a rule is checked against: the draft built from
 * body.fields when given (a collection being created or edited in the
 * console; an edit of a saved one keeps what the draft leaves out), else
 * the saved one named by body.collection. Retained; NULL after answering
 * 400 or 404. */
static struct collection *check_rule_target(struct http_request *req, json_t *body)
{
    json_t *name = json_object_get(body, "collection");
    json_t *fields = json_object_get(body, "fields");
    struct schema *s = schema_current();
    struct collection *saved = NULL;
    if (json_is_string(name))
        saved = schema_find(s, slice_make(json_string_value(name), json_string_length(name)));
    if (saved)
        collection_retain(saved);
    schema_release(s);
    if (json_is_array(fields)) {
        json_t *type = json_object_get(body, "type");
        json_t *draft = json_pack(
            "{s:s,s:O}", "name",
            json_is_string(name) && json_string_length(name) ? json_string_value(name) : "draft",
            "fields", fields);
        if (json_is_string(type))
            json_object_set(draft, "type", type);
        json_t *errors = NULL;
        struct collection *c = collection_from_json(draft, saved, &errors);
        json_decref(draft);
        if (c) {
            if (saved)
                collection_release(saved);
            return c;
        }
        /* A field still being edited in the console leaves the draft
         * invalid; the saved fields are the best remaining guess. */
        if (!saved) {
            api_error(req, 400, "The fields of the collection are invalid.", errors);
            return NULL;
        }
        json_decref(errors);
        return saved;
    }
    if (!json_is_string(name)) {
        api_error(
            req, 400, "An error occurred while validating the submitted data.",
            json_pack("{s:o}", "collection", invalid_value("Must be a collection name or id.")));
        return NULL;
    }
    if (!saved)
        api_error(req, 404, "The requested resource wasn't found.", NULL);
    return saved;
}

/* POST /api/cruder/check-rule (superusers) {collection, rule[, kind][,
 * type, fields]}: whether the rule compiles against the collection, so the
 * console can show a syntax error, with its byte position, before saving.
 * 204, or 400 with data.rule {code, message, position}. */
static void check_rule_authed(struct http_request *req, struct api_auth *auth)
{
    if (!auth->superuser) {
        deny_non_superuser(req, auth);
        return;
    }
    json_t *body = api_body_object(req);
    if (!body)
        return;
    json_t *rule = json_object_get(body, "rule");
    json_t *kind = json_object_get(body, "kind");
    int has_body = !kind || json_is_null(kind) ? 0
                   : json_is_string(kind)      ? rule_kind_has_body(json_string_value(kind))
                                               : -1;
    if (!json_is_string(rule) || has_body < 0) {
        json_t *errors =
            !json_is_string(rule)
                ? json_pack("{s:o}", "rule", invalid_value("Must be a string."))
                : json_pack("{s:o}", "kind",
                            invalid_value("Must be one of list, view, create, update, delete, "
                                          "auth, manage."));
        json_decref(body);
        api_error(req, 400, "An error occurred while validating the submitted data.", errors);
        return;
    }
    struct collection *c = check_rule_target(req, body);
    if (!c) {
        json_decref(body);
        return;
    }
    /* "" is a rule too (everyone), which the compiler does not take. */
    if (!json_string_length(rule)) {
        collection_release(c);
        json_decref(body);
        http_respond(req, 204, SLICE_NULL, SLICE_NULL);
        return;
    }
    /* Rules compile per request: this one stands for the caller's request
     * of the kind checked, with an empty body where that kind has one. */
    json_t *submitted = has_body ? json_object() : NULL;
    struct buf sql = BUF_INIT;
    json_t *params = json_array();
    struct filter_error err = {0};
    int rc = api_rule_compile(req, auth, c, json_string_value(rule), submitted, "default", &sql,
                              params, &err);
    json_decref(submitted);
    json_decref(params);
    buf_free(&sql);
    collection_release(c);
    json_decref(body);
    if (rc == 0) {
        http_respond(req, 204, SLICE_NULL, SLICE_NULL);
        return;
    }
    /* The message quotes the rule and may end cut inside a UTF-8 sequence,
     * which a JSON string cannot hold. */
    json_t *message = json_string(err.message);
    api_error(req, 400, "Invalid rule.",
              json_pack("{s:{s:s,s:o,s:I}}", "rule", "code", "validation_invalid_rule", "message",
                        message ? message : json_string("Invalid rule."), "position",
                        (json_int_t)err.position));
}

static void handle_check_rule(struct http_request *req)
{
    api_authenticate(req, check_rule_authed);
}

void api_register(struct http_router *r, struct store *store, const struct config *cfg)
{
    api_ctx.store = store;
    api_ctx.cfg = cfg;
    started_ms = time_now_ms();
    http_router_add(r, HTTP_M_GET, "/api/health", handle_health, 0, "health");
    http_router_add(r, HTTP_M_HEAD, "/api/health", handle_health, 0, "health");
    http_router_add(r, HTTP_M_GET, "/metrics", handle_metrics, 0, "metrics");
    http_router_add(r, HTTP_M_GET, "/api/cruder/info", handle_info, 0, "info");
    http_router_add(r, HTTP_M_POST, "/api/cruder/check-rule", handle_check_rule, 0, "check_rule");
    api_register_collections(r);
    api_register_records(r);
    api_register_auth(r);
    files_register_static(r);
    files_register(r);
}
