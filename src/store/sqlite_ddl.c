/* The SQLite store's data definition: its own tables (_cruder_meta with the
 * format version and P, _cruder_collections with every collection's JSON) and
 * one table per collection, created, altered and dropped in one transaction on
 * the writer's connection. Collection changes are rare; clarity wins over speed.
 *
 * Identifiers come from validated collections but are quoted anyway; nothing
 * else reaches SQL text: values are bound. */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/sqlite_int.h"

const char *sq_coldef(const struct field *f)
{
    switch (sq_colkind(f)) {
    case SQ_COL_NUMBER:
        return "NUMERIC NOT NULL DEFAULT 0";
    case SQ_COL_BOOL:
        return "BOOLEAN NOT NULL DEFAULT FALSE";
    case SQ_COL_ARRAY:
        return "JSON NOT NULL DEFAULT '[]'";
    case SQ_COL_JSON:
        return "JSON DEFAULT NULL";
    case SQ_COL_TEXT:
        break;
    }
    return "TEXT NOT NULL DEFAULT ''";
}

void sq_set_io(struct store_result *res, sqlite3 *db, const char *what)
{
    res->status = STORE_IO;
    snprintf(res->message, sizeof(res->message), "%s: %s", what, sqlite3_errmsg(db));
}

int sq_exec(sqlite3 *db, const char *sql, struct store_result *res)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK && res)
        sq_set_io(res, db, "exec");
    return rc;
}

/* Runs sql binding up to four text values; SQLITE_DONE is mapped to SQLITE_OK. */
static int run_bound(sqlite3 *db, const char *sql, const char *a, const char *b, const char *c,
                     const char *d, struct store_result *res)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        const char *vals[4] = {a, b, c, d};
        for (int i = 0; i < 4 && vals[i]; i++)
            sqlite3_bind_text(st, i + 1, vals[i], -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK && rc != SQLITE_ROW && res)
        sq_set_io(res, db, "collection");
    sqlite3_finalize(st);
    return rc;
}

static int meta_get(sqlite3 *db, const char *key, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM _cruder_meta WHERE key = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        found = 1;
    } else if (rc != SQLITE_DONE)
        found = -1;
    sqlite3_finalize(st);
    return found;
}

static int meta_set(sqlite3 *db, const char *key, int64_t v)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO _cruder_meta (key, value) VALUES (?1, ?2)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int sq_schema_init(sqlite3 *db, uint32_t want_partitions, uint32_t *partitions, char *err,
                   size_t errlen)
{
    int64_t v = 0;
    int found;
    if (sq_exec(db, "BEGIN IMMEDIATE", NULL) != SQLITE_OK)
        goto fail;
    if (sq_exec(db,
                "CREATE TABLE IF NOT EXISTS _cruder_meta (key TEXT PRIMARY KEY NOT NULL, "
                "value INTEGER NOT NULL)",
                NULL) != SQLITE_OK ||
        sq_exec(db,
                "CREATE TABLE IF NOT EXISTS _cruder_collections (id TEXT PRIMARY KEY NOT NULL, "
                "name TEXT NOT NULL UNIQUE COLLATE NOCASE, json TEXT NOT NULL)",
                NULL) != SQLITE_OK)
        goto fail;
    found = meta_get(db, "format_version", &v);
    if (found < 0)
        goto fail;
    if (found && v > SQ_FORMAT_VERSION) {
        snprintf(err, errlen, "data format %lld is newer than this build's %d", (long long)v,
                 SQ_FORMAT_VERSION);
        sq_exec(db, "ROLLBACK", NULL);
        return -1;
    }
    if (!found && meta_set(db, "format_version", SQ_FORMAT_VERSION) < 0)
        goto fail;
    found = meta_get(db, "partitions", &v);
    if (found < 0)
        goto fail;
    if (!found) {
        if (meta_set(db, "partitions", want_partitions) < 0)
            goto fail;
        v = want_partitions;
    } else if (v != (int64_t)want_partitions) {
        log_warn("store: data directory has %lld partitions, ignoring the configured %u "
                 "(P never changes)",
                 (long long)v, want_partitions);
    }
    if (v <= 0 || v > UINT32_MAX) {
        snprintf(err, errlen, "stored partition count %lld is invalid", (long long)v);
        sq_exec(db, "ROLLBACK", NULL);
        return -1;
    }
    *partitions = (uint32_t)v;
    if (sq_exec(db, "COMMIT", NULL) != SQLITE_OK)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "store schema: %s", sqlite3_errmsg(db));
    sq_exec(db, "ROLLBACK", NULL);
    return -1;
}

static bool same_field(const struct field *a, const struct field *b)
{
    if (a->id && b->id)
        return strcmp(a->id, b->id) == 0;
    return strcmp(a->name, b->name) == 0;
}

