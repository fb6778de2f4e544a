/* Streaming multipart/form-data (see multipart.h). Every uploaded byte runs
 * through scan(), so its common case is one memchr for '\r' per stretch of
 * data and one callback per piece fed.
 *
 * The delimiter is CRLF "--" boundary. A boundary holds no CR (bchars), so
 * the delimiter's only CR is its first byte: after a mismatch, the only
 * place a new match can start is a CR, and no failure table is needed. A
 * match still open at the end of a piece holds back its bytes; since they
 * are a prefix of the delimiter, they are re-emitted from the delimiter
 * itself if the match fails later. The body's first delimiter may omit the
 * CRLF: the parser starts as if it had just read one. */
#include "http/multipart.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

const struct http_mp_limits http_mp_default_limits = {
    .max_boundary = 70,
    .max_preamble = 1024,
    .max_header_bytes = 8192,
    .max_parts = 1000,
};

enum state { S_PREAMBLE, S_AFTER_DELIM, S_DASH, S_PAD, S_CR, S_HEADERS, S_DATA, S_EPILOGUE };

enum { MAX_PAD = 256 };

struct http_multipart {
    struct http_mp_limits lim;
    struct http_mp_callbacks cb;
    void *ud;
    enum state st;
    int err;
    char *delim; /* "\r\n--" boundary */
    size_t dlen;
    size_t match;   /* delimiter bytes matched so far */
    size_t carried; /* of those, bytes from earlier pieces */
    size_t seen;    /* preamble bytes, or padding bytes */
    size_t nparts;
    struct buf hdr;
};

static bool is_bchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           strchr("'()+_,-./:=? ", c) != NULL;
}

const char *http_multipart_strerror(int err)
{
    switch (err) {
    case HTTP_MP_OK:
        return "OK.";
    case HTTP_MP_EBOUNDARY:
        return "Invalid or missing multipart boundary.";
    case HTTP_MP_ENODELIM:
        return "The multipart body does not start with its boundary.";
    case HTTP_MP_EHEADER:
        return "Malformed multipart part headers.";
    case HTTP_MP_EHEADER_SIZE:
        return "Multipart part headers too large.";
    case HTTP_MP_EPARTS:
        return "Too many multipart parts.";
    case HTTP_MP_ETRUNCATED:
        return "The multipart body ended before its closing boundary.";
    case HTTP_MP_EABORTED:
        return "The multipart upload was aborted.";
    default:
        return "Invalid multipart body.";
    }
}

/* Reads one parameter value at *p (token or quoted-string, unescaped in
 * place: the result never outgrows the source). */
static struct slice param_value(char **pp, char *end)
{
    char *p = *pp;
    if (p < end && *p == '"') {
        char *w = ++p, *s = w;
        while (p < end && *p != '"') {
            if (*p == '\\' && p + 1 < end)
                p++;
            *w++ = *p++;
        }
        *pp = p < end ? p + 1 : end;
        return slice_make(s, (size_t)(w - s));
    }
    char *s = p;
    while (p < end && *p != ';' && *p != ' ' && *p != '\t')
        p++;
    *pp = p;
    return slice_make(s, (size_t)(p - s));
}

static int parse_disposition(char *p, char *end, struct http_mp_part *part)
{
    char *s = p;
    while (p < end && *p != ';')
        p++;
    if (!slice_case_eq(slice_trim(slice_make(s, (size_t)(p - s))), SLICE_LIT("form-data")))
        return HTTP_MP_EHEADER;
    bool have_name = false;
    while (p < end) {
        p++; /* ';' */
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        char *k = p;
        while (p < end && *p != '=' && *p != ';')
            p++;
        struct slice key = slice_trim(slice_make(k, (size_t)(p - k)));
        if (p >= end || *p != '=')
            return key.len ? HTTP_MP_EHEADER : 0;
        p++;
        struct slice val = param_value(&p, end);
        if (slice_case_eq(key, SLICE_LIT("name"))) {
            part->name = val;
            have_name = true;
        } else if (slice_case_eq(key, SLICE_LIT("filename"))) {
            part->filename = val;
        }
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p < end && *p != ';')
            return HTTP_MP_EHEADER;
    }
    return have_name ? 0 : HTTP_MP_EHEADER;
}

/* The header section is in mp->hdr, its final CRLF CRLF (or lone CRLF)
 * included. */
