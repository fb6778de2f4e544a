/* Record files: multipart uploads streamed into the blob store for the
 * records API, downloads with validators and ranges, and file tokens for
 * protected fields (PocketBase's apis/file.go).
 *
 * Uploads stream through http/multipart as the body arrives; file bytes are
 * copied into a batch of at most FILES_WRITE_BATCH (plus one body piece)
 * that the work pool writes into blob writers while the body is paused, so
 * memory stays constant whatever the size and no disk call runs on the loop.
 * fsync, link and the directory fsync run on the work pool at commit.
 * Downloads open and sniff the file on the work pool and send it with
 * sendfile from the loop (http_respond_file), or from memory for a small
 * one; each loop keeps the small public files it served last (see "hot
 * files"), so a repeated download costs no store read and no pool trip.
 *
 * Thumbnails (?thumb=WxH of a size the field lists, or 100x100) are made on
 * the work pool by blob/thumb on first request, into the blob store's
 * derived path, and served from there like any file afterwards; concurrent
 * first requests wait for one generation. An image over the pixel limit is
 * answered 400; any other failure serves the original, as PocketBase does.
 *
 * Access as PocketBase has it: a file of an unprotected field is public to
 * whoever knows its URL (its name carries a random suffix), so it is cached
 * by browsers and shared caches for a year; a protected field's file needs a
 * file token (?token=) whose owner passes the collection's view rule, and is
 * answered private. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "api/files.h"
#include "api/internal.h"
#include "blob/thumb.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "core/workpool.h"
#include "domain/schema.h"
#include "http/multipart.h"

#include <sodium.h>

enum {
    FILES_SNIFF_LEN = 512,
    FILES_DEFAULT_MAX_SIZE = 5 << 20,   /* PocketBase's default maxSize */
    FILES_MAX_UPLOADS = 100,            /* file parts in one request */
    FILES_TOKEN_DEFAULT_DURATION = 180, /* seconds, PocketBase's fileToken default */
    /* File bytes gathered before a trip to the work pool: enough that the
     * trip's cost vanishes beside the write, little enough per upload. */
    FILES_WRITE_BATCH = 256 << 10
};

static struct blob_store *files_bs;
/* Grows before files leave their records (the hot-file cache checks it). */
static _Atomic uint64_t files_removals = 1;

void files_set_store(struct blob_store *bs)
{
    files_bs = bs;
}

/* ---- sniffing ---- */

static bool has_prefix(struct slice s, size_t at, const char *sig, size_t n)
{
    return s.len >= at + n && memcmp(s.ptr + at, sig, n) == 0;
}

/* Whether the bytes look like text: no control bytes but tab, newlines and
 * form feed, and no NUL. UTF-8 is not validated: a cut sequence at the end
 * of the sniffed window is common and harmless. */
static bool looks_text(struct slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f')
            return false;
        if (c == 0x7f)
            return false;
    }
    return true;
}

static bool ci_contains(struct slice s, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= s.len; i++)
        if (slice_case_eq(slice_make(s.ptr + i, n), slice_make(needle, n)))
            return true;
    return false;
}

const char *files_sniff(struct slice head)
{
    if (head.len > FILES_SNIFF_LEN)
        head.len = FILES_SNIFF_LEN;
    static const struct {
        size_t at;
        const char *sig;
        size_t n;
        const char *type;
    } sigs[] = {
        {0, "\x89PNG\r\n\x1a\n", 8, "image/png"},
        {0, "\xff\xd8\xff", 3, "image/jpeg"},
        {0, "GIF87a", 6, "image/gif"},
        {0, "GIF89a", 6, "image/gif"},
        {0, "%PDF-", 5, "application/pdf"},
        {0, "PK\x03\x04", 4, "application/zip"},
        {0, "\x1f\x8b", 2, "application/gzip"},
        {0, "BM", 2, "image/bmp"},
        {0, "II*\0", 4, "image/tiff"},
        {0, "MM\0*", 4, "image/tiff"},
        {0, "\0\0\1\0", 4, "image/x-icon"},
        {0, "OggS", 4, "audio/ogg"},
        {0, "ID3", 3, "audio/mpeg"},
        {0, "fLaC", 4, "audio/flac"},
        {0, "\x1a\x45\xdf\xa3", 4, "video/webm"},
        {0, "7z\xbc\xaf\x27\x1c", 6, "application/x-7z-compressed"},
    };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (has_prefix(head, sigs[i].at, sigs[i].sig, sigs[i].n))
            return sigs[i].type;
    if (has_prefix(head, 0, "RIFF", 4) && has_prefix(head, 8, "WEBP", 4))
        return "image/webp";
    if (has_prefix(head, 0, "RIFF", 4) && has_prefix(head, 8, "WAVE", 4))
        return "audio/wav";
    if (has_prefix(head, 4, "ftypavif", 8))
        return "image/avif";
    if (has_prefix(head, 4, "ftypheic", 8))
        return "image/heic";
    if (has_prefix(head, 4, "ftypqt", 6))
        return "video/quicktime";
    if (has_prefix(head, 4, "ftyp", 4))
        return "video/mp4";
    if (head.len && looks_text(head)) {
        if (ci_contains(head, "<svg"))
            return "image/svg+xml";
        if (ci_contains(head, "<!doctype html") || ci_contains(head, "<html"))
            return "text/html; charset=utf-8";
        return "text/plain; charset=utf-8";
    }
    return "application/octet-stream";
}

/* Types a browser may show inline without running anything of the file's
 * (PocketBase's inline list); any other type is sent as an attachment. */
static bool inline_safe(const char *type)
{
    static const char *const ok[] = {
        "image/png",    "image/jpeg", "image/gif", "image/webp",      "image/avif", "image/bmp",
        "image/x-icon", "audio/",     "video/",    "application/pdf", "text/plain",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strncmp(type, ok[i], strlen(ok[i])) == 0)
            return true;
    return false;
}

/* ---- field lookups ---- */

static const struct field *file_field(const struct collection *c, struct slice name)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (c->fields[i].type == FIELD_FILE && slice_eq_cstr(name, c->fields[i].name))
            return &c->fields[i];
    return NULL;
}

static int64_t field_max_size(const struct field *f)
{
    return f->opt.file.max_size > 0 ? f->opt.file.max_size : FILES_DEFAULT_MAX_SIZE;
}

static int64_t field_max_select(const struct field *f)
{
    return f->opt.file.max_select > 1 ? f->opt.file.max_select : 1;
}

/* The type without parameters, for comparing with a field's mimeTypes. */
static struct slice bare_type(const char *type)
{
    const char *semi = strchr(type, ';');
    return slice_make(type, semi ? (size_t)(semi - type) : strlen(type));
}

static bool mime_allowed(const struct field *f, const char *type)
{
    if (!f->opt.file.nmime)
        return true;
    for (size_t i = 0; i < f->opt.file.nmime; i++)
        if (slice_case_eq(bare_type(type), slice_cstr(f->opt.file.mime_types[i])))
            return true;
    return false;
}

