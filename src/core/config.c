#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

enum setting_type { SET_STRING, SET_INT, SET_LLONG, SET_BOOL, SET_ENUM };

struct setting {
    const char *name;
    enum setting_type type;
    size_t offset;
    long long min, max;
    const char *def;
    const char *const *choices; /* SET_ENUM: NULL-terminated, index is the value */
    int roles;
    const char *help;
};

static const char *const durability_names[] = {"full", "normal", "off", NULL};

#define OFF(f) offsetof(struct config, f)
#define SERVE CONFIG_ROLE_SERVE
#define ALL (CONFIG_ROLE_SERVE | CONFIG_ROLE_ADMIN)

static const struct setting settings[] = {
    {"config", SET_STRING, (size_t)-1, 0, 0, NULL, NULL, ALL,
     "read settings from this file (name = value lines)"},
    {"http", SET_STRING, OFF(http), 0, 0, "127.0.0.1:8090", NULL, SERVE,
     "addresses to listen on: ADDR:PORT or [V6]:PORT, several comma-separated"},
    {"dir", SET_STRING, OFF(dir), 0, 0, "./cruder_data", NULL, ALL, "data directory"},
    {"loops", SET_INT, OFF(loops), 0, 256, "0", NULL, SERVE,
     "event loops, each with its own listener; 0 = one per core"},
    {"max_connections", SET_INT, OFF(max_connections), 1, 1000000, "16384", NULL, SERVE,
     "open client connections, across loops; excess ones get 503 and are closed"},
    {"max_header_bytes", SET_INT, OFF(max_header_bytes), 256, 1 << 20, "16384", NULL, SERVE,
     "bytes of request line and headers (431 past it)"},
    {"max_headers", SET_INT, OFF(max_headers), 1, 10000, "100", NULL, SERVE,
     "request header fields (431 past it)"},
    {"max_request_line", SET_INT, OFF(max_request_line), 64, 1 << 20, "8192", NULL, SERVE,
     "bytes of the request line (414 past it)"},
    {"max_body_bytes", SET_LLONG, OFF(max_body_bytes), 0, 1LL << 40, "33554432", NULL, SERVE,
     "request body bytes (413 past it, sent before the body is read)"},
    {"header_timeout_ms", SET_INT, OFF(header_timeout_ms), 10, 3600000, "10000", NULL, SERVE,
     "the whole request head must arrive within this (408 past it)"},
    {"idle_timeout_ms", SET_INT, OFF(idle_timeout_ms), 10, 3600000, "60000", NULL, SERVE,
     "an idle keep-alive connection is closed after this"},
    {"body_timeout_ms", SET_INT, OFF(body_timeout_ms), 10, 3600000, "30000", NULL, SERVE,
     "longest wait for the next piece of a request body (408 past it)"},
    {"shutdown_timeout_ms", SET_INT, OFF(shutdown_timeout_ms), 0, 600000, "10000", NULL, SERVE,
     "on SIGTERM/SIGINT, how long in-flight requests may take to finish"},
    {"durability", SET_ENUM, OFF(durability), 0, 0, "full", durability_names, ALL,
     "full: fsync every group commit; normal: WAL without fsync per commit; off"},
    {"partitions", SET_INT, OFF(partitions), 1, 1 << 20, "1024", NULL, ALL,
     "logical partitions P, fixed when the data directory is created"},
    {"store_readers", SET_INT, OFF(store_readers), 1, 256, "4", NULL, SERVE,
     "threads running store reads"},
    {"max_write_batch", SET_INT, OFF(max_write_batch), 1, 100000, "1024", NULL, SERVE,
     "writes one group commit may carry"},
    {"max_write_queue", SET_INT, OFF(max_write_queue), 1, 10000000, "65536", NULL, SERVE,
     "writes waiting for the writer before new ones get 503"},
    {"token_duration_s", SET_INT, OFF(token_duration_s), 60, 31536000, "86400", NULL, ALL,
     "lifetime of superuser auth tokens, seconds"},
    {"auth_failures_per_identity", SET_INT, OFF(auth_failures_per_identity), 1, 1000000, "10", NULL,
     SERVE, "failed logins a minute for one identity before 429"},
    {"auth_attempts_per_address", SET_INT, OFF(auth_attempts_per_address), 1, 100000000, "300",
     NULL, SERVE, "logins and token refreshes a minute from one client address before 429"},
    {"records_shared_max_age", SET_INT, OFF(records_shared_max_age), 0, 86400, "5", NULL, SERVE,
     "seconds a shared cache (cruder gateway) may serve a public records answer; 0: none"},
    {"log_level", SET_STRING, OFF(log_level), 0, 0, "info", NULL, ALL,
     "debug, info, warn or error"},
    {"access_log", SET_BOOL, OFF(access_log), 0, 0, "true", NULL, SERVE,
     "write one JSON line per request to stdout"},
};

enum { NSETTINGS = sizeof(settings) / sizeof(settings[0]) };

/* Setting names are matched with '-' and '_' treated alike, case-insensitively,
 * so --max-body-bytes, CRUDER_MAX_BODY_BYTES and max_body_bytes are one setting. */
