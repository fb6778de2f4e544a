/* Who is calling: token resolution for every request that carries one, and
 * the auth endpoints of auth collections (auth-with-password, auth-refresh).
 *
 * Tokens are verified against the record's current tokenKey, read from the
 * store, so a password change revokes tokens at once. Password checks run on
 * the work pool: Argon2id takes tens of milliseconds by design. */
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "core/workpool.h"

#include <sodium.h>

static const char *auth_secret(const struct collection *c)
{
    json_t *tok = json_object_get(c->auth_options, "authToken");
    const char *secret = json_string_value(json_object_get(tok, "secret"));
    return secret && *secret ? secret : NULL;
}

static int64_t token_duration(const struct collection *c)
{
    json_t *tok = json_object_get(c->auth_options, "authToken");
    json_int_t d = json_integer_value(json_object_get(tok, "duration"));
    return d > 0 ? d : api_ctx.cfg->token_duration_s;
}

/* The signing key: the record's tokenKey followed by the collection's secret,
 * in PocketBase's order so its tokens stay valid after an import. Returns -1
 * if either is missing (then no token can be valid). */
static int token_key(const struct collection *c, const char *record_token_key, struct buf *key)
{
    const char *secret = auth_secret(c);
    if (!secret || !record_token_key || !*record_token_key)
        return -1;
    buf_append_cstr(key, record_token_key);
    buf_append_cstr(key, secret);
    return 0;
}

static char *sign_for(const struct collection *c, json_t *record, bool refreshable,
                      int64_t duration_s)
{
    const char *id = json_string_value(json_object_get(record, "id"));
    struct buf key = BUF_INIT;
    if (!id || token_key(c, json_string_value(json_object_get(record, "tokenKey")), &key))
        return NULL;
    struct auth_claims claims = {.refreshable = refreshable};
    snprintf(claims.id, sizeof(claims.id), "%s", id);
    snprintf(claims.collection_id, sizeof(claims.collection_id), "%s", c->id);
    snprintf(claims.type, sizeof(claims.type), "auth");
    claims.exp = time_now_ms() / 1000 + duration_s;
    char *token = auth_token_sign(&claims, buf_slice(&key));
    sodium_memzero(key.ptr, key.len);
    buf_free(&key);
    return token;
}

char *api_token_for(const struct collection *c, json_t *record)
{
    return sign_for(c, record, true, token_duration(c));
}

char *api_token_impersonate(const struct collection *c, json_t *record, int64_t duration_s)
{
    return sign_for(c, record, false, duration_s > 0 ? duration_s : token_duration(c));
}

/* Removes what no answer may carry: hidden fields (password, tokenKey). */
static void strip_hidden(const struct collection *c, json_t *record)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (c->fields[i].hidden || c->fields[i].type == FIELD_PASSWORD)
            json_object_del(record, c->fields[i].name);
}

/* ---- token resolution ----
 *
 * Verifying a token needs the record's current tokenKey, which lives in the
 * store: a thread hop per request. Each loop thread therefore remembers the
 * tokens it verified recently, keyed by a BLAKE2b digest of the token. An
 * entry is trusted while it is younger than AUTH_CACHE_TTL_MS and no auth
 * record or auth collection has changed in this process since it was made
 * (api_auth_changed bumps a generation). So a password change through the API
 * revokes tokens at once; one made by another process (`cruder superuser
 * upsert` beside a running server) within AUTH_CACHE_TTL_MS. */

enum { AUTH_CACHE_SLOTS = 256, AUTH_CACHE_TTL_MS = 1000, AUTH_CACHE_RECORD_MAX = 1536 };

struct auth_cache_entry {
    unsigned char digest[crypto_generichash_BYTES];
    uint64_t generation;
    int64_t verified_ms;
    int64_t exp;
    struct api_auth auth;
    /* auth.record's text, inline so that the thread's cache owns no heap
     * memory; a record longer than this is not cached. */
    char record[AUTH_CACHE_RECORD_MAX];
};

static _Atomic uint64_t auth_generation = 1;
static _Thread_local struct auth_cache_entry auth_cache[AUTH_CACHE_SLOTS];

void api_auth_changed(void)
{
    atomic_fetch_add(&auth_generation, 1);
}

