/* The PocketBase REST API on top of the http layer: health, metrics,
 * collections, records and superuser auth. Handlers parse and check the
 * request on the loop, hand storage and hashing to the store and the work
 * pool, and answer from the completion, back on the loop. */
#ifndef API_API_H
#define API_API_H

#include "core/config.h"
#include "http/http.h"
#include "store/store.h"

/* Registers every route on r. The store and config must outlive the server. */
void api_register(struct http_router *r, struct store *store, const struct config *cfg);
/* Lets a request naming a collection this process does not know have the
 * stored collections read once more before its 404 (another process on the
 * same data may have just created it): look(arg, request start) returns
 * whether to look the name up again (roles_watch_look_since). Set it before
 * the server starts, or not at all (one process alone). */
void api_set_recheck(bool (*look)(void *arg, uint64_t since_ns), void *arg);

#endif
