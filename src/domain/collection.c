/* Collections: built from PocketBase's collection JSON, validated the way
 * PocketBase validates them (same codes, messages and error paths), and
 * written back in the same shape.
 *
 * A PATCH is handled by merging the body over the previous collection's
 * stored JSON and building from the result, so a create and an update run the
 * same code and every field is built from JSON exactly once. Collections are
 * changed rarely (by superusers); nothing here is on a hot path. */
#include "domain/collection.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/id.h"
#include "core/timefmt.h"
#include "domain/collection_internal.h"
#include "domain/schema.h"

enum {
    NAME_MAX_LEN = 64,
    ID_MAX_LEN = 100,
    TEXT_MAX_SAFE = 5000,
    PASSWORD_MAX_LEN = 71,
    AUTOGEN_MAX_LEN = 1000,
};
#define MAX_SAFE_JSON_INT 9007199254740991LL

/* ---------------------------------------------------------------- helpers */

json_t *coll_err(const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("{s:s, s:s}", "code", code, "message", msg);
}

json_t *coll_err_param(json_t *err, const char *key, json_t *val)
{
    json_t *params = json_object_get(err, "params");
    if (!params) {
        params = json_object();
        json_object_set_new(err, "params", params);
    }
    json_object_set_new(params, key, val);
    return err;
}

json_t *coll_err_required(void)
{
    return coll_err("validation_required", "Cannot be blank.");
}

static json_t *err_invalid_value(void)
{
    return coll_err("validation_invalid_value", "Invalid value.");
}

static json_t *err_length(int64_t min, int64_t max)
{
    json_t *e =
        coll_err("validation_length_out_of_range", "The length must be between %lld and %lld.",
                 (long long)min, (long long)max);
    coll_err_param(e, "min", json_integer(min));
    return coll_err_param(e, "max", json_integer(max));
}

static json_t *err_min(int64_t threshold)
{
    json_t *e = coll_err("validation_min_greater_equal_than_required", "Must be no less than %lld.",
                         (long long)threshold);
    return coll_err_param(e, "threshold", json_integer(threshold));
}

static json_t *err_max(int64_t threshold)
{
    json_t *e = coll_err("validation_max_less_equal_than_required", "Must be no greater than %lld.",
                         (long long)threshold);
    return coll_err_param(e, "threshold", json_integer(threshold));
}

uint32_t coll_crc32(struct slice s)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < s.len; i++) {
        crc ^= (unsigned char)s.ptr[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

void coll_random_alnum(char *out, size_t n)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t filled = 0;
    while (filled < n) {
        unsigned char rnd[64];
        id_random_bytes(rnd, sizeof(rnd));
        /* 248 = 4 * 62: rejecting above it keeps every character uniform. */
        for (size_t i = 0; i < sizeof(rnd) && filled < n; i++)
            if (rnd[i] < 248)
                out[filled++] = alphabet[rnd[i] % 62];
    }
    out[n] = '\0';
}

static unsigned random_below(unsigned n)
{
    uint32_t r;
    uint32_t limit = UINT32_MAX - UINT32_MAX % n;
    do
        id_random_bytes(&r, sizeof(r));
    while (r >= limit);
    return r % n;
}

int coll_autogenerate(const char *pattern, char **out)
{
    struct buf b = BUF_INIT;
    const char *p = pattern;
    while (*p) {
        char set[256];
        size_t nset = 0;
        if (*p == '[') {
            p++;
            while (*p && *p != ']') {
                unsigned char lo = (unsigned char)*p, hi = lo;
                if (p[1] == '-' && p[2] && p[2] != ']') {
                    hi = (unsigned char)p[2];
                    p += 3;
                } else {
                    p++;
                }
                if (hi < lo)
                    goto bad;
                for (unsigned c = lo; c <= hi && nset < sizeof(set); c++)
                    set[nset++] = (char)c;
            }
            if (*p != ']' || nset == 0)
                goto bad;
            p++;
        } else if (isalnum((unsigned char)*p) || *p == '_' || *p == '-') {
            set[nset++] = *p++;
        } else {
            goto bad;
        }
        long count = 1;
        if (*p == '{') {
            char *end;
            count = strtol(p + 1, &end, 10);
            if (end == p + 1 || *end != '}' || count < 1 || count > AUTOGEN_MAX_LEN)
                goto bad;
            p = end + 1;
        }
        if (b.len + (size_t)count > AUTOGEN_MAX_LEN)
            goto bad;
        for (long i = 0; i < count; i++)
            buf_append_char(&b, set[random_below((unsigned)nset)]);
    }
    if (b.len == 0)
        goto bad;
    *out = buf_steal(&b);
    return 0;
bad:
    buf_free(&b);
    return -1;
}

size_t coll_utf8_len(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    return count;
}

/* ------------------------------------------------------------------ names */

static const char *const type_names[] = {
    [FIELD_TEXT] = "text",         [FIELD_NUMBER] = "number",     [FIELD_BOOL] = "bool",
    [FIELD_EMAIL] = "email",       [FIELD_URL] = "url",           [FIELD_DATE] = "date",
    [FIELD_SELECT] = "select",     [FIELD_JSON] = "json",         [FIELD_AUTODATE] = "autodate",
    [FIELD_PASSWORD] = "password", [FIELD_RELATION] = "relation", [FIELD_FILE] = "file",
};

const char *field_type_name(enum field_type t)
{
    core_assert((size_t)t < sizeof(type_names) / sizeof(type_names[0]));
    return type_names[t];
}

static int field_type_parse(const char *s, enum field_type *out)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
        if (strcmp(s, type_names[i]) == 0) {
            *out = (enum field_type)i;
            return 0;
        }
    return -1;
}

bool collection_name_valid(struct slice name)
{
    return coll_ident_valid(name, NAME_MAX_LEN);
}

/* ----------------------------------------------------------------- lookup */

const struct field *collection_field(const struct collection *c, struct slice name)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (slice_eq_cstr(name, c->fields[i].name))
            return &c->fields[i];
    return NULL;
}

bool field_is_multiple(const struct field *f)
{
    switch (f->type) {
    case FIELD_SELECT:
        return f->opt.select.max_select > 1;
    case FIELD_RELATION:
        return f->opt.relation.max_select > 1;
    case FIELD_FILE:
        return f->opt.file.max_select > 1;
    default:
        return false;
    }
}

const struct field *collection_field_by_id(const struct collection *c, struct slice id)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (slice_eq_cstr(id, c->fields[i].id))
            return &c->fields[i];
    return NULL;
}

static struct field *field_ci(struct field *fields, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(fields[i].name, name) == 0)
            return &fields[i];
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void field_free(struct field *f)
{
    free(f->id);
    free(f->name);
    switch (f->type) {
    case FIELD_TEXT:
        if (f->opt.text.re_ready)
            regfree(&f->opt.text.re);
        free(f->opt.text.pattern);
        free(f->opt.text.autogenerate_pattern);
        break;
    case FIELD_SELECT:
        strv_free(f->opt.select.values, f->opt.select.nvalues);
        break;
    case FIELD_EMAIL:
    case FIELD_URL:
        strv_free(f->opt.email_url.only_domains, f->opt.email_url.nonly);
        strv_free(f->opt.email_url.except_domains, f->opt.email_url.nexcept);
        break;
    case FIELD_DATE:
        free(f->opt.date.min);
        free(f->opt.date.max);
        break;
    case FIELD_PASSWORD:
        free(f->opt.password.pattern);
        break;
    case FIELD_RELATION:
        free(f->opt.relation.collection_id);
        break;
    case FIELD_FILE:
        strv_free(f->opt.file.mime_types, f->opt.file.nmime);
        strv_free(f->opt.file.thumbs, f->opt.file.nthumbs);
        break;
    default:
        break;
    }
}

static void collection_free(struct collection *c)
{
    free(c->id);
    free(c->name);
    for (size_t i = 0; i < c->nfields; i++)
        field_free(&c->fields[i]);
    free(c->fields);
    for (size_t i = 0; i < c->nindexes; i++)
        coll_index_free(&c->indexes[i]);
    free(c->indexes);
    for (size_t i = 0; i < 7; i++)
        free(c->rules[i]);
    json_decref(c->auth_options);
    free(c);
}

void collection_retain(struct collection *c)
{
    __atomic_add_fetch(&c->refcount, 1, __ATOMIC_RELAXED);
}

