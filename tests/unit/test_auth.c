/* Passwords and tokens. Includes auth.c to craft hostile tokens with its own
 * base64url and HMAC helpers; the known-answer tokens below were computed
 * independently, with Python's hmac and Node's crypto. */
#include "domain/auth.c"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/timefmt.h"

static void setup(void)
{
    cr_assert_eq(auth_init(), 0);
}

TestSuite(auth, .init = setup);

/* ---- passwords ---- */

Test(auth, password_round_trip_and_timing)
{
    char hash[AUTH_HASH_MAX];
    uint64_t t0 = time_mono_ns();
    cr_assert_eq(auth_password_hash(SLICE_LIT("correct horse battery"), hash), 0);
    uint64_t t1 = time_mono_ns();
    fprintf(stderr, "auth: one Argon2id hash took %.1f ms\n", (double)(t1 - t0) / 1e6);

    cr_assert(strncmp(hash, "$argon2id$v=19$m=32768,t=2,p=1$", 31) == 0, "%s", hash);
    cr_assert(auth_password_verify(SLICE_LIT("correct horse battery"), hash));
    cr_assert_not(auth_password_verify(SLICE_LIT("correct horse batterY"), hash));
    cr_assert_not(auth_password_verify(SLICE_LIT("correct horse battery "), hash));
    cr_assert_not(auth_password_verify(SLICE_LIT(""), hash));
    cr_assert_not(auth_password_needs_rehash(hash));
}

Test(auth, password_salted_and_empty)
{
    char a[AUTH_HASH_MAX], b[AUTH_HASH_MAX];
    cr_assert_eq(auth_password_hash(SLICE_NULL, a), 0);
    cr_assert_eq(auth_password_hash(SLICE_LIT(""), b), 0);
    cr_assert_str_neq(a, b);
    cr_assert(auth_password_verify(SLICE_LIT(""), a));
    cr_assert(auth_password_verify(SLICE_NULL, b));
    cr_assert_not(auth_password_verify(SLICE_LIT("x"), a));
}

Test(auth, password_verify_rejects_bad_hashes)
{
    cr_assert_not(auth_password_verify(SLICE_LIT("pw"), NULL));
    cr_assert_not(auth_password_verify(SLICE_LIT("pw"), ""));
    cr_assert_not(auth_password_verify(SLICE_LIT("pw"), "$argon2id$garbage"));
    /* PocketBase's own bcrypt hashes are not accepted. */
    cr_assert_not(auth_password_verify(
        SLICE_LIT("pw"), "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"));
}

Test(auth, password_needs_rehash)
{
    char old[crypto_pwhash_STRBYTES];
    cr_assert_eq(crypto_pwhash_str_alg(old, "pw", 2, 1, 8 << 20, crypto_pwhash_ALG_ARGON2ID13), 0);
    cr_assert(auth_password_verify(SLICE_LIT("pw"), old));
    cr_assert(auth_password_needs_rehash(old));
    /* Argon2i needs t >= 3, so this also differs in t; the prefix check is
     * what would catch an Argon2i hash with Argon2id's parameters. */
    cr_assert_eq(
        crypto_pwhash_str_alg(old, "pw", 2, 3, AUTH_PWHASH_MEMLIMIT, crypto_pwhash_ALG_ARGON2I13),
        0);
    cr_assert(auth_password_verify(SLICE_LIT("pw"), old));
    cr_assert(auth_password_needs_rehash(old));
    /* Longer than any libsodium hash: refused, never read past. */
    char longer[AUTH_HASH_MAX + 8];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    cr_assert(auth_password_needs_rehash(longer));
    cr_assert_not(auth_password_verify(SLICE_LIT("pw"), longer));
    cr_assert(auth_password_needs_rehash(NULL));
    cr_assert(auth_password_needs_rehash("$2a$10$abc"));
}

Test(auth, token_key_generate)
{
    char a[AUTH_TOKEN_KEY_LEN + 1], b[AUTH_TOKEN_KEY_LEN + 1];
    memset(a, '#', sizeof a);
    auth_token_key_generate(a);
    auth_token_key_generate(b);
    cr_assert_eq(strlen(a), AUTH_TOKEN_KEY_LEN);
    cr_assert_eq(strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
                 AUTH_TOKEN_KEY_LEN);
    cr_assert_str_neq(a, b);
}

