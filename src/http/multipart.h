/* A streaming multipart/form-data parser (RFC 7578 over RFC 2046): fed the
 * body in pieces as they arrive (from on_body), it reports each part's
 * headers and then its data in pieces, never holding a part's data: uploads
 * of any size pass through in constant memory (the part headers and a few
 * bytes of a possible delimiter split across pieces).
 *
 * Bounded: the boundary's length, the preamble before the first delimiter,
 * the header bytes of each part and the number of parts. Every malformation
 * is an error code with a message fit for a 400; after an error the parser
 * ignores further input. */
#ifndef HTTP_MULTIPART_H
#define HTTP_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

#include "core/slice.h"

enum http_mp_error {
    HTTP_MP_OK = 0,
    HTTP_MP_EBOUNDARY = -1,    /* no usable boundary parameter */
    HTTP_MP_ENODELIM = -2,     /* the body does not start with a delimiter */
    HTTP_MP_EHEADER = -3,      /* a malformed part header section */
    HTTP_MP_EHEADER_SIZE = -4, /* a part's headers over the limit */
    HTTP_MP_EPARTS = -5,       /* more parts than allowed */
    HTTP_MP_ETRUNCATED = -6,   /* the body ended before the closing delimiter */
    HTTP_MP_EABORTED = -7,     /* a callback returned non-zero */
};

struct http_mp_limits {
    size_t max_boundary;     /* RFC 2046 allows 70 */
    size_t max_preamble;     /* bytes before the first delimiter */
    size_t max_header_bytes; /* per part */
    size_t max_parts;
};

/* 70, 1 KiB, 8 KiB, 1000. */
extern const struct http_mp_limits http_mp_default_limits;

struct http_mp_part {
    struct slice name;         /* Content-Disposition's name; may be empty */
    struct slice filename;     /* ptr NULL when the part is not a file */
    struct slice content_type; /* as sent; ptr NULL when absent */
};

/* Each returns 0 to go on, non-zero to stop the parse (HTTP_MP_EABORTED).
 * Slices are valid during the call only. */
struct http_mp_callbacks {
    int (*on_part)(void *ud, const struct http_mp_part *part);
    int (*on_data)(void *ud, struct slice data);
    int (*on_part_end)(void *ud);
};

struct http_multipart;

/* Finds the boundary parameter in a Content-Type value that must be
 * multipart/form-data. Returns 0 with *boundary pointing into content_type
 * (quotes removed), or HTTP_MP_EBOUNDARY. */
int http_multipart_boundary(struct slice content_type, struct slice *boundary);

/* A parser for one body. boundary is copied; it must be 1..max_boundary
 * bytes of RFC 2046 bchars, else NULL. lim NULL means the defaults. Free
 * with http_multipart_free. */
struct http_multipart *http_multipart_new(struct slice boundary, const struct http_mp_limits *lim,
                                          const struct http_mp_callbacks *cb, void *ud);
/* Feeds the next piece of the body. Returns 0, or the (sticky) error. */
int http_multipart_feed(struct http_multipart *mp, struct slice chunk);
/* The body has ended: 0 if the closing delimiter was seen, else the error
 * (HTTP_MP_ETRUNCATED if none happened before). */
int http_multipart_finish(struct http_multipart *mp);
/* A message for an error code, for the client. */
const char *http_multipart_strerror(int err);
void http_multipart_free(struct http_multipart *mp);

#endif