static json_t *field_error(const char *code, const char *message)
{
    return json_pack("{s:s,s:s}", "code", code, "message", message);
}

/* ---- uploads ---- */

struct upload_file {
    /* Opened on the work pool with the file's first bytes (or at commit for
     * an empty file); NULL before that and once committed or aborted. */
    struct blob_writer *w;
    char name[BLOB_NAME_MAX];
};

/* A run of bytes in the pending batch that belongs to one file. */
struct upload_seg {
    size_t file, len;
};

enum part_kind { PART_NONE, PART_TEXT, PART_FILE, PART_SKIP };

struct files_upload {
    struct collection *collection;
    struct http_multipart *mp;
    size_t max_text, text_bytes;
    json_t *input, *payload, *names;
    struct upload_file files[FILES_MAX_UPLOADS];
    size_t nfiles;
    /* the part being read */
    enum part_kind kind;
    char key[256];
    struct buf value;
    const struct field *field;
    uint64_t size;
    unsigned char head[FILES_SNIFF_LEN];
    size_t head_len;
    /* File bytes not yet written, copied out of the body's pieces (the HTTP
     * layer reuses those): a batch written in one trip to the work pool.
     * Files follow one another in a body, so a batch holds at most one run
     * per file. */
    struct buf pending;
    struct upload_seg segs[FILES_MAX_UPLOADS];
    size_t nsegs;
    /* The request whose body feeds the upload (files_upload_attach); NULL
     * when the caller writes synchronously. While a batch is written the
     * body is paused, so the loop never touches the batch meanwhile. */
    struct http_request *req;
    uint64_t fed; /* body bytes fed so far */
    bool writing; /* a batch is on the work pool */
    bool freed;   /* files_upload_free came while writing */
    int write_rc; /* the batch's outcome, from the pool */
    /* the failure */
    int status;
    char message[160];
    json_t *errors;
    /* commit */
    char record_id[64];
    struct http_loop *loop;
    void (*done)(void *arg, int rc);
    void *done_arg;
    int commit_rc;
};

static int fail_field(struct files_upload *u, const struct field *f, json_t *err)
{
    if (!u->status) {
        u->status = 400;
        u->errors = json_object();
        json_object_set_new(u->errors, f->name, err);
    } else {
        json_decref(err);
    }
    return -1;
}

static int fail_message(struct files_upload *u, int status, const char *message)
{
    if (!u->status) {
        u->status = status;
        snprintf(u->message, sizeof(u->message), "%s", message);
    }
    return -1;
}

/* Adds a value under key; repeated keys become arrays (form.c's rule). */
static void add_value(json_t *obj, const char *key, json_t *v)
{
    json_t *cur = json_object_get(obj, key);
    if (!cur) {
        json_object_set_new(obj, key, v);
    } else if (json_is_array(cur)) {
        json_array_append_new(cur, v);
    } else {
        json_t *arr = json_pack("[O]", cur);
        json_array_append_new(arr, v);
        json_object_set_new(obj, key, arr);
    }
}

/* The file field a part's name addresses: "doc", "doc+" (append), "+doc". */
static const struct field *part_field(const struct collection *c, struct slice name)
{
    if (name.len && name.ptr[0] == '+')
        name = slice_make(name.ptr + 1, name.len - 1);
    else if (name.len && name.ptr[name.len - 1] == '+')
        name.len--;
    return file_field(c, name);
}

static int up_on_part(void *ud, const struct http_mp_part *part)
{
    struct files_upload *u = ud;
    if (part->name.len == 0 || part->name.len >= sizeof(u->key))
        return fail_message(u, 400, "A multipart part has no field name.");
    snprintf(u->key, sizeof(u->key), "%.*s", SLICE_FMT(part->name));
    buf_reset(&u->value);
    u->size = 0;
    u->head_len = 0;
    if (!part->filename.ptr) {
        u->kind = PART_TEXT;
        return 0;
    }
    const struct field *f = part_field(u->collection, part->name);
    /* An empty file input of a browser form sends a part with no name. */
    if (!f || part->filename.len == 0) {
        u->kind = PART_SKIP;
        return 0;
    }
    json_t *v = json_object_get(u->input, u->key);
    size_t same = json_is_array(v) ? json_array_size(v) : v ? 1 : 0;
    if ((int64_t)same + 1 > field_max_select(f) && field_max_select(f) > 1) {
        char msg[96];
        snprintf(msg, sizeof(msg), "Select no more than %lld.", (long long)field_max_select(f));
        json_t *e = field_error("validation_too_many_values", msg);
        json_object_set_new(e, "params", json_pack("{s:I}", "maxSelect", field_max_select(f)));
        return fail_field(u, f, e);
    }
    if (u->nfiles == FILES_MAX_UPLOADS)
        return fail_message(u, 400, "Too many files in one request.");
    if (!files_bs) {
        log_error("upload: no file storage");
        return fail_message(u, 500, "Something went wrong while processing your request.");
    }
    struct upload_file *uf = &u->files[u->nfiles];
    uf->w = NULL;
    blob_make_name(part->filename, uf->name);
    u->nfiles++;
    u->field = f;
    u->kind = PART_FILE;
    return 0;
}

static int up_on_data(void *ud, struct slice data)
{
    struct files_upload *u = ud;
    switch (u->kind) {
    case PART_TEXT:
        if (data.len > u->max_text - u->text_bytes)
            return fail_message(u, 413, "Request body too large.");
        u->text_bytes += data.len;
        buf_append_slice(&u->value, data);
        return 0;
    case PART_FILE: {
        const struct field *f = u->field;
        u->size += data.len;
        if (u->size > (uint64_t)field_max_size(f)) {
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "Failed to upload \"%s\" - the maximum allowed file size is %lld bytes.",
                     u->files[u->nfiles - 1].name, (long long)field_max_size(f));
            json_t *e = field_error("validation_file_size_limit", msg);
            json_object_set_new(e, "params", json_pack("{s:I}", "maxSize", field_max_size(f)));
            return fail_field(u, f, e);
        }
        size_t take = FILES_SNIFF_LEN - u->head_len;
        if (take > data.len)
            take = data.len;
        memcpy(u->head + u->head_len, data.ptr, take);
        u->head_len += take;
        size_t file = u->nfiles - 1;
        if (!u->nsegs || u->segs[u->nsegs - 1].file != file)
            u->segs[u->nsegs++] = (struct upload_seg){file, 0};
        u->segs[u->nsegs - 1].len += data.len;
        buf_append_slice(&u->pending, data);
        return 0;
    }
    default:
        return 0;
    }
}