static struct auth_cache_entry *auth_cache_slot(struct slice token,
                                                unsigned char digest[crypto_generichash_BYTES])
{
    crypto_generichash(digest, crypto_generichash_BYTES, (const unsigned char *)token.ptr,
                       token.len, NULL, 0);
    uint32_t slot;
    memcpy(&slot, digest, sizeof(slot));
    return &auth_cache[slot % AUTH_CACHE_SLOTS];
}

static bool auth_cache_get(struct slice token, struct arena *pool, struct api_auth *out)
{
    unsigned char digest[crypto_generichash_BYTES];
    struct auth_cache_entry *e = auth_cache_slot(token, digest);
    int64_t now = time_now_ms();
    if (e->generation != atomic_load(&auth_generation) ||
        now - e->verified_ms >= AUTH_CACHE_TTL_MS || now / 1000 >= e->exp ||
        sodium_memcmp(e->digest, digest, sizeof(digest)) != 0)
        return false;
    *out = e->auth;
    out->record = arena_slice_dup(pool, slice_cstr(e->record));
    return true;
}

static void auth_cache_put(struct slice token, const struct api_auth *auth, int64_t exp,
                           uint64_t generation)
{
    if (auth->record.len >= AUTH_CACHE_RECORD_MAX)
        return;
    unsigned char digest[crypto_generichash_BYTES];
    struct auth_cache_entry *e = auth_cache_slot(token, digest);
    memcpy(e->digest, digest, sizeof(digest));
    e->generation = generation;
    e->verified_ms = time_now_ms();
    e->exp = exp;
    e->auth = *auth;
    e->auth.record = SLICE_NULL;
    memcpy(e->record, auth->record.ptr, auth->record.len);
    e->record[auth->record.len] = 0;
}

struct auth_lookup {
    struct http_request *req;
    api_auth_cb cb;
    struct api_auth *auth;
    struct collection *collection; /* retained for the lookup */
    struct slice token;
    uint64_t generation; /* of auth data when the lookup began */
};

static void auth_lookup_done(void *arg, struct store_result *res)
{
    struct auth_lookup *lk = arg;
    struct api_auth *auth = lk->auth;
    if (res->status == STORE_OK) {
        json_t *rec = json_loadb(res->json.ptr, res->json.len, 0, NULL);
        struct buf key = BUF_INIT;
        struct auth_claims claims;
        if (token_key(lk->collection, json_string_value(json_object_get(rec, "tokenKey")), &key) ==
                0 &&
            auth_token_verify(lk->token, buf_slice(&key), time_now_ms() / 1000, &claims) == 0) {
            snprintf(auth->record_id, sizeof(auth->record_id), "%s", claims.id);
            snprintf(auth->collection_id, sizeof(auth->collection_id), "%s", lk->collection->id);
            auth->superuser = strcmp(lk->collection->name, "_superusers") == 0;
            auth->refreshable = claims.refreshable;
            strip_hidden(lk->collection, rec);
            json_object_set_new(rec, "collectionId", json_string(lk->collection->id));
            json_object_set_new(rec, "collectionName", json_string(lk->collection->name));
            char *text = json_dumps(rec, JSON_COMPACT);
            auth->record = arena_slice_dup(&lk->req->pool, slice_cstr(text ? text : "{}"));
            free(text);
            auth_cache_put(lk->token, auth, claims.exp, lk->generation);
        }
        buf_free(&key);
        json_decref(rec);
    }
    collection_release(lk->collection);
    lk->cb(lk->req, auth);
}

static struct slice bearer_token(const struct http_request *req)
{
    struct slice h = http_request_header(req, "Authorization");
    if (h.len > 7 && slice_case_eq(slice_make(h.ptr, 7), SLICE_LIT("Bearer ")))
        h = slice_make(h.ptr + 7, h.len - 7);
    return slice_trim(h);
}

bool api_install_claim(struct http_request *req)
{
    return auth_install_claim(bearer_token(req), time_now_ms());
}