static int headers_done(struct http_multipart *mp)
{
    struct http_mp_part part = {SLICE_NULL, SLICE_NULL, SLICE_NULL};
    bool have_disp = false;
    char *p = mp->hdr.ptr, *end = mp->hdr.ptr + mp->hdr.len - 2;
    while (p < end) {
        char *eol = memmem(p, (size_t)(end - p + 2), "\r\n", 2);
        char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p || *p == ' ' || *p == '\t')
            return HTTP_MP_EHEADER;
        struct slice name = slice_make(p, (size_t)(colon - p));
        for (size_t i = 0; i < name.len; i++)
            if ((unsigned char)name.ptr[i] <= ' ' || name.ptr[i] == 0x7f)
                return HTTP_MP_EHEADER;
        char *v = colon + 1;
        if (memchr(v, '\0', (size_t)(eol - v)))
            return HTTP_MP_EHEADER;
        if (slice_case_eq(name, SLICE_LIT("Content-Disposition"))) {
            if (have_disp)
                return HTTP_MP_EHEADER;
            have_disp = true;
            int rc = parse_disposition(v, eol, &part);
            if (rc)
                return rc;
        } else if (slice_case_eq(name, SLICE_LIT("Content-Type"))) {
            part.content_type = slice_trim(slice_make(v, (size_t)(eol - v)));
        }
        p = eol + 2;
    }
    if (!have_disp)
        return HTTP_MP_EHEADER;
    if (mp->cb.on_part && mp->cb.on_part(mp->ud, &part))
        return HTTP_MP_EABORTED;
    return 0;
}

static int emit(struct http_multipart *mp, const char *p, size_t n)
{
    if (n == 0 || mp->st != S_DATA || !mp->cb.on_data)
        return 0;
    return mp->cb.on_data(mp->ud, slice_make(p, n)) ? HTTP_MP_EABORTED : 0;
}

/* Scans p[0..n) for the delimiter, emitting data in S_DATA. Returns the
 * bytes consumed (up to and including a delimiter found, else n) or an
 * error; *found says whether a delimiter ended the scan. */
static long scan(struct http_multipart *mp, const char *p, size_t n, bool *found)
{
    size_t i = 0;
    /* Where the open match began in this piece; SIZE_MAX: in an earlier one. */
    size_t mstart = mp->match ? SIZE_MAX : 0;
    *found = false;
    while (i < n) {
        if (mp->match == 0) {
            const char *cr = memchr(p + i, '\r', n - i);
            if (!cr) {
                i = n;
                break;
            }
            i = (size_t)(cr - p) + 1;
            mp->match = 1;
            mstart = i - 1;
            continue;
        }
        if (p[i] == mp->delim[mp->match]) {
            i++;
            if (++mp->match == mp->dlen) {
                int rc = mstart == SIZE_MAX ? 0 : emit(mp, p, mstart);
                mp->match = mp->carried = 0;
                *found = true;
                return rc ? rc : (long)i;
            }
            continue;
        }
        if (mstart == SIZE_MAX) {
            int rc = emit(mp, mp->delim, mp->carried);
            if (rc)
                return rc;
            mp->carried = 0;
        }
        mp->match = 0; /* p[i] is looked at again: it may be a CR */
    }
    int rc;
    if (mp->match == 0) {
        rc = emit(mp, p, n);
    } else {
        rc = mstart == SIZE_MAX ? 0 : emit(mp, p, mstart);
        mp->carried = mp->match;
    }
    return rc ? rc : (long)n;
}

static int fail(struct http_multipart *mp, int err)
{
    mp->err = err;
    buf_free(&mp->hdr);
    return err;
}

