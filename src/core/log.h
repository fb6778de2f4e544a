/* Levelled logs to stderr, one line each, printf-checked. Debug builds add the
 * source file and line. The access log is structured JSON (one object a line)
 * and goes through log_access so it can be routed separately. */
#ifndef CORE_LOG_H
#define CORE_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

extern enum log_level log_min_level;

__attribute__((format(printf, 4, 5))) void log_write(enum log_level level, const char *file,
                                                     int line, const char *fmt, ...);
/* Writes one pre-formatted line (no newline) to the access log stream. */
void log_access(const char *line, unsigned long len);
/* 0 on success, -1 if `name` is not debug|info|warn|error. */
int log_set_level(const char *name);

#ifdef NDEBUG
#define LOG_SRC NULL, 0
#else
#define LOG_SRC __FILE__, __LINE__
#endif

#define log_debug(...)                                  \
    do {                                                \
        if (log_min_level <= LOG_DEBUG)                 \
            log_write(LOG_DEBUG, LOG_SRC, __VA_ARGS__); \
    } while (0)
#define log_info(...) log_write(LOG_INFO, LOG_SRC, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, LOG_SRC, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, LOG_SRC, __VA_ARGS__)

#endif