void api_authenticate(struct http_request *req, api_auth_cb cb)
{
    struct api_auth *auth = arena_zalloc(&req->pool, sizeof(*auth));
    struct slice token = bearer_token(req);
    struct auth_claims claims;
    if (!token.len || auth_token_peek(token, &claims) || strcmp(claims.type, "auth") != 0 ||
        !claims.id[0] || auth_cache_get(token, &req->pool, auth)) {
        cb(req, auth);
        return;
    }
    uint64_t generation = atomic_load(&auth_generation);
    struct schema *s = schema_current();
    struct collection *c = schema_find(s, slice_cstr(claims.collection_id));
    if (c && c->type == COLLECTION_AUTH && strcmp(c->id, claims.collection_id) == 0)
        collection_retain(c);
    else
        c = NULL;
    schema_release(s);
    if (!c) {
        cb(req, auth);
        return;
    }
    struct auth_lookup *lk = arena_zalloc(&req->pool, sizeof(*lk));
    *lk = (struct auth_lookup){req, cb, auth, c, token, generation};
    char *id = arena_strndup(&req->pool, claims.id, strlen(claims.id));
    api_ctx.store->ops->record_get(api_ctx.store, c, slice_cstr(id), STORE_FIELDS_ALL, req->loop,
                                   auth_lookup_done, lk);
}

/* ---- throttling ----
 *
 * Fixed one-minute windows counted in a bounded table shared by the loops:
 * AUTH_THROTTLE_SLOTS entries indexed by a keyed BLAKE2b digest of the key
 * (the key is random per process, so a client cannot aim at another's slot).
 * A slot holding another key whose window is still open is taken over: the
 * table forgets under pressure instead of growing. Failed logins count per
 * identity (collection and identity text), so a password cannot be guessed
 * faster than --auth-failures-per-identity tries a minute whatever the number
 * of clients; an unknown identity counts the same as a known one. Every
 * auth-with-password and auth-refresh counts per client address as well
 * (--auth-attempts-per-address a minute), in the same table, so a client
 * spraying many identities is held back too (PocketBase's *:auth limit). */

enum {
    AUTH_THROTTLE_SLOTS = 4096,
    AUTH_THROTTLE_WINDOW_MS = 60000,
};

struct throttle_slot {
    unsigned char digest[16];
    int64_t window_start_ms;
    uint32_t count;
};

static struct throttle_slot throttle_table[AUTH_THROTTLE_SLOTS];
static unsigned char throttle_key[crypto_generichash_KEYBYTES];
static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether key is under limit in its window: 0 if so (counting one more when
 * `count`), else the seconds until the window reopens. */
static int64_t throttle_hit(struct slice key, uint32_t limit, bool count)
{
    unsigned char digest[16];
    crypto_generichash(digest, sizeof(digest), (const unsigned char *)key.ptr, key.len,
                       throttle_key, sizeof(throttle_key));
    uint32_t index;
    memcpy(&index, digest, sizeof(index));
    int64_t now = time_now_ms();
    int64_t wait = 0;
    pthread_mutex_lock(&throttle_lock);
    struct throttle_slot *t = &throttle_table[index % AUTH_THROTTLE_SLOTS];
    if (memcmp(t->digest, digest, sizeof(digest)) != 0 ||
        now - t->window_start_ms >= AUTH_THROTTLE_WINDOW_MS) {
        memcpy(t->digest, digest, sizeof(digest));
        t->window_start_ms = now;
        t->count = 0;
    }
    if (t->count >= limit)
        wait = (t->window_start_ms + AUTH_THROTTLE_WINDOW_MS - now + 999) / 1000;
    else if (count)
        t->count++;
    pthread_mutex_unlock(&throttle_lock);
    return wait;
}

/* Answers 429 with Retry-After and returns true when key is over limit;
 * `count` counts this request against the key. */
static bool throttled_count(struct http_request *req, struct slice key, uint32_t limit, bool count)
{
    int64_t wait = throttle_hit(key, limit, count);
    if (!wait)
        return false;
    char secs[24];
    snprintf(secs, sizeof(secs), "%lld", (long long)wait);
    http_response_header(req, SLICE_LIT("Retry-After"), slice_cstr(secs));
    json_t *body = json_pack("{s:i, s:s, s:{}}", "status", 429, "message",
                             "Too many requests, try again later.", "data");
    api_json(req, 429, body);
    return true;
}

static bool throttled(struct http_request *req, struct slice key, uint32_t limit)
{
    return throttled_count(req, key, limit, false);
}

/* Counts one auth attempt against the client's address; answers 429 and
 * returns true when it is over the per-address limit. A client already gone
 * has no address and is not counted (nothing will be answered to it). */
