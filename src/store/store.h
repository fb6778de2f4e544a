/* The store: where collections and records live, behind a small table of
 * operations implemented by each adapter (SQLite now, PostgreSQL later), the
 * way SQLite's VFS is.
 *
 * Every operation is asynchronous: it returns at once, runs on the store's own
 * threads (never on an event loop), and delivers its result by calling
 * post(target, ...) with the callback, so the callback runs on the caller's
 * loop. Writes go through one writer per shard that commits concurrent writes
 * together (group commit); a write's callback runs only after its commit is
 * durable at the configured level.
 *
 * Records carry two columns beside their fields: _partition, hash(id) mod P,
 * and _version, which grows by one with every change and makes the ETag. */
#ifndef STORE_STORE_H
#define STORE_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/slice.h"
#include "domain/collection.h"

enum store_status {
    STORE_OK = 0,
    STORE_NOT_FOUND = -1,
    STORE_PRECONDITION = -2, /* If-Match version differs; nothing changed */
    /* the merge callback rejected it, or a relation names missing records
     * (errors: {"field": {"code": "validation_missing_rel_records"}}): see
     * errors; or a delete would leave a required relation empty (errors {},
     * message: PocketBase's "Failed to delete record. Make sure ..."). */
    STORE_INVALID = -3,
    STORE_UNIQUE = -4,    /* a unique index refused it: see errors */
    STORE_BUSY = -5,      /* queues full: answer 503 with Retry-After */
    STORE_IO = -6,        /* the engine failed: see message */
    STORE_FORBIDDEN = -7, /* a write's guard (an API rule) refused it; nothing changed */
};

struct store_result {
    int status;        /* enum store_status */
    struct buf json;   /* get/write: the record's JSON object; list: a JSON array of records;
                        * delete: see record_delete */
    int64_t version;   /* get/write: the record's version; list: the last row's */
    int64_t total;     /* list: total matching, -1 with skip_total */
    json_t *errors;    /* STORE_INVALID / STORE_UNIQUE: PocketBase's `data` object */
    char message[256]; /* STORE_IO: what failed */
};

/* Runs on the caller's loop. `res` and what it holds live until the callback
 * returns; take ownership of res->json with buf_steal or of res->errors with
 * json_incref to keep them. */
typedef void (*store_cb)(void *arg, struct store_result *res);

/* How a write reaches the caller's loop: post(target, fn, arg) must run
 * fn(arg) on that loop soon, from any thread (http_loop_post_any). */
typedef void (*store_post_fn)(void *target, void (*fn)(void *arg), void *arg);

/* Called on the writer thread, inside the write's transaction, with the stored
 * record (NULL for a create). Returns 0 with *out = the full record to store
 * (the callee's reference passes to the store), or -1 with *errors set. Must not
 * block: no I/O, no hashing. */
typedef int (*store_merge_fn)(void *arg, json_t *prev, json_t **out, json_t **errors);

/* Which fields a record is rendered with. */
enum store_fields {
    STORE_FIELDS_PUBLIC = 0, /* what any caller may see */
    STORE_FIELDS_HIDDEN,     /* and the hidden ones, as superusers see them */
    STORE_FIELDS_ALL,        /* and the password hash and tokenKey: auth's own use */
};

struct store_list_query {
    const struct collection *collection;
    const char *where_sql; /* from filter_compile, NULL for all rows */
    json_t *params;        /* values bound to where_sql's ?s, in order; may be NULL */
    const char *order_sql; /* from sort_compile, NULL for the default (rowid) */
    int64_t page;          /* from 1 */
    int64_t per_page;
    bool skip_total;
    enum store_fields fields;
};

/* A condition a write must meet, checked inside its transaction (an API rule
 * compiled to SQL): SELECT 1 FROM <collection> WHERE "id" = <the record's id>
 * AND (where_sql) must find the row, with params bound to where_sql's ?s in
 * order. `after` checks the row as the write leaves it (create rules), else
 * the stored row before the change (update and delete rules). The guard and
 * what it points to are copied before the call returns. */
struct store_guard {
    const char *where_sql;
    json_t *params;
    bool after;
};

struct store;

/* What a delete's cascade did to one record (record_delete). */
enum store_cascaded {
    STORE_CASCADE_DELETED = 1, /* deleted; else its relation field lost the id */
    STORE_CASCADE_FILES = 2,   /* deleted, and its collection has file fields */
};

/* Calls fn for each [collectionId, recordId, enum store_cascaded flags] of
 * the JSON list a delete's result carries: the records its cascade deleted
 * or updated, collection after collection as the cascade reached them. */
