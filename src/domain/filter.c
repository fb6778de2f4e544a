/* PocketBase's filter language (the `filter` and `sort` query parameters and
 * the collection rules) compiled to parameterised SQL for SQLite.
 *
 * Load: one compile per list request and per rule check, on expressions of at
 * most FILTER_MAX_LEN bytes, so a compile is a single pass with no tree: the
 * scanner hands tokens to a recursive-descent parser whose depth is bounded by
 * FILTER_MAX_DEPTH, and each comparison is written to SQL as soon as it is
 * read. The shapes of the emitted SQL follow PocketBase's tools/search
 * (filter.go) and core/record_field_resolver_runner.go, with the literal
 * values always bound as parameters. */
#include "domain/filter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/alloc.h"
#include "core/timefmt.h"
#include "domain/schema.h"

enum tok_type {
    T_EOF,
    T_IDENT,
    T_NUMBER,
    T_TEXT,
    T_SIGN,
    T_AND,
    T_OR,
    T_LPAREN,
    T_RPAREN,
};

struct tok {
    enum tok_type type;
    size_t pos, len; /* raw span in the expression, quotes included */
};

/* The comparison operators; an any-of form is its plain form plus OP_ANY. */
/* Room for a quoted collection name (64 bytes) or a generated alias. */
enum { ALIAS_MAX = 72 };

enum op { OP_EQ, OP_NEQ, OP_LIKE, OP_NLIKE, OP_LT, OP_LTE, OP_GT, OP_GTE, OP_ANY = 8 };

static const struct {
    const char *text;
    enum op op;
} sign_table[] = {
    {"=", OP_EQ},
    {"!=", OP_NEQ},
    {"~", OP_LIKE},
    {"!~", OP_NLIKE},
    {"<", OP_LT},
    {"<=", OP_LTE},
    {">", OP_GT},
    {">=", OP_GTE},
    {"?=", OP_ANY | OP_EQ},
    {"?!=", OP_ANY | OP_NEQ},
    {"?~", OP_ANY | OP_LIKE},
    {"?!~", OP_ANY | OP_NLIKE},
    {"?<", OP_ANY | OP_LT},
    {"?<=", OP_ANY | OP_LTE},
    {"?>", OP_ANY | OP_GT},
    {"?>=", OP_ANY | OP_GTE},
};

enum operand_kind {
    K_COLUMN, /* a field's column */
    K_JSON,   /* json_extract of a json field, path bound as a parameter */
    K_LENGTH, /* a select field's element count (":length") */
    K_ELEM,   /* one element of a multi-valued field, inside json_each */
    K_PARAM,  /* a literal or macro value, bound */
    K_CONST,  /* true, false or null: fixed SQL text */
    K_SUB,    /* SQL text in `sub` binding `subp`: a joined path's value, :changed */
};

/* How a multi-valued operand takes part in a comparison. A bare multiple
 * select compares its stored JSON text with the plain operators (as PocketBase
 * does) and its elements with the any-of ones; with ":each" the plain
 * operators require every element to match and the any-of ones at least one. */
enum multi { MV_NONE, MV_RAW, MV_EACH };

struct operand {
    enum operand_kind kind;
    const struct field *field;
    json_t *value;              /* K_PARAM: owned; K_JSON: the path string, owned */
    const char *cst;            /* K_CONST */
    char *sub;                  /* K_SUB: owned */
    json_t *subp;               /* K_SUB: the values its ?s bind, owned, may be NULL */
    char *mm;                   /* the multi-match subquery of a multi-valued path, owned */
    json_t *mmp;                /* the values its ?s bind, owned */
    char guard[ALIAS_MAX + 32]; /* an email reached through a join: its visibility test */
    enum multi multi;
    bool lower;       /* ":lower" */
    bool no_coalesce; /* json values: NULL and '' are distinct */
    bool email_guard; /* auth email: only where emailVisibility is on */
    size_t pos;
};

struct state {
    const struct collection *c;
    const char *s;
    size_t n, pos;
    int64_t now_ms;
    bool allow_hidden;
    bool sort; /* resolving a sort key: no parameters can be emitted */
    struct buf *sql;
    json_t *params;
    struct filter_error *err;
    int terms;
    const struct schema *schema;       /* resolves relations; NULL: none can be traversed */
    const struct rule_request *rq;     /* rule mode: @request.* resolves against it */
    int joins;                         /* relation hops so far, at most RULE_MAX_JOINS */
    bool qualify;                      /* own columns written as "table"."col" (inside joins) */
    char *join_keys[FILTER_MAX_JOINS]; /* the shared joins by path, owned */
    int njoins;
    struct buf join_sql; /* their LEFT JOIN clauses */
    json_t *join_params; /* and the values these bind */
    int seq;             /* numbers the aliases of multi-match subqueries */
    size_t term_pos;
};

