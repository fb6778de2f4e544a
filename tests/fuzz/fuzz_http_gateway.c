/* The gateway's configuration parser and route lookup on arbitrary bytes: the
 * input is a config file; after a successful parse, its last line (or the
 * whole input) is looked up as "HOST PATH". */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gateway/gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    config_defaults(&cfg);
    struct gateway_config gc;
    char err[512];
    struct slice text = slice_make((const char *)data, size);
    if (gateway_config_parse(&gc, &cfg, text, err, sizeof(err)) == 0) {
        const char *sp = memchr(text.ptr, ' ', text.len);
        struct slice host = sp ? slice_make(text.ptr, (size_t)(sp - text.ptr)) : SLICE_NULL;
        struct slice path = sp ? slice_make(sp + 1, text.len - host.len - 1) : text;
        const struct gateway_route *r = gateway_route_match(&gc, host, path);
        if (r && r->upstream >= gc.nupstreams)
            __builtin_trap();
        gateway_config_free(&gc);
    }
    config_free(&cfg);
    return 0;
}