void collection_release(struct collection *c)
{
    if (c && __atomic_sub_fetch(&c->refcount, 1, __ATOMIC_ACQ_REL) == 0)
        collection_free(c);
}

/* ------------------------------------------------------- field from JSON */

/* Option readers: absent or null means the zero value; a value of the wrong
 * JSON type is recorded in ferr under its key. */
static bool rd_bool(json_t *o, const char *key, json_t *ferr)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return false;
    if (!json_is_boolean(v)) {
        json_object_set_new(ferr, key, err_invalid_value());
        return false;
    }
    return json_is_true(v);
}

static bool json_to_int(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= -9.0e15 && d <= 9.0e15 && d == trunc(d)) {
            *out = (int64_t)d;
            return true;
        }
    }
    return false;
}

static int64_t rd_int(json_t *o, const char *key, json_t *ferr)
{
    json_t *v = json_object_get(o, key);
    int64_t n = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_to_int(v, &n))
        json_object_set_new(ferr, key, err_invalid_value());
    return n;
}

static bool rd_num(json_t *o, const char *key, double *out, json_t *ferr)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return false;
    if (!json_is_number(v)) {
        json_object_set_new(ferr, key, err_invalid_value());
        return false;
    }
    *out = json_number_value(v);
    return true;
}

/* A malloc'd copy of a string option; NULL when absent, null or empty. */
static char *rd_str(json_t *o, const char *key, json_t *ferr)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        json_object_set_new(ferr, key, err_invalid_value());
        return NULL;
    }
    if (json_string_length(v) == 0)
        return NULL;
    return xstrndup(json_string_value(v), json_string_length(v));
}

/* A string array option; *out stays NULL when absent or null. */
static void rd_strv(json_t *o, const char *key, char ***out, size_t *n, json_t *ferr)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    *n = 0;
    if (!v || json_is_null(v))
        return;
    if (!json_is_array(v)) {
        json_object_set_new(ferr, key, err_invalid_value());
        return;
    }
    size_t len = json_array_size(v);
    char **arr = xcalloc(len + 1, sizeof(*arr));
    for (size_t i = 0; i < len; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) {
            strv_free(arr, i);
            json_object_set_new(ferr, key, err_invalid_value());
            return;
        }
        arr[i] = xstrndup(json_string_value(s), json_string_length(s));
    }
    *out = arr;
    *n = len;
}

static char *rd_date(json_t *o, const char *key, json_t *ferr)
{
    char *s = rd_str(o, key, ferr);
    int64_t ms;
    if (!s)
        return NULL;
    if (time_parse_pb(s, strlen(s), &ms) < 0) {
        free(s);
        json_object_set_new(ferr, key,
                            coll_err("validation_invalid_date", "Must be a valid date."));
        return NULL;
    }
    s = xrealloc(s, TIMEFMT_PB_LEN + 1);
    time_format_pb(ms, s);
    return s;
}

/* Reads one field object. Returns 0, or -1 with *err set to the error for
 * this field's index (an object of per-key errors or a single error). */
static int field_from_json(json_t *o, struct field *f, json_t **err)
{
    memset(f, 0, sizeof(*f));
    f->name = xstrdup("");
    if (!json_is_object(o)) {
        *err = err_invalid_value();
        return -1;
    }
    json_t *ferr = json_object();
    json_t *jt = json_object_get(o, "type");
    if (!json_is_string(jt) || field_type_parse(json_string_value(jt), &f->type) < 0) {
        json_object_set_new(
            ferr, "type",
            coll_err("validation_invalid_field_type", "Missing or unknown field type."));
        *err = ferr;
        return -1;
    }
    f->id = rd_str(o, "id", ferr);
    char *name = rd_str(o, "name", ferr);
    if (name) {
        free(f->name);
        f->name = name;
    }
    f->system = rd_bool(o, "system", ferr);
    f->hidden = rd_bool(o, "hidden", ferr);
    f->presentable = rd_bool(o, "presentable", ferr);
    if (f->type != FIELD_AUTODATE)
        f->required = rd_bool(o, "required", ferr);
    switch (f->type) {
    case FIELD_TEXT:
        f->opt.text.min = rd_int(o, "min", ferr);
        f->opt.text.max = rd_int(o, "max", ferr);
        f->opt.text.pattern = rd_str(o, "pattern", ferr);
        f->opt.text.primary_key = rd_bool(o, "primaryKey", ferr);
        f->opt.text.autogenerate_pattern = rd_str(o, "autogeneratePattern", ferr);
        break;
    case FIELD_NUMBER:
        f->opt.number.has_min = rd_num(o, "min", &f->opt.number.min, ferr);
        f->opt.number.has_max = rd_num(o, "max", &f->opt.number.max, ferr);
        f->opt.number.only_int = rd_bool(o, "onlyInt", ferr);
        break;
    case FIELD_EMAIL:
    case FIELD_URL:
        rd_strv(o, "onlyDomains", &f->opt.email_url.only_domains, &f->opt.email_url.nonly, ferr);
        rd_strv(o, "exceptDomains", &f->opt.email_url.except_domains, &f->opt.email_url.nexcept,
                ferr);
        break;
    case FIELD_DATE:
        f->opt.date.min = rd_date(o, "min", ferr);
        f->opt.date.max = rd_date(o, "max", ferr);
        break;
    case FIELD_SELECT:
        rd_strv(o, "values", &f->opt.select.values, &f->opt.select.nvalues, ferr);
        f->opt.select.max_select = rd_int(o, "maxSelect", ferr);
        break;
    case FIELD_JSON:
        f->opt.json.max_size = rd_int(o, "maxSize", ferr);
        break;
    case FIELD_AUTODATE:
        f->opt.autodate.on_create = rd_bool(o, "onCreate", ferr);
        f->opt.autodate.on_update = rd_bool(o, "onUpdate", ferr);
        break;
    case FIELD_PASSWORD:
        f->opt.password.min = rd_int(o, "min", ferr);
        f->opt.password.max = rd_int(o, "max", ferr);
        f->opt.password.cost = rd_int(o, "cost", ferr);
        f->opt.password.pattern = rd_str(o, "pattern", ferr);
        break;
    case FIELD_RELATION:
        f->opt.relation.collection_id = rd_str(o, "collectionId", ferr);
        f->opt.relation.cascade_delete = rd_bool(o, "cascadeDelete", ferr);
        f->opt.relation.min_select = rd_int(o, "minSelect", ferr);
        f->opt.relation.max_select = rd_int(o, "maxSelect", ferr);
        break;
    case FIELD_FILE:
        f->opt.file.max_select = rd_int(o, "maxSelect", ferr);
        f->opt.file.max_size = rd_int(o, "maxSize", ferr);
        rd_strv(o, "mimeTypes", &f->opt.file.mime_types, &f->opt.file.nmime, ferr);
        rd_strv(o, "thumbs", &f->opt.file.thumbs, &f->opt.file.nthumbs, ferr);
        f->opt.file.protect = rd_bool(o, "protected", ferr);
        break;
    case FIELD_BOOL:
        break;
    }
    if (json_object_size(ferr)) {
        *err = ferr;
        return -1;
    }
    json_decref(ferr);
    return 0;
}

/* --------------------------------------------------------- field to JSON */

json_t *coll_number_json(double d)
{
    if (d > -9.0e15 && d < 9.0e15 && d == trunc(d))
        return json_integer((json_int_t)d);
    return json_real(d);
}