static int up_on_part_end(void *ud)
{
    struct files_upload *u = ud;
    enum part_kind kind = u->kind;
    u->kind = PART_NONE;
    if (kind == PART_TEXT) {
        if (strcmp(u->key, "@jsonPayload") == 0) {
            json_decref(u->payload);
            u->payload = json_loadb(u->value.ptr, u->value.len, 0, NULL);
            if (!json_is_object(u->payload))
                return fail_message(u, 400, "@jsonPayload must be a JSON object.");
            return 0;
        }
        json_t *v = json_stringn(u->value.len ? u->value.ptr : "", u->value.len);
        if (!v)
            return fail_message(u, 400, "A multipart value is not valid UTF-8.");
        add_value(u->input, u->key, v);
        return 0;
    }
    if (kind != PART_FILE)
        return 0;
    const struct field *f = u->field;
    struct upload_file *uf = &u->files[u->nfiles - 1];
    const char *type = files_sniff(slice_make((const char *)u->head, u->head_len));
    if (!mime_allowed(f, type)) {
        struct buf msg = BUF_INIT;
        buf_appendf(&msg, "\"%.*s\" mime type must be one of: ", SLICE_FMT(bare_type(type)));
        for (size_t i = 0; i < f->opt.file.nmime; i++)
            buf_appendf(&msg, "%s%s", i ? ", " : "", f->opt.file.mime_types[i]);
        buf_append_char(&msg, '.');
        json_t *e = field_error("validation_invalid_mime_type", msg.ptr);
        buf_free(&msg);
        return fail_field(u, f, e);
    }
    add_value(u->input, u->key, json_string(uf->name));
    json_array_append_new(u->names, json_string(uf->name));
    return 0;
}

static const struct http_mp_callbacks up_callbacks = {up_on_part, up_on_data, up_on_part_end};

struct files_upload *files_upload_new(struct collection *c, struct slice content_type,
                                      size_t max_text)
{
    struct files_upload *u = xcalloc(1, sizeof(*u));
    collection_retain(c);
    u->collection = c;
    u->max_text = max_text;
    u->input = json_object();
    u->names = json_array();
    struct slice boundary;
    if (http_multipart_boundary(content_type, &boundary) != 0 ||
        !(u->mp = http_multipart_new(boundary, NULL, &up_callbacks, u)))
        fail_message(u, 400, "The multipart content type has no valid boundary.");
    return u;
}

/* Writes the pending batch, opening each file's writer with its first
 * bytes. Runs on the work pool, or on the caller's thread for an upload
 * with no request; either way the loop leaves the batch alone meanwhile. */
static void write_batch(void *arg)
{
    struct files_upload *u = arg;
    const char *p = u->pending.ptr;
    u->write_rc = 0;
    for (size_t i = 0; i < u->nsegs && !u->write_rc; i++) {
        struct upload_file *uf = &u->files[u->segs[i].file];
        if (!uf->w)
            u->write_rc = files_bs->ops->writer_open(files_bs, &uf->w);
        if (!u->write_rc)
            u->write_rc = files_bs->ops->writer_write(uf->w, slice_make(p, u->segs[i].len));
        p += u->segs[i].len;
    }
}

static void batch_written(struct files_upload *u)
{
    buf_reset(&u->pending);
    u->nsegs = 0;
    if (u->write_rc) {
        log_error("upload: cannot write a temporary file: %s", strerror(-u->write_rc));
        fail_message(u, 500, "Something went wrong while processing your request.");
    }
}

static void upload_destroy(struct files_upload *u);

static void write_done(void *arg)
{
    struct files_upload *u = arg;
    u->writing = false;
    if (u->freed) {
        upload_destroy(u);
        return;
    }
    batch_written(u);
    /* A failure shows at the next piece or at the body's end. Resuming may
     * feed the next piece, end the body, or answer and free u: it comes
     * last. */
    http_request_pause_body(u->req, false);
}

/* Writes the pending batch once it is worth a trip to the pool, or when no
 * more body will come to fill it; the body waits meanwhile, so a client
 * faster than the disk is held back by TCP, not buffered. */
static void flush(struct files_upload *u)
{
    if (!u->req) {
        write_batch(u);
        batch_written(u);
        return;
    }
    /* Without a Content-Length any piece may be the last. */
    bool last = u->req->content_length < 0 || u->fed >= (uint64_t)u->req->content_length;
    if (u->pending.len < FILES_WRITE_BATCH && !last)
        return;
    if (workpool_submit(write_batch, write_done, u, http_loop_post_any, u->loop) != 0) {
        fail_message(u, 503, "The server is busy, try again later.");
        return;
    }
    u->writing = true;
    http_request_pause_body(u->req, true);
}

void files_upload_attach(struct files_upload *u, struct http_request *req)
{
    u->req = req;
    u->loop = req->loop;
}

int files_upload_feed(struct files_upload *u, struct slice chunk)
{
    /* The body is paused while a batch is written. */
    core_assert(!u->writing);
    if (u->status)
        return -1;
    int rc = http_multipart_feed(u->mp, chunk);
    if (rc && !u->status)
        fail_message(u, 400, http_multipart_strerror(rc));
    u->fed += chunk.len;
    if (!u->status && u->pending.len)
        flush(u);
    return u->status ? -1 : 0;
}

int files_upload_finish(struct files_upload *u)
{
    /* The last piece flushed its batch, and the body stayed paused until it
     * was written. */
    core_assert(!u->writing && (u->status || !u->pending.len));
    if (u->status)
        return -1;
    int rc = http_multipart_finish(u->mp);
    if (rc && !u->status)
        fail_message(u, 400, http_multipart_strerror(rc));
    if (!u->status && u->payload)
        json_object_update(u->input, u->payload);
    return u->status ? -1 : 0;
}

void files_upload_error(const struct files_upload *u, int *status, const char **message,
                        json_t **data)
{
    *status = u->status ? u->status : 400;
    *message = u->message;
    *data = u->errors ? json_incref(u->errors) : NULL;
}

json_t *files_upload_input(const struct files_upload *u)
{
    return json_incref(u->input);
}

json_t *files_upload_names(const struct files_upload *u)
{
    return u->names;
}

static void commit_work(void *arg)
{
    struct files_upload *u = arg;
    u->commit_rc = 0;
    size_t i;
    for (i = 0; i < u->nfiles; i++) {
        struct upload_file *uf = &u->files[i];
        /* An empty file has had no bytes to open its writer with. */
        int rc = uf->w ? 0 : files_bs->ops->writer_open(files_bs, &uf->w);
        if (!rc) {
            rc = files_bs->ops->writer_commit(uf->w, u->collection->id, u->record_id, uf->name);
            uf->w = NULL;
        }
        if (rc) {
            log_error("upload: cannot store %s/%s/%s: %s", u->collection->id, u->record_id,
                      uf->name, strerror(-rc));
            u->commit_rc = -1;
            break;
        }
    }
    if (u->commit_rc) {
        for (size_t j = 0; j < u->nfiles; j++) {
            if (j < i)
                files_bs->ops->remove(files_bs, u->collection->id, u->record_id, u->files[j].name);
            files_bs->ops->writer_abort(u->files[j].w);
            u->files[j].w = NULL;
        }
    }
}

