/* Fuzzes record body decoding: the first line of the input is the
 * Content-Type, the rest is the body. */
#include <stdint.h>
#include <string.h>

#include "api/form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    size_t ct_len = (size_t)(nl - (const char *)data);
    struct slice ct = slice_make((const char *)data, ct_len);
    struct slice body = slice_make(nl + 1, size - ct_len - 1);
    struct form_error err;
    json_t *v = form_decode(ct, body, &err);
    json_decref(v);
    return 0;
}
