/* PocketBase's filter language, compiled to parameterised SQL.
 *
 *   expr    := or
 *   or      := and ("||" and)*
 *   and     := unary ("&&" unary)*
 *   unary   := "(" expr ")" | operand op operand
 *   op      := = != > >= < <= ~ !~  and their any-of forms ?= ?!= ?> ?>= ?< ?<= ?~ ?!~
 *   operand := field name | 'string' | "string" | number | true | false | null
 *            | @now @second @minute @hour @day @month @year @weekday
 *            | @yesterday @tomorrow @todayStart @todayEnd @monthStart @monthEnd
 *            | @yearStart @yearEnd
 *
 * Operands also take fexpr's forms: numbers may be negative ("-1.5"), text
 * escapes only its own quote ('it\'s'), `// ...` comments run to the end of
 * the line. Fields take a json path (data.a.0.b, json fields only) and one
 * modifier: `:lower`, and on select fields `:each` and `:length`.
 *
 * Semantics, as PocketBase's tools/search/filter.go:
 * - = and != treat NULL and '' as one "empty" value (`title = ''` matches
 *   NULL too); != is written IS NOT so that NULL columns compare as values.
 *   json operands compare with IS / IS NOT (no such normalisation).
 * - ~ and !~ are LIKE / NOT LIKE, case-insensitive for ASCII; a bound value
 *   without its own unescaped % is wrapped as %value% with its \ % _ escaped.
 * - a multiple select (maxSelect > 1) holds a JSON array. Bare, the plain
 *   operators compare its stored JSON text (PocketBase does the same); the
 *   any-of forms (?=, ...) match when at least one element matches. With
 *   `:each` the plain operators require every element to match. An empty
 *   array counts as one NULL element, so `tags:each = ''` and `tags ?= ''`
 *   match it. `tags:length` is the element count.
 * - true/false/null are fixed SQL (1, 0, NULL) unless a field has that name.
 * - the auth `email` field only matches where emailVisibility is on, unless
 *   the options allow hidden fields (superusers); hidden fields are not
 *   filterable otherwise, and password fields never.
 * Relation paths, back-relations and @collection joins: see rule_compile
 * and filter.c (PocketBase's shared joins and multi-match). Not supported
 * yet: functions (geoDistance, strftime).
 *
 * Literals and macro values never reach SQL text: they become bound
 * parameters (JSON strings, integers for integral numbers, reals otherwise),
 * as does a json path. Field names are checked against the collection and
 * emitted double-quoted. Comparisons are emitted in an index-friendly form
 * ("col" = ?) so SQLite's planner can use the collection's indexes. Input
 * length, nesting depth and comparison count are bounded. */
#ifndef DOMAIN_FILTER_H
#define DOMAIN_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/slice.h"
#include "domain/collection.h"

enum { FILTER_MAX_LEN = 4096, FILTER_MAX_DEPTH = 32, FILTER_MAX_TERMS = 256 };

struct filter_error {
    size_t position;   /* byte offset in the expression where it went wrong */
    char message[160]; /* e.g. "unknown field \"titel\"", "expected an operator" */
    bool in_rule;      /* filter_compile_ruled: the rule failed, not the filter */
};

struct filter_options {
    bool allow_hidden;  /* superusers: hidden fields and every email are filterable */
    bool allow_request; /* filter_compile_ruled: the filter may name @request.* (superusers) */
};

/* Compiles expr against c. On success returns 0, appends a boolean SQL
 * expression to *sql and the values its ?s bind to, in order, to params (a JSON
 * array the caller owns). now_ms fixes @now and the other macros. On failure
 * returns -1, fills *err and leaves sql/params in an unspecified state. */
int filter_compile(const struct collection *c, struct slice expr, int64_t now_ms, struct buf *sql,
                   json_t *params, struct filter_error *err);

/* Compiles a sort list ("-created,title,+id", "@random") to an ORDER BY body
 * (without the keywords) appended to *sql. 0, or -1 with *err. */
/* filter_compile with options; opts may be NULL (all false). */
int filter_compile_opts(const struct collection *c, struct slice expr, int64_t now_ms,
                        const struct filter_options *opts, struct buf *sql, json_t *params,
                        struct filter_error *err);

int sort_compile(const struct collection *c, struct slice sort, struct buf *sql,
                 struct filter_error *err);
/* sort_compile with options (opts may be NULL: the defaults of sort_compile). */
int sort_compile_opts(const struct collection *c, struct slice sort,
                      const struct filter_options *opts, struct buf *sql, struct filter_error *err);

/* ---- API rules ----
 *
 * A rule is a filter expression that may also name the request:
 * @request.auth.<field> (the caller's auth record; .id is "" when anonymous,
 * .collectionName / .collectionId of its collection), @request.body.<field>,
 * @request.query.<name>, @request.headers.<name> (lowercase, '-' as '_'),
 * @request.method, @request.context ("default", "expand", ...), and
 * @collection.<name>.<field> joins; record fields may traverse relations
 * (author.team.name) and back-relations (comments_via_post.text); the
 * modifiers :isset, :changed, :length, :each and :lower apply as PocketBase
 * documents them. Request values become bound parameters like literals. */

struct schema;

struct rule_request {
    json_t *
        auth; /* the caller's auth record with collectionId and collectionName; NULL if anonymous */
    json_t *body;        /* the submitted fields (create/update), NULL otherwise */
    json_t *query;       /* query parameters as an object of strings */
    json_t *headers;     /* request headers as an object, names normalised as above */
    const char *method;  /* "GET", "POST", ... */
    const char *context; /* "default" unless said otherwise */
};

enum {
    RULE_MAX_JOINS = 8,       /* relation hops and @collection joins per expression */
    FILTER_MAX_REL_DEPTH = 6, /* relation hops in one path (PocketBase's maxNestedRels) */
    FILTER_MAX_JOINS = 24,    /* SQL joins shared by the terms of one expression */
};

/* Compiles a rule of collection c to a boolean SQL expression over c's table
 * (columns qualified so it can be combined with a user filter and used in a
 * store_guard), appending to *sql and binding to params as filter_compile
 * does. `s` resolves related collections. 0, or -1 with *err (a syntax error,
 * an unknown field, or a rule past the complexity limits). */
int rule_compile(const struct schema *s, const struct collection *c, struct slice rule,
                 const struct rule_request *rq, int64_t now_ms, struct buf *sql, json_t *params,
                 struct filter_error *err);

/* Compiles a rule of c (may be empty: none) and the caller's filter (may be
 * empty: none) into one boolean SQL expression, "(rule) AND (filter)" with
 * each parsed whole, appended to *sql and bound to params as rule_compile
 * does. The two share their relation joins, as PocketBase builds them into
 * one query: `tags.name ?= 'a'` in the rule and `tags.kind ?= 'b'` in the
 * filter need one related tag with both. The rule resolves as rule_compile
 * (rq may be NULL); the filter resolves hidden fields per
 * opts->allow_hidden and @request.* against rq only with opts->allow_request.
 * Appends nothing when both are empty. 0, or -1 with *err, err->in_rule
 * telling whose text err->position points into. */
int filter_compile_ruled(const struct schema *s, const struct collection *c, struct slice rule,
                         const struct rule_request *rq, struct slice filter,
                         const struct filter_options *opts, int64_t now_ms, struct buf *sql,
                         json_t *params, struct filter_error *err);

#endif