static inline void store_cascaded_foreach(const struct store_result *res,
                                          void (*fn)(const char *cid, const char *rid,
                                                     unsigned flags, void *arg),
                                          void *arg)
{
    if (!res->json.len)
        return;
    json_t *touched = json_loadb(res->json.ptr, res->json.len, 0, NULL);
    size_t i;
    json_t *entry;
    json_array_foreach(touched, i, entry)
    {
        const char *cid = json_string_value(json_array_get(entry, 0));
        const char *rid = json_string_value(json_array_get(entry, 1));
        json_int_t flags = json_integer_value(json_array_get(entry, 2));
        if (cid && rid)
            fn(cid, rid, (unsigned)flags, arg);
    }
    json_decref(touched);
}

struct store_ops {
    const char *name;
    void (*close)(struct store *s);

    /* At startup, before any loop runs: every stored collection, retained for
     * the caller. Blocks. 0, or -1 with a reason in err. */
    int (*load_collections)(struct store *s, struct collection ***out, size_t *n, char *err,
                            size_t errlen);
    /* Blocks; for one watcher thread. When the stored collections changed
     * since *version (a save by any process on the same data; *version 0
     * before the first call), loads them all as load_collections does, sets
     * *version and returns 1; 0 when unchanged; -1 with a reason in err. */
    int (*collections_reload)(struct store *s, int64_t *version, struct collection ***out,
                              size_t *n, char *err, size_t errlen);
    /* Creates (prev NULL), alters (both set) or drops (next NULL) a collection's
     * table in one write transaction: fields added, renamed (matched by field
     * id) and dropped without losing other columns' data, indexes replaced. */
    void (*collection_save)(struct store *s, const struct collection *prev,
                            const struct collection *next, void *target, store_cb cb, void *arg);

    void (*record_get)(struct store *s, const struct collection *c, struct slice id,
                       enum store_fields fields, void *target, store_cb cb, void *arg);
    void (*record_list)(struct store *s, const struct store_list_query *q, void *target,
                        store_cb cb, void *arg);
    /* create: inserts the record merge(NULL) returns (its "id" is set by
     * record_validate, client-given or generated; `id` is ignored). Otherwise
     * updates record `id` with what merge(stored) returns. if_match >= 0 makes
     * it a compare-and-set on the version: STORE_PRECONDITION when it differs.
     * An update of a missing id is STORE_NOT_FOUND; a create whose id exists
     * is STORE_UNIQUE on "id". A guard (may be NULL) is checked inside the same
     * transaction: STORE_FORBIDDEN, with nothing changed, when it fails. The
     * stored record is answered with `fields`. */
    void (*record_write)(struct store *s, const struct collection *c, struct slice id, bool create,
                         int64_t if_match, const struct store_guard *guard,
                         enum store_fields fields, store_merge_fn merge, void *merge_arg,
                         void *target, store_cb cb, void *arg);
    /* Deletes record `id` (if_match and guard as for writes), and in the same
     * transaction what references it through relation fields of the current
     * schema snapshot (schema_current): the id is removed from those fields;
     * a referencing record left with no ids is deleted when its field has
     * cascadeDelete (recursively), and the whole delete is refused with
     * STORE_INVALID when a required field (or minSelect) would be left short.
     * Writes check that every id their relation fields hold exists in the
     * related collection (STORE_INVALID on that field otherwise). On
     * STORE_OK, res->json is empty or a JSON array of [collectionId, id,
     * flags] (store_cascaded_foreach): every record the cascade deleted or
     * updated; the caller removes the files of those deleted with
     * STORE_CASCADE_FILES, and tells shared caches of them all. */
    void (*record_delete)(struct store *s, const struct collection *c, struct slice id,
                          int64_t if_match, const struct store_guard *guard, void *target,
                          store_cb cb, void *arg);

    /* P, the number of logical partitions this store was created with. */
    uint32_t (*partitions)(struct store *s);

    /* Appends the store's metrics (commit batch sizes, queue depth) in
     * Prometheus text format. Safe from any thread. */
    void (*metrics)(struct store *s, struct buf *out);
};

/* Every adapter's handle starts with this. */
struct store {
    const struct store_ops *ops;
};

/* Opens (creating if needed) the SQLite store in cfg->dir: WAL mode, the
 * durability level of cfg->durability, P from cfg->partitions on creation (a
 * later different value is ignored with a warning: P never changes). Starts the
 * writer and cfg->store_readers reader threads. 0, or -1 with a reason. */
int store_sqlite_open(const struct config *cfg, store_post_fn post, struct store **out, char *err,
                      size_t errlen);

#endif
