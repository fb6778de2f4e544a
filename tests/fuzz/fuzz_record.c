/* Fuzzes collection building and record validation together. The input is a
 * collection JSON and a record JSON separated by the first NUL byte; when the
 * collection builds, the record is validated as a create and then, with that
 * output as the stored record, as an update. Must never crash or leak. */
#include <stdint.h>
#include <string.h>

#include "domain/collection.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *sep = memchr(p, '\0', size);
    size_t clen = sep ? (size_t)(sep - p) : size;
    const char *rec = sep ? sep + 1 : "{}";
    size_t rlen = sep ? size - clen - 1 : 2;

    json_t *body = json_loadb(p, clen, 0, NULL);
    json_t *input = json_loadb(rec, rlen, 0, NULL);
    json_t *errors = NULL;
    struct collection *c = body ? collection_from_json(body, NULL, &errors) : NULL;
    json_decref(errors);
    if (c && input) {
        json_t *out = NULL, *out2 = NULL;
        errors = NULL;
        if (record_validate(c, input, NULL, 1700000000000, &out, &errors) == 0) {
            json_t *e2 = NULL;
            if (record_validate(c, input, out, 1700000001000, &out2, &e2) == 0)
                json_decref(out2);
            json_decref(e2);
            json_decref(out);
        }
        json_decref(errors);
        errors = NULL;
        json_t *again = collection_to_json_stored(c);
        struct collection *c2 = collection_from_json(again, c, &errors);
        json_decref(errors);
        collection_release(c2);
        json_decref(again);
    }
    collection_release(c);
    json_decref(body);
    json_decref(input);
    return 0;
}