static int fail(struct state *st, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct state *st, size_t pos, const char *fmt, ...)
{
    va_list ap;
    st->err->position = pos;
    va_start(ap, fmt);
    vsnprintf(st->err->message, sizeof st->err->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* User text quoted in error messages is cut short so the message stays whole. */
#define SHOWN(len) (int)((len) > 48 ? 48 : (len))

/* ---- scanner (fexpr's lexical rules) ---- */

static bool is_letter(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static bool is_sign_char(char ch)
{
    return ch == '=' || ch == '?' || ch == '!' || ch == '>' || ch == '<' || ch == '~';
}

static bool is_ident_start(char ch)
{
    return is_letter(ch) || ch == '@' || ch == '_' || ch == '#';
}

static int scan(struct state *st, struct tok *t)
{
    const char *s = st->s;
    size_t n = st->n, i = st->pos;

    for (;;) {
        while (i < n && is_space(s[i]))
            i++;
        if (i < n && s[i] == '/') {
            if (i + 1 >= n || s[i + 1] != '/')
                return fail(st, i, "invalid comment (expected //)");
            while (i < n && s[i] != '\n')
                i++;
            continue;
        }
        break;
    }
    t->pos = i;
    if (i >= n) {
        t->type = T_EOF;
        t->len = 0;
        st->pos = i;
        return 0;
    }
    char ch = s[i];
    size_t j = i + 1;

    if (ch == '(' || ch == ')') {
        t->type = ch == '(' ? T_LPAREN : T_RPAREN;
    } else if (is_ident_start(ch)) {
        while (j < n &&
               (is_letter(s[j]) || is_digit(s[j]) || s[j] == '_' || s[j] == '.' || s[j] == ':'))
            j++;
        if (j < n && s[j] == '(')
            return fail(st, i, "functions are not supported yet");
        char last = s[j - 1];
        if (last == '.' || last == ':' || (j - i == 1 && !is_letter(ch)))
            return fail(st, i, "invalid identifier \"%.*s\"", SHOWN(j - i), s + i);
        t->type = T_IDENT;
    } else if (ch == '-' || is_digit(ch)) {
        bool dot = false;
        while (j < n && (is_digit(s[j]) || (s[j] == '.' && !dot))) {
            dot |= s[j] == '.';
            j++;
        }
        if ((j - i == 1 && ch == '-') || s[j - 1] == '.')
            return fail(st, i, "invalid number \"%.*s\"", SHOWN(j - i), s + i);
        t->type = T_NUMBER;
    } else if (ch == '\'' || ch == '"') {
        char prev = 0;
        for (;; j++) {
            if (j >= n)
                return fail(st, i, "unterminated string");
            /* fexpr's rule: a quote preceded by a backslash never closes. */
            if (s[j] == ch && prev != '\\')
                break;
            prev = s[j];
        }
        j++;
        t->type = T_TEXT;
    } else if (is_sign_char(ch)) {
        while (j < n && is_sign_char(s[j]))
            j++;
        t->type = T_SIGN;
        bool known = false;
        for (size_t k = 0; k < sizeof sign_table / sizeof sign_table[0]; k++)
            known |= slice_eq_cstr(slice_make(s + i, j - i), sign_table[k].text);
        if (!known)
            return fail(st, i, "invalid operator \"%.*s\"", SHOWN(j - i), s + i);
    } else if (ch == '&' || ch == '|') {
        while (j < n && (s[j] == '&' || s[j] == '|'))
            j++;
        struct slice lit = slice_make(s + i, j - i);
        if (slice_eq_cstr(lit, "&&"))
            t->type = T_AND;
        else if (slice_eq_cstr(lit, "||"))
            t->type = T_OR;
        else
            return fail(st, i, "invalid operator \"%.*s\"", SHOWN(j - i), s + i);
    } else if ((unsigned char)ch >= 0x20 && (unsigned char)ch < 0x7f) {
        return fail(st, i, "unexpected character '%c'", ch);
    } else {
        return fail(st, i, "unexpected byte 0x%02x", (unsigned char)ch);
    }
    t->len = j - i;
    st->pos = j;
    return 0;
}

/* ---- SQL output helpers ---- */

/* Wraps what was written since `start` in parentheses. */
static void wrap_from(struct buf *b, size_t start)
{
    size_t n = b->len - start;
    buf_append(b, "()", 2);
    memmove(b->ptr + start + 1, b->ptr + start, n);
    b->ptr[start] = '(';
    b->ptr[start + n + 1] = ')';
}

/* A multi-valued column as a JSON array for json_each: text that is not JSON
 * counts as a single value, and an empty array as one NULL element so that
 * `tags = ''` style checks see an empty field the way PocketBase's LEFT JOIN
 * on json_each does. */
/* A column of the filtered collection itself; qualified by its table name
 * when joined tables could shadow it. */
static void put_own(const struct state *st, struct buf *b, const char *col)
{
    if (st->qualify) {
        buf_append_sql_ident(b, st->c->name);
        buf_append_char(b, '.');
    }
    buf_append_sql_ident(b, col);
}

static void put_each_source(const struct state *st, struct buf *b, const struct field *f)
{
    buf_append_cstr(b, "CASE WHEN json_valid(");
    put_own(st, b, f->name);
    buf_append_cstr(b, ") THEN CASE WHEN json_type(");
    put_own(st, b, f->name);
    buf_append_cstr(b, ") = 'array' AND json_array_length(");
    put_own(st, b, f->name);
    buf_append_cstr(b, ") = 0 THEN '[null]' ELSE ");
    put_own(st, b, f->name);
    buf_append_cstr(b, " END ELSE json_array(");
    put_own(st, b, f->name);
    buf_append_cstr(b, ") END");
}

static void put_length(const struct state *st, struct buf *b, const struct field *f)
{
    buf_append_cstr(b, "json_array_length(CASE WHEN json_valid(");
    put_own(st, b, f->name);
    buf_append_cstr(b, ") THEN ");
    put_own(st, b, f->name);
    buf_append_cstr(b, " ELSE (CASE WHEN ");
    put_own(st, b, f->name);
    buf_append_cstr(b, " = '' OR ");
    put_own(st, b, f->name);
    buf_append_cstr(b, " IS NULL THEN json_array() ELSE json_array(");
    put_own(st, b, f->name);
    buf_append_cstr(b, ") END) END)");
}

/* The element column of the derived table over json_each. Its name holds a
 * space so that no field (identifiers only) can be shadowed by it. The
 * column's JSON is first selected in a FROM-less subquery ("__mm s") because
 * json_each's arguments would otherwise see json_each's own columns (key,
 * value, path, json...) before a field of the same name. */
#define ELEM_COL "\"__mm v\""

/* Writes an operand's SQL and appends the values its ?s bind, so an operand
 * written twice binds twice. */
static void put_operand(struct state *st, const struct operand *o)
{
    struct buf *b = st->sql;
    if (o->lower)
        buf_append_cstr(b, "LOWER(");
    switch (o->kind) {
    case K_COLUMN:
        put_own(st, b, o->field->name);
        break;
    case K_JSON:
        buf_append_cstr(b, "json_extract(");
        put_own(st, b, o->field->name);
        if (o->value) {
            buf_append_cstr(b, ", ?)");
            json_array_append(st->params, o->value);
        } else {
            buf_append_cstr(b, ", '$')");
        }
        break;
    case K_LENGTH:
        put_length(st, b, o->field);
        break;
    case K_ELEM:
        buf_append_cstr(b, ELEM_COL);
        break;
    case K_PARAM:
        buf_append_char(b, '?');
        json_array_append(st->params, o->value);
        break;
    case K_CONST:
        buf_append_cstr(b, o->cst);
        break;
    case K_SUB:
        buf_append_cstr(b, o->sub);
        if (o->subp)
            json_array_extend(st->params, o->subp);
        break;
    }
    if (o->lower)
        buf_append_char(b, ')');
}

/* PocketBase's emptiness: NULL, or a bound NULL or ''. */
static bool is_empty(const struct operand *o)
{
    if (o->kind == K_CONST)
        return strcmp(o->cst, "NULL") == 0;
    if (o->kind == K_PARAM)
        return json_is_null(o->value) ||
               (json_is_string(o->value) && json_string_length(o->value) == 0);
    return false;
}

static bool is_known_nonempty(const struct operand *o)
{
    if (o->kind == K_CONST)
        return strcmp(o->cst, "NULL") != 0;
    return o->kind == K_PARAM && !is_empty(o);
}

/* = and != the way PocketBase writes them: NULL and '' are the same "empty"
 * value, with direct comparisons where one side is known non-empty so that an
 * index on the column still serves `"col" = ?`. */
static void put_equal(struct state *st, bool equal, const struct operand *l,
                      const struct operand *r)
{
    struct buf *b = st->sql;
    const char *eq = equal ? " = " : " IS NOT ";
    const char *join = equal ? " OR " : " AND ";
    const char *null_test = equal ? " IS NULL)" : " IS NOT NULL)";
    bool lempty = is_empty(l), rempty = is_empty(r);

    if (l->no_coalesce || r->no_coalesce) {
        put_operand(st, l);
        buf_append_cstr(b, equal ? " IS " : " IS NOT ");
        put_operand(st, r);
    } else if (lempty && rempty) {
        buf_append_cstr(b, equal ? "'' = ''" : "'' IS NOT ''");
    } else if (is_known_nonempty(l) || is_known_nonempty(r)) {
        if (lempty)
            buf_append_cstr(b, "''");
        else
            put_operand(st, l);
        buf_append_cstr(b, eq);
        if (rempty)
            buf_append_cstr(b, "''");
        else
            put_operand(st, r);
    } else if (lempty) {
        buf_append_cstr(b, "(''");
        buf_append_cstr(b, eq);
        put_operand(st, r);
        buf_append_cstr(b, join);
        put_operand(st, r);
        buf_append_cstr(b, null_test);
    } else if (rempty) {
        buf_append_char(b, '(');
        put_operand(st, l);
        buf_append_cstr(b, eq);
        buf_append_cstr(b, "''");
        buf_append_cstr(b, join);
        put_operand(st, l);
        buf_append_cstr(b, null_test);
    } else {
        buf_append_cstr(b, "COALESCE(");
        put_operand(st, l);
        buf_append_cstr(b, ", '')");
        buf_append_cstr(b, eq);
        buf_append_cstr(b, "COALESCE(");
        put_operand(st, r);
        buf_append_cstr(b, ", '')");
    }
}

/* True if s has a '%' not escaped by a backslash (PocketBase's test for "the
 * user wrote their own wildcards"). */
static bool has_unescaped_percent(const char *s, size_t n)
{
    char prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && prev != '\\')
            return true;
        prev = (s[i] == '\\' && prev == '\\') ? 0 : s[i];
    }
    return false;
}

/* The LIKE pattern for a bound value: a value without wildcards of its own
 * means "contains", with its \ % _ escaped unless already escaped. */
static json_t *like_pattern(const json_t *v)
{
    char num[64];
    const char *s;
    size_t n;
    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);
    } else if (json_is_integer(v)) {
        n = (size_t)snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        s = num;
    } else if (json_is_real(v)) {
        n = (size_t)snprintf(num, sizeof num, "%.15g", json_real_value(v));
        s = num;
    } else {
        s = "";
        n = 0;
    }
    if (has_unescaped_percent(s, n))
        return json_stringn(s, n);

    struct buf b = BUF_INIT;
    buf_append_char(&b, '%');
    for (size_t i = 0; i < n; i++) {
        bool special = s[i] == '\\' || s[i] == '%' || s[i] == '_';
        if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '\\' || s[i + 1] == '%' || s[i + 1] == '_')) {
            buf_append(&b, s + i, 2);
            i++;
        } else if (special) {
            buf_append_char(&b, '\\');
            buf_append_char(&b, s[i]);
        } else {
            buf_append_char(&b, s[i]);
        }
    }
    buf_append_char(&b, '%');
    json_t *out = json_stringn(b.ptr, b.len);
    buf_free(&b);
    return out;
}

static void put_like(struct state *st, bool like, const struct operand *l, const struct operand *r)
{
    struct buf *b = st->sql;
    put_operand(st, l);
    buf_append_cstr(b, like ? " LIKE " : " NOT LIKE ");
    if (r->kind == K_PARAM) {
        struct operand pat = *r;
        pat.value = like_pattern(r->value);
        put_operand(st, &pat);
        json_decref(pat.value);
    } else {
        buf_append_cstr(b, "('%' || ");
        put_operand(st, r);
        buf_append_cstr(b, " || '%')");
    }
    buf_append_cstr(b, " ESCAPE '\\'");
}

static void put_compare(struct state *st, enum op op, const struct operand *l,
                        const struct operand *r)
{
    static const char *const rel[] = {
        [OP_LT] = " < ", [OP_LTE] = " <= ", [OP_GT] = " > ", [OP_GTE] = " >= "};
    switch (op) {
    case OP_EQ:
    case OP_NEQ:
        put_equal(st, op == OP_EQ, l, r);
        break;
    case OP_LIKE:
    case OP_NLIKE:
        put_like(st, op == OP_LIKE, l, r);
        break;
    default:
        put_operand(st, l);
        buf_append_cstr(st->sql, rel[op]);
        put_operand(st, r);
        break;
    }
}

/* PocketBase's multi-match condition for a plain operator over a
 * multi-valued path, appended to the comparison of the shared row:
 *   AND NOT EXISTS (SELECT 1 FROM (<mm>) AS "__smN" WHERE NOT (<cmp>))
 * with the path's values in <cmp> (both sides LEFT JOINed when both are
 * multi-valued). A comparison that is NULL does not count as failing. */
static void put_multi_match(struct state *st, enum op base, const struct operand *l,
                            const struct operand *r)
{
    struct operand le = *l, re = *r;
    char la[ALIAS_MAX] = "", ra[ALIAS_MAX] = "";
    char lv[ALIAS_MAX + 16], rv[ALIAS_MAX + 16];
    buf_append_cstr(st->sql, " AND NOT EXISTS (SELECT 1 FROM ");
    for (int k = 0; k < 2; k++) {
        const struct operand *o = k ? r : l;
        struct operand *e = k ? &re : &le;
        char *a = k ? ra : la, *v = k ? rv : lv;
        if (!o->mm)
            continue;
        snprintf(a, ALIAS_MAX, "\"__sm%d\"", ++st->seq);
        snprintf(v, ALIAS_MAX + 16, "%s.\"__mm v\"", a);
        if (k && la[0])
            buf_append_cstr(st->sql, " LEFT JOIN ");
        buf_append_char(st->sql, '(');
        buf_append_cstr(st->sql, o->mm);
        json_array_extend(st->params, o->mmp);
        buf_appendf(st->sql, ") AS %s", a);
        if (k && la[0])
            buf_append_cstr(st->sql, " ON 1");
        e->kind = K_SUB;
        e->sub = v;
        e->subp = NULL;
        e->lower = false;
    }
    buf_append_cstr(st->sql, " WHERE NOT (");
    put_compare(st, base, &le, &re);
    buf_append_cstr(st->sql, "))");
}

