/* Blob storage for record files, behind a small table of operations: the
 * local-disk adapter here, the blob service of a later issue.
 *
 * A blob is addressed by (collection id, record id, stored name). Stored
 * names are made by blob_make_name from the client's file name, as
 * PocketBase does (sanitised, with a random suffix), and are never trusted
 * as paths: every operation refuses a component that is not a plain name.
 *
 * Every operation may block (disk I/O, fsync): call from a worker thread or
 * at startup, never on an event loop. A writer is used by one thread at a
 * time. */
#ifndef BLOB_BLOB_H
#define BLOB_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/slice.h"

enum { BLOB_NAME_MAX = 160 };

struct blob_store;
struct blob_writer;

struct blob_stat {
    uint64_t size;
    int64_t mtime_ms;
};

/* Answers whether a stored file is still referenced by its record. */
typedef bool (*blob_referenced_fn)(void *ud, const char *collection_id, const char *record_id,
                                   const char *name);

struct blob_ops {
    /* Starts a new blob: bytes go to a temporary file, invisible until
     * commit, which names it (an upload may arrive before its record's id is
     * known). 0, or -errno. */
    int (*writer_open)(struct blob_store *bs, struct blob_writer **out);
    /* 0, or -errno (the writer must still be aborted). */
    int (*writer_write)(struct blob_writer *w, struct slice data);
    /* fsyncs the bytes, links them into place as (collection, record, name)
     * and fsyncs the directory: once it returns 0 the blob survives a crash.
     * Frees the writer either way; on failure nothing is left behind. 0,
     * -EINVAL for a component that is not plain, -EEXIST if the name is
     * taken, or -errno. */
    int (*writer_commit)(struct blob_writer *w, const char *collection_id, const char *record_id,
                         const char *name);
    /* Drops the temporary file and frees the writer. Accepts NULL. */
    void (*writer_abort)(struct blob_writer *w);
    /* Opens a blob for reading (the caller owns *fd). 0, -ENOENT, -EINVAL
     * for a name that is not plain, or -errno. */
    int (*open_read)(struct blob_store *bs, const char *collection_id, const char *record_id,
                     const char *name, int *fd, struct blob_stat *st);
    /* Deletes one blob and what is derived from it (its thumbnails); a
     * missing one is not an error. 0, or -errno. */
    int (*remove)(struct blob_store *bs, const char *collection_id, const char *record_id,
                  const char *name);
    /* Deletes every blob of a record (after the record's delete commits). 0,
     * or -errno. */
    int (*remove_record)(struct blob_store *bs, const char *collection_id, const char *record_id);
    /* The path of a file derived from a blob (a thumbnail: "<record>/thumbs_
     * <name>/<variant>"), for the caller to create or open; creates the
     * directory. Derived files are removed with their blob. 0, -EINVAL, or
     * -errno. */
    int (*derived_path)(struct blob_store *bs, const char *collection_id, const char *record_id,
                        const char *name, const char *variant, char *out, size_t outlen);
    /* The startup orphan sweep: deletes every blob referenced() says no to,
     * every temporary file (uploads a crash interrupted) and the directories
     * left empty. *removed counts deleted blobs and temporaries. 0, or -errno. */
    int (*sweep)(struct blob_store *bs, blob_referenced_fn referenced, void *ud, size_t *removed);
    void (*free)(struct blob_store *bs);
};

struct blob_store {
    const struct blob_ops *ops;
};

/* The local-disk adapter: blobs in <dir>/storage/<collection>/<record>/<name>,
 * thumbnails in <dir>/storage/<collection>/<record>/thumbs_<name>/,
 * temporaries in <dir>/storage/.tmp/ (the same file system, so commit is a
 * rename). Creates the directories. NULL with a reason in err on failure. */
struct blob_store *blob_local_open(const char *dir, char *err, size_t errlen);

/* True if s can be a path component here: 1..BLOB_NAME_MAX-1 bytes of
 * [A-Za-z0-9_.-], not starting with '.'. */
bool blob_plain_name(struct slice s);

/* Makes a stored name from a client's file name the way PocketBase does:
 * the base snake-cased to [a-z0-9_] (at most 100 bytes, "file" if nothing
 * is left), '_', 10 random [a-z0-9], then the extension lowercased to
 * [a-z0-9] (at most 20 bytes). Writes a NUL-terminated name to out (at
 * least BLOB_NAME_MAX bytes). */
void blob_make_name(struct slice original, char *out);

#endif
