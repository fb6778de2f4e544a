/* CREATE INDEX statements of collections, parsed into parts.
 *
 * The client's text never reaches SQL: the store rebuilds the statement from
 * the parsed name, columns, sort orders and collation. So the parser accepts
 * only what it can represent exactly and refuses everything else (expressions,
 * comments, schema names, partial indexes other than the auth email one).
 * Input is a client string of any length; the scan is linear and bounded by it. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "domain/collection_internal.h"

enum tok_type { TOK_EOF, TOK_WORD, TOK_QUOTED, TOK_STRING, TOK_PUNCT, TOK_BAD };

struct tok {
    enum tok_type type;
    struct slice text; /* a quoted identifier's content, without the quotes */
};

struct lexer {
    const char *p, *end;
};

static bool is_word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static struct tok lex_next(struct lexer *lx)
{
    while (lx->p < lx->end && *lx->p && strchr(" \t\r\n\f\v", *lx->p))
        lx->p++;
    struct tok t = {TOK_EOF, {lx->p, 0}};
    if (lx->p >= lx->end)
        return t;
    const char *s = lx->p;
    char c = *s;
    if (is_word_char(c)) {
        while (lx->p < lx->end && is_word_char(*lx->p))
            lx->p++;
        t.type = TOK_WORD;
        t.text = slice_make(s, (size_t)(lx->p - s));
        return t;
    }
    if (c == '`' || c == '"' || c == '[' || c == '\'') {
        char close = c == '[' ? ']' : c;
        const char *q = memchr(s + 1, close, (size_t)(lx->end - s - 1));
        if (!q) {
            t.type = TOK_BAD;
            return t;
        }
        t.type = c == '\'' ? TOK_STRING : TOK_QUOTED;
        t.text = slice_make(s + 1, (size_t)(q - s - 1));
        lx->p = q + 1;
        /* A doubled quote would be an escaped one: not an identifier we take. */
        if (lx->p < lx->end && *lx->p == close && c != '[')
            t.type = TOK_BAD;
        return t;
    }
    if ((c == '!' || c == '<') && lx->end - s >= 2 && (s[1] == '=' || (c == '<' && s[1] == '>'))) {
        lx->p += 2;
        t.type = TOK_PUNCT;
        t.text = slice_make(s, 2);
        return t;
    }
    if (c == '(' || c == ')' || c == ',' || c == ';') {
        lx->p++;
        t.type = TOK_PUNCT;
        t.text = slice_make(s, 1);
        return t;
    }
    t.type = TOK_BAD;
    return t;
}

static bool tok_kw(struct tok t, const char *kw)
{
    return t.type == TOK_WORD && slice_case_eq(t.text, slice_cstr(kw));
}

static bool tok_punct(struct tok t, const char *p)
{
    return t.type == TOK_PUNCT && slice_eq_cstr(t.text, p);
}

static bool tok_is_name(struct tok t)
{
    return t.type == TOK_WORD || t.type == TOK_QUOTED;
}

bool coll_ident_valid(struct slice s, size_t max)
{
    if (s.len == 0 || s.len > max || !(isalpha((unsigned char)s.ptr[0]) || s.ptr[0] == '_'))
        return false;
    for (size_t i = 1; i < s.len; i++)
        if (!is_word_char(s.ptr[i]))
            return false;
    return true;
}

static bool index_name_valid(struct slice s)
{
    if (s.len == 0 || s.len > 64)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!is_word_char(s.ptr[i]))
            return false;
    return true;
}

void coll_index_free(struct collection_index *ix)
{
    if (!ix)
        return;
    free(ix->sql);
    free(ix->name);
    for (size_t i = 0; i < ix->ncolumns; i++)
        free(ix->columns[i]);
    free(ix->columns);
    free(ix->desc);
    free(ix->nocase);
    free(ix->where);
    memset(ix, 0, sizeof(*ix));
}

static json_t *invalid_expr(void)
{
    return coll_err("validation_invalid_index_expression", "Invalid CREATE INDEX expression.");
}

