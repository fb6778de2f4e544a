/* The cache's field parsers: Cache-Control (RFC 9111 5.2), targeted fields
 * as Structured Field Dictionaries (RFC 9213, RFC 8941), delta-seconds,
 * HTTP-dates in their three forms (RFC 9110 5.6.7), and Vary values and
 * their normalisation (RFC 9111 4.1). Every byte comes from a client or an
 * upstream: each parser bounds itself and reports malformed input. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/timefmt.h"
#include "gateway/cache_internal.h"

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

bool cache_is_token(struct slice s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!is_tchar((unsigned char)s.ptr[i]))
            return false;
    return true;
}

int64_t cache_delta_seconds(struct slice s)
{
    if (s.len == 0)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return -1;
        if (v < CACHE_DELTA_MAX)
            v = v * 10 + (s.ptr[i] - '0');
    }
    return v > CACHE_DELTA_MAX ? CACHE_DELTA_MAX : v;
}

bool cache_list_next(struct slice *rest, struct slice *elem)
{
    if (rest->ptr == NULL)
        return false;
    const char *p = rest->ptr, *end = rest->ptr + rest->len;
    if (rest->len == 0) {
        *elem = slice_make(end, 0);
        rest->ptr = NULL;
        return true;
    }
    const char *start = p;
    bool quoted = false;
    while (p < end) {
        if (quoted) {
            if (*p == '\\' && p + 1 < end)
                p++;
            else if (*p == '"')
                quoted = false;
        } else if (*p == '"') {
            quoted = true;
        } else if (*p == ',') {
            break;
        }
        p++;
    }
    *elem = slice_trim(slice_make(start, (size_t)(p - start)));
    if (p < end) {
        rest->ptr = p + 1;
        rest->len = (size_t)(end - p - 1);
    } else {
        rest->ptr = NULL;
        rest->len = 0;
    }
    return true;
}

void cache_cc_init(struct cache_cc *cc)
{
    memset(cc, 0, sizeof(*cc));
    cc->max_age = cc->s_maxage = cc->max_stale = cc->min_fresh = cc->swr = cc->sie =
        CACHE_CC_ABSENT;
}

/* A second, different value makes the directive invalid (RFC 9111 4.2.1). */
static void set_delta(int64_t *slot, int64_t v)
{
    if (v < 0)
        *slot = CACHE_CC_INVALID;
    else if (*slot == CACHE_CC_ABSENT)
        *slot = v;
    else if (*slot != v)
        *slot = CACHE_CC_INVALID;
}

struct directive {
    const char *name;
    int kind; /* 0 flag, 1 delta */
    unsigned flag;
    size_t off;
};

#define DELTA(n, f)                           \
    {                                         \
        n, 1, 0, offsetof(struct cache_cc, f) \
    }
static const struct directive directives[] = {
    {"no-store", 0, CACHE_CC_NO_STORE, 0},
    {"no-cache", 0, CACHE_CC_NO_CACHE, 0},
    {"private", 0, CACHE_CC_PRIVATE, 0},
    {"public", 0, CACHE_CC_PUBLIC, 0},
    {"must-revalidate", 0, CACHE_CC_MUST_REVALIDATE, 0},
    {"proxy-revalidate", 0, CACHE_CC_PROXY_REVALIDATE, 0},
    {"must-understand", 0, CACHE_CC_MUST_UNDERSTAND, 0},
    {"only-if-cached", 0, CACHE_CC_ONLY_IF_CACHED, 0},
    {"immutable", 0, CACHE_CC_IMMUTABLE, 0},
    DELTA("max-age", max_age),
    DELTA("s-maxage", s_maxage),
    DELTA("max-stale", max_stale),
    DELTA("min-fresh", min_fresh),
    DELTA("stale-while-revalidate", swr),
    DELTA("stale-if-error", sie),
};

