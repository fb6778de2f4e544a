/* The SQLite store adapter: struct store_ops on one database file in WAL mode.
 *
 * Load: every API read and write passes through here. Reads are spread over
 * store_readers threads, each with its own read-only connection and cache of
 * prepared statements, and render rows straight to JSON text. Writes queue for
 * the single writer thread, which commits everything queued (up to
 * max_write_batch) in one transaction, each write inside its own savepoint so a
 * failure undoes only that write; callbacks are posted only after COMMIT has
 * returned, so an acknowledged write is as durable as cfg->durability says
 * (FULL: fsynced). One fsync then covers a whole batch: that is the group commit.
 *
 * The collection a job names must stay valid until its callback has run; the
 * caller's schema snapshot keeps it alive. No SQLite call runs on a caller's
 * thread except in open, load_collections and close. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/id.h"
#include "core/log.h"
#include "domain/schema.h"
#include "store/sqlite_int.h"

/* ---- jobs and queues ---- */

static struct sq_job *job_new(struct sqlite_store *st, enum sq_kind kind, void *target, store_cb cb,
                              void *arg)
{
    struct sq_job *j = xcalloc(1, sizeof(*j));
    j->kind = kind;
    j->st = st;
    j->target = target;
    j->cb = cb;
    j->arg = arg;
    j->id = slice_make(j->idbuf, 0);
    j->if_match = -1;
    return j;
}

static void job_set_id(struct sq_job *j, struct slice id)
{
    if (id.len < sizeof(j->idbuf)) {
        if (id.len)
            memcpy(j->idbuf, id.ptr, id.len);
        j->idbuf[id.len] = '\0';
        j->id = slice_make(j->idbuf, id.len);
    } else {
        j->id = slice_make(xstrndup(id.ptr, id.len), id.len);
    }
}

static void job_free(struct sq_job *j)
{
    if (j->id.ptr != j->idbuf)
        free((char *)j->id.ptr);
    free(j->where_sql);
    free(j->order_sql);
    free(j->guard_sql);
    json_decref(j->params);
    json_decref(j->guard_params);
    buf_free(&j->res.json);
    json_decref(j->res.errors);
    free(j);
}

/* Runs on the caller's loop. */
static void job_deliver(void *arg)
{
    struct sq_job *j = arg;
    j->cb(j->arg, &j->res);
    job_free(j);
}

static void job_post(struct sq_job *j)
{
    j->st->post(j->target, job_deliver, j);
}

static void queue_init(struct sq_queue *q, size_t cap)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->cap = cap;
}