static json_t *strv_json(char **v, size_t n)
{
    if (!v)
        return json_null();
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *field_to_json(const struct field *f)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:b}", "id", f->id, "name", f->name, "type",
                          field_type_name(f->type), "system", f->system, "hidden", f->hidden,
                          "presentable", f->presentable);
    if (f->type != FIELD_AUTODATE)
        json_object_set_new(o, "required", json_boolean(f->required));
    switch (f->type) {
    case FIELD_TEXT:
        json_object_set_new(o, "min", json_integer(f->opt.text.min));
        json_object_set_new(o, "max", json_integer(f->opt.text.max));
        json_object_set_new(o, "pattern",
                            json_string(f->opt.text.pattern ? f->opt.text.pattern : ""));
        json_object_set_new(
            o, "autogeneratePattern",
            json_string(f->opt.text.autogenerate_pattern ? f->opt.text.autogenerate_pattern : ""));
        json_object_set_new(o, "primaryKey", json_boolean(f->opt.text.primary_key));
        break;
    case FIELD_NUMBER:
        json_object_set_new(
            o, "min", f->opt.number.has_min ? coll_number_json(f->opt.number.min) : json_null());
        json_object_set_new(
            o, "max", f->opt.number.has_max ? coll_number_json(f->opt.number.max) : json_null());
        json_object_set_new(o, "onlyInt", json_boolean(f->opt.number.only_int));
        break;
    case FIELD_EMAIL:
    case FIELD_URL:
        json_object_set_new(o, "onlyDomains",
                            strv_json(f->opt.email_url.only_domains, f->opt.email_url.nonly));
        json_object_set_new(o, "exceptDomains",
                            strv_json(f->opt.email_url.except_domains, f->opt.email_url.nexcept));
        break;
    case FIELD_DATE:
        json_object_set_new(o, "min", json_string(f->opt.date.min ? f->opt.date.min : ""));
        json_object_set_new(o, "max", json_string(f->opt.date.max ? f->opt.date.max : ""));
        break;
    case FIELD_SELECT: {
        json_t *values = strv_json(f->opt.select.values, f->opt.select.nvalues);
        json_object_set_new(o, "values", json_is_null(values) ? json_array() : values);
        if (json_is_null(values))
            json_decref(values);
        json_object_set_new(o, "maxSelect", json_integer(f->opt.select.max_select));
        break;
    }
    case FIELD_JSON:
        json_object_set_new(o, "maxSize", json_integer(f->opt.json.max_size));
        break;
    case FIELD_AUTODATE:
        json_object_set_new(o, "onCreate", json_boolean(f->opt.autodate.on_create));
        json_object_set_new(o, "onUpdate", json_boolean(f->opt.autodate.on_update));
        break;
    case FIELD_PASSWORD:
        json_object_set_new(o, "min", json_integer(f->opt.password.min));
        json_object_set_new(o, "max", json_integer(f->opt.password.max));
        json_object_set_new(o, "cost", json_integer(f->opt.password.cost));
        json_object_set_new(o, "pattern",
                            json_string(f->opt.password.pattern ? f->opt.password.pattern : ""));
        break;
    case FIELD_RELATION:
        json_object_set_new(
            o, "collectionId",
            json_string(f->opt.relation.collection_id ? f->opt.relation.collection_id : ""));
        json_object_set_new(o, "cascadeDelete", json_boolean(f->opt.relation.cascade_delete));
        json_object_set_new(o, "minSelect", json_integer(f->opt.relation.min_select));
        json_object_set_new(o, "maxSelect", json_integer(f->opt.relation.max_select));
        break;
    case FIELD_FILE: {
        json_t *m = strv_json(f->opt.file.mime_types, f->opt.file.nmime);
        json_t *t = strv_json(f->opt.file.thumbs, f->opt.file.nthumbs);
        json_object_set_new(o, "maxSelect", json_integer(f->opt.file.max_select));
        json_object_set_new(o, "maxSize", json_integer(f->opt.file.max_size));
        json_object_set_new(o, "mimeTypes", json_is_null(m) ? json_array() : m);
        json_object_set_new(o, "thumbs", json_is_null(t) ? json_array() : t);
        if (json_is_null(m))
            json_decref(m);
        if (json_is_null(t))
            json_decref(t);
        json_object_set_new(o, "protected", json_boolean(f->opt.file.protect));
        break;
    }
    case FIELD_BOOL:
        break;
    }
    return o;
}

/* ------------------------------------------------------- field settings */

static json_t *check_regex(const char *pattern, regex_t *re, bool *compiled)
{
    regex_t local;
    regex_t *target = re ? re : &local;
    int rc = regcomp(target, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[200];
        regerror(rc, target, msg, sizeof(msg));
        return coll_err("validation_invalid_regex", "Invalid regular expression - %s.", msg);
    }
    if (re)
        *compiled = true;
    else
        regfree(&local);
    return NULL;
}