static bool address_throttled(struct http_request *req)
{
    struct slice remote = http_request_remote(req);
    if (!remote.len)
        return false;
    struct buf key = BUF_INIT;
    buf_append_cstr(&key, "address\n");
    buf_append(&key, remote.ptr, remote.len);
    bool over = throttled_count(req, buf_slice(&key),
                                (uint32_t)api_ctx.cfg->auth_attempts_per_address, true);
    buf_free(&key);
    return over;
}

/* ---- auth endpoints ---- */

static void answer_with_token(struct http_request *req, const struct collection *c, json_t *record)
{
    char *token = api_token_for(c, record);
    if (!token) {
        json_decref(record);
        api_error(req, 400, "Failed to authenticate.", NULL);
        return;
    }
    strip_hidden(c, record);
    api_json(req, 200, json_pack("{s:s, s:o}", "token", token, "record", record));
    free(token);
}

/* A collection named in the path that must be an auth collection; answers 404
 * and returns NULL otherwise. The result is retained. */
static struct collection *auth_collection(struct http_request *req)
{
    struct collection *c = api_collection_find(req);
    if (c && c->type != COLLECTION_AUTH) {
        collection_release(c);
        c = NULL;
    }
    if (!c)
        api_error(req, 404, "Missing or invalid auth collection context.", NULL);
    return c;
}

struct login {
    struct http_request *req;
    struct collection *collection;
    json_t *record; /* with hidden fields; NULL if no such identity */
    char *password;
    struct buf throttle_key; /* counts a failure against the identity */
    bool ok;
};

/* A fixed hash checked when the identity does not exist, so that a login for
 * an unknown email costs the same time as one with a wrong password and the
 * answer time does not tell whether the email exists. */
static char decoy_hash[AUTH_HASH_MAX];

static void login_verify(void *arg)
{
    struct login *lg = arg;
    const char *hash = json_string_value(json_object_get(lg->record, "password"));
    bool ok = auth_password_verify(slice_cstr(lg->password), hash ? hash : decoy_hash);
    lg->ok = ok && hash;
    sodium_memzero(lg->password, strlen(lg->password));
}

static void login_done(void *arg)
{
    struct login *lg = arg;
    if (lg->ok) {
        answer_with_token(lg->req, lg->collection, json_incref(lg->record));
    } else {
        throttle_hit(buf_slice(&lg->throttle_key), UINT32_MAX, true);
        api_error(lg->req, 400, "Failed to authenticate.", NULL);
    }
    buf_free(&lg->throttle_key);
    collection_release(lg->collection);
    json_decref(lg->record);
    free(lg->password);
    free(lg);
}

static void login_found(void *arg, struct store_result *res)
{
    struct login *lg = arg;
    if (res->status != STORE_OK) {
        api_store_error(lg->req, res);
        goto fail;
    }
    json_t *list = json_loadb(res->json.ptr, res->json.len, 0, NULL);
    if (json_array_size(list) == 1)
        lg->record = json_incref(json_array_get(list, 0));
    json_decref(list);
    if (workpool_submit_batch(login_verify, login_done, lg, http_loop_post_any, lg->req->loop) == 0)
        return;
    api_error(lg->req, 503, "The server is busy, try again later.", NULL);
fail:
    buf_free(&lg->throttle_key);
    collection_release(lg->collection);
    json_decref(lg->record);
    free(lg->password);
    free(lg);
}