/* One comparison. A multi-valued side compared element-wise becomes a
 * subquery over json_each: EXISTS for any-of, NOT EXISTS of a failing
 * element for every-of (a NULL outcome fails, as PocketBase's IS NULL arm):
 *   [NOT] EXISTS (SELECT 1 FROM (SELECT "__mm e".value AS "__mm v"
 *       FROM (SELECT <array> AS "__mm j") AS "__mm s",
 *            json_each("__mm s"."__mm j") AS "__mm e") WHERE <cond>) */
static int put_term(struct state *st, enum op op, struct operand *l, struct operand *r,
                    size_t op_pos)
{
    bool any = op & OP_ANY;
    enum op base = op & ~OP_ANY;
    bool lelem = l->multi == MV_EACH || (l->multi == MV_RAW && any);
    bool relem = r->multi == MV_EACH || (r->multi == MV_RAW && any);
    size_t start = st->sql->len;

    if ((lelem && relem) || ((lelem || relem) && (l->mm || r->mm)))
        return fail(st, op_pos, "comparing two multi-valued fields is not supported");
    if (!lelem && !relem) {
        put_compare(st, base, l, r);
        if (!any && (l->mm || r->mm)) {
            put_multi_match(st, base, l, r);
            wrap_from(st->sql, start);
        }
    } else {
        struct operand *multi = lelem ? l : r;
        struct operand elem = {.kind = K_ELEM, .pos = multi->pos};
        buf_append_cstr(st->sql, any ? "EXISTS (" : "NOT EXISTS (");
        buf_append_cstr(st->sql,
                        "SELECT 1 FROM (SELECT \"__mm e\".value AS " ELEM_COL " FROM (SELECT ");
        put_each_source(st, st->sql, multi->field);
        buf_append_cstr(st->sql, " AS \"__mm j\") AS \"__mm s\", json_each(\"__mm s\".\"__mm j\")"
                                 " AS \"__mm e\") WHERE ");
        if (!any)
            buf_append_char(st->sql, '(');
        put_compare(st, base, lelem ? &elem : l, relem ? &elem : r);
        buf_append_cstr(st->sql, any ? ")" : ") IS NOT 1)");
    }
    if (l->email_guard || r->email_guard) {
        buf_append_cstr(st->sql, " AND ");
        put_own(st, st->sql, "emailVisibility");
        buf_append_cstr(st->sql, " = TRUE");
        wrap_from(st->sql, start);
    }
    for (int k = 0; k < 2; k++) {
        const char *guard = k ? r->guard : l->guard;
        if (guard[0]) {
            buf_append_cstr(st->sql, " AND ");
            buf_append_cstr(st->sql, guard);
            wrap_from(st->sql, start);
        }
    }
    return 0;
}

/* ---- operands ---- */

static const struct field *find_field(const struct collection *c, struct slice name)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (c->fields[i].name && slice_eq_cstr(name, c->fields[i].name))
            return &c->fields[i];
    return NULL;
}

static bool is_multi_select(const struct field *f)
{
    return f->type == FIELD_SELECT && field_is_multiple(f);
}

