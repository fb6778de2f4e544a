/* The gateway's configuration file (format in gateway.h) and route lookup.
 * Read once at start-up; the route lookup runs per request, over a handful of
 * routes, so it is a linear scan with no allocation. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "gateway/gateway.h"

void gateway_config_defaults(struct gateway_config *gc)
{
    memset(gc, 0, sizeof(*gc));
    gc->connect_timeout_ms = 2000;
    gc->first_byte_timeout_ms = 30000;
    gc->upstream_idle_timeout_ms = 60000;
    gc->keepalive_idle_ms = 20000;
    gc->keepalive_max = 64;
    gc->tunnel_idle_timeout_ms = 600000;
    gc->eject_ms = 1000;
    gc->eject_max_ms = 30000;
    gc->eject_5xx = 5;
    gc->panic_percent = 50;
    gc->hash_load_pct = 125;
    gc->health_interval_ms = 2000;
    gc->health_timeout_ms = 1000;
    gc->health_rise = 2;
    gc->health_fall = 2;
}

/* The string settings own heap copies; until set they read as these. */
const char *gateway_health_path(const struct gateway_config *gc)
{
    return gc->health_path ? gc->health_path : "/api/health";
}

const char *gateway_metrics_path(const struct gateway_config *gc)
{
    if (!gc->metrics_path)
        return "/metrics";
    return gc->metrics_path[0] ? gc->metrics_path : NULL;
}

static void upstream_free(struct gateway_upstream *u)
{
    for (size_t k = 0; k < u->ntargets; k++)
        free(u->targets[k]);
    free(u->targets);
    free(u->name);
    free(u->hash_name);
}

void gateway_config_free(struct gateway_config *gc)
{
    for (size_t i = 0; i < gc->nupstreams; i++)
        upstream_free(&gc->upstreams[i]);
    free(gc->health_path);
    free(gc->metrics_path);
    free(gc->cache_targeted_field);
    free(gc->cache_tag_field);
    free(gc->cache_purge_token);
    free(gc->cache_disk_dir);
    for (size_t i = 0; i < gc->nroutes; i++) {
        free(gc->routes[i].host);
        free(gc->routes[i].prefix);
    }
    free(gc->upstreams);
    free(gc->routes);
    gateway_config_defaults(gc);
}

static const struct {
    const char *name;
    size_t offset;
    int min, max;
} int_settings[] = {
    {"connect_timeout_ms", offsetof(struct gateway_config, connect_timeout_ms), 1, 600000},
    {"first_byte_timeout_ms", offsetof(struct gateway_config, first_byte_timeout_ms), 1, 3600000},
    {"upstream_idle_timeout_ms", offsetof(struct gateway_config, upstream_idle_timeout_ms), 1,
     3600000},
    {"keepalive_idle_ms", offsetof(struct gateway_config, keepalive_idle_ms), 1, 3600000},
    {"keepalive_max", offsetof(struct gateway_config, keepalive_max), 0, 100000},
    {"tunnel_idle_timeout_ms", offsetof(struct gateway_config, tunnel_idle_timeout_ms), 1,
     86400000},
    {"eject_ms", offsetof(struct gateway_config, eject_ms), 1, 600000},
    {"eject_max_ms", offsetof(struct gateway_config, eject_max_ms), 1, 3600000},
    {"eject_5xx", offsetof(struct gateway_config, eject_5xx), 0, 1000},
    {"panic_percent", offsetof(struct gateway_config, panic_percent), 0, 100},
    {"hash_load_pct", offsetof(struct gateway_config, hash_load_pct), 100, 1000},
    {"health_interval_ms", offsetof(struct gateway_config, health_interval_ms), 0, 3600000},
    {"health_timeout_ms", offsetof(struct gateway_config, health_timeout_ms), 1, 600000},
    {"health_rise", offsetof(struct gateway_config, health_rise), 1, 100},
    {"health_fall", offsetof(struct gateway_config, health_fall), 1, 100},
};

static bool valid_name(struct slice w);

/* A path setting: '/' then visible ASCII, as it goes into a request line. */
static bool valid_path(const char *v)
{
    if (v[0] != '/' || strlen(v) > 256)
        return false;
    for (const char *c = v; *c; c++)
        if (*c <= ' ' || *c > '~')
            return false;
    return true;
}