static bool domain_valid(const char *d)
{
    size_t n = strlen(d), label = 0;
    if (n == 0 || n > 253 || !strchr(d, '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum((unsigned char)c) || (c == '-' && label > 0)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 && d[n - 1] != '-';
}

static void check_domains(json_t *ferr, const char *key, char **v, size_t n, bool must_be_empty)
{
    if (must_be_empty && n > 0) {
        json_object_set_new(ferr, key, coll_err("validation_empty", "Must be blank."));
        return;
    }
    json_t *each = json_object();
    for (size_t i = 0; i < n; i++) {
        if (!domain_valid(v[i])) {
            char k[24];
            snprintf(k, sizeof(k), "%zu", i);
            json_object_set_new(each, k,
                                coll_err("validation_is_domain", "Must be a valid domain."));
        }
    }
    if (json_object_size(each))
        json_object_set_new(ferr, key, each);
    else
        json_decref(each);
}

static json_t *check_text_plain(const struct field *f, const char *v);

/* Settings of one field (PocketBase's ValidateSettings). Returns an object of
 * per-key errors, or NULL. `prevf` is the same field (by id) before an update. */
static json_t *field_check(const struct collection *c, struct field *f, const struct field *prevf)
{
    json_t *ferr = json_object();
    struct slice name = slice_cstr(f->name);
    static const char *const excluded[] = {"null",         "true",           "false", "_rowid_",
                                           "collectionId", "collectionName", "expand"};

    if (strlen(f->id) > ID_MAX_LEN)
        json_object_set_new(ferr, "id", err_length(1, ID_MAX_LEN));

    if (name.len == 0) {
        json_object_set_new(ferr, "name", coll_err_required());
    } else if (name.len > NAME_MAX_LEN) {
        json_object_set_new(ferr, "name", err_length(1, NAME_MAX_LEN));
    } else if (!coll_ident_valid(name, NAME_MAX_LEN)) {
        json_object_set_new(ferr, "name",
                            coll_err("validation_match_invalid", "Must be in a valid format."));
    } else {
        for (size_t i = 0; i < sizeof(excluded) / sizeof(excluded[0]); i++)
            if (strcmp(f->name, excluded[i]) == 0)
                json_object_set_new(ferr, "name",
                                    coll_err("validation_not_in_invalid", "Must not be in list."));
        if (!json_object_get(ferr, "name") && strcasestr(f->name, "_via_"))
            json_object_set_new(
                ferr, "name",
                coll_err("validation_found_via", "The value cannot contain \"_via_\"."));
    }

    switch (f->type) {
    case FIELD_TEXT: {
        int64_t min = f->opt.text.min, max = f->opt.text.max;
        if (f->opt.text.primary_key && !json_object_get(ferr, "name") && strcmp(f->name, "id") != 0)
            json_object_set_new(
                ferr, "name",
                coll_err("validation_in_invalid", "The primary key must be named \"id\"."));
        if (f->opt.text.primary_key) {
            size_t npk = 0;
            for (size_t i = 0; i < c->nfields; i++)
                if (c->fields[i].type == FIELD_TEXT && c->fields[i].opt.text.primary_key)
                    npk++;
            if (npk > 1)
                json_object_set_new(
                    ferr, "primaryKey",
                    coll_err(
                        "validation_unsupported_composite_pk",
                        "Composite PKs are not supported and the collection must have only 1 PK."));
        }
        if (min < 0)
            json_object_set_new(ferr, "min", err_min(0));
        else if (min > MAX_SAFE_JSON_INT)
            json_object_set_new(ferr, "min", err_max(MAX_SAFE_JSON_INT));
        if (max != 0 && max < min)
            json_object_set_new(ferr, "max", err_min(min < 0 ? 0 : min));
        else if (max < 0)
            json_object_set_new(ferr, "max", err_min(0));
        else if (max > MAX_SAFE_JSON_INT)
            json_object_set_new(ferr, "max", err_max(MAX_SAFE_JSON_INT));
        if (f->opt.text.pattern) {
            json_t *e = check_regex(f->opt.text.pattern, &f->opt.text.re, &f->opt.text.re_ready);
            if (e)
                json_object_set_new(ferr, "pattern", e);
        } else if (f->opt.text.primary_key) {
            json_object_set_new(ferr, "pattern", coll_err_required());
        }
        if (f->opt.text.primary_key && f->hidden)
            json_object_set_new(ferr, "hidden", coll_err("validation_empty", "Must be blank."));
        if (f->opt.text.primary_key && !f->required)
            json_object_set_new(ferr, "required", coll_err_required());
        if (f->opt.text.autogenerate_pattern && !json_object_size(ferr)) {
            char *sample;
            if (coll_autogenerate(f->opt.text.autogenerate_pattern, &sample) < 0) {
                json_object_set_new(ferr, "autogeneratePattern",
                                    coll_err("validation_invalid_autogenerate_pattern",
                                             "Only literal characters and [...] classes with {n} "
                                             "repeats are supported."));
            } else {
                json_t *e = check_text_plain(f, sample);
                if (e) {
                    json_decref(e);
                    json_object_set_new(
                        ferr, "autogeneratePattern",
                        coll_err("validation_invalid_autogenerate_pattern_value",
                                 "The provided autogenerate pattern could produce invalid field "
                                 "values, ex.: \"%s\".",
                                 sample));
                }
                free(sample);
            }
        }
        break;
    }
    case FIELD_NUMBER: {
        double min = f->opt.number.min, max = f->opt.number.max;
        bool only_int = f->opt.number.only_int;
        if (only_int && f->opt.number.has_min && min != (double)(int64_t)min)
            json_object_set_new(
                ferr, "min",
                coll_err("validation_only_int_constraint", "Decimal numbers are not allowed."));
        if (only_int && f->opt.number.has_max && max != (double)(int64_t)max)
            json_object_set_new(
                ferr, "max",
                coll_err("validation_only_int_constraint", "Decimal numbers are not allowed."));
        else if (f->opt.number.has_min && f->opt.number.has_max && max != 0 && max < min) {
            json_t *e = coll_err("validation_min_greater_equal_than_required",
                                 "Must be no less than %g.", min);
            json_object_set_new(ferr, "max", coll_err_param(e, "threshold", coll_number_json(min)));
        }
        break;
    }
    case FIELD_EMAIL:
    case FIELD_URL:
        check_domains(ferr, "exceptDomains", f->opt.email_url.except_domains,
                      f->opt.email_url.nexcept, f->opt.email_url.nonly > 0);
        check_domains(ferr, "onlyDomains", f->opt.email_url.only_domains, f->opt.email_url.nonly,
                      f->opt.email_url.nexcept > 0);
        break;
    case FIELD_DATE:
        if (f->opt.date.min && f->opt.date.max && strcmp(f->opt.date.max, f->opt.date.min) < 0)
            json_object_set_new(
                ferr, "max", coll_err("validation_date_out_of_range", "The date is out of range."));
        break;
    case FIELD_SELECT: {
        int64_t max = f->opt.select.nvalues ? (int64_t)f->opt.select.nvalues : 1;
        if (f->opt.select.nvalues == 0)
            json_object_set_new(ferr, "values", coll_err_required());
        if (f->opt.select.max_select < 0)
            json_object_set_new(ferr, "maxSelect", err_min(0));
        else if (f->opt.select.max_select > max)
            json_object_set_new(ferr, "maxSelect", err_max(max));
        break;
    }
    case FIELD_JSON:
        if (f->opt.json.max_size < 0)
            json_object_set_new(ferr, "maxSize", err_min(0));
        else if (f->opt.json.max_size > MAX_SAFE_JSON_INT)
            json_object_set_new(ferr, "maxSize", err_max(MAX_SAFE_JSON_INT));
        break;
    case FIELD_AUTODATE: {
        bool oc = f->opt.autodate.on_create, ou = f->opt.autodate.on_update;
        if (f->system && prevf && prevf->type == FIELD_AUTODATE) {
            if (oc != prevf->opt.autodate.on_create)
                json_object_set_new(ferr, "onCreate",
                                    coll_err("validation_values_mismatch", "Values don't match."));
            if (ou != prevf->opt.autodate.on_update)
                json_object_set_new(ferr, "onUpdate",
                                    coll_err("validation_values_mismatch", "Values don't match."));
        }
        if (!oc && !ou) {
            json_object_set_new(
                ferr, "onCreate",
                coll_err("validation_required", "Either onCreate or onUpdate must be enabled."));
            json_object_set_new(
                ferr, "onUpdate",
                coll_err("validation_required", "Either onCreate or onUpdate must be enabled."));
        }
        break;
    }
    case FIELD_PASSWORD: {
        int64_t min = f->opt.password.min, max = f->opt.password.max, cost = f->opt.password.cost;
        if (min != 0 && min < 1)
            json_object_set_new(ferr, "min", err_min(1));
        else if (min > PASSWORD_MAX_LEN)
            json_object_set_new(ferr, "min", err_max(PASSWORD_MAX_LEN));
        if (max != 0 && max < min)
            json_object_set_new(ferr, "max", err_min(min));
        else if (max < 0)
            json_object_set_new(ferr, "max", err_min(0));
        else if (max > PASSWORD_MAX_LEN)
            json_object_set_new(ferr, "max", err_max(PASSWORD_MAX_LEN));
        if (cost != 0 && cost < 4)
            json_object_set_new(ferr, "cost", err_min(4));
        else if (cost > 31)
            json_object_set_new(ferr, "cost", err_max(31));
        if (f->opt.password.pattern) {
            json_t *e = check_regex(f->opt.password.pattern, NULL, NULL);
            if (e)
                json_object_set_new(ferr, "pattern", e);
        }
        break;
    }
    case FIELD_RELATION: {
        int64_t min = f->opt.relation.min_select, max = f->opt.relation.max_select;
        if (!f->opt.relation.collection_id || !*f->opt.relation.collection_id)
            json_object_set_new(ferr, "collectionId", coll_err_required());
        if (min < 0)
            json_object_set_new(ferr, "minSelect", err_min(0));
        if (min > 0 && max == 0)
            json_object_set_new(ferr, "maxSelect", coll_err_required());
        else if (max < 0 || max < min)
            json_object_set_new(ferr, "maxSelect", err_min(min > 0 ? min : 0));
        else if (max > MAX_SAFE_JSON_INT)
            json_object_set_new(ferr, "maxSelect", err_max(MAX_SAFE_JSON_INT));
        break;
    }
    case FIELD_FILE:
        if (f->opt.file.max_select < 0)
            json_object_set_new(ferr, "maxSelect", err_min(0));
        else if (f->opt.file.max_select > MAX_SAFE_JSON_INT)
            json_object_set_new(ferr, "maxSelect", err_max(MAX_SAFE_JSON_INT));
        if (f->opt.file.max_size < 0)
            json_object_set_new(ferr, "maxSize", err_min(0));
        else if (f->opt.file.max_size > MAX_SAFE_JSON_INT)
            json_object_set_new(ferr, "maxSize", err_max(MAX_SAFE_JSON_INT));
        for (size_t i = 0; i < f->opt.file.nthumbs; i++) {
            /* PocketBase's thumb sizes: WxH, WxHt, WxHb, WxHf, 0xH, Wx0 */
            const char *t = f->opt.file.thumbs[i];
            size_t w = strspn(t, "0123456789");
            size_t h = t[w] == 'x' ? strspn(t + w + 1, "0123456789") : 0;
            const char *rest = t + w + 1 + h;
            bool ok = w > 0 && w <= 6 && h > 0 && h <= 6 &&
                      (!*rest || (strchr("tbf", *rest) && !rest[1])) &&
                      !(strtoll(t, NULL, 10) == 0 && strtoll(t + w + 1, NULL, 10) == 0);
            if (!ok) {
                json_object_set_new(ferr, "thumbs",
                                    coll_err_param(coll_err("validation_invalid_thumb_size",
                                                            "Invalid thumb size format."),
                                                   "index", json_integer((json_int_t)i)));
                break;
            }
        }
        break;
    case FIELD_BOOL:
        break;
    }
    if (json_object_size(ferr))
        return ferr;
    json_decref(ferr);
    return NULL;
}

/* The text rules of PocketBase's TextField.ValidatePlainValue; shared with
 * record.c through collection_text_check. */
static json_t *check_text_plain(const struct field *f, const char *v)
{
    size_t n = strlen(v);
    if ((f->required || f->opt.text.primary_key) && n == 0)
        return coll_err_required();
    if (n == 0)
        return NULL;
    int64_t len = (int64_t)coll_utf8_len(v, n);
    if (f->opt.text.min > 0 && len < f->opt.text.min)
        return coll_err_param(coll_err("validation_min_text_constraint",
                                       "Must be at least %lld character(s).",
                                       (long long)f->opt.text.min),
                              "min", json_integer(f->opt.text.min));
    int64_t max = f->opt.text.max ? f->opt.text.max : TEXT_MAX_SAFE;
    if (len > max)
        return coll_err_param(coll_err("validation_max_text_constraint",
                                       "Must be no more than %lld character(s).", (long long)max),
                              "max", json_integer(max));
    if (f->opt.text.re_ready && regexec(&f->opt.text.re, v, 0, NULL, 0) != 0)
        return coll_err("validation_invalid_format", "Invalid value format.");
    return NULL;
}

json_t *collection_text_check(const struct field *f, const char *value)
{
    return check_text_plain(f, value);
}

/* ------------------------------------------------------ system defaults */

static struct field *fields_push(struct collection *c, size_t at)
{
    c->fields = xrealloc(c->fields, (c->nfields + 1) * sizeof(*c->fields));
    memmove(&c->fields[at + 1], &c->fields[at], (c->nfields - at) * sizeof(*c->fields));
    c->nfields++;
    struct field *f = &c->fields[at];
    memset(f, 0, sizeof(*f));
    return f;
}

static bool field_id_taken(const struct collection *c, const char *id)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (c->fields[i].id && strcmp(c->fields[i].id, id) == 0)
            return true;
    return false;
}

/* PocketBase's default field id: type + CRC-32 of the name, made unique with
 * a numeric suffix. */
static char *default_field_id(const struct collection *c, const struct field *f)
{
    char base[64], id[80];
    snprintf(base, sizeof(base), "%s%u", field_type_name(f->type), coll_crc32(slice_cstr(f->name)));
    snprintf(id, sizeof(id), "%s", base);
    for (int i = 2; i < 1000 && field_id_taken(c, id); i++)
        snprintf(id, sizeof(id), "%s%d", base, i);
    return xstrdup(id);
}

static struct field *find_typed(struct collection *c, const char *name, enum field_type t)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (strcmp(c->fields[i].name, name) == 0 && c->fields[i].type == t)
            return &c->fields[i];
    return NULL;
}