/* Floors a millisecond time to the start of its UTC day, month or year. */
static int64_t start_of(int64_t now_ms, char unit)
{
    time_t sec = (time_t)(now_ms / 1000 - (now_ms % 1000 < 0));
    struct tm tm;
    gmtime_r(&sec, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    if (unit != 'd')
        tm.tm_mday = 1;
    if (unit == 'y')
        tm.tm_mon = 0;
    return (int64_t)timegm(&tm) * 1000;
}

static int64_t start_of_next(int64_t now_ms, char unit)
{
    time_t sec = (time_t)(start_of(now_ms, unit) / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    if (unit == 'd')
        tm.tm_mday += 1;
    else if (unit == 'm')
        tm.tm_mon += 1;
    else
        tm.tm_year += 1;
    return (int64_t)timegm(&tm) * 1000;
}

static json_t *time_value(int64_t ms)
{
    char out[TIMEFMT_PB_LEN + 1];
    time_format_pb(ms, out);
    return json_string(out);
}

/* PocketBase's date macros, all in UTC; NULL if name is not one. */
static json_t *macro_value(struct slice name, int64_t now_ms)
{
    time_t sec = (time_t)(now_ms / 1000 - (now_ms % 1000 < 0));
    struct tm tm;
    gmtime_r(&sec, &tm);
    const int64_t day = 86400000;
    static const char *const names[] = {
        "@now",        "@second",   "@minute",    "@hour",     "@day",        "@month",
        "@year",       "@weekday",  "@yesterday", "@tomorrow", "@todayStart", "@todayEnd",
        "@monthStart", "@monthEnd", "@yearStart", "@yearEnd",
    };
    size_t i = 0;
    while (i < sizeof names / sizeof names[0] && !slice_eq_cstr(name, names[i]))
        i++;
    switch (i) {
    case 0:
        return time_value(now_ms);
    case 1:
        return json_integer(tm.tm_sec);
    case 2:
        return json_integer(tm.tm_min);
    case 3:
        return json_integer(tm.tm_hour);
    case 4:
        return json_integer(tm.tm_mday);
    case 5:
        return json_integer(tm.tm_mon + 1);
    case 6:
        return json_integer(tm.tm_year + 1900);
    case 7:
        return json_integer(tm.tm_wday);
    case 8:
        return time_value(now_ms - day);
    case 9:
        return time_value(now_ms + day);
    case 10:
        return time_value(start_of(now_ms, 'd'));
    case 11:
        return time_value(start_of_next(now_ms, 'd') - 1);
    case 12:
        return time_value(start_of(now_ms, 'm'));
    case 13:
        return time_value(start_of_next(now_ms, 'm') - 1);
    case 14:
        return time_value(start_of(now_ms, 'y'));
    case 15:
        return time_value(start_of_next(now_ms, 'y') - 1);
    default:
        return NULL;
    }
}

/* Resolves an identifier: a field with an optional json path and modifier,
 * a macro, or true/false/null when no field has that name. */
/* ---- rules: @request.* and relations ---- */

/* A request value as an operand: scalars bound as they are, arrays and
 * objects bound as their JSON text, a missing value as NULL. */
static void request_value(struct operand *o, json_t *v)
{
    o->kind = K_PARAM;
    if (json_is_array(v) || json_is_object(v)) {
        char *text = json_dumps(v, JSON_COMPACT);
        o->value = json_string(text ? text : "");
        free(text);
    } else {
        o->value = v ? json_incref(v) : json_null();
    }
}

static bool hidden_always(struct slice name)
{
    return slice_eq_cstr(name, "password") || slice_eq_cstr(name, "tokenKey");
}

static int resolve_ident(struct state *st, struct slice id, size_t pos, struct operand *o);
static int resolve_auth_path(struct state *st, struct slice path, size_t pos, struct operand *o);
static int resolve_changed(struct state *st, struct slice name, json_t *v, size_t pos,
                           struct operand *o);
static int resolve_body_each(struct state *st, struct slice name, json_t *v, size_t pos,
                             struct operand *o);

static void operand_free(struct operand *o)
{
    json_decref(o->value);
    json_decref(o->subp);
    json_decref(o->mmp);
    free(o->sub);
    free(o->mm);
    o->value = o->subp = o->mmp = NULL;
    o->sub = o->mm = NULL;
}

/* @request.<what>[.<key>][:modifier] in rule mode. */
static int resolve_request(struct state *st, struct slice id, size_t pos, struct operand *o)
{
    const struct rule_request *rq = st->rq;
    struct slice rest = slice_make(id.ptr + 9, id.len - 9); /* after "@request." */
    const char *colon = memchr(rest.ptr, ':', rest.len);
    struct slice path = colon ? slice_make(rest.ptr, (size_t)(colon - rest.ptr)) : rest;
    struct slice mod = colon ? slice_make(colon + 1, rest.len - path.len - 1) : SLICE_NULL;
    const char *dot = memchr(path.ptr, '.', path.len);
    struct slice head = dot ? slice_make(path.ptr, (size_t)(dot - path.ptr)) : path;
    struct slice key = dot ? slice_make(dot + 1, path.len - head.len - 1) : SLICE_NULL;
    char k[80];

    if (st->sort)
        return fail(st, pos, "invalid sort field \"%.*s\"", SHOWN(id.len), id.ptr);
    if (key.ptr && slice_eq_cstr(head, "auth") && memchr(key.ptr, '.', key.len)) {
        if (!rq->auth) {
            o->kind = K_CONST;
            o->cst = "NULL";
            return 0;
        }
        return resolve_auth_path(st, slice_make(key.ptr, (size_t)(id.ptr + id.len - key.ptr)), pos,
                                 o);
    }
    if (key.ptr && (key.len == 0 || key.len >= sizeof k || memchr(key.ptr, '.', key.len)))
        return fail(st, pos, "unsupported request field \"%.*s\"", SHOWN(id.len), id.ptr);
    if (key.ptr) {
        memcpy(k, key.ptr, key.len);
        k[key.len] = '\0';
    }
    if (slice_eq_cstr(head, "method") && !key.ptr) {
        o->kind = K_PARAM;
        o->value = json_string(rq->method ? rq->method : "GET");
    } else if (slice_eq_cstr(head, "context") && !key.ptr) {
        o->kind = K_PARAM;
        o->value = json_string(rq->context ? rq->context : "default");
    } else if (slice_eq_cstr(head, "auth") && key.ptr) {
        if (hidden_always(key))
            return fail(st, pos, "non-filterable field \"%.*s\"", SHOWN(key.len), key.ptr);
        if (!rq->auth && slice_eq_cstr(key, "id")) {
            o->kind = K_PARAM;
            o->value = json_string(""); /* PocketBase: anonymous is the empty id */
        } else {
            request_value(o, rq->auth ? json_object_get(rq->auth, k) : NULL);
        }
    } else if ((slice_eq_cstr(head, "body") || slice_eq_cstr(head, "query") ||
                slice_eq_cstr(head, "headers")) &&
               key.ptr) {
        json_t *obj = slice_eq_cstr(head, "body")    ? rq->body
                      : slice_eq_cstr(head, "query") ? rq->query
                                                     : rq->headers;
        json_t *v = obj ? json_object_get(obj, k) : NULL;
        if (mod.ptr && slice_eq_cstr(mod, "isset") && slice_eq_cstr(head, "body")) {
            o->kind = K_CONST;
            o->cst = v ? "1" : "0";
            return 0;
        }
        if (mod.ptr && slice_eq_cstr(mod, "changed") && slice_eq_cstr(head, "body"))
            return resolve_changed(st, key, v, pos, o);
        if (mod.ptr && slice_eq_cstr(mod, "each") && slice_eq_cstr(head, "body"))
            return resolve_body_each(st, key, v, pos, o);
        if (mod.ptr && slice_eq_cstr(mod, "length") && slice_eq_cstr(head, "body")) {
            o->kind = K_PARAM;
            o->value = json_integer(
                json_is_array(v) ? (json_int_t)json_array_size(v)
                : v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0) ? 1
                                                                                              : 0);
            return 0;
        }
        request_value(o, v);
    } else {
        return fail(st, pos, "unknown request field \"%.*s\"", SHOWN(id.len), id.ptr);
    }
    if (mod.ptr) {
        if (!slice_eq_cstr(mod, "lower"))
            return fail(st, pos, "unsupported modifier \":%.*s\"", SHOWN(mod.len), mod.ptr);
        o->lower = true;
    }
    return 0;
}

/* ---- paths through relations (PocketBase's record_field_resolver_runner) ----
 *
 * A path (author.team.name, tags.owner.name, comments_via_post.text,
 * @collection.users.name, @request.auth.team.name) joins each collection it
 * passes through with a LEFT JOIN shared by every term of the expression that
 * names the same path prefix, as PocketBase's registerJoin does: a row passes
 * when one combination of joined rows satisfies the whole expression, so
 * `tags.name ?= 'a' && tags.kind ?= 'b'` needs one tag that is both. The
 * expression is then written as EXISTS (SELECT 1 FROM (SELECT 1) LEFT JOIN ...
 * WHERE <expression>), correlated to the outer row by its table name.
 *
 * A path through a multi-valued hop (a multiple relation, a back-relation
 * without a unique index, @collection, :each on a multiple field) also gets
 * PocketBase's multi-match subquery: the same joins under fresh aliases,
 * selecting every value the path reaches for this row. A plain operator (=,
 * !=, <, ~ ...) then also requires NOT EXISTS a value failing the comparison,
 * so it holds for all of them; the any-of forms (?=, ...) need only the
 * shared row. */

static void put_qcol(struct buf *b, const char *alias, const char *col)
{
    buf_append_cstr(b, alias);
    buf_append_char(b, '.');
    buf_append_sql_ident(b, col);
}

/* The column as a JSON array for json_each/json_array_length (PocketBase's
 * dbutils.JSONEach): an array as it is, anything else as a one-element array. */
static void put_array_src(struct buf *b, const char *alias, const char *col)
{
    buf_append_cstr(b, "CASE WHEN json_valid(");
    put_qcol(b, alias, col);
    buf_append_cstr(b, ") THEN (CASE WHEN json_type(");
    put_qcol(b, alias, col);
    buf_append_cstr(b, ") = 'array' THEN ");
    put_qcol(b, alias, col);
    buf_append_cstr(b, " ELSE json_array(");
    put_qcol(b, alias, col);
    buf_append_cstr(b, ") END) ELSE json_array(");
    put_qcol(b, alias, col);
    buf_append_cstr(b, ") END");
}

static void put_length_of(struct buf *b, const char *alias, const char *col)
{
    buf_append_cstr(b, "json_array_length(CASE WHEN json_valid(");
    put_qcol(b, alias, col);
    buf_append_cstr(b, ") AND json_type(");
    put_qcol(b, alias, col);
    buf_append_cstr(b, ") = 'array' THEN ");
    put_qcol(b, alias, col);
    buf_append_cstr(b, " WHEN ");
    put_qcol(b, alias, col);
    buf_append_cstr(b, " = '' OR ");
    put_qcol(b, alias, col);
    buf_append_cstr(b, " IS NULL THEN json_array() ELSE json_array(");
    put_qcol(b, alias, col);
    buf_append_cstr(b, ") END)");
}

struct walk {
    const struct collection *cur;
    char alias[ALIAS_MAX];             /* cur's row in the shared joins, quoted */
    char mm_alias[ALIAS_MAX];          /* cur's row in the multi-match subquery, quoted */
    struct buf key;                    /* the path so far: names the shared joins */
    struct buf mm;                     /* the multi-match subquery's FROM ... joins */
    json_t *mmp;                       /* its bound values */
    char mm_where[2 * ALIAS_MAX + 32]; /* its correlation to the outer row */
    bool multi;                        /* some hop was multi-valued */
    int hops;
};

/* Finds the shared join named by w->key plus `suffix`, or adds its name;
 * *fresh tells the caller to write the join's SQL under `alias`. */
static int join_slot(struct state *st, struct walk *w, const char *suffix, char alias[ALIAS_MAX],
                     bool *fresh)
{
    buf_append_cstr(&w->key, suffix);
    const char *key = w->key.ptr;
    for (int i = 0; i < st->njoins; i++) {
        if (strcmp(st->join_keys[i], key) == 0) {
            snprintf(alias, ALIAS_MAX, "\"__j%d\"", i);
            *fresh = false;
            return 0;
        }
    }
    if (st->njoins >= FILTER_MAX_JOINS)
        return fail(st, st->term_pos, "too many joins (max %d)", FILTER_MAX_JOINS);
    st->join_keys[st->njoins] = xstrdup(key);
    snprintf(alias, ALIAS_MAX, "\"__j%d\"", st->njoins);
    st->njoins++;
    *fresh = true;
    return 0;
}

static void mm_alias_next(struct state *st, char alias[ALIAS_MAX])
{
    snprintf(alias, ALIAS_MAX, "\"__m%d\"", ++st->seq);
}

static const struct field *usable_field(struct state *st, const struct collection *c,
                                        struct slice name, size_t pos, int *rc)
{
    const struct field *g = find_field(c, name);
    *rc = 0;
    if (!g) {
        *rc = fail(st, pos, "unknown field \"%.*s\"", SHOWN(name.len), name.ptr);
        return NULL;
    }
    if (g->type == FIELD_PASSWORD || hidden_always(name) || (g->hidden && !st->allow_hidden)) {
        *rc = fail(st, pos, "non-filterable field \"%.*s\"", SHOWN(name.len), name.ptr);
        return NULL;
    }
    return g;
}

/* A back-relation is single when its field is single and unique. */
static bool backrel_single(const struct collection *c, const struct field *f)
{
    if (field_is_multiple(f))
        return false;
    for (size_t i = 0; i < c->nindexes; i++) {
        const struct collection_index *ix = &c->indexes[i];
        if (ix->unique && ix->ncolumns == 1 && !ix->where && strcmp(ix->columns[0], f->name) == 0)
            return true;
    }
    return false;
}

static int hop_relation(struct state *st, struct walk *w, const struct field *f, size_t pos)
{
    const struct collection *next =
        st->schema && f->opt.relation.collection_id
            ? schema_find(st->schema, slice_cstr(f->opt.relation.collection_id))
            : NULL;
    if (!next)
        return fail(st, pos, "unknown related collection of \"%s\"", f->name);
    bool multi = field_is_multiple(f), fresh;
    char je[ALIAS_MAX], alias[ALIAS_MAX];
    struct buf *j = &st->join_sql;
    if (multi) {
        buf_append_char(&w->key, '.');
        buf_append_cstr(&w->key, f->name);
        if (join_slot(st, w, ":je", je, &fresh) < 0)
            return -1;
        w->key.len -= 3;
        if (fresh) {
            buf_append_cstr(j, " LEFT JOIN json_each(");
            put_array_src(j, w->alias, f->name);
            buf_appendf(j, ") AS %s", je);
        }
        if (join_slot(st, w, "", alias, &fresh) < 0)
            return -1;
        if (fresh) {
            buf_append_cstr(j, " LEFT JOIN ");
            buf_append_sql_ident(j, next->name);
            buf_appendf(j, " AS %s ON %s.\"id\" = %s.value", alias, alias, je);
        }
    } else {
        buf_append_char(&w->key, '.');
        if (join_slot(st, w, f->name, alias, &fresh) < 0)
            return -1;
        if (fresh) {
            buf_append_cstr(j, " LEFT JOIN ");
            buf_append_sql_ident(j, next->name);
            buf_appendf(j, " AS %s ON %s.\"id\" = ", alias, alias);
            put_qcol(j, w->alias, f->name);
        }
    }
    char mje[ALIAS_MAX], malias[ALIAS_MAX];
    mm_alias_next(st, malias);
    if (multi) {
        mm_alias_next(st, mje);
        buf_append_cstr(&w->mm, " LEFT JOIN json_each(");
        put_array_src(&w->mm, w->mm_alias, f->name);
        buf_appendf(&w->mm, ") AS %s LEFT JOIN ", mje);
        buf_append_sql_ident(&w->mm, next->name);
        buf_appendf(&w->mm, " AS %s ON %s.\"id\" = %s.value", malias, malias, mje);
    } else {
        buf_append_cstr(&w->mm, " LEFT JOIN ");
        buf_append_sql_ident(&w->mm, next->name);
        buf_appendf(&w->mm, " AS %s ON %s.\"id\" = ", malias, malias);
        put_qcol(&w->mm, w->mm_alias, f->name);
    }
    w->multi |= multi;
    w->cur = next;
    memcpy(w->alias, alias, sizeof alias);
    memcpy(w->mm_alias, malias, sizeof malias);
    return 0;
}

/* <collection>_via_<field>: the records of <collection> whose relation
 * <field> points at the current one. */
static int hop_back(struct state *st, struct walk *w, struct slice seg, size_t pos, bool *matched)
{
    *matched = false;
    const char *via = NULL;
    for (size_t i = 1; i + 5 < seg.len; i++)
        if (memcmp(seg.ptr + i, "_via_", 5) == 0)
            via = seg.ptr + i; /* the last one, as the regexp's greedy (\w+) */
    if (!via || !st->schema)
        return 0;
    *matched = true;
    struct slice cname = slice_make(seg.ptr, (size_t)(via - seg.ptr));
    struct slice fname = slice_make(via + 5, seg.len - cname.len - 5);
    const struct collection *back = schema_find(st->schema, cname);
    if (!back)
        return fail(st, pos, "unknown back-relation collection \"%.*s\"", SHOWN(cname.len),
                    cname.ptr);
    const struct field *bf = find_field(back, fname);
    if (!bf || bf->type != FIELD_RELATION || !bf->opt.relation.collection_id ||
        strcmp(bf->opt.relation.collection_id, w->cur->id) != 0)
        return fail(st, pos, "invalid back-relation \"%.*s\"", SHOWN(seg.len), seg.ptr);
    if (bf->hidden && !st->allow_hidden)
        return fail(st, pos, "non-filterable back-relation field \"%s\"", bf->name);
    bool multi = !backrel_single(back, bf), fresh;
    char alias[ALIAS_MAX], malias[ALIAS_MAX], je[ALIAS_MAX];
    buf_append_char(&w->key, '.');
    buf_append(&w->key, seg.ptr, seg.len);
    if (join_slot(st, w, "", alias, &fresh) < 0)
        return -1;
    mm_alias_next(st, malias);
    for (int pass = 0; pass < 2; pass++) {
        struct buf *j = pass ? &w->mm : &st->join_sql;
        const char *a = pass ? malias : alias, *from = pass ? w->mm_alias : w->alias;
        if (!pass && !fresh)
            continue;
        buf_append_cstr(j, " LEFT JOIN ");
        buf_append_sql_ident(j, back->name);
        buf_appendf(j, " AS %s ON ", a);
        if (!multi) {
            put_qcol(j, a, bf->name);
            buf_appendf(j, " = %s.\"id\"", from);
        } else {
            mm_alias_next(st, je);
            buf_appendf(j, "%s.\"id\" IN (SELECT %s.value FROM json_each(", from, je);
            put_array_src(j, a, bf->name);
            buf_appendf(j, ") AS %s)", je);
        }
    }
    w->multi |= multi;
    w->cur = back;
    memcpy(w->alias, alias, sizeof alias);
    memcpy(w->mm_alias, malias, sizeof malias);
    return 0;
}

/* The last segment of a path: a field of w->cur with an optional modifier. */
static int path_last(struct state *st, struct walk *w, struct slice seg, size_t pos,
                     struct operand *o)
{
    const char *colon = memchr(seg.ptr, ':', seg.len);
    struct slice name = colon ? slice_make(seg.ptr, (size_t)(colon - seg.ptr)) : seg;
    struct slice mod = colon ? slice_make(colon + 1, seg.len - name.len - 1) : SLICE_NULL;
    int rc;
    const struct field *g = usable_field(st, w->cur, name, pos, &rc);
    if (!g)
        return rc;
    bool arrayable = g->type == FIELD_SELECT || g->type == FIELD_RELATION || g->type == FIELD_FILE;
    struct buf id = BUF_INIT, mv = BUF_INIT;
    if (mod.ptr && slice_eq_cstr(mod, "length") && arrayable) {
        put_length_of(&id, w->alias, g->name);
        put_length_of(&mv, w->mm_alias, g->name);
    } else if (mod.ptr && slice_eq_cstr(mod, "each") && arrayable) {
        char je[ALIAS_MAX], mje[ALIAS_MAX];
        bool fresh;
        buf_append_char(&w->key, '.');
        buf_append_cstr(&w->key, g->name);
        if (join_slot(st, w, ":each", je, &fresh) < 0)
            return -1;
        if (fresh) {
            buf_append_cstr(&st->join_sql, " LEFT JOIN json_each(");
            put_array_src(&st->join_sql, w->alias, g->name);
            buf_appendf(&st->join_sql, ") AS %s", je);
        }
        mm_alias_next(st, mje);
        buf_append_cstr(&w->mm, " LEFT JOIN json_each(");
        put_array_src(&w->mm, w->mm_alias, g->name);
        buf_appendf(&w->mm, ") AS %s", mje);
        buf_appendf(&id, "%s.value", je);
        buf_appendf(&mv, "%s.value", mje);
        w->multi |= field_is_multiple(g);
    } else if (mod.ptr && !slice_eq_cstr(mod, "lower")) {
        if (slice_eq_cstr(mod, "length") || slice_eq_cstr(mod, "each"))
            return fail(st, pos, "field \"%.*s\" doesn't support :%.*s", SHOWN(name.len), name.ptr,
                        SHOWN(mod.len), mod.ptr);
        return fail(st, pos, "unsupported modifier \":%.*s\"", SHOWN(mod.len), mod.ptr);
    } else {
        bool lower = mod.ptr != NULL;
        for (int pass = 0; pass < 2; pass++) {
            struct buf *b = pass ? &mv : &id;
            const char *a = pass ? w->mm_alias : w->alias;
            if (lower)
                buf_append_cstr(b, "LOWER(");
            if (g->type == FIELD_JSON)
                buf_append_cstr(b, "json_extract(");
            put_qcol(b, a, g->name);
            if (g->type == FIELD_JSON)
                buf_append_cstr(b, ", '$')");
            if (lower)
                buf_append_char(b, ')');
        }
        o->no_coalesce = g->type == FIELD_JSON;
        if (!st->allow_hidden && w->cur->type == COLLECTION_AUTH && strcmp(g->name, "email") == 0)
            snprintf(o->guard, sizeof o->guard, "%s.\"emailVisibility\" = TRUE", w->alias);
    }
    o->kind = K_SUB;
    o->field = g;
    o->sub = buf_steal(&id);
    if (w->multi) {
        struct buf q = BUF_INIT;
        buf_append_cstr(&q, "SELECT ");
        buf_append(&q, mv.ptr, mv.len);
        buf_append_cstr(&q, " AS \"__mm v\"");
        buf_append(&q, w->mm.ptr, w->mm.len);
        buf_append_cstr(&q, w->mm_where);
        o->mm = buf_steal(&q);
        o->mmp = json_incref(w->mmp);
    }
    buf_free(&mv);
    return 0;
}

/* Walks `path` (dot-separated, a modifier on the last segment) from w's
 * collection, joining as it goes, and resolves its last field into o. */
static int walk_path(struct state *st, struct walk *w, struct slice path, size_t pos,
                     struct operand *o)
{
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < path.len && path.ptr[j] != '.')
            j++;
        struct slice seg = slice_make(path.ptr + i, j - i);
        if (seg.len == 0)
            return fail(st, pos, "invalid field path");
        if (j >= path.len)
            return path_last(st, w, seg, pos, o);
        if (memchr(seg.ptr, ':', seg.len))
            return fail(st, pos, "a modifier may only end a field path");
        const struct field *f = find_field(w->cur, seg);
        if (f &&
            (f->type == FIELD_PASSWORD || hidden_always(seg) || (f->hidden && !st->allow_hidden)))
            return fail(st, pos, "non-filterable field \"%.*s\"", SHOWN(seg.len), seg.ptr);
        if (f && f->type == FIELD_JSON)
            return fail(st, pos, "json paths are not supported through relations");
        if (++w->hops > FILTER_MAX_REL_DEPTH)
            return fail(st, pos, "max nested relations reached (max %d)", FILTER_MAX_REL_DEPTH);
        if (++st->joins > RULE_MAX_JOINS)
            return fail(st, pos, "too many relation joins (max %d)", RULE_MAX_JOINS);
        if (!f) {
            bool matched;
            if (hop_back(st, w, seg, pos, &matched) < 0)
                return -1;
            if (!matched)
                return fail(st, pos, "unknown field \"%.*s\"", SHOWN(seg.len), seg.ptr);
        } else if (f->type != FIELD_RELATION) {
            return fail(st, pos, "field \"%.*s\" has no subfields", SHOWN(seg.len), seg.ptr);
        } else if (!field_is_multiple(f) &&
                   slice_eq_cstr(slice_make(path.ptr + j + 1, path.len - j - 1), "id")) {
            /* PocketBase's shortcut: rel.id is the stored id itself, no join. */
            st->joins--;
            return path_last(st, w, seg, pos, o);
        } else if (hop_relation(st, w, f, pos) < 0) {
            return -1;
        }
        i = j + 1;
    }
}

