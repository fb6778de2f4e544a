/* core: ids and partitions (part of the on-disk format), time formats, the
 * settings table, buffers and the arena. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/id.h"
#include "core/slice.h"
#include "core/timefmt.h"

Test(id, generated_ids_are_valid_and_distinct)
{
    char a[ID_LEN + 1], b[ID_LEN + 1];
    for (int i = 0; i < 1000; i++) {
        id_generate(a);
        id_generate(b);
        cr_assert_eq(strlen(a), ID_LEN);
        cr_assert(id_valid(slice_cstr(a)), "%s", a);
        cr_assert_str_neq(a, b);
    }
}

Test(id, validity)
{
    cr_assert(id_valid(SLICE_LIT("abcdefghij12345")));
    cr_assert_not(id_valid(SLICE_LIT("abcdefghij1234")));
    cr_assert_not(id_valid(SLICE_LIT("abcdefghij123456")));
    cr_assert_not(id_valid(SLICE_LIT("Abcdefghij12345")));
    cr_assert_not(id_valid(SLICE_LIT("abcdefghij-2345")));
    cr_assert_not(id_valid(slice_make("abcdefghij\0"
                                      "2345",
                                      15)));
    cr_assert_not(id_valid(SLICE_NULL));
}

/* The partition of an id is stored with every record and decides its shard:
 * these values must never change. */
Test(id, partition_hash_is_stable)
{
    cr_assert_eq(id_hash(SLICE_LIT("")), 0xcbf29ce484222325ULL);
    cr_assert_eq(id_hash(SLICE_LIT("a")), 0xaf63dc4c8601ec8cULL);
    cr_assert_eq(id_hash(SLICE_LIT("abcdefghij12345")), 0xc41f45578733b4f9ULL);
    cr_assert_eq(id_partition(SLICE_LIT("abcdefghij12345"), 1024), 249);
    cr_assert_eq(id_partition(SLICE_LIT("zxqsmd5v5hztrvs"), 1024), 683);
    cr_assert_eq(id_partition(SLICE_LIT("zxqsmd5v5hztrvs"), 1), 0);
}

Test(id, partitions_spread_evenly)
{
    enum { P = 64, N = 64000 };
    int counts[P] = {0};
    char id[ID_LEN + 1];
    for (int i = 0; i < N; i++) {
        id_generate(id);
        counts[id_partition(slice_cstr(id), P)]++;
    }
    for (int p = 0; p < P; p++)
        cr_assert(counts[p] > N / P / 2 && counts[p] < N / P * 2, "partition %d has %d", p,
                  counts[p]);
}

Test(timefmt, pocketbase_format_round_trip)
{
    char out[TIMEFMT_PB_LEN + 1];
    time_format_pb(1700000000123LL, out);
    cr_assert_str_eq(out, "2023-11-14 22:13:20.123Z");
    int64_t ms;
    cr_assert_eq(time_parse_pb(out, strlen(out), &ms), 0);
    cr_assert_eq(ms, 1700000000123LL);
    cr_assert_eq(time_parse_pb("2024-02-29", 10, &ms), 0);
    cr_assert_eq(ms, 1709164800000LL);
    cr_assert_eq(time_parse_pb("2024-02-29T01:02:03Z", 20, &ms), 0);
    cr_assert_eq(ms, 1709168523000LL);
}