static const struct directive *find_directive(struct slice name)
{
    for (size_t i = 0; i < sizeof(directives) / sizeof(directives[0]); i++)
        if (slice_case_eq(name, slice_cstr(directives[i].name)))
            return &directives[i];
    return NULL;
}

/* Applies one directive. has_value says an argument was given; fields is
 * the argument of no-cache/private (their qualified forms). */
static void apply(struct cache_cc *cc, const struct directive *d, bool has_value, int64_t num,
                  struct slice arg)
{
    int64_t *slot = d->kind ? (int64_t *)(void *)((char *)cc + d->off) : NULL;
    if (slot) {
        if (!has_value) {
            /* max-stale alone accepts any staleness; the others need a value. */
            if (slot == &cc->max_stale)
                cc->flags |= CACHE_CC_MAX_STALE_ANY;
            else
                *slot = CACHE_CC_INVALID;
            return;
        }
        set_delta(slot, num);
        return;
    }
    if (has_value && d->flag == CACHE_CC_NO_CACHE) {
        cc->no_cache_fields = arg;
        return;
    }
    if (has_value && d->flag == CACHE_CC_PRIVATE) {
        cc->private_fields = arg;
        return;
    }
    cc->flags |= d->flag;
}

int cache_cc_parse(struct cache_cc *cc, struct slice value)
{
    cc->present = true;
    const char *p = value.ptr, *end = value.ptr ? value.ptr + value.len : NULL;
    for (;;) {
        while (p < end && (is_ows(*p) || *p == ','))
            p++;
        if (p >= end)
            return 0;
        const char *ns = p;
        while (p < end && is_tchar((unsigned char)*p))
            p++;
        struct slice name = slice_make(ns, (size_t)(p - ns));
        if (name.len == 0)
            return -1;
        bool has_value = false;
        struct slice arg = SLICE_NULL;
        while (p < end && is_ows(*p))
            p++;
        if (p < end && *p == '=') {
            p++;
            while (p < end && is_ows(*p))
                p++;
            has_value = true;
            if (p < end && *p == '"') {
                const char *as = ++p;
                bool escaped = false;
                while (p < end && *p != '"') {
                    if (*p == '\\') {
                        escaped = true;
                        if (++p >= end)
                            return -1;
                    }
                    p++;
                }
                if (p >= end)
                    return -1;
                arg = slice_make(as, (size_t)(p - as));
                p++;
                /* Field names and numbers never need escapes: one means junk,
                 * read as the directive without its argument (for no-cache
                 * and private the stricter form). */
                if (escaped)
                    has_value = false;
            } else {
                const char *as = p;
                while (p < end && is_tchar((unsigned char)*p))
                    p++;
                arg = slice_make(as, (size_t)(p - as));
                if (arg.len == 0)
                    return -1;
            }
        }
        while (p < end && is_ows(*p))
            p++;
        if (p < end && *p != ',')
            return -1;
        const struct directive *d = find_directive(name);
        if (d)
            apply(cc, d, has_value, has_value ? cache_delta_seconds(arg) : 0, arg);
    }
}

/* ---- Structured Field Dictionary (RFC 8941 3.2), for targeted fields ---- */

enum sf_type { SF_NONE, SF_INT, SF_DEC, SF_STR, SF_TOKEN, SF_BIN, SF_BOOL, SF_LIST };

struct sf_item {
    enum sf_type type;
    int64_t num; /* SF_INT value, SF_BOOL 0/1 */
    struct slice str;
};

struct sf_parser {
    const char *p, *end;
};

static bool sf_lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool sf_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int sf_key(struct sf_parser *s, struct slice *key)
{
    const char *k = s->p;
    if (s->p >= s->end || !(sf_lcalpha(*s->p) || *s->p == '*'))
        return -1;
    s->p++;
    while (s->p < s->end && (sf_lcalpha(*s->p) || sf_digit(*s->p) || strchr("_-.*", *s->p)))
        s->p++;
    *key = slice_make(k, (size_t)(s->p - k));
    return 0;
}