static void queue_destroy(struct sq_queue *q)
{
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

/* Appends j; -1 if the queue is full or stopping (the caller answers BUSY). */
static int queue_push(struct sq_queue *q, struct sq_job *j)
{
    pthread_mutex_lock(&q->mu);
    if (q->stopping || q->len >= q->cap) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->len++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

static void submit(struct sqlite_store *st, struct sq_queue *q, struct sq_job *j)
{
    if (queue_push(q, j) == 0)
        return;
    atomic_fetch_add(&st->busy, 1);
    j->res.status = STORE_BUSY;
    job_post(j);
}

/* ---- per-connection statement cache ---- */

static void query_free(struct sq_query *q)
{
    sqlite3_finalize(q->list);
    sqlite3_finalize(q->count_stmt);
    free(q->sql);
    free(q->total_params);
    memset(q, 0, sizeof(*q));
}

static void entry_free(struct sq_entry *e)
{
    for (size_t i = 0; i < SQ_QUERY_SLOTS; i++)
        query_free(&e->queries[i]);
    sqlite3_finalize(e->get);
    sqlite3_finalize(e->insert);
    sqlite3_finalize(e->update);
    sqlite3_finalize(e->del);
    sqlite3_finalize(e->version);
    for (size_t i = 0; i < e->nfields; i++)
        buf_free(&e->keys[i]);
    free(e->keys);
    free(e->fields);
    free(e->kinds);
    free(e->level);
    buf_free(&e->head);
    buf_free(&e->select);
    collection_release((struct collection *)e->c);
    free(e);
}

static void conn_flush(struct sq_conn *conn)
{
    for (size_t i = 0; i < conn->nentries; i++)
        entry_free(conn->entries[i]);
    conn->nentries = 0;
}

static struct sq_entry *entry_new(const struct collection *c)
{
    struct sq_entry *e = xcalloc(1, sizeof(*e));
    /* Held while cached: entries are found by the collection's address,
     * which a freed collection could otherwise pass on to a new one. */
    collection_retain((struct collection *)c);
    e->c = c;
    e->fields = xcalloc(c->nfields ? c->nfields : 1, sizeof(*e->fields));
    e->kinds = xcalloc(c->nfields ? c->nfields : 1, 1);
    e->level = xcalloc(c->nfields ? c->nfields : 1, 1);
    e->keys = xcalloc(c->nfields ? c->nfields : 1, sizeof(struct buf));
    for (size_t i = 0; i < c->nfields; i++) {
        const struct field *f = &c->fields[i];
        if (strcmp(f->name, "id") == 0)
            continue;
        size_t k = e->nfields++;
        e->fields[k] = f;
        e->kinds[k] = (unsigned char)sq_colkind(f);
        e->level[k] = field_is_secret(c, f) ? STORE_FIELDS_ALL
                      : f->hidden           ? STORE_FIELDS_HIDDEN
                                            : STORE_FIELDS_PUBLIC;
        buf_append_char(&e->keys[k], ',');
        sq_json_string(&e->keys[k], f->name, strlen(f->name));
        buf_append_char(&e->keys[k], ':');
    }
    buf_append_cstr(&e->head, "{\"collectionId\":");
    sq_json_string(&e->head, c->id ? c->id : "", c->id ? strlen(c->id) : 0);
    buf_append_cstr(&e->head, ",\"collectionName\":");
    sq_json_string(&e->head, c->name, strlen(c->name));
    buf_append_cstr(&e->head, ",\"id\":");
    buf_append_cstr(&e->select, "SELECT \"id\"");
    for (size_t i = 0; i < e->nfields; i++) {
        buf_append_cstr(&e->select, ", ");
        buf_append_sql_ident(&e->select, e->fields[i]->name);
    }
    buf_append_cstr(&e->select, ", \"_version\" FROM ");
    buf_append_sql_ident(&e->select, c->name);
    return e;
}

/* The cache entry for c on conn, built on first use. Entries are dropped when
 * a collection changed since they were built. */
static struct sq_entry *conn_entry(struct sqlite_store *st, struct sq_conn *conn,
                                   const struct collection *c)
{
    uint64_t gen = atomic_load(&st->ddl_gen);
    if (gen != conn->gen) {
        conn_flush(conn);
        conn->gen = gen;
    }
    for (size_t i = 0; i < conn->nentries; i++)
        if (conn->entries[i]->c == c)
            return conn->entries[i];
    if (conn->nentries == conn->cap) {
        conn->cap = conn->cap ? conn->cap * 2 : 16;
        conn->entries = xrealloc(conn->entries, conn->cap * sizeof(*conn->entries));
    }
    struct sq_entry *e = entry_new(c);
    conn->entries[conn->nentries++] = e;
    return e;
}

enum sq_stmt_kind { STMT_GET, STMT_INSERT, STMT_UPDATE, STMT_DELETE, STMT_VERSION };

/* The prepared statement of kind `k` for e, or NULL with res set to STORE_IO. */
static sqlite3_stmt *entry_stmt(sqlite3 *db, struct sq_entry *e, enum sq_stmt_kind k,
                                struct store_result *res)
{
    sqlite3_stmt **slot = k == STMT_GET      ? &e->get
                          : k == STMT_INSERT ? &e->insert
                          : k == STMT_UPDATE ? &e->update
                          : k == STMT_DELETE ? &e->del
                                             : &e->version;
    if (*slot)
        return *slot;
    struct buf sql = BUF_INIT;
    switch (k) {
    case STMT_GET:
        buf_append(&sql, e->select.ptr, e->select.len);
        buf_append_cstr(&sql, " WHERE \"id\" = ?1");
        break;
    case STMT_INSERT:
        buf_append_cstr(&sql, "INSERT INTO ");
        buf_append_sql_ident(&sql, e->c->name);
        buf_append_cstr(&sql, " (\"id\"");
        for (size_t i = 0; i < e->nfields; i++) {
            buf_append_cstr(&sql, ", ");
            buf_append_sql_ident(&sql, e->fields[i]->name);
        }
        buf_append_cstr(&sql, ", \"_partition\", \"_version\") VALUES (?1");
        for (size_t i = 0; i < e->nfields + 2; i++)
            buf_appendf(&sql, ", ?%zu", i + 2);
        buf_append_char(&sql, ')');
        break;
    case STMT_UPDATE:
        buf_append_cstr(&sql, "UPDATE ");
        buf_append_sql_ident(&sql, e->c->name);
        buf_append_cstr(&sql, " SET ");
        for (size_t i = 0; i < e->nfields; i++) {
            buf_append_sql_ident(&sql, e->fields[i]->name);
            buf_appendf(&sql, " = ?%zu, ", i + 2);
        }
        buf_append_cstr(&sql, "\"_version\" = \"_version\" + 1 WHERE \"id\" = ?1");
        break;
    case STMT_DELETE:
        buf_append_cstr(&sql, "DELETE FROM ");
        buf_append_sql_ident(&sql, e->c->name);
        buf_append_cstr(&sql, " WHERE \"id\" = ?1");
        break;
    case STMT_VERSION:
        buf_append_cstr(&sql, "SELECT \"_version\" FROM ");
        buf_append_sql_ident(&sql, e->c->name);
        buf_append_cstr(&sql, " WHERE \"id\" = ?1");
        break;
    }
    if (sqlite3_prepare_v3(db, sql.ptr, (int)sql.len, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
        SQLITE_OK) {
        sq_set_io(res, db, "prepare");
        *slot = NULL;
    }
    buf_free(&sql);
    return *slot;
}

/* ---- reads (reader threads) ---- */

static void run_get(struct sqlite_store *st, struct sq_conn *conn, struct sq_job *j)
{
    struct sq_entry *e = conn_entry(st, conn, j->c);
    sqlite3_stmt *s = entry_stmt(conn->db, e, STMT_GET, &j->res);
    if (!s)
        return;
    sqlite3_bind_text(s, 1, j->id.ptr, (int)j->id.len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        sq_render_row(e, s, j->fields, &j->res.json);
        j->res.version = sqlite3_column_int64(s, (int)e->nfields + 1);
        j->res.status = STORE_OK;
    } else if (rc == SQLITE_DONE) {
        j->res.status = STORE_NOT_FOUND;
    } else {
        sq_set_io(&j->res, conn->db, "get");
    }
    sqlite3_reset(s);
}

static int bind_params(sqlite3_stmt *s, json_t *params, int limit)
{
    size_t n = json_is_array(params) ? json_array_size(params) : 0;
    for (size_t i = 0; i < n && (int)i < limit; i++)
        if (sq_bind_param(s, (int)i + 1, json_array_get(params, i)) != SQLITE_OK)
            return -1;
    return 0;
}

/* The cached statements of a list query on e, prepared on first use; the
 * least recently used slot makes room. NULL if the SQL does not prepare. */
static struct sq_query *entry_query(sqlite3 *db, struct sq_entry *e, const struct sq_job *j)
{
    struct buf sql = BUF_INIT;
    buf_append(&sql, e->select.ptr, e->select.len);
    if (j->where_sql) {
        buf_append_cstr(&sql, " WHERE ");
        buf_append_cstr(&sql, j->where_sql);
    }
    size_t where_end = sql.len;
    buf_append_cstr(&sql, " ORDER BY ");
    buf_append_cstr(&sql, j->order_sql ? j->order_sql : "rowid");
    buf_append_cstr(&sql, " LIMIT ? OFFSET ?");

    struct sq_query *q = &e->queries[0];
    for (size_t i = 0; i < SQ_QUERY_SLOTS; i++) {
        struct sq_query *c = &e->queries[i];
        if (c->sql && strcmp(c->sql, sql.ptr) == 0) {
            c->used = ++e->query_clock;
            buf_free(&sql);
            return c;
        }
        if (c->used < q->used)
            q = c;
    }
    query_free(q);
    struct buf count = BUF_INIT;
    buf_append_cstr(&count, "SELECT COUNT(*) FROM ");
    buf_append_sql_ident(&count, e->c->name);
    buf_append(&count, sql.ptr + e->select.len, where_end - e->select.len);
    if (sqlite3_prepare_v3(db, sql.ptr, (int)sql.len, SQLITE_PREPARE_PERSISTENT, &q->list, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v3(db, count.ptr, (int)count.len, SQLITE_PREPARE_PERSISTENT, &q->count_stmt,
                           NULL) != SQLITE_OK) {
        query_free(q);
        q = NULL;
    } else {
        q->sql = buf_steal(&sql);
        q->used = ++e->query_clock;
        q->total_version = -1; /* no total counted yet */
    }
    buf_free(&sql);
    buf_free(&count);
    return q;
}

static int conn_stmt(sqlite3 *db, sqlite3_stmt **slot, const char *sql)
{
    if (*slot)
        return 0;
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) == SQLITE_OK ? 0
                                                                                               : -1;
}

/* Runs a one-row statement and resets it; its integer in *out if given. */
static int step_once(sqlite3_stmt *s, int64_t *out)
{
    int rc = sqlite3_step(s);
    if (out && rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* A page and its total, read from one snapshot. The total costs a scan of
 * every matching row, so it is remembered per query and parameters and reused
 * while the database's data version (bumped by any commit, from this process
 * or another) has not moved. */
static void run_list(struct sqlite_store *st, struct sq_conn *conn, struct sq_job *j)
{
    struct sq_entry *e = conn_entry(st, conn, j->c);
    int64_t per_page = j->per_page > 0 ? j->per_page : 30;
    int64_t page = j->page > 0 ? j->page : 1;
    int64_t offset = (page - 1) > INT64_MAX / per_page ? INT64_MAX : (page - 1) * per_page;
    char *params = NULL;
    bool in_txn = false;

    struct sq_query *q = entry_query(conn->db, e, j);
    if (!q || conn_stmt(conn->db, &conn->begin, "BEGIN") ||
        conn_stmt(conn->db, &conn->commit, "COMMIT") ||
        conn_stmt(conn->db, &conn->data_version, "PRAGMA data_version"))
        goto io;
    if (step_once(conn->begin, NULL))
        goto io;
    in_txn = true;
    sqlite3_stmt *s = q->list;
    /* LIMIT and OFFSET are the last two parameters, whatever where_sql holds. */
    int np = sqlite3_bind_parameter_count(s);
    if (bind_params(s, j->params, np - 2) < 0 || sqlite3_bind_int64(s, np - 1, per_page) ||
        sqlite3_bind_int64(s, np, offset))
        goto io;
    buf_append_char(&j->res.json, '[');
    int rc;
    bool first = true;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (!first)
            buf_append_char(&j->res.json, ',');
        first = false;
        sq_render_row(e, s, j->fields, &j->res.json);
        j->res.version = sqlite3_column_int64(s, (int)e->nfields + 1);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        goto io;
    buf_append_char(&j->res.json, ']');

    j->res.total = -1;
    if (!j->skip_total) {
        int64_t version = -1;
        if (step_once(conn->data_version, &version))
            goto io;
        params = j->params ? json_dumps(j->params, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (q->total_version == version && version >= 0 &&
            ((!params && !q->total_params) ||
             (params && q->total_params && strcmp(params, q->total_params) == 0))) {
            j->res.total = q->total;
        } else {
            if (bind_params(q->count_stmt, j->params, sqlite3_bind_parameter_count(q->count_stmt)) <
                    0 ||
                step_once(q->count_stmt, &j->res.total))
                goto io;
            free(q->total_params);
            q->total_params = params;
            params = NULL;
            q->total = j->res.total;
            q->total_version = version;
        }
    }
    if (step_once(conn->commit, NULL))
        goto io;
    j->res.status = STORE_OK;
    free(params);
    return;
io:
    sq_set_io(&j->res, conn->db, "list");
    buf_reset(&j->res.json);
    if (in_txn)
        step_once(conn->commit, NULL);
    free(params);
}

struct reader_arg {
    struct sqlite_store *st;
    struct sq_conn *conn;
};

static void *reader_main(void *p)
{
    struct reader_arg *ra = p;
    struct sqlite_store *st = ra->st;
    struct sq_conn *conn = ra->conn;
    free(ra);
    struct sq_queue *q = &st->rq;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        struct sq_job *j = q->head;
        if (!j) {
            pthread_mutex_unlock(&q->mu);
            break;
        }
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        q->len--;
        pthread_mutex_unlock(&q->mu);
        j->next = NULL;
        if (j->kind == SQ_GET)
            run_get(st, conn, j);
        else
            run_list(st, conn, j);
        atomic_fetch_add(&st->reads, 1);
        job_post(j);
    }
    return NULL;
}

/* ---- writes (the writer thread) ---- */

/* Turns a failed step into STORE_UNIQUE with PocketBase's errors, or STORE_IO. */
static void write_failed(sqlite3 *db, struct store_result *res)
{
    int ext = sqlite3_extended_errcode(db);
    if (ext != SQLITE_CONSTRAINT_UNIQUE && ext != SQLITE_CONSTRAINT_PRIMARYKEY) {
        sq_set_io(res, db, "write");
        return;
    }
    /* "UNIQUE constraint failed: posts.slug, posts.lang" */
    const char *msg = sqlite3_errmsg(db);
    const char *p = strstr(msg, "failed: ");
    json_t *errors = json_object();
    if (p)
        p += 8;
    while (p && *p) {
        const char *end = strstr(p, ", ");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *dot = memchr(p, '.', len);
        const char *col = dot ? dot + 1 : p;
        size_t clen = len - (size_t)(col - p);
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)clen, col);
        json_object_set_new(errors, name,
                            json_pack("{s:s,s:s}", "code", "validation_not_unique", "message",
                                      "Value must be unique."));
        p = end ? end + 2 : NULL;
    }
    res->status = STORE_UNIQUE;
    res->errors = errors;
}

/* The stored version of id: 0 with *version, STORE_NOT_FOUND, or STORE_IO. */
static int read_version(sqlite3 *db, struct sq_entry *e, struct slice id, int64_t *version,
                        struct store_result *res)
{
    sqlite3_stmt *s = entry_stmt(db, e, STMT_VERSION, res);
    if (!s)
        return STORE_IO;
    sqlite3_bind_text(s, 1, id.ptr, (int)id.len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int ret = STORE_OK;
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_DONE)
        ret = STORE_NOT_FOUND;
    else {
        sq_set_io(res, db, "version");
        ret = STORE_IO;
    }
    sqlite3_reset(s);
    return ret;
}

/* Renders the stored row of id into res (the write's answer). */
static void render_stored(sqlite3 *db, struct sq_entry *e, struct slice id,
                          enum store_fields fields, struct store_result *res)
{
    sqlite3_stmt *s = entry_stmt(db, e, STMT_GET, res);
    if (!s)
        return;
    sqlite3_bind_text(s, 1, id.ptr, (int)id.len, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
        sq_render_row(e, s, fields, &res->json);
        res->version = sqlite3_column_int64(s, (int)e->nfields + 1);
        res->status = STORE_OK;
    } else {
        sq_set_io(res, db, "read back");
    }
    sqlite3_reset(s);
}

/* ---- relations (the writer thread) ----
 *
 * Related collections are found in the current schema snapshot, which the API
 * publishes before it sends writes that name a new collection. These
 * statements run once per relation field of a write or per referencing field
 * of a delete, so they are prepared on demand rather than cached. */

enum { REL_MAX_DEPTH = 16 }; /* cascades deeper than this refuse the delete */

static const char rel_missing_msg[] = "Failed to find all relation records with the provided ids.";

/* Sets res to STORE_INVALID with PocketBase's missing-records error on field. */
static void rel_missing(struct store_result *res, const char *field)
{
    res->status = STORE_INVALID;
    if (!res->errors)
        res->errors = json_object();
    json_object_set_new(res->errors, field,
                        json_pack("{s:s,s:s}", "code", "validation_missing_rel_records", "message",
                                  rel_missing_msg));
}

/* Checks that every id held by c's relation fields in rec exists in the
 * related collection. STORE_OK, STORE_INVALID (res->errors), or STORE_IO. */
static int check_relations(sqlite3 *db, const struct schema *sc, const struct collection *c,
                           json_t *rec, struct store_result *res)
{
    for (size_t i = 0; i < c->nfields; i++) {
        const struct field *f = &c->fields[i];
        if (f->type != FIELD_RELATION)
            continue;
        json_t *v = json_object_get(rec, f->name);
        json_t *ids = json_is_array(v) ? json_incref(v) : json_array();
        if (json_is_string(v) && json_string_length(v) > 0)
            json_array_append(ids, v);
        size_t n = json_array_size(ids);
        const struct collection *rc =
            f->opt.relation.collection_id
                ? schema_find(sc, slice_cstr(f->opt.relation.collection_id))
                : NULL;
        if (!rc && f->opt.relation.collection_id && c->id &&
            strcmp(f->opt.relation.collection_id, c->id) == 0)
            rc = c;
        if (n == 0) {
            json_decref(ids);
            continue;
        }
        if (!rc) {
            json_decref(ids);
            rel_missing(res, f->name);
            continue;
        }
        struct buf sql = BUF_INIT;
        buf_append_cstr(&sql, "SELECT COUNT(DISTINCT \"id\") FROM ");
        buf_append_sql_ident(&sql, rc->name);
        buf_append_cstr(&sql, " WHERE \"id\" IN (SELECT value FROM json_each(?1))");
        sqlite3_stmt *st = NULL;
        char *text = json_dumps(ids, JSON_COMPACT);
        int64_t found = -1;
        if (sqlite3_prepare_v2(db, sql.ptr, (int)sql.len, &st, NULL) == SQLITE_OK &&
            sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            found = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        free(text);
        buf_free(&sql);
        json_decref(ids);
        if (found < 0) {
            sq_set_io(res, db, "relation check");
            return STORE_IO;
        }
        if (found != (int64_t)n)
            rel_missing(res, f->name);
    }
    return res->errors && json_object_size(res->errors) ? STORE_INVALID : STORE_OK;
}

static const char rel_required_msg[] =
    "Failed to delete record. Make sure that the record is not part of a required relation "
    "reference.";

/* A delete refused for its references: STORE_INVALID, PocketBase's message,
 * no field errors. */
static void rel_refused(struct store_result *res)
{
    res->status = STORE_INVALID;
    snprintf(res->message, sizeof(res->message), "%s", rel_required_msg);
    if (!res->errors)
        res->errors = json_object();
}

static int delete_refs(sqlite3 *db, const struct schema *sc, const struct collection *c,
                       struct slice id, int depth, json_t *touched, struct store_result *res);

static bool has_file_field(const struct collection *c)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (c->fields[i].type == FIELD_FILE)
            return true;
    return false;
}

/* Deletes row id of c (already checked to exist or not: a missing row is no
 * error, a cascade may reach it twice), then what references it. Each row
 * deleted or updated is appended to touched as [collectionId, id, enum
 * store_cascaded flags]: the files of deleted ones go once the transaction
 * commits, and the answer names them all to shared caches. */
static int delete_cascade(sqlite3 *db, const struct schema *sc, const struct collection *c,
                          struct slice id, int depth, json_t *touched, struct store_result *res)
{
    if (depth > REL_MAX_DEPTH) {
        rel_refused(res);
        return STORE_INVALID;
    }
    struct buf sql = BUF_INIT;
    buf_append_cstr(&sql, "DELETE FROM ");
    buf_append_sql_ident(&sql, c->name);
    buf_append_cstr(&sql, " WHERE \"id\" = ?1");
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql.ptr, (int)sql.len, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id.ptr, (int)id.len, SQLITE_TRANSIENT);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    buf_free(&sql);
    if (rc != SQLITE_DONE) {
        sq_set_io(res, db, "cascade delete");
        return STORE_IO;
    }
    if (sqlite3_changes(db) > 0 && c->id)
        json_array_append_new(
            touched,
            json_pack("[s,s%,i]", c->id, id.ptr, id.len,
                      STORE_CASCADE_DELETED | (has_file_field(c) ? STORE_CASCADE_FILES : 0)));
    return delete_refs(db, sc, c, id, depth, touched, res);
}

/* Updates or deletes every record whose relation fields hold id (a record of c
 * just deleted), as PocketBase's cascadeRecordDelete: the id is removed from
 * the field; a record left with no ids is deleted when the field cascades,
 * and refused (STORE_INVALID with res->message) when the field is required or
 * left under its minSelect. */
static int delete_refs(sqlite3 *db, const struct schema *sc, const struct collection *c,
                       struct slice id, int depth, json_t *touched, struct store_result *res)
{
    for (size_t k = 0; k < sc->ncollections; k++) {
        const struct collection *r = sc->collections[k];
        for (size_t i = 0; i < r->nfields; i++) {
            const struct field *f = &r->fields[i];
            if (f->type != FIELD_RELATION || !f->opt.relation.collection_id || !c->id ||
                strcmp(f->opt.relation.collection_id, c->id) != 0)
                continue;
            bool multi = field_is_multiple(f);
            struct buf sql = BUF_INIT;
            /* the ids left once id is removed, counted per referencing row */
            buf_append_cstr(&sql, "SELECT \"id\", ");
            if (multi) {
                buf_append_cstr(&sql, "(SELECT json_group_array(value) FROM json_each(");
                buf_append_sql_ident(&sql, f->name);
                buf_append_cstr(&sql, ") WHERE value != ?1) FROM ");
                buf_append_sql_ident(&sql, r->name);
                buf_append_cstr(&sql, " WHERE EXISTS (SELECT 1 FROM json_each(");
                buf_append_sql_ident(&sql, f->name);
                buf_append_cstr(&sql, ") WHERE value = ?1)");
            } else {
                buf_append_cstr(&sql, "'[]' FROM ");
                buf_append_sql_ident(&sql, r->name);
                buf_append_cstr(&sql, " WHERE ");
                buf_append_sql_ident(&sql, f->name);
                buf_append_cstr(&sql, " = ?1");
            }
            sqlite3_stmt *st = NULL;
            json_t *rows = json_array();
            int rc = sqlite3_prepare_v2(db, sql.ptr, (int)sql.len, &st, NULL);
            buf_free(&sql);
            if (rc == SQLITE_OK) {
                sqlite3_bind_text(st, 1, id.ptr, (int)id.len, SQLITE_TRANSIENT);
                while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                    json_array_append_new(
                        rows, json_pack("[s,s]", (const char *)sqlite3_column_text(st, 0),
                                        (const char *)sqlite3_column_text(st, 1)));
            }
            sqlite3_finalize(st);
            if (rc != SQLITE_DONE) {
                json_decref(rows);
                sq_set_io(res, db, "relation references");
                return STORE_IO;
            }
            for (size_t n = 0; n < json_array_size(rows); n++) {
                json_t *row = json_array_get(rows, n);
                const char *rid = json_string_value(json_array_get(row, 0));
                const char *left = json_string_value(json_array_get(row, 1));
                json_t *ids = json_loads(left, 0, NULL);
                size_t nleft = json_array_size(ids);
                json_decref(ids);
                int ret = STORE_OK;
                if (nleft == 0 && f->opt.relation.cascade_delete) {
                    ret = delete_cascade(db, sc, r, slice_cstr(rid), depth + 1, touched, res);
                } else if ((nleft == 0 && f->required) ||
                           (nleft > 0 && (int64_t)nleft < f->opt.relation.min_select)) {
                    rel_refused(res);
                    ret = STORE_INVALID;
                } else {
                    struct buf up = BUF_INIT;
                    buf_append_cstr(&up, "UPDATE ");
                    buf_append_sql_ident(&up, r->name);
                    buf_append_cstr(&up, " SET ");
                    buf_append_sql_ident(&up, f->name);
                    buf_append_cstr(&up, multi ? " = ?1" : " = ''");
                    buf_append_cstr(&up, ", \"_version\" = \"_version\" + 1 WHERE \"id\" = ?2");
                    sqlite3_stmt *u = NULL;
                    rc = sqlite3_prepare_v2(db, up.ptr, (int)up.len, &u, NULL);
                    if (rc == SQLITE_OK) {
                        if (multi)
                            sqlite3_bind_text(u, 1, left, -1, SQLITE_TRANSIENT);
                        sqlite3_bind_text(u, 2, rid, -1, SQLITE_TRANSIENT);
                        rc = sqlite3_step(u);
                    }
                    sqlite3_finalize(u);
                    buf_free(&up);
                    if (rc != SQLITE_DONE) {
                        sq_set_io(res, db, "relation update");
                        ret = STORE_IO;
                    } else if (r->id) {
                        json_array_append_new(touched, json_pack("[s,s,i]", r->id, rid, 0));
                    }
                }
                if (ret != STORE_OK) {
                    json_decref(rows);
                    return ret;
                }
            }
            json_decref(rows);
        }
    }
    return STORE_OK;
}

/* Checks j's guard against row `id` as it stands now in the write's
 * savepoint: STORE_OK, STORE_FORBIDDEN, or STORE_IO with res set. The guard's
 * parameters come first, so the id is bound to the statement's last ?. The
 * statement is prepared per write: guards differ by request (their values are
 * bound, but the rule text differs per collection and operation). */
static int check_guard(sqlite3 *db, const struct sq_job *j, struct slice id,
                       struct store_result *res)
{
    if (!j->guard_sql)
        return STORE_OK;
    struct buf sql = BUF_INIT;
    buf_append_cstr(&sql, "SELECT 1 FROM ");
    buf_append_sql_ident(&sql, j->c->name);
    buf_append_cstr(&sql, " WHERE (");
    buf_append_cstr(&sql, j->guard_sql);
    buf_append_cstr(&sql, ") AND ");
    buf_append_sql_ident(&sql, j->c->name);
    buf_append_cstr(&sql, ".\"id\" = ?");
    sqlite3_stmt *s = NULL;
    int ret = STORE_IO;
    if (sqlite3_prepare_v2(db, sql.ptr, (int)sql.len, &s, NULL) != SQLITE_OK) {
        sq_set_io(res, db, "guard");
        goto out;
    }
    int np = sqlite3_bind_parameter_count(s);
    if (bind_params(s, j->guard_params, np - 1) < 0 ||
        sqlite3_bind_text(s, np, id.ptr, (int)id.len, SQLITE_STATIC) != SQLITE_OK) {
        sq_set_io(res, db, "guard");
        goto out;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        ret = STORE_OK;
    else if (rc == SQLITE_DONE)
        ret = STORE_FORBIDDEN;
    else
        sq_set_io(res, db, "guard");
out:
    sqlite3_finalize(s);
    buf_free(&sql);
    return ret;
}

static void run_write(struct sqlite_store *st, struct sq_job *j)
{
    sqlite3 *db = st->writer.db;
    struct sq_entry *e = conn_entry(st, &st->writer, j->c);
    struct store_result *res = &j->res;
    json_t *prev = NULL, *out = NULL, *errors = NULL;
    char genid[ID_LEN + 1];
    struct slice id = j->id;

    if (!j->create) {
        int64_t version = 0;
        int rc = read_version(db, e, id, &version, res);
        if (rc != STORE_OK) {
            res->status = rc;
            return;
        }
        if (j->if_match >= 0 && version != j->if_match) {
            res->status = STORE_PRECONDITION;
            res->version = version;
            return;
        }
        if (!j->guard_after && (rc = check_guard(db, j, id, res)) != STORE_OK) {
            res->status = rc;
            return;
        }
        sqlite3_stmt *g = entry_stmt(db, e, STMT_GET, res);
        if (!g)
            return;
        sqlite3_bind_text(g, 1, id.ptr, (int)id.len, SQLITE_STATIC);
        if (sqlite3_step(g) == SQLITE_ROW)
            prev = sq_row_to_json(e, g);
        sqlite3_reset(g);
        if (!prev) {
            sq_set_io(res, db, "read");
            return;
        }
    }
    int mrc = j->merge(j->merge_arg, prev, &out, &errors);
    json_decref(prev);
    if (mrc != 0 || !out) {
        res->status = STORE_INVALID;
        res->errors = errors ? errors : json_object();
        json_decref(out);
        return;
    }
    json_decref(errors);
    struct schema *sc = schema_current();
    int relrc = check_relations(db, sc, j->c, out, res);
    schema_release(sc);
    if (relrc != STORE_OK) {
        res->status = relrc;
        goto out;
    }
    sqlite3_stmt *w = entry_stmt(db, e, j->create ? STMT_INSERT : STMT_UPDATE, res);
    if (!w)
        goto out;
    if (j->create) {
        json_t *v = json_object_get(out, "id");
        if (json_is_string(v) && json_string_length(v) > 0) {
            id = slice_make(json_string_value(v), json_string_length(v));
        } else {
            id_generate(genid);
            id = slice_make(genid, ID_LEN);
        }
    }
    sqlite3_bind_text(w, 1, id.ptr, (int)id.len, SQLITE_STATIC);
    for (size_t i = 0; i < e->nfields; i++)
        sq_bind_field(w, (int)i + 2, (enum sq_colkind)e->kinds[i],
                      json_object_get(out, e->fields[i]->name));
    if (j->create) {
        sqlite3_bind_int64(w, (int)e->nfields + 2, id_partition(id, st->partitions));
        sqlite3_bind_int64(w, (int)e->nfields + 3, 1);
    }
    int rc = sqlite3_step(w);
    if (rc != SQLITE_DONE)
        write_failed(db, res);
    sqlite3_reset(w);
    sqlite3_clear_bindings(w); /* drops the dumped JSON texts now */
    if (rc == SQLITE_DONE && j->guard_after) {
        /* The batch rolls this write's savepoint back on any status but OK. */
        int g = check_guard(db, j, id, res);
        if (g != STORE_OK) {
            res->status = g;
            goto out;
        }
    }
    if (rc == SQLITE_DONE)
        render_stored(db, e, id, j->fields, res);
out:
    json_decref(out);
}

static void run_delete(struct sqlite_store *st, struct sq_job *j)
{
    sqlite3 *db = st->writer.db;
    struct sq_entry *e = conn_entry(st, &st->writer, j->c);
    int64_t version = 0;
    int rc = read_version(db, e, j->id, &version, &j->res);
    if (rc != STORE_OK) {
        j->res.status = rc;
        return;
    }
    if (j->if_match >= 0 && version != j->if_match) {
        j->res.status = STORE_PRECONDITION;
        j->res.version = version;
        return;
    }
    if ((rc = check_guard(db, j, j->id, &j->res)) != STORE_OK) {
        j->res.status = rc;
        return;
    }
    sqlite3_stmt *s = entry_stmt(db, e, STMT_DELETE, &j->res);
    if (!s)
        return;
    sqlite3_bind_text(s, 1, j->id.ptr, (int)j->id.len, SQLITE_STATIC);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        sq_set_io(&j->res, db, "delete");
        return;
    }
    struct schema *sc = schema_current();
    json_t *touched = json_array();
    rc = delete_refs(db, sc, j->c, j->id, 0, touched, &j->res);
    schema_release(sc);
    if (rc != STORE_OK) {
        json_decref(touched);
        j->res.status = rc;
        return;
    }
    if (json_array_size(touched)) {
        char *text = json_dumps(touched, JSON_COMPACT);
        buf_append_cstr(&j->res.json, text);
        free(text);
    }
    json_decref(touched);
    j->res.status = STORE_OK;
    j->res.version = version;
}

static int step_reset(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void fail_ok_jobs(struct sq_job *batch, sqlite3 *db, const char *what)
{
    for (struct sq_job *j = batch; j; j = j->next) {
        if (j->res.status != STORE_OK)
            continue;
        buf_free(&j->res.json);
        sq_set_io(&j->res, db, what);
    }
}

static void hist_record(struct sqlite_store *st, size_t n)
{
    size_t b = 0;
    while (b < SQ_HIST_BUCKETS && n > ((size_t)1 << b))
        b++;
    atomic_fetch_add(&st->hist[b], 1);
    atomic_fetch_add(&st->hist_sum, n);
}

/* Commits a batch of writes and deletes in one transaction. */
static void run_batch(struct sqlite_store *st, struct sq_job *batch, size_t n)
{
    sqlite3 *db = st->writer.db;
    struct store_result res0 = {0};
    if (sq_exec(db, "BEGIN IMMEDIATE", &res0) != SQLITE_OK) {
        for (struct sq_job *j = batch; j; j = j->next)
            j->res = res0;
        goto post;
    }
    bool lost = false;
    for (struct sq_job *j = batch; j; j = j->next) {
        if (lost) {
            sq_set_io(&j->res, db, "transaction aborted");
            continue;
        }
        if (step_reset(st->sp_begin) < 0) {
            sq_set_io(&j->res, db, "savepoint");
            continue;
        }
        j->res.status = STORE_IO;
        if (j->kind == SQ_WRITE)
            run_write(st, j);
        else
            run_delete(st, j);
        if (sqlite3_get_autocommit(db)) {
            /* SQLite rolled the whole transaction back (disk full, I/O error):
             * every write done so far in this batch is gone with it. */
            for (struct sq_job *k = batch; k != j->next; k = k->next)
                if (k->res.status == STORE_OK) {
                    buf_free(&k->res.json);
                    sq_set_io(&k->res, db, "transaction aborted");
                }
            lost = true;
            continue;
        }
        if (j->res.status != STORE_OK) {
            buf_free(&j->res.json);
            step_reset(st->sp_rollback);
        }
        step_reset(st->sp_release);
    }
    if (!lost && sq_exec(db, "COMMIT", NULL) != SQLITE_OK) {
        fail_ok_jobs(batch, db, "commit");
        sq_exec(db, "ROLLBACK", NULL);
    }
    atomic_fetch_add(&st->commits, 1);
    atomic_fetch_add(&st->writes, n);
    hist_record(st, n);
post:
    while (batch) {
        struct sq_job *next = batch->next;
        batch->next = NULL;
        job_post(batch);
        batch = next;
    }
}

static void *writer_main(void *p)
{
    struct sqlite_store *st = p;
    struct sq_queue *q = &st->wq;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        struct sq_job *batch = q->head;
        if (!batch) {
            pthread_mutex_unlock(&q->mu);
            break;
        }
        /* A collection change runs alone; writes are taken up to the next one. */
        size_t n = 1;
        struct sq_job *last = batch;
        if (batch->kind != SQ_SAVE)
            while (last->next && last->next->kind != SQ_SAVE && n < st->max_batch) {
                last = last->next;
                n++;
            }
        q->head = last->next;
        if (!q->head)
            q->tail = NULL;
        q->len -= n;
        last->next = NULL;
        pthread_mutex_unlock(&q->mu);

        if (batch->kind == SQ_SAVE) {
            sq_collection_save(st, batch->prev, batch->nextc, &batch->res);
            /* Before the callback: the caller may free the old collection and
             * reuse its address as soon as it learns of the change. */
            atomic_fetch_add(&st->ddl_gen, 1);
            job_post(batch);
        } else {
            run_batch(st, batch, n);
        }
    }
    return NULL;
}

/* ---- the ops ---- */

static void sq_close(struct store *s);

static int sq_load(struct store *s, struct collection ***out, size_t *n, char *err, size_t errlen)
{
    return sq_load_collections((struct sqlite_store *)s, out, n, err, errlen);
}

static int sq_reload(struct store *s, int64_t *version, struct collection ***out, size_t *n,
                     char *err, size_t errlen)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    int64_t now;
    if (sq_collections_version(st, &now, err, errlen) != 0)
        return -1;
    if (now == *version)
        return 0;
    if (sq_load_collections(st, out, n, err, errlen) != 0)
        return -1;
    *version = now;
    /* Cached statements of the tables another process altered are rebuilt. */
    atomic_fetch_add(&st->ddl_gen, 1);
    return 1;
}