Test(timefmt, rejects_impossible_dates)
{
    int64_t ms;
    const char *bad[] = {"2023-02-29", "2023-13-01",           "2023-00-10",
                         "2023-01-32", "2023-01-01 24:00:00",  "2023-01-01 10:60:00",
                         "2023/01/01", "2023-01-01 10:00:00.", "2023-01-01 10:00:00Zjunk",
                         "20230101"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(time_parse_pb(bad[i], strlen(bad[i]), &ms), -1, "%s", bad[i]);
}

Test(timefmt, http_date)
{
    char out[TIMEFMT_HTTP_LEN + 1];
    time_format_http(784111777, out);
    cr_assert_str_eq(out, "Sun, 06 Nov 1994 08:49:37 GMT");
}

Test(config, defaults_flags_env_and_file)
{
    struct config cfg;
    config_defaults(&cfg);
    cr_assert_str_eq(cfg.http, "127.0.0.1:8090");
    cr_assert_str_eq(cfg.dir, "./cruder_data");
    cr_assert_eq(cfg.partitions, 1024);
    cr_assert_eq(cfg.durability, DURABILITY_FULL);

    char path[] = "/tmp/cruder-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char text[] = "# comment\nmax_body_bytes = 1000\nhttp = 127.0.0.1:1\n\n"
                        "idle_timeout_ms=1234\n";
    cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
    close(fd);
    setenv("CRUDER_HTTP", "127.0.0.1:2", 1);
    char *argv[] = {"--config",    path, "--idle-timeout-ms", "99", "pos", "--durability=normal",
                    "--access-log"};
    int npos;
    char err[256];
    cr_assert_eq(config_load(&cfg, CONFIG_ROLE_SERVE, 7, argv, &npos, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(npos, 1);
    cr_assert_str_eq(argv[0], "pos");
    cr_assert_eq(cfg.max_body_bytes, 1000);
    cr_assert_str_eq(cfg.http, "127.0.0.1:2", "the environment overrides the file");
    cr_assert_eq(cfg.idle_timeout_ms, 99, "flags override the file");
    cr_assert_eq(cfg.durability, DURABILITY_NORMAL);
    cr_assert(cfg.access_log);
    unsetenv("CRUDER_HTTP");
    unlink(path);
    config_free(&cfg);
}

Test(config, errors_are_precise)
{
    struct config cfg;
    config_defaults(&cfg);
    char err[256];
    int npos;
    char *a1[] = {"--nope", "1"};
    cr_assert_eq(config_load(&cfg, CONFIG_ROLE_SERVE, 2, a1, &npos, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "unknown option --nope");
    char *a2[] = {"--loops", "-3"};
    cr_assert_eq(config_load(&cfg, CONFIG_ROLE_SERVE, 2, a2, &npos, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "loops: expected a whole number from 0 to 256, got '-3'");
    char *a3[] = {"--durability", "sometimes"};
    cr_assert_eq(config_load(&cfg, CONFIG_ROLE_SERVE, 2, a3, &npos, err, sizeof(err)), -1);
    char *a4[] = {"--loops"};
    cr_assert_eq(config_load(&cfg, CONFIG_ROLE_SERVE, 1, a4, &npos, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "option --loops needs a value");
    char *a5[] = {"--http", "x"};
    cr_assert_eq(config_load(&cfg, CONFIG_ROLE_ADMIN, 2, a5, &npos, err, sizeof(err)), -1,
                 "serve-only settings are not admin options");
    config_free(&cfg);
}

Test(buf, append_printf_consume)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i < 1000; i++)
        buf_appendf(&b, "%d,", i);
    cr_assert_eq(b.len, 3890);
    cr_assert_eq(b.ptr[b.len], '\0');
    buf_consume(&b, 4);
    cr_assert(slice_starts_with(buf_slice(&b), SLICE_LIT("2,3,")));
    char *s = buf_steal(&b);
    cr_assert_eq(b.ptr, NULL);
    free(s);
}

Test(arena, alignment_large_and_reset)
{
    struct arena a = ARENA_INIT;
    for (int i = 1; i < 200; i++) {
        void *p = arena_alloc(&a, (size_t)i * 7);
        cr_assert_eq((uintptr_t)p % 16, 0);
        memset(p, 0xab, (size_t)i * 7);
    }
    char *big = arena_alloc(&a, 5 << 20);
    memset(big, 1, 5 << 20);
    cr_assert_str_eq(arena_strndup(&a, "hello!", 5), "hello");
    arena_reset(&a);
    cr_assert_null(a.head);
}

Test(arena, clear_keeps_the_first_block_for_the_next_user)
{
    struct arena a = ARENA_INIT;
    char *first = arena_alloc(&a, 100);
    for (int i = 0; i < 100; i++)
        arena_alloc(&a, 1000); /* grows past the first block */
    cr_assert(arena_clear(&a));
    /* The next small allocation reuses the kept block from its start. */
    cr_assert_eq(arena_alloc(&a, 16), first);
    cr_assert_eq(arena_alloc(&a, 3000), first + 16);
    /* An arena whose first block was an outsized allocation keeps nothing. */
    struct arena big = ARENA_INIT;
    arena_alloc(&big, 1 << 20);
    cr_assert_not(arena_clear(&big));
    cr_assert_null(big.head);
    cr_assert_not(arena_clear(&big));
    arena_reset(&a);
}

Test(slice, parsing_helpers)
{
    cr_assert_eq(slice_to_uint(SLICE_LIT("123")), 123);
    cr_assert_eq(slice_to_uint(SLICE_LIT("")), -1);
    cr_assert_eq(slice_to_uint(SLICE_LIT("12a")), -1);
    cr_assert_eq(slice_to_uint(SLICE_LIT("9999999999999999999")), -1);
    cr_assert(slice_case_eq(SLICE_LIT("Content-Type"), SLICE_LIT("content-type")));
    /* ASCII only, as HTTP compares: no locale folds other bytes together. */
    cr_assert_not(slice_case_eq(SLICE_LIT("\xc9"), SLICE_LIT("\xe9")));
    cr_assert_not(slice_case_eq(SLICE_LIT("["), SLICE_LIT("{")));
    struct slice t = slice_trim(SLICE_LIT(" \t x y \t"));
    cr_assert(slice_eq_cstr(t, "x y"));
}

Test(slice, u64_to_dec_writes_the_digits_at_the_end)
{
    char t[20];
    const char *d = u64_to_dec(0, t);
    cr_assert_eq(t + 20 - d, 1);
    cr_assert_eq(d[0], '0');
    d = u64_to_dec(18446744073709551615ULL, t);
    cr_assert_eq(t + 20 - d, 20);
    cr_assert(memcmp(d, "18446744073709551615", 20) == 0);
    d = u64_to_dec(1234, t);
    cr_assert(memcmp(d, "1234", 4) == 0 && t + 20 - d == 4);
}