enum walk_root { ROOT_SELF, ROOT_COLLECTION, ROOT_AUTH };

/* Starts a walk at the outer row (ROOT_SELF), at every row of another
 * collection (@collection.<name>[:alias]) or at the caller's auth record. */
static int walk_start(struct state *st, struct walk *w, enum walk_root root,
                      const struct collection *c, struct slice tag, json_t *auth_id)
{
    char base[ALIAS_MAX];
    memset(w, 0, sizeof *w);
    mm_alias_next(st, base);
    buf_append_cstr(&w->mm, " FROM ");
    buf_append_sql_ident(&w->mm, st->c->name);
    buf_appendf(&w->mm, " AS %s", base);
    struct buf q = BUF_INIT;
    buf_appendf(&q, " WHERE %s.\"id\" = ", base);
    buf_append_sql_ident(&q, st->c->name);
    buf_append_cstr(&q, ".\"id\"");
    snprintf(w->mm_where, sizeof w->mm_where, "%s", q.ptr);
    buf_free(&q);
    w->mmp = json_array();
    w->cur = c;
    if (root == ROOT_SELF) {
        struct buf t = BUF_INIT;
        buf_append_sql_ident(&t, st->c->name);
        if (t.len >= sizeof w->alias) {
            buf_free(&t);
            return fail(st, st->term_pos, "collection name too long for a join");
        }
        memcpy(w->alias, t.ptr, t.len + 1);
        buf_free(&t);
        memcpy(w->mm_alias, base, sizeof base);
        return 0;
    }
    bool fresh;
    buf_append(&w->key, tag.ptr, tag.len);
    if (join_slot(st, w, "", w->alias, &fresh) < 0)
        return -1;
    if (++st->joins > RULE_MAX_JOINS)
        return fail(st, st->term_pos, "too many relation joins (max %d)", RULE_MAX_JOINS);
    mm_alias_next(st, w->mm_alias);
    for (int pass = 0; pass < 2; pass++) {
        struct buf *j = pass ? &w->mm : &st->join_sql;
        const char *a = pass ? w->mm_alias : w->alias;
        if (!pass && !fresh)
            continue;
        buf_append_cstr(j, " LEFT JOIN ");
        buf_append_sql_ident(j, c->name);
        buf_appendf(j, " AS %s ON ", a);
        if (root == ROOT_AUTH) {
            buf_appendf(j, "%s.\"id\" = ?", a);
            json_array_append(pass ? w->mmp : st->join_params, auth_id);
        } else {
            buf_append_cstr(j, "1");
        }
    }
    w->multi = root == ROOT_COLLECTION;
    return 0;
}

