/* Route table of the PocketBase API, plus the public health and metrics
 * endpoints. */
#include "api/api.h"

#include "api/files.h"
#include "api/internal.h"
#include "core/timefmt.h"

/* When the API was set up: the process's start, for uptime. */
static int64_t started_ms;

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

/* GET /api/cruder/info (superusers): what the console's server view shows. */
static void info_authed(struct http_request *req, struct api_auth *auth)
{
    if (!auth->superuser) {
        if (auth->record_id[0])
            api_error(req, 403, "Only superusers can perform this action.", NULL);
        else
            api_error(req, 401, "The request requires valid record authorization token.", NULL);
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

void api_register(struct http_router *r, struct store *store, const struct config *cfg)
{
    api_ctx.store = store;
    api_ctx.cfg = cfg;
    started_ms = time_now_ms();
    http_router_add(r, HTTP_M_GET, "/api/health", handle_health, 0, "health");
    http_router_add(r, HTTP_M_HEAD, "/api/health", handle_health, 0, "health");
    http_router_add(r, HTTP_M_GET, "/metrics", handle_metrics, 0, "metrics");
    http_router_add(r, HTTP_M_GET, "/api/cruder/info", handle_info, 0, "info");
    api_register_collections(r);
    api_register_records(r);
    api_register_auth(r);
    files_register_static(r);
    files_register(r);
}
