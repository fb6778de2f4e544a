/* The gateway's balancer (gateway/balance.c) with a clock of the test's own. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "gateway/balance.h"
#include "gateway/gateway.h"

static const struct lb_params base = {
    .policy = GATEWAY_BALANCE_ROUND_ROBIN,
    .panic_percent = 50,
    .hash_load_pct = 125,
    .eject_ms = 1000,
    .eject_max_ms = 8000,
    .eject_5xx = 3,
    .ewma_decay = 0.5,
};

static const char *const names[] = {"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"};

struct fixture {
    struct lb_target t[4];
    struct lb_target *p[4];
    atomic_int health[4];
    struct lb_set set;
};

static void setup(struct fixture *f, enum gateway_balance policy, size_t n)
{
    memset(f, 0, sizeof(*f));
    struct lb_params params = base;
    params.policy = policy;
    for (size_t i = 0; i < n; i++) {
        atomic_init(&f->health[i], LB_HEALTH_UP);
        f->t[i].health = &f->health[i];
        f->p[i] = &f->t[i];
    }
    lb_set_init(&f->set, f->p, names, n, &params, 0);
}

static size_t pick(struct fixture *f, uint64_t now)
{
    bool panic;
    return lb_pick(&f->set, now, 0, false, SIZE_MAX, &panic);
}

Test(gateway_balance, round_robin_cycles_and_skips_ejected_and_down)
{
    struct fixture f;
    setup(&f, GATEWAY_BALANCE_ROUND_ROBIN, 3);
    size_t seq[6];
    for (int i = 0; i < 6; i++)
        seq[i] = pick(&f, 0);
    cr_expect_eq(seq[0], 0);
    cr_expect_eq(seq[1], 1);
    cr_expect_eq(seq[2], 2);
    cr_expect_eq(seq[3], 0);
    atomic_store(&f.health[1], LB_HEALTH_DOWN);
    for (int i = 0; i < 6; i++)
        cr_expect_neq(pick(&f, 0), 1);
    lb_set_free(&f.set);
}

Test(gateway_balance, least_outstanding_prefers_the_idle_target)
{
    struct fixture f;
    setup(&f, GATEWAY_BALANCE_LEAST, 3);
    f.t[0].outstanding = 5;
    f.t[1].outstanding = 1;
    f.t[2].outstanding = 3;
    for (int i = 0; i < 5; i++)
        cr_expect_eq(pick(&f, 0), 1);
    lb_set_free(&f.set);
}

Test(gateway_balance, p2c_avoids_the_slow_busy_target)
{
    struct fixture f;
    setup(&f, GATEWAY_BALANCE_P2C, 2);
    f.t[0].ewma_ms = 100;
    f.t[0].outstanding = 4;
    f.t[1].ewma_ms = 2;
    for (int i = 0; i < 20; i++)
        cr_expect_eq(pick(&f, 0), 1);
    lb_set_free(&f.set);
}

/* Regression: a target that came back from a SIGSTOP kept the huge latency
 * it had while stopped, so P2C never picked it again to learn better. */
Test(gateway_balance, p2c_picks_a_target_again_once_it_is_back_up)
{
    struct fixture f;
    setup(&f, GATEWAY_BALANCE_P2C, 2);
    atomic_uint epoch;
    atomic_init(&epoch, 0);
    f.t[0].up_epoch = &epoch;
    f.t[0].ewma_ms = 5000;
    f.t[1].ewma_ms = 2;
    for (int i = 0; i < 20; i++)
        cr_expect_eq(pick(&f, 0), 1);
    atomic_store(&epoch, 1); /* the health checker saw it come up */
    int hits = 0;
    for (int i = 0; i < 20; i++)
        hits += pick(&f, 0) == 0;
    cr_expect_gt(hits, 0, "a target back up gets traffic again");
    lb_set_free(&f.set);
}

/* Regression: a target whose first answer after a stall was slow was never
 * picked again, since P2C only learns a latency by sending requests. */
