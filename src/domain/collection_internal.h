/* Helpers shared by collection.c, index.c and record.c; not part of the
 * public API. Error objects are PocketBase's {"code","message"[,"params"]}
 * with the message already rendered and sentenized as PocketBase sends it. */
#ifndef DOMAIN_COLLECTION_INTERNAL_H
#define DOMAIN_COLLECTION_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/slice.h"
#include "domain/collection.h"

/* A new error object; message is a printf format (never client text). */
__attribute__((format(printf, 2, 3))) json_t *coll_err(const char *code, const char *fmt, ...);
/* Adds params[key] = val (val is stolen) to an error object; returns err. */
json_t *coll_err_param(json_t *err, const char *key, json_t *val);
/* The standard ozzo "Cannot be blank." error. */
json_t *coll_err_required(void);

/* IEEE CRC-32, PocketBase's id checksum. */
uint32_t coll_crc32(struct slice s);

/* Fills out[0..n) with random [A-Za-z0-9] and a NUL at out[n]. */
void coll_random_alnum(char *out, size_t n);
/* Generates a value from an autogenerate pattern made of literal characters
 * and [...] classes, each optionally followed by {n}. 0, or -1 if the pattern
 * uses anything else; *out is malloc'd on success. */
int coll_autogenerate(const char *pattern, char **out);

/* Number of UTF-8 code points (jansson strings are valid UTF-8). */
size_t coll_utf8_len(const char *s, size_t n);

/* Parses one CREATE INDEX statement into *out (owned by out; free with
 * coll_index_free). Columns are not checked against fields here. On failure
 * returns -1 and sets *err to a PocketBase error object (caller owns). */
int coll_index_parse(struct slice sql, struct collection_index *out, json_t **err);
void coll_index_free(struct collection_index *ix);

/* PocketBase's text value rules (required, min, max default 5000, pattern)
 * on a NUL-terminated value; NULL if fine, else an error object (caller owns). */
json_t *collection_text_check(const struct field *f, const char *value);

/* True for [A-Za-z_][A-Za-z0-9_]* of 1..max bytes. */
bool coll_ident_valid(struct slice s, size_t max);

/* A JSON integer when d is a whole number that JSON readers keep exact,
 * else a real. */
json_t *coll_number_json(double d);

#endif