static bool name_matches(const char *canon, const char *given, size_t n)
{
    size_t i = 0;
    for (; i < n && canon[i]; i++) {
        char g = given[i] == '-' ? '_' : (char)tolower((unsigned char)given[i]);
        if (g != canon[i])
            return false;
    }
    return i == n && canon[i] == '\0';
}

static const struct setting *find_setting(const char *name, size_t n)
{
    for (int i = 0; i < NSETTINGS; i++)
        if (name_matches(settings[i].name, name, n))
            return &settings[i];
    return NULL;
}

static int apply(struct config *cfg, const struct setting *s, const char *value, char *err,
                 size_t errlen)
{
    if (s->offset == (size_t)-1)
        return 0;
    char *field = (char *)cfg + s->offset;
    switch (s->type) {
    case SET_STRING: {
        char **dst = (char **)field;
        free(*dst);
        *dst = xstrdup(value);
        return 0;
    }
    case SET_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes")) {
            *(bool *)field = true;
            return 0;
        }
        if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no")) {
            *(bool *)field = false;
            return 0;
        }
        snprintf(err, errlen, "%s: expected true or false, got '%s'", s->name, value);
        return -1;
    case SET_ENUM:
        for (int i = 0; s->choices[i]; i++)
            if (!strcmp(value, s->choices[i])) {
                *(int *)field = i;
                return 0;
            }
        snprintf(err, errlen, "%s: '%s' is not one of the allowed values", s->name, value);
        return -1;
    case SET_INT:
    case SET_LLONG: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end || v < s->min || v > s->max) {
            snprintf(err, errlen, "%s: expected a whole number from %lld to %lld, got '%s'",
                     s->name, s->min, s->max, value);
            return -1;
        }
        if (s->type == SET_INT)
            *(int *)field = (int)v;
        else
            *(long long *)field = v;
        return 0;
    }
    }
    return -1;
}

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    char err[256];
    for (int i = 0; i < NSETTINGS; i++)
        if (settings[i].def && apply(cfg, &settings[i], settings[i].def, err, sizeof(err)))
            core_assert(!"setting default out of its own bounds");
}

void config_free(struct config *cfg)
{
    for (int i = 0; i < NSETTINGS; i++)
        if (settings[i].type == SET_STRING && settings[i].offset != (size_t)-1) {
            char **p = (char **)((char *)cfg + settings[i].offset);
            free(*p);
            *p = NULL;
        }
}

int config_set(struct config *cfg, const char *name, const char *value, char *err, size_t errlen)
{
    const struct setting *s = find_setting(name, strlen(name));
    if (!s) {
        snprintf(err, errlen, "unknown setting '%s'", name);
        return -1;
    }
    return apply(cfg, s, value, err, errlen);
}

static int load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '#' || *p == '\0')
            continue;
        char *eq = strchr(p, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected 'name = value'", path, lineno);
            rc = -1;
            break;
        }
        char *name_end = eq;
        while (name_end > p && isspace((unsigned char)name_end[-1]))
            name_end--;
        *name_end = '\0';
        char *v = eq + 1;
        while (isspace((unsigned char)*v))
            v++;
        char *v_end = v + strlen(v);
        while (v_end > v && isspace((unsigned char)v_end[-1]))
            v_end--;
        *v_end = '\0';
        char sub[512];
        if (config_set(cfg, p, v, sub, sizeof(sub))) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

int config_load(struct config *cfg, int role, int argc, char **argv, int *npositional, char *err,
                size_t errlen)
{
    /* The config file comes first, whichever way it is named, so that the
     * environment and the flags override it. */
    const char *file = getenv("CRUDER_CONFIG");
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            file = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            file = argv[i] + 9;
    }
    if (file && *file && load_file(cfg, file, err, errlen))
        return -1;

    for (int i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        if (!(s->roles & role) || s->offset == (size_t)-1)
            continue;
        char env[96] = "CRUDER_";
        size_t n = strlen(env);
        for (const char *c = s->name; *c && n < sizeof(env) - 1; c++)
            env[n++] = (char)toupper((unsigned char)*c);
        env[n] = '\0';
        const char *v = getenv(env);
        if (v && apply(cfg, s, v, err, errlen))
            return -1;
    }

    int npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            argv[npos++] = argv[i];
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct setting *s = find_setting(name, nlen);
        if (!s || !(s->roles & role)) {
            snprintf(err, errlen, "unknown option --%.*s", (int)nlen, name);
            return -1;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (s->type == SET_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
            value = "true";
        } else {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option --%s needs a value", s->name);
                return -1;
            }
            value = argv[++i];
        }
        if (apply(cfg, s, value, err, errlen))
            return -1;
    }
    *npositional = npos;
    return 0;
}

void config_print_help(int role, void *stream)
{
    FILE *out = stream;
    for (int i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        if (!(s->roles & role))
            continue;
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", s->name);
        for (char *c = flag + 2; *c; c++)
            if (*c == '_')
                *c = '-';
        fprintf(out, "  %-30s %s", flag, s->help);
        if (s->def)
            fprintf(out, " [%s]", s->def);
        fputc('\n', out);
    }
    fprintf(out, "\nEvery option can also be set as CRUDER_NAME in the environment "
                 "(CRUDER_MAX_BODY_BYTES=...)\nor as 'name = value' in the --config file; "
                 "flags override the environment, which overrides the file.\n");
}
