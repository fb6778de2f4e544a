/* Counters for /metrics and the small shared vocabulary of responses
 * (reason phrases, the JSON error shape).
 *
 * Every request bumps three counters. Each loop owns a slot, so the bumps are
 * relaxed atomic adds on cache lines no other core writes; the renderer sums
 * the slots and tolerates counts that are a moment apart. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "http/internal.h"

enum { MAX_SLOTS = 64 };

static struct http_metrics_slot slots[MAX_SLOTS];
static atomic_uint next_slot;
static atomic_uint nroutes = 2; /* 0: errors before routing, 1: fallback */
static const char *_Atomic route_names[HTTP_METRIC_ROUTES] = {"-", "fallback"};
_Atomic long http_metrics_open_connections;

static const int statuses[HTTP_METRIC_STATUSES - 1] = {
    200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405,
    408, 409, 413, 414, 417, 422, 429, 431, 500, 503, 505,
};

/* Upper bounds in seconds; the last bucket is +Inf. */
static const double bucket_le[HTTP_METRIC_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

struct http_metrics_slot *http_metrics_slot_claim(void)
{
    /* More loops than slots share slots; the adds are atomic, so that is
     * only slower, never wrong. */
    return &slots[atomic_fetch_add(&next_slot, 1) % MAX_SLOTS];
}

unsigned http_metrics_route_id(const char *name)
{
    unsigned n = atomic_load(&nroutes);
    for (unsigned i = 0; i < n && i < HTTP_METRIC_ROUTES; i++)
        if (strcmp(route_names[i], name) == 0)
            return i;
    unsigned id = atomic_fetch_add(&nroutes, 1);
    if (id >= HTTP_METRIC_ROUTES)
        return HTTP_ROUTE_ID_FALLBACK;
    route_names[id] = xstrdup(name);
    return id;
}

static unsigned status_index(int status)
{
    for (unsigned i = 0; i < HTTP_METRIC_STATUSES - 1; i++)
        if (statuses[i] == status)
            return i;
    return HTTP_METRIC_STATUSES - 1;
}

void http_metrics_record(struct http_metrics_slot *slot, unsigned route_id, int status,
                         uint64_t duration_ns)
{
    if (!slot)
        return;
    atomic_fetch_add_explicit(&slot->requests[route_id][status_index(status)], 1,
                              memory_order_relaxed);
    unsigned b = 0;
    static const uint64_t bounds_ns[HTTP_METRIC_BUCKETS] = {
        100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
        50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
    };
    while (b < HTTP_METRIC_BUCKETS && duration_ns > bounds_ns[b])
        b++;
    atomic_fetch_add_explicit(&slot->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&slot->duration_ns_sum, duration_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&slot->count, 1, memory_order_relaxed);
}

static uint64_t sum_slots(size_t offset)
{
    uint64_t v = 0;
    for (int i = 0; i < MAX_SLOTS; i++)
        v += atomic_load_explicit((_Atomic uint64_t *)((char *)&slots[i] + offset),
                                  memory_order_relaxed);
    return v;
}

void http_metrics_render(struct buf *out)
{
    buf_append_cstr(out, "# HELP cruder_http_requests_total HTTP requests answered.\n"
                         "# TYPE cruder_http_requests_total counter\n");
    unsigned n = atomic_load(&nroutes);
    if (n > HTTP_METRIC_ROUTES)
        n = HTTP_METRIC_ROUTES;
    for (unsigned r = 0; r < n; r++)
        for (unsigned s = 0; s < HTTP_METRIC_STATUSES; s++) {
            uint64_t v = sum_slots(offsetof(struct http_metrics_slot, requests) +
                                   (r * HTTP_METRIC_STATUSES + s) * sizeof(uint64_t));
            if (!v)
                continue;
            buf_append_cstr(out, "cruder_http_requests_total{route=");
            http_json_string(out, slice_cstr(route_names[r]));
            if (s < HTTP_METRIC_STATUSES - 1)
                buf_appendf(out, ",status=\"%d\"} %llu\n", statuses[s], (unsigned long long)v);
            else
                buf_appendf(out, ",status=\"other\"} %llu\n", (unsigned long long)v);
        }
    buf_append_cstr(out, "# HELP cruder_http_request_duration_seconds Time to answer a request.\n"
                         "# TYPE cruder_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (unsigned b = 0; b <= HTTP_METRIC_BUCKETS; b++) {
        cum += sum_slots(offsetof(struct http_metrics_slot, buckets) + b * sizeof(uint64_t));
        if (b < HTTP_METRIC_BUCKETS)
            buf_appendf(out, "cruder_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                        bucket_le[b], (unsigned long long)cum);
        else
            buf_appendf(out, "cruder_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                        (unsigned long long)cum);
    }
    buf_appendf(out, "cruder_http_request_duration_seconds_sum %.6f\n",
                (double)sum_slots(offsetof(struct http_metrics_slot, duration_ns_sum)) / 1e9);
    buf_appendf(out, "cruder_http_request_duration_seconds_count %llu\n",
                (unsigned long long)sum_slots(offsetof(struct http_metrics_slot, count)));
    buf_appendf(out,
                "# HELP cruder_http_open_connections Client connections open now.\n"
                "# TYPE cruder_http_open_connections gauge\n"
                "cruder_http_open_connections %ld\n",
                atomic_load(&http_metrics_open_connections));
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

void http_json_string(struct buf *out, struct slice s)
{
    static const char hex[] = "0123456789abcdef";
    buf_reserve(out, s.len + 2);
    buf_append_char(out, '"');
    for (size_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            buf_append(out, e, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            buf_append(out, e, 6);
        } else {
            buf_append_char(out, (char)ch);
        }
    }
    buf_append_char(out, '"');
}

void http_error_body(struct buf *out, int status, const char *msg)
{
    buf_appendf(out, "{\"status\":%d,\"message\":", status);
    http_json_string(out, slice_cstr(msg));
    buf_append_cstr(out, ",\"data\":{}}");
}