/* ---- tokens ---- */

#define KAT_KEY                             \
    "pbc_secret_0123456789abcdefghijklmnop" \
    "TokenKeyOfFiftyCharsAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define KAT_HEADER "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
#define KAT_PAYLOAD                                                                \
    "eyJjb2xsZWN0aW9uSWQiOiJfcGJfdXNlcnNfYXV0aF8iLCJleHAiOjE3MDAwMDAwMDAsImlkIjoi" \
    "YWJjMTIzZGVmNDU2Z2hpIiwicmVmcmVzaGFibGUiOnRydWUsInR5cGUiOiJhdXRoIn0"
#define KAT_TOKEN KAT_HEADER "." KAT_PAYLOAD ".kX3eR_39EAYRNVhVSmXyCQvFHnydnFJtPrLKPVX6n5M"

static struct auth_claims kat_claims(void)
{
    struct auth_claims c;
    memset(&c, 0, sizeof c);
    strcpy(c.id, "abc123def456ghi");
    strcpy(c.collection_id, "_pb_users_auth_");
    strcpy(c.type, "auth");
    c.refreshable = true;
    c.exp = 1700000000;
    return c;
}

/* A token with the given header and payload JSON, HS256-signed with key (or
 * with an empty signature if key is NULL), built outside auth_token_sign. */
static char *craft(const char *header, const char *payload, const char *key)
{
    struct buf b = BUF_INIT;
    auth_append_b64(&b, header, strlen(header));
    buf_append_char(&b, '.');
    auth_append_b64(&b, payload, strlen(payload));
    buf_append_char(&b, '.');
    if (key) {
        unsigned char mac[crypto_auth_hmacsha256_BYTES];
        auth_hmac(slice_cstr(key), slice_make(b.ptr, b.len - 1), mac);
        auth_append_b64(&b, mac, sizeof mac);
    }
    return buf_steal(&b);
}

static const char hs256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
static const char kat_json[] = "{\"collectionId\":\"_pb_users_auth_\",\"exp\":1700000000,"
                               "\"id\":\"abc123def456ghi\",\"refreshable\":true,\"type\":\"auth\"}";

static void assert_rejected(const char *token, const char *key)
{
    struct auth_claims c;
    memset(&c, 0x5a, sizeof c);
    cr_assert_eq(auth_token_verify(slice_cstr(token), slice_cstr(key), 1600000000, &c), -1,
                 "accepted: %s", token);
    for (size_t i = 0; i < sizeof c; i++)
        cr_assert_eq(((unsigned char *)&c)[i], 0x5a, "claims written on failure");
}

Test(auth, known_answer_long_key)
{
    struct auth_claims c = kat_claims();
    char *t = auth_token_sign(&c, SLICE_LIT(KAT_KEY));
    cr_assert_str_eq(t, KAT_TOKEN);
    free(t);
}

Test(auth, known_answer_short_key)
{
    struct auth_claims c;
    memset(&c, 0, sizeof c);
    strcpy(c.id, "zzzzzzzzzzzzzzz");
    strcpy(c.collection_id, "pbc_3142635823");
    strcpy(c.type, "auth");
    c.exp = 4102444800;
    char *t = auth_token_sign(&c, SLICE_LIT("short-key"));
    cr_assert_str_eq(t,
                     "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                     "eyJjb2xsZWN0aW9uSWQiOiJwYmNfMzE0MjYzNTgyMyIsImV4cCI6NDEwMjQ0NDgwMCwiaWQiOiJ6"
                     "enp6enp6enp6enp6enoiLCJyZWZyZXNoYWJsZSI6ZmFsc2UsInR5cGUiOiJhdXRoIn0."
                     "ksz4YF5TC_hdbRCc5uDret0oR9l2W6KFBfNJQQebamg");
    free(t);
}