static void sq_save(struct store *s, const struct collection *prev, const struct collection *next,
                    void *target, store_cb cb, void *arg)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    struct sq_job *j = job_new(st, SQ_SAVE, target, cb, arg);
    j->prev = prev;
    j->nextc = next;
    j->c = next ? next : prev;
    submit(st, &st->wq, j);
}

static void sq_get(struct store *s, const struct collection *c, struct slice id,
                   enum store_fields fields, void *target, store_cb cb, void *arg)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    struct sq_job *j = job_new(st, SQ_GET, target, cb, arg);
    j->c = c;
    job_set_id(j, id);
    j->fields = fields;
    submit(st, &st->rq, j);
}

static void sq_list(struct store *s, const struct store_list_query *q, void *target, store_cb cb,
                    void *arg)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    struct sq_job *j = job_new(st, SQ_LIST, target, cb, arg);
    j->c = q->collection;
    j->where_sql = q->where_sql ? xstrdup(q->where_sql) : NULL;
    j->order_sql = q->order_sql ? xstrdup(q->order_sql) : NULL;
    j->params = json_incref(q->params);
    j->page = q->page;
    j->per_page = q->per_page;
    j->skip_total = q->skip_total;
    j->fields = q->fields;
    submit(st, &st->rq, j);
}

