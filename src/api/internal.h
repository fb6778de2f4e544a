/* Shared by the API handlers only: the process-wide context, answers in
 * PocketBase's shapes, and request authentication. */
#ifndef API_INTERNAL_H
#define API_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "core/config.h"
#include "domain/auth.h"
#include "domain/filter.h"
#include "domain/schema.h"
#include "http/http.h"
#include "store/store.h"

struct api_context {
    struct store *store;
    const struct config *cfg;
};

extern struct api_context api_ctx;

/* ---- answers ---- */

/* {"status","message","data"}; data may be NULL ({}); the reference to data is stolen. */
void api_error(struct http_request *req, int status, const char *message, json_t *data);
/* Answers a store failure (not found, busy, invalid, ...) in PocketBase's shape. */
void api_store_error(struct http_request *req, const struct store_result *res);
/* Serialises and answers; steals the reference to body. */
void api_json(struct http_request *req, int status, json_t *body);
/* Answers JSON text as is. */
void api_json_text(struct http_request *req, int status, struct slice body);
/* Parses req->body as a JSON object; on failure answers 400 and returns NULL. */
json_t *api_body_object(struct http_request *req);
/* Reads an integer query parameter; false and a 400 answer if malformed. */
bool api_query_int(struct http_request *req, const char *name, long long def, long long min,
                   long long max, long long *out);

/* ---- caller identity ---- */

struct api_auth {
    bool superuser;         /* a valid token of the _superusers collection */
    char record_id[64];     /* the caller's auth record; "" when anonymous */
    char collection_id[64]; /* its collection; "" when anonymous */
    /* The caller's record as JSON text, hidden fields left out, with
     * collectionId and collectionName; in the request's pool, empty when
     * anonymous. Rules read @request.auth.* from it. */
    struct slice record;
    bool refreshable; /* false for impersonation tokens */
};

typedef void (*api_auth_cb)(struct http_request *req, struct api_auth *auth);

/* Resolves the Authorization header (a PocketBase token, with or without
 * "Bearer "). No header: cb runs at once with an anonymous auth. An invalid
 * or expired token is treated as anonymous, as PocketBase does. The auth
 * passed to cb lives in the request's pool until the answer. */
void api_authenticate(struct http_request *req, api_auth_cb cb);
/* Claims the install token for this request if its Authorization header
 * carries it (see auth_install_claim); the caller must end the claim with
 * auth_install_release. Only the creation of the first superuser uses it. */
bool api_install_claim(struct http_request *req);
/* Call after any change to an auth record or auth collection: tokens
 * verified before it are checked against the store again. */
void api_auth_changed(void);
/* Signs a fresh auth token for record (JSON with id and tokenKey) of c;
 * malloc'd, or NULL if c has no token secret. */
char *api_token_for(const struct collection *c, json_t *record);

/* Signs an impersonation token for record of c: not refreshable, valid for
 * duration_s seconds. malloc'd, or NULL if c has no token secret. */
char *api_token_impersonate(const struct collection *c, json_t *record, int64_t duration_s);

/* ---- API rules (rules.c) ---- */

/* Compiles rule `expr` of c for this request and caller into *sql (appended)
 * and params (appended), with body as @request.body (may be NULL) and
 * context as @request.context ("default", "expand"). Schema lookups use the
 * current snapshot. 0, or -1 with *err. */
int api_rule_compile(struct http_request *req, const struct api_auth *auth,
                     const struct collection *c, const char *expr, json_t *body,
                     const char *context, struct buf *sql, json_t *params,
                     struct filter_error *err);
/* Compiles the rule `rule` of c (NULL or "": none) and the caller's filter
 * (may be empty) into one expression whose relation joins they share (see
 * filter_compile_ruled); the filter may name hidden fields and @request.*
 * only for superusers. 0, or -1 with *err (err->in_rule: the rule failed). */
int api_filter_compile(struct http_request *req, const struct api_auth *auth,
                       const struct collection *c, const char *rule, struct slice filter,
                       struct buf *sql, json_t *params, struct filter_error *err);
/* PocketBase's loose guard: only superusers may write "@collection." or
 * "@request." in ?filter= or ?sort=. Answers 403 and returns false otherwise. */
bool api_filter_admits(struct http_request *req, const struct api_auth *auth);
/* Makes one record of c fit for this caller in place: the password hash and
 * tokenKey removed, hidden fields too unless the caller is a superuser, and
 * on auth collections the email removed unless the caller is a superuser,
 * the record itself, or emailVisibility is on. */
void api_record_redact(const struct collection *c, const struct api_auth *auth, json_t *record);
/* The fields the store renders for the caller: hidden ones too for a
 * superuser, as PocketBase shows them. */
enum store_fields api_fields_for(const struct api_auth *auth);

/* ---- expand (expand.c) ---- */

typedef void (*api_expand_cb)(void *arg);

/* Expands records (a JSON array of records of c, changed in place) along
 * spec ("a,b.c,posts_via_author"), each related record under its view rule
 * for auth and redacted for auth; then done(arg) runs on the request's loop
 * (at once when there is nothing to fetch). The caller keeps records, c and
 * auth alive until done. Unknown or unreadable relations expand to nothing,
 * as in PocketBase. */
void api_expand(struct http_request *req, const struct api_auth *auth, const struct collection *c,
                json_t *records, struct slice spec, api_expand_cb done, void *arg);

/* Whether everything spec would expand on records of c is public: each
 * relation it names resolves to a collection that is not an auth collection
 * and whose view rule is "" (a relation that resolves to nothing expands
 * nothing). Appends ", <collectionId>" to tags for each one, so that a
 * shared cache can drop the answer when one of them changes. The tree is
 * parsed into pool. */
bool api_expand_public(struct arena *pool, const struct collection *c, struct slice spec,
                       struct buf *tags);

/* ---- route groups ---- */

/* The collection req's path names (params[0]), retained (release it), or
 * NULL: when this process does not know it, the stored collections are
 * looked at once more (api_set_recheck) before NULL is the answer. */
struct collection *api_collection_find(const struct http_request *req);

/* ---- shared caches (docs/caching.md) ---- */

/* Appends, comma-separated after what tags holds, the tags of every cached
 * answer about collection cid: its lists and the answers expanding it
 * ("<cid>") and its records' views (the tag "<cid>/" followed by a star).
 * A change of the collection itself (a rule, a field) answers with them. */
void api_collection_tags(const char *cid, struct buf *tags);

void api_register_collections(struct http_router *r);
void api_register_records(struct http_router *r);
void api_register_auth(struct http_router *r);

/* Serialises collection changes: fn(req) runs when no other change is in
 * flight; api_schema_change_done() lets the next one go. */
void api_schema_change_begin(struct http_request *req, http_handler_fn fn);
void api_schema_change_done(void);

#endif
