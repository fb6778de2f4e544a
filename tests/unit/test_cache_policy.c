/* The cache's default eviction policy must keep beating LRU on a Zipf
 * trace at the same byte bound (the full comparison: bench/cache_policy.sh). */
#include <criterion/criterion.h>

#define CACHE_POLICY_NO_MAIN
#include "../../bench/cache_policy.c"

Test(cache_policy, s3fifo_beats_lru_on_a_zipf_trace)
{
    double lru = bench_hit_ratio(CACHE_POLICY_LRU, 10000, 100000, 0.8, 5, 7);
    double s3 = bench_hit_ratio(CACHE_POLICY_S3FIFO, 10000, 100000, 0.8, 5, 7);
    cr_log_info("zipf 0.8, 5%%: lru %.4f s3fifo %.4f", lru, s3);
    cr_assert_gt(s3, lru * 1.05, "lru %.4f s3fifo %.4f", lru, s3);
    cr_assert_eq(CACHE_POLICY_S3FIFO, (enum cache_policy)0, "S3-FIFO is the zero-value default");
}
