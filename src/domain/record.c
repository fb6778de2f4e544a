/* Record validation: turns what a client sent (JSON, or multipart where every
 * value is a string) into the full row to store, with PocketBase's coercions,
 * modifiers, zero values, error codes and messages.
 *
 * Runs once per record write, on whichever thread validates writes; it does
 * no I/O. Password values arrive already hashed: hashing is too slow for here. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/id.h"
#include "core/timefmt.h"
#include "domain/auth.h"
#include "domain/collection.h"
#include "domain/collection_internal.h"

enum {
    JSON_DEFAULT_MAX_SIZE = 1 << 20,
    PASSWORD_DEFAULT_MAX = 71,
    URL_MAX_LEN = 2083,
    RELATION_ID_MAX_LEN = 100, /* a record id's maximum, as collection.c checks ids */
};

/* ------------------------------------------------------------ coercions */

/* Go's strconv.FormatFloat(f, 'g'-ish shortest): the fewest digits that read back. */
static void format_double(double d, char *out, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

/* PocketBase's cast.ToString: strings as they are, numbers and booleans
 * printed, anything else "". */
static void to_string(json_t *v, struct buf *b)
{
    buf_reset(b);
    buf_append(b, "", 0); /* NUL-terminated even when nothing follows */
    if (json_is_string(v)) {
        buf_append(b, json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        buf_appendf(b, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        char tmp[40];
        format_double(json_real_value(v), tmp, sizeof(tmp));
        buf_append_cstr(b, tmp);
    } else if (json_is_boolean(v)) {
        buf_append_cstr(b, json_is_true(v) ? "true" : "false");
    }
}

/* 0 with *out set, or -1 if v is no number (Cruder refuses text that is not
 * numeric instead of silently storing 0). */
static int to_number(json_t *v, double *out)
{
    if (!v || json_is_null(v)) {
        *out = 0;
    } else if (json_is_number(v)) {
        *out = json_number_value(v);
    } else if (json_is_boolean(v)) {
        *out = json_is_true(v) ? 1 : 0;
    } else if (json_is_string(v)) {
        struct slice s = slice_trim(slice_make(json_string_value(v), json_string_length(v)));
        if (s.len == 0) {
            *out = 0;
            return 0;
        }
        char tmp[64];
        if (s.len >= sizeof(tmp))
            return -1;
        memcpy(tmp, s.ptr, s.len);
        tmp[s.len] = '\0';
        char *end;
        *out = strtod(tmp, &end);
        if (end != tmp + s.len)
            return -1;
    } else {
        return -1;
    }
    return 0;
}

/* PocketBase's cast.ToBool (strconv.ParseBool), plus "on" as HTML checkboxes send. */
static bool to_bool(json_t *v)
{
    static const char *const truthy[] = {"1", "t", "T", "TRUE", "true", "True", "on"};
    if (json_is_boolean(v))
        return json_is_true(v);
    if (json_is_number(v))
        return json_number_value(v) != 0;
    if (json_is_string(v))
        for (size_t i = 0; i < sizeof(truthy) / sizeof(truthy[0]); i++)
            if (strcmp(json_string_value(v), truthy[i]) == 0)
                return true;
    return false;
}

static bool list_has(json_t *list, const char *s)
{
    for (size_t i = 0; i < json_array_size(list); i++)
        if (strcmp(json_string_value(json_array_get(list, i)), s) == 0)
            return true;
    return false;
}

static void list_add(json_t *list, json_t *item, struct buf *tmp)
{
    to_string(item, tmp);
    if (tmp->len && !list_has(list, tmp->ptr))
        json_array_append_new(list, json_stringn(tmp->ptr, tmp->len));
}

/* PocketBase's list.ToUniqueStringSlice: a JSON array text or an array gives
 * its items, a plain value itself; empty and repeated values are dropped. */
static json_t *to_string_list(json_t *v)
{
    json_t *list = json_array();
    struct buf tmp = BUF_INIT;
    json_t *parsed = NULL;
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_value(v)[0] == '[') {
        parsed = json_loadb(json_string_value(v), json_string_length(v), 0, NULL);
        if (json_is_array(parsed))
            v = parsed;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            list_add(list, json_array_get(v, i), &tmp);
    } else if (v && !json_is_null(v) && !json_is_object(v)) {
        list_add(list, v, &tmp);
    }
    json_decref(parsed);
    buf_free(&tmp);
    return list;
}

/* PocketBase's JSONField.PrepareValue normalization of plain strings. */
static json_t *to_json_value(json_t *v)
{
    if (!json_is_string(v))
        return json_incref(v ? v : json_null());
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0)
        return json_string("");
    if (strcmp(s, "null") == 0 || strcmp(s, "true") == 0 || strcmp(s, "false") == 0 ||
        isdigit((unsigned char)s[0]) || strchr("-\"[{", s[0])) {
        json_t *parsed = json_loadb(s, n, JSON_DECODE_ANY, NULL);
        if (parsed)
            return parsed;
    }
    return json_incref(v);
}

/* ------------------------------------------------------------ formats */

static bool email_valid(const char *s, size_t n)
{
    static const char local_extra[] = ".!#$%&'*+/=?^_`{|}~-";
    const char *at = memrchr(s, '@', n);
    if (!at || at == s || n > 254 || at - s > 64)
        return false;
    for (const char *p = s; p < at; p++)
        if (!isalnum((unsigned char)*p) && !strchr(local_extra, *p))
            return false;
    const char *d = at + 1, *end = s + n;
    if (d == end)
        return false;
    size_t label = 0;
    for (const char *p = d; p < end; p++) {
        if (*p == '.') {
            if (label == 0 || p[-1] == '-')
                return false;
            label = 0;
        } else if (isalnum((unsigned char)*p) || (*p == '-' && label > 0)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 && end[-1] != '-';
}

static bool host_valid(struct slice h)
{
    if (slice_eq_cstr(h, "localhost"))
        return true;
    size_t label = 0, dots = 0;
    for (size_t i = 0; i < h.len; i++) {
        char c = h.ptr[i];
        if (c == '.') {
            if (label == 0 || h.ptr[i - 1] == '-')
                return false;
            label = 0;
            dots++;
        } else if (isalnum((unsigned char)c) || c == '_' || (c == '-' && label > 0)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return dots > 0 && label > 0 && h.ptr[h.len - 1] != '-';
}

/* A loose form of govalidator's IsURL, which PocketBase uses: optional
 * scheme, a host that is localhost, an IPv4 or a dotted domain, an optional
 * port; no spaces. Sets *host to host[:port], the part the domain lists check. */
static bool url_valid(const char *s, size_t n, struct slice *host)
{
    if (n == 0 || n > URL_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)s[i]) || (unsigned char)s[i] < 0x20)
            return false;
    const char *p = s, *end = s + n;
    const char *sep = strstr(s, "://");
    if (sep && (size_t)(sep - s) < n) {
        if (sep == s || !isalpha((unsigned char)s[0]))
            return false;
        for (const char *q = s; q < sep; q++)
            if (!isalnum((unsigned char)*q) && !strchr("+-.", *q))
                return false;
        p = sep + 3;
    }
    const char *h = p;
    while (p < end && *p != '/' && *p != '?' && *p != '#')
        p++;
    struct slice authority = slice_make(h, (size_t)(p - h));
    const char *at = memrchr(authority.ptr, '@', authority.len);
    if (at)
        authority = slice_make(at + 1, (size_t)(authority.ptr + authority.len - at - 1));
    *host = authority;
    struct slice name = authority;
    const char *colon = memchr(name.ptr, ':', name.len);
    if (colon) {
        struct slice port = slice_make(colon + 1, (size_t)(name.ptr + name.len - colon - 1));
        long long pn = slice_to_uint(port);
        if (pn < 1 || pn > 65535)
            return false;
        name.len = (size_t)(colon - name.ptr);
    }
    return name.len > 0 && host_valid(name);
}

static bool in_list(char **list, size_t n, struct slice s)
{
    for (size_t i = 0; i < n; i++)
        if (slice_eq_cstr(s, list[i]))
            return true;
    return false;
}

/* ------------------------------------------------------------ per type */

static json_t *check_number(const struct field *f, double v)
{
    char a[64];
    if (isnan(v) || isinf(v))
        return coll_err("validation_not_a_number",
                        "The submitted number is not properly formatted.");
    if (v == 0)
        return f->required ? coll_err_required() : NULL;
    if (f->opt.number.only_int && v != trunc(v))
        return coll_err("validation_only_int_constraint", "Decimal numbers are not allowed.");
    if (f->opt.number.has_min && v < f->opt.number.min) {
        snprintf(a, sizeof(a), "%f", f->opt.number.min);
        return coll_err("validation_min_number_constraint", "Must be larger than %s.", a);
    }
    if (f->opt.number.has_max && v > f->opt.number.max) {
        snprintf(a, sizeof(a), "%f", f->opt.number.max);
        return coll_err("validation_max_number_constraint", "Must be less than %s.", a);
    }
    return NULL;
}

static json_t *check_email(const struct field *f, const char *v, size_t n)
{
    if (n == 0)
        return f->required ? coll_err_required() : NULL;
    if (!email_valid(v, n))
        return coll_err("validation_is_email", "Must be a valid email address.");
    const char *at = strrchr(v, '@');
    struct slice domain = slice_make(at + 1, n - (size_t)(at + 1 - v));
    const struct field *e = f;
    if ((e->opt.email_url.nonly &&
         !in_list(e->opt.email_url.only_domains, e->opt.email_url.nonly, domain)) ||
        (e->opt.email_url.nexcept &&
         in_list(e->opt.email_url.except_domains, e->opt.email_url.nexcept, domain)))
        return coll_err("validation_email_domain_not_allowed", "Email domain is not allowed.");
    return NULL;
}

static json_t *check_url(const struct field *f, const char *v, size_t n)
{
    struct slice host;
    if (n == 0)
        return f->required ? coll_err_required() : NULL;
    if (!url_valid(v, n, &host))
        return coll_err("validation_invalid_url", "Must be a valid url.");
    if ((f->opt.email_url.nonly &&
         !in_list(f->opt.email_url.only_domains, f->opt.email_url.nonly, host)) ||
        (f->opt.email_url.nexcept &&
         in_list(f->opt.email_url.except_domains, f->opt.email_url.nexcept, host)))
        return coll_err("validation_url_domain_not_allowed", "Url domain is not allowed.");
    return NULL;
}

/* Dates: text in PocketBase's formats, or a number of unix seconds. */
static json_t *coerce_date(json_t *in, char out[TIMEFMT_PB_LEN + 1])
{
    int64_t ms;
    out[0] = '\0';
    if (!in || json_is_null(in) || (json_is_string(in) && json_string_length(in) == 0))
        return NULL;
    if (json_is_string(in)) {
        struct slice s = slice_trim(slice_make(json_string_value(in), json_string_length(in)));
        if (time_parse_pb(s.ptr, s.len, &ms) == 0) {
            time_format_pb(ms, out);
            return NULL;
        }
    } else if (json_is_integer(in) && json_integer_value(in) > -62135596800LL &&
               json_integer_value(in) < 253402300800LL) {
        time_format_pb((int64_t)json_integer_value(in) * 1000, out);
        return NULL;
    }
    return coll_err("validation_invalid_date", "Must be a valid date.");
}

static json_t *check_date(const struct field *f, const char *v)
{
    if (!v[0])
        return f->required ? coll_err_required() : NULL;
    if (f->opt.date.min && strcmp(v, f->opt.date.min) < 0)
        return coll_err_param(coll_err("validation_min_greater_equal_than_required",
                                       "Must be no less than %s.", f->opt.date.min),
                              "threshold", json_string(f->opt.date.min));
    if (f->opt.date.max && strcmp(v, f->opt.date.max) > 0)
        return coll_err_param(coll_err("validation_max_less_equal_than_required",
                                       "Must be no greater than %s.", f->opt.date.max),
                              "threshold", json_string(f->opt.date.max));
    return NULL;
}

static json_t *check_select(const struct field *f, json_t *list)
{
    size_t n = json_array_size(list);
    if (n == 0)
        return f->required ? coll_err_required() : NULL;
    int64_t max = f->opt.select.max_select > 1 ? f->opt.select.max_select : 1;
    if ((int64_t)n > max)
        return coll_err_param(
            coll_err("validation_too_many_values", "Select no more than %lld.", (long long)max),
            "maxSelect", json_integer(max));
    for (size_t i = 0; i < n; i++) {
        const char *v = json_string_value(json_array_get(list, i));
        bool ok = false;
        for (size_t k = 0; !ok && k < f->opt.select.nvalues; k++)
            ok = strcmp(v, f->opt.select.values[k]) == 0;
        if (!ok) {
            /* The message echoes only allowed-looking values; params carry the rest. */
            bool plain =
                strlen(v) <= 100 &&
                strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_- .") ==
                    strlen(v);
            return coll_err_param(
                coll_err("validation_invalid_value", "Invalid value %s.", plain ? v : ""), "value",
                json_string(v));
        }
    }
    return NULL;
}

static json_t *check_json(const struct field *f, json_t *v)
{
    int64_t max = f->opt.json.max_size > 0 ? f->opt.json.max_size : JSON_DEFAULT_MAX_SIZE;
    size_t size = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    if ((int64_t)size > max)
        return coll_err_param(coll_err("validation_json_size_limit",
                                       "The maximum allowed JSON size is %lld bytes.",
                                       (long long)max),
                              "maxSize", json_integer(max));
    if (f->required && (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0) ||
                        (json_is_array(v) && json_array_size(v) == 0) ||
                        (json_is_object(v) && json_object_size(v) == 0)))
        return coll_err_required();
    return NULL;
}

static json_t *zero_value(const struct field *f)
{
    switch (f->type) {
    case FIELD_NUMBER:
        return json_integer(0);
    case FIELD_BOOL:
        return json_false();
    case FIELD_JSON:
        return json_null();
    case FIELD_SELECT:
    case FIELD_RELATION:
    case FIELD_FILE:
        return field_is_multiple(f) ? json_array() : json_string("");
    default:
        return json_string("");
    }
}

/* The input value under "<prefix><name><suffix>", if any. */
static json_t *modifier(json_t *input, const struct field *f, const char *prefix,
                        const char *suffix)
{
    char key[80];
    snprintf(key, sizeof(key), "%s%s%s", prefix, f->name, suffix);
    return json_object_get(input, key);
}

/* Values that a text PK must never hold, whatever its pattern says, because
 * ids end up in file paths. */
static json_t *check_pk_chars(const char *v)
{
    static const char *const forbidden[] = {"/", "\\"};
    for (size_t i = 0; i < 2; i++)
        if (strstr(v, forbidden[i]))
            return coll_err_param(coll_err("validation_pk_forbidden",
                                           "The record primary key contains forbidden characters."),
                                  "forbidden", json_string(forbidden[i]));
    return NULL;
}

static char *generate_text(const struct field *f)
{
    char *out = NULL;
    if (strcmp(f->opt.text.autogenerate_pattern, "[a-z0-9]{15}") == 0 ||
        coll_autogenerate(f->opt.text.autogenerate_pattern, &out) < 0) {
        out = xmalloc(ID_LEN + 1);
        id_generate(out);
    }
    return out;
}

/* The value list of a select, relation or file field: the input (or the
 * stored value) with the "+field" (prepend), "field+" (append) and "field-"
 * (remove) modifiers applied, in PocketBase's order. Caller owns the list. */
static json_t *list_with_modifiers(const struct field *f, json_t *input, json_t *in, json_t *cur)
{
    json_t *list = in ? to_string_list(in) : to_string_list(cur);
    json_t *pre = modifier(input, f, "+", ""), *app = modifier(input, f, "", "+"),
           *del = modifier(input, f, "", "-");
    if (pre) {
        json_t *add = to_string_list(pre);
        for (size_t i = 0; i < json_array_size(list); i++)
            if (!list_has(add, json_string_value(json_array_get(list, i))))
                json_array_append(add, json_array_get(list, i));
        json_decref(list);
        list = add;
    }
    if (app) {
        json_t *add = to_string_list(app);
        for (size_t i = 0; i < json_array_size(add); i++)
            if (!list_has(list, json_string_value(json_array_get(add, i))))
                json_array_append(list, json_array_get(add, i));
        json_decref(add);
    }
    if (del) {
        json_t *rm = to_string_list(del), *kept = json_array();
        for (size_t i = 0; i < json_array_size(list); i++)
            if (!list_has(rm, json_string_value(json_array_get(list, i))))
                json_array_append(kept, json_array_get(list, i));
        json_decref(rm);
        json_decref(list);
        list = kept;
    }
    if (!field_is_multiple(f) && json_array_size(list) > 1) {
        /* A single value keeps the last one given, as PocketBase does. */
        json_t *last = json_incref(json_array_get(list, json_array_size(list) - 1));
        json_array_clear(list);
        json_array_append_new(list, last);
    }
    return list;
}

/* A relation's ids: shape only (they exist or not is the store's check, in the
 * write's transaction), then PocketBase's required/minSelect/maxSelect. */
static json_t *check_relation(const struct field *f, json_t *list)
{
    size_t n = json_array_size(list);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(list, i);
        const char *id = json_string_value(v);
        size_t len = json_string_length(v);
        if (len > RELATION_ID_MAX_LEN || memchr(id, '\0', len) || strpbrk(id, "/\\"))
            return coll_err("validation_invalid_value", "Invalid value.");
    }
    if (n == 0)
        return f->required ? coll_err_required() : NULL;
    int64_t min = f->opt.relation.min_select;
    int64_t max = f->opt.relation.max_select > 1 ? f->opt.relation.max_select : 1;
    if (min > 0 && (int64_t)n < min)
        return coll_err_param(
            coll_err("validation_not_enough_values", "Select at least %lld.", (long long)min),
            "minSelect", json_integer(min));
    if ((int64_t)n > max)
        return coll_err_param(
            coll_err("validation_too_many_values", "Select no more than %lld.", (long long)max),
            "maxSelect", json_integer(max));
    return NULL;
}

/* Stored file names: plain names, never paths (they become paths on disk). */
static json_t *check_files(const struct field *f, json_t *list)
{
    size_t n = json_array_size(list);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(list, i);
        const char *name = json_string_value(v);
        size_t len = json_string_length(v);
        if (len > 255 || memchr(name, '\0', len) || strpbrk(name, "/\\") ||
            strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            return coll_err("validation_invalid_value", "Invalid value.");
    }
    if (n == 0)
        return f->required ? coll_err_required() : NULL;
    int64_t max = f->opt.file.max_select > 1 ? f->opt.file.max_select : 1;
    if ((int64_t)n > max)
        return coll_err_param(
            coll_err("validation_too_many_values", "Select no more than %lld.", (long long)max),
            "maxSelect", json_integer(max));
    return NULL;
}

/* Validates and fills one field. Returns the value to store (new reference)
 * and sets *err on a validation failure. */
static json_t *field_value(const struct collection *c, const struct field *f, json_t *input,
                           json_t *prev, int64_t now_ms, bool *password_changed, json_t **err)
{
    json_t *cur = prev ? json_object_get(prev, f->name) : NULL;
    json_t *in = json_object_get(input, f->name);
    struct buf s = BUF_INIT;
    json_t *val = NULL;
    *err = NULL;

    switch (f->type) {
    case FIELD_TEXT: {
        to_string(cur, &s);
        if (f->opt.text.primary_key) {
            if (prev) {
                struct buf given = BUF_INIT;
                to_string(in, &given);
                if (in && given.len && strcmp(given.ptr, s.ptr) != 0)
                    *err = coll_err("validation_pk_change",
                                    "The record primary key cannot be changed.");
                buf_free(&given);
                break;
            }
            to_string(in, &s);
            if (s.len == 0) {
                char *gen = generate_text(f);
                buf_append_cstr(&s, gen);
                free(gen);
            } else if (!(*err = check_pk_chars(s.ptr))) {
                *err = collection_text_check(f, s.ptr);
            }
            break;
        }
        if (c->type == COLLECTION_AUTH && f->system && strcmp(f->name, "tokenKey") == 0)
            break; /* set by record_validate from the password state */
        if (in)
            to_string(in, &s);
        if (!prev && s.len == 0 && f->opt.text.autogenerate_pattern) {
            char *gen = generate_text(f);
            buf_append_cstr(&s, gen);
            free(gen);
        }
        if (memchr(s.ptr, '\0', s.len))
            *err = coll_err("validation_invalid_format", "Invalid value format.");
        else
            *err = collection_text_check(f, s.ptr);
        break;
    }
    case FIELD_NUMBER: {
        double v = 0, delta;
        if (to_number(cur, &v) < 0)
            v = 0;
        if (in && to_number(in, &v) < 0) {
            *err = coll_err("validation_not_a_number",
                            "The submitted number is not properly formatted.");
            break;
        }
        json_t *add = modifier(input, f, "", "+"), *sub = modifier(input, f, "", "-");
        if ((add && to_number(add, &delta) < 0) || (sub && to_number(sub, &delta) < 0)) {
            *err = coll_err("validation_not_a_number",
                            "The submitted number is not properly formatted.");
            break;
        }
        if (add && to_number(add, &delta) == 0)
            v += delta;
        if (sub && to_number(sub, &delta) == 0)
            v -= delta;
        if (!(*err = check_number(f, v)))
            val = coll_number_json(v);
        break;
    }
    case FIELD_BOOL: {
        bool v = in ? to_bool(in) : to_bool(cur);
        if (f->required && !v)
            *err = coll_err_required();
        val = json_boolean(v);
        break;
    }
    case FIELD_EMAIL:
    case FIELD_URL:
        to_string(in ? in : cur, &s);
        *err = f->type == FIELD_EMAIL ? check_email(f, s.ptr, s.len) : check_url(f, s.ptr, s.len);
        break;
    case FIELD_DATE: {
        char d[TIMEFMT_PB_LEN + 1];
        json_t *e = coerce_date(in ? in : cur, d);
        if (e && !in) {
            /* A stored value PocketBase could not read stays zero, as there. */
            json_decref(e);
            e = NULL;
        }
        *err = e ? e : check_date(f, d);
        buf_append_cstr(&s, d);
        break;
    }
    case FIELD_SELECT: {
        json_t *list = list_with_modifiers(f, input, in, cur);
        *err = check_select(f, list);
        if (field_is_multiple(f)) {
            val = list;
        } else {
            val = json_array_size(list) ? json_incref(json_array_get(list, 0)) : json_string("");
            json_decref(list);
        }
        break;
    }
    case FIELD_RELATION:
    case FIELD_FILE: {
        json_t *list = list_with_modifiers(f, input, in, cur);
        *err = f->type == FIELD_RELATION ? check_relation(f, list) : check_files(f, list);
        if (field_is_multiple(f)) {
            val = list;
        } else {
            val = json_array_size(list) ? json_incref(json_array_get(list, 0)) : json_string("");
            json_decref(list);
        }
        break;
    }
    case FIELD_JSON:
        val = in ? to_json_value(in) : json_incref(cur ? cur : json_null());
        *err = check_json(f, val);
        break;
    case FIELD_AUTODATE:
        to_string(cur, &s);
        if ((!prev && f->opt.autodate.on_create) || (prev && f->opt.autodate.on_update)) {
            char d[TIMEFMT_PB_LEN + 1];
            time_format_pb(now_ms, d);
            buf_reset(&s);
            buf_append_cstr(&s, d);
        }
        break;
    case FIELD_PASSWORD:
        to_string(cur, &s);
        if (in && !json_is_null(in)) {
            if (!json_is_string(in)) {
                *err = coll_err("validation_invalid_value", "Invalid value.");
                break;
            }
            to_string(in, &s);
            *password_changed = true;
        }
        if (f->required && s.len == 0)
            *err = coll_err_required();
        break;
    }
    if (!val)
        val = f->type == FIELD_TEXT || f->type == FIELD_EMAIL || f->type == FIELD_URL ||
                      f->type == FIELD_DATE || f->type == FIELD_AUTODATE ||
                      f->type == FIELD_PASSWORD
                  ? json_stringn(s.ptr ? s.ptr : "", s.len)
                  : zero_value(f);
    buf_free(&s);
    return val;
}

int record_validate(const struct collection *c, json_t *input, json_t *prev, int64_t now_ms,
                    json_t **out, json_t **errors)
{
    if (!json_is_object(input) || (prev && !json_is_object(prev))) {
        *errors = json_object();
        return -1;
    }
    json_t *rec = json_object(), *errs = json_object();
    bool password_changed = false;
    for (size_t i = 0; i < c->nfields; i++) {
        const struct field *f = &c->fields[i];
        json_t *err;
        json_t *val = field_value(c, f, input, prev, now_ms, &password_changed, &err);
        json_object_set_new(rec, f->name, val);
        if (err)
            json_object_set_new(errs, f->name, err);
    }
    const struct field *tk = collection_field(c, SLICE_LIT("tokenKey"));
    if (c->type == COLLECTION_AUTH && tk && tk->type == FIELD_TEXT) {
        json_t *old = prev ? json_object_get(prev, "tokenKey") : NULL;
        if (!prev || password_changed || !json_is_string(old) || json_string_length(old) == 0) {
            char key[AUTH_TOKEN_KEY_LEN + 1];
            auth_token_key_generate(key);
            json_object_set_new(rec, "tokenKey", json_string(key));
        } else {
            json_object_set(rec, "tokenKey", old);
        }
    }
    if (json_object_size(errs)) {
        json_decref(rec);
        *errors = errs;
        return -1;
    }
    json_decref(errs);
    *out = rec;
    return 0;
}

json_t *record_password_check(const struct field *f, struct slice plain)
{
    if (plain.len == 0)
        return f->required ? coll_err_required() : NULL;
    int64_t len = (int64_t)coll_utf8_len(plain.ptr, plain.len);
    if (len < f->opt.password.min)
        return coll_err("validation_min_text_constraint", "Must be at least %lld character(s).",
                        (long long)f->opt.password.min);
    int64_t max = f->opt.password.max > 0 ? f->opt.password.max : PASSWORD_DEFAULT_MAX;
    if (len > max)
        return coll_err("validation_max_text_constraint", "Must be less than %lld character(s).",
                        (long long)max);
    if (f->opt.password.pattern) {
        regex_t re;
        json_t *e = NULL;
        char *copy = xstrndup(plain.ptr, plain.len);
        if (memchr(plain.ptr, '\0', plain.len) ||
            regcomp(&re, f->opt.password.pattern, REG_EXTENDED | REG_NOSUB) != 0) {
            e = coll_err("validation_invalid_format", "Invalid value format.");
        } else {
            if (regexec(&re, copy, 0, NULL, 0) != 0)
                e = coll_err("validation_invalid_format", "Invalid value format.");
            regfree(&re);
        }
        free(copy);
        return e;
    }
    return NULL;
}
