/* Fuzzes the streaming multipart parser. The first byte picks the feeding
 * pattern: the body is fed whole, or in pieces whose sizes cycle through
 * 1..(byte % 16 + 1), and the events must not depend on it; the second picks
 * the limit on parts. The rest, after a first line holding the boundary, is
 * the body. Data bytes are counted and checked against the input size.
 *
 * The same body then goes through a record upload (api/files.c) into a blob
 * store that keeps the bytes in memory, whole and in the same pieces: the
 * outcome, and for a stored upload the bytes each file's writer gets, must
 * not depend on them (the upload gathers file bytes from many pieces into
 * write batches). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/files.h"
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

/* ---- the upload ---- */

struct blob_writer {
    struct buf bytes;
};

/* What the writers of one upload got, in the order they were dropped. */
struct written {
    size_t writers;
    uint64_t sum;
};
static struct written *written;

static int mem_open(struct blob_store *bs, struct blob_writer **out)
{
    *out = xcalloc(1, sizeof(**out));
    return 0;
}

static int mem_write(struct blob_writer *w, struct slice data)
{
    buf_append_slice(&w->bytes, data);
    return 0;
}

static void mem_abort(struct blob_writer *w)
{
    if (!w)
        return;
    written->writers++;
    written->sum = written->sum * 31 + w->bytes.len;
    for (size_t i = 0; i < w->bytes.len; i++)
        written->sum = written->sum * 31 + (unsigned char)w->bytes.ptr[i];
    buf_free(&w->bytes);
    free(w);
}

static const struct blob_ops mem_ops = {
    .writer_open = mem_open, .writer_write = mem_write, .writer_abort = mem_abort};
static struct blob_store mem_store = {&mem_ops};

static struct collection *upload_collection(void)
{
    static struct collection *c;
    if (!c) {
        json_t *errors = NULL;
        json_t *body =
            json_pack("{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s, s:i, s:i}, {s:s, s:s, s:[s]}]}", "name",
                      "docs", "type", "base", "fields", "name", "t", "type", "text", "name", "f",
                      "type", "file", "maxSelect", 3, "maxSize", 4096, "name", "img", "type",
                      "file", "mimeTypes", "image/png");
        c = collection_from_json(body, NULL, &errors);
        json_decref(body);
        core_assert(c);
        files_set_store(&mem_store);
    }
    return c;
}

/* Feeds body to a new upload as run() does; the outcome: 0, -1 failed. */
static int upload(struct slice boundary, const uint8_t *body, size_t n, unsigned pattern,
                  struct written *w, int *status, size_t *names)
{
    char ct[128];
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%.*s", SLICE_FMT(boundary));
    struct files_upload *u = files_upload_new(upload_collection(), slice_cstr(ct), 1024);
    char *copy = xmalloc(n ? n : 1);
    memcpy(copy, body, n);
    int rc = 0;
    size_t at = 0, step = 1;
    while (at < n && !rc) {
        size_t take = pattern ? step : n;
        if (take > n - at)
            take = n - at;
        rc = files_upload_feed(u, slice_make(copy + at, take));
        at += take;
        if (pattern)
            step = step % pattern + 1;
    }
    if (!rc)
        rc = files_upload_finish(u);
    free(copy);
    const char *message;
    json_t *data;
    files_upload_error(u, status, &message, &data);
    json_decref(data);
    *names = json_array_size(files_upload_names(u));
    written = w;
    files_upload_free(u);
    written = NULL;
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

    if (boundary.len > 70)
        return 0;
    struct written wa = {0}, wb = {0};
    int sa, sb;
    size_t na, nb;
    ra = upload(boundary, body, n, 0, &wa, &sa, &na);
    rb = upload(boundary, body, n, pattern, &wb, &sb, &nb);
    core_assert(ra == rb && sa == sb);
    /* A failed upload stops at once: what its last file had written by then
     * depends on the pieces, as its bytes go out in batches. */
    if (ra == 0)
        core_assert(na == nb && wa.writers == wb.writers && wa.sum == wb.sum && wa.writers <= na);
    return 0;
}