static void walk_free(struct walk *w)
{
    buf_free(&w->key);
    buf_free(&w->mm);
    json_decref(w->mmp);
}

/* @collection.<name>[:alias].<path> */
static int resolve_collection(struct state *st, struct slice id, size_t pos, struct operand *o)
{
    struct slice rest = slice_make(id.ptr + 12, id.len - 12); /* after "@collection." */
    const char *dot = memchr(rest.ptr, '.', rest.len);
    if (st->sort)
        return fail(st, pos, "invalid sort field \"%.*s\"", SHOWN(id.len), id.ptr);
    if (!dot || dot == rest.ptr)
        return fail(st, pos, "invalid @collection field \"%.*s\"", SHOWN(id.len), id.ptr);
    struct slice head = slice_make(rest.ptr, (size_t)(dot - rest.ptr));
    const char *colon = memchr(head.ptr, ':', head.len);
    struct slice cname = colon ? slice_make(head.ptr, (size_t)(colon - head.ptr)) : head;
    const struct collection *c = st->schema ? schema_find(st->schema, cname) : NULL;
    if (!c)
        return fail(st, pos, "unknown collection \"%.*s\"", SHOWN(cname.len), cname.ptr);
    struct walk w;
    struct buf tag = BUF_INIT;
    buf_append_cstr(&tag, "@collection.");
    if (colon && colon + 1 < head.ptr + head.len)
        buf_append(&tag, head.ptr, head.len); /* an alias: a join of its own */
    else
        buf_append_cstr(&tag, c->id);
    int rc = walk_start(st, &w, ROOT_COLLECTION, c, slice_make(tag.ptr, tag.len), NULL);
    buf_free(&tag);
    if (rc == 0)
        rc = walk_path(st, &w, slice_make(dot + 1, rest.len - head.len - 1), pos, o);
    walk_free(&w);
    return rc;
}

/* A path from the outer row starting with a relation or a back-relation. */
static int resolve_self_path(struct state *st, struct slice id, size_t pos, struct operand *o)
{
    struct walk w;
    if (st->sort)
        return fail(st, pos, "invalid sort field \"%.*s\"", SHOWN(id.len), id.ptr);
    int rc = walk_start(st, &w, ROOT_SELF, st->c, SLICE_NULL, NULL);
    if (rc == 0)
        rc = walk_path(st, &w, id, pos, o);
    walk_free(&w);
    return rc;
}

/* @request.auth.<relation>.<path>: joins the caller's auth record. */
static int resolve_auth_path(struct state *st, struct slice path, size_t pos, struct operand *o)
{
    const char *cname = json_string_value(json_object_get(st->rq->auth, "collectionName"));
    const struct collection *c =
        cname && st->schema ? schema_find(st->schema, slice_cstr(cname)) : NULL;
    if (!c) {
        o->kind = K_CONST;
        o->cst = "NULL";
        return 0;
    }
    json_t *auth_id = json_object_get(st->rq->auth, "id");
    struct walk w;
    int rc = walk_start(st, &w, ROOT_AUTH, c, SLICE_LIT("@request.auth"),
                        auth_id ? auth_id : json_null());
    if (rc == 0)
        rc = walk_path(st, &w, path, pos, o);
    walk_free(&w);
    return rc;
}

/* @request.body.<field>:changed, PocketBase's shorthand for
 * (@request.body.<field>:isset = true && @request.body.<field> != <field>). */
static int resolve_changed(struct state *st, struct slice name, json_t *v, size_t pos,
                           struct operand *o)
{
    struct operand col, val = {0};
    if (!v) {
        o->kind = K_CONST;
        o->cst = "0";
        return 0;
    }
    if (resolve_ident(st, name, pos, &col) < 0) {
        operand_free(&col);
        return -1;
    }
    if (col.multi == MV_RAW)
        col.multi = MV_NONE;
    request_value(&val, v);
    struct buf *out = st->sql;
    json_t *out_params = st->params;
    struct buf b = BUF_INIT;
    json_t *p = json_array();
    st->sql = &b;
    st->params = p;
    buf_append_char(&b, '(');
    put_compare(st, OP_NEQ, &val, &col);
    buf_append_char(&b, ')');
    st->sql = out;
    st->params = out_params;
    operand_free(&col);
    operand_free(&val);
    o->kind = K_SUB;
    o->sub = buf_steal(&b);
    o->subp = p;
    return 0;
}

/* @request.body.<field>:each: the submitted values as a shared json_each
 * join (and a multi-match subquery when the field is multiple). */
static int resolve_body_each(struct state *st, struct slice name, json_t *v, size_t pos,
                             struct operand *o)
{
    const struct field *f = find_field(st->c, name);
    if (!f || !(f->type == FIELD_SELECT || f->type == FIELD_RELATION || f->type == FIELD_FILE))
        return fail(st, pos, "field \"%.*s\" doesn't support :each", SHOWN(name.len), name.ptr);
    json_t *items = json_is_array(v) ? json_incref(v) : json_array();
    if (v && !json_is_array(v) && !json_is_null(v))
        json_array_append(items, v);
    char *text = json_dumps(items, JSON_COMPACT);
    json_t *tv = json_string(text ? text : "[]");
    free(text);
    json_decref(items);

    struct walk w;
    char je[ALIAS_MAX], mje[ALIAS_MAX];
    bool fresh;
    int rc = walk_start(st, &w, ROOT_SELF, st->c, SLICE_NULL, NULL);
    if (rc == 0) {
        buf_append_cstr(&w.key, "@request.body.");
        buf_append(&w.key, name.ptr, name.len);
        rc = join_slot(st, &w, ":each", je, &fresh);
    }
    if (rc == 0) {
        if (fresh) {
            buf_appendf(&st->join_sql, " LEFT JOIN json_each(?) AS %s", je);
            json_array_append(st->join_params, tv);
        }
        o->kind = K_SUB;
        o->field = f;
        struct buf id = BUF_INIT;
        buf_appendf(&id, "%s.value", je);
        o->sub = buf_steal(&id);
        if (field_is_multiple(f)) {
            mm_alias_next(st, mje);
            struct buf q = BUF_INIT;
            buf_appendf(&q, "SELECT %s.value AS \"__mm v\"", mje);
            buf_append(&q, w.mm.ptr, w.mm.len);
            buf_appendf(&q, " LEFT JOIN json_each(?) AS %s", mje);
            buf_append_cstr(&q, w.mm_where);
            json_array_append(w.mmp, tv);
            o->mm = buf_steal(&q);
            o->mmp = json_incref(w.mmp);
        }
    }
    json_decref(tv);
    walk_free(&w);
    return rc;
}

