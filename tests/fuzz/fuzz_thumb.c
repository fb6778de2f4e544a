/* Fuzzes the ?thumb= size parser: any bytes, parsed as a size spec; a spec
 * that parses must name a usable size. */
#include <stdint.h>

#include "blob/thumb.h"
#include "core/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct thumb_size t;
    if (thumb_parse(slice_make((const char *)data, size), &t) == 0)
        core_assert(t.width > 0 || t.height > 0);
    return 0;
}