Test(auth, sign_peek_verify_round_trip)
{
    struct auth_claims in = kat_claims(), out;
    char *t = auth_token_sign(&in, SLICE_LIT(KAT_KEY));

    memset(&out, 0, sizeof out);
    cr_assert_eq(auth_token_peek(slice_cstr(t), &out), 0);
    cr_assert_str_eq(out.id, "abc123def456ghi");
    cr_assert_str_eq(out.collection_id, "_pb_users_auth_");
    cr_assert_str_eq(out.type, "auth");
    cr_assert(out.refreshable);
    cr_assert_eq(out.exp, 1700000000);

    memset(&out, 0, sizeof out);
    cr_assert_eq(auth_token_verify(slice_cstr(t), SLICE_LIT(KAT_KEY), 1699999999, &out), 0);
    cr_assert_eq(memcmp(&out, &in, sizeof out), 0);
    free(t);
}

Test(auth, verify_reads_only_the_slice)
{
    /* The token need not be NUL-terminated: a longer buffer is cut by len. */
    char buf[] = KAT_TOKEN "XYZ.garbage";
    struct auth_claims c;
    cr_assert_eq(
        auth_token_verify(slice_make(buf, strlen(KAT_TOKEN)), SLICE_LIT(KAT_KEY), 1600000000, &c),
        0);
    cr_assert_eq(auth_token_verify(slice_make(buf, strlen(KAT_TOKEN) + 1), SLICE_LIT(KAT_KEY),
                                   1600000000, &c),
                 -1);
}

Test(auth, expiry_boundary)
{
    struct auth_claims c;
    cr_assert_eq(auth_token_verify(SLICE_LIT(KAT_TOKEN), SLICE_LIT(KAT_KEY), 1699999999, &c), 0);
    cr_assert_eq(auth_token_verify(SLICE_LIT(KAT_TOKEN), SLICE_LIT(KAT_KEY), 1700000000, &c), -1);
    cr_assert_eq(auth_token_verify(SLICE_LIT(KAT_TOKEN), SLICE_LIT(KAT_KEY), 1800000000, &c), -1);
    /* Peek does not judge expiry. */
    cr_assert_eq(auth_token_peek(SLICE_LIT(KAT_TOKEN), &c), 0);
}

Test(auth, tampered_signature)
{
    char t[] = KAT_TOKEN;
    char *sig = strrchr(t, '.') + 1;
    sig[0] = 'l'; /* was 'k' */
    assert_rejected(t, KAT_KEY);
    /* Non-zero trailing bits: 'M' -> 'N' decodes to the same bytes in lax decoders. */
    char u[] = KAT_TOKEN;
    u[strlen(u) - 1] = 'N';
    assert_rejected(u, KAT_KEY);
}

Test(auth, tampered_payload)
{
    char *other = craft(hs256,
                        "{\"collectionId\":\"_pb_users_auth_\",\"exp\":1700000000,"
                        "\"id\":\"zzzzzzzzzzzzzzz\",\"refreshable\":true,\"type\":\"auth\"}",
                        NULL);
    /* Graft the genuine signature onto the forged payload. */
    struct buf b = BUF_INIT;
    buf_append_cstr(&b, other);
    buf_append_cstr(&b, strrchr(KAT_TOKEN, '.') + 1);
    struct auth_claims c;
    cr_assert_eq(auth_token_peek(buf_slice(&b), &c), 0);
    cr_assert_str_eq(c.id, "zzzzzzzzzzzzzzz");
    assert_rejected(b.ptr, KAT_KEY);
    buf_free(&b);
    free(other);
}

Test(auth, wrong_key_after_token_key_rotation)
{
    assert_rejected(KAT_TOKEN, "pbc_secret_0123456789abcdefghijklmnop"
                               "TokenKeyOfFiftyCharsAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB");
    assert_rejected(KAT_TOKEN, "pbc_secret_0123456789abcdefghijklmnop");
    struct auth_claims c;
    cr_assert_eq(auth_token_verify(SLICE_LIT(KAT_TOKEN), SLICE_NULL, 0, &c), -1);
}

