/* Rows to JSON text and JSON values to bound parameters for the SQLite store.
 *
 * The read path (every GET and list) renders a row straight into a buf with no
 * jansson in between, so this is hot code: runs of plain bytes are copied in
 * one append and per-field keys are precomputed in the statement cache. The
 * write path goes through jansson, where the merge callback needs it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "store/sqlite_int.h"

enum sq_colkind sq_colkind(const struct field *f)
{
    switch (f->type) {
    case FIELD_NUMBER:
        return SQ_COL_NUMBER;
    case FIELD_BOOL:
        return SQ_COL_BOOL;
    case FIELD_JSON:
        return SQ_COL_JSON;
    case FIELD_SELECT:
    case FIELD_RELATION:
    case FIELD_FILE:
        return field_is_multiple(f) ? SQ_COL_ARRAY : SQ_COL_TEXT;
    default:
        return SQ_COL_TEXT;
    }
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

void sq_json_string(struct buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    buf_reserve(out, n + 2);
    buf_append_char(out, '"');
    size_t run = 0; /* start of the pending run of bytes copied as they are */
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = utf8_seq(p + i, n - i);
            if (len) {
                i += len;
                continue;
            }
        }
        buf_append(out, p + run, i - run);
        switch (c) {
        case '"':
            buf_append(out, "\\\"", 2);
            break;
        case '\\':
            buf_append(out, "\\\\", 2);
            break;
        case '\n':
            buf_append(out, "\\n", 2);
            break;
        case '\r':
            buf_append(out, "\\r", 2);
            break;
        case '\t':
            buf_append(out, "\\t", 2);
            break;
        default:
            if (c < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                buf_append(out, esc, sizeof(esc));
            } else {
                buf_append(out, "\xEF\xBF\xBD", 3); /* U+FFFD for an invalid byte */
            }
        }
        i++;
        run = i;
    }
    buf_append(out, p + run, n - run);
    buf_append_char(out, '"');
}

void sq_json_double(struct buf *out, double d)
{
    if (!isfinite(d)) {
        /* JSON has no NaN or infinity; SQLite turns NaN into NULL already. */
        buf_append_char(out, '0');
        return;
    }
    if (d == trunc(d) && fabs(d) < 9007199254740992.0) {
        buf_appendf(out, "%lld", (long long)d);
        return;
    }
    char tmp[40];
    snprintf(tmp, sizeof(tmp), "%.15g", d);
    if (strtod(tmp, NULL) != d)
        snprintf(tmp, sizeof(tmp), "%.17g", d);
    buf_append_cstr(out, tmp);
}

static void render_value(enum sq_colkind kind, sqlite3_stmt *st, int col, struct buf *out)
{
    int type = sqlite3_column_type(st, col);
    switch (kind) {
    case SQ_COL_NUMBER:
        if (type == SQLITE_INTEGER)
            buf_appendf(out, "%lld", (long long)sqlite3_column_int64(st, col));
        else
            sq_json_double(out, sqlite3_column_double(st, col));
        return;
    case SQ_COL_BOOL:
        if (sqlite3_column_int64(st, col) != 0)
            buf_append(out, "true", 4);
        else
            buf_append(out, "false", 5);
        return;
    case SQ_COL_ARRAY:
    case SQ_COL_JSON:
        if (type == SQLITE_NULL) {
            if (kind == SQ_COL_ARRAY)
                buf_append(out, "[]", 2);
            else
                buf_append(out, "null", 4);
        } else {
            /* Stored only through sq_bind_field, which writes jansson's output. */
            const unsigned char *t = sqlite3_column_text(st, col);
            buf_append(out, t, (size_t)sqlite3_column_bytes(st, col));
        }
        return;
    case SQ_COL_TEXT: {
        const unsigned char *t = sqlite3_column_text(st, col);
        sq_json_string(out, (const char *)t, t ? (size_t)sqlite3_column_bytes(st, col) : 0);
        return;
    }
    }
}

void sq_render_row(const struct sq_entry *e, sqlite3_stmt *st, enum store_fields fields,
                   struct buf *out)
{
    buf_append(out, e->head.ptr, e->head.len);
    const unsigned char *id = sqlite3_column_text(st, 0);
    sq_json_string(out, (const char *)id, id ? (size_t)sqlite3_column_bytes(st, 0) : 0);
    for (size_t i = 0; i < e->nfields; i++) {
        if (e->level[i] > fields)
            continue;
        buf_append(out, e->keys[i].ptr, e->keys[i].len);
        render_value((enum sq_colkind)e->kinds[i], st, (int)i + 1, out);
    }
    buf_append_char(out, '}');
}