Test(gateway_balance, p2c_tries_a_once_slow_target_again_as_its_latency_fades)
{
    struct fixture f;
    setup(&f, GATEWAY_BALANCE_P2C, 2);
    f.set.params.ewma_fade_ms = 1000;
    lb_end(&f.t[0], &f.set.params, lb_begin(&f.t[0], 0), LB_OK, 300, 0);
    lb_end(&f.t[1], &f.set.params, lb_begin(&f.t[1], 0), LB_OK, 2, 0);
    for (int i = 0; i < 20; i++)
        cr_expect_eq(pick(&f, 100), 1, "still slow after 100 ms");
    /* the fast one keeps answering */
    lb_end(&f.t[1], &f.set.params, lb_begin(&f.t[1], 10000), LB_OK, 2, 10000);
    int hits = 0;
    for (int i = 0; i < 20; i++)
        hits += pick(&f, 10000) == 0;
    cr_expect_gt(hits, 0, "unsampled for 10 s, the slow one's latency has faded");
    f.set.params.ewma_fade_ms = 0;
    for (int i = 0; i < 20; i++)
        cr_expect_eq(pick(&f, 10000), 1, "no fading when disabled");
    lb_set_free(&f.set);
}

/* Regression: a new sample blended into the unfaded EWMA, so one late answer
 * after a stall (SIGSTOP, then SIGCONT) kept the target out for 15-25 s:
 * each rare pick brought the latency back up to most of its old excess. */
Test(gateway_balance, a_fast_answer_after_a_long_fade_counts_against_the_faded_latency)
{
    struct fixture f;
    setup(&f, GATEWAY_BALANCE_P2C, 2);
    f.set.params.ewma_fade_ms = 1000;
    lb_end(&f.t[0], &f.set.params, lb_begin(&f.t[0], 0), LB_OK, 1000, 0);
    /* 5 s later the late answer has faded to about 7 ms; one fast answer
     * then leaves it near 4 ms, not back at 500 ms. */
    lb_end(&f.t[0], &f.set.params, lb_begin(&f.t[0], 5000), LB_OK, 2, 5000);
    cr_expect_lt(f.t[0].ewma_ms, 10, "ewma %.1f ms (the unfaded blend gave 501)", f.t[0].ewma_ms);
    lb_set_free(&f.set);
}

Test(gateway_balance, hash_is_sticky_and_bounded)
{
    struct fixture f;
    setup(&f, GATEWAY_BALANCE_HASH, 4);
    bool panic;
    uint64_t k = lb_key_hash(SLICE_LIT("record-abc"));
    size_t first = lb_pick(&f.set, 0, k, true, SIZE_MAX, &panic);
    for (int i = 0; i < 10; i++)
        cr_expect_eq(lb_pick(&f.set, 0, k, true, SIZE_MAX, &panic), first);
    /* Keys spread over every target. */
    int hits[4] = {0};
    for (int i = 0; i < 400; i++) {
        char key[16];
        int n = snprintf(key, sizeof(key), "k%d", i);
        hits[lb_pick(&f.set, 0, lb_key_hash(slice_make(key, (size_t)n)), true, SIZE_MAX, &panic)]++;
    }
    for (int i = 0; i < 4; i++)
        cr_expect_gt(hits[i], 40, "target %d got %d of 400", i, hits[i]);
    /* An overloaded owner hands the key on to the next target on the ring. */
    f.t[first].outstanding = 10;
    cr_expect_neq(lb_pick(&f.set, 0, k, true, SIZE_MAX, &panic), first);
    f.t[first].outstanding = 0;
    /* Removing the owner moves only its keys. */
    atomic_store(&f.health[first], LB_HEALTH_DRAINING);
    cr_expect_neq(lb_pick(&f.set, 0, k, true, SIZE_MAX, &panic), first);
    lb_set_free(&f.set);
}

