/* Token parsing on arbitrary bytes: auth_token_peek and auth_token_verify
 * must reject or accept without a crash, and agree with each other.
 *
 * The input is tried as a token, and also as the signed part of one: it is
 * HMAC'd with the fuzzer's key and given that signature, so the parse that
 * runs only after a good signature is reached too. Whatever is accepted must
 * survive a sign/verify round trip with identical claims. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain/auth.h"

#define FUZZ_KEY "fuzz-collection-secretfuzz-token-key"

static void check(int cond)
{
    if (!cond)
        abort();
}

static void round_trip(const struct auth_claims *c)
{
    struct slice key = SLICE_LIT(FUZZ_KEY);
    char *t = auth_token_sign(c, key);
    struct auth_claims back;
    check(auth_token_peek(slice_cstr(t), &back) == 0);
    check(memcmp(&back, c, sizeof back) == 0);
    if (c->exp != INT64_MIN) {
        memset(&back, 0, sizeof back);
        check(auth_token_verify(slice_cstr(t), key, c->exp - 1, &back) == 0);
        check(memcmp(&back, c, sizeof back) == 0);
    }
    check(auth_token_verify(slice_cstr(t), key, c->exp, &back) == -1);
    free(t);
}

/* Claims as peek fills them: zeroed first, so bytes past each NUL compare equal. */
static int peek(struct slice s, struct auth_claims *c)
{
    memset(c, 0, sizeof *c);
    return auth_token_peek(s, c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (auth_init() != 0)
            abort();
        ready = 1;
    }
    struct slice in = slice_make((const char *)data, size);
    struct slice key = SLICE_LIT(FUZZ_KEY);

    struct auth_claims p, v;
    int peeked = peek(in, &p);
    memset(&v, 0, sizeof v);
    if (auth_token_verify(in, key, 0, &v) == 0) {
        check(peeked == 0 && memcmp(&p, &v, sizeof p) == 0);
    }
    if (peeked == 0)
        round_trip(&p);

    /* in + "." + base64url(HMAC(in)): a correctly signed token. */
    enum { SIG_B64 = 43 };
    if (size + 1 + SIG_B64 > AUTH_TOKEN_MAX_LEN)
        return 0;
    char tok[AUTH_TOKEN_MAX_LEN + 1];
    memcpy(tok, data, size);
    tok[size] = '.';
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)key.ptr, key.len);
    crypto_auth_hmacsha256_update(&st, data, size);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2base64(tok + size + 1, SIG_B64 + 1, mac, sizeof mac,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    struct slice signed_tok = slice_make(tok, size + 1 + SIG_B64);
    peeked = peek(signed_tok, &p);
    memset(&v, 0, sizeof v);
    int verified = auth_token_verify(signed_tok, key, INT64_MIN, &v);
    /* With the right key and the earliest "now", verify and peek agree,
     * except on a token whose exp is INT64_MIN itself. */
    if (peeked == 0 && p.exp != INT64_MIN) {
        check(verified == 0 && memcmp(&p, &v, sizeof p) == 0);
    } else if (peeked != 0) {
        check(verified == -1);
    }
    return 0;
}