static const struct {
    const char *name;
    size_t offset;
} path_settings[] = {
    {"health_path", offsetof(struct gateway_config, health_path)},
    {"metrics_path", offsetof(struct gateway_config, metrics_path)},
};

/* A byte count with an optional k, m or g (binary) suffix. */
static bool parse_bytes(const char *v, size_t *out)
{
    char *e;
    errno = 0;
    unsigned long long n = strtoull(v, &e, 10);
    if (errno || e == v || v[0] == '-')
        return false;
    unsigned shift = 0;
    if (*e == 'k' || *e == 'K')
        shift = 10;
    else if (*e == 'm' || *e == 'M')
        shift = 20;
    else if (*e == 'g' || *e == 'G')
        shift = 30;
    if (shift)
        e++;
    if (*e || n > (SIZE_MAX >> shift))
        return false;
    *out = (size_t)(n << shift);
    return true;
}

/* A field name (RFC 9110 token) as the cache matches response fields. */
static bool valid_field(const char *v)
{
    if (!v[0] || strlen(v) > 64)
        return false;
    for (const char *c = v; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return false;
    return true;
}

/* The cache settings; returns 1 if k is one (0 not, -1 with err on a bad
 * value). */
static int cache_setting(struct gateway_config *gc, const char *k, const char *v, char *err,
                         size_t errlen)
{
    if (!strcmp(k, "cache_max_bytes") || !strcmp(k, "cache_max_object_bytes") ||
        !strcmp(k, "cache_disk_max_bytes")) {
        size_t *slot = !strcmp(k, "cache_max_bytes")        ? &gc->cache_max_bytes
                       : !strcmp(k, "cache_disk_max_bytes") ? &gc->cache_disk_max_bytes
                                                            : &gc->cache_max_object_bytes;
        if (!parse_bytes(v, slot)) {
            snprintf(err, errlen, "%s: expected a byte count such as 1048576, 512k or 64m", k);
            return -1;
        }
        return 1;
    }
    if (!strcmp(k, "cache_policy")) {
        if (!strcmp(v, "s3fifo"))
            gc->cache_policy = CACHE_POLICY_S3FIFO;
        else if (!strcmp(v, "lru"))
            gc->cache_policy = CACHE_POLICY_LRU;
        else {
            snprintf(err, errlen, "cache_policy: expected s3fifo or lru");
            return -1;
        }
        return 1;
    }
    if (!strcmp(k, "cache_disk_dir")) {
        free(gc->cache_disk_dir);
        gc->cache_disk_dir = xstrdup(v);
        return 1;
    }
    char **slot = !strcmp(k, "cache_targeted_field") ? &gc->cache_targeted_field
                  : !strcmp(k, "cache_tag_field")    ? &gc->cache_tag_field
                  : !strcmp(k, "cache_purge_token")  ? &gc->cache_purge_token
                                                     : NULL;
    if (!slot)
        return 0;
    bool token = slot == &gc->cache_purge_token;
    bool ok = token ? strlen(v) >= 16 : valid_field(v);
    for (const char *c = v; token && *c; c++)
        ok &= *c > ' ' && *c <= '~';
    if (!ok) {
        snprintf(err, errlen, "%s: %s", k,
                 token ? "expected at least 16 visible ASCII characters"
                       : "expected a field name (letters, digits, '-')");
        return -1;
    }
    free(*slot);
    *slot = xstrdup(v);
    return 1;
}

/* One "key=value" word of an upstream line. Returns false if unknown. */
static bool upstream_option(struct gateway_upstream *u, struct slice w)
{
    const char *eq = memchr(w.ptr, '=', w.len);
    struct slice key = slice_make(w.ptr, (size_t)(eq - w.ptr));
    struct slice val = slice_make(eq + 1, (size_t)(w.ptr + w.len - eq - 1));
    if (slice_eq_cstr(key, "balance")) {
        static const char *const names[] = {"p2c", "round_robin", "least_outstanding", "hash"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (slice_eq_cstr(val, names[i])) {
                u->balance = (enum gateway_balance)i;
                return true;
            }
        return false;
    }
    if (!slice_eq_cstr(key, "hash"))
        return false;
    const char *colon = memchr(val.ptr, ':', val.len);
    if (!colon)
        return false;
    struct slice kind = slice_make(val.ptr, (size_t)(colon - val.ptr));
    struct slice arg = slice_make(colon + 1, (size_t)(val.ptr + val.len - colon - 1));
    if (!valid_name(arg))
        return false;
    if (slice_eq_cstr(kind, "path")) {
        long long n = slice_to_uint(arg);
        if (n < 0 || n > 64)
            return false;
        u->hash_from = GATEWAY_HASH_PATH;
        u->hash_segment = (int)n;
        return true;
    }
    if (slice_eq_cstr(kind, "header"))
        u->hash_from = GATEWAY_HASH_HEADER;
    else if (slice_eq_cstr(kind, "query"))
        u->hash_from = GATEWAY_HASH_QUERY;
    else
        return false;
    free(u->hash_name);
    u->hash_name = xstrndup(arg.ptr, arg.len);
    return true;
}

/* Splits the next whitespace-separated word off *s. */
static struct slice next_word(struct slice *s)
{
    size_t i = 0;
    while (i < s->len && (s->ptr[i] == ' ' || s->ptr[i] == '\t'))
        i++;
    size_t start = i;
    while (i < s->len && s->ptr[i] != ' ' && s->ptr[i] != '\t')
        i++;
    struct slice w = slice_make(s->ptr + start, i - start);
    *s = slice_make(s->ptr + i, s->len - i);
    return w;
}

static bool valid_name(struct slice w)
{
    if (w.len == 0 || w.len > 64)
        return false;
    for (size_t i = 0; i < w.len; i++) {
        char c = w.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Numeric ADDR:PORT or [V6]:PORT, as the client pools accept. */
static bool valid_target(struct slice w)
{
    if (w.len < 3 || w.len > 60)
        return false;
    const char *colon = NULL;
    for (size_t i = 0; i < w.len; i++)
        if (w.ptr[i] == ':')
            colon = w.ptr + i;
    if (!colon || colon == w.ptr || colon == w.ptr + w.len - 1)
        return false;
    long port = 0;
    for (const char *p = colon + 1; p < w.ptr + w.len; p++) {
        if (*p < '0' || *p > '9' || port > 65535)
            return false;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535)
        return false;
    char host[64];
    size_t n = (size_t)(colon - w.ptr);
    unsigned char tmp[16];
    if (n >= sizeof(host))
        return false;
    if (w.ptr[0] == '[') {
        if (n < 3 || w.ptr[n - 1] != ']')
            return false;
        memcpy(host, w.ptr + 1, n - 2);
        host[n - 2] = '\0';
        return inet_pton(AF_INET6, host, tmp) == 1;
    }
    memcpy(host, w.ptr, n);
    host[n] = '\0';
    return inet_pton(AF_INET, host, tmp) == 1;
}

static int find_upstream(const struct gateway_config *gc, struct slice name, size_t *out)
{
    for (size_t i = 0; i < gc->nupstreams; i++)
        if (slice_eq_cstr(name, gc->upstreams[i].name)) {
            *out = i;
            return 0;
        }
    return -1;
}

/* Routes name their upstream by index once every upstream is known; until
 * then the name waits here. */
struct pending_route {
    struct slice upstream;
    int line;
};

int gateway_config_parse(struct gateway_config *gc, struct config *shared, struct slice text,
                         char *err, size_t errlen)
{
    gateway_config_defaults(gc);
    struct pending_route *pend = NULL;
    int lineno = 0;
    const char *p = text.ptr, *end = text.ptr + text.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        struct slice line = slice_make(p, (size_t)((nl ? nl : end) - p));
        p = nl ? nl + 1 : end;
        lineno++;
        const char *hash = memchr(line.ptr, '#', line.len);
        if (hash)
            line.len = (size_t)(hash - line.ptr);
        line = slice_trim(line);
        if (line.len == 0)
            continue;
        if (memchr(line.ptr, '\0', line.len)) {
            snprintf(err, errlen, "line %d: NUL byte", lineno);
            goto fail;
        }
        const char *eq = memchr(line.ptr, '=', line.len);
        struct slice rest = line;
        struct slice word = next_word(&rest);
        struct slice after = slice_trim(rest);
        bool assignment = after.len && after.ptr[0] == '=';
        if (slice_eq_cstr(word, "upstream") && !assignment) {
            struct slice name = next_word(&rest);
            size_t dummy;
            if (!valid_name(name) || find_upstream(gc, name, &dummy) == 0) {
                snprintf(err, errlen, "line %d: upstream needs a new name of [A-Za-z0-9_.-]",
                         lineno);
                goto fail;
            }
            struct gateway_upstream u = {.name = xstrndup(name.ptr, name.len)};
            for (struct slice t = next_word(&rest); t.len; t = next_word(&rest)) {
                if (memchr(t.ptr, '=', t.len) && !upstream_option(&u, t)) {
                    snprintf(err, errlen,
                             "line %d: '%.*s': want balance=p2c|round_robin|least_outstanding|hash "
                             "or hash=header:NAME|query:NAME|path:N",
                             lineno, (int)(t.len > 60 ? 60 : t.len), t.ptr);
                    upstream_free(&u);
                    goto fail;
                }
                if (memchr(t.ptr, '=', t.len))
                    continue;
                if (!valid_target(t) || u.ntargets >= 256) {
                    snprintf(err, errlen, "line %d: '%.*s' is not a numeric ADDR:PORT", lineno,
                             (int)(t.len > 60 ? 60 : t.len), t.ptr);
                    upstream_free(&u);
                    goto fail;
                }
                u.targets = xrealloc(u.targets, (u.ntargets + 1) * sizeof(*u.targets));
                u.targets[u.ntargets++] = xstrndup(t.ptr, t.len);
            }
            if (u.balance == GATEWAY_BALANCE_HASH && u.hash_from == GATEWAY_HASH_NONE) {
                snprintf(err, errlen,
                         "line %d: balance=hash needs hash=header:|query:|path:", lineno);
                for (size_t k = 0; k < u.ntargets; k++)
                    free(u.targets[k]);
                free(u.targets);
                free(u.name);
                goto fail;
            }
            if (!u.ntargets) {
                snprintf(err, errlen, "line %d: upstream %s has no ADDR:PORT", lineno, u.name);
                free(u.name);
                free(u.hash_name);
                goto fail;
            }
            gc->upstreams = xrealloc(gc->upstreams, (gc->nupstreams + 1) * sizeof(*gc->upstreams));
            gc->upstreams[gc->nupstreams++] = u;
            continue;
        }
        if (slice_eq_cstr(word, "route") && !assignment) {
            struct slice spec = next_word(&rest), up = next_word(&rest);
            const char *slash = spec.len ? memchr(spec.ptr, '/', spec.len) : NULL;
            if (!slash || !up.len || next_word(&rest).len) {
                snprintf(err, errlen, "line %d: want 'route [HOST]/PREFIX UPSTREAM'", lineno);
                goto fail;
            }
            struct gateway_route r = {NULL, NULL, 0};
            if (slash > spec.ptr)
                r.host = xstrndup(spec.ptr, (size_t)(slash - spec.ptr));
            r.prefix = xstrndup(slash, (size_t)(spec.ptr + spec.len - slash));
            gc->routes = xrealloc(gc->routes, (gc->nroutes + 1) * sizeof(*gc->routes));
            pend = xrealloc(pend, (gc->nroutes + 1) * sizeof(*pend));
            pend[gc->nroutes] = (struct pending_route){up, lineno};
            gc->routes[gc->nroutes++] = r;
            continue;
        }
        if (!eq) {
            snprintf(err, errlen, "line %d: want 'upstream', 'route' or 'name = value'", lineno);
            goto fail;
        }
        struct slice key = slice_trim(slice_make(line.ptr, (size_t)(eq - line.ptr)));
        struct slice val = slice_trim(slice_make(eq + 1, (size_t)(line.ptr + line.len - eq - 1)));
        char k[64], v[1024];
        if (key.len >= sizeof(k) || val.len >= sizeof(v)) {
            snprintf(err, errlen, "line %d: name or value too long", lineno);
            goto fail;
        }
        memcpy(k, key.ptr, key.len);
        k[key.len] = '\0';
        memcpy(v, val.ptr, val.len);
        v[val.len] = '\0';
        bool done = false;
        for (size_t i = 0; i < sizeof(int_settings) / sizeof(int_settings[0]) && !done; i++) {
            if (strcmp(k, int_settings[i].name) != 0)
                continue;
            char *e;
            errno = 0;
            long n = strtol(v, &e, 10);
            if (errno || e == v || *e || n < int_settings[i].min || n > int_settings[i].max) {
                snprintf(err, errlen, "line %d: %s: expected a whole number from %d to %d", lineno,
                         k, int_settings[i].min, int_settings[i].max);
                goto fail;
            }
            *(int *)((char *)gc + int_settings[i].offset) = (int)n;
            done = true;
        }
        for (size_t i = 0; i < sizeof(path_settings) / sizeof(path_settings[0]) && !done; i++) {
            if (strcmp(k, path_settings[i].name) != 0)
                continue;
            char **slot = (char **)((char *)gc + path_settings[i].offset);
            bool may_be_empty = !strcmp(k, "metrics_path");
            if (!(may_be_empty && !v[0]) && !valid_path(v)) {
                snprintf(err, errlen, "line %d: %s: expected a path starting with /", lineno, k);
                goto fail;
            }
            free(*slot);
            *slot = xstrdup(v);
            done = true;
        }
        if (done)
            continue;
        char reason[256];
        int cs = cache_setting(gc, k, v, reason, sizeof(reason));
        if (cs < 0) {
            snprintf(err, errlen, "line %d: %s", lineno, reason);
            goto fail;
        }
        if (cs)
            continue;
        if (!shared || !strcmp(k, "config") ||
            config_set(shared, k, v, reason, sizeof(reason)) != 0) {
            snprintf(err, errlen, "line %d: %s", lineno, shared ? reason : "unknown setting");
            if (shared && !strcmp(k, "config"))
                snprintf(err, errlen, "line %d: config cannot be nested", lineno);
            goto fail;
        }
    }
    if (!gc->nroutes) {
        snprintf(err, errlen, "no route: add at least one 'route /PREFIX UPSTREAM' line");
        goto fail;
    }
    for (size_t i = 0; i < gc->nroutes; i++)
        if (find_upstream(gc, pend[i].upstream, &gc->routes[i].upstream) != 0) {
            snprintf(err, errlen, "line %d: no upstream named '%.*s'", pend[i].line,
                     (int)(pend[i].upstream.len > 64 ? 64 : pend[i].upstream.len),
                     pend[i].upstream.ptr);
            goto fail;
        }
    free(pend);
    return 0;
fail:
    free(pend);
    gateway_config_free(gc);
    return -1;
}

int gateway_config_load(struct gateway_config *gc, struct config *shared, const char *path,
                        char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len < (1u << 20))
        buf_append(&b, chunk, n);
    fclose(f);
    char inner[400];
    int rc = gateway_config_parse(gc, shared, buf_slice(&b), inner, sizeof(inner));
    if (rc)
        snprintf(err, errlen, "%s: %s", path, inner);
    buf_free(&b);
    return rc;
}

const struct gateway_route *gateway_route_match(const struct gateway_config *gc, struct slice host,
                                                struct slice path)
{
    if (host.ptr) {
        /* The port is not part of the name; an IPv6 literal keeps its brackets. */
        const char *colon = NULL;
        for (size_t i = host.len; i-- > 0;) {
            if (host.ptr[i] == ']')
                break;
            if (host.ptr[i] == ':') {
                colon = host.ptr + i;
                break;
            }
        }
        if (colon)
            host.len = (size_t)(colon - host.ptr);
    }
    for (int pass = 0; pass < 2; pass++) {
        const struct gateway_route *best = NULL;
        size_t best_len = 0;
        for (size_t i = 0; i < gc->nroutes; i++) {
            const struct gateway_route *r = &gc->routes[i];
            if ((pass == 0) != (r->host != NULL))
                continue;
            if (r->host && (!host.ptr || !slice_case_eq(host, slice_cstr(r->host))))
                continue;
            struct slice pre = slice_cstr(r->prefix);
            if (slice_starts_with(path, pre) && (!best || pre.len > best_len)) {
                best = r;
                best_len = pre.len;
            }
        }
        if (best)
            return best;
    }
    return NULL;
}