static void handle_auth_with_password(struct http_request *req)
{
    if (address_throttled(req))
        return;
    json_t *body = api_body_object(req);
    if (!body)
        return;
    const char *identity = json_string_value(json_object_get(body, "identity"));
    const char *password = json_string_value(json_object_get(body, "password"));
    json_t *errors = json_object();
    if (!identity || !*identity)
        json_object_set_new(
            errors, "identity",
            json_pack("{s:s,s:s}", "code", "validation_required", "message", "Cannot be blank."));
    if (!password || !*password)
        json_object_set_new(
            errors, "password",
            json_pack("{s:s,s:s}", "code", "validation_required", "message", "Cannot be blank."));
    if (json_object_size(errors)) {
        json_decref(body);
        api_error(req, 400, "An error occurred while validating the submitted data.", errors);
        return;
    }
    json_decref(errors);
    struct collection *c = auth_collection(req);
    if (!c) {
        json_decref(body);
        return;
    }
    json_t *pa = json_object_get(c->auth_options, "passwordAuth");
    json_t *enabled = json_object_get(pa, "enabled");
    if (enabled && !json_is_true(enabled)) {
        collection_release(c);
        json_decref(body);
        api_error(req, 403, "The collection is not configured to allow password authentication.",
                  NULL);
        return;
    }
    struct buf key = BUF_INIT;
    buf_appendf(&key, "identity\n%s\n", c->id);
    for (const char *p = identity; *p; p++)
        buf_append_char(&key, (char)tolower((unsigned char)*p));
    if (throttled(req, buf_slice(&key), (uint32_t)api_ctx.cfg->auth_failures_per_identity)) {
        buf_free(&key);
        collection_release(c);
        json_decref(body);
        return;
    }
    /* Identity fields as the collection configures them, email by default;
     * only fields that exist, and always bound as parameters. The auth rule
     * joins the same query, so a record it refuses looks like a wrong
     * password: the answer never tells which. */
    struct buf where = BUF_INIT;
    json_t *params = json_array();
    json_t *fields = json_object_get(pa, "identityFields");
    size_t i, n = json_array_size(fields) ? json_array_size(fields) : 1;
    buf_append_char(&where, '(');
    for (i = 0; i < n; i++) {
        const char *name =
            json_array_size(fields) ? json_string_value(json_array_get(fields, i)) : "email";
        if (!name || !collection_field(c, slice_cstr(name)))
            continue;
        if (where.len > 1)
            buf_append_cstr(&where, " OR ");
        buf_append_sql_ident(&where, c->name);
        buf_append_char(&where, '.');
        buf_append_sql_ident(&where, name);
        buf_append_cstr(&where, " = ?");
        json_array_append_new(params, json_string(identity));
    }
    if (where.len == 1)
        buf_append_char(&where, '0');
    buf_append_char(&where, ')');
    const char *rule = c->rules[RULE_AUTH];
    if (!rule) {
        buf_append_cstr(&where, " AND 0");
    } else if (*rule) {
        struct api_auth anonymous = {0};
        struct filter_error fe;
        buf_append_cstr(&where, " AND (");
        if (api_rule_compile(req, &anonymous, c, rule, NULL, "default", &where, params, &fe)) {
            log_warn("authRule of %s does not compile: %s", c->name, fe.message);
            buf_reset(&where);
            json_array_clear(params);
            buf_append_cstr(&where, "0");
        } else {
            buf_append_char(&where, ')');
        }
    }
    struct login *lg = xcalloc(1, sizeof(*lg));
    lg->req = req;
    lg->collection = c;
    lg->password = xstrdup(password);
    lg->throttle_key = key;
    json_decref(body);
    struct store_list_query q = {
        .collection = c,
        .where_sql = where.ptr,
        .params = params,
        .page = 1,
        .per_page = 2,
        .skip_total = true,
        .fields = STORE_FIELDS_ALL,
    };
    api_ctx.store->ops->record_list(api_ctx.store, &q, req->loop, login_found, lg);
    buf_free(&where);
    json_decref(params);
}

struct refresh {
    struct http_request *req;
    struct collection *collection;
    int64_t impersonate_s; /* > 0: an impersonation token of this duration */
};

static void refresh_loaded(void *arg, struct store_result *res)
{
    /* rf lives in the request's pool, which the answer frees. */
    struct refresh rf = *(struct refresh *)arg;
    if (res->status != STORE_OK) {
        api_store_error(rf.req, res);
    } else if (rf.impersonate_s) {
        json_t *record = json_loadb(res->json.ptr, res->json.len, 0, NULL);
        char *token = api_token_impersonate(rf.collection, record, rf.impersonate_s);
        strip_hidden(rf.collection, record);
        if (token) {
            api_json(rf.req, 200, json_pack("{s:s, s:o}", "token", token, "record", record));
        } else {
            json_decref(record);
            api_error(rf.req, 400, "Failed to authenticate.", NULL);
        }
        free(token);
    } else {
        answer_with_token(rf.req, rf.collection, json_loadb(res->json.ptr, res->json.len, 0, NULL));
    }
    collection_release(rf.collection);
}