static int sf_bare_item(struct sf_parser *s, struct sf_item *it)
{
    if (s->p >= s->end)
        return -1;
    char c = *s->p;
    if (c == '-' || sf_digit(c)) {
        bool neg = c == '-';
        if (neg)
            s->p++;
        const char *ds = s->p;
        int64_t v = 0;
        while (s->p < s->end && sf_digit(*s->p) && s->p - ds < 15)
            v = v * 10 + (*s->p++ - '0');
        size_t ilen = (size_t)(s->p - ds);
        if (ilen == 0)
            return -1;
        if (s->p < s->end && *s->p == '.') {
            if (ilen > 12)
                return -1;
            const char *fs = ++s->p;
            while (s->p < s->end && sf_digit(*s->p))
                s->p++;
            if (s->p == fs || s->p - fs > 3)
                return -1;
            it->type = SF_DEC;
            return 0;
        }
        if (s->p < s->end && sf_digit(*s->p))
            return -1;
        it->type = SF_INT;
        it->num = neg ? -v : v;
        return 0;
    }
    if (c == '"') {
        const char *ss = ++s->p;
        while (s->p < s->end && *s->p != '"') {
            unsigned char u = (unsigned char)*s->p;
            if (u == '\\') {
                if (++s->p >= s->end || (*s->p != '"' && *s->p != '\\'))
                    return -1;
            } else if (u < 0x20 || u > 0x7e) {
                return -1;
            }
            s->p++;
        }
        if (s->p >= s->end)
            return -1;
        it->type = SF_STR;
        it->str = slice_make(ss, (size_t)(s->p - ss));
        s->p++;
        return 0;
    }
    if (c == '*' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        const char *ts = s->p++;
        while (s->p < s->end && (is_tchar((unsigned char)*s->p) || *s->p == ':' || *s->p == '/'))
            s->p++;
        it->type = SF_TOKEN;
        it->str = slice_make(ts, (size_t)(s->p - ts));
        return 0;
    }
    if (c == ':') {
        s->p++;
        while (s->p < s->end && *s->p != ':') {
            char b = *s->p;
            if (!(sf_digit(b) || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b == '+' ||
                  b == '/' || b == '='))
                return -1;
            s->p++;
        }
        if (s->p >= s->end)
            return -1;
        s->p++;
        it->type = SF_BIN;
        return 0;
    }
    if (c == '?') {
        if (s->end - s->p < 2 || (s->p[1] != '0' && s->p[1] != '1'))
            return -1;
        it->type = SF_BOOL;
        it->num = s->p[1] == '1';
        s->p += 2;
        return 0;
    }
    return -1;
}

static int sf_params(struct sf_parser *s)
{
    while (s->p < s->end && *s->p == ';') {
        s->p++;
        while (s->p < s->end && *s->p == ' ')
            s->p++;
        struct slice key;
        if (sf_key(s, &key) < 0)
            return -1;
        if (s->p < s->end && *s->p == '=') {
            s->p++;
            struct sf_item it;
            if (sf_bare_item(s, &it) < 0)
                return -1;
        }
    }
    return 0;
}

static int sf_item_or_list(struct sf_parser *s, struct sf_item *it)
{
    if (s->p < s->end && *s->p == '(') {
        s->p++;
        for (;;) {
            while (s->p < s->end && *s->p == ' ')
                s->p++;
            if (s->p >= s->end)
                return -1;
            if (*s->p == ')') {
                s->p++;
                break;
            }
            struct sf_item inner;
            if (sf_bare_item(s, &inner) < 0 || sf_params(s) < 0)
                return -1;
            if (s->p < s->end && *s->p != ' ' && *s->p != ')')
                return -1;
        }
        it->type = SF_LIST;
        return sf_params(s);
    }
    if (sf_bare_item(s, it) < 0)
        return -1;
    return sf_params(s);
}