static void add_column(struct collection_index *ix, struct slice name, bool desc, bool nocase)
{
    size_t n = ix->ncolumns + 1;
    ix->columns = xrealloc(ix->columns, n * sizeof(*ix->columns));
    ix->desc = xrealloc(ix->desc, n * sizeof(*ix->desc));
    ix->nocase = xrealloc(ix->nocase, n * sizeof(*ix->nocase));
    ix->columns[n - 1] = xstrndup(name.ptr, name.len);
    ix->desc[n - 1] = desc;
    ix->nocase[n - 1] = nocase;
    ix->ncolumns = n;
}

/* Parses "( col [COLLATE x] [ASC|DESC], ... )" after the opening parenthesis. */
static int parse_columns(struct lexer *lx, struct collection_index *ix)
{
    for (;;) {
        struct tok t = lex_next(lx);
        if (!tok_is_name(t) || !coll_ident_valid(t.text, 64))
            return -1;
        struct slice name = t.text;
        bool desc = false, nocase = false;
        t = lex_next(lx);
        if (tok_kw(t, "COLLATE")) {
            struct tok coll = lex_next(lx);
            if (tok_kw(coll, "NOCASE"))
                nocase = true;
            else if (!tok_kw(coll, "BINARY"))
                return -1;
            t = lex_next(lx);
        }
        if (tok_kw(t, "ASC") || tok_kw(t, "DESC")) {
            desc = tok_kw(t, "DESC");
            t = lex_next(lx);
        }
        add_column(ix, name, desc, nocase);
        if (tok_punct(t, ")"))
            return 0;
        if (!tok_punct(t, ","))
            return -1;
    }
}

int coll_index_parse(struct slice sql, struct collection_index *out, json_t **err)
{
    struct collection_index ix = {0};
    struct lexer lx = {sql.ptr, sql.ptr + sql.len};
    json_t *e = NULL;

    if (!tok_kw(lex_next(&lx), "CREATE"))
        goto invalid;
    struct tok t = lex_next(&lx);
    if (tok_kw(t, "UNIQUE")) {
        ix.unique = true;
        t = lex_next(&lx);
    }
    if (!tok_kw(t, "INDEX"))
        goto invalid;
    t = lex_next(&lx);
    if (tok_kw(t, "IF")) {
        struct lexer save = lx;
        /* "IF" may also be the index's own name: only "IF NOT EXISTS" is the clause. */
        if (tok_kw(lex_next(&lx), "NOT")) {
            if (!tok_kw(lex_next(&lx), "EXISTS"))
                goto invalid;
            t = lex_next(&lx);
        } else {
            lx = save;
        }
    }
    if (!tok_is_name(t) || !index_name_valid(t.text))
        goto invalid;
    ix.name = xstrndup(t.text.ptr, t.text.len);
    if (!tok_kw(lex_next(&lx), "ON"))
        goto invalid;
    t = lex_next(&lx);
    if (!tok_is_name(t) || !coll_ident_valid(t.text, 255))
        goto invalid;
    if (!tok_punct(lex_next(&lx), "(") || parse_columns(&lx, &ix) < 0)
        goto invalid;
    t = lex_next(&lx);
    if (tok_kw(t, "WHERE")) {
        struct tok col = lex_next(&lx), op = lex_next(&lx), lit = lex_next(&lx);
        struct lexer rest = lx;
        struct tok end = lex_next(&rest);
        if (tok_punct(end, ";"))
            end = lex_next(&rest);
        if (!tok_is_name(col) || !coll_ident_valid(col.text, 64) ||
            !(tok_punct(op, "!=") || tok_punct(op, "<>")) || lit.type != TOK_STRING ||
            lit.text.len != 0 || end.type != TOK_EOF) {
            e = coll_err("validation_invalid_index_expression",
                         "Partial indexes are not supported yet.");
            goto fail;
        }
        struct buf w = BUF_INIT;
        buf_append_char(&w, '"');
        buf_append_slice(&w, col.text);
        buf_append_cstr(&w, "\" != ''");
        ix.where = buf_steal(&w);
        lx = rest;
        t = (struct tok){TOK_EOF, {lx.p, 0}};
    }
    if (tok_punct(t, ";"))
        t = lex_next(&lx);
    if (t.type != TOK_EOF)
        goto invalid;
    ix.sql = xstrndup(sql.ptr, sql.len);
    *out = ix;
    return 0;

invalid:
    e = invalid_expr();
fail:
    coll_index_free(&ix);
    *err = e;
    return -1;
}