int http_multipart_feed(struct http_multipart *mp, struct slice chunk)
{
    const char *p = chunk.ptr;
    size_t n = chunk.len;
    while (!mp->err && n) {
        switch (mp->st) {
        case S_PREAMBLE:
        case S_DATA: {
            bool found;
            long used = scan(mp, p, n, &found);
            if (used < 0)
                return fail(mp, (int)used);
            if (mp->st == S_PREAMBLE) {
                mp->seen += (size_t)used;
                if (mp->seen > mp->lim.max_preamble + mp->dlen)
                    return fail(mp, HTTP_MP_ENODELIM);
            } else if (found && mp->cb.on_part_end && mp->cb.on_part_end(mp->ud)) {
                return fail(mp, HTTP_MP_EABORTED);
            }
            if (found)
                mp->st = S_AFTER_DELIM;
            p += used;
            n -= (size_t)used;
            break;
        }
        case S_AFTER_DELIM:
            if (*p == '-') {
                mp->st = S_DASH;
            } else {
                if (++mp->nparts > mp->lim.max_parts)
                    return fail(mp, HTTP_MP_EPARTS);
                mp->seen = 0;
                mp->st = S_PAD;
                continue; /* the same byte, as padding or CR */
            }
            p++, n--;
            break;
        case S_DASH:
            if (*p != '-')
                return fail(mp, HTTP_MP_EHEADER);
            mp->st = S_EPILOGUE;
            p++, n--;
            break;
        case S_PAD:
            if (*p == '\r')
                mp->st = S_CR;
            else if ((*p != ' ' && *p != '\t') || ++mp->seen > MAX_PAD)
                return fail(mp, HTTP_MP_EHEADER);
            p++, n--;
            break;
        case S_CR:
            if (*p != '\n')
                return fail(mp, HTTP_MP_EHEADER);
            buf_reset(&mp->hdr);
            mp->st = S_HEADERS;
            p++, n--;
            break;
        case S_HEADERS: {
            const char *nl = memchr(p, '\n', n);
            size_t take = nl ? (size_t)(nl - p) + 1 : n;
            if (mp->hdr.len + take > mp->lim.max_header_bytes)
                return fail(mp, HTTP_MP_EHEADER_SIZE);
            buf_append(&mp->hdr, p, take);
            p += take;
            n -= take;
            if (!nl)
                break;
            const char *h = mp->hdr.ptr;
            size_t hl = mp->hdr.len;
            if (hl < 2 || h[hl - 2] != '\r')
                return fail(mp, HTTP_MP_EHEADER);
            if (hl == 2 || (hl >= 4 && h[hl - 4] == '\r' && h[hl - 3] == '\n')) {
                int rc = headers_done(mp);
                if (rc)
                    return fail(mp, rc);
                mp->st = S_DATA;
            }
            break;
        }
        case S_EPILOGUE:
            n = 0;
            break;
        }
    }
    return mp->err;
}

int http_multipart_finish(struct http_multipart *mp)
{
    if (mp->err)
        return mp->err;
    if (mp->st != S_EPILOGUE)
        return fail(mp, mp->st == S_PREAMBLE ? HTTP_MP_ENODELIM : HTTP_MP_ETRUNCATED);
    return 0;
}

int http_multipart_boundary(struct slice ct, struct slice *boundary)
{
    const char *p = ct.ptr, *end = ct.ptr + ct.len;
    const char *semi = p ? memchr(p, ';', ct.len) : NULL;
    struct slice type = slice_trim(slice_make(p, (size_t)((semi ? semi : end) - p)));
    if (!p || !slice_case_eq(type, SLICE_LIT("multipart/form-data")))
        return HTTP_MP_EBOUNDARY;
    while (semi) {
        p = semi + 1;
        semi = memchr(p, ';', (size_t)(end - p));
        struct slice param = slice_trim(slice_make(p, (size_t)((semi ? semi : end) - p)));
        const char *eq = memchr(param.ptr, '=', param.len);
        if (!eq || !slice_case_eq(slice_trim(slice_make(param.ptr, (size_t)(eq - param.ptr))),
                                  SLICE_LIT("boundary")))
            continue;
        struct slice v = slice_trim(slice_make(eq + 1, (size_t)(param.ptr + param.len - eq - 1)));
        if (v.len >= 2 && v.ptr[0] == '"' && v.ptr[v.len - 1] == '"')
            v = slice_make(v.ptr + 1, v.len - 2);
        if (v.len == 0)
            return HTTP_MP_EBOUNDARY;
        *boundary = v;
        return 0;
    }
    return HTTP_MP_EBOUNDARY;
}

struct http_multipart *http_multipart_new(struct slice boundary, const struct http_mp_limits *lim,
                                          const struct http_mp_callbacks *cb, void *ud)
{
    if (!lim)
        lim = &http_mp_default_limits;
    if (boundary.len == 0 || boundary.len > lim->max_boundary ||
        boundary.ptr[boundary.len - 1] == ' ')
        return NULL;
    for (size_t i = 0; i < boundary.len; i++)
        if (!is_bchar((unsigned char)boundary.ptr[i]))
            return NULL;
    struct http_multipart *mp = xcalloc(1, sizeof(*mp));
    mp->lim = *lim;
    mp->cb = *cb;
    mp->ud = ud;
    mp->dlen = boundary.len + 4;
    mp->delim = xmalloc(mp->dlen + 1);
    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, boundary.ptr, boundary.len);
    mp->delim[mp->dlen] = '\0';
    mp->st = S_PREAMBLE;
    mp->match = mp->carried = 2; /* the CRLF before the first delimiter is optional */
    return mp;
}

void http_multipart_free(struct http_multipart *mp)
{
    if (!mp)
        return;
    buf_free(&mp->hdr);
    free(mp->delim);
    free(mp);
}