static void refresh_authed(struct http_request *req, struct api_auth *auth)
{
    struct collection *c = auth_collection(req);
    if (!c)
        return;
    if (!auth->record_id[0] || strcmp(auth->collection_id, c->id) != 0) {
        collection_release(c);
        api_error(req, 401, "The request requires valid record authorization token.", NULL);
        return;
    }
    if (!auth->refreshable) {
        collection_release(c);
        api_error(req, 403, "The current auth token is not refreshable.", NULL);
        return;
    }
    struct refresh *rf = arena_zalloc(&req->pool, sizeof(*rf));
    *rf = (struct refresh){req, c, 0};
    api_ctx.store->ops->record_get(api_ctx.store, c, slice_cstr(auth->record_id), STORE_FIELDS_ALL,
                                   req->loop, refresh_loaded, rf);
}

static void handle_auth_refresh(struct http_request *req)
{
    if (address_throttled(req))
        return;
    api_authenticate(req, refresh_authed);
}

/* POST /api/collections/{c}/impersonate/{id} {"duration": seconds}: a
 * superuser gets a non-refreshable token of another record; duration 0 (or
 * none) takes the collection's token duration. */
static void impersonate_authed(struct http_request *req, struct api_auth *auth)
{
    if (!auth->record_id[0]) {
        api_error(req, 401, "The request requires valid record authorization token.", NULL);
        return;
    }
    if (!auth->superuser) {
        api_error(req, 403, "The authorized record is not allowed to perform this action.", NULL);
        return;
    }
    json_t *body = api_body_object(req);
    if (!body)
        return;
    json_t *d = json_object_get(body, "duration");
    json_int_t duration = json_integer_value(d);
    bool bad = (d && !json_is_integer(d) && !json_is_null(d)) || duration < 0 ||
               duration > 10LL * 365 * 24 * 3600;
    json_decref(body);
    if (bad) {
        api_error(req, 400, "An error occurred while validating the submitted data.",
                  json_pack("{s:{s:s,s:s}}", "duration", "code", "validation_invalid_value",
                            "message", "Must be a whole number of seconds, 0 or more."));
        return;
    }
    struct collection *c = auth_collection(req);
    if (!c)
        return;
    struct refresh *rf = arena_zalloc(&req->pool, sizeof(*rf));
    *rf = (struct refresh){req, c, duration > 0 ? duration : token_duration(c)};
    api_ctx.store->ops->record_get(api_ctx.store, c, req->params[1], STORE_FIELDS_ALL, req->loop,
                                   refresh_loaded, rf);
}

static void handle_impersonate(struct http_request *req)
{
    api_authenticate(req, impersonate_authed);
}

static void handle_auth_methods(struct http_request *req)
{
    struct collection *c = auth_collection(req);
    if (!c)
        return;
    json_t *pa = json_object_get(c->auth_options, "passwordAuth");
    json_t *fields = json_object_get(pa, "identityFields");
    json_t *enabled = json_object_get(pa, "enabled");
    json_t *body = json_pack("{s:{s:b, s:O}, s:{s:b}, s:{s:b}, s:{s:b, s:[]}}", "password",
                             "enabled", enabled ? json_is_true(enabled) : 1, "identityFields",
                             fields ? fields : json_pack("[s]", "email"), "mfa", "enabled", 0,
                             "otp", "enabled", 0, "oauth2", "enabled", 0, "providers");
    collection_release(c);
    api_json(req, 200, body);
}

void api_register_auth(struct http_router *r)
{
    randombytes_buf(throttle_key, sizeof(throttle_key));
    if (auth_password_hash(SLICE_LIT("decoy password, never matches"), decoy_hash))
        core_assert(!"cannot hash the decoy password");
    http_router_add(r, HTTP_M_POST, "/api/collections/:collection/auth-with-password",
                    handle_auth_with_password, 0, "auth_with_password");
    http_router_add(r, HTTP_M_POST, "/api/collections/:collection/auth-refresh",
                    handle_auth_refresh, 0, "auth_refresh");
    http_router_add(r, HTTP_M_POST, "/api/collections/:collection/impersonate/:id",
                    handle_impersonate, 0, "impersonate");
    http_router_add(r, HTTP_M_GET, "/api/collections/:collection/auth-methods", handle_auth_methods,
                    0, "auth_methods");
}
