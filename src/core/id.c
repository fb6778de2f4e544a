#include "core/id.h"

#include <sys/random.h>

#include "core/alloc.h"

static const char id_alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";

void id_random_bytes(void *out, size_t n)
{
    unsigned char *p = out;
    while (n) {
        ssize_t got = getrandom(p, n, 0);
        core_assert(got > 0);
        p += got;
        n -= (size_t)got;
    }
}

void id_generate(char out[ID_LEN + 1])
{
    unsigned char rnd[ID_LEN];
    size_t filled = 0;
    /* Rejection sampling: 252 is the largest multiple of 36 below 256, so every
     * character is uniform. */
    while (filled < ID_LEN) {
        id_random_bytes(rnd, sizeof(rnd));
        for (size_t i = 0; i < sizeof(rnd) && filled < ID_LEN; i++)
            if (rnd[i] < 252)
                out[filled++] = id_alphabet[rnd[i] % 36];
    }
    out[ID_LEN] = '\0';
}

bool id_valid(struct slice s)
{
    if (s.len != ID_LEN)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

uint64_t id_hash(struct slice s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < s.len; i++) {
        h ^= (unsigned char)s.ptr[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