static void job_set_guard(struct sq_job *j, const struct store_guard *guard)
{
    if (!guard)
        return;
    /* A guard without a condition still checks that the row exists. */
    j->guard_sql = xstrdup(guard->where_sql && *guard->where_sql ? guard->where_sql : "1");
    j->guard_params = json_incref(guard->params);
    j->guard_after = guard->after;
}

static void sq_write(struct store *s, const struct collection *c, struct slice id, bool create,
                     int64_t if_match, const struct store_guard *guard, enum store_fields fields,
                     store_merge_fn merge, void *merge_arg, void *target, store_cb cb, void *arg)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    struct sq_job *j = job_new(st, SQ_WRITE, target, cb, arg);
    job_set_guard(j, guard);
    j->fields = fields;
    j->c = c;
    if (!create)
        job_set_id(j, id);
    j->create = create;
    j->if_match = if_match;
    j->merge = merge;
    j->merge_arg = merge_arg;
    submit(st, &st->wq, j);
}

static void sq_delete(struct store *s, const struct collection *c, struct slice id,
                      int64_t if_match, const struct store_guard *guard, void *target, store_cb cb,
                      void *arg)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    struct sq_job *j = job_new(st, SQ_DELETE, target, cb, arg);
    job_set_guard(j, guard);
    j->c = c;
    job_set_id(j, id);
    j->if_match = if_match;
    submit(st, &st->wq, j);
}

