#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/timefmt.h"

enum log_level log_min_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
{
    if (level < log_min_level)
        return;
    char msg[2048];
    int off = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    off += (int)strftime(msg, sizeof(msg), "%Y-%m-%dT%H:%M:%S", &tm);
    off += snprintf(msg + off, sizeof(msg) - (size_t)off, ".%03ldZ %s ", ts.tv_nsec / 1000000,
                    level_names[level]);
    if (file)
        off += snprintf(msg + off, sizeof(msg) - (size_t)off, "%s:%d ", file, line);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg + off, sizeof(msg) - (size_t)off - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    off += n;
    if ((size_t)off > sizeof(msg) - 2)
        off = (int)sizeof(msg) - 2;
    msg[off++] = '\n';
    /* One write per line so lines from several loops never interleave. */
    fwrite(msg, 1, (size_t)off, stderr);
}

/* The access log is block-buffered (a write per line would cost a syscall
 * per request); it is flushed when a line comes a second or more after the
 * last flush, and at exit. */
static _Atomic uint64_t access_flushed_ms;

void log_access(const char *line, unsigned long len)
{
    char out[4096];
    if (len > sizeof(out) - 1)
        len = sizeof(out) - 1;
    memcpy(out, line, len);
    out[len] = '\n';
    fwrite(out, 1, len + 1, stdout);
    uint64_t now = time_mono_ms(), last = atomic_load(&access_flushed_ms);
    if (now - last >= 1000 && atomic_compare_exchange_strong(&access_flushed_ms, &last, now))
        fflush(stdout);
}

int log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0) {
            log_min_level = (enum log_level)i;
            return 0;
        }
    return -1;
}