Test(auth, alg_none_and_others)
{
    static const char *headers[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"alg\":\"None\"}",
        "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS384\",\"typ\":\"JWT\"}",
        "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"hs256\",\"typ\":\"JWT\"}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":null}",
        "{\"alg\":[\"HS256\"]}",
        "{\"alg\":\"HS256\\u0000\"}",
        "{\"alg\":\"HS256 \"}",
        "{\"alg\":\"HS256\",\"typ\":\"JWS\"}",
        "{\"alg\":\"HS256\",\"alg\":\"none\"}",
        "{\"alg\":\"HS256\",\"crit\":[\"b64\"]}",
        "[\"HS256\"]",
        "\"HS256\"",
    };
    for (size_t i = 0; i < sizeof headers / sizeof *headers; i++) {
        /* Even a correct HMAC over the bytes must not rescue a wrong header. */
        char *t = craft(headers[i], kat_json, KAT_KEY);
        struct auth_claims c;
        cr_assert_eq(auth_token_peek(slice_cstr(t), &c), -1, "%s", headers[i]);
        assert_rejected(t, KAT_KEY);
        free(t);
        t = craft(headers[i], kat_json, NULL);
        cr_assert_eq(auth_token_peek(slice_cstr(t), &c), -1, "%s", headers[i]);
        assert_rejected(t, KAT_KEY);
        free(t);
    }
    /* A header without typ is still HS256. */
    char *t = craft("{\"alg\":\"HS256\"}", kat_json, KAT_KEY);
    struct auth_claims c;
    cr_assert_eq(auth_token_verify(slice_cstr(t), SLICE_LIT(KAT_KEY), 1600000000, &c), 0);
    free(t);
}

Test(auth, bad_payloads)
{
    static const char *payloads[] = {
        "",
        "null",
        "[]",
        "{}",
        "{\"id\":\"a\",\"collectionId\":\"b\",\"type\":\"auth\"}",
        "{\"id\":\"a\",\"collectionId\":\"b\",\"type\":\"auth\",\"exp\":\"1700000000\"}",
        "{\"id\":\"a\",\"collectionId\":\"b\",\"type\":\"auth\",\"exp\":1700000000.5}",
        "{\"id\":\"a\",\"collectionId\":\"b\",\"type\":\"auth\",\"exp\":99999999999999999999}",
        "{\"id\":\"\",\"collectionId\":\"b\",\"type\":\"auth\",\"exp\":1700000000}",
        "{\"id\":1,\"collectionId\":\"b\",\"type\":\"auth\",\"exp\":1700000000}",
        "{\"collectionId\":\"b\",\"type\":\"auth\",\"exp\":1700000000}",
        "{\"id\":\"a\",\"type\":\"auth\",\"exp\":1700000000}",
        "{\"id\":\"a\",\"collectionId\":\"b\",\"exp\":1700000000}",
        "{\"id\":\"a\",\"collectionId\":\"b\",\"type\":\"auth\",\"exp\":1700000000,"
        "\"refreshable\":\"true\"}",
        "{\"id\":\"a\",\"id\":\"b\",\"collectionId\":\"b\",\"type\":\"auth\",\"exp\":1700000000}",
        "{\"id\":\"a\",\"collectionId\":\"b\",\"type\":\"auth\",\"exp\":1700000000} x",
        "{\"id\":\"a\\u0000b\",\"collectionId\":\"b\",\"type\":\"auth\",\"exp\":1700000000}",
        /* 64 bytes: one more than the claims field holds; never truncated. */
        "{\"id\":\"0123456789012345678901234567890123456789012345678901234567890123\","
        "\"collectionId\":\"b\",\"type\":\"auth\",\"exp\":1700000000}",
        "{\"id\":\"a\",\"collectionId\":\"b\",\"type\":\"authauthauthauth\",\"exp\":1700000000}",
    };
    for (size_t i = 0; i < sizeof payloads / sizeof *payloads; i++) {
        char *t = craft(hs256, payloads[i], KAT_KEY);
        struct auth_claims c;
        cr_assert_eq(auth_token_peek(slice_cstr(t), &c), -1, "%s", payloads[i]);
        assert_rejected(t, KAT_KEY);
        free(t);
    }
    /* Longest fields that fit, refreshable absent (false), extra claims ignored. */
    char *t = craft(hs256,
                    "{\"id\":\"012345678901234567890123456789012345678901234567890123456789012\","
                    "\"collectionId\":\"b\",\"type\":\"authauthauthaut\",\"exp\":1700000000,"
                    "\"email\":\"a@b.c\"}",
                    KAT_KEY);
    struct auth_claims c;
    cr_assert_eq(auth_token_verify(slice_cstr(t), SLICE_LIT(KAT_KEY), 1600000000, &c), 0);
    cr_assert_eq(strlen(c.id), 63);
    cr_assert_str_eq(c.type, "authauthauthaut");
    cr_assert_not(c.refreshable);
    free(t);
}

