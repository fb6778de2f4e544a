/* Internals of the SQLite store adapter, shared by sqlite.c (threads, queues,
 * record operations), sqlite_ddl.c (data directory, collection tables) and
 * sqlite_json.c (rows to JSON text and JSON values to bound parameters).
 *
 * Threads: one writer owns the read-write connection and commits queued writes
 * in groups; store_readers readers each own a read-only connection. Every
 * connection is used by exactly one thread, so connections are opened with
 * SQLITE_OPEN_NOMUTEX and per-connection caches need no lock. */
#ifndef STORE_SQLITE_INT_H
#define STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/slice.h"
#include "store/store.h"

enum { SQ_FORMAT_VERSION = 1 };

enum sq_kind { SQ_GET, SQ_LIST, SQ_WRITE, SQ_DELETE, SQ_SAVE };

/* One queued operation. Owned by the queue, then by the thread running it,
 * then by the post() delivery, which frees it after the callback. */
struct sq_job {
    struct sq_job *next;
    enum sq_kind kind;
    struct sqlite_store *st;
    const struct collection *c; /* must outlive the callback (the caller's schema snapshot) */
    struct slice id;            /* points into idbuf or into heap owned by the job */
    char idbuf[32];
    enum store_fields fields;
    /* list */
    char *where_sql, *order_sql; /* copies, freed with the job */
    json_t *params;              /* a reference, dropped with the job */
    int64_t page, per_page;
    bool skip_total;
    /* write / delete */
    bool create;
    int64_t if_match;
    store_merge_fn merge;
    void *merge_arg;
    char *guard_sql;      /* the guard's where_sql copied, NULL without a guard */
    json_t *guard_params; /* a reference, dropped with the job */
    bool guard_after;
    /* collection_save */
    const struct collection *prev, *nextc;
    /* delivery */
    void *target;
    store_cb cb;
    void *arg;
    struct store_result res;
};

struct sq_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sq_job *head, *tail;
    size_t len, cap;
    bool stopping;
};

/* How a field's column is stored and printed. */
enum sq_colkind { SQ_COL_TEXT, SQ_COL_NUMBER, SQ_COL_BOOL, SQ_COL_ARRAY, SQ_COL_JSON };

/* A collection's prepared statements on one connection. Column 0 of `get` is
 * the id, columns 1..nfields are fields[] and the last is _version. */
/* A list query seen recently on a connection: its prepared statements, and
 * the last total it counted with the data version that total is true for. */
enum { SQ_QUERY_SLOTS = 16 };

struct sq_query {
    char *sql; /* the list statement's text: the key */
    sqlite3_stmt *list, *count_stmt;
    char *total_params; /* the parameters the cached total was counted with */
    int64_t total;
    int64_t total_version;
    uint64_t used; /* for least-recently-used replacement */
};

struct sq_entry {
    const struct collection *c;
    const struct field **fields; /* every field but "id", in schema order */
    unsigned char *kinds;        /* enum sq_colkind per fields[i] */
    unsigned char *level;        /* the enum store_fields that renders fields[i] */
    struct buf *keys;            /* ,"name": per fields[i] */
    size_t nfields;
    struct buf head;   /* {"collectionId":"...","collectionName":"...","id": */
    struct buf select; /* SELECT "id", <fields>, "_version" FROM "<name>" */
    sqlite3_stmt *get, *insert, *update, *del, *version;
    struct sq_query queries[SQ_QUERY_SLOTS];
    uint64_t query_clock;
};

struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *begin, *commit, *data_version; /* readers: one snapshot per list */
    struct sq_entry **entries;
    size_t nentries, cap;
    uint64_t gen; /* the store's ddl_gen these entries were built at */
};

enum { SQ_HIST_BUCKETS = 12 };

struct sqlite_store {
    struct store base;
    store_post_fn post;
    char *path;
    uint32_t partitions;
    size_t max_batch;
    struct sq_conn writer;
    struct sq_conn *readers;
    size_t nreaders;
    pthread_t writer_thread;
    pthread_t *reader_threads;
    struct sq_queue wq, rq;
    sqlite3_stmt *sp_begin, *sp_release, *sp_rollback; /* writer's savepoint statements */
    /* Grows after every collection change so that each connection drops its
     * cached statements: a collection pointer may be reused after a free. */
    atomic_uint_fast64_t ddl_gen;
    sqlite3 *watch_db; /* collections_reload's own read-only connection, opened on first use */
    atomic_uint_fast64_t commits, writes, reads, busy;
    atomic_uint_fast64_t hist[SQ_HIST_BUCKETS + 1], hist_sum;
};

/* ---- sqlite_json.c ---- */

enum sq_colkind sq_colkind(const struct field *f);
/* Appends s as a JSON string with quotes; control characters are escaped and
 * invalid UTF-8 becomes U+FFFD. */
void sq_json_string(struct buf *out, const char *s, size_t n);
/* Appends a finite double as a JSON number, integers without a fraction. */
void sq_json_double(struct buf *out, double d);
/* Appends the current row of e->get (or a statement with the same columns) as
 * the record's JSON object. */
void sq_render_row(const struct sq_entry *e, sqlite3_stmt *st, enum store_fields fields,
                   struct buf *out);
/* The current row of e->get as a new json_t object with every column. */
json_t *sq_row_to_json(const struct sq_entry *e, sqlite3_stmt *st);
/* Binds record[f->name] at idx in the column's storage form. SQLite's rc. */
int sq_bind_field(sqlite3_stmt *st, int idx, enum sq_colkind kind, json_t *v);
/* Binds a filter parameter. SQLite's rc. */
int sq_bind_param(sqlite3_stmt *st, int idx, json_t *v);

/* ---- sqlite_ddl.c ---- */

/* The column definition after the quoted name, e.g. "TEXT NOT NULL DEFAULT ''". */
const char *sq_coldef(const struct field *f);
/* Creates the store's own tables if missing and reads or writes P. 0, or -1
 * with err. */
int sq_schema_init(sqlite3 *db, uint32_t want_partitions, uint32_t *partitions, char *err,
                   size_t errlen);
/* Runs a collection create/alter/drop in one transaction on the writer
 * connection, filling res. */
void sq_collection_save(struct sqlite_store *st, const struct collection *prev,
                        const struct collection *next, struct store_result *res);
/* The counter every collection save bumps, read on st->watch_db (one caller
 * thread); 0 before the first save. 0, or -1 with a reason in err. */
int sq_collections_version(struct sqlite_store *st, int64_t *out, char *err, size_t errlen);
/* Reads every stored collection through a private read-only connection. */
int sq_load_collections(struct sqlite_store *st, struct collection ***out, size_t *n, char *err,
                        size_t errlen);
/* Runs one statement without results; SQLite's rc, message in res on error. */
int sq_exec(sqlite3 *db, const char *sql, struct store_result *res);
/* Sets res to STORE_IO with the connection's last error. */
void sq_set_io(struct store_result *res, sqlite3 *db, const char *what);

#endif