static struct field *add_system(struct collection *c, size_t at, const char *name,
                                enum field_type t)
{
    struct field *f = fields_push(c, at);
    f->name = xstrdup(name);
    f->type = t;
    f->system = true;
    f->id = default_field_id(c, f);
    return f;
}

/* PocketBase's initDefaultFields: adds the system fields a collection of this
 * type must have, or enforces their system flags when present. */
static void apply_default_fields(struct collection *c)
{
    struct field *f = find_typed(c, "id", FIELD_TEXT);
    if (!f) {
        f = add_system(c, 0, "id", FIELD_TEXT);
        f->opt.text.min = f->opt.text.max = ID_LEN;
        f->opt.text.autogenerate_pattern = xstrdup("[a-z0-9]{15}");
    }
    f->system = f->required = f->opt.text.primary_key = true;
    f->hidden = false;
    if (!f->opt.text.pattern)
        f->opt.text.pattern = xstrdup("^[a-z0-9]+$");
    if (c->type != COLLECTION_AUTH)
        return;

    if (!(f = find_typed(c, "password", FIELD_PASSWORD))) {
        f = add_system(c, c->nfields, "password", FIELD_PASSWORD);
        f->opt.password.min = 8;
    }
    f->system = f->hidden = f->required = true;

    if (!(f = find_typed(c, "tokenKey", FIELD_TEXT))) {
        f = add_system(c, c->nfields, "tokenKey", FIELD_TEXT);
        f->opt.text.min = 30;
        f->opt.text.max = 60;
        f->opt.text.autogenerate_pattern = xstrdup("[a-zA-Z0-9]{50}");
    }
    f->system = f->hidden = f->required = true;

    if (!(f = find_typed(c, "email", FIELD_EMAIL))) {
        f = add_system(c, c->nfields, "email", FIELD_EMAIL);
        f->required = true;
    }
    f->system = true;
    f->hidden = false;

    if (!(f = find_typed(c, "emailVisibility", FIELD_BOOL)))
        f = add_system(c, c->nfields, "emailVisibility", FIELD_BOOL);
    f->system = true;
    if (!(f = find_typed(c, "verified", FIELD_BOOL)))
        f = add_system(c, c->nfields, "verified", FIELD_BOOL);
    f->system = true;
}

/* ---------------------------------------------------------- auth options */

static const char *const token_keys[] = {"authToken", "passwordResetToken", "emailChangeToken",
                                         "verificationToken", "fileToken"};
static const char *const option_keys[] = {
    "authAlert",
    "oauth2",
    "passwordAuth",
    "mfa",
    "otp",
    "authToken",
    "passwordResetToken",
    "emailChangeToken",
    "verificationToken",
    "fileToken",
    "verificationTemplate",
    "resetPasswordTemplate",
    "confirmEmailChangeTemplate",
};

static json_t *token_config(int64_t duration)
{
    char secret[51];
    coll_random_alnum(secret, 50);
    return json_pack("{s:s, s:I}", "secret", secret, "duration", (json_int_t)duration);
}

static json_t *template(const char *subject, const char *body)
{
    return json_pack("{s:s, s:s}", "subject", subject, "body", body);
}

/* PocketBase's setDefaultAuthOptions, with Cruder's own template texts. */
static json_t *auth_defaults(void)
{
    json_t *o = json_object();
    json_object_set_new(o, "authAlert",
                        json_pack("{s:b, s:o}", "enabled", 1, "emailTemplate",
                                  template("Login from a new location",
                                           "<p>Hello,</p><p>We noticed a login to your "
                                           "{APP_NAME} account from a new location.</p>")));
    json_object_set_new(o, "oauth2",
                        json_pack("{s:[], s:{s:s, s:s, s:s, s:s}, s:b}", "providers",
                                  "mappedFields", "id", "", "name", "", "username", "", "avatarURL",
                                  "", "enabled", 0));
    json_object_set_new(o, "passwordAuth",
                        json_pack("{s:b, s:[s]}", "enabled", 1, "identityFields", "email"));
    json_object_set_new(
        o, "mfa",
        json_pack("{s:b, s:I, s:s}", "enabled", 0, "duration", (json_int_t)1800, "rule", ""));
    json_object_set_new(
        o, "otp",
        json_pack("{s:b, s:I, s:I, s:o}", "enabled", 0, "duration", (json_int_t)180, "length",
                  (json_int_t)8, "emailTemplate",
                  template("OTP for {APP_NAME}", "<p>Hello,</p><p>Your one-time password is: "
                                                 "<strong>{OTP}</strong></p>")));
    json_object_set_new(o, "authToken", token_config(604800));
    json_object_set_new(o, "passwordResetToken", token_config(1800));
    json_object_set_new(o, "emailChangeToken", token_config(1800));
    json_object_set_new(o, "verificationToken", token_config(259200));
    json_object_set_new(o, "fileToken", token_config(180));
    json_object_set_new(o, "verificationTemplate",
                        template("Verify your {APP_NAME} email",
                                 "<p>Hello,</p><p>Click below to verify your email address.</p>"
                                 "<p><a href=\"{APP_URL}/_/#/auth/confirm-verification/{TOKEN}\">"
                                 "Verify</a></p>"));
    json_object_set_new(o, "resetPasswordTemplate",
                        template("Reset your {APP_NAME} password",
                                 "<p>Hello,</p><p>Click below to reset your password.</p>"
                                 "<p><a href=\"{APP_URL}/_/#/auth/confirm-password-reset/{TOKEN}\">"
                                 "Reset password</a></p>"));
    json_object_set_new(
        o, "confirmEmailChangeTemplate",
        template("Confirm your {APP_NAME} new email address",
                 "<p>Hello,</p><p>Click below to confirm your new email address.</p>"
                 "<p><a href=\"{APP_URL}/_/#/auth/confirm-email-change/{TOKEN}\">"
                 "Confirm new email</a></p>"));
    return o;
}

static bool has_unique_single(const struct collection *c, const char *column)
{
    for (size_t i = 0; i < c->nindexes; i++) {
        const struct collection_index *ix = &c->indexes[i];
        if (ix->unique && ix->ncolumns == 1 && strcasecmp(ix->columns[0], column) == 0)
            return true;
    }
    return false;
}