static int resolve_ident(struct state *st, struct slice id, size_t pos, struct operand *o)
{
    memset(o, 0, sizeof *o);
    o->pos = pos;

    if (id.ptr[0] == '@') {
        if (st->rq && slice_starts_with(id, SLICE_LIT("@request.")))
            return resolve_request(st, id, pos, o);
        if (slice_eq_cstr(id, "@request") || slice_starts_with(id, SLICE_LIT("@request.")))
            return fail(st, pos, "@request.* fields are only allowed in API rules");
        if (slice_starts_with(id, SLICE_LIT("@collection.")))
            return resolve_collection(st, id, pos, o);
        if (slice_eq_cstr(id, "@collection"))
            return fail(st, pos, "invalid @collection field");
        if (st->sort)
            return fail(st, pos, "invalid sort field \"%.*s\"", SHOWN(id.len), id.ptr);
        o->value = macro_value(id, st->now_ms);
        if (!o->value)
            return fail(st, pos, "unknown macro \"%.*s\"", SHOWN(id.len), id.ptr);
        o->kind = K_PARAM;
        return 0;
    }

    size_t name_len = 0;
    while (name_len < id.len && id.ptr[name_len] != '.' && id.ptr[name_len] != ':')
        name_len++;
    struct slice name = slice_make(id.ptr, name_len);
    struct slice path = SLICE_NULL, modifier = SLICE_NULL;
    const char *colon = memchr(id.ptr, ':', id.len);
    size_t path_end = colon ? (size_t)(colon - id.ptr) : id.len;
    if (name_len < path_end)
        path = slice_make(id.ptr + name_len + 1, path_end - name_len - 1);
    if (colon)
        modifier = slice_make(colon + 1, id.len - path_end - 1);

    const struct field *f = find_field(st->c, name);
    if (!f && path.ptr && name.len > 5 && memmem(name.ptr, name.len, "_via_", 5))
        return resolve_self_path(st, id, pos, o);
    if (!f) {
        static const char *const consts[][2] = {{"null", "NULL"}, {"true", "1"}, {"false", "0"}};
        for (size_t i = 0; i < 3 && !st->sort && id.len == name_len; i++) {
            if (slice_case_eq(id, slice_cstr(consts[i][0]))) {
                o->kind = K_CONST;
                o->cst = consts[i][1];
                return 0;
            }
        }
        return fail(st, pos, "unknown field \"%.*s\"", SHOWN(name.len), name.ptr);
    }
    if (f->type == FIELD_PASSWORD || hidden_always(name) || (f->hidden && !st->allow_hidden))
        return fail(st, pos, "non-filterable field \"%.*s\"", SHOWN(name.len), name.ptr);
    if (f->type == FIELD_RELATION && path.ptr) {
        return resolve_self_path(st, id, pos, o);
    }

    o->field = f;
    o->kind = K_COLUMN;
    if (path.ptr) {
        if (f->type != FIELD_JSON)
            return fail(st, pos, "field \"%.*s\" has no subfields", SHOWN(name.len), name.ptr);
        /* Segments are [A-Za-z0-9_#@]+ (the scanner's alphabet minus dots and
         * colons); digits alone index an array. */
        struct buf jp = BUF_INIT;
        buf_append_char(&jp, '$');
        size_t i = 0;
        while (i <= path.len) {
            size_t j = i;
            bool digits = true;
            while (j < path.len && path.ptr[j] != '.') {
                digits &= is_digit(path.ptr[j]);
                if (!is_letter(path.ptr[j]) && !is_digit(path.ptr[j]) && path.ptr[j] != '_') {
                    buf_free(&jp);
                    return fail(st, pos, "invalid json path \"%.*s\"", SHOWN(id.len), id.ptr);
                }
                j++;
            }
            if (j == i) {
                buf_free(&jp);
                return fail(st, pos, "invalid json path \"%.*s\"", SHOWN(id.len), id.ptr);
            }
            if (digits)
                buf_appendf(&jp, "[%.*s]", (int)(j - i), path.ptr + i);
            else
                buf_appendf(&jp, ".%.*s", (int)(j - i), path.ptr + i);
            i = j + 1;
        }
        o->value = json_stringn(jp.ptr, jp.len);
        buf_free(&jp);
        o->kind = K_JSON;
    } else if (f->type == FIELD_JSON) {
        o->kind = K_JSON;
    }
    if (o->kind == K_JSON)
        o->no_coalesce = true;

    if (modifier.ptr) {
        bool arrayable =
            (f->type == FIELD_SELECT || f->type == FIELD_RELATION || f->type == FIELD_FILE) &&
            !path.ptr;
        if (slice_eq_cstr(modifier, "lower")) {
            o->lower = true;
        } else if (slice_eq_cstr(modifier, "length") && arrayable) {
            o->kind = K_LENGTH;
        } else if (slice_eq_cstr(modifier, "each") && arrayable) {
            if (field_is_multiple(f))
                o->multi = MV_EACH;
        } else if (slice_eq_cstr(modifier, "length") || slice_eq_cstr(modifier, "each")) {
            return fail(st, pos, "field \"%.*s\" doesn't support :%.*s", SHOWN(name.len), name.ptr,
                        SHOWN(modifier.len), modifier.ptr);
        } else {
            return fail(st, pos, "unknown modifier \":%.*s\"", SHOWN(modifier.len), modifier.ptr);
        }
        if (st->sort && o->multi != MV_NONE)
            return fail(st, pos, "invalid sort field \"%.*s\"", SHOWN(id.len), id.ptr);
    } else if (is_multi_select(f)) {
        o->multi = MV_RAW;
    }

    o->email_guard =
        !st->allow_hidden && st->c->type == COLLECTION_AUTH && strcmp(f->name, "email") == 0;
    return 0;
}

/* Text between quotes, with fexpr's only escape: a backslash before the
 * quote character that opened the string. NULL if it is not UTF-8. */
static json_t *text_value(const char *raw, size_t len)
{
    char q = raw[0];
    struct buf b = BUF_INIT;
    buf_reserve(&b, len);
    for (size_t i = 1; i + 1 < len; i++) {
        if (raw[i] == '\\' && i + 2 < len && raw[i + 1] == q)
            i++;
        buf_append_char(&b, raw[i]);
    }
    json_t *v = json_stringn(b.ptr ? b.ptr : "", b.len);
    buf_free(&b);
    return v;
}

static json_t *number_value(const char *raw, size_t len)
{
    char tmp[FILTER_MAX_LEN + 1];
    memcpy(tmp, raw, len);
    tmp[len] = '\0';
    if (!memchr(raw, '.', len)) {
        char *end;
        errno = 0;
        long long v = strtoll(tmp, &end, 10);
        if (errno == 0 && *end == '\0')
            return json_integer(v);
    }
    return json_real(strtod(tmp, NULL));
}

/* On failure o->value may still hold a value the caller must release. */
static int read_operand(struct state *st, const struct tok *t, struct operand *o)
{
    const char *raw = st->s + t->pos;
    memset(o, 0, sizeof *o);
    switch (t->type) {
    case T_IDENT:
        return resolve_ident(st, slice_make(raw, t->len), t->pos, o);
    case T_TEXT:
        o->kind = K_PARAM;
        o->pos = t->pos;
        o->value = text_value(raw, t->len);
        /* jansson refuses invalid UTF-8, and SQLite's text must be valid. */
        if (!o->value)
            return fail(st, t->pos, "invalid UTF-8 in text");
        return 0;
    case T_NUMBER:
        o->kind = K_PARAM;
        o->pos = t->pos;
        o->value = number_value(raw, t->len);
        return 0;
    case T_EOF:
        return fail(st, t->pos, "unexpected end of filter, expected an operand");
    default:
        return fail(st, t->pos, "expected an operand, got \"%.*s\"", SHOWN(t->len), raw);
    }
}

static enum op sign_op(struct slice lit)
{
    for (size_t k = 0; k < sizeof sign_table / sizeof sign_table[0]; k++)
        if (slice_eq_cstr(lit, sign_table[k].text))
            return sign_table[k].op;
    core_assert(!"scanner passed an unknown sign");
    return OP_EQ;
}

/* ---- parser ---- */

static int parse_comparison(struct state *st, const struct tok *first)
{
    struct operand l, r;
    struct tok t;
    int rc = -1;

    st->term_pos = first->pos;
    if (++st->terms > FILTER_MAX_TERMS)
        return fail(st, first->pos, "too many conditions (max %d)", FILTER_MAX_TERMS);
    memset(&r, 0, sizeof r);
    if (read_operand(st, first, &l) < 0 || scan(st, &t) < 0)
        goto out;
    if (t.type != T_SIGN) {
        fail(st, t.pos, "expected an operator");
        goto out;
    }
    enum op op = sign_op(slice_make(st->s + t.pos, t.len));
    size_t op_pos = t.pos;
    if (scan(st, &t) < 0 || read_operand(st, &t, &r) < 0)
        goto out;
    rc = put_term(st, op, &l, &r, op_pos);
out:
    operand_free(&l);
    operand_free(&r);
    return rc;
}

/* Parses terms joined by && and || up to the end of input (depth 0) or the
 * ')' closing the group opened at open_pos. && binds tighter than ||, which
 * SQL's AND and OR already do, so the terms are written in order. */
static int parse_group(struct state *st, int depth, size_t open_pos)
{
    size_t start = st->sql->len;
    int count = 0;
    struct tok t;

    for (;;) {
        if (scan(st, &t) < 0)
            return -1;
        if (t.type == T_LPAREN) {
            if (depth + 1 > FILTER_MAX_DEPTH)
                return fail(st, t.pos, "filter is nested too deeply (max %d)", FILTER_MAX_DEPTH);
            if (parse_group(st, depth + 1, t.pos) < 0)
                return -1;
        } else if (t.type == T_RPAREN && count == 0 && depth > 0) {
            return fail(st, open_pos, "empty group");
        } else if (t.type == T_EOF && count == 0 && depth == 0) {
            return fail(st, t.pos, "empty filter expression");
        } else if (parse_comparison(st, &t) < 0) {
            return -1;
        }
        count++;

        if (scan(st, &t) < 0)
            return -1;
        if (t.type == T_AND) {
            buf_append_cstr(st->sql, " AND ");
        } else if (t.type == T_OR) {
            buf_append_cstr(st->sql, " OR ");
        } else if (t.type == T_RPAREN && depth > 0) {
            break;
        } else if (t.type == T_EOF && depth == 0) {
            break;
        } else if (t.type == T_EOF) {
            return fail(st, open_pos, "missing closing parenthesis");
        } else if (t.type == T_RPAREN) {
            return fail(st, t.pos, "unexpected ')'");
        } else {
            return fail(st, t.pos, "expected && or ||, got \"%.*s\"", SHOWN(t.len), st->s + t.pos);
        }
    }
    if (count > 1)
        wrap_from(st->sql, start);
    return 0;
}