int cache_cc_parse_targeted(struct cache_cc *cc, struct slice value)
{
    cache_cc_init(cc);
    cc->present = true;
    struct sf_parser s = {value.ptr, value.ptr ? value.ptr + value.len : NULL};
    while (s.p < s.end && *s.p == ' ')
        s.p++;
    if (s.p >= s.end)
        return -1;
    for (;;) {
        struct slice key;
        struct sf_item it = {SF_BOOL, 1, SLICE_NULL};
        if (sf_key(&s, &key) < 0)
            return -1;
        if (s.p < s.end && *s.p == '=') {
            s.p++;
            if (sf_item_or_list(&s, &it) < 0)
                return -1;
        } else if (sf_params(&s) < 0) {
            return -1;
        }
        const struct directive *d = find_directive(key);
        if (d && d->kind) {
            int64_t *slot = (int64_t *)(void *)((char *)cc + d->off);
            /* In a dictionary the last member of a name wins (RFC 8941 3.2). */
            *slot = (it.type == SF_INT && it.num >= 0)
                        ? (it.num > CACHE_DELTA_MAX ? CACHE_DELTA_MAX : it.num)
                        : CACHE_CC_INVALID;
        } else if (d && it.type == SF_STR &&
                   (d->flag == CACHE_CC_NO_CACHE || d->flag == CACHE_CC_PRIVATE)) {
            apply(cc, d, true, 0, it.str);
        } else if (d && it.type == SF_BOOL) {
            if (it.num)
                cc->flags |= d->flag;
            else
                cc->flags &= ~d->flag;
        }
        while (s.p < s.end && is_ows(*s.p))
            s.p++;
        if (s.p >= s.end)
            return 0;
        if (*s.p != ',')
            return -1;
        s.p++;
        while (s.p < s.end && is_ows(*s.p))
            s.p++;
        if (s.p >= s.end)
            return -1; /* a trailing comma */
    }
}

/* ---- HTTP-date ---- */

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const days_long[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};

static int num(const char *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

static int month_of(const char *p)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(p, months[i], 3) == 0)
            return i + 1;
    return -1;
}

static bool day_name(const char *p, size_t n, bool long_form)
{
    for (int i = 0; i < 7; i++) {
        const char *d = long_form ? days_long[i] : days[i];
        if (strlen(d) == n && memcmp(p, d, n) == 0)
            return true;
    }
    return false;
}

/* "HH:MM:SS" at p. */
static int hms(const char *p, int *h, int *m, int *s)
{
    if (p[2] != ':' || p[5] != ':' || num(p, 2, h) || num(p + 3, 2, m) || num(p + 6, 2, s))
        return -1;
    return (*h > 23 || *m > 59 || *s > 60) ? -1 : 0;
}

static int finish_date(int y, int mon, int d, int h, int mi, int s, int64_t *out)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mon < 1 || d < 1 || d > mdays[mon - 1])
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mon == 2 && d == 29 && !leap)
        return -1;
    *out = time_days_from_civil(y, mon, d) * 86400 + h * 3600 + mi * 60 + (s > 59 ? 59 : s);
    return 0;
}