static void commit_done(void *arg)
{
    struct files_upload *u = arg;
    u->done(u->done_arg, u->commit_rc);
}

void files_upload_commit(struct files_upload *u, const char *record_id, struct http_loop *loop,
                         void (*done)(void *arg, int rc), void *arg)
{
    snprintf(u->record_id, sizeof(u->record_id), "%s", record_id);
    u->loop = loop;
    u->done = done;
    u->done_arg = arg;
    if (!blob_plain_name(slice_cstr(record_id)) ||
        workpool_submit(commit_work, commit_done, u, http_loop_post_any, loop) != 0)
        done(arg, -1);
}

static void upload_destroy(struct files_upload *u)
{
    for (size_t i = 0; i < u->nfiles; i++)
        files_bs->ops->writer_abort(u->files[i].w);
    http_multipart_free(u->mp);
    collection_release(u->collection);
    json_decref(u->input);
    json_decref(u->payload);
    json_decref(u->names);
    json_decref(u->errors);
    buf_free(&u->value);
    buf_free(&u->pending);
    free(u);
}

void files_upload_free(struct files_upload *u)
{
    if (!u)
        return;
    /* The pool holds the writers until the batch is written; its
     * completion frees the upload then. */
    if (u->writing)
        u->freed = true;
    else
        upload_destroy(u);
}

/* ---- removal after commit ---- */

struct removal {
    char collection_id[64], record_id[64];
    json_t *names;
};

static void removal_work(void *arg)
{
    struct removal *r = arg;
    if (!r->names) {
        files_bs->ops->remove_record(files_bs, r->collection_id, r->record_id);
        return;
    }
    size_t i;
    json_t *n;
    json_array_foreach(r->names, i, n)
    {
        const char *name = json_string_value(n);
        if (name)
            files_bs->ops->remove(files_bs, r->collection_id, r->record_id, name);
    }
}

static void removal_done(void *arg)
{
    struct removal *r = arg;
    json_decref(r->names);
    free(r);
}

/* Runs the completion on the pool's thread: nothing waits for it. */
static void post_here(void *target, void (*fn)(void *arg), void *arg)
{
    fn(arg);
}

void files_remove_later(const char *collection_id, const char *record_id, json_t *names)
{
    if (!files_bs || (names && !json_array_size(names))) {
        json_decref(names);
        return;
    }
    /* Before the files go: no loop's cache serves them after this. */
    atomic_fetch_add(&files_removals, 1);
    struct removal *r = xcalloc(1, sizeof(*r));
    snprintf(r->collection_id, sizeof(r->collection_id), "%s", collection_id);
    snprintf(r->record_id, sizeof(r->record_id), "%s", record_id);
    r->names = names;
    if (workpool_submit(removal_work, removal_done, r, post_here, NULL) != 0) {
        log_warn("files of %s/%s left for the startup sweep: work pool full", collection_id,
                 record_id);
        removal_done(r);
    }
}

/* ---- the startup sweep ---- */

struct sweep_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
    json_t *record;
};

struct sweep_ctx {
    struct store *store;
    struct schema *schema;
    /* the last record read: a record's files come one after another */
    char coll[64], rec[64];
    int status;
    json_t *record;
};

static void sweep_got(void *arg, struct store_result *res)
{
    struct sweep_wait *w = arg;
    pthread_mutex_lock(&w->lock);
    w->status = res->status;
    w->record = res->status == STORE_OK ? json_loadb(res->json.ptr, res->json.len, 0, NULL) : NULL;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static bool value_has(json_t *v, const char *name)
{
    if (json_is_string(v))
        return strcmp(json_string_value(v), name) == 0;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) if (json_is_string(x) &&
                                    strcmp(json_string_value(x), name) == 0) return true;
    return false;
}

static bool sweep_referenced(void *ud, const char *coll, const char *rec, const char *name)
{
    struct sweep_ctx *s = ud;
    struct collection *c = schema_find(s->schema, slice_cstr(coll));
    if (!c || strcmp(c->id, coll) != 0)
        return false;
    if (strcmp(s->coll, coll) != 0 || strcmp(s->rec, rec) != 0) {
        json_decref(s->record);
        s->record = NULL;
        snprintf(s->coll, sizeof(s->coll), "%s", coll);
        snprintf(s->rec, sizeof(s->rec), "%s", rec);
        struct sweep_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, NULL};
        s->store->ops->record_get(s->store, c, slice_cstr(rec), STORE_FIELDS_PUBLIC, NULL,
                                  sweep_got, &w);
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        s->status = w.status;
        s->record = w.record;
    }
    if (s->status == STORE_NOT_FOUND)
        return false;
    if (s->status != STORE_OK || !s->record)
        return true; /* unsure: keep */
    for (size_t i = 0; i < c->nfields; i++)
        if (c->fields[i].type == FIELD_FILE &&
            value_has(json_object_get(s->record, c->fields[i].name), name))
            return true;
    return false;
}

int files_sweep(struct store *store, size_t *removed)
{
    *removed = 0;
    if (!files_bs)
        return 0;
    struct sweep_ctx s = {.store = store, .schema = schema_current()};
    int rc = files_bs->ops->sweep(files_bs, sweep_referenced, &s, removed);
    json_decref(s.record);
    schema_release(s.schema);
    return rc;
}

/* ---- downloads ---- */

struct download {
    struct http_request *req;
    struct collection *collection; /* retained */
    struct slice record_id, name;
    const struct field *field;
    bool protect;
    struct api_auth auth;
    struct collection *auth_collection; /* retained while the token is checked */
    struct slice token;
    struct buf where;
    json_t *params;
    /* a thumbnail asked for and listed by the field */
    bool want_thumb;
    struct thumb_size thumb;
    char variant[BLOB_NAME_MAX + 16];
    char thumb_path[4096];
    /* from the work pool */
    int rc, fd;
    bool too_big; /* the image is over the pixel limit */
    struct blob_stat st;
    const char *type;
    /* A small file's bytes: content owned (from the pool), or body borrowed
     * from the cache; answered from memory when body.ptr is set. */
    char *content;
    struct slice body;
    /* what the hot-file cache's entries are checked against, as of the
     * request's start */
    uint64_t schema_version, removals;
};

/* One trip to the work pool; separate from the download, which a parked
 * thumbnail request may answer (and free) before the trip's work returns. */
struct dl_job {
    struct download *d;
    bool parked;
};

/* The download's last step, after its answer: the answer frees the request
 * (and its pool), which is why d lives on the heap. */
static void dl_end(struct download *d)
{
    collection_release(d->collection);
    collection_release(d->auth_collection);
    buf_free(&d->where);
    json_decref(d->params);
    free(d->content);
    free(d);
}

static void dl_cache_forget(struct download *d);

static void dl_not_found(struct download *d)
{
    /* A cached entry's recheck may end here. */
    if (d->collection && blob_plain_name(d->name) && blob_plain_name(d->record_id))
        dl_cache_forget(d);
    api_error(d->req, 404, "The requested resource wasn't found.", NULL);
    dl_end(d);
}