static json_t *check_range(json_t *o, const char *key, int64_t min, int64_t max, bool required)
{
    int64_t v = 0;
    json_t *j = json_object_get(o, key);
    if (j && !json_is_null(j) && !json_to_int(j, &v))
        return err_invalid_value();
    if (v == 0)
        return required ? coll_err_required() : NULL;
    if (v < min)
        return err_min(min);
    if (v > max)
        return err_max(max);
    return NULL;
}

static void set_nested(json_t *errs, const char *outer, const char *inner, json_t *e)
{
    if (!e)
        return;
    json_t *o = json_object_get(errs, outer);
    if (!o) {
        o = json_object();
        json_object_set_new(errs, outer, o);
    }
    json_object_set_new(o, inner, e);
}

static bool obj_enabled(json_t *opts, const char *key)
{
    return json_is_true(json_object_get(json_object_get(opts, key), "enabled"));
}

/* Merges eff's option objects over the defaults into c->auth_options and
 * validates what Cruder uses: token secrets and durations, the password
 * identity fields, OTP and MFA settings. */
static void auth_options_build(struct collection *c, json_t *eff, json_t *errs)
{
    json_t *opts = auth_defaults();
    for (size_t i = 0; i < sizeof(option_keys) / sizeof(option_keys[0]); i++) {
        json_t *v = json_object_get(eff, option_keys[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_object(v)) {
            json_object_set_new(errs, option_keys[i], err_invalid_value());
            continue;
        }
        json_t *copy = json_deep_copy(v);
        json_object_update_recursive(json_object_get(opts, option_keys[i]), copy);
        json_decref(copy);
    }
    c->auth_options = opts;

    for (size_t i = 0; i < sizeof(token_keys) / sizeof(token_keys[0]); i++) {
        json_t *t = json_object_get(opts, token_keys[i]);
        json_t *secret = json_object_get(t, "secret");
        if (!json_is_string(secret) || json_string_length(secret) == 0)
            set_nested(errs, token_keys[i], "secret", coll_err_required());
        else if (json_string_length(secret) < 30 || json_string_length(secret) > 255)
            set_nested(errs, token_keys[i], "secret", err_length(30, 255));
        set_nested(errs, token_keys[i], "duration", check_range(t, "duration", 10, 94670856, true));
    }
    json_t *otp = json_object_get(opts, "otp");
    if (obj_enabled(opts, "otp")) {
        set_nested(errs, "otp", "duration", check_range(otp, "duration", 10, 86400, true));
        set_nested(errs, "otp", "length", check_range(otp, "length", 4, 1000, true));
    }
    if (obj_enabled(opts, "mfa")) {
        set_nested(errs, "mfa", "duration",
                   check_range(json_object_get(opts, "mfa"), "duration", 10, 86400, true));
        int methods = obj_enabled(opts, "passwordAuth") + obj_enabled(opts, "oauth2") +
                      obj_enabled(opts, "otp");
        if (methods < 2)
            set_nested(errs, "mfa", "enabled",
                       coll_err("validation_mfa_not_enough_auths",
                                "MFA requires at least 2 auth methods to be enabled."));
    }
    if (obj_enabled(opts, "passwordAuth")) {
        json_t *ids = json_object_get(json_object_get(opts, "passwordAuth"), "identityFields");
        json_t *e = NULL;
        if (!json_is_array(ids) || json_array_size(ids) == 0)
            e = coll_err_required();
        for (size_t i = 0; !e && i < json_array_size(ids); i++) {
            json_t *n = json_array_get(ids, i);
            const char *name = json_string_value(n);
            if (!name || !collection_field(c, slice_cstr(name)))
                e = coll_err("validation_missing_field", "Invalid or missing field %s.",
                             name && coll_ident_valid(slice_cstr(name), NAME_MAX_LEN) ? name : "");
            else if (!has_unique_single(c, name))
                e = coll_err("validation_missing_unique_constraint",
                             "The field %s doesn't have a UNIQUE constraint.", name);
            if (e && name)
                coll_err_param(e, "fieldName", json_string(name));
        }
        set_nested(errs, "passwordAuth", "identityFields", e);
    }
}

/* --------------------------------------------------------------- indexes */

/* Appends PocketBase's default unique index on a system field of auth collections. */
static void append_default_index(json_t *list, const struct collection *c, const char *field,
                                 bool where)
{
    char name[128];
    snprintf(name, sizeof(name), "idx_%s_%s", field, c->id);
    name[64] = '\0';
    struct buf b = BUF_INIT;
    buf_appendf(&b, "CREATE UNIQUE INDEX `%s` ON `%s` (`%s`)", name, c->name, field);
    if (where)
        buf_appendf(&b, " WHERE `%s` != ''", field);
    json_array_append_new(list, json_string(b.ptr));
    buf_free(&b);
}

static bool index_same_definition(const struct collection_index *a,
                                  const struct collection_index *b)
{
    if (a->unique != b->unique || a->ncolumns != b->ncolumns ||
        (a->where == NULL) != (b->where == NULL) || (a->where && strcmp(a->where, b->where) != 0))
        return false;
    for (size_t i = 0; i < a->ncolumns; i++)
        if (strcmp(a->columns[i], b->columns[i]) != 0 || a->desc[i] != b->desc[i] ||
            a->nocase[i] != b->nocase[i])
            return false;
    return true;
}

/* Canonicalizes a column to its field's exact name; NULL if no such field. */
static const char *index_field(struct collection *c, const char *column)
{
    struct field *f = field_ci(c->fields, c->nfields, column);
    return f ? f->name : NULL;
}

static json_t *index_unknown_field(const char *column)
{
    json_t *e = coll_err("validation_invalid_index_expression",
                         "Unknown field \"%s\" in the index.", column);
    return coll_err_param(e, "fieldName", json_string(column));
}

/* Parses, checks and stores the index strings; the first error wins, keyed by
 * its position, as in PocketBase. */
static json_t *indexes_build(struct collection *c, json_t *list)
{
    size_t n = json_array_size(list);
    c->indexes = xcalloc(n + 2, sizeof(*c->indexes));
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(list, i), *e = NULL;
        struct collection_index *ix = &c->indexes[c->nindexes];
        if (!json_is_string(s)) {
            e = coll_err("validation_invalid_index_expression", "Invalid CREATE INDEX expression.");
        } else if (coll_index_parse(slice_make(json_string_value(s), json_string_length(s)), ix,
                                    &e) == 0) {
            c->nindexes++;
            for (size_t k = 0; !e && k < ix->ncolumns; k++) {
                const char *canon = index_field(c, ix->columns[k]);
                if (!canon) {
                    e = index_unknown_field(ix->columns[k]);
                } else {
                    free(ix->columns[k]);
                    ix->columns[k] = xstrdup(canon);
                }
            }
            if (!e && ix->where) {
                /* where is `"col" != ''`: the column sits between the quotes. */
                char col[NAME_MAX_LEN + 1];
                size_t len = (size_t)(strchr(ix->where + 1, '"') - (ix->where + 1));
                memcpy(col, ix->where + 1, len);
                col[len] = '\0';
                const char *canon = index_field(c, col);
                if (!canon) {
                    e = index_unknown_field(col);
                } else {
                    free(ix->where);
                    struct buf w = BUF_INIT;
                    buf_appendf(&w, "\"%s\" != ''", canon);
                    ix->where = buf_steal(&w);
                }
            }
            for (size_t k = 0; !e && k + 1 < c->nindexes; k++) {
                if (strcasecmp(c->indexes[k].name, ix->name) == 0)
                    e = coll_err("validation_duplicated_index_name",
                                 "The index name already exists.");
                else if (index_same_definition(&c->indexes[k], ix))
                    e = coll_err("validation_duplicated_index_definition",
                                 "The index definition already exists.");
            }
        }
        if (e) {
            char key[24];
            snprintf(key, sizeof(key), "%zu", i);
            json_t *obj = json_object();
            json_object_set_new(obj, key, e);
            return obj;
        }
    }
    return NULL;
}

/* Whether a list of index strings already has a single-column unique index
 * on column (PocketBase's FindSingleColumnUniqueIndex). */