static size_t queue_len(struct sq_queue *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->len;
    pthread_mutex_unlock(&q->mu);
    return n;
}

static uint32_t sq_partitions(struct store *s)
{
    return ((struct sqlite_store *)s)->partitions;
}

static void sq_metrics(struct store *s, struct buf *out)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    uint64_t cum = 0;
    buf_append_cstr(out, "# HELP cruder_store_commit_batch_size Writes per group commit.\n"
                         "# TYPE cruder_store_commit_batch_size histogram\n");
    for (int b = 0; b <= SQ_HIST_BUCKETS; b++) {
        cum += atomic_load(&st->hist[b]);
        if (b < SQ_HIST_BUCKETS)
            buf_appendf(out, "cruder_store_commit_batch_size_bucket{le=\"%zu\"} %llu\n",
                        (size_t)1 << b, (unsigned long long)cum);
        else
            buf_appendf(out, "cruder_store_commit_batch_size_bucket{le=\"+Inf\"} %llu\n",
                        (unsigned long long)cum);
    }
    buf_appendf(out, "cruder_store_commit_batch_size_sum %llu\n",
                (unsigned long long)atomic_load(&st->hist_sum));
    buf_appendf(out, "cruder_store_commit_batch_size_count %llu\n", (unsigned long long)cum);
    buf_appendf(out,
                "# HELP cruder_store_write_queue_depth Writes waiting for the writer.\n"
                "# TYPE cruder_store_write_queue_depth gauge\n"
                "cruder_store_write_queue_depth %zu\n"
                "# HELP cruder_store_read_queue_depth Reads waiting for a reader.\n"
                "# TYPE cruder_store_read_queue_depth gauge\n"
                "cruder_store_read_queue_depth %zu\n",
                queue_len(&st->wq), queue_len(&st->rq));
    buf_appendf(
        out,
        "# HELP cruder_store_commits_total Group commits.\n"
        "# TYPE cruder_store_commits_total counter\n"
        "cruder_store_commits_total %llu\n"
        "# HELP cruder_store_writes_total Writes and deletes committed or refused.\n"
        "# TYPE cruder_store_writes_total counter\n"
        "cruder_store_writes_total %llu\n"
        "# HELP cruder_store_reads_total Gets and lists served.\n"
        "# TYPE cruder_store_reads_total counter\n"
        "cruder_store_reads_total %llu\n"
        "# HELP cruder_store_busy_total Operations refused because a queue was full.\n"
        "# TYPE cruder_store_busy_total counter\n"
        "cruder_store_busy_total %llu\n",
        (unsigned long long)atomic_load(&st->commits), (unsigned long long)atomic_load(&st->writes),
        (unsigned long long)atomic_load(&st->reads), (unsigned long long)atomic_load(&st->busy));
}

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .load_collections = sq_load,
    .collections_reload = sq_reload,
    .collection_save = sq_save,
    .record_get = sq_get,
    .record_list = sq_list,
    .record_write = sq_write,
    .record_delete = sq_delete,
    .partitions = sq_partitions,
    .metrics = sq_metrics,
};

