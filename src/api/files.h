/* Files served over HTTP: the console's static assets under /_/ (static.c)
 * and record files (files.c): uploads streamed from multipart record writes
 * into the blob store, downloads at /api/files/{collection}/{record}/{name},
 * and file tokens for protected fields. */
#ifndef API_FILES_H
#define API_FILES_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "blob/blob.h"
#include "domain/collection.h"
#include "http/http.h"
#include "store/store.h"

/* Registers GET and HEAD /_/ (the console's assets, index.html for paths
 * without an extension) and /_ (a redirect to /_/). */
void files_register_static(struct http_router *r);

/* ---- record files (files.c) ---- */

/* Sets the blob store that uploads and downloads use; call once at startup,
 * before the loops run. The caller keeps ownership. */
void files_set_store(struct blob_store *bs);

/* Registers GET and HEAD /api/files/:collection/:record/:name and POST
 * /api/files/token. */
void files_register(struct http_router *r);

/* The startup orphan sweep: deletes every stored file that no record of the
 * current schema references, and every interrupted upload. Blocks (store
 * reads, disk): call before the loops run. A file whose record cannot be
 * read for another reason than "not found" is kept. 0, or -errno. */
int files_sweep(struct store *store, size_t *removed);

/* The content type of a file from its first bytes (at most 512 are looked
 * at): images, PDF, archives, audio and video by signature, text as
 * "text/plain; charset=utf-8", else "application/octet-stream". Static. */
const char *files_sniff(struct slice head);

/* One multipart record write in flight: text parts decoded as form_decode
 * does (repeated names become arrays, "@jsonPayload" merged over), file
 * parts of the collection's file fields streamed into blob writers under
 * stored names made by blob_make_name, each stored name added to the input
 * under its part's name ("doc", "doc+"). Checked as they arrive: a file past
 * its field's maxSize, of a sniffed type outside mimeTypes, or more files
 * than maxSelect stop the upload at once. File parts for other fields are
 * read and dropped, as PocketBase ignores unknown fields. */
struct files_upload;

/* A new upload for a body of content_type (multipart/form-data) into a file
 * of c (retained until freed). Text parts may hold max_text bytes in all.
 * Never NULL; a bad boundary is the upload's error at once. */
struct files_upload *files_upload_new(struct collection *c, struct slice content_type,
                                      size_t max_text);
/* Binds the upload to the request whose body feeds it (a streaming route):
 * file bytes are then written on the work pool in batches, with the body
 * paused while a batch is written (req->loop gets the completions). Without
 * it (tools, tests) they are written on the caller's thread as they come.
 * Free the upload in the same loop turn as the request's answer at the
 * latest: a batch written later must not resume a freed request. */
void files_upload_attach(struct files_upload *u, struct http_request *req);
/* Feeds the next piece of the body (copied as needed). 0, or -1 once the
 * upload has failed: the failure may also show one piece late, or at
 * finish, for a write that failed on the work pool. */
int files_upload_feed(struct files_upload *u, struct slice chunk);
/* The body has ended, with every piece of it fed (on_body_end with 0; an
 * attached upload's body is then not paused). 0, or -1 if it was truncated
 * or the upload failed. */
int files_upload_finish(struct files_upload *u);
/* The failure: HTTP status, and either field errors (*data, a new
 * reference: PocketBase's `data`) or a message (*data NULL). */
void files_upload_error(const struct files_upload *u, int *status, const char **message,
                        json_t **data);
/* The decoded fields (new reference; the upload keeps its own). */
json_t *files_upload_input(const struct files_upload *u);
/* The stored names of the uploaded files, a JSON array (borrowed). */
json_t *files_upload_names(const struct files_upload *u);
/* Commits every uploaded file under (collection, record_id) on the work
 * pool (fsync, link, fsync dir), then runs done(arg, rc) on loop: rc 0 when
 * all are durable, else -1 with none left behind (then also when the pool
 * is full). */
void files_upload_commit(struct files_upload *u, const char *record_id, struct http_loop *loop,
                         void (*done)(void *arg, int rc), void *arg);
/* Drops the upload: uncommitted temporaries are deleted, once a batch still
 * being written is done (the upload no longer touches its request then).
 * Accepts NULL. */
void files_upload_free(struct files_upload *u);

/* Deletes stored files after the record change that dropped them has
 * committed: names (a JSON array of stored names, reference stolen; NULL:
 * every file of the record) of record_id in collection_id. Runs on the work
 * pool; if it cannot (pool full, I/O error) the startup sweep finds the
 * orphans. Does nothing before files_set_store. */
void files_remove_later(const char *collection_id, const char *record_id, json_t *names);

/* ---- the embedded assets (generated by tools/embed-web.sh) ---- */

enum files_encoding { FILES_ENC_IDENTITY, FILES_ENC_GZIP, FILES_ENC_BR, FILES_ENC_COUNT };

struct files_asset {
    const char *path; /* below /_/, e.g. "assets/app.1a2b3c4d5e.js" */
    const char *content_type;
    const char *hash; /* hex digest of the identity bytes; the ETag's base */
    bool immutable;   /* fingerprinted: cached for a year */
    const unsigned char *data[FILES_ENC_COUNT]; /* NULL: no such variant */
    size_t len[FILES_ENC_COUNT];
};

/* Sorted by path in byte order. */
extern const struct files_asset files_assets[];
extern const size_t files_nassets;

/* Chooses the encoding to send from an Accept-Encoding value and the
 * variants the asset has: the highest q-value wins, ties go to br, then
 * gzip, then identity. identity is sent when nothing acceptable exists, as
 * RFC 9110 allows. accept may be SLICE_NULL (no header: identity). */
enum files_encoding files_pick_encoding(struct slice accept, const struct files_asset *a);

/* True if an If-None-Match value matches etag (a quoted entity tag), by weak
 * comparison as RFC 9110 13.1.2 asks for GET and HEAD; "*" matches. */
bool files_etag_match(struct slice if_none_match, struct slice etag);

#endif
