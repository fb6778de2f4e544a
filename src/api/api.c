/* Route table of the PocketBase API, plus the public health and metrics
 * endpoints. */
#include "api/api.h"

#include "api/files.h"
#include "api/internal.h"

static void handle_health(struct http_request *req)
{
    static const char body[] = "{\"message\":\"API is healthy.\",\"code\":200,\"data\":{}}";
    http_response_header(req, SLICE_LIT("Cache-Control"), SLICE_LIT("no-store"));
    api_json_text(req, 200, SLICE_LIT(body));
}

static void handle_metrics(struct http_request *req)
{
    struct buf out = BUF_INIT;
    http_metrics_render(&out);
    api_ctx.store->ops->metrics(api_ctx.store, &out);
    http_response_header(req, SLICE_LIT("Cache-Control"), SLICE_LIT("no-store"));
    http_respond(req, 200, SLICE_LIT("text/plain; version=0.0.4"), buf_slice(&out));
    buf_free(&out);
}

void api_register(struct http_router *r, struct store *store, const struct config *cfg)
{
    api_ctx.store = store;
    api_ctx.cfg = cfg;
    http_router_add(r, HTTP_M_GET, "/api/health", handle_health, 0, "health");
    http_router_add(r, HTTP_M_HEAD, "/api/health", handle_health, 0, "health");
    http_router_add(r, HTTP_M_GET, "/metrics", handle_metrics, 0, "metrics");
    api_register_collections(r);
    api_register_records(r);
    api_register_auth(r);
    files_register_static(r);
    files_register(r);
}