static bool parse_http_date(struct slice s, time_t *out)
{
    char text[64];
    if (!s.ptr || s.len >= sizeof(text))
        return false;
    memcpy(text, s.ptr, s.len);
    text[s.len] = '\0';
    struct tm tm = {0};
    const char *end = strptime(text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return false;
    *out = timegm(&tm);
    return true;
}

/* A Range header against a file of size bytes: 0 with [*from, *to] for one
 * satisfiable range, 1 to send the whole file (no usable Range), -1 for
 * 416 (unsatisfiable, or several ranges, which are not supported). */
static int parse_range(struct slice h, uint64_t size, uint64_t *from, uint64_t *to)
{
    h = slice_trim(h);
    if (!h.ptr || h.len < 7 || !slice_case_eq(slice_make(h.ptr, 6), SLICE_LIT("bytes=")))
        return 1;
    struct slice spec = slice_trim(slice_make(h.ptr + 6, h.len - 6));
    if (memchr(spec.ptr, ',', spec.len))
        return -1;
    const char *dash = memchr(spec.ptr, '-', spec.len);
    if (!dash)
        return 1;
    struct slice a = slice_trim(slice_make(spec.ptr, (size_t)(dash - spec.ptr)));
    struct slice b = slice_trim(slice_make(dash + 1, spec.len - (size_t)(dash - spec.ptr) - 1));
    long long x = a.len ? slice_to_uint(a) : -1, y = b.len ? slice_to_uint(b) : -1;
    if ((a.len && x < 0) || (b.len && y < 0) || (!a.len && !b.len))
        return 1; /* malformed: ignored, as RFC 9110 asks */
    if (!a.len) {
        if (y == 0 || size == 0)
            return -1;
        *from = (uint64_t)y >= size ? 0 : size - (uint64_t)y;
        *to = size - 1;
        return 0;
    }
    if ((uint64_t)x >= size || (b.len && y < x))
        return -1;
    *from = (uint64_t)x;
    *to = !b.len || (uint64_t)y >= size ? size - 1 : (uint64_t)y;
    return 0;
}

static void dl_answer(struct download *d)
{
    struct http_request *req = d->req;
    char etag[64], lm[TIMEFMT_HTTP_LEN + 1], disp[BLOB_NAME_MAX + 48];
    snprintf(etag, sizeof(etag), "\"%" PRIx64 "-%" PRIx64 "\"", d->st.size,
             (uint64_t)d->st.mtime_ms);
    time_t mtime = (time_t)(d->st.mtime_ms / 1000);
    time_format_http(mtime, lm);
    struct slice v;
    bool download = http_request_query(req, "download", &v) && v.len && !slice_eq_cstr(v, "0") &&
                    !slice_eq_cstr(v, "false");
    snprintf(disp, sizeof(disp), "%s; filename=\"%.*s\"",
             download || !inline_safe(d->type) ? "attachment" : "inline", SLICE_FMT(d->name));
    http_response_header(req, SLICE_LIT("ETag"), slice_cstr(etag));
    http_response_header(req, SLICE_LIT("Last-Modified"), slice_cstr(lm));
    http_response_header(req, SLICE_LIT("Accept-Ranges"), SLICE_LIT("bytes"));
    http_response_header(req, SLICE_LIT("Content-Disposition"), slice_cstr(disp));
    http_response_header(req, SLICE_LIT("X-Content-Type-Options"), SLICE_LIT("nosniff"));
    http_response_header(
        req, SLICE_LIT("Content-Security-Policy"),
        SLICE_LIT("default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox"));
    http_response_header(req, SLICE_LIT("Cache-Control"),
                         d->protect ? SLICE_LIT("private, max-age=0, must-revalidate")
                                    : SLICE_LIT("public, max-age=31536000, immutable"));
    struct slice inm = http_request_header(req, "If-None-Match");
    time_t ims;
    if (inm.ptr ? files_etag_match(inm, slice_cstr(etag))
                : parse_http_date(http_request_header(req, "If-Modified-Since"), &ims) &&
                      mtime <= ims) {
        if (d->fd >= 0)
            close(d->fd);
        http_respond(req, 304, SLICE_NULL, SLICE_NULL);
        dl_end(d);
        return;
    }
    uint64_t from = 0, to = d->st.size ? d->st.size - 1 : 0;
    int r = parse_range(http_request_header(req, "Range"), d->st.size, &from, &to);
    struct slice ifr = slice_trim(http_request_header(req, "If-Range"));
    if (r != 1 && ifr.ptr) {
        time_t t;
        bool fresh = ifr.len && ifr.ptr[0] == '"' ? slice_eq_cstr(ifr, etag)
                                                  : parse_http_date(ifr, &t) && t == mtime;
        if (!fresh)
            r = 1;
    }
    struct slice type = slice_cstr(d->type);
    if (r < 0) {
        char cr[64];
        snprintf(cr, sizeof(cr), "bytes */%" PRIu64, d->st.size);
        http_response_header(req, SLICE_LIT("Content-Range"), slice_cstr(cr));
        if (d->fd >= 0)
            close(d->fd);
        api_error(req, 416, "The requested range is not satisfiable.", NULL);
        dl_end(d);
        return;
    }
    int status = r == 0 ? 206 : 200;
    if (r == 0) {
        char cr[80];
        snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, from, to, d->st.size);
        http_response_header(req, SLICE_LIT("Content-Range"), slice_cstr(cr));
    } else {
        from = 0;
        to = d->st.size ? d->st.size - 1 : 0;
    }
    uint64_t len = d->st.size ? to - from + 1 : 0;
    if (d->body.ptr) {
        /* One write with the head, and the loop keeps reading meanwhile. */
        if (d->fd >= 0)
            close(d->fd);
        http_respond(req, status, type, slice_make(d->body.ptr + from, (size_t)len));
    } else {
        http_respond_file(req, status, type, d->fd, from, len);
    }
    dl_end(d);
}

/* ---- hot files ---- */

/* Each loop keeps the small public files it served last, so that a repeated
 * download skips the store read (which field names the file) and the trip
 * to the work pool (open, sniff). A file up to FILES_INLINE_MAX is kept in
 * memory and answered from there with no file system call at all; a larger
 * one up to FILES_CACHE_MAX_SIZE is kept open, and a hit costs an fstat and
 * a dup before sendfile. For a larger file the trip costs nothing beside
 * the transfer, and a deleted file's space would stay held by its slot.
 *
 * An entry holds only what cannot change while it is valid: a stored name
 * is unique and its bytes never change; the field it belongs to changes
 * only with the schema (its version is checked); it leaves its record only
 * through files_remove_later (a removal generation is checked) or, from
 * another process, by being unlinked (an open file's links are checked).
 * Protected files are not cached: their token and rule are checked on every
 * request. An entry is rechecked through the store after FILES_CACHE_TTL_MS
 * all the same, as the auth cache is, for whatever changes a record out of
 * this process (one request rechecks; the entry serves the others until it
 * is put anew or, the file gone, forgotten). Memory: at most FILES_CACHE_SLOTS x FILES_INLINE_MAX bytes
 * of files per loop. */
