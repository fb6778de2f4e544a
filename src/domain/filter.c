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
    K_SUB,    /* a scalar subquery through single relations, SQL text in `sub` */
};

/* How a multi-valued operand takes part in a comparison. A bare multiple
 * select compares its stored JSON text with the plain operators (as PocketBase
 * does) and its elements with the any-of ones; with ":each" the plain
 * operators require every element to match and the any-of ones at least one. */
enum multi { MV_NONE, MV_RAW, MV_EACH };

struct operand {
    enum operand_kind kind;
    const struct field *field;
    json_t *value;   /* K_PARAM: owned; K_JSON: the path string, owned */
    const char *cst; /* K_CONST */
    char *sub;       /* K_SUB: owned */
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
    const struct schema *schema;   /* resolves relations; NULL: none can be traversed */
    const struct rule_request *rq; /* rule mode: @request.* resolves against it */
    int joins;                     /* relation hops so far, at most RULE_MAX_JOINS */
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
static void put_each_source(struct buf *b, const struct field *f)
{
    buf_append_cstr(b, "CASE WHEN json_valid(");
    buf_append_sql_ident(b, f->name);
    buf_append_cstr(b, ") THEN CASE WHEN json_type(");
    buf_append_sql_ident(b, f->name);
    buf_append_cstr(b, ") = 'array' AND json_array_length(");
    buf_append_sql_ident(b, f->name);
    buf_append_cstr(b, ") = 0 THEN '[null]' ELSE ");
    buf_append_sql_ident(b, f->name);
    buf_append_cstr(b, " END ELSE json_array(");
    buf_append_sql_ident(b, f->name);
    buf_append_cstr(b, ") END");
}

static void put_length(struct buf *b, const struct field *f)
{
    buf_append_cstr(b, "json_array_length(CASE WHEN json_valid(");
    buf_append_sql_ident(b, f->name);
    buf_append_cstr(b, ") THEN ");
    buf_append_sql_ident(b, f->name);
    buf_append_cstr(b, " ELSE (CASE WHEN ");
    buf_append_sql_ident(b, f->name);
    buf_append_cstr(b, " = '' OR ");
    buf_append_sql_ident(b, f->name);
    buf_append_cstr(b, " IS NULL THEN json_array() ELSE json_array(");
    buf_append_sql_ident(b, f->name);
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
        buf_append_sql_ident(b, o->field->name);
        break;
    case K_JSON:
        buf_append_cstr(b, "json_extract(");
        buf_append_sql_ident(b, o->field->name);
        if (o->value) {
            buf_append_cstr(b, ", ?)");
            json_array_append(st->params, o->value);
        } else {
            buf_append_cstr(b, ", '$')");
        }
        break;
    case K_LENGTH:
        put_length(b, o->field);
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

    if (lelem && relem)
        return fail(st, op_pos, "comparing two multi-valued fields is not supported");
    if (!lelem && !relem) {
        put_compare(st, base, l, r);
    } else {
        struct operand *multi = lelem ? l : r;
        struct operand elem = {.kind = K_ELEM, .pos = multi->pos};
        buf_append_cstr(st->sql, any ? "EXISTS (" : "NOT EXISTS (");
        buf_append_cstr(st->sql,
                        "SELECT 1 FROM (SELECT \"__mm e\".value AS " ELEM_COL " FROM (SELECT ");
        put_each_source(st->sql, multi->field);
        buf_append_cstr(st->sql, " AS \"__mm j\") AS \"__mm s\", json_each(\"__mm s\".\"__mm j\")"
                                 " AS \"__mm e\") WHERE ");
        if (!any)
            buf_append_char(st->sql, '(');
        put_compare(st, base, lelem ? &elem : l, relem ? &elem : r);
        buf_append_cstr(st->sql, any ? ")" : ") IS NOT 1)");
    }
    if (l->email_guard || r->email_guard) {
        buf_append_cstr(st->sql, " AND \"emailVisibility\" = TRUE");
        wrap_from(st->sql, start);
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

/* name.rel.field through single relations: a scalar subquery joining each
 * related collection under an alias no collection can have ("__rel N"),
 * correlated to the outer row by the table name. A single relation gives at
 * most one row, so each comparison's own subquery equals PocketBase's shared
 * LEFT JOIN. Multiple relations, back-relations and @collection joins would
 * need PocketBase's row-sharing semantics across terms: refused for now. */
static int resolve_relation(struct state *st, const struct field *f, struct slice id,
                            size_t name_len, size_t pos, struct operand *o)
{
    struct buf from = BUF_INIT, where = BUF_INIT;
    const struct collection *cur = st->c;
    const struct field *hop = f;
    char prev_alias[32] = "";
    size_t i = name_len; /* at the '.' after the relation's name */
    int rc = -1;
    const char *colon = memchr(id.ptr, ':', id.len);
    size_t end = colon ? (size_t)(colon - id.ptr) : id.len;
    if (colon)
        return fail(st, pos, "modifiers are not supported on relation paths yet");

    for (;;) {
        if (field_is_multiple(hop)) {
            fail(st, pos, "multiple relation \"%s\" cannot be traversed yet", hop->name);
            goto out;
        }
        if (++st->joins > RULE_MAX_JOINS) {
            fail(st, pos, "too many relation joins (max %d)", RULE_MAX_JOINS);
            goto out;
        }
        const struct collection *next =
            st->schema && hop->opt.relation.collection_id
                ? schema_find(st->schema, slice_cstr(hop->opt.relation.collection_id))
                : NULL;
        if (!next) {
            fail(st, pos, "unknown related collection of \"%s\"", hop->name);
            goto out;
        }
        char alias[32];
        snprintf(alias, sizeof alias, "\"__rel %d\"", st->joins);
        buf_append_cstr(&from, from.len ? ", " : " FROM ");
        buf_append_sql_ident(&from, next->name);
        buf_appendf(&from, " AS %s", alias);
        buf_append_cstr(&where, where.len ? " AND " : " WHERE ");
        buf_appendf(&where, "%s.\"id\" = ", alias);
        if (prev_alias[0])
            buf_append_cstr(&where, prev_alias);
        else
            buf_append_sql_ident(&where, cur->name);
        buf_append_char(&where, '.');
        buf_append_sql_ident(&where, hop->name);
        snprintf(prev_alias, sizeof prev_alias, "%s", alias);
        cur = next;

        size_t j = i + 1;
        while (j < end && id.ptr[j] != '.')
            j++;
        struct slice seg = slice_make(id.ptr + i + 1, j - i - 1);
        const struct field *g = find_field(cur, seg);
        if (!g || g->type == FIELD_PASSWORD || hidden_always(seg) ||
            (g->hidden && !st->allow_hidden)) {
            fail(st, pos, "unknown or non-filterable field \"%.*s\"", SHOWN(seg.len), seg.ptr);
            goto out;
        }
        if (j < end) {
            if (g->type != FIELD_RELATION) {
                fail(st, pos, "field \"%.*s\" has no subfields", SHOWN(seg.len), seg.ptr);
                goto out;
            }
            hop = g;
            i = j;
            continue;
        }
        if (field_is_multiple(g) || g->type == FIELD_JSON) {
            fail(st, pos, "field \"%.*s\" cannot be compared through a relation yet",
                 SHOWN(seg.len), seg.ptr);
            goto out;
        }
        struct buf sub = BUF_INIT;
        buf_appendf(&sub, "(SELECT %s.", prev_alias);
        buf_append_sql_ident(&sub, g->name);
        buf_append(&sub, from.ptr, from.len);
        buf_append(&sub, where.ptr, where.len);
        if (cur->type == COLLECTION_AUTH && strcmp(g->name, "email") == 0 && !st->allow_hidden &&
            !st->rq)
            buf_appendf(&sub, " AND %s.\"emailVisibility\" = TRUE", prev_alias);
        buf_append_char(&sub, ')');
        o->kind = K_SUB;
        o->field = g;
        o->sub = buf_steal(&sub);
        rc = 0;
        break;
    }
out:
    buf_free(&from);
    buf_free(&where);
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
        if (slice_eq_cstr(id, "@collection") || slice_starts_with(id, SLICE_LIT("@collection.")))
            return fail(st, pos, "@collection.* fields are not supported yet");
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
        if (st->sort)
            return fail(st, pos, "invalid sort field \"%.*s\"", SHOWN(id.len), id.ptr);
        return resolve_relation(st, f, id, name_len, pos, o);
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
        bool arrayable = f->type == FIELD_SELECT && !path.ptr;
        if (slice_eq_cstr(modifier, "lower")) {
            o->lower = true;
        } else if (slice_eq_cstr(modifier, "length") && arrayable) {
            o->kind = K_LENGTH;
        } else if (slice_eq_cstr(modifier, "each") && arrayable) {
            if (is_multi_select(f))
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
    json_decref(l.value);
    json_decref(r.value);
    free(l.sub);
    free(r.sub);
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
    int rc = parse_group(&st, 0, 0);
    schema_release(schema);
    return rc;
}

int rule_compile(const struct schema *s, const struct collection *c, struct slice rule,
                 const struct rule_request *rq, int64_t now_ms, struct buf *sql, json_t *params,
                 struct filter_error *err)
{
    static const struct rule_request none = {0};
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
        .rq = rq ? rq : &none,
    };
    if (rule.len > FILTER_MAX_LEN)
        return fail(&st, FILTER_MAX_LEN, "rule is too long (max %d bytes)", FILTER_MAX_LEN);
    return parse_group(&st, 0, 0);
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