Test(auth, truncated)
{
    char t[] = KAT_TOKEN;
    size_t n = strlen(t);
    for (size_t len = 0; len < n; len++) {
        struct auth_claims c;
        cr_assert_eq(auth_token_verify(slice_make(t, len), SLICE_LIT(KAT_KEY), 1600000000, &c), -1,
                     "prefix %zu accepted", len);
    }
    struct auth_claims c;
    cr_assert_eq(auth_token_peek(SLICE_LIT(KAT_HEADER "." KAT_PAYLOAD), &c), -1);
    cr_assert_eq(auth_token_peek(SLICE_LIT(KAT_HEADER "." KAT_PAYLOAD "."), &c), 0);
}

Test(auth, garbage)
{
    static const char *tokens[] = {
        "",
        ".",
        "..",
        "...",
        "abc",
        "a.b.c",
        KAT_TOKEN ".",
        "." KAT_TOKEN,
        KAT_HEADER ".." KAT_PAYLOAD,
        KAT_HEADER "=." KAT_PAYLOAD ".kX3eR_39EAYRNVhVSmXyCQvFHnydnFJtPrLKPVX6n5M",
        KAT_HEADER "." KAT_PAYLOAD ".kX3eR_39EAYRNVhVSmXyCQvFHnydnFJtPrLKPVX6n5M=",
        KAT_HEADER "." KAT_PAYLOAD ".kX3eR/39EAYRNVhVSmXyCQvFHnydnFJtPrLKPVX6n5M",
        KAT_HEADER "." KAT_PAYLOAD ".kX3eR_39EAYRNVhVSmXyCQvFHnydnFJtPrLKPVX6n5MAA",
        KAT_HEADER "." KAT_PAYLOAD ".kX3eR_39EAYRNVhVSmXyCQvFHnydnFJtPrLKPVX6n5",
        " " KAT_TOKEN,
        "Bearer " KAT_TOKEN,
    };
    for (size_t i = 0; i < sizeof tokens / sizeof *tokens; i++)
        assert_rejected(tokens[i], KAT_KEY);
    struct auth_claims c;
    cr_assert_eq(auth_token_peek(SLICE_NULL, &c), -1);
    cr_assert_eq(auth_token_verify(SLICE_NULL, SLICE_LIT(KAT_KEY), 0, &c), -1);
    unsigned char bin[300];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(i * 151 + 7);
    cr_assert_eq(auth_token_peek(slice_make((const char *)bin, sizeof bin), &c), -1);
}

Test(auth, over_long)
{
    /* Grow an extra claim until the correctly signed token passes 4 KiB. */
    size_t last_ok = 0;
    for (size_t pad = 2900;; pad++) {
        struct buf p = BUF_INIT;
        buf_appendf(&p, "{\"id\":\"a\",\"collectionId\":\"b\",\"type\":\"auth\",\"exp\":1700000000,"
                        "\"pad\":\"");
        for (size_t i = 0; i < pad; i++)
            buf_append_char(&p, 'x');
        buf_append_cstr(&p, "\"}");
        char *t = craft(hs256, p.ptr, KAT_KEY);
        buf_free(&p);
        size_t n = strlen(t);
        struct auth_claims c;
        int rc = auth_token_verify(slice_cstr(t), SLICE_LIT(KAT_KEY), 1600000000, &c);
        int rp = auth_token_peek(slice_cstr(t), &c);
        free(t);
        if (n <= AUTH_TOKEN_MAX_LEN) {
            cr_assert_eq(rc, 0, "length %zu", n);
            cr_assert_eq(rp, 0, "length %zu", n);
            last_ok = n;
            continue;
        }
        cr_assert_eq(rc, -1, "length %zu", n);
        cr_assert_eq(rp, -1, "length %zu", n);
        break;
    }
    cr_assert_geq(last_ok, AUTH_TOKEN_MAX_LEN - 3);
}