static const struct field *find_field(const struct collection *c, const struct field *like)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (same_field(&c->fields[i], like))
            return &c->fields[i];
    return NULL;
}

static bool is_id(const struct field *f)
{
    return strcmp(f->name, "id") == 0;
}

static void set_error(struct store_result *res, int status, const char *key, const char *code,
                      const char *message)
{
    res->status = status;
    json_decref(res->errors);
    res->errors = json_pack("{s:{s:s,s:s}}", key, "code", code, "message", message);
}

static int exec_buf(sqlite3 *db, struct buf *sql, struct store_result *res)
{
    int rc = sq_exec(db, sql->ptr, res);
    buf_reset(sql);
    return rc;
}

/* The column of a partial-index condition in the one form collection.c keeps
 * (`"col" != ''`), or NULL for anything else: the condition is re-emitted from
 * the name rather than pasted into the DDL. */
static char *where_column(const char *where)
{
    size_t n = strlen(where);
    static const char tail[] = "\" != ''";
    size_t tl = sizeof(tail) - 1;
    if (n < 2 + tl || where[0] != '"' || strcmp(where + n - tl, tail) != 0)
        return NULL;
    for (size_t i = 1; i < n - tl; i++) {
        char c = where[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return NULL;
    }
    return xstrndup(where + 1, n - tl - 1);
}

static int create_indexes(sqlite3 *db, const struct collection *c, struct buf *sql,
                          struct store_result *res)
{
    for (size_t i = 0; i < c->nindexes; i++) {
        const struct collection_index *ix = &c->indexes[i];
        buf_append_cstr(sql, ix->unique ? "CREATE UNIQUE INDEX " : "CREATE INDEX ");
        buf_append_sql_ident(sql, ix->name);
        buf_append_cstr(sql, " ON ");
        buf_append_sql_ident(sql, c->name);
        buf_append_cstr(sql, " (");
        for (size_t k = 0; k < ix->ncolumns; k++) {
            if (k)
                buf_append_cstr(sql, ", ");
            buf_append_sql_ident(sql, ix->columns[k]);
            if (ix->nocase && ix->nocase[k])
                buf_append_cstr(sql, " COLLATE NOCASE");
            if (ix->desc && ix->desc[k])
                buf_append_cstr(sql, " DESC");
        }
        buf_append_char(sql, ')');
        if (ix->where) {
            char *col = where_column(ix->where);
            /* check_next refused any other form before the transaction began */
            core_assert(col);
            buf_append_cstr(sql, " WHERE ");
            buf_append_sql_ident(sql, col);
            buf_append_cstr(sql, " != ''");
            free(col);
        }
        if (exec_buf(db, sql, res) != SQLITE_OK)
            return -1;
    }
    return 0;
}

static int drop_indexes(sqlite3 *db, const struct collection *c, struct buf *sql,
                        struct store_result *res)
{
    for (size_t i = 0; i < c->nindexes; i++) {
        buf_append_cstr(sql, "DROP INDEX IF EXISTS ");
        buf_append_sql_ident(sql, c->indexes[i].name);
        if (exec_buf(db, sql, res) != SQLITE_OK)
            return -1;
    }
    return 0;
}

static int create_table(sqlite3 *db, const struct collection *c, struct buf *sql,
                        struct store_result *res)
{
    buf_append_cstr(sql, "CREATE TABLE ");
    buf_append_sql_ident(sql, c->name);
    buf_append_cstr(sql, " (\"id\" TEXT PRIMARY KEY NOT NULL");
    for (size_t i = 0; i < c->nfields; i++) {
        if (is_id(&c->fields[i]))
            continue;
        buf_append_cstr(sql, ", ");
        buf_append_sql_ident(sql, c->fields[i].name);
        buf_append_char(sql, ' ');
        buf_append_cstr(sql, sq_coldef(&c->fields[i]));
    }
    buf_append_cstr(sql, ", \"_partition\" INTEGER NOT NULL, \"_version\" INTEGER NOT NULL)");
    if (exec_buf(db, sql, res) != SQLITE_OK)
        return -1;
    return create_indexes(db, c, sql, res);
}

static int alter_column(sqlite3 *db, const char *table, const char *verb, const char *a,
                        const char *b, struct buf *sql, struct store_result *res)
{
    buf_append_cstr(sql, "ALTER TABLE ");
    buf_append_sql_ident(sql, table);
    buf_append_char(sql, ' ');
    buf_append_cstr(sql, verb);
    buf_append_char(sql, ' ');
    buf_append_sql_ident(sql, a);
    if (b) {
        buf_append_cstr(sql, " TO ");
        buf_append_sql_ident(sql, b);
    }
    return exec_buf(db, sql, res) == SQLITE_OK ? 0 : -1;
}

static int rename_table(sqlite3 *db, const char *from, const char *to, struct buf *sql,
                        struct store_result *res)
{
    buf_append_cstr(sql, "ALTER TABLE ");
    buf_append_sql_ident(sql, from);
    buf_append_cstr(sql, " RENAME TO ");
    buf_append_sql_ident(sql, to);
    return exec_buf(db, sql, res) == SQLITE_OK ? 0 : -1;
}

/* Alters prev's table into next's: the order matters. Indexes go first so that
 * DROP COLUMN never meets a dependent index; renames go through temporary
 * names so that swapping two names works; adds go last so that a new column
 * may take a name just dropped or renamed away. */
static int alter_table(sqlite3 *db, const struct collection *prev, const struct collection *next,
                       struct buf *sql, struct store_result *res)
{
    const char *table = next->name;
    if (drop_indexes(db, prev, sql, res) < 0)
        return -1;
    if (strcmp(prev->name, next->name) != 0) {
        if (strcasecmp(prev->name, next->name) == 0) {
            /* SQLite table names are case-insensitive: a case-only rename
             * would collide with itself. */
            if (rename_table(db, prev->name, "_cruder_rename_tmp", sql, res) < 0 ||
                rename_table(db, "_cruder_rename_tmp", next->name, sql, res) < 0)
                return -1;
        } else if (rename_table(db, prev->name, next->name, sql, res) < 0)
            return -1;
    }
    for (size_t i = 0; i < prev->nfields; i++) {
        const struct field *f = &prev->fields[i];
        if (!is_id(f) && !find_field(next, f) &&
            alter_column(db, table, "DROP COLUMN", f->name, NULL, sql, res) < 0)
            return -1;
    }
    char tmp[48];
    for (int phase = 0; phase < 2; phase++) {
        for (size_t i = 0; i < prev->nfields; i++) {
            const struct field *f = &prev->fields[i];
            const struct field *g = find_field(next, f);
            if (is_id(f) || !g || strcmp(f->name, g->name) == 0)
                continue;
            snprintf(tmp, sizeof(tmp), "_cruder_tmp_%zu", i);
            if (alter_column(db, table, "RENAME COLUMN", phase ? tmp : f->name,
                             phase ? g->name : tmp, sql, res) < 0)
                return -1;
        }
    }
    for (size_t i = 0; i < next->nfields; i++) {
        const struct field *g = &next->fields[i];
        if (is_id(g) || find_field(prev, g))
            continue;
        buf_append_cstr(sql, "ALTER TABLE ");
        buf_append_sql_ident(sql, table);
        buf_append_cstr(sql, " ADD COLUMN ");
        buf_append_sql_ident(sql, g->name);
        buf_append_char(sql, ' ');
        buf_append_cstr(sql, sq_coldef(g));
        if (exec_buf(db, sql, res) != SQLITE_OK)
            return -1;
    }
    return create_indexes(db, next, sql, res);
}

static bool reserved_name(const char *name)
{
    return strncasecmp(name, "_cruder_", 8) == 0 || strncasecmp(name, "sqlite_", 7) == 0;
}

/* Refuses what the store cannot honour before touching anything. */
static int check_next(const struct collection *next, struct store_result *res)
{
    if (reserved_name(next->name)) {
        set_error(res, STORE_INVALID, "name", "validation_invalid_name", "The name is reserved.");
        return -1;
    }
    for (size_t i = 0; i < next->nindexes; i++) {
        char *col = next->indexes[i].where ? where_column(next->indexes[i].where) : NULL;
        if (next->indexes[i].where && !col) {
            set_error(res, STORE_INVALID, "indexes", "validation_invalid_index_expression",
                      "Partial indexes are not supported yet.");
            return -1;
        }
        free(col);
    }
    return 0;
}

static int name_taken(sqlite3 *db, const char *name, struct store_result *res)
{
    int rc = run_bound(db,
                       "SELECT 1 FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE "
                       "UNION ALL SELECT 1 FROM _cruder_collections WHERE name = ?1",
                       name, NULL, NULL, NULL, res);
    if (rc == SQLITE_ROW) {
        set_error(res, STORE_UNIQUE, "name", "validation_collection_name_exists",
                  "Collection name must be unique (case insensitive).");
        return 1;
    }
    return rc == SQLITE_OK ? 0 : -1;
}

void sq_collection_save(struct sqlite_store *st, const struct collection *prev,
                        const struct collection *next, struct store_result *res)
{
    sqlite3 *db = st->writer.db;
    struct buf sql = BUF_INIT;
    char *json = NULL;
    res->status = STORE_OK;
    if (next && check_next(next, res) < 0)
        return;
    if (next) {
        json_t *j = collection_to_json_stored(next);
        json = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!json) {
            res->status = STORE_IO;
            snprintf(res->message, sizeof(res->message), "collection %s has no JSON form",
                     next->name);
            return;
        }
    }
    if (sq_exec(db, "BEGIN IMMEDIATE", res) != SQLITE_OK)
        goto out;
    if (!prev) {
        if (name_taken(db, next->name, res) != 0)
            goto rollback;
        if (next->type != COLLECTION_VIEW && create_table(db, next, &sql, res) < 0)
            goto rollback;
        if (run_bound(db, "INSERT INTO _cruder_collections (id, name, json) VALUES (?1, ?2, ?3)",
                      next->id, next->name, json, NULL, res) != SQLITE_OK)
            goto rollback;
    } else if (!next) {
        if (prev->type != COLLECTION_VIEW) {
            buf_append_cstr(&sql, "DROP TABLE IF EXISTS ");
            buf_append_sql_ident(&sql, prev->name);
            if (exec_buf(db, &sql, res) != SQLITE_OK)
                goto rollback;
        }
        if (run_bound(db, "DELETE FROM _cruder_collections WHERE id = ?1", prev->id, NULL, NULL,
                      NULL, res) != SQLITE_OK)
            goto rollback;
    } else {
        if (strcasecmp(prev->name, next->name) != 0 && name_taken(db, next->name, res) != 0)
            goto rollback;
        if (next->type != COLLECTION_VIEW && alter_table(db, prev, next, &sql, res) < 0)
            goto rollback;
        if (run_bound(db,
                      "UPDATE _cruder_collections SET id = ?1, name = ?2, json = ?3 "
                      "WHERE id = ?4",
                      next->id, next->name, json, prev->id, res) != SQLITE_OK)
            goto rollback;
    }
    /* Other processes on this database poll it (collections_reload). */
    if (sq_exec(db,
                "INSERT INTO _cruder_meta (key, value) VALUES ('collections_version', 1) "
                "ON CONFLICT(key) DO UPDATE SET value = value + 1",
                res) != SQLITE_OK)
        goto rollback;
    if (sq_exec(db, "COMMIT", res) != SQLITE_OK)
        goto rollback;
    goto out;
rollback:
    if (res->status == STORE_OK)
        sq_set_io(res, db, "collection");
    sq_exec(db, "ROLLBACK", NULL);
out:
    buf_free(&sql);
    free(json);
}

