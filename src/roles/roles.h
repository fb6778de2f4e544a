/* The roles of the one binary: each wires the layers into a process. main()
 * only dispatches to these. Each returns the process exit status. */
#ifndef ROLES_ROLES_H
#define ROLES_ROLES_H

#include <stdbool.h>

#include "core/config.h"
#include "store/store.h"

int role_serve(int argc, char **argv);
int role_superuser(int argc, char **argv);
int role_gateway(int argc, char **argv);

/* ---- shared by roles ---- */

/* True if argv asks for --help or -h. */
bool roles_wants_help(int argc, char **argv);

/* Loads settings for `role` from the config file, environment and argv
 * (argv[0] is the first argument after the subcommand); positional arguments
 * are left at the front of argv. Prints the reason and returns -1 on error. */
int roles_load_config(struct config *cfg, int role, int argc, char **argv, int *npositional);

/* Initialises libsodium, opens the store and makes sure the system
 * collections exist, publishing the schema. Prints the reason and returns -1
 * on failure. */
int roles_open_store(const struct config *cfg, store_post_fn post, struct store **out);

/* Watches the stored collections from a thread of its own, every interval_ms,
 * and publishes them when another process (or this one) saved one: several
 * `cruder serve` on one data directory see each other's collections and
 * rules within about that long. Stop it before closing the store. */
struct collections_watch;
struct collections_watch *roles_watch_collections(struct store *store, int interval_ms);
void roles_watch_stop(struct collections_watch *w);
/* For a request that began at since_ns (CLOCK_MONOTONIC) and named a
 * collection this process does not know: makes sure a look at the stored
 * collections has begun since then, taking one now unless another thread's
 * did (waiting for a look in progress). True when the caller should look
 * its collection up again. Blocks on the store's read of one row, and of
 * the collections when they changed. w is a struct collections_watch. */
bool roles_watch_look_since(void *w, uint64_t since_ns);

/* Blocking use of the asynchronous store, for admin commands and start-up:
 * pass store_sync_post as the store's post function and a store_sync as the
 * callback argument, then wait. */
struct store_sync;
struct store_sync *store_sync_new(void);
void store_sync_free(struct store_sync *s);
void store_sync_post(void *target, void (*fn)(void *arg), void *arg);
void store_sync_cb(void *arg, struct store_result *res);
/* Waits for the callback; returns its result (owned by s until freed). */
struct store_result *store_sync_wait(struct store_sync *s);

#endif