static bool list_has_unique(json_t *list, const char *column)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *s = json_array_get(list, i), *e = NULL;
        struct collection_index ix;
        if (!json_is_string(s) ||
            coll_index_parse(slice_make(json_string_value(s), json_string_length(s)), &ix, &e) <
                0) {
            json_decref(e);
            continue;
        }
        bool hit = ix.unique && ix.ncolumns == 1 && strcasecmp(ix.columns[0], column) == 0;
        coll_index_free(&ix);
        if (hit)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------ the build */

static const char *const rule_keys[] = {"listRule",   "viewRule", "createRule", "updateRule",
                                        "deleteRule", "authRule", "manageRule"};

static bool str_eq_nullable(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void set_index_err(json_t *obj, size_t i, json_t *e)
{
    char key[24];
    snprintf(key, sizeof(key), "%zu", i);
    json_object_set_new(obj, key, e);
}

/* The "fields" checks, in PocketBase's order; the first failing one is reported. */
static json_t *fields_check(struct collection *c, const struct collection *prev)
{
    for (size_t i = 0; i < c->nfields; i++) {
        for (size_t k = 0; k < i; k++) {
            json_t *e = NULL, *inner = json_object();
            if (strcmp(c->fields[k].id, c->fields[i].id) == 0) {
                e = coll_err("validation_duplicated_field_id",
                             "Duplicated or invalid field id \"%s\".",
                             strlen(c->fields[i].id) <= ID_MAX_LEN ? c->fields[i].id : "");
                json_object_set_new(inner, "id", e);
            } else if (strcasecmp(c->fields[k].name, c->fields[i].name) == 0) {
                e = coll_err("validation_duplicated_field_name",
                             "Duplicated or invalid field name %s.",
                             coll_ident_valid(slice_cstr(c->fields[i].name), NAME_MAX_LEN)
                                 ? c->fields[i].name
                                 : "");
                coll_err_param(e, "fieldName", json_string(c->fields[i].name));
                json_object_set_new(inner, "name", e);
            }
            if (e) {
                json_t *out = json_object();
                set_index_err(out, i, inner);
                return out;
            }
            json_decref(inner);
        }
    }
    if (prev) {
        for (size_t i = 0; i < prev->nfields; i++) {
            const struct field *old = &prev->fields[i];
            if (!old->system)
                continue;
            const struct field *now = collection_field_by_id(c, slice_cstr(old->id));
            if (!now || strcmp(now->name, old->name) != 0)
                return coll_err("validation_system_field_change",
                                "System fields cannot be deleted or renamed.");
        }
        json_t *errs = json_object();
        for (size_t i = 0; i < c->nfields; i++) {
            const struct field *old = collection_field_by_id(prev, slice_cstr(c->fields[i].id));
            if (old && old->type != c->fields[i].type)
                set_index_err(
                    errs, i,
                    coll_err("validation_field_type_change", "Field type cannot be changed."));
        }
        if (json_object_size(errs))
            return errs;
        json_decref(errs);
    }
    json_t *errs = json_object();
    if (c->type == COLLECTION_AUTH) {
        for (size_t i = 0; i < c->nfields; i++)
            if (strcmp(c->fields[i].name, "passwordConfirm") == 0 ||
                strcmp(c->fields[i].name, "oldPassword") == 0)
                set_index_err(
                    errs, i,
                    json_pack("{s:o}", "name",
                              coll_err("validation_reserved_field_name",
                                       "The field name is reserved and cannot be used.")));
        if (json_object_size(errs))
            return errs;
    }
    for (size_t i = 0; i < c->nfields; i++) {
        const struct field *old =
            prev ? collection_field_by_id(prev, slice_cstr(c->fields[i].id)) : NULL;
        json_t *e = field_check(c, &c->fields[i], old);
        if (e)
            set_index_err(errs, i, e);
    }
    if (json_object_size(errs))
        return errs;
    json_decref(errs);
    return NULL;
}

int collection_check_relations(const struct schema *s, const struct collection *c,
                               const struct collection *prev, json_t **errors)
{
    json_t *errs = json_object();
    for (size_t i = 0; i < c->nfields; i++) {
        const struct field *f = &c->fields[i];
        if (f->type != FIELD_RELATION || !f->opt.relation.collection_id)
            continue;
        const char *target = f->opt.relation.collection_id;
        const struct field *old = prev ? collection_field_by_id(prev, slice_cstr(f->id)) : NULL;
        json_t *e = NULL;
        const struct collection *rel = strcmp(target, c->id) == 0 ? c : NULL;
        if (!rel) {
            const struct collection *found = schema_find(s, slice_cstr(target));
            /* schema_find also matches names; PocketBase stores ids only */
            if (found && strcmp(found->id, target) == 0)
                rel = found;
        }
        if (old && old->type == FIELD_RELATION && old->opt.relation.collection_id &&
            strcmp(old->opt.relation.collection_id, target) != 0)
            e = coll_err("validation_field_relation_change",
                         "The relation collection cannot be changed.");
        else if (!rel)
            e = coll_err("validation_field_invalid_relation",
                         "The relation collection doesn't exist.");
        else if (c->type != COLLECTION_VIEW && rel->type == COLLECTION_VIEW)
            e = coll_err("validation_field_non_view_base_relation_collection",
                         "Non view collections are not allowed to have a view relation.");
        if (e)
            set_index_err(errs, i, json_pack("{s:o}", "collectionId", e));
    }
    if (json_object_size(errs)) {
        *errors = json_pack("{s:o}", "fields", errs);
        return -1;
    }
    json_decref(errs);
    return 0;
}

static void read_fields(struct collection *c, json_t *list, json_t *errs)
{
    if (list && !json_is_null(list) && !json_is_array(list)) {
        json_object_set_new(errs, "fields", err_invalid_value());
        return;
    }
    size_t n = json_array_size(list);
    json_t *ferrs = json_object();
    c->fields = xcalloc(n + 8, sizeof(*c->fields));
    for (size_t i = 0; i < n; i++) {
        json_t *e = NULL;
        struct field *f = &c->fields[c->nfields];
        if (field_from_json(json_array_get(list, i), f, &e) < 0) {
            set_index_err(ferrs, i, e);
            field_free(f);
            continue;
        }
        c->nfields++;
        if (!f->id)
            f->id = default_field_id(c, f);
    }
    if (json_object_size(ferrs))
        json_object_set_new(errs, "fields", ferrs);
    else
        json_decref(ferrs);
}

static void read_rule(struct collection *c, json_t *eff, enum collection_rule r,
                      const struct collection *prev, json_t *errs)
{
    const char *key = rule_keys[r];
    json_t *v = json_object_get(eff, key);
    if (!v) {
        if (r == RULE_AUTH)
            c->rules[r] = xstrdup("");
    } else if (json_is_string(v)) {
        c->rules[r] = xstrndup(json_string_value(v), json_string_length(v));
    } else if (!json_is_null(v)) {
        json_object_set_new(errs, key, err_invalid_value());
        return;
    }
    if (r == RULE_MANAGE && c->rules[r] && !c->rules[r][0])
        json_object_set_new(errs, key,
                            coll_err("validation_nil_or_not_empty_required", "Cannot be blank."));
    else if (prev && prev->system && !str_eq_nullable(prev->rules[r], c->rules[r]))
        json_object_set_new(errs, key,
                            coll_err("validation_collection_system_rule_change",
                                     "System collection API rule cannot be changed."));
}

static bool read_date(json_t *eff, const char *key, char out[32])
{
    json_t *v = json_object_get(eff, key);
    int64_t ms;
    if (!json_is_string(v) || time_parse_pb(json_string_value(v), json_string_length(v), &ms) < 0)
        return false;
    time_format_pb(ms, out);
    return true;
}

static struct collection *build(json_t *body, const struct collection *prev, bool system_ok,
                                json_t **errors)
{
    json_t *errs = json_object();
    struct collection *c = xcalloc(1, sizeof(*c));
    c->refcount = 1;
    json_t *eff;
    if (!json_is_object(body)) {
        json_decref(errs);
        *errors = json_object();
        collection_free(c);
        return NULL;
    }
    if (prev) {
        eff = collection_to_json_stored(prev);
        json_object_update_recursive(eff, body);
    } else {
        eff = json_incref(body);
    }

    /* type */
    json_t *jt = json_object_get(eff, "type");
    const char *ts = json_is_string(jt) ? json_string_value(jt) : NULL;
    c->type = COLLECTION_BASE;
    if (jt && !json_is_null(jt) && !(ts && (!*ts || strcmp(ts, "base") == 0))) {
        if (ts && strcmp(ts, "auth") == 0)
            c->type = COLLECTION_AUTH;
        else if (ts && strcmp(ts, "view") == 0)
            json_object_set_new(errs, "type",
                                coll_err("validation_view_not_supported",
                                         "View collections are not supported yet."));
        else
            json_object_set_new(errs, "type",
                                coll_err("validation_in_invalid", "Must be a valid value."));
    }
    if (prev && !json_object_get(errs, "type") && c->type != prev->type)
        json_object_set_new(
            errs, "type",
            coll_err("validation_collection_type_change", "Collection type cannot be changed."));

    /* name */
    json_t *jn = json_object_get(eff, "name");
    c->name = xstrndup(json_is_string(jn) ? json_string_value(jn) : "",
                       json_is_string(jn) ? json_string_length(jn) : 0);
    struct slice name = slice_cstr(c->name);
    if (jn && !json_is_null(jn) && !json_is_string(jn))
        json_object_set_new(errs, "name", err_invalid_value());
    else if (name.len == 0)
        json_object_set_new(errs, "name", coll_err_required());
    else if (name.len > NAME_MAX_LEN)
        json_object_set_new(errs, "name", err_length(1, NAME_MAX_LEN));
    else if (strcasestr(c->name, "_via_"))
        json_object_set_new(
            errs, "name", coll_err("validation_found_via", "The value cannot contain \"_via_\"."));
    else if (!collection_name_valid(name))
        json_object_set_new(errs, "name",
                            coll_err("validation_match_invalid", "Must be in a valid format."));
    else if (prev && prev->system && strcmp(prev->name, c->name) != 0)
        json_object_set_new(errs, "name",
                            coll_err("validation_collection_system_name_change",
                                     "System collection name cannot be changed."));
    else if (c->name[0] == '_' && !system_ok && !(prev && strcmp(prev->name, c->name) == 0))
        json_object_set_new(
            errs, "name",
            coll_err("validation_collection_name_invalid",
                     "Names starting with \"_\" are reserved for system collections."));

    /* id */
    json_t *ji = json_object_get(eff, "id");
    if (prev) {
        c->id = xstrdup(prev->id);
        if (!json_is_string(ji) || strcmp(json_string_value(ji), prev->id) != 0)
            json_object_set_new(errs, "id",
                                coll_err("validation_values_mismatch", "Values don't match."));
    } else if (!ji || json_is_null(ji) || (json_is_string(ji) && json_string_length(ji) == 0)) {
        char id[32];
        struct buf tn = BUF_INIT;
        buf_appendf(&tn, "%s%s", c->type == COLLECTION_AUTH ? "auth" : "base", c->name);
        snprintf(id, sizeof(id), "pbc_%u", coll_crc32(buf_slice(&tn)));
        buf_free(&tn);
        c->id = xstrdup(id);
    } else {
        c->id = xstrndup(json_is_string(ji) ? json_string_value(ji) : "",
                         json_is_string(ji) ? json_string_length(ji) : 0);
        size_t len = strlen(c->id);
        bool word = len > 0;
        for (size_t i = 0; i < len; i++)
            word = word && (isalnum((unsigned char)c->id[i]) || c->id[i] == '_');
        if (!json_is_string(ji))
            json_object_set_new(errs, "id", err_invalid_value());
        else if (len > ID_MAX_LEN)
            json_object_set_new(errs, "id", err_length(1, ID_MAX_LEN));
        else if (!word)
            json_object_set_new(errs, "id",
                                coll_err("validation_match_invalid", "Must be in a valid format."));
    }

    /* system */
    json_t *js = json_object_get(eff, "system");
    if (js && !json_is_null(js) && !json_is_boolean(js))
        json_object_set_new(errs, "system", err_invalid_value());
    if (prev) {
        c->system = prev->system;
        if (json_is_boolean(js) && json_is_true(js) != prev->system)
            json_object_set_new(errs, "system",
                                coll_err("validation_collection_system_flag_change",
                                         "System collection state cannot be changed."));
    } else {
        c->system = system_ok && json_is_true(js);
    }

    /* created / updated */
    char now[32];
    time_format_pb(time_now_ms(), now);
    if (prev) {
        memcpy(c->created, prev->created, sizeof(c->created));
        memcpy(c->updated, now, sizeof(c->updated));
    } else {
        if (!read_date(eff, "created", c->created))
            memcpy(c->created, now, sizeof(c->created));
        if (!read_date(eff, "updated", c->updated))
            memcpy(c->updated, now, sizeof(c->updated));
    }

    /* fields */
    read_fields(c, json_object_get(eff, "fields"), errs);
    bool fields_ok = !json_object_get(errs, "fields");
    if (fields_ok) {
        apply_default_fields(c);
        json_t *e = fields_check(c, prev);
        if (e)
            json_object_set_new(errs, "fields", e);
    }

    /* rules */
    for (int r = RULE_LIST; r <= RULE_DELETE; r++)
        read_rule(c, eff, (enum collection_rule)r, prev, errs);
    if (c->type == COLLECTION_AUTH) {
        read_rule(c, eff, RULE_AUTH, prev, errs);
        read_rule(c, eff, RULE_MANAGE, prev, errs);
    }

    /* indexes */
    json_t *jx = json_object_get(eff, "indexes");
    if (jx && !json_is_null(jx) && !json_is_array(jx)) {
        json_object_set_new(errs, "indexes", err_invalid_value());
    } else {
        json_t *list = jx && json_is_array(jx) ? json_copy(jx) : json_array();
        if (c->type == COLLECTION_AUTH && fields_ok && collection_name_valid(name)) {
            if (!list_has_unique(list, "tokenKey"))
                append_default_index(list, c, "tokenKey", false);
            if (!list_has_unique(list, "email"))
                append_default_index(list, c, "email", true);
        }
        json_t *e = fields_ok ? indexes_build(c, list) : NULL;
        if (e)
            json_object_set_new(errs, "indexes", e);
        json_decref(list);
    }

    /* auth options */
    if (c->type == COLLECTION_AUTH)
        auth_options_build(c, eff, errs);

    json_decref(eff);
    if (json_object_size(errs)) {
        *errors = errs;
        collection_free(c);
        return NULL;
    }
    json_decref(errs);
    return c;
}

struct collection *collection_from_json(json_t *body, const struct collection *prev,
                                        json_t **errors)
{
    return build(body, prev, false, errors);
}

struct collection *collection_from_json_system(json_t *body, const struct collection *prev,
                                               json_t **errors)
{
    return build(body, prev, true, errors);
}

/* ------------------------------------------------------------ to JSON */

static json_t *to_json(const struct collection *c, bool secrets)
{
    static const char *const type_str[] = {"base", "auth", "view"};
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s}", "id", c->id, "name", c->name, "type",
                          type_str[c->type], "system", c->system, "created", c->created, "updated",
                          c->updated);
    json_t *fields = json_array();
    for (size_t i = 0; i < c->nfields; i++)
        json_array_append_new(fields, field_to_json(&c->fields[i]));
    json_object_set_new(o, "fields", fields);
    json_t *indexes = json_array();
    for (size_t i = 0; i < c->nindexes; i++)
        json_array_append_new(indexes, json_string(c->indexes[i].sql));
    json_object_set_new(o, "indexes", indexes);
    int nrules = c->type == COLLECTION_AUTH ? 7 : 5;
    for (int r = 0; r < nrules; r++)
        json_object_set_new(o, rule_keys[r], c->rules[r] ? json_string(c->rules[r]) : json_null());
    if (c->type == COLLECTION_AUTH && c->auth_options) {
        json_t *opts = json_deep_copy(c->auth_options);
        if (!secrets) {
            for (size_t i = 0; i < sizeof(token_keys) / sizeof(token_keys[0]); i++)
                json_object_del(json_object_get(opts, token_keys[i]), "secret");
            json_t *providers = json_object_get(json_object_get(opts, "oauth2"), "providers");
            for (size_t i = 0; i < json_array_size(providers); i++)
                json_object_del(json_array_get(providers, i), "clientSecret");
        }
        json_object_update(o, opts);
        json_decref(opts);
    }
    return o;
}

json_t *collection_to_json(const struct collection *c)
{
    return to_json(c, false);
}

json_t *collection_to_json_stored(const struct collection *c)
{
    return to_json(c, true);
}