/* ---- open and close ---- */

static void queue_stop(struct sq_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Stops the writer and the first nreaders readers once their queues are empty. */
static void stop_threads(struct sqlite_store *st, size_t nreaders)
{
    queue_stop(&st->wq);
    queue_stop(&st->rq);
    pthread_join(st->writer_thread, NULL);
    for (size_t i = 0; i < nreaders; i++)
        pthread_join(st->reader_threads[i], NULL);
}

static int mkdir_p(const char *dir, char *err, size_t errlen)
{
    char *path = xstrdup(dir);
    int ret = 0;
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
            ret = -1;
            break;
        }
        *p = c;
        if (c == '\0')
            break;
    }
    free(path);
    return ret;
}

static int conn_open(const char *path, bool readonly, const char *sync, struct sq_conn *conn,
                     char *err, size_t errlen)
{
    int flags = SQLITE_OPEN_NOMUTEX |
                (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    char pragmas[160];
    if (sqlite3_open_v2(path, &conn->db, flags, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_extended_result_codes(conn->db, 1);
    /* A double-quoted name that is no column is an error, never a string of
     * that name (SQLite's legacy fallback): a statement built for a field the
     * table lacks fails instead of answering the field's name as its value. */
    sqlite3_db_config(conn->db, SQLITE_DBCONFIG_DQS_DML, 0, (int *)NULL);
    sqlite3_db_config(conn->db, SQLITE_DBCONFIG_DQS_DDL, 0, (int *)NULL);
    /* A reader may meet a checkpoint or WAL recovery in progress. */
    sqlite3_busy_timeout(conn->db, 5000);
    if (!readonly) {
        sqlite3_stmt *s = NULL;
        bool wal = false;
        if (sqlite3_prepare_v2(conn->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW)
            wal = strcmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
        sqlite3_finalize(s);
        if (!wal) {
            snprintf(err, errlen, "open %s: cannot enable WAL mode", path);
            return -1;
        }
        snprintf(pragmas, sizeof(pragmas), "PRAGMA synchronous=%s", sync);
        if (sqlite3_exec(conn->db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
            goto fail;
    }
    if (sqlite3_exec(conn->db, "PRAGMA mmap_size=268435456; PRAGMA cache_size=-16384", NULL, NULL,
                     NULL) != SQLITE_OK)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "open %s: %s", path,
             conn->db ? sqlite3_errmsg(conn->db) : "out of memory");
    return -1;
}

static void conn_close(struct sq_conn *conn)
{
    conn_flush(conn);
    sqlite3_finalize(conn->begin);
    sqlite3_finalize(conn->commit);
    sqlite3_finalize(conn->data_version);
    free(conn->entries);
    conn->entries = NULL;
    sqlite3_close(conn->db);
    conn->db = NULL;
}

static void store_free(struct sqlite_store *st)
{
    sqlite3_finalize(st->sp_begin);
    sqlite3_finalize(st->sp_release);
    sqlite3_finalize(st->sp_rollback);
    for (size_t i = 0; i < st->nreaders; i++)
        conn_close(&st->readers[i]);
    sqlite3_close(st->watch_db);
    /* Last, so that its close checkpoints the WAL into the database. */
    conn_close(&st->writer);
    queue_destroy(&st->wq);
    queue_destroy(&st->rq);
    free(st->readers);
    free(st->reader_threads);
    free(st->path);
    free(st);
}

int store_sqlite_open(const struct config *cfg, store_post_fn post, struct store **out, char *err,
                      size_t errlen)
{
    static const char *const sync_names[] = {"FULL", "NORMAL", "OFF"};
    *out = NULL;
    if (!sqlite3_threadsafe()) {
        snprintf(err, errlen, "SQLite was built without thread support");
        return -1;
    }
    if (!cfg->dir || !*cfg->dir || cfg->partitions <= 0 || cfg->store_readers <= 0 ||
        cfg->max_write_batch <= 0 || cfg->max_write_queue <= 0 || cfg->durability < 0 ||
        cfg->durability > DURABILITY_OFF) {
        snprintf(err, errlen, "store: invalid settings");
        return -1;
    }
    if (mkdir_p(cfg->dir, err, errlen) < 0)
        return -1;
    struct sqlite_store *st = xcalloc(1, sizeof(*st));
    st->base.ops = &sqlite_ops;
    st->post = post;
    st->max_batch = (size_t)cfg->max_write_batch;
    size_t dl = strlen(cfg->dir);
    st->path = xmalloc(dl + sizeof("/data.db"));
    memcpy(st->path, cfg->dir, dl);
    memcpy(st->path + dl, "/data.db", sizeof("/data.db"));
    queue_init(&st->wq, (size_t)cfg->max_write_queue);
    queue_init(&st->rq, (size_t)cfg->max_write_queue);
    st->readers = xcalloc((size_t)cfg->store_readers, sizeof(*st->readers));
    st->reader_threads = xcalloc((size_t)cfg->store_readers, sizeof(pthread_t));

    const char *sync = sync_names[cfg->durability];
    if (conn_open(st->path, false, sync, &st->writer, err, errlen) < 0 ||
        sq_schema_init(st->writer.db, (uint32_t)cfg->partitions, &st->partitions, err, errlen) < 0)
        goto fail;
    if (sqlite3_prepare_v3(st->writer.db, "SAVEPOINT w", -1, SQLITE_PREPARE_PERSISTENT,
                           &st->sp_begin, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(st->writer.db, "RELEASE w", -1, SQLITE_PREPARE_PERSISTENT,
                           &st->sp_release, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(st->writer.db, "ROLLBACK TO w", -1, SQLITE_PREPARE_PERSISTENT,
                           &st->sp_rollback, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "store: %s", sqlite3_errmsg(st->writer.db));
        goto fail;
    }
    for (int i = 0; i < cfg->store_readers; i++) {
        st->nreaders++;
        if (conn_open(st->path, true, sync, &st->readers[i], err, errlen) < 0)
            goto fail;
    }
    if (pthread_create(&st->writer_thread, NULL, writer_main, st) != 0) {
        snprintf(err, errlen, "store: cannot start the writer thread");
        goto fail;
    }
    for (size_t i = 0; i < st->nreaders; i++) {
        struct reader_arg *ra = xmalloc(sizeof(*ra));
        ra->st = st;
        ra->conn = &st->readers[i];
        if (pthread_create(&st->reader_threads[i], NULL, reader_main, ra) != 0) {
            free(ra);
            snprintf(err, errlen, "store: cannot start reader threads");
            stop_threads(st, i);
            goto fail;
        }
    }
    *out = &st->base;
    return 0;
fail:
    store_free(st);
    return -1;
}

/* Drains every queued job (their callbacks are still posted), stops the
 * threads and closes the connections. */
static void sq_close(struct store *s)
{
    if (!s)
        return;
    struct sqlite_store *st = (struct sqlite_store *)s;
    stop_threads(st, st->nreaders);
    store_free(st);
}