static void joins_reset(struct state *st)
{
    for (int i = 0; i < st->njoins; i++)
        free(st->join_keys[i]);
    st->njoins = 0;
    st->joins = 0;
    st->seq = 0;
    st->terms = 0;
    st->pos = 0;
    buf_free(&st->join_sql);
    json_decref(st->join_params);
    st->join_params = NULL;
}

/* A rule compiled without a request: every @request.* value is empty. */
static const struct rule_request no_request = {0};

/* One expression of a compile: its text and how its names resolve. */
struct part {
    struct slice text;
    const struct rule_request *rq; /* NULL: @request.* is refused */
    bool allow_hidden;
    bool is_rule; /* its errors are the rule's (filter_error.in_rule) */
};

/* Parses the parts, each one whole, joined by AND. With no joins their SQL
 * is appended as it is; with joins it is compiled again with its own columns
 * qualified (a joined table may have columns of the same names) and appended
 * as
 *   EXISTS (SELECT 1 FROM (SELECT 1) AS "__j" LEFT JOIN ... WHERE <expr>)
 * with the joins' values bound before the expression's. Every part names the
 * same joins, so a rule and a filter over one multi-valued path constrain
 * the same related row, as in PocketBase's single query. */
static int compile_parts(struct state *st, const struct part *parts, int nparts)
{
    struct buf *out = st->sql;
    json_t *out_params = st->params;
    struct buf expr = BUF_INIT;
    json_t *expr_params = json_array();
    int rc = 0;
    st->err->in_rule = false;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        buf_reset(&expr);
        json_array_clear(expr_params);
        joins_reset(st);
        st->join_params = json_array();
        st->qualify = pass == 1;
        st->sql = &expr;
        st->params = expr_params;
        for (int i = 0; i < nparts && rc == 0; i++) {
            st->s = parts[i].text.ptr;
            st->n = parts[i].text.len;
            st->pos = 0;
            st->rq = parts[i].rq;
            st->allow_hidden = parts[i].allow_hidden;
            /* a part of several terms comes back parenthesised */
            if (i)
                buf_append_cstr(&expr, " AND ");
            rc = parse_group(st, 0, 0);
            if (rc)
                st->err->in_rule = parts[i].is_rule;
        }
        if (rc == 0 && st->njoins == 0)
            break;
    }
    st->sql = out;
    st->params = out_params;
    if (rc == 0) {
        if (st->njoins) {
            buf_append_cstr(out, "EXISTS (SELECT 1 FROM (SELECT 1) AS \"__j\"");
            buf_append(out, st->join_sql.ptr, st->join_sql.len);
            buf_append_cstr(out, " WHERE ");
            json_array_extend(out_params, st->join_params);
        }
        buf_append(out, expr.ptr, expr.len);
        json_array_extend(out_params, expr_params);
        if (st->njoins)
            buf_append_char(out, ')');
    }
    joins_reset(st);
    buf_free(&expr);
    json_decref(expr_params);
    return rc;
}

static int compile(struct state *st)
{
    struct part p = {
        .text = slice_make(st->s, st->n),
        .rq = st->rq,
        .allow_hidden = st->allow_hidden,
        .is_rule = st->rq != NULL,
    };
    return compile_parts(st, &p, 1);
}

int filter_compile_opts(const struct collection *c, struct slice expr, int64_t now_ms,
                        const struct filter_options *opts, struct buf *sql, json_t *params,
                        struct filter_error *err)
{
    struct state st = {
        .c = c,
        .s = expr.ptr,
        .n = expr.len,
        .now_ms = now_ms,
        .allow_hidden = opts && opts->allow_hidden,
        .sql = sql,
        .params = params,
        .err = err,
    };
    if (expr.len > FILTER_MAX_LEN)
        return fail(&st, FILTER_MAX_LEN, "filter is too long (max %d bytes)", FILTER_MAX_LEN);
    struct schema *schema = schema_current();
    st.schema = schema;
    int rc = compile(&st);
    schema_release(schema);
    return rc;
}

int rule_compile(const struct schema *s, const struct collection *c, struct slice rule,
                 const struct rule_request *rq, int64_t now_ms, struct buf *sql, json_t *params,
                 struct filter_error *err)
{
    struct state st = {
        .c = c,
        .s = rule.ptr,
        .n = rule.len,
        .now_ms = now_ms,
        .allow_hidden = true, /* rules are the superuser's own text */
        .sql = sql,
        .params = params,
        .err = err,
        .schema = s,
        .rq = rq ? rq : &no_request,
    };
    if (rule.len > FILTER_MAX_LEN)
        return fail(&st, FILTER_MAX_LEN, "rule is too long (max %d bytes)", FILTER_MAX_LEN);
    return compile(&st);
}

int filter_compile_ruled(const struct schema *s, const struct collection *c, struct slice rule,
                         const struct rule_request *rq, struct slice filter,
                         const struct filter_options *opts, int64_t now_ms, struct buf *sql,
                         json_t *params, struct filter_error *err)
{
    struct state st = {
        .c = c,
        .now_ms = now_ms,
        .sql = sql,
        .params = params,
        .err = err,
        .schema = s,
    };
    struct part parts[2];
    int n = 0;
    err->in_rule = rule.len > 0;
    if (rule.len > FILTER_MAX_LEN)
        return fail(&st, FILTER_MAX_LEN, "rule is too long (max %d bytes)", FILTER_MAX_LEN);
    err->in_rule = false;
    if (filter.len > FILTER_MAX_LEN)
        return fail(&st, FILTER_MAX_LEN, "filter is too long (max %d bytes)", FILTER_MAX_LEN);
    if (rule.len)
        parts[n++] = (struct part){
            .text = rule,
            .rq = rq ? rq : &no_request,
            .allow_hidden = true, /* rules are the superuser's own text */
            .is_rule = true,
        };
    if (filter.len)
        parts[n++] = (struct part){
            .text = filter,
            .rq = opts && opts->allow_request ? rq : NULL,
            .allow_hidden = opts && opts->allow_hidden,
        };
    return n ? compile_parts(&st, parts, n) : 0;
}

int filter_compile(const struct collection *c, struct slice expr, int64_t now_ms, struct buf *sql,
                   json_t *params, struct filter_error *err)
{
    return filter_compile_opts(c, expr, now_ms, NULL, sql, params, err);
}

/* ---- sort ---- */

static bool is_trim_space(char ch)
{
    return is_space(ch) || ch == '\v' || ch == '\f';
}

int sort_compile_opts(const struct collection *c, struct slice sort,
                      const struct filter_options *opts, struct buf *sql, struct filter_error *err)
{
    struct state st = {
        .c = c,
        .s = sort.ptr,
        .n = sort.len,
        .allow_hidden = opts && opts->allow_hidden,
        .sort = true,
        .sql = sql,
        .err = err,
    };
    if (sort.len > FILTER_MAX_LEN)
        return fail(&st, FILTER_MAX_LEN, "sort is too long (max %d bytes)", FILTER_MAX_LEN);

    size_t i = 0;
    int keys = 0;
    for (;;) {
        size_t end = i;
        while (end < sort.len && sort.ptr[end] != ',')
            end++;
        size_t a = i, b = end;
        while (a < b && is_trim_space(sort.ptr[a]))
            a++;
        while (b > a && is_trim_space(sort.ptr[b - 1]))
            b--;
        const char *dir = " ASC";
        if (a < b && sort.ptr[a] == '-') {
            dir = " DESC";
            a++;
        } else if (a < b && sort.ptr[a] == '+') {
            a++;
        }
        struct slice key = slice_make(sort.ptr + a, b - a);
        if (++keys > FILTER_MAX_TERMS)
            return fail(&st, a, "too many sort fields (max %d)", FILTER_MAX_TERMS);
        if (keys > 1)
            buf_append_cstr(sql, ", ");

        if (slice_eq_cstr(key, "@random")) {
            buf_append_cstr(sql, "RANDOM()");
        } else if (slice_eq_cstr(key, "@rowid")) {
            buf_append_cstr(sql, "_rowid_");
            buf_append_cstr(sql, dir);
        } else {
            /* The same scanner as filters, so a key is exactly one identifier. */
            st.pos = a;
            st.n = b;
            struct tok t;
            if (key.len == 0)
                return fail(&st, a, "empty sort field");
            if (scan(&st, &t) < 0)
                return -1;
            if (t.type != T_IDENT || t.len != key.len)
                return fail(&st, a, "invalid sort field \"%.*s\"", SHOWN(key.len), key.ptr);
            struct operand o;
            if (resolve_ident(&st, key, a, &o) < 0) {
                json_decref(o.value);
                return -1;
            }
            if (o.kind == K_JSON && o.value) {
                /* The path is made of checked [A-Za-z0-9_.[\]$] only, so it can
                 * be inlined where no parameter can be bound. */
                buf_append_cstr(sql, o.lower ? "LOWER(json_extract(" : "json_extract(");
                buf_append_sql_ident(sql, o.field->name);
                buf_appendf(sql, ", '%s')", json_string_value(o.value));
                if (o.lower)
                    buf_append_char(sql, ')');
                json_decref(o.value);
            } else {
                put_operand(&st, &o);
            }
            buf_append_cstr(sql, dir);
        }
        if (end >= sort.len)
            break;
        i = end + 1;
    }
    return 0;
}

int sort_compile(const struct collection *c, struct slice sort, struct buf *sql,
                 struct filter_error *err)
{
    return sort_compile_opts(c, sort, NULL, sql, err);
}
