/* The store's row-to-JSON text writer on arbitrary bytes: the output must
 * always parse as one JSON string, equal to the input whenever the input is
 * valid UTF-8; and any 8 bytes taken as a double must print as a JSON number
 * that reads back as the same double (0 for NaN and infinities). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf out = BUF_INIT;
    sq_json_string(&out, (const char *)data, size);
    json_error_t jerr;
    json_t *v = json_loadb(out.ptr, out.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!json_is_string(v))
        abort();
    json_t *same = json_stringn((const char *)data, size);
    if (same && !json_equal(v, same))
        abort();
    json_decref(same);
    json_decref(v);

    if (size >= sizeof(double)) {
        double d;
        memcpy(&d, data, sizeof(d));
        buf_reset(&out);
        sq_json_double(&out, d);
        v = json_loadb(out.ptr, out.len, JSON_DECODE_ANY, &jerr);
        if (!json_is_number(v))
            abort();
        double back = json_number_value(v);
        if (isfinite(d) ? back != d : back != 0)
            abort();
        json_decref(v);
    }
    buf_free(&out);
    return 0;
}