Test(gateway_balance, ejection_backs_off_exponentially_with_one_trial)
{
    struct fixture f;
    setup(&f, GATEWAY_BALANCE_ROUND_ROBIN, 2);
    struct lb_target *t = &f.t[0];
    cr_expect(lb_end(t, &base, lb_begin(t, 0), LB_CONNECT_FAIL, 0, 0));
    cr_expect_eq(t->backoff_ms, 1000);
    cr_expect_not(lb_usable(t, 999));
    cr_expect(lb_usable(t, 1000));
    struct lb_attempt trial = lb_begin(t, 1000);
    cr_expect(trial.trial);
    cr_expect_not(lb_usable(t, 1001), "only one trial at a time");
    cr_expect(lb_end(t, &base, trial, LB_TIMEOUT, 0, 1500));
    cr_expect_eq(t->backoff_ms, 2000);
    cr_expect_eq(t->down_until_ms, 3500);
    for (int i = 0; i < 5; i++)
        lb_end(t, &base, lb_begin(t, t->down_until_ms), LB_CONNECT_FAIL, 0, t->down_until_ms);
    cr_expect_eq(t->backoff_ms, 8000, "capped at eject_max_ms");
    cr_expect_not(lb_end(t, &base, lb_begin(t, t->down_until_ms), LB_OK, 3, t->down_until_ms));
    cr_expect_eq(t->backoff_ms, 0);
    cr_expect(lb_usable(t, 0));
    lb_set_free(&f.set);
}

Test(gateway_balance, consecutive_5xx_eject_and_late_failures_do_not_extend)
{
    struct fixture f;
    setup(&f, GATEWAY_BALANCE_ROUND_ROBIN, 2);
    struct lb_target *t = &f.t[0];
    for (int i = 0; i < 2; i++)
        cr_expect_not(lb_end(t, &base, lb_begin(t, 0), LB_5XX, 1, 0));
    struct lb_attempt third = lb_begin(t, 0), late = lb_begin(t, 0);
    cr_expect(lb_end(t, &base, third, LB_5XX, 1, 10));
    cr_expect_eq(t->down_until_ms, 1010);
    cr_expect_not(lb_end(t, &base, late, LB_TIMEOUT, 1, 20), "in flight before the ejection");
    cr_expect_eq(t->down_until_ms, 1010);
    lb_set_free(&f.set);
}

/* Regression: the trial was the target's, not an attempt's, so any request
 * ending during a back-off passed for it. */
Test(gateway_balance, only_the_trial_decides_an_ejected_target)
{
    struct fixture f;
    setup(&f, GATEWAY_BALANCE_ROUND_ROBIN, 2);
    struct lb_target *t = &f.t[0];
    struct lb_attempt old_ok = lb_begin(t, 0), old_5xx = lb_begin(t, 0);
    cr_expect(lb_end(t, &base, lb_begin(t, 0), LB_CONNECT_FAIL, 0, 0));
    /* Answers of requests sent before the ejection neither lift it nor,
     * as 5xx, eject it again with a doubled back-off. */
    cr_expect_not(lb_end(t, &base, old_ok, LB_OK, 1, 10));
    cr_expect_eq(t->backoff_ms, 1000);
    cr_expect_not(lb_usable(t, 500));
    struct lb_params eager = base;
    eager.eject_5xx = 1;
    cr_expect_not(lb_end(t, &eager, old_5xx, LB_5XX, 1, 20));
    cr_expect_eq(t->backoff_ms, 1000);
    cr_expect_eq(t->down_until_ms, 1000);
    /* After the back-off one attempt is the trial; another one sent
     * meanwhile (as in panic) is not, and its end leaves the trial running. */
    struct lb_attempt trial = lb_begin(t, 1000), other = lb_begin(t, 1001);
    cr_expect(trial.trial);
    cr_expect_not(other.trial);
    cr_expect_not(lb_end(t, &base, other, LB_TIMEOUT, 1, 1002), "not the trial");
    cr_expect_eq(t->backoff_ms, 1000);
    cr_expect_not(lb_usable(t, 1003), "the trial still runs");
    cr_expect_not(lb_end(t, &base, trial, LB_OK, 1, 1004));
    cr_expect_eq(t->backoff_ms, 0, "the trial's answer ends the ejection");
    cr_expect(lb_usable(t, 1005));
    lb_set_free(&f.set);
}