enum {
    FILES_CACHE_SLOTS = 128,
    FILES_INLINE_MAX = 32 << 10,
    FILES_CACHE_MAX_SIZE = 1 << 20,
    FILES_CACHE_TTL_MS = 1000,
    FILES_CACHE_KEY_MAX = 512,
};

struct dl_cache_entry {
    bool used;
    char key[FILES_CACHE_KEY_MAX]; /* "collection/record/name?thumb" */
    uint64_t schema_version, removals;
    int64_t checked_ms;
    size_t field;  /* index in the collection's fields */
    char *content; /* the bytes (owned), or NULL: then fd is open */
    int fd;
    struct blob_stat st;
    const char *type; /* files_sniff's, static */
};

struct dl_cache {
    struct dl_cache_entry slots[FILES_CACHE_SLOTS];
};

static pthread_key_t dl_cache_tls;
static pthread_once_t dl_cache_once = PTHREAD_ONCE_INIT;

static void dl_cache_drop(struct dl_cache_entry *e)
{
    if (e->used && e->content)
        free(e->content);
    else if (e->used)
        close(e->fd);
    e->used = false;
}

/* The loop thread's cache goes with its thread. */
static void dl_cache_free(void *p)
{
    struct dl_cache *dc = p;
    for (size_t i = 0; i < FILES_CACHE_SLOTS; i++)
        dl_cache_drop(&dc->slots[i]);
    free(dc);
}

static void dl_cache_init(void)
{
    core_assert(pthread_key_create(&dl_cache_tls, dl_cache_free) == 0);
}

/* The request's cache key into key (FILES_CACHE_KEY_MAX bytes); false if
 * it does not fit. The thumb parameter is part of it as given: which file
 * it leads to (a thumbnail, or the original for a size the field does not
 * list) is what the entry remembers. */
static bool dl_cache_key(struct download *d, char *key)
{
    struct slice thumb = SLICE_NULL;
    http_request_query(d->req, "thumb", &thumb);
    int n = snprintf(key, FILES_CACHE_KEY_MAX, "%s/%.*s/%.*s?%.*s", d->collection->id,
                     SLICE_FMT(d->record_id), SLICE_FMT(d->name), SLICE_FMT(thumb));
    return n > 0 && n < FILES_CACHE_KEY_MAX;
}

static struct dl_cache_entry *dl_cache_slot(const char *key)
{
    pthread_once(&dl_cache_once, dl_cache_init);
    struct dl_cache *dc = pthread_getspecific(dl_cache_tls);
    if (!dc) {
        dc = xcalloc(1, sizeof(*dc));
        core_assert(pthread_setspecific(dl_cache_tls, dc) == 0);
    }
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return &dc->slots[h % FILES_CACHE_SLOTS];
}

/* Answers the download from the cache if it holds a valid entry for it. */
static bool dl_cache_serve(struct download *d)
{
    char key[FILES_CACHE_KEY_MAX];
    if (!dl_cache_key(d, key))
        return false;
    struct dl_cache_entry *e = dl_cache_slot(key);
    if (!e->used || strcmp(e->key, key) != 0)
        return false;
    struct stat st;
    if (e->schema_version != d->schema_version || e->removals != d->removals ||
        (!e->content && (fstat(e->fd, &st) != 0 || st.st_nlink == 0))) {
        dl_cache_drop(e);
        return false;
    }
    int64_t now = time_now_ms();
    if (now - e->checked_ms >= FILES_CACHE_TTL_MS) {
        /* This request rechecks through the store (and puts the entry anew,
         * or forgets it if the file is gone); the others meanwhile are
         * answered from the entry rather than all rechecking at once. */
        e->checked_ms = now;
        return false;
    }
    if (e->content)
        d->body = slice_make(e->content, e->st.size);
    else if ((d->fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0)) < 0)
        return false;
    d->field = &d->collection->fields[e->field];
    d->st = e->st;
    d->type = e->type;
    dl_answer(d);
    return true;
}

/* Drops the entry for a download found to have no file. */
static void dl_cache_forget(struct download *d)
{
    char key[FILES_CACHE_KEY_MAX];
    if (!dl_cache_key(d, key))
        return;
    struct dl_cache_entry *e = dl_cache_slot(key);
    if (e->used && strcmp(e->key, key) == 0)
        dl_cache_drop(e);
}

/* Keeps the file a download is about to be answered with, if it may be
 * cached; checked against what held when the request began, so that a
 * removal meanwhile is not missed. Takes d->content (d->body still points
 * to it until the answer). */
static void dl_cache_put(struct download *d)
{
    char key[FILES_CACHE_KEY_MAX];
    if (d->protect || d->st.size > FILES_CACHE_MAX_SIZE || !dl_cache_key(d, key))
        return;
    int fd = -1;
    if (!d->content && (fd = fcntl(d->fd, F_DUPFD_CLOEXEC, 0)) < 0)
        return;
    struct dl_cache_entry *e = dl_cache_slot(key);
    dl_cache_drop(e);
    *e = (struct dl_cache_entry){
        .used = true,
        .schema_version = d->schema_version,
        .removals = d->removals,
        .checked_ms = time_now_ms(),
        .field = (size_t)(d->field - d->collection->fields),
        .content = d->content,
        .fd = fd,
        .st = d->st,
        .type = d->type,
    };
    memcpy(e->key, key, strlen(key) + 1);
    d->content = NULL;
}

/* Sniffs the type of the file at d->fd; a small file is read whole, to be
 * answered (and cached) from memory. On the work pool. */
static void dl_sniff(struct download *d)
{
    free(d->content);
    d->content = NULL;
    d->body = SLICE_NULL;
    if (d->st.size <= FILES_INLINE_MAX) {
        char *bytes = xmalloc(d->st.size + 1);
        ssize_t n = pread(d->fd, bytes, d->st.size + 1, 0);
        /* The size seen by fstat, or the file is not what it was: sendfile
         * then finds out. */
        if (n == (ssize_t)d->st.size) {
            d->content = bytes;
            d->body = slice_make(bytes, d->st.size);
            d->type = files_sniff(d->body);
            return;
        }
        free(bytes);
    }
    char head[FILES_SNIFF_LEN];
    ssize_t n = pread(d->fd, head, sizeof(head), 0);
    d->type = files_sniff(slice_make(head, n > 0 ? (size_t)n : 0));
}

/* Serves the thumbnail at d->thumb_path instead of the original, whose
 * descriptor is kept if the thumbnail cannot be opened. */
static void dl_use_thumb(struct download *d, int rc)
{
    if (rc == -E2BIG) {
        close(d->fd);
        d->fd = -1;
        d->too_big = true;
        return;
    }
    if (rc)
        return; /* PocketBase serves the original when a thumbnail fails */
    int fd = open(d->thumb_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return;
    }
    close(d->fd);
    d->fd = fd;
    d->st.size = (uint64_t)st.st_size;
    d->st.mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    dl_sniff(d);
}