int sq_collections_version(struct sqlite_store *st, int64_t *out, char *err, size_t errlen)
{
    if (!st->watch_db &&
        sqlite3_open_v2(st->path, &st->watch_db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "collections version: %s",
                 st->watch_db ? sqlite3_errmsg(st->watch_db) : "no memory");
        sqlite3_close(st->watch_db);
        st->watch_db = NULL;
        return -1;
    }
    int found = meta_get(st->watch_db, "collections_version", out);
    if (found < 0)
        snprintf(err, errlen, "collections version: %s", sqlite3_errmsg(st->watch_db));
    else if (found == 0)
        *out = 0;
    return found < 0 ? -1 : 0;
}

int sq_load_collections(struct sqlite_store *st, struct collection ***out, size_t *n, char *err,
                        size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    struct collection **list = NULL;
    size_t count = 0, cap = 0;
    int ret = -1;
    *out = NULL;
    *n = 0;
    if (sqlite3_open_v2(st->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT name, json FROM _cruder_collections ORDER BY rowid", -1,
                           &stmt, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "load collections: %s", db ? sqlite3_errmsg(db) : "no memory");
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(stmt, 0);
        json_error_t jerr;
        json_t *j = json_loadb((const char *)sqlite3_column_text(stmt, 1),
                               (size_t)sqlite3_column_bytes(stmt, 1), 0, &jerr);
        json_t *errors = NULL;
        struct collection *c = j ? collection_from_json_system(j, NULL, &errors) : NULL;
        json_decref(j);
        if (!c) {
            char *why = errors ? json_dumps(errors, JSON_COMPACT) : NULL;
            snprintf(err, errlen, "stored collection %s is refused: %s", name ? name : "?",
                     why ? why : jerr.text);
            free(why);
            json_decref(errors);
            goto out;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            list = xrealloc(list, cap * sizeof(*list));
        }
        list[count++] = c;
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "load collections: %s", sqlite3_errmsg(db));
        goto out;
    }
    *out = list;
    *n = count;
    list = NULL;
    count = 0;
    ret = 0;
out:
    for (size_t i = 0; i < count; i++)
        collection_release(list[i]);
    free(list);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return ret;
}