static json_t *column_json(enum sq_colkind kind, sqlite3_stmt *st, int col)
{
    int type = sqlite3_column_type(st, col);
    switch (kind) {
    case SQ_COL_NUMBER:
        if (type == SQLITE_INTEGER)
            return json_integer(sqlite3_column_int64(st, col));
        double d = sqlite3_column_double(st, col);
        return json_real(isfinite(d) ? d : 0);
    case SQ_COL_BOOL:
        return json_boolean(sqlite3_column_int64(st, col) != 0);
    case SQ_COL_ARRAY:
    case SQ_COL_JSON: {
        if (type == SQLITE_NULL)
            return kind == SQ_COL_ARRAY ? json_array() : json_null();
        json_t *v = json_loadb((const char *)sqlite3_column_text(st, col),
                               (size_t)sqlite3_column_bytes(st, col), JSON_DECODE_ANY, NULL);
        return v ? v : json_null();
    }
    case SQ_COL_TEXT:
        break;
    }
    const char *t = (const char *)sqlite3_column_text(st, col);
    json_t *v = json_stringn(t ? t : "", t ? (size_t)sqlite3_column_bytes(st, col) : 0);
    return v ? v : json_string("");
}

json_t *sq_row_to_json(const struct sq_entry *e, sqlite3_stmt *st)
{
    json_t *o = json_object();
    json_object_set_new(o, "collectionId", json_string(e->c->id));
    json_object_set_new(o, "collectionName", json_string(e->c->name));
    json_object_set_new(o, "id", column_json(SQ_COL_TEXT, st, 0));
    for (size_t i = 0; i < e->nfields; i++)
        json_object_set_new(o, e->fields[i]->name,
                            column_json((enum sq_colkind)e->kinds[i], st, (int)i + 1));
    return o;
}

static int bind_dump(sqlite3_stmt *st, int idx, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text(st, idx, s, -1, free);
}

int sq_bind_field(sqlite3_stmt *st, int idx, enum sq_colkind kind, json_t *v)
{
    switch (kind) {
    case SQ_COL_NUMBER:
        if (json_is_integer(v))
            return sqlite3_bind_int64(st, idx, json_integer_value(v));
        if (json_is_real(v) && isfinite(json_real_value(v)))
            return sqlite3_bind_double(st, idx, json_real_value(v));
        return sqlite3_bind_int64(st, idx, json_is_true(v) ? 1 : 0);
    case SQ_COL_BOOL:
        return sqlite3_bind_int64(st, idx, json_is_true(v) ? 1 : 0);
    case SQ_COL_ARRAY:
        if (json_is_array(v))
            return bind_dump(st, idx, v);
        if (!v || json_is_null(v))
            return sqlite3_bind_text(st, idx, "[]", 2, SQLITE_STATIC);
        {
            json_t *wrap = json_pack("[O]", v);
            int rc = bind_dump(st, idx, wrap);
            json_decref(wrap);
            return rc;
        }
    case SQ_COL_JSON:
        if (!v || json_is_null(v))
            return sqlite3_bind_null(st, idx);
        return bind_dump(st, idx, v);
    case SQ_COL_TEXT:
        break;
    }
    if (json_is_string(v))
        return sqlite3_bind_text(st, idx, json_string_value(v), (int)json_string_length(v),
                                 SQLITE_TRANSIENT);
    if (!v || json_is_null(v))
        return sqlite3_bind_text(st, idx, "", 0, SQLITE_STATIC);
    return bind_dump(st, idx, v);
}

int sq_bind_param(sqlite3_stmt *st, int idx, json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return sqlite3_bind_text(st, idx, json_string_value(v), (int)json_string_length(v),
                                 SQLITE_STATIC);
    case JSON_INTEGER:
        return sqlite3_bind_int64(st, idx, json_integer_value(v));
    case JSON_REAL:
        return sqlite3_bind_double(st, idx, json_real_value(v));
    case JSON_TRUE:
        return sqlite3_bind_int64(st, idx, 1);
    case JSON_FALSE:
        return sqlite3_bind_int64(st, idx, 0);
    case JSON_NULL:
        return sqlite3_bind_null(st, idx);
    default:
        return bind_dump(st, idx, v);
    }
}
