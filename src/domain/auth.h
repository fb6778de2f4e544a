/* Passwords and tokens.
 *
 * Passwords: Argon2id through libsodium, parameters chosen for 20-100 ms on a
 * server core; slow by design, so callers run it off the event loops.
 *
 * Tokens: JWT-shaped, HS256 (HMAC-SHA-256, libsodium's crypto_auth_hmacsha256),
 * header {"alg":"HS256","typ":"JWT"}, claims {id, type:"auth", collectionId,
 * refreshable, exp}, signed with the record's tokenKey concatenated with the
 * collection's secret (PocketBase's order), so changing a record's password (which rotates its
 * tokenKey) revokes every token it had. Comparisons run in constant time. */
#ifndef DOMAIN_AUTH_H
#define DOMAIN_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/slice.h"

enum { AUTH_HASH_MAX = 128, AUTH_TOKEN_KEY_LEN = 50 };
/* Longest token peek and verify accept; PocketBase's are about 250 bytes. */
enum { AUTH_TOKEN_MAX_LEN = 4096 };

/* Makes sodium ready; call once before any thread starts. 0 or -1. */
int auth_init(void);

/* Hashes plain into out (NUL-terminated "$argon2id$..." text). 0, or -1 on
 * resource failure. Blocks for tens of milliseconds. */
int auth_password_hash(struct slice plain, char out[AUTH_HASH_MAX]);
/* True if plain matches hash; constant time in plain's content. Blocks like hash. */
bool auth_password_verify(struct slice plain, const char *hash);
/* True if hash was made with other parameters than auth_password_hash uses
 * now (or is not an Argon2id hash at all), so the caller should rehash the
 * password after a successful verify. Cheap. */
bool auth_password_needs_rehash(const char *hash);

/* A random token key of AUTH_TOKEN_KEY_LEN characters [A-Za-z0-9] and a NUL. */
void auth_token_key_generate(char out[AUTH_TOKEN_KEY_LEN + 1]);

struct auth_claims {
    char id[64];
    char collection_id[64];
    char type[16]; /* "auth" */
    bool refreshable;
    int64_t exp; /* unix seconds */
};

/* Signs claims with key (the collection secret followed by the record's
 * tokenKey). Returns a malloc'd NUL-terminated token; the caller frees it. */
char *auth_token_sign(const struct auth_claims *claims, struct slice key);
/* Reads a token's claims without trusting them (to find which record's key
 * to verify with). 0, or -1 if it is not a well-formed HS256 token. */
int auth_token_peek(struct slice token, struct auth_claims *claims);
/* Verifies signature (constant time) and expiry against now (unix seconds).
 * 0 if valid, -1 otherwise; claims are filled only when valid. */
int auth_token_verify(struct slice token, struct slice key, int64_t now,
                      struct auth_claims *claims);

/* ---- the first superuser ----
 *
 * A fresh server with no superuser prints a one-time link carrying an
 * install token: a random secret held in this process only, valid for
 * AUTH_INSTALL_TTL_MS, that lets exactly one request create the first
 * superuser (PocketBase's installer token). While a request holds it no
 * other can; if that request fails the token is handed back. */
enum { AUTH_INSTALL_TOKEN_LEN = 43, AUTH_INSTALL_TTL_MS = 30 * 60 * 1000 };

/* Makes a new install token (replacing any), valid until now_ms plus the TTL,
 * and writes it NUL-terminated to out ([A-Za-z0-9_-], 256 random bits). */
void auth_install_token_new(int64_t now_ms, char out[AUTH_INSTALL_TOKEN_LEN + 1]);
/* Takes the install token for one request if token matches it (constant
 * time), it has not expired and no other request holds it. True if taken. */
bool auth_install_claim(struct slice token, int64_t now_ms);
/* Ends the claim: the token is spent (used) or handed back (!used). */
void auth_install_release(bool used);

#endif
