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
 * Literals never reach SQL text: they become bound parameters. Field names are
 * checked against the collection and emitted double-quoted. Comparisons are
 * emitted in an index-friendly form ("col" = ?) so SQLite's planner can use the
 * collection's indexes. Input length and nesting depth are bounded. */
#ifndef DOMAIN_FILTER_H
#define DOMAIN_FILTER_H

#include <jansson.h>
#include <stdint.h>

#include "core/slice.h"
#include "domain/collection.h"

enum { FILTER_MAX_LEN = 4096, FILTER_MAX_DEPTH = 32, FILTER_MAX_TERMS = 256 };

struct filter_error {
    size_t position;   /* byte offset in the expression where it went wrong */
    char message[160]; /* e.g. "unknown field \"titel\"", "expected an operator" */
};

/* Compiles expr against c. On success returns 0, appends a boolean SQL
 * expression to *sql and the values its ?s bind to, in order, to params (a JSON
 * array the caller owns). now_ms fixes @now and the other macros. On failure
 * returns -1, fills *err and leaves sql/params in an unspecified state. */
int filter_compile(const struct collection *c, struct slice expr, int64_t now_ms,
                   struct buf *sql, json_t *params, struct filter_error *err);

/* Compiles a sort list ("-created,title,+id", "@random") to an ORDER BY body
 * (without the keywords) appended to *sql. 0, or -1 with *err. */
int sort_compile(const struct collection *c, struct slice sort, struct buf *sql,
                 struct filter_error *err);

#endif
