/* Request bodies of record writes, decoded into one JSON object whatever they
 * came as: application/json, or multipart/form-data with PocketBase's
 * conventions (repeated names become arrays; a part named "@jsonPayload" holds
 * a JSON object merged over the other fields). */
#ifndef API_FORM_H
#define API_FORM_H

#include <jansson.h>

#include "core/slice.h"

enum { FORM_MAX_PARTS = 1000 };

struct form_error {
    char message[160];
};

/* Decodes body according to content_type. Returns a new JSON object (caller
 * owns it), or NULL with a reason in err: malformed JSON, a multipart body
 * without or with a bad boundary, a truncated body, too many parts, or a file
 * part (file fields come with the files issue). Never reads outside body. */
json_t *form_decode(struct slice content_type, struct slice body, struct form_error *err);

/* The boundary parameter of a multipart/form-data content type; false if the
 * type is not multipart/form-data or has no usable boundary. */
bool form_multipart_boundary(struct slice content_type, struct slice *boundary);

#endif