static void dl_opened(void *arg);

/* A parked thumbnail request: the generation it waited for has ended (on
 * the generating pool thread). */
static void dl_thumb_made(void *ud, int rc)
{
    struct download *d = ud;
    dl_use_thumb(d, rc);
    http_loop_post_any(d->req->loop, dl_opened, d);
}

static void dl_open_work(void *arg)
{
    struct dl_job *job = arg;
    struct download *d = job->d;
    char coll[64], rec[64], name[BLOB_NAME_MAX];
    snprintf(coll, sizeof(coll), "%s", d->collection->id);
    snprintf(rec, sizeof(rec), "%.*s", SLICE_FMT(d->record_id));
    snprintf(name, sizeof(name), "%.*s", SLICE_FMT(d->name));
    d->fd = -1;
    d->rc = files_bs->ops->open_read(files_bs, coll, rec, name, &d->fd, &d->st);
    if (d->rc)
        return;
    dl_sniff(d);
    if (!d->want_thumb || !thumb_supported(d->type) ||
        files_bs->ops->derived_path(files_bs, coll, rec, name, d->variant, d->thumb_path,
                                    sizeof(d->thumb_path)) != 0)
        return;
    int rc = thumb_ensure(d->fd, d->thumb_path, &d->thumb, THUMB_MAX_PIXELS, dl_thumb_made, d);
    if (rc == 1)
        job->parked = true; /* d belongs to dl_thumb_made now */
    else
        dl_use_thumb(d, rc);
}

static void dl_work_done(void *arg)
{
    struct dl_job *job = arg;
    if (!job->parked)
        dl_opened(job->d);
    free(job);
}

static void dl_opened(void *arg)
{
    struct download *d = arg;
    if (d->rc) {
        if (d->rc != -ENOENT)
            log_error("download of %s/%.*s/%.*s: %s", d->collection->id, SLICE_FMT(d->record_id),
                      SLICE_FMT(d->name), strerror(-d->rc));
        dl_not_found(d);
        return;
    }
    if (d->too_big) {
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "The image is too large to make a thumbnail (more than %llu pixels).",
                 (unsigned long long)THUMB_MAX_PIXELS);
        api_error(d->req, 400, msg, NULL);
        dl_end(d);
        return;
    }
    dl_cache_put(d);
    dl_answer(d);
}

static void dl_open(struct download *d)
{
    if (!files_bs) {
        dl_not_found(d);
        return;
    }
    struct dl_job *job = xcalloc(1, sizeof(*job));
    job->d = d;
    if (workpool_submit(dl_open_work, dl_work_done, job, http_loop_post_any, d->req->loop) != 0) {
        free(job);
        api_error(d->req, 503, "The server is busy, try again later.", NULL);
        dl_end(d);
    }
}

static void dl_forbidden(struct download *d)
{
    api_error(d->req, 403, "Insufficient permissions to access the file resource.", NULL);
    dl_end(d);
}

static void dl_rule_checked(void *arg, struct store_result *res)
{
    struct download *d = arg;
    if (res->status != STORE_OK) {
        api_store_error(d->req, res);
        dl_end(d);
    } else if (res->json.len <= 2) {
        dl_forbidden(d);
    } else {
        dl_open(d);
    }
}

/* A protected file: the token's owner must pass the view rule. */
static void dl_check_rule(struct download *d)
{
    const struct collection *c = d->collection;
    const char *rule = c->rules[RULE_VIEW];
    if (d->auth.superuser || (rule && !*rule)) {
        dl_open(d);
        return;
    }
    if (!rule) {
        dl_forbidden(d);
        return;
    }
    d->params = json_array();
    json_array_append_new(d->params, json_stringn(d->record_id.ptr, d->record_id.len));
    buf_append_sql_ident(&d->where, c->name);
    buf_append_cstr(&d->where, ".\"id\" = ? AND (");
    struct filter_error fe = {0};
    if (api_rule_compile(d->req, &d->auth, c, rule, NULL, "default", &d->where, d->params, &fe)) {
        log_warn("view rule of %s does not compile: %s", c->name, fe.message);
        dl_forbidden(d);
        return;
    }
    buf_append_char(&d->where, ')');
    struct store_list_query q = {
        .collection = c,
        .where_sql = d->where.ptr,
        .params = d->params,
        .page = 1,
        .per_page = 1,
        .skip_total = true,
    };
    api_ctx.store->ops->record_list(api_ctx.store, &q, d->req->loop, dl_rule_checked, d);
}

/* The key of a file token: the record's tokenKey and the collection's
 * fileToken secret (PocketBase's order, as for auth tokens). -1 if either is
 * missing. */
static int file_token_key(const struct collection *c, json_t *record, struct buf *key)
{
    json_t *ft = json_object_get(c->auth_options, "fileToken");
    const char *secret = json_string_value(json_object_get(ft, "secret"));
    const char *tk = json_string_value(json_object_get(record, "tokenKey"));
    if (!secret || !*secret || !tk || !*tk)
        return -1;
    buf_append_cstr(key, tk);
    buf_append_cstr(key, secret);
    return 0;
}

static int64_t file_token_duration(const struct collection *c)
{
    json_t *ft = json_object_get(c->auth_options, "fileToken");
    json_int_t dur = json_integer_value(json_object_get(ft, "duration"));
    return dur > 0 ? dur : FILES_TOKEN_DEFAULT_DURATION;
}

static void dl_token_owner(void *arg, struct store_result *res)
{
    struct download *d = arg;
    json_t *rec =
        res->status == STORE_OK ? json_loadb(res->json.ptr, res->json.len, 0, NULL) : NULL;
    struct buf key = BUF_INIT;
    struct auth_claims claims;
    bool ok = rec && file_token_key(d->auth_collection, rec, &key) == 0 &&
              auth_token_verify(d->token, buf_slice(&key), time_now_ms() / 1000, &claims) == 0 &&
              strcmp(claims.type, "file") == 0;
    sodium_memzero(key.ptr, key.len);
    buf_free(&key);
    if (ok) {
        const struct collection *ac = d->auth_collection;
        snprintf(d->auth.record_id, sizeof(d->auth.record_id), "%s", claims.id);
        snprintf(d->auth.collection_id, sizeof(d->auth.collection_id), "%s", ac->id);
        d->auth.superuser = strcmp(ac->name, "_superusers") == 0;
        for (size_t i = 0; i < ac->nfields; i++)
            if (ac->fields[i].hidden || ac->fields[i].type == FIELD_PASSWORD)
                json_object_del(rec, ac->fields[i].name);
        json_object_del(rec, "tokenKey");
        json_object_set_new(rec, "collectionId", json_string(ac->id));
        json_object_set_new(rec, "collectionName", json_string(ac->name));
        char *text = json_dumps(rec, JSON_COMPACT);
        d->auth.record = arena_slice_dup(&d->req->pool, slice_cstr(text ? text : "{}"));
        free(text);
    }
    json_decref(rec);
    if (ok)
        dl_check_rule(d);
    else
        dl_forbidden(d);
}

