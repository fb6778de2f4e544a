/* Fuzzes the streaming multipart parser. The first byte picks the feeding
 * pattern: the body is fed whole, or in pieces whose sizes cycle through
 * 1..(byte % 16 + 1), and the events must not depend on it; the second picks
 * the limit on parts. The rest, after a first line holding the boundary, is
 * the body. Data bytes are counted and checked against the input size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "http/multipart.h"

struct tally {
    size_t parts, ends, data;
    uint64_t sum;
};

static int on_part(void *ud, const struct http_mp_part *p)
{
    struct tally *t = ud;
    t->parts++;
    t->sum = t->sum * 31 + p->name.len + p->filename.len;
    return 0;
}

static int on_data(void *ud, struct slice d)
{
    struct tally *t = ud;
    core_assert(d.len > 0);
    t->data += d.len;
    for (size_t i = 0; i < d.len; i++)
        t->sum = t->sum * 31 + (unsigned char)d.ptr[i];
    return 0;
}

static int on_end(void *ud)
{
    struct tally *t = ud;
    t->ends++;
    t->sum = t->sum * 31 + 7;
    return 0;
}

static int run(struct slice boundary, const struct http_mp_limits *lim, const uint8_t *body,
               size_t n, unsigned pattern, struct tally *t)
{
    static const struct http_mp_callbacks cb = {on_part, on_data, on_end};
    struct http_multipart *mp = http_multipart_new(boundary, lim, &cb, t);
    if (!mp)
        return 1;
    /* A copy of exactly n bytes, so ASan sees reads past the end. */
    char *copy = xmalloc(n ? n : 1);
    memcpy(copy, body, n);
    int rc = 0;
    size_t at = 0, step = 1;
    while (at < n && !rc) {
        size_t take = pattern ? step : n;
        if (take > n - at)
            take = n - at;
        rc = http_multipart_feed(mp, slice_make(copy + at, take));
        at += take;
        if (pattern)
            step = step % pattern + 1;
    }
    if (!rc)
        rc = http_multipart_finish(mp);
    free(copy);
    http_multipart_free(mp);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    unsigned pattern = data[0] % 17;
    struct http_mp_limits lim = http_mp_default_limits;
    lim.max_parts = data[1] % 8 + 1;
    lim.max_header_bytes = 256;
    data += 2;
    size -= 2;
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    struct slice boundary = slice_make((const char *)data, (size_t)(nl - data));
    const uint8_t *body = nl + 1;
    size_t n = size - (size_t)(nl + 1 - data);
    struct tally a = {0}, b = {0};
    int ra = run(boundary, &lim, body, n, 0, &a);
    int rb = run(boundary, &lim, body, n, pattern, &b);
    core_assert(ra == rb && a.parts == b.parts && a.ends == b.ends && a.data == b.data &&
                a.sum == b.sum);
    core_assert(a.data <= n && a.parts <= lim.max_parts && a.ends <= a.parts);
    return 0;
}