int cache_http_date(struct slice v, int64_t *out)
{
    const char *p = v.ptr;
    size_t n = v.len;
    int y, mon, d, h, mi, s;
    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    if (n == 29 && p[3] == ',' && p[4] == ' ' && p[7] == ' ' && p[11] == ' ' && p[16] == ' ' &&
        p[25] == ' ' && memcmp(p + 26, "GMT", 3) == 0) {
        if (!day_name(p, 3, false) || num(p + 5, 2, &d) || (mon = month_of(p + 8)) < 0 ||
            num(p + 12, 4, &y) || hms(p + 17, &h, &mi, &s))
            return -1;
        return finish_date(y, mon, d, h, mi, s, out);
    }
    /* asctime: "Sun Nov  6 08:49:37 1994" */
    if (n == 24 && p[3] == ' ' && p[7] == ' ' && p[10] == ' ' && p[19] == ' ') {
        if (!day_name(p, 3, false) || (mon = month_of(p + 4)) < 0 || hms(p + 11, &h, &mi, &s) ||
            num(p + 20, 4, &y))
            return -1;
        if (p[8] == ' ') {
            if (num(p + 9, 1, &d))
                return -1;
        } else if (num(p + 8, 2, &d)) {
            return -1;
        }
        return finish_date(y, mon, d, h, mi, s, out);
    }
    /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
    const char *comma = memchr(p, ',', n < 10 ? n : 10);
    if (comma && (size_t)(p + n - comma) == 24) {
        const char *q = comma + 1;
        if (!day_name(p, (size_t)(comma - p), true) || q[0] != ' ' || q[3] != '-' || q[7] != '-' ||
            q[10] != ' ' || q[19] != ' ' || memcmp(q + 20, "GMT", 3) != 0 || num(q + 1, 2, &d) ||
            (mon = month_of(q + 4)) < 0 || num(q + 8, 2, &y) || hms(q + 11, &h, &mi, &s))
            return -1;
        /* RFC 9110 5.6.7: a two-digit year more than 50 years ahead is in
         * the past century; anchored on 2000 rather than the clock so the
         * parse is a pure function. */
        y += y < 70 ? 2000 : 1900;
        return finish_date(y, mon, d, h, mi, s, out);
    }
    return -1;
}

/* ---- Vary ---- */

int cache_vary_check(struct slice value)
{
    struct slice rest = value, e = SLICE_NULL;
    bool any = false;
    while (cache_list_next(&rest, &e)) {
        if (e.len == 0)
            continue;
        if (slice_eq_cstr(e, "*"))
            return 1;
        if (!cache_is_token(e))
            return -1;
        any = true;
    }
    (void)any;
    return 0;
}

static bool unordered_field(struct slice name)
{
    return slice_case_eq(name, SLICE_LIT("accept-encoding")) ||
           slice_case_eq(name, SLICE_LIT("accept-language")) ||
           slice_case_eq(name, SLICE_LIT("accept-charset"));
}

static int cmp_slice(const void *a, const void *b)
{
    const struct slice *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->ptr, y->ptr, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

bool cache_vary_value(const struct http_header *headers, size_t n, struct slice name,
                      struct buf *out)
{
    bool found = false, unordered = unordered_field(name);
    struct buf joined = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (!slice_case_eq(headers[i].name, name))
            continue;
        found = true;
        struct slice rest = headers[i].value, e = SLICE_NULL;
        while (cache_list_next(&rest, &e)) {
            if (e.len == 0)
                continue;
            if (joined.len)
                buf_append_char(&joined, ',');
            for (size_t k = 0; k < e.len; k++) {
                char c = e.ptr[k];
                /* Inner whitespace ("gzip; q=1") carries no meaning either. */
                if (unordered && is_ows(c))
                    continue;
                buf_append_char(&joined, unordered ? lower(c) : c);
            }
        }
    }
    if (!found) {
        buf_free(&joined);
        return false;
    }
    if (!unordered || joined.len == 0) {
        buf_append(out, joined.ptr, joined.len);
        buf_free(&joined);
        return true;
    }
    size_t count = 1;
    for (size_t i = 0; i < joined.len; i++)
        count += joined.ptr[i] == ',';
    struct slice *parts = xmalloc(count * sizeof(*parts));
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= joined.len; i++) {
        if (i == joined.len || joined.ptr[i] == ',') {
            parts[k++] = slice_make(joined.ptr + start, i - start);
            start = i + 1;
        }
    }
    qsort(parts, k, sizeof(*parts), cmp_slice);
    for (size_t i = 0; i < k; i++) {
        if (i)
            buf_append_char(out, ',');
        buf_append_slice(out, parts[i]);
    }
    free(parts);
    buf_free(&joined);
    return true;
}
