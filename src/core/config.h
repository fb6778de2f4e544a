/* Settings: one declarative table read by the config file, the environment
 * (CRUDER_NAME) and the command line (--name) alike, in that order of
 * precedence, lowest first (Redis config.c). Each entry names its type, bounds,
 * default, the roles it applies to and a line of help; `--help` prints the table. */
#ifndef CORE_CONFIG_H
#define CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum config_durability { DURABILITY_FULL, DURABILITY_NORMAL, DURABILITY_OFF };

struct config {
    char *http;                     /* ADDR:PORT[,ADDR:PORT...] to listen on */
    char *dir;                      /* data directory */
    int loops;                      /* event loops; 0 = one per core */
    int max_connections;            /* across all loops */
    int max_header_bytes;           /* request line + headers */
    int max_headers;                /* header count */
    int max_request_line;           /* bytes of method + target + version */
    long long max_body_bytes;       /* request body */
    int header_timeout_ms;          /* whole head must arrive within this */
    int idle_timeout_ms;            /* keep-alive connection idle limit */
    int body_timeout_ms;            /* longest pause between two body reads */
    int shutdown_timeout_ms;        /* bounded drain on SIGTERM/SIGINT */
    int durability;                 /* enum config_durability */
    int partitions;                 /* P, fixed when the data directory is created */
    int store_readers;              /* reader threads on the store */
    int max_write_batch;            /* writes one group commit may carry */
    int max_write_queue;            /* queued writes before 503 */
    int token_duration_s;           /* superuser token lifetime */
    int auth_failures_per_identity; /* failed logins a minute before 429 */
    int auth_attempts_per_address;  /* logins and refreshes a minute from one address */
    int records_shared_max_age;     /* seconds a shared cache may keep a public records answer */
    char *log_level;
    bool access_log;
};

enum { CONFIG_ROLE_SERVE = 1, CONFIG_ROLE_ADMIN = 2 };

/* Fills cfg with every default. Strings are heap-owned by cfg. */
void config_defaults(struct config *cfg);
void config_free(struct config *cfg);

/* Applies, in order: the file named by --config or CRUDER_CONFIG (if any), the
 * CRUDER_* environment, then the flags in argv. Non-flag arguments are moved to
 * the front of argv and counted in *npositional. On error returns -1 and writes a
 * one-line reason into err. */
int config_load(struct config *cfg, int role, int argc, char **argv, int *npositional, char *err,
                size_t errlen);

/* Sets one setting by name (underscores or dashes) from text; -1 with a reason. */
int config_set(struct config *cfg, const char *name, const char *value, char *err, size_t errlen);

/* Prints the settings that apply to role, with defaults and help. */
void config_print_help(int role, void *stream);

#endif