Test(gateway_balance, panic_spreads_over_all_but_draining)
{
    struct fixture f;
    setup(&f, GATEWAY_BALANCE_ROUND_ROBIN, 4);
    atomic_store(&f.health[0], LB_HEALTH_DOWN);
    atomic_store(&f.health[1], LB_HEALTH_DOWN);
    atomic_store(&f.health[2], LB_HEALTH_DOWN);
    atomic_store(&f.health[3], LB_HEALTH_DRAINING);
    bool panic;
    int hits[4] = {0};
    for (int i = 0; i < 9; i++)
        hits[lb_pick(&f.set, 0, 0, false, SIZE_MAX, &panic)]++;
    cr_expect(panic);
    cr_expect_eq(hits[0], 3);
    cr_expect_eq(hits[1], 3);
    cr_expect_eq(hits[2], 3);
    cr_expect_eq(hits[3], 0);
    /* One of three live targets usable is under 50%: still panic. */
    atomic_store(&f.health[0], LB_HEALTH_UP);
    lb_pick(&f.set, 0, 0, false, SIZE_MAX, &panic);
    cr_expect(panic);
    atomic_store(&f.health[1], LB_HEALTH_UP);
    for (int i = 0; i < 4; i++)
        cr_expect_lt(lb_pick(&f.set, 0, 0, false, SIZE_MAX, &panic), 2);
    cr_expect_not(panic);
    lb_set_free(&f.set);
}

Test(gateway_balance, avoid_skips_the_failed_target_while_another_is_usable)
{
    struct fixture f;
    setup(&f, GATEWAY_BALANCE_P2C, 2);
    bool panic;
    for (int i = 0; i < 10; i++)
        cr_expect_eq(lb_pick(&f.set, 0, 0, false, 0, &panic), 1);
    atomic_store(&f.health[1], LB_HEALTH_DOWN);
    atomic_store(&f.health[0], LB_HEALTH_DOWN);
    cr_expect_eq(lb_pick(&f.set, 0, 0, false, 0, &panic), 1);
    lb_set_free(&f.set);
}

Test(gateway_config, balance_options_and_health_settings)
{
    struct gateway_config gc;
    char err[256] = "";
    const char *text = "upstream api balance=hash hash=path:4 127.0.0.1:1 127.0.0.1:2\n"
                       "upstream q hash=query:id balance=least_outstanding 127.0.0.1:3\n"
                       "upstream h hash=header:X-Key 127.0.0.1:4\n"
                       "route / api\n"
                       "health_interval_ms = 500\nhealth_path = /ready\nmetrics_path =\n"
                       "panic_percent = 30\neject_5xx = 0\n";
    cr_assert_eq(gateway_config_parse(&gc, NULL, slice_cstr(text), err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(gc.upstreams[0].balance, GATEWAY_BALANCE_HASH);
    cr_expect_eq(gc.upstreams[0].hash_from, GATEWAY_HASH_PATH);
    cr_expect_eq(gc.upstreams[0].hash_segment, 4);
    cr_expect_eq(gc.upstreams[0].ntargets, 2);
    cr_expect_eq(gc.upstreams[1].balance, GATEWAY_BALANCE_LEAST);
    cr_expect_str_eq(gc.upstreams[1].hash_name, "id");
    cr_expect_eq(gc.upstreams[2].balance, GATEWAY_BALANCE_P2C);
    cr_expect_eq(gc.upstreams[2].hash_from, GATEWAY_HASH_HEADER);
    cr_expect_eq(gc.health_interval_ms, 500);
    cr_expect_str_eq(gateway_health_path(&gc), "/ready");
    cr_expect_null(gateway_metrics_path(&gc));
    cr_expect_eq(gc.panic_percent, 30);
    cr_expect_eq(gc.eject_5xx, 0);
    gateway_config_free(&gc);

    const char *bad[] = {
        "upstream a balance=fast 127.0.0.1:1\nroute / a\n",
        "upstream a balance=hash 127.0.0.1:1\nroute / a\n",
        "upstream a hash=cookie:x 127.0.0.1:1\nroute / a\n",
        "upstream a 127.0.0.1:1\nroute / a\nhealth_path = no-slash\n",
        "upstream a 127.0.0.1:1\nroute / a\npanic_percent = 101\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(gateway_config_parse(&gc, NULL, slice_cstr(bad[i]), err, sizeof(err)), -1,
                     "%s", bad[i]);
        cr_expect_eq(strncmp(err, "line ", 5), 0, "%s", err);
    }
    cr_expect_eq(gateway_config_parse(&gc, NULL, slice_cstr(text), err, sizeof(err)), 0);
    cr_expect_str_eq(gateway_metrics_path(&(struct gateway_config){0}), "/metrics");
    gateway_config_free(&gc);
}