static void dl_verify_token(struct download *d)
{
    struct slice token;
    struct auth_claims claims;
    if (!http_request_query(d->req, "token", &token) || !token.len ||
        token.len > AUTH_TOKEN_MAX_LEN || auth_token_peek(token, &claims) ||
        strcmp(claims.type, "file") != 0) {
        dl_forbidden(d);
        return;
    }
    struct schema *s = schema_current();
    struct collection *ac = schema_find(s, slice_cstr(claims.collection_id));
    if (ac && ac->type == COLLECTION_AUTH && strcmp(ac->id, claims.collection_id) == 0) {
        collection_retain(ac);
        d->auth_collection = ac;
    }
    schema_release(s);
    if (!d->auth_collection) {
        dl_forbidden(d);
        return;
    }
    d->token = token;
    char *id = arena_strndup(&d->req->pool, claims.id, strlen(claims.id));
    api_ctx.store->ops->record_get(api_ctx.store, d->auth_collection, slice_cstr(id),
                                   STORE_FIELDS_ALL, d->req->loop, dl_token_owner, d);
}

/* PocketBase makes thumbnails only of the sizes the field lists, and of
 * 100x100 always; any other ?thumb= gets the original. */
static void dl_thumb_wanted(struct download *d)
{
    struct slice t;
    if (!http_request_query(d->req, "thumb", &t) || !t.len)
        return;
    const struct field *f = d->field;
    bool listed = slice_eq_cstr(t, "100x100");
    for (size_t i = 0; i < f->opt.file.nthumbs && !listed; i++)
        listed = slice_eq_cstr(t, f->opt.file.thumbs[i]);
    if (!listed || thumb_parse(t, &d->thumb) != 0)
        return;
    int n = snprintf(d->variant, sizeof(d->variant), "%.*s_%.*s", SLICE_FMT(t), SLICE_FMT(d->name));
    d->want_thumb = n > 0 && (size_t)n < sizeof(d->variant);
}

static void dl_record(void *arg, struct store_result *res)
{
    struct download *d = arg;
    if (res->status == STORE_NOT_FOUND) {
        dl_not_found(d);
        return;
    }
    if (res->status != STORE_OK) {
        api_store_error(d->req, res);
        dl_end(d);
        return;
    }
    json_t *rec = json_loadb(res->json.ptr, res->json.len, 0, NULL);
    char name[BLOB_NAME_MAX];
    snprintf(name, sizeof(name), "%.*s", SLICE_FMT(d->name));
    const struct collection *c = d->collection;
    for (size_t i = 0; i < c->nfields && !d->field; i++)
        if (c->fields[i].type == FIELD_FILE &&
            value_has(json_object_get(rec, c->fields[i].name), name))
            d->field = &c->fields[i];
    json_decref(rec);
    if (!d->field) {
        dl_not_found(d);
        return;
    }
    d->protect = d->field->opt.file.protect;
    dl_thumb_wanted(d);
    if (d->protect)
        dl_verify_token(d);
    else
        dl_open(d);
}

static void handle_download(struct http_request *req)
{
    struct download *d = xcalloc(1, sizeof(*d));
    d->req = req;
    d->fd = -1;
    d->record_id = req->params[1];
    d->name = req->params[2];
    d->removals = atomic_load(&files_removals);
    struct schema *s = schema_current();
    d->schema_version = s->version;
    struct collection *c = schema_find(s, req->params[0]);
    if (c) {
        collection_retain(c);
        d->collection = c;
    }
    schema_release(s);
    /* The name and id become path components: anything but a plain name
     * (dots, slashes, NULs, however encoded) names no file. */
    if (!d->collection || !blob_plain_name(d->name) || !blob_plain_name(d->record_id)) {
        dl_not_found(d);
        return;
    }
    if (dl_cache_serve(d))
        return;
    api_ctx.store->ops->record_get(api_ctx.store, d->collection, d->record_id, STORE_FIELDS_PUBLIC,
                                   req->loop, dl_record, d);
}

/* ---- POST /api/files/token ---- */

struct token_call {
    struct http_request *req;
    struct collection *collection;
};

static void token_owner(void *arg, struct store_result *res)
{
    struct token_call *t = arg;
    json_t *rec =
        res->status == STORE_OK ? json_loadb(res->json.ptr, res->json.len, 0, NULL) : NULL;
    struct buf key = BUF_INIT;
    char *token = NULL;
    const char *id = json_string_value(json_object_get(rec, "id"));
    if (id && file_token_key(t->collection, rec, &key) == 0) {
        struct auth_claims claims = {.refreshable = false};
        snprintf(claims.id, sizeof(claims.id), "%s", id);
        snprintf(claims.collection_id, sizeof(claims.collection_id), "%s", t->collection->id);
        snprintf(claims.type, sizeof(claims.type), "file");
        claims.exp = time_now_ms() / 1000 + file_token_duration(t->collection);
        token = auth_token_sign(&claims, buf_slice(&key));
    }
    sodium_memzero(key.ptr, key.len);
    buf_free(&key);
    json_decref(rec);
    collection_release(t->collection);
    if (!token) {
        api_error(t->req, 400, "Failed to generate file token.", NULL);
        return;
    }
    http_response_header(t->req, SLICE_LIT("Cache-Control"), SLICE_LIT("no-store"));
    api_json(t->req, 200, json_pack("{s:s}", "token", token));
    free(token);
}

static void token_authed(struct http_request *req, struct api_auth *auth)
{
    if (!auth->record_id[0]) {
        api_error(req, 401, "Missing auth record context.", NULL);
        return;
    }
    struct schema *s = schema_current();
    struct collection *c = schema_find(s, slice_cstr(auth->collection_id));
    if (c)
        collection_retain(c);
    schema_release(s);
    if (!c) {
        api_error(req, 401, "Missing auth record context.", NULL);
        return;
    }
    struct token_call *t = arena_zalloc(&req->pool, sizeof(*t));
    t->req = req;
    t->collection = c;
    char *id = arena_strndup(&req->pool, auth->record_id, strlen(auth->record_id));
    api_ctx.store->ops->record_get(api_ctx.store, c, slice_cstr(id), STORE_FIELDS_ALL, req->loop,
                                   token_owner, t);
}

static void handle_token(struct http_request *req)
{
    api_authenticate(req, token_authed);
}

void files_register(struct http_router *r)
{
    http_router_add(r, HTTP_M_GET, "/api/files/:collection/:record/:name", handle_download, 0,
                    "files_download");
    http_router_add(r, HTTP_M_HEAD, "/api/files/:collection/:record/:name", handle_download, 0,
                    "files_download");
    http_router_add(r, HTTP_M_POST, "/api/files/token", handle_token, 0, "files_token");
}
